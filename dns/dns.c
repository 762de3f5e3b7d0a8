/*
 * dns.c - where mail for a domain goes (see sl_dns.h): the resolver, and the
 * walk MX -> hosts -> addresses.
 *
 * One sl_dns per worker, used by one thread; sl_dns_resolve is called once
 * per connection, so it allocates little (one MX array, ldns packets) and
 * frees all of it before it returns.  One call is bounded by timeout_ms in
 * all: every question gets only what is left of that time.
 *
 * Policy, in one place:
 *   - MX hosts: preference ascending, ties shuffled, then cut to mx_limit;
 *     a host without an address is dropped (not replaced by the next one).
 *   - addresses of a host: IPv4 first, then IPv6 (only the binding's family
 *     when it has one), at most multihomed_limit; from the MX answer's
 *     additional section when it has them, else asked.
 *   - null MX ("." alone): SL_DNS_NULLMX; "." next to real hosts is ignored.
 *   - a route or an address-literal domain replaces the MX lookup.  A route
 *     that names nothing reachable is the operator's to fix: the mail waits
 *     (SL_DNS_TEMPFAIL) rather than bounce.  So does a domain whose hosts have
 *     addresses, but none of the binding's family (an IPv4 binding, an
 *     IPv6-only MX): the binding is the operator's choice, not the domain's
 *     fault (no_host).
 * Trust boundary: DNS replies (checked in dns_query.c), the operator's
 * dns_server and route, the recipient's domain.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>
#include <sodium.h>

#include "dns_impl.h"
#include "util/sl_clock.h"
#include "util/sl_msg.h"

#define EDNS_UDP_SIZE 1232 /* big enough for MX sets with addresses, no fragments */
#define SPARE_HOSTS   4    /* MX records looked at beyond mx_limit, for hosts without an address */

/* configure - the resolver settings every sl_dns shares */
static void configure(ldns_resolver *res)
{
    ldns_resolver_set_recursive(res, true);
    ldns_resolver_set_defnames(res, false); /* names are always absolute */
    ldns_resolver_set_dnsrch(res, false);
    ldns_resolver_set_random(res, false);  /* servers in the order given */
    ldns_resolver_set_fallback(res, true); /* a truncated reply is asked again over TCP */
    ldns_resolver_set_retrans(res, 0);     /* no sleep between tries: the deadline rules */
    ldns_resolver_set_fail(res, false);
    ldns_resolver_set_dnssec(res, false);
    ldns_resolver_set_edns_udp_size(res, EDNS_UDP_SIZE);
}

/* open_server - a resolver asking the one server "IP[:port]" */
static ldns_resolver *open_server(const char *server, char *label, size_t labellen, char *err,
                                  size_t errlen)
{
    char host[64];
    int port;
    struct sockaddr_storage ss;
    socklen_t len;
    ldns_rdf *ns;
    ldns_resolver *res;

    if (!sl_dns_split_hostport(server, host, sizeof host, &port) ||
        (len = sl_dns_literal(host, port ? port : 53, &ss)) == 0) {
        snprintf(err, errlen, "dns_server %s is not IP[:port]", server);
        return NULL;
    }
    ns = ldns_rdf_new_frm_str(ss.ss_family == AF_INET ? LDNS_RDF_TYPE_A : LDNS_RDF_TYPE_AAAA, host);
    res = ldns_resolver_new();
    if (ns == NULL || res == NULL || ldns_resolver_push_nameserver(res, ns) != LDNS_STATUS_OK) {
        snprintf(err, errlen, "cannot set up a resolver for %s", server);
        ldns_rdf_deep_free(ns);
        if (res != NULL)
            ldns_resolver_deep_free(res);
        return NULL;
    }
    ldns_rdf_deep_free(ns); /* the resolver keeps its own copy */
    ldns_resolver_set_port(res, (uint16_t)(port ? port : 53));
    sl_dns_format_addr(&ss, label, labellen, true);
    return res;
}

