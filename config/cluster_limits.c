/*
 * cluster_limits.c - which cluster counters a connection takes, their limits, and the checks
 * of the cluster options.
 *
 * A cluster counter is counted across every node (semantics.md, "Cluster counters").  Each
 * one is also a counter of kind "cluster" in this node's table: it is taken with the local
 * counters (all or none, in the fixed order: cluster kinds come last), it shows this node's
 * holds, and with no cluster_redis it is the whole enforcement.  Its key is a scope word and
 * the scope's names, which is also the Redis key of its leases (cluster/):
 *   binding_domain B D   cluster_max_outbound_connections from a domain-side section
 *   binding_host   B H   cluster_max_outbound_connections from [host H] / [binding B host H]
 *   domain         X     cluster_scope_max in [domain X] (a regex: one counter for its domains)
 *   group_domain   G X   cluster_scope_max in [binding_group G domain X]
 *   host           H     cluster_scope_max in [host H]
 *   binding        B     cluster_server_max in [binding B]
 *   server               cluster_server_max in [global]
 * Concurrency: pure functions of an immutable config, plus sl_shm_lookup.
 * Trust boundary: the config is checked operator input; the key text parsed back (a reload
 * walking the live counters) comes from our own table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "config/sl_limits.h"
#include "config_impl.h"

#define PASSWORD_MAX 512 /* bytes of a password file */

/* lim - an option's value in one section, -1 when unset there */
static int32_t lim(const struct sl_section *s, enum sl_opt opt)
{
    return s != NULL && s->v[opt].set ? (int32_t)s->v[opt].num : SL_LIMIT_NONE;
}

/* same - equal names, either may be NULL */
static bool same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcasecmp(a, b) == 0;
}

/* exact - the section of scope sc whose names are exactly a (and b) */
static const struct sl_section *exact(const struct sl_config *cfg, enum sl_scope sc, const char *a,
                                      const char *b)
{
    for (size_t i = 0; i < cfg->nsections; i++) {
        const struct sl_section *s = cfg->sections[i];
        if (s->scope != sc)
            continue;
        if ((sc == SL_SC_GLOBAL) || (sc == SL_SC_BINDING && same(s->binding, a)) ||
            (sc == SL_SC_DOMAIN && same(s->domain, a)) || (sc == SL_SC_HOST && same(s->host, a)) ||
            (sc == SL_SC_GROUP_DOMAIN && same(s->group, a) && same(s->domain, b)))
            return s;
    }
    return NULL;
}

/* chain_max - cluster_max_outbound_connections along its chain; *host_side says whether it
 * came from a host section (the counter is then binding x MX host) */
static int32_t chain_max(const struct sl_config *cfg, const char *binding, const char *domain,
                         const char *mx, bool *host_side)
{
    struct sl_scope_ref ref = {.binding = binding, .domain = domain, .host = mx};
    const struct sl_section *from = NULL;
    struct sl_value v;
    char err[256];

    *host_side = false;
    if (!sl_config_eval(cfg, SL_OPT_CLUSTER_MAX_OUTBOUND_CONNECTIONS, &ref, &v, &from, err,
                        sizeof err) ||
        !v.set)
        return SL_LIMIT_NONE;
    *host_side = from != NULL && (from->scope == SL_SC_HOST || from->scope == SL_SC_BINDING_HOST);
    return (int32_t)v.num;
}

/* split - "first rest" into its two words; false when there is no space */
static bool split(const char *name2, char *first, size_t len, const char **rest)
{
    const char *sp = name2 != NULL ? strchr(name2, ' ') : NULL;

    if (sp == NULL || (size_t)(sp - name2) >= len)
        return false;
    memcpy(first, name2, (size_t)(sp - name2));
    first[sp - name2] = '\0';
    *rest = sp + 1;
    return true;
}

