/*
 * sl_limits.h - which counters a connection takes, and each one's limit: the
 * mapping from the config's scopes to the counter table (semantics.md).
 */
#ifndef SL_LIMITS_H
#define SL_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sl_config.h"
#include "sl_shm.h"

/* The limit that cfg gives a counter of this kind and key (-1: no limit). */
int32_t sl_limits_for_key(const struct sl_config *cfg, enum sl_scope_kind kind, const char *name,
                          const char *name2);
/* Create (and set the limits of) the counters the config names explicitly, so
 * the inspector shows every configured limit before any connection opens. */
void sl_limits_publish(const struct sl_config *cfg, struct sl_shm *shm, uint32_t gen);
/* Set every live counter's limit from cfg for generation gen (after a reload). */
void sl_limits_refresh(const struct sl_config *cfg, struct sl_shm *shm, uint32_t gen);
/* Add to r the counters a connection from binding to domain (via MX host mx,
 * which may be NULL before the MX is known) takes.  Returns false with a reason
 * in err when the table is full or r cannot hold them all. */
bool sl_limits_collect(const struct sl_config *cfg, struct sl_shm *shm, uint32_t owner,
                       const char *binding, const char *domain, const char *mx, struct sl_resv *r,
                       char *err, size_t errlen);

#endif