/* open_system - a resolver asking the servers of /etc/resolv.conf */
static ldns_resolver *open_system(char *label, size_t labellen, char *err, size_t errlen)
{
    ldns_resolver *res = NULL;
    ldns_status st = ldns_resolver_new_frm_file(&res, NULL);
    char *first;

    if (st != LDNS_STATUS_OK || ldns_resolver_nameserver_count(res) == 0) {
        snprintf(err, errlen, "no DNS server in /etc/resolv.conf: %s",
                 st != LDNS_STATUS_OK ? ldns_get_errorstr_by_id(st) : "none listed");
        if (res != NULL)
            ldns_resolver_deep_free(res);
        return NULL;
    }
    first = ldns_rdf2str(ldns_resolver_nameservers(res)[0]);
    snprintf(label, labellen, "%s (resolv.conf)", first != NULL ? first : "?");
    free(first);
    return res;
}

/* is_loopback - is this server address (an A or AAAA rdf) 127.0.0.0/8 or ::1? */
static bool is_loopback(const ldns_rdf *ns)
{
    static const uint8_t v6_loopback[16] = {[15] = 1};
    const uint8_t *b = ldns_rdf_data(ns);

    if (ldns_rdf_get_type(ns) == LDNS_RDF_TYPE_A && ldns_rdf_size(ns) == 4)
        return b[0] == 127;
    return ldns_rdf_get_type(ns) == LDNS_RDF_TYPE_AAAA && ldns_rdf_size(ns) == 16 &&
           memcmp(b, v6_loopback, 16) == 0;
}

/* all_loopback - does the resolver ask only servers on this machine?  Only
 * then can the AD bit of its replies be believed (nothing on a network path
 * protects it) */
static bool all_loopback(ldns_resolver *res)
{
    size_t n = ldns_resolver_nameserver_count(res);

    for (size_t i = 0; i < n; i++)
        if (!is_loopback(ldns_resolver_nameservers(res)[i]))
            return false;
    return n > 0;
}

/* sl_dns_open - a resolver for this worker */
struct sl_dns *sl_dns_open(const char *server, int timeout_ms, char *err, size_t errlen)
{
    struct sl_dns *d;
    ldns_resolver *res;
    char label[sizeof d->label];

    if (sodium_init() < 0) { /* randombytes_uniform orders equal MX preferences */
        snprintf(err, errlen, "libsodium cannot start");
        return NULL;
    }
    if (server != NULL && *server != '\0')
        res = open_server(server, label, sizeof label, err, errlen);
    else
        res = open_system(label, sizeof label, err, errlen);
    if (res == NULL)
        return NULL;
    configure(res);
    d = sl_calloc(1, sizeof *d);
    d->res = res;
    d->timeout_ms = timeout_ms > 0 ? timeout_ms : SL_DNS_TIMEOUT_MS;
    d->ad_trusted = all_loopback(res);
    strlcpy(d->label, label, sizeof d->label);
    return d;
}

/* sl_dns_close - free the resolver; NULL is fine */
void sl_dns_close(struct sl_dns *d)
{
    if (d == NULL)
        return;
    ldns_resolver_deep_free(d->res);
    free(d);
}

/* What one sl_dns_resolve call works with. */
struct walk {
    struct sl_dns *d;
    const struct sl_dns_query *q;
    struct timespec deadline;
    size_t max_hosts, max_addrs;
    char temp_err[256]; /* the last temporary failure, for the final message */
    char last_err[256]; /* the last failure of any kind */
    bool other_family;  /* a host had addresses of the family the binding lacks only */
    bool other_unknown; /* or that could not be asked now (other_err says why) */
    char other_err[256];
};

/* family_word - " IPv4" / " IPv6" / "" for messages about a filtered family */
static const char *family_word(int family)
{
    return family == AF_INET ? " IPv4" : family == AF_INET6 ? " IPv6" : "";
}

/* add_literal - a host that is an IP literal: its one address, if of our family */
static enum dns_lookup add_literal(struct walk *w, struct sl_dns_host *h, int port)
{
    struct sockaddr_storage ss;
    socklen_t len = sl_dns_literal(h->name, port, &ss);

    if (len == 0)
        return DNS_NXDOMAIN;
    h->literal = true;
    if (w->q->family == AF_UNSPEC || w->q->family == ss.ss_family)
        sl_dns_add_addr(h, &ss, len, w->max_addrs);
    else
        w->other_family = true;
    return h->naddr > 0 ? DNS_FOUND : DNS_NODATA;
}

/* ask_other_family - whether h->name has an address of the family the binding filtered out:
 * asked only once the binding's own family gave none, to tell "no address" (a bounce) from
 * "none we can reach from this binding" (the mail waits) */
