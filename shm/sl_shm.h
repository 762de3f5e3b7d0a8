/*
 * sl_shm.h - the shared-memory table of connection counters.
 *
 * The master creates one segment (shm_open, mode 0640) and the workers inherit
 * the mapping across fork; sluicectl maps it read-only.  No locks anywhere:
 * every change is a compare-and-swap on one word, so a process that dies at
 * any instruction leaves no lock behind, and the inspector never blocks the
 * daemon.
 *
 * Layout (offsets, never pointers; fixed-width types; this is an ABI):
 *   struct sl_shm_header
 *   struct sl_shm_slot   slots[slot_capacity]     open addressing, linear probe
 *   struct sl_shm_owner  owners[owner_capacity]   one per worker process
 *   char                 arena[arena_bytes]       the slots' key strings
 *
 * A slot only moves forward within one segment: EMPTY -> CLAIMED -> LIVE
 * (or CLAIMED -> ABANDONED when its claimer died before publishing it).  Keys
 * are immutable once LIVE, so lookups take no lock.  A slot's count word packs
 * (sequence << 32 | in_use): every change bumps the sequence, so an audit can
 * tell "unchanged" from "changed and back".  A slot's limit word packs
 * (config generation << 32 | (uint32_t)limit): the newest generation wins.
 *
 * Invariants (architecture.md):
 *   I1  a reservation increments every counter below its limit, in one fixed
 *       order, or none of them (roll-back, refused scope reported);
 *   I2  each hold is recorded in the owner record (intent, held, releasing)
 *       before and after the counter changes, so the master can return a dead
 *       worker's holds (sl_shm_reclaim_owner) and the audit can settle a count
 *       that was in flux (sl_shm_audit);
 *   I3  the header is filled before `ready` is set; the inspector checks magic,
 *       version, sizes against the mapping, and master pid/start/inode.
 * Callers run sl_resv_acquire/sl_resv_release with SIGALRM and SIGTERM blocked
 * (the worker keeps them blocked outside ppoll), so no handler runs between a
 * counter change and its record change.
 *
 * Trust boundary: the segment's contents are ours when we created it; a
 * read-only attach validates the header before trusting any offset in it.
 */
#ifndef SL_SHM_H
#define SL_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/sl_atomic.h"

#define SL_SHM_MAGIC     0x534c5549434531ULL /* "SLUICE1" */
#define SL_SHM_VERSION   7u
#define SL_SHM_NAME_MAX  255  /* one key component, bytes, without NUL */
#define SL_RESV_MAX      16   /* counters in one reservation */
#define SL_OWNER_RECORDS 4    /* reservations one owner may hold at once */
#define SL_LIMIT_NONE    (-1) /* no limit */

/* Scope kinds, in the fixed order a reservation takes them: narrowest first, so
 * that a refusal usually comes before any wide counter was touched. */
enum sl_scope_kind {
    SL_SCOPE_NONE = 0,
    SL_SCOPE_BINDING_DOMAIN, /* max_outbound_connections: binding x domain */
    SL_SCOPE_BINDING_HOST,   /* [host H] max_outbound_connections: binding x MX */
    SL_SCOPE_HOST,           /* scope_max in [host H]: MX, all bindings */
    SL_SCOPE_GROUP_DOMAIN,   /* scope_max in [binding_group G domain D] */
    SL_SCOPE_DOMAIN,         /* scope_max in [domain D] (D a name or /regex/) */
    SL_SCOPE_BINDING,        /* server_max in [binding B] */
    SL_SCOPE_SERVER,         /* server_max (and scope_max) in [global] */
    SL_SCOPE_RESERVE,        /* server_reserve_outbound_connections */
    SL_SCOPE_CLUSTER,        /* cluster_max_outbound_connections (this node's share) */
    SL_SCOPE_THROTTLE_CONN,  /* outbound_throttle_connections: a bucket, not a counter */
    SL_SCOPE_THROTTLE_MSG,   /* outbound_throttle_messages: a bucket, not a counter */
    SL_SCOPE_ACTION_CAP,     /* a shaping action's max_outbound_connections (shm/cap.c) */
    SL_SCOPE__COUNT
};