/* sl_limits_cluster_for_key - the limit of the cluster counter (scope word, names) */
int32_t sl_limits_cluster_for_key(const struct sl_config *cfg, const char *scope, const char *names)
{
    const enum sl_opt smax = SL_OPT_CLUSTER_SCOPE_MAX_OUTBOUND_CONNECTIONS;
    char first[SL_SHM_NAME_MAX + 1];
    const char *rest;
    bool host_side;
    int32_t v;

    if (strcmp(scope, "server") == 0)
        return lim(cfg->sections[0], SL_OPT_CLUSTER_SERVER_MAX_OUTBOUND_CONNECTIONS);
    if (strcmp(scope, "binding") == 0)
        return lim(exact(cfg, SL_SC_BINDING, names, NULL),
                   SL_OPT_CLUSTER_SERVER_MAX_OUTBOUND_CONNECTIONS);
    if (strcmp(scope, "domain") == 0)
        return lim(exact(cfg, SL_SC_DOMAIN, names, NULL), smax);
    if (strcmp(scope, "host") == 0)
        return lim(exact(cfg, SL_SC_HOST, names, NULL), smax);
    if (!split(names, first, sizeof first, &rest))
        return SL_LIMIT_NONE;
    if (strcmp(scope, "group_domain") == 0)
        return lim(exact(cfg, SL_SC_GROUP_DOMAIN, first, rest), smax);
    if (sl_config_binding(cfg, first) == NULL)
        return SL_LIMIT_NONE;
    if (strcmp(scope, "binding_domain") == 0) {
        v = chain_max(cfg, first, rest, NULL, &host_side);
        return host_side ? SL_LIMIT_NONE : v;
    }
    if (strcmp(scope, "binding_host") == 0) {
        v = chain_max(cfg, first, NULL, rest, &host_side);
        return host_side ? v : SL_LIMIT_NONE;
    }
    return SL_LIMIT_NONE;
}

/* add - one cluster counter (scope word, names) with its limit, when it has one */
static bool add(struct sl_shm *shm, uint32_t owner, struct sl_resv *r, const char *scope,
                const char *a, const char *b, int32_t limit, char *err, size_t errlen)
{
    char names[2 * SL_SHM_NAME_MAX + 2];
    uint32_t slot;

    if (limit < 0)
        return true;
    snprintf(names, sizeof names, "%s%s%s", a != NULL ? a : "", b != NULL ? " " : "",
             b != NULL ? b : "");
    if (sl_shm_lookup(shm, SL_SCOPE_CLUSTER, scope, names[0] ? names : NULL, owner, &slot) !=
        SL_SHM_OK) {
        snprintf(err, errlen, "counter table full (set shm_capacity higher)");
        return false;
    }
    if (sl_resv_add(r, slot, limit) < 0) {
        snprintf(err, errlen, "more than %d counters apply to one connection", SL_RESV_MAX);
        return false;
    }
    return true;
}

/* scope_counters - cluster_scope_max of every [domain] and [binding_group G domain] stanza
 * that covers domain, and of [host mx] */
static bool scope_counters(const struct sl_config *cfg, struct sl_shm *shm, uint32_t owner,
                           const char *group, const char *domain, const char *mx, struct sl_resv *r,
                           char *err, size_t errlen)
{
    const enum sl_opt smax = SL_OPT_CLUSTER_SCOPE_MAX_OUTBOUND_CONNECTIONS;
    size_t n;
    struct sl_section *const *list = sl_config_setters(cfg, smax, &n);

    for (size_t i = 0; i < n; i++) {
        const struct sl_section *s = list[i];
        bool ok = true;

        if (!s->v[smax].set)
            continue;
        if (s->scope == SL_SC_DOMAIN && sl_section_matches_domain(s, domain))
            ok = add(shm, owner, r, "domain", s->domain, NULL, lim(s, smax), err, errlen);
        else if (s->scope == SL_SC_GROUP_DOMAIN && same(s->group, group) &&
                 sl_section_matches_domain(s, domain))
            ok = add(shm, owner, r, "group_domain", s->group, s->domain, lim(s, smax), err, errlen);
        else if (s->scope == SL_SC_HOST && mx != NULL && same(s->host, mx))
            ok = add(shm, owner, r, "host", s->host, NULL, lim(s, smax), err, errlen);
        if (!ok)
            return false;
    }
    return true;
}

