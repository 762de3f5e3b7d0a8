/*
 * sl_throttle.h - rate throttles: outbound_throttle_connections and
 * outbound_throttle_messages ("N" per second or "N/S", N per S seconds).
 *
 * A throttle is one bucket shared by everything under the stanza that defines
 * it (Momentum's "by reference"): the bucket's key is that stanza's header, so
 * a binding group's throttle is one bucket for all its bindings and a regex
 * domain's one bucket for all the domains it matches.  The general chain gives
 * one throttle for binding x domain, the host chain one for binding x MX host;
 * both apply to a connection to that host.
 * Concurrency: pure functions over an immutable config.
 * Trust boundary: values come from the operator's file (validated here).
 */
#ifndef SL_THROTTLE_H
#define SL_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/sl_config.h"

#define SL_RATE_NONE        (-1)
#define SL_RATE_PERIOD_MAX  (30LL * 86400 * 1000) /* ms: S at most 30 days */
#define SL_THROTTLE_KEY_MAX 255

/* A rate: n events per period_ms milliseconds. */
struct sl_rate {
    uint32_t n;
    uint32_t period_ms;
};

/* Parse "N", "N/S" (S seconds, or with a unit: 90s, 10m, 1h, 1d) or "-1" into the packed
 * form kept in a config value (-1: none; else n << 32 | period_ms).  False with what was
 * expected in err. */
bool sl_rate_parse(const char *text, int64_t *num, char *err, size_t len);
/* The packed form back into n and period; false for "none". */
bool sl_rate_unpack(int64_t num, struct sl_rate *r);
/* As an operator writes it: "10/2", "5" (per second), "100/1h", "-1". */
void sl_rate_format(int64_t num, char *buf, size_t len);

enum sl_throttle_kind { SL_THROTTLE_CONNECTIONS, SL_THROTTLE_MESSAGES };

/* A resolved throttle: its rate and its bucket's key (the defining stanza). */
struct sl_throttle {
    struct sl_rate rate;
    char key[SL_THROTTLE_KEY_MAX + 1]; /* 'binding_group "g1"', 'domain "/re/"', 'global' */
};

/* The throttle of kind for binding x domain (host NULL: the general chain) or for
 * binding x host (host set: the host chain); false when there is none.  binding must be
 * known to cfg. */
bool sl_throttle_resolve(const struct sl_config *cfg, enum sl_throttle_kind kind,
                         const char *binding, const char *domain, const char *host,
                         struct sl_throttle *out);
/* A throttle resolved once per config generation for one scope (binding x domain, or
 * binding x host), kept by its user (the master per destination, a worker per connection),
 * so a token or a gate costs no config walk and no key formatting.  slot is the user's
 * (the bucket's counter slot, UINT32_MAX until known). */
struct sl_throttle_memo {
    uint64_t gen; /* the generation has and t are for; 0: never resolved */
    bool has;     /* a throttle is in force */
    uint32_t slot;
    struct sl_throttle t;
};
/* m's throttle (sl_throttle_resolve's answer), resolved again only when gen differs from
 * the one m holds (gen 0: every time); a new resolution forgets m->slot. */
bool sl_throttle_memo_get(struct sl_throttle_memo *m, uint64_t gen, const struct sl_config *cfg,
                          enum sl_throttle_kind kind, const char *binding, const char *domain,
                          const char *host);
/* The option of a throttle kind. */
enum sl_opt sl_throttle_opt(enum sl_throttle_kind kind);

#endif
