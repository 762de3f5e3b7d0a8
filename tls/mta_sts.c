/*
 * mta_sts.c - the texts of MTA-STS (RFC 8461): the policy body (3.2), the
 * _mta-sts TXT record (3.1), and whether an MX host matches a policy (4.1).
 *
 * Pure functions, no I/O, no state.  Trust boundary: every text here comes
 * from the recipient domain (its web server, its DNS) or from our own cache
 * file, which is parsed again as if it came from the network.  A text that
 * does not follow the grammar is refused as a whole with one line saying
 * why: a half-understood policy could send mail to the wrong hosts.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "mta_sts_impl.h"

#define KEY_MAX 32 /* sts-policy-extension-name: 1 + 31 characters */

/* sl_sts_mode_name - "none", "testing", "enforce" */
const char *sl_sts_mode_name(enum sl_sts_mode m)
{
    switch (m) {
    case SL_STS_TESTING:
        return "testing";
    case SL_STS_ENFORCE:
        return "enforce";
    case SL_STS_NONE:
    default:
        return "none";
    }
}

/* is_wsp - a blank of the grammar (WSP: space or tab) */
static bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* label_ok - one DNS label of a host name: 1..63 of [a-z0-9_-], no '-' at either end */
static bool label_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' ||
              s[i] == '_'))
            return false;
    return true;
}

/* sl_sts_domain_ok - a lower-case host name: safe as a file name and in a URL */
bool sl_sts_domain_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 253)
        return false;
    for (const char *p = s;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot != NULL ? (size_t)(dot - p) : strlen(p);
        if (!label_ok(p, len))
            return false;
        if (dot == NULL)
            return true;
        p = dot + 1;
    }
}

/* sl_sts_fresh - is the policy within its max_age? */
bool sl_sts_fresh(const struct sl_sts_policy *p, time_t now)
{
    return p->fetched <= now && now - p->fetched < p->max_age;
}

/* What the parser has seen of the required fields. */
struct seen {
    bool version, mode, max_age;
};

/* set_mx - add an "mx" value: ["*."] host name, kept in lower case */
static int set_mx(struct sl_sts_policy *p, const char *v, char *err, size_t errlen)
{
    char low[256];
    size_t n = strlen(v);

    if (n >= sizeof low) {
        snprintf(err, errlen, "mx pattern too long");
        return -1;
    }
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)v[i]);
    if (n > 0 && low[n - 1] == '.') /* an absolute name: the same host */
        low[--n] = '\0';
    if (!sl_sts_domain_ok(strncmp(low, "*.", 2) == 0 ? low + 2 : low)) {
        snprintf(err, errlen, "mx pattern \"%.80s\" is not a host name or *.domain", v);
        return -1;
    }
    for (size_t i = 0; i < p->nmx; i++)
        if (strcmp(p->mx[i], low) == 0)
            return 0; /* a repeated pattern takes no room */
    if (p->nmx == SL_STS_MX_MAX) {
        snprintf(err, errlen, "more than %d mx patterns", SL_STS_MX_MAX);
        return -1;
    }
    strlcpy(p->mx[p->nmx++], low, sizeof p->mx[0]);
    return 0;
}

/* set_max_age - 1*10 DIGIT, at most SL_STS_MAX_AGE_S */
static int set_max_age(struct sl_sts_policy *p, const char *v, char *err, size_t errlen)
{
    size_t n = strlen(v);
    long age;

    if (n == 0 || n > 10 || strspn(v, "0123456789") != n) {
        snprintf(err, errlen, "max_age \"%.40s\" is not a number of seconds", v);
        return -1;
    }
    age = strtol(v, NULL, 10);
    if (age > SL_STS_MAX_AGE_S) {
        snprintf(err, errlen, "max_age %s is over %d", v, SL_STS_MAX_AGE_S);
        return -1;
    }
    p->max_age = age;
    return 0;
}

/* set_field - one "key: value" of the policy; the first of a repeated
 * version, mode or max_age counts, every mx counts, unknown keys are ignored */
