/*
 * config_load.c - read the INI file into an sl_config and validate it whole.
 *
 * inih splits the lines into key and value; our reader feeds it the file one
 * line at a time and does what inih cannot: it counts lines (inih's handler is
 * not told the line number), strips leading blanks (inih would take an
 * indented key for a multi-line continuation), refuses over-long lines (inih
 * would split them in two), and hands every section header to
 * config_header.c, which parses it and masks it in place for inih.  The
 * section string inih passes back is never used: the handler files each key
 * under the reader's current section.  Sections of the same header merge;
 * once the file is read, the scopes are linked (groups, bindings) and checked
 * across sections.  Every error is collected as FILE:LINE: message, sorted by
 * line; a file with any error is refused whole, else the config is handed over.
 * Concurrency: one loader per call and no global state (inih keeps none).
 * Trust boundary: the whole file is operator input.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "config/sl_config.h"
#include "config/sl_config_lint.h"
#include "util/sl_msg.h"
#include "config_impl.h"

#define MAX_FILE    (16u * 1024 * 1024) /* a config beyond this is a mistake, not a config */
#define CA_FILE_MAX (16 * 1024 * 1024)  /* a CA bundle is a few hundred KB */
#define SC_GROUPS   (SCOPE(SL_SC_BINDING_GROUP) | SCOPE(SL_SC_GROUP_DOMAIN) | SCOPE(SL_SC_GROUP_HOST))
#define SC_BOUND    (SCOPE(SL_SC_BINDING) | SCOPE(SL_SC_BINDING_DOMAIN) | SCOPE(SL_SC_BINDING_HOST))

struct diag {
    unsigned line;
    size_t seq; /* keeps the order of errors on one line */
    char *text;
};

/* sl_config_report - collect one error at a line (0: about the whole file) */
void sl_config_report(struct loader *L, unsigned line, const char *fmt, ...)
{
    char msg[1024];
    size_t n;
    char *text;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    n = strlen(L->name) + strlen(msg) + 16;
    text = sl_malloc(n);
    if (line > 0)
        snprintf(text, n, "%s:%u: %s", L->name, line, msg);
    else
        snprintf(text, n, "%s: %s", L->name, msg);
    L->diags = sl_realloc(L->diags, (L->ndiags + 1) * sizeof *L->diags);
    L->diags[L->ndiags] = (struct diag){line, L->ndiags, text};
    L->ndiags++;
}

/* is_blank - the blanks stripped around lines (never the terminating NUL) */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* same - two optional names are equal */
static bool same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* new_section - an empty section of this scope, appended in file order */
static struct sl_section *new_section(struct sl_config *cfg, enum sl_scope sc, unsigned line)
{
    struct sl_section *s = sl_calloc(1, sizeof *s);

    s->scope = sc;
    s->line = line;
    s->index = (unsigned)cfg->nsections;
    cfg->sections = sl_realloc(cfg->sections, (cfg->nsections + 1) * sizeof *cfg->sections);
    cfg->sections[cfg->nsections++] = s;
    return s;
}

/* enter - the section a header names: an earlier one of the same scope merges */
static struct sl_section *enter(struct loader *L, struct header *h)
{
    struct sl_config *cfg = L->cfg;
    struct sl_section *s;
    void *re = NULL;

    for (size_t i = 0; i < cfg->nsections; i++) {
        s = cfg->sections[i];
        if (s->scope == h->scope && same(s->binding, h->binding) && same(s->group, h->group) &&
            same(s->domain, h->domain) && same(s->host, h->host)) {
            if (s->line == 0) /* the implicit [global] now has a header */
                s->line = L->lineno;
            goto merged;
        }
    }
    if (h->domain != NULL && h->domain[0] == '/' &&
        (re = sl_config_compile_domain(L, h->domain)) == NULL) {
        s = NULL;
        goto merged;
    }
    s = new_section(cfg, h->scope, L->lineno);
    s->binding = h->binding;
    s->group = h->group;
    s->domain = h->domain;
    s->host = h->host;
    s->regex = re;
    return s;
merged:
    free(h->binding);
    free(h->group);
    free(h->domain);
    free(h->host);
    return s;
}

