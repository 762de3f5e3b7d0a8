/*
 * read.c - read a queued message back: its envelope (sl_spool_read) and its
 * stored body (sl_spool_body).
 *
 * Workers read envelopes at thousands per second, so the common case is one
 * open and one read of SPOOL_HEAD_FIRST bytes; a header with many recipients
 * grows the buffer up to SPOOL_HEAD_MAX.  The body is one pread of the tail,
 * or nothing more when sl_spool_read_full's one read brought the whole file.
 * Concurrency: any process; a message file never changes once in queue/.
 * Trust boundary: the file is ours but may be damaged: every line is checked
 * against the format of sl_spool.h (order, keys, numbers, addresses, part
 * numbering), and anything else is an error, never a crash.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/sl_msg.h"
#include "spool_impl.h"

/* token_ok - n printable bytes and no space, as long as a binding name may be: a longer one
 * would pass here and fail every job that names it */
static bool token_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return n > 0 && n <= SL_SPOOL_BINDING_MAX;
}

/* read_header - bytes of queue/ID up to and including the blank line; *have is
 * how many were read, *whole whether they are the whole file.  NULL with errno EBADMSG when
 * the file is damaged (truncated, header too long), else a read error's own errno (EIO, a
 * disk that may answer later: the message is not damaged for it). */
static char *read_header(int fd, size_t *hlen, size_t *have_out, bool *whole, char *err,
                         size_t errlen)
{
    size_t cap = SPOOL_HEAD_FIRST, have = 0;
    char *buf = sl_malloc(cap), *end;

    for (;;) {
        ssize_t n = read(fd, buf + have, cap - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            spool_fail(err, errlen, "read: %s", strerror(errno));
            break;
        }
        have += (size_t)n;
        if ((end = memmem(buf, have, "\n\n", 2)) != NULL) {
            *hlen = (size_t)(end - buf) + 2;
            *have_out = have;
            /* a short read of a regular file ends at its end (it never changes in queue/) */
            *whole = have < cap;
            return buf;
        }
        if (n == 0 || (have == cap && cap >= SPOOL_HEAD_MAX)) {
            spool_fail(err, errlen, n == 0 ? "truncated header" : "header too long");
            errno = EBADMSG; /* it never changes in queue/ */
            break;
        }
        if (have == cap) {
            cap = cap * 2 < SPOOL_HEAD_MAX ? cap * 2 : SPOOL_HEAD_MAX;
            buf = sl_realloc(buf, cap);
        }
    }
    int e = errno;
    free(buf);
    errno = e;
    return NULL;
}

/* address_ok - a valid address of m: UTF-8 (RFC 6531) only when m needs SMTPUTF8 */
static bool address_ok(const struct sl_spool_msg *m, const char *addr, bool empty)
{
    if (m->smtputf8)
        return sl_spool_valid_address_utf8(addr, empty, NULL, 0);
    return sl_spool_valid_address(addr, empty, NULL, 0);
}

/* add_rcpt - one "rcpt PART ADDRESS" value, checking the part numbering */
static bool add_rcpt(struct sl_spool_msg *m, const char *v, size_t vn, size_t *cap)
{
    const char *sp = memchr(v, ' ', vn);
    char *addr, domain[SL_DOMAIN_MAX + 1];
    uint64_t part;

    if (sp == NULL || !spool_parse_u64(v, (size_t)(sp - v), SL_SPOOL_PARTS_MAX - 1, &part) ||
        m->nrcpt >= SL_SPOOL_RCPT_MAX)
        return false;
    addr = sl_strndup(sp + 1, vn - (size_t)(sp + 1 - v));
    if (!address_ok(m, addr, false) || part > m->nparts) {
        free(addr);
        return false;
    }
    sl_spool_address_domain(addr, domain, sizeof domain);
    if (part == m->nparts) { /* a new part: its domain must be new too */
        for (size_t i = 0; i < m->nparts; i++)
            if (strcmp(m->domain[i], domain) == 0)
                return free(addr), false;
        m->domain = sl_realloc(m->domain, (m->nparts + 1) * sizeof *m->domain);
        m->domain[m->nparts++] = sl_strdup(domain);
    } else if (strcmp(m->domain[part], domain) != 0)
        return free(addr), false;
    if (m->nrcpt == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        m->rcpt = sl_realloc(m->rcpt, *cap * sizeof *m->rcpt);
    }
    m->rcpt[m->nrcpt++] = (struct sl_spool_rcpt){.addr = addr, .part = (uint16_t)part};
    return true;
}

/* starts - the next line is "key ..." */
static bool starts(const struct spool_lines *l, const char *key)
{
    size_t n = strlen(key);
    return (size_t)(l->end - l->p) > n && memcmp(l->p, key, n) == 0 && l->p[n] == ' ';
}

/* text_of - an optional "key TEXT" line (RFC 3461 values): a new string, or NULL when absent;
 * false when present and malformed */