/* sl_limits_cluster_collect - the cluster counters of a connection from binding to domain via
 * mx (NULL before the MX is known), added to r */
bool sl_limits_cluster_collect(const struct sl_config *cfg, struct sl_shm *shm, uint32_t owner,
                               const char *binding, const char *domain, const char *mx,
                               struct sl_resv *r, char *err, size_t errlen)
{
    const enum sl_opt smx = SL_OPT_CLUSTER_SERVER_MAX_OUTBOUND_CONNECTIONS;
    const struct sl_binding *b = sl_config_binding(cfg, binding);
    bool host_side;
    int32_t v;

    if (b == NULL)
        return true; /* sl_limits_collect reports it */
    v = chain_max(cfg, binding, domain, mx, &host_side);
    if (!add(shm, owner, r, host_side ? "binding_host" : "binding_domain", binding,
             host_side ? mx : domain, v, err, errlen))
        return false;
    if (!scope_counters(cfg, shm, owner, b->group, domain, mx, r, err, errlen))
        return false;
    return add(shm, owner, r, "binding", binding, NULL, lim(b->section, smx), err, errlen) &&
           add(shm, owner, r, "server", NULL, NULL, lim(cfg->sections[0], smx), err, errlen);
}

/* full - is the cluster counter (scope, a b) full on this node alone; the refusal in *why */
static bool full(const struct sl_shm *shm, const char *scope, const char *a, const char *b,
                 int32_t limit, struct sl_refusal *why)
{
    char names[2 * SL_SHM_NAME_MAX + 2];
    uint32_t slot, n;

    if (limit < 0)
        return false;
    snprintf(names, sizeof names, "%s%s%s", a != NULL ? a : "", b != NULL ? " " : "",
             b != NULL ? b : "");
    if (sl_shm_find(shm, SL_SCOPE_CLUSTER, scope, names[0] ? names : NULL, &slot) != SL_SHM_OK)
        return limit == 0; /* no holder yet: full only when paused */
    n = (uint32_t)sl_peek64(&shm->slots[slot].count);
    if (n < (uint32_t)limit)
        return false;
    *why = (struct sl_refusal){.slot = slot, .kind = SL_SCOPE_CLUSTER, .in_use = n, .limit = limit};
    return true;
}

/* A cluster counter a connection from binding to domain would take: (scope, a b) and its
 * limit; true stops the walk. */
typedef bool (*cluster_visit)(void *ctx, const char *scope, const char *a, const char *b,
                              int32_t limit);

/* walk_cluster - visit, in order, the cluster counters a connection from binding to domain
 * takes before its MX is known; true when a visit stopped the walk */
static bool walk_cluster(const struct sl_config *cfg, const char *binding, const char *domain,
                         cluster_visit visit, void *ctx)
{
    const enum sl_opt smax = SL_OPT_CLUSTER_SCOPE_MAX_OUTBOUND_CONNECTIONS;
    const enum sl_opt smx = SL_OPT_CLUSTER_SERVER_MAX_OUTBOUND_CONNECTIONS;
    const struct sl_binding *b;
    struct sl_section *const *list;
    bool host_side;
    int32_t v;
    size_t n;

    if (!sl_limits_cluster_any(cfg) || (b = sl_config_binding(cfg, binding)) == NULL)
        return false;
    v = chain_max(cfg, binding, domain, NULL, &host_side);
    if (!host_side && visit(ctx, "binding_domain", binding, domain, v))
        return true;
    list = sl_config_setters(cfg, smax, &n);
    for (size_t i = 0; i < n; i++) {
        const struct sl_section *s = list[i];
        if (s->scope == SL_SC_DOMAIN && sl_section_matches_domain(s, domain) &&
            visit(ctx, "domain", s->domain, NULL, lim(s, smax)))
            return true;
        if (s->scope == SL_SC_GROUP_DOMAIN && same(s->group, b->group) &&
            sl_section_matches_domain(s, domain) &&
            visit(ctx, "group_domain", s->group, s->domain, lim(s, smax)))
            return true;
    }
    return visit(ctx, "binding", binding, NULL, lim(b->section, smx)) ||
           visit(ctx, "server", NULL, NULL, lim(cfg->sections[0], smx));
}

