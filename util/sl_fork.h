/*
 * sl_fork.h - forks that never copy a lock another thread holds.
 *
 * The master forks its workers and listeners while threads of its own run beside its loop
 * (the cluster's renewals, the start scan's read-ahead).  A fork copies every lock in the
 * state it is in, and the child has only the forking thread: a lock another thread held at
 * that instant (the allocator's, a library's) stays held in the child for ever, and the child
 * hangs at its first use (seen with the sanitizers' allocator, whose locks fork does not
 * reset).  So each of those threads marks the stretches in which it may allocate or hold a
 * lock (sl_fork_gate_enter/leave, several threads at once), and the master forks only between
 * them: sl_fork_begin waits a moment for the stretches in progress to end (no new one starts
 * meanwhile), and gives up when one lasts longer, since a stretch may wait for Redis; the fork
 * is then tried again SL_FORK_RETRY_MS later.  A helper thread also must not start or end
 * while a fork may happen (its start and end allocate): the cluster's thread and the
 * read-ahead start from the master's loop, the thread that forks, which waits until they run
 * (sl_fork_thread_create), and they end only when the loop joins them.  The one exception is
 * the resolution of a Redis host name (master/cluster_resolve.c), which may wait tens of
 * seconds and is left outside the gate.
 * Concurrency: any thread; a pthread rwlock (the threads' stretches share it, a fork holds it
 * alone) and a flag that holds new stretches back while a fork waits.
 */
#ifndef SL_FORK_H
#define SL_FORK_H

#include <pthread.h>
#include <stdbool.h>

#define SL_FORK_RETRY_MS 5 /* a fork put off is tried again after this */

/* A helper thread enters a stretch in which it may allocate or hold a lock, and leaves it. */
void sl_fork_gate_enter(void);
void sl_fork_gate_leave(void);
/* Before a fork: true when no helper thread is inside a stretch (none enters until
 * sl_fork_end); false when one stayed inside for a moment: try again later. */
bool sl_fork_begin(void);
/* After the fork (or its failure), in the parent and, child true, in the child. */
void sl_fork_end(bool child);
/* pthread_create, returning once the new thread runs fn (its start, which allocates, is over
 * before the caller forks again); its error number, 0 when started. */
int sl_fork_thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

#endif
