/*
 * sluiced.c - the master process: config, counter table, workers, main loop.
 *
 * sluiced -c FILE validates the config (every error as FILE:LINE, exit 1),
 * creates the shared-memory counter table, forks the prefork workers and
 * tells systemd it is ready once every worker said hello.  It rebuilds the
 * queue index from the spool, then runs one loop: hand ready mail to free
 * workers, wait (one epoll set) on the self-pipe (signals), the control socket and the
 * workers' sockets, and in order stop on SIGTERM/SIGINT, reap and reclaim on SIGCHLD,
 * reload on SIGHUP, release deferred mail whose time came, rescan the spool
 * (safety net), refill the worker pool, and run the periodic audit of the
 * counter table.  SIGTERM drains: no new jobs, each worker finishes the one it
 * has, then exits.  SIGUSR1 (logrotate) makes every worker reopen the delivery
 * log.  Under systemd the loop pings the watchdog and keeps STATUS= current.
 * Started as root with `user`, the master drops to that user once the segment,
 * the spool and the control socket are open, before the first worker forks.
 * Global state: none beyond main's locals and the signal flags of signals.c.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <bsd/unistd.h>

#include "util/sl_clock.h"
#include "config/sl_config.h"
#include "master/sl_control_socket.h"
#include "master/sl_listeners.h"
#include "config/sl_limits.h"
#include "master/sl_notify.h"
#include "master/sl_pickup.h"
#include "master/sl_cluster_node.h"
#include "master/sl_pidfile.h"
#include "spool/sl_spool_lock.h"
#include "master/sl_privileges.h"
#include "master/sl_queue_ops.h"
#include "master/sl_schedule.h"
#include "master/sl_signals.h"
#include "master/sl_supervise.h"
#include "util/sl_msg.h"
#include "util/sl_version.h"
#include "shm/sl_shm.h"
#include "worker/sl_worker.h"

#define DEFAULT_CONFIG  "/etc/sluice/sluice.ini"
#define OWNER_RECORDS   2100 /* 2 x the workers maximum (old and new during a reload), + spare */
#define STOP_SLACK_MS   5000 /* added to the longest session phase timeout for the drain */
#define STOP_AFTER_MS   1000 /* SIGTERM to SIGKILL for what the drain left */
#define MAX_EVENTS      256  /* epoll events taken per wait (the rest come at the next) */
#define EV_SIGNAL       UINT64_MAX       /* the signal pipe's event data */
#define EV_CONTROL      (UINT64_MAX - 1) /* the control socket's; a worker's: sl_supervise_event */
#define STATUS_EVERY_MS 1000 /* STATUS= is refreshed this often (sent only when it changed) */
#define NOTIFY_RETRY_MS 100  /* a READY or STOPPING the notify socket refused is sent again */

extern char **environ;

/* The counter table of a start that has not reached its loop: a fatal error there (a port in
 * use, an unreadable spool, a bad user) exits through unlink_unstarted, which removes it, so a
 * failed start leaves nothing in /dev/shm.  Only the master that created it does (its forked
 * children inherit the handler); from the loop on, the table is the running daemon's. */
static struct {
    pid_t pid;         /* the master's while the start runs, else 0 */
    struct sl_shm shm; /* its name and identity: a name another start took since stays */
} unstarted;

/* Everything the loop works on. */
struct master {
    const char *path;
    struct sl_config *cfg;
    struct sl_shm shm;
    struct sl_supervisor sup;
    struct sl_worker_ctx wctx; /* what the next forked worker inherits */
    int ctlfd;                 /* the control socket, -1 when it could not be opened */
    int epfd;                  /* what the loop waits on: signals, ctlfd, the workers' sockets */
    char *spool;               /* spool_dir as it was at start (a reload cannot move it) */
    uint32_t gen;
    bool announced; /* READY=1 sent for the current generation */
    struct timespec next_audit;
    unsigned table_told;         /* the counter table's fill (in %) the master last warned of */
    struct timespec next_rescan; /* the spool scan that catches a lost notification */
    struct timespec next_status; /* the next look at the STATUS= line */
    char status[256];            /* the STATUS= line systemd has */
    struct sl_watchdog wd;       /* WatchdogSec=: pinged from poll_once */
    struct sl_sched sched;       /* the queue index and the jobs in flight */
    struct sl_listeners lsn;     /* the SMTP listener processes (none without a section) */
};

