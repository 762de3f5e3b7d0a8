/*
 * ctl_counters.c - sluicectl counters: the live view of every limit.
 *
 * Attaches read-only to the daemon's counter table and prints every live
 * counter (scope kind, key, in use, limit, peak, refused, destinations waiting for it
 * now and how often one was held back by it) and the server
 * totals, as a table, as JSON (--json), or refreshed in place (--watch S).
 * A busy table is made readable: keys sort naturally (dom2 before dom19), or by a
 * figure (--sort in_use|refused|waits|peak, highest first); --scope KIND,
 * --nonzero and --match PATTERN (fnmatch on "kind key") keep only what matters;
 * under --watch on a terminal the header stays on screen (the rows are cut to the
 * terminal's height, with a count of what did not fit), and into a pipe each
 * snapshot follows a separator line instead of screen-clearing codes.
 * It only reads: the daemon never waits for it.  Under --watch it notices a
 * restarted daemon (another segment, or a dead master pid) and re-attaches, and
 * says so plainly while no daemon runs.
 * Trust boundary: the segment is validated by sl_shm_attach before use.
 */
#include <fnmatch.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "config/sl_config.h"
#include "ctl/sl_ctl.h"
#include "util/sl_msg.h"
#include "shm/sl_shm.h"

struct opts {
    bool json;
    double watch; /* seconds between refreshes; 0: print once */
    long count;   /* refreshes under --watch; 0: until interrupted */
    const char *shm_name;
    const char *sort;  /* NULL: by scope and key; "in_use", "refused", "waits", "peak" */
    int scope;         /* SL_SCOPE_NONE: every kind */
    bool nonzero;      /* only counters with something in use or waiting */
    const char *match; /* fnmatch pattern on "kind key" */
    size_t max_rows;   /* table rows at most (the terminal's height under --watch); 0: all */
};

static volatile sig_atomic_t interrupted;

/* on_interrupt - ^C ends --watch cleanly */
static void on_interrupt(int signo)
{
    (void)signo;
    interrupted = 1;
}

/* limit_text - a limit as the operator wrote it; -1 is "none" */
static void limit_text(int32_t limit, char *buf, size_t len)
{
    if (limit < 0)
        snprintf(buf, len, "none");
    else
        snprintf(buf, len, "%d", limit);
}

/* server_in_use - connections open on the whole server (the server counter) */
static uint32_t server_in_use(const struct sl_counter_view *v, size_t n, int32_t *limit)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == SL_SCOPE_SERVER) {
            *limit = v[i].limit;
            return v[i].in_use;
        }
    *limit = SL_LIMIT_NONE;
    return 0;
}

/* figure - the value --sort orders by */
static uint64_t figure(const struct sl_counter_view *v, const char *sort)
{
    if (strcmp(sort, "in_use") == 0)
        return v->in_use;
    if (strcmp(sort, "refused") == 0)
        return v->refused;
    if (strcmp(sort, "waits") == 0)
        return v->holdbacks;
    return v->peak;
}

/* by_figure - highest figure first (the --sort key in sort), then the natural order */
static int by_figure(const void *a, const void *b, void *sort)
{
    uint64_t x = figure(a, sort), y = figure(b, sort);

    if (x != y)
        return x > y ? -1 : 1;
    return sl_ctl_by_scope(a, b);
}

/* wanted - does counter v pass the filters */
static bool wanted(const struct sl_counter_view *v, const struct opts *o)
{
    char key[2 * SL_SHM_NAME_MAX + 32], scoped[2 * SL_SHM_NAME_MAX + 64];

    if (sl_ctl_is_bucket(v)) /* a throttle: shown in a table of its own */
        return false;
    if (v->kind == SL_SCOPE_ACTION_CAP && v->limit < 0) /* its action ended */
        return false;
    if (o->scope != SL_SCOPE_NONE && (int)v->kind != o->scope)
        return false;
    if (o->nonzero && v->in_use == 0 && v->waiting == 0)
        return false;
    if (o->match == NULL)
        return true;
    sl_ctl_scope_key(v, key, sizeof key);
    snprintf(scoped, sizeof scoped, "%s %s", sl_scope_kind_name(v->kind), key);
    return fnmatch(o->match, scoped, 0) == 0 || fnmatch(o->match, key, 0) == 0;
}

