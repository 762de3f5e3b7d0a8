/*
 * deliver.c - one delivery job: parts of messages for one binding x domain,
 * sent over as few connections as the per-connection limits allow.
 *
 * A job arrives as "J<job> D <binding> <domain> <id>.<k>..." (sl_worker.h).
 * The worker loads each part, opens (or reuses) a connection whose counters
 * it reserved (connect.c), runs one transaction per batch of at most
 * max_recipients_per_batch recipients, and opens a new connection when
 * max_deliveries_per_connection or max_recipients_per_connection is reached.
 * Consecutive transactions, across parts, go out in runs (sl_smtp_send_many:
 * one round trip per message when the peer pipelines), never more than the
 * connection may still carry; each is then settled as if sent on its own.
 * Each recipient's outcome is made durable (outcome.c) before the master is
 * told, in one "D<job> ..." datagram, what became of every part; a part whose
 * recipients need several transactions has those delivered written after each
 * transaction that delivered, before the next body goes.  A session
 * that dies (timeout, reset, garbage) defers what it carried (a transaction
 * of the run with no final reply) and what the job still holds: a peer that
 * stalls costs one phase timeout per job, not one per message.  SIGTERM ends
 * the job after the current run; the parts not attempted go back to the
 * master untouched.
 * Trust boundary: the job comes from our master; its names are checked here
 * before use.  Everything from the peer is bounded by sl_smtp.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <bsd/string.h>

#include "util/sl_clock.h"
#include "util/sl_msg.h"
#include "worker_impl.h"

/* The statistics block (sl_shm.h) counts timeouts per session phase (sl_smtp.h). */
_Static_assert(SL_PH__COUNT <= SL_STATS_PHASES, "every session phase has a timeout counter");

/* A parsed job. */
struct job {
    char id[24];
    char binding[128];
    char domain[SL_DOMAIN_MAX + 1];
    size_t n;
    size_t cap; /* parts allocated: as many as the job's text can name */
    struct sl_part part[];
};

/* job_new - a job with room for every part text names (at most SL_JOB_PARTS), zeroed: a
 * job's parts are allocated to their number, not to the largest job, as a job to one of many
 * small domains carries a few (zeroing room for SL_JOB_PARTS cost more than the parts) */
static struct job *job_new(const char *text)
{
    size_t words = 1, cap;
    struct job *j;

    for (const char *c = text; *c != '\0'; c++)
        words += *c == ' ';
    cap = words > 4 ? words - 4 : 1; /* "J<job> D <binding> <domain>" come first */
    if (cap > SL_JOB_PARTS)
        cap = SL_JOB_PARTS;
    j = sl_calloc(1, sizeof *j + cap * sizeof j->part[0]);
    j->cap = cap;
    return j;
}

/* parse_part - "<id>.<k>[:<attempts>|+][!<crashes>]" */
static bool parse_part(const char *word, struct sl_part *p)
{
    const char *dot = strrchr(word, '.');
    char *end;
    long k;
    unsigned long a = 0, c = 0;

    if (dot == NULL || dot - word != SL_SPOOL_ID_LEN)
        return false;
    k = strtol(dot + 1, &end, 10);
    p->fresh = *end == '+';
    if (p->fresh)
        end++;
    else if (*end == ':') {
        const char *digits = end + 1;
        a = strtoul(digits, &end, 10);
        if (end == digits || a > UINT32_MAX)
            return false;
    }
    if (*end == '!') { /* a suspect: in c jobs whose worker crashed */
        const char *digits = end + 1;
        c = strtoul(digits, &end, 10);
        if (end == digits || c > SL_SPOOL_CRASHES_MAX)
            return false;
    }
    if (*end != '\0' || k < 0 || k >= SL_SPOOL_PARTS_MAX)
        return false;
    p->attempts_floor = (uint32_t)a;
    p->crashes_floor = (uint32_t)c;
    memcpy(p->id, word, SL_SPOOL_ID_LEN);
    p->id[SL_SPOOL_ID_LEN] = '\0';
    p->k = (unsigned)k;
    return true;
}

