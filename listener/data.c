/*
 * data.c - the message body: DATA (RFC 5321 4.1.1.4) and BDAT (RFC 3030).
 *
 * DATA ends only at <CRLF>.<CRLF>, matched on the raw bytes: a <LF>.<LF>,
 * <CR>.<CR> or any mix never ends a message (the SMTP smuggling attack needs
 * the server to see an end the sender's MTA did not).  The dot-stuffing is
 * undone as the bytes arrive (a line's leading dot is not kept); once the end
 * is in, one pass checks the lines: a bare CR or a bare LF anywhere refuses
 * the whole message (554 5.6.0; nothing is queued), as does a line over 998
 * octets or a NUL.  BDAT chunks are taken as counted bytes and checked the
 * same way at LAST.  Memory is bounded: once the message as kept (unstuffed,
 * the size SIZE= declares, RFC 1870) passes max_message_size, the rest is
 * read and dropped, and the reply at the end is 552 5.3.4.
 * Concurrency: one session per process.
 * Trust boundary: the body is the client's; it is stored only once checked.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/sl_msg.h"
#include "smtpd_impl.h"

/* keep - append received bytes while the message is within max_message_size (2 octets of
 * slack: the CRLF after the end marker's dot, kept until the end is in); beyond it they are
 * dropped */
static void keep(struct session *s, const char *p, size_t n)
{
    struct txn *t = &s->t;
    size_t bound = (size_t)s->max_size + 2;

    if (n == 0) /* a dot first in what was read: nothing before it */
        return;
    if (t->oversize || t->len + n > bound) {
        t->oversize = true;
        return;
    }
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 16 * 1024;
        while (cap < t->len + n)
            cap *= 2;
        t->cap = cap < bound ? cap : bound;
        t->body = sl_realloc(t->body, t->cap);
    }
    memcpy(t->body + t->len, p, n);
    t->len += n;
}

/* check_lines - flag bare CR/LF, long lines and NUL */
static void check_lines(struct txn *t)
{
    for (size_t in = 0; in < t->len;) {
        const char *line = t->body + in;
        const char *lf = memchr(line, '\n', t->len - in);
        size_t n = lf != NULL ? (size_t)(lf - line) + 1 : t->len - in, content = n;

        if (lf != NULL) {
            bool crlf = n >= 2 && line[n - 2] == '\r';
            if (!crlf)
                t->bad_newline = true; /* a bare LF */
            content = crlf ? n - 2 : n - 1;
        }
        if (memchr(line, '\r', content) != NULL)
            t->bad_newline = true; /* a bare CR */
        if (memchr(line, '\0', n) != NULL)
            t->nul = true;
        if (content > TEXT_LINE_MAX)
            t->long_line = true;
        in += n;
    }
}

/* broken_off - the body stopped coming (r: a timeout, the client gone): the session ends and
 * nothing was queued */
static void broken_off(struct session *s, enum io_result r)
{
    if (r == IO_TIMEOUT)
        smtpd_timed_out(s, "in the message data");
    io_end(&s->io);
    smtpd_txn_reset(&s->t);
}

/* finish - the body is in: refuse it with the reason, or queue it */
static void finish(struct session *s)
{
    struct txn *t = &s->t;
    const char *why = NULL; /* the content rule it breaks, for the log */

    if (!t->oversize)
        check_lines(t);
    if (t->oversize || t->len > s->max_size) {
        sl_msg_info("%s: message refused: larger than max_message_size (%llu bytes)", s->peer_ip,
                    (unsigned long long)s->max_size);
        io_reply(&s->io, "552 5.3.4 Error: message file too big");
        smtpd_count(s, SL_LSTAT_REJ_SIZE, 1);
    } else if (t->bad_newline) {
        why = "bare CR or LF";
        io_reply(&s->io,
                 "554 5.6.0 Error: bare <CR> or <LF> in message: lines must end in <CR><LF>");
    } else if (t->long_line) {
        why = "a line longer than 998 octets";
        io_reply(&s->io, "554 5.6.0 Error: message line longer than 998 octets");
    } else if (t->nul) {
        why = "NUL byte";
        io_reply(&s->io, "554 5.6.0 Error: NUL byte in message");
    } else if (t->len == 0) {
        why = "empty";
        io_reply(&s->io, "554 5.6.0 Error: empty message");
    } else {
        smtpd_accept(s);
        return;
    }
    if (why != NULL) {
        sl_msg_info("%s: message refused: %s", s->peer_ip, why);
        smtpd_count(s, SL_LSTAT_REJ_CONTENT, 1);
    }
    smtpd_txn_reset(t);
    smtpd_error(s);
}

