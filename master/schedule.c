/*
 * schedule.c - the master's scheduler: delivery jobs out, outcomes back.
 *
 * Dispatch serves the queue index's round-robin ring of ready destinations
 * (binding x domain): the destination at the head gets one job of up to
 * SL_JOB_PARTS parts (oldest first), then goes to the ring's tail, so every
 * other ready destination has its turn before it gets the next one.  A worker
 * that keeps a connection open to the destination (it said "K") is preferred,
 * then an idle one, then one connected elsewhere (it closes that connection
 * first, or moves it to the new domain when both share the MX host).  Before a
 * new connection is asked for, the destination's counters are checked in the
 * shared table (sl_limits_room_cached, the cluster counters' local holds too), the units
 * promised to jobs whose workers have not taken them yet counted as in use (promise.c: one
 * pass hands a small limit's units out once, not to every free worker).  When one is
 * full:
 *  - a free worker whose open connection holds a unit of that counter and has
 *    no ready mail of its own gives it up at once: it takes the waiting
 *    destination's job (no slot sits idle while mail waits for it);
 *  - else the destination is held back (it waits for the counter) until a
 *    worker says "I" (a connection closed, counters released; after a
 *    refusal, only what it gave back: given_back); the waits are shown per
 *    counter in the shared table (shm/wait.c).
 * Fair turns: a worker connected to a destination with more mail is handed,
 * instead, the job of the destination that has waited longest for a counter
 * its connection holds; freed units go to the longest waiting first (the queue
 * puts released destinations at the ring's head in waiting order).
 * Outcomes (sl_worker.h) move each part on: final, deferred to the heap, back
 * to the front of its queue, or gone.  The spool stays the truth: a worker that
 * dies with a job simply has its parts queued again.
 * Trust boundary: worker messages come from our own children; they are parsed
 * defensively all the same, and a malformed one is logged and ignored.
 * Concurrency: master only, from the main loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/sl_clock.h"
#include "config/sl_limits.h"
#include "util/sl_msg.h"
#include "master/sl_pickup.h"
#include "master/sl_schedule.h"
#include "master/sl_shaping.h"
#include "spool/sl_spool.h"
#include "worker/sl_worker.h"

/* During the start scan's warm-up a destination goes once this many of its parts are indexed
 * (or it has a connection open): enough for a connection's first runs, and reached early in the
 * scan even when a backlog is spread over many domains (a whole job, SL_JOB_PARTS, is not). */
#define WARM_PARTS 64

/* Bytes of a crashed job's part list per warning line: a job's list (up to SL_JOB_PARTS
 * parts) goes over several lines rather than past the log's line length, which would cut it. */
#define CRASH_LINE 1200

/* Free workers found for one dispatch round. */
struct freelist {
    unsigned *conn; /* connected somewhere (said K) */
    unsigned *idle; /* no connection */
    size_t nconn, nidle;
};

/* now_ms - CLOCK_REALTIME milliseconds, the clock of the waits shown to the operator */
static uint64_t now_ms(void)
{
    return sl_clock_wall_us() / 1000u;
}

/* wait_end - d no longer waits for a counter */
static void wait_end(struct sl_sched *s, struct sl_qdest *d)
{
    if (d->wait_slot == UINT32_MAX)
        return;
    sl_shm_wait_end(s->shm, d->wait_slot, d->wait_since, now_ms(),
                    sl_shm_waiter_key(d->binding, d->domain));
    d->wait_slot = UINT32_MAX;
}

/* on_dest_idle - the queue's hook: a destination with no ready part waits for nothing */
static void on_dest_idle(struct sl_qdest *d, void *vs)
{
    wait_end(vs, d);
}

/* wait_begin - d waits for the counter in slot, from now unless it already did */
static void wait_begin(struct sl_sched *s, struct sl_qdest *d, uint32_t slot)
{
    if (d->wait_slot == slot)
        return;
    wait_end(s, d);
    d->wait_slot = slot;
    d->wait_since = now_ms();
    sl_shm_wait_begin(s->shm, slot, d->wait_since, sl_shm_waiter_key(d->binding, d->domain));
}

/* sl_sched_init - an empty scheduler */
void sl_sched_init(struct sl_sched *s, const char *spool)
{
    *s = (struct sl_sched){.q = sl_queue_new(), .spool = spool};
    sl_queue_set_idle_hook(s->q, on_dest_idle, s);
    sl_shaping_init(spool);
}

/* sl_sched_free - the index and everything in it */
void sl_sched_free(struct sl_sched *s)
{
    sl_pickup_forget(s);
    sl_kept_out_free(&s->kept_out);
    sl_spool_walk_close(s->rescan);
    s->rescan = NULL;
    sl_promise_free(&s->promises);
    sl_queue_free(s->q);
    s->q = NULL;
    sl_shaping_free();
}

/* now_seconds - UNIX time, the clock of the spool's next-attempt times */
static int64_t now_seconds(void)
{
    return (int64_t)time(NULL);
}

/* wake_within - look at the held-back destinations again within ms (a bucket refills, a
 * suspension ends), sooner than the safety net */
static void wake_within(struct sl_sched *s, long ms)
{
    if (ms < 0)
        return;
    if (!s->unblock_armed || sl_clock_ms_until(s->unblock) > ms) {
        s->unblock_armed = true;
        s->unblock = sl_clock_after_ms(ms);
    }
}

/* hold_back - dest's counter in slot is full: out of the ring until a connection closes */
static void hold_back(struct sl_sched *s, struct sl_qdest *d, uint32_t slot)
{
    d->gated = false; /* shaped() says when the gate's refusal holds for its connections */
    sl_queue_block(s->q, d);
    if (d->nready > 0 && slot != UINT32_MAX)
        wait_begin(s, d, slot);
    else /* a suspension: d waits for no counter now (nor is it the reason one is busy) */
        wait_end(s, d);
    if (!s->unblock_armed) {
        s->unblock_armed = true;
        s->unblock = sl_clock_after_ms(SL_SCHED_UNBLOCK_MS);
    }
    if (slot != UINT32_MAX) { /* a throttle's bucket: look again when it has a token */
        uint64_t us = sl_bucket_wait(s->shm, slot, sl_clock_us());
        if (us > 0)
            wake_within(s, (long)(us / 1000u) + 1);
    }
}

/* The counters freed, for waits_for. */
struct freed {
    const uint32_t *slot;
    uint32_t n;
};

/* waits_for - is d held back for one of the freed counters */
static bool waits_for(const struct sl_qdest *d, const void *arg)
{
    const struct freed *f = arg;

    for (uint32_t i = 0; i < f->n; i++)
        if (d->wait_slot == f->slot[i])
            return true;
    return false;
}

/* unblock_waiting - the destinations held back for a counter in slot[0..n) try again, before
 * the ring's others (which may want the same units): the longest waiting first */
static void unblock_waiting(struct sl_sched *s, const uint32_t *slot, uint32_t n)
{
    const struct freed f = {slot, n};

    if (n > 0)
        sl_queue_release_where(s->q, waits_for, &f);
}