static void ask_other_family(struct walk *w, const struct sl_dns_host *h)
{
    ldns_rr_type other = w->q->family == AF_INET ? LDNS_RR_TYPE_AAAA : LDNS_RR_TYPE_A;
    struct sl_dns_host seen = {0};
    ldns_pkt *pkt = NULL;
    char err[256];

    enum dns_lookup r = sl_dns_ask(w->d, h->name, other, w->deadline, &pkt, err, sizeof err);

    if (r == DNS_FOUND) {
        sl_dns_take_addrs(ldns_pkt_answer(pkt), NULL, other, 25, &seen, 1);
        w->other_family = seen.naddr > 0;
    } else if (r == DNS_TEMP && !w->other_unknown) {
        w->other_unknown = true;
        strlcpy(w->other_err, err, sizeof w->other_err);
    }
    ldns_pkt_free(pkt);
}

/* ask_addrs - A then AAAA of h->name (the family's only), within max_addrs */
static enum dns_lookup ask_addrs(struct walk *w, struct sl_dns_host *h, int port)
{
    static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA};
    static const int families[] = {AF_INET, AF_INET6};
    bool temp = false, nx = false;

    for (size_t i = 0; i < 2 && h->naddr < w->max_addrs && !nx; i++) {
        ldns_pkt *pkt = NULL;
        enum dns_lookup r;

        if (w->q->family != AF_UNSPEC && w->q->family != families[i])
            continue;
        r = sl_dns_ask(w->d, h->name, types[i], w->deadline, &pkt, w->last_err, sizeof w->last_err);
        if (r == DNS_TEMP)
            strlcpy(w->temp_err, w->last_err, sizeof w->temp_err);
        if (r == DNS_FOUND) {
            sl_dns_take_addrs(ldns_pkt_answer(pkt), NULL, types[i], port, h, w->max_addrs);
            h->ttl = sl_dns_cname_ttl(ldns_pkt_answer(pkt), h->ttl); /* an alias moves too */
        }
        ldns_pkt_free(pkt);
        temp = temp || r == DNS_TEMP;
        nx = r == DNS_NXDOMAIN; /* no such name: its AAAA need not be asked */
    }
    if (h->naddr > 0)
        return DNS_FOUND;
    if (!temp && !nx && w->q->family != AF_UNSPEC && !w->other_family)
        ask_other_family(w, h);
    return temp ? DNS_TEMP : nx ? DNS_NXDOMAIN : DNS_NODATA;
}

/* host_addrs - fill h's addresses: a literal, the MX answer's additional
 * section (mxpkt, may be NULL), or questions of our own */
static enum dns_lookup host_addrs(struct walk *w, struct sl_dns_host *h, const ldns_pkt *mxpkt,
                                  int port)
{
    enum dns_lookup r = add_literal(w, h, port);

    if (r != DNS_NXDOMAIN) /* it was a literal */
        return r;
    if (mxpkt != NULL) {
        if (w->q->family != AF_INET6)
            sl_dns_take_addrs(ldns_pkt_additional(mxpkt), h->name, LDNS_RR_TYPE_A, port, h,
                              w->max_addrs);
        if (w->q->family != AF_INET)
            sl_dns_take_addrs(ldns_pkt_additional(mxpkt), h->name, LDNS_RR_TYPE_AAAA, port, h,
                              w->max_addrs);
        if (h->naddr > 0)
            return DNS_FOUND;
    }
    return ask_addrs(w, h, port);
}

/* one_host - the answer is a single host (route, literal domain, no MX) */
static enum dns_lookup one_host(struct walk *w, struct sl_dns_answer *a, const char *name, int port)
{
    struct sl_dns_host *h = &a->host[0];
    enum dns_lookup r;

    strlcpy(h->name, name, sizeof h->name);
    h->pref = 0;
    r = host_addrs(w, h, NULL, port);
    if (r == DNS_FOUND)
        a->nhosts = 1;
    else
        memset(h, 0, sizeof *h);
    return r;
}

