/*
 * notify.c - tell a running master that a message was queued.
 *
 * One datagram "N ID" to spool_dir/control.sock, from an autobound abstract
 * address like every control client.  Best effort: with no daemon the message
 * simply waits for the master's next scan.  A busy master's socket holds only
 * net.unix.max_dgram_qlen datagrams (10 by default), so a burst of injects
 * would overflow it and its messages would wait for the next rescan (a
 * minute); the send therefore waits up to NOTIFY_WAIT_MS for room instead.
 * No answer is awaited.
 * Concurrency: any process.
 * Trust boundary: id is ours (validated); the socket's mode decides who may
 * send.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc/sl_control.h"
#include "spool_impl.h"

#define NOTIFY_WAIT_MS 500 /* a stopped or stuck master costs inject at most this */

/* sl_spool_notify - "N ID" to the master's control socket, if anyone listens */
void sl_spool_notify(const char *dir, const char *id)
{
    struct sockaddr_un to = {.sun_family = AF_UNIX}, me = {.sun_family = AF_UNIX};
    char msg[SL_SPOOL_ID_LEN + 3];
    int fd, n;

    if (!sl_spool_id_valid(id))
        return;
    n = snprintf(to.sun_path, sizeof to.sun_path, "%s/%s", dir, SL_CONTROL_SOCK);
    if (n < 0 || (size_t)n >= sizeof to.sun_path)
        return;
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return;
    snprintf(msg, sizeof msg, "N %s", id);
    /* Autobind (an address of sa_family_t alone): the master sees a sender. */
    struct timeval wait = {.tv_sec = 0, .tv_usec = NOTIFY_WAIT_MS * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
    if (bind(fd, (struct sockaddr *)&me, sizeof(sa_family_t)) == 0)
        (void)sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof to);
    close(fd);
}
