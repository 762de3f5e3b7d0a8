/*
 * state.c - the delivery state of one part of a message (state/ID.K).
 *
 * A part's state is small: attempts, the earliest next attempt, the last
 * reply, and which recipients are final.  It is rewritten whole after each
 * attempt (write new, fsync, rename, fsync state/), so a reader sees the old
 * state or the new, never a mix.  A missing file is the state before any
 * attempt.  An operator's hold is one optional line, written only while held,
 * so files of parts never held read as before.  The new file is written as
 * tmp/ID.K.PID, the writer's pid in its name: when the master reaps a worker
 * killed mid-write it removes that worker's files at once.
 * Concurrency: one process at a time per part (the worker holding it as a
 * job, or the master between jobs); no locks.
 * Trust boundary: the file is ours; a damaged one is an error, never a crash:
 * lines are checked in order, numbers bounded, indexes within the message.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/sl_msg.h"
#include "spool_impl.h"

#define DONE_LINE_MAX 32 /* "done 9999 D\n" with room */
#define STATE_FIXED   (96 + SL_REPLY_MAX)

/* state_name - "ID.K" */
static bool state_name(char *buf, size_t len, const char *id, unsigned k)
{
    int n = snprintf(buf, len, "%s.%u", id, k);
    return sl_spool_id_valid(id) && k < SL_SPOOL_PARTS_MAX && n > 0 && (size_t)n < len;
}

/* read_bounded - the whole file into buf (at most cap bytes); -1 with errno EFBIG when
 * larger, or a read error's own errno */
