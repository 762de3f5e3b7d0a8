/*
 * body.c - the stored form of a message: CRLF line ends, dot-stuffed.
 *
 * Input line ends may be CRLF, LF or a lone CR; each becomes CRLF, and a last
 * line without one gets one.  A line starting with "." gets one more (RFC 5321
 * 4.5.2) so that DATA is a single write of the stored bytes.  Refused: a NUL
 * byte, and a line longer than 998 octets (RFC 5322 2.1.1), which no relay
 * would carry unchanged.
 * Concurrency: pure functions.
 * Trust boundary: the bytes are the operator's (inject) or a peer's (bounce).
 */
#include "spool_impl.h"

#define LINE_MAX_OCTETS 998

/* spool_body_measure - validate, and size the CRLF form and the stuffed form */
int spool_body_measure(const char *in, size_t len, uint64_t *size, size_t *stuffed, char *err,
                       size_t errlen)
{
    uint64_t total = 0;
    size_t dots = 0, line = 0, lineno = 1;

    if (len == 0)
        return spool_fail(err, errlen, "empty message");
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '\0')
            return spool_fail(err, errlen, "message has a NUL byte (line %zu)", lineno);
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < len && in[i + 1] == '\n')
                i++;
            total += line + 2;
            line = 0;
            lineno++;
            continue;
        }
        if (line == 0 && c == '.')
            dots++;
        if (++line > LINE_MAX_OCTETS)
            return spool_fail(err, errlen, "message line %zu is longer than %d octets", lineno,
                              LINE_MAX_OCTETS);
    }
    if (line > 0)
        total += line + 2;
    *size = total;
    *stuffed = (size_t)total + dots;
    return 0;
}

/* spool_body_encode - write the stored form; out has room for `stuffed` bytes */
void spool_body_encode(const char *in, size_t len, char *out)
{
    bool start = true;

    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < len && in[i + 1] == '\n')
                i++;
            *out++ = '\r';
            *out++ = '\n';
            start = true;
            continue;
        }
        if (start && c == '.')
            *out++ = '.';
        *out++ = c;
        start = false;
    }
    if (!start) {
        *out++ = '\r';
        *out++ = '\n';
    }
}
