/*
 * mta_sts_impl.h - what the files of the MTA-STS module share (not for other
 * modules; the unit test reaches in here too).
 *
 * mta_sts.c        the policy text (RFC 8461 3.2), the TXT record (3.1), the
 *                  MX match (4.1): pure, no I/O
 * mta_sts_fetch.c  the HTTPS fetch of a policy body (3.3) with libcurl
 * mta_sts_cache.c  the policy cache on disk, the per-worker memo, sl_sts_get
 */
#ifndef SL_MTA_STS_IMPL_H
#define SL_MTA_STS_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "dns/sl_dns.h"
#include "tls/sl_mta_sts.h"

/* mta_sts.c */
/* The policy id of the TXT records at _mta-sts.DOMAIN (RFC 3.1): exactly one
 * record must start with "v=STSv1" and carry a valid id.  1 with id; 0 when
 * no record starts with "v=STSv1" (the domain publishes no policy); -1 with a
 * line in err when there are several or the one is malformed (no policy). */
int sl_sts_txt_id(const char (*rec)[SL_DNS_TXT_MAX], size_t n, char id[33], char *err,
                  size_t errlen);
/* Is s a lower-case DNS host name (letters, digits, '-', '_', dots between
 * labels), as a domain must be to name a cache file or a policy host? */
bool sl_sts_domain_ok(const char *s);
/* Is the policy still in force at now (fetched + max_age not passed)? */
bool sl_sts_fresh(const struct sl_sts_policy *p, time_t now);

/* mta_sts_fetch.c */
/* GET https://mta-sts.DOMAIN[:port]/.well-known/mta-sts.txt, the host's
 * address from env->dns.  0 with the body in *body (NUL-terminated, caller
 * frees) and its length in *len; -1 with one line in err. */
int sl_sts_fetch(const struct sl_sts_env *env, const char *domain, char **body, size_t *len,
                 char *err, size_t errlen);

/* mta_sts_cache.c */
/* Write p (with the body it was parsed from) as the cached policy of domain:
 * a temporary file renamed into place.  0, or -1 with err. */
int sl_sts_cache_store(const char *dir, const char *domain, const struct sl_sts_policy *p,
                       const char *body, size_t len, char *err, size_t errlen);
/* The cached policy of domain, expired or not.  0; 1 when there is none; -1
 * with err when the file is unreadable or does not parse. */
int sl_sts_cache_load(const char *dir, const char *domain, struct sl_sts_policy *p, char *err,
                      size_t errlen);

#endif
