/*
 * wait.c - how often and how long mail waited for each counter, for `sluicectl counters`,
 * `metrics` and `queue`.
 *
 * The master's scheduler holds a destination back when one of its counters is full; the wait
 * begins then and ends when the destination gets a connection (or has nothing left to send).
 * Each counter shows the destinations waiting for it now, how many waits began, the time the
 * ended ones lasted, and since when mail has waited for it without a break.
 * Concurrency: the master is the only writer of these words (single writer, so plain atomic
 * stores suffice for since); readers see each word as it was at one instant.  They live in
 * the slot's second cache line, away from the count the workers CAS.
 * Trust boundary: none; the slot index comes from the master's own refusal records.
 */
#include "shm/sl_shm.h"
#include "shm_impl.h"

/* live_slot - the slot when it is a LIVE counter of this table, else NULL */
static struct sl_shm_slot *live_slot(struct sl_shm *shm, uint32_t slot)
{
    if (shm == NULL || shm->hdr == NULL || shm->readonly || slot >= shm->hdr->slot_capacity)
        return NULL;
    if (TAG_STATE(sl_peek64(&shm->slots[slot].tag)) != SL_SLOT_LIVE)
        return NULL;
    return &shm->slots[slot];
}

/* sl_shm_wait_begin - one more destination waits for the counter in slot */
void sl_shm_wait_begin(struct sl_shm *shm, uint32_t slot, uint64_t now_ms)
{
    struct sl_shm_slot *s = live_slot(shm, slot);

    if (s == NULL)
        return;
    if (sl_load32(&s->waiting) == 0)
        sl_store64(&s->wait_since, now_ms);
    sl_store32(&s->waiting, sl_load32(&s->waiting) + 1);
    sl_stat_inc64(&s->holdbacks);
}

/* sl_shm_wait_end - a wait that began at since_ms is over */
void sl_shm_wait_end(struct sl_shm *shm, uint32_t slot, uint64_t since_ms, uint64_t now_ms)
{
    struct sl_shm_slot *s = live_slot(shm, slot);
    uint32_t n;

    if (s == NULL)
        return;
    sl_add64(&s->waited_ms, now_ms > since_ms ? now_ms - since_ms : 0);
    n = sl_load32(&s->waiting);
    if (n > 0)
        sl_store32(&s->waiting, --n);
    if (n == 0)
        sl_store64(&s->wait_since, 0);
}

/* sl_resv_contended - is any counter of r waited for */
bool sl_resv_contended(const struct sl_shm *shm, const struct sl_resv *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (r->slot[i] < shm->hdr->slot_capacity && sl_peek32(&shm->slots[r->slot[i]].waiting) > 0)
            return true;
    return false;
}
