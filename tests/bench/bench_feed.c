/*
 * bench_feed.c - the ceiling of the delivery benchmark: a plain SMTP client that feeds a sink
 * (smtp-sink) as fast as the sink and the loopback allow, over reused connections, with or
 * without PIPELINING, or with BDAT runs (CHUNKING).
 *
 *   bench_feed [-p | -b RUN] [-s SESSIONS] [-m MESSAGES] [-l BYTES] [-d DOMAINS] [-c PER]
 *              IP:PORT
 *
 * SESSIONS processes (default 8) each open one connection, say EHLO once and send their share
 * of MESSAGES (default 10000) messages of a BYTES-byte body (default 4096) to
 * <rcpt@bench.test>; with -d, message number I (from 0 over all sessions) goes to
 * <rcpt@dNNNN.bench.test>, NNNN being I modulo DOMAINS in four digits or more (the many-domain
 * benchmark fills a relay's queue with it).  Without -p every command waits for its reply
 * (connection reuse only); with -p the end of one message's DATA, the next MAIL, RCPT and DATA go
 * out in one write and their four replies are read together (RFC 2920), so a message costs one
 * round trip plus the body; with -b (the sink must offer CHUNKING) RUN messages go in one write,
 * each as RSET (but a session's first), MAIL, RCPT, "BDAT n LAST" and the message, and their
 * replies are read together: one round trip per RUN messages, as a BDAT client can.  With -c, a
 * connection carries at most PER messages, then QUIT and a new one (as a sender limited by
 * max_deliveries_per_connection must).  Prints
 * "messages SECONDS RATE" on stdout; exits 1 on any unexpected reply.
 *
 * Trust boundary: the peer is a local test sink; its replies are only checked for their code.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAIL "MAIL FROM:<bench@sender.test>\r\n"

struct feed_opts {
    bool pipelining;
    long bdat_run; /* 0: DATA */
    int sessions;
    long messages;
    long body_len;
    long domains;  /* 0: every message to rcpt@bench.test */
    long per_conn; /* messages one connection carries; 0: all of a session's */
    struct sockaddr_in peer;
};

/* The envelope commands of message number i: MAIL, RCPT, DATA (at most 128 bytes). */
static size_t envelope(const struct feed_opts *o, long i, char *buf, size_t size)
{
    int n = o->domains > 0
                ? snprintf(buf, size, MAIL "RCPT TO:<rcpt@d%04ld.bench.test>\r\nDATA\r\n",
                           i % o->domains)
                : snprintf(buf, size, MAIL "RCPT TO:<rcpt@bench.test>\r\nDATA\r\n");
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* A connection with a small read buffer for reply lines. */
struct conn {
    int fd;
    char buf[8192];
    size_t len;
};

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* The next complete reply (the last line of a multi-line one); its code, or -1. */
static int read_reply(struct conn *c)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        while (nl != NULL) {
            size_t line = (size_t)(nl - c->buf) + 1;
            bool last = line < 4 || c->buf[3] != '-';
            int code = atoi(c->buf);
            memmove(c->buf, nl + 1, c->len - line);
            c->len -= line;
            if (last)
                return code;
            nl = memchr(c->buf, '\n', c->len);
        }
        if (c->len == sizeof c->buf)
            return -1; /* a line longer than the buffer: not a sink we know */
        ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c->len += (size_t)r;
    }
}

/* Read n replies and check each code against want[i]. */
static bool expect(struct conn *c, const int *want, int n)
{
    for (int i = 0; i < n; i++) {
        int code = read_reply(c);
        if (code != want[i]) {
            fprintf(stderr, "bench_feed: reply %d, expected %d\n", code, want[i]);
            return false;
        }
    }
    return true;
}

