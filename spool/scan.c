/*
 * scan.c - the queue as a whole: list it, remove a finished message, and
 * sweep the garbage a crash can leave.
 *
 * Garbage is of two kinds: files in tmp/ that a writer never renamed (a
 * writer finishes within seconds, so anything older than STALE_TMP_S is
 * dead), and state files of a message whose queue file is gone (a crash
 * between the two unlinks of sl_spool_remove).  The listing also tells which
 * messages have state files, so the master's start scan looks up no state
 * file that is not there; removing a message that never had one costs a
 * single unlink and a single lookup.
 * Concurrency: the master's scan at start and sluicectl queue may run while
 * workers save state and inject writes; a state file is only removed when its
 * message is gone, and a message is only written once, so no live file is
 * ever swept.
 * Trust boundary: directory entries are checked as ids before use; other
 * names are left alone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/sl_msg.h"
#include "spool_impl.h"

#define STALE_TMP_S 60

/* dead_child_write - a tmp/ file named "ID.K.PID" (a worker's state write) or "ID.in" (a listener
 * process's new message, SPOOL_GROUP_TMP_SUFFIX).  At the master's start no worker or listener
 * of it runs yet and a dead master's children died with it, so such a file is a write cut short
 * by a kill, whatever its age. */
static bool dead_child_write(const char *name, bool at_start)
{
    const char *dot = strchr(name, '.');

    return at_start && dot != NULL && dot - name == SL_SPOOL_ID_LEN;
}

/* spool_sweep_tmp - remove files of tmp/ older than STALE_TMP_S, and at the master's start the
 * state and listener writes that a kill cut short */
void spool_sweep_tmp(const char *dir, bool at_start)
{
    char path[4096];
    struct dirent *e;
    struct stat st;
    time_t now = time(NULL);
    DIR *d;

    if (!spool_path(path, sizeof path, dir, SPOOL_TMP, NULL) || (d = opendir(path)) == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if ((now - st.st_mtime > STALE_TMP_S || dead_child_write(e->d_name, at_start)) &&
            unlinkat(dirfd(d), e->d_name, 0) == 0)
            sl_msg_info("spool: removed stale %s/%s", path, e->d_name);
    }
    closedir(d);
}

