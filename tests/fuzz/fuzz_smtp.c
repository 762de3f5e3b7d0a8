/*
 * fuzz_smtp.c - fuzz target "smtp": the SMTP client's reply reader, fed the
 * way a session feeds it.
 *
 * The input is everything the peer says, verbatim, so a corpus file reads as
 * the replies of one SMTP conversation.  It is written whole into one end of a
 * socketpair whose sending side is then shut, and a session started on the
 * other end with the client's own code (smtp_session_init, as sl_smtp_open
 * does) reads it: the greeting and the EHLO reply (HELO's after a 5xx) through
 * smtp_reply_read, as greeting() and hello() in smtp_session.c read them; then
 * three transactions through sl_smtp_send_many (pipelined or one command at a
 * time, or as one BDAT run, as the EHLO reply offered), the idle check, RSET and QUIT.  The fourth
 * transaction's recipients are long enough that its pipelined group goes out
 * in chunks, each after the replies to the one before.  Every byte
 * reaches the reader through smtp_io_line's bounded line reads.
 * Everything is buffered before the first read and the peer's side is shut,
 * so no read ever waits: the end of the input is the peer closing, and no
 * phase timer is armed (libFuzzer keeps SIGALRM for its -timeout).  What the
 * client writes stays unread in the other end (a few KB at most).  An input
 * beyond INPUT_MAX is cut there: the socket buffer must hold it all.
 * Promises checked: a reply read whole has a code in 200-599 and bounded,
 * NUL-terminated text; an enhanced code starts with the reply's class; the
 * transactions are told over in order; a session that failed is closed.
 * Concurrency: one thread, one session per input.
 * Trust boundary: the input is the peer's, untrusted.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "smtp/smtp_impl.h"
#include "support.h"

#define INPUT_MAX  (64 * 1024)
#define LONG_RCPTS 12  /* a transaction whose pipelined group does not fit one write */
#define LONG_LOCAL 880 /* a local part long enough for that (the session takes 900 bytes) */

static sigset_t wait_mask;
static volatile sig_atomic_t alarmed;
static char long_rcpt[LONG_RCPTS][LONG_LOCAL + 16];
static const char *long_list[LONG_RCPTS];

/* check_reply - what smtp_reply_read promises of a reply */
static void check_reply(const struct sl_reply *r)
{
    FUZZ_CHECK(memchr(r->text, '\0', sizeof r->text) != NULL);
    FUZZ_CHECK(memchr(r->enhanced, '\0', sizeof r->enhanced) != NULL);
    if (r->code == 0)
        return;
    FUZZ_CHECK(r->code >= 200 && r->code <= 599);
    FUZZ_CHECK(r->enhanced[0] == '\0' || r->enhanced[0] == '0' + r->code / 100);
    for (const char *p = r->text; *p != '\0'; p++)
        FUZZ_CHECK(*p >= ' ' && *p < 0x7f);
}

/* feed - write the input into the peer's end and shut it: the client then reads it all,
 * then EOF */
static bool feed(int peer, const uint8_t *data, size_t size)
{
    if (size > INPUT_MAX)
        size = INPUT_MAX;
    while (size > 0) {
        ssize_t n = send(peer, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0)
            return false;
        data += n;
        size -= (size_t)n;
    }
    return shutdown(peer, SHUT_WR) == 0;
}

/* Which transactions sl_smtp_send_many said were over, in order. */
struct over {
    size_t told;
};

/* note_over - the session's callback: transactions end in order, each once */
static void note_over(void *arg, size_t i)
{
    struct over *o = arg;

    FUZZ_CHECK(i == o->told);
    o->told++;
}

/* open_session - greeting and EHLO as sl_smtp_open reads them (HELO after a 5xx);
 * 0 when the session may carry mail */
static int open_session(struct sl_smtp *s, struct sl_reply *r)
{
    static const char ehlo[] = "EHLO client.test\r\n", helo[] = "HELO client.test\r\n";

    smtp_phase_begin(s, SL_PH_GREETING);
    if (smtp_reply_read(s, r, false) < 0)
        return -1;
    check_reply(r);
    if (r->code != 220)
        return -1;
    smtp_phase_begin(s, SL_PH_EHLO);
    if (smtp_io_send_str(s, ehlo, sizeof ehlo - 1, "the command") < 0 ||
        smtp_reply_read(s, r, true) < 0)
        return -1;
    check_reply(r);
    if (r->code >= 200 && r->code <= 299) {
        s->esmtp = true;
        return 0;
    }
    if (r->code < 500)
        return -1;
    s->esmtp = s->pipelining = s->size = s->starttls = s->enhanced = s->eightbit = false;
    s->chunking = false;
    s->size_max = 0;
    if (smtp_io_send_str(s, helo, sizeof helo - 1, "the command") < 0 ||
        smtp_reply_read(s, r, false) < 0)
        return -1;
    check_reply(r);
    return r->code >= 200 && r->code <= 299 ? 0 : -1;
}

