/*
 * mta_sts_cache.c - the MTA-STS policy in force for a domain (sl_sts_get):
 * the TXT record, the policy cache on disk, the fetch, and the worker's memo.
 *
 * The cache is one file per domain in spool_dir/mta-sts/, named by the
 * domain (a lower-case host name, checked: nothing else can name a file
 * there), written as a temporary file renamed into place, so every worker
 * and the next start read a whole policy or none.  Its format:
 *     sluice-mta-sts 1
 *     id ID
 *     fetched UNIX-TIME
 *     <blank line>
 *     the policy body as fetched
 * It is parsed again on every load: a file on disk is a trust boundary too.
 *
 * The memo (struct sl_sts_memo) is the caller's: one per worker, no globals.
 * It keeps each domain's answer SL_STS_RECHECK_S seconds, so a busy domain
 * costs no DNS query per connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "mta_sts_impl.h"
#include "util/sl_file.h"
#include "util/sl_msg.h"

#define MAGIC       "sluice-mta-sts 1"
#define HEADER_MAX  128 /* the lines before the body */
#define TXT_RECORDS 8

/* cache_path - DIR/DOMAIN, or false when the domain cannot name a file */
static bool cache_path(const char *dir, const char *domain, char *buf, size_t len)
{
    return sl_sts_domain_ok(domain) && (size_t)snprintf(buf, len, "%s/%s", dir, domain) < len;
}

/* write_all - the whole buffer to fd */
static bool write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

