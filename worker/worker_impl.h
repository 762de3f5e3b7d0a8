/*
 * worker_impl.h - what the files of a worker share: its process state, the
 * settings of one destination, the open connection, the parts of a job.
 * Private to worker/.
 */
#ifndef SL_WORKER_IMPL_H
#define SL_WORKER_IMPL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "cluster/sl_cluster.h"
#include "config/sl_dest.h"
#include "config/sl_throttle.h"
#include "dlog/sl_dlog.h"
#include "dns/sl_dns.h"
#include "shm/sl_shm.h"
#include "smtp/sl_smtp.h"
#include "spool/sl_spool.h"
#include "tls/sl_tls_policy.h"
#include "worker/sl_worker.h"

/* The connection a worker holds, with the counters it reserved for it. */
struct sl_conn {
    bool open;
    bool kept; /* closed, r still held for the next connection of its destination */
    struct sl_smtp s;
    struct sl_resv r;
    char binding[128];
    char domain[SL_DOMAIN_MAX + 1];
    char mx[256];
    char ip[64];
    struct sockaddr_storage peer; /* the address connected to */
    socklen_t peerlen;
    unsigned deliveries; /* successful deliveries on it */
    unsigned rcpts;      /* RCPT commands sent on it */
    unsigned txns;       /* transactions started on it */
    uint64_t txn_us;     /* how long one of its transactions takes (a running mean), 0 unknown */
    long idle_ms;        /* idle_timeout of its destination */
    bool sole_host;      /* its host is its destination's only one (as a route's): the master
                          * may learn that host's counter from it (a yield's "y<slot>") */
    struct sl_tls_log tls;
};

/* The rate throttles of one scope a worker draws tokens from (worker/throttle.c), resolved
 * once for the connection's binding x domain or binding x MX host and kept while it stays
 * the same: memo[kind] with its bucket's slot. */
struct sl_throttle_scope {
    char binding[128];
    char name[256]; /* the domain, or the MX host */
    bool set;       /* binding and name are those of memo */
    struct sl_throttle_memo memo[2];
};

/* A worker process's state, made once after fork. */
struct sl_wstate {
    int fd; /* the master's socketpair */
    uint32_t owner;
    const struct sl_worker_ctx *ctx;
    sigset_t wait_mask;
    volatile sig_atomic_t *stop;
    volatile sig_atomic_t *alarmed;
    struct sl_dns *dns; /* opened on first use */
    struct sl_dns_cache *dns_cache;
    int dlog; /* the delivery log, -1 when it cannot be opened */
    char hostname[256];
    struct sl_conn conn;
    struct sl_dest dest; /* the last destination's settings (deliver.c dest_for) */
    bool have_dest;
    struct sl_tls_env tls; /* TLS context and policy memory, made on first use */
    char lat_binding[128]; /* the binding whose latency entry is lat (sl_worker_lat) */
    int lat;
    struct sl_redis *redis; /* the cluster's Redis (worker/lease.c), opened on first use */
    char lease_note[96];    /* why the last lease was refused, for the log */
    struct sl_throttle_scope thr_general, thr_host; /* worker/throttle.c */
};

/* What one part of a job needs while it is delivered. */
struct sl_part {
    char id[SL_SPOOL_ID_LEN + 1];
    unsigned k;
    uint32_t attempts_floor; /* the master's count of attempts, when the spool's may be older */
    uint32_t crashes_floor;  /* the master's count of crashed jobs it was in ("!N" in the job) */
    bool fresh;              /* the master knows no state file exists ("+" in the job) */
    bool loaded;             /* msg and st are valid */
    bool attempted;          /* a recipient got an outcome in this attempt */
    struct sl_spool_msg msg;
    struct sl_spool_state st;
    size_t *bounced;     /* recipients bounced in this attempt (for the DSN) */
    char **bounce_reply; /* their replies */
    bool *bounce_local;  /* that reply is sluice's own, not a peer's (the DSN's Diagnostic-Code) */
    size_t nbounced;
    size_t *relayed;    /* delivered in this attempt to a peer without DSN, asking NOTIFY=SUCCESS */
    char **relay_reply; /* the peer's replies to them */
    size_t nrelayed;
    char mx[256];     /* the host that answered, for the DSN */
    char outcome[40]; /* d, f<time>:<attempts>, w, y<slot>, r or x: what the master is told */
};