/* Short lower-case name of a kind ("binding_domain", "server", ...). */
const char *sl_scope_kind_name(enum sl_scope_kind kind);
/* The kind named so, or SL_SCOPE_NONE. */
enum sl_scope_kind sl_scope_kind_parse(const char *name);

enum sl_slot_state {
    SL_SLOT_EMPTY = 0,
    SL_SLOT_CLAIMED = 1,
    SL_SLOT_LIVE = 2,
    SL_SLOT_ABANDONED = 3
};

struct sl_shm_slot {
    sl_atomic_u64 tag;     /* hash & ~0xffff | claimer owner << 2 | state */
    sl_atomic_u64 count;   /* seq << 32 | in_use */
    sl_atomic_u64 limit;   /* generation << 32 | (uint32_t)limit */
    sl_atomic_u64 refused; /* reservations this counter refused (statistics) */
    sl_atomic_u64 peak;    /* highest in_use seen (statistics) */
    uint32_t key_off;      /* key in the arena: name NUL name2 NUL */
    uint16_t name_len;
    uint16_t name2_len;
    uint8_t kind; /* enum sl_scope_kind */
    uint8_t pad[15];
    /* Second cache line: mail waiting for this counter (shm/wait.c), written by the master
     * alone, so its stores never share a line with the workers' CAS on count. */
    sl_atomic_u32 waiting;    /* destinations held back by this counter now */
    sl_atomic_u32 waiters;    /* the waiting ones' sl_shm_waiter_key XORed: while one waits,
                               * its key */
    sl_atomic_u64 holdbacks;  /* times a destination started waiting for it (statistics) */
    sl_atomic_u64 waited_ms;  /* milliseconds destinations waited, summed over ended waits */
    sl_atomic_u64 wait_since; /* CLOCK_REALTIME ms since which mail waits without a break; 0 */
    /* A throttle's bucket (shm/bucket.c, version 4; the THROTTLE kinds only): */
    sl_atomic_u64 tat_us;   /* CLOCK_MONOTONIC us before which no token is given; 0: ready */
    sl_atomic_u64 rate;     /* n << 32 | period_ms (config/sl_throttle.h); 0: not set yet */
    sl_atomic_u64 taken;    /* tokens given (statistics) */
    sl_atomic_u32 rate_gen; /* config generation the rate comes from */
    uint32_t pad4;
};
_Static_assert(sizeof(struct sl_shm_slot) == 128, "a slot is two cache lines");

enum sl_hold_state { SL_HOLD_FREE = 0, SL_HOLD_INTENT, SL_HOLD_HELD, SL_HOLD_RELEASING };

/* One reservation as the owner recorded it: the slots it may hold. */
struct sl_shm_hold {
    sl_atomic_u32 state; /* enum sl_hold_state */
    uint32_t n;
    uint32_t slot[SL_RESV_MAX];
};

enum sl_owner_state { SL_OWNER_FREE = 0, SL_OWNER_ALIVE = 1 };

struct sl_shm_owner {
    sl_atomic_u32 state; /* enum sl_owner_state */
    sl_atomic_u32 pid;
    sl_atomic_u64 acquired; /* statistics: reservations granted */
    sl_atomic_u64 refused;  /* statistics: reservations refused */
    struct sl_shm_hold hold[SL_OWNER_RECORDS];
};

/* Daemon-wide statistics (shm/stats.c), for `sluicectl metrics`; added in version 2.  Relaxed
 * atomic counters that only ever grow and that no decision reads back. */
