/*
 * listener.c - read the [listener "NAME"] sections: the header and each key.
 *
 * The loader's reader hands a header that starts with "[listener" here
 * instead of to config_header.c, and every key under it to
 * sl_config_listener_store; the checks across keys and sections (the binding
 * exists, the certificate matches its key, two listeners on one address) run
 * once the file is read (listener_check.c).  Keys are checked with the option
 * table's value parser where a type exists (durations, counts, paths, names),
 * so a listener's "30s" means what it means everywhere else.
 * Concurrency: works on one loader; no global state.
 * Trust boundary: the file is operator input.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/sl_listener.h"
#include "util/sl_msg.h"
#include "config_impl.h"

#define NAME_MAX_LEN 64

/* The keys of a listener section, in the order of the manual. */
enum lkey {
    LK_ADDRESS,
    LK_BINDING,
    LK_BINDING_GROUP,
    LK_BINDING_HEADER,
    LK_RELAY_NETWORKS,
    LK_MAX_SESSIONS,
    LK_MAX_SESSIONS_PER_CLIENT,
    LK_MAX_RECIPIENTS,
    LK_MAX_ERRORS,
    LK_MAX_AUTH_FAILURES,
    LK_AUTH_FAILURE_WINDOW,
    LK_COMMAND_TIMEOUT,
    LK_DATA_TIMEOUT,
    LK_TLS_TIMEOUT,
    LK_TLS_CERT_FILE,
    LK_TLS_KEY_FILE,
    LK_AUTH_FILE,
    LK_HOSTNAME,
    LK__COUNT
};

static const char *const key_names[LK__COUNT] = {
    "address",        "binding",           "binding_group",           "binding_header",
    "relay_networks", "max_sessions",      "max_sessions_per_client", "max_recipients",
    "max_errors",     "max_auth_failures", "auth_failure_window",     "command_timeout",
    "data_timeout",   "tls_timeout",       "tls_cert_file",           "tls_key_file",
    "auth_file",      "hostname"};

_Static_assert(LK__COUNT <= 32, "sl_listener.set has 32 entries");

/* sl_config_is_listener_header - does this header line name a listener section? */
bool sl_config_is_listener_header(const char *line)
{
    return strncasecmp(line, "[listener", 9) == 0 &&
           (line[9] == ' ' || line[9] == '\t' || line[9] == '"' || line[9] == ']');
}

/* name_ok - a listener name: letters, digits, '_', '.', '-' */
static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

/* defaults - a new listener's built-in values */
static void defaults(struct sl_listener *l)
{
    static const char *const loopback[] = {"127.0.0.0/8", "::1/128"};

    l->max_sessions = 32;
    l->max_sessions_per_client = 0;
    l->max_recipients = 1000;
    l->max_errors = 10;
    l->max_auth_failures = 10;
    l->auth_failure_window_ms = 15 * 60 * 1000;
    l->command_timeout_ms = 5 * 60 * 1000; /* RFC 5321 4.5.3.2.7 */
    l->data_timeout_ms = 10 * 60 * 1000;
    l->tls_timeout_ms = 60 * 1000;
    l->relay = sl_calloc(2, sizeof *l->relay);
    for (size_t i = 0; i < 2; i++)
        if (!sl_cidr_parse(loopback[i], &l->relay[l->nrelay++]))
            sl_msg_panic("built-in relay network %s", loopback[i]);
}

/* sl_config_listener_header - [listener "NAME"]: a new listener, or NULL (reported) */
struct sl_listener *sl_config_listener_header(struct loader *L, const char *line)
{
    struct sl_config *cfg = L->cfg;
    const char *p = line + 9, *q;
    struct sl_listener *l;

