/*
 * bench_shm.c - the counter table's speed: reserve + release of a 5-counter reservation, alone and
 * with 2, 8 and 32 processes on the same or on distinct counters, and the inspector's snapshot
 * of a table of 100,000 live counters.
 *
 * One figure per line on stdout; the best of a few runs (CLOCK_MONOTONIC).  Slot lookups happen
 * once, before timing; each timed operation builds its reservation (init + 5 adds), acquires and
 * releases it, as a worker does per connection.  Limits are high enough never to refuse: a
 * refusal or any other surprise makes the program exit non-zero.
 * Segments are named "/sluice-bench-PID-N" and unlinked at exit.
 *
 * The peer in the same run: the lock-based design, one robust process-shared mutex around the
 * same five counts with each holder recorded under it (a shared zone guarded by one lock, as
 * nginx's limit_conn keeps its counts, plus the records that make a death recoverable), timed the
 * same way, so the figures that matter are the ratios, not the machine's absolute speed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/sl_msg.h"
#include "shm/sl_shm.h"

#define NKEYS         5
#define RUNS          5
#define SNAP_COUNTERS 100000

static const enum sl_scope_kind kinds[NKEYS] = {SL_SCOPE_BINDING_DOMAIN, SL_SCOPE_BINDING_HOST,
                                                SL_SCOPE_HOST, SL_SCOPE_DOMAIN, SL_SCOPE_SERVER};

/* Start line and results shared with the forked processes. */
struct race {
    _Atomic int ready;
    _Atomic int go;
    _Atomic int failed;
    uint64_t start[64], end[64];
};

static char seg_name[64];
static int seg_serial;

/* now_ns - monotonic nanoseconds */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* make_table - a fresh segment or exit */
static void make_table(struct sl_shm *shm, uint32_t slots, uint32_t owners)
{
    struct sl_shm_params p = {.slot_capacity = slots, .owner_capacity = owners};
    char err[256];

    snprintf(seg_name, sizeof seg_name, "/sluice-bench-%d-%d", (int)getpid(), ++seg_serial);
    if (sl_shm_create(seg_name, &p, shm, err, sizeof err) != 0)
        sl_msg_fatal("create: %s", err);
}

/* drop_table - detach and unlink the current segment */
static void drop_table(struct sl_shm *shm)
{
    sl_shm_detach(shm);
    sl_shm_unlink(seg_name);
}

/* keys_for - look up the 5 counters of group g (a binding x domain x host) */
static void keys_for(struct sl_shm *shm, int g, uint32_t slot[NKEYS])
{
    char b[32], d[32], h[32];

    snprintf(b, sizeof b, "bind%d", g);
    snprintf(d, sizeof d, "dom%d.example", g);
    snprintf(h, sizeof h, "mx.dom%d.example", g);
    const char *n1[NKEYS] = {b, b, h, d, g == 0 ? "" : b};
    const char *n2[NKEYS] = {d, h, NULL, NULL, NULL};
    for (int k = 0; k < NKEYS; k++) {
        enum sl_scope_kind kind = kinds[k];
        if (k == NKEYS - 1 && g != 0)
            kind = SL_SCOPE_BINDING; /* distinct keys: no shared server counter */
        if (sl_shm_lookup(shm, kind, n1[k], n2[k], 0, &slot[k]) != SL_SHM_OK)
            sl_msg_fatal("lookup of group %d key %d failed", g, k);
    }
}

/* hammer - n reservations of the 5 counters by owner; false on any refusal */
static bool hammer(struct sl_shm *shm, uint32_t owner, const uint32_t slot[NKEYS], long n)
{
    for (long i = 0; i < n; i++) {
        struct sl_resv r;
        sl_resv_init(&r, 0);
        for (int k = 0; k < NKEYS; k++)
            sl_resv_add(&r, slot[NKEYS - 1 - k], 1000000);
        if (sl_resv_acquire(shm, owner, &r, NULL) != SL_RESV_OK)
            return false;
        sl_resv_release(shm, owner, &r);
    }
    return true;
}

/* bench_alone - ns per reserve + release, one process */
static double bench_alone(void)
{
    struct sl_shm shm;
    uint32_t slot[NKEYS], owner;
    const long n = 2000000;
    double best = 1e30;

    make_table(&shm, 1024, 4);
    keys_for(&shm, 0, slot);
    if (sl_shm_owner_claim(&shm, getpid(), &owner) != 0)
        sl_msg_fatal("no owner record");
    hammer(&shm, owner, slot, n / 10); /* warm up */
    for (int run = 0; run < RUNS; run++) {
        uint64_t t0 = now_ns();
        if (!hammer(&shm, owner, slot, n))
            sl_msg_fatal("a reservation was refused");
        double ns = (double)(now_ns() - t0) / (double)n;
        if (ns < best)
            best = ns;
    }
    drop_table(&shm);
    return best;
}

