/*
 * session.c - one ESMTP session (RFC 5321) from greeting to QUIT.
 *
 * Commands: EHLO, HELO, MAIL, RCPT, DATA, BDAT, RSET, NOOP, QUIT, VRFY (252),
 * STARTTLS (RFC 3207), AUTH PLAIN and LOGIN (RFC 4954, only under TLS).
 * Extensions announced: PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES,
 * SMTPUTF8, CHUNKING, DSN, and STARTTLS / AUTH where they apply.  Each command
 * is awaited under command_timeout; a timeout, too many errors or the
 * client's EOF ends the session.  A SIGTERM (the master stops or replaces
 * this process) ends it at the next command outside a transaction, with 421.
 * Relaying is the point of sluice, so every recipient is relayed: RCPT is
 * refused with 5.7.1 unless the client is in relay_networks or authenticated.
 * Concurrency: one session per process.
 * Trust boundary: every command is the client's; parameters are parsed
 * strictly and addresses checked as the spool checks them.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "util/sl_msg.h"
#include "smtpd_impl.h"

#define JUNK_MAX 100 /* NOOP, VRFY and RSET before each counts as an error (junk) */

/* smtpd_txn_reset - forget the transaction (RSET, a new EHLO, after the end of data) */
void smtpd_txn_reset(struct txn *t)
{
    free(t->sender);
    free(t->envid);
    for (size_t i = 0; i < t->nrcpt; i++) {
        free(t->rcpt[i].addr);
        free(t->rcpt[i].orcpt);
    }
    free(t->rcpt);
    for (size_t i = 0; i < t->ndomains; i++)
        free(t->domains[i]);
    free(t->domains);
    free(t->body);
    memset(t, 0, sizeof *t);
}

/* smtpd_timed_out - the client was silent past the step's timeout (where: the step): 421, and
 * the caller ends the session */
void smtpd_timed_out(struct session *s, const char *where)
{
    sl_msg_info("%s: timeout %s", s->peer_ip, where);
    io_reply(&s->io, "421 4.4.2 %s Error: timeout exceeded", s->hostname);
    smtpd_count(s, SL_LSTAT_TIMEOUTS, 1);
}

/* smtpd_error - count one error reply; false once the client had too many */
bool smtpd_error(struct session *s)
{
    if (++s->errors < s->l->max_errors)
        return true;
    io_reply(&s->io, "421 4.7.0 %s Too many errors, closing connection", s->hostname);
    smtpd_count(s, SL_LSTAT_ERROR_LIMIT, 1);
    return false;
}

/* junk - reply to a command that moves no mail (NOOP, VRFY, RSET); past JUNK_MAX of them since
 * the session's start or its last message, each is an error too, so that a client cannot
 * hold a listener process for ever with them (Postfix's smtpd_junk_command_limit) */
static bool junk(struct session *s, const char *reply)
{
    if (++s->junk > JUNK_MAX && !smtpd_error(s))
        return false; /* its 421 is the command's one reply */
    io_reply(&s->io, "%s", reply);
    return true;
}

/* ehlo - the greeting and the extensions this session offers */
static bool ehlo(struct session *s, const char *arg, bool extended)
{
    if (*arg == '\0') {
        io_reply(&s->io, "501 5.5.4 Syntax: %s hostname", extended ? "EHLO" : "HELO");
        return smtpd_error(s);
    }
    sl_spool_printable(arg, s->helo, sizeof s->helo);
    smtpd_txn_reset(&s->t);
    s->esmtp = extended;
    if (!extended) {
        io_reply(&s->io, "250 %s", s->hostname);
        return true;
    }
    io_reply(&s->io, "250-%s", s->hostname);
    io_reply(&s->io, "250-PIPELINING");
    io_reply(&s->io, "250-SIZE %" PRIu64, s->max_size);
    io_reply(&s->io, "250-8BITMIME");
    io_reply(&s->io, "250-ENHANCEDSTATUSCODES");
    io_reply(&s->io, "250-SMTPUTF8");
    io_reply(&s->io, "250-CHUNKING");
    if (s->tls != NULL && !s->tls_on)
        io_reply(&s->io, "250-STARTTLS");
    if (s->creds != NULL && s->tls_on && s->auth_user == NULL)
        io_reply(&s->io, "250-AUTH PLAIN LOGIN");
    io_reply(&s->io, "250 DSN");
    return true;
}

/* starttls - RFC 3207; what the client pipelined after STARTTLS is thrown away */
static bool starttls(struct session *s, const char *arg)
{
    if (s->tls == NULL || s->tls_on) {
        io_reply(&s->io, "502 5.5.1 STARTTLS not available");
        return smtpd_error(s);
    }
    if (*arg != '\0') {
        io_reply(&s->io, "501 5.5.4 Syntax: STARTTLS");
        return smtpd_error(s);
    }
    io_reply(&s->io, "220 2.0.0 Ready to start TLS");
    if (!io_flush(&s->io))
        return false;
    if (io_pending(&s->io) > 0) {
        sl_msg_info("%s: %zu bytes pipelined after STARTTLS discarded", s->peer_ip,
                    io_pending(&s->io));
        io_discard(&s->io); /* RFC 3207 4.2: the STARTTLS command injection */
    }
    if (!io_starttls(&s->io, s->tls, (long)s->l->tls_timeout_ms)) {
        sl_msg_info("%s: TLS handshake failed", s->peer_ip);
        return false;
    }
    s->tls_on = true;
    smtpd_count(s, SL_LSTAT_TLS, 1);
    s->esmtp = false;
    s->helo[0] = '\0'; /* RFC 3207 4.2: the client starts over with EHLO */
    smtpd_txn_reset(&s->t);
    return true;
}