/* resolve_route - the domain's route (host[:port]) instead of its MX */
static enum sl_dns_result resolve_route(struct walk *w, struct sl_dns_answer *a, char *err,
                                        size_t errlen)
{
    char host[256];
    int port;

    if (!sl_dns_split_hostport(w->q->route, host, sizeof host, &port)) {
        snprintf(err, errlen, "route %s for %s is not host[:port]", w->q->route, w->q->domain);
        return SL_DNS_TEMPFAIL;
    }
    for (char *p = host; *p != '\0'; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    if (host[0] != '\0' && host[0] != '[' && host[strlen(host) - 1] == '.')
        host[strlen(host) - 1] = '\0'; /* "relay.example." is a name the config takes */
    if (one_host(w, a, host, port ? port : w->q->port) == DNS_FOUND)
        return SL_DNS_OK;
    snprintf(err, errlen, "route %s for %s has no usable%s address%s%s", w->q->route, w->q->domain,
             family_word(w->q->family), w->last_err[0] ? ": " : "", w->last_err);
    return SL_DNS_TEMPFAIL;
}

/* no_host - SL_DNS_NOHOST, err said why; or, when a host had addresses of the family the
 * binding lacks only, SL_DNS_TEMPFAIL with that added: the mail waits for the operator (a
 * binding of the other family, or a dual-stack one) rather than bounce.  So it does, for now,
 * when whether a host has such addresses could not be asked (a timeout, a SERVFAIL). */
static enum sl_dns_result no_host(const struct walk *w, char *err, size_t errlen)
{
    size_t n = strlen(err);
    const char *other = family_word(w->q->family == AF_INET ? AF_INET6 : AF_INET);

    if (!w->other_family && !w->other_unknown)
        return SL_DNS_NOHOST;
    if (n < errlen && w->other_family)
        snprintf(err + n, errlen - n, " (it has%s ones, which this%s binding cannot reach)", other,
                 family_word(w->q->family));
    else if (n < errlen)
        snprintf(err + n, errlen - n, " (whether it has%s ones is not known now: %s)", other,
                 w->other_err);
    return SL_DNS_TEMPFAIL;
}

/* resolve_literal - a domain written as an address literal: [IP] or [IPv6:IP] */
static enum sl_dns_result resolve_literal(struct walk *w, struct sl_dns_answer *a, char *err,
                                          size_t errlen)
{
    char ip[64];
    const char *s = w->q->domain + 1;
    size_t n;

    if (strncasecmp(s, "ipv6:", 5) == 0)
        s += 5;
    n = strcspn(s, "]");
    if (n > 0 && n < sizeof ip && strcmp(s + n, "]") == 0) {
        memcpy(ip, s, n);
        ip[n] = '\0';
        if (one_host(w, a, ip, w->q->port) == DNS_FOUND)
            return SL_DNS_OK;
    }
    snprintf(err, errlen, "%s is no%s address literal we can reach", w->q->domain,
             family_word(w->q->family));
    return no_host(w, err, errlen);
}

/* resolve_no_mx - NOERROR without MX: the domain itself is the host (RFC 5321 5.1) */
static enum sl_dns_result resolve_no_mx(struct walk *w, struct sl_dns_answer *a, char *err,
                                        size_t errlen)
{
    enum dns_lookup r = one_host(w, a, w->q->domain, w->q->port);

    if (r == DNS_FOUND)
        return SL_DNS_OK;
    if (r == DNS_TEMP) {
        strlcpy(err, w->temp_err, errlen);
        return SL_DNS_TEMPFAIL;
    }
    snprintf(err, errlen, "no MX and no%s address for %s", family_word(w->q->family), w->q->domain);
    return no_host(w, err, errlen);
}

/* sl_dns_read_mx - the MX records of the answer (every owner: the server may have
 * followed a CNAME); *nulls counts the "." exchanges.  Caller frees. */
struct dns_mx *sl_dns_read_mx(const ldns_pkt *pkt, size_t *n, size_t *nulls, unsigned *ttl)
{
    const ldns_rr_list *an = ldns_pkt_answer(pkt);
    struct dns_mx *mx = sl_calloc(ldns_rr_list_rr_count(an) + 1, sizeof *mx);

    *n = *nulls = 0;
    *ttl = UINT32_MAX;
    for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(an, i);
        const ldns_rdf *ex = ldns_rr_mx_exchange(rr), *pref = ldns_rr_mx_preference(rr);

        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_MX || ex == NULL || pref == NULL)
            continue;
        if (ldns_rdf_size(ex) == 1) { /* the root name: "." */
            (*nulls)++;
            continue;
        }
        if (!sl_dns_rdf_name(ex, mx[*n].name, sizeof mx[*n].name)) {
            sl_msg_debug("dns: an MX exchange that names no host is ignored");
            continue;
        }
        mx[*n].pref = ldns_rdf2native_int16(pref);
        if (ldns_rr_ttl(rr) < *ttl)
            *ttl = ldns_rr_ttl(rr);
        (*n)++;
    }
    return mx;
}

