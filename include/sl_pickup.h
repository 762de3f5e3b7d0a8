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

#include "sl_schedule.h"

#define SL_PICKUP_RESCAN_MS 60000

/* Create the spool's directories (fatal with one clear line when that fails)
 * and index every queued message; returns how many were indexed. */
size_t sl_pickup_start(struct sl_sched *s);
/* Index queue/ID when it is new to the index and readable: one read of the
 * envelope and of each part's state.  Parts already final are not queued; a
 * message whose parts are all final is removed from the spool. */
bool sl_pickup_id(struct sl_sched *s, const char *id);
/* Index every queued id the index lacks; returns how many. */
size_t sl_pickup_rescan(struct sl_sched *s);
/* True for a well-formed queue id (it becomes a path). */
bool sl_pickup_valid_id(const char *id);

#endif
