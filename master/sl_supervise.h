/*
 * sl_supervise.h - the master's prefork workers: fork, hello, reap, reclaim,
 * replace with back-off, retire on reload.  Master only, single-threaded.
 */
#ifndef SL_SUPERVISE_H
#define SL_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>

#include "shm/sl_shm.h"

struct sl_worker_slot {
    pid_t pid;                 /* 0: not running */
    uint32_t owner;            /* its owner record in the counter table */
    int fd;                    /* master's end of the socketpair, -1 when closed */
    bool ready;                /* said hello */
    bool retiring;             /* from an older config: exits when idle */
    bool busy;                 /* has a job (a probe or a delivery), until it says I or K */
    bool quit_sent;            /* retiring and told to QUIT */
    bool log_pending;          /* to reopen the delivery log once its probe is over */
    struct sockaddr_un client; /* who asked for the job, for the answer */
    socklen_t clientlen;
    uint32_t gen; /* config generation it runs */
    time_t started;
    /* The scheduler's (schedule.c) record of this worker: */
    uint64_t job;          /* delivery job in flight, 0: none */
    char *parts;           /* that job's parts, "<id>.<k> ...", owned by schedule.c */
    void *job_dest;        /* that job's destination (struct sl_qdest), NULL: none */
    void *conn;            /* the destination (struct sl_qdest) it keeps a connection to */
    char conn_mx[256];     /* that connection's MX host, as its "K" said ("" unknown) */
    uint32_t stuck_slot;   /* the counter its "S" named for the job in hand; UINT32_MAX none */
    bool stuck_sole;       /* ... the destination's only MX host's ("h") */
    bool refused;          /* its last job had a "w" outcome: its next I releases only what it
                            * gave back (schedule.c, given_back), a K nothing */
    uint32_t refused_slot; /* the counter that refused it (its "S"); UINT32_MAX none */
    bool had_conn;         /* it held a connection when its job was handed out (an "I" after its
                            * refusal then means it closed it; a "K", that it kept it) */
    /* The units promised to its job's new connection until it tries to take them (promise.c),
     * and its owner record's acquired and refused figures when they were promised: */
    uint32_t promised[SL_RESV_MAX];
    uint32_t npromised;
    uint64_t promise_acquired, promise_refused;
    /* ... and once the promise ended taken, those counters: its job's connection holds them, or
     * gave them back if refused after its take (a cluster lease refused) */
    uint32_t taken[SL_RESV_MAX];
    uint32_t ntaken;
};

struct sl_supervisor {
    struct sl_worker_slot *w;
    unsigned nw;                /* slots in w */
    unsigned want;              /* workers the config asks for */
    unsigned failures;          /* consecutive early deaths, for the back-off */
    struct timespec next_spawn; /* not before this (back-off) */
    uint64_t spawned, reaped, reclaimed_units;
    /* Called for a reaped worker before its slot is cleared (the scheduler
     * requeues its job); may be NULL. */
    void (*on_exit)(struct sl_worker_slot *w, int status, void *ctx); /* status: waitpid's */
    void *on_exit_ctx;
    /* Called for a reaped child that is no worker (a listener process); may be NULL. */
    void (*on_other)(pid_t pid, int status, void *ctx);
    void *on_other_ctx;
    /* The spool a reaped worker's unfinished state writes are removed from; may be NULL. */
    const char *spool;
    /* The main loop's epoll set (-1: none).  A worker's socket is in it from the fork to its
     * close, with sl_supervise_event's data: the loop's cost follows the workers that spoke,
     * not the number of workers. */
    int epfd;
};

/* What a forked worker runs; it never returns. */
typedef void (*sl_worker_fn)(int fd, uint32_t owner, void *ctx);

void sl_supervise_init(struct sl_supervisor *s, unsigned want);
/* Fork workers until `want` current-generation workers run (respecting the
 * back-off); each gets an owner record and a socketpair. */
void sl_supervise_fill(struct sl_supervisor *s, struct sl_shm *shm, uint32_t gen, sl_worker_fn fn,
                       void *ctx);
