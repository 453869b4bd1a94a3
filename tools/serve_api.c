/* serve_api.c -- the OpenAI chat-completions wire format for `glmv serve`.
 *
 * Parses a request body (cJSON) into glmv messages and sampling settings,
 * checking every type and range and naming the offending parameter the way
 * OpenAI's errors do; decodes data: URLs; resolves local media under
 * --media-dir only. Builds the response bodies: a completion, the SSE chunks
 * of a stream (reasoning in `reasoning_content`, the answer in `content`),
 * /v1/models and the error object. No networking and no threads here.
 */
#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "serve.h"

#define MAX_MESSAGES 4096
#define MAX_PARTS 8192
#define MAX_STOP 16
#define MAX_STOP_LEN 256

int serve_error_set(serve_error *e, int status, const char *type, const char *code,
                    const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

#define BAD(param, ...) \
    serve_error_set(e, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static char *own(serve_request *r, char *p) {
    if (!p) return NULL;
    if (r->n_owned == r->cap_owned) {
        int cap = r->cap_owned ? 2 * r->cap_owned : 16;
        char **o = realloc(r->owned, (size_t)cap * sizeof *o);
        if (!o) { free(p); return NULL; }
        r->owned = o;
        r->cap_owned = cap;
    }
    r->owned[r->n_owned++] = p;
    return p;
}

static char *own_strdup(serve_request *r, const char *s) { return own(r, strdup(s)); }

void serve_request_free(serve_request *r) {
    if (r->prepared && r->prepared_free) r->prepared_free(r->prepared);
    for (int i = 0; i < r->n_owned; i++) free(r->owned[i]);
    free(r->owned);
    free(r->msgs);
    free(r->parts);
    free(r->stop);
    free(r->bias_ids);
    free(r->bias_values);
    memset(r, 0, sizeof *r);
}

static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

int serve_base64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len) {
    unsigned char *o = malloc(n / 4 * 3 + 4);
    if (!o) return -1;
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '=') { pad++; continue; }
        int v = b64_val(c);
        if (v < 0 || pad) { free(o); return -1; } /* bad char, or data after padding */
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (unsigned char)(acc >> bits);
        }
    }
    if (pad > 2 || bits >= 6) { free(o); return -1; } /* a lone 6-bit group is no byte */
    *out = o;
    *out_len = k;
    return 0;
}

static const char *image_format(const unsigned char *p, size_t n) {
    if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return "png";
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return "jpeg";
    if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) return "webp";
    if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) return "gif";
    if (n >= 26 && p[0] == 'B' && p[1] == 'M') return "bmp"; /* the decoder reads BMP too */
    return NULL;
}

static int get_int(const cJSON *v, const char *name, long lo, long hi, long *out, serve_error *e) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return BAD(name, "'%s' must be an integer", name);
    if (!(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi))
        return BAD(name, "'%s' must be in [%ld, %ld], got %.17g", name, lo, hi, v->valuedouble);
    *out = (long)v->valuedouble;
    return 0;
}

static int get_num(const cJSON *v, const char *name, double lo, double hi, int lo_open, double *out,
                   serve_error *e) {
    if (!cJSON_IsNumber(v)) return BAD(name, "'%s' must be a number", name);
    double x = v->valuedouble;
    if (!(x >= lo && x <= hi) || (lo_open && x == lo))
        return BAD(name, "'%s' must be in %c%g, %g], got %g", name, lo_open ? '(' : '[', lo, hi, x);
    *out = x;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Media                                                                    */
/* ------------------------------------------------------------------------ */

/* Fill part `p` from a URL: data:, a local path under --media-dir, or refuse. */
/* Collapse '.', '..' and repeated '/' of an absolute path without asking
   the file system ('..' at the root stays at the root). out has PATH_MAX. */
static void normalize_path(const char *in, char *out) {
    size_t n = 0;
    out[n++] = '/';
    const char *s = in;
    while (*s) {
        while (*s == '/') s++;
        const char *seg = s;
        while (*s && *s != '/') s++;
        size_t len = (size_t)(s - seg);
        if (len == 0 || (len == 1 && seg[0] == '.')) continue;
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            while (n > 1 && out[n - 1] != '/') n--;
            if (n > 1) n--;
            continue;
        }
        if (n > 1) out[n++] = '/';
        if (n + len >= PATH_MAX) len = PATH_MAX - 1 - n;
        memcpy(out + n, seg, len);
        n += len;
    }
    out[n] = 0;
}

/* Is path dir itself or inside it? Both absolute and normalized. */
static int under_dir(const char *path, const char *dir) {
    size_t dl = strlen(dir);
    if (dl == 1 && dir[0] == '/') return 1;
    return !strncmp(path, dir, dl) && (path[dl] == '/' || path[dl] == 0);
}

