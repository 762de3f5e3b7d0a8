/*
 * listener.c - a listener process's life: the socket the master bound, then
 * accept and serve one session at a time, until told to stop.
 *
 * The master binds every listener address before it drops privileges
 * (sl_smtpd_bind; port 25 needs root or CAP_NET_BIND_SERVICE) and forks
 * max_sessions processes per listener, which all accept on the one socket:
 * the kernel hands each connection to one of them.  A process keeps only its
 * socket (the master's other descriptors are closed), dies with the master
 * (a new master must be able to bind the address again), and on SIGTERM
 * (stop, or a reload that replaces it) stops accepting, finishes the
 * transaction in hand and says 421 at the next command.
 * Concurrency: each process serves one client; SIGTERM is blocked except
 * while it waits in epoll_pwait for a connection and during a session (where it
 * ends a blocking read with EINTR, see io.c).
 * Trust boundary: the client is outside; its address decides relaying.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <bsd/unistd.h>
#include <sodium.h>

#include "util/sl_msg.h"
#include "smtpd_impl.h"

#define LISTEN_BACKLOG 1024

/* sl_smtpd_bind - a listening socket on l's address, or -1 with err */
int sl_smtpd_bind(const struct sl_listener *l, char *err, size_t errlen)
{
    int one = 1, fd = socket(l->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0) {
        snprintf(err, errlen, "listener %s: socket: %s", l->name, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l->sa.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&l->sa, l->salen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "listener %s: cannot listen on %s: %s", l->name, l->address,
                 strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* host_name - the name in the greeting and in Received */
static const char *host_name(const struct sl_smtpd_ctx *ctx, const struct sl_listener *l)
{
    static char buf[256];
    const struct sl_scope_ref none = {0};
    const char *ehlo = sl_config_str(ctx->cfg, SL_OPT_EHLO_HOSTNAME, &none);

    if (l->hostname != NULL)
        return l->hostname;
    if (ehlo != NULL)
        return ehlo;
    if (gethostname(buf, sizeof buf - 1) < 0 || buf[0] == '\0')
        snprintf(buf, sizeof buf, "localhost");
    return buf;
}

/* setup - descriptors, signals, name; SIGTERM blocked, the mask for the wait in wait */
static void setup(const struct sl_smtpd_ctx *ctx, int *fd, sigset_t *wait)
{
    const struct sl_listener *l = &ctx->cfg->listeners[ctx->listener];
    char title[128];
    sigset_t block;

    if (dup2(ctx->fd, 3) < 0)
        _exit(71);
    *fd = 3;
    sl_msg_close_from(4); /* the master's sockets and pipes, the other listeners' sockets */
    snprintf(title, sizeof title, "listener %s", l->name);
    sl_msg_init(title);
    sl_msg_never_block(); /* a session never waits for stderr's reader */
    setproctitle("-sluiced: listener %s (config generation %u)", l->name, (unsigned)ctx->gen);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    struct io probe;
    io_init(&probe, -1); /* the SIGALRM and SIGTERM handlers */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, wait);
    sigdelset(wait, SIGTERM);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != ctx->master)
        _exit(0); /* the master died before the line above */
    if (sodium_init() < 0)
        sl_msg_fatal("libsodium cannot initialise");
}

/* accept_waiter - this process's epoll set holding the listening socket, exclusive: a new
 * connection wakes one idle process, not all max_sessions of them (a poll on the shared socket
 * woke every one, and all but one found nothing to accept: a context switch per process per
 * connection, the listener's largest cost with a connection per message) */
static int accept_waiter(int lfd)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        sl_msg_fatal("listener: epoll: %s", strerror(errno));
    return ep;
}

/* next_client - wait for a connection (SIGTERM ends the wait); -1 when stopping */
static int next_client(int lfd, int ep, const sigset_t *wait, struct sockaddr_storage *peer)
{
    while (!io_stopping()) {
        struct epoll_event ev;
        socklen_t len = sizeof *peer;
        int fd;
        if (epoll_pwait(ep, &ev, 1, -1, wait) <= 0)
            continue;
        fd = accept4(lfd, (struct sockaddr *)peer, &len, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            sl_msg_warn("accept: %s", strerror(errno));
    }
    return -1;
}

/* peer_text - the client's address as text (an IPv4-mapped address as IPv4) */
static void peer_text(const struct sockaddr_storage *peer, char *buf, size_t len)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;

    if (peer->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, buf, (socklen_t)len);
    else if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
        inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, (socklen_t)len);
    else
        inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)len);
}

/* serve - one client from greeting to close */
static void serve(struct session *s, int fd)
{
    const struct sl_listener *l = s->l;
    sigset_t term;
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    io_init(&s->io, fd);
    peer_text(&s->peer, s->peer_ip, sizeof s->peer_ip);
    if (!smtpd_board_enter(s->ctx->board, s->ctx->listener, l->max_sessions_per_client, &s->peer)) {
        sl_msg_info("%s: refused: more than %u sessions from this client", s->peer_ip,
                    l->max_sessions_per_client);
        io_reply(&s->io, "421 4.7.0 %s Error: too many connections from %s", s->hostname,
                 s->peer_ip);
        smtpd_count(s, SL_LSTAT_TURNED_AWAY, 1);
        io_close(&s->io);
        return;
    }
    smtpd_count(s, SL_LSTAT_SESSIONS, 1);
    s->relay_ok = sl_listener_may_relay(l, (const struct sockaddr *)&s->peer);
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &term, NULL); /* SIGTERM may now end a wait for the client */
    smtpd_session(s);
    sigprocmask(SIG_BLOCK, &term, NULL);
    io_close(&s->io);
    smtpd_board_leave(s->ctx->board);
    smtpd_txn_reset(&s->t);
    free(s->auth_user);
}

/* sl_smtpd_main - accept and serve until SIGTERM; never returns */
void sl_smtpd_main(const struct sl_smtpd_ctx *ctx)
{
    const struct sl_listener *l = &ctx->cfg->listeners[ctx->listener];
    const struct sl_scope_ref none = {0};
    struct session *s = sl_calloc(1, sizeof *s);
    sigset_t wait;
    int lfd, ep, fd;

    setup(ctx, &lfd, &wait);
    ep = accept_waiter(lfd);
    s->ctx = ctx;
    s->l = l;
    s->hostname = host_name(ctx, l);
    s->tls = ctx->prep->tls;
    s->creds = ctx->prep->creds;
    s->max_size = (uint64_t)sl_config_num(ctx->cfg, SL_OPT_MAX_MESSAGE_SIZE, &none);
    smtpd_board_ready(ctx->board,
                      ctx->stat); /* ready: killed from now on, we are replaced at once */
    while ((fd = next_client(lfd, ep, &wait, &s->peer)) >= 0) {
        memset(&s->t, 0, sizeof s->t); /* a fresh session; the listener's settings stay */
        s->helo[0] = '\0';
        s->auth_user = NULL;
        s->errors = s->junk = 0;
        s->tls_on = s->esmtp = false;
        serve(s, fd);
    }
    _exit(0);
}
