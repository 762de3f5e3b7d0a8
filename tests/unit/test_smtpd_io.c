/*
 * test_smtpd_io.c - the listener's input buffer (listener/io.c) after AUTH: io_wipe_read
 * leaves no byte of the lines already read (an AUTH PLAIN initial response is the password in
 * base64), while what the client pipelined after them is still read, in order.
 *
 * Real socket pair, real reads; the session-level AUTH replies are e2e/listener.sh's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "listener/smtpd_impl.h"

#define SECRET "c2VjcmV0LXBhc3N3b3Jk" /* base64 of a password */

static struct io io; /* 80 KiB: not on the stack */

/* has - do the len bytes at p hold s? */
static bool has(const char *p, size_t len, const char *s)
{
    return memmem(p, len, s, strlen(s)) != NULL;
}

/* connected - io reads sv[0] of a new socket pair; the test writes the client's bytes to sv[1] */
static void connected(int sv[2], const char *sent, size_t len)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    smtpd_io_no_timers();
    io_init(&io, sv[0]);
    assert_int_equal(write(sv[1], sent, len), (ssize_t)len);
}

/* test_wipe_keeps_pipelined - the AUTH line is gone from the buffer, the next command is not */
static void test_wipe_keeps_pipelined(void **state)
{
    static const char sent[] = "AUTH PLAIN " SECRET "\r\nNOOP\r\nQUIT\r\n";
    char line[512];
    size_t len;
    int sv[2];

    (void)state;
    connected(sv, sent, sizeof sent - 1);
    assert_int_equal(io_line(&io, line, sizeof line - 1, &len, false), IO_OK);
    assert_string_equal(line, "AUTH PLAIN " SECRET);
    assert_true(has(io.in, sizeof io.in, SECRET)); /* read, and still there */
    io_wipe_read(&io);
    assert_false(has(io.in, sizeof io.in, SECRET));
    assert_int_equal(io_line(&io, line, sizeof line - 1, &len, false), IO_OK);
    assert_string_equal(line, "NOOP");
    assert_int_equal(io_line(&io, line, sizeof line - 1, &len, false), IO_OK);
    assert_string_equal(line, "QUIT");
    close(sv[0]);
    close(sv[1]);
}

/* test_wipe_stale_tail - bytes of an earlier, longer read past the current end are zeroed too */
static void test_wipe_stale_tail(void **state)
{
    static const char first[] = "NOOP\r\nAUTH PLAIN " SECRET "\r\n", second[] = "NOOP\r\n";
    char line[512];
    size_t len;
    int sv[2];

    (void)state;
    connected(sv, first, sizeof first - 1);
    for (int i = 0; i < 2; i++)
        assert_int_equal(io_line(&io, line, sizeof line - 1, &len, false), IO_OK);
    assert_int_equal(write(sv[1], second, sizeof second - 1), (ssize_t)(sizeof second - 1));
    assert_int_equal(io_line(&io, line, sizeof line - 1, &len, false), IO_OK); /* refilled at 0 */
    assert_string_equal(line, "NOOP");
    assert_true(has(io.in, sizeof io.in, SECRET)); /* beyond the new end, from the first read */
    io_wipe_read(&io);
    assert_false(has(io.in, sizeof io.in, SECRET));
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wipe_keeps_pipelined),
        cmocka_unit_test(test_wipe_stale_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
