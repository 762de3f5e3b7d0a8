/*
 * sl_signals.h - the master's signals: handlers raise a flag and write a byte to a
 * self-pipe; the main loop (sluiced.c) does the work (reap, reload, stop).
 */
#ifndef SL_SIGNALS_H
#define SL_SIGNALS_H

#include <stdbool.h>

enum sl_sig { SL_SIG_CHILD, SL_SIG_RELOAD, SL_SIG_STOP, SL_SIG_REOPEN, SL_SIG__COUNT };
/* Install the handlers; returns the read end of the self-pipe. */
int sl_signals_install(void);
/* The loop woke: empty the pipe, before any flag of this pass is taken (a signal raised after
 * this leaves its byte, and the next wait returns at once). */
void sl_signals_woken(void);
/* Is a flag raised that no one took yet (its byte already read: a pass that ended before it
 * took every flag, as the main loop's on SIGTERM)?  Then the loop must not sleep. */
bool sl_signals_pending(void);
/* True (once) when the signal was raised since the last call. */
bool sl_signals_take(enum sl_sig s);

#endif
