/*
 * ctl_resolve.c - sluicectl resolve: the hosts a worker would try for a domain.
 *
 * Reads the config like the daemon does (dns_server, and for the binding x
 * domain: mx_limit, multihomed_limit, route, smtp_port, and the family of
 * bind_address), resolves with the workers' own code and prints one line per
 * host: "PREF HOST ADDR:PORT...".  Otherwise one line "nullmx: ...",
 * "nohost: ..." (exit 1: the mail would bounce) or "tempfail: ..." (exit 2:
 * it would wait).  Bad usage and a bad config exit 2 and 1 as everywhere.
 * Trust boundary: the operator's arguments and file; DNS via sl_dns.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <bsd/string.h>

#include "config/sl_config.h"
#include "ctl/sl_ctl.h"
#include "dns/sl_dns.h"
#include "util/sl_idna.h"

#define USAGE "resolve [--binding B] [--timeout SECONDS] DOMAIN"

/* usage - the subcommand's synopsis */
static int usage(void)
{
    fprintf(stderr, "usage: sluicectl " USAGE "\n");
    return 2;
}

/* sl_ctl_parse_timeout - "--timeout" seconds (fractions allowed, up to 600) into ms; -1 when
 * bad */
long sl_ctl_parse_timeout(const char *s)
{
    char *end;
    double v = strtod(s, &end);

    if (*end != '\0' || !isfinite(v) || v <= 0 || v > 600)
        return -1;
    return lround(v * 1000) > 0 ? lround(v * 1000) : 1;
}

/* sl_ctl_domain_name - the domain as the daemon keys it: lower case, no final dot, a UTF-8
 * name as its A-label (IDNA2008) */
void sl_ctl_domain_name(const char *in, char *out, size_t len)
{
    size_t n;

    if (sl_idna_ascii(in, strlen(in)) || !sl_idna_alabel(in, strlen(in), out, len))
        strlcpy(out, in, len); /* no valid IDN: as given, the lookup then says so */
    for (char *p = out; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    n = strlen(out);
    if (n > 1 && out[n - 1] == '.')
        out[n - 1] = '\0';
}

/* sl_ctl_domain_arg - a UTF-8 --domain by its A-label, else as given */
const char *sl_ctl_domain_arg(const char *arg)
{
    static char slot[4][SL_IDNA_NAME_MAX];
    static size_t next;
    char *out = slot[next % 4];

    if (sl_idna_ascii(arg, strlen(arg)) || !sl_idna_alabel(arg, strlen(arg), out, sizeof slot[0]))
        return arg; /* no valid IDN: as given, the lookup then finds nothing */
    next++;
    return out;
}

/* family_of - the family a binding's bind_address allows (AF_UNSPEC: any) */
static int family_of(const char *bind_address)
{
    if (bind_address == NULL || *bind_address == '\0')
        return AF_UNSPEC;
    return strchr(bind_address, ':') != NULL ? AF_INET6 : AF_INET;
}

/* print_answer - one line per host, or the failure line; the exit status */
static int print_answer(enum sl_dns_result r, const struct sl_dns_answer *a, const char *err)
{
    char addr[80];

    switch (r) {
    case SL_DNS_OK:
        for (size_t i = 0; i < a->nhosts; i++) {
            printf("%d %s", a->host[i].pref, a->host[i].name);
            for (size_t k = 0; k < a->host[i].naddr; k++) {
                sl_dns_format_addr(&a->host[i].addr[k], addr, sizeof addr, true);
                printf(" %s", addr);
            }
            printf("\n");
        }
        return 0;
    case SL_DNS_NULLMX:
        printf("nullmx: %s\n", err);
        return 1;
    case SL_DNS_NOHOST:
        printf("nohost: %s\n", err);
        return 1;
    case SL_DNS_TEMPFAIL:
    default:
        printf("tempfail: %s\n", err);
        return 2;
    }
}

/* sl_ctl_dns_query - the query a worker of binding makes for domain */
void sl_ctl_dns_query(const struct sl_config *cfg, const char *binding, const char *domain,
                      struct sl_dns_query *q)
{
    struct sl_scope_ref ref = {.binding = binding, .domain = domain};

    *q = (struct sl_dns_query){
        .domain = domain,
        .route = sl_config_str(cfg, SL_OPT_ROUTE, &ref),
        .port = (int)sl_config_num(cfg, SL_OPT_SMTP_PORT, &ref),
        .mx_limit = (int)sl_config_num(cfg, SL_OPT_MX_LIMIT, &ref),
        .multihomed_limit = (int)sl_config_num(cfg, SL_OPT_MULTIHOMED_LIMIT, &ref),
        .family = family_of(sl_config_str(cfg, SL_OPT_BIND_ADDRESS, &ref)),
    };
}

/* resolve - the query the binding x domain would make, made */
static int resolve(const struct sl_config *cfg, const char *binding, const char *domain,
                   long timeout_ms)
{
    struct sl_scope_ref ref = {.binding = binding, .domain = domain};
    struct sl_dns_query q;
    struct sl_dns_answer a;
    struct sl_dns *d;
    char err[512];
    int rc;

    sl_ctl_dns_query(cfg, binding, domain, &q);
    d = sl_dns_open(sl_config_str(cfg, SL_OPT_DNS_SERVER, &ref), (int)timeout_ms, err, sizeof err);
    if (d == NULL) {
        printf("tempfail: %s\n", err);
        return 2;
    }
    rc = print_answer(sl_dns_resolve(d, &q, &a, err, sizeof err), &a, err);
    sl_dns_close(d);
    return rc;
}

/* sl_ctl_resolve - sluicectl resolve [--binding B] [--timeout S] DOMAIN */
int sl_ctl_resolve(const char *cfgpath, int argc, char **argv)
{
    const char *binding = "default", *arg = NULL;
    long timeout_ms = SL_DNS_TIMEOUT_MS;
    char domain[256];
    struct sl_config *cfg;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--binding") == 0 && i + 1 < argc)
            binding = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if ((timeout_ms = sl_ctl_parse_timeout(argv[++i])) < 0) {
                fprintf(stderr, "sluicectl: --timeout takes seconds (up to 600), not %s\n",
                        argv[i]);
                return 2;
            }
        } else if (argv[i][0] != '-' && arg == NULL)
            arg = argv[i];
        else {
            sl_ctl_unexpected("resolve", argv[i]);
            return usage();
        }
    }
    if (arg == NULL || *arg == '\0')
        return usage();
    sl_ctl_domain_name(arg, domain, sizeof domain);
    if ((cfg = sl_ctl_load_config(cfgpath)) == NULL)
        return 1;
    if (sl_config_binding(cfg, binding) == NULL) {
        fprintf(stderr, "sluicectl: no binding \"%s\" in %s\n", binding, cfgpath);
        sl_config_free(cfg);
        return 2;
    }
    rc = resolve(cfg, binding, domain, timeout_ms);
    sl_config_free(cfg);
    return rc;
}
