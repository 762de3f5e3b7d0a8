/*
 * ctl_metrics_http.c - sluicectl metrics --listen: the exposition served over HTTP for a
 * Prometheus scrape, with libmicrohttpd.
 *
 * GET (or HEAD) /metrics answers 200 with the text exposition 0.0.4 of the segment read at that
 * moment; 503 while no daemon runs (the scrape then shows the target down), 404 for any other
 * path, 405 for any other method.  Every scrape re-validates the attachment: a restarted daemon
 * (another segment, or a dead master pid) is noticed and re-attached, as `counters --watch`
 * does.  Runs until SIGTERM or SIGINT, then exits 0.
 * Concurrency: one libmicrohttpd polling thread answers every request, so the attachment it
 * keeps is touched by that thread alone; the main thread only waits for the signal (SIGTERM
 * and SIGINT are blocked before the thread starts, so it never receives them).
 * Trust boundary: requests come from the network: only the method and the path are looked at,
 * nothing is read from a body, and connections are bounded in number and time.  The listen
 * address comes from the operator and is parsed as a numeric address and port.
 * libmicrohttpd is loaded (dlopen) when --listen is used rather than linked: its dependencies
 * (GnuTLS and more) would slow the start of every sluicectl process, inject's above all.
 * Global state: `mhd`, the loaded entry points, set once.
 */
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>
#include <microhttpd.h>

#include "util/sl_msg.h"
#include "shm/sl_shm.h"
#include "ctl_metrics.h"

#define CONTENT_TYPE    "text/plain; version=0.0.4; charset=utf-8"
#define MAX_CONNECTIONS 16
#define CONN_TIMEOUT_S  10

/* libmicrohttpd's entry points this file uses, loaded once (NULL handle: not yet). */
static struct {
    void *handle;
    struct MHD_Daemon *(*start_daemon)(unsigned, uint16_t, MHD_AcceptPolicyCallback, void *,
                                       MHD_AccessHandlerCallback, void *, ...);
    void (*stop_daemon)(struct MHD_Daemon *);
    struct MHD_Response *(*create_response_from_buffer)(size_t, void *,
                                                        enum MHD_ResponseMemoryMode);
    enum MHD_Result (*add_response_header)(struct MHD_Response *, const char *, const char *);
    enum MHD_Result (*queue_response)(struct MHD_Connection *, unsigned, struct MHD_Response *);
    void (*destroy_response)(struct MHD_Response *);
} mhd;

/* load_mhd - libmicrohttpd's entry points; false with err when the library is missing */
static bool load_mhd(char *err, size_t errlen)
{
    void *h = dlopen("libmicrohttpd.so.12", RTLD_NOW | RTLD_LOCAL);

    if (h == NULL) {
        snprintf(err, errlen, "libmicrohttpd cannot be loaded: %s", dlerror());
        return false;
    }
    *(void **)&mhd.start_daemon = dlsym(h, "MHD_start_daemon");
    *(void **)&mhd.stop_daemon = dlsym(h, "MHD_stop_daemon");
    *(void **)&mhd.create_response_from_buffer = dlsym(h, "MHD_create_response_from_buffer");
    *(void **)&mhd.add_response_header = dlsym(h, "MHD_add_response_header");
    *(void **)&mhd.queue_response = dlsym(h, "MHD_queue_response");
    *(void **)&mhd.destroy_response = dlsym(h, "MHD_destroy_response");
    if (!mhd.start_daemon || !mhd.stop_daemon || !mhd.create_response_from_buffer ||
        !mhd.add_response_header || !mhd.queue_response || !mhd.destroy_response) {
        snprintf(err, errlen, "libmicrohttpd.so.12 lacks an entry point sluice uses");
        dlclose(h);
        return false;
    }
    mhd.handle = h;
    return true;
}

/* The listener's state: the segment's name and the attachment, the polling thread's alone. */
struct server {
    const char *shm_name;
    const char *spool; /* spool_dir, for the entries set aside; NULL: not counted */
    struct sl_shm shm;
    bool attached;
};

/* parse_listen - "ADDR:PORT" or "[V6ADDR]:PORT" into ss; false with a reason in err */
static bool parse_listen(const char *text, struct sockaddr_storage *ss, socklen_t *len, char *err,
                         size_t errlen)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char host[128];
    const char *colon = strrchr(text, ':'), *port;
    char *end;
    long p;
    int rc;

    if (colon == NULL || colon == text || (size_t)(colon - text) >= sizeof host) {
        snprintf(err, errlen, "--listen wants ADDR:PORT, not \"%s\"", text);
        return false;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1]:9100 */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    port = colon + 1;
    errno = 0;
    p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || errno != 0 || p < 0 || p > 65535) {
        snprintf(err, errlen, "--listen: \"%s\" is not a port number (0-65535)", port);
        return false;
    }
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        snprintf(err, errlen, "--listen: \"%s\" is not an IP address (%s)", host, gai_strerror(rc));
        return false;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return true;
}

