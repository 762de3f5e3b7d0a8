/*
 * cluster.c - the master's part of the cluster counters: its Redis connection, the node's
 * heartbeat, the renewal of every lease its workers hold, and the removal of a dead worker's
 * leases.
 *
 * Every cluster_lease_ttl / 3 the master walks the owner records of the counter table: each
 * HELD record naming a cluster counter is a lease (member node:pid:record) of that counter's
 * key.  All of them are renewed in one pipeline (one script call per key); a lease Redis lost
 * is added again while under the limit (a Redis restarted empty, a lease granted while Redis
 * was unreachable), else it is lost.  The results go to the board: a worker starts a
 * transaction only while its record's word says its leases are good, so a lost or unrenewable
 * lease closes the connection before its next transaction.  The heartbeat says the node is
 * alive, with its holds, and brings back how many nodes are (cluster_on_failure = share).
 * When the master reaps a worker, the worker's leases are removed before its slots are
 * reclaimed (sl_master_cluster_reclaim); those Redis cannot be told of expire.
 * Concurrency: master only, from the main loop; each Redis call is bounded by the client's
 * timeouts, and an unreachable Redis is tried at most once a second.
 * Trust boundary: Redis' replies are checked in cluster/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/sl_cluster.h"
#include "config/sl_limits.h"
#include "master/sl_cluster_node.h"
#include "util/sl_clock.h"
#include "util/sl_msg.h"

static struct {
    struct sl_redis *redis;
    struct timespec next_tick;
    bool up;                      /* the last tick reached Redis */
    bool warned_local;            /* said once that cluster limits count this node alone */
    struct sl_alive_window alive; /* the heartbeats' count of nodes alive */
} node;

/* period_ms - how often leases are renewed and the heartbeat sent */
static long period_ms(const struct sl_cluster_params *p)
{
    long ms = p->ttl_ms / 3;
    return ms < 100 ? 100 : ms;
}

/* connect_check - reach Redis now: a refused password is fatal at start, unreachable a warning */
static void connect_check(bool starting)
{
    const struct sl_cluster_params *p = &sl_cluster_heritage()->p;
    char err[300];
    enum sl_redis_state st = sl_redis_check(node.redis, err, sizeof err);

    if (st == SL_REDIS_AUTH && starting) {
        sl_redis_free(node.redis);
        node.redis = NULL;
        sl_msg_fatal("cluster_redis %s%s%.0d: %s", p->addr, p->port ? ":" : "", p->port, err);
    }
    if (st != SL_REDIS_UP)
        sl_msg_warn("cluster_redis %s%s%.0d: %s; cluster limits: %s until it answers", p->addr,
                    p->port ? ":" : "", p->port, err,
                    p->on_failure == SL_CLUSTER_SHARE ? "this node's share" : "no new connection");
    else
        sl_msg_info("cluster_redis %s%s%.0d: node %s, leases of %ld ms", p->addr,
                    p->port ? ":" : "", p->port, p->node, p->ttl_ms);
    node.up = st == SL_REDIS_UP;
}

/* apply - take the cluster params of cfg into the heritage (the workers forked next get them) */
static bool apply(const struct sl_config *cfg, bool starting)
{
    struct sl_cluster_heritage *h = sl_cluster_heritage();
    struct sl_cluster_params p;
    char err[512];

    if (!sl_cluster_params(cfg, &p, err, sizeof err)) {
        if (starting)
            sl_msg_fatal("%s", err);
        sl_msg_warn("%s: the cluster settings stay as they were", err);
        return false;
    }
    h->p = p;
    sl_redis_free(node.redis);
    node.redis = p.enabled ? sl_redis_new(&p) : NULL;
    if (!p.enabled && sl_limits_cluster_any(cfg) && !node.warned_local) {
        sl_msg_warn("cluster limits are set but cluster_redis is not: they count this node's "
                    "connections alone");
        node.warned_local = true;
    }
    if (p.enabled)
        connect_check(starting);
    node.next_tick = sl_clock_after_ms(0);
    return true;
}