static int media_from_url(serve_request *r, glmv_part *p, const char *url, int video,
                          const char *param, const serve_media_policy *pol, serve_error *e) {
    const char *what = video ? "video" : "image";
    if (!strncmp(url, "data:", 5)) {
        const char *comma = strchr(url, ',');
        if (!comma) return BAD(param, "%s data: URL has no ','", what);
        const char *meta = url + 5;
        size_t mlen = (size_t)(comma - meta);
        if (mlen < 7 || memcmp(comma - 7, ";base64", 7))
            return BAD(param, "%s data: URL must be base64 (data:<type>;base64,...)", what);
        unsigned char *bytes;
        size_t n;
        if (serve_base64_decode(comma + 1, strlen(comma + 1), &bytes, &n))
            return serve_error_set(e, 400, "invalid_request_error", "invalid_image", param,
                                   "%s data: URL is not valid base64", what);
        own(r, (char *)bytes);
        if (n == 0)
            return serve_error_set(e, 400, "invalid_request_error", "invalid_image", param,
                                   "%s data is empty", what);
        if (!video && !image_format(bytes, n))
            return serve_error_set(e, 400, "invalid_request_error", "invalid_image", param,
                                   "image data is not PNG, JPEG, WebP, GIF or BMP (could not decode it)");
        p->data = bytes;
        p->size = n;
        return 0;
    }
    if (pol->allow_remote && (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))) {
        if (pol->defer_remote) { /* downloaded later, off the HTTP thread: serve_request_fetch */
            if (r->n_remote >= SERVE_MAX_REMOTE)
                return BAD(param, "more than %d http(s) media in one request", SERVE_MAX_REMOTE);
            r->remote_part[r->n_remote] = (int)(p - r->parts);
            r->remote_video[r->n_remote] = video;
            r->remote_url[r->n_remote] = own_strdup(r, url);
            if (!r->remote_url[r->n_remote]) return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            r->n_remote++;
            p->data = NULL;
            p->size = 0;
            return 0;
        }
        unsigned char *bytes;
        size_t n;
        char ferr[GLMV_ERR_SIZE];
        int frc = serve_fetch_url(url, pol->max_remote_bytes, &bytes, &n, ferr);
        if (frc == -2 || frc == -3)
            return serve_error_set(e, 503, "server_error", frc == -2 ? "media_fetch_busy" : "server_shutdown",
                                   param, "%s", ferr);
        if (frc)
            return serve_error_set(e, 400, "invalid_request_error", "media_fetch_failed", param,
                                   "%s", ferr);
        own(r, (char *)bytes);
        if (!video && !image_format(bytes, n))
            return serve_error_set(e, 400, "invalid_request_error", "invalid_image", param,
                                   "the data at this URL is not a PNG, JPEG, WebP, GIF or BMP image");
        p->data = bytes;
        p->size = n;
        return 0;
    }
    if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8) ||
        (strstr(url, "://") && strncmp(url, "file://", 7)))
        return serve_error_set(e, 400, "invalid_request_error", "remote_media_refused", param,
                               "remote %s URLs are refused: send a data: URL (base64), a path "
                               "under the server's --media-dir, or start it with --allow-remote-media",
                               what);
    const char *path = !strncmp(url, "file://", 7) ? url + 7 : url;
    if (!pol->media_dir)
        return BAD(param, "local %s paths are refused: the server was started without --media-dir",
                   what);
    if (!*path) return BAD(param, "empty %s path", what);
    char joined[PATH_MAX], real[PATH_MAX];
    int jl = path[0] == '/' ? snprintf(joined, sizeof joined, "%s", path)
                            : snprintf(joined, sizeof joined, "%s/%s", pol->media_dir, path);
    if (jl < 0 || (size_t)jl >= sizeof joined) return BAD(param, "%s path too long", what);
    /* Outside the directory is 403 whether or not the file exists, so the
       answer tells a client nothing about the rest of the file system. A file
       that exists is judged by where it really is (realpath: a symbolic link
       leading out is refused, and a path spelt through a link to the folder,
       such as the --media-dir as given, is not); one that does not exist by
       its spelling, with '..' collapsed. */
    char lexical[PATH_MAX];
    normalize_path(joined, lexical);
    int found = realpath(joined, real) != NULL;
    if (!under_dir(found ? real : lexical, pol->media_dir))
        return serve_error_set(e, 403, "permission_error", "media_outside_dir", param,
                               "%s path '%s' is outside --media-dir", what, path);
    if (!found) return BAD(param, "%s file '%s' not found under --media-dir", what, path);
    /* the client named it: a folder or a huge file is its error (400), not the server's */
    struct stat st;
    if (stat(real, &st) || !S_ISREG(st.st_mode))
        return BAD(param, "%s path '%s' under --media-dir is not a regular file", what, path);
    if ((uint64_t)st.st_size > ((uint64_t)1 << 30))
        return serve_error_set(e, 413, "invalid_request_error", "media_too_large", param,
                               "%s file '%s' has %lld bytes, above the 1024 MiB limit", what, path,
                               (long long)st.st_size);
    p->path = own_strdup(r, real);
    return p->path ? 0 : serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
}

