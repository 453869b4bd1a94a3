/* serve_fetch.c -- download an image or video named by an http(s) URL, for
 * `glmv serve --allow-remote-media` (off by default: a server that fetches
 * what clients name can be pointed at hosts behind it). libcurl, http and
 * https only (redirects included), at most 3 redirects, a size cap and a
 * time limit (20 s in all); the body must come with status 200. serve.c runs
 * it on a thread of its own per request (never on an HTTP thread, so a URL
 * that never answers holds nothing else); at most `slots` downloads at once,
 * one past them is refused as busy (503).
 */
#include <stdatomic.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

typedef struct {
    unsigned char *p;
    size_t len, cap, max;
} fetch_buf;

static size_t on_data(char *data, size_t size, size_t n, void *user) {
    fetch_buf *b = user;
    size_t k = size * n;
    if (b->len + k > b->max) return 0; /* too large: abort the transfer */
    if (b->len + k > b->cap) {
        size_t cap = (b->len + k) * 2;
        if (cap > b->max) cap = b->max;
        unsigned char *q = realloc(b->p, cap);
        if (!q) return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, k);
    b->len += k;
    return k;
}

static atomic_int fetch_busy, fetch_slots = 1, fetch_abort;
void serve_fetch_abort_all(void) { atomic_store(&fetch_abort, 1); }
static int on_progress(void *u, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    (void)u, (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&fetch_abort) ? 1 : 0;
}

int serve_fetch_init(int slots) {
    atomic_store(&fetch_slots, slots > 0 ? slots : 1);
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}
void serve_fetch_cleanup(void) { curl_global_cleanup(); }

static int fetch(const char *url, size_t max_bytes, unsigned char **out, size_t *out_len, char *err);

int serve_fetch_url(const char *url, size_t max_bytes, unsigned char **out, size_t *out_len,
                    char *err) {
    if (atomic_load(&fetch_abort)) {
        snprintf(err, GLMV_ERR_SIZE, "the server is shutting down");
        return -3;
    }
    if (atomic_fetch_add(&fetch_busy, 1) >= atomic_load(&fetch_slots)) {
        atomic_fetch_sub(&fetch_busy, 1);
        snprintf(err, GLMV_ERR_SIZE, "%d media downloads are in progress already: retry later",
                 atomic_load(&fetch_slots));
        return -2;
    }
    int rc = fetch(url, max_bytes, out, out_len, err);
    atomic_fetch_sub(&fetch_busy, 1);
    if (rc && atomic_load(&fetch_abort)) { /* cut short by the shutdown, not the URL's fault */
        snprintf(err, GLMV_ERR_SIZE, "the server is shutting down");
        return -3;
    }
    return rc;
}

static int fetch(const char *url, size_t max_bytes, unsigned char **out, size_t *out_len, char *err) {
    CURL *c = curl_easy_init();
    if (!c) return snprintf(err, GLMV_ERR_SIZE, "cannot start a download"), -1;
    fetch_buf b = {NULL, 0, 0, max_bytes};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L); /* the whole download, however slowly it trickles */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "glmv-serve");
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK || status != 200) {
        if (rc == CURLE_WRITE_ERROR || rc == CURLE_FILESIZE_EXCEEDED)
            snprintf(err, GLMV_ERR_SIZE, "the media at this URL is larger than %zu bytes", max_bytes);
        else if (rc != CURLE_OK)
            snprintf(err, GLMV_ERR_SIZE, "cannot download the media: %s", curl_easy_strerror(rc));
        else
            snprintf(err, GLMV_ERR_SIZE, "cannot download the media: HTTP status %ld", status);
        free(b.p);
        return -1;
    }
    *out = b.p ? b.p : malloc(1);
    *out_len = b.len;
    return *out ? 0 : -1;
}
