/*
 * ctl_queue.c - sluicectl queue: list the messages waiting in the spool.
 *
 * sluicectl queue [--json] [--summary | ID... | --domain D | --binding B]:
 * every message, or the ones named, or those with a part for domain D, or of
 * binding B; --summary is the queue's shape (ctl_queue_summary.c).
 *
 * Reads the spool directly (no daemon needed, nothing locked): each message's
 * envelope and the state of each of its parts.  A message delivered while we
 * read simply drops out of the list.
 *
 * Text: one block per message, oldest first:
 *   ID  ARRIVAL  binding B  from <SENDER>  size N [bounce]
 *     part K DOMAIN: P pending, D done, A attempts, next TIME
 *       held by the operator: not attempted until released   (sluicectl hold)
 *       suspect: in at least N crashed jobs; it goes in jobs of its own   (a worker died
 *         with it; the latest crash is recorded at the part's next try)
 *       waiting for SCOPE KEY (IN USE/LIMIT) since TIME   (a full counter holds it back)
 *     (instead of "next TIME": "suspended until TIME (REASON)" for a suspended scope,
 *     "waiting for SCOPE KEY IN USE/LIMIT" for a full counter, "waiting for
 *     throttle_KIND BUCKET (RATE, next token in N ms)" for an empty bucket; the reply
 *     is then "last reply", of an earlier attempt)
 *       reply: LAST REPLY
 *       ADDRESS  pending|delivered|bounced
 * JSON (--json), keys kept stable for scripts:
 *   {"messages": [{"id": str, "arrival": ISO-8601 UTC, "arrival_unix": int,
 *                  "binding": str, "sender": str ("" for the null sender),
 *                  "size": int, "dsn": bool,
 *                  "parts": [{"part": int, "domain": str, "pending": int,
 *                             "done": int, "attempts": int,
 *                             "next": ISO-8601 UTC or "now", "next_unix": int,
 *                             "held": bool (the operator holds it),
 *                             "crashes": int (jobs it was in whose worker died of
 *                                        its own doing, as recorded at its last try:
 *                                        more than 0, a suspect),
 *                             "reply": str ("" before any attempt),
 *                             "suspended": null or {"text": str, "reason": str},
 *                             "waiting": null or {"scope": str, "key": str,
 *                                        "in_use": int, "limit": int,
 *                                        "since": ISO-8601 UTC or null},
 *                             "recipients": [{"address": str,
 *                                             "status": "pending" | "delivered"
 *                                                       | "bounced"}]}]}],
 *    "total": int,
 *    "corrupt": [{"name": str, "size": int, "modified": ISO-8601 UTC}]}
 *   (damaged spool entries set aside in spool/corrupt/, listed after the queue)
 * "waiting": with a daemon running, a part due now whose destination has no
 * open connection and whose counters refuse a new one (the very check the
 * scheduler makes, on the live counter table, read-only) waits for that
 * counter; "since" is when mail began to wait for it without a break.
 * Trust boundary: spool files are parsed by the spool layer, strictly; one
 * that does not parse is reported on stderr and skipped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "config/sl_config.h"
#include "config/sl_limits.h"
#include "ctl/sl_ctl.h"
#include "shm/sl_shm.h"
#include "util/sl_msg.h"
#include "spool/sl_spool.h"

/* The ids found by the scan. */
struct id_list {
    char (*ids)[SL_SPOOL_ID_LEN + 1];
    size_t n, cap;
};

/* One part's figures for printing. */
struct part_view {
    const struct sl_spool_state *st;
    size_t pending, done;
};

/* What tells whether a destination waits for a counter: the config and the live table
 * (both NULL-able: no daemon, or a config that does not load, shows no waits). */
struct waits {
    struct sl_config *cfg;
    struct sl_shm shm;
    bool attached;
};

/* A destination's wait, for printing. */
struct wait_view {
    bool waiting;
    struct sl_counter_view c;
};

/* Which messages to show (all when every field is empty). */
struct filter {
    const char *domain, *binding;
    char **ids;
    int nids;
    bool summary;
};

