/*
 * deliver.c - one delivery job: parts of messages for one binding x domain,
 * sent over as few connections as the per-connection limits allow.
 *
 * A job arrives as "J<job> D <binding> <domain> <id>.<k>..." (sl_worker.h).
 * The worker loads each part, opens (or reuses) a connection whose counters
 * it reserved (connect.c), runs one transaction per batch of at most
 * max_recipients_per_batch recipients, and opens a new connection when
 * max_deliveries_per_connection or max_recipients_per_connection is reached.
 * Each recipient's outcome is made durable (outcome.c) before the master is
 * told, in one "D<job> ..." datagram, what became of every part.  A session
 * that dies (timeout, reset, garbage) defers what it carried and what the job
 * still holds: a peer that stalls costs one phase timeout per job, not one
 * per message.  SIGTERM ends the job after the current part; the parts not
 * attempted go back to the master untouched.
 * Trust boundary: the job comes from our master; its names are checked here
 * before use.  Everything from the peer is bounded by sl_smtp.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <bsd/string.h>

#include "sl_msg.h"
#include "worker_impl.h"

/* A parsed job. */
struct job {
    char id[24];
    char binding[128];
    char domain[SL_DOMAIN_MAX + 1];
    size_t n;
    struct sl_part part[SL_JOB_PARTS];
};

/* parse_part - "<id>.<k>" */
static bool parse_part(const char *word, struct sl_part *p)
{
    const char *dot = strrchr(word, '.');
    char *end;
    long k;

    if (dot == NULL || dot - word != SL_SPOOL_ID_LEN)
        return false;
    k = strtol(dot + 1, &end, 10);
    if (*end != '\0' || k < 0 || k >= SL_SPOOL_PARTS_MAX)
        return false;
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
            memset(&j->part[j->n], 0, sizeof j->part[j->n]);
            ok = j->n < SL_JOB_PARTS && parse_part(w, &j->part[j->n]);
            j->n++;
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
    return (struct sl_attempt){.d = d, .mx = w->conn.mx, .ip = w->conn.ip, .phase = phase};
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
        /* one log line for every recipient with the same outcome and reply */
        for (size_t j = i; j < t->nrcpt && n < sizeof group / sizeof group[0]; j++) {
            struct verdict u = judge(&w->conn.s, t, j);
            if (done[j] || u.res != v.res || strcmp(u.reply, v.reply) != 0)
                continue;
            done[j] = true;
            group[n++] = idx[j];
            sl_outcome_set(p, idx[j], u.res, u.reply);
        }
        struct sl_attempt a = conn_attempt(w, d, v.phase);
        sl_outcome_log(w, p, group, n, v.res, v.reply, &a);
        any |= v.res == SL_RES_DELIVERED;
    }
    return any;
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
    struct sl_attempt a = conn_attempt(w, d, "mail_from");
    sl_outcome_all(w, p, SL_RES_BOUNCED, reply, &a);
    return true;
}

/* conn_spent - the connection reached a per-connection limit */
static bool conn_spent(const struct sl_conn *c, const struct sl_dest *d)
{
    return (d->max_deliveries > 0 && c->deliveries >= (unsigned long)d->max_deliveries) ||
           (d->max_rcpts_conn > 0 && c->rcpts >= (unsigned long)d->max_rcpts_conn);
}

/* batch_size - recipients for the next transaction */
static size_t batch_size(const struct sl_conn *c, const struct sl_dest *d, size_t left)
{
    size_t n = left < (size_t)d->max_rcpts_batch ? left : (size_t)d->max_rcpts_batch;

    if (d->max_rcpts_conn > 0 && (unsigned long)d->max_rcpts_conn - c->rcpts < n)
        n = (size_t)d->max_rcpts_conn - c->rcpts;
    return n;
}

