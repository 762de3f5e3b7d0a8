/*
 * schedule.c - the master's scheduler: delivery jobs out, outcomes back.
 *
 * Dispatch serves the queue index's round-robin ring of ready destinations
 * (binding x domain): the destination at the head gets one job of up to
 * SL_JOB_PARTS parts (oldest first), then goes to the ring's tail, so every
 * other ready destination has its turn before it gets the next one.  A worker
 * that keeps a connection open to the destination (it said "K") is preferred,
 * then an idle one, then one connected elsewhere (it closes that connection
 * first).  Before a new connection is asked for, the destination's counters are
 * checked in the shared table (sl_limits_dest_room_cached); a full one holds the
 * destination back until a worker says "I" (a connection closed, counters
 * released) or SL_SCHED_UNBLOCK_MS passed.
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
#include <sys/socket.h>
#include <unistd.h>

#include "util/sl_clock.h"
#include "config/sl_limits.h"
#include "util/sl_msg.h"
#include "master/sl_pickup.h"
#include "master/sl_schedule.h"
#include "spool/sl_spool.h"
#include "worker/sl_worker.h"

/* Free workers found for one dispatch round. */
struct freelist {
    unsigned *conn; /* connected somewhere (said K) */
    unsigned *idle; /* no connection */
    size_t nconn, nidle;
};

/* sl_sched_init - an empty scheduler */
void sl_sched_init(struct sl_sched *s, const char *spool)
{
    *s = (struct sl_sched){.q = sl_queue_new(), .spool = spool};
}

/* sl_sched_free - the index and everything in it */
void sl_sched_free(struct sl_sched *s)
{
    sl_pickup_forget(s);
    sl_queue_free(s->q);
    s->q = NULL;
}

/* now_seconds - UNIX time, the clock of the spool's next-attempt times */
static int64_t now_seconds(void)
{
    return (int64_t)time(NULL);
}

