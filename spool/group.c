/*
 * group.c - group commit: one sync covers the new messages of every writer
 * that reached the same point before the sync began.
 *
 * A durable accept needs two syncs in order: the file's data (before the rename,
 * so that a crash can never leave a renamed file whose bytes are not on disk),
 * then the directory (the rename).  Writers that share a group (sl_spool_group_new,
 * a shared page made before they fork: the listener processes) go through both
 * as stages.  At each stage a writer takes a ticket, then the stage's lock;
 * whoever holds it and finds its ticket not yet covered reads the newest ticket,
 * syncs once and publishes that ticket as covered.  Writers that queued on the
 * lock meanwhile find theirs covered and return without a sync, so under load one
 * sync serves many sessions instead of one each.
 * The data stage syncs the whole file system (syncfs): one device flush for every
 * file written before it, where a fsync per file costs a flush each (on a file
 * system without a journal, a flush is most of an accept's time).  It also flushes
 * whatever else is dirty on that file system, which only costs time, never safety.
 * The directory stage is fsync of queue/.
 * Concurrency: any processes sharing the page.  A stage's lock is flock(2) on a
 * descriptor each call opens (tmp/ for the data stage, queue/ for the directory
 * stage), so a writer killed while holding it releases it with its descriptors
 * (a lock word in the page would stay taken forever).
 * A writer about to sync first waits, at most JOIN_WAIT_US, while other writers are
 * on their way to the same stage ("heading": writing their file, or renaming it):
 * they arrive within that time, and one sync then covers them too (PostgreSQL's
 * commit_delay, bounded and only when someone is on the way).  Each writer marks itself in an entry
 * of its own, claimed by pid; a writer killed in the middle leaves its mark, which
 * costs the next syncs their wait (never more) until whoever reaps it calls
 * sl_spool_group_forget.
 * Tickets only grow: taken by atomic increment once the write (or the rename) is
 * done; "synced" written only under the lock, from a value read under the lock.
 * Trust boundary: none; the page and the directories are ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "util/sl_atomic.h"
#include "util/sl_msg.h"
#include "spool_impl.h"

#define JOIN_WAIT_US  300 /* longest a sync waits for writers on their way */
#define JOIN_STEP_US  50
#define GROUP_WRITERS 8192 /* writer processes at once (the listeners' board has as many) */

struct writer {
    sl_atomic_u32 pid;
    sl_atomic_u32 heading; /* the stage (enum spool_group_stage) it is on its way to, or 0 */
    char tmp[SPOOL_GROUP_TMP_MAX]; /* its file in tmp/ while there (read once it is dead) */
};

struct stage {
    sl_atomic_u64 tickets; /* handed out: files written (data) or renamed (directory) */
    sl_atomic_u64 synced;  /* every ticket up to this one is durable */
    sl_atomic_u64 syncs;   /* syncs done (statistics) */
};

struct sl_spool_group {
    struct stage data;  /* files written in tmp/, synced with syncfs */
    struct stage dir;   /* files renamed into queue/, synced with fsync of queue/ */
    sl_atomic_u32 used; /* entries below this one were ever claimed: the scans stop here */
    struct writer w[GROUP_WRITERS];
};

static struct writer *me; /* this process's entry, claimed at its first write */

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

