/*
 * view.c - one counter, by slot index, as the inspector would show it.
 *
 * Used where the slot index is already known (a reservation's answer, a
 * refusal report).  Works on a read-only mapping; the key is read from the
 * arena with its bounds checked against the header.
 */
#include <string.h>

#include "sl_shm.h"

/* copy_name - a key component out of the arena, bounded and NUL-terminated */
static void copy_name(const struct sl_shm *shm, uint64_t off, uint16_t len, char *dst)
{
    if (off + len > shm->hdr->arena_bytes || len > SL_SHM_NAME_MAX) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, shm->arena + off, len);
    dst[len] = '\0';
}

/* sl_shm_view - the counter in slot, or -1 when the slot is not LIVE */
int sl_shm_view(const struct sl_shm *shm, uint32_t slot, struct sl_counter_view *v)
{
    const struct sl_shm_slot *s;
    uint64_t count, limit;

    if (slot >= shm->hdr->slot_capacity)
        return -1;
    s = &shm->slots[slot];
    if ((sl_peek64(&s->tag) & 3) != SL_SLOT_LIVE)
        return -1;
    count = sl_peek64(&s->count);
    limit = sl_peek64(&s->limit);
    v->kind = (enum sl_scope_kind)s->kind;
    copy_name(shm, s->key_off, s->name_len, v->name);
    copy_name(shm, (uint64_t)s->key_off + s->name_len + 1, s->name2_len, v->name2);
    v->in_use = (uint32_t)count;
    v->limit = (int32_t)(uint32_t)limit;
    v->gen = (uint32_t)(limit >> 32);
    v->refused = sl_peek64(&s->refused);
    v->peak = sl_peek64(&s->peak);
    return 0;
}
