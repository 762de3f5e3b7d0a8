/*
 * address.c - RFC 5321 mailboxes: what inject and the bounce writer accept.
 *
 * A mailbox is Local-part "@" Domain (RFC 5321 4.1.2): the local part a
 * dot-string of atext atoms or a quoted string, the domain dot-separated
 * labels of letters, digits and hyphens, or an address literal [IPv4] or
 * [IPv6:...].  Stricter than the RFC on purpose: no space even when quoted, no
 * control byte, so an address is always one token on a spool line, a control
 * datagram or a log line.  Non-ASCII only for a message that needs SMTPUTF8
 * (RFC 6531, sl_spool_valid_address_utf8): well-formed UTF-8 without control
 * characters in the local part, and a domain that is a valid IDN (its A-label
 * is what the spool groups, routes and counts by).
 * Trust boundary: addresses come from the operator's command line or from a
 * peer's bounce; nothing is stored before passing here.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "spool_impl.h"
#include "util/sl_idna.h"

#define LABEL_MAX 63 /* RFC 1035 2.3.4 */

/* is_atext - RFC 5322 atext */
static bool is_atext(int c)
{
    return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* is_qtext - RFC 5321 qtextSMTP less the space (see the file comment) */
static bool is_qtext(int c)
{
    return c == 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126);
}

/* domain_at - the '@' that ends the local part, or NULL */
static const char *domain_at(const char *addr)
{
    size_t i = 1;

    if (addr[0] != '"')
        return strchr(addr, '@');
    while (addr[i] != '\0' && addr[i] != '"')
        i += addr[i] == '\\' && addr[i + 1] != '\0' ? 2 : 1;
    return addr[i] == '"' && addr[i + 1] == '@' ? addr + i + 1 : NULL;
}

/* bad_byte - why addr cannot be one clean token, or NULL; utf8: RFC 6531 UTF-8 allowed */
static const char *bad_byte(const char *addr, bool utf8)
{
    if (utf8 && !sl_idna_ascii(addr, strlen(addr)) && !sl_idna_utf8_ok(addr, strlen(addr)))
        return "not well-formed UTF-8 or contains a control character";
    for (const unsigned char *p = (const unsigned char *)addr; *p != '\0'; p++) {
        if (*p == '\r')
            return "contains CR";
        if (*p == '\n')
            return "contains LF";
        if (*p == ' ')
            return "contains a space";
        if (*p < 0x20 || *p == 0x7f)
            return "contains a control character";
        if (*p > 0x7f && !utf8)
            return "contains a non-ASCII byte";
    }
    return NULL;
}

/* local_ok - a dot-string or a quoted string of n bytes (a UTF-8 byte, already checked,
 * counts as atext and qtext: RFC 6531 3.3) */
static bool local_ok(const char *s, size_t n)
{
    bool dot_ok = false;

    if (s[0] == '"') {
        for (size_t i = 1; i + 1 < n; i++) {
            if (s[i] == '\\' && i + 2 < n)
                i++; /* quoted-pair: any printable byte */
            else if (!is_qtext((unsigned char)s[i]) && (unsigned char)s[i] < 0x80)
                return false;
        }
        return n >= 2 && s[n - 1] == '"';
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' && dot_ok)
            dot_ok = false;
        else if (is_atext((unsigned char)s[i]) || (unsigned char)s[i] >= 0x80)
            dot_ok = true;
        else
            return false;
    }
    return dot_ok; /* not empty and no final dot */
}

