/*
 * test_lockout.c - the listeners' failed-AUTH table (listener/lockout.c): an address is
 * locked after max failures within the window, others are not, checks in progress count, a
 * give-back (a success) clears nothing else, IPv6 counts by /64, the window's end frees it,
 * each window length counts on its own, a give-back touches only its own window, a full table
 * gives up its oldest window, the operator's pages list each address once and unlock forgets
 * a /64, the count is shared between processes, and a process that died holding the table's
 * lock blocks nobody.
 *
 * e2e/listener.sh drives the same table through real STARTTLS + AUTH sessions; this covers
 * what a session cannot reach on demand (the end of the table, a holder killed mid-update).
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "listener/smtpd_impl.h"

#define WINDOW_MS 60000u /* a window no test outlives */
#define SHORT_MS  1000u  /* one a test waits out: past_short later, the window is over */

static const struct timespec past_short = {1, 200 * 1000 * 1000};

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

/* failures - n attempts of peer that end in wrong credentials; how many were let through */
static unsigned failures(struct sl_smtpd_lockout *t, const struct sockaddr_storage *peer,
                         unsigned n, unsigned max, uint64_t window_ms)
{
    struct smtpd_attempt a;
    unsigned open = 0;

    for (unsigned i = 0; i < n; i++)
        open += smtpd_lockout_try(t, peer, max, window_ms, 0, &a) == SMTPD_LOCKOUT_OPEN;
    return open;
}

/* locked - would the peer's next attempt be refused?  (probing counts none) */
static bool locked(struct sl_smtpd_lockout *t, const struct sockaddr_storage *peer, unsigned max,
                   uint64_t window_ms)
{
    struct smtpd_attempt a;

    if (smtpd_lockout_try(t, peer, max, window_ms, 0, &a) != SMTPD_LOCKOUT_OPEN)
        return true;
    smtpd_lockout_undo(t, peer, window_ms, &a);
    return false;
}

/* test_locked_after_max - max failures lock that address alone; max 0 locks nobody */
static void test_locked_after_max(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(1, false), b = addr(2, false), a6 = addr(1, true);
    struct smtpd_attempt at;

    (void)state;
    assert_int_equal(failures(t, &a, 2, 3, WINDOW_MS), 2);
    assert_false(locked(t, &a, 3, WINDOW_MS));
    assert_int_equal(failures(t, &a, 1, 3, WINDOW_MS), 1);
    assert_int_equal(smtpd_lockout_try(t, &a, 3, WINDOW_MS, 0, &at), SMTPD_LOCKOUT_REFUSED_FIRST);
    assert_int_equal(smtpd_lockout_try(t, &a, 3, WINDOW_MS, 0, &at), SMTPD_LOCKOUT_REFUSED);
    assert_true(locked(t, &a, 3, WINDOW_MS));  /* probing counted nothing more... */
    assert_false(locked(t, &a, 4, WINDOW_MS)); /* ...as a listener with a max of 4 sees */
    assert_false(locked(t, &b, 3, WINDOW_MS));
    assert_false(locked(t, &a6, 3, WINDOW_MS));            /* same low bytes, other family */
    assert_false(locked(t, &a, 0, WINDOW_MS));             /* 0: no limit */
    assert_true(locked(t, &a, 2, WINDOW_MS));              /* a listener with a lower max */
    assert_int_equal(failures(t, &b, 5, 0, WINDOW_MS), 5); /* not counted with no limit */
    assert_false(locked(t, &b, 1, WINDOW_MS));
}

/* test_told_per_listener - two listeners share a window with other maxima: each logs its own
 * first refusal (the one with the higher max refuses later, and must not be silent because the
 * other logged) */
static void test_told_per_listener(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(9, false);
    struct smtpd_attempt at;

    (void)state;
    assert_int_equal(failures(t, &a, 3, 3, WINDOW_MS), 3);
    assert_int_equal(smtpd_lockout_try(t, &a, 3, WINDOW_MS, 0, &at), SMTPD_LOCKOUT_REFUSED_FIRST);
    assert_int_equal(smtpd_lockout_try(t, &a, 3, WINDOW_MS, 0, &at), SMTPD_LOCKOUT_REFUSED);
    for (int i = 0; i < 2; i++) /* listener 1 (max 5) still verifies: 4, 5 */
        assert_int_equal(smtpd_lockout_try(t, &a, 5, WINDOW_MS, 1, &at), SMTPD_LOCKOUT_OPEN);
    assert_int_equal(smtpd_lockout_try(t, &a, 5, WINDOW_MS, 1, &at), SMTPD_LOCKOUT_REFUSED_FIRST);
    assert_int_equal(at.failures, 5);
    assert_int_equal(smtpd_lockout_try(t, &a, 5, WINDOW_MS, 1, &at), SMTPD_LOCKOUT_REFUSED);
    assert_int_equal(smtpd_lockout_try(t, &a, 3, WINDOW_MS, 0, &at), SMTPD_LOCKOUT_REFUSED);
}

