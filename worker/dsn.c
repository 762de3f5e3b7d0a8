/*
 * dsn.c - the bounce: an RFC 3464 delivery status notification to the sender.
 *
 * multipart/report; report-type=delivery-status with three parts: a line of
 * text for people, message/delivery-status (per-message fields, then one
 * block per failed recipient: Final-Recipient, Action: failed, Status,
 * Remote-MTA, Diagnostic-Code), and the original message: its header as
 * text/rfc822-headers, or with RET=FULL (RFC 3461 4.3) the whole message as
 * message/rfc822 when it is at most bounce_size_limit bytes (Postfix's name
 * and default; above it the header only, and the text says so).  RET=HDRS
 * and no RET return the header.  A message that needs SMTPUTF8 gets RFC
 * 6533's types instead (message/global, message/global-headers,
 * message/global-delivery-status, a UTF-8 Final-Recipient as "utf-8;"), and
 * its report needs SMTPUTF8 too.  It is queued from the null sender with the
 * dsn flag, through the same durable spool write as inject, on the original
 * binding.  RFC 3461: a recipient whose NOTIFY does not ask for failures
 * (NEVER, or SUCCESS/DELAY alone) is left out of the report, and with none
 * left there is no report; ENVID and ORCPT, kept in the spool from the SMTP
 * client, are given back as Original-Envelope-Id and Original-Recipient.
 * The same report, with Action: relayed and the header only (RFC 3461 4.3: no failure, no
 * content), goes to the sender of a message delivered to a peer that does not offer DSN, for
 * each recipient that asked NOTIFY=SUCCESS (RFC 3461 4.1): the sender learns that no report
 * will come from further on.
 * Trust boundary: the original message and the replies come from outside;
 * replies are kept to one line, the header is copied up to a bound, the
 * whole message only within bounce_size_limit.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "util/sl_idna.h"
#include "util/sl_msg.h"
#include "worker_impl.h"

#define HEADER_COPY_MAX (64 * 1024)

/* A growing text buffer. */
struct text {
    char *s;
    size_t len, cap;
};

/* add - append formatted text */
static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len)
            break;
        t->cap = t->cap * 2 + (size_t)n + 64;
        t->s = sl_realloc(t->s, t->cap);
    }
    t->len += (size_t)n;
}

/* What one report tells: the recipients of a part it is about, and the peer's replies. */
struct report {
    const size_t *rcpt;
    char *const *reply;
    const bool *local; /* reply i is sluice's own, not a peer's; NULL: every one is a peer's */
    size_t n;
    bool relayed; /* delivered to a peer without DSN (else bounced) */
};

/* status_of - the enhanced status of class cls (5: a failure, 2: a success) in a reply
 * ("550 5.1.1 ..."), else cls.0.0 */
static void status_of(const char *reply, unsigned cls, char *buf, size_t len)
{
    unsigned a, b, c;

    if (sscanf(reply, "%*3d %u.%u.%u", &a, &b, &c) == 3 && a == cls)
        snprintf(buf, len, "%u.%u.%u", a, b, c);
    else
        snprintf(buf, len, "%u.0.0", cls);
}

/* copy_lines - the original's lines (un-dot-stuffed) from the start, up to the blank line that
 * ends the header when header_only, else all of it */
static void copy_lines(struct text *t, const char *body, size_t len, bool header_only)
{
    size_t off = 0;

    while (off < len && (!header_only || off < HEADER_COPY_MAX)) {
        const char *eol = memchr(body + off, '\n', len - off);
        size_t n = eol ? (size_t)(eol - (body + off)) + 1 : len - off;
        const char *line = body + off;
        if (header_only && n <= 2 && line[0] == '\r')
            break;
        if (line[0] == '.') {
            line++;
            n--;
        }
        add(t, "%.*s", (int)n, line);
        off = eol ? (size_t)(eol - body) + 1 : len;
    }
}

/* too_big - RET=FULL asked for an original over bounce_size_limit (its size as the sender
 * wrote it, before dot-stuffing), into *limit */
static bool too_big(const struct sl_wstate *w, const struct sl_part *p, uint64_t *limit)
{
    struct sl_scope_ref none = {0};

    *limit = (uint64_t)sl_config_num(w->ctx->cfg, SL_OPT_BOUNCE_SIZE_LIMIT, &none);
    return p->msg.ret_full && p->msg.size > *limit;
}

