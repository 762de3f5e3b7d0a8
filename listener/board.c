/*
 * board.c - which client each listener process serves, for
 * max_sessions_per_client across the processes of a listener, and which
 * processes are in a session (the master's count of sessions open, for the
 * listener statistics: counted from here, a process killed mid-session leaves
 * nothing behind once the master has reaped it).
 *
 * One shared page of entries, one per live listener process (claimed by pid
 * with a compare-and-swap once the process is set up, just before its first
 * accept; cleared by the master when it reaps that pid).  The claim doubles
 * as the process's "ready": the master looks for it when it reaps a process,
 * to tell a crash loop from a serving process killed from outside.  Entering
 * a session publishes the client's address in the process's own entry first,
 * then counts the entries of the same listener and address: two processes
 * entering at once both count each other, so the limit can refuse one too
 * many but never admit one too many.  No lock, so a process killed at any
 * point blocks nobody; the master's clean-up frees its entry.
 * Concurrency: every listener process and the master; each entry's words are
 * atomics, written by its owner (and zeroed by the master after the owner died).
 * Trust boundary: none; the page is ours.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/sl_atomic.h"
#include "util/sl_msg.h"
#include "util/sl_pid.h"
#include "smtpd_impl.h"

_Static_assert(2 * SL_LISTENER_SESSIONS_TOTAL <= SL_SMTPD_BOARD_SLOTS,
               "the listeners' processes of a reload, old and new, fit the board");

struct entry {
    sl_atomic_u32 pid;
    sl_atomic_u32 active;  /* listener index + 1 while a session runs, else 0 */
    sl_atomic_u64 addr[2]; /* the client's address, IPv4 mapped into IPv6 */
    sl_atomic_u32 open;    /* the process's statistics entry + 1 while a session runs, else 0
                            * (the master's count of sessions open, sl_smtpd_board_sessions) */
};

struct sl_smtpd_board {
    struct entry e[SL_SMTPD_BOARD_SLOTS];
};

static struct entry *mine; /* this process's entry */
static uint32_t my_stat;   /* its statistics entry + 1 (0: none), written to open */

/* sl_smtpd_board_new - the shared page, before the first listener forks */
struct sl_smtpd_board *sl_smtpd_board_new(void)
{
    void *p = mmap(NULL, sizeof(struct sl_smtpd_board), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        sl_msg_fatal("listener board: %s", strerror(errno));
    memset(p, 0, sizeof(struct sl_smtpd_board));
    return p;
}

/* sl_smtpd_board_forget - the master reaped pid: its entry is free again */
void sl_smtpd_board_forget(struct sl_smtpd_board *b, pid_t pid)
{
    for (size_t i = 0; i < SL_SMTPD_BOARD_SLOTS; i++)
        if (sl_load32(&b->e[i].pid) == (uint32_t)pid) {
            sl_store32(&b->e[i].active, 0);
            sl_store32(&b->e[i].open, 0);
            sl_store32(&b->e[i].pid, 0);
        }
}

/* sl_smtpd_board_was_ready - had pid claimed its entry (reached its accept loop)? */
bool sl_smtpd_board_was_ready(const struct sl_smtpd_board *b, pid_t pid)
{
    for (size_t i = 0; b != NULL && i < SL_SMTPD_BOARD_SLOTS; i++)
        if (sl_peek32(&b->e[i].pid) == (uint32_t)pid)
            return true;
    return false;
}

/* sl_smtpd_board_sessions - sessions open now, by statistics entry */
void sl_smtpd_board_sessions(const struct sl_smtpd_board *b, uint64_t open[SL_LSTAT_LISTENERS])
{
    memset(open, 0, SL_LSTAT_LISTENERS * sizeof *open);
    for (size_t i = 0; b != NULL && i < SL_SMTPD_BOARD_SLOTS; i++) {
        uint32_t o = sl_peek32(&b->e[i].open);
        if (o > 0 && o <= SL_LSTAT_LISTENERS && sl_peek32(&b->e[i].pid) != 0)
            open[o - 1]++;
    }
}

/* smtpd_peer_key - the client's address as 16 bytes (IPv4 mapped) */
void smtpd_peer_key(const struct sockaddr_storage *peer, uint64_t key[2])
{
    uint8_t a[16] = {0};

    if (peer->ss_family == AF_INET) {
        a[10] = a[11] = 0xff;
        memcpy(a + 12, &((const struct sockaddr_in *)peer)->sin_addr, 4);
    } else
        memcpy(a, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
    memcpy(key, a, 16);
}

/* claim - this process's entry (a free one, taken by pid); NULL when the board is full */
static struct entry *claim(struct sl_smtpd_board *b)
{
    uint32_t me = (uint32_t)sl_pid();

    for (size_t i = 0; i < SL_SMTPD_BOARD_SLOTS; i++) {
        uint32_t want = 0;
        if (sl_load32(&b->e[i].pid) == me || sl_cas32(&b->e[i].pid, &want, me))
            return &b->e[i];
    }
    return NULL;
}

/* smtpd_board_ready - take our entry: set up and about to accept (the master's "ready") */
void smtpd_board_ready(struct sl_smtpd_board *b, int stat)
{
    if (mine == NULL)
        mine = claim(b);
    my_stat = stat >= 0 && stat < SL_LSTAT_LISTENERS ? (uint32_t)stat + 1 : 0;
}

/* smtpd_board_enter - publish our client, then count it; false when over the limit */
bool smtpd_board_enter(struct sl_smtpd_board *b, size_t listener, unsigned limit,
                       const struct sockaddr_storage *peer)
{
    uint64_t key[2];
    unsigned n = 0;

    if (mine == NULL && (mine = claim(b)) == NULL)
        return true; /* cannot happen with SL_SMTPD_BOARD_SLOTS processes at most */
    if (limit == 0) {
        sl_store32(&mine->open, my_stat);
        return true;
    }
    smtpd_peer_key(peer, key);
    sl_store64(&mine->addr[0], key[0]);
    sl_store64(&mine->addr[1], key[1]);
    sl_store32(&mine->active, (uint32_t)listener + 1);
    for (size_t i = 0; i < SL_SMTPD_BOARD_SLOTS; i++)
        if (sl_load32(&b->e[i].active) == (uint32_t)listener + 1 &&
            sl_load64(&b->e[i].addr[0]) == key[0] && sl_load64(&b->e[i].addr[1]) == key[1])
            n++;
    if (n > limit) {
        sl_store32(&mine->active, 0);
        return false;
    }
    sl_store32(&mine->open, my_stat); /* only a session served counts as open */
    return true;
}

/* smtpd_board_leave - our session is over */
void smtpd_board_leave(struct sl_smtpd_board *b)
{
    (void)b;
    if (mine != NULL) {
        sl_store32(&mine->active, 0);
        sl_store32(&mine->open, 0);
    }
}
