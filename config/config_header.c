/*
 * config_header.c - parse one `[...]` section header of the INI file.
 *
 * The loader's reader hands every header line here before inih sees it, so
 * that empty sections exist, names longer than inih's 50 bytes survive, and a
 * `]` inside a quoted regex does not end the header.  A header names one scope
 * ([global], [binding "b"], [binding_group "g"], [domain "d"], [host "h"]) or
 * a pair: binding or binding_group, then domain or host.  Names are quoted
 * (\" is a quote), checked as a binding_group value (binding and group names)
 * or an ehlo_hostname (domains and hosts), and lower-cased, a domain or host
 * losing its final dot and, written in UTF-8, becoming its A-label (the form
 * the queue and DNS use: RFC 6531 mail); a /regex/ domain is kept as written
 * (it matches the A-label), and compiled caselessly when the loader creates
 * its section.  In-quote `]`, `;` and `#`
 * are masked in the line, in place, so that inih takes the whole line for a
 * header; the section string inih passes back is never used.  Errors are
 * reported through the loader, at its current line.
 * Concurrency: works on the caller's loader and line only; no global state.
 * Trust boundary: the header line is operator input.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "config/sl_config.h"
#include "config/sl_config_lint.h"
#include "util/sl_idna.h"
#include "util/sl_msg.h"
#include "config_impl.h"

#define MASK '\x1a' /* an in-quote `]`, `;` or `#` while inih reads a header */

enum kind { K_GLOBAL, K_BINDING, K_GROUP, K_DOMAIN, K_HOST, K__COUNT };
static const char *const kind_words[K__COUNT] = {"global", "binding", "binding_group", "domain",
                                                 "host"};
/* Section kinds whose headers other parts of the loader take before this file sees them
 * (config/rules.c, the listeners'): named in the "unknown section kind" error with the ones
 * above. */
static const char *const other_kinds[] = {"shaping", "listener"};
static const int single_scope[K__COUNT] = {SL_SC_GLOBAL, SL_SC_BINDING, SL_SC_BINDING_GROUP,
                                           SL_SC_DOMAIN, SL_SC_HOST};

