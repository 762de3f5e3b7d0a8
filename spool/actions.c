/*
 * actions.c - the file of shaping actions in force (sl_actions.h).
 *
 * Format, one action per line, tab-separated, after a "sluice-actions 1"
 * line, a "next ID" line and a "taken RULE N" line per rule that took actions:
 *   ID KIND VALUE BINDING DOMAIN HOST SINCE UNTIL RULE REASON
 * where an empty name is written "-" and REASON runs to the end of the line.
 * Concurrency: the master alone writes it while it runs (sluicectl writes it
 * only with no daemon); a reader sees the old or the new file whole, never a
 * mix (write-new, fsync, rename).
 * Trust boundary: every field read back is checked; a damaged line is
 * skipped with a warning rather than trusted or fatal.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <bsd/string.h>

#include "spool/sl_actions.h"
#include "util/sl_msg.h"
#include "spool_impl.h"

#define HEADER   "sluice-actions 1"
#define FILE_MAX (SL_ACTIONS_MAX * 1600)
#define NFIELDS  10

static const char *const kind_names[SL_ACTION__COUNT] = {
    [SL_ACTION_SUSPEND] = "suspend",
    [SL_ACTION_MAX_CONNECTIONS] = "max_outbound_connections",
    [SL_ACTION_THROTTLE_MESSAGES] = "outbound_throttle_messages",
};

/* sl_action_kind_name - the kind's word */
const char *sl_action_kind_name(enum sl_action_kind k)
{
    return (unsigned)k < SL_ACTION__COUNT ? kind_names[k] : "?";
}

/* sl_action_kind_parse - the kind with this word, or -1 */
int sl_action_kind_parse(const char *word)
{
    for (int k = 0; k < SL_ACTION__COUNT; k++)
        if (strcasecmp(word, kind_names[k]) == 0)
            return k;
    return -1;
}

/* sl_action_text - a field as the file keeps it: one line, no tabs, bounded */
void sl_action_text(char *dst, size_t len, const char *src)
{
    size_t i = 0;

    if (len == 0)
        return;
    for (; src != NULL && src[i] != '\0' && i + 1 < len; i++)
        dst[i] = iscntrl((unsigned char)src[i]) ? ' ' : src[i];
    dst[i] = '\0';
}

/* name_field - a name field: "-" stands for empty; false when it does not fit */
static bool name_field(char *dst, size_t len, const char *s)
{
    if (strcmp(s, "-") == 0) {
        dst[0] = '\0';
        return true;
    }
    return strlcpy(dst, s, len) < len;
}

/* number - a signed decimal field */
static bool number(const char *s, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0)
        return false;
    *out = v;
    return true;
}

/* parse_line - one action line (modified in place) into a */
static bool parse_line(char *line, struct sl_action *a)
{
    char *f[NFIELDS];
    int64_t id, kind;
    size_t n = 0;

    for (char *p = line; n < NFIELDS; n++) {
        f[n] = p;
        if (n == NFIELDS - 1)
            break;
        if ((p = strchr(p, '\t')) == NULL)
            return false;
        *p++ = '\0';
    }
    memset(a, 0, sizeof *a);
    if (!number(f[0], &id) || id <= 0 || (kind = sl_action_kind_parse(f[1])) < 0 ||
        !number(f[2], &a->value) || !name_field(a->binding, sizeof a->binding, f[3]) ||
        !name_field(a->domain, sizeof a->domain, f[4]) ||
        !name_field(a->host, sizeof a->host, f[5]) || !number(f[6], &a->since) ||
        !number(f[7], &a->until) || !name_field(a->rule, sizeof a->rule, f[8]))
        return false;
    a->id = (uint64_t)id;
    a->kind = (enum sl_action_kind)kind;
    sl_action_text(a->reason, sizeof a->reason, f[9]);
    return true;
}

