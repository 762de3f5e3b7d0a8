/*
 * cluster_impl.h - what the files of cluster/ share: the Lua scripts and the calls that run
 * them on a struct sl_redis.  Private to cluster/.
 * Concurrency: as sl_cluster.h (one handle per process).
 * Trust boundary: replies are Redis'; the helpers return them unchecked, callers check.
 */
#ifndef SL_CLUSTER_IMPL_H
#define SL_CLUSTER_IMPL_H

#include <stdbool.h>

#include <hiredis/hiredis.h>

#include "cluster/sl_cluster.h"

#define SL_SCRIPT_ARGS_MAX 40 /* keys and arguments of one script call */

#define SL_KEY_EPOCH "{sluice}:epoch"
#define SL_KEY_GRACE "{sluice}:grace"
#define SL_KEY_NODES "{sluice}:nodes"
#define SL_KEY_HOLDS "{sluice}:holds"
#define SL_KEY_NODE  "{sluice}:node:"
#define SL_KEY_LEASE "{sluice}:lease:"

enum sl_script {
    SL_SCRIPT_ACQUIRE,
    SL_SCRIPT_ACQUIRE_ALL,
    SL_SCRIPT_RENEW,
    SL_SCRIPT_COUNT,
    SL_SCRIPT_BEAT,
    SL_SCRIPT__COUNT
};
/* The Lua text of a script (scripts.c). */
const char *sl_cluster_script(int s);

/* redis.c: connected now, or reconnected (not sooner than the retry pause). */
bool sl_redis_ready(struct sl_redis *r);
bool sl_redis_connected(const struct sl_redis *r);
/* One script call, EVALSHA then EVAL on NOSCRIPT: the reply (caller frees) or NULL. */
redisReply *sl_redis_script(struct sl_redis *r, enum sl_script s, const char *const *keys,
                            int nkeys, const char *const *args, int nargs);
/* Pipelining: queue script calls, then collect each reply (NULL: the connection dropped). */
void sl_redis_append_script(struct sl_redis *r, enum sl_script s, bool by_sha,
                            const char *const *keys, int nkeys, const char *const *args, int nargs);
redisReply *sl_redis_reply(struct sl_redis *r);
void sl_redis_append_argv(struct sl_redis *r, int argc, const char **argv);
/* One plain command (at most 8 words): the reply (caller frees) or NULL. */
redisReply *sl_redis_command(struct sl_redis *r, int argc, const char **argv);

#endif
