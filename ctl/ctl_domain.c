/*
 * ctl_domain.c - sluicectl domain [--binding B] [--json] [--timeout S] DOMAIN:
 * one destination domain as the daemon sees it (Momentum's console `domain`).
 *
 * What it shows:
 *   - the MX count and the domain's TTL (the MX records'), each MX host with
 *     its preference, the TTL of its addresses, and the addresses, resolved
 *     as a worker of binding B (default "default") would (route, mx_limit,
 *     multihomed_limit, the family of its bind_address);
 *   - per address, from the delivery log: the last outcome and reply, and the
 *     recipients delivered and failed (deferred or bounced) in the last hour;
 *   - per binding (B alone, or every binding of the config): whether a new
 *     connection may open now, and every counter such a connection takes with
 *     its connections in use and its limit, the MX hosts' own counters (host,
 *     binding x host) included.  With no daemon running, only the limits of
 *     the config are shown (nothing is in use).
 *   - per binding, the shaping in force: a suspension of binding x domain (from
 *     the spool's actions) and every rate throttle that applies, towards the
 *     domain and towards each MX host, with its bucket.
 * Text: a block per part.  JSON: {"domain", "result" ("ok", "nullmx", "nohost",
 *   "tempfail"), "error", "route" (or null), "ttl", "mx": [{"host", "pref",
 *   "ttl", "addresses": [{"address", "last": null or {"time", "outcome",
 *   "reply", "binding"}, "delivered_1h", "failed_1h"}]}], "live": bool,
 *   "bindings": [{"binding", "room": bool, "waits_for": null or str,
 *   "suspended": null or str, "throttles": [{"host": null or str, "throttle"}],
 *   "counters": [{"scope", "key", "in_use", "limit"}], "hosts": [{"host",
 *   "counters": [...]}]}]}  (limit -1: none).
 * Exit 0; 1 for a config that does not load; 2 for bad usage.
 * Trust boundary: DNS answers and log lines come from outside; names and
 * replies are printed escaped in JSON and bounded everywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/sl_config.h"
#include "config/sl_limits.h"
#include "config/sl_throttle.h"
#include "ctl/ctl_recent.h"
#include "ctl/sl_ctl.h"
#include "dns/sl_dns.h"
#include "shm/sl_shm.h"

#define USAGE "domain [--binding B] [--json] [--timeout SECONDS] DOMAIN"

/* Everything one run gathers. */
struct view {
    const struct sl_config *cfg;
    const char *domain, *binding; /* binding: NULL for every binding */
    const char *route;
    enum sl_dns_result res;
    char err[512];
    struct sl_dns_answer a;
    struct sl_shm shm;
    bool live;
    struct ctl_recent *recent;
    size_t nrecent;
    bool json;
};

/* One counter as shown. */
struct shown {
    enum sl_scope_kind kind;
    const char *name, *name2;
    uint32_t in_use;
    int32_t limit;
};

/* usage - the subcommand's synopsis */
static int usage(void)
{
    fprintf(stderr, "usage: sluicectl " USAGE "\n");
    return 2;
}

/* in_use - the live count of a counter (0 when it does not exist or no daemon runs) */
static uint32_t in_use(const struct view *v, enum sl_scope_kind kind, const char *name,
                       const char *name2)
{
    struct sl_counter_view c;
    uint32_t slot;

    if (!v->live || sl_shm_find(&v->shm, kind, name, name2, &slot) != SL_SHM_OK ||
        sl_shm_view(&v->shm, slot, &c) < 0)
        return 0;
    return c.in_use;
}

/* recent_of - the log's word on one address, NULL when it says nothing */
static const struct ctl_recent *recent_of(const struct view *v, const char *ip)
{
    for (size_t i = 0; i < v->nrecent; i++)
        if (strcmp(v->recent[i].ip, ip) == 0)
            return &v->recent[i];
    return NULL;
}

/* bare_ip - an address without its port, as the delivery log writes it */
static void bare_ip(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    sl_dns_format_addr(ss, buf, len, false);
    if (buf[0] == '[') { /* "[v6]" -> "v6" */
        size_t n = strlen(buf);
        memmove(buf, buf + 1, n);
        if (n >= 2)
            buf[n - 2] = '\0';
    }
}

