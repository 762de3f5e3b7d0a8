/*
 * test_shm.c - the counter table in one process: segment life cycle, keys, limits, reservations,
 * generations, owner reclaim and the audit.
 *
 * Each case makes its own segment under a unique name ("/sluice-test-PID-N") and unlinks it.
 * Concurrency is left to test_forkkill.c; here the interleavings that matter (a process that
 * died mid-change, a wrong count) are injected by writing the segment directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/sl_msg.h"
#include "shm/sl_shm.h"

static int serial;

/* tname - a fresh segment name for this process */
static const char *tname(char *buf, size_t len)
{
    snprintf(buf, len, "/sluice-test-%d-%d", (int)getpid(), ++serial);
    return buf;
}

/* mk - create a segment or fail the test */
static void mk(struct sl_shm *shm, char *name, size_t len, uint32_t slots, uint32_t owners)
{
    struct sl_shm_params p = {.slot_capacity = slots, .owner_capacity = owners};
    char err[256] = "";

    tname(name, len);
    int rc = sl_shm_create(name, &p, shm, err, sizeof err);
    if (rc != 0)
        fail_msg("create %s: %s", name, err);
}

/* done - detach and unlink */
static void done(struct sl_shm *shm, const char *name)
{
    sl_shm_detach(shm);
    sl_shm_unlink(name);
}

/* slot_of - look a key up (creating it) or fail the test */
static uint32_t slot_of(struct sl_shm *shm, enum sl_scope_kind kind, const char *a, const char *b)
{
    uint32_t slot = UINT32_MAX;
    assert_int_equal(sl_shm_lookup(shm, kind, a, b, 0, &slot), SL_SHM_OK);
    return slot;
}

/* in_use - a counter's current count */
static uint32_t in_use(struct sl_shm *shm, uint32_t slot)
{
    return (uint32_t)sl_load64(&shm->slots[slot].count);
}

/* owner_new - claim an owner record for this process or fail the test */
static uint32_t owner_new(struct sl_shm *shm)
{
    uint32_t o = UINT32_MAX;
    assert_int_equal(sl_shm_owner_claim(shm, getpid(), &o), 0);
    return o;
}

/* one - a reservation of a single counter */
static struct sl_resv one(uint32_t slot, int32_t limit, uint32_t gen)
{
    struct sl_resv r;
    sl_resv_init(&r, gen);
    assert_int_equal(sl_resv_add(&r, slot, limit), 0);
    return r;
}

/* test_create_attach - mode 0640 whatever the umask; a read-only attach sees the same counters */
static void test_create_attach(void **state)
{
    (void)state;
    struct sl_shm shm, ro;
    struct stat st;
    char name[64], err[256];
    mode_t old = umask(0277); /* would leave 0400 without the fchmod */
    mk(&shm, name, sizeof name, 100, 8);
    umask(old);

    int fd = shm_open(name, O_RDONLY, 0);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(shm.hdr->slot_capacity, 128); /* rounded up to a power of two */
    assert_int_equal(shm.hdr->owner_capacity, 8);
    assert_int_equal(shm.hdr->master_pid, (uint64_t)getpid());
    assert_int_equal(sl_load64(&shm.hdr->ready), 1);

    uint32_t o = owner_new(&shm), s = slot_of(&shm, SL_SCOPE_DOMAIN, "example.com", NULL);
    struct sl_resv r = one(s, 3, 0);
    assert_int_equal(sl_resv_acquire(&shm, o, &r, NULL), SL_RESV_OK);

    assert_int_equal(sl_shm_attach(name, true, 100, &ro, err, sizeof err), 0);
    assert_true(ro.readonly);
    assert_false(sl_shm_stale(&ro));
    uint32_t rs = UINT32_MAX;
    assert_int_equal(sl_shm_find(&ro, SL_SCOPE_DOMAIN, "Example.Com", NULL, &rs), SL_SHM_OK);
    assert_int_equal(rs, s);
    assert_int_equal(sl_shm_find(&ro, SL_SCOPE_DOMAIN, "other.com", NULL, &rs), SL_SHM_NOENT);

    struct sl_counter_view *v;
    size_t n;
    assert_int_equal(sl_shm_snapshot(&ro, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].kind, SL_SCOPE_DOMAIN);
    assert_string_equal(v[0].name, "example.com");
    assert_string_equal(v[0].name2, "");
    assert_int_equal(v[0].in_use, 1);
    free(v);

    sl_resv_release(&shm, o, &r);
    assert_int_equal(sl_shm_snapshot(&ro, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].in_use, 0);
    assert_int_equal(v[0].peak, 1);
    free(v);

    /* A read-write attach shares the same words. */
    struct sl_shm rw;
    assert_int_equal(sl_shm_attach(name, false, 100, &rw, err, sizeof err), 0);
    assert_int_equal(sl_resv_acquire(&rw, o, &r, NULL), SL_RESV_OK);
    assert_int_equal(in_use(&shm, s), 1);
    sl_resv_release(&rw, o, &r);
    sl_shm_detach(&rw);
    sl_shm_detach(&ro);
    done(&shm, name);
}

/* put_segment - a raw segment of size bytes holding data (garbage for attach to refuse) */
static void put_segment(const char *name, const void *data, size_t len, size_t size)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(pwrite(fd, data, len, 0), (ssize_t)len);
    close(fd);
}

/* attach_fails - attach must refuse with a reason containing want */
static void attach_fails(const char *name, const char *want)
{
    struct sl_shm x;
    char err[256] = "";

    assert_int_equal(sl_shm_attach(name, true, 30, &x, err, sizeof err), -1);
    if (strstr(err, want) == NULL)
        fail_msg("attach error \"%s\" lacks \"%s\"", err, want);
    assert_null(x.hdr);
}

/* test_attach_garbage - short, unpublished, foreign and inconsistent segments are refused */
static void test_attach_garbage(void **state)
{
    (void)state;
    char name[64];
    static char junk[sizeof(struct sl_shm_header) + 4096]; /* room for a whole header */
    struct sl_shm_header h;
    struct sl_shm good;

    tname(name, sizeof name);
    attach_fails(name, "cannot open");

    put_segment(name, "garbage", 7, 7);
    attach_fails(name, "too short");

    memset(junk, 0, sizeof junk);
    put_segment(name, junk, sizeof junk, sizeof junk);
    attach_fails(name, "never published");

    memset(junk, 0xa5, sizeof junk);
    put_segment(name, junk, sizeof junk, sizeof junk);
    attach_fails(name, "bad magic");
    sl_shm_unlink(name);

    /* A real header, then one field spoiled at a time. */
    char gname[64];
    mk(&good, gname, sizeof gname, 16, 2);
    memcpy(&h, good.hdr, sizeof h);
    size_t size = good.size;
    done(&good, gname);

    struct sl_shm_header bad = h;
    bad.version = 99;
    put_segment(name, &bad, sizeof bad, size);
    attach_fails(name, "version");
    bad = h;
    bad.slot_size = 32;
    put_segment(name, &bad, sizeof bad, size);
    attach_fails(name, "sizes");
    bad = h;
    bad.slot_capacity = 24;
    put_segment(name, &bad, sizeof bad, size);
    attach_fails(name, "capacities");
    bad = h;
    bad.arena_bytes = size;
    put_segment(name, &bad, sizeof bad, size);
    attach_fails(name, "layout");
    bad = h;
    bad.slots_off = UINT64_MAX - 8;
    put_segment(name, &bad, sizeof bad, size);
    attach_fails(name, "layout");
    put_segment(name, &h, sizeof h, size / 2); /* truncated mapping */
    attach_fails(name, "layout");
    put_segment(name, &h, sizeof h, size); /* and the untouched header is accepted */
    assert_int_equal(sl_shm_attach(name, true, 30, &good, junk, sizeof junk), 0);
    sl_shm_detach(&good);
    sl_shm_unlink(name);
}

