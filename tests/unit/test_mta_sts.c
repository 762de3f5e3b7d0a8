/*
 * test_mta_sts.c - MTA-STS (RFC 8461) without a web server: the policy
 * parser (every required field, every refusal, LF and CRLF, limits), the TXT
 * record, the MX match (4.1 wildcards), the cache file round trip and expiry
 * in a temporary directory, and sl_sts_get's fall-back to the cache when DNS
 * gives nothing, with the memo sparing the second question.
 *
 * Fetching over HTTPS runs against tests/peer/https.py in
 * tests/e2e/mta_sts.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "tls/mta_sts_impl.h"

#define GOOD                                                                                       \
    "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n"

static int parse(const char *text, struct sl_sts_policy *p, char *err, size_t errlen)
{
    return sl_sts_parse(text, strlen(text), p, err, errlen);
}

static void parse_valid(void **state)
{
    struct sl_sts_policy p;
    char err[200] = "";

    (void)state;
    assert_int_equal(parse(GOOD, &p, err, sizeof err), 0);
    assert_int_equal(p.mode, SL_STS_ENFORCE);
    assert_int_equal(p.max_age, 86400);
    assert_int_equal(p.nmx, 2);
    assert_string_equal(p.mx[0], "mail.example.com");
    assert_string_equal(p.mx[1], "*.example.net");
    assert_string_equal(sl_sts_mode_name(p.mode), "enforce");
}

static void parse_crlf_order_blanks_unknown(void **state)
{
    struct sl_sts_policy p;
    char err[200] = "";

    (void)state;
    /* any order, CRLF, blanks around values, unknown keys, no final line end */
    assert_int_equal(parse("mx:MX1.Example.COM.  \r\nmax_age:\t604800\r\nfoo-bar.x: whatever: "
                           "really\r\nmode: testing\r\nversion: STSv1",
                           &p, err, sizeof err),
                     0);
    assert_int_equal(p.mode, SL_STS_TESTING);
    assert_int_equal(p.max_age, 604800);
    assert_int_equal(p.nmx, 1);
    assert_string_equal(p.mx[0], "mx1.example.com");
    assert_string_equal(sl_sts_mode_name(p.mode), "testing");
}

static void parse_mode_none_and_limits(void **state)
{
    struct sl_sts_policy p;
    char err[200] = "";

    (void)state;
    assert_int_equal(parse("version: STSv1\nmode: none\nmax_age: 0\n", &p, err, sizeof err), 0);
    assert_int_equal(p.mode, SL_STS_NONE);
    assert_int_equal(p.nmx, 0);
    assert_string_equal(sl_sts_mode_name(p.mode), "none");
    assert_int_equal(
        parse("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557600\n", &p, err, sizeof err),
        0);
    assert_int_equal(p.max_age, SL_STS_MAX_AGE_S);
    /* a repeated pattern takes no room; the first of a repeated mode counts */
    assert_int_equal(parse("version: STSv1\nmode: testing\nmode: enforce\nmx: a.b\nmx: A.B\n"
                           "max_age: 10\n",
                           &p, err, sizeof err),
                     0);
    assert_int_equal(p.mode, SL_STS_TESTING);
    assert_int_equal(p.nmx, 1);
}

/* Bodies that are no policy, and a word the error must carry. */
static const struct {
    const char *text, *says;
} invalid[] = {
    {"", "no version"},
    {"mode: enforce\nmx: a.b\nmax_age: 1\n", "no version"},
    {"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", "STSv1"},
    {"version: stsv1\nmode: enforce\nmx: a.b\nmax_age: 1\n", "STSv1"},
    {"version: STSv1\nmx: a.b\nmax_age: 1\n", "no mode"},
    {"version: STSv1\nmode: Enforce\nmx: a.b\nmax_age: 1\n", "mode"},
    {"version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n", "mode"},
    {"version: STSv1\nmode: enforce\nmx: a.b\n", "no max_age"},
    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", "over"},
    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 12345678901\n", "max_age"},
    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", "max_age"},
    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1d\n", "max_age"},
    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age:\n", "max_age"},
    {"version: STSv1\nmode: enforce\nmax_age: 1\n", "without an mx"},
    {"version: STSv1\nmode: testing\nmax_age: 1\n", "without an mx"},
    {"version: STSv1\nmode: enforce\nmx: *.*.a.b\nmax_age: 1\n", "mx pattern"},
    {"version: STSv1\nmode: enforce\nmx: a*.b\nmax_age: 1\n", "mx pattern"},
    {"version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", "mx pattern"},
    {"version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n", "mx pattern"},
    {"version: STSv1\nmode: enforce\nmx: -a.b\nmax_age: 1\n", "mx pattern"},
    {"version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n", "mx pattern"},
    {"version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n", "mx pattern"},
    {"version: STSv1\nmode enforce\nmx: a.b\nmax_age: 1\n", "line 2"},
    {"<html>\n<body>Not here</body>\n", "line 1"},
    {"version: STSv1\n: enforce\nmx: a.b\nmax_age: 1\n", "line 2"},
};