#define SL_STATS_PHASES 16 /* timeouts[] is indexed by enum sl_phase (sl_smtp.h) */
enum sl_stats_outcome {
    SL_STATS_DELIVERED,
    SL_STATS_DEFERRED,
    SL_STATS_BOUNCED,
    SL_STATS__OUTCOMES
};
struct sl_shm_stats {
    sl_atomic_u64 recipients[SL_STATS__OUTCOMES]; /* per recipient of a delivery attempt */
    sl_atomic_u64 connections;               /* SMTP sessions opened (greeting and EHLO done) */
    sl_atomic_u64 tls;                       /* of which encrypted */
    sl_atomic_u64 tls_verified;              /* of which the peer was authenticated */
    sl_atomic_u64 timeouts[SL_STATS_PHASES]; /* session phases that timed out */
    sl_atomic_u64 spool_syncs;  /* the listeners' group commit: syncs of the spool (version 6) */
    sl_atomic_u64 spool_synced; /* ... and the messages renamed into queue/ for them */
    uint8_t reserved[48];
};

/* Where delivery time goes, per binding (shm/latency.c): four Prometheus histograms each.
 * Version 3.  Buckets are counted one by one (not cumulated): an observation increments the
 * first bucket whose bound it does not exceed, or the last (+Inf). */
#define SL_LAT_BINDINGS 64 /* bindings with histograms of their own; the rest share "*" */
#define SL_LAT_BUCKETS  16
#define SL_LAT_NAME_MAX 127
enum sl_lat_phase {
    SL_LAT_QUEUED,  /* arrival (the queue id's time) to the first attempt */
    SL_LAT_CONNECT, /* TCP connect, greeting, EHLO */
    SL_LAT_TLS,     /* STARTTLS and the handshake, then EHLO again */
    SL_LAT_TXN,     /* a transaction: its commands out to its last reply in */
    SL_LAT__PHASES
};
/* The buckets' upper bounds in microseconds (the last is +Inf), and the phases' names. */
extern const uint64_t sl_lat_bounds_us[SL_LAT_BUCKETS - 1];
const char *sl_lat_phase_name(enum sl_lat_phase p);
struct sl_lat_hist {
    sl_atomic_u64 bucket[SL_LAT_BUCKETS];
    sl_atomic_u64 sum_us;
    sl_atomic_u64 count;
};
struct sl_lat_entry {
    sl_atomic_u32 state; /* 0 free, 1 being claimed, 2 live (name set) */
    uint32_t len;
    char name[SL_LAT_NAME_MAX + 1];
    struct sl_lat_hist h[SL_LAT__PHASES];
};

/* What each SMTP listener took and refused (shm/lstat.c): one entry per [listener] name,
 * claimed by the master; counted by its processes.  Version 7 (AUTH locked, the accept
 * histogram). */
