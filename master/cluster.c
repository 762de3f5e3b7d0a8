/*
 * cluster.c - the master's part of the cluster counters: its Redis connection, the node's
 * heartbeat, the renewal of every lease its workers hold, and the removal of a dead worker's
 * leases, all on a thread of their own.
 *
 * Every cluster_lease_ttl / 3 the thread walks the owner records of the counter table: each
 * HELD record naming a cluster counter is a lease (member node:pid:record) of that counter's
 * key.  All of them are renewed in one pipeline (one script call per key); a lease Redis lost
 * is added again while under the limit (a Redis restarted empty, a lease granted while Redis
 * was unreachable, one that expired while the renewals could not reach Redis), else it is
 * lost.  With the renewals on time, a lease missing from Redis is one its worker gave back
 * after the round listed it: adding it again would count a closed connection against the
 * limit on every node for a whole ttl, so it is not.  The results go to the board: a worker starts
 * a transaction only while its record's word says its leases are good, so a lost or unrenewable
 * lease closes the connection before its next transaction.  The heartbeat says the node is
 * alive, with its holds, and brings back how many nodes are (cluster_on_failure = share).
 * When the master reaps a worker, it lists the worker's leases (its records still name them)
 * and hands the list to the thread before the slots are reclaimed; those Redis cannot be
 * told of expire.
 * Why a thread: a Redis that accepts connections but does not answer (stopped, swapping, a
 * full network buffer) costs each call its whole timeout.  On the master's own loop that was
 * half a second at each heartbeat and at each worker's death, during which no freed slot was
 * handed out and no control command answered.  The thread may wait; the loop does not.
 * A reload's Redis host name is resolved by cluster_resolve.c's thread, for neither the loop
 * nor this thread may wait for a resolver (seconds when it does not answer).  Meanwhile the
 * same name keeps the address it had; a new one (or one that did not resolve at start) counts
 * as Redis unreachable, as the workers forked meanwhile find it if it does not resolve for
 * them either.  The address then goes to this thread, which connects there, and to the loop,
 * which gives it to the workers it forks next (sl_master_cluster_adopt).
 * The thread's stretches of work are inside the fork gate (util/sl_fork.h): the master forks
 * its workers and listeners only between them, so none inherits a lock the thread held.
 * Concurrency: the thread owns the Redis handle, its params and the heartbeat's window.  The
 * master (main thread) only hands it new params (a reload), a dead worker's leases, or the
 * stop, under `lock`, and the first contact at start happens before the thread exists.  Both
 * read the counter table and write the board through atomics, as the workers do.  The thread
 * blocks every signal (the handlers run on the master's loop) and holds no lock a forked child
 * could need: a worker closes the inherited Redis socket with every other descriptor.
 * Trust boundary: Redis' replies are checked in cluster/.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "cluster/sl_cluster.h"
#include "config/sl_limits.h"
#include "master/sl_cluster_node.h"
#include "master/sl_cluster_resolve.h"
#include "util/sl_clock.h"
#include "util/sl_fork.h"
#include "util/sl_msg.h"

/* a dead worker's leases waiting for the thread, at most (about 5 MB): beyond, Redis is far
 * behind, and the ones not listed expire with their ttl */
#define DROPS_MAX 8192

/* the main thread's side */
static struct {
    const struct sl_shm *shm;
    bool warned_local; /* said once that cluster limits count this node alone */
    bool may_run;      /* the loop runs: a cluster enabled now gets its thread */
    bool running;      /* the thread exists */
    pthread_t thread;
} master;

/* what the master hands the thread, under lock */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    bool have_params;
    struct sl_cluster_params params; /* a reload's */
    struct sl_lease_ref *drops;      /* dead workers' leases to remove */
    size_t ndrops, capdrops;
    size_t dead;   /* workers whose leases those are */
    bool resolved; /* cluster_resolve.c has an address for the thread */
} box = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* the thread's own (the master's before the thread starts) */
static struct {
    struct sl_redis *redis;
    struct sl_cluster_params p;
    struct timespec next_tick;
    bool up;                      /* the last tick reached Redis */
    bool fresh;                   /* a new handle: no renewal round has reached its Redis */
    struct sl_alive_window alive; /* the heartbeats' count of nodes alive */
} node;