/* regular - is entry e of the directory d a regular file (not a symlink, FIFO, directory) */
static bool regular(DIR *d, const struct dirent *e)
{
    struct stat st;

    if (e->d_type == DT_REG)
        return true;
    if (e->d_type != DT_UNKNOWN)
        return false;
    return fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* dot - "." or ".." */
static bool dot(const char *name)
{
    return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* state_name_valid - "ID.K": a queue id, a dot, a part number in range */
static bool state_name_valid(const char *name)
{
    char id[SL_SPOOL_ID_LEN + 1];
    uint64_t k;
    size_t n = strlen(name);

    if (n < SL_SPOOL_ID_LEN + 2 || name[SL_SPOOL_ID_LEN] != '.' ||
        !spool_parse_u64(name + SL_SPOOL_ID_LEN + 1, n - SL_SPOOL_ID_LEN - 1,
                         SL_SPOOL_PARTS_MAX - 1, &k))
        return false;
    memcpy(id, name, SL_SPOOL_ID_LEN);
    id[SL_SPOOL_ID_LEN] = '\0';
    return sl_spool_id_valid(id);
}

/* orphan - a valid state file name "ID.K" whose queue/ID is gone */
static bool orphan(int queue_fd, const char *name)
{
    char id[SL_SPOOL_ID_LEN + 1];
    struct stat st;

    memcpy(id, name, SL_SPOOL_ID_LEN);
    id[SL_SPOOL_ID_LEN] = '\0';
    return fstatat(queue_fd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
}

/* misfit - entry e of sub/ (the directory d) is not one of its files: its name is not one
 * (name_ok false: bad_name says why) or it is no regular file; then it is set aside */
static bool misfit(const char *dir, const char *sub, DIR *d, const struct dirent *e, bool name_ok,
                   const char *bad_name)
{
    if (name_ok && regular(d, e))
        return false;
    sl_spool_quarantine_entry(dir, sub, e->d_name, name_ok ? "not a regular file" : bad_name);
    return true;
}

/* spool_state_entry - is entry e of state/ (the directory d, path) a live state file?  A name
 * that is no state file's, or no regular file, is set aside; the state of a message no longer in
 * queue/ (queue_fd) is removed.  Anything else that looks like a state file counts: a reader
 * loads it and judges. */
bool spool_state_entry(const char *dir, const char *path, DIR *d, int queue_fd,
                       const struct dirent *e)
{
    if (dot(e->d_name) ||
        misfit(dir, SPOOL_STATE, d, e, state_name_valid(e->d_name), "not a state file name"))
        return false;
    if (orphan(queue_fd, e->d_name)) {
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            sl_msg_info("spool: removed orphan state %s/%s", path, e->d_name);
        return false;
    }
    return true;
}

/* next_entry - readdir, with its end told from its failure: NULL with *failed set on an error */
static struct dirent *next_entry(DIR *d, bool *failed)
{
    struct dirent *e;

    errno = 0;
    if ((e = readdir(d)) == NULL && errno != 0)
        *failed = true;
    return e;
}

/* sweep_state - remove state files of messages no longer queued; the ids of the state files
 * that stay go into stated (unsorted, maybe repeated).  false (errno) when state/ could not be
 * listed whole: then stated tells nothing, for an id it lacks may have a state file. */
static bool sweep_state(const char *dir, int queue_fd, struct sl_spool_ids *stated)
{
    char path[4096];
    struct dirent *e;
    size_t cap = 0;
    bool failed = false;
    DIR *d;

    if (!spool_path(path, sizeof path, dir, SPOOL_STATE, NULL) || (d = opendir(path)) == NULL)
        return false;
    while ((e = next_entry(d, &failed)) != NULL) {
        if (!spool_state_entry(dir, path, d, queue_fd, e))
            continue;
        if (stated->n == cap) {
            cap = cap ? cap * 2 : 64;
            stated->id = sl_realloc(stated->id, cap * sizeof *stated->id);
        }
        memcpy(stated->id[stated->n], e->d_name, SL_SPOOL_ID_LEN);
        stated->id[stated->n++][SL_SPOOL_ID_LEN] = '\0';
    }
    int saved = errno;
    closedir(d);
    errno = saved;
    return !failed;
}

/* by_id - ids sort by arrival time */
static int by_id(const void *a, const void *b)
{
    return memcmp(a, b, SL_SPOOL_ID_LEN);
}

/* spool_queue_entry - is entry e of queue/ (the directory d) a queued message?  Anything else
 * there is set aside. */
bool spool_queue_entry(const char *dir, DIR *d, const struct dirent *e)
{
    return !dot(e->d_name) &&
           !misfit(dir, SPOOL_QUEUE, d, e, sl_spool_id_valid(e->d_name), "not a queue id");
}

/* list_queue - the valid ids of queue/, unsorted; false (errno) when the listing failed */
static bool list_queue(const char *dir, DIR *d, struct sl_spool_ids *l)
{
    size_t cap = 0;
    bool failed = false;
    struct dirent *e;

    while ((e = next_entry(d, &failed)) != NULL) {
        if (!spool_queue_entry(dir, d, e))
            continue;
        if (l->n == cap) {
            cap = cap ? cap * 2 : 64;
            l->id = sl_realloc(l->id, cap * sizeof *l->id);
        }
        memcpy(l->id[l->n++], e->d_name, SL_SPOOL_ID_LEN + 1);
    }
    return !failed;
}

/* sort_ids - ascending, which for queue ids is arrival order */
static void sort_ids(struct sl_spool_ids *l)
{
    if (l->n > 1)
        qsort(l->id, l->n, sizeof *l->id, by_id);
}

/* sl_spool_list - the queued ids and the ids with state files, both sorted */
int sl_spool_list(const char *dir, struct sl_spool_ids *queued, struct sl_spool_ids *stated,
                  bool at_start)
{
    char path[4096];
    DIR *d;

    *queued = (struct sl_spool_ids){0};
    *stated = (struct sl_spool_ids){0};
    if (!spool_path(path, sizeof path, dir, SPOOL_QUEUE, NULL) || (d = opendir(path)) == NULL)
        return -1;
    spool_sweep_tmp(dir, at_start);
    /* A partial list of queue/ is safe: an id it lacks waits for a rescan, which looks its
     * state up. */
    if (!list_queue(dir, d, queued))
        sl_msg_warn("spool: cannot list %s whole: %s; what was missed waits for a rescan", path,
                    strerror(errno));
    bool whole = sweep_state(dir, dirfd(d), stated);
    int saved = errno;
    closedir(d);
    sort_ids(queued);
    if (!whole) {
        sl_spool_ids_free(stated);
        errno = saved;
        return 1;
    }
    sort_ids(stated);
    return 0;
}

/* sl_spool_ids_has - binary search of a sorted list */
bool sl_spool_ids_has(const struct sl_spool_ids *l, const char *id)
{
    return l->n > 0 && bsearch(id, l->id, l->n, sizeof *l->id, by_id) != NULL;
}

/* sl_spool_ids_free - the list's array */
void sl_spool_ids_free(struct sl_spool_ids *l)
{
    free(l->id);
    *l = (struct sl_spool_ids){0};
}

/* sl_spool_scan - fn for every queued id, oldest first, after sweeping garbage */
int sl_spool_scan(const char *dir, void (*fn)(const char *id, void *ctx), void *ctx)
{
    struct sl_spool_ids queued, stated;

    if (sl_spool_list(dir, &queued, &stated, false) < 0) /* a partial state/ does not matter */
        return -1;
    sl_spool_ids_free(&stated);
    for (size_t i = 0; i < queued.n; i++)
        fn(queued.id[i], ctx);
    sl_spool_ids_free(&queued);
    return 0;
}

/* has_state - does any state/ID.K file exist? */
static bool has_state(const char *dir, const char *id, size_t nparts)
{
    char path[4096], name[SL_SPOOL_ID_LEN + 16];

    for (size_t k = 0; k < nparts && k < SL_SPOOL_PARTS_MAX; k++) {
        snprintf(name, sizeof name, "%s.%zu", id, k);
        if (spool_path(path, sizeof path, dir, SPOOL_STATE, name) && access(path, F_OK) == 0)
            return true;
    }
    return false;
}

/* sl_spool_remove - queue/ID (made durable), then state/ID.K for every K */
int sl_spool_remove(const char *dir, const char *id, size_t nparts)
{
    char path[4096], name[SL_SPOOL_ID_LEN + 16];

    if (!sl_spool_id_valid(id) || !spool_path(path, sizeof path, dir, SPOOL_QUEUE, id))
        return -1;
    if (unlink(path) < 0 && errno != ENOENT)
        return -1;
    /* The message must stay gone after a crash before its state goes: a
     * queue file without its state would be delivered again.  A message that
     * never needed a state file (delivered at its first attempt: the common
     * case) skips that sync: a crash can at worst bring it back for one more
     * delivery, the at-least-once window of I4, and the drain rate is not
     * bound to one directory sync per message. */
    if (!has_state(dir, id, nparts))
        return 0; /* nothing more to remove */
    if (!spool_path(path, sizeof path, dir, SPOOL_QUEUE, NULL) || spool_fsync_dir(path) < 0)
        return -1;
    for (size_t k = 0; k < nparts && k < SL_SPOOL_PARTS_MAX; k++) {
        snprintf(name, sizeof name, "%s.%zu", id, k);
        if (spool_path(path, sizeof path, dir, SPOOL_STATE, name))
            unlink(path);
    }
    return 0;
}
