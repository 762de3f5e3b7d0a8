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

#include "sl_config.h"
#include "sl_shm.h"

/* Messages on the socketpair: one datagram each, first byte the type. */
enum sl_wmsg {
    SL_WMSG_HELLO = 'H', /* worker -> master: up and waiting (then its pid, decimal) */
    SL_WMSG_QUIT = 'Q',  /* master -> worker: exit when idle */
    SL_WMSG_JOB = 'J',   /* master -> worker: a job (sl_control.h) */
};

struct sl_worker_ctx {
    const struct sl_config *cfg;
    struct sl_shm *shm;
    uint32_t gen;
};

/* The worker process: say hello, wait for jobs on fd until told to stop. */
_Noreturn void sl_worker_main(int fd, uint32_t owner, void *ctx);

/* worker/probe.c: run one probe job ("J<id> P ...", sl_control.h) and answer
 * it; the hold waits in ppoll with wait_mask and ends early on *stop. */
void sl_worker_probe(int fd, uint32_t owner, const struct sl_worker_ctx *ctx, const char *job,
                     const sigset_t *wait_mask, volatile sig_atomic_t *stop);

#endif
