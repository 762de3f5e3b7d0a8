/*
 * supervise.c - the prefork workers: fork, hello, reap, reclaim, replace.
 *
 * Each worker gets an owner record in the counter table (claimed here before
 * the fork, so the record exists before the worker can hold anything) and a
 * SOCK_SEQPACKET socketpair.  When a worker dies, the main loop reaps it here
 * and returns its counter holds with sl_shm_reclaim_owner, the same function
 * the fork-and-kill test drives.
 *
 * The back-off rule (workers and listener processes alike): a crash loop is
 * replaced with an exponential back-off (100 ms doubling to 10 s), so a
 * broken environment does not turn into a fork storm; a process killed from
 * outside while it served is replaced at once.  A death (not of a retiring
 * process) is a failure, which raises the back-off one step, when
 *   - the process never reported ready (a worker's hello, a listener
 *     process's board entry, taken just before its first accept): it died
 *     before it could serve, whatever killed it; or
 *   - it was ready, died of its own doing (a non-zero exit, or a signal a
 *     process raises itself: SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
 *     SIGSYS, SIGTRAP, SIGPIPE, SIGALRM, SIGXCPU, SIGXFSZ), and was younger
 *     than SL_SUPERVISE_YOUNG_S (it crashes on its first job or client).
 * Any other death (exit 0, or a ready process killed by a signal sent from
 * outside: SIGKILL, SIGTERM, the OOM killer ...) resets the back-off and the
 * replacement is forked at once.  sl_supervise_failed is that rule.
 * The master's end of each socketpair is in the main loop's epoll set (epfd) while it is open;
 * it leaves the set before its close, for a child forked since may hold a copy of it until
 * its close_range, and the set would report that copy's events under the closed number.
 * Concurrency: master only, single-threaded; called from the main loop.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/sl_clock.h"
#include "util/sl_fork.h"
#include "master/sl_cluster_node.h"
#include "master/sl_supervise.h"
#include "spool/sl_spool.h"
#include "util/sl_msg.h"
#include "worker/sl_worker.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000

/* sl_supervise_init - an empty table sized for reloads that add workers */
void sl_supervise_init(struct sl_supervisor *s, unsigned want)
{
    memset(s, 0, sizeof *s);
    s->epfd = -1;
    s->want = want;
    s->next_spawn = sl_clock_after_ms(0);
}

/* free_slot - a table entry with no process, growing the table if needed */
static struct sl_worker_slot *free_slot(struct sl_supervisor *s)
{
    for (unsigned i = 0; i < s->nw; i++)
        if (s->w[i].pid == 0)
            return &s->w[i];
    s->w = sl_realloc(s->w, (s->nw + 1) * sizeof *s->w);
    memset(&s->w[s->nw], 0, sizeof *s->w);
    s->w[s->nw].fd = -1;
    return &s->w[s->nw++];
}

/* event_data - what the epoll set says of worker slot i's socket fd */
static uint64_t event_data(unsigned i, int fd)
{
    return (uint64_t)i << 32 | (uint32_t)fd;
}

/* sl_supervise_event - the worker an event is from, if its socket is still open */
bool sl_supervise_event(const struct sl_supervisor *s, uint64_t data, unsigned *worker)
{
    uint64_t i = data >> 32;

    if (i >= s->nw || s->w[i].pid == 0 || s->w[i].fd < 0 || (uint32_t)s->w[i].fd != (uint32_t)data)
        return false;
    *worker = (unsigned)i;
    return true;
}

/* watch - the master's end of w's socketpair joins the epoll set; false when it cannot */
static bool watch(struct sl_supervisor *s, struct sl_worker_slot *w)
{
    struct epoll_event ev = {.events = EPOLLIN,
                             .data.u64 = event_data((unsigned)(w - s->w), w->fd)};

    if (s->epfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, w->fd, &ev) == 0)
        return true;
    sl_msg_warn("worker pid %ld: cannot watch its socket (%s): it is stopped", (long)w->pid,
                strerror(errno));
    return false;
}

/* sl_supervise_close - the master's end of w's socketpair leaves the epoll set and closes (the
 * worker reads the end of its socket and exits; the reap follows on SIGCHLD) */
void sl_supervise_close(struct sl_supervisor *s, struct sl_worker_slot *w)
{
    if (w->fd < 0)
        return;
    if (s->epfd >= 0)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    close(w->fd);
    w->fd = -1;
}

