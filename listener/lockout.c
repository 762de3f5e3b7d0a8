/*
 * lockout.c - failed AUTH counted by client address across every listener
 * process: after max_auth_failures within auth_failure_window (counted from
 * the first check of the window), each AUTH from that address gets 454 until
 * the window is over, without a password check.
 *
 * A password guesser so gets a few tries per window however many sessions
 * and processes it spreads them over (max_errors bounds one session only),
 * and its tries while locked out cost no Argon2 verification: the hash is
 * slow on purpose, so unchecked guesses would also spend the listeners' CPU.
 * A password check is counted as it starts, in the same locked step as the
 * lockout check, so sessions verifying at once cannot pass it together; a
 * check that succeeds is given back.  Nothing else counts: a session waiting
 * at a prompt holds no count, so it cannot lock out its neighbours.  A
 * success neither counts nor clears: one valid account must not reset the
 * count for guesses at the others.  IPv6 clients are counted by /64, the
 * block one host is given.  An address is counted once per window length:
 * listeners with the same auth_failure_window share its count (each judges it
 * by its own max), one with another window counts on its own, so no
 * listener's window restarts or stretches another's.
 * One shared mapping made by the master before the first fork (kept across
 * reloads), behind a process-shared robust mutex: a process killed while it
 * holds the lock leaves the next taker EOWNERDEAD, which marks it consistent
 * and goes on (an update is a few stores; one cut short miscounts one
 * address at worst).  A process killed during a check (an Argon2 hash, tens
 * of milliseconds) leaves that check counted as a failure.  A holder stopped
 * from outside costs an AUTH up to a second at the check (and one more at
 * the give-back if it got the first), then they are skipped: AUTH is not
 * limited meanwhile, and a warning says so once a minute per process.  Only
 * AUTH takes the lock, never the mail path.  When the table is full, the
 * entry whose window began longest ago gives way.  The master lists the
 * entries and forgets one for `sluicectl lockouts` and `unlock` with a
 * trylock: it never waits for a listener process.
 * Concurrency: every listener process; the mutex.
 * Trust boundary: none; the mapping is ours.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <bsd/string.h>

#include "util/sl_clock.h"
#include "util/sl_msg.h"
#include "smtpd_impl.h"

#define LOCKOUT_SLOTS SL_SMTPD_LOCKOUT_SLOTS /* addresses with recent failures remembered */
#define LOCK_WAIT_S   1                      /* the longest an AUTH waits for the table */

struct entry {
    uint64_t key[2];    /* the client's address (smtpd_peer_key), IPv6 cut to its /64 */
    uint64_t since_ms;  /* the first check of its window (CLOCK_MONOTONIC) */
    uint64_t window_ms; /* the window it is counted under (part of the key) */
    uint32_t failures;  /* checks counted, the ones in progress too; 0: the entry is free */
    uint32_t told;      /* the listeners that logged its lockout (bit: index mod 32) */
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
    static uint64_t warned_us; /* this process's last warning: one a minute at most */
    struct timespec until;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &until); /* a step of the wall clock changes nothing */
    until.tv_sec += LOCK_WAIT_S;
    rc = pthread_mutex_clocklock(&t->lock, CLOCK_MONOTONIC, &until);
    if (rc == 0)
        return true;
    if (rc == EOWNERDEAD) { /* its holder died: the entries are whole enough to go on */
        if (pthread_mutex_consistent(&t->lock) == 0)
            return true;
        pthread_mutex_unlock(&t->lock);
        rc = ENOTRECOVERABLE;
    }
    if (warned_us == 0 || sl_clock_us() - warned_us >= 60u * 1000 * 1000) {
        sl_msg_warn("listener AUTH lockout table: %s; AUTH is not limited by address meanwhile",
                    rc == ETIMEDOUT         ? "its lock is held too long"
                    : rc == ENOTRECOVERABLE ? "its lock cannot be recovered"
                                            : strerror(rc));
        warned_us = sl_clock_us();
    }
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

/* is - entry e counts key under window_ms */
static bool is(const struct entry *e, const uint64_t key[2], uint64_t window_ms)
{
    return e->failures > 0 && e->key[0] == key[0] && e->key[1] == key[1] &&
           e->window_ms == window_ms;
}

/* find - the entry of key under window_ms, or NULL */
static struct entry *find(struct sl_smtpd_lockout *t, const uint64_t key[2], uint64_t window_ms)
{
    for (size_t i = 0; i < LOCKOUT_SLOTS; i++)
        if (is(&t->e[i], key, window_ms))
            return &t->e[i];
    return NULL;
}

/* room - an entry for a new count: a free or spent one, else the oldest */
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

/* smtpd_lockout_try - count one attempt of the peer, unless it is locked out; *a says which
 * count to give back if the attempt is not a failure */
