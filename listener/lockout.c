/*
 * lockout.c - failed AUTH counted by client address across every listener
 * process: after max_auth_failures within auth_failure_window (counted from
 * the first of them), each AUTH from that address gets 454 until the window
 * is over, without a password check.
 *
 * A password guesser so gets a few tries per window however many sessions
 * and processes it spreads them over (max_errors bounds one session only),
 * and its tries while locked out cost no Argon2 verification: the hash is
 * slow on purpose, so unchecked guesses would also spend the listeners' CPU.
 * An attempt is counted when it starts, in the same locked step as the
 * check, so sessions verifying at once cannot pass the check together; one
 * that ends other than in wrong credentials (success, cancel, bad base64, a
 * timeout) is given back.  A success neither counts nor clears: one valid
 * account must not reset the count for guesses at the others.  IPv6 clients
 * are counted by /64, the block one host is given.  Listeners with different
 * windows share an address's entry: it lasts for the longest window it was
 * counted under, and each listener judges the lock by its own max and window.
 * One shared mapping made by the master before the first fork (kept across
 * reloads), behind a process-shared robust mutex: a process killed while it
 * holds the lock leaves the next taker EOWNERDEAD, which marks it consistent
 * and goes on (an update is a few stores; one cut short miscounts one
 * address at worst); a holder stopped from outside costs each AUTH a second,
 * then the check is skipped.  Only AUTH takes the lock, never the mail path.
 * When the table is full, the entry whose window began longest ago gives way.
 * Concurrency: every listener process; the mutex.
 * Trust boundary: none; the mapping is ours.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "util/sl_clock.h"
#include "util/sl_msg.h"
#include "smtpd_impl.h"

#define LOCKOUT_SLOTS 4096 /* addresses with recent failures remembered at once */
#define LOCK_WAIT_S   1    /* the longest an AUTH waits for the table */

struct entry {
    uint64_t key[2];    /* the client's address (smtpd_peer_key), IPv6 cut to its /64 */
    uint64_t since_ms;  /* the first failure of its window (CLOCK_MONOTONIC) */
    uint64_t window_ms; /* the longest window it was counted under */
    uint32_t failures;  /* attempts counted, the ones in progress too; 0: the entry is free */
    uint32_t told;      /* its lockout was logged */
};

struct sl_smtpd_lockout {
    pthread_mutex_t lock; /* first: test_lockout.c takes it to die holding it */
    struct entry e[LOCKOUT_SLOTS];
};

/* sl_smtpd_lockout_new - the shared table, before the first listener forks */
struct sl_smtpd_lockout *sl_smtpd_lockout_new(void)
{
    pthread_mutexattr_t a;
    struct sl_smtpd_lockout *t =
        mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (t == MAP_FAILED)
        sl_msg_fatal("listener AUTH lockout table: %s", strerror(errno));
    memset(t, 0, sizeof *t);
    if (pthread_mutexattr_init(&a) != 0 ||
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) != 0 ||
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) != 0 ||
        pthread_mutex_init(&t->lock, &a) != 0)
        sl_msg_fatal("listener AUTH lockout table: cannot make its lock");
    pthread_mutexattr_destroy(&a);
    return t;
}

/* take - the table's lock within LOCK_WAIT_S; false when it cannot be had (no check then) */
static bool take(struct sl_smtpd_lockout *t)
{
    static bool warned;
    struct timespec until;
    int rc;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += LOCK_WAIT_S;
    rc = pthread_mutex_timedlock(&t->lock, &until);
    if (rc == EOWNERDEAD) { /* its holder died: the entries are whole enough to go on */
        if (pthread_mutex_consistent(&t->lock) == 0)
            return true;
        pthread_mutex_unlock(&t->lock);
    } else if (rc == 0) {
        return true;
    }
    if (!warned)
        sl_msg_warn("listener AUTH lockout table: %s; AUTH is not limited by address meanwhile",
                    rc == ETIMEDOUT ? "its lock is held too long" : strerror(rc));
    warned = true;
    return false;
}

/* key_of - the peer's key: its address, an IPv6 one cut to its /64 */
static void key_of(const struct sockaddr_storage *peer, uint64_t key[2])
{
    smtpd_peer_key(peer, key);
    if (peer->ss_family == AF_INET6 &&
        !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)peer)->sin6_addr))
        key[1] = 0;
}

/* age - how long ago e's window began (0 for one begun after now was read elsewhere) */
static uint64_t age(const struct entry *e, uint64_t now)
{
    return now > e->since_ms ? now - e->since_ms : 0;
}

/* live - entry e still counts at now */
static bool live(const struct entry *e, uint64_t now)
{
    return e->failures > 0 && age(e, now) < e->window_ms;
}

/* find - the entry of key, or NULL */
static struct entry *find(struct sl_smtpd_lockout *t, const uint64_t key[2])
{
    for (size_t i = 0; i < LOCKOUT_SLOTS; i++)
        if (t->e[i].failures > 0 && t->e[i].key[0] == key[0] && t->e[i].key[1] == key[1])
            return &t->e[i];
    return NULL;
}

/* room - an entry for a new address: a free or spent one, else the oldest */
static struct entry *room(struct sl_smtpd_lockout *t, uint64_t now)
{
    struct entry *oldest = &t->e[0];

    for (size_t i = 0; i < LOCKOUT_SLOTS; i++) {
        if (!live(&t->e[i], now))
            return &t->e[i];
        if (t->e[i].since_ms < oldest->since_ms)
            oldest = &t->e[i];
    }
    return oldest;
}

/* smtpd_lockout_try - count one attempt of the peer, unless it is locked out */
enum smtpd_lockout smtpd_lockout_try(struct sl_smtpd_lockout *t,
                                     const struct sockaddr_storage *peer, unsigned max,
                                     uint64_t window_ms)
{
    enum smtpd_lockout answer = SMTPD_LOCKOUT_OPEN;
    uint64_t key[2], now;
    struct entry *e;

    if (t == NULL || max == 0 || !take(t))
        return SMTPD_LOCKOUT_OPEN;
    now = sl_clock_us() / 1000; /* under the lock: no window begins after it */
    key_of(peer, key);
    e = find(t, key);
    if (e != NULL && live(e, now)) {
        if (e->failures >= max && age(e, now) < window_ms) {
            answer = e->told ? SMTPD_LOCKOUT_REFUSED : SMTPD_LOCKOUT_REFUSED_FIRST;
            e->told = 1;
        } else {
            e->failures += e->failures < UINT32_MAX;
            e->window_ms = window_ms > e->window_ms ? window_ms : e->window_ms;
        }
    } else {
        e = e != NULL ? e : room(t, now);
        *e = (struct entry){
            .key = {key[0], key[1]}, .since_ms = now, .window_ms = window_ms, .failures = 1};
    }
    pthread_mutex_unlock(&t->lock);
    return answer;
}

/* smtpd_lockout_undo - the attempt counted by smtpd_lockout_try was not a failure */
void smtpd_lockout_undo(struct sl_smtpd_lockout *t, const struct sockaddr_storage *peer,
                        unsigned max)
{
    uint64_t key[2];
    struct entry *e;

    if (t == NULL || max == 0 || !take(t))
        return;
    key_of(peer, key);
    if ((e = find(t, key)) != NULL)
        e->failures--; /* found: failures > 0 */
    pthread_mutex_unlock(&t->lock);
}
