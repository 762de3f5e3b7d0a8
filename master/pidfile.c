/*
 * pidfile.c - spool_dir/sluiced.pid: the running master's process id, for
 * `sluicectl status` and `sluicectl reload` (and scripts) to find it.
 *
 * Written once the master has dropped its privileges (so the file belongs to
 * the same user as the spool) and removed at a clean stop.  A file left by a
 * master that was killed names a dead process or, rarely, another one: readers
 * confirm the process against the counter segment's master_pid.
 * Concurrency: master only.
 * Trust boundary: the spool directory is the daemon's own.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ipc/sl_control.h"
#include "master/sl_pidfile.h"
#include "util/sl_msg.h"

/* sl_pidfile_write - our pid into spool_dir/sluiced.pid (a failure is only warned) */
void sl_pidfile_write(const char *spool_dir)
{
    char path[4200];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", spool_dir, SL_PIDFILE);
    if ((f = fopen(path, "we")) == NULL) {
        sl_msg_warn("cannot write %s: %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0)
        sl_msg_warn("cannot write %s: %s", path, strerror(errno));
}

/* sl_pidfile_remove - the file, at a clean stop */
void sl_pidfile_remove(const char *spool_dir)
{
    char path[4200];

    snprintf(path, sizeof path, "%s/%s", spool_dir, SL_PIDFILE);
    unlink(path);
}
