/*
 * dsn_params.c - the RFC 3461 parameters a message carries on to the next hop.
 *
 * sluice offers DSN to the applications that submit to it, and keeps NOTIFY, ORCPT, ENVID
 * and RET with the message.  When the receiver offers DSN too, they go on with MAIL and
 * RCPT (RFC 3461 4.1), so that a success, delay or failure the receiver reports later
 * reaches the sender as asked; to a receiver that does not, nothing is sent (the smtp
 * library leaves them out).  ENVID and ORCPT are kept decoded and go out as xtext (RFC 3461
 * 4); one that would be longer than its limit there (100 and 500 characters) is left out
 * rather than sent too long.
 * Concurrency: pure functions.  Trust boundary: the values were checked when the message
 * was queued (printable ASCII); xtext escapes what a parameter may not hold.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/sl_msg.h"
#include "worker_impl.h"

#define ENVID_MAX 100 /* RFC 3461 4.4, encoded */
#define ORCPT_MAX 500 /* RFC 3461 4.2, encoded */

/* xtext - s as RFC 3461 xtext ("+HH" for '+', '=' and anything outside '!'..'~') into out
 * (max bytes with its NUL); false (out empty) when it does not fit */
static bool xtext(const char *s, char *out, size_t max)
{
    size_t o = 0;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = c >= '!' && c <= '~' && c != '+' && c != '=';
        if (o + (plain ? 1 : 3) >= max) {
            out[0] = '\0';
            return false;
        }
        if (plain)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, max - o, "+%02X", c);
    }
    out[o] = '\0';
    return true;
}

/* sl_dsn_mail_params - " RET=FULL|HDRS ENVID=xtext" of m, NULL when it has neither */
char *sl_dsn_mail_params(const struct sl_spool_msg *m)
{
    char envid[ENVID_MAX + 1] = "", out[ENVID_MAX + 32];
    bool has_envid = m->envid != NULL && xtext(m->envid, envid, sizeof envid);

    if (!m->ret_full && !m->ret_hdrs && !has_envid)
        return NULL;
    snprintf(out, sizeof out, "%s%s%s",
             m->ret_full   ? " RET=FULL"
             : m->ret_hdrs ? " RET=HDRS"
                           : "",
             has_envid ? " ENVID=" : "", has_envid ? envid : "");
    return sl_strdup(out);
}

/* notify_list - "NEVER", or SUCCESS, FAILURE and DELAY as asked, comma-separated */
static void notify_list(unsigned bits, char *out, size_t len)
{
    static const struct {
        unsigned bit;
        const char *word;
    } words[] = {
        {SL_NOTIFY_SUCCESS, "SUCCESS"}, {SL_NOTIFY_FAILURE, "FAILURE"}, {SL_NOTIFY_DELAY, "DELAY"}};

    out[0] = '\0';
    if (bits & SL_NOTIFY_NEVER) {
        snprintf(out, len, "NEVER");
        return;
    }
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (bits & words[i].bit)
            snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? "," : "",
                     words[i].word);
}

/* sl_dsn_rcpt_params - " NOTIFY=.. ORCPT=type;xtext" of r, NULL when it has neither */
char *sl_dsn_rcpt_params(const struct sl_spool_rcpt *r)
{
    char notify[32] = "", orcpt[ORCPT_MAX + 1] = "", out[ORCPT_MAX + 64];
    const char *semi = r->orcpt != NULL ? strchr(r->orcpt, ';') : NULL;
    size_t type = semi != NULL ? (size_t)(semi - r->orcpt) + 1 : 0;

    if (r->notify != 0)
        notify_list(r->notify, notify, sizeof notify);
    /* the address type ("rfc822;"), an atom, goes as it is, the address as xtext */
    if (semi != NULL && type > 1 && type < sizeof orcpt &&
        strspn(r->orcpt, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") ==
            type - 1) {
        memcpy(orcpt, r->orcpt, type);
        if (!xtext(semi + 1, orcpt + type, sizeof orcpt - type))
            orcpt[0] = '\0';
    }
    if (notify[0] == '\0' && orcpt[0] == '\0')
        return NULL;
    snprintf(out, sizeof out, "%s%s%s%s", notify[0] ? " NOTIFY=" : "", notify,
             orcpt[0] ? " ORCPT=" : "", orcpt);
    return sl_strdup(out);
}
