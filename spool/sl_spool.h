/*
 * sl_spool.h - the durable queue on disk (architecture I4).
 *
 * Layout under spool_dir:
 *   tmp/            files being written; anything here after a crash is garbage
 *   queue/ID        one accepted message: an envelope header, a blank line, then
 *                   the body, CRLF-normalised and already dot-stuffed (so DATA is
 *                   one write of the file's tail), ending in CRLF
 *   state/ID.K      the state of part K (0-based) of message ID; absent means
 *                   "never tried": attempts 0, every recipient pending
 *   control.sock    the master's control socket (sl_control.h)
 *   sluiced.lock    the daemon's hold on the spool (sl_spool_lock.h)
 *
 * A message's recipients are grouped by destination domain (lower-cased) into
 * parts, numbered in the order of each domain's first recipient.  One part is
 * what the scheduler queues and a worker delivers; only one process touches a
 * part's state file at a time (the worker holding it as a job).  Every write
 * is write-new, fsync, rename, fsync directory.  queue/ID is removed only when
 * every part's recipients reached a final outcome.
 *
 * Envelope header (text lines, "key value", in this order; rcpt repeats):
 *   sluice-spool 1
 *   id ID
 *   arrival UNIX-SECONDS
 *   binding NAME
 *   dsn 0|1            (1: this message is a bounce; never bounce it)
 *   from ADDRESS       (empty for the null sender)
 *   size BYTES         (the body as the sender wrote it, before dot-stuffing:
 *                       what SIZE= announces)
 *   envid TEXT         (optional: RFC 3461 ENVID, decoded, printable ASCII)
 *   ret hdrs|full      (optional: RFC 3461 RET)
 *   smtputf8 1         (optional: RFC 6531, the message needs SMTPUTF8: an address of
 *                       its envelope or its header is UTF-8; only then may an address be)
 *   rcpt PART ADDRESS
 *   notify BITS        (optional, after its rcpt: RFC 3461 NOTIFY, SL_NOTIFY_* bits)
 *   orcpt TEXT         (optional, after its rcpt: RFC 3461 ORCPT "type;address", decoded)
 *   (blank line)
 * State file (text lines):
 *   attempts N
 *   next UNIX-SECONDS  (earliest next attempt)
 *   reply TEXT         (last reply or error, one line)
 *   held 1             (only while the operator holds the part: never attempted)
 *   crashes N          (only once the part was in a job whose worker died of its own doing:
 *                       N such jobs; a suspect, sent in jobs of its own)
 *   done INDEX D|B     (recipient INDEX, counted over the whole message, is
 *                       delivered or bounced; repeats)
 */
#ifndef SL_SPOOL_H
#define SL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SL_SPOOL_ID_LEN       20  /* characters of a queue id, without NUL */
#define SL_ADDR_MAX           254 /* RFC 5321 path: 256 octets with the angle brackets */
#define SL_LOCAL_MAX          64  /* RFC 5321 4.5.3.1.1 */
#define SL_DOMAIN_MAX         255 /* RFC 5321 4.5.3.1.2 */
#define SL_SPOOL_PARTS_MAX    256 /* destination domains in one message */
#define SL_SPOOL_RCPT_MAX     10000
#define SL_SPOOL_BINDING_MAX  64   /* a binding name: the longest the config allows */
#define SL_SPOOL_DSN_TEXT_MAX 500  /* an ENVID or ORCPT (RFC 3461), decoded */
#define SL_REPLY_MAX          512  /* a stored reply, truncated */
#define SL_SPOOL_CRASHES_MAX  9999 /* a state file's crashes count, at most */

/* RFC 3461 NOTIFY, as bits; 0: not given (a failure is reported, as by default). */
#define SL_NOTIFY_NEVER   1u
#define SL_NOTIFY_SUCCESS 2u
#define SL_NOTIFY_FAILURE 4u
#define SL_NOTIFY_DELAY   8u
#define SL_NOTIFY_ALL     15u

enum sl_rcpt_status { SL_RCPT_PENDING = 'P', SL_RCPT_DELIVERED = 'D', SL_RCPT_BOUNCED = 'B' };

struct sl_spool_rcpt {
    char *addr;      /* as given (the local part keeps its case) */
    uint16_t part;   /* index into domain[] */
    unsigned notify; /* SL_NOTIFY_* bits, 0: not given */
    char *orcpt;     /* RFC 3461 ORCPT ("rfc822;addr"), or NULL */
};

/* One queued message as read back from queue/ID (the envelope only). */
struct sl_spool_msg {
    char id[SL_SPOOL_ID_LEN + 1];
    int64_t arrival;
    char *binding;
    char *sender; /* "" for the null sender */
    bool dsn;
    char *envid;     /* RFC 3461 ENVID, or NULL */
    bool ret_hdrs;   /* RET=HDRS */
    bool ret_full;   /* RET=FULL */
    bool smtputf8;   /* RFC 6531: delivered only with SMTPUTF8 */
    uint64_t size;   /* SIZE= value */
    size_t body_off; /* byte offset of the stored body in the file */
    size_t nrcpt;
    struct sl_spool_rcpt *rcpt;
    size_t nparts;
    char **domain; /* one per part, lower case */
    char *body;    /* the stored body when sl_spool_read_full got it, else NULL */
    size_t body_len;
};

