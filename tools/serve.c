/* serve.c -- `glmv serve`: an OpenAI-compatible HTTP server and a chat page.
 *
 * libmicrohttpd parses requests on a small pool of threads; a chat request
 * becomes a job on a bounded queue consumed by one inference thread
 * (serve_sched.c). While a job waits or generates, its connection is
 * suspended and resumed by the inference thread when bytes are ready, so a
 * few HTTP threads serve any number of streams. Routes:
 *   POST /v1/chat/completions   GET /v1/models[/ID]   GET /health   GET /metrics
 *   GET / and /<file>           the page from web/, embedded at build time
 * Binds to 127.0.0.1 unless --host says otherwise; --api-key guards /v1/ and /metrics.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <stdatomic.h>
#include <unistd.h>

#include "cli.h"
#include "serve.h"

typedef struct {
    const char *host;
    int port;
    const char *api_key;
    int queue;
    size_t max_body;
    int verbose;
    serve_media_policy media;
    serve_engine *eng;
    serve_sched sched;
    serve_guard *guard;
    long started;
    atomic_int draining;        /* SIGTERM: finishing what is in flight, taking nothing new */
    atomic_int fetching;        /* requests whose media are downloading (drained too) */
    atomic_int active;          /* chat requests from chat_start to on_completed */
} server;

typedef enum { PH_BODY = 0, PH_FETCH, PH_WAIT, PH_DONE } phase;

typedef struct {
    phase ph;
    char *body;
    size_t len, cap;
    size_t received;            /* body bytes seen, kept or dropped */
    int too_big;
    serve_job *job;
    double t0;
    int status;
    char method[8];
    char url[96];
} conn_ctx;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                */
/* ------------------------------------------------------------------------ */

static enum MHD_Result reply(server *sv, struct MHD_Connection *conn, conn_ctx *c, int status,
                             const char *mime, void *body, size_t len, enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, mime);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    if (status == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    /* draining: no keep-alive, so a proxy does not send the next request here */
    if (atomic_load(&sv->draining)) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    if (status == 405 && c) /* what the path does take */
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
                                !strcmp(c->url, "/v1/chat/completions") || !strcmp(c->url, "/v1/completions") ||
                                        !strcmp(c->url, "/v1/responses")
                                    ? "POST, OPTIONS"
                                    : "GET, HEAD, OPTIONS");
    if (c) c->status = status;
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    serve_sched_count_status(&sv->sched, status);
    return ok;
}

