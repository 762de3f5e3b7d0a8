/*
 * test_readahead.c - the start scan's read-ahead thread (master/readahead.c).
 *
 * On a real spool of a few thousand messages: every entry of the listing, taken in order,
 * gives what a read of its own would (the same domain, binding and recipients; the same
 * failure for a damaged file and for a file gone since the listing), each entry once; a stop
 * half-way frees what was read ahead (the sanitizer build checks); the master never waits for
 * a read the thread has begun; and no process forked while the thread reads inherits a
 * descriptor of a spool file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/sl_fork.h"
#include "master/sl_readahead.h"
#include "spool/sl_spool.h"
#include "tests/lib/tmpdir.h"

#define MESSAGES 1500
#define DAMAGED  7  /* every DAMAGED-th message is overwritten with garbage */
#define GONE     11 /* every GONE-th message is removed after the listing */

/* A spool of MESSAGES messages, listed. */
struct fixture {
    char dir[64];
    struct sl_spool_ids ids, stated;
};

/* domain_of - the domain message i was written for */
static void domain_of(size_t i, char *buf, size_t len)
{
    snprintf(buf, len, "d%zu.example", i % 97);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256], rcpt[64], dom[32];

    snprintf(f->dir, sizeof f->dir, "/tmp/sluice-ahead.XXXXXX");
    if (mkdtemp(f->dir) == NULL || sl_spool_init(f->dir, err, sizeof err) < 0)
        return -1;
    for (size_t i = 0; i < MESSAGES; i++) {
        char id[SL_SPOOL_ID_LEN + 1];
        const char *r[] = {rcpt};
        domain_of(i, dom, sizeof dom);
        snprintf(rcpt, sizeof rcpt, "user%zu@%s", i, dom);
        struct sl_spool_new m = {.binding = i % 2 ? "b1" : "b2",
                                 .sender = "s@example.org",
                                 .rcpt = r,
                                 .nrcpt = 1,
                                 .body = "Subject: t\n\nhello\n",
                                 .len = 18};
        if (sl_spool_write(f->dir, &m, id, err, sizeof err) < 0)
            return -1;
    }
    if (sl_spool_list(f->dir, &f->ids, &f->stated, false) < 0 || f->ids.n != MESSAGES)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    test_rmtree(f->dir);
    sl_spool_ids_free(&f->ids);
    sl_spool_ids_free(&f->stated);
    free(f);
    return 0;
}

/* queue_path - dir/queue/ID */
static void queue_path(const struct fixture *f, size_t i, char *buf, size_t len)
{
    snprintf(buf, len, "%s/queue/%s", f->dir, f->ids.id[i]);
}

/* spoil - damage and remove some entries after the listing */
static void spoil(const struct fixture *f)
{
    char path[256];

    for (size_t i = 0; i < f->ids.n; i++) {
        queue_path(f, i, path, sizeof path);
        if (i % GONE == 0) {
            assert_int_equal(unlink(path), 0);
        } else if (i % DAMAGED == 0) {
            FILE *fp = fopen(path, "w");
            assert_non_null(fp);
            fputs("not a spool file\n\n", fp);
            fclose(fp);
        }
    }
}

/* What sl_readahead_take gave for one entry. */
struct taken {
    int got, err_no;
    const char *err;
    struct sl_spool_msg *m;
};

/* expect_own_read - entry i as taken matches a read of its own: the same envelope, or the
 * same failure (errno, and the same message) */
static void expect_own_read(const struct fixture *f, size_t i, const struct taken *t)
{
    struct sl_spool_msg own, *m = t->m;
    char err[256], dom[32];
    int rc = sl_spool_read(f->dir, f->ids.id[i], &own, err, sizeof err);
    int e = errno;

    if (t->got == 0) { /* the caller's to read: what it reads is its own read */
        if (rc == 0)
            sl_spool_msg_free(&own);
        return;
    }
    if (i % GONE == 0 || i % DAMAGED == 0) {
        assert_int_equal(t->got, -1);
        assert_int_equal(rc, -1);
        assert_int_equal(e, i % GONE == 0 ? ENOENT : EBADMSG);
        assert_int_equal(t->err_no, e);
        assert_string_equal(t->err, err);
        return;
    }
    assert_int_equal(t->got, 1);
    assert_int_equal(rc, 0);
    domain_of(i, dom, sizeof dom);
    assert_string_equal(m->id, f->ids.id[i]);
    assert_int_equal(m->nparts, 1);
    assert_string_equal(m->domain[0], dom);
    assert_string_equal(m->binding, i % 2 ? "b1" : "b2");
    assert_string_equal(m->rcpt[0].addr, own.rcpt[0].addr);
    sl_spool_msg_free(m);
    sl_spool_msg_free(&own);
}

/* Every entry from the start on gives its own read's result, and the thread does read a
 * share of them (the master is slowed down here by its checking read of each, and starts
 * taking only after the thread had 50 ms: on a busy machine it may not run before the
 * master took every entry itself, and that would say nothing of its reads). */
