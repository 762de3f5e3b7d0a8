/*
 * board.c - what a node's processes share of the cluster: the params in force, and the board
 * of lease validity the master keeps for its workers; the key and member names.
 *
 * The board is a MAP_SHARED anonymous mapping made by the master before its first fork, so
 * every worker sees it at the same address; one 64-bit word per hold record (owner x
 * record), written by the worker when it takes its leases and by the master after each
 * renewal.  The heritage is a plain process global: the master sets it (start, reload)
 * before forking, and a worker reads its inherited copy.
 * Concurrency: the board's words are atomics (sl_atomic.h); a stale value only closes a
 * connection early or lets it run until the next check, never past its Redis expiry.
 * Trust boundary: none; all of it is ours.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>

#include "util/sl_clock.h"
#include "util/sl_msg.h"
#include "cluster_impl.h"

static struct sl_cluster_heritage heritage;

/* sl_cluster_heritage - this process's cluster params and board */
struct sl_cluster_heritage *sl_cluster_heritage(void)
{
    return &heritage;
}

/* sl_cluster_board_new - a board for owners owner records, shared with future children */
struct sl_cluster_board *sl_cluster_board_new(uint32_t owners)
{
    size_t size =
        sizeof(struct sl_cluster_board) + (size_t)owners * SL_OWNER_RECORDS * sizeof(sl_atomic_u64);
    struct sl_cluster_board *b =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (b == MAP_FAILED)
        sl_msg_fatal("cluster board: mmap of %zu bytes: %s", size, strerror(errno));
    b->owners = owners;
    sl_store64(&b->last_up_us, sl_clock_us()); /* a node started while Redis is down waits too */
    return b;
}

/* sl_cluster_valid - the validity word of one hold record */
sl_atomic_u64 *sl_cluster_valid(struct sl_cluster_board *b, uint32_t owner, int record)
{
    if (owner >= b->owners || record < 0 || record >= SL_OWNER_RECORDS)
        sl_msg_panic("cluster board: owner %u record %d of %u", owner, record, b->owners);
    return &b->valid_until[(size_t)owner * SL_OWNER_RECORDS + (size_t)record];
}

/* sl_alive_note - one heartbeat's count; the count a share divides by */
uint32_t sl_alive_note(struct sl_alive_window *w, uint32_t alive, uint64_t now_ms, uint64_t hold_ms)
{
    if (alive >= w->count) {
        w->count = alive;
        w->lower_ms = 0;
        return w->count;
    }
    if (w->lower_ms == 0) {
        w->lower_ms = now_ms > 0 ? now_ms : 1;
        w->lower = alive;
    } else if (alive > w->lower) {
        w->lower = alive;
    }
    if (now_ms - w->lower_ms >= hold_ms) { /* fewer for hold_ms without a break: gone */
        w->count = w->lower;
        w->lower_ms = 0;
    }
    return w->count;
}

/* sl_alive_broken - Redis did not answer: a fall must be seen again from the start */
void sl_alive_broken(struct sl_alive_window *w)
{
    w->lower_ms = 0;
}

/* sl_cluster_share - limit divided by the nodes last seen alive, at least 1; 0 before any
 * heartbeat (how many nodes share the limit is unknown) */
int32_t sl_cluster_share(const struct sl_cluster_board *b, int32_t limit)
{
    uint32_t alive = b != NULL ? sl_peek32(&b->alive) : 0;
    int32_t share;

    if (limit <= 0)
        return limit;
    if (alive == 0)
        return 0;
    share = alive > 1 ? limit / (int32_t)alive : limit;
    return share < 1 ? 1 : share;
}

/* sl_cluster_share_open - Redis down for two leases' lives: the shares may be used */
bool sl_cluster_share_open(const struct sl_cluster_board *b, long ttl_ms)
{
    return b != NULL && sl_peek32(&b->redis_up) == 0 &&
           sl_clock_us() >= sl_peek64(&b->last_up_us) + (uint64_t)ttl_ms * 2000u;
}

