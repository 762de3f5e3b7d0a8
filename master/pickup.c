/*
 * pickup.c - queued mail into the scheduler's index: the spool scan at start,
 * "N <id>" notifications, and the periodic rescan that catches a lost one.
 *
 * Picking up a message costs one read of its envelope and one state-file
 * load per part (absent for mail never tried); nothing here runs per message
 * again after that.  A part whose state says every recipient is final is not
 * queued; one whose next attempt lies ahead goes to the timer heap.  A message
 * whose parts are all final (a crash before its removal) is removed here.
 * Trust boundary: ids come from local clients and from directory entries:
 * each is checked to be a well-formed queue id before it becomes a path; the
 * spool library validates the files themselves.
 * Concurrency: master only, from the main loop.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "sl_msg.h"
#include "sl_pickup.h"
#include "sl_spool.h"

/* sl_pickup_valid_id - exactly SL_SPOOL_ID_LEN characters of [0-9A-Za-z] */
bool sl_pickup_valid_id(const char *id)
{
    static const char alnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t n = strspn(id, alnum);

    return n == SL_SPOOL_ID_LEN && id[n] == '\0';
}

/* part_state - whether part k is final and when it is due, from its state file */
static void part_state(const char *spool, const struct sl_spool_msg *m, unsigned k,
                       struct sl_queue_part_init *p)
{
    struct sl_spool_state st;
    char err[256];

    p->domain = m->domain[k];
    p->done = false;
    p->due = 0;
    if (sl_spool_state_load(spool, m->id, k, m->nrcpt, &st, err, sizeof err) < 0) {
        sl_msg_warn("message %s part %u: %s; queued as never tried", m->id, k, err);
        return; /* the worker that takes it meets the same state and settles it */
    }
    p->done = sl_spool_part_done(m, k, &st);
    p->due = st.next;
    sl_spool_state_free(&st);
}

/* index_msg - queue the parts of m that are not final; false when none is left */
static bool index_msg(struct sl_sched *s, const struct sl_spool_msg *m)
{
    struct sl_queue_part_init parts[SL_SPOOL_PARTS_MAX];
    size_t pending = 0;

    if (m->nparts == 0 || m->nparts > SL_SPOOL_PARTS_MAX) {
        sl_msg_warn("message %s has %zu parts: not queued", m->id, m->nparts);
        return false;
    }
    for (unsigned k = 0; k < m->nparts; k++) {
        part_state(s->spool, m, k, &parts[k]);
        pending += !parts[k].done;
    }
    if (pending == 0) {
        if (sl_spool_remove(s->spool, m->id, m->nparts) < 0)
            sl_msg_warn("cannot remove finished message %s: %s", m->id, strerror(errno));
        return false;
    }
    if (sl_queue_add(s->q, m->id, m->binding, m->nparts, parts, (int64_t)time(NULL)) == NULL) {
        sl_msg_warn("message %s not queued: malformed envelope", m->id);
        return false;
    }
    return true;
}

/* sl_pickup_id - index queue/ID when it is new */
bool sl_pickup_id(struct sl_sched *s, const char *id)
{
    struct sl_spool_msg m;
    char err[256];
    bool ok;

    if (!sl_pickup_valid_id(id) || sl_queue_find(s->q, id) != NULL)
        return false;
    if (sl_spool_read(s->spool, id, &m, err, sizeof err) < 0) {
        sl_msg_warn("message %s not queued: %s", id, err);
        return false;
    }
    ok = index_msg(s, &m);
    if (ok)
        sl_msg_debug("queued %s: %zu recipients, %zu parts, binding %s", id, m.nrcpt, m.nparts,
                     m.binding);
    sl_spool_msg_free(&m);
    return ok;
}

/* What a scan counts. */
struct scan {
    struct sl_sched *s;
    size_t added;
};

/* scan_one - one id of queue/ */
static void scan_one(const char *id, void *vctx)
{
    struct scan *c = vctx;

    if (sl_queue_find(c->s->q, id) == NULL && sl_pickup_id(c->s, id))
        c->added++;
}

/* sl_pickup_rescan - every queued id the index lacks */
size_t sl_pickup_rescan(struct sl_sched *s)
{
    struct scan c = {.s = s};

    if (sl_spool_scan(s->spool, scan_one, &c) < 0)
        sl_msg_warn("cannot scan the spool %s: %s", s->spool, strerror(errno));
    if (c.added > 0)
        sl_msg_info("spool scan found %zu messages not yet queued", c.added);
    return c.added;
}

/* sl_pickup_start - the spool's directories, then every message in it */
size_t sl_pickup_start(struct sl_sched *s)
{
    struct scan c = {.s = s};
    char err[256];

    if (sl_spool_init(s->spool, err, sizeof err) < 0)
        sl_msg_fatal("spool %s: %s", s->spool, err);
    if (sl_spool_scan(s->spool, scan_one, &c) < 0)
        sl_msg_fatal("cannot scan the spool %s: %s", s->spool, strerror(errno));
    return c.added;
}
