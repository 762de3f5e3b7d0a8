/*
 * test_signals.c - the master's signal flags and self-pipe (master/signals.c): every raised
 * flag keeps the main loop from sleeping until it is taken, whichever flags the same pass took
 * before it; and a loop that took them all sleeps.
 */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "master/sl_signals.h"
#include "util/sl_msg.h"

static int pipe_fd;

/* wakes - would the loop's next wait return at once: a byte in the pipe, or a flag raised */
static bool wakes(void)
{
    struct pollfd p = {.fd = pipe_fd, .events = POLLIN};

    return poll(&p, 1, 0) == 1 || sl_signals_pending();
}

/* A pass that takes one flag while another was raised with it leaves the loop awake for the
 * other (once, each take emptied the pipe, and the other's byte with it: a SIGCHLD lost that
 * way kept a dead process counted as alive until something else woke the loop). */
static void test_flag_not_lost(void **state)
{
    (void)state;
    assert_false(wakes());
    raise(SIGCHLD);
    raise(SIGUSR1);
    assert_true(wakes());
    sl_signals_woken(); /* the loop woke */
    assert_true(sl_signals_take(SL_SIG_REOPEN));
    assert_true(wakes()); /* SIGCHLD is not taken yet */
    assert_true(sl_signals_take(SL_SIG_CHILD));
    assert_false(sl_signals_take(SL_SIG_CHILD)); /* once */
    assert_false(wakes());
}

/* A signal raised after the pipe was emptied, before its flag is looked at, is taken in the
 * same pass; the byte it left only wakes the next wait once. */
static void test_raised_mid_pass(void **state)
{
    (void)state;
    raise(SIGHUP);
    sl_signals_woken();
    raise(SIGTERM);
    assert_true(sl_signals_take(SL_SIG_STOP));
    assert_true(sl_signals_take(SL_SIG_RELOAD));
    assert_true(wakes()); /* its byte */
    sl_signals_woken();
    assert_false(wakes());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flag_not_lost),
        cmocka_unit_test(test_raised_mid_pass),
    };
    sl_msg_init("test_signals");
    pipe_fd = sl_signals_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
