/*
 * test_supervise.c - the back-off rule of master/supervise.c, for workers and listener
 * processes alike: which deaths raise the back-off (sl_supervise_failed) and how long the
 * next start then waits (sl_supervise_backoff_ms); and which deaths are of a process's own
 * doing (sl_supervise_own_death), after which a worker's job waits.
 *
 * Both are pure functions of waitpid's status, the process's age and whether it had
 * reported ready, so every case is checked directly; the e2e tests (faults.sh,
 * listener_backoff.sh) drive the same rule with real kills.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "master/sl_supervise.h"

#define YOUNG (SL_SUPERVISE_YOUNG_S - 1)
#define OLD   (SL_SUPERVISE_YOUNG_S + 60)

/* test_backoff_doubles - 100 ms doubling per failure in a row, at most 10 s */
static void test_backoff_doubles(void **state)
{
    (void)state;
    assert_int_equal(sl_supervise_backoff_ms(0), 100);
    assert_int_equal(sl_supervise_backoff_ms(1), 100);
    assert_int_equal(sl_supervise_backoff_ms(2), 200);
    assert_int_equal(sl_supervise_backoff_ms(5), 1600);
    assert_int_equal(sl_supervise_backoff_ms(8), 10000);
    assert_int_equal(sl_supervise_backoff_ms(~0U), 10000);
}

/* test_crash_before_ready - dying before it reported ready is a crash loop, whatever the cause */
static void test_crash_before_ready(void **state)
{
    (void)state;
    assert_true(sl_supervise_failed(false, 0, W_EXITCODE(1, 0))); /* e.g. a bad key file */
    assert_true(sl_supervise_failed(false, 0, W_EXITCODE(0, SIGSEGV)));
    assert_true(sl_supervise_failed(false, 0, W_EXITCODE(0, SIGKILL)));
    assert_true(sl_supervise_failed(false, OLD, W_EXITCODE(0, SIGKILL))); /* never served */
}

/* test_outside_kill_of_ready - a serving process killed from outside never raises the back-off */
static void test_outside_kill_of_ready(void **state)
{
    (void)state;
    assert_false(sl_supervise_failed(true, 0, W_EXITCODE(0, SIGKILL)));
    assert_false(sl_supervise_failed(true, YOUNG, W_EXITCODE(0, SIGKILL)));
    assert_false(sl_supervise_failed(true, YOUNG, W_EXITCODE(0, SIGTERM)));
    assert_false(sl_supervise_failed(true, YOUNG, W_EXITCODE(0, SIGINT)));
    assert_false(sl_supervise_failed(true, OLD, W_EXITCODE(0, SIGKILL)));
}

/* test_own_fault_of_ready - a ready process dying of its own fault counts only while young */
static void test_own_fault_of_ready(void **state)
{
    (void)state;
    assert_true(sl_supervise_failed(true, YOUNG, W_EXITCODE(0, SIGSEGV)));
    assert_true(sl_supervise_failed(true, YOUNG, W_EXITCODE(0, SIGABRT)));
    assert_true(sl_supervise_failed(true, YOUNG, W_EXITCODE(0, SIGBUS)));
    assert_true(sl_supervise_failed(true, YOUNG, W_EXITCODE(70, 0)));
    assert_false(sl_supervise_failed(true, OLD, W_EXITCODE(0, SIGSEGV)));
    assert_false(sl_supervise_failed(true, OLD, W_EXITCODE(70, 0)));
}

/* test_clean_exit - exit 0 is never a failure */
static void test_clean_exit(void **state)
{
    (void)state;
    assert_false(sl_supervise_failed(false, 0, W_EXITCODE(0, 0)));
    assert_false(sl_supervise_failed(true, 0, W_EXITCODE(0, 0)));
}

/* test_own_death - what makes a dead worker's parts wait (sl_sched_worker_exit): a non-zero
 * exit or a signal of its own, whatever its age; never exit 0 or a kill from outside */
static void test_own_death(void **state)
{
    (void)state;
    assert_true(sl_supervise_own_death(W_EXITCODE(70, 0)));
    assert_true(sl_supervise_own_death(W_EXITCODE(1, 0)));
    assert_true(sl_supervise_own_death(W_EXITCODE(0, SIGSEGV)));
    assert_true(sl_supervise_own_death(W_EXITCODE(0, SIGABRT)));
    assert_true(sl_supervise_own_death(W_EXITCODE(0, SIGALRM)));
    assert_false(sl_supervise_own_death(W_EXITCODE(0, 0)));
    assert_false(sl_supervise_own_death(W_EXITCODE(0, SIGKILL)));
    assert_false(sl_supervise_own_death(W_EXITCODE(0, SIGTERM)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles),
        cmocka_unit_test(test_crash_before_ready),
        cmocka_unit_test(test_outside_kill_of_ready),
        cmocka_unit_test(test_own_fault_of_ready),
        cmocka_unit_test(test_clean_exit),
        cmocka_unit_test(test_own_death),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
