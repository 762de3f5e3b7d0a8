/*
 * ctl_shaping.c - sluicectl suspend, resume, suspended and shaping: the
 * operator's side of the shaping actions (spool/sl_actions.h).
 *
 * suspend/resume/shaping cancel ask the master over the control socket ("X
 * ..." requests, sl_control.h): it changes its list, writes it to the spool
 * and lets held mail go at once.  With no daemon running they change the file
 * in the spool themselves, under the spool's lock (the daemon reads the file when
 * it starts, after taking that lock); a daemon that is starting is waited for
 * instead (sl_ctl_offline).  suspended
 * and shaping read the file, so they work with the daemon stopped.
 * Trust boundary: arguments are the operator's; names are checked against
 * the configuration before anything is sent or written.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "config/sl_throttle.h"
#include "ctl/sl_ctl.h"
#include "ipc/sl_control.h"
#include "spool/sl_actions.h"
#include "spool/sl_spool.h"

#define ANSWER_WAIT_S 10

/* The arguments of suspend and resume. */
struct scope_args {
    const char *binding, *domain, *host, *reason;
    long long seconds; /* 0: until resumed */
};

/* plain_name - a domain or host name of the command line: printable, no blank (NULL: none) */
static bool plain_name(const char *name, const char *what)
{
    for (const char *s = name; s != NULL && *s != '\0'; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || strcmp(name, "-") == 0) {
            fprintf(stderr, "sluicectl: not a %s name: %s\n", what, name);
            return false;
        }
    return true;
}

/* fits - a name given with its option (NULL: not given): not empty, and within its field of
 * an action (an empty one would cover everything, a cut one another name) */
static bool fits(const char *name, size_t field, const char *opt)
{
    if (name == NULL || (name[0] != '\0' && strlen(name) < field))
        return true;
    fprintf(stderr, "sluicectl: %s takes a name of 1 to %zu characters\n", opt, field - 1);
    return false;
}

/* parse_scope - --binding B, --domain D, --host H (at least one), and for suspend --for,
 * --reason */
static int parse_scope(const struct sl_config *cfg, int argc, char **argv, bool suspend,
                       struct scope_args *a)
{
    *a = (struct scope_args){.reason = ""};
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL)
            return -1;
        i++;
        if (strcmp(opt, "--binding") == 0)
            a->binding = val;
        else if (strcmp(opt, "--domain") == 0)
            a->domain = sl_ctl_domain_arg(val);
        else if (strcmp(opt, "--host") == 0)
            a->host = val;
        else if (suspend && strcmp(opt, "--reason") == 0)
            a->reason = val;
        else if (suspend && strcmp(opt, "--for") == 0) {
            struct sl_value v;
            char err[200];
            if (!sl_value_parse(sl_opt_def(SL_OPT_RETRY_INTERVAL), val, &v, err, sizeof err) ||
                v.num < 1000 || v.num / 1000 > SL_ACTION_MAX_S) {
                fprintf(stderr,
                        "sluicectl: --for takes a duration of 1s to 366d (90s, 30m, 1h, 2d), "
                        "not %s\n",
                        val);
                return 1;
            }
            a->seconds = v.num / 1000;
        } else
            return -1;
    }
    if (a->binding == NULL && a->domain == NULL && a->host == NULL)
        return -1;
    if (!fits(a->binding, sizeof((struct sl_action *)0)->binding, "--binding") ||
        !fits(a->domain, sizeof((struct sl_action *)0)->domain, "--domain") ||
        !fits(a->host, sizeof((struct sl_action *)0)->host, "--host"))
        return 1;
    if (a->binding != NULL && sl_config_binding(cfg, a->binding) == NULL) {
        fprintf(stderr, "sluicectl: unknown binding \"%s\"\n", a->binding);
        return 1;
    }
    if (!plain_name(a->domain, "domain") || !plain_name(a->host, "host"))
        return 1;
    return 0;
}

