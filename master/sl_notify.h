/*
 * sl_notify.h - tell systemd where the daemon stands (Type=notify); nothing
 * happens without $NOTIFY_SOCKET, and nothing ever blocks: a change of state
 * that the socket could not take is sent again by sl_notify_flush.  The watchdog is the master
 * loop's: the loop asks how long it may sleep (sl_notify_watchdog_wait_ms) and pings when due.
 */
#ifndef SL_NOTIFY_H
#define SL_NOTIFY_H

#include <stdbool.h>
#include <time.h>

void sl_notify_ready(const char *status);
void sl_notify_reloading(void);
void sl_notify_stopping(void);
void sl_notify_status(const char *status);
/* Send again a change of state (READY, RELOADING, STOPPING) the socket could not take; the
 * main loop calls it every turn.  true when nothing is left to send. */
bool sl_notify_flush(void);

/* The service watchdog (WatchdogSec=, seen as $WATCHDOG_USEC). */
struct sl_watchdog {
    long every_ms;        /* ping period: half the watchdog interval; 0: no watchdog */
    struct timespec next; /* the next ping is due then */
};
/* Read the watchdog settings from the environment; every_ms 0 when disabled. */
void sl_notify_watchdog_init(struct sl_watchdog *wd);
/* Milliseconds until the next ping is due (0: now), -1 with no watchdog. */
long sl_notify_watchdog_wait_ms(const struct sl_watchdog *wd);
/* Send WATCHDOG=1 when a ping is due; true when one was sent. */
bool sl_notify_watchdog_tick(struct sl_watchdog *wd);

#endif
