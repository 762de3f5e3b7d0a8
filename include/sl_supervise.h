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

#include "sl_shm.h"

struct sl_worker_slot {
    pid_t pid;                 /* 0: not running */
    uint32_t owner;            /* its owner record in the counter table */
    int fd;                    /* master's end of the socketpair, -1 when closed */
    bool ready;                /* said hello */
    bool retiring;             /* from an older config: exits when idle */
    bool busy;                 /* has a job */
    struct sockaddr_un client; /* who asked for the job, for the answer */
    socklen_t clientlen;
    uint32_t gen; /* config generation it runs */
    time_t started;
};

struct sl_supervisor {
    struct sl_worker_slot *w;
    unsigned nw;                /* slots in w */
    unsigned want;              /* workers the config asks for */
    unsigned failures;          /* consecutive early deaths, for the back-off */
    struct timespec next_spawn; /* not before this (back-off) */
    uint64_t spawned, reaped, reclaimed_units;
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
/* Read one message from a worker's fd that poll() found readable.  Hello is
 * handled here; any other message is copied to buf and its length returned,
 * with the worker's index in *worker.  0 when there is nothing for the caller. */
size_t sl_supervise_read(struct sl_supervisor *s, int fd, char *buf, size_t len, unsigned *worker);
/* An idle current-generation worker's index, or -1. */
int sl_supervise_idle(const struct sl_supervisor *s, uint32_t gen);
/* Ask every worker of an older generation to exit (reload). */
void sl_supervise_retire(struct sl_supervisor *s, uint32_t gen);
/* Number of current-generation workers that said hello. */
unsigned sl_supervise_ready(const struct sl_supervisor *s, uint32_t gen);
/* SIGTERM every worker, wait up to grace_ms, SIGKILL the rest, reap, reclaim. */
void sl_supervise_stop(struct sl_supervisor *s, struct sl_shm *shm, int grace_ms);
/* Milliseconds until the back-off allows the next spawn (0: now, -1: none due). */
int sl_supervise_wait_ms(const struct sl_supervisor *s, uint32_t gen);

#endif
