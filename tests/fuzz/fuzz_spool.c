/*
 * fuzz_spool.c - fuzz target "spool": the readers of the queue file and of
 * the state file (spool/read.c, spool/state.c).
 *
 * The input is a queue file, optionally followed by a line "@state" and a
 * state file: the part before the marker (with its line end) becomes
 * queue/ID and the part after it state/ID.0 of a private spool, where ID is
 * FUZZ_ID (a corpus file must name it on its id line).  Then, as a worker and
 * the master do: sl_spool_read_full and sl_spool_read of the envelope, the
 * stored body both ways (from the envelope's read and from the file), each
 * part's state (state/ID.0 for part 0, none for the others), whether each part
 * is done, and a saved state read back unchanged.  When the envelope does not
 * read, the state file is still loaded, for a message of 4 recipients.
 * Promises checked: what reads is what the format allows (a valid sender,
 * recipients with their domain's part, at least one); a body ends in CRLF;
 * a state round trip keeps everything.
 * Concurrency: one thread, one private spool per process.
 * Trust boundary: spool files are ours but may be damaged: any bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool/sl_spool.h"
#include "support.h"

#define FUZZ_ID    "0AbCdEfGhIjKlMnOpQrS"
#define STATE_MARK "\n@state\n"
#define PARTS_MAX  4 /* parts whose state is loaded */

static char spool[4096], queue_path[4200], state_path[4200];

/* LLVMFuzzerInitialize - once per process: the private spool, and the paths of its two files */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];

    (void)argc;
    (void)argv;
    snprintf(spool, sizeof spool, "%s/spool", fuzz_tmpdir());
    if (sl_spool_init(spool, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    snprintf(queue_path, sizeof queue_path, "%s/queue/%s", spool, FUZZ_ID);
    snprintf(state_path, sizeof state_path, "%s/state/%s.0", spool, FUZZ_ID);
    return 0;
}

/* check_msg - what a read envelope promises */
static void check_msg(const struct sl_spool_msg *m)
{
    FUZZ_CHECK(strcmp(m->id, FUZZ_ID) == 0);
    FUZZ_CHECK(m->nrcpt > 0 && m->nrcpt <= SL_SPOOL_RCPT_MAX);
    FUZZ_CHECK(m->nparts > 0 && m->nparts <= SL_SPOOL_PARTS_MAX);
    /* UTF-8 (RFC 6531) only in a message marked as needing SMTPUTF8 */
    bool (*valid)(const char *, bool, char *, size_t) =
        m->smtputf8 ? sl_spool_valid_address_utf8 : sl_spool_valid_address;

    FUZZ_CHECK(valid(m->sender, true, NULL, 0));
    for (size_t i = 0; i < m->nrcpt; i++) {
        char domain[SL_DOMAIN_MAX + 1];
        FUZZ_CHECK(valid(m->rcpt[i].addr, false, NULL, 0));
        FUZZ_CHECK(m->rcpt[i].part < m->nparts);
        sl_spool_address_domain(m->rcpt[i].addr, domain, sizeof domain);
        FUZZ_CHECK(strcmp(domain, m->domain[m->rcpt[i].part]) == 0);
    }
}

/* check_body - the stored body, from the envelope's read or the file */
static void check_body(const struct sl_spool_msg *m)
{
    char err[256], *body;
    size_t len;

    if (sl_spool_body(spool, m, &body, &len, err, sizeof err) < 0)
        return;
    FUZZ_CHECK(len >= 2 && body[len - 2] == '\r' && body[len - 1] == '\n' && body[len] == '\0');
    free(body);
}

/* round_trip - a state saved and loaded again is the same state */
static void round_trip(const struct sl_spool_state *st, unsigned k)
{
    struct sl_spool_state again;
    char err[256];

    if (sl_spool_state_save(spool, FUZZ_ID, k, st, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    FUZZ_CHECK(sl_spool_state_load(spool, FUZZ_ID, k, st->nrcpt, &again, err, sizeof err) == 0);
    FUZZ_CHECK(again.attempts == st->attempts && again.next == st->next);
    FUZZ_CHECK(strcmp(again.reply, st->reply) == 0);
    FUZZ_CHECK(memcmp(again.status, st->status, st->nrcpt) == 0);
    sl_spool_state_free(&again);
}

/* states - each part's state, as the master and a worker load it */
static void states(const struct sl_spool_msg *m, size_t nrcpt)
{
    size_t nparts = m != NULL ? m->nparts : 1;

    for (unsigned k = 0; k < nparts && k < PARTS_MAX; k++) {
        struct sl_spool_state st;
        char err[256];
        if (sl_spool_state_load(spool, FUZZ_ID, k, nrcpt, &st, err, sizeof err) < 0)
            continue;
        FUZZ_CHECK(st.nrcpt == nrcpt && memchr(st.reply, '\0', sizeof st.reply) != NULL);
        for (size_t i = 0; i < nrcpt; i++)
            FUZZ_CHECK(st.status[i] == SL_RCPT_PENDING || st.status[i] == SL_RCPT_DELIVERED ||
                       st.status[i] == SL_RCPT_BOUNCED);
        if (m != NULL)
            (void)sl_spool_part_done(m, k, &st);
        round_trip(&st, k);
        sl_spool_state_free(&st);
    }
}

/* LLVMFuzzerTestOneInput - one queue file (and state file): write them, read them back every way */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *mark = memmem(data, size, STATE_MARK, sizeof STATE_MARK - 1);
    size_t qlen = mark != NULL ? (size_t)(mark - data) + 1 : size;
    struct sl_spool_msg m, m2;
    char err[256];

    fuzz_write_file(queue_path, data, qlen);
    if (mark != NULL) {
        size_t skip = (size_t)(mark - data) + sizeof STATE_MARK - 1;
        fuzz_write_file(state_path, data + skip, size - skip);
    } else {
        unlink(state_path);
    }
    if (sl_spool_read_full(spool, FUZZ_ID, &m, err, sizeof err) == 0) {
        check_msg(&m);
        check_body(&m);
        FUZZ_CHECK(sl_spool_read(spool, FUZZ_ID, &m2, err, sizeof err) == 0);
        FUZZ_CHECK(m2.body == NULL && m2.nrcpt == m.nrcpt && m2.body_off == m.body_off);
        check_body(&m2);
        sl_spool_msg_free(&m2);
        states(&m, m.nrcpt);
        sl_spool_msg_free(&m);
    } else {
        states(NULL, 4);
    }
    return 0;
}