static enum MHD_Result reply_json(server *sv, struct MHD_Connection *conn, conn_ctx *c, int status,
                                  char *json) {
    if (!json) return MHD_NO;
    return reply(sv, conn, c, status, "application/json", json, strlen(json), MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result reply_error(server *sv, struct MHD_Connection *conn, conn_ctx *c,
                                   const serve_error *e) {
    return reply_json(sv, conn, c, e->status, serve_error_json(e));
}

static enum MHD_Result fail(server *sv, struct MHD_Connection *conn, conn_ctx *c, int status,
                            const char *type, const char *code, const char *msg) {
    serve_error e;
    serve_error_set(&e, status, type, code, NULL, "%s", msg);
    return reply_error(sv, conn, c, &e);
}

/* ------------------------------------------------------------------------ */
/* Streaming                                                                */
/* ------------------------------------------------------------------------ */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    serve_job *j = cls;
    (void)pos;
    pthread_mutex_lock(&j->mu);
    ssize_t rc;
    if (j->out_off < j->out_len) {
        size_t n = j->out_len - j->out_off;
        if (n > max) n = max;
        memcpy(buf, j->out + j->out_off, n);
        j->out_off += n;
        rc = (ssize_t)n;
    } else if (j->out_done) {
        rc = MHD_CONTENT_READER_END_OF_STREAM;
    } else if (!j->conn) {
        rc = MHD_CONTENT_READER_END_WITH_ERROR; /* the client left */
    } else { /* more to come: a cancelled job (shutdown) still ends with its error event */
        j->suspended = 1;
        MHD_suspend_connection(j->conn);
        rc = 0;
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static void stream_free(void *cls) { serve_job_unref(cls); }

/* libmicrohttpd's own messages, with the command's prefix. A stream that
 * stream_reader ends because its client left (or it was cancelled) makes the
 * library log "application error generating response": that is the intended
 * close, counted in /metrics, not an error worth a line per client. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (strstr(msg, "application error generating response")) return;
    /* a client that hangs up mid-request is its own business (a flood of them would flood the log) */
    if (strstr(msg, "closed by remote side with incomplete request")) return;
    /* ... and so is one the request deadline shut (counted in /metrics) */
    if (strstr(msg, "detected connection closure")) return;
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    fprintf(stderr, "glmv serve: http: %s\n", msg);
}

/* The job has output, an error or a result (or the client left): answer. */
static enum MHD_Result chat_wait(server *sv, struct MHD_Connection *conn, conn_ctx *c) {
    serve_job *j = c->job;
    pthread_mutex_lock(&j->mu);
    if (j->client_gone && !j->out_done) {
        pthread_mutex_unlock(&j->mu);
        return MHD_NO; /* the client is gone: close */
    }
    if (j->failed) {
        serve_error e = j->err;
        pthread_mutex_unlock(&j->mu);
        c->ph = PH_DONE;
        return reply_error(sv, conn, c, &e);
    }
    if (j->req.stream && j->started_output) {
        j->refs++;
        pthread_mutex_unlock(&j->mu);
        c->ph = PH_DONE;
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, j, stream_free);
        if (!r) {
            serve_job_unref(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, "*");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
        c->status = 200;
        enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        serve_sched_count_status(&sv->sched, 200);
        return ok;
    }
    if (!j->req.stream && j->state == JOB_DONE && j->have_result) {
        char *body = j->req.legacy == SERVE_API_COMPLETIONS
                         ? serve_text_completion_json(j->id, j->created, j->model, j->results,
                                                      j->n_results, sv->eng->tok)
                     : j->req.legacy == SERVE_API_RESPONSES
                         ? serve_response_json(j->id, j->created, j->model, &j->results[0])
                         : serve_completion_json(j->id, j->created, j->model, j->results,
                                                 j->n_results, sv->eng->tok);
        pthread_mutex_unlock(&j->mu);
        c->ph = PH_DONE;
        return reply_json(sv, conn, c, 200, body);
    }
    if (j->out_done) { /* nothing to answer will ever come */
        pthread_mutex_unlock(&j->mu);
        return MHD_NO;
    }
    j->suspended = 1;
    MHD_suspend_connection(conn);
    pthread_mutex_unlock(&j->mu);
    return MHD_YES;
}

static void make_id(char *out, size_t n) {
    static atomic_uint counter;
    unsigned k = atomic_fetch_add(&counter, 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec * 2654435761ull ^
                 ((uint64_t)k << 40) ^ (uint64_t)getpid();
    snprintf(out, n, "chatcmpl-%016llx%04x", (unsigned long long)x, k & 0xffff);
}

static enum MHD_Result chat_submit(server *sv, struct MHD_Connection *conn, conn_ctx *c);

/* The engine's prompt stage (media decoded and preprocessed, text tokenized) for j, before
 * it queues: its failures are answered at once, and the inference slots never wait on a
 * decoder. 0, or -1 with *e set. */
static int prepare_job(server *sv, serve_job *j, serve_error *e) {
    char err[GLMV_ERR_SIZE] = "";
    void *p = NULL;
    int code = sv->eng->prepare(sv->eng, j->req.msgs, j->req.n_msgs, j->req.prompt, &p, err);
    if (code) {
        serve_error_from_code(e, code, err[0] ? err : "cannot prepare the prompt");
        return -1;
    }
    j->req.prepared = p;
    j->req.prepared_free = sv->eng->prepared_free;
    return 0;
}

/* Remote media are downloaded here, off the HTTP threads: a URL that never answers holds
 * this thread and its own connection, nothing else. Media (downloaded or sent) are decoded
 * here too (prepare_job), not on the HTTP thread, whose other connections would wait. */
typedef struct {
    server *sv;
    serve_job *j;
} fetch_arg;

static void *fetch_main(void *arg) {
    fetch_arg *fa = arg;
    serve_job *j = fa->j;
    serve_error e;
    memset(&e, 0, sizeof e);
    server *sv = fa->sv;
    int rc = j->req.n_remote > 0 ? serve_request_fetch(&j->req, &fa->sv->media, &e) : 0;
    if (rc == 0 && sv->eng->prepare) rc = prepare_job(sv, j, &e);
    pthread_mutex_lock(&j->mu);
    j->fetch_rc = rc;
    j->fetch_err = e;
    j->fetch_done = 1;
    serve_job_wake_locked(j); /* resumes the connection if the client is still there */
    pthread_mutex_unlock(&j->mu);
    serve_job_unref(j);
    free(fa);
    atomic_fetch_sub(&sv->fetching, 1); /* last: cmd_serve waits for 0 before MHD_stop_daemon */
    return NULL;
}

/* back from the download: answer its error or queue the request */
static enum MHD_Result chat_fetched(server *sv, struct MHD_Connection *conn, conn_ctx *c) {
    serve_job *j = c->job;
    pthread_mutex_lock(&j->mu);
    if (!j->fetch_done) { /* woken early: wait again */
        j->suspended = 1;
        MHD_suspend_connection(conn);
        pthread_mutex_unlock(&j->mu);
        return MHD_YES;
    }
    int rc = j->fetch_rc;
    serve_error e = j->fetch_err;
    pthread_mutex_unlock(&j->mu);
    if (rc) {
        c->ph = PH_DONE;
        return reply_error(sv, conn, c, &e);
    }
    return chat_submit(sv, conn, c);
}

static enum MHD_Result chat_start(server *sv, struct MHD_Connection *conn, conn_ctx *c) {
    serve_error e;
    if (atomic_load(&sv->draining))
        return fail(sv, conn, c, 503, "server_error", "server_shutdown",
                    "the server is shutting down: retry on another replica");
    serve_job *j = serve_job_new();
    if (!j) return fail(sv, conn, c, 500, "server_error", NULL, "out of memory");
    int legacy = !strcmp(c->url, "/v1/completions")  ? SERVE_API_COMPLETIONS
                 : !strcmp(c->url, "/v1/responses") ? SERVE_API_RESPONSES
                                                    : SERVE_API_CHAT;
    if (serve_request_parse(&j->req, c->body ? c->body : "", c->len, sv->eng, &sv->media, legacy, &e)) {
        serve_job_unref(j);
        return reply_error(sv, conn, c, &e);
    }
    make_id(j->id, sizeof j->id);
    /* chatcmpl-..., cmpl-..., resp_... as OpenAI spells them */
    if (legacy) {
        const char *pre = legacy == SERVE_API_COMPLETIONS ? "cmpl-" : "resp_";
        memmove(j->id + 5, j->id + 9, strlen(j->id + 9) + 1);
        memcpy(j->id, pre, 5);
    }
    j->created = (long)time(NULL);
    j->model = j->req.model[0] ? j->req.model : sv->eng->model_id;
    j->conn = conn;
    c->job = j; /* the connection's reference */
    atomic_fetch_add(&sv->active, 1);
    /* a request with media: downloaded and decoded on a thread of its own, the connection
     * suspended (past 32 such threads the inference slot decodes them instead) */
    int media = j->req.n_images + j->req.n_videos + j->req.n_pdfs > 0;
    if (j->req.n_remote > 0 || (sv->eng->prepare && media && atomic_load(&sv->fetching) < 32)) {
        fetch_arg *fa = malloc(sizeof *fa);
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&j->mu);
        j->refs++; /* the download thread's */
        c->ph = PH_FETCH;
        j->suspended = 1;
        MHD_suspend_connection(conn);
        atomic_fetch_add(&sv->fetching, 1);
        int started = fa && (fa->sv = sv, fa->j = j, pthread_create(&th, &at, fetch_main, fa) == 0);
        if (!started) {
            atomic_fetch_sub(&sv->fetching, 1);
            j->refs--;
            j->suspended = 0;
            MHD_resume_connection(conn);
        }
        pthread_mutex_unlock(&j->mu);
        pthread_attr_destroy(&at);
        if (!started) {
            free(fa);
            c->ph = PH_DONE;
            return fail(sv, conn, c, 500, "server_error", NULL, "cannot start a preparation thread");
        }
        return MHD_YES;
    }
    if (sv->eng->prepare && !media && prepare_job(sv, j, &e)) { /* text: tokenized right here */
        c->ph = PH_DONE;
        return reply_error(sv, conn, c, &e);
    }
    return chat_submit(sv, conn, c);
}

/* the request is whole (its media downloaded): queue it */
static enum MHD_Result chat_submit(server *sv, struct MHD_Connection *conn, conn_ctx *c) {
    serve_job *j = c->job;
    if (serve_sched_submit(&sv->sched, j)) {
        j->conn = NULL;
        return fail(sv, conn, c, 503, "server_error", "queue_full",
                    "the server is busy (request queue full): retry later");
    }
    c->ph = PH_WAIT;
    return chat_wait(sv, conn, c);
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                  */
/* ------------------------------------------------------------------------ */

static int authorized(server *sv, struct MHD_Connection *conn) {
    if (!sv->api_key) return 1;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    h += 7;
    size_t a = strlen(h), b = strlen(sv->api_key);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a && i < b; i++) diff |= (unsigned char)(h[i] ^ sv->api_key[i]);
    return diff == 0;
}

static const serve_asset *find_asset(const char *url) {
    if (!strcmp(url, "/")) url = "/index.html";
    for (const serve_asset *a = serve_assets; a->path; a++)
        if (!strcmp(a->path, url)) return a;
    return NULL;
}

static enum MHD_Result route_get(server *sv, struct MHD_Connection *conn, conn_ctx *c,
                                 const char *url) {
    /* /health/live: the process answers. /health (and /health/ready): it takes requests:
     * 503 while draining on SIGTERM or with the queue full, for load balancers */
    if (!strcmp(url, "/health/live")) {
        char *b = strdup("{\"status\":\"ok\"}");
        return b ? reply_json(sv, conn, c, 200, b) : MHD_NO;
    }
    if (!strcmp(url, "/health") || !strcmp(url, "/health/ready")) {
        pthread_mutex_lock(&sv->sched.mu);
        int q = sv->sched.qlen, f = sv->sched.in_flight, full = sv->sched.qlen >= sv->sched.qcap;
        pthread_mutex_unlock(&sv->sched.mu);
        int drain = atomic_load(&sv->draining);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", drain ? "draining" : full ? "busy" : "ok");
        cJSON_AddStringToObject(o, "model", sv->eng->model_id);
        cJSON_AddNumberToObject(o, "queue_depth", q);
        cJSON_AddNumberToObject(o, "in_flight", f);
        char *b = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        return reply_json(sv, conn, c, drain || full ? 503 : 200, b);
    }
    if (!strncmp(url, "/v1/", 4) || !strcmp(url, "/metrics")) {
        if (!authorized(sv, conn))
            return fail(sv, conn, c, 401, "invalid_request_error", "invalid_api_key",
                        "missing or wrong API key (send 'Authorization: Bearer KEY')");
        if (!strcmp(url, "/metrics")) {
            char *m = serve_metrics_text(&sv->sched), *t = NULL;
            if (m && asprintf(&t,
                              "%s# HELP glmv_http_connections Connections open now.\n"
                              "# TYPE glmv_http_connections gauge\nglmv_http_connections %d\n"
                              "# HELP glmv_http_read_timeouts_total Connections closed because a "
                              "request did not arrive within its deadline.\n"
                              "# TYPE glmv_http_read_timeouts_total counter\n"
                              "glmv_http_read_timeouts_total %llu\n",
                              m, serve_guard_open(sv->guard), serve_guard_timed_out(sv->guard)) < 0)
                t = NULL;
            free(m);
            if (!t) return MHD_NO;
            return reply(sv, conn, c, 200, "text/plain; version=0.0.4", t, strlen(t),
                         MHD_RESPMEM_MUST_FREE);
        }
        if (!strcmp(url, "/v1/models")) return reply_json(sv, conn, c, 200, serve_models_json(sv->eng, sv->started));
        if (!strncmp(url, "/v1/models/", 11)) {
            if (!url[11] || !serve_model_accepted(sv->eng, url + 11))
                return fail(sv, conn, c, 404, "invalid_request_error", "model_not_found",
                            "no such model");
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", url + 11);
            cJSON_AddStringToObject(o, "object", "model");
            cJSON_AddNumberToObject(o, "created", (double)sv->started);
            cJSON_AddStringToObject(o, "owned_by", "glmv");
            char *b = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            return reply_json(sv, conn, c, 200, b);
        }
        if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/completions") ||
            !strcmp(url, "/v1/responses"))
            return fail(sv, conn, c, 405, "invalid_request_error", "method_not_allowed",
                        "use POST for this endpoint");
        return fail(sv, conn, c, 404, "invalid_request_error", "not_found", "no such endpoint");
    }
    const serve_asset *a = find_asset(url);
    if (!a) return fail(sv, conn, c, 404, "invalid_request_error", "not_found", "no such page");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->mime);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: "
                            "blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'");
    c->status = 200;
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    serve_sched_count_status(&sv->sched, 200);
    return ok;
}

