/*
 * sl_cluster.h - cluster counters on Redis: leases, renewals, node heartbeats.
 *
 * A connection under a cluster limit holds, besides its local counters, one lease per cluster
 * counter: a member "node:pid:record" of the Redis sorted set of that counter, scored by its
 * expiry (Redis' own clock, TIME, so node clocks never matter).  Acquire is one Lua script
 * that drops expired members, counts, and adds when under the limit; release removes the
 * member; the master renews every lease of its node every cluster_lease_ttl / 3, re-adding a
 * member that Redis lost (its renewals were interrupted, or Redis was emptied) only while
 * under the limit, and tells the workers (the board) how
 * long their leases are good for.  A fresh or emptied Redis refuses new leases for one
 * cluster_lease_ttl (the "grace"), so that holders re-establish theirs first.
 *
 * Keys (one hash tag, so every key lands in one slot of a Redis Cluster and the scripts may
 * touch several):  {sluice}:lease:SCOPE NAMES  the leases of one counter;  {sluice}:epoch
 * and {sluice}:grace  the restart detection;  {sluice}:nodes  (node -> last heartbeat, ms)
 * and {sluice}:holds  (node -> leases held); {sluice}:node:NAME  a node's heartbeat key, which
 * lives one lease ttl.
 *
 * Concurrency: a struct sl_redis belongs to one process (each worker opens its own; the
 * master has one); every call blocks for at most the connect or command timeout (200 ms,
 * 500 ms), so a dead Redis never hangs a worker or the master.  The board is a shared
 * anonymous mapping made by the master before it forks: the master writes the renewals'
 * results and the node count, workers read them and write their own records' first validity.
 * Trust boundary: Redis' replies are checked for type and range before use; a garbled reply
 * counts as Redis being unreachable.
 */
#ifndef SL_CLUSTER_H
#define SL_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/sl_config.h"
#include "shm/sl_shm.h"
#include "util/sl_atomic.h"

#define SL_CLUSTER_NODE_MAX   64
#define SL_CLUSTER_HOST_MAX   256
#define SL_CLUSTER_KEY_MAX    (2 * SL_SHM_NAME_MAX + 64)
#define SL_CLUSTER_MEMBER_MAX (SL_CLUSTER_NODE_MAX + 32)
#define SL_CLUSTER_CONNECT_MS 200
#define SL_CLUSTER_COMMAND_MS 500
#define SL_CLUSTER_RETRY_MS   1000 /* a process retries an unreachable Redis at most this often */

/* What the config says of the cluster (cluster_* in [global]). */
struct sl_cluster_params {
    bool enabled;                   /* cluster_redis is set */
    char host[SL_CLUSTER_HOST_MAX]; /* host name, IP, or the absolute path of a unix socket, as set
                                     */
    char addr[SL_CLUSTER_HOST_MAX]; /* what to connect to: host, or the address it resolved to */
    int port;                       /* 0 for a unix socket */
    char password[513];             /* empty: no AUTH */
    char node[SL_CLUSTER_NODE_MAX + 1];
    long ttl_ms;
    enum sl_cluster_failure on_failure;
};
/* Fill p from cfg (the password file is read now); false with the reason in err. */
bool sl_cluster_params(const struct sl_config *cfg, struct sl_cluster_params *p, char *err,
                       size_t errlen);
/* p->addr: p->host resolved now (it may wait for DNS); false when it does not resolve. */
bool sl_cluster_resolve(struct sl_cluster_params *p);
/* host is an IP address. */
bool sl_cluster_numeric(const char *host);
/* p names Redis by a host name that p->addr does not hold resolved yet. */
bool sl_cluster_unresolved(const struct sl_cluster_params *p);

/* One connection to Redis, opened on first use and again after a failure (at most every
 * SL_CLUSTER_RETRY_MS).  err says why the last call failed. */
