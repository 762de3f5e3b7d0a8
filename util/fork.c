/*
 * fork.c - forks between the helper threads' stretches (sl_fork.h).
 *
 * Concurrency: the gate is a process-wide rwlock: helper threads hold it shared, a fork holds
 * it alone for the fork itself, then both parent and child let it go (the child's copy is held
 * by the thread it was forked from, which is the child's only thread).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "util/sl_fork.h"
#include "util/sl_msg.h"

static pthread_rwlock_t gate = PTHREAD_RWLOCK_INITIALIZER;

/* sl_fork_gate_enter - a helper thread's stretch begins (a fork in progress is waited for:
 * it takes microseconds) */
void sl_fork_gate_enter(void)
{
    int e = pthread_rwlock_rdlock(&gate);

    if (e != 0)
        sl_msg_fatal("fork gate: %s", strerror(e));
}

/* sl_fork_gate_leave - the stretch is over */
void sl_fork_gate_leave(void)
{
    pthread_rwlock_unlock(&gate);
}

/* sl_fork_quiet - fork when no helper thread is inside a stretch */
pid_t sl_fork_quiet(void)
{
    pid_t pid;
    int e;

    if (pthread_rwlock_trywrlock(&gate) != 0) {
        errno = EBUSY;
        return -1;
    }
    pid = fork();
    e = errno;
    pthread_rwlock_unlock(&gate);
    errno = e;
    return pid;
}
