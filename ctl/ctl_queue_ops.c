/*
 * ctl_queue_ops.c - sluicectl delete | bounce | hold | release | flush: the
 * operator's commands on queued mail.
 *
 *   delete  ID... | --domain D | --binding B       remove, no report to the sender
 *   bounce  ID... | --domain D | --binding B [--reason TEXT]
 *                                                  fail with an RFC 3464 report
 *   hold    ID... | --domain D | --binding B       never attempted until released
 *   release ID... | --domain D | --binding B
 *   flush  [ID... | --domain D | --binding B]      deferred mail is retried now
 * IDs name whole messages; --domain selects the parts of every message for
 * that destination domain (id.k) that still have recipients pending, --binding
 * every message of that binding.
 * With a daemon running, the request goes to the master ("O" on the control
 * socket), which acts at once, or, for a part a worker is delivering right
 * now, when that attempt ends; the master logs each command.  With no daemon
 * the spool is changed directly, under the spool's lock (sl_spool_lock.h), so
 * a daemon starting meanwhile waits and nothing can deliver; except for
 * bounce: its report is composed by the daemon.  When a daemon holds that lock
 * it is starting and does not answer yet: the command waits for it
 * (sl_ctl_offline) rather than act on the spool behind it.  A delete with no
 * daemon writes the same
 * delivery-log line the daemon would (phase "operator"), so the audit trail
 * does not depend on whether the daemon was up.
 * Output: one line per message or part, "TOKEN: what happened", then a count.
 * Exit 0 when every token was acted on or had nothing to do, 1 on a failure or
 * an id not in the queue, 2 on bad usage.
 * Trust boundary: ids from the command line are checked to be queue ids before
 * they become paths; spool files are parsed by the spool layer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "config/sl_config.h"
#include "ctl/sl_ctl.h"
#include "dlog/sl_dlog.h"
#include "ipc/sl_control.h"
#include "spool/sl_spool.h"
#include "util/sl_msg.h"

#define BATCH      25  /* tokens per request: each answer fits one datagram */
#define REASON_MAX 200 /* the master keeps no more */
#define TOKEN_MAX  (SL_SPOOL_ID_LEN + 8)

/* What the command acts on. */
struct targets {
    char (*tok)[TOKEN_MAX];
    size_t n, cap;
    unsigned missing; /* ids named that are not queued */
};

/* The command line. */
struct op {
    const char *verb;
    const char *domain, *binding, *reason;
    const char *cfgpath, *spool;
    int dlog; /* the delivery log, with no daemon: -1 when none */
    unsigned done, later, none, failed;
};

/* usage - the subcommand's synopsis */
static int usage(const char *verb)
{
    if (strcmp(verb, "flush") == 0)
        fprintf(stderr, "usage: sluicectl flush [ID... | --domain D | --binding B]\n");
    else
        fprintf(stderr, "usage: sluicectl %s ID... | --domain D | --binding B%s\n", verb,
                strcmp(verb, "bounce") == 0 ? " [--reason TEXT]" : "");
    return 2;
}

/* add - one token */
static void add(struct targets *t, const char *tok)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->tok = sl_realloc(t->tok, t->cap * sizeof *t->tok);
    }
    strlcpy(t->tok[t->n++], tok, TOKEN_MAX);
}

/* Context of the scan that selects by domain or binding. */
struct select_ctx {
    const struct op *op;
    struct targets *t;
};

/* part_final - is part k of m final already (nothing left to act on) */
static bool part_final(const char *spool, const struct sl_spool_msg *m, size_t k)
{
    struct sl_spool_state st;
    char err[256];
    bool done;

    if (sl_spool_state_load(spool, m->id, (unsigned)k, m->nrcpt, &st, err, sizeof err) < 0)
        return false; /* let the command say what it finds */
    done = sl_spool_part_done(m, (unsigned)k, &st);
    sl_spool_state_free(&st);
    return done;
}

