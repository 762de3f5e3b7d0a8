/*
 * ctl_passwd.c - sluicectl passwd: one entry of a listener's auth_file.
 *
 *   sluicectl [-c CONFIG] passwd (--file PATH | --listener NAME) USER < PASSWORD
 *
 * The password is the first line of standard input (so that it never shows in
 * a process listing); it is hashed with libsodium's crypto_pwhash_str
 * (Argon2id, the interactive limits) and written as "USER:HASH", replacing
 * the user's earlier entry.  The file is rewritten whole (new file, fsync,
 * rename), so a listener never reads half of it; the new file keeps the owner,
 * group and mode of the one it replaces, so a daemon running as another user
 * reads it still (a first file is the caller's, mode 0640).  Running listener
 * processes read it at start, so `systemctl reload sluice` makes it count.
 * --listener NAME takes the path from that listener's auth_file.
 * Concurrency: writers take turns under an flock(2) of the file's directory,
 * so two passwd run at once both have their entry in the end; a script editing
 * the file may take it too.  The new file is PATH.sluicectl-new, under the
 * lock: one killed before its rename leaves it, and the next passwd replaces it.
 * Trust boundary: the operator's input; the user name is checked (no ':',
 * no blanks or control characters), the password is wiped after use.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "config/sl_listener.h"
#include "ctl/sl_ctl.h"
#include "util/sl_msg.h"

#define PASS_MAX    1024             /* a password's bytes and its NUL: a longer one is refused */
#define TEMP_SUFFIX ".sluicectl-new" /* the new file, beside the old (open_temp) */

/* usage - the synopsis */
static int usage(void)
{
    fprintf(stderr, "usage: sluicectl passwd (--file PATH | --listener NAME) USER < PASSWORD\n");
    return 2;
}

/* user_ok - a name that is one token before the ':' */
static bool user_ok(const char *u)
{
    size_t n = strlen(u);

    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] <= ' ' || u[i] == ':' || u[i] == 0x7f)
            return false;
    return true;
}

/* path_of_listener - the auth_file of listener name; NULL (said) when none */
static char *path_of_listener(const char *cfgpath, const char *name)
{
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load(cfgpath, &d);
    const struct sl_listener *l;
    char *path = NULL;

    if (cfg == NULL) {
        fprintf(stderr, "sluicectl: passwd: %s\n", d.n > 0 ? d.lines[0] : cfgpath);
        sl_diag_free(&d);
        return NULL;
    }
    if ((l = sl_config_listener(cfg, name)) == NULL || l->auth_file == NULL)
        fprintf(stderr, "sluicectl: passwd: %s\n",
                l == NULL ? "no such listener" : "that listener has no auth_file");
    else
        path = sl_strdup(l->auth_file);
    sl_config_free(cfg);
    return path;
}

/* read_password - the first line of stdin, without its end, into buf; false (said) when there
 * is none or it does not fit (len - 1 bytes): cut short, it would not be the password the client
 * sends */
static bool read_password(char *buf, size_t len)
{
    size_t n;
    int next;

    if (fgets(buf, (int)len, stdin) == NULL || (n = strcspn(buf, "\r\n")) == 0) {
        fprintf(stderr, "sluicectl: passwd: no password on standard input\n");
        return false;
    }
    if (n == len - 1 && (next = getchar()) != EOF && next != '\n' && next != '\r') {
        fprintf(stderr, "sluicectl: passwd: the password is over %zu bytes: nothing changed\n",
                len - 1);
        return false;
    }
    buf[n] = '\0';
    return true;
}

/* caller_umask - the process's umask (read by setting it, then set back) */
static mode_t caller_umask(void)
{
    mode_t mask = umask(0);

    umask(mask);
    return mask;
}

/* keep_owner - the new file fd takes the owner, group and mode of old, the file it replaces:
 * written by root, it would be root's, which the daemon's user may not read at its next reload.
 * With no old file it is the caller's, mode 0640 less the umask, as an open(2) would make it
 * (open_temp makes it 0600). */
static bool keep_owner(int fd, FILE *old)
{
    struct stat st;

    if (old == NULL)
        return fchmod(fd, 0640 & ~caller_umask()) == 0;
    if (fstat(fileno(old), &st) < 0)
        return false;
    /* chown first: it clears the set-id bits that the chmod then sets back.  A caller who
     * is not root may not give the file to another user: it keeps the group (the daemon's,
     * which a member may give) and becomes the file's owner. */
    if (fchown(fd, st.st_uid, st.st_gid) < 0 &&
        (errno != EPERM || fchown(fd, (uid_t)-1, st.st_gid) < 0))
        return false;
    return fchmod(fd, st.st_mode & 07777) == 0;
}

/* lock_dir - an exclusive flock of path's directory, waited for: two passwd at once would each
 * copy the old file and rename their copy over it, and one entry would be lost.  The
 * descriptor (closing it ends the turn), or -1 (said) */
