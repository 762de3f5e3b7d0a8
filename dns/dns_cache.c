/*
 * dns_cache.c - a worker's memory of recent answers, so a destination that
 * takes one message per connection (max_deliveries_per_connection = 1) does
 * not cost one DNS query per message.
 *
 * An answer is kept for the smallest TTL of its MX, CNAME and address records
 * (an MX host that moves to a new address is followed once its old one is out
 * of date; a TTL of 0 keeps nothing), at most SL_DNS_CACHE_MAX_S, under the
 * whole question (domain, route, port, family, mx_limit, multihomed_limit).
 * Each time it is used, hosts of equal preference are shuffled again, as a
 * fresh answer would be.  Only full answers of MX hosts are kept: failures,
 * null MX, answers that lacked a host's addresses for now, routes and domains
 * without MX records are asked again every time.  A host whose A or AAAA
 * question failed for now while the other family answered counts as found: it
 * is kept with the addresses it has, for asking again would cost every new
 * connection the DNS timeout while the server that drops one family stays so;
 * the missing family is asked when the answer expires.  The table is small and per
 * process: a worker serves few destinations at once, and the resolver it asks
 * caches the rest.
 * TLSA answers (DANE) are kept the same way, per "_port._tcp.host", for their
 * records' TTL (a denial for a minute): with a validating resolver on
 * loopback every connection would otherwise cost one more query.
 * Trust boundary: what is stored came from sl_dns_resolve.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>
#include <sodium.h>

#include "dns/sl_dns.h"
#include "util/sl_msg.h"

/* key_of - the whole question as one string */
static void key_of(const struct sl_dns_query *q, char *buf, size_t len)
{
    snprintf(buf, len, "%s|%s|%d|%d|%d|%d", q->domain, q->route ? q->route : "", q->port, q->family,
             q->mx_limit, q->multihomed_limit);
}

/* now_s - monotonic seconds */
static time_t now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* shuffle_ties - shuffle every run of hosts with equal preference */
static void shuffle_ties(struct sl_dns_answer *a)
{
    for (size_t i = 0; i < a->nhosts;) {
        size_t j = i + 1;
        while (j < a->nhosts && a->host[j].pref == a->host[i].pref)
            j++;
        for (size_t k = j - 1; k > i; k--) {
            size_t r = i + randombytes_uniform((uint32_t)(k - i + 1));
            struct sl_dns_host t = a->host[k];
            a->host[k] = a->host[r];
            a->host[r] = t;
        }
        i = j;
    }
}

/* sl_dns_cache_get - a kept answer to q, if one is still fresh */
bool sl_dns_cache_get(struct sl_dns_cache *c, const struct sl_dns_query *q, struct sl_dns_answer *a)
{
    char key[sizeof c->entry[0].key];
    time_t now = now_s();

    key_of(q, key, sizeof key);
    for (size_t i = 0; i < SL_DNS_CACHE_ENTRIES; i++) {
        struct sl_dns_cache_entry *e = &c->entry[i];
        if (e->expires > now && strcmp(e->key, key) == 0) {
            *a = e->answer;
            shuffle_ties(a);
            return true;
        }
    }
    return false;
}

/* sl_dns_cache_put - keep a full answer for its TTL (capped) */
void sl_dns_cache_put(struct sl_dns_cache *c, const struct sl_dns_query *q,
                      const struct sl_dns_answer *a)
{
    struct sl_dns_cache_entry *victim = &c->entry[0];
    unsigned ttl = a->ttl < SL_DNS_CACHE_MAX_S ? a->ttl : SL_DNS_CACHE_MAX_S;

    if (ttl == 0)
        return;
    for (size_t i = 1; i < SL_DNS_CACHE_ENTRIES; i++)
        if (c->entry[i].expires < victim->expires)
            victim = &c->entry[i]; /* the stalest entry makes room */
    key_of(q, victim->key, sizeof victim->key);
    victim->answer = *a;
    victim->expires = now_s() + (time_t)ttl;
}

/* stalest - the entry to reuse: a free one, else the one that expires first */
static struct sl_tlsa_cache_entry *stalest(struct sl_tlsa_cache *c)
{
    struct sl_tlsa_cache_entry *victim = &c->entry[0];

    for (size_t i = 1; i < SL_DNS_CACHE_ENTRIES; i++)
        if (c->entry[i].expires < victim->expires)
            victim = &c->entry[i];
    return victim;
}

/* sl_tlsa_cached - the TLSA answer for host:port, kept or asked */
enum sl_dns_result sl_tlsa_cached(struct sl_tlsa_cache *c, struct sl_dns *dns, const char *host,
                                  int port, struct sl_tlsa_answer *a, char *err, size_t errlen)
{
    char key[sizeof c->entry[0].key];
    time_t now = now_s();
    struct sl_tlsa_cache_entry *e;
    enum sl_dns_result r;

    snprintf(key, sizeof key, "_%d._tcp.%s", port, host);
    for (size_t i = 0; i < SL_DNS_CACHE_ENTRIES; i++) {
        if (c->entry[i].expires > now && strcmp(c->entry[i].key, key) == 0) {
            *a = c->entry[i].answer;
            return SL_DNS_OK;
        }
    }
    r = sl_dns_tlsa(dns, host, port, a, err, errlen);
    if (r != SL_DNS_OK || a->ttl == 0)
        return r;
    e = stalest(c);
    strlcpy(e->key, key, sizeof e->key);
    e->answer = *a;
    e->expires = now + (time_t)(a->ttl < SL_DNS_CACHE_MAX_S ? a->ttl : SL_DNS_CACHE_MAX_S);
    return r;
}
