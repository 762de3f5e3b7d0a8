/*
 * queue.c - the master's in-memory index of the spool (sl_queue.h).
 *
 * Pure data structures, no I/O: the spool is the truth and this index is
 * rebuilt from it at start.  Each operation costs O(1), or O(log n) for the
 * heap, whatever the number of queued messages; nothing here ever walks all
 * messages or all parts.
 * Invariants (a broken one is our bug, so it panics):
 *   - a part is in exactly one of: its destination's FIFO (READY), a job
 *     (INFLIGHT), the heap (TIMER), nowhere (HELD by the operator, or DONE);
 *   - a destination is in the ring only when it has READY parts and is not
 *     blocked; it is freed when no part refers to it and no worker holds a
 *     connection to it.
 * Trust boundary: ids, bindings and domains come from the spool and from
 * local clients; the hash tables are keyed (SipHash) so crafted names cannot
 * degrade them into lists.
 * Concurrency: the master's main loop only.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util/sl_msg.h"
#include "master/sl_queue.h"

#define DEST_NAME_MAX 255 /* bytes of a binding or domain name */

/* A chained hash table; both node types start with (hnext, hash). */
struct hnode {
    struct hnode *hnext;
    uint64_t hash;
};

struct htab {
    struct hnode **b;
    size_t nb; /* a power of two */
    size_t n;
};

struct sl_queue {
    unsigned char key[crypto_shorthash_KEYBYTES];
    struct htab msgs, dests;
    struct sl_qdest *ring;    /* head of the round-robin ring (circular list) */
    struct sl_qdest *blocked; /* head of the blocked list (circular list) */
    size_t nblocked;
    uint64_t block_seq; /* sl_queue_block's count: each destination held back gets the next */
    struct sl_qpart **heap;
    size_t nheap, heapcap;
    size_t count[SL_PART_DONE + 1];
    /* Called when a destination has no ready part left or is freed (the scheduler ends its
     * wait for a counter there); NULL: none. */
    void (*idle_hook)(struct sl_qdest *d, void *arg);
    void *idle_arg;
};

/* hash - keyed hash of len bytes */
static uint64_t hash(const struct sl_queue *q, const void *s, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t h;

    crypto_shorthash(out, s, len, q->key);
    memcpy(&h, out, sizeof h);
    return h;
}

