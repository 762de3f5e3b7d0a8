/*
 * publish.c - the shaping actions in force, as the workers find them in the
 * shared table.
 *
 * A max_outbound_connections action's cap goes in a cap slot keyed by its
 * binding and domain (shm/cap.c), the tightest when several actions name one
 * scope, and the count of caps in force in the header, so the workers take the
 * cap in the same acquire as the counters and pay one load when there is none.
 * What ended is retired: a cap slot goes back to no cap, a throttle action's
 * bucket ("action ID", shm/bucket.c) is marked retired, and the inspector no
 * longer shows either.  A cap that names a host caps its binding x domain
 * counter over every host (the counter is per domain).
 * Concurrency: master only, from the main loop, after every change of the list;
 * the workers read what is written here without locks (shm/cap.c).
 * Trust boundary: none; the list is the master's own.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "master/sl_shaping.h"
#include "spool/sl_actions.h"
#include "util/sl_atomic.h"
#include "util/sl_msg.h"

/* live - is a in force at now */
static bool live(const struct sl_action *a, int64_t now)
{
    return a->until == 0 || a->until > now;
}

/* same_scope - do a and b name the same binding and domain */
static bool same_scope(const struct sl_action *a, const struct sl_action *b)
{
    return strcasecmp(a->binding, b->binding) == 0 && strcasecmp(a->domain, b->domain) == 0;
}

/* cap_of - the tightest max_outbound_connections in force over exactly a's scope, with its
 * action in *id; false when an earlier entry of the list has that scope (it publishes) */
static bool cap_of(const struct sl_actions *l, size_t i, int64_t now, int32_t *cap, uint64_t *id)
{
    const struct sl_action *a = &l->a[i];

    *cap = -1;
    for (size_t j = 0; j < l->n; j++) {
        const struct sl_action *b = &l->a[j];
        if (b->kind != SL_ACTION_MAX_CONNECTIONS || !live(b, now) || !same_scope(a, b))
            continue;
        if (j < i)
            return false;
        if (*cap < 0 || b->value < *cap) {
            *cap = b->value > INT32_MAX ? INT32_MAX : (int32_t)b->value;
            *id = b->id;
        }
    }
    return true;
}

/* cap_key_in_force - does an action in force cap the scope of a cap slot (binding, domain,
 * "*" for every one) */
static bool cap_key_in_force(const struct sl_actions *l, const char *binding, const char *domain,
                             int64_t now)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct sl_action *a = &l->a[i];
        if (a->kind == SL_ACTION_MAX_CONNECTIONS && live(a, now) &&
            strcasecmp(a->binding[0] ? a->binding : "*", binding) == 0 &&
            strcasecmp(a->domain[0] ? a->domain : "*", domain) == 0)
            return true;
    }
    return false;
}

/* bucket_in_force - is "action ID" the bucket of a throttle action in force */
static bool bucket_in_force(const struct sl_actions *l, const char *key, int64_t now)
{
    unsigned long long id;
    char *end;

    if (strncmp(key, "action ", 7) != 0)
        return true; /* a throttle of the config, not an action's */
    id = strtoull(key + 7, &end, 10);
    for (size_t i = 0; *end == '\0' && i < l->n; i++)
        if (l->a[i].id == id && live(&l->a[i], now))
            return true;
    return false;
}

/* What the walk over the table needs. */
struct walk {
    struct sl_shm *shm;
    const struct sl_actions *l;
    int64_t now;
};

/* retire_one - a cap slot or an action's bucket whose action is no longer in force */
static void retire_one(uint32_t slot, const struct sl_counter_view *v, void *ctx)
{
    const struct walk *w = ctx;
    struct sl_bucket_view b;

    if (v->kind == SL_SCOPE_ACTION_CAP && v->limit >= 0 &&
        !cap_key_in_force(w->l, v->name, v->name2, w->now))
        sl_shm_cap_set(w->shm, v->name, v->name2, -1, 0);
    else if (v->kind == SL_SCOPE_THROTTLE_MSG && !bucket_in_force(w->l, v->name, w->now) &&
             sl_bucket_view(w->shm, slot, 0, &b) == 0 && !b.retired)
        sl_bucket_retire(w->shm, slot);
}

/* sl_shaping_publish - the caps in force into the shared table, and what ended retired there */
void sl_shaping_publish(struct sl_shm *shm, const struct sl_actions *l)
{
    struct walk w = {shm, l, (int64_t)time(NULL)};
    uint64_t n = 0;

    if (shm == NULL)
        return;
    for (size_t i = 0; i < l->n; i++) {
        const struct sl_action *a = &l->a[i];
        int32_t cap;
        uint64_t id = 0;
        if (a->kind != SL_ACTION_MAX_CONNECTIONS || !live(a, w.now) ||
            !cap_of(l, i, w.now, &cap, &id))
            continue;
        if (sl_shm_cap_set(shm, a->binding, a->domain, cap, id) < 0)
            sl_msg_warn("action %" PRIu64 ": its cap is not in the shared table (full?)", id);
        else
            n++;
    }
    /* The count last when caps appear, and after the retirements when they go. */
    if (n > 0)
        sl_shm_caps_publish(shm, n);
    sl_shm_foreach(shm, retire_one, &w);
    sl_shm_caps_publish(shm, n);
    sl_add64(&shm->hdr->actions_gen, 1); /* the workers read spool_dir/actions again */
}