/* end_promise - w's job is over: the counters it was promised and never took are free for
 * the mail that waited for them */
static void end_promise(struct sl_sched *s, struct sl_worker_slot *w)
{
    uint32_t freed[SL_RESV_MAX];

    if (s->shm != NULL)
        unblock_waiting(s, freed, sl_promise_end(&s->promises, s->shm, w, freed));
}

/* settle_promises - the promises of workers that tried to take their units end (the
 * counters one kept from others and never took are free again); how many ended */
static unsigned settle_promises(struct sl_sched *s, struct sl_supervisor *sup)
{
    uint32_t freed[SL_RESV_MAX];
    unsigned ended = 0;

    for (unsigned i = 0; i < sup->nw; i++) {
        struct sl_worker_slot *w = &sup->w[i];
        uint32_t had = w->npromised;

        unblock_waiting(s, freed, sl_promise_settle(&s->promises, s->shm, w, freed));
        ended += had > 0 && w->npromised == 0;
    }
    return ended;
}

/* resettled - a refusal by the counter in slot may be a worker's take counted twice (in the
 * table since this pass began, and still promised): true when settling the promises again
 * ended some, so the check is worth asking again */
static bool resettled(struct sl_sched *s, struct sl_supervisor *sup, uint32_t slot)
{
    const uint16_t *promised = sl_promise_counts(&s->promises);

    return promised != NULL && slot != UINT32_MAX && promised[slot] > 0 &&
           settle_promises(s, sup) > 0;
}

/* gate - the shaping gate's word on d, the connections promised to jobs not yet started
 * counted under an action's cap */
static bool gate(struct sl_sched *s, struct sl_supervisor *sup, const struct sl_config *cfg,
                 struct sl_qdest *d, bool newconn, struct sl_shaping_hold *h)
{
    const uint16_t *promised = sl_promise_counts(&s->promises);

    if (sl_shaping_gate(cfg, s->shm, d->binding, d->domain, &d->throttle, newconn, promised, h))
        return true;
    /* only a cap's refusal names a counter with promised units: nothing was taken before it */
    return resettled(s, sup, h->slot) &&
           sl_shaping_gate(cfg, s->shm, d->binding, d->domain, &d->throttle, newconn, promised, h);
}

/* shaped - the shaping gate holds d back (a suspension, an empty bucket, an action's cap:
 * master/shaping.c); newconn: the job would open a connection */
static bool shaped(struct sl_sched *s, struct sl_supervisor *sup, const struct sl_config *cfg,
                   struct sl_qdest *d, bool newconn)
{
    struct sl_shaping_hold h;

    if (gate(s, sup, cfg, d, newconn, &h)) {
        d->gated = false;
        return false;
    }
    sl_msg_debug("holding back %s %s: %s", d->binding, d->domain, h.why);
    hold_back(s, d, h.slot);
    /* Asked for a job on an open connection, the refusal holds for every job of d (a
     * suspension, a message bucket): its connections carry nothing.  One for a new connection
     * may be a connection cap or bucket only, which leaves them their mail. */
    d->gated = !newconn;
    wake_within(s, h.wake_ms);
    return true;
}

/* release_all - a connection closed: every held-back destination may try again */
static void release_all(struct sl_sched *s)
{
    sl_queue_unblock_all(s->q);
    s->unblock_armed = false;
}

/* usable - a current-generation worker that can take a delivery job now */
static bool usable(const struct sl_worker_slot *w, uint32_t gen)
{
    return w->pid != 0 && w->fd >= 0 && w->ready && !w->busy && !w->retiring && w->gen == gen;
}

/* collect_free - the round's free workers, split by whether they hold a connection */
static void collect_free(const struct sl_supervisor *sup, uint32_t gen, struct freelist *f)
{
    f->nconn = f->nidle = 0;
    for (unsigned i = 0; i < sup->nw; i++) {
        if (!usable(&sup->w[i], gen))
            continue;
        if (sup->w[i].conn != NULL)
            f->conn[f->nconn++] = i;
        else
            f->idle[f->nidle++] = i;
    }
}

/* take_at - remove entry i of a worker array (order does not matter) */
static unsigned take_at(unsigned *a, size_t *n, size_t i)
{
    unsigned w = a[i];
    a[i] = a[--*n];
    return w;
}

/* connected_to - a free worker connected to d, or -1 */
static int connected_to(const struct sl_supervisor *sup, struct freelist *f,
                        const struct sl_qdest *d)
{
    if (d->conns == 0)
        return -1;
    for (size_t i = 0; i < f->nconn; i++)
        if (sup->w[f->conn[i]].conn == d)
            return (int)take_at(f->conn, &f->nconn, i);
    return -1;
}

/* drop_conn - the worker no longer holds its connection */
static void drop_conn(struct sl_sched *s, struct sl_worker_slot *w)
{
    if (w->conn == NULL)
        return;
    sl_queue_conn_del(s->q, w->conn);
    w->conn = NULL;
}

/* job_end - worker w is free again after its job (its K or I), or dead: the job no longer
 * counts for its destination (which it kept alive until now) */
static void job_end(struct sl_sched *s, struct sl_worker_slot *w)
{
    struct sl_qdest *d = w->job_dest;

    w->job_dest = NULL;
    if (d != NULL)
        sl_queue_job_del(s->q, d);
}

/* job_begin - worker w's job for d is out: d counts it as a connection, opened or being
 * opened, until the worker is free again (its connection counts from its K) */
static void job_begin(struct sl_sched *s, struct sl_worker_slot *w, struct sl_qdest *d)
{
    job_end(s, w); /* never two: a worker gets a job only when free */
    w->job_dest = d;
    sl_queue_job_add(d);
}

/* spare - worker w's connection carries nothing now: its destination has no ready mail, or
 * the shaping gate holds that mail back (suspended, throttled) */
static bool spare(const struct sl_worker_slot *w)
{
    const struct sl_qdest *e = w->conn;
    return e != NULL && (e->nready == 0 || (e->gated && e->where == SL_QDEST_BLOCKED));
}

/* any_worker - an idle worker, else one connected elsewhere (its connection will close or
 * move), one whose destination has no ready mail first; -1 when none is free */
static int any_worker(struct sl_supervisor *sup, struct freelist *f)
{
    if (f->nidle > 0)
        return (int)take_at(f->idle, &f->nidle, f->nidle - 1);
    for (size_t i = f->nconn; i-- > 0;)
        if (spare(&sup->w[f->conn[i]]))
            return (int)take_at(f->conn, &f->nconn, i);
    if (f->nconn == 0)
        return -1;
    return (int)take_at(f->conn, &f->nconn, f->nconn - 1);
}

