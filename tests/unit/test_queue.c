/*
 * test_queue.c - the master's queue index and scheduler (master/queue.c,
 * master/schedule.c, sl_limits_dest_room in config/limits.c).
 *
 * The index is pure data, so the scheduling rules are checked directly:
 * round-robin fairness between a big and a small destination, FIFO order
 * within one, held-back destinations, "w" putting parts back in front, the
 * timer heap, removal of a message only after its last part, and a dead
 * worker's parts going back.  The scheduler is then driven through real
 * SOCK_SEQPACKET socketpairs standing in for workers, with a real counter
 * table, so the job datagrams and the outcome parsing follow sl_worker.h;
 * and the start scan of a real spool (master/pickup.c), read ahead by its
 * thread, with its warm-up and that warm-up's time limit.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/sl_config.h"
#include "config/sl_limits.h"
#include "util/sl_msg.h"
#include "master/sl_pickup.h"
#include "master/sl_queue.h"
#include "master/sl_schedule.h"
#include "master/sl_shaping.h"
#include "shm/sl_shm.h"
#include "spool/sl_actions.h"
#include "master/sl_supervise.h"
#include "worker/sl_worker.h"
#include "tests/lib/fail_read.h"
#include "tests/lib/tmpdir.h"

/* make_id - a well-formed 20-character queue id from a number */
static void make_id(char *id, unsigned n)
{
    snprintf(id, SL_SPOOL_ID_LEN + 1, "M%019u", n);
}

/* add1 - a message of one part for domain, due at due */
static struct sl_qmsg *add1(struct sl_queue *q, unsigned n, const char *domain, int64_t due)
{
    char id[SL_SPOOL_ID_LEN + 1];
    struct sl_queue_part_init p = {.domain = domain, .due = due};

    make_id(id, n);
    return sl_queue_add(q, id, "b1", 1, &p, 100);
}

/* the message number of a part */
static unsigned num_of(const struct sl_qpart *p)
{
    return (unsigned)strtoul(p->msg->id + 1, NULL, 10);
}

/* A destination with 10,000 parts and one with 10: one part per turn, the small one's parts
 * are all out within its first 10 turns, interleaved with the big one. */
static void test_fairness(void **state)
{
    struct sl_queue *q = sl_queue_new();
    unsigned small_seen = 0, turn = 0;

    (void)state;
    for (unsigned i = 0; i < 10000; i++)
        assert_non_null(add1(q, i, "big.example", 0));
    for (unsigned i = 0; i < 10; i++)
        assert_non_null(add1(q, 100000 + i, "small.example", 0));
    while (small_seen < 10) {
        struct sl_qdest *d = sl_queue_next(q);
        struct sl_qpart *p;
        assert_non_null(d);
        p = sl_queue_take(q, d, 1);
        assert_non_null(p);
        if (strcmp(d->domain, "small.example") == 0)
            small_seen++;
        sl_queue_rotate(q, d);
        turn++;
    }
    assert_true(turn <= 20); /* the small one had every other turn */
    assert_int_equal(sl_queue_count(q, SL_PART_READY), 10000 - turn + 10);
    assert_string_equal(sl_queue_next(q)->domain, "big.example"); /* only the big one is left */
    sl_queue_free(q);
}

/* Within one destination, parts go out in the order they were queued. */
static void test_fifo(void **state)
{
    struct sl_queue *q = sl_queue_new();
    struct sl_qdest *d;

    (void)state;
    for (unsigned i = 0; i < 100; i++)
        add1(q, i, "a.example", 0);
    d = sl_queue_next(q);
    for (unsigned i = 0; i < 100; i++)
        assert_int_equal(num_of(sl_queue_take(q, d, 7)), i);
    assert_null(sl_queue_take(q, d, 7));
    assert_null(sl_queue_next(q)); /* an empty destination leaves the ring */
    assert_int_equal(sl_queue_count(q, SL_PART_INFLIGHT), 100);
    sl_queue_free(q);
}

/* A held-back destination is skipped until the blocks are lifted; parts added meanwhile
 * wait too. */
static void test_blocked(void **state)
{
    struct sl_queue *q = sl_queue_new();
    struct sl_qdest *a, *b;

    (void)state;
    add1(q, 1, "a.example", 0);
    add1(q, 2, "b.example", 0);
    a = sl_queue_dest(q, "b1", "a.example");
    b = sl_queue_dest(q, "b1", "b.example");
    sl_queue_block(q, a);
    assert_int_equal(sl_queue_blocked(q), 1);
    assert_ptr_equal(sl_queue_next(q), b);
    sl_queue_take(q, b, 1);
    add1(q, 3, "a.example", 0); /* more mail for a: still held back */
    assert_null(sl_queue_next(q));
    assert_int_equal(sl_queue_unblock_all(q), 1);
    assert_int_equal(sl_queue_blocked(q), 0);
    assert_ptr_equal(sl_queue_next(q), a);
    assert_int_equal(a->nready, 2);
    sl_queue_free(q);
}

/* four_dests - a message each for a, b, c and e.example (in that order in the ring), and
 * their destinations */
static void four_dests(struct sl_queue *q, struct sl_qdest **a, struct sl_qdest **b,
                       struct sl_qdest **c, struct sl_qdest **e)
{
    static const char *const names[4] = {"a.example", "b.example", "c.example", "e.example"};
    struct sl_qdest **d[4] = {a, b, c, e};

    for (unsigned i = 0; i < 4; i++) {
        add1(q, i + 1, names[i], 0);
        *d[i] = sl_queue_dest(q, "b1", names[i]);
    }
}

/* Released destinations go to the ring's head in the order they were held back (the one
 * that waited longest is served first, before destinations that never waited); one whose
 * last ready part leaves while it waits goes idle at once, and the idle hook hears of it. */
static void idle_seen(struct sl_qdest *d, void *arg)
{
    *(struct sl_qdest **)arg = d;
}
static void test_unblock_order(void **state)
{
    struct sl_queue *q = sl_queue_new();
    struct sl_qdest *a, *b, *c, *e, *idle = NULL;

    (void)state;
    sl_queue_set_idle_hook(q, idle_seen, &idle);
    four_dests(q, &a, &b, &c, &e);
    sl_queue_block(q, b); /* b waits first, then c, then a */
    sl_queue_block(q, c);
    sl_queue_block(q, a);
    assert_ptr_equal(sl_queue_first_blocked(q), b);
    assert_ptr_equal(sl_queue_next_blocked(q, b), c);
    assert_ptr_equal(sl_queue_next_blocked(q, a), NULL);
    assert_ptr_equal(sl_queue_next(q), e);
    sl_queue_take(q, c, 9); /* c's only part leaves while it waits: it waits for nothing */
    assert_ptr_equal(idle, c);
    assert_int_equal(c->where, SL_QDEST_IDLE);
    assert_int_equal(sl_queue_blocked(q), 2);
    assert_int_equal(sl_queue_unblock_all(q), 2);
    assert_ptr_equal(sl_queue_next(q), b);
    sl_queue_rotate(q, b);
    assert_ptr_equal(sl_queue_next(q), a);
    sl_queue_rotate(q, a);
    assert_ptr_equal(sl_queue_next(q), e);
    sl_queue_free(q);
}

/* match_either - the release picks the destinations in arg[0] and arg[1] */
static bool match_either(const struct sl_qdest *d, const void *arg)
{
    const struct sl_qdest *const *two = arg;
    return d == two[0] || d == two[1];
}

/* Destinations released because a counter they wait for was freed go before the ring's
 * others, the longest waiting first; the others stay held back. */
static void test_release_where(void **state)
{
    struct sl_queue *q = sl_queue_new();
    struct sl_qdest *a, *b, *c, *e, *two[2];

    (void)state;
    four_dests(q, &a, &b, &c, &e);
    sl_queue_block(q, b); /* b waits first, then c, then a */
    sl_queue_block(q, c);
    sl_queue_block(q, a);
    two[0] = a;
    two[1] = b;
    assert_int_equal(sl_queue_release_where(q, match_either, two), 2);
    assert_ptr_equal(sl_queue_next(q), b);
    sl_queue_rotate(q, b);
    assert_ptr_equal(sl_queue_next(q), a);
    sl_queue_rotate(q, a);
    assert_ptr_equal(sl_queue_next(q), e);
    assert_int_equal(c->where, SL_QDEST_BLOCKED);
    assert_int_equal(sl_queue_blocked(q), 1);
    sl_queue_free(q);
}

/* match_one - the release picks the destination arg */
static bool match_one(const struct sl_qdest *d, const void *arg)
{
    return d == arg;
}

/* Two releases before the ring turns (a promise ends, then a connection closes): the
 * destination held back first still goes first, whichever was released first. */
static void test_release_merges(void **state)
{
    struct sl_queue *q = sl_queue_new();
    struct sl_qdest *a, *b, *c, *e;

    (void)state;
    four_dests(q, &a, &b, &c, &e);
    sl_queue_block(q, b); /* b waits first, then a, then c */
    sl_queue_block(q, a);
    sl_queue_block(q, c);
    assert_int_equal(sl_queue_release_where(q, match_one, c), 1);
    assert_int_equal(sl_queue_release_where(q, match_one, b), 1);
    assert_int_equal(sl_queue_release_where(q, match_one, a), 1);
    assert_ptr_equal(sl_queue_next(q), b);
    sl_queue_rotate(q, b);
    assert_ptr_equal(sl_queue_next(q), a);
    sl_queue_rotate(q, a);
    assert_ptr_equal(sl_queue_next(q), c);
    sl_queue_rotate(q, c);
    assert_ptr_equal(sl_queue_next(q), e);
    sl_queue_rotate(q, e);
    /* served, they are ordinary members again: one held back and released now goes first */
    sl_queue_block(q, e);
    assert_int_equal(sl_queue_unblock_all(q), 1);
    assert_ptr_equal(sl_queue_next(q), e);
    sl_queue_rotate(q, e);
    assert_ptr_equal(sl_queue_next(q), b);
    sl_queue_free(q);
}

/* "w": the part was not attempted and goes back to the FRONT of its queue. */
static void test_wait_front(void **state)
{
    struct sl_queue *q = sl_queue_new();
    struct sl_qdest *d;
    struct sl_qpart *p0, *p1;

    (void)state;
    for (unsigned i = 0; i < 5; i++)
        add1(q, i, "a.example", 0);
    d = sl_queue_next(q);
    p0 = sl_queue_take(q, d, 1);
    p1 = sl_queue_take(q, d, 1);
    sl_queue_requeue(q, p1);
    sl_queue_requeue(q, p0);
    assert_ptr_equal(sl_queue_peek(d), p0);
    assert_int_equal(num_of(sl_queue_take(q, d, 2)), 0);
    assert_int_equal(num_of(sl_queue_take(q, d, 2)), 1);
    assert_int_equal(num_of(sl_queue_take(q, d, 2)), 2);
    sl_queue_free(q);
}