/* usage - the subcommand's synopsis */
static int usage(void)
{
    fprintf(stderr,
            "usage: sluicectl queue [--json] [--summary | ID... | --domain D | --binding B]\n");
    return 2;
}

/* wanted - does the filter keep message m */
static bool wanted(const struct filter *f, const struct sl_spool_msg *m)
{
    bool any = f->domain == NULL;

    if (f->binding != NULL && strcmp(m->binding, f->binding) != 0)
        return false;
    for (size_t k = 0; !any && k < m->nparts; k++)
        any = strcasecmp(m->domain[k], f->domain) == 0;
    return any;
}

/* collect - the scan's callback: keep the id */
static void collect(const char *id, void *ctx)
{
    struct id_list *l = ctx;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->ids = sl_realloc(l->ids, l->cap * sizeof *l->ids);
    }
    memcpy(l->ids[l->n++], id, SL_SPOOL_ID_LEN + 1);
}

/* next_time - the next attempt: "now" when due */
static void next_time(int64_t next, int64_t now, char *buf, size_t len)
{
    if (next <= now)
        snprintf(buf, len, "now");
    else
        sl_ctl_iso_time(next, buf, len);
}

/* status_word - a recipient's status for people and scripts */
static const char *status_word(unsigned char s)
{
    return s == SL_RCPT_DELIVERED ? "delivered" : s == SL_RCPT_BOUNCED ? "bounced" : "pending";
}

/* waits_open - the config and, when a daemon runs, its counter table (read-only) */
static void waits_open(const char *cfgpath, struct waits *w)
{
    struct sl_diag d = {0};
    struct sl_scope_ref none = {0};
    char err[256];

    memset(w, 0, sizeof *w);
    w->cfg = sl_config_load(cfgpath, &d);
    sl_diag_free(&d);
    if (w->cfg == NULL)
        return;
    w->attached = sl_shm_attach(sl_config_str(w->cfg, SL_OPT_SHM_NAME, &none), true, 0, &w->shm,
                                err, sizeof err) == 0;
    if (w->attached && sl_shm_stale(&w->shm)) {
        sl_shm_detach(&w->shm);
        w->attached = false;
    }
}

/* waits_close - what waits_open took */
static void waits_close(struct waits *w)
{
    if (w->attached)
        sl_shm_detach(&w->shm);
    sl_config_free(w->cfg);
}

/* wait_of - the counter binding x domain waits for, if it has no connection and is held back */
static struct wait_view wait_of(struct waits *w, const char *binding, const char *domain)
{
    struct wait_view v = {0};
    struct sl_refusal why;
    struct sl_counter_view own;
    uint32_t slot;

    if (!w->attached)
        return v;
    if (sl_shm_find(&w->shm, SL_SCOPE_BINDING_DOMAIN, binding, domain, &slot) == SL_SHM_OK &&
        sl_shm_view(&w->shm, slot, &own) == 0 && own.in_use > 0)
        return v; /* it has a connection: its mail moves */
    if (sl_limits_dest_room(w->cfg, &w->shm, binding, domain, &why))
        return v;
    v.waiting = sl_shm_view(&w->shm, why.slot, &v.c) == 0;
    return v;
}

/* count_part - pending and final recipients of part k */
static struct part_view count_part(const struct sl_spool_msg *m, unsigned k,
                                   const struct sl_spool_state *st)
{
    struct part_view v = {.st = st};

    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpt[i].part == k) {
            if (st->status[i] == SL_RCPT_PENDING)
                v.pending++;
            else
                v.done++;
        }
    return v;
}

/* wait_key - "SCOPE KEY" of the counter a destination waits for */
static void wait_key(const struct sl_counter_view *c, char *buf, size_t len)
{
    char key[2 * SL_SHM_NAME_MAX + 4];

    sl_ctl_scope_key(c, key, sizeof key);
    snprintf(buf, len, "%s %s", sl_scope_kind_name(c->kind), key);
}

/* part_wait - the wait of part k, when it is due and has pending recipients */
static struct wait_view part_wait(struct waits *w, const struct sl_spool_msg *m, unsigned k,
                                  const struct sl_spool_state *st, size_t pending, int64_t now)
{
    struct wait_view none = {0};

    if (pending == 0 || st->next > now || st->held)
        return none;
    return wait_of(w, m->binding, m->domain[k]);
}

