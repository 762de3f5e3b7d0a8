/*
 * sl_dlog.h - the delivery log: one JSON line per attempt, or per operator
 * command on a part (dlog.c).  Written by the workers, by the master for the
 * operator's queue commands, and by sluicectl when it acts on the spool with no
 * daemon running, so every writer makes the same record.
 * Concurrency: each line is one write() on an O_APPEND descriptor.
 */
#ifndef SL_DLOG_H
#define SL_DLOG_H

#include <stddef.h>
#include <stdint.h>

struct sl_refusal;
struct sl_tls_log;

/* One line of the delivery log. */
struct sl_dlog_line {
    const char *id;
    const char *const *rcpt;
    size_t nrcpt;
    const char *binding, *domain, *mx, *ip;
    const char *outcome; /* delivered | deferred | bounced | held | deleted */
    const char *reply;
    const char *phase; /* NULL when none */
    const char *scope; /* a refusal: the counter */
    const struct sl_refusal *why;
    const struct sl_tls_log *tls; /* NULL, or tls->tried false: no "tls" object */
    uint32_t rcptmax, mailmax;    /* the receiver's LIMITS (RFC 9422); 0: not announced */
};

/* The delivery log for appending; -1 (warned) when it cannot be opened. */
int sl_dlog_open(const char *path);
/* Open path anew (logrotate renamed the file), then close *fd and keep the new
 * one; when the new one cannot be opened (warned) the old one stays. */
void sl_dlog_reopen(int *fd, const char *path);
/* One line; nothing when fd < 0. */
void sl_dlog_write(int fd, const struct sl_dlog_line *l);

#endif
