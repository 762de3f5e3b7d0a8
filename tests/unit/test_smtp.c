/*
 * test_smtp.c - the worker's SMTP client against a real scripted peer on loopback.
 *
 * Each case forks a server that listens on 127.0.1.1 at a port the kernel picks,
 * accepts one connection and follows a small script: replies to send, commands to
 * wait for, where to stall, trickle, flood, close or reset.  It records every byte
 * the client sent (and how much had arrived when each reply went out) in a shared
 * mapping, so the tests assert the exact command stream, the pipelining groups
 * (within a transaction and across transactions: a body, its dot and the next
 * transaction's commands before the peer answers the dot), SIZE=, the HELO
 * fallback, the dot-stuffed body and its final ".", RSET and QUIT.
 * For STARTTLS the peer turns TLS on mid-script with a certificate for mx.test from
 * a test CA made at start with the openssl command line (its record is then the
 * plaintext inside TLS), and can send a TLS 1.3 session ticket while the client idles.
 * The client binds 127.0.0.2 and runs under the worker's signal arrangement:
 * SIGALRM and SIGTERM blocked, handlers that set flags, unblocked only in ppoll.
 * Timeouts are short settings; elapsed times are checked against the setting and a
 * generous upper bound so a busy machine cannot fail them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "smtp/sl_smtp.h"

#define PEER_IP   "127.0.1.1"
#define SOURCE_IP "127.0.0.2"
#define HELO_NAME "client.test"
#define REC_MAX   (4u << 20)
#define MARKS     64
#define SLACK_MS  3000 /* how much later than its setting a timeout may be seen */

/* ---- the scripted peer ---- */

enum op {
    OP_END = 0,
    OP_SEND,    /* write arg */
    OP_EXPECT,  /* read until what arrived since the last match contains arg */
    OP_STALL,   /* read (recording) for n ms or until the client goes */
    OP_CLOSE,   /* close the connection */
    OP_RESET,   /* close with an RST */
    OP_TRICKLE, /* write arg one byte every n ms */
    OP_FLOOD,   /* write arg n times */
    OP_BIGLINE, /* write arg, then n bytes of 'a' and CRLF */
    OP_SIGTERM, /* send SIGTERM to the client process */
    OP_SLEEP,   /* read nothing for n ms */
    OP_ANSWER,  /* answer each MAIL/RCPT line as it comes (550 if it holds "bad"), until DATA */
    OP_TLS,     /* TLS handshake as the server; reads and writes go through it from then on */
    OP_TICKET,  /* send a TLS 1.3 session ticket (a record without application data) */
};

struct step {
    enum op op;
    const char *arg;
    long n;
};

/* One-line initializers (clang-format would spread each over four lines). */
/* clang-format off */
#define SEND(s)        {OP_SEND, s, 0}
#define EXPECT(s)      {OP_EXPECT, s, 0}
#define STALL(ms)      {OP_STALL, NULL, ms}
#define SLEEP(ms)      {OP_SLEEP, NULL, ms}
#define CLOSE          {OP_CLOSE, NULL, 0}
#define RESET          {OP_RESET, NULL, 0}
#define TRICKLE(s, ms) {OP_TRICKLE, s, ms}
#define FLOOD(s, n)    {OP_FLOOD, s, n}
#define BIGLINE(s, n)  {OP_BIGLINE, s, n}
#define SIGTERM_CLIENT {OP_SIGTERM, NULL, 0}
#define ANSWER         {OP_ANSWER, NULL, 0}
#define TLS_ACCEPT     {OP_TLS, NULL, 0}
#define TICKET         {OP_TICKET, NULL, 0}
/* clang-format on */

#define GREET       SEND("220 mx.test ESMTP\r\n")
#define EHLO_EXPECT EXPECT("EHLO " HELO_NAME "\r\n")
#define EHLO_PIPE                                                                                  \
    EHLO_EXPECT, SEND("250-mx.test hello\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n"                \
                      "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 STARTTLS\r\n")
#define EHLO_PLAIN EHLO_EXPECT, SEND("250-mx.test hello\r\n250 8BITMIME\r\n")
#define QUIT_OK    EXPECT("QUIT\r\n"), SEND("221 bye\r\n")
/* one pipelined transaction with DATA, one recipient, all accepted */
#define ONE_DATA                                                                                   \
    EXPECT("DATA\r\n"), SEND("250 ok\r\n250 ok\r\n354 go\r\n"), EXPECT("\r\n.\r\n"),               \
        SEND("250 queued\r\n")
#define STARTTLS_OK EXPECT("STARTTLS\r\n"), SEND("220 2.0.0 ready to start TLS\r\n"), TLS_ACCEPT
/* what the peer offers inside TLS: no STARTTLS any more */
#define EHLO_TLS                                                                                   \
    EHLO_EXPECT, SEND("250-mx.test hello again\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n"          \
                      "250 ENHANCEDSTATUSCODES\r\n")

/* What the peer saw, shared with the test process. */
struct record {
    char peer[INET6_ADDRSTRLEN]; /* the client's source address */
    size_t at_send[MARKS];       /* bytes received when each SEND started */
    int nsend;
    int expects_met;
    int expects_missed;
    bool tls_on; /* the peer's handshake succeeded */
    int tickets; /* session tickets sent by OP_TICKET */
    size_t len;
    size_t total; /* every byte received, past REC_MAX too */
    char got[REC_MAX];
};

static struct record *rec;
static SSL_CTX *srv_ctx; /* the peer's TLS context (certificate for mx.test) */
static SSL *srv_ssl;     /* in the peer process, once OP_TLS succeeded */

struct server {
    pid_t pid;
    struct sockaddr_in addr;
};

/* take - record bytes from the client; false at EOF, on error or after ms without any */
static bool take(int c, long ms)
{
    struct pollfd p = {.fd = c, .events = POLLIN};
    char discard[65536];

    if ((srv_ssl == NULL || SSL_pending(srv_ssl) == 0) && poll(&p, 1, (int)ms) <= 0)
        return false;
    char *to = rec->len < REC_MAX ? rec->got + rec->len : discard;
    size_t room = rec->len < REC_MAX ? REC_MAX - rec->len : sizeof discard;
    ssize_t n = srv_ssl != NULL ? SSL_read(srv_ssl, to, (int)(room > 65536 ? 65536 : room))
                                : recv(c, to, room, 0);
    if (n <= 0)
        return false;
    rec->total += (size_t)n;
    if (to != discard)
        rec->len += (size_t)n;
    return true;
}

/* expect - read until s appears after *scan; false if the client stops first */
static bool expect(int c, const char *s, size_t *scan)
{
    struct timespec t0, t;
    size_t from = *scan; /* bytes before this cannot start a match: searched already */

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        char *hit = memmem(rec->got + from, rec->len - from, s, strlen(s));
        if (rec->len - from >= strlen(s))
            from = rec->len - strlen(s) + 1;
        if (hit != NULL) {
            *scan = (size_t)(hit - rec->got) + strlen(s);
            return true;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = 5000 - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || !take(c, left))
            return false;
    }
}

/* stall - record whatever comes for ms, or until the client goes */
static void stall(int c, long ms)
{
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || !take(c, left))
            return;
    }
}

/* put - write all of buf; false once the client is gone */
static bool put(int c, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n =
            srv_ssl != NULL ? SSL_write(srv_ssl, buf, (int)len) : send(c, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* bigline - arg, then n bytes of 'a', then CRLF */
static bool bigline(int c, const char *arg, long n)
{
    char chunk[4096];

    memset(chunk, 'a', sizeof chunk);
    if (!put(c, arg, strlen(arg)))
        return false;
    for (long sent = 0; sent < n; sent += (long)sizeof chunk)
        if (!put(c, chunk, sizeof chunk))
            return false;
    return put(c, "\r\n", 2);
}

/* answer - a server that replies to each command line as it reads it, up to DATA's 354 */
static bool answer(int c, size_t *scan)
{
    for (;;) {
        size_t start = *scan;
        if (!expect(c, "\r\n", scan))
            return false;
        const char *line = rec->got + start;
        size_t len = *scan - start;
        const char *reply = "250 2.1.5 ok\r\n";
        if (len >= 4 && memcmp(line, "DATA", 4) == 0)
            return put(c, "354 go\r\n", 8);
        if (memmem(line, len, "bad", 3) != NULL)
            reply = "550 5.1.1 bad\r\n";
        if (!put(c, reply, strlen(reply)))
            return false;
    }
}

/* tls_accept - the server's side of the handshake on c */
static bool tls_accept(int c)
{
    SSL *ssl = SSL_new(srv_ctx);

    SSL_set_fd(ssl, c);
    if (SSL_accept(ssl) != 1) {
        SSL_free(ssl);
        return false;
    }
    srv_ssl = ssl;
    rec->tls_on = true;
    return true;
}

/* ticket - a TLS 1.3 session ticket, unasked: a record the client must take in passing */
static bool ticket(void)
{
    if (srv_ssl == NULL || SSL_new_session_ticket(srv_ssl) != 1 || SSL_do_handshake(srv_ssl) != 1)
        return false;
    rec->tickets++;
    return true;
}

/* run_step - one step of the script; false ends the script */
static bool run_step(int c, const struct step *st, size_t *scan)
{
    switch (st->op) {
    case OP_SEND:
        if (rec->nsend < MARKS)
            rec->at_send[rec->nsend++] = rec->len;
        return put(c, st->arg, strlen(st->arg));
    case OP_EXPECT:
        if (expect(c, st->arg, scan)) {
            rec->expects_met++;
            return true;
        }
        rec->expects_missed++;
        return false;
    case OP_STALL:
        stall(c, st->n);
        return true;
    case OP_CLOSE:
        close(c);
        return false;
    case OP_RESET: {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(c);
        return false;
    }
    case OP_TRICKLE:
        for (const char *p = st->arg; *p; p++) {
            if (!put(c, p, 1))
                return false;
            usleep((useconds_t)st->n * 1000);
        }
        return true;
    case OP_FLOOD:
        for (long i = 0; i < st->n; i++)
            if (!put(c, st->arg, strlen(st->arg)))
                return false;
        return true;
    case OP_BIGLINE:
        return bigline(c, st->arg, st->n);
    case OP_SIGTERM:
        kill(getppid(), SIGTERM);
        return true;
    case OP_SLEEP:
        usleep((useconds_t)st->n * 1000);
        return true;
    case OP_ANSWER:
        return answer(c, scan);
    case OP_TLS:
        return tls_accept(c);
    case OP_TICKET:
        return ticket();
    case OP_END:
        break;
    }
    return false;
}

/* serve - the child: one connection, the script, then record until the client leaves */
static _Noreturn void serve(int lfd, const struct step *script)
{
    sigset_t none;
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    size_t scan = 0;

    signal(SIGALRM, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    alarm(30); /* never outlive a broken test */
    int c = accept(lfd, (struct sockaddr *)&peer, &plen);
    if (c < 0)
        _exit(1);
    inet_ntop(AF_INET, &peer.sin_addr, rec->peer, sizeof rec->peer);
    const struct step *st = script;
    while (st->op != OP_END && run_step(c, st, &scan))
        st++;
    if (st->op == OP_END)
        stall(c, 5000);
    _exit(0);
}

/* server_start - fork a peer following script on PEER_IP, at a free port */
static void server_start(struct server *sv, const struct step *script, int rcvbuf)
{
    socklen_t alen = sizeof sv->addr;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(lfd >= 0);
    memset(rec, 0, offsetof(struct record, got));
    memset(&sv->addr, 0, sizeof sv->addr);
    sv->addr.sin_family = AF_INET;
    inet_pton(AF_INET, PEER_IP, &sv->addr.sin_addr);
    if (rcvbuf > 0)
        setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sv->addr, sizeof sv->addr), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sv->addr, &alen), 0);
    assert_int_equal(listen(lfd, 8), 0);
    sv->pid = fork();
    assert_true(sv->pid >= 0);
    if (sv->pid == 0)
        serve(lfd, script);
    close(lfd);
}

/* server_wait - let the peer finish (it ends when the client has gone), then reap it */
static void server_wait(struct server *sv)
{
    int st;

    for (int i = 0; i < 100; i++) {
        if (waitpid(sv->pid, &st, WNOHANG) == sv->pid)
            return;
        usleep(50000);
    }
    kill(sv->pid, SIGKILL);
    waitpid(sv->pid, &st, 0);
}

/* received - what the peer got, as a string */
static const char *received(void)
{
    rec->got[rec->len < REC_MAX ? rec->len : REC_MAX - 1] = '\0';
    return rec->got;
}

/* ---- the client side: the worker's signal arrangement ---- */

static volatile sig_atomic_t alarmed, termed;
static sigset_t wait_mask;

/* on_signal - flags only, as in the worker */
static void on_signal(int signo)
{
    if (signo == SIGALRM)
        alarmed = 1;
    else
        termed = 1;
}

/* ---- TLS: a test CA and the peer's certificate for mx.test, made once ---- */

static char cert_dir[] = "/tmp/test_smtp.XXXXXX";
static struct sl_tls_client *tls_client; /* trusts the test CA */

/* cert_path - a file of the test CA's directory */
static const char *cert_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", cert_dir, name);
    return buf;
}

/* make_certs - the CA, mx.test's key and certificate (chain with the CA), the peer's context
 * and the client's */
