/*
 * sl_file.h - opening a file that someone else may have replaced.
 *
 * The spool and the log directory belong to the daemon's user; a file read
 * there (a cache, a pid file, a credentials file beside it) may have been
 * replaced by a symbolic link or a FIFO.  Following the one would read a file
 * the link's owner chose, opening the other would wait for a writer for ever.
 */
#ifndef SL_FILE_H
#define SL_FILE_H

/* path opened with flags (O_RDONLY, ...) plus O_NOFOLLOW, O_NONBLOCK and O_CLOEXEC, kept only
 * when it is a regular file; -1 with errno: ELOOP for a symbolic link, EINVAL for anything
 * but a regular file, else open's. */
int sl_open_regular(const char *path, int flags);

/* errno e of an O_NONBLOCK open as text ("a FIFO that nobody reads" for ENXIO) */
const char *sl_file_strerror(int e);

#endif
