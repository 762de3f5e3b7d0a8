/*
 * tls_policy.c - what TLS a delivery demands of each MX host, and why.
 *
 * Three sources, the strongest that applies wins for each host:
 *  - DANE (RFC 7672): DNSSEC-validated TLSA records at _port._tcp.MX, believed
 *    only from a resolver on loopback.  They authenticate the host whatever
 *    the tls option says; only dane = off sets them aside.  A TLSA lookup that
 *    fails (a validating resolver answers SERVFAIL for bogus data) makes the
 *    host unusable for this attempt, unless the host's own address records
 *    are unsigned (RFC 7672 2.2.2); records that are all unusable still
 *    demand encryption (RFC 7672 2.2), and authenticate nothing: the tls
 *    option and MTA-STS then apply as without them.  With usable records,
 *    MTA-STS is not applied to that host (RFC 8461 2).
 *  - MTA-STS (RFC 8461): enforce: only the MX hosts the policy names, and
 *    the certificate must verify for the MX name; testing: the same is
 *    checked and noted in the delivery log, and mail flows.
 *  - The tls option: disabled, opportunistic, required, verify.
 * A policy only ever raises the need: verify stays verify under a testing
 * policy.  With a route the MX lookup is skipped, and so are DANE and MTA-STS:
 * the route's host is the operator's own choice.
 * Trust boundary: policy texts and TLSA records come from the network; they
 * reach here bounded and checked by sl_sts_get and sl_dns_tlsa.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "config/sl_config.h"
#include "util/sl_msg.h"
#include "tls/sl_tls_policy.h"

/* config_need - what the tls option alone asks */
static enum sl_tls_need config_need(int mode)
{
    switch (mode) {
    case SL_TLS_DISABLED:
        return SL_TLS_NEED_NONE;
    case SL_TLS_REQUIRED:
        return SL_TLS_NEED_ENCRYPT;
    case SL_TLS_VERIFY:
        return SL_TLS_NEED_VERIFY;
    default:
        return SL_TLS_NEED_TRY;
    }
}

/* stronger - the stronger of two needs */
static enum sl_tls_need stronger(enum sl_tls_need a, enum sl_tls_need b)
{
    return a > b ? a : b;
}

/* tls_client - the process's OpenSSL context, made once with tls_ca_file */
static struct sl_tls_client *tls_client(struct sl_tls_env *env, char *err, size_t errlen)
{
    struct sl_scope_ref none = {0};

    if (env->client == NULL)
        env->client =
            sl_tls_client_new(sl_config_str(env->cfg, SL_OPT_TLS_CA_FILE, &none), err, errlen);
    return env->client;
}

/* sts_lookup - the domain's MTA-STS policy, through the process's memo and the shared cache */
static void sts_lookup(struct sl_tls_env *env, const struct sl_dest *d, struct sl_dns *dns,
                       struct sl_tls_plan *p)
{
    const struct sl_config *cfg = env->cfg;
    struct sl_scope_ref none = {0};
    struct sl_scope_ref ref = {.binding = d->binding, .domain = d->domain};
    char dir[4096];

    snprintf(dir, sizeof dir, "%s/mta-sts", sl_config_str(cfg, SL_OPT_SPOOL_DIR, &none));
    struct sl_sts_env sts = {
        .dns = dns,
        .cache_dir = dir,
        .timeout_ms = (long)sl_config_num(cfg, SL_OPT_MTA_STS_TIMEOUT, &ref),
        .port = (int)sl_config_num(cfg, SL_OPT_MTA_STS_PORT, &none),
        .ca_file = sl_config_str(cfg, SL_OPT_TLS_CA_FILE, &none),
        .now = time(NULL),
    };
    if (env->sts_memo == NULL)
        env->sts_memo = sl_calloc(1, sizeof *env->sts_memo);
    p->sts_src = sl_sts_get(&sts, env->sts_memo, d->domain, &p->sts, p->note, sizeof p->note);
    if (p->sts_src == SL_STS_SRC_NONE)
        p->sts.mode = SL_STS_NONE;
}

/* sl_tls_plan_make - the domain-wide part: the tls option and the MTA-STS policy */
bool sl_tls_plan_make(struct sl_tls_env *env, const struct sl_dest *d, struct sl_dns *dns,
                      struct sl_tls_plan *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->mode = d->tls;
    p->dns = dns;
    if (tls_client(env, err, errlen) == NULL)
        return false; /* a broken CA file must not turn verify into clear text */
    p->dane = d->dane && d->route == NULL && dns != NULL && sl_dns_trusts_ad(dns);
    if (d->mta_sts && d->route == NULL && dns != NULL)
        sts_lookup(env, d, dns, p);
    return true;
}

/* usable_tlsa - usages DANE-TA(2) and DANE-EE(3), selectors 0-1, matching types 0-2
 * (RFC 7672 3.1: PKIX-TA and PKIX-EE are not for SMTP) */
static bool usable_tlsa(const struct sl_tlsa *t)
{
    return (t->usage == 2 || t->usage == 3) && t->selector <= 1 && t->mtype <= 2;
}

