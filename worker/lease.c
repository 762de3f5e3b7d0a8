/*
 * lease.c - a connection's cluster leases: the Redis half of its counters.
 *
 * sl_worker_reserve takes the local counters first (a cluster counter is also a local one:
 * this node's holds), then, when cluster_redis is set, one lease per cluster counter, all or
 * none in one script call (cluster/lease.c): a refusal leaves no lease held and the caller
 * gives back the local counters.  At close the leases go back first, in one pipeline, then
 * the local counters (sl_worker_release), the mirror image.  The member of a lease is
 * node:pid:record (the hold record of the reservation), so the master can renew it and,
 * when this worker dies, remove it, from its shm record alone.
 * While Redis is unreachable: cluster_on_failure = closed refuses; share grants while this
 * node's holds stay within its share (limit / nodes last seen alive, at least 1).
 * A connection may start a transaction only while its leases are known good (the board's
 * word for its record, set here at acquire and moved on by the master's renewals).
 * Concurrency: called with SIGALRM and SIGTERM blocked, like every counter change (I2).
 * Trust boundary: Redis' replies are checked in cluster/.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster/sl_cluster.h"
#include "util/sl_clock.h"
#include "util/sl_msg.h"
#include "worker_impl.h"

/* margin_us - a lease is trusted until 90% of its life: Redis' expiry is later still */
static uint64_t life_us(const struct sl_cluster_params *p)
{
    return (uint64_t)p->ttl_ms * 900u;
}

/* is_cluster - the counter in slot is a cluster counter; its view in v */
static bool is_cluster(const struct sl_shm *shm, uint32_t slot, struct sl_counter_view *v)
{
    return sl_shm_view(shm, slot, v) == 0 && v->kind == SL_SCOPE_CLUSTER;
}

/* redis - the worker's Redis handle, made on first use; a host name the master had not
 * resolved yet when it forked this worker (a reload's) is resolved here, once, and not by
 * hiredis at each connect */
static struct sl_redis *redis(struct sl_wstate *w, const struct sl_cluster_params *p)
{
    struct sl_cluster_params q;

    if (w->redis == NULL) {
        q = *p;
        if (sl_cluster_unresolved(&q))
            sl_cluster_resolve(&q);
        w->redis = sl_redis_new(&q);
        explicit_bzero(q.password, sizeof q.password);
    }
    return w->redis;
}

/* give_back - the leases of r's first n counters back to Redis in one pipeline, last first
 * (a lease that could not be given back expires) */
static void give_back(struct sl_wstate *w, const struct sl_resv *r, uint32_t n)
{
    const struct sl_cluster_heritage *h = sl_cluster_heritage();
    struct sl_lease_ref refs[SL_RESV_MAX];
    struct sl_counter_view v;
    char member[SL_CLUSTER_MEMBER_MAX];
    size_t m = 0;

    sl_cluster_member(h->p.node, (long)getpid(), r->record, member, sizeof member);
    for (uint32_t i = n; i-- > 0;) {
        if (!is_cluster(w->ctx->shm, r->slot[i], &v))
            continue;
        sl_cluster_key(&v, refs[m].key, sizeof refs[m].key);
        snprintf(refs[m].member, sizeof refs[m].member, "%s", member);
        m++;
    }
    if (m > 0 && !sl_lease_drop(redis(w, &h->p), refs, m))
        sl_msg_debug("leases %s of %zu cluster counter(s) not given back (%s): they expire", member,
                     m, sl_redis_error(w->redis));
}

/* degraded - Redis unreachable: may this connection open under counter i of r anyway? */
static bool degraded(const struct sl_resv *r, uint32_t i, const struct sl_counter_view *v)
{
    const struct sl_cluster_heritage *h = sl_cluster_heritage();

    /* Only once the master has not reached Redis for a lease's life: until then leases
     * granted through Redis may still be in use on other nodes (and a worker whose own
     * connection is only pausing between retries must not take a share while Redis is up). */
    if (h->p.on_failure != SL_CLUSTER_SHARE || !sl_cluster_share_open(h->board, h->p.ttl_ms))
        return false;
    /* our own unit is already in v->in_use (the local counters were taken first) */
    return (int64_t)v->in_use <= sl_cluster_share(h->board, r->limit[i]);
}

