/*
 * tls.c - the listener's server TLS context (OpenSSL), for STARTTLS.
 *
 * TLS 1.2 or later, the certificate chain and key the config names (checked
 * by `config check`), no client certificates asked.  The master builds it
 * (sl_smtpd_prepare) before it drops privileges, so a key only root may read
 * works, and every listener process inherits it across fork.  A context that
 * cannot be built is an error for the caller: a listener that silently offered
 * no STARTTLS would push clients' AUTH into clear text.
 * Concurrency: built in the master; each listener process uses its own copy.
 * Trust boundary: the files are the operator's.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "util/sl_msg.h"
#include "smtpd_impl.h"

/* smtpd_tls_context - the server context of l; NULL with err when it cannot be built */
SSL_CTX *smtpd_tls_context(const struct sl_listener *l, char *err, size_t errlen)
{
    SSL_CTX *ctx;
    char why[256];

    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, l->tls_cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, l->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        ERR_clear_error();
        snprintf(err, errlen, "listener %s: TLS with %s and %s: %s", l->name, l->tls_cert_file,
                 l->tls_key_file, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    return ctx;
}

/* sl_smtpd_prepare - what l's processes need that may be readable by root alone */
bool sl_smtpd_prepare(const struct sl_listener *l, struct sl_smtpd_prep *p, char *err,
                      size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (l->tls_cert_file != NULL && (p->tls = smtpd_tls_context(l, err, errlen)) == NULL)
        return false;
    if (l->auth_file != NULL && (p->creds = smtpd_creds_load(l->auth_file, err, errlen)) == NULL) {
        SSL_CTX_free(p->tls);
        p->tls = NULL;
        return false;
    }
    return true;
}

/* sl_smtpd_prep_free - release what sl_smtpd_prepare made */
void sl_smtpd_prep_free(struct sl_smtpd_prep *p)
{
    SSL_CTX_free(p->tls);
    smtpd_creds_free(p->creds);
    memset(p, 0, sizeof *p);
}
