/*
 * connect.c - open a connection for a destination: resolve, pick an MX whose
 * counters have room, reserve them, connect from the binding's address.
 *
 * Hosts are tried in the resolver's order (MX preference, equal ones
 * shuffled, at most mx_limit), each at most multihomed_limit addresses.  A
 * host whose own counters (binding x host, host scope) are full is skipped
 * for the next; any other full counter (domain, binding, server) stops the
 * attempt: the mail waits for a slot, not for the retry interval.  The
 * counters are taken before connect and held until sl_conn_close.  A spent
 * connection whose worker opens the next one for the same destination keeps
 * them in between (sl_conn_close_kept), where a take would check nothing they
 * did not meet (no action cap, no reload, no cluster lease): the next
 * connection takes them over, moved to its host's counters when the host
 * differs, so no job of another worker is sent for those units in the gap and
 * refused when this one takes them again.
 * Trust boundary: DNS answers and the peer's replies come from outside; they
 * reach here already bounded by sl_dns and sl_smtp.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "config/sl_config.h"
#include "util/sl_msg.h"
#include "worker_impl.h"

/* resolver - the worker's resolver, opened on first use */
static struct sl_dns *resolver(struct sl_wstate *w, char *err, size_t errlen)
{
    struct sl_scope_ref none = {0};

    if (w->dns == NULL)
        w->dns = sl_dns_open(sl_config_str(w->ctx->cfg, SL_OPT_DNS_SERVER, &none),
                             SL_DNS_TIMEOUT_MS, err, errlen);
    return w->dns;
}

/* host_scoped - a refusal that another MX host may not meet */
static bool host_scoped(enum sl_scope_kind kind)
{
    return kind == SL_SCOPE_BINDING_HOST || kind == SL_SCOPE_HOST;
}

/* note_refusal - keep the refusing counter for the log and the master */
static void note_refusal(struct sl_wstate *w, const struct sl_refusal *why,
                         struct sl_open_info *info)
{
    info->why = *why;
    info->phase = "limits";
    sl_worker_scope_name(w->ctx->shm, why->slot, info->scope, sizeof info->scope);
    snprintf(info->reply, sizeof info->reply, "%s: %u in use, limit %d%s", info->scope, why->in_use,
             why->limit, why->kind == SL_SCOPE_CLUSTER ? w->lease_note : "");
    sl_worker_action_note(why, info->reply, sizeof info->reply);
}

/* host_held - is the MX host suspended for d: then the refusal goes in info (the next MX
 * host is tried; the master holds the mail when every one is) */
static bool host_held(struct sl_wstate *w, const struct sl_dest *d, const char *mx,
                      struct sl_open_info *info)
{
    char why[sizeof info->reply];

    if (!sl_worker_host_suspended(w, d->binding, d->domain, mx, why, sizeof why))
        return false;
    info->why = (struct sl_refusal){.slot = UINT32_MAX, .kind = SL_SCOPE_NONE};
    info->phase = "limits";
    snprintf(info->scope, sizeof info->scope, "host %s", mx);
    strlcpy(info->reply, why, sizeof info->reply);
    return true;
}

/* open_session - one session to one address under the host's TLS choice; an opportunistic
 * handshake that fails is tried once more in clear (a peer that offers STARTTLS and cannot
 * finish it would otherwise never get mail) */
static bool open_session(struct sl_wstate *w, const struct sl_dest *d, const struct sockaddr *dst,
                         socklen_t dstlen, struct sl_tls_choice *tc, struct sl_reply *r)
{
    struct sl_smtp_env env = {.wait_mask = &w->wait_mask, .alarmed = w->alarmed};
    const struct sockaddr *src = d->srclen ? (const struct sockaddr *)&d->src : NULL;
    struct sl_smtp *s = &w->conn.s;

    if (sl_smtp_open(s, &env, &d->to, src, d->srclen, dst, dstlen, d->helo, &tc->params, r) == 0)
        return true;
    if (tc->params.need != SL_TLS_NEED_TRY || s->phase != SL_PH_TLS)
        return false;
    snprintf(tc->why, sizeof tc->why, "TLS failed (%.200s): retried in clear", s->err);
    tc->params.need = SL_TLS_NEED_NONE;
    return sl_smtp_open(s, &env, &d->to, src, d->srclen, dst, dstlen, d->helo, &tc->params, r) == 0;
}

