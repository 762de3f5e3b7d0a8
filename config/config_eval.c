/*
 * config_eval.c - resolve an option for a binding, group, domain and host.
 *
 * Each option follows one chain of sl_config.h: general, host, cluster or
 * global-only.  A general option that is also valid in host sections (the
 * connection limits) follows the host chain when a host is asked for, and then
 * never falls back into the general chain: an unset host
 * max_outbound_connections is -1 (seed 000).  Within one level a literal
 * domain section is tried first, then the regex sections in file order; the
 * first that matches and sets the option wins.  Names compare
 * case-insensitively and a final dot on the asked domain or host is ignored.
 * Concurrency: the config is immutable once loaded; any number of readers.
 * Trust boundary: the names asked for may come from outside (recipient
 * domains, MX names): they are only compared and matched, never stored.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "config/sl_config.h"
#include "config/sl_config_lint.h"
#include "util/sl_msg.h"
#include "config_impl.h"

#define SC_HOSTS (SCOPE(SL_SC_HOST) | SCOPE(SL_SC_BINDING_HOST) | SCOPE(SL_SC_GROUP_HOST))

/* The levels of each chain, most specific first (semantics.md). */
static const enum sl_scope general_chain[] = {SL_SC_BINDING_DOMAIN, SL_SC_GROUP_DOMAIN,
                                              SL_SC_BINDING,        SL_SC_BINDING_GROUP,
                                              SL_SC_DOMAIN,         SL_SC_GLOBAL};
static const enum sl_scope host_chain[] = {SL_SC_BINDING_HOST, SL_SC_GROUP_HOST, SL_SC_HOST};
static const enum sl_scope cluster_chain[] = {SL_SC_BINDING_HOST,   SL_SC_HOST,
                                              SL_SC_BINDING_DOMAIN, SL_SC_BINDING,
                                              SL_SC_DOMAIN,         SL_SC_GLOBAL};
static const enum sl_scope global_chain[] = {SL_SC_GLOBAL};

static const struct {
    const enum sl_scope *levels;
    size_t n;
} chains[] = {
    [SL_CHAIN_GENERAL] = {general_chain, sizeof general_chain / sizeof general_chain[0]},
    [SL_CHAIN_HOST] = {host_chain, sizeof host_chain / sizeof host_chain[0]},
    [SL_CHAIN_CLUSTER] = {cluster_chain, sizeof cluster_chain / sizeof cluster_chain[0]},
    [SL_CHAIN_GLOBAL] = {global_chain, sizeof global_chain / sizeof global_chain[0]},
};

/* What one resolution looks for, checked and completed from the config. */
struct want {
    const char *binding, *group, *domain, *host;
};

/* name_len - the length of an asked name without its final dot */
static size_t name_len(const char *s)
{
    size_t n = strlen(s);
    return n > 1 && s[n - 1] == '.' ? n - 1 : n;
}

/* name_eq - a section's (lower-case) name against an asked one */
static bool name_eq(const char *mine, const char *asked)
{
    size_t n = name_len(asked);
    return strlen(mine) == n && strncasecmp(mine, asked, n) == 0;
}

/* regex_matches - a /regex/ domain section against an asked domain */
static bool regex_matches(const struct sl_section *s, const char *domain)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int rc;

    if (md == NULL)
        sl_msg_fatal("out of memory matching %s", s->domain);
    rc = pcre2_match(s->regex, (PCRE2_SPTR)domain, name_len(domain), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
        sl_msg_warn("domain %s: regex %s failed with PCRE2 error %d", domain, s->domain, rc);
    return rc >= 0;
}

/* sl_section_matches_domain - does a section's domain (a name or /regex/) cover domain */
bool sl_section_matches_domain(const struct sl_section *s, const char *domain)
{
    if (s->domain == NULL || domain == NULL)
        return false;
    return s->regex != NULL ? regex_matches(s, domain) : name_eq(s->domain, domain);
}

/* applies - the section is of this level and names what is wanted (regex or literal pass) */
static bool applies(const struct sl_section *s, enum sl_scope sc, const struct want *w,
                    bool regex_pass)
{
    if (s->scope != sc || (s->regex != NULL) != regex_pass)
        return false;
    if (s->binding != NULL && (w->binding == NULL || strcasecmp(s->binding, w->binding) != 0))
        return false;
    if (s->group != NULL && (w->group == NULL || strcasecmp(s->group, w->group) != 0))
        return false;
    if (s->host != NULL && (w->host == NULL || !name_eq(s->host, w->host)))
        return false;
    if (s->domain == NULL)
        return true;
    if (w->domain == NULL)
        return false;
    return sl_section_matches_domain(s, w->domain);
}