static bool text_of(struct spool_lines *l, const char *key, char **out)
{
    const char *v;
    size_t vn;

    *out = NULL;
    if (!starts(l, key))
        return true;
    if (!spool_value_of(l, key, &v, &vn) || vn == 0 || vn > 500)
        return false;
    for (size_t i = 0; i < vn; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] >= 0x7f)
            return false;
    *out = sl_strndup(v, vn);
    return true;
}

/* rcpt_dsn - the optional notify and orcpt lines after a rcpt line */
static bool rcpt_dsn(struct spool_lines *l, struct sl_spool_rcpt *r)
{
    uint64_t bits;

    if (starts(l, "notify")) {
        if (!spool_number_of(l, "notify", SL_NOTIFY_ALL, &bits) || bits == 0)
            return false;
        r->notify = (unsigned)bits;
    }
    return text_of(l, "orcpt", &r->orcpt);
}

/* parse_header - the envelope lines, strictly in the order of sl_spool.h */
static const char *parse_header(struct spool_lines *l, const char *id, struct sl_spool_msg *m)
{
    const char *v, *s;
    size_t vn, n, cap = 0;
    uint64_t arrival, dsn, utf8;

    if (!spool_next_line(l, &s, &n) || n != 14 || memcmp(s, "sluice-spool 1", 14) != 0)
        return "not a version 1 spool file";
    if (!spool_value_of(l, "id", &v, &vn) || vn != SL_SPOOL_ID_LEN || memcmp(v, id, vn) != 0)
        return "id line does not match the file name";
    if (!spool_number_of(l, "arrival", SPOOL_NEXT_MAX, &arrival))
        return "bad arrival line";
    m->arrival = (int64_t)arrival;
    if (!spool_value_of(l, "binding", &v, &vn) || !token_ok(v, vn))
        return "bad binding line";
    m->binding = sl_strndup(v, vn);
    if (!spool_number_of(l, "dsn", 1, &dsn))
        return "bad dsn line";
    m->dsn = dsn == 1;
    if (!spool_value_of(l, "from", &v, &vn))
        return "bad from line";
    m->sender = sl_strndup(v, vn);
    if (!sl_spool_valid_address_utf8(m->sender, true, NULL, 0)) /* ASCII unless smtputf8, below */
        return "bad sender";
    if (!spool_number_of(l, "size", UINT64_MAX, &m->size))
        return "bad size line";
    if (!text_of(l, "envid", &m->envid))
        return "bad envid line";
    if (starts(l, "ret")) {
        if (!spool_value_of(l, "ret", &v, &vn) || vn != 4 ||
            (memcmp(v, "hdrs", 4) != 0 && memcmp(v, "full", 4) != 0))
            return "bad ret line";
        m->ret_hdrs = memcmp(v, "hdrs", 4) == 0;
        m->ret_full = !m->ret_hdrs;
    }
    if (starts(l, "smtputf8")) {
        if (!spool_number_of(l, "smtputf8", 1, &utf8) || utf8 != 1)
            return "bad smtputf8 line";
        m->smtputf8 = true;
    }
    if (!address_ok(m, m->sender, true))
        return "UTF-8 sender without smtputf8";
    while (l->p < l->end) {
        if (!spool_value_of(l, "rcpt", &v, &vn) || !add_rcpt(m, v, vn, &cap))
            return "bad rcpt line";
        if (!rcpt_dsn(l, &m->rcpt[m->nrcpt - 1]))
            return "bad notify or orcpt line";
    }
    return m->nrcpt > 0 ? NULL : "no recipient";
}

/* body_fits - can n stored bytes be the body of m?  Stuffing adds a dot to a line that starts
 * with one, and such a line is at least 3 bytes (".\r\n"): the stored body is from SIZE to
 * SIZE + SIZE / 3 bytes.  A damaged file longer than that is not read into memory whole. */
static bool body_fits(const struct sl_spool_msg *m, uint64_t n)
{
    return n >= 2 && n >= m->size && n - m->size <= m->size / 3;
}

/* keep_body - the stored body from a buffer holding the whole file; false when it is
 * not a body (too short or too long for its SIZE, no final CRLF): sl_spool_body then
 * reports it */
static bool keep_body(struct sl_spool_msg *m, const char *buf, size_t have)
{
    size_t n;

    if (have < m->body_off || !body_fits(m, have - m->body_off) || buf[have - 2] != '\r' ||
        buf[have - 1] != '\n')
        return false;
    n = have - m->body_off;
    m->body = sl_malloc(n + 1);
    memcpy(m->body, buf + m->body_off, n);
    m->body[n] = '\0';
    m->body_len = n;
    return true;
}