#define SL_LSTAT_LISTENERS 32
#define SL_LSTAT_NAME_MAX  63
enum sl_lstat {
    SL_LSTAT_SESSIONS,       /* sessions served (the client was greeted) */
    SL_LSTAT_TURNED_AWAY,    /* connections refused at once: max_sessions_per_client */
    SL_LSTAT_TLS,            /* STARTTLS handshakes completed */
    SL_LSTAT_AUTH,           /* AUTH that succeeded */
    SL_LSTAT_AUTH_FAILED,    /* AUTH that failed (535) */
    SL_LSTAT_AUTH_LOCKED,    /* AUTH refused unchecked: the address is locked out (454) */
    SL_LSTAT_MESSAGES,       /* messages queued (the 250 after the data) */
    SL_LSTAT_RECIPIENTS,     /* their recipients */
    SL_LSTAT_BYTES,          /* their octets, as queued */
    SL_LSTAT_REJ_RELAY,      /* rejections: RCPT refused, relaying denied (5.7.1) */
    SL_LSTAT_REJ_RECIPIENTS, /* RCPT over max_recipients */
    SL_LSTAT_REJ_SIZE,       /* a message over max_message_size */
    SL_LSTAT_REJ_CONTENT,    /* bare CR or LF, a line over 998 octets, NUL, empty, a loop */
    SL_LSTAT_REJ_BINDING,    /* binding_header named no binding */
    SL_LSTAT_REJ_STORAGE,    /* the spool could not take it (4xx) */
    SL_LSTAT_ERROR_LIMIT,    /* sessions closed after max_errors error replies */
    SL_LSTAT_TIMEOUTS,       /* sessions closed on a command or data timeout */
    SL_LSTAT__N
};
#define SL_LSTAT_FIRST_REJ SL_LSTAT_REJ_RELAY /* the rejections, by reason: first and last */
#define SL_LSTAT_LAST_REJ  SL_LSTAT_REJ_STORAGE
struct sl_lstat_entry {
    sl_atomic_u32 state; /* 0 free, 1 live (name set); claimed by the master alone */
    uint32_t len;
    char name[SL_LSTAT_NAME_MAX + 1];
    sl_atomic_u64 active; /* sessions open now, as the master last counted them */
    sl_atomic_u64 n[SL_LSTAT__N];
    struct sl_lat_hist accept; /* the end of the data to the 250: the spool write, its sync */
};

struct sl_shm_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint32_t slot_size;
    uint32_t owner_size;
    uint32_t slot_capacity; /* a power of two */
    uint32_t owner_capacity;
    uint64_t slots_off;
    uint64_t owners_off;
    uint64_t arena_off;
    uint64_t arena_bytes;
    uint64_t total_size; /* bytes of the whole mapping */
    uint64_t master_pid;
    uint64_t master_start;    /* CLOCK_REALTIME seconds at creation */
    uint8_t hash_key[16];     /* keyed hash of names (they come from outside) */
    sl_atomic_u64 ready;      /* set last, once everything above is written */
    sl_atomic_u64 config_gen; /* bumped by the master on every accepted reload */
    sl_atomic_u64 arena_used;
    sl_atomic_u64 live_slots;
    sl_atomic_u64 reclaimed; /* holds returned from dead owners */
    sl_atomic_u64 audit_runs;
    sl_atomic_u64 audit_fixed;    /* counts the audit corrected */
    sl_atomic_u64 last_audit;     /* CLOCK_REALTIME seconds */
    sl_atomic_u64 claiming;       /* lookups between claiming a slot and publishing it: a reclaim
                                     scans the slots for abandoned claims only when this is > 0 */
    sl_atomic_u64 action_caps;    /* version 5: action caps in force (shm/cap.c); 0: no lookup */
    sl_atomic_u64 actions_gen;    /* bumped by the master after each write of spool_dir/actions:
                                     a worker reads the file again only when it changed */
    sl_atomic_u64 worker_crashes; /* workers that died of their own doing (from reserved) */
    sl_atomic_u64 crashed_parts;  /* parts of their jobs, set aside to go alone (the same) */
    uint8_t reserved[24];
    struct sl_shm_stats stats;                        /* version 2 */
    struct sl_lat_entry latency[SL_LAT_BINDINGS];     /* version 3 */
    struct sl_lstat_entry listen[SL_LSTAT_LISTENERS]; /* version 6; 7: AUTH locked, accept time */
};

struct sl_shm_params {
    uint32_t slot_capacity;  /* counters the table can hold; rounded up to a power of two */
    uint32_t owner_capacity; /* owner records: at least the number of workers */
};

/* A process-local handle on a mapping. */
struct sl_shm {
    struct sl_shm_header *hdr;
    struct sl_shm_slot *slots;
    struct sl_shm_owner *owners;
    char *arena;
    size_t size;
    bool readonly;
    dev_t dev;
    ino_t ino;
    char name[256];
};

