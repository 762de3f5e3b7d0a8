/*
 * smtp_session.c - the SMTP client's conversation: greeting, EHLO (HELO when
 * refused), STARTTLS as the TLS need says (smtp_tls.c) and EHLO again, mail
 * transactions pipelined when offered (a body and the next
 * transaction's commands in one write: one round trip per message), RSET, QUIT.
 *
 * One session per worker at a time, no global state: everything lives in
 * struct sl_smtp, whose read buffer is the one allocation of a session.  Each
 * command runs under its phase's timer (smtp_io.c); a transaction allocates
 * nothing.  Trust boundary: replies are the peer's (checked in smtp_reply.c);
 * the addresses and body come from our spool, and an address that could
 * smuggle a command (a control character, or too long for one line) is
 * refused before anything is sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtp_impl.h"
#include "util/sl_clock.h"
#include "util/sl_msg.h"

#define RBUF_SIZE 16384 /* > SL_SMTP_LINE_MAX + 2; holds many pipelined replies at once */
#define CMD_BUF   8192  /* a pipelined group is written in chunks of this size */

static const char *const phase_names[SL_PH__COUNT] = {
    [SL_PH_NONE] = "none",       [SL_PH_CONNECT] = "connect", [SL_PH_GREETING] = "greeting",
    [SL_PH_TLS] = "tls",         [SL_PH_EHLO] = "ehlo",       [SL_PH_MAIL_FROM] = "mail_from",
    [SL_PH_RCPT_TO] = "rcpt_to", [SL_PH_DATA] = "data",       [SL_PH_RSET] = "rset",
    [SL_PH_QUIT] = "quit",
};

/* sl_phase_name - a phase as the config and the delivery log spell it */
const char *sl_phase_name(enum sl_phase ph)
{
    return (unsigned)ph < SL_PH__COUNT ? phase_names[ph] : "unknown";
}

/* smtp_closing - the peer answered 421: it is closing the session, which cannot go on */
int smtp_closing(struct sl_smtp *s, const struct sl_reply *r)
{
    return smtp_fail(s, SL_SMTP_FAIL_REPLY, "the peer closes the session during %s: %s",
                     sl_phase_name(s->phase), r->text);
}

/* rset_reply - RSET's reply under the running rset timer; a refused RSET leaves the session
 * out of step: dead */
static int rset_reply(struct sl_smtp *s, struct sl_reply *r)
{
    if (smtp_reply_read(s, r, false) < 0)
        return -1;
    if (!smtp_is_2xx(r))
        return smtp_fail(s, SL_SMTP_FAIL_REPLY, "RSET refused: %s", r->text);
    s->txn_open = false;
    return 0;
}

/* command - send one command and read its reply, under phase ph's timer */
static int command(struct sl_smtp *s, enum sl_phase ph, const char *cmd, size_t len,
                   struct sl_reply *r, bool ehlo)
{
    smtp_phase_begin(s, ph);
    if (smtp_io_send_str(s, cmd, len, "the command") < 0)
        return -1;
    return smtp_reply_read(s, r, ehlo);
}

/* smtp_session_init - a fresh session: no socket yet, the read buffer, the caller's settings */
void smtp_session_init(struct sl_smtp *s, const struct sl_smtp_env *env,
                       const struct sl_smtp_timeouts *to)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->env = *env;
    s->to = *to;
    s->rcap = RBUF_SIZE;
    s->rbuf = sl_malloc(s->rcap);
}

/* rset_command - RSET on its own, under the rset timer */
static int rset_command(struct sl_smtp *s, struct sl_reply *r)
{
    smtp_phase_begin(s, SL_PH_RSET);
    if (smtp_io_send_str(s, "RSET\r\n", 6, "the command") < 0)
        return -1;
    return rset_reply(s, r);
}

/* valid_helo - the name we announce: printable, no spaces, fits a line */
static bool valid_helo(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] == 0x7f)
            return false;
    return true;
}

