/*
 * test_promise.c - units promised to jobs not yet started (master/promise.c) count in the
 * scheduler's room check (sl_limits_room_cached) until the worker has tried to take them:
 * a promise fills a limit as a connection does, ends without double counting once the
 * worker took its units, and names the counters when they were never taken (refused, or
 * the job ended first), so that mail held back for them can try again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/sl_config.h"
#include "config/sl_limits.h"
#include "master/sl_promise.h"
#include "shm/sl_shm.h"

static const char *const cfg_text = "[global]\n"
                                    "server_max_outbound_connections = 2\n"
                                    "server_reserve_outbound_connections = 1\n"
                                    "[binding \"b\"]\n";

struct fixture {
    struct sl_config *cfg;
    struct sl_shm shm;
    char name[64];
    uint32_t server, reserve; /* the two counters' slots */
    struct sl_worker_slot w[3];
};

static int setup(void **state)
{
    static struct fixture f;
    struct sl_diag d = {0};
    struct sl_shm_params p = {.slot_capacity = 64, .owner_capacity = 3};
    char err[256];

    f = (struct fixture){0};
    f.cfg = sl_config_load_string("t.ini", cfg_text, &d);
    snprintf(f.name, sizeof f.name, "/sluice-test-promise-%d", (int)getpid());
    if (f.cfg == NULL || sl_shm_create(f.name, &p, &f.shm, err, sizeof err) != 0)
        return -1;
    sl_limits_publish(f.cfg, &f.shm, 1);
    sl_add64(&f.shm.hdr->config_gen, 1);
    if (sl_shm_find(&f.shm, SL_SCOPE_SERVER, "", NULL, &f.server) != SL_SHM_OK ||
        sl_shm_lookup(&f.shm, SL_SCOPE_RESERVE, "", NULL, 0, &f.reserve) != SL_SHM_OK)
        return -1;
    for (uint32_t i = 0; i < 3; i++)
        f.w[i] = (struct sl_worker_slot){.pid = 100 + (pid_t)i, .owner = i};
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    sl_shm_unlink(f->name);
    sl_shm_detach(&f->shm);
    sl_config_free(f->cfg);
    return 0;
}

/* room - may one more connection from b to domain open, with the promises p counted */
static bool room(struct fixture *f, const struct sl_promises *p, const char *domain,
                 struct sl_refusal *why)
{
    struct sl_limits_cache c = {0};
    return sl_limits_room_cached(f->cfg, &f->shm, &c, "b", domain, sl_promise_counts(p), why);
}

/* take - worker i takes the counters of a connection from b to domain, as it starts its job */
static enum sl_resv_result take(struct fixture *f, uint32_t i, const char *domain,
                                struct sl_resv *r)
{
    char err[256];

    sl_resv_init(r, 1);
    assert_true(sl_limits_collect(f->cfg, &f->shm, i, "b", domain, NULL, r, err, sizeof err));
    return sl_resv_acquire(&f->shm, i, r, NULL);
}

/* Two jobs promised the server counter's two units: a third destination waits for it (the
 * reserve is only for a destination that has no connection while the server is full: it
 * goes there), and the units count once the workers took them, not twice. */
static void test_promise_fills_a_limit(void **state)
{
    struct fixture *f = *state;
    struct sl_promises p = {0};
    struct sl_refusal why = {0};
    struct sl_resv r0, r1;
    uint32_t freed[SL_RESV_MAX];

    assert_true(room(f, &p, "one.test", &why));
    sl_promise_make(&p, &f->shm, &f->w[0], &f->server, 1);
    assert_true(room(f, &p, "two.test", &why));
    sl_promise_make(&p, &f->shm, &f->w[1], &f->server, 1);
    sl_promise_make(&p, &f->shm, &f->w[2], &f->reserve, 1); /* the reserve's one unit */
    assert_false(room(f, &p, "three.test", &why));
    assert_int_equal(why.kind, SL_SCOPE_SERVER);
    assert_int_equal(why.in_use, 0); /* open now: the two are promised */
    assert_int_equal(why.limit, 2);

    /* worker 0 has not tried yet: its promise stays */
    assert_int_equal(sl_promise_settle(&p, &f->shm, &f->w[0], freed), 0);
    assert_int_equal(f->w[0].npromised, 1);
    /* it takes its unit: the table counts it, the promise ends (not counted twice) */
    assert_int_equal(take(f, 0, "one.test", &r0), SL_RESV_OK);
    assert_int_equal(sl_promise_settle(&p, &f->shm, &f->w[0], freed), 0);
    assert_int_equal(f->w[0].npromised, 0);
    assert_int_equal(sl_promise_counts(&p)[f->server], 1);
    assert_false(room(f, &p, "three.test", &why));
    assert_int_equal(why.in_use, 1);

    /* worker 1 takes its unit too, then both connections close: room again */
    assert_int_equal(take(f, 1, "two.test", &r1), SL_RESV_OK);
    assert_int_equal(sl_promise_end(&p, &f->shm, &f->w[1], freed), 0); /* it took them */
    sl_resv_release(&f->shm, 0, &r0);
    sl_resv_release(&f->shm, 1, &r1);
    assert_int_equal(sl_promise_end(&p, &f->shm, &f->w[2], freed), 1); /* never tried */
    assert_int_equal(freed[0], f->reserve);
    assert_true(room(f, &p, "three.test", &why));
    sl_promise_free(&p);
}

/* A promise whose worker was refused, or whose job ended before it tried, ends saying the
 * units were never taken: what waited for them may go. */
static void test_promise_refused_or_ended(void **state)
{
    struct fixture *f = *state;
    struct sl_promises p = {0};
    struct sl_refusal why = {0};
    struct sl_resv r0, r1, r2;
    uint32_t freed[SL_RESV_MAX];

    /* two connections outside any promise fill the server counter, and the reserve */
    assert_int_equal(take(f, 0, "one.test", &r0), SL_RESV_OK);
    assert_int_equal(take(f, 0, "two.test", &r1), SL_RESV_OK);
    sl_promise_make(&p, &f->shm, &f->w[1], &f->server, 1);
    assert_int_equal(take(f, 1, "one.test", &r2), SL_RESV_REFUSED);
    assert_int_equal(sl_promise_settle(&p, &f->shm, &f->w[1], freed), 1);
    assert_int_equal(freed[0], f->server);
    assert_int_equal(sl_promise_counts(&p)[f->server], 0);
    assert_int_equal(sl_promise_settle(&p, &f->shm, &f->w[1], freed), 0); /* once */

    sl_promise_make(&p, &f->shm, &f->w[2], &f->server, 1);
    assert_int_equal(sl_promise_end(&p, &f->shm, &f->w[2], freed), 1);
    assert_int_equal(sl_promise_counts(&p)[f->server], 0);
    assert_int_equal(sl_promise_end(&p, &f->shm, &f->w[2], freed), 0);
    sl_resv_release(&f->shm, 0, &r0);
    sl_resv_release(&f->shm, 0, &r1);
    assert_true(room(f, &p, "one.test", &why));
    sl_promise_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_promise_fills_a_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promise_refused_or_ended, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