/* test_second_create - a live master's segment is not taken over; a dead master's is */
static void test_second_create(void **state)
{
    (void)state;
    struct sl_shm a, b;
    struct sl_shm_params p = {.slot_capacity = 16, .owner_capacity = 2};
    char name[64], err[256], want[128];

    mk(&a, name, sizeof name, 16, 2);
    assert_int_equal(sl_shm_create(name, &p, &b, err, sizeof err), -1);
    snprintf(want, sizeof want, "segment %s is in use by sluiced pid %d", name, (int)getpid());
    assert_string_equal(err, want);
    assert_int_equal(a.hdr->magic, SL_SHM_MAGIC); /* untouched */
    done(&a, name);

    /* A master that died leaves its segment behind: the next one replaces it. */
    tname(name, sizeof name);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sl_shm c;
        char e[256];
        _exit(sl_shm_create(name, &p, &c, e, sizeof e) == 0 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct sl_shm old;
    assert_int_equal(sl_shm_attach(name, true, 100, &old, err, sizeof err), 0);
    assert_int_equal(old.hdr->master_pid, (uint64_t)pid);
    assert_true(sl_shm_stale(&old)); /* its master is gone */
    if (sl_shm_create(name, &p, &b, err, sizeof err) != 0)
        fail_msg("create over a dead master's segment: %s", err);
    assert_int_equal(b.hdr->master_pid, (uint64_t)getpid());
    assert_true(sl_shm_stale(&old)); /* and the name is now another segment */
    sl_shm_detach(&old);
    done(&b, name);

    /* Bad parameters are refused with a reason. */
    p.slot_capacity = 0;
    assert_int_equal(sl_shm_create(name, &p, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "capacity"));
    p.slot_capacity = 8;
    p.owner_capacity = 20000;
    assert_int_equal(sl_shm_create(name, &p, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "owner capacity"));
    assert_int_equal(sl_shm_create("no-slash", &p, &b, err, sizeof err), -1);
}

/* test_stale - unlink and recreate: the reader notices and re-attaches */
static void test_stale(void **state)
{
    (void)state;
    struct sl_shm a, b, r, r2;
    struct sl_shm_params p = {.slot_capacity = 16, .owner_capacity = 2};
    char name[64], err[256];

    mk(&a, name, sizeof name, 16, 2);
    assert_int_equal(sl_shm_attach(name, true, 100, &r, err, sizeof err), 0);
    assert_false(sl_shm_stale(&r));
    assert_int_equal(sl_shm_unlink(name), 0);
    assert_true(sl_shm_stale(&r)); /* the name is gone */
    assert_int_equal(sl_shm_create(name, &p, &b, err, sizeof err), 0);
    assert_true(sl_shm_stale(&r)); /* the name is another inode */
    /* a start that failed removes its own name, never one another start took since */
    assert_int_equal(sl_shm_unlink_own(&a), -1);
    assert_int_equal(sl_shm_attach(name, true, 100, &r2, err, sizeof err), 0);
    assert_false(sl_shm_stale(&r2));
    /* Counters of the new segment are not those of the old. */
    uint32_t s = slot_of(&b, SL_SCOPE_SERVER, "", NULL), f = 0;
    assert_int_equal(sl_shm_find(&r2, SL_SCOPE_SERVER, "", NULL, &f), SL_SHM_OK);
    assert_int_equal(f, s);
    assert_int_equal(sl_shm_find(&r, SL_SCOPE_SERVER, "", NULL, &f), SL_SHM_NOENT);
    sl_shm_detach(&r);
    sl_shm_detach(&r2);
    sl_shm_detach(&a);
    assert_int_equal(sl_shm_unlink_own(&b), 0); /* its own */
    assert_int_equal(sl_shm_attach(name, true, 100, &r2, err, sizeof err), -1);
    sl_shm_detach(&b);
}

/* test_lookup_keys - idempotent, lower-cased, kind and both names in the key, bad keys refused */
static void test_lookup_keys(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64], long_name[SL_SHM_NAME_MAX + 2];
    uint32_t s1, s2, x;

    mk(&shm, name, sizeof name, 64, 2);
    s1 = slot_of(&shm, SL_SCOPE_BINDING_DOMAIN, "Out1", "Example.COM");
    s2 = slot_of(&shm, SL_SCOPE_BINDING_DOMAIN, "out1", "example.com");
    assert_int_equal(s1, s2);
    assert_int_equal(slot_of(&shm, SL_SCOPE_BINDING_DOMAIN, "OUT1", "EXAMPLE.COM"), s1);
    assert_int_equal(sl_load64(&shm.hdr->live_slots), 1);
    /* Kind, name and the split between the names are all part of the key. */
    assert_int_not_equal(slot_of(&shm, SL_SCOPE_BINDING_HOST, "out1", "example.com"), s1);
    assert_int_not_equal(slot_of(&shm, SL_SCOPE_BINDING_DOMAIN, "out", "1example.com"), s1);
    assert_int_not_equal(slot_of(&shm, SL_SCOPE_BINDING_DOMAIN, "out1", "example.org"), s1);
    assert_int_not_equal(slot_of(&shm, SL_SCOPE_BINDING_DOMAIN, "out1", NULL), s1);
    assert_int_equal(sl_load64(&shm.hdr->live_slots), 5);
    assert_int_equal(sl_shm_find(&shm, SL_SCOPE_BINDING_DOMAIN, "out1", "EXAMPLE.com", &x),
                     SL_SHM_OK);
    assert_int_equal(x, s1);

    /* Server-wide scopes have no name; every other scope needs one. */
    slot_of(&shm, SL_SCOPE_SERVER, "", NULL);
    slot_of(&shm, SL_SCOPE_RESERVE, NULL, NULL);
    slot_of(&shm, SL_SCOPE_CLUSTER, "", NULL);
    assert_int_equal(sl_shm_lookup(&shm, SL_SCOPE_DOMAIN, "", NULL, 0, &x), SL_SHM_BADKEY);
    assert_int_equal(sl_shm_lookup(&shm, SL_SCOPE_HOST, NULL, NULL, 0, &x), SL_SHM_BADKEY);
    assert_int_equal(sl_shm_lookup(&shm, SL_SCOPE_NONE, "a", NULL, 0, &x), SL_SHM_BADKEY);
    assert_int_equal(sl_shm_lookup(&shm, SL_SCOPE__COUNT, "a", NULL, 0, &x), SL_SHM_BADKEY);
    assert_int_equal(sl_shm_lookup(&shm, SL_SCOPE_DOMAIN, "a\nb", NULL, 0, &x), SL_SHM_BADKEY);
    assert_int_equal(sl_shm_lookup(&shm, SL_SCOPE_DOMAIN, "a", "b\x7f", 0, &x), SL_SHM_BADKEY);
    memset(long_name, 'A', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0'; /* 256 bytes: one too many */
    assert_int_equal(sl_shm_lookup(&shm, SL_SCOPE_DOMAIN, long_name, NULL, 0, &x), SL_SHM_BADKEY);
    assert_int_equal(sl_shm_lookup(&shm, SL_SCOPE_DOMAIN, "a", long_name, 0, &x), SL_SHM_BADKEY);
    long_name[SL_SHM_NAME_MAX] = '\0'; /* 255: the longest allowed */
    uint32_t big = slot_of(&shm, SL_SCOPE_BINDING_HOST, long_name, long_name);
    assert_int_equal(sl_shm_find(&shm, SL_SCOPE_DOMAIN, "nowhere", NULL, &x), SL_SHM_NOENT);
    assert_int_equal(sl_shm_find(&shm, SL_SCOPE_DOMAIN, "", NULL, &x), SL_SHM_BADKEY);

    /* The snapshot shows the names as stored: lower-case, both components. */
    struct sl_counter_view *v;
    size_t n, seen = 0;
    assert_int_equal(sl_shm_snapshot(&shm, &v, &n), 0);
    assert_int_equal(n, 9);
    for (size_t i = 0; i < n; i++) {
        if (v[i].kind == SL_SCOPE_BINDING_HOST && strlen(v[i].name) == SL_SHM_NAME_MAX) {
            assert_int_equal(strspn(v[i].name, "a"), SL_SHM_NAME_MAX);
            assert_int_equal(strspn(v[i].name2, "a"), SL_SHM_NAME_MAX);
            seen++;
        }
        if (v[i].kind == SL_SCOPE_BINDING_DOMAIN && strcmp(v[i].name, "out1") == 0 &&
            strcmp(v[i].name2, "example.com") == 0)
            seen++;
        assert_int_equal(v[i].limit, SL_LIMIT_NONE);
    }
    assert_int_equal(seen, 2);
    free(v);
    (void)big;

    /* Kind names round-trip. */
    for (int k = SL_SCOPE_NONE + 1; k < SL_SCOPE__COUNT; k++)
        assert_int_equal(sl_scope_kind_parse(sl_scope_kind_name((enum sl_scope_kind)k)), k);
    assert_string_equal(sl_scope_kind_name(SL_SCOPE_BINDING_DOMAIN), "binding_domain");
    assert_string_equal(sl_scope_kind_name(SL_SCOPE_GROUP_DOMAIN), "group_domain");
    assert_string_equal(sl_scope_kind_name(SL_SCOPE_CLUSTER), "cluster");
    assert_int_equal(sl_scope_kind_parse("bogus"), SL_SCOPE_NONE);
    assert_int_equal(sl_scope_kind_parse("none"), SL_SCOPE_NONE);
    done(&shm, name);
}

/* test_table_full - a full table says so, and still finds what it holds */
static void test_table_full(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64], key[32];
    uint32_t slots[4], x;

    mk(&shm, name, sizeof name, 3, 2); /* rounded up to 4 */
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "d%d.example", i);
        slots[i] = slot_of(&shm, SL_SCOPE_DOMAIN, key, NULL);
    }
    assert_int_equal(sl_shm_lookup(&shm, SL_SCOPE_DOMAIN, "one-more.example", NULL, 0, &x),
                     SL_SHM_FULL);
    assert_int_equal(sl_shm_find(&shm, SL_SCOPE_DOMAIN, "one-more.example", NULL, &x),
                     SL_SHM_NOENT);
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "D%d.EXAMPLE", i);
        assert_int_equal(slot_of(&shm, SL_SCOPE_DOMAIN, key, NULL), slots[i]);
    }
    assert_int_equal(sl_load64(&shm.hdr->live_slots), 4);
    done(&shm, name);
}

