/*
 * notify.c - tell a running master that a message was queued.
 *
 * One datagram "N ID" to spool_dir/control.sock, from an autobound abstract
 * address like every control client.  Best effort: with no daemon the message
 * simply waits for the master's next scan.  A busy master's socket holds only
 * net.unix.max_dgram_qlen datagrams (10 by default), so a burst of injects
 * would overflow it and its messages would wait for the next rescan (a
 * minute or more); the send therefore waits up to NOTIFY_WAIT_MS for room instead.
 * No answer is awaited.  The sending socket is made once per process and kept
 * (notify_fd): a listener notifies once per message, and a socket, a bind and a
 * close each time were three system calls more per message.
 * Concurrency: any process; one thread (notify_fd).
 * Trust boundary: id is ours (validated); the socket's mode decides who may
 * send.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc/sl_control.h"
#include "util/sl_pid.h"
#include "spool_impl.h"

#define NOTIFY_WAIT_MS 500 /* a stopped or stuck master costs inject at most this */

static int notify_fd = -1;   /* this process's sending socket, made at its first notice */
static pid_t notify_pid = 0; /* ... by this process: a child (which may have closed the
                              * descriptor, and reused its number) makes its own */

/* notify_socket - the sending socket, made and autobound on first use; -1 when it cannot be */
static int notify_socket(void)
{
    struct sockaddr_un me = {.sun_family = AF_UNIX};
    struct timeval wait = {.tv_sec = 0, .tv_usec = NOTIFY_WAIT_MS * 1000};
    int fd;

    if (notify_fd >= 0 && notify_pid == sl_pid())
        return notify_fd;
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
    /* Autobind (an address of sa_family_t alone): the master sees a sender. */
    if (bind(fd, (struct sockaddr *)&me, sizeof(sa_family_t)) < 0) {
        close(fd);
        return -1;
    }
    notify_pid = sl_pid();
    return notify_fd = fd;
}

/* sl_spool_notify - "N ID" to the master's control socket, if anyone listens */
void sl_spool_notify(const char *dir, const char *id)
{
    struct sockaddr_un to = {.sun_family = AF_UNIX};
    char msg[SL_SPOOL_ID_LEN + 3];
    int fd, n;

    if (!sl_spool_id_valid(id))
        return;
    n = snprintf(to.sun_path, sizeof to.sun_path, "%s/%s", dir, SL_CONTROL_SOCK);
    if (n < 0 || (size_t)n >= sizeof to.sun_path || (fd = notify_socket()) < 0)
        return;
    snprintf(msg, sizeof msg, "N %s", id);
    /* A signal (a listener's command timer, the master's SIGTERM) may cut the wait for room:
     * the notice is sent again, or the message would wait for the master's next rescan.  Each
     * try waits NOTIFY_WAIT_MS at most; signals come seconds apart, not in a stream. */
    while (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof to) < 0 && errno == EINTR)
        ;
}
