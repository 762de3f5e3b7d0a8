/*
 * readahead.c - the start scan's envelope reads, ahead of the master, on a thread of its own.
 *
 * After a restart with a backlog, the master reads every queued envelope before the turns of
 * the destinations can be planned (sl_pickup_warming): one open and read after another on
 * one CPU, while the others idle, for the workers have nothing yet.  A read-ahead thread
 * reads the envelopes of the same listing in the same order; the master takes each one it
 * finds read instead of reading it, and reads one the thread has not started itself (the
 * thread then skips it).  So the two share the reads, and each envelope is read once, but
 * for the one the master reaches while the thread is still reading it: the master never
 * waits for the thread, which a busy machine (every worker starting its delivery) can leave
 * off its CPU for milliseconds, while the master's loop, which hands out the jobs, would
 * stand still.  It reads that one itself too, and the thread drops its own read.  The
 * thread works half a ring ahead, and jumps there again whenever the master comes within GAP
 * of it: were it to read the very entry the master needs next, the master would read each
 * of those again, and nothing would be shared.
 * Each entry of the listing has a state word: FREE, READING (claimed by the thread), READY
 * (its result waits in the ring), TAKEN (the master passed it, read by either).  A claim is
 * one compare-and-swap on that word, and so is the end of the thread's read (READING to
 * READY, which fails when the master took it meanwhile).  The thread stays at most RING
 * entries ahead of the master, whose results wait in a ring of that size.
 * The thread is inside the fork gate (util/sl_fork.h) while it reads a spool file, and the
 * master forks only outside it: a worker never inherits the descriptor of a message it may
 * delete, nor a lock the read held.  The
 * thread blocks every signal, so the master's handlers (signals.c) run on the master's own
 * thread and interrupt its wait as before; and it logs nothing: a failed read goes to the
 * master with its result, and the master reports it as if it had read the file itself (only
 * an allocation failure ends the daemon from here, as it would from any other place).
 * A result read ahead is as old as its read: the master stops the thread as soon as a message
 * of the listing is indexed out of turn (sl_pickup_id), which is the only way a listed file
 * can change or go before the scan reaches it.
 * Concurrency: this thread and the master; the listing is read-only while both run
 * (sl_readahead_stop joins the thread before the master frees it).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "util/sl_atomic.h"
#include "util/sl_fork.h"
#include "util/sl_msg.h"
#include "master/sl_readahead.h"

#define RING        1024   /* entries the thread may read ahead of the master */
#define GAP         64     /* entries the thread leaves between the master and its next read */
#define AHEAD_SLEEP 500000 /* ns the thread waits when it is RING ahead */

enum { FREE, READING, READY, TAKEN };

/* One envelope read ahead. */
struct result {
    int rc, err_no;
    char err[256];
    struct sl_spool_msg m;
};

struct sl_readahead {
    pthread_t thread;
    char *dir;
    const struct sl_spool_ids *ids;
    size_t from;
    sl_atomic_u32 *state; /* one per entry of the listing */
    sl_atomic_u64 taken;  /* the master's next entry: all before it are TAKEN */
    sl_atomic_u32 stop;
    size_t dropped; /* reads the master took over (the thread's own, read after its join) */
    struct result ring[RING];
};

/* wait_for_room - false when told to stop while RING ahead of the master */
static bool wait_for_room(struct sl_readahead *r, size_t i)
{
    const struct timespec nap = {.tv_nsec = AHEAD_SLEEP};

    while (i >= sl_load64(&r->taken) + RING) {
        if (sl_load32(&r->stop))
            return false;
        nanosleep(&nap, NULL);
    }
    return true;
}

/* read_entry - the thread's read of entry i (claimed: READING) into its place in the ring;
 * dropped when the master took the entry meanwhile (it read it itself) */
static void read_entry(struct sl_readahead *r, size_t i)
{
    struct result *res = &r->ring[i % RING];
    uint32_t reading = READING;

    sl_fork_gate_enter();
    res->rc = sl_spool_read(r->dir, r->ids->id[i], &res->m, res->err, sizeof res->err);
    res->err_no = errno;
    if (!sl_cas32(&r->state[i], &reading, READY)) {
        r->dropped++;
        if (res->rc == 0)
            sl_spool_msg_free(&res->m);
    }
    sl_fork_gate_leave();
}

