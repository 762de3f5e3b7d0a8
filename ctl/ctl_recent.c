/*
 * ctl_recent.c - the delivery log's recent lines about one domain, per
 * address: the last outcome and reply, and how many recipients were delivered
 * and failed (deferred or bounced) in the last hour.
 *
 * Reads at most the last TAIL_BYTES of the log (a rotated file's older lines
 * are not looked at): enough for "what happened lately", and bounded however
 * large the log grows.  Lines are this project's own JSON (dlog/dlog.c);
 * only the few string fields needed are picked out, and a line that does not
 * have them is skipped.
 * Trust boundary: the log holds replies from remote servers: every field is
 * copied bounded and unescaped only for \" and \\ (other escapes stay as
 * written), so nothing in it can overrun or inject.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "ctl/ctl_recent.h"
#include "util/sl_msg.h"

#define TAIL_BYTES (4u << 20)

/* field - the string value of "key" in the line [s, end) into buf; false when absent or null */
static bool field(const char *s, const char *end, const char *key, char *buf, size_t len)
{
    char pat[40];
    const char *p;
    size_t n = 0;

    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    p = memmem(s, (size_t)(end - s), pat, strlen(pat));
    if (p == NULL)
        return false;
    for (p += strlen(pat); p < end && *p != '"'; p++) {
        if (*p == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\\'))
            p++;
        if (n + 1 < len)
            buf[n++] = *p;
    }
    buf[n] = '\0';
    return p < end;
}

/* logged_at - the line's "time" as UNIX seconds; 0 when unreadable */
static int64_t logged_at(const char *iso)
{
    struct tm tm = {0};

    if (strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm) == NULL)
        return 0;
    return (int64_t)timegm(&tm);
}

/* entry_of - the entry of ip, added when new */
static struct ctl_recent *entry_of(struct ctl_recent **v, size_t *n, size_t *cap, const char *ip)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i].ip, ip) == 0)
            return &(*v)[i];
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = sl_realloc(*v, *cap * sizeof **v);
    }
    memset(&(*v)[*n], 0, sizeof **v);
    strlcpy((*v)[*n].ip, ip, sizeof(*v)[*n].ip);
    return &(*v)[(*n)++];
}

/* one_line - count one line of the log when it is about domain */
static void one_line(const char *s, const char *end, const char *domain, int64_t now,
                     struct ctl_recent **v, size_t *n, size_t *cap)
{
    char dom[256], ip[64], out[16], when[32];
    struct ctl_recent *e;
    size_t nrcpt = 1;
    const char *r;

    if (!field(s, end, "domain", dom, sizeof dom) || strcasecmp(dom, domain) != 0 ||
        !field(s, end, "ip", ip, sizeof ip) || !field(s, end, "outcome", out, sizeof out) ||
        !field(s, end, "time", when, sizeof when))
        return; /* not this domain, or no address: refused before a connection */
    if ((r = memmem(s, (size_t)(end - s), "\"rcpt\":[", 8)) != NULL)
        for (nrcpt = 1, r += 8; r < end && *r != ']'; r++)
            nrcpt += *r == ',' && r[1] == '"'; /* "a","b": commas between strings */
    e = entry_of(v, n, cap, ip);
    strlcpy(e->outcome, out, sizeof e->outcome);
    strlcpy(e->time, when, sizeof e->time);
    if (!field(s, end, "reply", e->reply, sizeof e->reply))
        e->reply[0] = '\0';
    if (!field(s, end, "mx", e->mx, sizeof e->mx))
        e->mx[0] = '\0';
    if (!field(s, end, "binding", e->binding, sizeof e->binding))
        e->binding[0] = '\0';
    if (now - logged_at(when) > CTL_RECENT_WINDOW_S)
        return;
    if (strcmp(out, "delivered") == 0)
        e->delivered += (unsigned)nrcpt;
    else if (strcmp(out, "deferred") == 0 || strcmp(out, "bounced") == 0)
        e->failed += (unsigned)nrcpt;
}

/* ctl_recent_read - the log's tail about domain, per address */
struct ctl_recent *ctl_recent_read(const char *path, const char *domain, int64_t now, size_t *n)
{
    struct ctl_recent *v = NULL;
    size_t cap = 0, len;
    struct stat st;
    char *buf, *p, *end;
    ssize_t got;
    int fd;

    *n = 0;
    if (path == NULL || (fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
        return NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return NULL;
    }
    len = st.st_size > (off_t)TAIL_BYTES ? TAIL_BYTES : (size_t)st.st_size;
    buf = sl_malloc(len + 1);
    got = pread(fd, buf, len, st.st_size - (off_t)len);
    close(fd);
    end = buf + (got > 0 ? got : 0);
    p = buf;
    if (len < (size_t)st.st_size && (p = memchr(buf, '\n', (size_t)(end - buf))) != NULL)
        p++; /* the first line was cut */
    while (p != NULL && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        one_line(p, nl ? nl : end, domain, now, &v, n, &cap);
        p = nl ? nl + 1 : end;
    }
    free(buf);
    return v;
}
