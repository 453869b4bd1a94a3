/* serve.h -- the internals of `glmv serve`, shared by its files:
 *   serve.c         the command line, the HTTP daemon (libmicrohttpd), routing, the page
 *   serve_api.c     OpenAI JSON: request parsing and validation, response and error bodies
 *   serve_sched.c   jobs, the bounded queue, the one inference thread, metrics
 *   serve_engine.c  what generates: the glmv library, or the "echo:" test engine
 *   serve_guard.c   deadlines for reading a request, which a trickle cannot extend
 * Only include/glmv.h is used from the library. Threads: libmicrohttpd's pool
 * parses requests and writes responses; one inference thread runs the jobs.
 */
#ifndef GLMV_SERVE_H
#define GLMV_SERVE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "cli.h"
#include "glmv.h"

/* ------------------------------------------------------------------------ */
/* Engines                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct serve_engine serve_engine;
struct serve_engine {
    char model_id[256];         /* what /v1/models lists and requests must name */
    int n_ctx;                  /* tokens per session */
    char runs_on[256];          /* device and precision, for the start-up line */
    const char *served_names;   /* --served-model-name: accepted names, comma-separated (NULL:
                                   any name is accepted, as llama.cpp does) */
    const glmv_tokenizer *tok;  /* for log-probabilities' token strings (NULL: echo engine) */
    int vocab;                  /* logit_bias ids must be below this (0: not checked) */
    int n_slots;                /* sessions (--parallel): generations that run at once, their
                                   decode steps batched; generate() may be called from that many
                                   threads at once, each with its own slot */
    glmv_sampling defaults;     /* from generation_config.json */
    int fresh_sessions;         /* --no-prompt-cache: every request starts from an empty cache */
    void *impl;
    /* Generate on session `slot`; same contract as glmv_generate, or as
     * glmv_generate_raw when raw (a /v1/completions prompt) is set, but a failure returns
     * its kind (a glmv_errcode, > 0), which the server maps to an HTTP status. */
    int (*generate)(serve_engine *e, int slot, const glmv_message *msgs, int n_msgs,
                    const char *raw, const void *prepared, const glmv_sampling *sp,
                    glmv_callback cb, void *user, glmv_result *out, char *err);
    /* The prompt stage on its own (NULL: generate does it): the messages (or raw prompt)
     * rendered, media decoded, tokens counted, on any thread, before the request is queued;
     * *out is then passed to generate as `prepared`. Returns 0 or a glmv_errcode. */
    int (*prepare)(serve_engine *e, const glmv_message *msgs, int n_msgs, const char *raw,
                   void **out, char *err);
    void (*prepared_free)(void *p);
    void (*result_free)(glmv_result *r);
    void (*free)(serve_engine *e);
    /* batched decode steps so far and the sequences they advanced, the KV caches' tokens and
     * memory (NULL: no batching) */
    void (*stats)(serve_engine *e, uint64_t *steps, uint64_t *rows, int *last_batch,
                  int64_t *kv_tokens, int64_t *kv_capacity, glmv_kv_stats *kv);
};

/* n_slots < 0: up to -n_slots sessions, as many as fit (the default of --parallel).
 * o->model_dir: a checkpoint folder (glmv library), or "echo:[delay_ms=N][,ctx=N]",
 * a deterministic engine that streams back what it was sent (HTTP tests).
 * The model flags of `o` (threads, device, ctx, image tokens) and its sampling
 * flags (the server's defaults) apply. */
int serve_engine_open(serve_engine **out, const cli_opts *o, int n_slots, int fresh_sessions, char *err);

/* ------------------------------------------------------------------------ */
/* Requests (serve_api.c)                                                   */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *media_dir;      /* realpath of --media-dir, or NULL */
    int allow_remote;           /* --allow-remote-media: download http(s) URLs */
    size_t max_remote_bytes;    /* cap on one download */
    int max_images;             /* per request */
    int defer_remote;           /* parse only notes http(s) URLs; serve_request_fetch downloads */
} serve_media_policy;