/* Deferred parts wait in the heap and come out in due order, only once due. */
static void test_heap(void **state)
{
    struct sl_queue *q = sl_queue_new();
    static const int64_t due[] = {500, 200, 900, 300, 700, 100, 800, 400, 600};
    const size_t n = sizeof due / sizeof due[0];
    struct sl_qdest *d;

    (void)state;
    for (unsigned i = 0; i < n; i++) {
        struct sl_qpart *p;
        add1(q, i, "a.example", 0);
        p = sl_queue_take(q, sl_queue_next(q), 1);
        sl_queue_defer(q, p, due[i]);
    }
    assert_null(sl_queue_next(q));
    assert_int_equal(sl_queue_count(q, SL_PART_TIMER), n);
    assert_int_equal(sl_queue_next_due(q), 100);
    assert_int_equal(sl_queue_release_due(q, 99), 0);
    assert_int_equal(sl_queue_release_due(q, 450), 4);
    assert_int_equal(sl_queue_next_due(q), 500);
    d = sl_queue_next(q);
    assert_non_null(d);
    /* released in due order: 100 (msg 5), 200 (1), 300 (3), 400 (7) */
    assert_int_equal(num_of(sl_queue_take(q, d, 2)), 5);
    assert_int_equal(num_of(sl_queue_take(q, d, 2)), 1);
    assert_int_equal(num_of(sl_queue_take(q, d, 2)), 3);
    assert_int_equal(num_of(sl_queue_take(q, d, 2)), 7);
    assert_int_equal(sl_queue_release_due(q, 10000), 5);
    assert_int_equal(sl_queue_next_due(q), INT64_MAX);
    /* a message indexed with a future next attempt starts in the heap */
    add1(q, 50, "b.example", 5000);
    assert_int_equal(sl_queue_next_due(q), 5000);
    sl_queue_free(q);
}

/* A message of several parts leaves the index only with its last part; a part already
 * final at pickup is not queued at all. */
static void test_multipart(void **state)
{
    struct sl_queue *q = sl_queue_new();
    struct sl_queue_part_init parts[3] = {
        {.domain = "a.example"}, {.domain = "b.example", .done = true}, {.domain = "c.example"}};
    struct sl_qmsg *m = sl_queue_add(q, "AAAAAAAAAAAAAAAAAAAA", "b1", 3, parts, 100);
    struct sl_qpart *pa, *pc;

    (void)state;
    assert_non_null(m);
    assert_int_equal(m->left, 2);
    assert_null(sl_queue_dest(q, "b1", "b.example"));
    assert_null(sl_queue_add(q, "AAAAAAAAAAAAAAAAAAAA", "b1", 3, parts, 100)); /* no twice */
    pa = sl_queue_take(q, sl_queue_dest(q, "b1", "a.example"), 1);
    pc = sl_queue_take(q, sl_queue_dest(q, "b1", "c.example"), 2);
    assert_false(sl_queue_done(q, pa));
    assert_non_null(sl_queue_find(q, "AAAAAAAAAAAAAAAAAAAA"));
    assert_null(sl_queue_dest(q, "b1", "a.example")); /* nothing left for it: freed */
    assert_true(sl_queue_done(q, pc));
    assert_null(sl_queue_find(q, "AAAAAAAAAAAAAAAAAAAA"));
    assert_int_equal(sl_queue_messages(q), 0);
    /* a name longer than DNS allows, from a damaged spool file, is refused, not indexed */
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    parts[0].domain = longname;
    assert_null(sl_queue_add(q, "CCCCCCCCCCCCCCCCCCCC", "b1", 1, parts, 100));
    assert_int_equal(sl_queue_messages(q), 0);
    sl_queue_free(q);
}

/* "x": the message is gone, its parts leave every structure wherever they are. */
static void test_drop(void **state)
{
    struct sl_queue *q = sl_queue_new();
    struct sl_queue_part_init parts[3] = {
        {.domain = "a.example"}, {.domain = "b.example"}, {.domain = "c.example", .due = 999}};
    struct sl_qmsg *m = sl_queue_add(q, "BBBBBBBBBBBBBBBBBBBB", "b1", 3, parts, 100);

    (void)state;
    add1(q, 1, "b.example", 0);
    sl_queue_take(q, sl_queue_dest(q, "b1", "a.example"), 1);
    assert_int_equal(sl_queue_count(q, SL_PART_TIMER), 1);
    sl_queue_drop(q, m);
    assert_null(sl_queue_find(q, "BBBBBBBBBBBBBBBBBBBB"));
    assert_int_equal(sl_queue_count(q, SL_PART_TIMER), 0);
    assert_int_equal(sl_queue_count(q, SL_PART_INFLIGHT), 0);
    assert_int_equal(sl_queue_count(q, SL_PART_READY), 1);
    assert_int_equal(num_of(sl_queue_peek(sl_queue_next(q))), 1);
    assert_int_equal(sl_queue_next_due(q), INT64_MAX);
    sl_queue_free(q);
}

/* A worker that dies with a job: its parts are queued again, in their order, in front. */
static void test_dead_worker(void **state)
{
    struct sl_sched s;
    struct sl_worker_slot w = {.pid = 1, .fd = -1};
    struct sl_qdest *d;
    char parts[256] = "";

    (void)state;
    sl_sched_init(&s, "/nonexistent");
    for (unsigned i = 0; i < 6; i++)
        add1(s.q, i, "a.example", 0);
    d = sl_queue_next(s.q);
    for (unsigned i = 0; i < 3; i++) {
        struct sl_qpart *p = sl_queue_take(s.q, d, 42);
        size_t len = strlen(parts);
        snprintf(parts + len, sizeof parts - len, "%s%s.%u", len ? " " : "", p->msg->id, p->k);
    }
    w.job = 42;
    w.parts = strdup(parts);
    sl_sched_worker_exit(&w, W_EXITCODE(0, SIGKILL), &s);
    assert_null(w.parts);
    assert_int_equal(w.job, 0);
    assert_int_equal(sl_queue_count(s.q, SL_PART_INFLIGHT), 0);
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(num_of(sl_queue_take(s.q, d, 43)), i);
    sl_sched_free(&s);
}

/* 100,000 messages through the index: nothing here may be quadratic. */
static void test_many(void **state)
{
    struct sl_queue *q = sl_queue_new();
    char dom[32];
    size_t taken = 0;
    struct sl_qdest *d;

    (void)state;
    for (unsigned i = 0; i < 100000; i++) {
        snprintf(dom, sizeof dom, "d%u.example", i % 1000);
        assert_non_null(add1(q, i, dom, i % 3 ? 0 : 1000 + i % 977));
    }
    assert_int_equal(sl_queue_messages(q), 100000);
    assert_int_equal(sl_queue_release_due(q, 3000), 33334);
    while ((d = sl_queue_next(q)) != NULL) {
        struct sl_qpart *p = sl_queue_take(q, d, 1);
        sl_queue_rotate(q, d);
        if (sl_queue_done(q, p))
            taken++;
    }
    assert_int_equal(taken, 100000);
    assert_int_equal(sl_queue_messages(q), 0);
    sl_queue_free(q);
}

/* ---- the scheduler with real sockets and a real counter table ---- */

struct fixture {
    struct sl_config *cfg;
    struct sl_shm shm;
    char name[64];
    struct sl_supervisor sup;
    int peer[3]; /* the workers' ends (a third: third_worker) */
    struct sl_sched s;
};

static const char *const cfg_text = "[global]\n"
                                    "server_max_outbound_connections = 10\n"
                                    "[binding \"b1\"]\n"
                                    "[binding \"b2\"]\n"
                                    "[domain \"full.example\"]\n"
                                    "scope_max_outbound_connections = 1\n"
                                    "[binding \"b1\" domain \"pair.example\"]\n"
                                    "max_outbound_connections = 2\n";

static int setup(void **state)
{
    static struct fixture f;
    struct sl_diag d = {0};
    struct sl_shm_params p = {.slot_capacity = 64, .owner_capacity = 4};
    char err[256];

    memset(&f, 0, sizeof f);
    f.cfg = sl_config_load_string("queue.ini", cfg_text, &d);
    if (f.cfg == NULL)
        return -1;
    snprintf(f.name, sizeof f.name, "/sluice-test-queue-%d", (int)getpid());
    if (sl_shm_create(f.name, &p, &f.shm, err, sizeof err) != 0)
        return -1;
    sl_add64(&f.shm.hdr->config_gen, 1);
    sl_limits_publish(f.cfg, &f.shm, 1);
    sl_supervise_init(&f.sup, 2);
    f.sup.w = calloc(2, sizeof *f.sup.w);
    f.sup.nw = 2;
    for (int i = 0; i < 2; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
            return -1;
        f.sup.w[i] = (struct sl_worker_slot){
            .pid = 100 + i, .fd = sv[0], .ready = true, .gen = 1, .stuck_slot = UINT32_MAX};
        f.peer[i] = sv[1];
    }
    sl_sched_init(&f.s, "/nonexistent");
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 2; i++) {
        close(f->peer[i]);
        close(f->sup.w[i].fd);
        free(f->sup.w[i].parts);
    }
    free(f->sup.w);
    sl_sched_free(&f->s);
    sl_shm_detach(&f->shm);
    sl_shm_unlink(f->name);
    sl_config_free(f->cfg);
    return 0;
}

/* job_of - the job datagram worker i received, "" when none */
static void job_of(struct fixture *f, int i, char *buf, size_t len)
{
    ssize_t n = recv(f->peer[i], buf, len - 1, MSG_DONTWAIT);
    buf[n > 0 ? n : 0] = '\0';
}

/* say - worker i tells the scheduler msg */
static void say(struct fixture *f, unsigned i, const char *msg)
{
    sl_sched_from_worker(&f->s, &f->sup, i, msg, strlen(msg));
}

/* Jobs carry one destination's parts, in order; outcomes move them on; "K" makes the
 * connected worker the preferred one; "w" holds the destination back until "I". */
