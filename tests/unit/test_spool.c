/*
 * test_spool.c - the durable queue on disk (spool/).
 *
 * Every case works on a real spool in a private temporary directory: the
 * addresses inject accepts, what a written message reads back as (parts,
 * duplicates, null sender, bounce flag), the stored body (CRLF, dot-stuffed),
 * refusals that leave nothing behind, damaged files that are refused without
 * a crash, part states, removal, the scan and its garbage sweep, the
 * notification datagram, the RFC 3461 values an SMTP client gives (kept and
 * read back, damaged ones refused) and the group commit of concurrent writers.
 * A failing disk (tests/lib/fail_read.c) is told from a damaged file: the readers say EIO,
 * not EBADMSG, for their callers set a damaged file aside (corrupt/) and start a damaged
 * state again as never tried, which for a state file that could not be read once means its
 * delivered recipients get the message again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spool/sl_actions.h"
#include "spool/sl_spool.h"
#include "spool/sl_spool_lock.h"
#include "spool/spool_impl.h"
#include "tests/lib/fail_read.h"
#include "tests/lib/tmpdir.h"

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
    test_fail_reads(NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    test_fail_reads(NULL); /* a case that failed with the fault on */
    test_rmtree(f->dir);
    free(f);
    return 0;
}

/* entries - files in dir/sub (not . and ..) */
static int entries(const char *dir, const char *sub)
{
    char path[256];
    struct dirent *e;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof path, "%s/%s", dir, sub);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* put_file - dir/sub/name with text (a hand-made spool file) */
static void put_file(const char *dir, const char *sub, const char *name, const char *text,
                     size_t len)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    fclose(fp);
}

/* mkdir_corrupt - dir/corrupt, there or made */
static int mkdir_corrupt(const char *dir)
{
    char path[256];

    snprintf(path, sizeof path, "%s/corrupt", dir);
    return mkdir(path, 0750) == 0 || errno == EEXIST ? 0 : -1;
}

/* unlink_in - dir/sub/name goes */
static int unlink_in(const char *dir, const char *sub, const char *name)
{
    char path[256];

    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    return unlink(path);
}

/* has_text - dir/sub/name holds exactly text */
static bool has_text(const char *dir, const char *sub, const char *name, const char *text)
{
    char path[256], buf[256];
    size_t n;
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    if ((fp = fopen(path, "r")) == NULL)
        return false;
    n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return strcmp(buf, text) == 0;
}

/* exists - dir/sub/name is there */
static bool exists(const char *dir, const char *sub, const char *name)
{
    char path[256];
    struct stat st;

    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    return stat(path, &st) == 0;
}

/* write_msg - queue a message for rcpts with a one-line body; the id */
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

static void test_address_good(void **state)
{
    static const char *const good[] = {
        "a@b.c",
        "first.last@example.com",
        "user+tag@sub-domain.example.co.uk",
        "!#$%&'*+-/=?^_`{|}~@example.org",
        "\"quoted\"@example.com",
        "\"a\\\"b@c\"@example.com",
        "x@[127.0.0.1]",
        "x@[IPv6:2001:db8::1]",
        "x@[ipv6:::1]",
        "postmaster@localhost",
        /* 64-octet local part, the limit */
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com",
    };
    char err[128];

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!sl_spool_valid_address(good[i], false, err, sizeof err))
            fail_msg("refused %s: %s", good[i], err);
    assert_true(sl_spool_valid_address("", true, err, sizeof err));
}

/* A refused address and a word of the reason. */
struct bad {
    const char *addr, *why;
};

static void test_address_bad(void **state)
{
    char local65[80], label64[80], long_domain[300], long_path[300];
    const struct bad bad[] = {
        {"", "empty"},
        {"plain", "local@domain"},
        {"@example.com", "local part"},
        {"a@", "domain"},
        {"a@b..c", "domain"},
        {".a@b.c", "local part"},
        {"a.@b.c", "local part"},
        {"a..b@c.d", "local part"},
        {"a b@c.d", "space"},
        {"\"a b\"@c.d", "space"},
        {"a\r@b.c", "CR"},
        {"a@b.c\r\n", "CR"},
        {"a\n@b.c", "LF"},
        {"a\t@b.c", "control"},
        {"a\x01@b.c", "control"},
        {"\xc3\xa9@b.c", "non-ASCII"},
        {"a@-b.c", "domain"},
        {"a@b-.c", "domain"},
        {"a@b_c.d", "domain"},
        {"a@b.c.", "domain"},
        {"a@[1.2.3]", "domain"},
        {"a@[IPv6:zz::1]", "domain"},
        {"a@[1.2.3.4", "domain"},
        {"\"unterminated@x.org", "local@domain"},
        {"\"a\"b@x.org", "local@domain"},
        {local65, "local part longer than 64"},
        {label64, "domain"},
        {long_domain, "domain longer than 255"},
        {long_path, "longer than 254"},
    };
    char err[128];

    (void)state;
    snprintf(local65, sizeof local65, "%065d@example.com", 0);
    snprintf(label64, sizeof label64, "a@%064d.com", 0);
    /* four labels of 63 and "com": a domain of 259 octets */
    snprintf(long_domain, sizeof long_domain, "a@%063d.%063d.%063d.%063d.com", 1, 2, 3, 4);
    /* 64 + 1 + 190 = 255 octets: every part within its own limit */
    snprintf(long_path, sizeof long_path, "%064d@%063d.%063d.%062d", 1, 2, 3, 4);
    assert_int_equal(strlen(long_domain), 2 + 259);
    assert_int_equal(strlen(long_path), 255);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (sl_spool_valid_address(bad[i].addr, false, err, sizeof err))
            fail_msg("accepted bad address #%zu", i);
        if (strstr(err, bad[i].why) == NULL)
            fail_msg("bad address #%zu: reason \"%s\" lacks \"%s\"", i, err, bad[i].why);
    }
    /* 254 octets is the limit and passes */
    long_path[254] = '\0';
    assert_true(sl_spool_valid_address(long_path, false, err, sizeof err));
}

static void test_address_domain(void **state)
{
    char d[256];

    (void)state;
    sl_spool_address_domain("Joe@Example.COM", d, sizeof d);
    assert_string_equal(d, "example.com");
    sl_spool_address_domain("\"a@B\"@Sub.Example.org", d, sizeof d);
    assert_string_equal(d, "sub.example.org");
    sl_spool_address_domain("x@[ipv6:2001:DB8::1]", d, sizeof d);
    assert_string_equal(d, "[IPv6:2001:db8::1]");
}

static void test_write_read_roundtrip(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@Example.COM", "c@other.net",   "b@example.com",
                          "a@EXAMPLE.com", "A@example.com", "c@OTHER.net"};
    struct sl_spool_new n = {.binding = "b1",
                             .sender = "",
                             .dsn = true,
                             .rcpt = rcpt,
                             .nrcpt = 6,
                             .body = "x\n",
                             .len = 2};
    struct sl_spool_msg m;
    char id[SL_SPOOL_ID_LEN + 1], err[256];
    int64_t now = (int64_t)time(NULL);

    assert_int_equal(sl_spool_write(f->dir, &n, id, err, sizeof err), 0);
    assert_int_equal(strlen(id), SL_SPOOL_ID_LEN);
    assert_true(sl_spool_id_valid(id));
    assert_true(exists(f->dir, "queue", id));
    assert_int_equal(entries(f->dir, "tmp"), 0);

    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
    assert_string_equal(m.id, id);
    assert_string_equal(m.binding, "b1");
    assert_string_equal(m.sender, "");
    assert_true(m.dsn);
    assert_int_equal(m.size, 3);
    assert_true(m.arrival >= now - 1 && m.arrival <= now + 1);
    /* duplicates (domain in any case, same local part) kept once, in order */
    assert_int_equal(m.nrcpt, 4);
    assert_string_equal(m.rcpt[0].addr, "a@Example.COM");
    assert_string_equal(m.rcpt[1].addr, "c@other.net");
    assert_string_equal(m.rcpt[2].addr, "b@example.com");
    assert_string_equal(m.rcpt[3].addr, "A@example.com");
    /* parts by lower-cased domain, numbered by first appearance */
    assert_int_equal(m.nparts, 2);
    assert_string_equal(m.domain[0], "example.com");
    assert_string_equal(m.domain[1], "other.net");
    assert_int_equal(m.rcpt[0].part, 0);
    assert_int_equal(m.rcpt[1].part, 1);
    assert_int_equal(m.rcpt[2].part, 0);
    assert_int_equal(m.rcpt[3].part, 0);
    sl_spool_msg_free(&m);
}

