/*
 * outcome.c - what an attempt did to one part of a message, made durable.
 *
 * 2xx: delivered; 4xx or a timeout: deferred; 5xx: bounced.  At the end of
 * an attempt (sl_outcome_finish) a part whose recipients are all final is
 * finished: a message of one part is removed from the spool here, one of
 * several parts gets its final state written and the master removes it after
 * the last.  A part with deferred recipients gets attempts + 1 and its next
 * attempt (retry_interval doubling up to max_retry_interval), unless it is
 * past message_expiration or max_retries: then the rest bounces.  Bounces
 * produce one RFC 3464 report to the sender, queued before the state that
 * records them is written, so a crash can repeat a report but never lose one;
 * a bounce is never bounced.
 * Trust boundary: spool files are ours; replies come from outside and are
 * stored one line, truncated.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <bsd/string.h>

#include "util/sl_msg.h"
#include "worker_impl.h"

#define RCPT_BYTES 12288 /* a delivery-log line's room for its recipients (its buffer: 16 KB) */

/* sl_part_unreadable - queue/ID could not be read (errno e, err says why): gone ("x"), set
 * aside when damaged ("x": it left the queue), or refused for now ("r": a transient failure,
 * the master tries it again later) */
void sl_part_unreadable(struct sl_wstate *w, struct sl_part *p, int e, const char *err)
{
    if (e == EBADMSG) {
        sl_spool_quarantine_msg(w->ctx->spool, p->id, err);
        strlcpy(p->outcome, "x", sizeof p->outcome);
    } else if (e == ENOENT) {
        strlcpy(p->outcome, "x", sizeof p->outcome);
    } else {
        sl_msg_warn("queue %s: %s; the master tries it again later", p->id, err);
        strlcpy(p->outcome, "r", sizeof p->outcome);
    }
}

/* load_state - part k's state; a damaged state file is set aside and the part starts again as
 * never tried (its message is never dropped for it); -1 on a transient failure */
static int load_state(struct sl_wstate *w, struct sl_part *p, char *err, size_t errlen)
{
    const char *spool = w->ctx->spool;

    if (p->fresh) {
        sl_spool_state_initial(&p->st, p->msg.nrcpt);
        return 0;
    }
    if (sl_spool_state_load(spool, p->id, p->k, p->msg.nrcpt, &p->st, err, errlen) == 0)
        return 0;
    if (errno != EBADMSG)
        return -1;
    sl_spool_quarantine_state(spool, p->id, p->k, err);
    return sl_spool_state_load(spool, p->id, p->k, p->msg.nrcpt, &p->st, err, errlen);
}

/* save_suspicion - the master's count of crashed jobs p was in, on disk before the attempt:
 * should this one crash too, a master started again still knows p for a suspect (it goes
 * alone), and sluicectl queue shows it; a failed write costs only that */
static void save_suspicion(struct sl_wstate *w, struct sl_part *p)
{
    char err[256];

    p->st.crashes = p->crashes_floor;
    if (sl_spool_state_save(w->ctx->spool, p->id, p->k, &p->st, err, sizeof err) == 0)
        p->st.on_disk = true; /* the file exists now: it goes with the message */
    else
        sl_msg_warn("queue %s part %u: %s; its crashed jobs are not recorded", p->id, p->k, err);
}

/* sl_part_load - the message envelope and this part's state */
bool sl_part_load(struct sl_wstate *w, struct sl_part *p)
{
    char err[256];

    strlcpy(p->outcome, "x", sizeof p->outcome);
    if (sl_spool_read_full(w->ctx->spool, p->id, &p->msg, err, sizeof err) < 0) {
        sl_part_unreadable(w, p, errno, err);
        return false;
    }
    if (p->k >= p->msg.nparts) {
        sl_msg_warn("queue %s: no part %u in it", p->id, p->k);
        sl_spool_msg_free(&p->msg);
        return false;
    }
    if (load_state(w, p, err, sizeof err) < 0) {
        sl_msg_warn("queue %s part %u: %s; the master tries it again later", p->id, p->k, err);
        strlcpy(p->outcome, "r", sizeof p->outcome);
        sl_spool_msg_free(&p->msg);
        return false;
    }
    if (p->st.attempts < p->attempts_floor) /* the last deferral's state was not saved */
        p->st.attempts = p->attempts_floor;
    if (p->st.crashes < p->crashes_floor)
        save_suspicion(w, p);
    p->bounced = sl_calloc(p->msg.nrcpt, sizeof *p->bounced);
    p->bounce_reply = sl_calloc(p->msg.nrcpt, sizeof *p->bounce_reply);
    p->bounce_local = sl_calloc(p->msg.nrcpt, sizeof *p->bounce_local);
    p->relayed = sl_calloc(p->msg.nrcpt, sizeof *p->relayed);
    p->relay_reply = sl_calloc(p->msg.nrcpt, sizeof *p->relay_reply);
    p->loaded = true;
    return true;
}

