/*
 * ctl_tls.c - sluicectl tls: a domain's effective TLS policy, and why.
 *
 * Prints the tls option and the section it came from, the MTA-STS policy
 * (looked up, fetched within mta_sts_timeout and cached like a worker would),
 * whether DANE applies (the dane option and a resolver on loopback whose AD
 * bit is believed), then one line per MX host: the need a delivery would
 * apply (none, try, encrypt, verify, dane) and its source (config, mta-sts,
 * dane), or why the host would not be used.  --json prints the same as one
 * object.  Exit 0; 1 for a bad config; 2 for bad usage or when the decision
 * cannot be made (no resolver, a CA file that cannot be read).
 * Trust boundary: the operator's arguments and file; everything from the
 * network comes through the workers' own code (sl_tls_explain).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/sl_config.h"
#include "ctl/sl_ctl.h"
#include "tls/sl_tls_policy.h"

#define USAGE "tls [--binding B] [--json] DOMAIN"

static const char *const mode_words[] = {"disabled", "opportunistic", "required", "verify"};
static const char *const src_words[] = {"none", "fetched", "cached"};

/* usage - the subcommand's synopsis */
static int usage(void)
{
    fprintf(stderr, "usage: sluicectl " USAGE "\n");
    return 2;
}

/* sts_line - the MTA-STS policy in one line */
static void sts_line(const struct sl_tls_report *r)
{
    if (!r->mta_sts_option) {
        printf("mta-sts: off (mta_sts = off)\n");
        return;
    }
    if (r->route) {
        printf("mta-sts: not applied (a route is set)\n");
        return;
    }
    if (r->sts_src == SL_STS_SRC_NONE) {
        printf("mta-sts: no policy%s%s\n", r->note[0] ? " - " : "", r->note);
        return;
    }
    printf("mta-sts: %s (%s, id %s, max_age %lds), mx", sl_sts_mode_name(r->sts.mode),
           src_words[r->sts_src], r->sts.id, r->sts.max_age);
    for (size_t i = 0; i < r->sts.nmx; i++)
        printf(" %s", r->sts.mx[i]);
    printf("%s%s\n", r->note[0] ? " - " : "", r->note);
}

/* dane_line - whether validated TLSA records are looked for */
static void dane_line(const struct sl_tls_report *r)
{
    if (!r->dane_option)
        printf("dane: off (dane = off)\n");
    else if (r->route)
        printf("dane: not applied (a route is set)\n");
    else if (!r->dane_trusted)
        printf("dane: on, but the resolver is not on loopback: its AD bit is not believed\n");
    else
        printf("dane: on (TLSA records are looked up for each MX host)\n");
}

/* print_text - the report for a terminal */
static void print_text(const char *binding, const char *domain, const struct sl_tls_report *r)
{
    printf("domain %s, binding %s\n", domain, binding);
    printf("tls: %s (from %s)\n", mode_words[r->mode & 3], r->mode_from);
    sts_line(r);
    dane_line(r);
    if (r->dns != SL_DNS_OK)
        printf("mx: none to show: %s\n", r->dns_err);
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct sl_tls_report_host *h = &r->host[i];
        if (h->skip)
            printf("mx %s: not used: %s\n", h->name, h->why);
        else
            printf("mx %s: %s (source %s%s%s)\n", h->name, sl_tls_need_name(h->need), h->source,
                   h->why[0] ? "; " : "", h->why);
    }
}

/* print_json - the report as one object */
static void print_json(const char *binding, const char *domain, const struct sl_tls_report *r)
{
    printf("{\"domain\":");
    sl_ctl_json_string(domain);
    printf(",\"binding\":");
    sl_ctl_json_string(binding);
    printf(",\"tls\":\"%s\",\"tls_from\":", mode_words[r->mode & 3]);
    sl_ctl_json_string(r->mode_from);
    printf(",\"dane\":{\"option\":%s,\"trusted\":%s}", r->dane_option ? "true" : "false",
           r->dane_trusted ? "true" : "false");
    printf(",\"mta_sts\":{\"option\":%s,\"source\":\"%s\",\"mode\":\"%s\",\"id\":",
           r->mta_sts_option ? "true" : "false", src_words[r->sts_src],
           sl_sts_mode_name(r->sts.mode));
    sl_ctl_json_string(r->sts.id);
    printf(",\"max_age\":%ld,\"mx\":[", r->sts.max_age);
    for (size_t i = 0; i < r->sts.nmx; i++) {
        printf(i ? "," : "");
        sl_ctl_json_string(r->sts.mx[i]);
    }
    printf("],\"note\":");
    sl_ctl_json_string(r->note);
    printf("},\"hosts\":[");
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct sl_tls_report_host *h = &r->host[i];
        printf("%s{\"mx\":", i ? "," : "");
        sl_ctl_json_string(h->name);
        printf(",\"need\":\"%s\",\"source\":\"%s\",\"used\":%s,\"tlsa\":%zu,\"why\":",
               sl_tls_need_name(h->need), h->source, h->skip ? "false" : "true", h->ntlsa);
        sl_ctl_json_string(h->why);
        printf("}");
    }
    printf("]}\n");
}

/* sl_ctl_tls - sluicectl tls [--binding B] [--json] DOMAIN */
int sl_ctl_tls(const char *cfgpath, int argc, char **argv)
{
    const char *binding = "default", *arg = NULL;
    bool json = false;
    char domain[256], err[256];
    struct sl_tls_report *r;
    struct sl_config *cfg;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--binding") == 0 && i + 1 < argc)
            binding = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (argv[i][0] != '-' && arg == NULL)
            arg = argv[i];
        else {
            sl_ctl_unexpected("tls", argv[i]);
            return usage();
        }
    }
    if (arg == NULL || *arg == '\0' || strlen(arg) >= sizeof domain)
        return usage();
    sl_ctl_domain_name(arg, domain, sizeof domain); /* a UTF-8 name as its A-label */
    if ((cfg = sl_ctl_load_config(cfgpath)) == NULL)
        return 1;
    if (sl_config_binding(cfg, binding) == NULL) {
        fprintf(stderr, "sluicectl: no binding \"%s\" in %s\n", binding, cfgpath);
        sl_config_free(cfg);
        return 2;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL || sl_tls_explain(cfg, binding, domain, r, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl: %s\n", r == NULL ? "out of memory" : err);
        rc = 2;
    } else if (json) {
        print_json(binding, domain, r);
    } else {
        print_text(binding, domain, r);
    }
    free(r);
    sl_config_free(cfg);
    return rc;
}