/* parse_job - "J<job> D <binding> <domain> <id>.<k>..." into j */
static bool parse_job(const char *text, struct job *j)
{
    char *copy = sl_strdup(text), *save = NULL, *w;
    bool ok = false;

    j->n = 0;
    w = strtok_r(copy, " ", &save);
    if (w && strlcpy(j->id, w + 1, sizeof j->id) < sizeof j->id &&
        (w = strtok_r(NULL, " ", &save)) && strcmp(w, "D") == 0 &&
        (w = strtok_r(NULL, " ", &save)) &&
        strlcpy(j->binding, w, sizeof j->binding) < sizeof j->binding &&
        (w = strtok_r(NULL, " ", &save)) &&
        strlcpy(j->domain, w, sizeof j->domain) < sizeof j->domain &&
        sl_worker_plain_word(j->binding) && sl_worker_plain_word(j->domain)) {
        ok = true;
        while (ok && (w = strtok_r(NULL, " ", &save)) != NULL) {
            if (j->n == j->cap) /* more parts than a job carries */
                ok = false;
            else
                ok = parse_part(w, &j->part[j->n++]);
        }
    }
    free(copy);
    return ok && j->n > 0;
}

/* result_of - what a reply code means for the recipients it answers */
static enum sl_rcpt_result result_of(int code)
{
    if (code >= 200 && code < 300)
        return SL_RES_DELIVERED;
    return code >= 500 && code < 600 ? SL_RES_BOUNCED : SL_RES_DEFERRED;
}

/* conn_attempt - the attempt fields of the open connection */
static struct sl_attempt conn_attempt(const struct sl_wstate *w, const struct sl_dest *d,
                                      const char *phase)
{
    return (struct sl_attempt){.d = d,
                               .mx = w->conn.mx,
                               .ip = w->conn.ip,
                               .phase = phase,
                               .tls = &w->conn.tls,
                               .rcptmax = w->conn.s.rcptmax,
                               .mailmax = w->conn.s.mailmax};
}

/* One recipient's end of a transaction. */
struct verdict {
    enum sl_rcpt_result res;
    const char *reply;
    const char *phase;
};

/* judge - the outcome of recipient i of transaction t */
static struct verdict judge(const struct sl_smtp *s, const struct sl_smtp_txn *t, size_t i)
{
    const struct sl_reply *r = &t->rcpt_reply[i];

    if (t->mail.code != 0 && result_of(t->mail.code) != SL_RES_DELIVERED)
        return (struct verdict){result_of(t->mail.code), t->mail.text, "mail_from"};
    if (r->code != 0 && result_of(r->code) != SL_RES_DELIVERED)
        return (struct verdict){result_of(r->code), r->text, "rcpt_to"};
    if (t->data.code != 0 && t->data.code != 354)
        return (struct verdict){result_of(t->data.code), t->data.text,
                                result_of(t->data.code) == SL_RES_DELIVERED ? NULL : "data"};
    return (struct verdict){SL_RES_DEFERRED, s->err[0] ? s->err : "session ended",
                            sl_phase_name(s->phase)};
}

/* settle_txn - record and log every recipient of a finished transaction;
 * true when the message was delivered to at least one of them */
static bool settle_txn(struct sl_wstate *w, const struct sl_dest *d, struct sl_part *p,
                       const size_t *idx, const struct sl_smtp_txn *t)
{
    size_t group[SL_JOB_PARTS * 4];
    bool done[t->nrcpt], any = false;

    memset(done, 0, sizeof done);
    for (size_t i = 0; i < t->nrcpt; i++) {
        struct verdict v = judge(&w->conn.s, t, i);
        size_t n = 0;
        if (done[i])
            continue;
        struct sl_attempt a = conn_attempt(w, d, v.phase);
        /* one log line for every recipient with the same outcome and reply */
        for (size_t j = i; j < t->nrcpt && n < sizeof group / sizeof group[0]; j++) {
            struct verdict u = judge(&w->conn.s, t, j);
            if (done[j] || u.res != v.res || strcmp(u.reply, v.reply) != 0)
                continue;
            done[j] = true;
            group[n++] = idx[j];
            sl_outcome_set(p, idx[j], u.res, u.reply, &a);
            if (u.res == SL_RES_DELIVERED && !w->conn.s.dsn)
                sl_outcome_relayed(p, idx[j], u.reply);
        }
        sl_outcome_log(w, p, group, n, v.res, v.reply, &a);
        any |= v.res == SL_RES_DELIVERED;
    }
    return any;
}

/* bounce_unsent - p cannot go over this session (what the peer announced rules it out):
 * every pending recipient bounces with sluice's own reply, naming the peer's host */
static void bounce_unsent(struct sl_wstate *w, const struct sl_dest *d, struct sl_part *p,
                          const char *reply)
{
    struct sl_attempt a = conn_attempt(w, d, "mail_from");

    a.local = true;
    strlcpy(p->mx, w->conn.mx, sizeof p->mx);
    sl_outcome_all(w, p, SL_RES_BOUNCED, reply, &a);
}

