/*
 * ctl_inject.c - sluicectl inject: queue one message from stdin.
 *
 *   sluicectl -c CONFIG inject [--binding B | --binding-group G] -f SENDER RCPT... < MESSAGE
 *
 * Everything is checked before anything is written: the addresses (UTF-8 ones
 * too, RFC 6531: the message is then marked as needing SMTPUTF8), the
 * binding or group against the loaded config, then the message itself (not
 * empty, within max_message_size, CRLF-normalisable: no NUL, no line over 998
 * octets).  The message is then written durably (sl_spool_write) and its queue
 * id printed; exit 0 means it is on disk.  A running master is told at once;
 * without one the message waits for its start.  A refusal is one line on
 * stderr, exit 1, and nothing in the spool; bad usage exits 2.
 * Trust boundary: argv and stdin are the operator's; the spool layer checks
 * them again, as it does for every writer.
 */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "config/sl_config.h"
#include "ctl/sl_ctl.h"
#include "util/sl_idna.h"
#include "util/sl_msg.h"
#include "spool/sl_spool.h"

/* What the command line asked for. */
struct inject_args {
    const char *binding, *group, *sender;
    char **rcpt;
    size_t nrcpt;
};

/* usage - the subcommand's synopsis */
static int usage(void)
{
    fprintf(stderr, "usage: sluicectl inject [--binding B | --binding-group G] -f SENDER RCPT... "
                    "< MESSAGE\n");
    return 2;
}

