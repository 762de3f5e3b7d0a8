/*
 * ctl_user.c - sluicectl started by root acts as the daemon's user.
 *
 * The spool, the delivery log and the counter segment belong to the daemon's
 * user (the config's `user`, to which sluiced drops, or the unit's User= under
 * systemd), and that user may have planted anything there: a symbolic link to a
 * file of root's where a subcommand writes or renames (corrupt/, a state's new
 * file, the MTA-STS cache), a FIFO where it reads.  Acting on them as root would
 * lend that user root's rights, so every subcommand but `passwd` and `config`
 * (the listener's credentials file and the TLS keys are the operator's own
 * files, anywhere) first becomes that user, as Postfix's postsuper becomes
 * mail_owner: the config's `user` when it is set (one that does not exist is an
 * error, as it is for the daemon), else the owner of spool_dir when that is not
 * root.  A spool of root's, or none yet, leaves root as it is.
 * Global state: none; the process's identity is the result.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "config/sl_config.h"
#include "ctl/sl_ctl.h"

/* become - uid and gid, with name's groups (or gid alone for a uid with no name) */
static int become(const char *name, uid_t uid, gid_t gid)
{
    int rc = name != NULL ? initgroups(name, gid) : setgroups(1, &gid);

    if (rc < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        fprintf(stderr, "sluicectl: cannot become the daemon's user (uid %ld): %s\n", (long)uid,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* spool_owner - the owner of the config's spool_dir (or its default), when it is not root */
static bool spool_owner(const char *cfgpath, uid_t *uid, gid_t *gid)
{
    const struct sl_optdef *def = sl_opt_def(SL_OPT_SPOOL_DIR);
    char spool[4096];
    struct stat st;

    sl_ctl_global_peek(cfgpath, SL_OPT_SPOOL_DIR, spool, sizeof spool);
    if (spool[0] == '\0' && def->def != NULL)
        strlcpy(spool, def->def, sizeof spool);
    if (spool[0] == '\0' || stat(spool, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid == 0)
        return false;
    *uid = st.st_uid;
    *gid = st.st_gid;
    return true;
}

/* sl_ctl_become_user - root takes the identity of the daemon's user, every id and group */
int sl_ctl_become_user(const char *cfgpath)
{
    char user[256], name[256];
    const struct passwd *pw;
    uid_t uid;
    gid_t gid;

    if (geteuid() != 0)
        return 0;
    sl_ctl_global_peek(cfgpath, SL_OPT_USER, user, sizeof user);
    if (user[0] != '\0') {
        errno = 0;
        if ((pw = getpwnam(user)) == NULL) {
            fprintf(stderr, "sluicectl: user = %s: %s\n", user,
                    errno != 0 ? strerror(errno) : "no such user");
            return -1;
        }
        if (pw->pw_uid == 0)
            return 0;
        uid = pw->pw_uid; /* copied: initgroups may reuse getpwnam's storage */
        gid = pw->pw_gid;
        return become(user, uid, gid);
    }
    if (!spool_owner(cfgpath, &uid, &gid))
        return 0;
    if ((pw = getpwuid(uid)) == NULL)
        return become(NULL, uid, gid);
    strlcpy(name, pw->pw_name, sizeof name);
    return become(name, uid, gid);
}
