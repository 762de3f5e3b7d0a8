/*
 * ctl_global.c - one [global] setting for sluicectl, even from a broken file.
 *
 * `counters` needs shm_name and `probe` needs spool_dir.  An operator whose
 * edit was just refused by a reload still needs to see the counters of the
 * daemon that runs, so when the file does not validate we say so on stderr
 * and read that one key leniently (inih alone, [global] or before any section),
 * falling back to the option's default.  sl_ctl_global_peek reads a key that way
 * alone, quietly (the file is the operator's, trusted; whether it validates is the
 * subcommand's to say).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>
#include <ini.h>

#include "config/sl_config.h"
#include "ctl/sl_ctl.h"

/* What the lenient scan looks for, and what it found. */
struct peek {
    const struct sl_optdef *def;
    char *buf;
    size_t len;
    bool found;
};

/* on_key - keep the value of the wanted key in [global] or before any section */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct peek *p = user;

    if (*section != '\0' && strcasecmp(section, "global") != 0)
        return 1;
    if (strcasecmp(name, p->def->name) == 0 ||
        (p->def->alias != NULL && strcasecmp(name, p->def->alias) == 0)) {
        strlcpy(p->buf, value, p->len);
        p->found = true;
    }
    return 1;
}

/* sl_ctl_global - a global string setting from cfgpath; 0, or -1 with nothing usable */
int sl_ctl_global(const char *cfgpath, enum sl_opt opt, char *buf, size_t len)
{
    struct sl_diag d = {0};
    struct sl_scope_ref none = {0};
    struct sl_config *cfg = sl_config_load(cfgpath, &d);
    struct peek p = {.def = sl_opt_def(opt), .buf = buf, .len = len};

    if (cfg != NULL) {
        const char *v = sl_config_str(cfg, opt, &none);
        strlcpy(buf, v != NULL ? v : "", len);
        sl_config_free(cfg);
        return v != NULL ? 0 : -1;
    }
    if (d.n == 1 && strstr(d.lines[0], ": cannot read: ") != NULL) {
        fprintf(stderr, "sluicectl: %s\n", d.lines[0]); /* missing, unreadable: say so */
        sl_diag_free(&d);
        return -1;
    }
    fprintf(stderr, "sluicectl: %s does not validate (%zu errors; see 'sluicectl config check')\n",
            cfgpath, d.n);
    sl_diag_free(&d);
    if (ini_parse(cfgpath, on_key, &p) < 0 || (!p.found && p.def->def == NULL)) {
        fprintf(stderr, "sluicectl: cannot read %s from %s\n", p.def->name, cfgpath);
        return -1;
    }
    if (!p.found)
        strlcpy(buf, p.def->def, len);
    fprintf(stderr, "sluicectl: using %s = %s\n", p.def->name, buf);
    return 0;
}

/* sl_ctl_global_peek - the key as written in [global] (or before any section), without
 * loading the config nor saying anything; "" when it is not set or the file cannot be read */
void sl_ctl_global_peek(const char *cfgpath, enum sl_opt opt, char *buf, size_t len)
{
    struct peek p = {.def = sl_opt_def(opt), .buf = buf, .len = len};

    buf[0] = '\0';
    if (ini_parse(cfgpath, on_key, &p) < 0 || !p.found)
        buf[0] = '\0';
}
