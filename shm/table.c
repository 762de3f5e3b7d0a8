/*
 * table.c - the counter table's segment and its keys: create, attach, stale check, lookup.
 *
 * The master creates the segment (shm_open O_EXCL, mode 0640 whatever the umask), fills the
 * header and publishes it by storing `ready` last; workers inherit the mapping across fork;
 * the inspector attaches read-only and waits for `ready`.
 * Concurrency: a slot moves only forward, EMPTY -> CLAIMED -> LIVE (or CLAIMED -> ABANDONED
 * when its claimer died), each step one seq_cst CAS or store on the tag word.  A claimer
 * writes the key into a private stretch of the arena (reserved by fetch-and-add) before it
 * stores LIVE, so a reader that saw LIVE reads a complete, immutable key without a lock.
 * Two lookups of one key meet at its first CLAIMED slot: the later one waits for LIVE or
 * ABANDONED instead of passing it, so a key is LIVE in at most one slot.
 * Trust boundary: names come from outside (DNS, config, the spool): they are length-checked,
 * refused with control characters, lower-cased and hashed with a random key.  An attached
 * segment is validated (magic, version, sizes, offsets against the mapping) before any offset
 * in it is used; a key read from the arena is bounds-checked against arena_bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>
#include <sodium.h>

#include "sl_msg.h"
#include "sl_shm.h"
#include "shm_impl.h"

#define KEY_MAX (2 * (SL_SHM_NAME_MAX + 1)) /* name NUL name2 NUL */

_Static_assert(crypto_shorthash_KEYBYTES == sizeof((struct sl_shm_header *)0)->hash_key,
               "the header holds one SipHash key");

/* A key as the table stores it, made once per lookup. */
struct key {
    uint8_t kind;
    uint16_t len1, len2;
    uint64_t hash;
    char buf[KEY_MAX];
};

static const char *const kind_names[SL_SCOPE__COUNT] = {
    [SL_SCOPE_NONE] = "none",
    [SL_SCOPE_BINDING_DOMAIN] = "binding_domain",
    [SL_SCOPE_BINDING_HOST] = "binding_host",
    [SL_SCOPE_HOST] = "host",
    [SL_SCOPE_GROUP_DOMAIN] = "group_domain",
    [SL_SCOPE_DOMAIN] = "domain",
    [SL_SCOPE_BINDING] = "binding",
    [SL_SCOPE_SERVER] = "server",
    [SL_SCOPE_RESERVE] = "reserve",
    [SL_SCOPE_CLUSTER] = "cluster",
};

/* sl_scope_kind_name - the short name of a kind */
const char *sl_scope_kind_name(enum sl_scope_kind kind)
{
    if ((unsigned)kind >= SL_SCOPE__COUNT)
        return "invalid";
    return kind_names[kind];
}

/* sl_scope_kind_parse - the kind with this name, or SL_SCOPE_NONE */
enum sl_scope_kind sl_scope_kind_parse(const char *name)
{
    for (int k = SL_SCOPE_NONE + 1; k < SL_SCOPE__COUNT; k++)
        if (name && strcmp(name, kind_names[k]) == 0)
            return (enum sl_scope_kind)k;
    return SL_SCOPE_NONE;
}

/* align_up - round n up to a multiple of a (a power of two) */
static uint64_t align_up(uint64_t n, uint64_t a)
{
    return (n + a - 1) & ~(a - 1);
}

/* pid_alive - does this process exist (EPERM: it does, as another user) */
static bool pid_alive(uint64_t pid)
{
    /* pid 0 or a huge value would make kill() signal a group: garbage is "dead". */
    if (pid == 0 || pid > (uint64_t)INT32_MAX)
        return false;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* live_master - the live master pid recorded in an existing segment, or 0 */
static uint64_t live_master(const char *name)
{
    struct stat st;
    uint64_t pid = 0;
    int fd = shm_open(name, O_RDONLY, 0);

    if (fd < 0)
        return 0;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= sizeof(struct sl_shm_header)) {
        const struct sl_shm_header *h = mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0);
        if (h != MAP_FAILED) {
            if (h->magic == SL_SHM_MAGIC && pid_alive(h->master_pid))
                pid = h->master_pid;
            munmap((void *)h, sizeof *h);
        }
    }
    close(fd);
    return pid;
}

