/*
 * test_fork.c - sl_fork_quiet, the master's fork beside threads of its own: a fork never
 * happens while a helper thread is inside its gate (EBUSY then), and children forked while a
 * helper thread allocates without pause all run to their end.  The second case is what hung
 * workers under the sanitizers' allocator, whose locks a fork copies held: run by the SAN
 * build, a plain fork() in its place leaves some children hung in their first allocations.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/sl_atomic.h"
#include "util/sl_fork.h"

#define CHILDREN 300

static sl_atomic_u32 stop;

/* churn - a helper thread allocating and freeing sizes of every class, inside the gate */
static void *churn(void *arg)
{
    unsigned seed = 1;

    (void)arg;
    while (!sl_load32(&stop)) {
        void *p[16];
        sl_fork_gate_enter();
        for (int i = 0; i < 16; i++)
            p[i] = malloc((size_t)(rand_r(&seed) % 65536) + 1);
        for (int i = 0; i < 16; i++)
            free(p[i]);
        sl_fork_gate_leave();
    }
    return NULL;
}

/* child_allocates - a forked child's own allocations, of every size class; exit 0 */
static void child_allocates(void)
{
    alarm(20); /* a child hung on a copied lock dies of it, and fails the test */
    for (size_t size = 1; size <= 1 << 20; size *= 2) {
        void *p = malloc(size);
        if (p == NULL)
            _exit(2);
        memset(p, 1, size);
        free(p);
    }
    _exit(0);
}

/* test_fork_waits_for_the_gate - a helper thread inside its gate: EBUSY; after it: a fork */
static void test_fork_waits_for_the_gate(void **state)
{
    pid_t pid;
    int st;

    (void)state;
    sl_fork_gate_enter();
    errno = 0;
    assert_int_equal(sl_fork_quiet(), -1);
    assert_int_equal(errno, EBUSY);
    sl_fork_gate_leave();
    pid = sl_fork_quiet();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* test_children_beside_an_allocating_thread - CHILDREN forks while a thread allocates: every
 * child exits 0 (none hangs on a lock the thread held) */
static void test_children_beside_an_allocating_thread(void **state)
{
    pthread_t t;
    int done = 0;

    (void)state;
    sl_store32(&stop, 0);
    assert_int_equal(pthread_create(&t, NULL, churn, NULL), 0);
    for (int i = 0; i < CHILDREN; i++) {
        pid_t pid;
        int st;
        while ((pid = sl_fork_quiet()) < 0 && errno == EBUSY)
            sched_yield();
        assert_true(pid >= 0);
        if (pid == 0)
            child_allocates();
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            done++;
    }
    sl_store32(&stop, 1);
    pthread_join(t, NULL);
    assert_int_equal(done, CHILDREN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_waits_for_the_gate),
        cmocka_unit_test(test_children_beside_an_allocating_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
