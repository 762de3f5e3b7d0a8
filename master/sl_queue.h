/*
 * sl_queue.h - the master's in-memory index of the spool: messages, their
 * parts, the destinations they wait for, and the retry timer heap.
 *
 * Pure data structures, no I/O (the spool on disk stays the truth; this index
 * can always be rebuilt from it), so every rule of the scheduler is unit-tested
 * without a daemon.  Every operation is O(1) or O(log n) in queued parts:
 *   - id -> message and "binding\0domain" -> destination: hash tables keyed
 *     with SipHash (ids and domains come from outside);
 *   - one FIFO of ready parts per destination (doubly linked, so a part can be
 *     put back at the front or dropped from the middle);
 *   - a round-robin ring of destinations that have ready parts and are not
 *     blocked: the head is served, then moved to the tail, so a domain with
 *     100,000 parts cannot starve one with 10;
 *   - a list of blocked destinations (counters full), in the order they were
 *     held back, released all at once to the ring's head when a connection
 *     closes, so the one that waited longest is served first;
 *   - a binary min-heap of deferred parts by next attempt time.
 * A part is in exactly one place: a ready FIFO (READY), a worker's job
 * (INFLIGHT), the heap (TIMER), nowhere while the operator holds it (HELD),
 * or nowhere (DONE).
 * Concurrency: the master's main loop only.
 */
#ifndef SL_QUEUE_H
#define SL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/sl_limits.h"
#include "config/sl_throttle.h"
#include "spool/sl_spool.h"

enum sl_part_state {
    SL_PART_READY,    /* in its destination's FIFO */
    SL_PART_INFLIGHT, /* handed to a worker in job `job` */
    SL_PART_TIMER,    /* in the heap until `next` */
    SL_PART_HELD,     /* held by the operator: never handed out until released */
    SL_PART_DONE,     /* final; kept only until the message's last part is */
};

struct sl_qmsg;
struct sl_qdest;

#define SL_QPART_CRASHES_MAX 31 /* what crashes counts up to */

struct sl_qpart {
    struct sl_qmsg *msg;
    struct sl_qdest *dest;
    struct sl_qpart *prev, *next; /* in dest's FIFO while READY */
    int64_t due;                  /* next attempt (UNIX seconds) while TIMER */
    uint64_t job;                 /* the job holding it while INFLIGHT */
    size_t heap;                  /* index in the heap while TIMER */
    uint32_t attempts;            /* attempts the workers reported: a floor for the spool's
                                     count, which a full disk may have kept from being saved */
    uint16_t k;                   /* part number within the message */
    uint8_t state : 3;            /* enum sl_part_state */
    uint8_t crashes : 5;          /* jobs it was in whose worker died of its own doing (at most
                                     SL_QPART_CRASHES_MAX): from one on it goes in a job of its own, so
                                     that a message that kills workers takes no other down with it */
    bool fresh; /* no state file can exist: none was there when it was indexed and it was
                   never handed out or touched by an operator's command since (the worker
                   then skips looking for one) */
};
_Static_assert(sizeof(struct sl_qpart) <= 64, "a part per message and domain: one cache line");

struct sl_qmsg {
    struct sl_qmsg *hnext; /* hash chain */
    uint64_t hash;
    char id[SL_SPOOL_ID_LEN + 1];
    uint16_t nparts; /* parts of the message in the spool */
    uint16_t left;   /* parts not yet final */
    struct sl_qpart part[];
};

enum sl_qdest_where { SL_QDEST_IDLE, SL_QDEST_RING, SL_QDEST_BLOCKED };

struct sl_qdest {
    struct sl_qdest *hnext; /* hash chain */
    uint64_t hash;
    char *binding, *domain;         /* one allocation: "binding\0domain\0" */
    struct sl_qdest *lprev, *lnext; /* in the ring or the blocked list (see where) */
    struct sl_qpart *head, *tail;   /* FIFO of READY parts */
    size_t nready;
    size_t refs;    /* parts of any state but DONE that belong here */
    unsigned conns; /* workers holding an open connection to it (the scheduler's count) */
    unsigned jobs;  /* its delivery jobs whose workers are not free again yet (the
                     * scheduler's count): each has a connection or opens one, before its
                     * worker's "K" counts it; d lives while any is out */
    uint8_t where;  /* enum sl_qdest_where */
    struct sl_limits_cache room; /* the scheduler's cache of its counters */
    /* the shaping gate's throttles, by enum sl_throttle_kind: made when a throttle is set */
    struct sl_throttle_memo *throttle;
    /* The scheduler's record of a wait for a full counter (schedule.c): */
    uint32_t wait_slot;  /* the counter it waits for; UINT32_MAX: none */
    bool gated;          /* held back by the shaping gate for every job, those of its open
                          * connections too (a suspension, an empty message bucket) */
    uint64_t wait_since; /* CLOCK_REALTIME ms the wait began */
    /* The queue's: when it was held back (a sequence number), kept once released until its
     * turn comes, so releases keep the longest waiting first; 0: none. */
    uint64_t held_seq;
};

/* A part as the spool scan found it. */
struct sl_queue_part_init {
    const char *domain;
    bool done;        /* every recipient final: not queued */
    int64_t due;      /* next attempt, UNIX seconds (0: never tried) */
    bool held;        /* the operator holds it (state file): HELD, not queued */
    bool fresh;       /* known to have no state file (sl_qpart.fresh) */
    uint32_t crashes; /* crashed jobs it was in (state file): a suspect, sent alone */
};

struct sl_queue;

struct sl_queue *sl_queue_new(void);
void sl_queue_free(struct sl_queue *q);

