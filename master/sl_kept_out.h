/*
 * sl_kept_out.h - finished messages whose file could not be removed (a file system gone
 * read-only, an immutable file): never indexed again while this master runs, for each
 * indexing would send the message again; their removal is tried again now and then.
 * Master only, from the main loop.
 */
#ifndef SL_KEPT_OUT_H
#define SL_KEPT_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/sl_spool.h"

struct sl_kept {
    char id[SL_SPOOL_ID_LEN + 1];
    uint16_t nparts; /* its state files to remove with it */
};

struct sl_kept_out {
    struct sl_kept *v; /* sorted by id */
    size_t n, cap;
};

/* Keep message id (of nparts parts) out; one already kept stays as it is. */
void sl_kept_out_add(struct sl_kept_out *k, const char *id, size_t nparts);
/* Is id kept out? */
bool sl_kept_out_has(const struct sl_kept_out *k, const char *id);
/* Try each removal again: those done (or found done) are forgotten; one warning for those
 * that still fail. */
void sl_kept_out_retry(struct sl_kept_out *k, const char *spool);
void sl_kept_out_free(struct sl_kept_out *k);

#endif
