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

#include "sl_config.h"

int sl_ctl_config(const char *cfgpath, int argc, char **argv);   /* config check | eval */
int sl_ctl_counters(const char *cfgpath, int argc, char **argv); /* counters [--json] [--watch S] */
int sl_ctl_metrics(const char *cfgpath, int argc, char **argv);  /* metrics [--listen ADDR:PORT] */
int sl_ctl_probe(const char *cfgpath, int argc, char **argv);    /* probe --domain D ... */
int sl_ctl_inject(const char *cfgpath, int argc, char **argv);   /* inject -f SENDER RCPT... */
int sl_ctl_queue(const char *cfgpath, int argc, char **argv);    /* queue [--json] */
int sl_ctl_resolve(const char *cfgpath, int argc, char **argv);  /* resolve [--binding B] DOMAIN */
int sl_ctl_tls(const char *cfgpath, int argc, char **argv);      /* tls [--binding B] DOMAIN */

/* A [global] string setting from the file, read leniently when the file does
 * not validate (with a note on stderr); 0, or -1 when nothing usable. */
int sl_ctl_global(const char *cfgpath, enum sl_opt opt, char *buf, size_t len);

#endif
