/*
 * config_options.c - the option table: every INI key, its type, chain, valid
 * scopes, built-in default, bounds and one line of help.
 *
 * The table is the single source of truth for what the configuration accepts
 * (semantics.md): the loader validates against it, the evaluator follows its
 * chains, `config eval` prints its display names.  An option whose chain is not
 * given is on the general chain; one whose default is NULL is unset by default.
 * Concurrency: constant data, safe in every process.
 * Trust boundary: none; keys from the file are matched against it case-insensitively.
 */
#include <ctype.h>
#include <stdint.h>
#include <strings.h>

#include "config/sl_config.h"

#define SC(s) (1u << (SL_SC_##s))
/* The general options: limits, timeouts, retry (semantics.md, "Scopes"). */
#define SC_GENERAL                                                                                 \
    (SC(GLOBAL) | SC(BINDING_GROUP) | SC(BINDING) | SC(DOMAIN) | SC(BINDING_DOMAIN) |              \
     SC(GROUP_DOMAIN))
#define SC_ALL     ((1u << SL_SC__COUNT) - 1u)
#define SC_DOMAINS (SC(DOMAIN) | SC(BINDING_DOMAIN) | SC(GROUP_DOMAIN))

/* One row, keyed by the enum so that the table cannot drift from it. */
#define OPT(id, key, ...) [SL_OPT_##id] = {.name = (key), __VA_ARGS__}
#define TIMEOUT(id, key, d, h)                                                                     \
    OPT(id, key, .type = SL_VT_DURATION, .scopes = SC_GENERAL, .def = (d), .help = (h))
#define ENGINE(id, key, t, d, h)                                                                   \
    OPT(id, key, .type = (t), .chain = SL_CHAIN_GLOBAL, .scopes = SC(GLOBAL), .def = (d),          \
        .help = (h))

static const char *const tls_words[] = {"disabled", "opportunistic", "required", "verify", NULL};
static const char *const failure_words[] = {"closed", "share", NULL};
static const char *const level_words[] = {"debug", "info", "warning", NULL};