/* select_one - the scan's callback: the message's parts for the domain, or it for the binding */
static void select_one(const char *id, void *vctx)
{
    struct select_ctx *c = vctx;
    struct sl_spool_msg m;
    char err[256], tok[TOKEN_MAX];

    if (sl_spool_read(c->op->spool, id, &m, err, sizeof err) < 0)
        return; /* gone since the listing, or damaged: not ours to act on */
    if (c->op->binding != NULL && strcmp(m.binding, c->op->binding) == 0)
        add(c->t, id);
    for (size_t k = 0; c->op->domain != NULL && k < m.nparts; k++)
        if (strcasecmp(m.domain[k], c->op->domain) == 0 && !part_final(c->op->spool, &m, k)) {
            snprintf(tok, sizeof tok, "%s.%zu", id, k);
            add(c->t, tok);
        }
    sl_spool_msg_free(&m);
}

/* every_one - the scan's callback: every message */
static void every_one(const char *id, void *vt)
{
    add(vt, id);
}

/* queued - does queue/ID exist */
static bool queued(const char *spool, const char *id)
{
    char path[4200];
    struct stat st;

    snprintf(path, sizeof path, "%s/queue/%s", spool, id);
    return stat(path, &st) == 0;
}

/* select_targets - the ids given, or what --domain / --binding select; false on bad usage */
static bool select_targets(struct op *op, char **ids, int nids, struct targets *t)
{
    struct select_ctx c = {.op = op, .t = t};

    if (op->domain != NULL || op->binding != NULL) {
        if (sl_spool_scan(op->spool, select_one, &c) < 0 && errno != ENOENT)
            fprintf(stderr, "sluicectl: %s: cannot read %s/queue: %s\n", op->verb, op->spool,
                    strerror(errno));
        return true;
    }
    for (int i = 0; i < nids; i++) {
        if (!sl_spool_id_valid(ids[i])) {
            fprintf(stderr, "sluicectl: %s: %s is not a queue id\n", op->verb, ids[i]);
            return false;
        }
        if (queued(op->spool, ids[i])) {
            add(t, ids[i]);
        } else {
            printf("%s: not in the queue\n", ids[i]);
            t->missing++;
        }
    }
    return true;
}

/* done_word - what a command did, in the past tense */
static const char *done_word(const char *verb)
{
    static const char *const words[][2] = {{"delete", "deleted"},
                                           {"bounce", "bounced"},
                                           {"hold", "held"},
                                           {"release", "released"},
                                           {"flush", "ready to be retried now"}};

    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(words[i][0], verb) == 0)
            return words[i][1];
    return verb;
}

/* none_word - why a command had nothing to do */
static const char *none_word(const char *verb)
{
    if (strcmp(verb, "hold") == 0)
        return "nothing to do (already held, or final)";
    if (strcmp(verb, "release") == 0)
        return "nothing to do (not held)";
    if (strcmp(verb, "flush") == 0)
        return "nothing to do (not deferred: due now, held or being delivered)";
    return "nothing to do (already final)";
}

/* report - one token's outcome, counted */
static void report(struct op *op, const char *tok, char code)
{
    switch (code) {
    case 'a':
        printf("%s: %s\n", tok, done_word(op->verb));
        op->done++;
        break;
    case 'p':
        printf("%s: being delivered now: %s when that attempt ends (what it delivers stays "
               "delivered)\n",
               tok, done_word(op->verb));
        op->later++;
        break;
    case 'f':
        printf("%s: failed (see the daemon's log)\n", tok);
        op->failed++;
        break;
    default:
        printf("%s: %s\n", tok, none_word(op->verb));
        op->none++;
        break;
    }
}

