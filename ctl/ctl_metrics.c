/*
 * ctl_metrics.c - sluicectl metrics: the counter table as a Prometheus scrape.
 *
 * Prints the text exposition format 0.0.4 of the daemon's shared memory: per counter (scope
 * kind and key) connections in use, peak, limit and refusals; the server totals; what became
 * of recipients; session phases that timed out; sessions opened and how many were encrypted.
 * With --listen ADDR:PORT it serves the same text over HTTP instead (ctl_metrics_http.c).
 * Metric families (every one with # HELP and # TYPE; counters end in _total):
 *   sluice_connections_in_use{kind,scope}          gauge    a counter's open connections
 *   sluice_connection_limit{kind,scope}            gauge    its limit; only finite limits are
 *                                                           exported (no series: no limit)
 *   sluice_connections_peak{kind,scope}            gauge    its highest in-use since start
 *   sluice_connections_refused_total{kind,scope}   counter  reservations it refused
 *   sluice_destinations_waiting{kind,scope}        gauge    destinations held back by it now
 *   sluice_delivery_phase_seconds{binding,phase}   histogram  queued, connect, tls, transaction
 *   sluice_holdbacks_total{kind,scope}             counter  waits for it that began
 *   sluice_wait_milliseconds_total{kind,scope}     counter  time ended waits lasted
 *   sluice_server_connections_in_use               gauge    open connections, whole server
 *   sluice_server_connection_limit                 gauge    server_max (when finite)
 *   sluice_connections_opened_total                counter  SMTP sessions opened
 *   sluice_tls_connections_total                   counter  of which encrypted (STARTTLS)
 *   sluice_tls_verified_connections_total          counter  of which the peer was authenticated
 *   sluice_recipients_total{outcome}               counter  delivered|deferred|bounced, one per
 *                                                           recipient of an attempt (the delivery
 *                                                           log's lines of phase "limits" that
 *                                                           made no attempt are not counted)
 *   sluice_timeouts_total{phase}                   counter  connect|greeting|tls|ehlo|mail_from|
 *                                                           rcpt_to|data|rset
 *   sluice_listener_*{listener}                    the SMTP listeners (ctl_metrics_listen.c)
 *   sluice_workers, sluice_config_generation, sluice_start_time_seconds,
 *   sluice_segment_slots, sluice_segment_slots_used             gauges
 *   sluice_reclaimed_connections_total, sluice_audit_runs_total,
 *   sluice_audit_corrections_total, sluice_worker_crashes_total,
 *   sluice_crashed_job_parts_total                              counters
 * kind is the scope kind as `sluicectl counters` names it (binding_domain, host, server...);
 * scope its key ("b1 orange.fr"; "*" for the server).
 * It only reads: the daemon never waits for it.
 * Trust boundary: the segment is validated by sl_shm_attach; names from it (control characters
 * already masked by sl_shm_view) are escaped as label values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/sl_config.h"
#include "ctl/sl_ctl.h"
#include "spool/sl_spool.h"
#include "shm/sl_shm.h"
#include "smtp/sl_smtp.h"
#include "ctl_metrics.h"

/* sl_metrics_family - the # HELP and # TYPE lines that open a metric family (help is our own
 * text) */
