/*
 * control.c - the master's control socket: requests in, answers out.
 *
 * A request (one datagram, sl_control.h) is handed whole to an idle worker
 * with a job id; the worker's answer comes back through the master, which
 * sends it to the client's address recorded in the worker's slot.  The master
 * only routes: it never parses a request beyond its first byte, so a hostile
 * request cannot cost the master more than one datagram's copy.  The
 * exceptions, each bounded (the lockout table's scan at most), are "N <id>" (a message was queued),
 * which goes to the pickup with its id checked there, "X ..." (suspend, resume, cancel a shaping
 * action), which changes the master's own list (master/shaping.c), "O ..." (the queue commands) and
 * "A ..." (the listeners' AUTH lockouts, master/lockouts.c). Concurrency: master only, from the
 * main loop.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "master/sl_control_socket.h"
#include "master/sl_lockouts.h"
#include "master/sl_pickup.h"
#include "master/sl_queue_ops.h"
#include "master/sl_schedule.h"
#include "master/sl_shaping.h"
#include "master/sl_supervise.h"
#include "util/sl_msg.h"
#include "worker/sl_worker.h"

/* The id of the last job handed to a worker; answers are matched by worker, the id is for logs. */
static uint64_t last_job_id;

/* sl_control_open - bind the control socket, replacing a stale one */
int sl_control_open(const char *spool_dir)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (mkdir(spool_dir, 0750) < 0 && errno != EEXIST) {
        sl_msg_warn("cannot create %s: %s", spool_dir, strerror(errno));
        return -1;
    }
    sl_control_path(spool_dir, sa.sun_path, sizeof sa.sun_path);
    if (strlen(sa.sun_path) + 1 >= sizeof sa.sun_path) {
        sl_msg_warn("control socket path too long: %s", sa.sun_path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    unlink(sa.sun_path); /* only ever ours: the segment's master check ran first */
    /* Made 0660 by the umask at its bind, not by a chmod of its path afterwards: root would
     * change whatever the daemon's user put at that path in between (a symbolic link). */
    mode_t was = umask(0117);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(was);
    if (rc < 0) {
        sl_msg_warn("cannot bind %s: %s", sa.sun_path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* sl_control_close - close and remove the socket */
void sl_control_close(int fd, const char *spool_dir)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];

    if (fd < 0)
        return;
    close(fd);
    sl_control_path(spool_dir, path, sizeof path);
    unlink(path);
}

/* answer - one datagram back to the client; it may be gone, which is fine */
static void answer(int fd, const struct sockaddr_un *to, socklen_t tolen, const char *text)
{
    if (sendto(fd, text, strlen(text), MSG_DONTWAIT, (const struct sockaddr *)to, tolen) < 0)
        sl_msg_debug("control answer not delivered: %s", strerror(errno));
}

/* new_message - "N <id>": just queued by sluicectl inject or a listener (an "N" names only an
 * id just written: sl_pickup_new looks for state files of an older one); no answer is
 * awaited */
static void new_message(struct sl_sched *sched, char *req)
{
    char *id = req + 1 + strspn(req + 1, " ");

    id[strcspn(id, " \r\n")] = '\0';
    if (!sl_spool_id_valid(id)) {
        sl_msg_debug("control: malformed notification ignored");
        return;
    }
    sl_pickup_new(sched, id);
}

/* accept_one - route one request to an idle worker, or a notification to the pickup;
 * false when nothing was waiting */
static bool accept_one(int fd, struct sl_supervisor *sup, uint32_t gen, struct sl_sched *sched,
                       struct sl_smtpd_lockout *lockout)
{
    char req[SL_CONTROL_MAX], job[SL_CONTROL_MAX + 32];
    struct sockaddr_un from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(fd, req, sizeof req - 1, MSG_DONTWAIT | MSG_TRUNC,
                         (struct sockaddr *)&from, &fromlen);
    int w;

    if (n <= 0)
        return n == 0;
    if ((size_t)n >= sizeof req) { /* cut, its last token would read short: part 12 as 1 */
        if (fromlen > sizeof(sa_family_t))
            answer(fd, &from, fromlen, "ERROR request too long");
        return true;
    }
    req[n] = '\0';
    if (req[0] == 'N') {
        new_message(sched, req);
        return true;
    }
    if (fromlen <= sizeof(sa_family_t))
        return true;     /* an unnamed sender cannot be answered */
    if (req[0] == 'X') { /* suspend, resume, cancel: the master's own (master/shaping.c) */
        char ans[SL_CONTROL_MAX];
        if (sl_shaping_control(req, ans, sizeof ans))
            sl_sched_limits_changed(sched);
        answer(fd, &from, fromlen, ans);
        return true;
    }
    if (req[0] == 'A') { /* lockouts, unlock: the listeners' failed-AUTH table */
        char ans[SL_CONTROL_MAX];
        sl_lockouts_control(lockout, req, ans, sizeof ans);
        answer(fd, &from, fromlen, ans);
        return true;
    }
    if (req[0] == 'O') { /* the operator's queue commands: the master's own index */
        char out[SL_CONTROL_MAX];
        sl_queue_ops_request(sched, req, out, sizeof out);
        answer(fd, &from, fromlen, out);
        return true;
    }
    if (req[0] != 'P') {
        answer(fd, &from, fromlen, "ERROR unknown request");
        return true;
    }
    w = sl_supervise_idle(sup, gen);
    if (w < 0) {
        answer(fd, &from, fromlen, "BUSY no idle worker: try again");
        return true;
    }
    snprintf(job, sizeof job, "J%llu %s", (unsigned long long)++last_job_id, req);
    if (send(sup->w[w].fd, job, strlen(job), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        answer(fd, &from, fromlen, "BUSY the worker did not take the job: try again");
        return true;
    }
    sup->w[w].busy = true;
    sup->w[w].client = from;
    sup->w[w].clientlen = fromlen;
    return true;
}

/* sl_control_accept - every waiting datagram, up to a batch, so a burst of injects costs one
 * wake-up while workers' messages still get their turn */
void sl_control_accept(int fd, struct sl_supervisor *sup, uint32_t gen, struct sl_sched *sched,
                       struct sl_smtpd_lockout *lockout)
{
    for (int i = 0; i < 256 && accept_one(fd, sup, gen, sched, lockout); i++)
        continue;
}

/* sl_control_from_worker - an answer to forward ("R<id> text"); the "I" that follows
 * it is the scheduler's */
void sl_control_from_worker(int fd, struct sl_supervisor *sup, unsigned worker, const char *msg,
                            size_t len)
{
    struct sl_worker_slot *w = &sup->w[worker];
    const char *text;

    if (len == 0 || msg[0] != 'R' || (text = strchr(msg, ' ')) == NULL) {
        sl_msg_warn("worker pid %ld sent a malformed message", (long)w->pid);
        return;
    }
    if (w->clientlen > 0 && fd >= 0)
        answer(fd, &w->client, w->clientlen, text + 1);
    w->clientlen = 0;
}
