/*
 * bench_cluster.c - what a cluster lease costs: bench_cluster PORT [N]
 *
 * Against the redis-server listening on 127.0.0.1:PORT (started by scripts/bench_delivery.sh's
 * "cluster" part), measures, one figure per line on stdout:
 *   - one connection's lease: acquire + release of one cluster counter, N times in a row from
 *     one process (as a worker does per connection: one script call for all its leases, one
 *     pipeline of ZREMs to give them back), the mean and the 50th / 99th percentile in
 *     microseconds, and the Redis calls (commands) per connection;
 *   - the same with three cluster counters per connection (every cluster scope at once);
 *   - how far one Redis carries: 2, 8 and 32 processes doing acquire + release as fast as they
 *     can on 64 counters, in connections (lease pairs) per second;
 *   - renewals: a node holding 1,000 leases over 100 counters renews them all in one pipeline
 *     (one script call per counter): the time of one round, and the Redis calls per second
 *     it costs at cluster_lease_ttl 30s (a round every 10 s).
 * Keys are under {sluice}:lease:bench*; the Redis is the benchmark's own (flushed first).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/sl_cluster.h"
#include "util/sl_clock.h"

/* params - the benchmark's Redis */
static struct sl_cluster_params params(int port)
{
    struct sl_cluster_params p = {.enabled = true, .port = port, .ttl_ms = 30000};
    snprintf(p.addr, sizeof p.addr, "127.0.0.1");
    snprintf(p.node, sizeof p.node, "bench");
    return p;
}

/* by_value - qsort order of doubles */
static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* pairs - n acquire + release of k counters as a worker does them (one script call for the
 * k leases, one pipeline to give them back); the per-connection times in µs into t */
static int pairs(struct sl_redis *r, int n, int k, double *t, const char *tag)
{
    char key[8][SL_CLUSTER_KEY_MAX], member[SL_CLUSTER_MEMBER_MAX];
    const char *keys[8];
    const int32_t limits[8] = {1000000, 1000000, 1000000, 1000000,
                               1000000, 1000000, 1000000, 1000000};
    struct sl_lease_ref refs[8];
    uint32_t in_use;
    size_t refused;

    for (int j = 0; j < k; j++) {
        snprintf(key[j], sizeof key[j], "{sluice}:lease:bench %s %d", tag, j);
        keys[j] = key[j];
    }
    for (int i = 0; i < n; i++) {
        uint64_t t0 = sl_clock_us();
        snprintf(member, sizeof member, "bench:%ld:%d", (long)getpid(), i % 4);
        if (sl_lease_acquire_all(r, keys, limits, (size_t)k, member, 30000, &refused, &in_use) !=
            SL_LEASE_OK)
            return -1;
        for (int j = 0; j < k; j++) { /* last first, as the worker gives them back */
            snprintf(refs[j].key, sizeof refs[j].key, "%s", key[k - 1 - j]);
            snprintf(refs[j].member, sizeof refs[j].member, "%s", member);
        }
        if (!sl_lease_drop(r, refs, (size_t)k))
            return -1;
        if (t != NULL)
            t[i] = (double)(sl_clock_us() - t0);
    }
    return 0;
}

/* one_connection - the per-connection cost with k cluster counters */
static int one_connection(const struct sl_cluster_params *p, int n, int k)
{
    struct sl_redis *r = sl_redis_new(p);
    double *t = calloc((size_t)n, sizeof *t), sum = 0;
    uint64_t calls0;

    if (t == NULL || pairs(r, 100, k, NULL, "warm") < 0) /* connected, scripts loaded */
        return -1;
    calls0 = sl_redis_calls(r);
    if (pairs(r, n, k, t, "one") < 0)
        return -1;
    for (int i = 0; i < n; i++)
        sum += t[i];
    qsort(t, (size_t)n, sizeof *t, by_value);
    printf("lease acquire + release, %d cluster counter%s: mean %.1f us, p50 %.1f us, p99 %.1f "
           "us; %.1f Redis calls per connection\n",
           k, k > 1 ? "s" : "", sum / n, t[n / 2], t[n * 99 / 100],
           (double)(sl_redis_calls(r) - calls0) / n);
    free(t);
    sl_redis_free(r);
    return 0;
}

