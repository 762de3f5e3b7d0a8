/*
 * envelope.c - the command table, and MAIL and RCPT with their parameters.
 *
 * MAIL FROM:<path> takes SIZE (RFC 1870: refused at once above
 * max_message_size), BODY=7BIT|8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
 * RET and ENVID (RFC 3461) and AUTH=<> (ignored); RCPT TO:<path> takes
 * NOTIFY and ORCPT (RFC 3461).  Anything else is 555.  Addresses are checked
 * as the spool checks them, so what is accepted here can be queued: UTF-8 in
 * an address only after SMTPUTF8 on MAIL (RFC 6531), else 553 5.6.7.
 * Relay control is at RCPT: a client outside relay_networks that has not
 * authenticated gets 5.7.1 for every recipient.
 * Concurrency: one session per process.
 * Trust boundary: the arguments are the client's; xtext is decoded with
 * bounds and the decoded text must be printable.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "util/sl_idna.h"
#include "util/sl_msg.h"
#include "smtpd_impl.h"

#define XTEXT_MAX 500 /* RFC 3461: ORCPT's value, as xtext */
#define ENVID_MAX 100 /* RFC 3461 4.4: ENVID's, as xtext */

static const struct smtpd_cmd cmds[] = {
    {"EHLO", CMD_EHLO}, {"HELO", CMD_HELO},       {"STARTTLS", CMD_STARTTLS},
    {"AUTH", CMD_AUTH}, {"MAIL FROM:", CMD_MAIL}, {"RCPT TO:", CMD_RCPT},
    {"DATA", CMD_DATA}, {"BDAT", CMD_BDAT},       {"RSET", CMD_RSET},
    {"NOOP", CMD_NOOP}, {"VRFY", CMD_VRFY},       {"QUIT", CMD_QUIT},
};

/* smtpd_cmd_find - the command a line starts with (a word ends at a blank or the end) */
const struct smtpd_cmd *smtpd_cmd_find(const char *line)
{
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        size_t n = strlen(cmds[i].name);
        if (strncasecmp(line, cmds[i].name, n) == 0 &&
            (cmds[i].name[n - 1] == ':' || line[n] == '\0' || line[n] == ' '))
            return &cmds[i];
    }
    return NULL;
}

/* xtext_decode - RFC 3461 xtext ("+HH" escapes) into a new string, or NULL when malformed */
static char *xtext_decode(const char *s, size_t n)
{
    char *out = sl_malloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned v;
        if (c == '+') {
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]) || sscanf(s + i + 1, "%2x", &v) != 1)
                goto bad;
            c = (unsigned char)v;
            i += 2;
        } else if (c < 33 || c > 126 || c == '=')
            goto bad;
        if (c < 32 || c >= 127)
            goto bad; /* decoded text goes into the spool and a report: printable ASCII only */
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

/* take_path - "<addr>" at *p (a space after the colon is tolerated); the address, or NULL */
static char *take_path(const char **p)
{
    const char *s = *p, *close;

    while (*s == ' ')
        s++;
    if (*s != '<' || (close = strchr(s, '>')) == NULL || close - s - 1 > SL_ADDR_MAX)
        return NULL;
    *p = close + 1;
    return sl_strndup(s + 1, (size_t)(close - s - 1));
}

/* The parameters a MAIL or RCPT gave so far: each may be given once (RFC 5321 4.1.2). */
struct seen {
    char key[8][32];
    size_t n;
};

/* first_time - key was not given yet in this command (no case); noted */
static bool first_time(struct seen *sn, const char *key)
{
    for (size_t i = 0; i < sn->n; i++)
        if (strcasecmp(sn->key[i], key) == 0)
            return false;
    if (sn->n < sizeof sn->key / sizeof sn->key[0])
        strlcpy(sn->key[sn->n++], key, sizeof sn->key[0]);
    return true;
}

