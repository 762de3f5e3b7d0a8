/*
 * test_config.c - the configuration module: option table, value parsing,
 * loading and validation (every error as FILE:LINE), and resolution along the
 * chains of semantics.md, with the seeds' worked examples reproduced exactly.
 *
 * Each test loads its own text with sl_config_load_string (one with a real
 * file) and frees it, so the suite runs clean under AddressSanitizer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/sl_config.h"
#include "config/sl_config_lint.h"
#include "config/sl_limits.h"
#include "config/sl_listener.h"
#include "shm/sl_shm.h"

#define NAME "t.ini"

/* starts - a diagnostic begins with prefix */
static bool starts(const char *line, const char *prefix)
{
    return strncmp(line, prefix, strlen(prefix)) == 0;
}

/* load - a config that must load; prints the errors if it does not */
static struct sl_config *load(const char *text)
{
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load_string(NAME, text, &d);

    for (size_t i = 0; i < d.n; i++)
        fprintf(stderr, "unexpected: %s\n", d.lines[i]);
    assert_int_equal(d.n, 0);
    assert_non_null(cfg);
    sl_diag_free(&d);
    return cfg;
}

/* expect_error - loading text fails with a line that starts with where and contains phrase */
static void expect_error(const char *text, const char *where, const char *phrase)
{
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load_string(NAME, text, &d);
    bool found = false;

    assert_null(cfg);
    assert_true(d.n > 0);
    for (size_t i = 0; i < d.n; i++)
        found |=
            strncmp(d.lines[i], where, strlen(where)) == 0 && strstr(d.lines[i], phrase) != NULL;
    if (!found)
        for (size_t i = 0; i < d.n; i++)
            fprintf(stderr, "got: %s (wanted %s ... %s)\n", d.lines[i], where, phrase);
    assert_true(found);
    sl_diag_free(&d);
}

/* eval - resolve opt, asserting that the ref is accepted */
static struct sl_value eval(const struct sl_config *cfg, enum sl_opt opt, const char *binding,
                            const char *group, const char *domain, const char *host,
                            const struct sl_section **from)
{
    struct sl_scope_ref ref = {binding, group, domain, host};
    struct sl_value v;
    char err[256] = "";

    if (!sl_config_eval(cfg, opt, &ref, &v, from, err, sizeof err))
        fail_msg("eval failed: %s", err);
    return v;
}

/* num - the number of opt in a scope (-1 when unset, as sl_config_num says) */
static int64_t num(const struct sl_config *cfg, enum sl_opt opt, const char *binding,
                   const char *domain, const char *host)
{
    struct sl_scope_ref ref = {binding, NULL, domain, host};
    return sl_config_num(cfg, opt, &ref);
}

#define MOC SL_OPT_MAX_OUTBOUND_CONNECTIONS

/* ---- the option table ---- */

static void test_option_table(void **state)
{
    char buf[64];
    (void)state;
    for (int i = 0; i < SL_OPT__COUNT; i++) {
        const struct sl_optdef *def = sl_opt_def((enum sl_opt)i);
        struct sl_value v;
        char err[256];
        assert_non_null(def->name);
        assert_non_null(def->help);
        assert_true(def->scopes != 0);
        assert_int_equal(sl_opt_lookup(def->name), i);
        if (def->def != NULL && !sl_value_parse(def, def->def, &v, err, sizeof err))
            fail_msg("default of %s does not parse: %s", def->name, err);
    }
    assert_int_equal(sl_opt_lookup("MAX_Outbound_Connections"), MOC);
    assert_int_equal(sl_opt_lookup("mailfrom_timeout"), SL_OPT_MAIL_FROM_TIMEOUT);
    assert_int_equal(sl_opt_lookup("RcptTo_Timeout"), SL_OPT_RCPT_TO_TIMEOUT);
    assert_int_equal(sl_opt_lookup("body_timeout"), SL_OPT_DATA_TIMEOUT);
    assert_int_equal(sl_opt_lookup("no_such_option"), -1);
    assert_null(sl_opt_def(SL_OPT__COUNT));
    sl_opt_display(MOC, buf, sizeof buf);
    assert_string_equal(buf, "Max_Outbound_Connections");
    sl_opt_display(SL_OPT_MTA_STS_TIMEOUT, buf, sizeof buf);
    assert_string_equal(buf, "Mta_Sts_Timeout");
    sl_opt_display(MOC, buf, 4);
    assert_string_equal(buf, "Max");
    assert_string_equal(sl_scope_name(SL_SC_GROUP_DOMAIN), "binding_group::domain");
    assert_string_equal(sl_opt_name(SL_OPT_SHM_CAPACITY), "shm_capacity");
}

/* ---- value parsing ---- */

static const struct {
    enum sl_opt opt;
    const char *text;
    int64_t num;
} good_values[] = {
    {MOC, "-1", -1},
    {MOC, "0", 0},
    {MOC, "15", 15},
    {MOC, "2147483647", 2147483647},
    {SL_OPT_MX_LIMIT, "1", 1},
    {SL_OPT_MX_LIMIT, "64", 64},
    {SL_OPT_MAX_DELIVERIES_PER_CONNECTION, "0", 0},
    {SL_OPT_SMTP_PORT, "2525", 2525},
    {SL_OPT_WORKERS, "1024", 1024},
    {SL_OPT_SHM_CAPACITY, "64", 64},
    {SL_OPT_CONNECT_TIMEOUT, "500ms", 500},
    {SL_OPT_CONNECT_TIMEOUT, "30s", 30000},
    {SL_OPT_CONNECT_TIMEOUT, "3m", 180000},
    {SL_OPT_CONNECT_TIMEOUT, "1h", 3600000},
    {SL_OPT_CONNECT_TIMEOUT, "2d", 172800000},
    {SL_OPT_CONNECT_TIMEOUT, "45", 45000},
    {SL_OPT_CONNECT_TIMEOUT, "10 S", 10000},
    {SL_OPT_MAX_RETRIES, "auto", -1},
    {SL_OPT_MAX_RETRIES, "None", 0},
    {SL_OPT_MAX_RETRIES, "12", 12},
    {SL_OPT_TLS, "disabled", SL_TLS_DISABLED},
    {SL_OPT_TLS, "REQUIRED", SL_TLS_REQUIRED},
    {SL_OPT_TLS, "verify", SL_TLS_VERIFY},
    {SL_OPT_LOG_LEVEL, "warning", 2},
    {SL_OPT_BIND_ADDRESS, "10.10.10.10", 0},
    {SL_OPT_BIND_ADDRESS, "2001:db8::1", 0},
    {SL_OPT_ROUTE, "mx.example.com", 0},
    {SL_OPT_ROUTE, "mx.example.com:2525", 2525},
    {SL_OPT_ROUTE, "127.0.0.1:25", 25},
    {SL_OPT_ROUTE, "[2001:db8::1]:587", 587},
    {SL_OPT_ROUTE, "2001:db8::1", 0},
    {SL_OPT_DNS_SERVER, "127.0.0.1", 0},
    {SL_OPT_DNS_SERVER, "[::1]:5353", 5353},
    {SL_OPT_SPOOL_DIR, "/var/spool/x", 0},
    {SL_OPT_SHM_NAME, "/sluice-test.1", 0},
    {SL_OPT_BINDING_GROUP, "group1", 0},
    {SL_OPT_EHLO_HOSTNAME, "mail.example.com", 0},
    {SL_OPT_USER, "sluice", 0},
};

