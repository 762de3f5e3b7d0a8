/*
 * group.c - group commit: one sync covers the new messages of every writer
 * that reached the same point before the sync began.
 *
 * A writer writes its file in tmp/ (no fsync), renames it into queue/, then
 * asks for the group's sync: one syncfs of the spool's file system, which
 * writes every dirty file's data and commits the metadata (the renames) of
 * every writer that got there before it.  One sync per acknowledged batch, not
 * the two of spool_commit (the file's data, then its directory): each is a
 * device flush and a round of the file system's journal.
 * The order a lone writer keeps (data durable before the name) matters only
 * for a crash before the sync returns, and then the message was never
 * acknowledged: its file may come back short or empty, which the reader takes
 * for damaged and sets aside (quarantine), or whole, and is delivered once more
 * than the client asked (it will send it again): at least once, never lost.
 * At the sync a writer takes a ticket, then tries the lock; whoever gets it and
 * finds its ticket not yet covered reads the newest ticket, syncs once,
 * publishes that ticket as covered and wakes every waiter.  A writer that finds
 * the lock taken sleeps on a word of the page (a futex) until a sync ends, then
 * looks again: covered, it returns without a sync; if not, one of the woken
 * takes the lock for the next sync.  So under load one sync serves many
 * sessions, and the waiters wake at once rather than one by one through the
 * lock.  syncfs also flushes whatever else is dirty on that file system, which
 * only costs time, never safety.
 * A sync that fails fails every writer it covered (the "failed" mark): none of
 * them may say 250.  Each process syncs on a descriptor of queue/ it opened
 * before its first write, because syncfs reports only the write-back errors
 * seen since its descriptor was opened.  A writer names its message in its
 * entry from before the rename until the master was told (sl_spool_notify,
 * after the sync): killed in between, its whole message is in queue/, and the
 * master takes it up when it reaps the writer (sl_spool_group_forget).
 * Concurrency: any processes sharing the page.  The lock is flock(2) on that
 * descriptor (each process has its own), so a writer killed while holding it
 * releases it with its descriptors (a lock word in the page would stay taken
 * forever); a waiter looks again every WAIT_POLL_MS even unwoken, for the sync
 * of a writer killed in it never ends with a wake-up.
 * A writer about to sync first waits, at most JOIN_WAIT_US, while other writers are
 * on their way ("heading": writing their file, or renaming it): they arrive within
 * that time, and one sync then covers them too (PostgreSQL's commit_delay, bounded
 * and only when someone is on the way).  Each writer marks itself in an entry of its
 * own, claimed by pid; a writer killed in the middle leaves its mark, which costs the
 * next syncs their wait (never more) until whoever reaps it calls
 * sl_spool_group_forget.
 * Tickets only grow: taken by atomic increment once the rename is done; "synced"
 * written only under the lock, from a value read under the lock.
 * Trust boundary: none; the page and the directories are ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "util/sl_atomic.h"
#include "util/sl_msg.h"
#include "util/sl_pid.h"
#include "spool_impl.h"

#define JOIN_WAIT_US  300 /* longest a sync waits for writers on their way */
#define JOIN_STEP_US  50
#define WAIT_POLL_MS  10   /* a waiter looks again this often even unwoken (a syncer killed) */
#define GROUP_WRITERS 8192 /* writer processes at once (the listeners' board has as many) */

struct writer {
    sl_atomic_u32 pid;
    sl_atomic_u32 heading;            /* 1: on its way to the sync (writing, renaming); 0: not */
    char tmp[SPOOL_GROUP_TMP_MAX];    /* its file in tmp/ while there (read once it is dead) */
    char queued[SL_SPOOL_ID_LEN + 1]; /* its message renamed into queue/, not yet synced */
};

struct stage {
    sl_atomic_u64 tickets; /* handed out: files renamed into queue/ */
    sl_atomic_u64 synced;  /* every ticket up to this one is durable */
    sl_atomic_u64 syncs;   /* syncs done (statistics) */
    sl_atomic_u64 failed;  /* a sync that failed covered every ticket up to this one */
    sl_atomic_u32 done;    /* bumped after each sync: the word waiters sleep on (futex) */
};