/* The room check's walk: the table and where to say which counter is full. */
struct room_walk {
    const struct sl_shm *shm;
    struct sl_refusal *why;
};

/* visit_full - stop at a full counter */
static bool visit_full(void *ctx, const char *scope, const char *a, const char *b, int32_t limit)
{
    struct room_walk *r = ctx;
    return full(r->shm, scope, a, b, limit, r->why);
}

/* sl_limits_cluster_room - may a new connection from binding to domain open as far as this
 * node's own holds of its cluster counters know (before the MX is known): the scheduler holds
 * mail back for a cluster counter this node alone fills, as for a local one */
bool sl_limits_cluster_room(const struct sl_config *cfg, const struct sl_shm *shm,
                            const char *binding, const char *domain, struct sl_refusal *why)
{
    struct room_walk r = {shm, why};
    return !walk_cluster(cfg, binding, domain, visit_full, &r);
}

/* cluster_find - the slot of the cached cluster counter e, once it exists */
static bool cluster_find(const struct sl_shm *shm, struct sl_limits_cluster_counter *e)
{
    char names[2 * SL_SHM_NAME_MAX + 2];

    if (e->slot != UINT32_MAX)
        return true;
    snprintf(names, sizeof names, "%s%s%s", e->a != NULL ? e->a : "", e->b != NULL ? " " : "",
             e->b != NULL ? e->b : "");
    if (sl_shm_find(shm, SL_SCOPE_CLUSTER, e->scope, names[0] ? names : NULL, &e->slot) ==
        SL_SHM_OK)
        return true;
    e->slot = UINT32_MAX;
    return false;
}

/* cache_one - the cluster counter (scope, a b) into c's cluster part, when it has a limit */
static void cache_one(const struct sl_shm *shm, struct sl_limits_cache *c, const char *scope,
                      const char *a, const char *b, int32_t limit)
{
    struct sl_limits_cluster_counter *e;

    if (limit < 0)
        return; /* never full */
    if (c->ncl >= sizeof c->cl / sizeof c->cl[0]) {
        c->cluster_over = true;
        return;
    }
    e = &c->cl[c->ncl++];
    *e = (struct sl_limits_cluster_counter){
        .limit = limit, .slot = UINT32_MAX, .scope = scope, .a = a, .b = b};
    cluster_find(shm, e);
}

/* The cache's walk: the table and the cache being filled. */
struct cache_walk {
    const struct sl_shm *shm;
    struct sl_limits_cache *c;
};

/* visit_cache - every counter into the cache */
static bool visit_cache(void *ctx, const char *scope, const char *a, const char *b, int32_t limit)
{
    struct cache_walk *w = ctx;
    cache_one(w->shm, w->c, scope, a, b, limit);
    return false;
}

/* sl_limits_cluster_cache - the counters sl_limits_cluster_room looks at, in its order */
void sl_limits_cluster_cache(const struct sl_config *cfg, const struct sl_shm *shm,
                             struct sl_limits_cache *c, const char *binding, const char *domain)
{
    struct cache_walk w = {shm, c};

    c->ncl = 0;
    c->cluster_over = false;
    (void)walk_cluster(cfg, binding, domain, visit_cache, &w);
}