static void test_values_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good_values / sizeof good_values[0]; i++) {
        struct sl_value v;
        char err[256] = "";
        if (!sl_value_parse(sl_opt_def(good_values[i].opt), good_values[i].text, &v, err,
                            sizeof err))
            fail_msg("%s = %s refused: %s", sl_opt_name(good_values[i].opt), good_values[i].text,
                     err);
        assert_true(v.set);
        assert_int_equal(v.num, good_values[i].num);
    }
}

static const struct {
    enum sl_opt opt;
    const char *text;
    const char *phrase;
} bad_values[] = {
    {MOC, "-2", "expected -1 (no limit), 0 (paused)"},
    {MOC, "2147483648", "expected -1"},
    {MOC, "99999999999999999999999", "expected -1"},
    {MOC, "12abc", "expected -1"},
    {MOC, "+5", "expected -1"},
    {MOC, " 5", "expected -1"},
    {MOC, "", "empty value"},
    {SL_OPT_MX_LIMIT, "0", "from 1 to 64"},
    {SL_OPT_MX_LIMIT, "65", "from 1 to 64"},
    {SL_OPT_SMTP_PORT, "65536", "from 1 to 65535"},
    {SL_OPT_WORKERS, "-1", "from 1 to 1024"},
    {SL_OPT_SHM_CAPACITY, "63", "from 64 to 16777216"},
    {SL_OPT_CONNECT_TIMEOUT, "0", "expected a duration above 0"},
    {SL_OPT_CONNECT_TIMEOUT, "0s", "expected a duration"},
    {SL_OPT_CONNECT_TIMEOUT, "-5s", "expected a duration"},
    {SL_OPT_CONNECT_TIMEOUT, "5w", "expected a duration"},
    {SL_OPT_CONNECT_TIMEOUT, "1.5h", "expected a duration"},
    {SL_OPT_CONNECT_TIMEOUT, "s", "expected a duration"},
    {SL_OPT_CONNECT_TIMEOUT, "24856d", "at most 24855d"},
    {SL_OPT_CONNECT_TIMEOUT, "99999999999999999999d", "expected a duration"},
    {SL_OPT_MAX_RETRIES, "sometimes", "expected auto, none or"},
    {SL_OPT_MAX_RETRIES, "-1", "expected auto, none or"},
    {SL_OPT_TLS, "maybe", "disabled | opportunistic | required | verify"},
    {SL_OPT_BIND_ADDRESS, "10.10.10", "IPv4 or IPv6"},
    {SL_OPT_BIND_ADDRESS, "example.com", "IPv4 or IPv6"},
    {SL_OPT_ROUTE, "mx.example.com:0", "host[:port]"},
    {SL_OPT_ROUTE, "mx.example.com:65536", "host[:port]"},
    {SL_OPT_ROUTE, "mx.example.com:", "host[:port]"},
    {SL_OPT_ROUTE, "[2001:db8::1", "host[:port]"},
    {SL_OPT_ROUTE, "[10.0.0.1]:25", "host[:port]"},
    {SL_OPT_ROUTE, "bad host:25", "host[:port]"},
    {SL_OPT_DNS_SERVER, "dns.example.com", "an IP address"},
    {SL_OPT_SPOOL_DIR, "var/spool", "an absolute path"},
    {SL_OPT_SHM_NAME, "sluice", "shared-memory name"},
    {SL_OPT_SHM_NAME, "/a/b", "shared-memory name"},
    {SL_OPT_SHM_NAME, "/", "shared-memory name"},
    {SL_OPT_BINDING_GROUP, "a group", "a name of up to 64"},
    {SL_OPT_EHLO_HOSTNAME, "-bad.example", "a host name"},
    {SL_OPT_EHLO_HOSTNAME, "a..b", "a host name"},
    {SL_OPT_USER, "-root", "a name"},
};

static void test_values_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        struct sl_value v;
        char err[256] = "";
        if (sl_value_parse(sl_opt_def(bad_values[i].opt), bad_values[i].text, &v, err, sizeof err))
            fail_msg("%s = \"%s\" accepted", sl_opt_name(bad_values[i].opt), bad_values[i].text);
        assert_false(v.set);
        if (strstr(err, bad_values[i].phrase) == NULL)
            fail_msg("%s = \"%s\": \"%s\" lacks \"%s\"", sl_opt_name(bad_values[i].opt),
                     bad_values[i].text, err, bad_values[i].phrase);
    }
}

static void test_values_long(void **state)
{
    char shm[300], err[256];
    struct sl_value v;
    (void)state;
    memset(shm, 'x', sizeof shm - 1);
    shm[0] = '/';
    shm[250] = '\0'; /* 250 characters: the longest accepted */
    assert_true(sl_value_parse(sl_opt_def(SL_OPT_SHM_NAME), shm, &v, err, sizeof err));
    shm[250] = 'x';
    shm[251] = '\0';
    assert_false(sl_value_parse(sl_opt_def(SL_OPT_SHM_NAME), shm, &v, err, sizeof err));
}

static void test_bool(void **state)
{
    static const struct sl_optdef booldef = {.name = "flag", .type = SL_VT_BOOL};
    static const char *const yes[] = {"true", "YES", "on", "1"}, *const no[] = {"false", "No",
                                                                                "off", "0"};
    struct sl_value v;
    char err[128];
    (void)state;
    for (size_t i = 0; i < 4; i++) {
        assert_true(sl_value_parse(&booldef, yes[i], &v, err, sizeof err));
        assert_int_equal(v.num, 1);
        assert_true(sl_value_parse(&booldef, no[i], &v, err, sizeof err));
        assert_int_equal(v.num, 0);
    }
    assert_false(sl_value_parse(&booldef, "2", &v, err, sizeof err));
    assert_non_null(strstr(err, "expected true or false"));
}

static void test_value_format(void **state)
{
    static const struct {
        enum sl_opt opt;
        int64_t num;
        const char *text;
    } cases[] = {
        {SL_OPT_DATA_TIMEOUT, 180000, "3m"},
        {SL_OPT_DATA_TIMEOUT, 90000, "90s"},
        {SL_OPT_DATA_TIMEOUT, 1500, "1500ms"},
        {SL_OPT_DATA_TIMEOUT, 86400000, "1d"},
        {SL_OPT_DATA_TIMEOUT, 7200000, "2h"},
        {SL_OPT_DATA_TIMEOUT, 90000000, "25h"},
        {MOC, -1, "-1"},
        {MOC, 15, "15"},
        {SL_OPT_MAX_RETRIES, -1, "auto"},
        {SL_OPT_MAX_RETRIES, 0, "none"},
        {SL_OPT_MAX_RETRIES, 3, "3"},
        {SL_OPT_TLS, SL_TLS_REQUIRED, "required"},
        {SL_OPT_LOG_LEVEL, 0, "debug"},
    };
    char buf[64];
    struct sl_value v = {.set = true};
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        v.num = cases[i].num;
        sl_value_format(cases[i].opt, &v, buf, sizeof buf);
        assert_string_equal(buf, cases[i].text);
    }
    v.str = "/var/spool/x";
    sl_value_format(SL_OPT_SPOOL_DIR, &v, buf, sizeof buf);
    assert_string_equal(buf, "/var/spool/x");
    v.set = false;
    sl_value_format(MOC, &v, buf, sizeof buf);
    assert_string_equal(buf, "unset");
}

