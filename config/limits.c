/*
 * limits.c - which counters a connection takes, and the limit of each.
 *
 * This is where semantics.md's table "what each counter counts" becomes code.
 * A connection from binding B (in group G) to domain D through MX host H takes:
 *   binding_domain (B, D)  max_outbound_connections (general chain), capped by
 *                          scope_max in [binding B domain D]       always taken
 *   binding_host   (B, H)  max_outbound_connections (host chain)   when limited
 *   host           (H)     scope_max in [host H]                   when set
 *   group_domain   (G, X)  scope_max in each [binding_group G domain X] matching D
 *   domain         (X)     scope_max in each [domain X] matching D (a regex
 *                          stanza is ONE counter across its domains)
 *   binding        (B)     server_max in [binding B] or [binding_group G]
 *   server                 server_max, capped by scope_max, in [global]  always
 * Every matching domain stanza applies, not only the first: each is its own
 * counter, so a literal [domain "orange.fr"] and the wanadoo|orange regex are
 * both enforced at once.
 * Concurrency: pure functions of an immutable config, plus sl_shm_lookup.
 */
#include <stdio.h>
#include <string.h>

#include "config/sl_limits.h"
#include "util/sl_msg.h"
#include "config_impl.h"

/* tighter - the stricter of two limits, where -1 means none */
static int32_t tighter(int64_t a, int64_t b)
{
    if (a < 0)
        return (int32_t)b;
    if (b < 0)
        return (int32_t)a;
    return (int32_t)(a < b ? a : b);
}

/* eq - equal names, either may be NULL */
static bool eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcasecmp(a, b) == 0;
}

/* value - an option's value in one section, -1 when the section does not set it */
static int64_t value(const struct sl_section *s, enum sl_opt opt)
{
    return s != NULL && s->v[opt].set ? s->v[opt].num : -1;
}

/* scope_sections - the sections that may be of scope sc: once the config is indexed, those of
 * sc but the literal [domain] ones (found by name), else all */
static struct sl_section *const *scope_sections(const struct sl_config *cfg, enum sl_scope sc,
                                                size_t *n)
{
    if (cfg->domains != NULL)
        return sl_domain_index_scope(cfg->domains, sc, n);
    *n = cfg->nsections;
    return cfg->sections;
}

/* section - the section of this scope with exactly these names (no regex match) */
static const struct sl_section *section(const struct sl_config *cfg, enum sl_scope sc,
                                        const char *a, const char *b)
{
    size_t n;
    struct sl_section *const *list = scope_sections(cfg, sc, &n);

    if (sc == SL_SC_DOMAIN && cfg->domains != NULL && a != NULL) {
        const struct sl_section *s = sl_domain_index_named(cfg->domains, a);
        if (s != NULL)
            return s;
    }
    for (size_t i = 0; i < n; i++) {
        const struct sl_section *s = list[i];
        if (s->scope != sc)
            continue;
        switch (sc) {
        case SL_SC_GLOBAL:
            return s;
        case SL_SC_BINDING:
            if (eq(s->binding, a))
                return s;
            break;
        case SL_SC_BINDING_GROUP:
            if (eq(s->group, a))
                return s;
            break;
        case SL_SC_DOMAIN:
            if (eq(s->domain, a))
                return s;
            break;
        case SL_SC_HOST:
            if (eq(s->host, a))
                return s;
            break;
        case SL_SC_BINDING_DOMAIN:
            if (eq(s->binding, a) && eq(s->domain, b))
                return s;
            break;
        case SL_SC_GROUP_DOMAIN:
            if (eq(s->group, a) && eq(s->domain, b))
                return s;
            break;
        case SL_SC_BINDING_HOST:
            if (eq(s->binding, a) && eq(s->host, b))
                return s;
            break;
        case SL_SC_GROUP_HOST:
            if (eq(s->group, a) && eq(s->host, b))
                return s;
            break;
        default:
            break;
        }
    }
    return NULL;
}

/* pair_scope_max - scope_max of [binding B domain D]: literal first, then regexes in order */
static int64_t pair_scope_max(const struct sl_config *cfg, const char *b, const char *d)
{
    const struct sl_section *lit = section(cfg, SL_SC_BINDING_DOMAIN, b, d);

    if (lit != NULL && lit->regex == NULL && lit->v[SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS].set)
        return value(lit, SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS);
    size_t n;
    struct sl_section *const *list = scope_sections(cfg, SL_SC_BINDING_DOMAIN, &n);

    for (size_t i = 0; i < n; i++) {
        const struct sl_section *s = list[i];
        if (s->scope == SL_SC_BINDING_DOMAIN && s->regex != NULL && eq(s->binding, b) &&
            s->v[SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS].set && sl_section_matches_domain(s, d))
            return value(s, SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS);
    }
    return -1;
}