struct sl_redis;
enum sl_redis_state { SL_REDIS_UP, SL_REDIS_DOWN, SL_REDIS_AUTH };
struct sl_redis *sl_redis_new(const struct sl_cluster_params *p);
void sl_redis_free(struct sl_redis *r);
/* Connect now if not connected (ignoring the retry pause): the state, the reason in err. */
enum sl_redis_state sl_redis_check(struct sl_redis *r, char *err, size_t errlen);
const char *sl_redis_error(const struct sl_redis *r);
/* How many commands (Redis calls) this handle sent: the benchmark's figure. */
uint64_t sl_redis_calls(const struct sl_redis *r);

/* The Redis key of a cluster counter (its shm view) and a lease's member name. */
void sl_cluster_key(const struct sl_counter_view *v, char *buf, size_t len);
void sl_cluster_member(const char *node, long pid, int record, char *buf, size_t len);

enum sl_lease_result {
    SL_LEASE_OK,
    SL_LEASE_FULL,  /* the counter is at its limit across the cluster */
    SL_LEASE_GRACE, /* Redis was emptied (restart): holders re-establish first */
    SL_LEASE_DOWN,  /* Redis unreachable */
};
/* Take a lease (idempotent for a member already held); *in_use is the cluster-wide count
 * after (or, refused, at) the call. */
enum sl_lease_result sl_lease_acquire(struct sl_redis *r, const char *key, const char *member,
                                      int32_t limit, long ttl_ms, uint32_t *in_use);
/* Give a lease back; false when Redis could not be told (the lease then expires). */
bool sl_lease_release(struct sl_redis *r, const char *key, const char *member);
/* A connection's leases in one script call, all or none: member's lease of each of keys[0..n)
 * within limits[i] (n at most SL_LEASE_BATCH_MAX).  Not SL_LEASE_OK: *refused is the first
 * key that refused and *in_use its count (SL_LEASE_DOWN: nothing is known, *refused 0), and
 * member holds none of the n leases (those held before the call included, as if given back). */
#define SL_LEASE_BATCH_MAX SL_RESV_MAX
enum sl_lease_result sl_lease_acquire_all(struct sl_redis *r, const char *const *keys,
                                          const int32_t *limits, size_t n, const char *member,
                                          long ttl_ms, size_t *refused, uint32_t *in_use);

/* A batch of leases for the master: renewals and a dead worker's removal. */
struct sl_lease_ref {
    char key[SL_CLUSTER_KEY_MAX];
    char member[SL_CLUSTER_MEMBER_MAX];
    int32_t limit;
    uint32_t owner, record; /* whose, on this node */
    uint32_t pid;           /* the worker's, when listed */
    uint64_t seen_valid;    /* the master's: the record's validity word when listed */
    int result; /* renew: 1 kept, 2 re-added, 0 lost (the counter is full), 3 gone (not in Redis
                   and not re-added: given back, or lost): either way the connection must close */
};
/* Renew every lease of refs (one script call per key, pipelined); false when Redis did not
 * answer them all (results of the unanswered stay -1).  A lease missing from Redis is re-added
 * (within the limit) only with readd or in Redis' grace: readd says the renewals were
 * interrupted for long enough that Redis may have let it expire; without it, a missing lease
 * was given back by its worker while the renewal was on its way. */
bool sl_lease_renew(struct sl_redis *r, struct sl_lease_ref *refs, size_t n, long ttl_ms,
                    bool readd);
/* Remove every lease of refs; false when Redis could not be told. */
bool sl_lease_drop(struct sl_redis *r, const struct sl_lease_ref *refs, size_t n);
/* The leases of key alive now across the cluster, or -1 when Redis cannot say. */
long sl_lease_count(struct sl_redis *r, const char *key);

/* The node's heartbeat (holds: its leases now); the number of nodes alive (heartbeat within
 * ttl), or -1 when Redis is unreachable. */
