/*
 * fuzz_smtpd.c - fuzz target "smtpd": the listener's whole SMTP session, fed
 * what a client says.
 *
 * The input is everything the client sends, verbatim, so a corpus file reads
 * as one SMTP conversation (commands, DATA bodies, BDAT chunks, pipelined or
 * not).  It is written whole into one end of a socketpair whose sending side
 * is then shut, and the listener's own session (smtpd_session, as a listener
 * process runs it) serves the other end until QUIT, an error limit or the
 * input's end.  No read ever waits, so no timer is armed (libFuzzer keeps
 * SIGALRM for its -timeout).  The session writes accepted messages to a
 * private spool, as a listener does (a config with a [listener] section and a
 * binding_header); an input beyond INPUT_MAX is cut there, so that the replies
 * always fit the socket's buffer.  Every other input relays from loopback
 * (relay_networks' default) but one in five (by the sum of its bytes), which
 * comes from outside and is refused at RCPT.
 * Promises checked: every reply is a whole line with a code from 200 to 599;
 * nothing is left in tmp/; every message queued reads back whole, with CRLF line
 * ends only (no bare CR or LF ever reaches the spool); nothing is queued from
 * outside relay_networks.
 * Concurrency: one thread, one session per input.
 * Trust boundary: the input is the client's, untrusted.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/sl_listener.h"
#include "listener/smtpd_impl.h"
#include "spool/sl_spool.h"
#include "util/sl_msg.h"
#include "support.h"

#define INPUT_MAX                                                                                  \
    4096 /* its replies (at most ~25 bytes of reply per input byte) fit the buffer                 \
          */

static struct sl_config *cfg;
static struct sl_smtpd_ctx ctx;
static struct sl_smtpd_prep prep;
static char spool[512];

/* LLVMFuzzerInitialize - once per process: the config, the spool, no timers */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sl_diag d = {0};
    char text[1024], err[256];

    (void)argc;
    (void)argv;
    snprintf(spool, sizeof spool, "%s/spool", fuzz_tmpdir());
    snprintf(text, sizeof text,
             "[global]\nspool_dir = %s\nmax_message_size = 8192\n[binding \"b\"]\n"
             "[listener \"f\"]\naddress = 127.0.0.1:2525\nbinding_header = X-B\n"
             "max_recipients = 4\nmax_errors = 8\n",
             spool);
    cfg = sl_config_load_string("fuzz", text, &d);
    if (cfg == NULL || sl_spool_init(spool, err, sizeof err) < 0)
        abort();
    ctx = (struct sl_smtpd_ctx){.cfg = cfg, .fd = -1, .spool = spool, .prep = &prep};
    smtpd_io_no_timers();
    sl_msg_set_level(SL_MSG_WARN); /* a refusal's info line per input would drown the output */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* check_replies - every line the session sent: "NNN " or "NNN-", 200-599, CRLF-terminated */
static void check_replies(int fd)
{
    static char buf[512 * 1024];
    size_t have = 0;
    ssize_t n;

    while (have < sizeof buf && (n = read(fd, buf + have, sizeof buf - have)) > 0)
        have += (size_t)n;
    for (size_t at = 0; at < have;) {
        const char *line = buf + at, *lf = memchr(line, '\n', have - at);
        FUZZ_CHECK(lf != NULL && lf > line && lf[-1] == '\r');
        FUZZ_CHECK(lf - line >= 5 && line[0] >= '2' && line[0] <= '5');
        FUZZ_CHECK(line[1] >= '0' && line[1] <= '9' && line[2] >= '0' && line[2] <= '9');
        FUZZ_CHECK(line[3] == ' ' || line[3] == '-');
        at = (size_t)(lf - buf) + 1;
    }
}

/* crlf_only - stored bytes whose every CR is followed by LF and every LF preceded by CR */
static bool crlf_only(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n'))
            return false;
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            return false;
    }
    return true;
}

/* check_spool - nothing half-written; every message whole and CRLF-only; then empty it */
static size_t check_spool(void)
{
    char path[1024], err[256];
    struct dirent *e;
    size_t queued = 0;
    DIR *dir;

    snprintf(path, sizeof path, "%s/tmp", spool);
    FUZZ_CHECK((dir = opendir(path)) != NULL);
    while ((e = readdir(dir)) != NULL)
        FUZZ_CHECK(e->d_name[0] == '.');
    closedir(dir);
    snprintf(path, sizeof path, "%s/queue", spool);
    FUZZ_CHECK((dir = opendir(path)) != NULL);
    while ((e = readdir(dir)) != NULL) {
        struct sl_spool_msg m;
        char *body = NULL;
        size_t len = 0;
        if (e->d_name[0] == '.')
            continue;
        FUZZ_CHECK(sl_spool_read(spool, e->d_name, &m, err, sizeof err) == 0);
        FUZZ_CHECK(sl_spool_body(spool, &m, &body, &len, err, sizeof err) == 0);
        FUZZ_CHECK(crlf_only(body, len));
        free(body);
        sl_spool_msg_free(&m);
        snprintf(path, sizeof path, "%s/queue/%s", spool, e->d_name);
        unlink(path);
        queued++;
    }
    closedir(dir);
    return queued;
}

/* LLVMFuzzerTestOneInput - one conversation: the input is all the client says */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct session *s = calloc(1, sizeof *s);
    struct sockaddr_in *peer = (struct sockaddr_in *)&s->peer;
    unsigned sum = 0;
    bool outside;
    int sv[2];

    if (s == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (size > INPUT_MAX)
        size = INPUT_MAX;
    for (size_t i = 0; i < size; i++)
        sum += data[i];
    outside = sum % 5 == 0;
    for (size_t at = 0; at < size;) {
        ssize_t n = send(sv[1], data + at, size - at, MSG_NOSIGNAL);
        if (n <= 0)
            abort();
        at += (size_t)n;
    }
    shutdown(sv[1], SHUT_WR);
    s->ctx = &ctx;
    s->l = &cfg->listeners[0];
    s->hostname = "fuzz.test";
    s->max_size = 8192;
    peer->sin_family = AF_INET;
    inet_pton(AF_INET, outside ? "192.0.2.1" : "127.0.0.1", &peer->sin_addr);
    snprintf(s->peer_ip, sizeof s->peer_ip, "%s", outside ? "192.0.2.1" : "127.0.0.1");
    s->relay_ok = sl_listener_may_relay(s->l, (struct sockaddr *)&s->peer);
    FUZZ_CHECK(s->relay_ok == !outside);
    io_init(&s->io, sv[0]);
    smtpd_session(s);
    io_close(&s->io);
    smtpd_txn_reset(&s->t);
    free(s->auth_user);
    free(s);
    check_replies(sv[1]);
    close(sv[1]);
    size_t queued = check_spool();
    FUZZ_CHECK(queued == 0 || !outside);
    if (getenv("FUZZ_SMTPD_SHOW") != NULL)
        fprintf(stderr, "%s, %zu queued\n", outside ? "outside" : "relay", queued);
    return 0;
}
