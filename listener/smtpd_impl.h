/*
 * smtpd_impl.h - what the files of the listener process share.
 *
 * io.c owns the connection (clear or TLS), its buffers and the per-command
 * timer; session.c the protocol state; data.c the message body (DATA and
 * BDAT); message.c what is added to it and its way to the spool; auth.c the
 * credentials; tls.c the server's TLS context; board.c the per-client count.
 * Concurrency: one session per process; the only shared state is the board
 * and the spool's group page.
 * Trust boundary: every byte from the client is hostile until parsed here.
 */
#ifndef SMTPD_IMPL_H
#define SMTPD_IMPL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "listener/sl_smtpd.h"

#define IO_IN_CAP     (64 * 1024) /* a pipelined burst of commands, or a stretch of DATA */
#define IO_OUT_CAP    (16 * 1024) /* replies batched until the client must see them */
#define CMD_LINE_MAX  2048 /* without the CRLF; RFC 5321 4.5.3.1.4: 512, more with extensions */
#define TEXT_LINE_MAX 998  /* RFC 5322 2.1.1, without the CRLF */

/* How a read ended. */
enum io_result { IO_OK, IO_EOF, IO_TIMEOUT, IO_ERROR, IO_STOP, IO_TOO_LONG };

struct io {
    int fd;
    SSL *ssl; /* NULL in clear */
    char in[IO_IN_CAP];
    size_t start, end;
    char out[IO_OUT_CAP];
    size_t outlen;
    bool broken; /* a write failed: nothing more is sent */
};