/* ---- the seeds' worked examples ---- */

/* Seed 000, in sluice's INI: global 30, group1 5, binding example (in group1) 15. */
static const char seed000[] = "Max_Outbound_Connections = 30\n"
                              "\n"
                              "[domain \"example.com\"]\n"
                              "[binding_group \"group1\"]\n"
                              "Max_Outbound_Connections = 5\n"
                              "[binding \"example\"]\n"
                              "binding_group = group1\n"
                              "Bind_Address = \"10.10.10.10\"\n"
                              "Max_Outbound_Connections = 15\n"
                              "[binding \"example\" domain \"example.com\"]\n"
                              "; some other options\n"
                              "[binding \"other\"]\n"
                              "binding_group = group1\n"
                              "[binding \"outside\"]\n";

static void test_seed000(void **state)
{
    struct sl_config *cfg = load(seed000);
    const struct sl_section *from;
    struct sl_value v;
    (void)state;
    v = eval(cfg, MOC, "example", NULL, "example.com", NULL, &from);
    assert_int_equal(v.num, 15);
    assert_int_equal(from->scope, SL_SC_BINDING);
    assert_int_equal(v.line, 9);
    v = eval(cfg, MOC, "other", NULL, "example.com", NULL, &from);
    assert_int_equal(v.num, 5);
    assert_int_equal(from->scope, SL_SC_BINDING_GROUP);
    v = eval(cfg, MOC, "outside", NULL, "example.com", NULL, &from);
    assert_int_equal(v.num, 30);
    assert_int_equal(from->scope, SL_SC_GLOBAL);
    assert_int_equal(num(cfg, MOC, "default", "example.com", NULL), 30);
    assert_int_equal(num(cfg, MOC, NULL, NULL, NULL), 30);
    /* the group is also taken from the ref when no binding is named */
    v = eval(cfg, MOC, NULL, "group1", "example.com", NULL, &from);
    assert_int_equal(v.num, 5);
    assert_string_equal(sl_config_binding(cfg, "example")->group, "group1");
    assert_string_equal(sl_config_str(cfg, SL_OPT_BIND_ADDRESS,
                                      &(struct sl_scope_ref){"example", NULL, NULL, NULL}),
                        "10.10.10.10");
    sl_config_free(cfg);
}

static void test_yahoofriends(void **state)
{
    struct sl_config *cfg = load("[binding \"yahoofriends\"]\n"
                                 "[binding \"yahoofriends\" domain \"yahoo.com\"]\n"
                                 "max_outbound_connections = 30\n"
                                 "[binding \"other\"]\n"
                                 "[domain \"yahoo.com\"]\n"
                                 "max_outbound_connections = 10\n");
    (void)state;
    assert_int_equal(num(cfg, MOC, "yahoofriends", "yahoo.com", NULL), 30);
    assert_int_equal(num(cfg, MOC, "other", "yahoo.com", NULL), 10);
    assert_int_equal(num(cfg, MOC, "default", "Yahoo.COM.", NULL), 10);
    assert_int_equal(num(cfg, MOC, "yahoofriends", "gmail.com", NULL), 32);
    assert_int_equal(num(cfg, MOC, "other", "gmail.com", NULL), 32);
    sl_config_free(cfg);
}

static void test_host_scope(void **state)
{
    struct sl_config *cfg = load("Max_Outbound_Connections = 32\n"
                                 "[host \"example.com\"]\n"
                                 "[host \"mx.example.net\"]\nmax_outbound_connections = 4\n"
                                 "scope_max_outbound_connections = 9\n"
                                 "[binding \"b\"]\nbinding_group = g\n[binding_group \"g\"]\n"
                                 "max_outbound_connections = 50\n"
                                 "[binding_group \"g\" host \"mx.example.net\"]\n"
                                 "max_outbound_connections = 3\n"
                                 "[binding \"b\" host \"mx.example.net\"]\n"
                                 "max_outbound_connections = 2\n");
    const struct sl_section *from = (void *)1;
    struct sl_value v;
    (void)state;
    /* seed 000: config eval max_outbound_connections / host example.com ... */
    v = eval(cfg, MOC, NULL, NULL, NULL, NULL, &from);
    assert_int_equal(v.num, 32);
    v = eval(cfg, MOC, NULL, NULL, NULL, "example.com", &from);
    assert_true(v.set);
    assert_int_equal(v.num, -1);
    assert_null(from);
    /* the host chain: binding::host > binding_group::host > host, never the general one */
    assert_int_equal(num(cfg, MOC, "b", NULL, "mx.example.net"), 2);
    assert_int_equal(num(cfg, MOC, "b", "x.com", "MX.example.net."), 2);
    v = eval(cfg, MOC, NULL, "g", NULL, "mx.example.net", NULL);
    assert_int_equal(v.num, 3);
    assert_int_equal(num(cfg, MOC, "default", NULL, "mx.example.net"), 4);
    assert_int_equal(num(cfg, MOC, "b", NULL, "example.com"), -1);
    assert_int_equal(num(cfg, MOC, "b", NULL, NULL), 50);
    /* scope_max in a host: from [host] only; unset elsewhere (no general default either) */
    assert_int_equal(num(cfg, SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS, "b", NULL, "mx.example.net"),
                     9);
    v = eval(cfg, SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS, "b", NULL, NULL, "example.com", NULL);
    assert_false(v.set);
    /* options not valid in a host section ignore the host */
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, "b", NULL, "mx.example.net"), 7);
    sl_config_free(cfg);
}

/* Seed 002: a regex stanza applies to each domain it matches. */
static void test_regex(void **state)
{
    struct sl_config *cfg = load("[domain \"/^(aol|yahoo)\\.com$/\"]\n"
                                 "max_outbound_connections = 5\n");
    (void)state;
    assert_int_equal(num(cfg, MOC, "default", "aol.com", NULL), 5);
    assert_int_equal(num(cfg, MOC, "default", "yahoo.com", NULL), 5);
    assert_int_equal(num(cfg, MOC, "default", "YAHOO.com", NULL), 5);
    assert_int_equal(num(cfg, MOC, "default", "gmail.com", NULL), 32);
    assert_int_equal(num(cfg, MOC, "default", "aol.com.evil", NULL), 32);
    sl_config_free(cfg);
}

static void test_literal_beats_regex(void **state)
{
    struct sl_config *cfg = load("[domain \"/^yahoo\\.com$/\"]\nmax_outbound_connections = 5\n"
                                 "[domain \"yahoo.com\"]\nmax_outbound_connections = 10\n"
                                 "[domain \"/yahoo/\"]\nmx_limit = 4\n");
    (void)state;
    /* literal first, whatever the file order */
    assert_int_equal(num(cfg, MOC, "default", "yahoo.com", NULL), 10);
    /* a literal that does not set the option leaves it to the regexes */
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, "default", "yahoo.com", NULL), 4);
    sl_config_free(cfg);
}