/* scope_error - an option set where it has no meaning: say where it belongs */
static void scope_error(struct loader *L, const struct sl_section *s, int opt, const char *key)
{
    const struct sl_optdef *def = sl_opt_def((enum sl_opt)opt);
    char where[512], valid[256] = "";
    size_t used = 0;

    sl_section_name(s, where, sizeof where);
    for (int sc = 0; sc < SL_SC__COUNT; sc++)
        if ((def->scopes & SCOPE(sc)) && used < sizeof valid)
            used += (size_t)snprintf(valid + used, sizeof valid - used, "%s%s", used ? ", " : "",
                                     sl_scope_name((enum sl_scope)sc));
    if (opt == SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS &&
        (s->scope == SL_SC_BINDING || s->scope == SL_SC_BINDING_GROUP))
        sl_config_report(L, L->lineno,
                         "%s is not valid in %s: use a [%s \"%s\" domain \"D\"] section or "
                         "server_max_outbound_connections",
                         key, where, sl_scope_name(s->scope), s->binding ? s->binding : s->group);
    else if (opt == SL_OPT_CLUSTER_MAX_OUTBOUND_CONNECTIONS && (SCOPE(s->scope) & SC_GROUPS))
        sl_config_report(L, L->lineno,
                         "%s is not valid in %s: a cluster limit is never set for a binding_group "
                         "(valid in: %s; not in a binding that belongs to a group)",
                         key, where, valid);
    else
        sl_config_report(L, L->lineno, "%s is not valid in %s (a %s section); valid in: %s", key,
                         where, sl_scope_name(s->scope), valid);
}

/* unquote - a value written "like this" loses its quotes */
static char *unquote(char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v[n - 1] = '\0';
        return v + 1;
    }
    return v;
}

/* store - file one key = value under section s, or report why not.  Under a
 * bad header (s NULL) the key and value are still checked, so that one run
 * reports every error, but there is no scope to check them against. */
static void store(struct loader *L, struct sl_section *s, const char *key, const char *value)
{
    int opt = sl_opt_lookup(key);
    const struct sl_optdef *def = sl_opt_def((enum sl_opt)opt);
    char err[512], *copy, *text;
    struct sl_value v;

    if (key[0] == '\0') {
        sl_config_report(L, L->lineno, "missing option name before '='");
        return;
    }
    if (opt < 0) {
        const char *near = sl_config_suggest_option(key);
        sl_config_report(L, L->lineno, "unknown option \"%s\"%s%s%s", key,
                         near ? "; did you mean \"" : "", near ? near : "", near ? "\"?" : "");
        return;
    }
    if (s != NULL && !(def->scopes & SCOPE(s->scope))) {
        scope_error(L, s, opt, def->name);
        return;
    }
    if (s != NULL && s->v[opt].set) {
        sl_config_report(L, L->lineno, "duplicate %s (first set on line %u)", def->name,
                         s->v[opt].line);
        return;
    }
    copy = sl_strdup(value);
    text = unquote(copy);
    if (!sl_value_parse(def, text, &v, err, sizeof err)) {
        sl_config_report(L, L->lineno, "bad value \"%s\" for %s: %s", text, def->name, err);
    } else if (s != NULL) {
        v.line = L->lineno;
        if (sl_value_is_text(def->type))
            v.str = sl_strdup(text);
        s->v[opt] = v;
    }
    free(copy);
}

/* handler - inih's callback for each key: filed under the reader's current section */
static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct loader *L = user;

    (void)section; /* truncated by inih and masked by us: the reader knows better */
    if (L->in_rule)
        sl_rules_store(L, name, value);
    else if (L->lis != NULL)
        sl_config_listener_store(L, L->lis, name, value);
    else
        store(L, L->cur, name, value);
    return 1;
}

/* has_separator - a key line has '=' or ':' before any inline comment, as inih wants */
static bool has_separator(const char *s)
{
    bool was_blank = false;

    for (; *s != '\0'; s++) {
        if (*s == '=' || *s == ':')
            return true;
        if (was_blank && *s == ';')
            return false;
        was_blank = isspace((unsigned char)*s);
    }
    return false;
}

