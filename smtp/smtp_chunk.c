/*
 * smtp_chunk.c - mail transactions with CHUNKING (RFC 3030) over PIPELINING (RFC 2920): each
 * transaction as RSET, MAIL, RCPT..., "BDAT <octets> LAST" and its body, a whole run of them
 * in one write, then the replies in order.  DATA needs its 354 before each body; BDAT counts
 * its octets instead, so nothing waits: a run of k messages costs one round trip instead of
 * k, which is what a small connection limit to a distant receiver has to gain.
 *
 * The spool keeps bodies dot-stuffed for DATA; BDAT carries the message as it is, so each
 * line's stuffed dot is skipped on the way out (iovecs around it, no copy).  Every
 * transaction after a run's first leads with RSET: when it is written, the outcome of the
 * one before is unknown, and after a refused BDAT the transaction's state is the server's
 * to decide; RSET makes the next MAIL safe whatever happened.  The caller hears of each
 * transaction, in order, as its BDAT reply is read: the peer may hold a run of accepted
 * messages not yet recorded by the caller (one message with DATA).
 *
 * Bounds: a run leaves at most RUN_REPLIES replies pending, so the peer's replies fit the
 * socket buffers while we write (a peer blocked writing them would stop reading us); a
 * transaction whose commands alone exceed a run goes with DATA, which writes recipients in
 * chunks between reads.  Each write runs under a fresh data timer, and a run is written in
 * pieces of about RUN_FLUSH bytes at transaction boundaries, so a large run gets a data timer
 * per piece as DATA gives one per body.
 *
 * A peer may answer and close while the rest of the run is still being written (a 421 at its
 * limit of messages per connection, or after too many refused recipients): the write fails
 * with replies to the first transactions already received.  Thrown away, they would make
 * those messages go again.  So between the pieces of a run, the replies that have arrived
 * for the transactions written whole are read (without waiting for any to begin) and those
 * transactions told over at once; and the write keeps the socket on failure (keep_on_fail),
 * the replies that arrived since are read without waiting (salvage), the transactions they
 * complete are told over, and the write's failure ends the session.  Over TLS too: a write
 * that failed leaves the records already received readable (OpenSSL's read side does not
 * depend on the write's), and a read that fails there only ends the salvage.
 */
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "smtp_impl.h"

#define RUN_CMDS    16384 /* command text of one run */
#define RUN_REPLIES 256   /* replies pending in one run */
#define RUN_IOV     64    /* iovecs per write */
#define RUN_FLUSH   65536 /* bytes after which a transaction boundary ends a write */

/* A run being written: its command text, the iovecs not written yet, and how far its
 * transactions were written and their replies read. */
struct run {
    char cmd[RUN_CMDS];
    size_t cmd_len;
    size_t replies;
    struct iovec iov[RUN_IOV];
    int niov;
    size_t pending; /* bytes of the running piece (since its data timer began) */
    size_t start;   /* the run's first transaction */
    bool open;      /* the session had a transaction open when the run began */
    size_t written; /* transactions before this one are written whole */
    size_t told;    /* ... and before this one, their replies read and told over */
};

/* write_out - the iovecs gathered so far, under the running piece's data timer */
static int write_out(struct sl_smtp *s, struct run *r)
{
    int n = r->niov;

    r->niov = 0;
    return n > 0 ? smtp_io_send(s, r->iov, n, "the BDAT run") : 0;
}

/* add_iov - b[0..len) goes next; a full iovec array is written first */
static int add_iov(struct sl_smtp *s, struct run *r, const char *b, size_t len)
{
    if (r->niov == RUN_IOV && write_out(s, r) < 0)
        return -1;
    r->iov[r->niov++] = (struct iovec){.iov_base = (void *)b, .iov_len = len};
    r->pending += len;
    return 0;
}

/* ends_crlf - the body's last line is complete (an empty body counts as complete) */
static bool ends_crlf(const struct sl_smtp_txn *t)
{
    return t->len == 0 ||
           (t->len >= 2 && t->body[t->len - 2] == '\r' && t->body[t->len - 1] == '\n');
}

