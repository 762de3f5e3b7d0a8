/*
 * msg.c - the three error levels and the allocation wrappers (see sl_msg.h).
 *
 * Lines go to stderr, which is the journal under systemd.  Each line is one
 * write(2), so lines of concurrent processes do not interleave.  When stderr
 * is the journal's stream ($JOURNAL_STREAM names its device and inode), each
 * line starts with the sd-daemon priority ("<4>" for a warning) so the journal
 * records the level; in a terminal or a file the lines stay plain text.
 * Global state: the program name, the lowest level shown and whether stderr is
 * the journal, set at start (and again in each worker, by sl_msg_init).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <bsd/string.h>

#include "util/sl_msg.h"

static char progname[64] = "sluice";
static enum sl_msg_level lowest = SL_MSG_INFO;
static bool to_journal; /* stderr is the journal: lines carry "<N>" */

static const char *const level_name[] = {
    [SL_MSG_DEBUG] = "debug", [SL_MSG_INFO] = "info",   [SL_MSG_WARN] = "warning",
    [SL_MSG_FATAL] = "fatal", [SL_MSG_PANIC] = "panic",
};

/* The journal's priority of each level (sd-daemon.h). */
static const char *const level_prefix[] = {
    [SL_MSG_DEBUG] = SD_DEBUG, [SL_MSG_INFO] = SD_INFO,  [SL_MSG_WARN] = SD_WARNING,
    [SL_MSG_FATAL] = SD_ERR,   [SL_MSG_PANIC] = SD_CRIT,
};

/* stderr_is_journal - $JOURNAL_STREAM ("DEV:INODE") names the file stderr is */
static bool stderr_is_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    /* systemd sets it for a service whose stderr it connected to the journal; a
     * child whose stderr was redirected inherits it, hence the comparison. */
    if (env == NULL || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
        return false;
    if (fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* sl_msg_init - name the process in every line it logs; look where stderr goes */
void sl_msg_init(const char *name)
{
    strlcpy(progname, name, sizeof progname);
    to_journal = stderr_is_journal();
}

/* sl_msg_set_level - hide lines below this level */
void sl_msg_set_level(enum sl_msg_level l)
{
    lowest = l;
}

/* emit - format one line and write it in one go */
static void emit(enum sl_msg_level l, const char *fmt, va_list ap)
{
    char line[2048];
    int saved = errno;
    int n;

    if (l < lowest)
        return;
    n = snprintf(line, sizeof line, "%s%s[%ld]: %s: ", to_journal ? level_prefix[l] : "", progname,
                 (long)getpid(), level_name[l]);
    if (n < 0)
        return;
    if ((size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    n = (int)strnlen(line, sizeof line - 2);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* Nowhere left to report it. */
    }
    errno = saved;
}

#define SL_MSG_FN(fn, level)                                                                       \
    void fn(const char *fmt, ...)                                                                  \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        emit(level, fmt, ap);                                                                      \
        va_end(ap);                                                                                \
    }
SL_MSG_FN(sl_msg_debug, SL_MSG_DEBUG)
SL_MSG_FN(sl_msg_info, SL_MSG_INFO)
SL_MSG_FN(sl_msg_warn, SL_MSG_WARN)

/* sl_msg_fatal - the environment or config is wrong: say so and exit 1 */
void sl_msg_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(SL_MSG_FATAL, fmt, ap);
    va_end(ap);
    exit(1);
}

/* sl_msg_panic - our own invariant broke: say so and dump core */
void sl_msg_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(SL_MSG_PANIC, fmt, ap);
    va_end(ap);
    abort();
}

void *sl_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        sl_msg_fatal("out of memory (%zu bytes)", n);
    return p;
}

void *sl_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        sl_msg_fatal("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *sl_realloc(void *old, size_t n)
{
    void *p = realloc(old, n ? n : 1);
    if (p == NULL)
        sl_msg_fatal("out of memory (%zu bytes)", n);
    return p;
}

char *sl_strdup(const char *s)
{
    return sl_strndup(s, strlen(s));
}

char *sl_strndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        sl_msg_fatal("out of memory (%zu bytes)", n);
    return p;
}
