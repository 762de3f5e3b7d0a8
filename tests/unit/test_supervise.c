/*
 * test_supervise.c - the back-off rule of master/supervise.c, for workers and listener
 * processes alike: which deaths raise the back-off (sl_supervise_failed) and how long the
 * next start then waits (sl_supervise_backoff_ms); and which deaths are of a process's own
 * doing (sl_supervise_own_death), after which a worker's job waits.
 *
 * Both are pure functions of waitpid's status, the process's age and whether it had
 * reported ready, so every case is checked directly; the e2e tests (faults.sh,
 * listener_backoff.sh) drive the same rule with real kills.
 * test_events forks real workers (a stand-in body) to check that the main loop's epoll set
 * reports each worker's socket as that worker's, and nothing of a reaped one.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "master/sl_supervise.h"
#include "util/sl_msg.h"
#include "worker/sl_worker.h"

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

/* stand_in - a worker's body for test_events: hello, one line, then wait for the master to
 * close its end */
static void stand_in(int fd, uint32_t owner, void *ctx)
{
    char hello[32], c;

    (void)owner;
    (void)ctx;
    snprintf(hello, sizeof hello, "%c%ld", SL_WMSG_HELLO, (long)getpid());
    if (send(fd, hello, strlen(hello), 0) < 0 || send(fd, "Z up", 4, 0) < 0)
        _exit(1);
    while (recv(fd, &c, 1, 0) > 0)
        ;
    _exit(0);
}

/* hear - wait on the epoll set until the workers of the mask (bit = slot) said their line;
 * data[slot] is what the set reported for it */
static void hear(struct sl_supervisor *s, unsigned mask, uint64_t *data)
{
    struct epoll_event ev[8];
    unsigned heard = 0, w;
    char buf[64];
    ssize_t n;

    for (int tries = 0; heard != mask && tries < 50; tries++) {
        int got = epoll_wait(s->epfd, ev, 8, 200);
        for (int i = 0; i < got; i++) {
            assert_true(sl_supervise_event(s, ev[i].data.u64, &w));
            data[w] = ev[i].data.u64;
            while ((n = sl_supervise_read(s, w, buf, sizeof buf)) >= 0)
                if (n > 0) {
                    assert_string_equal(buf, "Z up");
                    heard |= 1u << w;
                }
        }
    }
    assert_int_equal(heard, mask);
}

/* The main loop waits on one epoll set, which names the worker each event is from.  A reaped
 * worker's socket leaves the set: the workers forked after it still hold a copy of the
 * master's end (until their close_range, which this stand-in never runs), so without that its
 * hang-up would go on waking the loop under a number that names nobody, or a new worker. */
static void test_events(void **state)
{
    struct sl_shm_params p = {.slot_capacity = 16, .owner_capacity = 8};
    struct timespec pause = {.tv_nsec = 10000000};
    struct epoll_event ev[8];
    struct sl_supervisor s;
    struct sl_shm shm;
    uint64_t data[3] = {0};
    char name[64], err[256];
    unsigned w;

    (void)state;
    snprintf(name, sizeof name, "/sluice-test-supervise-%d", (int)getpid());
    assert_int_equal(sl_shm_create(name, &p, &shm, err, sizeof err), 0);
    sl_supervise_init(&s, 3);
    assert_int_equal(s.epfd, -1);
    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(s.epfd >= 0);
    sl_supervise_fill(&s, &shm, 1, stand_in, NULL);
    assert_int_equal(sl_supervise_alive(&s), 3);
    hear(&s, 7, data);
    assert_int_equal(sl_supervise_ready(&s, 1), 3);

    assert_int_equal(kill(s.w[1].pid, SIGKILL), 0);
    while (sl_supervise_alive(&s) > 2) {
        nanosleep(&pause, NULL);
        sl_supervise_reap(&s, &shm);
    }
    assert_false(sl_supervise_event(&s, data[1], &w));
    assert_int_equal(epoll_wait(s.epfd, ev, 8, 300), 0); /* nothing of it wakes the loop */

    sl_supervise_fill(&s, &shm, 1, stand_in, NULL); /* killed from outside: replaced at once */
    assert_int_equal(sl_supervise_alive(&s), 3);
    hear(&s, 1u << 1, data); /* its replacement took its slot, and speaks as itself */
    assert_false(sl_supervise_event(&s, (uint64_t)7 << 32 | 3, &w)); /* no such slot */

    sl_supervise_stop(&s, &shm, 2000);
    close(s.epfd);
    sl_shm_detach(&shm);
    sl_shm_unlink(name);
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
        cmocka_unit_test(test_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
