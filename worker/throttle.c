/*
 * throttle.c - a worker draws from the rate throttles' buckets: one token of
 * outbound_throttle_connections before each new connection, one of
 * outbound_throttle_messages before each transaction.
 *
 * The general chain's bucket (binding x domain) and the host chain's (binding
 * x MX host) both apply; a refusal by the host's bucket lets the next MX host
 * be tried, any other ends the attempt and the mail goes back to the master,
 * which holds the destination back until the bucket refills (the same path as
 * a full counter: outcome "w", the bucket's slot in an "S" message).
 * A [shaping] rule's outbound_throttle_messages action is one more bucket
 * ("action ID"), for the scope the action covers; the worker learns of the
 * actions from the spool's file, read again when it was replaced.  The same
 * list says which MX hosts are suspended (a suspension that names a host holds
 * only the connections to it, so the worker, which knows the MX, keeps to it).
 * Concurrency: buckets are shared by every worker (shm/bucket.c, lock-free).
 * Trust boundary: names come from the master's job and DNS; the table bounds
 * and checks them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config/sl_throttle.h"
#include "spool/sl_actions.h"
#include "util/sl_atomic.h"
#include "util/sl_clock.h"
#include "util/sl_msg.h"
#include "worker_impl.h"

#define PACE_WAIT_US 1000000 /* a token due within this is waited for, not refused */

/* pause_for - wait us microseconds for a reserved token; SIGTERM is blocked here, and the
 * wait is short: a draining worker finishes it like any other step of its job */
static void pause_for(uint64_t us)
{
    struct timespec t = {.tv_sec = (time_t)(us / 1000000u),
                         .tv_nsec = (long)(us % 1000000u) * 1000};

    while (us > 0 && nanosleep(&t, &t) < 0 && errno == EINTR)
        continue;
}

/* bucket - the slot of t's bucket of kind in *slot, looked up and given t's rate when
 * UINT32_MAX (and kept); false when the table cannot hold it */
static bool bucket(struct sl_wstate *w, enum sl_scope_kind kind, const struct sl_throttle *t,
                   uint32_t *slot)
{
    if (*slot != UINT32_MAX)
        return true;
    if (sl_shm_lookup(w->ctx->shm, kind, t->key, NULL, w->owner, slot) != SL_SHM_OK) {
        *slot = UINT32_MAX;
        sl_msg_warn("throttle %s: counter table full (set shm_capacity higher)", t->key);
        return false;
    }
    /* once per resolution (a memo resolved again forgets its slot): the worker's generation
     * never changes and only a newer one overwrites the rate, so setting it again per token
     * would change nothing */
    sl_bucket_set(w->ctx->shm, *slot, t->rate.n, t->rate.period_ms, w->ctx->gen);
    return true;
}

/* take - one token of t's bucket of kind in *slot (see bucket) (waited for when due within
 * PACE_WAIT_US and wait is set); false with the refusal noted in info */
static bool take(struct sl_wstate *w, enum sl_scope_kind kind, const struct sl_throttle *t,
                 uint32_t *slot, bool wait, struct sl_open_info *info)
{
    struct sl_shm *shm = w->ctx->shm;
    uint64_t wait_us;

    if (!bucket(w, kind, t, slot))
        return true; /* a throttle the table cannot hold must not stop the mail for good */
    if (sl_bucket_take(shm, *slot, sl_clock_us(), wait ? PACE_WAIT_US : 0, &wait_us)) {
        pause_for(wait_us); /* the token reserved is due then: the pace is kept here */
        return true;
    }
    info->why = (struct sl_refusal){.slot = *slot, .kind = kind, .limit = (int32_t)t->rate.n};
    info->phase = "limits";
    snprintf(info->scope, sizeof info->scope, "%s %s", sl_scope_kind_name(kind), t->key);
    char rate[32];
    sl_rate_format((int64_t)t->rate.n << 32 | t->rate.period_ms, rate, sizeof rate);
    snprintf(info->reply, sizeof info->reply, "%s: rate %s reached, next in %llu ms", info->scope,
             rate, (unsigned long long)(wait_us + 999) / 1000);
    return false;
}

/* scope_memo - the throttle of kind kept in sc for binding x name, resolved again (sc's
 * whole memo forgotten) when the connection's scope is another one */
static struct sl_throttle_memo *scope_memo(struct sl_throttle_scope *sc, enum sl_throttle_kind kind,
                                           const char *binding, const char *name)
{
    if (!sc->set || strcmp(sc->binding, binding) != 0 || strcmp(sc->name, name) != 0) {
        *sc = (struct sl_throttle_scope){0};
        sc->set = strlen(binding) < sizeof sc->binding && strlen(name) < sizeof sc->name;
        if (sc->set) {
            memcpy(sc->binding, binding, strlen(binding) + 1);
            memcpy(sc->name, name, strlen(name) + 1);
        }
    }
    return &sc->memo[kind];
}

