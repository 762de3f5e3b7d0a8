/*
 * id.c - queue ids: SL_SPOOL_ID_LEN characters of [0-9A-Za-z].
 *
 * The first ten are the arrival time in microseconds, base 62 with digits,
 * then upper, then lower case (ASCII order, so ids sort by time as strings);
 * the last ten are random (libsodium), about 59 bits, so two writers in the
 * same microsecond still differ.  Uniqueness does not rest on chance alone:
 * the writer claims the name without replacing (files.c).
 * Concurrency: any process, any thread.
 * Trust boundary: sl_spool_id_valid checks names read from directories and
 * from the control socket before they become paths.
 */
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "util/sl_msg.h"
#include "spool_impl.h"

#define TIME_CHARS 10

static const char digits62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* random_chars - n uniform characters of digits62 from one call for random bytes (each call
 * is a system call: one per character cost a listener ten per message); a byte of 248 or
 * more is skipped so that every character is as likely as any other */
static void random_chars(char *out, size_t n)
{
    unsigned char pool[64];
    size_t used = sizeof pool;

    for (size_t i = 0; i < n;) {
        if (used == sizeof pool) {
            randombytes_buf(pool, sizeof pool);
            used = 0;
        }
        unsigned char b = pool[used++];
        if (b < 248) /* 248 = 4 * 62 */
            out[i++] = digits62[b % 62];
    }
}

/* spool_new_id - time-ordered prefix, random suffix */
void spool_new_id(char id[SL_SPOOL_ID_LEN + 1])
{
    struct timespec now;
    uint64_t us;

    if (sodium_init() < 0)
        sl_msg_fatal("libsodium cannot initialise");
    clock_gettime(CLOCK_REALTIME, &now);
    us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
    for (int i = TIME_CHARS - 1; i >= 0; i--) {
        id[i] = digits62[us % 62];
        us /= 62;
    }
    random_chars(id + TIME_CHARS, SL_SPOOL_ID_LEN - TIME_CHARS);
    id[SL_SPOOL_ID_LEN] = '\0';
}

/* sl_spool_id_valid - exactly SL_SPOOL_ID_LEN characters of [0-9A-Za-z] */
bool sl_spool_id_valid(const char *id)
{
    size_t n = strspn(id, digits62);
    return n == SL_SPOOL_ID_LEN && id[n] == '\0';
}

/* sl_spool_id_time_us - the microseconds of the id's time prefix */
uint64_t sl_spool_id_time_us(const char *id)
{
    uint64_t us = 0;

    for (int i = 0; i < TIME_CHARS; i++) {
        const char *p = strchr(digits62, id[i]);
        us = us * 62 + (p != NULL && *p != '\0' ? (uint64_t)(p - digits62) : 0);
    }
    return us;
}