/* run - the thread: FREE entries from r->from on, in order, never within GAP of the master */
static void *run(void *arg)
{
    struct sl_readahead *r = arg;

    for (size_t i = r->from + RING / 2; i < r->ids->n && !sl_load32(&r->stop); i++) {
        uint32_t expect = FREE;
        size_t taken;

        if (!wait_for_room(r, i))
            break;
        taken = sl_load64(&r->taken); /* after the wait: the master may have come close */
        if (i < taken + GAP) /* it caught up: it reads the next ones, this thread further on */
            i = taken + RING / 2;
        if (i >= r->ids->n)
            break;
        if (!sl_cas32(&r->state[i], &expect, READING))
            continue; /* the master took it */
        read_entry(r, i);
    }
    /* The end of a thread allocates and frees: it waits for the join, when the loop, the
     * thread that forks, waits for it (sl_fork.h). */
    while (!sl_load32(&r->stop)) {
        const struct timespec nap = {.tv_nsec = AHEAD_SLEEP};
        nanosleep(&nap, NULL);
    }
    return NULL;
}

/* sl_readahead_start - a thread reading ids[from..] ahead */
struct sl_readahead *sl_readahead_start(const char *dir, const struct sl_spool_ids *ids,
                                        size_t from)
{
    struct sl_readahead *r = sl_calloc(1, sizeof *r);
    sigset_t all, old;
    int e;

    r->dir = sl_strdup(dir);
    r->ids = ids;
    r->from = from;
    r->state = sl_calloc(ids->n > 0 ? ids->n : 1, sizeof *r->state);
    sl_store64(&r->taken, from);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread starts with every signal blocked */
    e = sl_fork_thread_create(&r->thread, NULL, run, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        sl_msg_warn("start scan: no read-ahead thread (%s): the master reads alone", strerror(e));
        free(r->state);
        free(r->dir);
        free(r);
        return NULL;
    }
    return r;
}

/* thread_read - did the thread read entry i (READY: its result is the caller's to take)?
 * An entry still FREE, or still READING, is the caller's to read: taken here all the same
 * (the thread skips it, or drops the read it has in hand) */
static bool thread_read(struct sl_readahead *r, size_t i)
{
    uint32_t s = FREE;

    if (sl_cas32(&r->state[i], &s, TAKEN))
        return false;
    return s == READY || !sl_cas32(&r->state[i], &s, TAKEN); /* READY since it looked */
}

/* sl_readahead_take - entry i: read ahead, or the caller's to read */
int sl_readahead_take(struct sl_readahead *r, size_t i, struct sl_spool_msg *m, char *err,
                      size_t errlen)
{
    int got = 0;

    if (r == NULL || i < r->from || i >= r->ids->n)
        return 0;
    if (thread_read(r, i)) {
        struct result *res = &r->ring[i % RING];
        *m = res->m;
        got = res->rc == 0 ? 1 : -1;
        if (got < 0) {
            strlcpy(err, res->err, errlen);
            errno = res->err_no;
        }
        sl_store32(&r->state[i], TAKEN);
    }
    sl_store64(&r->taken, i + 1);
    return got;
}

/* sl_readahead_stop - join, and free the envelopes not taken */
size_t sl_readahead_stop(struct sl_readahead *r)
{
    size_t from, dropped;

    if (r == NULL)
        return 0;
    sl_store32(&r->stop, 1);
    pthread_join(r->thread, NULL);
    from = sl_load64(&r->taken);
    for (size_t i = from; i < r->ids->n && i < from + RING; i++)
        if (sl_load32(&r->state[i]) == READY && r->ring[i % RING].rc == 0)
            sl_spool_msg_free(&r->ring[i % RING].m);
    dropped = r->dropped;
    free(r->state);
    free(r->dir);
    free(r);
    return dropped;
}