/* running - current-generation workers alive */
static unsigned running(const struct sl_supervisor *s, uint32_t gen)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->nw; i++)
        if (s->w[i].pid != 0 && !s->w[i].retiring && s->w[i].gen == gen)
            n++;
    return n;
}

/* spawn - fork one worker (enum sl_spawn_result says how it went) */
static enum sl_spawn_result spawn(struct sl_supervisor *s, struct sl_shm *shm, uint32_t gen,
                                  sl_worker_fn fn, void *ctx)
{
    struct sl_worker_slot *w;
    int sv[2];
    uint32_t owner;
    pid_t pid;

    if (!sl_fork_begin())
        return SL_SPAWN_LATER;
    if (sl_shm_owner_claim(shm, 0, &owner) < 0) {
        sl_fork_end(false);
        sl_msg_warn("no free owner record in the counter table: worker not started");
        return SL_SPAWN_FAILED;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        sl_fork_end(false);
        sl_msg_warn("socketpair: %s", strerror(errno));
        sl_shm_reclaim_owner(shm, owner);
        return SL_SPAWN_FAILED;
    }
    pid = fork();
    sl_fork_end(pid == 0);
    if (pid < 0) {
        sl_msg_warn("fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        sl_shm_reclaim_owner(shm, owner);
        return SL_SPAWN_FAILED;
    }
    if (pid == 0) {
        close(sv[0]);
        fn(sv[1], owner, ctx); /* never returns */
        _exit(70);
    }
    close(sv[1]);
    sl_store32(&shm->owners[owner].pid, (uint32_t)pid);
    w = free_slot(s);
    *w = (struct sl_worker_slot){.pid = pid,
                                 .owner = owner,
                                 .fd = sv[0],
                                 .gen = gen,
                                 .stuck_slot = UINT32_MAX,
                                 .refused_slot = UINT32_MAX};
    w->started = time(NULL);
    if (!watch(s, w))
        sl_supervise_close(s, w);
    s->spawned++;
    sl_msg_debug("worker pid %ld started (owner record %u)", (long)pid, owner);
    return SL_SPAWNED;
}

/* sl_supervise_fill - start workers up to the wanted number, back-off allowing */
void sl_supervise_fill(struct sl_supervisor *s, struct sl_shm *shm, uint32_t gen, sl_worker_fn fn,
                       void *ctx)
{
    enum sl_spawn_result r;

    while (running(s, gen) < s->want) {
        if (sl_clock_ms_until(s->next_spawn) > 0)
            return;
        r = spawn(s, shm, gen, fn, ctx);
        if (r != SL_SPAWNED) {
            s->next_spawn = sl_clock_after_ms(sl_supervise_retry_ms(r));
            return;
        }
    }
}

/* sl_supervise_backoff_ms - the wait before the next spawn after failures failures in a row
 * (sl_supervise_failed): 100 ms doubling each time, at most 10 s (workers and listeners alike) */
long sl_supervise_backoff_ms(unsigned failures)
{
    long ms = BACKOFF_MIN_MS;

    for (unsigned i = 1; i < failures && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms;
}

/* sl_supervise_retry_ms - the wait before the next try after a spawn that was not made */
long sl_supervise_retry_ms(enum sl_spawn_result r)
{
    return r == SL_SPAWN_LATER ? SL_FORK_RETRY_MS : BACKOFF_MAX_MS;
}

/* own_fault - a signal a process raises itself (a fault, abort(), its own timer or limit),
 * as against one sent from outside */
static bool own_fault(int sig)
{
    static const int own[] = {SIGSEGV, SIGBUS,  SIGILL,  SIGFPE,  SIGABRT, SIGSYS,
                              SIGTRAP, SIGPIPE, SIGALRM, SIGXCPU, SIGXFSZ};

    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (own[i] == sig)
            return true;
    return false;
}

/* sl_supervise_own_death - a non-zero exit or a signal of its own */
bool sl_supervise_own_death(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status) != 0;
    return WIFSIGNALED(status) && own_fault(WTERMSIG(status));
}

/* sl_supervise_failed - does this death raise the back-off (the rule in the header comment)? */
bool sl_supervise_failed(bool ready, long age_s, int status)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return false;
    if (!ready)
        return true; /* died before it could serve: a crash loop until shown otherwise */
    /* killed from outside while it served: nothing wrong with it */
    return sl_supervise_own_death(status) && age_s < SL_SUPERVISE_YOUNG_S;
}

