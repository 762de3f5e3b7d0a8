/*
 * sl_tls.h - TLS for the SMTP client: a worker's OpenSSL context, what one
 * connection must prove before mail goes over it, and what it came to.
 *
 * The policy (config tls, MTA-STS, DANE: tls/tls_policy.c) decides a need
 * per MX host; the session (smtp/smtp_tls.c) enforces it during
 * sl_smtp_open: STARTTLS under tls_timeout (the reply and the handshake), SNI,
 * TLS 1.2 or later, then EHLO again (RFC 3207).  Fail safe: under any need
 * above SL_TLS_NEED_TRY, a peer that does not offer STARTTLS, refuses it, or
 * fails the handshake or the check ends the session before MAIL FROM, so a
 * message is never sent in clear or to an unauthenticated peer.
 */
#ifndef SL_TLS_H
#define SL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/sl_dns.h" /* struct sl_tlsa */

enum sl_tls_need {
    SL_TLS_NEED_NONE = 0, /* no STARTTLS: tls = disabled, or the one retry in clear after
                             an opportunistic handshake failed */
    SL_TLS_NEED_TRY,      /* STARTTLS when offered; in clear when not offered or refused
                             (4xx/5xx); the certificate is checked only to report it */
    SL_TLS_NEED_ENCRYPT,  /* tls = required: STARTTLS must succeed; any certificate */
    SL_TLS_NEED_VERIFY,   /* tls = verify, MTA-STS enforce: the chain ends at tls_ca_file
                             (or the system store) and the certificate names the MX host */
    SL_TLS_NEED_DANE,     /* RFC 7672: the certificate matches one of the TLSA records */
};
/* "none", "try", "encrypt", "verify", "dane" */
const char *sl_tls_need_name(enum sl_tls_need n);

/* A worker's client context (OpenSSL's SSL_CTX with the CA store), made once. */
struct sl_tls_client;
/* ca_file: PEM bundle to trust, or NULL for the system store.  NULL with err
 * when OpenSSL cannot be set up or the file cannot be read. */
struct sl_tls_client *sl_tls_client_new(const char *ca_file, char *err, size_t errlen);
void sl_tls_client_free(struct sl_tls_client *c);

/* What sl_smtp_open must do about TLS with one MX host. */
struct sl_tls_params {
    enum sl_tls_need need;
    struct sl_tls_client *client; /* may be NULL only with SL_TLS_NEED_NONE */
    const char *host;             /* the MX host name: SNI, the name VERIFY checks, DANE's
                                     base domain (RFC 7672 3.2.2) */
    const struct sl_tlsa *tlsa;   /* SL_TLS_NEED_DANE: the usable records */
    size_t ntlsa;
};

/* What TLS came to on a session (struct sl_smtp's tls). */
struct sl_tls_info {
    bool on;          /* the session is encrypted */
    bool verified;    /* the peer was authenticated: chain and name, or a TLSA match */
    char version[16]; /* "TLSv1.3" */
    char cipher[64];  /* "TLS_AES_256_GCM_SHA384" */
    char auth[16];    /* "none", "pkix", "dane-ee" or "dane-ta" */
    char peer[256];   /* the certificate's subject CN, for the log ("" when none) */
    char check[160];  /* why the certificate did not verify ("" when it did) */
};

#endif