static void test_body_crlf_and_dots(void **state)
{
    struct fixture *f = *state;
    static const char in[] = "a\nb\r\nc\rd\r\n.e\n..f\n.\n\r\n\rlast";
    static const char want[] = "a\r\nb\r\nc\r\nd\r\n..e\r\n...f\r\n..\r\n\r\n\r\nlast\r\n";
    const char *rcpt[] = {"r@example.com"};
    struct sl_spool_new n = {.binding = "default",
                             .sender = "s@example.org",
                             .rcpt = rcpt,
                             .nrcpt = 1,
                             .body = in,
                             .len = sizeof in - 1};
    struct sl_spool_msg m;
    char id[SL_SPOOL_ID_LEN + 1], err[256], *body;
    size_t len;

    assert_int_equal(sl_spool_write(f->dir, &n, id, err, sizeof err), 0);
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
    /* size: the CRLF form before stuffing (three stuffed dots fewer) */
    assert_int_equal(m.size, sizeof want - 1 - 3);
    assert_int_equal(sl_spool_body(f->dir, &m, &body, &len, err, sizeof err), 0);
    assert_int_equal(len, sizeof want - 1);
    assert_memory_equal(body, want, len);
    free(body);
    sl_spool_msg_free(&m);
}

/* refused - sl_spool_write refuses n with a reason containing why, and leaves nothing */
static void refused(const char *dir, const struct sl_spool_new *n, const char *why)
{
    char id[SL_SPOOL_ID_LEN + 1], err[256] = "";

    assert_int_equal(sl_spool_write(dir, n, id, err, sizeof err), -1);
    if (strstr(err, why) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", err, why);
    assert_null(strchr(err, '\n'));
    assert_int_equal(entries(dir, "tmp"), 0);
    assert_int_equal(entries(dir, "queue"), 0);
}

static void test_refusals_leave_nothing(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"r@example.com"}, *bad_rcpt[] = {"r@example.com", "x\r@example.com"};
    static const char nul[] = "Subject: x\n\nbad\0byte\n";
    static char line999[1001], line998[1000];
    const char **many = calloc(SL_SPOOL_PARTS_MAX + 1, sizeof *many);
    char(*doms)[32] = calloc(SL_SPOOL_PARTS_MAX + 1, sizeof *doms);
    struct sl_spool_new n = {.binding = "default",
                             .sender = "s@example.org",
                             .rcpt = rcpt,
                             .nrcpt = 1,
                             .body = "ok\n",
                             .len = 3};
    struct sl_spool_new t;
    char id[SL_SPOOL_ID_LEN + 1], err[256];

    t = n, t.sender = "bad sender@x.org";
    refused(f->dir, &t, "bad sender");
    t = n, t.rcpt = bad_rcpt, t.nrcpt = 2;
    refused(f->dir, &t, "contains CR");
    t = n, t.nrcpt = 0;
    refused(f->dir, &t, "no recipient");
    t = n, t.binding = "two words";
    refused(f->dir, &t, "binding");
    char long_binding[SL_SPOOL_BINDING_MAX + 2];
    memset(long_binding, 'b', sizeof long_binding - 1);
    long_binding[sizeof long_binding - 1] = '\0';
    t = n, t.binding = long_binding;
    refused(f->dir, &t, "binding");
    t = n, t.body = "", t.len = 0;
    refused(f->dir, &t, "empty");
    t = n, t.body = nul, t.len = sizeof nul - 1;
    refused(f->dir, &t, "NUL");
    memset(line999, 'x', 999);
    line999[999] = '\n';
    t = n, t.body = line999, t.len = 1000;
    refused(f->dir, &t, "longer than 998");
    /* 3 bytes become "ok\r\n": 4 > 3 */
    t = n, t.max_size = 3;
    refused(f->dir, &t, "larger than 3");
    for (int i = 0; i <= SL_SPOOL_PARTS_MAX; i++) {
        snprintf(doms[i], sizeof doms[i], "r@d%d.example", i);
        many[i] = doms[i];
    }
    t = n, t.rcpt = many, t.nrcpt = SL_SPOOL_PARTS_MAX + 1;
    refused(f->dir, &t, "domains");

    /* the limits themselves pass: 998 octets, exactly max_size, 256 domains */
    memset(line998, 'x', 998);
    line998[998] = '\n';
    t = n, t.body = line998, t.len = 999, t.max_size = 1000, t.nrcpt = 1;
    assert_int_equal(sl_spool_write(f->dir, &t, id, err, sizeof err), 0);
    t = n, t.rcpt = many, t.nrcpt = SL_SPOOL_PARTS_MAX;
    assert_int_equal(sl_spool_write(f->dir, &t, id, err, sizeof err), 0);
    assert_int_equal(entries(f->dir, "queue"), 2);
    free(many);
    free(doms);
}

static void test_ids_unique(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"r@example.com"};
    char ids[200][SL_SPOOL_ID_LEN + 1];

    for (int i = 0; i < 200; i++) {
        write_msg(f->dir, rcpt, 1, ids[i]);
        assert_true(sl_spool_id_valid(ids[i]));
        /* the time prefix never goes back */
        if (i > 0)
            assert_true(memcmp(ids[i - 1], ids[i], 10) <= 0);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    assert_int_equal(entries(f->dir, "queue"), 200);
    assert_false(sl_spool_id_valid("short"));
    assert_false(sl_spool_id_valid("0123456789abcdefghi/"));
    assert_false(sl_spool_id_valid("0123456789abcdefghijk"));
}

/* A damaged queue file and what it must be refused for. */
struct damaged {
    const char *text;
};