/* greeting - the peer's banner must be 220 */
static int greeting(struct sl_smtp *s, struct sl_reply *r)
{
    smtp_phase_begin(s, SL_PH_GREETING);
    if (smtp_reply_read(s, r, false) < 0)
        return -1;
    if (r->code != 220)
        return smtp_fail(s, SL_SMTP_FAIL_REPLY, "greeting refused: %s", r->text);
    return 0;
}

/* forget_extensions - nothing offered (before EHLO, or when falling back to HELO) */
static void forget_extensions(struct sl_smtp *s)
{
    s->esmtp = s->pipelining = s->size = s->starttls = s->enhanced = s->eightbit = false;
    s->smtputf8 = s->chunking = s->dsn = false;
    s->size_max = 0;
    s->rcptmax = s->mailmax = 0;
}

/* hello - EHLO, and HELO under a fresh ehlo timer when EHLO gets a 5xx */
static int hello(struct sl_smtp *s, const char *name, struct sl_reply *r)
{
    char cmd[300];
    int n = snprintf(cmd, sizeof cmd, "EHLO %s\r\n", name);

    forget_extensions(s);
    if (command(s, SL_PH_EHLO, cmd, (size_t)n, r, true) < 0)
        return -1;
    if (smtp_is_2xx(r)) {
        s->esmtp = true;
        return 0;
    }
    forget_extensions(s);
    if (r->code < 500)
        return smtp_fail(s, SL_SMTP_FAIL_REPLY, "EHLO refused: %s", r->text);
    n = snprintf(cmd, sizeof cmd, "HELO %s\r\n", name);
    if (command(s, SL_PH_EHLO, cmd, (size_t)n, r, false) < 0)
        return -1;
    if (!smtp_is_2xx(r))
        return smtp_fail(s, SL_SMTP_FAIL_REPLY, "HELO refused: %s", r->text);
    return 0;
}

/* secure - STARTTLS as tls says, then EHLO again with what was offered in clear forgotten
 * (RFC 3207 4.2); a failure of either fails the open */
static int secure(struct sl_smtp *s, const struct sl_tls_params *tls, const char *helo_name,
                  struct sl_reply *r)
{
    if (tls == NULL || tls->need == SL_TLS_NEED_NONE)
        return 0;
    if (tls->client == NULL)
        return smtp_fail(s, SL_SMTP_FAIL_TLS, "TLS asked (%s) without a TLS context",
                         sl_tls_need_name(tls->need));
    int res = smtp_tls_start(s, tls, r);
    if (res != 0)
        return res < 0 ? -1 : 0;
    return hello(s, helo_name, r);
}

/* sl_smtp_open - connect, greeting, EHLO/HELO; see sl_smtp.h */
int sl_smtp_open(struct sl_smtp *s, const struct sl_smtp_env *env,
                 const struct sl_smtp_timeouts *to, const struct sockaddr *src, socklen_t srclen,
                 const struct sockaddr *dst, socklen_t dstlen, const char *helo_name,
                 const struct sl_tls_params *tls, struct sl_reply *r)
{
    struct sl_reply scratch;

    if (r == NULL)
        r = &scratch;
    memset(r, 0, sizeof *r);
    smtp_session_init(s, env, to);
    if (!valid_helo(helo_name))
        return smtp_fail(s, SL_SMTP_FAIL_PROTO, "refusing to announce the HELO name \"%.64s\"",
                         helo_name);
    uint64_t t0 = sl_clock_us(), t1;
    if (smtp_io_connect(s, src, srclen, dst, dstlen) < 0 || greeting(s, r) < 0 ||
        hello(s, helo_name, r) < 0)
        return -1;
    t1 = sl_clock_us();
    s->connect_us = t1 - t0;
    if (secure(s, tls, helo_name, r) < 0)
        return -1;
    s->tls_us = s->tls.on ? sl_clock_us() - t1 : 0;
    smtp_phase_end(s);
    return 0;
}

/* valid_address - an address we can put between <> on one command line */
static bool valid_address(const char *a)
{
    size_t n = strnlen(a, SMTP_ADDR_MAX + 1);

    if (n > SMTP_ADDR_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)a[i] < ' ' || (unsigned char)a[i] == 0x7f)
            return false;
    return true;
}

