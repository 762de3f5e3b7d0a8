/*
 * test_lockout.c - the listeners' failed-AUTH table (listener/lockout.c): an address is
 * locked after max failures within the window, others are not, a success clears it, the
 * window's end frees it, a full table still counts a new address, and a process that died
 * holding the table's lock blocks nobody.
 *
 * e2e/listener.sh drives the same table through real STARTTLS + AUTH sessions; this covers
 * what a session cannot reach on demand (the end of the table, a holder killed mid-update).
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "listener/smtpd_impl.h"

#define WINDOW_MS 60000u

/* addr - 10.x.y.z as a peer address, or ::ffff-less IPv6 when v6 */
static struct sockaddr_storage addr(uint32_t host, bool v6)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof ss);
    if (v6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr.s6_addr[0] = 0x20;
        in6->sin6_addr.s6_addr[1] = 0x01;
        memcpy(in6->sin6_addr.s6_addr + 12, &host, 4);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(0x0a000000u | host);
    }
    return ss;
}

/* failures - n failures of peer */
static void failures(struct sl_smtpd_lockout *t, const struct sockaddr_storage *peer, unsigned n,
                     unsigned max, uint64_t window_ms)
{
    for (unsigned i = 0; i < n; i++)
        smtpd_lockout_failed(t, peer, max, window_ms);
}

/* test_locked_after_max - max failures lock that address alone; max 0 locks nobody */
static void test_locked_after_max(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(1, false), b = addr(2, false), a6 = addr(1, true);

    (void)state;
    failures(t, &a, 2, 3, WINDOW_MS);
    assert_false(smtpd_lockout_locked(t, &a, 3, WINDOW_MS));
    failures(t, &a, 1, 3, WINDOW_MS);
    assert_true(smtpd_lockout_locked(t, &a, 3, WINDOW_MS));
    assert_false(smtpd_lockout_locked(t, &b, 3, WINDOW_MS));
    assert_false(smtpd_lockout_locked(t, &a6, 3, WINDOW_MS)); /* same low bytes, other family */
    assert_false(smtpd_lockout_locked(t, &a, 0, WINDOW_MS));  /* 0: no limit */
    assert_true(smtpd_lockout_locked(t, &a, 2, WINDOW_MS));   /* a listener with a lower max */
    failures(t, &b, 5, 0, WINDOW_MS);                         /* not counted with no limit */
    assert_false(smtpd_lockout_locked(t, &b, 1, WINDOW_MS));
}

/* test_success_clears - a success forgets the address's failures */
static void test_success_clears(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(3, false);

    (void)state;
    failures(t, &a, 2, 3, WINDOW_MS);
    smtpd_lockout_cleared(t, &a);
    failures(t, &a, 2, 3, WINDOW_MS);
    assert_false(smtpd_lockout_locked(t, &a, 3, WINDOW_MS));
    failures(t, &a, 1, 3, WINDOW_MS);
    assert_true(smtpd_lockout_locked(t, &a, 3, WINDOW_MS));
}

/* test_window_over - the lock ends with the window; the next failure starts a new one */
static void test_window_over(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(4, false);
    const struct timespec past = {0, 120 * 1000 * 1000};

    (void)state;
    failures(t, &a, 3, 3, 100);
    assert_true(smtpd_lockout_locked(t, &a, 3, WINDOW_MS));
    nanosleep(&past, NULL);
    assert_false(smtpd_lockout_locked(t, &a, 3, 100));
    failures(t, &a, 2, 3, 100); /* 2 in the new window, not 5 */
    assert_false(smtpd_lockout_locked(t, &a, 3, 100));
}

/* test_full_table - with every entry live, a new address is still counted (the oldest went) */
static void test_full_table(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage late = addr(0xfffff, false);

    (void)state;
    for (uint32_t i = 0; i < 5000; i++) {
        struct sockaddr_storage p = addr(i + 100, false);
        smtpd_lockout_failed(t, &p, 1, WINDOW_MS);
    }
    failures(t, &late, 2, 2, WINDOW_MS);
    assert_true(smtpd_lockout_locked(t, &late, 2, WINDOW_MS));
}

/* test_dead_holder - a process killed while it held the lock blocks nobody */
static void test_dead_holder(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(5, false);
    int status;
    pid_t pid;

    (void)state;
    failures(t, &a, 2, 3, WINDOW_MS);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the table begins with its lock (lockout.c): taken, never given back */
        pthread_mutex_lock((pthread_mutex_t *)(void *)t);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    failures(t, &a, 1, 3, WINDOW_MS); /* would wait for ever on a lock that is not robust */
    assert_true(smtpd_lockout_locked(t, &a, 3, WINDOW_MS));
    smtpd_lockout_cleared(t, &a);
    assert_false(smtpd_lockout_locked(t, &a, 3, WINDOW_MS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_locked_after_max), cmocka_unit_test(test_success_clears),
        cmocka_unit_test(test_window_over),      cmocka_unit_test(test_full_table),
        cmocka_unit_test(test_dead_holder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