/* holds - does worker w's open connection hold a unit of the counter in slot */
static bool holds(struct sl_sched *s, const struct sl_config *cfg, const struct sl_worker_slot *w,
                  uint32_t slot)
{
    struct sl_qdest *e = w->conn;
    struct sl_counter_view v;

    if (e == NULL || sl_shm_view(s->shm, slot, &v) < 0)
        return false;
    switch (v.kind) {
    case SL_SCOPE_SERVER:
    case SL_SCOPE_RESERVE:
        return true; /* every connection holds one of the two */
    case SL_SCOPE_HOST:
        return strcasecmp(w->conn_mx, v.name) == 0;
    case SL_SCOPE_BINDING_HOST:
        return strcmp(e->binding, v.name) == 0 && strcasecmp(w->conn_mx, v.name2) == 0;
    default:
        return sl_limits_cache_has(cfg, s->shm, &e->room, e->binding, e->domain, slot);
    }
}

/* spare_holding - a free worker whose connection has nothing to carry and holds a unit of
 * the counter in slot (it will give it up for the waiting mail), or -1 */
static int spare_holding(struct sl_sched *s, const struct sl_config *cfg, struct sl_supervisor *sup,
                         struct freelist *f, uint32_t slot)
{
    for (size_t i = 0; i < f->nconn; i++)
        if (spare(&sup->w[f->conn[i]]) && holds(s, cfg, &sup->w[f->conn[i]], slot))
            return (int)take_at(f->conn, &f->nconn, i);
    return -1;
}

/* Which waiters may take a connection from older_waiter */
enum taker {
    UNCONNECTED_ONLY, /* a turn taken from d's mail: only one with no connection of its own */
    UNCONNECTED_FIRST /* d's spare connection: one with none first, else one that wants more */
};

/* older_waiter - the destination held back longest for a counter that worker w's connection
 * (to d) holds, as who allows; NULL when none.  d itself may wait too, for a second
 * connection: it has one, so the others go first.  "No connection" counts a job opening one:
 * a turn goes to one that has none, not to one that waits for one more (two destinations that
 * each want more would hand connections to and fro at every job's end, a new connection each
 * time).  One pass over the held-back list. */
static struct sl_qdest *older_waiter(struct sl_sched *s, const struct sl_config *cfg,
                                     const struct sl_worker_slot *w, const struct sl_qdest *d,
                                     enum taker who)
{
    struct sl_qdest *connected = NULL;

    for (struct sl_qdest *x = sl_queue_first_blocked(s->q); x != NULL;
         x = sl_queue_next_blocked(s->q, x)) {
        if (x == d || x->nready == 0 || x->wait_slot == UINT32_MAX ||
            !holds(s, cfg, w, x->wait_slot))
            continue;
        if (x->conns == 0 && x->jobs == 0)
            return x;
        if (who == UNCONNECTED_FIRST && connected == NULL)
            connected = x;
    }
    return connected;
}

/* job_takes - does a new connection to the destination take a unit of its counter e: a limited
 * one (the binding x domain counter always: the reserve rule reads its use), the reserve too
 * when the server counter looks full (via_reserve), as the worker may take it in its place.
 * The server unit is promised even then: the counter may look full while it is not (a
 * worker's take counted twice until its promise settles, a promised job that ends without its
 * take), and this job's worker then takes a server unit; without its promise that unit would
 * look free again once the other promise ended, and a second job be sent for it.  When the
 * counter is full indeed, the promise only counts above the limit until it settles. */
static bool job_takes(const struct sl_limits_counter *e, bool via_reserve)
{
    switch (e->kind) {
    case SL_SCOPE_BINDING_DOMAIN:
        return true;
    case SL_SCOPE_SERVER:
        return e->limit >= 0;
    case SL_SCOPE_RESERVE:
        return via_reserve && e->limit > 0;
    default:
        return e->limit >= 0;
    }
}

/* promise - worker w's job for d opens a connection (or moves w's own there): the counters of
 * d it will take that w's connection does not hold count as in use until it tries */
static void promise(struct sl_sched *s, const struct sl_config *cfg, struct sl_worker_slot *w,
                    struct sl_qdest *d)
{
    const uint16_t *counts = sl_promise_counts(&s->promises);
    uint32_t slot[SL_RESV_MAX], n = 0;
    bool via_reserve;

    /* a counter made for a pair whose mail this job takes whole would be a slot for nothing:
     * no second job follows in this pass (mail queued later may find it not made yet) */
    sl_limits_cache_resolve(cfg, s->shm, &d->room, d->binding, d->domain, d->nready > 0);
    via_reserve = sl_limits_server_free_cached(s->shm, &d->room, counts) == 0;
    for (uint32_t i = 0; i < d->room.n; i++) {
        const struct sl_limits_counter *e = &d->room.c[i];

        if (e->slot != UINT32_MAX && job_takes(e, via_reserve) && !holds(s, cfg, w, e->slot))
            slot[n++] = e->slot;
    }
    for (uint32_t i = 0; i < d->room.ncl && n < SL_RESV_MAX; i++) /* this node's holds */
        if (d->room.cl[i].slot != UINT32_MAX && !holds(s, cfg, w, d->room.cl[i].slot))
            slot[n++] = d->room.cl[i].slot;
    sl_promise_make(&s->promises, s->shm, w, slot, n);
}

/* room - may a new connection to d open now, the units promised to jobs not yet started
 * counted as in use?  Logs the refusal, which goes to *why. */
static bool room(struct sl_sched *s, struct sl_supervisor *sup, const struct sl_config *cfg,
                 struct sl_qdest *d, struct sl_refusal *why_out)
{
    const uint16_t *promised = sl_promise_counts(&s->promises);
    struct sl_refusal why;
    char use[64];

    if (sl_limits_room_cached(cfg, s->shm, &d->room, d->binding, d->domain, promised, &why) ||
        (resettled(s, sup, why.slot) &&
         sl_limits_room_cached(cfg, s->shm, &d->room, d->binding, d->domain, promised, &why)))
        return true;
    *why_out = why;
    if (why.limit < 0)
        sl_msg_debug("holding back %s %s: %s counter full (%s)", d->binding, d->domain,
                     sl_scope_kind_name(why.kind), sl_limits_use_text(&why, use, sizeof use));
    else
        sl_msg_debug("holding back %s %s: %s counter %s, limit %d", d->binding, d->domain,
                     sl_scope_kind_name(why.kind), sl_limits_use_text(&why, use, sizeof use),
                     why.limit);
    return false;
}

/* requeue_parts - a job that never reached its worker: its parts back, order kept */
static void requeue_parts(struct sl_sched *s, struct sl_qpart **p, size_t n)
{
    while (n > 0)
        sl_queue_requeue(s->q, p[--n]);
}

/* job_size - parts for the next job of a destination with ready parts: its
 * mail spread over every worker, so a destination can reach its connection
 * limit when it has the mail for it, and batched (up to SL_JOB_PARTS) when it
 * has far more, so the master's work per message stays small */
static size_t job_size(size_t ready, unsigned workers)
{
    size_t n = workers > 1 ? (ready + workers - 1) / workers : ready;

    return n < 1 ? 1 : n > SL_JOB_PARTS ? SL_JOB_PARTS : n;
}

/* units_free - the server counter's units free for d (as cached by its room check, promised
 * ones counted in use), at most one per worker: a connection is a worker's */