static void test_read_damaged(void **state)
{
    struct fixture *f = *state;
    const char *id = "0000000000aaaaaaaaaa";
    const char *pre = "sluice-spool 1\nid 0000000000aaaaaaaaaa\narrival 1\nbinding b\ndsn 0\n"
                      "from s@x.org\nsize 3\n";
    const char *bodies[] = {
        "rcpt 0 r@x.org\n",                        /* no blank line */
        "rcpt 1 r@x.org\n\nx\r\n",                 /* part 1 before part 0 */
        "rcpt 0 r@x.org\nrcpt 1 q@X.org\n\nx\r\n", /* one domain in two parts */
        "rcpt 0 r@x.org\nrcpt 0 q@y.org\n\nx\r\n", /* two domains in one part */
        "rcpt 0 bad address@x.org\n\nx\r\n",
        "rcpt x r@x.org\n\nx\r\n",
        "rcpt 0\n\nx\r\n",
        "\nx\r\n", /* no recipient */
        "rcpt 0 r@x.org\nbogus 1\n\nx\r\n",
    };
    const char *heads[] = {
        "sluice-spool 2\nid 0000000000aaaaaaaaaa\narrival 1\nbinding b\ndsn 0\nfrom \nsize "
        "3\nrcpt 0 r@x.org\n\nx\r\n",
        "sluice-spool 1\nid 0000000000aaaaaaaaab\narrival 1\nbinding b\ndsn 0\nfrom \nsize "
        "3\nrcpt 0 r@x.org\n\nx\r\n",
        "sluice-spool 1\nid 0000000000aaaaaaaaaa\narrival -1\nbinding b\ndsn 0\nfrom \nsize "
        "3\nrcpt 0 r@x.org\n\nx\r\n",
        /* a binding name longer than any binding can have: every job for it would fail */
        "sluice-spool 1\nid 0000000000aaaaaaaaaa\narrival 1\nbinding "
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        "\ndsn 0\nfrom \nsize 3\nrcpt 0 r@x.org\n\nx\r\n",
        /* past the year 9999: milliseconds from it would overflow */
        "sluice-spool 1\nid 0000000000aaaaaaaaaa\narrival 9223372036854775807\nbinding b\ndsn 0\n"
        "from \nsize 3\nrcpt 0 r@x.org\n\nx\r\n",
        "sluice-spool 1\nid 0000000000aaaaaaaaaa\narrival 1\nbinding b\ndsn 2\nfrom \nsize "
        "3\nrcpt 0 r@x.org\n\nx\r\n",
        "sluice-spool 1\nid 0000000000aaaaaaaaaa\narrival 1\nbinding b\ndsn 0\nfrom \nsize "
        "99999999999999999999999\nrcpt 0 r@x.org\n\nx\r\n",
        "sluice-spool 1\nid 0000000000aaaaaaaaaa\narrival 1\nbinding \ndsn 0\nfrom \nsize "
        "3\nrcpt 0 r@x.org\n\nx\r\n",
        "sluice-spool 1\nid 0000000000aaaaaaaaaa\narrival 1\nbinding b\ndsn 0\nsize "
        "3\nrcpt 0 r@x.org\n\nx\r\n",
        "",
    };
    struct sl_spool_msg m;
    char text[1024], err[256], *body, *huge;
    size_t len, hugelen = 200 * 1024;

    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        snprintf(text, sizeof text, "%s%s", pre, bodies[i]);
        put_file(f->dir, "queue", id, text, strlen(text));
        err[0] = '\0';
        if (sl_spool_read(f->dir, id, &m, err, sizeof err) == 0)
            fail_msg("accepted damaged file #%zu", i);
        assert_true(err[0] != '\0');
    }
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        put_file(f->dir, "queue", id, heads[i], strlen(heads[i]));
        if (sl_spool_read(f->dir, id, &m, err, sizeof err) == 0)
            fail_msg("accepted damaged header #%zu", i);
    }
    /* a NUL in the header */
    snprintf(text, sizeof text, "%srcpt 0 r@x.org\n\nx\r\n", pre);
    text[20] = '\0';
    put_file(f->dir, "queue", id, text, strlen(pre) + 19);
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), -1);
    /* a header that never ends, longer than the first read */
    huge = malloc(hugelen);
    memset(huge, 'r', hugelen);
    memcpy(huge, pre, strlen(pre));
    put_file(f->dir, "queue", id, huge, hugelen);
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), -1);
    free(huge);
    /* good header, body without its final CRLF */
    snprintf(text, sizeof text, "%srcpt 0 r@x.org\n\nx", pre);
    put_file(f->dir, "queue", id, text, strlen(text));
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
    assert_int_equal(sl_spool_body(f->dir, &m, &body, &len, err, sizeof err), -1);
    sl_spool_msg_free(&m);
    /* a body far longer than its SIZE (3) can be once stuffed: small, and larger than the
     * first read (never allocated whole) */
    for (size_t blen = 16; blen <= 256 * 1024; blen *= 128) {
        size_t cap = strlen(pre) + 16 + blen;
        huge = malloc(cap);
        size_t hl = (size_t)snprintf(huge, cap, "%srcpt 0 r@x.org\n\n", pre);
        memset(huge + hl, 'x', blen - 2);
        memcpy(huge + hl + blen - 2, "\r\n", 2);
        put_file(f->dir, "queue", id, huge, hl + blen);
        free(huge);
        assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
        errno = 0;
        assert_int_equal(sl_spool_body(f->dir, &m, &body, &len, err, sizeof err), -1);
        assert_int_equal(errno, EBADMSG);
        assert_null(body);
        sl_spool_msg_free(&m);
    }
    /* missing file and a bad id */
    assert_int_equal(sl_spool_read(f->dir, "0000000000aaaaaaaaaz", &m, err, sizeof err), -1);
    assert_int_equal(sl_spool_read(f->dir, "../queue/x", &m, err, sizeof err), -1);
}

static void test_many_recipients(void **state)
{
    struct fixture *f = *state;
    size_t n = 3000;
    const char **rcpt = calloc(n, sizeof *rcpt);
    char(*addr)[64] = calloc(n, sizeof *addr);
    struct sl_spool_msg m;
    char id[SL_SPOOL_ID_LEN + 1], err[256];

    for (size_t i = 0; i < n; i++) {
        snprintf(addr[i], sizeof addr[i], "recipient-number-%05zu@domain%zu.example", i, i % 7);
        rcpt[i] = addr[i];
    }
    write_msg(f->dir, rcpt, n, id);
    /* header > 64 KB: read grows its buffer */
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
    assert_int_equal(m.nrcpt, n);
    assert_int_equal(m.nparts, 7);
    assert_string_equal(m.rcpt[n - 1].addr, addr[n - 1]);
    assert_int_equal(m.rcpt[n - 1].part, (n - 1) % 7);
    sl_spool_msg_free(&m);
    free(rcpt);
    free(addr);
}

/* The largest envelope the writer takes (every recipient of the longest address, with NOTIFY
 * and the longest ORCPT, and the longest ENVID) is read back: a message acknowledged with 250
 * must never be set aside as unreadable. */
static void test_largest_envelope(void **state)
{
    struct fixture *f = *state;
    size_t n = SL_SPOOL_RCPT_MAX;
    const char **rcpt = calloc(n, sizeof *rcpt), **orcpt = calloc(n, sizeof *orcpt);
    unsigned *notify = calloc(n, sizeof *notify);
    char(*addr)[SL_ADDR_MAX + 1] = calloc(n, sizeof *addr);
    char text[SL_SPOOL_DSN_TEXT_MAX + 1], envid[SL_SPOOL_DSN_TEXT_MAX + 1];
    struct sl_spool_new m = {.binding = "b1", .sender = "s@x.org", .body = "x\r\n", .len = 3};
    struct sl_spool_msg r;
    char id[SL_SPOOL_ID_LEN + 1], err[256];

    memset(text, 'o', sizeof text - 1);
    memcpy(text, "rfc822;", 7);
    text[sizeof text - 1] = '\0';
    memset(envid, 'e', sizeof envid - 1);
    envid[sizeof envid - 1] = '\0';
    for (size_t i = 0; i < n; i++) {
        /* a local part of 64 and a domain of 60-letter labels filling the rest of
         * SL_ADDR_MAX, 7 domains */
        size_t at = (size_t)snprintf(addr[i], sizeof addr[i], "%058zu%06zu@d%zu", i, i, i % 7);
        for (size_t k = at; k < SL_ADDR_MAX - 4; k++)
            addr[i][k] = (k - at) % 61 == 0 ? '.' : 'x';
        if (addr[i][SL_ADDR_MAX - 5] == '.')
            addr[i][SL_ADDR_MAX - 5] = 'x';
        memcpy(addr[i] + SL_ADDR_MAX - 4, ".org", 5);
        rcpt[i] = addr[i];
        orcpt[i] = text;
        notify[i] = SL_NOTIFY_FAILURE | SL_NOTIFY_DELAY | SL_NOTIFY_SUCCESS;
    }
    m.rcpt = rcpt, m.nrcpt = n, m.orcpt = orcpt, m.notify = notify, m.envid = envid;
    if (sl_spool_write(f->dir, &m, id, err, sizeof err) != 0)
        fail_msg("write: %s", err);
    if (sl_spool_read(f->dir, id, &r, err, sizeof err) != 0)
        fail_msg("read: %s", err);
    assert_int_equal(r.nrcpt, n);
    assert_string_equal(r.rcpt[n - 1].addr, addr[n - 1]);
    assert_string_equal(r.rcpt[n - 1].orcpt, text);
    sl_spool_msg_free(&r);
    free(rcpt);
    free(orcpt);
    free(notify);
    free(addr);
}