void sl_metrics_family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* sl_metrics_label - s quoted as a label value: backslash, double quote and newline escaped */
void sl_metrics_label(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* scope_labels - {kind="...",scope="..."} of a counter */
static void scope_labels(FILE *f, const struct sl_counter_view *v)
{
    char key[2 * SL_SHM_NAME_MAX + 4];

    sl_ctl_scope_key(v, key, sizeof key);
    fputs("{kind=", f);
    sl_metrics_label(f, sl_scope_kind_name(v->kind));
    fputs(",scope=", f);
    sl_metrics_label(f, key);
    fputc('}', f);
}

/* What one per-counter family shows of a counter; false: no sample for it. */
typedef bool counter_value(const struct sl_counter_view *v, unsigned long long *out);

static bool in_use_of(const struct sl_counter_view *v, unsigned long long *out)
{
    *out = v->in_use;
    return true;
}
static bool limit_of(const struct sl_counter_view *v, unsigned long long *out)
{
    *out = (unsigned long long)v->limit;
    return v->limit >= 0; /* no limit: no series, rather than a sentinel a query must know */
}
static bool peak_of(const struct sl_counter_view *v, unsigned long long *out)
{
    *out = v->peak;
    return true;
}
static bool refused_of(const struct sl_counter_view *v, unsigned long long *out)
{
    *out = v->refused;
    return true;
}
static bool waiting_of(const struct sl_counter_view *v, unsigned long long *out)
{
    *out = v->waiting;
    return true;
}
static bool holdbacks_of(const struct sl_counter_view *v, unsigned long long *out)
{
    *out = v->holdbacks;
    return true;
}
static bool waited_of(const struct sl_counter_view *v, unsigned long long *out)
{
    *out = v->waited_ms;
    return true;
}

/* per_counter - one family with a sample per counter */
static void per_counter(FILE *f, const char *name, const char *type, const char *help,
                        const struct sl_counter_view *v, size_t n, counter_value *value)
{
    unsigned long long x;

    sl_metrics_family(f, name, type, help);
    for (size_t i = 0; i < n; i++)
        if (value(&v[i], &x)) {
            fputs(name, f);
            scope_labels(f, &v[i]);
            fprintf(f, " %llu\n", x);
        }
}

/* single - a family of one unlabelled sample */
static void single(FILE *f, const char *name, const char *type, const char *help,
                   unsigned long long value)
{
    sl_metrics_family(f, name, type, help);
    fprintf(f, "%s %llu\n", name, value);
}

/* write_daemon - the daemon and the segment themselves */
static void write_daemon(FILE *f, const struct sl_shm *shm, size_t n)
{
    const struct sl_shm_header *h = shm->hdr;

    single(f, "sluice_start_time_seconds", "gauge",
           "Start time of the running sluiced since the epoch, in seconds.", h->master_start);
    single(f, "sluice_config_generation", "gauge",
           "Configuration generation: bumped by every accepted reload.", sl_peek64(&h->config_gen));
    single(f, "sluice_workers", "gauge", "Worker processes alive.", sl_ctl_workers_alive(shm));
    single(f, "sluice_segment_slots", "gauge", "Counters the shared-memory table can hold.",
           h->slot_capacity);
    single(f, "sluice_segment_slots_used", "gauge", "Counters in the shared-memory table.", n);
    single(f, "sluice_reclaimed_connections_total", "counter",
           "Connection counts given back on behalf of workers that died.",
           sl_peek64(&h->reclaimed));
    single(f, "sluice_audit_runs_total", "counter", "Audits of the counter table.",
           sl_peek64(&h->audit_runs));
    single(f, "sluice_audit_corrections_total", "counter",
           "Counts the audit found wrong and corrected.", sl_peek64(&h->audit_fixed));
    single(f, "sluice_worker_crashes_total", "counter",
           "Workers that died of their own doing (a signal such as SIGSEGV, or a non-zero exit).",
           sl_peek64(&h->worker_crashes));
    single(f, "sluice_crashed_job_parts_total", "counter",
           "Parts of crashed workers' jobs: each waits 5 minutes, then goes in a job of its own.",
           sl_peek64(&h->crashed_parts));
}

/* write_counters - every live counter, and the server's own */
static void write_counters(FILE *f, const struct sl_counter_view *v, size_t n)
{
    const struct sl_counter_view *server = NULL;

    per_counter(f, "sluice_connections_in_use", "gauge",
                "Connections open under a limit scope (kind and key).", v, n, in_use_of);
    per_counter(f, "sluice_connection_limit", "gauge",
                "A scope's connection limit; scopes without a limit have no series.", v, n,
                limit_of);
    per_counter(f, "sluice_connections_peak", "gauge",
                "Most connections open at once under a scope since the daemon started.", v, n,
                peak_of);
    per_counter(f, "sluice_connections_refused_total", "counter",
                "Connections a scope refused because it was at its limit.", v, n, refused_of);
    per_counter(f, "sluice_destinations_waiting", "gauge",
                "Destinations (binding x domain) held back now because the scope is full.", v, n,
                waiting_of);
    per_counter(f, "sluice_holdbacks_total", "counter",
                "Times a destination began to wait because the scope was full.", v, n,
                holdbacks_of);
    per_counter(f, "sluice_wait_milliseconds_total", "counter",
                "Milliseconds destinations waited for the scope, summed over ended waits.", v, n,
                waited_of);
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == SL_SCOPE_SERVER)
            server = &v[i];
    single(f, "sluice_server_connections_in_use", "gauge", "Connections open on the whole server.",
           server ? server->in_use : 0);
    sl_metrics_family(f, "sluice_server_connection_limit", "gauge",
                      "server_max_outbound_connections; no series when the server has no limit.");
    if (server != NULL && server->limit >= 0)
        fprintf(f, "sluice_server_connection_limit %d\n", server->limit);
}