/* next_dot - where in b[from..len) the next line-leading (stuffed) dot is, len when none;
 * from is 0 or just past a skipped dot.  Line by line with memchr, which scans many bytes
 * at a time, rather than memmem, whose two-byte search goes byte by byte: this runs twice
 * over every body a run carries. */
static size_t next_dot(const char *b, size_t len, size_t from)
{
    const char *end = b + len;

    if (from == 0 && len > 0 && b[0] == '.')
        return 0;
    for (const char *p = b + from; p < end; p++) {
        if ((p = memchr(p, '\n', (size_t)(end - p))) == NULL || p + 1 == end)
            break;
        if (p[1] == '.')
            return (size_t)(p - b) + 1;
    }
    return len;
}

/* unstuffed_len - the octets BDAT carries for t: the body without its stuffing, its last
 * line ended with CRLF as DATA would end it */
static size_t unstuffed_len(const struct sl_smtp_txn *t)
{
    size_t n = t->len;

    for (size_t d = next_dot(t->body, t->len, 0); d < t->len; d = next_dot(t->body, t->len, d + 1))
        n--;
    return ends_crlf(t) ? n : n + 2;
}

/* put_body - t's body, unstuffed, into the run */
static int put_body(struct sl_smtp *s, struct run *r, const struct sl_smtp_txn *t)
{
    for (size_t off = 0;;) {
        size_t d = next_dot(t->body, t->len, off);
        if (d > off && add_iov(s, r, t->body + off, d - off) < 0)
            return -1;
        if (d == t->len)
            break;
        off = d + 1;
    }
    return ends_crlf(t) ? 0 : add_iov(s, r, "\r\n", 2);
}

/* put_commands - t's commands after the run's text; false (nothing added) when they do not
 * fit the run's command buffer or its pending replies */
static bool put_commands(const struct sl_smtp *s, struct run *r, const struct sl_smtp_txn *t,
                         bool rset)
{
    char *b = r->cmd + r->cmd_len;
    size_t room = RUN_CMDS - r->cmd_len, n = 0;
    size_t replies = (rset ? 1 : 0) + 2 + t->nrcpt;

    if (r->replies + replies > RUN_REPLIES || room < 6 + SMTP_CMD_MAX)
        return false;
    if (rset) {
        memcpy(b, "RSET\r\n", 6);
        n = 6;
    }
    n += smtp_put_mail(b + n, s, t);
    for (size_t i = 0; i < t->nrcpt; i++) {
        if (room - n < SMTP_CMD_MAX)
            return false;
        n += smtp_put_rcpt(b + n, s, t, i);
    }
    if (room - n < 48)
        return false;
    n += (size_t)snprintf(b + n, room - n, "BDAT %zu LAST\r\n", unstuffed_len(t));
    r->cmd_len += n;
    r->replies += replies;
    return true;
}

/* lead_rset - t (number i of the run) leads with RSET: asked, the session had a transaction
 * open when the run began (open), or it follows another of the run */
static bool lead_rset(bool open, const struct sl_smtp_txn *t, size_t i)
{
    return i > 0 || t->rset || open;
}

/* read_one - the replies to the run's next transaction not yet told (r->told), ending with
 * BDAT's; the caller told of it */
static int read_one(struct sl_smtp *s, struct run *r, struct sl_smtp_txn *t, sl_smtp_txn_over *over,
                    void *arg)
{
    size_t i = r->told;

    if (smtp_read_group(s, &t[i], lead_rset(r->open, &t[i], i - r->start)) < 0)
        return -1;
    smtp_phase_begin(s, SL_PH_DATA);
    if (smtp_reply_read(s, &t[i].data, false) < 0)
        return -1;
    if (t[i].data.code == 421)
        return smtp_closing(s, &t[i].data);
    /* a refused BDAT may leave the transaction open: RSET before the next MAIL */
    s->txn_open = !smtp_is_2xx(&t[i].data);
    r->told = i + 1;
    if (over != NULL)
        over(arg, i);
    return 0;
}

/* read_run - the replies to the run's transactions from r->told up to to, each told over */
static int read_run(struct sl_smtp *s, struct run *r, struct sl_smtp_txn *t, size_t to,
                    sl_smtp_txn_over *over, void *arg)
{
    while (r->told < to)
        if (read_one(s, r, t, over, arg) < 0)
            return -1;
    return 0;
}

