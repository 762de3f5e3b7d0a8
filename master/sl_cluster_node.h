/*
 * sl_cluster_node.h - the master's part of the cluster counters (master/cluster.c): params
 * and board before the first fork, the heartbeat and lease renewals from the main loop, a
 * dead worker's leases removed at reap.
 */
#ifndef SL_CLUSTER_NODE_H
#define SL_CLUSTER_NODE_H

#include <stdint.h>

#include "config/sl_config.h"
#include "shm/sl_shm.h"

/* Before the first fork: a refused password or an unreadable password file is fatal (one
 * line); an unreachable Redis is a warning. */
void sl_master_cluster_start(const struct sl_config *cfg, const struct sl_shm *shm);
void sl_master_cluster_reload(const struct sl_config *cfg);
void sl_master_cluster_tick(const struct sl_shm *shm);
long sl_master_cluster_wait_ms(void);
void sl_master_cluster_reclaim(const struct sl_shm *shm, uint32_t owner);
void sl_master_cluster_stop(void);

#endif