static uint32_t units_free(struct sl_sched *s, const struct sl_supervisor *sup, struct sl_qdest *d)
{
    uint32_t n = sl_limits_server_free_cached(s->shm, &d->room, sl_promise_counts(&s->promises));

    return n < sup->want ? n : sup->want;
}

/* wanted_elsewhere - destinations other than d, ready in the ring, would take the units d
 * takes: they number at least the units free (of the server counter, which they all share,
 * and at most one per worker), and at least one.  Those held back count in others_wait, for
 * d's counters only: one held back by a suspension or by its own limit wants nothing of d's. */
static bool wanted_elsewhere(struct sl_sched *s, const struct sl_supervisor *sup,
                             struct sl_qdest *d)
{
    uint32_t free_units = units_free(s, sup, d);
    size_t mine = d->where == SL_QDEST_RING ? 1 : 0, ring;

    ring = sl_queue_ring_upto(s->q, (size_t)free_units + 1 + mine);
    return ring > mine && ring - mine >= free_units;
}

/* others_wait - another destination waits for one of d's counters (its cache current): a
 * worker whose connection is spent gives the rest of its job back to it */
static bool others_wait(const struct sl_sched *s, const struct sl_qdest *d)
{
    uint32_t who = sl_shm_waiter_key(d->binding, d->domain);

    for (uint32_t i = 0; i < d->room.n; i++)
        if (d->room.c[i].slot != UINT32_MAX &&
            sl_shm_waited_by_other(s->shm, d->room.c[i].slot, who))
            return true;
    return false;
}

/* send_job - up to SL_JOB_PARTS of d's ready parts to worker w in one datagram; a
 * destination served over a contended counter (contended) gets a whole turn's worth, since
 * spreading its mail over workers could not open more connections anyway; where others wait
 * for its counters or want its units, a turn is at most what one connection carries
 * (max_deliveries_per_connection).  A part that was in a crashed job goes in a job of its own
 * (crashed_parts). */