/* read_answer - "OK tok=c ..." into reports; false when the daemon refused */
static bool read_answer(struct op *op, char *ans)
{
    char *save = NULL, *t;

    if (strncmp(ans, "OK", 2) != 0) {
        fprintf(stderr, "sluicectl: %s: the daemon answered: %s\n", op->verb, ans);
        return false;
    }
    for (t = strtok_r(ans + 2, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
        char *eq = strrchr(t, '=');
        if (eq == NULL || eq[1] == '\0')
            continue;
        *eq = '\0';
        report(op, t, eq[1]);
    }
    return true;
}

/* batch_request - "O verb tok... [-- reason]" for tokens [from, to) */
static void batch_request(const struct op *op, const struct targets *t, size_t from, size_t to,
                          char *req, size_t len)
{
    size_t used = (size_t)snprintf(req, len, "O %s", op->verb);

    for (size_t i = from; i < to && used < len; i++)
        used += (size_t)snprintf(req + used, len - used, " %s", t->tok[i]);
    if (op->reason != NULL && op->reason[0] != '\0' && used < len)
        snprintf(req + used, len - used, " -- %.*s", REASON_MAX, op->reason);
}

/* via_daemon - every token through the control socket; SL_CTL_REQ_NO_DAEMON when none runs */
static int via_daemon(struct op *op, const struct targets *t, bool all)
{
    char req[SL_CONTROL_MAX], ans[SL_CONTROL_MAX];
    int rc;

    if (all) { /* flush with no selection: every deferred part */
        if ((rc = sl_ctl_request(op->spool, "O flush", ans, sizeof ans)) != SL_CTL_REQ_OK)
            return rc;
        if (strncmp(ans, "OK *=", 5) != 0) {
            fprintf(stderr, "sluicectl: flush: the daemon answered: %s\n", ans);
            return SL_CTL_REQ_FAILED;
        }
        printf("%s deferred parts ready to be retried now\n", ans + 5);
        return SL_CTL_REQ_OK;
    }
    for (size_t i = 0; i < t->n; i += BATCH) {
        size_t to = i + BATCH < t->n ? i + BATCH : t->n;
        batch_request(op, t, i, to, req, sizeof req);
        if ((rc = sl_ctl_request(op->spool, req, ans, sizeof ans)) != SL_CTL_REQ_OK)
            return rc;
        if (!read_answer(op, ans))
            return SL_CTL_REQ_FAILED;
    }
    return SL_CTL_REQ_OK;
}

/* log_deleted - the delivery-log line of a delete, as the daemon writes it (worker/admin.c) */
static void log_deleted(const struct op *op, const struct sl_spool_msg *m, unsigned k,
                        const char *const *rcpt, size_t n)
{
    struct sl_dlog_line l = {.id = m->id,
                             .rcpt = rcpt,
                             .nrcpt = n,
                             .binding = m->binding,
                             .domain = m->domain[k],
                             .outcome = "deleted",
                             .reply = "deleted by the operator",
                             .phase = "operator"};

    if (n > 0)
        sl_dlog_write(op->dlog, &l);
}

/* delete_pending - part k's pending recipients final (not delivered, no report); their
 * addresses into gone, their count */
static size_t delete_pending(const struct sl_spool_msg *m, unsigned k, struct sl_spool_state *st,
                             const char **gone)
{
    size_t n = 0;

    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpt[i].part == k && st->status[i] == SL_RCPT_PENDING) {
            st->status[i] = SL_RCPT_BOUNCED;
            gone[n++] = m->rcpt[i].addr;
        }
    return n;
}