static int set_field(struct sl_sts_policy *p, struct seen *s, const char *key, const char *v,
                     char *err, size_t errlen)
{
    if (strcmp(key, "version") == 0) {
        if (s->version)
            return 0;
        s->version = true;
        if (strcmp(v, "STSv1") != 0) {
            snprintf(err, errlen, "version \"%.40s\" is not STSv1", v);
            return -1;
        }
    } else if (strcmp(key, "mode") == 0) {
        if (s->mode)
            return 0;
        s->mode = true;
        if (strcmp(v, "enforce") == 0)
            p->mode = SL_STS_ENFORCE;
        else if (strcmp(v, "testing") == 0)
            p->mode = SL_STS_TESTING;
        else if (strcmp(v, "none") == 0)
            p->mode = SL_STS_NONE;
        else {
            snprintf(err, errlen, "mode \"%.40s\" is not enforce, testing or none", v);
            return -1;
        }
    } else if (strcmp(key, "max_age") == 0) {
        if (s->max_age)
            return 0;
        s->max_age = true;
        return set_max_age(p, v, err, errlen);
    } else if (strcmp(key, "mx") == 0) {
        return set_mx(p, v, err, errlen);
    }
    return 0;
}

/* key_ok - a field name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static bool key_ok(const char *k, size_t n)
{
    if (n == 0 || n > KEY_MAX || !isalnum((unsigned char)k[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '-' && k[i] != '.')
            return false;
    return true;
}

/* parse_line - one line (no terminator): "key:" *WSP value *WSP */
static int parse_line(struct sl_sts_policy *p, struct seen *s, const char *line, size_t n,
                      unsigned lineno, char *err, size_t errlen)
{
    const char *colon = memchr(line, ':', n);
    char key[KEY_MAX + 1], val[1024];
    size_t vstart, vend;

    if (colon == NULL || !key_ok(line, (size_t)(colon - line))) {
        snprintf(err, errlen, "line %u is not \"key: value\"", lineno);
        return -1;
    }
    memcpy(key, line, (size_t)(colon - line));
    key[colon - line] = '\0';
    vstart = (size_t)(colon - line) + 1;
    vend = n;
    while (vstart < vend && is_wsp(line[vstart]))
        vstart++;
    while (vend > vstart && is_wsp(line[vend - 1]))
        vend--;
    if (vend - vstart >= sizeof val) {
        snprintf(err, errlen, "line %u: the value of %s is too long", lineno, key);
        return -1;
    }
    memcpy(val, line + vstart, vend - vstart);
    val[vend - vstart] = '\0';
    return set_field(p, s, key, val, err, errlen);
}

/* check_complete - the required fields are all there (RFC 8461 3.2) */
static int check_complete(const struct sl_sts_policy *p, const struct seen *s, char *err,
                          size_t errlen)
{
    const char *missing = !s->version   ? "version"
                          : !s->mode    ? "mode"
                          : !s->max_age ? "max_age"
                                        : NULL;

    if (missing != NULL) {
        snprintf(err, errlen, "no %s field", missing);
        return -1;
    }
    if (p->mode != SL_STS_NONE && p->nmx == 0) {
        snprintf(err, errlen, "mode %s without an mx field", sl_sts_mode_name(p->mode));
        return -1;
    }
    return 0;
}

/* sl_sts_parse - a policy body; lines end in LF or CRLF, blank lines are skipped */
int sl_sts_parse(const char *text, size_t len, struct sl_sts_policy *p, char *err, size_t errlen)
{
    struct seen s = {false, false, false};
    unsigned lineno = 0;

    memset(p, 0, sizeof *p);
    if (len > SL_STS_BODY_MAX) {
        snprintf(err, errlen, "policy larger than %d bytes", SL_STS_BODY_MAX);
        return -1;
    }
    if (memchr(text, '\0', len) != NULL) {
        snprintf(err, errlen, "policy holds a NUL byte");
        return -1;
    }
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : len, n = end - pos;

        lineno++;
        if (n > 0 && text[pos + n - 1] == '\r')
            n--;
        if (n > 0 && parse_line(p, &s, text + pos, n, lineno, err, errlen) < 0) {
            memset(p, 0, sizeof *p);
            return -1;
        }
        pos = end + 1;
    }
    if (check_complete(p, &s, err, errlen) < 0) {
        memset(p, 0, sizeof *p);
        return -1;
    }
    return 0;
}

