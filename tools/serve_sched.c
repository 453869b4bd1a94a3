/* serve_sched.c -- jobs, the bounded queue and the inference threads (slots) of
 * `glmv serve`, plus the disconnect watch and the metrics.
 *
 * HTTP threads parse a request into a job and submit it; each slot's inference
 * thread takes jobs in arrival order and runs them on its session of the engine
 * (whose batched passes carry every running slot's work: serve_engine.c).
 * Tokens come back through the generation callback, are turned into SSE bytes
 * in the job and the waiting connection is resumed. A job whose client went
 * away is cancelled: the callback's return value stops generation at the next
 * token, and a queued job leaves the queue at once.
 * Lock order: sched->mu, then job->mu.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

const double serve_metric_bounds[12] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
const int serve_status_codes[10] = {200, 400, 401, 403, 404, 405, 413, 500, 503, 0};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------------ */
/* Jobs                                                                     */
/* ------------------------------------------------------------------------ */

serve_job *serve_job_new(void) {
    serve_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    j->refs = 1;
    atomic_init(&j->cancelled, 0);
    j->t_arrive = now_ms();
    return j;
}

void serve_job_unref(serve_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    serve_request_free(&j->req);
    for (int i = 0; i < j->n_results && j->result_free; i++) j->result_free(&j->results[i]);
    free(j->rs.reasoning);
    free(j->out);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

void serve_job_wake_locked(serve_job *j) {
    if (j->conn && j->suspended) {
        j->suspended = 0;
        MHD_resume_connection(j->conn);
    }
}

/* Append SSE bytes (takes ownership of s); call with j->mu held. */
static void job_append_locked(serve_job *j, char *s) {
    if (!s) return;
    size_t n = strlen(s);
    if (j->out_off == j->out_len) j->out_off = j->out_len = 0;
    if (j->out_len + n + 1 > j->out_cap) {
        size_t cap = (j->out_len + n + 1) * 2;
        char *o = realloc(j->out, cap);
        if (!o) { free(s); return; }
        j->out = o;
        j->out_cap = cap;
    }
    memcpy(j->out + j->out_len, s, n);
    j->out_len += n;
    free(s);
}

static char *sse_dup(const char *s) { return strdup(s); }

/* an error inside a stream: one "data: {error}" event (OpenAI's shape) */
static void append_error_event_locked(serve_job *j, const serve_error *e) {
    char *body = serve_error_json(e);
    if (!body) return;
    size_t bn = strlen(body);
    char *ev = malloc(bn + 9);
    if (ev) snprintf(ev, bn + 9, "data: %s\n\n", body);
    job_append_locked(j, ev);
    free(body);
}

/* ------------------------------------------------------------------------ */
/* The inference thread                                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    serve_sched *s;
    serve_job *j;
} job_ctx;

static int job_cb(void *user, const glmv_event *ev) {
    job_ctx *c = user;
    serve_job *j = c->j;
    if (atomic_load(&j->cancelled)) return 1;
    const serve_engine *eng = c->s->eng;
    char *chunk = NULL;
    /* a token that shows no text still carries its log-probability in a chunk */
    const glmv_logprob *lp = ev->token_start ? ev->logprob : NULL;
    if (j->req.stream && j->req.legacy == SERVE_API_RESPONSES && ev->len)
        chunk = serve_response_delta(&j->rs, j->id, j->created, j->model, (int)ev->kind, ev->text,
                                     ev->len);
    else if (j->req.stream && j->req.legacy != SERVE_API_RESPONSES && (ev->len || lp))
        chunk = j->req.legacy
                    ? serve_text_chunk_sse(j->id, j->created, j->model, j->choice, ev->text, ev->len,
                                           NULL, NULL, lp, eng->tok)
                    : serve_chunk_sse(j->id, j->created, j->model, j->choice, (int)ev->kind, ev->text,
                                      ev->len, NULL, NULL, lp, eng->tok);
    pthread_mutex_lock(&j->mu);
    if (j->t_first == 0) j->t_first = now_ms();
    if (chunk) {
        if (j->n_events++ == 0 && !j->req.legacy)
            job_append_locked(j, serve_chunk_sse(j->id, j->created, j->model, j->choice, -1, NULL,
                                                 0, NULL, NULL, NULL, NULL));
        job_append_locked(j, chunk);
        j->started_output = 1;
        serve_job_wake_locked(j);
    }
    pthread_mutex_unlock(&j->mu);
    return atomic_load(&j->cancelled) ? 1 : 0;
}