/* too_big - the peer announced a SIZE the message exceeds: bounce without sending */
static bool too_big(struct sl_wstate *w, const struct sl_dest *d, struct sl_part *p)
{
    const struct sl_smtp *s = &w->conn.s;
    char reply[400];

    if (!s->size || s->size_max == 0 || p->msg.size <= s->size_max)
        return false;
    snprintf(reply, sizeof reply,
             "552 5.3.4 message of %llu bytes exceeds the %llu-byte limit of %s",
             (unsigned long long)p->msg.size, (unsigned long long)s->size_max, w->conn.mx);
    bounce_unsent(w, d, p, reply);
    return true;
}

/* no_smtputf8 - the message needs SMTPUTF8 (RFC 6531) and the peer does not offer it: its
 * recipients bounce with 5.6.7, never a downgrade (RFC 6531 3.2) */
static bool no_smtputf8(struct sl_wstate *w, const struct sl_dest *d, struct sl_part *p)
{
    char reply[400];

    if (!p->msg.smtputf8 || w->conn.s.smtputf8)
        return false;
    snprintf(reply, sizeof reply,
             "550 5.6.7 the message needs SMTPUTF8 (UTF-8 in its addresses or header) and %s "
             "does not offer it",
             w->conn.mx);
    bounce_unsent(w, d, p, reply);
    return true;
}

/* conn_spent - the connection reached a per-connection limit */
static bool conn_spent(const struct sl_conn *c, const struct sl_dest *d)
{
    return (d->max_deliveries > 0 && c->deliveries >= (unsigned long)d->max_deliveries) ||
           (d->max_rcpts_conn > 0 && c->rcpts >= (unsigned long)d->max_rcpts_conn) ||
           (c->s.mailmax > 0 && c->txns >= c->s.mailmax); /* the receiver's LIMITS MAILMAX */
}

/* A part's progress through the job. */
struct work {
    size_t *idx;    /* its pending recipients; NULL until the part is reached */
    size_t n;       /* how many */
    size_t sent;    /* how many went into a transaction */
    size_t settled; /* how many got their outcome */
    bool ready;     /* its size passed the peer's SIZE, body and len are read */
    char *body;
    size_t len;
    bool eightbit; /* the body has an octet over 127 */
    bool finished; /* the part's outcome for the master is set */
};

#define RUN_TXNS  16         /* transactions in one pipelined run */
#define RUN_BYTES (4u << 20) /* bodies in one run, beyond its first transaction's */

/* One run: transactions sent in one sl_smtp_send_many, each for recipients
 * idx[from..from + nrcpt) of part k of the job it belongs to. */
struct run {
    struct sl_wstate *w;
    const struct sl_dest *d;
    struct job *j;
    struct work *wk;
    size_t n, rcpts, bytes;
    size_t settled;          /* transactions settled */
    bool throttled;          /* planning stopped at an empty outbound_throttle_messages bucket */
    struct sl_open_info why; /* ... which one, for the log and the master */
    uint64_t sent_us;        /* when the run went out (monotonic) */
    uint64_t mark_us;        /* when its last transaction ended, or it went out */
    struct {
        size_t k, from;
    } slot[RUN_TXNS];
    struct sl_smtp_txn t[RUN_TXNS];
};

/* txn_room - transactions the connection may still carry in one run: each may be a delivery */
static size_t txn_room(const struct sl_conn *c, const struct sl_dest *d)
{
    size_t room = RUN_TXNS;

    if (c->s.mailmax > 0) /* RFC 9422 MAILMAX: transactions on this session */
        room = c->txns < c->s.mailmax ? c->s.mailmax - c->txns : 0;
    if (room > RUN_TXNS)
        room = RUN_TXNS;
    if (d->max_deliveries <= 0)
        return room;
    unsigned long left = (unsigned long)d->max_deliveries > c->deliveries
                             ? (unsigned long)d->max_deliveries - c->deliveries
                             : 0;
    return left < room ? (size_t)left : room;
}

/* lease_room - at most the transactions of a run that end while the connection's cluster
 * leases are good, by how long one has taken on it (one while that is not known yet): the
 * leases are checked before each run, and a run begun just before they lapse (no renewal
 * came: Redis unreachable) must not keep the connection for many more receiver replies, past
 * the lease's life in Redis, where another node may take its unit */