#define SERVE_MAX_REMOTE 16     /* http(s) media per request */

/* A parsed chat request; owns every string and buffer it points to. */
typedef struct {
    glmv_message *msgs;
    int n_msgs;
    glmv_part *parts;           /* all messages' parts, in order */
    int n_parts;
    char **owned;               /* strings and decoded media to free */
    int n_owned, cap_owned;
    glmv_sampling sp;
    char **stop;
    int n_stop;
    int n_images, n_videos, n_pdfs;
    int stream, include_usage;
    int max_tokens_given;
    int n_choices;              /* n: choices generated one after another (the prompt cached) */
    int legacy;                 /* SERVE_API_*: which endpoint's shapes (prompt for completions) */
    const char *prompt;         /* its prompt (owned) */
    int32_t *bias_ids;          /* logit_bias, pointed to by sp */
    float *bias_values;
    char model[128];            /* the name the client asked for (answered back), or "" */
    int n_remote;               /* http(s) media left to download (defer_remote) */
    int remote_part[SERVE_MAX_REMOTE];
    int remote_video[SERVE_MAX_REMOTE];
    const char *remote_url[SERVE_MAX_REMOTE];
    void *prepared;             /* the engine's prepared prompt (engine->prepare), or NULL */
    void (*prepared_free)(void *p);
} serve_request;

/* An error to send: HTTP status, OpenAI type, param (may be NULL), code (may be NULL). */
typedef struct {
    int status;
    const char *type;
    const char *code;
    char param[64];
    char message[GLMV_ERR_SIZE];
} serve_error;

int serve_error_set(serve_error *e, int status, const char *type, const char *code,
                    const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define SERVE_MAX_CHOICES 8     /* n */
enum { SERVE_API_CHAT = 0, SERVE_API_COMPLETIONS = 1, SERVE_API_RESPONSES = 2 };
#define SERVE_MAX_BIAS 4096     /* logit_bias entries */

/* Whether a request may name this model: any name without --served-model-name,
 * else one of its names. */
int serve_model_accepted(const serve_engine *eng, const char *name);

/* Parse a /v1/chat/completions body, or (legacy: SERVE_API_*) a /v1/completions or a
 * /v1/responses one. Returns 0, or -1 with *e filled. */
int serve_request_parse(serve_request *r, const char *body, size_t len, const serve_engine *eng,
                        const serve_media_policy *pol, int legacy, serve_error *e);
void serve_request_free(serve_request *r);
/* Download the http(s) media a deferred parse noted (off the HTTP threads). 0, or -1 with *e
 * filled (400 for a URL that fails, 503 when every download slot is busy). */
int serve_request_fetch(serve_request *r, const serve_media_policy *pol, serve_error *e);

/* Download an http(s) URL (serve_fetch.c); *out malloc'd. */
/* slots: downloads at once (keep one HTTP thread free of them) */
int serve_fetch_init(int slots);
void serve_fetch_cleanup(void);
void serve_fetch_abort_all(void);
/* 0, -1 (a client error: err says why), -2 (every download slot busy) or -3 (shutting down) */
int serve_fetch_url(const char *url, size_t max_bytes, unsigned char **out, size_t *out_len,
                    char *err);

/* Base64 (standard alphabet, padding optional, whitespace skipped); *out malloc'd. */
int serve_base64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len);

/* malloc'd JSON bodies */
char *serve_error_json(const serve_error *e);
/* n results (choices); tok for log-probabilities' token strings (may be NULL) */
char *serve_completion_json(const char *id, long created, const char *model, const glmv_result *r,
                            int n, const glmv_tokenizer *tok);
/* One SSE event "data: {...}\n\n" for a chunk of choice `index`; kind -1 = role chunk,
 * else the text's kind (reasoning goes in reasoning_content and reasoning); finish
 * non-NULL = that choice's last chunk; lp non-NULL = the log-probabilities of the token
 * that starts here. usage non-NULL: the usage-only chunk, summed over `index` results. */