static void test_regex_file_order(void **state)
{
    struct sl_config *cfg = load("[domain \"/\\.example$/\"]\nmx_limit = 2\n"
                                 "[domain \"/^mx[0-9]\\.example$/\"]\nmx_limit = 3\n"
                                 "max_outbound_connections = 8\n"
                                 "[domain \"/example/\"]\nmax_outbound_connections = 9\n");
    (void)state;
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, "default", "mx1.example", NULL), 2);
    /* the first regex matches but does not set it: the next one that does wins */
    assert_int_equal(num(cfg, MOC, "default", "mx1.example", NULL), 8);
    assert_int_equal(num(cfg, MOC, "default", "www.example", NULL), 9);
    sl_config_free(cfg);
}

/* A stanza per domain, by the thousand (found by name, not by a walk): each domain gets its
 * own, whatever the case and final dot asked; a regex still covers what a literal leaves unset
 * and the domains that have no stanza; a binding x domain pair still comes first. */
static void test_many_domains(void **state)
{
    size_t cap = 3000 * 64, len = 0;
    char *text = malloc(cap);
    struct sl_config *cfg;
    char name[64];

    (void)state;
    assert_non_null(text);
    len += (size_t)snprintf(text + len, cap - len,
                            "[domain \"/^d1[0-9]*\\.example$/\"]\n"
                            "mx_limit = 7\nmax_outbound_connections = 1\n"
                            "scope_max_outbound_connections = 6\n");
    for (int i = 0; i < 2000; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "[domain \"d%d.example\"]\nmax_outbound_connections = %d\n%s", i,
                                i + 2, i == 1999 ? "scope_max_outbound_connections = 5\n" : "");
    snprintf(text + len, cap - len,
             "[binding \"b\" domain \"d5.example\"]\n"
             "max_outbound_connections = 99\n[binding \"b\"]\n");
    cfg = load(text);
    free(text);
    for (int i = 0; i < 2000; i += 37) {
        snprintf(name, sizeof name, "d%d.example", i);
        assert_int_equal(num(cfg, MOC, "default", name, NULL), i + 2);
    }
    assert_int_equal(num(cfg, MOC, "default", "D1999.Example.", NULL), 2001);
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, "default", "d15.example", NULL), 7);
    assert_int_equal(num(cfg, MOC, "default", "d15000.example", NULL), 1);
    assert_int_equal(num(cfg, MOC, "default", "d2000x.example", NULL), 32);
    assert_int_equal(num(cfg, MOC, "b", "d5.example", NULL), 99);
    assert_int_equal(num(cfg, MOC, "b", "d6.example", NULL), 8);
    /* the counters' limits: a domain's scope_max by its name, a regex scope's by its text */
    assert_int_equal(sl_limits_for_key(cfg, SL_SCOPE_DOMAIN, "d1999.example", NULL), 5);
    assert_int_equal(sl_limits_for_key(cfg, SL_SCOPE_DOMAIN, "d1998.example", NULL), -1);
    assert_int_equal(sl_limits_for_key(cfg, SL_SCOPE_DOMAIN, "/^d1[0-9]*\\.example$/", NULL), 6);
    sl_config_free(cfg);
}

/* Seed 002: wanadoo and orange share one scope_max stanza. */
static void test_scope_max_regex(void **state)
{
    struct sl_config *cfg = load("[domain \"/^(wanadoo|orange)\\.fr$/\"]\n"
                                 "   scope_max_outbound_connections = 3\n");
    const struct sl_section *a, *b;
    struct sl_value v;
    (void)state;
    v = eval(cfg, SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS, "default", NULL, "wanadoo.fr", NULL, &a);
    assert_int_equal(v.num, 3);
    v = eval(cfg, SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS, "default", NULL, "orange.fr", NULL, &b);
    assert_int_equal(v.num, 3);
    assert_ptr_equal(a, b); /* one section: one counter for both */
    v = eval(cfg, SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS, "default", NULL, "free.fr", NULL, &a);
    assert_false(v.set);
    assert_null(a);
    assert_int_equal(num(cfg, SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS, "default", "free.fr", NULL),
                     -1);
    sl_config_free(cfg);
}

/* Every level of the general chain, removed one at a time from the top. */
static void test_general_chain(void **state)
{
    static const char *const levels[] = {
        "[binding \"b\" domain \"d.com\"]\nmx_limit = 1\n",
        "[binding_group \"g\" domain \"d.com\"]\nmx_limit = 2\n",
        "[binding \"b\"]\nbinding_group = g\nmx_limit = 3\n",
        "[binding_group \"g\"]\nmx_limit = 4\n",
        "[domain \"d.com\"]\nmx_limit = 5\n",
        "[global]\nmx_limit = 6\n",
    };
    /* what must still be declared once the levels above are gone */
    static const char *const decl[] = {
        "", "", "", "[binding \"b\"]\nbinding_group = g\n",
        "[binding \"b\"]\nbinding_group = g\n[binding_group \"g\"]\n"};
    (void)state;
    for (size_t top = 0; top <= 6; top++) {
        char text[2048];
        size_t used = (size_t)snprintf(text, sizeof text, "%s", decl[top < 4 ? top : 4]);
        struct sl_config *cfg;
        for (size_t i = top; i < 6; i++)
            used += (size_t)snprintf(text + used, sizeof text - used, "%s", levels[i]);
        cfg = load(text);
        assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, "b", "d.com", NULL), top < 6 ? (int)top + 1 : 7);
        sl_config_free(cfg);
    }
}

/* Seed 001: binding::host > host > binding::domain > binding > domain > global > -1. */
static void test_cluster_chain(void **state)
{
    static const char *const levels[] = {
        "[binding \"b\" host \"mx.d.com\"]\ncluster_max_outbound_connections = 1\n",
        "[host \"mx.d.com\"]\ncluster_max_outbound_connections = 2\n",
        "[binding \"b\" domain \"d.com\"]\ncluster_max_outbound_connections = 3\n",
        "[binding \"b\"]\ncluster_max_outbound_connections = 4\n",
        "[domain \"d.com\"]\ncluster_max_outbound_connections = 5\n",
        "[global]\ncluster_max_outbound_connections = 6\n",
    };
    (void)state;
    for (size_t top = 0; top <= 6; top++) {
        char text[2048];
        size_t used =
            (size_t)snprintf(text, sizeof text, "%s", top >= 4 ? "[binding \"b\"]\n" : "");
        struct sl_config *cfg;
        for (size_t i = top; i < 6; i++)
            used += (size_t)snprintf(text + used, sizeof text - used, "%s", levels[i]);
        cfg = load(text);
        assert_int_equal(
            num(cfg, SL_OPT_CLUSTER_MAX_OUTBOUND_CONNECTIONS, "b", "d.com", "mx.d.com"),
            top < 6 ? (int)top + 1 : -1);
        /* without a host, the host levels are skipped */
        if (top < 2)
            assert_int_equal(num(cfg, SL_OPT_CLUSTER_MAX_OUTBOUND_CONNECTIONS, "b", "d.com", NULL),
                             3);
        sl_config_free(cfg);
    }
}

