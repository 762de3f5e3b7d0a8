/*
 * config_value.c - parse and format the values of the INI file.
 *
 * Each value type of sl_config.h has one parser that either accepts the whole
 * text or says what it expected; nothing is silently truncated or clamped.
 * Numbers are strict decimal (no sign but the -1 of limits, no blanks, no
 * junk); durations are stored in milliseconds and bounded so that alarm() and
 * setitimer() can always take them.
 * Concurrency: pure functions.
 * Trust boundary: the text comes from the operator's file or command line.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/sl_config.h"
#include "config/sl_throttle.h"
#include "config_impl.h"

#define MS_PER_S   INT64_C(1000)
#define MAX_DUR_MS ((int64_t)INT32_MAX * MS_PER_S) /* 24855 days: fits alarm() */
#define MAX_NAME   64
#define MAX_STRING 1024
#define MAX_PATH   4096
#define MAX_SHM    250

static const struct {
    const char *suffix;
    int64_t ms;
} units[] = {{"d", 86400 * MS_PER_S},
             {"h", 3600 * MS_PER_S},
             {"m", 60 * MS_PER_S},
             {"s", MS_PER_S},
             {"ms", 1},
             {"", MS_PER_S}};

/* parse_uint - strict decimal digits up to a bound; *end gets what follows */
static bool parse_uint(const char *s, int64_t max, int64_t *out, const char **end)
{
    int64_t n = 0;

    if (!isdigit((unsigned char)*s))
        return false;
    for (; isdigit((unsigned char)*s); s++) {
        int d = *s - '0';
        if (n > (max - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *out = n;
    *end = s;
    return true;
}

/* parse_whole - a whole non-negative number and nothing else, at most max */
static bool parse_whole(const char *s, int64_t max, int64_t *out)
{
    const char *end;
    return parse_uint(s, max, out, &end) && *end == '\0';
}

/* parse_limit - -1 (no limit), 0 (paused) or N up to INT32_MAX */
static bool parse_limit(const char *s, int64_t *out, char *err, size_t len)
{
    if (strcmp(s, "-1") == 0) {
        *out = -1;
        return true;
    }
    if (parse_whole(s, INT32_MAX, out))
        return true;
    snprintf(err, len, "expected -1 (no limit), 0 (paused) or a whole number up to %d", INT32_MAX);
    return false;
}

/* parse_count - a whole number within the option's bounds */
static bool parse_count(const struct sl_optdef *def, const char *s, int64_t *out, char *err,
                        size_t len)
{
    if (parse_whole(s, INT64_MAX, out) && *out >= def->min && *out <= def->max)
        return true;
    snprintf(err, len, "expected a whole number from %" PRId64 " to %" PRId64, def->min, def->max);
    return false;
}

/* parse_duration - N with a unit (ms, s, m, h, d; none = seconds), more than 0 */
static bool parse_duration(const char *s, int64_t *out, char *err, size_t len)
{
    const char *p;
    int64_t n;

    if (parse_uint(s, INT64_MAX, &n, &p) && n > 0) {
        while (*p == ' ')
            p++;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcasecmp(p, units[i].suffix) != 0)
                continue;
            if (n > MAX_DUR_MS / units[i].ms)
                break;
            *out = n * units[i].ms;
            return true;
        }
    }
    snprintf(err, len,
             "expected a duration above 0 and at most %" PRId64 "d, such as 500ms, 30s, 3m, 1h "
             "or 2d (a bare number is seconds)",
             MAX_DUR_MS / units[0].ms);
    return false;
}

/* parse_bool - true/false, yes/no, on/off, 1/0 */
static bool parse_bool(const char *s, int64_t *out, char *err, size_t len)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return true;
        }
    }
    snprintf(err, len, "expected true or false (yes/no, on/off, 1/0)");
    return false;
}

/* parse_enum - one of the option's words, stored as its index */
static bool parse_enum(const struct sl_optdef *def, const char *s, int64_t *out, char *err,
                       size_t len)
{
    size_t used = 0;

    for (int64_t i = 0; def->words[i] != NULL; i++) {
        if (strcasecmp(s, def->words[i]) == 0) {
            *out = i;
            return true;
        }
    }
    used = (size_t)snprintf(err, len, "expected one of:");
    for (size_t i = 0; def->words[i] != NULL && used < len; i++)
        used += (size_t)snprintf(err + used, len - used, "%s %s", i ? " |" : "", def->words[i]);
    return false;
}

