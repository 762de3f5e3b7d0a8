/*
 * bucket.c - the rate throttles' buckets in the shared table.
 *
 * A bucket is a slot of kind SL_SCOPE_THROTTLE_CONN or _MSG.  It paces tokens
 * (the generic cell rate algorithm with no burst tolerance): tat_us is the
 * earliest time the next token may go; taking one at now moves it to
 * max(tat, now) + (period + margin)/n.  Two tokens are therefore never
 * closer than that, so any window of period holds at most n of them whatever
 * the number of processes drawing, and the margin (5% of the period, at least
 * 50 ms) absorbs the jitter between a token taken and the receiver's clock:
 * the guarantee is the receiver's, not an average.
 * Concurrency: every worker takes tokens with one CAS on tat_us; a process
 * killed at any instruction leaves at worst one token spent unused.  The rate
 * is written by whoever resolved it from the config (a newer generation wins);
 * readers see each word as it was at one instant.
 * Trust boundary: the slot index comes from our own lookups; a read-only
 * mapping is validated by segment.c before any slot is read.
 */
#include "shm/sl_shm.h"
#include "shm_impl.h"

/* bucket_slot - the slot when it is a live bucket of this table, else NULL */
static struct sl_shm_slot *bucket_slot(const struct sl_shm *shm, uint32_t slot)
{
    struct sl_shm_slot *s;

    if (shm == NULL || shm->hdr == NULL || slot >= shm->hdr->slot_capacity)
        return NULL;
    s = &shm->slots[slot];
    if (TAG_STATE(sl_peek64(&s->tag)) != SL_SLOT_LIVE ||
        (s->kind != SL_SCOPE_THROTTLE_CONN && s->kind != SL_SCOPE_THROTTLE_MSG))
        return NULL;
    return s;
}

/* sl_bucket_interval_us - (period + margin) / n in microseconds, rounded up: never faster
 * than asked, and with room for the jitter between a token and the receiver's clock */
uint64_t sl_bucket_interval_us(uint32_t n, uint32_t period_ms)
{
    uint64_t margin = period_ms / 20u; /* 5%, at least 50 ms, at most a tenth of the period */

    if (n == 0)
        return 0;
    if (margin < 50)
        margin = period_ms / 10u < 50 ? period_ms / 10u : 50;
    return (((uint64_t)period_ms + margin) * 1000u + n - 1) / n;
}

/* sl_bucket_set - publish the rate for generation gen, unless a newer one is there */
void sl_bucket_set(struct sl_shm *shm, uint32_t slot, uint32_t n, uint32_t period_ms, uint32_t gen)
{
    struct sl_shm_slot *s = bucket_slot(shm, slot);
    uint64_t want = (uint64_t)n << 32 | period_ms;

    if (s == NULL || shm->readonly)
        return;
    if (sl_load32(&s->rate_gen) > gen || sl_load64(&s->rate) == want)
        return;
    sl_store64(&s->rate, want);
    sl_store32(&s->rate_gen, gen);
}

/* sl_bucket_retire - the bucket's throttle ended: no rate, and none may be set again */
void sl_bucket_retire(struct sl_shm *shm, uint32_t slot)
{
    struct sl_shm_slot *s = bucket_slot(shm, slot);

    if (s == NULL || shm->readonly)
        return;
    sl_store32(&s->rate_gen, SL_BUCKET_RETIRED);
    sl_store64(&s->rate, 0);
}

/* interval - the bucket's pacing interval now; 0 when it has no rate */
static uint64_t interval(struct sl_shm_slot *s)
{
    uint64_t r = sl_peek64(&s->rate);

    return sl_bucket_interval_us((uint32_t)(r >> 32), (uint32_t)(r & 0xffffffffu));
}

/* sl_bucket_take - one token at now_us, or the next one reserved when it comes soon enough */
bool sl_bucket_take(struct sl_shm *shm, uint32_t slot, uint64_t now_us, uint64_t max_wait_us,
                    uint64_t *wait_us)
{
    struct sl_shm_slot *s = bucket_slot(shm, slot);
    uint64_t tat, step, at;

    if (wait_us != NULL)
        *wait_us = 0;
    if (s == NULL || shm->readonly || (step = interval(s)) == 0)
        return true;
    tat = sl_load64(&s->tat_us);
    for (;;) {
        if (tat > now_us + max_wait_us) {
            if (wait_us != NULL)
                *wait_us = tat - now_us;
            sl_stat_inc64(&s->refused);
            return false;
        }
        at = tat > now_us ? tat : now_us; /* the token's time: the next one paced */
        if (sl_cas64(&s->tat_us, &tat, at + step))
            break;
    }
    if (wait_us != NULL)
        *wait_us = at - now_us;
    sl_stat_inc64(&s->taken);
    return true;
}

/* sl_bucket_wait - microseconds until the next token */
uint64_t sl_bucket_wait(const struct sl_shm *shm, uint32_t slot, uint64_t now_us)
{
    struct sl_shm_slot *s = bucket_slot(shm, slot);
    uint64_t tat;

    if (s == NULL || interval(s) == 0)
        return 0;
    tat = sl_peek64(&s->tat_us);
    return tat > now_us ? tat - now_us : 0;
}

/* sl_bucket_view - one bucket for the inspector */
int sl_bucket_view(const struct sl_shm *shm, uint32_t slot, uint64_t now_us,
                   struct sl_bucket_view *v)
{
    struct sl_shm_slot *s = bucket_slot(shm, slot);
    uint64_t r;

    if (s == NULL)
        return -1;
    r = sl_peek64(&s->rate);
    v->n = (uint32_t)(r >> 32);
    v->period_ms = (uint32_t)(r & 0xffffffffu);
    v->wait_us = sl_bucket_wait(shm, slot, now_us);
    v->taken = sl_peek64(&s->taken);
    v->refused = sl_peek64(&s->refused);
    v->retired = sl_peek32(&s->rate_gen) == SL_BUCKET_RETIRED && r == 0;
    return 0;
}