/* A 4 KB-ish message: a few headers, then lines of 'x' up to body_len bytes, then ".". */
static char *make_message(long body_len, size_t *len)
{
    static const char head[] = "From: <bench@sender.test>\r\nTo: <rcpt@bench.test>\r\n"
                               "Subject: bench\r\n\r\n";
    size_t cap = sizeof head + (size_t)body_len + 80;
    char *m = malloc(cap);
    if (m == NULL)
        return NULL;
    size_t n = strlen(head);
    memcpy(m, head, n);
    for (long left = body_len; left > 0;) {
        long k = left > 78 ? 76 : (left > 2 ? left - 2 : 0);
        memset(m + n, 'x', (size_t)k);
        n += (size_t)k;
        memcpy(m + n, "\r\n", 2);
        n += 2;
        left -= k + 2;
    }
    memcpy(m + n, ".\r\n", 3);
    *len = n + 3;
    return m;
}

static bool open_session(struct conn *c, const struct sockaddr_in *peer)
{
    static const int greet[] = {220}, ehlo[] = {250};
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (const struct sockaddr *)peer, sizeof *peer) != 0) {
        perror("bench_feed: connect");
        return false;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static const char hello[] = "EHLO feed.test\r\n";
    return expect(c, greet, 1) && send_all(c->fd, hello, strlen(hello)) && expect(c, ehlo, 1);
}

/* One command at a time: four round trips and the body per message. */
static bool feed_lockstep(const struct feed_opts *o, struct conn *c, long first, long count,
                          const char *msg, size_t len)
{
    static const int ok[] = {250}, go[] = {354};
    char cmds[128];
    for (long i = first; i < first + count; i++) {
        size_t n = envelope(o, i, cmds, sizeof cmds);
        char *rcpt = strstr(cmds, "RCPT"), *data = strstr(cmds, "DATA");
        if (n == 0 || !send_all(c->fd, cmds, (size_t)(rcpt - cmds)) || !expect(c, ok, 1) ||
            !send_all(c->fd, rcpt, (size_t)(data - rcpt)) || !expect(c, ok, 1) ||
            !send_all(c->fd, data, strlen(data)) || !expect(c, go, 1) ||
            !send_all(c->fd, msg, len) || !expect(c, ok, 1))
            return false;
    }
    return true;
}

/* PIPELINING: the message's end and the next envelope share one write and one wait. */
static bool feed_pipelined(const struct feed_opts *o, struct conn *c, long first, long count,
                           const char *msg, size_t len)
{
    static const int head[] = {250, 250, 354}, next[] = {250, 250, 250, 354}, last[] = {250};
    char *joined = malloc(len + 128);
    if (joined == NULL)
        return false;
    memcpy(joined, msg, len);
    size_t cmds = envelope(o, first, joined + len, 128);
    bool ok = count == 0 || (cmds > 0 && send_all(c->fd, joined + len, cmds) && expect(c, head, 3));
    for (long i = first + 1; ok && i < first + count; i++) {
        cmds = envelope(o, i, joined + len, 128);
        ok = cmds > 0 && send_all(c->fd, joined, len + cmds) && expect(c, next, 4);
    }
    if (ok && count > 0)
        ok = send_all(c->fd, msg, len) && expect(c, last, 1);
    free(joined);
    return ok;
}

/* BDAT runs: run messages' RSET, MAIL, RCPT, BDAT and body in one write, then their replies. */
static bool feed_chunked(const struct feed_opts *o, struct conn *c, long first, long count,
                         const char *msg, size_t len)
{
    static const int ok[] = {250};
    size_t body = len - 3; /* no final dot with BDAT (the message has no stuffed line) */
    size_t per = body + 256;
    char *buf = malloc(per * (size_t)o->bdat_run);
    bool good = buf != NULL;

    for (long i = first; good && i < first + count;) {
        size_t n = 0;
        int replies = 0;
        for (long k = 0; k < o->bdat_run && i < first + count; k++, i++) {
            char env[128];
            size_t e = envelope(o, i, env, sizeof env) - 6; /* without its DATA */
            int h = snprintf(buf + n, 256, "%s%.*sBDAT %zu LAST\r\n", i > first ? "RSET\r\n" : "",
                             (int)e, env, body);
            n += (size_t)h;
            memcpy(buf + n, msg, body);
            n += body;
            replies += (i > first ? 1 : 0) + 3;
        }
        good = send_all(c->fd, buf, n);
        for (int r = 0; good && r < replies; r++)
            good = expect(c, ok, 1);
    }
    free(buf);
    return good;
}