/* limit_text - a limit for people: "-" for none */
static const char *limit_text(int32_t limit, char *buf, size_t len)
{
    if (limit < 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%d", limit);
    return buf;
}

/* key_text - a counter's key as one string */
static void key_text(const struct shown *c, char *buf, size_t len)
{
    if (c->name == NULL || c->name[0] == '\0')
        snprintf(buf, len, "*");
    else if (c->name2 != NULL && c->name2[0] != '\0')
        snprintf(buf, len, "%s %s", c->name, c->name2);
    else
        snprintf(buf, len, "%s", c->name);
}

/* dest_counters - the counters a connection of binding to the domain takes before its MX is
 * known, into out (at most SL_RESV_MAX); whether one more may open now, and what it waits for */
static size_t dest_counters(const struct view *v, const char *binding,
                            struct sl_limits_cache *cache, struct shown *out, bool *room,
                            struct sl_refusal *why)
{
    size_t n = 0;

    memset(cache, 0, sizeof *cache);
    if (!v->live) { /* the config's word alone */
        out[n++] =
            (struct shown){SL_SCOPE_BINDING_DOMAIN, binding, v->domain, 0,
                           sl_limits_for_key(v->cfg, SL_SCOPE_BINDING_DOMAIN, binding, v->domain)};
        out[n++] = (struct shown){SL_SCOPE_SERVER, "", NULL, 0,
                                  sl_limits_for_key(v->cfg, SL_SCOPE_SERVER, "", NULL)};
        *room = true;
        return n;
    }
    *room = sl_limits_dest_room_cached(v->cfg, &v->shm, cache, binding, v->domain, NULL, why);
    for (uint32_t i = 0; i < cache->n && n < SL_RESV_MAX; i++) {
        const struct sl_limits_counter *e = &cache->c[i];
        out[n++] =
            (struct shown){(enum sl_scope_kind)e->kind, e->name, e->name2,
                           in_use(v, (enum sl_scope_kind)e->kind, e->name, e->name2), e->limit};
    }
    return n;
}

/* host_counters - the MX host's own counters for binding: host, then binding x host */
static void host_counters(const struct view *v, const char *binding, const char *host,
                          struct shown out[2])
{
    out[0] = (struct shown){SL_SCOPE_HOST, host, NULL, in_use(v, SL_SCOPE_HOST, host, NULL),
                            sl_limits_for_key(v->cfg, SL_SCOPE_HOST, host, NULL)};
    out[1] = (struct shown){SL_SCOPE_BINDING_HOST, binding, host,
                            in_use(v, SL_SCOPE_BINDING_HOST, binding, host),
                            sl_limits_for_key(v->cfg, SL_SCOPE_BINDING_HOST, binding, host)};
}

/* ---- text ---- */

/* text_dns - the MX block */
static void text_dns(const struct view *v)
{
    char addr[80], ip[80];

    if (v->res != SL_DNS_OK) {
        printf("Domain '%s': %s: %s\n", v->domain,
               v->res == SL_DNS_NULLMX   ? "null MX"
               : v->res == SL_DNS_NOHOST ? "no host"
                                         : "temporary failure",
               v->err);
        return;
    }
    if (v->route != NULL)
        printf("Domain '%s' is routed to %s (route): no MX lookup\n", v->domain, v->route);
    else if (v->a.mx_ttl == 0)
        printf("Domain '%s' has no MX: its own address, TTL %u seconds\n", v->domain,
               v->a.host[0].ttl);
    else
        printf("Domain '%s' has %zu MXs and a TTL of %u seconds\n", v->domain, v->a.nhosts,
               v->a.mx_ttl);
    for (size_t i = 0; i < v->a.nhosts; i++) {
        const struct sl_dns_host *h = &v->a.host[i];
        printf("  [%d %s TTL:%u]\n", h->pref, h->name, h->ttl);
        for (size_t k = 0; k < h->naddr; k++) {
            const struct ctl_recent *r;
            sl_dns_format_addr(&h->addr[k], addr, sizeof addr, true);
            bare_ip(&h->addr[k], ip, sizeof ip);
            printf("    %s", addr);
            if ((r = recent_of(v, ip)) == NULL) {
                printf("  (nothing in the delivery log)\n");
                continue;
            }
            printf("  last %s %s (binding %s): %s\n", r->outcome, r->time, r->binding, r->reply);
            printf("      last hour: %u delivered, %u failed\n", r->delivered, r->failed);
        }
    }
}

/* text_counter - one counter line */
static void text_counter(const struct shown *c, const char *indent)
{
    char key[600], lim[16];

    key_text(c, key, sizeof key);
    printf("%s%-15s %-40s in use %u, limit %s\n", indent, sl_scope_kind_name(c->kind), key,
           c->in_use, limit_text(c->limit, lim, sizeof lim));
}

/* ---- Shaping in force: suspensions (spool_dir/actions) and throttles (the config) ---- */

/* throttle_text - "outbound_throttle_KIND = RATE (bucket KEY)" for binding towards the
 * domain (host NULL) or one of its MX hosts; false when no throttle applies */
static bool throttle_text(const struct view *v, const char *binding, enum sl_throttle_kind kind,
                          const char *host, char *buf, size_t len)
{
    struct sl_throttle t;
    char rate[32];

    if (!sl_throttle_resolve(v->cfg, kind, binding, v->domain, host, &t))
        return false;
    sl_rate_format((int64_t)t.rate.n << 32 | t.rate.period_ms, rate, sizeof rate);
    snprintf(buf, len, "%s = %s (bucket %s)", sl_opt_name(sl_throttle_opt(kind)), rate, t.key);
    return true;
}

/* text_shaping - the binding's suspension and throttles, one line each (none: no line) */
static void text_shaping(const struct view *v, const char *binding)
{
    static const enum sl_throttle_kind kinds[] = {SL_THROTTLE_CONNECTIONS, SL_THROTTLE_MESSAGES};
    char line[800];

    if (sl_ctl_suspension(v->cfg, binding, v->domain, line, sizeof line, NULL))
        printf("  %s\n", line);
    for (size_t k = 0; k < 2; k++) {
        if (throttle_text(v, binding, kinds[k], NULL, line, sizeof line))
            printf("  throttle %s\n", line);
        for (size_t i = 0; v->res == SL_DNS_OK && i < v->a.nhosts; i++)
            if (throttle_text(v, binding, kinds[k], v->a.host[i].name, line, sizeof line))
                printf("  throttle towards %s: %s\n", v->a.host[i].name, line);
    }
}

/* json_shaping - ,"suspended":TEXT|null,"throttles":[...] of the binding */
static void json_shaping(const struct view *v, const char *binding)
{
    static const enum sl_throttle_kind kinds[] = {SL_THROTTLE_CONNECTIONS, SL_THROTTLE_MESSAGES};
    char line[800];
    bool first = true;

    printf(",\"suspended\":");
    if (sl_ctl_suspension(v->cfg, binding, v->domain, line, sizeof line, NULL))
        sl_ctl_json_string(line);
    else
        printf("null");
    printf(",\"throttles\":[");
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i <= (v->res == SL_DNS_OK ? v->a.nhosts : 0); i++) {
            const char *host = i == 0 ? NULL : v->a.host[i - 1].name;
            if (!throttle_text(v, binding, kinds[k], host, line, sizeof line))
                continue;
            printf("%s{\"host\":", first ? "" : ",");
            if (host != NULL)
                sl_ctl_json_string(host);
            else
                printf("null");
            printf(",\"throttle\":");
            sl_ctl_json_string(line);
            putchar('}');
            first = false;
        }
    putchar(']');
}

