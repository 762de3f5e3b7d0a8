/*
 * owner.c - ownership records: one per worker, claimed at fork and reclaimed after reaping (I2).
 *
 * The master claims a record for each worker it forks and, once waitpid() has reaped that
 * worker, calls sl_shm_reclaim_owner: every HELD reservation is given back, a reservation
 * caught INTENT or RELEASING (its counts may or may not have moved) is dropped and left to the
 * audit, and a slot the worker had CLAIMED but not yet published is ABANDONED.
 * Concurrency: a record's state goes FREE -> ALIVE by CAS (so two claimers cannot share one)
 * and back to FREE only here, after its process is gone; nobody else writes its hold records
 * then, so they are read and cleared without racing their writer.  Counts are still changed
 * by CAS only, since live workers share them.
 * Trust boundary: none; our own records, so an impossible state is a panic.
 */
#include <string.h>

#include "util/sl_msg.h"
#include "shm/sl_shm.h"
#include "shm_impl.h"

/* sl_shm_owner_claim - a free owner record for process pid */
int sl_shm_owner_claim(struct sl_shm *shm, pid_t pid, uint32_t *owner)
{
    if (shm->readonly)
        sl_msg_panic("shm: owner claim on a read-only mapping");
    for (uint32_t i = 0; i < shm->hdr->owner_capacity; i++) {
        struct sl_shm_owner *o = &shm->owners[i];
        uint32_t expect = SL_OWNER_FREE;

        if (!sl_cas32(&o->state, &expect, SL_OWNER_ALIVE))
            continue;
        /* Reclaim left every record FREE; clearing again costs nothing and keeps a fresh
         * owner from inheriting anything. */
        for (int k = 0; k < SL_OWNER_RECORDS; k++) {
            sl_store32(&o->hold[k].state, SL_HOLD_FREE);
            sl_word_store32(&o->hold[k].n, 0);
        }
        sl_store64(&o->acquired, 0);
        sl_store64(&o->refused, 0);
        sl_store32(&o->pid, (uint32_t)pid);
        *owner = i;
        return 0;
    }
    return -1;
}

/* abandon_claims - a dead claimer's unpublished slots can never become LIVE: retire them */
static void abandon_claims(struct sl_shm *shm, uint32_t owner)
{
    struct sl_shm_header *h = shm->hdr;

    /* Nothing is being claimed by anyone: skip the walk over the whole table. */
    if (sl_load64(&h->claiming) == 0)
        return;
    for (uint32_t i = 0; i < h->slot_capacity; i++) {
        struct sl_shm_slot *s = &shm->slots[i];
        uint64_t t = sl_load64(&s->tag);

        if (TAG_STATE(t) != SL_SLOT_CLAIMED || TAG_OWNER(t) != owner)
            continue;
        if (sl_cas64(&s->tag, &t, (t & ~(uint64_t)3) | SL_SLOT_ABANDONED)) {
            sl_add64(&h->claiming, (uint64_t)-1);
            sl_msg_warn("shm: slot %u abandoned by dead owner %u", i, owner);
        }
    }
}

/* sl_shm_reclaim_owner - return a reaped worker's holds and free its record */
uint32_t sl_shm_reclaim_owner(struct sl_shm *shm, uint32_t owner)
{
    struct sl_shm_owner *o;
    uint32_t units = 0;
    bool flux = false;

    if (shm->readonly || owner >= shm->hdr->owner_capacity)
        sl_msg_panic("shm: reclaim of owner %u of %u", owner, shm->hdr->owner_capacity);
    o = &shm->owners[owner];
    if (sl_load32(&o->state) != SL_OWNER_ALIVE)
        return 0; /* already reclaimed */

    for (int k = 0; k < SL_OWNER_RECORDS; k++) {
        struct sl_shm_hold *hold = &o->hold[k];
        uint32_t state = sl_load32(&hold->state), n = sl_word_load32(&hold->n);

        switch (state) {
        case SL_HOLD_FREE:
            continue;
        case SL_HOLD_HELD:
            if (n > SL_RESV_MAX)
                sl_msg_panic("shm: owner %u record %d holds %u slots", owner, k, n);
            for (uint32_t i = n; i-- > 0;) {
                uint32_t slot = sl_word_load32(&hold->slot[i]);
                if (slot >= shm->hdr->slot_capacity)
                    sl_msg_panic("shm: owner %u record %d names slot %u", owner, k, slot);
                /* Never below zero: an audit may already have settled this count. */
                if (count_give(&shm->slots[slot]))
                    units++;
            }
            break;
        case SL_HOLD_INTENT:
        case SL_HOLD_RELEASING:
            /* Died mid-change: some counts moved, some did not.  Only the audit can tell. */
            flux = true;
            break;
        default:
            sl_msg_panic("shm: owner %u record %d in state %u", owner, k, state);
        }
        sl_store32(&hold->state, SL_HOLD_FREE);
        sl_word_store32(&hold->n, 0);
    }
    abandon_claims(shm, owner);
    sl_store32(&o->pid, 0);
    sl_store32(&o->state, SL_OWNER_FREE);
    sl_add64(&shm->hdr->reclaimed, units);
    /* With the record gone, the audit counts this owner's share as zero. */
    if (flux)
        sl_shm_audit(shm, NULL);
    return units;
}
