/* eval_url.c -- `glmv eval --url`: the items asked of a running server
 * (`glmv serve`, or any OpenAI-compatible one) instead of a model loaded here.
 * One POST /v1/chat/completions per item, not streamed: the images and the
 * video inline as base64 data: URLs, the thinking budget as glmv serve's
 * max_thinking_tokens. The answer is message.content; the token counts come
 * from usage (completion_tokens, completion_tokens_details.reasoning_tokens).
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "eval.h"

struct eval_url {
    CURL *curl;
    struct curl_slist *headers;
    char *endpoint;     /* .../v1/chat/completions */
    char *model;
};

int eval_url_open(eval_url **out, const char *url, const char *api_key, const char *model,
                  char *err, size_t errsz) {
    *out = NULL;
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return eval_fail(err, errsz, "--url must start with http:// or https://, got '%.200s'",
                         url);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return eval_fail(err, errsz, "cannot initialise libcurl");
    eval_url *u = calloc(1, sizeof *u);
    size_t n = strlen(url);
    while (n > 8 && url[n - 1] == '/') n--;
    u->endpoint = malloc(n + 32);
    u->model = strdup(model ? model : "glmv");
    u->curl = curl_easy_init();
    if (!u->endpoint || !u->model || !u->curl) {
        eval_url_close(u);
        return eval_fail(err, errsz, "out of memory");
    }
    const char *tail = "/v1/chat/completions";
    if (n >= 17 && !strncmp(url + n - 17, "/chat/completions", 17)) tail = "";
    else if (n >= 3 && !strncmp(url + n - 3, "/v1", 3)) tail = "/chat/completions";
    snprintf(u->endpoint, n + 32, "%.*s%s", (int)n, url, tail);
    u->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (api_key && *api_key) {
        char h[1024];
        snprintf(h, sizeof h, "Authorization: Bearer %.900s", api_key);
        u->headers = curl_slist_append(u->headers, h);
    }
    *out = u;
    return 0;
}

void eval_url_close(eval_url *u) {
    if (!u) return;
    if (u->curl) curl_easy_cleanup(u->curl);
    curl_slist_free_all(u->headers);
    free(u->endpoint);
    free(u->model);
    free(u);
    curl_global_cleanup();
}

/* ---- a request body ---------------------------------------------------- */

static char *data_url(const char *path, const char *mime, char *err, size_t errsz) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *f = fopen(path, "rb");
    if (!f) return eval_fail(err, errsz, "cannot open %s", path), NULL;
    size_t cap = 1 << 16, n = 0, r;
    unsigned char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            unsigned char *nb = cap < ((size_t)1 << 30) ? realloc(buf, cap *= 2) : NULL;
            if (!nb) free(buf);
            buf = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) return free(buf), eval_fail(err, errsz, "cannot read %s", path), NULL;
    size_t hl = strlen(mime) + 13;
    char *o = malloc(hl + (n + 2) / 3 * 4 + 1);
    if (!o) return free(buf), eval_fail(err, errsz, "out of memory"), NULL;
    char *q = o + sprintf(o, "data:%s;base64,", mime);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)buf[i] << 16 | (i + 1 < n ? (unsigned)buf[i + 1] << 8 : 0) |
                     (i + 2 < n ? buf[i + 2] : 0);
        *q++ = b64[v >> 18 & 63];
        *q++ = b64[v >> 12 & 63];
        *q++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
        *q++ = i + 2 < n ? b64[v & 63] : '=';
    }
    *q = 0;
    free(buf);
    return o;
}

static const char *mime_of(const char *path, int video) {
    const char *dot = strrchr(path, '.');
    static const char *const map[][2] = {{".png", "image/png"},   {".jpg", "image/jpeg"},
                                         {".jpeg", "image/jpeg"}, {".webp", "image/webp"},
                                         {".gif", "image/gif"},   {".bmp", "image/bmp"},
                                         {".mp4", "video/mp4"},   {".webm", "video/webm"},
                                         {".mkv", "video/x-matroska"}, {".mov", "video/quicktime"},
                                         {".avi", "video/x-msvideo"}};
    for (size_t i = 0; dot && i < sizeof map / sizeof map[0]; i++)
        if (!strcasecmp(dot, map[i][0])) return map[i][1];
    return video ? "video/mp4" : "image/png"; /* the server decodes by content, not by type */
}