struct sl_spool_group {
    struct stage commit; /* files renamed into queue/, synced with syncfs */
    sl_atomic_u32 used;  /* entries below this one were ever claimed: the scans stop here */
    struct writer w[GROUP_WRITERS];
};

static struct writer *me; /* this process's entry, claimed at its first write */
static int sync_fd = -1;  /* this process's descriptor of queue/, opened before its first
                           * write: syncfs reports a write-back error seen since it was
                           * opened, so a sync on a descriptor opened later could miss
                           * the failure of an earlier writer's data */
static pid_t sync_pid;    /* ... of this process (a child opens its own) */

/* sl_spool_group_new - a group in a shared anonymous page, for the processes forked after */
struct sl_spool_group *sl_spool_group_new(void)
{
    void *p = mmap(NULL, sizeof(struct sl_spool_group), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        sl_msg_fatal("group commit page: %s", strerror(errno));
    memset(p, 0, sizeof(struct sl_spool_group));
    return p;
}

/* sl_spool_group_syncs - syncs the group made, and files handed to it (for the stop's log and
 * the metrics) */
uint64_t sl_spool_group_syncs(struct sl_spool_group *g, uint64_t *files)
{
    if (files != NULL)
        *files = sl_load64(&g->commit.tickets);
    return sl_stat_load64(&g->commit.syncs);
}

/* raise_used - entries up to n are in use (a scan of 8192 entries at every sync cost more
 * than the sync's own work) */
static void raise_used(struct sl_spool_group *g, uint32_t n)
{
    uint32_t seen = sl_load32(&g->used);

    while (seen < n && !sl_cas32(&g->used, &seen, n))
        ;
}

/* claim - this process's writer entry (a free one, taken by pid); NULL when all are taken */
static struct writer *claim(struct sl_spool_group *g)
{
    uint32_t pid = (uint32_t)sl_pid();