/* sl_spool_group_syncs - syncs the group made (both stages), and files it covered (for logs) */
uint64_t sl_spool_group_syncs(struct sl_spool_group *g, uint64_t *files)
{
    if (files != NULL)
        *files = sl_load64(&g->dir.tickets);
    return sl_stat_load64(&g->data.syncs) + sl_stat_load64(&g->dir.syncs);
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
    uint32_t pid = (uint32_t)getpid();

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
 * writing leaves tmp/ (never acknowledged, so never a message), its entry is free again */
void sl_spool_group_forget(struct sl_spool_group *g, const char *dir, pid_t pid)
{
    char path[4096];

    for (size_t i = 0; g != NULL && i < sl_load32(&g->used) && i < GROUP_WRITERS; i++)
        if (sl_load32(&g->w[i].pid) == (uint32_t)pid) {
            if (g->w[i].tmp[0] != '\0' &&
                spool_path(path, sizeof path, dir, SPOOL_TMP, g->w[i].tmp))
                unlink(path);
            g->w[i].tmp[0] = '\0';
            sl_store32(&g->w[i].heading, 0);
            sl_store32(&g->w[i].pid, 0);
        }
}

/* spool_group_tmp - name the file this writer has in tmp/ from now on (NULL: none) */
void spool_group_tmp(struct sl_spool_group *g, const char *name)
{
    struct writer *w = claim(g);

    if (w != NULL)
        strlcpy(w->tmp, name != NULL && strlen(name) < sizeof w->tmp ? name : "", sizeof w->tmp);
}

/* spool_group_heading - mark this writer as on its way to stage's sync (0: to none) */
void spool_group_heading(struct sl_spool_group *g, enum spool_group_stage stage)
{
    struct writer *w = claim(g);

    if (w != NULL)
        sl_store32(&w->heading, (uint32_t)stage);
}

/* anyone_heading - is another writer on its way to stage's sync (not yet ticketed)? */
static bool anyone_heading(struct sl_spool_group *g, enum spool_group_stage stage)
{
    uint32_t used = sl_load32(&g->used);

    for (size_t i = 0; i < used && i < GROUP_WRITERS; i++)
        if (sl_load32(&g->w[i].heading) == (uint32_t)stage && &g->w[i] != me)
            return true;
    return false;
}

/* join_wait - let writers about to reach stage join its coming sync */
static void join_wait(struct sl_spool_group *g, enum spool_group_stage stage)
{
    const struct timespec step = {.tv_nsec = JOIN_STEP_US * 1000};

    for (int waited = 0; waited < JOIN_WAIT_US && anyone_heading(g, stage); waited += JOIN_STEP_US)
        nanosleep(&step, NULL);
}

/* lock - flock that a signal does not cut short */
static int lock(int fd, int op)
{
    int rc;

    while ((rc = flock(fd, op)) < 0 && errno == EINTR)
        ;
    return rc;
}

/* stage_sync - the caller's step (a write, seen from dirpath's file system, or a rename
 * into dirpath) is durable when this returns 0; -1 with errno */
static int stage_sync(struct sl_spool_group *g, enum spool_group_stage which, struct stage *st,
                      const char *dirpath, int (*sync)(int))
{
    int fd = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    uint64_t ticket, upto;
    int rc = 0;

    if (fd < 0)
        return -1;
    ticket = sl_add64(&st->tickets, 1) + 1;
    spool_group_heading(g, 0); /* arrived: a sync starting now waits for it no longer */
    if (lock(fd, LOCK_EX) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (sl_load64(&st->synced) < ticket) {
        join_wait(g, which);
        upto = sl_load64(&st->tickets); /* every step counted here is done */
        if ((rc = sync(fd)) == 0) {
            sl_store64(&st->synced, upto);
            sl_stat_inc64(&st->syncs);
        }
    }
    int e = errno;
    close(fd); /* releases the lock */
    errno = e;
    return rc;
}

/* spool_group_sync_data - the caller's file, written in tmpdir, is on disk when this returns 0 */
int spool_group_sync_data(struct sl_spool_group *g, const char *tmpdir)
{
    return stage_sync(g, SPOOL_GROUP_DATA, &g->data, tmpdir, syncfs);
}

/* spool_group_sync_dir - the caller's rename into subdir is durable when this returns 0 */
int spool_group_sync_dir(struct sl_spool_group *g, const char *subdir)
{
    return stage_sync(g, SPOOL_GROUP_DIR, &g->dir, subdir, fsync);
}
