/*
 * smtp_io.c - the SMTP client's socket: connect, bounded line reads, writes,
 * and the per-phase timer.
 *
 * The socket is non-blocking and the only wait is ppoll() with the worker's
 * wait mask, the one window where SIGALRM (and SIGTERM) are unblocked.  A
 * phase arms ITIMER_REAL at its first wait, for the rest of the phase (a reply
 * trickled byte by byte still ends when the phase's time is up); a phase whose
 * reply is already buffered, as pipelined replies often are, costs no system
 * call.  Once STARTTLS is on, reads and writes go through smtp_tls.c, which waits
 * here as well.  An EINTR with *alarmed set is that phase's timeout, any other EINTR
 * (SIGTERM) just resumes the wait.
 * Trust boundary: every byte read comes from the peer; lines are capped at
 * SL_SMTP_LINE_MAX and the buffer never grows past its one allocation.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "smtp_impl.h"
#include "util/sl_msg.h"

/* Defaults for a phase whose setting is 0 (semantics.md); QUIT is capped. */
static const long default_ms[SL_PH__COUNT] = {
    [SL_PH_CONNECT] = 180000, [SL_PH_GREETING] = 180000,  [SL_PH_TLS] = 120000,
    [SL_PH_EHLO] = 180000,    [SL_PH_MAIL_FROM] = 180000, [SL_PH_RCPT_TO] = 180000,
    [SL_PH_DATA] = 600000,    [SL_PH_RSET] = 180000,      [SL_PH_QUIT] = 2000,
};
#define QUIT_MAX_MS 2000

/* smtp_phase_ms - the time a phase may take */
long smtp_phase_ms(const struct sl_smtp *s, enum sl_phase ph)
{
    long ms = s->to.ms[ph] > 0 ? s->to.ms[ph] : default_ms[ph];
    if (ph == SL_PH_QUIT && ms > QUIT_MAX_MS)
        ms = QUIT_MAX_MS;
    return ms > 0 ? ms : 1000;
}

/* set_timer - ITIMER_REAL to ms (0 stops it); true when the previous one had run out */
static bool set_timer(long ms)
{
    struct itimerval v = {.it_value = {ms / 1000, (ms % 1000) * 1000}};
    struct itimerval old;

    if (setitimer(ITIMER_REAL, &v, &old) < 0)
        sl_msg_panic("setitimer: %s", strerror(errno));
    return old.it_value.tv_sec == 0 && old.it_value.tv_usec == 0;
}

/* drop_pending_alarm - discard a SIGALRM that fired after its phase was over: it is blocked
 * outside ppoll, so it would otherwise end the next phase at its first wait */
static void drop_pending_alarm(void)
{
    sigset_t alrm;
    struct timespec now = {0, 0};

    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    (void)sigtimedwait(&alrm, NULL, &now);
}

/* smtp_phase_begin - enter phase ph with its full time; the timer is armed at the phase's
 * first wait (arm_phase) */
void smtp_phase_begin(struct sl_smtp *s, enum sl_phase ph)
{
    s->phase = ph;
    s->timer_ms = smtp_phase_ms(s, ph);
    s->timer_due = true;
}

/* arm_phase - start the running phase's timer, replacing the previous phase's */
static void arm_phase(struct sl_smtp *s)
{
    /* One syscall in the common case; when the old timer had run out its signal may be
     * pending: drop it, then arm again so the new phase gets its whole time. */
    if (set_timer(s->timer_ms) && s->timer_armed) {
        drop_pending_alarm();
        set_timer(s->timer_ms);
    }
    s->timer_armed = true;
    s->timer_due = false;
    *s->env.alarmed = 0;
}

/* smtp_phase_end - stop the phase timer and forget an alarm that came too late to matter */
void smtp_phase_end(struct sl_smtp *s)
{
    s->timer_due = false;
    if (!s->timer_armed)
        return;
    if (set_timer(0))
        drop_pending_alarm();
    s->timer_armed = false;
    *s->env.alarmed = 0;
}

/* smtp_fail - record why the session ended, then end it; returns -1 for the caller to pass on.
 * Under keep_on_fail the socket stays open for a salvage of the replies already received
 * (smtp_chunk.c), and the salvage's own end keeps this first reason. */