/* scope_take - a token of the throttle of kind over binding x domain (host NULL) or
 * binding x host, if one is in force; resolved once for the connection's scope and the
 * worker's config generation */
static bool scope_take(struct sl_wstate *w, struct sl_throttle_scope *sc,
                       enum sl_throttle_kind kind, const char *binding, const char *domain,
                       const char *host, bool wait, struct sl_open_info *info)
{
    enum sl_scope_kind sk =
        kind == SL_THROTTLE_CONNECTIONS ? SL_SCOPE_THROTTLE_CONN : SL_SCOPE_THROTTLE_MSG;
    struct sl_throttle_memo *m = scope_memo(sc, kind, binding, host != NULL ? host : domain);
    /* a name too long to keep is resolved each time (generation 0), as before */
    uint64_t gen = sc->set ? w->ctx->gen : 0;

    if (!sl_throttle_memo_get(m, gen, w->ctx->cfg, kind, binding, domain, host))
        return true;
    return take(w, sk, &m->t, &m->slot, wait, info);
}

/* actions - the actions in force as the spool has them, read again only when the master says
 * it wrote the file (header->actions_gen): no file system call per message */
static const struct sl_actions *actions(struct sl_wstate *w)
{
    static struct sl_actions l;
    static uint64_t seen;
    static bool loaded;
    uint64_t gen = sl_load64(&w->ctx->shm->hdr->actions_gen);
    char err[256];

    if (loaded && gen == seen)
        return &l;
    sl_actions_free(&l);
    if (sl_actions_load(w->ctx->spool, &l, err, sizeof err) < 0)
        sl_msg_warn("shaping actions not read: %s", err);
    seen = gen;
    loaded = true;
    return &l;
}

/* action_tokens - a token of every rule throttle in force over binding x domain (x mx) */
static bool action_tokens(struct sl_wstate *w, const char *binding, const char *domain,
                          const char *mx, bool wait, struct sl_open_info *info)
{
    const struct sl_actions *l = actions(w);
    int64_t now = (int64_t)time(NULL);

    for (size_t i = 0; i < l->n; i++) {
        const struct sl_action *a = &l->a[i];
        struct sl_throttle t;
        uint32_t slot = UINT32_MAX;
        if (a->kind != SL_ACTION_THROTTLE_MESSAGES || (a->until > 0 && a->until <= now) ||
            !sl_action_covers(a, binding, domain, mx) || !sl_rate_unpack(a->value, &t.rate))
            continue;
        snprintf(t.key, sizeof t.key, "action %" PRIu64, a->id);
        if (!take(w, SL_SCOPE_THROTTLE_MSG, &t, &slot, wait, info))
            return false;
    }
    return true;
}

/* sl_worker_host_suspended - is mx suspended for binding x domain (a suspension in force that
 * names the host); false when not, else true with "host H suspended until ..." in buf */
bool sl_worker_host_suspended(struct sl_wstate *w, const char *binding, const char *domain,
                              const char *mx, char *buf, size_t len)
{
    const struct sl_actions *l = actions(w);
    int64_t now = (int64_t)time(NULL);

    for (size_t i = 0; mx != NULL && i < l->n; i++) {
        const struct sl_action *a = &l->a[i];
        if (a->kind != SL_ACTION_SUSPEND || a->host[0] == '\0' ||
            (a->until > 0 && a->until <= now) || !sl_action_covers(a, binding, domain, mx))
            continue;
        if (a->until > 0)
            snprintf(buf, len, "host %s suspended for %lld s more (action %" PRIu64 ")", mx,
                     (long long)(a->until - now), a->id);
        else
            snprintf(buf, len, "host %s suspended until resumed (action %" PRIu64 ")", mx, a->id);
        return true;
    }
    return false;
}

/* sl_worker_throttle - a token of kind for binding x domain and for binding x mx (mx may be
 * NULL); false with the refusal in info, *host_only telling that only mx's bucket refused */
bool sl_worker_throttle(struct sl_wstate *w, enum sl_throttle_kind kind, bool wait,
                        const char *binding, const char *domain, const char *mx,
                        struct sl_open_info *info, bool *host_only)
{
    const struct sl_config *cfg = w->ctx->cfg;

    *host_only = false;
    if (cfg->setters != NULL && cfg->setters[sl_throttle_opt(kind)].n == 0 &&
        (kind != SL_THROTTLE_MESSAGES || cfg->nrules == 0))
        return true; /* the common case: no throttle anywhere, no lookup per message */
    if (!scope_take(w, &w->thr_general, kind, binding, domain, NULL, wait, info))
        return false;
    if (mx != NULL && mx[0] != '\0' &&
        !scope_take(w, &w->thr_host, kind, binding, NULL, mx, wait, info)) {
        *host_only = true;
        return false;
    }
    return kind != SL_THROTTLE_MESSAGES || cfg->nrules == 0 ||
           action_tokens(w, binding, domain, mx, wait, info); /* only rules make such actions */
}