int serve_request_fetch(serve_request *r, const serve_media_policy *pol, serve_error *e) {
    for (int i = 0; i < r->n_remote; i++) {
        glmv_part *p = &r->parts[r->remote_part[i]];
        unsigned char *bytes;
        size_t n;
        char ferr[GLMV_ERR_SIZE], param[64];
        snprintf(param, sizeof param, "messages");
        int frc = serve_fetch_url(r->remote_url[i], pol->max_remote_bytes, &bytes, &n, ferr);
        if (frc == -3) return serve_error_set(e, 503, "server_error", "server_shutdown", param, "%s", ferr);
        if (frc == -2) return serve_error_set(e, 503, "server_error", "media_fetch_busy", param, "%s", ferr);
        if (frc)
            return serve_error_set(e, 400, "invalid_request_error", "media_fetch_failed", param, "%s", ferr);
        own(r, (char *)bytes);
        if (!r->remote_video[i] && !image_format(bytes, n))
            return serve_error_set(e, 400, "invalid_request_error", "invalid_image", param,
                                   "the data at %.200s is not a PNG, JPEG, WebP, GIF or BMP image",
                                   r->remote_url[i]);
        p->data = bytes;
        p->size = n;
    }
    r->n_remote = 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

/* Assistant history: keep the answer, drop the thinking (as the official demos do). */
static const char *strip_think(serve_request *r, const char *s) {
    const char *end = strstr(s, "</think>");
    if (!end) return s;
    const char *rest = end + 8;
    char *c = own_strdup(r, rest);
    if (!c) return s;
    char *a = strstr(c, "<answer>");
    if (a) memmove(a, a + 8, strlen(a + 8) + 1);
    char *b = strstr(c, "</answer>");
    if (b) *b = 0;
    return c;
}

/* OpenAI's file part: {"file": {"file_data": "data:application/pdf;base64,...", "filename": ...}};
 * a PDF, whose pages become images. "pages" ("1-3,5") is glmv's own addition; file_id needs
 * OpenAI's file store, which glmv does not have. */
static int file_part(serve_request *r, glmv_part *p, const cJSON *f, const char *param, serve_error *e) {
    if (!cJSON_IsObject(f)) return BAD(param, "'%s.file' must be an object", param);
    if (cJSON_GetObjectItemCaseSensitive(f, "file_id"))
        return BAD(param, "'%s.file.file_id' is not supported: send the document itself in "
                   "'file_data' (a data:application/pdf;base64 URL)", param);
    const cJSON *fd = cJSON_GetObjectItemCaseSensitive(f, "file_data");
    if (!cJSON_IsString(fd)) return BAD(param, "'%s.file.file_data' must be a string", param);
    const cJSON *pages = cJSON_GetObjectItemCaseSensitive(f, "pages");
    if (pages && !cJSON_IsString(pages))
        return BAD(param, "'%s.file.pages' must be a string such as \"1-3,5\"", param);
    /* a data: URL, or the bare base64 some clients send */
    const char *b64 = fd->valuestring;
    if (!strncmp(b64, "data:", 5)) {
        const char *comma = strchr(b64, ',');
        if (!comma || comma - b64 < 12 || memcmp(comma - 7, ";base64", 7))
            return BAD(param, "'%s.file.file_data' must be data:application/pdf;base64,...", param);
        b64 = comma + 1;
    }
    unsigned char *bytes;
    size_t n;
    if (serve_base64_decode(b64, strlen(b64), &bytes, &n))
        return serve_error_set(e, 400, "invalid_request_error", "invalid_file", param,
                               "'%s.file.file_data' is not valid base64", param);
    own(r, (char *)bytes);
    if (n < 5 || !memmem(bytes, n < 1024 ? n : 1024, "%PDF-", 5))
        return serve_error_set(e, 400, "invalid_request_error", "invalid_file", param,
                               "the file is not a PDF (only PDF documents are read, their pages as images)");
    p->kind = GLMV_PART_PDF;
    p->data = bytes;
    p->size = n;
    if (pages && !(p->pages = own_strdup(r, pages->valuestring)))
        return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    r->n_pdfs++;
    return 0;
}

static int parse_part(serve_request *r, const cJSON *item, int mi, int pi,
                      const serve_media_policy *pol, serve_error *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%d].content[%d]", mi, pi);
    if (!cJSON_IsObject(item)) return BAD(param, "'%s' must be an object", param);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(item, "type");
    if (!cJSON_IsString(type)) return BAD(param, "'%s.type' must be a string", param);
    glmv_part *p = &r->parts[r->n_parts];
    memset(p, 0, sizeof *p);
    const char *t = type->valuestring;
    if (!strcmp(t, "text") || !strcmp(t, "input_text")) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(item, "text");
        if (!cJSON_IsString(text)) return BAD(param, "'%s.text' must be a string", param);
        p->kind = GLMV_PART_TEXT;
        p->text = own_strdup(r, text->valuestring);
        if (!p->text) return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    } else if (!strcmp(t, "image_url") || !strcmp(t, "video_url")) {
        int video = t[0] == 'v';
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(item, t);
        const cJSON *url = cJSON_IsObject(u) ? cJSON_GetObjectItemCaseSensitive(u, "url") : u;
        if (!cJSON_IsString(url))
            return BAD(param, "'%s.%s.url' must be a string", param, t);
        p->kind = video ? GLMV_PART_VIDEO : GLMV_PART_IMAGE;
        if (video && cJSON_IsObject(u)) {
            const cJSON *fps = cJSON_GetObjectItemCaseSensitive(u, "fps");
            const cJSON *mf = cJSON_GetObjectItemCaseSensitive(u, "max_frames");
            double d;
            long l;
            if (fps && get_num(fps, "fps", 0, 60, 1, &d, e)) return -1;
            if (fps) p->video_fps = d;
            if (mf && get_int(mf, "max_frames", 2, 100000, &l, e)) return -1; /* frames go in pairs */
            if (mf) p->video_max_frames = (int)l;
        }
        if (media_from_url(r, p, url->valuestring, video, param, pol, e)) return -1;
        if (video) r->n_videos++;
        else if (++r->n_images > pol->max_images)
            return BAD(param, "too many images: at most %d per request", pol->max_images);
    } else if (!strcmp(t, "file")) {
        if (file_part(r, p, cJSON_GetObjectItemCaseSensitive(item, "file"), param, e)) return -1;
    } else {
        return BAD(param, "unsupported content part type '%s' (text, image_url, video_url, file)", t);
    }
    r->n_parts++;
    return 0;
}

