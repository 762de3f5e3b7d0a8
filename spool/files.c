/*
 * files.c - the spool's directories and its one way of writing a file durably.
 *
 * Every file that enters queue/ or state/ is written in tmp/ first, fsynced,
 * renamed into place and the directory fsynced (architecture I4): after a
 * crash a file is either whole in its place or garbage in tmp/.
 * Concurrency: any process; a new message's name is claimed without replacing
 * (renameat2 RENAME_NOREPLACE, or link where the file system lacks it), so two
 * writers can never share an id.
 * Trust boundary: dir comes from the config; names are our own ids.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "spool_impl.h"

/* spool_open_entry - a spool entry opened for reading, only if it is a regular file.
 * Without touching its access time: a message is read by the master's pickup and again by
 * its worker, and an access-time update would dirty the inode of every message (a write-back
 * of each, and on a file system without a journal a slower unlink).  O_NOATIME is refused
 * (EPERM) to a process that does not own the file, such as an operator's sluicectl: it then
 * reads the file as usual. */
int spool_open_entry(const char *path)
{
    const int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    struct stat st;
    int fd = open(path, flags | O_NOATIME);

    if (fd < 0 && errno == EPERM)
        fd = open(path, flags);
    if (fd < 0) {
        if (errno == ELOOP) /* a symlink: never followed (it could name /etc/passwd) */
            errno = EBADMSG;
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = EBADMSG;
        return -1;
    }
    return fd;
}

/* spool_fail - format the error for the caller and return -1 */
int spool_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    int saved = errno; /* callers may still look at the cause */

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    errno = saved;
    return -1;
}

/* spool_path - dir/sub[/name] */
bool spool_path(char *buf, size_t len, const char *dir, const char *sub, const char *name)
{
    int n = name != NULL ? snprintf(buf, len, "%s/%s/%s", dir, sub, name)
                         : snprintf(buf, len, "%s/%s", dir, sub);
    return n > 0 && (size_t)n < len;
}