/* Index a message.  Parts not done go to their destination's FIFO when due by
 * now, to the heap otherwise.  NULL when the id is already indexed, nparts is 0
 * or over SL_SPOOL_PARTS_MAX, or a name is over 255 bytes (the caller checks
 * that some part is not done). */
struct sl_qmsg *sl_queue_add(struct sl_queue *q, const char *id, const char *binding, size_t nparts,
                             const struct sl_queue_part_init *parts, int64_t now);
struct sl_qmsg *sl_queue_find(const struct sl_queue *q, const char *id);
/* Messages indexed, and parts READY, INFLIGHT or TIMER. */
size_t sl_queue_messages(const struct sl_queue *q);
size_t sl_queue_count(const struct sl_queue *q, enum sl_part_state st);

/* The destination the ring serves next, NULL when none is ready. */
struct sl_qdest *sl_queue_next(const struct sl_queue *q);
/* Look a destination up (NULL when unknown); the scheduler's "K b d". */
struct sl_qdest *sl_queue_dest(const struct sl_queue *q, const char *binding, const char *domain);
/* The first READY part of dest, NULL when none. */
struct sl_qpart *sl_queue_peek(const struct sl_qdest *d);
/* Hand the first READY part of dest to job: INFLIGHT.  NULL when none. */
struct sl_qpart *sl_queue_take(struct sl_queue *q, struct sl_qdest *d, uint64_t job);
/* Dest had its turn: to the tail of the ring (or out of it when it has no
 * ready part left). */
void sl_queue_rotate(struct sl_queue *q, struct sl_qdest *d);
/* Hold dest back (counters full): out of the ring until sl_queue_unblock_all. */
void sl_queue_block(struct sl_queue *q, struct sl_qdest *d);
/* A connection closed: every blocked destination gets its turn again, at the ring's head in
 * the order they were held back (the longest waiting first).  Returns how many were blocked. */
size_t sl_queue_unblock_all(struct sl_queue *q);
/* The same for the blocked destinations match(d, arg) is true of (a counter they wait for
 * freed): at the ring's head, the longest waiting first.  Returns how many were released. */
size_t sl_queue_release_where(struct sl_queue *q,
                              bool (*match)(const struct sl_qdest *d, const void *arg),
                              const void *arg);
/* d got a connection: out of the blocked list, to the ring's tail when it has ready parts. */
void sl_queue_unblock(struct sl_queue *q, struct sl_qdest *d);
/* The blocked list, the longest held back first: the first, and the one after d (NULL at
 * the end). */
struct sl_qdest *sl_queue_first_blocked(const struct sl_queue *q);
struct sl_qdest *sl_queue_next_blocked(const struct sl_queue *q, const struct sl_qdest *d);
/* A delivery job for d is out; its worker is free again (K, I) or dead: d is kept while
 * jobs are out, and freed at the last one's end when nothing else refers to it. */
void sl_queue_job_add(struct sl_qdest *d);
void sl_queue_job_del(struct sl_queue *q, struct sl_qdest *d);
/* fn(d, arg) whenever d has no ready part left (taken, deferred, dropped, or found so when
 * unblocked) and before d is freed. */
void sl_queue_set_idle_hook(struct sl_queue *q, void (*fn)(struct sl_qdest *d, void *arg),
                            void *arg);
size_t sl_queue_blocked(const struct sl_queue *q);
/* Destinations in the ring (ready, not held back), counted up to max. */
size_t sl_queue_ring_upto(const struct sl_queue *q, size_t max);

/* Outcomes of an INFLIGHT part. */
/* Final ("d"): true when it was the message's last part; the message is then
 * dropped from the index and *msg must not be used again. */
bool sl_queue_done(struct sl_queue *q, struct sl_qpart *p);
/* Deferred ("f"): to the heap until due. */
void sl_queue_defer(struct sl_queue *q, struct sl_qpart *p, int64_t due);
/* Not attempted ("w") or its worker died: back to the FRONT of its FIFO. */
void sl_queue_requeue(struct sl_queue *q, struct sl_qpart *p);
/* Gone ("x"): drop the message and every part of it, wherever they are. */
void sl_queue_drop(struct sl_queue *q, struct sl_qmsg *m);

/* The operator's queue commands (master/queue_ops.c) on a part that is not INFLIGHT: */
/* Hold: out of its FIFO or the heap, never handed out until released. */
void sl_queue_hold(struct sl_queue *q, struct sl_qpart *p);
/* Release a HELD part: to its FIFO when due by now, to the heap otherwise. */
void sl_queue_unhold(struct sl_queue *q, struct sl_qpart *p, int64_t now);
/* Retry now: a TIMER part to the tail of its FIFO (other states unchanged). */
void sl_queue_flush_part(struct sl_queue *q, struct sl_qpart *p);
/* Final (deleted or bounced by the operator): as sl_queue_done for a part in
 * any state but INFLIGHT and DONE. */
bool sl_queue_finish(struct sl_queue *q, struct sl_qpart *p);

/* Move every part whose time has come (due <= now) from the heap to the tail
 * of its FIFO; returns how many. */
size_t sl_queue_release_due(struct sl_queue *q, int64_t now);
/* The earliest due time in the heap, or INT64_MAX when it is empty. */
int64_t sl_queue_next_due(const struct sl_queue *q);

/* Destinations a scheduler counts connections on: dest stays indexed while
 * conns > 0 even with no part. */
void sl_queue_conn_add(struct sl_qdest *d);
void sl_queue_conn_del(struct sl_queue *q, struct sl_qdest *d);
/* Index a destination without parts (a worker said K for one we did not know). */
struct sl_qdest *sl_queue_dest_get(struct sl_queue *q, const char *binding, const char *domain);

#endif
