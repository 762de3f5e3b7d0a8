/*
 * lockouts.c - `sluicectl lockouts` and `sluicectl unlock`: the listeners'
 * failed-AUTH table (listener/lockout.c), read a page at a time and changed
 * one address at a time by the master for the operator.
 *
 * Requests: "A list FROM" answers "OK NEXT" and a line per address counted
 * ("ADDRESS FAILURES AGE_MS WINDOW_MS"), as many as fit in one datagram, from
 * the table's index FROM; NEXT is where the next page starts, 0 when the table
 * is done.  "A forget ADDRESS" forgets that address's failures (an IPv6
 * address: its /64, as they are counted).  The table's lock is only tried:
 * held by a listener process, the answer is BUSY and sluicectl asks again.
 * Concurrency: master only, from the main loop.
 * Trust boundary: the request comes from a local client; ADDRESS is parsed
 * by sl_cidr_parse (a prefix only as "/64", of IPv6), FROM with strtoul, both
 * bounded.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/sl_listener.h"
#include "ipc/sl_control.h"
#include "master/sl_lockouts.h"

/* list - "A list FROM" */
static void list(struct sl_smtpd_lockout *t, const char *arg, char *ans, size_t len)
{
    char page[SL_CONTROL_MAX - 16], *end;
    unsigned long from = strtoul(arg, &end, 10);
    size_t next = from < SL_SMTPD_LOCKOUT_SLOTS ? (size_t)from : SL_SMTPD_LOCKOUT_SLOTS;

    if (end == arg || *end != '\0')
        snprintf(ans, len, "ERROR usage: A list FROM");
    else if (!sl_smtpd_lockout_page(t, &next, page, sizeof page))
        snprintf(ans, len, "BUSY the lockout table is in use: try again");
    else
        snprintf(ans, len, "OK %zu\n%s", next < SL_SMTPD_LOCKOUT_SLOTS ? next : 0, page);
}

/* peer_of - ADDRESS (IPv4, IPv6, or an IPv6 written with /64, the block a lockout counts) as
 * a peer address */
static bool peer_of(const char *text, struct sockaddr_storage *ss)
{
    const char *slash = strchr(text, '/');
    struct sl_cidr c;

    memset(ss, 0, sizeof *ss);
    if (!sl_cidr_parse(text, &c) ||
        (slash != NULL && (c.family != AF_INET6 || strcmp(slash, "/64") != 0)))
        return false;
    ss->ss_family = (sa_family_t)c.family;
    if (c.family == AF_INET)
        memcpy(&((struct sockaddr_in *)ss)->sin_addr, c.addr, 4);
    else
        memcpy(&((struct sockaddr_in6 *)ss)->sin6_addr, c.addr, 16);
    return true;
}

/* forget - "A forget ADDRESS" */
static void forget(struct sl_smtpd_lockout *t, const char *arg, char *ans, size_t len)
{
    struct sockaddr_storage ss;
    uint32_t had;

    if (!peer_of(arg, &ss)) {
        snprintf(ans, len, "ERROR not an IPv4 or IPv6 address: %.64s", arg);
        return;
    }
    switch (sl_smtpd_lockout_forget(t, &ss, &had)) {
    case SL_SMTPD_FORGOTTEN:
        snprintf(ans, len, "OK %s: %u failed AUTH forgotten", arg, had);
        break;
    case SL_SMTPD_NONE_COUNTED:
        snprintf(ans, len, "ERROR %s: no failed AUTH is counted", arg);
        break;
    case SL_SMTPD_TABLE_BUSY:
        snprintf(ans, len, "BUSY the lockout table is in use: try again");
        break;
    }
}

/* sl_lockouts_control - one "A ..." request of sluicectl, its answer into ans */
void sl_lockouts_control(struct sl_smtpd_lockout *t, const char *req, char *ans, size_t len)
{
    if (strncmp(req, "A list ", 7) == 0)
        list(t, req + 7, ans, len);
    else if (strncmp(req, "A forget ", 9) == 0)
        forget(t, req + 9, ans, len);
    else
        snprintf(ans, len, "ERROR unknown lockout request");
}
