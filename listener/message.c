/*
 * message.c - an accepted body on its way to the spool, and the reply.
 *
 * In front of the client's header go a Received line (RFC 5321 4.4) and,
 * when the client sent none, Date and Message-ID (RFC 6409 8.2, 8.3); a
 * message that starts with text rather than a header field gets a blank line
 * after them, so that its text stays body.  A message with more than HOPS_MAX
 * Received fields is refused (554 5.4.6): it is looping.  The
 * binding is the listener's (binding, one of binding_group's drawn evenly,
 * else "default"), unless binding_header is set and the message carries it:
 * then its value names the binding or group, and the header is removed
 * before the message is queued (an unknown name refuses the message).  The
 * message is then written exactly as `sluicectl inject` writes it
 * (sl_spool_write), with the RFC 3461 values, its directory sync shared with
 * the other listener processes (the group page), and the master is told at
 * once.  250 is sent only after that: a message acknowledged is on disk.
 * A write that fails is a temporary refusal the client retries: 452 4.3.1
 * when the spool's file system is full (RFC 3463 "mail system full"), else
 * 451 4.3.0; the session goes on either way.  Each message queued is logged
 * in one info line ("queued ID: listener= client= [user=] from= nrcpt= size=
 * binding= [binding_group=] tls="), each refused one with the client and why.
 * Concurrency: one session per process; the spool write is safe against
 * every other writer.
 * Trust boundary: the header lines are the client's; only their names are
 * looked at, and the binding header's value only as a name to look up.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "util/sl_clock.h"
#include "util/sl_idna.h"
#include "util/sl_msg.h"
#include "smtpd_impl.h"

#define PREFIX_MAX 2048 /* Received, Date, Message-ID, and a blank line */
/* Received fields a message may carry in: more is a mail loop (RFC 5321 6.3; Postfix's
 * hopcount_limit is 50) */
#define HOPS_MAX 100

/* What the header scan found. */
struct head {
    bool has_date, has_msgid;
    bool has_bh;   /* the binding header is there (its first value below) */
    bool utf8;     /* a header line has a non-ASCII byte (RFC 6532) */
    bool headless; /* the first line is text, not a field nor the blank line: all body */
    unsigned hops; /* Received fields */
    char bh_value[256];
};

/* colon_after - the ':' ending a field name of k bytes at line (RFC 5322 4.5, obs-optional,
 * allows spaces and tabs before it, as do the MTAs downstream); n when there is none */
static size_t colon_after(const char *line, size_t n, size_t k)
{
    while (k < n && (line[k] == ' ' || line[k] == '\t'))
        k++;
    return k < n && line[k] == ':' ? k : n;
}

/* field_is - a header line starts with "name:" (no case) */
static bool field_is(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n > k && strncasecmp(line, name, k) == 0 && colon_after(line, n, k) < n;
}

/* is_field - a header field line: a name of printable characters, then ':' */
static bool is_field(const char *line, size_t n)
{
    size_t i = 0;

    while (i < n && line[i] > ' ' && line[i] < 0x7f && line[i] != ':')
        i++;
    return i > 0 && colon_after(line, n, i) < n;
}

/* value_of - a header's value (after its name's ':'), unfolded and trimmed, into buf */
static void value_of(const char *p, size_t n, size_t name_len, char *buf, size_t len)
{
    size_t o = 0;

    for (size_t i = colon_after(p, n, name_len) + 1; i < n && o + 1 < len; i++)
        if (p[i] != '\r' && p[i] != '\n')
            buf[o++] = p[i] == '\t' ? ' ' : p[i];
    buf[o] = '\0';
    while (o > 0 && buf[o - 1] == ' ')
        buf[--o] = '\0';
    size_t lead = strspn(buf, " ");
    memmove(buf, buf + lead, o - lead + 1);
}

/* field_at - the header field at off: its first line's length (n) and its whole length with
 * continuation lines (whole); false at the blank line or at a body without a header */