/* prepare - turn one file line into what inih should see (in str) */
static void prepare(struct loader *L, const char *line, size_t n, char *str, size_t num)
{
    struct header h;

    while (n > 0 && is_blank(line[0]))
        line++, n--;
    while (n > 0 && is_blank(line[n - 1]))
        n--;
    str[0] = '\0';
    if (n == 0 || line[0] == ';' || line[0] == '#')
        return; /* blank or comment: inih gets an empty line, whatever the length */
    if (line[0] == '[') {
        L->cur = NULL; /* until the header is known good */
        L->in_rule = false;
        L->lis = NULL;
    }
    if (memchr(line, '\0', n) != NULL) {
        sl_config_report(L, L->lineno, "NUL byte in line");
        return;
    }
    if (n >= num) {
        sl_config_report(L, L->lineno,
                         "line too long (%zu characters; at most %zu after leading blanks)", n,
                         num - 1);
        return;
    }
    memcpy(str, line, n);
    str[n] = '\0';
    if (str[0] == '[' && sl_rules_header(L, str)) {
        str[0] = '\0'; /* a [shaping] rule: its keys come to handler, for sl_rules_store */
    } else if (str[0] == '[' && sl_config_is_listener_header(str)) {
        L->lis = sl_config_listener_header(L, str);
        str[0] = '\0'; /* inih sees a blank line; the keys go to L->lis */
    } else if (str[0] == '[') {
        if (sl_config_parse_header(L, str, &h))
            L->cur = enter(L, &h);
        if (L->cur == NULL)
            str[0] = '\0';
    } else if (!has_separator(str)) {
        char fix[1100];
        if (sl_config_header_fix(str, fix, sizeof fix)) /* Momentum's "Binding b {" */
            sl_config_report(L, L->lineno,
                             "expected OPTION = VALUE or a [section] header; write "
                             "it as %s",
                             fix);
        else
            sl_config_report(L, L->lineno, "expected OPTION = VALUE or a [section] header");
        str[0] = '\0';
    }
}

