/*
 * shaping.c - the master's traffic shaping: suspensions and temporary limits
 * in force (spool/sl_actions.h), and the rate throttles' buckets, checked
 * before the scheduler hands a destination a job.
 *
 * The actions live in memory and in spool_dir/actions, written again after
 * each change, so a restart keeps them; each ends by itself at its `until`.
 * Buckets are read here, never taken: the workers take the tokens
 * (worker/throttle.c); the gate only keeps the scheduler from handing out a
 * job that would find the bucket empty.  Since a job handed out now takes
 * its token a moment later, the gate remembers the token it promised (a small
 * direct-mapped table of bucket slots), so one bucket's pace is handed to one
 * worker at a time.
 * After every change of the list what is in force is published in the
 * shared table (master/publish.c); the gate reads the connection caps from
 * there, as the workers do, so the two never judge a cap differently.
 * Concurrency: master only, from the main loop.
 * Trust boundary: control requests come from local users allowed by the
 * socket's mode; every field is checked before use, and a bad one answered
 * with ERROR.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <bsd/string.h>

#include "config/sl_limits.h"
#include "config/sl_throttle.h"
#include "master/sl_shaping.h"
#include "spool/sl_actions.h"
#include "util/sl_atomic.h"
#include "util/sl_clock.h"
#include "util/sl_msg.h"

#define PROMISES 64 /* buckets whose next token the gate promised to a job */

static void save(void);

static struct {
    char *spool;
    const struct sl_config *cfg; /* in force (sl_shaping_use) */
    struct sl_shm *shm;
    struct sl_actions list;
    char unsaved[512]; /* why the last save failed, "" when it did not */
    struct {
        uint32_t slot;
        uint64_t until_us; /* CLOCK_MONOTONIC: the promised token's pace ends then */
    } promise[PROMISES];
} sh;

/* sl_shaping_init - the actions persisted in spool_dir */
void sl_shaping_init(const char *spool_dir)
{
    char err[512];

    free(sh.spool);
    sl_actions_free(&sh.list);
    sh.spool = sl_strdup(spool_dir);
    for (size_t i = 0; i < PROMISES; i++)
        sh.promise[i].slot = UINT32_MAX;
    if (sl_actions_load(spool_dir, &sh.list, err, sizeof err) < 0)
        sl_msg_warn("shaping actions not restored: %s", err);
    else if (sh.list.n > 0)
        sl_msg_info("%zu shaping action(s) in force from %s/%s", sh.list.n, spool_dir,
                    SL_ACTIONS_FILE);
}

/* sl_shaping_free - the memory of the actions */
void sl_shaping_free(void)
{
    sl_actions_free(&sh.list);
    free(sh.spool);
    sh.spool = NULL;
}

/* write_list - the list to the spool; false (logged, why in sh.unsaved) when it could not be
 * written */
static bool write_list(void)
{
    sh.unsaved[0] = '\0';
    if (sh.spool == NULL || sl_actions_save(sh.spool, &sh.list, sh.unsaved, sizeof sh.unsaved) == 0)
        return true;
    if (sh.unsaved[0] == '\0')
        snprintf(sh.unsaved, sizeof sh.unsaved, "the actions file could not be written");
    sl_msg_warn("shaping actions not saved: %s", sh.unsaved);
    return false;
}

/* save - the list to the spool, and what is in force to the shared table; a rule's action or
 * an expiry stays in force in memory even when the file could not be written */
static void save(void)
{
    write_list();
    sl_shaping_publish(sh.shm, &sh.list);
}

/* in_force - is action id in the list */
static bool in_force(uint64_t id)
{
    for (size_t i = 0; i < sh.list.n; i++)
        if (sh.list.a[i].id == id)
            return true;
    return false;
}

/* keep_or_undo - an operator's change of the list stays only if it was saved: the file is
 * what `sluicectl suspended` shows and what the workers read, so an OK is only answered for
 * what it holds (as sluicectl does with no daemon).  Otherwise the list goes back to was (ids
 * still never reused) and ans says why; false then.  was is the caller's to free. */