enum sl_shm_result {
    SL_SHM_OK = 0,
    SL_SHM_FULL,   /* no free slot or no room for the key: the table is full */
    SL_SHM_BADKEY, /* a name too long, empty where required, or with a NUL */
    SL_SHM_NOENT,  /* lookup without create: no such counter */
};

/* Create and publish a new segment under `name` (unlinking a stale one left by a
 * dead master; refusing if a live master owns it).  On error returns -1 with a
 * one-line reason in err. */
int sl_shm_create(const char *name, const struct sl_shm_params *p, struct sl_shm *out, char *err,
                  size_t errlen);
/* Attach to an existing segment; read-only for the inspector.  Validates the
 * header (magic, version, sizes, offsets within the mapping); waits up to
 * wait_ms for `ready`.  -1 with a reason in err. */
int sl_shm_attach(const char *name, bool readonly, int wait_ms, struct sl_shm *out, char *err,
                  size_t errlen);
void sl_shm_detach(struct sl_shm *shm);
/* Remove the name (the master, at clean stop). */
int sl_shm_unlink(const char *name);
/* Remove shm's name only while it still names shm's segment (not one another start made
 * since); -1 when it does not. */
int sl_shm_unlink_own(const struct sl_shm *shm);
/* True when the name now refers to another segment than this handle, or to
 * none, or its master is gone: the reader should re-attach. */
bool sl_shm_stale(const struct sl_shm *shm);

/* Find the counter (kind, name, name2), creating it when absent.  name2 may be
 * NULL.  Names are lower-cased on the way in.  `owner` is the caller's owner
 * record (recorded as claimer while the slot is being filled).  The slot index
 * never changes within a segment, so callers may cache it. */
enum sl_shm_result sl_shm_lookup(struct sl_shm *shm, enum sl_scope_kind kind, const char *name,
                                 const char *name2, uint32_t owner, uint32_t *slot);
/* The same without creating: SL_SHM_NOENT when absent.  Works read-only. */
enum sl_shm_result sl_shm_find(const struct sl_shm *shm, enum sl_scope_kind kind, const char *name,
                               const char *name2, uint32_t *slot);

/* Set a counter's limit for config generation gen; an older generation never
 * overwrites a newer one. */
void sl_shm_set_limit(struct sl_shm *shm, uint32_t slot, int32_t limit, uint32_t gen);

/* A set of counters to take together for one connection. */
struct sl_resv {
    uint32_t n;
    uint32_t gen;   /* config generation the limits come from */
    int32_t record; /* owner hold record in use, -1 when not held */
    uint32_t slot[SL_RESV_MAX];
    int32_t limit[SL_RESV_MAX];
    /* A shaping action's cap on one of the counters (UINT32_MAX: none): the tighter of it and
     * the counter's limit holds, in the same all-or-none take (sl_resv_cap). */
    uint32_t cap_slot;
    int32_t cap;
    uint64_t cap_action; /* the action's id, for the refusal */
};

/* Which counter refused, and how full it was. */
struct sl_refusal {
    uint32_t slot;
    enum sl_scope_kind kind;
    uint32_t in_use;
    int32_t limit;
    uint64_t action;   /* the shaping action whose cap refused; 0: the configured limit */
    uint32_t promised; /* units the master promised to jobs not yet started (master only) */
};

enum sl_resv_result {
    SL_RESV_OK = 0,
    SL_RESV_REFUSED,  /* a counter was at its limit: nothing is held */
    SL_RESV_NORECORD, /* the owner has no free hold record: nothing is held */
};

void sl_resv_init(struct sl_resv *r, uint32_t gen);
/* Add a counter with its limit; -1 when the set is full. */
int sl_resv_add(struct sl_resv *r, uint32_t slot, int32_t limit);
/* Take every counter of r below its limit, in the fixed order (kind, then slot
 * index), or none: on refusal the ones taken are released and *why says which
 * refused (why may be NULL).  A limit of 0 refuses; -1 never does.  The limit
 * used is the slot's own when it carries a newer generation than r->gen. */