/* next_param - the next "KEY[=VALUE]" word of the arguments, or false at the end */
static bool next_param(const char **p, char *key, size_t keylen, const char **val, size_t *vlen)
{
    const char *s = *p, *end, *eq;
    size_t n;

    while (*s == ' ')
        s++;
    if (*s == '\0')
        return false;
    end = s + strcspn(s, " ");
    eq = memchr(s, '=', (size_t)(end - s));
    n = (size_t)((eq != NULL ? eq : end) - s);
    if (n >= keylen)
        n = keylen - 1;
    memcpy(key, s, n);
    key[n] = '\0';
    *val = eq != NULL ? eq + 1 : NULL;
    *vlen = eq != NULL ? (size_t)(end - eq - 1) : 0;
    *p = end;
    return true;
}

/* is - a parameter value equals word (no case) */
static bool is(const char *v, size_t n, const char *word)
{
    return v != NULL && n == strlen(word) && strncasecmp(v, word, n) == 0;
}

/* mail_param - one MAIL parameter into the transaction; the reply when refused, else NULL */
static const char *mail_param(struct session *s, const char *key, const char *v, size_t n)
{
    struct txn *t = &s->t;
    char num[24];

    if (strcasecmp(key, "SIZE") == 0) {
        char *end;
        if (v == NULL || n == 0 || n >= sizeof num)
            return "501 5.5.4 Bad SIZE parameter";
        memcpy(num, v, n);
        num[n] = '\0';
        t->size_hint = strtoull(num, &end, 10);
        if (*end != '\0' || !isdigit((unsigned char)num[0]))
            return "501 5.5.4 Bad SIZE parameter";
        if (t->size_hint > s->max_size) {
            sl_msg_info("%s: refused: SIZE=%llu over max_message_size (%llu bytes)", s->peer_ip,
                        (unsigned long long)t->size_hint, (unsigned long long)s->max_size);
            smtpd_count(s, SL_LSTAT_REJ_SIZE, 1);
            return "552 5.3.4 Message size exceeds fixed limit";
        }
    } else if (strcasecmp(key, "BODY") == 0) {
        if (!is(v, n, "7BIT") && !is(v, n, "8BITMIME"))
            return "501 5.5.4 Unsupported BODY parameter";
        t->body_8bit = is(v, n, "8BITMIME");
    } else if (strcasecmp(key, "SMTPUTF8") == 0 && v == NULL) {
        t->smtputf8 = true;
    } else if (strcasecmp(key, "RET") == 0) {
        if (t->ret_set || (!is(v, n, "FULL") && !is(v, n, "HDRS")))
            return "501 5.5.4 Bad RET parameter";
        t->ret_set = true;
        t->ret_hdrs = is(v, n, "HDRS");
    } else if (strcasecmp(key, "ENVID") == 0) {
        /* RFC 3461 4.4: at most 100 characters as xtext (as it is passed on, too) */
        if (t->envid != NULL || v == NULL || n == 0 || n > ENVID_MAX ||
            (t->envid = xtext_decode(v, n)) == NULL)
            return "501 5.5.4 Bad ENVID parameter";
    } else if (strcasecmp(key, "AUTH") == 0 && v != NULL) {
        /* RFC 4954 5: the original submitter; we keep our own record of who authenticated */
    } else
        return "555 5.5.4 Unsupported option";
    return NULL;
}

/* ascii - an address of ASCII bytes only: a UTF-8 address needs SMTPUTF8 on MAIL, and without
 * it gets RFC 6531's 553 5.6.7 rather than a vague syntax error */
static bool ascii(const char *a)
{
    return sl_idna_ascii(a, strlen(a));
}

/* address_ok - the spool's check of an address: UTF-8 (RFC 6531) under SMTPUTF8 only */
static bool address_ok(const struct txn *t, const char *a, bool empty, char *err, size_t len)
{
    if (t->smtputf8)
        return sl_spool_valid_address_utf8(a, empty, err, len);
    return sl_spool_valid_address(a, empty, err, len);
}

/* refuse - one error reply; false when the session has had too many */
static bool refuse(struct session *s, const char *reply)
{
    io_reply(&s->io, "%s", reply);
    return smtpd_error(s);
}

