/*
 * smtp_tls.c - TLS for the SMTP client: a worker's OpenSSL context, STARTTLS
 * and the handshake under the tls phase's timer, the certificate judged
 * against the session's need (PKIX chain and name, or DANE TLSA records), and
 * the encrypted reads and writes smtp_io.c routes through once it is on.
 *
 * The socket stays non-blocking: every WANT_READ/WANT_WRITE waits in
 * smtp_io_wait, the session's one sleeping place, so the phase timers work
 * as in clear.  The handshake runs with SSL_VERIFY_NONE and the verdict is
 * read afterwards, so opportunistic sessions still learn (and report) whether
 * the peer would have verified; the needs that demand it refuse the session
 * before any MAIL FROM.
 * Trust boundary: the peer's certificate and every TLS record are the peer's;
 * OpenSSL checks them, we only read its verdict.  Bytes the peer sent after
 * its STARTTLS reply in clear could be injected by anyone on the path
 * (RFC 3207 section 6): they end the session.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "smtp_impl.h"
#include "util/sl_msg.h"

#define TLS_WRITE_MAX 16384 /* one TLS record's worth of plaintext per write */

/* The OpenSSL context is made at the first STARTTLS, not with the client: most
 * workers of a busy server may never meet a peer that offers it, and loading a
 * CA store costs tens of milliseconds of CPU. */
struct sl_tls_client {
    char *ca_file; /* NULL: the system store */
    SSL_CTX *ctx;  /* NULL until the first session needs it */
};

static const char *const need_names[] = {
    [SL_TLS_NEED_NONE] = "none",     [SL_TLS_NEED_TRY] = "try",   [SL_TLS_NEED_ENCRYPT] = "encrypt",
    [SL_TLS_NEED_VERIFY] = "verify", [SL_TLS_NEED_DANE] = "dane",
};

/* sl_tls_need_name - a need as the delivery log spells it */
const char *sl_tls_need_name(enum sl_tls_need n)
{
    return (unsigned)n < sizeof need_names / sizeof need_names[0] ? need_names[n] : "unknown";
}

/* ssl_reason - OpenSSL's reason for the last failure, then its error queue emptied so the
 * next session starts clean */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (why != NULL)
        strlcpy(buf, why, len);
    else if (e != 0)
        ERR_error_string_n(e, buf, len);
    else
        strlcpy(buf, "unknown OpenSSL error", len);
    ERR_clear_error();
    return buf;
}

/* load_store - tls_ca_file, or the system store as its hashed directory: certificates are
 * read from it as chains need them, where the bundle file would be parsed whole (about
 * 20 ms); without the directory, the bundle after all */
static int load_store(SSL_CTX *ctx, const char *ca_file)
{
    const char *dir = getenv(X509_get_default_cert_dir_env());

    if (ca_file != NULL)
        return SSL_CTX_load_verify_file(ctx, ca_file);
    if (dir == NULL)
        dir = X509_get_default_cert_dir();
    if (access(dir, R_OK | X_OK) == 0 && SSL_CTX_load_verify_dir(ctx, dir) == 1)
        return 1;
    return SSL_CTX_set_default_verify_paths(ctx);
}