static size_t lease_room(struct sl_wstate *w, size_t room)
{
    uint64_t left = sl_worker_lease_left_us(w), per = w->conn.txn_us;
    uint64_t fit;

    if (left == UINT64_MAX || room <= 1)
        return room;
    if (per == 0)
        return 1;
    fit = left / per;
    return fit < 1 ? 1 : fit < room ? (size_t)fit : room;
}

/* batch_size - recipients for the next transaction, after the planned ones of this run */
static size_t batch_size(const struct sl_conn *c, const struct sl_dest *d, size_t planned,
                         size_t left)
{
    size_t n = left < (size_t)d->max_rcpts_batch ? left : (size_t)d->max_rcpts_batch;

    if (c->s.rcptmax > 0 && n > c->s.rcptmax) /* RFC 9422 RCPTMAX, whatever the config says */
        n = c->s.rcptmax;

    if (d->max_rcpts_conn > 0) {
        unsigned long used = c->rcpts + planned;
        size_t room = (unsigned long)d->max_rcpts_conn > used
                          ? (size_t)((unsigned long)d->max_rcpts_conn - used)
                          : 0;
        if (room < n)
            n = room;
    }
    return n;
}

/* finish - the attempt on part k is over: its outcome, and what it held is freed */
static void finish(struct sl_wstate *w, const struct sl_dest *d, struct job *j, struct work *wk,
                   size_t k)
{
    sl_outcome_finish(w, &j->part[k], d);
    wk[k].finished = true;
    free(wk[k].body);
    wk[k].body = NULL;
}

/* since_arrival - microseconds since the message with queue id id arrived */
static uint64_t since_arrival(const char *id)
{
    uint64_t now = sl_clock_wall_us(), then = sl_spool_id_time_us(id);

    return now > then ? now - then : 0;
}

/* next_part - the first part from k on with recipients still to send; the parts passed over
 * are settled: gone, done already, nothing pending, or held back while draining */
static size_t next_part(struct sl_wstate *w, const struct sl_dest *d, struct job *j,
                        struct work *wk, size_t k)
{
    for (; k < j->n; k++) {
        struct sl_part *p = &j->part[k];
        struct work *x = &wk[k];

        if (!p->loaded || x->finished)
            continue;
        if (x->idx != NULL) {
            if (x->sent < x->n)
                return k;
            continue; /* every recipient in the run under way */
        }
        if (*w->stop) { /* draining: what was not attempted goes back untouched */
            strlcpy(p->outcome, "w", sizeof p->outcome);
            x->finished = true;
            continue;
        }
        x->idx = sl_calloc(p->msg.nrcpt + 1, sizeof *x->idx);
        /* a suspect past its limits bounces before it can crash a worker once more */
        x->n = sl_spool_part_done(&p->msg, p->k, &p->st) || sl_outcome_suspect_over(w, p, d)
                   ? 0
                   : sl_part_pending(p, x->idx);
        if (x->n > 0 && p->st.attempts == 0) /* its first attempt begins */
            sl_lat_observe(w->ctx->shm, sl_worker_lat(w, d->binding), SL_LAT_QUEUED,
                           since_arrival(p->id));
        if (x->n > 0)
            return k;
        finish(w, d, j, wk, k);
    }
    return j->n;
}

/* has_8bit - an octet over 127 in b (one pass the compiler vectorises) */
static bool has_8bit(const char *b, size_t len)
{
    unsigned char any = 0;

    for (size_t i = 0; i < len; i++)
        any |= (unsigned char)b[i];
    return (any & 0x80) != 0;
}

/* load_part - before part k's first transaction: bounce it when the peer's SIZE is too
 * small or it needs SMTPUTF8 the peer lacks, read its body; false when it was settled instead */
static bool load_part(struct sl_wstate *w, const struct sl_dest *d, struct job *j, struct work *wk,
                      size_t k)
{
    struct sl_part *p = &j->part[k];
    struct work *x = &wk[k];
    char err[256];

    if (too_big(w, d, p) || no_smtputf8(w, d, p)) {
        finish(w, d, j, wk, k);
        return false;
    }
    if (sl_spool_body(w->ctx->spool, &p->msg, &x->body, &x->len, err, sizeof err) < 0) {
        sl_part_unreadable(w, p, errno, err); /* nothing was attempted: no state to write */
        x->finished = true;
        return false;
    }
    x->eightbit = has_8bit(x->body, x->len);
    x->ready = true;
    return true;
}