static bool keep_or_undo(struct sl_actions *was, char *ans, size_t len)
{
    uint64_t next_id = sh.list.next_id;
    char why[sizeof sh.unsaved];

    /* Published only once the outcome is known: a throttle's bucket, once retired, takes no
     * rate again, so a cancel published and then undone would leave its action listed but
     * never enforced. */
    if (write_list()) {
        sl_shaping_publish(sh.shm, &sh.list);
        return true;
    }
    memcpy(why, sh.unsaved, sizeof why);
    sl_actions_free(&sh.list);
    sh.list = *was;
    *was = (struct sl_actions){0};
    sh.list.next_id = next_id;
    write_list(); /* the failed write may have got as far as the rename: the file as it was */
    snprintf(ans, len, "ERROR not saved (%s): nothing changed", why);
    return false;
}

/* sl_shaping_use - the config and table of this dispatch round */
void sl_shaping_use(const struct sl_config *cfg, struct sl_shm *shm)
{
    bool fresh = shm != sh.shm;

    sh.cfg = cfg;
    sh.shm = shm;
    if (fresh) /* the first round, or a new table: the actions restored go in it */
        sl_shaping_publish(sh.shm, &sh.list);
}

/* sl_shaping_config - the config in force, NULL before the first dispatch */
const struct sl_config *sl_shaping_config(void)
{
    return sh.cfg;
}

/* action_bucket - the bucket of a throttle action ("action ID"), created when asked */
static bool action_bucket(const struct sl_action *a, bool create, uint32_t *slot)
{
    char key[48];

    snprintf(key, sizeof key, "action %" PRIu64, a->id);
    if (sh.shm == NULL)
        return false;
    if (!create)
        return sl_shm_find(sh.shm, SL_SCOPE_THROTTLE_MSG, key, NULL, slot) == SL_SHM_OK;
    return sl_shm_lookup(sh.shm, SL_SCOPE_THROTTLE_MSG, key, NULL, 0, slot) == SL_SHM_OK;
}

/* sl_shaping_add - a new action in force, persisted */
bool sl_shaping_add(struct sl_action *a)
{
    struct sl_rate r;
    uint32_t slot;

    if (sl_actions_add(&sh.list, a) < 0)
        return false;
    if (a->rule[0] != '\0')
        sl_actions_count(&sh.list, a->rule);
    if (a->kind == SL_ACTION_THROTTLE_MESSAGES && sl_rate_unpack(a->value, &r) &&
        action_bucket(a, true, &slot))
        sl_bucket_set(sh.shm, slot, r.n, r.period_ms, 1);
    save();
    return true;
}

/* sl_shaping_in_force - an action of rule over exactly binding x domain */
bool sl_shaping_in_force(const char *rule, const char *binding, const char *domain)
{
    int64_t now = (int64_t)time(NULL);

    for (size_t i = 0; i < sh.list.n; i++) {
        const struct sl_action *a = &sh.list.a[i];
        if (strcmp(a->rule, rule) == 0 && strcasecmp(a->binding, binding) == 0 &&
            strcasecmp(a->domain, domain) == 0 && (a->until == 0 || a->until > now))
            return true;
    }
    return false;
}

/* suspended - the suspension in force for binding x domain, or NULL */
static const struct sl_action *suspended(const char *binding, const char *domain, int64_t now)
{
    for (size_t i = 0; i < sh.list.n; i++) {
        const struct sl_action *a = &sh.list.a[i];
        /* A host's suspension holds only the connections to it: the workers keep to it. */
        if (a->kind == SL_ACTION_SUSPEND && (a->until == 0 || a->until > now) &&
            a->host[0] == '\0' && sl_action_covers(a, binding, domain, NULL))
            return a;
    }
    return NULL;
}

/* promised - the end of the pace promised on bucket slot, 0 when none */
static uint64_t *promised(uint32_t slot)
{
    size_t i = slot % PROMISES;

    if (sh.promise[i].slot != slot) {
        sh.promise[i].slot = slot;
        sh.promise[i].until_us = 0;
    }
    return &sh.promise[i].until_us;
}

/* pace - may the next token of the bucket in slot (paced at step us) go now?  false with the
 * wait in h; promise: the token is counted as taken by the job about to go */
static bool pace(const struct sl_shm *shm, uint32_t slot, uint64_t step, bool promise,
                 const char *what, struct sl_shaping_hold *h)
{
    uint64_t now = sl_clock_us(), wait = sl_bucket_wait(shm, slot, now), *until = promised(slot);

    if (*until > now + wait)
        wait = *until - now;
    if (wait > 0) {
        h->slot = slot;
        h->wake_ms = (long)(wait / 1000u) + 1;
        snprintf(h->why, sizeof h->why, "%s empty for %" PRIu64 " ms", what, wait / 1000u);
        return false;
    }
    if (promise)
        *until = now + step;
    return true;
}

