/*
 * sl_smtp.h - the SMTP client of a worker: one blocking session at a time.
 *
 * Every phase runs under its own timer (setitimer, so sub-second settings
 * work): the phase arms it at its first wait (a phase whose reply is already
 * buffered needs no timer), the SIGALRM handler only sets *alarmed, and the
 * one place the session waits (ppoll with the worker's wait mask, the only
 * window where SIGALRM is unblocked) turns the interruption into a timeout of
 * that phase.  Other signals (SIGTERM) do not end a session: it finishes or
 * times out.  Replies are read with bounded memory: a line longer than
 * SL_SMTP_LINE_MAX, more than SL_SMTP_LINES_MAX lines in one reply, or a code
 * outside 200-599 ends the session as a protocol error.
 */
#ifndef SL_SMTP_H
#define SL_SMTP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "smtp/sl_tls.h"

#define SL_SMTP_LINE_MAX  2048 /* RFC 5321 4.5.3.1.5 says 512; peers send more */
#define SL_SMTP_LINES_MAX 128  /* lines in one multi-line reply */
#define SL_SMTP_TEXT_MAX  512  /* reply text kept (lines joined by a space, truncated) */

enum sl_phase {
    SL_PH_NONE = 0,
    SL_PH_CONNECT,
    SL_PH_GREETING,
    SL_PH_TLS,
    SL_PH_EHLO,
    SL_PH_MAIL_FROM,
    SL_PH_RCPT_TO,
    SL_PH_DATA,
    SL_PH_RSET,
    SL_PH_QUIT,
    SL_PH__COUNT
};
/* "connect", "greeting", "tls", "ehlo", "mail_from", "rcpt_to", "data", "rset", "quit" */
const char *sl_phase_name(enum sl_phase ph);

/* One reply: code 0 when none was received. */
struct sl_reply {
    int code;
    char enhanced[16];           /* "5.1.1", or "" */
    char text[SL_SMTP_TEXT_MAX]; /* "550 5.1.1 no such user" (code included) */
};

/* How the session ended when a call returns -1. */
enum sl_smtp_fail {
    SL_SMTP_FAIL_NONE = 0,
    SL_SMTP_FAIL_TIMEOUT, /* the phase's timer fired */
    SL_SMTP_FAIL_IO,      /* connect refused, reset, closed by the peer */
    SL_SMTP_FAIL_PROTO,   /* garbage, an overlong line or reply, a code out of range */
    SL_SMTP_FAIL_REPLY,   /* the peer answered greeting/EHLO/HELO with an error (see reply) */
    SL_SMTP_FAIL_TLS,     /* the TLS need was not met: no STARTTLS offered, STARTTLS refused,
                             handshake failed, certificate not verified (phase SL_PH_TLS) */
};

struct sl_smtp_timeouts {
    long ms[SL_PH__COUNT]; /* per phase; 0: the semantics.md default; QUIT at most 2 s */
};

/* The worker's signal arrangement the session relies on. */
struct sl_smtp_env {
    const sigset_t *wait_mask;      /* unblocks SIGALRM (and SIGTERM) inside ppoll */
    volatile sig_atomic_t *alarmed; /* set by the SIGALRM handler */
};

struct sl_smtp {
    int fd; /* -1 when closed */
    struct sl_smtp_env env;
    struct sl_smtp_timeouts to;
    /* what EHLO offered */
    bool esmtp, pipelining, size, starttls, enhanced, eightbit;
    bool smtputf8;     /* RFC 6531 */
    bool chunking;     /* RFC 3030 BDAT */
    bool dsn;          /* RFC 3461: the DSN parameters of a transaction go on */
    uint64_t size_max; /* 0: no limit announced */
    /* RFC 9422 LIMITS: most recipients per transaction, transactions per session; 0: none */
    uint32_t rcptmax, mailmax;
    /* the last failure */
    enum sl_smtp_fail fail;
    enum sl_phase phase;
    char err[256];
    /* input buffer */
    char *rbuf;
    size_t rlen, roff, rcap;
    /* the phase timer (ITIMER_REAL) is running; timer_ms is the running phase's time;
     * timer_due: the running phase has not waited yet, its timer is armed at its first wait */
    bool timer_armed, timer_due;
    long timer_ms;
    /* the caller's choice, set after sl_smtp_open (which clears it): with CHUNKING and
     * PIPELINING offered, transactions go as BDAT, a run of them per round trip */
    bool bdat;
    /* a BDAT run's write failing keeps the socket (keep_on_fail) so the replies that already
     * arrived can still be read (salvage: no waiting); the first failure is what is reported */
    bool keep_on_fail, salvage;
    /* a MAIL was accepted and its transaction not ended: the next
     * sl_smtp_send sends RSET first */
    bool txn_open;
    /* TLS: the OpenSSL session (SSL *) once STARTTLS succeeded, else NULL; every read
     * and write goes through it then */
    void *ssl;
    struct sl_tls_info tls;
    /* how long sl_smtp_open took: connect, greeting and EHLO; STARTTLS, the handshake and
     * EHLO again (0 without TLS) */
    uint64_t connect_us, tls_us;
};

