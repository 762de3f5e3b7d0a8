/*
 * sl_smtpd.h - the SMTP listener processes, as the master sees them.
 *
 * The master binds every [listener] address before it drops privileges
 * (sl_smtpd_bind), then forks max_sessions processes per listener; each runs
 * sl_smtpd_main: it accepts on the shared socket and serves one blocking
 * session at a time, writes each accepted message to the spool durably
 * (sharing directory syncs with the other listener processes: the group
 * page) and tells the master at once.  A board in shared memory says which
 * client each process serves, for max_sessions_per_client.
 * Concurrency: the board and the group page are shared by every listener
 * process; everything else is per process.
 */
#ifndef SL_SMTPD_H
#define SL_SMTPD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "config/sl_config.h"
#include "config/sl_listener.h"
#include "shm/sl_shm.h"
#include "spool/sl_spool.h"

#define SL_SMTPD_BOARD_SLOTS 8192 /* listener processes alive at once, old and new in a reload */

struct sl_smtpd_board;   /* board.c */
struct sl_smtpd_lockout; /* lockout.c */
struct creds;            /* auth.c */

/* What the master prepares for a listener before it drops privileges (the TLS key, the
 * credentials may be readable by root alone), inherited by its processes. */
struct sl_smtpd_prep {
    SSL_CTX *tls;        /* NULL: no STARTTLS */
    struct creds *creds; /* NULL: no AUTH */
};

/* What a forked listener process inherits. */
struct sl_smtpd_ctx {
    const struct sl_config *cfg;
    size_t listener; /* index into cfg->listeners */
    int fd;          /* its listening socket */
    const char *spool;
    struct sl_spool_group *group;
    struct sl_smtpd_board *board;
    struct sl_smtpd_lockout *lockout; /* failed AUTH by client address */
    uint32_t gen;
    pid_t master;
    const struct sl_smtpd_prep *prep;
    struct sl_shm *shm; /* the daemon's segment, for the listener's statistics */
    int stat;           /* its entry there (sl_lstat_claim), -1: none */
};

/* Build l's TLS context and read its credentials; false with err. */
bool sl_smtpd_prepare(const struct sl_listener *l, struct sl_smtpd_prep *p, char *err,
                      size_t errlen);
void sl_smtpd_prep_free(struct sl_smtpd_prep *p);
/* A listening socket for l (SO_REUSEADDR, v6-only for IPv6), or -1 with err. */
int sl_smtpd_bind(const struct sl_listener *l, char *err, size_t errlen);
/* The process's life: accept, serve, until SIGTERM (after its session) or the master's death. */
_Noreturn void sl_smtpd_main(const struct sl_smtpd_ctx *ctx);

/* The failed-AUTH table (lockout.c): made before the first fork, kept for the daemon's life. */
struct sl_smtpd_lockout *sl_smtpd_lockout_new(void);
/* For sluicectl lockouts: the entries live now from index *from on, a line each while they fit
 * in out ("ADDRESS FAILURES AGE_MS WINDOW_MS\n"; ADDRESS a.b.c.d or an IPv6 /64); *from is
 * where the next page starts (SL_SMTPD_LOCKOUT_SLOTS: done).  false: the table is busy. */
#define SL_SMTPD_LOCKOUT_SLOTS 4096
bool sl_smtpd_lockout_page(struct sl_smtpd_lockout *t, size_t *from, char *out, size_t len);
/* For sluicectl unlock: peer's failures (its /64 for IPv6) forgotten, their number in *had. */
enum sl_smtpd_forget { SL_SMTPD_FORGOTTEN, SL_SMTPD_NONE_COUNTED, SL_SMTPD_TABLE_BUSY };
enum sl_smtpd_forget sl_smtpd_lockout_forget(struct sl_smtpd_lockout *t,
                                             const struct sockaddr_storage *peer, uint32_t *had);
/* The shared board (board.c): made before the first fork; cleared for a reaped pid. */
struct sl_smtpd_board *sl_smtpd_board_new(void);
void sl_smtpd_board_forget(struct sl_smtpd_board *b, pid_t pid);
/* Had pid taken its entry, i.e. reached its accept loop (the master's "ready", for the
 * back-off)?  Asked before sl_smtpd_board_forget. */
bool sl_smtpd_board_was_ready(const struct sl_smtpd_board *b, pid_t pid);
/* Sessions open now, by statistics entry (sl_lstat_claim), into open[SL_LSTAT_LISTENERS]. */
void sl_smtpd_board_sessions(const struct sl_smtpd_board *b, uint64_t open[SL_LSTAT_LISTENERS]);

#endif
