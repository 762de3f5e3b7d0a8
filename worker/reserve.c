/*
 * reserve.c - take every counter a connection needs before it opens (I1).
 *
 * sl_limits_collect names the counters (binding x domain, binding x host,
 * host, domain scopes, binding, server); sl_resv_acquire takes them all or
 * none.  When only the server counter refuses and this binding x domain has
 * no open connection, server_reserve_outbound_connections applies: the
 * reserve counter replaces the server counter, so a small domain is never
 * starved by large ones (semantics.md).  The connection then holds the
 * reserve unit instead of a server unit until it closes.
 * A shaping action's max_outbound_connections (shm/cap.c) caps the binding x
 * domain counter in the same acquire (sl_limits_collect puts the cap on it), so
 * the cap is as exact as a limit.
 * Trust boundary: names come from the master's job and from DNS; the counter
 * table bounds and validates them (sl_shm_lookup).
 */
#include <stdio.h>
#include <string.h>

#include "config/sl_limits.h"
#include "worker_impl.h"

/* find_kind - the position of the first counter of kind in r, or -1 */
static int find_kind(const struct sl_shm *shm, const struct sl_resv *r, enum sl_scope_kind kind)
{
    for (uint32_t i = 0; i < r->n; i++) {
        struct sl_counter_view v;
        if (sl_shm_view(shm, r->slot[i], &v) == 0 && v.kind == kind)
            return (int)i;
    }
    return -1;
}

/* has_no_connection - the binding x domain counter of r has nothing in use */
static bool has_no_connection(const struct sl_shm *shm, const struct sl_resv *r)
{
    int i = find_kind(shm, r, SL_SCOPE_BINDING_DOMAIN);
    struct sl_counter_view v;

    return i >= 0 && sl_shm_view(shm, r->slot[i], &v) == 0 && v.in_use == 0;
}

/* swap_in_reserve - replace the server counter of r by the reserve counter */
static bool swap_in_reserve(struct sl_wstate *w, struct sl_resv *r)
{
    const struct sl_config *cfg = w->ctx->cfg;
    int i = find_kind(w->ctx->shm, r, SL_SCOPE_SERVER);
    int32_t limit = sl_limits_for_key(cfg, SL_SCOPE_RESERVE, "", NULL);
    uint32_t slot;

    if (i < 0 || limit <= 0 ||
        sl_shm_lookup(w->ctx->shm, SL_SCOPE_RESERVE, "", NULL, w->owner, &slot) != SL_SHM_OK)
        return false;
    r->slot[i] = slot;
    r->limit[i] = limit;
    return true;
}

/* sl_worker_reserve - every counter for binding -> domain via mx, or the one that refused */
bool sl_worker_reserve(struct sl_wstate *w, const char *binding, const char *domain, const char *mx,
                       struct sl_resv *r, struct sl_refusal *why, char *err, size_t errlen)
{
    struct sl_shm *shm = w->ctx->shm;
    enum sl_resv_result res;

    memset(why, 0, sizeof *why);
    sl_resv_init(r, w->ctx->gen);
    if (!sl_limits_collect(w->ctx->cfg, shm, w->owner, binding, domain, mx, r, err, errlen))
        return false;
    res = sl_resv_acquire(shm, w->owner, r, why);
    if (res == SL_RESV_REFUSED && why->kind == SL_SCOPE_SERVER && has_no_connection(shm, r) &&
        swap_in_reserve(w, r))
        res = sl_resv_acquire(shm, w->owner, r, why);
    if (res == SL_RESV_NORECORD) {
        why->kind = SL_SCOPE_NONE;
        snprintf(err, errlen, "no free hold record in this worker");
    }
    if (res == SL_RESV_OK && !sl_worker_lease_acquire(w, r, why)) {
        sl_resv_release(shm, w->owner, r); /* the cluster refused: no local unit stays */
        return false;
    }
    return res == SL_RESV_OK;
}

/* sl_worker_release - the mirror image of sl_worker_reserve: leases, then local counters */
void sl_worker_release(struct sl_wstate *w, struct sl_resv *r)
{
    sl_worker_lease_release(w, r);
    sl_resv_release(w->ctx->shm, w->owner, r);
}

/* sl_worker_reserve_move - the held r moves to binding -> domain via mx: the counters the new
 * set names alone are taken (another domain's over the same connection; or the next host's
 * when a spent connection's kept units go to a connection to another MX host), those only
 * the old set names given back, the rest stay held.
 * A connection that holds the reserve in place of the server counter does not move (the
 * reserve is for a destination with no connection, and it had one). */
bool sl_worker_reserve_move(struct sl_wstate *w, const char *binding, const char *domain,
                            const char *mx, struct sl_resv *r, struct sl_refusal *why, char *err,
                            size_t errlen)
{
    struct sl_shm *shm = w->ctx->shm;
    struct sl_resv want;

    memset(why, 0, sizeof *why);
    if (find_kind(shm, r, SL_SCOPE_RESERVE) >= 0) {
        snprintf(err, errlen, "the connection holds the reserve");
        return false;
    }
    sl_resv_init(&want, r->gen);
    if (!sl_limits_collect(w->ctx->cfg, shm, w->owner, binding, domain, mx, &want, err, errlen))
        return false;
    if (!sl_worker_lease_same(shm, r, &want)) {
        snprintf(err, errlen, "its cluster counters differ");
        return false;
    }
    if (sl_resv_swap(shm, w->owner, r, &want, why) == SL_RESV_OK)
        return true;
    sl_worker_scope_name(shm, why->slot, err, errlen);
    if (why->action != 0)
        sl_worker_action_note(why, err, errlen);
    return false;
}

/* sl_worker_scope_name - "kind key [key2]" of a counter, as the inspector names it */
void sl_worker_scope_name(const struct sl_shm *shm, uint32_t slot, char *buf, size_t len)
{
    struct sl_counter_view v;

    if (sl_shm_view(shm, slot, &v) < 0) {
        snprintf(buf, len, "?");
        return;
    }
    snprintf(buf, len, "%s %s%s%s", sl_scope_kind_name(v.kind), v.name[0] ? v.name : "*",
             v.name2[0] ? " " : "", v.name2);
}

/* sl_worker_action_note - append to buf the shaping action whose cap refused */
void sl_worker_action_note(const struct sl_refusal *why, char *buf, size_t len)
{
    size_t n = strlen(buf);

    if (why->action != 0 && n < len)
        snprintf(buf + n, len - n, " (action %llu: max_outbound_connections = %d)",
                 (unsigned long long)why->action, why->limit);
}