/* bucket_ready - may a token of the throttle of kind for binding x domain go now?  false
 * with the wait in h; promise: the token is counted as taken by the job about to go.  m keeps
 * the throttle and its bucket's slot for the destination, resolved once per generation */
static bool bucket_ready(const struct sl_config *cfg, const struct sl_shm *shm,
                         struct sl_throttle_memo *m, enum sl_throttle_kind kind,
                         const char *binding, const char *domain, bool promise,
                         struct sl_shaping_hold *h)
{
    enum sl_scope_kind sk =
        kind == SL_THROTTLE_CONNECTIONS ? SL_SCOPE_THROTTLE_CONN : SL_SCOPE_THROTTLE_MSG;
    char what[SL_THROTTLE_KEY_MAX + 32];

    if (!sl_throttle_memo_get(m, sl_peek64(&shm->hdr->config_gen), cfg, kind, binding, domain,
                              NULL))
        return true; /* no throttle */
    if (m->slot == UINT32_MAX && sl_shm_find(shm, sk, m->t.key, NULL, &m->slot) != SL_SHM_OK) {
        m->slot = UINT32_MAX; /* no token taken yet: looked for again next time */
        return true;
    }
    snprintf(what, sizeof what, "%s %s", sl_scope_kind_name(sk), m->t.key);
    return pace(shm, m->slot, sl_bucket_interval_us(m->t.rate.n, m->t.rate.period_ms), promise,
                what, h);
}

/* cap_allows - may one more connection of binding x domain open under the actions' caps?
 * false with the reason in h.  The caps are read as published (shm/cap.c), not from the list:
 * the workers take them from there, so the gate holds back by the same tightest cap, from the
 * same moment to the same moment, as the worker's reservation would refuse by */
static bool cap_allows(const struct sl_shm *shm, const char *binding, const char *domain,
                       const uint16_t *promised, struct sl_shaping_hold *h)
{
    struct sl_refusal why;
    char use[64];
    uint64_t id;
    int32_t cap;

    if (!sl_shm_cap_find(shm, binding, domain, &cap, &id) ||
        sl_limits_cap_room(shm, binding, domain, cap, promised, &why))
        return true;
    h->slot = why.slot; /* a connection that closes lets it look again */
    snprintf(h->why, sizeof h->why,
             "action %" PRIu64 ": max_outbound_connections = %" PRId32 " (%s)", id, cap,
             sl_limits_use_text(&why, use, sizeof use));
    return false;
}

/* actions_allow - the rule actions over binding x domain: a lower connection limit (newconn),
 * a throttle in force; false with the reason in h */
static bool actions_allow(const struct sl_shm *shm, const char *binding, const char *domain,
                          bool newconn, const uint16_t *promised, int64_t now,
                          struct sl_shaping_hold *h)
{
    if (newconn && !cap_allows(shm, binding, domain, promised, h))
        return false;
    for (size_t i = 0; i < sh.list.n; i++) {
        const struct sl_action *a = &sh.list.a[i];
        struct sl_rate r;
        uint32_t slot;
        char what[64];
        if ((a->until > 0 && a->until <= now) || !sl_action_covers(a, binding, domain, NULL))
            continue;
        snprintf(what, sizeof what, "action %" PRIu64 " bucket", a->id);
        if (a->kind == SL_ACTION_THROTTLE_MESSAGES && sl_rate_unpack(a->value, &r) &&
            action_bucket(a, false, &slot) &&
            !pace(shm, slot, sl_bucket_interval_us(r.n, r.period_ms), true, what, h))
            return false;
    }
    return true;
}