/* make_ctx - the context: TLS 1.2 or later, the CA store, DANE ready */
static SSL_CTX *make_ctx(const char *ca_file, char *err, size_t errlen)
{
    char why[160];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        snprintf(err, errlen, "TLS context: %s", ssl_reason(why, sizeof why));
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 || SSL_CTX_dane_enable(ctx) <= 0) {
        snprintf(err, errlen, "TLS context: %s", ssl_reason(why, sizeof why));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (load_store(ctx, ca_file) != 1) {
        snprintf(err, errlen, "TLS CA %s: %s", ca_file != NULL ? ca_file : "(system store)",
                 ssl_reason(why, sizeof why));
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* judged after the handshake */
    return ctx;
}

/* sl_tls_client_new - the worker's client; its context is made at the first STARTTLS */
struct sl_tls_client *sl_tls_client_new(const char *ca_file, char *err, size_t errlen)
{
    struct sl_tls_client *c = sl_calloc(1, sizeof *c);

    (void)err;
    (void)errlen;
    c->ca_file = ca_file != NULL ? sl_strdup(ca_file) : NULL;
    return c;
}

/* sl_tls_client_free - drop the context (sessions made from it hold their own reference) */
void sl_tls_client_free(struct sl_tls_client *c)
{
    if (c == NULL)
        return;
    SSL_CTX_free(c->ctx);
    free(c->ca_file);
    free(c);
}

/* refuse - the need is not met while the session is still in step: record why, say QUIT
 * (over TLS when on), close; nothing of a message has been sent */
static int refuse(struct sl_smtp *s, const char *why)
{
    strlcpy(s->err, why, sizeof s->err);
    s->fail = SL_SMTP_FAIL_TLS;
    s->phase = SL_PH_TLS;
    sl_smtp_quit(s); /* keeps fail, phase and err */
    return -1;
}

/* is_ip_literal - SNI carries names only (RFC 6066 section 3) */
static bool is_ip_literal(const char *host)
{
    unsigned char a[16];

    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* add_tlsa - the usable records (DANE-TA, DANE-EE) for the session; how many were taken */
static size_t add_tlsa(SSL *ssl, const struct sl_tls_params *tls)
{
    size_t added = 0;

    for (size_t i = 0; i < tls->ntlsa; i++) {
        const struct sl_tlsa *t = &tls->tlsa[i];
        if (t->usage != 2 && t->usage != 3)
            continue;
        if (SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len) > 0)
            added++;
    }
    ERR_clear_error(); /* an unusable record is skipped, not an error */
    return added;
}

/* new_ssl - the session's SSL on the socket: SNI, the name to check or the TLSA records */
static SSL *new_ssl(struct sl_smtp *s, const struct sl_tls_params *tls, char *why, size_t len)
{
    struct sl_tls_client *c = tls->client;
    const char *host = tls->host != NULL ? tls->host : "";
    char reason[160];
    SSL *ssl;

    if (c->ctx == NULL && (c->ctx = make_ctx(c->ca_file, why, len)) == NULL)
        return NULL;
    ssl = SSL_new(c->ctx);
    if (ssl == NULL || SSL_set_fd(ssl, s->fd) != 1) {
        snprintf(why, len, "TLS session: %s", ssl_reason(reason, sizeof reason));
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    if (tls->need == SL_TLS_NEED_DANE) {
        /* DANE-EE matches the key alone (RFC 7672 3.1.1); DANE-TA checks the name */
        if (SSL_dane_enable(ssl, host) <= 0) {
            snprintf(why, len, "TLS session: %s", ssl_reason(reason, sizeof reason));
            SSL_free(ssl);
            return NULL;
        }
        SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
        if (add_tlsa(ssl, tls) == 0) {
            snprintf(why, len, "no usable TLSA record for %s", host);
            SSL_free(ssl);
            return NULL;
        }
        return ssl;
    }
    if (*host != '\0' && !is_ip_literal(host))
        (void)SSL_set_tlsext_host_name(ssl, host);
    if (*host != '\0') {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        (void)SSL_set1_host(ssl, host);
    }
    ERR_clear_error();
    return ssl;
}

/* handshake - SSL_connect to the end, waiting as OpenSSL asks, under the tls timer */
static int handshake(struct sl_smtp *s)
{
    char why[160];

    for (;;) {
        ERR_clear_error();
        int n = SSL_connect(s->ssl);
        if (n == 1)
            return 0;
        int e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (smtp_io_wait(s, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, "the handshake") < 0)
                return -1;
            continue;
        }
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
            snprintf(why, sizeof why, "%s",
                     errno != 0 && n < 0 ? strerror(errno) : "connection closed by the peer");
        else
            ssl_reason(why, sizeof why);
        return smtp_fail(s, SL_SMTP_FAIL_TLS, "TLS handshake failed: %s", why);
    }
}

/* subject_cn - the peer certificate's subject CN, for the log */
static void subject_cn(X509 *cert, char *buf, size_t len)
{
    buf[0] = '\0';
    if (cert == NULL)
        return;
    X509_NAME *name = X509_get_subject_name(cert);
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0)
        return;
    ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, v);
    if (n < 0)
        return;
    size_t k = 0;
    for (int j = 0; j < n && k + 1 < len; j++) /* the peer's bytes: printable ASCII only */
        buf[k++] = utf8[j] >= ' ' && utf8[j] < 0x7f && utf8[j] != '"' ? (char)utf8[j] : '?';
    buf[k] = '\0';
    OPENSSL_free(utf8);
}

