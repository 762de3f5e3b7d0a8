/*
 * shm_impl.h - the counter table's private word formats and size limits, for the shm/ files only.
 *
 * Word formats (sl_shm.h is the ABI; this is how its words are read):
 *   tag    hash & ~0xffff | claimer owner << 2 | state      (owner < SL_SHM_OWNER_MAX)
 *   count  sequence << 32 | in_use                          (every change bumps the sequence)
 *   limit  generation << 32 | (uint32_t)limit               (negative: no limit)
 *   key    name NUL name2 NUL in the arena, at most KEY_MAX bytes (segment.c sizes the arena
 *          for one such key per slot; lookup.c writes them)
 * Concurrency: every change of a count word is one seq_cst compare-and-swap that keeps
 * 0 <= in_use <= limit; a process that dies between two of them leaves a valid word behind.
 * Trust boundary: none here; callers validate slot indices before calling in.
 */
#ifndef SL_SHM_IMPL_H
#define SL_SHM_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "util/sl_atomic.h"
#include "shm/sl_shm.h"

#define SL_SHM_OWNER_MAX 16384u                      /* the claimer field of a tag has 14 bits */
#define SL_SHM_SLOT_MAX  (1u << 22)                  /* keeps every arena offset within 32 bits */
#define KEY_MAX          (2 * (SL_SHM_NAME_MAX + 1)) /* name NUL name2 NUL */
#define TAG_STATE(t)     ((uint32_t)((t)&3u))
#define TAG_OWNER(t)     ((uint32_t)(((t) >> 2) & 0x3fffu))
#define TAG_HASH(t)      ((t) & ~(uint64_t)0xffff)

/* count_word - the count word that follows c with in_use n: the sequence moves on by one */
static inline uint64_t count_word(uint64_t c, uint32_t n)
{
    return ((c >> 32) + 1) << 32 | n;
}

/* limit_word - pack a generation and a limit */
static inline uint64_t limit_word(uint32_t gen, int32_t limit)
{
    return (uint64_t)gen << 32 | (uint32_t)limit;
}

/* count_take - one more unit if in_use stays within limit (negative: none).  *seen is the
 * in_use after our unit, or the in_use that refused it. */
static inline bool count_take(struct sl_shm_slot *s, int32_t limit, uint32_t *seen)
{
    uint64_t c = sl_load64(&s->count);
    uint32_t in_use;

    for (;;) {
        in_use = (uint32_t)c;
        if ((limit >= 0 && in_use >= (uint32_t)limit) || in_use == UINT32_MAX) {
            *seen = in_use;
            return false;
        }
        /* On failure the CAS reloads c: loop until our step lands on an unchanged word. */
        if (sl_cas64(&s->count, &c, count_word(c, in_use + 1)))
            break;
    }
    *seen = in_use + 1;
    return true;
}

/* note_peak - a granted connection brought in_use to n: raise the peak (statistics) */
static inline void note_peak(struct sl_shm_slot *s, uint32_t n)
{
    if (n > sl_stat_load64(&s->peak))
        sl_stat_max64(&s->peak, n);
}

/* count_give - one unit back; never below zero (true when a unit was given back) */
static inline bool count_give(struct sl_shm_slot *s)
{
    uint64_t c = sl_load64(&s->count);

    for (;;) {
        uint32_t in_use = (uint32_t)c;
        if (in_use == 0)
            return false;
        if (sl_cas64(&s->count, &c, count_word(c, in_use - 1)))
            return true;
    }
}

/* latency.c: one observation of us microseconds in h (the listeners' accept time too). */
void sl_lat_hist_observe(struct sl_lat_hist *h, uint64_t us);

#endif