/* sl_master_cluster_start - params, board and a first contact with Redis, before any fork */
void sl_master_cluster_start(const struct sl_config *cfg, const struct sl_shm *shm)
{
    sl_cluster_heritage()->board = sl_cluster_board_new(shm->hdr->owner_capacity);
    apply(cfg, true);
}

/* sl_master_cluster_reload - the new config's cluster settings */
void sl_master_cluster_reload(const struct sl_config *cfg)
{
    apply(cfg, false);
}

/* collect - every lease this node's workers hold (HELD records naming cluster counters) */
static size_t collect(const struct sl_shm *shm, struct sl_lease_ref **out, bool only_owner,
                      uint32_t which)
{
    const char *nodename = sl_cluster_heritage()->p.node;
    size_t n = 0, cap = 0;
    struct sl_lease_ref *refs = NULL;

    for (uint32_t o = 0; o < shm->hdr->owner_capacity; o++) {
        struct sl_shm_owner *ow = &shm->owners[o];
        uint32_t pid = sl_load32(&ow->pid);
        if ((only_owner && o != which) || sl_load32(&ow->state) != SL_OWNER_ALIVE)
            continue;
        for (int rec = 0; rec < SL_OWNER_RECORDS; rec++) {
            struct sl_shm_hold *h = &ow->hold[rec];
            uint32_t st = sl_load32(&h->state), nslots = sl_word_load32(&h->n);
            /* a renewal needs the lease granted (HELD); a dead worker's may be in flux */
            if (!(st == SL_HOLD_HELD || (only_owner && st != SL_HOLD_FREE)))
                continue;
            for (uint32_t i = 0; i < nslots && i < SL_RESV_MAX; i++) {
                struct sl_counter_view v;
                if (sl_shm_view(shm, sl_word_load32(&h->slot[i]), &v) < 0 ||
                    v.kind != SL_SCOPE_CLUSTER)
                    continue;
                if (n == cap) {
                    cap = cap ? cap * 2 : 64;
                    refs = realloc(refs, cap * sizeof *refs);
                    if (refs == NULL)
                        sl_msg_fatal("out of memory");
                }
                sl_cluster_key(&v, refs[n].key, sizeof refs[n].key);
                sl_cluster_member(nodename, (long)pid, rec, refs[n].member, sizeof refs[n].member);
                refs[n].limit = v.limit;
                refs[n].owner = o;
                refs[n].record = (uint32_t)rec;
                n++;
            }
        }
    }
    *out = refs;
    return n;
}

/* by_key - order of leases for the renewal: by key, so one call serves a key's members */
static int by_key(const void *a, const void *b)
{
    return strcmp(((const struct sl_lease_ref *)a)->key, ((const struct sl_lease_ref *)b)->key);
}

/* post - the renewal's results on the board: each record good until start + 90% of the ttl,
 * or lost (0) when any of its leases was; one Redis did not answer keeps its old validity */
static void post(struct sl_lease_ref *refs, size_t n, uint64_t start)
{
    struct sl_cluster_heritage *h = sl_cluster_heritage();
    uint64_t until = start + (uint64_t)h->p.ttl_ms * 900u;

    for (size_t i = 0; i < n; i++)
        if (refs[i].result > 0) /* answered, even when another part of the round was not */
            sl_store64(sl_cluster_valid(h->board, refs[i].owner, (int)refs[i].record), until);
    for (size_t i = 0; i < n; i++)
        if (refs[i].result == 0) {
            sl_msg_warn("cluster lease %s of %s lost (the counter is full): its connection closes",
                        refs[i].member, refs[i].key);
            sl_store64(sl_cluster_valid(h->board, refs[i].owner, (int)refs[i].record), 0);
        }
}

/* alive_hold_ms - how long every heartbeat must see fewer nodes before the count falls: a
 * lease's life, and the time the others take to beat again once Redis is back (a retry pause
 * and a period) */