/* smtp_sendable - every address of t fits a command line */
bool smtp_sendable(const struct sl_smtp_txn *t)
{
    if (!valid_address(t->sender))
        return false;
    for (size_t i = 0; i < t->nrcpt; i++)
        if (!valid_address(t->rcpt[i]))
            return false;
    return true;
}

/* smtp_check_addresses - refuse the transaction before a byte goes out if an address is
 * unfit */
int smtp_check_addresses(struct sl_smtp *s, const struct sl_smtp_txn *t)
{
    if (smtp_sendable(t))
        return 0;
    s->phase = SL_PH_MAIL_FROM;
    if (!valid_address(t->sender))
        return smtp_fail(s, SL_SMTP_FAIL_PROTO,
                         "refusing to send a sender with a control character or over %d bytes",
                         SMTP_ADDR_MAX);
    s->phase = SL_PH_RCPT_TO;
    for (size_t i = 0; i < t->nrcpt; i++)
        if (!valid_address(t->rcpt[i]))
            return smtp_fail(s, SL_SMTP_FAIL_PROTO,
                             "refusing to send recipient %zu: a control character or over %d bytes",
                             i + 1, SMTP_ADDR_MAX);
    return 0;
}

/* dsn_params - the DSN parameters p when the peer offers DSN and they fit a command line:
 * printable ASCII, at most max bytes; else none */
static const char *dsn_params(const struct sl_smtp *s, const char *p, size_t max)
{
    size_t n;

    if (!s->dsn || p == NULL || (n = strnlen(p, max + 1)) > max)
        return "";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < ' ' || (unsigned char)p[i] >= 0x7f)
            return "";
    return p;
}

/* smtp_put_mail - "MAIL FROM:<sender> [SIZE=n] [BODY=8BITMIME] [SMTPUTF8] [RET= ENVID=]" into
 * buf (SMTP_CMD_MAX bytes free); an 8-bit body is declared where the peer offers 8BITMIME
 * (RFC 6152), and goes as it is where it does not, as most MTAs send it */
size_t smtp_put_mail(char *buf, const struct sl_smtp *s, const struct sl_smtp_txn *t)
{
    char size[32] = "";

    if (s->size && t->size > 0)
        snprintf(size, sizeof size, " SIZE=%" PRIu64, t->size);
    return (size_t)snprintf(buf, SMTP_CMD_MAX, "MAIL FROM:<%s>%s%s%s%s\r\n", t->sender, size,
                            t->body8bit && s->eightbit ? " BODY=8BITMIME" : "",
                            t->smtputf8 ? " SMTPUTF8" : "",
                            dsn_params(s, t->mail_dsn, SMTP_DSN_MAIL_MAX));
}

/* smtp_put_rcpt - "RCPT TO:<rcpt> [NOTIFY= ORCPT=]" of recipient i of t into buf
 * (SMTP_CMD_MAX bytes free) */
size_t smtp_put_rcpt(char *buf, const struct sl_smtp *s, const struct sl_smtp_txn *t, size_t i)
{
    const char *dsn = t->rcpt_dsn != NULL ? t->rcpt_dsn[i] : NULL;

    return (size_t)snprintf(buf, SMTP_CMD_MAX, "RCPT TO:<%s>%s\r\n", t->rcpt[i],
                            dsn_params(s, dsn, SMTP_DSN_RCPT_MAX));
}

/* fill_rcpts - recipients from i on get reply r (MAIL refused, or the peer closing) */
static void fill_rcpts(struct sl_smtp_txn *t, size_t i, const struct sl_reply *r)
{
    for (; i < t->nrcpt; i++)
        t->rcpt_reply[i] = *r;
}

/* send_body - after 354: the body and "." (only "." when no recipient was accepted, to end
 * the DATA the pipeline opened), followed in the same write by next[0..next_len), the next
 * transaction's first commands (RFC 2920 3.1 lets message content lead a group); the
 * transfer and the final reply each under a full data timer */