/* said_hello - ready, or its hello is still unread in the socket (killed before we read it) */
static bool said_hello(const struct sl_worker_slot *w)
{
    char c;

    if (w->ready)
        return true;
    return w->fd >= 0 && recv(w->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1 && c == SL_WMSG_HELLO;
}

/* back_off - a worker died young: delay the next spawn */
static void back_off(struct sl_supervisor *s)
{
    long ms = sl_supervise_backoff_ms(s->failures);

    s->next_spawn = sl_clock_after_ms(ms);
    sl_msg_warn("workers keep dying: next start in %ld ms", ms);
}

/* forget - a reaped worker: return its holds, drop its unfinished state writes, close its
 * socket, free its entry */
static void forget(struct sl_supervisor *s, struct sl_shm *shm, struct sl_worker_slot *w,
                   int status)
{
    uint32_t units;

    sl_master_cluster_reclaim(shm, w->owner); /* its records still name its leases */
    units = sl_shm_reclaim_owner(shm, w->owner);
    if (s->spool != NULL) /* a state write the kill cut short, now rather than in a minute */
        sl_spool_state_forget(s->spool, w->pid);

    if (WIFSIGNALED(status))
        sl_msg_warn("worker pid %ld killed by signal %d; %u counter units reclaimed", (long)w->pid,
                    WTERMSIG(status), units);
    else if (WEXITSTATUS(status) != 0)
        sl_msg_warn("worker pid %ld exited with status %d; %u counter units reclaimed",
                    (long)w->pid, WEXITSTATUS(status), units);
    else
        sl_msg_debug("worker pid %ld exited", (long)w->pid);
    if (!w->retiring && sl_supervise_failed(said_hello(w), time(NULL) - w->started, status)) {
        s->failures++;
        back_off(s);
    } else if (!w->retiring) {
        s->failures = 0;
        s->next_spawn = sl_clock_after_ms(0); /* replaced at once */
    }
    s->reaped++;
    s->reclaimed_units += units;
    if (s->on_exit != NULL)
        s->on_exit(w, status, s->on_exit_ctx);
    sl_supervise_close(s, w);
    *w = (struct sl_worker_slot){.fd = -1};
}

/* sl_supervise_reap - collect every dead worker */
void sl_supervise_reap(struct sl_supervisor *s, struct sl_shm *shm)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        unsigned i = 0;
        while (i < s->nw && s->w[i].pid != pid)
            i++;
        if (i < s->nw)
            forget(s, shm, &s->w[i], status);
        else if (s->on_other != NULL)
            s->on_other(pid, status, s->on_other_ctx);
    }
}

/* sl_supervise_read - one message from a worker, or -1 when there is none now */
ssize_t sl_supervise_read(struct sl_supervisor *s, unsigned worker, char *buf, size_t len)
{
    struct sl_worker_slot *w = &s->w[worker];
    ssize_t n;

    if (w->fd < 0)
        return -1;
    n = recv(w->fd, buf, len - 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        sl_supervise_close(s, w); /* dying: the reap follows on SIGCHLD */
        return -1;
    }
    if (n < 0)
        return -1;
    buf[n] = '\0';
    if (buf[0] == SL_WMSG_HELLO) {
        w->ready = true;
        return 0;
    }
    return n;
}

/* sl_supervise_idle - a current worker with no job (best with no open connection), or -1 */
int sl_supervise_idle(const struct sl_supervisor *s, uint32_t gen)
{
    int holding = -1;

    for (unsigned i = 0; i < s->nw; i++) {
        const struct sl_worker_slot *w = &s->w[i];
        if (w->pid == 0 || w->fd < 0 || !w->ready || w->busy || w->retiring || w->gen != gen)
            continue;
        if (w->conn == NULL)
            return (int)i;
        if (holding < 0)
            holding = (int)i;
    }
    return holding;
}