static int make_certs(void)
{
    char cmd[2048], chain[128], key[128], ca[128], err[256];

    if (mkdtemp(cert_dir) == NULL)
        return -1;
    snprintf(cmd, sizeof cmd,
             "cd %s && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj '/CN=test CA' -keyout ca.key -out ca.crt "
             "-addext basicConstraints=critical,CA:TRUE "
             "-addext keyUsage=critical,keyCertSign,cRLSign && "
             "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-subj /CN=mx.test -keyout mx.key -out mx.csr && "
             "printf 'subjectAltName=DNS:mx.test\nextendedKeyUsage=serverAuth\n' >mx.ext && "
             "openssl x509 -req -in mx.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
             "-out mx.crt -extfile mx.ext && cat mx.crt ca.crt >chain.pem",
             cert_dir);
    if (system(cmd) != 0)
        return -1;
    srv_ctx = SSL_CTX_new(TLS_server_method());
    if (srv_ctx == NULL ||
        SSL_CTX_use_certificate_chain_file(srv_ctx, cert_path(chain, sizeof chain, "chain.pem")) !=
            1 ||
        SSL_CTX_use_PrivateKey_file(srv_ctx, cert_path(key, sizeof key, "mx.key"),
                                    SSL_FILETYPE_PEM) != 1)
        return -1;
    tls_client = sl_tls_client_new(cert_path(ca, sizeof ca, "ca.crt"), err, sizeof err);
    return tls_client != NULL ? 0 : -1;
}