/* level - the section of one level that sets opt: literal first, then regexes in file order;
 * once the config is indexed (loaded whole), a literal [domain] section is found by its name
 * and only the other sections that set opt are walked; before, during validation, all are */
static const struct sl_section *level(const struct sl_config *cfg, enum sl_opt opt,
                                      enum sl_scope sc, const struct want *w)
{
    struct sl_section *const *list = cfg->sections;
    size_t n = cfg->nsections;

    if (cfg->domains != NULL) {
        const struct sl_section *s;
        if (sc == SL_SC_DOMAIN && w->domain != NULL &&
            (s = sl_domain_index_find(cfg->domains, opt, w->domain)) != NULL)
            return s;
        list = sl_domain_index_rest(cfg->domains, opt, &n);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            const struct sl_section *s = list[i];
            if (s->v[opt].set && applies(s, sc, w, pass == 1))
                return s;
        }
    }
    return NULL;
}

/* builtin - the value when no section sets the option */
static void builtin(enum sl_opt opt, enum sl_chain chain, struct sl_value *out)
{
    const struct sl_optdef *def = sl_opt_def(opt);

    *out = (struct sl_value){0};
    if (chain == SL_CHAIN_HOST) {
        /* A host section never inherits: its connection limit is "none". */
        if (opt == SL_OPT_MAX_OUTBOUND_CONNECTIONS)
            *out = (struct sl_value){.set = true, .num = -1};
        return;
    }
    if (def->def == NULL)
        return;
    if (!sl_value_parse(def, def->def, out, NULL, 0))
        sl_msg_panic("the built-in default of %s (%s) does not parse", def->name, def->def);
    if (sl_value_is_text(def->type))
        out->str = (char *)def->def; /* borrowed: constant, never freed */
}

/* complete - check the binding and group asked for; the group defaults to the binding's */
static bool complete(const struct sl_config *cfg, const struct sl_scope_ref *ref, struct want *w,
                     char *err, size_t errlen)
{
    const struct sl_binding *b = NULL;

    *w = (struct want){ref->binding, ref->group, ref->domain, ref->host};
    if (ref->binding != NULL && (b = sl_config_binding(cfg, ref->binding)) == NULL) {
        snprintf(err, errlen, "unknown binding \"%s\"", ref->binding);
        return false;
    }
    if (ref->group == NULL) {
        w->group = b != NULL ? b->group : NULL;
        return true;
    }
    if (sl_config_group(cfg, ref->group) == NULL) {
        snprintf(err, errlen, "unknown binding_group \"%s\"", ref->group);
        return false;
    }
    if (b != NULL && (b->group == NULL || strcasecmp(b->group, ref->group) != 0)) {
        snprintf(err, errlen, "binding \"%s\" is %s%s%s, not in binding_group \"%s\"", b->name,
                 b->group ? "in binding_group \"" : "in no binding_group", b->group ? b->group : "",
                 b->group ? "\"" : "", ref->group);
        return false;
    }
    return true;
}

/* sl_config_eval - resolve opt for ref along its chain; *from is the section that set it */
bool sl_config_eval(const struct sl_config *cfg, enum sl_opt opt, const struct sl_scope_ref *ref,
                    struct sl_value *out, const struct sl_section **from, char *err, size_t errlen)
{
    static const struct sl_scope_ref none;
    const struct sl_optdef *def = sl_opt_def(opt);
    const struct sl_section *s = NULL;
    enum sl_chain chain;
    struct want w;

    if (from != NULL)
        *from = NULL;
    if (def == NULL) {
        snprintf(err, errlen, "unknown option %d", (int)opt);
        return false;
    }
    if (!complete(cfg, ref != NULL ? ref : &none, &w, err, errlen))
        return false;
    chain = def->chain;
    if (chain == SL_CHAIN_GENERAL && w.host != NULL && (def->scopes & SC_HOSTS))
        chain = SL_CHAIN_HOST;
    for (size_t i = 0; s == NULL && i < chains[chain].n; i++)
        s = level(cfg, opt, chains[chain].levels[i], &w);
    if (s == NULL)
        builtin(opt, chain, out);
    else
        *out = s->v[opt];
    if (from != NULL)
        *from = s;
    return true;
}

