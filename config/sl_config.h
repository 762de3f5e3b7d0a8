/*
 * sl_config.h - the INI configuration: options, scopes, validation, resolution.
 *
 * The master owns the configuration; sluicectl loads the same file with the
 * same code for `config check` and `config eval`.  A loaded sl_config is
 * immutable: a reload builds a new one and the old one is freed whole.
 *
 * Resolution (semantics.md):
 *   general chain  [binding B domain D] > [binding_group G domain D] > [binding B]
 *                  > [binding_group G] > [domain D] > [global] > default;
 *                  within one level a literal domain beats a regex, and regexes
 *                  are tried in file order (the first that matches and sets the
 *                  option wins).
 *   host chain     [binding B host H] > [binding_group G host H] > [host H] > unset
 *                  (max_outbound_connections unset there is -1).
 *   cluster chain  [binding B host H] > [host H] > [binding B domain D] > [binding B]
 *                  > [domain D] > [global] > -1.
 *   global-only    [global] > default (engine settings).
 *
 * Trust boundary: the file is operator input; every error is reported as
 * FILE:LINE: message, and a file with any error is refused whole.
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Config scopes: the kinds of section. */
enum sl_scope {
    SL_SC_GLOBAL = 0,
    SL_SC_BINDING_GROUP,
    SL_SC_BINDING,
    SL_SC_DOMAIN,
    SL_SC_HOST,
    SL_SC_BINDING_DOMAIN,
    SL_SC_GROUP_DOMAIN,
    SL_SC_BINDING_HOST,
    SL_SC_GROUP_HOST,
    SL_SC__COUNT
};

/* Every option.  The INI key is the lower-case name (see sl_opt_name). */
enum sl_opt {
    /* connection limits */
    SL_OPT_MAX_OUTBOUND_CONNECTIONS,
    SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS,
    SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS,
    SL_OPT_SERVER_RESERVE_OUTBOUND_CONNECTIONS,
    SL_OPT_CLUSTER_MAX_OUTBOUND_CONNECTIONS,
    SL_OPT_CLUSTER_SCOPE_MAX_OUTBOUND_CONNECTIONS,
    SL_OPT_CLUSTER_SERVER_MAX_OUTBOUND_CONNECTIONS,
    /* per-connection limits */
    SL_OPT_MAX_DELIVERIES_PER_CONNECTION,
    SL_OPT_MAX_RECIPIENTS_PER_CONNECTION,
    SL_OPT_MAX_RECIPIENTS_PER_BATCH,
    /* rate throttles (config/sl_throttle.h) */
    SL_OPT_OUTBOUND_THROTTLE_CONNECTIONS,
    SL_OPT_OUTBOUND_THROTTLE_MESSAGES,
    /* MX and address limits */
    SL_OPT_MX_LIMIT,
    SL_OPT_MULTIHOMED_LIMIT,
    /* per-phase timeouts */
    SL_OPT_CONNECT_TIMEOUT,
    SL_OPT_GREETING_TIMEOUT,
    SL_OPT_TLS_TIMEOUT,
    SL_OPT_EHLO_TIMEOUT,
    SL_OPT_MAIL_FROM_TIMEOUT,
    SL_OPT_RCPT_TO_TIMEOUT,
    SL_OPT_DATA_TIMEOUT,
    SL_OPT_RSET_TIMEOUT,
    SL_OPT_IDLE_TIMEOUT,
    SL_OPT_MTA_STS_TIMEOUT,
    /* retry and expiry */
    SL_OPT_RETRY_INTERVAL,
    SL_OPT_MAX_RETRY_INTERVAL,
    SL_OPT_MESSAGE_EXPIRATION,
    SL_OPT_MAX_RETRIES,
    /* binding identity */
    SL_OPT_BINDING_GROUP,
    SL_OPT_BIND_ADDRESS,
    SL_OPT_EHLO_HOSTNAME,
    /* routing and TLS */
    SL_OPT_SMTP_PORT,
    SL_OPT_ROUTE,
    SL_OPT_TLS,
    SL_OPT_TLS_CA_FILE,
    SL_OPT_DANE,
    SL_OPT_MTA_STS,
    SL_OPT_CHUNKING,
    SL_OPT_MTA_STS_PORT,
    SL_OPT_MIGRATE_SIBLINGS,
    /* engine (global only) */
    SL_OPT_WORKERS,
    SL_OPT_SPOOL_DIR,
    SL_OPT_SHM_NAME,
    SL_OPT_SHM_CAPACITY,
    SL_OPT_AUDIT_INTERVAL,
    SL_OPT_DNS_SERVER,
    SL_OPT_DELIVERY_LOG,
    SL_OPT_LOG_LEVEL,
    SL_OPT_USER,
    SL_OPT_MAX_MESSAGE_SIZE,
    SL_OPT_BOUNCE_SIZE_LIMIT,
    /* cluster (global only): the Redis that holds the cluster counters' leases */
    SL_OPT_CLUSTER_REDIS,
    SL_OPT_CLUSTER_REDIS_PASSWORD_FILE,
    SL_OPT_CLUSTER_NODE,
    SL_OPT_CLUSTER_LEASE_TTL,
    SL_OPT_CLUSTER_ON_FAILURE,
    SL_OPT__COUNT
};