/* select_rows - keep the counters that pass the filters, in the asked order; how many */
static size_t select_rows(struct sl_counter_view *v, size_t n, const struct opts *o)
{
    size_t kept = 0;

    for (size_t i = 0; i < n; i++)
        if (wanted(&v[i], o))
            v[kept++] = v[i];
    if (o->sort != NULL)
        qsort_r(v, kept, sizeof *v, by_figure, (void *)o->sort);
    else
        qsort(v, kept, sizeof *v, sl_ctl_by_scope);
    return kept;
}

/* print_table - the human view; the header's totals count every counter, the rows the kept */
static void print_table(const struct sl_shm *shm, const struct sl_counter_view *v, size_t n,
                        const struct sl_counter_view *rows, size_t nrows, size_t max_rows)
{
    const struct sl_shm_header *h = shm->hdr;
    time_t now = time(NULL), audit = (time_t)sl_peek64(&h->last_audit);
    int32_t slimit;
    uint32_t open = server_in_use(v, n, &slimit);
    uint64_t refused = 0;
    char key[2 * SL_SHM_NAME_MAX + 4], lim[16], last[32];

    for (size_t i = 0; i < n; i++)
        refused += sl_ctl_is_bucket(&v[i]) ? 0 : v[i].refused;
    if (audit != 0)
        snprintf(last, sizeof last, "last %llds ago", (long long)(now - audit));
    else
        snprintf(last, sizeof last, "none yet");
    printf("sluiced pid %llu, up %llds, config generation %llu, %zu/%u counters, %u workers\n",
           (unsigned long long)h->master_pid, (long long)(now - (time_t)h->master_start),
           (unsigned long long)sl_peek64(&h->config_gen), n, h->slot_capacity,
           sl_ctl_workers_alive(shm));
    limit_text(slimit, lim, sizeof lim);
    printf("open connections %u of %s; refused %llu; reclaimed %llu; audit: %llu runs, %llu "
           "fixed, %s\n\n",
           open, lim, (unsigned long long)refused, (unsigned long long)sl_peek64(&h->reclaimed),
           (unsigned long long)sl_peek64(&h->audit_runs),
           (unsigned long long)sl_peek64(&h->audit_fixed), last);
    printf("%-15s %-40s %7s %7s %7s %9s %7s %9s\n", "SCOPE", "KEY", "IN USE", "LIMIT", "PEAK",
           "REFUSED", "WAITING", "HELD BACK");
    v = rows;
    if (max_rows > 0 && nrows > max_rows) {
        n = max_rows - 1; /* the last line says what did not fit */
    } else {
        n = nrows;
    }
    for (size_t i = 0; i < n; i++) {
        sl_ctl_scope_key(&v[i], key, sizeof key);
        limit_text(v[i].limit, lim, sizeof lim);
        printf("%-15s %-40s %7u %7s %7llu %9llu %7u %9llu", sl_scope_kind_name(v[i].kind), key,
               v[i].in_use, lim, (unsigned long long)v[i].peak, (unsigned long long)v[i].refused,
               v[i].waiting, (unsigned long long)v[i].holdbacks);
        if (v[i].waiting > 0 && v[i].wait_since > 0)
            printf("  waiting %llds", (long long)(now - (time_t)(v[i].wait_since / 1000)));
        putchar('\n');
    }
    if (n < nrows)
        printf("... %zu more (narrow with --scope, --nonzero, --match or sort with --sort)\n",
               nrows - n);
    sl_ctl_cluster_table(rows, n);
}

