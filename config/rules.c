/*
 * rules.c - [shaping "NAME"] sections (sl_rules.h): read, validated, matched.
 *
 * The loader hands a "[shaping ...]" header here instead of to the scope
 * header parser, and the keys under it to sl_rules_store; once the file is
 * read sl_rules_check reports what a rule lacks.  Every error is FILE:LINE.
 * Regexes (domain, match) are PCRE2, caseless, compiled once at load.
 * Concurrency: loading is single-threaded; matching reads an immutable config
 * (a match-data block per call).
 * Trust boundary: the rules are operator input; the replies matched come from
 * receivers (bounded by the SMTP layer) and are only matched, never stored here.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "config/sl_rules.h"
#include "config/sl_throttle.h"
#include "util/sl_idna.h"
#include "util/sl_msg.h"
#include "config_impl.h"

#define RULES_MAX 256

/* The keys of a rule, in the order of sl_rule.set_line. */
enum key { K_DOMAIN, K_BINDING, K_HOST, K_MATCH, K_TRIGGER, K_ACTION, K_DURATION, K_OTHER };
static const char *const key_names[] = {"domain",  "binding", "host",     "match",
                                        "trigger", "action",  "duration", NULL};

static const char *const scope_names[] = {"binding_domain", "domain", "binding"};

/* sl_rule_scope_name - the scope's word */
const char *sl_rule_scope_name(enum sl_rule_scope s)
{
    return (unsigned)s < sizeof scope_names / sizeof scope_names[0] ? scope_names[s] : "?";
}

/* compile - a regex (caseless), or NULL with the error reported */
static void *compile(struct loader *L, const char *what, const char *re, size_t len)
{
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE offset;
    int code;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, len, PCRE2_CASELESS, &code, &offset, NULL);

    if (c != NULL)
        return c;
    pcre2_get_error_message(code, msg, sizeof msg);
    sl_config_report(L, L->lineno, "bad %s regex: %s at offset %zu", what, (const char *)msg,
                     (size_t)offset);
    return NULL;
}

/* sl_rules_header - "[shaping "NAME"]": a new rule (or its error); false for other headers */
bool sl_rules_header(struct loader *L, const char *line)
{
    const char *p = line + 1 + strspn(line + 1, " \t"), *q;
    struct sl_config *cfg = L->cfg;
    struct sl_rule *r;
    size_t n;

    if (strncasecmp(p, "shaping", 7) != 0 || (p[7] != ' ' && p[7] != '\t' && p[7] != '"'))
        return false;
    L->in_rule = true;
    L->rule = NULL;
    p += 7 + strspn(p + 7, " \t");
    if (*p != '"' || (q = strchr(p + 1, '"')) == NULL || q == p + 1 ||
        q[1 + strspn(q + 1, " \t")] != ']') {
        sl_config_report(L, L->lineno,
                         "malformed section header: a rule is written [shaping \"NAME\"]");
        return true;
    }
    n = (size_t)(q - p - 1);
    for (size_t i = 0; i < cfg->nrules; i++)
        if (strlen(cfg->rules[i].name) == n && strncasecmp(cfg->rules[i].name, p + 1, n) == 0) {
            sl_config_report(L, L->lineno, "duplicate [shaping \"%.*s\"] (first on line %u)",
                             (int)n, p + 1, cfg->rules[i].line);
            return true;
        }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)p[1 + i]) && p[1 + i] != '-' && p[1 + i] != '_' &&
            p[1 + i] != '.') {
            sl_config_report(L, L->lineno,
                             "bad rule name \"%.*s\": letters, digits, '-', '_' and '.' only",
                             (int)n, p + 1);
            return true;
        }
    if (cfg->nrules >= RULES_MAX) {
        sl_config_report(L, L->lineno, "more than %d [shaping] rules", RULES_MAX);
        return true;
    }
    cfg->rules = sl_realloc(cfg->rules, (cfg->nrules + 1) * sizeof *cfg->rules);
    r = &cfg->rules[cfg->nrules++];
    *r =
        (struct sl_rule){.name = sl_malloc(n + 1), .line = L->lineno, .trigger_n = 1, .action = -1};
    memcpy(r->name, p + 1, n);
    r->name[n] = '\0';
    L->rule = r;
    return true;
}

