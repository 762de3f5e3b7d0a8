/*
 * privileges.c - drop root: plan, hand the segment and the spool over, become
 * the `user` of the config.
 *
 * Order matters and is sluiced.c's: plan (fail before anything is created),
 * create the segment, open the spool and the control socket as root, hand
 * them over, drop, and only then fork the workers, which inherit the dropped
 * identity.  Under systemd the unit starts sluiced as its user directly and
 * none of this runs; it is for a start by root (an init script, a terminal).
 * Trust boundary: the spool may hold entries planted by the unprivileged user
 * (it could write there at the previous run).  Root must not be tricked into
 * giving away another file: entries are reached with openat and O_NOFOLLOW
 * from the spool's own directory descriptors, symbolic links are never
 * followed or changed, a regular file with more than one link is left alone
 * (it may be a hard link to a file outside the spool), and the walk stops at
 * the spool's known depth.  Only the spool tree is changed, never its parents.
 * Global state: none.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "util/sl_file.h"
#include "util/sl_msg.h"
#include "master/sl_privileges.h"

#define SPOOL_DEPTH 2 /* spool_dir/queue/FILE: the deepest entry sluiced makes */

/* sl_privileges_plan - whether and whom to become; fatal when impossible */
void sl_privileges_plan(const char *user, struct sl_privileges *p)
{
    const struct passwd *pw;
    uid_t me = geteuid();

    memset(p, 0, sizeof *p);
    if (user == NULL || *user == '\0') {
        if (me == 0)
            sl_msg_warn("running as root: set `user` in the config to drop privileges");
        return;
    }
    errno = 0;
    pw = getpwnam(user);
    if (pw == NULL)
        sl_msg_fatal("user = %s: %s", user, errno != 0 ? strerror(errno) : "no such user");
    if (pw->pw_uid == me) {
        if (me == 0)
            sl_msg_warn("user = %s: running as root", user);
        else
            sl_msg_debug("already running as user %s", user);
        return;
    }
    if (me != 0)
        sl_msg_fatal("user = %s: only root can become another user (running as uid %ld)", user,
                     (long)me);
    p->drop = true;
    p->uid = pw->pw_uid;
    p->gid = pw->pw_gid;
    strlcpy(p->user, user, sizeof p->user);
}

