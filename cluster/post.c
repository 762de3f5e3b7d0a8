/*
 * post.c - a renewal round's results on the board: which hold records' leases are good, and
 * until when, and which are lost (their connections close before their next transaction).
 *
 * The master's renewal thread (master/cluster.c) lists the records, asks Redis, and posts the
 * answers here.  Meanwhile a worker may give a lease back, take its record again for a new
 * connection, or die and be replaced: each write is therefore a compare-and-swap from the
 * word read when the record was listed, and only for the worker listed.
 * Concurrency: the master's renewal thread; the workers write their own records' words at
 * acquire (worker/lease.c); every word is an atomic.
 * Trust boundary: none; the results were checked in lease.c.
 */
#include <stddef.h>

#include "util/sl_msg.h"
#include "cluster_impl.h"

/* still_holder - is the worker the renewal listed still the owner's?  The master may have
 * reaped it and given its place to a new worker while Redis answered; the new one's leases
 * are its own to judge (its acquire writes their validity).  A reap between this check and
 * the store can still write the old worker's validity on the new one's record: it is never
 * later than the new one's own, so at worst a connection closes early. */
static bool still_holder(const struct sl_shm *shm, const struct sl_lease_ref *ref)
{
    const struct sl_shm_owner *ow = &shm->owners[ref->owner];
    return sl_peek32(&ow->state) == SL_OWNER_ALIVE && sl_peek32(&ow->pid) == ref->pid;
}

/* lease_still_held - is the listed record still held (its connection open)? */
static bool lease_still_held(const struct sl_shm *shm, const struct sl_lease_ref *ref)
{
    return sl_peek32(&shm->owners[ref->owner].hold[ref->record].state) == SL_HOLD_HELD;
}

/* unanswered - did Redis leave a lease of ref's record unanswered (a round cut short)?  That
 * lease was not renewed: the record keeps its word, which ends before that lease does. */
static bool unanswered(const struct sl_lease_ref *refs, size_t n, const struct sl_lease_ref *ref)
{
    for (size_t i = 0; i < n; i++)
        if (refs[i].result < 0 && refs[i].owner == ref->owner && refs[i].record == ref->record)
            return true;
    return false;
}

/* sl_cluster_post - a renewal's results on the board.  Losses first: a record any of whose
 * leases was lost (0: the counter full; 3: not in Redis) gets 0, its connection closes.  Then
 * each record renewed is good until `until`.  Every write is a compare-and-swap from the
 * word the round read before it listed the record: a word written since (a new acquire of the
 * record, a loss just posted) is not this lease's to change.  A word of 0 stays 0 (a loss is
 * final).  A record with a lease Redis did not answer for keeps its word. */
void sl_cluster_post(const struct sl_shm *shm, struct sl_cluster_board *b,
                     const struct sl_lease_ref *refs, size_t n, uint64_t until)
{
    bool cut = false; /* a round Redis did not answer whole: rare, and then looked into */

    for (size_t i = 0; i < n; i++)
        cut = cut || refs[i].result < 0;
    for (size_t i = 0; i < n; i++) {
        sl_atomic_u64 *valid = sl_cluster_valid(b, refs[i].owner, (int)refs[i].record);
        uint64_t seen = refs[i].seen_valid;
        if ((refs[i].result != 0 && refs[i].result != 3) || seen == 0 ||
            !still_holder(shm, &refs[i]) || !sl_cas64(valid, &seen, 0))
            continue;
        /* A lease not in Redis is mostly one its worker gave back while the round was on its
         * way (its record no longer held): nothing to say then. */
        if (refs[i].result == 0 || lease_still_held(shm, &refs[i]))
            sl_msg_warn(
                "cluster lease %s of %s %s: its connection closes", refs[i].member, refs[i].key,
                refs[i].result == 0 ? "lost (the counter is full)" : "not in Redis (lost there)");
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t seen = refs[i].seen_valid;
        if ((refs[i].result == 1 || refs[i].result == 2) && seen != 0 &&
            still_holder(shm, &refs[i]) && (!cut || !unanswered(refs, n, &refs[i])))
            sl_cas64(sl_cluster_valid(b, refs[i].owner, (int)refs[i].record), &seen, until);
    }
}