/* print_diag - every config error on its own line */
static void print_diag(const struct sl_diag *d, bool as_warning)
{
    for (size_t i = 0; i < d->n; i++) {
        if (as_warning)
            sl_msg_warn("reload refused: %s", d->lines[i]);
        else
            fprintf(stderr, "%s\n", d->lines[i]);
    }
}

/* num - a global engine setting */
static int64_t num(const struct sl_config *cfg, enum sl_opt opt)
{
    struct sl_scope_ref none = {0};
    return sl_config_num(cfg, opt, &none);
}

/* str - a global engine setting, as a string */
static const char *str(const struct sl_config *cfg, enum sl_opt opt)
{
    struct sl_scope_ref none = {0};
    return sl_config_str(cfg, opt, &none);
}

/* apply_log_level - log_level from the config (debug, info, warning) */
static void apply_log_level(const struct sl_config *cfg)
{
    static const enum sl_msg_level levels[] = {SL_MSG_DEBUG, SL_MSG_INFO, SL_MSG_WARN};
    int64_t i = num(cfg, SL_OPT_LOG_LEVEL);
    sl_msg_set_level(i >= 0 && i < 3 ? levels[i] : SL_MSG_INFO);
}

/* schedule_audit - the next periodic audit, audit_interval from now */
static void schedule_audit(struct master *m)
{
    m->next_audit = sl_clock_after_ms((long)num(m->cfg, SL_OPT_AUDIT_INTERVAL));
}

/* status_line - one line for systemd's status and the log */
static void status_line(const struct master *m, char *buf, size_t len)
{
    struct sl_counter_view server = {0};
    uint32_t slot;

    if (sl_shm_find(&m->shm, SL_SCOPE_SERVER, "", NULL, &slot) == SL_SHM_OK)
        sl_shm_view(&m->shm, slot, &server);
    snprintf(buf, len,
             "%u workers, config generation %u, %llu counters, %zu messages queued, "
             "%u connections open",
             m->sup.want, m->gen, (unsigned long long)sl_load64(&m->shm.hdr->live_slots),
             sl_queue_messages(m->sched.q), server.in_use);
}

/* warn_table_fill - a warning as the counter table passes 75 % and 90 %: a slot, once
 * taken by a destination (binding x domain, a limited host, a throttle action), is kept
 * until the daemon starts again, and a full table defers mail to every new destination */
static void warn_table_fill(struct master *m)
{
    uint64_t used = sl_load64(&m->shm.hdr->live_slots), cap = m->shm.hdr->slot_capacity;
    unsigned pct = (unsigned)(used * 100 / cap), mark = pct >= 90 ? 90 : pct >= 75 ? 75 : 0;

    if (mark <= m->table_told)
        return;
    m->table_told = mark;
    sl_msg_warn("counter table %llu of %llu slots used (%u%%): each destination seen since the "
                "start keeps its slot until a restart, and mail to new ones is deferred once "
                "the table is full: raise shm_capacity and restart",
                (unsigned long long)used, (unsigned long long)cap, pct);
}

/* run_audit - correct counts that disagree with the live holds */
static void run_audit(struct master *m)
{
    struct sl_audit_stats st = {0};

    sl_shm_audit(&m->shm, &st);
    if (st.corrected > 0)
        sl_msg_warn("audit corrected %u of %u counters", st.corrected, st.checked);
    warn_table_fill(m);
    schedule_audit(m);
}