/* sl_config_chain - every section that sets opt for ref, in chain order (the first wins) */
int sl_config_chain(const struct sl_config *cfg, enum sl_opt opt, const struct sl_scope_ref *ref,
                    const struct sl_section **out, size_t max, char *err, size_t errlen)
{
    static const struct sl_scope_ref none;
    const struct sl_optdef *def = sl_opt_def(opt);
    enum sl_chain chain;
    struct want w;
    size_t n = 0;

    if (def == NULL || !complete(cfg, ref != NULL ? ref : &none, &w, err, errlen))
        return -1;
    chain = def->chain;
    if (chain == SL_CHAIN_GENERAL && w.host != NULL && (def->scopes & SC_HOSTS))
        chain = SL_CHAIN_HOST;
    for (size_t l = 0; l < chains[chain].n; l++)
        for (int pass = 0; pass < 2; pass++) /* literal, then regex, as level() tries them */
            for (size_t i = 0; i < cfg->nsections && n < max; i++) {
                const struct sl_section *s = cfg->sections[i];
                if (s->v[opt].set && applies(s, chains[chain].levels[l], &w, pass == 1))
                    out[n++] = s;
            }
    return (int)n;
}

/* sl_config_num - the number of opt for a ref known to be valid; -1 when unset */
int64_t sl_config_num(const struct sl_config *cfg, enum sl_opt opt, const struct sl_scope_ref *ref)
{
    struct sl_value v;
    char err[256];

    if (!sl_config_eval(cfg, opt, ref, &v, NULL, err, sizeof err))
        sl_msg_panic("config: %s: %s", sl_opt_name(opt), err);
    return v.set ? v.num : -1;
}

/* sl_config_str - the text of opt for a ref known to be valid; NULL when unset */
const char *sl_config_str(const struct sl_config *cfg, enum sl_opt opt,
                          const struct sl_scope_ref *ref)
{
    struct sl_value v;
    char err[256];

    if (!sl_config_eval(cfg, opt, ref, &v, NULL, err, sizeof err))
        sl_msg_panic("config: %s: %s", sl_opt_name(opt), err);
    return v.set ? v.str : NULL;
}

/* sl_config_binding - the binding so named (case-insensitive), or NULL */
const struct sl_binding *sl_config_binding(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nbindings; i++)
        if (strcasecmp(cfg->bindings[i].name, name) == 0)
            return &cfg->bindings[i];
    return NULL;
}

/* sl_config_group - the declared binding_group so named (case-insensitive), or NULL */
const char *sl_config_group(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ngroups; i++)
        if (strcasecmp(cfg->groups[i], name) == 0)
            return cfg->groups[i];
    return NULL;
}

/* escape - a name as the file writes it inside quotes (\" for a quote) */
static void escape(const char *name, char *out, size_t len)
{
    size_t n = 0;

    for (; *name != '\0' && n + 2 < len; name++) {
        if (*name == '"')
            out[n++] = '\\';
        out[n++] = *name;
    }
    out[n] = '\0';
}

/* sl_section_name - the header of a section: [binding "example" domain "example.com"] */
void sl_section_name(const struct sl_section *s, char *buf, size_t len)
{
    const char *k1 = s->binding ? "binding" : "binding_group",
               *n1 = s->binding ? s->binding : s->group;
    const char *k2 = s->domain ? "domain" : "host", *n2 = s->domain ? s->domain : s->host;
    char e1[512], e2[512];

    escape(n1 ? n1 : "", e1, sizeof e1);
    escape(n2 ? n2 : "", e2, sizeof e2);
    if (n1 != NULL && n2 != NULL)
        snprintf(buf, len, "[%s \"%s\" %s \"%s\"]", k1, e1, k2, e2);
    else if (n1 != NULL || n2 != NULL)
        snprintf(buf, len, "[%s \"%s\"]", n1 ? k1 : k2, n1 ? e1 : e2);
    else
        snprintf(buf, len, "[global]");
}

/* sl_section_describe - a section's header and where it is: [domain "d"] (FILE:LINE) */
void sl_section_describe(const struct sl_config *cfg, const struct sl_section *s, char *buf,
                         size_t len)
{
    char name[512];

    sl_section_name(s, name, sizeof name);
    if (s->line > 0)
        snprintf(buf, len, "%s (%s:%u)", name, cfg->path, s->line);
    else
        snprintf(buf, len, "%s (%s)", name, cfg->path);
}