/* binding_server_max - server_max of [binding B], else of its group, else none */
static int64_t binding_server_max(const struct sl_config *cfg, const char *b)
{
    const struct sl_binding *bd = sl_config_binding(cfg, b);
    int64_t v;

    if (bd == NULL)
        return -1;
    v = value(bd->section, SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS);
    if (v < 0 && bd->group != NULL)
        v = value(section(cfg, SL_SC_BINDING_GROUP, bd->group, NULL),
                  SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS);
    return v;
}

/* general - an option along the general or host chain; -1 when ref is unknown */
static int64_t general(const struct sl_config *cfg, enum sl_opt opt, const char *b, const char *d,
                       const char *h)
{
    struct sl_scope_ref ref = {.binding = b, .domain = d, .host = h};
    struct sl_value v;
    char err[256];

    if (!sl_config_eval(cfg, opt, &ref, &v, NULL, err, sizeof err) || !v.set)
        return -1;
    return v.num;
}

/* sl_limits_for_key - the limit cfg gives a counter of this kind and key */
int32_t sl_limits_for_key(const struct sl_config *cfg, enum sl_scope_kind kind, const char *name,
                          const char *name2)
{
    const enum sl_opt smax = SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS;
    const struct sl_section *g = cfg->sections[0];

    switch (kind) {
    case SL_SCOPE_BINDING_DOMAIN:
        if (sl_config_binding(cfg, name) == NULL)
            return SL_LIMIT_NONE;
        return tighter(general(cfg, SL_OPT_MAX_OUTBOUND_CONNECTIONS, name, name2, NULL),
                       pair_scope_max(cfg, name, name2));
    case SL_SCOPE_BINDING_HOST:
        if (sl_config_binding(cfg, name) == NULL)
            return SL_LIMIT_NONE;
        return (int32_t)general(cfg, SL_OPT_MAX_OUTBOUND_CONNECTIONS, name, NULL, name2);
    case SL_SCOPE_HOST:
        return (int32_t)value(section(cfg, SL_SC_HOST, name, NULL), smax);
    case SL_SCOPE_GROUP_DOMAIN:
        return (int32_t)value(section(cfg, SL_SC_GROUP_DOMAIN, name, name2), smax);
    case SL_SCOPE_DOMAIN:
        return (int32_t)value(section(cfg, SL_SC_DOMAIN, name, NULL), smax);
    case SL_SCOPE_BINDING:
        return (int32_t)binding_server_max(cfg, name);
    case SL_SCOPE_SERVER:
        return tighter(general(cfg, SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS, NULL, NULL, NULL),
                       value(g, smax));
    case SL_SCOPE_RESERVE:
        return (int32_t)general(cfg, SL_OPT_SERVER_RESERVE_OUTBOUND_CONNECTIONS, NULL, NULL, NULL);
    case SL_SCOPE_CLUSTER:
        return sl_limits_cluster_for_key(cfg, name, name2);
    default:
        return SL_LIMIT_NONE;
    }
}

/* take - look a counter up (creating it) and set its limit for gen */
static bool take(struct sl_shm *shm, const struct sl_config *cfg, uint32_t owner, uint32_t gen,
                 enum sl_scope_kind kind, const char *name, const char *name2, uint32_t *slot)
{
    if (sl_shm_lookup(shm, kind, name, name2, owner, slot) != SL_SHM_OK)
        return false;
    sl_shm_set_limit(shm, *slot, sl_limits_for_key(cfg, kind, name, name2), gen);
    return true;
}

/* publish_one - create one configured counter; a full table is worth a warning */
static void publish_one(struct sl_shm *shm, const struct sl_config *cfg, uint32_t gen,
                        enum sl_scope_kind kind, const char *name, const char *name2)
{
    uint32_t slot;
    if (!take(shm, cfg, 0, gen, kind, name, name2, &slot))
        sl_msg_warn("counter table full: %s %s%s%s not shown until a connection uses it",
                    sl_scope_kind_name(kind), name, name2 ? " " : "", name2 ? name2 : "");
}