/* regex_value - "/re/" (or a bare pattern for match) into a compiled regex */
static bool regex_value(struct loader *L, const char *what, const char *v, bool bare_ok,
                        char **text, void **re)
{
    size_t n = strlen(v);

    if (n >= 3 && v[0] == '/' && v[n - 1] == '/')
        *re = compile(L, what, v + 1, n - 2);
    else if (bare_ok && n > 0)
        *re = compile(L, what, v, n);
    else
        return false;
    if (*re != NULL)
        *text = sl_strdup(v);
    return true;
}

/* trigger_value - "immediate" or "N/W" (W a duration: 60s, 1m, bare seconds) */
static bool trigger_value(struct sl_rule *r, const char *v)
{
    const struct sl_optdef *dur = sl_opt_def(SL_OPT_RETRY_INTERVAL);
    struct sl_value w;
    char *end;
    unsigned long n;

    if (strcasecmp(v, "immediate") == 0) {
        r->trigger_n = 1;
        r->trigger_ms = 0;
        return true;
    }
    n = strtoul(v, &end, 10);
    if (end == v || *end != '/' || n < 1 || n > 1000 ||
        !sl_value_parse(dur, end + 1, &w, NULL, 0) || w.num < 1 || w.num > 7LL * 86400000)
        return false;
    r->trigger_n = (uint32_t)n;
    r->trigger_ms = (uint32_t)w.num;
    return true;
}

/* action_value - "suspend", "max_outbound_connections = N", "outbound_throttle_messages = R" */
static bool action_value(struct sl_rule *r, const char *v)
{
    char word[64];
    size_t n = strcspn(v, " \t=");
    const char *arg;
    char *end;

    if (n == 0 || n >= sizeof word)
        return false;
    memcpy(word, v, n);
    word[n] = '\0';
    arg = v + n + strspn(v + n, " \t");
    if (strcasecmp(word, "suspend") == 0 && *arg == '\0') {
        r->action = SL_RULE_SUSPEND;
        return true;
    }
    if (*arg != '=')
        return false;
    arg += 1 + strspn(arg + 1, " \t");
    if (strcasecmp(word, "max_outbound_connections") == 0) {
        long x = strtol(arg, &end, 10);
        if (end == arg || *end != '\0' || x < 0 || x > 100000)
            return false;
        r->action = SL_RULE_MAX_CONNECTIONS;
        r->value = x;
        return true;
    }
    if (strcasecmp(word, "outbound_throttle_messages") == 0) {
        char err[200];
        if (!sl_rate_parse(arg, &r->value, err, sizeof err) || r->value < 0)
            return false;
        r->action = SL_RULE_THROTTLE_MESSAGES;
        return true;
    }
    return false;
}

/* key_of - the key's index, K_OTHER for the ones not tracked for duplicates */
static enum key key_of(const char *key)
{
    for (int k = 0; key_names[k] != NULL; k++)
        if (strcasecmp(key, key_names[k]) == 0)
            return (enum key)k;
    return K_OTHER;
}

/* name_value - a domain or MX host name of a rule into *out: checked as a host name, and
 * one written in UTF-8 made its A-label (IDNA2008), the form the queue, DNS and the replies'
 * scopes use, as a section header does; false when it is neither */
static bool name_value(const char *v, char **out)
{
    const struct sl_optdef *host = sl_opt_def(SL_OPT_EHLO_HOSTNAME);
    char a[SL_IDNA_NAME_MAX];
    struct sl_value x;

    if (!sl_idna_ascii(v, strlen(v))) {
        if (!sl_idna_alabel(v, strlen(v), a, sizeof a))
            return false;
        v = a;
    }
    *out = sl_strdup(v);
    return sl_value_parse(host, v, &x, NULL, 0);
}

