/*
 * test_cluster.c - the cluster counters: which a connection takes (config/cluster_limits.c),
 * and the leases in a real Redis (cluster/): acquire within the limit, idempotent for a held
 * member, refused when full, expiry, the grace after Redis lost its data, renewal re-adding a
 * lost lease only under the limit, removal, counting, heartbeats, and the client's behaviour
 * when Redis is gone (a bounded failure, not a hang).
 *
 * The Redis cases start their own redis-server (no persistence) on a free loopback port,
 * with its files in a private directory, and stop it by its pid.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster/sl_cluster.h"
#include "config/sl_config.h"
#include "config/sl_limits.h"
#include "shm/sl_shm.h"
#include "util/sl_clock.h"

static const char *const cfg_text = "[global]\n"
                                    "cluster_server_max_outbound_connections = 50\n"
                                    "[binding_group \"g\"]\n"
                                    "[binding \"b\"]\n"
                                    "binding_group = g\n"
                                    "[binding \"s\"]\n"
                                    "cluster_server_max_outbound_connections = 9\n"
                                    "[domain \"d.test\"]\n"
                                    "cluster_max_outbound_connections = 3\n"
                                    "[domain \"/^(a|b)\\.test$/\"]\n"
                                    "cluster_scope_max_outbound_connections = 4\n"
                                    "[binding_group \"g\" domain \"d.test\"]\n"
                                    "cluster_scope_max_outbound_connections = 5\n"
                                    "[host \"mx.d.test\"]\n"
                                    "cluster_scope_max_outbound_connections = 6\n"
                                    "[host \"mx.h.test\"]\n"
                                    "cluster_max_outbound_connections = 7\n";

/* collected - the "scope names=limit" of r's cluster counters, space separated */
static void collected(const struct sl_shm *shm, const struct sl_resv *r, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (uint32_t i = 0; i < r->n; i++) {
        struct sl_counter_view v;
        if (sl_shm_view(shm, r->slot[i], &v) < 0 || v.kind != SL_SCOPE_CLUSTER)
            continue;
        used += (size_t)snprintf(buf + used, len - used, "%s%s %s=%d", used ? "," : "", v.name,
                                 v.name2, r->limit[i]);
    }
}

/* with - the cluster counters of binding -> domain via mx under cfg_text */
static void with(const char *binding, const char *domain, const char *mx, char *out, size_t len)
{
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load_string("t.ini", cfg_text, &d);
    struct sl_shm_params p = {.slot_capacity = 128, .owner_capacity = 2};
    struct sl_shm shm;
    struct sl_resv r;
    char err[256], name[64];

    assert_non_null(cfg);
    snprintf(name, sizeof name, "/sluice-test-cluster-%d", (int)getpid());
    assert_int_equal(sl_shm_create(name, &p, &shm, err, sizeof err), 0);
    sl_resv_init(&r, 1);
    assert_true(sl_limits_collect(cfg, &shm, 0, binding, domain, mx, &r, err, sizeof err));
    collected(&shm, &r, out, len);
    sl_shm_unlink(name);
    sl_shm_detach(&shm);
    sl_config_free(cfg);
}

/* Each scope of the cluster options becomes its counter, with its limit. */
static void test_cluster_counters(void **state)
{
    char got[1024];
    (void)state;

    with("b", "d.test", "mx.d.test", got, sizeof got);
    assert_string_equal(got, "binding_domain b d.test=3,group_domain g d.test=5,host mx.d.test=6,"
                             "server =50");
    with("s", "a.test", "mx.a.test", got, sizeof got);
    assert_string_equal(got, "domain /^(a|b)\\.test$/=4,binding s=9,server =50");
    /* cluster_max from a host section: the counter is binding x MX host */
    with("s", "h.test", "mx.h.test", got, sizeof got);
    assert_string_equal(got, "binding_host s mx.h.test=7,binding s=9,server =50");
}