static void test_state_roundtrip(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org", "b@y.org", "c@x.org", "d@y.org"};
    struct sl_spool_state st, back;
    char id[SL_SPOOL_ID_LEN + 1], err[256];

    write_msg(f->dir, rcpt, 4, id);
    /* never saved: the initial state */
    assert_int_equal(sl_spool_state_load(f->dir, id, 1, 4, &st, err, sizeof err), 0);
    assert_int_equal(st.attempts, 0);
    assert_int_equal(st.next, 0);
    assert_string_equal(st.reply, "");
    assert_int_equal(st.nrcpt, 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(st.status[i], SL_RCPT_PENDING);

    st.attempts = 3;
    st.next = 1700000000;
    snprintf(st.reply, sizeof st.reply, "451 4.3.0 try\r\nlater");
    st.status[1] = SL_RCPT_DELIVERED;
    st.status[3] = SL_RCPT_BOUNCED;
    assert_int_equal(sl_spool_state_save(f->dir, id, 1, &st, err, sizeof err), 0);
    assert_int_equal(entries(f->dir, "tmp"), 0);
    assert_int_equal(sl_spool_state_load(f->dir, id, 1, 4, &back, err, sizeof err), 0);
    assert_int_equal(back.attempts, 3);
    assert_int_equal(back.next, 1700000000);
    /* the reply is kept on one line */
    assert_string_equal(back.reply, "451 4.3.0 try  later");
    assert_memory_equal(back.status, "PDPB", 4);
    sl_spool_state_free(&back);

    /* saving again replaces */
    st.attempts = 4;
    st.status[1] = SL_RCPT_PENDING;
    assert_int_equal(sl_spool_state_save(f->dir, id, 1, &st, err, sizeof err), 0);
    assert_int_equal(sl_spool_state_load(f->dir, id, 1, 4, &back, err, sizeof err), 0);
    assert_int_equal(back.attempts, 4);
    assert_memory_equal(back.status, "PPPB", 4);
    sl_spool_state_free(&back);
    sl_spool_state_free(&st);
}

/* plant - a symlink at the spool's tmp/NAME to a victim file outside tmp/, holding
 * "precious"; the victim's path into victim */
static void plant(const struct fixture *f, const char *name, char *victim, size_t len)
{
    char link[256];
    FILE *v;

    snprintf(victim, len, "%s/victim", f->dir);
    assert_non_null(v = fopen(victim, "w"));
    fputs("precious", v);
    fclose(v);
    snprintf(link, sizeof link, "%s/tmp/%s", f->dir, name);
    assert_int_equal(symlink(victim, link), 0);
}

/* assert_untouched - the victim file was neither truncated nor written */
static void assert_untouched(const char *victim)
{
    char buf[64] = "";
    FILE *v = fopen(victim, "r");

    assert_non_null(v);
    assert_non_null(fgets(buf, sizeof buf, v));
    fclose(v);
    assert_string_equal(buf, "precious");
}

/* A writer that replaces a file (a state, the shaping actions) writes its new version under a
 * name known in advance.  A symlink planted there by whoever can write in the spool (the
 * daemon's user) is removed, never followed: sluicectl writes these files as root when no
 * daemon runs, and following it would truncate and fill any file of the system.  The new
 * file is a regular one, and nothing is left in tmp/. */
static void test_replace_never_follows(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org"};
    struct sl_spool_state st;
    struct sl_actions l = {0};
    struct sl_action a = {.kind = SL_ACTION_SUSPEND, .since = 1, .until = 4000000000};
    char id[SL_SPOOL_ID_LEN + 1], name[128], victim[128], path[256], err[256];
    struct stat sb;

    write_msg(f->dir, rcpt, 1, id);
    assert_int_equal(sl_spool_state_load(f->dir, id, 0, 1, &st, err, sizeof err), 0);
    st.attempts = 1;
    snprintf(name, sizeof name, "%s.0.%ld", id, (long)getpid());
    plant(f, name, victim, sizeof victim);
    assert_int_equal(sl_spool_state_save(f->dir, id, 0, &st, err, sizeof err), 0);
    assert_untouched(victim);
    snprintf(path, sizeof path, "%s/state/%s.0", f->dir, id);
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    sl_spool_state_free(&st);
    unlink(victim);

    plant(f, "actions.tmp", victim, sizeof victim);
    snprintf(a.domain, sizeof a.domain, "x.org");
    assert_int_equal(sl_actions_add(&l, &a), 0);
    assert_int_equal(sl_actions_save(f->dir, &l, err, sizeof err), 0);
    assert_untouched(victim);
    snprintf(path, sizeof path, "%s/%s", f->dir, SL_ACTIONS_FILE);
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(entries(f->dir, "tmp"), 0);
    sl_actions_free(&l);
}

/* The operator's hold and a suspect's count of crashed jobs are one line each, kept only
 * while set: they read back (a master started again keeps the part held, or sends the
 * suspect alone), each without the other, and the done lines after them still parse. */
static void test_state_held(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org", "b@x.org"};
    struct sl_spool_state st, back;
    char id[SL_SPOOL_ID_LEN + 1], err[256];

    write_msg(f->dir, rcpt, 2, id);
    assert_int_equal(sl_spool_state_load(f->dir, id, 0, 2, &st, err, sizeof err), 0);
    assert_false(st.held);
    assert_int_equal(st.crashes, 0);
    st.held = true;
    st.crashes = 2;
    st.status[1] = SL_RCPT_DELIVERED;
    for (int round = 0; round < 3; round++) { /* both lines; the count alone; neither */
        assert_int_equal(sl_spool_state_save(f->dir, id, 0, &st, err, sizeof err), 0);
        assert_int_equal(sl_spool_state_load(f->dir, id, 0, 2, &back, err, sizeof err), 0);
        assert_int_equal(back.held, st.held);
        assert_int_equal(back.crashes, st.crashes);
        assert_memory_equal(back.status, "PD", 2);
        sl_spool_state_free(&back);
        st.crashes = st.held ? st.crashes : 0;
        st.held = false;
    }
    sl_spool_state_free(&st);
}

static void test_state_damaged(void **state)
{
    struct fixture *f = *state;
    const char *id = "0000000000bbbbbbbbbb";
    const char *bad[] = {
        "attempts x\nnext 0\nreply \n",
        "attempts 1\nreply \nnext 0\n",
        "attempts 1\nnext 0\nreply \ndone 4 D\n", /* index beyond the message */
        "attempts 1\nnext 0\nreply \ndone 1 X\n",
        "attempts 1\nnext 0\nreply \ndone 1 DD\n",
        "attempts 1\nnext 0\nreply \ncrashes x\n",
        "attempts 1\nnext 0\nreply \ncrashes 10000\n",
        "attempts 1\nnext 0\nreply \ndone 1 D\ncrashes 1\n", /* out of its place */
        "attempts 1\nnext 0\nreply ok",                      /* no final LF: torn */
        "attempts 99999999999\nnext 0\nreply \n",            /* beyond 32 bits */
        "attempts 1\nnext 9223372036854775807\nreply \n",    /* past year 9999: its ms overflow */
        "",
    };
    struct sl_spool_state st;
    char err[256], longreply[SL_REPLY_MAX + 64];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_file(f->dir, "state", "0000000000bbbbbbbbbb.0", bad[i], strlen(bad[i]));
        if (sl_spool_state_load(f->dir, id, 0, 4, &st, err, sizeof err) == 0)
            fail_msg("accepted damaged state #%zu", i);
        assert_null(st.status);
    }
    /* the latest next a file may name (9999-12-31) is no damage */
    put_file(f->dir, "state", "0000000000bbbbbbbbbb.0", "attempts 1\nnext 253402300799\nreply \n",
             strlen("attempts 1\nnext 253402300799\nreply \n"));
    assert_int_equal(sl_spool_state_load(f->dir, id, 0, 4, &st, err, sizeof err), 0);
    assert_int_equal(st.next, 253402300799LL);
    sl_spool_state_free(&st);
    snprintf(longreply, sizeof longreply, "attempts 1\nnext 0\nreply %0*d\n", SL_REPLY_MAX, 0);
    put_file(f->dir, "state", "0000000000bbbbbbbbbb.0", longreply, strlen(longreply));
    assert_int_equal(sl_spool_state_load(f->dir, id, 0, 4, &st, err, sizeof err), -1);
    assert_int_equal(sl_spool_state_load(f->dir, "../x", 0, 4, &st, err, sizeof err), -1);
}

