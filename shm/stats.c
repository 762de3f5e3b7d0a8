/*
 * stats.c - the daemon-wide statistics block in the segment header: what became of recipients,
 * sessions opened (and how many encrypted, authenticated), session phases that timed out.
 *
 * Workers count here, one increment per event; `sluicectl metrics` reads the block.  These are
 * statistics only: monotonic counters that no decision reads back, so relaxed increments suffice
 * (sl_stat_inc64; a count of several recipients is one sl_add64), and a worker that dies between
 * two increments leaves valid words behind. Concurrency: lock-free; a reader sees each word as it
 * was at one instant (the words are not consistent with each other, which a scrape does not need).
 * Trust boundary: the arguments come from our own workers; an outcome word or phase we do not
 * know is not counted rather than written out of bounds.  A read-only attach validated the
 * header (version 2 and its size) before sl_stats_read touches the block.
 */
#include <string.h>

#include "shm/sl_shm.h"

/* outcome_index - the counter of a delivery-log outcome word; -1 when it is none of ours */
static int outcome_index(const char *outcome)
{
    if (outcome == NULL)
        return -1;
    if (strcmp(outcome, "delivered") == 0)
        return SL_STATS_DELIVERED;
    if (strcmp(outcome, "deferred") == 0)
        return SL_STATS_DEFERRED;
    if (strcmp(outcome, "bounced") == 0)
        return SL_STATS_BOUNCED;
    return -1;
}

/* sl_stats_outcome - n recipients got this outcome (one delivery-log line) */
void sl_stats_outcome(struct sl_shm *shm, const char *outcome, size_t n)
{
    int i = outcome_index(outcome);

    if (shm == NULL || shm->hdr == NULL || shm->readonly || i < 0 || n == 0)
        return;
    sl_add64(&shm->hdr->stats.recipients[i], (uint64_t)n);
}

/* sl_stats_timeout - a session phase's timer fired */
void sl_stats_timeout(struct sl_shm *shm, unsigned phase)
{
    if (shm == NULL || shm->hdr == NULL || shm->readonly || phase >= SL_STATS_PHASES)
        return;
    sl_stat_inc64(&shm->hdr->stats.timeouts[phase]);
}

/* sl_stats_connection - a session was opened, in clear or encrypted (and authenticated) */
void sl_stats_connection(struct sl_shm *shm, bool tls, bool verified)
{
    if (shm == NULL || shm->hdr == NULL || shm->readonly)
        return;
    sl_stat_inc64(&shm->hdr->stats.connections);
    if (tls)
        sl_stat_inc64(&shm->hdr->stats.tls);
    if (tls && verified)
        sl_stat_inc64(&shm->hdr->stats.tls_verified);
}

/* sl_stats_group_commit - the group commit's figures, as the master last read them */
void sl_stats_group_commit(struct sl_shm *shm, uint64_t syncs, uint64_t messages)
{
    if (shm == NULL || shm->hdr == NULL || shm->readonly)
        return;
    sl_store64(&shm->hdr->stats.spool_syncs, syncs);
    sl_store64(&shm->hdr->stats.spool_synced, messages);
}

/* sl_stats_read - a copy of the block, each word as it is now */
void sl_stats_read(const struct sl_shm *shm, struct sl_stats_view *out)
{
    const struct sl_shm_stats *st = &shm->hdr->stats;

    memset(out, 0, sizeof *out);
    for (int i = 0; i < SL_STATS__OUTCOMES; i++)
        out->recipients[i] = sl_peek64(&st->recipients[i]);
    out->connections = sl_peek64(&st->connections);
    out->tls = sl_peek64(&st->tls);
    out->tls_verified = sl_peek64(&st->tls_verified);
    for (int i = 0; i < SL_STATS_PHASES; i++)
        out->timeouts[i] = sl_peek64(&st->timeouts[i]);
    out->spool_syncs = sl_peek64(&st->spool_syncs);
    out->spool_synced = sl_peek64(&st->spool_synced);
}
