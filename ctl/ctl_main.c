/*
 * ctl_main.c - sluicectl: parse the global options and run one subcommand.
 *
 * sluicectl is the operator's side of the master: it reads the same INI file
 * (config check/eval) and the master's shared memory, read-only (counters).
 * Started by root, a subcommand on the daemon's files first becomes the
 * daemon's user (ctl_user.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/sl_ctl.h"
#include "util/sl_msg.h"
#include "util/sl_version.h"

#define DEFAULT_CONFIG "/etc/sluice/sluice.ini"

static const struct {
    const char *name;
    int (*run)(const char *cfgpath, int argc, char **argv);
    const char *usage;
    const char *help; /* what it does, for --help */
} subcommands[] = {
    {"config", sl_ctl_config,
     "config check [--strict] | config show [-n] | config eval [--explain [--chain]] "
     "[--binding B] [--binding-group G] [--domain D] [--host H] OPTION",
     "check: validate the file, every error as FILE:LINE: message (exit 1 on any), with\n"
     "hints, and warnings (FILE:LINE: warning: ...) for likely mistakes: an unanchored regex\n"
     "domain, a bind_address not on this host or shared by two bindings, a [domain] value\n"
     "shadowed for some bindings; --strict: exit 1 on a warning too.\n"
     "show: the effective configuration; -n: only what differs from the defaults.\n"
     "eval: the value OPTION takes in a scope; --explain adds the section that set it,\n"
     "--chain every section of the chain that sets it, the shadowed ones too."},
    {"counters", sl_ctl_counters,
     "counters [--json] [--watch SECONDS [--count N]] [--shm NAME] "
     "[--sort in_use|refused|waits|peak] [--scope KIND] [--nonzero] [--match PATTERN]",
     "The live connection counters: in use, limit, peak, refusals, mail waiting for each;\n"
     "read-only from shared memory.  --watch refreshes every SECONDS (N times with --count);\n"
     "--sort orders by a figure, --scope, --nonzero and --match keep only some counters."},
    {"metrics", sl_ctl_metrics, "metrics [--listen ADDR:PORT] [--shm NAME]",
     "The counters, outcomes, timeouts and latency histograms in Prometheus' text format;\n"
     "--listen serves GET /metrics."},
    {"probe", sl_ctl_probe, "probe [--binding B] --domain D [--mx HOST] [--hold SECONDS]",
     "Take, through an idle worker, every counter a connection would take, hold them,\n"
     "give them back: a dry run of the limits on the live daemon."},
    {"inject", sl_ctl_inject,
     "inject [--binding B | --binding-group G] -f SENDER RCPT... < MESSAGE",
     "Queue the message on standard input durably and print its queue id."},
    {"queue", sl_ctl_queue, "queue [--json] [--summary | ID... | --domain D | --binding B]",
     "What is queued, per destination domain: pending, attempts, next attempt, last reply,\n"
     "the counter the mail waits for, holds; and the damaged entries set aside.  --summary:\n"
     "queued messages by destination domain and age (like qshape), with totals; ID...,\n"
     "--domain and --binding show only those messages."},
    {"delete", sl_ctl_queue_op, "delete ID... | --domain D | --binding B",
     "Remove queued mail without a report to the sender.  A message being delivered right\n"
     "now is deleted when that attempt ends (what it delivered stays delivered)."},
    {"bounce", sl_ctl_queue_op, "bounce ID... | --domain D | --binding B [--reason TEXT]",
     "Fail queued mail: an RFC 3464 report with TEXT goes to the sender; needs the daemon.\n"
     "A message being delivered right now is bounced when that attempt ends."},
    {"hold", sl_ctl_queue_op, "hold ID... | --domain D | --binding B",
     "Hold queued mail: never attempted until released; kept across restarts."},
    {"release", sl_ctl_queue_op, "release ID... | --domain D | --binding B",
     "Release held mail: it waits for its next attempt time again."},
    {"flush", sl_ctl_queue_op, "flush [ID... | --domain D | --binding B]",
     "Retry deferred mail now (all of it without an argument); held mail stays held."},
    {"domain", sl_ctl_domain, "domain [--binding B] [--json] [--timeout SECONDS] DOMAIN",
     "The domain as the daemon sees it: MX count and TTL, each MX with preference, TTL and\n"
     "addresses; per address the last reply and the last hour's deliveries and failures\n"
     "(delivery log); per binding the counters a connection takes, in use and limits."},
    {"status", sl_ctl_status, "status",
     "Whether sluiced runs (its pid file in spool_dir): pid, workers, config generation,\n"
     "connections open, messages queued.  Exit 0 running, 3 not running."},
    {"reload", sl_ctl_reload, "reload",
     "Validate the file, then have the daemon re-read it (SIGHUP) and wait until it took it\n"
     "(exit 0) or refused it (exit 1: its log says why)."},
    {"resolve", sl_ctl_resolve, "resolve [--binding B] [--timeout SECONDS] DOMAIN",
     "The MX hosts and addresses a worker would try for DOMAIN."},
    {"cluster", sl_ctl_cluster, "cluster [--json]",
     "The nodes of the cluster (cluster_redis): last heartbeat, alive or not, leases held."},
    {"tls", sl_ctl_tls, "tls [--binding B] [--json] DOMAIN",
     "The domain's effective TLS policy (tls option, MTA-STS, DANE) per MX host, and why."},
    {"suspend", sl_ctl_suspend,
     "suspend [--binding B] [--domain D] [--host H] [--for DURATION] [--reason TEXT]",
     "No connection for that scope (one to three of binding, domain, MX host) until\n"
     "resumed (or for DURATION); its mail waits.\n"
     "Kept in the spool: a restart keeps it.  Works with the daemon stopped too."},
    {"resume", sl_ctl_resume, "resume [--binding B] [--domain D] [--host H]",
     "End the suspensions of exactly that scope; its mail goes at once."},
    {"suspended", sl_ctl_suspended, "suspended [--json]",
     "The suspensions in force: id, scope, until when, reason."},
    {"shaping", sl_ctl_shaping, "shaping [--json] | shaping cancel ID",
     "Every shaping action in force (suspensions, temporary limits and throttles): id,\n"
     "scope, action, rule, the reply that triggered it, since, until; cancel ends one now."},
    {"lockouts", sl_ctl_lockouts, "lockouts [--json]",
     "Client addresses with failed AUTH counted at the listeners (max_auth_failures): the\n"
     "count, when its window ends, the listeners that answer their AUTH with 454 now."},
    {"unlock", sl_ctl_unlock, "unlock ADDRESS",
     "Forget ADDRESS's failed AUTH (an IPv6 address: its /64): its AUTH is checked again."},
    {"passwd", sl_ctl_passwd, "passwd (--file PATH | --listener NAME) USER < PASSWORD",
     "Set USER's password in a listener's auth_file (Argon2id hash, crypto_pwhash_str);\n"
     "the password is the first line of standard input."},
};
#define NSUB (sizeof subcommands / sizeof subcommands[0])

