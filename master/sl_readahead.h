/*
 * sl_readahead.h - the start scan's envelope reads, ahead of the master, on a thread of its
 * own (readahead.c).  Master only.
 */
#ifndef SL_READAHEAD_H
#define SL_READAHEAD_H

#include <stddef.h>

#include "spool/sl_spool.h"

struct sl_readahead;

/* Start reading the envelopes of ids->id[from..n) of spool dir, in order, ahead of the master.
 * dir and ids must stay unchanged until sl_readahead_stop.  NULL (with a warning) when no
 * thread can start: the master then reads them all itself. */
struct sl_readahead *sl_readahead_start(const char *dir, const struct sl_spool_ids *ids,
                                        size_t from);
/* Entry i of the listing, taken in order (each i once, rising): 1 with *m read ahead (the
 * caller frees it with sl_spool_msg_free), -1 with errno and err as sl_spool_read reports a
 * failure, 0 when the caller reads it itself (the thread will not, or drops the read it has
 * in hand: the caller never waits for it).  r may be NULL: 0. */
int sl_readahead_take(struct sl_readahead *r, size_t i, struct sl_spool_msg *m, char *err,
                      size_t errlen);
/* Stop the thread (it finishes the read in hand) and free what it read that was not taken;
 * the reads it dropped, for the caller took those entries while it read them.  r may be
 * NULL: 0. */
size_t sl_readahead_stop(struct sl_readahead *r);

#endif