/* publish_bindings - a per-binding counter for every binding (of group g, if given) */
static void publish_bindings(struct sl_shm *shm, const struct sl_config *cfg, uint32_t gen,
                             enum sl_scope_kind kind, const char *g, const char *name2)
{
    for (size_t i = 0; i < cfg->nbindings; i++)
        if (g == NULL || eq(cfg->bindings[i].group, g))
            publish_one(shm, cfg, gen, kind, cfg->bindings[i].name, name2);
}

/* publish_section - the counters one section's limits define */
static void publish_section(struct sl_shm *shm, const struct sl_config *cfg, uint32_t gen,
                            const struct sl_section *s)
{
    const bool smax = s->v[SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS].set;
    const bool mox = s->v[SL_OPT_MAX_OUTBOUND_CONNECTIONS].set;
    const bool literal = s->regex == NULL;

    switch (s->scope) {
    case SL_SC_DOMAIN:
        if (smax)
            publish_one(shm, cfg, gen, SL_SCOPE_DOMAIN, s->domain, NULL);
        if (mox && literal)
            publish_bindings(shm, cfg, gen, SL_SCOPE_BINDING_DOMAIN, NULL, s->domain);
        break;
    case SL_SC_HOST:
        if (smax)
            publish_one(shm, cfg, gen, SL_SCOPE_HOST, s->host, NULL);
        if (mox)
            publish_bindings(shm, cfg, gen, SL_SCOPE_BINDING_HOST, NULL, s->host);
        break;
    case SL_SC_BINDING_DOMAIN:
        if ((smax || mox) && literal)
            publish_one(shm, cfg, gen, SL_SCOPE_BINDING_DOMAIN, s->binding, s->domain);
        break;
    case SL_SC_GROUP_DOMAIN:
        if (smax)
            publish_one(shm, cfg, gen, SL_SCOPE_GROUP_DOMAIN, s->group, s->domain);
        if (mox && literal)
            publish_bindings(shm, cfg, gen, SL_SCOPE_BINDING_DOMAIN, s->group, s->domain);
        break;
    case SL_SC_BINDING_HOST:
        if (mox)
            publish_one(shm, cfg, gen, SL_SCOPE_BINDING_HOST, s->binding, s->host);
        break;
    case SL_SC_GROUP_HOST:
        if (mox)
            publish_bindings(shm, cfg, gen, SL_SCOPE_BINDING_HOST, s->group, s->host);
        break;
    default:
        break;
    }
}

/* sl_limits_publish - create every counter the config names, with its limit */
void sl_limits_publish(const struct sl_config *cfg, struct sl_shm *shm, uint32_t gen)
{
    publish_one(shm, cfg, gen, SL_SCOPE_SERVER, "", NULL);
    publish_one(shm, cfg, gen, SL_SCOPE_RESERVE, "", NULL);
    for (size_t i = 0; i < cfg->nbindings; i++)
        if (binding_server_max(cfg, cfg->bindings[i].name) >= 0)
            publish_one(shm, cfg, gen, SL_SCOPE_BINDING, cfg->bindings[i].name, NULL);
    for (size_t i = 0; i < cfg->nsections; i++)
        publish_section(shm, cfg, gen, cfg->sections[i]);
    sl_limits_cluster_publish(cfg, shm, gen);
}

/* What the reload walk needs at each live counter. */
struct refresh {
    const struct sl_config *cfg;
    struct sl_shm *shm;
    uint32_t gen;
};

/* refresh_one - set one live counter's limit from the new config */
static void refresh_one(uint32_t slot, const struct sl_counter_view *v, void *vctx)
{
    const struct refresh *r = vctx;
    sl_shm_set_limit(r->shm, slot, sl_limits_for_key(r->cfg, v->kind, v->name, v->name2), r->gen);
}

/* sl_limits_refresh - every live counter takes its limit from cfg, generation gen */
void sl_limits_refresh(const struct sl_config *cfg, struct sl_shm *shm, uint32_t gen)
{
    struct refresh r = {cfg, shm, gen};
    sl_shm_foreach(shm, refresh_one, &r);
    sl_limits_publish(cfg, shm, gen);
}