/* add_txn - the next m recipients of part k as the run's next transaction */
static void add_txn(struct run *r, const struct sl_conn *c, struct job *j, struct work *wk,
                    size_t k, size_t m)
{
    struct sl_part *p = &j->part[k];
    struct work *x = &wk[k];
    const char **rcpt = sl_calloc(m, sizeof *rcpt);
    char **rcpt_dsn = sl_calloc(m, sizeof *rcpt_dsn);

    for (size_t i = 0; i < m; i++) {
        rcpt[i] = p->msg.rcpt[x->idx[x->sent + i]].addr;
        rcpt_dsn[i] = sl_dsn_rcpt_params(&p->msg.rcpt[x->idx[x->sent + i]]);
    }
    r->slot[r->n].k = k;
    r->slot[r->n].from = x->sent;
    /* RSET before every transaction but a connection's first, in the same group */
    r->t[r->n] = (struct sl_smtp_txn){.rset = c->txns + r->n > 0,
                                      .sender = p->msg.sender,
                                      .size = p->msg.size,
                                      .smtputf8 = p->msg.smtputf8,
                                      .body8bit = x->eightbit,
                                      .mail_dsn = sl_dsn_mail_params(&p->msg),
                                      .rcpt_dsn = (const char *const *)rcpt_dsn,
                                      .rcpt = rcpt,
                                      .nrcpt = m,
                                      .body = x->body,
                                      .len = x->len,
                                      .rcpt_reply = sl_calloc(m, sizeof(struct sl_reply))};
    x->sent += m;
    r->n++;
    r->rcpts += m;
    r->bytes += x->len;
}

/* message_token - one token of outbound_throttle_messages for the next transaction; false
 * (r->throttled, the refusal in r->why) when a bucket is empty */
static bool message_token(struct sl_wstate *w, const struct sl_dest *d, struct run *r)
{
    bool host_only;

    /* the run's first transaction may wait for its token; the others go in the same write,
     * so they only take a token that is due now */
    if (sl_worker_throttle(w, SL_THROTTLE_MESSAGES, r->n == 0, d->binding, d->domain, w->conn.mx,
                           &r->why, &host_only))
        return true;
    r->throttled = true;
    return false;
}

/* plan - the next run from part k on: consecutive transactions, across parts, as many as
 * the connection may still carry (its deliveries and recipients counted in advance), at
 * most RUN_TXNS and RUN_BYTES of bodies */
static void plan(struct sl_wstate *w, const struct sl_dest *d, struct job *j, struct work *wk,
                 size_t k, struct run *r)
{
    const struct sl_conn *c = &w->conn;
    size_t room = lease_room(w, txn_room(c, d));

    r->n = r->rcpts = r->bytes = r->settled = 0;
    r->throttled = false;
    while (k < j->n && r->n < room) {
        struct work *x = &wk[k];
        if (!x->ready && !load_part(w, d, j, wk, k)) {
            k = next_part(w, d, j, wk, k + 1);
            continue;
        }
        size_t m = batch_size(c, d, r->rcpts, x->n - x->sent);
        if (m == 0 || (r->n > 0 && r->bytes + x->len > RUN_BYTES))
            break;
        if (!message_token(w, d, r))
            break;
        add_txn(r, c, j, wk, k, m);
        if (x->sent == x->n)
            k = next_part(w, d, j, wk, k + 1);
    }
}

/* settle_through - the run's transactions up to upto, in order, each as if it had been its
 * own call; a part is finished (made durable) once every recipient of it is settled, and what
 * it delivered so far is written at each of its transactions before then */
static void settle_through(struct run *r, size_t upto)
{
    struct sl_conn *c = &r->w->conn;

    for (; r->settled < upto; r->settled++) {
        size_t k = r->slot[r->settled].k;
        struct sl_part *p = &r->j->part[k];
        struct work *x = &r->wk[k];
        struct sl_smtp_txn *t = &r->t[r->settled];

        c->txns++;
        c->rcpts += (unsigned)t->nrcpt;
        strlcpy(p->mx, c->mx, sizeof p->mx);
        bool delivered = settle_txn(r->w, r->d, p, x->idx + r->slot[r->settled].from, t);
        c->deliveries += delivered;
        x->settled += t->nrcpt;
        if (x->settled == x->n)
            finish(r->w, r->d, r->j, r->wk, k);
        else if (delivered)
            sl_outcome_checkpoint(r->w, p);
    }
}

/* txn_over - a transaction's replies are in: record it before the next message goes, so a
 * crash leaves at most one accepted message unrecorded (with BDAT, one run's) */