static uint64_t alive_hold_ms(const struct sl_cluster_params *p)
{
    return (uint64_t)p->ttl_ms + SL_CLUSTER_RETRY_MS + (uint64_t)period_ms(p);
}

/* note_alive - the nodes the heartbeat saw alive, on the board; a change is logged: under
 * cluster_on_failure = share it is what divides a cluster limit while Redis is unreachable */
static void note_alive(const struct sl_cluster_heritage *h, uint32_t alive)
{
    uint32_t was = sl_peek32(&h->board->alive);

    if (alive == was)
        return;
    sl_store32(&h->board->alive, alive);
    sl_msg_info("cluster: %u node%s alive (was %u)%s", alive, alive == 1 ? "" : "s", was,
                h->p.on_failure == SL_CLUSTER_SHARE
                    ? "; while Redis is unreachable this node's share of a cluster limit is the "
                      "limit divided by that"
                    : "");
}

/* sl_master_cluster_tick - heartbeat and renewals, when their time came */
void sl_master_cluster_tick(const struct sl_shm *shm)
{
    struct sl_cluster_heritage *h = sl_cluster_heritage();
    struct sl_lease_ref *refs;
    uint64_t start = sl_clock_us();
    size_t n;
    long alive;
    bool ok;

    if (node.redis == NULL || sl_clock_ms_until(node.next_tick) > 0)
        return;
    node.next_tick = sl_clock_after_ms(period_ms(&h->p));
    n = collect(shm, &refs, false, 0);
    if (n > 1)
        qsort(refs, n, sizeof *refs, by_key);
    ok = sl_lease_renew(node.redis, refs, n, h->p.ttl_ms);
    post(refs, n, start);
    free(refs);
    alive = ok ? sl_cluster_heartbeat(node.redis, h->p.node, (uint32_t)n, h->p.ttl_ms) : -1;
    if (alive > 0)
        note_alive(h,
                   sl_alive_note(&node.alive, (uint32_t)alive, start / 1000, alive_hold_ms(&h->p)));
    else
        sl_alive_broken(&node.alive);
    if ((alive >= 0) != node.up) {
        if (alive >= 0)
            sl_msg_info("cluster_redis answers again: %ld node%s heartbeating now", alive,
                        alive == 1 ? "" : "s");
        else
            sl_msg_warn("cluster_redis unreachable (%s): leases not renewed; cluster limits: %s",
                        sl_redis_error(node.redis),
                        h->p.on_failure == SL_CLUSTER_SHARE ? "this node's share"
                                                            : "no new connection");
    }
    node.up = alive >= 0;
    if (node.up)
        sl_store64(&h->board->last_up_us, start);
    sl_store32(&h->board->redis_up, node.up ? 1 : 0);
}

/* sl_master_cluster_wait_ms - until the next tick; -1 when there is no cluster */
long sl_master_cluster_wait_ms(void)
{
    return node.redis == NULL ? -1 : sl_clock_ms_until(node.next_tick);
}

/* sl_master_cluster_reclaim - a dead worker's leases removed from Redis (before its slots are
 * reclaimed: its records still name them) */
void sl_master_cluster_reclaim(const struct sl_shm *shm, uint32_t owner)
{
    struct sl_lease_ref *refs;
    size_t n;

    if (node.redis == NULL)
        return;
    n = collect(shm, &refs, true, owner);
    if (n > 0 && !sl_lease_drop(node.redis, refs, n))
        sl_msg_warn("%zu cluster leases of a dead worker not removed (%s): they expire", n,
                    sl_redis_error(node.redis));
    else if (n > 0)
        sl_msg_info("%zu cluster leases of a dead worker removed", n);
    free(refs);
}

/* sl_master_cluster_stop - close the connection (clean stop) */
void sl_master_cluster_stop(void)
{
    sl_redis_free(node.redis);
    node.redis = NULL;
}