/* add - look up one counter and add it, with its limit, to the reservation */
static bool add(struct sl_shm *shm, uint32_t owner, struct sl_resv *r, enum sl_scope_kind kind,
                const char *name, const char *name2, int32_t limit, char *err, size_t errlen)
{
    uint32_t slot;

    if (sl_shm_lookup(shm, kind, name, name2, owner, &slot) != SL_SHM_OK) {
        snprintf(err, errlen, "counter table full (set shm_capacity higher)");
        return false;
    }
    if (sl_resv_add(r, slot, limit) < 0) {
        snprintf(err, errlen, "more than %d counters apply to one connection", SL_RESV_MAX);
        return false;
    }
    return true;
}

/* add_limited - add a counter only when it has a limit (-1: the scope does not apply) */
static bool add_limited(struct sl_shm *shm, uint32_t owner, struct sl_resv *r,
                        enum sl_scope_kind kind, const char *name, const char *name2, int32_t limit,
                        char *err, size_t errlen)
{
    return limit < 0 || add(shm, owner, r, kind, name, name2, limit, err, errlen);
}

/* domain_scopes - the scope_max counters of every [domain] and [binding_group G domain]
 * stanza that covers domain (each stanza is its own counter) */
static bool domain_scopes(const struct sl_config *cfg, struct sl_shm *shm, uint32_t owner,
                          const char *group, const char *domain, struct sl_resv *r, char *err,
                          size_t errlen)
{
    const enum sl_opt smax = SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS;
    size_t n;
    struct sl_section *const *list = sl_config_setters(cfg, smax, &n);

    for (size_t i = 0; i < n; i++) {
        const struct sl_section *s = list[i];
        bool dom = s->scope == SL_SC_DOMAIN;
        bool grp = s->scope == SL_SC_GROUP_DOMAIN && eq(s->group, group);

        if (!(dom || grp) || !s->v[smax].set || !sl_section_matches_domain(s, domain))
            continue;
        if (!add(shm, owner, r, dom ? SL_SCOPE_DOMAIN : SL_SCOPE_GROUP_DOMAIN,
                 dom ? s->domain : s->group, dom ? NULL : s->domain, (int32_t)value(s, smax), err,
                 errlen))
            return false;
    }
    return true;
}

/* apply_cap - the shaping actions' cap over binding x domain (shm/cap.c) on the binding x
 * domain counter in r at pair, taken in the same all-or-none acquire as the limits (one load
 * and nothing more when no action caps anything) */
static void apply_cap(const struct sl_shm *shm, const char *binding, const char *domain,
                      struct sl_resv *r, uint32_t pair)
{
    int32_t cap;
    uint64_t action;

    if (sl_shm_cap_find(shm, binding, domain, &cap, &action))
        sl_resv_cap(r, r->slot[pair], cap, action);
}

/* sl_limits_cap_room - may one more connection of binding x domain open under a shaping
 * action's cap (its promised units counted); false with the binding x domain counter in *why
 * when its use reached cap */
bool sl_limits_cap_room(const struct sl_shm *shm, const char *binding, const char *domain,
                        int64_t cap, const uint16_t *promised, struct sl_refusal *why)
{
    struct sl_counter_view v;
    uint32_t slot, n;

    if (sl_shm_find(shm, SL_SCOPE_BINDING_DOMAIN, binding, domain, &slot) != SL_SHM_OK ||
        sl_shm_view(shm, slot, &v) != 0)
        return true;
    n = v.in_use + (promised != NULL ? promised[slot] : 0u);
    if ((int64_t)n < cap)
        return true;
    *why = (struct sl_refusal){.slot = slot,
                               .kind = SL_SCOPE_BINDING_DOMAIN,
                               .in_use = v.in_use, /* open now: the log's figure */
                               .limit = cap > INT32_MAX ? INT32_MAX : (int32_t)cap,
                               .promised = n - v.in_use};
    return false;
}

/* sl_limits_use_text - "N in use", and ", P promised" when jobs not yet started hold some */
const char *sl_limits_use_text(const struct sl_refusal *r, char *buf, size_t len)
{
    if (r->promised > 0)
        snprintf(buf, len, "%u in use, %u promised", r->in_use, r->promised);
    else
        snprintf(buf, len, "%u in use", r->in_use);
    return buf;
}

/* sl_limits_collect - every counter a connection from binding to domain via mx takes, the
 * binding x domain counter under the shaping actions' cap */