/* sl_part_free - everything sl_part_load allocated */
void sl_part_free(struct sl_part *p)
{
    if (!p->loaded)
        return;
    for (size_t i = 0; i < p->nbounced; i++)
        free(p->bounce_reply[i]);
    free(p->bounced);
    free(p->bounce_reply);
    free(p->bounce_local);
    for (size_t i = 0; i < p->nrelayed; i++)
        free(p->relay_reply[i]);
    free(p->relayed);
    free(p->relay_reply);
    sl_spool_state_free(&p->st);
    sl_spool_msg_free(&p->msg);
    p->loaded = false;
}

/* sl_outcome_set - recipient i ends this attempt with res */
void sl_outcome_set(struct sl_part *p, size_t i, enum sl_rcpt_result res, const char *reply,
                    const struct sl_attempt *a)
{
    p->attempted = true;
    if (res == SL_RES_DELIVERED) {
        p->st.status[i] = SL_RCPT_DELIVERED;
    } else if (res == SL_RES_BOUNCED) {
        p->st.status[i] = SL_RCPT_BOUNCED;
        p->bounced[p->nbounced] = i;
        p->bounce_local[p->nbounced] = sl_reply_local(reply, a);
        p->bounce_reply[p->nbounced++] = sl_strdup(reply);
    } else {
        strlcpy(p->st.reply, reply, sizeof p->st.reply);
    }
}

/* sl_outcome_relayed - recipient i, delivered to a peer without DSN: owed a "relayed" report
 * when it asked for successes, the message is not itself a report and has a sender */
void sl_outcome_relayed(struct sl_part *p, size_t i, const char *reply)
{
    if ((p->msg.rcpt[i].notify & SL_NOTIFY_SUCCESS) == 0 || p->msg.dsn ||
        p->msg.sender[0] == '\0' || p->nrelayed >= p->msg.nrcpt)
        return;
    p->relayed[p->nrelayed] = i;
    p->relay_reply[p->nrelayed++] = sl_strdup(reply);
}

/* result_name - the delivery log's word for res */
static const char *result_name(enum sl_rcpt_result res)
{
    switch (res) {
    case SL_RES_DELIVERED:
        return "delivered";
    case SL_RES_BOUNCED:
        return "bounced";
    case SL_RES_HELD:
        return "held"; /* not attempted: a counter was full; counting deferrals skips it */
    case SL_RES_DELETED:
        return "deleted";
    default:
        return "deferred";
    }
}

/* sl_outcome_log - delivery-log lines for some recipients of p: as many as they need, a
 * line holding at most SL_JOB_PARTS * 4 of them and RCPT_BYTES of their addresses (the
 * line's buffer is 16 KB; cut, it would lose recipients and its end) */
void sl_outcome_log(struct sl_wstate *w, const struct sl_part *p, const size_t *idx, size_t n,
                    enum sl_rcpt_result res, const char *reply, const struct sl_attempt *a)
{
    const char *rcpt[SL_JOB_PARTS * 4];
    struct sl_dlog_line l = {.id = p->id,
                             .rcpt = rcpt,
                             .binding = a->d->binding,
                             .domain = a->d->domain,
                             .mx = a->mx,
                             .ip = a->ip,
                             .outcome = result_name(res),
                             .reply = reply,
                             .phase = a->phase,
                             .scope = a->scope,
                             .why = a->why,
                             .tls = a->tls,
                             .rcptmax = a->rcptmax,
                             .mailmax = a->mailmax};

    size_t i = 0;

