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
/* True (once) when the signal was raised since the last call. */
bool sl_signals_take(enum sl_sig s);

#endif