/* sl_dsn_wants_failure - RFC 3461: no NOTIFY, or one that names FAILURE */
bool sl_dsn_wants_failure(const struct sl_spool_rcpt *r)
{
    return r->notify == 0 || (r->notify & SL_NOTIFY_FAILURE) != 0;
}

/* sl_dsn_due - is a failure report owed for p's bounces: some were bounced, the message is not
 * itself a report (a bounce is never bounced), it has a sender, and a bounced recipient asked
 * for failures (NOTIFY) */
bool sl_dsn_due(const struct sl_part *p)
{
    if (p->nbounced == 0 || p->msg.dsn || p->msg.sender[0] == '\0')
        return false;
    for (size_t i = 0; i < p->nbounced; i++)
        if (sl_dsn_wants_failure(&p->msg.rcpt[p->bounced[i]]))
            return true;
    return false;
}

/* told - is recipient i of rep in its report (a bounce tells only those that want failures) */
static bool told(const struct report *rep, const struct sl_part *p, size_t i)
{
    return rep->relayed || sl_dsn_wants_failure(&p->msg.rcpt[rep->rcpt[i]]);
}

/* per_recipient - the delivery-status block of each recipient the report tells of */
static void per_recipient(struct text *t, const struct sl_part *p, const struct report *rep)
{
    for (size_t i = 0; i < rep->n; i++) {
        const struct sl_spool_rcpt *r = &p->msg.rcpt[rep->rcpt[i]];
        char status[16];
        if (!told(rep, p, i))
            continue;
        status_of(rep->reply[i], rep->relayed ? 2 : 5, status, sizeof status);
        add(t, "\r\n");
        if (r->orcpt != NULL)
            add(t, "Original-Recipient: %s\r\n", r->orcpt);
        /* RFC 6533 3: a UTF-8 address is of type utf-8 */
        add(t, "Final-Recipient: %s; %s\r\nAction: %s\r\nStatus: %s\r\n",
            sl_idna_ascii(r->addr, strlen(r->addr)) ? "rfc822" : "utf-8", r->addr,
            rep->relayed ? "relayed" : "failed", status);
        if (p->mx[0])
            add(t, "Remote-MTA: dns; %s\r\n", p->mx);
        /* RFC 3464 2.3.6: the smtp type is for a reply a server sent; one sluice made up
         * itself (DNS, an expiry, a SIZE it checked) is of its own type, as Postfix's are */
        add(t, "Diagnostic-Code: %s; %s\r\n",
            rep->local != NULL && rep->local[i] ? "X-Sluice" : "smtp", rep->reply[i]);
    }
}

/* returned - the third part: the whole original (RET=FULL within the limit) or its header */
static void returned(struct text *t, const char *boundary, bool full, bool global, const char *body,
                     size_t len)
{
    const char *type = full ? (global ? "message/global" : "message/rfc822")
                            : (global ? "message/global-headers" : "text/rfc822-headers");

    add(t, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary, type);
    copy_lines(t, body, len, !full);
    add(t, "\r\n--%s--\r\n", boundary);
}

/* reporting_mta - the name the report gives its writer (From:, Reporting-MTA): the
 * ehlo_hostname of the message's binding, the name the receivers saw, else the system's */
static const char *reporting_mta(const struct sl_wstate *w, const struct sl_part *p)
{
    struct sl_scope_ref ref = {.binding = p->msg.binding};
    const char *name = sl_config_str(w->ctx->cfg, SL_OPT_EHLO_HOSTNAME, &ref);

    return name != NULL ? name : w->hostname;
}