/* store_one - one key of rule r; false when the value is bad (reported by the caller) */
static bool store_one(struct loader *L, struct sl_rule *r, const char *key, const char *v,
                      const char **expected)
{
    const struct sl_optdef *dur = sl_opt_def(SL_OPT_RETRY_INTERVAL);
    struct sl_value x;

    switch (key_of(key)) {
    case K_DOMAIN:
        *expected = "a domain name or /regex/";
        if (v[0] == '/')
            return regex_value(L, "domain", v, false, &r->domain, &r->domain_re);
        return name_value(v, &r->domain);
    case K_BINDING:
        *expected = "a binding name";
        r->binding = sl_strdup(v);
        return true; /* checked against the bindings once the file is read */
    case K_HOST:
        *expected = "an MX host name";
        return name_value(v, &r->host);
    case K_MATCH:
        *expected = "a regex on the reply text, e.g. /TSS04/";
        return regex_value(L, "match", v, true, &r->match, &r->match_re);
    case K_TRIGGER:
        *expected = "immediate or N/WINDOW (e.g. 5/60s)";
        return trigger_value(r, v);
    case K_ACTION:
        *expected = "suspend, max_outbound_connections = N or outbound_throttle_messages = N/S";
        return action_value(r, v);
    case K_DURATION:
        *expected = "a duration (30m, 1h, 2d)";
        if (!sl_value_parse(dur, v, &x, NULL, 0) || x.num < 1000)
            return false;
        r->duration_ms = x.num;
        return true;
    default:
        break;
    }
    if (strcasecmp(key, "match_local") == 0) {
        *expected = "yes or no";
        if (!sl_value_parse(sl_opt_def(SL_OPT_MTA_STS), v, &x, NULL, 0))
            return false;
        r->match_local = x.num != 0;
        return true;
    }
    if (strcasecmp(key, "scope") == 0) {
        *expected = "binding_domain, domain or binding";
        for (size_t i = 0; i < sizeof scope_names / sizeof scope_names[0]; i++)
            if (strcasecmp(v, scope_names[i]) == 0) {
                r->scope = (enum sl_rule_scope)i;
                return true;
            }
        return false;
    }
    sl_config_report(L, L->lineno,
                     "unknown key \"%s\" in a [shaping] rule (domain, binding, host, match, "
                     "match_local, trigger, action, duration, scope)",
                     key);
    *expected = NULL;
    return false;
}

/* sl_rules_store - one key = value of the current rule */
void sl_rules_store(struct loader *L, const char *key, const char *value)
{
    struct sl_rule *r = L->rule, scratch = {0};
    const char *expected = NULL;
    size_t n = strlen(value);
    char *v = sl_strdup(n >= 2 && value[0] == '"' && value[n - 1] == '"' ? value + 1 : value);
    enum key k = key_of(key);

    if (n >= 2 && value[0] == '"' && value[n - 1] == '"')
        v[n - 2] = '\0';
    if (r == NULL) /* under a bad header: check the value all the same */
        r = &scratch;
    if (k != K_OTHER && r->set_line[k] != 0) {
        sl_config_report(L, L->lineno, "duplicate %s in [shaping \"%s\"] (first set on line %u)",
                         key_names[k], r->name, r->set_line[k]);
    } else {
        if (k != K_OTHER) /* written, good or bad: a bad one is reported once, below */
            r->set_line[k] = L->lineno;
        if (!store_one(L, r, key, v, &expected) && expected != NULL)
            sl_config_report(L, L->lineno, "bad value \"%s\" for %s: expected %s", v, key,
                             expected);
    }
    if (r == &scratch) {
        free(scratch.name);
        free(scratch.binding);
        free(scratch.host);
        free(scratch.domain);
        free(scratch.match);
        pcre2_code_free(scratch.domain_re);
        pcre2_code_free(scratch.match_re);
    }
    free(v);
}

