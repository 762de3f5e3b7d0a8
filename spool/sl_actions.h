/*
 * sl_actions.h - the shaping actions in force: suspensions, temporary limits
 * and temporary throttles, persisted in the spool (spool_dir/actions).
 *
 * The master owns the list: it adds (sluicectl suspend, a [shaping] rule),
 * removes (resume, shaping cancel, expiry) and writes the whole file again
 * after every change (tmp file, fsync, rename, fsync of the directory), so a
 * restart finds what was in force.  sluicectl reads the file (suspended,
 * shaping, queue) and, with no daemon running, may write it the same way.
 * Trust boundary: the file is ours, but a disk or an operator may damage it:
 * every line is parsed with bounds, and a bad line is skipped with a warning.
 */
#ifndef SL_ACTIONS_H
#define SL_ACTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_ACTIONS_FILE "actions"
#define SL_ACTIONS_MAX  4096            /* actions in force at once */
#define SL_ACTION_TEXT  400             /* bytes of a reason or reply, without NUL */
#define SL_ACTION_MAX_S (366LL * 86400) /* the longest suspension the operator may ask for */

enum sl_action_kind {
    SL_ACTION_SUSPEND,           /* no new connection, no job: mail waits */
    SL_ACTION_MAX_CONNECTIONS,   /* max_outbound_connections = value while in force */
    SL_ACTION_THROTTLE_MESSAGES, /* outbound_throttle_messages = value (a packed rate) */
    SL_ACTION__COUNT
};

struct sl_action {
    uint64_t id;
    enum sl_action_kind kind;
    int64_t value;     /* MAX_CONNECTIONS: N; THROTTLE_MESSAGES: n << 32 | period_ms */
    char binding[128]; /* "" : every binding */
    char domain[256];  /* "" : every domain */
    char host[256];    /* "" : every host */
    int64_t since;     /* UNIX seconds */
    int64_t until;     /* UNIX seconds; 0: until lifted */
    char rule[128];    /* the [shaping] rule; "" for the operator */
    char reason[SL_ACTION_TEXT + 1]; /* the reply that matched, or the operator's reason */
};

struct sl_actions {
    struct sl_action *a;
    size_t n;
    uint64_t next_id; /* ids are never reused */
    struct sl_actions_taken {
        char rule[128];
        uint64_t n;
    } * taken; /* actions each rule has taken since the spool was made (for metrics) */
    size_t ntaken;
};

/* The kind's word in the file and on screen ("suspend", ...), and back (-1: none). */
const char *sl_action_kind_name(enum sl_action_kind k);
int sl_action_kind_parse(const char *word);
/* Read spool_dir/actions into out (empty when there is none); -1 with err only when the
 * file exists and cannot be read.  Damaged lines are skipped (one warning each). */
int sl_actions_load(const char *spool_dir, struct sl_actions *out, char *err, size_t errlen);
/* Write l durably over spool_dir/actions; -1 with err. */
int sl_actions_save(const char *spool_dir, const struct sl_actions *l, char *err, size_t errlen);
/* Append a (its id assigned from l->next_id); -1 when the list is full. */
int sl_actions_add(struct sl_actions *l, struct sl_action *a);
/* One more action taken by rule (for metrics); kept with the list. */
void sl_actions_count(struct sl_actions *l, const char *rule);
/* Remove entry i (order kept). */
void sl_actions_remove(struct sl_actions *l, size_t i);
/* Drop the actions whose until has passed at now; how many were dropped. */
size_t sl_actions_expire(struct sl_actions *l, int64_t now);
void sl_actions_free(struct sl_actions *l);
/* dst a copy of src with memory of its own (freed with sl_actions_free). */
void sl_actions_copy(struct sl_actions *dst, const struct sl_actions *src);
/* Does a cover binding x domain (x host; NULL: not known, the host is not checked)? */
bool sl_action_covers(const struct sl_action *a, const char *binding, const char *domain,
                      const char *host);
/* A text field as the file keeps it: tabs, newlines and control characters become
 * spaces, and it is cut at len - 1 bytes. */
void sl_action_text(char *dst, size_t len, const char *src);

#endif