/* The scheduler's check: a cluster counter this node alone fills holds the mail back. */
static void test_cluster_room(void **state)
{
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load_string("t.ini", cfg_text, &d);
    struct sl_shm_params p = {.slot_capacity = 128, .owner_capacity = 2};
    struct sl_refusal why = {0};
    struct sl_limits_cache c = {0};
    struct sl_counter_view v;
    struct sl_resv r[3];
    struct sl_shm shm;
    char err[256], name[64];
    (void)state;

    assert_non_null(cfg);
    snprintf(name, sizeof name, "/sluice-test-cluster-room-%d", (int)getpid());
    assert_int_equal(sl_shm_create(name, &p, &shm, err, sizeof err), 0);
    sl_add64(&shm.hdr->config_gen, 1); /* the cache below is kept for this generation */
    assert_true(sl_limits_cluster_room(cfg, &shm, "b", "d.test", &why));
    /* filled before any counter exists: the scheduler's one check finds them later */
    assert_true(sl_limits_room_cached(cfg, &shm, &c, "b", "d.test", NULL, &why));
    for (int i = 0; i < 3; i++) { /* d.test's cluster_max is 3: this node takes all of it */
        sl_resv_init(&r[i], 1);
        assert_true(sl_limits_collect(cfg, &shm, 1, "b", "d.test", NULL, &r[i], err, sizeof err));
        assert_int_equal(sl_resv_acquire(&shm, 1, &r[i], NULL), SL_RESV_OK);
    }
    assert_false(sl_limits_cluster_room(cfg, &shm, "b", "d.test", &why));
    assert_int_equal(why.kind, SL_SCOPE_CLUSTER);
    assert_int_equal(why.in_use, 3);
    assert_int_equal(why.limit, 3);
    assert_int_equal(sl_shm_view(&shm, why.slot, &v), 0);
    assert_string_equal(v.name, "binding_domain");
    assert_string_equal(v.name2, "b d.test");
    why = (struct sl_refusal){0};
    assert_false(sl_limits_room_cached(cfg, &shm, &c, "b", "d.test", NULL, &why));
    assert_int_equal(why.kind, SL_SCOPE_CLUSTER);
    assert_int_equal(why.in_use, 3);
    assert_int_equal(why.limit, 3);
    assert_int_equal(sl_shm_view(&shm, why.slot, &v), 0);
    assert_string_equal(v.name2, "b d.test");
    assert_true(sl_limits_cluster_room(cfg, &shm, "s", "d.test", &why)); /* another binding */
    sl_resv_release(&shm, 1, &r[0]);
    assert_true(sl_limits_cluster_room(cfg, &shm, "b", "d.test", &why));
    assert_true(sl_limits_room_cached(cfg, &shm, &c, "b", "d.test", NULL, &why));
    sl_resv_release(&shm, 1, &r[1]);
    sl_resv_release(&shm, 1, &r[2]);
    sl_shm_unlink(name);
    sl_shm_detach(&shm);
    sl_config_free(cfg);
}

/* The limit of a counter is found again from its key alone (a reload's walk). */
static void test_cluster_limit_for_key(void **state)
{
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load_string("t.ini", cfg_text, &d);
    (void)state;

    assert_non_null(cfg);
    assert_int_equal(sl_limits_cluster_for_key(cfg, "binding_domain", "b d.test"), 3);
    assert_int_equal(sl_limits_cluster_for_key(cfg, "binding_domain", "b other.test"), -1);
    assert_int_equal(sl_limits_cluster_for_key(cfg, "binding_host", "s mx.h.test"), 7);
    assert_int_equal(sl_limits_cluster_for_key(cfg, "group_domain", "g d.test"), 5);
    assert_int_equal(sl_limits_cluster_for_key(cfg, "domain", "/^(a|b)\\.test$/"), 4);
    assert_int_equal(sl_limits_cluster_for_key(cfg, "host", "mx.d.test"), 6);
    assert_int_equal(sl_limits_cluster_for_key(cfg, "binding", "s"), 9);
    assert_int_equal(sl_limits_cluster_for_key(cfg, "server", ""), 50);
    assert_int_equal(sl_limits_cluster_for_key(cfg, "nonsense", "x y"), -1);
    assert_true(sl_limits_cluster_any(cfg));
    sl_config_free(cfg);
}

