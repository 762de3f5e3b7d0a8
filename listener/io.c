/*
 * io.c - a listener's connection: buffered lines and bytes, batched replies,
 * the per-command timer, STARTTLS.
 *
 * Replies are queued and written when the server would otherwise wait for the
 * client (RFC 2920: a pipelined batch gets its replies in one write), or when
 * the buffer fills.  Every wait for the client runs under the timer the
 * session armed for the step (io_deadline: setitimer, the alarm() design in
 * milliseconds); SIGALRM and SIGTERM have handlers without SA_RESTART, so they
 * end a blocking read or write with EINTR and the flag says which.
 * Concurrency: one connection per process; the flags are the signal handlers'.
 * Trust boundary: the bytes come from the client; lines are read with a cap
 * and an over-long one is consumed, never kept.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <sodium.h>

#include "smtpd_impl.h"

static volatile sig_atomic_t alarmed, stopping;
static bool no_timers;   /* a test harness that owns SIGALRM (libFuzzer's -timeout) */
static bool handlers_in; /* this process's handlers are installed (a fork keeps them) */

/* on_signal - a flag, nothing else */
static void on_signal(int sig)
{
    if (sig == SIGALRM)
        alarmed = 1;
    else
        stopping = 1;
}

/* smtpd_io_no_timers - never arm the timer nor take SIGALRM (a harness whose reads never wait) */
void smtpd_io_no_timers(void)
{
    no_timers = true;
}

/* install_handlers - SIGALRM's and SIGTERM's, once per process (two system calls a session
 * saved: a connection per message is the common case) */
static void install_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (!no_timers)
        sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    handlers_in = true;
}

/* io_init - a fresh connection; the handlers are installed at the first */
void io_init(struct io *io, int fd)
{
    if (!handlers_in)
        install_handlers();
    io->fd = fd;
    io->ssl = NULL;
    io->start = io->end = io->outlen = 0;
    io->broken = false;
}

/* io_deadline - the timer for the next step, in milliseconds */
void io_deadline(long ms)
{
    struct itimerval it = {.it_value = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000}};

    alarmed = 0;
    if (!no_timers)
        setitimer(ITIMER_REAL, &it, NULL);
}

/* io_timed_out - the armed step's time ran out */
bool io_timed_out(void)
{
    return alarmed != 0;
}

/* io_stopping - SIGTERM came */
bool io_stopping(void)
{
    return stopping != 0;
}