/* worker/reserve.c: take every counter for a connection to mx; the reserve
 * counter stands in for the server counter when this binding x domain has no
 * open connection.  false with *why when a counter refused (nothing held) or
 * the set could not be built (why->kind == SL_SCOPE_NONE, err says why). */
bool sl_worker_reserve(struct sl_wstate *w, const char *binding, const char *domain, const char *mx,
                       struct sl_resv *r, struct sl_refusal *why, char *err, size_t errlen);
/* worker/reserve.c: move the held r to binding -> domain via mx (a connection carrying a
 * sibling domain's mail over the same mx; a spent connection's kept units going to the next
 * one's host); false (r untouched) when a counter refused or the units cannot move, with the
 * reason in err. */
bool sl_worker_reserve_move(struct sl_wstate *w, const char *binding, const char *domain,
                            const char *mx, struct sl_resv *r, struct sl_refusal *why, char *err,
                            size_t errlen);
/* worker/reserve.c: give back what sl_worker_reserve took (leases first, then the local
 * counters); idempotent. */
void sl_worker_release(struct sl_wstate *w, struct sl_resv *r);

/* worker/lease.c: the cluster leases of the held r (after its local counters), all or none:
 * false with *why (the cluster counter) when one was refused, nothing leased then; give
 * them back; may the open connection start another transaction (its leases still good);
 * do two reservations name the same cluster counters. */
bool sl_worker_lease_acquire(struct sl_wstate *w, const struct sl_resv *r, struct sl_refusal *why);
void sl_worker_lease_release(struct sl_wstate *w, const struct sl_resv *r);
bool sl_worker_lease_valid(struct sl_wstate *w);
/* Does the open connection hold cluster leases? */
bool sl_worker_lease_held(struct sl_wstate *w);
/* How long the open connection's cluster leases stay good (µs); UINT64_MAX when it holds
 * none, or ones the share decides (granted while Redis was unreachable). */
uint64_t sl_worker_lease_left_us(struct sl_wstate *w);
bool sl_worker_lease_host_scoped(const struct sl_shm *shm, const struct sl_refusal *why);
bool sl_worker_lease_same(const struct sl_shm *shm, const struct sl_resv *r,
                          const struct sl_resv *want);

/* "kind key" of a counter slot, for logs. */
void sl_worker_scope_name(const struct sl_shm *shm, uint32_t slot, char *buf, size_t len);
/* Append " (action N: max_outbound_connections = C)" when a shaping action's cap refused. */
void sl_worker_action_note(const struct sl_refusal *why, char *buf, size_t len);

/* worker/connect.c: how opening a connection ended. */
enum sl_open_result {
    SL_OPEN_OK,
    SL_OPEN_WAIT,   /* a counter was full for every host: wait for a slot */
    SL_OPEN_DEFER,  /* temporary failure (DNS, every address failed) */
    SL_OPEN_BOUNCE, /* permanent: null MX, no such domain, 5xx greeting */
};
struct sl_open_info {
    const char *phase; /* where it failed: "dns", "limits" or a session phase */
    char reply[SL_SMTP_TEXT_MAX];
    char mx[256];
    char ip[64];
    struct sl_refusal why; /* SL_OPEN_WAIT */
    char scope[300];       /* SL_OPEN_WAIT: the refusing counter, "kind key" */
    bool sole_host;        /* the destination has one MX host (a route: one) */
    struct sl_tls_log tls; /* the last session tried */
};
/* worker/throttle.c: one token of the rate throttle of kind (with wait, one due within a
 * second is reserved and waited for: the pace is kept in the worker) for
 * binding x domain and binding x mx (mx may be NULL); false with the refusal in info (phase
 * "limits", the bucket in why and scope), *host_only when only mx's bucket refused. */