/* How a value is written and stored. */
enum sl_vtype {
    SL_VT_LIMIT,    /* -1 (no limit), 0 (paused), N */
    SL_VT_COUNT,    /* a whole number within the option's [min, max] */
    SL_VT_DURATION, /* 30s, 3m, 1h, 2d, 500ms, bare seconds; stored in ms */
    SL_VT_BOOL,     /* true/false, yes/no, on/off, 1/0 */
    SL_VT_ENUM,     /* one of the option's words; stored as its index */
    SL_VT_RETRIES,  /* auto (-1) | none (0) | N */
    SL_VT_STRING,   /* free text (no control characters) */
    SL_VT_IP,       /* an IPv4 or IPv6 address */
    SL_VT_HOSTPORT, /* host or IP, optional :port ([v6]:port) */
    SL_VT_PATH,     /* an absolute path */
    SL_VT_NAME,     /* a binding group name */
    SL_VT_RATE,     /* N (per second) | N/S | -1 (none); packed (sl_throttle.h) */
};

enum sl_chain { SL_CHAIN_GENERAL, SL_CHAIN_HOST, SL_CHAIN_CLUSTER, SL_CHAIN_GLOBAL };

enum sl_cluster_failure { SL_CLUSTER_CLOSED, SL_CLUSTER_SHARE };

enum sl_tls_mode { SL_TLS_DISABLED, SL_TLS_OPPORTUNISTIC, SL_TLS_REQUIRED, SL_TLS_VERIFY };

/* What the option table says of one option. */
struct sl_optdef {
    const char *name;  /* INI key, lower case */
    const char *alias; /* an accepted other name, or NULL */
    enum sl_vtype type;
    enum sl_chain chain;
    unsigned scopes;          /* bit (1u << enum sl_scope) for each valid scope */
    const char *def;          /* the built-in default, as it would be written; NULL: unset */
    int64_t min, max;         /* SL_VT_COUNT bounds */
    const char *const *words; /* SL_VT_ENUM: NULL-terminated */
    const char *help;         /* one line, for the sample config and the manual */
};

const struct sl_optdef *sl_opt_def(enum sl_opt opt);
const char *sl_opt_name(enum sl_opt opt);
/* Momentum's display form: Max_Outbound_Connections. */
void sl_opt_display(enum sl_opt opt, char *buf, size_t len);
/* The option for a key (case-insensitive, aliases too), or -1. */
int sl_opt_lookup(const char *key);
const char *sl_scope_name(enum sl_scope sc);

/* One stored value. */
struct sl_value {
    bool set;
    int64_t num; /* LIMIT, COUNT, DURATION (ms), BOOL, ENUM index, RETRIES, SMTP_PORT */
    char *str;   /* STRING, IP, HOSTPORT, PATH, NAME: as written */
    unsigned line;
};

struct sl_section {
    enum sl_scope scope;
    char *binding;  /* BINDING, BINDING_DOMAIN, BINDING_HOST */
    char *group;    /* BINDING_GROUP, GROUP_DOMAIN, GROUP_HOST */
    char *domain;   /* DOMAIN, *_DOMAIN: a name (lower case) or /regex/ as written */
    char *host;     /* HOST, *_HOST (lower case) */
    void *regex;    /* pcre2_code * when domain is /regex/, else NULL */
    unsigned line;  /* of the section header (0 for the implicit [global]) */
    unsigned index; /* file order */
    struct sl_value v[SL_OPT__COUNT];
};