/* read_msg - the envelope of queue/ID, and its body when asked and at hand */
static int read_msg(const char *dir, const char *id, struct sl_spool_msg *out, bool body, char *err,
                    size_t errlen)
{
    char path[4096], *buf;
    const char *why;
    size_t hlen, have;
    bool whole;
    struct spool_lines l;
    int fd;

    memset(out, 0, sizeof *out);
    if (!sl_spool_id_valid(id))
        return spool_fail(err, errlen, "bad queue id");
    if (!spool_path(path, sizeof path, dir, SPOOL_QUEUE, id))
        return spool_fail(err, errlen, "spool path too long: %s", dir);
    if ((fd = spool_open_entry(path)) < 0)
        return spool_fail(err, errlen, "%s: %s", path,
                          errno == EBADMSG ? "not a regular file" : strerror(errno));
    buf = read_header(fd, &hlen, &have, &whole, err, errlen);
    if (buf == NULL) {
        int e = errno; /* damaged (EBADMSG), or a read error: not close's */
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    memcpy(out->id, id, SL_SPOOL_ID_LEN + 1);
    out->body_off = hlen;
    /* The blank line ends the header; the lines before it hold no NUL. */
    l = (struct spool_lines){buf, buf + hlen - 1};
    why = memchr(buf, '\0', hlen) != NULL ? "NUL byte in header" : parse_header(&l, id, out);
    if (why == NULL && body && whole)
        keep_body(out, buf, have);
    free(buf);
    if (why != NULL) {
        sl_spool_msg_free(out);
        spool_fail(err, errlen, "%s: %s", path, why);
        errno = EBADMSG;
        return -1;
    }
    return 0;
}

/* sl_spool_read - the envelope of queue/ID */
int sl_spool_read(const char *dir, const char *id, struct sl_spool_msg *out, char *err,
                  size_t errlen)
{
    return read_msg(dir, id, out, false, err, errlen);
}

/* sl_spool_read_full - the envelope of queue/ID, and its body when one read got it */
int sl_spool_read_full(const char *dir, const char *id, struct sl_spool_msg *out, char *err,
                       size_t errlen)
{
    return read_msg(dir, id, out, true, err, errlen);
}

/* sl_spool_msg_free - everything sl_spool_read allocated */
void sl_spool_msg_free(struct sl_spool_msg *m)
{
    for (size_t i = 0; i < m->nrcpt; i++) {
        free(m->rcpt[i].addr);
        free(m->rcpt[i].orcpt);
    }
    free(m->envid);
    for (size_t i = 0; i < m->nparts; i++)
        free(m->domain[i]);
    free(m->rcpt);
    free(m->domain);
    free(m->binding);
    free(m->sender);
    free(m->body);
    memset(m, 0, sizeof *m);
}

/* pread_all - n bytes at off; -1 with errno EBADMSG at an early end of file (it never
 * changes in queue/), else a read error's own */
static int pread_all(int fd, char *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            errno = EBADMSG;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* sl_spool_body - the stored body: the file from body_off to its end */
int sl_spool_body(const char *dir, const struct sl_spool_msg *m, char **body, size_t *len,
                  char *err, size_t errlen)
{
    char path[4096], *buf;
    struct stat st;
    size_t n;
    int fd;

    *body = NULL;
    *len = 0;
    if (m->body != NULL) { /* read with the envelope, checked then */
        *body = sl_malloc(m->body_len + 1);
        memcpy(*body, m->body, m->body_len + 1);
        *len = m->body_len;
        return 0;
    }
    if (!spool_path(path, sizeof path, dir, SPOOL_QUEUE, m->id))
        return spool_fail(err, errlen, "spool path too long: %s", dir);
    if ((fd = spool_open_entry(path)) < 0 || fstat(fd, &st) < 0) {
        spool_fail(err, errlen, "%s: %s", path,
                   errno == EBADMSG ? "not a regular file" : strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    uint64_t stored = st.st_size > (off_t)m->body_off ? (uint64_t)st.st_size - m->body_off : 0;
    if (!body_fits(m, stored)) {
        close(fd);
        spool_fail(err, errlen, "%s: body %s (%" PRIu64 " bytes stored for a size of %" PRIu64 ")",
                   path, stored < m->size ? "truncated" : "too long", stored, m->size);
        errno = EBADMSG;
        return -1;
    }
    n = (size_t)st.st_size - m->body_off;
    buf = sl_malloc(n + 1);
    if (pread_all(fd, buf, n, (off_t)m->body_off) < 0) {
        int e = errno;
        close(fd);
        free(buf);
        spool_fail(err, errlen, "%s: body: %s", path, e == EBADMSG ? "truncated" : strerror(e));
        errno = e;
        return -1;
    }
    if (buf[n - 2] != '\r' || buf[n - 1] != '\n') {
        close(fd);
        free(buf);
        spool_fail(err, errlen, "%s: body not ending in CRLF", path);
        errno = EBADMSG;
        return -1;
    }
    close(fd);
    buf[n] = '\0';
    *body = buf;
    *len = n;
    return 0;
}
