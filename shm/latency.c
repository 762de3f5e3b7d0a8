/*
 * latency.c - where delivery time goes, per binding: time from arrival to the first attempt,
 * connect (TCP, greeting, EHLO), the TLS handshake, and each transaction, as Prometheus
 * histograms that `sluicectl metrics` prints.
 *
 * A fixed table of SL_LAT_BINDINGS entries in the segment header, claimed by name on first use
 * (free -> claimed by CAS, name written, then live); a binding that finds the table full counts
 * under the shared entry "*", so no observation is lost.  Entries are never freed: a binding a
 * reload removed keeps its figures, as counters do.
 * Concurrency: statistics only, so relaxed increments; a reader sees each word as it was at
 * one instant (a scrape does not need them consistent with each other).  A claim that died
 * between CAS and publish leaves its entry "being claimed": readers skip it, writers pass it.
 * Trust boundary: the names come from our own config; a reader of a damaged mapping bounds
 * every length it reads.
 */
#include <string.h>

#include "shm/sl_shm.h"
#include "shm_impl.h"

enum { LAT_FREE = 0, LAT_CLAIMING = 1, LAT_LIVE = 2 };

/* Upper bounds of the buckets, microseconds: 0.5 ms to 30 s. */
const uint64_t sl_lat_bounds_us[SL_LAT_BUCKETS - 1] = {
    500,    1000,   2000,    5000,    10000,   25000,    50000,   100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000};

/* sl_lat_phase_name - the phase label of the metrics */
const char *sl_lat_phase_name(enum sl_lat_phase p)
{
    static const char *const names[SL_LAT__PHASES] = {"queued", "connect", "tls", "transaction"};
    return (unsigned)p < SL_LAT__PHASES ? names[p] : "?";
}

/* named - entry e is live and named name (len bytes) */
static bool named(struct sl_lat_entry *e, const char *name, size_t len)
{
    return sl_load32(&e->state) == LAT_LIVE && e->len == len && memcmp(e->name, name, len) == 0;
}

/* claim - take entry e for name when it is free */
static bool claim(struct sl_lat_entry *e, const char *name, size_t len)
{
    uint32_t free_state = LAT_FREE;

    if (!sl_cas32(&e->state, &free_state, LAT_CLAIMING))
        return false;
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    e->len = (uint32_t)len;
    sl_store32(&e->state, LAT_LIVE); /* publishes the name */
    return true;
}

/* find_or_claim - the index of name's entry, claimed when it has none; -1 when full */
static int find_or_claim(struct sl_lat_entry *t, const char *name, size_t len)
{
    for (unsigned i = 0; i < SL_LAT_BINDINGS; i++)
        if (named(&t[i], name, len))
            return (int)i;
    for (unsigned i = 0; i < SL_LAT_BINDINGS; i++)
        if (claim(&t[i], name, len) || named(&t[i], name, len))
            return (int)i; /* ours, or a racing claimer's for the same name */
    return -1;
}

/* sl_lat_entry - binding's entry, or the shared "*" one when the table is full */
int sl_lat_entry(struct sl_shm *shm, const char *binding)
{
    size_t len = strnlen(binding, SL_LAT_NAME_MAX + 1);
    int i;

    if (shm == NULL || shm->hdr == NULL || shm->readonly)
        return -1;
    if (len > SL_LAT_NAME_MAX || (i = find_or_claim(shm->hdr->latency, binding, len)) < 0)
        i = find_or_claim(shm->hdr->latency, "*", 1);
    return i;
}

/* sl_lat_hist_observe - one observation of us microseconds in histogram h */
void sl_lat_hist_observe(struct sl_lat_hist *h, uint64_t us)
{
    unsigned b = 0;

    while (b < SL_LAT_BUCKETS - 1 && us > sl_lat_bounds_us[b])
        b++;
    sl_stat_inc64(&h->bucket[b]);
    sl_add64(&h->sum_us, us);
    sl_stat_inc64(&h->count);
}

/* sl_lat_observe - one observation of us microseconds in phase */
void sl_lat_observe(struct sl_shm *shm, int entry, enum sl_lat_phase phase, uint64_t us)
{
    if (shm == NULL || shm->hdr == NULL || shm->readonly || entry < 0 || entry >= SL_LAT_BINDINGS ||
        (unsigned)phase >= SL_LAT__PHASES)
        return;
    sl_lat_hist_observe(&shm->hdr->latency[entry].h[phase], us);
}

/* sl_lat_read - a copy of entry i when it is live */
bool sl_lat_read(const struct sl_shm *shm, unsigned i, struct sl_lat_view *v)
{
    const struct sl_lat_entry *e;
    uint32_t len;

    if (shm == NULL || shm->hdr == NULL || i >= SL_LAT_BINDINGS)
        return false;
    e = &shm->hdr->latency[i];
    if (sl_peek32(&e->state) != LAT_LIVE || (len = e->len) > SL_LAT_NAME_MAX)
        return false;
    memcpy(v->name, e->name, len);
    v->name[len] = '\0';
    for (unsigned p = 0; p < SL_LAT__PHASES; p++) {
        for (unsigned b = 0; b < SL_LAT_BUCKETS; b++)
            v->bucket[p][b] = sl_peek64(&e->h[p].bucket[b]);
        v->sum_us[p] = sl_peek64(&e->h[p].sum_us);
        v->count[p] = sl_peek64(&e->h[p].count);
    }
    return true;
}