/* give_fd - one spool entry (an O_PATH or open descriptor) to the user */
static void give_fd(const struct sl_privileges *p, int fd, const char *name)
{
    if (fchownat(fd, "", p->uid, p->gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
        sl_msg_fatal("cannot give %s to user %s: %s", name, p->user, strerror(errno));
}

static void give_entries(const struct sl_privileges *p, int dir, const char *dirname, int depth);

/* give_entry - one entry of a spool directory; a directory is walked in turn */
static void give_entry(const struct sl_privileges *p, int dir, const char *dirname,
                       const char *name, int depth)
{
    /* O_PATH, and only O_PATH: this walk reaches spool_dir/sluiced.lock, and closing any
     * other descriptor of that file would drop the master's record lock on it (POSIX locks
     * belong to the process and file); a close of an O_PATH descriptor leaves locks alone. */
    int fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0) {
        if (errno != ENOENT) /* an entry may go while we look: sluicectl inject's tmp file */
            sl_msg_warn("spool %s/%s: %s", dirname, name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    if (S_ISDIR(st.st_mode) && depth < SPOOL_DEPTH) {
        int sub = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sub < 0)
            sl_msg_fatal("spool %s/%s: %s", dirname, name, strerror(errno));
        if (st.st_uid != p->uid || st.st_gid != p->gid)
            give_fd(p, sub, name);
        give_entries(p, sub, name, depth + 1); /* closes sub */
    } else if ((S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode)) && st.st_nlink == 1) {
        if (st.st_uid != p->uid || st.st_gid != p->gid)
            give_fd(p, fd, name);
    } else if (S_ISREG(st.st_mode) && st.st_uid != p->uid) {
        sl_msg_warn("spool %s/%s has %lu links: left to its owner", dirname, name,
                    (unsigned long)st.st_nlink);
    }
    close(fd);
}

/* give_entries - every entry of an open spool directory (dir is consumed) */
static void give_entries(const struct sl_privileges *p, int dir, const char *dirname, int depth)
{
    DIR *d = fdopendir(dir);
    const struct dirent *e;

    if (d == NULL)
        sl_msg_fatal("spool %s: %s", dirname, strerror(errno));
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            give_entry(p, dirfd(d), dirname, e->d_name, depth);
    closedir(d);
}

/* give_segment - the counter segment: the user's, readable by its group */
static void give_segment(const struct sl_privileges *p, const char *shm_name)
{
    int fd = shm_open(shm_name, O_RDWR | O_CLOEXEC, 0);

    /* Owned by the user, the dropped master can unlink it at exit (/dev/shm is
     * sticky); mode 0640 with the user's group lets its members read counters. */
    if (fd < 0 || fchown(fd, p->uid, p->gid) < 0 || fchmod(fd, 0640) < 0)
        sl_msg_fatal("cannot give the counter segment %s to user %s: %s", shm_name, p->user,
                     strerror(errno));
    close(fd);
}

/* give_log - the delivery log, when it exists, to the user: the workers append to it and
 * reopen it after a rotation as that user (a file an earlier run as root left behind would
 * otherwise take every per-attempt record away) */
static void give_log(const struct sl_privileges *p, const char *path)
{
    int fd;
    struct stat st;

    if (path == NULL || (fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return; /* not there yet: the dropped master creates it (sl_privileges_check_log) */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_uid != p->uid || st.st_gid != p->gid))
        give_fd(p, fd, path);
    close(fd);
}

/* sl_privileges_check_log - can this process append to the delivery log (creating it)?  A
 * log the workers could not write is a start error, not a warning per worker. */
bool sl_privileges_check_log(const char *path, char *err, size_t errlen)
{
    int fd;

    if (path == NULL)
        return true;
    /* O_NONBLOCK: a FIFO there (a log shipper's, or one planted) must not stop a start or a
     * reload until something reads it */
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "delivery log %s cannot be written as uid %ld: %s", path,
                 (long)geteuid(), sl_file_strerror(errno));
        return false;
    }
    close(fd);
    return true;
}

/* sl_privileges_hand_over - while root: the segment, the spool tree and the delivery log to the
 * user */
void sl_privileges_hand_over(const struct sl_privileges *p, const char *shm_name,
                             const char *spool_dir, const char *delivery_log)
{
    int top;
    struct stat st;

    if (!p->drop)
        return;
    give_segment(p, shm_name);
    give_log(p, delivery_log);
    top = open(spool_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (top < 0 || fstat(top, &st) < 0)
        sl_msg_fatal("spool %s: %s", spool_dir, strerror(errno));
    if (st.st_uid != p->uid || st.st_gid != p->gid)
        give_fd(p, top, spool_dir);
    give_entries(p, top, spool_dir, 0);
}

/* still_root - true when any way back to uid 0 or the old groups is open */
static bool still_root(const struct sl_privileges *p)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
        return true;
    if (ru != p->uid || eu != p->uid || su != p->uid)
        return true;
    if (rg != p->gid || eg != p->gid || sg != p->gid)
        return true;
    return setuid(0) == 0 || seteuid(0) == 0;
}

/* sl_privileges_drop - become the user; no way back */
void sl_privileges_drop(const struct sl_privileges *p)
{
    if (!p->drop)
        return;
    /* Groups first: once the uid is gone, so is the right to change them. */
    if (initgroups(p->user, p->gid) < 0)
        sl_msg_fatal("initgroups(%s): %s", p->user, strerror(errno));
    if (setresgid(p->gid, p->gid, p->gid) < 0)
        sl_msg_fatal("setgid(%ld): %s", (long)p->gid, strerror(errno));
    if (setresuid(p->uid, p->uid, p->uid) < 0)
        sl_msg_fatal("setuid(%ld): %s", (long)p->uid, strerror(errno));
    if (still_root(p))
        sl_msg_fatal("dropping to user %s failed: root could be regained", p->user);
    /* The uid change made the process undumpable; a panic must still leave a
     * core, and nothing it holds is more than the user may read anyway. */
    prctl(PR_SET_DUMPABLE, 1);
    sl_msg_info("running as user %s (uid %ld, gid %ld)", p->user, (long)p->uid, (long)p->gid);
}
