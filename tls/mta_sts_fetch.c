/*
 * mta_sts_fetch.c - fetch a domain's MTA-STS policy body over HTTPS (RFC 8461
 * 3.3) with libcurl's easy interface.
 *
 * The rules of 3.3, each one a curl option: https only, no redirect followed,
 * the certificate verified for mta-sts.DOMAIN (tls_ca_file or the system
 * store), HTTP 200 only, Content-Type text/plain, the body capped at
 * SL_STS_BODY_MAX, the whole fetch bounded by mta_sts_timeout.  The host's
 * address comes from sluice's resolver (dns_server) and is handed to curl
 * (CURLOPT_RESOLVE), so curl never asks the system resolver; no proxy from
 * the environment is used.  CURLOPT_NOSIGNAL: the worker owns SIGALRM.
 *
 * One handle per fetch, freed before return: a fetch happens at most once
 * per policy id and max_age, so there is nothing to gain from keeping it.
 * libcurl is loaded (dlopen) at the first fetch rather than linked: its
 * dependencies (about 30 libraries) would cost every sluicectl process,
 * inject above all, some 4 ms of start-up, and most domains publish no
 * policy.  Global state: `curl`, the loaded entry points, set once.
 * Trust boundary: the HTTPS server (what it sends is only read up to the cap
 * and handed to the parser as bytes).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>
#include <curl/curl.h>

#include "mta_sts_impl.h"
#include "util/sl_msg.h"

#define DEFAULT_TIMEOUT_MS 120000L /* mta_sts_timeout's default, should none be given */

/* libcurl's entry points this file uses, loaded once (NULL handle: not yet). */
static struct {
    void *handle;
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} curl;

/* load_curl - libcurl's entry points; false with err when the library is missing */
static bool load_curl(char *err, size_t errlen)
{
    void *h;

    if (curl.handle != NULL)
        return true;
    if ((h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL)) == NULL) {
        snprintf(err, errlen, "libcurl cannot be loaded: %s", dlerror());
        return false;
    }
    *(void **)&curl.easy_init = dlsym(h, "curl_easy_init");
    *(void **)&curl.easy_setopt = dlsym(h, "curl_easy_setopt");
    *(void **)&curl.easy_perform = dlsym(h, "curl_easy_perform");
    *(void **)&curl.easy_getinfo = dlsym(h, "curl_easy_getinfo");
    *(void **)&curl.easy_cleanup = dlsym(h, "curl_easy_cleanup");
    *(void **)&curl.easy_strerror = dlsym(h, "curl_easy_strerror");
    *(void **)&curl.slist_append = dlsym(h, "curl_slist_append");
    *(void **)&curl.slist_free_all = dlsym(h, "curl_slist_free_all");
    if (!curl.easy_init || !curl.easy_setopt || !curl.easy_perform || !curl.easy_getinfo ||
        !curl.easy_cleanup || !curl.easy_strerror || !curl.slist_append || !curl.slist_free_all) {
        snprintf(err, errlen, "libcurl.so.4 lacks an entry point sluice uses");
        dlclose(h);
        return false;
    }
    curl.handle = h;
    return true;
}

/* The body as it arrives. */
struct body {
    char *data;
    size_t len;
    bool too_big;
};

/* take_body - curl's write callback: append, or stop the transfer at the cap */
static size_t take_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;

    if (n > SL_STS_BODY_MAX - b->len) {
        b->too_big = true;
        return 0; /* anything short of n makes curl give up (CURLE_WRITE_ERROR) */
    }
    b->data = sl_realloc(b->data, b->len + n + 1);
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* resolve_entry - "mta-sts.DOMAIN:PORT:ADDR[,ADDR...]" from our own resolver */
static int resolve_entry(const struct sl_sts_env *env, const char *host, char *out, size_t outlen,
                         char *err, size_t errlen)
{
    struct sockaddr_storage addr[SL_DNS_ADDRS_MAX];
    char dnserr[256], ip[64];
    size_t n = 0;

    if (sl_dns_addrs(env->dns, host, env->port, addr, SL_DNS_ADDRS_MAX, &n, dnserr,
                     sizeof dnserr) != SL_DNS_OK) {
        snprintf(err, errlen, "no address for %s: %s", host, dnserr);
        return -1;
    }
    snprintf(out, outlen, "%s:%d:", host, env->port);
    for (size_t i = 0; i < n; i++) {
        char one[72];
        sl_dns_format_addr(&addr[i], ip, sizeof ip, false);
        /* curl wants an IPv6 address in brackets here */
        snprintf(one, sizeof one, addr[i].ss_family == AF_INET6 ? "%s[%s]" : "%s%s",
                 i > 0 ? "," : "", ip);
        strlcat(out, one, outlen);
    }
    return 0;
}