static void txn_over(void *arg, size_t i)
{
    struct run *r = arg;
    struct sl_conn *c = &r->w->conn;
    uint64_t now = sl_clock_us(), took = now - r->mark_us + 1; /* never 0: 0 is unknown */

    sl_lat_observe(r->w->ctx->shm, sl_worker_lat(r->w, r->d->binding), SL_LAT_TXN,
                   now - r->sent_us);
    c->txn_us = c->txn_us == 0 ? took : (3 * c->txn_us + took) / 4; /* since the one before */
    r->mark_us = now;
    settle_through(r, i + 1);
}

/* free_txn - what add_txn allocated for t */
static void free_txn(struct sl_smtp_txn *t)
{
    for (size_t i = 0; i < t->nrcpt; i++)
        free((void *)t->rcpt_dsn[i]);
    free((void *)t->rcpt_dsn);
    free((void *)t->mail_dsn);
    free((void *)t->rcpt);
    free(t->rcpt_reply);
}

/* send_run - the run on the open connection; every transaction settled when it returns;
 * -1 when the session died */
static int send_run(struct sl_wstate *w, struct run *r)
{
    int rc;

    r->sent_us = r->mark_us = sl_clock_us();
    w->conn.s.bdat = r->d->chunking; /* the run's domain decides, on a migrated connection too */
    rc = r->n > 0 ? sl_smtp_send_many(&w->conn.s, r->t, r->n, txn_over, r) : 0;

    settle_through(r, r->n); /* those the session took down with it */
    for (size_t i = 0; i < r->n; i++)
        free_txn(&r->t[i]);
    r->n = 0;
    return rc;
}

/* open_failed - what a failed connection attempt does to recipients idx[0..n) of p */
static void open_failed(struct sl_wstate *w, const struct sl_dest *d, struct sl_part *p,
                        const size_t *idx, size_t n, enum sl_open_result res,
                        const struct sl_open_info *info)
{
    struct sl_attempt a = {.d = d,
                           .mx = info->mx[0] ? info->mx : NULL,
                           .ip = info->ip[0] ? info->ip : NULL,
                           .phase = info->phase,
                           .tls = info->tls.tried ? &info->tls : NULL};

    if (res == SL_OPEN_WAIT) {
        a.scope = info->scope;
        a.why = &info->why;
        if (!p->attempted) { /* not attempted: no state change, the master holds it back */
            /* a bucket's refusals are counted in the bucket, not logged: a paced domain
             * would flood the log; nor are a suspended host's (the master asks again each
             * second) */
            if (info->why.kind != SL_SCOPE_THROTTLE_CONN &&
                info->why.kind != SL_SCOPE_THROTTLE_MSG && info->why.kind != SL_SCOPE_NONE)
                sl_outcome_log(w, p, idx, n, SL_RES_HELD, info->reply, &a);
            return;
        }
    }
    if (info->mx[0])
        strlcpy(p->mx, info->mx, sizeof p->mx);
    sl_outcome_some(w, p, idx, n, res == SL_OPEN_BOUNCE ? SL_RES_BOUNCED : SL_RES_DEFERRED,
                    info->reply, &a);
}

/* ensure_conn - an open, usable connection for d; else the reason in res/info */
static bool ensure_conn(struct sl_wstate *w, const struct sl_dest *d, enum sl_open_result *res,
                        struct sl_open_info *info)
{
    struct sl_conn *c = &w->conn;

    if (c->open && (strcmp(c->binding, d->binding) != 0 || strcmp(c->domain, d->domain) != 0) &&
        (conn_spent(c, d) || !sl_smtp_alive(&c->s) || !sl_conn_migrate(w, d)))
        sl_conn_close(w, true); /* another destination, and the connection cannot carry it */
    if (c->open && conn_spent(c, d) && sl_smtp_alive(&c->s) && sl_worker_lease_valid(w))
        sl_conn_close_kept(w); /* the next connection takes its units over (sl_conn_open) */
    else if (c->open && (conn_spent(c, d) || !sl_smtp_alive(&c->s) || !sl_worker_lease_valid(w)))
        sl_conn_close(w, true);
    if (c->open &&
        sl_worker_host_suspended(w, d->binding, d->domain, c->mx, info->reply, sizeof info->reply))
        sl_conn_close(w, true); /* its host was suspended since: no more mail over it */
    if (c->open)
        return true;
    *res = sl_conn_open(w, d, info);
    return *res == SL_OPEN_OK;
}

