/*
 * redis.c - one process's connection to the cluster's Redis, through hiredis.
 *
 * Connected on first use with a short connect timeout (SL_CLUSTER_CONNECT_MS) and a short
 * command timeout (SL_CLUSTER_COMMAND_MS), authenticated (AUTH) when a password is set.  A
 * failed call drops the connection; the next one reconnects, but not sooner than
 * SL_CLUSTER_RETRY_MS after a failed attempt, so a dead Redis costs a process at most one
 * connect timeout a second.  Scripts run by EVALSHA with their SHA1 learnt from SCRIPT LOAD
 * at connect; a NOSCRIPT answer (Redis restarted) falls back to EVAL, which caches it again.
 * Concurrency: one handle per process, never shared across fork (a worker opens its own).
 * Trust boundary: replies come from the network; callers check their type and values
 * (cluster_impl.h's helpers), and a protocol error is a failed call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <bsd/string.h>
#include <hiredis/hiredis.h>

#include "util/sl_clock.h"
#include "util/sl_msg.h"
#include "cluster_impl.h"

struct sl_redis {
    struct sl_cluster_params p;
    redisContext *c;
    bool auth_failed;
    uint64_t next_try_us; /* no reconnect before (monotonic µs) */
    uint64_t calls;
    char sha[SL_SCRIPT__COUNT][41];
    char err[256];
};

/* sl_redis_new - a handle for p; nothing is connected yet */
struct sl_redis *sl_redis_new(const struct sl_cluster_params *p)
{
    struct sl_redis *r = sl_calloc(1, sizeof *r);
    r->p = *p;
    return r;
}

/* drop - close the connection after a failure; the next call reconnects (later) */
static void drop(struct sl_redis *r, const char *why)
{
    if (why != NULL)
        strlcpy(r->err, why, sizeof r->err);
    if (r->c != NULL)
        redisFree(r->c);
    r->c = NULL;
    r->next_try_us = sl_clock_us() + SL_CLUSTER_RETRY_MS * 1000ull;
}

/* sl_redis_free - close and free */
void sl_redis_free(struct sl_redis *r)
{
    if (r == NULL)
        return;
    if (r->c != NULL)
        redisFree(r->c);
    explicit_bzero(r->p.password, sizeof r->p.password);
    free(r);
}

