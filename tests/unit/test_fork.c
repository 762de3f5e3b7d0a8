/*
 * test_fork.c - the master's forks beside threads of its own (util/sl_fork.h): no fork while
 * a helper thread is inside its gate (where it may hold the allocator's locks, which a fork
 * would copy held: workers hung so under the sanitizers' allocator), a fork once it left, and
 * a child whose own gate works (its copy named the parent's forking thread as its writer), and
 * children forked beside a thread that allocates without pause, which all run to their end.
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

/* child_ran_well - with the gate taken (sl_fork_begin), fork a child that allocates: did it
 * exit 0? */
static bool child_ran_well(void)
{
    pid_t pid = fork();
    int st;

    sl_fork_end(pid == 0);
    assert_true(pid >= 0);
    if (pid == 0)
        child_allocates();
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return true;
    print_message("child %ld: %s %d\n", (long)pid, WIFSIGNALED(st) ? "signal" : "exit",
                  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    return false;
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

    (void)state;
    assert_int_equal(sl_fork_thread_create(&t, NULL, hold, &step), 0);
    while (sl_load32(&step) != 1)
        sched_yield();
    assert_false(sl_fork_begin());
    sl_store32(&step, 2);
    pthread_join(t, NULL);
    assert_true(sl_fork_begin());
    assert_true(child_ran_well());
}

/* test_children_beside_an_allocating_thread - CHILDREN forks while a thread allocates: every
 * child runs to its end (under the SAN build without the gate, about one in 300 hung) */
static void test_children_beside_an_allocating_thread(void **state)
{
    pthread_t t;
    int done = 0;

    (void)state;
    alarm(240); /* a fork that hangs fails the test, rather than hanging it */
    sl_store32(&stop, 0);
    assert_int_equal(sl_fork_thread_create(&t, NULL, churn, NULL), 0);
    for (int i = 0; i < CHILDREN; i++) {
        while (!sl_fork_begin())
            continue; /* the thread's stretches are short */
        done += child_ran_well();
    }
    sl_store32(&stop, 1);
    pthread_join(t, NULL);
    alarm(0);
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
