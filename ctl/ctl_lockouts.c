/*
 * ctl_lockouts.c - sluicectl lockouts and unlock: the client addresses the
 * listeners count failed AUTH for (max_auth_failures), and forgetting one.
 *
 *   lockouts [--json]   each address with failures in its window: the count,
 *                       the window's length and end (UTC), the listeners that
 *                       refuse its AUTH now (454: failures at their max within
 *                       their window, the address not covered by their
 *                       relay_networks; an address appears once per window length
 *                       counted).  Which listeners lock is judged from the config
 *                       file as it is now; the counts from the running daemon,
 *                       read page by page (not one snapshot).
 *   unlock ADDRESS      its failures forgotten at once (a customer behind a NAT
 *                       locked out by a colleague's typos need not wait)
 * The table lives in the daemon's memory only (listener/lockout.c): both ask
 * the master ("A" on the control socket), page by page; with no daemon there
 * is nothing counted (lockouts lists nothing and exits 0; unlock exits 1).
 * Exit 1 also when the daemon does not answer or keeps its table busy, and for
 * an unlock of an address with nothing counted; 2 on bad usage.
 * Trust boundary: the master's lines are parsed with bounds; a line that does
 * not parse is skipped.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/sl_config.h"
#include "config/sl_listener.h"
#include "ctl/sl_ctl.h"
#include "ipc/sl_control.h"

#define BUSY_TRIES 20 /* a listener holds the table for microseconds: ask again this often */

/* One address as the master reports it. */
struct counted {
    char addr[64];
    unsigned failures;
    uint64_t age_ms, window_ms;
};

/* ask - one request, asked again while the table is busy; SL_CTL_REQ_* */
static int ask(const char *spool, const char *req, char *ans, size_t len)
{
    const struct timespec pause = {0, 10 * 1000 * 1000};
    int rc = SL_CTL_REQ_FAILED;

    for (int i = 0; i < BUSY_TRIES; i++) {
        if ((rc = sl_ctl_request(spool, req, ans, len)) != SL_CTL_REQ_OK ||
            strncmp(ans, "BUSY", 4) != 0)
            return rc;
        nanosleep(&pause, NULL);
    }
    return rc;
}

/* trusted - does one of l's relay_networks cover c's whole key (an address, or an IPv6 /64),
 * so that l counts and refuses none of it?  A narrower network leaves some of a /64 locked. */
static bool trusted(const struct sl_listener *l, const struct counted *c)
{
    struct sl_cidr a;

    if (!sl_cidr_parse(c->addr, &a)) /* a.b.c.d (32 bits), or an IPv6 /64 */
        return false;
    for (size_t i = 0; i < l->nrelay; i++)
        if (l->relay[i].bits <= a.bits && sl_cidr_match(&l->relay[i], a.family, a.addr))
            return true;
    return false;
}

/* locks - does listener l refuse c's AUTH now?  It judges the count of its own window alone */
static bool locks(const struct sl_listener *l, const struct counted *c)
{
    return l->auth_file != NULL && l->max_auth_failures > 0 &&
           (uint64_t)l->auth_failure_window_ms == c->window_ms &&
           c->failures >= l->max_auth_failures && !trusted(l, c);
}

/* duration - a window's length as the config writes it: 15m, 90s, 2h */
static void duration(uint64_t ms, char *out, size_t len)
{
    uint64_t s = ms / 1000;

    if (s % 3600 == 0)
        snprintf(out, len, "%" PRIu64 "h", s / 3600);
    else if (s % 60 == 0)
        snprintf(out, len, "%" PRIu64 "m", s / 60);
    else
        snprintf(out, len, "%" PRIu64 "s", s);
}

/* row - one address as a table row: the listeners that lock it, comma-separated, "-" if none */
static void row(const struct sl_config *cfg, const struct counted *c, const char *ends,
                const char *window)
{
    bool any = false;

    printf("%-42s %8u  %-7s %-20s  ", c->addr, c->failures, window, ends);
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (locks(&cfg->listeners[i], c)) {
            printf("%s%s", any ? "," : "", cfg->listeners[i].name);
            any = true;
        }
    printf("%s\n", any ? "" : "-");
}

/* object - one address as a JSON object */
static void object(const struct sl_config *cfg, const struct counted *c, const char *ends,
                   bool first)
{
    bool any = false;

    printf("%s{\"address\":", first ? "" : ",");
    sl_ctl_json_string(c->addr);
    printf(",\"failures\":%u,\"window_seconds\":%" PRIu64 ",\"age_seconds\":%" PRIu64
           ",\"window_ends\":\"%s\",\"locked_at\":[",
           c->failures, c->window_ms / 1000, c->age_ms / 1000, ends);
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (locks(&cfg->listeners[i], c)) {
            printf("%s", any ? "," : "");
            sl_ctl_json_string(cfg->listeners[i].name);
            any = true;
        }
    printf("]}");
}