    while (*p == ' ' || *p == '\t')
        p++;
    q = *p == '"' ? strchr(p + 1, '"') : NULL;
    if (q == NULL || strcmp(q + 1, "]") != 0 || !name_ok(p + 1, (size_t)(q - p - 1))) {
        sl_config_report(L, L->lineno,
                         "malformed section header: expected [listener \"NAME\"] (a name of up to "
                         "64 letters, digits, '_', '.' or '-')");
        return NULL;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (strlen(cfg->listeners[i].name) == (size_t)(q - p - 1) &&
            strncasecmp(cfg->listeners[i].name, p + 1, (size_t)(q - p - 1)) == 0) {
            sl_config_report(L, L->lineno, "listener \"%s\" already defined on line %u",
                             cfg->listeners[i].name, cfg->listeners[i].line);
            return NULL;
        }
    cfg->listeners = sl_realloc(cfg->listeners, (cfg->nlisteners + 1) * sizeof *cfg->listeners);
    l = &cfg->listeners[cfg->nlisteners++];
    memset(l, 0, sizeof *l);
    l->name = sl_strndup(p + 1, (size_t)(q - p - 1));
    l->line = L->lineno;
    defaults(l);
    return l;
}

/* parse_address - IP:port or [IPv6]:port into l->sa; false when malformed */
static bool parse_address(struct sl_listener *l, const char *v)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon, *h = v;
    size_t hn;
    char *end;
    long port;

    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close[1] != ':')
            return false;
        h = v + 1, hn = (size_t)(close - v - 1), colon = close + 1;
    } else {
        if ((colon = strrchr(v, ':')) == NULL || memchr(v, ':', (size_t)(colon - v)) != NULL)
            return false;
        hn = (size_t)(colon - v);
    }
    if (hn == 0 || hn >= sizeof host)
        return false;
    memcpy(host, h, hn);
    host[hn] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
        return false;
    memset(&l->sa, 0, sizeof l->sa);
    if (v[0] != '[') {
        struct sockaddr_in *in = (struct sockaddr_in *)&l->sa;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        l->salen = sizeof *in;
        return inet_pton(AF_INET, host, &in->sin_addr) == 1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->sa;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    l->salen = sizeof *in6;
    return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1;
}

/* parse_networks - relay_networks: CIDRs separated by commas or blanks, replacing the default */
static bool parse_networks(struct sl_listener *l, const char *v, char *bad, size_t badlen)
{
    char *copy = sl_strdup(v), *save = NULL, *tok;
    struct sl_cidr *nets = NULL;
    size_t n = 0;

    for (tok = strtok_r(copy, ", \t", &save); tok != NULL; tok = strtok_r(NULL, ", \t", &save)) {
        nets = sl_realloc(nets, (n + 1) * sizeof *nets);
        if (!sl_cidr_parse(tok, &nets[n++])) {
            snprintf(bad, badlen, "%s", tok);
            free(nets);
            free(copy);
            return false;
        }
    }
    free(copy);
    free(l->relay);
    l->relay = nets; /* an empty list: nobody relays without AUTH */
    l->nrelay = n;
    return true;
}

/* parse_typed - a value through the option table's parser, as an option of type def */
static bool parse_typed(struct loader *L, const struct sl_optdef *def, const char *key,
                        const char *v, int64_t *num)
{
    struct sl_value out;
    char err[256];

    if (!sl_value_parse(def, v, &out, err, sizeof err)) {
        sl_config_report(L, L->lineno, "bad value \"%s\" for %s: %s", v, key, err);
        return false;
    }
    if (num != NULL)
        *num = out.num;
    return true;
}

/* header_name_ok - binding_header: a field name (RFC 5322 2.2: printable, no colon) */
static bool header_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 76)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == ':')
            return false;
    return true;
}

/* store_count - one of the whole-number keys, within [min, max] */
static void store_count(struct loader *L, const char *key, const char *v, int64_t min, int64_t max,
                        unsigned *to)
{
    const struct sl_optdef def = {.type = SL_VT_COUNT, .min = min, .max = max};
    int64_t n;

    if (parse_typed(L, &def, key, v, &n))
        *to = (unsigned)n;
}

/* store_text - a key kept as text once the given type accepts it */
static void store_text(struct loader *L, const struct sl_optdef *def, const char *key,
                       const char *v, char **to)
{
    if (parse_typed(L, def, key, v, NULL)) {
        free(*to);
        *to = sl_strdup(v);
    }
}

