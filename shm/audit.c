/*
 * audit.c - set every count that disagrees with the live owners' records to what they hold (I2).
 *
 * Three passes, O(slots + owners * records): (1) snapshot every LIVE slot's count word;
 * (2) from every ALIVE owner's records, count the HELD units per slot and mark the slots of
 * INTENT/RELEASING records as in flux; (3) for each LIVE slot not in flux whose in_use differs,
 * CAS the snapshot word to the expected count.
 * Why it is safe while workers run: every change of a count bumps its sequence, and a holder's
 * share of a count changes only together with the count.  So when the CAS of pass 3 succeeds,
 * no share changed between pass 1 and pass 3, and pass 2 (which ran in between) read every
 * share exactly: HELD is one unit, FREE none, and INTENT/RELEASING were excluded.  A record
 * rewritten while pass 2 read it is caught by re-reading its state; a rewrite that comes back
 * to the same state in between can at worst add a unit that the next audit takes back (never
 * remove one), so the error is on the side of I1.
 * Concurrency: run by one process at a time (the master, or the test harness).
 * Trust boundary: none; our own records, so an impossible slot index is a panic.
 */
#include <stdlib.h>
#include <time.h>

#include "util/sl_msg.h"
#include "shm/sl_shm.h"
#include "shm_impl.h"

/* scan_record - add one record's share to expected, or mark its slots in flux */
static void scan_record(const struct sl_shm *shm, struct sl_shm_hold *hold, uint32_t *expected,
                        uint8_t *flux)
{
    uint32_t cap = shm->hdr->slot_capacity, slots[SL_RESV_MAX];
    uint32_t state = sl_load32(&hold->state), n;

    if (state == SL_HOLD_FREE)
        return;
    n = sl_word_load32(&hold->n);
    if (n > SL_RESV_MAX)
        n = SL_RESV_MAX; /* only a rewrite in progress can show this; the state re-read tells */
    for (uint32_t i = 0; i < n; i++)
        slots[i] = sl_word_load32(&hold->slot[i]);
    /* The list is settled only if the state is still what it was: else treat it as in flux. */
    if (sl_load32(&hold->state) != state)
        state = SL_HOLD_INTENT;
    else if (state > SL_HOLD_RELEASING || sl_word_load32(&hold->n) > SL_RESV_MAX)
        sl_msg_panic("shm: hold record in state %u with %u slots", state, sl_word_load32(&hold->n));
    for (uint32_t i = 0; i < n; i++) {
        if (slots[i] >= cap) {
            if (sl_load32(&hold->state) == state)
                sl_msg_panic("shm: hold record names slot %u of %u", slots[i], cap);
            continue;
        }
        if (state == SL_HOLD_HELD)
            expected[slots[i]]++;
        else
            flux[slots[i] / 8] |= (uint8_t)(1u << (slots[i] % 8));
    }
}

/* sl_shm_audit - set every settled count that disagrees with the live holds to their number */
void sl_shm_audit(struct sl_shm *shm, struct sl_audit_stats *st)
{
    struct sl_shm_header *h = shm->hdr;
    uint32_t cap = h->slot_capacity;
    struct sl_audit_stats local = {0};
    uint64_t *snap;
    uint32_t *expected;
    uint8_t *flux, *live;
    struct timespec now;

    if (shm->readonly)
        sl_msg_panic("shm: audit on a read-only mapping");
    snap = sl_calloc(cap, sizeof *snap);
    expected = sl_calloc(cap, sizeof *expected);
    flux = sl_calloc(cap / 8 + 1, 1);
    live = sl_calloc(cap / 8 + 1, 1);

    /* Pass 1: every LIVE count as it is now.  A slot published later is left to the next run. */
    for (uint32_t i = 0; i < cap; i++)
        if (TAG_STATE(sl_load64(&shm->slots[i].tag)) == SL_SLOT_LIVE) {
            snap[i] = sl_load64(&shm->slots[i].count);
            live[i / 8] |= (uint8_t)(1u << (i % 8));
        }

    /* Pass 2: what the live owners say they hold. */
    for (uint32_t o = 0; o < h->owner_capacity; o++) {
        struct sl_shm_owner *ow = &shm->owners[o];
        if (sl_load32(&ow->state) != SL_OWNER_ALIVE)
            continue;
        for (int k = 0; k < SL_OWNER_RECORDS; k++)
            scan_record(shm, &ow->hold[k], expected, flux);
    }

    /* Pass 3: settle what disagrees and did not move since pass 1. */
    for (uint32_t i = 0; i < cap; i++) {
        struct sl_shm_slot *s = &shm->slots[i];
        uint64_t w = snap[i];

        if (!(live[i / 8] & (1u << (i % 8))))
            continue;
        local.checked++;
        if (flux[i / 8] & (1u << (i % 8))) {
            local.in_flux++;
            continue;
        }
        if ((uint32_t)w == expected[i])
            continue;
        /* Fails harmlessly if anything changed the count since pass 1. */
        if (sl_cas64(&s->count, &w, count_word(w, expected[i]))) {
            local.corrected++;
            sl_msg_warn("shm: audit set slot %u from %u to %u", i, (uint32_t)snap[i], expected[i]);
        }
    }
    free(snap);
    free(expected);
    free(flux);
    free(live);

    clock_gettime(CLOCK_REALTIME, &now);
    sl_stat_inc64(&h->audit_runs);
    sl_add64(&h->audit_fixed, local.corrected);
    sl_store64(&h->last_audit, (uint64_t)now.tv_sec);
    if (st != NULL)
        *st = local;
}