bool sl_worker_throttle(struct sl_wstate *w, enum sl_throttle_kind kind, bool wait,
                        const char *binding, const char *domain, const char *mx,
                        struct sl_open_info *info, bool *host_only);
/* worker/throttle.c: is MX host mx suspended for binding x domain (sluicectl suspend --host, a
 * rule's action that names a host)?  True with why in buf. */
bool sl_worker_host_suspended(struct sl_wstate *w, const char *binding, const char *domain,
                              const char *mx, char *buf, size_t len);
/* Resolve, reserve and connect for d; on SL_OPEN_OK w->conn is open (with the units
 * sl_conn_close_kept kept, if any), otherwise those kept units are given back. */
enum sl_open_result sl_conn_open(struct sl_wstate *w, const struct sl_dest *d,
                                 struct sl_open_info *info);
/* The open connection (to another domain of d's binding) carries d's mail from now on, when
 * d's MX hosts include its host at its address, its TLS meets d's policy for that host, and
 * d's counters can be taken in place of the old domain's (host, binding and server counters
 * stay).  false, the connection untouched, otherwise. */
bool sl_conn_migrate(struct sl_wstate *w, const struct sl_dest *d);
/* QUIT (or just close when failed), then release the counters (those sl_conn_close_kept kept,
 * when no session is open). */
void sl_conn_close(struct sl_wstate *w, bool polite);
/* QUIT a spent session and keep its counters for the next connection of the same destination,
 * which sl_conn_open opens next (and gives them back if it cannot); a plain sl_conn_close
 * where a new take would check more (an action cap, a reload, a cluster lease). */
void sl_conn_close_kept(struct sl_wstate *w);

/* worker/worker.c: the latency histograms' entry of binding (shm/latency.c), kept for the
 * last binding asked. */
int sl_worker_lat(struct sl_wstate *w, const char *binding);

/* worker/probe.c: a name from a job: printable, without spaces, not empty. */
bool sl_worker_plain_word(const char *s);

/* worker/probe.c: run one probe job ("J<id> P ...", sl_control.h) and answer it: the
 * counters and cluster leases a delivery would take, held in ppoll with w->wait_mask until
 * the hold ends, the master speaks or *w->stop. */
void sl_worker_probe(struct sl_wstate *w, const char *job);

/* worker/deliver.c: run one delivery job ("J<job> D ..."). */
void sl_worker_deliver(struct sl_wstate *w, const char *job);
/* Close the connection when a per-connection limit (max_deliveries_per_connection, ...) of
 * the last job's destination has spent it. */
void sl_worker_close_spent(struct sl_wstate *w);

/* worker/outcome.c: record what happened to the recipients of one part. */
enum sl_rcpt_result {
    SL_RES_NONE = 0,
    SL_RES_DELIVERED,
    SL_RES_DEFERRED,
    SL_RES_BOUNCED,
    SL_RES_HELD,    /* logged only: not attempted, a counter was full (the part waits for a slot) */
    SL_RES_DELETED, /* logged only: the operator deleted it (sluicectl delete), no report */
};
struct sl_attempt {
    const struct sl_dest *d;
    const char *mx; /* NULL before a host was chosen */
    const char *ip;
    const char *phase; /* NULL when none */
    bool local;        /* the reply is sluice's own in a session's phase (a SIZE it checked) */
    const char *scope; /* a refusal's counter, or NULL */
    const struct sl_refusal *why;
    const struct sl_tls_log *tls; /* NULL when no session was tried */
    uint32_t rcptmax, mailmax;    /* the session's LIMITS (RFC 9422); 0: none */
};
/* The indexes of p's recipients still pending, into idx (msg.nrcpt of room); their count. */
size_t sl_part_pending(const struct sl_part *p, size_t *idx);
/* Load queue/ID and part k's state into p; false when it cannot be, with p->outcome "x"
 * (gone, or damaged and set aside) or "r" (a transient failure). */
bool sl_part_load(struct sl_wstate *w, struct sl_part *p);
void sl_part_free(struct sl_part *p);
/* queue/ID could not be read (errno e, err says why): p->outcome says what to tell the master;
 * a damaged file is set aside. */
