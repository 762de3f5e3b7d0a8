/*
 * sl_dns.h - where mail for a domain goes: MX, A and AAAA with ldns.
 *
 * A worker resolves a destination once per connection (not per message),
 * against dns_server (IP[:port]) or the system resolver (/etc/resolv.conf).
 * The answer is the list of hosts to try, in order: MX preference ascending,
 * equal preferences shuffled, at most mx_limit hosts; each with at most
 * multihomed_limit addresses.  No MX: the domain itself is the one host
 * (RFC 5321 5.1).  A null MX ("0 ." alone, RFC 7505): SL_DNS_NULLMX.
 * A `route` (host[:port]) replaces the MX lookup with that one host.
 */
#ifndef SL_DNS_H
#define SL_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define SL_DNS_HOSTS_MAX  16    /* mx_limit is capped here */
#define SL_DNS_NAME_MAX   255   /* a domain name (RFC 1035 2.3.4) */
#define SL_DNS_ADDRS_MAX  8     /* multihomed_limit is capped here */
#define SL_DNS_TIMEOUT_MS 10000 /* sl_dns_open's bound when given timeout_ms <= 0 */

enum sl_dns_result {
    SL_DNS_OK = 0,
    SL_DNS_NULLMX,   /* the domain accepts no mail: bounce */
    SL_DNS_NOHOST,   /* NXDOMAIN, or no MX and no address: bounce */
    SL_DNS_TEMPFAIL, /* timeout, SERVFAIL, no usable address: defer */
};

struct sl_dns_host {
    char name[256]; /* MX host name as DNS gives it, lower case, no final dot */
    int pref;
    unsigned ttl; /* the smallest TTL of its address records and of the CNAMEs that led to
                   * them; 0 for a literal, or an answer not to be kept */
    bool literal; /* an IP literal: its address never goes out of date */
    size_t naddr;
    struct sockaddr_storage addr[SL_DNS_ADDRS_MAX]; /* port already set */
    socklen_t addrlen[SL_DNS_ADDRS_MAX];
};

struct sl_dns_answer {
    unsigned ttl;    /* seconds the answer may be reused (the smallest TTL of its MX, CNAME
                      * and address records), 0: not at all (routes, no MX) */
    unsigned mx_ttl; /* the MX records' TTL as answered, 0 without MX (shown by `domain`) */
    size_t nhosts;
    struct sl_dns_host host[SL_DNS_HOSTS_MAX];
};

struct sl_dns_query {
    const char *domain; /* lower case */
    const char *route;  /* host[:port] or NULL */
    int port;           /* smtp_port, for hosts without an explicit port */
    int mx_limit;
    int multihomed_limit;
    int family; /* AF_INET or AF_INET6 to keep only that family (the binding's
                   bind_address), AF_UNSPEC for both */
};

struct sl_dns; /* one resolver, made once per worker */

/* server: "IP[:port]" ("[v6]:port") or NULL for /etc/resolv.conf.  timeout_ms
 * bounds each query (ldns retries included), and in fact a whole
 * sl_dns_resolve call: every query gets what is left of it.  NULL with err on
 * failure. */
struct sl_dns *sl_dns_open(const char *server, int timeout_ms, char *err, size_t errlen);
void sl_dns_close(struct sl_dns *d);
/* Resolve q into *a; err gets one line for anything but SL_DNS_OK. */
enum sl_dns_result sl_dns_resolve(struct sl_dns *d, const struct sl_dns_query *q,
                                  struct sl_dns_answer *a, char *err, size_t errlen);
/* Is the AD bit of this resolver's answers to be believed?  Only when every
 * server it asks is on loopback (127.0.0.0/8, ::1): an AD bit that crossed a
 * network could have been set by anyone on the path (RFC 6698 4.1, RFC 7672). */
bool sl_dns_trusts_ad(const struct sl_dns *d);

#define SL_TLSA_MAX      8
#define SL_TLSA_DATA_MAX 512 /* SHA-256/512 digests, or a whole key (selector 1, type 0) */

/* One TLSA record (RFC 6698): usage 2 (DANE-TA) and 3 (DANE-EE) are the ones
 * SMTP uses (RFC 7672 3.1); 0 and 1 are not usable for SMTP. */