/* Connect from src (NULL: any) to dst, read the greeting, EHLO (HELO when
 * EHLO is refused), then STARTTLS and EHLO again as tls says (NULL: no TLS).
 * 0 on success (s->tls tells what TLS came to); -1 with s->fail/phase/err and,
 * when the peer answered, *r.  On failure the socket is closed.  A need above
 * SL_TLS_NEED_TRY that is not met fails with SL_SMTP_FAIL_TLS before any
 * MAIL FROM; under SL_TLS_NEED_TRY a failed handshake fails the same way (the
 * caller retries once in clear) while a missing or refused STARTTLS goes on in
 * clear. */
int sl_smtp_open(struct sl_smtp *s, const struct sl_smtp_env *env,
                 const struct sl_smtp_timeouts *to, const struct sockaddr *src, socklen_t srclen,
                 const struct sockaddr *dst, socklen_t dstlen, const char *helo_name,
                 const struct sl_tls_params *tls, struct sl_reply *r);

/* One mail transaction. */
struct sl_smtp_txn {
    bool rset;          /* send RSET first (in the same pipelined group when offered) */
    const char *sender; /* "" for the null sender */
    uint64_t size;      /* SIZE= when the peer offers SIZE */
    bool smtputf8;      /* the SMTPUTF8 parameter (RFC 6531): the caller checked the offer */
    bool body8bit;      /* the body has 8-bit octets: BODY=8BITMIME when the peer offers it */
    /* RFC 3461 parameters, each with its leading space, sent when the peer offers DSN: for
     * MAIL (" RET=HDRS ENVID=x"), or NULL; per recipient (" NOTIFY=.. ORCPT=.."), or NULL
     * for none at all; a text over SMTP_DSN_MAIL_MAX / SMTP_DSN_RCPT_MAX bytes, or with a
     * control character, is not sent */
    const char *mail_dsn;
    const char *const *rcpt_dsn;
    const char *const *rcpt;
    size_t nrcpt;
    const char *body; /* dot-stuffed, CRLF line ends, ending in CRLF, without "." */
    size_t len;
    /* replies, filled in by sl_smtp_send */
    struct sl_reply mail;
    struct sl_reply *rcpt_reply; /* nrcpt of them, caller's array */
    struct sl_reply rset_reply;  /* when rset was asked */
    struct sl_reply data;        /* DATA's reply when not 354, else the final one */
};
/* MAIL, RCPT..., DATA, body, "." (pipelined when offered).  0 when the session
 * can carry another transaction (whatever the replies said); -1 when it is
 * dead (s->fail, s->phase, s->err), with the replies read so far in t. */
int sl_smtp_send(struct sl_smtp *s, struct sl_smtp_txn *t);
/* Told, in order, that transaction i of a sl_smtp_send_many call is over (its
 * replies are final), so the caller can make its outcome durable: with DATA
 * before anything of a later message's body goes out (the peer holds at most
 * one accepted message not yet recorded); with BDAT as each reply of a run is
 * read (at most a run).  It must not use the session. */
typedef void sl_smtp_txn_over(void *arg, size_t i);
/* Transactions t[0..n) in order, as n calls of sl_smtp_send would, but with
 * PIPELINING each body goes out in one write with the next transaction's
 * commands (RFC 2920 3.1: message content may lead a group): one round trip
 * per message; with CHUNKING offered and s->bdat set, runs of them as BDAT,
 * one round trip per run (smtp_chunk.c).  over (may be NULL) is called for each transaction that
 * ends while the session lives (with BDAT also for those whose replies had all arrived when
 * a run's write failed).  0 when the session can carry more; -1 when it died (s->fail,
 * s->phase, s->err): the transactions not told over have the replies read until then, the others
 * code 0 (all 0: not carried). */
int sl_smtp_send_many(struct sl_smtp *s, struct sl_smtp_txn *t, size_t n, sl_smtp_txn_over *over,
                      void *arg);
/* RSET under rset_timeout; -1 when the session is dead. */
int sl_smtp_rset(struct sl_smtp *s);
/* Is the idle connection still usable (the peer has not closed it or sent a
 * 421)?  Does not wait.  Any byte the peer sent unasked counts as not usable:
 * the session would be out of step. */
bool sl_smtp_alive(struct sl_smtp *s);
/* QUIT (short timeout, reply not awaited beyond it) and close. */
void sl_smtp_quit(struct sl_smtp *s);
/* Close without QUIT (after a failure).  Idempotent: every call that returns
 * -1 has already closed the socket (fail/phase/err stay for the log). */
void sl_smtp_close(struct sl_smtp *s);

#endif