/* refuse - counter i of r refused a lease (res, in_use the cluster-wide count): *why and the
 * note for the log */
static void refuse(struct sl_wstate *w, const struct sl_resv *r, uint32_t i,
                   enum sl_lease_result res, uint32_t in_use, const struct sl_counter_view *v,
                   struct sl_refusal *why)
{
    *why = (struct sl_refusal){.slot = r->slot[i],
                               .kind = SL_SCOPE_CLUSTER,
                               .in_use = res == SL_LEASE_DOWN ? v->in_use - 1 : in_use,
                               .limit = r->limit[i]};
    snprintf(w->lease_note, sizeof w->lease_note, "%s",
             res == SL_LEASE_GRACE  ? " (Redis was emptied: holders re-establish first)"
             : res == SL_LEASE_DOWN ? " (Redis unreachable: cluster_on_failure = closed)"
                                    : " across the cluster");
}

/* sl_worker_lease_acquire - a lease of every cluster counter of the held r, or none: one
 * script call for them all */
bool sl_worker_lease_acquire(struct sl_wstate *w, const struct sl_resv *r, struct sl_refusal *why)
{
    const struct sl_cluster_heritage *h = sl_cluster_heritage();
    char keys[SL_RESV_MAX][SL_CLUSTER_KEY_MAX], member[SL_CLUSTER_MEMBER_MAX];
    const char *keyp[SL_RESV_MAX];
    int32_t limits[SL_RESV_MAX];
    uint32_t at[SL_RESV_MAX]; /* the position in r of each cluster counter */
    struct sl_counter_view v[SL_RESV_MAX];
    uint64_t start = sl_clock_us();
    enum sl_lease_result res = SL_LEASE_OK;
    uint32_t in_use = 0;
    size_t m = 0, refused = 0;
    bool down = false;

    w->lease_note[0] = '\0';
    if (!h->p.enabled || r->record < 0)
        return true; /* no Redis: the local cluster counters are the whole limit */
    sl_cluster_member(h->p.node, (long)getpid(), r->record, member, sizeof member);
    for (uint32_t i = 0; i < r->n; i++) {
        if (!is_cluster(w->ctx->shm, r->slot[i], &v[m]))
            continue;
        sl_cluster_key(&v[m], keys[m], sizeof keys[m]);
        keyp[m] = keys[m];
        limits[m] = r->limit[i];
        at[m++] = i;
    }
    if (m > 0)
        res = sl_lease_acquire_all(redis(w, &h->p), keyp, limits, m, member, h->p.ttl_ms, &refused,
                                   &in_use);
    if (res == SL_LEASE_DOWN) { /* each counter: within this node's share, or refused */
        for (refused = 0; refused < m && degraded(r, at[refused], &v[refused]); refused++)
            down = true;
        if (refused == m)
            res = SL_LEASE_OK;
    }
    if (res != SL_LEASE_OK) { /* the script left none held; Redis down: none was taken */
        refuse(w, r, at[refused], res, in_use, &v[refused], why);
        return false;
    }
    /* Leases granted while Redis is unreachable are trusted until the master can renew
     * them (it re-adds them, or closes the connection, when Redis answers again). */
    sl_store64(sl_cluster_valid(h->board, w->owner, r->record),
               down ? UINT64_MAX : start + life_us(&h->p));
    return true;
}

/* sl_worker_lease_release - r's leases back to Redis (before its local counters go back) */
void sl_worker_lease_release(struct sl_wstate *w, const struct sl_resv *r)
{
    const struct sl_cluster_heritage *h = sl_cluster_heritage();

    if (!h->p.enabled || r->record < 0)
        return;
    give_back(w, r, r->n);
}

