/*
 * ctl_log_check.c - can the delivery log be opened for append: what reload
 * checks before it signals the daemon, and config check for a delivery_log the
 * file sets.
 *
 * Only what no user could do is an error: a missing directory (for reload: for
 * config check, before a first start, it is not), a path through a file, a
 * directory, a read-only file system.  A permission refused to the
 * user running sluicectl is not (the daemon appends as its own user, and
 * refuses a log it cannot write at start and reload, its log saying why).
 * Nothing is created or changed: the file is opened only when it exists.
 * Concurrency: a short-lived process; the answer may be stale a moment later.
 * Trust boundary: the path is the operator's, from the config file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "config/sl_config.h"
#include "ctl/sl_ctl.h"
#include "util/sl_file.h"

/* dir_error - why no file could be created in path's directory, else 0 */
static int dir_error(const char *path)
{
    char dir[4096], *slash;
    struct stat st;

    strlcpy(dir, path, sizeof dir);
    if ((slash = strrchr(dir, '/')) == NULL)
        return 0;
    *slash = '\0';
    if (dir[0] == '\0')
        strlcpy(dir, "/", sizeof dir);
    if (stat(dir, &st) < 0)
        return errno == EACCES ? 0 : errno;
    if (!S_ISDIR(st.st_mode))
        return ENOTDIR;
    /* access(2) says EROFS before any permission: a read-only mount refuses every user */
    if (access(dir, W_OK) < 0 && errno == EROFS)
        return EROFS;
    return 0;
}

/* sl_ctl_log_error - why no user could append to the delivery log at path, else 0 */
int sl_ctl_log_error(const char *path)
{
    int fd, e;

    if (path == NULL || path[0] == '\0')
        return 0;
    /* O_NONBLOCK: a FIFO that nobody reads is an error (ENXIO), not a wait for a reader */
    if ((fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) >= 0) {
        close(fd);
        return 0;
    }
    e = errno;
    if (e == EACCES || e == EPERM)
        return 0;
    return e == ENOENT ? dir_error(path) : e; /* not there yet: its directory must take it */
}

/* sl_ctl_log_check - config check's part: a delivery_log set in the file that no user could
 * append to, as FILE:LINE on stderr; 0, or 1 */
int sl_ctl_log_check(const struct sl_config *cfg)
{
    const struct sl_value *v = &cfg->sections[0]->v[SL_OPT_DELIVERY_LOG];
    int e;

    /* The built-in default names this host's /var/log: a file that does not set it is checked
     * on the host that runs the daemon (at its start).  A directory not there yet is no error
     * here: the systemd unit's LogsDirectory= makes it when the daemon starts (a config is
     * checked before its first start), and the daemon refuses a log it cannot open then. */
    if (!v->set || v->str == NULL || (e = sl_ctl_log_error(v->str)) == 0 || e == ENOENT)
        return 0;
    fprintf(stderr, "%s:%u: delivery_log %s cannot be opened for append: %s\n", cfg->path, v->line,
            v->str, sl_file_strerror(e));
    return 1;
}
