/*
 * pid.c - sl_pid: getpid() once per process.
 *
 * The pid is kept after the first call and forgotten in the child of each fork() by a
 * pthread_atfork handler, registered once (pthread_once).  Every process of sluice is made
 * by fork() (never vfork or a raw clone, which would skip the handler).
 * Concurrency: the handler runs in the child before fork() returns there; the value is an
 * atomic, so threads of one process that race on the first call store the same pid.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "util/sl_pid.h"

static _Atomic pid_t known; /* 0: not read yet in this process */
static pthread_once_t hooked = PTHREAD_ONCE_INIT;

/* forget - in a fork()'s child: the parent's pid is not ours */
static void forget(void)
{
    atomic_store_explicit(&known, 0, memory_order_relaxed);
}

/* hook - forget at every fork from now on */
static void hook(void)
{
    (void)pthread_atfork(NULL, NULL, forget);
}

pid_t sl_pid(void)
{
    pid_t p = atomic_load_explicit(&known, memory_order_relaxed);

    if (p == 0) {
        pthread_once(&hooked, hook);
        p = getpid();
        atomic_store_explicit(&known, p, memory_order_relaxed);
    }
    return p;
}