/* text_binding - one binding's block */
static void text_binding(const struct view *v, const char *binding)
{
    struct sl_limits_cache cache;
    struct shown c[SL_RESV_MAX], hc[2];
    struct sl_refusal why = {0};
    bool room;
    size_t n = dest_counters(v, binding, &cache, c, &room, &why);

    if (!v->live)
        printf("binding %s: limits from the config (no daemon running: nothing in use)\n", binding);
    else if (room)
        printf("binding %s: a new connection may open now\n", binding);
    else
        printf("binding %s: a new connection waits for %s (%u in use, limit %d)\n", binding,
               sl_scope_kind_name(why.kind), why.in_use, why.limit);
    text_shaping(v, binding);
    for (size_t i = 0; i < n; i++)
        text_counter(&c[i], "  ");
    for (size_t i = 0; v->res == SL_DNS_OK && i < v->a.nhosts; i++) {
        host_counters(v, binding, v->a.host[i].name, hc);
        printf("  %s:\n", v->a.host[i].name);
        text_counter(&hc[0], "    ");
        text_counter(&hc[1], "    ");
    }
}

/* ---- JSON ---- */

/* json_counters - a "counters" array */
static void json_counters(const struct shown *c, size_t n)
{
    char key[600];

    printf("\"counters\":[");
    for (size_t i = 0; i < n; i++) {
        key_text(&c[i], key, sizeof key);
        printf("%s{\"scope\":\"%s\",\"key\":", i ? "," : "", sl_scope_kind_name(c[i].kind));
        sl_ctl_json_string(key);
        printf(",\"in_use\":%u,\"limit\":%d}", c[i].in_use, c[i].limit);
    }
    printf("]");
}

