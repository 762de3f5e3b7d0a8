/*
 * dns_addr.c - the DNS module's pure helpers: host[:port] text, addresses,
 * the order of MX hosts.
 *
 * No network and no state.  The texts parsed here come from the operator
 * (dns_server, route) or from a recipient's domain; anything malformed is
 * refused, never guessed at.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <sodium.h>

#include "dns_impl.h"

/* parse_port - "1".."65535" into *port */
static bool parse_port(const char *s, int *port)
{
    char *end;
    long v;

    if (*s < '0' || *s > '9')
        return false;
    v = strtol(s, &end, 10);
    if (*end != '\0' || v < 1 || v > 65535)
        return false;
    *port = (int)v;
    return true;
}

/* sl_dns_split_hostport - host and optional port of an operator's text */
bool sl_dns_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strchr(s, ':');
    size_t n;

    *port = 0;
    if (*s == '[') { /* [v6] or [v6]:port */
        const char *close = strchr(s, ']');
        if (close == NULL || close == s + 1)
            return false;
        n = (size_t)(close - s - 1);
        if (close[1] != '\0' && (close[1] != ':' || !parse_port(close + 2, port)))
            return false;
        s++;
    } else if (colon != NULL && strchr(colon + 1, ':') != NULL) {
        n = strlen(s); /* two colons or more: a bare IPv6 literal, no port */
    } else if (colon != NULL) {
        n = (size_t)(colon - s);
        if (n == 0 || !parse_port(colon + 1, port))
            return false;
    } else {
        n = strlen(s);
    }
    if (n == 0 || n >= hostlen)
        return false;
    memcpy(host, s, n);
    host[n] = '\0';
    return true;
}

/* sl_dns_literal - an IPv4 or IPv6 literal as a socket address with port */
socklen_t sl_dns_literal(const char *text, int port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return sizeof *v4;
    }
    if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return sizeof *v6;
    }
    return 0;
}

/* sl_dns_add_addr - append an address to a host, once, within limit */
void sl_dns_add_addr(struct sl_dns_host *h, const struct sockaddr_storage *ss, socklen_t len,
                     size_t limit)
{
    if (limit > SL_DNS_ADDRS_MAX)
        limit = SL_DNS_ADDRS_MAX;
    if (h->naddr >= limit)
        return;
    for (size_t i = 0; i < h->naddr; i++)
        if (h->addrlen[i] == len && memcmp(&h->addr[i], ss, len) == 0)
            return;
    memcpy(&h->addr[h->naddr], ss, len);
    h->addrlen[h->naddr++] = len;
}

/* sl_dns_format_addr - "IP" / "IP:port" / "[v6]:port" for logs and sluicectl */
void sl_dns_format_addr(const struct sockaddr_storage *ss, char *buf, size_t len, bool with_port)
{
    char ip[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
        if (with_port)
            snprintf(buf, len, "%s:%u", ip, ntohs(v4->sin_port));
        else
            strlcpy(buf, ip, len);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
        if (with_port)
            snprintf(buf, len, "[%s]:%u", ip, ntohs(v6->sin6_port));
        else
            strlcpy(buf, ip, len);
    } else {
        strlcpy(buf, "?", len);
    }
}

/* by_pref - qsort order: preference ascending */
static int by_pref(const void *a, const void *b)
{
    const struct dns_mx *x = a, *y = b;
    return (x->pref > y->pref) - (x->pref < y->pref);
}

/* shuffle - Fisher-Yates over mx[0..n) with libsodium's uniform draw */
static void shuffle(struct dns_mx *mx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = randombytes_uniform((uint32_t)i);
        struct dns_mx t = mx[i - 1];
        mx[i - 1] = mx[j];
        mx[j] = t;
    }
}

/* sl_dns_order_mx - RFC 5321 5.1 order: preference, ties at random, no repeats */
size_t sl_dns_order_mx(struct dns_mx *mx, size_t n)
{
    size_t out = 0;

    qsort(mx, n, sizeof *mx, by_pref);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && mx[j].pref == mx[i].pref; j++)
            ;
        shuffle(mx + i, j - i);
    }
    /* A host listed twice keeps its first (best) place. */
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < out && !seen; k++)
            seen = strcmp(mx[k].name, mx[i].name) == 0;
        if (!seen)
            mx[out++] = mx[i];
    }
    return out;
}
