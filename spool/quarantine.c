/*
 * quarantine.c - set damaged spool entries aside in spool/corrupt/, never retried, never
 * followed, never lost.
 *
 * A queue or state file that is not a regular file (a FIFO, a symlink, a directory), has a name
 * that is no spool name, or does not parse (a truncated envelope or body, garbage, numbers out
 * of range) would otherwise be retried for ever, hang a reader, or be dropped from the index
 * while it stays on disk.  It is moved (rename, same file system) to corrupt/ under its own
 * name, suffixed when that name is taken (never over an earlier one), with one warning naming
 * the file and the reason; the
 * operator can read it there, repair it and move it back.  A damaged message takes its state
 * files with it; a damaged state file goes alone and its message stays queued with its
 * recipients pending (at worst a recipient already delivered gets the message again).
 * Concurrency: any process that reads the spool (the master, a worker, sluicectl); a rename
 * that finds the file gone (someone else set it aside first) is not an error.
 * Trust boundary: names come from directory entries and checked ids; each is used only as
 * the last component of a path under the spool.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_impl.h"
#include "util/sl_msg.h"

#define CORRUPT_SUFFIX_MAX 1000 /* name, name.1 ... name.999 in corrupt/ */

/* move_no_replace - rename from to to, failing with EEXIST rather than replace a file there.
 * Where the file system or the kernel has no such rename (EINVAL, ENOSYS), a plain rename
 * after a look: only a file set aside in the instant between could then be replaced. */
static int move_no_replace(const char *from, const char *to)
{
    struct stat st;

    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (lstat(to, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

/* move_to_corrupt - from into corrupt/ as name, else name.1, name.2 ...: never over an entry
 * set aside before (the operator's only copy of it); the name it got in to */
static int move_to_corrupt(const char *dir, const char *from, const char *name, char *to,
                           size_t len)
{
    for (unsigned i = 0; i < CORRUPT_SUFFIX_MAX; i++) {
        char alt[300];
        snprintf(alt, sizeof alt, i == 0 ? "%.255s" : "%.255s.%u", name, i);
        if (!spool_path(to, len, dir, SPOOL_CORRUPT, alt)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (move_no_replace(from, to) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    return -1; /* errno EEXIST: every name is taken */
}

/* real_dir - path is a directory itself, not a symbolic link to one */
static bool real_dir(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* set_aside - dir/sub/name into corrupt/; 0, or -1 (warned) when it could not be moved */
static int set_aside(const char *dir, const char *sub, const char *name, const char *reason)
{
    char from[4096], to[4096], corrupt[4096];

    if (!spool_path(from, sizeof from, dir, sub, name) ||
        !spool_path(corrupt, sizeof corrupt, dir, SPOOL_CORRUPT, NULL))
        return -1;
    if (mkdir(corrupt, 0750) < 0 && errno != EEXIST) {
        sl_msg_warn("spool: cannot create %s to set %s aside: %s", corrupt, from, strerror(errno));
        return -1;
    }
    if (!real_dir(corrupt)) { /* a symbolic link would move the entry out of the spool */
        sl_msg_warn("spool: %s is not a directory of the spool: %s not set aside", corrupt, from);
        return -1;
    }
    if (move_to_corrupt(dir, from, name, to, sizeof to) < 0) {
        if (errno == ENOENT)
            return 0; /* gone meanwhile: set aside by another reader, or removed */
        sl_msg_warn("spool: cannot set %s aside: %s", from, strerror(errno));
        return -1;
    }
    sl_msg_warn("spool: %s set aside as %s: %s", from, to, reason);
    return 0;
}

/* sl_spool_quarantine_entry - any entry of queue/ or state/ (sub) by its name */
int sl_spool_quarantine_entry(const char *dir, const char *sub, const char *name,
                              const char *reason)
{
    if (strcmp(sub, SPOOL_QUEUE) != 0 && strcmp(sub, SPOOL_STATE) != 0)
        return -1;
    return set_aside(dir, sub, name, reason);
}

/* sl_spool_quarantine_msg - queue/ID and every state/ID.K */
int sl_spool_quarantine_msg(const char *dir, const char *id, const char *reason)
{
    char name[SL_SPOOL_ID_LEN + 16], path[4096];
    int rc;

    if (!sl_spool_id_valid(id))
        return -1;
    /* A message that stays queued keeps its state files: without them its delivered
     * recipients would be sent it again. */
    if ((rc = set_aside(dir, SPOOL_QUEUE, id, reason)) < 0)
        return rc;
    for (unsigned k = 0; k < SL_SPOOL_PARTS_MAX; k++) {
        snprintf(name, sizeof name, "%s.%u", id, k);
        if (spool_path(path, sizeof path, dir, SPOOL_STATE, name) && access(path, F_OK) == 0)
            set_aside(dir, SPOOL_STATE, name, "its message was set aside");
    }
    return rc;
}

/* sl_spool_quarantine_state - state/ID.K alone: the message stays, part K as never tried */
int sl_spool_quarantine_state(const char *dir, const char *id, unsigned k, const char *reason)
{
    char name[SL_SPOOL_ID_LEN + 16];

    if (!sl_spool_id_valid(id) || k >= SL_SPOOL_PARTS_MAX)
        return -1;
    snprintf(name, sizeof name, "%s.%u", id, k);
    return set_aside(dir, SPOOL_STATE, name, reason);
}

/* sl_spool_corrupt_list - fn for every entry of corrupt/; how many (0 when there is none) */
size_t sl_spool_corrupt_list(const char *dir,
                             void (*fn)(const char *name, const struct stat *st, void *ctx),
                             void *ctx)
{
    char path[4096];
    struct dirent *e;
    struct stat st;
    size_t n = 0;
    DIR *d;

    if (!spool_path(path, sizeof path, dir, SPOOL_CORRUPT, NULL) || (d = opendir(path)) == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        n++;
        if (fn != NULL)
            fn(e->d_name, &st, ctx);
    }
    closedir(d);
    return n;
}