static void test_dispatch_outcomes(void **state)
{
    struct fixture *f = *state;
    char job[SL_JOB_MAX], want[SL_JOB_MAX], msg[256];
    const struct sl_qdest *pair;

    for (unsigned i = 0; i < 3; i++)
        add1(f->s.q, i, "pair.example", 0);
    f->sup.want = 1; /* one job takes a destination's mail spread over the pool: here all 3 */
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 0, job, sizeof job);
    if (job[0] == '\0')
        job_of(f, 1, job, sizeof job);
    snprintf(want, sizeof want, "J1 D b1 pair.example %s.0 %s.0 %s.0", "M0000000000000000000",
             "M0000000000000000001", "M0000000000000000002");
    assert_string_equal(job, want);
    unsigned wi = f->sup.w[0].job == 1 ? 0 : 1;
    assert_true(f->sup.w[wi].busy);
    /* d, f<time>, w */
    say(f, wi,
        "D1 M0000000000000000000.0=d M0000000000000000001.0=f99999999999 "
        "M0000000000000000002.0=w");
    assert_null(sl_queue_find(f->s.q, "M0000000000000000000"));
    assert_int_equal(sl_queue_next_due(f->s.q), 99999999999LL);
    assert_int_equal(f->sup.w[wi].job, 0);
    pair = sl_queue_dest(f->s.q, "b1", "pair.example");
    assert_int_equal(pair->where, SL_QDEST_BLOCKED);
    /* still busy until K or I: nothing dispatched to it, and the destination is held back */
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 1 - wi, job, sizeof job);
    assert_string_equal(job, "");
    say(f, wi, "K b1 pair.example");
    assert_false(f->sup.w[wi].busy);
    assert_int_equal(pair->conns, 1);
    say(f, 1 - wi, "I"); /* a connection closed somewhere: held-back destinations try again */
    assert_int_equal(pair->where, SL_QDEST_RING);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, wi, job, sizeof job); /* the connected worker gets it */
    snprintf(want, sizeof want, "J2 D b1 pair.example M0000000000000000002.0");
    assert_string_equal(job, want);
    /* a bogus outcome for a part not in the job changes nothing; x: gone */
    snprintf(msg, sizeof msg, "D2 M0000000000000000001.0=d M0000000000000000002.0=x");
    say(f, wi, msg);
    assert_non_null(sl_queue_find(f->s.q, "M0000000000000000001"));
    assert_null(sl_queue_find(f->s.q, "M0000000000000000002"));
    say(f, wi, "I");
    assert_null(f->sup.w[wi].conn);
}

/* A part indexed with no state file goes out marked "+" (its worker skips the state lookup)
 * only the first time: once handed out its worker may have saved a state, so a part that
 * comes back, here not attempted ("w"), goes out again unmarked; a held part is never so
 * marked. */
static void test_dispatch_fresh(void **state)
{
    struct fixture *f = *state;
    struct sl_queue_part_init p = {.domain = "pair.example", .fresh = true};
    struct sl_queue_part_init held = {.domain = "pair.example", .fresh = true, .held = true};
    char job[SL_JOB_MAX];
    unsigned wi;

    assert_non_null(sl_queue_add(f->s.q, "M0000000000000000007", "b1", 1, &p, 100));
    assert_non_null(sl_queue_add(f->s.q, "M0000000000000000008", "b1", 1, &held, 100));
    assert_false(sl_queue_find(f->s.q, "M0000000000000000008")->part[0].fresh);
    f->sup.want = 1;
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wi = f->sup.w[0].job == 1 ? 0 : 1;
    job_of(f, wi, job, sizeof job);
    assert_string_equal(job, "J1 D b1 pair.example M0000000000000000007.0+");
    say(f, wi, "D1 M0000000000000000007.0=w"); /* a counter was full: queued again */
    say(f, wi, "K b1 pair.example");
    say(f, 1 - wi, "I"); /* a connection closed: the destination tries again */
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, wi, job, sizeof job);
    assert_string_equal(job, "J2 D b1 pair.example M0000000000000000007.0");
}

/* A worker that dies with a job as the scheduler sent it, one part tried before (":<n>")
 * and one never ("+"): both are queued again, not left in flight for ever. */
static void test_dispatch_dead_worker(void **state)
{
    struct fixture *f = *state;
    struct sl_queue_part_init p = {.domain = "pair.example", .fresh = true};
    char job[SL_JOB_MAX];
    unsigned wi;

    add1(f->s.q, 1, "pair.example", 0)->part[0].attempts = 2;
    assert_non_null(sl_queue_add(f->s.q, "M0000000000000000002", "b1", 1, &p, 100));
    f->sup.want = 1;
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wi = f->sup.w[0].job == 1 ? 0 : 1;
    job_of(f, wi, job, sizeof job);
    assert_string_equal(job,
                        "J1 D b1 pair.example M0000000000000000001.0:2 M0000000000000000002.0+");
    sl_sched_worker_exit(&f->sup.w[wi], W_EXITCODE(0, SIGKILL), &f->s);
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_INFLIGHT), 0);
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_READY), 2);
}

/* A job that ends with no outcome for some of its parts (a worker that could not read the
 * job says nothing of any) leaves none of them in flight, where nothing would send them
 * again: they wait and are tried again, and no message is forgotten. */
static void test_unreported_parts(void **state)
{
    struct fixture *f = *state;
    char job[SL_JOB_MAX];
    unsigned wi;

    for (unsigned i = 0; i < 3; i++)
        add1(f->s.q, i, "pair.example", 0);
    f->sup.want = 1;
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wi = f->sup.w[0].job == 1 ? 0 : 1;
    job_of(f, wi, job, sizeof job);
    assert_int_equal(f->sup.w[wi].job, 1);
    say(f, wi, "D1 M0000000000000000000.0=d");
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_INFLIGHT), 0);
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_TIMER), 2);
    assert_int_equal(sl_queue_messages(f->s.q), 2);
    assert_int_equal(f->sup.w[wi].job, 0);
    say(f, wi, "I");
    add1(f->s.q, 3, "pair.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 1 - wi, job, sizeof job);
    if (job[0] == '\0')
        job_of(f, wi, job, sizeof job);
    assert_string_equal(job, "J2 D b1 pair.example M0000000000000000003.0");
    say(f, f->sup.w[0].job == 2 ? 0 : 1, "D2"); /* a job it could not read: no outcome */
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_INFLIGHT), 0);
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_TIMER), 3);
    assert_int_equal(sl_queue_messages(f->s.q), 3);
}

/* A worker that kept a connection ("K") is sent a job just as it closes that connection
 * (idle_timeout) and says "I": the two cross.  It runs the job next, so it is not free: it
 * is sent no second job, and when it dies with the job, every part of it goes back to the
 * queue.  Taken as free, it was sent a second job over the first, whose parts then stayed
 * in flight for ever. */
static void test_idle_crossing_job(void **state)
{
    struct fixture *f = *state;
    char job[SL_JOB_MAX];
    unsigned wi;

    for (unsigned i = 0; i < 4; i++)
        add1(f->s.q, i, "pair.example", 0);
    f->sup.want = 2; /* two parts a job */
    wi = 0;
    f->sup.w[1].ready = false; /* one worker only */
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, wi, job, sizeof job);
    assert_string_equal(job, "J1 D b1 pair.example M0000000000000000000.0 M0000000000000000001.0");
    say(f, wi, "D1 M0000000000000000000.0=d M0000000000000000001.0=d");
    say(f, wi, "K b1 pair.example"); /* it keeps the connection for more */
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, wi, job, sizeof job);
    assert_string_equal(job, "J2 D b1 pair.example M0000000000000000002.0");
    say(f, wi, "I"); /* sent before it read J2 */
    assert_true(f->sup.w[wi].busy);
    assert_int_equal(f->sup.w[wi].job, 2);
    assert_null(f->sup.w[wi].conn);
    add1(f->s.q, 4, "pair.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, wi, job, sizeof job);
    assert_string_equal(job, ""); /* no second job while J2 runs */
    sl_sched_worker_exit(&f->sup.w[wi], W_EXITCODE(0, SIGKILL), &f->s);
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_INFLIGHT), 0);
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_READY), 3);
}

/* A finished message whose file its worker could not remove ("k") is not indexed again: not
 * by the rest of the start scan it came in during, nor by a rescan after it, either of which
 * would send it again; after the rescan its removal is tried again (here it works) and the
 * message is gone from the spool. */
static void test_kept_out(void **state)
{
    struct fixture *f = *state;
    char dir[64] = "/tmp/sluice-kept.XXXXXX", err[256], id[SL_SPOOL_ID_LEN + 1];
    char job[SL_JOB_MAX], msg[128], path[128], first[SL_SPOOL_ID_LEN + 1];
    const char *r[] = {"a@pair.example"};
    struct sl_spool_new m = {
        .binding = "b1", .sender = "", .rcpt = r, .nrcpt = 1, .body = "\n", .len = 1};
    const char *at;
    unsigned wi;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(sl_spool_init(dir, err, sizeof err), 0);
    for (int i = 0; i < SL_PICKUP_CHUNK + 8; i++)
        assert_int_equal(sl_spool_write(dir, &m, id, err, sizeof err), 0);
    f->s.spool = dir;
    assert_int_equal(sl_pickup_start(&f->s), SL_PICKUP_CHUNK + 8);
    assert_true(sl_pickup_pending(&f->s));
    f->sup.want = 1;
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wi = f->sup.w[0].job == 1 ? 0 : 1;
    job_of(f, wi, job, sizeof job);
    assert_non_null(at = strstr(job, "pair.example "));
    memcpy(first, at + strlen("pair.example "), SL_SPOOL_ID_LEN);
    first[SL_SPOOL_ID_LEN] = '\0';
    snprintf(msg, sizeof msg, "D1 %s.0=k", first);
    say(f, wi, msg); /* while the start scan still indexes */
    assert_null(sl_queue_find(f->s.q, first));
    while (sl_pickup_step(&f->s, SL_PICKUP_CHUNK))
        ;
    assert_null(sl_queue_find(f->s.q, first));
    assert_int_equal(sl_queue_messages(f->s.q), SL_PICKUP_CHUNK + 7);
    snprintf(path, sizeof path, "%s/queue/%s", dir, first);
    assert_int_equal(access(path, F_OK), 0); /* the worker could not remove it */
    while (sl_pickup_rescan_step(&f->s, 16))
        assert_null(sl_queue_find(f->s.q, first));
    assert_null(sl_queue_find(f->s.q, first));
    assert_int_equal(access(path, F_OK), -1); /* removed after the rescan */
    assert_int_equal(f->s.kept_out.n, 0);
    test_rmtree(dir);
}