/* The params: host:port, [v6]:port, a socket path, the node name, the defaults. */
static void test_cluster_params(void **state)
{
    struct sl_diag d = {0};
    struct sl_cluster_params p;
    struct sl_config *cfg;
    char err[256];
    (void)state;

    cfg = sl_config_load_string("t.ini", "cluster_redis = 10.0.0.1:6380\ncluster_node = n1\n", &d);
    assert_non_null(cfg);
    assert_true(sl_cluster_params(cfg, &p, err, sizeof err));
    assert_true(p.enabled);
    assert_string_equal(p.addr, "10.0.0.1");
    assert_int_equal(p.port, 6380);
    assert_string_equal(p.node, "n1");
    assert_int_equal(p.ttl_ms, 30000);
    assert_int_equal(p.on_failure, SL_CLUSTER_CLOSED);
    sl_config_free(cfg);
    cfg = sl_config_load_string("t.ini",
                                "cluster_redis = [::1]:7000\ncluster_on_failure = share\n"
                                "cluster_lease_ttl = 5s\n",
                                &d);
    assert_non_null(cfg);
    assert_true(sl_cluster_params(cfg, &p, err, sizeof err));
    assert_string_equal(p.addr, "::1");
    assert_int_equal(p.port, 7000);
    assert_int_equal(p.ttl_ms, 5000);
    assert_int_equal(p.on_failure, SL_CLUSTER_SHARE);
    sl_config_free(cfg);
    /* a name is kept as set (resolving may wait: the master's loop must not); resolved once
     * by sl_cluster_resolve, so that no worker waits for DNS inside a connect */
    cfg = sl_config_load_string("t.ini", "cluster_redis = localhost:6379\n", &d);
    assert_non_null(cfg);
    assert_true(sl_cluster_params(cfg, &p, err, sizeof err));
    assert_string_equal(p.host, "localhost");
    assert_string_equal(p.addr, "localhost");
    assert_true(sl_cluster_resolve(&p));
    assert_string_equal(p.host, "localhost");
    assert_true(strcmp(p.addr, "127.0.0.1") == 0 || strcmp(p.addr, "::1") == 0);
    assert_true(sl_cluster_numeric(p.addr));
    assert_false(sl_cluster_numeric(p.host));
    sl_config_free(cfg);
    cfg = sl_config_load_string("t.ini", "cluster_redis = /run/redis.sock\n", &d);
    assert_non_null(cfg);
    assert_true(sl_cluster_params(cfg, &p, err, sizeof err));
    assert_string_equal(p.addr, "/run/redis.sock");
    assert_int_equal(p.port, 0);
    assert_true(sl_cluster_resolve(&p)); /* a socket path: nothing to resolve */
    assert_string_equal(p.addr, "/run/redis.sock");
    sl_config_free(cfg);
    cfg = sl_config_load_string("t.ini", "cluster_max_outbound_connections = 2\n", &d);
    assert_non_null(cfg);
    assert_true(sl_cluster_params(cfg, &p, err, sizeof err));
    assert_false(p.enabled);
    sl_config_free(cfg);
}

/* The Redis started for the lease cases. */
static struct {
    pid_t pid;
    int port;
    char dir[64];
} rs;

/* free_port - a TCP port free on 127.0.0.1 right now */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* params - a cluster on the test's Redis */
static struct sl_cluster_params params(long ttl_ms)
{
    struct sl_cluster_params p = {.enabled = true, .port = rs.port, .ttl_ms = ttl_ms};
    snprintf(p.addr, sizeof p.addr, "127.0.0.1");
    snprintf(p.node, sizeof p.node, "t");
    return p;
}

