/*
 * test_limits.c - which counters a connection takes, and their limits (config/limits.c).
 *
 * Each case loads a config, creates a real counter table, collects the
 * reservation for a binding x domain x MX and checks the exact set of counters
 * and limits that semantics.md's table gives, then takes them for real.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/sl_config.h"
#include "config/sl_limits.h"
#include "shm/sl_shm.h"

static const char *const cfg_text = "[global]\n"
                                    "max_outbound_connections = 30\n"
                                    "server_max_outbound_connections = 100\n"
                                    "scope_max_outbound_connections = 90\n"
                                    "[binding_group \"group1\"]\n"
                                    "max_outbound_connections = 5\n"
                                    "server_max_outbound_connections = 40\n"
                                    "[binding \"example\"]\n"
                                    "binding_group = group1\n"
                                    "max_outbound_connections = 15\n"
                                    "[binding \"other\"]\n"
                                    "binding_group = group1\n"
                                    "[binding \"outside\"]\n"
                                    "[binding \"outside\" domain \"example.com\"]\n"
                                    "scope_max_outbound_connections = 7\n"
                                    "[domain \"/^(wanadoo|orange)\\.fr$/\"]\n"
                                    "scope_max_outbound_connections = 3\n"
                                    "[domain \"orange.fr\"]\n"
                                    "scope_max_outbound_connections = 2\n"
                                    "[domain \"/^(aol|yahoo)\\.com$/\"]\n"
                                    "max_outbound_connections = 5\n"
                                    "[binding_group \"group1\" domain \"gmail.com\"]\n"
                                    "scope_max_outbound_connections = 8\n"
                                    "[host \"mx1.example.com\"]\n"
                                    "max_outbound_connections = 4\n"
                                    "scope_max_outbound_connections = 6\n";

struct fixture {
    struct sl_config *cfg;
    struct sl_shm shm;
    char name[64];
    uint32_t owner;
};

static int setup(void **state)
{
    static struct fixture f;
    struct sl_diag d = {0};
    struct sl_shm_params p = {.slot_capacity = 256, .owner_capacity = 4};
    char err[256];

    f.cfg = sl_config_load_string("limits.ini", cfg_text, &d);
    if (f.cfg == NULL) {
        for (size_t i = 0; i < d.n; i++)
            fprintf(stderr, "%s\n", d.lines[i]);
        return -1;
    }
    snprintf(f.name, sizeof f.name, "/sluice-test-limits-%d", (int)getpid());
    if (sl_shm_create(f.name, &p, &f.shm, err, sizeof err) != 0 ||
        sl_shm_owner_claim(&f.shm, getpid(), &f.owner) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sl_shm_detach(&f->shm);
    sl_shm_unlink(f->name);
    sl_config_free(f->cfg);
    return 0;
}

/* A counter expected in a reservation. */
struct want {
    enum sl_scope_kind kind;
    const char *name, *name2;
    int32_t limit;
};

/* expect - collect for (binding, domain, mx) and compare with want[] exactly */
static void expect(struct fixture *f, const char *binding, const char *domain, const char *mx,
                   const struct want *want, size_t n)
{
    struct sl_resv r;
    char err[256];

    sl_resv_init(&r, 1);
    assert_true(
        sl_limits_collect(f->cfg, &f->shm, f->owner, binding, domain, mx, &r, err, sizeof err));
    assert_int_equal(r.n, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t slot;
        bool found = false;
        assert_int_equal(sl_shm_find(&f->shm, want[i].kind, want[i].name, want[i].name2, &slot),
                         SL_SHM_OK);
        for (uint32_t k = 0; k < r.n; k++)
            if (r.slot[k] == slot) {
                assert_int_equal(r.limit[k], want[i].limit);
                found = true;
            }
        if (!found)
            fail_msg("%s %s %s not in the reservation", sl_scope_kind_name(want[i].kind),
                     want[i].name, want[i].name2 ? want[i].name2 : "");
    }
    /* And it can be taken and given back. */
    assert_int_equal(sl_resv_acquire(&f->shm, f->owner, &r, NULL), SL_RESV_OK);
    sl_resv_release(&f->shm, f->owner, &r);
}