/* try_addresses - connect to one of h's addresses; true when a session is open */
static bool try_addresses(struct sl_wstate *w, const struct sl_dest *d, const struct sl_dns_host *h,
                          const struct sl_tls_plan *plan, struct sl_tls_choice *tc,
                          struct sl_open_info *info)
{
    struct sl_conn *c = &w->conn;
    enum sl_tls_need need = tc->params.need;

    for (size_t i = 0; i < h->naddr; i++) {
        struct sl_reply r = {0};
        bool ok;
        sl_dns_format_addr(&h->addr[i], info->ip, sizeof info->ip, false);
        strlcpy(info->mx, h->name, sizeof info->mx);
        tc->params.need = need;
        ok = open_session(w, d, (const struct sockaddr *)&h->addr[i], h->addrlen[i], tc, &r);
        sl_tls_record(plan, tc, &c->s, &info->tls);
        if (ok) {
            memcpy(&c->peer, &h->addr[i], sizeof c->peer);
            c->peerlen = h->addrlen[i];
            return true;
        }
        if (c->s.fail == SL_SMTP_FAIL_TIMEOUT)
            sl_stats_timeout(w->ctx->shm, c->s.phase);
        info->phase = sl_phase_name(c->s.phase);
        if (r.code != 0 && c->s.fail != SL_SMTP_FAIL_TLS)
            strlcpy(info->reply, r.text, sizeof info->reply);
        else
            strlcpy(info->reply, c->s.err, sizeof info->reply);
        sl_msg_debug("%s [%s]: %s", h->name, info->ip, info->reply);
    }
    return false;
}

/* host_refused_by_policy - a host the TLS policy rules out: noted like a failed host */
static void host_refused_by_policy(const struct sl_dns_host *h, const struct sl_tls_plan *plan,
                                   const struct sl_tls_choice *tc, struct sl_open_info *info)
{
    info->phase = "tls";
    strlcpy(info->mx, h->name, sizeof info->mx);
    info->ip[0] = '\0';
    strlcpy(info->reply, tc->why, sizeof info->reply);
    sl_tls_note_refusal(plan, tc, &info->tls);
    sl_msg_debug("%s: %s", h->name, tc->why);
}

/* connected - record the open connection */
static void connected(struct sl_wstate *w, const struct sl_dest *d, const struct sl_open_info *info)
{
    struct sl_conn *c = &w->conn;

    c->open = true;
    sl_stats_connection(w->ctx->shm, c->s.tls.on, c->s.tls.verified);
    strlcpy(c->binding, d->binding, sizeof c->binding);
    strlcpy(c->domain, d->domain, sizeof c->domain);
    strlcpy(c->mx, info->mx, sizeof c->mx);
    strlcpy(c->ip, info->ip, sizeof c->ip);
    c->deliveries = c->rcpts = c->txns = 0;
    c->txn_us = 0;
    c->idle_ms = d->idle_ms;
    c->sole_host = info->sole_host;
    c->tls = info->tls;
    sl_lat_observe(w->ctx->shm, sl_worker_lat(w, d->binding), SL_LAT_CONNECT, c->s.connect_us);
    if (c->s.tls.on)
        sl_lat_observe(w->ctx->shm, sl_worker_lat(w, d->binding), SL_LAT_TLS, c->s.tls_us);
}

/* dns_reply_code - a DNS bounce's text with the reply code and enhanced status a receiver
 * would have given, for the delivery log and the report's Status: 556 5.1.10 for a null MX
 * (RFC 7505 4.1), 550 5.1.2 for a destination without a usable host (RFC 3463) */
