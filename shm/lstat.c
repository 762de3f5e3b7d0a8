/*
 * lstat.c - what each SMTP listener took and refused: sessions, messages, recipients, octets,
 * TLS and AUTH, and every kind of rejection, for `sluicectl metrics`.
 *
 * A fixed table of SL_LSTAT_LISTENERS entries in the segment header.  The master claims a
 * listener's entry by name when it opens or reloads the listeners, before it forks their
 * processes, so a reload that keeps the name keeps the figures and only the master ever
 * writes a name (no claim races).  Names past the table's size share the entry "*".  The
 * processes count into their entry with relaxed increments; the sessions open now are
 * counted by the master from the listeners' board (a process killed mid-session cannot leave
 * a count behind) and written here.
 * Concurrency: statistics only, one atomic add each; a reader sees each word as it was at one
 * instant (a scrape does not need them consistent with each other).
 * Trust boundary: the names come from our own config; a reader of a damaged mapping bounds
 * every length it reads.
 */
#include <string.h>

#include "shm/sl_shm.h"
#include "shm_impl.h"

enum { LSTAT_FREE = 0, LSTAT_LIVE = 1 }; /* one writer: no "being claimed" state */

/* sl_lstat_reason - the reason word of a rejection counter */
const char *sl_lstat_reason(enum sl_lstat what)
{
    static const char *const reasons[SL_LSTAT_LAST_REJ - SL_LSTAT_FIRST_REJ + 1] = {
        [SL_LSTAT_REJ_RELAY - SL_LSTAT_FIRST_REJ] = "relay",
        [SL_LSTAT_REJ_RECIPIENTS - SL_LSTAT_FIRST_REJ] = "recipients",
        [SL_LSTAT_REJ_SIZE - SL_LSTAT_FIRST_REJ] = "size",
        [SL_LSTAT_REJ_CONTENT - SL_LSTAT_FIRST_REJ] = "content",
        [SL_LSTAT_REJ_BINDING - SL_LSTAT_FIRST_REJ] = "binding",
        [SL_LSTAT_REJ_STORAGE - SL_LSTAT_FIRST_REJ] = "storage",
    };
    return what >= SL_LSTAT_FIRST_REJ && what <= SL_LSTAT_LAST_REJ
               ? reasons[what - SL_LSTAT_FIRST_REJ]
               : "?";
}

/* find - the index of name's live entry in t, or -1 */
static int find(const struct sl_lstat_entry *t, const char *name, size_t len)
{
    for (unsigned i = 0; i < SL_LSTAT_LISTENERS; i++)
        if (sl_peek32(&t[i].state) == LSTAT_LIVE && t[i].len == len &&
            memcmp(t[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/* take - a free entry of t[from..to) named name, or -1 when none is free */
static int take(struct sl_lstat_entry *t, unsigned from, unsigned to, const char *name, size_t len)
{
    for (unsigned i = from; i < to; i++)
        if (sl_load32(&t[i].state) == LSTAT_FREE) {
            memcpy(t[i].name, name, len);
            t[i].name[len] = '\0';
            t[i].len = (uint32_t)len;
            sl_store32(&t[i].state, LSTAT_LIVE); /* publishes the name */
            return (int)i;
        }
    return -1;
}

/* sl_lstat_claim - listener's entry (the master, before the processes fork); the last entry
 * is kept for "*", so a listener past the table is still counted */
int sl_lstat_claim(struct sl_shm *shm, const char *listener)
{
    size_t len = strnlen(listener, SL_LSTAT_NAME_MAX + 1);
    struct sl_lstat_entry *t;
    int i;

    if (shm == NULL || shm->hdr == NULL || shm->readonly)
        return -1;
    t = shm->hdr->listen;
    if (len <= SL_LSTAT_NAME_MAX && ((i = find(t, listener, len)) >= 0 ||
                                     (i = take(t, 0, SL_LSTAT_LISTENERS - 1, listener, len)) >= 0))
        return i;
    if ((i = find(t, "*", 1)) >= 0)
        return i;
    return take(t, SL_LSTAT_LISTENERS - 1, SL_LSTAT_LISTENERS, "*", 1);
}

/* sl_lstat_add - n more of what in entry */
void sl_lstat_add(struct sl_shm *shm, int entry, enum sl_lstat what, uint64_t n)
{
    if (shm == NULL || shm->hdr == NULL || shm->readonly || entry < 0 ||
        entry >= SL_LSTAT_LISTENERS || (unsigned)what >= SL_LSTAT__N)
        return;
    sl_add64(&shm->hdr->listen[entry].n[what], n);
}

/* sl_lstat_accepted - one message accepted in us microseconds */
void sl_lstat_accepted(struct sl_shm *shm, int entry, uint64_t us)
{
    if (shm == NULL || shm->hdr == NULL || shm->readonly || entry < 0 ||
        entry >= SL_LSTAT_LISTENERS)
        return;
    sl_lat_hist_observe(&shm->hdr->listen[entry].accept, us);
}

/* sl_lstat_set_active - the sessions entry's listener has open now */
void sl_lstat_set_active(struct sl_shm *shm, int entry, uint64_t sessions)
{
    if (shm == NULL || shm->hdr == NULL || shm->readonly || entry < 0 ||
        entry >= SL_LSTAT_LISTENERS)
        return;
    sl_store64(&shm->hdr->listen[entry].active, sessions);
}

/* sl_lstat_read - a copy of entry i when it is live */
bool sl_lstat_read(const struct sl_shm *shm, unsigned i, struct sl_lstat_view *v)
{
    const struct sl_lstat_entry *e;
    uint32_t len;

    if (shm == NULL || shm->hdr == NULL || i >= SL_LSTAT_LISTENERS)
        return false;
    e = &shm->hdr->listen[i];
    if (sl_peek32(&e->state) != LSTAT_LIVE || (len = e->len) > SL_LSTAT_NAME_MAX)
        return false;
    memcpy(v->name, e->name, len);
    v->name[len] = '\0';
    v->active = sl_peek64(&e->active);
    for (unsigned k = 0; k < SL_LSTAT__N; k++)
        v->n[k] = sl_peek64(&e->n[k]);
    for (unsigned b = 0; b < SL_LAT_BUCKETS; b++)
        v->accept_bucket[b] = sl_peek64(&e->accept.bucket[b]);
    v->accept_sum_us = sl_peek64(&e->accept.sum_us);
    return true;
}
