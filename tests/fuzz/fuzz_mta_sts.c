/*
 * fuzz_mta_sts.c - fuzz target "mta_sts": the MTA-STS texts (tls/mta_sts.c)
 * and the policy cache file (tls/mta_sts_cache.c).
 *
 * The same input is read three ways, as the texts a worker meets:
 *   - a policy body as fetched over HTTPS (sl_sts_parse), then every MX name
 *     of a plan matched against it (sl_sts_mx_matches) and its age checked;
 *   - the _mta-sts TXT records, one per line of the input (at most 8, each
 *     cut to SL_DNS_TXT_MAX - 1 bytes as the DNS reader cuts them), for the
 *     policy id (sl_sts_txt_id);
 *   - the cache file of a domain (sl_sts_cache_load from a private directory,
 *     parsed again as a file from disk always is), then checked for age at a
 *     fixed instant, as sl_sts_get does.
 * Promises checked: a policy that parses has its required fields, at most
 * SL_STS_MX_MAX lower-case patterns that are host names or "*." ones, and an
 * id of 1 to 32 letters and digits when it has one.
 * Concurrency: one thread.  Trust boundary: the recipient domain's web server
 * and DNS, and a cache file on disk.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/mta_sts_impl.h"
#include "support.h"

#define TXT_MAX 8
#define NOW     1767225600 /* a fixed instant, 2026-01-01: the harness is deterministic */

static char cache_dir[4096], cache_file[4200];

/* Names an MX plan holds, matched against every policy that parses. */
static const char *const mx_names[] = {
    "mail.example.com",
    "MAIL.Example.Com.",
    "a.example.net",
    "a.b.example.net",
    "example.net",
    ".example.net",
    "x",
    "",
};

/* LLVMFuzzerInitialize - once per process: the private cache directory */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(cache_dir, sizeof cache_dir, "%s", fuzz_tmpdir());
    snprintf(cache_file, sizeof cache_file, "%s/example.com", cache_dir);
    return 0;
}

/* check_policy - what a policy that parsed promises; its MX matches and age */
static void check_policy(const struct sl_sts_policy *p)
{
    FUZZ_CHECK(p->mode == SL_STS_NONE || p->mode == SL_STS_TESTING || p->mode == SL_STS_ENFORCE);
    FUZZ_CHECK(p->mode == SL_STS_NONE || p->nmx > 0);
    FUZZ_CHECK(p->nmx <= SL_STS_MX_MAX);
    FUZZ_CHECK(p->max_age >= 0 && p->max_age <= SL_STS_MAX_AGE_S);
    for (size_t i = 0; i < p->nmx; i++) {
        const char *pat = p->mx[i];
        FUZZ_CHECK(memchr(pat, '\0', sizeof p->mx[i]) != NULL);
        FUZZ_CHECK(sl_sts_domain_ok(strncmp(pat, "*.", 2) == 0 ? pat + 2 : pat));
        if (strncmp(pat, "*.", 2) != 0)
            FUZZ_CHECK(sl_sts_mx_matches(p, pat)); /* a host name matches itself */
    }
    for (size_t i = 0; i < sizeof mx_names / sizeof mx_names[0]; i++)
        (void)sl_sts_mx_matches(p, mx_names[i]);
    (void)sl_sts_fresh(p, NOW);
}

/* as_txt - the input's lines as the TXT records of _mta-sts.DOMAIN */
static void as_txt(const uint8_t *data, size_t size)
{
    char txt[TXT_MAX][SL_DNS_TXT_MAX], id[33], err[256];
    size_t n = 0;

    for (size_t pos = 0; pos < size && n < TXT_MAX; n++) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl != NULL ? (size_t)(nl - data) : size, len = end - pos;
        if (len > SL_DNS_TXT_MAX - 1)
            len = SL_DNS_TXT_MAX - 1;
        memcpy(txt[n], data + pos, len);
        txt[n][len] = '\0';
        pos = end + 1;
    }
    if (sl_sts_txt_id((const char(*)[SL_DNS_TXT_MAX])txt, n, id, err, sizeof err) == 1) {
        size_t len = strlen(id);
        FUZZ_CHECK(len >= 1 && len <= 32);
        for (size_t i = 0; i < len; i++)
            FUZZ_CHECK(isalnum((unsigned char)id[i]));
    }
}

/* as_cache - the input as the domain's cache file */
static void as_cache(const uint8_t *data, size_t size)
{
    struct sl_sts_policy p;
    char err[512];

    fuzz_write_file(cache_file, data, size);
    if (sl_sts_cache_load(cache_dir, "example.com", &p, err, sizeof err) != 0)
        return;
    check_policy(&p);
    FUZZ_CHECK(strlen(p.id) >= 1 && strlen(p.id) <= 32);
    FUZZ_CHECK(p.fetched >= 0); /* regress/mta_sts/cache_fetched_negative */
}

/* LLVMFuzzerTestOneInput - one text, as a policy body, as TXT records and as a cache file */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_sts_policy p;
    char err[256];

    if (sl_sts_parse((const char *)data, size, &p, err, sizeof err) == 0)
        check_policy(&p);
    as_txt(data, size);
    as_cache(data, size);
    return 0;
}