/* server_max: binding > binding_group > global > 20000; server_reserve: global only. */
static void test_server_limits(void **state)
{
    struct sl_config *cfg;
    (void)state;
    cfg = load("server_reserve_outbound_connections = 0\nworkers = 8\n"
               "[binding_group \"g\"]\nserver_max_outbound_connections = 100\n"
               "[binding \"a\"]\nbinding_group = g\n"
               "[binding \"b\"]\nbinding_group = g\nserver_max_outbound_connections = 10\n"
               "[binding \"c\"]\n");
    assert_int_equal(num(cfg, SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS, "b", "x.com", NULL), 10);
    assert_int_equal(num(cfg, SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS, "a", "x.com", NULL), 100);
    assert_int_equal(num(cfg, SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS, "c", NULL, NULL), 20000);
    assert_int_equal(num(cfg, SL_OPT_SERVER_RESERVE_OUTBOUND_CONNECTIONS, "a", "x.com", NULL), 0);
    assert_int_equal(num(cfg, SL_OPT_WORKERS, "b", "x.com", "mx.x.com"), 8);
    assert_int_equal(num(cfg, SL_OPT_SHM_CAPACITY, NULL, NULL, NULL), 65536);
    sl_config_free(cfg);
}

/* ---- validation: every error, by its FILE:LINE and a key phrase ---- */

static const struct {
    const char *text, *where, *phrase;
} errors[] = {
    {"[global]\nfoo = 1\n", "t.ini:2: ", "unknown option \"foo\""},
    {"= 5\n", "t.ini:1: ", "missing option name"},
    {"[host \"h.com\"]\nmx_limit = 3\n", "t.ini:2: ",
     "mx_limit is not valid in [host \"h.com\"] (a host section); valid in: global, "
     "binding_group, binding, domain, binding::domain, binding_group::domain"},
    {"[binding \"b\"]\nserver_reserve_outbound_connections = 3\n",
     "t.ini:2: ", "not valid in [binding \"b\"]"},
    {"[binding \"b\"]\nworkers = 3\n", "t.ini:2: ", "workers is not valid in [binding \"b\"]"},
    {"route = mx.example.com\n", "t.ini:1: ", "route is not valid in [global]"},
    {"bind_address = 10.0.0.1\n", "t.ini:1: ", "bind_address is not valid in [global]"},
    {"[binding \"b\"]\n\nscope_max_outbound_connections = 4\n",
     "t.ini:3: ", "use a [binding \"b\" domain \"D\"] section or server_max_outbound_connections"},
    {"[binding_group \"g\"]\nscope_max_outbound_connections = 4\n", "t.ini:2: ",
     "use a [binding_group \"g\" domain \"D\"] section or server_max_outbound_connections"},
    {"[binding_group \"g\"]\n[binding_group \"g\" host \"h.com\"]\nmx_limit = 1\n", "t.ini:3: ",
     "not valid in [binding_group \"g\" host \"h.com\"] (a binding_group::host section)"},
    {"mx_limit = lots\n",
     "t.ini:1: ", "bad value \"lots\" for mx_limit: expected a whole number from 1 to 64"},
    {"max_outbound_connections = -2\n", "t.ini:1: ", "expected -1 (no limit), 0 (paused)"},
    {"connect_timeout = 0\n", "t.ini:1: ", "bad value \"0\" for connect_timeout"},
    {"mx_limit = 2\n\nmx_limit = 3\n", "t.ini:3: ", "duplicate mx_limit (first set on line 1)"},
    {"[domain \"d.com\"]\nmx_limit = 2\n[global]\n[domain \"D.com\"]\nMX_LIMIT = 3\n",
     "t.ini:5: ", "duplicate mx_limit (first set on line 2)"},
    {"data_timeout = 1m\nbody_timeout = 2m\n", "t.ini:2: ", "duplicate data_timeout"},
    {"[binding \"b\"\n", "t.ini:1: ", "malformed section header: missing ']'"},
    {"\n[server \"x\"]\n", "t.ini:2: ",
     "unknown section kind \"server\" (expected global, binding, binding_group, domain, host, "
     "shaping or listener)"},
    {"[domain x.com]\n", "t.ini:1: ", "expected a quoted name after the section keyword"},
    {"[domain \"x.com]\n", "t.ini:1: ", "unterminated quoted name"},
    {"[domain \"x.com\" binding \"b\"]\n",
     "t.ini:1: ", "a pair is binding or binding_group, then domain or host"},
    {"[binding \"b\" domain \"x.com\" host \"h\"]\n", "t.ini:1: ", "at most two scopes"},
    {"[global] x\n", "t.ini:1: ", "unexpected text after ']'"},
    {"[global \"x\"]\n", "t.ini:1: ", "malformed section header"},
    {"[]\n", "t.ini:1: ", "empty section header"},
    {"[binding \"b\"]\nbinding_group = g\n", "t.ini:2: ",
     "binding \"b\" names binding_group \"g\", which has no [binding_group \"g\"] section"},
    {"[binding_group \"g\"]\n[binding \"b\"]\ncluster_max_outbound_connections = 5\n"
     "binding_group = g\n",
     "t.ini:3: ",
     "cluster_max_outbound_connections is not valid in [binding \"b\"]: binding \"b\" belongs to "
     "binding_group \"g\""},
    {"[binding_group \"g\"]\n[binding \"b\"]\nbinding_group = g\n[binding \"b\" host \"h.com\"]\n"
     "cluster_max_outbound_connections = 5\n",
     "t.ini:5: ", "binding \"b\" belongs to binding_group \"g\""},
    {"[binding_group \"g\"]\ncluster_max_outbound_connections = 5\n",
     "t.ini:2: ", "cluster_max_outbound_connections is not valid in [binding_group \"g\"]"},
    {"[binding_group \"g\"]\n[binding_group \"g\" domain \"d.com\"]\n"
     "cluster_max_outbound_connections = 1\n",
     "t.ini:3: ", "not valid in [binding_group \"g\" domain \"d.com\"]"},
    {"[binding \"x\" domain \"d.com\"]\n", "t.ini:1: ",
     "[binding \"x\" domain \"d.com\"]: binding \"x\" is not declared (no [binding \"x\"] "
     "section)"},
    {"\n[binding_group \"g\" host \"h.com\"]\n",
     "t.ini:2: ", "binding_group \"g\" is not declared (no [binding_group \"g\"] section)"},
    {"[domain \"/(a/\"]\n", "t.ini:1: ", "bad regex /(a/: missing closing parenthesis at offset 2"},
    {"[domain \"//\"]\n", "t.ini:1: ", "a regex is written /regex/"},
    {"[host \"/mx/\"]\n", "t.ini:1: ", "not a regex"},
    {"[domain \"exa mple.com\"]\n", "t.ini:1: ", "bad domain name \"exa mple.com\""},
    {"[binding \"a b\"]\n", "t.ini:1: ", "bad binding name \"a b\""},
    {"[global]\njust words\n", "t.ini:2: ", "expected OPTION = VALUE or a [section] header"},
    {"[nope]\nmx_limit = 0\n", "t.ini:2: ", "bad value \"0\" for mx_limit"},
    /* only a regular file: a device such as /dev/zero never ended the check (that one is
     * replayed by tests/e2e/fuzz_regress.sh, under a time limit) */
    {"tls_ca_file = /dev/null\n", "t.ini:1: ", "tls_ca_file /dev/null: not a regular file"},
    {"tls_ca_file = /\n", "t.ini:1: ", "tls_ca_file /: not a regular file"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        expect_error(errors[i].text, errors[i].where, errors[i].phrase);
}

/* Every error is reported, in line order, not just the first. */
static void test_errors_all_collected(void **state)
{
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load_string(NAME,
                                                  "[binding \"b\"]\n"
                                                  "binding_group = nog\n"
                                                  "bogus = 1\n"
                                                  "[host \"h\"]\n"
                                                  "mx_limit = 1\n"
                                                  "[broken\n"
                                                  "tls = maybe\n",
                                                  &d);
    (void)state;
    assert_null(cfg);
    assert_int_equal(d.n, 5);
    assert_true(starts(d.lines[0], "t.ini:2: binding \"b\" names binding_group"));
    assert_string_equal(d.lines[1], "t.ini:3: unknown option \"bogus\"");
    assert_true(starts(d.lines[2], "t.ini:5: mx_limit is not valid"));
    assert_true(starts(d.lines[3], "t.ini:6: unknown section kind \"broken\""));
    assert_true(starts(d.lines[4], "t.ini:7: bad value \"maybe\" for tls"));
    sl_diag_free(&d);
    assert_int_equal(d.n, 0);
}

/* long_line - "    ehlo_hostname = a...a.b...b.c...c\n" of n characters after the indent */
static void long_line(char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, 512, "    ehlo_hostname = ");
    for (size_t i = 0; used - 4 < n; i++)
        buf[used++] = (i == 60 || i == 121) ? '.' : (char)('a' + (i > 60) + (i > 121));
    buf[used++] = '\n';
    buf[used] = '\0';
}

