/*
 * sluiced.c - the master process: config, counter table, workers, main loop.
 *
 * sluiced -c FILE validates the config (every error as FILE:LINE, exit 1),
 * creates the shared-memory counter table, forks the prefork workers and
 * tells systemd it is ready once every worker said hello.  Then one loop:
 * poll the self-pipe (signals) and the workers' sockets, and in order stop on
 * SIGTERM/SIGINT, reap and reclaim on SIGCHLD, reload on SIGHUP, refill the
 * worker pool, and run the periodic audit of the counter table.
 * Global state: none beyond main's locals and the signal flags of signals.c.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/unistd.h>

#include "sl_clock.h"
#include "sl_config.h"
#include "sl_control.h"
#include "sl_limits.h"
#include "sl_notify.h"
#include "sl_signals.h"
#include "sl_supervise.h"
#include "sl_msg.h"
#include "sl_shm.h"
#include "sl_worker.h"

#define DEFAULT_CONFIG "/etc/sluice/sluice.ini"
#define OWNER_RECORDS  2100 /* 2 x the workers maximum (old and new during a reload), + spare */
#define STOP_GRACE_MS  10000

extern char **environ;

/* Everything the loop works on. */
struct master {
    const char *path;
    struct sl_config *cfg;
    struct sl_shm shm;
    struct sl_supervisor sup;
    struct sl_worker_ctx wctx; /* what the next forked worker inherits */
    int ctlfd;                 /* the control socket, -1 when it could not be opened */
    char *spool;               /* spool_dir as it was at start (a reload cannot move it) */
    uint32_t gen;
    bool announced; /* READY=1 sent for the current generation */
    struct timespec next_audit;
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
    snprintf(buf, len, "%u workers, config generation %u, %llu counters, %u connections open",
             m->sup.want, m->gen, (unsigned long long)sl_load64(&m->shm.hdr->live_slots),
             server.in_use);
}

/* run_audit - correct counts that disagree with the live holds */
static void run_audit(struct master *m)
{
    struct sl_audit_stats st = {0};
    char status[256];

    sl_shm_audit(&m->shm, &st);
    if (st.corrected > 0)
        sl_msg_warn("audit corrected %u of %u counters", st.corrected, st.checked);
    status_line(m, status, sizeof status);
    sl_notify_status(status); /* `systemctl status` follows the daemon at the audit's pace */
    schedule_audit(m);
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
    sl_msg_info("ready: %s", status);
}

/* reload - read the file again; a valid one replaces the config, a bad one is refused */
static void reload(struct master *m)
{
    struct sl_diag d = {0};
    struct sl_config *next;

    sl_notify_reloading();
    next = sl_config_load(m->path, &d);
    if (next == NULL) {
        print_diag(&d, true);
        sl_diag_free(&d);
        sl_msg_warn("reload of %s refused: the running config (generation %u) stays", m->path,
                    m->gen);
        m->announced = false;
        maybe_announce(m);
        return;
    }
    if (strcmp(str(next, SL_OPT_SHM_NAME), str(m->cfg, SL_OPT_SHM_NAME)) != 0 ||
        num(next, SL_OPT_SHM_CAPACITY) != num(m->cfg, SL_OPT_SHM_CAPACITY) ||
        strcmp(str(next, SL_OPT_SPOOL_DIR), str(m->cfg, SL_OPT_SPOOL_DIR)) != 0)
        sl_msg_warn("shm_name, shm_capacity and spool_dir take effect at the next restart");
    m->gen = (uint32_t)sl_add64(&m->shm.hdr->config_gen, 1) + 1;
    sl_limits_refresh(next, &m->shm, m->gen);
    sl_config_free(m->cfg);
    m->cfg = next;
    apply_log_level(m->cfg);
    m->wctx.cfg = m->cfg;
    m->wctx.gen = m->gen;
    m->sup.want = (unsigned)num(m->cfg, SL_OPT_WORKERS);
    sl_supervise_retire(&m->sup, m->gen);
    m->announced = false;
    sl_msg_info("reloaded %s: config generation %u", m->path, m->gen);
}

