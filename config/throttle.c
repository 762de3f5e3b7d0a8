/*
 * throttle.c - the rate throttles' values and which stanza's bucket applies.
 *
 * A value is "N" (N per second), "N/S" (N per S seconds; S may carry a unit)
 * or -1 (none), packed into one 64-bit config number.  Resolution follows the
 * option's chain (config_eval.c); the stanza that supplied the value names
 * the bucket, so every binding and domain under it draws from one bucket.
 * Concurrency: pure functions; the config is immutable.
 * Trust boundary: the text is operator input, checked character by character.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <bsd/string.h>

#include "config/sl_throttle.h"
#include "util/sl_msg.h"

/* whole - a decimal number of at most 12 digits at *s, advanced past it */
static bool whole(const char **s, int64_t *out)
{
    int64_t v = 0;
    int digits = 0;

    while (isdigit((unsigned char)**s) && digits < 12) {
        v = v * 10 + (**s - '0');
        (*s)++;
        digits++;
    }
    *out = v;
    return digits > 0 && !isdigit((unsigned char)**s);
}

/* period - S of "N/S": seconds, or a number with the unit ms, s, m, h or d; in ms */
static bool period(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    int64_t v;

    if (!whole(&s, &v) || v == 0)
        return false;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(s, units[i].unit) == 0) {
            *ms = v * units[i].ms;
            return *ms <= SL_RATE_PERIOD_MAX;
        }
    return false;
}

/* sl_rate_parse - "N", "N/S" or -1 into the packed form */
bool sl_rate_parse(const char *text, int64_t *num, char *err, size_t len)
{
    const char *s = text;
    int64_t n, ms = 1000;

    if (strcmp(text, "-1") == 0) {
        *num = SL_RATE_NONE;
        return true;
    }
    if (!whole(&s, &n) || n < 1 || n > INT32_MAX || (*s != '\0' && *s != '/') ||
        (*s == '/' && !period(s + 1, &ms))) {
        snprintf(err, len,
                 "expected a rate: N (per second) or N/S (N per S seconds, S up to "
                 "30 days), N at least 1; or -1 for none");
        return false;
    }
    *num = n << 32 | ms;
    return true;
}

/* sl_rate_unpack - n and period of a packed rate; false for none */
bool sl_rate_unpack(int64_t num, struct sl_rate *r)
{
    if (num <= 0)
        return false;
    r->n = (uint32_t)(num >> 32);
    r->period_ms = (uint32_t)(num & 0xffffffffu);
    return r->n > 0 && r->period_ms > 0;
}

/* sl_rate_format - a packed rate as written: the period in its largest exact unit */
void sl_rate_format(int64_t num, char *buf, size_t len)
{
    struct sl_rate r;

    if (!sl_rate_unpack(num, &r)) {
        snprintf(buf, len, "-1");
        return;
    }
    if (r.period_ms == 1000)
        snprintf(buf, len, "%" PRIu32, r.n);
    else if (r.period_ms % 86400000u == 0 && r.period_ms >= 86400000u)
        snprintf(buf, len, "%" PRIu32 "/%" PRIu32 "d", r.n, r.period_ms / 86400000u);
    else if (r.period_ms % 1000u == 0)
        snprintf(buf, len, "%" PRIu32 "/%" PRIu32, r.n, r.period_ms / 1000u);
    else
        snprintf(buf, len, "%" PRIu32 "/%" PRIu32 "ms", r.n, r.period_ms);
}

/* sl_throttle_opt - the option of a throttle kind */
enum sl_opt sl_throttle_opt(enum sl_throttle_kind kind)
{
    return kind == SL_THROTTLE_CONNECTIONS ? SL_OPT_OUTBOUND_THROTTLE_CONNECTIONS
                                           : SL_OPT_OUTBOUND_THROTTLE_MESSAGES;
}

/* bucket_key - the defining stanza's header without its brackets: the bucket's name */
static void bucket_key(const struct sl_section *s, char *buf, size_t len)
{
    char name[SL_THROTTLE_KEY_MAX * 2 + 16];
    size_t n;

    sl_section_name(s, name, sizeof name);
    n = strlen(name);
    if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
        name[n - 1] = '\0';
        strlcpy(buf, name + 1, len);
    } else {
        strlcpy(buf, name, len);
    }
}

/* sl_throttle_resolve - the throttle in force and its bucket; false when none */
bool sl_throttle_resolve(const struct sl_config *cfg, enum sl_throttle_kind kind,
                         const char *binding, const char *domain, const char *host,
                         struct sl_throttle *out)
{
    struct sl_scope_ref ref = {.binding = binding, .domain = host ? NULL : domain, .host = host};
    const struct sl_section *from = NULL;
    struct sl_value v;
    char err[256];

    if (!sl_config_eval(cfg, sl_throttle_opt(kind), &ref, &v, &from, err, sizeof err))
        sl_msg_panic("throttle for %s: %s", binding ? binding : "-", err);
    if (!v.set || from == NULL || !sl_rate_unpack(v.num, &out->rate))
        return false;
    bucket_key(from, out->key, sizeof out->key);
    return true;
}

/* sl_throttle_memo_get - the throttle of m, resolved when its generation is not gen */
bool sl_throttle_memo_get(struct sl_throttle_memo *m, uint64_t gen, const struct sl_config *cfg,
                          enum sl_throttle_kind kind, const char *binding, const char *domain,
                          const char *host)
{
    if (gen != 0 && m->gen == gen)
        return m->has;
    m->has = sl_throttle_resolve(cfg, kind, binding, domain, host, &m->t);
    m->gen = gen;
    m->slot = UINT32_MAX;
    return m->has;
}