/* lower - lower-case a name in place: names are matched case-insensitively */
static void lower(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* kind_of - the section keyword spelled by n bytes at p, or -1 */
static int kind_of(const char *p, size_t n)
{
    for (int k = 0; k < K__COUNT; k++)
        if (strlen(kind_words[k]) == n && strncasecmp(p, kind_words[k], n) == 0)
            return k;
    return -1;
}

/* expected_kinds - "global, binding, ... or listener": every section kind, for an error */
static void expected_kinds(char *buf, size_t len)
{
    const size_t nother = sizeof other_kinds / sizeof other_kinds[0], n = K__COUNT + nother;
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && off < len; i++) {
        const char *word = i < K__COUNT ? kind_words[i] : other_kinds[i - K__COUNT];
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + off, len - off, "%s%s", sep, word);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

/* quoted - take a "name" at *pp (\" is a quote); masks `]`, `;`, `#` in place for inih */
static char *quoted(char **pp)
{
    char *p = *pp + 1;
    char *out = sl_malloc(strlen(p) + 1);
    size_t n = 0;

    for (; *p != '\0' && *p != '"'; p++) {
        if (p[0] == '\\' && p[1] == '"')
            p++;
        out[n++] = *p;
        if (*p == ']' || *p == ';' || *p == '#')
            *p = MASK;
    }
    if (*p != '"') {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *pp = p + 1;
    return out;
}

/* pair_scope - the scope of [K1 "a" K2 "b"], or -1 when no such pair exists */
static int pair_scope(int k1, int k2)
{
    if (k1 == K_BINDING && k2 == K_DOMAIN)
        return SL_SC_BINDING_DOMAIN;
    if (k1 == K_BINDING && k2 == K_HOST)
        return SL_SC_BINDING_HOST;
    if (k1 == K_GROUP && k2 == K_DOMAIN)
        return SL_SC_GROUP_DOMAIN;
    if (k1 == K_GROUP && k2 == K_HOST)
        return SL_SC_GROUP_HOST;
    return -1;
}

/* tokens - split a header into up to two keyword/name pairs; the reason on failure */
static const char *tokens(char *p, int kinds[2], char *names[2], int *nk, struct loader *L)
{
    for (p++;; *nk += 1) {
        size_t n;
        p += strspn(p, " \t");
        if (*p == ']')
            break;
        if (*p == '\0')
            return "missing ']'";
        if (*nk == 2)
            return "a section header names at most two scopes";
        n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-");
        if (n == 0)
            return "expected a section keyword";
        kinds[*nk] = kind_of(p, n);
        if (kinds[*nk] < 0) {
            char expected[200];
            expected_kinds(expected, sizeof expected);
            sl_config_report(L, L->lineno, "unknown section kind \"%.*s\" (expected %s)", (int)n, p,
                             expected);
            return "";
        }
        p += n + strspn(p + n, " \t");
        if (kinds[*nk] == K_GLOBAL)
            continue;
        if (*p != '"')
            return "expected a quoted name after the section keyword";
        if ((names[*nk] = quoted(&p)) == NULL)
            return "unterminated quoted name";
    }
    p += 1 + strspn(p + 1, " \t");
    if (*p != '\0' && *p != ';' && *p != '#')
        return "unexpected text after ']'";
    return NULL;
}

/* alabel - a UTF-8 domain or host name replaced by its A-label (IDNA2008), so that a
 * section matches the domain whatever form the operator wrote it in; false (reported) when
 * it is no valid IDN */
static bool alabel(struct loader *L, int kind, char **namep)
{
    char a[SL_IDNA_NAME_MAX];

    if (sl_idna_ascii(*namep, strlen(*namep)))
        return true;
    if (!sl_idna_alabel(*namep, strlen(*namep), a, sizeof a)) {
        sl_config_report(L, L->lineno,
                         "bad %s name \"%s\": not a valid internationalised "
                         "domain name (IDNA2008)",
                         kind_words[kind], *namep);
        return false;
    }
    free(*namep);
    *namep = sl_strdup(a);
    return true;
}

/* check_name - validate (and normalise) one name of a header */
static bool check_name(struct loader *L, int kind, char **namep)
{
    const struct sl_optdef *namedef = sl_opt_def(SL_OPT_BINDING_GROUP);
    const struct sl_optdef *hostdef = sl_opt_def(SL_OPT_EHLO_HOSTNAME);
    char *name = *namep;
    size_t n = strlen(name);
    struct sl_value v;
    char err[256];

    if (kind == K_DOMAIN && name[0] == '/') {
        if (n >= 3 && name[n - 1] == '/')
            return true;
        sl_config_report(L, L->lineno, "bad domain \"%s\": a regex is written /regex/", name);
        return false;
    }
    if (kind == K_HOST && name[0] == '/') {
        sl_config_report(L, L->lineno,
                         "bad host \"%s\": a host section names one MX host, not a regex", name);
        return false;
    }
    if ((kind == K_DOMAIN || kind == K_HOST) && !alabel(L, kind, namep))
        return false;
    name = *namep;
    n = strlen(name);
    lower(name);
    if (n > 1 && name[n - 1] == '.' && (kind == K_DOMAIN || kind == K_HOST))
        name[n - 1] = '\0';
    if (sl_value_parse(kind == K_BINDING || kind == K_GROUP ? namedef : hostdef, name, &v, err,
                       sizeof err))
        return true;
    sl_config_report(L, L->lineno, "bad %s name \"%s\": %s", kind_words[kind], name, err);
    return false;
}

/* sl_config_parse_header - read "[kind "name" ...]" into h; false (reported) if malformed */
bool sl_config_parse_header(struct loader *L, char *line, struct header *h)
{
    int kinds[2] = {-1, -1}, nk = 0, scope = -1;
    char *names[2] = {NULL, NULL}, *raw = sl_strdup(line), fix[1100];
    const char *why = tokens(line, kinds, names, &nk, L);
    bool ok = why == NULL;

    if (ok && nk == 1)
        scope = single_scope[kinds[0]];
    else if (ok && nk == 2)
        scope = pair_scope(kinds[0], kinds[1]);
    if (ok && scope < 0) {
        why = nk == 0 ? "empty section header"
                      : "unknown section kind: a pair is binding or binding_group, then "
                        "domain or host";
        ok = false;
    }
    for (int i = 0; ok && i < nk; i++)
        ok = kinds[i] == K_GLOBAL || check_name(L, kinds[i], &names[i]);
    if (why != NULL && *why != '\0' && sl_config_header_fix(raw, fix, sizeof fix))
        sl_config_report(L, L->lineno, "malformed section header: %s; write it as %s", why, fix);
    else if (why != NULL && *why != '\0')
        sl_config_report(L, L->lineno, "malformed section header: %s", why);
    free(raw);
    *h = (struct header){.scope = (enum sl_scope)(scope < 0 ? 0 : scope)};
    for (int i = 0; ok && i < nk; i++) {
        char **slot[K__COUNT] = {NULL, &h->binding, &h->group, &h->domain, &h->host};
        if (slot[kinds[i]] != NULL)
            *slot[kinds[i]] = names[i];
        names[i] = NULL;
    }
    free(names[0]);
    free(names[1]);
    return ok;
}

/* sl_config_compile_domain - the PCRE2 code of a /regex/ domain, or NULL with the error reported */
void *sl_config_compile_domain(struct loader *L, const char *domain)
{
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE offset;
    pcre2_code *re;
    int code;

    re = pcre2_compile((PCRE2_SPTR)(domain + 1), strlen(domain) - 2, PCRE2_CASELESS, &code, &offset,
                       NULL);
    if (re != NULL)
        return re;
    pcre2_get_error_message(code, msg, sizeof msg);
    sl_config_report(L, L->lineno, "bad regex %s: %s at offset %zu", domain, (const char *)msg,
                     (size_t)offset);
    return NULL;
}
