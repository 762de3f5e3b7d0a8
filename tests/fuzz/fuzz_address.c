/*
 * fuzz_address.c - fuzz target "address": the mailbox parser of inject
 * (spool/address.c), with the queue-id check beside it.
 *
 * The input is one command-line argument (it ends at a NUL byte, as argv
 * strings do), checked as a recipient and as a sender (the null sender
 * allowed), as sluicectl inject checks them, in ASCII and with RFC 6531's
 * UTF-8 (sl_spool_valid_address_utf8).  An address that passes is
 * taken apart as the spool takes it (its domain, lower case) and quoted for a
 * message at several buffer sizes (sl_spool_printable); the text is also
 * checked as a queue id, as ids from the control socket are.
 * Promises checked: an accepted address fits RFC 5321's limits, is one token
 * of printable ASCII and has a non-empty domain no longer than 255 octets;
 * printable output is NUL-terminated within its buffer, printable itself, and
 * never longer than the buffer allows.  An ASCII address accepted is accepted
 * with UTF-8 allowed too; one accepted only so is well-formed UTF-8 without
 * control characters, and its domain is an A-label: ASCII, lower case.
 * Concurrency: one thread.  Trust boundary: the operator's command line and
 * bounce recipients.
 */
#include <stdlib.h>
#include <string.h>

#include "spool/sl_spool.h"
#include "support.h"
#include "util/sl_idna.h"

/* check_accepted - what an accepted address promises, and its domain */
static void check_accepted(const char *a)
{
    char domain[SL_DOMAIN_MAX + 1];
    size_t n = strlen(a);

    FUZZ_CHECK(n > 0 && n <= SL_ADDR_MAX);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(a[i] > ' ' && a[i] < 0x7f);
    FUZZ_CHECK(strchr(a, '@') != NULL);
    sl_spool_address_domain(a, domain, sizeof domain);
    FUZZ_CHECK(domain[0] != '\0' && strlen(domain) <= SL_DOMAIN_MAX);
    for (const char *p = domain; *p != '\0'; p++)
        FUZZ_CHECK(*p < 'A' || *p > 'Z' || strncmp(domain, "[IPv6:", 6) == 0);
}

/* check_accepted_utf8 - what an address accepted under SMTPUTF8 promises, and its domain */
static void check_accepted_utf8(const char *a)
{
    char domain[SL_DOMAIN_MAX + 1];
    size_t n = strlen(a);

    FUZZ_CHECK(n > 0 && n <= SL_ADDR_MAX && sl_idna_utf8_ok(a, n));
    FUZZ_CHECK(strchr(a, ' ') == NULL && strchr(a, '@') != NULL);
    sl_spool_address_domain(a, domain, sizeof domain);
    FUZZ_CHECK(domain[0] != '\0' && strlen(domain) <= SL_DOMAIN_MAX);
    FUZZ_CHECK(sl_idna_ascii(domain, strlen(domain)));
    for (const char *p = domain; *p != '\0'; p++)
        FUZZ_CHECK(*p < 'A' || *p > 'Z' || strncmp(domain, "[IPv6:", 6) == 0);
}

/* check_printable - the quoted form at every small buffer size and a large one */
static void check_printable(const char *s)
{
    static const size_t sizes[] = {1, 2, 3, 4, 5, 6, 7, 16, 64, 1024};
    char buf[1024 + 8];

    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t len = sizes[k];
        memset(buf, 'X', sizeof buf);
        sl_spool_printable(s, buf, len);
        FUZZ_CHECK(memchr(buf, '\0', len) != NULL);
        FUZZ_CHECK(buf[len] == 'X'); /* nothing written past the buffer */
        for (const char *p = buf; *p != '\0'; p++)
            FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
    }
}

/* LLVMFuzzerTestOneInput - one argument, as a recipient, a sender and a queue id */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size), err[256];
    bool rcpt = sl_spool_valid_address(s, false, err, sizeof err);
    bool sender = sl_spool_valid_address(s, true, err, sizeof err);

    bool utf8 = sl_spool_valid_address_utf8(s, false, err, sizeof err);

    FUZZ_CHECK(sender == (rcpt || s[0] == '\0'));
    FUZZ_CHECK(utf8 || !rcpt);
    if (rcpt)
        check_accepted(s);
    if (utf8)
        check_accepted_utf8(s);
    check_printable(s);
    if (sl_spool_id_valid(s))
        (void)sl_spool_id_time_us(s);
    free(s);
    return 0;
}
