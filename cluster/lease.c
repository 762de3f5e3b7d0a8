/*
 * lease.c - take, give back, renew and count the leases of cluster counters in Redis.
 *
 * acquire and release are the Redis half of a connection's symmetric pair (the worker takes
 * its local counters first, then the leases, all or none in one script call; it gives the
 * leases back first at close, in one pipeline: drop).  renew and drop are the master's: every lease
 * of its node renewed in one pipeline each cluster_lease_ttl / 3, and a dead worker's leases
 * removed when its slots are reclaimed. Concurrency: one handle per process; each script is atomic
 * in Redis. Trust boundary: every reply's type and range are checked; anything else is
 * "unreachable".
 */
#include <stdio.h>
#include <string.h>

#include "util/sl_msg.h"
#include "cluster_impl.h"

/* int_at - element i of an array reply as an integer, or -1 */
static long long int_at(const redisReply *rep, size_t i)
{
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || i >= rep->elements ||
        rep->element[i]->type != REDIS_REPLY_INTEGER)
        return -1;
    return rep->element[i]->integer;
}

/* sl_lease_acquire - one lease of key for member within limit */
enum sl_lease_result sl_lease_acquire(struct sl_redis *r, const char *key, const char *member,
                                      int32_t limit, long ttl_ms, uint32_t *in_use)
{
    const char *keys[3] = {key, SL_KEY_EPOCH, SL_KEY_GRACE};
    char lim[16], ttl[24];
    const char *args[3] = {member, lim, ttl};
    redisReply *rep;
    long long code, n;

    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    rep = sl_redis_script(r, SL_SCRIPT_ACQUIRE, keys, 3, args, 3);
    code = int_at(rep, 0);
    n = int_at(rep, 1);
    if (rep != NULL)
        freeReplyObject(rep);
    if (code < 0 || code > 2 || n < 0)
        return SL_LEASE_DOWN;
    *in_use = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return code == 0 ? SL_LEASE_OK : code == 1 ? SL_LEASE_FULL : SL_LEASE_GRACE;
}

/* sl_lease_acquire_all - member's lease of every key, or of none, in one script call */
enum sl_lease_result sl_lease_acquire_all(struct sl_redis *r, const char *const *keys,
                                          const int32_t *limits, size_t n, const char *member,
                                          long ttl_ms, size_t *refused, uint32_t *in_use)
{
    const char *k[SL_LEASE_BATCH_MAX + 2] = {SL_KEY_EPOCH, SL_KEY_GRACE};
    const char *args[SL_LEASE_BATCH_MAX + 2] = {member};
    char lim[SL_LEASE_BATCH_MAX][16], ttl[24];
    redisReply *rep;
    long long code, at, count;

    _Static_assert(2 * (SL_LEASE_BATCH_MAX + 2) <= SL_SCRIPT_ARGS_MAX, "one call holds them");
    *refused = 0;
    if (n > SL_LEASE_BATCH_MAX)
        sl_msg_panic("cluster: %zu leases for one connection", n);
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    args[1] = ttl;
    for (size_t i = 0; i < n; i++) {
        snprintf(lim[i], sizeof lim[i], "%d", limits[i]);
        k[i + 2] = keys[i];
        args[i + 2] = lim[i];
    }
    rep = sl_redis_script(r, SL_SCRIPT_ACQUIRE_ALL, k, (int)n + 2, args, (int)n + 2);
    code = int_at(rep, 0);
    at = int_at(rep, 1);
    count = int_at(rep, 2);
    if (rep != NULL)
        freeReplyObject(rep);
    if (code < 0 || code > 2 || count < 0 || at < 0 || at > (long long)n || (code > 0) != (at > 0))
        return SL_LEASE_DOWN;
    if (code == 0)
        return SL_LEASE_OK;
    *refused = (size_t)at - 1;
    *in_use = count > UINT32_MAX ? UINT32_MAX : (uint32_t)count;
    return code == 1 ? SL_LEASE_FULL : SL_LEASE_GRACE;
}

/* sl_lease_release - member's lease of key back */
bool sl_lease_release(struct sl_redis *r, const char *key, const char *member)
{
    const char *argv[] = {"ZREM", key, member};
    redisReply *rep = sl_redis_command(r, 3, argv);

    if (rep == NULL)
        return false;
    freeReplyObject(rep);
    return true;
}

/* renew_args - the renewal script's arguments for refs[from..to) (lim and ttl: the caller's
 * buffers of 16 and 24 bytes); their count */
static int renew_args(const struct sl_lease_ref *refs, size_t from, size_t to, long ttl_ms,
                      bool readd, char *lim, char *ttl, const char **args)
{
    int nargs = 0;

    snprintf(lim, 16, "%d", refs[from].limit < 0 ? INT32_MAX : refs[from].limit);
    snprintf(ttl, 24, "%ld", ttl_ms);
    args[nargs++] = lim;
    args[nargs++] = ttl;
    args[nargs++] = readd ? "1" : "0";
    for (size_t i = from; i < to; i++)
        args[nargs++] = refs[i].member;
    return nargs;
}