long sl_cluster_heartbeat(struct sl_redis *r, const char *node, uint32_t holds, long ttl_ms);
struct sl_cluster_node_view {
    char name[SL_CLUSTER_NODE_MAX + 1];
    uint64_t last_ms; /* Redis time of its last heartbeat */
    uint64_t age_ms;  /* how long ago */
    long holds;
    bool alive;
};
/* Every node seen in the last day; -1 when Redis is unreachable.  *out is allocated. */
int sl_cluster_nodes(struct sl_redis *r, long ttl_ms, struct sl_cluster_node_view **out, size_t *n);

/* The board: what the master knows of the leases, for the workers (shared anonymous memory,
 * inherited across fork).  valid_until: CLOCK_MONOTONIC µs up to which the leases of one hold
 * record (owner x record) are known good; 0 when one was lost. */
struct sl_cluster_board {
    sl_atomic_u32 redis_up; /* the master's last renewal reached Redis */
    sl_atomic_u32 alive;    /* nodes alive as last seen (0: never seen) */
    uint32_t owners;
    uint32_t pad;
    sl_atomic_u64 last_up_us; /* CLOCK_MONOTONIC µs of the master's last renewal that reached
                                 Redis (or of the board's making) */
    sl_atomic_u64 valid_until[];
};
/* What a process inherits: the params in force and the board (NULL until the master made
 * it).  Set by the master before it forks; read by the workers. */
struct sl_cluster_heritage {
    struct sl_cluster_params p;
    struct sl_cluster_board *board;
};
struct sl_cluster_heritage *sl_cluster_heritage(void);
/* Map the board for owners owner records (the master, once). */
struct sl_cluster_board *sl_cluster_board_new(uint32_t owners);
sl_atomic_u64 *sl_cluster_valid(struct sl_cluster_board *b, uint32_t owner, int record);
/* A renewal's results (refs, as listed with their words and renewed) on board b: losses
 * first, then each record renewed good until `until` (CLOCK_MONOTONIC µs); every write a
 * compare-and-swap from the word listed, for the worker listed (shm's owners). */
void sl_cluster_post(const struct sl_shm *shm, struct sl_cluster_board *b,
                     const struct sl_lease_ref *refs, size_t n, uint64_t until);
/* The nodes alive by the heartbeats: a larger count is taken at once, a smaller one only once
 * every heartbeat has seen fewer for hold_ms of Redis answering without a break (the caller
 * gives a lease's life, plus a retry pause and a heartbeat period: the time the other nodes
 * take to beat again after Redis comes back).  So a late heartbeat, Redis coming back (the
 * first node to beat again sees itself alone) or Redis flapping never shrinks the count; a
 * node gone for good leaves it after hold_ms.  A share too small is safe, one too large
 * exceeds the limit. */
struct sl_alive_window {
    uint32_t count;    /* the nodes to divide a limit by (0: none seen yet) */
    uint32_t lower;    /* the most the beats saw since they began to see fewer */
    uint64_t lower_ms; /* since when (CLOCK_MONOTONIC ms; 0: no fall pending) */
};
/* A heartbeat at now_ms saw alive nodes; returns the count. */
uint32_t sl_alive_note(struct sl_alive_window *w, uint32_t alive, uint64_t now_ms,
                       uint64_t hold_ms);
/* A heartbeat did not reach Redis: a pending fall starts again. */
void sl_alive_broken(struct sl_alive_window *w);
/* A node's share of limit while Redis is unreachable (cluster_on_failure = share); 0 when no
 * heartbeat has been seen yet (a master started while Redis is down: nothing opens). */
int32_t sl_cluster_share(const struct sl_cluster_board *b, int32_t limit);
/* May shares be used now: the master has not reached Redis for twice a lease's life (ttl_ms):
 * every lease granted through Redis before has run out, and its connection closed before its
 * next transaction (the second ttl leaves room for a transaction in flight to end). */
bool sl_cluster_share_open(const struct sl_cluster_board *b, long ttl_ms);

#endif
