/*
 * kept_out.c - the finished messages whose file could not be removed.
 *
 * A worker that delivered the last recipient of a message removes its file (the master, for
 * a message of several parts).  When that fails, the file stays in queue/ and a rescan would
 * take it for mail to deliver: sent again every minute while the file system stays read-only.
 * Such ids are kept here, sorted (a binary search per id a rescan meets), and every index path
 * of pickup.c asks first.  The list lives as long as the scheduler: a master that starts again
 * reads the final state its workers saved (when the disk took it) and removes the message.
 * Concurrency: master only, from the main loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/sl_msg.h"
#include "master/sl_kept_out.h"

/* find - where id is, or would be inserted, in the sorted list; *found whether it is there */
static size_t find(const struct sl_kept_out *k, const char *id, bool *found)
{
    size_t lo = 0, hi = k->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(k->v[mid].id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* sl_kept_out_add - id into its place; the array grows by doubling */
void sl_kept_out_add(struct sl_kept_out *k, const char *id, size_t nparts)
{
    bool found;
    size_t at;

    if (!sl_spool_id_valid(id))
        return;
    at = find(k, id, &found);
    if (found)
        return;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 16;
        k->v = sl_realloc(k->v, k->cap * sizeof *k->v);
    }
    memmove(&k->v[at + 1], &k->v[at], (k->n - at) * sizeof *k->v);
    memcpy(k->v[at].id, id, SL_SPOOL_ID_LEN + 1);
    k->v[at].nparts = (uint16_t)(nparts < SL_SPOOL_PARTS_MAX ? nparts : SL_SPOOL_PARTS_MAX);
    k->n++;
}

/* sl_kept_out_has - a binary search */
bool sl_kept_out_has(const struct sl_kept_out *k, const char *id)
{
    bool found = false;

    if (k->n > 0)
        find(k, id, &found);
    return found;
}

/* sl_kept_out_retry - one unlink (and the state files') per id; kept in order */
void sl_kept_out_retry(struct sl_kept_out *k, const char *spool)
{
    size_t left = 0;

    for (size_t i = 0; i < k->n; i++) {
        if (sl_spool_remove(spool, k->v[i].id, k->v[i].nparts) == 0) {
            sl_msg_info("finished message %s removed at last", k->v[i].id);
            continue;
        }
        if (left == 0) /* one line a round, not one per message */
            sl_msg_warn("cannot remove finished message %s: %s (of %zu kept out of the queue)",
                        k->v[i].id, strerror(errno), k->n);
        k->v[left++] = k->v[i];
    }
    k->n = left;
    if (left == 0)
        sl_kept_out_free(k);
}

/* sl_kept_out_free - the array */
void sl_kept_out_free(struct sl_kept_out *k)
{
    free(k->v);
    *k = (struct sl_kept_out){0};
}
