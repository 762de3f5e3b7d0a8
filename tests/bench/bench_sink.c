/*
 * bench_sink.c - the receiving end of the many-domain and latency benchmarks
 * (scripts/bench_delivery.sh): an SMTP sink about as fast as Postfix's smtp-sink that also
 * reports what smtp-sink cannot: the most sessions open at once (in all, per address, per
 * listener) and the arrival time of each message.
 *
 *   bench_sink [-c] [-d MS] [-n PORTS] [-s STATS] [-l LOG] ADDR...
 *
 * Listens on PORTS ports (default 1), each on every ADDR (the same port number on all, picked
 * free), prints "READY P1 P2 ..." (the ports in order) on stdout in one write once all are
 * bound (exiting 1 without it when one cannot be), and answers every session alike: EHLO
 * offers PIPELINING, 8BITMIME and ENHANCEDSTATUSCODES; MAIL, RCPT, RSET and NOOP get 250; DATA
 * gets 354, then 250 at the final dot; QUIT 221 and a close; anything else 502.  Replies to
 * pipelined commands leave together.  With -c, EHLO also offers CHUNKING and BDAT is taken:
 * "BDAT n [LAST]" gets 250 once its n octets are in (the message counts at LAST's).  With -d,
 * every batch of replies (the greeting too) leaves MS milliseconds after it is ready: a receiver
 * that far away, each round trip MS longer (later replies of the same session join a batch still
 * waiting).  Replies to
 * pipelined commands leave together, once every complete line read so far is answered.  One thread,
 * epoll, level-triggered.
 *
 * Counting, as tests/peer/sink.py counts: a session is open from its accept until the client
 * hangs up (EOF or reset) or the sink closes it after QUIT.  Before an accept would raise a
 * peak, every open session whose client has already sent its FIN (TCP CLOSE_WAIT: the kernel
 * knows, the event loop has not read it yet) is read to its end and closed first: a client that
 * closes one connection and then opens another was never at two at once.
 *
 * -s STATS  written (write-new, rename) at SIGTERM/SIGINT before exiting and at SIGUSR1:
 *             total connections N messages N peak N last T
 *           (T: the last message's final dot, CLOCK_REALTIME seconds, 0 before any: a rate
 *           timed by the receiver, not by a poller's step)
 *             addr IP connections N messages N peak N           one line per ADDR
 *             listener IP:PORT connections N messages N peak N  one line per ADDR and port
 * -l LOG    one line per message at its final dot, written at once:
 *             SECONDS.NANOSECONDS IP:PORT MESSAGE-ID
 *           (CLOCK_REALTIME; the Message-ID header's value as sent, "-" when there is none)
 *
 * Trust boundary: the clients are the programs under test on loopback; anything they send is
 * answered without crashing the sink (bounded lines: a command line over the buffer gets 500
 * and a close, a longer body line is skipped).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ADDRS  16
#define MAX_PORTS  4096
#define IN_SIZE    16384
#define MSGID_MAX  256
#define TCP_CLOSE_ 7 /* Linux tcp_states.h: the peer's FIN is in (or the socket is gone) */
#define TCP_CW_    8
#define TCP_LA_    9

enum kind { K_LISTENER, K_SESSION, K_SIGNAL };

struct counts {
    long conns, msgs;
    int open, peak;
};

struct listener {
    enum kind kind; /* first: epoll's data.ptr points at it */
    int fd;
    int addr; /* index in addrs[] */
    char name[64];
    struct counts c;
};

struct session {
    enum kind kind;
    int fd;
    bool dead;                     /* closed; freed at the end of the event batch */
    bool data;                     /* inside DATA */
    bool in_header;                /* inside DATA, before the first empty line */
    bool skipping;                 /* inside DATA, the rest of a line longer than the buffer */
    bool quitting;                 /* close once the output is written */
    unsigned long long chunk_left; /* inside a BDAT chunk: its octets still to come */
    bool chunk;                    /* inside a BDAT chunk */
    bool chunk_last;               /* ... the message's last */
    bool delayed;                  /* -d: its replies wait in the delay queue */
    long long due_ns;              /* ... until then (CLOCK_MONOTONIC) */
    struct session *dnext, *dprev; /* the delay queue, oldest first */
    bool want_out;                 /* EPOLLOUT is on */
    struct listener *l;
    struct session *prev, *next, *next_dead;
    char msgid[MSGID_MAX];
    size_t inlen, outlen, outcap;
    char *out;
    char in[IN_SIZE];
};