static ssize_t read_bounded(int fd, char *buf, size_t cap)
{
    size_t have = 0;

    for (;;) {
        ssize_t n = read(fd, buf + have, cap - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return (ssize_t)have;
        have += (size_t)n;
        if (have == cap) {
            char extra;
            ssize_t more;
            while ((more = read(fd, &extra, 1)) < 0 && errno == EINTR)
                ;
            if (more > 0)
                errno = EFBIG;
            if (more != 0)
                return -1;
            return (ssize_t)have;
        }
    }
}

/* reply_ok - the stored reply: printable, shorter than SL_REPLY_MAX */
static bool reply_ok(const char *v, size_t vn)
{
    if (vn >= SL_REPLY_MAX)
        return false;
    for (size_t i = 0; i < vn; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return false;
    return true;
}

/* parse_state - the lines of a state file into st (already initial) */
static const char *parse_state(struct spool_lines *l, struct sl_spool_state *st)
{
    const char *v;
    size_t vn;
    uint64_t attempts, next, index, crashes;

    if (!spool_number_of(l, "attempts", UINT32_MAX, &attempts))
        return "bad attempts line";
    if (!spool_number_of(l, "next", SPOOL_NEXT_MAX, &next))
        return "bad next line";
    if (!spool_value_of(l, "reply", &v, &vn) || !reply_ok(v, vn))
        return "bad reply line";
    st->attempts = (uint32_t)attempts;
    st->next = (int64_t)next;
    memcpy(st->reply, v, vn);
    st->reply[vn] = '\0';
    if (l->p < l->end && (size_t)(l->end - l->p) >= 6 && memcmp(l->p, "held 1", 6) == 0 &&
        (l->p + 6 == l->end || l->p[6] == '\n')) {
        st->held = true; /* the operator's hold: never attempted until released */
        l->p += l->p + 6 == l->end ? 6 : 7;
    }
    if ((size_t)(l->end - l->p) > 8 && memcmp(l->p, "crashes ", 8) == 0) {
        if (!spool_number_of(l, "crashes", SL_SPOOL_CRASHES_MAX, &crashes))
            return "bad crashes line";
        st->crashes = (uint32_t)crashes; /* a suspect since a worker crashed with it */
    }
    while (l->p < l->end) {
        const char *sp;
        if (!spool_value_of(l, "done", &v, &vn) || (sp = memchr(v, ' ', vn)) == NULL ||
            !spool_parse_u64(v, (size_t)(sp - v), st->nrcpt - 1, &index) ||
            (size_t)(sp - v) + 2 != vn || (sp[1] != SL_RCPT_DELIVERED && sp[1] != SL_RCPT_BOUNCED))
            return "bad done line";
        st->status[index] = (unsigned char)sp[1];
    }
    return NULL;
}

/* sl_spool_state_initial - every recipient pending, never tried, not on disk */
void sl_spool_state_initial(struct sl_spool_state *st, size_t nrcpt)
{
    memset(st, 0, sizeof *st);
    st->nrcpt = nrcpt;
    st->status = sl_malloc(nrcpt > 0 ? nrcpt : 1);
    memset(st->status, SL_RCPT_PENDING, nrcpt);
}

/* sl_spool_state_load - part K's state, or the initial one when never saved */
int sl_spool_state_load(const char *dir, const char *id, unsigned k, size_t nrcpt,
                        struct sl_spool_state *st, char *err, size_t errlen)
{
    char name[SL_SPOOL_ID_LEN + 16], path[4096], *buf;
    size_t cap = STATE_FIXED + nrcpt * DONE_LINE_MAX;
    const char *why = NULL;
    struct spool_lines l;
    ssize_t n;
    int fd;

    memset(st, 0, sizeof *st);
    if (!state_name(name, sizeof name, id, k) || nrcpt == 0 || nrcpt > SL_SPOOL_RCPT_MAX)
        return spool_fail(err, errlen, "bad state request %s.%u for %zu recipients", id, k, nrcpt);
    if (!spool_path(path, sizeof path, dir, SPOOL_STATE, name))
        return spool_fail(err, errlen, "spool path too long: %s", dir);
    sl_spool_state_initial(st, nrcpt);
    if ((fd = spool_open_entry(path)) < 0) {
        if (errno == ENOENT)
            return 0;
        spool_fail(err, errlen, "%s: %s", path,
                   errno == EBADMSG ? "not a regular file" : strerror(errno));
        sl_spool_state_free(st);
        return -1;
    }
    buf = sl_malloc(cap);
    n = read_bounded(fd, buf, cap);
    if (n < 0 && errno != EFBIG) { /* a read error (EIO): the file may be whole, and it is
                                      what keeps the delivered recipients from getting the
                                      message again, so it is never set aside for that */
        int e = errno;
        close(fd);
        free(buf);
        sl_spool_state_free(st);
        spool_fail(err, errlen, "%s: read: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    close(fd);
    if (n <= 0 || buf[n - 1] != '\n' || memchr(buf, '\0', (size_t)n) != NULL)
        why = n < 0 ? "too long" : "truncated";
    else {
        l = (struct spool_lines){buf, buf + n - 1};
        why = parse_state(&l, st);
        st->on_disk = true;
    }
    free(buf);
    if (why != NULL) {
        sl_spool_state_free(st);
        spool_fail(err, errlen, "%s: %s", path, why);
        errno = EBADMSG;
        return -1;
    }
    return 0;
}

/* put_reply - the reply as one printable line, cut to SL_REPLY_MAX - 1 */
static size_t put_reply(char *out, const char *reply)
{
    size_t n = strnlen(reply, SL_REPLY_MAX - 1);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)reply[i];
        out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    return n;
}

/* sl_spool_state_save - part K's state, durably; written as tmp/ID.K.PID, so the master can
 * remove what a writer it reaped left (sl_spool_state_forget) */
int sl_spool_state_save(const char *dir, const char *id, unsigned k,
                        const struct sl_spool_state *st, char *err, size_t errlen)
{
    char name[SL_SPOOL_ID_LEN + 16], tmpname[SL_SPOOL_ID_LEN + 40], *buf;
    size_t cap = STATE_FIXED + st->nrcpt * DONE_LINE_MAX, len;
    int rc;

    if (!state_name(name, sizeof name, id, k) || st->nrcpt > SL_SPOOL_RCPT_MAX)
        return spool_fail(err, errlen, "bad state %s.%u", id, k);
    snprintf(tmpname, sizeof tmpname, "%s.%ld", name, (long)getpid());
    buf = sl_malloc(cap);
    len = (size_t)snprintf(buf, cap, "attempts %" PRIu32 "\nnext %" PRId64 "\nreply ", st->attempts,
                           st->next < 0 ? 0 : st->next);
    len += put_reply(buf + len, st->reply);
    buf[len++] = '\n';
    if (st->held)
        len += (size_t)snprintf(buf + len, cap - len, "held 1\n");
    if (st->crashes > 0)
        len += (size_t)snprintf(buf + len, cap - len, "crashes %" PRIu32 "\n",
                                st->crashes > SL_SPOOL_CRASHES_MAX ? SL_SPOOL_CRASHES_MAX
                                                                   : st->crashes);
    for (size_t i = 0; i < st->nrcpt; i++) {
        if (st->status[i] == SL_RCPT_PENDING)
            continue;
        if (st->status[i] != SL_RCPT_DELIVERED && st->status[i] != SL_RCPT_BOUNCED)
            sl_msg_panic("recipient %zu of %s has status %d", i, id, st->status[i]);
        len += (size_t)snprintf(buf + len, cap - len, "done %zu %c\n", i, st->status[i]);
    }
    rc = spool_commit(dir, tmpname, SPOOL_STATE, name, buf, len, SPOOL_REPLACE, err, errlen) ==
                 SPOOL_COMMIT_OK
             ? 0
             : -1;
    free(buf);
    return rc;
}

/* state_tmp_of - is tmp/ entry name a state write of process pid ("ID.K.PID") */
static bool state_tmp_of(const char *name, pid_t pid)
{
    char id[SL_SPOOL_ID_LEN + 1], *end;
    const char *p = name + SL_SPOOL_ID_LEN + 1;
    long v;

    if (strnlen(name, SL_SPOOL_ID_LEN + 1) <= SL_SPOOL_ID_LEN || name[SL_SPOOL_ID_LEN] != '.')
        return false;
    memcpy(id, name, SL_SPOOL_ID_LEN);
    id[SL_SPOOL_ID_LEN] = '\0';
    if (!sl_spool_id_valid(id) || *p < '0' || *p > '9')
        return false;
    strtoul(p, &end, 10);
    if (*end != '.' || end[1] < '0' || end[1] > '9')
        return false;
    v = strtol(end + 1, &end, 10);
    return *end == '\0' && v == (long)pid;
}

/* sl_spool_state_forget - the state writes process pid (reaped: it can never finish them)
 * left in tmp/ go */
void sl_spool_state_forget(const char *dir, pid_t pid)
{
    char path[4096];
    struct dirent *e;
    DIR *d;

    if (!spool_path(path, sizeof path, dir, SPOOL_TMP, NULL) || (d = opendir(path)) == NULL)
        return;
    while ((e = readdir(d)) != NULL)
        if (state_tmp_of(e->d_name, pid) && unlinkat(dirfd(d), e->d_name, 0) == 0)
            sl_msg_info("spool: removed %s/%s, a state write its dead process left", path,
                        e->d_name);
    closedir(d);
}

/* sl_spool_state_free - the status array */
void sl_spool_state_free(struct sl_spool_state *st)
{
    free(st->status);
    st->status = NULL;
    st->nrcpt = 0;
}

/* sl_spool_part_done - every recipient of part k is delivered or bounced */
bool sl_spool_part_done(const struct sl_spool_msg *m, unsigned k, const struct sl_spool_state *st)
{
    if (st->nrcpt != m->nrcpt || st->status == NULL)
        return false;
    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpt[i].part == k && st->status[i] == SL_RCPT_PENDING)
            return false;
    return true;
}
