/*
 * admin.c - the operator's queue commands on one part, on disk: delete,
 * bounce, hold, release (sluicectl delete | bounce | hold | release).
 *
 * The master runs these between attempts: for a part that no worker holds
 * (queued, deferred or held), or once the attempt in flight has reported, so
 * the one-writer-per-part rule of the spool holds and nothing is delivered and
 * then bounced.  Delete and bounce make every recipient still pending final;
 * recipients already delivered stay delivered.  A bounce's report is queued
 * before the state that records the bounce, as after an attempt (a crash can
 * repeat a report, never lose one).  The delivery log gets one line per part
 * (phase "operator"); holds go to the daemon's log.
 * Concurrency: the master's main loop; one call at a time.
 * Trust boundary: the id and the reason come from a local operator through the
 * control socket; the id was checked to be a queue id, the reason is stored
 * one printable line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "util/sl_msg.h"
#include "worker_impl.h"

/* admin_state - the little of a worker's state the outcome code needs */
static void admin_state(struct sl_wstate *w, const struct sl_worker_ctx *ctx)
{
    struct sl_scope_ref none = {0};

    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->ctx = ctx;
    w->conn.s.fd = -1;
    w->dlog = sl_dlog_open(sl_config_str(ctx->cfg, SL_OPT_DELIVERY_LOG, &none));
    if (gethostname(w->hostname, sizeof w->hostname - 1) < 0)
        strlcpy(w->hostname, "localhost", sizeof w->hostname);
}

/* save_final - p's recipients are all final: remove a one-part message, else write the state
 * (the master removes the message after its last part).  A one-part message that cannot be
 * removed is final all the same (its recipients are logged final, a report may be queued):
 * its state is saved for a later start, and the master keeps it out of the queue. */
static bool save_final(struct sl_wstate *w, struct sl_part *p)
{
    char err[256];

    if (p->msg.nparts == 1 && sl_spool_remove(w->ctx->spool, p->id, 1) == 0)
        return true;
    if (sl_spool_state_save(w->ctx->spool, p->id, p->k, &p->st, err, sizeof err) == 0)
        return true;
    sl_msg_warn("queue %s part %u: %s", p->id, p->k, err);
    return p->msg.nparts == 1;
}

/* settle - delete or bounce every pending recipient of the loaded part p */
static enum sl_admin_result settle(struct sl_wstate *w, struct sl_part *p, enum sl_admin_op op,
                                   const char *reason, char *dsn_id)
{
    size_t *idx = sl_calloc(p->msg.nrcpt, sizeof *idx);
    size_t n = sl_part_pending(p, idx);
    struct sl_dest d = {0};
    struct sl_attempt a = {.d = &d, .phase = "operator"};
    char reply[SL_REPLY_MAX];

    strlcpy(d.binding, p->msg.binding, sizeof d.binding);
    strlcpy(d.domain, p->msg.domain[p->k], sizeof d.domain);
    snprintf(reply, sizeof reply, "%s by the operator%s%s",
             op == SL_ADMIN_BOUNCE ? "bounced" : "deleted", reason[0] ? ": " : "", reason);
    if (op == SL_ADMIN_BOUNCE) {
        for (size_t i = 0; i < n; i++)
            sl_outcome_set(p, idx[i], SL_RES_BOUNCED, reply, &a);
        if (sl_dsn_due(p) && sl_dsn_queue(w, p, false, dsn_id) < 0) {
            free(idx); /* the sender would never be told (a full disk): nothing changes */
            dsn_id[0] = '\0';
            return SL_ADMIN_FAILED;
        }
        if (n > 0)
            sl_outcome_log(w, p, idx, n, SL_RES_BOUNCED, reply, &a);
    } else {
        for (size_t i = 0; i < n; i++)
            p->st.status[idx[i]] = SL_RCPT_BOUNCED; /* final, not delivered, no report */
        if (n > 0)
            sl_outcome_log(w, p, idx, n, SL_RES_DELETED, reply, &a);
    }
    free(idx);
    if (n > 0 && !save_final(w, p))
        return SL_ADMIN_FAILED;
    if (n > 0)
        sl_msg_info("queue %s part %u (%s): %zu recipients %s by the operator", p->id, p->k,
                    p->msg.domain[p->k], n, op == SL_ADMIN_BOUNCE ? "bounced" : "deleted");
    return SL_ADMIN_FINAL;
}

/* hold - write the part's hold (or its release) */
static enum sl_admin_result hold(struct sl_wstate *w, struct sl_part *p, bool held)
{
    char err[256];

    if (sl_spool_part_done(&p->msg, p->k, &p->st))
        return SL_ADMIN_FINAL;
    p->st.held = held;
    if (sl_spool_state_save(w->ctx->spool, p->id, p->k, &p->st, err, sizeof err) < 0) {
        sl_msg_warn("queue %s part %u: %s", p->id, p->k, err);
        return SL_ADMIN_FAILED;
    }
    sl_msg_info("queue %s part %u (%s): %s by the operator", p->id, p->k, p->msg.domain[p->k],
                held ? "held" : "released");
    return SL_ADMIN_KEPT;
}

/* sl_worker_admin - one operator command on part k of message id */
enum sl_admin_result sl_worker_admin(const struct sl_worker_ctx *ctx, enum sl_admin_op op,
                                     const char *id, unsigned k, const char *reason,
                                     char dsn_id[SL_ADMIN_ID_MAX])
{
    struct sl_wstate w;
    struct sl_part p = {.k = k};
    enum sl_admin_result r;

    dsn_id[0] = '\0';
    admin_state(&w, ctx);
    strlcpy(p.id, id, sizeof p.id);
    if (!sl_part_load(&w, &p))
        r = p.outcome[0] == 'x' ? SL_ADMIN_GONE : SL_ADMIN_FAILED;
    else if (op == SL_ADMIN_HOLD || op == SL_ADMIN_RELEASE)
        r = hold(&w, &p, op == SL_ADMIN_HOLD);
    else
        r = settle(&w, &p, op, reason, dsn_id);
    sl_part_free(&p);
    if (w.dlog >= 0)
        close(w.dlog);
    return r;
}