static void test_part_done(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org", "b@y.org", "c@x.org"};
    struct sl_spool_msg m;
    struct sl_spool_state st;
    char id[SL_SPOOL_ID_LEN + 1], err[256];

    write_msg(f->dir, rcpt, 3, id);
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
    assert_int_equal(sl_spool_state_load(f->dir, id, 0, m.nrcpt, &st, err, sizeof err), 0);
    assert_false(sl_spool_part_done(&m, 0, &st));
    st.status[0] = SL_RCPT_DELIVERED;
    assert_false(sl_spool_part_done(&m, 0, &st));
    st.status[2] = SL_RCPT_BOUNCED;
    assert_true(sl_spool_part_done(&m, 0, &st));
    /* part 1's recipient is still pending */
    assert_false(sl_spool_part_done(&m, 1, &st));
    st.status[1] = SL_RCPT_DELIVERED;
    assert_true(sl_spool_part_done(&m, 1, &st));
    sl_spool_state_free(&st);
    sl_spool_msg_free(&m);
}

static void test_remove(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org", "b@y.org"}, *other_rcpt[] = {"c@z.org"};
    struct sl_spool_state st;
    struct sl_spool_msg m;
    char id[SL_SPOOL_ID_LEN + 1], other[SL_SPOOL_ID_LEN + 1], err[256];

    write_msg(f->dir, rcpt, 2, id);
    write_msg(f->dir, other_rcpt, 1, other);
    assert_int_equal(sl_spool_state_load(f->dir, id, 0, 2, &st, err, sizeof err), 0);
    st.attempts = 1;
    assert_int_equal(sl_spool_state_save(f->dir, id, 0, &st, err, sizeof err), 0);
    assert_int_equal(sl_spool_state_save(f->dir, id, 1, &st, err, sizeof err), 0);
    assert_int_equal(sl_spool_state_save(f->dir, other, 0, &st, err, sizeof err), 0);
    sl_spool_state_free(&st);
    assert_int_equal(entries(f->dir, "state"), 3);

    assert_int_equal(sl_spool_remove(f->dir, id, 2), 0);
    assert_false(exists(f->dir, "queue", id));
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), -1);
    assert_int_equal(entries(f->dir, "state"), 1);
    assert_true(exists(f->dir, "queue", other));
    /* removing again (a crash between the two steps) is fine */
    assert_int_equal(sl_spool_remove(f->dir, id, 2), 0);
}

/* Ids seen by the scan. */
struct seen {
    char ids[8][SL_SPOOL_ID_LEN + 1];
    int n;
};

static void see(const char *id, void *ctx)
{
    struct seen *s = ctx;

    assert_true(s->n < 8);
    snprintf(s->ids[s->n++], sizeof s->ids[0], "%s", id);
}

static void test_scan(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org"};
    char ids[3][SL_SPOOL_ID_LEN + 1], path[256], name[32], err[256];
    struct sl_spool_state st;
    struct timespec old[2] = {{.tv_sec = time(NULL) - 120}, {.tv_sec = time(NULL) - 120}};
    struct seen s = {0};

    for (int i = 0; i < 3; i++)
        write_msg(f->dir, rcpt, 1, ids[i]);
    /* a live state, an orphan state, a stale and a fresh tmp file, a stranger */
    assert_int_equal(sl_spool_state_load(f->dir, ids[1], 0, 1, &st, err, sizeof err), 0);
    assert_int_equal(sl_spool_state_save(f->dir, ids[1], 0, &st, err, sizeof err), 0);
    sl_spool_state_free(&st);
    put_file(f->dir, "state", "0000000000cccccccccc.0", "attempts 0\n", 11);
    put_file(f->dir, "tmp", "stale", "x", 1);
    snprintf(path, sizeof path, "%s/tmp/stale", f->dir);
    assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
    put_file(f->dir, "tmp", "fresh", "x", 1);
    put_file(f->dir, "queue", "not-an-id", "x", 1);

    assert_int_equal(sl_spool_scan(f->dir, see, &s), 0);
    assert_int_equal(s.n, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(s.ids[i], ids[i]); /* oldest first */
    assert_false(exists(f->dir, "tmp", "stale"));
    assert_true(exists(f->dir, "tmp", "fresh"));
    assert_false(exists(f->dir, "state", "0000000000cccccccccc.0"));
    snprintf(name, sizeof name, "%s.0", ids[1]);
    assert_true(exists(f->dir, "state", name));
    /* a name that is no queue id is set aside in corrupt/, not left in the queue */
    assert_false(exists(f->dir, "queue", "not-an-id"));
    assert_true(exists(f->dir, "corrupt", "not-an-id"));
    assert_int_equal(sl_spool_corrupt_list(f->dir, NULL, NULL), 1);
    /* a state write a kill cut short: left by a scan (a worker may be writing it), swept at
     * the master's start whatever its age (no worker runs then) */
    snprintf(name, sizeof name, "%s.0", ids[2]);
    put_file(f->dir, "tmp", name, "attempts 1", 10);
    /* and so is a listener's new message (ID.in) whose master was killed with it */
    char lname[64];
    snprintf(lname, sizeof lname, "%s.in", ids[2]);
    put_file(f->dir, "tmp", lname, "sluice-spool 1\n", 15);
    assert_int_equal(sl_spool_scan(f->dir, see, &s), 0);
    assert_true(exists(f->dir, "tmp", name));
    assert_true(exists(f->dir, "tmp", lname));
    struct sl_spool_ids queued, stated;
    assert_int_equal(sl_spool_list(f->dir, &queued, &stated, true), 0);
    assert_false(exists(f->dir, "tmp", name));
    assert_false(exists(f->dir, "tmp", lname));
    assert_true(exists(f->dir, "tmp", "fresh")); /* an inject in progress stays */
    sl_spool_ids_free(&queued);
    sl_spool_ids_free(&stated);
    assert_int_equal(sl_spool_scan("/nonexistent/spool", see, &s), -1);
    /* state/ that cannot be listed: the queue is listed all the same, but the listing says
     * that its list of state files tells nothing (1), rather than that there are none */
    char stdir[4200], aside[4200];
    snprintf(stdir, sizeof stdir, "%s/state", f->dir);
    snprintf(aside, sizeof aside, "%s/state.aside", f->dir);
    assert_int_equal(rename(stdir, aside), 0);
    put_file(f->dir, "", "state", "x", 1);
    assert_int_equal(sl_spool_list(f->dir, &queued, &stated, true), 1);
    assert_int_equal(errno, ENOTDIR);
    assert_int_equal(queued.n, 3);
    assert_int_equal(stated.n, 0);
    sl_spool_ids_free(&queued);
    sl_spool_ids_free(&stated);
    assert_int_equal(unlink(stdir), 0);
    assert_int_equal(rename(aside, stdir), 0);
}

/* walk_see - an id a walk met, counted per step */
struct walked {
    char ids[8][SL_SPOOL_ID_LEN + 1];
    size_t n, in_step;
};

static void walk_see(const char *id, void *ctx)
{
    struct walked *w = ctx;

    assert_true(w->n < 8);
    snprintf(w->ids[w->n++], sizeof w->ids[0], "%s", id);
    w->in_step++;
}

/* The master's rescan walks the spool a few entries per step, with the listing's checks: each
 * queued id once, a stranger set aside, an orphan state removed, a live one kept, a stale tmp/
 * file swept; no step reads more entries than it is given. */
static void test_walk(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org"};
    char ids[5][SL_SPOOL_ID_LEN + 1], path[256], name[32], err[256];
    struct timespec old[2] = {{.tv_sec = time(NULL) - 120}, {.tv_sec = time(NULL) - 120}};
    struct sl_spool_state st;
    struct walked w = {0};
    struct sl_spool_walk *walk;
    size_t steps = 0;

    for (int i = 0; i < 5; i++)
        write_msg(f->dir, rcpt, 1, ids[i]);
    assert_int_equal(sl_spool_state_load(f->dir, ids[3], 0, 1, &st, err, sizeof err), 0);
    assert_int_equal(sl_spool_state_save(f->dir, ids[3], 0, &st, err, sizeof err), 0);
    sl_spool_state_free(&st);
    put_file(f->dir, "state", "0000000000cccccccccc.0", "attempts 0\n", 11);
    put_file(f->dir, "queue", "not-an-id", "x", 1);
    put_file(f->dir, "tmp", "stale", "x", 1);
    snprintf(path, sizeof path, "%s/tmp/stale", f->dir);
    assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
    snprintf(name, sizeof name, "%s.in", ids[4]); /* a listener's write in progress */
    put_file(f->dir, "tmp", name, "sluice-spool 1\n", 15);

    assert_null(sl_spool_walk_open("/nonexistent/spool"));
    assert_non_null(walk = sl_spool_walk_open(f->dir));
    assert_false(exists(f->dir, "tmp", "stale"));
    assert_true(exists(f->dir, "tmp", name)); /* only the master's start sweeps those */
    for (bool more = true; more; steps++) {
        w.in_step = 0;
        more = sl_spool_walk_step(walk, 2, walk_see, &w);
        assert_true(w.in_step <= 2);
    }
    sl_spool_walk_close(walk);
    assert_int_equal(w.n, 5);
    for (int i = 0; i < 5; i++) {
        size_t seen = 0;
        for (size_t j = 0; j < w.n; j++)
            seen += strcmp(w.ids[j], ids[i]) == 0;
        assert_int_equal(seen, 1);
    }
    /* queue/: 6 entries and "." and ".."; state/: 2 and the dots; 2 at a time */
    assert_true(steps >= 6);
    assert_false(exists(f->dir, "queue", "not-an-id"));
    assert_true(exists(f->dir, "corrupt", "not-an-id"));
    assert_false(exists(f->dir, "state", "0000000000cccccccccc.0"));
    snprintf(name, sizeof name, "%s.0", ids[3]);
    assert_true(exists(f->dir, "state", name));
}

/* A damaged entry set aside never replaces one set aside before under the same name (the
 * operator's only copy): with every name taken it stays where it is, and so do the state
 * files of a message that could not be moved (without them its delivered recipients would be
 * sent it again). */
static void test_quarantine_no_replace(void **state)
{
    struct fixture *f = *state;
    const char *id = "0000000000dddddddddd";
    char name[64], text[64];

    put_file(f->dir, "queue", id, "damaged", 7);
    put_file(f->dir, "state", "0000000000dddddddddd.0", "attempts 1\n", 11);
    assert_int_equal(mkdir_corrupt(f->dir), 0);
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, i == 0 ? "%s" : "%s.%u", id, i);
        snprintf(text, sizeof text, "earlier %u", i);
        put_file(f->dir, "corrupt", name, text, strlen(text));
    }
    assert_int_equal(sl_spool_quarantine_msg(f->dir, id, "test"), -1);
    assert_true(exists(f->dir, "queue", id));
    assert_true(exists(f->dir, "state", "0000000000dddddddddd.0"));
    snprintf(name, sizeof name, "%s.999", id);
    assert_true(has_text(f->dir, "corrupt", name, "earlier 999"));
    /* with a name free, the message and its state go */
    snprintf(name, sizeof name, "%s.500", id);
    assert_int_equal(unlink_in(f->dir, "corrupt", name), 0);
    assert_int_equal(sl_spool_quarantine_msg(f->dir, id, "test"), 0);
    assert_false(exists(f->dir, "queue", id));
    assert_true(has_text(f->dir, "corrupt", name, "damaged"));
    assert_false(exists(f->dir, "state", "0000000000dddddddddd.0"));
    assert_true(exists(f->dir, "corrupt", "0000000000dddddddddd.0"));
}

