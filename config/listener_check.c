/*
 * listener_check.c - the listener sections checked whole, and who may relay.
 *
 * Once the file is read: every listener has an address, no two share one, a
 * binding or binding_group it names is declared (never both), TLS has a
 * certificate and its key together and they load and match (OpenSSL, as the
 * listener will load them), AUTH has TLS (credentials never travel in clear)
 * and its credentials file holds well-formed "user:hash" lines.  Errors go to
 * the line of the key at fault, else of the section header.
 * relay_networks matching lives here too: the config owns the networks.
 * Concurrency: the loader's; sl_listener_may_relay is pure.
 * Trust boundary: the files named are operator input, read bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config/sl_listener.h"
#include "util/sl_msg.h"
#include "config_impl.h"

#define AUTH_FILE_MAX (4 * 1024 * 1024)

/* sl_cidr_parse - "addr/bits" or a bare address (a host) */
bool sl_cidr_parse(const char *text, struct sl_cidr *c)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(text, '/');
    size_t n = slash != NULL ? (size_t)(slash - text) : strlen(text);
    char *end;
    long bits;

    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, text, n);
    buf[n] = '\0';
    memset(c, 0, sizeof *c);
    c->family = strchr(buf, ':') != NULL ? AF_INET6 : AF_INET;
    if (inet_pton(c->family, buf, c->addr) != 1)
        return false;
    bits = c->family == AF_INET ? 32 : 128;
    if (slash != NULL) {
        long max = bits;
        bits = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || bits < 0 || bits > max)
            return false;
    }
    c->bits = (unsigned)bits;
    return true;
}

/* sl_cidr_match - the first `bits` bits of addr are those of c */
bool sl_cidr_match(const struct sl_cidr *c, int family, const uint8_t *addr)
{
    unsigned full = c->bits / 8, rest = c->bits % 8;

    if (family != c->family)
        return false;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

/* sl_listener_may_relay - the client's address is in relay_networks */
bool sl_listener_may_relay(const struct sl_listener *l, const struct sockaddr *sa)
{
    const uint8_t *addr;
    int family = sa->sa_family;

    if (family == AF_INET)
        addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    else if (family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        addr = a6->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6))
            family = AF_INET, addr += 12;
    } else
        return false;
    for (size_t i = 0; i < l->nrelay; i++)
        if (sl_cidr_match(&l->relay[i], family, addr))
            return true;
    return false;
}

/* sl_config_listener - the listener so named, or NULL */
const struct sl_listener *sl_config_listener(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (strcasecmp(cfg->listeners[i].name, name) == 0)
            return &cfg->listeners[i];
    return NULL;
}

/* tls_error - OpenSSL's last error as text, the queue emptied */
static const char *tls_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    if (e == 0)
        snprintf(buf, len, "unreadable");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

/* regular_file - a readable regular file, or why not */
static const char *regular_file(const char *path, char *why, size_t len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(why, len, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return why;
    }
    close(fd);
    if (!S_ISREG(st.st_mode))
        return "not a regular file";
    return NULL;
}

/* check_tls - cert and key together, regular files, loadable and matching */
static void check_tls(struct loader *L, const struct sl_listener *l)
{
    char why[256];
    const char *bad;
    SSL_CTX *ctx;

    if ((l->tls_cert_file == NULL) != (l->tls_key_file == NULL)) {
        sl_config_report(L, l->line,
                         "[listener \"%s\"]: tls_cert_file and tls_key_file go together", l->name);
        return;
    }
    if (l->tls_cert_file == NULL)
        return;
    if ((bad = regular_file(l->tls_cert_file, why, sizeof why)) != NULL ||
        (bad = regular_file(l->tls_key_file, why, sizeof why)) != NULL) {
        sl_config_report(L, l->line, "[listener \"%s\"]: %s: %s", l->name,
                         regular_file(l->tls_cert_file, why, sizeof why) != NULL ? l->tls_cert_file
                                                                                 : l->tls_key_file,
                         bad);
        return;
    }
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
        sl_msg_fatal("OpenSSL cannot make a context");
    if (SSL_CTX_use_certificate_chain_file(ctx, l->tls_cert_file) != 1)
        sl_config_report(L, l->line, "[listener \"%s\"]: tls_cert_file %s: %s", l->name,
                         l->tls_cert_file, tls_error(why, sizeof why));
    else if (SSL_CTX_use_PrivateKey_file(ctx, l->tls_key_file, SSL_FILETYPE_PEM) != 1)
        sl_config_report(L, l->line, "[listener \"%s\"]: tls_key_file %s: %s", l->name,
                         l->tls_key_file, tls_error(why, sizeof why));
    else if (SSL_CTX_check_private_key(ctx) != 1)
        sl_config_report(L, l->line,
                         "[listener \"%s\"]: tls_key_file %s is not the key of tls_cert_file %s",
                         l->name, l->tls_key_file, l->tls_cert_file);
    ERR_clear_error();
    SSL_CTX_free(ctx);
}

/* auth_line_ok - "user:$argon2id$..." (or another crypto_pwhash_str form) */
static bool auth_line_ok(const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);

    if (colon == NULL || colon == s || colon - s > 255)
        return false;
    for (const char *p = s; p < s + n; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return (size_t)(s + n - colon - 1) > 8 && colon[1] == '$';
}

