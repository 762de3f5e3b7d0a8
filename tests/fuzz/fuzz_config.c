/*
 * fuzz_config.c - fuzz target "config": the whole configuration file.
 *
 * The input is an INI file, loaded with sl_config_load_string as sluicectl
 * config check and a reload load it (the text ends at a NUL byte, as a C
 * string does).  A file that loads is then used as the daemon uses it: every
 * section described, every value set formatted, every option resolved for a
 * binding, a domain and a host the file names (regex sections matched), and
 * the settings of a delivery (sl_dest_load) computed for a few bindings and
 * domains.  The names asked for are bounded in number so that an input of a
 * few KB stays fast.
 * Promises checked: a file is refused exactly when it has diagnostics, each
 * one "fuzz.ini:..."; every binding named by a loaded config resolves.
 * Concurrency: one thread.  Trust boundary: the file is operator input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/sl_config.h"
#include "config/sl_dest.h"
#include "util/sl_msg.h"
#include "support.h"

#define NAMES_MAX 3 /* bindings, domains, hosts asked for */

/* Names to ask about: some of the file's own, and fixed ones. */
struct names {
    const char *binding[NAMES_MAX + 1], *domain[NAMES_MAX + 1], *host[NAMES_MAX + 1];
    size_t nbinding, ndomain, nhost;
};

/* pick - a few bindings, literal domains and hosts of the file, then fixed ones */
static void pick(const struct sl_config *cfg, struct names *n)
{
    memset(n, 0, sizeof *n);
    for (size_t i = 0; i < cfg->nbindings && n->nbinding < NAMES_MAX; i++)
        n->binding[n->nbinding++] = cfg->bindings[i].name;
    for (size_t i = 0; i < cfg->nsections; i++) {
        const struct sl_section *s = cfg->sections[i];
        if (s->domain != NULL && s->regex == NULL && n->ndomain < NAMES_MAX - 1)
            n->domain[n->ndomain++] = s->domain;
        if (s->host != NULL && n->nhost < NAMES_MAX - 1)
            n->host[n->nhost++] = s->host;
    }
    n->domain[n->ndomain++] = "Mail.Example.COM.";
    n->host[n->nhost++] = "mx.example.com";
}

/* describe - what config check and config eval --explain print of each section */
static void describe(const struct sl_config *cfg)
{
    char buf[2048];

    for (size_t i = 0; i < cfg->nsections; i++) {
        const struct sl_section *s = cfg->sections[i];
        sl_section_describe(cfg, s, buf, sizeof buf);
        FUZZ_CHECK(memchr(buf, '\0', sizeof buf) != NULL);
        for (int o = 0; o < SL_OPT__COUNT; o++)
            if (s->v[o].set)
                sl_value_format((enum sl_opt)o, &s->v[o], buf, sizeof buf);
    }
}

/* eval_all - every option for one binding x domain x host, and with the host unset */
static void eval_all(const struct sl_config *cfg, const struct names *n)
{
    char buf[2048], err[256];

    for (int o = 0; o < SL_OPT__COUNT; o++) {
        for (size_t h = 0; h < 2; h++) {
            struct sl_scope_ref ref = {.binding = n->binding[0],
                                       .domain = n->domain[0],
                                       .host = h == 0 ? n->host[0] : NULL};
            const struct sl_section *from;
            struct sl_value v;
            bool ok = sl_config_eval(cfg, (enum sl_opt)o, &ref, &v, &from, err, sizeof err);
            FUZZ_CHECK(ok); /* a binding the config lists always resolves */
            sl_value_format((enum sl_opt)o, &v, buf, sizeof buf);
        }
    }
    /* by group: every declared group, and one that is not */
    for (size_t g = 0; g <= cfg->ngroups && g < NAMES_MAX; g++) {
        struct sl_scope_ref ref = {
            .group = g < cfg->ngroups ? cfg->groups[g] : "no such group" /* never a valid name */,
            .domain = n->domain[0]};
        struct sl_value v;
        bool ok =
            sl_config_eval(cfg, SL_OPT_MAX_OUTBOUND_CONNECTIONS, &ref, &v, NULL, err, sizeof err);
        FUZZ_CHECK(ok == (g < cfg->ngroups));
    }
}

/* dests - what a worker reads for each delivery it makes */
static void dests(const struct sl_config *cfg, const struct names *n)
{
    struct sl_dest d;

    for (size_t b = 0; b < n->nbinding; b++)
        for (size_t i = 0; i < n->ndomain; i++) {
            sl_dest_load(cfg, n->binding[b], n->domain[i], "fuzz.test", &d);
            FUZZ_CHECK(d.helo != NULL && d.max_rcpts_batch > 0);
        }
}

/* LLVMFuzzerInitialize - once per process: quiet logs: a regex that fails to match warns */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sl_msg_set_level(SL_MSG_FATAL); /* a regex that fails to match warns */
    return 0;
}

/* LLVMFuzzerTestOneInput - one INI file: load it, then use it as the daemon does */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load_string("fuzz.ini", text, &d);
    struct names n;

    FUZZ_CHECK((cfg == NULL) == (d.n > 0));
    for (size_t i = 0; i < d.n; i++)
        FUZZ_CHECK(strncmp(d.lines[i], "fuzz.ini:", 9) == 0);
    if (cfg != NULL) {
        FUZZ_CHECK(cfg->nsections > 0 && cfg->nbindings > 0);
        FUZZ_CHECK(sl_config_binding(cfg, "default") != NULL);
        pick(cfg, &n);
        describe(cfg);
        eval_all(cfg, &n);
        dests(cfg, &n);
    }
    sl_config_free(cfg);
    sl_diag_free(&d);
    free(text);
    return 0;
}