/* Map a library error before any output to an HTTP answer, by its kind (glmv_errcode). */
void serve_error_from_code(serve_error *e, int code, const char *msg) {
    switch (code) {
    case GLMV_E_CONTEXT:
        serve_error_set(e, 400, "invalid_request_error", "context_length_exceeded", "messages", "%s", msg);
        break;
    case GLMV_E_MEDIA:
        serve_error_set(e, 400, "invalid_request_error", "invalid_image", "messages", "%s", msg);
        break;
    case GLMV_E_INVALID:
        serve_error_set(e, 400, "invalid_request_error", "invalid_request", "messages", "%s", msg);
        break;
    case GLMV_E_NOMEM:
        serve_error_set(e, 503, "server_error", "out_of_memory", NULL, "%s", msg);
        break;
    case GLMV_E_BACKEND:
        serve_error_set(e, 500, "server_error", "backend_error", NULL, "%s", msg);
        break;
    default:
        serve_error_set(e, 500, "server_error", NULL, NULL, "%s", msg);
    }
}

static void observe(uint64_t *buckets, double v) {
    for (int i = 0; i < 12; i++)
        if (v <= serve_metric_bounds[i]) buckets[i]++;
}

static void run_job(serve_sched *s, serve_job *j, int slot) {
    serve_engine *eng = s->eng;
    pthread_mutex_lock(&j->mu);
    if (atomic_load(&j->cancelled)) {
        j->state = JOB_DONE;
        j->failed = 1;
        j->started_output = 1;
        serve_error_set(&j->err, 503, "server_error", "server_shutdown", NULL,
                        "the server is shutting down: retry on another replica");
        j->out_done = 1;
        pthread_mutex_unlock(&j->mu);
        pthread_mutex_lock(&s->mu);
        s->in_flight--;
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&j->mu);
        serve_job_wake_locked(j);
        pthread_mutex_unlock(&j->mu);
        return;
    }
    j->state = JOB_RUNNING;
    j->t_start = now_ms();
    j->result_free = eng->result_free;
    pthread_mutex_unlock(&j->mu);

    char err[GLMV_ERR_SIZE] = "";
    glmv_result res;
    memset(&res, 0, sizeof res);
    job_ctx c = {s, j};
    /* n choices one after another: the prompt stays in the session's cache, so
     * the second and later pay only for their own tokens */
    int rc = 0, n = j->req.n_choices > 0 ? j->req.n_choices : 1;
    glmv_sampling sp = j->req.sp;
    for (int i = 0; i < n && rc == 0 && !atomic_load(&j->cancelled); i++) {
        pthread_mutex_lock(&j->mu);
        j->choice = i;
        j->n_events = 0;
        pthread_mutex_unlock(&j->mu);
        sp.seed = j->req.sp.seed + (uint64_t)i;
        memset(&res, 0, sizeof res);
        rc = eng->generate(eng, slot, j->req.msgs, j->req.n_msgs, j->req.prompt, j->req.prepared, &sp,
                           job_cb, &c, &res, err);
        if (rc) break;
        pthread_mutex_lock(&j->mu);
        j->results[j->n_results++] = res;
        if (j->req.stream) {
            const char *fin = res.finish_reason ? res.finish_reason : "stop";
            if (j->req.legacy == SERVE_API_RESPONSES) {
                job_append_locked(j, serve_response_end(&j->rs, j->id, j->created, j->model, &res));
            } else if (j->req.legacy) {
                job_append_locked(j, serve_text_chunk_sse(j->id, j->created, j->model, i, "", 0, fin,
                                                          NULL, NULL, NULL));
            } else {
                if (j->n_events++ == 0)
                    job_append_locked(j, serve_chunk_sse(j->id, j->created, j->model, i, -1, NULL, 0,
                                                         NULL, NULL, NULL, NULL));
                job_append_locked(j, serve_chunk_sse(j->id, j->created, j->model, i, -1, NULL, 0, fin,
                                                     NULL, NULL, NULL));
            }
            j->started_output = 1;
            serve_job_wake_locked(j);
        }
        pthread_mutex_unlock(&j->mu);
    }
    /* The job's figures go into the metrics and it leaves the in-flight count before its
     * client can read the end of its answer: a client that has its [DONE] and then reads
     * /metrics sees its own request counted and gone (two locks, never nested: j->mu, then
     * s->mu, then j->mu again). */
    int cancelled = atomic_load(&j->cancelled);
    pthread_mutex_lock(&j->mu);
    j->t_end = now_ms();
    double t_arrive = j->t_arrive, t_start = j->t_start, t_first = j->t_first, t_end = j->t_end;
    glmv_result counts[SERVE_MAX_CHOICES];
    int n_counts = j->n_results;
    for (int i = 0; i < n_counts; i++) counts[i] = j->results[i];
    pthread_mutex_unlock(&j->mu);

    pthread_mutex_lock(&s->mu);
    int shutdown = cancelled && s->stop; /* cut by SIGTERM's drain deadline, not by the client */
    serve_metrics *m = &s->m;
    if (cancelled) m->cancelled++;
    for (int i = 0; i < n_counts; i++) {
        const glmv_result *r = &counts[i];
        m->prompt_tokens += (uint64_t)(r->prompt_tokens > 0 ? r->prompt_tokens : 0);
        m->cached_tokens += (uint64_t)(r->cached_tokens > 0 ? r->cached_tokens : 0);
        m->shared_tokens += (uint64_t)(r->shared_tokens > 0 ? r->shared_tokens : 0);
        m->completion_tokens += (uint64_t)(r->completion_tokens > 0 ? r->completion_tokens : 0);
        m->image_tokens += (uint64_t)(r->image_tokens > 0 ? r->image_tokens : 0);
    }
    double lat = (t_end - t_arrive) / 1e3;
    m->lat_sum_s += lat;
    m->lat_count++;
    observe(m->lat_buckets, lat);
    m->queue_sum_s += (t_start - t_arrive) / 1e3;
    if (t_first > 0) {
        double ttft = (t_first - t_arrive) / 1e3;
        m->ttft_sum_s += ttft;
        m->ttft_count++;
        observe(m->ttft_buckets, ttft);
    }
    s->in_flight--;
    pthread_mutex_unlock(&s->mu);

    pthread_mutex_lock(&j->mu);
    if (rc) {
        if (!err[0]) snprintf(err, sizeof err, "generation failed");
        if (!j->started_output) {
            j->failed = 1;
            serve_error_from_code(&j->err, rc, err);
        } else {
            serve_error e;
            serve_error_from_code(&e, rc, err);
            append_error_event_locked(j, &e);
            job_append_locked(j, sse_dup("data: [DONE]\n\n"));
        }
        eng->result_free(&res);
    } else {
        j->have_result = j->n_results == n;
        int cut = !j->have_result;
        for (int i = 0; i < j->n_results; i++)
            cut |= j->results[i].finish_reason && !strcmp(j->results[i].finish_reason, "cancelled");
        if (shutdown && !j->req.stream && cut) { /* a cut answer is not a 200 */
            j->failed = 1;
            serve_error_set(&j->err, 503, "server_error", "server_shutdown", NULL,
                            "the server shut down before the answer was complete");
        }
        if (shutdown && j->req.stream) { /* the stream ends with a reason, not a silent cut */
            serve_error se;
            serve_error_set(&se, 503, "server_error", "server_shutdown", NULL,
                            "the server shut down before the answer was complete");
            append_error_event_locked(j, &se);
        }
        if (j->req.stream) {
            if (j->req.include_usage && j->n_results > 0 && j->req.legacy != SERVE_API_RESPONSES)
                job_append_locked(j, j->req.legacy
                                         ? serve_text_chunk_sse(j->id, j->created, j->model,
                                                                j->n_results, NULL, 0, NULL,
                                                                j->results, NULL, NULL)
                                         : serve_chunk_sse(j->id, j->created, j->model, j->n_results,
                                                           -1, NULL, 0, NULL, j->results, NULL, NULL));
            if (j->req.legacy != SERVE_API_RESPONSES) job_append_locked(j, sse_dup("data: [DONE]\n\n"));
        }
    }
    j->started_output = 1;
    j->out_done = 1;
    j->state = JOB_DONE;
    serve_job_wake_locked(j);
    pthread_mutex_unlock(&j->mu);
}