/* htab_grow - double the buckets when the table is as full as it is wide */
static void htab_grow(struct htab *t)
{
    size_t nb = t->nb ? t->nb * 2 : 64;
    struct hnode **b = sl_calloc(nb, sizeof *b);

    for (size_t i = 0; i < t->nb; i++) {
        struct hnode *e = t->b[i], *next;
        for (; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

/* htab_insert - add a node whose hash is set */
static void htab_insert(struct htab *t, struct hnode *e)
{
    if (t->n >= t->nb)
        htab_grow(t);
    e->hnext = t->b[e->hash & (t->nb - 1)];
    t->b[e->hash & (t->nb - 1)] = e;
    t->n++;
}

/* htab_remove - unlink a node that is in the table */
static void htab_remove(struct htab *t, struct hnode *e)
{
    struct hnode **pp = &t->b[e->hash & (t->nb - 1)];

    while (*pp != e) {
        if (*pp == NULL)
            sl_msg_panic("queue: hash node not in its table");
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
    t->n--;
}

/* htab_first - the chain a hash falls in */
static struct hnode *htab_first(const struct htab *t, uint64_t h)
{
    return t->nb ? t->b[h & (t->nb - 1)] : NULL;
}

/* sl_queue_new - an empty index with a fresh random hash key */
struct sl_queue *sl_queue_new(void)
{
    struct sl_queue *q = sl_calloc(1, sizeof *q);

    if (sodium_init() < 0)
        sl_msg_fatal("libsodium cannot initialise");
    crypto_shorthash_keygen(q->key);
    return q;
}

/* sl_queue_free - everything, messages and destinations */
void sl_queue_free(struct sl_queue *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->msgs.nb; i++)
        for (struct hnode *e = q->msgs.b[i], *next; e != NULL; e = next) {
            next = e->hnext;
            free(e);
        }
    for (size_t i = 0; i < q->dests.nb; i++)
        for (struct hnode *e = q->dests.b[i], *next; e != NULL; e = next) {
            next = e->hnext;
            free(((struct sl_qdest *)e)->throttle);
            free(((struct sl_qdest *)e)->binding);
            free(e);
        }
    free(q->msgs.b);
    free(q->dests.b);
    free(q->heap);
    free(q);
}

/* ---- circular lists: the ring and the blocked list ---- */

/* list_append - d at the tail of the circular list *head */
static void list_append(struct sl_qdest **head, struct sl_qdest *d)
{
    if (*head == NULL) {
        d->lprev = d->lnext = d;
        *head = d;
        return;
    }
    d->lnext = *head;
    d->lprev = (*head)->lprev;
    d->lprev->lnext = d;
    (*head)->lprev = d;
}

/* list_prepend - d at the head of the circular list *head */
static void list_prepend(struct sl_qdest **head, struct sl_qdest *d)
{
    list_append(head, d);
    *head = d;
}

/* list_remove - d out of the circular list *head */
static void list_remove(struct sl_qdest **head, struct sl_qdest *d)
{
    if (d->lnext == d) {
        *head = NULL;
    } else {
        d->lprev->lnext = d->lnext;
        d->lnext->lprev = d->lprev;
        if (*head == d)
            *head = d->lnext;
    }
    d->lprev = d->lnext = NULL;
}

/* leave - take d out of whichever list it is on */
static void leave(struct sl_queue *q, struct sl_qdest *d)
{
    if (d->where == SL_QDEST_RING)
        list_remove(&q->ring, d);
    else if (d->where == SL_QDEST_BLOCKED) {
        list_remove(&q->blocked, d);
        q->nblocked--;
    }
    d->where = SL_QDEST_IDLE;
}

/* wake - d got a ready part: into the ring unless it is there or blocked */
static void wake(struct sl_queue *q, struct sl_qdest *d)
{
    if (d->where != SL_QDEST_IDLE || d->nready == 0)
        return;
    d->held_seq = 0;
    list_append(&q->ring, d);
    d->where = SL_QDEST_RING;
}

/* ---- destinations ---- */

/* dest_hash - the hash of "binding\0domain" */
static uint64_t dest_hash(const struct sl_queue *q, const char *binding, const char *domain,
                          char *key, size_t keylen, size_t *len)
{
    size_t bl = strlen(binding), dl = strlen(domain);

    if (bl + 1 + dl + 1 > keylen)
        return 0;
    memcpy(key, binding, bl + 1);
    memcpy(key + bl + 1, domain, dl + 1);
    *len = bl + 1 + dl;
    return hash(q, key, *len);
}

/* sl_queue_dest - a destination by binding and domain, NULL when unknown */
struct sl_qdest *sl_queue_dest(const struct sl_queue *q, const char *binding, const char *domain)
{
    char key[2 * (DEST_NAME_MAX + 1)];
    size_t len = 0;
    uint64_t h = dest_hash(q, binding, domain, key, sizeof key, &len);

    if (len == 0)
        return NULL;
    for (struct hnode *e = htab_first(&q->dests, h); e != NULL; e = e->hnext) {
        struct sl_qdest *d = (struct sl_qdest *)e;
        if (e->hash == h && strcmp(d->binding, binding) == 0 && strcmp(d->domain, domain) == 0)
            return d;
    }
    return NULL;
}

/* sl_queue_dest_get - a destination, created when unknown */
struct sl_qdest *sl_queue_dest_get(struct sl_queue *q, const char *binding, const char *domain)
{
    struct sl_qdest *d = sl_queue_dest(q, binding, domain);
    size_t bl = strlen(binding), dl = strlen(domain);

    if (d != NULL)
        return d;
    if (bl > DEST_NAME_MAX || dl > DEST_NAME_MAX)
        sl_msg_panic("queue: destination name over %d bytes", DEST_NAME_MAX);
    d = sl_calloc(1, sizeof *d);
    d->binding = sl_malloc(bl + 1 + dl + 1);
    memcpy(d->binding, binding, bl + 1);
    d->domain = d->binding + bl + 1;
    memcpy(d->domain, domain, dl + 1);
    d->hash = hash(q, d->binding, bl + 1 + dl);
    d->wait_slot = UINT32_MAX;
    htab_insert(&q->dests, (struct hnode *)d);
    return d;
}

/* dest_release - free d when nothing refers to it any more */
static void dest_release(struct sl_queue *q, struct sl_qdest *d)
{
    if (d->refs > 0 || d->conns > 0 || d->jobs > 0)
        return;
    if (d->nready != 0)
        sl_msg_panic("queue: destination %s/%s freed with ready parts", d->binding, d->domain);
    if (q->idle_hook != NULL)
        q->idle_hook(d, q->idle_arg);
    leave(q, d);
    htab_remove(&q->dests, (struct hnode *)d);
    free(d->throttle);
    free(d->binding);
    free(d);
}

/* sl_queue_conn_add - a worker holds a connection to d */
void sl_queue_conn_add(struct sl_qdest *d)
{
    d->conns++;
}

/* sl_queue_conn_del - that connection closed */
void sl_queue_conn_del(struct sl_queue *q, struct sl_qdest *d)
{
    if (d->conns == 0)
        sl_msg_panic("queue: connection count of %s/%s below zero", d->binding, d->domain);
    d->conns--;
    dest_release(q, d);
}

/* sl_queue_job_add - a delivery job for d is out */
void sl_queue_job_add(struct sl_qdest *d)
{
    d->jobs++;
}

/* sl_queue_job_del - that job's worker is free again (or dead) */
void sl_queue_job_del(struct sl_queue *q, struct sl_qdest *d)
{
    if (d->jobs == 0)
        sl_msg_panic("queue: job count of %s/%s below zero", d->binding, d->domain);
    d->jobs--;
    dest_release(q, d);
}

/* ---- FIFO of ready parts ---- */

/* fifo_push - p at the tail (front=false) or the head (front=true) of its FIFO */
static void fifo_push(struct sl_queue *q, struct sl_qpart *p, bool front)
{
    struct sl_qdest *d = p->dest;

    p->prev = p->next = NULL;
    if (d->head == NULL) {
        d->head = d->tail = p;
    } else if (front) {
        p->next = d->head;
        d->head->prev = p;
        d->head = p;
    } else {
        p->prev = d->tail;
        d->tail->next = p;
        d->tail = p;
    }
    d->nready++;
    p->state = SL_PART_READY;
    q->count[SL_PART_READY]++;
    wake(q, d);
}

/* fifo_unlink - p out of its FIFO (and d out of the ring or the blocked list when that
 * empties it) */
static void fifo_unlink(struct sl_queue *q, struct sl_qpart *p)
{
    struct sl_qdest *d = p->dest;

    if (p->prev)
        p->prev->next = p->next;
    else
        d->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        d->tail = p->prev;
    p->prev = p->next = NULL;
    d->nready--;
    q->count[SL_PART_READY]--;
    if (d->nready > 0)
        return;
    leave(q, d); /* held back too: it waits for nothing now, and its next mail must bring it
                  * back to the ring (wake), where it may wait anew */
    if (q->idle_hook != NULL)
        q->idle_hook(d, q->idle_arg);
}

/* ---- the heap of deferred parts ---- */

/* heap_set - put p at index i */
static void heap_set(struct sl_queue *q, size_t i, struct sl_qpart *p)
{
    q->heap[i] = p;
    p->heap = i;
}

/* heap_up - restore the heap order from i towards the root */
static void heap_up(struct sl_queue *q, size_t i)
{
    struct sl_qpart *p = q->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (q->heap[parent]->due <= p->due)
            break;
        heap_set(q, i, q->heap[parent]);
        i = parent;
    }
    heap_set(q, i, p);
}

/* heap_down - restore the heap order from i towards the leaves */
static void heap_down(struct sl_queue *q, size_t i)
{
    struct sl_qpart *p = q->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->nheap)
            break;
        if (c + 1 < q->nheap && q->heap[c + 1]->due < q->heap[c]->due)
            c++;
        if (p->due <= q->heap[c]->due)
            break;
        heap_set(q, i, q->heap[c]);
        i = c;
    }
    heap_set(q, i, p);
}