/* hold_back - dest's counters are full: out of the ring until a connection closes */
static void hold_back(struct sl_sched *s, struct sl_qdest *d)
{
    sl_queue_block(s->q, d);
    if (!s->unblock_armed) {
        s->unblock_armed = true;
        s->unblock = sl_clock_after_ms(SL_SCHED_UNBLOCK_MS);
    }
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

/* any_worker - an idle worker, else one connected elsewhere (its connection will close), or -1 */
static int any_worker(struct sl_sched *s, struct sl_supervisor *sup, struct freelist *f)
{
    unsigned w;

    if (f->nidle > 0)
        return (int)take_at(f->idle, &f->nidle, f->nidle - 1);
    if (f->nconn == 0)
        return -1;
    w = take_at(f->conn, &f->nconn, f->nconn - 1);
    drop_conn(s, &sup->w[w]);
    return (int)w;
}

/* room - may a new connection to d open now?  Logs the refusal. */
static bool room(const struct sl_config *cfg, const struct sl_shm *shm, struct sl_qdest *d)
{
    struct sl_refusal why;

    if (sl_limits_dest_room_cached(cfg, shm, &d->room, d->binding, d->domain, &why))
        return true;
    if (why.limit < 0)
        sl_msg_debug("holding back %s %s: %s counter full (%u in use)", d->binding, d->domain,
                     sl_scope_kind_name(why.kind), why.in_use);
    else
        sl_msg_debug("holding back %s %s: %s counter %u in use, limit %d", d->binding, d->domain,
                     sl_scope_kind_name(why.kind), why.in_use, why.limit);
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
    size_t n = workers > 0 ? (ready + workers - 1) / workers : ready;

    return n < 1 ? 1 : n > SL_JOB_PARTS ? SL_JOB_PARTS : n;
}

/* send_job - up to SL_JOB_PARTS of d's ready parts to worker w in one datagram */
static bool send_job(struct sl_sched *s, struct sl_supervisor *sup, unsigned wi, struct sl_qdest *d)
{
    struct sl_worker_slot *w = &sup->w[wi];
    struct sl_qpart *taken[SL_JOB_PARTS], *p;
    char job[SL_JOB_MAX];
    uint64_t id = ++s->last_job;
    int head = snprintf(job, sizeof job, "J%" PRIu64 " D %s %s", id, d->binding, d->domain);
    size_t len = (size_t)head, n = 0;

    size_t max = job_size(d->nready, sup->want);

    if (head < 0 || len >= sizeof job)
        sl_msg_panic("job header for %s %s does not fit a datagram", d->binding, d->domain);
    while (n < max && (p = sl_queue_peek(d)) != NULL) {
        int t = snprintf(job + len, sizeof job - len, " %s.%u", p->msg->id, p->k);
        if (t < 0 || len + (size_t)t >= sizeof job)
            break;
        len += (size_t)t;
        taken[n++] = sl_queue_take(s->q, d, id);
    }
    if (send(w->fd, job, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        sl_msg_warn("worker pid %ld did not take job %" PRIu64 ": %s", (long)w->pid, id,
                    strerror(errno));
        requeue_parts(s, taken, n);
        if (errno != EAGAIN && errno != EINTR) { /* dying: the reap follows on SIGCHLD */
            close(w->fd);
            w->fd = -1;
        }
        return false;
    }
    w->busy = true;
    w->job = id;
    free(w->parts);
    w->parts = sl_strdup(job + head + 1);
    s->jobs++;
    s->parts += n;
    sl_msg_debug("job %" PRIu64 " to worker pid %ld: %s %s, %zu parts", id, (long)w->pid,
                 d->binding, d->domain, n);
    return true;
}

/* serve_held_back - a destination held back (a counter full) takes no new
 * connection, but a worker already connected to it takes its next job at
 * once: that job opens nothing, and the connection would otherwise sit idle
 * until a slot frees somewhere */
static void serve_held_back(struct sl_sched *s, struct sl_supervisor *sup, struct freelist *f)
{
    for (size_t i = 0; i < f->nconn;) {
        unsigned wi = f->conn[i];
        struct sl_qdest *d = sup->w[wi].conn;

        if (d == NULL || d->where != SL_QDEST_BLOCKED || d->nready == 0) {
            i++;
            continue;
        }
        take_at(f->conn, &f->nconn, i);
        send_job(s, sup, wi, d);
    }
}

/* sl_sched_dispatch - jobs to free workers while destinations are ready */
void sl_sched_dispatch(struct sl_sched *s, struct sl_supervisor *sup, const struct sl_config *cfg,
                       const struct sl_shm *shm, uint32_t gen)
{
    struct freelist f;
    struct sl_qdest *d;

    if (!s->draining && sl_pickup_pending(s))
        sl_pickup_step(s, SL_PICKUP_CHUNK); /* the start scan goes on between loop passes */
    if (s->draining || sup->nw == 0 || (sl_queue_next(s->q) == NULL && sl_queue_blocked(s->q) == 0))
        return;
    f.conn = sl_malloc(sup->nw * sizeof *f.conn);
    f.idle = sl_malloc(sup->nw * sizeof *f.idle);
    collect_free(sup, gen, &f);
    serve_held_back(s, sup, &f);
    while ((d = sl_queue_next(s->q)) != NULL && f.nconn + f.nidle > 0) {
        int w = connected_to(sup, &f, d); /* reuses its connection: no new counter */

        if (w < 0 && !room(cfg, shm, d)) {
            hold_back(s, d);
            continue;
        }
        if (w < 0)
            w = any_worker(s, sup, &f);
        if (send_job(s, sup, (unsigned)w, d))
            sl_queue_rotate(s->q, d);
    }
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
    if (nparts > 1 && sl_spool_remove(s->spool, id, nparts) < 0)
        sl_msg_warn("cannot remove finished message %s: %s", id, strerror(errno));
}

/* outcome - apply one "<id>.<k>=<o>" of job; false for "w" (not attempted) */
static bool outcome(struct sl_sched *s, const char *tok, size_t len, uint64_t job)
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
    case 'f':
        due = strtoll(eq + 2, &end, 10);
        if (end == eq + 2 || end != tok + len)
            due = now_seconds(); /* unreadable time: try again soon rather than never */
        sl_queue_defer(s->q, p, (int64_t)due);
        break;
    case 'w':
        sl_queue_requeue(s->q, p);
        hold_back(s, p->dest);
        return false;
    case 'x':
        sl_msg_info("message %s is gone from the spool", p->msg->id);
        sl_queue_drop(s->q, p->msg);
        break;
    default:
        sl_msg_warn("unknown outcome %.*s in job %" PRIu64, (int)len, tok, job);
        sl_queue_requeue(s->q, p); /* the spool still says what is left */
        break;
    }
    return true;
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
    while (*t != '\0') {
        size_t len;
        t += strspn(t, " ");
        len = strcspn(t, " ");
        if (len > 0 && !outcome(s, t, len, job))
            w->refused = true;
        t += len;
    }
    if (job == w->job) {
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

    dl = strcspn(dom, " ");
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
    }
    sl_supervise_quit_if_retiring(sup, wi);
}