/* print_json - the machine view: one object, counters sorted as in the table */
static void print_json(const struct sl_shm *shm, const struct sl_counter_view *v, size_t n,
                       const struct sl_counter_view *all, size_t nall)
{
    const struct sl_shm_header *h = shm->hdr;
    int32_t slimit;
    uint32_t open = server_in_use(all, nall, &slimit); /* the whole table, whatever is shown */

    printf("{\"daemon\":{\"pid\":%llu,\"started\":%llu,\"config_generation\":%llu,"
           "\"workers\":%u,\"capacity\":%u,\"reclaimed\":%llu,\"audit_runs\":%llu,"
           "\"audit_fixed\":%llu,\"last_audit\":%llu},",
           (unsigned long long)h->master_pid, (unsigned long long)h->master_start,
           (unsigned long long)sl_peek64(&h->config_gen), sl_ctl_workers_alive(shm),
           h->slot_capacity, (unsigned long long)sl_peek64(&h->reclaimed),
           (unsigned long long)sl_peek64(&h->audit_runs),
           (unsigned long long)sl_peek64(&h->audit_fixed),
           (unsigned long long)sl_peek64(&h->last_audit));
    printf("\"totals\":{\"counters\":%zu,\"open_connections\":%u,\"server_limit\":%d},", nall, open,
           slimit);
    printf("\"counters\":[");
    for (size_t i = 0; i < n; i++) {
        printf("%s{\"scope\":", i ? "," : "");
        sl_ctl_json_string(sl_scope_kind_name(v[i].kind));
        printf(",\"name\":");
        sl_ctl_json_string(v[i].name);
        printf(",\"name2\":");
        sl_ctl_json_string(v[i].name2);
        printf(",\"in_use\":%u,\"limit\":%d,\"peak\":%llu,\"refused\":%llu,\"generation\":%u,"
               "\"waiting\":%u,\"holdbacks\":%llu,\"waited_ms\":%llu,\"waiting_since_ms\":%llu}",
               v[i].in_use, v[i].limit, (unsigned long long)v[i].peak,
               (unsigned long long)v[i].refused, v[i].gen, v[i].waiting,
               (unsigned long long)v[i].holdbacks, (unsigned long long)v[i].waited_ms,
               (unsigned long long)v[i].wait_since);
    }
    printf("],\"throttles\":");
    sl_ctl_throttles_json(shm, all, nall);
    sl_ctl_cluster_json(v, n);
    printf("}\n");
}

/* show - one snapshot, printed */
static int show(const struct sl_shm *shm, const struct opts *o)
{
    struct sl_counter_view *v = NULL, *rows;
    size_t n = 0, nrows;

    if (sl_shm_snapshot(shm, &v, &n) < 0) {
        fprintf(stderr, "sluicectl: cannot read the counter table %s\n", shm->name);
        return 1;
    }
    rows = sl_malloc((n + 1) * sizeof *rows);
    memcpy(rows, v, n * sizeof *rows);
    nrows = select_rows(rows, n, o);
    if (o->json)
        print_json(shm, rows, nrows, v, n);
    else
        print_table(shm, v, n, rows, nrows, o->max_rows);
    if (!o->json)
        sl_ctl_throttles_table(shm, v, n);
    free(rows);
    free(v);
    return 0;
}