/* test_limits - -1 never refuses, 0 always, 1 and N let exactly that many in */
static void test_limits(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];
    struct sl_refusal why;
    struct sl_resv r[12];
    uint32_t owners[3];

    mk(&shm, name, sizeof name, 16, 4);
    for (int i = 0; i < 3; i++)
        owners[i] = owner_new(&shm);
    uint32_t s = slot_of(&shm, SL_SCOPE_DOMAIN, "limits.example", NULL);
    const int32_t limits[] = {SL_LIMIT_NONE, 0, 1, 5};

    for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
        int32_t lim = limits[l];
        int granted = 0;
        for (int i = 0; i < 12; i++) {
            r[i] = one(s, lim, 0);
            memset(&why, 0xff, sizeof why);
            enum sl_resv_result res = sl_resv_acquire(&shm, owners[i / 4], &r[i], &why);
            int expect_ok = lim < 0 || granted < lim;
            assert_int_equal(res, expect_ok ? SL_RESV_OK : SL_RESV_REFUSED);
            if (res == SL_RESV_OK) {
                granted++;
            } else {
                assert_int_equal(why.slot, s);
                assert_int_equal(why.kind, SL_SCOPE_DOMAIN);
                assert_int_equal(why.in_use, (uint32_t)granted);
                assert_int_equal(why.limit, lim);
                assert_int_equal(r[i].record, -1);
            }
            assert_int_equal(in_use(&shm, s), (uint32_t)granted);
        }
        assert_int_equal(granted, lim < 0 ? 12 : lim);
        for (int i = 0; i < 12; i++)
            sl_resv_release(&shm, owners[i / 4], &r[i]);
        assert_int_equal(in_use(&shm, s), 0);
    }
    assert_int_equal(sl_load64(&shm.slots[s].peak), 12);
    assert_int_equal(sl_load64(&shm.slots[s].refused), 12 + 11 + 7);
    done(&shm, name);
}

/* test_all_or_none - a refusal anywhere leaves nothing held, and names the scope that refused */
static void test_all_or_none(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];
    struct sl_refusal why;

    mk(&shm, name, sizeof name, 64, 4);
    uint32_t o0 = owner_new(&shm), o1 = owner_new(&shm);
    uint32_t bd = slot_of(&shm, SL_SCOPE_BINDING_DOMAIN, "b1", "x.example");
    uint32_t host = slot_of(&shm, SL_SCOPE_HOST, "mx.x.example", NULL);
    uint32_t dom = slot_of(&shm, SL_SCOPE_DOMAIN, "x.example", NULL);
    uint32_t srv = slot_of(&shm, SL_SCOPE_SERVER, "", NULL);

    /* o1 fills the host counter (limit 1). */
    struct sl_resv h = one(host, 1, 0);
    assert_int_equal(sl_resv_acquire(&shm, o1, &h, NULL), SL_RESV_OK);

    struct sl_resv r;
    sl_resv_init(&r, 0);
    assert_int_equal(sl_resv_add(&r, srv, 100), 0);
    assert_int_equal(sl_resv_add(&r, dom, 10), 0);
    assert_int_equal(sl_resv_add(&r, host, 1), 0);
    assert_int_equal(sl_resv_add(&r, bd, 5), 0);
    assert_int_equal(sl_resv_acquire(&shm, o0, &r, &why), SL_RESV_REFUSED);
    assert_int_equal(why.slot, host);
    assert_int_equal(why.kind, SL_SCOPE_HOST);
    assert_int_equal(why.in_use, 1);
    assert_int_equal(why.limit, 1);
    assert_int_equal(r.record, -1);
    /* The binding_domain counter was taken before the host refused: it was given back. */
    assert_int_equal(in_use(&shm, bd), 0);
    /* A peak counts granted connections: the unit taken and rolled back is not one. */
    assert_int_equal(sl_load64(&shm.slots[bd].peak), 0);
    assert_int_equal(in_use(&shm, host), 1);
    assert_int_equal(in_use(&shm, dom), 0);
    assert_int_equal(in_use(&shm, srv), 0);
    for (int k = 0; k < SL_OWNER_RECORDS; k++)
        assert_int_equal(sl_load32(&shm.owners[o0].hold[k].state), SL_HOLD_FREE);
    assert_int_equal(sl_load64(&shm.owners[o0].refused), 1);
    assert_int_equal(sl_load64(&shm.owners[o0].acquired), 0);
    assert_int_equal(sl_load64(&shm.slots[host].refused), 1);
    sl_resv_release(&shm, o0, &r); /* releasing a refused reservation does nothing */
    assert_int_equal(in_use(&shm, host), 1);

    /* Once the host is free, the whole set is taken together. */
    sl_resv_release(&shm, o1, &h);
    assert_int_equal(sl_resv_acquire(&shm, o0, &r, &why), SL_RESV_OK);
    assert_int_equal(in_use(&shm, bd) + in_use(&shm, host) + in_use(&shm, dom) + in_use(&shm, srv),
                     4);
    assert_int_equal(sl_load64(&shm.owners[o0].acquired), 1);
    assert_int_equal(sl_load64(&shm.slots[bd].peak), 1);
    sl_resv_release(&shm, o0, &r);
    assert_int_equal(in_use(&shm, bd) + in_use(&shm, host) + in_use(&shm, dom) + in_use(&shm, srv),
                     0);
    done(&shm, name);
}

