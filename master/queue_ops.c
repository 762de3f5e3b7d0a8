/*
 * queue_ops.c - the operator's queue commands in the master (sl_queue_ops.h):
 * "O <verb> [<id>|<id>.<k> ...] [-- <reason>]" on the control socket, verb one
 * of delete, bounce, hold, release, flush.
 *
 * Each token names a whole message (id) or one of its parts (id.k).  The
 * answer is "OK" and one "<token>=<code>" per token: a (applied now), p (a
 * worker is attempting it: applied when that attempt's outcome is back), n
 * (nothing to do: final already, not queued, or already so), f (failed: the
 * daemon's log says why).  "O flush" without tokens makes every deferred part
 * ready now and answers "OK *=<parts>".
 * Safety against a delivery in flight: the master is the only one that hands
 * parts out, and it never acts on the disk for a part a worker holds; such a
 * part gets a pending command, which sl_queue_ops_settle applies once the
 * outcome moved the part on (deferred, requeued, or its worker died), before
 * the next dispatch.  A part the attempt finished needs nothing: its delivered
 * recipients stay delivered.  Holds are written to the part's state file, so a
 * restart keeps them (pickup.c indexes such a part as HELD).
 * Trust boundary: requests come from local users allowed by the socket's
 * mode; every token is parsed as a queue id before it is looked up, and the
 * reason is kept to printable ASCII and bounded.
 * Concurrency: master only, from the main loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "master/sl_pickup.h"
#include "master/sl_queue_ops.h"
#include "master/sl_schedule.h"
#include "util/sl_msg.h"
#include "worker/sl_worker.h"

#define REASON_MAX 200

enum verb { V_DELETE, V_BOUNCE, V_HOLD, V_RELEASE, V_FLUSH };
static const char *const verbs[] = {"delete", "bounce", "hold", "release", "flush"};

/* A command waiting for the attempt in flight on its part. */
struct pending {
    char id[SL_SPOOL_ID_LEN + 1];
    unsigned k;
    enum verb v;
    char reason[REASON_MAX + 1];
};

static const struct sl_worker_ctx *ops_ctx;
static struct pending *pend;
static size_t npend, pendcap;

/* sl_queue_ops_init - where the on-disk work finds the config and the spool */
void sl_queue_ops_init(const struct sl_worker_ctx *ctx)
{
    ops_ctx = ctx;
}

/* sl_queue_ops_free - the waiting commands */
void sl_queue_ops_free(void)
{
    free(pend);
    pend = NULL;
    npend = pendcap = 0;
}

/* find_pending - the waiting command on part k of id, or NULL */
static struct pending *find_pending(const char *id, unsigned k)
{
    for (size_t i = 0; i < npend; i++)
        if (pend[i].k == k && strcmp(pend[i].id, id) == 0)
            return &pend[i];
    return NULL;
}

/* drop_pending - entry i is done with */
static void drop_pending(size_t i)
{
    pend[i] = pend[--npend];
}

/* add_pending - v waits for the attempt on part k of id (a later command replaces an earlier) */
static void add_pending(const char *id, unsigned k, enum verb v, const char *reason)
{
    struct pending *e = find_pending(id, k);

    if (e == NULL) {
        if (npend == pendcap) {
            pendcap = pendcap ? pendcap * 2 : 16;
            pend = sl_realloc(pend, pendcap * sizeof *pend);
        }
        e = &pend[npend++];
        strlcpy(e->id, id, sizeof e->id);
        e->k = k;
    }
    e->v = v;
    strlcpy(e->reason, reason, sizeof e->reason);
}

/* finish - p is final now; the message leaves the spool after its last part */
static void finish(struct sl_sched *s, struct sl_qpart *p)
{
    char id[SL_SPOOL_ID_LEN + 1];
    size_t nparts = p->msg->nparts;

    memcpy(id, p->msg->id, sizeof id);
    /* one of one part is removed by the command, unless it could not be: then kept out */
    if (sl_queue_finish(s->q, p))
        sl_pickup_finished(s, id, nparts);
}

/* on_disk - run the command on the part's files; what became of it decides its place here */
static char on_disk(struct sl_sched *s, struct sl_qpart *p, enum sl_admin_op op, const char *reason)
{
    char dsn[SL_ADMIN_ID_MAX];
    enum sl_admin_result r;

    p->fresh = false; /* the command may write the part's state file */
    r = sl_worker_admin(ops_ctx, op, p->msg->id, p->k, reason, dsn);

    if (dsn[0] != '\0')
        sl_pickup_new(s, dsn);
    switch (r) {
    case SL_ADMIN_FINAL:
        finish(s, p);
        return op == SL_ADMIN_DELETE || op == SL_ADMIN_BOUNCE ? 'a' : 'n';
    case SL_ADMIN_KEPT:
        if (op == SL_ADMIN_HOLD)
            sl_queue_hold(s->q, p);
        else
            sl_queue_unhold(s->q, p, (int64_t)time(NULL));
        return 'a';
    case SL_ADMIN_GONE:
        sl_queue_drop(s->q, p->msg);
        return 'n';
    default:
        return 'f';
    }
}

/* in_flight - v on a part a worker holds: it waits for the outcome (flush has nothing to do,
 * a release cancels a waiting hold) */
static char in_flight(const struct sl_qpart *p, enum verb v, const char *reason)
{
    struct pending *e = find_pending(p->msg->id, p->k);

    if (v == V_FLUSH)
        return 'n';
    if (v == V_RELEASE) {
        if (e == NULL || e->v != V_HOLD)
            return 'n';
        drop_pending((size_t)(e - pend));
        return 'a';
    }
    add_pending(p->msg->id, p->k, v, reason);
    return 'p';
}

