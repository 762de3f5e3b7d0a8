/*
 * write.c - accept one message into the queue (sl_spool_write).
 *
 * Everything is checked before the first byte reaches the disk: the binding
 * name, the addresses, the recipient and part counts, the body (body.c) and
 * its size.  Recipients are grouped into parts by lower-cased domain in order
 * of first appearance; a recipient given twice (same local part, domain in
 * any case) is kept once.  The file is then built in memory (header and
 * stored body, one buffer) and committed durably (files.c) under a fresh id.
 * Concurrency: any process; ids are claimed without replacing.
 * Trust boundary: the caller's struct comes from the operator (inject) or from
 * a worker writing a bounce; both pass the same checks.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>

#include "util/sl_msg.h"
#include "spool_impl.h"

#define ID_TRIES 8

/* One recipient while grouping: its place, local part and domain. */
struct rcpt_key {
    const char *addr;
    size_t local; /* bytes of the local part */
    char domain[SL_DOMAIN_MAX + 1];
    size_t index; /* in the caller's list */
    unsigned part;
    bool dup;
};

/* A growing text with a known final size (the caller sized it). */
struct out {
    char *p;
    size_t len, cap;
};

/* put - append formatted text; running out of the computed room is our bug */
static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len)
        sl_msg_panic("spool header larger than computed");
    o->len += (size_t)n;
}

/* binding_ok - a name that is one token on a line */
static bool binding_ok(const char *b)
{
    size_t n = strlen(b);

    if (n == 0 || n > SL_SPOOL_BINDING_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)b[i] <= ' ' || (unsigned char)b[i] >= 0x7f)
            return false;
    return true;
}

/* dsn_text_ok - an ENVID or ORCPT: printable ASCII on one line, bounded */
static bool dsn_text_ok(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] >= 0x7f)
            return false;
    return n > 0 && n <= SL_SPOOL_DSN_TEXT_MAX;
}

/* check_dsn - the RFC 3461 values, which go into the header as text */
static int check_dsn(const struct sl_spool_new *m, char *err, size_t errlen)
{
    if (m->envid != NULL && !dsn_text_ok(m->envid))
        return spool_fail(err, errlen, "bad ENVID");
    for (size_t i = 0; m->orcpt != NULL && i < m->nrcpt; i++)
        if (m->orcpt[i] != NULL && !dsn_text_ok(m->orcpt[i]))
            return spool_fail(err, errlen, "bad ORCPT");
    return 0;
}

/* address_ok - one address, UTF-8 only when the message needs SMTPUTF8 */
static bool address_ok(const struct sl_spool_new *m, const char *addr, bool empty, char *why,
                       size_t len)
{
    if (m->smtputf8)
        return sl_spool_valid_address_utf8(addr, empty, why, len);
    return sl_spool_valid_address(addr, empty, why, len);
}

/* check_addresses - the sender and every recipient, with the culprit in err */
static int check_addresses(const struct sl_spool_new *m, char *err, size_t errlen)
{
    char why[128], shown[SL_ADDR_MAX * 4 + 1];

    if (!address_ok(m, m->sender, true, why, sizeof why)) {
        sl_spool_printable(m->sender, shown, sizeof shown);
        return spool_fail(err, errlen, "bad sender \"%s\": %s", shown, why);
    }
    if (m->nrcpt == 0)
        return spool_fail(err, errlen, "no recipient");
    if (m->nrcpt > SL_SPOOL_RCPT_MAX)
        return spool_fail(err, errlen, "%zu recipients, more than %d", m->nrcpt, SL_SPOOL_RCPT_MAX);
    for (size_t i = 0; i < m->nrcpt; i++)
        if (!address_ok(m, m->rcpt[i], false, why, sizeof why)) {
            sl_spool_printable(m->rcpt[i], shown, sizeof shown);
            return spool_fail(err, errlen, "bad recipient \"%s\": %s", shown, why);
        }
    return 0;
}