/* heap_push - p waits until p->due */
static void heap_push(struct sl_queue *q, struct sl_qpart *p)
{
    if (q->nheap == q->heapcap) {
        q->heapcap = q->heapcap ? q->heapcap * 2 : 256;
        q->heap = sl_realloc(q->heap, q->heapcap * sizeof *q->heap);
    }
    p->state = SL_PART_TIMER;
    q->count[SL_PART_TIMER]++;
    heap_set(q, q->nheap++, p);
    heap_up(q, p->heap);
}

/* heap_remove - p out of the heap, wherever it is */
static void heap_remove(struct sl_queue *q, struct sl_qpart *p)
{
    size_t i = p->heap;
    struct sl_qpart *last = q->heap[--q->nheap];

    q->count[SL_PART_TIMER]--;
    if (i == q->nheap)
        return;
    heap_set(q, i, last);
    heap_up(q, i);
    heap_down(q, last->heap);
}

/* ---- messages ---- */

/* sl_queue_find - the message with this id, NULL when not indexed */
struct sl_qmsg *sl_queue_find(const struct sl_queue *q, const char *id)
{
    size_t len = strnlen(id, SL_SPOOL_ID_LEN + 1);
    uint64_t h;

    if (len > SL_SPOOL_ID_LEN)
        return NULL;
    h = hash(q, id, len);
    for (struct hnode *e = htab_first(&q->msgs, h); e != NULL; e = e->hnext)
        if (e->hash == h && strcmp(((struct sl_qmsg *)e)->id, id) == 0)
            return (struct sl_qmsg *)e;
    return NULL;
}