/* inih's 200-byte line: 199 characters after the blanks pass, 200 are refused, never split. */
static void test_long_line(void **state)
{
    char text[512];
    struct sl_config *cfg;
    (void)state;
    long_line(text, 199);
    cfg = load(text);
    assert_int_equal(strlen(sl_config_str(cfg, SL_OPT_EHLO_HOSTNAME, NULL)), 183);
    sl_config_free(cfg);
    long_line(text, 200);
    expect_error(text, "t.ini:1: ", "line too long (200 characters; at most 199 after leading");
    /* a long comment is harmless */
    memset(text, 'x', 400);
    text[0] = '#';
    snprintf(text + 400, sizeof text - 400, "\nmx_limit = 3\n");
    cfg = load(text);
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, NULL, NULL, NULL), 3);
    sl_config_free(cfg);
}

/* ---- the reader's work around inih ---- */

static void test_indented_keys(void **state)
{
    struct sl_config *cfg = load("[global]\n"
                                 "mx_limit = 3\n"
                                 "    retry_interval = 5m\n"
                                 "\tconnect_timeout = 30s ; inline comment\n"
                                 "[domain \"d.com\"]\n"
                                 "  max_outbound_connections = 4\n");
    (void)state;
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, NULL, NULL, NULL), 3);
    assert_int_equal(num(cfg, SL_OPT_RETRY_INTERVAL, NULL, NULL, NULL), 300000);
    assert_int_equal(num(cfg, SL_OPT_CONNECT_TIMEOUT, NULL, NULL, NULL), 30000);
    assert_int_equal(num(cfg, MOC, NULL, "d.com", NULL), 4);
    sl_config_free(cfg);
}

static void test_bracket_in_regex(void **state)
{
    struct sl_config *cfg = load("[domain \"/^mx[0-9]\\.example$/\"] ; a comment\n"
                                 "mx_limit = 3\n"
                                 "[domain \"/^[a-c];?x[]]y$/\"]\n"
                                 "mx_limit = 4\n");
    (void)state;
    assert_int_equal(cfg->nsections, 3);
    assert_string_equal(cfg->sections[1]->domain, "/^mx[0-9]\\.example$/");
    assert_string_equal(cfg->sections[2]->domain, "/^[a-c];?x[]]y$/");
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, NULL, "mx1.example", NULL), 3);
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, NULL, "mx12.example", NULL), 7);
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, NULL, "b;x]y", NULL), 4);
    sl_config_free(cfg);
}

static void test_empty_sections_exist(void **state)
{
    struct sl_config *cfg =
        load("[host \"example.com\"]\n[binding_group \"g\"]\n[domain \"/x/\"]\n"
             "[domain \"a-very-long-domain-name-much-longer-than-fifty-bytes.example.com\"]\n"
             "[binding \"b\"]\nbinding_group = g\n[binding \"b\" host \"mx.example.com\"]\n");
    char buf[256];
    (void)state;
    assert_int_equal(cfg->nsections, 7);
    assert_int_equal(cfg->sections[1]->scope, SL_SC_HOST);
    assert_string_equal(cfg->sections[1]->host, "example.com");
    assert_int_equal(cfg->sections[1]->line, 1);
    assert_int_equal(cfg->sections[2]->scope, SL_SC_BINDING_GROUP);
    assert_non_null(cfg->sections[3]->regex);
    assert_string_equal(cfg->sections[4]->domain,
                        "a-very-long-domain-name-much-longer-than-fifty-bytes.example.com");
    assert_int_equal(cfg->ngroups, 1);
    assert_string_equal(cfg->groups[0], "g");
    sl_section_describe(cfg, cfg->sections[6], buf, sizeof buf);
    assert_string_equal(buf, "[binding \"b\" host \"mx.example.com\"] (t.ini:7)");
    sl_section_describe(cfg, cfg->sections[0], buf, sizeof buf);
    assert_string_equal(buf, "[global] (t.ini)");
    sl_config_free(cfg);
}

static void test_aliases_and_case(void **state)
{
    struct sl_config *cfg = load("[GLOBAL]\nMailFrom_Timeout = 1m\nRCPTTO_TIMEOUT = 2m\n"
                                 "Body_Timeout = \"3m\"\nTLS = Required\n"
                                 "[Binding \"MyBind\" Domain \"Example.COM.\"]\nmx_limit = 2\n"
                                 "[BINDING \"MYBIND\"]\n");
    (void)state;
    assert_int_equal(num(cfg, SL_OPT_MAIL_FROM_TIMEOUT, NULL, NULL, NULL), 60000);
    assert_int_equal(num(cfg, SL_OPT_RCPT_TO_TIMEOUT, NULL, NULL, NULL), 120000);
    assert_int_equal(num(cfg, SL_OPT_DATA_TIMEOUT, NULL, NULL, NULL), 180000);
    assert_int_equal(num(cfg, SL_OPT_TLS, NULL, NULL, NULL), SL_TLS_REQUIRED);
    assert_string_equal(cfg->sections[1]->binding, "mybind");
    assert_string_equal(cfg->sections[1]->domain, "example.com");
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, "mybind", "example.com", NULL), 2);
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, "MyBind", "EXAMPLE.com.", NULL), 2);
    sl_config_free(cfg);
}

