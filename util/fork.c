/*
 * fork.c - forks between the helper threads' stretches (sl_fork.h).
 *
 * Concurrency: the gate is a process-wide rwlock that prefers writers: helper threads hold it
 * shared; a fork waits for it alone at most FORK_WAIT_US (new stretches wait meanwhile, so a
 * thread that reads file after file cannot starve the forks), holds it through the fork, and
 * then the parent lets it go while the child makes it new (the child's copy names a writer,
 * the forking thread, by a thread id the child no longer has).
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>

#include "util/sl_fork.h"
#include "util/sl_msg.h"

#define FORK_WAIT_US 2000 /* a fork waits this long for the stretches in progress */

static pthread_rwlock_t gate = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

/* sl_fork_gate_enter - a helper thread's stretch begins (after a fork waiting, if any) */
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

/* sl_fork_begin - the gate alone, or false after FORK_WAIT_US */
bool sl_fork_begin(void)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += FORK_WAIT_US * 1000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return pthread_rwlock_clockwrlock(&gate, CLOCK_MONOTONIC, &until) == 0;
}

/* sl_fork_end - the gate open again: let go in the parent, made new in the child */
void sl_fork_end(bool child)
{
    static const pthread_rwlock_t fresh = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

    if (child)
        memcpy(&gate, &fresh, sizeof gate);
    else
        pthread_rwlock_unlock(&gate);
}

/* The start of a thread made by sl_fork_thread_create. */
struct start {
    void *(*fn)(void *);
    void *arg;
    sem_t running;
};

/* trampoline - the new thread: say it runs, then run fn */
static void *trampoline(void *p)
{
    struct start *s = p;
    void *(*fn)(void *) = s->fn;
    void *arg = s->arg;

    sem_post(&s->running); /* s is the creator's: not touched after this */
    return fn(arg);
}

/* sl_fork_thread_create - a thread, returned once it runs */
int sl_fork_thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    struct start s = {.fn = fn, .arg = arg};
    int e;

    if (sem_init(&s.running, 0, 0) != 0)
        return errno;
    e = pthread_create(t, attr, trampoline, &s);
    if (e == 0)
        while (sem_wait(&s.running) != 0 && errno == EINTR)
            continue;
    sem_destroy(&s.running);
    return e;
}