/* One part's delivery state (state/ID.K). */
struct sl_spool_state {
    uint32_t attempts;
    int64_t next;
    char reply[SL_REPLY_MAX];
    bool held;             /* the operator holds it: not attempted until released */
    uint32_t crashes;      /* jobs it was in whose worker died of its own doing */
    size_t nrcpt;          /* of the whole message */
    unsigned char *status; /* enum sl_rcpt_status per recipient of the message */
    bool on_disk;          /* read from its state file (false: never saved before this load) */
};

/* Group commit (group.c): writers sharing one share their syncs. */
struct sl_spool_group;
/* A group in a shared page; made before the writers fork (never freed: it lives as long as
 * the processes). */
struct sl_spool_group *sl_spool_group_new(void);
/* A writer process of the group, writing into spool dir, was reaped: the file it had in
 * tmp/ goes (never acknowledged), and its mark (which would make every later sync wait its
 * longest).  True, with its id in queued, when it had renamed a message into queue/ and
 * not yet told the master: the caller takes it up (it is whole; never acknowledged). */
bool sl_spool_group_forget(struct sl_spool_group *g, const char *dir, pid_t pid,
                           char queued[SL_SPOOL_ID_LEN + 1]);
/* Syncs the group made so far (data and directory); *files (if not NULL): the new files they
 * covered. */
uint64_t sl_spool_group_syncs(struct sl_spool_group *g, uint64_t *files);

/* What inject hands to sl_spool_write. */
struct sl_spool_new {
    const char *binding;
    const char *sender; /* "" for the null sender */
    bool dsn;
    const char *const *rcpt;
    size_t nrcpt;
    const char *body; /* RFC 5322 bytes, any of CRLF, LF or CR line ends */
    size_t len;
    uint64_t max_size; /* refuse a body larger than this (bytes after normalising); 0: no limit */
    struct sl_spool_group *group; /* NULL: queue/ synced for this message alone */
    /* RFC 3461, from an SMTP client (all optional): */
    const char *envid;
    bool ret_hdrs;
    bool ret_full;
    /* RFC 6531: the message needs SMTPUTF8 (UTF-8 addresses are refused without it) */
    bool smtputf8;
    const unsigned *notify;   /* per recipient, or NULL */
    const char *const *orcpt; /* per recipient (NULL entries allowed), or NULL */
};

/* Create tmp/, queue/ and state/ under dir (and dir, mode 0750). */
int sl_spool_init(const char *dir, char *err, size_t errlen);

/* An RFC 5321 mailbox (local@domain, or a quoted local part) within the length
 * limits, with no CR, LF, NUL, space or control character; allow_empty accepts
 * "" (the null sender).  false with the reason in err. */
bool sl_spool_valid_address(const char *addr, bool allow_empty, char *err, size_t errlen);
/* The same for a message that needs SMTPUTF8 (RFC 6531): UTF-8 is allowed too, well-formed
 * and without control characters, in a domain only as a valid IDN (IDNA2008). */
bool sl_spool_valid_address_utf8(const char *addr, bool allow_empty, char *err, size_t errlen);
/* The lower-cased domain of a valid address, into buf: a UTF-8 domain as its A-label
 * ("xn--..."), so every spelling of a domain is one part; an IPv6 literal keeps
 * its tag as "[IPv6:". */
void sl_spool_address_domain(const char *addr, char *buf, size_t len);
/* s for an error message: bytes outside printable ASCII, and backslash, as
 * \xNN; cut to fit len. */
void sl_spool_printable(const char *s, char *buf, size_t len);
/* A queue id: SL_SPOOL_ID_LEN characters of [0-9A-Za-z] (ids sort by arrival). */
bool sl_spool_id_valid(const char *id);
/* The arrival time a valid id carries: microseconds since the epoch when it was made. */
uint64_t sl_spool_id_time_us(const char *id);

/* Validate and write one message durably (tmp, fsync, rename, fsync queue/);
 * the new id goes to id (SL_SPOOL_ID_LEN + 1 bytes).  On refusal nothing is
 * left behind and err holds one line; when the disk refused, errno says why
 * (ENOSPC: full). */
int sl_spool_write(const char *dir, const struct sl_spool_new *m, char *id, char *err,
                   size_t errlen);

/* Read the envelope of queue/ID; -1 with err when missing or malformed. */
int sl_spool_read(const char *dir, const char *id, struct sl_spool_msg *out, char *err,
                  size_t errlen);
/* The same, and the stored body too when the envelope's read brought the
 * whole file (a message of up to 64 KB): sl_spool_body then needs no file. */
int sl_spool_read_full(const char *dir, const char *id, struct sl_spool_msg *out, char *err,
                       size_t errlen);
void sl_spool_msg_free(struct sl_spool_msg *m);
/* The stored body (dot-stuffed, CRLF, without the final ".") into a newly
 * allocated buffer (caller frees); -1 with err on error. */
