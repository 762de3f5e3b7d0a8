/*
 * test_fork.c - the master's forks beside threads of its own (util/sl_fork.h): no fork while
 * a helper thread is inside its gate, and children forked while a helper thread allocates
 * without pause all run to their end, with a gate of their own that works.  The second case is
 * what hung workers under the sanitizers' allocator, whose locks a fork copies held: run by the
 * SAN build without the gate, some children hang in their first allocations.
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

/* child_allocates - a forked child's own allocations, of every size class, and its gate; exit 0 */
static void child_allocates(void)
{
    alarm(20);            /* a child hung on a copied lock dies of it, and fails the test */
    sl_fork_gate_enter(); /* the child's gate is open: not the copy its parent held */
    sl_fork_gate_leave();
    if (!sl_fork_begin())
        _exit(3);
    sl_fork_end(false);
    for (size_t size = 1; size <= 1 << 20; size *= 2) {
        void *p = malloc(size);
        if (p == NULL)
            _exit(2);
        memset(p, 1, size);
        free(p);
    }
    _exit(0);
}

/* hold - a helper thread inside its gate until told to leave */
static void *hold(void *arg)
{
    sl_fork_gate_enter();
    sl_store32(arg, 1);
    while (sl_load32(arg) != 2)
        sched_yield();
    sl_fork_gate_leave();
    return NULL;
}

/* test_fork_waits_for_the_gate - a helper thread inside its gate: no fork; after it: a fork */
static void test_fork_waits_for_the_gate(void **state)
{
    sl_atomic_u32 step = 0;
    pthread_t t;
    pid_t pid;
    int st;

    (void)state;
    assert_int_equal(sl_fork_thread_create(&t, NULL, hold, &step), 0);
    while (sl_load32(&step) != 1)
        sched_yield();
    assert_false(sl_fork_begin());
    sl_store32(&step, 2);
    pthread_join(t, NULL);
    assert_true(sl_fork_begin());
    pid = fork();
    sl_fork_end(pid == 0);
    assert_true(pid >= 0);
    if (pid == 0)
        child_allocates();
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
    assert_int_equal(sl_fork_thread_create(&t, NULL, churn, NULL), 0);
    for (int i = 0; i < CHILDREN; i++) {
        pid_t pid;
        int st;
        while (!sl_fork_begin())
            continue; /* the thread's stretches are short: the gate prefers the fork */
        pid = fork();
        sl_fork_end(pid == 0);
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