/* map_handle - point the handle's regions into a validated mapping */
static void map_handle(struct sl_shm *shm, void *base, size_t size, bool readonly,
                       const struct stat *st, const char *name)
{
    struct sl_shm_header *h = base;

    shm->hdr = h;
    shm->slots = (struct sl_shm_slot *)((char *)base + h->slots_off);
    shm->owners = (struct sl_shm_owner *)((char *)base + h->owners_off);
    shm->arena = (char *)base + h->arena_off;
    shm->size = size;
    shm->readonly = readonly;
    shm->dev = st->st_dev;
    shm->ino = st->st_ino;
    strlcpy(shm->name, name, sizeof shm->name);
}

/* sl_shm_create - create, fill and publish a new segment */
int sl_shm_create(const char *name, const struct sl_shm_params *p, struct sl_shm *out, char *err,
                  size_t errlen)
{
    static bool sodium_ready;
    struct stat st;
    uint64_t cap, slots_off, owners_off, arena_off, arena_bytes, total;
    void *base;
    int fd = -1;

    memset(out, 0, sizeof *out);
    if (!sodium_ready) {
        if (sodium_init() < 0) {
            snprintf(err, errlen, "libsodium cannot initialise");
            return -1;
        }
        sodium_ready = true;
    }
    if (name == NULL || name[0] != '/' || strlen(name) >= sizeof out->name ||
        strchr(name + 1, '/') != NULL) {
        snprintf(err, errlen, "bad segment name \"%s\" (want /name, under 255 bytes)",
                 name ? name : "");
        return -1;
    }
    if (p->slot_capacity == 0 || p->slot_capacity > SL_SHM_SLOT_MAX) {
        snprintf(err, errlen, "slot capacity %u out of range 1..%u", p->slot_capacity,
                 SL_SHM_SLOT_MAX);
        return -1;
    }
    if (p->owner_capacity == 0 || p->owner_capacity > SL_SHM_OWNER_MAX) {
        snprintf(err, errlen, "owner capacity %u out of range 1..%u", p->owner_capacity,
                 SL_SHM_OWNER_MAX);
        return -1;
    }
    for (cap = 1; cap < p->slot_capacity; cap <<= 1)
        ;
    slots_off = align_up(sizeof(struct sl_shm_header), 64);
    owners_off = slots_off + cap * sizeof(struct sl_shm_slot);
    arena_off =
        align_up(owners_off + (uint64_t)p->owner_capacity * sizeof(struct sl_shm_owner), 64);
    /* Room for every slot's longest key: the arena can never run out before the slots do.  It is
     * sparse, so the pages of short keys are all that is ever touched. */
    arena_bytes = cap * KEY_MAX;
    total = align_up(arena_off + arena_bytes, 4096);

    for (int attempt = 0; fd < 0; attempt++) {
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0640);
        if (fd >= 0)
            break;
        if (errno != EEXIST || attempt == 3) {
            snprintf(err, errlen, "cannot create segment %s: %s", name, strerror(errno));
            return -1;
        }
        uint64_t pid = live_master(name);
        if (pid != 0) {
            snprintf(err, errlen, "segment %s is in use by sluiced pid %llu", name,
                     (unsigned long long)pid);
            return -1;
        }
        /* A dead master's segment: its workers are gone with it, nothing to keep. */
        if (shm_unlink(name) < 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot remove stale segment %s: %s", name, strerror(errno));
            return -1;
        }
    }
    if (fchmod(fd, 0640) < 0 || ftruncate(fd, (off_t)total) < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot size segment %s: %s", name, strerror(errno));
        goto fail;
    }
    base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "cannot map segment %s: %s", name, strerror(errno));
        goto fail;
    }
    close(fd);

    struct sl_shm_header *h = base;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    h->magic = SL_SHM_MAGIC;
    h->version = SL_SHM_VERSION;
    h->header_size = sizeof *h;
    h->slot_size = sizeof(struct sl_shm_slot);
    h->owner_size = sizeof(struct sl_shm_owner);
    h->slot_capacity = (uint32_t)cap;
    h->owner_capacity = p->owner_capacity;
    h->slots_off = slots_off;
    h->owners_off = owners_off;
    h->arena_off = arena_off;
    h->arena_bytes = arena_bytes;
    h->total_size = total;
    h->master_pid = (uint64_t)getpid();
    h->master_start = (uint64_t)now.tv_sec;
    randombytes_buf(h->hash_key, sizeof h->hash_key);
    /* Published last: a reader that sees ready sees every field above (seq_cst store). */
    sl_store64(&h->ready, 1);
    map_handle(out, base, total, false, &st, name);
    return 0;

