/*
 * config_impl.h - what the files of the configuration share, private to
 * config/config_*.c.
 *
 * config_load.c owns the loader: the reader's position, the errors collected
 * and the config being built.  config_header.c turns one `[...]` header line
 * into a struct header for it and reports through the loader.  Two lookups
 * that the loader and the evaluator both need (a group by name, the text
 * value types) are defined once, in config_eval.c and config_value.c.
 * Concurrency: a loader belongs to one call of sl_config_load; no global state.
 * Trust boundary: a loader holds operator input (the file) until it is checked.
 */
#ifndef SL_CONFIG_IMPL_H
#define SL_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "config/sl_config.h"

#define SCOPE(s) (1u << (s)) /* the bit of a scope in sl_optdef.scopes */

struct diag; /* one collected error: config_load.c */

/* One load in progress. */
struct loader {
    const char *name; /* FILE in every diagnostic */
    const char *buf;  /* the whole input */
    size_t len, pos;
    unsigned lineno;
    struct sl_config *cfg;
    struct sl_section *cur;  /* where keys go; NULL after a bad header */
    struct sl_rule *rule;    /* the [shaping] rule keys go to instead (config/rules.c) */
    bool in_rule;            /* under a [shaping] header (a bad one leaves rule NULL) */
    struct sl_listener *lis; /* under a [listener] header: its keys go there (listener.c) */
    struct diag *diags;
    size_t ndiags;
};

/* A parsed section header: the names it gives, each lower-cased but a regex. */
struct header {
    enum sl_scope scope;
    char *binding, *group, *domain, *host;
};

/* Collect one error at a line (0: about the whole file): config_load.c. */
__attribute__((format(printf, 3, 4))) void sl_config_report(struct loader *L, unsigned line,
                                                            const char *fmt, ...);

/* Read the header at line (masking it in place for inih) into h, which then
 * owns its names; false with the error reported: config_header.c. */
bool sl_config_parse_header(struct loader *L, char *line, struct header *h);
/* The pcre2_code of a /regex/ domain name, or NULL with the error reported. */
void *sl_config_compile_domain(struct loader *L, const char *domain);

/* config/rules.c: a "[shaping ...]" header line? Then it is taken (a rule begun, or the error
 * reported) and true; the loader's keys go to sl_rules_store until the next header. */
bool sl_rules_header(struct loader *L, const char *line);
void sl_rules_store(struct loader *L, const char *key, const char *value);
/* Once the file is read: every rule complete (match, action, duration), errors reported. */
void sl_rules_check(struct loader *L);
void sl_rules_free(struct sl_config *cfg);

/* The declared binding_group so named (case-insensitive), or NULL: config_eval.c. */
const char *sl_config_group(const struct sl_config *cfg, const char *name);
/* The sections that set opt, in file order: the loader's index once the file is loaded (a
 * config with a stanza per domain has thousands of sections, and the limits ask per
 * connection), else every section: config_load.c. */
struct sl_section *const *sl_config_setters(const struct sl_config *cfg, enum sl_opt opt,
                                            size_t *n);
/* The value types whose text is kept as written (sl_value.str): config_value.c. */
bool sl_value_is_text(enum sl_vtype t);
/* The cluster options make sense together (cluster_redis, its password file, the node name,
 * the lease's life): config/cluster_limits.c. */
void sl_config_check_cluster(struct loader *L);

/* The [listener "NAME"] sections: listener.c and listener_check.c. */
bool sl_config_is_listener_header(const char *line);
struct sl_listener *sl_config_listener_header(struct loader *L, const char *line);
void sl_config_listener_store(struct loader *L, struct sl_listener *l, const char *key,
                              const char *value);
void sl_config_listeners_check(struct loader *L);
void sl_config_listeners_free(struct sl_config *cfg);

/* config/domain_index.c: the literal [domain] sections by name (see struct sl_config). */
struct sl_domain_index *sl_domain_index_build(const struct sl_config *cfg);
void sl_domain_index_free(struct sl_domain_index *x);
/* The first literal [domain] section of domain (final dot ignored) that sets opt; NULL: none. */
const struct sl_section *sl_domain_index_find(const struct sl_domain_index *x, enum sl_opt opt,
                                              const char *domain);
/* The first literal [domain] section of domain (final dot ignored); NULL: none. */
const struct sl_section *sl_domain_index_named(const struct sl_domain_index *x, const char *domain);
/* The sections of scope sc other than literal [domain] ones, file order; *n of them. */
struct sl_section *const *sl_domain_index_scope(const struct sl_domain_index *x, enum sl_scope sc,
                                                size_t *n);
/* The sections that set opt other than literal [domain] ones, file order; *n of them. */
struct sl_section *const *sl_domain_index_rest(const struct sl_domain_index *x, enum sl_opt opt,
                                               size_t *n);

#endif