static void queue_remove_locked(serve_sched *s, serve_job *j) {
    if (!j->in_queue) return;
    if (j->qprev) j->qprev->qnext = j->qnext;
    else s->qhead = j->qnext;
    if (j->qnext) j->qnext->qprev = j->qprev;
    else s->qtail = j->qprev;
    j->qprev = j->qnext = NULL;
    j->in_queue = 0;
    s->qlen--;
}

/* The next job for `slot`, or NULL: the oldest queued job of the conversation whose start
 * the slot's cache holds, else the oldest job, unless another idle slot holds that one's
 * conversation (it is woken too, and takes it). Called with s->mu held. */
static serve_job *pick_locked(serve_sched *s, int slot) {
    int k = 0;
    for (serve_job *j = s->qhead; j && k < 64; j = j->qnext, k++)
        if (j->key && j->key == s->slot_key[slot]) return j;
    serve_job *h = s->qhead;
    if (!h) return NULL;
    for (int o = 0; o < s->n_workers; o++)
        if (o != slot && s->idle[o] && h->key && s->slot_key[o] == h->key) return NULL;
    return h;
}

typedef struct {
    serve_sched *s;
    int slot;
} worker_arg;

static void *infer_main(void *arg) {
    worker_arg *wa = arg;
    serve_sched *s = wa->s;
    int slot = wa->slot;
    free(wa);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        serve_job *j = NULL;
        s->idle[slot] = 1;
        while (!s->stop && !(j = pick_locked(s, slot))) pthread_cond_wait(&s->cv, &s->mu);
        s->idle[slot] = 0;
        if (s->stop) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        queue_remove_locked(s, j);
        s->slot_key[slot] = j->key;
        s->in_flight++;
        pthread_mutex_unlock(&s->mu);

        run_job(s, j, slot);

        pthread_mutex_lock(&s->mu); /* run_job took it out of in_flight */
        pthread_cond_broadcast(&s->cv); /* an idle slot: a job left for it may be taken now */
        pthread_mutex_unlock(&s->mu);
        serve_job_unref(j); /* the scheduler's reference */
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The disconnect watch                                                     */
/* ------------------------------------------------------------------------ */

/* A suspended connection is not polled by libmicrohttpd, so a client that
 * leaves while its job waits or computes would go unnoticed: peek at its
 * socket instead (0 bytes = orderly close; an error = reset). */
static int conn_closed(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return 1;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 1;
    return 0;
}

static void *watch_main(void *arg) {
    serve_sched *s = arg;
    for (;;) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&s->mu);
        if (s->stop) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        for (serve_job *j = s->all; j; j = j->anext) {
            pthread_mutex_lock(&j->mu);
            if (j->conn && j->suspended && !atomic_load(&j->cancelled) && conn_closed(j->conn)) {
                atomic_store(&j->cancelled, 1);
                j->client_gone = 1;
                if (j->in_queue) {
                    queue_remove_locked(s, j);
                    s->m.cancelled++;
                    j->refs--; /* the scheduler's reference; the connection still holds one */
                }
                serve_job_wake_locked(j);
            }
            pthread_mutex_unlock(&j->mu);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Scheduler                                                                */
/* ------------------------------------------------------------------------ */

int serve_sched_start(serve_sched *s, serve_engine *eng, int queue_cap, char *err) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->eng = eng;
    s->qcap = queue_cap;
    int n = eng->n_slots > 0 ? eng->n_slots : 1;
    s->workers = calloc((size_t)n, sizeof *s->workers);
    s->idle = calloc((size_t)n, sizeof *s->idle);
    s->slot_key = calloc((size_t)n, sizeof *s->slot_key);
    if (!s->workers || !s->idle || !s->slot_key) {
        snprintf(err, GLMV_ERR_SIZE, "out of memory");
        return -1;
    }
    for (; s->n_workers < n; s->n_workers++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){s, s->n_workers};
        if (!wa || pthread_create(&s->workers[s->n_workers], NULL, infer_main, wa)) {
            free(wa);
            snprintf(err, GLMV_ERR_SIZE, "cannot start inference thread %d", s->n_workers + 1);
            break;
        }
    }
    if (s->n_workers == n && pthread_create(&s->watch_thread, NULL, watch_main, s) == 0) return 0;
    if (s->n_workers == n) snprintf(err, GLMV_ERR_SIZE, "cannot start the watch thread");
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_workers; i++) pthread_join(s->workers[i], NULL);
    return -1;
}