/* sl_queue_add - index a message and queue its parts that are not done */
struct sl_qmsg *sl_queue_add(struct sl_queue *q, const char *id, const char *binding, size_t nparts,
                             const struct sl_queue_part_init *parts, int64_t now)
{
    struct sl_qmsg *m;
    size_t len = strnlen(id, SL_SPOOL_ID_LEN + 1);

    if (nparts == 0 || nparts > SL_SPOOL_PARTS_MAX || len == 0 || len > SL_SPOOL_ID_LEN ||
        strnlen(binding, DEST_NAME_MAX + 1) > DEST_NAME_MAX || sl_queue_find(q, id) != NULL)
        return NULL;
    for (size_t k = 0; k < nparts; k++)
        if (!parts[k].done && strnlen(parts[k].domain, DEST_NAME_MAX + 1) > DEST_NAME_MAX)
            return NULL;
    m = sl_calloc(1, sizeof *m + nparts * sizeof m->part[0]);
    memcpy(m->id, id, len + 1);
    m->hash = hash(q, id, len);
    m->nparts = (uint16_t)nparts;
    htab_insert(&q->msgs, (struct hnode *)m);
    for (size_t k = 0; k < nparts; k++) {
        struct sl_qpart *p = &m->part[k];
        p->msg = m;
        p->k = (uint16_t)k;
        if (parts[k].done) {
            p->state = SL_PART_DONE;
            continue;
        }
        m->left++;
        p->dest = sl_queue_dest_get(q, binding, parts[k].domain);
        p->dest->refs++;
        p->due = parts[k].due;
        p->fresh = parts[k].fresh && !parts[k].held;
        p->crashes =
            parts[k].crashes < SL_QPART_CRASHES_MAX ? parts[k].crashes : SL_QPART_CRASHES_MAX;
        if (parts[k].held) {
            p->state = SL_PART_HELD;
            q->count[SL_PART_HELD]++;
        } else if (p->due > now)
            heap_push(q, p);
        else
            fifo_push(q, p, false);
    }
    return m;
}