enum sl_resv_result sl_resv_acquire(struct sl_shm *shm, uint32_t owner, struct sl_resv *r,
                                    struct sl_refusal *why);
/* Move the held reservation r to the counters of want (another domain over the same
 * connection, or another MX host for a spent connection's kept units): the counters only want names
 * are taken first, all or none, within their limits; then those only r names are given back; the
 * shared ones never move.  On SL_RESV_OK r becomes want (same record); otherwise r is untouched and
 * *why says who refused.  A process killed midway leaves records in flux, which the audit settles
 * (I2). */
enum sl_resv_result sl_resv_swap(struct sl_shm *shm, uint32_t owner, struct sl_resv *r,
                                 struct sl_resv *want, struct sl_refusal *why);
/* Does mail of another destination than who's (sl_shm_waiter_key) wait (shm/wait.c) for any
 * counter r names?  The first such counter's slot in *slot (when slot is not NULL). */
bool sl_resv_contended(const struct sl_shm *shm, const struct sl_resv *r, uint32_t who,
                       uint32_t *slot);
/* Cap the counter in slot at cap (a shaping action's, id action) for this reservation: the
 * tighter of the cap and the counter's limit is taken.  Call before acquire or swap. */
void sl_resv_cap(struct sl_resv *r, uint32_t slot, int32_t cap, uint64_t action);
/* Give back what sl_resv_acquire took.  Idempotent; a count never goes below 0. */
void sl_resv_release(struct sl_shm *shm, uint32_t owner, struct sl_resv *r);

/* Owner records.  The master claims one for each worker it forks. */
int sl_shm_owner_claim(struct sl_shm *shm, pid_t pid, uint32_t *owner);
/* The master, after reaping `owner`'s process: release its HELD reservations,
 * settle the ones that were in flux through the audit, free the record.
 * Returns the number of counter units given back. */
uint32_t sl_shm_reclaim_owner(struct sl_shm *shm, uint32_t owner);

struct sl_audit_stats {
    uint32_t checked;   /* live slots looked at */
    uint32_t corrected; /* counts set to the number of live holds */
    uint32_t in_flux;   /* skipped because a live owner was mid-change */
};
/* Set every count that disagrees with the live owners' HELD records, and did not
 * change during the scan, to that number.  Safe while workers run.  st may be
 * NULL when the caller does not want the figures. */
void sl_shm_audit(struct sl_shm *shm, struct sl_audit_stats *st);

/* One counter as the inspector shows it. */
struct sl_counter_view {
    enum sl_scope_kind kind;
    char name[SL_SHM_NAME_MAX + 1];
    char name2[SL_SHM_NAME_MAX + 1];
    uint32_t in_use;
    int32_t limit;
    uint32_t gen;
    uint64_t refused;
    uint64_t peak;
    uint32_t waiting;    /* destinations held back by it now */
    uint64_t holdbacks;  /* times a destination started waiting for it */
    uint64_t waited_ms;  /* time destinations waited for it, ended waits */
    uint64_t wait_since; /* CLOCK_REALTIME ms since mail waits for it; 0: none waits */
};
/* Copy every LIVE counter into a newly allocated array (caller frees *out). */
int sl_shm_snapshot(const struct sl_shm *shm, struct sl_counter_view **out, size_t *n);

/* One counter by slot index (shm/snapshot.c); -1 when the slot is not LIVE (or
 * its kind or key is out of bounds).  Control characters in names show as '?'. */
int sl_shm_view(const struct sl_shm *shm, uint32_t slot, struct sl_counter_view *v);

/* Call fn on every LIVE slot (the master's reload walk). */
void sl_shm_foreach(const struct sl_shm *shm,
                    void (*fn)(uint32_t slot, const struct sl_counter_view *v, void *ctx),
                    void *ctx);