/* read_arrived - between two pieces of the run: the replies that have begun to arrive, to
 * the transactions written whole, read and told over, so a peer that closes while the rest
 * is written costs no message it took.  A reply begun is waited for to its end (the rest of
 * the transaction is written: the peer has all it needs to finish it); a failure ends the
 * session, nothing to salvage. */
static int read_arrived(struct sl_smtp *s, struct run *r, struct sl_smtp_txn *t,
                        sl_smtp_txn_over *over, void *arg)
{
    int rc = 0;

    s->keep_on_fail = false; /* a read that fails here ends the session at once */
    while (rc == 0 && r->told < r->written && smtp_io_ready(s))
        rc = read_one(s, r, t, over, arg);
    s->keep_on_fail = true; /* as write_run keeps it while it writes */
    return rc;
}

/* write_run - the commands and bodies of t[from..) that fit one run, written; the end of
 * the run (from when not even t[from] fits); on a failed write (*rc -1), the end of what may
 * have gone out, and the socket kept for a salvage (a failed read between pieces ended the
 * session instead: nothing is left to salvage) */
static size_t write_run(struct sl_smtp *s, struct run *r, struct sl_smtp_txn *t, size_t from,
                        size_t n, int *rc, sl_smtp_txn_over *over, void *arg)
{
    size_t i;

    r->cmd_len = r->replies = r->pending = 0;
    r->niov = 0;
    r->start = r->written = r->told = from;
    r->open = s->txn_open;
    s->keep_on_fail = true;
    *rc = 0;
    smtp_phase_begin(s, SL_PH_DATA);
    for (i = from; i < n && smtp_sendable(&t[i]); i++) {
        size_t at = r->cmd_len;
        if (r->pending >= RUN_FLUSH) { /* the piece ends here; the next has a timer of its own */
            if ((*rc = write_out(s, r)) < 0)
                break;
            r->written = i;
            r->pending = 0;
            if ((*rc = read_arrived(s, r, t, over, arg)) < 0)
                break;
            smtp_phase_begin(s, SL_PH_DATA);
        }
        if (!put_commands(s, r, &t[i], lead_rset(s->txn_open, &t[i], i - from)))
            break;
        if ((*rc = add_iov(s, r, r->cmd + at, r->cmd_len - at)) < 0 ||
            (*rc = put_body(s, r, &t[i])) < 0) {
            i++; /* some of it may have gone: its replies, if any, are read */
            break;
        }
    }
    if (*rc == 0)
        *rc = write_out(s, r);
    s->keep_on_fail = false;
    return i;
}

/* salvage - after a failed write of t[from..to): the replies that arrived, read without
 * waiting, and the transactions they complete told over; then the session ends with the
 * write's failure */
static int salvage(struct sl_smtp *s, struct run *r, struct sl_smtp_txn *t, size_t to,
                   sl_smtp_txn_over *over, void *arg)
{
    enum sl_phase failed_in = s->phase;

    if (s->salvage && read_run(s, r, t, to, over, arg) == 0)
        sl_smtp_close(s); /* every reply was in: the session ends all the same */
    s->phase = failed_in; /* the failure is the write's, whatever the salvage read */
    return -1;
}

/* smtp_send_chunked - see smtp_impl.h */
int smtp_send_chunked(struct sl_smtp *s, struct sl_smtp_txn *t, size_t n, sl_smtp_txn_over *over,
                      void *arg)
{
    struct run r;
    int rc;

    for (size_t i = 0; i < n;) {
        if (!smtp_sendable(&t[i]))
            return smtp_check_addresses(s, &t[i]);
        size_t end = write_run(s, &r, t, i, n, &rc, over, arg);
        if (rc < 0)
            return salvage(s, &r, t, end, over, arg);
        if (end == i) { /* too many recipients for one run */
            if (smtp_send_data(s, t, i, i + 1, over, arg) < 0)
                return -1;
            end = i + 1;
        } else if (read_run(s, &r, t, end, over, arg) < 0) {
            return -1;
        }
        i = end;
    }
    return 0;
}