int smtp_fail(struct sl_smtp *s, enum sl_smtp_fail f, const char *fmt, ...)
{
    va_list ap;

    if (s->salvage) { /* the failure that started the salvage stands */
        sl_smtp_close(s);
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    s->fail = f;
    if (s->keep_on_fail) { /* replies may be waiting: the caller reads them first */
        s->keep_on_fail = false;
        s->salvage = true;
        return -1;
    }
    sl_smtp_close(s);
    return -1;
}

/* span - "300ms" or "2s", for error lines */
static const char *span(long ms, char *buf, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%lds", ms / 1000);
    else
        snprintf(buf, len, "%ldms", ms);
    return buf;
}

/* timeout - the running phase's timer fired while waiting for events */
static int timeout(struct sl_smtp *s, short events, const char *what)
{
    char t[32];
    const char *ph = sl_phase_name(s->phase);

    span(s->timer_ms, t, sizeof t);
    if (s->phase == SL_PH_TLS && s->ssl != NULL)
        return smtp_fail(s, SL_SMTP_FAIL_TIMEOUT, "timeout in the TLS handshake after %s", t);
    if (s->phase == SL_PH_CONNECT)
        return smtp_fail(s, SL_SMTP_FAIL_TIMEOUT, "timeout connecting after %s", t);
    if (events & POLLIN)
        return smtp_fail(s, SL_SMTP_FAIL_TIMEOUT, "timeout waiting for the %s reply after %s", ph,
                         t);
    return smtp_fail(s, SL_SMTP_FAIL_TIMEOUT, "timeout sending %s during %s after %s", what, ph, t);
}

/* io_error - a failed read or write: the peer's doing (close, reset) or the system's */
static int io_error(struct sl_smtp *s, int err)
{
    const char *ph = sl_phase_name(s->phase);

    if (err == 0 || err == EPIPE)
        return smtp_fail(s, SL_SMTP_FAIL_IO, "connection closed by the peer during %s", ph);
    if (err == ECONNRESET)
        return smtp_fail(s, SL_SMTP_FAIL_IO, "connection reset by the peer during %s", ph);
    return smtp_fail(s, SL_SMTP_FAIL_IO, "%s during %s", strerror(err), ph);
}

/* smtp_io_wait - wait for events on the socket under the running phase's timer; the one
 * place the session sleeps (smtp_tls.c waits here too) */
int smtp_io_wait(struct sl_smtp *s, short events, const char *what)
{
    struct pollfd p = {.fd = s->fd, .events = events};

    if (s->salvage) { /* only what already arrived is read: nothing more is waited for */
        sl_smtp_close(s);
        return -1;
    }
    if (s->timer_due)
        arm_phase(s);
    for (;;) {
        if (*s->env.alarmed)
            return timeout(s, events, what);
        int n = ppoll(&p, 1, NULL, s->env.wait_mask);
        if (n > 0)
            return 0; /* ready, or an error the next read/write will name */
        if (n < 0 && errno != EINTR)
            return io_error(s, errno);
        /* EINTR: the alarm is checked above; SIGTERM does not end a session */
    }
}

/* addr_str - "127.0.1.1:2525" or "[::1]:2525" */
static const char *addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "(family %d)", sa->sa_family);
    }
    return buf;
}

/* bind_source - take the source address before connecting; the port comes at connect
 * (IP_BIND_ADDRESS_NO_PORT), so one source can carry more connections than it has ports */
static int bind_source(struct sl_smtp *s, const struct sockaddr *src, socklen_t srclen)
{
    int one = 1;
    char a[64];

    (void)setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(s->fd, src, srclen) < 0)
        return smtp_fail(s, SL_SMTP_FAIL_IO, "bind to %s: %s", addr_str(src, a, sizeof a),
                         strerror(errno));
    return 0;
}

/* finish_connect - wait for a non-blocking connect and collect its result */
static int finish_connect(struct sl_smtp *s, const struct sockaddr *dst)
{
    int err = 0;
    socklen_t elen = sizeof err;
    char a[64];

    if (smtp_io_wait(s, POLLOUT, "") < 0)
        return -1;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        err = errno;
    if (err != 0)
        return smtp_fail(s, SL_SMTP_FAIL_IO, "connect to %s: %s", addr_str(dst, a, sizeof a),
                         strerror(err));
    return 0;
}

/* smtp_io_connect - a non-blocking TCP connection from src (if any) to dst, under the
 * connect phase's timer */
