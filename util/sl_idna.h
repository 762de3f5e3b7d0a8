/*
 * sl_idna.h - internationalised mail addresses (RFC 6531) and domain names (IDNA2008).
 *
 * A domain is routed, resolved and counted by its A-label form ("xn--bcher-kva.example"),
 * lower case, whatever spelling the sender or the operator used ("Bücher.example"): one
 * domain is one queue and one counter.  The conversion is libidn2's (IDNA2008 with the
 * UTS #46 non-transitional mapping, which also folds case).
 * Concurrency: pure functions, safe in every process.
 * Trust boundary: the bytes come from clients, the spool or the operator; they are checked
 * here (well-formed UTF-8, no control character) before anything uses them.
 */
#ifndef SL_IDNA_H
#define SL_IDNA_H

#include <stdbool.h>
#include <stddef.h>

#define SL_IDNA_NAME_MAX 256 /* a domain name's A-label, with its NUL */

/* Are the n bytes at s all ASCII? */
bool sl_idna_ascii(const char *s, size_t n);

/* Are the n bytes at s well-formed UTF-8 (RFC 3629: no overlong form, no surrogate, at most
 * U+10FFFF) without any control character (C0, DEL or C1)? */
bool sl_idna_utf8_ok(const char *s, size_t n);
/* The same, control characters allowed. */
bool sl_idna_utf8_wellformed(const char *s, size_t n);
/* The A-label form of the n-byte domain at s (UTF-8), lower case, into out; false when it is
 * not a valid internationalised domain name or does not fit outlen. */
bool sl_idna_alabel(const char *s, size_t n, char *out, size_t outlen);

#endif
