/*
 * listeners.c - the SMTP listener processes: bind, fork, reap, replace,
 * retire on reload, drain on SIGTERM.
 *
 * At start every [listener] address is bound here, before the master drops
 * privileges (a port below 1024 needs root or CAP_NET_BIND_SERVICE; after
 * the drop a reload can bind only what the user may).  Each listener gets
 * max_sessions processes, all accepting on its one socket.  A process that
 * dies is reaped (the worker supervisor's waitpid hands us the pids it does
 * not know) and replaced by the workers' rule (supervise.c): a crash loop
 * with a back-off (100 ms doubling to 10 s), counted per listener (one whose
 * processes die young, say of a key file a reload made unreadable, delays no
 * other listener's replacements), a process killed from outside
 * once it was ready (its board entry taken, just before its first accept)
 * at once.  A reload binds the new addresses, keeps the sockets of
 * unchanged ones (no connection is refused while the processes change),
 * SIGTERMs every process of the older generation (each finishes its
 * transaction, then goes; one still there after the grace is killed) and forks new ones
 * on the new config.  Each listener's TLS context and credentials are read here
 * too (sl_smtpd_prepare), before the drop at start, and inherited by its
 * processes: a key only root may read works.  The group-commit page, the per-client board and the
 * failed-AUTH table are made once, before the first fork, and shared by every generation.
 * Concurrency: master only, single-threaded, from the main loop.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/sl_clock.h"
#include "util/sl_fork.h"
#include "util/sl_msg.h"
#include "master/sl_listeners.h"
#include "master/sl_supervise.h"

#define GRACE_SLACK_MS   5000
#define PUBLISH_EVERY_MS 1000 /* the sessions open are counted this often */

/* find_sock - the bound socket of an address, or NULL */
static struct sl_lsock *find_sock(const struct sl_listeners *ls, const struct sl_listener *l)
{
    for (size_t i = 0; i < ls->nsock; i++)
        if (ls->sock[i].fd >= 0 && ls->sock[i].salen == l->salen &&
            memcmp(&ls->sock[i].sa, &l->sa, l->salen) == 0)
            return &ls->sock[i];
    return NULL;
}

/* bind_all - a socket for every listener of cfg; false (warned or fatal) when one failed */
static bool bind_all(struct sl_listeners *ls, const struct sl_config *cfg, bool fatal)
{
    bool ok = true;
    char err[512];

    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct sl_listener *l = &cfg->listeners[i];
        int fd;
        if (find_sock(ls, l) != NULL)
            continue;
        if ((fd = sl_smtpd_bind(l, err, sizeof err)) < 0) {
            if (fatal)
                sl_msg_fatal("%s", err);
            sl_msg_warn("%s", err);
            ok = false;
            continue;
        }
        ls->sock = sl_realloc(ls->sock, (ls->nsock + 1) * sizeof *ls->sock);
        ls->sock[ls->nsock] = (struct sl_lsock){.salen = l->salen, .fd = fd};
        memcpy(&ls->sock[ls->nsock++].sa, &l->sa, l->salen);
        sl_msg_info("listener %s: listening on %s", l->name, l->address);
    }
    return ok;
}

/* prepare_all - TLS contexts and credentials of cfg's listeners; one that fails is fatal at
 * start, and at a reload is warned and not run */
static void prepare_all(struct sl_listeners *ls, const struct sl_config *cfg, bool fatal)
{
    char err[512];

    ls->prep = sl_calloc(cfg->nlisteners + 1, sizeof *ls->prep);
    ls->ready = sl_calloc(cfg->nlisteners + 1, sizeof *ls->ready);
    ls->back = sl_calloc(cfg->nlisteners + 1, sizeof *ls->back);
    ls->stat = sl_calloc(cfg->nlisteners + 1, sizeof *ls->stat);
    ls->nprep = cfg->nlisteners;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        ls->back[i].next_spawn = sl_clock_after_ms(0);
        ls->stat[i] = sl_lstat_claim(ls->shm, cfg->listeners[i].name);
        ls->ready[i] = sl_smtpd_prepare(&cfg->listeners[i], &ls->prep[i], err, sizeof err);
        if (!ls->ready[i] && fatal)
            sl_msg_fatal("%s", err);
        if (!ls->ready[i])
            sl_msg_warn("%s: the listener does not run", err);
    }
}

/* free_prep - the prepared state of the config the listeners had (children keep copies) */
static void free_prep(struct sl_listeners *ls)
{
    for (size_t i = 0; ls->prep != NULL && i < ls->nprep; i++)
        sl_smtpd_prep_free(&ls->prep[i]);
    free(ls->prep);
    free(ls->ready);
    free(ls->back);
    free(ls->stat);
    ls->prep = NULL;
    ls->ready = NULL;
    ls->back = NULL;
    ls->stat = NULL;
    ls->nprep = 0;
}