/* renew_run - renewals of refs[from..to) that share one key, queued as one call */
static void renew_run(struct sl_redis *r, struct sl_lease_ref *refs, size_t from, size_t to,
                      long ttl_ms, bool readd, char *lim, char *ttl)
{
    const char *keys[3] = {refs[from].key, SL_KEY_EPOCH, SL_KEY_GRACE};
    const char *args[SL_SCRIPT_ARGS_MAX];
    int nargs = renew_args(refs, from, to, ttl_ms, readd, lim, ttl, args);

    sl_redis_append_script(r, SL_SCRIPT_RENEW, true, keys, 3, args, nargs);
}

/* run_end - the end of the run of refs sharing refs[from]'s key (at most a script's room) */
static size_t run_end(const struct sl_lease_ref *refs, size_t from, size_t n)
{
    size_t to = from + 1;

    while (to < n && to - from < SL_SCRIPT_ARGS_MAX - 6 &&
           strcmp(refs[to].key, refs[from].key) == 0)
        to++;
    return to;
}

/* settle_run - one renewal reply into refs[from..to); false when it is not one */
static bool settle_run(redisReply *rep, struct sl_lease_ref *refs, size_t from, size_t to)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != to - from)
        return false;
    for (size_t i = from; i < to; i++) {
        long long v = int_at(rep, i - from);
        if (v < 0 || v > 3)
            return false;
        refs[i].result = (int)v;
    }
    return true;
}

/* sl_lease_renew - every lease of refs renewed (with readd, or in Redis' grace, re-added where
 * Redis lost it, within limit); refs sharing a key go in one script call when they are next
 * to each other */
bool sl_lease_renew(struct sl_redis *r, struct sl_lease_ref *refs, size_t n, long ttl_ms,
                    bool readd)
{
    char lim[16], ttl[24];
    size_t runs = 0, from = 0;
    bool ok = true, noscript = false;

    for (size_t i = 0; i < n; i++)
        refs[i].result = -1;
    if (n == 0 || !sl_redis_ready(r))
        return n == 0;
    for (from = 0; from < n; from = run_end(refs, from, n), runs++)
        renew_run(r, refs, from, run_end(refs, from, n), ttl_ms, readd, lim, ttl);
    for (from = 0; from < n && runs > 0; from = run_end(refs, from, n), runs--) {
        redisReply *rep = sl_redis_reply(r);
        if (rep == NULL)
            return false;
        if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0)
            noscript = true;
        else if (!settle_run(rep, refs, from, run_end(refs, from, n)))
            ok = false;
        freeReplyObject(rep);
    }
    if (noscript) { /* Redis restarted: the scripts again, one by one by EVAL */
        for (from = 0; from < n; from = run_end(refs, from, n)) {
            size_t to = run_end(refs, from, n);
            const char *keys[3] = {refs[from].key, SL_KEY_EPOCH, SL_KEY_GRACE};
            const char *args[SL_SCRIPT_ARGS_MAX];
            int nargs;
            redisReply *rep;
            if (refs[from].result >= 0)
                continue;
            /* a Redis without our scripts is another one (restarted, failed over): what it
             * lacks it may have lost, so missing leases are re-added within the limit */
            nargs = renew_args(refs, from, to, ttl_ms, true, lim, ttl, args);
            if ((rep = sl_redis_script(r, SL_SCRIPT_RENEW, keys, 3, args, nargs)) == NULL)
                return false;
            ok = settle_run(rep, refs, from, to) && ok;
            freeReplyObject(rep);
        }
    }
    return ok;
}

/* sl_lease_drop - every lease of refs removed (pipelined ZREMs) */
bool sl_lease_drop(struct sl_redis *r, const struct sl_lease_ref *refs, size_t n)
{
    bool ok = true;

    if (n == 0)
        return true;
    if (!sl_redis_ready(r))
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *argv[] = {"ZREM", refs[i].key, refs[i].member};
        sl_redis_append_argv(r, 3, argv);
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = sl_redis_reply(r);
        if (rep == NULL)
            return false;
        ok = ok && rep->type == REDIS_REPLY_INTEGER;
        freeReplyObject(rep);
    }
    return ok;
}

/* sl_lease_count - the leases of key alive now, cluster-wide */
long sl_lease_count(struct sl_redis *r, const char *key)
{
    const char *keys[1] = {key};
    redisReply *rep = sl_redis_script(r, SL_SCRIPT_COUNT, keys, 1, NULL, 0);
    long n = rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0
                 ? (long)rep->integer
                 : -1;

    if (rep != NULL)
        freeReplyObject(rep);
    return n;
}
