/*
 * resv.c - take every counter of one connection, or none, and give them back (I1, I2).
 *
 * sl_resv_acquire and sl_resv_release are one mirror-image pair: acquire records the slot list
 * in a free hold record of the caller's owner, marks it INTENT, increments the counters in the
 * fixed order (scope kind, then slot index) and marks it HELD; on a refusal it gives back what
 * it took, in reverse order, and frees the record.  Release marks RELEASING, decrements in
 * reverse order and frees the record.
 * Concurrency: each counter change is one CAS that keeps in_use within the limit, so no two
 * processes can both take a counter's last unit.  A hold record is written only by its owner
 * (and by the master once the owner is dead); the state word is stored seq_cst around every
 * counter change, so whoever reads it knows which counts may be in flux.  Callers keep SIGALRM
 * and SIGTERM blocked (sl_shm.h), so no handler runs between a count change and its record.
 * Trust boundary: none; the slots and the owner come from our own code, and a bad index is a
 * panic.
 */
#include <string.h>

#include "util/sl_msg.h"
#include "shm/sl_shm.h"
#include "shm_impl.h"

/* sl_resv_init - an empty reservation for config generation gen */
void sl_resv_init(struct sl_resv *r, uint32_t gen)
{
    memset(r, 0, sizeof *r);
    r->gen = gen;
    r->record = -1;
    r->cap_slot = UINT32_MAX;
    r->cap = SL_LIMIT_NONE;
}

/* sl_resv_cap - a shaping action's cap on the counter in slot, for this reservation */
void sl_resv_cap(struct sl_resv *r, uint32_t slot, int32_t cap, uint64_t action)
{
    r->cap_slot = slot;
    r->cap = cap;
    r->cap_action = action;
}

/* sl_resv_add - one more counter with its limit; -1 when the set is full */
int sl_resv_add(struct sl_resv *r, uint32_t slot, int32_t limit)
{
    if (r->n >= SL_RESV_MAX)
        return -1;
    r->slot[r->n] = slot;
    r->limit[r->n] = limit;
    r->n++;
    return 0;
}

/* tighter - the stricter of two limits (negative: none) */
static int32_t tighter(int32_t a, int32_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* order - sort r into the fixed order and merge a slot named twice (its tighter limit wins) */
static void order(const struct sl_shm *shm, struct sl_resv *r)
{
    uint64_t rank[SL_RESV_MAX];
    uint32_t n = 0;

    if (r->n > SL_RESV_MAX)
        sl_msg_panic("shm: reservation of %u counters", r->n);
    /* Insertion sort: at most 16 entries, usually handed over already in order. */
    for (uint32_t i = 0; i < r->n; i++) {
        uint32_t slot = r->slot[i];
        int32_t limit = r->limit[i];
        uint8_t kind;
        if (slot >= shm->hdr->slot_capacity)
            sl_msg_panic("shm: reservation names slot %u of %u", slot, shm->hdr->slot_capacity);
        kind = shm->slots[slot].kind;
        if (kind == SL_SCOPE_NONE || kind >= SL_SCOPE__COUNT)
            sl_msg_panic("shm: reservation names slot %u, not a live counter", slot);
        uint64_t key = (uint64_t)kind << 32 | slot;
        uint32_t j = n;
        while (j > 0 && rank[j - 1] > key)
            j--;
        if (j > 0 && rank[j - 1] == key) {
            r->limit[j - 1] = tighter(r->limit[j - 1], limit);
            continue;
        }
        memmove(&rank[j + 1], &rank[j], (n - j) * sizeof rank[0]);
        memmove(&r->slot[j + 1], &r->slot[j], (n - j) * sizeof r->slot[0]);
        memmove(&r->limit[j + 1], &r->limit[j], (n - j) * sizeof r->limit[0]);
        rank[j] = key;
        r->slot[j] = slot;
        r->limit[j] = limit;
        n++;
    }
    r->n = n;
}

/* effective_limit - the limit of counter i: the slot's own when it carries a newer generation */
static int32_t effective_limit(struct sl_shm_slot *s, const struct sl_resv *r, uint32_t i)
{
    uint64_t w = sl_load64(&s->limit);

    if ((uint32_t)(w >> 32) > r->gen)
        return (int32_t)(uint32_t)w;
    /* Publish ours when the slot's is older, so the inspector shows the limit in force. */
    while ((uint32_t)(w >> 32) < r->gen &&
           !sl_cas64(&s->limit, &w, limit_word(r->gen, r->limit[i])))
        ;
    if ((uint32_t)(w >> 32) > r->gen) /* a newer generation landed meanwhile */
        return (int32_t)(uint32_t)w;
    return r->limit[i];
}

/* sl_resv_acquire - take every counter of r within its limit, in the fixed order, or none */
enum sl_resv_result sl_resv_acquire(struct sl_shm *shm, uint32_t owner, struct sl_resv *r,
                                    struct sl_refusal *why)
{
    struct sl_shm_owner *o;
    struct sl_shm_hold *h = NULL;
    uint32_t taken[SL_RESV_MAX];
    int32_t rec;

    if (owner >= shm->hdr->owner_capacity || shm->readonly)
        sl_msg_panic("shm: acquire by owner %u of %u", owner, shm->hdr->owner_capacity);
    if (r->record >= 0)
        sl_msg_panic("shm: acquire of a reservation already held (record %d)", r->record);
    o = &shm->owners[owner];
    for (rec = 0; rec < SL_OWNER_RECORDS; rec++)
        if (sl_load32(&o->hold[rec].state) == SL_HOLD_FREE) {
            h = &o->hold[rec];
            break;
        }
    if (h == NULL)
        return SL_RESV_NORECORD;
    order(shm, r);

    /* The list first, then INTENT: a reader of INTENT finds every slot we may touch. */
    sl_word_store32(&h->n, r->n);
    for (uint32_t i = 0; i < r->n; i++)
        sl_word_store32(&h->slot[i], r->slot[i]);
    sl_store32(&h->state, SL_HOLD_INTENT);

    for (uint32_t i = 0; i < r->n; i++) {
        struct sl_shm_slot *s = &shm->slots[r->slot[i]];
        int32_t limit = effective_limit(s, r, i);
        bool capped = r->slot[i] == r->cap_slot && tighter(limit, r->cap) != limit;
        uint32_t seen;

        if (capped) /* a shaping action's cap, taken in the same step as the limit */
            limit = r->cap;
        if (count_take(s, limit, &seen)) {
            taken[i] = seen;
            continue;
        }
        /* Refused: undo in the mirror-image order, then say who refused. */
        for (uint32_t j = i; j-- > 0;)
            if (!count_give(&shm->slots[r->slot[j]]))
                sl_msg_panic("shm: slot %u was 0 right after we took a unit", r->slot[j]);
        sl_store32(&h->state, SL_HOLD_FREE);
        sl_stat_inc64(&s->refused);
        sl_stat_inc64(&o->refused);
        if (why != NULL) {
            why->slot = r->slot[i];
            why->kind = (enum sl_scope_kind)s->kind;
            why->in_use = seen;
            why->limit = limit;
            why->action = capped ? r->cap_action : 0;
        }
        return SL_RESV_REFUSED;
    }
    sl_store32(&h->state, SL_HOLD_HELD);
    /* Peaks count granted connections only, not units taken and rolled back. */
    for (uint32_t i = 0; i < r->n; i++)
        note_peak(&shm->slots[r->slot[i]], taken[i]);
    r->record = rec;
    sl_stat_inc64(&o->acquired);
    return SL_RESV_OK;
}

/* in_resv - is slot among r's counters */
static bool in_resv(const struct sl_resv *r, uint32_t slot)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (r->slot[i] == slot)
            return true;
    return false;
}

