/*
 * dlog.c - the delivery log: one JSON object per line for every attempt (and for
 * every operator command that makes recipients final), whoever writes it: a
 * worker, the master, or sluicectl acting on the spool with no daemon.
 *
 * Keys: time (UTC, ms), id, rcpt (array), binding, domain, mx, ip, outcome
 * (delivered | deferred | bounced | held | deleted), reply, phase (where it failed, or null),
 * and for a connection refused by a limit "refused": {"scope", "in_use",
 * "limit"}, and where a session was tried "tls": {"need", "source" (config,
 * mta-sts, dane), "on", "version", "cipher", "verified", "auth", "check",
 * "note"} (version to check only when encrypted).  Each line is built in memory and written with
 * one write() on an O_APPEND descriptor, so lines of concurrent workers never interleave. Trust
 * boundary: replies and addresses come from outside; every string is escaped, and a line is bounded
 * (long fields are cut).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "dlog/sl_dlog.h"
#include "shm/sl_shm.h"
#include "tls/sl_tls_policy.h"
#include "util/sl_msg.h"

#define LINE_MAX_BYTES 16384

/* A line being built. */
struct out {
    char buf[LINE_MAX_BYTES];
    size_t len;
};

/* put - append raw text, cutting at the buffer's end */
static void put(struct out *o, const char *s)
{
    size_t n = strlen(s);

    if (n > sizeof o->buf - 1 - o->len)
        n = sizeof o->buf - 1 - o->len;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* put_str - a JSON string, escaped, or null; a plain byte is appended as it is (no call per
 * byte: a line is written per delivery) */
static void put_str(struct out *o, const char *s)
{
    char esc[8];

    if (s == NULL) {
        put(o, "null");
        return;
    }
    put(o, "\"");
    for (; *s && o->len < sizeof o->buf - 16; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            esc[2] = '\0';
            put(o, esc);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(o, esc);
        } else {
            o->buf[o->len++] = (char)c;
        }
    }
    put(o, "\"");
}

/* put_key - ,"key": */
static void put_key(struct out *o, const char *key)
{
    put(o, o->len > 1 ? ",\"" : "\"");
    put(o, key);
    put(o, "\":");
}

/* put_time - the current UTC time, ISO 8601 with milliseconds */
static void put_time(struct out *o)
{
    struct timeval tv;
    struct tm tm;
    char t[96];

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(t, sizeof t, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(tv.tv_usec / 1000) % 1000);
    put_key(o, "time");
    put(o, t);
}

/* put_refusal - the counter that refused a connection */
static void put_refusal(struct out *o, const struct sl_dlog_line *l)
{
    char n[32];

    put_key(o, "refused");
    put(o, "{\"scope\":");
    put_str(o, l->scope);
    snprintf(n, sizeof n, ",\"in_use\":%u,\"limit\":%d}", l->why->in_use, l->why->limit);
    put(o, n);
}

/* put_limits - the receiver's RFC 9422 LIMITS that shaped the session (null: not announced) */
static void put_limits(struct out *o, const struct sl_dlog_line *l)
{
    char n[80], r[16] = "null", m[16] = "null";

    if (l->rcptmax > 0)
        snprintf(r, sizeof r, "%u", l->rcptmax);
    if (l->mailmax > 0)
        snprintf(m, sizeof m, "%u", l->mailmax);
    put_key(o, "limits");
    snprintf(n, sizeof n, "{\"rcptmax\":%s,\"mailmax\":%s}", r, m);
    put(o, n);
}

/* put_bool - ,"key":true|false */
static void put_bool(struct out *o, const char *key, bool v)
{
    put_key(o, key);
    put(o, v ? "true" : "false");
}

/* put_tls - what TLS the attempt demanded (and why) and what the session came to */
static void put_tls(struct out *o, const struct sl_tls_log *t)
{
    struct out in = {.len = 0};

    put(&in, "{");
    put_key(&in, "need");
    put_str(&in, sl_tls_need_name(t->need));
    put_key(&in, "source");
    put_str(&in, t->source);
    put_bool(&in, "on", t->info.on);
    if (t->info.on) {
        put_key(&in, "version");
        put_str(&in, t->info.version);
        put_key(&in, "cipher");
        put_str(&in, t->info.cipher);
        put_bool(&in, "verified", t->info.verified);
        put_key(&in, "auth");
        put_str(&in, t->info.auth);
        if (t->info.check[0] != '\0') {
            put_key(&in, "check");
            put_str(&in, t->info.check);
        }
    }
    if (t->note[0] != '\0') {
        put_key(&in, "note");
        put_str(&in, t->note);
    }
    put(&in, "}");
    in.buf[in.len] = '\0'; /* put leaves room for it */
    put_key(o, "tls");
    put(o, in.buf);
}

/* sl_dlog_open - the delivery log for appending; -1 (warned) when it cannot be opened */
int sl_dlog_open(const char *path)
{
    int fd;

    if (path == NULL)
        return -1;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        sl_msg_warn("delivery log %s: %m", path);
    return fd;
}

/* sl_dlog_reopen - the new file first, then the old one closed: between two
 * lines, so every line lands in one file or the other */
void sl_dlog_reopen(int *fd, const char *path)
{
    int next = sl_dlog_open(path);

    if (next < 0)
        return; /* warned; the lines keep going to the old file */
    if (*fd >= 0)
        close(*fd);
    *fd = next;
}

/* sl_dlog_write - one attempt, one line */
void sl_dlog_write(int fd, const struct sl_dlog_line *l)
{
    struct out o;

    if (fd < 0)
        return;
    o.len = 0; /* the 16 KB buffer is not cleared: only its first len bytes are ever read */
    put(&o, "{");
    put_time(&o);
    put_key(&o, "id");
    put_str(&o, l->id);
    put_key(&o, "rcpt");
    put(&o, "[");
    for (size_t i = 0; i < l->nrcpt; i++) {
        if (i)
            put(&o, ",");
        put_str(&o, l->rcpt[i]);
    }
    put(&o, "]");
    put_key(&o, "binding");
    put_str(&o, l->binding);
    put_key(&o, "domain");
    put_str(&o, l->domain);
    put_key(&o, "mx");
    put_str(&o, l->mx);
    put_key(&o, "ip");
    put_str(&o, l->ip);
    put_key(&o, "outcome");
    put_str(&o, l->outcome);
    put_key(&o, "reply");
    put_str(&o, l->reply);
    put_key(&o, "phase");
    put_str(&o, l->phase);
    if (l->why != NULL && l->scope != NULL)
        put_refusal(&o, l);
    if (l->tls != NULL && l->tls->tried)
        put_tls(&o, l->tls);
    if (l->rcptmax > 0 || l->mailmax > 0)
        put_limits(&o, l);
    if (o.len > sizeof o.buf - 3) /* cut: close what must be closed */
        o.len = sizeof o.buf - 3;
    put(&o, "}\n");
    if (write(fd, o.buf, o.len) < 0)
        sl_msg_warn("delivery log: %m");
}
