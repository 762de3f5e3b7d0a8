/*
 * ctl_metrics_listen.c - the SMTP listeners' part of `sluicectl metrics`: what each
 * [listener] took and refused, from the statistics its processes keep in the segment
 * (shm/lstat.c).
 *
 * Metric families, each labelled listener="NAME" (the config's section name; "*" for
 * listeners past the segment's table):
 *   sluice_listener_sessions_open                  gauge    sessions in progress (counted by
 *                                                           the master once a second)
 *   sluice_listener_sessions_total                 counter  sessions served
 *   sluice_listener_turned_away_total              counter  connections refused at once
 *                                                           (max_sessions_per_client)
 *   sluice_listener_tls_sessions_total             counter  STARTTLS handshakes completed
 *   sluice_listener_auth_total{result}             counter  AUTH: ok | failed | locked
 *   sluice_listener_messages_total                 counter  messages queued (250 given)
 *   sluice_listener_recipients_total               counter  their recipients
 *   sluice_listener_bytes_total                    counter  their octets as queued
 *   sluice_listener_rejections_total{reason}       counter  relay | recipients | size | content |
 *                                                           binding | storage
 *   sluice_listener_error_limit_total              counter  sessions closed after max_errors
 *   sluice_listener_timeouts_total                 counter  sessions ended by a timeout
 *   sluice_listener_accept_seconds                 histogram the end of a message's data to
 *                                                           its 250 (spool write and sync)
 * and, for all listeners together (counted once a second):
 *   sluice_listener_spool_syncs_total              counter  syncs of the group commit
 *   sluice_listener_spool_synced_messages_total    counter  messages handed to them
 * A daemon with no listener section prints the per-listener families without samples, and
 * the two group-commit ones at 0.
 * Trust boundary: the names come from the segment (bounded by sl_lstat_read) and are escaped
 * as label values.
 */
#include <stdio.h>

#include "shm/sl_shm.h"
#include "ctl_metrics.h"

/* One family that shows one counter of every listener. */
struct plain {
    const char *name, *type, *help;
    enum sl_lstat what;
};

static const struct plain plain[] = {
    {"sluice_listener_sessions_total", "counter", "SMTP sessions a listener served.",
     SL_LSTAT_SESSIONS},
    {"sluice_listener_turned_away_total", "counter",
     "Connections a listener refused at once: over max_sessions_per_client.", SL_LSTAT_TURNED_AWAY},
    {"sluice_listener_tls_sessions_total", "counter", "STARTTLS handshakes a listener completed.",
     SL_LSTAT_TLS},
    {"sluice_listener_messages_total", "counter",
     "Messages a listener queued (acknowledged with 250 once durable).", SL_LSTAT_MESSAGES},
    {"sluice_listener_recipients_total", "counter", "Recipients of the messages a listener queued.",
     SL_LSTAT_RECIPIENTS},
    {"sluice_listener_bytes_total", "counter", "Octets of the messages a listener queued.",
     SL_LSTAT_BYTES},
    {"sluice_listener_error_limit_total", "counter",
     "Sessions a listener closed after max_errors error replies (each error is also counted "
     "under its own reason, when it is a rejection).",
     SL_LSTAT_ERROR_LIMIT},
    {"sluice_listener_timeouts_total", "counter",
     "Sessions a listener ended because a command or the message data timed out.",
     SL_LSTAT_TIMEOUTS},
};

/* sample - name{listener="L"[,key="word"]} value */
static void sample(FILE *f, const char *name, const char *listener, const char *key,
                   const char *word, unsigned long long value)
{
    fprintf(f, "%s{listener=", name);
    sl_metrics_label(f, listener);
    if (key != NULL)
        fprintf(f, ",%s=\"%s\"", key, word);
    fprintf(f, "} %llu\n", value);
}