/* parse_retries - auto (-1), none (0) or a number of retries */
static bool parse_retries(const char *s, int64_t *out, char *err, size_t len)
{
    if (strcasecmp(s, "auto") == 0)
        *out = -1;
    else if (strcasecmp(s, "none") == 0)
        *out = 0;
    else if (!parse_whole(s, INT32_MAX, out)) {
        snprintf(err, len, "expected auto, none or a whole number of retries");
        return false;
    }
    return true;
}

/* printable - no control characters and at most max bytes */
static bool printable(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (iscntrl((unsigned char)s[n]))
            return false;
    return n > 0 && n <= max;
}

/* valid_name - a binding, group or user name: letters, digits, '_', '.', '-' */
static bool valid_name(const char *s)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
    return n > 0 && n <= MAX_NAME && s[n] == '\0' && s[0] != '-' && s[0] != '.';
}

/* valid_hostname - labels of letters, digits, '-' and '_', optional final dot */
static bool valid_hostname(const char *s, size_t n)
{
    size_t label = 0;

    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (isalnum(c) || c == '_' || (c == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

/* valid_ip - an IPv4 or IPv6 address in textual form (the first n bytes of s) */
static bool valid_ip(const char *s, size_t n, int family)
{
    unsigned char addr[sizeof(struct in6_addr)];
    char buf[INET6_ADDRSTRLEN + 1];

    if (n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (family != AF_INET6 && inet_pton(AF_INET, buf, addr) == 1)
        return true;
    return family != AF_INET && inet_pton(AF_INET6, buf, addr) == 1;
}

/* parse_hostport - host, IPv4, [IPv6] or bare IPv6, with an optional :port */
static bool parse_hostport(const char *s, bool ip_only, int64_t *port)
{
    const char *colon = strchr(s, ':');
    size_t hostlen = strlen(s);
    const char *host = s;

    *port = 0;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || !valid_ip(s + 1, (size_t)(close - s - 1), AF_INET6))
            return false;
        if (close[1] == '\0')
            return true;
        return close[1] == ':' && parse_whole(close + 2, 65535, port) && *port > 0;
    }
    if (colon != NULL && strchr(colon + 1, ':') != NULL) /* bare IPv6, no port */
        return valid_ip(s, hostlen, AF_INET6);
    if (colon != NULL) {
        hostlen = (size_t)(colon - s);
        if (!parse_whole(colon + 1, 65535, port) || *port == 0)
            return false;
    }
    if (valid_ip(host, hostlen, AF_INET))
        return true;
    return !ip_only && valid_hostname(host, hostlen);
}

/* valid_shm_name - "/name": one leading slash, no other, short enough for shm_open */
static bool valid_shm_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 2 && n <= MAX_SHM && s[0] == '/' && strchr(s + 1, '/') == NULL &&
           printable(s, MAX_SHM);
}

/* parse_text - the string types: checked here, kept as written by the caller */
static bool parse_text(const struct sl_optdef *def, const char *s, char *err, size_t len)
{
    const struct sl_optdef *shm = sl_opt_def(SL_OPT_SHM_NAME);
    const struct sl_optdef *dns = sl_opt_def(SL_OPT_DNS_SERVER);
    const struct sl_optdef *ehlo = sl_opt_def(SL_OPT_EHLO_HOSTNAME);
    const char *what = NULL;
    int64_t port;

    if (def == shm && !valid_shm_name(s))
        what = "a shared-memory name: '/' then up to 249 characters, no other '/'";
    else if (def == ehlo && !valid_hostname(s, strlen(s)))
        what = "a host name (letters, digits, '-' and '.')";
    else if (def == dns && !parse_hostport(s, true, &port))
        what = "an IP address with an optional :port (1-65535), IPv6 as [addr]:port";
    else if (def->type == SL_VT_STRING && !printable(s, MAX_STRING))
        what = "text of at most 1024 characters without control characters";
    else if (def->type == SL_VT_IP && !valid_ip(s, strlen(s), AF_UNSPEC))
        what = "an IPv4 or IPv6 address";
    else if (def->type == SL_VT_HOSTPORT && !parse_hostport(s, false, &port))
        what = "host[:port] with a port from 1 to 65535 (IPv6 as [addr]:port)";
    else if (def->type == SL_VT_PATH && (s[0] != '/' || !printable(s, MAX_PATH)))
        what = "an absolute path";
    else if (def->type == SL_VT_NAME && !valid_name(s))
        what = "a name of up to 64 letters, digits, '_', '.' or '-'";
    if (what == NULL)
        return true;
    snprintf(err, len, "expected %s", what);
    return false;
}

/* sl_value_parse - check one value of an option and fill its number */
bool sl_value_parse(const struct sl_optdef *def, const char *text, struct sl_value *out, char *err,
                    size_t errlen)
{
    char dummy[8];
    int64_t port = 0;
    bool ok;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    *out = (struct sl_value){0};
    if (text[0] == '\0') {
        snprintf(err, errlen, "empty value");
        return false;
    }
    switch (def->type) {
    case SL_VT_LIMIT:
        ok = parse_limit(text, &out->num, err, errlen);
        break;
    case SL_VT_COUNT:
        ok = parse_count(def, text, &out->num, err, errlen);
        break;
    case SL_VT_DURATION:
        ok = parse_duration(text, &out->num, err, errlen);
        break;
    case SL_VT_BOOL:
        ok = parse_bool(text, &out->num, err, errlen);
        break;
    case SL_VT_ENUM:
        ok = parse_enum(def, text, &out->num, err, errlen);
        break;
    case SL_VT_RETRIES:
        ok = parse_retries(text, &out->num, err, errlen);
        break;
    case SL_VT_RATE:
        ok = sl_rate_parse(text, &out->num, err, errlen);
        break;
    default:
        ok = parse_text(def, text, err, errlen);
        if (ok && def->type == SL_VT_HOSTPORT)
            parse_hostport(text, false, &port);
        out->num = port;
        break;
    }
    out->set = ok;
    return ok;
}

/* format_duration - milliseconds in the largest unit that divides them exactly */
static void format_duration(int64_t ms, char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < sizeof units / sizeof units[0]; i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(buf, len, "%" PRId64 "%s", ms / units[i].ms, units[i].suffix);
            return;
        }
    }
    snprintf(buf, len, "%" PRId64 "ms", ms);
}