enum smtpd_lockout smtpd_lockout_try(struct sl_smtpd_lockout *t,
                                     const struct sockaddr_storage *peer, unsigned max,
                                     uint64_t window_ms, unsigned listener, struct smtpd_attempt *a)
{
    uint32_t teller = 1u << (listener % 32);
    enum smtpd_lockout answer = SMTPD_LOCKOUT_OPEN;
    uint64_t key[2], now;
    struct entry *e;

    a->slot = -1; /* nothing counted */
    a->failures = 0;
    if (t == NULL || max == 0 || !take(t))
        return SMTPD_LOCKOUT_OPEN;
    now = sl_clock_us() / 1000; /* under the lock: no window begins after it */
    key_of(peer, key);
    e = find(t, key, window_ms);
    if (e != NULL && live(e, now) && e->failures >= max) {
        answer = e->told & teller ? SMTPD_LOCKOUT_REFUSED : SMTPD_LOCKOUT_REFUSED_FIRST;
        a->failures = e->failures;
        e->told |= teller;
    } else {
        if (e != NULL && live(e, now))
            e->failures += e->failures < UINT32_MAX;
        else {
            e = e != NULL ? e : room(t, now);
            *e = (struct entry){
                .key = {key[0], key[1]}, .since_ms = now, .window_ms = window_ms, .failures = 1};
        }
        a->slot = (int)(e - t->e);
        a->since_ms = e->since_ms;
        a->failures = e->failures;
    }
    pthread_mutex_unlock(&t->lock);
    return answer;
}

/* smtpd_lockout_undo - the attempt a counted was not a failure: its count given back, when its
 * window is still the one it was counted in */
void smtpd_lockout_undo(struct sl_smtpd_lockout *t, const struct sockaddr_storage *peer,
                        uint64_t window_ms, const struct smtpd_attempt *a)
{
    uint64_t key[2];
    struct entry *e;

    if (t == NULL || a->slot < 0 || a->slot >= LOCKOUT_SLOTS || !take(t))
        return;
    key_of(peer, key);
    e = &t->e[a->slot];
    if (is(e, key, window_ms) && e->since_ms == a->since_ms)
        e->failures--; /* is(): failures > 0 */
    pthread_mutex_unlock(&t->lock);
}

/* try_take - the lock if it is free now: the master never waits for a listener process */
static bool try_take(struct sl_smtpd_lockout *t)
{
    int rc = pthread_mutex_trylock(&t->lock);

    if (rc == EOWNERDEAD) {
        if (pthread_mutex_consistent(&t->lock) == 0)
            return true;
        pthread_mutex_unlock(&t->lock);
    }
    return rc == 0;
}

/* key_text - a key as the operator writes it: a.b.c.d, or the IPv6 /64 */
static void key_text(const uint64_t key[2], char *out, size_t len)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t a[16];

    memcpy(a, key, 16);
    if (memcmp(a, mapped, sizeof mapped) == 0) {
        inet_ntop(AF_INET, a + 12, out, (socklen_t)len);
        return;
    }
    inet_ntop(AF_INET6, a, out, (socklen_t)len);
    strlcat(out, "/64", len);
}

/* sl_smtpd_lockout_page - live entries from *from on, a line each while they fit */
bool sl_smtpd_lockout_page(struct sl_smtpd_lockout *t, size_t *from, char *out, size_t len)
{
    uint64_t now;
    size_t used = 0, i;

    out[0] = '\0';
    if (t == NULL) {
        *from = LOCKOUT_SLOTS;
        return true;
    }
    if (!try_take(t))
        return false;
    now = sl_clock_us() / 1000;
    for (i = *from; i < LOCKOUT_SLOTS; i++) {
        const struct entry *e = &t->e[i];
        char addr[INET6_ADDRSTRLEN + 4], line[128];
        int n;
        if (!live(e, now))
            continue;
        key_text(e->key, addr, sizeof addr);
        n = snprintf(line, sizeof line, "%s %" PRIu32 " %" PRIu64 " %" PRIu64 "\n", addr,
                     e->failures, age(e, now), e->window_ms);
        if (n < 0 || used + (size_t)n >= len)
            break;
        memcpy(out + used, line, (size_t)n + 1);
        used += (size_t)n;
    }
    pthread_mutex_unlock(&t->lock);
    *from = i;
    return true;
}

/* sl_smtpd_lockout_forget - every count of peer's key forgotten */
enum sl_smtpd_forget sl_smtpd_lockout_forget(struct sl_smtpd_lockout *t,
                                             const struct sockaddr_storage *peer, uint32_t *had)
{
    uint64_t key[2], now;

    *had = 0;
    if (t == NULL)
        return SL_SMTPD_NONE_COUNTED;
    if (!try_take(t))
        return SL_SMTPD_TABLE_BUSY;
    key_of(peer, key);
    now = sl_clock_us() / 1000;
    for (size_t i = 0; i < LOCKOUT_SLOTS; i++) {
        struct entry *e = &t->e[i];
        if (is(e, key, e->window_ms) && live(e, now)) {
            *had += e->failures; /* each check is counted in one window only */
            e->failures = 0;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return *had > 0 ? SL_SMTPD_FORGOTTEN : SL_SMTPD_NONE_COUNTED;
}