/* One connection: messages first to first + count - 1, then QUIT. */
static bool run_connection(const struct feed_opts *o, long first, long count, const char *msg,
                           size_t len)
{
    struct conn c;
    if (!open_session(&c, &o->peer))
        return false;
    bool ok = o->bdat_run > 0 ? feed_chunked(o, &c, first, count, msg, len)
              : o->pipelining ? feed_pipelined(o, &c, first, count, msg, len)
                              : feed_lockstep(o, &c, first, count, msg, len);
    if (ok)
        ok = send_all(c.fd, "QUIT\r\n", 6);
    close(c.fd);
    return ok;
}

/* One session's share, messages first to first + count - 1, over connections of at most
 * per_conn messages; the child's exit status. */
static int run_session(const struct feed_opts *o, long first, long count)
{
    size_t len;
    char *msg = make_message(o->body_len, &len);
    bool ok = msg != NULL;

    do {
        long n = o->per_conn > 0 && o->per_conn < count ? o->per_conn : count;
        ok = ok && run_connection(o, first, n, msg, len);
        first += n;
        count -= n;
    } while (ok && count > 0);
    free(msg);
    return ok ? 0 : 1;
}

static bool parse_peer(const char *arg, struct sockaddr_in *peer)
{
    char ip[64];
    const char *colon = strrchr(arg, ':');
    if (colon == NULL || (size_t)(colon - arg) >= sizeof ip)
        return false;
    memcpy(ip, arg, (size_t)(colon - arg));
    ip[colon - arg] = '\0';
    memset(peer, 0, sizeof *peer);
    peer->sin_family = AF_INET;
    peer->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, ip, &peer->sin_addr) == 1 && peer->sin_port != 0;
}

static bool parse_args(int argc, char **argv, struct feed_opts *o)
{
    *o = (struct feed_opts){.sessions = 8, .messages = 10000, .body_len = 4096};
    int ch;
    while ((ch = getopt(argc, argv, "pb:s:m:l:d:c:")) != -1) {
        switch (ch) {
        case 'p':
            o->pipelining = true;
            break;
        case 'b':
            o->bdat_run = atol(optarg);
            break;
        case 's':
            o->sessions = atoi(optarg);
            break;
        case 'm':
            o->messages = atol(optarg);
            break;
        case 'l':
            o->body_len = atol(optarg);
            break;
        case 'd':
            o->domains = atol(optarg);
            break;
        case 'c':
            o->per_conn = atol(optarg);
            break;
        default:
            return false;
        }
    }
    return optind == argc - 1 && o->sessions > 0 && o->messages >= 0 && o->body_len >= 0 &&
           o->domains >= 0 && o->bdat_run >= 0 && o->per_conn >= 0 &&
           parse_peer(argv[optind], &o->peer);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Fork the sessions, each with its share, and wait for all; true when all succeeded. */
static bool run_all(const struct feed_opts *o)
{
    long first = 0;
    for (int s = 0; s < o->sessions; s++) {
        long share = o->messages / o->sessions + (s < o->messages % o->sessions ? 1 : 0);
        pid_t pid = fork();
        if (pid < 0) {
            perror("bench_feed: fork");
            return false;
        }
        if (pid == 0)
            _exit(run_session(o, first, share));
        first += share;
    }
    bool ok = true;
    int status;
    while (wait(&status) > 0)
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    return ok;
}

int main(int argc, char **argv)
{
    struct feed_opts o;
    if (!parse_args(argc, argv, &o)) {
        fprintf(
            stderr,
            "usage: bench_feed [-p | -b RUN] [-s SESSIONS] [-m MESSAGES] [-l BYTES] [-d DOMAINS] "
            "[-c PER] IP:PORT\n");
        return 2;
    }
    double t0 = now_s();
    bool ok = run_all(&o);
    double dt = now_s() - t0;
    if (!ok)
        return 1;
    printf("%ld %.3f %.0f\n", o.messages, dt, dt > 0 ? (double)o.messages / dt : 0.0);
    return 0;
}
