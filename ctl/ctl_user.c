/*
 * ctl_user.c - sluicectl started by root acts as the daemon's user.
 *
 * The spool, the delivery log and the counter segment belong to the config's
 * `user` once the daemon dropped to it (master/privileges.c), and that user may
 * have planted anything there: a symbolic link to a file of root's where a
 * subcommand writes or renames (corrupt/, a state's new file, the MTA-STS
 * cache), a FIFO where it reads.  Acting on them as root would lend that user
 * root's rights, so every subcommand but `passwd` and `config` (the listener's
 * credentials file and the TLS keys are the operator's own files, anywhere)
 * first becomes that user, as Postfix's postsuper becomes mail_owner.  With no
 * `user` in the file, one that does not exist, or root itself, nothing
 * changes: the daemon runs as root then, or does not start.
 * Global state: none; the process's identity is the result.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/sl_config.h"
#include "ctl/sl_ctl.h"

/* sl_ctl_become_user - root takes the identity of the config's user, every id and group */
int sl_ctl_become_user(const char *cfgpath)
{
    char user[256];
    const struct passwd *pw;

    if (geteuid() != 0)
        return 0;
    sl_ctl_global_peek(cfgpath, SL_OPT_USER, user, sizeof user);
    if (user[0] == '\0' || (pw = getpwnam(user)) == NULL || pw->pw_uid == 0)
        return 0;
    if (initgroups(user, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        fprintf(stderr, "sluicectl: cannot become user %s (the config's user): %s\n", user,
                strerror(errno));
        return -1;
    }
    return 0;
}
