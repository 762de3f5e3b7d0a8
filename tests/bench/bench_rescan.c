/*
 * bench_rescan.c - how long the master's loop stops for the rescan of a big spool:
 * bench_rescan [N]
 *
 * Queues N messages (default 200,000; a copy of one written by sl_spool_write under N ids,
 * without a sync each), indexes them as the master's start scan does, then measures the
 * periodic rescan that catches a lost new-mail notice, one figure per line on stdout:
 *   - the start scan: how long indexing the spool takes;
 *   - the rescan as the master runs it, a batch of SL_PICKUP_RESCAN_BATCH directory entries
 *     per loop pass: the longest batch (the longest the loop waits for it) and the whole;
 *   - the same work in one call (one listing of queue/ and state/, then a lookup of every id
 *     in the index), as the rescan was made before: the loop waited for all of it at once.
 * Three rounds each.  The spool is a directory under $TMPDIR (or /tmp), removed at the end.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "master/sl_pickup.h"
#include "tests/lib/tmpdir.h"
#include "spool/sl_spool.h"
#include "util/sl_clock.h"
#include "util/sl_msg.h"

/* seconds - the monotonic clock */
static double seconds(void)
{
    return (double)sl_clock_us() / 1e6;
}

/* time_part - i as the ten-digit time part of an id, so that ids sort in arrival order */
static void time_part(char *out, size_t i)
{
    for (int k = 9; k >= 0; k--, i /= 10)
        out[k] = (char)('0' + i % 10);
}

/* fill - n messages in dir (at most 255 bytes long): one written properly, copied under n - 1
 * new ids */
static void fill(const char *dir, size_t n)
{
    const char *rcpt[] = {"r@bench.test"};
    struct sl_spool_new m = {.binding = "default",
                             .sender = "s@bench.test",
                             .rcpt = rcpt,
                             .nrcpt = 1,
                             .body = "Subject: b\n\nbody\n",
                             .len = 17};
    char id[SL_SPOOL_ID_LEN + 1], path[512], err[256], buf[4096];
    ssize_t len;
    char *at;
    int fd;

    if (sl_spool_write(dir, &m, id, err, sizeof err) < 0)
        sl_msg_fatal("%s", err);
    snprintf(path, sizeof path, "%s/queue/%s", dir, id);
    if ((fd = open(path, O_RDONLY)) < 0 || (len = read(fd, buf, sizeof buf)) <= 0)
        sl_msg_fatal("cannot read back %s", path);
    close(fd);
    if ((at = memmem(buf, (size_t)len, id, SL_SPOOL_ID_LEN)) == NULL)
        sl_msg_fatal("no id in %s", path);
    for (size_t i = 1; i < n; i++) {
        char name[SL_SPOOL_ID_LEN + 1];
        memcpy(name, id, sizeof name);
        time_part(name, i);
        memcpy(at, name, SL_SPOOL_ID_LEN);
        snprintf(path, sizeof path, "%s/queue/%s", dir, name);
        if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640)) < 0 ||
            write(fd, buf, (size_t)len) != len)
            sl_msg_fatal("cannot write %s", path);
        close(fd);
    }
}

static char spool[256]; /* the benchmark's spool, removed at exit, whatever the exit */

/* remove_spool - at exit: a fatal error (a full disk) leaves no spool of a million files */
static void remove_spool(void)
{
    test_rmtree(spool);
}

/* lookup - one id of the one-call rescan: is it in the index? */
static size_t lacked;
static void lookup(const char *id, void *ctx)
{
    struct sl_sched *s = ctx;

    lacked += sl_queue_find(s->q, id) == NULL;
}

int main(int argc, char **argv)
{
    char *end, *dir = spool, err[256];
    size_t n = argc > 1 ? strtoul(argv[1], &end, 10) : 200000;
    const char *tmp = getenv("TMPDIR");
    struct sl_sched s;
    double t;

    sl_msg_init("bench_rescan");
    sl_msg_set_level(SL_MSG_WARN);
    if (argc > 1 && (*end != '\0' || argv[1][0] == '-' || n < 1 || n > 100000000))
        sl_msg_fatal("usage: bench_rescan [MESSAGES], 1 to 100000000");
    snprintf(dir, sizeof spool, "%s/sluice-bench-rescan.XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        sl_msg_fatal("cannot make a directory under %s", tmp != NULL ? tmp : "/tmp");
    atexit(remove_spool);
    if (sl_spool_init(dir, err, sizeof err) < 0)
        sl_msg_fatal("spool %s: %s", dir, err);
    fill(dir, n);
    sl_sched_init(&s, dir);
    t = seconds();
    sl_pickup_start(&s);
    while (sl_pickup_step(&s, SL_PICKUP_CHUNK))
        ;
    printf("spool of %zu messages: the start scan indexes them in %.2f s\n", n, seconds() - t);
    for (int round = 0; round < 3; round++) {
        double worst = 0, all = seconds();
        size_t batches = 0;
        for (bool more = true; more; batches++) {
            double b = seconds(), took;
            more = sl_pickup_rescan_step(&s, SL_PICKUP_RESCAN_BATCH);
            if ((took = seconds() - b) > worst)
                worst = took;
        }
        printf("rescan in batches of %d entries: the loop waits at most %.2f ms (%.3f s in all, "
               "%zu batches)\n",
               SL_PICKUP_RESCAN_BATCH, worst * 1000, seconds() - all, batches);
    }
    for (int round = 0; round < 3; round++) {
        t = seconds();
        lacked = 0;
        if (sl_spool_scan(dir, lookup, &s) < 0)
            sl_msg_fatal("cannot list the spool %s", dir);
        printf("the same in one call (a listing, then a lookup of each id): the loop waits "
               "%.3f s (%zu ids not indexed)\n",
               seconds() - t, lacked);
    }
    sl_sched_free(&s);
    return 0; /* the spool goes at exit */
}
