/*
 * sl_fork.h - forks that never copy a lock another thread holds.
 *
 * The master forks its workers and listeners while threads of its own run beside its loop
 * (the cluster's renewals, a name's resolution, the start scan's read-ahead).  A fork copies
 * every lock in the state it is in, and the child has only the forking thread: a lock another
 * thread held at that instant (the allocator's, a library's) stays held in the child for
 * ever, and the child hangs at its first use (seen with the sanitizers' allocator, whose
 * locks fork does not reset).  So each of those threads marks the stretches in which it may
 * allocate or hold a lock (sl_fork_gate_enter/leave, several threads at once), and the master
 * forks only between them (sl_fork_quiet): when one is inside, the fork is put off for a
 * moment rather than waited for, since such a stretch may wait for Redis or a resolver.
 * Concurrency: any thread; a pthread rwlock (the threads' stretches share it, a fork takes it
 * alone).
 */
#ifndef SL_FORK_H
#define SL_FORK_H

#include <sys/types.h>

#define SL_FORK_RETRY_MS 2 /* a fork put off is tried again after this */

/* A helper thread enters a stretch in which it may allocate or hold a lock, and leaves it. */
void sl_fork_gate_enter(void);
void sl_fork_gate_leave(void);
/* fork() while no helper thread is inside a stretch; -1 with errno EBUSY when one is (try
 * again in SL_FORK_RETRY_MS), or fork's own -1 and errno. */
pid_t sl_fork_quiet(void);

#endif
