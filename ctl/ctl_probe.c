/*
 * ctl_probe.c - sluicectl probe: try a connection's limits through the daemon.
 *
 * Asks the master (control socket in spool_dir) to have an idle worker take
 * every counter a connection from a binding to a domain (via an MX host) would
 * take, hold them for --hold seconds and give them back.  Prints the answer:
 * each counter with in-use/limit, or the scope that refused.  A suspension in
 * force over the binding x domain (spool_dir/actions, spool/sl_actions.h) is
 * said too, with its end: the counters may be free while no mail goes.  Exit 0
 * when the counters were granted and nothing is suspended, 1 otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/sl_config.h"
#include "ipc/sl_control.h"
#include "ctl/sl_ctl.h"
#include "spool/sl_actions.h"

#define ANSWER_WAIT_S 10

/* usage - the subcommand's synopsis */
static int usage(void)
{
    fprintf(stderr,
            "usage: sluicectl probe [--binding B] --domain D [--mx HOST] [--hold SECONDS]\n");
    return 2;
}

/* until_text - when a suspension ends, as the operator reads it (UTC) */
static void until_text(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
        snprintf(buf, len, "until resumed");
    else
        strftime(buf, len, "until %Y-%m-%dT%H:%M:%SZ", &tm);
}

/* suspensions - print each suspension in force over binding x domain (x mx); how many hold
 * the connection probed */
static int suspensions(const char *spool, const char *binding, const char *domain, const char *mx)
{
    struct sl_actions l = {0};
    int64_t now = (int64_t)time(NULL);
    char err[512], until[48];
    int n = 0;

    if (sl_actions_load(spool, &l, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl: suspensions not known: %s\n", err);
        return 0;
    }
    for (size_t i = 0; i < l.n; i++) {
        const struct sl_action *a = &l.a[i];
        if (a->kind != SL_ACTION_SUSPEND || (a->until > 0 && a->until <= now) ||
            !sl_action_covers(a, binding, domain, strcmp(mx, "-") ? mx : NULL))
            continue;
        until_text(a->until, until, sizeof until);
        printf("SUSPENDED binding %s domain %s%s%s %s (action %llu%s%s%s%s)\n", binding, domain,
               a->host[0] ? " host " : "", a->host, until, (unsigned long long)a->id,
               a->rule[0] ? ", rule " : ", by the operator", a->rule, a->reason[0] ? ": " : "",
               a->reason);
        /* Without --mx, a host's suspension leaves the domain's other MX hosts open. */
        n += a->host[0] == '\0' || strcmp(mx, "-") != 0;
    }
    sl_actions_free(&l);
    return n;
}

/* sl_ctl_probe - sluicectl probe [--binding B] --domain D [--mx H] [--hold S] */
int sl_ctl_probe(const char *cfgpath, int argc, char **argv)
{
    const char *binding = "default", *domain = NULL, *mx = "-";
    double hold = 0;
    char req[SL_CONTROL_MAX], ans[SL_CONTROL_MAX];
    char spool[200];

    for (int i = 1; i < argc; i++) {
        char *end;
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--binding") == 0)
            binding = argv[++i];
        else if (strcmp(argv[i], "--domain") == 0)
            domain = sl_ctl_domain_arg(argv[++i]);
        else if (strcmp(argv[i], "--mx") == 0)
            mx = argv[++i];
        else if (strcmp(argv[i], "--hold") == 0) {
            hold = strtod(argv[++i], &end);
            if (*end != '\0' || !isfinite(hold) || hold < 0 || hold * 1000 > SL_PROBE_HOLD_MAX_MS) {
                fprintf(stderr, "sluicectl: --hold takes seconds (0 to 86400), not %s\n", argv[i]);
                return 2;
            }
        } else
            return usage();
    }
    if (domain == NULL)
        return usage();
    if (sl_ctl_global(cfgpath, SL_OPT_SPOOL_DIR, spool, sizeof spool) != 0)
        return 1;
    snprintf(req, sizeof req, "P %s %s %s %ld", binding, domain, mx, lround(hold * 1000));
    switch (sl_ctl_ask(spool, req, ans, sizeof ans, ANSWER_WAIT_S)) {
    case SL_CTL_REQ_OK:
        break;
    case SL_CTL_REQ_NO_DAEMON:
        fprintf(stderr, "sluicectl: probe: no daemon running (spool %s)\n", spool);
        return 1;
    default:
        return 1;
    }
    printf("%s\n", ans);
    if (suspensions(spool, binding, domain, mx) > 0)
        return 1;
    return strncmp(ans, "OK", 2) == 0 ? 0 : 1;
}
