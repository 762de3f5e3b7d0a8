/*
 * test_throttle.c - the rate throttles: the "N" / "N/S" parser and its printed form, which
 * stanza's bucket a throttle draws from, the [shaping] rules (loaded, refused, matched), the
 * bucket's pacing arithmetic in a real segment, and the actions file of the spool (write,
 * read back, damaged lines, expiry).
 *
 * Each case that needs a segment makes its own ("/sluice-test-thr-PID-N") and unlinks it;
 * the spool case works in a fresh temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/sl_config.h"
#include "config/sl_rules.h"
#include "config/sl_throttle.h"
#include "shm/sl_shm.h"
#include "spool/sl_actions.h"

/* test_rate_parse - what the parser takes, what it refuses, and the form it prints back */
static void test_rate_parse(void **state)
{
    static const struct {
        const char *in;
        bool ok;
        uint32_t n, period_ms;
        const char *out;
    } cases[] = {
        {"10", true, 10, 1000, "10"},
        {"10/2", true, 10, 2000, "10/2"},
        {"100/3600", true, 100, 3600000, "100/3600"},
        {"100/1h", true, 100, 3600000, "100/3600"},
        {"5/10m", true, 5, 600000, "5/600"},
        {"1/2d", true, 1, 172800000, "1/2d"},
        {"3/500ms", true, 3, 500, "3/500ms"},
        {"-1", true, 0, 0, "-1"},
        {"0", false, 0, 0, NULL},
        {"10/0", false, 0, 0, NULL},
        {"10/", false, 0, 0, NULL},
        {"/2", false, 0, 0, NULL},
        {"10/2x", false, 0, 0, NULL},
        {"ten", false, 0, 0, NULL},
        {"-5", false, 0, 0, NULL},
        {"10/31d", false, 0, 0, NULL},
        {"2147483648", false, 0, 0, NULL},
        {"1234567890123/1", false, 0, 0, NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t num = 0;
        char err[256] = "", out[32];
        struct sl_rate r;
        bool ok = sl_rate_parse(cases[i].in, &num, err, sizeof err);
        if (ok != cases[i].ok)
            fail_msg("%s: parse gave %d, want %d (%s)", cases[i].in, ok, cases[i].ok, err);
        if (!ok) {
            assert_non_null(strstr(err, "N/S"));
            continue;
        }
        sl_rate_format(num, out, sizeof out);
        assert_string_equal(out, cases[i].out);
        if (cases[i].n == 0) {
            assert_false(sl_rate_unpack(num, &r));
            continue;
        }
        assert_true(sl_rate_unpack(num, &r));
        assert_int_equal(r.n, cases[i].n);
        assert_int_equal(r.period_ms, cases[i].period_ms);
    }
}

/* test_resolve - the bucket is the defining stanza's, by reference */
static void test_resolve(void **state)
{
    static const char ini[] = "[global]\n"
                              "outbound_throttle_connections = 50\n"
                              "[binding_group \"g\"]\n"
                              "outbound_throttle_messages = 10/2\n"
                              "[binding \"b1\"]\nbinding_group = g\n"
                              "[binding \"b2\"]\nbinding_group = g\n"
                              "[binding \"b3\"]\n"
                              "[domain \"/^(yahoo|aol)\\./\"]\n"
                              "outbound_throttle_messages = 100/3600\n"
                              "[host \"mx.example\"]\n"
                              "outbound_throttle_connections = 3/2\n";
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load_string("t.ini", ini, &d);
    struct sl_throttle t1, t2;

    (void)state;
    if (cfg == NULL)
        fail_msg("%s", d.n ? d.lines[0] : "no config");
    /* both bindings of the group: one bucket */
    assert_true(sl_throttle_resolve(cfg, SL_THROTTLE_MESSAGES, "b1", "x.test", NULL, &t1));
    assert_true(sl_throttle_resolve(cfg, SL_THROTTLE_MESSAGES, "b2", "y.test", NULL, &t2));
    assert_string_equal(t1.key, "binding_group \"g\"");
    assert_string_equal(t1.key, t2.key);
    assert_int_equal(t1.rate.n, 10);
    assert_int_equal(t1.rate.period_ms, 2000);
    /* the group beats the domain on the general chain; outside it, the regex's one bucket */
    assert_true(sl_throttle_resolve(cfg, SL_THROTTLE_MESSAGES, "b1", "yahoo.com", NULL, &t1));
    assert_string_equal(t1.key, "binding_group \"g\"");
    assert_true(sl_throttle_resolve(cfg, SL_THROTTLE_MESSAGES, "b3", "yahoo.com", NULL, &t1));
    assert_true(sl_throttle_resolve(cfg, SL_THROTTLE_MESSAGES, "b3", "aol.com", NULL, &t2));
    assert_string_equal(t1.key, "domain \"/^(yahoo|aol)\\./\"");
    assert_string_equal(t1.key, t2.key);
    assert_false(sl_throttle_resolve(cfg, SL_THROTTLE_MESSAGES, "b3", "x.test", NULL, &t1));
    /* [global]: one bucket for the whole server */
    assert_true(sl_throttle_resolve(cfg, SL_THROTTLE_CONNECTIONS, "b3", "x.test", NULL, &t1));
    assert_string_equal(t1.key, "global");
    /* the host chain: only host stanzas, no fall-back to the general chain */
    assert_true(sl_throttle_resolve(cfg, SL_THROTTLE_CONNECTIONS, "b1", NULL, "MX.example.", &t1));
    assert_string_equal(t1.key, "host \"mx.example\"");
    assert_false(sl_throttle_resolve(cfg, SL_THROTTLE_CONNECTIONS, "b1", NULL, "mx.other", &t1));
    sl_config_free(cfg);
}

/* test_rules - [shaping] rules as loaded, and which replies they match */
static void test_rules(void **state)
{
    static const char ini[] = "[binding \"b1\"]\n"
                              "[shaping \"yahoo\"]\n"
                              "domain = /^(yahoo|aol)\\./\n"
                              "match = /\\[TSS04\\]/\n"
                              "trigger = 3/60s\n"
                              "action = suspend\n"
                              "duration = 1h\n"
                              "scope = domain\n"
                              "[shaping \"local\"]\n"
                              "binding = b1\n"
                              "host = mx.example\n"
                              "match = refused\n"
                              "match_local = yes\n"
                              "action = outbound_throttle_messages = 10/60\n"
                              "duration = 30m\n";
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load_string("t.ini", ini, &d);
    const struct sl_rule *y, *l;
    char what[96];

    (void)state;
    if (cfg == NULL)
        fail_msg("%s", d.n ? d.lines[0] : "no config");
    assert_int_equal(cfg->nrules, 2);
    y = &cfg->rules[0];
    l = &cfg->rules[1];
    assert_string_equal(y->name, "yahoo");
    assert_int_equal(y->trigger_n, 3);
    assert_int_equal(y->trigger_ms, 60000);
    assert_int_equal(y->action, SL_RULE_SUSPEND);
    assert_int_equal(y->duration_ms, 3600000);
    assert_int_equal(y->scope, SL_RULE_DOMAIN);
    assert_int_equal(l->trigger_n, 1); /* immediate by default */
    sl_rule_action_text(l, what, sizeof what);
    assert_string_equal(what, "outbound_throttle_messages = 10/60");

    struct sl_rule_reply r = {.binding = "b2",
                              .domain = "AOL.com",
                              .host = "mx1.aol.com",
                              .text = "421 4.7.0 [TSS04] Messages temporarily deferred"};
    assert_true(sl_rule_matches(y, &r));
    r.domain = "example.com";
    assert_false(sl_rule_matches(y, &r)); /* not its domain */
    r.domain = "yahoo.com";
    r.local = true;
    assert_false(sl_rule_matches(y, &r)); /* made up by sluice: not without match_local */
    r = (struct sl_rule_reply){.binding = "b1",
                               .domain = "x.test",
                               .host = "MX.example.",
                               .text = "connect to 192.0.2.1:25: Connection refused",
                               .local = true};
    assert_true(sl_rule_matches(l, &r));
    r.binding = "b2";
    assert_false(sl_rule_matches(l, &r)); /* not its binding */
    r.binding = "b1";
    r.host = "mx.other";
    assert_false(sl_rule_matches(l, &r)); /* not its host */
    sl_config_free(cfg);

    /* a domain or host written in UTF-8 is kept as its A-label: the form of the replies' */
    cfg = sl_config_load_string("t.ini",
                                "[shaping \"idn\"]\ndomain = b\xc3\xbc"
                                "cher.example\n"
                                "host = mx.b\xc3\xbc"
                                "cher.example\nmatch = /421/\n"
                                "action = suspend\nduration = 1h\n",
                                &d);
    if (cfg == NULL)
        fail_msg("%s", d.n ? d.lines[d.n - 1] : "no config");
    assert_string_equal(cfg->rules[0].domain, "xn--bcher-kva.example");
    assert_string_equal(cfg->rules[0].host, "mx.xn--bcher-kva.example");
    r = (struct sl_rule_reply){.binding = "b1",
                               .domain = "xn--bcher-kva.example",
                               .host = "mx.xn--bcher-kva.example",
                               .text = "421 try later"};
    assert_true(sl_rule_matches(&cfg->rules[0], &r));
    sl_config_free(cfg);

    static const char *const bad[] = {
        "[shaping \"x\"]\nmatch = /a/\naction = suspend\n",                /* no duration */
        "[shaping \"x\"]\nmatch = /a/\naction = pause\nduration = 1h\n",   /* bad action */
        "[shaping \"x\"]\nmatch = /(/\naction = suspend\nduration = 1h\n", /* bad regex */
        "[shaping \"x\"]\nmatch = /a/\naction = suspend\nduration = 1h\ntrigger = 0/1m\n",
        "[shaping \"x\"]\nmatch = /a/\naction = suspend\nduration = 1h\nbinding = nobody\n",
        "[shaping \"x\"]\nmatch = /a/\naction = suspend\nduration = 1h\ncolour = red\n",
        "[shaping \"x\"]\nmatch = /a/\naction = suspend\nduration = 1h\n[shaping \"x\"]\n",
        "[shaping x]\n",
        "[shaping \"x\"]\nmatch = /a/\naction = suspend\nduration = 1h\ndomain = b\xc3.example\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sl_diag e = {0};
        struct sl_config *c = sl_config_load_string("bad.ini", bad[i], &e);
        if (c != NULL || e.n == 0 || strncmp(e.lines[0], "bad.ini:", 8) != 0)
            fail_msg("case %zu accepted or reported without a line", i);
        sl_diag_free(&e);
    }
}

/* test_interval - the pacing interval: the period plus its margin, over n, rounded up */
static void test_interval(void **state)
{
    (void)state;
    assert_int_equal(sl_bucket_interval_us(10, 2000), 210000);       /* 2 s + 100 ms */
    assert_int_equal(sl_bucket_interval_us(1, 1000), 1050000);       /* 1 s + 50 ms */
    assert_int_equal(sl_bucket_interval_us(100, 3600000), 37800000); /* + 3 min */
    assert_int_equal(sl_bucket_interval_us(3, 100), 36667);          /* + 10 ms, rounded up */
    assert_int_equal(sl_bucket_interval_us(0, 1000), 0);
}

/* test_bucket - tokens in a real segment: paced, shared, refused with the wait, rate changes */
static void test_bucket(void **state)
{
    struct sl_shm_params p = {.slot_capacity = 64, .owner_capacity = 2};
    struct sl_shm shm;
    struct sl_bucket_view v;
    char name[64], err[256];
    uint32_t slot, other;
    uint64_t wait, t = 1000000000u, step = sl_bucket_interval_us(10, 2000);

    (void)state;
    snprintf(name, sizeof name, "/sluice-test-thr-%d", (int)getpid());
    if (sl_shm_create(name, &p, &shm, err, sizeof err) != 0)
        fail_msg("create: %s", err);
    assert_int_equal(
        sl_shm_lookup(&shm, SL_SCOPE_THROTTLE_MSG, "binding_group \"g\"", NULL, 0, &slot),
        SL_SHM_OK);
    assert_true(sl_bucket_take(&shm, slot, t, 0, &wait)); /* no rate yet: never refuses */
    sl_bucket_set(&shm, slot, 10, 2000, 1);
    assert_true(sl_bucket_take(&shm, slot, t, 0, &wait));
    assert_false(sl_bucket_take(&shm, slot, t + 1, 0, &wait)); /* the second waits one step */
    assert_int_equal(wait, step - 1);
    assert_int_equal(sl_bucket_wait(&shm, slot, t + step / 2), step - step / 2);
    assert_true(sl_bucket_take(&shm, slot, t + step, 0, &wait));
    /* over 10 s of asking every millisecond, the tokens never exceed 10 in any 2 s */
    uint64_t given[64];
    size_t n = 0;
    for (uint64_t now = t + step; now < t + step + 10000000u && n < 64; now += 1000)
        if (sl_bucket_take(&shm, slot, now, 0, NULL))
            given[n++] = now;
    for (size_t i = 0; i + 10 < n; i++)
        assert_true(given[i + 10] - given[i] >= 2000000u);
    assert_true(n >= 47); /* and the rate is used: 10 s at 10/2.1 s */
    /* a bucket idle for long gives one token, not a burst */
    uint64_t later = t + 100000000u;
    assert_true(sl_bucket_take(&shm, slot, later, 0, NULL));
    assert_false(sl_bucket_take(&shm, slot, later, 0, NULL));
    /* the next token, due within the wait allowed, is reserved: its time comes back */
    assert_true(sl_bucket_take(&shm, slot, later, step, &wait));
    assert_int_equal(wait, step);
    assert_false(sl_bucket_take(&shm, slot, later, step, &wait)); /* two steps away: refused */
    assert_int_equal(wait, 2 * step);
    /* an older generation does not change the rate; a newer one does */
    sl_bucket_set(&shm, slot, 1, 1000, 0);
    assert_int_equal(sl_bucket_view(&shm, slot, later, &v), 0);
    assert_int_equal(v.n, 10);
    sl_bucket_set(&shm, slot, 5, 1000, 2);
    assert_int_equal(sl_bucket_view(&shm, slot, later, &v), 0);
    assert_int_equal(v.n, 5);
    assert_int_equal(v.period_ms, 1000);
    assert_true(v.taken >= 49);
    assert_true(v.refused >= 2);
    assert_false(v.retired);
    /* retired (its action ended): no rate, none set again, every token at once */
    sl_bucket_retire(&shm, slot);
    sl_bucket_set(&shm, slot, 1, 1000, 3);
    assert_int_equal(sl_bucket_view(&shm, slot, later, &v), 0);
    assert_true(v.retired);
    assert_int_equal(v.n, 0);
    assert_true(sl_bucket_take(&shm, slot, later, 0, NULL));
    assert_true(sl_bucket_take(&shm, slot, later, 0, NULL));
    /* a connection counter is not a bucket */
    assert_int_equal(sl_shm_lookup(&shm, SL_SCOPE_DOMAIN, "x.test", NULL, 0, &other), SL_SHM_OK);
    assert_int_equal(sl_bucket_view(&shm, other, later, &v), -1);
    assert_true(sl_bucket_take(&shm, other, later, 0, NULL));
    sl_shm_detach(&shm);
    sl_shm_unlink(name);
}

/* test_actions_file - the spool's actions: written, read back, damaged lines skipped, expiry */
static void test_actions_file(void **state)
{
    char dir[] = "/tmp/sluice-test-actions-XXXXXX", path[256], err[256];
    struct sl_actions l = {.next_id = 1}, back;
    struct sl_action a = {.kind = SL_ACTION_SUSPEND, .since = 100, .until = 0};
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tmp", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(sl_actions_load(dir, &back, err, sizeof err), 0); /* none yet */
    assert_int_equal(back.n, 0);
    strlcpy(a.domain, "one.test", sizeof a.domain);
    sl_action_text(a.reason, sizeof a.reason, "tab\there\nand newline");
    assert_int_equal(sl_actions_add(&l, &a), 0);
    a = (struct sl_action){.kind = SL_ACTION_THROTTLE_MESSAGES, .since = 100, .until = 200};
    a.value = (int64_t)10 << 32 | 2000;
    strlcpy(a.binding, "b1", sizeof a.binding);
    strlcpy(a.rule, "yahoo-tss04", sizeof a.rule);
    strlcpy(a.reason, "421 4.7.0 [TSS04] Messages temporarily deferred", sizeof a.reason);
    assert_int_equal(sl_actions_add(&l, &a), 0);
    sl_actions_count(&l, "yahoo-tss04");
    sl_actions_count(&l, "yahoo-tss04");
    sl_actions_count(&l, "gmail");
    assert_int_equal(sl_actions_save(dir, &l, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/actions", dir);
    assert_non_null(f = fopen(path, "a"));
    fputs("garbage line\n9\tsuspend\tx\t-\t-\t-\t1\t2\t-\tbad value\n", f);
    fclose(f);
    assert_int_equal(sl_actions_load(dir, &back, err, sizeof err), 0);
    assert_int_equal(back.n, 2);
    assert_int_equal(back.a[0].id, 1);
    assert_string_equal(back.a[0].domain, "one.test");
    assert_string_equal(back.a[0].binding, "");
    assert_string_equal(back.a[0].reason, "tab here and newline");
    assert_int_equal(back.a[1].kind, SL_ACTION_THROTTLE_MESSAGES);
    assert_int_equal(back.a[1].value, l.a[1].value);
    assert_string_equal(back.a[1].rule, "yahoo-tss04");
    assert_int_equal(back.next_id, 3);
    assert_int_equal(back.ntaken, 2);
    assert_string_equal(back.taken[0].rule, "yahoo-tss04");
    assert_int_equal(back.taken[0].n, 2);
    assert_int_equal(back.taken[1].n, 1);
    assert_true(sl_action_covers(&back.a[0], "b9", "ONE.test", NULL));
    assert_false(sl_action_covers(&back.a[0], "b9", "two.test", NULL));
    assert_false(sl_action_covers(&back.a[1], "b2", "one.test", NULL));
    assert_int_equal(sl_actions_expire(&back, 199), 0);
    assert_int_equal(sl_actions_expire(&back, 200), 1);
    assert_int_equal(back.n, 1);
    sl_actions_free(&back);
    sl_actions_free(&l);
    unlink(path);
    snprintf(path, sizeof path, "%s/tmp", dir);
    rmdir(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_parse),   cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_interval),     cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_actions_file), cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
