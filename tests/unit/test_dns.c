/*
 * test_dns.c - the DNS module's pure parts: host[:port] texts (dns_server,
 * route), IP literals, address formatting, the order of MX hosts, the
 * address limits; sl_dns_open's refusals; which resolvers' AD bit is
 * believed.
 *
 * The network side (MX, A, AAAA, timeouts) runs against a real nsd in
 * tests/e2e/resolve.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "dns/dns_impl.h"

/* A host[:port] text and what it splits into ("" host: refused). */
static const struct {
    const char *text, *host;
    int port;
} hostports[] = {
    {"mx.example.com", "mx.example.com", 0},
    {"mx.example.com:2525", "mx.example.com", 2525},
    {"127.0.0.1", "127.0.0.1", 0},
    {"127.0.0.1:53", "127.0.0.1", 53},
    {"[::1]:5353", "::1", 5353},
    {"[::1]", "::1", 0},
    {"::1", "::1", 0},
    {"2001:db8::25", "2001:db8::25", 0},
    {"host:", "", 0},
    {"host:0", "", 0},
    {"host:65536", "", 0},
    {"host:25x", "", 0},
    {":25", "", 0},
    {"[::1", "", 0},
    {"[]:25", "", 0},
    {"[::1]25", "", 0},
    {"", "", 0},
};

static void split_hostport(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hostports / sizeof hostports[0]; i++) {
        char host[64] = "";
        int port = -1;
        bool ok = sl_dns_split_hostport(hostports[i].text, host, sizeof host, &port);

        if (hostports[i].host[0] == '\0') {
            if (ok)
                fail_msg("%s was accepted", hostports[i].text);
            continue;
        }
        if (!ok)
            fail_msg("%s was refused", hostports[i].text);
        assert_string_equal(host, hostports[i].host);
        assert_int_equal(port, hostports[i].port);
    }
}

static void split_hostport_too_long(void **state)
{
    char host[8];
    int port;

    (void)state;
    assert_false(sl_dns_split_hostport("a-long-host-name", host, sizeof host, &port));
}

static void literal_and_format(void **state)
{
    struct sockaddr_storage ss;
    char buf[64];

    (void)state;
    assert_int_equal(sl_dns_literal("127.0.1.5", 25, &ss), sizeof(struct sockaddr_in));
    sl_dns_format_addr(&ss, buf, sizeof buf, true);
    assert_string_equal(buf, "127.0.1.5:25");
    sl_dns_format_addr(&ss, buf, sizeof buf, false);
    assert_string_equal(buf, "127.0.1.5");
    assert_int_equal(sl_dns_literal("::1", 2525, &ss), sizeof(struct sockaddr_in6));
    sl_dns_format_addr(&ss, buf, sizeof buf, true);
    assert_string_equal(buf, "[::1]:2525");
    sl_dns_format_addr(&ss, buf, sizeof buf, false);
    assert_string_equal(buf, "::1");
    assert_int_equal(sl_dns_literal("mx.example.com", 25, &ss), 0);
    assert_int_equal(sl_dns_literal("127.0.1", 25, &ss), 0);
}

static void add_addr_limits(void **state)
{
    struct sl_dns_host h = {0};
    struct sockaddr_storage ss;
    char ip[32];

    (void)state;
    for (int i = 1; i <= 12; i++) {
        snprintf(ip, sizeof ip, "127.0.1.%d", i);
        sl_dns_add_addr(&h, &ss, sl_dns_literal(ip, 25, &ss), 3);
        sl_dns_add_addr(&h, &ss, sl_dns_literal(ip, 25, &ss), 3); /* a repeat */
    }
    assert_int_equal(h.naddr, 3);
    sl_dns_format_addr(&h.addr[2], ip, sizeof ip, false);
    assert_string_equal(ip, "127.0.1.3");
    /* A limit above the array's size is capped by it. */
    for (int i = 1; i <= 12; i++) {
        snprintf(ip, sizeof ip, "127.0.1.%d", i);
        sl_dns_add_addr(&h, &ss, sl_dns_literal(ip, 25, &ss), 100);
    }
    assert_int_equal(h.naddr, SL_DNS_ADDRS_MAX);
}

