/*
 * segment.c - the counter table's segment: create, attach, detach, unlink, stale check.
 *
 * The master creates the segment (shm_open O_EXCL, mode 0640 whatever the umask), fills the
 * header and publishes it by storing `ready` last (I3); a stale segment whose master is dead is
 * unlinked first, one whose master lives is refused.  Workers inherit the mapping across fork;
 * the inspector attaches read-only and waits for `ready`.
 * Concurrency: the header is written once, by the creator, before `ready` (seq_cst store); an
 * attacher polls `ready` (up to wait_ms) and reads nothing else of the header before it is set.
 * After that the header's layout fields never change.
 * Trust boundary: a segment found under our name may belong to another program or be damaged:
 * the header is validated (magic, version, record sizes, capacities, every offset against the
 * mapping) before any offset in it is used, and a recorded master pid that is 0 or out of range
 * counts as dead.  The segment name comes from the config and is checked before shm_open.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>
#include <sodium.h>

#include "shm/sl_shm.h"
#include "shm_impl.h"

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

/* names_segment - shm's name still opens shm's segment (not one made since in its place) */
static bool names_segment(const struct sl_shm *shm)
{
    struct stat st;
    bool same;
    int fd = shm_open(shm->name, O_RDONLY, 0);

    if (fd < 0)
        return false;
    same = fstat(fd, &st) == 0 && st.st_dev == shm->dev && st.st_ino == shm->ino;
    close(fd);
    return same;
}

/* sl_shm_unlink_own - remove the name while it is still shm's */
int sl_shm_unlink_own(const struct sl_shm *shm)
{
    return names_segment(shm) ? sl_shm_unlink(shm->name) : -1;
}

/* sl_shm_stale - has the name moved to another segment, or its master gone */
bool sl_shm_stale(const struct sl_shm *shm)
{
    return shm->hdr == NULL || !names_segment(shm) || !pid_alive(shm->hdr->master_pid);
}
