/*
 * ctl_shared.c - what several sluicectl subcommands share: JSON string output,
 * times in ISO 8601 UTC, and attaching to the running daemon's counter segment.
 *
 * Trust boundary: strings printed come from the spool, the segment or the
 * network (reply texts, scope names): control characters are escaped, and so is
 * every byte outside ASCII of a string that is not well-formed UTF-8, so the
 * output is valid JSON whatever they hold.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl/sl_ctl.h"
#include "util/sl_atomic.h"
#include "util/sl_file.h"
#include "shm/sl_shm.h"
#include "util/sl_idna.h"

/* sl_ctl_iso_time - UNIX seconds as 2024-05-01T12:00:00Z */
void sl_ctl_iso_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "%lld", (long long)t);
}

/* sl_ctl_json_string - s as a JSON string literal on stdout: well-formed UTF-8 (an SMTPUTF8
 * address) as it is, JSON's own text; else each byte over 0x7e escaped alone, as is every
 * control character (the output stays JSON, whatever the bytes) */
void sl_ctl_json_string(const char *s)
{
    bool utf8 = sl_idna_utf8_wellformed(s, strlen(s));

    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f || (*p > 0x7f && !utf8))
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

/* sl_ctl_attach_live - attach read-only to the segment of the daemon that runs */
int sl_ctl_attach_live(const char *name, struct sl_shm *shm)
{
    char err[256];

    if (sl_shm_attach(name, true, 1000, shm, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl: no daemon running: %s\n", err);
        return 1;
    }
    if (sl_shm_stale(shm)) {
        fprintf(stderr, "sluicectl: no daemon running: segment %s was left by pid %llu\n", name,
                (unsigned long long)shm->hdr->master_pid);
        sl_shm_detach(shm);
        return 1;
    }
    return 0;
}

/* sl_ctl_by_scope - qsort order of counters: by kind (the reservation order), then by key in
 * natural order (dom2 before dom19: strverscmp compares runs of digits as numbers) */
int sl_ctl_by_scope(const void *a, const void *b)
{
    const struct sl_counter_view *x = a, *y = b;
    int c;

    if (x->kind != y->kind)
        return (int)x->kind - (int)y->kind;
    c = strverscmp(x->name, y->name);
    return c != 0 ? c : strverscmp(x->name2, y->name2);
}

/* sl_ctl_scope_key - a counter's key as one string: "b1 example.com", or "*" for the server */
void sl_ctl_scope_key(const struct sl_counter_view *v, char *buf, size_t len)
{
    if (v->name[0] == '\0')
        snprintf(buf, len, "*");
    else if (v->name2[0] != '\0')
        snprintf(buf, len, "%s %s", v->name, v->name2);
    else
        snprintf(buf, len, "%s", v->name);
}

/* sl_ctl_workers_alive - owner records in use, less the master's own */
unsigned sl_ctl_workers_alive(const struct sl_shm *shm)
{
    unsigned n = 0;

    for (uint32_t i = 0; i < shm->hdr->owner_capacity; i++)
        if (sl_peek32(&shm->owners[i].state) == SL_OWNER_ALIVE &&
            sl_peek32(&shm->owners[i].pid) != (uint32_t)shm->hdr->master_pid)
            n++;
    return n;
}

/* sl_ctl_unexpected - name the argument a subcommand did not take */
void sl_ctl_unexpected(const char *sub, const char *arg)
{
    fprintf(stderr, "sluicectl: %s: unexpected argument %s%s\n", sub, arg,
            arg[0] == '-' ? " (an unknown option, or one missing its value)" : "");
}

/* sl_ctl_load_config - the config, or NULL with its errors on stderr */
struct sl_config *sl_ctl_load_config(const char *path)
{
    struct sl_diag diag = {0};
    struct sl_config *cfg = sl_config_load(path, &diag);

    for (size_t i = 0; cfg == NULL && i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.lines[i]);
    sl_diag_free(&diag);
    return cfg;
}

/* sl_ctl_fopen_regular - path for reading, only when it is a regular file reached without a
 * symbolic link at its end: a FIFO would hold the command for ever, a link would make root read
 * (and, for passwd, copy) a file the link's owner chose.  NULL with errno (ELOOP for a link,
 * EINVAL for anything but a regular file) */
FILE *sl_ctl_fopen_regular(const char *path)
{
    int fd = sl_open_regular(path, O_RDONLY);
    FILE *f;

    if (fd < 0)
        return NULL;
    if ((f = fdopen(fd, "r")) == NULL) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}
