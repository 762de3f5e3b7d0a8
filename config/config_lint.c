/*
 * config_lint.c - the linter of `sluicectl config check` (sl_config_lint.h):
 * "did you mean" for a misspelt option, the fixed form of a malformed section
 * header, and warnings about a config that loads but likely does not do what
 * its author meant.
 *
 * Warnings never refuse a config (the daemon loads it as before); `config
 * check` prints them and exits 0 unless --strict.  Each is one line,
 * FILE:LINE: warning: text, at the line that should change.
 * Concurrency: reads an immutable config; getifaddrs for the host's addresses.
 * Trust boundary: the file is the operator's; names are printed as written.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "config/sl_config_lint.h"
#include "util/sl_msg.h"
#include "config_impl.h"

#define NAMES_MAX 2048 /* the list of bindings in one warning */

/* ---- did you mean ---- */

/* distance - Levenshtein distance of a and b (case-insensitive), capped at 99 */
static unsigned distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned row[64], prev;

    if (la >= 63 || lb >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            unsigned best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            prev = row[j];
            row[j] = best;
        }
    }
    return row[lb];
}

/* sl_config_suggest_option - the option a typo most likely meant, or NULL */
const char *sl_config_suggest_option(const char *key)
{
    const char *best = NULL;
    unsigned bestd = 99, limit = (unsigned)strlen(key) / 3;

    if (limit > 3)
        limit = 3;
    if (limit < 1)
        limit = 1;
    for (int i = 0; i < SL_OPT__COUNT; i++) {
        const struct sl_optdef *d = sl_opt_def((enum sl_opt)i);
        unsigned dn = distance(key, d->name);
        unsigned da = d->alias != NULL ? distance(key, d->alias) : 99;
        if ((dn < da ? dn : da) < bestd) {
            bestd = dn < da ? dn : da;
            best = d->name;
        }
    }
    return bestd <= limit ? best : NULL;
}

/* ---- the fixed form of a header ---- */

/* kind_word - a section keyword as the file should spell it, or NULL */
static const char *kind_word(const char *w)
{
    static const char *const words[][2] = {
        {"global", "global"},
        {"binding", "binding"},
        {"binding_group", "binding_group"},
        {"binding-group", "binding_group"},
        {"bindinggroup", "binding_group"},
        {"group", "binding_group"},
        {"domain", "domain"},
        {"host", "host"},
    };

    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasecmp(w, words[i][0]) == 0)
            return words[i][1];
    return NULL;
}

/* next_word - the next word of s (a quoted one may hold blanks), into buf; NULL at the end */
static const char *next_word(const char *s, char *buf, size_t len)
{
    size_t n = 0;
    char q = 0;

    s += strspn(s, " \t");
    if (*s == '\0')
        return NULL;
    if (*s == '"' || *s == '\'')
        q = *s++;
    for (; *s != '\0' && (q ? *s != q : *s != ' ' && *s != '\t'); s++)
        if (n + 1 < len)
            buf[n++] = *s;
    if (q && *s == q)
        s++;
    buf[n] = '\0';
    return s;
}

/* sl_config_header_fix - "[binding example domain example.com]" -> [binding "example" ...] */
bool sl_config_header_fix(const char *raw, char *out, size_t len)
{
    char body[1024], w[4][512];
    const char *p = body, *k[2];
    size_t n = 0, blen;

    raw += strspn(raw, " \t[");
    strlcpy(body, raw, sizeof body);
    blen = strlen(body);
    while (blen > 0 && strchr(" \t\r\n]{", body[blen - 1]) != NULL)
        body[--blen] = '\0'; /* also Momentum's "Binding example {" */
    while (n < 4 && (p = next_word(p, w[n], sizeof w[n])) != NULL)
        n++;
    if (p != NULL && next_word(p, w[0], sizeof w[0]) != NULL)
        return false; /* more than two pairs: no guess */
    if (n == 1 && (k[0] = kind_word(w[0])) != NULL && strcmp(k[0], "global") == 0) {
        snprintf(out, len, "[global]");
        return true;
    }
    if ((n != 2 && n != 4) || (k[0] = kind_word(w[0])) == NULL || strcmp(k[0], "global") == 0)
        return false;
    if (n == 2) {
        snprintf(out, len, "[%s \"%s\"]", k[0], w[1]);
        return true;
    }
    if ((k[1] = kind_word(w[2])) == NULL || strncmp(k[0], "binding", 7) != 0 ||
        (strcmp(k[1], "domain") != 0 && strcmp(k[1], "host") != 0))
        return false;
    snprintf(out, len, "[%s \"%s\" %s \"%s\"]", k[0], w[1], k[1], w[3]);
    return true;
}