/* What one racing process runs: n operations as process p; false on a refusal. */
typedef bool (*work_fn)(int p, long n, void *ctx);

/* race - nprocs processes run work at once (3 runs): best mean ns per op per process, best ops/s */
static void race(int nprocs, long n, work_fn work, void *ctx, double *per_op, double *ops_s)
{
    struct race *r =
        mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (r == MAP_FAILED)
        sl_msg_fatal("mmap: %m");
    *per_op = 1e30;
    *ops_s = 0;
    for (int run = 0; run < 3; run++) {
        pid_t pids[64];
        uint64_t first = UINT64_MAX, last = 0;
        double sum = 0;

        memset(r, 0, sizeof *r);
        for (int p = 0; p < nprocs; p++) {
            pids[p] = fork();
            if (pids[p] < 0)
                sl_msg_fatal("fork: %m");
            if (pids[p] == 0) {
                atomic_fetch_add(&r->ready, 1);
                while (!atomic_load(&r->go))
                    sched_yield();
                r->start[p] = now_ns();
                if (!work(p, n, ctx))
                    atomic_store(&r->failed, 1);
                r->end[p] = now_ns();
                _exit(0);
            }
        }
        while (atomic_load(&r->ready) < nprocs)
            sched_yield();
        atomic_store(&r->go, 1);
        for (int p = 0; p < nprocs; p++) {
            int status;
            if (waitpid(pids[p], &status, 0) != pids[p] || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0)
                sl_msg_fatal("benchmark process %d failed", (int)pids[p]);
        }
        if (atomic_load(&r->failed))
            sl_msg_fatal("a reservation was refused");
        for (int p = 0; p < nprocs; p++) {
            first = r->start[p] < first ? r->start[p] : first;
            last = r->end[p] > last ? r->end[p] : last;
            sum += (double)(r->end[p] - r->start[p]) / (double)n;
        }
        double mean = sum / nprocs, agg = (double)n * nprocs / ((double)(last - first) / 1e9);
        *per_op = mean < *per_op ? mean : *per_op;
        *ops_s = agg > *ops_s ? agg : *ops_s;
    }
    munmap(r, sizeof *r);
}

/* Each racing process's counters in the sluice table. */
struct sluice_work {
    struct sl_shm *shm;
    uint32_t owner[64];
    uint32_t slot[64][NKEYS];
};

/* sluice_hammer - process p's share of the race on the sluice table */
static bool sluice_hammer(int p, long n, void *ctx)
{
    struct sluice_work *w = ctx;
    return hammer(w->shm, w->owner[p], w->slot[p], n);
}

/* bench_procs - nprocs processes at once; per-process ns per op and aggregate ops/s (best run) */
static void bench_procs(int nprocs, bool same_keys, double *per_op, double *ops_s)
{
    struct sl_shm shm;
    struct sluice_work w = {.shm = &shm};

    make_table(&shm, 4096, 64);
    for (int p = 0; p < nprocs; p++) {
        keys_for(&shm, same_keys ? 0 : p + 1, w.slot[p]);
        if (sl_shm_owner_claim(&shm, 0, &w.owner[p]) != 0)
            sl_msg_fatal("no owner record");
    }
    race(nprocs, nprocs <= 8 ? 400000 : 150000, sluice_hammer, &w, per_op, ops_s);
    /* Every count must be back to zero. */
    for (uint32_t s = 0; s < shm.hdr->slot_capacity; s++)
        if ((uint32_t)sl_load64(&shm.slots[s].count) != 0)
            sl_msg_fatal("slot %u left at %u", s, (uint32_t)sl_load64(&shm.slots[s].count));
    drop_table(&shm);
}

/*
 * The lock-based peer, made as kill-safe as a lock allows: the five counts behind one robust
 * process-shared mutex, and each process's hold recorded under the lock, so that the lock
 * of a process that died inside it can be recovered (EOWNERDEAD) and its hold returned.
 */
struct locked_table {
    pthread_mutex_t lock;
    int32_t count[NKEYS];
    int32_t limit[NKEYS];
    uint8_t held[64]; /* process p holds one unit of every count */
};