/* set_immutable - dir/queue/id can (not) be removed, as on a file system gone read-only */
static void set_immutable(const char *dir, const char *id, bool on)
{
    char path[128];
    int fd, flags;

    snprintf(path, sizeof path, "%s/queue/%s", dir, id);
    assert_true((fd = open(path, O_RDONLY)) >= 0);
    assert_int_equal(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
    flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
    assert_int_equal(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
    close(fd);
}

/* A message of two parts, both delivered, whose file the master cannot remove after the last:
 * kept out, so the rescan does not index it again (its parts would be sent again, every
 * minute); while the removal fails it stays kept out, and once it works the file goes. */
static void test_kept_out_parts(void **state)
{
    struct fixture *f = *state;
    char dir[64] = "/tmp/sluice-kept.XXXXXX", err[256], id[SL_SPOOL_ID_LEN + 1];
    char job[SL_JOB_MAX], msg[128], path[128];
    const char *r[] = {"a@pair.example", "b@full.example"};
    struct sl_spool_new m = {
        .binding = "b1", .sender = "", .rcpt = r, .nrcpt = 2, .body = "\n", .len = 1};

    assert_non_null(mkdtemp(dir));
    assert_int_equal(sl_spool_init(dir, err, sizeof err), 0);
    assert_int_equal(sl_spool_write(dir, &m, id, err, sizeof err), 0);
    f->s.spool = dir;
    assert_true(sl_pickup_new(&f->s, id));
    f->sup.want = 2;
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    set_immutable(dir, id, true);
    for (unsigned wi = 0; wi < 2; wi++) {
        job_of(f, wi, job, sizeof job);
        assert_true(strlen(job) > 2);
        snprintf(msg, sizeof msg, "D%" PRIu64 " %s.%c=d", f->sup.w[wi].job, id,
                 strstr(job, "pair.example") != NULL ? '0' : '1');
        say(f, wi, msg);
    }
    assert_null(sl_queue_find(f->s.q, id));
    snprintf(path, sizeof path, "%s/queue/%s", dir, id);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(f->s.kept_out.n, 1);
    while (sl_pickup_rescan_step(&f->s, 16))
        assert_null(sl_queue_find(f->s.q, id));
    assert_null(sl_queue_find(f->s.q, id));
    assert_int_equal(f->s.kept_out.n, 1); /* its removal failed again */
    set_immutable(dir, id, false);
    while (sl_pickup_rescan_step(&f->s, 16))
        assert_null(sl_queue_find(f->s.q, id));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(f->s.kept_out.n, 0);
    test_rmtree(dir);
}

#define BACKLOG_DOMAINS 200
#define BACKLOG_EACH    7 /* fewer than the warm-up's 64 per domain */

/* write_backlog - a spool in dir (a mkdtemp template) of BACKLOG_DOMAINS x BACKLOG_EACH
 * messages, binding b1, one recipient each; its ids in *ids, oldest first */
static void write_backlog(char *dir, struct sl_spool_ids *ids)
{
    struct sl_spool_ids stated;
    char err[256], rcpt[64];

    assert_non_null(mkdtemp(dir));
    assert_int_equal(sl_spool_init(dir, err, sizeof err), 0);
    for (size_t i = 0; i < BACKLOG_DOMAINS * BACKLOG_EACH; i++) {
        const char *r[] = {rcpt};
        char id[SL_SPOOL_ID_LEN + 1];
        snprintf(rcpt, sizeof rcpt, "u%zu@d%zu.example", i, i % BACKLOG_DOMAINS);
        struct sl_spool_new m = {
            .binding = "b1", .sender = "", .rcpt = r, .nrcpt = 1, .body = "\n", .len = 1};
        assert_int_equal(sl_spool_write(dir, &m, id, err, sizeof err), 0);
    }
    assert_int_equal(sl_spool_list(dir, ids, &stated, false), 0);
    sl_spool_ids_free(&stated);
}

/* A restart on a backlog over many small domains: during the start scan's warm-up no domain
 * with less than 64 messages is served (its first connection should carry all of
 * it), but only for SL_PICKUP_WARMUP_MS: then they are served though the scan goes on.  The
 * scan, read ahead by its thread, indexes every message once. */
static void test_pickup_warmup(void **state)
{
    struct fixture *f = *state;
    char dir[64] = "/tmp/sluice-pickup.XXXXXX", job[SL_JOB_MAX];
    const size_t total = BACKLOG_DOMAINS * BACKLOG_EACH;
    const struct timespec wait = {.tv_nsec = (SL_PICKUP_WARMUP_MS + 50) * 1000000L};
    struct sl_spool_ids ids;
    struct sl_sched s;

    write_backlog(dir, &ids);
    sl_spool_ids_free(&ids);
    sl_sched_init(&s, dir);
    assert_int_equal(sl_pickup_start(&s), total);
    assert_true(sl_pickup_warming(&s));
    f->sup.want = 2;
    sl_sched_dispatch(&s, &f->sup, f->cfg, &f->shm, 1); /* indexes a chunk more, serves none */
    assert_true(sl_pickup_pending(&s));
    assert_non_null(s.scan_ahead); /* the rest is read ahead */
    for (int i = 0; i < 2; i++) {
        job_of(f, i, job, sizeof job);
        assert_string_equal(job, "");
    }
    nanosleep(&wait, NULL);
    assert_true(sl_pickup_pending(&s));
    assert_false(sl_pickup_warming(&s)); /* the warm-up is over, the scan is not */
    sl_sched_dispatch(&s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 0, job, sizeof job);
    if (job[0] == '\0')
        job_of(f, 1, job, sizeof job);
    assert_memory_equal(job, "J", 1);
    while (sl_pickup_step(&s, SL_PICKUP_CHUNK))
        ;
    assert_int_equal(sl_queue_messages(s.q), total);
    sl_sched_free(&s);
    test_rmtree(dir);
}

/* A message of the listing indexed out of turn while the scan runs (an operator's command
 * names it, or a rescan finds it) and then gone (delivered, deleted) before the scan reaches
 * it is not indexed again from an envelope read ahead of that: it would come back as a
 * message never tried. */
static void test_pickup_gone_out_of_turn(void **state)
{
    char dir[64] = "/tmp/sluice-pickup.XXXXXX";
    const size_t total = BACKLOG_DOMAINS * BACKLOG_EACH;
    const struct timespec settle = {.tv_nsec = 50 * 1000000L};
    struct sl_spool_ids ids;
    struct sl_sched s;
    char id[SL_SPOOL_ID_LEN + 1];
    struct sl_qmsg *m;

    (void)state;
    write_backlog(dir, &ids);
    memcpy(id, ids.id[total - 10], sizeof id); /* far ahead of the master: read ahead */
    sl_spool_ids_free(&ids);
    sl_sched_init(&s, dir);
    assert_int_equal(sl_pickup_start(&s), total);
    sl_pickup_step(&s, SL_PICKUP_CHUNK); /* starts the thread */
    assert_non_null(s.scan_ahead);
    nanosleep(&settle, NULL); /* it reads the rest of the listing */
    assert_true(sl_pickup_id(&s, id));
    assert_non_null(m = sl_queue_find(s.q, id));
    assert_int_equal(sl_spool_remove(dir, id, 1), 0); /* delivered */
    sl_queue_drop(s.q, m);
    while (sl_pickup_step(&s, SL_PICKUP_CHUNK))
        ;
    assert_null(sl_queue_find(s.q, id));
    assert_int_equal(sl_queue_messages(s.q), total - 1);
    sl_sched_free(&s);
    test_rmtree(dir);
}

/* write_held - a message of nparts parts (binding b1) in dir, part 0 held by the operator in
 * its state file; its id in id */
static void write_held(const char *dir, size_t nparts, char *id)
{
    const char *r[] = {"a@one.example", "b@two.example"};
    struct sl_spool_new m = {
        .binding = "b1", .sender = "", .rcpt = r, .nrcpt = nparts, .body = "\n", .len = 1};
    struct sl_spool_state st;
    char err[256];

    assert_int_equal(sl_spool_write(dir, &m, id, err, sizeof err), 0);
    assert_int_equal(sl_spool_state_load(dir, id, 0, nparts, &st, err, sizeof err), 0);
    st.held = true;
    assert_int_equal(sl_spool_state_save(dir, id, 0, &st, err, sizeof err), 0);
    sl_spool_state_free(&st);
}

/* A message announced as new ("N ID") is taken without a look for state files only when it
 * cannot have one: one part, and made since the master's start listing.  An older one (an
 * announcement replayed, or one whose first read failed) and one of several parts (its
 * removal may have failed after its last part) are looked up: here a hold in the state file
 * shows which were. */
static void test_pickup_new(void **state)
{
    char dir[64] = "/tmp/sluice-pickup.XXXXXX", err[256];
    char old[SL_SPOOL_ID_LEN + 1], one[SL_SPOOL_ID_LEN + 1], two[SL_SPOOL_ID_LEN + 1];
    struct sl_sched s;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(sl_spool_init(dir, err, sizeof err), 0);
    write_held(dir, 1, old);
    sl_sched_init(&s, dir);
    assert_int_equal(sl_pickup_start(&s), 1);
    while (sl_pickup_step(&s, SL_PICKUP_CHUNK))
        ;
    assert_non_null(sl_queue_find(s.q, old));
    sl_queue_drop(s.q, sl_queue_find(s.q, old)); /* as if its first read had failed */
    write_held(dir, 1, one);                     /* a state file it cannot have: ignored */
    write_held(dir, 2, two);
    assert_true(sl_pickup_new(&s, old));
    assert_true(sl_pickup_new(&s, one));
    assert_true(sl_pickup_new(&s, two));
    assert_false(sl_pickup_new(&s, one)); /* indexed already */
    assert_int_equal(sl_queue_find(s.q, old)->part[0].state, SL_PART_HELD);
    assert_int_not_equal(sl_queue_find(s.q, one)->part[0].state, SL_PART_HELD);
    assert_true(sl_queue_find(s.q, one)->part[0].fresh);
    assert_int_equal(sl_queue_find(s.q, two)->part[0].state, SL_PART_HELD);
    sl_sched_free(&s);
    test_rmtree(dir);
}

/* A state file the disk fails to read (EIO) leaves its message out of the index, for the next
 * rescan: indexed as never tried, a part the operator held would be sent (and a suspect of
 * crashes sent with others).  The file stays where it is, and once it reads, the hold is
 * kept. */
static void test_pickup_state_unreadable(void **state)
{
    char dir[64] = "/tmp/sluice-pickup.XXXXXX", err[256], id[SL_SPOOL_ID_LEN + 1], path[160];
    struct sl_sched s;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(sl_spool_init(dir, err, sizeof err), 0);
    sl_sched_init(&s, dir);
    assert_int_equal(sl_pickup_start(&s), 0);
    while (sl_pickup_step(&s, SL_PICKUP_CHUNK))
        ;
    write_held(dir, 2, id); /* two parts: announced, its state files are read */
    test_fail_reads("/state/");
    bool taken = sl_pickup_new(&s, id);
    test_fail_reads(NULL); /* before any assertion: the cases after this one read */
    assert_false(taken);
    assert_null(sl_queue_find(s.q, id));
    snprintf(path, sizeof path, "%s/state/%s.0", dir, id);
    assert_int_equal(access(path, F_OK), 0); /* not set aside as damaged */
    assert_true(sl_pickup_new(&s, id));      /* the rescan's turn */
    assert_int_equal(sl_queue_find(s.q, id)->part[0].state, SL_PART_HELD);
    sl_sched_free(&s);
    test_rmtree(dir);
}

/* The periodic rescan catches a message whose announcement was lost, a batch of directory
 * entries per loop pass (on a spool of a million, one listing would stop the master for most
 * of a second).  It does not start while the start scan indexes: the ids of that listing would
 * be read out of turn, all at once, and the start scan lose its read-ahead and its knowledge
 * of which have no state file. */
static void test_rescan(void **state)
{
    char dir[64] = "/tmp/sluice-rescan.XXXXXX", err[256], lost[SL_SPOOL_ID_LEN + 1];
    char id[SL_SPOOL_ID_LEN + 1];
    const char *r[] = {"a@one.example"};
    struct sl_spool_new m = {
        .binding = "b1", .sender = "", .rcpt = r, .nrcpt = 1, .body = "\n", .len = 1};
    struct sl_sched s;
    size_t steps = 0;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(sl_spool_init(dir, err, sizeof err), 0);
    for (int i = 0; i < SL_PICKUP_CHUNK + 8; i++)
        assert_int_equal(sl_spool_write(dir, &m, id, err, sizeof err), 0);
    sl_sched_init(&s, dir);
    assert_int_equal(sl_pickup_start(&s), SL_PICKUP_CHUNK + 8);
    assert_true(sl_pickup_pending(&s));
    write_held(dir, 1, lost); /* written after the start listing, never announced */
    assert_false(sl_pickup_rescan_step(&s, SL_PICKUP_RESCAN_BATCH));
    assert_null(s.rescan);
    assert_int_equal(sl_queue_count(s.q, SL_PART_READY) + sl_queue_count(s.q, SL_PART_HELD),
                     SL_PICKUP_CHUNK);
    assert_true(s.scan_trust);
    assert_null(sl_queue_find(s.q, lost));
    while (sl_pickup_step(&s, SL_PICKUP_CHUNK))
        ;
    assert_null(sl_queue_find(s.q, lost));
    while (sl_pickup_rescan_step(&s, 1)) {
        steps++;
        assert_true(sl_sched_wait_ms(&s) == 0); /* the loop does not sleep between batches */
    }
    /* an entry per step: queue/'s messages and its two dots, then state/'s one and dots */
    assert_true(steps >= SL_PICKUP_CHUNK + 9 + 2 + 3);
    assert_null(s.rescan);
    assert_non_null(sl_queue_find(s.q, lost));
    assert_int_equal(sl_queue_find(s.q, lost)->part[0].state, SL_PART_HELD); /* state read */
    sl_sched_free(&s);
    test_rmtree(dir);
}

/* A worker that dies of its own doing (here SIGSEGV) with a job: its parts are not handed
 * out again at once, where one that kills workers would kill the next, but wait
 * SL_SCHED_CRASHED_S; a worker killed from outside (SIGKILL) gives them back at once
 * (test_dispatch_dead_worker). */
static void test_dispatch_crashed_worker(void **state)
{
    struct fixture *f = *state;
    int64_t before = (int64_t)time(NULL);
    unsigned wi;

    add1(f->s.q, 1, "pair.example", 0);
    add1(f->s.q, 2, "pair.example", 0);
    f->sup.want = 1;
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wi = f->sup.w[0].job == 1 ? 0 : 1;
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_INFLIGHT), 2);
    assert_true(sl_supervise_own_death(W_EXITCODE(0, SIGSEGV)));
    assert_false(sl_supervise_own_death(W_EXITCODE(0, SIGKILL)));
    sl_sched_worker_exit(&f->sup.w[wi], W_EXITCODE(0, SIGSEGV), &f->s);
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_INFLIGHT), 0);
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_READY), 0);
    assert_int_equal(sl_queue_count(f->s.q, SL_PART_TIMER), 2);
    assert_true(sl_queue_next_due(f->s.q) >= before + SL_SCHED_CRASHED_S);
}