static int parse_messages(serve_request *r, const cJSON *msgs, const serve_media_policy *pol,
                          serve_error *e) {
    if (!msgs) return BAD("messages", "'messages' is required");
    if (!cJSON_IsArray(msgs)) return BAD("messages", "'messages' must be an array");
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return BAD("messages", "'messages' must not be empty");
    if (n > MAX_MESSAGES) return BAD("messages", "too many messages (at most %d)", MAX_MESSAGES);
    int total = 0;
    for (const cJSON *m = msgs->child; m; m = m->next) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        total += cJSON_IsArray(c) ? cJSON_GetArraySize(c) : 1;
    }
    if (total > MAX_PARTS) return BAD("messages", "too many content parts (at most %d)", MAX_PARTS);
    r->msgs = calloc((size_t)n, sizeof *r->msgs);
    r->parts = calloc((size_t)total + 1, sizeof *r->parts);
    if (!r->msgs || !r->parts) return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    int mi = 0, n_user = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, mi++) {
        char param[48];
        snprintf(param, sizeof param, "messages[%d]", mi);
        if (!cJSON_IsObject(m)) return BAD(param, "'%s' must be an object", param);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role)) return BAD(param, "'%s.role' must be a string", param);
        const char *rl = role->valuestring;
        if (!strcmp(rl, "developer")) rl = "system";
        if (strcmp(rl, "system") && strcmp(rl, "user") && strcmp(rl, "assistant"))
            return BAD(param, "'%s.role' must be system, user or assistant, got '%.40s'", param, rl);
        n_user += rl[0] == 'u';
        glmv_message *gm = &r->msgs[r->n_msgs];
        gm->role = rl[0] == 's' ? "system" : rl[0] == 'u' ? "user" : "assistant";
        gm->parts = &r->parts[r->n_parts];
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        int first = r->n_parts;
        if (cJSON_IsString(c) || (cJSON_IsNull(c) && rl[0] == 'a') || (!c && rl[0] == 'a')) {
            glmv_part *p = &r->parts[r->n_parts++];
            memset(p, 0, sizeof *p);
            p->kind = GLMV_PART_TEXT;
            const char *s = cJSON_IsString(c) ? c->valuestring : "";
            p->text = own_strdup(r, rl[0] == 'a' ? strip_think(r, s) : s);
            if (!p->text) return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        } else if (cJSON_IsArray(c)) {
            if (!c->child && rl[0] == 'u') /* a question of nothing would be answered anyway */
                return BAD(param, "'%s.content' must not be empty", param);
            int pi = 0;
            for (const cJSON *it = c->child; it; it = it->next, pi++) {
                if (parse_part(r, it, mi, pi, pol, e)) return -1;
                if (rl[0] != 'u' && r->parts[r->n_parts - 1].kind != GLMV_PART_TEXT)
                    return BAD(param, "images, videos and files are allowed in user messages only");
            }
        } else {
            return BAD(param, "'%s.content' must be a string or an array of parts", param);
        }
        gm->n_parts = r->n_parts - first;
        r->n_msgs++;
    }
    if (!n_user) return BAD("messages", "'messages' needs at least one user message");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The request                                                              */
/* ------------------------------------------------------------------------ */

/* Whether a JSON text (already validated) holds a \u0000 escape inside a
 * string: cJSON ends its C strings there, so the text after it would be
 * dropped without a word. Returns the byte offset of the escape, or -1. */
static long json_nul_escape(const char *s, size_t len) {
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_str) {
            in_str = s[i] == '"';
        } else if (s[i] == '"') {
            in_str = 0;
        } else if (s[i] == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && i + 5 < len && !strncmp(s + i + 2, "0000", 4)) return (long)i;
            i++; /* skip the escaped character */
        }
    }
    return -1;
}

static long json_nul_escape(const char *s, size_t len);

