/*
 * ctl_main.c - sluicectl: parse the global options and run one subcommand.
 *
 * sluicectl is the operator's side of the master: it reads the same INI file
 * (config check/eval) and the master's shared memory, read-only (counters).
 * It never signals or locks the daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/sl_ctl.h"
#include "util/sl_msg.h"

#define DEFAULT_CONFIG "/etc/sluice/sluice.ini"

static const struct {
    const char *name;
    int (*run)(const char *cfgpath, int argc, char **argv);
    const char *usage;
} subcommands[] = {
    {"config", sl_ctl_config,
     "config check | config eval [--explain] [--binding B] [--binding-group G] [--domain D] "
     "[--host H] OPTION"},
    {"counters", sl_ctl_counters, "counters [--json] [--watch SECONDS [--count N]] [--shm NAME]"},
    {"metrics", sl_ctl_metrics, "metrics [--listen ADDR:PORT] [--shm NAME]"},
    {"probe", sl_ctl_probe, "probe [--binding B] --domain D [--mx HOST] [--hold SECONDS]"},
    {"inject", sl_ctl_inject,
     "inject [--binding B | --binding-group G] -f SENDER RCPT... < MESSAGE"},
    {"queue", sl_ctl_queue, "queue [--json]"},
    {"resolve", sl_ctl_resolve, "resolve [--binding B] [--timeout SECONDS] DOMAIN"},
    {"tls", sl_ctl_tls, "tls [--binding B] [--json] DOMAIN"},
};

/* usage - list the subcommands on stderr and return the usage status */
static int usage(void)
{
    fprintf(stderr, "usage: sluicectl [-c CONFIG] SUBCOMMAND ...\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(stderr, "       sluicectl [-c CONFIG] %s\n", subcommands[i].usage);
    return 2;
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
            usage();
            return 0;
        } else {
            fprintf(stderr, "sluicectl: unknown option %s\n", argv[i]);
            return usage();
        }
    }
    if (i >= argc)
        return usage();
    for (size_t k = 0; k < sizeof subcommands / sizeof subcommands[0]; k++)
        if (strcmp(argv[i], subcommands[k].name) == 0)
            return subcommands[k].run(cfgpath, argc - i, argv + i);
    fprintf(stderr, "sluicectl: unknown subcommand %s\n", argv[i]);
    return usage();
}
