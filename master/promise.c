/*
 * promise.c - connection units promised to jobs between dispatch and the worker's take.
 *
 * A promise is the list of counter slots a job's connection will take, kept in
 * the worker's slot with its owner record's acquired and refused figures at
 * dispatch; the per-slot sums are in one array the room check adds to each
 * counter's use.  The figures are read from the counter table, where the
 * worker counts each reservation after its units are taken (shm/resv.c): once
 * acquired moved, the units are in the table and the promise would count them
 * twice; once refused moved, they were never taken.  Between a worker's take and the next
 * settle its units count twice, so the scheduler settles again before it holds mail back for
 * a counter with promised units (schedule.c, room); what is left is the instant between the
 * worker's counts and its acquired figure, after which mail held back then waits for the next
 * connection to close or the scheduler's safety net (SL_SCHED_UNBLOCK_MS).
 * Not covered: a worker connected elsewhere promises only what its connection does not hold
 * (it may move the connection, keeping those); when it closes and reopens instead, the units
 * it held are free in the table until its new take.
 * A promise that ended taken leaves its counters in the worker's slot (taken): if the job is
 * then refused (a cluster lease refused after the local counters were taken) and the worker
 * goes idle, it gave them back, and the scheduler releases the mail that waits for them.
 * Concurrency: master only; the figures are read with relaxed atomic loads.
 */
#include <stdlib.h>
#include <string.h>

#include "util/sl_msg.h"
#include "master/sl_promise.h"

/* figures - the owner's acquired and refused figures */
static void figures(const struct sl_shm *shm, const struct sl_worker_slot *w, uint64_t *acquired,
                    uint64_t *refused)
{
    const struct sl_shm_owner *o = &shm->owners[w->owner];

    *acquired = sl_peek64(&o->acquired);
    *refused = sl_peek64(&o->refused);
}

/* sl_promise_free - the sums */
void sl_promise_free(struct sl_promises *p)
{
    free(p->n);
    *p = (struct sl_promises){0};
}

/* sl_promise_counts - the sums by slot, or NULL */
const uint16_t *sl_promise_counts(const struct sl_promises *p)
{
    return p->n;
}

/* sl_promise_make - w's job will take a unit of each counter in slot[0..n) */
void sl_promise_make(struct sl_promises *p, const struct sl_shm *shm, struct sl_worker_slot *w,
                     const uint32_t *slot, uint32_t n)
{
    if (w->npromised > 0)
        sl_msg_panic("worker pid %ld promised units twice", (long)w->pid);
    w->ntaken = 0;
    if (p->n == NULL) {
        p->cap = shm->hdr->slot_capacity;
        p->n = calloc(p->cap, sizeof *p->n);
        if (p->n == NULL)
            sl_msg_panic("out of memory for %u promise counts", p->cap);
    }
    for (uint32_t i = 0; i < n && w->npromised < SL_RESV_MAX; i++) {
        if (slot[i] >= p->cap || p->n[slot[i]] == UINT16_MAX)
            continue;
        p->n[slot[i]]++;
        w->promised[w->npromised++] = slot[i];
    }
    figures(shm, w, &w->promise_acquired, &w->promise_refused);
}

/* drop - w's units out of the sums; their slots into freed when not NULL, and how many */
static uint32_t drop(struct sl_promises *p, struct sl_worker_slot *w, uint32_t *freed)
{
    uint32_t n = w->npromised;

    for (uint32_t i = 0; i < n; i++) {
        p->n[w->promised[i]]--;
        if (freed != NULL)
            freed[i] = w->promised[i];
    }
    w->npromised = 0;
    return freed != NULL ? n : 0;
}

/* sl_promise_end - end w's promise now; the slots into freed when it never took them */
uint32_t sl_promise_end(struct sl_promises *p, const struct sl_shm *shm, struct sl_worker_slot *w,
                        uint32_t freed[SL_RESV_MAX])
{
    uint64_t acquired, refused;

    if (w->npromised == 0)
        return 0;
    figures(shm, w, &acquired, &refused);
    if (acquired == w->promise_acquired)
        return drop(p, w, freed);
    memcpy(w->taken, w->promised, w->npromised * sizeof *w->taken); /* the job's own, now */
    w->ntaken = w->npromised;
    return drop(p, w, NULL);
}

/* sl_promise_settle - end w's promise once it tried to take the units (taken: the table counts
 * them now; refused: they are free) */
uint32_t sl_promise_settle(struct sl_promises *p, const struct sl_shm *shm,
                           struct sl_worker_slot *w, uint32_t freed[SL_RESV_MAX])
{
    uint64_t acquired, refused;

    if (w->npromised == 0)
        return 0;
    figures(shm, w, &acquired, &refused);
    if (acquired == w->promise_acquired && refused == w->promise_refused)
        return 0; /* not tried yet */
    return sl_promise_end(p, shm, w, freed);
}