bool sl_limits_collect(const struct sl_config *cfg, struct sl_shm *shm, uint32_t owner,
                       const char *binding, const char *domain, const char *mx, struct sl_resv *r,
                       char *err, size_t errlen)
{
    const struct sl_binding *b = sl_config_binding(cfg, binding);
    const uint32_t pair = r->n; /* where the binding x domain counter goes */

    if (b == NULL) {
        snprintf(err, errlen, "unknown binding %s", binding);
        return false;
    }
    if (!add(shm, owner, r, SL_SCOPE_BINDING_DOMAIN, binding, domain,
             sl_limits_for_key(cfg, SL_SCOPE_BINDING_DOMAIN, binding, domain), err, errlen))
        return false;
    if (mx != NULL &&
        (!add_limited(shm, owner, r, SL_SCOPE_BINDING_HOST, binding, mx,
                      sl_limits_for_key(cfg, SL_SCOPE_BINDING_HOST, binding, mx), err, errlen) ||
         !add_limited(shm, owner, r, SL_SCOPE_HOST, mx, NULL,
                      sl_limits_for_key(cfg, SL_SCOPE_HOST, mx, NULL), err, errlen)))
        return false;
    if (!domain_scopes(cfg, shm, owner, b->group, domain, r, err, errlen))
        return false;
    if (!add_limited(shm, owner, r, SL_SCOPE_BINDING, binding, NULL,
                     (int32_t)binding_server_max(cfg, binding), err, errlen))
        return false;
    if (!add(shm, owner, r, SL_SCOPE_SERVER, "", NULL,
             sl_limits_for_key(cfg, SL_SCOPE_SERVER, "", NULL), err, errlen) ||
        !sl_limits_cluster_collect(cfg, shm, owner, binding, domain, mx, r, err, errlen))
        return false;
    apply_cap(shm, binding, domain, r, pair);
    return true;
}

/* cache_add - one counter of a destination, with its limit and slot if it exists */
static void cache_add(const struct sl_shm *shm, struct sl_limits_cache *c, enum sl_scope_kind kind,
                      const char *name, const char *name2, int32_t limit)
{
    struct sl_limits_counter *e;

    if (c->n >= SL_RESV_MAX)
        return; /* the worker's own reservation reports this case */
    e = &c->c[c->n++];
    *e = (struct sl_limits_counter){
        .kind = (uint8_t)kind, .limit = limit, .name = name, .name2 = name2, .slot = UINT32_MAX};
    if (sl_shm_find(shm, kind, name, name2, &e->slot) != SL_SHM_OK)
        e->slot = UINT32_MAX;
}

/* cache_fill - the counters of binding x domain (the same set sl_limits_collect takes
 * before the MX is known, in the same order) */
static void cache_fill(const struct sl_config *cfg, const struct sl_shm *shm,
                       struct sl_limits_cache *c, const char *binding, const char *domain)
{
    const enum sl_opt smax = SL_OPT_SCOPE_MAX_OUTBOUND_CONNECTIONS;
    const struct sl_binding *b = sl_config_binding(cfg, binding);
    struct sl_section *const *list;
    size_t n;

    int64_t turn = sl_config_num(cfg, SL_OPT_MAX_DELIVERIES_PER_CONNECTION,
                                 &(struct sl_scope_ref){.binding = binding, .domain = domain});

    c->n = 0;
    c->gen = sl_peek64(&shm->hdr->config_gen);
    c->turn = turn > 0 && turn < UINT32_MAX ? (uint32_t)turn : 0;
    c->short_turns = false;
    sl_limits_cluster_cache(cfg, shm, c, binding, domain);
    if (b == NULL)
        return; /* unknown binding: the worker settles the message */
    cache_add(shm, c, SL_SCOPE_BINDING_DOMAIN, binding, domain,
              sl_limits_for_key(cfg, SL_SCOPE_BINDING_DOMAIN, binding, domain));
    list = sl_config_setters(cfg, smax, &n);
    for (size_t i = 0; i < n; i++) {
        const struct sl_section *s = list[i];
        bool dom = s->scope == SL_SC_DOMAIN;
        bool grp = s->scope == SL_SC_GROUP_DOMAIN && eq(s->group, b->group);

        if ((dom || grp) && s->v[smax].set && sl_section_matches_domain(s, domain))
            cache_add(shm, c, dom ? SL_SCOPE_DOMAIN : SL_SCOPE_GROUP_DOMAIN,
                      dom ? s->domain : s->group, dom ? NULL : s->domain, (int32_t)value(s, smax));
    }
    if (binding_server_max(cfg, binding) >= 0)
        cache_add(shm, c, SL_SCOPE_BINDING, binding, NULL,
                  (int32_t)binding_server_max(cfg, binding));
    cache_add(shm, c, SL_SCOPE_SERVER, "", NULL, sl_limits_for_key(cfg, SL_SCOPE_SERVER, "", NULL));
    /* not taken with the others: it stands in for a full server counter (the room check) */
    cache_add(shm, c, SL_SCOPE_RESERVE, "", NULL,
              sl_limits_for_key(cfg, SL_SCOPE_RESERVE, "", NULL));
}