/* After a crash, each part of the job goes in a job of its own: sent together again, a
 * message that kills workers would take the others down with it at every retry, and none would
 * ever be delivered.  A part never in a crash still goes with others, and a job stops before a
 * suspect. */
static void test_dispatch_crashed_alone(void **state)
{
    struct fixture *f = *state;
    char job[SL_JOB_MAX], want[SL_JOB_MAX];
    bool seen[4] = {false};
    unsigned wi, other;

    for (unsigned i = 1; i <= 3; i++)
        add1(f->s.q, i, "pair.example", 0);
    f->sup.want = 1;
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wi = f->sup.w[0].job == 1 ? 0 : 1;
    other = 1 - wi;
    job_of(f, wi, job, sizeof job);
    assert_string_equal(job, "J1 D b1 pair.example M0000000000000000001.0 "
                             "M0000000000000000002.0 M0000000000000000003.0");
    sl_sched_worker_exit(&f->sup.w[wi], W_EXITCODE(0, SIGSEGV), &f->s);
    f->sup.w[wi].ready = false; /* its replacement is not up yet */
    add1(f->s.q, 4, "pair.example", 0);
    add1(f->s.q, 5, "pair.example", 0);
    assert_int_equal(sl_queue_release_due(f->s.q, INT64_MAX), 3); /* as sluicectl flush */
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, other, job, sizeof job);
    assert_string_equal(job, "J2 D b1 pair.example M0000000000000000004.0 M0000000000000000005.0");
    say(f, other, "D2 M0000000000000000004.0=d M0000000000000000005.0=d");
    say(f, other, "K b1 pair.example");
    for (unsigned j = 3; j <= 5; j++) { /* the three suspects, one job each */
        char id[SL_SPOOL_ID_LEN + 1];
        unsigned n;
        sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
        job_of(f, other, job, sizeof job);
        assert_int_equal(sscanf(job, "J%*u D b1 pair.example M%u.0", &n), 1);
        assert_true(n >= 1 && n <= 3 && !seen[n]);
        seen[n] = true;
        snprintf(want, sizeof want, "J%u D b1 pair.example M%019u.0!1", j, n);
        assert_string_equal(job, want); /* nothing after it; the worker records the 1 */
        make_id(id, n);
        assert_int_equal(sl_queue_find(f->s.q, id)->part[0].crashes, 1);
        snprintf(want, sizeof want, "D%u M%019u.0=d", j, n);
        say(f, other, want);
        say(f, other, "K b1 pair.example");
    }
    assert_int_equal(sl_queue_messages(f->s.q), 0);
}

/* A suspect first in line goes alone too: the parts behind it wait for the next job. */
static void test_dispatch_suspect_first(void **state)
{
    struct fixture *f = *state;
    char job[SL_JOB_MAX];
    unsigned wi, other;

    add1(f->s.q, 1, "pair.example", 0);
    f->sup.want = 1;
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wi = f->sup.w[0].job == 1 ? 0 : 1;
    other = 1 - wi;
    sl_sched_worker_exit(&f->sup.w[wi], W_EXITCODE(0, SIGSEGV), &f->s);
    f->sup.w[wi].ready = false;
    assert_int_equal(sl_queue_release_due(f->s.q, INT64_MAX), 1);
    add1(f->s.q, 2, "pair.example", 0);
    add1(f->s.q, 3, "pair.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, other, job, sizeof job);
    assert_string_equal(job, "J2 D b1 pair.example M0000000000000000001.0!1");
    say(f, other, "D2 M0000000000000000001.0=d");
    say(f, other, "K b1 pair.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, other, job, sizeof job);
    assert_string_equal(job, "J3 D b1 pair.example M0000000000000000002.0 M0000000000000000003.0");
}

/* A suspect indexed from its state file (a master started again) still goes alone, and its
 * count goes to the worker. */
static void test_dispatch_suspect_restored(void **state)
{
    struct fixture *f = *state;
    struct sl_queue_part_init p = {.domain = "pair.example", .crashes = 3};
    char id[SL_SPOOL_ID_LEN + 1], job[SL_JOB_MAX];
    unsigned wi;

    make_id(id, 1);
    sl_queue_add(f->s.q, id, "b1", 1, &p, 100);
    add1(f->s.q, 2, "pair.example", 0);
    f->sup.want = 1;
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wi = f->sup.w[0].job == 1 ? 0 : 1;
    job_of(f, wi, job, sizeof job);
    assert_string_equal(job, "J1 D b1 pair.example M0000000000000000001.0!3");
}

/* A destination whose counter is full is held back, not handed out. */
static void test_dispatch_full(void **state)
{
    struct fixture *f = *state;
    char job[SL_JOB_MAX];
    uint32_t slot;
    struct sl_resv r;
    struct sl_refusal why;
    uint32_t owner;

    assert_true(sl_limits_dest_room(f->cfg, &f->shm, "b1", "full.example", NULL));
    /* hold the one connection [domain full.example] allows */
    assert_int_equal(sl_shm_owner_claim(&f->shm, getpid(), &owner), 0);
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_DOMAIN, "full.example", NULL, &slot), SL_SHM_OK);
    sl_resv_init(&r, 1);
    sl_resv_add(&r, slot, 1);
    assert_int_equal(sl_resv_acquire(&f->shm, owner, &r, NULL), SL_RESV_OK);
    assert_false(sl_limits_dest_room(f->cfg, &f->shm, "b1", "full.example", &why));
    assert_int_equal(why.kind, SL_SCOPE_DOMAIN);
    assert_int_equal(why.in_use, 1);
    assert_int_equal(why.limit, 1);

    add1(f->s.q, 7, "full.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 0, job, sizeof job);
    assert_string_equal(job, "");
    job_of(f, 1, job, sizeof job);
    assert_string_equal(job, "");
    assert_int_equal(sl_queue_blocked(f->s.q), 1);
    sl_resv_release(&f->shm, owner, &r);
    say(f, 0, "I");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 0, job, sizeof job);
    if (job[0] == '\0')
        job_of(f, 1, job, sizeof job);
    assert_string_equal(job, "J1 D b1 full.example M0000000000000000007.0");
}

/* The unit of a job not yet started counts: of two bindings waiting for [domain
 * full.example]'s one connection, one gets a job and the other waits (not a second job that
 * its worker would find refused).  The promise ends once the worker took the unit (the table
 * counts it); a promise never taken frees the unit for the one that waited. */