fail:
    close(fd);
    shm_unlink(name);
    return -1;
}

/* validate - is this header one of ours, and does every region lie within the mapping */
static bool validate(const struct sl_shm_header *h, uint64_t size, char *err, size_t errlen)
{
    uint64_t cap = h->slot_capacity, slots_end, owners_end;

    if (h->magic != SL_SHM_MAGIC) {
        snprintf(err, errlen, "not a sluice segment (bad magic)");
        return false;
    }
    if (h->version != SL_SHM_VERSION) {
        snprintf(err, errlen, "segment version %u, this program speaks %u", h->version,
                 SL_SHM_VERSION);
        return false;
    }
    if (h->header_size != sizeof *h || h->slot_size != sizeof(struct sl_shm_slot) ||
        h->owner_size != sizeof(struct sl_shm_owner)) {
        snprintf(err, errlen, "segment record sizes %u/%u/%u differ from ours %zu/%zu/%zu",
                 h->header_size, h->slot_size, h->owner_size, sizeof *h, sizeof(struct sl_shm_slot),
                 sizeof(struct sl_shm_owner));
        return false;
    }
    if (cap == 0 || cap > SL_SHM_SLOT_MAX || (cap & (cap - 1)) != 0 || h->owner_capacity == 0 ||
        h->owner_capacity > SL_SHM_OWNER_MAX) {
        snprintf(err, errlen, "segment capacities %u/%u are invalid", h->slot_capacity,
                 h->owner_capacity);
        return false;
    }
    /* Every offset is also checked against size, so a sum that wrapped is refused anyway. */
    slots_end = h->slots_off + cap * sizeof(struct sl_shm_slot);
    owners_end = h->owners_off + (uint64_t)h->owner_capacity * sizeof(struct sl_shm_owner);
    if (h->slots_off < sizeof *h || h->slots_off % 64 || h->owners_off % 8 || h->arena_off % 8 ||
        h->slots_off > size || h->owners_off > size || h->arena_off > size ||
        h->arena_bytes > size || h->owners_off < slots_end || h->arena_off < owners_end ||
        h->arena_off + h->arena_bytes > size || h->arena_bytes > 0xffffffffu ||
        h->total_size > size) {
        snprintf(err, errlen, "segment layout does not fit its %llu bytes",
                 (unsigned long long)size);
        return false;
    }
    return true;
}

