/*
 * sl_limits.h - which counters a connection takes, and each one's limit: the
 * mapping from the config's scopes to the counter table (semantics.md).
 */
#ifndef SL_LIMITS_H
#define SL_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/sl_config.h"
#include "shm/sl_shm.h"

/* The limit that cfg gives a counter of this kind and key (-1: no limit). */
int32_t sl_limits_for_key(const struct sl_config *cfg, enum sl_scope_kind kind, const char *name,
                          const char *name2);
/* Create (and set the limits of) the counters the config names explicitly, so
 * the inspector shows every configured limit before any connection opens. */
void sl_limits_publish(const struct sl_config *cfg, struct sl_shm *shm, uint32_t gen);
/* Set every live counter's limit from cfg for generation gen (after a reload). */
void sl_limits_refresh(const struct sl_config *cfg, struct sl_shm *shm, uint32_t gen);
/* Add to r the counters a connection from binding to domain (via MX host mx,
 * which may be NULL before the MX is known) takes, with the shaping actions' cap
 * over binding x domain (shm/cap.c) on its binding x domain counter, so the cap is
 * taken in the same acquire, as exact as a limit.  Returns false with a reason in
 * err when the table is full or r cannot hold them all. */
bool sl_limits_collect(const struct sl_config *cfg, struct sl_shm *shm, uint32_t owner,
                       const char *binding, const char *domain, const char *mx, struct sl_resv *r,
                       char *err, size_t errlen);
/* What a refusal found: "N in use", with ", P promised" when units promised to jobs not yet
 * started made it full (the master's hold-back lines). */
const char *sl_limits_use_text(const struct sl_refusal *r, char *buf, size_t len);
/* The master's check before it hands out a job that opens a connection: true when
 * binding x domain has room under a shaping action's cap of cap connections, the units
 * promised to connections about to open (by slot; NULL: none) counted; false with the binding
 * x domain counter in *why (its use, limit = cap) when it is reached. */
bool sl_limits_cap_room(const struct sl_shm *shm, const char *binding, const char *domain,
                        int64_t cap, const uint16_t *promised, struct sl_refusal *why);

/* The counters one binding x domain destination takes before its MX is known,
 * with their limits, cached by the master per destination.  Names point into
 * the config or at the caller's binding and domain strings, so the cache is
 * valid for one config generation (the table's config_gen) and those strings. */
struct sl_limits_cache {
    uint64_t gen;     /* config_gen the entries were made for; 0: never filled */
    uint32_t turn;    /* max_deliveries_per_connection: the messages a connection carries before
                       * it is spent, a turn's worth on a contended counter; 0: no limit */
    bool short_turns; /* a spent connection gave a host's counter up to another destination's
                       * mail: its turns stay at one connection's worth (sl_limits_cache_learn) */
    uint32_t n;
    struct sl_limits_counter {
        uint8_t kind;  /* enum sl_scope_kind */
        int32_t limit; /* from the config; -1: none */
        uint32_t slot; /* UINT32_MAX while the counter does not exist yet */
        const char *name, *name2;
    } c[SL_RESV_MAX];
    /* The cluster counters with a limit that sl_limits_cluster_room looks at, in its order
     * (kept apart: they are not among the counters above that a connection holds). */
    bool cluster_over; /* more than fit in cl: the check is made without the cache */
    uint32_t ncl;
    struct sl_limits_cluster_counter {
        int32_t limit;
        uint32_t slot;             /* UINT32_MAX while the counter does not exist yet */
        const char *scope, *a, *b; /* key: scope word, names "a b" (either may be NULL) */
    } cl[SL_RESV_MAX / 2];
};
/* True when a new connection from binding to domain would fit: the binding x
 * domain counter, every domain scope counter of the domain, the binding's
 * server_max and the server counter are below their limits (a counter that does
 * not exist yet counts 0 in use; none is ever created here).  A full server
 * counter alone does not refuse a destination with no open connection while
 * the reserve (server_reserve_outbound_connections) has room: it is for it.  false with the
 * refusing counter in *why (why may be NULL). */
bool sl_limits_dest_room(const struct sl_config *cfg, const struct sl_shm *shm, const char *binding,
                         const char *domain, struct sl_refusal *why);
/* Is the counter in slot one of binding x domain's, cached in c (a connection of that
 * destination holds it)?  c is filled first when it never was or the config changed since (a
 * destination can be handed a connection without a room check of its own); counters created
 * since c was filled are looked up now. */
/* A connection of c's destination took the counter in slot, which c cannot know before the MX
 * (a host's or a binding x host's, with a limit): with sole (the destination's only MX host)
 * it is one of c's from now on, checked and promised like the others; without, one learnt
 * before is dropped (with several MX hosts one full host must not stop the destination).
 * given_up: a spent connection gave it up to another destination's mail (c->short_turns).
 * What is learnt lasts until c is filled again (a reload). */