static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                            const char *value) {
    (void)kind, (void)value;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) ++*(int *)cls;
    return MHD_YES;
}

/* Access-Control-Allow-Headers: what the preflight asked for (header names
 * only: letters, digits, '-', '_', separated by commas and spaces), always
 * with Authorization and Content-Type. */
static void cors_headers(const char *want, char *out, size_t n) {
    size_t k = (size_t)snprintf(out, n, "Authorization, Content-Type");
    if (!want) return;
    const char *p = want;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        const char *q = p;
        while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
               *q == '-' || *q == '_')
            q++;
        size_t l = (size_t)(q - p);
        if (l == 0 || (*q && *q != ',' && *q != ' ' && *q != '\t')) return; /* not a name list */
        if (k + l + 3 < n) k += (size_t)snprintf(out + k, n - k, ", %.*s", (int)l, p);
        p = q;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    server *sv = cls;
    conn_ctx *c = *con_cls;
    (void)version;
    if (!c) { /* headers are in: decide what to do with the body */
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        *con_cls = c;
        c->t0 = now_ms();
        serve_guard_headers(sv->guard, conn);
        snprintf(c->method, sizeof c->method, "%s", method);
        snprintf(c->url, sizeof c->url, "%s", url);
        /* A body a little too large is read and dropped so that the client,
         * still sending, gets the 413 rather than a reset; a huge one is
         * answered at once and the connection closed. */
        /* two Content-Length headers that disagree: which body is meant is ambiguous
         * (request smuggling behind a proxy that reads the other one) */
        int n_cl = 0;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, count_content_length, &n_cl);
        if (n_cl > 1) {
            c->ph = PH_DONE;
            return fail(sv, conn, c, 400, "invalid_request_error", "bad_request",
                        "more than one Content-Length header");
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
        if (clen > sv->max_body) c->too_big = 1;
        if (clen > 4 * (unsigned long long)sv->max_body) {
            c->ph = PH_DONE;
            return fail(sv, conn, c, 413, "invalid_request_error", "body_too_large",
                        "the request body is larger than --max-body-mb");
        }
        if (!strcmp(method, "POST") && !strncmp(url, "/v1/", 4) && !authorized(sv, conn)) {
            c->ph = PH_DONE;
            return fail(sv, conn, c, 401, "invalid_request_error", "invalid_api_key",
                        "missing or wrong API key (send 'Authorization: Bearer KEY')");
        }
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body */
        c->received += *upload_size;
        serve_guard_body(sv->guard, conn, c->received);
        if (c->too_big && c->ph == PH_BODY && c->received > 4 * sv->max_body) {
            /* a chunked body far past the limit is not read to its end: the connection is
             * closed (a 413 queued now would be lost in the reset of the unread upload) */
            c->ph = PH_DONE;
            return MHD_NO;
        }
        if (c->ph == PH_BODY && !c->too_big) {
            size_t n = *upload_size;
            if (c->len + n > sv->max_body) {
                c->too_big = 1;
                free(c->body);
                c->body = NULL;
                c->len = c->cap = 0;
            } else {
                if (c->len + n + 1 > c->cap) {
                    size_t cap = (c->len + n + 1) * 2;
                    if (cap > sv->max_body + 1) cap = sv->max_body + 1;
                    char *b = realloc(c->body, cap);
                    if (!b) return MHD_NO;
                    c->body = b;
                    c->cap = cap;
                }
                memcpy(c->body + c->len, upload, n);
                c->len += n;
                c->body[c->len] = 0;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    serve_guard_busy(sv->guard, conn); /* the request is whole: no read deadline while it runs */
    if (c->ph == PH_FETCH) return chat_fetched(sv, conn, c);
    if (c->ph == PH_WAIT) return chat_wait(sv, conn, c);
    if (c->ph == PH_DONE) return MHD_NO;
    c->ph = PH_DONE;
    if (c->too_big)
        return fail(sv, conn, c, 413, "invalid_request_error", "body_too_large",
                    "the request body is larger than --max-body-mb");
    if (!strcmp(method, "OPTIONS")) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, "*");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        /* allow the headers the browser asks for (the SDKs send x-stainless-*, ...) */
        char hdrs[1024];
        const char *want = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                       "Access-Control-Request-Headers");
        cors_headers(want, hdrs, sizeof hdrs);
        MHD_add_response_header(r, "Access-Control-Allow-Headers", hdrs);
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
        c->status = 204;
        enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_NO_CONTENT, r);
        MHD_destroy_response(r);
        return ok;
    }
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/completions") ||
        !strcmp(url, "/v1/responses")) {
        if (strcmp(method, "POST"))
            return fail(sv, conn, c, 405, "invalid_request_error", "method_not_allowed",
                        "use POST for this endpoint");
        c->ph = PH_BODY;
        return chat_start(sv, conn, c);
    }
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD")) return route_get(sv, conn, c, url);
    /* another method on a path that exists is 405; a path that does not, 404 (SDKs map
     * that to NotFoundError) */
    if (!strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11) || !strcmp(url, "/health") ||
        !strcmp(url, "/metrics") || find_asset(url))
        return fail(sv, conn, c, 405, "invalid_request_error", "method_not_allowed",
                    "method not allowed");
    return fail(sv, conn, c, 404, "invalid_request_error", "not_found", "no such endpoint");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    server *sv = cls;
    conn_ctx *c = *con_cls;
    serve_guard_waiting(sv->guard, conn); /* for the next request on this connection */
    if (!c) return;
    if (c->job) {
        serve_sched_detach(&sv->sched, c->job);
        serve_job_unref(c->job);
        atomic_fetch_sub(&sv->active, 1);
    }
    if (sv->verbose)
        fprintf(stderr, "glmv serve: %s %s %d %.1f ms%s\n", c->method, c->url, c->status,
                now_ms() - c->t0, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
    free(c->body);
    free(c);
    *con_cls = NULL;
}

