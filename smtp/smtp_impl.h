/*
 * smtp_impl.h - what the SMTP client's files share (not for other modules; the fuzz
 * target of the reply reader, tests/fuzz/fuzz_smtp.c, reaches in here too).
 *
 * smtp_io.c owns the socket, the read buffer and the phase timer;
 * smtp_reply.c turns lines into replies; smtp_session.c speaks the protocol;
 * smtp_tls.c does STARTTLS and carries the reads and writes once s->ssl is set.
 * Every failure goes through smtp_fail, which stops the timer and closes the
 * session, so a caller only has to return -1.
 */
#ifndef SMTP_IMPL_H
#define SMTP_IMPL_H

#include <stdbool.h>
#include <sys/uio.h>

#include "smtp/sl_smtp.h"

/* smtp_io.c */
long smtp_phase_ms(const struct sl_smtp *s, enum sl_phase ph);
void smtp_phase_begin(struct sl_smtp *s, enum sl_phase ph);
void smtp_phase_end(struct sl_smtp *s);
int smtp_fail(struct sl_smtp *s, enum sl_smtp_fail f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int smtp_io_connect(struct sl_smtp *s, const struct sockaddr *src, socklen_t srclen,
                    const struct sockaddr *dst, socklen_t dstlen);
/* Wait for events on the socket under the running phase's timer (-1: the session ended). */
int smtp_io_wait(struct sl_smtp *s, short events, const char *what);
/* Write all of iov (modified on partial writes); what names it in errors. */
int smtp_io_send(struct sl_smtp *s, struct iovec *iov, int iovcnt, const char *what);
int smtp_io_send_str(struct sl_smtp *s, const char *buf, size_t len, const char *what);
/* The next line without its CRLF; valid until the next call. */
int smtp_io_line(struct sl_smtp *s, const char **line, size_t *len);
/* Something from the peer is there to read (buffered, or on the socket): a read would not
 * wait for it to begin.  Never waits. */
bool smtp_io_ready(struct sl_smtp *s);

/* smtp_session.c: a fresh session (fd -1, the read buffer allocated, env and to copied),
 * as sl_smtp_open starts one; the fuzz target of the reply reader starts its own with it
 * on a socket of its making, which sl_smtp_close then closes. */
void smtp_session_init(struct sl_smtp *s, const struct sl_smtp_env *env,
                       const struct sl_smtp_timeouts *to);

/* smtp_is_2xx - a positive completion reply */
static inline bool smtp_is_2xx(const struct sl_reply *r)
{
    return r->code >= 200 && r->code <= 299;
}

/* smtp_session.c: what the transaction senders share.  A command line built from a checked
 * address fits SMTP_CMD_MAX bytes. */
#define SMTP_ADDR_MAX 900 /* a command must fit in RFC 5321's 1000-byte line */
/* RFC 3461 4: DSN lengthens MAIL by ENVID (100) and RET, RCPT by NOTIFY and ORCPT (500) */
#define SMTP_DSN_MAIL_MAX 120
#define SMTP_DSN_RCPT_MAX 560
/* MAIL: 63 bytes beside the address and its DSN parameters at most */
#define SMTP_CMD_MAX (SMTP_ADDR_MAX + 80 + SMTP_DSN_RCPT_MAX)
size_t smtp_put_mail(char *buf, const struct sl_smtp *s, const struct sl_smtp_txn *t);
size_t smtp_put_rcpt(char *buf, const struct sl_smtp *s, const struct sl_smtp_txn *t, size_t i);
/* every address of t fits a command line */
bool smtp_sendable(const struct sl_smtp_txn *t);
/* 0 when every address of t fits a command line; else the session fails (PROTO) */
int smtp_check_addresses(struct sl_smtp *s, const struct sl_smtp_txn *t);
/* the peer's 421: the session fails, naming the phase */
int smtp_closing(struct sl_smtp *s, const struct sl_reply *r);
/* the replies to RSET (when rset), MAIL and every RCPT of t */
int smtp_read_group(struct sl_smtp *s, struct sl_smtp_txn *t, bool rset);
/* t[from..to) pipelined with DATA, one round trip per message; over gets indexes into t */
int smtp_send_data(struct sl_smtp *s, struct sl_smtp_txn *t, size_t from, size_t to,
                   sl_smtp_txn_over *over, void *arg);

/* smtp_chunk.c: t[0..n) with BDAT (CHUNKING and PIPELINING offered, s->bdat set), runs of
 * them in one write each: one round trip per run. */
int smtp_send_chunked(struct sl_smtp *s, struct sl_smtp_txn *t, size_t n, sl_smtp_txn_over *over,
                      void *arg);

/* smtp_reply.c: one whole reply; ehlo: also record the extensions offered. */
int smtp_reply_read(struct sl_smtp *s, struct sl_reply *r, bool ehlo);

/* smtp_tls.c */
/* STARTTLS as tls->need says: 0 encrypted (say EHLO again), 1 in clear, -1 failed. */
int smtp_tls_start(struct sl_smtp *s, const struct sl_tls_params *tls, struct sl_reply *r);
/* At least one byte of plaintext (buffered plaintext first, without a wait), or -1. */
ssize_t smtp_tls_read(struct sl_smtp *s, char *buf, size_t len);
/* All of iov over TLS, in records of up to 16 KB. */
int smtp_tls_send(struct sl_smtp *s, const struct iovec *iov, int iovcnt, const char *what);
/* An idle TLS session is usable: nothing but records without application data arrived. */
bool smtp_tls_idle(struct sl_smtp *s);
/* Plaintext OpenSSL holds already decrypted (a record read whole).  Never waits. */
bool smtp_tls_pending(struct sl_smtp *s);
/* close_notify, best effort; smtp_tls_drop frees the SSL (not the socket). */
void smtp_tls_shutdown(struct sl_smtp *s);
void smtp_tls_drop(struct sl_smtp *s);

#endif