/* resolve_hosts - the ordered MX hosts, each with its addresses */
static enum sl_dns_result resolve_hosts(struct walk *w, const ldns_pkt *pkt,
                                        struct sl_dns_answer *a, char *err, size_t errlen)
{
    size_t n, nulls;
    unsigned ttl;
    struct dns_mx *mx = sl_dns_read_mx(pkt, &n, &nulls, &ttl);
    bool temp = false;

    if (n == 0) {
        free(mx);
        if (nulls > 0) {
            snprintf(err, errlen, "%s accepts no mail (null MX)", w->q->domain);
            return SL_DNS_NULLMX;
        }
        snprintf(err, errlen, "the MX records of %s name no host", w->q->domain);
        return SL_DNS_NOHOST;
    }
    n = sl_dns_order_mx(mx, n);
    a->mx_ttl = ttl;
    ttl = sl_dns_cname_ttl(ldns_pkt_answer(pkt), ttl); /* the domain an alias */
    /* mx_limit bounds the hosts kept, not the records looked at: a host without an address
     * (a stale MX record) leaves its place to the next one, or the mail of a domain whose
     * best MX is gone would bounce while a good one sat below the limit.  SPARE_HOSTS more
     * records at most, so that a long list of dead hosts does not spend the query's time. */
    for (size_t i = 0; i < n && a->nhosts < w->max_hosts && i < w->max_hosts + SPARE_HOSTS; i++) {
        struct sl_dns_host *h = &a->host[a->nhosts];
        enum dns_lookup r;

        memcpy(h->name, mx[i].name, sizeof h->name);
        h->pref = mx[i].pref;
        r = host_addrs(w, h, pkt, w->q->port);
        if (r == DNS_FOUND) {
            a->nhosts++;
            if (!h->literal && h->ttl < ttl)
                ttl = h->ttl;
        } else
            memset(h, 0, sizeof *h);
        temp = temp || r == DNS_TEMP;
    }
    free(mx);
    if (a->nhosts > 0) {
        /* kept while its MX records and every address in it are; not kept when it misses
         * a host for now */
        a->ttl = temp ? 0 : ttl;
        return SL_DNS_OK;
    }
    if (temp) {
        snprintf(err, errlen, "no MX host of %s has an address now: %s", w->q->domain, w->temp_err);
        return SL_DNS_TEMPFAIL;
    }
    snprintf(err, errlen, "no MX host of %s has an%s address", w->q->domain,
             family_word(w->q->family));
    return no_host(w, err, errlen);
}

/* clamp - n within [1, max] */
static size_t clamp(int n, size_t max)
{
    return n < 1 ? 1 : (size_t)n > max ? max : (size_t)n;
}

/* sl_dns_resolve - the hosts to try for q, in order */
enum sl_dns_result sl_dns_resolve(struct sl_dns *d, const struct sl_dns_query *q,
                                  struct sl_dns_answer *a, char *err, size_t errlen)
{
    struct walk w = {.d = d, .q = q, .deadline = sl_clock_after_ms(d->timeout_ms)};
    enum sl_dns_result res;
    enum dns_lookup r;
    ldns_pkt *pkt = NULL;

    memset(a, 0, sizeof *a);
    if (errlen > 0)
        err[0] = '\0';
    w.max_hosts = clamp(q->mx_limit, SL_DNS_HOSTS_MAX);
    w.max_addrs = clamp(q->multihomed_limit, SL_DNS_ADDRS_MAX);
    if (q->route != NULL && *q->route != '\0')
        return resolve_route(&w, a, err, errlen);
    if (q->domain[0] == '[')
        return resolve_literal(&w, a, err, errlen);
    r = sl_dns_ask(d, q->domain, LDNS_RR_TYPE_MX, w.deadline, &pkt, err, errlen);
    if (r == DNS_TEMP)
        return SL_DNS_TEMPFAIL;
    if (r == DNS_NXDOMAIN)
        return SL_DNS_NOHOST;
    res = r == DNS_NODATA ? resolve_no_mx(&w, a, err, errlen)
                          : resolve_hosts(&w, pkt, a, err, errlen);
    ldns_pkt_free(pkt);
    return res;
}