/* corrupt/ replaced by a symbolic link to a directory outside the spool: nothing is set aside
 * through it (the entry would leave the spool, and whoever moves it may be root); the entry
 * stays where it is, and the directory the link names gets nothing. */
static void test_quarantine_not_through_link(void **state)
{
    struct fixture *f = *state;
    const char *id = "0000000000eeeeeeeeee";
    char outside[128], link[128];

    snprintf(outside, sizeof outside, "%s/outside", f->dir);
    snprintf(link, sizeof link, "%s/corrupt", f->dir);
    assert_int_equal(mkdir(outside, 0750), 0);
    assert_int_equal(symlink(outside, link), 0);
    put_file(f->dir, "queue", id, "damaged", 7);
    assert_int_equal(sl_spool_quarantine_msg(f->dir, id, "test"), -1);
    assert_true(exists(f->dir, "queue", id));
    assert_false(exists(f->dir, "outside", id));
}

/* A hard link planted as the lock file (to a file of root's, say) is not taken for the lock:
 * the daemon started by root gives its lock file to the spool's owner, and would give away
 * the linked file with it.  Neither the daemon's lock nor sluicectl's is taken (the daemon is
 * told to stop, as when another daemon holds the spool, and why); the linked file keeps its
 * owner. */
static void test_lock_not_a_link(void **state)
{
    struct fixture *f = *state;
    char target[128], lock[128], err[256];
    struct stat st;
    FILE *t;

    snprintf(target, sizeof target, "%s/precious", f->dir);
    snprintf(lock, sizeof lock, "%s/%s", f->dir, SL_SPOOL_LOCK);
    assert_non_null(t = fopen(target, "w"));
    fclose(t);
    assert_int_equal(stat(target, &st), 0);
    const uid_t owner = st.st_uid;
    if (geteuid() == 0) /* the spool is another user's: root would give the lock to it */
        assert_int_equal(chown(f->dir, 65534, 65534), 0);
    assert_int_equal(link(target, lock), 0);
    /* refused as another daemon's lock is: a daemon must not start without it */
    assert_int_equal(sl_spool_lock_daemon(f->dir, err, sizeof err), SL_SPOOL_LOCK_BUSY);
    assert_non_null(strstr(err, "is not a regular file of one link: remove it"));
    assert_int_equal(sl_spool_lock_offline(f->dir), -1);
    assert_int_equal(errno, EBADMSG);
    /* (only root could have given it away: as another user this holds either way) */
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_uid, owner);
}

/* The master's start listing: queue/ ids sorted, and which of them have state. */
static void test_list(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org", "b@y.org"};
    char ids[3][SL_SPOOL_ID_LEN + 1], err[256];
    struct sl_spool_ids queued = {0}, stated = {0};
    struct sl_spool_state st;

    for (int i = 0; i < 3; i++)
        write_msg(f->dir, rcpt, 2, ids[i]);
    assert_int_equal(sl_spool_state_load(f->dir, ids[2], 1, 2, &st, err, sizeof err), 0);
    assert_int_equal(sl_spool_state_save(f->dir, ids[2], 1, &st, err, sizeof err), 0);
    sl_spool_state_free(&st);
    assert_int_equal(sl_spool_list(f->dir, &queued, &stated, true), 0);
    assert_int_equal(queued.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(queued.id[i], ids[i]); /* oldest first */
        assert_true(sl_spool_ids_has(&queued, ids[i]));
    }
    assert_false(sl_spool_ids_has(&stated, ids[0]));
    assert_false(sl_spool_ids_has(&stated, ids[1]));
    assert_true(sl_spool_ids_has(&stated, ids[2]));
    assert_false(sl_spool_ids_has(&queued, "0000000000zzzzzzzzzz"));
    sl_spool_ids_free(&queued);
    sl_spool_ids_free(&stated);
}

/* One read brings the envelope and the body of a small message; a big one
 * still reads its body from the file; both give the same bytes. */
static void test_read_full(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"r@example.com"};
    size_t big = 200 * 1000;
    char *text = malloc(big), id[2][SL_SPOOL_ID_LEN + 1], err[256], *body;
    struct sl_spool_msg m;
    size_t len;

    for (size_t i = 0; i < big; i++)
        text[i] = (i % 100 == 99) ? '\n' : 'x';
    for (int k = 0; k < 2; k++) {
        struct sl_spool_new n = {.binding = "default",
                                 .sender = "",
                                 .rcpt = rcpt,
                                 .nrcpt = 1,
                                 .body = k == 0 ? "Subject: s\n\n.dot\n" : text,
                                 .len = k == 0 ? 17 : big};
        assert_int_equal(sl_spool_write(f->dir, &n, id[k], err, sizeof err), 0);
    }
    assert_int_equal(sl_spool_read_full(f->dir, id[0], &m, err, sizeof err), 0);
    assert_non_null(m.body);
    assert_int_equal(sl_spool_body(f->dir, &m, &body, &len, err, sizeof err), 0);
    assert_int_equal(len, 21);
    assert_memory_equal(body, "Subject: s\r\n\r\n..dot\r\n", len);
    free(body);
    sl_spool_msg_free(&m);
    assert_int_equal(sl_spool_read_full(f->dir, id[1], &m, err, sizeof err), 0);
    assert_null(m.body); /* over 64 KB: the body stays in the file */
    assert_int_equal(sl_spool_body(f->dir, &m, &body, &len, err, sizeof err), 0);
    assert_int_equal(len, big + big / 100); /* every LF became CRLF */
    assert_int_equal(m.size, len);
    free(body);
    sl_spool_msg_free(&m);
    free(text);
}