/* smtpd_mail - MAIL FROM:<path> [params] */
bool smtpd_mail(struct session *s, const char *arg)
{
    struct txn *t = &s->t;
    const char *p = arg + 0, *v, *why;
    char key[32], err[128];
    struct seen sn = {0};
    size_t n;

    if (t->mail || t->bdat)
        return refuse(s, "503 5.5.1 Error: nested MAIL command");
    if ((t->sender = take_path(&p)) == NULL) {
        smtpd_txn_reset(t);
        return refuse(s, "501 5.1.7 Syntax: MAIL FROM:<address>");
    }
    while (next_param(&p, key, sizeof key, &v, &n))
        if ((why = !first_time(&sn, key) ? "501 5.5.4 Error: a parameter given twice"
                                         : mail_param(s, key, v, n)) != NULL) {
            smtpd_txn_reset(t);
            return refuse(s, why);
        }
    if (!t->smtputf8 && !ascii(t->sender)) { /* the parameters first: SMTPUTF8 allows it */
        smtpd_txn_reset(t);
        return refuse(s, "553 5.6.7 Error: a UTF-8 address needs the SMTPUTF8 parameter");
    }
    if (!address_ok(t, t->sender, true, err, sizeof err)) {
        smtpd_txn_reset(t);
        io_reply(&s->io, "553 5.1.7 Bad sender address: %s", err);
        return smtpd_error(s);
    }
    t->mail = true;
    io_reply(&s->io, "250 2.1.0 Ok");
    return true;
}

/* notify_param - NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY; 0 when malformed */
static unsigned notify_param(const char *v, size_t n)
{
    unsigned bits = 0;
    size_t i = 0;

    while (v != NULL && i < n) {
        size_t w = 0;
        unsigned bit;
        while (i + w < n && v[i + w] != ',')
            w++;
        if (is(v + i, w, "NEVER"))
            bit = SL_NOTIFY_NEVER;
        else if (is(v + i, w, "SUCCESS"))
            bit = SL_NOTIFY_SUCCESS;
        else if (is(v + i, w, "FAILURE"))
            bit = SL_NOTIFY_FAILURE;
        else if (is(v + i, w, "DELAY"))
            bit = SL_NOTIFY_DELAY;
        else
            return 0; /* an unknown word, or an empty one */
        if (bits & bit)
            return 0; /* a word twice */
        bits |= bit;
        i += w + 1;
        if (i == n && v[n - 1] == ',')
            return 0; /* a list ending in a comma */
    }
    if ((bits & SL_NOTIFY_NEVER) && bits != SL_NOTIFY_NEVER)
        return 0; /* RFC 3461 4.1: NEVER stands alone */
    return bits;
}

/* domain_room - addr's domain is one the transaction has, or there is room for one more (the
 * spool keeps at most SL_SPOOL_PARTS_MAX per message); a new one is added */
static bool domain_room(struct txn *t, const char *addr)
{
    char domain[SL_DOMAIN_MAX + 1];

    sl_spool_address_domain(addr, domain, sizeof domain);
    for (size_t i = 0; i < t->ndomains; i++)
        if (strcmp(t->domains[i], domain) == 0)
            return true;
    if (t->ndomains == SL_SPOOL_PARTS_MAX)
        return false;
    t->domains = sl_realloc(t->domains, (t->ndomains + 1) * sizeof *t->domains);
    t->domains[t->ndomains++] = sl_strdup(domain);
    return true;
}

/* orcpt_decode - RFC 3461 4.2 "addr-type;xtext": the type an atom (rfc822, utf-8), kept as it
 * is, the address decoded; NULL when malformed (a type with a space or a '+' would carry
 * other parameters along when the value is passed on) */
static char *orcpt_decode(const char *v, size_t n)
{
    const char *semi = v != NULL ? memchr(v, ';', n) : NULL;
    size_t type = semi != NULL ? (size_t)(semi - v) : 0;
    char *addr, *out;

    if (semi == NULL || type == 0 || n > XTEXT_MAX ||
        strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") < type ||
        (addr = xtext_decode(semi + 1, n - type - 1)) == NULL)
        return NULL;
    if (addr[0] == '\0') { /* no address: nothing a report could name */
        free(addr);
        return NULL;
    }
    size_t len = type + 1 + strlen(addr) + 1;
    out = sl_malloc(len);
    snprintf(out, len, "%.*s%s", (int)(type + 1), v, addr);
    free(addr);
    return out;
}

