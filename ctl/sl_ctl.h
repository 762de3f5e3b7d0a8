/*
 * sl_ctl.h - the subcommands of sluicectl, the operator's tool.
 *
 * Each takes the config path given with -c and its own arguments (argv[0] is
 * the subcommand's name) and returns the process exit status: 0 success,
 * 1 failure (a bad config, no daemon, a refusal), 2 bad usage.
 */
#ifndef SL_CTL_H
#define SL_CTL_H

#include <stddef.h>

#include "config/sl_config.h"

int sl_ctl_config(const char *cfgpath, int argc, char **argv);   /* config check | eval */
int sl_ctl_counters(const char *cfgpath, int argc, char **argv); /* counters [--json] [--watch S] */
int sl_ctl_metrics(const char *cfgpath, int argc, char **argv);  /* metrics [--listen ADDR:PORT] */
int sl_ctl_probe(const char *cfgpath, int argc, char **argv);    /* probe --domain D ... */
int sl_ctl_inject(const char *cfgpath, int argc, char **argv);   /* inject -f SENDER RCPT... */
int sl_ctl_queue(const char *cfgpath, int argc, char **argv);    /* queue [--json] */
int sl_ctl_resolve(const char *cfgpath, int argc, char **argv);  /* resolve [--binding B] DOMAIN */
int sl_ctl_tls(const char *cfgpath, int argc, char **argv);      /* tls [--binding B] DOMAIN */
int sl_ctl_passwd(const char *cfgpath, int argc, char **argv);   /* passwd --file F USER */

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
/* The daemon's workers with a live owner record (the master's own not counted). */
unsigned sl_ctl_workers_alive(const struct sl_shm *shm);

/* A [global] string setting from the file, read leniently when the file does
 * not validate (with a note on stderr); 0, or -1 when nothing usable. */
int sl_ctl_global(const char *cfgpath, enum sl_opt opt, char *buf, size_t len);

#endif