/* sl_limits_cluster_room_cached - the room check over the cluster counters cached in c */
bool sl_limits_cluster_room_cached(const struct sl_shm *shm, struct sl_limits_cache *c,
                                   const uint16_t *promised, struct sl_refusal *why)
{
    for (uint32_t i = 0; i < c->ncl; i++) {
        struct sl_limits_cluster_counter *e = &c->cl[i];
        uint32_t n = 0, extra = 0;

        if (cluster_find(shm, e)) {
            n = (uint32_t)sl_peek64(&shm->slots[e->slot].count);
            extra = promised != NULL ? promised[e->slot] : 0u;
        } else if (e->limit != 0) {
            continue; /* no holder yet: full only when paused */
        }
        if (n + extra < (uint32_t)e->limit)
            continue;
        *why = (struct sl_refusal){.slot = e->slot,
                                   .kind = SL_SCOPE_CLUSTER,
                                   .in_use = n,
                                   .limit = e->limit,
                                   .promised = extra};
        return false;
    }
    return true;
}

/* The handover's walk: the table and the slot looked for. */
struct has_walk {
    const struct sl_shm *shm;
    uint32_t slot;
};

/* visit_has - stop at the cluster counter in the slot looked for */
static bool visit_has(void *ctx, const char *scope, const char *a, const char *b, int32_t limit)
{
    struct has_walk *h = ctx;
    struct sl_limits_cluster_counter e = {
        .limit = limit, .slot = UINT32_MAX, .scope = scope, .a = a, .b = b};

    return cluster_find(h->shm, &e) && e.slot == h->slot;
}

/* sl_limits_cluster_cache_has - is the cluster counter in slot one of those a connection from
 * binding to domain holds (c: that destination's cache, filled) */
bool sl_limits_cluster_cache_has(const struct sl_config *cfg, const struct sl_shm *shm,
                                 struct sl_limits_cache *c, const char *binding, const char *domain,
                                 uint32_t slot)
{
    if (c->cluster_over) { /* more than the cache holds: walk them */
        struct has_walk h = {shm, slot};
        return walk_cluster(cfg, binding, domain, visit_has, &h);
    }
    for (uint32_t i = 0; i < c->ncl; i++)
        if (cluster_find(shm, &c->cl[i]) && c->cl[i].slot == slot)
            return true;
    return false;
}

/* publish - create one configured cluster counter with its limit */
static void publish(struct sl_shm *shm, const struct sl_config *cfg, uint32_t gen,
                    const char *scope, const char *a, const char *b)
{
    char names[2 * SL_SHM_NAME_MAX + 2];
    uint32_t slot;

    snprintf(names, sizeof names, "%s%s%s", a != NULL ? a : "", b != NULL ? " " : "",
             b != NULL ? b : "");
    if (sl_shm_lookup(shm, SL_SCOPE_CLUSTER, scope, names[0] ? names : NULL, 0, &slot) == SL_SHM_OK)
        sl_shm_set_limit(shm, slot, sl_limits_cluster_for_key(cfg, scope, names), gen);
}

/* sl_limits_cluster_publish - the cluster counters the config names by themselves (scopes,
 * bindings, server), so the inspector shows them before any connection */
