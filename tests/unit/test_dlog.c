/*
 * test_dlog.c - the delivery log's JSON line: every field in its place, strings escaped as
 * JSON wants (quote, backslash, control characters), nulls for what is absent, and a line
 * whose strings overflow the buffer still cut into one closed line.
 *
 * Each case writes into a pipe and reads the line back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dlog/sl_dlog.h"

/* line_of - sl_dlog_write's output for l, read back from a pipe, into buf */
static size_t line_of(const struct sl_dlog_line *l, char *buf, size_t len)
{
    int p[2];
    ssize_t n;

    assert_int_equal(pipe(p), 0);
    sl_dlog_write(p[1], l);
    close(p[1]);
    n = read(p[0], buf, len - 1);
    close(p[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    return (size_t)n;
}

/* test_fields - a delivered line: fields in order, the reply's quote, backslash and control
 * characters escaped, an absent phase null */
static void test_fields(void **state)
{
    const char *rcpt[] = {"a@example.com", "b\"q@example.com"};
    struct sl_dlog_line l = {.id = "08E5N72OcjMkUCr11iN3",
                             .rcpt = rcpt,
                             .nrcpt = 2,
                             .binding = "b1",
                             .domain = "example.com",
                             .mx = "mx.example.com",
                             .ip = "127.0.1.1",
                             .outcome = "delivered",
                             .reply = "250 ok\\done\t\x01"};
    char buf[4096];

    (void)state;
    line_of(&l, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"id\":\"08E5N72OcjMkUCr11iN3\",\"rcpt\":[\"a@example.com\","
                                "\"b\\\"q@example.com\"],\"binding\":\"b1\",\"domain\":"
                                "\"example.com\",\"mx\":\"mx.example.com\",\"ip\":\"127.0.1.1\","
                                "\"outcome\":\"delivered\",\"reply\":\"250 ok\\\\done\\u0009"
                                "\\u0001\",\"phase\":null}\n"));
    assert_int_equal(strncmp(buf, "{\"time\":\"", 9), 0);
}

/* test_cut - strings longer than the line's buffer: one line, closed, cut */
static void test_cut(void **state)
{
    static char big[40000], buf[40000];
    struct sl_dlog_line l = {.id = "X", .outcome = "bounced"};
    size_t n;

    (void)state;
    memset(big, 'r', sizeof big - 1);
    l.reply = big;
    n = line_of(&l, buf, sizeof buf);
    assert_true(n < 16384);
    assert_int_equal(buf[n - 2], '}');
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', n - 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
