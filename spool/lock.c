/*
 * lock.c - spool_dir/sluiced.lock: the daemon's hold on the spool, and
 * sluicectl's while it acts on the spool with no daemon (sl_spool_lock.h).
 *
 * Byte 0 is the daemon's: the master write-locks it (waiting for a sluicectl
 * already acting, a bounded amount of work; refusing when another daemon holds
 * it), sluicectl read-locks it and never waits for the master: it is told the
 * spool is held, and goes to the daemon's control socket instead.  Byte 1 is
 * sluicectl's own, write-locked and waited for, so that two of them acting on
 * the spool take turns.  Only these functions open the lock
 * file, so no other close in the process drops the record lock.
 * Concurrency: master and sluicectl processes.
 * Trust boundary: the spool directory is the daemon's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool/sl_spool_lock.h"
#include "util/sl_msg.h"
#include "spool_impl.h"

#define DAEMON_WAIT_S 60 /* longest a starting master waits for a sluicectl acting offline */

/* open_lock - the lock file, created (owned like the spool when root makes it) */
static int open_lock(const char *dir, int mode)
{
    char path[4096];
    struct stat st;
    int fd;

    if (snprintf(path, sizeof path, "%s/%s", dir, SL_SPOOL_LOCK) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if ((fd = open(path, mode | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0640)) < 0)
        return -1;
    /* A FIFO, a device or a hard link planted in the spool is not the lock: taking it could
     * wait for ever, and root would give the linked file away below. */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        close(fd);
        errno = EBADMSG;
        return -1;
    }
    /* root makes it in the daemon's spool: the daemon's user (and sluicectl run as it) reads it */
    if (geteuid() == 0 && stat(dir, &st) == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)
        sl_msg_debug("cannot give %s to the spool's owner: %s", path, strerror(errno));
    return fd;
}

/* holder - the pid holding a lock on fd that conflicts with fl, and whether it writes (a
 * daemon) or reads (a sluicectl); 0 when none does any more */
static pid_t holder(int fd, const struct flock *fl, bool *writes)
{
    struct flock probe = *fl;

    if (fcntl(fd, F_GETLK, &probe) < 0 || probe.l_type == F_UNLCK)
        return 0;
    *writes = probe.l_type == F_WRLCK;
    return probe.l_pid;
}

/* sl_spool_lock_daemon - the write lock; a sluicectl acting on the spool is waited for (at
 * most DAEMON_WAIT_S), another daemon is not: two masters on one spool would each take the
 * other's control socket and deliver the same mail */
int sl_spool_lock_daemon(const char *dir, char *err, size_t errlen)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    const struct timespec step = {.tv_nsec = 100 * 1000000L};
    int fd = open_lock(dir, O_RDWR), e = 0;

    if (fd < 0 && errno == ENOENT && mkdir(dir, 0750) == 0) /* a first start */
        fd = open_lock(dir, O_RDWR);
    if (fd < 0 && errno == EBADMSG) { /* as fatal as another daemon: with no lock taken, a
                                       * second daemon could start on this spool too */
        spool_fail(err, errlen, "%s/%s is not a regular file of one link: remove it", dir,
                   SL_SPOOL_LOCK);
        return SL_SPOOL_LOCK_BUSY;
    }
    if (fd < 0)
        return spool_fail(err, errlen, "cannot open %s/%s: %s", dir, SL_SPOOL_LOCK,
                          strerror(errno));
    for (int waited = 0; fcntl(fd, F_SETLK, &fl) < 0; waited++) {
        bool writes = false;
        pid_t pid;
        if ((e = errno) == EINTR)
            continue;
        if (e != EAGAIN && e != EACCES) {
            close(fd);
            return spool_fail(err, errlen, "cannot lock %s/%s: %s", dir, SL_SPOOL_LOCK,
                              strerror(e));
        }
        if ((pid = holder(fd, &fl, &writes)) != 0 && writes) {
            close(fd);
            spool_fail(err, errlen, "spool %s is held by another sluiced (pid %ld)", dir,
                       (long)pid);
            return SL_SPOOL_LOCK_BUSY;
        }
        if (waited >= DAEMON_WAIT_S * 10) {
            close(fd);
            return spool_fail(err, errlen, "spool %s: sluicectl (pid %ld) held it for over %d s",
                              dir, (long)pid, DAEMON_WAIT_S);
        }
        if (waited == 0)
            sl_msg_info("spool %s: waiting for sluicectl (pid %ld), which is changing it", dir,
                        (long)pid);
        nanosleep(&step, NULL);
    }
    return fd;
}

/* sl_spool_lock_offline - the read lock of the daemon's byte, not waited for; then the
 * sluicectl byte, waited for: two sluicectl acting at once would each read, change and
 * write back the same file (the actions, a part's state), and one change would be lost */
int sl_spool_lock_offline(const char *dir)
{
    struct flock daemon = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    struct flock ctl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1};
    int fd = open_lock(dir, O_RDWR), rc, e;

    if (fd < 0)
        return -1;
    if (fcntl(fd, F_SETLK, &daemon) < 0) {
        e = errno;
        close(fd);
        errno = e;
        return e == EAGAIN || e == EACCES ? SL_SPOOL_LOCK_BUSY : -1;
    }
    while ((rc = fcntl(fd, F_SETLKW, &ctl)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}
