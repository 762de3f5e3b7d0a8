/*
 * sl_atomic.h - every atomic operation sluice uses, spelled in one place.
 *
 * The counter table lives in shared memory and is changed by several
 * processes at once, so its words must be lock-free atomics: a lock held by
 * a process that dies would never be released.  Everything here is
 * sequentially consistent; the one relaxed family (sl_stat_*) is for
 * statistics that no decision reads back.
 */
#ifndef SL_ATOMIC_H
#define SL_ATOMIC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef _Atomic uint64_t sl_atomic_u64;
typedef _Atomic uint32_t sl_atomic_u32;

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free for shared memory");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free for shared memory");

static inline uint64_t sl_load64(sl_atomic_u64 *p)
{
    return atomic_load(p);
}
static inline void sl_store64(sl_atomic_u64 *p, uint64_t v)
{
    atomic_store(p, v);
}
static inline bool sl_cas64(sl_atomic_u64 *p, uint64_t *expect, uint64_t desired)
{
    return atomic_compare_exchange_strong(p, expect, desired);
}
static inline uint64_t sl_add64(sl_atomic_u64 *p, uint64_t v)
{
    return atomic_fetch_add(p, v);
}
static inline uint64_t sl_xchg64(sl_atomic_u64 *p, uint64_t v)
{
    return atomic_exchange(p, v);
}

static inline uint32_t sl_load32(sl_atomic_u32 *p)
{
    return atomic_load(p);
}
static inline void sl_store32(sl_atomic_u32 *p, uint32_t v)
{
    atomic_store(p, v);
}
static inline bool sl_cas32(sl_atomic_u32 *p, uint32_t *expect, uint32_t desired)
{
    return atomic_compare_exchange_strong(p, expect, desired);
}

/* Statistics only (refusal counts, peaks): no decision depends on their order. */
static inline void sl_stat_inc64(sl_atomic_u64 *p)
{
    atomic_fetch_add_explicit(p, 1, memory_order_relaxed);
}
static inline uint64_t sl_stat_load64(sl_atomic_u64 *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

/* The highest value seen (peaks): statistics, so relaxed; a lost race only loses a larger peak to
 * an equally valid one. */
static inline void sl_stat_max64(sl_atomic_u64 *p, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(p, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(p, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

/* Plain 32-bit fields that another process may read while their writer rewrites them (an owner's
 * hold list, read by the audit): single-copy atomic, so a reader sees an old or a new value, never
 * a torn one.  Relaxed is enough: the list is published and retired by the seq_cst store of the
 * record's state word, and the audit re-reads that word to detect a rewrite. */
static inline uint32_t sl_word_load32(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline void sl_word_store32(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* Read-only mappings (the inspector) cannot use RMW operations; plain loads are fine. */
static inline uint64_t sl_peek64(const sl_atomic_u64 *p)
{
    return atomic_load((sl_atomic_u64 *)p);
}
static inline uint32_t sl_peek32(const sl_atomic_u32 *p)
{
    return atomic_load((sl_atomic_u32 *)p);
}

#endif