    do {
        size_t bytes = 0;
        for (l.nrcpt = 0; i < n && l.nrcpt < sizeof rcpt / sizeof rcpt[0]; i++) {
            const char *addr = p->msg.rcpt[idx[i]].addr;
            bytes += 2 * strlen(addr) + 3; /* escaped at worst, quoted, a comma */
            if (l.nrcpt > 0 && bytes > RCPT_BYTES)
                break;
            rcpt[l.nrcpt++] = addr;
        }
        sl_dlog_write(w->dlog, &l);
    } while (i < n);
    if (res == SL_RES_DEFERRED || res == SL_RES_BOUNCED)
        sl_worker_tell_reply(w, a, reply);
    if (p->attempted) /* else held back for a connection slot: no attempt, no outcome */
        sl_stats_outcome(w->ctx->shm, l.outcome, n);
}

/* sl_part_pending - the indexes of p's recipients still pending, into idx; their count */
size_t sl_part_pending(const struct sl_part *p, size_t *idx)
{
    size_t n = 0;

    for (size_t i = 0; i < p->msg.nrcpt; i++)
        if (p->msg.rcpt[i].part == p->k && p->st.status[i] == SL_RCPT_PENDING)
            idx[n++] = i;
    return n;
}

/* sl_outcome_some - recipients idx[0..n) of p end this attempt with res, logged */
void sl_outcome_some(struct sl_wstate *w, struct sl_part *p, const size_t *idx, size_t n,
                     enum sl_rcpt_result res, const char *reply, const struct sl_attempt *a)
{
    for (size_t i = 0; i < n; i++)
        sl_outcome_set(p, idx[i], res, reply, a);
    if (n > 0)
        sl_outcome_log(w, p, idx, n, res, reply, a);
}

/* sl_outcome_all - every pending recipient of p gets res */
void sl_outcome_all(struct sl_wstate *w, struct sl_part *p, enum sl_rcpt_result res,
                    const char *reply, const struct sl_attempt *a)
{
    size_t *idx = sl_calloc(p->msg.nrcpt, sizeof *idx);

    sl_outcome_some(w, p, idx, sl_part_pending(p, idx), res, reply, a);
    free(idx);
}

/* next_delay_s - retry_interval doubled per earlier attempt, capped */
static long next_delay_s(const struct sl_dest *d, uint32_t attempts)
{
    long ms = d->retry_ms > 0 ? d->retry_ms : 1000;

    for (uint32_t i = 1; i < attempts && ms < d->max_retry_ms; i++)
        ms *= 2;
    if (d->max_retry_ms > 0 && ms > d->max_retry_ms)
        ms = d->max_retry_ms;
    return (ms + 999) / 1000;
}

/* give_up - past message_expiration, or max_retries after tries: the reason, else NULL.  In
 * the form of a reply, as the other bounces decided here: 5.4.7 (RFC 3463, delivery time
 * expired) is what the report's Status says, not the last reply's transient code. */
static const char *give_up(const struct sl_part *p, const struct sl_dest *d, uint32_t tries)
{
    if (d->expire_ms >= 0 && (time(NULL) - p->msg.arrival) * 1000 >= d->expire_ms)
        return "554 5.4.7 message expired";
    if (d->max_retries >= 0 && tries > (uint32_t)d->max_retries)
        return "554 5.4.7 too many retries";
    return NULL;
}

/* expire - bounce every pending recipient: the message is too old or tried too often */
static void expire(struct sl_wstate *w, struct sl_part *p, const struct sl_dest *d, const char *why)
{
    struct sl_attempt a = {.d = d, .phase = "expiry"};
    char reply[SL_REPLY_MAX + 64];

    snprintf(reply, sizeof reply, "%s after %u attempts; last reply: %s", why, p->st.attempts,
             p->st.reply);
    sl_outcome_all(w, p, SL_RES_BOUNCED, reply, &a);
}

/* sl_outcome_suspect_over - a suspect (it was in jobs whose worker crashed) past
 * message_expiration or max_retries, each crash counting as an attempt: every pending
 * recipient bounces now, without another try (which would likely crash a worker again: a
 * crash ends no attempt, so the limits were never looked at); true when it did */