/* write_stats - the statistics block: sessions, recipients, timeouts */
static void write_stats(FILE *f, const struct sl_shm *shm)
{
    static const char *const outcome[SL_STATS__OUTCOMES] = {
        [SL_STATS_DELIVERED] = "delivered",
        [SL_STATS_DEFERRED] = "deferred",
        [SL_STATS_BOUNCED] = "bounced",
    };
    struct sl_stats_view st;

    sl_stats_read(shm, &st);
    single(f, "sluice_connections_opened_total", "counter", "SMTP sessions opened.",
           st.connections);
    single(f, "sluice_tls_connections_total", "counter", "SMTP sessions encrypted with STARTTLS.",
           st.tls);
    single(f, "sluice_tls_verified_connections_total", "counter",
           "Encrypted SMTP sessions whose peer was authenticated (PKIX or DANE).", st.tls_verified);
    sl_metrics_family(f, "sluice_recipients_total", "counter",
                      "Recipients by the outcome of a delivery attempt (mail held back for a "
                      "connection slot is not attempted: see sluice_connections_refused_total).");
    for (int i = 0; i < SL_STATS__OUTCOMES; i++)
        fprintf(f, "sluice_recipients_total{outcome=\"%s\"} %llu\n", outcome[i],
                (unsigned long long)st.recipients[i]);
    sl_metrics_family(f, "sluice_timeouts_total", "counter", "SMTP session phases that timed out.");
    /* quit is left out: a QUIT that times out is not a failure of the delivery */
    for (unsigned ph = SL_PH_CONNECT; ph < SL_PH_QUIT; ph++)
        fprintf(f, "sluice_timeouts_total{phase=\"%s\"} %llu\n", sl_phase_name(ph),
                (unsigned long long)st.timeouts[ph]);
}

/* labels - a sample's name with its suffix, and its labels up to where le would go */
static void labels(FILE *f, const char *name, const char *suffix, const char *key,
                   const char *value, const char *extra_key, const char *extra)
{
    fprintf(f, "%s%s{%s=", name, suffix, key);
    sl_metrics_label(f, value);
    if (extra_key != NULL)
        fprintf(f, ",%s=\"%s\"", extra_key, extra);
}

/* sl_metrics_histogram - one histogram's samples, its buckets cumulated here */
void sl_metrics_histogram(FILE *f, const char *name, const char *key, const char *value,
                          const char *extra_key, const char *extra, const uint64_t *bucket,
                          uint64_t sum_us)
{
    unsigned long long cum = 0;

    for (unsigned b = 0; b < SL_LAT_BUCKETS; b++) {
        cum += bucket[b];
        labels(f, name, "_bucket", key, value, extra_key, extra);
        if (b < SL_LAT_BUCKETS - 1)
            fprintf(f, ",le=\"%g\"} %llu\n", (double)sl_lat_bounds_us[b] / 1e6, cum);
        else
            fprintf(f, ",le=\"+Inf\"} %llu\n", cum);
    }
    labels(f, name, "_sum", key, value, extra_key, extra);
    fprintf(f, "} %.6f\n", (double)sum_us / 1e6);
    labels(f, name, "_count", key, value, extra_key, extra);
    fprintf(f, "} %llu\n", cum);
}

