/*
 * wait.c - how often and how long mail waited for each counter, for `sluicectl counters`,
 * `metrics` and `queue`.
 *
 * The master's scheduler holds a destination back when one of its counters is full; the wait
 * begins then and ends when the destination gets a connection (or has nothing left to send).
 * Each counter shows the destinations waiting for it now, how many waits began, the time the
 * ended ones lasted, and since when mail has waited for it without a break.  It also keeps
 * the waiting destinations' keys XORed, which is the key of the one that waits alone, so that
 * a worker whose spent connection holds the counter keeps it for its own destination's next
 * message when no other one waits: giving its job back would only bring the same mail back
 * to it, a round trip and a reload later.
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

/* sl_shm_waiter_key - FNV-1a of "binding NUL domain", never 0 */
uint32_t sl_shm_waiter_key(const char *binding, const char *domain)
{
    uint32_t h = 2166136261u;

    for (const char *p = binding;; p++) {
        h = (h ^ (unsigned char)*p) * 16777619u;
        if (*p == '\0')
            break;
    }
    for (const char *p = domain; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h != 0 ? h : 1;
}

/* sl_shm_wait_begin - one more destination (who) waits for the counter in slot */
void sl_shm_wait_begin(struct sl_shm *shm, uint32_t slot, uint64_t now_ms, uint32_t who)
{
    struct sl_shm_slot *s = live_slot(shm, slot);
    uint32_t n;

    if (s == NULL)
        return;
    n = sl_load32(&s->waiting);
    if (n == 0)
        sl_store64(&s->wait_since, now_ms);
    /* the keys before the count, here and in sl_shm_wait_end: a reader that loads the count,
     * then the keys, and sees one waiter sees its key */
    sl_store32(&s->waiters, sl_load32(&s->waiters) ^ who);
    sl_store32(&s->waiting, n + 1);
    sl_stat_inc64(&s->holdbacks);
}

/* sl_shm_wait_end - who's wait that began at since_ms is over */
void sl_shm_wait_end(struct sl_shm *shm, uint32_t slot, uint64_t since_ms, uint64_t now_ms,
                     uint32_t who)
{
    struct sl_shm_slot *s = live_slot(shm, slot);
    uint32_t n;

    if (s == NULL)
        return;
    sl_add64(&s->waited_ms, now_ms > since_ms ? now_ms - since_ms : 0);
    n = sl_load32(&s->waiting);
    if (n > 0) {
        sl_store32(&s->waiters, n == 1 ? 0 : sl_load32(&s->waiters) ^ who);
        sl_store32(&s->waiting, --n);
    }
    if (n == 0)
        sl_store64(&s->wait_since, 0);
}

/* sl_shm_waited_by_other - does another destination than who wait for the counter in slot */
bool sl_shm_waited_by_other(const struct sl_shm *shm, uint32_t slot, uint32_t who)
{
    const struct sl_shm_slot *s;
    uint32_t n, k;

    if (slot >= shm->hdr->slot_capacity)
        return false;
    s = &shm->slots[slot];
    n = sl_peek32(&s->waiting);
    if (n != 1)
        return n > 1;
    k = sl_peek32(&s->waiters);
    return k != 0 && k != who; /* 0, never a key: the last one leaving (sl_shm_wait_end) */
}

/* sl_resv_contended - is any counter of r waited for by another destination than who; the
 * first one's slot in *slot */
bool sl_resv_contended(const struct sl_shm *shm, const struct sl_resv *r, uint32_t who,
                       uint32_t *slot)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (sl_shm_waited_by_other(shm, r->slot[i], who)) {
            if (slot != NULL)
                *slot = r->slot[i];
            return true;
        }
    return false;
}