/* json_address - one element of "addresses" */
static void json_address(const struct view *v, const struct sockaddr_storage *ss, bool first)
{
    char addr[80], ip[80];
    const struct ctl_recent *r;

    sl_dns_format_addr(ss, addr, sizeof addr, true);
    bare_ip(ss, ip, sizeof ip);
    r = recent_of(v, ip);
    printf("%s{\"address\":", first ? "" : ",");
    sl_ctl_json_string(addr);
    if (r == NULL) {
        printf(",\"last\":null,\"delivered_1h\":0,\"failed_1h\":0}");
        return;
    }
    printf(",\"last\":{\"time\":");
    sl_ctl_json_string(r->time);
    printf(",\"outcome\":");
    sl_ctl_json_string(r->outcome);
    printf(",\"reply\":");
    sl_ctl_json_string(r->reply);
    printf(",\"binding\":");
    sl_ctl_json_string(r->binding);
    printf("},\"delivered_1h\":%u,\"failed_1h\":%u}", r->delivered, r->failed);
}

/* json_dns - "result" to "mx" */
static void json_dns(const struct view *v)
{
    static const char *const words[] = {"ok", "nullmx", "nohost", "tempfail"};

    printf("{\"domain\":");
    sl_ctl_json_string(v->domain);
    printf(",\"result\":\"%s\",\"error\":", words[v->res]);
    sl_ctl_json_string(v->err);
    printf(",\"route\":");
    if (v->route != NULL)
        sl_ctl_json_string(v->route);
    else
        printf("null");
    printf(",\"ttl\":%u,\"mx\":[", v->a.mx_ttl);
    for (size_t i = 0; v->res == SL_DNS_OK && i < v->a.nhosts; i++) {
        const struct sl_dns_host *h = &v->a.host[i];
        printf("%s{\"host\":", i ? "," : "");
        sl_ctl_json_string(h->name);
        printf(",\"pref\":%d,\"ttl\":%u,\"addresses\":[", h->pref, h->ttl);
        for (size_t k = 0; k < h->naddr; k++)
            json_address(v, &h->addr[k], k == 0);
        printf("]}");
    }
    printf("]");
}