/* Mail waiting for a counter (shm/wait.c; the master's scheduler): a destination held back by
 * the counter in slot starts waiting at now_ms (CLOCK_REALTIME ms), and ends its wait that began
 * at since_ms.  who is the destination's sl_shm_waiter_key.  Counts never go below zero; a
 * slot that is not LIVE is left alone. */
/* A destination's key for the waits: never 0 (two destinations may share one, rarely: a
 * connection then keeps its units one job longer than fair turns would). */
uint32_t sl_shm_waiter_key(const char *binding, const char *domain);
/* Does another destination than who wait for the counter in slot (false for no slot)? */
bool sl_shm_waited_by_other(const struct sl_shm *shm, uint32_t slot, uint32_t who);
void sl_shm_wait_begin(struct sl_shm *shm, uint32_t slot, uint64_t now_ms, uint32_t who);
void sl_shm_wait_end(struct sl_shm *shm, uint32_t slot, uint64_t since_ms, uint64_t now_ms,
                     uint32_t who);

/* Rate throttles' buckets (shm/bucket.c): a slot of kind SL_SCOPE_THROTTLE_CONN or _MSG is
 * paced to its rate: one token every (period + margin)/n, never two closer, so no window of
 * period sees more than n, even after some jitter on the way to the receiver.  Lock-free (one CAS
 * on tat_us); times are CLOCK_MONOTONIC microseconds, one clock for every process of the machine.
 */
/* Publish a bucket's rate for config generation gen (an older generation never overwrites
 * a newer one). */
void sl_bucket_set(struct sl_shm *shm, uint32_t slot, uint32_t n, uint32_t period_ms, uint32_t gen);
/* Retire a bucket whose throttle ended (a shaping action cancelled or run out): it gives every
 * token at once, keeps no rate set later (the generation is SL_BUCKET_RETIRED) and views as
 * retired, so the inspector leaves it out. */
#define SL_BUCKET_RETIRED UINT32_MAX
void sl_bucket_retire(struct sl_shm *shm, uint32_t slot);
/* Take one token at now_us, or reserve the next one when it comes within max_wait_us: true
 * with *wait_us the microseconds until the token's time (0: now; the caller waits that long
 * before it uses it); or false, nothing taken, with the wait until the next token in *wait_us
 * (may be NULL).  A bucket with no rate set gives every token at once. */
bool sl_bucket_take(struct sl_shm *shm, uint32_t slot, uint64_t now_us, uint64_t max_wait_us,
                    uint64_t *wait_us);
/* Microseconds until the bucket gives a token (0: now); works on a read-only mapping. */
uint64_t sl_bucket_wait(const struct sl_shm *shm, uint32_t slot, uint64_t now_us);
/* The pacing interval of a rate in microseconds ((period + 5%, at least 50 ms) / n). */
uint64_t sl_bucket_interval_us(uint32_t n, uint32_t period_ms);
/* One bucket as the inspector shows it (-1: slot not a live bucket). */
struct sl_bucket_view {
    uint32_t n, period_ms; /* 0/0: no rate set yet */
    uint64_t wait_us;      /* until the next token; 0: one is ready */
    uint64_t taken, refused;
    bool retired; /* its throttle ended (sl_bucket_retire) */
};
int sl_bucket_view(const struct sl_shm *shm, uint32_t slot, uint64_t now_us,
                   struct sl_bucket_view *v);

/* Shaping actions' connection caps (shm/cap.c): a slot of kind SL_SCOPE_ACTION_CAP keyed
 * (binding, domain), either "" for every one, holds limit = cap (-1: retired) and rate = the
 * action's id; the master alone writes them, and header->action_caps counts the caps in force so
 * that a worker looks them up only when there is one.
 * Publish (the master): the cap of the scope, creating its slot; -1 retires it. */
int sl_shm_cap_set(struct sl_shm *shm, const char *binding, const char *domain, int32_t cap,
                   uint64_t action);