/* sl_shm_attach - map an existing, published segment and check it */
int sl_shm_attach(const char *name, bool readonly, int wait_ms, struct sl_shm *out, char *err,
                  size_t errlen)
{
    struct stat st;
    void *base = MAP_FAILED;
    size_t size = 0;
    int prot = readonly ? PROT_READ : PROT_READ | PROT_WRITE;
    int fd, waited = 0;

    memset(out, 0, sizeof *out);
    if (name == NULL || strlen(name) >= sizeof out->name) {
        snprintf(err, errlen, "bad segment name");
        return -1;
    }
    fd = shm_open(name, readonly ? O_RDONLY : O_RDWR, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open segment %s: %s", name, strerror(errno));
        return -1;
    }
    /* The master sizes the segment, then fills it, then stores ready: poll for both. */
    for (;;) {
        if (fstat(fd, &st) < 0) {
            snprintf(err, errlen, "cannot stat segment %s: %s", name, strerror(errno));
            goto fail;
        }
        if ((uint64_t)st.st_size >= sizeof(struct sl_shm_header)) {
            size = (size_t)st.st_size;
            base = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
            if (base == MAP_FAILED) {
                snprintf(err, errlen, "cannot map segment %s: %s", name, strerror(errno));
                goto fail;
            }
            if (sl_peek64(&((struct sl_shm_header *)base)->ready) != 0)
                break;
            munmap(base, size);
            base = MAP_FAILED;
        }
        if (waited >= wait_ms) {
            if ((uint64_t)st.st_size < sizeof(struct sl_shm_header))
                snprintf(err, errlen, "segment %s is too short (%lld bytes)", name,
                         (long long)st.st_size);
            else
                snprintf(err, errlen, "segment %s was never published (not ready)", name);
            goto fail;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        waited += 10;
    }
    close(fd);
    fd = -1;
    if (!validate(base, size, err, errlen)) {
        char why[200];
        strlcpy(why, err, sizeof why);
        snprintf(err, errlen, "segment %s refused: %s", name, why);
        goto fail;
    }
    map_handle(out, base, size, readonly, &st, name);
    return 0;

fail:
    if (base != MAP_FAILED)
        munmap(base, size);
    if (fd >= 0)
        close(fd);
    return -1;
}

/* sl_shm_detach - drop this process's mapping */
void sl_shm_detach(struct sl_shm *shm)
{
    if (shm->hdr != NULL)
        munmap(shm->hdr, shm->size);
    memset(shm, 0, sizeof *shm);
}

/* sl_shm_unlink - remove the segment's name */
int sl_shm_unlink(const char *name)
{
    return shm_unlink(name);
}

/* sl_shm_stale - has the name moved to another segment, or its master gone */
bool sl_shm_stale(const struct sl_shm *shm)
{
    struct stat st;
    bool moved;
    int fd;

    if (shm->hdr == NULL)
        return true;
    fd = shm_open(shm->name, O_RDONLY, 0);
    if (fd < 0)
        return true;
    moved = fstat(fd, &st) < 0 || st.st_dev != shm->dev || st.st_ino != shm->ino;
    close(fd);
    return moved || !pid_alive(shm->hdr->master_pid);
}

/* add_name - append one lower-cased, checked name and its NUL to the key */
static bool add_name(struct key *k, const char *name, uint16_t *len, size_t at)
{
    size_t n = 0;

    for (; name[n] != '\0'; n++) {
        unsigned char c = (unsigned char)name[n];
        if (n >= SL_SHM_NAME_MAX || c < 0x20 || c == 0x7f)
            return false;
        k->buf[at + n] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    k->buf[at + n] = '\0';
    *len = (uint16_t)n;
    return true;
}

/* make_key - check, lower-case and hash (kind, name, name2) */
static enum sl_shm_result make_key(const struct sl_shm *shm, enum sl_scope_kind kind,
                                   const char *name, const char *name2, struct key *k)
{
    unsigned char in[1 + KEY_MAX], out[crypto_shorthash_BYTES];
    size_t len;

    if (kind <= SL_SCOPE_NONE || kind >= SL_SCOPE__COUNT)
        return SL_SHM_BADKEY;
    k->kind = (uint8_t)kind;
    if (!add_name(k, name ? name : "", &k->len1, 0) ||
        !add_name(k, name2 ? name2 : "", &k->len2, (size_t)k->len1 + 1))
        return SL_SHM_BADKEY;
    /* Only the server-wide scopes have no name of their own. */
    if (k->len1 == 0 && kind != SL_SCOPE_SERVER && kind != SL_SCOPE_RESERVE &&
        kind != SL_SCOPE_CLUSTER)
        return SL_SHM_BADKEY;
    len = (size_t)k->len1 + 1 + k->len2;
    in[0] = k->kind;
    memcpy(in + 1, k->buf, len);
    crypto_shorthash(out, in, 1 + len, shm->hdr->hash_key);
    memcpy(&k->hash, out, sizeof k->hash);
    return SL_SHM_OK;
}

/* key_equal - does this LIVE slot hold key k (its arena bytes bounds-checked) */
static bool key_equal(const struct sl_shm *shm, const struct sl_shm_slot *s, const struct key *k)
{
    size_t len = (size_t)k->len1 + 1 + k->len2 + 1;

    return s->kind == k->kind && s->name_len == k->len1 && s->name2_len == k->len2 &&
           (uint64_t)s->key_off + len <= shm->hdr->arena_bytes &&
           memcmp(shm->arena + s->key_off, k->buf, len) == 0;
}

/* fill - write the key of a slot we claimed, then publish it */
static enum sl_shm_result fill(struct sl_shm *shm, struct sl_shm_slot *s, uint64_t claimed,
                               const struct key *k)
{
    struct sl_shm_header *h = shm->hdr;
    size_t len = (size_t)k->len1 + 1 + k->len2 + 1;
    uint64_t off = sl_add64(&h->arena_used, len);
    uint64_t expect = claimed;

    if (off + len > h->arena_bytes) {
        /* Cannot happen while the arena has room for every slot's longest key; refuse cleanly. */
        if (!sl_cas64(&s->tag, &expect, (claimed & ~(uint64_t)3) | SL_SLOT_ABANDONED))
            sl_msg_panic("shm: slot claimed by us changed under us (tag %llx)",
                         (unsigned long long)expect);
        sl_add64(&h->claiming, (uint64_t)-1);
        return SL_SHM_FULL;
    }
    memcpy(shm->arena + off, k->buf, len);
    s->key_off = (uint32_t)off;
    s->name_len = k->len1;
    s->name2_len = k->len2;
    s->kind = k->kind;
    sl_store64(&s->limit, limit_word(0, SL_LIMIT_NONE));
    /* The key above is immutable from here on: LIVE publishes it (seq_cst store). */
    if (!sl_cas64(&s->tag, &expect, (claimed & ~(uint64_t)3) | SL_SLOT_LIVE))
        sl_msg_panic("shm: slot claimed by us changed under us (tag %llx)",
                     (unsigned long long)expect);
    sl_add64(&h->claiming, (uint64_t)-1);
    sl_add64(&h->live_slots, 1);
    return SL_SHM_OK;
}

/* probe - find k's slot by linear probing; claim and fill an EMPTY one when create */
static enum sl_shm_result probe(const struct sl_shm *shm, const struct key *k, bool create,
                                uint32_t owner, uint32_t *slot)
{
    uint32_t mask = shm->hdr->slot_capacity - 1, idx = (uint32_t)k->hash & mask;
    uint64_t hash = TAG_HASH(k->hash);

    for (uint32_t probes = 0; probes <= mask;) {
        struct sl_shm_slot *s = &shm->slots[idx];
        uint64_t t = sl_peek64(&s->tag);

        switch (TAG_STATE(t)) {
        case SL_SLOT_EMPTY: {
            /* Slots never return to EMPTY, so the key is nowhere further on. */
            if (!create)
                return SL_SHM_NOENT;
            uint64_t want = hash | (uint64_t)owner << 2 | SL_SLOT_CLAIMED, expect = 0;
            sl_add64(&shm->hdr->claiming, 1);
            if (sl_cas64(&s->tag, &expect, want)) {
                enum sl_shm_result res = fill((struct sl_shm *)shm, s, want, k);
                if (res == SL_SHM_OK)
                    *slot = idx;
                return res;
            }
            sl_add64(&shm->hdr->claiming, (uint64_t)-1);
            continue; /* someone claimed it first: look at it again */
        }
        case SL_SLOT_CLAIMED:
            /* Possibly our key being filled: a creator waits rather than make a second copy.  A
             * reader skips it: the key does not exist until it is LIVE. */
            if (create && TAG_HASH(t) == hash) {
                sched_yield();
                continue;
            }
            break;
        case SL_SLOT_LIVE:
            if (TAG_HASH(t) == hash && key_equal(shm, s, k)) {
                *slot = idx;
                return SL_SHM_OK;
            }
            break;
        default: /* ABANDONED: never reused, only passed */
            break;
        }
        idx = (idx + 1) & mask;
        probes++;
    }
    return create ? SL_SHM_FULL : SL_SHM_NOENT;
}

/* sl_shm_lookup - the counter (kind, name, name2), created when absent */
enum sl_shm_result sl_shm_lookup(struct sl_shm *shm, enum sl_scope_kind kind, const char *name,
                                 const char *name2, uint32_t owner, uint32_t *slot)
{
    struct key k;
    enum sl_shm_result res;

    if (shm->readonly)
        sl_msg_panic("shm: lookup with create on a read-only mapping");
    if (owner >= shm->hdr->owner_capacity)
        sl_msg_panic("shm: lookup by owner %u of %u", owner, shm->hdr->owner_capacity);
    res = make_key(shm, kind, name, name2, &k);
    if (res != SL_SHM_OK)
        return res;
    return probe(shm, &k, true, owner, slot);
}

/* sl_shm_find - the counter (kind, name, name2) if it exists */
enum sl_shm_result sl_shm_find(const struct sl_shm *shm, enum sl_scope_kind kind, const char *name,
                               const char *name2, uint32_t *slot)
{
    struct key k;
    enum sl_shm_result res = make_key(shm, kind, name, name2, &k);

    if (res != SL_SHM_OK)
        return res;
    return probe(shm, &k, false, 0, slot);
}

/* sl_shm_set_limit - publish a counter's limit for generation gen, unless a newer one is there */
void sl_shm_set_limit(struct sl_shm *shm, uint32_t slot, int32_t limit, uint32_t gen)
{
    struct sl_shm_slot *s;
    uint64_t w;

    if (shm->readonly || slot >= shm->hdr->slot_capacity)
        sl_msg_panic("shm: set_limit on slot %u (read-only %d)", slot, shm->readonly);
    s = &shm->slots[slot];
    w = sl_load64(&s->limit);
    while ((uint32_t)(w >> 32) <= gen && !sl_cas64(&s->limit, &w, limit_word(gen, limit)))
        ;
}