/* raw_write - len bytes to the client, clear or TLS; false when it failed or timed out */
static bool raw_write(struct io *io, const char *p, size_t len)
{
    while (len > 0 && !alarmed) {
        ssize_t n;
        if (io->ssl != NULL) {
            int r = SSL_write(io->ssl, p, (int)len);
            n = r > 0 ? r : -1;
            if (r <= 0 && SSL_get_error(io->ssl, r) == SSL_ERROR_SYSCALL && errno == EINTR)
                continue;
        } else
            n = write(io->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return len == 0;
}

/* io_flush - write the queued replies */
bool io_flush(struct io *io)
{
    if (io->outlen > 0 && !io->broken && !raw_write(io, io->out, io->outlen))
        io->broken = true;
    io->outlen = 0;
    return !io->broken;
}

/* io_end - send what is queued, then nothing more: the session is over */
void io_end(struct io *io)
{
    io_deadline(5000);
    io_flush(io);
    io->broken = true;
}

/* io_reply - queue one reply line */
void io_reply(struct io *io, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 3)
        n = (int)sizeof line - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    if (io->outlen + (size_t)n > sizeof io->out)
        io_flush(io);
    memcpy(io->out + io->outlen, line, (size_t)n);
    io->outlen += (size_t)n;
}

/* fill - read more input after flushing the replies; IO_OK when bytes came */
static enum io_result fill(struct io *io, bool stop_ok)
{
    ssize_t n;

    if (!io_flush(io))
        return IO_ERROR;
    if (io->start == io->end)
        io->start = io->end = 0;
    else if (io->end == sizeof io->in) { /* keep the partial line at the front */
        memmove(io->in, io->in + io->start, io->end - io->start);
        io->end -= io->start;
        io->start = 0;
    }
    for (;;) {
        if (alarmed)
            return IO_TIMEOUT;
        if (stop_ok && stopping)
            return IO_STOP;
        if (io->ssl != NULL) {
            int r = SSL_read(io->ssl, io->in + io->end, (int)(sizeof io->in - io->end));
            int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(io->ssl, r);
            if (e == SSL_ERROR_SYSCALL && errno == EINTR)
                continue;
            n = r > 0 ? r : e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
        } else
            n = read(io->fd, io->in + io->end, sizeof io->in - io->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            return IO_EOF;
        if (n < 0)
            return IO_ERROR;
        io->end += (size_t)n;
        return IO_OK;
    }
}

/* io_line - the next line, capped; an over-long one is swallowed to its LF */
enum io_result io_line(struct io *io, char *buf, size_t max, size_t *len, bool stop_ok)
{
    bool too_long = false;
    size_t have = 0;

    for (;;) {
        char *lf = memchr(io->in + io->start, '\n', io->end - io->start);
        size_t n = (lf != NULL ? (size_t)(lf - (io->in + io->start)) : io->end - io->start);
        enum io_result r;

        if (!too_long && have + n <= max) {
            memcpy(buf + have, io->in + io->start, n);
            have += n;
        } else
            too_long = true;
        io->start += n;
        if (lf != NULL) {
            io->start++;
            if (too_long)
                return IO_TOO_LONG;
            if (have > 0 && buf[have - 1] == '\r')
                have--;
            buf[have] = '\0';
            *len = have;
            return IO_OK;
        }
        if ((r = fill(io, stop_ok && have == 0 && !too_long)) != IO_OK)
            return r;
    }
}

/* io_bytes - buffered bytes, reading when there are none */
enum io_result io_bytes(struct io *io, size_t want, const char **p, size_t *got)
{
    enum io_result r;

    if (io->start == io->end && (r = fill(io, false)) != IO_OK)
        return r;
    *got = io->end - io->start < want ? io->end - io->start : want;
    *p = io->in + io->start;
    io->start += *got;
    return IO_OK;
}

/* io_pending - bytes received and not yet read */
size_t io_pending(const struct io *io)
{
    return io->end - io->start + (io->ssl != NULL ? (size_t)SSL_pending(io->ssl) : 0);
}

/* io_discard - forget what is buffered (commands pipelined before TLS) */
void io_discard(struct io *io)
{
    io->start = io->end = 0;
}

/* io_wipe_read - zero every byte of the input buffer but those not read yet: an AUTH line and
 * its answers leave no copy in this buffer (what was pipelined after them is kept; OpenSSL's
 * own record buffers are its business) */
void io_wipe_read(struct io *io)
{
    sodium_memzero(io->in, io->start);
    sodium_memzero(io->in + io->end, sizeof io->in - io->end);
}

/* io_starttls - the server side of the handshake, under the TLS timer */
bool io_starttls(struct io *io, SSL_CTX *ctx, long timeout_ms)
{
    int r;

    if (!io_flush(io) || (io->ssl = SSL_new(ctx)) == NULL)
        return false;
    SSL_set_fd(io->ssl, io->fd);
    io_deadline(timeout_ms);
    while ((r = SSL_accept(io->ssl)) <= 0) {
        /* A signal (a reload's SIGTERM) interrupts a read: OpenSSL's socket BIO turns that
         * into a retry, WANT_READ or WANT_WRITE on this blocking socket; only the timer ends
         * the handshake. */
        int e = SSL_get_error(io->ssl, r);
        if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
             (e == SSL_ERROR_SYSCALL && errno == EINTR)) &&
            !alarmed)
            continue;
        ERR_clear_error();
        SSL_free(io->ssl);
        io->ssl = NULL;
        return false;
    }
    return true;
}

/* io_close - shut the connection (TLS close_notify when we can) */
void io_close(struct io *io)
{
    io_flush(io);
    if (io->ssl != NULL) {
        io_deadline(1000);
        SSL_shutdown(io->ssl);
        SSL_free(io->ssl);
        io->ssl = NULL;
    }
    io_deadline(0);
    close(io->fd);
    io->fd = -1;
}
