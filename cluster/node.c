/*
 * node.c - the nodes of a cluster: each master's heartbeat, and the list `sluicectl cluster`
 * shows.
 *
 * A heartbeat records the node's Redis time and its leases held ({sluice}:nodes, a sorted set
 * scored by the last heartbeat; {sluice}:holds, a hash); a node is alive when its last
 * heartbeat is within cluster_lease_ttl.  cluster_on_failure = share divides a limit by the
 * nodes last seen alive.  Nodes not heard of for a day are forgotten.
 * Concurrency: one handle per process; the heartbeat is one atomic script.
 * Trust boundary: replies are checked for type; node names are shown escaped by the caller.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "util/sl_msg.h"
#include "cluster_impl.h"

/* sl_cluster_heartbeat - this node is alive and holds holds leases; nodes alive, or -1 */
long sl_cluster_heartbeat(struct sl_redis *r, const char *node, uint32_t holds, long ttl_ms)
{
    char nodekey[SL_CLUSTER_NODE_MAX + 32];
    const char *keys[3] = {SL_KEY_NODES, SL_KEY_HOLDS, nodekey};
    char h[16], ttl[24];
    const char *args[3] = {node, h, ttl};
    redisReply *rep;
    long n;

    snprintf(nodekey, sizeof nodekey, SL_KEY_NODE "%s", node);
    snprintf(h, sizeof h, "%u", holds);
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    rep = sl_redis_script(r, SL_SCRIPT_BEAT, keys, 3, args, 3);
    n = rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0 ? (long)rep->integer
                                                                             : -1;
    if (rep != NULL)
        freeReplyObject(rep);
    return n;
}

/* redis_now_ms - Redis' clock, or 0 */
static uint64_t redis_now_ms(struct sl_redis *r)
{
    const char *argv[] = {"TIME"};
    redisReply *rep = sl_redis_command(r, 1, argv);
    uint64_t now = 0;

    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING)
        now = strtoull(rep->element[0]->str, NULL, 10) * 1000 +
              strtoull(rep->element[1]->str, NULL, 10) / 1000;
    if (rep != NULL)
        freeReplyObject(rep);
    return now;
}

/* holds_of - node's leases as its last heartbeat said, or -1 */
static long holds_of(struct sl_redis *r, const char *node)
{
    const char *argv[] = {"HGET", SL_KEY_HOLDS, node};
    redisReply *rep = sl_redis_command(r, 3, argv);
    long n = rep != NULL && rep->type == REDIS_REPLY_STRING ? strtol(rep->str, NULL, 10) : -1;

    if (rep != NULL)
        freeReplyObject(rep);
    return n;
}

/* sl_cluster_nodes - every node heard of in the last day, with its heartbeat and holds */
int sl_cluster_nodes(struct sl_redis *r, long ttl_ms, struct sl_cluster_node_view **out, size_t *n)
{
    const char *argv[] = {"ZRANGE", SL_KEY_NODES, "0", "-1", "WITHSCORES"};
    uint64_t now = redis_now_ms(r);
    redisReply *rep;

    *out = NULL;
    *n = 0;
    if (now == 0 || (rep = sl_redis_command(r, 5, argv)) == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2 != 0) {
        freeReplyObject(rep);
        return -1;
    }
    *out = sl_calloc(rep->elements / 2 + 1, sizeof **out);
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        struct sl_cluster_node_view *v = &(*out)[*n];
        if (rep->element[i]->type != REDIS_REPLY_STRING ||
            rep->element[i + 1]->type != REDIS_REPLY_STRING)
            continue;
        strlcpy(v->name, rep->element[i]->str, sizeof v->name);
        v->last_ms = strtoull(rep->element[i + 1]->str, NULL, 10);
        v->age_ms = now > v->last_ms ? now - v->last_ms : 0;
        v->alive = v->age_ms <= (uint64_t)ttl_ms;
        (*n)++;
    }
    freeReplyObject(rep);
    for (size_t i = 0; i < *n; i++)
        (*out)[i].holds = holds_of(r, (*out)[i].name);
    return 0;
}