/* tv - milliseconds as a timeval */
static struct timeval tv(long ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* authenticate - AUTH with the password; false (and auth_failed when Redis said no) */
static bool authenticate(struct sl_redis *r)
{
    redisReply *rep;
    bool ok;

    if (r->p.password[0] == '\0')
        return true;
    rep = redisCommand(r->c, "AUTH %s", r->p.password);
    r->calls++;
    if (rep == NULL) {
        drop(r, r->c->errstr);
        return false;
    }
    ok = rep->type == REDIS_REPLY_STATUS;
    if (!ok) {
        r->auth_failed = true;
        snprintf(r->err, sizeof r->err, "AUTH refused: %s",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    }
    freeReplyObject(rep);
    if (!ok)
        drop(r, NULL);
    return ok;
}

/* load_scripts - SCRIPT LOAD each script (pipelined) and keep the SHA1s */
static bool load_scripts(struct sl_redis *r)
{
    for (int i = 0; i < SL_SCRIPT__COUNT; i++)
        redisAppendCommand(r->c, "SCRIPT LOAD %s", sl_cluster_script(i));
    for (int i = 0; i < SL_SCRIPT__COUNT; i++) {
        redisReply *rep = NULL;
        r->calls++;
        if (redisGetReply(r->c, (void **)&rep) != REDIS_OK || rep == NULL) {
            drop(r, r->c->errstr);
            return false;
        }
        if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOAUTH", 6) == 0)
            r->auth_failed = true;
        if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
            snprintf(r->err, sizeof r->err, "SCRIPT LOAD: %s",
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
            freeReplyObject(rep);
            drop(r, NULL);
            return false;
        }
        memcpy(r->sha[i], rep->str, 40);
        r->sha[i][40] = '\0';
        freeReplyObject(rep);
    }
    return true;
}

/* connect_now - open, authenticate, load the scripts */
static bool connect_now(struct sl_redis *r)
{
    struct timeval ct = tv(SL_CLUSTER_CONNECT_MS);

    r->auth_failed = false;
    r->c = r->p.port == 0 ? redisConnectUnixWithTimeout(r->p.addr, ct)
                          : redisConnectWithTimeout(r->p.addr, r->p.port, ct);
    if (r->c == NULL) {
        drop(r, "out of memory");
        return false;
    }
    if (r->c->err) {
        char why[256];
        snprintf(why, sizeof why, "cannot connect: %s", r->c->errstr);
        drop(r, why);
        return false;
    }
    if (redisSetTimeout(r->c, tv(SL_CLUSTER_COMMAND_MS)) != REDIS_OK) {
        drop(r, "cannot set the command timeout");
        return false;
    }
    return authenticate(r) && load_scripts(r);
}

/* sl_redis_ready - connected, or connected now; false while Redis is out of reach */
bool sl_redis_ready(struct sl_redis *r)
{
    if (r->c != NULL)
        return true;
    if (sl_clock_us() < r->next_try_us)
        return false;
    return connect_now(r);
}

/* sl_redis_check - connect now if not connected: the state, and why in err */
enum sl_redis_state sl_redis_check(struct sl_redis *r, char *err, size_t errlen)
{
    if (r->c == NULL)
        connect_now(r);
    if (r->c != NULL)
        return SL_REDIS_UP;
    snprintf(err, errlen, "%s", r->err);
    return r->auth_failed ? SL_REDIS_AUTH : SL_REDIS_DOWN;
}

/* sl_redis_error - why the last call failed */
const char *sl_redis_error(const struct sl_redis *r)
{
    return r->err;
}

/* sl_redis_calls - commands sent so far */
uint64_t sl_redis_calls(const struct sl_redis *r)
{
    return r->calls;
}

/* argv_for - EVALSHA (or EVAL) script with its keys and args, as hiredis' argv */
static int argv_for(struct sl_redis *r, enum sl_script s, bool by_sha, const char *const *keys,
                    int nkeys, const char *const *args, int nargs, const char **argv, size_t *lens,
                    char *nk, size_t nklen)
{
    int n = 0;

    snprintf(nk, nklen, "%d", nkeys);
    argv[n++] = by_sha ? "EVALSHA" : "EVAL";
    argv[n++] = by_sha ? r->sha[s] : sl_cluster_script(s);
    argv[n++] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[n++] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[n++] = args[i];
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    return n;
}

/* sl_redis_append_script - queue one script call (pipelined; sl_redis_reply collects it) */
void sl_redis_append_script(struct sl_redis *r, enum sl_script s, bool by_sha,
                            const char *const *keys, int nkeys, const char *const *args, int nargs)
{
    const char *argv[SL_SCRIPT_ARGS_MAX + 8];
    size_t lens[SL_SCRIPT_ARGS_MAX + 8];
    char nk[16];
    int n;

    if (nkeys + nargs > SL_SCRIPT_ARGS_MAX)
        sl_msg_panic("cluster: script call with %d keys and arguments", nkeys + nargs);
    n = argv_for(r, s, by_sha, keys, nkeys, args, nargs, argv, lens, nk, sizeof nk);
    redisAppendCommandArgv(r->c, n, argv, lens);
    r->calls++;
}

/* sl_redis_append_argv - queue one plain command (at most 8 words; pipelined) */
void sl_redis_append_argv(struct sl_redis *r, int argc, const char **argv)
{
    size_t lens[8];

    if (argc > 8)
        sl_msg_panic("cluster: command of %d words", argc);
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisAppendCommandArgv(r->c, argc, argv, lens);
    r->calls++;
}

/* sl_redis_reply - the next reply of the pipeline, or NULL (the connection dropped) */
redisReply *sl_redis_reply(struct sl_redis *r)
{
    redisReply *rep = NULL;

    if (redisGetReply(r->c, (void **)&rep) != REDIS_OK || rep == NULL) {
        drop(r, r->c->errstr[0] ? r->c->errstr : "no reply");
        return NULL;
    }
    return rep;
}

/* sl_redis_script - run one script (EVALSHA, then EVAL on NOSCRIPT); the reply or NULL */
redisReply *sl_redis_script(struct sl_redis *r, enum sl_script s, const char *const *keys,
                            int nkeys, const char *const *args, int nargs)
{
    redisReply *rep;

    if (!sl_redis_ready(r))
        return NULL;
    sl_redis_append_script(r, s, true, keys, nkeys, args, nargs);
    if ((rep = sl_redis_reply(r)) == NULL)
        return NULL;
    if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(rep);
        sl_redis_append_script(r, s, false, keys, nkeys, args, nargs);
        if ((rep = sl_redis_reply(r)) == NULL)
            return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(r->err, sizeof r->err, "%s", rep->str);
        if (strncmp(rep->str, "NOAUTH", 6) == 0 || strncmp(rep->str, "WRONGPASS", 9) == 0)
            r->auth_failed = true;
        freeReplyObject(rep);
        drop(r, NULL);
        return NULL;
    }
    return rep;
}

/* sl_redis_command - one plain command (argv form); the reply or NULL */
redisReply *sl_redis_command(struct sl_redis *r, int argc, const char **argv)
{
    size_t lens[8];
    redisReply *rep;

    if (argc > 8 || !sl_redis_ready(r))
        return NULL;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    r->calls++;
    rep = redisCommandArgv(r->c, argc, argv, lens);
    if (rep == NULL) {
        drop(r, r->c->errstr);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(r->err, sizeof r->err, "%s", rep->str);
        freeReplyObject(rep);
        drop(r, NULL);
        return NULL;
    }
    return rep;
}

/* sl_redis_connected - is the handle connected now (for a pipeline's callers) */
bool sl_redis_connected(const struct sl_redis *r)
{
    return r->c != NULL;
}