static const struct sl_optdef defs[SL_OPT__COUNT] = {
    /* connection limits */
    OPT(MAX_OUTBOUND_CONNECTIONS, "max_outbound_connections", .type = SL_VT_LIMIT, .scopes = SC_ALL,
        .def = "32",
        .help = "connections per binding and destination domain (host section: per MX host)"),
    OPT(SCOPE_MAX_OUTBOUND_CONNECTIONS, "scope_max_outbound_connections", .type = SL_VT_LIMIT,
        .scopes = SC(GLOBAL) | SC(DOMAIN) | SC(HOST) | SC(BINDING_DOMAIN) | SC(GROUP_DOMAIN),
        .help = "connections to this domain or host across bindings"),
    OPT(SERVER_MAX_OUTBOUND_CONNECTIONS, "server_max_outbound_connections", .type = SL_VT_LIMIT,
        .scopes = SC(GLOBAL) | SC(BINDING_GROUP) | SC(BINDING), .def = "20000",
        .help = "connections of the whole server (in a binding: through that binding)"),
    OPT(SERVER_RESERVE_OUTBOUND_CONNECTIONS, "server_reserve_outbound_connections",
        .type = SL_VT_LIMIT, .chain = SL_CHAIN_GLOBAL, .scopes = SC(GLOBAL), .def = "200",
        .help = "connections above server_max kept for domains with none open"),
    OPT(CLUSTER_MAX_OUTBOUND_CONNECTIONS, "cluster_max_outbound_connections", .type = SL_VT_LIMIT,
        .chain = SL_CHAIN_CLUSTER,
        .scopes = SC(GLOBAL) | SC(BINDING) | SC(DOMAIN) | SC(HOST) | SC(BINDING_DOMAIN) |
                  SC(BINDING_HOST),
        .def = "-1", .help = "connections counted across every node of the cluster"),
    OPT(CLUSTER_SCOPE_MAX_OUTBOUND_CONNECTIONS, "cluster_scope_max_outbound_connections",
        .type = SL_VT_LIMIT, .scopes = SC(DOMAIN) | SC(GROUP_DOMAIN) | SC(HOST),
        .help = "connections to this domain or host across bindings, on every node"),
    OPT(CLUSTER_SERVER_MAX_OUTBOUND_CONNECTIONS, "cluster_server_max_outbound_connections",
        .type = SL_VT_LIMIT, .scopes = SC(GLOBAL) | SC(BINDING),
        .help = "connections of every node (in a binding: through it, on every node)"),
    /* per-connection limits */
    OPT(MAX_DELIVERIES_PER_CONNECTION, "max_deliveries_per_connection", .type = SL_VT_COUNT,
        .scopes = SC_GENERAL, .def = "0", .min = 0, .max = INT32_MAX,
        .help = "successful deliveries before QUIT (0: no limit)"),
    OPT(MAX_RECIPIENTS_PER_CONNECTION, "max_recipients_per_connection", .type = SL_VT_COUNT,
        .scopes = SC_GENERAL, .def = "0", .min = 0, .max = INT32_MAX,
        .help = "RCPT TO commands per connection (0: no limit)"),
    OPT(MAX_RECIPIENTS_PER_BATCH, "max_recipients_per_batch", .type = SL_VT_COUNT,
        .scopes = SC_GENERAL, .def = "100", .min = 1, .max = INT32_MAX,
        .help = "recipients per transaction"),
    /* rate throttles: one bucket per defining stanza (config/throttle.c) */
    OPT(OUTBOUND_THROTTLE_CONNECTIONS, "outbound_throttle_connections", .type = SL_VT_RATE,
        .scopes = SC_ALL, .help = "new connections: N per second or N/S (N per S seconds)"),
    OPT(OUTBOUND_THROTTLE_MESSAGES, "outbound_throttle_messages", .type = SL_VT_RATE,
        .scopes = SC_ALL, .help = "messages sent: N per second or N/S (N per S seconds)"),
    /* MX and address limits */
    OPT(MX_LIMIT, "mx_limit", .type = SL_VT_COUNT, .scopes = SC_GENERAL, .def = "7", .min = 1,
        .max = 64, .help = "MX hosts tried per delivery attempt"),
    OPT(MULTIHOMED_LIMIT, "multihomed_limit", .type = SL_VT_COUNT, .scopes = SC_GENERAL, .def = "2",
        .min = 1, .max = 64, .help = "addresses of one MX host tried per attempt"),
    /* per-phase timeouts */
    TIMEOUT(CONNECT_TIMEOUT, "connect_timeout", "3m", "TCP connect"),
    TIMEOUT(GREETING_TIMEOUT, "greeting_timeout", "3m", "the 220 greeting"),
    TIMEOUT(TLS_TIMEOUT, "tls_timeout", "2m", "STARTTLS reply and TLS handshake"),
    TIMEOUT(EHLO_TIMEOUT, "ehlo_timeout", "3m", "EHLO (and HELO) reply"),
    OPT(MAIL_FROM_TIMEOUT, "mail_from_timeout", .alias = "mailfrom_timeout", .type = SL_VT_DURATION,
        .scopes = SC_GENERAL, .def = "3m", .help = "MAIL FROM reply"),
    OPT(RCPT_TO_TIMEOUT, "rcpt_to_timeout", .alias = "rcptto_timeout", .type = SL_VT_DURATION,
        .scopes = SC_GENERAL, .def = "3m", .help = "each RCPT TO reply"),
    OPT(DATA_TIMEOUT, "data_timeout", .alias = "body_timeout", .type = SL_VT_DURATION,
        .scopes = SC_GENERAL, .def = "10m", .help = "DATA: the 354, the body, the final reply"),
    TIMEOUT(RSET_TIMEOUT, "rset_timeout", "2m", "RSET reply between two messages"),
    TIMEOUT(IDLE_TIMEOUT, "idle_timeout", "5s", "an idle connection kept open for more mail"),
    TIMEOUT(MTA_STS_TIMEOUT, "mta_sts_timeout", "2m", "an MTA-STS policy fetch"),
    /* retry and expiry */
    TIMEOUT(RETRY_INTERVAL, "retry_interval", "20m", "first retry delay, doubled each time"),
    TIMEOUT(MAX_RETRY_INTERVAL, "max_retry_interval", "12h", "longest retry delay"),
    TIMEOUT(MESSAGE_EXPIRATION, "message_expiration", "5d", "age at which a message bounces"),
    OPT(MAX_RETRIES, "max_retries", .type = SL_VT_RETRIES, .scopes = SC_GENERAL, .def = "auto",
        .help = "auto (until expiration) | none | N retries"),
    /* binding identity */
    OPT(BINDING_GROUP, "binding_group", .type = SL_VT_NAME, .scopes = SC(BINDING),
        .help = "the binding_group this binding belongs to"),
    OPT(BIND_ADDRESS, "bind_address", .type = SL_VT_IP, .scopes = SC(BINDING),
        .help = "local address the binding's connections come from"),
    OPT(EHLO_HOSTNAME, "ehlo_hostname", .type = SL_VT_STRING,
        .scopes = SC(GLOBAL) | SC(BINDING_GROUP) | SC(BINDING),
        .help = "name sent in EHLO (unset: the system host name)"),
    /* routing and TLS */
    OPT(SMTP_PORT, "smtp_port", .type = SL_VT_COUNT, .scopes = SC(GLOBAL) | SC_DOMAINS, .def = "25",
        .min = 1, .max = 65535, .help = "destination TCP port"),
    OPT(ROUTE, "route", .type = SL_VT_HOSTPORT, .scopes = SC_DOMAINS,
        .help = "host[:port] to deliver to instead of the MX hosts"),
    OPT(TLS, "tls", .type = SL_VT_ENUM, .scopes = SC_GENERAL, .def = "opportunistic",
        .words = tls_words, .help = "STARTTLS: disabled | opportunistic | required | verify"),
    ENGINE(TLS_CA_FILE, "tls_ca_file", SL_VT_PATH, NULL,
           "CA bundle for tls = verify and MTA-STS (unset: the system store)"),
    OPT(DANE, "dane", .type = SL_VT_BOOL, .scopes = SC_GENERAL, .def = "on",
        .help = "honour DNSSEC-validated TLSA records (needs a validating resolver on loopback)"),
    OPT(MTA_STS, "mta_sts", .type = SL_VT_BOOL, .scopes = SC_GENERAL, .def = "on",
        .help = "look up, fetch, cache and apply the domain's MTA-STS policy"),
    OPT(CHUNKING, "chunking", .type = SL_VT_BOOL, .scopes = SC_GENERAL, .def = "on",
        .help = "BDAT when the receiver offers CHUNKING and PIPELINING: a run of messages per "
                "round trip"),
    OPT(MTA_STS_PORT, "mta_sts_port", .type = SL_VT_COUNT, .chain = SL_CHAIN_GLOBAL,
        .scopes = SC(GLOBAL), .def = "443", .min = 1, .max = 65535,
        .help = "HTTPS port of the MTA-STS policy hosts (443; another for a test bed)"),
    ENGINE(MIGRATE_SIBLINGS, "migrate_connections_between_sibling_domains", SL_VT_BOOL, "true",
           "a connection carries mail of another domain of its binding behind the same MX host"),
    /* engine */
    OPT(WORKERS, "workers", .type = SL_VT_COUNT, .chain = SL_CHAIN_GLOBAL, .scopes = SC(GLOBAL),
        .def = "4", .min = 1, .max = 1024, .help = "worker processes (one SMTP session each)"),
    ENGINE(SPOOL_DIR, "spool_dir", SL_VT_PATH, "/var/spool/sluice", "the message queue"),
    ENGINE(SHM_NAME, "shm_name", SL_VT_STRING, "/sluice", "POSIX shm name of the counter table"),
    OPT(SHM_CAPACITY, "shm_capacity", .type = SL_VT_COUNT, .chain = SL_CHAIN_GLOBAL,
        .scopes = SC(GLOBAL), .def = "65536", .min = 64, .max = 16777216,
        .help = "counters in the shared table"),
    ENGINE(AUDIT_INTERVAL, "audit_interval", SL_VT_DURATION, "10s", "period of the counter audit"),
    ENGINE(DNS_SERVER, "dns_server", SL_VT_HOSTPORT, NULL, "IP[:port] (unset: system resolver)"),
    ENGINE(DELIVERY_LOG, "delivery_log", SL_VT_PATH, "/var/log/sluice/delivery.log",
           "JSON lines, one per delivery attempt"),
    OPT(LOG_LEVEL, "log_level", .type = SL_VT_ENUM, .chain = SL_CHAIN_GLOBAL, .scopes = SC(GLOBAL),
        .def = "info", .words = level_words, .help = "debug | info | warning"),
    ENGINE(USER, "user", SL_VT_NAME, NULL, "unprivileged user to run as (unset: stay)"),
    OPT(MAX_MESSAGE_SIZE, "max_message_size", .type = SL_VT_COUNT, .chain = SL_CHAIN_GLOBAL,
        .scopes = SC(GLOBAL), .def = "52428800", .min = 1, .max = INT32_MAX,
        .help = "bytes of a message (CRLF line ends) that inject accepts"),
    OPT(BOUNCE_SIZE_LIMIT, "bounce_size_limit", .type = SL_VT_COUNT, .chain = SL_CHAIN_GLOBAL,
        .scopes = SC(GLOBAL), .def = "50000", .min = 0, .max = INT32_MAX,
        .help = "largest original a bounce returns whole (RET=FULL); above it, its header"),
    /* cluster */
    ENGINE(CLUSTER_REDIS, "cluster_redis", SL_VT_STRING, NULL,
           "host:port or unix socket path of the Redis holding cluster leases (unset: "
           "cluster limits count this node alone)"),
    ENGINE(CLUSTER_REDIS_PASSWORD_FILE, "cluster_redis_password_file", SL_VT_PATH, NULL,
           "file holding the Redis password (AUTH), read at start and reload"),
    ENGINE(CLUSTER_NODE, "cluster_node", SL_VT_STRING, NULL,
           "this node's name in the cluster (unset: the host name)"),
    OPT(CLUSTER_LEASE_TTL, "cluster_lease_ttl", .type = SL_VT_DURATION, .chain = SL_CHAIN_GLOBAL,
        .scopes = SC(GLOBAL), .def = "30s",
        .help = "life of a lease not renewed: a dead node's connections are free after it"),
    OPT(CLUSTER_ON_FAILURE, "cluster_on_failure", .type = SL_VT_ENUM, .chain = SL_CHAIN_GLOBAL,
        .scopes = SC(GLOBAL), .def = "closed", .words = failure_words,
        .help = "Redis unreachable: closed (nothing new) | share (limit / nodes alive)"),
};