/* within_share - Redis unreachable under share: the connection stays while this node's holds
 * of each of its cluster counters are within the node's share */
static bool within_share(struct sl_wstate *w, const struct sl_resv *r)
{
    const struct sl_cluster_heritage *h = sl_cluster_heritage();
    struct sl_counter_view v;

    if (h->p.on_failure != SL_CLUSTER_SHARE || sl_peek32(&h->board->redis_up))
        return false;
    for (uint32_t i = 0; i < r->n; i++)
        if (is_cluster(w->ctx->shm, r->slot[i], &v) &&
            (int64_t)v.in_use > sl_cluster_share(h->board, r->limit[i]))
            return false;
    return true;
}

/* leased - does the open connection hold cluster leases; *until: their validity word */
static bool leased(struct sl_wstate *w, uint64_t *until)
{
    const struct sl_cluster_heritage *h = sl_cluster_heritage();
    const struct sl_resv *r = &w->conn.r;
    struct sl_counter_view v;
    bool any = false;

    if (!h->p.enabled || !w->conn.open || r->record < 0)
        return false;
    for (uint32_t i = 0; i < r->n && !any; i++)
        any = is_cluster(w->ctx->shm, r->slot[i], &v);
    if (any)
        *until = sl_load64(sl_cluster_valid(h->board, w->owner, r->record));
    return any;
}

/* sl_worker_lease_left_us - how long the open connection's leases stay good */
uint64_t sl_worker_lease_left_us(struct sl_wstate *w)
{
    uint64_t until, now;

    if (!leased(w, &until) || until == UINT64_MAX)
        return UINT64_MAX;
    now = sl_clock_us();
    if (until > now)
        return until - now;
    return within_share(w, &w->conn.r) ? UINT64_MAX : 0; /* the share decides, not time */
}

/* sl_worker_lease_held - does the open connection hold cluster leases */
bool sl_worker_lease_held(struct sl_wstate *w)
{
    uint64_t until;

    return leased(w, &until);
}

/* sl_worker_lease_valid - may the open connection start another transaction */
bool sl_worker_lease_valid(struct sl_wstate *w)
{
    const struct sl_cluster_heritage *h = sl_cluster_heritage();
    uint64_t until;

    if (!leased(w, &until))
        return true;
    if (until == UINT64_MAX) /* granted while Redis was unreachable: the share decides */
        return sl_peek32(&h->board->redis_up) != 0 || within_share(w, &w->conn.r);
    if (sl_clock_us() < until || within_share(w, &w->conn.r))
        return true;
    sl_msg_info("connection to %s [%s]: its cluster lease %s: closed before the next "
                "transaction",
                w->conn.mx, w->conn.ip, until == 0 ? "was lost" : "could not be renewed");
    return false;
}

/* sl_worker_lease_host_scoped - a cluster counter of one MX host refused (another MX may have
 * room, as for a local host counter) */
bool sl_worker_lease_host_scoped(const struct sl_shm *shm, const struct sl_refusal *why)
{
    struct sl_counter_view v;

    return why->kind == SL_SCOPE_CLUSTER && is_cluster(shm, why->slot, &v) &&
           (strcmp(v.name, "host") == 0 || strcmp(v.name, "binding_host") == 0);
}

/* sl_worker_lease_same - do r and want name the same cluster counters (a connection moves to
 * another domain only then: its leases stay as they are) */
bool sl_worker_lease_same(const struct sl_shm *shm, const struct sl_resv *r,
                          const struct sl_resv *want)
{
    struct sl_counter_view v;

    for (int pass = 0; pass < 2; pass++) {
        const struct sl_resv *a = pass ? want : r, *b = pass ? r : want;
        for (uint32_t i = 0; i < a->n; i++) {
            bool found = false;
            if (!is_cluster(shm, a->slot[i], &v))
                continue;
            for (uint32_t j = 0; j < b->n && !found; j++)
                found = b->slot[j] == a->slot[i];
            if (!found)
                return false;
        }
    }
    return true;
}
