/*
 * sl_mta_sts.h - MTA-STS (RFC 8461): a destination domain's published demand
 * that mail to it go only to named MX hosts, over verified TLS.
 *
 * For a domain: the TXT record at _mta-sts.DOMAIN ("v=STSv1; id=...") says a
 * policy exists and names its version; the policy itself is fetched from
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt (libcurl, within
 * mta_sts_timeout, certificate verified against tls_ca_file or the system
 * store), validated, and cached for its max_age in spool_dir/mta-sts/ so
 * that every worker, and the next start, shares it.  A fetch that fails or
 * times out falls back to the cached policy; with none, the domain has no
 * policy (RFC 8461 5).  The TXT record is asked again at most every
 * SL_STS_RECHECK_S seconds per worker (struct sl_sts_memo).
 */
#ifndef SL_MTA_STS_H
#define SL_MTA_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "dns/sl_dns.h"

#define SL_STS_MX_MAX    16
#define SL_STS_BODY_MAX  65536 /* a policy body larger than this is invalid (RFC 8461 3.3) */
#define SL_STS_RECHECK_S 300   /* a worker asks for the TXT record again after this */
#define SL_STS_MAX_AGE_S 31557600

enum sl_sts_mode { SL_STS_NONE = 0, SL_STS_TESTING, SL_STS_ENFORCE };
/* "none", "testing", "enforce" */
const char *sl_sts_mode_name(enum sl_sts_mode m);

struct sl_sts_policy {
    enum sl_sts_mode mode;
    long max_age; /* seconds */
    size_t nmx;
    char mx[SL_STS_MX_MAX][256]; /* "mail.example.com" or "*.example.net", lower case */
    char id[33];                 /* the TXT record's id the policy was fetched under */
    time_t fetched;              /* wall clock, seconds */
};

/* Parse a policy body (RFC 8461 3.2): version STSv1, mode, max_age, at least
 * one mx unless mode is none.  0, or -1 with one line in err. */
int sl_sts_parse(const char *text, size_t len, struct sl_sts_policy *p, char *err, size_t errlen);
/* Does an MX host name match one of the policy's mx patterns (RFC 8461 4.1:
 * a "*." pattern matches exactly one leftmost label)? */
bool sl_sts_mx_matches(const struct sl_sts_policy *p, const char *mx);

/* Where sl_sts_get finds things. */
struct sl_sts_env {
    struct sl_dns *dns;    /* for the TXT record and the policy host's address */
    const char *cache_dir; /* spool_dir/mta-sts (created when missing) */
    long timeout_ms;       /* mta_sts_timeout: the whole HTTPS fetch */
    int port;              /* mta_sts_port, 443 */
    const char *ca_file;   /* tls_ca_file, NULL: the system store */
    time_t now;            /* wall clock */
};

/* Where the policy sl_sts_get returned came from. */
enum sl_sts_source {
    SL_STS_SRC_NONE = 0, /* no policy: p->mode is SL_STS_NONE */
    SL_STS_SRC_FETCHED,  /* fetched now (and cached) */
    SL_STS_SRC_CACHE,    /* the cached one: TXT id unchanged, or fetch failed/timed out */
};

/* A worker's recent answers, so a busy domain costs no DNS query per connection. */
#define SL_STS_MEMO_ENTRIES 16
struct sl_sts_memo {
    struct {
        char domain[256];
        time_t checked; /* 0: free */
        enum sl_sts_source src;
        struct sl_sts_policy p;
    } e[SL_STS_MEMO_ENTRIES];
};

/* The policy in force for domain.  note (may be NULL) gets one line on what
 * happened when it is worth logging ("fetch timed out after 2s, using the
 * cached policy", "policy invalid: ..."). */
enum sl_sts_source sl_sts_get(const struct sl_sts_env *env, struct sl_sts_memo *memo,
                              const char *domain, struct sl_sts_policy *p, char *note,
                              size_t notelen);

#endif