static void test_dispatch_promised(void **state)
{
    struct fixture *f = *state;
    struct sl_queue_part_init p = {.domain = "full.example"};
    char job[SL_JOB_MAX], id[SL_SPOOL_ID_LEN + 1];
    const struct sl_qdest *other;
    struct sl_resv r;
    uint32_t slot, pair;

    make_id(id, 20);
    sl_queue_add(f->s.q, id, "b1", 1, &p, 100);
    make_id(id, 21);
    sl_queue_add(f->s.q, id, "b2", 1, &p, 100);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    unsigned wi = f->sup.w[0].job == 1 ? 0 : 1;
    job_of(f, wi, job, sizeof job);
    assert_string_equal(job, "J1 D b1 full.example M0000000000000000020.0");
    job_of(f, 1 - wi, job, sizeof job);
    assert_string_equal(job, ""); /* the limit's one unit is promised to job 1 */
    other = sl_queue_dest(f->s.q, "b2", "full.example");
    assert_int_equal(other->where, SL_QDEST_BLOCKED);
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_DOMAIN, "full.example", NULL, &slot), SL_SHM_OK);
    assert_int_equal(other->wait_slot, slot);
    /* the pairs have no limit and no cap: the master made no counter for them (a slot is for
     * ever; the worker makes it when it connects) */
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_BINDING_DOMAIN, "b1", "full.example", &pair),
                     SL_SHM_NOENT);

    /* the worker takes the unit: the promise ends, the table's count holds b2 back */
    sl_resv_init(&r, 1);
    sl_resv_add(&r, slot, 1);
    assert_int_equal(sl_resv_acquire(&f->shm, f->sup.w[wi].owner, &r, NULL), SL_RESV_OK);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    assert_int_equal(f->sup.w[wi].npromised, 0);
    assert_int_equal(other->where, SL_QDEST_BLOCKED);
    job_of(f, 1 - wi, job, sizeof job);
    assert_string_equal(job, "");
    sl_resv_release(&f->shm, f->sup.w[wi].owner, &r);
    say(f, wi, "D1 M0000000000000000020.0=d");
    say(f, wi, "I");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 0, job, sizeof job);
    if (job[0] == '\0')
        job_of(f, 1, job, sizeof job);
    assert_string_equal(job, "J2 D b2 full.example M0000000000000000021.0");

    /* job 2 ends before its worker tried (its part was gone): what waits for the unit goes */
    make_id(id, 22);
    sl_queue_add(f->s.q, id, "b1", 1, &p, 100);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    other = sl_queue_dest(f->s.q, "b1", "full.example");
    assert_int_equal(other->where, SL_QDEST_BLOCKED);
    wi = f->sup.w[0].job == 2 ? 0 : 1;
    say(f, wi, "D2 M0000000000000000021.0=x");
    assert_int_equal(other->where, SL_QDEST_RING);
}

/* A job refused ("w") by the very counter it was promised stays held back: its promise ends
 * before the outcome holds it, so the end does not undo the hold. */
static void test_refused_promised(void **state)
{
    struct fixture *f = *state;
    char job[SL_JOB_MAX], msg[128];
    const struct sl_qdest *d;
    uint32_t slot;

    add1(f->s.q, 9, "full.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    unsigned wi = f->sup.w[0].job == 1 ? 0 : 1;
    job_of(f, wi, job, sizeof job);
    assert_string_equal(job, "J1 D b1 full.example M0000000000000000009.0");
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_DOMAIN, "full.example", NULL, &slot), SL_SHM_OK);
    snprintf(msg, sizeof msg, "S domain full.example - %u", slot);
    say(f, wi, msg);
    say(f, wi, "D1 M0000000000000000009.0=w");
    d = sl_queue_dest(f->s.q, "b1", "full.example");
    assert_int_equal(d->where, SL_QDEST_BLOCKED);
    assert_int_equal(d->wait_slot, slot);
}

/* refuse - worker wi's job (number job, its one part id.0) refused by the counter of kind in
 * slot, as a worker says it */
static void refuse(struct fixture *f, unsigned wi, unsigned job, unsigned id, const char *kind,
                   uint32_t slot)
{
    char msg[128];

    snprintf(msg, sizeof msg, "S %s - - %u", kind, slot);
    say(f, wi, msg);
    snprintf(msg, sizeof msg, "D%u M%019u.0=w", job, id);
    say(f, wi, msg);
}

/* A worker that took its units and gave them back (its cluster lease refused) made room: at
 * its "I", the destination waiting for [domain full.example]'s one unit goes at once, not
 * after the safety net; the one refused stays held back, and so does one waiting for a counter
 * the worker never took. */
static void test_gave_back(void **state)
{
    struct fixture *f = *state;
    struct sl_queue_part_init p = {.domain = "full.example"};
    char id[SL_SPOOL_ID_LEN + 1];
    const struct sl_qdest *b1, *b2, *pair;
    struct sl_resv r;
    uint32_t dom, lease, host;
    unsigned wi, wp;

    make_id(id, 40);
    sl_queue_add(f->s.q, id, "b1", 1, &p, 100);
    make_id(id, 41);
    sl_queue_add(f->s.q, id, "b2", 1, &p, 100);
    add1(f->s.q, 42, "pair.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    b1 = sl_queue_dest(f->s.q, "b1", "full.example");
    b2 = sl_queue_dest(f->s.q, "b2", "full.example");
    pair = sl_queue_dest(f->s.q, "b1", "pair.example");
    assert_int_equal(b2->where, SL_QDEST_BLOCKED); /* the domain's unit is promised to b1 */
    wi = strstr(f->sup.w[0].parts, "40.0") != NULL ? 0 : 1;
    wp = 1 - wi;
    /* pair.example's worker is refused by a host counter before it took anything */
    assert_int_equal(sl_shm_lookup(&f->shm, SL_SCOPE_HOST, "mx.pair.example", NULL, 0, &host),
                     SL_SHM_OK);
    refuse(f, wp, (unsigned)f->sup.w[wp].job, 42, "host", host);
    say(f, wp, "I");
    assert_int_equal(pair->where, SL_QDEST_BLOCKED);
    assert_int_equal(b2->where, SL_QDEST_BLOCKED); /* it gave nothing back */
    /* b1's worker takes the domain's unit, then gives it back: the cluster refused the lease */
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_DOMAIN, "full.example", NULL, &dom), SL_SHM_OK);
    sl_resv_init(&r, 1);
    sl_resv_add(&r, dom, 1);
    assert_int_equal(sl_resv_acquire(&f->shm, f->sup.w[wi].owner, &r, NULL), SL_RESV_OK);
    sl_resv_release(&f->shm, f->sup.w[wi].owner, &r);
    assert_int_equal(sl_shm_lookup(&f->shm, SL_SCOPE_CLUSTER, "domain", "full.example", 0, &lease),
                     SL_SHM_OK);
    refuse(f, wi, (unsigned)f->sup.w[wi].job, 40, "cluster", lease);
    assert_int_equal(b2->where, SL_QDEST_BLOCKED); /* not yet: a "K" would mean it kept them */
    add1(f->s.q, 43, "late.example", 0);           /* ready, in the ring, but it never waited */
    say(f, wi, "I");
    assert_int_equal(b2->where, SL_QDEST_RING);
    assert_ptr_equal(sl_queue_next(f->s.q), b2); /* it waited: the unit given back is its first */
    assert_int_equal(b1->where, SL_QDEST_BLOCKED);
    assert_int_equal(b1->wait_slot, lease);
    assert_int_equal(pair->where, SL_QDEST_BLOCKED); /* it waits for a counter never taken */
}

/* job_to - the job worker i received, which must be want (printf-style) */
static void job_to(struct fixture *f, unsigned i, const char *fmt, unsigned id)
{
    char job[SL_JOB_MAX], want[SL_JOB_MAX];

    job_of(f, (int)i, job, sizeof job);
    snprintf(want, sizeof want, fmt, id);
    assert_string_equal(job, want);
}

/* A destination held back while its own connection is busy, then served on that connection,
 * still waits for a unit: when the connection goes to one that waited longer (fair turns) and
 * comes back spare, it returns to the first at once.  (Served so, it had been left held back
 * waiting for no counter: no spare connection was ever given to it, and its mail waited for a
 * connection to close elsewhere or for the safety net, a second.) */
static void test_wait_kept_on_own_connection(void **state)
{
    struct fixture *f = *state;
    struct sl_queue_part_init p = {.domain = "full.example"};
    char id[SL_SPOOL_ID_LEN + 1];
    const struct sl_qdest *a, *b;
    struct sl_resv r;
    uint32_t dom;
    unsigned wa;

    f->sup.want = 2; /* a's parts spread: half of them a job */
    for (unsigned i = 60; i < 64; i++)
        add1(f->s.q, i, "full.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wa = f->sup.w[0].job == 1 ? 0 : 1;
    job_to(f, wa, "J1 D b1 full.example M%019u.0 M0000000000000000061.0", 60);
    a = sl_queue_dest(f->s.q, "b1", "full.example");
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_DOMAIN, "full.example", NULL, &dom), SL_SHM_OK);
    assert_int_equal(a->where, SL_QDEST_BLOCKED); /* the rest: the one unit is job 1's */
    assert_int_equal(a->wait_slot, dom);
    sl_resv_init(&r, 1); /* the worker takes the unit */
    sl_resv_add(&r, dom, 1);
    assert_int_equal(sl_resv_acquire(&f->shm, f->sup.w[wa].owner, &r, NULL), SL_RESV_OK);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    say(f, wa, "D1 M0000000000000000060.0=d M0000000000000000061.0=d");
    say(f, wa, "K b1 full.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_to(f, wa, "J2 D b1 full.example M%019u.0", 62); /* on its own connection */
    assert_int_equal(a->where, SL_QDEST_BLOCKED);
    assert_int_equal(a->wait_slot, dom); /* and still waiting, for its last part */

    make_id(id, 64); /* b2 waits for the unit too, from now */
    sl_queue_add(f->s.q, id, "b2", 1, &p, 100);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    b = sl_queue_dest(f->s.q, "b2", "full.example");
    assert_int_equal(b->where, SL_QDEST_BLOCKED);
    say(f, wa, "D2 M0000000000000000062.0=d");
    say(f, wa, "K b1 full.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_to(f, wa, "J3 D b2 full.example M%019u.0", 64); /* a's connection: b2 waits too */
    say(f, wa, "D3 M0000000000000000064.0=d");
    say(f, wa, "K b2 full.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_to(f, wa, "J4 D b1 full.example M%019u.0", 63); /* spare now: back to a at once */
    sl_resv_release(&f->shm, f->sup.w[wa].owner, &r);
}

/* third_worker - a third worker for the fixture, free while the other two are busy, so that
 * destinations get their ring turns and are held back */
static void third_worker(struct fixture *f)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    f->sup.w = realloc(f->sup.w, 3 * sizeof *f->sup.w);
    f->sup.w[2] = (struct sl_worker_slot){
        .pid = 102, .fd = sv[0], .ready = true, .gen = 1, .stuck_slot = UINT32_MAX};
    f->sup.nw = 3;
    f->sup.want = 3;
    f->peer[2] = sv[1];
}

/* drop_third_worker - the fixture's two workers again, the counters emptied */
static void drop_third_worker(struct fixture *f)
{
    uint32_t server, reserve;

    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_SERVER, "", NULL, &server), SL_SHM_OK);
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_RESERVE, "", NULL, &reserve), SL_SHM_OK);
    sl_store64(&f->shm.slots[server].count, 0);
    sl_store64(&f->shm.slots[reserve].count, 0);
    f->sup.nw = 2;
    close(f->sup.w[2].fd);
    close(f->peer[2]);
    free(f->sup.w[2].parts);
}