/* poll_once - wait for a signal, a request, a worker message or the next timer */
static void poll_once(struct master *m, int sigfd)
{
    struct pollfd p[2 + 2 * 1024 + 64];
    nfds_t n = 0, first_worker;
    int timeout = (int)sl_clock_ms_until(m->next_audit),
        spawn = sl_supervise_wait_ms(&m->sup, m->gen);
    char msg[SL_CONTROL_MAX + 64];

    if (spawn >= 0 && spawn < timeout)
        timeout = spawn;
    p[n++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
    p[n++] = (struct pollfd){.fd = m->ctlfd, .events = POLLIN}; /* -1 is ignored by poll */
    first_worker = n;
    for (unsigned i = 0; i < m->sup.nw && n < sizeof p / sizeof p[0]; i++)
        if (m->sup.w[i].pid != 0 && m->sup.w[i].fd >= 0)
            p[n++] = (struct pollfd){.fd = m->sup.w[i].fd, .events = POLLIN};
    if (poll(p, n, timeout) < 0 && errno != EINTR)
        sl_msg_fatal("poll: %s", strerror(errno));
    for (nfds_t i = first_worker; i < n; i++) {
        unsigned w;
        size_t len;
        if (p[i].revents == 0)
            continue;
        while ((len = sl_supervise_read(&m->sup, p[i].fd, msg, sizeof msg, &w)) > 0)
            sl_control_from_worker(m->ctlfd, &m->sup, w, msg, len);
    }
    if (p[1].revents & POLLIN)
        sl_control_accept(m->ctlfd, &m->sup, m->gen);
}

/* serve - the main loop, until SIGTERM or SIGINT */
static void serve(struct master *m, int sigfd)
{
    for (;;) {
        sl_supervise_fill(&m->sup, &m->shm, m->gen, sl_worker_main, &m->wctx);
        maybe_announce(m);
        poll_once(m, sigfd);
        if (sl_signals_take(SL_SIG_STOP))
            return;
        if (sl_signals_take(SL_SIG_CHILD))
            sl_supervise_reap(&m->sup, &m->shm);
        if (sl_signals_take(SL_SIG_RELOAD))
            reload(m);
        if ((int)sl_clock_ms_until(m->next_audit) == 0)
            run_audit(m);
    }
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
    if (sl_shm_owner_claim(&m->shm, getpid(), &self) < 0)
        sl_msg_fatal("no owner record for the master in %s", m->shm.name);
    m->gen = (uint32_t)sl_add64(&m->shm.hdr->config_gen, 1) + 1;
    sl_limits_publish(m->cfg, &m->shm, m->gen);
}

/* usage - the command line */
static _Noreturn void usage(int status)
{
    fprintf(status ? stderr : stdout, "usage: sluiced [-c CONFIG] [-d]\n"
                                      "  -c CONFIG  the INI file (default " DEFAULT_CONFIG ")\n"
                                      "  -d         log at debug level\n");
    exit(status);
}

int main(int argc, char **argv)
{
    struct master m = {.path = DEFAULT_CONFIG};
    struct sl_diag d = {0};
    bool debug = false;
    int opt, sigfd;

    setproctitle_init(argc, argv, environ);
    sl_msg_init("sluiced");
    while ((opt = getopt(argc, argv, "c:dh")) != -1) {
        if (opt == 'c')
            m.path = optarg;
        else if (opt == 'd')
            debug = true;
        else
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
    sigfd = sl_signals_install();
    open_table(&m);
    m.wctx = (struct sl_worker_ctx){.cfg = m.cfg, .shm = &m.shm, .gen = m.gen};
    m.spool = sl_strdup(str(m.cfg, SL_OPT_SPOOL_DIR));
    m.ctlfd = sl_control_open(m.spool);
    sl_supervise_init(&m.sup, (unsigned)num(m.cfg, SL_OPT_WORKERS));
    schedule_audit(&m);
    setproctitle("-sluiced: master (%s)", m.path);
    sl_msg_info("starting: config %s, counter table %s", m.path, m.shm.name);

    serve(&m, sigfd);

    sl_notify_stopping();
    sl_msg_info("stopping: ending %u workers", m.sup.want);
    sl_supervise_stop(&m.sup, &m.shm, STOP_GRACE_MS);
    sl_control_close(m.ctlfd, m.spool);
    free(m.spool);
    sl_shm_unlink(m.shm.name);
    sl_shm_detach(&m.shm);
    sl_config_free(m.cfg);
    sl_msg_info("stopped");
    return 0;
}