/* in_use - a cached counter's open connections; one that does not exist yet has none */
static uint32_t in_use(const struct sl_shm *shm, struct sl_limits_counter *e)
{
    if (e->slot == UINT32_MAX &&
        sl_shm_find(shm, (enum sl_scope_kind)e->kind, e->name, e->name2, &e->slot) != SL_SHM_OK) {
        e->slot = UINT32_MAX;
        return 0;
    }
    return (uint32_t)sl_peek64(&shm->slots[e->slot].count);
}

/* promised_to - the units promised to connections about to open (promised, by slot; NULL:
 * none) in the cached counter e, looked up by in_use */
static uint32_t promised_to(const struct sl_limits_counter *e, const uint16_t *promised)
{
    return promised != NULL && e->slot != UINT32_MAX ? promised[e->slot] : 0u;
}

/* sl_limits_cache_current - c filled for the table's config generation: never filled, or
 * filled under an older config (whose names it points into), it is filled now */
void sl_limits_cache_current(const struct sl_config *cfg, const struct sl_shm *shm,
                             struct sl_limits_cache *c, const char *binding, const char *domain)
{
    if (c->gen == 0 || c->gen != sl_peek64(&shm->hdr->config_gen))
        cache_fill(cfg, shm, c, binding, domain);
}

/* capped - binding x domain has a limit, or a shaping action's cap covers it: a counter the
 * master counts connections in before a worker takes it */
static bool capped(const struct sl_shm *shm, const struct sl_limits_counter *e)
{
    int32_t cap;
    uint64_t action;

    return e->limit >= 0 || sl_shm_cap_find(shm, e->name, e->name2, &cap, &action);
}

/* sl_limits_cache_resolve - c current and each counter's slot looked up; with create, a limited
 * or capped binding x domain counter is created when absent, as the worker's reservation would */
void sl_limits_cache_resolve(const struct sl_config *cfg, struct sl_shm *shm,
                             struct sl_limits_cache *c, const char *binding, const char *domain,
                             bool create)
{
    sl_limits_cache_current(cfg, shm, c, binding, domain);
    for (uint32_t i = 0; i < c->n; i++) {
        struct sl_limits_counter *e = &c->c[i];

        in_use(shm, e); /* finds one created since c was filled */
        if (create && e->slot == UINT32_MAX && e->kind == SL_SCOPE_BINDING_DOMAIN &&
            capped(shm, e) &&
            !take(shm, cfg, 0, (uint32_t)sl_peek64(&shm->hdr->config_gen), SL_SCOPE_BINDING_DOMAIN,
                  e->name, e->name2, &e->slot))
            e->slot = UINT32_MAX; /* a full table: the worker's reservation says so */
    }
}

/* host_kind - a counter that only the MX names: a host's or a binding x host's */
static bool host_kind(unsigned kind)
{
    return kind == SL_SCOPE_HOST || kind == SL_SCOPE_BINDING_HOST;
}

/* sl_limits_cache_learn - a host's counter a connection of c's destination took (sl_limits.h):
 * cache_fill never adds one, so the host entry in c is the learnt one */
void sl_limits_cache_learn(const struct sl_shm *shm, struct sl_limits_cache *c, uint32_t slot,
                           bool sole, bool given_up)
{
    struct sl_counter_view v;
    uint32_t i = 0;

    while (i < c->n && !host_kind(c->c[i].kind))
        i++;
    if (slot == UINT32_MAX || (!(i < c->n && c->c[i].slot == slot) &&
                               (sl_shm_view(shm, slot, &v) != 0 || !host_kind(v.kind))))
        return;
    c->short_turns |= given_up;
    if (i < c->n && c->c[i].slot == slot && sole)
        return;   /* known already */
    if (i < c->n) /* another host, or several now: the old one goes */
        memmove(&c->c[i], &c->c[i + 1], (--c->n - i) * sizeof c->c[0]);
    if (sole && v.limit >= 0 && c->n < SL_RESV_MAX)
        c->c[c->n++] =
            (struct sl_limits_counter){.kind = (uint8_t)v.kind, .limit = v.limit, .slot = slot};
}