/* sl_queue_messages - messages indexed */
size_t sl_queue_messages(const struct sl_queue *q)
{
    return q->msgs.n;
}

/* sl_queue_count - parts in one state (DONE: only those of messages still indexed) */
size_t sl_queue_count(const struct sl_queue *q, enum sl_part_state st)
{
    return q->count[st];
}

/* part_settle - p leaves every structure and its destination loses a reference */
static void part_settle(struct sl_queue *q, struct sl_qpart *p)
{
    struct sl_qdest *d = p->dest;

    switch (p->state) {
    case SL_PART_READY:
        fifo_unlink(q, p);
        break;
    case SL_PART_TIMER:
        heap_remove(q, p);
        break;
    case SL_PART_INFLIGHT:
    case SL_PART_HELD:
        q->count[p->state]--;
        break;
    default:
        return;
    }
    p->state = SL_PART_DONE;
    p->dest = NULL;
    d->refs--;
    dest_release(q, d);
}

/* msg_free - a message whose parts are all settled */
static void msg_free(struct sl_queue *q, struct sl_qmsg *m)
{
    htab_remove(&q->msgs, (struct hnode *)m);
    free(m);
}

/* sl_queue_drop - the message is gone: every part out, the message freed */
void sl_queue_drop(struct sl_queue *q, struct sl_qmsg *m)
{
    for (size_t k = 0; k < m->nparts; k++)
        part_settle(q, &m->part[k]);
    msg_free(q, m);
}

/* expect - p must be INFLIGHT for an outcome */
static void expect_inflight(const struct sl_qpart *p)
{
    if (p->state != SL_PART_INFLIGHT)
        sl_msg_panic("queue: outcome for part %s.%u that is not in flight", p->msg->id, p->k);
}

/* sl_queue_done - p is final; the message goes with its last part */
bool sl_queue_done(struct sl_queue *q, struct sl_qpart *p)
{
    struct sl_qmsg *m = p->msg;

    expect_inflight(p);
    part_settle(q, p);
    if (--m->left > 0)
        return false;
    msg_free(q, m);
    return true;
}

/* sl_queue_defer - p waits in the heap until due */
void sl_queue_defer(struct sl_queue *q, struct sl_qpart *p, int64_t due)
{
    expect_inflight(p);
    q->count[SL_PART_INFLIGHT]--;
    p->due = due;
    p->job = 0;
    heap_push(q, p);
}

/* sl_queue_requeue - p was not attempted: first in line again */
void sl_queue_requeue(struct sl_queue *q, struct sl_qpart *p)
{
    expect_inflight(p);
    q->count[SL_PART_INFLIGHT]--;
    p->job = 0;
    fifo_push(q, p, true);
}

/* ---- the operator's commands ---- */

/* unqueue - p (READY or TIMER) out of its FIFO or the heap; false in any other state */
static bool unqueue(struct sl_queue *q, struct sl_qpart *p)
{
    if (p->state == SL_PART_READY)
        fifo_unlink(q, p);
    else if (p->state == SL_PART_TIMER)
        heap_remove(q, p);
    else
        return false;
    return true;
}

/* sl_queue_hold - p waits for the operator's release, wherever it waited */
void sl_queue_hold(struct sl_queue *q, struct sl_qpart *p)
{
    if (!unqueue(q, p))
        return;
    p->state = SL_PART_HELD;
    q->count[SL_PART_HELD]++;
}

