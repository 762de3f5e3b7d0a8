/*
 * sl_cluster_resolve.h - a reload's cluster_redis host name, resolved beside the master's
 * loop and its cluster thread (cluster_resolve.c).
 */
#ifndef SL_CLUSTER_RESOLVE_H
#define SL_CLUSTER_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>

/* Resolve host from now on, trying again while it does not resolve ("" ends the tries);
 * wake is called (from another thread) once there is an address.  False when the thread
 * cannot start. */
bool sl_cluster_resolve_want(const char *host, void (*wake)(void));
/* The name last resolved and its address, once for the cluster thread ... */
bool sl_cluster_resolve_fresh(char *host, size_t hostlen, char *addr, size_t addrlen);
/* ... and once for the loop (the workers it forks next). */
bool sl_cluster_resolve_adopt(char *host, size_t hostlen, char *addr, size_t addrlen);
/* No more tries or wake-ups (before the cluster thread is joined). */
void sl_cluster_resolve_stop(void);

#endif