/* test_fixed_order - counters are taken by (kind, slot) whatever order they were added in */
static void test_fixed_order(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];
    struct sl_refusal why;

    mk(&shm, name, sizeof name, 64, 2);
    uint32_t o = owner_new(&shm);
    /* Create the wide scopes first so that slot index and kind order disagree. */
    uint32_t srv = slot_of(&shm, SL_SCOPE_SERVER, "", NULL);
    uint32_t bnd = slot_of(&shm, SL_SCOPE_BINDING, "b1", NULL);
    uint32_t dom = slot_of(&shm, SL_SCOPE_DOMAIN, "d.example", NULL);
    uint32_t bd = slot_of(&shm, SL_SCOPE_BINDING_DOMAIN, "b1", "d.example");
    const uint32_t want[] = {bd, dom, bnd, srv};
    const uint32_t orders[][4] = {{srv, bnd, dom, bd}, {bd, dom, bnd, srv}, {dom, srv, bd, bnd}};

    for (size_t t = 0; t < 3; t++) {
        struct sl_resv r;
        sl_resv_init(&r, 0);
        for (int i = 0; i < 4; i++)
            assert_int_equal(sl_resv_add(&r, orders[t][i], 10), 0);
        assert_int_equal(sl_resv_acquire(&shm, o, &r, NULL), SL_RESV_OK);
        struct sl_shm_hold *h = &shm.owners[o].hold[r.record];
        assert_int_equal(h->n, 4);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(r.slot[i], want[i]);
            assert_int_equal(h->slot[i], want[i]);
        }
        sl_resv_release(&shm, o, &r);
    }

    /* With both the server and the binding_domain counter closed, the narrower one is reported,
     * whichever was added first. */
    for (size_t t = 0; t < 2; t++) {
        struct sl_resv r;
        sl_resv_init(&r, 0);
        assert_int_equal(sl_resv_add(&r, t ? bd : srv, 0), 0);
        assert_int_equal(sl_resv_add(&r, t ? srv : bd, 0), 0);
        assert_int_equal(sl_resv_acquire(&shm, o, &r, &why), SL_RESV_REFUSED);
        assert_int_equal(why.kind, SL_SCOPE_BINDING_DOMAIN);
        assert_int_equal(why.slot, bd);
    }

    /* A counter named twice is taken once, under the tighter limit. */
    struct sl_resv r, r2;
    sl_resv_init(&r, 0);
    sl_resv_add(&r, dom, 5);
    sl_resv_add(&r, bd, SL_LIMIT_NONE);
    sl_resv_add(&r, dom, 1);
    sl_resv_add(&r, bd, 7);
    assert_int_equal(sl_resv_acquire(&shm, o, &r, NULL), SL_RESV_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.limit[0], 7);
    assert_int_equal(r.limit[1], 1);
    assert_int_equal(in_use(&shm, dom), 1);
    assert_int_equal(in_use(&shm, bd), 1);
    r2 = one(dom, 5, 0);
    assert_int_equal(sl_resv_acquire(&shm, o, &r2, NULL), SL_RESV_OK); /* 5 still has room */
    sl_resv_release(&shm, o, &r2);
    sl_resv_release(&shm, o, &r);
    assert_int_equal(in_use(&shm, dom), 0);

    /* A full set is refused by sl_resv_add. */
    sl_resv_init(&r, 0);
    for (int i = 0; i < SL_RESV_MAX; i++)
        assert_int_equal(sl_resv_add(&r, dom, 1), 0);
    assert_int_equal(sl_resv_add(&r, dom, 1), -1);
    done(&shm, name);
}

/* test_release - idempotent, and a count never goes below zero */
static void test_release(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];

    mk(&shm, name, sizeof name, 16, 2);
    uint32_t o = owner_new(&shm), a = slot_of(&shm, SL_SCOPE_DOMAIN, "a.example", NULL),
             b = slot_of(&shm, SL_SCOPE_HOST, "mx.a.example", NULL);
    struct sl_resv r, r2;
    sl_resv_init(&r, 0);
    sl_resv_add(&r, a, 2);
    sl_resv_add(&r, b, 2);
    assert_int_equal(sl_resv_acquire(&shm, o, &r, NULL), SL_RESV_OK);
    r2 = one(a, 2, 0);
    assert_int_equal(sl_resv_acquire(&shm, o, &r2, NULL), SL_RESV_OK);
    assert_int_equal(in_use(&shm, a), 2);
    sl_resv_release(&shm, o, &r);
    sl_resv_release(&shm, o, &r);
    assert_int_equal(in_use(&shm, a), 1);
    assert_int_equal(in_use(&shm, b), 0);
    /* Someone (an audit) settled the count to 0 while r2 was held: release stays at 0. */
    sl_store64(&shm.slots[a].count, (uint64_t)77 << 32);
    sl_resv_release(&shm, o, &r2);
    assert_int_equal(sl_load64(&shm.slots[a].count), (uint64_t)77 << 32);
    sl_resv_release(&shm, o, &r2);
    assert_int_equal(in_use(&shm, a), 0);
    /* Every change moved the sequence. */
    assert_true(sl_load64(&shm.slots[b].count) >> 32 == 2);
    done(&shm, name);
}

/* test_swap - a held reservation moves to another domain's counters: the new ones are taken
 * within their limits (all or none), the old domain's given back, the shared ones untouched,
 * and the audit finds the table consistent afterwards */
