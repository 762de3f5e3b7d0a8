/*
 * sl_queue_ops.h - the operator's queue commands in the master: delete,
 * bounce, hold, release and flush of queued mail (sluicectl), as "O" requests
 * on the control socket (sl_control.h).
 *
 * A part no worker holds is acted on at once; a part in flight is marked, and
 * the command is applied when its attempt's outcome has come back
 * (sl_queue_ops_settle), so a recipient is never both delivered and bounced,
 * and no part is handed out again before its command ran.
 * Master only, from the main loop.
 */
#ifndef SL_QUEUE_OPS_H
#define SL_QUEUE_OPS_H

#include <stddef.h>

struct sl_sched;
struct sl_worker_ctx;

/* The context the on-disk work runs with (config, spool, counter table); it must
 * outlive every call, and may change in place (a reload). */
void sl_queue_ops_init(const struct sl_worker_ctx *ctx);
/* One "O ..." request: act, and write the one-line answer into ans. */
void sl_queue_ops_request(struct sl_sched *s, char *req, char *ans, size_t len);
/* Apply the commands that waited for an attempt that has ended; call before each
 * dispatch and while draining. */
void sl_queue_ops_settle(struct sl_sched *s);
/* Forget the commands still waiting (at exit). */
void sl_queue_ops_free(void);

#endif
