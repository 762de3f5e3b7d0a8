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
 * A success clears its address.
 * One shared mapping made by the master before the first fork (kept across
 * reloads), its entries behind a process-shared robust mutex: a process
 * killed while it holds the lock leaves the next taker EOWNERDEAD, which
 * marks it consistent and goes on (an update is a few stores; one cut short
 * miscounts one address at worst).  Only AUTH takes the lock, never the
 * mail path.  When the table is full, the entry whose window began longest
 * ago gives way.
 * Concurrency: every listener process; the mutex.
 * Trust boundary: none; the mapping is ours.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "util/sl_clock.h"
#include "util/sl_msg.h"
#include "smtpd_impl.h"

#define LOCKOUT_SLOTS 4096 /* addresses with recent failures remembered at once */

struct entry {
    uint64_t key[2];   /* the client's address (smtpd_peer_key) */
    uint64_t since_ms; /* the first failure of its window (CLOCK_MONOTONIC) */
    uint32_t failures; /* 0: the entry is free */
};

struct sl_smtpd_lockout {
    pthread_mutex_t lock;
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

/* take - the table's lock; false when it cannot be had (the check is skipped then) */
static bool take(struct sl_smtpd_lockout *t)
{
    int rc = pthread_mutex_lock(&t->lock);

    if (rc == EOWNERDEAD) /* its holder died: the entries are whole enough to go on */
        return pthread_mutex_consistent(&t->lock) == 0;
    return rc == 0;
}

/* live - entry e still counts at now for a window of window_ms */
static bool live(const struct entry *e, uint64_t now, uint64_t window_ms)
{
    return e->failures > 0 && now - e->since_ms < window_ms;
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
static struct entry *room(struct sl_smtpd_lockout *t, uint64_t now, uint64_t window_ms)
{
    struct entry *oldest = &t->e[0];

    for (size_t i = 0; i < LOCKOUT_SLOTS; i++) {
        if (!live(&t->e[i], now, window_ms))
            return &t->e[i];
        if (t->e[i].since_ms < oldest->since_ms)
            oldest = &t->e[i];
    }
    return oldest;
}

/* now_ms - the monotonic clock, the same in every process */
static uint64_t now_ms(void)
{
    return sl_clock_us() / 1000;
}

/* smtpd_lockout_locked - has the peer had max failures within the window? */
bool smtpd_lockout_locked(struct sl_smtpd_lockout *t, const struct sockaddr_storage *peer,
                          unsigned max, uint64_t window_ms)
{
    uint64_t key[2], now = now_ms();
    bool locked = false;
    struct entry *e;

    if (t == NULL || max == 0 || !take(t))
        return false;
    smtpd_peer_key(peer, key);
    if ((e = find(t, key)) != NULL)
        locked = live(e, now, window_ms) && e->failures >= max;
    pthread_mutex_unlock(&t->lock);
    return locked;
}

/* smtpd_lockout_failed - one failure more for the peer (a new window when its last is over) */
void smtpd_lockout_failed(struct sl_smtpd_lockout *t, const struct sockaddr_storage *peer,
                          unsigned max, uint64_t window_ms)
{
    uint64_t key[2], now = now_ms();
    struct entry *e;

    if (t == NULL || max == 0 || !take(t))
        return;
    smtpd_peer_key(peer, key);
    if ((e = find(t, key)) == NULL || !live(e, now, window_ms)) {
        if (e == NULL)
            e = room(t, now, window_ms);
        e->key[0] = key[0];
        e->key[1] = key[1];
        e->since_ms = now;
        e->failures = 0;
    }
    if (e->failures < UINT32_MAX)
        e->failures++;
    pthread_mutex_unlock(&t->lock);
}

/* smtpd_lockout_cleared - the peer authenticated: its failures are forgotten */
void smtpd_lockout_cleared(struct sl_smtpd_lockout *t, const struct sockaddr_storage *peer)
{
    uint64_t key[2];
    struct entry *e;

    if (t == NULL || !take(t))
        return;
    smtpd_peer_key(peer, key);
    if ((e = find(t, key)) != NULL)
        e->failures = 0;
    pthread_mutex_unlock(&t->lock);
}