/* session_died - the open connection failed mid-transaction: why, for the rest */
static void session_died(struct sl_wstate *w, enum sl_open_result *res, struct sl_open_info *info)
{
    memset(info, 0, sizeof *info);
    if (w->conn.s.fail == SL_SMTP_FAIL_TIMEOUT)
        sl_stats_timeout(w->ctx->shm, w->conn.s.phase);
    info->phase = sl_phase_name(w->conn.s.phase);
    strlcpy(info->reply, w->conn.s.err, sizeof info->reply);
    strlcpy(info->mx, w->conn.mx, sizeof info->mx);
    strlcpy(info->ip, w->conn.ip, sizeof info->ip);
    info->tls = w->conn.tls;
    sl_conn_close(w, false);
    *res = SL_OPEN_DEFER;
}

/* settle_rest - a failure that ends the job: the same outcome for every later part */
static void settle_rest(struct sl_wstate *w, const struct sl_dest *d, struct job *j,
                        struct work *wk, size_t from, enum sl_open_result res,
                        const struct sl_open_info *info)
{
    for (size_t i = from; i < j->n; i++) {
        struct sl_part *p = &j->part[i];
        if (!p->loaded || wk[i].finished)
            continue;
        if (res == SL_OPEN_WAIT) {
            strlcpy(p->outcome, "w", sizeof p->outcome);
            continue;
        }
        size_t *idx = sl_calloc(p->msg.nrcpt + 1, sizeof *idx);
        open_failed(w, d, p, idx, sl_part_pending(p, idx), res, info);
        free(idx);
        finish(w, d, j, wk, i);
    }
}

/* tell_stuck - the counter that refused, for the master; "h" after its slot when the
 * destination has one MX host (its host's counters are then the destination's own) */
static void tell_stuck(struct sl_wstate *w, const struct sl_open_info *info)
{
    struct sl_counter_view v;
    char msg[SL_SHM_NAME_MAX * 2 + 64];
    int n;

    if (sl_shm_view(w->ctx->shm, info->why.slot, &v) < 0)
        return;
    n = snprintf(msg, sizeof msg, "%c %s %s %s %u%s", SL_WMSG_STUCK, sl_scope_kind_name(v.kind),
                 v.name[0] ? v.name : "-", v.name2[0] ? v.name2 : "-", info->why.slot,
                 info->sole_host ? "h" : "");
    send(w->fd, msg, (size_t)n, MSG_NOSIGNAL);
}

/* fail_job - no connection could be had, or it died: part k's unsent recipients and every
 * later part get that outcome */
static void fail_job(struct sl_wstate *w, const struct sl_dest *d, struct job *j, struct work *wk,
                     size_t k, enum sl_open_result res, const struct sl_open_info *info)
{
    struct sl_part *p = &j->part[k];
    struct work *x = &wk[k];

    open_failed(w, d, p, x->idx + x->sent, x->n - x->sent, res, info);
    if (res == SL_OPEN_WAIT && !p->attempted) {
        strlcpy(p->outcome, "w", sizeof p->outcome);
        x->finished = true;
        tell_stuck(w, info);
    } else {
        finish(w, d, j, wk, k);
    }
    settle_rest(w, d, j, wk, k + 1, res, info);
}

/* yields - part k is next and the connection is spent: when other mail waits for a counter
 * the connection holds, the job ends here instead of opening a new connection, and the
 * units go to the mail that waited (fair turns); only at a part's start, so nothing half
 * sent is left behind.  Its own destination's wait (for more connections) is no reason:
 * the master would hand the same mail back.  Each part given back names the counter waited
 * for ("y<slot>", "h" after it when the host is the destination's only one): the master
 * cannot know a host's counters before the MX, and learns them from it. */
static bool yields(struct sl_wstate *w, const struct sl_dest *d, struct job *j, struct work *wk,
                   size_t k)
{
    struct sl_conn *c = &w->conn;
    uint32_t slot;
    char why[16];

    if (!c->open || !conn_spent(c, d) || wk[k].sent > 0 || j->part[k].attempted ||
        !sl_resv_contended(w->ctx->shm, &c->r, sl_shm_waiter_key(d->binding, d->domain), &slot))
        return false;
    snprintf(why, sizeof why, "y%" PRIu32 "%s", slot, c->sole_host ? "h" : "");
    sl_conn_close(w, true);
    for (size_t i = k; i < j->n; i++)
        if (j->part[i].loaded && !wk[i].finished) {
            strlcpy(j->part[i].outcome, why, sizeof j->part[i].outcome);
            wk[i].finished = true;
        }
    return true;
}

/* run_job - deliver every part in order, in runs of pipelined transactions, until done or a
 * failure ends the job */