bool sl_outcome_suspect_over(struct sl_wstate *w, struct sl_part *p, const struct sl_dest *d)
{
    struct sl_attempt a = {.d = d, .phase = "expiry"};
    char reply[SL_REPLY_MAX + 192];
    const char *why;

    if (p->st.crashes == 0 || (why = give_up(p, d, p->st.attempts + p->st.crashes)) == NULL)
        return false;
    snprintf(reply, sizeof reply,
             "%s after %u attempts and %u crashed jobs (not tried again: it may be what crashes "
             "the workers); last reply: %s",
             why, p->st.attempts, p->st.crashes, p->st.reply[0] ? p->st.reply : "none");
    sl_outcome_all(w, p, SL_RES_BOUNCED, reply, &a);
    return true;
}

/* mendable - a write failure that room or time may mend (a full disk, a passing I/O error) */
static bool mendable(int e)
{
    return e == ENOSPC || e == EDQUOT || e == EIO || e == EMFILE || e == ENFILE || e == ENOMEM ||
           e == EROFS || e == EINTR || e == EAGAIN;
}

/* report_bounces - queue the report for this attempt's bounces; 0, else the errno of a
 * failure to write it that may mend (any other is logged by sl_dsn_queue, and the report
 * given up: trying again would fail again) */
static int report_bounces(struct sl_wstate *w, struct sl_part *p)
{
    char id[SL_SPOOL_ID_LEN + 1];

    if (!sl_dsn_due(p))
        return 0;
    if (sl_dsn_queue(w, p, false, id) < 0)
        return mendable(errno) ? errno : 0;
    sl_worker_tell_new(w, id);
    return 0;
}

/* report_relayed - queue the "relayed" report of this attempt's recipients of p that asked
 * for successes and went to a peer without DSN (a report per part, as for bounces), and
 * forget them: a later report of the attempt names only those relayed since.  They are
 * delivered whatever comes of it: one that could not be written is logged (sl_dsn_queue) and given
 * up, for keeping the recipients queued to report them later would send them the message again. */
static void report_relayed(struct sl_wstate *w, struct sl_part *p)
{
    char id[SL_SPOOL_ID_LEN + 1];

    if (p->nrelayed > 0 && sl_dsn_queue(w, p, true, id) == 0)
        sl_worker_tell_new(w, id);
    for (size_t i = 0; i < p->nrelayed; i++) {
        free(p->relay_reply[i]);
        p->relay_reply[i] = NULL;
    }
    p->nrelayed = 0;
}

/* unbounce - this attempt's bounces could not be reported (e: why): their recipients stay
 * queued, to bounce again (and be reported) at the next attempt, rather than leave the queue
 * with the sender never told.  The delivery log's last word on them is this deferral, not
 * the bounce it logged, and the part is deferred as after an attempt.  A recipient owed no
 * report (NOTIFY=NEVER, or SUCCESS/DELAY without FAILURE) stays bounced. */
static void unbounce(struct sl_wstate *w, struct sl_part *p, const struct sl_dest *d, time_t now,
                     int e)
{
    struct sl_attempt a = {.d = d, .phase = "report"};
    size_t *owed = sl_calloc(p->nbounced, sizeof *owed), n = 0;
    const char *bounce = NULL;
    char reply[SL_REPLY_MAX];

    for (size_t i = 0; i < p->nbounced; i++) {
        if (!sl_dsn_wants_failure(&p->msg.rcpt[p->bounced[i]]))
            continue;
        if (bounce == NULL)
            bounce = p->bounce_reply[i];
        owed[n++] = p->bounced[i];
        p->st.status[p->bounced[i]] = SL_RCPT_PENDING;
    }
    snprintf(reply, sizeof reply,
             "bounce report not written (%s): tried again later; the bounce: %s", strerror(e),
             bounce != NULL ? bounce : "");
    sl_outcome_log(w, p, owed, n, SL_RES_DEFERRED, reply, &a);
    strlcpy(p->st.reply, reply, sizeof p->st.reply);
    sl_msg_warn("queue %s part %u: its %zu bounced recipient(s) stay queued until their report "
                "can be written",
                p->id, p->k, n);
    free(owed);
    p->attempted = true;
    p->st.next = now + next_delay_s(d, p->st.attempts > 0 ? p->st.attempts : 1) + 1;
}

/* save - write part state durably; false (logged) on error */
static bool save(struct sl_wstate *w, struct sl_part *p)
{
    char err[256];

    if (sl_spool_state_save(w->ctx->spool, p->id, p->k, &p->st, err, sizeof err) == 0)
        return true;
    sl_msg_warn("queue %s part %u: %s; kept to be saved again", p->id, p->k, err);
    sl_unsaved_keep(p);
    return false;
}

