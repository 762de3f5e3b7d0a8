/*
 * sl_config_lint.h - the linter of `sluicectl config check`: hints in the
 * loader's errors (a misspelt option, a malformed section header) and
 * warnings about a config that loads but likely does not do what was meant.
 */
#ifndef SL_CONFIG_LINT_H
#define SL_CONFIG_LINT_H

#include <stdbool.h>
#include <stddef.h>

#include "config/sl_config.h"

/* The option name closest to key by edit distance when close enough to be a typo (at most
 * a third of its length, and 3), else NULL. */
const char *sl_config_suggest_option(const char *key);
/* The header line raw (as written, "[binding example]") in its fixed form
 * ([binding "example"]) into out; false when no fix can be guessed. */
bool sl_config_header_fix(const char *raw, char *out, size_t len);
/* Warnings about a loaded config, each "FILE:LINE: warning: ...", appended to w:
 *  - a /regex/ domain that is not anchored (^...$): it matches more than it says;
 *  - a bind_address that no interface of this host has (getifaddrs);
 *  - two bindings that send from one bind_address;
 *  - a value of a [domain] section shadowed for some bindings by a binding or binding_group
 *    section of the chain (which bindings, which section wins, with what value).
 * Returns how many were added. */
size_t sl_config_lint(const struct sl_config *cfg, struct sl_diag *w);
/* Every section that sets opt for ref, in the order of opt's chain: the first one wins, the
 * others are shadowed by it.  Returns how many (at most max); -1 with err for a bad ref. */
int sl_config_chain(const struct sl_config *cfg, enum sl_opt opt, const struct sl_scope_ref *ref,
                    const struct sl_section **out, size_t max, char *err, size_t errlen);

#endif
