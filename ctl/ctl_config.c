/*
 * ctl_config.c - sluicectl config check | eval: validate the INI file, and show
 * which value an option takes in a scope and where it comes from.
 *
 * `config check [--strict]` prints every error as FILE:LINE: message on stderr
 * (exit 1), or the linter's warnings (FILE:LINE: warning: ...) on stderr and
 * FILE: OK (N sections, M bindings[, W warnings]) on stdout, exit 0 (1 with
 * --strict and any warning).  A delivery_log the file sets that no user could
 * append to (ctl_log_check.c) is an error too.  `config show [-n]` is in ctl_config_show.c. `config
 * eval` prints Momentum's console form, `Max_Outbound_Connections = 15`, and with
 * --explain the section (and line) that supplied it.  Scopes are given as
 * flags (--binding B) or positionally as Momentum's console takes them
 * (binding B domain D host H OPTION).
 * Exit: 0 success, 1 a bad config or an unknown binding/group, 2 bad usage
 * (an unknown option name included).
 * Concurrency: a short-lived process that only reads the file.
 * Trust boundary: the arguments and the file are the operator's.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config/sl_config.h"
#include "config/sl_config_lint.h"
#include "ctl/sl_ctl.h"

#define EVAL_USAGE                                                                                 \
    "config eval [--explain [--chain]] [--binding B] [--binding-group G] [--domain D] [--host H] " \
    "OPTION\n"                                                                                     \
    "       sluicectl [-c CONFIG] config eval [binding B] [binding_group G] [domain D] [host H] "  \
    "OPTION"

struct eval_args {
    bool explain, chain;
    struct sl_scope_ref ref;
    const char *option;
};

/* usage - one line of complaint and the synopsis; the usage status */
static int usage(const char *why)
{
    if (why != NULL)
        fprintf(stderr, "sluicectl: config: %s\n", why);
    fprintf(stderr, "usage: sluicectl [-c CONFIG] config check [--strict]\n");
    fprintf(stderr, "       sluicectl [-c CONFIG] config show [-n]\n");
    fprintf(stderr, "       sluicectl [-c CONFIG] " EVAL_USAGE "\n");
    return 2;
}

/* print_diag - every collected error, one per line, on stderr */
static void print_diag(struct sl_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "%s\n", d->lines[i]);
    sl_diag_free(d);
}

/* check - load and validate, then lint; summarise on success (warnings fail only --strict) */
static int check(const char *cfgpath, int argc, char **argv)
{
    struct sl_diag d = {0}, w = {0};
    struct sl_config *cfg;
    bool strict = argc == 2 && strcmp(argv[1], "--strict") == 0;
    size_t nw;

    if (argc > 2 || (argc == 2 && !strict)) {
        fprintf(stderr, "sluicectl: config check: unexpected argument %s\n", argv[argc - 1]);
        return usage(NULL);
    }
    cfg = sl_config_load(cfgpath, &d);
    if (cfg == NULL) {
        print_diag(&d);
        return 1;
    }
    if (sl_ctl_cluster_check(cfg) != 0 || sl_ctl_log_check(cfg) != 0) {
        sl_config_free(cfg);
        return 1;
    }
    nw = sl_config_lint(cfg, &w);
    print_diag(&w);
    printf("%s: OK (%zu section%s, %zu binding%s, %zu listener%s)", cfgpath, cfg->nsections,
           cfg->nsections == 1 ? "" : "s", cfg->nbindings, cfg->nbindings == 1 ? "" : "s",
           cfg->nlisteners, cfg->nlisteners == 1 ? "" : "s");
    if (nw > 0)
        printf(", %zu warning%s%s", nw, nw == 1 ? "" : "s", strict ? " (--strict: failed)" : "");
    printf("\n");
    sl_config_free(cfg);
    return strict && nw > 0 ? 1 : 0;
}