void sl_limits_cluster_publish(const struct sl_config *cfg, struct sl_shm *shm, uint32_t gen)
{
    const enum sl_opt smax = SL_OPT_CLUSTER_SCOPE_MAX_OUTBOUND_CONNECTIONS;
    const enum sl_opt smx = SL_OPT_CLUSTER_SERVER_MAX_OUTBOUND_CONNECTIONS;

    for (size_t i = 0; i < cfg->nsections; i++) {
        const struct sl_section *s = cfg->sections[i];
        if (s->scope == SL_SC_GLOBAL && s->v[smx].set)
            publish(shm, cfg, gen, "server", NULL, NULL);
        else if (s->scope == SL_SC_BINDING && s->v[smx].set)
            publish(shm, cfg, gen, "binding", s->binding, NULL);
        else if (s->scope == SL_SC_DOMAIN && s->v[smax].set)
            publish(shm, cfg, gen, "domain", s->domain, NULL);
        else if (s->scope == SL_SC_HOST && s->v[smax].set)
            publish(shm, cfg, gen, "host", s->host, NULL);
        else if (s->scope == SL_SC_GROUP_DOMAIN && s->v[smax].set)
            publish(shm, cfg, gen, "group_domain", s->group, s->domain);
    }
}

/* sl_limits_cluster_any - does the config set any cluster limit */
bool sl_limits_cluster_any(const struct sl_config *cfg)
{
    static const enum sl_opt opts[] = {SL_OPT_CLUSTER_MAX_OUTBOUND_CONNECTIONS,
                                       SL_OPT_CLUSTER_SCOPE_MAX_OUTBOUND_CONNECTIONS,
                                       SL_OPT_CLUSTER_SERVER_MAX_OUTBOUND_CONNECTIONS};

    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        size_t n;
        struct sl_section *const *list = sl_config_setters(cfg, opts[k], &n);
        for (size_t i = 0; i < n; i++)
            if (lim(list[i], opts[k]) >= 0)
                return true;
    }
    return false;
}

/* sl_config_read_password - the first line of a password file (at most PASSWORD_MAX bytes of a
 * regular file, opened without blocking); false with the reason in err */
bool sl_config_read_password(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    char buf[PASSWORD_MAX + 1];
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PASSWORD_MAX) {
        snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path, PASSWORD_MAX);
        close(fd);
        return false;
    }
    n = read(fd, buf, PASSWORD_MAX);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0' || strlcpy(out, buf, outlen) >= outlen) {
        snprintf(err, errlen, "%s: no password on its first line", path);
        return false;
    }
    return true;
}

/* check_address - cluster_redis is an absolute socket path or host:port */
static void check_address(struct loader *L, const struct sl_value *v)
{
    const char *colon;
    char *end;
    long port;

    if (v->str[0] == '/')
        return;
    colon = strrchr(v->str, ':');
    if (colon == NULL || colon == v->str) {
        sl_config_report(L, v->line,
                         "cluster_redis %s: expected host:port or the absolute path of a unix "
                         "socket",
                         v->str);
        return;
    }
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port < 1 || port > 65535)
        sl_config_report(L, v->line, "cluster_redis %s: port must be 1..65535", v->str);
}

/* sl_config_check_cluster - the cluster options make sense together */
void sl_config_check_cluster(struct loader *L)
{
    const struct sl_section *g = L->cfg->sections[0];
    const struct sl_value *addr = &g->v[SL_OPT_CLUSTER_REDIS];
    const struct sl_value *pw = &g->v[SL_OPT_CLUSTER_REDIS_PASSWORD_FILE];
    const struct sl_value *node = &g->v[SL_OPT_CLUSTER_NODE];
    const struct sl_value *ttl = &g->v[SL_OPT_CLUSTER_LEASE_TTL];
    char secret[PASSWORD_MAX + 1], err[512];

    if (addr->set)
        check_address(L, addr);
    if (pw->set && !sl_config_read_password(pw->str, secret, sizeof secret, err, sizeof err))
        sl_config_report(L, pw->line, "cluster_redis_password_file %s", err);
    explicit_bzero(secret, sizeof secret);
    if (node->set && (strpbrk(node->str, " :") != NULL || strlen(node->str) > 64))
        sl_config_report(L, node->line,
                         "cluster_node %s: at most 64 characters, without spaces or colons",
                         node->str);
    if (ttl->set && ttl->num < 1000)
        sl_config_report(L, ttl->line, "cluster_lease_ttl must be at least 1s");
}
