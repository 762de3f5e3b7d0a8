/*
 * group.c - group commit: one fsync of queue/ covers the new messages of
 * every writer that renamed its file before the sync began.
 *
 * A durable accept costs two syncs, the file's and the directory's (the
 * rename).  Writers that share a group (sl_spool_group_new, a shared page
 * made before they fork: the listener processes) take a ticket after their
 * rename, then the group's lock; whoever holds it and finds its ticket not yet
 * covered reads the newest ticket, syncs the directory once and publishes
 * that ticket as covered.  Writers that queued on the lock meanwhile find
 * theirs covered and return without a sync, so under load one directory sync
 * serves many sessions instead of one each.
 * Concurrency: any processes sharing the page.  The lock is flock(2) on a
 * descriptor each call opens, so a writer killed while holding it releases it
 * with its descriptors (a lock word in the page would stay taken forever).
 * A writer about to sync first waits, at most JOIN_WAIT_US, while other writers are
 * between the start of their write and their rename ("writing"): their files' own syncs
 * end within that time, and one directory sync then covers them too (PostgreSQL's
 * commit_delay, bounded and only when someone is on the way).  Each writer marks itself
 * in an entry of its own, claimed by pid; a writer killed in the middle leaves its mark,
 * which costs the next syncs their wait (never more) until whoever reaps it calls
 * sl_spool_group_forget.
 * Tickets only grow: "renamed" by atomic increment after the rename,
 * "synced" written only under the lock, from a value read under the lock.
 * Trust boundary: none; the page and the directory are ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "util/sl_atomic.h"
#include "util/sl_msg.h"
#include "spool_impl.h"

#define JOIN_WAIT_US  300 /* longest a sync waits for writers on their way */
#define JOIN_STEP_US  50
#define GROUP_WRITERS 8192 /* writer processes at once (the listeners' board has as many) */

struct writer {
    sl_atomic_u32 pid;
    sl_atomic_u32 writing; /* between its write's start and its rename */
};

struct sl_spool_group {
    sl_atomic_u64 renamed; /* tickets handed out: files renamed into queue/ */
    sl_atomic_u64 synced;  /* every ticket up to this one is durable */
    sl_atomic_u64 syncs;   /* directory syncs done (statistics) */
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

/* sl_spool_group_syncs - directory syncs the group made, and files it covered (for logs) */
uint64_t sl_spool_group_syncs(struct sl_spool_group *g, uint64_t *files)
{
    if (files != NULL)
        *files = sl_load64(&g->renamed);
    return sl_stat_load64(&g->syncs);
}

/* claim - this process's writer entry (a free one, taken by pid); NULL when all are taken */
static struct writer *claim(struct sl_spool_group *g)
{
    uint32_t pid = (uint32_t)getpid();

    if (me != NULL && sl_load32(&me->pid) == pid)
        return me;
    for (size_t i = 0; i < GROUP_WRITERS; i++) {
        uint32_t free_pid = 0;
        if (sl_load32(&g->w[i].pid) == pid || sl_cas32(&g->w[i].pid, &free_pid, pid))
            return me = &g->w[i];
    }
    return NULL; /* more writers than entries: this one is simply not waited for */
}

/* sl_spool_group_forget - a writer process is gone (reaped): its entry is free again */
void sl_spool_group_forget(struct sl_spool_group *g, pid_t pid)
{
    for (size_t i = 0; g != NULL && i < GROUP_WRITERS; i++)
        if (sl_load32(&g->w[i].pid) == (uint32_t)pid) {
            sl_store32(&g->w[i].writing, 0);
            sl_store32(&g->w[i].pid, 0);
        }
}

/* spool_group_writing - mark this writer as on its way to a rename, or not */
void spool_group_writing(struct sl_spool_group *g, bool start)
{
    struct writer *w = g != NULL ? claim(g) : NULL;

    if (w != NULL)
        sl_store32(&w->writing, start ? 1 : 0);
}

/* anyone_writing - is another writer between its write and its rename? */
static bool anyone_writing(struct sl_spool_group *g)
{
    for (size_t i = 0; i < GROUP_WRITERS; i++)
        if (sl_load32(&g->w[i].writing) != 0 && &g->w[i] != me)
            return true;
    return false;
}

/* join_wait - let writers that are about to rename join the coming sync */
static void join_wait(struct sl_spool_group *g)
{
    const struct timespec step = {.tv_nsec = JOIN_STEP_US * 1000};

    for (int waited = 0; waited < JOIN_WAIT_US && anyone_writing(g); waited += JOIN_STEP_US)
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

/* spool_group_sync - the caller's rename into subdir is durable when this returns 0 */
int spool_group_sync(struct sl_spool_group *g, const char *subdir)
{
    int fd = open(subdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    uint64_t ticket, upto;
    int rc = 0;

    if (fd < 0)
        return -1;
    ticket = sl_add64(&g->renamed, 1) + 1;
    if (lock(fd, LOCK_EX) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (sl_load64(&g->synced) < ticket) {
        join_wait(g);
        upto = sl_load64(&g->renamed); /* every rename counted here is in the directory */
        if ((rc = fsync(fd)) == 0) {
            sl_store64(&g->synced, upto);
            sl_stat_inc64(&g->syncs);
        }
    }
    int e = errno;
    close(fd); /* releases the lock */
    errno = e;
    return rc;
}