static void test_merge_and_syntax(void **state)
{
    struct sl_config *cfg = load("\xEF\xBB\xBFmx_limit = 3\r\n"
                                 "[domain \"d.com\"]\r\nmultihomed_limit = 1\r\n"
                                 "[global]\nspool_dir = \"/srv/spool\"\n"
                                 "[domain \"D.COM.\"]\nsmtp_port = 2525\n"
                                 "route = relay.example.com:2525\n");
    const struct sl_section *from;
    struct sl_value v;
    (void)state;
    assert_int_equal(cfg->nsections, 2);
    assert_int_equal(cfg->sections[0]->line, 4);
    assert_int_equal(cfg->sections[1]->line, 2);
    assert_int_equal(num(cfg, SL_OPT_MX_LIMIT, NULL, NULL, NULL), 3);
    assert_int_equal(num(cfg, SL_OPT_MULTIHOMED_LIMIT, NULL, "d.com", NULL), 1);
    assert_int_equal(num(cfg, SL_OPT_SMTP_PORT, NULL, "d.com", NULL), 2525);
    assert_int_equal(num(cfg, SL_OPT_SMTP_PORT, NULL, "e.com", NULL), 25);
    v = eval(cfg, SL_OPT_ROUTE, NULL, NULL, "d.com", NULL, &from);
    assert_string_equal(v.str, "relay.example.com:2525");
    assert_int_equal(v.num, 2525);
    assert_int_equal(v.line, 8);
    assert_ptr_equal(from, cfg->sections[1]);
    assert_string_equal(sl_config_str(cfg, SL_OPT_SPOOL_DIR, NULL), "/srv/spool");
    assert_null(sl_config_str(cfg, SL_OPT_ROUTE, &(struct sl_scope_ref){.domain = "e.com"}));
    sl_config_free(cfg);
}

static void test_default_binding(void **state)
{
    struct sl_config *cfg = load("");
    (void)state;
    assert_int_equal(cfg->nsections, 1);
    assert_int_equal(cfg->nbindings, 1);
    assert_string_equal(cfg->bindings[0].name, "default");
    assert_null(cfg->bindings[0].group);
    assert_null(cfg->bindings[0].section);
    assert_ptr_equal(sl_config_binding(cfg, "DEFAULT"), &cfg->bindings[0]);
    assert_null(sl_config_binding(cfg, "other"));
    assert_string_equal(sl_config_str(cfg, SL_OPT_SPOOL_DIR, NULL), "/var/spool/sluice");
    assert_string_equal(sl_config_str(cfg, SL_OPT_SHM_NAME, NULL), "/sluice");
    assert_null(sl_config_str(cfg, SL_OPT_EHLO_HOSTNAME, NULL));
    assert_null(sl_config_str(cfg, SL_OPT_DNS_SERVER, NULL));
    assert_int_equal(num(cfg, SL_OPT_DATA_TIMEOUT, "default", "x.com", NULL), 600000);
    assert_int_equal(num(cfg, SL_OPT_IDLE_TIMEOUT, NULL, NULL, NULL), 5000);
    assert_int_equal(num(cfg, SL_OPT_MESSAGE_EXPIRATION, NULL, NULL, NULL), 5 * 86400000LL);
    assert_int_equal(num(cfg, SL_OPT_MAX_RETRIES, NULL, NULL, NULL), -1);
    assert_int_equal(num(cfg, SL_OPT_TLS, NULL, NULL, NULL), SL_TLS_OPPORTUNISTIC);
    sl_config_free(cfg);
    cfg = load("[binding \"default\"]\nbinding_group = g\n[binding_group \"g\"]\n");
    assert_int_equal(cfg->nbindings, 1);
    assert_string_equal(cfg->bindings[0].group, "g");
    assert_non_null(cfg->bindings[0].section);
    sl_config_free(cfg);
}

static void test_eval_refusals(void **state)
{
    struct sl_config *cfg = load(seed000);
    struct sl_scope_ref ref = {0};
    struct sl_value v;
    char err[256];
    (void)state;
    ref.binding = "nobody";
    assert_false(sl_config_eval(cfg, MOC, &ref, &v, NULL, err, sizeof err));
    assert_string_equal(err, "unknown binding \"nobody\"");
    ref = (struct sl_scope_ref){.group = "nogroup"};
    assert_false(sl_config_eval(cfg, MOC, &ref, &v, NULL, err, sizeof err));
    assert_string_equal(err, "unknown binding_group \"nogroup\"");
    ref = (struct sl_scope_ref){.binding = "outside", .group = "group1"};
    assert_false(sl_config_eval(cfg, MOC, &ref, &v, NULL, err, sizeof err));
    assert_string_equal(err, "binding \"outside\" is in no binding_group, not in binding_group "
                             "\"group1\"");
    ref = (struct sl_scope_ref){.binding = "example", .group = "GROUP1", .domain = "example.com"};
    assert_true(sl_config_eval(cfg, MOC, &ref, &v, NULL, err, sizeof err));
    assert_int_equal(v.num, 15);
    assert_false(sl_config_eval(cfg, SL_OPT__COUNT, NULL, &v, NULL, err, sizeof err));
    sl_config_free(cfg);
}

/* ---- the file path ---- */

static void test_load_file(void **state)
{
    char path[] = "/tmp/test_config.XXXXXX";
    int fd = mkstemp(path);
    struct sl_diag d = {0};
    struct sl_config *cfg;
    char want[128];
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, seed000, sizeof seed000 - 1), (ssize_t)(sizeof seed000 - 1));
    cfg = sl_config_load(path, &d);
    assert_non_null(cfg);
    assert_string_equal(cfg->path, path);
    assert_int_equal(num(cfg, MOC, "example", "example.com", NULL), 15);
    assert_int_equal(num(cfg, MOC, "other", "example.com", NULL), 5);
    assert_int_equal(num(cfg, MOC, "outside", "example.com", NULL), 30);
    sl_config_free(cfg);
    /* a NUL byte in the file is an error of its line */
    assert_int_equal(write(fd, "mx_limit = 3\0\n", 14), 14);
    assert_null(sl_config_load(path, &d));
    assert_int_equal(d.n, 1);
    snprintf(want, sizeof want, "%s:15: NUL byte in line", path);
    assert_string_equal(d.lines[0], want);
    sl_diag_free(&d);
    close(fd);
    unlink(path);
    assert_null(sl_config_load(path, &d));
    assert_int_equal(d.n, 1);
    snprintf(want, sizeof want, "%s: cannot read: No such file or directory", path);
    assert_string_equal(d.lines[0], want);
    sl_diag_free(&d);
    assert_null(sl_config_load("/", &d));
    assert_string_equal(d.lines[0], "/: cannot read: not a regular file");
    sl_diag_free(&d);
}

/* The linter's hints: a typo finds its option (aliases too), a word far from every option
 * finds none; a header written without quotes, or Momentum's way, gets its fixed form, and
 * one that cannot be guessed gets none. */
