/*
 * pickup.c - queued mail into the scheduler's index: the spool scan at start,
 * "N <id>" notifications, and the periodic rescan that catches a lost one.
 *
 * Picking up a message costs one read of its envelope and one state-file
 * load per part (absent for mail never tried); nothing here runs per message
 * again after that.  The start scan lists queue/ and state/ once, then indexes
 * SL_PICKUP_CHUNK messages per main-loop pass, so workers deliver the first
 * messages while the rest are read (a destination with 64 messages indexed at
 * once, the others when the scan ends or its warm-up time is over); a message
 * with no state file in that listing skips the state lookup (no one writes a
 * part's state before the part was handed out, and it is handed out only once
 * indexed).  Past the first chunk, a thread reads the envelopes ahead of the
 * master (readahead.c), so a second CPU shares the reads of a large backlog.
 * A part whose state says every recipient is final is not queued;
 * one whose next attempt lies ahead goes to the timer heap.  A message whose
 * parts are all final (a crash before its removal) is removed here.  A finished
 * message whose file could not be removed is never indexed again (kept_out.c).
 * Trust boundary: ids come from local clients and from directory entries:
 * each is checked to be a well-formed queue id before it becomes a path; the
 * spool library validates the files themselves.
 * Concurrency: master only, from the main loop.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "util/sl_clock.h"
#include "util/sl_msg.h"
#include "master/sl_pickup.h"
#include "master/sl_readahead.h"
#include "spool/sl_spool.h"

/* part_state - whether part k is final and when it is due, from its state file
 * (none when stateless: known to have none); false when that file could not be read now (an
 * I/O error): indexed as never tried, a part held by the operator would go, and a suspect of
 * crashes with others, so the message waits for a rescan */
static bool part_state(const char *spool, const struct sl_spool_msg *m, unsigned k, bool stateless,
                       struct sl_queue_part_init *p)
{
    struct sl_spool_state st;
    char err[256];

    p->domain = m->domain[k];
    p->done = false;
    p->due = 0;
    p->held = false;
    p->crashes = 0;
    p->fresh = stateless;
    if (stateless)
        return true; /* the state before any attempt: pending, due now */
    if (sl_spool_state_load(spool, m->id, k, m->nrcpt, &st, err, sizeof err) < 0) {
        if (errno != EBADMSG) {
            sl_msg_warn("message %s part %u: %s; left for the next rescan", m->id, k, err);
            return false;
        }
        sl_spool_quarantine_state(spool, m->id, k, err); /* damaged: set aside, the part
                                                            starts again as never tried */
        return true;
    }
    p->done = sl_spool_part_done(m, k, &st);
    p->due = st.next;
    p->held = st.held;
    p->crashes = st.crashes;
    p->fresh = !st.on_disk;
    sl_spool_state_free(&st);
    return true;
}

/* index_msg - queue the parts of m that are not final; false when none is left */
static bool index_msg(struct sl_sched *s, const struct sl_spool_msg *m, bool stateless)
{
    struct sl_queue_part_init parts[SL_SPOOL_PARTS_MAX];
    size_t pending = 0;

    if (m->nparts == 0 || m->nparts > SL_SPOOL_PARTS_MAX) {
        sl_spool_quarantine_msg(s->spool, m->id, "no valid number of parts");
        return false;
    }
    for (unsigned k = 0; k < m->nparts; k++) {
        if (!part_state(s->spool, m, k, stateless, &parts[k]))
            return false;
        pending += !parts[k].done;
    }
    if (pending == 0) {
        sl_pickup_finished(s, m->id, m->nparts);
        return false;
    }
    if (sl_queue_add(s->q, m->id, m->binding, m->nparts, parts, (int64_t)time(NULL)) == NULL) {
        sl_spool_quarantine_msg(s->spool, m->id, "malformed envelope");
        return false;
    }
    return true;
}

/* pickup_read - index queue/ID from its envelope m, or from the failure of its read (rc -1,
 * errno, err); stateless as for part_state.  m is freed here. */
static bool pickup_read(struct sl_sched *s, const char *id, bool stateless, int rc,
                        struct sl_spool_msg *m, const char *err)
{
    bool ok;

