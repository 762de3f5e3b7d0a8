/*
 * walk.c - the queue a batch of directory entries at a time: the master's periodic rescan.
 *
 * sl_spool_list reads the whole of queue/ and state/ in one call: on a spool of a million
 * messages that is most of a second (0.72-0.87 s measured, every inode cached; 0.91-0.97 s with
 * the master's index lookups), and the master cannot spend it in one turn of its loop: every freed
 * slot, every control command and every listener's announcement would wait for it.  A walk reads
 * queue/, then state/, a batch at a time with the same checks and the same sweep (scan.c), and its
 * caller does the rest of its work between batches.  No sort: the rescan only looks for ids its
 * index lacks, in any order. An entry added or removed while a walk runs may be seen or not
 * (readdir); the caller takes an id seen twice as it takes one already indexed, and one missed
 * waits for the next walk. Concurrency: as the listing (scan.c): workers and writers may work
 * meanwhile; a state file is removed only once its message is gone.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/sl_msg.h"
#include "spool_impl.h"

struct sl_spool_walk {
    char *dir;
    DIR *queue;            /* open until the walk ends: state/'s orphan checks use it */
    DIR *state;            /* NULL while queue/ is read, and when state/ cannot be */
    bool queue_done;       /* queue/ is read: state/ is swept now */
    char state_path[4096]; /* for the sweep's log lines */
};

/* sl_spool_walk_open - tmp/ swept (it holds only writes in progress), queue/ opened */
struct sl_spool_walk *sl_spool_walk_open(const char *dir)
{
    char path[4096];
    struct sl_spool_walk *w;
    DIR *q;

    if (!spool_path(path, sizeof path, dir, SPOOL_QUEUE, NULL)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    if ((q = opendir(path)) == NULL)
        return NULL;
    spool_sweep_tmp(dir, false);
    w = sl_calloc(1, sizeof *w);
    w->dir = sl_strdup(dir);
    w->queue = q;
    return w;
}

/* queue_batch - up to max entries of queue/, fn for each queued id; false at its end */
static bool queue_batch(struct sl_spool_walk *w, size_t max, sl_spool_walk_fn *fn, void *ctx)
{
    struct dirent *e;

    for (size_t i = 0; i < max; i++) {
        if ((e = readdir(w->queue)) == NULL)
            return false;
        if (spool_queue_entry(w->dir, w->queue, e))
            fn(e->d_name, ctx);
    }
    return true;
}

/* state_batch - up to max entries of state/ swept; false at its end */
static bool state_batch(struct sl_spool_walk *w, size_t max)
{
    struct dirent *e;

    if (w->state == NULL)
        return false;
    for (size_t i = 0; i < max; i++) {
        if ((e = readdir(w->state)) == NULL)
            return false;
        spool_state_entry(w->dir, w->state_path, w->state, dirfd(w->queue), e);
    }
    return true;
}

/* start_state - queue/ is read: state/ comes next (none to sweep when it cannot be opened) */
static void start_state(struct sl_spool_walk *w)
{
    w->queue_done = true;
    if (spool_path(w->state_path, sizeof w->state_path, w->dir, SPOOL_STATE, NULL))
        w->state = opendir(w->state_path);
}

/* sl_spool_walk_step - up to max more directory entries; false once the walk is over */
bool sl_spool_walk_step(struct sl_spool_walk *w, size_t max, sl_spool_walk_fn *fn, void *ctx)
{
    if (!w->queue_done) {
        if (queue_batch(w, max, fn, ctx))
            return true;
        start_state(w);
        return true; /* state/ from the next step on */
    }
    return state_batch(w, max);
}

/* sl_spool_walk_close - its directories and itself (NULL: nothing) */
void sl_spool_walk_close(struct sl_spool_walk *w)
{
    if (w == NULL)
        return;
    if (w->state != NULL)
        closedir(w->state);
    closedir(w->queue);
    free(w->dir);
    free(w);
}
