/*
 * sl_rules.h - [shaping "NAME"] sections: rules that turn a receiver's replies
 * into temporary actions (suspend, a lower connection limit, a throttle).
 *
 *   [shaping "yahoo-tss04"]
 *   domain   = /^(yahoo|aol)\./   ; a name or /regex/ (optional; binding, host too)
 *   match    = /TSS04/            ; a regex (PCRE2, caseless) on the reply text
 *   trigger  = 5/60s              ; N matching replies within the window; "immediate" = 1
 *   action   = suspend            ; | max_outbound_connections = N
 *                                 ; | outbound_throttle_messages = N/S
 *   duration = 1h
 *   scope    = binding_domain     ; | domain | binding: what the action covers
 *   match_local = no              ; yes: replies sluice made up itself match too
 *
 * Concurrency: part of an immutable sl_config.
 * Trust boundary: operator input, validated with FILE:LINE messages.
 */
#ifndef SL_RULES_H
#define SL_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/sl_config.h"

enum sl_rule_scope { SL_RULE_BINDING_DOMAIN, SL_RULE_DOMAIN, SL_RULE_BINDING };

/* What a rule does; the same numbers as enum sl_action_kind (spool/sl_actions.h), which the
 * master checks: config and spool do not use each other. */
enum sl_rule_action { SL_RULE_SUSPEND, SL_RULE_MAX_CONNECTIONS, SL_RULE_THROTTLE_MESSAGES };

struct sl_rule {
    char *name;
    unsigned line; /* of the header */
    char *binding, *host, *domain;
    void *domain_re; /* pcre2_code * when domain is /regex/ */
    char *match;
    void *match_re; /* pcre2_code * */
    bool match_local;
    uint32_t trigger_n;  /* replies needed ... */
    uint32_t trigger_ms; /* ... within this window; 1/0 for immediate */
    int action;          /* enum sl_rule_action; -1 until set */
    int64_t value;       /* N, or a packed rate */
    int64_t duration_ms;
    enum sl_rule_scope scope;
    unsigned set_line[8]; /* where each key was set, for duplicate errors; 0: not set */
};

/* A reply as the rules see it. */
struct sl_rule_reply {
    const char *binding, *domain, *host; /* host may be NULL */
    const char *text;
    bool local; /* made up by sluice: a timeout, a refused connection, its own limits */
};

/* Does rule r match reply p (scope filters, the regex, the local rule)? */
bool sl_rule_matches(const struct sl_rule *r, const struct sl_rule_reply *p);
/* The rule's action as written ("suspend", "max_outbound_connections = 2", ...). */
void sl_rule_action_text(const struct sl_rule *r, char *buf, size_t len);
/* The rule's scope's name. */
const char *sl_rule_scope_name(enum sl_rule_scope s);

#endif
