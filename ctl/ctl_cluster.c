/*
 * ctl_cluster.c - sluicectl's view of the cluster: `sluicectl cluster` (the nodes, their last
 * heartbeat and their leases), the cluster-wide figures that `counters` and `metrics` add to
 * each cluster counter, and the cluster part of `config check`.
 *
 * A cluster counter in this node's table counts this node's holds; the cluster-wide in-use
 * is read from Redis (the live leases of the counter's key), with the client's short
 * timeouts, so an unreachable Redis costs at most a connect timeout and never touches the
 * daemon.  Without cluster_redis nothing is added (the local counter is the whole limit).
 * Concurrency: a short-lived process; its Redis connection is its own.
 * Trust boundary: the file is the operator's, Redis' replies are checked in cluster/; node
 * names from Redis are printed through the JSON escaper or as plain words.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/sl_cluster.h"
#include "config/sl_limits.h"
#include "ctl/ctl_metrics.h"
#include "ctl/sl_ctl.h"

static struct {
    bool loaded;
    struct sl_cluster_params p;
    struct sl_redis *redis;
} ctl;

/* sl_ctl_cluster_open - the cluster settings of the file, when it loads and sets cluster_redis */
void sl_ctl_cluster_open(const char *cfgpath)
{
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load(cfgpath, &d);
    char err[512];

    sl_diag_free(&d);
    if (cfg == NULL)
        return;
    if (sl_cluster_params(cfg, &ctl.p, err, sizeof err) && ctl.p.enabled) {
        ctl.loaded = true;
        ctl.redis = sl_redis_new(&ctl.p);
    }
    sl_config_free(cfg);
}

/* sl_ctl_cluster_close - the Redis connection closed, the settings forgotten */
void sl_ctl_cluster_close(void)
{
    sl_redis_free(ctl.redis);
    ctl.redis = NULL;
    ctl.loaded = false;
}

/* address - cluster_redis as written */
static void address(char *buf, size_t len)
{
    if (ctl.p.port != 0)
        snprintf(buf, len, "%s:%d", ctl.p.addr, ctl.p.port);
    else
        snprintf(buf, len, "%s", ctl.p.addr);
}

/* cluster_in_use - the counter's live leases across the cluster, -1 when Redis cannot say */
static long cluster_in_use(const struct sl_counter_view *v)
{
    char key[SL_CLUSTER_KEY_MAX];

    sl_cluster_key(v, key, sizeof key);
    return sl_lease_count(ctl.redis, key);
}

/* any_cluster - are there cluster counters among v */
static bool any_cluster(const struct sl_counter_view *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == SL_SCOPE_CLUSTER)
            return true;
    return false;
}

/* sl_ctl_cluster_table - after the counters: each cluster counter's cluster-wide in-use */
void sl_ctl_cluster_table(const struct sl_counter_view *v, size_t n)
{
    char addr[300], key[2 * SL_SHM_NAME_MAX + 4];

    if (!ctl.loaded || !any_cluster(v, n))
        return;
    address(addr, sizeof addr);
    printf("\ncluster (Redis %s, node %s)\n", addr, ctl.p.node);
    printf("%-40s %14s %10s %7s\n", "CLUSTER COUNTER", "CLUSTER IN USE", "THIS NODE", "LIMIT");
    for (size_t i = 0; i < n; i++) {
        long all;
        if (v[i].kind != SL_SCOPE_CLUSTER)
            continue;
        sl_ctl_scope_key(&v[i], key, sizeof key);
        all = cluster_in_use(&v[i]);
        if (all < 0)
            printf("%-40s %14s %10u %7d\n", key, "unreachable", v[i].in_use, v[i].limit);
        else
            printf("%-40s %14ld %10u %7d\n", key, all, v[i].in_use, v[i].limit);
    }
}

/* sl_ctl_cluster_json - after the counters array: ,"cluster":{...} (nothing without Redis) */
void sl_ctl_cluster_json(const struct sl_counter_view *v, size_t n)
{
    char addr[300];
    bool first = true;

    if (!ctl.loaded)
        return;
    address(addr, sizeof addr);
    printf(",\"cluster\":{\"redis\":");
    sl_ctl_json_string(addr);
    printf(",\"node\":");
    sl_ctl_json_string(ctl.p.node);
    printf(",\"counters\":[");
    for (size_t i = 0; i < n; i++) {
        if (v[i].kind != SL_SCOPE_CLUSTER)
            continue;
        printf("%s{\"scope\":", first ? "" : ",");
        sl_ctl_json_string(v[i].name);
        printf(",\"key\":");
        sl_ctl_json_string(v[i].name2);
        printf(",\"cluster_in_use\":%ld,\"node_holds\":%u,\"limit\":%d}", cluster_in_use(&v[i]),
               v[i].in_use, v[i].limit);
        first = false;
    }
    printf("]}");
}