static bool send_job(struct sl_sched *s, struct sl_supervisor *sup, const struct sl_config *cfg,
                     unsigned wi, struct sl_qdest *d, bool contended)
{
    struct sl_worker_slot *w = &sup->w[wi];
    struct sl_qpart *taken[SL_JOB_PARTS], *p;
    char job[SL_JOB_MAX];
    uint64_t id = ++s->last_job;
    int head = snprintf(job, sizeof job, "J%" PRIu64 " D %s %s", id, d->binding, d->domain);
    size_t len = (size_t)head, n = 0;

    size_t max = job_size(d->nready, contended ? 1 : sup->want);

    sl_limits_cache_current(cfg, s->shm, &d->room, d->binding, d->domain);
    /* not for contended alone: destinations held back by a suspension, a throttle or their
     * own limit make crowded() say so, and want nothing of d's.  Once d gave a host's counter
     * up to another destination (short_turns), its turns stay short until a reload or until
     * d has no mail left: the master cannot see who else wants that counter before they ask,
     * and a full job would come back. */
    if (d->room.turn > 0 && max > d->room.turn &&
        (d->room.short_turns || others_wait(s, d) || wanted_elsewhere(s, sup, d)))
        max = d->room.turn; /* a turn is what one connection carries: the rest would come back */
    if (head < 0 || len >= sizeof job)
        sl_msg_panic("job header for %s %s does not fit a datagram", d->binding, d->domain);
    while (n < max && (p = sl_queue_peek(d)) != NULL && !(n > 0 && p->crashes > 0)) {
        int t = p->attempts == 0 ? snprintf(job + len, sizeof job - len, " %s.%u%s", p->msg->id,
                                            p->k, p->fresh ? "+" : "")
                                 : snprintf(job + len, sizeof job - len, " %s.%u:%" PRIu32,
                                            p->msg->id, p->k, p->attempts);
        if (t >= 0 && len + (size_t)t < sizeof job && p->crashes > 0) /* recorded before the
                                                                          attempt (outcome.c) */
            t += snprintf(job + len + t, sizeof job - len - (size_t)t, "!%u", (unsigned)p->crashes);
        if (t < 0 || len + (size_t)t >= sizeof job)
            break;
        len += (size_t)t;
        taken[n++] = sl_queue_take(s->q, d, id);
        if (p->crashes > 0)
            break; /* a suspect goes alone (crashed_parts) */
    }
    if (w->conn != d) /* before the send: the worker may take its units at once */
        promise(s, cfg, w, d);
    w->had_conn = w->conn != NULL;
    if (w->conn == d)
        w->ntaken = 0; /* no promise: nothing of this job's take to remember */
    if (send(w->fd, job, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        int err = errno;

        sl_msg_warn("worker pid %ld did not take job %" PRIu64 ": %s", (long)w->pid, id,
                    strerror(err));
        end_promise(s, w);
        requeue_parts(s, taken, n);
        if (err != EAGAIN && err != EINTR) /* dying: the reap follows on SIGCHLD */
            sl_supervise_close(sup, w);
        return false;
    }
    /* A held-back d served on its own connection takes no unit: it still waits for another,
     * in its place among those that wait, for this connection may go to one that waited
     * longer (fair turns) and a spare one must then come back to d. */
    if (w->conn != d || d->where != SL_QDEST_BLOCKED)
        wait_end(s, d);
    if (w->conn != d)
        drop_conn(s, w); /* it closes that connection first, or moves it to d */
    w->busy = true;
    w->job = id;
    job_begin(s, w, d);
    free(w->parts);
    w->parts = sl_strdup(job + head + 1);
    s->jobs++;
    s->parts += n;
    sl_msg_debug("job %" PRIu64 " to worker pid %ld: %s %s, %zu parts", id, (long)w->pid,
                 d->binding, d->domain, n);
    return true;
}

/* serve_connected - worker wi, connected to d which has ready mail, takes d's next job;
 * unless a destination with no connection has waited longer for a counter its connection
 * holds: then that one gets the connection's units (fair turns) */
static void serve_connected(struct sl_sched *s, struct sl_supervisor *sup,
                            const struct sl_config *cfg, unsigned wi, struct sl_qdest *d)
{
    struct sl_qdest *x = older_waiter(s, cfg, &sup->w[wi], d, UNCONNECTED_ONLY);

    if (x != NULL && shaped(s, sup, cfg, x, true))
        x = NULL;
    if (x == NULL) {
        if (send_job(s, sup, cfg, wi, d, false))
            sl_queue_rotate(s->q, d);
        return;
    }
    sl_msg_debug("worker pid %ld leaves %s %s for %s %s, waiting longer", (long)sup->w[wi].pid,
                 d->binding, d->domain, x->binding, x->domain);
    if (send_job(s, sup, cfg, wi, x, true))
        sl_queue_unblock(s->q, x);
}

/* serve_connections - the free workers that hold a connection, before the ring's turn:
 *  - one connected to a held-back destination with ready mail takes its next job at once
 *    (it opens nothing, and the connection would otherwise sit idle until a slot frees);
 *  - one whose destination has nothing ready gives its units to the destination that has
 *    waited longest for a counter it holds (no slot sits idle while mail waits for it). */
static void serve_connections(struct sl_sched *s, struct sl_supervisor *sup,
                              const struct sl_config *cfg, struct freelist *f)
{
    if (sl_queue_blocked(s->q) == 0)
        return; /* nobody waits: the ring's turn decides */
    for (size_t i = 0; i < f->nconn;) {
        unsigned wi = f->conn[i];
        struct sl_qdest *d = sup->w[wi].conn, *x;

        if (d != NULL && d->where == SL_QDEST_BLOCKED && d->nready > 0 &&
            !shaped(s, sup, cfg, d, false)) {
            take_at(f->conn, &f->nconn, i);
            serve_connected(s, sup, cfg, wi, d);
        } else if (spare(&sup->w[wi]) &&
                   (x = older_waiter(s, cfg, &sup->w[wi], d, UNCONNECTED_FIRST)) != NULL &&
                   !shaped(s, sup, cfg, x, true)) {
            take_at(f->conn, &f->nconn, i);
            sl_msg_debug("%s %s takes over worker pid %ld's idle connection", x->binding, x->domain,
                         (long)sup->w[wi].pid);
            if (send_job(s, sup, cfg, wi, x, true))
                sl_queue_unblock(s->q, x);
        } else {
            i++;
        }
    }
}

/* crowded - d has at most a job's worth of mail, and spreading it over several new
 * connections would take connection units that other destinations want: the others ready or
 * held back number at least the units free, those of the server counter (which they all share)
 * and at most one per worker (a connection is a worker's).  Then d's new connection carries
 * its whole turn: one connection for a domain with a few messages, not one per message while
 * the rest wait for their turn.  A destination with more mail than a job still spreads, to
 * reach its own limit (a suspended or throttled destination counts among the others, and must
 * not make a big one slow). */
static bool crowded(struct sl_sched *s, const struct sl_supervisor *sup, struct sl_qdest *d)
{
    uint32_t free_units;
    size_t others;

    if (d->nready > SL_JOB_PARTS)
        return false;
    free_units = units_free(s, sup, d);
    others = sl_queue_blocked(s->q);
    if (others < free_units) { /* the ring holds d and the ready others */
        size_t ring = sl_queue_ring_upto(s->q, free_units - others + 1);
        others += ring > 0 ? ring - 1 : 0;
    }
    return others >= free_units;
}

/* serve - one turn of d, the ring's head: its own free connection, else a new one where the
 * counters allow, else the units of a spare connection that holds the full counter; else d
 * waits for that counter */
static void serve(struct sl_sched *s, struct sl_supervisor *sup, const struct sl_config *cfg,
                  struct freelist *f, struct sl_qdest *d)
{
    int w = connected_to(sup, f, d); /* reuses its connection: no new counter */
    struct sl_refusal why = {.slot = UINT32_MAX};

    if (w >= 0) {
        if (shaped(s, sup, cfg, d, false))
            f->conn[f->nconn++] = (unsigned)w; /* free for another destination */
        else
            serve_connected(s, sup, cfg, (unsigned)w, d);
        return;
    }
    if (room(s, sup, cfg, d, &why)) {
        if (shaped(s, sup, cfg, d, true))
            return;
        if ((w = any_worker(sup, f)) >= 0 &&
            send_job(s, sup, cfg, (unsigned)w, d, crowded(s, sup, d)))
            sl_queue_rotate(s->q, d);
        return;
    }
    if (why.slot != UINT32_MAX && (w = spare_holding(s, cfg, sup, f, why.slot)) >= 0) {
        if (shaped(s, sup, cfg, d, true)) {
            f->conn[f->nconn++] = (unsigned)w;
            return;
        }
        sl_msg_debug("%s %s takes over worker pid %ld's idle connection (%s full)", d->binding,
                     d->domain, (long)sup->w[w].pid, sl_scope_kind_name(why.kind));
        if (send_job(s, sup, cfg, (unsigned)w, d, true))
            sl_queue_rotate(s->q, d);
        return;
    }
    hold_back(s, d, why.slot);
}

/* next_to_serve - the ring's head; during the start scan's warm-up (warming), one with
 * WARM_PARTS of its mail indexed or a connection of its own open: the others wait at
 * the ring's tail.  *first is the first sent to wait in this pass; NULL when the ring came
 * back to it (nobody can go now). */
static struct sl_qdest *next_to_serve(struct sl_sched *s, bool warming, struct sl_qdest **first)
{
    struct sl_qdest *d;

    while ((d = sl_queue_next(s->q)) != NULL && warming && d->nready < WARM_PARTS &&
           d->conns == 0) {
        if (d == *first)
            return NULL;
        if (*first == NULL)
            *first = d;
        sl_queue_rotate(s->q, d);
    }
    return d;
}

/* sl_sched_dispatch - jobs to free workers while destinations are ready */
void sl_sched_dispatch(struct sl_sched *s, struct sl_supervisor *sup, const struct sl_config *cfg,
                       struct sl_shm *shm, uint32_t gen)
{
    struct freelist f;
    struct sl_qdest *d, *skip = NULL;
    bool warming;

    s->shm = shm;
    sl_shaping_use(cfg, shm); /* the rules and buckets of this generation, for worker replies */
    if (!s->draining && sl_pickup_pending(s))
        sl_pickup_step(s, SL_PICKUP_CHUNK); /* the start scan goes on between loop passes */
    if (s->draining || sup->nw == 0 || (sl_queue_next(s->q) == NULL && sl_queue_blocked(s->q) == 0))
        return;
    settle_promises(s, sup);
    f.conn = sl_malloc(sup->nw * sizeof *f.conn);
    f.idle = sl_malloc(sup->nw * sizeof *f.idle);
    collect_free(sup, gen, &f);
    serve_connections(s, sup, cfg, &f);
    warming = sl_pickup_warming(s);
    while (f.nconn + f.nidle > 0 && (d = next_to_serve(s, warming, &skip)) != NULL)
        serve(s, sup, cfg, &f, d);
    free(f.conn);
    free(f.idle);
}

/* sl_sched_parse_part - "<id>.<k>" of len bytes */
bool sl_sched_parse_part(const char *tok, size_t len, char *id, unsigned *k)
{
    const char *dot = memchr(tok, '.', len);
    char *end;
    unsigned long v;
    char num[8];
    size_t idlen, numlen;

    if (dot == NULL)
        return false;
    idlen = (size_t)(dot - tok);
    numlen = len - idlen - 1;
    if (idlen != SL_SPOOL_ID_LEN || numlen == 0 || numlen >= sizeof num)
        return false;
    memcpy(id, tok, idlen);
    id[idlen] = '\0';
    memcpy(num, dot + 1, numlen);
    num[numlen] = '\0';
    v = strtoul(num, &end, 10);
    if (*end != '\0' || num[0] < '0' || num[0] > '9' || v >= SL_SPOOL_PARTS_MAX)
        return false;
    *k = (unsigned)v;
    return sl_spool_id_valid(id);
}

/* inflight_part - the part "<id>.<k>" if it is in flight in job; NULL otherwise */
static struct sl_qpart *inflight_part(struct sl_sched *s, const char *tok, size_t len, uint64_t job)
{
    char id[SL_SPOOL_ID_LEN + 1];
    struct sl_qmsg *m;
    struct sl_qpart *p;
    unsigned k;

    if (!sl_sched_parse_part(tok, len, id, &k)) {
        sl_msg_warn("malformed part %.*s in job %" PRIu64, (int)len, tok, job);
        return NULL;
    }
    if ((m = sl_queue_find(s->q, id)) == NULL || k >= m->nparts)
        return NULL; /* dropped meanwhile (a sibling part was gone) */
    p = &m->part[k];
    if (p->state != SL_PART_INFLIGHT || p->job != job) {
        sl_msg_warn("outcome for %s.%u, which is not in job %" PRIu64, id, k, job);
        return NULL;
    }
    return p;
}

/* finished - a part is final; a message of several parts is removed after its last */
static void finished(struct sl_sched *s, struct sl_qpart *p)
{
    struct sl_qmsg *m = p->msg;
    char id[SL_SPOOL_ID_LEN + 1];
    size_t nparts = m->nparts;

    memcpy(id, m->id, sizeof id);
    if (!sl_queue_done(s->q, p)) /* m is freed when this was its last part */
        return;
    if (nparts > 1)
        sl_pickup_finished(s, id, nparts);
}

/* note_attempts - ":<n>" after a deferral's time, in [at, end): the attempts the worker counted.
 * Kept as a floor for the next job, since a worker that could not save the part's state (a
 * full disk) would otherwise start again from the spool's older count and never give up. */
static void note_attempts(struct sl_qpart *p, const char *at, const char *end)
{
    char *stop;
    unsigned long n;

    if (at >= end || *at != ':')
        return;
    n = strtoul(at + 1, &stop, 10);
    if (stop == end && stop != at + 1 && n <= UINT32_MAX && n > p->attempts)
        p->attempts = (uint32_t)n;
}

/* yielded_slot - the slot of a "y<slot>[h]" outcome (at: after the y), *sole when "h" (the
 * destination's only MX host); UINT32_MAX: none */
static uint32_t yielded_slot(const char *at, const char *end, bool *sole)
{
    char *stop;
    unsigned long slot;

    *sole = false;
    if (at >= end || *at < '0' || *at > '9')
        return UINT32_MAX;
    slot = strtoul(at, &stop, 10);
    if (stop < end && *stop == 'h') {
        *sole = true;
        stop++;
    }
    return stop == end && slot < UINT32_MAX ? (uint32_t)slot : UINT32_MAX;
}

/* learn_yield - what a "y<slot>[h]" outcome (at: after the y) tells of d's counters: a host's
 * one given up to another destination keeps d's turns short, and is d's own when the host is
 * its only MX host (sl_limits_cache_learn) */
static void learn_yield(struct sl_sched *s, struct sl_qdest *d, const char *at, const char *end)
{
    bool sole;
    uint32_t slot = yielded_slot(at, end, &sole);

    if (s->shm != NULL)
        sl_limits_cache_learn(s->shm, &d->room, slot, sole, true);
}

/* outcome - apply one "<id>.<k>=<o>" of job; false for "w" (not attempted: the counter
 * in slot refused, as the worker's "S" said; sole: the destination's only MX host's) */
static bool outcome(struct sl_sched *s, const char *tok, size_t len, uint64_t job, uint32_t slot,
                    bool sole)
{
    const char *eq = memchr(tok, '=', len);
    struct sl_qpart *p;
    char *end;
    long long due;

    if (eq == NULL || eq + 1 == tok + len) {
        sl_msg_warn("malformed outcome %.*s in job %" PRIu64, (int)len, tok, job);
        return true;
    }
    if ((p = inflight_part(s, tok, (size_t)(eq - tok), job)) == NULL)
        return true;
    switch (eq[1]) {
    case 'd':
        finished(s, p);
        break;
    case 'k': /* final, but its file could not be removed: never indexed again */
        sl_pickup_keep_out(s, p->msg->id, p->msg->nparts);
        finished(s, p);
        break;
    case 'f':
        due = strtoll(eq + 2, &end, 10);
        if (end == eq + 2 || (end != tok + len && *end != ':'))
            due = now_seconds(); /* unreadable time: try again soon rather than never */
        note_attempts(p, end, tok + len);
        sl_queue_defer(s->q, p, (int64_t)due);
        break;
    case 'w':
        sl_queue_requeue(s->q, p);
        if (s->shm != NULL)
            sl_limits_cache_learn(s->shm, &p->dest->room, slot, sole, false);
        hold_back(s, p->dest, slot);
        return false;
    case 'y': /* not attempted: its connection was spent and others wait for its units */
        learn_yield(s, p->dest, eq + 2, tok + len);
        sl_queue_requeue(s->q, p);
        break;
    case 'r': /* the worker could not read it now: try it again later, never forget it */
        sl_msg_warn("message %s part %u could not be read by a worker; tried again in %d s",
                    p->msg->id, p->k, SL_SCHED_REFUSED_S);
        sl_queue_defer(s->q, p, now_seconds() + SL_SCHED_REFUSED_S);
        break;
    case 'x':
        sl_msg_info("message %s left the spool (delivered elsewhere, or set aside)", p->msg->id);
        sl_queue_drop(s->q, p->msg);
        break;
    default:
        sl_msg_warn("unknown outcome %.*s in job %" PRIu64, (int)len, tok, job);
        sl_queue_requeue(s->q, p); /* the spool still says what is left */
        break;
    }
    return true;
}

/* parts_in_flight - the parts of w's job (its tokens as sent: "<id>.<k>", with ":<attempts>"
 * or "+", then "!<crashes>", after a part that has them) still in flight with it; n of them */
static size_t parts_in_flight(struct sl_sched *s, const struct sl_worker_slot *w,
                              struct sl_qpart **back)
{
    size_t n = 0;

    for (const char *t = w->parts; w->job != 0 && t != NULL && *t != '\0';) {
        size_t len;
        struct sl_qpart *p;
        char id[SL_SPOOL_ID_LEN + 1];
        struct sl_qmsg *m;
        unsigned k;

        t += strspn(t, " ");
        len = strcspn(t, " ");
        if (len > 0 && n < SL_JOB_PARTS && sl_sched_parse_part(t, strcspn(t, " :+!"), id, &k) &&
            (m = sl_queue_find(s->q, id)) != NULL && k < m->nparts &&
            (p = &m->part[k])->state == SL_PART_INFLIGHT && p->job == w->job)
            back[n++] = p;
        t += len;
    }
    return n;
}

/* unreported_parts - a job ended without an outcome for some of its parts (a worker that
 * could not read the job, or a bug): they wait as a part the worker could not read does, and
 * are never left in flight, where nothing would ever send them again */
static void unreported_parts(struct sl_sched *s, const struct sl_worker_slot *w)
{
    struct sl_qpart *left[SL_JOB_PARTS];
    size_t n = parts_in_flight(s, w, left);

    for (size_t i = 0; i < n; i++) {
        sl_msg_warn("job %" PRIu64 " (worker pid %ld) ended with no outcome for message %s part "
                    "%u; tried again in %d s",
                    w->job, (long)w->pid, left[i]->msg->id, left[i]->k, SL_SCHED_REFUSED_S);
        sl_queue_defer(s->q, left[i], now_seconds() + SL_SCHED_REFUSED_S);
    }
}

/* on_done - "D<job> <id>.<k>=<o> ..." */
static void on_done(struct sl_sched *s, struct sl_worker_slot *w, const char *msg)
{
    char *end;
    uint64_t job = strtoull(msg + 1, &end, 10);
    const char *t = end;

    if (end == msg + 1 || (*end != ' ' && *end != '\0')) {
        sl_msg_warn("worker pid %ld sent a malformed outcome", (long)w->pid);
        return;
    }
    sl_msg_debug("job %" PRIu64 " done by worker pid %ld:%s", job, (long)w->pid, t);
    if (job == w->job) /* first: mail it kept waiting goes, and a "w" below holds its own back */
        end_promise(s, w);
    while (*t != '\0') {
        size_t len;
        t += strspn(t, " ");
        len = strcspn(t, " ");
        if (len > 0 && !outcome(s, t, len, job, w->stuck_slot, w->stuck_sole)) {
            w->refused = true;
            w->refused_slot = w->stuck_slot;
        }
        t += len;
    }
    w->stuck_slot = UINT32_MAX;
    w->stuck_sole = false;
    if (job == w->job) {
        unreported_parts(s, w);
        w->job = 0;
        free(w->parts);
        w->parts = NULL;
    }
}

/* valid_name - a binding or domain name as a worker reports it */
static bool valid_name(const char *s, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* on_keep - "K <binding> <domain>": the worker keeps a connection to it, and is free */
static void on_keep(struct sl_sched *s, struct sl_supervisor *sup, unsigned wi, const char *msg)
{
    struct sl_worker_slot *w = &sup->w[wi];
    char binding[256], domain[256];
    const char *b = msg + 1 + strspn(msg + 1, " ");
    size_t bl = strcspn(b, " "), dl;
    const char *dom = b + bl + strspn(b + bl, " ");
    const char *mx;
    size_t ml;

    dl = strcspn(dom, " ");
    mx = dom + dl + strspn(dom + dl, " ");
    ml = strcspn(mx, " ");
    end_promise(s, w);
    drop_conn(s, w);
    w->busy = false;
    w->refused = false;
    if (!valid_name(b, bl) || !valid_name(dom, dl)) {
        sl_msg_warn("worker pid %ld sent a malformed K", (long)w->pid);
    } else {
        memcpy(binding, b, bl);
        binding[bl] = '\0';
        memcpy(domain, dom, dl);
        domain[dl] = '\0';
        w->conn = sl_queue_dest_get(s->q, binding, domain);
        sl_queue_conn_add(w->conn);
        if (ml >= sizeof w->conn_mx || !valid_name(mx, ml))
            ml = 0; /* the host is only a hint for the fair turns */
        memcpy(w->conn_mx, mx, ml);
        w->conn_mx[ml] = '\0';
    }
    if (w->job == 0) /* its job's count ends once the connection's own count began */
        job_end(s, w);
    sl_supervise_quit_if_retiring(sup, wi);
}

/* waits_elsewhere - is d held back for another counter than the one in *arg */
static bool waits_elsewhere(const struct sl_qdest *d, const void *arg)
{
    return d->wait_slot != *(const uint32_t *)arg;
}

/* release_others - a refused worker closed the connection it had: what it held is free, so
 * the destinations held back for any counter go, but those held back by the counter that
 * refused it (slot: tried again now, they would be refused in turn) */
static void release_others(struct sl_sched *s, uint32_t slot)
{
    sl_queue_release_where(s->q, waits_elsewhere, &slot);
}

/* given_back - the "I" of worker w after a refusal: it made room only if it closed the
 * connection it had when the job was handed out (to open another), or took its job's units
 * and gave them back (a cluster lease refused after the local counters were taken); the mail
 * waiting for those goes at once, not after the safety net.  A worker that was refused
 * without taking anything closed nothing: no new room, and no one is released for nothing.
 * Only the promised counters are known taken: mail waiting for a host counter the job also
 * took still waits for the next close or the safety net. */
static void given_back(struct sl_sched *s, struct sl_worker_slot *w)
{
    uint32_t slot[SL_RESV_MAX], n = 0;

    if (w->had_conn) {
        release_others(s, w->refused_slot);
        return;
    }
    for (uint32_t i = 0; i < w->ntaken; i++)
        if (w->taken[i] != w->refused_slot)
            slot[n++] = w->taken[i];
    unblock_waiting(s, slot, n);
}

/* on_idle - "I": the worker is free and holds no connection: counters were released.  An
 * "I" while its job is out (its "D" not yet in) crossed that job: the worker closed the
 * connection it kept (idle_timeout, a lost cluster lease) before it read the job, and runs the
 * job next.  The connection is gone, but the worker is not free: taken as free, it would be
 * sent a second job over the first, whose promise would count while the first one ran, and
 * whose parts alone would go back to the queue if it died, those of the first staying in
 * flight for ever. */
static void on_idle(struct sl_sched *s, struct sl_supervisor *sup, unsigned wi)
{
    struct sl_worker_slot *w = &sup->w[wi];

    if (w->job != 0) {
        drop_conn(s, w);
        release_all(s); /* a connection closed */
        return;
    }
    end_promise(s, w);
    drop_conn(s, w);
    job_end(s, w);
    w->busy = false;
    if (!w->refused)
        release_all(s);
    else
        given_back(s, w);
    w->refused = false;
    sl_supervise_quit_if_retiring(sup, wi);
}

/* on_stuck - "S <kind> <name> <name2> <slot>[h]": the counter that refused the worker's job
 * (h: the destination's only MX host's) */
static void on_stuck(struct sl_worker_slot *w, const char *msg, size_t len)
{
    const char *last = memrchr(msg, ' ', len);
    char *end;
    unsigned long slot = last != NULL ? strtoul(last + 1, &end, 10) : 0;
    bool sole;

    sl_msg_debug("worker pid %ld: refused by counter %.*s", (long)w->pid, (int)len - 1, msg + 1);
    if (last == NULL || end == last + 1 || slot >= UINT32_MAX)
        return;
    sole = *end == 'h';
    if (end + sole != msg + len)
        return;
    w->stuck_slot = (uint32_t)slot;
    w->stuck_sole = sole;
}

/* on_new - "N <id>": a worker queued a message (a bounce) */
static void on_new(struct sl_sched *s, const char *msg)
{
    const char *id = msg + 1 + strspn(msg + 1, " ");

    if (!sl_spool_id_valid(id)) {
        sl_msg_warn("a worker announced a malformed queue id");
        return;
    }
    sl_pickup_new(s, id);
}

/* sl_sched_from_worker - one message of worker wi */
void sl_sched_from_worker(struct sl_sched *s, struct sl_supervisor *sup, unsigned wi,
                          const char *msg, size_t len)
{
    struct sl_worker_slot *w = &sup->w[wi];

    if (len == 0)
        return;
    switch (msg[0]) {
    case SL_WMSG_DONE:
        on_done(s, w, msg);
        break;
    case SL_WMSG_KEEP:
        on_keep(s, sup, wi, msg);
        break;
    case SL_WMSG_IDLE:
        on_idle(s, sup, wi);
        break;
    case SL_WMSG_NEW:
        on_new(s, msg);
        break;
    case SL_WMSG_STUCK:
        on_stuck(w, msg, len);
        break;
    case SL_WMSG_REPLY: /* for the [shaping] rules; an action taken lets nothing new go */
        sl_shaping_reply(msg, len);
        break;
    default:
        sl_msg_warn("worker pid %ld sent an unknown message 0x%02x", (long)w->pid,
                    (unsigned char)msg[0]);
        break;
    }
}

/* line_of_parts - the length of the first warning line of the part list s: all of it when it
 * fits CRASH_LINE, else up to the last space that does (whole parts on each line) */
static size_t line_of_parts(const char *s)
{
    size_t at = strlen(s);

    if (at <= CRASH_LINE)
        return at;
    for (at = CRASH_LINE; at > 0 && s[at] != ' ';)
        at--;
    return at > 0 ? at : CRASH_LINE;
}

/* suspects_named - what the crash tells of its parts: each goes alone from now on, and a part
 * that was alone when its worker died is almost surely why */
static void suspects_named(const struct sl_worker_slot *w, struct sl_qpart *const *p, size_t n)
{
    if (n > 1)
        sl_msg_warn("job %" PRIu64 " (worker pid %ld): each of its %zu parts goes in a job of "
                    "its own from now on, so that one that kills workers takes no other down",
                    w->job, (long)w->pid, n);
    else if (n == 1)
        sl_msg_warn("job %" PRIu64 " (worker pid %ld): part %s.%u was alone in it, and has now "
                    "been in %u crashed jobs: most likely it is what kills workers",
                    w->job, (long)w->pid, p[0]->msg->id, p[0]->k, (unsigned)p[0]->crashes);
}

/* crashed_parts - the parts of a worker that died of its own doing wait SL_SCHED_CRASHED_S:
 * one of them may be what kills a worker (a message that trips a bug, a reply that does), and
 * handed out again at once it would kill worker after worker, each perhaps after the peer
 * took the message, so its recipients would get it again and again; the parts of a worker
 * killed from outside (an operator, the OOM killer) go back at once.  Each is a suspect from
 * then on and goes in a job of its own (send_job): sent together again, the one that kills
 * would take the others down with it at every retry, and none would ever be delivered; alone,
 * the innocent go through and only the guilty one keeps waiting. */
static void crashed_parts(struct sl_sched *s, const struct sl_worker_slot *w, struct sl_qpart **p,
                          size_t n)
{
    int64_t due = now_seconds() + SL_SCHED_CRASHED_S;
    size_t cut = line_of_parts(w->parts);

    for (size_t i = 0; i < n; i++)
        if (p[i]->crashes < SL_QPART_CRASHES_MAX)
            p[i]->crashes++;

    sl_msg_warn("worker pid %ld died of its own doing with job %" PRIu64
                ": its %zu parts wait %d s, in case one of them is why: %.*s",
                (long)w->pid, w->job, n, SL_SCHED_CRASHED_S, (int)cut, w->parts);
    for (const char *rest = w->parts + cut; *rest != '\0'; rest += cut) {
        rest += strspn(rest, " ");
        if (*rest == '\0')
            break;
        cut = line_of_parts(rest);
        sl_msg_warn("job %" PRIu64 " (worker pid %ld) also held: %.*s", w->job, (long)w->pid,
                    (int)cut, rest);
    }
    suspects_named(w, p, n);
    while (n > 0)
        sl_queue_defer(s->q, p[--n], due);
}

/* count_crash - a worker died of its own doing with n parts, for sluicectl metrics */
static void count_crash(struct sl_sched *s, size_t n)
{
    if (s->shm == NULL || s->shm->hdr == NULL)
        return; /* nothing dispatched yet: no job either */
    sl_stat_inc64(&s->shm->hdr->worker_crashes);
    sl_add64(&s->shm->hdr->crashed_parts, n);
}

/* sl_sched_worker_exit - a dead worker's job goes back to the queues, in order */
void sl_sched_worker_exit(struct sl_worker_slot *w, int status, void *vs)
{
    struct sl_sched *s = vs;
    struct sl_qpart *back[SL_JOB_PARTS];
    size_t n = parts_in_flight(s, w, back);
    bool own = sl_supervise_own_death(status);

    if (own)
        count_crash(s, n);
    if (n > 0 && own) {
        crashed_parts(s, w, back, n);
    } else {
        if (n > 0)
            sl_msg_info("worker pid %ld died with job %" PRIu64 ": %zu parts queued again",
                        (long)w->pid, w->job, n);
        requeue_parts(s, back, n);
    }
    free(w->parts);
    w->parts = NULL;
    w->job = 0;
    end_promise(s, w);
    drop_conn(s, w);
    job_end(s, w);
    release_all(s); /* its counters were reclaimed */
}

/* sl_sched_limits_changed - new limits: every held-back destination tries again */
void sl_sched_limits_changed(struct sl_sched *s)
{
    release_all(s);
}

/* sl_sched_tick - deferred parts that are due, and the held-back safety net */
void sl_sched_tick(struct sl_sched *s)
{
    sl_queue_release_due(s->q, now_seconds());
    if (sl_shaping_tick(now_seconds()))
        release_all(s); /* a suspension ended: its destinations go again */
    if (s->unblock_armed && sl_clock_ms_until(s->unblock) == 0)
        release_all(s);
}

/* sl_sched_wait_ms - how long the main loop may sleep before sl_sched_tick has work (the
 * drain's loop does not ask: it runs no tick) */
long sl_sched_wait_ms(const struct sl_sched *s)
{
    int64_t due = sl_queue_next_due(s->q);
    long wait = -1;

    if (sl_pickup_pending(s))
        return 0; /* the start scan has more to index */
    if (s->rescan != NULL)
        return 0; /* and so has a rescan */
    if (due != INT64_MAX) {
        struct timespec now;
        int64_t ms;
        clock_gettime(CLOCK_REALTIME, &now);
        ms = due > INT64_MAX / 1000
                 ? INT64_MAX /* no overflow, whatever a file said */
                 : due * 1000 - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        wait = ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (long)ms;
    }
    if (s->unblock_armed) {
        long u = sl_clock_ms_until(s->unblock);
        if (wait < 0 || u < wait)
            wait = u;
    }
    return wait;
}