/* sl_listeners_open - bind at start; nothing at all without a listener section */
void sl_listeners_open(struct sl_listeners *ls, const struct sl_config *cfg, const char *spool,
                       struct sl_shm *shm, uint32_t gen)
{
    memset(ls, 0, sizeof *ls);
    ls->cfg = cfg;
    ls->spool = spool;
    ls->shm = shm;
    ls->gen = gen;
    if (cfg->nlisteners == 0)
        return;
    ls->group = sl_spool_group_new();
    ls->board = sl_smtpd_board_new();
    ls->lockout = sl_smtpd_lockout_new();
    prepare_all(ls, cfg, true);
    bind_all(ls, cfg, true);
}

/* running - current-generation processes of listener i */
static unsigned running(const struct sl_listeners *ls, size_t i)
{
    unsigned n = 0;

    for (size_t k = 0; k < ls->np; k++)
        if (ls->p[k].pid != 0 && !ls->p[k].retiring && ls->p[k].gen == ls->gen &&
            ls->p[k].listener == i)
            n++;
    return n;
}

/* grace_of - the longest a transaction of listener l may still need (the body, or one
 * command), plus slack */
static int grace_of(const struct sl_listener *l)
{
    int64_t longest =
        l->data_timeout_ms > l->command_timeout_ms ? l->data_timeout_ms : l->command_timeout_ms;

    longest += GRACE_SLACK_MS;
    return longest > 24 * 3600 * 1000 ? 24 * 3600 * 1000 : (int)longest;
}

/* spawn - fork one process of listener i (enum sl_spawn_result says how it went) */
static enum sl_spawn_result spawn(struct sl_listeners *ls, size_t i, int fd)
{
    struct sl_smtpd_ctx ctx = {.cfg = ls->cfg,
                               .listener = i,
                               .fd = fd,
                               .spool = ls->spool,
                               .group = ls->group,
                               .board = ls->board,
                               .lockout = ls->lockout,
                               .gen = ls->gen,
                               .master = getpid(),
                               .prep = &ls->prep[i],
                               .shm = ls->shm,
                               .stat = ls->stat[i]};
    struct sl_lproc *p = NULL;
    pid_t pid;

    if (!sl_fork_begin())
        return SL_SPAWN_LATER;
    pid = fork();
    sl_fork_end(pid == 0);
    if (pid < 0) {
        sl_msg_warn("fork: %s", strerror(errno));
        return SL_SPAWN_FAILED;
    }
    if (pid == 0)
        sl_smtpd_main(&ctx); /* never returns */
    for (size_t k = 0; k < ls->np && p == NULL; k++)
        if (ls->p[k].pid == 0)
            p = &ls->p[k];
    if (p == NULL) {
        ls->p = sl_realloc(ls->p, (ls->np + 1) * sizeof *ls->p);
        p = &ls->p[ls->np++];
    }
    *p = (struct sl_lproc){.pid = pid,
                           .listener = i,
                           .fd = fd,
                           .gen = ls->gen,
                           .started = time(NULL),
                           .grace_ms = grace_of(&ls->cfg->listeners[i])};
    return SL_SPAWNED;
}

/* sl_listeners_fill - max_sessions processes per listener, each as its back-off allows */
void sl_listeners_fill(struct sl_listeners *ls)
{
    for (size_t i = 0; i < ls->cfg->nlisteners && !ls->draining; i++) {
        const struct sl_listener *l = &ls->cfg->listeners[i];
        struct sl_lsock *s = find_sock(ls, l);
        if (s == NULL || !ls->ready[i])
            continue; /* its address, key or credentials failed at the reload: warned then */
        while (running(ls, i) < l->max_sessions && sl_clock_ms_until(ls->back[i].next_spawn) == 0) {
            enum sl_spawn_result r = spawn(ls, i, s->fd);
            if (r != SL_SPAWNED) {
                ls->back[i].next_spawn = sl_clock_after_ms(sl_supervise_retry_ms(r));
                return; /* no fork for one: none for the others either */
            }
        }
    }
}

/* back_off - a process of listener i failed (sl_supervise_failed): its next spawn waits,
 * doubling each time */
static void back_off(struct sl_listeners *ls, size_t i)
{
    long ms = sl_supervise_backoff_ms(ls->back[i].failures);

    ls->back[i].next_spawn = sl_clock_after_ms(ms);
    sl_msg_warn("listener processes keep dying: next start in %ld ms (listener %s)", ms,
                ls->cfg->listeners[i].name);
}