    if (me != NULL && sl_load32(&me->pid) == pid)
        return me;
    for (size_t i = 0; i < GROUP_WRITERS; i++) {
        uint32_t free_pid = 0;
        if (sl_load32(&g->w[i].pid) == pid || sl_cas32(&g->w[i].pid, &free_pid, pid)) {
            raise_used(g, (uint32_t)i + 1);
            return me = &g->w[i];
        }
    }
    return NULL; /* more writers than entries: this one is simply not waited for */
}

/* sl_spool_group_forget - a writer process of spool dir is gone (reaped): the file it was
 * writing leaves tmp/ (never acknowledged, so never a message), its entry is free again.  A
 * message it had renamed into queue/ but not yet announced is whole there: its id goes to
 * queued (true returned), for the caller to take it up as if the writer had said so (the
 * client may send it again: at least once) */
bool sl_spool_group_forget(struct sl_spool_group *g, const char *dir, pid_t pid,
                           char queued[SL_SPOOL_ID_LEN + 1])
{
    char path[4096];
    bool had = false;

    queued[0] = '\0';
    for (size_t i = 0; g != NULL && i < sl_load32(&g->used) && i < GROUP_WRITERS; i++)
        if (sl_load32(&g->w[i].pid) == (uint32_t)pid) {
            if (g->w[i].tmp[0] != '\0' &&
                spool_path(path, sizeof path, dir, SPOOL_TMP, g->w[i].tmp))
                unlink(path);
            if (g->w[i].queued[0] != '\0') {
                strlcpy(queued, g->w[i].queued, SL_SPOOL_ID_LEN + 1);
                had = true;
            }
            g->w[i].tmp[0] = g->w[i].queued[0] = '\0';
            sl_store32(&g->w[i].heading, 0);
            sl_store32(&g->w[i].pid, 0);
        }
    return had;
}

/* spool_group_tmp - name the file this writer has in tmp/ from now on (NULL: none) */
void spool_group_tmp(struct sl_spool_group *g, const char *name)
{
    struct writer *w = claim(g);

    if (w != NULL)
        strlcpy(w->tmp, name != NULL && strlen(name) < sizeof w->tmp ? name : "", sizeof w->tmp);
}

/* spool_group_queued - name the message this writer is renaming into queue/, until the
 * master was told of it (NULL: none) */
void spool_group_queued(struct sl_spool_group *g, const char *id)
{
    struct writer *w = claim(g);

    if (w != NULL)
        strlcpy(w->queued, id != NULL && strlen(id) < sizeof w->queued ? id : "", sizeof w->queued);
}

/* spool_group_heading - mark this writer as on its way to the sync, or not */
void spool_group_heading(struct sl_spool_group *g, bool on_way)
{
    struct writer *w = claim(g);

    if (w != NULL)
        sl_store32(&w->heading, on_way ? 1 : 0);
}

/* anyone_heading - is another writer on its way to the sync (not yet ticketed)? */
static bool anyone_heading(struct sl_spool_group *g)
{
    uint32_t used = sl_load32(&g->used);

    for (size_t i = 0; i < used && i < GROUP_WRITERS; i++)
        if (sl_load32(&g->w[i].heading) != 0 && &g->w[i] != me)
            return true;
    return false;
}

/* join_wait - let writers about to reach the sync join it */
static void join_wait(struct sl_spool_group *g)
{
    const struct timespec step = {.tv_nsec = JOIN_STEP_US * 1000};

    for (int waited = 0; waited < JOIN_WAIT_US && anyone_heading(g); waited += JOIN_STEP_US)
        nanosleep(&step, NULL);
}

/* sleep_until_done - wait until the syncs-done word moves from seen (a sync ended), or
 * WAIT_POLL_MS: a syncer killed in its sync never wakes anyone, and its lock is free again */
static void sleep_until_done(struct stage *st, uint32_t seen)
{
    const struct timespec poll = {.tv_nsec = WAIT_POLL_MS * 1000000L};

    (void)syscall(SYS_futex, &st->done, FUTEX_WAIT, seen, &poll, NULL, 0);
}

/* wake_all - every writer asleep on the syncs-done word looks again */
static void wake_all(struct stage *st)
{
    atomic_fetch_add(&st->done, 1);
    (void)syscall(SYS_futex, &st->done, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* spool_group_fd - this process's descriptor of dirpath (queue/), for the lock and the
 * sync; opened once, at its first commit, before its first write */
int spool_group_fd(const char *dirpath)
{
    if (sync_fd >= 0 && sync_pid == sl_pid())
        return sync_fd;
    sync_fd = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    sync_pid = sl_pid();
    return sync_fd;
}

/* spool_group_sync - the caller's file, renamed into dirpath, and its data are durable when
 * this returns 0; -1 with errno.  Whoever gets the lock syncs for everyone that has a ticket
 * by then; the others sleep until a sync ends (not in a queue on the lock, where each would
 * wake in turn only to find itself covered and pass the lock on), then look again. */
int spool_group_sync(struct sl_spool_group *g, const char *dirpath)
{
    struct stage *st = &g->commit;
    int fd = spool_group_fd(dirpath);
    uint64_t ticket;
    int rc = 0, e = 0;

    if (fd < 0)
        return -1;
    ticket = sl_add64(&st->tickets, 1) + 1;
    spool_group_heading(g, false); /* arrived: a sync starting now waits for it no longer */
    for (;;) {
        uint32_t seen = sl_load32(&st->done);
        if (sl_load64(&st->failed) >= ticket) { /* first: a later sync may cover it too */
            rc = -1;
            e = EIO;
            break;
        }
        if (sl_load64(&st->synced) >= ticket)
            break;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            if (errno != EWOULDBLOCK && errno != EINTR) {
                rc = -1;
                e = errno;
                break;
            }
            sleep_until_done(st, seen);
            continue;
        }
        if (sl_load64(&st->synced) < ticket && sl_load64(&st->failed) < ticket) {
            join_wait(g);
            uint64_t upto = sl_load64(&st->tickets); /* every rename counted here is done */
            if ((rc = syncfs(fd)) == 0) {
                sl_store64(&st->synced, upto);
                sl_stat_inc64(&st->syncs);
            } else {
                e = errno;
                sl_store64(&st->failed, upto); /* everyone it covered fails with it */
            }
        }
        flock(fd, LOCK_UN);
        wake_all(st);
        if (rc == 0)
            continue; /* look again: covered, or (a sync of someone else's) not yet */
        break;
    }
    errno = e;
    return rc;
}
