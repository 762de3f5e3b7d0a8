/*
 * sl_dest.h - the settings of one binding x destination domain, read from the
 * config once per job: where to connect from and to, the per-connection and
 * per-transaction caps, retry and expiry, TLS options and the phase timeouts.
 */
#ifndef SL_DEST_H
#define SL_DEST_H

#include <stdbool.h>
#include <sys/socket.h>

#include "config/sl_config.h"
#include "dns/sl_dns.h"
#include "smtp/sl_smtp.h"

/* The settings of one binding x destination domain, resolved once per job. */
struct sl_dest {
    char binding[128];
    char domain[SL_DNS_NAME_MAX + 1];
    struct sockaddr_storage src; /* bind_address, port 0 */
    socklen_t srclen;            /* 0: no bind_address */
    int family;                  /* AF_UNSPEC when no bind_address */
    const char *route;           /* host[:port] or NULL */
    const char *helo;            /* ehlo_hostname, or the system host name */
    int port;
    int mx_limit, multihomed_limit;
    long max_deliveries;  /* per connection, 0: no limit */
    long max_rcpts_conn;  /* per connection, 0: no limit */
    long max_rcpts_batch; /* per transaction */
    long idle_ms;
    long retry_ms, max_retry_ms, expire_ms;
    long max_retries; /* -1 auto (until expiry), 0 none, N */
    int tls;          /* enum sl_tls_mode */
    bool dane;        /* honour validated TLSA records */
    bool mta_sts;     /* look up and apply the domain's MTA-STS policy */
    bool migrate;     /* migrate_connections_between_sibling_domains */
    bool chunking;    /* BDAT runs when CHUNKING and PIPELINING are offered */
    struct sl_smtp_timeouts to;
};

/* dest.c: the settings of binding x domain from the config. */
void sl_dest_load(const struct sl_config *cfg, const char *binding, const char *domain,
                  const char *hostname, struct sl_dest *d);

#endif
