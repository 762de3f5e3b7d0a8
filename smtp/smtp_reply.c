/*
 * smtp_reply.c - SMTP replies: multi-line assembly, code checks, enhanced
 * status codes, the extensions an EHLO reply offers.
 *
 * Trust boundary: every line is the peer's.  A reply is accepted only when
 * each line starts with the same three-digit code in 200-599 followed by a
 * space, a dash or the end of the line; at most SL_SMTP_LINES_MAX lines.  The
 * text kept for the log is bounded (SL_SMTP_TEXT_MAX) and made printable.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_impl.h"

/* line_code - the reply code opening a line, or -1 when the line is not a reply line */
static int line_code(const char *line, size_t len)
{
    if (len < 3 || (len > 3 && line[3] != ' ' && line[3] != '-'))
        return -1;
    for (int i = 0; i < 3; i++)
        if (line[i] < '0' || line[i] > '9')
            return -1;
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    return code >= 200 && code <= 599 ? code : -1;
}

/* is_last - "250 ..." or a bare "250" ends a reply; "250-..." continues it */
static bool is_last(const char *line, size_t len)
{
    return len == 3 || line[3] == ' ';
}

/* append_text - add a line's text to the reply's, printable and truncated */
static void append_text(struct sl_reply *r, size_t *tlen, const char *txt, size_t n)
{
    size_t room = sizeof r->text - 1;

    if (*tlen > 0 && *tlen < room)
        r->text[(*tlen)++] = ' ';
    for (size_t i = 0; i < n && *tlen < room; i++) {
        unsigned char c = (unsigned char)txt[i];
        r->text[(*tlen)++] = c >= ' ' && c < 0x7f ? (char)c : '?';
    }
    r->text[*tlen] = '\0';
}