/* sl_ctl_cluster_metrics - the cluster families: cluster-wide in-use per counter, Redis up */
void sl_ctl_cluster_metrics(FILE *f, const struct sl_counter_view *v, size_t n)
{
    char err[256];
    bool up;

    if (!ctl.loaded)
        return;
    up = sl_redis_check(ctl.redis, err, sizeof err) == SL_REDIS_UP;
    fprintf(f,
            "# HELP sluice_cluster_redis_up Whether the cluster's Redis answered this scrape.\n"
            "# TYPE sluice_cluster_redis_up gauge\nsluice_cluster_redis_up %d\n",
            up ? 1 : 0);
    fprintf(f, "# HELP sluice_cluster_in_use Connections open under a cluster counter on every "
               "node (live leases in Redis); this node's holds are "
               "sluice_counter_in_use{kind=\"cluster\"}.\n"
               "# TYPE sluice_cluster_in_use gauge\n");
    for (size_t i = 0; i < n && up; i++) {
        long all;
        char key[2 * SL_SHM_NAME_MAX + 4];
        if (v[i].kind != SL_SCOPE_CLUSTER || (all = cluster_in_use(&v[i])) < 0)
            continue;
        sl_ctl_scope_key(&v[i], key, sizeof key);
        fputs("sluice_cluster_in_use{scope=", f);
        sl_metrics_label(f, key);
        fprintf(f, "} %ld\n", all);
    }
}

/* sl_ctl_cluster_check - config check's cluster part: says once that cluster limits count
 * this node alone without cluster_redis (a warning); reaches Redis when it is set: a refused
 * password is an error (1), an unreachable Redis a warning */
int sl_ctl_cluster_check(const struct sl_config *cfg)
{
    const struct sl_value *addr = &cfg->sections[0]->v[SL_OPT_CLUSTER_REDIS];
    struct sl_cluster_params p;
    struct sl_redis *r;
    char err[512];
    int rc = 0;

    if (!addr->set) {
        if (sl_limits_cluster_any(cfg))
            fprintf(stderr,
                    "%s: warning: cluster limits are set but cluster_redis is not: they count "
                    "this node's connections alone\n",
                    cfg->path);
        return 0;
    }
    if (!sl_cluster_params(cfg, &p, err, sizeof err)) {
        fprintf(stderr, "%s:%u: %s\n", cfg->path, addr->line, err);
        return 1;
    }
    r = sl_redis_new(&p);
    switch (sl_redis_check(r, err, sizeof err)) {
    case SL_REDIS_AUTH:
        fprintf(stderr, "%s:%u: cluster_redis %s: %s\n", cfg->path, addr->line, addr->str, err);
        rc = 1;
        break;
    case SL_REDIS_DOWN:
        fprintf(stderr, "%s:%u: warning: cluster_redis %s: %s\n", cfg->path, addr->line, addr->str,
                err);
        break;
    case SL_REDIS_UP:
        break;
    }
    sl_redis_free(r);
    return rc;
}

/* usage - the subcommand's usage */
static int usage(void)
{
    fprintf(stderr, "usage: sluicectl cluster [--json]\n");
    return 2;
}

/* print_nodes - the node list, as a table or JSON */
static void print_nodes(const struct sl_cluster_node_view *v, size_t n, bool json)
{
    char addr[300];

    address(addr, sizeof addr);
    if (json) {
        printf("{\"redis\":");
        sl_ctl_json_string(addr);
        printf(",\"node\":");
        sl_ctl_json_string(ctl.p.node);
        printf(",\"lease_ttl_ms\":%ld,\"nodes\":[", ctl.p.ttl_ms);
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"name\":", i ? "," : "");
            sl_ctl_json_string(v[i].name);
            printf(",\"alive\":%s,\"last_heartbeat_ms\":%llu,\"age_ms\":%llu,\"holds\":%ld}",
                   v[i].alive ? "true" : "false", (unsigned long long)v[i].last_ms,
                   (unsigned long long)v[i].age_ms, v[i].holds);
        }
        printf("]}\n");
        return;
    }
    printf("Redis %s, this node %s, leases of %ld ms\n", addr, ctl.p.node, ctl.p.ttl_ms);
    printf("%-30s %-6s %16s %7s\n", "NODE", "ALIVE", "LAST HEARTBEAT", "HOLDS");
    for (size_t i = 0; i < n; i++)
        printf("%-30s %-6s %13.1fs ago %7ld\n", v[i].name, v[i].alive ? "yes" : "no",
               (double)v[i].age_ms / 1000.0, v[i].holds);
}

/* sl_ctl_cluster - sluicectl cluster [--json]: the nodes Redis knows */
int sl_ctl_cluster(const char *cfgpath, int argc, char **argv)
{
    struct sl_cluster_node_view *v = NULL;
    bool json = false;
    char err[512] = "";
    size_t n = 0;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else
            return usage();
    }
    sl_ctl_cluster_open(cfgpath);
    if (!ctl.loaded) {
        fprintf(stderr, "sluicectl: %s sets no cluster_redis (or does not load): no cluster\n",
                cfgpath);
        return 1;
    }
    if (sl_redis_check(ctl.redis, err, sizeof err) != SL_REDIS_UP ||
        sl_cluster_nodes(ctl.redis, ctl.p.ttl_ms, &v, &n) < 0) {
        fprintf(stderr, "sluicectl: cluster_redis: %s\n", err[0] ? err : sl_redis_error(ctl.redis));
        rc = 1;
    } else {
        print_nodes(v, n, json);
    }
    free(v);
    sl_ctl_cluster_close();
    return rc;
}