/* parallel - procs processes doing lease pairs for a second or so: connections per second */
static int parallel(const struct sl_cluster_params *p, int procs, int n)
{
    uint64_t t0 = sl_clock_us(), us;
    int failed = 0;

    for (int i = 0; i < procs; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            struct sl_redis *r = sl_redis_new(p);
            char tag[16];
            snprintf(tag, sizeof tag, "par%d", i % 64);
            _exit(pairs(r, n, 1, NULL, tag) < 0 ? 1 : 0);
        }
    }
    for (int i = 0; i < procs; i++) {
        int st;
        wait(&st);
        failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    us = sl_clock_us() - t0;
    if (failed)
        return -1;
    printf("one Redis, %2d processes: %.0f connections (lease pairs) per second\n", procs,
           (double)procs * n * 1e6 / (double)us);
    return 0;
}

/* renewals - a node's 1,000 leases over 100 counters, renewed in one round */
static int renewals(const struct sl_cluster_params *p)
{
    enum { LEASES = 1000, KEYS = 100 };
    struct sl_redis *r = sl_redis_new(p);
    struct sl_lease_ref *refs = calloc(LEASES, sizeof *refs);
    uint64_t calls0, best = UINT64_MAX;
    uint32_t in_use;

    if (refs == NULL)
        return -1;
    for (int i = 0; i < LEASES; i++) {
        snprintf(refs[i].key, sizeof refs[i].key, "{sluice}:lease:bench renew %03d", i / 10);
        snprintf(refs[i].member, sizeof refs[i].member, "bench:%d:%d", i, i % 4);
        refs[i].limit = 1000000;
        if (sl_lease_acquire(r, refs[i].key, refs[i].member, refs[i].limit, 30000, &in_use) !=
            SL_LEASE_OK)
            return -1;
    }
    calls0 = sl_redis_calls(r);
    for (int run = 0; run < 5; run++) {
        uint64_t t0 = sl_clock_us();
        if (!sl_lease_renew(r, refs, LEASES, 30000, false))
            return -1;
        if (sl_clock_us() - t0 < best)
            best = sl_clock_us() - t0;
    }
    printf("renewal of %d leases over %d counters: %.2f ms per round, %.0f Redis calls per "
           "round; at cluster_lease_ttl 30s (a round every 10 s): %.1f calls/s per node\n",
           LEASES, KEYS, (double)best / 1000.0, (double)(sl_redis_calls(r) - calls0) / 5,
           (double)(sl_redis_calls(r) - calls0) / 5 / 10.0);
    sl_lease_drop(r, refs, LEASES);
    free(refs);
    sl_redis_free(r);
    return 0;
}

int main(int argc, char **argv)
{
    struct sl_cluster_params p;
    struct sl_redis *r;
    uint32_t in_use;
    int n;

    if (argc < 2) {
        fprintf(stderr, "usage: bench_cluster PORT [N]\n");
        return 2;
    }
    p = params(atoi(argv[1]));
    n = argc > 2 ? atoi(argv[2]) : 20000;
    if (n < 100)
        n = 100;
    /* a fresh Redis starts with a grace of one ttl: begin the cluster's epoch, wait it out */
    p.ttl_ms = 100;
    r = sl_redis_new(&p);
    sl_lease_acquire(r, "{sluice}:lease:bench start", "m", 1, 100, &in_use);
    usleep(150000);
    sl_redis_free(r);
    p.ttl_ms = 30000;
    if (one_connection(&p, n, 1) < 0 || one_connection(&p, n, 3) < 0 ||
        parallel(&p, 2, n / 2) < 0 || parallel(&p, 8, n / 4) < 0 || parallel(&p, 32, n / 8) < 0 ||
        renewals(&p) < 0) {
        fprintf(stderr, "bench_cluster: a lease was refused or Redis failed\n");
        return 1;
    }
    return 0;
}
