/*
 * dns_txt.c - two small questions for MTA-STS: the TXT records of a name,
 * and the addresses of one host name (the policy server's, which must come
 * from our own resolver, not the system's).
 *
 * Both run on sl_dns_ask under the resolver's timeout_ms, like one
 * sl_dns_resolve.  Trust boundary: the DNS reply.  TXT strings are copied
 * with their length cut to the caller's buffer and every byte that is not
 * printable ASCII replaced by '?', so no NUL or control byte reaches a
 * parser or a log line.
 */
#include <stdio.h>
#include <string.h>

#include <bsd/string.h>

#include "dns_impl.h"
#include "util/sl_clock.h"

/* join_strings - a TXT record's character-strings, concatenated, into out */
static void join_strings(const ldns_rr *rr, char *out, size_t outlen)
{
    size_t pos = 0;

    for (size_t i = 0; i < ldns_rr_rd_count(rr); i++) {
        const ldns_rdf *rd = ldns_rr_rdf(rr, i);
        const uint8_t *data = ldns_rdf_data(rd);
        size_t size = ldns_rdf_size(rd), len;

        if (ldns_rdf_get_type(rd) != LDNS_RDF_TYPE_STR || size < 1)
            continue;
        len = data[0] < size ? data[0] : size - 1; /* the length byte, held to the data */
        for (size_t j = 0; j < len && pos + 1 < outlen; j++) {
            uint8_t c = data[1 + j];
            out[pos++] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
        }
    }
    out[pos] = '\0';
}

/* sl_dns_take_txt - the answer's TXT records, each one's strings joined, at most max */
size_t sl_dns_take_txt(const ldns_pkt *pkt, char (*out)[SL_DNS_TXT_MAX], size_t max)
{
    const ldns_rr_list *an = ldns_pkt_answer(pkt);
    size_t n = 0;

    for (size_t i = 0; i < ldns_rr_list_rr_count(an) && n < max; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(an, i);
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_TXT)
            join_strings(rr, out[n++], SL_DNS_TXT_MAX);
    }
    return n;
}

/* sl_dns_txt - the TXT records of name */
enum sl_dns_result sl_dns_txt(struct sl_dns *d, const char *name, char (*out)[SL_DNS_TXT_MAX],
                              size_t max, size_t *n, char *err, size_t errlen)
{
    ldns_pkt *pkt = NULL;
    enum dns_lookup r;

    *n = 0;
    if (errlen > 0)
        err[0] = '\0';
    r = sl_dns_ask(d, name, LDNS_RR_TYPE_TXT, sl_clock_after_ms(d->timeout_ms), &pkt, err, errlen);
    if (r == DNS_TEMP)
        return SL_DNS_TEMPFAIL;
    if (r == DNS_FOUND)
        *n = sl_dns_take_txt(pkt, out, max);
    ldns_pkt_free(pkt);
    if (errlen > 0)
        err[0] = '\0'; /* NXDOMAIN and NODATA are no failure: no records */
    return SL_DNS_OK;
}

/* sl_dns_addrs - A then AAAA of host, at most max addresses */
enum sl_dns_result sl_dns_addrs(struct sl_dns *d, const char *host, int port,
                                struct sockaddr_storage *out, size_t max, size_t *n, char *err,
                                size_t errlen)
{
    static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA};
    struct timespec deadline = sl_clock_after_ms(d->timeout_ms);
    struct sl_dns_host h;
    size_t limit = max < SL_DNS_ADDRS_MAX ? max : SL_DNS_ADDRS_MAX;
    bool temp = false, nx = false;

    memset(&h, 0, sizeof h);
    *n = 0;
    if (errlen > 0)
        err[0] = '\0';
    for (size_t i = 0; i < 2 && h.naddr < limit && !nx; i++) {
        ldns_pkt *pkt = NULL;
        enum dns_lookup r = sl_dns_ask(d, host, types[i], deadline, &pkt, err, errlen);

        if (r == DNS_FOUND)
            sl_dns_take_addrs(ldns_pkt_answer(pkt), NULL, types[i], port, &h, limit);
        ldns_pkt_free(pkt);
        temp = temp || r == DNS_TEMP;
        nx = r == DNS_NXDOMAIN;
    }
    for (size_t i = 0; i < h.naddr; i++)
        out[i] = h.addr[i];
    *n = h.naddr;
    if (*n > 0) {
        if (errlen > 0)
            err[0] = '\0';
        return SL_DNS_OK;
    }
    if (temp)
        return SL_DNS_TEMPFAIL;
    if (!nx || (errlen > 0 && err[0] == '\0'))
        snprintf(err, errlen, "%s has no address", host);
    return SL_DNS_NOHOST;
}