/* by_address - order keys by domain, local part, then first given */
static int by_address(const void *a, const void *b)
{
    const struct rcpt_key *x = *(const struct rcpt_key *const *)a;
    const struct rcpt_key *y = *(const struct rcpt_key *const *)b;
    int c = strcmp(x->domain, y->domain);

    if (c == 0 && x->local != y->local)
        c = x->local < y->local ? -1 : 1;
    if (c == 0)
        c = memcmp(x->addr, y->addr, x->local);
    if (c == 0)
        c = x->index < y->index ? -1 : x->index > y->index;
    return c;
}

/* mark_duplicates - every repeat of an earlier recipient gets dup */
static void mark_duplicates(struct rcpt_key *k, size_t n)
{
    struct rcpt_key **sorted = sl_calloc(n, sizeof *sorted);

    for (size_t i = 0; i < n; i++)
        sorted[i] = &k[i];
    qsort(sorted, n, sizeof *sorted, by_address);
    for (size_t i = 1; i < n; i++) {
        const struct rcpt_key *a = sorted[i - 1], *b = sorted[i];
        if (strcmp(a->domain, b->domain) == 0 && a->local == b->local &&
            memcmp(a->addr, b->addr, a->local) == 0)
            sorted[i]->dup = true;
    }
    free(sorted);
}

/* assign_parts - part numbers in order of each domain's first recipient */
static int assign_parts(struct rcpt_key *k, size_t n, const char **domain, size_t *nparts,
                        char *err, size_t errlen)
{
    *nparts = 0;
    for (size_t i = 0; i < n; i++) {
        size_t p = 0;
        if (k[i].dup)
            continue;
        while (p < *nparts && strcmp(domain[p], k[i].domain) != 0)
            p++;
        if (p == *nparts) {
            if (p == SL_SPOOL_PARTS_MAX)
                return spool_fail(err, errlen, "more than %d recipient domains",
                                  SL_SPOOL_PARTS_MAX);
            domain[(*nparts)++] = k[i].domain;
        }
        k[i].part = (unsigned)p;
    }
    return 0;
}

/* group_recipients - keys for m's recipients, duplicates marked, parts assigned */
static struct rcpt_key *group_recipients(const struct sl_spool_new *m, char *err, size_t errlen)
{
    struct rcpt_key *k = sl_calloc(m->nrcpt, sizeof *k);
    const char *domain[SL_SPOOL_PARTS_MAX];
    size_t nparts;

    for (size_t i = 0; i < m->nrcpt; i++) {
        k[i].addr = m->rcpt[i];
        k[i].index = i;
        sl_spool_address_domain(m->rcpt[i], k[i].domain, sizeof k[i].domain);
        /* the last '@' ends the local part (a domain has none); the domain key may be an
         * A-label of another length than the domain as written */
        k[i].local = (size_t)(strrchr(m->rcpt[i], '@') - m->rcpt[i]);
    }
    mark_duplicates(k, m->nrcpt);
    if (assign_parts(k, m->nrcpt, domain, &nparts, err, errlen) < 0) {
        free(k);
        return NULL;
    }
    return k;
}

/* header_room - an upper bound of the header's bytes */
static size_t header_room(const struct sl_spool_new *m)
{
    size_t room = 256 + strlen(m->binding) + strlen(m->sender);

    if (m->envid != NULL)
        room += strlen(m->envid) + 16;
    for (size_t i = 0; i < m->nrcpt; i++) {
        room += strlen(m->rcpt[i]) + 16 + 16;
        if (m->orcpt != NULL && m->orcpt[i] != NULL)
            room += strlen(m->orcpt[i]) + 16;
    }
    return room;
}