static struct {
    int ep;
    int naddrs, nports;
    char addrs[MAX_ADDRS][INET_ADDRSTRLEN];
    struct counts addr_c[MAX_ADDRS];
    struct counts total;
    struct listener *listeners; /* nports * naddrs */
    struct session *live, *dead;
    const char *stats_path;
    FILE *log;
    struct timespec last; /* the last message's final dot */
    bool chunking;        /* -c: CHUNKING offered */
    long delay_ms;        /* -d: replies held this long */
    struct session *dhead, *dtail;
} S;

static void die(const char *what)
{
    fprintf(stderr, "bench_sink: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        die("malloc");
    return p;
}

static void ep_add(int fd, void *ptr, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    if (epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl");
}

/* --- counting ---------------------------------------------------------------------------- */

static void opened(struct counts *c)
{
    c->conns++;
    c->open++;
    if (c->open > c->peak)
        c->peak = c->open;
}

static bool would_peak(const struct counts *c)
{
    return c->open + 1 > c->peak;
}

static void write_stats(void)
{
    if (S.stats_path == NULL)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", S.stats_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        perror("bench_sink: stats");
        return;
    }
    fprintf(f, "total connections %ld messages %ld peak %d last %lld.%09ld\n", S.total.conns,
            S.total.msgs, S.total.peak, (long long)S.last.tv_sec, S.last.tv_nsec);
    for (int a = 0; a < S.naddrs; a++)
        fprintf(f, "addr %s connections %ld messages %ld peak %d\n", S.addrs[a], S.addr_c[a].conns,
                S.addr_c[a].msgs, S.addr_c[a].peak);
    for (int i = 0; i < S.nports * S.naddrs; i++) {
        const struct listener *l = &S.listeners[i];
        fprintf(f, "listener %s connections %ld messages %ld peak %d\n", l->name, l->c.conns,
                l->c.msgs, l->c.peak);
    }
    if (fclose(f) != 0 || rename(tmp, S.stats_path) != 0)
        perror("bench_sink: stats");
}

/* --- sessions ---------------------------------------------------------------------------- */

static long long mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* undelay - out of the delay queue */
static void undelay(struct session *s)
{
    if (!s->delayed)
        return;
    s->delayed = false;
    if (s->dprev)
        s->dprev->dnext = s->dnext;
    else
        S.dhead = s->dnext;
    if (s->dnext)
        s->dnext->dprev = s->dprev;
    else
        S.dtail = s->dprev;
    s->dnext = s->dprev = NULL;
}

static void session_close(struct session *s)
{
    if (s->dead)
        return;
    undelay(s);
    s->dead = true;
    close(s->fd); /* also leaves the epoll set */
    s->l->c.open--;
    S.addr_c[s->l->addr].open--;
    S.total.open--;
    if (s->prev)
        s->prev->next = s->next;
    else
        S.live = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next_dead = S.dead;
    S.dead = s;
}

static void reply(struct session *s, const char *text)
{
    size_t n = strlen(text);
    if (s->outlen + n > s->outcap) {
        size_t cap = s->outcap ? s->outcap : 512;
        while (cap < s->outlen + n)
            cap *= 2;
        char *p = realloc(s->out, cap);
        if (p == NULL)
            die("realloc");
        s->out = p;
        s->outcap = cap;
    }
    memcpy(s->out + s->outlen, text, n);
    s->outlen += n;
}

/* Write what is queued; EPOLLOUT while some is left; close after QUIT once all is out. */
static void flush(struct session *s)
{
    size_t done = 0;
    while (done < s->outlen) {
        ssize_t w = write(s->fd, s->out + done, s->outlen - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0) {
            session_close(s);
            return;
        }
        done += (size_t)w;
    }
    memmove(s->out, s->out + done, s->outlen - done);
    s->outlen -= done;
    if (s->outlen == 0 && s->quitting) {
        session_close(s);
        return;
    }
    bool want = s->outlen > 0;
    if (want != s->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.ptr = s};
        epoll_ctl(S.ep, EPOLL_CTL_MOD, s->fd, &ev);
        s->want_out = want;
    }
}