static void dns_reply_code(enum sl_dns_result res, char *reply, size_t len)
{
    char text[sizeof((struct sl_open_info *)0)->reply - 16]; /* room for the code */

    strlcpy(text, reply, sizeof text);
    snprintf(reply, len, "%s %s", res == SL_DNS_NULLMX ? "556 5.1.10" : "550 5.1.2", text);
}

/* resolve - the hosts to try, or the outcome when there are none */
static enum sl_open_result resolve(struct sl_wstate *w, const struct sl_dest *d,
                                   struct sl_dns_answer *a, struct sl_open_info *info)
{
    struct sl_dns_query q = {.domain = d->domain,
                             .route = d->route,
                             .port = d->port,
                             .mx_limit = d->mx_limit,
                             .multihomed_limit = d->multihomed_limit,
                             .family = d->family};
    struct sl_dns *dns;
    enum sl_dns_result res;

    info->phase = "dns";
    if (w->dns_cache == NULL)
        w->dns_cache = sl_calloc(1, sizeof *w->dns_cache);
    if (sl_dns_cache_get(w->dns_cache, &q, a))
        return SL_OPEN_OK;
    if ((dns = resolver(w, info->reply, sizeof info->reply)) == NULL)
        return SL_OPEN_DEFER;
    res = sl_dns_resolve(dns, &q, a, info->reply, sizeof info->reply);
    if (res == SL_DNS_OK) {
        sl_dns_cache_put(w->dns_cache, &q, a);
        return SL_OPEN_OK;
    }
    if (res == SL_DNS_TEMPFAIL)
        return SL_OPEN_DEFER;
    dns_reply_code(res, info->reply, sizeof info->reply);
    return SL_OPEN_BOUNCE;
}

/* plan_tls - the domain's TLS plan; false (info set) when TLS cannot be set up */
static bool plan_tls(struct sl_wstate *w, const struct sl_dest *d, struct sl_tls_plan *plan,
                     struct sl_open_info *info)
{
    char err[200];
    struct sl_dns *dns = d->route == NULL ? resolver(w, err, sizeof err) : NULL;

    if (sl_tls_plan_make(&w->tls, d, dns, plan, err, sizeof err))
        return true;
    info->phase = "tls";
    snprintf(info->reply, sizeof info->reply, "TLS cannot be set up: %s", err);
    return false;
}

/* throttle_open - a token of outbound_throttle_connections for a connection to mx, its
 * counters held; false with the counters given back when a bucket refused (*host_only: mx's
 * own, so another host may do) */
static bool throttle_open(struct sl_wstate *w, const struct sl_dest *d, const char *mx,
                          struct sl_open_info *info, bool *host_only)
{
    if (sl_worker_throttle(w, SL_THROTTLE_CONNECTIONS, true, d->binding, d->domain, mx, info,
                           host_only))
        return true;
    sl_worker_release(w, &w->conn.r); /* its cluster leases too, not only the local counters */
    return false;
}

/* keepable - may the open connection's units carry over to the next one without a take?  Only
 * where a take would check nothing more than they met: no shaping action caps a connection
 * count (a cap published since must hold at the next take), the config the worker runs is
 * the table's (a reload may have lowered a limit) and no cluster lease is held (its
 * validity is checked at each take) */
static bool keepable(struct sl_wstate *w)
{
    const struct sl_shm *shm = w->ctx->shm;

    return sl_peek64(&shm->hdr->action_caps) == 0 &&
           sl_peek64(&shm->hdr->config_gen) == w->ctx->gen && !sl_worker_lease_held(w);
}

/* reserve_host - the counters of a connection to d via mx: those a spent connection of d
 * kept (sl_conn_close_kept), moved to mx's host counters when its host was another (still
 * kept for the next host when mx's own counters are full), else taken anew (also when they
 * cannot move: the reserve in place of a server unit, another refusal) */
static bool reserve_host(struct sl_wstate *w, const struct sl_dest *d, const char *mx,
                         struct sl_refusal *why, char *err, size_t errlen)
{
    struct sl_conn *c = &w->conn;

