/*
 * dns_impl.h - what the files of the DNS module share (not for other modules).
 *
 * dns.c          open/close, and sl_dns_resolve: MX -> hosts -> addresses
 * dns_query.c    one DNS question with a deadline, CNAMEs followed, and the
 *                records of an answer read into an sl_dns_host
 * dns_addr.c     pure helpers: "host[:port]" parsing, address formatting, MX
 *                ordering (no network, unit-tested)
 * dns_tlsa.c     TLSA records (DANE) and whether the AD bit can be believed
 * dns_txt.c      TXT records and one host's addresses (for MTA-STS)
 * The readers that turn an answer (an ldns_pkt) into ours are declared here
 * apart from the questions, so that the DNS fuzz target (tests/fuzz/fuzz_dns.c)
 * can hand them packets made of its bytes.
 */
#ifndef SL_DNS_IMPL_H
#define SL_DNS_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <ldns/ldns.h>

#include "dns/sl_dns.h"

struct sl_dns {
    ldns_resolver *res;
    char label[96]; /* the server as messages name it: "127.0.0.1:5353" */
    long timeout_ms;
    bool ad_trusted; /* every server is on loopback (sl_dns_trusts_ad), set at open */
};

/* What one question came to. */
enum dns_lookup {
    DNS_FOUND,    /* NOERROR with records of the type asked */
    DNS_NODATA,   /* NOERROR without them */
    DNS_NXDOMAIN, /* the name does not exist */
    DNS_TEMP,     /* no answer in time, SERVFAIL, REFUSED, a broken reply */
};

/* One MX record: its exchange, as a host name (lower case, no final dot). */
struct dns_mx {
    char name[256];
    int pref;
};

/* dns_query.c */
/* Ask (name, type) before deadline, following up to a few CNAMEs the server
 * did not follow itself.  *pkt is the last answer (the caller frees it with
 * ldns_pkt_free) for DNS_FOUND and DNS_NODATA, NULL otherwise; err gets one
 * line for DNS_TEMP and DNS_NXDOMAIN. */
enum dns_lookup sl_dns_ask(struct sl_dns *d, const char *name, ldns_rr_type type,
                           struct timespec deadline, ldns_pkt **pkt, char *err, size_t errlen);
/* ttl, or the TTL of a CNAME record of list when smaller (an answer that followed an alias
 * goes out of date with it). */
unsigned sl_dns_cname_ttl(const ldns_rr_list *list, unsigned ttl);
/* Add to h the A or AAAA records (type) of list, those owned by owner only
 * when owner is not NULL, up to limit addresses in all; duplicates skipped. */
void sl_dns_take_addrs(const ldns_rr_list *list, const char *owner, ldns_rr_type type, int port,
                       struct sl_dns_host *h, size_t limit);
/* Where the answer's CNAME chain from name leads (into target); false when nowhere. */
bool sl_dns_cname_end(const ldns_pkt *pkt, const char *name, char *target, size_t len);
/* A domain name of DNS as a host name: lower case, no final dot.  False when
 * it is empty (the root), too long, or holds characters no host name has. */
bool sl_dns_rdf_name(const ldns_rdf *rdf, char *buf, size_t len);

/* dns.c */
/* The MX records of an answer, every owner: *n hosts (names checked, lower case), *nulls
 * "." exchanges, *ttl the smallest TTL of the hosts.  Caller frees the array. */
struct dns_mx *sl_dns_read_mx(const ldns_pkt *pkt, size_t *n, size_t *nulls, unsigned *ttl);

/* dns_tlsa.c */
/* The answer's TLSA records into a (malformed or long ones skipped, at most SL_TLSA_MAX),
 * a->ttl the smallest of their TTLs. */
void sl_dns_take_tlsa(const ldns_pkt *pkt, struct sl_tlsa_answer *a);

/* dns_txt.c */
/* The answer's TXT records, each one's strings joined and made printable, at most max;
 * returns how many. */
size_t sl_dns_take_txt(const ldns_pkt *pkt, char (*out)[SL_DNS_TXT_MAX], size_t max);

/* dns_addr.c */
/* Split "host", "host:port", "[v6]:port", "[v6]" or a bare IPv6 literal.
 * *port is 0 when none is given.  False when malformed. */
bool sl_dns_split_hostport(const char *s, char *host, size_t hostlen, int *port);
/* Fill *ss from an IP literal with port; 0 when text is no IP literal. */
socklen_t sl_dns_literal(const char *text, int port, struct sockaddr_storage *ss);
/* Add one address to h unless present or h already holds limit addresses. */
void sl_dns_add_addr(struct sl_dns_host *h, const struct sockaddr_storage *ss, socklen_t len,
                     size_t limit);
/* Sort by preference ascending, shuffle each run of equal preferences,
 * drop later duplicates of a name; returns the new count. */
size_t sl_dns_order_mx(struct dns_mx *mx, size_t n);

#endif