/* sl_sts_mx_matches - RFC 8461 4.1: exact, or "*." and exactly one more label */
bool sl_sts_mx_matches(const struct sl_sts_policy *p, const char *mx)
{
    char host[256];
    size_t n = strlen(mx);

    if (p == NULL || n == 0 || n >= sizeof host)
        return false;
    for (size_t i = 0; i <= n; i++)
        host[i] = (char)tolower((unsigned char)mx[i]);
    if (host[n - 1] == '.')
        host[--n] = '\0';
    for (size_t i = 0; i < p->nmx; i++) {
        const char *pat = p->mx[i], *dot;

        if (strncmp(pat, "*.", 2) != 0) {
            if (strcmp(pat, host) == 0)
                return true;
            continue;
        }
        dot = strchr(host, '.');
        /* the wildcard stands for one whole, non-empty leftmost label */
        if (dot != NULL && dot != host && strcmp(dot + 1, pat + 2) == 0)
            return true;
    }
    return false;
}

/* txt_field - the next "name=value" of a TXT record, *WSP around, ';' between */
static bool txt_field(const char **s, char *name, size_t namelen, char *val, size_t vallen)
{
    const char *p = *s, *eq, *end;

    while (is_wsp(*p))
        p++;
    if (*p == '\0')
        return false;
    end = p + strcspn(p, ";");
    eq = memchr(p, '=', (size_t)(end - p));
    if (eq == NULL || (size_t)(eq - p) >= namelen)
        name[0] = '\0';
    else
        strlcpy(name, p, (size_t)(eq - p) + 1);
    if (eq != NULL) {
        const char *ve = end;
        size_t n;
        while (ve > eq + 1 && is_wsp(ve[-1]))
            ve--;
        n = (size_t)(ve - (eq + 1));
        strlcpy(val, eq + 1, n + 1 < vallen ? n + 1 : vallen);
    } else {
        val[0] = '\0';
    }
    *s = *end == ';' ? end + 1 : end;
    return true;
}

/* id_ok - sts-id: 1*32(ALPHA / DIGIT) */
static bool id_ok(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]))
            return false;
    return true;
}

/* record_id - the id of one "v=STSv1; id=...;" record (v first, other fields ignored) */
static bool record_id(const char *rec, char id[33], char *err, size_t errlen)
{
    char name[16], val[256];
    const char *p = rec;
    bool have = false;

    if (!txt_field(&p, name, sizeof name, val, sizeof val) || strcmp(name, "v") != 0 ||
        strcmp(val, "STSv1") != 0) {
        snprintf(err, errlen, "TXT record does not start with v=STSv1");
        return false;
    }
    while (txt_field(&p, name, sizeof name, val, sizeof val)) {
        if (strcmp(name, "id") != 0 || have)
            continue;
        if (!id_ok(val)) {
            snprintf(err, errlen, "TXT record id \"%.40s\" is not 1 to 32 letters and digits", val);
            return false;
        }
        strlcpy(id, val, 33);
        have = true;
    }
    if (!have)
        snprintf(err, errlen, "TXT record has no id");
    return have;
}

/* sl_sts_txt_id - RFC 8461 3.1: records not starting with "v=STSv1" are
 * discarded; anything but exactly one left means no policy */
int sl_sts_txt_id(const char (*rec)[SL_DNS_TXT_MAX], size_t n, char id[33], char *err,
                  size_t errlen)
{
    size_t found = 0, which = 0;

    for (size_t i = 0; i < n; i++) {
        const char *r = rec[i];
        while (is_wsp(*r))
            r++;
        if (strncmp(r, "v=STSv1", 7) == 0 && (r[7] == ';' || r[7] == '\0' || is_wsp(r[7]))) {
            found++;
            which = i;
        }
    }
    if (found == 0) {
        snprintf(err, errlen, "no v=STSv1 TXT record");
        return 0;
    }
    if (found > 1) {
        snprintf(err, errlen, "%zu v=STSv1 TXT records", found);
        return -1;
    }
    return record_id(rec[which], id, err, errlen) ? 1 : -1;
}