    if (c->kept && !keepable(w)) { /* a reload or a cap came since the QUIT: a take checks it */
        c->kept = false;
        sl_worker_release(w, &c->r);
    }
    if (c->kept) {
        c->kept = false;
        if (strcasecmp(c->mx, mx) == 0) {
            memset(why, 0, sizeof *why);
            return true;
        }
        if (sl_worker_reserve_move(w, d->binding, d->domain, mx, &c->r, why, err, errlen))
            return true;
        if (host_scoped(why->kind) || sl_worker_lease_host_scoped(w->ctx->shm, why)) {
            c->kept = true; /* this host is full: kept for the next one */
            return false;
        }
        sl_worker_release(w, &c->r);
    }
    return sl_worker_reserve(w, d->binding, d->domain, mx, &c->r, why, err, errlen);
}

/* open_conn - resolve, reserve and connect for d */
static enum sl_open_result open_conn(struct sl_wstate *w, const struct sl_dest *d,
                                     struct sl_open_info *info)
{
    struct sl_dns_answer a; /* about 20 KB: fine on a worker's stack */
    struct sl_tls_plan plan;
    struct sl_tls_choice tc;
    enum sl_open_result res;
    bool refused = false, failed = false, host_only;

    memset(info, 0, sizeof *info);
    if ((res = resolve(w, d, &a, info)) != SL_OPEN_OK)
        return res;
    info->sole_host = a.nhosts == 1;
    if (!plan_tls(w, d, &plan, info))
        return SL_OPEN_DEFER;
    for (size_t i = 0; i < a.nhosts; i++) {
        struct sl_refusal why;
        char err[256];
        sl_tls_choose(&w->tls, d, &plan, a.host[i].name, &tc);
        if (tc.skip) {
            host_refused_by_policy(&a.host[i], &plan, &tc, info);
            failed = true;
            continue;
        }
        if (host_held(w, d, a.host[i].name, info)) {
            refused = true;
            continue;
        }
        if (!reserve_host(w, d, a.host[i].name, &why, err, sizeof err)) {
            if (why.kind == SL_SCOPE_NONE) {
                info->phase = "limits";
                strlcpy(info->reply, err, sizeof info->reply);
                return SL_OPEN_DEFER;
            }
            note_refusal(w, &why, info);
            if (!host_scoped(why.kind) && !sl_worker_lease_host_scoped(w->ctx->shm, &why))
                return SL_OPEN_WAIT;
            refused = true;
            continue;
        }
        if (!throttle_open(w, d, a.host[i].name, info, &host_only)) {
            if (!host_only)
                return SL_OPEN_WAIT;
            refused = true;
            continue;
        }
        if (try_addresses(w, d, &a.host[i], &plan, &tc, info)) {
            connected(w, d, info);
            return SL_OPEN_OK;
        }
        failed = true;
        sl_worker_release(w, &w->conn.r);
    }
    if (!failed && !refused) {
        info->phase = "dns";
        snprintf(info->reply, sizeof info->reply, "no usable address for %s", d->domain);
    }
    return refused && !failed ? SL_OPEN_WAIT : SL_OPEN_DEFER;
}

/* sl_conn_open - resolve, reserve and connect for d; the counters a spent connection of d
 * kept go back when no connection opens */
enum sl_open_result sl_conn_open(struct sl_wstate *w, const struct sl_dest *d,
                                 struct sl_open_info *info)
{
    struct sl_conn *c = &w->conn;
    enum sl_open_result res;

    if (c->kept && (strcmp(c->binding, d->binding) != 0 || strcmp(c->domain, d->domain) != 0))
        sl_conn_close(w, true); /* kept for another destination: not to be moved here */
    res = open_conn(w, d, info);
    if (res != SL_OPEN_OK)
        sl_conn_close(w, true); /* no connection: only what was kept is left to give back */
    return res;
}