/* need_helo - MAIL before EHLO/HELO is a sequence error */
static bool need_helo(struct session *s)
{
    if (s->helo[0] != '\0')
        return true;
    io_reply(&s->io, "503 5.5.1 Error: send HELO/EHLO first");
    return false;
}

/* dispatch - one command line; false ends the session */
static bool dispatch(struct session *s, char *line)
{
    const struct smtpd_cmd *c = smtpd_cmd_find(line);
    const char *arg = c != NULL ? line + strlen(c->name) : "";

    while (*arg == ' ')
        arg++;
    if (c == NULL) {
        io_reply(&s->io, "500 5.5.2 Error: command not recognized");
        return smtpd_error(s);
    }
    switch (c->id) {
    case CMD_EHLO:
        return ehlo(s, arg, true);
    case CMD_HELO:
        return ehlo(s, arg, false);
    case CMD_STARTTLS:
        return starttls(s, arg);
    case CMD_AUTH:
        return smtpd_auth(s, arg);
    case CMD_MAIL:
        return need_helo(s) ? smtpd_mail(s, arg) : smtpd_error(s);
    case CMD_RCPT:
        return smtpd_rcpt(s, arg);
    case CMD_DATA:
        if (*arg != '\0') {
            io_reply(&s->io, "501 5.5.4 Syntax: DATA");
            return smtpd_error(s);
        }
        smtpd_data(s);
        return !s->io.broken && s->errors < s->l->max_errors;
    case CMD_BDAT:
        smtpd_bdat(s, arg);
        return !s->io.broken && s->errors < s->l->max_errors;
    case CMD_RSET:
        smtpd_txn_reset(&s->t);
        return junk(s, "250 2.0.0 Ok");
    case CMD_NOOP:
        return junk(s, "250 2.0.0 Ok");
    case CMD_VRFY:
        return junk(s, "252 2.5.2 Cannot VRFY user, but will accept message");
    case CMD_QUIT:
        io_reply(&s->io, "221 2.0.0 Bye");
        return false;
    }
    return false;
}

/* forget_auth_line - an AUTH command line may hold a password (its initial response): no copy
 * of it stays in line or in the input buffer, whether it was served or refused */
static void forget_auth_line(struct session *s, char *line, size_t len)
{
    if (strncasecmp(line, "AUTH", 4) != 0)
        return;
    sodium_memzero(line, len);
    io_wipe_read(&s->io);
}

/* smtpd_session - greet, then one command after the other until the end */
void smtpd_session(struct session *s)
{
    char line[CMD_LINE_MAX + 2]; /* its CR, then the NUL */
    size_t len;

    io_reply(&s->io, "220 %s ESMTP sluice", s->hostname);
    for (;;) {
        enum io_result r;
        bool in_txn = s->t.mail || s->t.bdat;

        if (!in_txn && io_stopping()) {
            io_reply(&s->io, "421 4.3.2 %s Service shutting down, closing connection", s->hostname);
            break;
        }
        io_deadline((long)s->l->command_timeout_ms);
        r = io_line(&s->io, line, CMD_LINE_MAX + 1, &len, !in_txn);
        if (r == IO_OK && len > CMD_LINE_MAX)
            r = IO_TOO_LONG; /* a bare LF ended it: the CR's place held a character */
        if (r == IO_TOO_LONG) {
            sodium_memzero(line, sizeof line); /* what of it was kept is not a string: */
            io_wipe_read(&s->io);              /* wiped whatever it was, as an AUTH's would be */
            io_reply(&s->io, "500 5.5.2 Error: line too long");
            if (!smtpd_error(s))
                break;
            continue;
        }
        if (r == IO_STOP)
            continue; /* the 421 above */
        if (r == IO_TIMEOUT)
            smtpd_timed_out(s, "waiting for a command");
        if (r != IO_OK)
            break;
        if (memchr(line, '\0', len) != NULL) {
            sodium_memzero(line, len); /* an AUTH's, perhaps, whatever its first bytes */
            io_wipe_read(&s->io);
            io_reply(&s->io, "500 5.5.2 Error: NUL in command");
            if (!smtpd_error(s))
                break;
            continue;
        }
        bool go_on = dispatch(s, line);
        forget_auth_line(s, line, len);
        if (!go_on)
            break;
    }
    io_deadline(5000); /* the last replies may still wait for a slow client */
    io_flush(&s->io);
}