/* write_latency - where delivery time goes, per binding and phase */
static void write_latency(FILE *f, const struct sl_shm *shm)
{
    struct sl_lat_view v;

    sl_metrics_family(
        f, "sluice_delivery_phase_seconds", "histogram",
        "Delivery time per binding and phase: queued (arrival to first attempt), connect "
        "(TCP, greeting, EHLO), tls (STARTTLS and handshake), transaction (commands out to "
        "last reply in).");
    for (unsigned i = 0; i < SL_LAT_BINDINGS; i++)
        if (sl_lat_read(shm, i, &v))
            for (unsigned ph = 0; ph < SL_LAT__PHASES; ph++)
                sl_metrics_histogram(f, "sluice_delivery_phase_seconds", "binding", v.name, "phase",
                                     sl_lat_phase_name(ph), v.bucket[ph], v.sum_us[ph]);
}

/* sl_metrics_write - the whole exposition of the segment as it is now */
int sl_metrics_write(FILE *f, const struct sl_shm *shm, const char *spool)
{
    struct sl_counter_view *v = NULL;
    size_t n = 0;

    if (sl_shm_snapshot(shm, &v, &n) < 0)
        return -1;
    qsort(v, n, sizeof *v, sl_ctl_by_scope);
    write_daemon(f, shm, n);
    size_t counters = sl_ctl_split_buckets(v, n); /* the throttles' buckets have their own */
    write_counters(f, v, counters);
    sl_ctl_throttles_metrics(f, shm, v + counters, n - counters, spool);
    write_stats(f, shm);
    write_latency(f, shm);
    sl_metrics_listeners(f, shm);
    sl_ctl_cluster_metrics(f, v, n);
    if (spool != NULL)
        single(f, "sluice_spool_quarantined_files", "gauge",
               "Damaged spool entries set aside in the spool's corrupt/ directory.",
               sl_spool_corrupt_list(spool, NULL, NULL));
    free(v);
    return 0;
}

/* usage - the subcommand's usage line */
static int usage(void)
{
    fprintf(stderr, "usage: sluicectl metrics [--listen ADDR:PORT] [--shm NAME]\n");
    return 2;
}

/* sl_ctl_metrics - sluicectl metrics [--listen ADDR:PORT] [--shm NAME] */
int sl_ctl_metrics(const char *cfgpath, int argc, char **argv)
{
    const char *listen = NULL, *shm_name = NULL;
    struct sl_shm shm;
    char name[256], spool[4096];
    const char *spool_dir = NULL;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strcmp(argv[i], "--shm") == 0 && i + 1 < argc)
            shm_name = argv[++i];
        else {
            sl_ctl_unexpected("metrics", argv[i]);
            return usage();
        }
    }
    sl_ctl_cluster_open(cfgpath);
    if (shm_name != NULL)
        snprintf(name, sizeof name, "%s", shm_name);
    else if (sl_ctl_global(cfgpath, SL_OPT_SHM_NAME, name, sizeof name) != 0)
        return 1;
    if (sl_ctl_global(cfgpath, SL_OPT_SPOOL_DIR, spool, sizeof spool) == 0)
        spool_dir = spool;
    if (listen != NULL) {
        rc = sl_metrics_serve(name, spool_dir, listen);
        sl_ctl_cluster_close();
        return rc;
    }
    if (sl_ctl_attach_live(name, &shm) != 0) {
        sl_ctl_cluster_close();
        return 1;
    }
    rc = sl_metrics_write(stdout, &shm, spool_dir);
    sl_shm_detach(&shm);
    sl_ctl_cluster_close();
    if (rc < 0) {
        fprintf(stderr, "sluicectl: cannot read the counter table %s\n", name);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