/* refresh_status - `systemctl status` follows the queue and the connections */
static void refresh_status(struct master *m)
{
    char status[sizeof m->status];

    if (sl_clock_ms_until(m->next_status) > 0)
        return;
    m->next_status = sl_clock_after_ms(STATUS_EVERY_MS);
    status_line(m, status, sizeof status);
    if (strcmp(status, m->status) == 0)
        return; /* unchanged: spare systemd a message a second */
    memcpy(m->status, status, sizeof status);
    sl_notify_status(status);
}

/* maybe_announce - READY=1 once every current worker said hello */
static void maybe_announce(struct master *m)
{
    char status[256];

    if (m->announced || sl_supervise_ready(&m->sup, m->gen) < m->sup.want)
        return;
    m->announced = true;
    status_line(m, status, sizeof status);
    sl_notify_ready(status);
    memcpy(m->status, status, sizeof status);
    sl_msg_info("ready: %s", status);
}

/* same_str - two optional settings are equal (both unset counts as equal) */
static bool same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* refuse - the reload is refused (why: one line, or NULL when the errors were logged) */
static void refuse(struct master *m, const char *why)
{
    sl_msg_warn("reload of %s refused: %s%sthe running config (generation %u) stays", m->path,
                why != NULL ? why : "", why != NULL ? "; " : "", m->gen);
    m->announced = false;
    maybe_announce(m);
}

/* reload - read the file again; a valid one replaces the config, a bad one is refused, as is
 * one whose delivery log this (dropped) process cannot append to, the same check as at start */
static void reload(struct master *m)
{
    struct sl_diag d = {0};
    struct sl_config *next;
    char err[512];

    sl_notify_reloading();
    next = sl_config_load(m->path, &d);
    if (next == NULL) {
        print_diag(&d, true);
        sl_diag_free(&d);
        refuse(m, NULL);
        return;
    }
    if (!sl_privileges_check_log(str(next, SL_OPT_DELIVERY_LOG), err, sizeof err)) {
        sl_config_free(next);
        refuse(m, err);
        return;
    }
    if (strcmp(str(next, SL_OPT_SHM_NAME), str(m->cfg, SL_OPT_SHM_NAME)) != 0 ||
        num(next, SL_OPT_SHM_CAPACITY) != num(m->cfg, SL_OPT_SHM_CAPACITY) ||
        strcmp(str(next, SL_OPT_SPOOL_DIR), str(m->cfg, SL_OPT_SPOOL_DIR)) != 0 ||
        !same_str(str(next, SL_OPT_USER), str(m->cfg, SL_OPT_USER)))
        sl_msg_warn("shm_name, shm_capacity, spool_dir and user take effect at the next restart");
    m->gen = (uint32_t)sl_add64(&m->shm.hdr->config_gen, 1) + 1;
    sl_limits_refresh(next, &m->shm, m->gen);
    sl_master_cluster_reload(next);
    sl_sched_limits_changed(&m->sched);
    sl_config_free(m->cfg);
    m->cfg = next;
    apply_log_level(m->cfg);
    m->wctx.cfg = m->cfg;
    m->wctx.gen = m->gen;
    m->sup.want = (unsigned)num(m->cfg, SL_OPT_WORKERS);
    sl_supervise_retire(&m->sup, m->gen);
    sl_listeners_reload(&m->lsn, m->cfg, m->gen);
    m->announced = false;
    sl_msg_info("reloaded %s: config generation %u", m->path, m->gen);
}

/* min_wait - the sooner of two wait timeouts, where -1 means none */
static int min_wait(int a, long b)
{
    if (b < 0)
        return a;
    if (b > INT_MAX)
        b = INT_MAX;
    return a < 0 || b < a ? (int)b : a;
}

/* loop_timeout - until the next timer of the loop that waits: the watchdog, a notification
 * to send again; then the main loop's own (audit, status, spawn,
 * deferred mail, rescan), or the drain's end (until).  The drain runs none of the main loop's
 * timers: counting one of them, once due, would make its every wait 0, and the master spin
 * through a grace that can last minutes. */
