/*
 * cap.c - the shaping actions' connection caps in the shared table.
 *
 * A max_outbound_connections action (master/shaping.c) caps the binding x
 * domain counter while it is in force.  The master publishes each cap as a
 * slot of kind SL_SCOPE_ACTION_CAP keyed (binding, domain), "*" standing for
 * every binding or every domain: its limit word holds the cap (-1 once the
 * action ended: the slot itself never goes away), its rate word the action's
 * id.  A worker reads the caps over the pair it reserves and takes the counter
 * within the tighter of cap and limit, in the same all-or-none acquire
 * (shm/resv.c), so the receiver never sees more than the cap, even when
 * several jobs for the pair leave in one dispatch round.
 * header->action_caps counts the caps in force: when it is 0 (the common
 * case) a worker pays one load and no lookup.
 * Concurrency: the master alone writes cap slots and the count (plain atomic
 * stores); a worker may read a cap and its id from two instants, which at
 * worst names the wrong action in a refusal.
 * Trust boundary: names come from the actions (the master's own list) and from
 * the worker's job; the table bounds and validates them (sl_shm_lookup).
 */
#include "shm/sl_shm.h"
#include "shm_impl.h"

#define ANY "*" /* the key of "every binding" or "every domain" */

/* key_or_any - the name, or ANY for "" (every one) */
static const char *key_or_any(const char *name)
{
    return name != NULL && name[0] != '\0' ? name : ANY;
}

/* sl_shm_cap_set - publish the cap of binding x domain ("": every one); -1 retires it */
int sl_shm_cap_set(struct sl_shm *shm, const char *binding, const char *domain, int32_t cap,
                   uint64_t action)
{
    uint32_t slot;
    struct sl_shm_slot *s;

    if (shm == NULL || shm->readonly)
        return -1;
    if (cap < 0) { /* retiring creates nothing */
        if (sl_shm_find(shm, SL_SCOPE_ACTION_CAP, key_or_any(binding), key_or_any(domain), &slot) !=
            SL_SHM_OK)
            return 0;
    } else if (sl_shm_lookup(shm, SL_SCOPE_ACTION_CAP, key_or_any(binding), key_or_any(domain), 0,
                             &slot) != SL_SHM_OK) {
        return -1;
    }
    s = &shm->slots[slot];
    /* The id first: a worker that sees the new cap finds its action with it. */
    sl_store64(&s->rate, action);
    sl_store64(&s->limit, limit_word(0, cap < 0 ? SL_LIMIT_NONE : cap));
    return 0;
}

/* sl_shm_caps_publish - how many caps are in force */
void sl_shm_caps_publish(struct sl_shm *shm, uint64_t n)
{
    if (shm != NULL && !shm->readonly)
        sl_store64(&shm->hdr->action_caps, n);
}

/* one_cap - the cap published for the key, or -1 */
static int32_t one_cap(const struct sl_shm *shm, const char *binding, const char *domain,
                       uint64_t *action)
{
    uint32_t slot;
    struct sl_shm_slot *s;
    int32_t cap;

    if (sl_shm_find(shm, SL_SCOPE_ACTION_CAP, binding, domain, &slot) != SL_SHM_OK)
        return SL_LIMIT_NONE;
    s = &shm->slots[slot];
    cap = (int32_t)(uint32_t)sl_load64(&s->limit);
    if (cap >= 0)
        *action = sl_load64(&s->rate);
    return cap;
}

/* sl_shm_cap_find - the tightest cap over binding x domain; false when none */
bool sl_shm_cap_find(const struct sl_shm *shm, const char *binding, const char *domain,
                     int32_t *cap, uint64_t *action)
{
    const char *keys[3][2] = {{binding, domain}, {ANY, domain}, {binding, ANY}};

    *cap = SL_LIMIT_NONE;
    *action = 0;
    if (shm == NULL || shm->hdr == NULL || sl_load64(&shm->hdr->action_caps) == 0)
        return false;
    for (size_t i = 0; i < 3; i++) {
        uint64_t id = 0;
        int32_t c = one_cap(shm, keys[i][0], keys[i][1], &id);
        if (c >= 0 && (*cap < 0 || c < *cap)) {
            *cap = c;
            *action = id;
        }
    }
    return *cap >= 0;
}
