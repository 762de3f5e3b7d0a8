/*
 * sl_clock.h - deadlines on the monotonic clock, in milliseconds.
 *
 * The master's timers (audit, spawn back-off) and the workers' holds all ask
 * the same two questions: when is "ms from now", and how long until then.
 */
#ifndef SL_CLOCK_H
#define SL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* The CLOCK_MONOTONIC time ms milliseconds from now. */
struct timespec sl_clock_after_ms(long ms);
/* Milliseconds from now until t; 0 when t is past. */
long sl_clock_ms_until(struct timespec t);
/* Microseconds on CLOCK_MONOTONIC (durations) and on CLOCK_REALTIME (times of day, which
 * other processes compare: a queue id's arrival). */
uint64_t sl_clock_us(void);
uint64_t sl_clock_wall_us(void);
/* ms as a timespec (for ppoll and nanosleep). */
struct timespec sl_clock_span(long ms);

#endif
