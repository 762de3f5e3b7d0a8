/*
 * fuzz_dns.c - fuzz target "dns": DNS answers as wire bytes.
 *
 * The input is one DNS message as a server sends it.  ldns turns it into a
 * packet (ldns_wire2pkt, as the resolver does with a reply); an input ldns
 * refuses goes no further, as a reply would not.  The packet is then handed to
 * every reader of the DNS module (dns_impl.h) as if it answered each kind of
 * question a worker asks: MX (the hosts in order, each with its addresses
 * from the additional section, as sl_dns_resolve takes them), A and AAAA (as
 * asked for one host), the CNAME chain from the question's name, TLSA (DANE)
 * and TXT, whose records then go to the MTA-STS record parser as sl_sts_get
 * hands them.
 * Promises checked: names are lower-case host names without a final dot;
 * hosts and addresses stay within their limits; a TLSA record's data fits its
 * array; TXT strings are printable and NUL-terminated.
 * Concurrency: one thread.  Trust boundary: the reply is the network's.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dns/dns_impl.h"
#include "tls/mta_sts_impl.h"
#include "util/sl_msg.h"
#include "support.h"

#define TXT_MAX 8 /* as many TXT records as sl_sts_get asks for */

/* check_name - a host name as sl_dns_rdf_name promises it */
static void check_name(const char *s)
{
    size_t n = strlen(s);

    FUZZ_CHECK(n > 0 && n < 256 && s[n - 1] != '.');
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(!isupper((unsigned char)s[i]) && s[i] > ' ' && s[i] < 0x7f);
}

/* check_host - addresses within the limit, each of its family's size */
static void check_host(const struct sl_dns_host *h, size_t limit)
{
    FUZZ_CHECK(h->naddr <= limit && h->naddr <= SL_DNS_ADDRS_MAX);
    for (size_t i = 0; i < h->naddr; i++)
        FUZZ_CHECK(
            (h->addr[i].ss_family == AF_INET && h->addrlen[i] == sizeof(struct sockaddr_in)) ||
            (h->addr[i].ss_family == AF_INET6 && h->addrlen[i] == sizeof(struct sockaddr_in6)));
}

/* as_mx - the answer to an MX question: hosts in order, addresses from the additional
 * section (sl_dns_resolve's walk without the questions it would ask next) */
static void as_mx(const ldns_pkt *pkt)
{
    size_t n, nulls;
    unsigned ttl;
    struct dns_mx *mx = sl_dns_read_mx(pkt, &n, &nulls, &ttl);
    struct sl_dns_answer a;

    memset(&a, 0, sizeof a);
    FUZZ_CHECK(n + nulls <= ldns_rr_list_rr_count(ldns_pkt_answer(pkt)));
    n = sl_dns_order_mx(mx, n);
    for (size_t i = 0; i < n; i++) {
        check_name(mx[i].name);
        FUZZ_CHECK(i == 0 || mx[i - 1].pref <= mx[i].pref);
    }
    for (size_t i = 0; i < n && a.nhosts < SL_DNS_HOSTS_MAX; i++) {
        struct sl_dns_host *h = &a.host[a.nhosts];
        memcpy(h->name, mx[i].name, sizeof h->name);
        h->pref = mx[i].pref;
        sl_dns_take_addrs(ldns_pkt_additional(pkt), h->name, LDNS_RR_TYPE_A, 25, h, 2);
        sl_dns_take_addrs(ldns_pkt_additional(pkt), h->name, LDNS_RR_TYPE_AAAA, 25, h, 4);
        check_host(h, 4);
        if (h->naddr > 0)
            a.nhosts++;
    }
    free(mx);
}

/* as_addrs - the answer to A and AAAA questions of one host */
static void as_addrs(const ldns_pkt *pkt)
{
    struct sl_dns_host h;

    memset(&h, 0, sizeof h);
    sl_dns_take_addrs(ldns_pkt_answer(pkt), NULL, LDNS_RR_TYPE_A, 25, &h, SL_DNS_ADDRS_MAX);
    sl_dns_take_addrs(ldns_pkt_answer(pkt), NULL, LDNS_RR_TYPE_AAAA, 25, &h, SL_DNS_ADDRS_MAX);
    check_host(&h, SL_DNS_ADDRS_MAX);
}

/* as_cname - where the chain from the question's name leads */
static void as_cname(const ldns_pkt *pkt)
{
    const ldns_rr_list *q = ldns_pkt_question(pkt);
    char name[256], target[256];

    if (ldns_rr_list_rr_count(q) < 1 ||
        !sl_dns_rdf_name(ldns_rr_owner(ldns_rr_list_rr(q, 0)), name, sizeof name))
        return;
    check_name(name);
    if (sl_dns_cname_end(pkt, name, target, sizeof target))
        check_name(target);
}

/* as_tlsa - the answer to a TLSA question */
static void as_tlsa(const ldns_pkt *pkt)
{
    struct sl_tlsa_answer a;

    memset(&a, 0, sizeof a);
    a.ttl = 60;
    sl_dns_take_tlsa(pkt, &a);
    FUZZ_CHECK(a.n <= SL_TLSA_MAX);
    for (size_t i = 0; i < a.n; i++)
        FUZZ_CHECK(a.rec[i].len > 0 && a.rec[i].len <= SL_TLSA_DATA_MAX);
}

/* as_txt - the answer to the _mta-sts TXT question, and the policy id it gives */
static void as_txt(const ldns_pkt *pkt)
{
    char txt[TXT_MAX][SL_DNS_TXT_MAX], id[33], err[256];
    size_t n = sl_dns_take_txt(pkt, txt, TXT_MAX);

    FUZZ_CHECK(n <= TXT_MAX);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(memchr(txt[i], '\0', SL_DNS_TXT_MAX) != NULL);
        for (const char *p = txt[i]; *p != '\0'; p++)
            FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
    }
    if (sl_sts_txt_id((const char(*)[SL_DNS_TXT_MAX])txt, n, id, err, sizeof err) == 1)
        FUZZ_CHECK(strlen(id) >= 1 && strlen(id) <= 32);
}

/* LLVMFuzzerInitialize - once per process: libsodium for the MX shuffle, quiet logs */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0) /* sl_dns_order_mx shuffles with it */
        abort();
    sl_msg_set_level(SL_MSG_FATAL); /* skipped records are logged at debug level */
    return 0;
}

/* LLVMFuzzerTestOneInput - one DNS message: parse it, then read it as every kind of answer */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ldns_pkt *pkt = NULL;

    if (ldns_wire2pkt(&pkt, data, size) != LDNS_STATUS_OK || pkt == NULL)
        return 0;
    as_mx(pkt);
    as_addrs(pkt);
    as_cname(pkt);
    as_tlsa(pkt);
    as_txt(pkt);
    ldns_pkt_free(pkt);
    return 0;
}