int serve_request_parse(serve_request *r, const char *body, size_t len, const serve_engine *eng,
                        const serve_media_policy *pol, int legacy, serve_error *e) {
    memset(r, 0, sizeof *r);
    if (legacy == SERVE_API_RESPONSES) { /* rewritten as a chat request, checked as one */
        char *chat = NULL;
        int shift = 0;
        if (strlen(body) != len)
            return serve_error_set(e, 400, "invalid_request_error", "invalid_json", NULL,
                                   "the body is not valid JSON (NUL byte at %zu)", strlen(body));
        long nul = json_nul_escape(body, len); /* the rewrite would lose what follows it */
        if (nul >= 0)
            return serve_error_set(e, 400, "invalid_request_error", "invalid_json", NULL,
                                   "a string holds a NUL character (\\u0000 at byte %ld), which glmv "
                                   "cannot pass on", nul);
        if (serve_responses_to_chat(body, len, &chat, &shift, e)) return -1;
        int rc = serve_request_parse(r, chat, strlen(chat), eng, pol, SERVE_API_CHAT, e);
        free(chat);
        if (rc && !strncmp(e->param, "max_completion_tokens", 21)) snprintf(e->param, sizeof e->param, "max_output_tokens");
        if (rc && !strncmp(e->param, "messages", 8)) { /* messages[k] was input[k - shift] */
            int k = -1, used = 0;
            char rest[64] = "";
            if (sscanf(e->param, "messages[%d]%n", &k, &used) == 1 && k - shift >= 0) {
                snprintf(rest, sizeof rest, "%s", e->param + used);
                snprintf(e->param, sizeof e->param, "input[%d]%.40s", k - shift, rest);
            } else if (k < 0) {
                snprintf(e->param, sizeof e->param, "input");
            } else {
                snprintf(e->param, sizeof e->param, "instructions");
            }
        }
        if (rc && !strncmp(e->param, "response_format", 15)) snprintf(e->param, sizeof e->param, "text.format");
        if (!rc) r->legacy = SERVE_API_RESPONSES;
        return rc;
    }
    const char *endp = NULL;
    if (strlen(body) != len) /* an embedded NUL byte */
        return serve_error_set(e, 400, "invalid_request_error", "invalid_json", NULL,
                               "the body is not valid JSON (NUL byte at %zu)", strlen(body));
    /* body[len] is NUL: parsing len + 1 bytes makes cJSON refuse trailing garbage */
    cJSON *root = cJSON_ParseWithLengthOpts(body, len + 1, &endp, 1);
    if (!root) {
        size_t at = endp && endp >= body ? (size_t)(endp - body) : 0;
        return serve_error_set(e, 400, "invalid_request_error", "invalid_json", NULL,
                               "the body is not valid JSON (error near byte %zu)", at);
    }
    int rc = -1;
    long nul = json_nul_escape(body, len);
    if (nul >= 0) {
        serve_error_set(e, 400, "invalid_request_error", "invalid_json", NULL,
                        "a string holds a NUL character (\\u0000 at byte %ld), which glmv cannot "
                        "pass on", nul);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        BAD(NULL, "the body must be a JSON object");
        goto done;
    }
    const cJSON *v;
    v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v)) { BAD("model", "'model' must be a string"); goto done; }
        if (v->valuestring[0] && !serve_model_accepted(eng, v->valuestring)) {
            serve_error_set(e, 404, "invalid_request_error", "model_not_found", "model",
                            "The model '%.100s' does not exist; this server serves '%s'",
                            v->valuestring, eng->served_names);
            goto done;
        }
        snprintf(r->model, sizeof r->model, "%s", v->valuestring);
    }
    r->legacy = legacy;
    if (legacy == SERVE_API_COMPLETIONS) { /* a prompt in the model's own format, no messages */
        v = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 && cJSON_IsString(v->child)) v = v->child;
        if (!cJSON_IsString(v)) {
            BAD("prompt", "'prompt' must be a string (or a list of one string; token id lists are "
                "not supported)");
            goto done;
        }
        if (!v->valuestring[0]) { BAD("prompt", "'prompt' must not be empty"); goto done; }
        r->prompt = own_strdup(r, v->valuestring);
        if (!r->prompt) { serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory"); goto done; }
        static const char *const chat_only[] = {"messages", "response_format", "echo", "suffix", NULL};
        for (int i = 0; chat_only[i]; i++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, chat_only[i]);
            if (x && !cJSON_IsNull(x) && !(cJSON_IsFalse(x) && !strcmp(chat_only[i], "echo"))) {
                BAD(chat_only[i], "'%s' is not supported on /v1/completions", chat_only[i]);
                goto done;
            }
        }
    } else if (parse_messages(r, cJSON_GetObjectItemCaseSensitive(root, "messages"), pol, e)) {
        goto done;
    }

    r->sp = eng->defaults;
    if (legacy) { /* OpenAI's default for this endpoint */
        r->sp.max_new_tokens = eng->n_ctx < 16 ? eng->n_ctx : 16;
        r->sp.max_new_is_default = 1;
    }
    r->sp.stop = NULL;
    r->sp.n_stop = 0;
    long l;
    double d;
    v = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v)) { BAD("stream", "'stream' must be a boolean"); goto done; }
        r->stream = cJSON_IsTrue(v);
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) { BAD("stream_options", "'stream_options' must be an object"); goto done; }
        const cJSON *iu = cJSON_GetObjectItemCaseSensitive(v, "include_usage");
        if (iu && !cJSON_IsBool(iu)) {
            BAD("stream_options.include_usage", "'stream_options.include_usage' must be a boolean");
            goto done;
        }
        r->include_usage = cJSON_IsTrue(iu);
    }
    const char *mt_names[2] = {"max_completion_tokens", "max_tokens"};
    for (int i = 0; i < 2; i++) {
        v = cJSON_GetObjectItemCaseSensitive(root, mt_names[i]);
        if (!v || cJSON_IsNull(v)) continue;
        if (get_int(v, mt_names[i], 1, INT_MAX, &l, e)) goto done;
        if (l > eng->n_ctx) {
            serve_error_set(e, 400, "invalid_request_error", "context_length_exceeded", mt_names[i],
                            "'%s' is %ld but the context holds %d tokens", mt_names[i], l, eng->n_ctx);
            goto done;
        }
        r->sp.max_new_tokens = (int)l;
        r->sp.max_new_is_default = 0;
        r->max_tokens_given = 1;
        break;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "max_thinking_tokens");
    if (v && !cJSON_IsNull(v)) {
        if (get_int(v, "max_thinking_tokens", 0, INT_MAX, &l, e)) goto done;
        r->sp.max_thinking_tokens = (int)l;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "temperature");
    if (v && !cJSON_IsNull(v)) {
        if (get_num(v, "temperature", 0, 2, 0, &d, e)) goto done;
        r->sp.do_sample = (float)d > 0; /* below float's range it is 0: greedy, as 0 is */
        r->sp.temperature = (float)d > 0 ? (float)d : 1.0f;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "top_p");
    if (v && !cJSON_IsNull(v)) {
        if (get_num(v, "top_p", 0, 1, 1, &d, e)) goto done;
        r->sp.top_p = (float)d;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "top_k");
    if (v && !cJSON_IsNull(v)) {
        if (get_int(v, "top_k", -1, INT_MAX, &l, e)) goto done;
        r->sp.top_k = l < 0 ? 0 : (int)l;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "repetition_penalty");
    if (v && !cJSON_IsNull(v)) {
        if (get_num(v, "repetition_penalty", 0, 10, 1, &d, e)) goto done;
        if (!((float)d > 0)) { /* 1e-300 passes as a double and is 0 as the float used */
            BAD("repetition_penalty", "'repetition_penalty' must be at least %g, got %g", (double)FLT_MIN, d);
            goto done;
        }
        r->sp.repetition_penalty = (float)d;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (v && !cJSON_IsNull(v)) {
        if (get_int(v, "seed", LONG_MIN, LONG_MAX, &l, e)) goto done;
        r->sp.seed = (uint64_t)l;
    }
    r->n_choices = 1;
    v = cJSON_GetObjectItemCaseSensitive(root, "n");
    if (v && !cJSON_IsNull(v)) {
        if (get_int(v, "n", 1, SERVE_MAX_CHOICES, &l, e)) goto done;
        r->n_choices = (int)l;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    if (v && !cJSON_IsNull(v) && legacy) { /* there: how many alternatives, 0 to 5 */
        if (get_int(v, "logprobs", 0, 5, &l, e)) goto done;
        r->sp.logprobs = 1;
        r->sp.top_logprobs = (int)l;
    } else if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v)) { BAD("logprobs", "'logprobs' must be a boolean"); goto done; }
        r->sp.logprobs = cJSON_IsTrue(v);
    }
    v = legacy ? NULL : cJSON_GetObjectItemCaseSensitive(root, "top_logprobs");
    if (v && !cJSON_IsNull(v)) {
        if (get_int(v, "top_logprobs", 0, GLMV_MAX_TOP_LOGPROBS, &l, e)) goto done;
        if (!r->sp.logprobs) {
            BAD("top_logprobs", "'top_logprobs' needs 'logprobs': true");
            goto done;
        }
        r->sp.top_logprobs = (int)l;
    }
    if (r->sp.logprobs && !eng->tok) {
        BAD("logprobs", "'logprobs' needs a model with a tokenizer");
        goto done;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "min_p");
    if (v && !cJSON_IsNull(v)) {
        if (get_num(v, "min_p", 0, 1, 0, &d, e)) goto done;
        r->sp.min_p = (float)d;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "min_tokens");
    if (v && !cJSON_IsNull(v)) {
        if (get_int(v, "min_tokens", 0, INT_MAX, &l, e)) goto done;
        r->sp.min_tokens = (int)l;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "ignore_eos");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v)) { BAD("ignore_eos", "'ignore_eos' must be a boolean"); goto done; }
        r->sp.ignore_eos = cJSON_IsTrue(v);
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "logit_bias");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) {
            BAD("logit_bias", "'logit_bias' must be an object of token id: bias");
            goto done;
        }
        int nb = cJSON_GetArraySize(v);
        if (nb > SERVE_MAX_BIAS) { BAD("logit_bias", "'logit_bias' has more than %d entries", SERVE_MAX_BIAS); goto done; }
        r->bias_ids = malloc(sizeof(int32_t) * (size_t)(nb + 1));
        r->bias_values = malloc(sizeof(float) * (size_t)(nb + 1));
        if (!r->bias_ids || !r->bias_values) {
            serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            goto done;
        }
        int k = 0;
        for (const cJSON *it = v->child; it; it = it->next, k++) {
            char *end;
            long id = strtol(it->string, &end, 10);
            if (!it->string[0] || *end || id < 0 || (eng->vocab > 0 && id >= eng->vocab)) {
                BAD("logit_bias", "'logit_bias' key '%.40s' is not a token id (0 to %d)", it->string,
                    eng->vocab - 1);
                goto done;
            }
            if (!cJSON_IsNumber(it) || !(it->valuedouble >= -100 && it->valuedouble <= 100)) {
                BAD("logit_bias", "'logit_bias' value for %ld must be a number in [-100, 100]", id);
                goto done;
            }
            r->bias_ids[k] = (int32_t)id;
            r->bias_values[k] = (float)it->valuedouble;
        }
        r->sp.bias_ids = r->bias_ids;
        r->sp.bias_values = r->bias_values;
        r->sp.n_bias = k;
    }
    /* what glmv cannot do is refused by name rather than ignored */
    v = cJSON_GetObjectItemCaseSensitive(root, "skip_special_tokens");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v)) { BAD("skip_special_tokens", "'skip_special_tokens' must be a boolean"); goto done; }
        /* false: the answer with its <think>/<answer> tags in 'content', as vLLM returns it
         * (the official GLM-V agent clients parse those tags themselves) */
        r->sp.keep_tags = cJSON_IsFalse(v);
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "chat_template_kwargs");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) { BAD("chat_template_kwargs", "'chat_template_kwargs' must be an object"); goto done; }
        if (v->child) {
            BAD("chat_template_kwargs", "'chat_template_kwargs' key '%.40s' is not supported: "
                "GLM-4.1V's chat template takes no arguments", v->child->string);
            goto done;
        }
    }
    static const char *const refused[] = {
        "reasoning_effort", "use max_thinking_tokens (a thinking budget in tokens)",
        "best_of", NULL, "use_beam_search", NULL, "prompt_logprobs", NULL, "guided_json", NULL,
        "guided_regex", NULL, "guided_choice", NULL, "guided_grammar", NULL, "grammar", NULL,
        "json_schema", NULL, "typical_p", NULL, "mirostat", NULL, "audio", NULL,
        "prediction", NULL, "web_search_options", NULL, NULL};
    for (int i = 0; refused[i]; i += 2) {
        v = cJSON_GetObjectItemCaseSensitive(root, refused[i]);
        if (v && !cJSON_IsNull(v)) {
            BAD(refused[i], "'%s' is not supported%s%s", refused[i], refused[i + 1] ? ": " : "",
                refused[i + 1] ? refused[i + 1] : "");
            goto done;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "tools");
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) {
        BAD("tools", "'tools' (function calling) is not supported: GLM-4.1V-Thinking's chat "
            "template has no tool format");
        goto done;
    }
    /* the older spelling of tools: refused alike rather than ignored */
    v = cJSON_GetObjectItemCaseSensitive(root, "functions");
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) {
        BAD("functions", "'functions' (function calling) is not supported");
        goto done;
    }
    /* structured output: the answer constrained to JSON (of a schema) */
    v = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (v && !cJSON_IsNull(v)) {
        const cJSON *ty = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "type") : NULL;
        if (!cJSON_IsString(ty)) {
            BAD("response_format", "'response_format' must be an object with a string 'type'");
            goto done;
        }
        if (!strcmp(ty->valuestring, "json_object")) {
            r->sp.json = 1;
        } else if (!strcmp(ty->valuestring, "json_schema")) {
            const cJSON *js = cJSON_GetObjectItemCaseSensitive(v, "json_schema");
            const cJSON *sc = cJSON_IsObject(js) ? cJSON_GetObjectItemCaseSensitive(js, "schema") : NULL;
            if (!cJSON_IsObject(sc)) {
                BAD("response_format", "'response_format.json_schema.schema' must be an object");
                goto done;
            }
            char *text = own(r, cJSON_PrintUnformatted(sc));
            if (!text) { serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory"); goto done; }
            char serr[GLMV_ERR_SIZE];
            if (glmv_json_schema_check(text, serr)) {
                BAD("response_format", "'response_format.json_schema': %s", serr);
                goto done;
            }
            r->sp.json = 1;
            r->sp.json_schema = text;
        } else if (strcmp(ty->valuestring, "text")) {
            BAD("response_format", "'response_format' type '%.40s' is not supported (text, "
                "json_object, json_schema)", ty->valuestring);
            goto done;
        }
        if (r->sp.json && !eng->tok) {
            BAD("response_format", "JSON output needs a model with a tokenizer");
            goto done;
        }
    }
    const char *pen[2] = {"presence_penalty", "frequency_penalty"};
    for (int i = 0; i < 2; i++) {
        v = cJSON_GetObjectItemCaseSensitive(root, pen[i]);
        if (v && !cJSON_IsNull(v)) {
            if (get_num(v, pen[i], -2, 2, 0, &d, e)) goto done;
            *(i ? &r->sp.frequency_penalty : &r->sp.presence_penalty) = (float)d;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (v && !cJSON_IsNull(v)) {
        int n = cJSON_IsString(v) ? 1 : cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
        if (n < 0) { BAD("stop", "'stop' must be a string or an array of strings"); goto done; }
        if (n > MAX_STOP) { BAD("stop", "'stop' has more than %d strings", MAX_STOP); goto done; }
        r->stop = calloc((size_t)n + 1, sizeof *r->stop);
        if (!r->stop) { serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory"); goto done; }
        const cJSON *it = cJSON_IsString(v) ? v : v->child;
        for (int i = 0; i < n; i++, it = it->next) {
            if (!cJSON_IsString(it)) { BAD("stop", "'stop' must hold strings"); goto done; }
            size_t sl = strlen(it->valuestring);
            if (sl == 0 || sl > MAX_STOP_LEN) {
                BAD("stop", "each 'stop' string must have 1 to %d bytes", MAX_STOP_LEN);
                goto done;
            }
            r->stop[r->n_stop] = own_strdup(r, it->valuestring);
            if (!r->stop[r->n_stop]) { serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory"); goto done; }
            r->n_stop++;
        }
        r->sp.stop = (const char *const *)r->stop;
        r->sp.n_stop = r->n_stop;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc) serve_request_free(r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                */
/* ------------------------------------------------------------------------ */

char *serve_error_json(const serve_error *e) {
    cJSON *root = cJSON_CreateObject();
    cJSON *o = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(o, "message", e->message);
    cJSON_AddStringToObject(o, "type", e->type ? e->type : "invalid_request_error");
    if (e->param[0]) cJSON_AddStringToObject(o, "param", e->param);
    else cJSON_AddNullToObject(o, "param");
    if (e->code) cJSON_AddStringToObject(o, "code", e->code);
    else cJSON_AddNullToObject(o, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

int serve_model_accepted(const serve_engine *eng, const char *name) {
    if (!eng->served_names) return 1;
    size_t n = strlen(name);
    for (const char *p = eng->served_names; *p;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == n && !strncmp(p, name, n)) return 1;
        p = c ? c + 1 : p + l;
    }
    return 0;
}

static void add_usage(cJSON *root, const glmv_result *r, int n) {
    int prompt = n > 0 ? r[0].prompt_tokens : 0, completion = 0, reasoning = 0, cached = 0;
    for (int i = 0; i < n; i++) {
        completion += r[i].completion_tokens;
        reasoning += r[i].reasoning_tokens;
        cached += i == 0 ? r[i].cached_tokens : 0;
    }
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", completion);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + completion);
    /* OpenAI's field: prompt tokens served from the cache (an earlier turn) */
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    if (d) cJSON_AddNumberToObject(d, "cached_tokens", cached);
    cJSON *cd = cJSON_AddObjectToObject(u, "completion_tokens_details");
    if (cd) cJSON_AddNumberToObject(cd, "reasoning_tokens", reasoning);
}

/* A token's text for JSON: its bytes, with what is not UTF-8 (a character cut
 * between tokens) as U+FFFD; the exact bytes go in "bytes". */
static cJSON *token_entry(const glmv_tokenizer *tok, int32_t id, float logprob) {
    size_t n = 0;
    const char *b = tok ? glmv_token_bytes(tok, id, &n) : NULL;
    cJSON *o = cJSON_CreateObject();
    char *t = malloc(3 * n + 1);
    size_t k = 0;
    for (size_t i = 0; t && i < n;) {
        unsigned char c = (unsigned char)b[i];
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && i + (size_t)len <= n;
        for (int j = 1; ok && j < len; j++) ok = ((unsigned char)b[i + j] & 0xC0) == 0x80;
        if (ok) {
            memcpy(t + k, b + i, (size_t)len);
            k += (size_t)len;
            i += (size_t)len;
        } else {
            memcpy(t + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
        }
    }
    if (t) t[k] = 0;
    cJSON_AddStringToObject(o, "token", t ? t : "");
    free(t);
    cJSON_AddNumberToObject(o, "logprob", logprob);
    cJSON *bytes = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)b[i]));
    return o;
}

/* OpenAI's choice.logprobs: {"content": [{token, logprob, bytes, top_logprobs}], "refusal": null} */
static void add_logprobs(cJSON *choice, const glmv_logprob *lp, int n, const glmv_tokenizer *tok) {
    if (!lp) {
        cJSON_AddNullToObject(choice, "logprobs");
        return;
    }
    cJSON *o = cJSON_AddObjectToObject(choice, "logprobs");
    cJSON *content = cJSON_AddArrayToObject(o, "content");
    for (int i = 0; i < n; i++) {
        cJSON *e = token_entry(tok, lp[i].token, lp[i].logprob);
        cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int j = 0; j < lp[i].n_top; j++)
            cJSON_AddItemToArray(top, token_entry(tok, lp[i].top_ids[j], lp[i].top_logprobs[j]));
        cJSON_AddItemToArray(content, e);
    }
    cJSON_AddNullToObject(o, "refusal");
}

static cJSON *head(const char *id, long created, const char *model, const char *object) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)created);
    cJSON_AddStringToObject(root, "model", model);
    cJSON_AddStringToObject(root, "system_fingerprint", "glmv");
    return root;
}