struct sl_binding {
    char *name;
    const char *group;          /* NULL when in no group */
    struct sl_section *section; /* NULL for the implicit "default" */
};

struct sl_config {
    char *path;
    struct sl_section **sections; /* file order; sections[0] is [global] */
    size_t nsections;
    struct sl_binding *bindings; /* "default" is always present */
    size_t nbindings;
    char **groups;
    size_t ngroups;
    /* Per option, the sections that set it, in file order (the cluster limits walk those
     * alone, not every section: a config with a stanza per domain has thousands).  NULL until
     * the file is fully loaded. */
    struct sl_setters {
        struct sl_section **s;
        size_t n;
    } * setters;
    /* The literal [domain "NAME"] sections by name, and per option the other setters
     * (config/domain_index.c): a domain's own stanza found among thousands in one probe.  NULL
     * with setters. */
    struct sl_domain_index *domains;
    struct sl_rule *rules; /* [shaping "NAME"] sections, file order (config/sl_rules.h) */
    size_t nrules;
    struct sl_listener *listeners; /* the [listener "NAME"] sections (config/sl_listener.h) */
    size_t nlisteners;
};

/* Diagnostics collected while loading: "FILE:LINE: message" each. */
struct sl_diag {
    char **lines;
    size_t n;
};
void sl_diag_free(struct sl_diag *d);

/* Load and validate `path`.  Returns the config, or NULL with every error
 * appended to d (d->n > 0; start from a zeroed d), sorted by line.  An
 * unreadable file gives "FILE: cannot read: reason". */
struct sl_config *sl_config_load(const char *path, struct sl_diag *d);
/* The same from a string (the embedded default, tests); `name` plays FILE. */
struct sl_config *sl_config_load_string(const char *name, const char *text, struct sl_diag *d);
void sl_config_free(struct sl_config *cfg);

/* Where a resolution looks. */
struct sl_scope_ref {
    const char *binding; /* NULL: none */
    const char *group;   /* NULL: the binding's own group, if any */
    const char *domain;  /* NULL: none */
    const char *host;    /* NULL: none */
};

/* Resolve opt for ref along its chain.  *from is the section that supplied the
 * value, NULL for the built-in default (or unset).  Returns false with a reason
 * in err when ref names an unknown binding or group. */
bool sl_config_eval(const struct sl_config *cfg, enum sl_opt opt, const struct sl_scope_ref *ref,
                    struct sl_value *out, const struct sl_section **from, char *err, size_t errlen);
/* Shorthands for code that knows ref is valid (an invalid one is a panic): the
 * number (-1 when unset) / the string (NULL when unset; owned by cfg or constant). */
int64_t sl_config_num(const struct sl_config *cfg, enum sl_opt opt, const struct sl_scope_ref *ref);
const char *sl_config_str(const struct sl_config *cfg, enum sl_opt opt,
                          const struct sl_scope_ref *ref);
/* Does a section's domain (a literal name, or a compiled /regex/) cover domain?
 * A final dot on domain is ignored.  False for a section without a domain. */
bool sl_section_matches_domain(const struct sl_section *s, const char *domain);
/* The binding so named, or NULL. */
const struct sl_binding *sl_config_binding(const struct sl_config *cfg, const char *name);

/* The first line of a password file (cluster_redis_password_file): a regular file of at most
 * 512 bytes; false with the reason in err (config/cluster_limits.c). */
bool sl_config_read_password(const char *path, char *out, size_t outlen, char *err, size_t errlen);

/* Parse the text of one value (blanks and surrounding quotes already stripped)
 * as def says: fills out->num (out->str stays NULL: the caller keeps the text
 * of string types); on failure says in err what was expected.  HOSTPORT's num
 * is the port, 0 when none is given. */
bool sl_value_parse(const struct sl_optdef *def, const char *text, struct sl_value *out, char *err,
                    size_t errlen);
/* Render a value as an operator would write it (durations in the largest exact
 * unit: 180000 ms -> "3m"; limits as numbers; unset as "unset"). */
void sl_value_format(enum sl_opt opt, const struct sl_value *v, char *buf, size_t len);
/* The header of a section alone: [binding "example" domain "example.com"]. */
void sl_section_name(const struct sl_section *s, char *buf, size_t len);
/* Describe a section: [binding "example" domain "example.com"] (FILE:LINE). */
void sl_section_describe(const struct sl_config *cfg, const struct sl_section *s, char *buf,
                         size_t len);

#endif