static void message_done(struct session *s)
{
    s->l->c.msgs++;
    S.addr_c[s->l->addr].msgs++;
    S.total.msgs++;
    clock_gettime(CLOCK_REALTIME, &S.last);
    if (S.log != NULL) {
        const struct timespec t = S.last;
        fprintf(S.log, "%lld.%09ld %s %s\n", (long long)t.tv_sec, t.tv_nsec, s->l->name,
                s->msgid[0] ? s->msgid : "-");
        fflush(S.log);
    }
    reply(s, "250 2.0.0 Ok: queued\r\n");
}

/* The Message-ID header's value, trimmed, into s->msgid. */
static void note_msgid(struct session *s, const char *line, size_t len)
{
    static const char name[] = "Message-ID:";
    size_t k = sizeof name - 1;
    if (len < k || strncasecmp(line, name, k) != 0)
        return;
    while (k < len && (line[k] == ' ' || line[k] == '\t'))
        k++;
    while (len > k && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    size_t n = len - k < MSGID_MAX - 1 ? len - k : MSGID_MAX - 1;
    memcpy(s->msgid, line + k, n);
    s->msgid[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (s->msgid[i] == ' ' || s->msgid[i] == '\t')
            s->msgid[i] = '_'; /* one field in the log */
}

/* header_line - a line of the message's header part: its end, its Message-ID */
static void header_line(struct session *s, const char *line, size_t len)
{
    if (line[0] == '\r' || line[0] == '\n')
        s->in_header = false;
    else
        note_msgid(s, line, len);
}

static void data_line(struct session *s, const char *line, size_t len)
{
    if (s->skipping) { /* the end of a line longer than the buffer */
        s->skipping = false;
        return;
    }
    if ((len == 3 && memcmp(line, ".\r\n", 3) == 0) || (len == 2 && memcmp(line, ".\n", 2) == 0)) {
        s->data = false;
        message_done(s);
        return;
    }
    if (s->in_header)
        header_line(s, line, len);
}

/* chunk_done - a BDAT chunk is in: the message at the last one, else the chunk's 250 */
static void chunk_done(struct session *s)
{
    s->chunk = false;
    if (s->chunk_last)
        message_done(s);
    else
        reply(s, "250 2.0.0 chunk received\r\n");
}

/* chunk_bytes - octets of the BDAT chunk at p (avail of them in the buffer), a line at a time
 * while the header lasts; how many were taken (0: wait for more) */
static size_t chunk_bytes(struct session *s, const char *p, size_t avail)
{
    const char *nl = memchr(p, '\n', avail);
    size_t len = nl != NULL ? (size_t)(nl - p) + 1 : 0;

    if (len == 0 || len > s->chunk_left) {
        if (avail < s->chunk_left && avail < IN_SIZE / 2)
            return 0; /* a partial line, the chunk goes on: wait */
        len = avail < s->chunk_left ? avail : (size_t)s->chunk_left;
    } else if (s->in_header) {
        header_line(s, p, len);
    }
    s->chunk_left -= len;
    if (s->chunk_left == 0)
        chunk_done(s);
    return len;
}

/* bdat - "BDAT n [LAST]": the next n octets are the chunk */
static void bdat(struct session *s, const char *line)
{
    char *end;
    s->chunk_left = strtoull(line + 4, &end, 10);
    while (*end == ' ')
        end++;
    s->chunk_last = strncasecmp(end, "LAST", 4) == 0;
    s->chunk = true;
    if (s->chunk_left == 0)
        chunk_done(s);
}

static void command(struct session *s, const char *line, size_t len)
{
    char verb[5] = "";
    for (size_t i = 0; i < 4 && i < len; i++)
        verb[i] = (char)(line[i] & ~0x20); /* ASCII upper case */
    if (strcmp(verb, "EHLO") == 0)
        reply(s, S.chunking ? "250-bench-sink\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n"
                              "250 ENHANCEDSTATUSCODES\r\n"
                            : "250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                              "250 ENHANCEDSTATUSCODES\r\n");
    else if (strcmp(verb, "MAIL") == 0) {
        reply(s, "250 2.0.0 Ok\r\n");
        s->in_header = true; /* a BDAT message's header starts with its first chunk */
        s->msgid[0] = '\0';
    } else if (strcmp(verb, "BDAT") == 0 && S.chunking)
        bdat(s, line);
    else if (strcmp(verb, "HELO") == 0)
        reply(s, "250 bench-sink\r\n");
    else if (strcmp(verb, "RSET") == 0 || strcmp(verb, "NOOP") == 0)
        reply(s, "250 2.0.0 Ok\r\n");
    else if (strcmp(verb, "RCPT") == 0)
        reply(s, "250 2.1.5 Ok\r\n");
    else if (strcmp(verb, "DATA") == 0) {
        reply(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
        s->data = s->in_header = true;
        s->skipping = false;
        s->msgid[0] = '\0';
    } else if (strcmp(verb, "QUIT") == 0) {
        reply(s, "221 2.0.0 Bye\r\n");
        s->quitting = true;
    } else
        reply(s, "502 5.5.2 Command not recognized\r\n");
}

/* answer - the replies queued so far go out: now, or with -d once the delay is over */
static void answer(struct session *s)
{
    if (S.delay_ms == 0) {
        flush(s);
        return;
    }
    if (s->delayed || s->outlen == 0)
        return;
    s->delayed = true;
    s->due_ns = mono_ns() + S.delay_ms * 1000000LL;
    s->dprev = S.dtail;
    if (S.dtail)
        S.dtail->dnext = s;
    else
        S.dhead = s;
    S.dtail = s;
}

/* release_due - the delayed replies whose time has come; the epoll timeout until the next */
static int release_due(void)
{
    long long now = mono_ns();
    while (S.dhead != NULL && S.dhead->due_ns <= now) {
        struct session *s = S.dhead;
        undelay(s);
        flush(s);
    }
    if (S.dhead == NULL)
        return -1;
    return (int)((S.dhead->due_ns - now + 999999) / 1000000);
}

/* Answer every complete line in the buffer; keep the partial one. */
static void process(struct session *s)
{
    size_t pos = 0;
    while (pos < s->inlen && !s->quitting) {
        if (s->chunk) {
            size_t took = chunk_bytes(s, s->in + pos, s->inlen - pos);
            if (took == 0)
                break;
            pos += took;
            continue;
        }
        char *nl = memchr(s->in + pos, '\n', s->inlen - pos);
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - (s->in + pos)) + 1;
        if (s->data)
            data_line(s, s->in + pos, len);
        else
            command(s, s->in + pos, len);
        pos += len;
    }
    if (s->quitting)
        pos = s->inlen; /* nothing after QUIT is read */
    memmove(s->in, s->in + pos, s->inlen - pos);
    s->inlen -= pos;
    if (s->inlen == sizeof s->in) { /* one line fills the buffer */
        if (s->data) {
            s->inlen = 0;
            s->skipping = true;
        } else {
            reply(s, "500 5.5.6 Line too long\r\n");
            s->quitting = true;
            s->inlen = 0;
        }
    }
    answer(s);
}

/* Read what is there (once; drain: until EAGAIN or the end) and answer it. */
static void session_read(struct session *s, bool drain)
{
    do {
        ssize_t r = read(s->fd, s->in + s->inlen, sizeof s->in - s->inlen);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) { /* the client hung up */
            session_close(s);
            return;
        }
        s->inlen += (size_t)r;
        process(s);
    } while (drain && !s->dead);
}

/* Every open session whose client has sent its FIN is read to its end and closed. */
static void settle(void)
{
    for (struct session *s = S.live, *next; s != NULL; s = next) {
        next = s->next;
        struct tcp_info ti;
        socklen_t len = sizeof ti;
        if (getsockopt(s->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
            continue;
        if (ti.tcpi_state == TCP_CW_ || ti.tcpi_state == TCP_LA_ || ti.tcpi_state == TCP_CLOSE_)
            session_read(s, true);
    }
}

static void accept_all(struct listener *l)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or out of descriptors: the backlog keeps the rest */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (would_peak(&S.total) || would_peak(&S.addr_c[l->addr]) || would_peak(&l->c))
            settle();
        struct session *s = xmalloc(sizeof *s);
        memset(s, 0, offsetof(struct session, in));
        s->kind = K_SESSION;
        s->fd = fd;
        s->l = l;
        s->next = S.live;
        if (S.live)
            S.live->prev = s;
        S.live = s;
        opened(&l->c);
        opened(&S.addr_c[l->addr]);
        opened(&S.total);
        ep_add(fd, s, EPOLLIN);
        reply(s, "220 bench-sink ESMTP\r\n");
        answer(s);
    }
}

/* --- set-up ------------------------------------------------------------------------------ */

static int listen_on(const char *addr, unsigned port, unsigned *bound)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "bench_sink: not an IPv4 address: %s\n", addr);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4096) != 0) {
        close(fd);
        return -1;
    }
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *bound = ntohs(sa.sin_port);
    return fd;
}