/* choose_dane - the host's validated TLSA records, if any; true when DANE decided */
static bool choose_dane(struct sl_tls_env *env, const struct sl_dest *d,
                        const struct sl_tls_plan *p, const char *mx, struct sl_tls_choice *c)
{
    struct sl_tlsa_answer a;
    size_t usable = 0;
    char err[200];

    if (env->tlsa_cache == NULL)
        env->tlsa_cache = sl_calloc(1, sizeof *env->tlsa_cache);
    if (sl_tlsa_cached(env->tlsa_cache, p->dns, mx, d->port, &a, err, sizeof err) != SL_DNS_OK) {
        if (!sl_dns_host_signed(p->dns, mx))
            return false; /* an unsigned zone: DANE cannot apply (RFC 7672 2.2.2) */
        c->skip = true;
        c->source = "dane";
        c->params.need = SL_TLS_NEED_DANE;
        snprintf(c->why, sizeof c->why, "TLSA lookup for _%d._tcp.%s failed: %s", d->port, mx, err);
        return true;
    }
    if (!a.secure || a.n == 0)
        return false;
    for (size_t i = 0; i < a.n; i++)
        if (usable_tlsa(&a.rec[i]))
            c->tlsa[usable++] = a.rec[i];
    c->source = "dane";
    if (usable == 0) {
        /* Records, none usable: DANE asks for encryption (RFC 7672 2.2) and authenticates
         * nothing, so what the tls option and an MTA-STS policy ask still holds. */
        c->params.need = stronger(c->params.need, SL_TLS_NEED_ENCRYPT);
        snprintf(c->why, sizeof c->why, "no usable TLSA record for %s: encrypted at least", mx);
        return false;
    }
    c->params.tlsa = c->tlsa;
    c->params.ntlsa = usable;
    c->params.need = SL_TLS_NEED_DANE;
    return true;
}

/* apply_sts - what the domain's MTA-STS policy asks of host mx */
static void apply_sts(const struct sl_tls_plan *p, const char *mx, struct sl_tls_choice *c)
{
    bool listed = sl_sts_mx_matches(&p->sts, mx);

    c->source = "mta-sts";
    if (p->sts.mode == SL_STS_ENFORCE) {
        if (!listed) {
            c->skip = true;
            snprintf(c->why, sizeof c->why, "%s is not an MX host of the MTA-STS policy (enforce)",
                     mx);
        }
        c->params.need = stronger(c->params.need, SL_TLS_NEED_VERIFY);
        return;
    }
    c->testing = true;
    c->params.need = stronger(c->params.need, SL_TLS_NEED_TRY);
    if (!listed)
        snprintf(c->why, sizeof c->why, "MTA-STS testing: %s is not in the policy", mx);
}

/* sl_tls_choose - the need for one MX host */
void sl_tls_choose(struct sl_tls_env *env, const struct sl_dest *d, const struct sl_tls_plan *p,
                   const char *mx, struct sl_tls_choice *c)
{
    memset(c, 0, sizeof *c);
    c->params.client = env->client;
    c->params.host = mx;
    c->params.need = config_need(p->mode);
    c->source = "config";
    if (p->dane && choose_dane(env, d, p, mx, c))
        return;
    if (p->sts.mode != SL_STS_NONE)
        apply_sts(p, mx, c);
}

/* add_note - append one remark to the log's note */
static void add_note(struct sl_tls_log *log, const char *text)
{
    if (text == NULL || *text == '\0')
        return;
    if (log->note[0] != '\0')
        strlcat(log->note, "; ", sizeof log->note);
    strlcat(log->note, text, sizeof log->note);
}

/* note_choice - the log's need, source and the remarks of the plan and the choice */
static void note_choice(const struct sl_tls_plan *p, const struct sl_tls_choice *c,
                        struct sl_tls_log *log)
{
    memset(log, 0, sizeof *log);
    log->tried = true;
    log->need = c->params.need;
    log->source = c->source;
    add_note(log, p->note);
    add_note(log, c->why);
}

/* sl_tls_note_refusal - a host the policy ruled out before any connection */
void sl_tls_note_refusal(const struct sl_tls_plan *p, const struct sl_tls_choice *c,
                         struct sl_tls_log *log)
{
    note_choice(p, c, log);
}

/* sl_tls_record - what the attempt on one host came to, for the delivery log */
void sl_tls_record(const struct sl_tls_plan *p, const struct sl_tls_choice *c,
                   const struct sl_smtp *s, struct sl_tls_log *log)
{
    char t[256];

    note_choice(p, c, log);
    log->info = s->tls;
    if (!c->testing)
        return;
    if (!s->tls.on)
        add_note(log, "MTA-STS testing: the session was not encrypted");
    else if (!s->tls.verified) {
        snprintf(t, sizeof t, "MTA-STS testing: certificate not verified: %s", s->tls.check);
        add_note(log, t);
    }
}

/* sl_tls_env_free - the context and memories env made */
void sl_tls_env_free(struct sl_tls_env *env)
{
    sl_tls_client_free(env->client);
    free(env->sts_memo);
    free(env->tlsa_cache);
    env->client = NULL;
    env->sts_memo = NULL;
    env->tlsa_cache = NULL;
}
