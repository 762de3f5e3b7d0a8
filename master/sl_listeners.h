/*
 * sl_listeners.h - the master's side of the SMTP listeners: the bound
 * sockets, the preforked listener processes, reaped and replaced like the
 * workers, retired on reload and drained on SIGTERM.  Master only.
 */
#ifndef SL_LISTENERS_H
#define SL_LISTENERS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "config/sl_config.h"
#include "listener/sl_smtpd.h"

struct sl_lsock { /* one bound address */
    struct sockaddr_storage sa;
    socklen_t salen;
    int fd;
};

struct sl_lproc { /* one listener process */
    pid_t pid;
    size_t listener; /* index in the config of its generation */
    int fd;          /* the socket it accepts on */
    uint32_t gen;
    time_t started;
    bool retiring;
    int grace_ms; /* the longest its transaction may still need, by the config it runs */
    struct timespec retire_by; /* retired by a reload: killed when still there then (0: none) */
};

struct sl_lbackoff {            /* one listener's crash-loop back-off (sl_supervise_failed) */
    unsigned failures;          /* consecutive early deaths of its processes */
    struct timespec next_spawn; /* none of its processes forked before */
};

struct sl_listeners {
    const struct sl_config *cfg;
    const char *spool;
    uint32_t gen;
    struct sl_lsock *sock;
    size_t nsock;
    struct sl_lproc *p;
    size_t np;
    struct sl_smtpd_prep *prep; /* per listener of cfg: TLS context, credentials */
    bool *ready;                /* per listener of cfg: prepared, may run */
    struct sl_lbackoff *back;   /* per listener of cfg: a crash loop delays its own alone */
    int *stat;                  /* per listener of cfg: its statistics entry (sl_lstat_claim) */
    size_t nprep;
    struct sl_shm *shm;           /* the daemon's segment: the statistics */
    struct timespec next_publish; /* the next count of the sessions open */
    struct sl_spool_group *group;
    struct sl_smtpd_board *board;
    struct sl_smtpd_lockout *lockout;
    bool draining;
};

/* Bind every listener of cfg (before privileges are dropped); fatal when one cannot be. */
void sl_listeners_open(struct sl_listeners *ls, const struct sl_config *cfg, const char *spool,
                       struct sl_shm *shm, uint32_t gen);
/* Write the sessions each listener has open now to its statistics: once a second, or now
 * (a process was reaped). */
void sl_listeners_publish(struct sl_listeners *ls, bool now);
/* Fork listener processes up to max_sessions per listener, back-off allowing. */
void sl_listeners_fill(struct sl_listeners *ls);
/* A reaped child: true when it was a listener process (then forgotten); queued gets the id
 * of a message it had put in queue/ without telling the master (else ""). */
bool sl_listeners_reaped(struct sl_listeners *ls, pid_t pid, int status,
                         char queued[SL_SPOOL_ID_LEN + 1]);
/* A new config: bind new addresses, retire every older process, close unused sockets. */
void sl_listeners_reload(struct sl_listeners *ls, const struct sl_config *cfg, uint32_t gen);
/* Kill the processes a reload retired that are still in a session past the grace
 * (sl_listeners_grace_ms); called each loop pass, which the once-a-second count wakes. */
void sl_listeners_end_overdue(struct sl_listeners *ls);
/* Milliseconds until the back-off allows a spawn or the sessions are counted (-1: none). */
int sl_listeners_wait_ms(const struct sl_listeners *ls);
/* SIGTERM: stop accepting; each process finishes its transaction. */
void sl_listeners_drain(struct sl_listeners *ls);
unsigned sl_listeners_alive(const struct sl_listeners *ls);
/* The longest a listener session may still need after SIGTERM. */
int sl_listeners_grace_ms(const struct sl_listeners *ls);
/* SIGKILL what is left, reap it, close the sockets. */
void sl_listeners_stop(struct sl_listeners *ls);

#endif