static int loop_timeout(const struct master *m, const struct timespec *until)
{
    int timeout = min_wait(-1, sl_notify_watchdog_wait_ms(&m->wd));

    if (sl_signals_pending()) /* raised after the pipe was emptied, or left by the last pass */
        return 0;
    if (!sl_notify_flush()) /* a change of state the notify socket could not take yet */
        timeout = min_wait(timeout, NOTIFY_RETRY_MS);
    if (until != NULL)
        return min_wait(timeout, sl_clock_ms_until(*until));
    timeout = min_wait(timeout, sl_clock_ms_until(m->next_audit));
    timeout = min_wait(timeout, sl_clock_ms_until(m->next_status));
    timeout = min_wait(timeout, sl_supervise_wait_ms(&m->sup, m->gen));
    timeout = min_wait(timeout, sl_listeners_wait_ms(&m->lsn));
    timeout = min_wait(timeout, sl_sched_wait_ms(&m->sched));
    timeout = min_wait(timeout, sl_clock_ms_until(m->next_rescan));
    return timeout;
}

/* from_worker - every message waiting on one worker's socket */
static void from_worker(struct master *m, unsigned w)
{
    char msg[SL_JOB_MAX + 64];
    ssize_t len;

    while ((len = sl_supervise_read(&m->sup, w, msg, sizeof msg)) >= 0) {
        if (len == 0)
            continue; /* hello, handled by the supervisor */
        if (msg[0] == 'R')
            sl_control_from_worker(m->ctlfd, &m->sup, w, msg, (size_t)len);
        else
            sl_sched_from_worker(&m->sched, &m->sup, w, msg, (size_t)len);
    }
}

/* poll_once - wait for a signal, a request, a worker message or the next timer (or until) */
static void poll_once(struct master *m, const struct timespec *until)
{
    struct epoll_event ev[MAX_EVENTS];
    bool control = false;
    unsigned w;
    int n = epoll_wait(m->epfd, ev, MAX_EVENTS, loop_timeout(m, until));

    if (n < 0 && errno != EINTR)
        sl_msg_fatal("epoll_wait: %s", strerror(errno));
    sl_signals_woken();              /* the flags are taken after this */
    sl_notify_watchdog_tick(&m->wd); /* every turn of the loop passes here, draining too */
    sl_notify_flush();
    for (int i = 0; i < n; i++)
        if (ev[i].data.u64 == EV_CONTROL)
            control = true;
        else if (sl_supervise_event(&m->sup, ev[i].data.u64, &w))
            from_worker(m, w);
    if (control)
        sl_control_accept(m->ctlfd, &m->sup, m->gen, &m->sched, m->lsn.lockout);
}

/* open_events - the loop's epoll set with the signal pipe and the control socket; the
 * supervisor adds each worker's socket */
static void open_events(struct master *m, int sigfd)
{
    struct epoll_event sig = {.events = EPOLLIN, .data.u64 = EV_SIGNAL};
    struct epoll_event ctl = {.events = EPOLLIN, .data.u64 = EV_CONTROL};

    if ((m->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        epoll_ctl(m->epfd, EPOLL_CTL_ADD, sigfd, &sig) < 0 ||
        (m->ctlfd >= 0 && epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->ctlfd, &ctl) < 0))
        sl_msg_fatal("cannot set up the main loop's epoll: %s", strerror(errno));
    m->sup.epfd = m->epfd;
}

/* rescan - the safety net: queued ids the index lacks, a batch per loop pass, starting
 * SL_PICKUP_RESCAN_MS after the last one ended */
static void rescan(struct master *m)
{
    if (m->sched.rescan == NULL && sl_clock_ms_until(m->next_rescan) > 0)
        return;
    if (!sl_pickup_rescan_step(&m->sched, SL_PICKUP_RESCAN_BATCH))
        m->next_rescan = sl_clock_after_ms(SL_PICKUP_RESCAN_MS);
}