/* test_attempts_at_once - attempts in progress count: no more than max verify at once */
static void test_attempts_at_once(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(3, false);

    (void)state;
    assert_int_equal(failures(t, &a, 5, 3, WINDOW_MS), 3); /* 5 sessions at once: 3 verify */
}

/* test_given_back - what is not a failure is given back; a success does not clear */
static void test_given_back(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(4, false);

    (void)state;
    assert_int_equal(failures(t, &a, 2, 3, WINDOW_MS), 2);
    for (int i = 0; i < 10; i++) { /* successes, cancels: each counted, then given back */
        struct smtpd_attempt at;
        assert_int_equal(smtpd_lockout_try(t, &a, 3, WINDOW_MS, 0, &at), SMTPD_LOCKOUT_OPEN);
        smtpd_lockout_undo(t, &a, WINDOW_MS, &at);
    }
    assert_false(locked(t, &a, 3, WINDOW_MS));
    assert_int_equal(failures(t, &a, 1, 3, WINDOW_MS), 1); /* the 3rd: the 2 are still there */
    assert_true(locked(t, &a, 3, WINDOW_MS));
}

/* test_ipv6_by_64 - IPv6 clients of one /64 share a count */
static void test_ipv6_by_64(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage x = addr(0x01000000, true), y = addr(0x02000000, true);
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&y;

    (void)state;
    assert_int_equal(failures(t, &x, 3, 3, WINDOW_MS), 3);
    assert_true(locked(t, &y, 3, WINDOW_MS)); /* another host of the /64 */
    in6->sin6_addr.s6_addr[7] = 1;            /* another /64 */
    assert_false(locked(t, &y, 3, WINDOW_MS));
}

/* test_window_over - the lock ends with the window; the next failure starts a new one */
static void test_window_over(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(5, false);
    (void)state;
    failures(t, &a, 3, 3, SHORT_MS);
    assert_true(locked(t, &a, 3, SHORT_MS));
    nanosleep(&past_short, NULL);
    assert_false(locked(t, &a, 3, SHORT_MS));
    failures(t, &a, 2, 3, SHORT_MS); /* 2 in the new window, not 5 */
    assert_false(locked(t, &a, 3, SHORT_MS));
}

/* test_windows_differ - each window length counts on its own: no listener's window restarts
 * or stretches another's */
static void test_windows_differ(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(6, false);

    (void)state;
    failures(t, &a, 2, 3, WINDOW_MS);                      /* at a listener of 3 per minute */
    assert_int_equal(failures(t, &a, 10, 3, SHORT_MS), 3); /* at one of 3 a second: 3, not 1 */
    assert_false(locked(t, &a, 3, WINDOW_MS));             /* its own 2 */
    nanosleep(&past_short, NULL);
    assert_int_equal(failures(t, &a, 10, 3, SHORT_MS), 3);  /* a new short window: 3 more */
    assert_int_equal(failures(t, &a, 10, 3, WINDOW_MS), 1); /* the minute's: 1 more, then 454 */
    assert_true(locked(t, &a, 3, WINDOW_MS));
}

/* test_undo_in_its_window - a give-back touches only the window it was counted in */
static void test_undo_in_its_window(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(9, false);
    struct smtpd_attempt slow, none;

    (void)state;
    assert_int_equal(smtpd_lockout_try(t, &a, 3, SHORT_MS, 0, &slow), SMTPD_LOCKOUT_OPEN);
    nanosleep(&past_short, NULL); /* a LOGIN exchange outlasts the window */
    failures(t, &a, 3, 3, SHORT_MS);
    smtpd_lockout_undo(t, &a, SHORT_MS, &slow); /* that success must not lift the new lock */
    assert_true(locked(t, &a, 3, SHORT_MS));
    assert_int_equal(smtpd_lockout_try(t, &a, 0, SHORT_MS, 0, &none), SMTPD_LOCKOUT_OPEN);
    assert_int_equal(none.slot, -1);            /* no limit: nothing counted... */
    smtpd_lockout_undo(t, &a, SHORT_MS, &none); /* ...and nothing given back */
    assert_true(locked(t, &a, 3, SHORT_MS));
}

