/*
 * ctl_config_show.c - sluicectl config show [-n], and the chain that
 * `config eval --explain --chain` prints.
 *
 * config show: the effective configuration, section by section in file order:
 * [global] with the value every option takes there (set in the file or the
 * built-in default), then each other section with the options it sets.  With
 * -n (like postconf -n) only what the file sets, and in [global] only the
 * values that differ from the defaults.  Values are written as the file would
 * write them (sl_value_format), so the output is itself a valid config.
 * The chain: every section that sets the option for the scope asked, most
 * specific first; the first wins, the others are shadowed by it.
 * Concurrency: a short-lived process reading the file.
 * Trust boundary: the file and the arguments are the operator's.
 */
#include <stdio.h>
#include <string.h>

#include "config/sl_config.h"
#include "config/sl_config_lint.h"
#include "ctl/sl_ctl.h"

#define CHAIN_MAX 64

/* default_text - the built-in default of opt as the file would write it ("" when none) */
static void default_text(enum sl_opt opt, char *buf, size_t len)
{
    const struct sl_optdef *def = sl_opt_def(opt);
    struct sl_value v = {0};

    buf[0] = '\0';
    if (def->def != NULL && sl_value_parse(def, def->def, &v, NULL, 0)) {
        if (def->type >= SL_VT_STRING) /* STRING and the types after it keep their text */
            v.str = (char *)def->def;
        sl_value_format(opt, &v, buf, len);
    }
}

/* show_global - [global]: every option's value there (-n: only those the file changed) */
static void show_global(const struct sl_config *cfg, bool only_set)
{
    static const struct sl_scope_ref none;

    printf("[global]\n");
    for (int o = 0; o < SL_OPT__COUNT; o++) {
        struct sl_value v;
        const struct sl_section *from;
        char value[1200], dflt[1200], err[256];
        if (!sl_config_eval(cfg, (enum sl_opt)o, &none, &v, &from, err, sizeof err) || !v.set)
            continue;
        sl_value_format((enum sl_opt)o, &v, value, sizeof value);
        default_text((enum sl_opt)o, dflt, sizeof dflt);
        if (only_set && (from == NULL || strcmp(value, dflt) == 0))
            continue;
        printf("%s = %s\n", sl_opt_name((enum sl_opt)o), value);
    }
}

/* show_section - a section other than [global]: what it sets */
static void show_section(const struct sl_section *s)
{
    char name[1100], value[1200];

    sl_section_name(s, name, sizeof name);
    printf("\n%s\n", name);
    for (int o = 0; o < SL_OPT__COUNT; o++)
        if (s->v[o].set) {
            sl_value_format((enum sl_opt)o, &s->v[o], value, sizeof value);
            printf("%s = %s\n", sl_opt_name((enum sl_opt)o), value);
        }
}

/* sl_ctl_config_show - config show [-n] */
int sl_ctl_config_show(const char *cfgpath, int argc, char **argv)
{
    struct sl_config *cfg;
    bool only_set = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") != 0) {
            fprintf(stderr,
                    "sluicectl: config show: unexpected argument %s\n"
                    "usage: sluicectl [-c CONFIG] config show [-n]\n",
                    argv[i]);
            return 2;
        }
        only_set = true;
    }
    if ((cfg = sl_ctl_load_config(cfgpath)) == NULL)
        return 1;
    show_global(cfg, only_set);
    for (size_t i = 0; i < cfg->nsections; i++)
        if (cfg->sections[i]->scope != SL_SC_GLOBAL)
            show_section(cfg->sections[i]);
    sl_config_free(cfg);
    return 0;
}

/* sl_ctl_config_chain - the sections that set opt for ref, the winner first, then the shadowed */
void sl_ctl_config_chain(const struct sl_config *cfg, enum sl_opt opt,
                         const struct sl_scope_ref *ref)
{
    const struct sl_section *s[CHAIN_MAX];
    char name[1100], value[1200], err[256];
    int n = sl_config_chain(cfg, opt, ref, s, CHAIN_MAX, err, sizeof err);

    printf("  chain, most specific first:\n");
    for (int i = 0; i < n; i++) {
        sl_section_name(s[i], name, sizeof name);
        sl_value_format(opt, &s[i]->v[opt], value, sizeof value);
        printf("    %-8s %s = %s  in %s (%s:%u)\n", i == 0 ? "wins" : "shadowed", sl_opt_name(opt),
               value, name, cfg->path, s[i]->v[opt].line);
    }
    default_text(opt, value, sizeof value);
    printf("    %-8s built-in default = %s\n", n > 0 ? "shadowed" : "wins",
           value[0] ? value : "unset");
}
