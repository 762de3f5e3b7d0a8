/*
 * ctl_probe.c - sluicectl probe: try a connection's limits through the daemon.
 *
 * Asks the master (control socket in spool_dir) to have an idle worker take
 * every counter a connection from a binding to a domain (via an MX host) would
 * take, hold them for --hold seconds and give them back.  Prints the answer:
 * each counter with in-use/limit, or the scope that refused.  Exit 0 when the
 * counters were granted, 1 otherwise.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <bsd/string.h>

#include "config/sl_config.h"
#include "ipc/sl_control.h"
#include "ctl/sl_ctl.h"

#define ANSWER_WAIT_S 10

/* usage - the subcommand's synopsis */
static int usage(void)
{
    fprintf(stderr,
            "usage: sluicectl probe [--binding B] --domain D [--mx HOST] [--hold SECONDS]\n");
    return 2;
}

/* ask - send one request to the control socket and wait for the answer */
static int ask(const char *path, const char *req, char *ans, size_t len)
{
    struct sockaddr_un to = {.sun_family = AF_UNIX}, me = {.sun_family = AF_UNIX};
    struct timeval tv = {ANSWER_WAIT_S, 0};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ssize_t n;

    if (fd < 0)
        return -1;
    if (strlcpy(to.sun_path, path, sizeof to.sun_path) >= sizeof to.sun_path) {
        fprintf(stderr, "sluicectl: control socket path too long: %s\n", path);
        close(fd);
        return -1;
    }
    /* Autobind: the kernel names our socket so the master can answer it. */
    if (bind(fd, (struct sockaddr *)&me, sizeof(sa_family_t)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        sendto(fd, req, strlen(req), 0, (struct sockaddr *)&to, sizeof to) < 0) {
        fprintf(stderr, "sluicectl: no daemon answers on %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    n = recv(fd, ans, len - 1, 0);
    close(fd);
    if (n <= 0) {
        fprintf(stderr, "sluicectl: no answer from the daemon within %d s\n", ANSWER_WAIT_S);
        return -1;
    }
    ans[n] = '\0';
    return 0;
}

/* sl_ctl_probe - sluicectl probe [--binding B] --domain D [--mx H] [--hold S] */
int sl_ctl_probe(const char *cfgpath, int argc, char **argv)
{
    const char *binding = "default", *domain = NULL, *mx = "-";
    double hold = 0;
    char path[256], req[SL_CONTROL_MAX], ans[SL_CONTROL_MAX];
    char spool[200];

    for (int i = 1; i < argc; i++) {
        char *end;
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--binding") == 0)
            binding = argv[++i];
        else if (strcmp(argv[i], "--domain") == 0)
            domain = argv[++i];
        else if (strcmp(argv[i], "--mx") == 0)
            mx = argv[++i];
        else if (strcmp(argv[i], "--hold") == 0) {
            hold = strtod(argv[++i], &end);
            if (*end != '\0' || !isfinite(hold) || hold < 0 || hold * 1000 > SL_PROBE_HOLD_MAX_MS) {
                fprintf(stderr, "sluicectl: --hold takes seconds (0 to 86400), not %s\n", argv[i]);
                return 2;
            }
        } else
            return usage();
    }
    if (domain == NULL)
        return usage();
    if (sl_ctl_global(cfgpath, SL_OPT_SPOOL_DIR, spool, sizeof spool) != 0)
        return 1;
    sl_control_path(spool, path, sizeof path);
    snprintf(req, sizeof req, "P %s %s %s %ld", binding, domain, mx, lround(hold * 1000));
    if (ask(path, req, ans, sizeof ans) < 0)
        return 1;
    printf("%s\n", ans);
    return strncmp(ans, "OK", 2) == 0 ? 0 : 1;
}
