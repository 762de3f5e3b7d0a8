/*
 * ctl_throttles.c - the rate throttles' buckets and the shaping actions as
 * `counters` and `metrics` show them.
 *
 * A bucket lives in the counter table as a slot of kind throttle_connections
 * or throttle_messages (shm/bucket.c); here it is shown with what matters for
 * a rate: its rate, whether a token is ready now (LEVEL 1, else 0 and the
 * wait), the tokens given and refused to workers, and how often the master
 * held mail back for it (WAITING now, HELD BACK in all).
 * It only reads: the segment read-only, the spool's actions file.
 * Trust boundary: the segment is validated by sl_shm_attach; names are shown
 * through the JSON and label escapes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/sl_throttle.h"
#include "ctl/ctl_metrics.h"
#include "ctl/sl_ctl.h"
#include "shm/sl_shm.h"
#include "spool/sl_actions.h"
#include "util/sl_clock.h"

/* sl_ctl_is_bucket - a throttle's bucket rather than a connection counter */
bool sl_ctl_is_bucket(const struct sl_counter_view *v)
{
    return v->kind == SL_SCOPE_THROTTLE_CONN || v->kind == SL_SCOPE_THROTTLE_MSG;
}

/* not_counter - a bucket or a shaping action's cap (shm/cap.c): no connection counter */
static bool not_counter(const struct sl_counter_view *v)
{
    return sl_ctl_is_bucket(v) || v->kind == SL_SCOPE_ACTION_CAP;
}

/* sl_ctl_split_buckets - the buckets (and the actions' caps) moved after the counters, order
 * kept; counters' count */
size_t sl_ctl_split_buckets(struct sl_counter_view *v, size_t n)
{
    struct sl_counter_view *tmp = malloc((n + 1) * sizeof *tmp);
    size_t k = 0;

    if (tmp == NULL)
        return n;
    for (size_t i = 0; i < n; i++)
        if (!not_counter(&v[i]))
            tmp[k++] = v[i];
    size_t counters = k;
    for (size_t i = 0; i < n; i++)
        if (not_counter(&v[i]))
            tmp[k++] = v[i];
    memcpy(v, tmp, n * sizeof *v);
    free(tmp);
    return counters;
}

/* kind_word - "connections" or "messages" */
static const char *kind_word(enum sl_scope_kind k)
{
    return k == SL_SCOPE_THROTTLE_CONN ? "connections" : "messages";
}

/* bucket_of - the bucket behind view v; false when it is gone or retired */
static bool bucket_of(const struct sl_shm *shm, const struct sl_counter_view *v,
                      struct sl_bucket_view *b)
{
    uint32_t slot;

    return sl_shm_find(shm, v->kind, v->name, NULL, &slot) == SL_SHM_OK &&
           sl_bucket_view(shm, slot, sl_clock_us(), b) == 0 && !b->retired;
}

/* rate_text - the bucket's rate as written in the INI */
static void rate_text(const struct sl_bucket_view *b, char *buf, size_t len)
{
    sl_rate_format(b->n > 0 ? (int64_t)b->n << 32 | b->period_ms : -1, buf, len);
}

/* sl_ctl_throttles_table - the buckets among v[0..n) as a table after the counters' */
void sl_ctl_throttles_table(const struct sl_shm *shm, const struct sl_counter_view *v, size_t n)
{
    bool header = false;

    for (size_t i = 0; i < n; i++) {
        struct sl_bucket_view b;
        char rate[32];
        if (!sl_ctl_is_bucket(&v[i]) || !bucket_of(shm, &v[i], &b))
            continue;
        if (!header) {
            printf("\n%-12s %-40s %10s %5s %8s %9s %9s %7s %9s\n", "THROTTLE", "BUCKET", "RATE",
                   "LEVEL", "NEXT", "TAKEN", "REFUSED", "WAITING", "HELD BACK");
            header = true;
        }
        rate_text(&b, rate, sizeof rate);
        printf("%-12s %-40s %10s %5d %6llums %9llu %9llu %7u %9llu\n", kind_word(v[i].kind),
               v[i].name, rate, b.wait_us == 0, (unsigned long long)(b.wait_us + 999) / 1000,
               (unsigned long long)b.taken, (unsigned long long)b.refused, v[i].waiting,
               (unsigned long long)v[i].holdbacks);
    }
}

/* sl_ctl_throttles_json - the buckets among v[0..n) as a JSON array */
void sl_ctl_throttles_json(const struct sl_shm *shm, const struct sl_counter_view *v, size_t n)
{
    bool first = true;

    printf("[");
    for (size_t i = 0; i < n; i++) {
        struct sl_bucket_view b;
        char rate[32];
        if (!sl_ctl_is_bucket(&v[i]) || !bucket_of(shm, &v[i], &b))
            continue;
        rate_text(&b, rate, sizeof rate);
        printf("%s{\"throttle\":\"%s\",\"bucket\":", first ? "" : ",", kind_word(v[i].kind));
        sl_ctl_json_string(v[i].name);
        printf(",\"rate\":\"%s\",\"per\":%u,\"period_ms\":%u,\"level\":%d,\"next_ms\":%llu,"
               "\"taken\":%llu,\"refused\":%llu,\"waiting\":%u,\"holdbacks\":%llu,"
               "\"waited_ms\":%llu}",
               rate, b.n, b.period_ms, b.wait_us == 0, (unsigned long long)(b.wait_us + 999) / 1000,
               (unsigned long long)b.taken, (unsigned long long)b.refused, v[i].waiting,
               (unsigned long long)v[i].holdbacks, (unsigned long long)v[i].waited_ms);
        first = false;
    }
    printf("]");
}

