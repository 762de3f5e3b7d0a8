/*
 * ctl_recent.h - what the delivery log says recently about one domain, per
 * address it was delivered to (ctl_recent.c; for sluicectl domain).
 */
#ifndef CTL_RECENT_H
#define CTL_RECENT_H

#include <stddef.h>
#include <stdint.h>

#define CTL_RECENT_WINDOW_S 3600 /* "recent": the last hour */

/* The log's word on one address (ip as the log writes it). */
struct ctl_recent {
    char ip[64];
    char mx[256];
    char binding[128];
    char outcome[16];           /* of the last line */
    char reply[512];            /* of the last line */
    char time[32];              /* of the last line, as logged (ISO 8601 UTC) */
    unsigned delivered, failed; /* recipients within the window: delivered; deferred or bounced */
};

/* The lines of the last few megabytes of the log at path for domain, grouped by address, into
 * a newly allocated array (*n entries; caller frees).  now: UNIX seconds.  A log that cannot be
 * read gives none. */
struct ctl_recent *ctl_recent_read(const char *path, const char *domain, int64_t now, size_t *n);

#endif