int serve_sched_busy(serve_sched *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->qlen + s->in_flight;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void serve_sched_stop(serve_sched *s) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    while (s->qhead) { /* never started: answered 503, not left without an answer */
        serve_job *j = s->qhead;
        queue_remove_locked(s, j);
        pthread_mutex_lock(&j->mu);
        j->failed = 1;
        serve_error_set(&j->err, 503, "server_error", "server_shutdown", NULL,
                        "the server is shutting down: retry on another replica");
        j->started_output = 1;
        j->out_done = 1;
        j->state = JOB_DONE;
        serve_job_wake_locked(j);
        j->refs--;
        pthread_mutex_unlock(&j->mu);
    }
    for (serve_job *j = s->all; j; j = j->anext) {
        pthread_mutex_lock(&j->mu);
        atomic_store(&j->cancelled, 1);
        serve_job_wake_locked(j);
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_workers; i++) pthread_join(s->workers[i], NULL);
    pthread_join(s->watch_thread, NULL);
    free(s->workers);
    free(s->idle);
    free(s->slot_key);
    s->workers = NULL;
    s->idle = NULL;
    s->slot_key = NULL;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* What identifies a conversation across its turns: the system messages and the first user
 * message (texts, and each medium's size and first bytes), or a raw prompt's first 4 KB.
 * Only a preference for the slot whose cache holds it: a collision costs a cache miss. */
static uint64_t conversation_key(const serve_request *r) {
    uint64_t h = 1469598103934665603ull;
    if (r->prompt) return fnv(h, r->prompt, strnlen(r->prompt, 4096)) | 1;
    for (int i = 0; i < r->n_msgs; i++) {
        const glmv_message *m = &r->msgs[i];
        h = fnv(h, m->role, strlen(m->role) + 1);
        for (int k = 0; k < m->n_parts; k++) {
            const glmv_part *p = &m->parts[k];
            if (p->kind == GLMV_PART_TEXT && p->text) h = fnv(h, p->text, strlen(p->text) + 1);
            else if (p->data) h = fnv(fnv(h, &p->size, sizeof p->size), p->data, p->size < 64 ? p->size : 64);
            else if (p->path) h = fnv(h, p->path, strlen(p->path) + 1);
        }
        if (!strcmp(m->role, "user")) break;
    }
    return h | 1;
}

int serve_sched_submit(serve_sched *s, serve_job *j) {
    j->key = conversation_key(&j->req);
    pthread_mutex_lock(&s->mu);
    if (s->stop || s->qlen >= s->qcap) {
        s->m.rejected_full++;
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
    j->qprev = s->qtail;
    j->qnext = NULL;
    if (s->qtail) s->qtail->qnext = j;
    else s->qhead = j;
    s->qtail = j;
    j->in_queue = 1;
    s->qlen++;
    j->anext = s->all;
    j->aprev = NULL;
    if (s->all) s->all->aprev = j;
    s->all = j;
    j->in_all = 1;
    s->m.chat_requests++;
    s->m.chat_stream += (uint64_t)j->req.stream;
    pthread_cond_broadcast(&s->cv); /* every idle slot looks: the one holding its conversation takes it */
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void serve_sched_detach(serve_sched *s, serve_job *j) {
    int dropped = 0;
    pthread_mutex_lock(&s->mu);
    if (j->in_all) {
        if (j->aprev) j->aprev->anext = j->anext;
        else s->all = j->anext;
        if (j->anext) j->anext->aprev = j->aprev;
        j->aprev = j->anext = NULL;
        j->in_all = 0;
    }
    if (j->in_queue) {
        queue_remove_locked(s, j);
        s->m.cancelled++;
        dropped = 1;
    }
    pthread_mutex_lock(&j->mu);
    j->conn = NULL;
    j->suspended = 0;
    atomic_store(&j->cancelled, 1);
    if (dropped) j->refs--;
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_unlock(&s->mu);
}

void serve_sched_count_status(serve_sched *s, int status) {
    int i = 0;
    while (serve_status_codes[i] && serve_status_codes[i] != status) i++;
    pthread_mutex_lock(&s->mu);
    s->m.by_status[i]++;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------------ */
/* Prometheus text                                                          */
/* ------------------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) return;
        b->p = q;
        b->cap = cap;
    }
}

static void histogram(sbuf *b, const char *name, const char *help, const uint64_t *buckets,
                      double sum, uint64_t count) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < 12; i++)
        sb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, serve_metric_bounds[i],
                  (unsigned long long)buckets[i]);
    sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
              (unsigned long long)count, name, sum, name, (unsigned long long)count);
}

char *serve_metrics_text(serve_sched *s) {
    sbuf b = {0};
    pthread_mutex_lock(&s->mu);
    serve_metrics m = s->m;
    int qlen = s->qlen, in_flight = s->in_flight, qcap = s->qcap;
    pthread_mutex_unlock(&s->mu);
    sb_printf(&b, "# HELP glmv_http_responses_total HTTP responses by status code.\n"
                  "# TYPE glmv_http_responses_total counter\n");
    for (int i = 0; i < 10; i++) {
        if (serve_status_codes[i])
            sb_printf(&b, "glmv_http_responses_total{code=\"%d\"} %llu\n", serve_status_codes[i],
                      (unsigned long long)m.by_status[i]);
        else
            sb_printf(&b, "glmv_http_responses_total{code=\"other\"} %llu\n",
                      (unsigned long long)m.by_status[i]);
    }
    sb_printf(&b,
              "# HELP glmv_chat_requests_total Chat completions accepted into the queue.\n"
              "# TYPE glmv_chat_requests_total counter\nglmv_chat_requests_total %llu\n"
              "# HELP glmv_chat_stream_requests_total Accepted chat completions that stream.\n"
              "# TYPE glmv_chat_stream_requests_total counter\nglmv_chat_stream_requests_total %llu\n"
              "# HELP glmv_requests_cancelled_total Jobs stopped because the client left.\n"
              "# TYPE glmv_requests_cancelled_total counter\nglmv_requests_cancelled_total %llu\n"
              "# HELP glmv_requests_rejected_total Requests refused with 503 (queue full).\n"
              "# TYPE glmv_requests_rejected_total counter\nglmv_requests_rejected_total %llu\n"
              "# HELP glmv_prompt_tokens_total Prompt tokens processed.\n"
              "# TYPE glmv_prompt_tokens_total counter\nglmv_prompt_tokens_total %llu\n"
              "# HELP glmv_prompt_tokens_cached_total Prompt tokens kept in the cache from the last request.\n"
              "# TYPE glmv_prompt_tokens_cached_total counter\nglmv_prompt_tokens_cached_total %llu\n"
              "# HELP glmv_prompt_tokens_shared_total Of the cached prompt tokens, those copied from another slot's cache.\n"
              "# TYPE glmv_prompt_tokens_shared_total counter\nglmv_prompt_tokens_shared_total %llu\n"
              "# HELP glmv_completion_tokens_total Tokens generated.\n"
              "# TYPE glmv_completion_tokens_total counter\nglmv_completion_tokens_total %llu\n"
              "# HELP glmv_image_tokens_total Vision tokens spliced into prompts.\n"
              "# TYPE glmv_image_tokens_total counter\nglmv_image_tokens_total %llu\n"
              "# HELP glmv_queue_depth Jobs waiting for the inference thread.\n"
              "# TYPE glmv_queue_depth gauge\nglmv_queue_depth %d\n"
              "# HELP glmv_queue_capacity Jobs the queue holds before answering 503.\n"
              "# TYPE glmv_queue_capacity gauge\nglmv_queue_capacity %d\n"
              "# HELP glmv_requests_in_flight Jobs being generated now.\n"
              "# TYPE glmv_requests_in_flight gauge\nglmv_requests_in_flight %d\n"
              "# HELP glmv_queue_wait_seconds_total Time jobs spent queued.\n"
              "# TYPE glmv_queue_wait_seconds_total counter\nglmv_queue_wait_seconds_total %.6f\n",
              (unsigned long long)m.chat_requests, (unsigned long long)m.chat_stream,
              (unsigned long long)m.cancelled, (unsigned long long)m.rejected_full,
              (unsigned long long)m.prompt_tokens, (unsigned long long)m.cached_tokens,
              (unsigned long long)m.shared_tokens, (unsigned long long)m.completion_tokens, (unsigned long long)m.image_tokens, qlen, qcap, in_flight, m.queue_sum_s);
    uint64_t steps = 0, rows = 0;
    int last = 0;
    int64_t kv = 0, kv_cap = 0;
    glmv_kv_stats kvm = {0, 0, 0, 0, 0};
    if (s->eng->stats) s->eng->stats(s->eng, &steps, &rows, &last, &kv, &kv_cap, &kvm);
    sb_printf(&b,
              "# HELP glmv_sequences_running Generations running now (at most --parallel).\n"
              "# TYPE glmv_sequences_running gauge\nglmv_sequences_running %d\n"
              "# HELP glmv_sequences_waiting Requests queued for a free sequence slot.\n"
              "# TYPE glmv_sequences_waiting gauge\nglmv_sequences_waiting %d\n"
              "# HELP glmv_parallel Sequences that may run at once (--parallel).\n"
              "# TYPE glmv_parallel gauge\nglmv_parallel %d\n"
              "# HELP glmv_decode_steps_total Batched decode steps (one token for each sequence in it).\n"
              "# TYPE glmv_decode_steps_total counter\nglmv_decode_steps_total %llu\n"
              "# HELP glmv_decode_step_sequences_total Sequences advanced, summed over the steps.\n"
              "# TYPE glmv_decode_step_sequences_total counter\nglmv_decode_step_sequences_total %llu\n"
              "# HELP glmv_batch_size Sequences in the last decode step.\n"
              "# TYPE glmv_batch_size gauge\nglmv_batch_size %d\n"
              "# HELP glmv_kv_cache_tokens Tokens held in the sequences' KV caches (running and kept for a next turn).\n"
              "# TYPE glmv_kv_cache_tokens gauge\nglmv_kv_cache_tokens %lld\n"
              "# HELP glmv_kv_cache_capacity_tokens Tokens the KV caches may hold in all (--parallel x --ctx).\n"
              "# TYPE glmv_kv_cache_capacity_tokens gauge\nglmv_kv_cache_capacity_tokens %lld\n"
              "# HELP glmv_kv_cache_bytes Memory the KV caches take now (they grow with their sequences).\n"
              "# TYPE glmv_kv_cache_bytes gauge\nglmv_kv_cache_bytes %lld\n"
              "# HELP glmv_kv_cache_budget_bytes Memory the KV caches may take (--kv-memory; 0: no limit).\n"
              "# TYPE glmv_kv_cache_budget_bytes gauge\nglmv_kv_cache_budget_bytes %lld\n"
              "# HELP glmv_kv_cache_evictions_total Caches kept for a next turn given back for room.\n"
              "# TYPE glmv_kv_cache_evictions_total counter\nglmv_kv_cache_evictions_total %lld\n"
              "# HELP glmv_preemptions_total Generations moved to host memory for room, resumed later.\n"
              "# TYPE glmv_preemptions_total counter\nglmv_preemptions_total %lld\n",
              in_flight, qlen, s->n_workers, (unsigned long long)steps, (unsigned long long)rows, last,
              (long long)kv, (long long)kv_cap, (long long)kvm.bytes, (long long)kvm.budget,
              (long long)kvm.evictions, (long long)kvm.preemptions);
    histogram(&b, "glmv_request_duration_seconds", "From arrival to the last token.", m.lat_buckets,
              m.lat_sum_s, m.lat_count);
    histogram(&b, "glmv_time_to_first_token_seconds", "From arrival to the first token.",
              m.ttft_buckets, m.ttft_sum_s, m.ttft_count);
    return b.p;
}