/* print_text - one message as a block */
static void print_text(struct waits *w, const struct sl_spool_msg *m,
                       const struct sl_spool_state *st, int64_t now)
{
    char arrival[32], next[32], key[2 * SL_SHM_NAME_MAX + 64], since[32];

    sl_ctl_iso_time(m->arrival, arrival, sizeof arrival);
    printf("%s  %s  binding %s  from <%s>  size %llu%s\n", m->id, arrival, m->binding, m->sender,
           (unsigned long long)m->size, m->dsn ? "  bounce" : "");
    for (unsigned k = 0; k < m->nparts; k++) {
        struct part_view v = count_part(m, k, &st[k]);
        next_time(st[k].next, now, next, sizeof next);
        struct wait_view wv = part_wait(w, m, k, &st[k], v.pending, now);
        char state[600];
        bool suspended = v.pending > 0 && sl_ctl_suspension(w->cfg, m->binding, m->domain[k], state,
                                                            sizeof state, NULL);
        if (!suspended && wv.waiting) {
            wait_key(&wv.c, key, sizeof key);
            snprintf(state, sizeof state, "waiting for %s %u/%d", key, wv.c.in_use, wv.c.limit);
        } else if (!suspended && w->attached && v.pending > 0 && st[k].next <= now && !st[k].held &&
                   sl_ctl_throttle_wait(w->cfg, &w->shm, m->binding, m->domain[k], state,
                                        sizeof state)) {
            /* state says which throttle's bucket the mail waits for */
        } else if (!suspended) {
            snprintf(state, sizeof state, "next %s", next);
        }
        printf("  part %u %s: %zu pending, %zu done, %u attempts, %s\n", k, m->domain[k], v.pending,
               v.done, st[k].attempts, state);
        if (st[k].held && v.pending > 0)
            printf("    held by the operator: not attempted until released\n");
        if (st[k].crashes > 0 && v.pending > 0)
            printf("    suspect: in at least %u crashed job%s; it goes in jobs of its own\n",
                   st[k].crashes, st[k].crashes == 1 ? "" : "s");
        if (wv.waiting) {
            wait_key(&wv.c, key, sizeof key);
            sl_ctl_iso_time((int64_t)(wv.c.wait_since / 1000), since, sizeof since);
            printf("    waiting for %s (%u/%d)%s%s\n", key, wv.c.in_use, wv.c.limit,
                   wv.c.wait_since ? " since " : "", wv.c.wait_since ? since : "");
        }
        if (st[k].reply[0] != '\0') /* held back now: the reply is of an earlier attempt */
            printf("    %s: %s\n", suspended || wv.waiting ? "last reply" : "reply", st[k].reply);
        for (size_t i = 0; i < m->nrcpt; i++)
            if (m->rcpt[i].part == k)
                printf("    %s  %s\n", m->rcpt[i].addr, status_word(st[k].status[i]));
    }
    putchar('\n');
}

/* print_json_wait - the "waiting" member */
static void print_json_wait(const struct wait_view *wv)
{
    char key[2 * SL_SHM_NAME_MAX + 4], since[32];

    if (!wv->waiting) {
        printf(",\"waiting\":null");
        return;
    }
    sl_ctl_scope_key(&wv->c, key, sizeof key);
    printf(",\"waiting\":{\"scope\":\"%s\",\"key\":", sl_scope_kind_name(wv->c.kind));
    sl_ctl_json_string(key);
    printf(",\"in_use\":%u,\"limit\":%d,\"since\":", wv->c.in_use, wv->c.limit);
    if (wv->c.wait_since == 0) {
        printf("null}");
        return;
    }
    sl_ctl_iso_time((int64_t)(wv->c.wait_since / 1000), since, sizeof since);
    printf("\"%s\"}", since);
}

