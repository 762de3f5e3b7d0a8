/*
 * domain_index.c - the literal [domain "NAME"] sections by name, for
 * sl_config_eval.
 *
 * A config with a stanza per destination domain (a route, a limit, a TLS
 * policy each) has thousands of them; without this index every lookup of a
 * domain's option walked every section that sets the option.  The index
 * hashes the literal domain sections by their name (lower case, no final dot,
 * as the header parser stores them) and keeps, per option, the setters that
 * are not such sections (regexes, bindings, hosts, pairs, [global]), which
 * stay few, and the same per scope: a lookup finds the domain's own stanza in
 * one probe, then walks only those.  Built once when the file is loaded,
 * immutable after.
 * Concurrency: read-only once built; any number of readers.
 * Trust boundary: the names looked up come from recipients and MX records;
 * they are only hashed and compared.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/sl_config.h"
#include "util/sl_msg.h"
#include "config_impl.h"

/* One name: its literal [domain] sections, in file order. */
struct entry {
    const char *name; /* the sections' own string */
    struct sl_section **s;
    size_t n;
};

struct sl_domain_index {
    struct entry *slot; /* open addressing; name NULL: empty */
    size_t mask;
    struct sl_setters rest[SL_OPT__COUNT]; /* per option, the setters not indexed here */
    struct sl_setters of[SL_SC__COUNT];    /* per scope, its sections but literal [domain] */
};

/* literal_domain - a [domain "NAME"] section, not a regex */
static bool literal_domain(const struct sl_section *s)
{
    return s->scope == SL_SC_DOMAIN && s->regex == NULL && s->domain != NULL;
}

/* hash_name - FNV-1a of the first len bytes of name, lower-cased (ASCII: the comparison that
 * name_eq makes with strncasecmp) */
static uint64_t hash_name(const char *name, size_t len)
{
    uint64_t h = 14695981039346656037u;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32u : c)) * 1099511628211u;
    }
    return h;
}

/* probe - the slot of name (len bytes), or the empty slot where it would go */
static struct entry *probe(const struct sl_domain_index *x, const char *name, size_t len)
{
    size_t i = (size_t)hash_name(name, len) & x->mask;

    while (x->slot[i].name != NULL &&
           !(strlen(x->slot[i].name) == len && strncasecmp(x->slot[i].name, name, len) == 0))
        i = (i + 1) & x->mask;
    return &x->slot[i];
}

/* add_rest - s sets opt and is not indexed by name */
static void add_rest(struct sl_setters *t, struct sl_section *s)
{
    t->s = sl_realloc(t->s, (t->n + 1) * sizeof *t->s);
    t->s[t->n++] = s;
}

/* sl_domain_index_build - the index of cfg's sections (after the whole file is loaded) */
struct sl_domain_index *sl_domain_index_build(const struct sl_config *cfg)
{
    struct sl_domain_index *x = sl_calloc(1, sizeof *x);
    size_t size = 16;

    while (size < 2 * cfg->nsections)
        size *= 2;
    x->slot = sl_calloc(size, sizeof *x->slot);
    x->mask = size - 1;
    for (size_t i = 0; i < cfg->nsections; i++) {
        struct sl_section *s = cfg->sections[i];
        if (literal_domain(s)) {
            struct entry *e = probe(x, s->domain, strlen(s->domain));
            e->name = s->domain;
            e->s = sl_realloc(e->s, (e->n + 1) * sizeof *e->s);
            e->s[e->n++] = s;
            continue;
        }
        add_rest(&x->of[s->scope], s);
        for (int opt = 0; opt < SL_OPT__COUNT; opt++)
            if (s->v[opt].set)
                add_rest(&x->rest[opt], s);
    }
    return x;
}

/* sl_domain_index_free - the index (NULL is fine) */
void sl_domain_index_free(struct sl_domain_index *x)
{
    if (x == NULL)
        return;
    for (size_t i = 0; i <= x->mask; i++)
        free(x->slot[i].s);
    for (int opt = 0; opt < SL_OPT__COUNT; opt++)
        free(x->rest[opt].s);
    for (int sc = 0; sc < SL_SC__COUNT; sc++)
        free(x->of[sc].s);
    free(x->slot);
    free(x);
}

/* entry_of - the entry of domain (its final dot ignored), empty when it has no section */
static const struct entry *entry_of(const struct sl_domain_index *x, const char *domain)
{
    size_t len = strlen(domain);

    if (len > 1 && domain[len - 1] == '.')
        len--;
    return probe(x, domain, len);
}

/* sl_domain_index_find - the first literal [domain] section of domain (its final dot
 * ignored) that sets opt, NULL when none does */
const struct sl_section *sl_domain_index_find(const struct sl_domain_index *x, enum sl_opt opt,
                                              const char *domain)
{
    const struct entry *e = entry_of(x, domain);

    for (size_t i = 0; i < e->n; i++)
        if (e->s[i]->v[opt].set)
            return e->s[i];
    return NULL;
}

/* sl_domain_index_named - the first literal [domain] section of domain (its final dot
 * ignored), NULL when there is none */
const struct sl_section *sl_domain_index_named(const struct sl_domain_index *x, const char *domain)
{
    const struct entry *e = entry_of(x, domain);

    return e->n > 0 ? e->s[0] : NULL;
}

/* sl_domain_index_scope - the sections of scope sc other than literal [domain] ones, in file
 * order; their number in *n */
struct sl_section *const *sl_domain_index_scope(const struct sl_domain_index *x, enum sl_scope sc,
                                                size_t *n)
{
    *n = x->of[sc].n;
    return x->of[sc].s;
}

/* sl_domain_index_rest - the sections that set opt other than literal [domain] ones, in file
 * order; their number in *n */
struct sl_section *const *sl_domain_index_rest(const struct sl_domain_index *x, enum sl_opt opt,
                                               size_t *n)
{
    *n = x->rest[opt].n;
    return x->rest[opt].s;
}