static void test_swap(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];
    struct sl_audit_stats st;
    struct sl_refusal why;

    mk(&shm, name, sizeof name, 64, 2);
    uint32_t o = owner_new(&shm), da = slot_of(&shm, SL_SCOPE_DOMAIN, "a.example", NULL),
             db = slot_of(&shm, SL_SCOPE_DOMAIN, "b.example", NULL),
             host = slot_of(&shm, SL_SCOPE_HOST, "mx.example", NULL),
             srv = slot_of(&shm, SL_SCOPE_SERVER, "", NULL);
    struct sl_resv r, want, full;
    sl_resv_init(&r, 0);
    sl_resv_add(&r, da, 5);
    sl_resv_add(&r, host, 1);
    sl_resv_add(&r, srv, 1);
    assert_int_equal(sl_resv_acquire(&shm, o, &r, NULL), SL_RESV_OK);
    int32_t rec = r.record;

    /* b.example is full (another holder): the swap is refused and nothing moves */
    full = one(db, 1, 0);
    assert_int_equal(sl_resv_acquire(&shm, o, &full, NULL), SL_RESV_OK);
    sl_resv_init(&want, 0);
    sl_resv_add(&want, db, 1);
    sl_resv_add(&want, host, 1);
    sl_resv_add(&want, srv, 1);
    assert_int_equal(sl_resv_swap(&shm, o, &r, &want, &why), SL_RESV_REFUSED);
    assert_int_equal(why.slot, db);
    assert_int_equal(in_use(&shm, da), 1);
    assert_int_equal(in_use(&shm, db), 1);
    assert_int_equal(r.record, rec);
    sl_resv_release(&shm, o, &full);

    /* with room: host and server stay at 1 (their limit: a re-take would have been refused) */
    sl_resv_init(&want, 0);
    sl_resv_add(&want, db, 1);
    sl_resv_add(&want, host, 1);
    sl_resv_add(&want, srv, 1);
    assert_int_equal(sl_resv_swap(&shm, o, &r, &want, &why), SL_RESV_OK);
    assert_int_equal(in_use(&shm, da), 0);
    assert_int_equal(in_use(&shm, db), 1);
    assert_int_equal(in_use(&shm, host), 1);
    assert_int_equal(in_use(&shm, srv), 1);
    assert_int_equal(r.record, rec);
    sl_shm_audit(&shm, &st);
    assert_int_equal(st.corrected, 0);
    assert_int_equal(st.in_flux, 0);
    /* the record now names the new set: releasing gives back exactly those */
    sl_resv_release(&shm, o, &r);
    assert_int_equal(in_use(&shm, db), 0);
    assert_int_equal(in_use(&shm, host), 0);
    assert_int_equal(in_use(&shm, srv), 0);
    done(&shm, name);
}

/* test_waits - the scheduler's waits per counter: how many wait now, how often and how long
 * they waited, since when mail waits without a break; never below zero */
static void test_waits(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];
    struct sl_counter_view v;

    mk(&shm, name, sizeof name, 16, 2);
    uint32_t d = slot_of(&shm, SL_SCOPE_DOMAIN, "a.example", NULL);
    sl_shm_wait_begin(&shm, d, 1000, 7);
    sl_shm_wait_begin(&shm, d, 1500, 8);
    assert_int_equal(sl_shm_view(&shm, d, &v), 0);
    assert_int_equal(v.waiting, 2);
    assert_int_equal(v.holdbacks, 2);
    assert_int_equal(v.wait_since, 1000);
    sl_shm_wait_end(&shm, d, 1000, 1200, 7);
    assert_int_equal(sl_shm_view(&shm, d, &v), 0);
    assert_int_equal(v.waiting, 1);
    assert_int_equal(v.wait_since, 1000); /* mail still waits: no break yet */
    sl_shm_wait_end(&shm, d, 1500, 2000, 8);
    sl_shm_wait_end(&shm, d, 1500, 2000, 8); /* one too many: stays at 0 */
    assert_int_equal(sl_shm_view(&shm, d, &v), 0);
    assert_int_equal(v.waiting, 0);
    assert_int_equal(v.wait_since, 0);
    assert_int_equal(v.waited_ms, 200 + 500 + 500);
    struct sl_resv r = one(d, 3, 0);
    assert_false(sl_resv_contended(&shm, &r, 7, NULL));
    sl_shm_wait_begin(&shm, d, 3000, 7);
    uint32_t which = UINT32_MAX;
    assert_true(sl_resv_contended(&shm, &r, 8, &which));
    assert_int_equal(which, d); /* the counter waited for: the master learns it from "y<slot>" */
    sl_shm_wait_begin(&shm, 9999, 3000, 7); /* not a slot of the table: ignored */
    done(&shm, name);
}

/* test_sole_waiter - a counter only its own destination waits for (it wants one more
 * connection) is no reason for that destination's spent connection to give its job back;
 * one that another destination waits for is, also when it is the one left of several */
static void test_sole_waiter(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];
    uint32_t a = sl_shm_waiter_key("b1", "a.example"), b = sl_shm_waiter_key("b2", "a.example");

    assert_int_not_equal(a, b); /* the binding counts: b1 and b2 are two destinations */
    assert_int_not_equal(a, sl_shm_waiter_key("b1a", ".example"));
    mk(&shm, name, sizeof name, 16, 2);
    uint32_t d = slot_of(&shm, SL_SCOPE_DOMAIN, "a.example", NULL);
    struct sl_resv r = one(d, 3, 0);
    sl_shm_wait_begin(&shm, d, 1000, a);
    assert_false(sl_resv_contended(&shm, &r, a, NULL));
    assert_true(sl_resv_contended(&shm, &r, b, NULL));
    sl_shm_wait_begin(&shm, d, 1100, b);
    assert_true(sl_resv_contended(&shm, &r, a, NULL)); /* b waits too */
    sl_shm_wait_end(&shm, d, 1000, 1200, a);
    assert_true(sl_resv_contended(&shm, &r, a, NULL)); /* b is the one left */
    assert_false(sl_resv_contended(&shm, &r, b, NULL));
    sl_shm_wait_end(&shm, d, 1100, 1300, b);
    assert_false(sl_resv_contended(&shm, &r, a, NULL));
    assert_false(sl_resv_contended(&shm, &r, b, NULL));
    sl_shm_wait_end(&shm, d, 1100, 1300, b); /* one too many: nobody is left all the same */
    sl_shm_wait_begin(&shm, d, 1400, a);
    assert_false(sl_resv_contended(&shm, &r, a, NULL));
    assert_true(sl_resv_contended(&shm, &r, b, NULL));
    /* what a reader may see while the last one leaves: its key gone, the count not yet */
    sl_store32(&shm.slots[d].waiters, 0);
    assert_false(sl_resv_contended(&shm, &r, a, NULL));
    assert_false(sl_resv_contended(&shm, &r, b, NULL));
    done(&shm, name);
}

/* test_generations - a newer limit wins, an older never overwrites it */
static void test_generations(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];
    struct sl_refusal why;

    mk(&shm, name, sizeof name, 16, 2);
    uint32_t o = owner_new(&shm), s = slot_of(&shm, SL_SCOPE_DOMAIN, "gen.example", NULL);

    sl_shm_set_limit(&shm, s, 1, 5);
    assert_int_equal(sl_load64(&shm.slots[s].limit), (uint64_t)5 << 32 | 1);
    sl_shm_set_limit(&shm, s, 9, 4); /* older: ignored */
    assert_int_equal(sl_load64(&shm.slots[s].limit), (uint64_t)5 << 32 | 1);

    /* A worker still on generation 3 (limit 10) obeys the slot's generation-5 limit of 1. */
    struct sl_resv a = one(s, 10, 3), b = one(s, 10, 3);
    assert_int_equal(sl_resv_acquire(&shm, o, &a, NULL), SL_RESV_OK);
    assert_int_equal(sl_resv_acquire(&shm, o, &b, &why), SL_RESV_REFUSED);
    assert_int_equal(why.limit, 1);
    assert_int_equal(why.in_use, 1);
    assert_int_equal(sl_load64(&shm.slots[s].limit), (uint64_t)5 << 32 | 1);

    /* A worker on generation 7 publishes its limit (2) and uses it. */
    struct sl_resv c = one(s, 2, 7);
    assert_int_equal(sl_resv_acquire(&shm, o, &c, NULL), SL_RESV_OK);
    assert_int_equal(sl_load64(&shm.slots[s].limit), (uint64_t)7 << 32 | 2);
    sl_shm_set_limit(&shm, s, 0, 6); /* older than 7: ignored */
    assert_int_equal(sl_load64(&shm.slots[s].limit), (uint64_t)7 << 32 | 2);
    /* The old worker now sees 2 (in force for both generations, old and new holders together). */
    assert_int_equal(sl_resv_acquire(&shm, o, &b, &why), SL_RESV_REFUSED);
    assert_int_equal(why.limit, 2);
    assert_int_equal(why.in_use, 2);

    struct sl_counter_view *v;
    size_t n;
    assert_int_equal(sl_shm_snapshot(&shm, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].gen, 7);
    assert_int_equal(v[0].limit, 2);
    assert_int_equal(v[0].refused, 2);
    free(v);

    /* The same generation may be set again (a no-op reload), and -1 lifts the limit. */
    sl_shm_set_limit(&shm, s, SL_LIMIT_NONE, 7);
    assert_int_equal(sl_resv_acquire(&shm, o, &b, &why), SL_RESV_OK);
    assert_int_equal(in_use(&shm, s), 3);
    sl_resv_release(&shm, o, &a);
    sl_resv_release(&shm, o, &b);
    sl_resv_release(&shm, o, &c);
    assert_int_equal(in_use(&shm, s), 0);
    done(&shm, name);
}