/* sl_actions_count - one more action of rule */
void sl_actions_count(struct sl_actions *l, const char *rule)
{
    for (size_t i = 0; i < l->ntaken; i++)
        if (strcmp(l->taken[i].rule, rule) == 0) {
            l->taken[i].n++;
            return;
        }
    if (l->ntaken >= SL_ACTIONS_MAX)
        return;
    l->taken = sl_realloc(l->taken, (l->ntaken + 1) * sizeof *l->taken);
    strlcpy(l->taken[l->ntaken].rule, rule, sizeof l->taken[l->ntaken].rule);
    l->taken[l->ntaken++].n = 1;
}

/* taken_line - "RULE N" of a "taken" line into l; false when malformed */
static bool taken_line(struct sl_actions *l, char *s)
{
    char *sp = strrchr(s, ' ');
    int64_t n;

    if (sp == NULL || sp == s || !number(sp + 1, &n) || n < 0)
        return false;
    *sp = '\0';
    if (strlen(s) >= sizeof l->taken->rule || strchr(s, '\t') != NULL)
        return false;
    sl_actions_count(l, s);
    for (size_t i = 0; i < l->ntaken; i++)
        if (strcmp(l->taken[i].rule, s) == 0)
            l->taken[i].n = (uint64_t)n;
    return true;
}