static bool field_at(const char *b, size_t len, size_t off, size_t *n, size_t *whole)
{
    const char *lf = memchr(b + off, '\n', len - off);

    *n = lf != NULL ? (size_t)(lf - (b + off)) + 1 : len - off;
    if (off >= len || !is_field(b + off, *n))
        return false;
    *whole = *n;
    while (off + *whole < len && (b[off + *whole] == ' ' || b[off + *whole] == '\t')) {
        const char *nl = memchr(b + off + *whole, '\n', len - off - *whole);
        *whole = nl != NULL ? (size_t)(nl - (b + off)) + 1 : len - off;
    }
    return true;
}

/* scan_head - Date, Message-ID and the first binding header in the header section */
static void scan_head(const struct session *s, const char *b, size_t len, struct head *h)
{
    const char *bh = s->l->binding_header;
    size_t off = 0, n, whole;

    memset(h, 0, sizeof *h);
    for (; field_at(b, len, off, &n, &whole); off += whole) {
        h->hops += field_is(b + off, n, "Received");
        h->has_date |= field_is(b + off, n, "Date");
        h->has_msgid |= field_is(b + off, n, "Message-ID");
        h->utf8 |= !sl_idna_ascii(b + off, whole);
        if (bh != NULL && !h->has_bh && field_is(b + off, n, bh)) {
            h->has_bh = true;
            value_of(b + off, whole, strlen(bh), h->bh_value, sizeof h->bh_value);
        }
    }
    /* "Hello" as the first line: what follows the fields added in front of it is then body,
     * after a blank line, not a broken header line that hides the text from the reader */
    h->headless = off == 0 && len > 0 && b[0] != '\r' && b[0] != '\n';
}

/* draw_from_group - one binding of the group, evenly; NULL when none */
static const struct sl_binding *draw_from_group(const struct sl_config *cfg, const char *group)
{
    const struct sl_binding *pick = NULL;
    uint32_t n = 0;

    for (size_t i = 0; i < cfg->nbindings; i++)
        if (cfg->bindings[i].group != NULL && strcasecmp(cfg->bindings[i].group, group) == 0 &&
            randombytes_uniform(++n) == 0)
            pick = &cfg->bindings[i]; /* reservoir sampling: each member with 1/n */
    return pick;
}

/* from_group - the name of a binding drawn from group, its group's name in *drawn; NULL when
 * the group has none */
static const char *from_group(const struct sl_config *cfg, const char *group, const char **drawn)
{
    const struct sl_binding *b = draw_from_group(cfg, group);

    if (b == NULL)
        return NULL;
    *drawn = b->group; /* the config's spelling, not the client's */
    return b->name;
}

/* pick_binding - by the header's name when given, else the listener's; *group is the group it
 * was drawn from (for the log), or NULL */
static const char *pick_binding(const struct session *s, const char *named, const char **group)
{
    const struct sl_config *cfg = s->ctx->cfg;
    const struct sl_binding *b;

    *group = NULL;
    if (named != NULL) {
        if ((b = sl_config_binding(cfg, named)) != NULL)
            return b->name;
        return from_group(cfg, named, group);
    }
    if (s->l->binding != NULL)
        return s->l->binding;
    if (s->l->binding_group != NULL)
        return from_group(cfg, s->l->binding_group, group);
    return "default";
}