static const char *const scope_names[SL_SC__COUNT] = {
    [SL_SC_GLOBAL] = "global",
    [SL_SC_BINDING_GROUP] = "binding_group",
    [SL_SC_BINDING] = "binding",
    [SL_SC_DOMAIN] = "domain",
    [SL_SC_HOST] = "host",
    [SL_SC_BINDING_DOMAIN] = "binding::domain",
    [SL_SC_GROUP_DOMAIN] = "binding_group::domain",
    [SL_SC_BINDING_HOST] = "binding::host",
    [SL_SC_GROUP_HOST] = "binding_group::host",
};

/* sl_opt_def - the table row of one option, NULL for a value out of range */
const struct sl_optdef *sl_opt_def(enum sl_opt opt)
{
    return (unsigned)opt < SL_OPT__COUNT ? &defs[opt] : NULL;
}

/* sl_opt_name - the INI key of an option */
const char *sl_opt_name(enum sl_opt opt)
{
    return (unsigned)opt < SL_OPT__COUNT ? defs[opt].name : "?";
}

/* sl_opt_display - Momentum's display form: each word capitalised, underscores kept */
void sl_opt_display(enum sl_opt opt, char *buf, size_t len)
{
    const char *s = sl_opt_name(opt);
    bool word_start = true;
    size_t i = 0;

    if (len == 0)
        return;
    for (; s[i] != '\0' && i + 1 < len; i++) {
        buf[i] = word_start ? (char)toupper((unsigned char)s[i]) : s[i];
        word_start = s[i] == '_';
    }
    buf[i] = '\0';
}

/* sl_opt_lookup - the option for an INI key (case-insensitive, aliases too), or -1 */
int sl_opt_lookup(const char *key)
{
    for (int i = 0; i < SL_OPT__COUNT; i++) {
        if (strcasecmp(key, defs[i].name) == 0)
            return i;
        if (defs[i].alias != NULL && strcasecmp(key, defs[i].alias) == 0)
            return i;
    }
    return -1;
}

/* sl_scope_name - a scope as the manual and the diagnostics spell it */
const char *sl_scope_name(enum sl_scope sc)
{
    return (unsigned)sc < SL_SC__COUNT ? scope_names[sc] : "?";
}
