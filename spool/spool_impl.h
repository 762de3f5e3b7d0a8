/*
 * spool_impl.h - what the spool's files share and nobody else needs: paths,
 * the durable commit of a new file, strict number parsing, ids, the body codec.
 *
 * Trust boundary: the spool's files are ours, but a disk, a crash or an
 * operator can corrupt them; everything read back is parsed with bounds.
 */
#ifndef SPOOL_IMPL_H
#define SPOOL_IMPL_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/sl_spool.h"

#define SPOOL_TMP   "tmp"
#define SPOOL_QUEUE "queue"
#define SPOOL_STATE "state"

/* A message's header: the first read covers the usual case; the bound allows
 * SL_SPOOL_RCPT_MAX recipients of the longest address, each with its NOTIFY and the longest
 * ORCPT ("rcpt P ADDR", "notify N", "orcpt TEXT": 64 bytes cover the keys, numbers and
 * newlines), and the ENVID, sender and binding (4096 + the ENVID).  Every envelope the writer
 * takes is readable: the writer refuses a longer one. */
#define SPOOL_HEAD_FIRST (64 * 1024)
/* The latest time a spool file may name, an arrival or a next attempt (9999-12-31, UNIX
 * seconds): a later one is damage, and would overflow milliseconds computed from it. */
#define SPOOL_NEXT_MAX 253402300799LL
#define SPOOL_HEAD_MAX                                                                             \
    ((size_t)SL_SPOOL_RCPT_MAX * (SL_ADDR_MAX + SL_SPOOL_DSN_TEXT_MAX + 64) + 4096 +               \
     SL_SPOOL_DSN_TEXT_MAX)

/* err = the formatted text (when err is not NULL); returns -1 for the caller,
 * errno unchanged. */
int spool_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SPOOL_CORRUPT "corrupt"

/* The checks of a listing (scan.c), entry by entry, shared by the whole listing and the walk
 * (walk.c).  Remove stale files of tmp/ (at_start: also the writes a kill cut short). */
void spool_sweep_tmp(const char *dir, bool at_start);
/* Is entry e of queue/ (the directory d) a queued message?  Anything else is set aside. */
bool spool_queue_entry(const char *dir, DIR *d, const struct dirent *e);
/* Is entry e of state/ (the directory d at path) a live state file?  A damaged entry is set
 * aside, the state of a message gone from queue/ (queue_fd) is removed. */
bool spool_state_entry(const char *dir, const char *path, DIR *d, int queue_fd,
                       const struct dirent *e);

/* Open a spool entry for reading: never through a symlink, never waiting (a FIFO), and only a
 * regular file.  The fd, or -1 with errno ENOENT (gone), EBADMSG (damaged: a symlink, a FIFO,
 * a directory...), or another errno (a transient failure: EMFILE, EIO, EACCES). */
int spool_open_entry(const char *path);

/* dir/sub/name (name may be NULL) into buf; false when it does not fit. */
bool spool_path(char *buf, size_t len, const char *dir, const char *sub, const char *name);

/* fsync a directory so that a rename or unlink in it survives a crash. */
int spool_fsync_dir(const char *path);

/* How spool_commit treats an existing final file. */
enum spool_commit_mode {
    SPOOL_NEW,     /* refuse it (a new message: an id is never reused) */
    SPOOL_REPLACE, /* replace it atomically (a state update) */
};
/* Results of spool_commit. */
enum spool_commit_result { SPOOL_COMMIT_OK, SPOOL_COMMIT_EXISTS, SPOOL_COMMIT_ERROR };

/* Write data to dir/tmp/tmpname, fsync it, rename it to dir/sub/name and fsync
 * dir/sub.  On any failure the tmp file is removed and errno is the failure's cause. */
enum spool_commit_result spool_commit(const char *dir, const char *tmpname, const char *sub,
                                      const char *name, const void *data, size_t len,
                                      enum spool_commit_mode mode, char *err, size_t errlen);

/* As spool_commit with SPOOL_NEW, but one sync after the rename, shared with the writers of
 * group g (group.c): the data and the names of every file renamed by then. */
enum spool_commit_result spool_commit_grouped(const char *dir, const char *tmpname, const char *sub,
                                              const char *name, const void *data, size_t len,
                                              struct sl_spool_group *g, char *err, size_t errlen);
/* The group's sync (group.c), -1 with errno: the caller's file, renamed into dirpath, is
 * durable, data and name (one syncfs for every writer that got there). */
int spool_group_sync(struct sl_spool_group *g, const char *dirpath);
/* This process's descriptor of dirpath for the group's lock and sync, opened at its first
 * call (before the caller's write, so that the sync sees that write's errors); -1 (errno). */
int spool_group_fd(const char *dirpath);
/* A writer on its way to the sync (writing its file, renaming it) says so, and a sync about
 * to start waits a moment for it to join. */
void spool_group_heading(struct sl_spool_group *g, bool on_way);
/* The file a writer of the group has in tmp/ (NULL: none), for sl_spool_group_forget. */
void spool_group_tmp(struct sl_spool_group *g, const char *name);
/* The message a writer is renaming into queue/, until the master was told (NULL: none). */
void spool_group_queued(struct sl_spool_group *g, const char *id);
/* A group writer's (a listener process's) new message is written as tmp/ID.in: the master
 * reaping a writer killed mid-write removes it, and the master's start scan (when no writer of
 * a group runs: a dead master's listeners died with it) removes any left over. */
#define SPOOL_GROUP_TMP_SUFFIX ".in"
#define SPOOL_GROUP_TMP_MAX    (SL_SPOOL_ID_LEN + sizeof SPOOL_GROUP_TMP_SUFFIX)

/* A decimal number of n bytes at s, no sign, no leading zeros beyond "0",
 * at most max. */
bool spool_parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out);

/* A cursor over the lines of a spool file (lines.c). */
struct spool_lines {
    const char *p, *end;
};
/* The next line, without its LF; false at the end. */
bool spool_next_line(struct spool_lines *l, const char **s, size_t *n);
/* The next line as "key VALUE": the value (possibly empty), or false. */
bool spool_value_of(struct spool_lines *l, const char *key, const char **v, size_t *vn);
/* The next line as "key NUMBER" with NUMBER at most max. */
bool spool_number_of(struct spool_lines *l, const char *key, uint64_t max, uint64_t *out);

/* A fresh id: microseconds since the epoch then random characters (id.c). */
void spool_new_id(char id[SL_SPOOL_ID_LEN + 1]);

/* The body codec (body.c).  spool_body_measure checks that in can be stored
 * (no NUL, lines of at most 998 octets) and gives its CRLF size and its size
 * once dot-stuffed; spool_body_encode then writes exactly `stuffed` bytes. */
int spool_body_measure(const char *in, size_t len, uint64_t *size, size_t *stuffed, char *err,
                       size_t errlen);
void spool_body_encode(const char *in, size_t len, char *out);

#endif