/* sl_sts_cache_store - write the policy file atomically (tmp + rename) */
int sl_sts_cache_store(const char *dir, const char *domain, const struct sl_sts_policy *p,
                       const char *body, size_t len, char *err, size_t errlen)
{
    char path[1024], tmp[1100], head[HEADER_MAX];
    int fd, hn;
    bool ok;

    if (!cache_path(dir, domain, path, sizeof path)) {
        snprintf(err, errlen, "%.80s cannot name a cache file", domain);
        return -1;
    }
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    /* a dot file: no domain starts with a dot, so it cannot be taken for a policy */
    snprintf(tmp, sizeof tmp, "%s/.%s.%ld.tmp", dir, domain, (long)getpid());
    /* always a new file: whatever is at that name (a leftover, a planted symbolic link whose
     * target O_TRUNC would empty) is removed first, never opened */
    if (unlink(tmp) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    hn = snprintf(head, sizeof head, "%s\nid %s\nfetched %lld\n\n", MAGIC, p->id,
                  (long long)p->fetched);
    ok = write_all(fd, head, (size_t)hn) && write_all(fd, body, len) && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* read_file - at most max bytes of path, NUL-terminated; NULL with errno.  Only a regular
 * file, never through a symbolic link: a FIFO there would hold the reader for ever. */
static char *read_file(const char *path, size_t max, size_t *len)
{
    int fd = sl_open_regular(path, O_RDONLY);
    char *buf;
    ssize_t r = 0;

    *len = 0;
    if (fd < 0)
        return NULL;
    buf = sl_malloc(max + 1);
    while (*len < max && ((r = read(fd, buf + *len, max - *len)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0)
            *len += (size_t)r;
    close(fd);
    buf[*len] = '\0';
    return buf;
}

/* parse_header - the lines before the body; where the body starts, or NULL */
static const char *parse_header(const char *s, char id[33], long long *fetched)
{
    char idbuf[64];
    int used = 0;

    if (strncmp(s, MAGIC "\n", sizeof MAGIC) != 0)
        return NULL;
    s += sizeof MAGIC;
    /* A fetch time before 1970 was never written here (it is the wall clock at the fetch),
     * and one far enough back made sl_sts_fresh's now - fetched overflow: refused. */
    if (sscanf(s, "id %40[A-Za-z0-9]\nfetched %lld\n\n%n", idbuf, fetched, &used) != 2 ||
        used == 0 || strlen(idbuf) > 32 || *fetched < 0)
        return NULL;
    strlcpy(id, idbuf, 33);
    return s + used;
}

/* sl_sts_cache_load - the cached policy, expired or not */
int sl_sts_cache_load(const char *dir, const char *domain, struct sl_sts_policy *p, char *err,
                      size_t errlen)
{
    char path[1024], id[33], perr[160];
    long long fetched = 0;
    const char *body;
    size_t len;
    char *buf;
    int r = -1;

    memset(p, 0, sizeof *p);
    if (!cache_path(dir, domain, path, sizeof path)) {
        snprintf(err, errlen, "%.80s cannot name a cache file", domain);
        return -1;
    }
    if ((buf = read_file(path, HEADER_MAX + SL_STS_BODY_MAX, &len)) == NULL) {
        if (errno == ENOENT)
            return 1;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if ((body = parse_header(buf, id, &fetched)) == NULL)
        snprintf(err, errlen, "%s is not a policy cache file", path);
    else if (sl_sts_parse(body, len - (size_t)(body - buf), p, perr, sizeof perr) < 0)
        snprintf(err, errlen, "%s: %s", path, perr);
    else {
        strlcpy(p->id, id, sizeof p->id);
        p->fetched = (time_t)fetched;
        r = 0;
    }
    free(buf);
    return r;
}

/* memo_find - the domain's entry checked within SL_STS_RECHECK_S, or NULL */
static int memo_find(const struct sl_sts_memo *m, const char *domain, time_t now)
{
    for (int i = 0; i < SL_STS_MEMO_ENTRIES; i++)
        if (m->e[i].checked != 0 && strcmp(m->e[i].domain, domain) == 0 && m->e[i].checked <= now &&
            now - m->e[i].checked < SL_STS_RECHECK_S &&
            (m->e[i].src == SL_STS_SRC_NONE || sl_sts_fresh(&m->e[i].p, now)))
            return i;
    return -1;
}

/* memo_put - remember an answer: the domain's own slot, a free one, or the oldest */
static void memo_put(struct sl_sts_memo *m, const char *domain, time_t now, enum sl_sts_source src,
                     const struct sl_sts_policy *p)
{
    int slot = 0;

    for (int i = 0; i < SL_STS_MEMO_ENTRIES; i++) {
        if (m->e[i].checked != 0 && strcmp(m->e[i].domain, domain) == 0) {
            slot = i;
            break;
        }
        if (m->e[i].checked < m->e[slot].checked)
            slot = i; /* free slots (0) come first, then the oldest */
    }
    strlcpy(m->e[slot].domain, domain, sizeof m->e[slot].domain);
    m->e[slot].checked = now > 0 ? now : 1;
    m->e[slot].src = src;
    m->e[slot].p = *p;
}

/* note_set - the note, when the caller wants one */
static void note_set(char *note, size_t notelen, const char *what, const char *then)
{
    if (note != NULL && notelen > 0)
        snprintf(note, notelen, "%s%s%s", what, then[0] != '\0' ? ", " : "", then);
}

/* fetch_new - fetch, parse and cache the policy for id; 0, or -1 with err */
static int fetch_new(const struct sl_sts_env *env, const char *domain, const char *id,
                     struct sl_sts_policy *p, char *err, size_t errlen)
{
    char perr[200], cerr[300];
    char *body;
    size_t len;

    if (sl_sts_fetch(env, domain, &body, &len, err, errlen) < 0)
        return -1;
    if (sl_sts_parse(body, len, p, perr, sizeof perr) < 0) {
        snprintf(err, errlen, "policy invalid: %s", perr);
        free(body);
        return -1;
    }
    strlcpy(p->id, id, sizeof p->id);
    p->fetched = env->now;
    if (sl_sts_cache_store(env->cache_dir, domain, p, body, len, cerr, sizeof cerr) < 0)
        sl_msg_warn("mta-sts: %s: the policy is used but not cached: %s", domain, cerr);
    free(body);
    return 0;
}

/* txt_id - the policy id published for domain: 1 with id, 0 when none is
 * published, -1 with why when the record cannot be had or read */
static int txt_id(const struct sl_sts_env *env, const char *domain, char id[33], char *why,
                  size_t whylen)
{
    char(*txt)[SL_DNS_TXT_MAX] = sl_calloc(TXT_RECORDS, SL_DNS_TXT_MAX);
    char name[300];
    size_t n = 0;
    int r = -1;

    snprintf(name, sizeof name, "_mta-sts.%s", domain);
    if (sl_dns_txt(env->dns, name, txt, TXT_RECORDS, &n, why, whylen) == SL_DNS_OK)
        r = sl_sts_txt_id((const char(*)[SL_DNS_TXT_MAX])txt, n, id, why, whylen);
    free(txt);
    return r;
}

/* lookup - the work behind sl_sts_get, without the memo */
static enum sl_sts_source lookup(const struct sl_sts_env *env, const char *domain,
                                 struct sl_sts_policy *p, char *note, size_t notelen)
{
    char id[33] = "", why[400] = "", lerr[300];
    struct sl_sts_policy cached;
    bool have_cache;
    int tr = txt_id(env, domain, id, why, sizeof why), lr;

    lr = sl_sts_cache_load(env->cache_dir, domain, &cached, lerr, sizeof lerr);
    if (lr < 0)
        sl_msg_warn("mta-sts: %s: cached policy ignored: %s", domain, lerr);
    have_cache = lr == 0 && sl_sts_fresh(&cached, env->now);
    if (tr == 1 && have_cache && strcmp(cached.id, id) == 0) {
        *p = cached;
        return SL_STS_SRC_CACHE;
    }
    if (tr == 1 && fetch_new(env, domain, id, p, why, sizeof why) == 0)
        return SL_STS_SRC_FETCHED;
    /* RFC 8461 5.1: no record, or no policy to be had now: an unexpired
     * cached policy still holds.  A domain that publishes nothing gets no note. */
    if (have_cache) {
        *p = cached;
        if (tr != 0)
            note_set(note, notelen, why, "using the cached policy");
        return SL_STS_SRC_CACHE;
    }
    if (tr != 0)
        note_set(note, notelen, why, "no policy");
    memset(p, 0, sizeof *p);
    return SL_STS_SRC_NONE;
}

/* sl_sts_get - the policy in force for domain, the memo first */
enum sl_sts_source sl_sts_get(const struct sl_sts_env *env, struct sl_sts_memo *memo,
                              const char *domain, struct sl_sts_policy *p, char *note,
                              size_t notelen)
{
    enum sl_sts_source src;
    int i;

    if (note != NULL && notelen > 0)
        note[0] = '\0';
    memset(p, 0, sizeof *p);
    if (!sl_sts_domain_ok(domain))
        return SL_STS_SRC_NONE; /* an address literal or odd name has no policy host */
    if (memo != NULL && (i = memo_find(memo, domain, env->now)) >= 0) {
        *p = memo->e[i].p;
        return memo->e[i].src;
    }
    src = lookup(env, domain, p, note, notelen);
    if (memo != NULL)
        memo_put(memo, domain, env->now, src, p);
    return src;
}
