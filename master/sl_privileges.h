/*
 * sl_privileges.h - who sluiced runs as: started as root with `user = NAME`,
 * the master hands the segment and the spool to that user, then becomes it
 * (its primary group and its supplementary groups) before any worker forks.
 */
#ifndef SL_PRIVILEGES_H
#define SL_PRIVILEGES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct sl_privileges {
    bool drop; /* root now, and `user` names another account to become */
    uid_t uid;
    gid_t gid; /* the user's primary group: the segment's group */
    char user[64];
};

/* Decide at start, before anything is created.  Root without `user` (or with
 * user root): one warning, no drop.  Not root: nothing when `user` is unset or
 * names the current user; fatal (one line, exit 1) when it names another one,
 * or any user that does not exist. */
void sl_privileges_plan(const char *user, struct sl_privileges *p);
/* While still root: give the counter segment (owner, group, mode 0640) and the
 * spool tree (its directory, its subdirectories and their files) to the user;
 * fatal when that fails.  Nothing to do without a drop. */
void sl_privileges_hand_over(const struct sl_privileges *p, const char *shm_name,
                             const char *spool_dir, const char *delivery_log);
/* Can this process append to the delivery log (creating it)?  Run after the drop, so a log the
 * workers could not write stops the start with one clear line (err) rather than a warning per
 * worker. */
bool sl_privileges_check_log(const char *path, char *err, size_t errlen);
/* Become the user for good: supplementary groups, gid, uid; fatal when any
 * step fails or root could be regained.  Nothing to do without a drop. */
void sl_privileges_drop(const struct sl_privileges *p);

#endif
