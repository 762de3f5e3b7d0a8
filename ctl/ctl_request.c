/*
 * ctl_request.c - one request to the running daemon's control socket
 * (sl_control.h) and its one-datagram answer, telling "no daemon runs" apart
 * from other failures so a command can fall back to the spool, and when it
 * may: only under the spool's lock (sl_spool_lock.h), which a daemon holds from
 * before its start scan; a command that finds it held waits a few seconds for
 * that daemon's socket rather than change the spool behind it.
 *
 * Trust boundary: the answer comes from the master (a process of the same
 * installation): the socket is connected to the master's, so the kernel takes no datagram
 * from anyone else; it is kept NUL-terminated and within the caller's buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "ctl/sl_ctl.h"
#include "ipc/sl_control.h"
#include "spool/sl_spool_lock.h"

#define ANSWER_WAIT_S 30    /* a batch may cost the master some fsyncs */
#define START_WAIT_MS 10000 /* a daemon holding the spool binds its socket within this */
#define START_STEP_MS 100

/* sl_ctl_ask - send req to the daemon of spool and wait up to wait_s for its answer.  The
 * send is bounded too: a master stopped (or wedged) with its socket's queue full would hold a
 * blocking send for ever. */
int sl_ctl_ask(const char *spool, const char *req, char *ans, size_t len, int wait_s)
{
    struct sockaddr_un to = {.sun_family = AF_UNIX}, me = {.sun_family = AF_UNIX};
    struct timeval tv = {wait_s, 0};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ssize_t n;

    sl_control_path(spool, to.sun_path, sizeof to.sun_path);
    if (strlen(to.sun_path) != strlen(spool) + 1 + strlen(SL_CONTROL_SOCK)) {
        fprintf(stderr, "sluicectl: the control socket's path is too long: %s/%s\n", spool,
                SL_CONTROL_SOCK);
        if (fd >= 0)
            close(fd);
        return SL_CTL_REQ_FAILED;
    }
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
        fprintf(stderr, "sluicectl: cannot make a socket to ask the daemon: %s\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        return SL_CTL_REQ_FAILED;
    }
    /* Connected to the daemon's socket, ours takes datagrams from it alone: any local process
     * can send to an autobound name (listed in /proc/net/unix), and an answer it made up
     * ("OK") would be reported as the daemon's.  Connected first, named after (autobind, so
     * that the master can answer): nothing reaches the socket before it is connected. */
    if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0 ||
        bind(fd, (struct sockaddr *)&me, sizeof(sa_family_t)) < 0 ||
        send(fd, req, strlen(req), 0) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            return SL_CTL_REQ_NO_DAEMON;
        if (e == EAGAIN || e == EWOULDBLOCK)
            fprintf(stderr,
                    "sluicectl: the daemon on %s took no request within %d s (it reads none: "
                    "stopped or stuck?)\n",
                    to.sun_path, wait_s);
        else
            fprintf(stderr, "sluicectl: cannot reach the daemon on %s: %s\n", to.sun_path,
                    strerror(e));
        return SL_CTL_REQ_FAILED;
    }
    n = recv(fd, ans, len - 1, 0);
    close(fd);
    if (n <= 0) {
        fprintf(stderr, "sluicectl: no answer from the daemon within %d s\n", wait_s);
        return SL_CTL_REQ_FAILED;
    }
    ans[n] = '\0';
    return SL_CTL_REQ_OK;
}

/* sl_ctl_request - send req to the daemon of spool, wait for its answer */
int sl_ctl_request(const char *spool, const char *req, char *ans, size_t len)
{
    return sl_ctl_ask(spool, req, ans, len, ANSWER_WAIT_S);
}

/* bound - does a process listen on spool's control socket (a request would go in) */
static bool bound(const char *spool)
{
    struct sockaddr_un to = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    bool yes;

    if (fd < 0)
        return false;
    sl_control_path(spool, to.sun_path, sizeof to.sun_path);
    yes = connect(fd, (struct sockaddr *)&to, sizeof to) == 0;
    close(fd);
    return yes;
}

/* try_lock - the spool's lock for a command acting without the daemon: LOCKED with *lock, or
 * with -1 when there is no spool yet (nothing in it to change, no daemon on it); BUSY while a
 * daemon holds it; FAILED (said) on any other error, which tells nothing of a daemon: the spool
 * is not changed behind one that may run */
static int try_lock(const char *spool, const char *verb, int *lock)
{
    if ((*lock = sl_spool_lock_offline(spool)) >= 0 || (*lock == -1 && errno == ENOENT))
        return SL_CTL_OFFLINE_LOCKED;
    if (*lock == SL_SPOOL_LOCK_BUSY)
        return SL_CTL_OFFLINE_BUSY;
    fprintf(stderr, "sluicectl: %s: cannot lock %s/%s: %s: nothing done\n", verb, spool,
            SL_SPOOL_LOCK,
            errno == EBADMSG ? "not a regular file of one link (remove it)" : strerror(errno));
    return SL_CTL_OFFLINE_FAILED;
}

/* sl_ctl_offline - the spool's lock, or the starting daemon's socket, whichever comes first */
int sl_ctl_offline(const char *spool, const char *verb, int *lock)
{
    const struct timespec step = {.tv_nsec = START_STEP_MS * 1000000L};
    int r;

    if ((r = try_lock(spool, verb, lock)) != SL_CTL_OFFLINE_BUSY)
        return r;
    fprintf(stderr, "sluicectl: %s: the daemon is starting: waiting for it\n", verb);
    for (int waited = 0; waited < START_WAIT_MS; waited += START_STEP_MS) {
        nanosleep(&step, NULL);
        if (bound(spool))
            return SL_CTL_OFFLINE_RETRY;
        if ((r = try_lock(spool, verb, lock)) != SL_CTL_OFFLINE_BUSY)
            return r; /* it died before it started, or the lock fails */
    }
    fprintf(stderr,
            "sluicectl: %s: a daemon holds %s but did not answer within %d s: nothing done, "
            "try again\n",
            verb, spool, START_WAIT_MS / 1000);
    return SL_CTL_OFFLINE_BUSY;
}