static void test_lint_hints(void **state)
{
    char fix[256];

    (void)state;
    assert_string_equal(sl_config_suggest_option("max_outbound_conections"),
                        "max_outbound_connections");
    assert_string_equal(sl_config_suggest_option("Retry_Intervall"), "retry_interval");
    assert_string_equal(sl_config_suggest_option("mx_limt"), "mx_limit");
    assert_null(sl_config_suggest_option("frobnicate"));
    assert_null(sl_config_suggest_option("x"));
    assert_true(sl_config_header_fix("[binding example]", fix, sizeof fix));
    assert_string_equal(fix, "[binding \"example\"]");
    assert_true(sl_config_header_fix("[Binding_Group g1 Domain \"yahoo.com\"]", fix, sizeof fix));
    assert_string_equal(fix, "[binding_group \"g1\" domain \"yahoo.com\"]");
    assert_true(sl_config_header_fix("Domain aol.com {", fix, sizeof fix));
    assert_string_equal(fix, "[domain \"aol.com\"]");
    assert_true(sl_config_header_fix("[ GLOBAL ]", fix, sizeof fix));
    assert_string_equal(fix, "[global]");
    assert_false(sl_config_header_fix("[domain a.com binding b]", fix, sizeof fix));
    assert_false(sl_config_header_fix("[frob x]", fix, sizeof fix));
    assert_false(sl_config_header_fix("[binding a domain b host c]", fix, sizeof fix));
}

/* The linter's warnings on a config that loads: one per mistake, at its line, in file order;
 * a [binding domain] section beating a [domain] one is meant and not warned about. */
static void test_lint_warnings(void **state)
{
    static const char text[] = "[binding_group \"g\"]\n"             /* 1 */
                               "max_outbound_connections = 5\n"      /* 2 */
                               "[binding \"b1\"]\n"                  /* 3 */
                               "binding_group = g\n"                 /* 4 */
                               "bind_address = 127.0.0.2\n"          /* 5 */
                               "[binding \"b2\"]\n"                  /* 6 */
                               "bind_address = 127.0.0.2\n"          /* 7 */
                               "[binding \"b2\" domain \"y.com\"]\n" /* 8 */
                               "max_outbound_connections = 2\n"      /* 9 */
                               "[domain \"y.com\"]\n"                /* 10 */
                               "max_outbound_connections = 10\n"     /* 11 */
                               "[domain \"/^aol\\.com$/\"]\n"        /* 12 */
                               "mx_limit = 2\n"                      /* 13 */
                               "[domain \"/gmail/\"]\n"              /* 14 */
                               "mx_limit = 2\n";                     /* 15 */
    struct sl_diag d = {0}, w = {0};
    struct sl_config *cfg = sl_config_load_string("t.ini", text, &d);

    (void)state;
    assert_non_null(cfg);
    assert_int_equal(sl_config_lint(cfg, &w), 3);
    assert_non_null(strstr(w.lines[0], "t.ini:7: warning: bindings \"b1\" and \"b2\""));
    assert_non_null(strstr(w.lines[1], "t.ini:11: warning: max_outbound_connections = 10"));
    assert_non_null(strstr(w.lines[1], "for binding b1 by [binding_group \"g\"]"));
    assert_null(strstr(w.lines[1], "b2")); /* b2's own [binding domain] section is meant */
    assert_non_null(strstr(w.lines[2], "t.ini:14: warning: [domain \"/gmail/\"]"));
    assert_non_null(strstr(w.lines[2], "/^gmail$/"));
    sl_diag_free(&w);
    sl_config_free(cfg);
}

/* relay - may a client at this address (v4 or v6 text) relay through listener l? */
static bool relay(const struct sl_listener *l, const char *ip)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1)
        in->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1)
        in6->sin6_family = AF_INET6;
    return sl_listener_may_relay(l, (struct sockaddr *)&ss);
}

static void test_listener(void **state)
{
    struct sl_config *cfg = load("[binding \"b1\"]\n"
                                 "[listener \"in\"]\n"
                                 "address = 127.0.0.1:2525\n"
                                 "binding = b1\n"
                                 "command_timeout = 30s\n"
                                 "[listener \"v6\"]\n"
                                 "address = [::1]:2526\n"
                                 "relay_networks = 10.1.0.0/16, 2001:db8::/32 192.0.2.7\n");
    const struct sl_listener *a, *b;

    (void)state;
    assert_non_null(cfg);
    assert_int_equal(cfg->nlisteners, 2);
    a = sl_config_listener(cfg, "in");
    b = sl_config_listener(cfg, "V6");
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a->binding, "b1");
    assert_int_equal(a->command_timeout_ms, 30000);
    assert_int_equal(a->max_sessions, 32); /* defaults */
    assert_int_equal(a->max_recipients, 1000);
    assert_int_equal(a->sa.ss_family, AF_INET);
    assert_int_equal(b->sa.ss_family, AF_INET6);
    /* the default: loopback only, IPv4-mapped IPv6 taken as IPv4 */
    assert_true(relay(a, "127.0.0.1"));
    assert_true(relay(a, "127.255.0.9"));
    assert_true(relay(a, "::1"));
    assert_true(relay(a, "::ffff:127.0.0.1"));
    assert_false(relay(a, "10.0.0.1"));
    assert_false(relay(a, "::2"));
    /* given networks replace the default, prefixes are exact */
    assert_true(relay(b, "10.1.255.255"));
    assert_false(relay(b, "10.2.0.0"));
    assert_true(relay(b, "2001:db8:ffff::1"));
    assert_false(relay(b, "2001:db9::1"));
    assert_true(relay(b, "192.0.2.7"));
    assert_false(relay(b, "192.0.2.8"));
    assert_false(relay(b, "127.0.0.1"));
    sl_config_free(cfg);
}

static void test_cidr(void **state)
{
    struct sl_cidr c;
    const uint8_t in[4] = {192, 168, 1, 130}, out[4] = {192, 168, 1, 127};

    (void)state;
    assert_true(sl_cidr_parse("192.168.1.128/25", &c));
    assert_true(sl_cidr_match(&c, AF_INET, in));
    assert_false(sl_cidr_match(&c, AF_INET, out));
    assert_true(sl_cidr_parse("0.0.0.0/0", &c));
    assert_true(sl_cidr_match(&c, AF_INET, out));
    assert_false(sl_cidr_parse("10.0.0.0/33", &c));
    assert_false(sl_cidr_parse("10.0.0/8", &c));
    assert_false(sl_cidr_parse("::1/129", &c));
    assert_false(sl_cidr_parse("10.0.0.0/", &c));
    assert_false(sl_cidr_parse("/8", &c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_table),
        cmocka_unit_test(test_lint_hints),
        cmocka_unit_test(test_lint_warnings),
        cmocka_unit_test(test_listener),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_values_good),
        cmocka_unit_test(test_values_bad),
        cmocka_unit_test(test_values_long),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_value_format),
        cmocka_unit_test(test_seed000),
        cmocka_unit_test(test_yahoofriends),
        cmocka_unit_test(test_host_scope),
        cmocka_unit_test(test_regex),
        cmocka_unit_test(test_literal_beats_regex),
        cmocka_unit_test(test_many_domains),
        cmocka_unit_test(test_regex_file_order),
        cmocka_unit_test(test_scope_max_regex),
        cmocka_unit_test(test_general_chain),
        cmocka_unit_test(test_cluster_chain),
        cmocka_unit_test(test_server_limits),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_errors_all_collected),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_indented_keys),
        cmocka_unit_test(test_bracket_in_regex),
        cmocka_unit_test(test_empty_sections_exist),
        cmocka_unit_test(test_aliases_and_case),
        cmocka_unit_test(test_merge_and_syntax),
        cmocka_unit_test(test_default_binding),
        cmocka_unit_test(test_eval_refusals),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
