/*
 * ctl_metrics.h - what the files of `sluicectl metrics` share: the exposition (ctl_metrics.c,
 * the listeners' part in ctl_metrics_listen.c) and the HTTP listener that serves it
 * (ctl_metrics_http.c).  Private to sluicectl.
 */
#ifndef SL_CTL_METRICS_H
#define SL_CTL_METRICS_H

#include <stdio.h>

#include "shm/sl_shm.h"

/* The Prometheus text exposition (format 0.0.4) of the segment as it is now, written to f,
 * with the entries set aside in spool's corrupt/ (spool NULL: not counted).
 * 0, or -1 when the counter table cannot be read. */
int sl_metrics_write(FILE *f, const struct sl_shm *shm, const char *spool);

/* The # HELP and # TYPE lines that open a metric family. */
void sl_metrics_family(FILE *f, const char *name, const char *type, const char *help);
/* The SMTP listeners' families: sessions, messages, rejections, per [listener]. */
void sl_metrics_listeners(FILE *f, const struct sl_shm *shm);

/* The _bucket, _sum and _count samples of one histogram with the segment's latency buckets
 * (bucket[SL_LAT_BUCKETS] as counted, not cumulated), labelled key="value" and, when extra_key
 * is not NULL, extra_key="extra". */
void sl_metrics_histogram(FILE *f, const char *name, const char *key, const char *value,
                          const char *extra_key, const char *extra, const uint64_t *bucket,
                          uint64_t sum_us);

/* s as a Prometheus label value, quoted, with backslash, double quote and newline escaped. */
void sl_metrics_label(FILE *f, const char *s);

/* Serve GET /metrics on listen ("ADDR:PORT", "[V6ADDR]:PORT"), attaching to the segment named
 * shm_name on every scrape, until SIGTERM or SIGINT.  The exit status: 0 after a signal, 1 when
 * the address cannot be listened on, 2 when it is not an address. */
int sl_metrics_serve(const char *shm_name, const char *spool, const char *listen);

#endif