/* Seed 000: 15 from binding example, 5 from another binding of group1, 30 outside it. */
static void test_seed000(void **state)
{
    struct fixture *f = *state;
    const struct want ex[] = {{SL_SCOPE_BINDING_DOMAIN, "example", "example.com", 15},
                              {SL_SCOPE_BINDING, "example", NULL, 40},
                              {SL_SCOPE_SERVER, "", NULL, 90}};
    const struct want other[] = {{SL_SCOPE_BINDING_DOMAIN, "other", "example.com", 5},
                                 {SL_SCOPE_BINDING, "other", NULL, 40},
                                 {SL_SCOPE_SERVER, "", NULL, 90}};
    /* outside: its pair's scope_max (7) caps the general value (30). */
    const struct want out[] = {{SL_SCOPE_BINDING_DOMAIN, "outside", "example.com", 7},
                               {SL_SCOPE_SERVER, "", NULL, 90}};
    expect(f, "example", "example.com", NULL, ex, 3);
    expect(f, "other", "example.com", NULL, other, 3);
    expect(f, "outside", "example.com", NULL, out, 2);
}

/* Seed 002: wanadoo and orange share the regex's one counter; orange.fr also has its own. */
static void test_wanadoo_orange(void **state)
{
    struct fixture *f = *state;
    const char *re = "/^(wanadoo|orange)\\.fr$/";
    const struct want wanadoo[] = {{SL_SCOPE_BINDING_DOMAIN, "outside", "wanadoo.fr", 30},
                                   {SL_SCOPE_DOMAIN, re, NULL, 3},
                                   {SL_SCOPE_SERVER, "", NULL, 90}};
    const struct want orange[] = {{SL_SCOPE_BINDING_DOMAIN, "outside", "orange.fr", 30},
                                  {SL_SCOPE_DOMAIN, re, NULL, 3},
                                  {SL_SCOPE_DOMAIN, "orange.fr", NULL, 2},
                                  {SL_SCOPE_SERVER, "", NULL, 90}};
    expect(f, "outside", "wanadoo.fr", NULL, wanadoo, 3);
    expect(f, "outside", "orange.fr", NULL, orange, 4);
}

/* Seed 002: a regex max_outbound_connections is NOT shared: aol and yahoo get 5 each. */
static void test_aol_yahoo(void **state)
{
    struct fixture *f = *state;
    const struct want aol[] = {{SL_SCOPE_BINDING_DOMAIN, "outside", "aol.com", 5},
                               {SL_SCOPE_SERVER, "", NULL, 90}};
    const struct want yahoo[] = {{SL_SCOPE_BINDING_DOMAIN, "outside", "yahoo.com", 5},
                                 {SL_SCOPE_SERVER, "", NULL, 90}};
    uint32_t a, y;
    expect(f, "outside", "aol.com", NULL, aol, 2);
    expect(f, "outside", "yahoo.com", NULL, yahoo, 2);
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_BINDING_DOMAIN, "outside", "aol.com", &a), 0);
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_BINDING_DOMAIN, "outside", "yahoo.com", &y), 0);
    assert_int_not_equal(a, y);
}

/* A group::domain scope_max counts the group's bindings together; the host stanza adds a
 * per-binding MX counter (max_outbound, host chain) and an all-bindings MX counter (scope_max). */