/* send_quit - ask one worker to exit; SIGTERM when its socket is gone */
static void send_quit(struct sl_worker_slot *w)
{
    char quit = SL_WMSG_QUIT;

    w->quit_sent = true;
    if (w->fd < 0 || send(w->fd, &quit, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        kill(w->pid, SIGTERM);
}

/* sl_supervise_retire - ask workers of older generations to finish and exit */
void sl_supervise_retire(struct sl_supervisor *s, uint32_t gen)
{
    for (unsigned i = 0; i < s->nw; i++) {
        struct sl_worker_slot *w = &s->w[i];
        if (w->pid == 0 || w->gen == gen || w->retiring)
            continue;
        w->retiring = true;
        if (!w->busy) /* a busy one finishes its job first: sl_supervise_quit_if_retiring */
            send_quit(w);
    }
}

/* sl_supervise_drain - every worker finishes its delivery job and exits */
void sl_supervise_drain(struct sl_supervisor *s)
{
    for (unsigned i = 0; i < s->nw; i++) {
        struct sl_worker_slot *w = &s->w[i];
        if (w->pid == 0)
            continue;
        w->retiring = true;
        if (!w->busy)
            send_quit(w);
        else if (w->job == 0 && !w->quit_sent) /* a probe's hold: SIGTERM ends it early */
            kill(w->pid, SIGTERM);
    }
}

/* tell_reopen - one worker reopens its delivery log (it reads the message between jobs) */
static bool tell_reopen(struct sl_worker_slot *w)
{
    char msg = SL_WMSG_LOG;

    w->log_pending = false;
    if (send(w->fd, &msg, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        sl_msg_warn("worker pid %ld not told to reopen the delivery log: %s", (long)w->pid,
                    strerror(errno));
        return false;
    }
    return true;
}

/* sl_supervise_reopen_log - every worker reopens its delivery log; how many were told */
unsigned sl_supervise_reopen_log(struct sl_supervisor *s)
{
    unsigned told = 0;

    /* Retiring workers too: they may still write lines of their last job. */
    for (unsigned i = 0; i < s->nw; i++) {
        struct sl_worker_slot *w = &s->w[i];
        if (w->pid == 0 || w->fd < 0)
            continue;
        if (w->busy && w->job == 0) {
            w->log_pending = true; /* a probe's hold ends on any message: tell it after */
            told++;
        } else if (tell_reopen(w)) {
            told++;
        }
    }
    return told;
}

/* sl_supervise_quit_if_retiring - the job is over: a pending reopen goes, a retiring worker may go
 */
void sl_supervise_quit_if_retiring(struct sl_supervisor *s, unsigned worker)
{
    struct sl_worker_slot *w = &s->w[worker];

    if (w->pid != 0 && w->fd >= 0 && w->log_pending && !w->busy)
        tell_reopen(w);

    if (w->pid != 0 && w->retiring && !w->quit_sent && !w->busy)
        send_quit(w);
}

/* sl_supervise_ready - current-generation workers that are up */
unsigned sl_supervise_ready(const struct sl_supervisor *s, uint32_t gen)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->nw; i++)
        if (s->w[i].pid != 0 && s->w[i].ready && !s->w[i].retiring && s->w[i].gen == gen)
            n++;
    return n;
}

/* sl_supervise_wait_ms - how long the main loop may sleep before a spawn is due */
int sl_supervise_wait_ms(const struct sl_supervisor *s, uint32_t gen)
{
    if (running(s, gen) >= s->want)
        return -1;
    return (int)sl_clock_ms_until(s->next_spawn);
}

/* sl_supervise_alive - workers not yet reaped */
unsigned sl_supervise_alive(const struct sl_supervisor *s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->nw; i++)
        if (s->w[i].pid != 0)
            n++;
    return n;
}

/* sl_supervise_stop - end every worker: SIGTERM, a grace period, then SIGKILL */
void sl_supervise_stop(struct sl_supervisor *s, struct sl_shm *shm, int grace_ms)
{
    struct timespec deadline = sl_clock_after_ms(grace_ms), pause = sl_clock_span(10);

    for (unsigned i = 0; i < s->nw; i++)
        if (s->w[i].pid != 0) {
            s->w[i].retiring = true;
            kill(s->w[i].pid, SIGTERM);
        }
    while (sl_supervise_alive(s) > 0 && sl_clock_ms_until(deadline) > 0) {
        sl_supervise_reap(s, shm);
        if (sl_supervise_alive(s) > 0)
            nanosleep(&pause, NULL);
    }
    for (unsigned i = 0; i < s->nw; i++)
        if (s->w[i].pid != 0) {
            sl_msg_warn("worker pid %ld did not stop in %d ms: killing it", (long)s->w[i].pid,
                        grace_ms);
            kill(s->w[i].pid, SIGKILL);
        }
    while (sl_supervise_alive(s) > 0) {
        sl_supervise_reap(s, shm);
        if (sl_supervise_alive(s) > 0)
            nanosleep(&pause, NULL);
    }
    free(s->w);
    s->w = NULL;
    s->nw = 0;
}