/* print_json_part - one element of "parts" */
static void print_json_part(struct waits *w, const struct sl_spool_msg *m, unsigned k,
                            const struct sl_spool_state *st, int64_t now)
{
    struct part_view v = count_part(m, k, st);
    struct wait_view wv = part_wait(w, m, k, st, v.pending, now);
    char next[32];
    bool first = true;

    next_time(st->next, now, next, sizeof next);
    printf("{\"part\":%u,\"domain\":", k);
    sl_ctl_json_string(m->domain[k]);
    printf(",\"pending\":%zu,\"done\":%zu,\"attempts\":%u,\"next\":\"%s\",\"next_unix\":%lld,"
           "\"held\":%s,\"crashes\":%u,\"reply\":",
           v.pending, v.done, st->attempts, next, (long long)st->next, st->held ? "true" : "false",
           st->crashes);
    sl_ctl_json_string(st->reply);
    print_json_wait(&wv);
    char until[600], reason[SL_CTL_REASON_MAX];
    if (v.pending > 0 &&
        sl_ctl_suspension(w->cfg, m->binding, m->domain[k], until, sizeof until, reason)) {
        printf(",\"suspended\":{\"text\":");
        sl_ctl_json_string(until);
        printf(",\"reason\":");
        sl_ctl_json_string(reason);
        printf("}");
    } else {
        printf(",\"suspended\":null");
    }
    printf(",\"recipients\":[");
    for (size_t i = 0; i < m->nrcpt; i++) {
        if (m->rcpt[i].part != k)
            continue;
        printf("%s{\"address\":", first ? "" : ",");
        sl_ctl_json_string(m->rcpt[i].addr);
        printf(",\"status\":\"%s\"}", status_word(st->status[i]));
        first = false;
    }
    printf("]}");
}

/* print_json - one element of "messages" */
static void print_json(struct waits *w, const struct sl_spool_msg *m,
                       const struct sl_spool_state *st, int64_t now, bool first)
{
    char arrival[32];

    sl_ctl_iso_time(m->arrival, arrival, sizeof arrival);
    printf("%s{\"id\":\"%s\",\"arrival\":\"%s\",\"arrival_unix\":%lld,\"binding\":",
           first ? "" : ",", m->id, arrival, (long long)m->arrival);
    sl_ctl_json_string(m->binding);
    printf(",\"sender\":");
    sl_ctl_json_string(m->sender);
    printf(",\"size\":%llu,\"dsn\":%s,\"parts\":[", (unsigned long long)m->size,
           m->dsn ? "true" : "false");
    for (unsigned k = 0; k < m->nparts; k++) {
        if (k > 0)
            putchar(',');
        print_json_part(w, m, k, &st[k], now);
    }
    printf("]}");
}

/* load_states - every part's state; false (after a note) when one is unreadable */
static bool load_states(const char *spool, const struct sl_spool_msg *m, struct sl_spool_state *st)
{
    char err[512];

    for (unsigned k = 0; k < m->nparts; k++)
        if (sl_spool_state_load(spool, m->id, k, m->nrcpt, &st[k], err, sizeof err) < 0) {
            fprintf(stderr, "sluicectl: queue: %s\n", err);
            while (k-- > 0)
                sl_spool_state_free(&st[k]);
            return false;
        }
    return true;
}

/* show_one - read and print one message; false when it is gone or unreadable */
static bool show_one(struct waits *w, const char *spool, const char *id, bool json, bool first,
                     int64_t now, const struct filter *f)
{
    struct sl_spool_msg m;
    struct sl_spool_state *st;
    char err[512];
    bool shown = false;

    if (sl_spool_read(spool, id, &m, err, sizeof err) < 0) {
        if (errno != ENOENT) /* delivered since the scan: not an error */
            fprintf(stderr, "sluicectl: queue: %s\n", err);
        else if (f->nids > 0)
            fprintf(stderr, "sluicectl: queue: %s is not in the queue\n", id);
        return false;
    }
    if (!wanted(f, &m)) {
        sl_spool_msg_free(&m);
        return false;
    }
    st = sl_calloc(m.nparts, sizeof *st);
    if (load_states(spool, &m, st)) {
        if (json)
            print_json(w, &m, st, now, first);
        else
            print_text(w, &m, st, now);
        for (unsigned k = 0; k < m.nparts; k++)
            sl_spool_state_free(&st[k]);
        shown = true;
    }
    free(st);
    sl_spool_msg_free(&m);
    return shown;
}

