/*
 * lookup.c - the counter table's keys: hashing, lookup and find, limits, scope kind names.
 *
 * A key is (kind, name, name2); sl_shm_lookup finds its slot or claims and fills an EMPTY one,
 * sl_shm_find only finds, sl_shm_set_limit publishes a counter's limit for a config generation.
 * Concurrency: a slot moves only forward, EMPTY -> CLAIMED -> LIVE (or CLAIMED -> ABANDONED
 * when its claimer died), each step one seq_cst CAS or store on the tag word.  A claimer
 * writes the key into a private stretch of the arena (reserved by fetch-and-add) before it
 * stores LIVE, so a reader that saw LIVE reads a complete, immutable key without a lock.
 * Two lookups of one key meet at its first CLAIMED slot: the later one waits for LIVE or
 * ABANDONED instead of passing it, so a key is LIVE in at most one slot.  A limit word changes
 * by CAS only, and never to an older generation.
 * Trust boundary: names come from outside (DNS, config, the spool): they are length-checked,
 * refused with control characters, lower-cased and hashed with the segment's random key.  A
 * key read from the arena is bounds-checked against arena_bytes.  The segment itself was
 * validated by segment.c when it was attached.
 */
#include <sched.h>
#include <string.h>

#include <sodium.h>

#include "util/sl_msg.h"
#include "shm/sl_shm.h"
#include "shm_impl.h"

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
    [SL_SCOPE_THROTTLE_CONN] = "throttle_connections",
    [SL_SCOPE_THROTTLE_MSG] = "throttle_messages",
    [SL_SCOPE_ACTION_CAP] = "action_cap",
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

/* end_claim - move a slot we claimed on to state (LIVE or ABANDONED); no one else may move it */
static void end_claim(struct sl_shm_header *h, struct sl_shm_slot *s, uint64_t claimed,
                      enum sl_slot_state state)
{
    uint64_t expect = claimed;

    if (!sl_cas64(&s->tag, &expect, (claimed & ~(uint64_t)3) | state))
        sl_msg_panic("shm: slot claimed by us changed under us (tag %llx)",
                     (unsigned long long)expect);
    sl_add64(&h->claiming, (uint64_t)-1);
}

/* fill - write the key of a slot we claimed, then publish it */
static enum sl_shm_result fill(struct sl_shm *shm, struct sl_shm_slot *s, uint64_t claimed,
                               const struct key *k)
{
    struct sl_shm_header *h = shm->hdr;
    size_t len = (size_t)k->len1 + 1 + k->len2 + 1;
    uint64_t off = sl_add64(&h->arena_used, len);

    if (off + len > h->arena_bytes) {
        /* Cannot happen while the arena has room for every slot's longest key; refuse cleanly. */
        end_claim(h, s, claimed, SL_SLOT_ABANDONED);
        return SL_SHM_FULL;
    }
    memcpy(shm->arena + off, k->buf, len);
    s->key_off = (uint32_t)off;
    s->name_len = k->len1;
    s->name2_len = k->len2;
    s->kind = k->kind;
    sl_store64(&s->limit, limit_word(0, SL_LIMIT_NONE));
    /* The key above is immutable from here on: LIVE publishes it (seq_cst CAS). */
    end_claim(h, s, claimed, SL_SLOT_LIVE);
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
    if (s->kind == SL_SCOPE_ACTION_CAP)
        return; /* an action's cap, not the config's: shm/cap.c alone writes it */
    w = sl_load64(&s->limit);
    while ((uint32_t)(w >> 32) <= gen && !sl_cas64(&s->limit, &w, limit_word(gen, limit)))
        ;
}