static void test_group_and_host(void **state)
{
    struct fixture *f = *state;
    const struct want gm[] = {{SL_SCOPE_BINDING_DOMAIN, "other", "gmail.com", 5},
                              {SL_SCOPE_GROUP_DOMAIN, "group1", "gmail.com", 8},
                              {SL_SCOPE_BINDING, "other", NULL, 40},
                              {SL_SCOPE_SERVER, "", NULL, 90}};
    const struct want mx[] = {{SL_SCOPE_BINDING_DOMAIN, "outside", "example.com", 7},
                              {SL_SCOPE_BINDING_HOST, "outside", "mx1.example.com", 4},
                              {SL_SCOPE_HOST, "mx1.example.com", NULL, 6},
                              {SL_SCOPE_SERVER, "", NULL, 90}};
    const struct want nomx[] = {{SL_SCOPE_BINDING_DOMAIN, "outside", "gmail.com", 30},
                                {SL_SCOPE_SERVER, "", NULL, 90}};
    expect(f, "other", "gmail.com", NULL, gm, 4);
    expect(f, "outside", "example.com", "mx1.example.com", mx, 4);
    /* A binding outside group1 does not take the group's counter; an MX with no stanza adds none.
     */
    expect(f, "outside", "gmail.com", "mx9.gmail.com", nomx, 2);
}

/* An unknown binding is refused with a reason, and nothing is collected. */
static void test_unknown_binding(void **state)
{
    struct fixture *f = *state;
    struct sl_resv r;
    char err[256];

    sl_resv_init(&r, 1);
    assert_false(sl_limits_collect(f->cfg, &f->shm, f->owner, "nosuch", "example.com", NULL, &r,
                                   err, sizeof err));
    assert_non_null(strstr(err, "unknown binding nosuch"));
    assert_int_equal(r.n, 0);
}

/* publish shows configured limits before any connection; refresh moves them to a new config. */
static void test_publish_refresh(void **state)
{
    struct fixture *f = *state;
    struct sl_diag d = {0};
    struct sl_config *next;
    struct sl_counter_view v;
    uint32_t slot;

    sl_limits_publish(f->cfg, &f->shm, 1);
    assert_int_equal(
        sl_shm_find(&f->shm, SL_SCOPE_DOMAIN, "/^(wanadoo|orange)\\.fr$/", NULL, &slot), SL_SHM_OK);
    assert_int_equal(sl_shm_view(&f->shm, slot, &v), 0);
    assert_int_equal(v.limit, 3);
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_BINDING_HOST, "other", "mx1.example.com", &slot),
                     SL_SHM_OK); /* a host stanza's limit, for every binding */

    next = sl_config_load_string("next.ini",
                                 "[domain \"/^(wanadoo|orange)\\.fr$/\"]\n"
                                 "scope_max_outbound_connections = 5\n",
                                 &d);
    assert_non_null(next);
    sl_limits_refresh(next, &f->shm, 2);
    assert_int_equal(
        sl_shm_find(&f->shm, SL_SCOPE_DOMAIN, "/^(wanadoo|orange)\\.fr$/", NULL, &slot), SL_SHM_OK);
    assert_int_equal(sl_shm_view(&f->shm, slot, &v), 0);
    assert_int_equal(v.limit, 5);
    assert_int_equal(v.gen, 2);
    /* A stanza that is gone leaves its counter with no limit. */
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_DOMAIN, "orange.fr", NULL, &slot), SL_SHM_OK);
    assert_int_equal(sl_shm_view(&f->shm, slot, &v), 0);
    assert_int_equal(v.limit, SL_LIMIT_NONE);
    /* The old generation can no longer set it back. */
    sl_limits_refresh(f->cfg, &f->shm, 1);
    assert_int_equal(sl_shm_view(&f->shm, slot, &v), 0);
    assert_int_equal(v.limit, SL_LIMIT_NONE);
    sl_config_free(next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed000),         cmocka_unit_test(test_wanadoo_orange),
        cmocka_unit_test(test_aol_yahoo),       cmocka_unit_test(test_group_and_host),
        cmocka_unit_test(test_unknown_binding), cmocka_unit_test(test_publish_refresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