int smtp_io_connect(struct sl_smtp *s, const struct sockaddr *src, socklen_t srclen,
                    const struct sockaddr *dst, socklen_t dstlen)
{
    int one = 1;
    char a[64];

    smtp_phase_begin(s, SL_PH_CONNECT);
    s->fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return smtp_fail(s, SL_SMTP_FAIL_IO, "socket: %s", strerror(errno));
    /* Commands and bodies go out in whole writes: Nagle would only hold back their tails. */
    (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src != NULL && bind_source(s, src, srclen) < 0)
        return -1;
    if (connect(s->fd, dst, dstlen) < 0) {
        if (errno != EINPROGRESS)
            return smtp_fail(s, SL_SMTP_FAIL_IO, "connect to %s: %s", addr_str(dst, a, sizeof a),
                             strerror(errno));
        if (finish_connect(s, dst) < 0)
            return -1;
    }
    smtp_phase_end(s);
    return 0;
}

/* advance - drop n written bytes from the front of the iovec list */
static void advance(struct msghdr *m, size_t n)
{
    while (n > 0 && m->msg_iovlen > 0) {
        struct iovec *v = m->msg_iov;
        if (n < v->iov_len) {
            v->iov_base = (char *)v->iov_base + n;
            v->iov_len -= n;
            return;
        }
        n -= v->iov_len;
        m->msg_iov++;
        m->msg_iovlen--;
    }
    while (m->msg_iovlen > 0 && m->msg_iov->iov_len == 0) {
        m->msg_iov++;
        m->msg_iovlen--;
    }
}

/* smtp_io_send - write all of iov straight from the caller's buffers, under the running phase */
int smtp_io_send(struct sl_smtp *s, struct iovec *iov, int iovcnt, const char *what)
{
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};

    if (s->ssl != NULL)
        return smtp_tls_send(s, iov, iovcnt, what);
    advance(&m, 0);
    while (m.msg_iovlen > 0) {
        ssize_t n = sendmsg(s->fd, &m, MSG_NOSIGNAL);
        if (n >= 0) {
            advance(&m, (size_t)n);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (smtp_io_wait(s, POLLOUT, what) < 0)
                return -1;
        } else if (errno != EINTR) {
            return io_error(s, errno);
        }
    }
    return 0;
}

/* smtp_io_send_str - write one buffer */
int smtp_io_send_str(struct sl_smtp *s, const char *buf, size_t len, const char *what)
{
    struct iovec v = {.iov_base = (void *)buf, .iov_len = len};
    return smtp_io_send(s, &v, 1, what);
}

/* fill - read what the peer has sent into the free end of the buffer, waiting if need be */
static int fill(struct sl_smtp *s)
{
    if (s->ssl != NULL) {
        ssize_t n = smtp_tls_read(s, s->rbuf + s->rlen, s->rcap - s->rlen);
        if (n < 0)
            return -1;
        s->rlen += (size_t)n;
        return 0;
    }
    for (;;) {
        ssize_t n = recv(s->fd, s->rbuf + s->rlen, s->rcap - s->rlen, 0);
        if (n > 0) {
            s->rlen += (size_t)n;
            return 0;
        }
        if (n == 0)
            return io_error(s, 0);
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (smtp_io_wait(s, POLLIN, "") < 0)
                return -1;
        } else if (errno != EINTR) {
            return io_error(s, errno);
        }
    }
}

/* smtp_io_ready - see smtp_impl.h */
bool smtp_io_ready(struct sl_smtp *s)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};

    if (s->rlen > s->roff || (s->ssl != NULL && smtp_tls_pending(s)))
        return true;
    return s->fd >= 0 && poll(&p, 1, 0) > 0;
}

/* smtp_io_line - the next line from the peer (CRLF or bare LF stripped), at most
 * SL_SMTP_LINE_MAX bytes: a longer one is a protocol error, read no further */
int smtp_io_line(struct sl_smtp *s, const char **line, size_t *len)
{
    for (;;) {
        char *start = s->rbuf + s->roff;
        size_t avail = s->rlen - s->roff;
        char *nl = memchr(start, '\n', avail);
        if (nl != NULL) {
            size_t n = (size_t)(nl - start);
            s->roff += n + 1;
            if (n > 0 && start[n - 1] == '\r')
                n--;
            if (n > SL_SMTP_LINE_MAX)
                break;
            *line = start;
            *len = n;
            return 0;
        }
        if (avail > SL_SMTP_LINE_MAX + 1) /* room for a CR still waiting for its LF */
            break;
        /* Keep the partial line at the front; rcap > SL_SMTP_LINE_MAX + 2 leaves room to read. */
        if (s->roff > 0) {
            memmove(s->rbuf, start, avail);
            s->roff = 0;
            s->rlen = avail;
        }
        if (fill(s) < 0)
            return -1;
    }
    return smtp_fail(s, SL_SMTP_FAIL_PROTO, "reply line longer than %d bytes during %s",
                     SL_SMTP_LINE_MAX, sl_phase_name(s->phase));
}
