/*
 * sl_msg.h - diagnostics with three strict levels (and two quiet ones).
 *
 * warn:  something recoverable went wrong; the caller carries on.
 * fatal: the environment or the configuration is wrong: one clear line on
 *        stderr, exit(1).
 * panic: one of sluice's own invariants broke: one line, then abort() for a core.
 * info/debug: progress, shown at or below the configured level.
 * A peer's misbehaviour is never fatal: it is a delivery outcome.
 */
#ifndef SL_MSG_H
#define SL_MSG_H

#include <stdarg.h>

enum sl_msg_level { SL_MSG_DEBUG, SL_MSG_INFO, SL_MSG_WARN, SL_MSG_FATAL, SL_MSG_PANIC };

/* Program name shown before each line ("sluiced", "sluicectl", "worker 3"). */
void sl_msg_init(const char *progname);
/* A daemon's process (after sl_msg_init): a line stderr cannot take at once (a journal that
 * lags, a pipe nobody reads) is dropped and counted rather than waited for; a fatal line
 * waits a few seconds.
 * The master calls it before its privileges' drop: the copy of a pipe it opens then is kept
 * by its children, who close their other descriptors with sl_msg_close_from. */
void sl_msg_never_block(void);
void sl_msg_close_from(unsigned from);
void sl_msg_set_level(enum sl_msg_level lowest_shown);

void sl_msg_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sl_msg_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sl_msg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void sl_msg_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void sl_msg_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that never fails silently: out of memory is fatal. */
void *sl_malloc(size_t n);
void *sl_calloc(size_t n, size_t size);
void *sl_realloc(void *p, size_t n);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);

#endif