static int lock_dir(const char *path)
{
    char *dir = sl_strdup(path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = -1;

    while (fd >= 0 && (rc = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        fprintf(stderr, "sluicectl: passwd: cannot lock the directory of %s: %s\n", path,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    free(dir);
    return fd;
}

/* open_temp - the new file beside path (its name into tmp), owned as old (keep_owner); NULL
 * (said, nothing left behind) when it cannot be made.  Its name is fixed: writers take turns
 * (lock_dir), so one name serves them all, and the file a passwd killed before its rename left
 * behind is removed by the next one rather than kept for ever under a name nobody knows. */
static FILE *open_temp(const char *path, FILE *old, char *tmp, size_t len)
{
    FILE *out = NULL;
    int fd = -1;

    if (snprintf(tmp, len, "%s" TEMP_SUFFIX, path) >= (int)len)
        errno = ENAMETOOLONG;
    else if (unlink(tmp) == 0 || errno == ENOENT)
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "sluicectl: passwd: cannot make a new file beside %s: %s\n", path,
                strerror(errno));
        return NULL;
    }
    if (!keep_owner(fd, old))
        fprintf(stderr, "sluicectl: passwd: cannot give %s the owner and mode of %s: %s\n", tmp,
                path, strerror(errno));
    else if ((out = fdopen(fd, "w")) == NULL)
        fprintf(stderr, "sluicectl: passwd: %s: %s\n", tmp, strerror(errno));
    if (out == NULL) {
        close(fd);
        unlink(tmp);
    }
    return out;
}

/* copy_others - every line of in (none when NULL) but user's */
static void copy_others(FILE *in, FILE *out, const char *user)
{
    char line[1024];
    size_t ulen = strlen(user);

    while (in != NULL && fgets(line, sizeof line, in) != NULL)
        if (!(strncmp(line, user, ulen) == 0 && line[ulen] == ':'))
            fputs(line, out);
}

/* rewrite - the file without user's old line, plus the new one, replaced atomically; writers
 * take turns (lock_dir) from reading the old file to renaming the new one over it */
static int rewrite(const char *path, const char *user, const char *hash)
{
    char tmp[4096];
    int lock = lock_dir(path), rc = 1;
    FILE *in, *out;

    if (lock < 0)
        return 1;
    if ((in = sl_ctl_fopen_regular(path)) == NULL && errno != ENOENT) {
        fprintf(stderr, "sluicectl: passwd: %s: %s\n", path,
                errno == ELOOP    ? "a symbolic link (give the file's own path)"
                : errno == EINVAL ? "not a regular file"
                                  : strerror(errno));
    } else if ((out = open_temp(path, in, tmp, sizeof tmp)) != NULL) {
        copy_others(in, out, user);
        fprintf(out, "%s:%s\n", user, hash);
        if (fflush(out) != 0 || fsync(fileno(out)) != 0 || fclose(out) != 0 ||
            rename(tmp, path) != 0) {
            fprintf(stderr, "sluicectl: passwd: cannot write %s: %s\n", path, strerror(errno));
            unlink(tmp);
        } else {
            rc = 0;
        }
    }
    if (in != NULL)
        fclose(in);
    close(lock);
    return rc;
}

/* sl_ctl_passwd - sluicectl passwd (--file PATH | --listener NAME) USER < PASSWORD */
int sl_ctl_passwd(const char *cfgpath, int argc, char **argv)
{
    char hash[crypto_pwhash_STRBYTES], pass[PASS_MAX];
    const char *file = NULL, *listener = NULL, *user = NULL;
    char *path;
    int rc;

    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--file") == 0 || strcmp(argv[i], "--listener") == 0) &&
            i + 1 < argc) {
            *(argv[i][2] == 'f' ? &file : &listener) = argv[i + 1];
            i++;
        } else if (user == NULL && argv[i][0] != '-')
            user = argv[i];
        else
            return usage();
    }
    if (user == NULL || (file == NULL) == (listener == NULL))
        return usage();
    if (!user_ok(user))
        return fprintf(stderr, "sluicectl: passwd: bad user name\n"), 1;
    path = file != NULL ? sl_strdup(file) : path_of_listener(cfgpath, listener);
    if (path == NULL)
        return 1;
    if (sodium_init() < 0)
        sl_msg_fatal("libsodium cannot initialise");
    if (!read_password(pass, sizeof pass)) {
        sodium_memzero(pass, sizeof pass);
        free(path);
        return 1;
    }
    if (crypto_pwhash_str(hash, pass, strlen(pass), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        sodium_memzero(pass, sizeof pass);
        free(path);
        return fprintf(stderr, "sluicectl: passwd: out of memory hashing\n"), 1;
    }
    sodium_memzero(pass, sizeof pass);
    rc = rewrite(path, user, hash);
    free(path);
    return rc;
}
