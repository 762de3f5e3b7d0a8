/*
 * sl_ctl.h - the subcommands of sluicectl, the operator's tool.
 *
 * Each takes the config path given with -c and its own arguments (argv[0] is
 * the subcommand's name) and returns the process exit status: 0 success,
 * 1 failure (a bad config, no daemon, a refusal), 2 bad usage.
 */
#ifndef SL_CTL_H
#define SL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config/sl_config.h"

int sl_ctl_config(const char *cfgpath, int argc, char **argv);   /* config check | eval */
int sl_ctl_counters(const char *cfgpath, int argc, char **argv); /* counters [--json] [--watch S] */
int sl_ctl_metrics(const char *cfgpath, int argc, char **argv);  /* metrics [--listen ADDR:PORT] */
int sl_ctl_probe(const char *cfgpath, int argc, char **argv);    /* probe --domain D ... */
int sl_ctl_inject(const char *cfgpath, int argc, char **argv);   /* inject -f SENDER RCPT... */
int sl_ctl_queue(const char *cfgpath, int argc, char **argv);    /* queue [--json] */
int sl_ctl_resolve(const char *cfgpath, int argc, char **argv);  /* resolve [--binding B] DOMAIN */
int sl_ctl_tls(const char *cfgpath, int argc, char **argv);      /* tls [--binding B] DOMAIN */
/* ctl_shaping.c: the shaping actions (suspensions, rule actions) */
int sl_ctl_suspend(const char *cfgpath, int argc, char **argv);   /* suspend --domain D ... */
int sl_ctl_resume(const char *cfgpath, int argc, char **argv);    /* resume --domain D ... */
int sl_ctl_suspended(const char *cfgpath, int argc, char **argv); /* suspended [--json] */
int sl_ctl_shaping(const char *cfgpath, int argc, char **argv);   /* shaping [cancel ID] */
/* Is binding x domain suspended (the spool's actions file, read once per process)?  Then
 * "suspended until TIME (REASON)" in buf and the reason alone in reason (NULL-able, of
 * SL_CTL_REASON_MAX bytes).  cfg may be NULL (no suspension known then). */
#define SL_CTL_REASON_MAX 404
bool sl_ctl_suspension(const struct sl_config *cfg, const char *binding, const char *domain,
                       char *buf, size_t len, char *reason);

/* The operator's queue commands (ctl_queue_ops.c): delete, bounce, hold, release, flush. */
int sl_ctl_queue_op(const char *cfgpath, int argc, char **argv);
/* queue --summary (ctl_queue_summary.c): queued parts by domain and age. */
int sl_ctl_queue_summary(const char *spool, bool json);

/* config show [-n], and the chain of config eval --explain --chain (ctl_config_show.c). */
int sl_ctl_config_show(const char *cfgpath, int argc, char **argv);
void sl_ctl_config_chain(const struct sl_config *cfg, enum sl_opt opt,
                         const struct sl_scope_ref *ref);

/* sluicectl status | reload (ctl_daemon.c): the daemon through its pid file. */
int sl_ctl_status(const char *cfgpath, int argc, char **argv);
int sl_ctl_reload(const char *cfgpath, int argc, char **argv);

/* sluicectl domain D (ctl_domain.c): the domain's MX hosts with TTLs and live state. */
int sl_ctl_domain(const char *cfgpath, int argc, char **argv);
/* The DNS query a worker of binding makes for domain (ctl_resolve.c); the domain as the
 * daemon keys it (lower case, no final dot). */
struct sl_dns_query;
void sl_ctl_dns_query(const struct sl_config *cfg, const char *binding, const char *domain,
                      struct sl_dns_query *q);
void sl_ctl_domain_name(const char *in, char *out, size_t len);
/* A --domain argument as the queue keys it: a UTF-8 name as its A-label (in static storage
 * that lasts the process, a few per command line), anything else as given. */
const char *sl_ctl_domain_arg(const char *arg);
/* --timeout SECONDS (fractions allowed, up to 600) in ms; -1 when it is not that. */
long sl_ctl_parse_timeout(const char *s);

/* One request to the daemon's control socket (ctl_request.c); the answer into ans. */
enum { SL_CTL_REQ_OK = 0, SL_CTL_REQ_NO_DAEMON = 1, SL_CTL_REQ_FAILED = -1 };
int sl_ctl_request(const char *spool, const char *req, char *ans, size_t len);
/* The same, waiting at most wait_s for the send and for the answer. */
int sl_ctl_ask(const char *spool, const char *req, char *ans, size_t len, int wait_s);
/* No daemon answered: may the command change the spool itself (ctl_request.c)?  LOCKED: yes,
 * under *lock (close it when done; -1: the spool is not made yet, so no lock file); RETRY: a
 * daemon holds the spool and is starting, its socket takes requests now: send again; BUSY: it
 * did not within a few seconds; FAILED: the lock cannot be had (EACCES, ENOLCK, ...), so
 * whether a daemon runs is not known: nothing may change.  BUSY and FAILED are said on stderr. */