char *serve_chunk_sse(const char *id, long created, const char *model, int index, int kind,
                      const char *text, size_t len, const char *finish, const glmv_result *usage,
                      const glmv_logprob *lp, const glmv_tokenizer *tok);
char *serve_models_json(const serve_engine *eng, long created);

/* The Responses API (serve_responses.c): the request as a chat request (malloc'd JSON). */
/* *shift: 1 when instructions became messages[0] (then messages[k] is input[k - 1]) */
int serve_responses_to_chat(const char *body, size_t len, char **chat_body, int *shift,
                            serve_error *e);
char *serve_response_json(const char *id, long created, const char *model, const glmv_result *r);
/* Streaming: the events for a piece of text (and the ones that open items before it),
 * then the closing ones; malloc'd "event: ...\ndata: ...\n\n" text. */
typedef struct {
    int started, open;          /* open: 0 none, 1 the reasoning item, 2 the message item */
    int message_index;          /* the message item's output_index + 1, 0 before it opens */
    int seq;                    /* sequence_number */
    char *reasoning;            /* the reasoning so far (its done event repeats it) */
    size_t n_reasoning;
} serve_resp_stream;
char *serve_response_delta(serve_resp_stream *rs, const char *id, long created, const char *model,
                           int kind, const char *text, size_t len);
char *serve_response_end(serve_resp_stream *rs, const char *id, long created, const char *model,
                         const glmv_result *r);
/* /v1/completions: the whole answer, and one SSE chunk (finish / usage as for chat) */
char *serve_text_completion_json(const char *id, long created, const char *model,
                                 const glmv_result *r, int n, const glmv_tokenizer *tok);
char *serve_text_chunk_sse(const char *id, long created, const char *model, int index,
                           const char *text, size_t len, const char *finish,
                           const glmv_result *usage, const glmv_logprob *lp,
                           const glmv_tokenizer *tok);

/* ------------------------------------------------------------------------ */
/* Jobs, queue, inference thread (serve_sched.c)                            */
/* ------------------------------------------------------------------------ */

typedef enum { JOB_QUEUED = 0, JOB_RUNNING, JOB_DONE } serve_job_state;

typedef struct serve_job serve_job;
struct serve_job {
    pthread_mutex_t mu;
    int refs;                   /* connection, scheduler, streaming response */
    serve_request req;
    char id[40];
    const char *model;          /* the name answered: the request's, else the served one */
    long created;
    serve_job_state state;
    atomic_int cancelled;       /* the client left, or shutdown */
    int client_gone;            /* the watch saw the socket closed */
    struct MHD_Connection *conn;/* NULL once the connection is gone */
    int suspended;              /* conn suspended, waiting for this job */
    int started_output;         /* an event or the end exists: the handler may answer */
    int failed;                 /* failed before any output: err holds the answer */
    serve_error err;
    char *out;                  /* pending SSE bytes not yet sent */
    size_t out_len, out_off, out_cap;
    int out_done;               /* the stream is complete after `out` */
    int n_events;
    glmv_result results[SERVE_MAX_CHOICES]; /* final results, one per choice (answer, usage) */
    int n_results;              /* results[0..n_results) are set */
    int have_result;            /* all req.n_choices of them */
    int choice;                 /* the choice being generated (events' index) */
    serve_resp_stream rs;       /* /v1/responses streaming state */
    int fetch_done, fetch_rc;   /* the media downloads of this request, off the HTTP threads */
    serve_error fetch_err;
    double t_arrive, t_start, t_first, t_end; /* ms */
    serve_job *qprev, *qnext;   /* queue links */
    serve_job *aprev, *anext;   /* all live jobs (disconnect watch) */
    void (*result_free)(glmv_result *r);
    int in_queue, in_all;
    uint64_t key;               /* the conversation's start (system prompt, first user turn):
                                   a slot whose cache holds it is preferred */
};