/* sl_queue_unhold - a released part goes back to waiting for its due time */
void sl_queue_unhold(struct sl_queue *q, struct sl_qpart *p, int64_t now)
{
    if (p->state != SL_PART_HELD)
        return;
    q->count[SL_PART_HELD]--;
    if (p->due > now)
        heap_push(q, p);
    else
        fifo_push(q, p, false);
}

/* sl_queue_flush_part - a deferred part is ready now */
void sl_queue_flush_part(struct sl_queue *q, struct sl_qpart *p)
{
    if (p->state != SL_PART_TIMER)
        return;
    heap_remove(q, p);
    p->due = 0;
    fifo_push(q, p, false);
}

/* sl_queue_finish - p is final without an attempt; the message goes with its last part */
bool sl_queue_finish(struct sl_queue *q, struct sl_qpart *p)
{
    struct sl_qmsg *m = p->msg;

    if (p->state == SL_PART_INFLIGHT || p->state == SL_PART_DONE)
        sl_msg_panic("queue: part %s.%u finished while in flight or done", m->id, p->k);
    part_settle(q, p);
    if (--m->left > 0)
        return false;
    msg_free(q, m);
    return true;
}

/* ---- dispatch ---- */

/* sl_queue_next - the destination whose turn it is */
struct sl_qdest *sl_queue_next(const struct sl_queue *q)
{
    return q->ring;
}

/* sl_queue_peek - dest's first ready part */
struct sl_qpart *sl_queue_peek(const struct sl_qdest *d)
{
    return d->head;
}

/* sl_queue_take - dest's first ready part goes to job */
struct sl_qpart *sl_queue_take(struct sl_queue *q, struct sl_qdest *d, uint64_t job)
{
    struct sl_qpart *p = d->head;

    if (p == NULL)
        return NULL;
    fifo_unlink(q, p);
    p->state = SL_PART_INFLIGHT;
    p->job = job;
    p->fresh = false; /* its worker may save a state from now on */
    q->count[SL_PART_INFLIGHT]++;
    return p;
}

/* sl_queue_rotate - dest had its turn: every other ready destination goes first */
void sl_queue_rotate(struct sl_queue *q, struct sl_qdest *d)
{
    if (d->where != SL_QDEST_RING)
        return;
    d->held_seq = 0; /* it had its turn: no longer one released ahead of the others */
    list_remove(&q->ring, d);
    list_append(&q->ring, d);
}

/* sl_queue_block - hold d back until a connection closes */
void sl_queue_block(struct sl_queue *q, struct sl_qdest *d)
{
    if (d->where == SL_QDEST_BLOCKED)
        return;
    leave(q, d);
    list_append(&q->blocked, d);
    d->where = SL_QDEST_BLOCKED;
    d->held_seq = ++q->block_seq;
    q->nblocked++;
}

/* take_released - the ring's head run of released destinations (held_seq set: released and
 * not served since), out of the ring into *out, in their order (the longest waiting first) */
static void take_released(struct sl_queue *q, struct sl_qdest **out)
{
    while (q->ring != NULL && q->ring->held_seq != 0) {
        struct sl_qdest *x = q->ring;
        list_remove(&q->ring, x);
        list_append(out, x);
    }
}

/* take_matching - the blocked destinations match picks (all, when NULL), out of the blocked
 * list, in the order they were held back: those with ready mail into *out, the others idle
 * (the hook told); how many */
static size_t take_matching(struct sl_queue *q, struct sl_qdest **out,
                            bool (*match)(const struct sl_qdest *d, const void *arg),
                            const void *arg)
{
    size_t n = 0, left = q->nblocked;
    struct sl_qdest *x = q->blocked;

    while (left-- > 0) {
        struct sl_qdest *d = x;
        x = x->lnext; /* d's removal leaves the rest of the walk as it was */
        if (match != NULL && !match(d, arg))
            continue;
        leave(q, d);
        n++;
        if (d->nready > 0) {
            list_append(out, d);
            continue;
        }
        d->held_seq = 0;
        if (q->idle_hook != NULL)
            q->idle_hook(d, q->idle_arg);
    }
    return n;
}