/* put_header - the envelope lines of sl_spool.h, then the blank line */
static void put_header(struct out *o, const struct sl_spool_new *m, const char *id, int64_t arrival,
                       uint64_t size, const struct rcpt_key *k)
{
    put(o,
        "sluice-spool 1\nid %s\narrival %" PRId64 "\nbinding %s\ndsn %d\nfrom %s\nsize %" PRIu64
        "\n",
        id, arrival, m->binding, m->dsn ? 1 : 0, m->sender, size);
    if (m->envid != NULL)
        put(o, "envid %s\n", m->envid);
    if (m->ret_hdrs || m->ret_full)
        put(o, "ret %s\n", m->ret_hdrs ? "hdrs" : "full");
    if (m->smtputf8)
        put(o, "smtputf8 1\n");
    for (size_t i = 0; i < m->nrcpt; i++) {
        if (k[i].dup)
            continue;
        put(o, "rcpt %u %s\n", k[i].part, k[i].addr);
        if (m->notify != NULL && m->notify[i] != 0)
            put(o, "notify %u\n", m->notify[i] & SL_NOTIFY_ALL);
        if (m->orcpt != NULL && m->orcpt[i] != NULL)
            put(o, "orcpt %s\n", m->orcpt[i]);
    }
    put(o, "\n");
}

/* commit_new - the file under a fresh id; a taken id is drawn again */
static int commit_new(const char *dir, const struct sl_spool_new *m, const struct rcpt_key *k,
                      uint64_t size, size_t stuffed, char *id, char *err, size_t errlen)
{
    size_t room = header_room(m);
    struct out o = {.p = sl_malloc(room + stuffed), .cap = room};
    int64_t arrival = (int64_t)time(NULL);

    for (int tries = 0; tries < ID_TRIES; tries++) {
        enum spool_commit_result r;
        spool_new_id(id);
        o.len = 0;
        put_header(&o, m, id, arrival, size, k);
        if (o.len > SPOOL_HEAD_MAX) { /* no reader would take it: refused, never set aside */
            free(o.p);
            return spool_fail(err, errlen, "envelope of %zu bytes is larger than %zu", o.len,
                              SPOOL_HEAD_MAX);
        }
        spool_body_encode(m->body, m->len, o.p + o.len);
        if (m->group != NULL) {
            char tmpname[SPOOL_GROUP_TMP_MAX];
            snprintf(tmpname, sizeof tmpname, "%s%s", id, SPOOL_GROUP_TMP_SUFFIX);
            r = spool_commit_grouped(dir, tmpname, SPOOL_QUEUE, id, o.p, o.len + stuffed, m->group,
                                     err, errlen);
        } else
            r = spool_commit(dir, id, SPOOL_QUEUE, id, o.p, o.len + stuffed, SPOOL_NEW, err,
                             errlen);
        if (r != SPOOL_COMMIT_EXISTS) {
            int saved = errno; /* the cause, for the caller */
            free(o.p);
            errno = saved;
            return r == SPOOL_COMMIT_OK ? 0 : -1;
        }
    }
    free(o.p);
    return spool_fail(err, errlen, "no free queue id after %d tries", ID_TRIES);
}

/* sl_spool_write - validate m, then write it durably under a new id */
int sl_spool_write(const char *dir, const struct sl_spool_new *m, char *id, char *err,
                   size_t errlen)
{
    struct rcpt_key *k;
    uint64_t size;
    size_t stuffed;
    int rc;

    if (m->binding == NULL || !binding_ok(m->binding))
        return spool_fail(err, errlen, "bad binding name");
    if (m->sender == NULL || check_addresses(m, err, errlen) < 0)
        return m->sender == NULL ? spool_fail(err, errlen, "no sender") : -1;
    if (check_dsn(m, err, errlen) < 0 ||
        spool_body_measure(m->body, m->len, &size, &stuffed, err, errlen) < 0)
        return -1;
    if (m->max_size > 0 && size > m->max_size)
        return spool_fail(err, errlen, "message of %" PRIu64 " bytes is larger than %" PRIu64, size,
                          m->max_size);
    if ((k = group_recipients(m, err, errlen)) == NULL)
        return -1;
    rc = commit_new(dir, m, k, size, stuffed, id, err, errlen);
    int saved = errno;
    free(k);
    errno = saved;
    return rc;
}
