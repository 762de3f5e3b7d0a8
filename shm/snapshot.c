/*
 * snapshot.c - live counters as the inspector shows them: one by slot index, or all of them (I3).
 *
 * sl_shm_view copies one LIVE slot into a struct sl_counter_view; sl_shm_snapshot and
 * sl_shm_foreach walk the table with it, and the worker's probe uses it for the slot it already
 * knows.  Reads only: works on a read-only mapping and never writes a word of the segment, so the
 * inspector can never block or disturb the daemon.
 * Concurrency: a slot's key is immutable once its tag reads LIVE (seq_cst load, paired with the
 * creator's seq_cst store), so the key is read without a lock; in_use, limit and statistics
 * are each one atomic word, read as they are at that instant (each consistent on its own).
 * Trust boundary: the mapping may belong to another program or be damaged: every key offset
 * and length is checked against the arena before it is read, a slot index against the table,
 * a slot with a bad kind or key is not LIVE to a reader, and control characters in a name are
 * shown as '?'.
 */
#include <string.h>

#include "util/sl_msg.h"
#include "shm/sl_shm.h"
#include "shm_impl.h"

/* copy_name - a bounded copy of one key component, control characters masked */
static void copy_name(char *dst, const char *src, uint16_t len)
{
    for (uint16_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    dst[len] = '\0';
}

/* sl_shm_view - the counter in slot; -1 when it is not LIVE or its kind or key is out of bounds */
int sl_shm_view(const struct sl_shm *shm, uint32_t slot, struct sl_counter_view *v)
{
    const struct sl_shm_slot *s;
    uint64_t count, limit;
    uint32_t off;
    uint16_t len1, len2;
    uint8_t kind;

    if (slot >= shm->hdr->slot_capacity)
        return -1;
    s = &shm->slots[slot];
    if (TAG_STATE(sl_peek64(&s->tag)) != SL_SLOT_LIVE)
        return -1;
    kind = s->kind;
    off = s->key_off;
    len1 = s->name_len;
    len2 = s->name2_len;
    if (kind == SL_SCOPE_NONE || kind >= SL_SCOPE__COUNT || len1 > SL_SHM_NAME_MAX ||
        len2 > SL_SHM_NAME_MAX || (uint64_t)off + len1 + 1 + len2 + 1 > shm->hdr->arena_bytes)
        return -1;
    v->kind = (enum sl_scope_kind)kind;
    copy_name(v->name, shm->arena + off, len1);
    copy_name(v->name2, shm->arena + off + len1 + 1, len2);
    count = sl_peek64(&s->count);
    limit = sl_peek64(&s->limit);
    v->in_use = (uint32_t)count;
    v->limit = (int32_t)(uint32_t)limit;
    v->gen = (uint32_t)(limit >> 32);
    v->refused = sl_peek64(&s->refused);
    v->peak = sl_peek64(&s->peak);
    v->waiting = sl_peek32(&s->waiting);
    v->holdbacks = sl_peek64(&s->holdbacks);
    v->waited_ms = sl_peek64(&s->waited_ms);
    v->wait_since = sl_peek64(&s->wait_since);
    return 0;
}

/* sl_shm_snapshot - every LIVE counter, in slot order, in a new array */
int sl_shm_snapshot(const struct sl_shm *shm, struct sl_counter_view **out, size_t *n)
{
    uint32_t cap;
    size_t room = 0, used = 0;
    struct sl_counter_view *v;

    *out = NULL;
    *n = 0;
    if (shm->hdr == NULL)
        return -1;
    cap = shm->hdr->slot_capacity;
    /* Size the array by a first walk over the tags alone (a few bytes per slot); a counter
     * published between the walks waits for the next snapshot. */
    for (uint32_t i = 0; i < cap; i++)
        if (TAG_STATE(sl_peek64(&shm->slots[i].tag)) == SL_SLOT_LIVE)
            room++;
    /* calloc: fresh pages come zeroed, so only the bytes of each name are written. */
    v = sl_calloc(room ? room : 1, sizeof *v);
    for (uint32_t i = 0; i < cap && used < room; i++)
        if (sl_shm_view(shm, i, &v[used]) == 0)
            used++;
    *out = v;
    *n = used;
    return 0;
}

/* sl_shm_foreach - call fn on every LIVE counter */
void sl_shm_foreach(const struct sl_shm *shm,
                    void (*fn)(uint32_t slot, const struct sl_counter_view *v, void *ctx),
                    void *ctx)
{
    struct sl_counter_view v;

    if (shm->hdr == NULL)
        return;
    for (uint32_t i = 0; i < shm->hdr->slot_capacity; i++)
        if (sl_shm_view(shm, i, &v) == 0)
            fn(i, &v, ctx);
}