/* atime - the access time of queue/ID, in seconds */
static time_t atime(const char *dir, const char *id)
{
    char path[256];
    struct stat st;

    snprintf(path, sizeof path, "%s/queue/%s", dir, id);
    assert_int_equal(stat(path, &st), 0);
    return st.st_atime;
}

/* Reading a message (the master's pickup, the worker's envelope and body) leaves its access
 * time alone: an update would dirty every message's inode, one more write-back per message.
 * The access time is set an hour before the last change, which a relatime mount updates on
 * the next read. */
static void test_read_keeps_atime(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"r@example.com"};
    char id[SL_SPOOL_ID_LEN + 1], err[256], path[256], *body;
    struct timespec t[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
    struct sl_spool_msg m;
    struct stat st;
    size_t len;

    write_msg(f->dir, rcpt, 1, id);
    snprintf(path, sizeof path, "%s/queue/%s", f->dir, id);
    assert_int_equal(stat(path, &st), 0);
    t[0].tv_sec = st.st_mtime - 3600;
    t[0].tv_nsec = 0;
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
    sl_spool_msg_free(&m);
    assert_int_equal(sl_spool_read_full(f->dir, id, &m, err, sizeof err), 0);
    assert_int_equal(sl_spool_body(f->dir, &m, &body, &len, err, sizeof err), 0);
    free(body);
    sl_spool_msg_free(&m);
    assert_int_equal(atime(f->dir, id), st.st_mtime - 3600);
}

/* A reader that does not own a spool file (an operator's sluicectl in sluice's group) may not
 * ask for O_NOATIME; it still reads the file.  A root-owned world-readable file stands for it,
 * read by nobody when the test runs as root. */
static void test_read_not_owner(void **state)
{
    int status;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd;
        if (geteuid() == 0 && setuid(65534) < 0)
            _exit(2);
        fd = spool_open_entry("/etc/passwd");
        _exit(fd >= 0 ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_notify(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {2, 0};
    char buf[64];
    ssize_t n;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

    /* with nobody listening: silent, no error */
    sl_spool_notify(f->dir, "0000000000dddddddddd");
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/control.sock", f->dir);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    sl_spool_notify(f->dir, "0000000000dddddddddd");
    n = recv(fd, buf, sizeof buf - 1, 0);
    assert_int_equal(n, 2 + SL_SPOOL_ID_LEN);
    buf[n] = '\0';
    assert_string_equal(buf, "N 0000000000dddddddddd");
    close(fd);
}

static void test_dsn_roundtrip(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"a@x.org", "b@x.org", "c@y.org"};
    const unsigned notify[] = {SL_NOTIFY_NEVER, 0, SL_NOTIFY_FAILURE | SL_NOTIFY_DELAY};
    const char *orcpt[] = {NULL, "rfc822;orig@example.org", "rfc822;c@y.org"};
    struct sl_spool_new n = {.binding = "b1",
                             .sender = "s@x.org",
                             .rcpt = rcpt,
                             .nrcpt = 3,
                             .body = "x\r\n",
                             .len = 3,
                             .envid = "env id 42",
                             .ret_hdrs = true,
                             .notify = notify,
                             .orcpt = orcpt};
    struct sl_spool_msg m;
    char id[SL_SPOOL_ID_LEN + 1], err[256];

    assert_int_equal(sl_spool_write(f->dir, &n, id, err, sizeof err), 0);
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
    assert_string_equal(m.envid, "env id 42");
    assert_true(m.ret_hdrs);
    assert_int_equal(m.nrcpt, 3);
    assert_int_equal(m.rcpt[0].notify, SL_NOTIFY_NEVER);
    assert_null(m.rcpt[0].orcpt);
    assert_int_equal(m.rcpt[1].notify, 0);
    assert_string_equal(m.rcpt[1].orcpt, "rfc822;orig@example.org");
    assert_int_equal(m.rcpt[2].notify, SL_NOTIFY_FAILURE | SL_NOTIFY_DELAY);
    assert_string_equal(m.rcpt[2].orcpt, "rfc822;c@y.org");
    sl_spool_msg_free(&m);

    /* a message without them reads back without them */
    n.envid = NULL, n.ret_hdrs = false, n.notify = NULL, n.orcpt = NULL;
    assert_int_equal(sl_spool_write(f->dir, &n, id, err, sizeof err), 0);
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
    assert_null(m.envid);
    assert_false(m.ret_hdrs);
    assert_int_equal(m.rcpt[2].notify, 0);
    assert_null(m.rcpt[2].orcpt);
    sl_spool_msg_free(&m);

    /* a control character in ENVID never reaches the header */
    n.envid = "two\nlines";
    assert_int_equal(sl_spool_write(f->dir, &n, id, err, sizeof err), -1);
    assert_string_equal(err, "bad ENVID");
}

static void test_dsn_damaged(void **state)
{
    struct fixture *f = *state;
    const char *id = "0000000000aaaaaaaaac";
    const char *pre = "sluice-spool 1\nid 0000000000aaaaaaaaac\narrival 1\nbinding b\ndsn 0\n"
                      "from s@x.org\nsize 3\n";
    const char *bad[] = {
        "envid \nrcpt 0 r@x.org\n\nx\r\n",       /* empty ENVID */
        "ret some\nrcpt 0 r@x.org\n\nx\r\n",     /* RET neither hdrs nor full */
        "rcpt 0 r@x.org\nnotify 16\n\nx\r\n",    /* unknown NOTIFY bits */
        "rcpt 0 r@x.org\nnotify 0\n\nx\r\n",     /* NOTIFY given as nothing */
        "notify 1\nrcpt 0 r@x.org\n\nx\r\n",     /* notify before any rcpt */
        "rcpt 0 r@x.org\norcpt a\x01z\n\nx\r\n", /* a control character */
        "rcpt 0 r@x.org\nenvid late\n\nx\r\n",   /* envid after the recipients */
    };
    struct sl_spool_msg m;
    char path[256], text[512], err[256];

    snprintf(path, sizeof path, "%s/queue/%s", f->dir, id);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        snprintf(text, sizeof text, "%s%s", pre, bad[i]);
        fputs(text, fp);
        fclose(fp);
        assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), -1);
    }
}

/* RFC 6531: UTF-8 addresses, only through the _utf8 check; what each refuses and why */
static void test_address_utf8(void **state)
{
    static const char *const good[] = {
        "j\xc3\xb6rg@example.com",        /* jörg */
        "\xc3\xbc@b\303\274cher.example", /* ü@bücher.example */
        "x@B\303\234CHER.example",        /* upper case folds (UTS #46) */
        "\"qu\xc3\xb6ted\"@example.com",  /* UTF-8 in a quoted string */
        "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", /* CJK */
        "\xf0\x9f\x98\x80@example.com", /* a 4-byte sequence */
        "a@xn--bcher-kva.example",      /* an A-label, as ASCII */
        "plain@example.com",
    };
    const struct bad bad[] = {
        {"\xff@example.com", "UTF-8"},               /* not UTF-8 */
        {"\xc3@example.com", "UTF-8"},               /* cut short */
        {"\xc0\xaf@example.com", "UTF-8"},           /* overlong '/' */
        {"\xed\xa0\x80@example.com", "UTF-8"},       /* a surrogate */
        {"\xf4\x90\x80\x80@example.com", "UTF-8"},   /* beyond U+10FFFF */
        {"a\xc2\x85z@example.com", "control"},       /* NEL, a C1 control */
        {"a@bad\xe2\x80\x8fname.example", "domain"}, /* RLM: no valid IDN */
        {"a@b\xc3\xbc_c.example", "domain"},         /* an A-label that is no LDH name */
        {"a b@c.d", "space"},
        {"a\x01@b.c", "control"},
    };
    char err[128];

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!sl_spool_valid_address_utf8(good[i], false, err, sizeof err))
            fail_msg("refused %s: %s", good[i], err);
    /* without SMTPUTF8 the same UTF-8 addresses stay refused */
    assert_false(sl_spool_valid_address(good[0], false, err, sizeof err));
    assert_non_null(strstr(err, "non-ASCII"));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (sl_spool_valid_address_utf8(bad[i].addr, false, err, sizeof err))
            fail_msg("accepted bad UTF-8 address #%zu", i);
        if (strstr(err, bad[i].why) == NULL)
            fail_msg("bad UTF-8 address #%zu: reason \"%s\" lacks \"%s\"", i, err, bad[i].why);
    }
}