/* corrupt_text - one entry set aside, as a line */
static void corrupt_text(const char *name, const struct stat *st, void *ctx)
{
    char when[32];

    (void)ctx;
    sl_ctl_iso_time((int64_t)st->st_mtime, when, sizeof when);
    printf("  corrupt/%s  %lld bytes  %s\n", name, (long long)st->st_size, when);
}

/* corrupt_json - one entry set aside, as an element of "corrupt" */
static void corrupt_json(const char *name, const struct stat *st, void *ctx)
{
    bool *first = ctx;
    char when[32];

    sl_ctl_iso_time((int64_t)st->st_mtime, when, sizeof when);
    printf("%s{\"name\":", *first ? "" : ",");
    sl_ctl_json_string(name);
    printf(",\"size\":%lld,\"modified\":\"%s\"}", (long long)st->st_size, when);
    *first = false;
}

/* show_corrupt - the entries set aside in corrupt/ (damaged files), after the queue */
static void show_corrupt(const char *spool, bool json)
{
    bool first = true;
    size_t n;

    if (json) {
        printf(",\"corrupt\":[");
        sl_spool_corrupt_list(spool, corrupt_json, &first);
        printf("]");
        return;
    }
    if ((n = sl_spool_corrupt_list(spool, NULL, NULL)) == 0)
        return;
    printf("%zu damaged spool entr%s set aside in %s/corrupt/:\n", n, n == 1 ? "y" : "ies", spool);
    sl_spool_corrupt_list(spool, corrupt_text, NULL);
}

/* parse - the options into *f and *json; false on bad usage */
static bool parse(int argc, char **argv, struct filter *f, bool *json)
{
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--json") == 0)
            *json = true;
        else if (strcmp(argv[i], "--summary") == 0)
            f->summary = true;
        else if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc)
            f->domain = sl_ctl_domain_arg(argv[++i]);
        else if (strcmp(argv[i], "--binding") == 0 && i + 1 < argc)
            f->binding = argv[++i];
        else {
            fprintf(stderr, "sluicectl: queue: unknown option or missing value: %s\n", argv[i]);
            return false;
        }
    }
    f->ids = argv + i;
    f->nids = argc - i;
    for (int j = 0; j < f->nids; j++)
        if (!sl_spool_id_valid(f->ids[j])) {
            fprintf(stderr, "sluicectl: queue: %s is not a queue id\n", f->ids[j]);
            return false;
        }
    return (f->summary + (f->nids > 0) + (f->domain != NULL || f->binding != NULL)) <= 1;
}

/* sl_ctl_queue - sluicectl queue [--json] [--summary | ID... | --domain D | --binding B] */
int sl_ctl_queue(const char *cfgpath, int argc, char **argv)
{
    char spool[4096], path[4200];
    struct id_list l = {0};
    struct filter f = {0};
    bool json = false;
    size_t total = 0;
    int64_t now = (int64_t)time(NULL);
    struct waits w;

    if (!parse(argc, argv, &f, &json))
        return usage();
    if (sl_ctl_global(cfgpath, SL_OPT_SPOOL_DIR, spool, sizeof spool) != 0)
        return 1;
    if (f.summary)
        return sl_ctl_queue_summary(spool, json);
    snprintf(path, sizeof path, "%s/queue", spool);
    for (int i = 0; i < f.nids; i++)
        collect(f.ids[i], &l);
    if (f.nids == 0 && sl_spool_scan(spool, collect, &l) < 0 && errno != ENOENT) {
        fprintf(stderr, "sluicectl: queue: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    waits_open(cfgpath, &w);
    if (json)
        printf("{\"messages\":[");
    for (size_t i = 0; i < l.n; i++)
        if (show_one(&w, spool, l.ids[i], json, total == 0, now, &f))
            total++;
    waits_close(&w);
    if (json) {
        printf("],\"total\":%zu", total);
        show_corrupt(spool, true);
        printf("}\n");
    } else {
        printf("%zu message%s queued\n", total, total == 1 ? "" : "s");
        show_corrupt(spool, false);
    }
    free(l.ids);
    return f.nids > 0 && total < (size_t)f.nids ? 1 : 0;
}