/* check_auth - auth_file: needs TLS; every line a credential, a comment or blank */
static void check_auth(struct loader *L, const struct sl_listener *l)
{
    char why[256], *buf;
    const char *bad;
    size_t len = 0;
    unsigned lineno = 0;
    FILE *f;

    if (l->auth_file == NULL)
        return;
    if (l->tls_cert_file == NULL)
        sl_config_report(L, l->line,
                         "[listener \"%s\"]: auth_file needs tls_cert_file and tls_key_file "
                         "(AUTH is offered only after STARTTLS)",
                         l->name);
    if ((bad = regular_file(l->auth_file, why, sizeof why)) != NULL ||
        (f = fopen(l->auth_file, "re")) == NULL) {
        sl_config_report(L, l->line, "[listener \"%s\"]: auth_file %s: %s", l->name, l->auth_file,
                         bad != NULL ? bad : strerror(errno));
        return;
    }
    buf = sl_malloc(1024);
    while (fgets(buf, 1024, f) != NULL && (len += strlen(buf)) <= AUTH_FILE_MAX) {
        size_t n = strcspn(buf, "\r\n");
        lineno++;
        if (n == 0 || buf[0] == '#')
            continue;
        if (!auth_line_ok(buf, n)) {
            sl_config_report(L, l->line,
                             "[listener \"%s\"]: auth_file %s line %u: expected USER:HASH (as "
                             "'sluicectl passwd' writes)",
                             l->name, l->auth_file, lineno);
            break;
        }
    }
    if (len > AUTH_FILE_MAX)
        sl_config_report(L, l->line, "[listener \"%s\"]: auth_file %s: larger than 4 MB", l->name,
                         l->auth_file);
    free(buf);
    fclose(f);
}

/* check_binding - a declared binding or group, not both */
static void check_binding(struct loader *L, const struct sl_listener *l)
{
    if (l->binding != NULL && l->binding_group != NULL)
        sl_config_report(
            L, l->line, "[listener \"%s\"]: binding and binding_group exclude each other", l->name);
    else if (l->binding != NULL && sl_config_binding(L->cfg, l->binding) == NULL)
        sl_config_report(L, l->line,
                         "[listener \"%s\"]: binding \"%s\" is not declared (no [binding \"%s\"] "
                         "section)",
                         l->name, l->binding, l->binding);
    else if (l->binding_group != NULL && sl_config_group(L->cfg, l->binding_group) == NULL)
        sl_config_report(L, l->line,
                         "[listener \"%s\"]: binding_group \"%s\" is not declared (no "
                         "[binding_group \"%s\"] section)",
                         l->name, l->binding_group, l->binding_group);
}

/* port_of - the port of a listener's address, and whether the address is a wildcard */
static unsigned port_of(const struct sl_listener *l, bool *wildcard)
{
    if (l->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&l->sa;
        *wildcard = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
        return ntohs(in6->sin6_port);
    }
    const struct sockaddr_in *in = (const struct sockaddr_in *)&l->sa;
    *wildcard = in->sin_addr.s_addr == htonl(INADDR_ANY);
    return ntohs(in->sin_port);
}

/* clash - a and b (different addresses) cannot both be bound: the same family and port, and
 * a wildcard among them takes the port on the other's address too.  An IPv6 socket is bound
 * IPV6_V6ONLY (sl_smtpd_bind): [::]:25 beside 0.0.0.0:25 is two listeners, not a clash. */
static bool clash(const struct sl_listener *a, const struct sl_listener *b)
{
    bool wa, wb;

    if (a->sa.ss_family != b->sa.ss_family || port_of(a, &wa) != port_of(b, &wb))
        return false;
    return wa || wb;
}

/* check_address - l's address given, and bindable beside those of the listeners before it */
static void check_address(struct loader *L, size_t i)
{
    const struct sl_config *cfg = L->cfg;
    const struct sl_listener *l = &cfg->listeners[i];

    if (l->address == NULL) {
        sl_config_report(L, l->line, "[listener \"%s\"]: no address (IP:port)", l->name);
        return;
    }
    for (size_t j = 0; j < i; j++) {
        const struct sl_listener *o = &cfg->listeners[j];
        if (o->address == NULL)
            continue;
        if (o->salen == l->salen && memcmp(&o->sa, &l->sa, l->salen) == 0)
            sl_config_report(L, l->line,
                             "[listener \"%s\"]: address %s is already listener \"%s\"'s "
                             "(line %u)",
                             l->name, l->address, o->name, o->line);
        else if (clash(l, o))
            sl_config_report(L, l->line,
                             "[listener \"%s\"]: address %s and listener \"%s\"'s %s (line %u) "
                             "cannot both be bound: a wildcard address takes its port on every "
                             "address",
                             l->name, l->address, o->name, o->address, o->line);
    }
}

/* sl_config_listeners_check - every listener section, once the file is read */
void sl_config_listeners_check(struct loader *L)
{
    const struct sl_config *cfg = L->cfg;
    unsigned long sessions = 0;

    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct sl_listener *l = &cfg->listeners[i];
        sessions += l->max_sessions;
        if (sessions > SL_LISTENER_SESSIONS_TOTAL &&
            sessions - l->max_sessions <= SL_LISTENER_SESSIONS_TOTAL)
            sl_config_report(L, l->line,
                             "[listener \"%s\"]: max_sessions of the listeners add up to more "
                             "than %d here (the processes of all listeners at once)",
                             l->name, SL_LISTENER_SESSIONS_TOTAL);
        check_address(L, i);
        check_binding(L, l);
        check_tls(L, l);
        check_auth(L, l);
    }
}
