/*
 * ctl_queue_summary.c - sluicectl queue --summary: the queue's shape, like
 * Postfix's qshape: queued messages per destination domain and age.
 *
 * Reads the spool directly (no daemon needed).  A message counts once in each
 * domain it still has pending recipients for; its age is the time since it was
 * queued.  Columns: T (total), then messages younger than 5, 10, 20, 40, 80,
 * 160, 320, 640, 1280 minutes, and older ("1280+").  The TOTAL row sums the
 * domain rows; domains are listed by total, largest first, then by name.
 * Text: a right-aligned table.  JSON: {"buckets": ["5m", ..., "1280m+"],
 * "total": {"messages": N, "by_age": [..]}, "domains": [{"domain": str,
 * "messages": N, "held": N, "by_age": [..]}]} ("held": parts the operator holds).
 * Trust boundary: spool files are parsed by the spool layer; one that does not
 * parse is skipped (sluicectl queue names it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "ctl/sl_ctl.h"
#include "spool/sl_spool.h"
#include "util/sl_msg.h"

#define NBUCKETS 10

static const unsigned bucket_min[NBUCKETS - 1] = {5, 10, 20, 40, 80, 160, 320, 640, 1280};

/* One domain's row. */
struct row {
    char domain[SL_DOMAIN_MAX + 1];
    unsigned total, held;
    unsigned by_age[NBUCKETS];
};

/* The table being filled. */
struct shape {
    const char *spool;
    int64_t now;
    struct row *rows;
    size_t n, cap;
};

/* row_of - the row of domain, added when new */
static struct row *row_of(struct shape *s, const char *domain)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->rows[i].domain, domain) == 0)
            return &s->rows[i];
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->rows = sl_realloc(s->rows, s->cap * sizeof *s->rows);
    }
    memset(&s->rows[s->n], 0, sizeof s->rows[s->n]);
    strlcpy(s->rows[s->n].domain, domain, sizeof s->rows[s->n].domain);
    return &s->rows[s->n++];
}

/* bucket - the age column of a message queued at arrival */
static unsigned bucket(int64_t now, int64_t arrival)
{
    int64_t minutes = (now - arrival) / 60;
    unsigned b = 0;

    while (b < NBUCKETS - 1 && minutes >= bucket_min[b])
        b++;
    return b;
}

/* count_one - the scan's callback: the message in each domain it still waits for */
static void count_one(const char *id, void *vs)
{
    struct shape *s = vs;
    struct sl_spool_msg m;
    char err[512];

    if (sl_spool_read(s->spool, id, &m, err, sizeof err) < 0)
        return;
    for (unsigned k = 0; k < m.nparts; k++) {
        struct sl_spool_state st;
        if (sl_spool_state_load(s->spool, id, k, m.nrcpt, &st, err, sizeof err) < 0)
            continue;
        if (!sl_spool_part_done(&m, k, &st)) {
            struct row *r = row_of(s, m.domain[k]);
            r->total++;
            r->held += st.held;
            r->by_age[bucket(s->now, m.arrival)]++;
        }
        sl_spool_state_free(&st);
    }
    sl_spool_msg_free(&m);
}

/* by_total - larger rows first, then by name */
static int by_total(const void *a, const void *b)
{
    const struct row *x = a, *y = b;

    if (x->total != y->total)
        return x->total > y->total ? -1 : 1;
    return strcmp(x->domain, y->domain);
}

/* print_row - one line of the text table */
static void print_row(const struct row *r, int width)
{
    printf("%*s %5u", width, r->domain, r->total);
    for (unsigned b = 0; b < NBUCKETS; b++)
        printf(" %5u", r->by_age[b]);
    printf(" %5u\n", r->held);
}

/* print_text - the table, TOTAL first */
static void print_text(const struct shape *s, const struct row *total)
{
    int width = 12;

    for (size_t i = 0; i < s->n; i++)
        if ((int)strlen(s->rows[i].domain) > width)
            width = (int)strlen(s->rows[i].domain);
    printf("%*s %5s", width, "", "T");
    for (unsigned b = 0; b < NBUCKETS - 1; b++)
        printf(" %5u", bucket_min[b]);
    printf(" %5s %5s\n", "1280+", "held");
    print_row(total, width);
    for (size_t i = 0; i < s->n; i++)
        print_row(&s->rows[i], width);
    printf("(messages per destination domain, by minutes since they were queued)\n");
}

/* print_ages - a JSON array of the age columns */
static void print_ages(const struct row *r)
{
    putchar('[');
    for (unsigned b = 0; b < NBUCKETS; b++)
        printf("%s%u", b ? "," : "", r->by_age[b]);
    putchar(']');
}

/* print_json - the same as one JSON object */
static void print_json(const struct shape *s, const struct row *total)
{
    printf("{\"buckets\":[");
    for (unsigned b = 0; b < NBUCKETS - 1; b++)
        printf("\"%um\",", bucket_min[b]);
    printf("\"1280m+\"],\"total\":{\"messages\":%u,\"held\":%u,\"by_age\":", total->total,
           total->held);
    print_ages(total);
    printf("},\"domains\":[");
    for (size_t i = 0; i < s->n; i++) {
        printf("%s{\"domain\":", i ? "," : "");
        sl_ctl_json_string(s->rows[i].domain);
        printf(",\"messages\":%u,\"held\":%u,\"by_age\":", s->rows[i].total, s->rows[i].held);
        print_ages(&s->rows[i]);
        putchar('}');
    }
    printf("]}\n");
}

/* sl_ctl_queue_summary - the queue's shape from the spool */
int sl_ctl_queue_summary(const char *spool, bool json)
{
    struct shape s = {.spool = spool, .now = (int64_t)time(NULL)};
    struct row total = {.domain = "TOTAL"};

    if (sl_spool_scan(spool, count_one, &s) < 0 && errno != ENOENT) {
        fprintf(stderr, "sluicectl: queue: cannot read %s/queue: %s\n", spool, strerror(errno));
        free(s.rows);
        return 1;
    }
    if (s.n > 0)
        qsort(s.rows, s.n, sizeof *s.rows, by_total);
    for (size_t i = 0; i < s.n; i++) {
        total.total += s.rows[i].total;
        total.held += s.rows[i].held;
        for (unsigned b = 0; b < NBUCKETS; b++)
            total.by_age[b] += s.rows[i].by_age[b];
    }
    if (json)
        print_json(&s, &total);
    else
        print_text(&s, &total);
    free(s.rows);
    return 0;
}