/* locked_enter - take the lock; after a holder's death, rebuild the counts from the records */
static void locked_enter(struct locked_table *t)
{
    if (pthread_mutex_lock(&t->lock) != EOWNERDEAD)
        return;
    for (int k = 0; k < NKEYS; k++) {
        t->count[k] = 0;
        for (int p = 0; p < 64; p++)
            t->count[k] += t->held[p];
    }
    pthread_mutex_consistent(&t->lock);
}

/* locked_hammer - process p: n reserve+release of the five counts under the lock */
static bool locked_hammer(int p, long n, void *ctx)
{
    struct locked_table *t = ctx;

    for (long i = 0; i < n; i++) {
        bool ok = true;
        locked_enter(t);
        for (int k = 0; k < NKEYS; k++)
            ok = ok && t->count[k] < t->limit[k];
        for (int k = 0; ok && k < NKEYS; k++)
            t->count[k]++;
        t->held[p] = ok;
        pthread_mutex_unlock(&t->lock);
        if (!ok)
            return false;
        locked_enter(t);
        for (int k = 0; k < NKEYS; k++)
            t->count[k]--;
        t->held[p] = 0;
        pthread_mutex_unlock(&t->lock);
    }
    return true;
}

/* locked_new - a fresh peer table in shared memory: robust process-shared lock, high limits */
static struct locked_table *locked_new(void)
{
    struct locked_table *t =
        mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t a;

    if (t == MAP_FAILED)
        sl_msg_fatal("mmap: %m");
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&t->lock, &a);
    pthread_mutexattr_destroy(&a);
    for (int k = 0; k < NKEYS; k++)
        t->limit[k] = 1000000;
    return t;
}

/* locked_free - the peer table's end */
static void locked_free(struct locked_table *t)
{
    pthread_mutex_destroy(&t->lock);
    munmap(t, sizeof *t);
}

/* bench_locked - the peer with nprocs processes (1: alone): ns per op per process, ops/s */
static void bench_locked(int nprocs, double *per_op, double *ops_s)
{
    struct locked_table *t = locked_new();
    race(nprocs, nprocs <= 8 ? 400000 : 150000, locked_hammer, t, per_op, ops_s);
    locked_free(t);
}

/* Shared between the stall benchmark's processes. */
struct stall {
    _Atomic int go;
    _Atomic long ops;
};

/* run_for - process p repeats work in chunks for ms; adds what finished in time to st->ops */
static void run_for(struct stall *st, int p, long ms, work_fn work, void *ctx)
{
    uint64_t end;
    long done = 0;

    while (!atomic_load(&st->go))
        sched_yield();
    end = now_ns() + (uint64_t)ms * 1000000u;
    /* Only chunks finished inside the window count. */
    while (now_ns() < end && work(p, 100, ctx) && now_ns() <= end)
        done += 100;
    atomic_fetch_add(&st->ops, done);
}

/* stalled - operations 2 processes complete in 100 ms while a third is stopped where `stop`
 * leaves it (inside the peer's lock; holding a reservation in sluice) */
static long stalled(void (*stop)(void *ctx), work_fn work, void *ctx)
{
    struct stall *st =
        mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t victim, pids[2];
    int status;
    long ops;

    if (st == MAP_FAILED)
        sl_msg_fatal("mmap: %m");
    victim = fork();
    if (victim == 0) {
        stop(ctx); /* stops itself with SIGSTOP at the chosen point */
        _exit(0);
    }
    if (victim < 0 || waitpid(victim, &status, WUNTRACED) != victim || !WIFSTOPPED(status))
        sl_msg_fatal("the stopped process did not stop");
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            run_for(st, p + 1, 100, work, ctx);
            _exit(0);
        }
    }
    atomic_store(&st->go, 1);
    /* Give them their 100 ms, then end the stopped process, which lets the peer's go on. */
    nanosleep(&(struct timespec){0, 300 * 1000000L}, NULL);
    kill(victim, SIGKILL);
    waitpid(victim, NULL, 0);
    for (int p = 0; p < 2; p++)
        waitpid(pids[p], NULL, 0);
    ops = atomic_load(&st->ops);
    munmap(st, sizeof *st);
    return ops;
}

/* stop_in_lock - the peer's process 0 takes the lock and is stopped before it lets go */
static void stop_in_lock(void *ctx)
{
    struct locked_table *t = ctx;
    locked_enter(t);
    raise(SIGSTOP);
}