/* open_listener - a listening socket on the address; -1 with a reason in err */
static int open_listener(const struct sockaddr_storage *ss, socklen_t len, const char *text,
                         char *err, size_t errlen)
{
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", text, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, MAX_CONNECTIONS) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* fresh_segment - the attachment for this scrape: re-made when the daemon restarted or went;
 * NULL (reason in err) while none runs */
static const struct sl_shm *fresh_segment(struct server *sv, char *err, size_t errlen)
{
    if (sv->attached && sl_shm_stale(&sv->shm)) {
        sl_shm_detach(&sv->shm);
        sv->attached = false;
    }
    if (!sv->attached) {
        sv->attached = sl_shm_attach(sv->shm_name, true, 0, &sv->shm, err, errlen) == 0;
        if (sv->attached && sl_shm_stale(&sv->shm)) {
            snprintf(err, errlen, "segment %s was left by pid %llu", sv->shm_name,
                     (unsigned long long)sv->shm.hdr->master_pid);
            sl_shm_detach(&sv->shm);
            sv->attached = false;
        }
    }
    return sv->attached ? &sv->shm : NULL;
}

/* exposition - the body of a scrape in a new buffer; NULL with a reason in err */
static char *exposition(struct server *sv, size_t *len, char *err, size_t errlen)
{
    const struct sl_shm *shm = fresh_segment(sv, err, errlen);
    char *buf = NULL;
    FILE *f;
    int rc;

    if (shm == NULL)
        return NULL;
    if ((f = open_memstream(&buf, len)) == NULL)
        sl_msg_fatal("out of memory");
    rc = sl_metrics_write(f, shm, sv->spool);
    if (fclose(f) != 0)
        sl_msg_fatal("out of memory");
    if (rc < 0) {
        snprintf(err, errlen, "cannot read the counter table %s", sv->shm_name);
        free(buf);
        return NULL;
    }
    return buf;
}

/* reply - queue a response of status with body (taken over: freed by libmicrohttpd) */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                             const char *type)
{
    struct MHD_Response *r = mhd.create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result rc;

    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    mhd.add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        mhd.add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    rc = mhd.queue_response(c, status, r);
    mhd.destroy_response(r);
    return rc;
}

/* reply_text - a short plain-text response: one line */
static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *line)
{
    char *body = NULL;

    if (asprintf(&body, "%s\n", line) < 0)
        sl_msg_fatal("out of memory");
    return reply(c, status, body, strlen(body), "text/plain; charset=utf-8");
}

/* on_request - one HTTP request: the exposition on GET /metrics */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **req)
{
    struct server *sv = cls;
    char err[300], line[400], *body;
    size_t len = 0;

    (void)version;
    (void)upload;
    (void)req;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *upload_len = 0; /* a body is never read */
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD");
    }
    if (strcmp(url, "/metrics") != 0)
        return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics");
    if ((body = exposition(sv, &len, err, sizeof err)) == NULL) {
        snprintf(line, sizeof line, "no daemon running: %s", err);
        return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, line);
    }
    return reply(c, MHD_HTTP_OK, body, len, CONTENT_TYPE);
}

/* bound_text - the address the socket is bound to, "ADDR:PORT" (port 0 resolved) */
static void bound_text(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        strlcpy(buf, "?", len);
        return;
    }
    snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* sl_metrics_serve - the listener, until SIGTERM or SIGINT */
int sl_metrics_serve(const char *shm_name, const char *spool, const char *listen)
{
    struct server sv = {.shm_name = shm_name, .spool = spool};
    struct sockaddr_storage ss;
    socklen_t len;
    struct MHD_Daemon *d;
    sigset_t stop;
    char err[300], where[NI_MAXHOST + NI_MAXSERV + 4];
    int fd, sig;

    if (!parse_listen(listen, &ss, &len, err, sizeof err)) {
        fprintf(stderr, "sluicectl: %s\n", err);
        return 2;
    }
    if (!load_mhd(err, sizeof err)) {
        fprintf(stderr, "sluicectl: %s\n", err);
        return 1;
    }
    if ((fd = open_listener(&ss, len, listen, err, sizeof err)) < 0) {
        fprintf(stderr, "sluicectl: %s\n", err);
        return 1;
    }
    /* Blocked before the polling thread starts, so it inherits the mask: only sigwait below
     * takes them. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    d = mhd.start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, on_request,
                         &sv, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)CONN_TIMEOUT_S, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "sluicectl: cannot start the HTTP listener on %s\n", listen);
        close(fd);
        return 1;
    }
    bound_text(fd, where, sizeof where);
    fprintf(stderr, "sluicectl: serving metrics at http://%s/metrics\n", where);
    while (sigwait(&stop, &sig) != 0)
        ;
    mhd.stop_daemon(d); /* closes the listening socket too */
    if (sv.attached)
        sl_shm_detach(&sv.shm);
    return 0;
}