/* sl_limits_cache_has - is the counter in slot among binding x domain's, cached in c */
bool sl_limits_cache_has(const struct sl_config *cfg, const struct sl_shm *shm,
                         struct sl_limits_cache *c, const char *binding, const char *domain,
                         uint32_t slot)
{
    sl_limits_cache_current(cfg, shm, c, binding, domain);
    for (uint32_t i = 0; i < c->n; i++) {
        in_use(shm, &c->c[i]); /* finds a counter created since c was filled */
        if (c->c[i].slot == slot)
            return true;
    }
    return sl_limits_cluster_cache_has(cfg, shm, c, binding, domain, slot);
}

/* sl_limits_dest_room_cached - can one more connection to binding x domain open now? */
bool sl_limits_dest_room_cached(const struct sl_config *cfg, const struct sl_shm *shm,
                                struct sl_limits_cache *c, const char *binding, const char *domain,
                                const uint16_t *promised, struct sl_refusal *why)
{
    uint32_t pair_in_use = 0;
    bool server_full = false, reserve_full = false;
    struct sl_refusal server = {0};

    sl_limits_cache_current(cfg, shm, c, binding, domain);
    for (uint32_t i = 0; i < c->n; i++) {
        struct sl_limits_counter *e = &c->c[i];
        uint32_t open = in_use(shm, e), n = open + promised_to(e, promised);
        struct sl_refusal r = {.slot = e->slot,
                               .kind = e->kind,
                               .in_use = open,
                               .limit = e->limit,
                               .promised = n - open};

        if (e->kind == SL_SCOPE_BINDING_DOMAIN)
            pair_in_use = n;
        if (e->kind == SL_SCOPE_RESERVE) { /* a limit of 0 or less: no reserve at all */
            reserve_full = e->limit <= 0 || n >= (uint32_t)e->limit;
            continue;
        }
        if (e->limit < 0 || n < (uint32_t)e->limit)
            continue;
        if (e->kind == SL_SCOPE_SERVER) {
            server_full = true;
            server = r;
            continue;
        }
        if (why != NULL)
            *why = r;
        return false;
    }
    if (server_full && (pair_in_use > 0 || reserve_full)) {
        if (why != NULL)
            *why = server;
        return false;
    }
    return true;
}

/* sl_limits_server_free_cached - the units the server counter (server_max_outbound_connections,
 * shared by every destination) has free, as cached in c by a room check; UINT32_MAX when it has
 * no limit */
uint32_t sl_limits_server_free_cached(const struct sl_shm *shm, struct sl_limits_cache *c,
                                      const uint16_t *promised)
{
    for (uint32_t i = 0; i < c->n; i++) {
        struct sl_limits_counter *e = &c->c[i];
        if (e->kind == SL_SCOPE_SERVER && e->limit >= 0) {
            uint32_t n = in_use(shm, e); /* first: it looks the slot up */

            n += promised_to(e, promised);
            return n < (uint32_t)e->limit ? (uint32_t)e->limit - n : 0;
        }
    }
    return UINT32_MAX;
}

/* sl_limits_room_cached - the local counters' room, then the cluster counters' */
bool sl_limits_room_cached(const struct sl_config *cfg, const struct sl_shm *shm,
                           struct sl_limits_cache *c, const char *binding, const char *domain,
                           const uint16_t *promised, struct sl_refusal *why)
{
    if (!sl_limits_dest_room_cached(cfg, shm, c, binding, domain, promised, why))
        return false;
    if (c->cluster_over) /* more cluster counters than the cache holds */
        return sl_limits_cluster_room(cfg, shm, binding, domain, why);
    return sl_limits_cluster_room_cached(shm, c, promised, why);
}

/* sl_limits_dest_room - the same without a cache kept between calls */
bool sl_limits_dest_room(const struct sl_config *cfg, const struct sl_shm *shm, const char *binding,
                         const char *domain, struct sl_refusal *why)
{
    struct sl_limits_cache c = {0};
    return sl_limits_dest_room_cached(cfg, shm, &c, binding, domain, NULL, why);
}