/* usage - the subcommands' synopses on f; status to return */
static int usage(FILE *f, int status)
{
    fprintf(f, "usage: sluicectl [-c CONFIG] SUBCOMMAND ...\n");
    for (size_t i = 0; i < NSUB; i++)
        fprintf(f, "       sluicectl [-c CONFIG] %s\n", subcommands[i].usage);
    return status;
}

/* help - --help: every subcommand with what it does, on standard output */
static int help(void)
{
    usage(stdout, 0);
    printf("\n  -c CONFIG   the configuration file (default $SLUICE_CONFIG, else %s)\n"
           "  --help      this text; SUBCOMMAND --help: that subcommand's\n"
           "  --version   the version\n\n",
           DEFAULT_CONFIG);
    for (size_t i = 0; i < NSUB; i++)
        printf("%s\n  %s\n\n", subcommands[i].name, subcommands[i].help);
    printf("See sluicectl(8) and sluice.ini(5).\n");
    return 0;
}

/* asks_help - does the subcommand's argument list ask for help */
static bool asks_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

/* keeps_root - a subcommand that works on the operator's files rather than the daemon's: it
 * keeps the identity it was started with (every other one becomes the config's user) */
static bool keeps_root(const char *name)
{
    return strcmp(name, "passwd") == 0 || strcmp(name, "config") == 0;
}

int main(int argc, char **argv)
{
    const char *cfgpath = getenv("SLUICE_CONFIG");
    int i = 1;

    sl_msg_init("sluicectl");
    if (cfgpath == NULL || *cfgpath == '\0')
        cfgpath = DEFAULT_CONFIG;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            cfgpath = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            return help();
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("sluicectl %s\n", SL_VERSION);
            return 0;
        } else {
            fprintf(stderr, "sluicectl: unknown option %s\n", argv[i]);
            return usage(stderr, 2);
        }
    }
    if (i >= argc)
        return usage(stderr, 2);
    for (size_t k = 0; k < NSUB; k++) {
        if (strcmp(argv[i], subcommands[k].name) != 0)
            continue;
        if (asks_help(argc - i, argv + i)) {
            printf("usage: sluicectl [-c CONFIG] %s\n\n%s\n", subcommands[k].usage,
                   subcommands[k].help);
            return 0;
        }
        if (!keeps_root(subcommands[k].name) && sl_ctl_become_user(cfgpath) < 0)
            return 1;
        return subcommands[k].run(cfgpath, argc - i, argv + i);
    }
    fprintf(stderr, "sluicectl: unknown subcommand %s\n", argv[i]);
    return usage(stderr, 2);
}