/* reopen_log - SIGUSR1: the workers write the delivery log; each reopens it between jobs */
static void reopen_log(struct master *m)
{
    unsigned told = sl_supervise_reopen_log(&m->sup);
    sl_msg_info("delivery log %s: reopened by %u workers", str(m->cfg, SL_OPT_DELIVERY_LOG), told);
}

/* listener_exit - a reaped child the worker supervisor does not know; a message a listener
 * process had queued but not announced is taken up here */
static void listener_exit(pid_t pid, int status, void *ctx)
{
    struct master *m = ctx;
    char queued[SL_SPOOL_ID_LEN + 1];

    if (!sl_listeners_reaped(&m->lsn, pid, status, queued))
        return;
    sl_listeners_publish(&m->lsn, true); /* its session, if it had one, is over */
    if (queued[0] != '\0')
        sl_pickup_new(&m->sched, queued);
}

/* serve - the main loop, until SIGTERM or SIGINT */
static void serve(struct master *m)
{
    for (;;) {
        sl_master_cluster_adopt(); /* a reload's Redis address, before the next fork */
        sl_supervise_fill(&m->sup, &m->shm, m->gen, sl_worker_main, &m->wctx);
        sl_listeners_fill(&m->lsn);
        maybe_announce(m);
        sl_queue_ops_settle(&m->sched); /* commands that waited for an attempt in flight */
        sl_sched_dispatch(&m->sched, &m->sup, m->cfg, &m->shm, m->gen);
        poll_once(m, NULL);
        if (sl_signals_take(SL_SIG_STOP))
            return;
        if (sl_signals_take(SL_SIG_CHILD))
            sl_supervise_reap(&m->sup, &m->shm);
        if (sl_signals_take(SL_SIG_RELOAD))
            reload(m);
        if (sl_signals_take(SL_SIG_REOPEN))
            reopen_log(m);
        sl_sched_tick(&m->sched);
        rescan(m);
        if ((int)sl_clock_ms_until(m->next_audit) == 0)
            run_audit(m);
        refresh_status(m);
        sl_listeners_publish(&m->lsn, false);
        sl_listeners_end_overdue(&m->lsn);
    }
}

/* stop_grace_ms - how long a session may still run: the longest phase timeout, plus slack */
static int stop_grace_ms(const struct sl_config *cfg)
{
    static const enum sl_opt phases[] = {SL_OPT_CONNECT_TIMEOUT, SL_OPT_GREETING_TIMEOUT,
                                         SL_OPT_EHLO_TIMEOUT,    SL_OPT_MAIL_FROM_TIMEOUT,
                                         SL_OPT_RCPT_TO_TIMEOUT, SL_OPT_DATA_TIMEOUT};
    int64_t longest = 0;

    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++)
        if (num(cfg, phases[i]) > longest)
            longest = num(cfg, phases[i]);
    longest += STOP_SLACK_MS;
    return longest > INT_MAX ? INT_MAX : (int)longest;
}

/* drain - SIGTERM: no new job; each worker finishes its job and exits (a second SIGTERM or
 * the grace ends the wait); then whatever is left is stopped */
static void drain(struct master *m)
{
    int grace = stop_grace_ms(m->cfg);
    struct timespec deadline;

    if (m->lsn.np > 0 && sl_listeners_grace_ms(&m->lsn) > grace)
        grace = sl_listeners_grace_ms(&m->lsn);
    deadline = sl_clock_after_ms(grace);
    m->sched.draining = true;
    sl_pickup_stop_readahead(&m->sched);
    sl_listeners_drain(&m->lsn);
    sl_supervise_drain(&m->sup);
    sl_msg_info("stopping: %u workers finish their jobs (at most %d ms)",
                sl_supervise_alive(&m->sup), grace);
    while (sl_supervise_alive(&m->sup) + sl_listeners_alive(&m->lsn) > 0 &&
           sl_clock_ms_until(deadline) > 0) {
        poll_once(m, &deadline);
        sl_queue_ops_settle(&m->sched); /* a hold asked for during the last attempt is kept */
        if (sl_signals_take(SL_SIG_STOP))
            break;
        if (sl_signals_take(SL_SIG_CHILD))
            sl_supervise_reap(&m->sup, &m->shm);
        if (sl_signals_take(SL_SIG_REOPEN))
            reopen_log(m);                  /* the last jobs' lines go to the new file too */
        if (sl_signals_take(SL_SIG_RELOAD)) /* taken, or its byte would keep the loop awake */
            sl_msg_info("SIGHUP ignored: the daemon is stopping");
        /* the sessions still running keep their cluster leases: the cluster's thread renews
         * them until sl_master_cluster_stop */
    }
    sl_listeners_stop(&m->lsn);
    sl_supervise_stop(&m->sup, &m->shm, STOP_AFTER_MS);
    sl_queue_ops_settle(&m->sched); /* parts of workers stopped mid-attempt */
}