/* sl_cluster_key - the Redis key of a cluster counter: {sluice}:lease:SCOPE NAMES */
void sl_cluster_key(const struct sl_counter_view *v, char *buf, size_t len)
{
    snprintf(buf, len, SL_KEY_LEASE "%s%s%s", v->name, v->name2[0] ? " " : "", v->name2);
}

/* sl_cluster_member - a lease's member: node:pid:record */
void sl_cluster_member(const char *node, long pid, int record, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%ld:%d", node, pid, record);
}

/* sl_cluster_resolve - p's Redis host name resolved to its first address, so that no worker
 * waits for DNS inside a connect (hiredis resolves a name on every connect, without a
 * timeout); false, p unchanged, when the name does not resolve now (then it is resolved again
 * at each connect).  A socket path or an address is left as it is.  It may wait as long as
 * the system's resolver does: never on the master's loop. */
bool sl_cluster_resolve(struct sl_cluster_params *p)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char ip[INET6_ADDRSTRLEN];
    bool ok;

    if (!p->enabled || p->port == 0 || sl_cluster_numeric(p->host))
        return true;
    if (getaddrinfo(p->host, NULL, &hints, &res) != 0 || res == NULL)
        return false;
    ok = getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof ip, NULL, 0, NI_NUMERICHOST) == 0;
    if (ok)
        strlcpy(p->addr, ip, sizeof p->addr);
    freeaddrinfo(res);
    return ok;
}

/* sl_cluster_unresolved - p names Redis by a host name not resolved yet (p->addr is still the
 * name): nothing may connect to it by name, for hiredis would resolve it without a timeout */
bool sl_cluster_unresolved(const struct sl_cluster_params *p)
{
    return p->enabled && p->port != 0 && !sl_cluster_numeric(p->addr);
}

/* sl_cluster_numeric - host is an IPv4 or IPv6 address (nothing to resolve) */
bool sl_cluster_numeric(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* sl_cluster_params - the cluster options of cfg; the password file is read now, a host name
 * is not resolved (sl_cluster_resolve) */
bool sl_cluster_params(const struct sl_config *cfg, struct sl_cluster_params *p, char *err,
                       size_t errlen)
{
    const struct sl_scope_ref none = {0};
    const char *addr = sl_config_str(cfg, SL_OPT_CLUSTER_REDIS, &none);
    const char *pw = sl_config_str(cfg, SL_OPT_CLUSTER_REDIS_PASSWORD_FILE, &none);
    const char *node = sl_config_str(cfg, SL_OPT_CLUSTER_NODE, &none);
    const char *colon;

    memset(p, 0, sizeof *p);
    p->ttl_ms = (long)sl_config_num(cfg, SL_OPT_CLUSTER_LEASE_TTL, &none);
    p->on_failure = (enum sl_cluster_failure)sl_config_num(cfg, SL_OPT_CLUSTER_ON_FAILURE, &none);
    if (node != NULL)
        strlcpy(p->node, node, sizeof p->node);
    else if (gethostname(p->node, sizeof p->node - 1) < 0)
        strlcpy(p->node, "localhost", sizeof p->node);
    p->node[strcspn(p->node, " :")] = '\0';
    if (addr == NULL)
        return true;
    p->enabled = true;
    if (addr[0] == '/') {
        strlcpy(p->addr, addr, sizeof p->addr);
    } else if ((colon = strrchr(addr, ':')) != NULL && (size_t)(colon - addr) < sizeof p->addr) {
        memcpy(p->addr, addr, (size_t)(colon - addr));
        p->addr[colon - addr] = '\0';
        if (p->addr[0] == '[' && p->addr[strlen(p->addr) - 1] == ']') { /* [v6]:port */
            memmove(p->addr, p->addr + 1, strlen(p->addr));
            p->addr[strlen(p->addr) - 1] = '\0';
        }
        p->port = atoi(colon + 1);
    } else {
        snprintf(err, errlen, "cluster_redis %s: expected host:port or a socket path", addr);
        return false;
    }
    strlcpy(p->host, p->addr, sizeof p->host);
    return pw == NULL || sl_config_read_password(pw, p->password, sizeof p->password, err, errlen);
}