/* smtpd_data - DATA: 354, the body to <CRLF>.<CRLF>, then the verdict */
void smtpd_data(struct session *s)
{
    static const char end[] = "\r\n.\r\n";
    struct txn *t = &s->t;
    unsigned matched = 2;   /* the DATA line's CRLF counts as the start of the end marker */
    bool line_start = true; /* the next byte begins a line (a dot there is the stuffing's) */

    if (t->bdat || !t->mail || t->nrcpt == 0) {
        io_reply(&s->io, t->bdat   ? "503 5.5.1 Error: DATA after BDAT"
                         : t->mail ? "554 5.5.1 Error: no valid recipients"
                                   : "503 5.5.1 Error: need MAIL command");
        smtpd_error(s);
        return;
    }
    io_reply(&s->io, "354 End data with <CR><LF>.<CR><LF>");
    io_deadline((long)s->l->data_timeout_ms);
    while (matched < 5) {
        const char *p;
        size_t got, i, from = 0;
        enum io_result r = io_bytes(&s->io, IO_IN_CAP, &p, &got);

        if (r != IO_OK) {
            broken_off(s, r);
            return;
        }
        for (i = 0; i < got && matched < 5; i++) {
            char c = p[i];
            if (line_start && c == '.') { /* the stuffing's: what came before it is kept */
                keep(s, p + from, i - from);
                from = i + 1;
            }
            line_start = c == '\n';
            if (c == end[matched])
                matched++;
            else
                matched = c == '\r' ? 1 : 0;
        }
        s->io.start -= got - i; /* what follows the end is the next command (pipelining) */
        keep(s, p + from, i - from);
    }
    /* The kept bytes end with the marker's CRLF, its dot not kept (the CRLF before the dot
     * ends the last line). */
    if (!t->oversize)
        t->len -= t->len >= 2 ? 2 : t->len;
    finish(s);
}

/* bdat_args - "SIZE [LAST]" (RFC 3030: LAST after a space; spaces at the end are
 * tolerated); false when malformed, or a size past 2^64 */
static bool bdat_args(const char *a, uint64_t *size, bool *last)
{
    char *end;

    if (*a < '0' || *a > '9')
        return false;
    errno = 0;
    *size = strtoull(a, &end, 10);
    if (errno == ERANGE)
        return false;
    *last = false;
    if (*end == ' ') {
        end += strspn(end, " ");
        if (strncasecmp(end, "LAST", 4) == 0) {
            *last = true;
            end += 4 + strspn(end + 4, " ");
        }
    }
    return *end == '\0';
}

/* smtpd_bdat - BDAT SIZE [LAST]: the chunk is read whatever the verdict, to stay in step */
void smtpd_bdat(struct session *s, const char *args)
{
    struct txn *t = &s->t;
    uint64_t size, left;
    bool last;

    if (!bdat_args(args, &size, &last)) {
        io_reply(&s->io, "501 5.5.4 Syntax: BDAT size [LAST]");
        io_end(&s->io); /* the chunk's length is unknown: the session is out of step */
        return;
    }
    io_deadline((long)s->l->data_timeout_ms);
    for (left = size; left > 0;) {
        const char *p;
        size_t got;
        enum io_result r = io_bytes(&s->io, left < IO_IN_CAP ? (size_t)left : IO_IN_CAP, &p, &got);
        if (r != IO_OK) {
            broken_off(s, r);
            return;
        }
        if (t->mail && t->nrcpt > 0)
            keep(s, p, got);
        left -= got;
    }
    if (!t->mail || t->nrcpt == 0) {
        io_reply(&s->io, t->mail ? "554 5.5.1 Error: no valid recipients"
                                 : "503 5.5.1 Error: need MAIL command");
        smtpd_error(s);
        return;
    }
    t->bdat = true;
    if (!last) {
        io_reply(&s->io, "250 2.0.0 %" PRIu64 " octets received", size);
        return;
    }
    finish(s);
}