static int send_body(struct sl_smtp *s, struct sl_smtp_txn *t, bool any_rcpt, const char *next,
                     size_t next_len)
{
    size_t len = any_rcpt ? t->len : 0;
    bool crlf = len == 0 || (len >= 2 && t->body[len - 2] == '\r' && t->body[len - 1] == '\n');
    /* A body without its final CRLF would swallow the dot: end the line first. */
    struct iovec v[3] = {
        {.iov_base = (void *)t->body, .iov_len = len},
        {.iov_base = (void *)(crlf ? ".\r\n" : "\r\n.\r\n"), .iov_len = crlf ? 3 : 5},
        {.iov_base = (void *)next, .iov_len = next_len}};

    smtp_phase_begin(s, SL_PH_DATA);
    if (smtp_io_send(s, v, 3, "the message body") < 0)
        return -1;
    smtp_phase_begin(s, SL_PH_DATA);
    if (smtp_reply_read(s, &t->data, false) < 0)
        return -1;
    s->txn_open = false;
    return t->data.code == 421 ? smtp_closing(s, &t->data) : 0;
}

/* Where a pipelined transaction stands: which commands went out, which replies were read. */
struct pipe {
    bool rset_pending; /* RSET leads the group; its reply comes first */
    bool mail_put;     /* RSET (if any) and MAIL are written */
    size_t rcpts_put;
    bool mail_read, mail_ok;
    size_t rcpts_read;
    size_t accepted;
};

/* read_mail_reply - MAIL's reply, under the mail_from timer the group's write started */
static int read_mail_reply(struct sl_smtp *s, struct sl_smtp_txn *t, struct pipe *p)
{
    if (p->rset_pending) {
        if (rset_reply(s, &t->rset_reply) < 0)
            return -1;
        p->rset_pending = false;
        smtp_phase_begin(s, SL_PH_MAIL_FROM);
    }
    if (smtp_reply_read(s, &t->mail, false) < 0)
        return -1;
    p->mail_read = true;
    p->mail_ok = smtp_is_2xx(&t->mail);
    if (t->mail.code == 421) {
        fill_rcpts(t, 0, &t->mail);
        return smtp_closing(s, &t->mail);
    }
    return 0;
}

/* read_rcpt_reply - the next RCPT's reply under its own timer; a refused MAIL stands for
 * every recipient */
static int read_rcpt_reply(struct sl_smtp *s, struct sl_smtp_txn *t, struct pipe *p)
{
    struct sl_reply scratch;
    size_t i = p->rcpts_read;
    struct sl_reply *r = p->mail_ok ? &t->rcpt_reply[i] : &scratch;

    smtp_phase_begin(s, SL_PH_RCPT_TO);
    if (smtp_reply_read(s, r, false) < 0)
        return -1;
    if (r->code == 421) {
        fill_rcpts(t, i, r);
        return smtp_closing(s, r);
    }
    if (!p->mail_ok)
        t->rcpt_reply[i] = t->mail;
    p->accepted += p->mail_ok && smtp_is_2xx(r);
    p->rcpts_read++;
    return 0;
}

/* read_through - the replies to MAIL and to the first n RCPTs, in order */
static int read_through(struct sl_smtp *s, struct sl_smtp_txn *t, struct pipe *p, size_t n)
{
    if (!p->mail_read && read_mail_reply(s, t, p) < 0)
        return -1;
    while (p->rcpts_read < n)
        if (read_rcpt_reply(s, t, p) < 0)
            return -1;
    return 0;
}

/* put_chunk - into buf (CMD_BUF bytes), the next of t's commands that fit: RSET and MAIL
 * first, then the recipients not yet written, DATA after the last; *len bytes; true when
 * the group is complete */
static bool put_chunk(const struct sl_smtp *s, const struct sl_smtp_txn *t, struct pipe *p,
                      char *buf, size_t *len)
{
    size_t n = 0;

    if (!p->mail_put) {
        if (p->rset_pending) {
            memcpy(buf, "RSET\r\n", 6);
            n = 6;
        }
        n += smtp_put_mail(buf + n, s, t);
        p->mail_put = true;
    }
    for (; p->rcpts_put < t->nrcpt; p->rcpts_put++) {
        if (n + SMTP_CMD_MAX > CMD_BUF) {
            *len = n;
            return false;
        }
        n += smtp_put_rcpt(buf + n, s, t, p->rcpts_put);
    }
    /* a RCPT line is at most SMTP_ADDR_MAX + 12 + SMTP_DSN_RCPT_MAX < SMTP_CMD_MAX - 6 */
    memcpy(buf + n, "DATA\r\n", 6);
    *len = n + 6;
    return true;
}