/* parse - the subcommand's arguments */
static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--json") == 0) {
            o->json = true;
        } else if (strcmp(argv[i], "--watch") == 0 && i + 1 < argc) {
            o->watch = strtod(argv[++i], &end);
            if (*end != '\0' || !(o->watch > 0) || o->watch > 86400 || !isfinite(o->watch)) {
                fprintf(stderr, "sluicectl: --watch takes a number of seconds, not %s\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            o->count = strtol(argv[++i], &end, 10);
            if (*end != '\0' || o->count < 1) {
                fprintf(stderr, "sluicectl: --count takes a positive number, not %s\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--shm") == 0 && i + 1 < argc) {
            o->shm_name = argv[++i];
        } else if (strcmp(argv[i], "--sort") == 0 && i + 1 < argc) {
            o->sort = argv[++i];
            if (strcmp(o->sort, "in_use") != 0 && strcmp(o->sort, "refused") != 0 &&
                strcmp(o->sort, "waits") != 0 && strcmp(o->sort, "peak") != 0) {
                fprintf(stderr, "sluicectl: --sort takes in_use, refused, waits or peak, not %s\n",
                        o->sort);
                return 2;
            }
        } else if (strcmp(argv[i], "--scope") == 0 && i + 1 < argc) {
            o->scope = (int)sl_scope_kind_parse(argv[++i]);
            if (o->scope == SL_SCOPE_NONE) {
                fprintf(stderr,
                        "sluicectl: --scope takes a kind (binding_domain, host, domain, "
                        "server, ...), not %s\n",
                        argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--nonzero") == 0) {
            o->nonzero = true;
        } else if (strcmp(argv[i], "--match") == 0 && i + 1 < argc) {
            o->match = argv[++i];
        } else {
            fprintf(stderr,
                    "sluicectl: counters: unexpected argument %s\n"
                    "usage: sluicectl counters [--json] [--watch SECONDS [--count N]] "
                    "[--shm NAME] [--sort in_use|refused|waits|peak] [--scope KIND] "
                    "[--nonzero] [--match PATTERN]\n",
                    argv[i]);
            return 2;
        }
    }
    if (o->count > 0 && o->watch == 0) {
        fprintf(stderr,
                "sluicectl: counters: --count counts the refreshes of --watch: give both\n");
        return 2;
    }
    return 0;
}

/* terminal_rows - table rows that fit the terminal below the header (0: unknown, no cut) */
static size_t terminal_rows(void)
{
    struct winsize ws;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_row < 8)
        return 0;
    return (size_t)ws.ws_row - 5; /* two header lines, a blank, the column names, a cursor line */
}

/* watch - refresh in place until ^C or --count, re-attaching across restarts; 1 when a
 * --count run ended without ever finding a daemon (a script asked for figures, got none) */
static int watch(const char *name, const struct opts *o)
{
    struct sl_shm shm;
    bool attached = false, found = false;
    char err[256];
    long shown = 0;
    struct timespec pause = {(time_t)o->watch, (long)((o->watch - floor(o->watch)) * 1e9)};

    bool tty = isatty(STDOUT_FILENO);
    struct opts shown_o = *o;

    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    while (!interrupted && (o->count == 0 || shown < o->count)) {
        shown_o.max_rows = tty && !o->json ? terminal_rows() : 0;
        if (attached && sl_shm_stale(&shm)) {
            sl_shm_detach(&shm);
            attached = false;
        }
        if (!attached && sl_shm_attach(name, true, 0, &shm, err, sizeof err) == 0) {
            attached = !sl_shm_stale(&shm); /* a dead master's segment is no daemon */
            if (!attached) {
                sl_shm_detach(&shm);
                snprintf(err, sizeof err, "its counter table is a dead master's");
            }
        }
        if (!o->json && tty)
            printf("\033[H\033[2J"); /* on a terminal only: a pipe gets no control codes */
        else if (!o->json)
            printf("--- %lld\n", (long long)time(NULL));
        found |= attached;
        if (attached)
            show(&shm, &shown_o);
        else if (o->json)
            printf("{\"daemon\":null,\"error\":\"no daemon running\"}\n");
        else
            printf("no daemon running (%s); waiting\n", err);
        fflush(stdout);
        shown++;
        if (o->count == 0 || shown < o->count)
            nanosleep(&pause, NULL);
    }
    if (attached)
        sl_shm_detach(&shm);
    return found || o->count == 0 ? 0 : 1;
}

/* sl_ctl_counters - sluicectl counters [--json] [--watch SECONDS [--count N]] [--shm NAME] */
int sl_ctl_counters(const char *cfgpath, int argc, char **argv)
{
    struct opts o = {.scope = SL_SCOPE_NONE};
    struct sl_shm shm;
    char name[256];
    int rc = parse(argc, argv, &o);

    if (rc != 0)
        return rc;
    sl_ctl_cluster_open(cfgpath);
    if (o.shm_name != NULL)
        snprintf(name, sizeof name, "%s", o.shm_name);
    else if (sl_ctl_global(cfgpath, SL_OPT_SHM_NAME, name, sizeof name) != 0)
        return 1;
    if (o.watch > 0)
        rc = watch(name, &o);
    else if (sl_ctl_attach_live(name, &shm) != 0)
        rc = 1;
    else {
        rc = show(&shm, &o);
        sl_shm_detach(&shm);
    }
    sl_ctl_cluster_close();
    return rc;
}
