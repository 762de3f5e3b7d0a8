/*
 * sl_spool_lock.h - who may change the spool without the daemon (lock.c).
 *
 * spool_dir/sluiced.lock carries a POSIX record lock: the master takes it for
 * writing before its start scan and keeps it to its end; sluicectl, finding no
 * daemon to answer, takes it for reading while it changes the spool itself.
 * So a sluicectl command never acts on the spool while a daemon starts (or
 * runs without answering yet), and a daemon never scans the spool while such a
 * command is changing it.  A record lock is the process's own: the workers a
 * master forks do not hold it, and it goes with the process, however it ends.
 */
#ifndef SL_SPOOL_LOCK_H
#define SL_SPOOL_LOCK_H

#include <stddef.h>

#define SL_SPOOL_LOCK      "sluiced.lock"
#define SL_SPOOL_LOCK_BUSY (-2) /* a daemon holds the spool */

/* The daemon's hold on spool dir, waited for while a sluicectl acts on it (at most a
 * minute); the descriptor (kept open for the daemon's life), SL_SPOOL_LOCK_BUSY with err when
 * another daemon holds it or the lock file is not one (a FIFO, a hard link: not to be taken,
 * nor started without), or -1 with err. */
int sl_spool_lock_daemon(const char *dir, char *err, size_t errlen);
/* May sluicectl change spool dir itself: the descriptor to keep open while it does,
 * SL_SPOOL_LOCK_BUSY when a daemon holds the spool, -1 (errno) when the lock file cannot be
 * opened or locked: ENOENT when there is no spool yet, EBADMSG when the lock file is not one
 * regular file of one link; any other error says nothing of a daemon, so the caller must not
 * change the spool. */
int sl_spool_lock_offline(const char *dir);

#endif
