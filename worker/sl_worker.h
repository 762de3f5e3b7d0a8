/*
 * sl_worker.h - the worker process: one blocking session at a time.
 *
 * A worker inherits the config and the counter-table mapping across fork and
 * talks to the master over one SOCK_SEQPACKET socketpair.  It keeps SIGALRM and
 * SIGTERM blocked except inside ppoll(), so a signal can never land between a
 * counter change and its ownership record (I2) and the per-phase alarm() turns
 * into EINTR exactly where the session waits for the peer.
 */
#ifndef SL_WORKER_H
#define SL_WORKER_H

#include <signal.h>
#include <stdint.h>

#include "config/sl_config.h"
#include "shm/sl_shm.h"

/*
 * Messages on the socketpair: one datagram each, first byte the type.
 *
 * Delivery jobs (the scheduler's; probes are in sl_control.h):
 *   master -> worker  "J<job> D <binding> <domain> <id>.<k>[:<n>|+][!<c>] [...]"
 *        deliver parts k of messages id (at most SL_JOB_PARTS of them), all
 *        for one binding x destination domain, over one connection when the
 *        limits allow.  :<n> is the part's attempts as last reported, a floor
 *        for the spool's count (a state the disk had no room for is older).
 *        + marks a part the master knows has no state file (never saved, never
 *        handed out since): the worker starts it as never tried without looking
 *        for one (a failed lookup in state/ costs as much as a small write).
 *        !<c> marks a suspect: the part was in c jobs whose worker died of its own
 *        doing; the worker records c in the part's state file before it tries it.
 *   worker -> master  "D<job> <id>.<k>=<outcome> [...]"  once every part of
 *        the job is settled (state already durable in the spool); a job the worker
 *        could not read gets "D<job>" alone, and the master tries every part of it
 *        again later (so it does with any part a "D" leaves out).  outcome:
 *          d         final: every recipient of the part delivered or bounced
 *                    (a message of one part is already removed from the spool;
 *                    for several parts the master removes it after the last)
 *          k         final, but the file of the message (of one part) could not be
 *                    removed: its final state is saved if it can be, and the master
 *                    never indexes it again (sl_pickup_keep_out)
 *          f<time>:<n>  deferred: next attempt not before UNIX time <time>,
 *                    after n attempts in all
 *          w         not attempted: a counter was full (the master holds the
 *                    destination back until a connection closes)
 *          y<slot>[h] not attempted: the connection was spent and another
 *                    destination's mail waits for the counter in slot, which it
 *                    held, so it closed (the master queues the part again; the freed
 *                    units go to the mail that waited).  A host's counter there
 *                    makes the destination's jobs one connection's worth from then
 *                    on; "h": the host is the destination's only MX host, so the
 *                    master counts that counter as the destination's own.
 *          r         refused for now: the spool file could not be read (a transient
 *                    failure such as EMFILE or EIO); the master tries it later
 *          x         gone: the spool file is missing, or was damaged and set aside
 *                    in spool/corrupt/
 *   worker -> master  "K <binding> <domain> <mx>"  the connection (to MX host
 *        mx) stays open for more mail to that destination (idle_timeout); a J for
 *        it reuses it, a J for another destination moves it there when both share
 *        the host (migrate_connections_between_sibling_domains), else closes it.
 *   worker -> master  "I"  idle with no connection: its counters are released.
 *   worker -> master  "N <id>"  the worker queued a new message (a bounce).
 *   worker -> master  "S <kind> <name> <name2|-> <slot>[h]"  sent with a "w"
 *        outcome: the counter that refused (the master's destination waits for it);
 *        "h": the destination has one MX host, so a host's counter is its own (the
 *        master counts it in the destination's room from then on).
 *   worker -> master  "T <binding> <domain> <mx|-> <R|L> <reply>"  a deferral or bounce
 *        reply, from the receiver (R) or made up by the worker (L), for the [shaping]
 *        rules (only when the config has some).
 */
enum sl_wmsg {
    SL_WMSG_HELLO = 'H', /* worker -> master: up and waiting (then its pid, decimal) */
    SL_WMSG_QUIT = 'Q',  /* master -> worker: exit when idle */
    SL_WMSG_JOB = 'J',   /* master -> worker: a job (sl_control.h, or D above) */
    SL_WMSG_DONE = 'D',  /* worker -> master: outcomes of a delivery job */
    SL_WMSG_KEEP = 'K',  /* worker -> master: holding a connection open */
    SL_WMSG_IDLE = 'I',  /* worker -> master: idle, no connection */
    SL_WMSG_NEW = 'N',   /* worker -> master: new message in the spool */
    SL_WMSG_STUCK = 'S', /* worker -> master: the counter that refused */
    SL_WMSG_LOG = 'L',   /* master -> worker: reopen the delivery log (SIGUSR1) */
    SL_WMSG_REPLY = 'T', /* worker -> master: a failure reply, for the [shaping] rules */
};

#define SL_JOB_PARTS 128  /* parts in one delivery job: a turn on a contended counter */
#define SL_JOB_MAX   8192 /* bytes in one job or outcome datagram */

struct sl_worker_ctx {
    const struct sl_config *cfg;
    struct sl_shm *shm;
    uint32_t gen;
    const char *spool; /* spool_dir */
};

/* The worker process: say hello, wait for jobs on fd until told to stop. */
_Noreturn void sl_worker_main(int fd, uint32_t owner, void *ctx);

/* worker/admin.c: the operator's command on part k of message id, made durable and logged,
 * run by the master for a part no worker holds.  delete and bounce make every pending
 * recipient final (a delivery-log line, outcome "deleted" or "bounced", phase "operator";
 * bounce queues an RFC 3464 report with reason first, its id into dsn_id, else "");
 * hold and release write the part's hold. */
#define SL_ADMIN_ID_MAX 32 /* room for a queue id */
enum sl_admin_op { SL_ADMIN_DELETE, SL_ADMIN_BOUNCE, SL_ADMIN_HOLD, SL_ADMIN_RELEASE };
enum sl_admin_result {
    SL_ADMIN_FINAL,  /* every recipient of the part is final (it was, or is now) */
    SL_ADMIN_KEPT,   /* hold or release written; the part stays queued */
    SL_ADMIN_GONE,   /* the message left the spool (or was damaged and set aside) */
    SL_ADMIN_FAILED, /* could not be read or written now (logged); nothing changed */
};
enum sl_admin_result sl_worker_admin(const struct sl_worker_ctx *ctx, enum sl_admin_op op,
                                     const char *id, unsigned k, const char *reason,
                                     char dsn_id[SL_ADMIN_ID_MAX]);

#endif