enum { SL_CTL_OFFLINE_LOCKED, SL_CTL_OFFLINE_RETRY, SL_CTL_OFFLINE_BUSY, SL_CTL_OFFLINE_FAILED };
int sl_ctl_offline(const char *spool, const char *verb, int *lock);

/* "sluicectl: SUB: unexpected argument ARG" on stderr (the caller prints its usage next). */
void sl_ctl_unexpected(const char *sub, const char *arg);
/* The config at path, or NULL with its errors on stderr, one line each. */
struct sl_config *sl_ctl_load_config(const char *path);

int sl_ctl_cluster(const char *cfgpath, int argc, char **argv); /* cluster [--json] */

/* ctl_cluster.c: the cluster-wide figures of the cluster counters, for counters and metrics
 * (nothing without cluster_redis): load the file's cluster settings; print them after the
 * table, inside the JSON object, in the exposition; and config check's cluster part (0, or 1
 * when Redis refuses the password). */
struct sl_counter_view;
void sl_ctl_cluster_open(const char *cfgpath);
void sl_ctl_cluster_close(void);
void sl_ctl_cluster_table(const struct sl_counter_view *v, size_t n);
void sl_ctl_cluster_json(const struct sl_counter_view *v, size_t n);
void sl_ctl_cluster_metrics(FILE *f, const struct sl_counter_view *v, size_t n);
int sl_ctl_cluster_check(const struct sl_config *cfg);
int sl_ctl_passwd(const char *cfgpath, int argc, char **argv);   /* passwd --file F USER */
int sl_ctl_lockouts(const char *cfgpath, int argc, char **argv); /* lockouts [--json] */
int sl_ctl_unlock(const char *cfgpath, int argc, char **argv);   /* unlock ADDRESS */

/* UNIX seconds as 2024-05-01T12:00:00Z (UTC) into buf. */
void sl_ctl_iso_time(int64_t t, char *buf, size_t len);
/* s as a JSON string literal on stdout (bytes outside printable ASCII escaped). */
void sl_ctl_json_string(const char *s);
/* Attach read-only to the running daemon's segment name; 0, or 1 with one line on
 * stderr when no daemon runs (no segment, or one its master left behind). */
struct sl_shm;
int sl_ctl_attach_live(const char *name, struct sl_shm *shm);
/* Counters as `counters` and `metrics` show them: qsort order (kind, then key), and the
 * key as one string ("b1 example.com", "*" for the server). */
struct sl_counter_view;
int sl_ctl_by_scope(const void *a, const void *b);
void sl_ctl_scope_key(const struct sl_counter_view *v, char *buf, size_t len);
/* ctl_throttles.c: the rate throttles' buckets (counter slots of the throttle kinds) in
 * counters and metrics: is v one; move them after the counters (the counters' count); show
 * those among v[0..n) as a table, a JSON array, or Prometheus families (with the shaping
 * actions in force read from spool, which may be NULL). */
bool sl_ctl_is_bucket(const struct sl_counter_view *v);
/* The buckets and the shaping actions' caps moved after the counters; the counters' count. */
size_t sl_ctl_split_buckets(struct sl_counter_view *v, size_t n);
void sl_ctl_throttles_table(const struct sl_shm *shm, const struct sl_counter_view *v, size_t n);
void sl_ctl_throttles_json(const struct sl_shm *shm, const struct sl_counter_view *v, size_t n);
void sl_ctl_throttles_metrics(FILE *f, const struct sl_shm *shm, const struct sl_counter_view *v,
                              size_t n, const char *spool);
/* Does binding x domain wait for a throttle's bucket (the daemon holds mail back for it now,
 * or it has no token ready)?  Then "waiting for throttle_KIND BUCKET (RATE, next token in N
 * ms)" in buf. */
bool sl_ctl_throttle_wait(const struct sl_config *cfg, const struct sl_shm *shm,
                          const char *binding, const char *domain, char *buf, size_t len);
/* The daemon's workers with a live owner record (the master's own not counted). */
unsigned sl_ctl_workers_alive(const struct sl_shm *shm);

/* path opened for reading only when it is a regular file, not through a symbolic link at its
 * end, never waiting (a FIFO); NULL with errno (ELOOP, EINVAL for not a regular file). */
FILE *sl_ctl_fopen_regular(const char *path);

/* A [global] string setting from the file, read leniently when the file does
 * not validate (with a note on stderr); 0, or -1 when nothing usable. */
int sl_ctl_global(const char *cfgpath, enum sl_opt opt, char *buf, size_t len);
/* The same key as written in the file, quietly, without validating it; "" when unset. */
void sl_ctl_global_peek(const char *cfgpath, enum sl_opt opt, char *buf, size_t len);

/* ctl_user.c: started by root, become the config's `user` (the daemon's), as the daemon does
 * before it touches the spool; 0, or -1 (said on stderr) when that failed. */
int sl_ctl_become_user(const char *cfgpath);

/* ctl_log_check.c: why no user could append to the delivery log at path (a missing directory,
 * a path through a file, a directory, a read-only file system), else 0; and config check's
 * part, a delivery_log the file sets that is so, as FILE:LINE on stderr (0, or 1). */
int sl_ctl_log_error(const char *path);
int sl_ctl_log_check(const struct sl_config *cfg);

#endif
