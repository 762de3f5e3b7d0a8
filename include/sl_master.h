/*
 * sl_master.h - the master process: signals, supervision of the prefork
 * workers, reload, the config-to-counter mapping, sd_notify.
 *
 * Everything here runs in the master's single thread.  Signal handlers only
 * set a flag and write a byte to the self-pipe; reaping, reclaiming, reloading
 * and stopping run in the main loop (sluiced.c).
 */
#ifndef SL_MASTER_H
#define SL_MASTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "sl_config.h"
#include "sl_shm.h"

/* --- signals.c: flags raised by handlers, read by the main loop --- */
enum sl_sig { SL_SIG_CHILD, SL_SIG_RELOAD, SL_SIG_STOP, SL_SIG__COUNT };
/* Install the handlers; returns the read end of the self-pipe. */
int sl_signals_install(void);
/* True (once) when the signal was raised since the last call. */
bool sl_signals_take(enum sl_sig s);

/* --- notify.c: systemd readiness protocol (no-op without $NOTIFY_SOCKET) --- */
void sl_notify_ready(const char *status);
void sl_notify_reloading(void);
void sl_notify_stopping(void);
void sl_notify_status(const char *status);

/* --- limits.c: which counters a connection takes, and each one's limit --- */
/* The limit that cfg gives a counter of this kind and key (-1: no limit). */
int32_t sl_limits_for_key(const struct sl_config *cfg, enum sl_scope_kind kind, const char *name,
                          const char *name2);
/* Create (and set the limits of) the counters the config names explicitly, so
 * the inspector shows every configured limit before any connection opens. */
void sl_limits_publish(const struct sl_config *cfg, struct sl_shm *shm, uint32_t gen);
/* Set every live counter's limit from cfg for generation gen (after a reload). */
void sl_limits_refresh(const struct sl_config *cfg, struct sl_shm *shm, uint32_t gen);
/* Add to r the counters a connection from binding to domain (via MX host mx,
 * which may be NULL before the MX is known) takes.  Returns false with a reason
 * in err when the table is full or r cannot hold them all. */
bool sl_limits_collect(const struct sl_config *cfg, struct sl_shm *shm, uint32_t owner,
                       const char *binding, const char *domain, const char *mx, struct sl_resv *r,
                       char *err, size_t errlen);

/* --- supervise.c: the prefork workers --- */
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
