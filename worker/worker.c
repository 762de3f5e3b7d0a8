/*
 * worker.c - the worker process: wait for the master's jobs, one at a time.
 *
 * A worker is forked by the master with the config and the counter table
 * already mapped; it owns one owner record in the table (its holds) and one
 * end of a SOCK_SEQPACKET socketpair.  SIGALRM and SIGTERM stay blocked except
 * inside ppoll(): a handler can then never run between a counter change and its
 * ownership record (architecture I2), and per-phase alarms surface as EINTR at
 * the one place a session waits for its peer.  The handlers only set flags.
 * Between jobs it also reopens the delivery log when the master says so
 * (logrotate's SIGUSR1, forwarded as SL_WMSG_LOG).
 * Trust boundary: messages on the socketpair come from our own master.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>
#include <bsd/unistd.h>

#include "util/sl_clock.h"
#include "util/sl_msg.h"
#include "worker/sl_worker.h"
#include "worker_impl.h"

#define LEASE_CHECK_MS 500 /* how often an idle connection under cluster leases is checked */

static volatile sig_atomic_t stop_requested; /* SIGTERM: finish the job, then exit */
static volatile sig_atomic_t alarmed;        /* SIGALRM: the session's phase timer fired */

/* on_signal - set the flag; the interrupted ppoll does the rest */
static void on_signal(int signo)
{
    if (signo == SIGTERM)
        stop_requested = 1;
    else if (signo == SIGALRM)
        alarmed = 1;
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
    /* logrotate's SIGUSR1 may reach the whole group (systemctl kill): the master
     * alone acts on it and tells each worker on its socket (SL_WMSG_LOG). */
    signal(SIGUSR1, SIG_IGN);
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

/* say - one short message to the master */
static void say(int fd, const char *msg)
{
    if (send(fd, msg, strlen(msg), MSG_NOSIGNAL) < 0)
        sl_msg_debug("master gone: %s", strerror(errno));
}

/* hold_done - the held connection ended: release it, tell the master */
static void hold_done(struct sl_wstate *w, bool polite)
{
    sl_conn_close(w, polite);
    say(w->fd, "I");
}

/* after_job - tell the master whether the connection stays open for more */
static void after_job(struct sl_wstate *w, struct timespec *idle_until)
{
    char msg[800];

    if (!w->conn.open) {
        say(w->fd, "I");
        return;
    }
    snprintf(msg, sizeof msg, "%c %s %s %s", SL_WMSG_KEEP, w->conn.binding, w->conn.domain,
             w->conn.mx);
    say(w->fd, msg);
    *idle_until = sl_clock_after_ms(w->conn.idle_ms);
}

#define UNSAVED_RETRY_MS 1000 /* how often a state the disk refused is tried again */

/* wait_for_job - ppoll the master's socket (and the held connection) until a
 * message, the end of the idle time or a signal; true when a message waits */
static bool wait_for_job(struct sl_wstate *w, struct timespec idle_until)
{
    struct pollfd p[2] = {{.fd = w->fd, .events = POLLIN}, {.fd = -1}};
    struct timespec span, *timeout = NULL;

    if (sl_unsaved_pending()) { /* a full disk kept states from the spool: try again */
        sl_unsaved_retry(w);
        span = sl_clock_span(UNSAVED_RETRY_MS);
        timeout = sl_unsaved_pending() ? &span : NULL;
    }
    if (w->conn.open) {
        long left = sl_clock_ms_until(idle_until);
        if (left == 0 || !sl_worker_lease_valid(w)) {
            hold_done(w, true); /* idle_timeout (or its cluster lease is gone) */
            return false;
        }
        if (left > LEASE_CHECK_MS && sl_cluster_heritage()->p.enabled)
            left = LEASE_CHECK_MS; /* an idle connection whose lease is lost must not stay */
        p[1] = (struct pollfd){.fd = w->conn.s.fd, .events = POLLIN};
        if (timeout != NULL && left > UNSAVED_RETRY_MS)
            left = UNSAVED_RETRY_MS;
        span = sl_clock_span(left);
        timeout = &span;
    }
    int r = ppoll(p, 2, timeout, &w->wait_mask);
    if (r < 0 && errno != EINTR)
        sl_msg_fatal("ppoll: %s", strerror(errno));
    if (r > 0 && p[1].revents != 0 && !sl_smtp_alive(&w->conn.s)) {
        hold_done(w, false); /* the peer closed the idle connection */
        return false;
    }
    return r > 0 && p[0].revents != 0;
}

/* run_message - one message from the master; false when the worker should exit */
static bool run_message(struct sl_wstate *w, char *buf, size_t len, struct timespec *idle_until)
{
    struct sl_scope_ref none = {0};
    ssize_t n = recv(w->fd, buf, len - 1, 0);

    if (n <= 0 || buf[0] == SL_WMSG_QUIT)
        return false; /* the master closed our socket or asked us to go */
    buf[n] = '\0';
    if (buf[0] == SL_WMSG_LOG) { /* between jobs: no line is half written */
        sl_dlog_reopen(&w->dlog, sl_config_str(w->ctx->cfg, SL_OPT_DELIVERY_LOG, &none));
        return true;
    }
    if (buf[0] != SL_WMSG_JOB) {
        sl_msg_warn("unknown message type 0x%02x from the master", (unsigned char)buf[0]);
        return true;
    }
    if (strncmp(strchr(buf, ' ') ? strchr(buf, ' ') : "", " D ", 3) == 0) {
        sl_worker_deliver(w, buf);
        sl_worker_close_spent(w);
        after_job(w, idle_until);
    } else {
        sl_conn_close(w, true); /* a probe's "I" must mean what it says */
        sl_worker_probe(w, buf);
    }
    return true;
}

/* sl_worker_lat - binding's latency entry, looked up once per binding in a row */
int sl_worker_lat(struct sl_wstate *w, const char *binding)
{
    if (w->lat_binding[0] == '\0' || strcmp(w->lat_binding, binding) != 0) {
        w->lat = sl_lat_entry(w->ctx->shm, binding);
        strlcpy(w->lat_binding, binding, sizeof w->lat_binding);
    }
    return w->lat;
}

/* init_state - the worker's process state */
static void init_state(struct sl_wstate *w, int fd, uint32_t owner, const struct sl_worker_ctx *ctx)
{
    struct sl_scope_ref none = {0};

    memset(w, 0, sizeof *w);
    w->fd = fd;
    w->owner = owner;
    w->ctx = ctx;
    w->stop = &stop_requested;
    w->alarmed = &alarmed;
    w->conn.s.fd = -1;
    w->tls.cfg = ctx->cfg;
    w->dlog = sl_dlog_open(sl_config_str(ctx->cfg, SL_OPT_DELIVERY_LOG, &none));
    if (gethostname(w->hostname, sizeof w->hostname - 1) < 0)
        strlcpy(w->hostname, "localhost", sizeof w->hostname);
}

/* sl_worker_main - the worker's life: hello, then jobs until QUIT, SIGTERM or EOF */
void sl_worker_main(int fd, uint32_t owner, void *vctx)
{
    struct sl_wstate w;
    struct sl_worker_ctx *ctx = vctx;
    struct timespec idle_until = {0};
    char *buf = sl_malloc(SL_JOB_MAX + 1);
    char title[64];

    if (fd != 3) {
        if (dup2(fd, 3) < 0)
            _exit(71);
        fd = 3;
    }
    sl_msg_close_from(4); /* the master's pipes and the other workers' sockets */
    snprintf(title, sizeof title, "worker %u", owner);
    sl_msg_init(title);
    sl_msg_never_block(); /* a session never waits for stderr's reader */
    setproctitle("-sluiced: worker (owner %u, config generation %u)", owner, (unsigned)ctx->gen);
    init_state(&w, fd, owner, ctx);
    setup_signals(&w.wait_mask);
    /* A master that dies (kill -9) must not leave a worker delivering beside the next master,
     * which rescans the spool and hands the same parts out again: the worker dies with it, at
     * once, so a master's death costs at most the one message per session whose 250 was in
     * and not yet recorded, as a worker's death does.  Its counters die with the segment. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != (pid_t)ctx->shm->hdr->master_pid)
        _exit(0); /* the master died before the line above */
    say_hello(fd);

    while (!stop_requested) {
        if (wait_for_job(&w, idle_until) && !run_message(&w, buf, SL_JOB_MAX + 1, &idle_until))
            break;
    }
    sl_conn_close(&w, true);
    if (sl_unsaved_pending())
        sl_unsaved_retry(&w); /* a last chance; what still fails, the master's count covers */
    _exit(0);
}
