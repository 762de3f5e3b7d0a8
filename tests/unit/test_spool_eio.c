/*
 * test_spool_eio.c - a disk that fails a read (EIO) does not make a queue file damaged.
 *
 * Every case works on a real spool in a private temporary directory.  The one thing that
 * cannot happen here for real is a failing disk, so read(2) and pread(2) (pread64, its symbol) of
 * the spool's code are linked to the wrappers below (ld --wrap, this program only): while
 * `fail_reads` is set, a read of a regular file fails with EIO, as a bad sector or a lost network
 * disk would make it.  The readers must say EIO, not EBADMSG: their callers set a damaged file
 * aside (corrupt/) and start a damaged state again as never tried, which for a state file
 * that could not be read once means its delivered recipients get the message again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/sl_spool.h"
#include "tests/lib/tmpdir.h"

static bool fail_reads; /* the fault: reads of regular files fail with EIO */

ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __real_pread64(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off);

/* failing - does the fault apply to fd (a regular file, while fail_reads is set) */
static bool failing(int fd)
{
    struct stat st;

    return fail_reads && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

ssize_t __wrap_read(int fd, void *buf, size_t n)
{
    if (failing(fd)) {
        errno = EIO;
        return -1;
    }
    return __real_read(fd, buf, n);
}

ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off)
{
    if (failing(fd)) {
        errno = EIO;
        return -1;
    }
    return __real_pread64(fd, buf, n, off);
}

/* A private spool for one case. */
struct fixture {
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];

    snprintf(f->dir, sizeof f->dir, "/tmp/sluice-spool.XXXXXX");
    if (mkdtemp(f->dir) == NULL || sl_spool_init(f->dir, err, sizeof err) < 0)
        return -1;
    fail_reads = false;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fail_reads = false;
    test_rmtree(f->dir);
    free(f);
    return 0;
}

/* write_msg - a message to rcpt[0..n) in dir; its id */
static void write_msg(const char *dir, const char *const *rcpt, size_t n, char *id)
{
    struct sl_spool_new m = {.binding = "default",
                             .sender = "s@example.org",
                             .rcpt = rcpt,
                             .nrcpt = n,
                             .body = "Subject: t\n\nhello\n",
                             .len = 18};
    char err[256];

    assert_int_equal(sl_spool_write(dir, &m, id, err, sizeof err), 0);
}

/* The envelope: a read error is that error, and the message reads whole once the disk
 * answers again. */
static void test_envelope_read_error(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org"};
    struct sl_spool_msg m;
    char id[SL_SPOOL_ID_LEN + 1], err[256];

    write_msg(f->dir, rcpt, 1, id);
    fail_reads = true;
    errno = 0;
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), -1);
    assert_int_equal(errno, EIO);
    assert_non_null(strstr(err, "Input/output error"));
    errno = 0;
    assert_int_equal(sl_spool_read_full(f->dir, id, &m, err, sizeof err), -1);
    assert_int_equal(errno, EIO);

    fail_reads = false;
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
    assert_int_equal(m.nrcpt, 1);
    assert_string_equal(m.rcpt[0].addr, "a@x.org");
    sl_spool_msg_free(&m);
}

/* The body, read apart from the envelope: the same. */
static void test_body_read_error(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org"};
    struct sl_spool_msg m;
    char id[SL_SPOOL_ID_LEN + 1], err[256], *body;
    size_t len;

    write_msg(f->dir, rcpt, 1, id);
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
    fail_reads = true;
    errno = 0;
    assert_int_equal(sl_spool_body(f->dir, &m, &body, &len, err, sizeof err), -1);
    assert_int_equal(errno, EIO);
    assert_null(body);

    fail_reads = false;
    assert_int_equal(sl_spool_body(f->dir, &m, &body, &len, err, sizeof err), 0);
    assert_non_null(strstr(body, "hello\r\n"));
    free(body);
    sl_spool_msg_free(&m);
}

/* A part's state: a read error is that error (not damage, which would start the part again
 * as never tried), and the delivered recipient is still delivered once the disk answers. */
static void test_state_read_error(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org", "b@x.org"};
    struct sl_spool_state st, back;
    char id[SL_SPOOL_ID_LEN + 1], err[256];

    write_msg(f->dir, rcpt, 2, id);
    assert_int_equal(sl_spool_state_load(f->dir, id, 0, 2, &st, err, sizeof err), 0);
    st.attempts = 1;
    st.status[0] = SL_RCPT_DELIVERED;
    assert_int_equal(sl_spool_state_save(f->dir, id, 0, &st, err, sizeof err), 0);
    sl_spool_state_free(&st);

    fail_reads = true;
    errno = 0;
    assert_int_equal(sl_spool_state_load(f->dir, id, 0, 2, &back, err, sizeof err), -1);
    assert_int_equal(errno, EIO);
    assert_non_null(strstr(err, "Input/output error"));

    fail_reads = false;
    assert_int_equal(sl_spool_state_load(f->dir, id, 0, 2, &back, err, sizeof err), 0);
    assert_int_equal(back.attempts, 1);
    assert_int_equal(back.status[0], SL_RCPT_DELIVERED);
    assert_int_equal(back.status[1], SL_RCPT_PENDING);
    sl_spool_state_free(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_envelope_read_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_read_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_read_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