/* on_idle - "I": the worker is free and holds no connection: counters were released */
static void on_idle(struct sl_sched *s, struct sl_supervisor *sup, unsigned wi)
{
    struct sl_worker_slot *w = &sup->w[wi];

    drop_conn(s, w);
    w->busy = false;
    if (!w->refused) /* after a refusal this worker closed nothing: no new room */
        release_all(s);
    w->refused = false;
    sl_supervise_quit_if_retiring(sup, wi);
}

/* on_new - "N <id>": a worker queued a message (a bounce) */
static void on_new(struct sl_sched *s, const char *msg)
{
    const char *id = msg + 1 + strspn(msg + 1, " ");

    if (!sl_spool_id_valid(id)) {
        sl_msg_warn("a worker announced a malformed queue id");
        return;
    }
    sl_pickup_id(s, id);
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
        sl_msg_debug("worker pid %ld: refused by counter %s", (long)w->pid, msg + 1);
        break;
    default:
        sl_msg_warn("worker pid %ld sent an unknown message 0x%02x", (long)w->pid,
                    (unsigned char)msg[0]);
        break;
    }
}

/* sl_sched_worker_exit - a dead worker's job goes back to the queues, in order */
void sl_sched_worker_exit(struct sl_worker_slot *w, void *vs)
{
    struct sl_sched *s = vs;
    struct sl_qpart *back[SL_JOB_PARTS];
    size_t n = 0;

    for (const char *t = w->parts; w->job != 0 && t != NULL && *t != '\0';) {
        size_t len;
        struct sl_qpart *p;
        char id[SL_SPOOL_ID_LEN + 1];
        struct sl_qmsg *m;
        unsigned k;

        t += strspn(t, " ");
        len = strcspn(t, " ");
        if (len > 0 && n < SL_JOB_PARTS && sl_sched_parse_part(t, len, id, &k) &&
            (m = sl_queue_find(s->q, id)) != NULL && k < m->nparts &&
            (p = &m->part[k])->state == SL_PART_INFLIGHT && p->job == w->job)
            back[n++] = p;
        t += len;
    }
    if (n > 0)
        sl_msg_info("worker pid %ld died with job %" PRIu64 ": %zu parts queued again",
                    (long)w->pid, w->job, n);
    requeue_parts(s, back, n);
    free(w->parts);
    w->parts = NULL;
    w->job = 0;
    drop_conn(s, w);
    release_all(s); /* its counters were reclaimed */
}

/* sl_sched_tick - deferred parts that are due, and the held-back safety net */
void sl_sched_tick(struct sl_sched *s)
{
    sl_queue_release_due(s->q, now_seconds());
    if (s->unblock_armed && sl_clock_ms_until(s->unblock) == 0)
        release_all(s);
}

/* sl_sched_wait_ms - how long the main loop may sleep before sl_sched_tick has work */
long sl_sched_wait_ms(const struct sl_sched *s)
{
    int64_t due = sl_queue_next_due(s->q);
    long wait = -1;

    if (!s->draining && sl_pickup_pending(s))
        return 0; /* the start scan has more to index */
    if (due != INT64_MAX) {
        struct timespec now;
        int64_t ms;
        clock_gettime(CLOCK_REALTIME, &now);
        ms = due * 1000 - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        wait = ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (long)ms;
    }
    if (s->unblock_armed) {
        long u = sl_clock_ms_until(s->unblock);
        if (wait < 0 || u < wait)
            wait = u;
    }
    return wait;
}