struct sl_tlsa {
    uint8_t usage, selector, mtype;
    size_t len;
    uint8_t data[SL_TLSA_DATA_MAX];
};

/* The TLSA records of one host and their DNSSEC status. */
struct sl_tlsa_answer {
    bool secure;  /* DNSSEC-validated: AD set by a resolver sl_dns_trusts_ad trusts */
    unsigned ttl; /* seconds the answer may be reused (the records' TTL; 60 for a denial) */
    size_t n;
    struct sl_tlsa rec[SL_TLSA_MAX]; /* unusable ones too: the caller filters */
};
/* The TLSA records of _port._tcp.host (RFC 7672 2.2), asked with the DO bit.
 * SL_DNS_OK: a->secure tells whether the answer (or the denial, for n == 0)
 * was DNSSEC-validated.  NXDOMAIN and NODATA are SL_DNS_OK with n == 0.
 * SL_DNS_TEMPFAIL: timeout, SERVFAIL (a validating resolver's answer to bogus
 * data): err says which. */
enum sl_dns_result sl_dns_tlsa(struct sl_dns *d, const char *host, int port,
                               struct sl_tlsa_answer *a, char *err, size_t errlen);

/* Is host's address answer DNSSEC-validated (AD from a trusted resolver)?
 * true also when no answer came (fail safe); false for an unsigned zone. */
bool sl_dns_host_signed(struct sl_dns *d, const char *host);

/* The TXT records of name, each one's strings joined (RFC 7208 3.3 style).
 * SL_DNS_OK with *n records (at most max, each cut to SL_DNS_TXT_MAX - 1);
 * NXDOMAIN and NODATA are SL_DNS_OK with *n == 0; SL_DNS_TEMPFAIL otherwise. */
#define SL_DNS_TXT_MAX 512
enum sl_dns_result sl_dns_txt(struct sl_dns *d, const char *name, char (*out)[SL_DNS_TXT_MAX],
                              size_t max, size_t *n, char *err, size_t errlen);

/* The addresses of one host name (A and AAAA), port set, at most max.
 * SL_DNS_OK with *n >= 1; SL_DNS_NOHOST; SL_DNS_TEMPFAIL. */
enum sl_dns_result sl_dns_addrs(struct sl_dns *d, const char *host, int port,
                                struct sockaddr_storage *out, size_t max, size_t *n, char *err,
                                size_t errlen);

/* "IP" or "[IPv6]" with ":port" for logs. */
void sl_dns_format_addr(const struct sockaddr_storage *ss, char *buf, size_t len, bool with_port);

/* dns_cache.c: recent full answers, kept per process (a worker's, sluicectl's). */
#define SL_DNS_CACHE_ENTRIES 16
#define SL_DNS_CACHE_MAX_S   300
struct sl_dns_cache_entry {
    char key[SL_DNS_NAME_MAX + 320];
    time_t expires; /* monotonic seconds; 0: free */
    struct sl_dns_answer answer;
};
struct sl_dns_cache {
    struct sl_dns_cache_entry entry[SL_DNS_CACHE_ENTRIES];
};
bool sl_dns_cache_get(struct sl_dns_cache *c, const struct sl_dns_query *q,
                      struct sl_dns_answer *a);
void sl_dns_cache_put(struct sl_dns_cache *c, const struct sl_dns_query *q,
                      const struct sl_dns_answer *a);

/* dns_cache.c: recent TLSA answers, per process (DANE costs no query per
 * connection either). */
struct sl_tlsa_cache_entry {
    char key[300]; /* "_port._tcp.host" */
    time_t expires;
    struct sl_tlsa_answer answer;
};
struct sl_tlsa_cache {
    struct sl_tlsa_cache_entry entry[SL_DNS_CACHE_ENTRIES];
};
/* The TLSA answer for host:port: kept while fresh, else asked of dns and kept
 * for its TTL (capped at SL_DNS_CACHE_MAX_S); failures are never kept. */
enum sl_dns_result sl_tlsa_cached(struct sl_tlsa_cache *c, struct sl_dns *dns, const char *host,
                                  int port, struct sl_tlsa_answer *a, char *err, size_t errlen);

#endif