/* tls_meets - does a session with TLS state info, opened under need had, give what need asks */
static bool tls_meets(const struct sl_tls_info *info, enum sl_tls_need had, enum sl_tls_need need)
{
    switch (need) {
    case SL_TLS_NEED_NONE:
        return true;
    case SL_TLS_NEED_TRY: /* STARTTLS was tried (or is on) */
        return info->on || had >= SL_TLS_NEED_TRY;
    case SL_TLS_NEED_ENCRYPT:
        return info->on;
    case SL_TLS_NEED_VERIFY: /* the chain and the MX name, checked when the session opened */
        return info->on && info->verified && strcmp(info->auth, "pkix") == 0;
    case SL_TLS_NEED_DANE: /* matched the TLSA records of this very host and port */
        return info->on && info->verified && strncmp(info->auth, "dane", 4) == 0;
    }
    return false;
}

/* serves - does host h of an answer sit at the address the connection is open to */
static bool serves(const struct sl_dns_host *h, const struct sl_conn *c)
{
    if (strcasecmp(h->name, c->mx) != 0)
        return false;
    for (size_t i = 0; i < h->naddr; i++)
        if (h->addrlen[i] == c->peerlen && memcmp(&h->addr[i], &c->peer, c->peerlen) == 0)
            return true;
    return false;
}

/* sl_conn_migrate - the open connection carries d's mail when d's MX plan has its host */
bool sl_conn_migrate(struct sl_wstate *w, const struct sl_dest *d)
{
    struct sl_conn *c = &w->conn;
    struct sl_dns_answer a; /* about 20 KB: fine on a worker's stack */
    struct sl_open_info info = {0};
    struct sl_tls_plan plan;
    struct sl_tls_choice tc;
    struct sl_refusal why;
    char err[300];
    size_t i;

    if (!d->migrate || !c->open || strcmp(c->binding, d->binding) != 0 || c->peerlen == 0 ||
        resolve(w, d, &a, &info) != SL_OPEN_OK)
        return false;
    for (i = 0; i < a.nhosts && !serves(&a.host[i], c); i++)
        ;
    if (i == a.nhosts || !plan_tls(w, d, &plan, &info))
        return false;
    sl_tls_choose(&w->tls, d, &plan, a.host[i].name, &tc);
    if (tc.skip || !tls_meets(&c->s.tls, c->tls.need, tc.params.need)) {
        sl_msg_debug("%s: not moved to %s: its TLS policy asks %s", c->mx, d->domain,
                     sl_tls_need_name(tc.params.need));
        return false;
    }
    if (!sl_worker_reserve_move(w, d->binding, d->domain, c->mx, &c->r, &why, err, sizeof err)) {
        sl_msg_debug("%s: not moved to %s: %s", c->mx, d->domain, err);
        return false;
    }
    sl_msg_debug("connection to %s [%s] moved from %s to %s", c->mx, c->ip, c->domain, d->domain);
    strlcpy(c->domain, d->domain, sizeof c->domain);
    c->idle_ms = d->idle_ms;
    c->sole_host = a.nhosts == 1;
    sl_tls_record(&plan, &tc, &c->s, &c->tls);
    return true;
}

/* sl_conn_close - end the session and give its counters back (or those a spent connection
 * kept, when no session is open) */
void sl_conn_close(struct sl_wstate *w, bool polite)
{
    struct sl_conn *c = &w->conn;

    if (c->kept) {
        c->kept = false;
        sl_worker_release(w, &c->r);
    }
    if (!c->open)
        return;
    if (polite)
        sl_smtp_quit(&c->s);
    else
        sl_smtp_close(&c->s);
    sl_worker_release(w, &c->r);
    c->open = false;
}

/* sl_conn_close_kept - QUIT the spent session, keeping its counters for the next connection
 * to the same destination, opened at once (sl_conn_open), where they may be kept (keepable) */
void sl_conn_close_kept(struct sl_wstate *w)
{
    struct sl_conn *c = &w->conn;

    if (!c->open)
        return;
    if (!keepable(w)) {
        sl_conn_close(w, true);
        return;
    }
    sl_smtp_quit(&c->s);
    c->open = false;
    c->kept = true;
}
