/*
 * unsaved.c - part states a full disk kept from being saved, written again when space returns.
 *
 * A deferral that cannot save its state keeps going (the master carries the attempt count
 * meanwhile), but a restart would forget the count, and a recipient delivered in that
 * attempt would be delivered again.  So the worker keeps a copy of each state it could not
 * save and tries again whenever it waits for a job (sl_unsaved_retry, every second or so).
 * Another worker may have attempted the same part since: the copy is merged into what the
 * spool holds (a recipient final in either stays final, the higher attempt count wins), so
 * a late write never takes back what a newer one recorded.
 * Concurrency: process-local list, one worker; the spool's own writes are atomic (rename).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "util/sl_msg.h"
#include "worker_impl.h"

#define UNSAVED_MAX 256 /* copies kept; beyond it the oldest is left to the master's count */

struct unsaved {
    char id[SL_SPOOL_ID_LEN + 1];
    unsigned k;
    struct sl_spool_state st;
};

static struct unsaved kept[UNSAVED_MAX]; /* this worker's unsaved states, oldest first */
static size_t nkept;

/* drop - forget kept[i] */
static void drop(size_t i)
{
    sl_spool_state_free(&kept[i].st);
    memmove(&kept[i], &kept[i + 1], (nkept - i - 1) * sizeof kept[0]);
    nkept--;
}

/* sl_unsaved_keep - remember p's state, which could not be saved */
void sl_unsaved_keep(const struct sl_part *p)
{
    struct unsaved *u;

    for (size_t i = 0; i < nkept; i++)
        if (kept[i].k == p->k && strcmp(kept[i].id, p->id) == 0)
            drop(i);
    if (nkept == UNSAVED_MAX) {
        sl_msg_warn("queue %s part %u: state kept unsaved no longer (over %d)", kept[0].id,
                    kept[0].k, UNSAVED_MAX);
        drop(0);
    }
    u = &kept[nkept++];
    strlcpy(u->id, p->id, sizeof u->id);
    u->k = p->k;
    u->st = p->st;
    u->st.status = sl_malloc(p->st.nrcpt);
    memcpy(u->st.status, p->st.status, p->st.nrcpt);
}

/* sl_unsaved_pending - some state still waits to be saved */
bool sl_unsaved_pending(void)
{
    return nkept > 0;
}

/* merge - fold the spool's newer news about the part (on) into the kept copy u */
static void merge(struct unsaved *u, const struct sl_spool_state *on)
{
    for (size_t i = 0; i < u->st.nrcpt && i < on->nrcpt; i++)
        if (on->status[i] != SL_RCPT_PENDING)
            u->st.status[i] = on->status[i];
    if (on->attempts > u->st.attempts) {
        u->st.attempts = on->attempts;
        u->st.next = on->next;
        strlcpy(u->st.reply, on->reply, sizeof u->st.reply);
    }
    if (on->crashes > u->st.crashes) /* a worker recorded a crash since */
        u->st.crashes = on->crashes;
    u->st.held = on->held; /* the operator's hold or release since stands */
}

/* save_one - write u merged with the spool; true when it needs keeping no longer */
static bool save_one(const char *spool, struct unsaved *u)
{
    struct sl_spool_msg m;
    struct sl_spool_state on;
    char err[256];

    if (sl_spool_read(spool, u->id, &m, err, sizeof err) < 0)
        return errno != ENOSPC && errno != EIO && errno != EMFILE && errno != ENFILE;
    sl_spool_msg_free(&m); /* only its presence mattered: a finished message needs no state */
    if (sl_spool_state_load(spool, u->id, u->k, u->st.nrcpt, &on, err, sizeof err) == 0) {
        merge(u, &on);
        sl_spool_state_free(&on);
    } else if (errno != EBADMSG) {
        return false; /* unread (EMFILE, EIO...): saved blind, it could take back a newer one */
    }
    if (sl_spool_state_save(spool, u->id, u->k, &u->st, err, sizeof err) < 0)
        return false;
    sl_msg_info("queue %s part %u: state saved now that the spool has room", u->id, u->k);
    return true;
}

/* sl_unsaved_retry - try to save every kept state again */
void sl_unsaved_retry(struct sl_wstate *w)
{
    for (size_t i = 0; i < nkept;) {
        if (save_one(w->ctx->spool, &kept[i]))
            drop(i);
        else
            i++;
    }
}