static int add_media(cJSON *content, const char *path, int video, char *err, size_t errsz) {
    char *url = data_url(path, mime_of(path, video), err, errsz);
    if (!url) return -1;
    const char *type = video ? "video_url" : "image_url";
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", type);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(p, type), "url", url);
    cJSON_AddItemToArray(content, p);
    free(url);
    return 0;
}

static char *request_body(const eval_url *u, const eval_item *it, const char *sampling, int budget,
                          char *err, size_t errsz) {
    cJSON *root = sampling ? cJSON_Parse(sampling) : cJSON_CreateObject();
    if (!root) return eval_fail(err, errsz, "internal: bad sampling JSON"), NULL;
    cJSON_AddStringToObject(root, "model", u->model);
    if (budget > 0) cJSON_AddNumberToObject(root, "max_thinking_tokens", budget);
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "messages"), msg);
    cJSON_AddStringToObject(msg, "role", "user");
    cJSON *content = cJSON_AddArrayToObject(msg, "content");
    for (int i = 0; i < it->n_images; i++)
        if (add_media(content, it->images[i], 0, err, errsz)) return cJSON_Delete(root), NULL;
    if (it->video && add_media(content, it->video, 1, err, errsz)) return cJSON_Delete(root), NULL;
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", "text");
    cJSON_AddStringToObject(t, "text", it->question);
    cJSON_AddItemToArray(content, t);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s) eval_fail(err, errsz, "out of memory");
    return s;
}

/* ---- the exchange ------------------------------------------------------ */

typedef struct {
    char *p;
    size_t n;
} sink;

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
    sink *s = user;
    size_t k = size * nmemb;
    if (s->n + k > ((size_t)64 << 20)) return 0; /* no answer is 64 MiB: stop a runaway server */
    char *q = realloc(s->p, s->n + k + 1);
    if (!q) return 0;
    memcpy(q + s->n, data, k);
    s->p = q;
    s->n += k;
    q[s->n] = 0;
    return k;
}

int eval_url_ask(eval_url *u, const eval_item *it, const char *sampling, int budget,
                 eval_url_result *res, char *err, size_t errsz) {
    memset(res, 0, sizeof *res);
    char *body = request_body(u, it, sampling, budget, err, errsz);
    if (!body) return -1;
    sink s = {0};
    CURL *c = u->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, u->endpoint);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, u->headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 3600L); /* a long thinking run on a slow server */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    free(body);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    int ret = -1;
    cJSON *root = NULL;
    if (rc != CURLE_OK) {
        eval_fail(err, errsz, "%s: %s", u->endpoint, curl_easy_strerror(rc));
        goto done;
    }
    root = s.p ? cJSON_Parse(s.p) : NULL;
    if (status != 200) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
        const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : NULL;
        eval_fail(err, errsz, "%s answered HTTP %ld: %.300s", u->endpoint, status,
             cJSON_IsString(m) ? m->valuestring : s.p ? s.p : "(no body)");
        goto done;
    }
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (!cJSON_IsString(content) && !cJSON_IsNull(content)) {
        eval_fail(err, errsz, "%s: the answer has no choices[0].message.content: %.200s",
                  u->endpoint, s.p ? s.p : "");
        goto done;
    }
    res->content = strdup(cJSON_IsString(content) ? content->valuestring : "");
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    snprintf(res->finish, sizeof res->finish, "%s", cJSON_IsString(fr) ? fr->valuestring : "stop");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens_details");
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(det, "reasoning_tokens");
    res->completion_tokens = cJSON_IsNumber(ct) ? ct->valueint : 0;
    res->reasoning_tokens = cJSON_IsNumber(rt) ? rt->valueint : 0;
    ret = res->content ? 0 : eval_fail(err, errsz, "out of memory");
done:
    cJSON_Delete(root);
    free(s.p);
    return ret;
}
