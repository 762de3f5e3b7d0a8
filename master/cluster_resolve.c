/*
 * cluster_resolve.c - a reload's cluster_redis host name, resolved on a thread of its own.
 *
 * getaddrinfo waits as long as the system's resolver does (seconds per try when it does not
 * answer) and cannot be interrupted.  The master's loop must not wait for it (it hands out
 * freed slots and answers the control socket), nor may the cluster thread (a lease not
 * renewed in time closes its connection).  So a reload hands the name to this thread, which
 * resolves it, tries again every RETRY_MS while it does not resolve (said once per name), and
 * publishes the address twice: to the cluster thread (sl_cluster_resolve_fresh), which then
 * connects there (until then it connects nowhere, or to the address the same name had), and to
 * the loop (sl_cluster_resolve_adopt), which gives it to the workers it forks next.  A later
 * reload's name replaces the one in hand; "" (an address, a socket path, no cluster) ends the
 * tries.  The thread is detached and ends when nothing is wanted. Concurrency: everything below is
 * under `lock`; the thread is made with every signal blocked by its maker (the cluster thread), and
 * wakes its consumer with the callback it was given, never after sl_cluster_resolve_stop.  Its
 * start is waited for (util/sl_fork.h), but its getaddrinfo is no stretch of the fork gate: it may
 * wait tens of seconds for a resolver that does not answer, and no worker or listener could be
 * forked meanwhile.  A fork while it resolves, or ends (detached, once the name resolved), is the
 * risk left: glibc's allocator is safe across a fork, a sanitizer's is not; and it happens only
 * for a Redis named by a host name that did not resolve at once.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "cluster/sl_cluster.h"
#include "master/sl_cluster_resolve.h"
#include "util/sl_fork.h"
#include "util/sl_msg.h"

#define RETRY_MS 5000 /* a name that does not resolve is tried again this often */
#define STEP_MS  100  /* the pause between tries looks this often for a new name or the stop */

static struct {
    pthread_mutex_t lock;
    bool running;                           /* the thread exists */
    bool stopped;                           /* sl_cluster_resolve_stop: no more wake-ups */
    char want[SL_CLUSTER_HOST_MAX];         /* the name to resolve; "" none */
    char host[SL_CLUSTER_HOST_MAX];         /* the last name resolved */
    char addr[SL_CLUSTER_HOST_MAX];         /* and its address */
    bool fresh_for_cluster, fresh_for_loop; /* host and addr not yet taken by each */
    void (*wake)(void);                     /* tells the cluster thread */
} rs = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* still_wanted - name is what is wanted, and nothing stopped (under lock) */
static bool still_wanted(const char *name)
{
    return !rs.stopped && strcmp(rs.want, name) == 0;
}

/* pause - RETRY_MS, cut short when another name is wanted or at the stop (under lock, which it
 * drops while it sleeps) */
static void pause_retry(const char *name)
{
    struct timespec step = {.tv_sec = 0, .tv_nsec = STEP_MS * 1000000L};

    for (int waited = 0; waited < RETRY_MS && still_wanted(name); waited += STEP_MS) {
        pthread_mutex_unlock(&rs.lock);
        while (nanosleep(&step, &step) < 0 && errno == EINTR)
            ;
        step.tv_nsec = STEP_MS * 1000000L;
        pthread_mutex_lock(&rs.lock);
    }
}

/* publish - name resolved to addr: for the cluster thread and for the loop (under lock) */
static void publish(const char *name, const char *addr)
{
    strlcpy(rs.host, name, sizeof rs.host);
    strlcpy(rs.addr, addr, sizeof rs.addr);
    rs.fresh_for_cluster = rs.fresh_for_loop = true;
    rs.want[0] = '\0';
    if (rs.wake != NULL)
        rs.wake();
}

/* run - the thread: the name wanted, until it resolves or none is wanted */
static void *run(void *arg)
{
    struct sl_cluster_params q = {.enabled = true, .port = 1};
    char warned[SL_CLUSTER_HOST_MAX] = "";

    (void)arg;
    pthread_mutex_lock(&rs.lock);
    while (!rs.stopped && rs.want[0] != '\0') {
        strlcpy(q.host, rs.want, sizeof q.host);
        pthread_mutex_unlock(&rs.lock);
        bool ok = sl_cluster_resolve(&q);
        pthread_mutex_lock(&rs.lock);
        if (!still_wanted(q.host))
            continue; /* a later reload named another host, or none */
        if (ok) {
            publish(q.host, q.addr);
            break;
        }
        if (strcmp(warned, q.host) != 0) {
            sl_msg_warn("cluster_redis host %s does not resolve now: tried again every %d s",
                        q.host, RETRY_MS / 1000);
            strlcpy(warned, q.host, sizeof warned);
        }
        pause_retry(q.host);
    }
    rs.running = false;
    pthread_mutex_unlock(&rs.lock);
    return NULL;
}

/* sl_cluster_resolve_want - resolve host from now on ("" for none); wake is called once it
 * has an address.  Called from the cluster thread, whose signal mask the thread inherits.
 * False when the thread it needs cannot start. */
bool sl_cluster_resolve_want(const char *host, void (*wake)(void))
{
    pthread_attr_t attr;
    pthread_t t;
    int e = 0;

    pthread_mutex_lock(&rs.lock);
    strlcpy(rs.want, host, sizeof rs.want);
    rs.wake = wake;
    if (host[0] != '\0' && !rs.running && !rs.stopped) {
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        e = sl_fork_thread_create(&t, &attr, run, NULL);
        pthread_attr_destroy(&attr);
        rs.running = e == 0;
    }
    pthread_mutex_unlock(&rs.lock);
    if (e != 0)
        sl_msg_warn("cluster_redis host %s: cannot start the thread that resolves it (%s): "
                    "the cluster thread resolves it, waiting",
                    host, strerror(e));
    return e == 0;
}

/* take - the last result, when one consumer has not taken it yet */
static bool take(bool *fresh, char *host, size_t hostlen, char *addr, size_t addrlen)
{
    bool got;

    pthread_mutex_lock(&rs.lock);
    got = *fresh;
    if (got) {
        strlcpy(host, rs.host, hostlen);
        strlcpy(addr, rs.addr, addrlen);
        *fresh = false;
    }
    pthread_mutex_unlock(&rs.lock);
    return got;
}

/* sl_cluster_resolve_fresh - a name resolved since the cluster thread last asked */
bool sl_cluster_resolve_fresh(char *host, size_t hostlen, char *addr, size_t addrlen)
{
    return take(&rs.fresh_for_cluster, host, hostlen, addr, addrlen);
}

/* sl_cluster_resolve_adopt - a name resolved since the loop last asked */
bool sl_cluster_resolve_adopt(char *host, size_t hostlen, char *addr, size_t addrlen)
{
    return take(&rs.fresh_for_loop, host, hostlen, addr, addrlen);
}

/* sl_cluster_resolve_stop - no more tries and no more wake-ups (the cluster thread ends) */
void sl_cluster_resolve_stop(void)
{
    pthread_mutex_lock(&rs.lock);
    rs.stopped = true;
    rs.want[0] = '\0';
    pthread_mutex_unlock(&rs.lock);
}
