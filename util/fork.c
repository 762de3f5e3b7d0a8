/*
 * fork.c - forks between the helper threads' stretches (sl_fork.h).
 *
 * Concurrency: the gate is a process-wide rwlock: helper threads hold it shared; a fork raises
 * fork_wanted, so that no stretch starts, tries for the lock alone for at most FORK_WAIT_US,
 * holds it through the fork, and then the parent lets it go while the child makes it new (the
 * child's copy names a writer, the forking thread, by a thread id the child no longer has).
 * Not glibc's writer-preferring kind with a timed wait: a writer that timed out there left a
 * reader asleep for ever (seen in test_fork).
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>

#include "util/sl_atomic.h"
#include "util/sl_clock.h"
#include "util/sl_fork.h"
#include "util/sl_msg.h"

#define FORK_WAIT_US                                                                               \
    500 /* a fork waits this long for the stretches in progress: a file read;                      \
            a Redis call outlasts it, and the fork is tried again later */
#define YIELD_NS                                                                                   \
    20000 /* a stretch about to start waits in naps of this while a fork is                        \
             wanted */

static pthread_rwlock_t gate = PTHREAD_RWLOCK_INITIALIZER;
static sl_atomic_u32 fork_wanted; /* a fork waits for the gate: no stretch starts */

/* sl_fork_gate_enter - a helper thread's stretch begins, once no fork waits for the gate */
void sl_fork_gate_enter(void)
{
    const struct timespec nap = {.tv_nsec = YIELD_NS};
    int e;

    for (;;) {
        while (sl_load32(&fork_wanted))
            nanosleep(&nap, NULL);
        if ((e = pthread_rwlock_rdlock(&gate)) != 0)
            sl_msg_fatal("fork gate: %s", strerror(e));
        if (!sl_load32(&fork_wanted))
            return;
        pthread_rwlock_unlock(&gate); /* a fork came meanwhile: it goes first */
    }
}

/* sl_fork_gate_leave - the stretch is over */
void sl_fork_gate_leave(void)
{
    pthread_rwlock_unlock(&gate);
}

/* sl_fork_begin - the gate alone, or false after FORK_WAIT_US (no stretch starts while it
 * waits, so a thread that reads file after file cannot starve the forks) */
bool sl_fork_begin(void)
{
    const struct timespec nap = {.tv_nsec = YIELD_NS};
    uint64_t until = sl_clock_us() + FORK_WAIT_US;

    sl_store32(&fork_wanted, 1);
    while (pthread_rwlock_trywrlock(&gate) != 0) {
        if (sl_clock_us() >= until) {
            sl_store32(&fork_wanted, 0);
            return false;
        }
        nanosleep(&nap, NULL);
    }
    return true;
}

/* sl_fork_end - the gate open again: let go in the parent, made new in the child */
void sl_fork_end(bool child)
{
    static const pthread_rwlock_t fresh = PTHREAD_RWLOCK_INITIALIZER;

    if (child)
        memcpy(&gate, &fresh, sizeof gate);
    else
        pthread_rwlock_unlock(&gate);
    sl_store32(&fork_wanted, 0);
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