/* stop_holding - sluice's process 0 holds a reservation and is stopped */
static void stop_holding(void *ctx)
{
    struct sluice_work *w = ctx;
    struct sl_resv r;

    sl_resv_init(&r, 0);
    for (int k = 0; k < NKEYS; k++)
        sl_resv_add(&r, w->slot[0][k], 1000000);
    if (sl_resv_acquire(w->shm, w->owner[0], &r, NULL) != SL_RESV_OK)
        sl_msg_fatal("the stopped process's reservation was refused");
    raise(SIGSTOP);
}

/* bench_stall - both designs with one process stopped at its worst moment */
static void bench_stall(long *sluice_ops, long *peer_ops)
{
    struct sl_shm shm;
    struct sluice_work w = {.shm = &shm};
    struct locked_table *t = locked_new();

    make_table(&shm, 1024, 8);
    for (int p = 0; p < 3; p++) {
        keys_for(&shm, 0, w.slot[p]);
        if (sl_shm_owner_claim(&shm, 0, &w.owner[p]) != 0)
            sl_msg_fatal("no owner record");
    }
    *sluice_ops = stalled(stop_holding, sluice_hammer, &w);
    drop_table(&shm);
    *peer_ops = stalled(stop_in_lock, locked_hammer, t);
    locked_free(t);
}

/* bench_snapshot - ms to copy a table of 100,000 live counters (best of RUNS) */
static double bench_snapshot(double *lookup_ns)
{
    struct sl_shm shm;
    char name[64];
    uint32_t slot;
    double best = 1e30;

    make_table(&shm, SNAP_COUNTERS, 4);
    uint64_t t0 = now_ns();
    for (int i = 0; i < SNAP_COUNTERS; i++) {
        snprintf(name, sizeof name, "domain-%d.example", i);
        if (sl_shm_lookup(&shm, SL_SCOPE_DOMAIN, name, NULL, 0, &slot) != SL_SHM_OK)
            sl_msg_fatal("lookup %d failed", i);
        sl_shm_set_limit(&shm, slot, i % 50, 1);
    }
    *lookup_ns = (double)(now_ns() - t0) / SNAP_COUNTERS;
    for (int run = 0; run < RUNS; run++) {
        struct sl_counter_view *v;
        size_t n;
        t0 = now_ns();
        if (sl_shm_snapshot(&shm, &v, &n) != 0 || n != SNAP_COUNTERS)
            sl_msg_fatal("snapshot returned %zu counters", n);
        double ms = (double)(now_ns() - t0) / 1e6;
        free(v);
        if (ms < best)
            best = ms;
    }
    drop_table(&shm);
    return best;
}

/* main - every figure, one per line */
int main(void)
{
    static const int procs[] = {2, 8, 32};
    double per_op, ops_s, lookup_ns, peer_op, peer_s;

    sl_msg_init("bench_shm");
    setvbuf(stdout, NULL, _IOLBF, 0);
    double alone = bench_alone();
    printf("reserve+release, 5 counters, uncontended: %.1f ns\n", alone);
    bench_locked(1, &peer_op, &peer_s);
    printf("peer (one robust mutex), uncontended: %.1f ns; sluice takes %.2fx its time\n", peer_op,
           alone / peer_op);
    for (int same = 1; same >= 0; same--)
        for (size_t i = 0; i < sizeof procs / sizeof procs[0]; i++) {
            bench_procs(procs[i], same, &per_op, &ops_s);
            printf("reserve+release, 5 counters, %d processes, %s keys: %.1f ns per op per "
                   "process\n",
                   procs[i], same ? "same" : "distinct", per_op);
            printf("reserve+release, 5 counters, %d processes, %s keys: %.2f M ops/s aggregate\n",
                   procs[i], same ? "same" : "distinct", ops_s / 1e6);
            if (!same)
                continue;
            /* One lock serialises every process whatever its keys: compare on the same keys. */
            bench_locked(procs[i], &peer_op, &peer_s);
            printf("peer (one robust mutex), %d processes: %.2f M ops/s aggregate; "
                   "sluice does %.2fx its throughput\n",
                   procs[i], peer_s / 1e6, ops_s / peer_s);
        }
    long sluice_ops, peer_ops;
    bench_stall(&sluice_ops, &peer_ops);
    printf("one of 3 processes stopped mid-operation for 100 ms: the other 2 complete %ld "
           "reservations with sluice, %ld with the peer\n",
           sluice_ops, peer_ops);
    double snap = bench_snapshot(&lookup_ns);
    printf("lookup (create) of a new counter: %.1f ns\n", lookup_ns);
    printf("snapshot of %d live counters: %.2f ms\n", SNAP_COUNTERS, snap);
    printf("cores online: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    return 0;
}