static void parse_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        struct sl_sts_policy p;
        char err[200] = "";

        if (parse(invalid[i].text, &p, err, sizeof err) == 0)
            fail_msg("case %zu accepted: %s", i, invalid[i].text);
        if (strstr(err, invalid[i].says) == NULL)
            fail_msg("case %zu: \"%s\" does not say %s", i, err, invalid[i].says);
        assert_null(strchr(err, '\n'));
        assert_int_equal(p.mode, SL_STS_NONE); /* nothing half-parsed is left */
        assert_int_equal(p.nmx, 0);
    }
}

static void parse_size_and_nul(void **state)
{
    struct sl_sts_policy p;
    char err[200] = "";
    size_t big = SL_STS_BODY_MAX + 1;
    char *text = malloc(big + 1);
    char many[2048] = "version: STSv1\nmode: enforce\nmax_age: 1\n";

    (void)state;
    memset(text, '\n', big);
    memcpy(text, GOOD, strlen(GOOD));
    assert_int_equal(sl_sts_parse(text, big, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger"));
    /* exactly the limit is fine */
    assert_int_equal(sl_sts_parse(text, SL_STS_BODY_MAX, &p, err, sizeof err), 0);
    free(text);
    assert_int_equal(sl_sts_parse(GOOD "\0x", sizeof GOOD + 1, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "NUL"));
    for (int i = 0; i < SL_STS_MX_MAX; i++) {
        char line[64];
        snprintf(line, sizeof line, "mx: mx%d.example.com\n", i);
        strlcat(many, line, sizeof many);
    }
    assert_int_equal(parse(many, &p, err, sizeof err), 0);
    assert_int_equal(p.nmx, SL_STS_MX_MAX);
    strlcat(many, "mx: one-more.example.com\n", sizeof many);
    assert_int_equal(parse(many, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than"));
}

/* MX host names against GOOD's patterns (mail.example.com, *.example.net). */
static const struct {
    const char *mx;
    bool match;
} mxes[] = {
    {"mail.example.com", true},       {"MAIL.Example.COM", true},
    {"mail.example.com.", true},      {"mx1.example.net", true},
    {"MX1.EXAMPLE.NET.", true},       {"example.net", false}, /* the wildcard needs a label */
    {"a.b.example.net", false},                               /* and exactly one */
    {"mail.example.com.evil", false}, {"evil-mail.example.com", false},
    {"xexample.net", false},          {".example.net", false},
    {"example.com", false},           {"", false},
};

static void mx_matches(void **state)
{
    struct sl_sts_policy p;
    char err[200];

    (void)state;
    assert_int_equal(parse(GOOD, &p, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof mxes / sizeof mxes[0]; i++)
        if (sl_sts_mx_matches(&p, mxes[i].mx) != mxes[i].match)
            fail_msg("%s should %smatch", mxes[i].mx, mxes[i].match ? "" : "not ");
    assert_false(sl_sts_mx_matches(NULL, "mail.example.com"));
}

/* TXT record sets at _mta-sts: the id found, or "" for no policy (r: the result). */
static const struct {
    const char *rec[3];
    int r;
    const char *id;
} txts[] = {
    {{"v=STSv1; id=20160831085700Z;"}, 1, "20160831085700Z"},
    {{"v=STSv1;id=abc"}, 1, "abc"},
    {{"v=spf1 -all", "v=STSv1; id=x1; ext=y"}, 1, "x1"},
    {{"v=STSv1; ext=1; id=ID2 ;"}, 1, "ID2"},
    {{NULL}, 0, ""},
    {{"v=spf1 -all"}, 0, ""},
    {{"v=STSv10; id=a"}, 0, ""},
    {{"v=STSv1; id=a", "v=STSv1; id=b"}, -1, ""},
    {{"v=STSv1;"}, -1, ""},
    {{"v=STSv1; id="}, -1, ""},
    {{"v=STSv1; id=abc-def"}, -1, ""},
    {{"v=STSv1; id=123456789012345678901234567890123"}, -1, ""},
};

static void txt_records(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof txts / sizeof txts[0]; i++) {
        char rec[3][SL_DNS_TXT_MAX], id[33] = "", err[200] = "";
        size_t n = 0;

        while (n < 3 && txts[i].rec[n] != NULL) {
            snprintf(rec[n], sizeof rec[n], "%s", txts[i].rec[n]);
            n++;
        }
        if (sl_sts_txt_id((const char(*)[SL_DNS_TXT_MAX])rec, n, id, err, sizeof err) != txts[i].r)
            fail_msg("case %zu (%s): not %d (%s)", i, n ? rec[0] : "-", txts[i].r, err);
        if (txts[i].r == 1)
            assert_string_equal(id, txts[i].id);
        else
            assert_true(err[0] != '\0');
    }
}

static void domain_names(void **state)
{
    (void)state;
    assert_true(sl_sts_domain_ok("example.com"));
    assert_true(sl_sts_domain_ok("sts.test"));
    assert_true(sl_sts_domain_ok("x"));
    assert_false(sl_sts_domain_ok(""));
    assert_false(sl_sts_domain_ok("Example.com"));
    assert_false(sl_sts_domain_ok("../etc"));
    assert_false(sl_sts_domain_ok(".hidden"));
    assert_false(sl_sts_domain_ok("a/b"));
    assert_false(sl_sts_domain_ok("a..b"));
    assert_false(sl_sts_domain_ok("a.b."));
    assert_false(sl_sts_domain_ok("[127.0.0.1]"));
}

/* A fresh temporary directory per test (its cache dir is DIR/mta-sts, not there yet). */
static char tmpdir[256], cachedir[300];

static int make_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "%s/sl-sts-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(cachedir, sizeof cachedir, "%s/mta-sts", tmpdir);
    return 0;
}

static int remove_tmp(void **state)
{
    char cmd[600];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* entries - the names in dir */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void cache_round_trip(void **state)
{
    struct sl_sts_policy p, q;
    char err[300] = "", path[400];
    struct stat st;
    FILE *f;

    (void)state;
    assert_int_equal(sl_sts_cache_load(cachedir, "example.com", &q, err, sizeof err), 1);
    assert_int_equal(parse(GOOD, &p, err, sizeof err), 0);
    snprintf(p.id, sizeof p.id, "20260101T000000");
    p.fetched = 1700000000;
    assert_int_equal(
        sl_sts_cache_store(cachedir, "example.com", &p, GOOD, strlen(GOOD), err, sizeof err), 0);
    assert_int_equal(stat(cachedir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0750);
    assert_int_equal(entries(cachedir), 1); /* no temporary file left */
    assert_int_equal(sl_sts_cache_load(cachedir, "example.com", &q, err, sizeof err), 0);
    assert_memory_equal(&p, &q, sizeof p);
    /* fresh until fetched + max_age */
    assert_true(sl_sts_fresh(&q, 1700000000 + 86399));
    assert_false(sl_sts_fresh(&q, 1700000000 + 86400));
    assert_false(sl_sts_fresh(&q, 1700000000 - 10)); /* from the future: not trusted */
    /* a domain that cannot name a file is refused both ways */
    assert_int_equal(sl_sts_cache_store(cachedir, "../x", &p, GOOD, strlen(GOOD), err, sizeof err),
                     -1);
    assert_int_equal(sl_sts_cache_load(cachedir, "../x", &q, err, sizeof err), -1);
    /* a damaged file is refused, with the reason */
    snprintf(path, sizeof path, "%s/example.com", cachedir);
    f = fopen(path, "w");
    fputs("sluice-mta-sts 1\nid abc\nfetched 1700000000\n\nversion: STSv1\nmode: enforce\n", f);
    fclose(f);
    assert_int_equal(sl_sts_cache_load(cachedir, "example.com", &q, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_age"));
    f = fopen(path, "w");
    fputs("garbage\n", f);
    fclose(f);
    assert_int_equal(sl_sts_cache_load(cachedir, "example.com", &q, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a policy cache file"));
    /* a fetch time before 1970 was never written (and made sl_sts_fresh overflow) */
    f = fopen(path, "w");
    fprintf(f, "sluice-mta-sts 1\nid abc\nfetched -9223372036854775807\n\n%s", GOOD);
    fclose(f);
    assert_int_equal(sl_sts_cache_load(cachedir, "example.com", &q, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a policy cache file"));
}

/* sl_sts_get with a DNS server that refuses every question (a closed UDP port):
 * no TXT record can be had, so a fresh cached policy is used and said so. */
static void get_falls_back_to_cache(void **state)
{
    struct sl_sts_memo *memo = calloc(1, sizeof *memo);
    struct sl_sts_policy p, got;
    char err[400] = "", note[400] = "";
    struct sl_dns *dns = sl_dns_open("127.0.0.1:9", 500, err, sizeof err);
    struct sl_sts_env env = {
        .dns = dns, .cache_dir = cachedir, .timeout_ms = 1000, .port = 443, .now = time(NULL)};

    (void)state;
    assert_non_null(dns);
    assert_int_equal(sl_sts_get(&env, memo, "example.com", &got, note, sizeof note),
                     SL_STS_SRC_NONE);
    assert_int_equal(got.mode, SL_STS_NONE);
    assert_non_null(strstr(note, "no policy"));

    assert_int_equal(parse(GOOD, &p, err, sizeof err), 0);
    snprintf(p.id, sizeof p.id, "abc");
    p.fetched = env.now - 100;
    assert_int_equal(
        sl_sts_cache_store(cachedir, "cached.test", &p, GOOD, strlen(GOOD), err, sizeof err), 0);
    assert_int_equal(sl_sts_get(&env, memo, "cached.test", &got, note, sizeof note),
                     SL_STS_SRC_CACHE);
    assert_int_equal(got.mode, SL_STS_ENFORCE);
    assert_true(sl_sts_mx_matches(&got, "mail.example.com"));
    assert_non_null(strstr(note, "using the cached policy"));

    /* the memo answers at once, even with the cache file gone */
    snprintf(err, sizeof err, "%s/cached.test", cachedir);
    assert_int_equal(unlink(err), 0);
    env.now += SL_STS_RECHECK_S - 1;
    assert_int_equal(sl_sts_get(&env, memo, "cached.test", &got, note, sizeof note),
                     SL_STS_SRC_CACHE);
    assert_int_equal(got.mode, SL_STS_ENFORCE);
    /* after SL_STS_RECHECK_S it asks again: no TXT, no cache now: no policy */
    env.now += 1;
    assert_int_equal(sl_sts_get(&env, memo, "cached.test", &got, note, sizeof note),
                     SL_STS_SRC_NONE);
    /* an expired cached policy is no policy */
    p.fetched = env.now - 86400;
    assert_int_equal(
        sl_sts_cache_store(cachedir, "old.test", &p, GOOD, strlen(GOOD), err, sizeof err), 0);
    assert_int_equal(sl_sts_get(&env, memo, "old.test", &got, note, sizeof note), SL_STS_SRC_NONE);
    /* a name that is no host name is not asked about */
    assert_int_equal(sl_sts_get(&env, memo, "[127.0.0.1]", &got, note, sizeof note),
                     SL_STS_SRC_NONE);
    sl_dns_close(dns);
    free(memo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_valid),
        cmocka_unit_test(parse_crlf_order_blanks_unknown),
        cmocka_unit_test(parse_mode_none_and_limits),
        cmocka_unit_test(parse_invalid),
        cmocka_unit_test(parse_size_and_nul),
        cmocka_unit_test(mx_matches),
        cmocka_unit_test(txt_records),
        cmocka_unit_test(domain_names),
        cmocka_unit_test_setup_teardown(cache_round_trip, make_tmp, remove_tmp),
        cmocka_unit_test_setup_teardown(get_falls_back_to_cache, make_tmp, remove_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