/* parse - one line "ADDRESS FAILURES AGE_MS WINDOW_MS" of the master, whole; false otherwise */
static bool parse(const char *line, size_t len, struct counted *c)
{
    char buf[160];
    int used = -1;

    if (len >= sizeof buf)
        return false;
    memcpy(buf, line, len);
    buf[len] = '\0';
    return sscanf(buf, "%63[^ ] %u %" SCNu64 " %" SCNu64 "%n", c->addr, &c->failures, &c->age_ms,
                  &c->window_ms, &used) == 4 &&
           used == (int)len && c->age_ms < c->window_ms;
}

/* page - the lines of one answer, shown; false on a malformed head */
static bool page(const struct sl_config *cfg, const char *ans, size_t *next, bool json,
                 unsigned *shown)
{
    const char *line = strchr(ans, '\n');
    char *end;

    if (strncmp(ans, "OK ", 3) != 0 || line == NULL)
        return false;
    *next = strtoul(ans + 3, &end, 10);
    if (end == ans + 3 || *end != '\n')
        return false;
    for (line++; *line != '\0';) {
        size_t n = strcspn(line, "\n");
        struct counted c;
        char ends[32], window[24];
        if (parse(line, n, &c)) {
            sl_ctl_iso_time((int64_t)time(NULL) + (int64_t)((c.window_ms - c.age_ms) / 1000), ends,
                            sizeof ends);
            duration(c.window_ms, window, sizeof window);
            if (json)
                object(cfg, &c, ends, (*shown)++ == 0);
            else
                row(cfg, &c, ends, window);
        }
        line += n + (line[n] == '\n');
    }
    return true;
}

/* spool_of - the config and its spool_dir */
static struct sl_config *spool_of(const char *cfgpath, const char **spool)
{
    struct sl_config *cfg = sl_ctl_load_config(cfgpath);
    struct sl_scope_ref none = {0};

    if (cfg != NULL)
        *spool = sl_config_str(cfg, SL_OPT_SPOOL_DIR, &none);
    return cfg;
}

/* sl_ctl_lockouts - sluicectl lockouts [--json] */
int sl_ctl_lockouts(const char *cfgpath, int argc, char **argv)
{
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    char req[64], ans[SL_CONTROL_MAX];
    const char *spool = NULL;
    struct sl_config *cfg;
    unsigned shown = 0;
    size_t next = 0;
    int rc = 0;

    if (argc > 1 && !json) {
        sl_ctl_unexpected("lockouts", strcmp(argv[1], "--json") == 0 ? argv[2] : argv[1]);
        fprintf(stderr, "usage: sluicectl lockouts [--json]\n");
        return 2;
    }
    if ((cfg = spool_of(cfgpath, &spool)) == NULL)
        return 1;
    if (json)
        printf("[");
    else
        printf("%-42s %8s  %-7s %-20s  %s\n", "ADDRESS", "FAILURES", "WINDOW", "WINDOW ENDS",
               "LOCKED AT");
    for (size_t from = 0;; from = next) { /* the master's NEXT: 0 once the table is done */
        snprintf(req, sizeof req, "A list %zu", from);
        if ((rc = ask(spool, req, ans, sizeof ans)) == SL_CTL_REQ_NO_DAEMON) {
            rc = 0; /* no daemon: nothing is counted */
            break;
        }
        if (rc != SL_CTL_REQ_OK || !page(cfg, ans, &next, json, &shown) ||
            (next != 0 && next <= from)) {
            fprintf(stderr, "sluicectl: lockouts: %s\n",
                    rc == SL_CTL_REQ_OK ? ans : "the daemon did not answer");
            rc = 1;
            break;
        }
        if (next == 0)
            break;
    }
    if (json)
        printf("]\n");
    sl_config_free(cfg);
    return rc;
}

/* sl_ctl_unlock - sluicectl unlock ADDRESS */
int sl_ctl_unlock(const char *cfgpath, int argc, char **argv)
{
    char req[128], ans[SL_CONTROL_MAX];
    const char *spool = NULL;
    struct sl_config *cfg;
    int rc;

    if (argc != 2 || strlen(argv[1]) > 64) {
        fprintf(stderr, "usage: sluicectl unlock ADDRESS\n");
        return 2;
    }
    if ((cfg = spool_of(cfgpath, &spool)) == NULL)
        return 1;
    snprintf(req, sizeof req, "A forget %s", argv[1]);
    rc = ask(spool, req, ans, sizeof ans);
    sl_config_free(cfg);
    if (rc == SL_CTL_REQ_NO_DAEMON) {
        fprintf(stderr, "sluicectl: unlock: no daemon runs: nothing is counted\n");
        return 1;
    }
    if (rc != SL_CTL_REQ_OK)
        return 1;
    if (strncmp(ans, "OK ", 3) == 0) {
        printf("%s\n", ans + 3);
        return 0;
    }
    fprintf(stderr, "sluicectl: unlock: %s\n", strncmp(ans, "ERROR ", 6) == 0 ? ans + 6 : ans);
    return 1;
}
