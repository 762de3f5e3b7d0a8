/*
 * msg.c - the three error levels and the allocation wrappers (see sl_msg.h).
 *
 * Lines go to stderr, which is the journal under systemd.  Each line is one
 * write(2), so lines of concurrent processes do not interleave.  When stderr
 * is the journal's stream ($JOURNAL_STREAM names its device and inode), each
 * line starts with the sd-daemon priority ("<4>" for a warning) so the journal
 * records the level; in a terminal or a file the lines stay plain text.
 * A daemon's process never waits for its reader (sl_msg_never_block): a journal that lags,
 * or a pipe nobody reads, would otherwise stop the master's loop, or a worker in the middle
 * of a session with its connection slots held, at its next line.  A line stderr cannot take
 * at once is dropped and counted, and the count is said in the first line that gets through.
 * O_NONBLOCK on stderr itself would change the description it shares with the shell and
 * whoever else holds it, so: the journal's stream is a socket, sent to with MSG_DONTWAIT; a
 * pipe or a FIFO is opened again (/proc/self/fd/2) as a non-blocking description of the
 * daemon's own.  The master opens it at its start, before its privileges' drop (a worker,
 * running as `user`, may not open root's pipe), at a number (OWN_FD_MIN) clear of the ones a
 * child renumbers, and its workers and listener processes keep it (sl_msg_close_from).  The
 * pipes' RWF_NOWAIT would need no copy, but Linux has it only since 6.4.  A line (at most 2048
 * bytes) goes whole or not at all through either way.  A file never waits for a reader, and a
 * terminal is written as before (its reader is the operator at it).  A fatal line waits for
 * room, for a few seconds (FATAL_WAIT_MS): it is the one line an operator must see, but a
 * reader that never reads must not keep a dying process alive.
 * Global state: the program name, the lowest level shown, whether stderr is the journal, and
 * how this process writes to it, set at start (and again in each worker and listener process,
 * by sl_msg_init and sl_msg_never_block); the count of lines dropped (a process that ends
 * before a line gets through takes its count with it).
 * Concurrency: any thread may log (the master's cluster thread does); each line is one write,
 * and the count of lines dropped is atomic.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <bsd/string.h>

#include "util/sl_atomic.h"
#include "util/sl_clock.h"
#include "util/sl_msg.h"

#define OWN_FD_MIN    100  /* the own description's lowest number: clear of a child's dup2s */
#define FATAL_WAIT_MS 5000 /* how long a fatal line waits for a reader that does not read */

static char progname[64] = "sluice";
static sl_atomic_u32 lowest = SL_MSG_INFO; /* an enum sl_msg_level; a reload changes it */
static bool to_journal;                    /* stderr is the journal: lines carry "<N>" */

/* How a line goes to stderr (sl_msg_never_block). */
static enum { OUT_WAIT, OUT_SOCKET, OUT_OWN } out_mode = OUT_WAIT;
static int own_fd = -1;       /* the daemon's non-blocking description of stderr (a pipe), or -1 */
static sl_atomic_u64 dropped; /* lines dropped since the last one written */
static unsigned warned_no_copy; /* said that no copy could be made (once per daemon) */

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
    out_mode = OUT_WAIT; /* own_fd stays: a child keeps its parent's (sl_msg_never_block) */
    sl_store64(&dropped, 0);
}

/* sl_msg_set_level - hide lines below this level */
void sl_msg_set_level(enum sl_msg_level l)
{
    sl_store32(&lowest, (uint32_t)l);
}

/* same_file - do descriptors a and b name one file */
static bool same_file(int a, int b)
{
    struct stat x, y;

    return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/* own_fd_min - where the own description goes: OWN_FD_MIN, or half the limit when that is
 * lower (RLIMIT_NOFILE of 200 or less): still clear of the few low numbers a child dup2s
 * onto, with room above for a descriptor inherited up there */
static int own_fd_min(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / 2 < OWN_FD_MIN)
        return rl.rlim_cur / 2 > 4 ? (int)(rl.rlim_cur / 2) : 4;
    return OWN_FD_MIN;
}

/* own_copy - stderr opened again as a non-blocking description, at own_fd_min or above; -1
 * when it may not be (another user's pipe, no descriptor free up there) */