/* period_ms - how often leases are renewed and the heartbeat sent */
static long period_ms(const struct sl_cluster_params *p)
{
    long ms = p->ttl_ms / 3;
    return ms < 100 ? 100 : ms;
}

/* redis_name - "host:port" or a socket path, for the log */
static const char *redis_name(const struct sl_cluster_params *p, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%.0d", p->host, p->port ? ":" : "", p->port);
    return buf;
}

/* connect_check - reach Redis now: a refused password is fatal at start, unreachable a warning */
static void connect_check(bool starting)
{
    const struct sl_cluster_params *p = &node.p;
    char err[300], name[300];
    enum sl_redis_state st = sl_redis_check(node.redis, err, sizeof err);

    redis_name(p, name, sizeof name);
    if (st == SL_REDIS_AUTH && starting) {
        sl_redis_free(node.redis);
        node.redis = NULL;
        sl_msg_fatal("cluster_redis %s: %s", name, err);
    }
    if (st != SL_REDIS_UP)
        sl_msg_warn("cluster_redis %s: %s; cluster limits: %s until it answers", name, err,
                    p->on_failure == SL_CLUSTER_SHARE ? "this node's share" : "no new connection");
    else
        sl_msg_info("cluster_redis %s: node %s, leases of %ld ms", name, p->node, p->ttl_ms);
    node.up = st == SL_REDIS_UP;
}

/* wait_for_name - Redis named by a host name not resolved yet: unreachable until it is */
static void wait_for_name(void)
{
    char name[300];

    node.up = false;
    sl_store32(&sl_cluster_heritage()->board->redis_up, 0);
    sl_msg_warn("cluster_redis %s: waiting for the name to resolve; cluster limits: %s until "
                "it does",
                redis_name(&node.p, name, sizeof name),
                node.p.on_failure == SL_CLUSTER_SHARE ? "this node's share" : "no new connection");
}

/* take_params - new params for the handle (at start, or on the thread after a reload) */
static void take_params(const struct sl_cluster_params *p, bool starting)
{
    node.p = *p;
    sl_redis_free(node.redis);
    node.redis = NULL;
    node.fresh = true;
    if (sl_cluster_unresolved(p))
        wait_for_name();
    else if (p->enabled) {
        node.redis = sl_redis_new(p);
        connect_check(starting);
    }
    node.next_tick = sl_clock_after_ms(0);
}

/* grow - room for more leases; false (refs freed, the round skipped) when memory is short:
 * the leases not renewed or removed this round are the next round's, or expire */
static bool grow(struct sl_lease_ref **refs, size_t *cap)
{
    size_t more = *cap ? *cap * 2 : 64;
    struct sl_lease_ref *r = realloc(*refs, more * sizeof *r);

    if (r == NULL) {
        free(*refs);
        *refs = NULL;
        sl_msg_warn("cluster: out of memory listing leases: this round is skipped");
        return false;
    }
    *refs = r;
    *cap = more;
    return true;
}

/* collect - every lease of this node's workers (HELD records naming cluster counters), or
 * with only_owner every lease one dead worker may hold */
