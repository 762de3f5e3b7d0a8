/*
 * auth.c - SMTP AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN, only under TLS,
 * against the listener's auth_file.
 *
 * auth_file holds "user:hash" lines, the hash in libsodium's crypto_pwhash_str
 * form (Argon2id; `sluicectl passwd` writes them), '#' comments and blank
 * lines.  The master reads it before it drops privileges (and again at each
 * reload, whose new processes get the new list); the processes inherit it.  A client that
 * authenticated may relay from anywhere; a failure is 535 and counts as an error of the session.
 * A client that answers a challenge with "*" cancelled: 501 (RFC 4954 4); an answer that is
 * not base64 gets 501 5.5.2, one over the line limit 500 5.5.6 (6), each an error too; one
 * silent at a challenge past command_timeout gets 421 and the session ends.  A client address
 * with max_auth_failures failed checks within auth_failure_window gets 454 in place of each
 * password check until the window is over (lockout.c), an error too: the credentials are read,
 * then refused unchecked.  Only a password check is counted (once the credentials are all in,
 * in the check's own locked step), and given back when it succeeds; a PLAIN response that is
 * malformed or names another authorization identity gets 535 with no check, so it counts
 * nothing.  Clients in relay_networks are not counted.
 * Concurrency: one session per process.
 * Trust boundary: the client's base64 is decoded with bounds; the password
 * never reaches a log.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "util/sl_msg.h"
#include "smtpd_impl.h"

#define AUTH_LINE_MAX 1024

struct creds {
    size_t n;
    char **user, **hash;
};

/* smtpd_creds_load - the credentials in memory; NULL with err when the file cannot be read */
struct creds *smtpd_creds_load(const char *path, char *err, size_t errlen)
{
    struct creds *c;
    char line[AUTH_LINE_MAX];
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        snprintf(err, errlen, "auth_file %s: %s", path, strerror(errno));
        return NULL;
    }
    c = sl_calloc(1, sizeof *c);
    while (fgets(line, sizeof line, f) != NULL) {
        char *colon;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#' || (colon = strchr(line, ':')) == NULL)
            continue;
        *colon = '\0';
        c->user = sl_realloc(c->user, (c->n + 1) * sizeof *c->user);
        c->hash = sl_realloc(c->hash, (c->n + 1) * sizeof *c->hash);
        c->user[c->n] = sl_strdup(line);
        c->hash[c->n++] = sl_strdup(colon + 1);
    }
    fclose(f);
    return c;
}

/* smtpd_creds_check - the user exists and the password matches its hash.  An unknown user's
 * password is checked too, against the file's first hash, and the answer thrown away: Argon2
 * takes tens of milliseconds, and a refusal that came at once would tell a client which user
 * names exist. */
bool smtpd_creds_check(const struct creds *c, const char *user, const char *pass, size_t passlen)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->user[i], user) == 0)
            return crypto_pwhash_str_verify(c->hash[i], pass, passlen) == 0;
    if (c->n > 0 && crypto_pwhash_str_verify(c->hash[0], pass, passlen) == 0)
        return false; /* the first user's password under a name that is no user's */
    return false;
}

/* smtpd_creds_free - forget the credentials */
void smtpd_creds_free(struct creds *c)
{
    for (size_t i = 0; c != NULL && i < c->n; i++) {
        free(c->user[i]);
        sodium_memzero(c->hash[i], strlen(c->hash[i]));
        free(c->hash[i]);
    }
    if (c != NULL) {
        free(c->user);
        free(c->hash);
        free(c);
    }
}

/* decode - the client's base64 answer into out (NUL-terminated); the length, or -1 (s->auth_stop
 * says why: not base64, or more than out holds) */