    if (!sl_spool_id_valid(id) || sl_queue_find(s->q, id) != NULL ||
        sl_kept_out_has(&s->kept_out, id)) {
        if (rc == 0) /* read ahead, then indexed out of turn */
            sl_spool_msg_free(m);
        return false;
    }
    if (rc < 0) {
        if (errno == EBADMSG)
            sl_spool_quarantine_msg(s->spool, id, err);
        else if (errno != ENOENT) /* delivered meanwhile: nothing to say */
            sl_msg_warn("message %s not queued: %s", id, err);
        return false;
    }
    ok = index_msg(s, m, stateless);
    if (ok)
        sl_msg_debug("queued %s: %zu recipients, %zu parts, binding %s", id, m->nrcpt, m->nparts,
                     m->binding);
    sl_spool_msg_free(m);
    return ok;
}

/* pickup - index queue/ID when it is new; stateless as for part_state */
static bool pickup(struct sl_sched *s, const char *id, bool stateless)
{
    struct sl_spool_msg m;
    char err[256];

    if (!sl_spool_id_valid(id) || sl_queue_find(s->q, id) != NULL ||
        sl_kept_out_has(&s->kept_out, id))
        return false;
    return pickup_read(s, id, stateless, sl_spool_read(s->spool, id, &m, err, sizeof err), &m, err);
}

/* sl_pickup_id - index queue/ID when it is new */
bool sl_pickup_id(struct sl_sched *s, const char *id)
{
    /* Indexed out of turn while the start scan runs: once it has been handed out it may
     * have a state file the listing lacks, so the listing's word is no longer trusted; nor
     * is an envelope read ahead, for the message may be delivered or deleted before the scan
     * reaches it (and, indexed anew from what was read, it would come back as never tried):
     * the rest of the scan reads each file when it gets there. */
    if (sl_pickup_pending(s) && sl_spool_ids_has(&s->scan_ids, id)) {
        sl_spool_ids_free(&s->scan_state);
        s->scan_trust = false;
        sl_pickup_stop_readahead(s);
    }
    return pickup(s, id, false);
}

/* announced_new - may an id announced as new be taken for one: made since this master's start
 * listing, and not in it (an older one, replayed or retried, may have state files) */
static bool announced_new(const struct sl_sched *s, const char *id)
{
    if (sl_pickup_pending(s) && sl_spool_ids_has(&s->scan_ids, id))
        return false;
    return s->started_us != 0 && sl_spool_id_time_us(id) >= s->started_us;
}

/* sl_pickup_new - index queue/ID, just written and announced ("N ID": by a listener, sluicectl
 * inject, a worker's bounce, or found at a writer's reaping): a message of one part that no
 * worker has had yet has no state file, and none is looked for (a failed lookup in state/
 * costs as much as the envelope's read).  One of several parts is looked up all the same: its
 * parts may all be final and its removal have failed, and an "N" for it would deliver them
 * again; so is an id older than this master, or one of the start listing. */
bool sl_pickup_new(struct sl_sched *s, const char *id)
{
    struct sl_spool_msg m;
    char err[256];
    int rc;

    if (!sl_spool_id_valid(id) || sl_queue_find(s->q, id) != NULL)
        return false;
    if (!announced_new(s, id))
        return sl_pickup_id(s, id);
    rc = sl_spool_read(s->spool, id, &m, err, sizeof err);
    return pickup_read(s, id, rc == 0 && m.nparts == 1, rc, &m, err);
}

/* scan_one - one id of queue/ met by a rescan */
static void scan_one(const char *id, void *ctx)
{
    struct sl_sched *s = ctx;

    if (sl_queue_find(s->q, id) == NULL && sl_pickup_id(s, id))
        s->rescan_added++;
}

/* sl_pickup_keep_out - one more message no index path takes again */
void sl_pickup_keep_out(struct sl_sched *s, const char *id, size_t nparts)
{
    sl_kept_out_add(&s->kept_out, id, nparts);
}

/* sl_pickup_finished - remove it, or keep it out */
void sl_pickup_finished(struct sl_sched *s, const char *id, size_t nparts)
{
    if (sl_spool_remove(s->spool, id, nparts) == 0)
        return;
    sl_msg_warn("cannot remove finished message %s: %s; kept out of the queue", id,
                strerror(errno));
    sl_pickup_keep_out(s, id, nparts);
}