/* judge - what the handshake came to: version, cipher, peer, and whether it authenticated
 * the peer (a TLSA match under DANE, chain and name otherwise) */
static void judge(struct sl_smtp *s, const struct sl_tls_params *tls)
{
    struct sl_tls_info *i = &s->tls;
    X509 *cert = SSL_get1_peer_certificate(s->ssl);
    long v = SSL_get_verify_result(s->ssl);
    uint8_t usage = 0;

    i->on = true;
    strlcpy(i->version, SSL_get_version(s->ssl), sizeof i->version);
    strlcpy(i->cipher, SSL_get_cipher_name(s->ssl), sizeof i->cipher);
    subject_cn(cert, i->peer, sizeof i->peer);
    i->verified = cert != NULL && v == X509_V_OK;
    if (tls->need == SL_TLS_NEED_DANE) {
        i->verified =
            i->verified && SSL_get0_dane_tlsa(s->ssl, &usage, NULL, NULL, NULL, NULL) >= 0;
        if (!i->verified) /* OpenSSL names the cause: no match, or (DANE-TA) the name */
            snprintf(i->check, sizeof i->check, "DANE: %s (host %s)",
                     cert == NULL     ? "no certificate"
                     : v != X509_V_OK ? X509_verify_cert_error_string(v)
                                      : "no TLSA record matches the certificate",
                     tls->host != NULL ? tls->host : "");
    } else if (!i->verified) {
        snprintf(i->check, sizeof i->check, "%s (host %s)",
                 cert == NULL ? "no certificate" : X509_verify_cert_error_string(v),
                 tls->host != NULL ? tls->host : "");
    }
    strlcpy(i->auth,
            !i->verified ? "none"
            : usage == 3 ? "dane-ee"
            : usage == 2 ? "dane-ta"
                         : "pkix",
            sizeof i->auth);
    X509_free(cert);
}

/* starttls_reply - STARTTLS and its reply (into st) under the tls timer: 1 when the peer
 * refused (the session is still in step, in clear), 0 to go on with the handshake; a 421
 * ends the session with the reply in *r */
static int starttls_reply(struct sl_smtp *s, struct sl_reply *st, struct sl_reply *r)
{
    smtp_phase_begin(s, SL_PH_TLS);
    if (smtp_io_send_str(s, "STARTTLS\r\n", 10, "STARTTLS") < 0 ||
        smtp_reply_read(s, st, false) < 0)
        return -1;
    if (st->code == 421) {
        *r = *st;
        return smtp_fail(s, SL_SMTP_FAIL_REPLY, "the peer closes the session during tls: %s",
                         st->text);
    }
    if (st->code != 220)
        return 1;
    if (s->roff < s->rlen)
        return smtp_fail(s, SL_SMTP_FAIL_TLS,
                         "the peer sent data after its STARTTLS reply (injection?)");
    s->roff = s->rlen = 0;
    return 0;
}

/* smtp_tls_start - STARTTLS as tls->need says, after EHLO: 0 when the session is now
 * encrypted (the caller says EHLO again), 1 when it goes on in clear (*r still EHLO's
 * reply), -1 when it failed (*r: the peer's refusal or 421, else code 0; s->err says why) */
int smtp_tls_start(struct sl_smtp *s, const struct sl_tls_params *tls, struct sl_reply *r)
{
    char why[256];
    struct sl_reply st;
    bool must = tls->need > SL_TLS_NEED_TRY;

    if (!s->starttls)
        return must ? refuse(s, "STARTTLS not offered by the peer") : 1;
    struct sl_reply ehlo = *r;
    memset(r, 0, sizeof *r); /* from here a failure is the peer's reply only if it answered */
    int res = starttls_reply(s, &st, r);
    if (res < 0)
        return -1;
    if (res == 1) {
        *r = must ? st : ehlo;
        if (!must)
            return 1;
        snprintf(why, sizeof why, "STARTTLS refused: %.200s", st.text);
        return refuse(s, why);
    }
    if ((s->ssl = new_ssl(s, tls, why, sizeof why)) == NULL)
        return smtp_fail(s, SL_SMTP_FAIL_TLS, "%s", why);
    if (handshake(s) < 0)
        return -1;
    judge(s, tls);
    if (tls->need >= SL_TLS_NEED_VERIFY && !s->tls.verified) {
        if (tls->need == SL_TLS_NEED_DANE)
            return refuse(s, s->tls.check);
        snprintf(why, sizeof why, "certificate not verified: %s", s->tls.check);
        return refuse(s, why);
    }
    return 0;
}

