/*
 * triggers.c - the [shaping] rules at work: the master counts the failure
 * replies the workers tell it ("T ...", sl_worker.h) against each rule, and a
 * rule whose trigger is reached takes its action (master/shaping.c keeps it,
 * persisted, until its duration ends or the operator cancels it).
 *
 * A trigger "N/W" fires on the Nth matching reply within W for one scope of
 * the rule (binding x domain by default, or the domain, or the binding, as
 * the rule's scope says); "immediate" on the first.  The counts live in a
 * bounded table of recent hits per (rule, scope); the oldest is forgotten when
 * it is full.  A rule never takes a second action over a scope where its own
 * is still in force.  Each action is logged with the rule, the reply and the
 * scope.
 * Concurrency: master only, from the main loop.
 * Trust boundary: the message comes from our own worker, but its reply text
 * comes from a receiver: fields are checked, and the text is only matched,
 * cut and stored as a bounded line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <bsd/string.h>

#include "config/sl_rules.h"
#include "master/sl_shaping.h"
#include "spool/sl_actions.h"
#include "util/sl_clock.h"
#include "util/sl_msg.h"

_Static_assert((int)SL_RULE_SUSPEND == (int)SL_ACTION_SUSPEND &&
                   (int)SL_RULE_MAX_CONNECTIONS == (int)SL_ACTION_MAX_CONNECTIONS &&
                   (int)SL_RULE_THROTTLE_MESSAGES == (int)SL_ACTION_THROTTLE_MESSAGES,
               "a rule's action is an action kind");

#define TRACKERS 1024 /* (rule, scope) pairs counted at once */

/* The recent matching replies of one rule over one scope. */
struct tracker {
    char rule[128];
    char binding[128], domain[256];
    uint64_t *hit; /* ring of the last trigger_n hit times, monotonic ms */
    uint32_t n, next, cap;
    uint64_t last; /* the latest hit: the least recent tracker goes when the table is full */
};

static struct tracker trackers[TRACKERS];

/* tracker_for - the counts of rule r over binding x domain, a fresh (or the oldest) slot
 * when there are none */
static struct tracker *tracker_for(const struct sl_rule *r, const char *binding, const char *domain)
{
    struct tracker *free_one = NULL, *oldest = &trackers[0];

    for (size_t i = 0; i < TRACKERS; i++) {
        struct tracker *t = &trackers[i];
        if (t->hit == NULL) {
            if (free_one == NULL)
                free_one = t;
            continue;
        }
        if (strcmp(t->rule, r->name) == 0 && strcmp(t->binding, binding) == 0 &&
            strcmp(t->domain, domain) == 0 && t->cap == r->trigger_n)
            return t;
        if (t->last < oldest->last || oldest->hit == NULL)
            oldest = t;
    }
    struct tracker *t = free_one != NULL ? free_one : oldest;
    free(t->hit);
    *t = (struct tracker){.hit = sl_calloc(r->trigger_n, sizeof *t->hit), .cap = r->trigger_n};
    strlcpy(t->rule, r->name, sizeof t->rule);
    strlcpy(t->binding, binding, sizeof t->binding);
    strlcpy(t->domain, domain, sizeof t->domain);
    return t;
}

/* reached - one more hit at now_ms: is the trigger reached (N hits within the window)? */
static bool reached(const struct sl_rule *r, struct tracker *t, uint64_t now_ms)
{
    t->hit[t->next] = now_ms;
    t->next = (t->next + 1) % t->cap;
    t->last = now_ms;
    if (t->n < t->cap)
        t->n++;
    if (t->n < t->cap)
        return false;
    /* the ring is full: its oldest entry (at next) is the Nth most recent hit */
    if (r->trigger_ms > 0 && now_ms - t->hit[t->next] > r->trigger_ms)
        return false;
    t->n = 0; /* counted afresh after an action */
    return true;
}

/* take_action - rule r's action over its scope, in force from now for its duration */
static void take_action(const struct sl_rule *r, const struct sl_rule_reply *p, const char *binding,
                        const char *domain)
{
    struct sl_action a = {
        .kind = (enum sl_action_kind)r->action, .value = r->value, .since = (int64_t)time(NULL)};
    char what[96];

    a.until = a.since + (r->duration_ms + 999) / 1000;
    strlcpy(a.binding, binding, sizeof a.binding);
    strlcpy(a.domain, domain, sizeof a.domain);
    if (r->host != NULL)
        strlcpy(a.host, r->host, sizeof a.host);
    strlcpy(a.rule, r->name, sizeof a.rule);
    sl_action_text(a.reason, sizeof a.reason, p->text);
    sl_rule_action_text(r, what, sizeof what);
    if (!sl_shaping_add(&a)) {
        sl_msg_warn("shaping rule %s: too many actions in force; %s not taken", r->name, what);
        return;
    }
    sl_msg_info("shaping rule %s: action %" PRIu64 " %s for%s%s%s%s until %lld (%lld s), "
                "reply from %s %s via %s: %s",
                r->name, a.id, what, binding[0] ? " binding " : "", binding,
                domain[0] ? " domain " : "", domain, (long long)a.until,
                (long long)(a.until - a.since), p->binding, p->domain, p->host ? p->host : "-",
                a.reason);
}

/* apply - one reply against every rule of cfg */
static void apply(const struct sl_config *cfg, const struct sl_rule_reply *p)
{
    uint64_t now_ms = sl_clock_us() / 1000u;

    for (size_t i = 0; i < cfg->nrules; i++) {
        const struct sl_rule *r = &cfg->rules[i];
        const char *binding = r->scope == SL_RULE_DOMAIN ? "" : p->binding;
        const char *domain = r->scope == SL_RULE_BINDING ? "" : p->domain;
        if (!sl_rule_matches(r, p))
            continue;
        sl_msg_debug("shaping rule %s matches the reply of %s %s: %s", r->name, p->binding,
                     p->domain, p->text);
        if (sl_shaping_in_force(r->name, binding, domain))
            continue; /* its action over this scope is already in force */
        if (reached(r, tracker_for(r, binding, domain), now_ms))
            take_action(r, p, binding, domain);
    }
}

/* sl_shaping_reply - "T <binding> <domain> <mx|-> <R|L> <reply>" from a worker */
void sl_shaping_reply(const char *msg, size_t len)
{
    const struct sl_config *cfg = sl_shaping_config();
    char copy[2048], binding[128], domain[256], host[256], origin[4];
    const char *p = copy + 1;
    struct sl_rule_reply r;

    if (cfg == NULL || cfg->nrules == 0 || len >= sizeof copy)
        return;
    memcpy(copy, msg, len);
    copy[len] = '\0';
    if (!sl_shaping_word(&p, binding, sizeof binding) ||
        !sl_shaping_word(&p, domain, sizeof domain) || !sl_shaping_word(&p, host, sizeof host) ||
        !sl_shaping_word(&p, origin, sizeof origin) ||
        (strcmp(origin, "R") != 0 && strcmp(origin, "L") != 0)) {
        sl_msg_warn("a worker sent a malformed reply notice");
        return;
    }
    r = (struct sl_rule_reply){.binding = binding,
                               .domain = domain,
                               .host = strcmp(host, "-") == 0 ? NULL : host,
                               .text = p + strspn(p, " "),
                               .local = origin[0] == 'L'};
    apply(cfg, &r);
}