void sl_part_unreadable(struct sl_wstate *w, struct sl_part *p, int e, const char *err);
/* Recipient i (index in the whole message) of p ends this attempt with res. */
void sl_outcome_set(struct sl_part *p, size_t i, enum sl_rcpt_result res, const char *reply,
                    const struct sl_attempt *a);
/* One delivery-log line for recipients idx[0..n) of p. */
void sl_outcome_log(struct sl_wstate *w, const struct sl_part *p, const size_t *idx, size_t n,
                    enum sl_rcpt_result res, const char *reply, const struct sl_attempt *a);
/* Recipients idx[0..n) of p end this attempt with res, in one log line. */
void sl_outcome_some(struct sl_wstate *w, struct sl_part *p, const size_t *idx, size_t n,
                     enum sl_rcpt_result res, const char *reply, const struct sl_attempt *a);
/* Every pending recipient of p gets res (a failure before any transaction), logged. */
void sl_outcome_all(struct sl_wstate *w, struct sl_part *p, enum sl_rcpt_result res,
                    const char *reply, const struct sl_attempt *a);
/* p is sent in several transactions and one of them delivered: the recipients delivered so
 * far, on disk before the next body goes. */
void sl_outcome_checkpoint(struct sl_wstate *w, struct sl_part *p);
/* The attempt on p is over: bounce what expired, queue the bounce message,
 * write the state (or remove the message) and set p->outcome. */
void sl_outcome_finish(struct sl_wstate *w, struct sl_part *p, const struct sl_dest *d);
/* A suspect past message_expiration or max_retries (a crash counts as an attempt) is bounced
 * without another try; true when it was. */
bool sl_outcome_suspect_over(struct sl_wstate *w, struct sl_part *p, const struct sl_dest *d);
/* worker/replies.c: tell the master a failure reply of attempt a ("T ...", sl_worker.h) for
 * the [shaping] rules (nothing when the config has none). */
void sl_worker_tell_reply(struct sl_wstate *w, const struct sl_attempt *a, const char *reply);
/* Is reply, of attempt a, one sluice made up (a timeout, DNS, its own limits) rather than the
 * receiver's? */
bool sl_reply_local(const char *reply, const struct sl_attempt *a);
/* Tell the master (over the worker's socket) about a message it should queue. */
void sl_worker_tell_new(struct sl_wstate *w, const char *id);

/* worker/dsn.c: queue an RFC 3464 report to the sender of p's message for the
 * recipients bounced in this attempt; the new id goes to id; -1 (logged) on error. */
/* worker/unsaved.c: states a full disk kept from being saved, saved again later */
void sl_unsaved_keep(const struct sl_part *p);
bool sl_unsaved_pending(void);
void sl_unsaved_retry(struct sl_wstate *w);

/* Queue the report of p's bounces, or with relayed of its recipients relayed to a peer
 * without DSN, its id into id; -1 (logged, errno the write's) when it could not be written. */
int sl_dsn_queue(struct sl_wstate *w, const struct sl_part *p, bool relayed, char *id);
/* Is a report owed for p's bounces: some bounced, p is not itself a report, it has a sender,
 * and a bounced recipient wants failures reported (RFC 3461 NOTIFY)? */
bool sl_dsn_due(const struct sl_part *p);
/* Does recipient r want its failure reported (no NOTIFY, or one naming FAILURE)? */
bool sl_dsn_wants_failure(const struct sl_spool_rcpt *r);
/* worker/outcome.c: recipient i of p was delivered with reply over a session whose peer does
 * not offer DSN: when it asked NOTIFY=SUCCESS, it is owed a "relayed" report (RFC 3461 4.1) */
void sl_outcome_relayed(struct sl_part *p, size_t i, const char *reply);

/* worker/dsn_params.c: RFC 3461 parameters for the next hop, each with its leading space, in
 * a new string (NULL when there are none): " RET= ENVID=" of MAIL, " NOTIFY= ORCPT=" of
 * RCPT. */
char *sl_dsn_mail_params(const struct sl_spool_msg *m);
char *sl_dsn_rcpt_params(const struct sl_spool_rcpt *r);

#endif