static size_t collect(const struct sl_shm *shm, const char *nodename, struct sl_lease_ref **out,
                      bool only_owner, uint32_t which)
{
    struct sl_cluster_board *board = sl_cluster_heritage()->board;
    size_t n = 0, cap = 0;
    struct sl_lease_ref *refs = NULL;

    for (uint32_t o = 0; o < shm->hdr->owner_capacity; o++) {
        struct sl_shm_owner *ow = &shm->owners[o];
        uint32_t pid;
        /* the state before the pid: a reclaim clears the pid first, so an ALIVE read here
         * cannot pair with the pid of a worker reaped since */
        if ((only_owner && o != which) || sl_load32(&ow->state) != SL_OWNER_ALIVE ||
            (pid = sl_load32(&ow->pid)) == 0)
            continue;
        for (int rec = 0; rec < SL_OWNER_RECORDS; rec++) {
            struct sl_shm_hold *h = &ow->hold[rec];
            /* the validity word before the state: a word a new acquire wrote after this read
             * differs from it, so post() never takes it for the listed lease's */
            uint64_t seen = sl_load64(sl_cluster_valid(board, o, rec));
            uint32_t st = sl_load32(&h->state), nslots = sl_word_load32(&h->n);
            /* a renewal needs the lease granted (HELD); a dead worker's may be in flux */
            if (!(st == SL_HOLD_HELD || (only_owner && st != SL_HOLD_FREE)))
                continue;
            for (uint32_t i = 0; i < nslots && i < SL_RESV_MAX; i++) {
                struct sl_counter_view v;
                if (sl_shm_view(shm, sl_word_load32(&h->slot[i]), &v) < 0 ||
                    v.kind != SL_SCOPE_CLUSTER)
                    continue;
                if (n == cap && !grow(&refs, &cap)) {
                    *out = NULL;
                    return 0;
                }
                sl_cluster_key(&v, refs[n].key, sizeof refs[n].key);
                sl_cluster_member(nodename, (long)pid, rec, refs[n].member, sizeof refs[n].member);
                refs[n].limit = v.limit;
                refs[n].owner = o;
                refs[n].pid = pid;
                refs[n].record = (uint32_t)rec;
                refs[n].seen_valid = seen;
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

/* may_readd - may this round add back leases missing from Redis?  Only when Redis may have
 * lost a lease in use: the renewals were interrupted (the last round did not reach Redis, or
 * reached it more than half a ttl ago), the handle is new (a reload or a new address: another
 * Redis), or a lease was granted while Redis was unreachable (its word says for ever: Redis
 * never had it).  Otherwise a missing lease was given back while the round was on its way. */
static bool may_readd(uint64_t start, const struct sl_lease_ref *refs, size_t n)
{
    uint64_t last = sl_peek64(&sl_cluster_heritage()->board->last_up_us);

    if (!node.up || node.fresh || start < last || start - last > (uint64_t)node.p.ttl_ms * 500u)
        return true;
    for (size_t i = 0; i < n; i++)
        if (refs[i].seen_valid == UINT64_MAX)
            return true;
    return false;
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
static void note_alive(uint32_t alive)
{
    struct sl_cluster_board *b = sl_cluster_heritage()->board;
    uint32_t was = sl_peek32(&b->alive);

    if (alive == was)
        return;
    sl_store32(&b->alive, alive);
    sl_msg_info("cluster: %u node%s alive (was %u)%s", alive, alive == 1 ? "" : "s", was,
                node.p.on_failure == SL_CLUSTER_SHARE
                    ? "; while Redis is unreachable this node's share of a cluster limit is the "
                      "limit divided by that"
                    : "");
}

/* note_reach - whether the tick reached Redis: logged when that changed, and on the board */
static void note_reach(long alive, uint64_t start)
{
    struct sl_cluster_board *b = sl_cluster_heritage()->board;

    if ((alive >= 0) != node.up) {
        if (alive >= 0)
            sl_msg_info("cluster_redis answers again: %ld node%s heartbeating now", alive,
                        alive == 1 ? "" : "s");
        else
            sl_msg_warn("cluster_redis unreachable (%s): leases not renewed; cluster limits: %s",
                        sl_redis_error(node.redis),
                        node.p.on_failure == SL_CLUSTER_SHARE ? "this node's share"
                                                              : "no new connection");
    }
    node.up = alive >= 0;
    if (node.up)
        sl_store64(&b->last_up_us, start);
    sl_store32(&b->redis_up, node.up ? 1 : 0);
}

/* tick - the heartbeat and the renewal of every lease (the thread, once a period) */
static void tick(void)
{
    struct sl_lease_ref *refs;
    uint64_t start = sl_clock_us();
    size_t n;
    long alive;
    bool ok;

    node.next_tick = sl_clock_after_ms(period_ms(&node.p));
    n = collect(master.shm, node.p.node, &refs, false, 0);
    if (n > 1)
        qsort(refs, n, sizeof *refs, by_key);
    ok = sl_lease_renew(node.redis, refs, n, node.p.ttl_ms, may_readd(start, refs, n));
    if (ok)
        node.fresh = false;
    sl_cluster_post(master.shm, sl_cluster_heritage()->board, refs, n,
                    start + (uint64_t)node.p.ttl_ms * 900u);
    free(refs);
    alive = ok ? sl_cluster_heartbeat(node.redis, node.p.node, (uint32_t)n, node.p.ttl_ms) : -1;
    if (alive > 0)
        note_alive(
            sl_alive_note(&node.alive, (uint32_t)alive, start / 1000, alive_hold_ms(&node.p)));
    else
        sl_alive_broken(&node.alive);
    note_reach(alive, start);
}

/* drop_leases - dead workers' leases out of Redis (the thread) */
static void drop_leases(const struct sl_lease_ref *refs, size_t n, size_t workers)
{
    if (node.redis == NULL)
        return;
    if (!sl_lease_drop(node.redis, refs, n))
        sl_msg_warn("%zu cluster leases of %s not removed (%s): they expire", n,
                    workers == 1 ? "a dead worker" : "dead workers", sl_redis_error(node.redis));
    else
        sl_msg_info("%zu cluster leases of %s removed", n,
                    workers == 1 ? "a dead worker" : "dead workers");
}

/* resolved_wake - cluster_resolve.c has an address: the thread takes it */
static void resolved_wake(void)
{
    pthread_mutex_lock(&box.lock);
    box.resolved = true;
    pthread_cond_signal(&box.wake);
    pthread_mutex_unlock(&box.lock);
}

/* ask_resolver - the host name of node.p to cluster_resolve.c's thread when it is one ("" ends
 * its tries otherwise); should that thread not start, the name is resolved here, waiting */
static void ask_resolver(void)
{
    bool name = node.p.enabled && node.p.port != 0 && !sl_cluster_numeric(node.p.host);
    struct sl_cluster_params p;

    if (sl_cluster_resolve_want(name ? node.p.host : "", resolved_wake) ||
        !sl_cluster_unresolved(&node.p))
        return;
    p = node.p;
    if (sl_cluster_resolve(&p))
        take_params(&p, false);
    explicit_bzero(p.password, sizeof p.password);
}

/* take_reload - a reload's params: the same host name as before came with the address it had
 * (the resolver looks it up again meanwhile), a new one waits for its own */
static void take_reload(const struct sl_cluster_params *p)
{
    take_params(p, false);
    ask_resolver();
}

/* take_resolved - the address of the host name in use (a new one, or one that moved) */
static void take_resolved(void)
{
    char host[SL_CLUSTER_HOST_MAX], addr[SL_CLUSTER_HOST_MAX];
    struct sl_cluster_params p;

    if (!sl_cluster_resolve_fresh(host, sizeof host, addr, sizeof addr) || !node.p.enabled ||
        strcmp(node.p.host, host) != 0 || strcmp(node.p.addr, addr) == 0)
        return; /* a name a later reload replaced, or nothing new */
    p = node.p;
    strlcpy(p.addr, addr, sizeof p.addr);
    take_params(&p, false);
    explicit_bzero(p.password, sizeof p.password);
}

/* drop_pending - the dead workers' leases handed over so far, out of Redis */
static void drop_pending(void)
{
    struct sl_lease_ref *refs;
    size_t n, workers;

    pthread_mutex_lock(&box.lock);
    refs = box.drops;
    n = box.ndrops;
    workers = box.dead;
    box.drops = NULL;
    box.ndrops = box.capdrops = box.dead = 0;
    pthread_mutex_unlock(&box.lock);
    if (n > 0)
        drop_leases(refs, n, workers);
    free(refs);
}

/* What the thread does next, picked with box.lock held */
enum work { WORK_NONE, WORK_RESOLVE, WORK_RELOAD, WORK_RESOLVED, WORK_TICK, WORK_DROPS };

/* pick_work - with box.lock held: the next stretch of work, a reload's params copied into p */
static enum work pick_work(struct sl_cluster_params *p)
{
    if (box.have_params) {
        *p = box.params;
        explicit_bzero(box.params.password, sizeof box.params.password);
        box.have_params = false;
        return WORK_RELOAD;
    }
    if (box.resolved) {
        box.resolved = false;
        return WORK_RESOLVED;
    }
    if (node.redis != NULL && sl_clock_ms_until(node.next_tick) == 0)
        return WORK_TICK; /* before removals: deaths in a row must not starve the renewals */
    return box.ndrops > 0 ? WORK_DROPS : WORK_NONE;
}

/* do_work - one stretch of work, inside the fork gate so that a fork never copies its locks
 * (sl_fork.h); box.lock is not held */
static void do_work(enum work w, struct sl_cluster_params *p)
{
    sl_fork_gate_enter();
    switch (w) {
    case WORK_RESOLVE:
        ask_resolver(); /* a name that did not resolve at start */
        break;
    case WORK_RELOAD:
        take_reload(p);
        break;
    case WORK_RESOLVED:
        take_resolved();
        break;
    case WORK_TICK:
        tick();
        break;
    case WORK_DROPS:
        drop_pending();
        break;
    case WORK_NONE:
        break;
    }
    sl_fork_gate_leave();
    explicit_bzero(p->password, sizeof p->password);
}

/* run - the thread: a reload's params, dead workers' leases, the ticks, until the stop */
static void *run(void *arg)
{
    struct sl_cluster_params p = {0};
    enum work w;

    (void)arg;
    do_work(WORK_RESOLVE, &p);
    pthread_mutex_lock(&box.lock);
    while (!box.stop) {
        w = pick_work(&p);
        if (w == WORK_NONE) {
            if (node.redis == NULL)
                pthread_cond_wait(&box.wake, &box.lock);
            else
                pthread_cond_timedwait(&box.wake, &box.lock, &node.next_tick);
            continue;
        }
        pthread_mutex_unlock(&box.lock);
        do_work(w, &p);
        pthread_mutex_lock(&box.lock);
    }
    pthread_mutex_unlock(&box.lock);
    return NULL;
}

/* start_thread - the thread, with every signal blocked and a monotonic wake-up; false (and
 * said why) when it cannot be had */
static bool start_thread(void)
{
    pthread_condattr_t attr;
    sigset_t all, old;
    int e;

    if (master.running)
        return true;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* next_tick is on that clock */
    pthread_cond_init(&box.wake, &attr);
    pthread_condattr_destroy(&attr);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    e = sl_fork_thread_create(&master.thread, NULL, run, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        pthread_cond_destroy(&box.wake);
        sl_msg_warn("cannot start the cluster thread: %s", strerror(e));
        return false;
    }
    master.running = true;
    return true;
}

/* hand_params - a reload's params to the thread */
static void hand_params(const struct sl_cluster_params *p)
{
    pthread_mutex_lock(&box.lock);
    box.params = *p;
    box.have_params = true;
    pthread_cond_signal(&box.wake);
    pthread_mutex_unlock(&box.lock);
}

/* apply - take the cluster params of cfg into the heritage (the workers forked next get them)
 * and to the handle: at start here, later through the thread */
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
    if (starting)
        sl_cluster_resolve(&p); /* before the loop: it may wait; if it fails, the thread tries */
    else if (strcmp(p.host, h->p.host) == 0)
        strlcpy(p.addr, h->p.addr, sizeof p.addr); /* until the thread resolves it again */
    if (!starting && p.enabled && master.may_run && !start_thread()) {
        sl_msg_warn("the cluster settings stay as they were");
        explicit_bzero(p.password, sizeof p.password);
        return false;
    }
    h->p = p;
    if (!p.enabled && sl_limits_cluster_any(cfg) && !master.warned_local) {
        sl_msg_warn("cluster limits are set but cluster_redis is not: they count this node's "
                    "connections alone");
        master.warned_local = true;
    }
    if (master.running)
        hand_params(&p);
    else
        take_params(&p, starting);
    explicit_bzero(p.password, sizeof p.password);
    return true;
}

/* sl_master_cluster_start - params, board and a first contact with Redis, before any fork */
void sl_master_cluster_start(const struct sl_config *cfg, const struct sl_shm *shm)
{
    master.shm = shm;
    sl_cluster_heritage()->board = sl_cluster_board_new(shm->hdr->owner_capacity);
    apply(cfg, true);
}

/* sl_master_cluster_run - the thread takes over, when there is a cluster (before the loop) */
void sl_master_cluster_run(void)
{
    master.may_run = true;
    if (node.p.enabled && !start_thread())
        sl_msg_fatal("cluster limits cannot be kept without it");
}

/* sl_master_cluster_reload - the new config's cluster settings */
void sl_master_cluster_reload(const struct sl_config *cfg)
{
    apply(cfg, false);
}

/* sl_master_cluster_adopt - the address cluster_resolve.c found for a reload's Redis host
 * name, into the heritage of the workers forked next, unless a later reload named another */
void sl_master_cluster_adopt(void)
{
    struct sl_cluster_heritage *h = sl_cluster_heritage();
    char host[SL_CLUSTER_HOST_MAX], addr[SL_CLUSTER_HOST_MAX];

    if (sl_cluster_resolve_adopt(host, sizeof host, addr, sizeof addr) &&
        strcmp(host, h->p.host) == 0)
        strlcpy(h->p.addr, addr, sizeof h->p.addr);
}

/* sl_master_cluster_reclaim - a dead worker's leases, listed now (before its slots are
 * reclaimed: its records still name them), for the thread to remove from Redis */
void sl_master_cluster_reclaim(const struct sl_shm *shm, uint32_t owner)
{
    const struct sl_cluster_heritage *h = sl_cluster_heritage();
    struct sl_lease_ref *refs;
    size_t n;

    if (!h->p.enabled || !master.running)
        return;
    n = collect(shm, h->p.node, &refs, true, owner);
    pthread_mutex_lock(&box.lock);
    if (n > 0 && box.ndrops + n > DROPS_MAX) {
        sl_msg_warn("%zu cluster leases of a dead worker not removed (Redis is behind): they "
                    "expire",
                    n);
    } else if (n > 0) {
        if (box.ndrops + n > box.capdrops) {
            box.capdrops = (box.ndrops + n) * 2;
            box.drops = realloc(box.drops, box.capdrops * sizeof *box.drops);
            if (box.drops == NULL)
                sl_msg_fatal("out of memory");
        }
        memcpy(box.drops + box.ndrops, refs, n * sizeof *refs);
        box.ndrops += n;
        box.dead++;
        pthread_cond_signal(&box.wake);
    }
    pthread_mutex_unlock(&box.lock);
    free(refs);
}

/* sl_master_cluster_stop - the thread ends (after the call in hand: a reconnect to a hung
 * Redis, about a second), the leases of the workers reaped last are removed, and the
 * connection closes (clean stop) */
void sl_master_cluster_stop(void)
{
    sl_cluster_resolve_stop(); /* no wake-up for a thread that has ended */
    if (master.running) {
        pthread_mutex_lock(&box.lock);
        box.stop = true;
        pthread_cond_signal(&box.wake);
        pthread_mutex_unlock(&box.lock);
        pthread_join(master.thread, NULL);
        pthread_cond_destroy(&box.wake);
        master.running = false;
    }
    drop_pending(); /* the workers the drain's end killed: else their leases stay a ttl */
    sl_redis_free(node.redis);
    node.redis = NULL;
    explicit_bzero(node.p.password, sizeof node.p.password);
}