/* json_binding - one element of "bindings" */
static void json_binding(const struct view *v, const char *binding, bool first)
{
    struct sl_limits_cache cache;
    struct shown c[SL_RESV_MAX], hc[2];
    struct sl_refusal why = {0};
    bool room;
    size_t n = dest_counters(v, binding, &cache, c, &room, &why);

    printf("%s{\"binding\":", first ? "" : ",");
    sl_ctl_json_string(binding);
    printf(",\"room\":%s,\"waits_for\":", room ? "true" : "false");
    if (room)
        printf("null");
    else
        printf("\"%s\"", sl_scope_kind_name(why.kind));
    json_shaping(v, binding);
    putchar(',');
    json_counters(c, n);
    printf(",\"hosts\":[");
    for (size_t i = 0; v->res == SL_DNS_OK && i < v->a.nhosts; i++) {
        host_counters(v, binding, v->a.host[i].name, hc);
        printf("%s{\"host\":", i ? "," : "");
        sl_ctl_json_string(v->a.host[i].name);
        putchar(',');
        json_counters(hc, 2);
        putchar('}');
    }
    printf("]}");
}

/* show - every part, as text or JSON */
static void show(const struct view *v)
{
    bool first = true;

    if (v->json) {
        json_dns(v);
        printf(",\"live\":%s,\"bindings\":[", v->live ? "true" : "false");
    } else {
        text_dns(v);
    }
    for (size_t i = 0; i < v->cfg->nbindings; i++) {
        const char *b = v->cfg->bindings[i].name;
        if (v->binding != NULL && strcmp(b, v->binding) != 0)
            continue;
        if (v->json)
            json_binding(v, b, first);
        else
            text_binding(v, b);
        first = false;
    }
    if (v->json)
        printf("]}\n");
}

/* gather - resolve, attach to the live table, read the log */
static void gather(struct view *v, long timeout_ms)
{
    const char *b = v->binding != NULL ? v->binding : "default";
    struct sl_scope_ref ref = {.binding = b, .domain = v->domain}, none = {0};
    struct sl_dns_query q;
    struct sl_dns *d;
    char err[256];

    sl_ctl_dns_query(v->cfg, b, v->domain, &q);
    v->route = q.route;
    d = sl_dns_open(sl_config_str(v->cfg, SL_OPT_DNS_SERVER, &ref), (int)timeout_ms, v->err,
                    sizeof v->err);
    v->res = d == NULL ? SL_DNS_TEMPFAIL : sl_dns_resolve(d, &q, &v->a, v->err, sizeof v->err);
    sl_dns_close(d);
    v->live = sl_shm_attach(sl_config_str(v->cfg, SL_OPT_SHM_NAME, &none), true, 0, &v->shm, err,
                            sizeof err) == 0;
    if (v->live && sl_shm_stale(&v->shm)) {
        sl_shm_detach(&v->shm);
        v->live = false;
    }
    v->recent = ctl_recent_read(sl_config_str(v->cfg, SL_OPT_DELIVERY_LOG, &none), v->domain,
                                (int64_t)time(NULL), &v->nrecent);
}

/* sl_ctl_domain - sluicectl domain [--binding B] [--json] [--timeout S] DOMAIN */
int sl_ctl_domain(const char *cfgpath, int argc, char **argv)
{
    struct view v = {.res = SL_DNS_TEMPFAIL};
    const char *arg = NULL;
    long timeout_ms = SL_DNS_TIMEOUT_MS;
    char domain[256];
    struct sl_config *cfg;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--binding") == 0 && i + 1 < argc)
            v.binding = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            v.json = true;
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if ((timeout_ms = sl_ctl_parse_timeout(argv[++i])) < 0)
                return usage();
        } else if (argv[i][0] != '-' && arg == NULL)
            arg = argv[i];
        else {
            sl_ctl_unexpected("domain", argv[i]);
            return usage();
        }
    }
    if (arg == NULL || *arg == '\0')
        return usage();
    sl_ctl_domain_name(arg, domain, sizeof domain);
    if ((cfg = sl_ctl_load_config(cfgpath)) == NULL)
        return 1;
    if (v.binding != NULL && sl_config_binding(cfg, v.binding) == NULL) {
        fprintf(stderr, "sluicectl: no binding \"%s\" in %s\n", v.binding, cfgpath);
        sl_config_free(cfg);
        return 2;
    }
    v.cfg = cfg;
    v.domain = domain;
    gather(&v, timeout_ms);
    show(&v);
    if (v.live)
        sl_shm_detach(&v.shm);
    free(v.recent);
    sl_config_free(cfg);
    return 0;
}
