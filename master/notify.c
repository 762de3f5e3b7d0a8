/*
 * notify.c - tell systemd where the daemon stands (Type=notify), never blocking.
 *
 * The messages go as datagrams to $NOTIFY_SOCKET (nothing happens when it is unset, so sluiced
 * runs the same in a terminal and under systemd).  The sequence is READY=1 once the workers are
 * up; RELOADING=1 then READY=1 around a reload; STOPPING=1 at shutdown; STATUS= lines for
 * `systemctl status`; WATCHDOG=1 every half watchdog interval while the master's loop turns.
 * The watchdog proves the loop is alive, so only the loop pings: a master stuck anywhere (a
 * blocked poll, a livelock) stops the pings and systemd restarts it.
 * Never blocking: libsystemd's sd_notify() sends with a blocking sendmsg, so a reader that
 * stops reading (a stalled or foreign supervisor) would freeze the master once the socket's
 * queue is full.  Here every send is MSG_DONTWAIT on a non-blocking socket: a STATUS or
 * WATCHDOG that does not fit is dropped (a warning at most once a minute); READY, RELOADING and
 * STOPPING are kept and sent again from the main loop (sl_notify_flush) until they go.
 * Trust boundary: the environment (NOTIFY_SOCKET, WATCHDOG_USEC) is systemd's.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>
#include <systemd/sd-daemon.h>

#include "master/sl_notify.h"
#include "util/sl_clock.h"
#include "util/sl_msg.h"

/* The master's one connection to the notify socket (made on first use), the state change
 * still to be told, and when a dropped notification was last warned of. */
static int notify_fd = -1;
static struct sockaddr_un notify_to;
static socklen_t notify_len;
static bool notify_off; /* $NOTIFY_SOCKET unset or unusable: every call does nothing */
static char pending[512];
static time_t last_drop_warning;

/* notify_open - the socket and address of $NOTIFY_SOCKET; false when there is none */
static bool notify_open(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t len;

    if (notify_fd >= 0 || notify_off)
        return notify_fd >= 0;
    if (path == NULL || (path[0] != '/' && path[0] != '@') ||
        (len = strlen(path)) >= sizeof notify_to.sun_path) {
        notify_off = true;
        return false;
    }
    notify_to.sun_family = AF_UNIX;
    memcpy(notify_to.sun_path, path, len);
    if (path[0] == '@') /* an abstract address: a leading NUL, no terminating one */
        notify_to.sun_path[0] = '\0';
    notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (notify_fd < 0) {
        sl_msg_warn("notify socket: %s", strerror(errno));
        notify_off = true;
    }
    return notify_fd >= 0;
}

/* send_now - one datagram, never waiting; true when it went (or there is no socket) */
static bool send_now(const char *state)
{
    if (!notify_open())
        return true;
    if (sendto(notify_fd, state, strlen(state), MSG_DONTWAIT | MSG_NOSIGNAL,
               (const struct sockaddr *)&notify_to, notify_len) >= 0)
        return true;
    return false;
}

/* tell - one notification; a STATUS or WATCHDOG that cannot go now is dropped (a warning a
 * minute at most), a change of state is kept for sl_notify_flush */
static void tell(const char *state, bool keep)
{
    time_t now;

    if (send_now(state))
        return;
    if (keep) {
        strlcpy(pending, state, sizeof pending); /* the latest state is the one that counts */
        return;
    }
    now = time(NULL);
    if (now - last_drop_warning >= 60) {
        sl_msg_warn("the notify socket takes nothing (%s): status and watchdog pings dropped",
                    strerror(errno));
        last_drop_warning = now;
    }
}

/* sl_notify_flush - send a state change that could not go before; true when none is left */
bool sl_notify_flush(void)
{
    if (pending[0] != '\0' && send_now(pending))
        pending[0] = '\0';
    return pending[0] == '\0';
}

/* sl_notify_ready - the workers are up (first start, or end of a reload) */
void sl_notify_ready(const char *status)
{
    char msg[512];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    tell(msg, true);
}

/* sl_notify_reloading - a reload has begun */
void sl_notify_reloading(void)
{
    tell("RELOADING=1", true);
}

/* sl_notify_stopping - shutdown has begun */
void sl_notify_stopping(void)
{
    tell("STOPPING=1\nSTATUS=stopping", true);
}

/* sl_notify_status - a human-readable status line */
void sl_notify_status(const char *status)
{
    char msg[512];
    snprintf(msg, sizeof msg, "STATUS=%s", status);
    tell(msg, false);
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
    tell("WATCHDOG=1", false);
    wd->next = sl_clock_after_ms(wd->every_ms);
    return true;
}
