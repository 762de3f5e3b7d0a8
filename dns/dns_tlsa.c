/*
 * dns_tlsa.c - the TLSA records of an MX host (RFC 7672 2.2), and whether
 * their DNSSEC status can be believed.
 *
 * The validation is the resolver's: we ask with the DO bit and read the AD
 * bit of its reply.  That bit means something only when the resolver is on
 * this machine (sl_dns_trusts_ad: decided once, at sl_dns_open), since nothing
 * protects it on a network path.  A validating resolver answers SERVFAIL to
 * bogus data: that, like a timeout, is SL_DNS_TEMPFAIL, so the caller can
 * keep mail away from a host whose records an attacker may have changed.
 *
 * Only TLSA questions carry the DO bit: it is set on the resolver for the one
 * question and cleared before returning, so the MX/A/AAAA path keeps its
 * smaller, signature-free answers.  One sl_dns is used by one thread.
 * Trust boundary: DNS replies; record data is copied only within
 * SL_TLSA_DATA_MAX, longer records are skipped.
 */
#include <stdio.h>
#include <string.h>

#include "dns_impl.h"
#include "util/sl_clock.h"
#include "util/sl_msg.h"

#define TLSA_DENIAL_TTL 60 /* how long "no TLSA record" may be reused */

/* sl_dns_trusts_ad - is every server this resolver asks on loopback? */
bool sl_dns_trusts_ad(const struct sl_dns *d)
{
    return d->ad_trusted;
}

/* read_tlsa - one TLSA record into *t; false when malformed or too long */
static bool read_tlsa(const ldns_rr *rr, struct sl_tlsa *t)
{
    const ldns_rdf *f[4];

    if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_TLSA || ldns_rr_rd_count(rr) != 4)
        return false;
    for (size_t i = 0; i < 4; i++)
        if ((f[i] = ldns_rr_rdf(rr, i)) == NULL || (i < 3 && ldns_rdf_size(f[i]) != 1))
            return false;
    if (ldns_rdf_size(f[3]) == 0 || ldns_rdf_size(f[3]) > SL_TLSA_DATA_MAX)
        return false;
    t->usage = ldns_rdf_data(f[0])[0];
    t->selector = ldns_rdf_data(f[1])[0];
    t->mtype = ldns_rdf_data(f[2])[0];
    t->len = ldns_rdf_size(f[3]);
    memcpy(t->data, ldns_rdf_data(f[3]), t->len);
    return true;
}

/* sl_dns_take_tlsa - the answer's TLSA records (any owner: the resolver may have
 * followed a CNAME) into a, with the smallest TTL among them */
void sl_dns_take_tlsa(const ldns_pkt *pkt, struct sl_tlsa_answer *a)
{
    const ldns_rr_list *an = ldns_pkt_answer(pkt);

    for (size_t i = 0; i < ldns_rr_list_rr_count(an) && a->n < SL_TLSA_MAX; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(an, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_TLSA)
            continue;
        if (!read_tlsa(rr, &a->rec[a->n])) {
            sl_msg_debug("dns: a TLSA record that is malformed or too long is skipped");
            continue;
        }
        if (a->n++ == 0 || ldns_rr_ttl(rr) < a->ttl)
            a->ttl = ldns_rr_ttl(rr);
    }
}

/* asked_as - did the reply answer the name we asked, not a CNAME target that
 * sl_dns_ask chased itself (whose earlier replies' AD bits are gone)? */
static bool asked_as(const ldns_pkt *pkt, const char *name)
{
    const ldns_rr_list *q = ldns_pkt_question(pkt);
    char owner[256];

    return ldns_rr_list_rr_count(q) == 1 &&
           sl_dns_rdf_name(ldns_rr_owner(ldns_rr_list_rr(q, 0)), owner, sizeof owner) &&
           strcmp(owner, name) == 0;
}

/* sl_dns_tlsa - the TLSA records of _port._tcp.host and their DNSSEC status */
enum sl_dns_result sl_dns_tlsa(struct sl_dns *d, const char *host, int port,
                               struct sl_tlsa_answer *a, char *err, size_t errlen)
{
    char name[300];
    ldns_pkt *pkt = NULL;
    enum dns_lookup r;

    memset(a, 0, sizeof *a);
    a->ttl = TLSA_DENIAL_TTL;
    if (errlen > 0)
        err[0] = '\0';
    if ((size_t)snprintf(name, sizeof name, "_%d._tcp.%s", port, host) >= 254)
        return SL_DNS_OK;                   /* too long to be a DNS name: no record can exist */
    ldns_resolver_set_dnssec(d->res, true); /* the DO bit, for this question only */
    r = sl_dns_ask(d, name, LDNS_RR_TYPE_TLSA, sl_clock_after_ms(d->timeout_ms), &pkt, err, errlen);
    ldns_resolver_set_dnssec(d->res, false);
    if (r == DNS_TEMP)
        return SL_DNS_TEMPFAIL;
    if (r == DNS_NXDOMAIN) { /* the denial's AD bit is not kept by sl_dns_ask */
        if (errlen > 0)
            err[0] = '\0';
        return SL_DNS_OK;
    }
    a->secure = d->ad_trusted && ldns_pkt_ad(pkt) && asked_as(pkt, name);
    if (r == DNS_FOUND)
        sl_dns_take_tlsa(pkt, a);
    ldns_pkt_free(pkt);
    return SL_DNS_OK;
}

/* sl_dns_host_signed - is host's address answer DNSSEC-validated?  Asked when a
 * TLSA lookup failed: RFC 7672 2.2.2 looks for TLSA records only where the
 * host's address records are secure, so a host in an unsigned zone whose
 * servers mishandle TLSA questions is not held back by DANE.  When this
 * cannot be told (no answer), it says signed: fail safe. */
bool sl_dns_host_signed(struct sl_dns *d, const char *host)
{
    ldns_pkt *pkt = NULL;
    enum dns_lookup r;
    char err[160];
    bool ad;

    if (!d->ad_trusted)
        return false;
    ldns_resolver_set_dnssec(d->res, true);
    r = sl_dns_ask(d, host, LDNS_RR_TYPE_A, sl_clock_after_ms(d->timeout_ms), &pkt, err,
                   sizeof err);
    ldns_resolver_set_dnssec(d->res, false);
    if (r == DNS_TEMP || pkt == NULL)
        return r == DNS_TEMP;
    ad = ldns_pkt_ad(pkt) && asked_as(pkt, host);
    ldns_pkt_free(pkt);
    return ad;
}