/* rcpt_param - one RCPT parameter into r; the reply when refused, else NULL */
static const char *rcpt_param(struct rcpt *r, const char *key, const char *v, size_t n)
{
    if (strcasecmp(key, "NOTIFY") == 0) {
        if (r->notify != 0 || (r->notify = notify_param(v, n)) == 0)
            return "501 5.5.4 Bad NOTIFY parameter";
    } else if (strcasecmp(key, "ORCPT") == 0) {
        if (r->orcpt != NULL || (r->orcpt = orcpt_decode(v, n)) == NULL)
            return "501 5.5.4 Bad ORCPT parameter";
    } else
        return "555 5.5.4 Unsupported option";
    return NULL;
}

/* smtpd_rcpt - RCPT TO:<path> [params], relay control first */
bool smtpd_rcpt(struct session *s, const char *arg)
{
    struct txn *t = &s->t;
    struct rcpt r = {0};
    const char *p = arg, *v, *why;
    char key[32], err[128], shown[SL_ADDR_MAX * 4 + 1];
    struct seen sn = {0};
    size_t n;

    if (!t->mail)
        return refuse(s, "503 5.5.1 Error: need MAIL command");
    if (t->bdat) /* RFC 3030 2: the recipients are set once the chunks began */
        return refuse(s, "503 5.5.1 Error: RCPT after BDAT");
    if (t->nrcpt >= s->l->max_recipients) {
        io_reply(&s->io, "452 4.5.3 Error: too many recipients");
        smtpd_count(s, SL_LSTAT_REJ_RECIPIENTS, 1);
        return true; /* RFC 5321 4.5.3.1.10: not an error of the client's */
    }
    if ((r.addr = take_path(&p)) == NULL || r.addr[0] == '\0') {
        free(r.addr);
        return refuse(s, "501 5.1.3 Syntax: RCPT TO:<address>");
    }
    sl_spool_printable(r.addr, shown, sizeof shown);
    if (!s->relay_ok && s->auth_user == NULL) {
        sl_msg_info("%s: relay refused for <%s>", s->peer_ip, shown);
        io_reply(&s->io, "554 5.7.1 <%s>: Relay access denied", shown);
        smtpd_count(s, SL_LSTAT_REJ_RELAY, 1);
        free(r.addr);
        return smtpd_error(s);
    }
    if (!t->smtputf8 && !ascii(r.addr)) {
        io_reply(&s->io, "553 5.6.7 <%s>: a UTF-8 address needs SMTPUTF8 on MAIL", shown);
        free(r.addr);
        return smtpd_error(s);
    }
    if (!address_ok(t, r.addr, false, err, sizeof err)) {
        io_reply(&s->io, "553 5.1.3 <%s>: Bad recipient address: %s", shown, err);
        free(r.addr);
        return smtpd_error(s);
    }
    while (next_param(&p, key, sizeof key, &v, &n))
        if ((why = !first_time(&sn, key) ? "501 5.5.4 Error: a parameter given twice"
                                         : rcpt_param(&r, key, v, n)) != NULL) {
            free(r.addr);
            free(r.orcpt);
            return refuse(s, why);
        }
    if (!domain_room(t, r.addr)) { /* RFC 5321 4.5.3.1.10: the client sends the rest later */
        io_reply(&s->io, "452 4.5.3 Error: too many recipient domains in one message (%d)",
                 SL_SPOOL_PARTS_MAX);
        smtpd_count(s, SL_LSTAT_REJ_RECIPIENTS, 1);
        free(r.addr);
        free(r.orcpt);
        return true;
    }
    t->rcpt = sl_realloc(t->rcpt, (t->nrcpt + 1) * sizeof *t->rcpt);
    t->rcpt[t->nrcpt++] = r;
    io_reply(&s->io, "250 2.1.5 Ok");
    return true;
}