/* How many caps are in force (the master, after a round of sl_shm_cap_set). */
void sl_shm_caps_publish(struct sl_shm *shm, uint64_t n);
/* The tightest cap over binding x domain (of the scopes binding x domain, every binding x
 * domain, binding x every domain): true with it and its action; false when none (at the cost
 * of one load when no cap is in force anywhere). */
bool sl_shm_cap_find(const struct sl_shm *shm, const char *binding, const char *domain,
                     int32_t *cap, uint64_t *action);

/* Delivery latency per binding (shm/latency.c): the entry of binding (claimed on first use;
 * past SL_LAT_BINDINGS, the shared "*"), then one observation of phase.  Relaxed, lock-free,
 * never blocking; -1 (nothing counted) on a read-only mapping. */
int sl_lat_entry(struct sl_shm *shm, const char *binding);
void sl_lat_observe(struct sl_shm *shm, int entry, enum sl_lat_phase phase, uint64_t us);
/* A copy of entry i when it is live; false otherwise.  Works on a read-only mapping. */
struct sl_lat_view {
    char name[SL_LAT_NAME_MAX + 1];
    uint64_t bucket[SL_LAT__PHASES][SL_LAT_BUCKETS]; /* not cumulated */
    uint64_t sum_us[SL_LAT__PHASES], count[SL_LAT__PHASES];
};
bool sl_lat_read(const struct sl_shm *shm, unsigned i, struct sl_lat_view *v);

/* SMTP listener statistics (shm/lstat.c).  The master claims a listener's entry by name (the
 * same entry across reloads; past SL_LSTAT_LISTENERS names, the shared "*"), its processes
 * count into it with relaxed increments, and the master sets the sessions open now.  -1 / no
 * effect on a read-only mapping or a bad index. */
int sl_lstat_claim(struct sl_shm *shm, const char *listener);
void sl_lstat_add(struct sl_shm *shm, int entry, enum sl_lstat what, uint64_t n);
void sl_lstat_set_active(struct sl_shm *shm, int entry, uint64_t sessions);
/* The reason word of a rejection counter ("relay", "size", ...); "?" for the others. */
const char *sl_lstat_reason(enum sl_lstat what);
/* A copy of entry i when it is live; false otherwise.  Works on a read-only mapping. */
struct sl_lstat_view {
    char name[SL_LSTAT_NAME_MAX + 1];
    uint64_t active;
    uint64_t n[SL_LSTAT__N];
    uint64_t accept_bucket[SL_LAT_BUCKETS], accept_sum_us; /* not cumulated */
};
bool sl_lstat_read(const struct sl_shm *shm, unsigned i, struct sl_lstat_view *v);
/* One message accepted in us microseconds (the end of its data to its 250). */
void sl_lstat_accepted(struct sl_shm *shm, int entry, uint64_t us);

/* Statistics (shm/stats.c): one relaxed increment each, never blocking.  outcome is the delivery
 * log's word ("delivered", "deferred", "bounced"; anything else is not counted), n recipients;
 * phase an enum sl_phase (out of range: not counted). */
void sl_stats_outcome(struct sl_shm *shm, const char *outcome, size_t n);
void sl_stats_timeout(struct sl_shm *shm, unsigned phase);
void sl_stats_connection(struct sl_shm *shm, bool tls, bool verified);
struct sl_stats_view {
    uint64_t recipients[SL_STATS__OUTCOMES];
    uint64_t connections, tls, tls_verified;
    uint64_t timeouts[SL_STATS_PHASES];
    uint64_t spool_syncs, spool_synced;
};
/* The listeners' group commit so far (the master copies the group page's figures). */
void sl_stats_group_commit(struct sl_shm *shm, uint64_t syncs, uint64_t messages);
/* A copy of the statistics block; works on a read-only mapping. */
void sl_stats_read(const struct sl_shm *shm, struct sl_stats_view *out);

#endif
