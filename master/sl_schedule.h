/*
 * sl_schedule.h - the master's scheduler: delivery jobs out to the workers,
 * their outcomes back into the queue index (sl_queue.h).
 *
 * Jobs and outcomes follow the protocol in sl_worker.h.  Master only, from
 * the main loop; nothing here blocks or touches the disk except removing a
 * finished multi-part message (sl_spool_remove; kept out when that fails).
 */
#ifndef SL_SCHEDULE_H
#define SL_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config/sl_config.h"
#include "master/sl_kept_out.h"
#include "master/sl_promise.h"
#include "master/sl_queue.h"
#include "shm/sl_shm.h"
#include "spool/sl_spool.h"
#include "master/sl_supervise.h"

struct sl_readahead;

#define SL_SCHED_UNBLOCK_MS                                                                        \
    1000 /* a held-back destination tries again at the latest after this                           \
          */

#define SL_SCHED_REFUSED_S 60  /* a part a worker could not read waits this long */
#define SL_SCHED_CRASHED_S 300 /* the parts of a worker that crashed with them wait this long */

struct sl_sched {
    struct sl_queue *q;
    struct sl_shm *shm;      /* the counter table (set by sl_sched_dispatch): waits shown there */
    const char *spool;       /* spool_dir (the caller's string) */
    uint64_t last_job;       /* job ids, for matching outcomes */
    bool draining;           /* SIGTERM: no new jobs */
    bool unblock_armed;      /* some destination is held back */
    struct timespec unblock; /* ... until this at the latest */
    uint64_t jobs, parts;    /* handed out (statistics) */
    struct sl_promises promises; /* units promised to jobs that open a connection */
    /* The start scan, indexed a chunk per loop pass (sl_pickup_step) so that
     * delivery starts while a large spool is still being read. */
    struct sl_spool_ids scan_ids;   /* queue/ at the start, oldest first */
    struct sl_spool_ids scan_state; /* ids that had a state file then */
    size_t scan_next;               /* the next entry of scan_ids to index */
    bool scan_trust;                /* scan_state still tells which ids have none */
    uint64_t started_us;      /* wall clock before the start listing: an older id may have a state
                                 file even when announced as new (sl_pickup_new) */
    uint64_t scan_warm_until; /* sl_clock_us: the start scan's warm-up ends (pickup.c) */
    struct sl_readahead *scan_ahead; /* its envelopes read on a thread (readahead.c), or NULL */
    bool scan_ahead_tried;           /* that thread was started (or could not be) */
    /* The periodic rescan, a batch of directory entries per loop pass (sl_pickup_rescan_step). */
    struct sl_spool_walk *rescan; /* the one under way, or NULL */
    size_t rescan_added;          /* ids it found that the index lacked */
    /* Finished messages whose file could not be removed: never indexed again, their removal
     * tried again after each rescan (sl_kept_out.h). */
    struct sl_kept_out kept_out;
};

/* An empty scheduler; spool must outlive it. */
void sl_sched_init(struct sl_sched *s, const char *spool);
void sl_sched_free(struct sl_sched *s);
/* Hand jobs to the free current-generation workers while destinations are
 * ready: round-robin over destinations, a worker already connected to the
 * destination first, then an idle one, then one connected elsewhere.  A
 * destination whose counters are full is held back (sl_limits_dest_room).
 * Cheap when nothing is ready. */
void sl_sched_dispatch(struct sl_sched *s, struct sl_supervisor *sup, const struct sl_config *cfg,
                       struct sl_shm *shm, uint32_t gen);
/* The limits changed (a reload): every held-back destination tries again. */
void sl_sched_limits_changed(struct sl_sched *s);
/* A message from worker w (D, K, I, N or S; sl_worker.h). */
void sl_sched_from_worker(struct sl_sched *s, struct sl_supervisor *sup, unsigned w,
                          const char *msg, size_t len);
/* A worker was reaped (struct sl_supervisor's on_exit; status: waitpid's): its job's parts
 * go back to their queues, at once when it was killed from outside, SL_SCHED_CRASHED_S later
 * when it died of its own doing (sl_supervise_own_death); its connection is gone. */
void sl_sched_worker_exit(struct sl_worker_slot *w, int status, void *sched);
/* Timers: deferred parts whose time came, the held-back safety net. */
void sl_sched_tick(struct sl_sched *s);
/* Milliseconds until sl_sched_tick has work (-1: none pending). */
long sl_sched_wait_ms(const struct sl_sched *s);
/* Parse "<id>.<k>"; false when malformed. */
bool sl_sched_parse_part(const char *tok, size_t len, char *id, unsigned *k);

#endif
