/*
 * dns_query.c - one DNS question with a deadline, and reading its answer.
 *
 * Trust boundary: every reply comes from the network.  A reply whose id or
 * question is not ours is refused; names are taken only when they look like
 * host names; addresses only from A/AAAA data of the exact size.  Each
 * question is bounded by what is left of the caller's deadline, ldns's own
 * retries included.  Packets are freed here or handed to the caller, who
 * frees them.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "dns_impl.h"
#include "util/sl_clock.h"

#define CNAME_HOPS 4 /* CNAMEs followed by us when the server did not */
#define TRIES      2 /* UDP tries per server per question (ldns retry) */

/* type_name - the record type as messages write it */
static const char *type_name(ldns_rr_type type)
{
    switch (type) {
    case LDNS_RR_TYPE_MX:
        return "MX";
    case LDNS_RR_TYPE_A:
        return "A";
    case LDNS_RR_TYPE_AAAA:
        return "AAAA";
    case LDNS_RR_TYPE_TLSA:
        return "TLSA";
    case LDNS_RR_TYPE_TXT:
        return "TXT";
    default:
        return "?";
    }
}

/* sl_dns_rdf_name - a DNS name as a host name (lower case, no final dot) */
bool sl_dns_rdf_name(const ldns_rdf *rdf, char *buf, size_t len)
{
    char *s;
    size_t n;
    bool ok = true;

    if (rdf == NULL || ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME ||
        (s = ldns_rdf2str(rdf)) == NULL)
        return false;
    n = strlen(s);
    if (n > 0 && s[n - 1] == '.')
        s[--n] = '\0';
    /* Escaped bytes (\DDD), blanks and the like name no host we could reach. */
    for (size_t i = 0; i < n && ok; i++) {
        unsigned char c = (unsigned char)s[i];
        s[i] = (char)tolower(c);
        ok = isalnum(c) || c == '-' || c == '_' || (c == '.' && i > 0 && s[i - 1] != '.');
    }
    ok = ok && n > 0 && n < len;
    if (ok)
        memcpy(buf, s, n + 1);
    free(s);
    return ok;
}

/* reset_servers - forget that a server timed out before, so it is asked again */
static void reset_servers(ldns_resolver *res)
{
    for (size_t i = 0; i < ldns_resolver_nameserver_count(res); i++)
        ldns_resolver_set_nameserver_rtt(res, i, LDNS_RESOLV_RTT_MIN);
}

/* set_budget - split what is left until the deadline over every try; false when none */
static bool set_budget(ldns_resolver *res, struct timespec deadline, long *left)
{
    size_t n = ldns_resolver_nameserver_count(res);
    long per;

    *left = sl_clock_ms_until(deadline);
    if (*left <= 0)
        return false;
    per = *left / (long)(TRIES * (n > 0 ? n : 1));
    if (per < 1)
        per = 1;
    ldns_resolver_set_timeout(res, (struct timeval){per / 1000, (per % 1000) * 1000});
    ldns_resolver_set_retry(res, TRIES);
    return true;
}

/* is_reply_to - does the reply answer our query (same id, same question)? */
static bool is_reply_to(const ldns_pkt *reply, const ldns_pkt *query)
{
    const ldns_rr_list *qa = ldns_pkt_question(reply), *qq = ldns_pkt_question(query);

    if (ldns_pkt_id(reply) != ldns_pkt_id(query) || ldns_rr_list_rr_count(qa) != 1)
        return false;
    return ldns_rr_get_type(ldns_rr_list_rr(qa, 0)) == ldns_rr_get_type(ldns_rr_list_rr(qq, 0)) &&
           ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(qa, 0)),
                              ldns_rr_owner(ldns_rr_list_rr(qq, 0))) == 0;
}

/* send_query - the network part of one question: the reply, or NULL with err */
static ldns_pkt *send_query(struct sl_dns *d, ldns_pkt *query, const char *name, ldns_rr_type type,
                            struct timespec deadline, long left, char *err, size_t errlen)
{
    ldns_pkt *reply = NULL;
    ldns_status st = ldns_resolver_send_pkt(&reply, d->res, query);

    if (st == LDNS_STATUS_OK && reply != NULL && is_reply_to(reply, query))
        return reply;
    if (reply != NULL)
        snprintf(err, errlen, "DNS server %s sent a reply that is not for %s %s", d->label,
                 type_name(type), name);
    else if (sl_clock_ms_until(deadline) <= left / 10) /* the time is used up: no answer */
        snprintf(err, errlen, "DNS timeout (%ld ms) querying %s for %s %s", left, d->label,
                 type_name(type), name);
    else
        snprintf(err, errlen, "DNS error querying %s for %s %s: %s", d->label, type_name(type),
                 name, ldns_get_errorstr_by_id(st));
    ldns_pkt_free(reply);
    return NULL;
}

/* ask_once - one question, no CNAME chasing: FOUND stands for NOERROR here */
static enum dns_lookup ask_once(struct sl_dns *d, const char *name, ldns_rr_type type,
                                struct timespec deadline, ldns_pkt **pkt, char *err, size_t errlen)
{
    char fqdn[260];
    ldns_rdf *dname;
    ldns_pkt *query = NULL, *reply;
    ldns_pkt_rcode rcode;
    long left;

