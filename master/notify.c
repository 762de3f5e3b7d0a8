/*
 * notify.c - tell systemd where the daemon stands (Type=notify).
 *
 * libsystemd's sd_notify sends to $NOTIFY_SOCKET and does nothing when it is
 * unset, so sluiced runs the same in a terminal and under systemd.  The
 * sequence is READY=1 once the workers are up; RELOADING=1 then READY=1 around
 * a reload; STOPPING=1 at shutdown; STATUS= lines for `systemctl status`;
 * WATCHDOG=1 every half watchdog interval while the master's loop turns.
 * The watchdog proves the loop is alive, so only the loop pings: a master stuck
 * anywhere (a blocked poll, a livelock) stops the pings and systemd restarts it.
 * Trust boundary: the environment (NOTIFY_SOCKET, WATCHDOG_USEC) is systemd's.
 */
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "util/sl_clock.h"
#include "master/sl_notify.h"
#include "util/sl_msg.h"

/* tell - one notification; a failure is worth a warning, never more */
static void tell(const char *state)
{
    int r = sd_notify(0, state);
    if (r < 0)
        sl_msg_warn("sd_notify(%s): %d", state, r);
}

/* sl_notify_ready - the workers are up (first start, or end of a reload) */
void sl_notify_ready(const char *status)
{
    char msg[512];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    tell(msg);
}

/* sl_notify_reloading - a reload has begun */
void sl_notify_reloading(void)
{
    tell("RELOADING=1");
}

/* sl_notify_stopping - shutdown has begun */
void sl_notify_stopping(void)
{
    tell("STOPPING=1\nSTATUS=stopping");
}

/* sl_notify_status - a human-readable status line */
void sl_notify_status(const char *status)
{
    char msg[512];
    snprintf(msg, sizeof msg, "STATUS=%s", status);
    tell(msg);
}

/* sl_notify_watchdog_init - WatchdogSec= from the environment; off when unset */
void sl_notify_watchdog_init(struct sl_watchdog *wd)
{
    uint64_t usec = 0;

    wd->every_ms = 0;
    /* > 0 only when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is ours). */
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return;
    /* Half the interval, as sd_watchdog_enabled(3) advises: a ping that is a
     * little late still arrives in time.  At least 1 ms, so the loop never spins. */
    wd->every_ms = (long)(usec / 2000);
    if (wd->every_ms < 1)
        wd->every_ms = 1;
    wd->next = sl_clock_after_ms(0);
    sl_msg_info("watchdog: %llu ms, pinged every %ld ms", (unsigned long long)(usec / 1000),
                wd->every_ms);
}

/* sl_notify_watchdog_wait_ms - how long the loop may sleep before the next ping */
long sl_notify_watchdog_wait_ms(const struct sl_watchdog *wd)
{
    return wd->every_ms > 0 ? sl_clock_ms_until(wd->next) : -1;
}

/* sl_notify_watchdog_tick - ping when due */
bool sl_notify_watchdog_tick(struct sl_watchdog *wd)
{
    if (wd->every_ms == 0 || sl_clock_ms_until(wd->next) > 0)
        return false;
    tell("WATCHDOG=1");
    wd->next = sl_clock_after_ms(wd->every_ms);
    return true;
}