/* when - a UNIX time as the operator reads it (UTC), or "resumed" for 0 */
static void when(int64_t t, const char *none, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
        snprintf(buf, len, "%s", none);
    else
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* scope_of - "binding B domain D host H" of an action (the parts it names) */
static void scope_of(const struct sl_action *a, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s%s%s%s%s", a->binding[0] ? "binding " : "", a->binding,
             a->binding[0] && a->domain[0] ? " " : "", a->domain[0] ? "domain " : "", a->domain,
             (a->binding[0] || a->domain[0]) && a->host[0] ? " " : "", a->host[0] ? "host " : "",
             a->host);
}

/* offline - change the file in the spool when no daemon runs; the exit status */
static int offline(const char *spool, bool suspend, const struct scope_args *a)
{
    struct sl_actions l;
    char err[512], scope[700];
    size_t n = 0;

    if (sl_actions_load(spool, &l, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl: %s\n", err);
        return 1;
    }
    if (suspend) {
        struct sl_action x = {.kind = SL_ACTION_SUSPEND, .since = (int64_t)time(NULL)};
        strlcpy(x.binding, a->binding ? a->binding : "", sizeof x.binding);
        strlcpy(x.domain, a->domain ? a->domain : "", sizeof x.domain);
        strlcpy(x.host, a->host ? a->host : "", sizeof x.host);
        x.until = a->seconds > 0 ? x.since + a->seconds : 0;
        sl_action_text(x.reason, sizeof x.reason, a->reason);
        if (sl_actions_add(&l, &x) < 0) {
            fprintf(stderr, "sluicectl: too many actions in force\n");
            sl_actions_free(&l);
            return 1;
        }
        scope_of(&x, scope, sizeof scope);
        n = 1;
    } else {
        for (size_t i = 0; i < l.n;)
            if (l.a[i].kind == SL_ACTION_SUSPEND &&
                strcasecmp(l.a[i].binding, a->binding ? a->binding : "") == 0 &&
                strcasecmp(l.a[i].domain, a->domain ? a->domain : "") == 0 &&
                strcasecmp(l.a[i].host, a->host ? a->host : "") == 0) {
                sl_actions_remove(&l, i);
                n++;
            } else {
                i++;
            }
        if (n == 0)
            fprintf(stderr, "sluicectl: no suspension of that scope is in force\n");
    }
    /* Saved first, said after: an OK is only ever printed for what the file now holds
     * (a spool never used yet gets its directories, as inject makes them). */
    if (n > 0 && (sl_spool_init(spool, err, sizeof err) < 0 ||
                  sl_actions_save(spool, &l, err, sizeof err) < 0)) {
        fprintf(stderr, "sluicectl: %s\n", err);
        n = 0;
    } else if (n > 0 && suspend) {
        printf("OK %" PRIu64 " %s suspended (no daemon runs: in force when it starts)\n",
               l.a[l.n - 1].id, scope);
    } else if (n > 0) {
        printf("OK %zu suspension(s) ended\n", n);
    }
    sl_actions_free(&l);
    return n > 0 ? 0 : 1;
}

/* ask_again - ask, and when nobody answers, ask the daemon that holds the spool (it is starting)
 * once more; SL_CTL_REQ_NO_DAEMON with *lock (sl_ctl_offline) when the spool is ours to change */
static int ask_again(const char *spool, const char *verb, const char *req, char *ans, size_t len,
                     int *lock)
{
    int r;

    *lock = -1;
    if ((r = sl_ctl_ask(spool, req, ans, len, ANSWER_WAIT_S)) != SL_CTL_REQ_NO_DAEMON)
        return r;
    switch (sl_ctl_offline(spool, verb, lock)) {
    case SL_CTL_OFFLINE_LOCKED:
        return SL_CTL_REQ_NO_DAEMON;
    case SL_CTL_OFFLINE_RETRY:
        if ((r = sl_ctl_ask(spool, req, ans, len, ANSWER_WAIT_S)) == SL_CTL_REQ_NO_DAEMON)
            fprintf(stderr, "sluicectl: %s: the daemon went away\n", verb);
        return r == SL_CTL_REQ_OK ? SL_CTL_REQ_OK : SL_CTL_REQ_FAILED;
    default:
        return SL_CTL_REQ_FAILED;
    }
}

/* request - send req to the daemon, or fall back to the file; the exit status */
static int request(const char *spool, const char *req, bool suspend, const struct scope_args *a)
{
    char ans[SL_CONTROL_MAX];
    int lock, rc = 1;

    switch (ask_again(spool, suspend ? "suspend" : "resume", req, ans, sizeof ans, &lock)) {
    case SL_CTL_REQ_OK:
        if (strncmp(ans, "OK", 2) == 0) {
            printf("%s\n", ans);
            return 0;
        }
        fprintf(stderr, "sluicectl: %s\n", strncmp(ans, "ERROR ", 6) == 0 ? ans + 6 : ans);
        return 1;
    case SL_CTL_REQ_NO_DAEMON:
        rc = a != NULL ? offline(spool, suspend, a) : 1;
        if (lock >= 0)
            close(lock);
        return rc;
    default:
        return 1;
    }
}

/* load - the config and its spool_dir; NULL (reported) when the file does not validate */
static struct sl_config *load(const char *cfgpath, const char **spool)
{
    struct sl_config *cfg = sl_ctl_load_config(cfgpath);
    struct sl_scope_ref none = {0};

    if (cfg != NULL)
        *spool = sl_config_str(cfg, SL_OPT_SPOOL_DIR, &none);
    return cfg;
}

/* suspend_or_resume - the two subcommands' common body */
static int suspend_or_resume(const char *cfgpath, int argc, char **argv, bool suspend)
{
    const char *spool = NULL;
    struct sl_config *cfg = load(cfgpath, &spool);
    struct scope_args a;
    char req[SL_CONTROL_MAX];
    int rc;

    if (cfg == NULL)
        return 1;
    if ((rc = parse_scope(cfg, argc, argv, suspend, &a)) != 0) {
        if (rc < 0)
            fprintf(stderr, "usage: sluicectl %s\n",
                    suspend ? "suspend [--binding B] [--domain D] [--host H] (at least one) "
                              "[--for DURATION] [--reason TEXT]"
                            : "resume [--binding B] [--domain D] [--host H] (at least one)");
        sl_config_free(cfg);
        return rc < 0 ? 2 : 1;
    }
    /* The host goes after the domain only when there is one, so a daemon of before hosts
     * understands every other request. */
    if (suspend)
        snprintf(req, sizeof req, "X suspend %s %s %s%s%lld %s", a.binding ? a.binding : "-",
                 a.domain ? a.domain : "-", a.host ? a.host : "", a.host ? " " : "", a.seconds,
                 a.reason);
    else
        snprintf(req, sizeof req, "X resume %s %s%s%s", a.binding ? a.binding : "-",
                 a.domain ? a.domain : "-", a.host ? " " : "", a.host ? a.host : "");
    rc = request(spool, req, suspend, &a);
    sl_config_free(cfg);
    return rc;
}

/* sl_ctl_suspend - sluicectl suspend --domain D | --binding B ... [--for D] [--reason T] */
int sl_ctl_suspend(const char *cfgpath, int argc, char **argv)
{
    return suspend_or_resume(cfgpath, argc, argv, true);
}

/* sl_ctl_resume - sluicectl resume --domain D | --binding B ... */
int sl_ctl_resume(const char *cfgpath, int argc, char **argv)
{
    return suspend_or_resume(cfgpath, argc, argv, false);
}

/* action_text - what an action does, as written in the INI ("suspend", "max_... = 2") */
static void action_text(const struct sl_action *a, char *buf, size_t len)
{
    char rate[32];

    switch (a->kind) {
    case SL_ACTION_MAX_CONNECTIONS:
        snprintf(buf, len, "max_outbound_connections = %" PRId64, a->value);
        break;
    case SL_ACTION_THROTTLE_MESSAGES:
        sl_rate_format(a->value, rate, sizeof rate);
        snprintf(buf, len, "outbound_throttle_messages = %s", rate);
        break;
    default:
        snprintf(buf, len, "suspend");
        break;
    }
}

/* json_action - one action as a JSON object */
static void json_action(const struct sl_action *a)
{
    char what[64], since[32], until[32];

    action_text(a, what, sizeof what);
    when(a->since, "", since, sizeof since);
    when(a->until, "", until, sizeof until);
    printf("{\"id\":%" PRIu64 ",\"binding\":", a->id);
    sl_ctl_json_string(a->binding);
    printf(",\"domain\":");
    sl_ctl_json_string(a->domain);
    printf(",\"host\":");
    sl_ctl_json_string(a->host);
    printf(",\"action\":");
    sl_ctl_json_string(what);
    printf(",\"rule\":");
    sl_ctl_json_string(a->rule);
    printf(",\"reason\":");
    sl_ctl_json_string(a->reason);
    printf(",\"since\":\"%s\",\"until\":", since);
    if (a->until > 0)
        printf("\"%s\"}", until);
    else
        printf("null}");
}

/* list - the actions in force (only suspensions: suspended), as a table or JSON */
static int list(const char *cfgpath, int argc, char **argv, bool only_suspend)
{
    const char *spool = NULL;
    struct sl_config *cfg = load(cfgpath, &spool);
    struct sl_actions l;
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0, first = true;
    int64_t now = (int64_t)time(NULL);
    char err[512];

    if (cfg == NULL)
        return 1;
    if (argc > 1 && !json) {
        fprintf(stderr, "usage: sluicectl %s [--json]\n", argv[0]);
        sl_config_free(cfg);
        return 2;
    }
    if (sl_actions_load(spool, &l, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl: %s\n", err);
        sl_config_free(cfg);
        return 1;
    }
    sl_actions_expire(&l, now); /* what the daemon drops at its next tick */
    if (json)
        printf("[");
    else if (only_suspend)
        printf("%-5s %-40s %-20s %s\n", "ID", "SCOPE", "UNTIL", "REASON");
    else
        printf("%-5s %-36s %-34s %-16s %-20s %-20s %s\n", "ID", "SCOPE", "ACTION", "RULE", "SINCE",
               "UNTIL", "REPLY");
    for (size_t i = 0; i < l.n; i++) {
        const struct sl_action *a = &l.a[i];
        char scope[700], what[64], since[32], until[32];
        if (only_suspend && a->kind != SL_ACTION_SUSPEND)
            continue;
        if (json) {
            printf("%s", first ? "" : ",");
            json_action(a);
            first = false;
            continue;
        }
        scope_of(a, scope, sizeof scope);
        action_text(a, what, sizeof what);
        when(a->since, "-", since, sizeof since);
        when(a->until, "resumed", until, sizeof until);
        if (only_suspend)
            printf("%-5" PRIu64 " %-40s %-20s %s\n", a->id, scope, until,
                   a->reason[0] ? a->reason : "-");
        else
            printf("%-5" PRIu64 " %-36s %-34s %-16s %-20s %-20s %s\n", a->id, scope, what,
                   a->rule[0] ? a->rule : "(operator)", since, until,
                   a->reason[0] ? a->reason : "-");
    }
    if (json)
        printf("]\n");
    sl_actions_free(&l);
    sl_config_free(cfg);
    return 0;
}

/* sl_ctl_suspended - sluicectl suspended [--json] */
int sl_ctl_suspended(const char *cfgpath, int argc, char **argv)
{
    return list(cfgpath, argc, argv, true);
}

/* cancel - sluicectl shaping cancel ID */
static int cancel(const char *cfgpath, const char *idw)
{
    const char *spool = NULL;
    struct sl_config *cfg;
    char req[64], *end, ans[SL_CONTROL_MAX], err[512];
    unsigned long long id = strtoull(idw, &end, 10);
    int rc = 1, lock = -1;

    if (id == 0 || *end != '\0') {
        fprintf(stderr, "usage: sluicectl shaping cancel ID\n");
        return 2;
    }
    if ((cfg = load(cfgpath, &spool)) == NULL)
        return 1;
    snprintf(req, sizeof req, "X cancel %llu", id);
    switch (ask_again(spool, "shaping cancel", req, ans, sizeof ans, &lock)) {
    case SL_CTL_REQ_OK:
        rc = strncmp(ans, "OK", 2) == 0 ? 0 : 1;
        fprintf(rc == 0 ? stdout : stderr, "%s%s\n",
                rc == 0 ? "" : "sluicectl: ", strncmp(ans, "ERROR ", 6) == 0 ? ans + 6 : ans);
        break;
    case SL_CTL_REQ_NO_DAEMON: {
        struct sl_actions l;
        if (sl_actions_load(spool, &l, err, sizeof err) < 0) {
            fprintf(stderr, "sluicectl: %s\n", err);
            break;
        }
        bool found = false;
        for (size_t i = 0; i < l.n && !found; i++)
            if (l.a[i].id == id) {
                sl_actions_remove(&l, i);
                found = true;
                rc = sl_actions_save(spool, &l, err, sizeof err) < 0 ? 1 : 0;
            }
        if (rc == 0)
            printf("OK action %llu cancelled\n", id);
        else if (found)
            fprintf(stderr, "sluicectl: %s\n", err);
        else
            fprintf(stderr, "sluicectl: no action %llu is in force\n", id);
        sl_actions_free(&l);
        break;
    }
    default:
        break;
    }
    if (lock >= 0)
        close(lock);
    sl_config_free(cfg);
    return rc;
}

/* sl_ctl_shaping - sluicectl shaping [--json] | shaping cancel ID */
int sl_ctl_shaping(const char *cfgpath, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "cancel") == 0) {
        if (argc != 3) {
            fprintf(stderr, "usage: sluicectl shaping cancel ID\n");
            return 2;
        }
        return cancel(cfgpath, argv[2]);
    }
    return list(cfgpath, argc, argv, false);
}

