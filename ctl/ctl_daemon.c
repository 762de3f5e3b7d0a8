/*
 * ctl_daemon.c - sluicectl status | reload: the running daemon as a whole.
 *
 * The master's pid is in spool_dir/sluiced.pid (written at start, removed at a
 * clean stop); a left-over file is recognised by the process being gone, or not
 * being the master that the counter segment names.
 *   status   pid, workers, config generation, connections open, messages queued
 *            (the spool), counters in use, and per SMTP listener its sessions open,
 *            the messages it queued and the commands it refused.  Exit 0 running, 3 not running (as
 *            LSB's status), 1 when it cannot tell.
 *   reload   validates the file first (the errors, exit 1, and no signal when it
 *            does not validate, or names a delivery_log no user can append to),
 *            then SIGHUP, and waits up to 10 s for the
 *            daemon's config generation to move: exit 0 when it did, 1 when the
 *            daemon refused the file (its log says why) or did not answer.
 * Trust boundary: the pid file is the daemon's; the pid read is checked against
 * the segment before any signal is sent.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "config/sl_config.h"
#include "ctl/sl_ctl.h"
#include "ipc/sl_control.h"
#include "shm/sl_shm.h"
#include "util/sl_atomic.h"
#include "util/sl_file.h"

#define RELOAD_WAIT_MS 10000

/* What is known of the running daemon. */
struct daemon {
    char spool[4096];
    long pid; /* 0: no pid file */
    bool alive, attached;
    struct sl_shm shm;
};

/* read_pid - the pid file's number, 0 when none */
static long read_pid(const char *spool)
{
    char path[4200];
    long pid = 0;
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", spool, SL_PIDFILE);
    if ((f = sl_ctl_fopen_regular(path)) == NULL) /* the daemon's user's file: no FIFO */
        return 0;
    if (fscanf(f, "%ld", &pid) != 1 || pid <= 1)
        pid = 0;
    fclose(f);
    return pid;
}

/* find - the pid file, the process, and its counter segment */
static int find(const char *cfgpath, struct daemon *d)
{
    struct sl_diag diag = {0};
    struct sl_scope_ref none = {0};
    struct sl_config *cfg;
    char err[256];

    memset(d, 0, sizeof *d);
    if (sl_ctl_global(cfgpath, SL_OPT_SPOOL_DIR, d->spool, sizeof d->spool) != 0)
        return -1;
    d->pid = read_pid(d->spool);
    d->alive = d->pid > 0 && (kill((pid_t)d->pid, 0) == 0 || errno == EPERM);
    if ((cfg = sl_config_load(cfgpath, &diag)) != NULL) {
        d->attached = sl_shm_attach(sl_config_str(cfg, SL_OPT_SHM_NAME, &none), true, 0, &d->shm,
                                    err, sizeof err) == 0;
        sl_config_free(cfg);
    }
    sl_diag_free(&diag);
    if (d->attached && (sl_shm_stale(&d->shm) || (long)d->shm.hdr->master_pid != d->pid)) {
        sl_shm_detach(&d->shm); /* a segment left behind, or a pid file from another start */
        d->attached = false;
        d->alive = false;
    }
    return 0;
}