/* compose - the whole report */
static void compose(struct text *t, struct sl_wstate *w, const struct sl_part *p,
                    const struct report *rep, const char *body, size_t len)
{
    char boundary[40], date[64];
    time_t now = time(NULL), arr = (time_t)p->msg.arrival;
    struct tm tm;
    uint64_t limit;
    bool over = !rep->relayed && too_big(w, p, &limit), global = p->msg.smtputf8;
    bool full = !rep->relayed && p->msg.ret_full && !over && len > 0;
    const char *mta = reporting_mta(w, p);

    snprintf(boundary, sizeof boundary, "sluice-%08x%08x", randombytes_random(),
             randombytes_random());
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&now, &tm));
    add(t, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <%s>\r\n", mta, p->msg.sender);
    add(t, "Subject: %s\r\nDate: %s\r\n",
        rep->relayed ? "Successful Mail Delivery Report" : "Undelivered Mail Returned to Sender",
        date);
    add(t, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
    add(t,
        "Content-Type: multipart/report; report-type=%sdelivery-status;\r\n\tboundary=\"%s\"\r\n",
        global ? "global-" : "", boundary);
    add(t, "\r\n--%s\r\nContent-Type: text/plain; charset=%s\r\n\r\n", boundary,
        global ? "utf-8" : "us-ascii");
    if (rep->relayed)
        add(t,
            "Your message %s was delivered to the mail system of %s\r\nfor the "
            "recipient(s) below. That system does not send delivery notifications:\r\nyou "
            "will get none from there.\r\n",
            p->id, p->msg.domain[p->k]);
    else
        add(t, "Your message %s could not be delivered to recipient(s) at %s.\r\n", p->id,
            p->msg.domain[p->k]);
    for (size_t i = 0; i < rep->n; i++)
        if (told(rep, p, i))
            add(t, "  <%s>: %s\r\n", p->msg.rcpt[rep->rcpt[i]].addr, rep->reply[i]);
    if (over)
        add(t,
            "\r\nThe original message was larger than %llu bytes: only its header is "
            "returned.\r\n",
            (unsigned long long)limit);
    add(t, "\r\n--%s\r\nContent-Type: message/%sdelivery-status\r\n\r\n", boundary,
        global ? "global-" : "");
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&arr, &tm));
    add(t, "Reporting-MTA: dns; %s\r\n", mta);
    if (p->msg.envid != NULL)
        add(t, "Original-Envelope-Id: %s\r\n", p->msg.envid);
    add(t, "X-Sluice-Queue-ID: %s\r\nArrival-Date: %s\r\n", p->id, date);
    per_recipient(t, p, rep);
    returned(t, boundary, full, global, body, len);
}

/* sl_dsn_queue - queue the report of p's bounces (or of its recipients relayed to a peer
 * without DSN) to its sender */
int sl_dsn_queue(struct sl_wstate *w, const struct sl_part *p, bool relayed, char *id)
{
    const struct report rep =
        relayed ? (struct report){p->relayed, p->relay_reply, NULL, p->nrelayed, true}
                : (struct report){p->bounced, p->bounce_reply, p->bounce_local, p->nbounced, false};
    struct sl_scope_ref none = {0};
    const char *rcpt[1] = {p->msg.sender};
    struct text t = {.s = sl_malloc(4096), .cap = 4096};
    char *body = NULL, err[256];
    size_t len = 0;
    int rc;

    t.s[0] = '\0';
    if (sl_spool_body(w->ctx->spool, &p->msg, &body, &len, err, sizeof err) < 0)
        len = 0; /* the report goes out without the original header */
    compose(&t, w, p, &rep, body ? body : "", len);
    struct sl_spool_new m = {
        .binding = p->msg.binding,
        .sender = "",
        .dsn = true,
        .smtputf8 = p->msg.smtputf8, /* its recipient, the sender, may be UTF-8 */
        .rcpt = rcpt,
        .nrcpt = 1,
        .body = t.s,
        .len = t.len,
        .max_size = (uint64_t)sl_config_num(w->ctx->cfg, SL_OPT_MAX_MESSAGE_SIZE, &none) +
                    HEADER_COPY_MAX + 65536 +
                    (uint64_t)sl_config_num(w->ctx->cfg, SL_OPT_BOUNCE_SIZE_LIMIT, &none)};
    rc = sl_spool_write(w->ctx->spool, &m, id, err, sizeof err);
    int e = errno; /* the write's: the caller tells a full disk from the rest */
    if (rc < 0)
        sl_msg_warn("queue %s: %s report not queued: %s", p->id, relayed ? "relayed" : "bounce",
                    err);
    else
        sl_msg_info("queue %s: %s report %s queued to <%s>", p->id, relayed ? "relayed" : "bounce",
                    id, p->msg.sender);
    free(body);
    free(t.s);
    errno = e;
    return rc;
}