/* a UTF-8 domain is grouped by its A-label, lower case, whatever its spelling */
static void test_address_domain_idn(void **state)
{
    char d[256];

    (void)state;
    sl_spool_address_domain("x@b\303\274cher.Example", d, sizeof d);
    assert_string_equal(d, "xn--bcher-kva.example");
    sl_spool_address_domain("x@B\303\234CHER.example", d, sizeof d);
    assert_string_equal(d, "xn--bcher-kva.example");
    sl_spool_address_domain("\"a@\xc3\xbc\"@XN--BCHER-KVA.example", d, sizeof d);
    assert_string_equal(d, "xn--bcher-kva.example");
}

/* RET=FULL and the smtputf8 flag round-trip; UTF-8 addresses need the flag; two spellings
 * of one IDN are one part and one recipient */
static void test_utf8_roundtrip(void **state)
{
    struct fixture *f = *state;
    const char *rcpt[] = {"\303\274@b\303\274cher.example", "\303\274@XN--BCHER-KVA.example",
                          "z@other.example"};
    struct sl_spool_new n = {.binding = "b1",
                             .sender = "j\xc3\xb6rg@example.com",
                             .rcpt = rcpt,
                             .nrcpt = 3,
                             .body = "Subject: \xc3\xbc\r\n\r\nx\r\n",
                             .len = 18,
                             .ret_full = true};
    struct sl_spool_msg m;
    char id[SL_SPOOL_ID_LEN + 1], err[256];

    refused(f->dir, &n, "non-ASCII"); /* no smtputf8: refused, nothing left */
    n.smtputf8 = true;
    assert_int_equal(sl_spool_write(f->dir, &n, id, err, sizeof err), 0);
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), 0);
    assert_true(m.smtputf8);
    assert_true(m.ret_full);
    assert_false(m.ret_hdrs);
    assert_string_equal(m.sender, "j\xc3\xb6rg@example.com");
    assert_int_equal(m.nrcpt, 2); /* the A-label spelling is the same recipient */
    assert_int_equal(m.nparts, 2);
    assert_string_equal(m.domain[0], "xn--bcher-kva.example");
    assert_string_equal(m.rcpt[0].addr, "\303\274@b\303\274cher.example");
    sl_spool_msg_free(&m);
}

/* a spool file with a UTF-8 address and no smtputf8 line is damaged */
static void test_utf8_damaged(void **state)
{
    struct fixture *f = *state;
    const char *id = "0000000000aaaaaaaaad";
    const char *bad[] = {
        "from \xc3\xbc@x.org\nsize 3\nrcpt 0 r@x.org\n\nx\r\n",
        "from s@x.org\nsize 3\nrcpt 0 \xc3\xbc@x.org\n\nx\r\n",
        "from s@x.org\nsize 3\nsmtputf8 1\nrcpt 0 \xff@x.org\n\nx\r\n",
        "from s@x.org\nsize 3\nsmtputf8 2\nrcpt 0 r@x.org\n\nx\r\n",
    };
    struct sl_spool_msg m;
    char path[256], text[512], err[256];

    snprintf(path, sizeof path, "%s/queue/%s", f->dir, id);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        snprintf(text, sizeof text, "sluice-spool 1\nid %s\narrival 1\nbinding b\ndsn 0\n%s", id,
                 bad[i]);
        fputs(text, fp);
        fclose(fp);
        if (sl_spool_read(f->dir, id, &m, err, sizeof err) != -1)
            fail_msg("damaged file #%zu read", i);
    }
}

/* write_some - a child's n messages through the group, then its exit status */
static void write_some(const char *dir, struct sl_spool_group *g, int n)
{
    const char *rcpt[] = {"r@x.org"};
    struct sl_spool_new m = {.binding = "b",
                             .sender = "s@x.org",
                             .rcpt = rcpt,
                             .nrcpt = 1,
                             .body = "x\r\n",
                             .len = 3,
                             .group = g};
    char id[SL_SPOOL_ID_LEN + 1], err[256];

    for (int i = 0; i < n; i++)
        if (sl_spool_write(dir, &m, id, err, sizeof err) < 0)
            _exit(1);
    _exit(0);
}

static void test_group_commit(void **state)
{
    struct fixture *f = *state;
    struct sl_spool_group *g = sl_spool_group_new();
    uint64_t files = 0, syncs;
    int status, writers = 6, each = 40;

    for (int w = 0; w < writers; w++)
        if (fork() == 0)
            write_some(f->dir, g, each);
    for (int w = 0; w < writers; w++) {
        assert_true(wait(&status) > 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    syncs = sl_spool_group_syncs(g, &files);
    /* every message is in queue/, and each was covered by a sync */
    assert_int_equal(entries(f->dir, "queue"), writers * each);
    assert_int_equal(entries(f->dir, "tmp"), 0);
    assert_int_equal(files, (uint64_t)(writers * each));
    assert_true(syncs >= 1);
    /* concurrent writers share syncs: alone, each message would cost one; how many share one
     * depends on how the writers overlap, so only "some" */
    assert_true(syncs < files);
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
    test_fail_reads("");
    errno = 0;
    assert_int_equal(sl_spool_read(f->dir, id, &m, err, sizeof err), -1);
    assert_int_equal(errno, EIO);
    assert_non_null(strstr(err, "Input/output error"));
    errno = 0;
    assert_int_equal(sl_spool_read_full(f->dir, id, &m, err, sizeof err), -1);
    assert_int_equal(errno, EIO);

    test_fail_reads(NULL);
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
    test_fail_reads("");
    errno = 0;
    assert_int_equal(sl_spool_body(f->dir, &m, &body, &len, err, sizeof err), -1);
    assert_int_equal(errno, EIO);
    assert_null(body);

    test_fail_reads(NULL);
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

    test_fail_reads("");
    errno = 0;
    assert_int_equal(sl_spool_state_load(f->dir, id, 0, 2, &back, err, sizeof err), -1);
    assert_int_equal(errno, EIO);
    assert_non_null(strstr(err, "Input/output error"));

    test_fail_reads(NULL);
    assert_int_equal(sl_spool_state_load(f->dir, id, 0, 2, &back, err, sizeof err), 0);
    assert_int_equal(back.attempts, 1);
    assert_int_equal(back.status[0], SL_RCPT_DELIVERED);
    assert_int_equal(back.status[1], SL_RCPT_PENDING);
    sl_spool_state_free(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_good),
        cmocka_unit_test_setup_teardown(test_state_held, setup, teardown),
        cmocka_unit_test(test_address_bad),
        cmocka_unit_test(test_address_domain),
        cmocka_unit_test_setup_teardown(test_write_read_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_crlf_and_dots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_leave_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_largest_envelope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_part_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quarantine_no_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_keeps_atime, setup, teardown),
        cmocka_unit_test(test_read_not_owner),
        cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsn_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsn_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test(test_address_utf8),
        cmocka_unit_test(test_address_domain_idn),
        cmocka_unit_test_setup_teardown(test_utf8_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envelope_read_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_read_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_read_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_never_follows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quarantine_not_through_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_not_a_link, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