/* tls_failed - an SSL_read/SSL_write that cannot go on: closed, reset, or a TLS error */
static int tls_failed(struct sl_smtp *s, int e, int n)
{
    char why[160];
    const char *ph = sl_phase_name(s->phase);

    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && n == 0))
        return smtp_fail(s, SL_SMTP_FAIL_IO, "connection closed by the peer during %s", ph);
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        int err = errno;
        ERR_clear_error();
        if (err == ECONNRESET)
            return smtp_fail(s, SL_SMTP_FAIL_IO, "connection reset by the peer during %s", ph);
        if (err == EPIPE || err == 0)
            return smtp_fail(s, SL_SMTP_FAIL_IO, "connection closed by the peer during %s", ph);
        return smtp_fail(s, SL_SMTP_FAIL_IO, "%s during %s", strerror(err), ph);
    }
    return smtp_fail(s, SL_SMTP_FAIL_IO, "TLS error during %s: %s", ph,
                     ssl_reason(why, sizeof why));
}

/* smtp_tls_read - at least one byte of plaintext into buf, waiting as need be; what was read,
 * or -1 when the session ended.  Buffered plaintext is returned without a wait. */
ssize_t smtp_tls_read(struct sl_smtp *s, char *buf, size_t len)
{
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(s->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n > 0)
            return n;
        int e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (smtp_io_wait(s, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, "") < 0)
                return -1;
            continue;
        }
        return tls_failed(s, e, n);
    }
}

/* tls_write - all of buf as one SSL_write, retried with the same arguments as OpenSSL asks */
static int tls_write(struct sl_smtp *s, const char *buf, size_t len, const char *what)
{
    while (len > 0) {
        ERR_clear_error();
        int n = SSL_write(s->ssl, buf, (int)len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        int e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (smtp_io_wait(s, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, what) < 0)
                return -1;
            continue;
        }
        return tls_failed(s, e, n);
    }
    return 0;
}

/* smtp_tls_send - all of iov, gathered into writes of up to TLS_WRITE_MAX bytes so a
 * pipelined group or a body goes out in full records, not one per piece */
int smtp_tls_send(struct sl_smtp *s, const struct iovec *iov, int iovcnt, const char *what)
{
    char buf[TLS_WRITE_MAX];
    size_t n = 0;

    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            size_t k = left < sizeof buf - n ? left : sizeof buf - n;
            memcpy(buf + n, p, k);
            n += k;
            p += k;
            left -= k;
            if (n == sizeof buf) {
                if (tls_write(s, buf, n, what) < 0)
                    return -1;
                n = 0;
            }
        }
    }
    return n > 0 ? tls_write(s, buf, n, what) : 0;
}

/* smtp_tls_idle - is an idle TLS session still usable?  Records without application data
 * (TLS 1.3 session tickets) are taken in passing; plaintext, a close or an error is not
 * usable.  Never waits. */
bool smtp_tls_idle(struct sl_smtp *s)
{
    char c;

    if (SSL_pending(s->ssl) > 0)
        return false;
    ERR_clear_error();
    int n = SSL_read(s->ssl, &c, 1);
    if (n > 0)
        return false;
    int e = SSL_get_error(s->ssl, n);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ;
}

/* smtp_tls_pending - see smtp_impl.h */
bool smtp_tls_pending(struct sl_smtp *s)
{
    return SSL_pending(s->ssl) > 0;
}

/* smtp_tls_shutdown - our close_notify, best effort, without waiting for the peer's */
void smtp_tls_shutdown(struct sl_smtp *s)
{
    if (s->ssl == NULL || s->fd < 0)
        return;
    ERR_clear_error();
    (void)SSL_shutdown(s->ssl);
    ERR_clear_error();
}

/* smtp_tls_drop - free the session's SSL (the socket is the caller's to close) */
void smtp_tls_drop(struct sl_smtp *s)
{
    SSL_free(s->ssl);
    s->ssl = NULL;
    ERR_clear_error();
}
