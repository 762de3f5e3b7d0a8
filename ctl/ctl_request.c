/*
 * ctl_request.c - one request to the running daemon's control socket
 * (sl_control.h) and its one-datagram answer, telling "no daemon runs" apart
 * from other failures so a command can fall back to the spool.
 *
 * Trust boundary: the answer comes from the master (a process of the same
 * installation); it is kept NUL-terminated and within the caller's buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <bsd/string.h>

#include "ctl/sl_ctl.h"
#include "ipc/sl_control.h"

#define ANSWER_WAIT_S 30 /* a batch may cost the master some fsyncs */

/* sl_ctl_request - send req to the daemon of spool, wait for its answer */
int sl_ctl_request(const char *spool, const char *req, char *ans, size_t len)
{
    struct sockaddr_un to = {.sun_family = AF_UNIX}, me = {.sun_family = AF_UNIX};
    struct timeval tv = {ANSWER_WAIT_S, 0};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ssize_t n;

    if (fd < 0)
        return SL_CTL_REQ_FAILED;
    sl_control_path(spool, to.sun_path, sizeof to.sun_path);
    /* Autobind: the kernel names our socket so the master can answer it. */
    if (bind(fd, (struct sockaddr *)&me, sizeof(sa_family_t)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
        close(fd);
        return SL_CTL_REQ_FAILED;
    }
    if (sendto(fd, req, strlen(req), 0, (struct sockaddr *)&to, sizeof to) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            return SL_CTL_REQ_NO_DAEMON;
        fprintf(stderr, "sluicectl: cannot reach the daemon on %s: %s\n", to.sun_path, strerror(e));
        return SL_CTL_REQ_FAILED;
    }
    n = recv(fd, ans, len - 1, 0);
    close(fd);
    if (n <= 0) {
        fprintf(stderr, "sluicectl: no answer from the daemon within %d s\n", ANSWER_WAIT_S);
        return SL_CTL_REQ_FAILED;
    }
    ans[n] = '\0';
    return SL_CTL_REQ_OK;
}