/* test_full_table - with every entry live, a new address is still counted (the oldest went) */
static void test_full_table(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage first = addr(100, false), last = addr(100 + 4999, false);
    struct sockaddr_storage late = addr(0xfffff, false);

    (void)state;
    for (uint32_t i = 0; i < 5000; i++) { /* 904 more than the table holds */
        struct sockaddr_storage p = addr(i + 100, false);
        failures(t, &p, 1, 1, WINDOW_MS);
    }
    assert_false(locked(t, &first, 1, WINDOW_MS)); /* the oldest window gave way... */
    assert_true(locked(t, &last, 1, WINDOW_MS));   /* ...the newest stays */
    failures(t, &late, 2, 2, WINDOW_MS);
    assert_true(locked(t, &late, 2, WINDOW_MS));
}

/* test_operator_view - the master's pages (of a few hundred bytes) list each address once;
 * unlock forgets an IPv6 client's whole /64 */
static void test_operator_view(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage x = addr(0x01000000, true), y = addr(0x02000000, true);
    char page[200], *line;
    unsigned seen[50] = {0}, lines = 0;
    size_t from = 0;
    uint32_t had;

    (void)state;
    for (uint32_t i = 0; i < 50; i++) {
        struct sockaddr_storage p = addr(i, false);
        failures(t, &p, i % 3 + 1, 5, WINDOW_MS);
    }
    while (from < SL_SMTPD_LOCKOUT_SLOTS) { /* about 9 lines a page */
        assert_true(sl_smtpd_lockout_page(t, &from, page, sizeof page));
        for (line = page; *line != '\0'; line = strchr(line, '\n') + 1) {
            unsigned a, b, c, d, n;
            assert_int_equal(sscanf(line, "%u.%u.%u.%u %u ", &a, &b, &c, &d, &n), 5);
            assert_true(a == 10 && b == 0 && c == 0 && d < 50 && n == d % 3 + 1);
            seen[d]++;
            lines++;
        }
    }
    assert_int_equal(lines, 50);
    for (unsigned i = 0; i < 50; i++)
        assert_int_equal(seen[i], 1);
    failures(t, &x, 4, 5, WINDOW_MS);
    assert_int_equal(sl_smtpd_lockout_forget(t, &y, &had), SL_SMTPD_FORGOTTEN); /* same /64 */
    assert_int_equal(had, 4);
    assert_int_equal(sl_smtpd_lockout_forget(t, &x, &had), SL_SMTPD_NONE_COUNTED);
    assert_int_equal(failures(t, &x, 5, 5, WINDOW_MS), 5); /* a fresh count */
}

/* test_shared - the count is the same in every process: a child's failures lock the parent */
static void test_shared(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(7, false);
    int status;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(failures(t, &a, 3, 3, WINDOW_MS) == 3 ? 0 : 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(locked(t, &a, 3, WINDOW_MS));
}

/* test_dead_holder - a process killed while it held the lock blocks nobody */
static void test_dead_holder(void **state)
{
    struct sl_smtpd_lockout *t = sl_smtpd_lockout_new();
    struct sockaddr_storage a = addr(8, false);
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
    alarm(10);                                /* a lock that is not robust: killed, not hung */
    failures(t, &a, 1, 3, WINDOW_MS);         /* the dead holder's lock is taken over at once... */
    assert_true(locked(t, &a, 3, WINDOW_MS)); /* ...not skipped after the 1 s wait */
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_locked_after_max), cmocka_unit_test(test_told_per_listener),
        cmocka_unit_test(test_attempts_at_once), cmocka_unit_test(test_given_back),
        cmocka_unit_test(test_ipv6_by_64),       cmocka_unit_test(test_window_over),
        cmocka_unit_test(test_windows_differ),   cmocka_unit_test(test_undo_in_its_window),
        cmocka_unit_test(test_full_table),       cmocka_unit_test(test_operator_view),
        cmocka_unit_test(test_shared),           cmocka_unit_test(test_dead_holder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