/* apply - v on one part; its code for the answer */
static char apply(struct sl_sched *s, struct sl_qpart *p, enum verb v, const char *reason)
{
    if (p->state == SL_PART_DONE)
        return 'n';
    if (p->state == SL_PART_INFLIGHT)
        return in_flight(p, v, reason);
    switch (v) {
    case V_DELETE:
        return on_disk(s, p, SL_ADMIN_DELETE, reason);
    case V_BOUNCE:
        return on_disk(s, p, SL_ADMIN_BOUNCE, reason);
    case V_HOLD:
        return p->state == SL_PART_HELD ? 'n' : on_disk(s, p, SL_ADMIN_HOLD, reason);
    case V_RELEASE:
        return p->state != SL_PART_HELD ? 'n' : on_disk(s, p, SL_ADMIN_RELEASE, reason);
    default: /* flush: held mail stays held */
        if (p->state != SL_PART_TIMER)
            return 'n';
        sl_queue_flush_part(s->q, p);
        return 'a';
    }
}

/* worst - the code of a message from those of its parts: failed, then pending, then applied */
static char worst(char a, char b)
{
    static const char order[] = "npaf"; /* later wins */
    return strchr(order, b) > strchr(order, a) ? b : a;
}

/* token - v on the message or part tok names; its code */
static char token(struct sl_sched *s, const char *tok, enum verb v, const char *reason)
{
    char id[SL_SPOOL_ID_LEN + 1], code = 'n';
    const char *dot = strchr(tok, '.');
    unsigned k = 0, first, last;
    struct sl_qmsg *m;

    if (dot != NULL ? !sl_sched_parse_part(tok, strlen(tok), id, &k)
                    : strlcpy(id, tok, sizeof id) >= sizeof id || !sl_spool_id_valid(id))
        return 'n';
    if (sl_queue_find(s->q, id) == NULL)
        sl_pickup_id(s, id); /* queued a moment ago, or still waiting for the start scan */
    if ((m = sl_queue_find(s->q, id)) == NULL)
        return 'n';
    first = dot != NULL ? k : 0;
    last = dot != NULL ? k + 1 : m->nparts;
    for (unsigned i = first; i < last; i++) {
        if ((m = sl_queue_find(s->q, id)) == NULL || i >= m->nparts)
            break; /* the message went with its last part */
        code = worst(code, apply(s, &m->part[i], v, reason));
    }
    return code;
}

/* clean_reason - the operator's text as one printable line */
static void clean_reason(const char *in, char *out, size_t len)
{
    size_t n = 0;

    for (; *in != '\0' && n + 1 < len; in++)
        out[n++] = (unsigned char)*in < 0x20 || (unsigned char)*in >= 0x7f ? ' ' : *in;
    out[n] = '\0';
}

/* flush_all - every deferred part is ready now */
static void flush_all(struct sl_sched *s, char *ans, size_t len)
{
    size_t n = sl_queue_release_due(s->q, INT64_MAX);

    sl_msg_info("the operator flushed the queue: %zu deferred parts ready now", n);
    snprintf(ans, len, "OK *=%zu", n);
}

/* sl_queue_ops_request - "O <verb> [tokens] [-- reason]" */
void sl_queue_ops_request(struct sl_sched *s, char *req, char *ans, size_t len)
{
    char reason[REASON_MAX + 1] = "", *sep = strstr(req, " -- "), *save = NULL, *t;
    size_t used;
    int v = -1;

    if (sep != NULL) {
        clean_reason(sep + 4, reason, sizeof reason);
        *sep = '\0';
    }
    req[strcspn(req, "\r\n")] = '\0';
    t = strtok_r(req + 1, " ", &save);
    for (size_t i = 0; t != NULL && i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(t, verbs[i]) == 0)
            v = (int)i;
    if (v < 0 || ops_ctx == NULL) {
        snprintf(ans, len, "ERROR unknown queue command");
        return;
    }
    if ((t = strtok_r(NULL, " ", &save)) == NULL && v == V_FLUSH) {
        flush_all(s, ans, len);
        return;
    }
    used = (size_t)snprintf(ans, len, "OK");
    for (; t != NULL; t = strtok_r(NULL, " ", &save)) {
        char code = token(s, t, (enum verb)v, reason);
        sl_msg_info("operator: %s %s%s%s: %s", verbs[v], t, reason[0] ? " -- " : "", reason,
                    code == 'a'   ? "done"
                    : code == 'p' ? "when the attempt in flight ends"
                    : code == 'f' ? "failed"
                                  : "nothing to do");
        if (used < len)
            used += (size_t)snprintf(ans + used, len - used, " %s=%c", t, code);
    }
}

/* sl_queue_ops_settle - commands whose part's attempt is over run now */
void sl_queue_ops_settle(struct sl_sched *s)
{
    for (size_t i = 0; i < npend;) {
        struct pending e = pend[i];
        struct sl_qmsg *m = sl_queue_find(s->q, e.id);
        struct sl_qpart *p = m != NULL && e.k < m->nparts ? &m->part[e.k] : NULL;

        if (p != NULL && p->state == SL_PART_INFLIGHT) {
            i++;
            continue;
        }
        drop_pending(i);
        if (p == NULL || p->state == SL_PART_DONE) {
            sl_msg_info("operator: %s %s.%u: the attempt in flight made it final", verbs[e.v], e.id,
                        e.k);
            continue;
        }
        sl_msg_info("operator: %s %s.%u after the attempt in flight: %s", verbs[e.v], e.id, e.k,
                    apply(s, p, e.v, e.reason) == 'f' ? "failed" : "done");
    }
}