/* prefix - Received, and Date and Message-ID when missing */
static size_t prefix(const struct session *s, const struct head *h, char *buf, size_t len)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    size_t n;

    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&now, &tm));
    n = (size_t)snprintf(
        buf, len, "Received: from %s ([%s%s])\r\n\tby %s (sluice) with %s%s%s;\r\n\t%s\r\n",
        s->helo, strchr(s->peer_ip, ':') != NULL ? "IPv6:" : "", s->peer_ip, s->hostname,
        s->esmtp ? "ESMTP" : "SMTP", s->tls_on ? "S" : "", s->auth_user != NULL ? "A" : "", date);
    if (n < len && !h->has_date)
        n += (size_t)snprintf(buf + n, len - n, "Date: %s\r\n", date);
    if (n < len && !h->has_msgid) {
        uint32_t r[2];
        randombytes_buf(r, sizeof r); /* one system call, not one per word */
        n += (size_t)snprintf(buf + n, len - n, "Message-ID: <%lld.%08x%08x@%s>\r\n",
                              (long long)now, r[0], r[1], s->hostname);
    }
    if (n < len && h->headless)
        n += (size_t)snprintf(buf + n, len - n, "\r\n");
    return n < len ? n : len - 1;
}

/* compose - the message as it is queued: prefix, then the body without any binding header */
static char *compose(const struct session *s, const struct head *h, size_t *out_len)
{
    const struct txn *t = &s->t;
    const char *bh = s->l->binding_header;
    char *m = sl_malloc(PREFIX_MAX + t->len);
    size_t n = prefix(s, h, m, PREFIX_MAX), off = 0, first, whole;

    for (; bh != NULL && field_at(t->body, t->len, off, &first, &whole); off += whole)
        if (!field_is(t->body + off, first, bh)) {
            memcpy(m + n, t->body + off, whole);
            n += whole;
        }
    memcpy(m + n, t->body + off, t->len - off);
    *out_len = n + t->len - off;
    return m;
}

/* needs_smtputf8 - RFC 6531: the client asked for SMTPUTF8 and the envelope or the header
 * has UTF-8, so the message may go out only to a receiver that offers SMTPUTF8 */
static bool needs_smtputf8(const struct txn *t, const struct head *h)
{
    if (!t->smtputf8)
        return false;
    if (h->utf8 || !sl_idna_ascii(t->sender, strlen(t->sender)))
        return true;
    for (size_t i = 0; i < t->nrcpt; i++)
        if (!sl_idna_ascii(t->rcpt[i].addr, strlen(t->rcpt[i].addr)))
            return true;
    return false;
}

/* write_spool - the message durably in the spool; 0 with its id, or -1 with err and errno
 * (ENOSPC or EDQUOT: the file system is full) */
static int write_spool(const struct session *s, const struct head *h, const char *binding,
                       const char *body, size_t len, char *id, char *err, size_t errlen)
{
    const struct txn *t = &s->t;
    const char **rcpt = sl_calloc(t->nrcpt, sizeof *rcpt);
    const char **orcpt = sl_calloc(t->nrcpt, sizeof *orcpt);
    unsigned *notify = sl_calloc(t->nrcpt, sizeof *notify);
    int rc;

    for (size_t i = 0; i < t->nrcpt; i++) {
        rcpt[i] = t->rcpt[i].addr;
        orcpt[i] = t->rcpt[i].orcpt;
        notify[i] = t->rcpt[i].notify;
    }
    struct sl_spool_new m = {.binding = binding,
                             .sender = t->sender,
                             .rcpt = rcpt,
                             .nrcpt = t->nrcpt,
                             .body = body,
                             .len = len,
                             .max_size = s->max_size + PREFIX_MAX,
                             .group = s->ctx->group,
                             .envid = t->envid,
                             .ret_hdrs = t->ret_hdrs,
                             .ret_full = t->ret_set && !t->ret_hdrs,
                             .smtputf8 = needs_smtputf8(t, h),
                             .notify = notify,
                             .orcpt = orcpt};
    errno = 0; /* a refusal before any write leaves it 0 */
    rc = sl_spool_write(s->ctx->spool, &m, id, err, errlen);
    int saved = errno;
    free(rcpt);
    free(orcpt);
    free(notify);
    errno = saved;
    return rc;
}