/* spool_fsync_dir - make the entries of a directory durable */
int spool_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* make_dir - create one directory of the spool unless it is there */
static int make_dir(const char *path, char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(path, 0750) == 0 || (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        return 0;
    return spool_fail(err, errlen, "cannot create %s: %s", path,
                      errno == EEXIST ? "not a directory" : strerror(errno));
}

/* sl_spool_init - dir and its tmp/, queue/, state/ (mode 0750) */
int sl_spool_init(const char *dir, char *err, size_t errlen)
{
    static const char *const subs[] = {SPOOL_TMP, SPOOL_QUEUE, SPOOL_STATE};
    char path[4096];

    if (dir == NULL || *dir == '\0')
        return spool_fail(err, errlen, "no spool directory");
    if (make_dir(dir, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (!spool_path(path, sizeof path, dir, subs[i], NULL))
            return spool_fail(err, errlen, "spool path too long: %s", dir);
        if (make_dir(path, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* write_all - the whole buffer, across short writes and signals */
static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* own_like_dir - root writing into a spool that belongs to the daemon's user (sluiced
 * dropped privileges) gives the new file to the directory's owner, or the daemon could
 * not read the message it is asked to deliver */
static int own_like_dir(int fd, const char *path)
{
    char dir[4096];
    char *slash;
    struct stat st;

    if (geteuid() != 0 || strlcpy(dir, path, sizeof dir) >= sizeof dir)
        return 0;
    if ((slash = strrchr(dir, '/')) == NULL)
        return 0;
    *slash = '\0';
    if (stat(dir, &st) < 0 || (st.st_uid == 0 && st.st_gid == 0))
        return 0;
    return fchown(fd, st.st_uid, st.st_gid);
}

/* write_tmp - create tmp/NAME with data, fsynced unless the caller's group syncs it; -1 with
 * errno.  The file is always a new one (O_EXCL, never through a symlink): a replacing writer's
 * tmp name is known in advance (actions.tmp, a state's NAME.PID), and whatever was left or
 * planted there is removed first rather than opened.  Opening it would follow a symlink and
 * truncate its target, as root when sluicectl writes with no daemon, and would wait for ever
 * on a FIFO. */
static int write_tmp(const char *path, const void *data, size_t len, enum spool_commit_mode mode,
                     bool sync)
{
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd, saved;

    if (mode == SPOOL_REPLACE && unlink(path) < 0 && errno != ENOENT)
        return -1;
    if ((fd = open(path, flags, 0640)) < 0)
        return -1;
    if (own_like_dir(fd, path) < 0 || write_all(fd, data, len) < 0 || (sync && fsync(fd) < 0)) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return close(fd);
}

/* claim - rename tmp to final without ever replacing an existing file */
static int claim(const char *tmp, const char *final)
{
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* A file system without RENAME_NOREPLACE: link refuses an existing name too. */
    if (link(tmp, final) < 0)
        return -1;
    unlink(tmp);
    return 0;
}

/* failed - SPOOL_COMMIT_ERROR with errno e, the failure's cause (the clean-up that followed it
 * may have changed errno; a listener tells a full disk by it) */
static enum spool_commit_result failed(int e)
{
    errno = e;
    return SPOOL_COMMIT_ERROR;
}

/* The three paths of a commit: the file in tmp/, its final name, its directory. */
struct commit_paths {
    char tmp[4096], final[4096], subdir[4096];
};

/* commit_paths - p's paths for dir, tmpname, sub and name; false (err set) when too long */
static bool commit_paths(struct commit_paths *p, const char *dir, const char *tmpname,
                         const char *sub, const char *name, char *err, size_t errlen)
{
    if (spool_path(p->tmp, sizeof p->tmp, dir, SPOOL_TMP, tmpname) &&
        spool_path(p->final, sizeof p->final, dir, sub, name) &&
        spool_path(p->subdir, sizeof p->subdir, dir, sub, NULL))
        return true;
    spool_fail(err, errlen, "spool path too long: %s", dir);
    return false;
}

/* spool_commit - tmp/tmpname <- data, fsync, rename to sub/name, fsync sub/ */
enum spool_commit_result spool_commit(const char *dir, const char *tmpname, const char *sub,
                                      const char *name, const void *data, size_t len,
                                      enum spool_commit_mode mode, char *err, size_t errlen)
{
    struct commit_paths p;
    int rc;

    if (!commit_paths(&p, dir, tmpname, sub, name, err, errlen))
        return SPOOL_COMMIT_ERROR;
    if (write_tmp(p.tmp, data, len, mode, true) < 0) {
        int saved = errno;
        spool_fail(err, errlen, "cannot write %s: %s", p.tmp, strerror(saved));
        unlink(p.tmp);
        return failed(saved);
    }
    rc = mode != SPOOL_REPLACE ? claim(p.tmp, p.final) : rename(p.tmp, p.final);
    if (rc < 0) {
        int saved = errno;
        unlink(p.tmp);
        if (saved == EEXIST)
            return SPOOL_COMMIT_EXISTS;
        spool_fail(err, errlen, "cannot rename %s to %s: %s", p.tmp, p.final, strerror(saved));
        return failed(saved);
    }
    if (spool_fsync_dir(p.subdir) < 0) {
        /* The file is in place but maybe not durable: take it back, the
         * caller reports a failure and must not believe it was accepted. */
        int saved = errno;
        spool_fail(err, errlen, "cannot fsync %s: %s", p.subdir, strerror(saved));
        if (mode == SPOOL_NEW)
            unlink(p.final);
        return failed(saved);
    }
    return SPOOL_COMMIT_OK;
}

/* spool_commit_grouped - tmp/tmpname <- data, rename to sub/name (never replacing), the
 * group's sync, then the master told (sl_spool_notify) */
enum spool_commit_result spool_commit_grouped(const char *dir, const char *tmpname, const char *sub,
                                              const char *name, const void *data, size_t len,
                                              struct sl_spool_group *g, char *err, size_t errlen)
{
    struct commit_paths p;

    if (!commit_paths(&p, dir, tmpname, sub, name, err, errlen))
        return SPOOL_COMMIT_ERROR;
    if (spool_group_fd(p.subdir) < 0) { /* before the write: its sync must see the write's errors */
        int saved = errno;
        spool_fail(err, errlen, "cannot open %s: %s", p.subdir, strerror(saved));
        return failed(saved);
    }
    spool_group_heading(g, true);
    spool_group_tmp(g, tmpname); /* named before it exists: a kill from here on is cleaned up */
    spool_group_queued(g, name); /* ... and, renamed, taken up by the master */
    if (write_tmp(p.tmp, data, len, SPOOL_NEW, false) < 0 || claim(p.tmp, p.final) < 0) {
        int saved = errno;
        spool_group_heading(g, false);
        spool_group_queued(g, NULL);
        unlink(p.tmp);
        spool_group_tmp(g, NULL);
        if (saved == EEXIST)
            return SPOOL_COMMIT_EXISTS;
        spool_fail(err, errlen, "cannot write %s as %s: %s", p.tmp, p.final, strerror(saved));
        return failed(saved);
    }
    spool_group_tmp(g, NULL); /* renamed: nothing of it is in tmp/ any more */
    if (spool_group_sync(g, p.subdir) < 0) {
        int saved = errno;
        spool_fail(err, errlen, "cannot sync %s: %s", p.subdir, strerror(saved));
        unlink(p.final); /* in place but maybe not durable: the caller must not acknowledge it */
        spool_group_queued(g, NULL);
        return failed(saved);
    }
    sl_spool_notify(dir, name);  /* durable: the master takes it up now */
    spool_group_queued(g, NULL); /* told: a kill from here on leaves nothing to take up */
    return SPOOL_COMMIT_OK;
}

/* spool_parse_u64 - a strict decimal number of exactly n bytes */
bool spool_parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || d > max || v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}