char *serve_completion_json(const char *id, long created, const char *model, const glmv_result *r,
                            int n, const glmv_tokenizer *tok) {
    cJSON *root = head(id, created, model, "chat.completion");
    cJSON *ch = cJSON_AddArrayToObject(root, "choices");
    for (int i = 0; i < n; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(ch, c);
        cJSON_AddNumberToObject(c, "index", i);
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", r[i].content ? r[i].content : "");
        /* the reasoning under both names clients read: reasoning_content (DeepSeek,
         * llama.cpp, vLLM before 0.10) and reasoning (vLLM now) */
        const char *names[2] = {"reasoning_content", "reasoning"};
        for (int k = 0; k < 2; k++) {
            if (r[i].reasoning && r[i].reasoning[0]) cJSON_AddStringToObject(m, names[k], r[i].reasoning);
            else cJSON_AddNullToObject(m, names[k]);
        }
        add_logprobs(c, r[i].logprobs, r[i].n_tokens, tok);
        cJSON_AddStringToObject(c, "finish_reason", r[i].finish_reason ? r[i].finish_reason : "stop");
    }
    add_usage(root, r, n);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static char *sse_wrap(char *json) {
    if (!json) return NULL;
    size_t n = strlen(json);
    char *s = malloc(n + 9);
    if (s) {
        memcpy(s, "data: ", 6);
        memcpy(s + 6, json, n);
        memcpy(s + 6 + n, "\n\n", 3);
    }
    free(json);
    return s;
}

char *serve_chunk_sse(const char *id, long created, const char *model, int index, int kind,
                      const char *text, size_t len, const char *finish, const glmv_result *usage,
                      const glmv_logprob *lp, const glmv_tokenizer *tok) {
    cJSON *root = head(id, created, model, "chat.completion.chunk");
    cJSON *ch = cJSON_AddArrayToObject(root, "choices");
    if (usage) {
        add_usage(root, usage, index);
    } else {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(ch, c);
        cJSON_AddNumberToObject(c, "index", index);
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (kind < 0 && !finish) {
            cJSON_AddStringToObject(d, "role", "assistant");
            cJSON_AddStringToObject(d, "content", "");
        } else if (kind >= 0) {
            char *t = malloc(len + 1);
            if (!t) { cJSON_Delete(root); return NULL; }
            memcpy(t, text, len);
            t[len] = 0;
            if (kind == GLMV_TEXT_REASONING) {
                cJSON_AddStringToObject(d, "reasoning_content", t);
                cJSON_AddStringToObject(d, "reasoning", t);
            } else {
                cJSON_AddStringToObject(d, "content", t);
            }
            free(t);
        }
        add_logprobs(c, lp, lp ? 1 : 0, tok);
        if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
        else cJSON_AddNullToObject(c, "finish_reason");
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return sse_wrap(s);
}

/* the legacy logprobs: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset} */
static void add_text_logprobs(cJSON *choice, const glmv_logprob *lp, int n, const glmv_tokenizer *tok) {
    if (!lp) {
        cJSON_AddNullToObject(choice, "logprobs");
        return;
    }
    cJSON *o = cJSON_AddObjectToObject(choice, "logprobs");
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens"), *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs"), *offs = cJSON_AddArrayToObject(o, "text_offset");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = token_entry(tok, lp[i].token, lp[i].logprob);
        const char *t = cJSON_GetObjectItemCaseSensitive(e, "token")->valuestring;
        cJSON_AddItemToArray(toks, cJSON_CreateString(t));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(lp[i].logprob));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        off += strlen(t);
        cJSON *top = cJSON_CreateObject();
        for (int j = 0; j < lp[i].n_top; j++) {
            cJSON *te = token_entry(tok, lp[i].top_ids[j], lp[i].top_logprobs[j]);
            const char *tt = cJSON_GetObjectItemCaseSensitive(te, "token")->valuestring;
            if (!cJSON_GetObjectItemCaseSensitive(top, tt))
                cJSON_AddNumberToObject(top, tt, lp[i].top_logprobs[j]);
            cJSON_Delete(te);
        }
        cJSON_AddItemToArray(tops, top);
        cJSON_Delete(e);
    }
}