typedef struct {
    /* counters; read for /metrics under the scheduler lock */
    uint64_t by_status[10];     /* HTTP answers, by serve_status_codes[] (last: other) */
    uint64_t chat_requests, chat_stream, cancelled, rejected_full;
    uint64_t prompt_tokens, completion_tokens, image_tokens, cached_tokens, shared_tokens;
    double lat_sum_s, ttft_sum_s, queue_sum_s;
    uint64_t lat_count, ttft_count;
    uint64_t lat_buckets[12], ttft_buckets[12];
} serve_metrics;

extern const double serve_metric_bounds[12];
extern const int serve_status_codes[10];

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    serve_engine *eng;
    serve_job *qhead, *qtail;
    int qlen, qcap;
    int in_flight;
    serve_job *all;
    int stop;
    int n_workers;              /* inference threads, one per engine slot */
    pthread_t *workers;
    int *idle;                  /* per slot: waiting for a job */
    uint64_t *slot_key;         /* per slot: the key of the conversation in its cache */
    pthread_t watch_thread;
    serve_metrics m;
} serve_sched;

int serve_sched_start(serve_sched *s, serve_engine *eng, int queue_cap, char *err);
/* Cancel everything, resume every suspended connection, join the threads. */
void serve_sched_stop(serve_sched *s);
/* Requests queued or running (drain on SIGTERM waits for 0). */
int serve_sched_busy(serve_sched *s);

serve_job *serve_job_new(void);   /* refs = 1 */
void serve_job_unref(serve_job *j);
/* Queue a job (takes a scheduler ref). -1 when the queue is full. */
int serve_sched_submit(serve_sched *s, serve_job *j);
/* The connection is gone: drop it from the watch list and the queue. */
void serve_sched_detach(serve_sched *s, serve_job *j);
void serve_sched_count_status(serve_sched *s, int status);
/* Prometheus text; malloc'd. */
char *serve_metrics_text(serve_sched *s);

/* The HTTP answer to a failure of kind `code` (a glmv_errcode) with message msg. */
void serve_error_from_code(serve_error *e, int code, const char *msg);

/* Resume j->conn if it waits on j; call with j->mu held. */
void serve_job_wake_locked(serve_job *j);

/* ------------------------------------------------------------------------ */
/* Request deadlines (serve_guard.c)                                        */
/* ------------------------------------------------------------------------ */

typedef struct serve_guard serve_guard;

/* A thread that shuts down connections past their deadline: a request line and
 * headers within header_s, a body at 16 KiB/s on average after that, the next
 * request begun within idle_s of the last answer. NULL: out of memory. */
serve_guard *serve_guard_start(double idle_s, double header_s);
void serve_guard_stop(serve_guard *g); /* after MHD_stop_daemon */
/* libmicrohttpd callbacks: MHD_OPTION_NOTIFY_CONNECTION and MHD_OPTION_URI_LOG_CALLBACK
 * (the request line is in), both with the guard as their closure */
void serve_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code);
void *serve_guard_uri(void *cls, const char *uri, struct MHD_Connection *conn);
void serve_guard_headers(serve_guard *g, struct MHD_Connection *conn); /* headers in */
void serve_guard_body(serve_guard *g, struct MHD_Connection *conn, size_t received);
void serve_guard_busy(serve_guard *g, struct MHD_Connection *conn);    /* request whole */
void serve_guard_waiting(serve_guard *g, struct MHD_Connection *conn); /* answer sent */
unsigned long long serve_guard_timed_out(serve_guard *g); /* connections closed at a deadline */
int serve_guard_open(serve_guard *g);                     /* connections open now */

/* ------------------------------------------------------------------------ */
/* The page: web/ files embedded at build time (build/CONFIG/gen/web_assets.c) */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *path, *mime;    /* "/index.html", "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t len;
} serve_asset;

extern const serve_asset serve_assets[]; /* ends with a NULL path */

#endif
