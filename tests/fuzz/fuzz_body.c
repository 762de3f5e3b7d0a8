/*
 * fuzz_body.c - fuzz target "body": the message inject reads on its standard
 * input, turned into the stored form (spool/body.c: CRLF line ends,
 * dot-stuffed, NUL bytes and lines over 998 octets refused).
 *
 * The input is the message as given.  spool_body_measure sizes it, and
 * spool_body_encode writes it into a buffer of exactly the size measured (so
 * AddressSanitizer sees one byte too many).  Promises checked: the stored
 * form has only CRLF line ends and ends in one, the SIZE it announces is the
 * stored form less its stuffing dots, no line is longer than 998 octets
 * (999 with a stuffing dot), no line starts with a single "." (so DATA's end
 * cannot be forged), and removing the stuffing gives back the input with its
 * line ends made CRLF; the stuffing dots are at most a third of SIZE, which the
 * reader takes for the bound of a sound body.
 * Concurrency: one thread.  Trust boundary: the operator's message, or a
 * peer's text in a bounce.
 */
#include <stdlib.h>
#include <string.h>

#include "spool/spool_impl.h"
#include "support.h"

/* check_lines - CRLF only, bounded lines, every leading dot doubled; the number of dots */
static size_t check_lines(const char *out, size_t n)
{
    size_t dots = 0, start = 0;

    FUZZ_CHECK(n >= 2 && out[n - 2] == '\r' && out[n - 1] == '\n');
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(out[i] != '\0');
        if (out[i] == '\r') {
            FUZZ_CHECK(i + 1 < n && out[i + 1] == '\n');
            FUZZ_CHECK(i - start <= 999);
            if (out[start] == '.' && i > start) {
                FUZZ_CHECK(i - start >= 2 && out[start + 1] == '.');
                dots++;
            }
            start = i + 2;
            i++;
        } else {
            FUZZ_CHECK(out[i] != '\n');
        }
    }
    return dots;
}

/* check_same - the stored form without its stuffing dots, against the input's CRLF form */
static void check_same(const char *in, size_t len, const char *out, size_t n)
{
    size_t i = 0, o = 0;
    bool start = true;

    while (i < len) {
        if (in[i] == '\r' || in[i] == '\n') {
            i += in[i] == '\r' && i + 1 < len && in[i + 1] == '\n' ? 2 : 1;
            FUZZ_CHECK(o + 2 <= n && out[o] == '\r' && out[o + 1] == '\n');
            o += 2;
            start = true;
            continue;
        }
        if (start && in[i] == '.')
            FUZZ_CHECK(o < n && out[o++] == '.');
        FUZZ_CHECK(o < n && out[o] == in[i]);
        o++, i++;
        start = false;
    }
    FUZZ_CHECK(o == n || (o + 2 == n && !start));
}

/* LLVMFuzzerTestOneInput - one message: measure it, store it, check the stored form */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    uint64_t announced;
    size_t stuffed;
    char err[256];

    if (spool_body_measure(in, size, &announced, &stuffed, err, sizeof err) < 0) {
        FUZZ_CHECK(size == 0 || memchr(in, '\0', size) != NULL || size > 998);
        return 0;
    }
    FUZZ_CHECK(memchr(in, '\0', size) == NULL);
    char *out = malloc(stuffed);
    FUZZ_CHECK(out != NULL);
    spool_body_encode(in, size, out);
    FUZZ_CHECK(announced + check_lines(out, stuffed) == stuffed);
    /* the reader's bound on a sound body (read.c body_fits): a stuffed line is 3 bytes or more */
    FUZZ_CHECK(stuffed - announced <= announced / 3);
    check_same(in, size, out, stuffed);
    free(out);
    return 0;
}