/* send_rest - the chunks of a group that did not fit its first write, each after the replies
 * to what went before, so the peer's replies never pile up unread while we block writing
 * (RFC 2920 section 3.1) */
static int send_rest(struct sl_smtp *s, struct sl_smtp_txn *t, struct pipe *p, bool done)
{
    char buf[CMD_BUF];
    size_t len;

    while (!done) {
        if (read_through(s, t, p, p->rcpts_put) < 0)
            return -1;
        done = put_chunk(s, t, p, buf, &len);
        if (smtp_io_send_str(s, buf, len, "the pipelined commands") < 0)
            return -1;
    }
    return 0;
}

/* A run of pipelined transactions: the caller's array and callback, and the transaction whose
 * DATA got 354 and whose body waits to lead the next write. */
struct chain {
    struct sl_smtp_txn *t;
    sl_smtp_txn_over *over;
    void *arg;
    struct sl_smtp_txn *prev;
    bool prev_any; /* prev has an accepted recipient */
};

/* txn_over - tell the caller that t's replies are all in */
static void txn_over(const struct chain *c, const struct sl_smtp_txn *t)
{
    if (c->over != NULL)
        c->over(c->arg, (size_t)(t - c->t));
}

/* end_prev - the waiting body, followed in the same write by next[0..len), its final reply,
 * and the caller told, before anything of the next message goes out */
static int end_prev(struct sl_smtp *s, struct chain *c, const char *next, size_t len)
{
    struct sl_smtp_txn *t = c->prev;

    c->prev = NULL;
    if (send_body(s, t, c->prev_any, next, len) < 0)
        return -1;
    txn_over(c, t);
    return 0;
}

/* send_group - t's commands, RSET first when asked or when the last transaction was left
 * open, led in the same write by the waiting body if there is one */
static int send_group(struct sl_smtp *s, struct chain *c, struct sl_smtp_txn *t, struct pipe *p)
{
    char buf[CMD_BUF];
    size_t len;

    /* the waiting body's "." ends its transaction whatever the final reply says */
    *p = (struct pipe){.rset_pending = t->rset || (c->prev == NULL && s->txn_open)};
    bool done = put_chunk(s, t, p, buf, &len);
    if (c->prev != NULL) {
        if (end_prev(s, c, buf, len) < 0)
            return -1;
    } else {
        smtp_phase_begin(s, p->rset_pending ? SL_PH_RSET : SL_PH_MAIL_FROM);
        if (smtp_io_send_str(s, buf, len, "the pipelined commands") < 0)
            return -1;
    }
    smtp_phase_begin(s, p->rset_pending ? SL_PH_RSET : SL_PH_MAIL_FROM);
    return send_rest(s, t, p, done);
}

/* smtp_read_group - the replies to RSET (when rset), MAIL and every RCPT of t, in order, each
 * under its phase's timer; a refused MAIL stands for every recipient */
int smtp_read_group(struct sl_smtp *s, struct sl_smtp_txn *t, bool rset)
{
    struct pipe p = {.rset_pending = rset, .mail_put = true, .rcpts_put = t->nrcpt};

    smtp_phase_begin(s, rset ? SL_PH_RSET : SL_PH_MAIL_FROM);
    return read_through(s, t, &p, t->nrcpt);
}

/* data_answered - the reply to DATA is 354 (the body goes) or a refusal; any other 2xx or 3xx
 * would have the transaction taken for delivered without its body being sent: the session
 * ends, and its recipients are deferred */