int sl_spool_body(const char *dir, const struct sl_spool_msg *m, char **body, size_t *len,
                  char *err, size_t errlen);

/* Part K's state; a missing file gives the initial state.  nrcpt is the
 * message's recipient count.  Caller frees with sl_spool_state_free. */
int sl_spool_state_load(const char *dir, const char *id, unsigned k, size_t nrcpt,
                        struct sl_spool_state *st, char *err, size_t errlen);
/* The initial state of a part of nrcpt recipients (every one pending, never tried), without
 * looking for a file: for a reader that knows none was ever saved.  Freed with
 * sl_spool_state_free. */
void sl_spool_state_initial(struct sl_spool_state *st, size_t nrcpt);
/* Write part K's state durably (write new, fsync, rename, fsync state/). */
int sl_spool_state_save(const char *dir, const char *id, unsigned k,
                        const struct sl_spool_state *st, char *err, size_t errlen);
void sl_spool_state_free(struct sl_spool_state *st);
/* Process pid is gone (reaped): remove the state writes it left in tmp/ (each is written as
 * tmp/ID.K.PID before its rename). */
void sl_spool_state_forget(const char *dir, pid_t pid);
/* True when every recipient of part k is final in st. */
bool sl_spool_part_done(const struct sl_spool_msg *m, unsigned k, const struct sl_spool_state *st);

/* Remove a finished message: queue/ID, then its state files ID.0 .. ID.(nparts - 1).  A crash
 * between the two leaves only state files, which the master's scan removes.  nparts 0: the
 * caller knows no state file was ever written (no lookup, no directory sync). */
int sl_spool_remove(const char *dir, const char *id, size_t nparts);

/* Call fn for every id in queue/, oldest first (sluicectl queue and the commands that
 * select from it); garbage in tmp/ older than a minute and state files of
 * messages no longer queued are removed on the way.  0, or -1 when queue/
 * cannot be read. */
int sl_spool_scan(const char *dir, void (*fn)(const char *id, void *ctx), void *ctx);

/* The queue a batch of directory entries at a time (the master's periodic rescan, which must
 * not stop its loop for a whole listing): queue/'s ids in directory order, then the sweep of
 * state/, each with the checks of sl_spool_scan.  sl_spool_walk_open sweeps tmp/ and returns
 * NULL (errno) when queue/ cannot be read; each step reads up to max entries, calls fn for each
 * queued id among them, and returns false once the walk is over. */
struct sl_spool_walk;
typedef void sl_spool_walk_fn(const char *id, void *ctx);
struct sl_spool_walk *sl_spool_walk_open(const char *dir);
bool sl_spool_walk_step(struct sl_spool_walk *w, size_t max, sl_spool_walk_fn *fn, void *ctx);
void sl_spool_walk_close(struct sl_spool_walk *w);

/* The queue as two sorted id lists: every id in queue/ (oldest first), and
 * every id that has at least one state file (after the same sweep as
 * sl_spool_scan).  An id missing from `stated` had no state file at the time
 * of the listing, so a reader that knows no one has written one since may
 * skip sl_spool_state_load.  at_start: the master's start, when no worker of
 * it runs: state writes a kill cut short are swept from tmp/ whatever their
 * age.  0; 1 (errno) when state/ could not be listed whole: then `stated` is
 * empty and tells nothing, every id must have its state files looked up; -1
 * (errno) when queue/ cannot be read. */
struct sl_spool_ids {
    char (*id)[SL_SPOOL_ID_LEN + 1];
    size_t n;
};
int sl_spool_list(const char *dir, struct sl_spool_ids *queued, struct sl_spool_ids *stated,
                  bool at_start);
/* Is id in the sorted list? */
bool sl_spool_ids_has(const struct sl_spool_ids *l, const char *id);
void sl_spool_ids_free(struct sl_spool_ids *l);

/* Tell a running master that queue/ID is new ("N ID" datagram on its control
 * socket).  Best effort: with no daemon the message waits for its start. */
void sl_spool_notify(const char *dir, const char *id);

/* Damaged entries (quarantine.c): moved to spool/corrupt/ with one warning naming the file and
 * the reason, never retried and never followed.  A reader's -1 with errno EBADMSG means
 * damaged; ENOENT gone; anything else transient.  A message takes its state files along; a
 * state file goes alone (the message stays, that part as never tried).  0, or -1 (warned). */
int sl_spool_quarantine_msg(const char *dir, const char *id, const char *reason);
int sl_spool_quarantine_state(const char *dir, const char *id, unsigned k, const char *reason);
/* An entry of "queue" or "state" by name (a name that is no spool name, a FIFO...). */
int sl_spool_quarantine_entry(const char *dir, const char *sub, const char *name,
                              const char *reason);
/* fn(name, its lstat, ctx) for every entry of corrupt/ (fn may be NULL); their number. */
struct stat;
size_t sl_spool_corrupt_list(const char *dir,
                             void (*fn)(const char *name, const struct stat *st, void *ctx),
                             void *ctx);

#endif