/* redis_up - start redis-server and wait until it answers */
static int redis_up(void **state)
{
    char port[16];
    struct sl_cluster_params p;
    char err[256];
    (void)state;

    snprintf(rs.dir, sizeof rs.dir, "/tmp/sluice-test-redis.XXXXXX");
    assert_non_null(mkdtemp(rs.dir));
    rs.port = free_port();
    snprintf(port, sizeof port, "%d", rs.port);
    rs.pid = fork();
    if (rs.pid == 0) {
        execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port", port, "--dir",
               rs.dir, "--save", "", "--appendonly", "no", "--logfile", "/dev/null", (char *)NULL);
        _exit(127);
    }
    p = params(1000);
    for (int i = 0; i < 100; i++) {
        struct sl_redis *r = sl_redis_new(&p);
        enum sl_redis_state st = sl_redis_check(r, err, sizeof err);
        sl_redis_free(r);
        if (st == SL_REDIS_UP)
            return 0;
        usleep(50000);
    }
    return -1;
}

/* redis_down - stop it by pid, remove its directory */
static int redis_down(void **state)
{
    char cmd[128];
    (void)state;

    if (rs.pid > 0) {
        kill(rs.pid, SIGKILL);
        waitpid(rs.pid, NULL, 0);
        rs.pid = 0;
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", rs.dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* flush - an emptied Redis, then the grace it starts let go (a fresh cluster) */
static void flush_and_settle(struct sl_redis *r, long ttl_ms)
{
    uint32_t n;
    char cmd[128];

    snprintf(cmd, sizeof cmd, "redis-cli -p %d flushall >/dev/null", rs.port);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(sl_lease_acquire(r, "{sluice}:lease:x", "m", 1, ttl_ms, &n), SL_LEASE_GRACE);
    usleep((useconds_t)ttl_ms * 1000 + 50000);
}

/* Acquire within the limit, refuse beyond it, idempotent for a held member; release frees. */
static void test_lease_acquire_release(void **state)
{
    struct sl_cluster_params p = params(1000);
    struct sl_redis *r = sl_redis_new(&p);
    const char *k = "{sluice}:lease:binding_domain b d.test";
    uint32_t n = 0;
    (void)state;

    flush_and_settle(r, p.ttl_ms);
    assert_int_equal(sl_lease_acquire(r, k, "a:1:0", 2, 5000, &n), SL_LEASE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sl_lease_acquire(r, k, "a:1:0", 2, 5000, &n), SL_LEASE_OK); /* held */
    assert_int_equal(n, 1);
    assert_int_equal(sl_lease_acquire(r, k, "b:2:0", 2, 5000, &n), SL_LEASE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(sl_lease_acquire(r, k, "c:3:0", 2, 5000, &n), SL_LEASE_FULL);
    assert_int_equal(n, 2);
    assert_int_equal(sl_lease_count(r, k), 2);
    assert_true(sl_lease_release(r, k, "a:1:0"));
    assert_true(sl_lease_release(r, k, "a:1:0")); /* twice: nothing more */
    assert_int_equal(sl_lease_acquire(r, k, "c:3:0", 2, 5000, &n), SL_LEASE_OK);
    assert_int_equal(sl_lease_count(r, k), 2);
    assert_int_equal(sl_lease_acquire(r, k, "d:4:0", 0, 5000, &n), SL_LEASE_FULL); /* paused */
    sl_redis_free(r);
}

/* A connection's leases in one call: all of them, or none when one key is full (the leases of
 * the keys before it, even one held before the call, are not kept); a held member is kept. */
static void test_lease_acquire_all(void **state)
{
    struct sl_cluster_params p = params(1000);
    struct sl_redis *r = sl_redis_new(&p);
    const char *k[3] = {"{sluice}:lease:domain d.test", "{sluice}:lease:binding b",
                        "{sluice}:lease:server"};
    int32_t lim[3] = {5, 1, 5};
    size_t at = 99;
    uint32_t n = 0;
    (void)state;

    flush_and_settle(r, p.ttl_ms);
    assert_int_equal(sl_lease_acquire_all(r, k, lim, 3, "a:1:0", 5000, &at, &n), SL_LEASE_OK);
    assert_int_equal(sl_lease_count(r, k[0]), 1);
    assert_int_equal(sl_lease_count(r, k[1]), 1);
    assert_int_equal(sl_lease_count(r, k[2]), 1);
    assert_int_equal(sl_lease_acquire_all(r, k, lim, 3, "a:1:0", 5000, &at, &n), SL_LEASE_OK);
    assert_int_equal(sl_lease_count(r, k[1]), 1); /* held: taken once */
    assert_int_equal(sl_lease_acquire(r, k[0], "b:2:0", 5, 5000, &n), SL_LEASE_OK);
    assert_int_equal(sl_lease_acquire_all(r, k, lim, 3, "b:2:0", 5000, &at, &n), SL_LEASE_FULL);
    assert_int_equal(at, 1);
    assert_int_equal(n, 1);
    assert_int_equal(sl_lease_count(r, k[0]), 1); /* b's lease of k[0] given back */
    assert_int_equal(sl_lease_count(r, k[2]), 1); /* never taken */
    assert_int_equal(sl_lease_acquire_all(r, k, lim, 1, "b:2:0", 5000, &at, &n), SL_LEASE_OK);
    assert_int_equal(sl_lease_count(r, k[0]), 2);
    sl_redis_free(r);
}

/* A lease nobody renews expires: a dead node's slot is free after the ttl. */
static void test_lease_expiry(void **state)
{
    struct sl_cluster_params p = params(300);
    struct sl_redis *r = sl_redis_new(&p);
    const char *k = "{sluice}:lease:host mx";
    uint32_t n;
    (void)state;

    flush_and_settle(r, p.ttl_ms);
    assert_int_equal(sl_lease_acquire(r, k, "dead:1:0", 1, 300, &n), SL_LEASE_OK);
    assert_int_equal(sl_lease_acquire(r, k, "live:2:0", 1, 300, &n), SL_LEASE_FULL);
    usleep(400000);
    assert_int_equal(sl_lease_count(r, k), 0);
    assert_int_equal(sl_lease_acquire(r, k, "live:2:0", 1, 300, &n), SL_LEASE_OK);
    sl_redis_free(r);
}

/* renewal_refs - n leases of key for a renewal, members n:0:0, n:1:0, ..., within limit */
static void renewal_refs(struct sl_lease_ref *refs, int n, const char *key, int32_t limit)
{
    for (int i = 0; i < n; i++) {
        snprintf(refs[i].key, sizeof refs[i].key, "%s", key);
        snprintf(refs[i].member, sizeof refs[i].member, "n:%d:0", i);
        refs[i].limit = limit;
    }
}

/* Renewal keeps leases alive, re-adds lost ones only under the limit, and an emptied Redis
 * refuses new leases for one ttl while renewals re-establish the old ones. */
static void test_lease_renew_and_grace(void **state)
{
    struct sl_cluster_params p = params(400);
    struct sl_redis *r = sl_redis_new(&p);
    const char *k = "{sluice}:lease:domain d";
    struct sl_lease_ref refs[3] = {0};
    char cmd[128];
    uint32_t n;
    (void)state;

    flush_and_settle(r, p.ttl_ms);
    renewal_refs(refs, 3, k, 2);
    assert_int_equal(sl_lease_acquire(r, k, "n:0:0", 2, 400, &n), SL_LEASE_OK);
    assert_int_equal(sl_lease_acquire(r, k, "n:1:0", 2, 400, &n), SL_LEASE_OK);
    for (int round = 0; round < 3; round++) { /* 3 x 250 ms: longer than the ttl */
        usleep(250000);
        assert_true(sl_lease_renew(r, refs, 2, 400, false));
        assert_int_equal(refs[0].result, 1);
        assert_int_equal(refs[1].result, 1);
    }
    assert_int_equal(sl_lease_count(r, k), 2);
    /* Redis loses everything: a new lease waits for the grace, renewals come back first */
    snprintf(cmd, sizeof cmd, "redis-cli -p %d flushall >/dev/null", rs.port);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(sl_lease_acquire(r, k, "new:9:0", 2, 400, &n), SL_LEASE_GRACE);
    assert_true(sl_lease_renew(r, refs, 3, 400, false)); /* a third member: over the limit */
    assert_int_equal(refs[0].result, 2);
    assert_int_equal(refs[1].result, 2);
    assert_int_equal(refs[2].result, 0);
    usleep(450000); /* the grace ends; so would the leases: renewals paused past a ttl re-add */
    assert_true(sl_lease_renew(r, refs, 2, 400, true));
    assert_int_equal(sl_lease_acquire(r, k, "new:9:0", 2, 400, &n), SL_LEASE_FULL);
    assert_true(sl_lease_drop(r, refs, 2));
    assert_int_equal(sl_lease_count(r, k), 0);
    assert_int_equal(sl_lease_acquire(r, k, "new:9:0", 2, 400, &n), SL_LEASE_OK);
    sl_redis_free(r);
}

/* A renewal that crosses a lease's give-back (listed while the connection was open, run after
 * its worker removed the lease) does not bring it back: that would count a closed connection
 * against the limit on every node for a whole ttl.  Only a caller whose renewals were
 * interrupted (readd) adds a missing lease again. */
static void test_lease_renew_after_give_back(void **state)
{
    struct sl_cluster_params p = params(400);
    struct sl_redis *r = sl_redis_new(&p);
    const char *k = "{sluice}:lease:domain crossed";
    struct sl_lease_ref refs[2] = {0};
    uint32_t n;
    (void)state;

    flush_and_settle(r, p.ttl_ms);
    renewal_refs(refs, 2, k, 3);
    assert_int_equal(sl_lease_acquire(r, k, "n:0:0", 3, 2000, &n), SL_LEASE_OK);
    assert_int_equal(sl_lease_acquire(r, k, "n:1:0", 3, 2000, &n), SL_LEASE_OK);
    assert_true(sl_lease_release(r, k, "n:0:0")); /* the worker closes meanwhile */
    assert_true(sl_lease_renew(r, refs, 2, 2000, false));
    assert_int_equal(refs[0].result, 3);
    assert_int_equal(refs[1].result, 1);
    assert_int_equal(sl_lease_count(r, k), 1);
    assert_true(sl_lease_release(r, k, "n:1:0"));
    assert_int_equal(sl_lease_count(r, k), 0);
    assert_true(sl_lease_renew(r, refs, 1, 2000, false));
    assert_int_equal(refs[0].result, 3);
    assert_int_equal(sl_lease_count(r, k), 0);
    assert_true(sl_lease_renew(r, refs, 2, 2000, true)); /* renewals were interrupted */
    assert_int_equal(refs[0].result, 2);
    assert_int_equal(refs[1].result, 2);
    assert_int_equal(sl_lease_count(r, k), 2);
    sl_redis_free(r);
}

/* post_ref - a listed lease of (owner, record 0) held by pid, its word seen and its result */
static struct sl_lease_ref post_ref(uint32_t owner, uint32_t pid, uint64_t seen, int result)
{
    struct sl_lease_ref r = {
        .owner = owner, .record = 0, .pid = pid, .seen_valid = seen, .result = result};
    snprintf(r.key, sizeof r.key, "{sluice}:lease:domain d");
    snprintf(r.member, sizeof r.member, "n:%u:0", pid);
    return r;
}

/* One record (record 0 of an owner) whose renewals are posted */
struct post_case {
    struct sl_shm *shm;
    struct sl_cluster_board *b;
    uint32_t owner;
};

/* post - set the record's word to before (unless NO_STORE), post a round that listed it with
 * seen and whose leases, held by pid, got results[0..n-1]; the word after */
#define NO_STORE UINT64_MAX
static uint64_t post(const struct post_case *c, uint64_t before, uint32_t pid, uint64_t seen,
                     const int *results, size_t n, uint64_t until)
{
    struct sl_lease_ref refs[2];

    assert_true(n <= 2);
    if (before != NO_STORE)
        sl_store64(sl_cluster_valid(c->b, c->owner, 0), before);
    for (size_t i = 0; i < n; i++)
        refs[i] = post_ref(c->owner, pid, seen, results[i]);
    sl_cluster_post(c->shm, c->b, refs, n, until);
    return sl_load64(sl_cluster_valid(c->b, c->owner, 0));
}

/* A renewal's results on the board: a record with one lease kept and another gone is lost
 * (its connection must close), whatever the order of the two; a word written since the round
 * listed the record (a new acquire) is left alone; a record with a lease Redis left
 * unanswered is not made good; a worker reaped meanwhile is not written for; a renewed record
 * is good until the round's time. */
static void test_post_results(void **state)
{
    struct sl_shm_params p = {.slot_capacity = 16, .owner_capacity = 2};
    uint32_t me = (uint32_t)getpid();
    struct sl_shm shm;
    struct post_case c = {.shm = &shm, .b = sl_cluster_board_new(2)};
    char name[64], err[256];
    (void)state;

    snprintf(name, sizeof name, "/sluice-test-post-%d", getpid());
    assert_int_equal(sl_shm_create(name, &p, &shm, err, sizeof err), 0);
    assert_int_equal(sl_shm_owner_claim(&shm, (pid_t)me, &c.owner), 0);
    sl_store32(&shm.owners[c.owner].hold[0].state, SL_HOLD_HELD);

    /* one key kept, the other not in Redis: lost, the kept one listed first or last */
    assert_int_equal(post(&c, 1000, me, 1000, (int[]){1, 3}, 2, 5000), 0);
    assert_int_equal(post(&c, 1000, me, 1000, (int[]){3, 1}, 2, 5000), 0);
    /* both renewed: good until the round's time */
    assert_int_equal(post(&c, 1000, me, 1000, (int[]){1, 2}, 2, 5000), 5000);
    /* the worker took the record again since the round listed it: its own word stays */
    assert_int_equal(post(&c, 7000, me, 5000, (int[]){3}, 1, 9000), 7000);
    assert_int_equal(post(&c, NO_STORE, me, 5000, (int[]){1}, 1, 9000), 7000);
    /* a loss is final: a later renewal does not make a lost record good again */
    assert_int_equal(post(&c, 0, me, 0, (int[]){1}, 1, 9000), 0);
    /* a round Redis did not answer whole: a record one of whose leases went unanswered keeps
     * its word (that lease was not renewed), whatever its other lease's answer */
    assert_int_equal(post(&c, 1000, me, 1000, (int[]){1, -1}, 2, 5000), 1000);
    /* a counter full: lost */
    assert_int_equal(post(&c, NO_STORE, me, 1000, (int[]){0}, 1, 5000), 0);
    /* a worker reaped while Redis answered (another pid in the owner's place) is not written */
    assert_int_equal(post(&c, 1000, me + 1, 1000, (int[]){3}, 1, 9000), 1000);
    sl_shm_unlink(name);
    sl_shm_detach(&shm);
}

/* Heartbeats: nodes alive within the ttl, listed with their holds. */
static void test_heartbeat(void **state)
{
    struct sl_cluster_params p = params(300);
    struct sl_redis *r = sl_redis_new(&p);
    struct sl_cluster_node_view *v;
    char cmd[256];
    size_t n;
    (void)state;

    flush_and_settle(r, p.ttl_ms);
    assert_int_equal(sl_cluster_heartbeat(r, "n1", 4, 300), 1);
    assert_int_equal(sl_cluster_heartbeat(r, "n2", 0, 300), 2);
    usleep(350000);
    assert_int_equal(sl_cluster_heartbeat(r, "n2", 1, 300), 1); /* n1 fell silent */
    snprintf(cmd, sizeof cmd,
             "test \"$(redis-cli -p %d exists '{sluice}:node:n1' "
             "'{sluice}:node:n2')\" = 1",
             rs.port);
    assert_int_equal(system(cmd), 0); /* n1's heartbeat key expired, n2's lives */
    assert_int_equal(sl_cluster_nodes(r, 300, &v, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].name, "n1") == 0) {
            assert_false(v[i].alive);
            assert_int_equal(v[i].holds, 4);
        } else {
            assert_string_equal(v[i].name, "n2");
            assert_true(v[i].alive);
            assert_int_equal(v[i].holds, 1);
        }
    }
    free(v);
    sl_redis_free(r);
}

/* Redis gone: every call fails within the client's timeouts, and the retry pause makes the
 * next ones fail at once; the share of a limit is limit / nodes alive, at least 1. */
static void test_redis_gone(void **state)
{
    struct sl_cluster_params p = params(1000);
    struct sl_redis *r;
    struct sl_cluster_board *b = sl_cluster_board_new(2);
    uint64_t t0;
    uint32_t n;
    char err[256];
    (void)state;

    p.port = free_port(); /* nothing listens there */
    r = sl_redis_new(&p);
    t0 = sl_clock_us();
    assert_int_equal(sl_lease_acquire(r, "{sluice}:lease:x", "m", 3, 1000, &n), SL_LEASE_DOWN);
    assert_false(sl_lease_release(r, "{sluice}:lease:x", "m"));
    assert_int_equal(sl_lease_count(r, "{sluice}:lease:x"), -1);
    assert_int_equal(sl_cluster_heartbeat(r, "n", 0, 1000), -1);
    assert_true(sl_clock_us() - t0 < (uint64_t)SL_CLUSTER_CONNECT_MS * 1000u);
    assert_int_equal(sl_redis_check(r, err, sizeof err), SL_REDIS_DOWN);
    assert_non_null(strstr(err, "cannot connect"));
    sl_redis_free(r);
    assert_int_equal(sl_cluster_share(b, 10), 0); /* no heartbeat yet: nothing opens */
    sl_store32(&b->alive, 1);
    assert_int_equal(sl_cluster_share(b, 10), 10);
    sl_store32(&b->alive, 3);
    assert_int_equal(sl_cluster_share(b, 10), 3);
    assert_int_equal(sl_cluster_share(b, 2), 1);
    assert_int_equal(sl_cluster_share(b, 0), 0);
    assert_false(sl_cluster_share_open(b, 1000)); /* not down for two ttl yet */
    sl_store64(&b->last_up_us, 1);
    assert_true(sl_cluster_share_open(b, 1000));
    sl_store32(&b->redis_up, 1);
    assert_false(sl_cluster_share_open(b, 1000));
}

/* The nodes a share divides by: a larger count at once, a smaller one only once every
 * heartbeat saw fewer for the hold time of Redis answering without a break (a late beat,
 * the first beat after an outage that sees this node alone, or Redis flapping must not hand
 * it the whole limit). */
static void test_alive_window(void **state)
{
    struct sl_alive_window w = {0};
    const uint64_t hold = 5000;
    (void)state;

    assert_int_equal(sl_alive_note(&w, 1, 1000, hold), 1); /* the first to start: alone */
    assert_int_equal(sl_alive_note(&w, 3, 2000, hold), 3); /* the others at once */
    assert_int_equal(sl_alive_note(&w, 1, 3000, hold), 3); /* Redis back: it beat first */
    assert_int_equal(sl_alive_note(&w, 1, 7000, hold), 3);
    assert_int_equal(sl_alive_note(&w, 3, 8000, hold), 3);
    for (uint64_t t = 10000; t < 30000; t += 4000) { /* flapping: each blip sees it alone */
        assert_int_equal(sl_alive_note(&w, 1, t, hold), 3);
        sl_alive_broken(&w);
    }
    assert_int_equal(sl_alive_note(&w, 1, 40000, hold), 3); /* a node gone for good ... */
    assert_int_equal(sl_alive_note(&w, 2, 42000, hold), 3);
    assert_int_equal(sl_alive_note(&w, 2, 44999, hold), 3);
    assert_int_equal(sl_alive_note(&w, 2, 45000, hold), 2); /* ... leaves it after hold */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_counters),
        cmocka_unit_test(test_cluster_limit_for_key),
        cmocka_unit_test(test_cluster_room),
        cmocka_unit_test(test_cluster_params),
        cmocka_unit_test(test_redis_gone),
        cmocka_unit_test(test_alive_window),
        cmocka_unit_test(test_lease_acquire_release),
        cmocka_unit_test(test_lease_acquire_all),
        cmocka_unit_test(test_lease_expiry),
        cmocka_unit_test(test_lease_renew_and_grace),
        cmocka_unit_test(test_lease_renew_after_give_back),
        cmocka_unit_test(test_post_results),
        cmocka_unit_test(test_heartbeat),
    };
    return cmocka_run_group_tests(tests, redis_up, redis_down);
}