/* series - one sample of a bucket */
static void series(FILE *f, const char *name, const struct sl_counter_view *v, double x)
{
    fprintf(f, "%s{kind=\"%s\",bucket=", name, kind_word(v->kind));
    sl_metrics_label(f, v->name);
    fprintf(f, "} %.10g\n", x);
}

/* The bucket families: name, type, help. */
static const struct {
    const char *name, *type, *help;
} families[] = {
    {"sluice_throttle_rate", "gauge", "A throttle's rate in tokens per second."},
    {"sluice_throttle_level", "gauge", "Tokens a throttle's bucket can give now (paced: 0 or 1)."},
    {"sluice_throttle_taken_total", "counter", "Tokens the bucket gave (connections, messages)."},
    {"sluice_throttle_refused_total", "counter", "Tokens a worker asked for and did not get."},
    {"sluice_throttle_waits_total", "counter",
     "Times a destination began to wait because the bucket was empty."},
    {"sluice_throttle_waiting", "gauge", "Destinations waiting for the bucket now."},
};

/* value - family i's figure of one bucket */
static double value(size_t i, const struct sl_counter_view *v, const struct sl_bucket_view *b)
{
    switch (i) {
    case 0:
        return b->period_ms > 0 ? b->n * 1000.0 / b->period_ms : 0;
    case 1:
        return b->wait_us == 0;
    case 2:
        return (double)b->taken;
    case 3:
        return (double)b->refused;
    case 4:
        return (double)v->holdbacks;
    default:
        return v->waiting;
    }
}

/* actions_metrics - the shaping actions in force, by rule and action */
static void actions_metrics(FILE *f, const char *spool)
{
    struct sl_actions l;
    char err[256];

    fprintf(f, "# HELP sluice_shaping_actions Shaping actions in force, by rule (\"\": the "
               "operator) and action.\n# TYPE sluice_shaping_actions gauge\n");
    if (spool == NULL || sl_actions_load(spool, &l, err, sizeof err) < 0)
        return;
    for (size_t i = 0; i < l.n; i++) {
        size_t same = 0;
        bool seen = false;
        for (size_t j = 0; j < l.n; j++) {
            bool match = strcmp(l.a[j].rule, l.a[i].rule) == 0 && l.a[j].kind == l.a[i].kind;
            seen |= match && j < i;
            same += match;
        }
        if (seen)
            continue;
        fputs("sluice_shaping_actions{rule=", f);
        sl_metrics_label(f, l.a[i].rule);
        fprintf(f, ",action=\"%s\"} %zu\n", sl_action_kind_name(l.a[i].kind), same);
    }
    fprintf(f, "# HELP sluice_shaping_actions_taken_total Actions each [shaping] rule has taken "
               "(kept in the spool across restarts).\n"
               "# TYPE sluice_shaping_actions_taken_total counter\n");
    for (size_t i = 0; i < l.ntaken; i++) {
        fputs("sluice_shaping_actions_taken_total{rule=", f);
        sl_metrics_label(f, l.taken[i].rule);
        fprintf(f, "} %llu\n", (unsigned long long)l.taken[i].n);
    }
    sl_actions_free(&l);
}

/* sl_ctl_throttles_metrics - the buckets among v[0..n) and the actions in Prometheus' format */
void sl_ctl_throttles_metrics(FILE *f, const struct sl_shm *shm, const struct sl_counter_view *v,
                              size_t n, const char *spool)
{
    for (size_t k = 0; k < sizeof families / sizeof families[0]; k++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", families[k].name, families[k].help,
                families[k].name, families[k].type);
        for (size_t i = 0; i < n; i++) {
            struct sl_bucket_view b;
            if (sl_ctl_is_bucket(&v[i]) && bucket_of(shm, &v[i], &b))
                series(f, families[k].name, &v[i], value(k, &v[i], &b));
        }
    }
    actions_metrics(f, spool);
}

/* sl_ctl_throttle_wait - the bucket binding x domain waits for, as queue shows it */
bool sl_ctl_throttle_wait(const struct sl_config *cfg, const struct sl_shm *shm,
                          const char *binding, const char *domain, char *buf, size_t len)
{
    static const enum sl_throttle_kind kinds[] = {SL_THROTTLE_MESSAGES, SL_THROTTLE_CONNECTIONS};

    if (cfg == NULL || sl_config_binding(cfg, binding) == NULL)
        return false;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        enum sl_scope_kind sk =
            kinds[i] == SL_THROTTLE_CONNECTIONS ? SL_SCOPE_THROTTLE_CONN : SL_SCOPE_THROTTLE_MSG;
        struct sl_throttle t;
        struct sl_counter_view v;
        struct sl_bucket_view b;
        uint32_t slot;
        char rate[32];
        if (!sl_throttle_resolve(cfg, kinds[i], binding, domain, NULL, &t) ||
            sl_shm_find(shm, sk, t.key, NULL, &slot) != SL_SHM_OK ||
            sl_shm_view(shm, slot, &v) < 0 || sl_bucket_view(shm, slot, sl_clock_us(), &b) < 0 ||
            (v.waiting == 0 && b.wait_us == 0))
            continue;
        rate_text(&b, rate, sizeof rate);
        snprintf(buf, len, "waiting for %s %s (%s, next token in %llu ms)", sl_scope_kind_name(sk),
                 t.key, rate, (unsigned long long)(b.wait_us + 999) / 1000);
        return true;
    }
    return false;
}