/* queued - messages in spool/queue */
static size_t queued(const char *spool)
{
    char path[4200];
    struct dirent *e;
    size_t n = 0;
    DIR *dir;

    snprintf(path, sizeof path, "%s/queue", spool);
    if ((dir = opendir(path)) == NULL)
        return 0;
    while ((e = readdir(dir)) != NULL)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

/* connections - the server counter's connections in use */
static unsigned connections(const struct sl_shm *shm)
{
    struct sl_counter_view v = {0};
    uint32_t slot;

    if (sl_shm_find(shm, SL_SCOPE_SERVER, "", NULL, &slot) == SL_SHM_OK)
        sl_shm_view(shm, slot, &v);
    return v.in_use;
}

/* listeners - one line per SMTP listener: sessions open, messages taken, what it refused */
static void listeners(const struct sl_shm *shm)
{
    struct sl_lstat_view v;

    for (unsigned i = 0; i < SL_LSTAT_LISTENERS; i++) {
        uint64_t refused = 0;
        if (!sl_lstat_read(shm, i, &v))
            continue;
        for (unsigned r = SL_LSTAT_FIRST_REJ; r <= SL_LSTAT_LAST_REJ; r++)
            refused += v.n[r];
        printf("  listener %s: sessions open %llu, messages queued %llu, refused %llu\n", v.name,
               (unsigned long long)v.active, (unsigned long long)v.n[SL_LSTAT_MESSAGES],
               (unsigned long long)refused);
    }
}

/* sl_ctl_status - sluicectl status */
int sl_ctl_status(const char *cfgpath, int argc, char **argv)
{
    struct daemon d;

    if (argc > 1) {
        fprintf(stderr, "sluicectl: status: unexpected argument %s\nusage: sluicectl status\n",
                argv[1]);
        return 2;
    }
    if (find(cfgpath, &d) < 0)
        return 1;
    if (!d.alive) {
        printf("sluiced is not running (spool %s: %zu messages queued)\n", d.spool,
               queued(d.spool));
        return 3;
    }
    printf("sluiced is running: pid %ld\n", d.pid);
    if (d.attached) {
        printf("  workers %u, config generation %llu, connections open %u, counters %llu of "
               "%u\n",
               sl_ctl_workers_alive(&d.shm), (unsigned long long)sl_peek64(&d.shm.hdr->config_gen),
               connections(&d.shm), (unsigned long long)sl_peek64(&d.shm.hdr->live_slots),
               d.shm.hdr->slot_capacity);
        listeners(&d.shm);
        sl_shm_detach(&d.shm);
    }
    printf("  spool %s: %zu messages queued\n", d.spool, queued(d.spool));
    return 0;
}

/* valid - does the file validate (errors on stderr when not) */
static bool valid(const char *cfgpath)
{
    struct sl_config *cfg = sl_ctl_load_config(cfgpath);

    sl_config_free(cfg);
    return cfg != NULL;
}

/* log_error - why no user could append to the file's delivery_log (ctl_log_check.c), else 0:
 * whether the daemon's own user may is for the daemon to judge (it refuses such a reload, and
 * its log says why) */
static int log_error(const char *cfgpath, char *path, size_t len)
{
    if (sl_ctl_global(cfgpath, SL_OPT_DELIVERY_LOG, path, len) != 0 || path[0] == '\0')
        return 0;
    return sl_ctl_log_error(path);
}

/* sl_ctl_reload - sluicectl reload */
int sl_ctl_reload(const char *cfgpath, int argc, char **argv)
{
    struct timespec pause = {0, 50 * 1000 * 1000};
    struct daemon d;
    uint64_t before;
    char path[4096];
    int e;

    if (argc > 1) {
        fprintf(stderr, "sluicectl: reload: unexpected argument %s\nusage: sluicectl reload\n",
                argv[1]);
        return 2;
    }
    if (!valid(cfgpath)) {
        fprintf(stderr, "sluicectl: reload: %s does not validate: the daemon was not told\n",
                cfgpath);
        return 1;
    }
    if ((e = log_error(cfgpath, path, sizeof path)) != 0) {
        fprintf(stderr,
                "sluicectl: reload: delivery_log %s cannot be opened for append: %s: the daemon "
                "was not told\n",
                path, sl_file_strerror(e));
        return 1;
    }
    if (find(cfgpath, &d) < 0)
        return 1;
    if (!d.alive || !d.attached) {
        fprintf(stderr, "sluicectl: reload: sluiced is not running (no live %s/%s)\n", d.spool,
                SL_PIDFILE);
        return 1;
    }
    before = sl_peek64(&d.shm.hdr->config_gen);
    if (kill((pid_t)d.pid, SIGHUP) < 0) {
        fprintf(stderr, "sluicectl: reload: cannot signal pid %ld: %s\n", d.pid, strerror(errno));
        sl_shm_detach(&d.shm);
        return 1;
    }
    for (int waited = 0; waited < RELOAD_WAIT_MS; waited += 50) {
        if (sl_peek64(&d.shm.hdr->config_gen) != before) {
            printf("reloaded %s: config generation %llu\n", cfgpath,
                   (unsigned long long)sl_peek64(&d.shm.hdr->config_gen));
            sl_shm_detach(&d.shm);
            return 0;
        }
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "sluicectl: reload: the daemon kept config generation %llu (see its log)\n",
            (unsigned long long)before);
    sl_shm_detach(&d.shm);
    return 1;
}