/* literal_ok - [IPv4] or [IPv6:...] of n bytes */
static bool literal_ok(const char *s, size_t n)
{
    char ip[64];
    unsigned char bin[16];

    if (n < 3 || s[n - 1] != ']' || n - 2 >= sizeof ip)
        return false;
    memcpy(ip, s + 1, n - 2);
    ip[n - 2] = '\0';
    if (strncasecmp(ip, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, ip + 5, bin) == 1;
    return inet_pton(AF_INET, ip, bin) == 1;
}

/* domain_ok - labels of letters, digits and inner hyphens, or a literal; a UTF-8 domain
 * (checked already) by its A-label */
static bool domain_ok(const char *s, size_t n)
{
    size_t label = 0;
    char a[SL_DOMAIN_MAX + 1];

    if (!sl_idna_ascii(s, n))
        return sl_idna_alabel(s, n, a, sizeof a) && domain_ok(a, strlen(a));
    if (n > 0 && s[0] == '[')
        return literal_ok(s, n);
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > LABEL_MAX || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum((unsigned char)s[i]) || (s[i] == '-' && label > 0))
            label++;
        else
            return false;
    }
    return true;
}

/* valid - an RFC 5321 (utf8: RFC 6531) mailbox within the limits, or "" if allowed */
static bool valid(const char *addr, bool allow_empty, bool utf8, char *err, size_t errlen)
{
    const char *why = NULL, *at;
    size_t len = strlen(addr), local;

    if (len == 0) {
        if (!allow_empty)
            spool_fail(err, errlen, "empty address");
        return allow_empty;
    }
    if ((why = bad_byte(addr, utf8)) != NULL)
        return spool_fail(err, errlen, "%s", why), false;
    if ((at = domain_at(addr)) == NULL)
        return spool_fail(err, errlen, "not local@domain"), false;
    local = (size_t)(at - addr);
    if (local > SL_LOCAL_MAX)
        why = "local part longer than 64 octets";
    else if (len - local - 1 > SL_DOMAIN_MAX)
        why = "domain longer than 255 octets";
    else if (len > SL_ADDR_MAX)
        why = "address longer than 254 octets";
    else if (local == 0 || !local_ok(addr, local))
        why = "bad local part";
    else if (!domain_ok(at + 1, len - local - 1))
        why = "bad domain";
    if (why != NULL)
        return spool_fail(err, errlen, "%s", why), false;
    return true;
}

/* sl_spool_valid_address - an RFC 5321 mailbox of ASCII within the limits, or "" */
bool sl_spool_valid_address(const char *addr, bool allow_empty, char *err, size_t errlen)
{
    return valid(addr, allow_empty, false, err, errlen);
}

/* sl_spool_valid_address_utf8 - the same, with RFC 6531 UTF-8 allowed */
bool sl_spool_valid_address_utf8(const char *addr, bool allow_empty, char *err, size_t errlen)
{
    return valid(addr, allow_empty, true, err, errlen);
}

/* sl_spool_address_domain - the domain, lower case (a UTF-8 one as its A-label); the literal
 * tag as "IPv6:" */
void sl_spool_address_domain(const char *addr, char *buf, size_t len)
{
    const char *at = domain_at(addr);
    size_t i = 0;

    if (len == 0)
        return;
    if (at != NULL && !sl_idna_ascii(at + 1, strlen(at + 1))) {
        if (!sl_idna_alabel(at + 1, strlen(at + 1), buf, len))
            buf[0] = '\0'; /* not a valid address: nothing to group by */
        return;
    }
    for (const char *p = at != NULL ? at + 1 : ""; *p != '\0' && i + 1 < len; p++)
        buf[i++] = (char)tolower((unsigned char)*p);
    buf[i] = '\0';
    if (strncmp(buf, "[ipv6:", 6) == 0)
        memcpy(buf + 1, "IPv6", 4);
}

/* sl_spool_printable - s for a message: non-printable bytes as \xNN, cut to fit */
void sl_spool_printable(const char *s, char *buf, size_t len)
{
    size_t i = 0;

    if (len == 0)
        return;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
            if (i + 1 >= len)
                break;
            buf[i++] = (char)*p;
        } else {
            if (i + 4 >= len)
                break;
            snprintf(buf + i, len - i, "\\x%02x", *p);
            i += 4;
        }
    }
    buf[i] = '\0';
}