/* pop_older - the head of *a or *b that was held back first, out of its list */
static struct sl_qdest *pop_older(struct sl_qdest **a, struct sl_qdest **b)
{
    struct sl_qdest **from = b, *d;

    if (*a != NULL && (*b == NULL || (*a)->held_seq < (*b)->held_seq))
        from = a;
    d = *from;
    list_remove(from, d);
    return d;
}

/* sl_queue_release_where - the blocked destinations match picks (all, when NULL) may try
 * again, before the ring's others: they go to the ring's head in the order they were held
 * back, merged with those released earlier and not served yet (two releases in one pass, a
 * promise's end and then a close, keep the longest waiting first); how many were released */
size_t sl_queue_release_where(struct sl_queue *q,
                              bool (*match)(const struct sl_qdest *d, const void *arg),
                              const void *arg)
{
    struct sl_qdest *earlier = NULL, *now = NULL, *merged = NULL;
    size_t n = take_matching(q, &now, match, arg);

    if (now == NULL)
        return n;
    take_released(q, &earlier);
    while (earlier != NULL || now != NULL)
        list_append(&merged, pop_older(&earlier, &now));
    while (merged != NULL) { /* the newest first: each goes to the ring's head */
        struct sl_qdest *d = merged->lprev;
        list_remove(&merged, d);
        list_prepend(&q->ring, d);
        d->where = SL_QDEST_RING;
    }
    return n;
}

/* sl_queue_unblock_all - every blocked destination may try again, before the ring's others */
size_t sl_queue_unblock_all(struct sl_queue *q)
{
    return sl_queue_release_where(q, NULL, NULL);
}

/* sl_queue_unblock - d leaves the blocked list for the ring's tail (it got a connection) */
void sl_queue_unblock(struct sl_queue *q, struct sl_qdest *d)
{
    if (d->where != SL_QDEST_BLOCKED)
        return;
    leave(q, d);
    wake(q, d);
}

/* sl_queue_first_blocked - the destination held back longest, NULL when none */
struct sl_qdest *sl_queue_first_blocked(const struct sl_queue *q)
{
    return q->blocked;
}

/* sl_queue_next_blocked - the one held back after d, NULL after the last */
struct sl_qdest *sl_queue_next_blocked(const struct sl_queue *q, const struct sl_qdest *d)
{
    return d->lnext == q->blocked ? NULL : d->lnext;
}

/* sl_queue_set_idle_hook - fn(d, arg) when d has no ready part left or is freed */
void sl_queue_set_idle_hook(struct sl_queue *q, void (*fn)(struct sl_qdest *d, void *arg),
                            void *arg)
{
    q->idle_hook = fn;
    q->idle_arg = arg;
}

/* sl_queue_ring_upto - destinations in the ring, counted up to max (a bounded walk) */
size_t sl_queue_ring_upto(const struct sl_queue *q, size_t max)
{
    const struct sl_qdest *d = q->ring;
    size_t n = 0;

    while (d != NULL && n < max) {
        n++;
        d = d->lnext == q->ring ? NULL : d->lnext;
    }
    return n;
}

/* sl_queue_blocked - destinations held back */
size_t sl_queue_blocked(const struct sl_queue *q)
{
    return q->nblocked;
}

/* ---- timers ---- */

/* sl_queue_release_due - parts whose next attempt has come join their FIFO */
size_t sl_queue_release_due(struct sl_queue *q, int64_t now)
{
    size_t n = 0;

    while (q->nheap > 0 && q->heap[0]->due <= now) {
        struct sl_qpart *p = q->heap[0];
        heap_remove(q, p);
        fifo_push(q, p, false);
        n++;
    }
    return n;
}

/* sl_queue_next_due - when the heap's first part is due */
int64_t sl_queue_next_due(const struct sl_queue *q)
{
    return q->nheap > 0 ? q->heap[0]->due : INT64_MAX;
}