/* server_in_use - the server counter at n of its 10, its reserve used up */
static uint32_t server_in_use(struct fixture *f, uint64_t n)
{
    uint32_t server, reserve;

    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_SERVER, "", NULL, &server), SL_SHM_OK);
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_RESERVE, "", NULL, &reserve), SL_SHM_OK);
    sl_store64(&f->shm.slots[server].count, n);
    sl_store64(&f->shm.slots[reserve].count, 200);
    return server;
}

/* worker_of - the worker that has job id */
static unsigned worker_of(const struct fixture *f, uint64_t id)
{
    for (unsigned i = 0; i < f->sup.nw; i++)
        if (f->sup.w[i].job == id)
            return i;
    fail_msg("no worker has job %" PRIu64, id);
    return 0;
}

/* part_to - part id (one message, one part) of binding for domain */
static void part_to(struct fixture *f, unsigned id, const char *binding, const char *domain)
{
    struct sl_queue_part_init p = {.domain = domain};
    char mid[SL_SPOOL_ID_LEN + 1];

    make_id(mid, id);
    sl_queue_add(f->s.q, mid, binding, 1, &p, 100);
}

/* Two destinations that each opened a connection and wait for one more (the server counter
 * full, its reserve too) keep their own: at a job's end a connection goes on with its mail
 * rather than to the other, which would hand it back at its own job's end, a new connection
 * each time.  A fair turn is for a destination that has no connection, nor a job opening one
 * (its worker's "K" has not come yet). */
