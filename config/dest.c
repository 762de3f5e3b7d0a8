/*
 * dest.c - the settings of one binding x destination domain, read from the
 * config once per job so the session itself never walks the config.
 * Trust boundary: the config was validated by the master.
 */
#include <arpa/inet.h>
#include <string.h>

#include <bsd/string.h>

#include "config/sl_config.h"
#include "config/sl_dest.h"

/* set_source - the binding's bind_address as a socket address, port 0 */
static void set_source(struct sl_dest *d, const char *ip)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&d->src;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&d->src;

    memset(&d->src, 0, sizeof d->src);
    d->srclen = 0;
    d->family = AF_UNSPEC;
    if (ip == NULL)
        return;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        d->srclen = sizeof *v4;
        d->family = AF_INET;
    } else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        d->srclen = sizeof *v6;
        d->family = AF_INET6;
    }
}

/* set_timeouts - every phase's timer, in ms */
static void set_timeouts(const struct sl_config *cfg, const struct sl_scope_ref *ref,
                         struct sl_smtp_timeouts *to)
{
    static const struct {
        enum sl_phase ph;
        enum sl_opt opt;
    } map[] = {
        {SL_PH_CONNECT, SL_OPT_CONNECT_TIMEOUT},
        {SL_PH_GREETING, SL_OPT_GREETING_TIMEOUT},
        {SL_PH_TLS, SL_OPT_TLS_TIMEOUT},
        {SL_PH_EHLO, SL_OPT_EHLO_TIMEOUT},
        {SL_PH_MAIL_FROM, SL_OPT_MAIL_FROM_TIMEOUT},
        {SL_PH_RCPT_TO, SL_OPT_RCPT_TO_TIMEOUT},
        {SL_PH_DATA, SL_OPT_DATA_TIMEOUT},
        {SL_PH_RSET, SL_OPT_RSET_TIMEOUT},
    };

    memset(to, 0, sizeof *to);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        to->ms[map[i].ph] = (long)sl_config_num(cfg, map[i].opt, ref);
}

/* sl_dest_load - resolve every setting a delivery to binding x domain uses */
void sl_dest_load(const struct sl_config *cfg, const char *binding, const char *domain,
                  const char *hostname, struct sl_dest *d)
{
    struct sl_scope_ref ref = {.binding = binding, .domain = domain};
    struct sl_scope_ref bref = {.binding = binding};
    const char *helo;

    memset(d, 0, sizeof *d);
    strlcpy(d->binding, binding, sizeof d->binding);
    strlcpy(d->domain, domain, sizeof d->domain);
    set_source(d, sl_config_str(cfg, SL_OPT_BIND_ADDRESS, &bref));
    helo = sl_config_str(cfg, SL_OPT_EHLO_HOSTNAME, &bref);
    d->helo = helo != NULL ? helo : hostname;
    d->route = sl_config_str(cfg, SL_OPT_ROUTE, &ref);
    d->port = (int)sl_config_num(cfg, SL_OPT_SMTP_PORT, &ref);
    d->mx_limit = (int)sl_config_num(cfg, SL_OPT_MX_LIMIT, &ref);
    d->multihomed_limit = (int)sl_config_num(cfg, SL_OPT_MULTIHOMED_LIMIT, &ref);
    d->max_deliveries = (long)sl_config_num(cfg, SL_OPT_MAX_DELIVERIES_PER_CONNECTION, &ref);
    d->max_rcpts_conn = (long)sl_config_num(cfg, SL_OPT_MAX_RECIPIENTS_PER_CONNECTION, &ref);
    d->max_rcpts_batch = (long)sl_config_num(cfg, SL_OPT_MAX_RECIPIENTS_PER_BATCH, &ref);
    if (d->max_rcpts_batch <= 0)
        d->max_rcpts_batch = 100;
    d->idle_ms = (long)sl_config_num(cfg, SL_OPT_IDLE_TIMEOUT, &ref);
    d->retry_ms = (long)sl_config_num(cfg, SL_OPT_RETRY_INTERVAL, &ref);
    d->max_retry_ms = (long)sl_config_num(cfg, SL_OPT_MAX_RETRY_INTERVAL, &ref);
    d->expire_ms = (long)sl_config_num(cfg, SL_OPT_MESSAGE_EXPIRATION, &ref);
    d->max_retries = (long)sl_config_num(cfg, SL_OPT_MAX_RETRIES, &ref);
    d->tls = (int)sl_config_num(cfg, SL_OPT_TLS, &ref);
    d->dane = sl_config_num(cfg, SL_OPT_DANE, &ref) != 0;
    d->migrate = sl_config_num(cfg, SL_OPT_MIGRATE_SIBLINGS, &ref) != 0;
    d->mta_sts = sl_config_num(cfg, SL_OPT_MTA_STS, &ref) != 0;
    d->chunking = sl_config_num(cfg, SL_OPT_CHUNKING, &ref) != 0;
    set_timeouts(cfg, &ref, &d->to);
}