static void test_all_taken_in_order(void **state)
{
    struct fixture *f = *state;
    const size_t from = 100;
    const struct timespec head_start = {.tv_nsec = 50 * 1000 * 1000};
    size_t ahead = 0, failed = 0;
    struct sl_readahead *r;

    spoil(f);
    r = sl_readahead_start(f->dir, &f->ids, from);
    assert_non_null(r);
    nanosleep(&head_start, NULL);
    for (size_t i = 0; i < f->ids.n; i++) {
        struct sl_spool_msg m;
        char err[256] = "";
        errno = 0;
        struct taken t = {.got = sl_readahead_take(r, i, &m, err, sizeof err),
                          .err_no = errno,
                          .err = err,
                          .m = &m};

        if (i < from)
            assert_int_equal(t.got, 0); /* before its start: never read ahead */
        ahead += t.got != 0;
        failed += t.got < 0;
        expect_own_read(f, i, &t);
    }
    sl_readahead_stop(r);
    assert_true(ahead > 0);
    assert_true(failed > 0);
}

/* A stop half-way: the thread ends, and what it read that was not taken is freed. */
static void test_stop_halfway(void **state)
{
    struct fixture *f = *state;
    struct sl_readahead *r = sl_readahead_start(f->dir, &f->ids, 0);

    assert_non_null(r);
    for (size_t i = 0; i < f->ids.n / 2; i++) {
        struct sl_spool_msg m;
        char err[256];
        if (sl_readahead_take(r, i, &m, err, sizeof err) > 0)
            sl_spool_msg_free(&m);
    }
    usleep(20000); /* let it fill its ring */
    sl_readahead_stop(r);
    sl_readahead_stop(NULL);
}

/* spool_fds - descriptors this process holds on files of dir's queue/ */
static int spool_fds(const char *dir)
{
    char qdir[128], link[320], target[512];
    struct dirent *e;
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    if (d == NULL)
        return -1;
    snprintf(qdir, sizeof qdir, "%s/queue/", dir);
    while ((e = readdir(d)) != NULL) {
        ssize_t len;
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        if ((len = readlink(link, target, sizeof target - 1)) <= 0)
            continue;
        target[len] = '\0';
        n += strncmp(target, qdir, strlen(qdir)) == 0;
    }
    closedir(d);
    return n;
}

/* A fork while the thread reads (a worker replaced during the start scan), made as the master
 * makes it (util/sl_fork.h), waits for the read in hand: the child holds no spool file open. */
static void test_fork_inherits_no_file(void **state)
{
    struct fixture *f = *state;
    struct sl_readahead *r = sl_readahead_start(f->dir, &f->ids, 0);
    int forks = 0;

    assert_non_null(r);
    for (size_t i = 0; i < f->ids.n; i++) {
        struct sl_spool_msg m;
        char err[256];
        if (sl_readahead_take(r, i, &m, err, sizeof err) > 0)
            sl_spool_msg_free(&m);
        if (i % 8 == 0) {
            int status;
            pid_t pid;
            while (!sl_fork_begin())
                continue;
            pid = fork();
            sl_fork_end(pid == 0);
            assert_true(pid >= 0);
            if (pid == 0)
                _exit(spool_fds(f->dir) == 0 ? 0 : 1);
            assert_int_equal(waitpid(pid, &status, 0), pid);
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 0);
            forks++;
        }
    }
    sl_readahead_stop(r);
    assert_true(forks >= MESSAGES / 8);
}

/* take_first_held - with the fork gate held (as a fork holds it) from before the thread's
 * start, so that the thread stops at it with its first entry claimed or about to be: take
 * every entry up to that one after a nap of ms, let the thread go, stop it; the reads it
 * dropped.  A take that waits for the thread would wait here for ever: the alarm ends the
 * test. */
static size_t take_first_held(const struct fixture *f, size_t first, long ms)
{
    const struct timespec nap = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L};
    struct sl_spool_msg m;
    char err[256];
    struct sl_readahead *r;
    size_t dropped;
    int got = 0;

    while (!sl_fork_begin())
        continue;
    r = sl_readahead_start(f->dir, &f->ids, 0);
    if (r == NULL)
        sl_fork_end(false); /* a failed assert leaves: the gate must not stay held for the rest */
    assert_non_null(r);
    nanosleep(&nap, NULL);
    alarm(10);
    for (size_t i = 0; i <= first && got == 0; i++)
        got = sl_readahead_take(r, i, &m, err, sizeof err);
    alarm(0);
    sl_fork_end(false);
    dropped = sl_readahead_stop(r);
    if (got > 0)
        sl_spool_msg_free(&m);
    assert_int_equal(got, 0); /* each entry up to the held one is the caller's to read */
    return dropped;
}

/* The master never waits for a read the thread has begun: the thread claims its first entry
 * (half its ring ahead) and is held before reading it, as a busy machine can hold it off its
 * CPU.  The master's take of that entry comes back at once, the caller's to read, and the
 * thread, let go, drops its own read (the sanitizer build checks that it is freed).  The nap
 * grows until the thread did claim the entry first (a drop); before, that take waited for
 * the thread, here for ever. */
static void test_master_never_waits(void **state)
{
    const size_t first = 512; /* half the thread's ring (RING / 2 in readahead.c) */
    size_t dropped = 0;

    for (long ms = 1; ms <= 512 && dropped == 0; ms *= 2)
        dropped = take_first_held(*state, first, ms);
    assert_int_equal(dropped, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* one spool for all (writing it is most of the time); the one that spoils it last */
        cmocka_unit_test(test_stop_halfway),
        cmocka_unit_test(test_master_never_waits),
        cmocka_unit_test(test_fork_inherits_no_file),
        cmocka_unit_test(test_all_taken_in_order),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
