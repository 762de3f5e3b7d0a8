/*
 * test_pid.c - sl_pid, the pid kept after the first read: right in the process that read
 * it, and right again in the child of a fork (and its child), where a kept value would be
 * the parent's and every "is this entry mine?" of the spool's writers would answer wrongly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/sl_pid.h"

/* child_ok - in a forked child: does sl_pid say the child's own pid? (exit status 0: yes) */
static int child_ok(pid_t parent)
{
    return sl_pid() == getpid() && sl_pid() != parent ? 0 : 1;
}

/* wait_status - the exit status of pid, or -1 */
static int wait_status(pid_t pid)
{
    int st;

    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* test_pid_after_fork - read before the fork, right in the child and the grandchild */
static void test_pid_after_fork(void **state)
{
    pid_t me = getpid(), child;

    (void)state;
    assert_int_equal(sl_pid(), me);
    assert_int_equal(sl_pid(), me); /* the kept value */
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        pid_t mid = getpid(), grandchild;
        int rc = child_ok(me);
        if (rc == 0 && (grandchild = fork()) == 0)
            _exit(child_ok(mid));
        _exit(rc != 0 ? rc : grandchild < 0 ? 3 : wait_status(grandchild) == 0 ? 0 : 2);
    }
    assert_int_equal(wait_status(child), 0);
    assert_int_equal(sl_pid(), me); /* the parent's is untouched */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pid_after_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