/* read_file - the whole file into a new string; NULL with errno (ENOENT: none) */
static char *read_file(const char *path, size_t *len)
{
    int fd = spool_open_entry(path);
    char *buf;
    ssize_t n;
    size_t got = 0;

    if (fd < 0)
        return NULL;
    buf = sl_malloc(FILE_MAX + 1);
    while (got < FILE_MAX && (n = read(fd, buf + got, FILE_MAX - got)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return NULL;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* sl_actions_load - the file into out */
int sl_actions_load(const char *spool_dir, struct sl_actions *out, char *err, size_t errlen)
{
    char path[4096], *buf, *save = NULL;
    size_t len, lineno = 0;
    int64_t next;

    *out = (struct sl_actions){.next_id = 1};
    if (!spool_path(path, sizeof path, spool_dir, SL_ACTIONS_FILE, NULL))
        return spool_fail(err, errlen, "spool path too long: %s", spool_dir);
    if ((buf = read_file(path, &len)) == NULL)
        return errno == ENOENT ? 0 : spool_fail(err, errlen, "%s: %s", path, strerror(errno));
    for (char *line = strtok_r(buf, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        struct sl_action a;
        lineno++;
        if (lineno == 1 && strcmp(line, HEADER) == 0)
            continue;
        if (strncmp(line, "taken ", 6) == 0 && taken_line(out, line + 6))
            continue;
        if (strncmp(line, "next ", 5) == 0 && number(line + 5, &next) && next > 0) {
            out->next_id = (uint64_t)next > out->next_id ? (uint64_t)next : out->next_id;
            continue;
        }
        if (!parse_line(line, &a) || out->n >= SL_ACTIONS_MAX) {
            sl_msg_warn("%s:%zu: damaged action skipped", path, lineno);
            continue;
        }
        out->a = sl_realloc(out->a, (out->n + 1) * sizeof *out->a);
        out->a[out->n++] = a;
        if (a.id >= out->next_id)
            out->next_id = a.id + 1;
    }
    free(buf);
    return 0;
}

/* put - one field and its separator into the buffer */
static void put(char **buf, size_t *len, size_t *cap, const char *s, char sep)
{
    size_t n = strlen(s);

    if (*len + n + 2 > *cap) {
        *cap = (*len + n + 2) * 2;
        *buf = sl_realloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[(*len)++] = sep;
}

/* sl_actions_save - the list durably over the file */
int sl_actions_save(const char *spool_dir, const struct sl_actions *l, char *err, size_t errlen)
{
    size_t len = 0, cap = 4096;
    char *buf = sl_malloc(cap), num[3][32], tmp[64];
    int rc;

    snprintf(tmp, sizeof tmp, "next %" PRIu64, l->next_id);
    put(&buf, &len, &cap, HEADER, '\n');
    put(&buf, &len, &cap, tmp, '\n');
    for (size_t i = 0; i < l->ntaken; i++) {
        char line[200];
        snprintf(line, sizeof line, "taken %s %" PRIu64, l->taken[i].rule, l->taken[i].n);
        put(&buf, &len, &cap, line, '\n');
    }
    for (size_t i = 0; i < l->n; i++) {
        const struct sl_action *a = &l->a[i];
        char reason[SL_ACTION_TEXT + 1];
        snprintf(tmp, sizeof tmp, "%" PRIu64, a->id);
        snprintf(num[0], sizeof num[0], "%" PRId64, a->value);
        snprintf(num[1], sizeof num[1], "%" PRId64, a->since);
        snprintf(num[2], sizeof num[2], "%" PRId64, a->until);
        sl_action_text(reason, sizeof reason, a->reason);
        put(&buf, &len, &cap, tmp, '\t');
        put(&buf, &len, &cap, sl_action_kind_name(a->kind), '\t');
        put(&buf, &len, &cap, num[0], '\t');
        put(&buf, &len, &cap, a->binding[0] ? a->binding : "-", '\t');
        put(&buf, &len, &cap, a->domain[0] ? a->domain : "-", '\t');
        put(&buf, &len, &cap, a->host[0] ? a->host : "-", '\t');
        put(&buf, &len, &cap, num[1], '\t');
        put(&buf, &len, &cap, num[2], '\t');
        put(&buf, &len, &cap, a->rule[0] ? a->rule : "-", '\t');
        put(&buf, &len, &cap, reason, '\n');
    }
    rc = spool_commit(spool_dir, "actions.tmp", ".", SL_ACTIONS_FILE, buf, len, SPOOL_REPLACE, err,
                      errlen) == SPOOL_COMMIT_OK
             ? 0
             : -1;
    free(buf);
    return rc;
}

/* sl_actions_add - append a with the next id */
int sl_actions_add(struct sl_actions *l, struct sl_action *a)
{
    if (l->n >= SL_ACTIONS_MAX)
        return -1;
    if (l->next_id == 0)
        l->next_id = 1;
    a->id = l->next_id++;
    l->a = sl_realloc(l->a, (l->n + 1) * sizeof *l->a);
    l->a[l->n++] = *a;
    return 0;
}

/* sl_actions_remove - entry i out, the order of the rest kept */
void sl_actions_remove(struct sl_actions *l, size_t i)
{
    if (i >= l->n)
        return;
    memmove(&l->a[i], &l->a[i + 1], (l->n - i - 1) * sizeof *l->a);
    l->n--;
}

/* sl_actions_expire - drop what ended by now */
size_t sl_actions_expire(struct sl_actions *l, int64_t now)
{
    size_t dropped = 0;

    for (size_t i = 0; i < l->n;) {
        if (l->a[i].until > 0 && l->a[i].until <= now) {
            sl_actions_remove(l, i);
            dropped++;
        } else {
            i++;
        }
    }
    return dropped;
}

/* sl_actions_copy - dst a copy of src with memory of its own */
void sl_actions_copy(struct sl_actions *dst, const struct sl_actions *src)
{
    *dst = *src;
    dst->a = src->n > 0 ? sl_malloc(src->n * sizeof *src->a) : NULL;
    dst->taken = src->ntaken > 0 ? sl_malloc(src->ntaken * sizeof *src->taken) : NULL;
    if (src->n > 0)
        memcpy(dst->a, src->a, src->n * sizeof *src->a);
    if (src->ntaken > 0)
        memcpy(dst->taken, src->taken, src->ntaken * sizeof *src->taken);
}

/* sl_actions_free - the list's memory */
void sl_actions_free(struct sl_actions *l)
{
    free(l->a);
    free(l->taken);
    *l = (struct sl_actions){.next_id = l->next_id};
}

/* sl_action_covers - does a apply to binding x domain (x host) */
bool sl_action_covers(const struct sl_action *a, const char *binding, const char *domain,
                      const char *host)
{
    if (a->binding[0] != '\0' && (binding == NULL || strcasecmp(a->binding, binding) != 0))
        return false;
    if (a->domain[0] != '\0' && (domain == NULL || strcasecmp(a->domain, domain) != 0))
        return false;
    if (a->host[0] != '\0' && host != NULL && strcasecmp(a->host, host) != 0)
        return false;
    return true;
}