/* run_txn - one transaction for recipients idx[0..n) of p; -1 when the session died */
static int run_txn(struct sl_wstate *w, const struct sl_dest *d, struct sl_part *p,
                   const size_t *idx, size_t n, const char *body, size_t len)
{
    struct sl_conn *c = &w->conn;
    const char **rcpt = sl_calloc(n, sizeof *rcpt);
    struct sl_reply *replies = sl_calloc(n, sizeof *replies);
    struct sl_smtp_txn t = {.rset = c->txns > 0,
                            .sender = p->msg.sender,
                            .size = p->msg.size,
                            .rcpt = rcpt,
                            .nrcpt = n,
                            .body = body,
                            .len = len,
                            .rcpt_reply = replies};
    int rc;

    for (size_t i = 0; i < n; i++)
        rcpt[i] = p->msg.rcpt[idx[i]].addr;
    rc = sl_smtp_send(&c->s, &t);
    c->txns++;
    c->rcpts += (unsigned)n;
    strlcpy(p->mx, c->mx, sizeof p->mx);
    if (settle_txn(w, d, p, idx, &t))
        c->deliveries++;
    free(rcpt);
    free(replies);
    return rc;
}

/* settle_some - recipients idx[0..n) of p end this attempt with res, one log line */
static void settle_some(struct sl_wstate *w, struct sl_part *p, const size_t *idx, size_t n,
                        enum sl_rcpt_result res, const char *reply, const struct sl_attempt *a)
{
    for (size_t i = 0; i < n; i++)
        sl_outcome_set(p, idx[i], res, reply);
    if (n > 0)
        sl_outcome_log(w, p, idx, n, res, reply, a);
}

/* open_failed - what a failed connection attempt does to recipients idx[0..n) of p */
static void open_failed(struct sl_wstate *w, const struct sl_dest *d, struct sl_part *p,
                        const size_t *idx, size_t n, enum sl_open_result res,
                        const struct sl_open_info *info)
{
    struct sl_attempt a = {.d = d,
                           .mx = info->mx[0] ? info->mx : NULL,
                           .ip = info->ip[0] ? info->ip : NULL,
                           .phase = info->phase};

    if (res == SL_OPEN_WAIT) {
        a.scope = info->scope;
        a.why = &info->why;
        if (!p->attempted) { /* not attempted: no state change, the master holds it back */
            sl_outcome_log(w, p, idx, n, SL_RES_DEFERRED, info->reply, &a);
            return;
        }
    }
    if (info->mx[0])
        strlcpy(p->mx, info->mx, sizeof p->mx);
    settle_some(w, p, idx, n, res == SL_OPEN_BOUNCE ? SL_RES_BOUNCED : SL_RES_DEFERRED, info->reply,
                &a);
}

/* ensure_conn - an open, usable connection for d; else the reason in res/info */
static bool ensure_conn(struct sl_wstate *w, const struct sl_dest *d, enum sl_open_result *res,
                        struct sl_open_info *info)
{
    struct sl_conn *c = &w->conn;

    if (c->open && (strcmp(c->binding, d->binding) != 0 || strcmp(c->domain, d->domain) != 0 ||
                    conn_spent(c, d) || !sl_smtp_alive(&c->s)))
        sl_conn_close(w, true);
    if (c->open)
        return true;
    *res = sl_conn_open(w, d, info);
    return *res == SL_OPEN_OK;
}

/* session_died - the open connection failed mid-transaction: why, for the rest */
static void session_died(struct sl_wstate *w, enum sl_open_result *res, struct sl_open_info *info)
{
    memset(info, 0, sizeof *info);
    info->phase = sl_phase_name(w->conn.s.phase);
    strlcpy(info->reply, w->conn.s.err, sizeof info->reply);
    strlcpy(info->mx, w->conn.mx, sizeof info->mx);
    strlcpy(info->ip, w->conn.ip, sizeof info->ip);
    sl_conn_close(w, false);
    *res = SL_OPEN_DEFER;
}

/* deliver_part - every pending recipient of p, in batches; false when the
 * connection could not be had or died (then the rest of p is settled) */
static bool deliver_part(struct sl_wstate *w, const struct sl_dest *d, struct sl_part *p,
                         enum sl_open_result *res, struct sl_open_info *info)
{
    size_t *idx = sl_calloc(p->msg.nrcpt, sizeof *idx);
    size_t n = sl_part_pending(p, idx), off = 0;
    char *body = NULL, err[256];
    size_t len = 0;
    bool ok = true;

