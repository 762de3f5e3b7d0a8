/*
 * idna.c - UTF-8 checks and the A-label of a domain name (libidn2), for RFC 6531 mail.
 *
 * The UTF-8 check is our own so that every byte of an address is judged the same way in
 * every process, before libidn2 or a log line sees it.
 * Concurrency: no state; libidn2's conversion is reentrant.
 * Trust boundary: the input is anybody's; output is bounded by the caller's buffer.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "util/sl_idna.h"
#include "util/sl_msg.h"

/* sl_idna_ascii - no byte with the high bit set */
bool sl_idna_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* seq_len - the length of the UTF-8 sequence a lead byte starts, and its first bits; 0 if
 * no lead byte */
static size_t seq_len(unsigned char c, uint32_t *cp)
{
    if (c < 0x80)
        return *cp = c, 1;
    if (c >= 0xc2 && c <= 0xdf)
        return *cp = c & 0x1f, 2;
    if (c >= 0xe0 && c <= 0xef)
        return *cp = c & 0x0f, 3;
    if (c >= 0xf0 && c <= 0xf4)
        return *cp = c & 0x07, 4;
    return 0; /* a continuation byte, an overlong lead (C0, C1) or beyond U+10FFFF */
}

/* utf8_scan - are the n bytes at s well-formed UTF-8 (RFC 3629: no overlong form, no
 * surrogate, at most U+10FFFF), and, unless controls_ok, free of C0, DEL and C1 controls? */
static bool utf8_scan(const char *s, size_t n, bool controls_ok)
{
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000}; /* no overlong form */

    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = seq_len((unsigned char)s[i], &cp);
        if (len == 0 || len > n - i)
            return false;
        for (size_t k = 1; k < len; k++) {
            unsigned char c = (unsigned char)s[i + k];
            if ((c & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (c & 0x3f);
        }
        if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        if (!controls_ok && (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)))
            return false; /* C0, DEL and C1 controls */
        i += len;
    }
    return true;
}

/* sl_idna_utf8_ok - well-formed UTF-8 without any control character */
bool sl_idna_utf8_ok(const char *s, size_t n)
{
    return utf8_scan(s, n, false);
}

/* sl_idna_utf8_wellformed - well-formed UTF-8, controls allowed */
bool sl_idna_utf8_wellformed(const char *s, size_t n)
{
    return utf8_scan(s, n, true);
}

/* sl_idna_alabel - IDNA2008 (UTS #46 non-transitional) A-label form, lower case */
bool sl_idna_alabel(const char *s, size_t n, char *out, size_t outlen)
{
    char *in, *a = NULL;
    size_t len;
    int rc;

    if (n == 0 || !sl_idna_utf8_ok(s, n) || memchr(s, '\0', n) != NULL)
        return false;
    in = sl_malloc(n + 1);
    memcpy(in, s, n);
    in[n] = '\0';
    rc = idn2_to_ascii_8z(in, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    free(in);
    if (rc != IDN2_OK || a == NULL || (len = strlen(a)) >= outlen) {
        idn2_free(a);
        return false;
    }
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)a[i]);
    out[len] = '\0';
    idn2_free(a);
    return true;
}