static void test_no_handing_to_and_fro(void **state)
{
    struct fixture *f = *state;
    struct sl_resv r1, r2;
    uint32_t server;
    unsigned wa;

    third_worker(f);
    for (unsigned i = 70; i < 74; i++)
        part_to(f, i, i < 72 ? "b1" : "b2", "x.example");
    server = server_in_use(f, 8); /* two units free */
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wa = worker_of(f, 1);
    job_to(f, wa, "J1 D b1 x.example M%019u.0", 70);
    job_to(f, worker_of(f, 2), "J2 D b2 x.example M%019u.0 M0000000000000000073.0", 72);
    part_to(f, 74, "b2", "x.example"); /* more for b2 */
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    assert_int_equal(sl_queue_dest(f->s.q, "b1", "x.example")->where, SL_QDEST_BLOCKED);
    assert_int_equal(sl_queue_dest(f->s.q, "b2", "x.example")->where, SL_QDEST_BLOCKED);
    sl_resv_init(&r1, 1); /* the two workers take their units */
    sl_resv_add(&r1, server, 10);
    assert_int_equal(sl_resv_acquire(&f->shm, f->sup.w[wa].owner, &r1, NULL), SL_RESV_OK);
    sl_resv_init(&r2, 1);
    sl_resv_add(&r2, server, 10);
    assert_int_equal(sl_resv_acquire(&f->shm, f->sup.w[wa].owner, &r2, NULL), SL_RESV_OK);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    /* b2's job is done, its worker's K not read yet: its connection still counts */
    say(f, worker_of(f, 2), "D2 M0000000000000000072.0=d M0000000000000000073.0=d");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    say(f, wa, "D1 M0000000000000000070.0=d");
    say(f, wa, "K b1 x.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_to(f, wa, "J3 D b1 x.example M%019u.0", 71); /* its own, not b2's */
    sl_resv_release(&f->shm, f->sup.w[wa].owner, &r1);
    sl_resv_release(&f->shm, f->sup.w[wa].owner, &r2);
    drop_third_worker(f);
}

/* A job sent while the server counter looks full goes through its reserve, but its worker
 * takes a server unit if one is free when it connects (the first of those that looked taken
 * was only promised, and that job ended without its take).  Such a job's promise counts the
 * server unit too: a third destination then waits, rather than be sent a job for the unit
 * the second one takes, which its worker would find full (a refusal that the master's own
 * count made; it was seen at one message per connection, a few in 10,000). */
static void test_reserve_job_promises_server(void **state)
{
    struct fixture *f = *state;
    uint32_t reserve;
    char msg[128];
    unsigned wa, wb;

    third_worker(f);
    f->sup.want = 1;
    server_in_use(f, 9); /* one unit free */
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_RESERVE, "", NULL, &reserve), SL_SHM_OK);
    sl_store64(&f->shm.slots[reserve].count, 199); /* and one of the reserve */
    part_to(f, 80, "b1", "a.example");
    part_to(f, 81, "b1", "b.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wa = worker_of(f, 1);
    wb = worker_of(f, 2);
    job_to(f, wa, "J1 D b1 a.example M%019u.0", 80);
    job_to(f, wb, "J2 D b1 b.example M%019u.0",
           81);                                     /* through the reserve: the server looks full */
    snprintf(msg, sizeof msg, "D1 M%019u.0=x", 80); /* job 1 ends before its take */
    say(f, wa, msg);
    say(f, wa, "I");
    part_to(f, 82, "b1", "c.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    /* job 2's worker may take the server's free unit: c.example waits for it */
    assert_int_equal(sl_queue_dest(f->s.q, "b1", "c.example")->where, SL_QDEST_BLOCKED);
    assert_int_equal(f->sup.w[3 - wa - wb].job, 0);
    assert_int_equal(f->sup.w[wa].job, 0);
    drop_third_worker(f);
}

/* A spare connection goes first to a waiting destination that has no connection, then to one
 * that waits for one more (it has its own, busy, and waited longer). */
static void test_spare_to_unconnected(void **state)
{
    struct fixture *f = *state;
    unsigned wc;

    third_worker(f);
    say(f, 0, "K b1 x.example");
    say(f, 1, "K b1 c.example");
    server_in_use(f, 10);
    for (unsigned i = 80; i < 83; i++)
        part_to(f, i, "b1", "x.example");
    part_to(f, 90, "b1", "c.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_to(f, 0, "J1 D b1 x.example M%019u.0", 80);
    wc = worker_of(f, 2);
    job_to(f, wc, "J2 D b1 c.example M%019u.0", 90);
    say(f, 0, "D1 M0000000000000000080.0=d");
    say(f, 0, "K b1 x.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_to(f, 0, "J3 D b1 x.example M%019u.0", 81); /* x.example waits on, for one more */
    part_to(f, 95, "b2", "x.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    assert_int_equal(sl_queue_dest(f->s.q, "b2", "x.example")->where, SL_QDEST_BLOCKED);
    say(f, wc, "D2 M0000000000000000090.0=d");
    say(f, wc, "K b1 c.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_to(f, wc, "J4 D b2 x.example M%019u.0", 95); /* c's spare connection: b2 has none */
    drop_third_worker(f);
}

/* A held-back destination whose last ready part its own connection took waits for nothing:
 * it leaves the held-back list, so that its next mail brings it back to the ring, where it
 * may wait anew.  (Left there with no counter to wait for, it lost its connection to a fair
 * turn and no spare one came back to it, as in test_wait_kept_on_own_connection.) */
static void test_emptied_while_held_back(void **state)
{
    struct fixture *f = *state;
    const struct sl_qdest *a;

    third_worker(f);
    say(f, 0, "K b1 x.example");
    server_in_use(f, 10);
    part_to(f, 100, "b1", "x.example");
    part_to(f, 101, "b1", "x.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_to(f, 0, "J1 D b1 x.example M%019u.0", 100);
    a = sl_queue_dest(f->s.q, "b1", "x.example");
    assert_int_equal(a->where, SL_QDEST_BLOCKED);
    say(f, 0, "D1 M0000000000000000100.0=d");
    say(f, 0, "K b1 x.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_to(f, 0, "J2 D b1 x.example M%019u.0", 101); /* its last part */
    assert_int_equal(a->where, SL_QDEST_IDLE);
    part_to(f, 102, "b1", "x.example"); /* more mail: back in the ring */
    assert_int_equal(a->where, SL_QDEST_RING);
    part_to(f, 103, "b2", "x.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1); /* both held back, waiting */
    say(f, 0, "D2 M0000000000000000101.0=d");
    say(f, 0, "K b1 x.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_to(f, 0, "J3 D b2 x.example M%019u.0", 103); /* a fair turn: b2 has no connection */
    say(f, 0, "D3 M0000000000000000103.0=d");
    say(f, 0, "K b2 x.example");
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_to(f, 0, "J4 D b1 x.example M%019u.0", 102); /* spare now: back to b1 at once */
    drop_third_worker(f);
}

/* A destination lives while a job for it is out, even when the message of its part goes
 * meanwhile (another part's outcome dropped it): the scheduler counts the job for it until the
 * worker is free again, and frees it then. */
static void test_dest_kept_for_its_job(void **state)
{
    struct fixture *f = *state;
    struct sl_queue_part_init p[2] = {{.domain = "a.example"}, {.domain = "b.example"}};
    char id[SL_SPOOL_ID_LEN + 1];
    unsigned wa;

    make_id(id, 110);
    sl_queue_add(f->s.q, id, "b1", 2, p, 100);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    wa = worker_of(f, 1);
    job_to(f, wa, "J1 D b1 a.example M%019u.0", 110);
    job_to(f, 1 - wa, "J2 D b1 b.example M%019u.1", 110);
    say(f, wa, "D1 M0000000000000000110.0=x"); /* the message is gone, b.example's part too */
    assert_null(sl_queue_find(f->s.q, "M0000000000000000110"));
    assert_non_null(sl_queue_dest(f->s.q, "b1", "b.example")); /* its job is out */
    say(f, 1 - wa, "D2 M0000000000000000110.1=d");
    assert_non_null(sl_queue_dest(f->s.q, "b1", "b.example")); /* its worker is not free yet */
    say(f, 1 - wa, "I");
    assert_null(sl_queue_dest(f->s.q, "b1", "b.example"));
}

/* A worker connected elsewhere closes that connection to open one for its new job, and is
 * refused: what the connection held is free (which counters, the master does not know), so at
 * its "I" the mail held back goes at once, but the mail held back by the refusing counter.
 * Refused on its own connection and keeping it ("K": a message throttle's empty bucket), it
 * freed nothing, and nothing is released. */
static void test_closed_then_refused(void **state)
{
    struct fixture *f = *state;
    char job[SL_JOB_MAX];
    const struct sl_qdest *full, *other;
    uint32_t fullhost, host, bucket;

    say(f, 0, "K b1 pair.example mx.pair.example");
    add1(f->s.q, 50, "full.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    assert_int_equal(f->sup.w[1].job, 1); /* the worker without a connection */
    assert_int_equal(sl_shm_lookup(&f->shm, SL_SCOPE_HOST, "mx.full.example", NULL, 0, &fullhost),
                     SL_SHM_OK);
    refuse(f, 1, 1, 50, "host", fullhost); /* its "I" comes later: it stays busy */
    full = sl_queue_dest(f->s.q, "b1", "full.example");
    assert_int_equal(full->where, SL_QDEST_BLOCKED);
    /* the connected worker gets its own destination's next message; the messages throttle's
     * bucket is dry: refused, it keeps its connection */
    add1(f->s.q, 52, "pair.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 0, job, sizeof job);
    assert_string_equal(job, "J2 D b1 pair.example M0000000000000000052.0");
    assert_int_equal(
        sl_shm_lookup(&f->shm, SL_SCOPE_THROTTLE_MSG, "b1", "pair.example", 0, &bucket), SL_SHM_OK);
    refuse(f, 0, 2, 52, "throttle_msg", bucket);
    say(f, 0, "K b1 pair.example mx.pair.example");
    assert_int_equal(full->where, SL_QDEST_BLOCKED);
    /* the bucket refilled: the message goes over the kept connection */
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 0, job, sizeof job);
    assert_string_equal(job, "J3 D b1 pair.example M0000000000000000052.0");
    say(f, 0, "D3 M0000000000000000052.0=d");
    say(f, 0, "K b1 pair.example mx.pair.example");
    /* a job of another domain: it closes pair.example's connection to try, and is refused */
    add1(f->s.q, 51, "other.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 0, job, sizeof job);
    assert_string_equal(job, "J4 D b1 other.example M0000000000000000051.0");
    assert_int_equal(sl_shm_lookup(&f->shm, SL_SCOPE_HOST, "mx.other.example", NULL, 0, &host),
                     SL_SHM_OK);
    refuse(f, 0, 4, 51, "host", host);
    say(f, 0, "I");
    assert_int_equal(full->where, SL_QDEST_RING);
    other = sl_queue_dest(f->s.q, "b1", "other.example");
    assert_int_equal(other->where, SL_QDEST_BLOCKED);
}

/* A shaping action's cap of 1 over a domain that no binding has connected to yet: the gate
 * counts the first job's connection, promised before its worker made the counter, so two
 * messages and two free workers make one job, not two (the second refused at its worker). */
static void test_cap_promised(void **state)
{
    struct fixture *f = *state;
    struct sl_action a = {.kind = SL_ACTION_MAX_CONNECTIONS, .value = 1, .since = time(NULL)};
    char job0[SL_JOB_MAX], job1[SL_JOB_MAX];
    uint32_t slot;

    snprintf(a.domain, sizeof a.domain, "capped.example"); /* every binding */
    sl_shaping_use(f->cfg, &f->shm);
    assert_true(sl_shaping_add(&a)); /* its cap published in the table */
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_BINDING_DOMAIN, "b1", "capped.example", &slot),
                     SL_SHM_NOENT);
    add1(f->s.q, 30, "capped.example", 0);
    add1(f->s.q, 31, "capped.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 0, job0, sizeof job0);
    job_of(f, 1, job1, sizeof job1);
    assert_true((job0[0] == '\0') != (job1[0] == '\0')); /* exactly one job */
    assert_string_equal(job0[0] != '\0' ? job0 : job1,
                        "J1 D b1 capped.example M0000000000000000030.0");
    assert_int_equal(sl_queue_dest(f->s.q, "b1", "capped.example")->where, SL_QDEST_BLOCKED);
}

/* The "I" of the worker that just reported "w" closed no connection: the destination stays
 * held back; another worker's "I" releases it. */
static void test_refused_idle(void **state)
{
    struct fixture *f = *state;
    char job[SL_JOB_MAX];
    const struct sl_qdest *d;

    add1(f->s.q, 9, "pair.example", 0);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    unsigned wi = f->sup.w[0].job == 1 ? 0 : 1;
    job_of(f, wi, job, sizeof job);
    assert_string_equal(job, "J1 D b1 pair.example M0000000000000000009.0");
    say(f, wi, "S binding_host b1 mx.pair.example");
    say(f, wi, "D1 M0000000000000000009.0=w");
    say(f, wi, "I");
    d = sl_queue_dest(f->s.q, "b1", "pair.example");
    assert_int_equal(d->where, SL_QDEST_BLOCKED);
    sl_sched_dispatch(&f->s, &f->sup, f->cfg, &f->shm, 1);
    job_of(f, 1 - wi, job, sizeof job);
    assert_string_equal(job, "");
    say(f, 1 - wi, "I");
    assert_int_equal(d->where, SL_QDEST_RING);
}

/* The server counter alone full: a destination with no connection still has room (the
 * reserve is for it), one with a connection does not. */
static void test_room_reserve(void **state)
{
    struct fixture *f = *state;
    uint32_t server, pair, owner;
    struct sl_resv r;
    struct sl_refusal why;

    assert_int_equal(sl_shm_owner_claim(&f->shm, getpid(), &owner), 0);
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_SERVER, "", NULL, &server), SL_SHM_OK);
    sl_store64(&f->shm.slots[server].count, 10); /* as if 10 connections were open: full */
    assert_true(sl_limits_dest_room(f->cfg, &f->shm, "b1", "pair.example", NULL));
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_BINDING_DOMAIN, "b1", "pair.example", &pair),
                     SL_SHM_OK);
    sl_resv_init(&r, 1);
    sl_resv_add(&r, pair, 2);
    assert_int_equal(sl_resv_acquire(&f->shm, owner, &r, NULL), SL_RESV_OK);
    assert_false(sl_limits_dest_room(f->cfg, &f->shm, "b1", "pair.example", &why));
    assert_int_equal(why.kind, SL_SCOPE_SERVER);
    assert_int_equal(why.in_use, 10);
    sl_store64(&f->shm.slots[server].count, 0);
    assert_true(sl_limits_dest_room(f->cfg, &f->shm, "b1", "pair.example", NULL));
    sl_resv_release(&f->shm, owner, &r);
    /* the reserve used up too (200 by default): a destination with no connection waits for
     * the server counter instead of being handed to a worker that would be refused */
    uint32_t reserve;
    assert_int_equal(sl_shm_find(&f->shm, SL_SCOPE_RESERVE, "", NULL, &reserve), SL_SHM_OK);
    sl_store64(&f->shm.slots[server].count, 10);
    sl_store64(&f->shm.slots[reserve].count, 200);
    assert_false(sl_limits_dest_room(f->cfg, &f->shm, "b1", "fresh.example", &why));
    assert_int_equal(why.kind, SL_SCOPE_SERVER);
    sl_store64(&f->shm.slots[reserve].count, 199);
    assert_true(sl_limits_dest_room(f->cfg, &f->shm, "b1", "fresh.example", NULL));
    sl_store64(&f->shm.slots[server].count, 0);
    sl_store64(&f->shm.slots[reserve].count, 0);
}

/* The operator's commands on the index: a held part is never handed out, whether it was ready
 * or deferred, and comes back where it belongs when released; flush makes a deferred part
 * ready at once; finish makes a part final in any waiting state, the message going with its
 * last part; a hold read from the spool indexes the part as held. */
static void test_operator(void **state)
{
    struct sl_queue *q = sl_queue_new();
    struct sl_qmsg *ready = add1(q, 1, "a.example", 0), *later = add1(q, 2, "a.example", 500);
    struct sl_queue_part_init parts[2] = {{.domain = "a.example", .held = true},
                                          {.domain = "b.example"}};
    char id[SL_SPOOL_ID_LEN + 1];
    struct sl_qmsg *two;

    (void)state;
    sl_queue_hold(q, &ready->part[0]);
    sl_queue_hold(q, &later->part[0]);
    assert_int_equal(sl_queue_count(q, SL_PART_HELD), 2);
    assert_null(sl_queue_next(q));
    assert_int_equal(sl_queue_release_due(q, 1000), 0); /* held: not in the heap either */
    sl_queue_unhold(q, &ready->part[0], 100);
    sl_queue_unhold(q, &later->part[0], 100);
    assert_int_equal(ready->part[0].state, SL_PART_READY);
    assert_int_equal(later->part[0].state, SL_PART_TIMER); /* due at 500, not yet */
    sl_queue_flush_part(q, &later->part[0]);
    assert_int_equal(later->part[0].state, SL_PART_READY);
    assert_int_equal(sl_queue_next_due(q), INT64_MAX);
    assert_true(sl_queue_finish(q, &ready->part[0])); /* one part: the message goes */
    assert_null(sl_queue_find(q, "M0000000000000000001"));

    make_id(id, 3);
    two = sl_queue_add(q, id, "b1", 2, parts, 100);
    assert_non_null(two);
    assert_int_equal(two->part[0].state, SL_PART_HELD);
    assert_int_equal(two->part[1].state, SL_PART_READY);
    assert_false(sl_queue_finish(q, &two->part[0]));
    assert_int_equal(sl_queue_count(q, SL_PART_HELD), 0);
    assert_true(sl_queue_finish(q, &two->part[1]));
    assert_null(sl_queue_find(q, id));
    sl_queue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fairness),
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_blocked),
        cmocka_unit_test(test_unblock_order),
        cmocka_unit_test(test_release_where),
        cmocka_unit_test(test_release_merges),
        cmocka_unit_test(test_wait_front),
        cmocka_unit_test(test_heap),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_drop),
        cmocka_unit_test(test_dead_worker),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_operator),
        cmocka_unit_test_setup_teardown(test_dispatch_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_dead_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_crossing_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreported_parts, setup, teardown),
        cmocka_unit_test(test_pickup_state_unreadable),
        cmocka_unit_test_setup_teardown(test_kept_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kept_out_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_crashed_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_crashed_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_suspect_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_suspect_restored, setup, teardown),
        cmocka_unit_test(test_pickup_new),
        cmocka_unit_test(test_rescan),
        cmocka_unit_test_setup_teardown(test_dispatch_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pickup_warmup, setup, teardown),
        cmocka_unit_test(test_pickup_gone_out_of_turn),
        cmocka_unit_test_setup_teardown(test_refused_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_promised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_promised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_promised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gave_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_kept_on_own_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_handing_to_and_fro, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spare_to_unconnected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserve_job_promises_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emptied_while_held_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_kept_for_its_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_then_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room_reserve, setup, teardown),
    };
    sl_msg_init("test_queue");
    sl_msg_set_level(SL_MSG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