/* sl_rules_check - every rule complete, its binding known */
void sl_rules_check(struct loader *L)
{
    for (size_t i = 0; i < L->cfg->nrules; i++) {
        const struct sl_rule *r = &L->cfg->rules[i];
        if (r->match_re == NULL && r->set_line[K_MATCH] == 0)
            sl_config_report(L, r->line, "[shaping \"%s\"] has no match", r->name);
        if (r->action < 0 && r->set_line[K_ACTION] == 0)
            sl_config_report(L, r->line, "[shaping \"%s\"] has no action", r->name);
        if (r->duration_ms == 0 && r->set_line[K_DURATION] == 0)
            sl_config_report(L, r->line, "[shaping \"%s\"] has no duration", r->name);
        if (r->binding != NULL && sl_config_binding(L->cfg, r->binding) == NULL)
            sl_config_report(L, r->set_line[K_BINDING], "[shaping \"%s\"]: unknown binding \"%s\"",
                             r->name, r->binding);
        if (r->scope == SL_RULE_BINDING && r->action == SL_RULE_MAX_CONNECTIONS)
            sl_config_report(L, r->line,
                             "[shaping \"%s\"]: max_outbound_connections counts per binding and "
                             "domain: use scope = binding_domain or domain",
                             r->name);
    }
}

/* sl_rules_free - the rules of cfg */
void sl_rules_free(struct sl_config *cfg)
{
    for (size_t i = 0; i < cfg->nrules; i++) {
        struct sl_rule *r = &cfg->rules[i];
        free(r->name);
        free(r->binding);
        free(r->host);
        free(r->domain);
        free(r->match);
        pcre2_code_free(r->domain_re);
        pcre2_code_free(r->match_re);
    }
    free(cfg->rules);
    cfg->rules = NULL;
    cfg->nrules = 0;
}

/* matches - a compiled regex against text */
static bool matches(void *re, const char *text)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int rc;

    if (md == NULL)
        sl_msg_fatal("out of memory matching a shaping rule");
    rc = pcre2_match(re, (PCRE2_SPTR)text, strlen(text), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

/* same_name - a rule's name against an asked one, a final dot ignored */
static bool same_name(const char *mine, const char *asked)
{
    size_t n = strlen(asked);

    if (n > 1 && asked[n - 1] == '.')
        n--;
    return strlen(mine) == n && strncasecmp(mine, asked, n) == 0;
}

/* sl_rule_matches - does r match p */
bool sl_rule_matches(const struct sl_rule *r, const struct sl_rule_reply *p)
{
    if (p->local && !r->match_local)
        return false;
    if (r->binding != NULL && (p->binding == NULL || strcasecmp(r->binding, p->binding) != 0))
        return false;
    if (r->host != NULL && (p->host == NULL || !same_name(r->host, p->host)))
        return false;
    if (r->domain != NULL &&
        (p->domain == NULL || (r->domain_re != NULL ? !matches(r->domain_re, p->domain)
                                                    : !same_name(r->domain, p->domain))))
        return false;
    return r->match_re != NULL && matches(r->match_re, p->text);
}

/* sl_rule_action_text - the action as written */
void sl_rule_action_text(const struct sl_rule *r, char *buf, size_t len)
{
    char rate[32];

    if (r->action == SL_RULE_MAX_CONNECTIONS) {
        snprintf(buf, len, "max_outbound_connections = %lld", (long long)r->value);
    } else if (r->action == SL_RULE_THROTTLE_MESSAGES) {
        sl_rate_format(r->value, rate, sizeof rate);
        snprintf(buf, len, "outbound_throttle_messages = %s", rate);
    } else {
        snprintf(buf, len, "suspend");
    }
}
