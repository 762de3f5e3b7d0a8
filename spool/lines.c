/*
 * lines.c - reading the "key value" lines of spool files, with bounds.
 *
 * Envelope and state files are text lines of a fixed order; these helpers
 * take them one at a time from a buffer that the caller read whole.
 * Concurrency: pure functions.
 * Trust boundary: the buffer may be damaged; nothing here reads past end.
 */
#include <string.h>

#include "spool_impl.h"

/* spool_next_line - the next line without its LF, or false at the end */
bool spool_next_line(struct spool_lines *l, const char **s, size_t *n)
{
    const char *nl;

    if (l->p >= l->end)
        return false;
    nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
    *s = l->p;
    *n = nl != NULL ? (size_t)(nl - l->p) : (size_t)(l->end - l->p);
    l->p = nl != NULL ? nl + 1 : l->end;
    return true;
}

/* spool_value_of - the text after "key " on the next line, or false */
bool spool_value_of(struct spool_lines *l, const char *key, const char **v, size_t *vn)
{
    size_t k = strlen(key), n;
    const char *s;

    if (!spool_next_line(l, &s, &n) || n < k + 1 || memcmp(s, key, k) != 0 || s[k] != ' ')
        return false;
    *v = s + k + 1;
    *vn = n - k - 1;
    return true;
}

/* spool_number_of - the next line as "key NUMBER" */
bool spool_number_of(struct spool_lines *l, const char *key, uint64_t max, uint64_t *out)
{
    const char *v;
    size_t vn;

    return spool_value_of(l, key, &v, &vn) && spool_parse_u64(v, vn, max, out);
}
