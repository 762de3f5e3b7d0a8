/*
 * sl_promise.h - connection units the master has promised to jobs not yet started.
 *
 * The scheduler checks a counter's room before it hands out a job that opens a
 * connection, but the worker takes the units only once it starts the job (after
 * its MX lookup).  Without a record of the jobs in between, one dispatch pass
 * would hand a small limit's units out many times over, and every worker but
 * the first few would be refused (an attempt logged "held" and a refusal on the
 * counter, for nothing).  A promise counts the units as in use from the job's
 * dispatch until the worker has tried to take them: its owner record's
 * acquired or refused figure moved, or the job ended.  Master only.
 */
#ifndef SL_PROMISE_H
#define SL_PROMISE_H

#include <stdbool.h>
#include <stdint.h>

#include "master/sl_supervise.h"
#include "shm/sl_shm.h"

struct sl_promises {
    uint16_t *n;  /* units promised, by counter slot; NULL until the first promise */
    uint32_t cap; /* slots in n: the table's slot capacity */
};

void sl_promise_free(struct sl_promises *p);
/* The units promised by slot (for sl_limits_room_cached), or NULL when none ever was. */
const uint16_t *sl_promise_counts(const struct sl_promises *p);
/* Worker w's job will open a connection that takes a unit of each counter in slot[0..n). */
void sl_promise_make(struct sl_promises *p, const struct sl_shm *shm, struct sl_worker_slot *w,
                     const uint32_t *slot, uint32_t n);
/* End w's promise once it tried to take the units.  When it ended without taking them
 * (refused), the counters it kept from others are free again: their slots go to freed, and
 * their number is returned (0 when the units were taken or the worker has not tried yet). */
uint32_t sl_promise_settle(struct sl_promises *p, const struct sl_shm *shm,
                           struct sl_worker_slot *w, uint32_t freed[SL_RESV_MAX]);
/* End w's promise now (its job is over, or it died): the same, freed when never taken.  A
 * promise that ends taken (here or through settle) leaves its slots in w->taken, for the
 * release after a refusal that gave them back; sl_promise_make clears them. */
uint32_t sl_promise_end(struct sl_promises *p, const struct sl_shm *shm, struct sl_worker_slot *w,
                        uint32_t freed[SL_RESV_MAX]);

#endif