static void run_job(struct sl_wstate *w, const struct sl_dest *d, struct job *j)
{
    struct work *wk = sl_calloc(j->n, sizeof *wk);
    struct run *r = sl_calloc(1, sizeof *r);
    size_t k = 0;

    r->w = w;
    r->d = d;
    r->j = j;
    r->wk = wk;
    while ((k = next_part(w, d, j, wk, k)) < j->n && !yields(w, d, j, wk, k)) {
        enum sl_open_result res = SL_OPEN_OK;
        struct sl_open_info info = {0};

        if (ensure_conn(w, d, &res, &info)) {
            plan(w, d, j, wk, k, r);
            if (r->n == 0 && r->throttled) { /* the rest waits for the bucket, in the master */
                res = SL_OPEN_WAIT;
                info = r->why;
                strlcpy(info.mx, w->conn.mx, sizeof info.mx);
                strlcpy(info.ip, w->conn.ip, sizeof info.ip);
                if ((k = next_part(w, d, j, wk, k)) < j->n)
                    fail_job(w, d, j, wk, k, res, &info);
                break;
            }
            if (send_run(w, r) == 0)
                continue;
            session_died(w, &res, &info);
            if ((k = next_part(w, d, j, wk, k)) == j->n)
                break;
        }
        fail_job(w, d, j, wk, k, res, &info);
        break;
    }
    for (size_t i = 0; i < j->n; i++) {
        free(wk[i].idx);
        free(wk[i].body);
    }
    free(wk);
    free(r);
}

/* The longest outcome token (" <id>.<k>=f<time>:<attempts>") of every part of a job fits. */
_Static_assert(24 + SL_JOB_PARTS * (1 + SL_SPOOL_ID_LEN + 4 + 2 + 20 + 1 + 10) <= SL_JOB_MAX,
               "outcome datagram too small for a full job");

/* report - "D<job> <id>.<k>=<outcome>..." to the master */
static void report(struct sl_wstate *w, const struct job *j)
{
    char msg[SL_JOB_MAX];
    size_t off = (size_t)snprintf(msg, sizeof msg, "%c%s", SL_WMSG_DONE, j->id);

    for (size_t i = 0; i < j->n && off < sizeof msg; i++)
        off += (size_t)snprintf(msg + off, sizeof msg - off, " %s.%u=%s", j->part[i].id,
                                j->part[i].k, j->part[i].outcome[0] ? j->part[i].outcome : "x");
    if (off >= sizeof msg)
        sl_msg_panic("job %s: outcome datagram over %d bytes", j->id, SL_JOB_MAX);
    if (send(w->fd, msg, off, MSG_NOSIGNAL) < 0)
        sl_msg_debug("master gone: %m");
}

/* dest_for - the settings of binding x domain: read from the config once for a run of
 * jobs to the same destination (the common case: a held connection's next job), not per
 * job.  A worker's config never changes under it: a reload replaces the workers. */
static const struct sl_dest *dest_for(struct sl_wstate *w, const char *binding, const char *domain)
{
    struct sl_dest *d = &w->dest;

    if (!w->have_dest || strcmp(d->binding, binding) != 0 || strcmp(d->domain, domain) != 0) {
        sl_dest_load(w->ctx->cfg, binding, domain, w->hostname, d);
        w->have_dest = true;
    }
    return d;
}

/* sl_worker_close_spent - a connection that a per-connection limit of its destination has
 * spent can carry nothing more of its mail: it ends with its job, so that its units go to
 * waiting mail at once rather than after idle_timeout, and the master sends it no job that it
 * could only give back.  (A sibling domain with a higher limit could have taken it over: it
 * opens a connection of its own instead.) */
void sl_worker_close_spent(struct sl_wstate *w)
{
    const struct sl_conn *c = &w->conn;

    if (c->open && conn_spent(c, dest_for(w, c->binding, c->domain)))
        sl_conn_close(w, true);
}

/* sl_worker_deliver - run one delivery job and report every part's outcome */
void sl_worker_deliver(struct sl_wstate *w, const char *text)
{
    struct job *j = job_new(text);

    if (!parse_job(text, j)) {
        /* no outcome for any part: the master tries them again later.  An "x" (gone) for
         * the parts read before the fault would make it forget mail still in the spool. */
        sl_msg_warn("malformed delivery job: %.80s", text);
        j->n = 0;
    } else {
        const struct sl_dest *d = dest_for(w, j->binding, j->domain);
        for (size_t i = 0; i < j->n; i++)
            sl_part_load(w, &j->part[i]);
        run_job(w, d, j);
    }
    report(w, j);
    for (size_t i = 0; i < j->n; i++)
        sl_part_free(&j->part[i]);
    free(j);
}