/* text_plain - is the Content-Type text/plain (parameters such as charset allowed)? */
static bool text_plain(const char *ct)
{
    size_t n;

    if (ct == NULL)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    n = strcspn(ct, "; \t");
    return n == 10 && strncasecmp(ct, "text/plain", 10) == 0;
}

/* timeout_text - "2s" or "1500ms", as the configuration would say it */
static void timeout_text(long ms, char *buf, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%lds", ms / 1000);
    else
        snprintf(buf, len, "%ldms", ms);
}

/* explain - one line for a transfer that did not complete */
static void explain(CURLcode rc, const struct body *b, const char *curlerr, long timeout_ms,
                    char *err, size_t errlen)
{
    char t[32];
    const char *detail = curlerr[0] != '\0' ? curlerr : curl.easy_strerror(rc);

    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        timeout_text(timeout_ms, t, sizeof t);
        snprintf(err, errlen, "fetch timed out after %s", t);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        snprintf(err, errlen, "certificate: %s", detail);
        break;
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(err, errlen, "TLS handshake: %s", detail);
        break;
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        if (b->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
            snprintf(err, errlen, "policy larger than %d bytes", SL_STS_BODY_MAX);
            break;
        }
        /* fall through */
    default:
        snprintf(err, errlen, "fetch failed: %s", detail);
    }
}

/* setup - every option of one fetch; false when curl refuses one */
static bool setup(CURL *c, const struct sl_sts_env *env, const char *url,
                  struct curl_slist *resolve, struct body *b, char *curlerr, long timeout_ms)
{
    bool ok = true;

    ok = ok && curl.easy_setopt(c, CURLOPT_URL, url) == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_RESOLVE, resolve) == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_PROXY, "") == CURLE_OK; /* no proxy from the env */
    ok = ok && curl.easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
    if (env->ca_file != NULL && env->ca_file[0] != '\0')
        ok = ok && curl.easy_setopt(c, CURLOPT_CAINFO, env->ca_file) == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_MAXFILESIZE, (long)SL_STS_BODY_MAX) == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, take_body) == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_WRITEDATA, b) == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_ERRORBUFFER, curlerr) == CURLE_OK;
    ok = ok && curl.easy_setopt(c, CURLOPT_USERAGENT, "sluice") == CURLE_OK;
    return ok;
}

/* transfer - run the GET and judge the response (status, type, size) */
static int transfer(CURL *c, struct body *b, const char *curlerr, long timeout_ms, char *err,
                    size_t errlen)
{
    CURLcode rc = curl.easy_perform(c);
    long status = 0;
    char *ct = NULL;

    if (rc != CURLE_OK) {
        explain(rc, b, curlerr, timeout_ms, err, errlen);
        return -1;
    }
    curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        snprintf(err, errlen, "HTTP %ld%s", status,
                 status >= 300 && status < 400 ? " (redirects are not followed)" : "");
        return -1;
    }
    curl.easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (!text_plain(ct)) {
        snprintf(err, errlen, "content type %.60s is not text/plain", ct != NULL ? ct : "(none)");
        return -1;
    }
    return 0;
}

/* sl_sts_fetch - the policy body of domain */
int sl_sts_fetch(const struct sl_sts_env *env, const char *domain, char **body, size_t *len,
                 char *err, size_t errlen)
{
    char host[300], url[400], entry[SL_DNS_ADDRS_MAX * 72 + 320];
    char curlerr[CURL_ERROR_SIZE] = "";
    long timeout_ms = env->timeout_ms > 0 ? env->timeout_ms : DEFAULT_TIMEOUT_MS;
    struct body b = {NULL, 0, false};
    struct curl_slist *resolve;
    CURL *c;
    int r = -1;

    *body = NULL;
    *len = 0;
    snprintf(host, sizeof host, "mta-sts.%s", domain);
    if (env->port == 443)
        snprintf(url, sizeof url, "https://%s/.well-known/mta-sts.txt", host);
    else
        snprintf(url, sizeof url, "https://%s:%d/.well-known/mta-sts.txt", host, env->port);
    if (!load_curl(err, errlen) || resolve_entry(env, host, entry, sizeof entry, err, errlen) < 0)
        return -1;
    resolve = curl.slist_append(NULL, entry);
    c = curl.easy_init();
    if (resolve == NULL || c == NULL || !setup(c, env, url, resolve, &b, curlerr, timeout_ms))
        snprintf(err, errlen, "libcurl cannot set up a fetch of %s", url);
    else
        r = transfer(c, &b, curlerr, timeout_ms, err, errlen);
    curl.easy_cleanup(c);
    curl.slist_free_all(resolve);
    if (r < 0) {
        free(b.data);
        return -1;
    }
    *body = b.data != NULL ? b.data : sl_strdup("");
    *len = b.len;
    return 0;
}