/* ------------------------------------------------------------------------ */
/* The command                                                              */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fprintf(f,
            "usage: glmv serve [-m DIR] [options]\n\n"
            "An OpenAI-compatible server (POST /v1/chat/completions, GET /v1/models, /health,\n"
            "/metrics) and a chat page at /.\n\n"
            "  -m DIR               as below; also echo:[delay_ms=N][,ctx=N], a test engine without\n"
            "                       weights that streams back what it is sent\n"
            "  --host ADDR          address to bind (default 127.0.0.1; 0.0.0.0 exposes the server)\n"
            "  --port N             port (default 8080; 0 picks a free one)\n"
            "  --api-key KEY        require 'Authorization: Bearer KEY' on /v1/ and /metrics\n"
            "  --served-model-name NAME[,NAME...]\n"
            "                       the model names requests may give (default: any name, answered\n"
            "                       back; /v1/models lists the folder's name)\n"
            "                       (default: $GLMV_API_KEY when set)\n"
            "  --media-dir DIR      allow image/video paths (and file:// URLs) under DIR\n"
            "  --allow-remote-media download http(s) image/video URLs (off: they are refused)\n"
            "  --max-images N       images per request (default 64)\n"
            "  --parallel N         requests generated at once, each on its own session (a KV cache\n"
            "                       of up to --ctx tokens), batched in one pass a step (default: 4,\n"
            "                       fewer when their caches do not fit; 64 on a GPU whose caches\n"
            "                       grow, GLMV_CUDA_VMM=1, as --kv-memory admits them)\n"
            "  --queue N            requests waiting at most; more get 503 (default 64)\n"
            "  --no-prompt-cache    start every request from an empty cache (by default the part\n"
            "                       of a prompt shared with the last request is kept, images too)\n"
            "  --no-warmup          on a GPU, listen at once: by default a warm-up run (the vision\n"
            "                       tower on a 1120x1120 image, a prefill, decode steps) first loads\n"
            "                       what the first request would otherwise wait for (~0.15 s)\n"
            "  --max-body-mb N      largest request body (default 64)\n"
            "  --http-threads N     HTTP worker threads (default 4)\n"
            "  --max-conns-per-ip N connections one client address may hold (default 64; 0 = no\n"
            "                       limit: behind a load balancer every client has its address)\n"
            "  --idle-timeout S     close a connection that sends nothing for S seconds (default 30),\n"
            "                       or that has not begun its next request S seconds after the last\n"
            "  --header-timeout S   a request line and headers must arrive within S seconds, and a\n"
            "                       body at 16 KiB/s on average after that, however the bytes trickle\n"
            "                       in (default 10)\n"
            "  --max-conns N        connections open at most, all clients together (default 4096)\n"
            "  --drain-timeout S    on SIGTERM: stop accepting, let requests in flight finish for up\n"
            "                       to S seconds (default 30), then end the rest with an error\n"
            "  -v, --verbose        also log every request\n"
            "Sampling flags set the server's defaults; each request may override them.\n\n%s",
            cli_opts_help);
}