/* store_value - one key of a listener section, by its index */
static void store_value(struct loader *L, struct sl_listener *l, enum lkey k, const char *v)
{
    const struct sl_optdef dur = {.type = SL_VT_DURATION}, path = {.type = SL_VT_PATH};
    const struct sl_optdef *name = sl_opt_def(SL_OPT_BINDING_GROUP);
    char bad[256];
    int64_t n = 0;

    switch (k) {
    case LK_ADDRESS:
        if (!parse_address(l, v))
            sl_config_report(L, L->lineno,
                             "bad value \"%s\" for address: expected IPv4:port or [IPv6]:port "
                             "(port 1-65535)",
                             v);
        else
            l->address = sl_strdup(v);
        break;
    case LK_BINDING:
        store_text(L, name, "binding", v, &l->binding);
        break;
    case LK_BINDING_GROUP:
        store_text(L, name, "binding_group", v, &l->binding_group);
        break;
    case LK_BINDING_HEADER:
        if (header_name_ok(v))
            l->binding_header = sl_strdup(v);
        else
            sl_config_report(L, L->lineno,
                             "bad value \"%s\" for binding_header: expected a header field name",
                             v);
        break;
    case LK_RELAY_NETWORKS:
        if (!parse_networks(l, v, bad, sizeof bad))
            sl_config_report(L, L->lineno,
                             "bad network \"%s\" in relay_networks: expected IPv4/N or IPv6/N",
                             bad);
        break;
    case LK_MAX_SESSIONS:
        store_count(L, "max_sessions", v, 1, SL_LISTENER_SESSIONS_MAX, &l->max_sessions);
        break;
    case LK_MAX_SESSIONS_PER_CLIENT:
        store_count(L, "max_sessions_per_client", v, 0, SL_LISTENER_SESSIONS_MAX,
                    &l->max_sessions_per_client);
        break;
    case LK_MAX_RECIPIENTS:
        store_count(L, "max_recipients", v, 1, 10000 /* the spool's SL_SPOOL_RCPT_MAX */,
                    &l->max_recipients);
        break;
    case LK_MAX_ERRORS:
        store_count(L, "max_errors", v, 1, 1000, &l->max_errors);
        break;
    case LK_MAX_AUTH_FAILURES:
        store_count(L, "max_auth_failures", v, 0, 1000000, &l->max_auth_failures);
        break;
    case LK_AUTH_FAILURE_WINDOW:
        if (parse_typed(L, &dur, "auth_failure_window", v, &n) && n < 1000)
            sl_config_report(L, L->lineno, "bad value \"%s\" for auth_failure_window: at least 1s",
                             v);
        else if (n >= 1000)
            l->auth_failure_window_ms = n;
        break;
    case LK_COMMAND_TIMEOUT:
        parse_typed(L, &dur, "command_timeout", v, &l->command_timeout_ms);
        break;
    case LK_DATA_TIMEOUT:
        parse_typed(L, &dur, "data_timeout", v, &l->data_timeout_ms);
        break;
    case LK_TLS_TIMEOUT:
        parse_typed(L, &dur, "tls_timeout", v, &l->tls_timeout_ms);
        break;
    case LK_TLS_CERT_FILE:
        store_text(L, &path, "tls_cert_file", v, &l->tls_cert_file);
        break;
    case LK_TLS_KEY_FILE:
        store_text(L, &path, "tls_key_file", v, &l->tls_key_file);
        break;
    case LK_AUTH_FILE:
        store_text(L, &path, "auth_file", v, &l->auth_file);
        break;
    case LK_HOSTNAME:
        store_text(L, sl_opt_def(SL_OPT_EHLO_HOSTNAME), "hostname", v, &l->hostname);
        break;
    case LK__COUNT:
        break;
    }
}

/* sl_config_listener_store - one key = value under a listener section, or why not */
void sl_config_listener_store(struct loader *L, struct sl_listener *l, const char *key,
                              const char *value)
{
    size_t n = strlen(value);
    char *v = sl_strdup(value);
    int k;

    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        memmove(v, v + 1, n - 2);
        v[n - 2] = '\0';
    }
    for (k = 0; k < LK__COUNT && strcasecmp(key, key_names[k]) != 0; k++)
        ;
    if (k == LK__COUNT) {
        if (sl_opt_lookup(key) == SL_OPT_MAX_MESSAGE_SIZE)
            sl_config_report(L, L->lineno,
                             "max_message_size is not valid in [listener \"%s\"]: it is a "
                             "[global] option, for listeners and inject alike",
                             l->name);
        else
            sl_config_report(L, L->lineno, "unknown option \"%s\" in [listener \"%s\"]", key,
                             l->name);
    } else if (l->set[k]) {
        sl_config_report(L, L->lineno, "duplicate %s in [listener \"%s\"]", key_names[k], l->name);
    } else if (v[0] == '\0') {
        sl_config_report(L, L->lineno, "bad value \"\" for %s: empty value", key_names[k]);
    } else {
        l->set[k] = true;
        store_value(L, l, (enum lkey)k, v);
    }
    free(v);
}

/* sl_config_listeners_free - every listener of cfg */
void sl_config_listeners_free(struct sl_config *cfg)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        struct sl_listener *l = &cfg->listeners[i];
        free(l->name);
        free(l->address);
        free(l->binding);
        free(l->binding_group);
        free(l->binding_header);
        free(l->relay);
        free(l->tls_cert_file);
        free(l->tls_key_file);
        free(l->auth_file);
        free(l->hostname);
    }
    free(cfg->listeners);
    cfg->listeners = NULL;
    cfg->nlisteners = 0;
}