/* sl_shaping_gate - may binding x domain have a job now */
bool sl_shaping_gate(const struct sl_config *cfg, const struct sl_shm *shm, const char *binding,
                     const char *domain, struct sl_throttle_memo **memo, bool newconn,
                     const uint16_t *promised, struct sl_shaping_hold *h)
{
    int64_t now = (int64_t)time(NULL);
    const struct sl_action *a = suspended(binding, domain, now);

    *h = (struct sl_shaping_hold){.slot = UINT32_MAX, .wake_ms = -1};
    if (sh.list.n == 0 && cfg->setters != NULL &&
        cfg->setters[SL_OPT_OUTBOUND_THROTTLE_CONNECTIONS].n == 0 &&
        cfg->setters[SL_OPT_OUTBOUND_THROTTLE_MESSAGES].n == 0)
        return true; /* the common case: nothing to shape, no lookup */
    if (a != NULL) {
        if (a->until > 0)
            h->wake_ms = (long)(a->until - now) * 1000;
        snprintf(h->why, sizeof h->why, "suspended (action %" PRIu64 ")", a->id);
        return false;
    }
    if (!actions_allow(shm, binding, domain, newconn, promised, now, h))
        return false;
    if (*memo == NULL)
        *memo = sl_calloc(2, sizeof **memo);
    if (newconn && !bucket_ready(cfg, shm, &(*memo)[SL_THROTTLE_CONNECTIONS],
                                 SL_THROTTLE_CONNECTIONS, binding, domain, false, h))
        return false;
    return bucket_ready(cfg, shm, &(*memo)[SL_THROTTLE_MESSAGES], SL_THROTTLE_MESSAGES, binding,
                        domain, true, h);
}

/* sl_shaping_tick - drop what ended */
bool sl_shaping_tick(int64_t now)
{
    for (size_t i = 0; i < sh.list.n; i++) {
        const struct sl_action *a = &sh.list.a[i];
        if (a->until > 0 && a->until <= now)
            sl_msg_info("action %" PRIu64 " (%s%s%s) over%s%s%s%s ended: its time is up", a->id,
                        sl_action_kind_name(a->kind), a->rule[0] ? ", rule " : "", a->rule,
                        a->binding[0] ? " binding " : "", a->binding,
                        a->domain[0] ? " domain " : "", a->domain);
    }
    if (sl_actions_expire(&sh.list, now) == 0)
        return false;
    save();
    return true;
}

/* sl_shaping_word - the next blank-separated word of *p into buf; false when none or too long */
bool sl_shaping_word(const char **p, char *buf, size_t len)
{
    size_t n;

    *p += strspn(*p, " ");
    n = strcspn(*p, " ");
    if (n == 0 || n >= len)
        return false;
    memcpy(buf, *p, n);
    buf[n] = '\0';
    *p += n;
    return true;
}

/* plain - a binding or domain name from a request: printable, no blank; "-" is none */
static bool plain(char *s)
{
    for (const char *c = s; *c != '\0'; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return false;
    if (strcmp(s, "-") == 0)
        s[0] = '\0';
    return true;
}

/* scope_text - "binding B domain D host H" for answers and logs (the parts a names) */
static void scope_text(const struct sl_action *a, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s%s%s%s%s", a->binding[0] ? "binding " : "", a->binding,
             a->binding[0] && a->domain[0] ? " " : "", a->domain[0] ? "domain " : "", a->domain,
             (a->binding[0] || a->domain[0]) && a->host[0] ? " " : "", a->host[0] ? "host " : "",
             a->host);
}

/* host_then_seconds - "[HOST] SECONDS" of a suspend request: a word of digits is the
 * seconds (no host) */
static bool host_then_seconds(const char **p, struct sl_action *a, char *secs, size_t len)
{
    if (!sl_shaping_word(p, secs, len))
        return false;
    if (secs[strspn(secs, "0123456789")] == '\0')
        return true;
    if (strlcpy(a->host, secs, sizeof a->host) >= sizeof a->host || !plain(a->host))
        return false;
    return sl_shaping_word(p, secs, len);
}