/* io.c */
void io_init(struct io *io, int fd);
/* For a test harness whose reads never wait and which owns SIGALRM: no timer is ever armed. */
void smtpd_io_no_timers(void);
/* Arm the timer for the next step (a command, the body, the handshake). */
void io_deadline(long ms);
bool io_timed_out(void);
/* Was SIGTERM received (the master stops or replaces us)? */
bool io_stopping(void);
/* Queue a reply (a full line without CRLF); written at the next io_flush. */
void io_reply(struct io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Send what is queued, then end the session (nothing more is sent). */
void io_end(struct io *io);
/* Write what is queued; false when the client is gone. */
bool io_flush(struct io *io);
/* The next line (LF-terminated; CR before it stripped) into buf, NUL-terminated.  A line over
 * max is consumed whole and gives IO_TOO_LONG.  Output is flushed before any wait.  With
 * stop_ok, a SIGTERM while waiting ends the wait with IO_STOP. */
enum io_result io_line(struct io *io, char *buf, size_t max, size_t *len, bool stop_ok);
/* Up to want bytes of what is buffered or can be read now (at least 1 unless the result is
 * not IO_OK): *p points into the input buffer. */
enum io_result io_bytes(struct io *io, size_t want, const char **p, size_t *got);
/* Bytes buffered and not yet read (RFC 3207 4.2: dropped at STARTTLS). */
size_t io_pending(const struct io *io);
void io_discard(struct io *io);
/* Zero the input buffer except the bytes not read yet (after AUTH: no password left in it). */
void io_wipe_read(struct io *io);
/* Start TLS on the connection (after the 220 was flushed); false when the handshake failed. */
bool io_starttls(struct io *io, SSL_CTX *ctx, long timeout_ms);
void io_close(struct io *io);

/* tls.c: the listener's server context, or NULL with err. */
SSL_CTX *smtpd_tls_context(const struct sl_listener *l, char *err, size_t errlen);

/* auth.c: the credentials file in memory (NULL with err); check one user and password. */
struct creds *smtpd_creds_load(const char *path, char *err, size_t errlen);
bool smtpd_creds_check(const struct creds *c, const char *user, const char *pass, size_t passlen);
void smtpd_creds_free(struct creds *c);

/* One recipient and its DSN parameters (RFC 3461). */
struct rcpt {
    char *addr;
    unsigned notify; /* SL_NOTIFY_* bits of sl_spool.h; 0: not given */
    char *orcpt;     /* "rfc822;addr" as given (xtext decoded), or NULL */
};

/* The transaction in progress. */
struct txn {
    bool mail; /* MAIL accepted */
    char *sender;
    bool ret_hdrs; /* RET=HDRS */
    bool ret_set;  /* RET given: RET=FULL when not ret_hdrs */
    char *envid;   /* ENVID (xtext decoded), or NULL */
    bool body_8bit, smtputf8;
    uint64_t size_hint; /* SIZE= */
    struct rcpt *rcpt;
    size_t nrcpt;
    char **domains;  /* the recipients' distinct domains (as the spool groups them) */
    size_t ndomains; /* at most SL_SPOOL_PARTS_MAX: the spool's parts of one message */
    /* the body as received, CRLF lines, dot-unstuffed; bounded by max_message_size */
    char *body;
    size_t len, cap;
    bool bdat;        /* a BDAT sequence has begun */
    bool bad_newline; /* a bare CR or bare LF was seen */
    bool long_line;   /* a line over 998 octets */
    bool nul;         /* a NUL byte */
    bool oversize;    /* more than max_message_size */
    size_t line;      /* octets of the current line so far (BDAT scan) */
    bool cr;          /* the last byte was CR (BDAT scan) */
};

/* The session. */
struct session {
    const struct sl_smtpd_ctx *ctx;
    const struct sl_listener *l;
    struct io io;
    SSL_CTX *tls;
    const struct creds *creds;
    struct sockaddr_storage peer;
    char peer_ip[64];
    char helo[256];
    const char *hostname;
    bool esmtp, tls_on, relay_ok;
    char *auth_user;
    enum {
        AUTH_ANSWERED,    /* the answers came: a failure is the credentials' */
        AUTH_SILENT,      /* no answer to a challenge within command_timeout */
        AUTH_GONE,        /* the client left in the middle */
        AUTH_CANCELLED,   /* it answered "*" */
        AUTH_UNDECODABLE, /* an answer that is not base64 */
        AUTH_TOO_LONG,    /* an answer over the line limit */
        AUTH_LOCKED       /* the address is locked out (lockout.c): nothing was checked */
    } auth_stop;          /* how the exchange in hand ended */
    unsigned errors;
    unsigned junk; /* NOOP, VRFY and RSET since the session's start or its last message */
    uint64_t max_size;
    struct txn t;
};

/* envelope.c: the commands, MAIL and RCPT with their parameters. */
enum cmd_id {
    CMD_EHLO,
    CMD_HELO,
    CMD_STARTTLS,
    CMD_AUTH,
    CMD_MAIL,
    CMD_RCPT,
    CMD_DATA,
    CMD_BDAT,
    CMD_RSET,
    CMD_NOOP,
    CMD_VRFY,
    CMD_QUIT
};
struct smtpd_cmd {
    const char *name; /* as it starts the line ("MAIL FROM:"), matched without case */
    enum cmd_id id;
};
const struct smtpd_cmd *smtpd_cmd_find(const char *line);
/* Each handles one command and queues its reply; false ends the session. */
bool smtpd_mail(struct session *s, const char *arg);
bool smtpd_rcpt(struct session *s, const char *arg);
/* auth.c */
bool smtpd_auth(struct session *s, const char *arg);

/* session.c */
void smtpd_session(struct session *s);
void smtpd_txn_reset(struct txn *t);
/* The client was silent past a step's timeout: logged, counted, 421 queued; the session ends. */
void smtpd_timed_out(struct session *s, const char *where);
/* One error reply more; false when the session has had too many. */
bool smtpd_error(struct session *s);

/* data.c: DATA and BDAT; each ends in the final reply (message.c for the accept). */
void smtpd_data(struct session *s);
void smtpd_bdat(struct session *s, const char *args);

/* message.c: the accepted body to the spool, the reply sent; clears the transaction. */
void smtpd_accept(struct session *s);

/* One more (or n more) of what in the listener's statistics. */
static inline void smtpd_count(const struct session *s, enum sl_lstat what, uint64_t n)
{
    sl_lstat_add(s->ctx->shm, s->ctx->stat, what, n);
}

/* board.c: claim our entry once set up (ready), counted under statistics entry stat; mark the
 * client served (false: over max_sessions_per_client). */
void smtpd_board_ready(struct sl_smtpd_board *b, int stat);
bool smtpd_board_enter(struct sl_smtpd_board *b, size_t listener, unsigned limit,
                       const struct sockaddr_storage *peer);
void smtpd_board_leave(struct sl_smtpd_board *b);
/* The client's address as the board and the lockout key it: 16 bytes, IPv4 mapped. */
void smtpd_peer_key(const struct sockaddr_storage *peer, uint64_t key[2]);

/* lockout.c: failed AUTH by client address and window length, across the processes (max 0:
 * no limit).  try counts one attempt into *a, or refuses it: max counted within window_ms of
 * the first (REFUSED_FIRST once a window for each listener, by its index, for the log: with
 * other maxima, listeners sharing the window lock an address out at different counts); undo
 * gives back the attempt a counted, when it was not a failure. */
enum smtpd_lockout { SMTPD_LOCKOUT_OPEN, SMTPD_LOCKOUT_REFUSED, SMTPD_LOCKOUT_REFUSED_FIRST };
struct smtpd_attempt {
    int slot;          /* the entry counted in; -1: nothing was counted */
    uint64_t since_ms; /* its window's start, so a later window is not touched */
    uint32_t failures; /* the count after this attempt, or the one that refused it */
};
enum smtpd_lockout smtpd_lockout_try(struct sl_smtpd_lockout *t,
                                     const struct sockaddr_storage *peer, unsigned max,
                                     uint64_t window_ms, unsigned listener,
                                     struct smtpd_attempt *a);
void smtpd_lockout_undo(struct sl_smtpd_lockout *t, const struct sockaddr_storage *peer,
                        uint64_t window_ms, const struct smtpd_attempt *a);

#endif
