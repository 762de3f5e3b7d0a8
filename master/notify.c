/*
 * notify.c - tell systemd where the daemon stands (Type=notify).
 *
 * libsystemd's sd_notify sends to $NOTIFY_SOCKET and does nothing when it is
 * unset, so sluiced runs the same in a terminal and under systemd.  The
 * sequence is READY=1 once the workers are up; RELOADING=1 then READY=1 around
 * a reload; STOPPING=1 at shutdown; STATUS= lines for `systemctl status`.
 */
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "sl_notify.h"
#include "sl_msg.h"

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