static int own_copy(void)
{
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC), high;

    if (fd < 0)
        return -1;
    high = fcntl(fd, F_DUPFD_CLOEXEC, own_fd_min());
    close(fd);
    return high;
}

/* sl_msg_never_block - a line stderr cannot take now is dropped (and counted), not waited for */
void sl_msg_never_block(void)
{
    struct stat st;

    if (fstat(STDERR_FILENO, &st) < 0)
        return;
    if (S_ISSOCK(st.st_mode))
        out_mode = OUT_SOCKET;
    else if (S_ISFIFO(st.st_mode)) {
        if (own_fd < 0 || !same_file(own_fd, STDERR_FILENO)) /* none from the master */
            own_fd = own_copy();
        if (own_fd >= 0)
            out_mode = OUT_OWN;
        else if (!warned_no_copy++) /* once: a child inherits the count */
            sl_msg_warn("stderr is a pipe this process cannot open again without blocking "
                        "(%s): a reader that stops reading stops it too",
                        strerror(errno));
    }
}

/* sl_msg_close_from - a forked child closes every descriptor from `from` up, but the copy of
 * stderr it writes its lines through */
void sl_msg_close_from(unsigned from)
{
    if (own_fd < 0 || (unsigned)own_fd < from) {
        close_range(from, ~0U, 0);
        return;
    }
    if ((unsigned)own_fd > from)
        close_range(from, (unsigned)own_fd - 1, 0);
    close_range((unsigned)own_fd + 1, ~0U, 0);
}

/* try_put - one whole line out without waiting (never_block's modes) */
static ssize_t try_put(const char *line, size_t n)
{
    if (out_mode == OUT_SOCKET)
        return send(STDERR_FILENO, line, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    return write(own_fd, line, n);
}

/* put - one whole line out, without waiting unless asked to (then FATAL_WAIT_MS at most: a
 * reader that never reads must not keep a dying process alive); false when it did not go */
static bool put(const char *line, size_t n, bool wait)
{
    struct pollfd p = {.fd = out_mode == OUT_SOCKET ? STDERR_FILENO : own_fd, .events = POLLOUT};
    uint64_t end, now;
    ssize_t w;

    if (out_mode == OUT_WAIT)
        return write(STDERR_FILENO, line, n) == (ssize_t)n;
    end = sl_clock_us() + FATAL_WAIT_MS * 1000ull;
    w = try_put(line, n);
    /* a signal, or another writer that took the room first, does not end the wait */
    while (wait && w < 0 && (errno == EAGAIN || errno == EINTR) && (now = sl_clock_us()) < end) {
        poll(&p, 1, (int)((end - now) / 1000) + 1);
        w = try_put(line, n);
    }
    return w == (ssize_t)n;
}

/* say_dropped - before the next line that gets through: how many did not */
static void say_dropped(void)
{
    uint64_t lost = sl_xchg64(&dropped, 0); /* this thread says these; another's go on counting */
    char line[256];
    int n;

    if (lost == 0)
        return;
    n = snprintf(line, sizeof line,
                 "%s%s[%ld]: %s: %llu log lines dropped: stderr did not take them\n",
                 to_journal ? level_prefix[SL_MSG_WARN] : "", progname, (long)getpid(),
                 level_name[SL_MSG_WARN], (unsigned long long)lost);
    if (n < 0 || (size_t)n >= sizeof line || !put(line, (size_t)n, false))
        sl_add64(&dropped, lost); /* not said: still to say */
}

/* emit - format one line and write it in one go */
static void emit(enum sl_msg_level l, const char *fmt, va_list ap)
{
    char line[2048];
    int saved = errno;
    int n;

    if ((uint32_t)l < sl_load32(&lowest))
        return;
    n = snprintf(line, sizeof line, "%s%s[%ld]: %s: ", to_journal ? level_prefix[l] : "", progname,
                 (long)getpid(), level_name[l]);
    if (n < 0)
        return;
    if ((size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    n = (int)strnlen(line, sizeof line - 2);
    line[n++] = '\n';
    say_dropped(); /* when it cannot go, nor can this line, but a fatal one */
    /* nowhere to report it now: the count goes out before a later line */
    if ((sl_load64(&dropped) > 0 && l < SL_MSG_FATAL) || !put(line, (size_t)n, l >= SL_MSG_FATAL))
        sl_add64(&dropped, 1);
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