/* unlink_unstarted - at exit: the counter table of a start that did not reach its loop */
static void unlink_unstarted(void)
{
    if (unstarted.pid != 0 && unstarted.pid == getpid())
        sl_shm_unlink_own(&unstarted.shm);
}

/* open_table - create the counter table the config names, and publish its limits */
static void open_table(struct master *m)
{
    struct sl_shm_params p = {.slot_capacity = (uint32_t)num(m->cfg, SL_OPT_SHM_CAPACITY),
                              .owner_capacity = OWNER_RECORDS};
    uint32_t self;
    char err[256];

    if (sl_shm_create(str(m->cfg, SL_OPT_SHM_NAME), &p, &m->shm, err, sizeof err) < 0)
        sl_msg_fatal("%s", err);
    unstarted.pid = getpid(); /* from here, a fatal start removes it */
    unstarted.shm = m->shm;
    atexit(unlink_unstarted);
    if (sl_shm_owner_claim(&m->shm, getpid(), &self) < 0)
        sl_msg_fatal("no owner record for the master in %s", m->shm.name);
    m->gen = (uint32_t)sl_add64(&m->shm.hdr->config_gen, 1) + 1;
    sl_limits_publish(m->cfg, &m->shm, m->gen);
}

static const struct option long_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* usage - the command line; with status 0 (--help) on standard output, with what it does */
static _Noreturn void usage(int status)
{
    FILE *f = status ? stderr : stdout;

    fprintf(f, "usage: sluiced [-c CONFIG] [-d] | --help | --version\n"
               "  -c CONFIG   the INI file (default " DEFAULT_CONFIG ")\n"
               "  -d          log at debug level\n"
               "  --help      this text\n"
               "  --version   the version\n");
    if (status == 0)
        fprintf(f,
                "\nThe delivery daemon: a master and prefork workers, in the foreground (systemd\n"
                "Type=notify).  SIGHUP re-reads CONFIG; SIGTERM or SIGINT drains and exits 0;\n"
                "SIGUSR1 reopens the delivery log.  See sluiced(8) and sluice.ini(5).\n");
    exit(status);
}