static int data_answered(struct sl_smtp *s, struct sl_smtp_txn *t)
{
    int code = t->data.code;

    if (code == 354 || code >= 400)
        return 0;
    t->data.code = 0; /* no answer to go by */
    return smtp_fail(s, SL_SMTP_FAIL_PROTO, "reply %d to DATA, where 354 was due", code);
}

/* read_replies - the replies to t's group, in order, each under its phase's timer, through
 * DATA's */
static int read_replies(struct sl_smtp *s, struct sl_smtp_txn *t, struct pipe *p)
{
    if (read_through(s, t, p, t->nrcpt) < 0)
        return -1;
    smtp_phase_begin(s, SL_PH_DATA);
    if (smtp_reply_read(s, &t->data, false) < 0 || data_answered(s, t) < 0)
        return -1;
    s->txn_open = p->mail_ok;
    return t->data.code == 421 ? smtp_closing(s, &t->data) : 0;
}

/* smtp_send_data - transactions t[from..to) with DATA, one group each; a body waits to go out
 * with the next group, so each message costs one round trip; over learns indexes into t */
int smtp_send_data(struct sl_smtp *s, struct sl_smtp_txn *t, size_t from, size_t to,
                   sl_smtp_txn_over *over, void *arg)
{
    struct chain c = {.t = t, .over = over, .arg = arg};
    struct pipe p;

    for (size_t i = from; i < to; i++) {
        if (!smtp_sendable(&t[i])) { /* end the one before, then refuse as one call would */
            if (c.prev != NULL && end_prev(s, &c, NULL, 0) < 0)
                return -1;
            return smtp_check_addresses(s, &t[i]);
        }
        if (send_group(s, &c, &t[i], &p) < 0 || read_replies(s, &t[i], &p) < 0)
            return -1;
        if (t[i].data.code == 354) {
            c.prev = &t[i];
            c.prev_any = p.accepted > 0;
        } else {
            txn_over(&c, &t[i]);
        }
    }
    return c.prev != NULL ? end_prev(s, &c, NULL, 0) : 0;
}

/* send_stepwise - one command at a time: no RCPT after a refused MAIL, no DATA without an
 * accepted recipient */
static int send_stepwise(struct sl_smtp *s, struct sl_smtp_txn *t)
{
    char buf[SMTP_CMD_MAX];
    long accepted = 0;

    if (command(s, SL_PH_MAIL_FROM, buf, smtp_put_mail(buf, s, t), &t->mail, false) < 0)
        return -1;
    if (!smtp_is_2xx(&t->mail)) {
        fill_rcpts(t, 0, &t->mail);
        return t->mail.code == 421 ? smtp_closing(s, &t->mail) : 0;
    }
    s->txn_open = true;
    for (size_t i = 0; i < t->nrcpt; i++) {
        struct sl_reply *r = &t->rcpt_reply[i];
        if (command(s, SL_PH_RCPT_TO, buf, smtp_put_rcpt(buf, s, t, i), r, false) < 0)
            return -1;
        if (r->code == 421) {
            fill_rcpts(t, i, r);
            return smtp_closing(s, r);
        }
        accepted += smtp_is_2xx(r);
    }
    if (accepted == 0)
        return 0;
    if (command(s, SL_PH_DATA, "DATA\r\n", 6, &t->data, false) < 0 || data_answered(s, t) < 0)
        return -1;
    if (t->data.code == 421)
        return smtp_closing(s, &t->data);
    return t->data.code == 354 ? send_body(s, t, true, NULL, 0) : 0;
}

/* clear_replies - every reply "none received" until one is */
static void clear_replies(struct sl_smtp_txn *t)
{
    struct sl_reply *own[] = {&t->rset_reply, &t->mail, &t->data};

    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        own[i]->code = 0;
        own[i]->text[0] = own[i]->enhanced[0] = '\0';
    }
    for (size_t i = 0; i < t->nrcpt; i++) {
        t->rcpt_reply[i].code = 0;
        t->rcpt_reply[i].text[0] = t->rcpt_reply[i].enhanced[0] = '\0';
    }
}

/* not_open - a call on a session that already ended */
static int not_open(struct sl_smtp *s)
{
    if (s->fail == SL_SMTP_FAIL_NONE) {
        s->fail = SL_SMTP_FAIL_IO;
        snprintf(s->err, sizeof s->err, "the session is closed");
    }
    return -1;
}

