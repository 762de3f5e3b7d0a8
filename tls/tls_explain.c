/*
 * tls_explain.c - the workers' TLS decision, made for `sluicectl tls`.
 *
 * Builds the little of a worker's state the decision needs (the config, a
 * resolver, a TLS context, an MTA-STS memo), resolves the domain like a
 * delivery would and asks tls/tls_policy.c about each MX host, so the
 * operator sees exactly what the next delivery would do.  It shares the
 * MTA-STS cache in spool_dir with the workers (a fetch made here is cached
 * for them too).
 * Trust boundary: the operator's arguments are checked by the caller; DNS
 * and policy texts come through sl_dns and sl_sts_get.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "util/sl_msg.h"
#include "tls/sl_tls_policy.h"
#include "config/sl_dest.h"

/* mode_source - where the tls option's value comes from */
static void mode_source(const struct sl_config *cfg, const char *binding, const char *domain,
                        struct sl_tls_report *r)
{
    struct sl_scope_ref ref = {.binding = binding, .domain = domain};
    const struct sl_section *from = NULL;
    struct sl_value v;
    char err[200];

    strlcpy(r->mode_from, "default", sizeof r->mode_from);
    if (sl_config_eval(cfg, SL_OPT_TLS, &ref, &v, &from, err, sizeof err) && from != NULL)
        sl_section_describe(cfg, from, r->mode_from, sizeof r->mode_from);
}

/* report_host - one MX host's line of the report */
static void report_host(const struct sl_tls_choice *c, const char *name,
                        struct sl_tls_report_host *h)
{
    strlcpy(h->name, name, sizeof h->name);
    h->need = c->params.need;
    h->source = c->source;
    h->skip = c->skip;
    h->ntlsa = c->params.ntlsa;
    strlcpy(h->why, c->why, sizeof h->why);
}

/* decide - the plan, then every host's choice */
static int decide(struct sl_tls_env *env, struct sl_dns *dns, const struct sl_dest *d,
                  struct sl_tls_report *r, char *err, size_t errlen)
{
    struct sl_dns_answer a;
    struct sl_dns_query q = {.domain = d->domain,
                             .route = d->route,
                             .port = d->port,
                             .mx_limit = d->mx_limit,
                             .multihomed_limit = d->multihomed_limit,
                             .family = d->family};
    struct sl_tls_plan plan;
    struct sl_tls_choice c;

    r->dns = sl_dns_resolve(dns, &q, &a, r->dns_err, sizeof r->dns_err);
    if (!sl_tls_plan_make(env, d, d->route == NULL ? dns : NULL, &plan, err, errlen))
        return -1;
    r->dane_trusted = plan.dane;
    r->sts_src = plan.sts_src;
    r->sts = plan.sts;
    strlcpy(r->note, plan.note, sizeof r->note);
    if (r->dns != SL_DNS_OK)
        return 0;
    for (size_t i = 0; i < a.nhosts && r->nhosts < SL_DNS_HOSTS_MAX; i++) {
        sl_tls_choose(env, d, &plan, a.host[i].name, &c);
        report_host(&c, a.host[i].name, &r->host[r->nhosts++]);
    }
    return 0;
}

/* sl_tls_explain - see sl_tls_policy.h */
int sl_tls_explain(const struct sl_config *cfg, const char *binding, const char *domain,
                   struct sl_tls_report *r, char *err, size_t errlen)
{
    struct sl_scope_ref none = {0};
    struct sl_tls_env env = {.cfg = cfg};
    struct sl_dns *dns;
    struct sl_dest *d = sl_calloc(1, sizeof *d);
    char host[256] = "localhost";
    int rc = -1;

    memset(r, 0, sizeof *r);
    (void)gethostname(host, sizeof host - 1);
    sl_dest_load(cfg, binding, domain, host, d);
    r->mode = d->tls;
    r->dane_option = d->dane;
    r->mta_sts_option = d->mta_sts;
    r->route = d->route != NULL;
    mode_source(cfg, binding, domain, r);
    dns = sl_dns_open(sl_config_str(cfg, SL_OPT_DNS_SERVER, &none), SL_DNS_TIMEOUT_MS, err, errlen);
    if (dns != NULL)
        rc = decide(&env, dns, d, r, err, errlen);
    sl_dns_close(dns);
    sl_tls_env_free(&env);
    free(d);
    return rc;
}