/* Reap every dead worker: waitpid, reclaim its counter holds, free its slot. */
void sl_supervise_reap(struct sl_supervisor *s, struct sl_shm *shm);
/* Read one message from worker's socket (NUL-terminated in buf).  Hello is
 * handled here (0); any other message's length is returned; -1 when nothing is
 * left to read now (EAGAIN) or the socket closed. */
ssize_t sl_supervise_read(struct sl_supervisor *s, unsigned worker, char *buf, size_t len);
/* Close the master's end of a worker's socket, out of the epoll set first (a worker that does
 * not take its job: it is dying, or its socket is broken); the worker exits when it sees it. */
void sl_supervise_close(struct sl_supervisor *s, struct sl_worker_slot *w);
/* An event of the epoll set (its data): true when it is from the socket of a worker still
 * open, whose index is then in *worker (false: a descriptor closed since, whose slot may be
 * another worker's now). */
bool sl_supervise_event(const struct sl_supervisor *s, uint64_t data, unsigned *worker);
/* An idle current-generation worker's index, or -1; one holding no connection
 * is preferred. */
int sl_supervise_idle(const struct sl_supervisor *s, uint32_t gen);
/* Ask every worker of an older generation to exit (reload): at once when idle,
 * after its job (sl_supervise_quit_if_retiring) when busy. */
void sl_supervise_retire(struct sl_supervisor *s, uint32_t gen);
/* Drain (SIGTERM): every worker retires as above; a probe's hold is ended. */
void sl_supervise_drain(struct sl_supervisor *s);
/* A worker reported idle (I or K): a reopen of the delivery log that waited
 * for the end of its probe is sent; a retiring one is told to QUIT now. */
void sl_supervise_quit_if_retiring(struct sl_supervisor *s, unsigned worker);
/* Tell every live worker to reopen the delivery log (SIGUSR1, logrotate); each
 * does it between two jobs.  Returns how many were told. */
unsigned sl_supervise_reopen_log(struct sl_supervisor *s);
/* Workers not yet reaped. */
unsigned sl_supervise_alive(const struct sl_supervisor *s);
/* Number of current-generation workers that said hello. */
unsigned sl_supervise_ready(const struct sl_supervisor *s, uint32_t gen);
/* SIGTERM every worker, wait up to grace_ms, SIGKILL the rest, reap, reclaim. */
void sl_supervise_stop(struct sl_supervisor *s, struct sl_shm *shm, int grace_ms);
/* Milliseconds until the back-off allows the next spawn (0: now, -1: none due). */
int sl_supervise_wait_ms(const struct sl_supervisor *s, uint32_t gen);

/* A ready process dying of its own doing younger than this counts as a failure. */
#define SL_SUPERVISE_YOUNG_S 5
/* The wait before the next spawn after failures failures in a row. */
long sl_supervise_backoff_ms(unsigned failures);
/* How a fork of a worker or listener went: made, put off because a thread of the master is
 * in a stretch a fork must not copy (sl_fork.h), or failed. */
enum sl_spawn_result { SL_SPAWNED, SL_SPAWN_LATER, SL_SPAWN_FAILED };
/* The wait before the next try after a spawn that was not made: SL_FORK_RETRY_MS when put
 * off, the longest back-off when failed. */
long sl_supervise_retry_ms(enum sl_spawn_result r);
/* Does a death raise the back-off?  ready: the process had reported ready; age_s: its life;
 * status: waitpid's.  True for a crash loop (dead before ready, or of its own fault while
 * young); false for exit 0 and for a ready process killed from outside (replaced at once).
 * The rule in full is supervise.c's header comment. */
bool sl_supervise_failed(bool ready, long age_s, int status);
/* Did the process end by its own doing: a non-zero exit, or a signal it raised itself (a
 * fault, abort(), its own timer or limit)?  False for exit 0 and for a kill from outside
 * (SIGKILL, SIGTERM, the OOM killer). */
bool sl_supervise_own_death(int status);

#endif