/* test_norecord - an owner with every hold record busy gets NORECORD and holds nothing new */
static void test_norecord(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];
    struct sl_resv r[SL_OWNER_RECORDS + 1];

    mk(&shm, name, sizeof name, 16, 2);
    uint32_t o = owner_new(&shm), s = slot_of(&shm, SL_SCOPE_DOMAIN, "rec.example", NULL);
    for (int i = 0; i < SL_OWNER_RECORDS; i++) {
        r[i] = one(s, SL_LIMIT_NONE, 0);
        assert_int_equal(sl_resv_acquire(&shm, o, &r[i], NULL), SL_RESV_OK);
        assert_int_equal(r[i].record, i);
    }
    r[SL_OWNER_RECORDS] = one(s, SL_LIMIT_NONE, 0);
    assert_int_equal(sl_resv_acquire(&shm, o, &r[SL_OWNER_RECORDS], NULL), SL_RESV_NORECORD);
    assert_int_equal(r[SL_OWNER_RECORDS].record, -1);
    assert_int_equal(in_use(&shm, s), SL_OWNER_RECORDS);
    sl_resv_release(&shm, o, &r[2]);
    assert_int_equal(sl_resv_acquire(&shm, o, &r[SL_OWNER_RECORDS], NULL), SL_RESV_OK);
    assert_int_equal(r[SL_OWNER_RECORDS].record, 2);
    done(&shm, name);
}

/* test_owner_claim - records run out, and come back when reclaimed */
static void test_owner_claim(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];
    uint32_t a, b, c;

    mk(&shm, name, sizeof name, 16, 2);
    assert_int_equal(sl_shm_owner_claim(&shm, 100, &a), 0);
    assert_int_equal(sl_shm_owner_claim(&shm, 101, &b), 0);
    assert_int_not_equal(a, b);
    assert_int_equal(sl_shm_owner_claim(&shm, 102, &c), -1);
    assert_int_equal(sl_load32(&shm.owners[b].pid), 101);
    assert_int_equal(sl_shm_reclaim_owner(&shm, b), 0);
    assert_int_equal(sl_load32(&shm.owners[b].state), SL_OWNER_FREE);
    assert_int_equal(sl_load32(&shm.owners[b].pid), 0);
    assert_int_equal(sl_shm_owner_claim(&shm, 102, &c), 0);
    assert_int_equal(c, b);
    assert_int_equal(sl_load32(&shm.owners[c].pid), 102);
    done(&shm, name);
}

/* test_reclaim - a dead owner's HELD units come back; in-flux records are settled by the audit */
static void test_reclaim(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];

    mk(&shm, name, sizeof name, 64, 4);
    uint32_t dead = owner_new(&shm), live = owner_new(&shm);
    uint32_t a = slot_of(&shm, SL_SCOPE_BINDING_DOMAIN, "b", "r.example"),
             b = slot_of(&shm, SL_SCOPE_DOMAIN, "r.example", NULL),
             c = slot_of(&shm, SL_SCOPE_SERVER, "", NULL);
    struct sl_resv r1, r2, r3;
    sl_resv_init(&r1, 0);
    sl_resv_add(&r1, a, 5);
    sl_resv_add(&r1, b, 5);
    sl_resv_add(&r1, c, 5);
    r2 = one(c, 5, 0);
    r3 = one(c, 5, 0);
    assert_int_equal(sl_resv_acquire(&shm, dead, &r1, NULL), SL_RESV_OK);
    assert_int_equal(sl_resv_acquire(&shm, dead, &r2, NULL), SL_RESV_OK);
    assert_int_equal(sl_resv_acquire(&shm, live, &r3, NULL), SL_RESV_OK);
    assert_int_equal(in_use(&shm, c), 3);

    /* The dead owner also died halfway through a third reservation: INTENT, b taken, a not. */
    struct sl_shm_hold *h = &shm.owners[dead].hold[2];
    h->n = 2;
    h->slot[0] = a;
    h->slot[1] = b;
    sl_store32(&h->state, SL_HOLD_INTENT);
    sl_store64(&shm.slots[b].count, sl_load64(&shm.slots[b].count) + ((uint64_t)1 << 32) + 1);
    assert_int_equal(in_use(&shm, b), 2);

    uint64_t runs = sl_load64(&shm.hdr->audit_runs);
    assert_int_equal(sl_shm_reclaim_owner(&shm, dead), 4); /* a, b, c of r1 and c of r2 */
    assert_int_equal(sl_load64(&shm.hdr->reclaimed), 4);
    assert_int_equal(sl_load64(&shm.hdr->audit_runs), runs + 1); /* the INTENT record */
    assert_int_equal(in_use(&shm, a), 0);
    assert_int_equal(in_use(&shm, b), 0); /* the audit took back the in-flux unit */
    assert_int_equal(in_use(&shm, c), 1); /* the live owner's */
    assert_int_equal(sl_load32(&shm.owners[dead].state), SL_OWNER_FREE);
    for (int k = 0; k < SL_OWNER_RECORDS; k++)
        assert_int_equal(sl_load32(&shm.owners[dead].hold[k].state), SL_HOLD_FREE);
    assert_int_equal(sl_shm_reclaim_owner(&shm, dead), 0); /* twice: nothing more */
    assert_int_equal(in_use(&shm, c), 1);

    /* A count the audit already lowered is not taken below zero by a reclaim. */
    uint32_t o = owner_new(&shm);
    struct sl_resv r4 = one(a, 5, 0);
    assert_int_equal(sl_resv_acquire(&shm, o, &r4, NULL), SL_RESV_OK);
    sl_store64(&shm.slots[a].count, (uint64_t)9 << 32);
    assert_int_equal(sl_shm_reclaim_owner(&shm, o), 0);
    assert_int_equal(sl_load64(&shm.slots[a].count), (uint64_t)9 << 32);

    /* A slot claimed by an owner that died before publishing it is abandoned, and the key is
     * created further on. */
    uint32_t d = owner_new(&shm), x = UINT32_MAX;
    uint32_t e = slot_of(&shm, SL_SCOPE_DOMAIN, "victim.example", NULL);
    uint64_t t = sl_load64(&shm.slots[e].tag);
    /* Turn the victim's slot back into an unfinished claim by d, as if d had died filling it. */
    sl_store64(&shm.slots[e].tag, (t & ~(uint64_t)0xffff) | (uint64_t)d << 2 | SL_SLOT_CLAIMED);
    sl_add64(&shm.hdr->claiming, 1);
    assert_int_equal(sl_shm_find(&shm, SL_SCOPE_DOMAIN, "victim.example", NULL, &x), SL_SHM_NOENT);
    assert_int_equal(sl_shm_reclaim_owner(&shm, d), 0);
    assert_int_equal(sl_load64(&shm.slots[e].tag) & 3, SL_SLOT_ABANDONED);
    assert_int_equal(sl_load64(&shm.hdr->claiming), 0);
    uint32_t e2 = slot_of(&shm, SL_SCOPE_DOMAIN, "victim.example", NULL);
    assert_int_not_equal(e2, e);
    assert_int_equal(slot_of(&shm, SL_SCOPE_DOMAIN, "VICTIM.example", NULL), e2);
    done(&shm, name);
}