/* transactions - four, as a worker sends them: two recipients, a bounce (null sender)
 * with a dot-stuffed body, three recipients after an asked-for RSET, and LONG_RCPTS long
 * ones */
static void transactions(struct sl_smtp *s)
{
    static const char *const rc0[] = {"r1@y.test", "r2@y.test"};
    static const char *const rc1[] = {"r3@y.test"};
    static const char *const rc2[] = {"r4@y.test", "r5@z.test", "r6@z.test"};
    static const char body0[] = "Subject: one\r\n\r\nhello\r\n";
    static const char body1[] = "Subject: two\r\n\r\n..dot\r\n";
    struct sl_reply rr0[2], rr1[1], rr2[3], rr3[LONG_RCPTS];
    struct sl_smtp_txn t[4] = {
        {.sender = "a@x.test", .size = 24, .rcpt = rc0, .nrcpt = 2, .rcpt_reply = rr0},
        {.sender = "", .size = 24, .rcpt = rc1, .nrcpt = 1, .rcpt_reply = rr1},
        {.rset = true, .sender = "a@x.test", .rcpt = rc2, .nrcpt = 3, .rcpt_reply = rr2},
        {.sender = "a@x.test", .rcpt = long_list, .nrcpt = LONG_RCPTS, .rcpt_reply = rr3},
    };
    struct over o = {0};

    t[0].body = body0, t[0].len = sizeof body0 - 1;
    t[1].body = body1, t[1].len = sizeof body1 - 1;
    t[2].body = body0, t[2].len = sizeof body0 - 1;
    t[3].body = body1, t[3].len = sizeof body1 - 1;
    int rc = sl_smtp_send_many(s, t, 4, note_over, &o);
    FUZZ_CHECK(o.told <= 4);
    FUZZ_CHECK(rc < 0 ? s->fd < 0 && s->fail != SL_SMTP_FAIL_NONE : s->fd >= 0);
    for (size_t i = 0; i < 4; i++) {
        check_reply(&t[i].mail);
        check_reply(&t[i].data);
        check_reply(&t[i].rset_reply);
        for (size_t k = 0; k < t[i].nrcpt; k++)
            check_reply(&t[i].rcpt_reply[k]);
    }
}

/* LLVMFuzzerInitialize - once per process: the session's wait mask (no read waits: unused) and
 * the long recipients */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sigemptyset(&wait_mask);
    for (size_t i = 0; i < LONG_RCPTS; i++) {
        snprintf(long_rcpt[i], sizeof long_rcpt[i], "r%zu-%0*d@y.test", i, LONG_LOCAL, 0);
        long_list[i] = long_rcpt[i];
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* LLVMFuzzerTestOneInput - one conversation: the input is all the peer says */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct sl_smtp_env env = {.wait_mask = &wait_mask, .alarmed = &alarmed};
    const struct sl_smtp_timeouts to = {{0}};
    struct sl_smtp s;
    struct sl_reply r;
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (!feed(sv[1], data, size))
        abort();
    smtp_session_init(&s, &env, &to);
    s.fd = sv[0];
    s.bdat = true; /* BDAT runs when the peer offers CHUNKING, as a worker asks by default */
    fcntl(s.fd, F_SETFL, O_NONBLOCK);
    if (open_session(&s, &r) == 0) {
        transactions(&s);
        (void)sl_smtp_alive(&s);
        if (sl_smtp_rset(&s) < 0)
            FUZZ_CHECK(s.fd < 0);
    } else if (s.fd >= 0) {
        sl_smtp_close(&s);
    }
    FUZZ_CHECK(!s.timer_armed);
    sl_smtp_quit(&s);
    FUZZ_CHECK(s.fd < 0 && s.rbuf == NULL);
    close(sv[1]);
    return 0;
}