static int group_setup(void **state)
{
    struct sigaction sa;
    sigset_t block;

    (void)state;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&block);
    sigaddset(&block, SIGALRM);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &wait_mask);
    sigdelset(&wait_mask, SIGALRM);
    sigdelset(&wait_mask, SIGTERM);
    rec = mmap(NULL, sizeof *rec, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (rec == MAP_FAILED || make_certs() < 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[128];

    (void)state;
    munmap(rec, sizeof *rec);
    sl_tls_client_free(tls_client);
    SSL_CTX_free(srv_ctx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", cert_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const struct sl_smtp_env env = {.wait_mask = &wait_mask, .alarmed = &alarmed};

/* quick - every phase 2 s (the peers answer at once), QUIT 300 ms */
static struct sl_smtp_timeouts quick(void)
{
    struct sl_smtp_timeouts to;
    for (int i = 0; i < SL_PH__COUNT; i++)
        to.ms[i] = 2000;
    to.ms[SL_PH_QUIT] = 300;
    return to;
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* source - SOURCE_IP, any port */
static struct sockaddr_in source(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, SOURCE_IP, &a.sin_addr);
    return a;
}

/* open_to - sl_smtp_open from SOURCE_IP to the server */
static int open_to(struct sl_smtp *s, const struct server *sv, const struct sl_smtp_timeouts *to,
                   struct sl_reply *r)
{
    struct sockaddr_in src = source();
    return sl_smtp_open(s, &env, to, (const struct sockaddr *)&src, sizeof src,
                        (const struct sockaddr *)&sv->addr, sizeof sv->addr, HELO_NAME, NULL, r);
}

/* timer_clean - no phase timer left running and no SIGALRM left pending */
static void assert_timer_clean(void)
{
    struct itimerval v;
    sigset_t pend;

    getitimer(ITIMER_REAL, &v);
    assert_true(v.it_value.tv_sec == 0 && v.it_value.tv_usec == 0);
    sigpending(&pend);
    assert_false(sigismember(&pend, SIGALRM));
}

static const char body[] = "Subject: test\r\n\r\n..a line starting with a dot\r\nlast line\r\n";

/* txn - a transaction to rcpts with the test body */
static struct sl_smtp_txn txn(const char *sender, const char *const *rcpt, size_t n,
                              struct sl_reply *replies)
{
    struct sl_smtp_txn t = {.sender = sender,
                            .size = 4321,
                            .rcpt = rcpt,
                            .nrcpt = n,
                            .body = body,
                            .len = sizeof body - 1,
                            .rcpt_reply = replies};
    return t;
}

/* ---- sessions that work ---- */

/* Pipelined: one group MAIL+RCPT+RCPT+DATA before any reply, SIZE=, per-recipient
 * replies with enhanced codes, the body as given and ".", QUIT; bound to 127.0.0.2. */
static void test_pipelined_transaction(void **state)
{
    static const struct step script[] = {
        GREET,
        EHLO_PIPE,
        EXPECT("DATA\r\n"),
        SEND("250 2.1.0 sender ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go on\r\n"),
        EXPECT("\r\n.\r\n"),
        SEND("250 2.0.0 queued as ABC\r\n"),
        QUIT_OK,
        {0}};
    static const char *const rcpt[] = {"b@y.test", "c@y.test"};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[2];
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    assert_int_equal(r.code, 250);
    assert_true(s.esmtp && s.pipelining && s.size && s.enhanced && s.eightbit && s.starttls);
    assert_int_equal(s.size_max, 1000000);
    assert_timer_clean();

    struct sl_smtp_txn t = txn("a@x.test", rcpt, 2, rr);
    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_timer_clean();
    assert_int_equal(t.mail.code, 250);
    assert_string_equal(t.mail.enhanced, "2.1.0");
    assert_int_equal(rr[0].code, 250);
    assert_int_equal(rr[1].code, 550);
    assert_string_equal(rr[1].enhanced, "5.1.1");
    assert_string_equal(rr[1].text, "550 5.1.1 no such user");
    assert_int_equal(t.data.code, 250);
    assert_string_equal(t.data.text, "250 2.0.0 queued as ABC");
    assert_true(sl_smtp_alive(&s));
    sl_smtp_quit(&s);
    assert_int_equal(s.fd, -1);
    server_wait(&sv);

    assert_string_equal(rec->peer, SOURCE_IP);
    assert_int_equal(rec->expects_missed, 0);
    const char *group = "MAIL FROM:<a@x.test> SIZE=4321\r\nRCPT TO:<b@y.test>\r\n"
                        "RCPT TO:<c@y.test>\r\nDATA\r\n";
    char want[1024];
    snprintf(want, sizeof want, "EHLO %s\r\n%s%s.\r\nQUIT\r\n", HELO_NAME, group, body);
    assert_string_equal(received(), want);
    /* The whole group had arrived when the first reply (the third SEND) went out. */
    assert_int_equal(rec->at_send[2], strlen("EHLO " HELO_NAME "\r\n") + strlen(group));
}

/* RFC 9422 LIMITS: RCPTMAX and MAILMAX are read (any case, any order; unknown parameters,
 * bad values and a keyword that only starts with LIMITS are ignored). */
static void test_ehlo_limits(void **state)
{
    static const struct {
        const char *line;
        uint32_t rcptmax, mailmax;
    } cases[] = {
        {"250 LIMITS RCPTMAX=2 MAILMAX=5\r\n", 2, 5},
        {"250 limits mailmax=7 RCPTDOMAINMAX=3 rcptmax=100\r\n", 100, 7},
        {"250 LIMITS RCPTMAX=0 MAILMAX=x FOO\r\n", 0, 0},
        {"250 LIMITS RCPTMAX=99999999999 MAILMAX=3\r\n", 0, 3},
        {"250 LIMITSX RCPTMAX=2\r\n", 0, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char ehlo[256];
        snprintf(ehlo, sizeof ehlo, "250-mx.test hello\r\n250-PIPELINING\r\n%s", cases[i].line);
        const struct step script[] = {GREET, EHLO_EXPECT, SEND(ehlo), QUIT_OK, {0}};
        struct server sv;
        struct sl_smtp s;
        struct sl_reply r;
        struct sl_smtp_timeouts to = quick();

        server_start(&sv, script, 0);
        assert_int_equal(open_to(&s, &sv, &to, &r), 0);
        if (s.rcptmax != cases[i].rcptmax || s.mailmax != cases[i].mailmax)
            fail_msg("%s: rcptmax %u mailmax %u", cases[i].line, s.rcptmax, s.mailmax);
        sl_smtp_quit(&s);
        server_wait(&sv);
    }
}

/* No PIPELINING, EHLO refused with 502: HELO on the same connection, then one command at a
 * time; a refused MAIL sends no RCPT; a refused only recipient sends no DATA and the next
 * transaction starts with RSET; an explicit RSET; no SIZE= when SIZE is not offered. */
static void test_stepwise_helo_fallback(void **state)
{
    static const struct step script[] = {GREET,
                                         EHLO_EXPECT,
                                         SEND("502 5.5.1 no EHLO here\r\n"),
                                         EXPECT("HELO " HELO_NAME "\r\n"),
                                         SEND("250 mx.test\r\n"),
                                         /* 1: delivered */
                                         EXPECT("MAIL FROM:<>\r\n"),
                                         SEND("250 ok\r\n"),
                                         EXPECT("RCPT TO:<b@y.test>\r\n"),
                                         SEND("250 ok\r\n"),
                                         EXPECT("DATA\r\n"),
                                         SEND("354 go\r\n"),
                                         EXPECT("\r\n.\r\n"),
                                         SEND("250 queued\r\n"),
                                         /* 2: MAIL refused */
                                         EXPECT("MAIL FROM:<a@x.test>\r\n"),
                                         SEND("550 5.7.1 sender refused\r\n"),
                                         /* 3: the only recipient refused */
                                         EXPECT("MAIL FROM:<a@x.test>\r\n"),
                                         SEND("250 ok\r\n"),
                                         EXPECT("RCPT TO:<b@y.test>\r\n"),
                                         SEND("450 4.2.0 try later\r\n"),
                                         /* 4: RSET first, then MAIL refused */
                                         EXPECT("RSET\r\n"),
                                         SEND("250 reset\r\n"),
                                         EXPECT("MAIL FROM:<a@x.test>\r\n"),
                                         SEND("451 busy\r\n"),
                                         EXPECT("RSET\r\n"),
                                         SEND("250 reset\r\n"),
                                         QUIT_OK,
                                         {0}};
    static const char *const rcpt[] = {"b@y.test"};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[1];
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    assert_false(s.esmtp || s.pipelining || s.size);

    struct sl_smtp_txn t = txn("", rcpt, 1, rr);
    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_int_equal(rr[0].code, 250);
    assert_int_equal(t.data.code, 250);

    t = txn("a@x.test", rcpt, 1, rr);
    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_int_equal(t.mail.code, 550);
    assert_int_equal(rr[0].code, 550);
    assert_string_equal(rr[0].text, "550 5.7.1 sender refused");
    assert_int_equal(t.data.code, 0);

    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_int_equal(rr[0].code, 450);
    assert_string_equal(rr[0].enhanced, "4.2.0");
    assert_int_equal(t.data.code, 0);

    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_int_equal(t.mail.code, 451);
    assert_int_equal(sl_smtp_rset(&s), 0);
    assert_timer_clean();
    sl_smtp_quit(&s);
    server_wait(&sv);

    assert_int_equal(rec->expects_missed, 0);
    char want[1024];
    snprintf(want, sizeof want,
             "EHLO %s\r\nHELO %s\r\nMAIL FROM:<>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n%s.\r\n"
             "MAIL FROM:<a@x.test>\r\n"
             "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
             "RSET\r\nMAIL FROM:<a@x.test>\r\nRSET\r\nQUIT\r\n",
             HELO_NAME, HELO_NAME, body);
    assert_string_equal(received(), want);
}

/* Pipelined, MAIL refused: every recipient carries the MAIL reply.  Then every recipient
 * refused but DATA answered 354: only "." is sent, and the session carries on. */
static void test_pipelined_refusals(void **state)
{
    static const struct step script[] = {
        GREET,
        EHLO_PIPE,
        EXPECT("DATA\r\n"),
        SEND("452 4.3.1 out of space\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n"
             "503 5.5.1 no valid recipients\r\n"),
        EXPECT("DATA\r\n"),
        SEND("250 ok\r\n550 5.1.1 no\r\n354 go\r\n"),
        EXPECT(".\r\n"), /* straight after the DATA matched above: no body */
        SEND("554 5.5.1 no valid recipients\r\n"),
        QUIT_OK,
        {0}};
    static const char *const rcpt[] = {"b@y.test", "c@y.test"};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[2];
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    struct sl_smtp_txn t = txn("a@x.test", rcpt, 2, rr);
    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_int_equal(t.mail.code, 452);
    assert_int_equal(rr[0].code, 452);
    assert_int_equal(rr[1].code, 452);
    assert_string_equal(rr[1].text, "452 4.3.1 out of space");
    assert_int_equal(t.data.code, 503);

    t = txn("a@x.test", rcpt, 1, rr);
    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_int_equal(rr[0].code, 550);
    assert_int_equal(t.data.code, 554);
    sl_smtp_quit(&s);
    server_wait(&sv);

    assert_int_equal(rec->expects_missed, 0);
    char want[1024];
    snprintf(want, sizeof want,
             "EHLO %s\r\n"
             "MAIL FROM:<a@x.test> SIZE=4321\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
             "DATA\r\n"
             "MAIL FROM:<a@x.test> SIZE=4321\r\nRCPT TO:<b@y.test>\r\nDATA\r\n.\r\nQUIT\r\n",
             HELO_NAME);
    assert_string_equal(received(), want);
}

/* RSET leads the pipelined group when asked or when the last transaction was left open (its
 * DATA refused); its reply is read first, under the rset timer; a refused RSET ends the
 * session. */
static void test_pipelined_rset(void **state)
{
    static const struct step script[] = {GREET,
                                         EHLO_PIPE,
                                         EXPECT("DATA\r\n"),
                                         SEND("250 ok\r\n250 ok\r\n451 4.3.0 not now\r\n"),
                                         EXPECT("DATA\r\n"),
                                         SEND("250 2.0.0 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
                                         EXPECT("\r\n.\r\n"),
                                         SEND("250 queued\r\n"),
                                         EXPECT("DATA\r\n"),
                                         SEND("500 5.5.1 what\r\n503 no\r\n503 no\r\n503 no\r\n"),
                                         STALL(3000),
                                         {0}};
    static const char *const rcpt[] = {"b@y.test"};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[1];
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    struct sl_smtp_txn t = txn("a@x.test", rcpt, 1, rr);
    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_int_equal(t.data.code, 451);
    assert_int_equal(t.rset_reply.code, 0);

    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_int_equal(t.rset_reply.code, 250);
    assert_string_equal(t.rset_reply.enhanced, "2.0.0");
    assert_int_equal(t.data.code, 250);

    t.rset = true;
    assert_int_equal(sl_smtp_send(&s, &t), -1);
    assert_int_equal(s.fail, SL_SMTP_FAIL_REPLY);
    assert_int_equal(s.phase, SL_PH_RSET);
    assert_string_equal(s.err, "RSET refused: 500 5.5.1 what");
    assert_int_equal(t.rset_reply.code, 500);
    assert_int_equal(t.mail.code, 0);
    assert_int_equal(s.fd, -1);
    assert_timer_clean();
    server_wait(&sv);

    const char *group = "MAIL FROM:<a@x.test> SIZE=4321\r\nRCPT TO:<b@y.test>\r\nDATA\r\n";
    char want[1024];
    snprintf(want, sizeof want, "EHLO %s\r\n%sRSET\r\n%s%s.\r\nRSET\r\n%s", HELO_NAME, group, group,
             body, group);
    assert_string_equal(received(), want);
}

/* A 3 MB body to a peer with a small receive buffer: partial writes and POLLOUT waits, every
 * byte arrives once and in order. */
static void test_large_body(void **state)
{
    static const struct step script[] = {GREET, EHLO_PIPE, ONE_DATA, QUIT_OK, {0}};
    static const char *const rcpt[] = {"b@y.test"};
    size_t len = 3000000; /* whole 100-byte lines */
    char *big = malloc(len);
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[1];
    struct sl_smtp_timeouts to = quick();

    (void)state;
    assert_non_null(big);
    for (size_t i = 0; i < len; i += 100) {
        memset(big + i, 'a' + (int)(i / 100 % 26), 98);
        memcpy(big + i + 98, "\r\n", 2);
    }
    server_start(&sv, script, 4096);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    struct sl_smtp_txn t = {
        .sender = "a@x.test", .rcpt = rcpt, .nrcpt = 1, .body = big, .len = len, .rcpt_reply = rr};
    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_int_equal(t.data.code, 250);
    sl_smtp_quit(&s);
    server_wait(&sv);

    const char *head = "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n";
    size_t off = strlen("EHLO " HELO_NAME "\r\n") + strlen(head);
    assert_int_equal(rec->len, off + len + strlen(".\r\nQUIT\r\n"));
    assert_memory_equal(rec->got + off, big, len);
    free(big);
}

/* Many recipients: the group goes out in chunks, each chunk's replies read before the next
 * is written, and every recipient still gets its own reply. */
static void test_many_recipients(void **state)
{
    static const struct step script[] = {
        GREET, EHLO_PIPE, ANSWER, EXPECT("\r\n.\r\n"), SEND("250 queued\r\n"), QUIT_OK, {0}};
    enum { N = 1000 };
    static char addr[N][64];
    static const char *rcpt[N];
    static struct sl_reply rr[N];
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r;
    struct sl_smtp_timeouts to = quick();

    (void)state;
    for (int i = 0; i < N; i++) {
        snprintf(addr[i], sizeof addr[i], "%s%04d@some-longer-domain.test", i % 7 ? "u" : "bad", i);
        rcpt[i] = addr[i];
    }
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    struct sl_smtp_txn t = txn("a@x.test", rcpt, N, rr);
    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_int_equal(t.mail.code, 250);
    for (int i = 0; i < N; i++)
        assert_int_equal(rr[i].code, i % 7 ? 250 : 550);
    assert_int_equal(t.data.code, 250);
    sl_smtp_quit(&s);
    server_wait(&sv);
    assert_int_equal(rec->expects_missed, 0);
    /* Every RCPT once, in order, and DATA after the last. */
    const char *p = received();
    for (int i = 0; i < N; i++) {
        char cmd[96];
        snprintf(cmd, sizeof cmd, "RCPT TO:<%.63s>\r\n", addr[i]);
        const char *q = strstr(p, cmd);
        assert_non_null(q);
        p = q + strlen(cmd);
    }
    assert_true(strncmp(p, "DATA\r\n", 6) == 0);
}

/* ---- several transactions in a row (sl_smtp_send_many) ---- */

#define EHLO_LINE "EHLO " HELO_NAME "\r\n"
#define MAIL_LINE "MAIL FROM:<a@x.test> SIZE=4321\r\n"

/* Which transactions sl_smtp_send_many said were over, and how many bytes the peer had when
 * it did. */
struct overs {
    size_t n;
    size_t i[8];
    size_t peer_had[8];
    size_t peer_total[8]; /* bytes the peer had read in all (peer_had stops at REC_MAX) */
};

/* note_over - the callback: record i and what the peer had received by then */
static void note_over(void *arg, size_t i)
{
    struct overs *o = arg;

    assert_true(o->n < 8);
    o->i[o->n] = i;
    o->peer_total[o->n] = rec->total;
    o->peer_had[o->n++] = rec->len;
}

/* assert_overs - the callback came for transactions 0..n-1, in order */
static void assert_overs(const struct overs *o, size_t n)
{
    assert_int_equal(o->n, n);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(o->i[k], k);
}

/* three_txns - transactions to b@, c@ and d@y.test (one recipient each), RSET before the
 * second and third as the worker asks */
static void three_txns(struct sl_smtp_txn *t, struct sl_reply rr[][2])
{
    static const char *const rcpt[3][1] = {{"b@y.test"}, {"c@y.test"}, {"d@y.test"}};

    for (int i = 0; i < 3; i++) {
        t[i] = txn("a@x.test", rcpt[i], 1, rr[i]);
        t[i].rset = i > 0;
    }
}

/* Pipelined across transactions: each body and "." go in one write with the next
 * transaction's RSET, MAIL, RCPT and DATA, all of which reach the peer before it answers the
 * dot: one round trip per message.  Every reply lands in its own transaction. */
static void test_many_pipelined(void **state)
{
    static const struct step script[] = {
        GREET,
        EHLO_PIPE,
        EXPECT("<b@y.test>\r\nDATA\r\n"),
        SEND("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"),
        EXPECT("<c@y.test>\r\nDATA\r\n"),
        SEND("250 2.0.0 queued 1\r\n250 2.0.0 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        EXPECT("<d@y.test>\r\nDATA\r\n"),
        SEND("250 2.0.0 queued 2\r\n250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        EXPECT("\r\n.\r\n"),
        SEND("250 2.0.0 queued 3\r\n"),
        QUIT_OK,
        {0}};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[3][2];
    struct sl_smtp_txn t[3];
    struct overs o = {0};
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    three_txns(t, rr);
    assert_int_equal(sl_smtp_send_many(&s, t, 3, note_over, &o), 0);
    assert_timer_clean();
    for (int i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "250 2.0.0 queued %d", i + 1);
        assert_int_equal(t[i].mail.code, 250);
        assert_int_equal(rr[i][0].code, 250);
        assert_string_equal(t[i].data.text, want);
        assert_int_equal(t[i].rset_reply.code, i > 0 ? 250 : 0);
    }
    assert_string_equal(t[1].rset_reply.text, "250 2.0.0 reset");
    assert_true(sl_smtp_alive(&s));
    sl_smtp_quit(&s);
    server_wait(&sv);

    assert_int_equal(rec->expects_missed, 0);
    const char *g1 = MAIL_LINE "RCPT TO:<b@y.test>\r\nDATA\r\n";
    const char *g2 = "RSET\r\n" MAIL_LINE "RCPT TO:<c@y.test>\r\nDATA\r\n";
    const char *g3 = "RSET\r\n" MAIL_LINE "RCPT TO:<d@y.test>\r\nDATA\r\n";
    char want[2048];
    snprintf(want, sizeof want, EHLO_LINE "%s%s.\r\n%s%s.\r\n%s%s.\r\nQUIT\r\n", g1, body, g2, body,
             g3, body);
    assert_string_equal(received(), want);
    /* The peer answered each dot only once the next group had arrived behind it. */
    size_t at = strlen(EHLO_LINE) + strlen(g1);
    assert_int_equal(rec->at_send[2], at);
    at += strlen(body) + 3 + strlen(g2);
    assert_int_equal(rec->at_send[3], at);
    at += strlen(body) + 3 + strlen(g3);
    assert_int_equal(rec->at_send[4], at);
    /* Each was over (for the caller to record) before the next body went out. */
    assert_overs(&o, 3);
    assert_int_equal(o.peer_had[0], rec->at_send[3]);
    assert_int_equal(o.peer_had[1], rec->at_send[4]);
    assert_int_equal(o.peer_had[2], at + strlen(body) + 3);
}

/* A refused recipient in the middle transaction: the accepted one still gets the body, the
 * refused one keeps its reply, and the transactions around it are untouched. */
static void test_many_refused_rcpt(void **state)
{
    static const struct step script[] = {
        GREET,
        EHLO_PIPE,
        EXPECT("<b@y.test>\r\nDATA\r\n"),
        SEND("250 ok\r\n250 ok\r\n354 go\r\n"),
        EXPECT("<e@y.test>\r\nDATA\r\n"),
        SEND("250 queued 1\r\n250 reset\r\n250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n354 "
             "go\r\n"),
        EXPECT("<d@y.test>\r\nDATA\r\n"),
        SEND("250 queued 2\r\n250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        EXPECT("\r\n.\r\n"),
        SEND("250 queued 3\r\n"),
        QUIT_OK,
        {0}};
    static const char *const two[] = {"c@y.test", "e@y.test"};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[3][2];
    struct sl_smtp_txn t[3];
    struct overs o = {0};
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    three_txns(t, rr);
    t[1].rcpt = two;
    t[1].nrcpt = 2;
    assert_int_equal(sl_smtp_send_many(&s, t, 3, note_over, &o), 0);
    assert_overs(&o, 3);
    assert_int_equal(rr[1][0].code, 550);
    assert_string_equal(rr[1][0].text, "550 5.1.1 no such user");
    assert_int_equal(rr[1][1].code, 250);
    assert_string_equal(t[0].data.text, "250 queued 1");
    assert_string_equal(t[1].data.text, "250 queued 2");
    assert_string_equal(t[2].data.text, "250 queued 3");
    sl_smtp_quit(&s);
    server_wait(&sv);

    assert_int_equal(rec->expects_missed, 0);
    char want[2048];
    snprintf(want, sizeof want,
             EHLO_LINE MAIL_LINE "RCPT TO:<b@y.test>\r\nDATA\r\n%s.\r\n"
                                 "RSET\r\n" MAIL_LINE "RCPT TO:<c@y.test>\r\nRCPT TO:<e@y.test>\r\n"
                                 "DATA\r\n%s.\r\n"
                                 "RSET\r\n" MAIL_LINE
                                 "RCPT TO:<d@y.test>\r\nDATA\r\n%s.\r\nQUIT\r\n",
             body, body, body);
    assert_string_equal(received(), want);
}

/* DATA refused in the middle (no 354): no body and no dot for it, the next group goes on
 * its own; a middle transaction whose only recipient is refused while DATA still gets 354
 * sends only "." (leading the next group). */
static void test_many_data_refused(void **state)
{
    static const struct step script[] = {
        GREET,
        EHLO_PIPE,
        EXPECT("<b@y.test>\r\nDATA\r\n"),
        SEND("250 ok\r\n250 ok\r\n354 go\r\n"),
        EXPECT("<c@y.test>\r\nDATA\r\n"),
        SEND("250 queued 1\r\n250 reset\r\n250 ok\r\n250 ok\r\n451 4.3.0 not now\r\n"),
        EXPECT("<d@y.test>\r\nDATA\r\n"),
        SEND("250 reset\r\n250 ok\r\n550 5.1.1 no\r\n354 go\r\n"),
        EXPECT("<b@y.test>\r\nDATA\r\n"),
        SEND("554 5.5.1 no valid recipients\r\n250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        EXPECT("\r\n.\r\n"),
        SEND("250 queued 4\r\n"),
        QUIT_OK,
        {0}};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[4][2];
    struct sl_smtp_txn t[4];
    struct overs o = {0};
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    three_txns(t, rr);
    t[3] = t[0];
    t[3].rset = true;
    t[3].rcpt_reply = rr[3];
    assert_int_equal(sl_smtp_send_many(&s, t, 4, note_over, &o), 0);
    assert_overs(&o, 4);
    assert_string_equal(t[0].data.text, "250 queued 1");
    assert_int_equal(t[1].data.code, 451);
    assert_int_equal(rr[1][0].code, 250);
    assert_int_equal(rr[2][0].code, 550);
    assert_int_equal(t[2].data.code, 554);
    assert_string_equal(t[3].data.text, "250 queued 4");
    assert_timer_clean();
    sl_smtp_quit(&s);
    server_wait(&sv);

    assert_int_equal(rec->expects_missed, 0);
    char want[2048];
    snprintf(want, sizeof want,
             EHLO_LINE MAIL_LINE "RCPT TO:<b@y.test>\r\nDATA\r\n%s.\r\n"
                                 "RSET\r\n" MAIL_LINE "RCPT TO:<c@y.test>\r\nDATA\r\n"
                                 "RSET\r\n" MAIL_LINE "RCPT TO:<d@y.test>\r\nDATA\r\n.\r\n"
                                 "RSET\r\n" MAIL_LINE
                                 "RCPT TO:<b@y.test>\r\nDATA\r\n%s.\r\nQUIT\r\n",
             body, body);
    assert_string_equal(received(), want);
}

/* The peer closes after the first final reply: the first transaction is done, the second
 * (already sent) and the third (never sent) report no reply at all; the failure names the
 * phase whose reply was awaited. */
static void test_many_session_dies(void **state)
{
    static const struct step script[] = {GREET,
                                         EHLO_PIPE,
                                         EXPECT("<b@y.test>\r\nDATA\r\n"),
                                         SEND("250 ok\r\n250 ok\r\n354 go\r\n"),
                                         EXPECT("<c@y.test>\r\nDATA\r\n"),
                                         SEND("250 queued 1\r\n"),
                                         CLOSE,
                                         {0}};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[3][2];
    struct sl_smtp_txn t[3];
    struct overs o = {0};
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    three_txns(t, rr);
    assert_int_equal(sl_smtp_send_many(&s, t, 3, note_over, &o), -1);
    assert_overs(&o, 1);
    assert_int_equal(s.fd, -1);
    assert_timer_clean();
    assert_int_equal(s.fail, SL_SMTP_FAIL_IO);
    assert_int_equal(s.phase, SL_PH_RSET);
    assert_string_equal(s.err, "connection closed by the peer during rset");
    assert_string_equal(t[0].data.text, "250 queued 1");
    for (int i = 1; i < 3; i++) {
        assert_int_equal(t[i].rset_reply.code, 0);
        assert_int_equal(t[i].mail.code, 0);
        assert_int_equal(rr[i][0].code, 0);
        assert_int_equal(t[i].data.code, 0);
    }
    server_wait(&sv);
    assert_int_equal(rec->expects_missed, 0);
}

/* An unfit address in a later transaction: the one before still ends properly (its body
 * goes alone), then the call fails as sl_smtp_send would, before a byte of the unfit one. */
static void test_many_unfit_address(void **state)
{
    static const struct step script[] = {GREET,
                                         EHLO_PIPE,
                                         EXPECT("<b@y.test>\r\nDATA\r\n"),
                                         SEND("250 ok\r\n250 ok\r\n354 go\r\n"),
                                         EXPECT("\r\n.\r\n"),
                                         SEND("250 queued 1\r\n"),
                                         STALL(3000),
                                         {0}};
    static const char *const unfit[] = {"c@y.test>\r\nRCPT TO:<evil@y.test"};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[3][2];
    struct sl_smtp_txn t[3];
    struct overs o = {0};
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    three_txns(t, rr);
    t[1].rcpt = unfit;
    assert_int_equal(sl_smtp_send_many(&s, t, 3, note_over, &o), -1);
    assert_overs(&o, 1);
    assert_int_equal(s.fail, SL_SMTP_FAIL_PROTO);
    assert_int_equal(s.phase, SL_PH_RCPT_TO);
    assert_string_equal(t[0].data.text, "250 queued 1");
    assert_int_equal(t[1].mail.code, 0);
    assert_timer_clean();
    server_wait(&sv);

    char want[1024];
    snprintf(want, sizeof want, EHLO_LINE MAIL_LINE "RCPT TO:<b@y.test>\r\nDATA\r\n%s.\r\n", body);
    assert_string_equal(received(), want);
}

/* ---- BDAT runs (CHUNKING) ---- */

#define EHLO_CHUNK                                                                                 \
    EHLO_EXPECT, SEND("250-mx.test hello\r\n250-PIPELINING\r\n250-CHUNKING\r\n"                    \
                      "250-SIZE 1000000\r\n250 ENHANCEDSTATUSCODES\r\n")

/* the test body as BDAT carries it: the stuffed dot taken off */
static const char unstuffed[] = "Subject: test\r\n\r\n.a line starting with a dot\r\nlast line\r\n";

/* open_chunked - a session to the server with BDAT asked for */
static void open_chunked(struct sl_smtp *s, const struct server *sv,
                         const struct sl_smtp_timeouts *to)
{
    struct sl_reply r;

    assert_int_equal(open_to(s, sv, to, &r), 0);
    assert_true(s->chunking && s->pipelining);
    s->bdat = true;
}

/* bdat_group - "[RSET]MAIL RCPT BDAT n LAST" and the plain body, into out */
static void bdat_group(char *out, size_t cap, bool rset, const char *rcpt)
{
    snprintf(out, cap, "%s" MAIL_LINE "RCPT TO:<%s>\r\nBDAT %zu LAST\r\n%s", rset ? "RSET\r\n" : "",
             rcpt, sizeof unstuffed - 1, unstuffed);
}

/* RUN_IN - the peer waits for the whole run of three_txns: the last group and its body */
#define RUN_IN EXPECT("<d@y.test>\r\nBDAT"), EXPECT("last line\r\n")

/* send_three - three_txns sent with BDAT to a server following script; the call's result */
static int send_three(struct server *sv, const struct step *script, struct sl_smtp *s,
                      struct sl_smtp_txn *t, struct sl_reply rr[][2], struct overs *o)
{
    struct sl_smtp_timeouts to = quick();

    server_start(sv, script, 0);
    open_chunked(s, sv, &to);
    three_txns(t, rr);
    return sl_smtp_send_many(s, t, 3, note_over, o);
}

/* want_runs - what the peer gets for BDAT groups to rcpt[0..n) (RSET before all but the
 * first), between EHLO and QUIT */
static void want_runs(char *want, size_t cap, const char *const *rcpt, size_t n)
{
    size_t len = (size_t)snprintf(want, cap, EHLO_LINE);

    for (size_t i = 0; i < n; i++) {
        bdat_group(want + len, cap - len, i > 0, rcpt[i]);
        len += strlen(want + len);
    }
    snprintf(want + len, cap - len, "QUIT\r\n");
}

/* A run of three: every command and every body (unstuffed, counted by BDAT) reach the peer
 * before its first reply, so the run costs one round trip; each reply lands in its own
 * transaction, RSET leads the second and third, and the caller hears of each in order. */
static void test_chunked_run(void **state)
{
    static const struct step script[] = {
        GREET,
        EHLO_CHUNK,
        RUN_IN,
        SEND("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.0.0 queued 1\r\n"
             "250 2.0.0 reset\r\n250 ok\r\n250 ok\r\n250 2.0.0 queued 2\r\n"
             "250 reset\r\n250 ok\r\n250 ok\r\n250 2.0.0 queued 3\r\n"),
        QUIT_OK,
        {0}};
    static const char *const rcpt[] = {"b@y.test", "c@y.test", "d@y.test"};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply rr[3][2];
    struct sl_smtp_txn t[3];
    struct overs o = {0};

    (void)state;
    assert_int_equal(send_three(&sv, script, &s, t, rr, &o), 0);
    assert_timer_clean();
    assert_overs(&o, 3);
    for (int i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "250 2.0.0 queued %d", i + 1);
        assert_int_equal(t[i].mail.code, 250);
        assert_int_equal(rr[i][0].code, 250);
        assert_string_equal(t[i].data.text, want);
        assert_int_equal(t[i].rset_reply.code, i > 0 ? 250 : 0);
    }
    assert_false(s.txn_open);
    assert_true(sl_smtp_alive(&s));
    sl_smtp_quit(&s);
    server_wait(&sv);

    assert_int_equal(rec->expects_missed, 0);
    char want[2048];
    want_runs(want, sizeof want, rcpt, 3);
    assert_string_equal(received(), want);
    /* the whole run was in when the peer sent its first reply */
    assert_int_equal(rec->at_send[2], strlen(want) - strlen("QUIT\r\n"));
}

/* Refusals inside a run: a refused MAIL stands for its recipients and its BDAT gets 503, a
 * transaction whose only recipient is refused gets 554 at BDAT, the last one's 451 leaves the
 * session needing RSET, so the next call leads with it although not asked. */
static void test_chunked_refusals(void **state)
{
    static const struct step script[] = {
        GREET,
        EHLO_CHUNK,
        RUN_IN,
        SEND("550 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
             "250 reset\r\n250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n"
             "250 reset\r\n250 ok\r\n250 ok\r\n451 4.3.0 try later\r\n"),
        EXPECT("<b@y.test>\r\nBDAT"),
        EXPECT("last line\r\n"),
        SEND("250 reset\r\n250 ok\r\n250 ok\r\n250 queued 4\r\n"),
        QUIT_OK,
        {0}};
    static const char *const rcpt[] = {"b@y.test", "c@y.test", "d@y.test", "b@y.test"};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply rr[4][2];
    struct sl_smtp_txn t[4];
    struct overs o = {0};

    (void)state;
    assert_int_equal(send_three(&sv, script, &s, t, rr, &o), 0);
    assert_overs(&o, 3);
    assert_int_equal(t[0].mail.code, 550);
    assert_string_equal(rr[0][0].text, "550 5.7.1 sender refused");
    assert_int_equal(t[0].data.code, 503);
    assert_int_equal(rr[1][0].code, 550);
    assert_int_equal(t[1].data.code, 554);
    assert_int_equal(t[2].data.code, 451);
    assert_true(s.txn_open);
    t[3] = t[0];
    t[3].rset = false;
    t[3].rcpt_reply = rr[3];
    assert_int_equal(sl_smtp_send(&s, &t[3]), 0);
    assert_int_equal(t[3].rset_reply.code, 250);
    assert_string_equal(t[3].data.text, "250 queued 4");
    assert_false(s.txn_open);
    assert_timer_clean();
    sl_smtp_quit(&s);
    server_wait(&sv);

    assert_int_equal(rec->expects_missed, 0);
    char want[4096];
    want_runs(want, sizeof want, rcpt, 4);
    assert_string_equal(received(), want);
}

/* Unstuffing: a dot-stuffed first line, a line of dots, a body without its final CRLF (ended
 * as DATA would end it), and an empty body; BDAT counts exactly what follows it. */
static void test_chunked_unstuffing(void **state)
{
    static const struct step script[] = {GREET,
                                         EHLO_CHUNK,
                                         EXPECT("BDAT 0 LAST\r\n"),
                                         SEND("250 ok\r\n250 ok\r\n250 q1\r\n"
                                              "250 r\r\n250 ok\r\n250 ok\r\n250 q2\r\n"),
                                         QUIT_OK,
                                         {0}};
    static const char *const rcpt[] = {"b@y.test"};
    static const char stuffed[] = "..x\r\n...\r\nmid..dle\r\n..";
    struct server sv;
    struct sl_smtp s;
    struct sl_reply rr[2][1];
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    open_chunked(&s, &sv, &to);
    struct sl_smtp_txn t[2] = {txn("a@x.test", rcpt, 1, rr[0]), txn("a@x.test", rcpt, 1, rr[1])};
    t[0].body = stuffed;
    t[0].len = sizeof stuffed - 1;
    t[1].body = "";
    t[1].len = 0;
    assert_int_equal(sl_smtp_send_many(&s, t, 2, NULL, NULL), 0);
    assert_string_equal(t[0].data.text, "250 q1");
    assert_string_equal(t[1].data.text, "250 q2");
    sl_smtp_quit(&s);
    server_wait(&sv);

    assert_int_equal(rec->expects_missed, 0);
    assert_string_equal(received(),
                        EHLO_LINE MAIL_LINE "RCPT TO:<b@y.test>\r\nBDAT 21 LAST\r\n"
                                            ".x\r\n..\r\nmid..dle\r\n.\r\n"
                                            "RSET\r\n" MAIL_LINE "RCPT TO:<b@y.test>\r\n"
                                            "BDAT 0 LAST\r\nQUIT\r\n");
}

/* The session ends in the middle of a run, after the first transaction's replies: the peer
 * closes, or answers the second's RSET and then MAIL with 421.  The first is over; the others
 * (written in the same run) keep what was read (the 421 stands for the second's recipients),
 * and the session is dead, naming the phase whose reply ended it. */
static void test_chunked_session_dies(void **state)
{
    static const struct step closes[] = {
        GREET, EHLO_CHUNK, RUN_IN, SEND("250 ok\r\n250 ok\r\n250 queued 1\r\n"), CLOSE, {0}};
    static const struct step says_421[] = {
        GREET,
        EHLO_CHUNK,
        RUN_IN,
        SEND("250 ok\r\n250 ok\r\n250 queued 1\r\n250 reset\r\n421 4.7.0 too many errors\r\n"),
        CLOSE,
        {0}};
    static const struct {
        const struct step *script;
        enum sl_smtp_fail fail;
        enum sl_phase phase;
        int mail1; /* the second transaction's MAIL reply */
    } cases[] = {{closes, SL_SMTP_FAIL_IO, SL_PH_RSET, 0},
                 {says_421, SL_SMTP_FAIL_REPLY, SL_PH_MAIL_FROM, 421}};

    (void)state;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct server sv;
        struct sl_smtp s;
        struct sl_reply rr[3][2];
        struct sl_smtp_txn t[3];
        struct overs o = {0};
        assert_int_equal(send_three(&sv, cases[k].script, &s, t, rr, &o), -1);
        assert_overs(&o, 1);
        assert_int_equal(s.fd, -1);
        assert_int_equal(s.fail, cases[k].fail);
        assert_int_equal(s.phase, cases[k].phase);
        assert_string_equal(t[0].data.text, "250 queued 1");
        assert_int_equal(t[1].mail.code, cases[k].mail1);
        assert_int_equal(rr[1][0].code, cases[k].mail1);
        assert_int_equal(t[1].data.code, 0);
        assert_int_equal(t[2].mail.code, 0);
        assert_int_equal(rr[2][0].code, 0);
        assert_timer_clean();
        server_wait(&sv);
    }
}

/* first_then_big - three_txns with a small first body, then two of 8 MB (whole 100-byte
 * lines), twice over the largest socket send buffer (tcp_wmem's 4 MB); the caller frees *big */
enum { BIG_BODY = 8 << 20 };
static void first_then_big(struct sl_smtp_txn *t, struct sl_reply rr[][2], char **big)
{
    static const char first[] = "Subject: one\r\n\r\nfirst end\r\n";

    *big = malloc(BIG_BODY);
    assert_non_null(*big);
    for (size_t i = 0; i + 100 <= BIG_BODY; i += 100) {
        memset(*big + i, 'x', 98);
        memcpy(*big + i + 98, "\r\n", 2);
    }
    three_txns(t, rr);
    t[0].body = first;
    t[0].len = sizeof first - 1;
    for (int i = 1; i < 3; i++) {
        t[i].body = *big;
        t[i].len = BIG_BODY - BIG_BODY % 100;
    }
}

/* Between the pieces of a run, the replies that have arrived are read and their transactions
 * told over at once, not only once the whole run is written: the first transaction is over
 * before the third's 8 MB go out.  (Its replies are there once the second's 8 MB were taken:
 * the peer sent them before reading on.)  Measured by what the peer had read when the first
 * was told: at most the first two transactions, where after the whole run it would have read
 * all but the socket buffers' (at most 4 MB and its 4 KB) of the third too. */
static void test_chunked_replies_between_pieces(void **state)
{
    static const struct step script[] = {GREET,
                                         EHLO_CHUNK,
                                         EXPECT("first end\r\n"),
                                         SEND("250 ok\r\n250 ok\r\n250 queued 1\r\n"),
                                         STALL(3000),
                                         CLOSE,
                                         {0}};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply rr[3][2];
    struct sl_smtp_txn t[3];
    struct overs o = {0};
    struct sl_smtp_timeouts to = quick();
    char *big;

    (void)state;
    server_start(&sv, script, 4096);
    open_chunked(&s, &sv, &to);
    first_then_big(t, rr, &big);
    assert_int_equal(sl_smtp_send_many(&s, t, 3, note_over, &o), -1); /* no more replies */
    assert_overs(&o, 1);
    assert_string_equal(t[0].data.text, "250 queued 1");
    assert_true(o.peer_total[0] <= (size_t)BIG_BODY + 4096);
    server_wait(&sv);
    free(big);
}

/* More line-leading dots than one write's iovecs: the run is written in several writes and
 * every byte arrives once, unstuffed, in order. */
static void test_chunked_many_dots(void **state)
{
    static const struct step script[] = {
        GREET, EHLO_CHUNK, EXPECT("d99\r\n"), SEND("250 ok\r\n250 ok\r\n250 q\r\n"), QUIT_OK, {0}};
    static const char *const rcpt[] = {"b@y.test"};
    char stuffed[1024], plain[1024], want[2048];
    size_t n = 0, m = 0;
    struct server sv;
    struct sl_smtp s;
    struct sl_reply rr[1];
    struct sl_smtp_timeouts to = quick();

    (void)state;
    for (int i = 0; i < 100; i++) {
        n += (size_t)snprintf(stuffed + n, sizeof stuffed - n, "..d%02d\r\n", i);
        m += (size_t)snprintf(plain + m, sizeof plain - m, ".d%02d\r\n", i);
    }
    server_start(&sv, script, 0);
    open_chunked(&s, &sv, &to);
    struct sl_smtp_txn t = txn("a@x.test", rcpt, 1, rr);
    t.body = stuffed;
    t.len = n;
    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_string_equal(t.data.text, "250 q");
    sl_smtp_quit(&s);
    server_wait(&sv);
    assert_int_equal(rec->expects_missed, 0);
    snprintf(want, sizeof want,
             EHLO_LINE MAIL_LINE "RCPT TO:<b@y.test>\r\nBDAT %zu LAST\r\n%sQUIT\r\n", m, plain);
    assert_string_equal(received(), want);
}

/* Runs end where their replies would pile up: three transactions of 100 recipients each
 * leave 103 replies pending apiece, so the first two make a run and the third another, which
 * goes only once the first run is answered; an unfit address after them ends the call as
 * sl_smtp_send would, before a byte of it, the runs before it settled. */
static void test_chunked_run_limits(void **state)
{
    enum { R = 100 };
    static char addr[R][32], answers[2][2 * R * 8 + 128];
    static const char *rcpt[R];
    static const char *const unfit[] = {"e@y.test>\r\nRCPT TO:<evil@y.test"};
    static struct sl_reply rr[4][R];
    static struct step script[] = {GREET,
                                   EHLO_CHUNK,
                                   EXPECT("<u099@y.test>\r\nBDAT"),
                                   EXPECT("<u099@y.test>\r\nBDAT"),
                                   EXPECT("last line\r\n"),
                                   SEND(NULL),
                                   EXPECT("<u099@y.test>\r\nBDAT"),
                                   EXPECT("last line\r\n"),
                                   SEND(NULL),
                                   STALL(3000),
                                   {0}};
    struct server sv;
    struct sl_smtp s;
    struct sl_smtp_txn t[4];
    struct overs o = {0};
    struct sl_smtp_timeouts to = quick();
    size_t n[2] = {0, 0};

    (void)state;
    for (int i = 0; i < R; i++) {
        snprintf(addr[i], sizeof addr[i], "u%03d@y.test", i);
        rcpt[i] = addr[i];
    }
    /* the first run: two transactions (the second after RSET); the second run: one, RSET first */
    for (int k = 0; k < 3; k++) {
        char *a = answers[k < 2 ? 0 : 1];
        size_t *len = &n[k < 2 ? 0 : 1];
        *len += (size_t)snprintf(a + *len, sizeof answers[0] - *len, "%s250 ok\r\n",
                                 k > 0 ? "250 reset\r\n" : "");
        for (int i = 0; i < R; i++)
            *len += (size_t)snprintf(a + *len, sizeof answers[0] - *len, "250 ok\r\n");
        *len += (size_t)snprintf(a + *len, sizeof answers[0] - *len, "250 queued %d\r\n", k + 1);
    }
    script[6].arg = answers[0]; /* EHLO_CHUNK is two steps */
    script[9].arg = answers[1];
    server_start(&sv, script, 0);
    open_chunked(&s, &sv, &to);
    for (int k = 0; k < 4; k++) {
        t[k] = txn("a@x.test", rcpt, R, rr[k]);
        t[k].rset = k > 0;
    }
    t[3].rcpt = unfit;
    t[3].nrcpt = 1;
    assert_int_equal(sl_smtp_send_many(&s, t, 4, note_over, &o), -1);
    assert_overs(&o, 3);
    for (int k = 0; k < 3; k++) {
        char want[32];
        snprintf(want, sizeof want, "250 queued %d", k + 1);
        assert_string_equal(t[k].data.text, want);
        assert_int_equal(rr[k][R - 1].code, 250);
    }
    assert_int_equal(s.fail, SL_SMTP_FAIL_PROTO);
    assert_int_equal(t[3].mail.code, 0);
    server_wait(&sv);
    assert_int_equal(rec->expects_missed, 0);
    /* the third transaction went only after the first run's replies */
    const char *got = received();
    const char *third = strstr(strstr(strstr(got, "BDAT") + 1, "BDAT") + 1, "RSET");
    assert_non_null(third);
    assert_true(rec->at_send[2] <= (size_t)(third - got));
    assert_null(strstr(got, "evil"));
}

/* DATA, not BDAT: when the caller does not ask for it although CHUNKING is offered, and when
 * it asks but the peer does not offer CHUNKING. */
static void test_chunked_not_used(void **state)
{
    static const struct step offered[] = {GREET, EHLO_CHUNK, ONE_DATA, QUIT_OK, {0}};
    static const struct step not_offered[] = {GREET, EHLO_PIPE, ONE_DATA, QUIT_OK, {0}};
    const struct step *scripts[] = {offered, not_offered};
    static const char *const rcpt[] = {"b@y.test"};

    (void)state;
    for (int k = 0; k < 2; k++) {
        struct server sv;
        struct sl_smtp s;
        struct sl_reply r, rr[1];
        struct sl_smtp_timeouts to = quick();
        server_start(&sv, scripts[k], 0);
        assert_int_equal(open_to(&s, &sv, &to, &r), 0);
        assert_true(s.chunking == (k == 0));
        s.bdat = k == 1;
        struct sl_smtp_txn t = txn("a@x.test", rcpt, 1, rr);
        assert_int_equal(sl_smtp_send(&s, &t), 0);
        assert_string_equal(t.data.text, "250 queued");
        sl_smtp_quit(&s);
        server_wait(&sv);
        assert_int_equal(rec->expects_missed, 0);
        assert_null(strstr(received(), "BDAT"));
    }
}

/* A transaction with more recipients than a run may leave replies pending goes with DATA,
 * written in chunks between reads; the small one after it is a BDAT run again. */
static void test_chunked_many_recipients(void **state)
{
    static const struct step script[] = {GREET,
                                         EHLO_CHUNK,
                                         ANSWER,
                                         EXPECT("\r\n.\r\n"),
                                         SEND("250 queued\r\n"),
                                         EXPECT("BDAT"),
                                         EXPECT("last line\r\n"),
                                         SEND("250 reset\r\n250 ok\r\n250 ok\r\n250 queued 2\r\n"),
                                         QUIT_OK,
                                         {0}};
    enum { N = 400 };
    static char addr[N][64];
    static const char *rcpt[N];
    static struct sl_reply rr[N], rr2[1];
    static const char *const one[] = {"b@y.test"};
    struct server sv;
    struct sl_smtp s;
    struct sl_smtp_timeouts to = quick();

    (void)state;
    for (int i = 0; i < N; i++) {
        snprintf(addr[i], sizeof addr[i], "u%04d@y.test", i);
        rcpt[i] = addr[i];
    }
    server_start(&sv, script, 0);
    open_chunked(&s, &sv, &to);
    struct sl_smtp_txn t[2] = {txn("a@x.test", rcpt, N, rr), txn("a@x.test", one, 1, rr2)};
    t[1].rset = true;
    assert_int_equal(sl_smtp_send_many(&s, t, 2, NULL, NULL), 0);
    assert_int_equal(rr[N - 1].code, 250);
    assert_string_equal(t[0].data.text, "250 queued");
    assert_string_equal(t[1].data.text, "250 queued 2");
    sl_smtp_quit(&s);
    server_wait(&sv);
    assert_int_equal(rec->expects_missed, 0);
    const char *p = strstr(received(), "DATA\r\n");
    assert_non_null(p);
    assert_null(strstr(received(), "BDAT 0"));
    assert_non_null(strstr(p, ".\r\nRSET\r\n" MAIL_LINE "RCPT TO:<b@y.test>\r\nBDAT"));
}

/* Without PIPELINING the transactions go one command at a time, RSET between them. */
static void test_many_stepwise(void **state)
{
    static const struct step script[] = {GREET,
                                         EHLO_PLAIN,
                                         EXPECT("MAIL FROM:<a@x.test>\r\n"),
                                         SEND("250 ok\r\n"),
                                         EXPECT("RCPT TO:<b@y.test>\r\n"),
                                         SEND("250 ok\r\n"),
                                         EXPECT("DATA\r\n"),
                                         SEND("354 go\r\n"),
                                         EXPECT("\r\n.\r\n"),
                                         SEND("250 queued 1\r\n"),
                                         EXPECT("RSET\r\n"),
                                         SEND("250 reset\r\n"),
                                         EXPECT("MAIL FROM:<a@x.test>\r\n"),
                                         SEND("250 ok\r\n"),
                                         EXPECT("RCPT TO:<c@y.test>\r\n"),
                                         SEND("250 ok\r\n"),
                                         EXPECT("DATA\r\n"),
                                         SEND("354 go\r\n"),
                                         EXPECT("\r\n.\r\n"),
                                         SEND("250 queued 2\r\n"),
                                         QUIT_OK,
                                         {0}};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[3][2];
    struct sl_smtp_txn t[3];
    struct overs o = {0};
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    assert_false(s.pipelining);
    three_txns(t, rr);
    assert_int_equal(sl_smtp_send_many(&s, t, 2, note_over, &o), 0);
    assert_overs(&o, 2);
    assert_string_equal(t[0].data.text, "250 queued 1");
    assert_int_equal(t[1].rset_reply.code, 250);
    assert_string_equal(t[1].data.text, "250 queued 2");
    assert_timer_clean();
    sl_smtp_quit(&s);
    server_wait(&sv);

    assert_int_equal(rec->expects_missed, 0);
    char want[1024];
    snprintf(want, sizeof want,
             EHLO_LINE "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n%s.\r\n"
                       "RSET\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n%s.\r\n"
                       "QUIT\r\n",
             body, body);
    assert_string_equal(received(), want);
}

/* A SIGTERM while the session waits does not end it; a SIGALRM that nobody armed for us
 * would, which the clean timer checks rule out. */
static void test_sigterm_does_not_end_a_phase(void **state)
{
    static const struct step script[] = {SIGTERM_CLIENT, STALL(200), GREET,
                                         EHLO_PLAIN,     QUIT_OK,    {0}};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r;
    struct sl_smtp_timeouts to = quick();

    (void)state;
    termed = 0;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    assert_true(termed);
    assert_false(s.pipelining);
    sl_smtp_quit(&s);
    server_wait(&sv);
    termed = 0;
}

/* An idle session is alive until the peer closes it or says 421. */
static void test_alive(void **state)
{
    static const struct step closes[] = {GREET, EHLO_PLAIN, CLOSE, {0}};
    static const struct step says_421[] = {
        GREET, EHLO_PLAIN, SEND("421 4.3.2 shutting down\r\n"), STALL(3000), {0}};
    const struct step *scripts[] = {closes, says_421};

    (void)state;
    for (int i = 0; i < 2; i++) {
        struct server sv;
        struct sl_smtp s;
        struct sl_reply r;
        struct sl_smtp_timeouts to = quick();

        server_start(&sv, scripts[i], 0);
        assert_int_equal(open_to(&s, &sv, &to, &r), 0);
        for (int k = 0; k < 100 && sl_smtp_alive(&s); k++)
            usleep(20000);
        assert_false(sl_smtp_alive(&s));
        sl_smtp_close(&s);
        sl_smtp_close(&s); /* idempotent */
        server_wait(&sv);
    }
}

/* ---- failures: each names its phase ---- */

/* What one scripted session did: the first call that failed, and how. */
struct outcome {
    const char *call; /* "open", "send", "rset", "none" */
    enum sl_smtp_fail fail;
    enum sl_phase phase;
    char err[256];
    long ms; /* time spent in the failing call */
    struct sl_reply r, mail, rr[3], data;
};

/* drive - open, one pipelined-or-not transaction to three recipients, RSET; stop at the first
 * failure */
static void drive(const struct step *script, const struct sl_smtp_timeouts *to, int rcvbuf,
                  const char *body_override, size_t body_len, struct outcome *o)
{
    static const char *const rcpt[] = {"b@y.test", "c@y.test", "d@y.test"};
    struct server sv;
    struct sl_smtp s;
    struct sl_smtp_txn t = txn("a@x.test", rcpt, 3, o->rr);
    long t0;

    memset(o, 0, sizeof *o);
    if (body_override != NULL) {
        t.body = body_override;
        t.len = body_len;
    }
    server_start(&sv, script, rcvbuf);
    o->call = "open";
    t0 = now_ms();
    if (open_to(&s, &sv, to, &o->r) == 0) {
        o->call = "send";
        t0 = now_ms();
        int rc = sl_smtp_send(&s, &t);
        o->mail = t.mail;
        o->data = t.data;
        if (rc == 0) {
            o->call = "rset";
            t0 = now_ms();
            if (sl_smtp_rset(&s) == 0)
                o->call = "none";
        }
    }
    o->ms = now_ms() - t0;
    o->fail = s.fail;
    o->phase = s.phase;
    memcpy(o->err, s.err, sizeof o->err);
    if (strcmp(o->call, "none") != 0)
        assert_int_equal(s.fd, -1); /* a failed call closed the session */
    sl_smtp_close(&s);
    assert_timer_clean();
    server_wait(&sv);
}

struct timeout_case {
    const char *name;
    struct step script[12];
    enum sl_phase phase; /* the phase that stalls: its timeout is short */
    const char *call;
    const char *err;
};

static const struct timeout_case timeout_cases[] = {
    {"greeting never comes",
     {STALL(10000)},
     SL_PH_GREETING,
     "open",
     "timeout waiting for the greeting reply after 400ms"},
    {"greeting trickled a byte every 150 ms",
     {TRICKLE("220 mx.test a slow but steady greeting\r\n", 150)},
     SL_PH_GREETING,
     "open",
     "timeout waiting for the greeting reply after 400ms"},
    {"EHLO unanswered",
     {GREET, STALL(10000)},
     SL_PH_EHLO,
     "open",
     "timeout waiting for the ehlo reply after 400ms"},
    {"HELO fallback unanswered",
     {GREET, EHLO_EXPECT, SEND("500 what\r\n"), STALL(10000)},
     SL_PH_EHLO,
     "open",
     "timeout waiting for the ehlo reply after 400ms"},
    {"MAIL unanswered",
     {GREET, EHLO_PIPE, STALL(10000)},
     SL_PH_MAIL_FROM,
     "send",
     "timeout waiting for the mail_from reply after 400ms"},
    {"second RCPT unanswered",
     {GREET, EHLO_PIPE, EXPECT("DATA\r\n"), SEND("250 ok\r\n250 ok\r\n"), STALL(10000)},
     SL_PH_RCPT_TO,
     "send",
     "timeout waiting for the rcpt_to reply after 400ms"},
    {"RCPT reply trickled",
     {GREET, EHLO_PIPE, EXPECT("DATA\r\n"), SEND("250 ok\r\n"),
      TRICKLE("250 2.1.5 recipient ok, slowly\r\n", 100)},
     SL_PH_RCPT_TO,
     "send",
     "timeout waiting for the rcpt_to reply after 400ms"},
    {"354 never comes",
     {GREET, EHLO_PIPE, EXPECT("DATA\r\n"), SEND("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n"),
      STALL(10000)},
     SL_PH_DATA,
     "send",
     "timeout waiting for the data reply after 400ms"},
    {"final reply never comes",
     {GREET, EHLO_PIPE, EXPECT("DATA\r\n"),
      SEND("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), EXPECT("\r\n.\r\n"),
      STALL(10000)},
     SL_PH_DATA,
     "send",
     "timeout waiting for the data reply after 400ms"},
    {"RSET unanswered",
     {GREET, EHLO_PIPE, EXPECT("DATA\r\n"),
      SEND("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n503 no\r\n"), EXPECT("RSET\r\n"), STALL(10000)},
     SL_PH_RSET,
     "rset",
     "timeout waiting for the rset reply after 400ms"},
};

/* Each stalled phase ends after its own setting (not before, not much later), named. */
static void test_timeouts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof timeout_cases / sizeof timeout_cases[0]; i++) {
        const struct timeout_case *c = &timeout_cases[i];
        struct sl_smtp_timeouts to = quick();
        struct outcome o;

        to.ms[c->phase] = 400;
        drive(c->script, &to, 0, NULL, 0, &o);
        print_message("%s: %s after %ld ms: %s\n", c->name, o.call, o.ms, o.err);
        assert_string_equal(o.call, c->call);
        assert_int_equal(o.fail, SL_SMTP_FAIL_TIMEOUT);
        assert_int_equal(o.phase, c->phase);
        assert_string_equal(o.err, c->err);
        assert_true(o.ms >= 400);
        assert_true(o.ms < 400 + SLACK_MS);
    }
}

/* The body transfer itself runs under data_timeout: a peer that stops reading after 354. */
static void test_body_transfer_timeout(void **state)
{
    static const struct step script[] = {GREET,
                                         EHLO_PIPE,
                                         EXPECT("DATA\r\n"),
                                         SEND("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
                                         SLEEP(2000),
                                         {0}};
    size_t len = 32u << 20;
    char *big = malloc(len);
    struct sl_smtp_timeouts to = quick();
    struct outcome o;

    (void)state;
    assert_non_null(big);
    memset(big, 'x', len);
    memcpy(big + len - 2, "\r\n", 2);
    to.ms[SL_PH_DATA] = 500;
    drive(script, &to, 4096, big, len, &o);
    free(big);
    print_message("%s after %ld ms; peer got %zu bytes\n", o.err, o.ms, rec->len);
    assert_string_equal(o.call, "send");
    assert_int_equal(o.fail, SL_SMTP_FAIL_TIMEOUT);
    assert_int_equal(o.phase, SL_PH_DATA);
    assert_string_equal(o.err, "timeout sending the message body during data after 500ms");
    assert_true(o.ms >= 500 && o.ms < 500 + SLACK_MS);
}

/* QUIT is not waited for beyond its short cap (2 s when unset). */
static void test_quit_cap(void **state)
{
    static const struct step script[] = {GREET, EHLO_PLAIN, EXPECT("QUIT\r\n"), STALL(10000), {0}};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r;
    struct sl_smtp_timeouts to = quick();

    (void)state;
    to.ms[SL_PH_QUIT] = 0;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    long t0 = now_ms();
    sl_smtp_quit(&s);
    long ms = now_ms() - t0;
    assert_true(ms >= 2000 && ms < 2000 + SLACK_MS);
    assert_int_equal(s.fd, -1);
    assert_int_equal(s.fail, SL_SMTP_FAIL_NONE); /* the session's outcome is kept */
    assert_timer_clean();
    server_wait(&sv);
    assert_int_equal(rec->expects_met, 2);
}

struct hostile_case {
    const char *name;
    struct step script[10];
    const char *call;
    enum sl_smtp_fail fail;
    enum sl_phase phase;
    const char *err; /* a prefix of s->err */
    int code;        /* the reply the caller sees (greeting/EHLO), 0: none */
};

/* clang-format off */
#define BAD_GREETING(line) {"greeting " #line, {SEND(line), STALL(3000)}, "open", \
                            SL_SMTP_FAIL_PROTO, SL_PH_GREETING, "malformed greeting reply line", 0}
/* clang-format on */

static const struct hostile_case hostile_cases[] = {
    {"endless multi-line greeting",
     {FLOOD("220-more and more\r\n", 1000000)},
     "open",
     SL_SMTP_FAIL_PROTO,
     SL_PH_GREETING,
     "greeting reply longer than 128 lines",
     0},
    {"1 MB greeting line",
     {BIGLINE("220 ", 1 << 20)},
     "open",
     SL_SMTP_FAIL_PROTO,
     SL_PH_GREETING,
     "reply line longer than 2048 bytes during greeting",
     0},
    {"1 MB EHLO continuation line",
     {GREET, EHLO_EXPECT, BIGLINE("250-", 1 << 20)},
     "open",
     SL_SMTP_FAIL_PROTO,
     SL_PH_EHLO,
     "reply line longer than 2048 bytes during ehlo",
     0},
    BAD_GREETING("999 nine\r\n"),
    BAD_GREETING("199 too low\r\n"),
    BAD_GREETING("600 too high\r\n"),
    BAD_GREETING("220x glued\r\n"),
    BAD_GREETING("2200 four digits\r\n"),
    BAD_GREETING("22\r\n"),
    BAD_GREETING("\r\n"),
    BAD_GREETING("hello\r\n"),
    BAD_GREETING("\x01\x02\x03\r\n"),
    BAD_GREETING("-220 dash first\r\n"),
    {"code changes within a reply",
     {GREET, EHLO_EXPECT, SEND("250-mx.test\r\n251 PIPELINING\r\n"), STALL(3000)},
     "open",
     SL_SMTP_FAIL_PROTO,
     SL_PH_EHLO,
     "reply code changed from 250 to 251 within a multi-line ehlo reply",
     0},
    {"garbage after MAIL",
     {GREET, EHLO_PIPE, EXPECT("DATA\r\n"), SEND("250 ok\r\nxyz\r\n")},
     "send",
     SL_SMTP_FAIL_PROTO,
     SL_PH_RCPT_TO,
     "malformed rcpt_to reply line \"xyz\"",
     0},
    {"greeting refused",
     {SEND("554 5.7.1 go away\r\n"), STALL(3000)},
     "open",
     SL_SMTP_FAIL_REPLY,
     SL_PH_GREETING,
     "greeting refused: 554 5.7.1 go away",
     554},
    {"EHLO and HELO refused",
     {GREET, EHLO_EXPECT, SEND("554 no\r\n"), EXPECT("HELO"), SEND("554 still no\r\n"),
      STALL(3000)},
     "open",
     SL_SMTP_FAIL_REPLY,
     SL_PH_EHLO,
     "HELO refused: 554 still no",
     554},
    {"EHLO answered 421",
     {GREET, EHLO_EXPECT, SEND("421 4.3.2 bye\r\n"), STALL(3000)},
     "open",
     SL_SMTP_FAIL_REPLY,
     SL_PH_EHLO,
     "EHLO refused: 421 4.3.2 bye",
     421},
    {"reset at the greeting",
     /* after a pause: a reset that lands before the client has seen its connect complete
      * is a connect failure (it was, once, on a loaded CI run) */
     {SLEEP(300), RESET},
     "open",
     SL_SMTP_FAIL_IO,
     SL_PH_GREETING,
     "connection reset by the peer during greeting",
     0},
    {"closed after EHLO",
     {GREET, EHLO_EXPECT, CLOSE},
     "open",
     SL_SMTP_FAIL_IO,
     SL_PH_EHLO,
     "connection closed by the peer during ehlo",
     0},
    {"closed mid-reply",
     {SEND("220-first line\r\n220-sec"), CLOSE},
     "open",
     SL_SMTP_FAIL_IO,
     SL_PH_GREETING,
     "connection closed by the peer during greeting",
     0},
    {"closed mid-DATA",
     {GREET, EHLO_PIPE, EXPECT("DATA\r\n"),
      SEND("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), EXPECT("Subject"), CLOSE},
     "send",
     SL_SMTP_FAIL_IO,
     SL_PH_DATA,
     "connection ",
     0},
    {"421 to a RCPT",
     {GREET, EHLO_PIPE, EXPECT("DATA\r\n"), SEND("250 ok\r\n250 ok\r\n421 4.4.2 closing\r\n"),
      CLOSE},
     "send",
     SL_SMTP_FAIL_REPLY,
     SL_PH_RCPT_TO,
     "the peer closes the session during rcpt_to: 421 4.4.2 closing",
     0},
};

/* Hostile or broken peers: bounded, named failures, never a crash or a hang. */
static void test_hostile_peers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hostile_cases / sizeof hostile_cases[0]; i++) {
        const struct hostile_case *c = &hostile_cases[i];
        struct sl_smtp_timeouts to = quick();
        struct outcome o;

        drive(c->script, &to, 0, NULL, 0, &o);
        print_message("%s: %s after %ld ms: %s\n", c->name, o.call, o.ms, o.err);
        assert_string_equal(o.call, c->call);
        assert_int_equal(o.fail, c->fail);
        assert_int_equal(o.phase, c->phase);
        assert_true(strncmp(o.err, c->err, strlen(c->err)) == 0);
        if (strcmp(c->call, "open") == 0)
            assert_int_equal(o.r.code, c->code);
        assert_true(o.ms < 1900); /* decided on the spot, not by a timer */
    }
}

/* After a 421 to the second recipient, it and the third carry the 421; the first keeps its
 * own reply. */
static void test_421_fills_the_rest(void **state)
{
    static const struct step script[] = {GREET,
                                         EHLO_PIPE,
                                         EXPECT("DATA\r\n"),
                                         SEND("250 ok\r\n250 2.1.5 ok\r\n421 4.4.2 closing\r\n"),
                                         CLOSE,
                                         {0}};
    struct sl_smtp_timeouts to = quick();
    struct outcome o;

    (void)state;
    drive(script, &to, 0, NULL, 0, &o);
    assert_int_equal(o.mail.code, 250);
    assert_int_equal(o.rr[0].code, 250);
    assert_int_equal(o.rr[1].code, 421);
    assert_int_equal(o.rr[2].code, 421);
    assert_string_equal(o.rr[2].enhanced, "4.4.2");
    assert_int_equal(o.data.code, 0);
}

/* Connecting: refused at once; a peer whose accept queue is full times out in "connect". */
static void test_connect(void **state)
{
    struct sockaddr_in dst = {.sin_family = AF_INET};
    socklen_t alen = sizeof dst;
    struct sl_smtp s;
    struct sl_reply r;
    struct sl_smtp_timeouts to = quick();
    struct sockaddr_in src = source();
    int fill[8], nfill = 0;

    (void)state;
    /* A port nobody listens on: bind one, note it, close it. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    inet_pton(AF_INET, PEER_IP, &dst.sin_addr);
    assert_int_equal(bind(lfd, (struct sockaddr *)&dst, sizeof dst), 0);
    getsockname(lfd, (struct sockaddr *)&dst, &alen);
    close(lfd);
    assert_int_equal(sl_smtp_open(&s, &env, &to, (struct sockaddr *)&src, sizeof src,
                                  (struct sockaddr *)&dst, sizeof dst, HELO_NAME, NULL, &r),
                     -1);
    assert_int_equal(s.fail, SL_SMTP_FAIL_IO);
    assert_int_equal(s.phase, SL_PH_CONNECT);
    assert_non_null(strstr(s.err, "Connection refused"));
    assert_int_equal(r.code, 0);

    /* A listener that never accepts, its queue filled: further SYNs are dropped. */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    dst.sin_port = 0;
    assert_int_equal(bind(lfd, (struct sockaddr *)&dst, sizeof dst), 0);
    getsockname(lfd, (struct sockaddr *)&dst, &alen);
    assert_int_equal(listen(lfd, 0), 0);
    for (; nfill < 8; nfill++) {
        fill[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct pollfd p = {.fd = fill[nfill], .events = POLLOUT};
        connect(fill[nfill], (struct sockaddr *)&dst, sizeof dst);
        if (poll(&p, 1, 200) == 0) {
            nfill++;
            break; /* this one hangs: the queue is full */
        }
    }
    to.ms[SL_PH_CONNECT] = 300;
    long t0 = now_ms();
    assert_int_equal(sl_smtp_open(&s, &env, &to, (struct sockaddr *)&src, sizeof src,
                                  (struct sockaddr *)&dst, sizeof dst, HELO_NAME, NULL, &r),
                     -1);
    long ms = now_ms() - t0;
    assert_int_equal(s.fail, SL_SMTP_FAIL_TIMEOUT);
    assert_int_equal(s.phase, SL_PH_CONNECT);
    assert_string_equal(s.err, "timeout connecting after 300ms");
    assert_true(ms >= 300 && ms < 300 + SLACK_MS);
    assert_timer_clean();
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(lfd);
}

/* An address that could smuggle a second command is refused before anything is sent. */
static void test_address_injection_refused(void **state)
{
    static const struct step script[] = {GREET, EHLO_PIPE, STALL(3000), {0}};
    static const char *const rcpt[] = {"b@y.test>\r\nRCPT TO:<evil@z.test"};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[1];
    struct sl_smtp_timeouts to = quick();

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_to(&s, &sv, &to, &r), 0);
    struct sl_smtp_txn t = txn("a@x.test", rcpt, 1, rr);
    assert_int_equal(sl_smtp_send(&s, &t), -1);
    assert_int_equal(s.phase, SL_PH_RCPT_TO);
    assert_int_equal(s.fd, -1);
    server_wait(&sv);
    assert_string_equal(received(), "EHLO " HELO_NAME "\r\n");
}

/* ---- STARTTLS ---- */

/* open_tls - sl_smtp_open with a TLS need against host */
static int open_tls(struct sl_smtp *s, const struct server *sv, const struct sl_smtp_timeouts *to,
                    const struct sl_tls_params *tls, struct sl_reply *r)
{
    struct sockaddr_in src = source();
    return sl_smtp_open(s, &env, to, (const struct sockaddr *)&src, sizeof src,
                        (const struct sockaddr *)&sv->addr, sizeof sv->addr, HELO_NAME, tls, r);
}

/* params - the need against host, with the test CA's client */
static struct sl_tls_params params(enum sl_tls_need need, const char *host)
{
    struct sl_tls_params p = {.need = need, .client = tls_client, .host = host};
    return p;
}

/* STARTTLS when offered: TLS 1.2 or later, the certificate verified against the CA and
 * mx.test, EHLO again inside (its extensions replace the clear ones), then three pipelined
 * messages over TLS; a session ticket sent while idle does not make the session look dead;
 * QUIT.  The peer saw every command in order, inside TLS after STARTTLS. */
static void test_tls_try_encrypts(void **state)
{
    static const struct step script[] = {
        GREET,
        EHLO_PIPE,
        STARTTLS_OK,
        EHLO_TLS,
        EXPECT("<b@y.test>\r\nDATA\r\n"),
        SEND("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"),
        EXPECT("<c@y.test>\r\nDATA\r\n"),
        SEND("250 2.0.0 queued 1\r\n250 2.0.0 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        EXPECT("<d@y.test>\r\nDATA\r\n"),
        SEND("250 2.0.0 queued 2\r\n250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        EXPECT("\r\n.\r\n"),
        SEND("250 2.0.0 queued 3\r\n"),
        TICKET,
        QUIT_OK,
        {0}};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[3][2];
    struct sl_smtp_txn t[3];
    struct overs o = {0};
    struct sl_smtp_timeouts to = quick();
    struct sl_tls_params tls = params(SL_TLS_NEED_TRY, "mx.test");

    (void)state;
    server_start(&sv, script, 0);
    assert_int_equal(open_tls(&s, &sv, &to, &tls, &r), 0);
    assert_timer_clean();
    assert_true(s.tls.on);
    assert_true(strcmp(s.tls.version, "TLSv1.2") == 0 || strcmp(s.tls.version, "TLSv1.3") == 0);
    assert_true(s.tls.cipher[0] != '\0');
    assert_true(s.tls.verified);
    assert_string_equal(s.tls.auth, "pkix");
    assert_string_equal(s.tls.peer, "mx.test");
    assert_string_equal(s.tls.check, "");
    assert_int_equal(strncmp(r.text, "250 mx.test hello again ", 24), 0);
    assert_false(s.starttls); /* the extensions are those offered inside TLS */
    assert_false(s.eightbit);
    assert_true(s.pipelining);

    three_txns(t, rr);
    assert_int_equal(sl_smtp_send_many(&s, t, 3, note_over, &o), 0);
    assert_overs(&o, 3);
    for (int i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "250 2.0.0 queued %d", i + 1);
        assert_string_equal(t[i].data.text, want);
    }
    usleep(300000); /* the ticket arrives while the session idles */
    assert_true(sl_smtp_alive(&s));
    sl_smtp_quit(&s);
    assert_int_equal(s.fd, -1);
    assert_null(s.ssl);
    server_wait(&sv);

    assert_true(rec->tls_on);
    assert_int_equal(rec->tickets, 1);
    assert_int_equal(rec->expects_missed, 0);
    const char *g1 = MAIL_LINE "RCPT TO:<b@y.test>\r\nDATA\r\n";
    const char *g2 = "RSET\r\n" MAIL_LINE "RCPT TO:<c@y.test>\r\nDATA\r\n";
    const char *g3 = "RSET\r\n" MAIL_LINE "RCPT TO:<d@y.test>\r\nDATA\r\n";
    char want[2048];
    snprintf(want, sizeof want,
             EHLO_LINE "STARTTLS\r\n" EHLO_LINE "%s%s.\r\n%s%s.\r\n%s%s.\r\nQUIT\r\n", g1, body, g2,
             body, g3, body);
    assert_string_equal(received(), want);
}

/* Not offered, or refused with 454: TRY goes on in clear on the same session; ENCRYPT and
 * VERIFY end it in phase tls with the reason, after a polite QUIT, and no MAIL is possible. */
static void test_tls_not_offered_or_refused(void **state)
{
    static const struct step plain[] = {GREET, EHLO_PLAIN, QUIT_OK, {0}};
    static const struct step refused[] = {
        GREET,   EHLO_PIPE, EXPECT("STARTTLS\r\n"), SEND("454 4.7.0 TLS not available\r\n"),
        QUIT_OK, {0}};
    static const struct {
        const struct step *script;
        enum sl_tls_need need;
        const char *err; /* NULL: goes on in clear */
        const char *sent;
    } cases[] = {
        {plain, SL_TLS_NEED_TRY, NULL, EHLO_LINE "QUIT\r\n"},
        {refused, SL_TLS_NEED_TRY, NULL, EHLO_LINE "STARTTLS\r\nQUIT\r\n"},
        {plain, SL_TLS_NEED_ENCRYPT, "STARTTLS not offered by the peer", EHLO_LINE "QUIT\r\n"},
        {plain, SL_TLS_NEED_VERIFY, "STARTTLS not offered by the peer", EHLO_LINE "QUIT\r\n"},
        {refused, SL_TLS_NEED_ENCRYPT, "STARTTLS refused: 454 4.7.0 TLS not available",
         EHLO_LINE "STARTTLS\r\nQUIT\r\n"},
        {refused, SL_TLS_NEED_VERIFY, "STARTTLS refused: 454 4.7.0 TLS not available",
         EHLO_LINE "STARTTLS\r\nQUIT\r\n"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct server sv;
        struct sl_smtp s;
        struct sl_reply r;
        struct sl_smtp_timeouts to = quick();
        struct sl_tls_params tls = params(cases[i].need, "mx.test");

        server_start(&sv, cases[i].script, 0);
        int rc = open_tls(&s, &sv, &to, &tls, &r);
        if (cases[i].err == NULL) {
            assert_int_equal(rc, 0);
            assert_false(s.tls.on);
            sl_smtp_quit(&s);
        } else {
            assert_int_equal(rc, -1);
            assert_int_equal(s.fail, SL_SMTP_FAIL_TLS);
            assert_int_equal(s.phase, SL_PH_TLS);
            assert_string_equal(s.err, cases[i].err);
            assert_int_equal(s.fd, -1);
            assert_int_equal(r.code, cases[i].script == refused ? 454 : 250);
        }
        assert_timer_clean();
        server_wait(&sv);
        assert_int_equal(rec->expects_missed, 0);
        assert_string_equal(received(), cases[i].sent);
    }
}

/* spki_sha256 - SHA-256 of a certificate file's public key (TLSA 3 1 1) or, whole, of the
 * certificate itself (TLSA 2 0 1) */
static void cert_digest(const char *name, bool key_only, struct sl_tlsa *t)
{
    char path[128];
    FILE *f = fopen(cert_path(path, sizeof path, name), "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    unsigned char *der = NULL;
    int n = key_only ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der) : i2d_X509(x, &der);
    unsigned int len = 0;
    assert_true(n > 0);
    assert_int_equal(EVP_Digest(der, (size_t)n, t->data, &len, EVP_sha256(), NULL), 1);
    t->len = len;
    OPENSSL_free(der);
    X509_free(x);
}

/* The certificate judged against the need: VERIFY fails on a name it does not carry (after
 * QUIT inside TLS, no MAIL), ENCRYPT goes on and reports why it would not verify; DANE
 * matches the key (DANE-EE) or the CA (DANE-TA), and fails on a digest that matches
 * nothing. */
static void test_tls_certificate_checks(void **state)
{
    static const struct step quit_inside[] = {GREET, EHLO_PIPE, STARTTLS_OK, QUIT_OK, {0}};
    static const struct step works[] = {GREET, EHLO_PIPE, STARTTLS_OK, EHLO_TLS, QUIT_OK, {0}};
    struct sl_tlsa ee = {.usage = 3, .selector = 1, .mtype = 1};
    struct sl_tlsa ta = {.usage = 2, .selector = 0, .mtype = 1};
    struct sl_tlsa wrong = {.usage = 3, .selector = 1, .mtype = 1, .len = 32};
    cert_digest("mx.crt", true, &ee);
    cert_digest("ca.crt", false, &ta);
    memset(wrong.data, 0xab, 32);
    struct {
        const struct step *script;
        enum sl_tls_need need;
        const char *host;
        const struct sl_tlsa *tlsa;
        const char *err; /* NULL: open succeeds */
        bool verified;
        const char *auth;
    } cases[] = {
        {quit_inside, SL_TLS_NEED_VERIFY, "other.test", NULL,
         "certificate not verified: hostname mismatch (host other.test)", false, "none"},
        {works, SL_TLS_NEED_ENCRYPT, "other.test", NULL, NULL, false, "none"},
        {works, SL_TLS_NEED_VERIFY, "mx.test", NULL, NULL, true, "pkix"},
        {works, SL_TLS_NEED_DANE, "mx.test", &ee, NULL, true, "dane-ee"},
        {works, SL_TLS_NEED_DANE, "other.test", &ee, NULL, true, "dane-ee"}, /* no name check */
        {works, SL_TLS_NEED_DANE, "mx.test", &ta, NULL, true, "dane-ta"},
        {quit_inside, SL_TLS_NEED_DANE, "mx.test", &wrong,
         "DANE: no matching DANE TLSA records (host mx.test)", false, "none"},
        /* DANE-TA still checks the name (RFC 7672 3.2.2): the log must say so */
        {quit_inside, SL_TLS_NEED_DANE, "other.test", &ta,
         "DANE: hostname mismatch (host other.test)", false, "none"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct server sv;
        struct sl_smtp s;
        struct sl_reply r;
        struct sl_smtp_timeouts to = quick();
        struct sl_tls_params tls = params(cases[i].need, cases[i].host);
        tls.tlsa = cases[i].tlsa;
        tls.ntlsa = cases[i].tlsa != NULL;

        server_start(&sv, cases[i].script, 0);
        int rc = open_tls(&s, &sv, &to, &tls, &r);
        assert_true(s.tls.on);
        assert_int_equal(s.tls.verified, cases[i].verified);
        assert_string_equal(s.tls.auth, cases[i].auth);
        if (cases[i].err != NULL) {
            assert_int_equal(rc, -1);
            assert_int_equal(s.fail, SL_SMTP_FAIL_TLS);
            assert_int_equal(s.phase, SL_PH_TLS);
            assert_string_equal(s.err, cases[i].err);
        } else {
            assert_int_equal(rc, 0);
            if (!cases[i].verified)
                assert_string_equal(s.tls.check, "hostname mismatch (host other.test)");
            sl_smtp_quit(&s);
        }
        assert_timer_clean();
        server_wait(&sv);
        assert_true(rec->tls_on);
        assert_int_equal(rec->expects_missed, 0);
        assert_null(strstr(received(), "MAIL"));
    }
}

/* The tls phase's own timer covers STARTTLS's reply and the handshake; a peer that breaks
 * the handshake, or slips a reply in after its 220 (command injection), fails it in phase
 * tls even under TRY (the caller then retries in clear). */
static void test_tls_failures(void **state)
{
    static const struct {
        const char *name;
        struct step script[8];
        enum sl_smtp_fail fail;
        const char *err; /* prefix */
        bool timed;
    } cases[] = {
        {"no reply to STARTTLS",
         {GREET, EHLO_PIPE, EXPECT("STARTTLS\r\n"), STALL(10000)},
         SL_SMTP_FAIL_TIMEOUT,
         "timeout waiting for the tls reply after 500ms",
         true},
        {"220, then silence in the handshake",
         {GREET, EHLO_PIPE, EXPECT("STARTTLS\r\n"), SEND("220 go\r\n"), STALL(10000)},
         SL_SMTP_FAIL_TIMEOUT,
         "timeout in the TLS handshake after 500ms",
         true},
        {"220, then garbage",
         {GREET, EHLO_PIPE, EXPECT("STARTTLS\r\n"), SEND("220 go\r\n"), SLEEP(200),
          SEND("this is not TLS at all\r\n"), STALL(3000)},
         SL_SMTP_FAIL_TLS,
         "TLS handshake failed: ",
         false},
        {"220, then a close",
         {GREET, EHLO_PIPE, EXPECT("STARTTLS\r\n"), SEND("220 go\r\n"), SLEEP(200), CLOSE},
         SL_SMTP_FAIL_TLS,
         "TLS handshake failed: ",
         false},
        {"a reply injected after 220",
         {GREET, EHLO_PIPE, EXPECT("STARTTLS\r\n"), SEND("220 go\r\n250 injected\r\n"),
          STALL(3000)},
         SL_SMTP_FAIL_TLS,
         "the peer sent data after its STARTTLS reply",
         false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct server sv;
        struct sl_smtp s;
        struct sl_reply r;
        struct sl_smtp_timeouts to = quick();
        struct sl_tls_params tls = params(SL_TLS_NEED_TRY, "mx.test");

        to.ms[SL_PH_TLS] = 500;
        server_start(&sv, cases[i].script, 0);
        long t0 = now_ms();
        assert_int_equal(open_tls(&s, &sv, &to, &tls, &r), -1);
        long ms = now_ms() - t0;
        print_message("%s: %s (%ld ms)\n", cases[i].name, s.err, ms);
        assert_int_equal(s.fail, cases[i].fail);
        assert_int_equal(s.phase, SL_PH_TLS);
        assert_int_equal(strncmp(s.err, cases[i].err, strlen(cases[i].err)), 0);
        assert_true(strlen(s.err) > strlen(cases[i].err) ||
                    cases[i].err[strlen(cases[i].err) - 1] != ' ');
        if (cases[i].timed)
            assert_true(ms >= 500 && ms < 500 + SLACK_MS);
        assert_int_equal(s.fd, -1);
        assert_null(s.ssl);
        assert_false(s.tls.on);
        assert_int_equal(r.code, 0); /* no reply of the peer's is the reason (not the 220) */
        assert_timer_clean();
        server_wait(&sv);
    }
}

/* The peer answers the first transaction and closes while the run's later (large) bodies are
 * still being written: the write fails, yet the replies that had arrived are read and the
 * first transaction is over (not sent again); the session ends with the write's failure.
 * So in clear, and over TLS (whose failed write leaves the records already received readable). */
static void chunked_write_fails(bool tls)
{
    static const struct step clear[] = {GREET,
                                        EHLO_CHUNK,
                                        EXPECT("first end\r\n"),
                                        SEND("250 ok\r\n250 ok\r\n250 queued 1\r\n"),
                                        SLEEP(200),
                                        CLOSE,
                                        {0}};
    static const struct step inside_tls[] = {
        GREET,
        EHLO_EXPECT,
        SEND("250-mx.test hello\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 STARTTLS\r\n"),
        STARTTLS_OK,
        EHLO_CHUNK,
        EXPECT("first end\r\n"),
        SEND("250 ok\r\n250 ok\r\n250 queued 1\r\n"),
        SLEEP(200),
        CLOSE,
        {0}};
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[3][2];
    struct sl_smtp_txn t[3];
    struct overs o = {0};
    struct sl_smtp_timeouts to = quick();
    struct sl_tls_params need = params(SL_TLS_NEED_ENCRYPT, "mx.test");
    char *big;

    server_start(&sv, tls ? inside_tls : clear, 4096);
    if (tls) {
        assert_int_equal(open_tls(&s, &sv, &to, &need, &r), 0);
        assert_true(s.tls.on && s.chunking && s.pipelining);
        s.bdat = true;
    } else {
        open_chunked(&s, &sv, &to);
    }
    first_then_big(t, rr, &big);
    assert_int_equal(sl_smtp_send_many(&s, t, 3, note_over, &o), -1);
    assert_overs(&o, 1);
    assert_string_equal(t[0].data.text, "250 queued 1");
    assert_int_equal(t[1].rset_reply.code, 0);
    assert_int_equal(t[1].mail.code, 0);
    assert_int_equal(s.fd, -1);
    assert_int_equal(s.fail, SL_SMTP_FAIL_IO);
    assert_int_equal(s.phase, SL_PH_DATA);
    assert_timer_clean();
    server_wait(&sv);
    free(big);
}

static void test_chunked_write_fails(void **state)
{
    (void)state;
    chunked_write_fails(false);
}

static void test_chunked_write_fails_tls(void **state)
{
    (void)state;
    chunked_write_fails(true);
}

/* A 3 MB body over TLS to a peer with a small receive buffer: written in full records,
 * waiting whenever OpenSSL asks, and arriving intact. */
static void test_tls_large_body(void **state)
{
    static const struct step script[] = {GREET,
                                         EHLO_PIPE,
                                         STARTTLS_OK,
                                         EHLO_TLS,
                                         EXPECT("DATA\r\n"),
                                         SEND("250 ok\r\n250 ok\r\n354 go\r\n"),
                                         EXPECT("\r\n.\r\n"),
                                         SEND("250 queued\r\n"),
                                         QUIT_OK,
                                         {0}};
    static const char *const rcpt[] = {"b@y.test"};
    size_t len = 3000000; /* whole 100-byte lines */
    char *big = malloc(len);
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r, rr[1];
    struct sl_smtp_timeouts to = quick();
    struct sl_tls_params tls = params(SL_TLS_NEED_ENCRYPT, "mx.test");

    (void)state;
    assert_non_null(big);
    for (size_t i = 0; i < len; i += 100) {
        memset(big + i, 'a' + (int)(i / 100 % 26), 98);
        memcpy(big + i + 98, "\r\n", 2);
    }
    server_start(&sv, script, 4096);
    assert_int_equal(open_tls(&s, &sv, &to, &tls, &r), 0);
    struct sl_smtp_txn t = {
        .sender = "a@x.test", .rcpt = rcpt, .nrcpt = 1, .body = big, .len = len, .rcpt_reply = rr};
    assert_int_equal(sl_smtp_send(&s, &t), 0);
    assert_int_equal(t.data.code, 250);
    sl_smtp_quit(&s);
    server_wait(&sv);

    const char *head =
        EHLO_LINE "STARTTLS\r\n" EHLO_LINE "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n";
    assert_int_equal(rec->len, strlen(head) + len + strlen(".\r\nQUIT\r\n"));
    assert_memory_equal(rec->got + strlen(head), big, len);
    free(big);
}

/* Under TLS an idle session with the peer's close or an unasked 421 is not usable. */
static void test_tls_alive(void **state)
{
    static const struct step closes[] = {GREET, EHLO_PIPE, STARTTLS_OK, EHLO_TLS, CLOSE, {0}};
    static const struct step says_421[] = {
        GREET,       EHLO_PIPE, STARTTLS_OK, EHLO_TLS, SEND("421 4.3.2 shutting down\r\n"),
        STALL(3000), {0}};
    const struct step *scripts[] = {closes, says_421};

    (void)state;
    for (int i = 0; i < 2; i++) {
        struct server sv;
        struct sl_smtp s;
        struct sl_reply r;
        struct sl_smtp_timeouts to = quick();
        struct sl_tls_params tls = params(SL_TLS_NEED_ENCRYPT, "mx.test");

        server_start(&sv, scripts[i], 0);
        assert_int_equal(open_tls(&s, &sv, &to, &tls, &r), 0);
        assert_true(s.tls.on);
        for (int k = 0; k < 100 && sl_smtp_alive(&s); k++)
            usleep(20000);
        assert_false(sl_smtp_alive(&s));
        sl_smtp_close(&s);
        sl_smtp_close(&s);
        server_wait(&sv);
    }
}

/* The context is made at the first STARTTLS: a CA file that does not exist fails that
 * session (naming the file) before any handshake, not the client; NONE never says STARTTLS. */
static void test_tls_client_and_none(void **state)
{
    static const struct step script[] = {GREET, EHLO_PIPE, QUIT_OK, {0}};
    static const struct step offered[] = {
        GREET, EHLO_PIPE, EXPECT("STARTTLS\r\n"), SEND("220 2.0.0 ready to start TLS\r\n"), {0}};
    char err[256] = "";
    struct server sv;
    struct sl_smtp s;
    struct sl_reply r;
    struct sl_smtp_timeouts to = quick();
    struct sl_tls_params tls = params(SL_TLS_NEED_NONE, "mx.test");
    struct sl_tls_params bad = params(SL_TLS_NEED_ENCRYPT, "mx.test");

    (void)state;
    bad.client = sl_tls_client_new("/nonexistent/ca.pem", err, sizeof err);
    assert_non_null(bad.client);
    server_start(&sv, offered, 0);
    assert_int_equal(open_tls(&s, &sv, &to, &bad, &r), -1);
    assert_int_equal(s.fail, SL_SMTP_FAIL_TLS);
    assert_non_null(strstr(s.err, "/nonexistent/ca.pem"));
    server_wait(&sv);
    sl_tls_client_free(bad.client);
    assert_string_equal(sl_tls_need_name(SL_TLS_NEED_DANE), "dane");
    assert_string_equal(sl_tls_need_name(SL_TLS_NEED_TRY), "try");
    server_start(&sv, script, 0);
    assert_int_equal(open_tls(&s, &sv, &to, &tls, &r), 0);
    assert_false(s.tls.on);
    sl_smtp_quit(&s);
    server_wait(&sv);
    assert_string_equal(received(), EHLO_LINE "QUIT\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_transaction),
        cmocka_unit_test(test_ehlo_limits),
        cmocka_unit_test(test_stepwise_helo_fallback),
        cmocka_unit_test(test_pipelined_refusals),
        cmocka_unit_test(test_pipelined_rset),
        cmocka_unit_test(test_large_body),
        cmocka_unit_test(test_many_recipients),
        cmocka_unit_test(test_many_pipelined),
        cmocka_unit_test(test_many_refused_rcpt),
        cmocka_unit_test(test_many_data_refused),
        cmocka_unit_test(test_many_session_dies),
        cmocka_unit_test(test_many_unfit_address),
        cmocka_unit_test(test_many_stepwise),
        cmocka_unit_test(test_chunked_run),
        cmocka_unit_test(test_chunked_refusals),
        cmocka_unit_test(test_chunked_unstuffing),
        cmocka_unit_test(test_chunked_session_dies),
        cmocka_unit_test(test_chunked_write_fails),
        cmocka_unit_test(test_chunked_replies_between_pieces),
        cmocka_unit_test(test_chunked_write_fails_tls),
        cmocka_unit_test(test_chunked_many_dots),
        cmocka_unit_test(test_chunked_run_limits),
        cmocka_unit_test(test_chunked_not_used),
        cmocka_unit_test(test_chunked_many_recipients),
        cmocka_unit_test(test_sigterm_does_not_end_a_phase),
        cmocka_unit_test(test_alive),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_body_transfer_timeout),
        cmocka_unit_test(test_quit_cap),
        cmocka_unit_test(test_hostile_peers),
        cmocka_unit_test(test_421_fills_the_rest),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_address_injection_refused),
        cmocka_unit_test(test_tls_try_encrypts),
        cmocka_unit_test(test_tls_not_offered_or_refused),
        cmocka_unit_test(test_tls_certificate_checks),
        cmocka_unit_test(test_tls_failures),
        cmocka_unit_test(test_tls_large_body),
        cmocka_unit_test(test_tls_alive),
        cmocka_unit_test(test_tls_client_and_none),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