/* Port i on every address: the first picks a free port, the others must have it too. */
static unsigned bind_port(int i)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned port = 0, got;
        int a;
        for (a = 0; a < S.naddrs; a++) {
            int fd = listen_on(S.addrs[a], port, &got);
            if (fd < 0)
                break;
            port = got;
            struct listener *l = &S.listeners[i * S.naddrs + a];
            *l = (struct listener){.kind = K_LISTENER, .fd = fd, .addr = a};
            snprintf(l->name, sizeof l->name, "%s:%u", S.addrs[a], port);
        }
        if (a == S.naddrs)
            return port;
        while (a-- > 0)
            close(S.listeners[i * S.naddrs + a].fd);
    }
    fprintf(stderr, "bench_sink: no port free on every address\n");
    exit(1);
}

int main(int argc, char **argv)
{
    int ch;
    S.nports = 1;
    while ((ch = getopt(argc, argv, "cd:n:s:l:")) != -1) {
        switch (ch) {
        case 'c':
            S.chunking = true;
            break;
        case 'd':
            S.delay_ms = atol(optarg);
            break;
        case 'n':
            S.nports = atoi(optarg);
            break;
        case 's':
            S.stats_path = optarg;
            break;
        case 'l':
            if ((S.log = fopen(optarg, "a")) == NULL)
                die(optarg);
            break;
        default:
            goto usage;
        }
    }
    S.naddrs = argc - optind;
    if (S.naddrs < 1 || S.naddrs > MAX_ADDRS || S.nports < 1 || S.nports > MAX_PORTS)
        goto usage;
    for (int a = 0; a < S.naddrs; a++)
        snprintf(S.addrs[a], sizeof S.addrs[a], "%s", argv[optind + a]);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if ((S.ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || sfd < 0)
        die("epoll/signalfd");
    static enum kind signal_tag = K_SIGNAL;
    ep_add(sfd, &signal_tag, EPOLLIN);

    /* a listener per port and address, and the sessions: the soft limit up to the hard one */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    S.listeners = xmalloc(sizeof *S.listeners * (size_t)(S.nports * S.naddrs));
    size_t cap = 16 + 6 * (size_t)S.nports, len = 0;
    char *ready = xmalloc(cap);
    len += (size_t)snprintf(ready, cap, "READY");
    for (int i = 0; i < S.nports; i++)
        len += (size_t)snprintf(ready + len, cap - len, " %u", bind_port(i));
    len += (size_t)snprintf(ready + len, cap - len, "\n");
    for (int i = 0; i < S.nports * S.naddrs; i++)
        ep_add(S.listeners[i].fd, &S.listeners[i], EPOLLIN);
    /* one write once every port is bound (a reader polling the file never sees half a line) */
    for (size_t done = 0; done < len;) {
        ssize_t w = write(STDOUT_FILENO, ready + done, len - done);
        if (w <= 0 && errno != EINTR)
            die("stdout");
        done += w > 0 ? (size_t)w : 0;
    }
    free(ready);

    struct epoll_event ev[256];
    for (int timeout = -1;; timeout = release_due()) {
        int n = epoll_wait(S.ep, ev, 256, timeout);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            enum kind k = *(enum kind *)ev[i].data.ptr;
            if (k == K_LISTENER) {
                accept_all(ev[i].data.ptr);
            } else if (k == K_SESSION) {
                struct session *s = ev[i].data.ptr;
                if (!s->dead && (ev[i].events & EPOLLOUT))
                    flush(s);
                if (!s->dead && (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                    session_read(s, false);
            } else {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                    write_stats();
                    if (si.ssi_signo != SIGUSR1)
                        return 0;
                }
            }
        }
        while (S.dead != NULL) {
            struct session *s = S.dead;
            S.dead = s->next_dead;
            free(s->out);
            free(s);
        }
    }
usage:
    fprintf(stderr, "usage: bench_sink [-c] [-d MS] [-n PORTS] [-s STATS] [-l LOG] ADDR...\n");
    return 2;
}