/* The demo model: ./models/demo, or models/demo beside the binary's project. */
static const char *default_model(char *buf, size_t n) {
    struct stat st;
    if (!stat("models/demo/config.json", &st)) return "models/demo";
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return NULL;
    exe[k] = 0;
    for (int up = 0; up < 3; up++) {
        char *s = strrchr(exe, '/');
        if (!s) break;
        *s = 0;
        if ((size_t)snprintf(buf, n, "%.*s/models/demo/config.json", (int)(n - 32), exe) >= n)
            return NULL;
        if (!stat(buf, &st)) {
            buf[strlen(buf) - strlen("/config.json")] = 0;
            return buf;
        }
    }
    return NULL;
}

static int bind_addr(const char *host, int port, struct sockaddr_storage *ss, int *v6) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &res) || !res) return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

/* 127.0.0.0/8, ::1, or ::ffff:127.x.y.z */
static int is_loopback(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

int cmd_serve(int argc, char **argv) {
    server sv;
    memset(&sv, 0, sizeof sv);
    sv.host = "127.0.0.1";
    sv.port = 8080;
    sv.queue = 64;
    sv.max_body = 64u << 20;
    sv.media.max_images = 64;
    sv.api_key = getenv("GLMV_API_KEY");
    if (sv.api_key && !*sv.api_key) sv.api_key = NULL;
    const char *media_dir = NULL, *served_names = NULL;
    int parallel_given = 0;
    long parallel = 4, http_threads = 4, v, per_ip = 64, idle_timeout = 30, drain_timeout = 30;
    long header_timeout = 10, max_conns = 4096;
    int no_prompt_cache = 0;
    cli_opts o;
    cli_opts_init(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int shared = cli_opts_parse(&o, argc, argv, &i);
        if (shared < 0) return 2;
        if (shared) continue;
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL                                                      \
    do {                                                              \
        if (!val) {                                                   \
            fprintf(stderr, "glmv serve: %s needs a value\n", a);     \
            return 2;                                                 \
        }                                                             \
        i++;                                                          \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--host")) {
            NEED_VAL;
            sv.host = val;
        } else if (!strcmp(a, "--port")) {
            NEED_VAL;
            if (cli_parse_int(a, val, 0, 65535, &v)) return 2;
            sv.port = (int)v;
        } else if (!strcmp(a, "--api-key")) {
            NEED_VAL;
            if (!*val) { /* an empty key would guard with a key anyone can guess */
                fprintf(stderr, "glmv serve: --api-key must not be empty\n");
                return 2;
            }
            sv.api_key = val;
        } else if (!strcmp(a, "--media-dir")) {
            NEED_VAL;
            media_dir = val;
        } else if (!strcmp(a, "--served-model-name")) {
            NEED_VAL;
            if (!*val || strstr(val, ",,") || val[0] == ',' || val[strlen(val) - 1] == ',') {
                fprintf(stderr, "glmv serve: --served-model-name expects NAME[,NAME...], got '%s'\n", val);
                return 2;
            }
            served_names = val;
        } else if (!strcmp(a, "--allow-remote-media")) {
            sv.media.allow_remote = 1;
        } else if (!strcmp(a, "--max-images")) {
            NEED_VAL;
            if (cli_parse_int(a, val, 1, 100000, &v)) return 2;
            sv.media.max_images = (int)v;
        } else if (!strcmp(a, "--parallel")) {
            NEED_VAL;
            if (cli_parse_int(a, val, 1, 256, &parallel)) return 2;
            parallel_given = 1;
        } else if (!strcmp(a, "--no-prompt-cache")) {
            no_prompt_cache = 1;
        } else if (!strcmp(a, "--no-warmup")) {
            o.no_warmup = 1;
        } else if (!strcmp(a, "--queue")) {
            NEED_VAL;
            if (cli_parse_int(a, val, 1, 100000, &v)) return 2;
            sv.queue = (int)v;
        } else if (!strcmp(a, "--max-body-mb")) {
            NEED_VAL;
            if (cli_parse_int(a, val, 1, 4096, &v)) return 2;
            sv.max_body = (size_t)v << 20;
        } else if (!strcmp(a, "--http-threads")) {
            NEED_VAL;
            if (cli_parse_int(a, val, 1, 256, &http_threads)) return 2;
        } else if (!strcmp(a, "--max-conns-per-ip")) {
            NEED_VAL;
            if (cli_parse_int(a, val, 0, 100000, &per_ip)) return 2;
        } else if (!strcmp(a, "--idle-timeout")) {
            NEED_VAL;
            if (cli_parse_int(a, val, 1, 86400, &idle_timeout)) return 2;
        } else if (!strcmp(a, "--header-timeout")) {
            NEED_VAL;
            if (cli_parse_int(a, val, 1, 86400, &header_timeout)) return 2;
        } else if (!strcmp(a, "--max-conns")) {
            NEED_VAL;
            if (cli_parse_int(a, val, 1, 1000000, &max_conns)) return 2;
        } else if (!strcmp(a, "--drain-timeout")) {
            NEED_VAL;
            if (cli_parse_int(a, val, 0, 86400, &drain_timeout)) return 2;
        } else {
            fprintf(stderr, "glmv serve: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
#undef NEED_VAL
    }
    char buf[PATH_MAX], media_real[PATH_MAX];
    sv.verbose = o.mp.verbose;
    if (!o.model_dir) o.model_dir = cli_default_model();
    if (!o.model_dir) o.model_dir = default_model(buf, sizeof buf);
    const char *model = o.model_dir;
    if (!model) {
        fprintf(stderr, "glmv serve: no model: pass -m DIR (a checkpoint folder); models/demo was not found\n");
        return 2;
    }
    if (media_dir) {
        if (!realpath(media_dir, media_real)) {
            fprintf(stderr, "glmv serve: --media-dir '%s': %s\n", media_dir, strerror(errno));
            return 2;
        }
        struct stat mst;
        if (stat(media_real, &mst) || !S_ISDIR(mst.st_mode)) {
            fprintf(stderr, "glmv serve: --media-dir '%s' is not a directory\n", media_dir);
            return 2;
        }
        sv.media.media_dir = media_real;
    }
    struct sockaddr_storage ss;
    int v6 = 0;
    if (bind_addr(sv.host, sv.port, &ss, &v6)) {
        fprintf(stderr, "glmv serve: cannot resolve --host '%s'\n", sv.host);
        return 2;
    }
    if (!sv.api_key && !is_loopback(&ss))
        fprintf(stderr, "glmv serve: warning: --host %s accepts connections from other machines and "
                        "no --api-key (or GLMV_API_KEY) is set: anyone who can reach this port can use "
                        "the model\n", sv.host);

    char err[GLMV_ERR_SIZE] = "";
    if (serve_engine_open(&sv.eng, &o, parallel_given ? (int)parallel : -(int)parallel, no_prompt_cache,
                          err)) {
        fprintf(stderr, "glmv serve: %s\n", err);
        return 1;
    }
    if (served_names) { /* the first name is the one /v1/models lists */
        sv.eng->served_names = served_names;
        size_t l = strcspn(served_names, ",");
        snprintf(sv.eng->model_id, sizeof sv.eng->model_id, "%.*s", (int)l, served_names);
    }
    sv.started = (long)time(NULL);
    sv.media.max_remote_bytes = sv.max_body;
    sv.media.defer_remote = 1;
    if (sv.media.allow_remote && serve_fetch_init(16)) {
        fprintf(stderr, "glmv serve: cannot initialise libcurl\n");
        sv.eng->free(sv.eng);
        return 1;
    }
    if (serve_sched_start(&sv.sched, sv.eng, sv.queue, err)) {
        fprintf(stderr, "glmv serve: %s\n", err);
        sv.eng->free(sv.eng);
        return 1;
    }

    /* Signals are taken by sigwait below: block them before threads start. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* every connection is a descriptor: room for --max-conns of them, besides the model's files */
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)max_conns + 256) {
        rlim_t want = (rlim_t)max_conns + 256;
        if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) want = rl.rlim_max;
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)max_conns + 256) {
            fprintf(stderr, "glmv serve: warning: the open-file limit (%llu) holds fewer than "
                            "--max-conns %ld connections; using %llu\n",
                    (unsigned long long)rl.rlim_cur, max_conns,
                    (unsigned long long)(rl.rlim_cur > 320 ? rl.rlim_cur - 256 : 64));
            max_conns = rl.rlim_cur > 320 ? (long)rl.rlim_cur - 256 : 64;
        }
    }
    sv.guard = serve_guard_start((double)idle_timeout, (double)header_timeout);
    if (!sv.guard) {
        fprintf(stderr, "glmv serve: cannot start the connection guard\n");
        serve_sched_stop(&sv.sched);
        sv.eng->free(sv.eng);
        return 1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    flags |= MHD_USE_POLL;
    if (v6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)sv.port, NULL, NULL, on_request, &sv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)http_threads,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, &sv, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)idle_timeout, MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conns,
        MHD_OPTION_NOTIFY_CONNECTION, serve_guard_notify, sv.guard, MHD_OPTION_URI_LOG_CALLBACK,
        serve_guard_uri, sv.guard,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024), MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "glmv serve: cannot listen on %s:%d (%s)\n", sv.host, sv.port,
                errno ? strerror(errno) : "libmicrohttpd failed");
        serve_guard_stop(sv.guard);
        serve_sched_stop(&sv.sched);
        sv.eng->free(sv.eng);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : sv.port;
    printf("glmv serve: model '%s' (context %d tokens, %d at once) on %s\n", sv.eng->model_id,
           sv.eng->n_ctx, sv.eng->n_slots, sv.eng->runs_on);
    printf("glmv serve: listening on http://%s%s%s:%d/  (OpenAI API at /v1)\n", v6 ? "[" : "",
           sv.host, v6 ? "]" : "", port);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    /* drain: take no new connection (the port is shut: refused at once) nor request,
     * let what is queued or running finish up to the deadline, end the rest with an error */
    atomic_store(&sv.draining, 1);
    MHD_socket lfd = MHD_quiesce_daemon(d);
    if (lfd != MHD_INVALID_SOCKET) shutdown(lfd, SHUT_RDWR); /* refuse, not queue, new connections */
    int busy = atomic_load(&sv.active);
    fprintf(stderr, "glmv serve: stopping (signal %d): %d request(s) in flight, waiting up to %ld s\n",
            sig, busy, drain_timeout);
    struct timespec tick = {0, 20 * 1000 * 1000};
    for (long waited = 0; busy > 0 && waited < drain_timeout * 50; waited++) {
        nanosleep(&tick, NULL);
        busy = atomic_load(&sv.active);
    }
    if (busy) fprintf(stderr, "glmv serve: drain deadline: ending %d request(s) with an error\n", busy);
    if (sv.media.allow_remote) serve_fetch_abort_all();
    for (int k = 0; atomic_load(&sv.fetching) > 0 && k < 500; k++) nanosleep(&tick, NULL);
    serve_sched_stop(&sv.sched); /* cancels jobs and resumes their connections */
    for (int k = 0; atomic_load(&sv.active) > 0 && k < 100; k++) nanosleep(&tick, NULL); /* answers go out */
    MHD_stop_daemon(d);
    serve_guard_stop(sv.guard);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    sv.eng->free(sv.eng);
    if (sv.media.allow_remote) serve_fetch_cleanup();
    pthread_mutex_destroy(&sv.sched.mu);
    pthread_cond_destroy(&sv.sched.cv);
    return busy ? 3 : 0; /* 3: requests were cut at the drain deadline */
}