/* offline_part - the command on part k's state file; its code */
static char offline_part(const struct op *op, const struct sl_spool_msg *m, unsigned k, int64_t now)
{
    struct sl_spool_state st;
    char err[512], code = 'n';
    const char **gone;
    size_t ngone = 0;

    if (sl_spool_state_load(op->spool, m->id, k, m->nrcpt, &st, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl: %s: %s\n", op->verb, err);
        return 'f';
    }
    gone = sl_calloc(m->nrcpt + 1, sizeof *gone);
    if (!sl_spool_part_done(m, k, &st)) {
        if (strcmp(op->verb, "hold") == 0 && !st.held)
            st.held = true, code = 'a';
        else if (strcmp(op->verb, "release") == 0 && st.held)
            st.held = false, code = 'a';
        else if (strcmp(op->verb, "flush") == 0 && !st.held && st.next > now)
            st.next = 0, code = 'a';
        else if (strcmp(op->verb, "delete") == 0)
            ngone = delete_pending(m, k, &st, gone), code = 'a';
    }
    if (code == 'a' && sl_spool_state_save(op->spool, m->id, k, &st, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl: %s: %s\n", op->verb, err);
        code = 'f';
    }
    if (code == 'a')
        log_deleted(op, m, k, gone, ngone);
    free(gone);
    sl_spool_state_free(&st);
    return code;
}

/* all_done - every part of m is final on disk (a deleted message can go) */
static bool all_done(const char *spool, const struct sl_spool_msg *m)
{
    bool done = true;

    for (unsigned k = 0; k < m->nparts && done; k++) {
        struct sl_spool_state st;
        char err[256];
        if (sl_spool_state_load(spool, m->id, k, m->nrcpt, &st, err, sizeof err) < 0)
            return false;
        done = sl_spool_part_done(m, k, &st);
        sl_spool_state_free(&st);
    }
    return done;
}

/* offline_token - the command on one message or part, on the spool */
static char offline_token(const struct op *op, const char *tok, int64_t now)
{
    char id[SL_SPOOL_ID_LEN + 1], err[512], code = 'n';
    const char *dot = strchr(tok, '.');
    struct sl_spool_msg m;
    unsigned long k = dot != NULL ? strtoul(dot + 1, NULL, 10) : 0;

    strlcpy(id, tok, dot != NULL ? (size_t)(dot - tok) + 1 : sizeof id);
    if (sl_spool_read(op->spool, id, &m, err, sizeof err) < 0)
        return errno == ENOENT ? 'n' : 'f';
    for (unsigned i = dot != NULL ? (unsigned)k : 0; i < m.nparts; i++) {
        char c = offline_part(op, &m, i, now); /* a delete logs each part's recipients */
        code = c == 'f' || code == 'f' ? 'f' : c == 'a' ? 'a' : code;
        if (dot != NULL)
            break;
    }
    /* A whole message deleted goes even when a part's state could not be read or written (a
     * damaged state file): the operator asked for it gone; a part deleted goes with the
     * message's last. */
    if (strcmp(op->verb, "delete") == 0 &&
        (dot == NULL || (code != 'f' && all_done(op->spool, &m)))) {
        if (sl_spool_remove(op->spool, id, m.nparts) < 0)
            code = 'f';
        else if (code == 'f')
            code = 'a';
    }
    sl_spool_msg_free(&m);
    return code;
}

/* open_dlog - the configured delivery log for appending; -1 when none is set or it cannot be
 * opened (warned) */
static int open_dlog(const char *cfgpath)
{
    char path[4096];

    if (sl_ctl_global(cfgpath, SL_OPT_DELIVERY_LOG, path, sizeof path) != 0 || path[0] == '\0')
        return -1;
    return sl_dlog_open(path);
}

/* offline - no daemon runs: every token on the spool itself */
static int offline(struct op *op, const struct targets *t, bool all)
{
    int64_t now = (int64_t)time(NULL);

    if (strcmp(op->verb, "bounce") == 0) {
        fprintf(stderr, "sluicectl: bounce: no daemon is running, and the report to the sender "
                        "is composed by it: start sluiced (or delete, which sends no report)\n");
        return 1;
    }
    printf("no daemon is running: acting on the spool directly\n");
    if (strcmp(op->verb, "delete") == 0)
        op->dlog = open_dlog(op->cfgpath);
    if (all) {
        struct targets every = {0};
        sl_spool_scan(op->spool, every_one, &every);
        for (size_t i = 0; i < every.n; i++)
            if (offline_token(op, every.tok[i], now) == 'a')
                op->done++;
        printf("%u messages ready to be retried now\n", op->done);
        free(every.tok);
        return 0;
    }
    for (size_t i = 0; i < t->n; i++)
        report(op, t->tok[i], offline_token(op, t->tok[i], now));
    if (op->dlog >= 0)
        close(op->dlog);
    return 0;
}

/* no_daemon - nobody answered: act on the spool under its lock, so a daemon starting now waits,
 * or go to the daemon that holds it (it is starting) */
static int no_daemon(struct op *op, const struct targets *t, bool all)
{
    int lock, rc;

    switch (sl_ctl_offline(op->spool, op->verb, &lock)) {
    case SL_CTL_OFFLINE_RETRY:
        if ((rc = via_daemon(op, t, all)) == SL_CTL_REQ_NO_DAEMON)
            fprintf(stderr, "sluicectl: %s: the daemon went away\n", op->verb);
        return rc == SL_CTL_REQ_OK ? 0 : 1;
    case SL_CTL_OFFLINE_LOCKED:
        rc = offline(op, t, all);
        if (lock >= 0)
            close(lock);
        return rc;
    default: /* said: a daemon did not answer, or the lock cannot be had */
        return 1;
    }
}

/* parse - the options; the ids start at *first; false on bad usage */
static bool parse(struct op *op, int argc, char **argv, int *first)
{
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i += 2) {
        if (i + 1 >= argc)
            return false;
        if (strcmp(argv[i], "--domain") == 0)
            op->domain = sl_ctl_domain_arg(argv[i + 1]);
        else if (strcmp(argv[i], "--binding") == 0)
            op->binding = argv[i + 1];
        else if (strcmp(argv[i], "--reason") == 0 && strcmp(op->verb, "bounce") == 0)
            op->reason = argv[i + 1];
        else {
            fprintf(stderr, "sluicectl: %s: unknown option %s\n", op->verb, argv[i]);
            return false;
        }
    }
    *first = i;
    if ((op->domain != NULL) + (op->binding != NULL) + (i < argc) > 1) {
        fprintf(stderr, "sluicectl: %s: give ids, --domain or --binding, one of them\n", op->verb);
        return false;
    }
    for (int j = i; j < argc; j++)
        if (argv[j][0] == '-') {
            fprintf(stderr, "sluicectl: %s: options go before the ids: %s\n", op->verb, argv[j]);
            return false;
        }
    return true;
}

/* sl_ctl_queue_op - sluicectl delete | bounce | hold | release | flush */
int sl_ctl_queue_op(const char *cfgpath, int argc, char **argv)
{
    struct op op = {.verb = argv[0], .cfgpath = cfgpath, .dlog = -1};
    struct targets t = {0};
    char spool[4096];
    int first, rc = 0;
    bool all;

    if (!parse(&op, argc, argv, &first))
        return usage(op.verb);
    all = op.domain == NULL && op.binding == NULL && first >= argc;
    if (all && strcmp(op.verb, "flush") != 0)
        return usage(op.verb);
    if (sl_ctl_global(cfgpath, SL_OPT_SPOOL_DIR, spool, sizeof spool) != 0)
        return 1;
    op.spool = spool;
    if (!select_targets(&op, argv + first, argc - first, &t)) {
        free(t.tok);
        return 2;
    }
    if (!all && t.n == 0) {
        if (t.missing == 0)
            printf("nothing queued for %s %s\n", op.domain ? "domain" : "binding",
                   op.domain ? op.domain : op.binding);
        free(t.tok);
        return t.missing ? 1 : 0;
    }
    switch (via_daemon(&op, &t, all)) {
    case SL_CTL_REQ_OK:
        break;
    case SL_CTL_REQ_NO_DAEMON:
        rc = no_daemon(&op, &t, all);
        break;
    default:
        rc = 1;
        break;
    }
    if (!all && rc == 0)
        printf("%u done, %u when the attempt in flight ends, %u unchanged, %u failed\n", op.done,
               op.later, op.none, op.failed);
    free(t.tok);
    return rc != 0 || op.failed > 0 || t.missing > 0 ? 1 : rc;
}
