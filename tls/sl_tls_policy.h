/*
 * sl_tls_policy.h - the effective TLS policy of a destination, explained.
 *
 * What `sluicectl tls` shows: for binding x domain, the tls option and the
 * section it came from, the MTA-STS policy (looked up, fetched and cached as
 * a worker would), and for each MX host the need a worker would apply now
 * and its source (config, mta-sts, dane), or why the host would not be used.
 * It runs the workers' own decision code (tls/tls_policy.c), so what it
 * says is what delivery does.
 */
#ifndef SL_TLS_POLICY_H
#define SL_TLS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "config/sl_config.h"
#include "config/sl_dest.h"
#include "dns/sl_dns.h"
#include "tls/sl_mta_sts.h"
#include "smtp/sl_smtp.h"
#include "smtp/sl_tls.h"

/* What a process keeps for its TLS decisions (a worker's, sluicectl's): the
 * OpenSSL context and the memories of MTA-STS and TLSA answers, each made on
 * first use.  cfg is set by the owner. */
struct sl_tls_env {
    const struct sl_config *cfg;
    struct sl_tls_client *client;
    struct sl_sts_memo *sts_memo;
    struct sl_tlsa_cache *tlsa_cache;
};
/* Free what env made (not cfg). */
void sl_tls_env_free(struct sl_tls_env *env);

/* The TLS side of one connection attempt, as the delivery log shows it. */
struct sl_tls_log {
    bool tried;              /* a session was tried: the log line gets a "tls" object */
    enum sl_tls_need need;   /* what the policy demanded of the host */
    const char *source;      /* "config", "mta-sts" or "dane" */
    struct sl_tls_info info; /* what the session came to */
    char note[256];          /* MTA-STS testing failures, a retry in clear, ... */
};

/* tls_policy.c: what TLS a destination demands, and why.  A plan is
 * made once per connection attempt (config tls, the MTA-STS policy); a choice
 * per MX host adds DANE (validated TLSA records win over MTA-STS, RFC 8461 2). */
struct sl_tls_plan {
    int mode;                   /* config tls (enum sl_tls_mode) */
    struct sl_dns *dns;         /* the resolver of the plan (TLSA lookups); NULL with a route */
    bool dane;                  /* dane on, no route, and a resolver whose AD bit counts */
    enum sl_sts_source sts_src; /* SL_STS_SRC_NONE: no MTA-STS policy applies */
    struct sl_sts_policy sts;
    char note[256]; /* what the MTA-STS lookup had to say */
};
struct sl_tls_choice {
    struct sl_tls_params params; /* need, client, host, tlsa */
    const char *source;          /* "config", "mta-sts", "dane" */
    bool skip;                   /* this host must not be used: why says why */
    bool testing;                /* MTA-STS testing: report, never refuse */
    char why[256];
    struct sl_tlsa tlsa[SL_TLSA_MAX];
};
/* The plan for d.  false with info->phase/reply when it cannot be made (no TLS context). */
bool sl_tls_plan_make(struct sl_tls_env *env, const struct sl_dest *d, struct sl_dns *dns,
                      struct sl_tls_plan *p, char *err, size_t errlen);
/* What connecting to MX host mx (a name from DNS, or the route) demands. */
void sl_tls_choose(struct sl_tls_env *env, const struct sl_dest *d, const struct sl_tls_plan *p,
                   const char *mx, struct sl_tls_choice *c);
/* Fill log for a host the choice ruled out (c->skip) before any connection. */
void sl_tls_note_refusal(const struct sl_tls_plan *p, const struct sl_tls_choice *c,
                         struct sl_tls_log *log);
/* Fill log from the choice and the session s (after sl_smtp_open, either way). */
void sl_tls_record(const struct sl_tls_plan *p, const struct sl_tls_choice *c,
                   const struct sl_smtp *s, struct sl_tls_log *log);

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
