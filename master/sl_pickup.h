/*
 * sl_pickup.h - how queued mail reaches the scheduler's index: the spool scan
 * at start, "N <id>" notifications (from sluicectl inject on the control
 * socket, from workers that queued a bounce), and a periodic rescan as a
 * safety net for a notification that was lost.  Master only.
 */
#ifndef SL_PICKUP_H
#define SL_PICKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "master/sl_schedule.h"

#define SL_PICKUP_RESCAN_MS    60000
#define SL_PICKUP_RESCAN_BATCH 1024 /* directory entries a rescan reads per loop pass */

#define SL_PICKUP_CHUNK         256  /* messages the start scan indexes per loop pass */
#define SL_PICKUP_WARMUP_MS     250  /* the start scan's warm-up at most (sl_pickup_warming) */
#define SL_PICKUP_READAHEAD_MIN 1024 /* messages left that are worth a read-ahead thread */

/* Create the spool's directories (fatal with one clear line when that fails),
 * list queue/ and index its first SL_PICKUP_CHUNK messages; the rest follow
 * through sl_pickup_step.  Returns how many messages queue/ holds. */
size_t sl_pickup_start(struct sl_sched *s);
/* Index up to max more messages of the start scan, oldest first; true while
 * some are left.  A message without a state file at the listing costs one
 * read of its envelope, no state-file lookup. */
bool sl_pickup_step(struct sl_sched *s, size_t max);
/* Is the start scan still indexing? */
bool sl_pickup_pending(const struct sl_sched *s);
/* Is the start scan in its warm-up: still indexing, for less than SL_PICKUP_WARMUP_MS?  Then
 * a destination is served only once WARM_PARTS (schedule.c) of its mail are indexed: after a
 * restart with a backlog over many domains, each one's first connection carries its mail,
 * not the one message the first chunks happened to hold (a second connection for the rest). */
bool sl_pickup_warming(const struct sl_sched *s);
/* Drop what is left of the start scan (at its end, and when the scheduler is freed). */
void sl_pickup_forget(struct sl_sched *s);
/* The daemon stops: the start scan indexes no more, so its read-ahead thread ends now rather
 * than wait, waking every half millisecond, through the workers' grace. */
void sl_pickup_stop_readahead(struct sl_sched *s);
/* Index queue/ID when it is new to the index and readable: one read of the
 * envelope and of each part's state.  Parts already final are not queued; a
 * message whose parts are all final is removed from the spool. */
bool sl_pickup_id(struct sl_sched *s, const char *id);
/* The same for a message just written and announced: known to have no state file yet. */
bool sl_pickup_new(struct sl_sched *s, const char *id);
/* The periodic rescan, a batch at a time: index the queued ids the index lacks among the next
 * max entries of the spool's directories, starting a rescan when none runs; true while it goes
 * on.  None starts while the start scan indexes (the ids of its listing come in their turn): a
 * message announced since, whose announcement was lost, waits for the first rescan after it. */
bool sl_pickup_rescan_step(struct sl_sched *s, size_t max);
/* A finished message whose file could not be removed: nothing indexes it again (its mail
 * would be sent again each time); its removal is tried again after each rescan, and it is
 * forgotten once its file is gone. */
void sl_pickup_keep_out(struct sl_sched *s, const char *id, size_t nparts);
/* Message id (nparts parts) is finished and out of the index: its file goes, or it is kept
 * out when it cannot (a worker already removed one of a single part: then this finds it gone). */
void sl_pickup_finished(struct sl_sched *s, const char *id, size_t nparts);

#endif