/* sl_pickup_rescan_step - the next max entries of the rescan, which starts unless one runs */
bool sl_pickup_rescan_step(struct sl_sched *s, size_t max)
{
    if (s->rescan == NULL) {
        /* The start scan reaches every id of its listing in turn: taken out of turn here,
         * each would be read at once, and the read-ahead stopped.  An id it lacks came
         * with an announcement, or waits for the next rescan. */
        if (sl_pickup_pending(s))
            return false;
        if ((s->rescan = sl_spool_walk_open(s->spool)) == NULL) {
            sl_msg_warn("cannot scan the spool %s: %s", s->spool, strerror(errno));
            return false;
        }
        s->rescan_added = 0;
    }
    if (sl_spool_walk_step(s->rescan, max, scan_one, s))
        return true;
    sl_spool_walk_close(s->rescan);
    s->rescan = NULL;
    sl_kept_out_retry(&s->kept_out, s->spool);
    if (s->rescan_added > 0)
        sl_msg_info("spool scan found %zu messages not yet queued", s->rescan_added);
    return false;
}

/* sl_pickup_start - the spool's directories, its listing, and a first chunk */
size_t sl_pickup_start(struct sl_sched *s)
{
    char err[256];

    if (sl_spool_init(s->spool, err, sizeof err) < 0)
        sl_msg_fatal("spool %s: %s", s->spool, err);
    s->started_us = sl_clock_wall_us();
    int listed = sl_spool_list(s->spool, &s->scan_ids, &s->scan_state, true);
    if (listed < 0)
        sl_msg_fatal("cannot scan the spool %s: %s", s->spool, strerror(errno));
    /* Without the whole list of state files, a message that has one would be taken for never
     * tried, and its delivered recipients sent the message again: each is looked up instead. */
    if (listed > 0)
        sl_msg_warn("cannot list %s/state: %s; reading each message's state instead", s->spool,
                    strerror(errno));
    s->scan_next = 0;
    s->scan_trust = listed == 0;
    s->scan_ahead = NULL;
    s->scan_ahead_tried = false;
    s->scan_warm_until = sl_clock_us() + SL_PICKUP_WARMUP_MS * 1000u;
    size_t found = s->scan_ids.n;
    sl_pickup_step(s, SL_PICKUP_CHUNK);
    return found;
}

/* start_readahead - the read-ahead thread for the rest of the start scan, when there is
 * enough of it; only from the main loop: the first step runs before the workers are forked,
 * which a thread must not see */
static void start_readahead(struct sl_sched *s)
{
    if (s->scan_ahead_tried || s->scan_next == 0 ||
        s->scan_ids.n - s->scan_next < SL_PICKUP_READAHEAD_MIN)
        return;
    s->scan_ahead_tried = true;
    s->scan_ahead = sl_readahead_start(s->spool, &s->scan_ids, s->scan_next);
}

/* step_one - the next message of the start scan: its envelope read ahead, or read now */
static void step_one(struct sl_sched *s)
{
    size_t i = s->scan_next++;
    const char *id = s->scan_ids.id[i];
    bool stateless = s->scan_trust && !sl_spool_ids_has(&s->scan_state, id);
    struct sl_spool_msg m;
    char err[256];
    int got = sl_readahead_take(s->scan_ahead, i, &m, err, sizeof err);

    if (got == 0)
        pickup(s, id, stateless);
    else
        pickup_read(s, id, stateless, got > 0 ? 0 : -1, &m, err);
}

/* sl_pickup_step - the next max messages of the start scan */
bool sl_pickup_step(struct sl_sched *s, size_t max)
{
    start_readahead(s);
    for (size_t i = 0; i < max && s->scan_next < s->scan_ids.n; i++)
        step_one(s);
    if (s->scan_next < s->scan_ids.n)
        return true;
    sl_pickup_forget(s);
    return false;
}

/* sl_pickup_pending - ids of the start scan not yet indexed */
bool sl_pickup_pending(const struct sl_sched *s)
{
    return s->scan_next < s->scan_ids.n;
}

/* sl_pickup_warming - the start scan indexes, and its warm-up time is not over */
bool sl_pickup_warming(const struct sl_sched *s)
{
    return sl_pickup_pending(s) && sl_clock_us() < s->scan_warm_until;
}

/* sl_pickup_stop_readahead - no more reading ahead (what is left is read as it comes) */
void sl_pickup_stop_readahead(struct sl_sched *s)
{
    size_t dropped = sl_readahead_stop(s->scan_ahead);

    if (dropped > 0)
        sl_msg_debug("start scan: %zu envelopes read twice (the master did not wait for the "
                     "read-ahead thread)",
                     dropped);
    s->scan_ahead = NULL;
}

/* sl_pickup_forget - the start scan's lists */
void sl_pickup_forget(struct sl_sched *s)
{
    sl_pickup_stop_readahead(s); /* before the listing it reads goes */
    sl_spool_ids_free(&s->scan_ids);
    sl_spool_ids_free(&s->scan_state);
    s->scan_next = 0;
}