/* group_commit - the listeners' shared syncs: messages per sync is how well they batch */
static void group_commit(FILE *f, const struct sl_shm *shm)
{
    struct sl_stats_view st;

    sl_stats_read(shm, &st);
    sl_metrics_family(f, "sluice_listener_spool_syncs_total", "counter",
                      "Syncs of the spool by the listeners' group commit (each makes durable "
                      "every message renamed into the queue before it began).");
    fprintf(f, "sluice_listener_spool_syncs_total %llu\n", (unsigned long long)st.spool_syncs);
    sl_metrics_family(
        f, "sluice_listener_spool_synced_messages_total", "counter",
        "Messages the listeners renamed into the queue and handed to the group commit "
        "(with any whose sync failed, refused with a 4xx).");
    fprintf(f, "sluice_listener_spool_synced_messages_total %llu\n",
            (unsigned long long)st.spool_synced);
}

/* sl_metrics_listeners - every listener's families */
void sl_metrics_listeners(FILE *f, const struct sl_shm *shm)
{
    static struct sl_lstat_view v[SL_LSTAT_LISTENERS]; /* 11 KiB: not on the stack */
    bool live[SL_LSTAT_LISTENERS];

    for (unsigned i = 0; i < SL_LSTAT_LISTENERS; i++)
        live[i] = sl_lstat_read(shm, i, &v[i]);
    sl_metrics_family(f, "sluice_listener_sessions_open", "gauge",
                      "SMTP sessions in progress at a listener (counted once a second).");
    for (unsigned i = 0; i < SL_LSTAT_LISTENERS; i++)
        if (live[i])
            sample(f, "sluice_listener_sessions_open", v[i].name, NULL, NULL, v[i].active);
    for (size_t k = 0; k < sizeof plain / sizeof plain[0]; k++) {
        sl_metrics_family(f, plain[k].name, plain[k].type, plain[k].help);
        for (unsigned i = 0; i < SL_LSTAT_LISTENERS; i++)
            if (live[i])
                sample(f, plain[k].name, v[i].name, NULL, NULL, v[i].n[plain[k].what]);
    }
    sl_metrics_family(f, "sluice_listener_auth_total", "counter",
                      "AUTH attempts at a listener by result (ok, failed, locked: refused "
                      "unchecked, the address over max_auth_failures).");
    for (unsigned i = 0; i < SL_LSTAT_LISTENERS; i++)
        if (live[i]) {
            sample(f, "sluice_listener_auth_total", v[i].name, "result", "ok",
                   v[i].n[SL_LSTAT_AUTH]);
            sample(f, "sluice_listener_auth_total", v[i].name, "result", "failed",
                   v[i].n[SL_LSTAT_AUTH_FAILED]);
            sample(f, "sluice_listener_auth_total", v[i].name, "result", "locked",
                   v[i].n[SL_LSTAT_AUTH_LOCKED]);
        }
    sl_metrics_family(f, "sluice_listener_rejections_total", "counter",
                      "What a listener refused, by reason: relay (relaying denied), recipients "
                      "(over max_recipients), size (SIZE= or the data over max_message_size), "
                      "content (bare CR or LF, long line, NUL, empty), binding (binding_header "
                      "named none), storage (spool write failed).");
    for (unsigned i = 0; i < SL_LSTAT_LISTENERS; i++)
        for (unsigned r = SL_LSTAT_FIRST_REJ; live[i] && r <= SL_LSTAT_LAST_REJ; r++)
            sample(f, "sluice_listener_rejections_total", v[i].name, "reason",
                   sl_lstat_reason((enum sl_lstat)r), v[i].n[r]);
    sl_metrics_family(f, "sluice_listener_accept_seconds", "histogram",
                      "Time a listener took from the end of a message's data to its 250: "
                      "the spool write and the sync it shares with other sessions.");
    for (unsigned i = 0; i < SL_LSTAT_LISTENERS; i++)
        if (live[i])
            sl_metrics_histogram(f, "sluice_listener_accept_seconds", "listener", v[i].name, NULL,
                                 NULL, v[i].accept_bucket, v[i].accept_sum_us);
    group_commit(f, shm);
}
