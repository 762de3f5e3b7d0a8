/*
 * sl_listener.h - the [listener "NAME"] sections: where sluice takes mail by
 * SMTP, from whom it relays, and the limits of its sessions.
 *
 * A listener section has its own keys (below), not the option table's: it is
 * no scope of the resolution chains.  The loader (config_load.c) hands every
 * [listener ...] header and the keys under it to listener.c, which checks
 * them with FILE:LINE like every other error; a config with no listener
 * section has none (nlisteners 0) and runs no listener.
 * Concurrency: a loaded config is immutable; any process may read it.
 * Trust boundary: the file is operator input; relay_networks decides who may
 * relay, so it is parsed strictly (a bad CIDR is an error, never ignored).
 */
#ifndef SL_LISTENER_H
#define SL_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/sl_config.h"

#define SL_LISTENER_SESSIONS_MAX 1024 /* listener processes of one section */
/* ... of all sections together: twice as many live during a reload (the old ones finish their
 * sessions), and every one needs an entry of the listeners' board and the group commit page */
#define SL_LISTENER_SESSIONS_TOTAL 4096

/* One network of relay_networks: family AF_INET or AF_INET6, bits of prefix. */
struct sl_cidr {
    int family;
    unsigned bits;
    uint8_t addr[16];
};

struct sl_listener {
    char *name;
    unsigned line; /* of its header */
    char *address; /* as written: IP:port or [IPv6]:port */
    struct sockaddr_storage sa;
    socklen_t salen;
    char *binding;        /* NULL: binding_group or "default" */
    char *binding_group;  /* NULL: binding */
    char *binding_header; /* a header that names the binding or group per message; NULL: none */
    struct sl_cidr *relay;
    size_t nrelay;
    unsigned max_sessions, max_sessions_per_client, max_recipients, max_errors;
    unsigned max_auth_failures;     /* failed AUTH from one address per window; 0: no limit */
    int64_t auth_failure_window_ms; /* counted from the window's first check */
    int64_t command_timeout_ms, data_timeout_ms, tls_timeout_ms;
    char *tls_cert_file, *tls_key_file, *auth_file;
    char *hostname; /* the greeting's and Received's name; NULL: ehlo_hostname or the host's */
    bool set[32];   /* keys seen (duplicate check), by index of the key table */
};

/* The listener so named, or NULL. */
const struct sl_listener *sl_config_listener(const struct sl_config *cfg, const char *name);
/* Is the address (AF_INET or AF_INET6, v4-mapped v6 taken as v4) in relay_networks? */
bool sl_listener_may_relay(const struct sl_listener *l, const struct sockaddr *sa);
/* Parse "a.b.c.d/n" or "v6/n" (no /n: a host) into c; false when malformed. */
bool sl_cidr_parse(const char *text, struct sl_cidr *c);
/* Does the address (family, 4 or 16 bytes) fall in c? */
bool sl_cidr_match(const struct sl_cidr *c, int family, const uint8_t *addr);

#endif