    *pkt = NULL;
    snprintf(fqdn, sizeof fqdn, "%s.", name);
    if (!set_budget(d->res, deadline, &left)) {
        snprintf(err, errlen, "DNS timeout: no time left to query %s for %s %s", d->label,
                 type_name(type), name);
        return DNS_TEMP;
    }
    if ((dname = ldns_dname_new_frm_str(fqdn)) == NULL) {
        snprintf(err, errlen, "%s is not a valid domain name", name);
        return DNS_NXDOMAIN;
    }
    reset_servers(d->res);
    if (ldns_resolver_prepare_query_pkt(&query, d->res, dname, type, LDNS_RR_CLASS_IN, LDNS_RD) !=
        LDNS_STATUS_OK) {
        ldns_rdf_deep_free(dname);
        snprintf(err, errlen, "cannot build a DNS query for %s %s", type_name(type), name);
        return DNS_TEMP;
    }
    reply = send_query(d, query, name, type, deadline, left, err, errlen);
    ldns_pkt_free(query);
    ldns_rdf_deep_free(dname);
    if (reply == NULL)
        return DNS_TEMP;
    rcode = ldns_pkt_get_rcode(reply);
    if (rcode == LDNS_RCODE_NOERROR) {
        *pkt = reply;
        return DNS_FOUND;
    }
    if (rcode == LDNS_RCODE_NXDOMAIN)
        snprintf(err, errlen, "%s does not exist (NXDOMAIN)", name);
    else {
        ldns_lookup_table *rc = ldns_lookup_by_id(ldns_rcodes, (int)rcode);
        snprintf(err, errlen, "DNS server %s answered %s for %s %s", d->label,
                 rc != NULL ? rc->name : "an error", type_name(type), name);
    }
    ldns_pkt_free(reply);
    return rcode == LDNS_RCODE_NXDOMAIN ? DNS_NXDOMAIN : DNS_TEMP;
}

/* has_type - does the answer section hold a record of type? */
static bool has_type(const ldns_pkt *pkt, ldns_rr_type type)
{
    const ldns_rr_list *an = ldns_pkt_answer(pkt);

    for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++)
        if (ldns_rr_get_type(ldns_rr_list_rr(an, i)) == type)
            return true;
    return false;
}

/* sl_dns_cname_end - where the answer's CNAME chain from name leads; false when nowhere */
bool sl_dns_cname_end(const ldns_pkt *pkt, const char *name, char *target, size_t len)
{
    const ldns_rr_list *an = ldns_pkt_answer(pkt);
    char cur[256], owner[256];
    bool moved = false;

    strlcpy(cur, name, sizeof cur);
    for (int hop = 0; hop < 8; hop++) {
        bool step = false;
        for (size_t i = 0; i < ldns_rr_list_rr_count(an) && !step; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(an, i);
            if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME &&
                sl_dns_rdf_name(ldns_rr_owner(rr), owner, sizeof owner) &&
                strcmp(owner, cur) == 0 && sl_dns_rdf_name(ldns_rr_rdf(rr, 0), cur, sizeof cur))
                step = true;
        }
        if (!step)
            break;
        moved = true;
    }
    if (moved)
        strlcpy(target, cur, len);
    return moved;
}

/* sl_dns_ask - a question, its CNAME chain followed when the server left it */
enum dns_lookup sl_dns_ask(struct sl_dns *d, const char *name, ldns_rr_type type,
                           struct timespec deadline, ldns_pkt **pkt, char *err, size_t errlen)
{
    char cur[256], next[256];

    strlcpy(cur, name, sizeof cur);
    for (int hop = 0;; hop++) {
        enum dns_lookup r = ask_once(d, cur, type, deadline, pkt, err, errlen);
        if (r != DNS_FOUND)
            return r;
        if (has_type(*pkt, type))
            return DNS_FOUND;
        if (hop == CNAME_HOPS || !sl_dns_cname_end(*pkt, cur, next, sizeof next))
            return DNS_NODATA;
        ldns_pkt_free(*pkt);
        *pkt = NULL;
        strlcpy(cur, next, sizeof cur);
    }
}

/* sl_dns_cname_ttl - ttl, or the TTL of a CNAME record of list when smaller */
unsigned sl_dns_cname_ttl(const ldns_rr_list *list, unsigned ttl)
{
    for (size_t i = 0; i < ldns_rr_list_rr_count(list); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(list, i);
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && ldns_rr_ttl(rr) < ttl)
            ttl = ldns_rr_ttl(rr);
    }
    return ttl;
}

/* sl_dns_take_addrs - the A or AAAA records of a section into h */
void sl_dns_take_addrs(const ldns_rr_list *list, const char *owner, ldns_rr_type type, int port,
                       struct sl_dns_host *h, size_t limit)
{
    size_t want = type == LDNS_RR_TYPE_A ? 4 : 16;
    char name[256];

    for (size_t i = 0; i < ldns_rr_list_rr_count(list); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(list, i);
        const ldns_rdf *rd = ldns_rr_rdf(rr, 0);
        struct sockaddr_storage ss = {0};
        socklen_t len;

        if (ldns_rr_get_type(rr) != type || rd == NULL || ldns_rdf_size(rd) != want)
            continue;
        if (owner != NULL &&
            (!sl_dns_rdf_name(ldns_rr_owner(rr), name, sizeof name) || strcmp(name, owner) != 0))
            continue;
        if (type == LDNS_RR_TYPE_A) {
            struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
            v4->sin_family = AF_INET;
            v4->sin_port = htons((uint16_t)port);
            memcpy(&v4->sin_addr, ldns_rdf_data(rd), 4);
            len = sizeof *v4;
        } else {
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons((uint16_t)port);
            memcpy(&v6->sin6_addr, ldns_rdf_data(rd), 16);
            len = sizeof *v6;
        }
        if (h->naddr < limit && (h->naddr == 0 || ldns_rr_ttl(rr) < h->ttl))
            h->ttl = ldns_rr_ttl(rr); /* the record kept soonest out of date (0 included) */
        sl_dns_add_addr(h, &ss, len, limit);
    }
}