/* test_audit - wrong counts are corrected to the live holds; an in-flux slot is left alone */
static void test_audit(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];
    struct sl_audit_stats st;

    mk(&shm, name, sizeof name, 64, 4);
    uint32_t o1 = owner_new(&shm), o2 = owner_new(&shm);
    uint32_t hi = slot_of(&shm, SL_SCOPE_DOMAIN, "high.example", NULL),
             lo = slot_of(&shm, SL_SCOPE_DOMAIN, "low.example", NULL),
             fl = slot_of(&shm, SL_SCOPE_DOMAIN, "flux.example", NULL),
             ok = slot_of(&shm, SL_SCOPE_SERVER, "", NULL);
    struct sl_resv a, b;
    sl_resv_init(&a, 0);
    sl_resv_add(&a, hi, 10);
    sl_resv_add(&a, lo, 10);
    sl_resv_add(&a, ok, 10);
    b = one(lo, 10, 0);
    assert_int_equal(sl_resv_acquire(&shm, o1, &a, NULL), SL_RESV_OK);
    assert_int_equal(sl_resv_acquire(&shm, o2, &b, NULL), SL_RESV_OK);

    /* Nothing to do on a consistent table. */
    sl_shm_audit(&shm, &st);
    assert_int_equal(st.checked, 4);
    assert_int_equal(st.corrected, 0);
    assert_int_equal(st.in_flux, 0);

    /* Inject: hi too high (a leak), lo too low, fl wrong but in flux (o2 mid-acquire). */
    sl_store64(&shm.slots[hi].count, (uint64_t)3 << 32 | 6);
    sl_store64(&shm.slots[lo].count, (uint64_t)3 << 32 | 0);
    struct sl_shm_hold *h = &shm.owners[o2].hold[1];
    h->n = 1;
    h->slot[0] = fl;
    sl_store32(&h->state, SL_HOLD_INTENT);
    sl_store64(&shm.slots[fl].count, (uint64_t)3 << 32 | 4);

    uint64_t fixed = sl_load64(&shm.hdr->audit_fixed);
    sl_shm_audit(&shm, &st);
    assert_int_equal(st.checked, 4);
    assert_int_equal(st.corrected, 2);
    assert_int_equal(st.in_flux, 1);
    assert_int_equal(in_use(&shm, hi), 1);
    assert_int_equal(in_use(&shm, lo), 2);
    assert_int_equal(in_use(&shm, ok), 1);
    assert_int_equal(in_use(&shm, fl), 4);                      /* left alone */
    assert_int_equal(sl_load64(&shm.slots[hi].count) >> 32, 4); /* the correction is a change */
    assert_int_equal(sl_load64(&shm.hdr->audit_fixed), fixed + 2);
    assert_true(sl_load64(&shm.hdr->last_audit) > 0);

    /* Once the record settles (o2 gave up), the audit takes fl back to its holds (none). */
    sl_store32(&h->state, SL_HOLD_FREE);
    sl_shm_audit(&shm, &st);
    assert_int_equal(st.corrected, 1);
    assert_int_equal(in_use(&shm, fl), 0);

    /* A HELD record of a RELEASING owner is in flux too. */
    sl_store32(&shm.owners[o1].hold[a.record].state, SL_HOLD_RELEASING);
    sl_store64(&shm.slots[hi].count, (uint64_t)8 << 32 | 0);
    sl_shm_audit(&shm, &st);
    assert_int_equal(st.in_flux, 3);
    assert_int_equal(in_use(&shm, hi), 0);
    sl_store32(&shm.owners[o1].hold[a.record].state, SL_HOLD_HELD);
    sl_shm_audit(&shm, &st);
    assert_int_equal(in_use(&shm, hi), 1);

    sl_resv_release(&shm, o1, &a);
    sl_resv_release(&shm, o2, &b);
    sl_shm_audit(&shm, &st);
    assert_int_equal(st.corrected, 0);
    for (uint32_t s = 0; s < shm.hdr->slot_capacity; s++)
        assert_int_equal(in_use(&shm, s), 0);
    done(&shm, name);
}

/* count_cb - foreach callback: count the views and check they agree with the slot */
static void count_cb(uint32_t slot, const struct sl_counter_view *v, void *ctx)
{
    size_t *n = ctx;
    (void)slot;
    assert_int_equal(v->kind, SL_SCOPE_DOMAIN);
    assert_int_equal(v->name[0], 'd');
    (*n)++;
}

/* test_snapshot_foreach - every LIVE counter once; a damaged key offset is skipped, not read */
static void test_snapshot_foreach(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64], key[32];
    uint32_t slots[40];

    mk(&shm, name, sizeof name, 64, 2);
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "d%02d.example", i);
        slots[i] = slot_of(&shm, SL_SCOPE_DOMAIN, key, NULL);
    }
    size_t n = 0;
    sl_shm_foreach(&shm, count_cb, &n);
    assert_int_equal(n, 40);

    struct sl_counter_view *v;
    assert_int_equal(sl_shm_snapshot(&shm, &v, &n), 0);
    assert_int_equal(n, 40);
    int seen[40] = {0};
    for (size_t i = 0; i < n; i++) {
        int k;
        assert_int_equal(sscanf(v[i].name, "d%d.example", &k), 1);
        seen[k]++;
    }
    for (int i = 0; i < 40; i++)
        assert_int_equal(seen[i], 1);
    free(v);

    /* Damage one slot's key offset, as a foreign or corrupt segment might: skipped. */
    shm.slots[slots[7]].key_off = (uint32_t)shm.hdr->arena_bytes - 3;
    assert_int_equal(sl_shm_snapshot(&shm, &v, &n), 0);
    assert_int_equal(n, 39);
    free(v);
    n = 0;
    sl_shm_foreach(&shm, count_cb, &n);
    assert_int_equal(n, 39);
    done(&shm, name);
}

/* test_action_cap - an action's cap is found only while counted in force, the tightest of the
 * scopes over a pair wins, it holds the counter in the same acquire (the refusal names the
 * action), a config reload does not overwrite it, and retiring it lifts it */