/* digits - how many decimal digits start s (at most max + 1, so "too many" shows) */
static size_t digits(const char *s, size_t n, size_t max)
{
    size_t i = 0;
    while (i < n && i <= max && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* find_enhanced - "5.1.1" at the start of the first line's text (RFC 3463: class.subject.detail,
 * class matching the reply's), accepted whether or not the peer offered ENHANCEDSTATUSCODES */
static void find_enhanced(struct sl_reply *r, int code, const char *txt, size_t n)
{
    size_t i = 0;

    r->enhanced[0] = '\0';
    if (n < 5 || code / 100 == 3 || txt[0] != '0' + code / 100 || txt[1] != '.')
        return;
    i = 2;
    size_t d = digits(txt + i, n - i, 3);
    if (d == 0 || d > 3 || i + d >= n || txt[i + d] != '.')
        return;
    i += d + 1;
    d = digits(txt + i, n - i, 3);
    if (d == 0 || d > 3 || (i + d < n && txt[i + d] != ' '))
        return;
    i += d;
    memcpy(r->enhanced, txt, i);
    r->enhanced[i] = '\0';
}

/* ehlo_size - the SIZE extension's limit; absent, 0 or unreadable: no limit announced */
static uint64_t ehlo_size(const char *arg, size_t n)
{
    char num[24];
    size_t d = digits(arg, n, 20);

    if (d == 0 || d > 20)
        return 0;
    memcpy(num, arg, d);
    num[d] = '\0';
    errno = 0;
    uintmax_t v = strtoumax(num, NULL, 10);
    return errno == 0 ? (uint64_t)v : 0;
}

/* is_keyword - the line's keyword (up to a space) is kw, case-insensitively */
static bool is_keyword(const char *txt, size_t n, const char *kw, size_t kwlen)
{
    return n >= kwlen && strncasecmp(txt, kw, kwlen) == 0 && (n == kwlen || txt[kwlen] == ' ');
}

/* limit_value - one LIMITS parameter's value (1 to 2^31-1); 0 when unreadable: ignored */
static uint32_t limit_value(const char *v, size_t n)
{
    uint64_t x = ehlo_size(v, n);

    return x > 0 && x <= INT32_MAX && digits(v, n, 20) == n ? (uint32_t)x : 0;
}

/* ehlo_limits - "LIMITS MAILMAX=n RCPTMAX=n RCPTDOMAINMAX=n" (RFC 9422): the two a client
 * obeys here; an unknown or malformed parameter is ignored, as the RFC asks */
static void ehlo_limits(struct sl_smtp *s, const char *txt, size_t n)
{
    size_t i = 6; /* past "LIMITS" */

    while (i < n) {
        size_t start, len, eq;
        while (i < n && txt[i] == ' ')
            i++;
        start = i;
        while (i < n && txt[i] != ' ')
            i++;
        len = i - start;
        for (eq = 0; eq < len && txt[start + eq] != '='; eq++)
            ;
        if (eq == len)
            continue;
        if (eq == 7 && strncasecmp(txt + start, "RCPTMAX", 7) == 0)
            s->rcptmax = limit_value(txt + start + 8, len - 8);
        else if (eq == 7 && strncasecmp(txt + start, "MAILMAX", 7) == 0)
            s->mailmax = limit_value(txt + start + 8, len - 8);
    }
}

/* ehlo_line - one extension line of an EHLO reply ("PIPELINING", "SIZE 10240000", ...) */
static void ehlo_line(struct sl_smtp *s, const char *txt, size_t n)
{
    if (is_keyword(txt, n, "PIPELINING", 10))
        s->pipelining = true;
    else if (is_keyword(txt, n, "STARTTLS", 8))
        s->starttls = true;
    else if (is_keyword(txt, n, "ENHANCEDSTATUSCODES", 19))
        s->enhanced = true;
    else if (is_keyword(txt, n, "8BITMIME", 8))
        s->eightbit = true;
    else if (is_keyword(txt, n, "SMTPUTF8", 8))
        s->smtputf8 = true;
    else if (is_keyword(txt, n, "CHUNKING", 8))
        s->chunking = true;
    else if (is_keyword(txt, n, "DSN", 3))
        s->dsn = true;
    else if (is_keyword(txt, n, "LIMITS", 6))
        ehlo_limits(s, txt, n);
    else if (is_keyword(txt, n, "SIZE", 4)) {
        s->size = true;
        s->size_max = n > 5 ? ehlo_size(txt + 5, n - 5) : 0;
    }
}

/* bad_line - a line that is not a reply line: quote its start, printable, in the error */
static int bad_line(struct sl_smtp *s, const char *line, size_t len)
{
    char q[41];
    size_t n = len < sizeof q - 1 ? len : sizeof q - 1;

    for (size_t i = 0; i < n; i++)
        q[i] = (unsigned char)line[i] >= ' ' && (unsigned char)line[i] < 0x7f ? line[i] : '?';
    q[n] = '\0';
    return smtp_fail(s, SL_SMTP_FAIL_PROTO, "malformed %s reply line \"%s\"",
                     sl_phase_name(s->phase), q);
}

/* smtp_reply_read - read one whole reply into r under the running phase; r->code stays 0
 * unless the reply was complete and well formed */
int smtp_reply_read(struct sl_smtp *s, struct sl_reply *r, bool ehlo)
{
    const char *line;
    size_t len, tlen = 0;
    int code = 0;

    r->code = 0;
    r->enhanced[0] = '\0';
    r->text[0] = '\0';
    for (int nlines = 1;; nlines++) {
        if (nlines > SL_SMTP_LINES_MAX)
            return smtp_fail(s, SL_SMTP_FAIL_PROTO, "%s reply longer than %d lines",
                             sl_phase_name(s->phase), SL_SMTP_LINES_MAX);
        if (smtp_io_line(s, &line, &len) < 0)
            return -1;
        int c = line_code(line, len);
        if (c < 0)
            return bad_line(s, line, len);
        const char *txt = len > 4 ? line + 4 : line + len;
        size_t n = len > 4 ? len - 4 : 0;
        if (nlines == 1) {
            code = c;
            append_text(r, &tlen, line, 3);
            find_enhanced(r, c, txt, n);
        } else if (c != code) {
            return smtp_fail(s, SL_SMTP_FAIL_PROTO,
                             "reply code changed from %d to %d within a multi-line %s reply", code,
                             c, sl_phase_name(s->phase));
        } else if (ehlo) {
            ehlo_line(s, txt, n);
        }
        if (n > 0)
            append_text(r, &tlen, txt, n);
        if (is_last(line, len))
            break;
    }
    r->code = code;
    return 0;
}