/* sl_listeners_reaped - forget a dead listener process; false when pid is not one.  queued:
 * the id of a message it had put in queue/ without telling the master, or "" */
bool sl_listeners_reaped(struct sl_listeners *ls, pid_t pid, int status,
                         char queued[SL_SPOOL_ID_LEN + 1])
{
    queued[0] = '\0';
    for (size_t k = 0; k < ls->np; k++) {
        struct sl_lproc *p = &ls->p[k];
        if (p->pid != pid)
            continue;
        bool ready = sl_smtpd_board_was_ready(ls->board, pid); /* before the forget below */
        bool failed = WIFSIGNALED(status) || WEXITSTATUS(status) != 0;
        if (failed && !p->retiring)
            sl_msg_warn("listener pid %ld %s %d", (long)pid,
                        WIFSIGNALED(status) ? "killed by signal" : "exited with status",
                        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        sl_smtpd_board_forget(ls->board, pid);
        sl_spool_group_forget(ls->group, ls->spool, pid, queued);
        /* not retiring: of the current generation, its index one of ls->cfg */
        if (!p->retiring && p->listener < ls->nprep) {
            struct sl_lbackoff *b = &ls->back[p->listener];
            if (sl_supervise_failed(ready, time(NULL) - p->started, status)) {
                b->failures++;
                back_off(ls, p->listener);
            } else {
                b->failures = 0;
                b->next_spawn = sl_clock_after_ms(0); /* replaced at once */
            }
        }
        p->pid = 0;
        return true;
    }
    return false;
}

/* sl_listeners_publish - the sessions open now, counted from the board, and the group commit's
 * figures, into the statistics (a scan of the whole board: once a second, not at every turn
 * of the loop) */
void sl_listeners_publish(struct sl_listeners *ls, bool now)
{
    uint64_t open[SL_LSTAT_LISTENERS], files = 0, syncs;

    if (ls->board == NULL || (!now && sl_clock_ms_until(ls->next_publish) > 0))
        return;
    ls->next_publish = sl_clock_after_ms(PUBLISH_EVERY_MS);
    syncs = sl_spool_group_syncs(ls->group, &files);
    sl_stats_group_commit(ls->shm, syncs, files);
    sl_smtpd_board_sessions(ls->board, open);
    for (int i = 0; i < SL_LSTAT_LISTENERS; i++)
        sl_lstat_set_active(ls->shm, i, open[i]);
}

/* still_used - does a current listener, or a live process, use this socket? */
static bool still_used(const struct sl_listeners *ls, const struct sl_lsock *s)
{
    for (size_t i = 0; i < ls->cfg->nlisteners; i++)
        if (ls->cfg->listeners[i].salen == s->salen &&
            memcmp(&ls->cfg->listeners[i].sa, &s->sa, s->salen) == 0)
            return true;
    return false;
}

/* sl_listeners_reload - new addresses bound, older processes retired, unused sockets closed
 * (the previous config is already freed: only cfg is read here) */
void sl_listeners_reload(struct sl_listeners *ls, const struct sl_config *cfg, uint32_t gen)
{
    free_prep(ls);
    prepare_all(ls, cfg, false);
    ls->cfg = cfg;
    ls->gen = gen;
    if (cfg->nlisteners > 0 && ls->group == NULL) {
        ls->group = sl_spool_group_new();
        ls->board = sl_smtpd_board_new();
        ls->lockout = sl_smtpd_lockout_new();
    }
    bind_all(ls, cfg, false);
    for (size_t k = 0; k < ls->np; k++)
        if (ls->p[k].pid != 0 && ls->p[k].gen != gen && !ls->p[k].retiring) {
            ls->p[k].retiring = true;
            ls->p[k].retire_by = sl_clock_after_ms(ls->p[k].grace_ms);
            kill(ls->p[k].pid, SIGTERM);
        }
    for (size_t i = 0; i < ls->nsock; i++)
        if (ls->sock[i].fd >= 0 && !still_used(ls, &ls->sock[i])) {
            close(ls->sock[i].fd); /* the retiring processes keep their copy until they go */
            ls->sock[i].fd = -1;
        }
}

/* sl_listeners_end_overdue - a process a reload retired that is still in its session after the
 * grace is killed: a client that keeps a transaction open (a NOOP now and then) would keep an
 * old config's process, and a socket the new config no longer has, for as long as it likes.
 * What it had not acknowledged is not lost: the client was never told 250. */
void sl_listeners_end_overdue(struct sl_listeners *ls)
{
    for (size_t k = 0; k < ls->np; k++) {
        struct sl_lproc *p = &ls->p[k];
        if (p->pid == 0 || !p->retiring || p->retire_by.tv_sec == 0 ||
            sl_clock_ms_until(p->retire_by) > 0)
            continue;
        sl_msg_warn("listener pid %ld of an older config did not finish its session in %d ms: "
                    "killing it",
                    (long)p->pid, p->grace_ms);
        kill(p->pid, SIGKILL);
        p->retire_by = (struct timespec){0}; /* reaped as any dead process is */
    }
}

/* sl_listeners_wait_ms - until the first spawn a back-off delays (-1: none) */
int sl_listeners_wait_ms(const struct sl_listeners *ls)
{
    long wait = -1;

    for (size_t i = 0; i < ls->cfg->nlisteners && !ls->draining; i++)
        /* as fill: one whose address failed at the reload waits for nothing (no spinning) */
        if (ls->ready[i] && find_sock(ls, &ls->cfg->listeners[i]) != NULL &&
            running(ls, i) < ls->cfg->listeners[i].max_sessions) {
            long ms = sl_clock_ms_until(ls->back[i].next_spawn);
            wait = wait < 0 || ms < wait ? ms : wait;
        }
    if (ls->board != NULL) {
        long ms = sl_clock_ms_until(ls->next_publish);
        wait = wait < 0 || ms < wait ? ms : wait;
    }
    return (int)wait;
}

/* sl_listeners_drain - every process told to finish; no more are started */
void sl_listeners_drain(struct sl_listeners *ls)
{
    ls->draining = true;
    for (size_t k = 0; k < ls->np; k++)
        if (ls->p[k].pid != 0) {
            ls->p[k].retiring = true;
            kill(ls->p[k].pid, SIGTERM);
        }
    for (size_t i = 0; i < ls->nsock; i++)
        if (ls->sock[i].fd >= 0) { /* new connections are refused from now on */
            close(ls->sock[i].fd);
            ls->sock[i].fd = -1;
        }
}

/* sl_listeners_alive - processes not yet reaped */
unsigned sl_listeners_alive(const struct sl_listeners *ls)
{
    unsigned n = 0;

    for (size_t k = 0; k < ls->np; k++)
        n += ls->p[k].pid != 0;
    return n;
}

/* sl_listeners_grace_ms - the longest wait a transaction in hand may still be in (the body, or
 * one command), plus slack: with the defaults 10 min 5 s, within the unit's TimeoutStopSec */
int sl_listeners_grace_ms(const struct sl_listeners *ls)
{
    int longest = GRACE_SLACK_MS;

    for (size_t k = 0; k < ls->np; k++) /* the processes' own, of the config each runs */
        if (ls->p[k].pid != 0 && ls->p[k].grace_ms > longest)
            longest = ls->p[k].grace_ms;
    for (size_t i = 0; i < ls->cfg->nlisteners; i++)
        if (grace_of(&ls->cfg->listeners[i]) > longest)
            longest = grace_of(&ls->cfg->listeners[i]);
    return longest;
}

/* sl_listeners_stop - SIGKILL what the drain left, and reap it */
void sl_listeners_stop(struct sl_listeners *ls)
{
    uint64_t files = 0, syncs = ls->group != NULL ? sl_spool_group_syncs(ls->group, &files) : 0;
    int status;

    if (files > 0)
        sl_msg_info("listeners: %llu messages queued with %llu syncs of queue/",
                    (unsigned long long)files, (unsigned long long)syncs);
    for (size_t k = 0; k < ls->np; k++)
        if (ls->p[k].pid != 0) {
            sl_msg_warn("listener pid %ld did not finish its session: killing it",
                        (long)ls->p[k].pid);
            kill(ls->p[k].pid, SIGKILL);
            if (waitpid(ls->p[k].pid, &status, 0) == ls->p[k].pid) {
                char queued[SL_SPOOL_ID_LEN + 1]; /* stays in queue/: the next start has it */
                sl_smtpd_board_forget(ls->board, ls->p[k].pid);
                sl_spool_group_forget(ls->group, ls->spool, ls->p[k].pid, queued);
            }
            ls->p[k].pid = 0;
        }
    for (size_t i = 0; i < ls->nsock; i++)
        if (ls->sock[i].fd >= 0)
            close(ls->sock[i].fd);
    free(ls->sock);
    free(ls->p);
    free_prep(ls);
    ls->sock = NULL;
    ls->p = NULL;
    ls->nsock = ls->np = 0;
}