/* sl_ctl_suspension - the suspension in force for binding x domain, as queue shows it */
bool sl_ctl_suspension(const struct sl_config *cfg, const char *binding, const char *domain,
                       char *buf, size_t len, char *reason)
{
    static struct sl_actions l;
    static bool loaded;
    struct sl_scope_ref none = {0};
    int64_t now = (int64_t)time(NULL);
    char err[512], until[32];

    if (cfg == NULL)
        return false;
    if (!loaded) { /* one read for the whole listing; the process ends after it */
        if (sl_actions_load(sl_config_str(cfg, SL_OPT_SPOOL_DIR, &none), &l, err, sizeof err) < 0)
            fprintf(stderr, "sluicectl: %s\n", err);
        loaded = true;
    }
    for (size_t i = 0; i < l.n; i++) {
        const struct sl_action *a = &l.a[i];
        if (a->kind != SL_ACTION_SUSPEND || (a->until > 0 && a->until <= now) ||
            a->host[0] != '\0' || !sl_action_covers(a, binding, domain, NULL))
            continue; /* a host's suspension holds only its connections, not the destination */
        when(a->until, "resumed", until, sizeof until);
        snprintf(buf, len, "suspended until %s (%s)", until, a->reason[0] ? a->reason : "-");
        if (reason != NULL)
            strlcpy(reason, a->reason, SL_CTL_REASON_MAX);
        return true;
    }
    return false;
}