/* fill - MX records from "pref name" pairs */
static size_t fill(struct dns_mx *mx, const int *pref, const char *const *name, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mx[i].pref = pref[i];
        snprintf(mx[i].name, sizeof mx[i].name, "%s", name[i]);
    }
    return n;
}

static void order_mx(void **state)
{
    static const int pref[] = {30, 10, 20, 20, 10, 40};
    static const char *const name[] = {"c", "a", "b1", "b2", "a", "d"};
    struct dns_mx mx[6];
    bool b1_first = false, b2_first = false;

    (void)state;
    for (int run = 0; run < 200 && !(b1_first && b2_first); run++) {
        size_t n = sl_dns_order_mx(mx, fill(mx, pref, name, 6));

        assert_int_equal(n, 5); /* "a" twice counts once */
        assert_string_equal(mx[0].name, "a");
        assert_int_equal(mx[0].pref, 10);
        assert_int_equal(mx[1].pref, 20);
        assert_int_equal(mx[2].pref, 20);
        assert_string_equal(mx[3].name, "c");
        assert_string_equal(mx[4].name, "d");
        b1_first = b1_first || strcmp(mx[1].name, "b1") == 0;
        b2_first = b2_first || strcmp(mx[1].name, "b2") == 0;
    }
    assert_true(b1_first && b2_first);
}

static void open_refuses(void **state)
{
    char err[200];

    (void)state;
    assert_null(sl_dns_open("dns.example.com:53", 1000, err, sizeof err));
    assert_string_equal(err, "dns_server dns.example.com:53 is not IP[:port]");
    assert_null(sl_dns_open("127.0.0.1:99999", 1000, err, sizeof err));
}

static void open_close(void **state)
{
    char err[200];
    struct sl_dns *d = sl_dns_open("[::1]:5353", 500, err, sizeof err);

    (void)state;
    assert_non_null(d);
    assert_string_equal(d->label, "[::1]:5353");
    assert_int_equal(d->timeout_ms, 500);
    sl_dns_close(d);
    d = sl_dns_open("127.0.0.1", 0, err, sizeof err);
    assert_non_null(d);
    assert_string_equal(d->label, "127.0.0.1:53");
    assert_int_equal(d->timeout_ms, SL_DNS_TIMEOUT_MS);
    sl_dns_close(d);
    sl_dns_close(NULL);
}

/* Only a resolver on this machine is trusted with the AD bit (DANE). */
static void trusts_ad_only_loopback(void **state)
{
    static const struct {
        const char *server;
        bool trusted;
    } cases[] = {
        {"127.0.0.1", true},
        {"127.0.2.53:5353", true},
        {"127.255.255.254", true},
        {"[::1]:53", true},
        {"::1", true},
        {"10.0.0.53", false},
        {"128.0.0.1", false},
        {"126.255.255.255", false},
        {"[::2]:53", false},
        {"2001:db8::53", false},
        {"::ffff:127.0.0.1", false},
    };
    char err[200];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sl_dns *d = sl_dns_open(cases[i].server, 500, err, sizeof err);

        assert_non_null(d);
        if (sl_dns_trusts_ad(d) != cases[i].trusted)
            fail_msg("%s: trusts_ad is %d", cases[i].server, !cases[i].trusted);
        sl_dns_close(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_hostport),     cmocka_unit_test(split_hostport_too_long),
        cmocka_unit_test(literal_and_format), cmocka_unit_test(add_addr_limits),
        cmocka_unit_test(order_mx),           cmocka_unit_test(open_refuses),
        cmocka_unit_test(open_close),         cmocka_unit_test(trusts_ad_only_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
