/*
 * sl_tls_policy.h - the effective TLS policy of a destination, explained.
 *
 * What `sluicectl tls` shows: for binding x domain, the tls option and the
 * section it came from, the MTA-STS policy (looked up, fetched and cached as
 * a worker would), and for each MX host the need a worker would apply now
 * and its source (config, mta-sts, dane), or why the host would not be used.
 * It runs the workers' own decision code (worker/tls_policy.c), so what it
 * says is what delivery does.
 */
#ifndef SL_TLS_POLICY_H
#define SL_TLS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "sl_config.h"
#include "sl_dns.h"
#include "sl_mta_sts.h"
#include "sl_tls.h"

struct sl_tls_report_host {
    char name[256];
    enum sl_tls_need need;
    const char *source; /* "config", "mta-sts", "dane" */
    bool skip;          /* the host would not be used: why */
    size_t ntlsa;       /* usable TLSA records (source dane) */
    char why[256];
};

struct sl_tls_report {
    int mode;                       /* the tls option (enum sl_tls_mode) */
    char mode_from[300];            /* the section that set it, or "default" */
    bool dane_option, dane_trusted; /* dane on; the resolver's AD bit is believed */
    bool mta_sts_option;
    bool route; /* a route skips MX, DANE and MTA-STS */
    enum sl_sts_source sts_src;
    struct sl_sts_policy sts;
    char note[256]; /* the MTA-STS lookup's remark */
    enum sl_dns_result dns;
    char dns_err[256];
    size_t nhosts;
    struct sl_tls_report_host host[SL_DNS_HOSTS_MAX];
};

/* Decide as a worker would for binding x domain (lower case).  0, or -1 with
 * err when the decision cannot be made at all (no resolver, no TLS context). */
int sl_tls_explain(const struct sl_config *cfg, const char *binding, const char *domain,
                   struct sl_tls_report *r, char *err, size_t errlen);

#endif