/* log_queued - the one line per accepted message an operator greps for (Postfix's "queued as"):
 * who sent what, with DATA or BDAT, through which listener and binding; never a password */
static void log_queued(const struct session *s, const char *id, const char *binding,
                       const char *group, size_t size)
{
    char from[SL_ADDR_MAX * 4 + 1], user[256 * 4 + 1] = "";

    sl_spool_printable(s->t.sender, from, sizeof from);
    if (s->auth_user != NULL)
        sl_spool_printable(s->auth_user, user, sizeof user);
    sl_msg_info("queued %s: listener=%s client=%s%s%s from=<%s> nrcpt=%zu size=%zu with=%s "
                "binding=%s%s%s tls=%s",
                id, s->l->name, s->peer_ip, s->auth_user != NULL ? " user=" : "", user, from,
                s->t.nrcpt, size, s->t.bdat ? "BDAT" : "DATA", binding,
                group != NULL ? " binding_group=" : "", group != NULL ? group : "",
                s->tls_on ? SSL_get_version(s->io.ssl) : "no");
}

/* smtpd_accept - queue the transaction's message, then 250 (or 4xx/5xx with the reason) */
void smtpd_accept(struct session *s)
{
    char id[SL_SPOOL_ID_LEN + 1], err[512], shown[300];
    const char *binding, *group;
    uint64_t t0 = sl_clock_us();
    struct head h;
    size_t len;
    char *msg;

    scan_head(s, s->t.body, s->t.len, &h);
    binding = pick_binding(s, h.has_bh ? h.bh_value : NULL, &group);
    if (binding == NULL) {
        sl_spool_printable(h.bh_value, shown, sizeof shown);
        sl_msg_info("%s: message refused: %s names no binding or binding group: %s", s->peer_ip,
                    s->l->binding_header, shown);
        io_reply(&s->io, "554 5.7.0 Error: %s names no binding or binding group: %s",
                 s->l->binding_header, shown);
        smtpd_count(s, SL_LSTAT_REJ_BINDING, 1);
        smtpd_txn_reset(&s->t);
        smtpd_error(s);
        return;
    }
    if (h.hops > HOPS_MAX) {
        sl_msg_info("%s: message refused: %u Received fields, a mail loop", s->peer_ip, h.hops);
        io_reply(&s->io, "554 5.4.6 Error: too many hops (%u Received fields): a mail loop",
                 h.hops);
        smtpd_count(s, SL_LSTAT_REJ_CONTENT, 1);
        smtpd_txn_reset(&s->t);
        return;
    }
    msg = compose(s, &h, &len);
    free(s->t.body); /* the composed copy is what is queued: one body in memory from here */
    s->t.body = NULL;
    s->t.len = s->t.cap = 0;
    if (write_spool(s, &h, binding, msg, len, id, err, sizeof err) < 0) {
        bool full = errno == ENOSPC || errno == EDQUOT;
        sl_msg_warn("%s: message not queued: %s", s->peer_ip, err);
        io_reply(&s->io, full ? "452 4.3.1 Error: insufficient system storage: spool full, try "
                                "again later"
                              : "451 4.3.0 Error: queue file write error, try again later");
        smtpd_count(s, SL_LSTAT_REJ_STORAGE, 1);
    } else { /* the master was told by the group commit (sl_spool_write) */
        log_queued(s, id, binding, group, len);
        io_reply(&s->io, "250 2.0.0 Ok: queued as %s", id);
        s->junk = 0; /* a client that sends mail may send RSET between messages for ever */
        sl_lstat_accepted(s->ctx->shm, s->ctx->stat, sl_clock_us() - t0);
        smtpd_count(s, SL_LSTAT_MESSAGES, 1);
        smtpd_count(s, SL_LSTAT_RECIPIENTS, s->t.nrcpt);
        smtpd_count(s, SL_LSTAT_BYTES, len);
    }
    free(msg);
    smtpd_txn_reset(&s->t);
}