static long decode(struct session *s, const char *b64, char *out, size_t len)
{
    size_t n, chars = strlen(b64);

    if (chars / 4 * 3 > len + 1) { /* 4 characters make 3 octets, less 2 at most of padding */
        s->auth_stop = AUTH_TOO_LONG;
        return -1;
    }
    if (sodium_base642bin((unsigned char *)out, len - 1, b64, chars, NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        s->auth_stop = AUTH_UNDECODABLE;
        return -1;
    }
    out[n] = '\0';
    return (long)n;
}

/* challenge - a 334 with the given base64 text, and the client's answer line; false when
 * there is none (s->auth_stop says whether it fell silent or cancelled with "*") */
static bool challenge(struct session *s, const char *b64, char *line, size_t len)
{
    enum io_result r;
    size_t n;

    io_reply(&s->io, "334 %s", b64);
    io_deadline((long)s->l->command_timeout_ms);
    if ((r = io_line(&s->io, line, len - 1, &n, false)) != IO_OK) {
        s->auth_stop = r == IO_TIMEOUT ? AUTH_SILENT : r == IO_TOO_LONG ? AUTH_TOO_LONG : AUTH_GONE;
        return false;
    }
    if (strcmp(line, "*") == 0) {
        s->auth_stop = AUTH_CANCELLED;
        return false;
    }
    return true;
}

/* window_ms - the listener's auth_failure_window */
static uint64_t window_ms(const struct session *s)
{
    return (uint64_t)s->l->auth_failure_window_ms;
}

/* admitted - may the peer have its password checked now (the attempt counted in a)?  Not
 * when its address is locked out: s->auth_stop says so, the first refusal of a window logged */
static bool admitted(struct session *s, struct smtpd_attempt *a)
{
    a->slot = -1;
    if (s->relay_ok) /* relay_networks are trusted: one app's bad password locks out no other */
        return true;
    switch (smtpd_lockout_try(s->ctx->lockout, &s->peer, s->l->max_auth_failures, window_ms(s),
                              (unsigned)s->ctx->listener, a)) {
    case SMTPD_LOCKOUT_OPEN:
        return true;
    case SMTPD_LOCKOUT_REFUSED_FIRST:
        sl_msg_info("%s: AUTH refused: %u failed from this address within auth_failure_window "
                    "(max_auth_failures %u)",
                    s->peer_ip, a->failures, s->l->max_auth_failures);
        break;
    case SMTPD_LOCKOUT_REFUSED:
        break;
    }
    s->auth_stop = AUTH_LOCKED;
    return false;
}

/* verified - user's password checked, unless the address is locked out; the check and the
 * count are one step of the lockout table, taken only once the credentials are all in (a
 * session left waiting at a prompt holds no count), and a success gives its count back */
static bool verified(struct session *s, const char *user, const char *pass, size_t passlen)
{
    struct smtpd_attempt a;

    if (!admitted(s, &a))
        return false;
    if (!smtpd_creds_check(s->creds, user, pass, passlen))
        return false; /* wrong credentials: the attempt stays counted */
    smtpd_lockout_undo(s->ctx->lockout, &s->peer, window_ms(s), &a);
    return true;
}

/* plain_check - a decoded PLAIN message, [authzid] NUL authcid NUL passwd: the user into
 * user, and whether the password is its own */
static bool plain_check(struct session *s, const char *buf, long n, char *user, size_t ulen)
{
    const char *authz = buf, *authc = memchr(buf, '\0', (size_t)n), *pass;

    if (authc == NULL || (pass = memchr(authc + 1, '\0', (size_t)(buf + n - authc - 1))) == NULL)
        return false;
    authc++, pass++;
    snprintf(user, ulen, "%s", authc);
    if (*authz != '\0' && strcmp(authz, authc) != 0)
        return false; /* acting for someone else is not offered */
    return verified(s, authc, pass, (size_t)(buf + n - pass));
}

/* plain - RFC 4616, the message as the initial response (given) or after an empty challenge;
 * what held the password is wiped on every way out */
static bool plain(struct session *s, const char *initial, bool given, char *user, size_t ulen)
{
    char line[AUTH_LINE_MAX], buf[AUTH_LINE_MAX];
    bool ok = false;
    long n;

    if ((given || challenge(s, "", line, sizeof line)) &&
        (n = decode(s, given ? initial : line, buf, sizeof buf)) >= 0)
        ok = plain_check(s, buf, n, user, ulen);
    sodium_memzero(line, sizeof line);
    sodium_memzero(buf, sizeof buf);
    return ok;
}

/* login - the LOGIN mechanism: user and password each in base64 after a prompt (the user may
 * come as the initial response); what held the password is wiped on every way out */
static bool login(struct session *s, const char *initial, bool given, char *user, size_t ulen)
{
    char line[AUTH_LINE_MAX], pass[AUTH_LINE_MAX];
    bool ok = false;
    long n;

    if ((given || challenge(s, "VXNlcm5hbWU6", line, sizeof line)) && /* Username: */
        decode(s, given ? initial : line, user, ulen) >= 0 &&
        challenge(s, "UGFzc3dvcmQ6", line, sizeof line) && /* Password: */
        (n = decode(s, line, pass, sizeof pass)) >= 0)
        ok = verified(s, user, pass, (size_t)n);
    sodium_memzero(line, sizeof line);
    sodium_memzero(pass, sizeof pass);
    return ok;
}

/* refused - the exchange ended without a login: the reply its end calls for (RFC 4954 4 and
 * 6); only wrong credentials are a failed AUTH.  false: the session ends */
static bool refused(struct session *s, const char *user)
{
    char shown[300];

    switch (s->auth_stop) {
    case AUTH_LOCKED:
        io_reply(&s->io, "454 4.7.0 Too many failed authentications from your address; try "
                         "again later");
        smtpd_count(s, SL_LSTAT_AUTH_LOCKED, 1);
        return smtpd_error(s);
    case AUTH_SILENT:
        smtpd_timed_out(s, "waiting for an AUTH answer");
        return false;
    case AUTH_GONE:
        return false; /* nobody to answer */
    case AUTH_CANCELLED:
        io_reply(&s->io, "501 5.7.0 Authentication cancelled");
        return smtpd_error(s);
    case AUTH_UNDECODABLE:
        io_reply(&s->io, "501 5.5.2 Cannot decode the response");
        return smtpd_error(s);
    case AUTH_TOO_LONG:
        io_reply(&s->io, "500 5.5.6 Authentication exchange line is too long");
        return smtpd_error(s);
    case AUTH_ANSWERED:
        break;
    }
    sl_spool_printable(user, shown, sizeof shown);
    sl_msg_info("%s: authentication failed for \"%s\"", s->peer_ip, shown);
    io_reply(&s->io, "535 5.7.8 Error: authentication failed");
    smtpd_count(s, SL_LSTAT_AUTH_FAILED, 1);
    return smtpd_error(s); /* a failed check stays counted (verified) */
}

/* auth - AUTH MECHANISM [initial-response] */
static bool auth(struct session *s, const char *arg)
{
    char mech[16], user[256] = "", shown[300];
    const char *initial = arg + strcspn(arg, " ");
    size_t mlen = strcspn(arg, " ");
    bool ok, given;

    if (s->creds == NULL || !s->tls_on) {
        io_reply(&s->io, s->creds == NULL ? "502 5.5.1 Error: authentication not enabled"
                                          : "530 5.7.0 Must issue a STARTTLS command first");
        return smtpd_error(s);
    }
    if (s->auth_user != NULL || s->t.mail) {
        io_reply(&s->io, "503 5.5.1 Error: %s",
                 s->t.mail ? "MAIL transaction in progress" : "already authenticated");
        return smtpd_error(s);
    }
    snprintf(mech, sizeof mech, "%.*s", (int)(mlen < sizeof mech ? mlen : sizeof mech - 1), arg);
    s->auth_stop = AUTH_ANSWERED;
    while (*initial == ' ')
        initial++;
    given = *initial != '\0';
    if (strcmp(initial, "=") == 0)
        initial = "";      /* RFC 4954 4: an initial response, empty */
    if (mech[0] == '\0') { /* RFC 4954 4: the mechanism is not optional */
        io_reply(&s->io, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
        return smtpd_error(s);
    }
    if (strcasecmp(mech, "PLAIN") != 0 && strcasecmp(mech, "LOGIN") != 0) {
        io_reply(&s->io, "504 5.5.4 Unrecognized authentication type");
        return smtpd_error(s);
    }
    if (strcasecmp(mech, "PLAIN") == 0)
        ok = plain(s, initial, given, user, sizeof user);
    else
        ok = login(s, initial, given, user, sizeof user);
    if (!ok)
        return refused(s, user);
    sl_spool_printable(user, shown, sizeof shown);
    s->auth_user = sl_strdup(user);
    sl_msg_info("%s: authenticated as \"%s\"", s->peer_ip, shown);
    io_reply(&s->io, "235 2.7.0 Authentication successful");
    smtpd_count(s, SL_LSTAT_AUTH, 1);
    return true;
}

/* smtpd_auth - AUTH, then no copy of its lines left in the input buffer, whatever the end */
bool smtpd_auth(struct session *s, const char *arg)
{
    bool go_on = auth(s, arg);

    io_wipe_read(&s->io);
    return go_on;
}
