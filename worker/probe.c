/*
 * probe.c - the probe job: take a connection's counters, hold them, give them back.
 *
 * This is the reservation path a delivery uses (sl_limits_collect, then
 * sl_resv_acquire and, when cluster_redis is set, the cluster leases of
 * worker/lease.c, all or none; at close the leases and then the local counters
 * go back) without the SMTP session: an operator can try a limit live, and the
 * tests can hold slots in a real worker and kill it.  A probe must not pass a
 * limit that a delivery could not, so a cluster limit the other nodes fill
 * refuses it like a full local counter.  The hold is a ppoll on the master's socket with
 * SIGTERM unblocked, so a stop request or the master's exit ends it early.
 * Trust boundary: the request comes from a local client through the master;
 * every field is checked here.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "util/sl_clock.h"
#include "ipc/sl_control.h"
#include "config/sl_limits.h"
#include "util/sl_msg.h"
#include "worker/sl_worker.h"
#include "worker_impl.h"

/* A parsed probe request. */
struct probe {
    char binding[128];
    char domain[256];
    char mx[256];
    long hold_ms;
};

/* sl_worker_plain_word - a binding, domain or host name from the master: printable, no
 * spaces, not empty */
bool sl_worker_plain_word(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* parse - "P binding domain mx|- hold_ms" */
static bool parse(const char *req, struct probe *p)
{
    char hold[32];
    char *end;

    if (sscanf(req, "P %127s %255s %255s %31s", p->binding, p->domain, p->mx, hold) != 4)
        return false;
    p->hold_ms = strtol(hold, &end, 10);
    return *end == '\0' && p->hold_ms >= 0 && p->hold_ms <= SL_PROBE_HOLD_MAX_MS &&
           sl_worker_plain_word(p->binding) && sl_worker_plain_word(p->domain) &&
           sl_worker_plain_word(p->mx);
}

/* say - one message to the master */
static void say(int fd, const char *msg)
{
    if (send(fd, msg, strlen(msg), MSG_NOSIGNAL) < 0)
        sl_msg_debug("master gone: %s", strerror(errno));
}

/* describe - "kind key in_use/limit" for each counter of r */
static void describe(const struct sl_shm *shm, const struct sl_resv *r, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    for (uint32_t i = 0; i < r->n && off < len; i++) {
        struct sl_counter_view v;
        char lim[16];
        if (sl_shm_view(shm, r->slot[i], &v) < 0)
            continue;
        if (v.limit < 0)
            snprintf(lim, sizeof lim, "none");
        else
            snprintf(lim, sizeof lim, "%d", v.limit);
        off += (size_t)snprintf(buf + off, len - off, "%s%s %s%s%s %u/%s", i ? "; " : "",
                                sl_scope_kind_name(v.kind), v.name[0] ? v.name : "*",
                                v.name2[0] ? " " : "", v.name2, v.in_use, lim);
    }
}

/* take - acquire r as a delivery would: within the limits and a shaping action's cap (which
 * sl_limits_collect put on r), then a lease of each cluster counter across the nodes */
static enum sl_resv_result take(struct sl_wstate *w, struct sl_resv *r, struct sl_refusal *why)
{
    enum sl_resv_result res;

    memset(why, 0, sizeof *why);
    w->lease_note[0] = '\0';
    res = sl_resv_acquire(w->ctx->shm, w->owner, r, why);
    if (res == SL_RESV_OK && !sl_worker_lease_acquire(w, r, why)) {
        sl_resv_release(w->ctx->shm, w->owner, r); /* the cluster refused: no local unit stays */
        return SL_RESV_REFUSED;
    }
    return res;
}

/* hold - keep the counters for ms, or until told to stop */
static void hold(int fd, long ms, const sigset_t *wait_mask, volatile sig_atomic_t *stop)
{
    struct timespec end = sl_clock_after_ms(ms);
    long left;

    while (!*stop && (left = sl_clock_ms_until(end)) > 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        struct timespec span = sl_clock_span(left);
        if (ppoll(&p, 1, &span, wait_mask) > 0)
            return; /* the master spoke (QUIT) or went away: give the slots back now */
    }
}

/* sl_worker_probe - run one probe job and answer it */
void sl_worker_probe(struct sl_wstate *w, const char *job)
{
    const struct sl_worker_ctx *ctx = w->ctx;
    int fd = w->fd;
    char id[32], reply[SL_CONTROL_MAX], what[SL_CONTROL_MAX - 64], err[256];
    const char *req = strchr(job, ' ');
    enum sl_resv_result res;
    struct sl_refusal why;
    struct sl_resv r;
    struct probe p;

    snprintf(id, sizeof id, "%.*s", req ? (int)(req - job) : 0, job);
    sl_resv_init(&r, ctx->gen);
    if (req == NULL || !parse(req + 1, &p)) {
        snprintf(reply, sizeof reply, "R%s ERROR malformed probe request", id + 1);
    } else if (!sl_limits_collect(ctx->cfg, ctx->shm, w->owner, p.binding, p.domain,
                                  strcmp(p.mx, "-") ? p.mx : NULL, &r, err, sizeof err)) {
        snprintf(reply, sizeof reply, "R%s ERROR %s", id + 1, err);
    } else if ((res = take(w, &r, &why)) == SL_RESV_NORECORD) {
        snprintf(reply, sizeof reply, "R%s ERROR no free hold record in this worker", id + 1);
    } else if (res == SL_RESV_REFUSED) {
        struct sl_counter_view v = {0};
        sl_shm_view(ctx->shm, why.slot, &v);
        snprintf(reply, sizeof reply, "R%s REFUSED %s %s%s%s: %u in use, limit %d%s", id + 1,
                 sl_scope_kind_name(why.kind), v.name[0] ? v.name : "*", v.name2[0] ? " " : "",
                 v.name2, why.in_use, why.limit, why.kind == SL_SCOPE_CLUSTER ? w->lease_note : "");
        sl_worker_action_note(&why, reply, sizeof reply);
    } else {
        describe(ctx->shm, &r, what, sizeof what);
        snprintf(reply, sizeof reply, "R%s OK held for %ld ms: %s", id + 1, p.hold_ms, what);
        say(fd, reply);
        hold(fd, p.hold_ms, &w->wait_mask, w->stop);
        sl_worker_release(w, &r); /* the leases first, then the local counters */
        say(fd, "I");
        return;
    }
    say(fd, reply);
    say(fd, "I");
}
