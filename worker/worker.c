/*
 * worker.c - the worker process: wait for the master's jobs, one at a time.
 *
 * A worker is forked by the master with the config and the counter table
 * already mapped; it owns one owner record in the table (its holds) and one
 * end of a SOCK_SEQPACKET socketpair.  SIGALRM and SIGTERM stay blocked except
 * inside ppoll(): a handler can then never run between a counter change and its
 * ownership record (architecture I2), and per-phase alarms surface as EINTR at
 * the one place a session waits for its peer.  The handlers only set flags.
 * Trust boundary: messages on the socketpair come from our own master.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/unistd.h>

#include "sl_msg.h"
#include "sl_worker.h"

static volatile sig_atomic_t stop_requested;

/* on_signal - SIGTERM asks to stop.  SIGALRM needs no flag: its only effect is to interrupt the
 * ppoll a session waits in (EINTR), which is how a phase's alarm() ends that phase. */
static void on_signal(int signo)
{
    if (signo == SIGTERM)
        stop_requested = 1;
}

/* setup_signals - handlers without SA_RESTART, both signals blocked outside ppoll */
static void setup_signals(sigset_t *wait_mask)
{
    struct sigaction sa;
    sigset_t block;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGHUP, SIG_IGN); /* the master reloads; workers are replaced */
    signal(SIGINT, SIG_IGN); /* a terminal's ^C goes to the master, which stops us */
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGALRM);
    sigprocmask(SIG_BLOCK, &block, wait_mask);
    sigdelset(wait_mask, SIGTERM);
    sigdelset(wait_mask, SIGALRM);
}

/* say_hello - tell the master this worker is up */
static void say_hello(int fd)
{
    char msg[32];
    int n = snprintf(msg, sizeof msg, "%c%ld", SL_WMSG_HELLO, (long)getpid());
    if (send(fd, msg, (size_t)n, MSG_NOSIGNAL) < 0)
        _exit(0); /* the master is gone */
}

/* sl_worker_main - the worker's life: hello, then jobs until QUIT, SIGTERM or EOF */
void sl_worker_main(int fd, uint32_t owner, void *vctx)
{
    struct sl_worker_ctx *ctx = vctx;
    sigset_t wait_mask;
    char buf[1100];
    char title[64];

    if (fd != 3) {
        if (dup2(fd, 3) < 0)
            _exit(71);
        fd = 3;
    }
    close_range(4, ~0U, 0); /* the master's pipes and the other workers' sockets */
    snprintf(title, sizeof title, "worker %u", owner);
    sl_msg_init(title);
    setproctitle("-sluiced: worker (owner %u, config generation %u)", owner, (unsigned)ctx->gen);
    setup_signals(&wait_mask);
    say_hello(fd);

    while (!stop_requested) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = ppoll(&p, 1, NULL, &wait_mask);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            sl_msg_fatal("ppoll: %s", strerror(errno));
        }
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0 || buf[0] == SL_WMSG_QUIT)
            break; /* the master closed our socket or asked us to go */
        buf[n < (ssize_t)sizeof buf ? n : (ssize_t)sizeof buf - 1] = '\0';
        if (buf[0] == SL_WMSG_JOB) {
            sl_worker_probe(fd, owner, ctx, buf, &wait_mask, &stop_requested);
            continue;
        }
        sl_msg_warn("unknown job type 0x%02x from the master", (unsigned char)buf[0]);
    }
    _exit(0);
}