/* reader - inih's fgets: the next line of the buffer, prepared */
static char *reader(char *str, int num, void *stream)
{
    struct loader *L = stream;
    const char *line = L->buf + L->pos;
    const char *nl;
    size_t n;

    if (L->pos >= L->len || num < 2)
        return NULL;
    nl = memchr(line, '\n', L->len - L->pos);
    n = nl != NULL ? (size_t)(nl - line) : L->len - L->pos;
    L->pos += n + (nl != NULL);
    L->lineno++;
    if (L->lineno == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3, n -= 3; /* a UTF-8 byte-order mark */
    prepare(L, line, n, str, (size_t)num);
    return str;
}

/* add_binding - one binding of the config, with its group if that exists */
static void add_binding(struct loader *L, struct sl_section *s, const char *name)
{
    struct sl_config *cfg = L->cfg;
    struct sl_binding b = {.name = sl_strdup(name), .section = s};
    const struct sl_value *g = s != NULL ? &s->v[SL_OPT_BINDING_GROUP] : NULL;

    if (g != NULL && g->set && (b.group = sl_config_group(cfg, g->str)) == NULL)
        sl_config_report(L, g->line,
                         "binding \"%s\" names binding_group \"%s\", which has no "
                         "[binding_group \"%s\"] section",
                         name, g->str, g->str);
    cfg->bindings = sl_realloc(cfg->bindings, (cfg->nbindings + 1) * sizeof *cfg->bindings);
    cfg->bindings[cfg->nbindings++] = b;
}

/* link_scopes - gather groups and bindings ("default" always exists) */
static void link_scopes(struct loader *L)
{
    struct sl_config *cfg = L->cfg;

    for (size_t i = 0; i < cfg->nsections; i++) {
        struct sl_section *s = cfg->sections[i];
        if (s->scope != SL_SC_BINDING_GROUP)
            continue;
        cfg->groups = sl_realloc(cfg->groups, (cfg->ngroups + 1) * sizeof *cfg->groups);
        cfg->groups[cfg->ngroups++] = sl_strdup(s->group);
    }
    for (size_t i = 0; i < cfg->nsections; i++)
        if (cfg->sections[i]->scope == SL_SC_BINDING)
            add_binding(L, cfg->sections[i], cfg->sections[i]->binding);
    if (sl_config_binding(cfg, "default") == NULL)
        add_binding(L, NULL, "default");
}

/* check_sections - pairs name declared scopes; no cluster limit in a grouped binding */
static void check_sections(struct loader *L)
{
    const struct sl_config *cfg = L->cfg;
    char where[512];

    for (size_t i = 0; i < cfg->nsections; i++) {
        const struct sl_section *s = cfg->sections[i];
        const struct sl_binding *b = s->binding ? sl_config_binding(cfg, s->binding) : NULL;
        const struct sl_value *cm = &s->v[SL_OPT_CLUSTER_MAX_OUTBOUND_CONNECTIONS];

        sl_section_name(s, where, sizeof where);
        if (s->binding != NULL && b == NULL)
            sl_config_report(L, s->line,
                             "%s: binding \"%s\" is not declared (no [binding \"%s\"] section)",
                             where, s->binding, s->binding);
        if (s->group != NULL && sl_config_group(cfg, s->group) == NULL)
            sl_config_report(
                L, s->line,
                "%s: binding_group \"%s\" is not declared (no [binding_group \"%s\"] section)",
                where, s->group, s->group);
        if ((SCOPE(s->scope) & SC_BOUND) && cm->set && b != NULL && b->group != NULL)
            sl_config_report(
                L, cm->line,
                "cluster_max_outbound_connections is not valid in %s: binding \"%s\" belongs "
                "to binding_group \"%s\"",
                where, b->name, b->group);
    }
}

/* check_ca_file - tls_ca_file must be a readable PEM bundle: found wrong at delivery time,
 * every verify, MTA-STS and DANE delivery would wait instead of the start failing.  Only a
 * regular file of at most CA_FILE_MAX bytes is read (opened without blocking, so a FIFO cannot
 * hang the check; /dev/zero or /dev/urandom are not regular files and are refused at once):
 * the same check runs at start and on every reload. */
static void check_ca_file(struct loader *L)
{
    const struct sl_value *v = &L->cfg->sections[0]->v[SL_OPT_TLS_CA_FILE];
    char line[256];
    bool pem = false;
    struct stat st;
    FILE *f;
    int fd;

    if (!v->set || v->str == NULL)
        return;
    if ((fd = open(v->str, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
        sl_config_report(L, v->line, "tls_ca_file %s: %s", v->str, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > CA_FILE_MAX) {
        sl_config_report(L, v->line, "tls_ca_file %s: %s", v->str,
                         !S_ISREG(st.st_mode) ? "not a regular file" : "larger than 16 MB");
        close(fd);
        return;
    }
    if ((f = fdopen(fd, "r")) == NULL) {
        sl_config_report(L, v->line, "tls_ca_file %s: %s", v->str, strerror(errno));
        close(fd);
        return;
    }
    while (!pem && ftell(f) < CA_FILE_MAX && fgets(line, sizeof line, f) != NULL)
        pem = strncmp(line, "-----BEGIN CERTIFICATE-----", 27) == 0;
    fclose(f);
    if (!pem)
        sl_config_report(L, v->line, "tls_ca_file %s: no PEM certificate in it", v->str);
}

/* by_line - order of the diagnostics: by line, then as found */
static int by_line(const void *a, const void *b)
{
    const struct diag *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* hand_over - move the diagnostics to d; the config only if there were none */
static struct sl_config *hand_over(struct loader *L, struct sl_diag *d)
{
    struct sl_config *cfg = L->cfg;

    if (L->ndiags > 0) {
        qsort(L->diags, L->ndiags, sizeof *L->diags, by_line);
        d->lines = sl_realloc(d->lines, (d->n + L->ndiags) * sizeof *d->lines);
        for (size_t i = 0; i < L->ndiags; i++)
            d->lines[d->n++] = L->diags[i].text;
        sl_config_free(cfg);
        cfg = NULL;
    }
    free(L->diags);
    return cfg;
}

/* index_setters - per option, the sections that set it (file order), for sl_config_eval */
static void index_setters(struct sl_config *cfg)
{
    cfg->setters = sl_calloc(SL_OPT__COUNT, sizeof *cfg->setters);
    for (size_t i = 0; i < cfg->nsections; i++)
        for (int opt = 0; opt < SL_OPT__COUNT; opt++) {
            struct sl_setters *t = &cfg->setters[opt];
            if (!cfg->sections[i]->v[opt].set)
                continue;
            t->s = sl_realloc(t->s, (t->n + 1) * sizeof *t->s);
            t->s[t->n++] = cfg->sections[i];
        }
}

/* sl_config_setters - the sections that set opt (config_impl.h) */
struct sl_section *const *sl_config_setters(const struct sl_config *cfg, enum sl_opt opt, size_t *n)
{
    if (cfg->setters != NULL) {
        *n = cfg->setters[opt].n;
        return cfg->setters[opt].s;
    }
    *n = cfg->nsections;
    return cfg->sections;
}

/* load_buffer - parse and validate len bytes of INI text */
static struct sl_config *load_buffer(const char *name, const char *buf, size_t len,
                                     struct sl_diag *d)
{
    struct loader L = {.name = name, .buf = buf, .len = len};
    int rc;

    L.cfg = sl_calloc(1, sizeof *L.cfg);
    L.cfg->path = sl_strdup(name);
    L.cur = new_section(L.cfg, SL_SC_GLOBAL, 0); /* keys before any header */
    rc = ini_parse_stream(reader, &L, handler, &L);
    if (rc != 0) { /* our reader hands inih only lines it accepts: should not happen */
        bool known = false;
        for (size_t i = 0; i < L.ndiags; i++)
            known |= rc > 0 && L.diags[i].line == (unsigned)rc;
        if (!known)
            sl_config_report(&L, rc > 0 ? (unsigned)rc : 0, "syntax error (inih: %d)", rc);
    }
    link_scopes(&L);
    check_sections(&L);
    check_ca_file(&L);
    sl_rules_check(&L);
    sl_config_check_cluster(&L);
    sl_config_listeners_check(&L);
    if (L.ndiags == 0) {
        index_setters(L.cfg);
        L.cfg->domains = sl_domain_index_build(L.cfg);
    }
    return hand_over(&L, d);
}

/* sl_config_load_string - load INI text; name plays FILE in the diagnostics */
struct sl_config *sl_config_load_string(const char *name, const char *text, struct sl_diag *d)
{
    return load_buffer(name, text, strlen(text), d);
}

#define NOT_REGULAR (-1) /* slurp's answer for a FIFO, a device, a directory */

/* slurp - the whole file in memory, or an errno (NOT_REGULAR: not a regular file, which is
 * never read: a FIFO would hang the check, /dev/zero would never end) */
static int slurp(const char *path, char **buf, size_t *len)
{
    size_t cap = 8192;
    ssize_t got = 1;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), err = 0;
    struct stat st;

    if (fd < 0)
        return errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return NOT_REGULAR;
    }
    *buf = sl_malloc(cap);
    for (*len = 0; got > 0 && err == 0;) {
        if (*len == cap)
            *buf = sl_realloc(*buf, cap *= 2);
        got = read(fd, *buf + *len, cap - *len);
        if (got < 0 && errno != EINTR)
            err = errno;
        else if (got > 0 && (*len += (size_t)got) > MAX_FILE)
            err = EFBIG;
    }
    close(fd);
    if (err != 0)
        free(*buf);
    return err;
}

/* sl_config_load - load and validate the file at path */
struct sl_config *sl_config_load(const char *path, struct sl_diag *d)
{
    struct sl_config *cfg;
    size_t len = 0;
    char *buf = NULL;
    int err = slurp(path, &buf, &len);

    if (err != 0) {
        size_t n = strlen(path) + 128;
        d->lines = sl_realloc(d->lines, (d->n + 1) * sizeof *d->lines);
        d->lines[d->n] = sl_malloc(n);
        snprintf(d->lines[d->n++], n, "%s: cannot read: %s", path,
                 err == NOT_REGULAR ? "not a regular file" : strerror(err));
        return NULL;
    }
    cfg = load_buffer(path, buf, len, d);
    free(buf);
    return cfg;
}

/* free_section - a section and everything it owns */
static void free_section(struct sl_section *s)
{
    free(s->binding);
    free(s->group);
    free(s->domain);
    free(s->host);
    pcre2_code_free(s->regex);
    for (int i = 0; i < SL_OPT__COUNT; i++)
        free(s->v[i].str);
    free(s);
}

/* sl_config_free - release a config whole (NULL is fine) */
void sl_config_free(struct sl_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nsections; i++)
        free_section(cfg->sections[i]);
    for (size_t i = 0; i < cfg->nbindings; i++)
        free(cfg->bindings[i].name);
    for (size_t i = 0; i < cfg->ngroups; i++)
        free(cfg->groups[i]);
    for (int opt = 0; cfg->setters != NULL && opt < SL_OPT__COUNT; opt++)
        free(cfg->setters[opt].s);
    free(cfg->setters);
    sl_domain_index_free(cfg->domains);
    sl_rules_free(cfg);
    sl_config_listeners_free(cfg);
    free(cfg->sections);
    free(cfg->bindings);
    free(cfg->groups);
    free(cfg->path);
    free(cfg);
}

/* sl_diag_free - release the collected diagnostics and empty d */
void sl_diag_free(struct sl_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->lines[i]);
    free(d->lines);
    d->lines = NULL;
    d->n = 0;
}