/* scope_slot - the ref field a scope word names (flag or positional), or NULL */
static const char **scope_slot(const char *word, struct sl_scope_ref *ref, bool *flag)
{
    static const struct {
        const char *word;
        size_t field;
    } words[] = {
        {"binding", offsetof(struct sl_scope_ref, binding)},
        {"binding-group", offsetof(struct sl_scope_ref, group)},
        {"binding_group", offsetof(struct sl_scope_ref, group)},
        {"domain", offsetof(struct sl_scope_ref, domain)},
        {"host", offsetof(struct sl_scope_ref, host)},
    };

    *flag = strncmp(word, "--", 2) == 0;
    if (*flag)
        word += 2;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(word, words[i].word) == 0)
            return (const char **)((char *)ref + words[i].field);
    return NULL;
}

/* parse_eval - the arguments of config eval; a usage complaint or NULL */
static const char *parse_eval(int argc, char **argv, struct eval_args *a)
{
    for (int i = 1; i < argc; i++) {
        bool flag;
        const char **slot = scope_slot(argv[i], &a->ref, &flag);

        if (strcmp(argv[i], "--explain") == 0) {
            a->explain = true;
        } else if (strcmp(argv[i], "--chain") == 0) {
            a->chain = a->explain = true;
        } else if (slot != NULL && (flag || i + 2 < argc)) {
            /* A positional scope word needs its name and an OPTION after it:
             * otherwise it is the OPTION (binding_group is one). */
            if (i + 1 >= argc)
                return "a scope flag needs a name";
            if (*slot != NULL)
                return "each scope may be given once";
            i++; /* a domain or host in UTF-8 by its A-label, as its section is kept */
            *slot = slot == &a->ref.domain || slot == &a->ref.host ? sl_ctl_domain_arg(argv[i])
                                                                   : argv[i];
        } else if (argv[i][0] == '-') {
            return "unknown flag for config eval";
        } else if (a->option != NULL) {
            return "config eval takes one OPTION";
        } else {
            a->option = argv[i];
        }
    }
    return a->option == NULL ? "config eval needs an OPTION" : NULL;
}

/* explain - the second line: the section and line that set the value */
static void explain(const struct sl_config *cfg, const struct sl_section *from,
                    const struct sl_value *v)
{
    char name[1024];

    if (from != NULL) {
        sl_section_name(from, name, sizeof name);
        printf("  from %s (%s:%u)\n", name, cfg->path, v->line);
    } else if (v->set) {
        printf("  from the built-in default\n");
    } else {
        printf("  not set in any section, and without a built-in default\n");
    }
}

/* eval - resolve one option in the scope the arguments give */
static int eval(const char *cfgpath, int argc, char **argv)
{
    struct eval_args a = {0};
    const char *why = parse_eval(argc, argv, &a);
    const struct sl_section *from;
    struct sl_diag d = {0};
    struct sl_config *cfg;
    char display[128], value[1200], err[512];
    struct sl_value v;
    int opt;

    if (why != NULL)
        return usage(why);
    if ((opt = sl_opt_lookup(a.option)) < 0) {
        fprintf(stderr, "sluicectl: config eval: unknown option \"%s\"\n", a.option);
        return 2;
    }
    if ((cfg = sl_config_load(cfgpath, &d)) == NULL) {
        print_diag(&d);
        return 1;
    }
    if (!sl_config_eval(cfg, (enum sl_opt)opt, &a.ref, &v, &from, err, sizeof err)) {
        fprintf(stderr, "sluicectl: config eval: %s\n", err);
        sl_config_free(cfg);
        return 1;
    }
    sl_opt_display((enum sl_opt)opt, display, sizeof display);
    sl_value_format((enum sl_opt)opt, &v, value, sizeof value);
    printf("%s = %s\n", display, value);
    if (a.explain)
        explain(cfg, from, &v);
    if (a.chain)
        sl_ctl_config_chain(cfg, (enum sl_opt)opt, &a.ref);
    sl_config_free(cfg);
    return 0;
}

/* sl_ctl_config - sluicectl config check | eval */
int sl_ctl_config(const char *cfgpath, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "check") == 0)
        return check(cfgpath, argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "show") == 0)
        return sl_ctl_config_show(cfgpath, argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "eval") == 0)
        return eval(cfgpath, argc - 1, argv + 1);
    return usage(argc < 2 ? "missing check, show or eval" : "unknown config subcommand");
}