/* sl_resv_swap - move a held reservation to want's counters: take the new ones, give back the
 * old ones, leave the shared ones alone */
enum sl_resv_result sl_resv_swap(struct sl_shm *shm, uint32_t owner, struct sl_resv *r,
                                 struct sl_resv *want, struct sl_refusal *why)
{
    struct sl_resv add;
    struct sl_shm_hold *h, *t;
    enum sl_resv_result res;

    if (owner >= shm->hdr->owner_capacity || shm->readonly || r->record < 0)
        sl_msg_panic("shm: swap by owner %u of record %d", owner, r->record);
    h = &shm->owners[owner].hold[r->record];
    order(shm, want);
    sl_resv_init(&add, r->gen);
    sl_resv_cap(&add, want->cap_slot, want->cap, want->cap_action);
    for (uint32_t i = 0; i < want->n; i++)
        if (!in_resv(r, want->slot[i]))
            sl_resv_add(&add, want->slot[i], want->limit[i]);
    /* The new units first, under a record of their own: all or none, as any acquire. */
    if (add.n > 0 && (res = sl_resv_acquire(shm, owner, &add, why)) != SL_RESV_OK)
        return res;
    t = add.n > 0 ? &shm->owners[owner].hold[add.record] : NULL;
    /* Both records in flux while the list moves: the audit leaves their slots alone. */
    if (t != NULL)
        sl_store32(&t->state, SL_HOLD_INTENT);
    sl_store32(&h->state, SL_HOLD_RELEASING);
    for (uint32_t i = r->n; i-- > 0;)
        if (!in_resv(want, r->slot[i]))
            count_give(&shm->slots[r->slot[i]]);
    sl_word_store32(&h->n, want->n);
    for (uint32_t i = 0; i < want->n; i++)
        sl_word_store32(&h->slot[i], want->slot[i]);
    sl_store32(&h->state, SL_HOLD_HELD);
    if (t != NULL) {
        sl_word_store32(&t->n, 0);
        sl_store32(&t->state, SL_HOLD_FREE);
    }
    want->record = r->record;
    *r = *want;
    return SL_RESV_OK;
}

/* sl_resv_release - give back what sl_resv_acquire took; a second call does nothing */
void sl_resv_release(struct sl_shm *shm, uint32_t owner, struct sl_resv *r)
{
    struct sl_shm_hold *h;

    if (r->record < 0)
        return;
    if (owner >= shm->hdr->owner_capacity || r->record >= SL_OWNER_RECORDS)
        sl_msg_panic("shm: release by owner %u, record %d", owner, r->record);
    h = &shm->owners[owner].hold[r->record];
    if (sl_load32(&h->state) != SL_HOLD_HELD)
        sl_msg_panic("shm: release of record %d in state %u", r->record, sl_load32(&h->state));
    sl_store32(&h->state, SL_HOLD_RELEASING);
    /* A count already 0 stays 0: an audit may have settled it (it never goes below zero). */
    for (uint32_t i = r->n; i-- > 0;)
        count_give(&shm->slots[r->slot[i]]);
    sl_store32(&h->state, SL_HOLD_FREE);
    r->record = -1;
}