char *serve_text_completion_json(const char *id, long created, const char *model,
                                 const glmv_result *r, int n, const glmv_tokenizer *tok) {
    cJSON *root = head(id, created, model, "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(root, "choices");
    for (int i = 0; i < n; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(ch, c);
        cJSON_AddStringToObject(c, "text", r[i].content ? r[i].content : "");
        cJSON_AddNumberToObject(c, "index", i);
        add_text_logprobs(c, r[i].logprobs, r[i].n_tokens, tok);
        cJSON_AddStringToObject(c, "finish_reason", r[i].finish_reason ? r[i].finish_reason : "stop");
    }
    add_usage(root, r, n);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

char *serve_text_chunk_sse(const char *id, long created, const char *model, int index,
                           const char *text, size_t len, const char *finish,
                           const glmv_result *usage, const glmv_logprob *lp,
                           const glmv_tokenizer *tok) {
    cJSON *root = head(id, created, model, "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(root, "choices");
    if (usage) {
        add_usage(root, usage, index);
    } else {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(ch, c);
        char *t = malloc(len + 1);
        if (!t) { cJSON_Delete(root); return NULL; }
        if (len) memcpy(t, text, len);
        t[len] = 0;
        cJSON_AddStringToObject(c, "text", t);
        free(t);
        cJSON_AddNumberToObject(c, "index", index);
        add_text_logprobs(c, lp, lp ? 1 : 0, tok);
        if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
        else cJSON_AddNullToObject(c, "finish_reason");
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return sse_wrap(s);
}

char *serve_models_json(const serve_engine *eng, long created) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *a = cJSON_AddArrayToObject(root, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddItemToArray(a, m);
    cJSON_AddStringToObject(m, "id", eng->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)created);
    cJSON_AddStringToObject(m, "owned_by", "glmv");
    cJSON_AddNumberToObject(m, "context_length", eng->n_ctx);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}
