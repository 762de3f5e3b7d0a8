/*
 * tls.c - the listener's server TLS context (OpenSSL), for STARTTLS.
 *
 * TLS 1.2 or later, the certificate chain and key the config names (checked
 * by `config check`, loaded again here in each listener process), no client
 * certificates asked.  A context that cannot be built is fatal: the config
 * check passed, so the files changed under us, and a listener that silently
 * offered no STARTTLS would push clients' AUTH into clear text.
 * Concurrency: one context per process, built before the first session.
 * Trust boundary: the files are the operator's.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "util/sl_msg.h"
#include "smtpd_impl.h"

/* smtpd_tls_context - the server context of l, or NULL when l has no certificate */
SSL_CTX *smtpd_tls_context(const struct sl_listener *l)
{
    SSL_CTX *ctx;
    char why[256];

    if (l->tls_cert_file == NULL)
        return NULL;
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, l->tls_cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, l->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        sl_msg_fatal("listener %s: TLS with %s and %s: %s", l->name, l->tls_cert_file,
                     l->tls_key_file, why);
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    return ctx;
}