    while (off < n) {
        if (!ensure_conn(w, d, res, info)) {
            ok = false;
            break;
        }
        if (off == 0 && too_big(w, d, p))
            break;
        if (body == NULL &&
            sl_spool_body(w->ctx->spool, &p->msg, &body, &len, err, sizeof err) < 0) {
            sl_msg_warn("queue %s: %s", p->id, err);
            break;
        }
        size_t b = batch_size(&w->conn, d, n - off);
        int rc = run_txn(w, d, p, idx + off, b, body, len);
        off += b;
        if (rc < 0) {
            session_died(w, res, info);
            ok = false;
            break;
        }
    }
    if (!ok)
        open_failed(w, d, p, idx + off, n - off, *res, info);
    free(body);
    free(idx);
    return ok;
}

/* settle_rest - a failure that ends the job: the same outcome for every later part */
static void settle_rest(struct sl_wstate *w, const struct sl_dest *d, struct job *j, size_t from,
                        enum sl_open_result res, const struct sl_open_info *info)
{
    for (size_t i = from; i < j->n; i++) {
        struct sl_part *p = &j->part[i];
        if (!p->loaded)
            continue;
        if (res == SL_OPEN_WAIT) {
            strlcpy(p->outcome, "w", sizeof p->outcome);
            continue;
        }
        size_t *idx = sl_calloc(p->msg.nrcpt, sizeof *idx);
        open_failed(w, d, p, idx, sl_part_pending(p, idx), res, info);
        free(idx);
        sl_outcome_finish(w, p, d);
    }
}

/* tell_stuck - the counter that refused, for the master */
static void tell_stuck(struct sl_wstate *w, const struct sl_open_info *info)
{
    struct sl_counter_view v;
    char msg[SL_SHM_NAME_MAX * 2 + 64];
    int n;

    if (sl_shm_view(w->ctx->shm, info->why.slot, &v) < 0)
        return;
    n = snprintf(msg, sizeof msg, "%c %s %s %s", SL_WMSG_STUCK, sl_scope_kind_name(v.kind),
                 v.name[0] ? v.name : "-", v.name2[0] ? v.name2 : "-");
    send(w->fd, msg, (size_t)n, MSG_NOSIGNAL);
}

/* run_job - deliver every part, in order, until done or a failure ends the job */
static void run_job(struct sl_wstate *w, const struct sl_dest *d, struct job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        struct sl_part *p = &j->part[i];
        enum sl_open_result res = SL_OPEN_OK;
        struct sl_open_info info = {0};

        if (!p->loaded)
            continue;
        if (*w->stop) { /* draining: what was not attempted goes back untouched */
            strlcpy(p->outcome, "w", sizeof p->outcome);
            continue;
        }
        if (sl_spool_part_done(&p->msg, p->k, &p->st) || deliver_part(w, d, p, &res, &info)) {
            sl_outcome_finish(w, p, d);
            continue;
        }
        if (res == SL_OPEN_WAIT && !p->attempted) {
            strlcpy(p->outcome, "w", sizeof p->outcome);
            tell_stuck(w, &info);
        } else {
            sl_outcome_finish(w, p, d);
        }
        settle_rest(w, d, j, i + 1, res, &info);
        return;
    }
}

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

/* sl_worker_deliver - run one delivery job and report every part's outcome */
void sl_worker_deliver(struct sl_wstate *w, const char *text)
{
    struct job *j = sl_calloc(1, sizeof *j);
    struct sl_dest d;

    if (!parse_job(text, j)) {
        sl_msg_warn("malformed delivery job: %.80s", text);
        for (size_t i = 0; i < j->n; i++)
            strlcpy(j->part[i].outcome, "x", sizeof j->part[i].outcome);
    } else {
        sl_dest_load(w->ctx->cfg, j->binding, j->domain, w->hostname, &d);
        for (size_t i = 0; i < j->n; i++)
            sl_part_load(w, &j->part[i]);
        run_job(w, &d, j);
    }
    report(w, j);
    for (size_t i = 0; i < j->n; i++)
        sl_part_free(&j->part[i]);
    free(j);
}