static void test_action_cap(void **state)
{
    (void)state;
    struct sl_shm shm;
    char name[64];
    struct sl_refusal why;
    struct sl_resv r[3];
    int32_t cap;
    uint64_t id;

    mk(&shm, name, sizeof name, 64, 2);
    uint32_t o = owner_new(&shm);
    uint32_t s = slot_of(&shm, SL_SCOPE_BINDING_DOMAIN, "b1", "capped.test");
    assert_false(sl_shm_cap_find(&shm, "b1", "capped.test", &cap, &id));
    assert_int_equal(sl_shm_cap_set(&shm, "b1", "capped.test", 3, 7), 0);
    assert_int_equal(sl_shm_cap_set(&shm, "", "capped.test", 2, 9), 0);
    /* Not yet counted in force: a worker does not look. */
    assert_false(sl_shm_cap_find(&shm, "b1", "capped.test", &cap, &id));
    sl_shm_caps_publish(&shm, 2);
    assert_true(sl_shm_cap_find(&shm, "B1", "Capped.Test", &cap, &id));
    assert_int_equal(cap, 2);
    assert_int_equal(id, 9);
    assert_false(sl_shm_cap_find(&shm, "b1", "other.test", &cap, &id));
    /* A reload publishes the config's limits everywhere: the cap is not one of them. */
    uint32_t cs = slot_of(&shm, SL_SCOPE_ACTION_CAP, "*", "capped.test");
    sl_shm_set_limit(&shm, cs, 50, 4);
    assert_true(sl_shm_cap_find(&shm, "b1", "capped.test", &cap, &id));
    assert_int_equal(cap, 2);

    for (int i = 0; i < 3; i++) {
        r[i] = one(s, 10, 0);
        sl_resv_cap(&r[i], s, cap, id);
        memset(&why, 0, sizeof why);
        enum sl_resv_result res = sl_resv_acquire(&shm, o, &r[i], &why);
        assert_int_equal(res, i < 2 ? SL_RESV_OK : SL_RESV_REFUSED);
    }
    assert_int_equal(why.slot, s);
    assert_int_equal(why.limit, 2);
    assert_int_equal(why.action, 9);
    assert_int_equal(in_use(&shm, s), 2);
    /* A cap looser than the limit leaves the limit in charge, and names no action. */
    sl_resv_release(&shm, o, &r[1]);
    r[1] = one(s, 1, 0);
    sl_resv_cap(&r[1], s, 5, 9);
    assert_int_equal(sl_resv_acquire(&shm, o, &r[1], &why), SL_RESV_REFUSED);
    assert_int_equal(why.limit, 1);
    assert_int_equal(why.action, 0);
    /* Retired: the narrower cap is left. */
    assert_int_equal(sl_shm_cap_set(&shm, "", "capped.test", -1, 0), 0);
    assert_true(sl_shm_cap_find(&shm, "b1", "capped.test", &cap, &id));
    assert_int_equal(cap, 3);
    assert_int_equal(id, 7);
    assert_int_equal(sl_shm_cap_set(&shm, "b1", "capped.test", -1, 0), 0);
    sl_shm_caps_publish(&shm, 0);
    assert_false(sl_shm_cap_find(&shm, "b1", "capped.test", &cap, &id));
    sl_resv_release(&shm, o, &r[0]);
    assert_int_equal(in_use(&shm, s), 0);
    done(&shm, name);
}

/* unlink_all - drop every segment this process named, even those a failed case left behind */
static int unlink_all(void **state)
{
    char name[64];

    (void)state;
    for (int n = 1; n <= serial; n++) {
        snprintf(name, sizeof name, "/sluice-test-%d-%d", (int)getpid(), n);
        sl_shm_unlink(name);
    }
    return 0;
}

/* The listeners' figures: one entry per name, kept by name (a reload finds it again), the
 * names past the table counted together under "*", nothing written through a read-only map. */
static void test_listener_stats(void **state)
{
    (void)state;
    struct sl_shm shm, ro;
    char name[64], err[256], lname[32];
    struct sl_lstat_view v;
    int first, again, star = -1;

    mk(&shm, name, sizeof name, 64, 2);
    first = sl_lstat_claim(&shm, "local");
    assert_true(first >= 0);
    assert_int_not_equal(sl_lstat_claim(&shm, "auth"), first);
    sl_lstat_add(&shm, first, SL_LSTAT_MESSAGES, 2);
    sl_lstat_add(&shm, first, SL_LSTAT_BYTES, 4096);
    sl_lstat_add(&shm, first, SL_LSTAT__N, 1); /* out of range: ignored */
    sl_lstat_add(&shm, -1, SL_LSTAT_MESSAGES, 1);
    sl_lstat_add(&shm, SL_LSTAT_LISTENERS, SL_LSTAT_MESSAGES, 1);
    sl_lstat_set_active(&shm, SL_LSTAT_LISTENERS, 9);
    sl_lstat_set_active(&shm, first, 3);
    again = sl_lstat_claim(&shm, "local");
    assert_int_equal(again, first);
    assert_true(sl_lstat_read(&shm, (unsigned)first, &v));
    assert_string_equal(v.name, "local");
    assert_int_equal(v.n[SL_LSTAT_MESSAGES], 2);
    assert_int_equal(v.n[SL_LSTAT_BYTES], 4096);
    assert_int_equal(v.active, 3);
    assert_string_equal(sl_lstat_reason(SL_LSTAT_REJ_RELAY), "relay");
    assert_string_equal(sl_lstat_reason(SL_LSTAT_REJ_STORAGE), "storage");
    assert_string_equal(sl_lstat_reason(SL_LSTAT_MESSAGES), "?");
    /* More names than entries: the last ones share "*" */
    for (int i = 0; i < SL_LSTAT_LISTENERS + 3; i++) {
        snprintf(lname, sizeof lname, "l%d", i);
        int e = sl_lstat_claim(&shm, lname);
        assert_true(e >= 0 && e < SL_LSTAT_LISTENERS);
        if (i >= SL_LSTAT_LISTENERS - 3) {
            if (star < 0)
                star = e;
            assert_int_equal(e, star);
        }
    }
    assert_true(sl_lstat_read(&shm, (unsigned)star, &v));
    assert_string_equal(v.name, "*");
    assert_int_equal(sl_lstat_claim(&shm, "local"), first); /* still its own */
    /* A reader's mapping counts nothing and claims nothing */
    assert_int_equal(sl_shm_attach(name, true, 0, &ro, err, sizeof err), 0);
    assert_int_equal(sl_lstat_claim(&ro, "new"), -1);
    sl_lstat_add(&ro, first, SL_LSTAT_MESSAGES, 5);
    assert_true(sl_lstat_read(&ro, (unsigned)first, &v));
    assert_int_equal(v.n[SL_LSTAT_MESSAGES], 2);
    sl_shm_detach(&ro);
    done(&shm, name);
}

/* main - every case, with the expected warnings hidden */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_attach),
        cmocka_unit_test(test_attach_garbage),
        cmocka_unit_test(test_second_create),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_lookup_keys),
        cmocka_unit_test(test_table_full),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_all_or_none),
        cmocka_unit_test(test_fixed_order),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_swap),
        cmocka_unit_test(test_waits),
        cmocka_unit_test(test_sole_waiter),
        cmocka_unit_test(test_generations),
        cmocka_unit_test(test_norecord),
        cmocka_unit_test(test_owner_claim),
        cmocka_unit_test(test_reclaim),
        cmocka_unit_test(test_audit),
        cmocka_unit_test(test_snapshot_foreach),
        cmocka_unit_test(test_action_cap),
        cmocka_unit_test(test_listener_stats),
    };
    sl_msg_init("test_shm");
    sl_msg_set_level(SL_MSG_FATAL); /* the audit's and reclaim's warnings are expected here */
    return cmocka_run_group_tests(tests, NULL, unlink_all);
}