int main(int argc, char **argv)
{
    struct master m = {.path = DEFAULT_CONFIG};
    struct sl_privileges priv;
    struct sl_diag d = {0};
    bool debug = false;
    char err[512];
    int opt, sigfd, spool_lock;

    setproctitle_init(argc, argv, environ);
    sl_msg_init("sluiced");
    while ((opt = getopt_long(argc, argv, "c:dh", long_options, NULL)) != -1) {
        if (opt == 'c')
            m.path = optarg;
        else if (opt == 'd')
            debug = true;
        else if (opt == 'V') {
            printf("sluiced %s\n", SL_VERSION);
            return 0;
        } else
            usage(opt == 'h' ? 0 : 2);
    }
    if (optind != argc)
        usage(2);
    m.cfg = sl_config_load(m.path, &d);
    if (m.cfg == NULL) {
        print_diag(&d, false);
        sl_diag_free(&d);
        return 1;
    }
    apply_log_level(m.cfg);
    if (debug)
        sl_msg_set_level(SL_MSG_DEBUG);
    sl_privileges_plan(str(m.cfg, SL_OPT_USER), &priv); /* fatal before anything exists */
    sl_msg_never_block(); /* the loop never waits for the journal, nor for a pipe's reader */
    sigfd = sl_signals_install();
    m.spool = sl_strdup(str(m.cfg, SL_OPT_SPOOL_DIR));
    /* The lock first: a second daemon on this spool stops here, before it makes a counter
     * table (which a daemon starting beside it would find in use) or takes the running one's
     * control socket; a command sent while this one waits for a sluicectl is answered by that
     * sluicectl's wait for the socket. */
    if ((spool_lock = sl_spool_lock_daemon(m.spool, err, sizeof err)) == SL_SPOOL_LOCK_BUSY)
        sl_msg_fatal("%s", err);
    if (spool_lock < 0)
        sl_msg_warn("%s: sluicectl cannot tell that the daemon holds the spool", err);
    open_table(&m);
    sl_master_cluster_start(m.cfg, &m.shm);
    m.wctx = (struct sl_worker_ctx){.cfg = m.cfg, .shm = &m.shm, .gen = m.gen, .spool = m.spool};
    m.ctlfd = sl_control_open(m.spool);
    sl_sched_init(&m.sched, m.spool); /* reads the shaping actions: under the lock */
    sl_queue_ops_init(&m.wctx);
    sl_listeners_open(&m.lsn, m.cfg, m.spool, &m.shm, m.gen); /* ports below 1024 before the drop */
    sl_privileges_hand_over(&priv, m.shm.name, m.spool, str(m.cfg, SL_OPT_DELIVERY_LOG));
    sl_privileges_drop(&priv); /* before the first fork: workers are never root */
    if (!sl_privileges_check_log(str(m.cfg, SL_OPT_DELIVERY_LOG), err, sizeof err)) {
        sl_control_close(m.ctlfd, m.spool); /* nothing of this start is left behind */
        sl_msg_fatal("%s", err);
    }
    /* The start scan sweeps tmp/ and sets misfits aside into corrupt/: as the user, whose
     * spool it is, so that nothing planted there (corrupt/ a symbolic link to a directory of
     * root's) makes it move or remove another file. */
    sl_msg_info("spool %s: %zu messages queued", m.spool, sl_pickup_start(&m.sched));
    sl_pidfile_write(m.spool); /* for sluicectl status and reload */
    sl_supervise_init(&m.sup, (unsigned)num(m.cfg, SL_OPT_WORKERS));
    m.sup.on_exit = sl_sched_worker_exit;
    m.sup.on_exit_ctx = &m.sched;
    m.sup.on_other = listener_exit;
    m.sup.on_other_ctx = &m;
    m.sup.spool = m.spool;
    open_events(&m, sigfd);
    schedule_audit(&m);
    m.next_rescan = sl_clock_after_ms(SL_PICKUP_RESCAN_MS);
    m.next_status = sl_clock_after_ms(STATUS_EVERY_MS);
    sl_notify_watchdog_init(&m.wd);
    setproctitle("-sluiced: master (%s)", m.path);
    sl_master_cluster_run(); /* heartbeat and renewals from here on, beside the loop */
    unstarted.pid = 0;
    sl_msg_info("starting: config %s, counter table %s", m.path, m.shm.name);

    serve(&m);

    sl_notify_stopping();
    drain(&m);
    close(m.epfd);
    m.sup.epfd = -1;
    sl_control_close(m.ctlfd, m.spool);
    sl_pidfile_remove(m.spool);
    if (spool_lock >= 0)
        close(spool_lock);
    sl_sched_free(&m.sched);
    sl_queue_ops_free();
    free(m.spool);
    sl_master_cluster_stop();
    sl_shm_unlink(m.shm.name);
    sl_shm_detach(&m.shm);
    sl_config_free(m.cfg);
    sl_msg_info("stopped");
    return 0;
}