/* refuse - one line on stderr, exit status 1 */
static int refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int refuse(const char *fmt, ...)
{
    va_list ap;

    fputs("sluicectl: inject: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* parse_args - options anywhere before "--", every other word a recipient */
static int parse_args(int argc, char **argv, struct inject_args *a)
{
    bool options = true;

    a->rcpt = sl_calloc((size_t)argc, sizeof *a->rcpt);
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        const char **to = strcmp(w, "-f") == 0                ? &a->sender
                          : strcmp(w, "--binding") == 0       ? &a->binding
                          : strcmp(w, "--binding-group") == 0 ? &a->group
                                                              : NULL;
        if (options && strcmp(w, "--") == 0)
            options = false;
        else if (options && to != NULL) {
            if (i + 1 >= argc)
                return -1;
            *to = argv[++i];
        } else if (options && w[0] == '-' && w[1] != '\0')
            return -1;
        else
            a->rcpt[a->nrcpt++] = argv[i];
    }
    return a->sender == NULL || (a->binding != NULL && a->group != NULL) ? -1 : 0;
}

/* utf8 - some address is UTF-8: the message needs SMTPUTF8 (RFC 6531) */
static bool utf8(const struct inject_args *a)
{
    bool any = !sl_idna_ascii(a->sender, strlen(a->sender));

    for (size_t i = 0; i < a->nrcpt; i++)
        any = any || !sl_idna_ascii(a->rcpt[i], strlen(a->rcpt[i]));
    return any;
}

/* check_addresses - the sender and every recipient, before reading stdin */
static int check_addresses(const struct inject_args *a)
{
    char why[128], shown[SL_ADDR_MAX * 4 + 1];

    if (!sl_spool_valid_address_utf8(a->sender, true, why, sizeof why)) {
        sl_spool_printable(a->sender, shown, sizeof shown);
        return refuse("bad sender \"%s\": %s", shown, why);
    }
    if (a->nrcpt == 0)
        return refuse("no recipient");
    for (size_t i = 0; i < a->nrcpt; i++)
        if (!sl_spool_valid_address_utf8(a->rcpt[i], false, why, sizeof why)) {
            sl_spool_printable(a->rcpt[i], shown, sizeof shown);
            return refuse("bad recipient \"%s\": %s", shown, why);
        }
    return 0;
}

/* draw_from_group - one binding of the group, drawn evenly; NULL when it has none */
static const char *draw_from_group(const struct sl_config *cfg, const char *group)
{
    const char **members = sl_calloc(cfg->nbindings + 1, sizeof *members), *pick = NULL;
    size_t n = 0;

    for (size_t i = 0; i < cfg->nbindings; i++)
        if (cfg->bindings[i].group != NULL && strcmp(cfg->bindings[i].group, group) == 0)
            members[n++] = cfg->bindings[i].name;
    if (n > 0) {
        if (sodium_init() < 0)
            sl_msg_fatal("libsodium cannot initialise");
        pick = members[randombytes_uniform((uint32_t)n)];
    }
    free(members);
    return pick;
}

/* pick_binding - the named binding, one of the group's, or "default" */
static const char *pick_binding(const struct sl_config *cfg, const struct inject_args *a)
{
    const char *pick;
    char shown[256];
    bool known = false;

    if (a->group == NULL) {
        const char *name = a->binding != NULL ? a->binding : "default";
        if (sl_config_binding(cfg, name) == NULL) {
            sl_spool_printable(name, shown, sizeof shown);
            return refuse("unknown binding \"%s\"", shown), NULL;
        }
        return name;
    }
    for (size_t i = 0; i < cfg->ngroups; i++)
        known = known || strcmp(cfg->groups[i], a->group) == 0;
    sl_spool_printable(a->group, shown, sizeof shown);
    if (!known)
        return refuse("unknown binding group \"%s\"", shown), NULL;
    if ((pick = draw_from_group(cfg, a->group)) == NULL)
        refuse("binding group \"%s\" has no binding", shown);
    return pick;
}

/* read_message - stdin whole, refusing more than max bytes as soon as seen */
static char *read_message(uint64_t max, size_t *len)
{
    size_t cap = 64 * 1024, have = 0;
    char *buf = sl_malloc(cap);

    for (;;) {
        ssize_t n;
        if (have == cap)
            buf = sl_realloc(buf, cap *= 2);
        n = read(STDIN_FILENO, buf + have, cap - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            refuse("cannot read the message: %s", strerror(errno));
            break;
        }
        if (n == 0) {
            *len = have;
            return buf;
        }
        have += (size_t)n;
        /* Normalising never shrinks a message: more input is already too much. */
        if (have > max) {
            refuse("message larger than max_message_size (%llu bytes)", (unsigned long long)max);
            break;
        }
    }
    free(buf);
    return NULL;
}

/* load_config - the validated config, or NULL after one line on stderr */
static struct sl_config *load_config(const char *cfgpath)
{
    struct sl_diag d = {0};
    struct sl_config *cfg = sl_config_load(cfgpath, &d);

    if (cfg == NULL) {
        if (d.n > 1)
            refuse("%s (and %zu more errors: see 'sluicectl config check')", d.lines[0], d.n - 1);
        else
            refuse("%s", d.n > 0 ? d.lines[0] : cfgpath);
        sl_diag_free(&d);
    }
    return cfg;
}

/* queue_message - read stdin and write the message; 0 after printing its id */
static int queue_message(const struct sl_config *cfg, const struct inject_args *a,
                         const char *binding)
{
    const struct sl_scope_ref global = {0};
    const char *spool = sl_config_str(cfg, SL_OPT_SPOOL_DIR, &global);
    struct sl_spool_new m = {.binding = binding,
                             .sender = a->sender,
                             .rcpt = (const char *const *)a->rcpt,
                             .nrcpt = a->nrcpt,
                             .smtputf8 = utf8(a),
                             .max_size =
                                 (uint64_t)sl_config_num(cfg, SL_OPT_MAX_MESSAGE_SIZE, &global)};
    char id[SL_SPOOL_ID_LEN + 1], err[512];
    char *body = read_message(m.max_size, &m.len);
    int rc;

    if (body == NULL)
        return 1;
    m.body = body;
    rc = sl_spool_init(spool, err, sizeof err) < 0 ? -1
                                                   : sl_spool_write(spool, &m, id, err, sizeof err);
    free(body);
    if (rc < 0)
        return refuse("%s", err);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is an error to handle, not the end */
    printf("%s\n", id);
    if (fflush(stdout) != 0) { /* the caller cannot know the id: it will send again */
        int e = errno;
        if (sl_spool_remove(spool, id, SL_SPOOL_PARTS_MAX) < 0)
            return refuse("cannot print the queue id %s: %s; it stays queued (not removed: %s)", id,
                          strerror(e), strerror(errno));
        return refuse("cannot print the queue id: %s; the message was not queued", strerror(e));
    }
    sl_spool_notify(spool, id);
    return 0;
}

/* sl_ctl_inject - sluicectl inject [--binding B | --binding-group G] -f SENDER RCPT... */
int sl_ctl_inject(const char *cfgpath, int argc, char **argv)
{
    struct inject_args a = {0};
    struct sl_config *cfg;
    const char *binding;
    int rc = 1;

    if (parse_args(argc, argv, &a) < 0) {
        free(a.rcpt);
        return usage();
    }
    if (check_addresses(&a) == 0 && (cfg = load_config(cfgpath)) != NULL) {
        if ((binding = pick_binding(cfg, &a)) != NULL)
            rc = queue_message(cfg, &a, binding);
        sl_config_free(cfg);
    }
    free(a.rcpt);
    return rc;
}