/* ---- warnings ---- */

/* warn - one warning line into w */
__attribute__((format(printf, 4, 5))) static void warn(struct sl_diag *w, const char *file,
                                                       unsigned line, const char *fmt, ...)
{
    char text[2048], full[2300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s:%u: warning: %s", file, line, text);
    w->lines = sl_realloc(w->lines, (w->n + 1) * sizeof *w->lines);
    w->lines[w->n++] = sl_strdup(full);
}

/* lint_regex - a /regex/ domain without ^ and $ matches any domain containing it */
static size_t lint_regex(const struct sl_config *cfg, struct sl_diag *w)
{
    size_t n = 0;

    for (size_t i = 0; i < cfg->nsections; i++) {
        const struct sl_section *s = cfg->sections[i];
        size_t len;
        char name[1100];
        if (s->regex == NULL || (len = strlen(s->domain)) < 2)
            continue;
        bool head = s->domain[1] == '^', tail = len >= 3 && s->domain[len - 2] == '$';
        char plain[512];
        size_t k = 0;
        if (head && tail)
            continue;
        for (size_t j = 1; j + 1 < len && k + 1 < sizeof plain; j++)
            if (s->domain[j] != '\\' && s->domain[j] != '^' && s->domain[j] != '$')
                plain[k++] = s->domain[j]; /* the example a reader would type */
        plain[k] = '\0';
        sl_section_name(s, name, sizeof name);
        warn(w, cfg->path, s->line,
             "%s: the regex is not anchored, so it also matches other domains (say \"%s%s%s\"); "
             "anchor it: /%s%.*s%s/",
             name, head ? "" : "not", plain, tail ? "" : ".example", head ? "" : "^",
             (int)(len - 2), s->domain + 1, tail ? "" : "$");
        n++;
    }
    return n;
}

/* local_address - does an interface of this host have ip (or its loopback net cover it) */
static bool local_address(const struct ifaddrs *ifs, const char *ip)
{
    unsigned char want[16];
    int family = strchr(ip, ':') ? AF_INET6 : AF_INET;

    if (inet_pton(family, ip, want) != 1)
        return true; /* not an address we can judge */
    if (family == AF_INET && (want[0] == 0 || want[0] == 127))
        return true; /* any address, or 127/8 (all local on Linux) */
    for (const struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != family)
            continue;
        const void *have = family == AF_INET
                               ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                               : (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
        if (memcmp(have, want, family == AF_INET ? 4 : 16) == 0)
            return true;
    }
    return family == AF_INET6 && memcmp(want, in6addr_any.s6_addr, 16) == 0;
}

/* lint_local - every bind_address set must be one of this host's addresses */
static size_t lint_local(const struct sl_config *cfg, struct sl_diag *w)
{
    struct ifaddrs *ifs = NULL;
    size_t n = 0;

    if (getifaddrs(&ifs) < 0)
        return 0; /* cannot tell: say nothing rather than something wrong */
    for (size_t i = 0; i < cfg->nsections; i++) {
        const struct sl_value *v = &cfg->sections[i]->v[SL_OPT_BIND_ADDRESS];
        char name[1100];
        if (!v->set || v->str == NULL || local_address(ifs, v->str))
            continue;
        sl_section_name(cfg->sections[i], name, sizeof name);
        warn(w, cfg->path, v->line,
             "bind_address %s in %s is not configured on this host: every connection from it "
             "will fail (\"Cannot assign requested address\")",
             v->str, name);
        n++;
    }
    freeifaddrs(ifs);
    return n;
}

/* lint_shared - two bindings that send from one address */
static size_t lint_shared(const struct sl_config *cfg, struct sl_diag *w)
{
    size_t n = 0;

    for (size_t i = 0; i < cfg->nbindings; i++) {
        struct sl_scope_ref ri = {.binding = cfg->bindings[i].name};
        const struct sl_section *from = NULL;
        struct sl_value vi;
        char err[256];
        if (!sl_config_eval(cfg, SL_OPT_BIND_ADDRESS, &ri, &vi, &from, err, sizeof err) ||
            !vi.set || vi.str == NULL || from == NULL)
            continue;
        for (size_t j = 0; j < i; j++) {
            struct sl_scope_ref rj = {.binding = cfg->bindings[j].name};
            const char *other = sl_config_str(cfg, SL_OPT_BIND_ADDRESS, &rj);
            if (other == NULL || strcmp(other, vi.str) != 0)
                continue;
            warn(w, cfg->path, vi.line,
                 "bindings \"%s\" and \"%s\" both send from bind_address %s: receivers see one "
                 "sender, while each binding counts its connections apart",
                 cfg->bindings[j].name, cfg->bindings[i].name, vi.str);
            n++;
            break;
        }
    }
    return n;
}

/* Bindings for which one section beats a [domain] section's value. */
struct winner {
    const struct sl_section *s;
    char names[NAMES_MAX];
};

/* shadow_one - opt of the [domain] section s, against every binding */
static size_t shadow_one(const struct sl_config *cfg, const struct sl_section *s, enum sl_opt opt,
                         struct sl_diag *w)
{
    struct winner win[8];
    size_t nwin = 0;
    char sect[1100], by[1100], mine[256], theirs[256];

    for (size_t b = 0; b < cfg->nbindings; b++) {
        struct sl_scope_ref ref = {.binding = cfg->bindings[b].name, .domain = s->domain};
        const struct sl_section *from = NULL;
        struct sl_value v;
        char err[256];
        size_t k;
        if (!sl_config_eval(cfg, opt, &ref, &v, &from, err, sizeof err) || from == NULL ||
            from == s || from->domain != NULL)
            continue; /* a section for this domain too is more specific: meant to win */
        for (k = 0; k < nwin && win[k].s != from; k++)
            continue;
        if (k == nwin) {
            if (nwin == sizeof win / sizeof win[0])
                continue;
            win[nwin].s = from;
            win[nwin++].names[0] = '\0';
        }
        if (win[k].names[0] != '\0')
            strlcat(win[k].names, ", ", sizeof win[k].names);
        strlcat(win[k].names, cfg->bindings[b].name, sizeof win[k].names);
    }
    sl_section_name(s, sect, sizeof sect);
    sl_value_format(opt, &s->v[opt], mine, sizeof mine);
    for (size_t k = 0; k < nwin; k++) {
        sl_section_name(win[k].s, by, sizeof by);
        sl_value_format(opt, &win[k].s->v[opt], theirs, sizeof theirs);
        warn(w, cfg->path, s->v[opt].line,
             "%s = %s in %s is shadowed for binding%s %s by %s (%s:%u) = %s, which the chain "
             "puts first (see config eval --explain --chain)",
             sl_opt_name(opt), mine, sect, strchr(win[k].names, ',') ? "s" : "", win[k].names, by,
             cfg->path, win[k].s->v[opt].line, theirs);
    }
    return nwin;
}

/* lint_shadow - [domain] values that some bindings never see */
static size_t lint_shadow(const struct sl_config *cfg, struct sl_diag *w)
{
    size_t n = 0;

    for (size_t i = 0; i < cfg->nsections; i++) {
        const struct sl_section *s = cfg->sections[i];
        if (s->scope != SL_SC_DOMAIN || s->regex != NULL)
            continue; /* a regex names no one domain to ask about */
        for (int o = 0; o < SL_OPT__COUNT; o++)
            if (s->v[o].set && sl_opt_def((enum sl_opt)o)->chain == SL_CHAIN_GENERAL)
                n += shadow_one(cfg, s, (enum sl_opt)o, w);
    }
    return n;
}

/* The path's length, for the line-number sort: qsort has no context argument. */
static size_t sort_prefix;

/* by_line - warnings in file order (the number after "FILE:") */
static int by_line(const void *a, const void *b)
{
    unsigned long la = strtoul(*(char *const *)a + sort_prefix, NULL, 10);
    unsigned long lb = strtoul(*(char *const *)b + sort_prefix, NULL, 10);

    return la < lb ? -1 : la > lb;
}

/* sl_config_lint - every warning about cfg, in file order */
size_t sl_config_lint(const struct sl_config *cfg, struct sl_diag *w)
{
    size_t first = w->n;
    size_t n = lint_regex(cfg, w) + lint_local(cfg, w) + lint_shared(cfg, w) + lint_shadow(cfg, w);

    sort_prefix = strlen(cfg->path) + 1;
    if (n > 1)
        qsort(w->lines + first, n, sizeof *w->lines, by_line);
    return n;
}
