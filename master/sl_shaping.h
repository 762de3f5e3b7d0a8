/*
 * sl_shaping.h - the master's traffic shaping: the actions in force
 * (suspensions and temporary limits, spool/sl_actions.h) and the rate
 * throttles' buckets, consulted before a job is handed out.
 *
 * A destination whose scope is suspended, or whose bucket is empty, is held
 * back exactly like one whose counter is full: its mail waits in the master,
 * no connection is opened, nothing is dispatched to fail.
 * Concurrency: master only, from the main loop.
 */
#ifndef SL_SHAPING_H
#define SL_SHAPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/sl_config.h"
#include "config/sl_throttle.h"
#include "shm/sl_shm.h"

/* Load the actions persisted in spool_dir (kept for the master's lifetime). */
void sl_shaping_init(const char *spool_dir);
void sl_shaping_free(void);

/* Why a destination may not have a job now. */
struct sl_shaping_hold {
    uint32_t slot; /* the bucket it waits for (shown as a wait); UINT32_MAX: a suspension */
    long wake_ms;  /* when to look again; -1: when something changes (or the safety net) */
    char why[320]; /* for the debug log */
};
/* May binding x domain have a job now (newconn: one that opens a connection)?  false with
 * the reason in *h.  *memo is the destination's: its throttles (by enum sl_throttle_kind)
 * resolved once per config generation, allocated here when a throttle is set (the caller
 * frees it with the destination).  A message throttle's next token is promised to
 * the job about to be handed out, so that one bucket's pace is not handed to several workers at
 * once; an action's connection cap counts the connections promised to jobs not yet started
 * (promised, by counter slot: master/promise.c; NULL: none). */
bool sl_shaping_gate(const struct sl_config *cfg, const struct sl_shm *shm, const char *binding,
                     const char *domain, struct sl_throttle_memo **memo, bool newconn,
                     const uint16_t *promised, struct sl_shaping_hold *h);
/* The config and table in force (set before each dispatch; the rules read them). */
void sl_shaping_use(const struct sl_config *cfg, struct sl_shm *shm);
/* A worker's "T <binding> <domain> <mx|-> <R|L> <reply>": the [shaping] rules it matches
 * count it, and one whose trigger is reached takes its action (master/rules.c). */
void sl_shaping_reply(const char *msg, size_t len);

/* master/shaping.c, for master/rules.c: add a (its id set), persist it, and make the bucket
 * of a throttle action; false when the list is full.  Is an action of rule in force over
 * exactly binding x domain ("" for any)? */
struct sl_action;
bool sl_shaping_add(struct sl_action *a);
bool sl_shaping_in_force(const char *rule, const char *binding, const char *domain);
const struct sl_config *sl_shaping_config(void);

/* master/publish.c: the caps of the actions in force in l into shm (shm/cap.c), and what
 * ended retired there (caps, throttle actions' buckets); after every change of the list. */
struct sl_actions;
void sl_shaping_publish(struct sl_shm *shm, const struct sl_actions *l);

/* Drop the actions that ended; true when one did (held destinations may go). */
bool sl_shaping_tick(int64_t now);
/* A control request "X ..." (sl_control.h): the answer into ans; true when the actions
 * changed (held destinations may go). */
bool sl_shaping_control(const char *req, char *ans, size_t len);

/* The next blank-separated word of *p into buf (len bytes), *p moved past it; false when
 * there is none or it does not fit (the requests' and the replies' fields). */
bool sl_shaping_word(const char **p, char *buf, size_t len);

#endif
