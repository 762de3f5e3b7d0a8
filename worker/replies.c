/*
 * replies.c - a failure reply goes to the master for the [shaping] rules.
 *
 * Every deferral and bounce a worker logs is also told to the master as
 * "T <binding> <domain> <mx or -> <R|L> <reply>" (sl_worker.h), when the
 * config has rules at all.  R is a reply the receiver sent; L one sluice made
 * up itself (a timeout, a refused connection, a DNS failure, its own limits, a
 * message the peer's SIZE or missing SMTPUTF8 rules out), which a rule matches
 * only with match_local = yes.  A reply is the peer's when it starts with a
 * reply code, the attempt failed in a session phase, and sluice did not decide
 * it itself (the attempt's local flag).
 * Concurrency: one worker, its own socket to the master.
 * Trust boundary: the reply text comes from a receiver: it is cut to one
 * bounded line without control characters before it leaves.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "config/sl_rules.h"
#include "util/sl_msg.h"
#include "worker_impl.h"

#define REPLY_MAX 400 /* bytes of reply text told */

/* sl_reply_local - a reply sluice wrote itself rather than the receiver */
bool sl_reply_local(const char *reply, const struct sl_attempt *a)
{
    static const char *const local_phases[] = {"limits", "dns", "expiry"};
    const unsigned char *r = (const unsigned char *)reply;

    if (a->local)
        return true;
    for (size_t i = 0; a->phase != NULL && i < sizeof local_phases / sizeof local_phases[0]; i++)
        if (strcmp(a->phase, local_phases[i]) == 0)
            return true;
    return !(isdigit(r[0]) && isdigit(r[1]) && isdigit(r[2]) &&
             (r[3] == ' ' || r[3] == '-' || r[3] == '\0'));
}

/* sl_worker_tell_reply - a failure reply of attempt a, for the master's rules */
void sl_worker_tell_reply(struct sl_wstate *w, const struct sl_attempt *a, const char *reply)
{
    char msg[REPLY_MAX + 700];
    int n;
    size_t len;

    if (w->ctx->cfg->nrules == 0 || reply == NULL || a->d == NULL)
        return;
    n = snprintf(msg, sizeof msg, "%c %s %s %s %c ", SL_WMSG_REPLY, a->d->binding, a->d->domain,
                 a->mx != NULL && a->mx[0] != '\0' ? a->mx : "-",
                 sl_reply_local(reply, a) ? 'L' : 'R');
    if (n < 0 || (size_t)n >= sizeof msg - REPLY_MAX - 1)
        return;
    len = (size_t)n;
    for (size_t i = 0; reply[i] != '\0' && i < REPLY_MAX; i++)
        msg[len++] = iscntrl((unsigned char)reply[i]) ? ' ' : reply[i];
    if (send(w->fd, msg, len, MSG_NOSIGNAL) < 0)
        sl_msg_debug("master gone: %m");
}