/* suspend - "X suspend BINDING DOMAIN [HOST] SECONDS REASON..." */
static bool suspend(const char *p, char *ans, size_t len)
{
    struct sl_action a = {.kind = SL_ACTION_SUSPEND, .since = (int64_t)time(NULL)};
    struct sl_actions was;
    char secs[256], scope[900];
    char *end;
    long long s;

    if (!sl_shaping_word(&p, a.binding, sizeof a.binding) ||
        !sl_shaping_word(&p, a.domain, sizeof a.domain) ||
        !host_then_seconds(&p, &a, secs, sizeof secs) || !plain(a.binding) || !plain(a.domain) ||
        (a.binding[0] == '\0' && a.domain[0] == '\0' && a.host[0] == '\0') ||
        (s = strtoll(secs, &end, 10)) < 0 || *end != '\0' || s > SL_ACTION_MAX_S) {
        snprintf(ans, len, "ERROR malformed suspend request");
        return false;
    }
    a.until = s > 0 ? a.since + s : 0;
    sl_action_text(a.reason, sizeof a.reason, p + strspn(p, " "));
    sl_actions_copy(&was, &sh.list);
    if (sl_actions_add(&sh.list, &a) < 0) {
        sl_actions_free(&was);
        snprintf(ans, len, "ERROR too many actions in force (%d)", SL_ACTIONS_MAX);
        return false;
    }
    if (!keep_or_undo(&was, ans, len))
        return false;
    sl_actions_free(&was);
    scope_text(&a, scope, sizeof scope);
    sl_msg_info("action %" PRIu64 ": %s suspended%s%s%s (by the operator%s%s)", a.id, scope,
                a.until ? " for " : "", a.until ? secs : "", a.until ? " s" : "",
                a.reason[0] ? ": " : "", a.reason);
    snprintf(ans, len, "OK %" PRIu64 " %s suspended", a.id, scope);
    return true;
}

/* resume - "X resume BINDING DOMAIN [HOST]": every suspension of exactly that scope ends */
static bool resume(const char *p, char *ans, size_t len)
{
    char binding[128], domain[256], host[256] = "";
    struct sl_actions was;
    size_t n = 0;

    if (!sl_shaping_word(&p, binding, sizeof binding) ||
        !sl_shaping_word(&p, domain, sizeof domain) || !plain(binding) || !plain(domain) ||
        (sl_shaping_word(&p, host, sizeof host) && !plain(host)) || p[strspn(p, " ")] != '\0') {
        snprintf(ans, len, "ERROR malformed resume request");
        return false;
    }
    sl_actions_copy(&was, &sh.list);
    for (size_t i = 0; i < sh.list.n;) {
        const struct sl_action *a = &sh.list.a[i];
        if (a->kind == SL_ACTION_SUSPEND && strcasecmp(a->binding, binding) == 0 &&
            strcasecmp(a->domain, domain) == 0 && strcasecmp(a->host, host) == 0) {
            sl_actions_remove(&sh.list, i);
            n++;
        } else {
            i++;
        }
    }
    if (n == 0) {
        sl_actions_free(&was);
        snprintf(ans, len, "ERROR no suspension of that scope is in force");
        return false;
    }
    if (!keep_or_undo(&was, ans, len))
        return false;
    for (size_t i = 0; i < was.n; i++)
        if (!in_force(was.a[i].id))
            sl_msg_info("action %" PRIu64 " ended: resumed by the operator", was.a[i].id);
    sl_actions_free(&was);
    snprintf(ans, len, "OK %zu suspension(s) ended", n);
    return true;
}

/* cancel - "X cancel ID": one action ends now */
static bool cancel(const char *p, char *ans, size_t len)
{
    char idw[24], *end;
    unsigned long long id;

    if (!sl_shaping_word(&p, idw, sizeof idw) || (id = strtoull(idw, &end, 10)) == 0 ||
        *end != '\0') {
        snprintf(ans, len, "ERROR malformed cancel request");
        return false;
    }
    for (size_t i = 0; i < sh.list.n; i++) {
        struct sl_actions was;
        if (sh.list.a[i].id != id)
            continue;
        sl_actions_copy(&was, &sh.list);
        sl_actions_remove(&sh.list, i);
        bool kept = keep_or_undo(&was, ans, len);
        sl_actions_free(&was);
        if (!kept)
            return false;
        sl_msg_info("action %llu ended: cancelled by the operator", id);
        snprintf(ans, len, "OK action %llu cancelled", id);
        return true;
    }
    snprintf(ans, len, "ERROR no action %llu is in force", id);
    return false;
}

/* sl_shaping_control - one "X ..." request */
bool sl_shaping_control(const char *req, char *ans, size_t len)
{
    const char *p = req + 1;
    char verb[16];

    if (!sl_shaping_word(&p, verb, sizeof verb)) {
        snprintf(ans, len, "ERROR malformed request");
        return false;
    }
    if (strcmp(verb, "suspend") == 0)
        return suspend(p, ans, len);
    if (strcmp(verb, "resume") == 0)
        return resume(p, ans, len);
    if (strcmp(verb, "cancel") == 0)
        return cancel(p, ans, len);
    snprintf(ans, len, "ERROR unknown shaping request %s", verb);
    return false;
}