/* send_one_by_one - without PIPELINING: each command waits for the reply before */
static int send_one_by_one(struct sl_smtp *s, struct sl_smtp_txn *t, size_t n,
                           sl_smtp_txn_over *over, void *arg)
{
    for (size_t i = 0; i < n; i++) {
        if (smtp_check_addresses(s, &t[i]) < 0)
            return -1;
        /* RSET when asked, or when the last transaction was left open (MAIL accepted, no
         * final reply): the peer would refuse a second MAIL */
        if ((t[i].rset || s->txn_open) && rset_command(s, &t[i].rset_reply) < 0)
            return -1;
        if (send_stepwise(s, &t[i]) < 0)
            return -1;
        if (over != NULL)
            over(arg, i);
    }
    return 0;
}

/* sl_smtp_send_many - mail transactions in a row; see sl_smtp.h */
int sl_smtp_send_many(struct sl_smtp *s, struct sl_smtp_txn *t, size_t n, sl_smtp_txn_over *over,
                      void *arg)
{
    for (size_t i = 0; i < n; i++)
        clear_replies(&t[i]);
    if (s->fd < 0)
        return not_open(s);
    int rc;
    if (!s->pipelining)
        rc = send_one_by_one(s, t, n, over, arg);
    else if (s->chunking && s->bdat)
        rc = smtp_send_chunked(s, t, n, over, arg);
    else
        rc = smtp_send_data(s, t, 0, n, over, arg);
    if (rc < 0)
        return -1;
    smtp_phase_end(s);
    return 0;
}

/* sl_smtp_send - one mail transaction; see sl_smtp.h */
int sl_smtp_send(struct sl_smtp *s, struct sl_smtp_txn *t)
{
    return sl_smtp_send_many(s, t, 1, NULL, NULL);
}

/* sl_smtp_rset - end any transaction; see sl_smtp.h */
int sl_smtp_rset(struct sl_smtp *s)
{
    struct sl_reply r;

    if (s->fd < 0)
        return not_open(s);
    if (rset_command(s, &r) < 0)
        return -1;
    smtp_phase_end(s);
    return 0;
}

/* sl_smtp_alive - an idle session is usable when the peer has said nothing since its last
 * reply: EOF, a reset, a 421 or any other unsolicited byte means it is not */
bool sl_smtp_alive(struct sl_smtp *s)
{
    char c[4];

    if (s->fd < 0 || s->roff < s->rlen)
        return false;
    if (s->ssl != NULL)
        return smtp_tls_idle(s);
    ssize_t n = recv(s->fd, c, sizeof c, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* sl_smtp_quit - QUIT under the short quit timer, whatever the answer, then close; the
 * session's last outcome (fail/phase/err) is kept for the caller's log */
void sl_smtp_quit(struct sl_smtp *s)
{
    if (s->fd >= 0) {
        enum sl_smtp_fail fail = s->fail;
        enum sl_phase phase = s->phase;
        char err[sizeof s->err];
        struct sl_reply r;

        memcpy(err, s->err, sizeof err);
        (void)command(s, SL_PH_QUIT, "QUIT\r\n", 6, &r, false);
        smtp_tls_shutdown(s);
        s->fail = fail;
        s->phase = phase;
        memcpy(s->err, err, sizeof err);
    }
    sl_smtp_close(s);
}

/* sl_smtp_close - stop the timer, free the TLS session, close the socket, free the buffer;
 * safe to repeat */
void sl_smtp_close(struct sl_smtp *s)
{
    if (s->timer_armed)
        smtp_phase_end(s);
    if (s->ssl != NULL)
        smtp_tls_drop(s);
    /* rbuf marks a session opened by sl_smtp_open: a zeroed struct's fd 0 is not ours */
    if (s->rbuf != NULL && s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    free(s->rbuf);
    s->rbuf = NULL;
    s->rlen = s->roff = s->rcap = 0;
    s->txn_open = s->keep_on_fail = s->salvage = false;
}