/* sl_value_is_text - the value types whose text is kept as written (in sl_value.str) */
bool sl_value_is_text(enum sl_vtype t)
{
    return t == SL_VT_STRING || t == SL_VT_IP || t == SL_VT_HOSTPORT || t == SL_VT_PATH ||
           t == SL_VT_NAME;
}

/* sl_value_format - a value as an operator would write it */
void sl_value_format(enum sl_opt opt, const struct sl_value *v, char *buf, size_t len)
{
    const struct sl_optdef *def = sl_opt_def(opt);

    if (def == NULL || !v->set) {
        snprintf(buf, len, "unset");
        return;
    }
    switch (def->type) {
    case SL_VT_LIMIT:
    case SL_VT_COUNT:
        snprintf(buf, len, "%" PRId64, v->num);
        break;
    case SL_VT_DURATION:
        format_duration(v->num, buf, len);
        break;
    case SL_VT_BOOL:
        snprintf(buf, len, "%s", v->num ? "true" : "false");
        break;
    case SL_VT_ENUM:
        snprintf(buf, len, "%s", def->words[v->num]);
        break;
    case SL_VT_RATE:
        sl_rate_format(v->num, buf, len);
        break;
    case SL_VT_RETRIES:
        if (v->num < 0)
            snprintf(buf, len, "auto");
        else if (v->num == 0)
            snprintf(buf, len, "none");
        else
            snprintf(buf, len, "%" PRId64, v->num);
        break;
    default:
        snprintf(buf, len, "%s", v->str != NULL ? v->str : "");
        break;
    }
}
