/*
 * clock.c - monotonic deadlines in milliseconds (see sl_clock.h).
 *
 * No state; CLOCK_MONOTONIC, so a change of the wall clock moves no timer.
 */
#include "util/sl_clock.h"

/* sl_clock_span - ms as a timespec */
struct timespec sl_clock_span(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    return t;
}

/* sl_clock_after_ms - the monotonic time ms from now */
struct timespec sl_clock_after_ms(long ms)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* sl_clock_ms_until - milliseconds until t, 0 when past */
long sl_clock_ms_until(struct timespec t)
{
    struct timespec n;
    long ms;

    clock_gettime(CLOCK_MONOTONIC, &n);
    ms = (long)(t.tv_sec - n.tv_sec) * 1000 + (t.tv_nsec - n.tv_nsec) / 1000000L;
    return ms > 0 ? ms : 0;
}

/* us_of - a clock's reading in microseconds */
static uint64_t us_of(clockid_t id)
{
    struct timespec t;

    clock_gettime(id, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* sl_clock_us - monotonic microseconds */
uint64_t sl_clock_us(void)
{
    return us_of(CLOCK_MONOTONIC);
}

/* sl_clock_wall_us - microseconds since the epoch */
uint64_t sl_clock_wall_us(void)
{
    return us_of(CLOCK_REALTIME);
}