/* remove_done - the outcome of a finished one-part message (its state file is there if it was
 * read): "d" once its file is removed.  When it cannot be (a read-only file system, an
 * immutable file), a rescan would take it for never tried and send it again: "k" asks the
 * master never to index it again, and its final state is saved for a master that starts
 * again (when the disk takes it: if not, a new master may send it once more). */
static const char *remove_done(struct sl_wstate *w, struct sl_part *p)
{
    if (sl_spool_remove(w->ctx->spool, p->id, p->st.on_disk ? 1 : 0) == 0)
        return "d";
    sl_msg_warn("queue %s: finished, but its file cannot be removed: %s; kept out of the queue",
                p->id, strerror(errno));
    save(w, p);
    return "k";
}

/* sl_outcome_checkpoint - p's recipients go in several transactions (more of them than a
 * transaction takes), and one delivered: its recipients are written as delivered before the
 * next body goes, so a crash of the worker later in the attempt sends them no second copy.
 * This attempt's bounces are written as still pending: their report is queued only at the
 * end (sl_outcome_finish), and a crash before that must bounce them again, not forget them.
 * The "relayed" report of those delivered so far goes first, for once they are written
 * delivered nothing would report them after a crash.  A failed write costs only the
 * protection (the end of the attempt writes again). */
void sl_outcome_checkpoint(struct sl_wstate *w, struct sl_part *p)
{
    struct sl_spool_state st = p->st;
    char err[256];

    report_relayed(w, p);

    st.status = sl_malloc(p->st.nrcpt);
    memcpy(st.status, p->st.status, p->st.nrcpt);
    for (size_t i = 0; i < p->nbounced; i++)
        st.status[p->bounced[i]] = SL_RCPT_PENDING;
    if (sl_spool_state_save(w->ctx->spool, p->id, p->k, &st, err, sizeof err) == 0)
        p->st.on_disk = true; /* the file exists now: it goes with the message */
    else
        sl_msg_warn("queue %s part %u: %s; what it delivered so far is recorded at the end of "
                    "the attempt",
                    p->id, p->k, err);
    free(st.status);
}

/* sl_outcome_finish - settle p after an attempt and say what the master should do */
void sl_outcome_finish(struct sl_wstate *w, struct sl_part *p, const struct sl_dest *d)
{
    size_t *idx = sl_calloc(p->msg.nrcpt, sizeof *idx);
    time_t now = time(NULL);
    const char *why;
    int e;

    if (sl_part_pending(p, idx) > 0 && p->attempted) {
        p->st.attempts++;
        if ((why = give_up(p, d, p->st.attempts)) != NULL)
            expire(w, p, d, why);
        else /* + 1: the spool keeps whole seconds, and a retry never comes early */
            p->st.next = now + next_delay_s(d, p->st.attempts) + 1;
    }
    free(idx);
    if ((e = report_bounces(w, p)) != 0)
        unbounce(w, p, d, now, e);
    report_relayed(w, p);
    if (sl_spool_part_done(&p->msg, p->k, &p->st)) {
        if (p->msg.nparts == 1) {
            strlcpy(p->outcome, remove_done(w, p), sizeof p->outcome);
        } else {
            save(w, p);
            strlcpy(p->outcome, "d", sizeof p->outcome);
        }
    } else if (!p->attempted) {
        strlcpy(p->outcome, "w", sizeof p->outcome);
    } else {
        save(w, p);
        snprintf(p->outcome, sizeof p->outcome, "f%lld:%" PRIu32, (long long)p->st.next,
                 p->st.attempts);
    }
}

/* sl_worker_tell_new - "N <id>" to the master */
void sl_worker_tell_new(struct sl_wstate *w, const char *id)
{
    char msg[SL_SPOOL_ID_LEN + 8];
    int n = snprintf(msg, sizeof msg, "%c %s", SL_WMSG_NEW, id);
    ssize_t sent;

    while ((sent = send(w->fd, msg, (size_t)n, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ; /* a signal is no reason to leave a bounce to the master's next rescan */
    if (sent < 0)
        sl_msg_debug("master gone: %m");
}