void sl_limits_cache_learn(const struct sl_shm *shm, struct sl_limits_cache *c, uint32_t slot,
                           bool sole, bool given_up);
bool sl_limits_cache_has(const struct sl_config *cfg, const struct sl_shm *shm,
                         struct sl_limits_cache *c, const char *binding, const char *domain,
                         uint32_t slot);
/* c filled for binding x domain under the table's config generation (filled now when it never
 * was or the config changed since). */
void sl_limits_cache_current(const struct sl_config *cfg, const struct sl_shm *shm,
                             struct sl_limits_cache *c, const char *binding, const char *domain);
/* c current (as above), and the slot of each of its counters looked up.  With create, the
 * binding x domain counter, when it has a limit or a shaping action's cap covers it, is created
 * when it does not exist yet (a worker's reservation creates it too), so that what a caller
 * promises to a destination's first connection has a slot to count in.  A slot is for ever:
 * the caller asks only when it matters (more jobs for the destination may follow at once). */
void sl_limits_cache_resolve(const struct sl_config *cfg, struct sl_shm *shm,
                             struct sl_limits_cache *c, const char *binding, const char *domain,
                             bool create);
/* sl_limits_dest_room with the counters and limits cached in c, refilled when the table's
 * config generation changed.  promised (NULL: none) counts, by slot, the units the caller
 * has promised to connections about to open: they count as in use. */
bool sl_limits_dest_room_cached(const struct sl_config *cfg, const struct sl_shm *shm,
                                struct sl_limits_cache *c, const char *binding, const char *domain,
                                const uint16_t *promised, struct sl_refusal *why);
/* The units still free in the server counter (server_max_outbound_connections, which every
 * destination shares) as cached in c by a room check, promised ones counted as in use;
 * UINT32_MAX when it has no limit. */
uint32_t sl_limits_server_free_cached(const struct sl_shm *shm, struct sl_limits_cache *c,
                                      const uint16_t *promised);
/* The scheduler's one check per dispatch: sl_limits_dest_room_cached, then
 * sl_limits_cluster_room over the cluster counters cached in c (why not NULL).  Only the
 * counters' use is read each time, so what the cluster's leases change in this node's holds
 * (a lease refused, given back, lost at a renewal) is seen at once. */
bool sl_limits_room_cached(const struct sl_config *cfg, const struct sl_shm *shm,
                           struct sl_limits_cache *c, const char *binding, const char *domain,
                           const uint16_t *promised, struct sl_refusal *why);

/* Cluster counters (config/cluster_limits.c): kind SL_SCOPE_CLUSTER, name a scope word
 * (binding_domain, binding_host, domain, group_domain, host, binding, server), name2 the
 * scope's names separated by a space.  The limit of one; add those a connection takes to r;
 * create the ones the config names by themselves; does the config set any. */
int32_t sl_limits_cluster_for_key(const struct sl_config *cfg, const char *scope,
                                  const char *names);
bool sl_limits_cluster_collect(const struct sl_config *cfg, struct sl_shm *shm, uint32_t owner,
                               const char *binding, const char *domain, const char *mx,
                               struct sl_resv *r, char *err, size_t errlen);
void sl_limits_cluster_publish(const struct sl_config *cfg, struct sl_shm *shm, uint32_t gen);
/* The scheduler's check: false (the refusing counter in *why) when this node alone fills a
 * cluster counter that a connection from binding to domain would take. */
bool sl_limits_cluster_room(const struct sl_config *cfg, const struct sl_shm *shm,
                            const char *binding, const char *domain, struct sl_refusal *why);
/* The cluster counters the check above looks at, with their limits, into c's cluster part. */
void sl_limits_cluster_cache(const struct sl_config *cfg, const struct sl_shm *shm,
                             struct sl_limits_cache *c, const char *binding, const char *domain);
/* sl_limits_cluster_room over the counters cached in c by sl_limits_cluster_cache, the units
 * promised (by slot; NULL: none) counted as this node's. */
bool sl_limits_cluster_room_cached(const struct sl_shm *shm, struct sl_limits_cache *c,
                                   const uint16_t *promised, struct sl_refusal *why);
/* Is the cluster counter in slot one a connection from binding to domain holds (c filled)? */
bool sl_limits_cluster_cache_has(const struct sl_config *cfg, const struct sl_shm *shm,
                                 struct sl_limits_cache *c, const char *binding, const char *domain,
                                 uint32_t slot);
bool sl_limits_cluster_any(const struct sl_config *cfg);

#endif
