/*
 * sl_cluster_node.h - the master's part of the cluster counters (master/cluster.c): params
 * and board before the first fork; then a thread of its own for the heartbeat, the lease
 * renewals and the removal of a dead worker's leases, so that no Redis call ever holds the
 * master's loop.
 */
#ifndef SL_CLUSTER_NODE_H
#define SL_CLUSTER_NODE_H

#include <stdint.h>

#include "config/sl_config.h"
#include "shm/sl_shm.h"

/* Before the first fork: a refused password or an unreadable password file is fatal (one
 * line); an unreachable Redis is a warning. */
void sl_master_cluster_start(const struct sl_config *cfg, const struct sl_shm *shm);
/* The thread starts (fatal when it cannot): from here on, no call below waits for Redis. */
void sl_master_cluster_run(void);
void sl_master_cluster_reload(const struct sl_config *cfg);
/* The address the thread resolved a reload's Redis host name to, for the workers forked next;
 * called by the loop before it forks. */
void sl_master_cluster_adopt(void);
/* Lists the dead worker's leases for the thread to remove; before its slots are reclaimed. */
void sl_master_cluster_reclaim(const struct sl_shm *shm, uint32_t owner);
/* Ends the thread (after its call in hand), removes the leases of the workers reaped last and
 * closes the connection. */
void sl_master_cluster_stop(void);

#endif
