/* serve_engine.c -- what `glmv serve` generates with.
 *
 * "glmv": a checkpoint loaded by the library, one session kept from request to
 * request: glmv_generate keeps the part of the cache a new prompt shares with
 * the last one (a conversation's earlier turns and their images, compared by
 * ids and pixel hashes) and recomputes the rest, which gives the same tokens
 * as a fresh session (test_parity prefix_reuse) at a fraction of the time to
 * first token (up to the summation order of kernels sized for fewer rows).
 * A failed request leaves the session empty; --no-prompt-cache empties it
 * before every request.
 * "echo:": no model at all; it streams back a fixed reasoning and answer built
 * from the last user message, a few bytes per "token", so the HTTP, SSE,
 * queue and cancellation paths can be tested quickly (also under sanitizers)
 * without weights. Directives in the user text steer it for tests:
 * [[delay=MS]] per-token delay, [[tokens=N]] N extra answer tokens,
 * [[fail]] an error before the first token, [[code]] a code block.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

/* ------------------------------------------------------------------------ */
/* The library                                                              */
/* ------------------------------------------------------------------------ */

/* A token (or a prompt's next chunk) waiting for the next batched step, on its generation
 * thread's stack. */
typedef struct {
    glmv_gen *q;
    int done, rc;
    glmv_errcode code;          /* the kind of a failed step (recorded on the thread that ran it) */
    char *err;
} step_req;

typedef struct {
    glmv_model *model;
    glmv_session **sess;
    int n;
    glmv_batch *batch;
    /* the step rendezvous: every slot's thread with a generation under way (active) hands its
     * token, or its prompt's next chunk, in; the last to arrive runs one batched pass for all
     * of them and wakes the rest */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    step_req **pending;
    int n_pending, n_active, running;
    uint64_t steps, rows;
    int last_batch;
} lib_impl;

static int lib_step(lib_impl *li, glmv_gen *q, char *err) {
    step_req me = {q, 0, 0, GLMV_E_OK, err};
    pthread_mutex_lock(&li->mu);
    li->pending[li->n_pending++] = &me;
    while (!me.done) {
        if (!li->running && li->n_pending >= li->n_active) { /* everyone is in: run the step */
            step_req *take[256];
            glmv_gen *gens[256];
            int n = li->n_pending;
            for (int i = 0; i < n; i++) {
                take[i] = li->pending[i];
                gens[i] = take[i]->q;
            }
            li->n_pending = 0;
            li->running = 1;
            pthread_mutex_unlock(&li->mu);
            char e2[GLMV_ERR_SIZE] = "";
            int rc = glmv_gen_eval_batch(li->batch, gens, n, e2);
            glmv_errcode code = rc ? glmv_last_error() : GLMV_E_OK;
            pthread_mutex_lock(&li->mu);
            for (int i = 0; i < n; i++) {
                take[i]->rc = rc;
                take[i]->code = code;
                if (rc) snprintf(take[i]->err, GLMV_ERR_SIZE, "%s", e2);
                take[i]->done = 1;
            }
            li->running = 0;
            li->steps++;
            li->rows += (uint64_t)n;
            li->last_batch = n;
            pthread_cond_broadcast(&li->cv);
        } else {
            pthread_cond_wait(&li->cv, &li->mu);
        }
    }
    pthread_mutex_unlock(&li->mu);
    return me.rc ? (me.code ? (int)me.code : GLMV_E_INTERNAL) : 0;
}

static void lib_active(lib_impl *li, int d) {
    pthread_mutex_lock(&li->mu);
    li->n_active += d;
    pthread_cond_broadcast(&li->cv); /* one fewer to wait for: the step may be complete */
    pthread_mutex_unlock(&li->mu);
}

/* glmv_generate, with each token evaluated in the batched step of all running slots */
static int lib_generate(serve_engine *e, int slot, const glmv_message *msgs, int n_msgs,
                        const char *raw, const void *prepared, const glmv_sampling *sp,
                        glmv_callback cb, void *user, glmv_result *out, char *err) {
    lib_impl *li = e->impl;
    glmv_session *s = li->sess[slot];
    memset(out, 0, sizeof *out);
    if (e->fresh_sessions) glmv_session_reset(s);
    glmv_gen *q = NULL;
    /* a prepared prompt (every request: serve prepares them on its HTTP threads) is left to the
     * batched passes, which take it in chunks beside the other slots' tokens */
    int rc = prepared ? glmv_gen_begin_prompt(&q, s, prepared, sp, cb, user, err)
             : raw    ? glmv_gen_start_raw(&q, s, raw, sp, cb, user, err)
                      : glmv_gen_start(&q, s, msgs, n_msgs, sp, cb, user, err);
    if (rc) {
        glmv_session_reset(s);
        return glmv_last_error() ? (int)glmv_last_error() : GLMV_E_INTERNAL;
    }
    lib_active(li, +1);
    int r = 0, code = 0;
    /* a pass evaluates its prompt's next chunk or its token; one that could not be done (its
     * prompt waits for rows or memory, or it was preempted) is handed in again */
    while (!code) {
        if (!glmv_gen_pending(q) && (r = glmv_gen_step(q, err)) != 0) break;
        code = lib_step(li, q, err);
    }
    if (code) r = -1;
    if (r < 0 && !code) code = glmv_last_error() ? (int)glmv_last_error() : GLMV_E_INTERNAL;
    lib_active(li, -1);
    if (r < 0) {
        glmv_gen_free(q);
        glmv_session_reset(s);
        return code;
    }
    if (glmv_gen_finish(q, out, err)) return GLMV_E_NOMEM;
    return 0;
}

/* the prompt stage, on an HTTP or download thread: media decoded before the request queues */
static int lib_prepare(serve_engine *e, const glmv_message *msgs, int n_msgs, const char *raw,
                       void **out, char *err) {
    lib_impl *li = e->impl;
    glmv_prompt *p = NULL;
    int rc = raw ? glmv_prompt_new_raw(&p, li->model, raw, e->n_ctx, err)
                 : glmv_prompt_new(&p, li->model, msgs, n_msgs, e->n_ctx, err);
    *out = p;
    return rc ? (glmv_last_error() ? (int)glmv_last_error() : GLMV_E_INTERNAL) : 0;
}

static void lib_prepared_free(void *p) { glmv_prompt_free(p); }

static void lib_stats(serve_engine *e, uint64_t *steps, uint64_t *rows, int *last_batch,
                      int64_t *kv_tokens, int64_t *kv_capacity, glmv_kv_stats *kv) {
    lib_impl *li = e->impl;
    pthread_mutex_lock(&li->mu);
    *steps = li->steps;
    *rows = li->rows;
    *last_batch = li->last_batch;
    pthread_mutex_unlock(&li->mu);
    /* tokens held in the slots' caches (a running request's and what finished requests left
     * for the next turn of their conversation), read without the slots' threads: a gauge */
    *kv_tokens = *kv_capacity = 0;
    for (int i = 0; i < li->n; i++) {
        *kv_tokens += glmv_session_pos(li->sess[i]);
        *kv_capacity += glmv_session_n_ctx(li->sess[i]);
    }
    glmv_model_kv_stats(li->model, kv);
}

static void lib_free(serve_engine *e) {
    lib_impl *li = e->impl;
    if (li) {
        for (int i = 0; i < li->n; i++) glmv_session_free(li->sess[i]);
        free(li->sess);
        free(li->pending);
        glmv_batch_free(li->batch);
        pthread_mutex_destroy(&li->mu);
        pthread_cond_destroy(&li->cv);
        glmv_model_free(li->model);
        free(li);
    }
    free(e);
}

static int lib_open(serve_engine *e, const cli_opts *o, int n_slots, char *err) {
    const char *dir = o->model_dir;
    lib_impl *li = calloc(1, sizeof *li);
    if (!li) return snprintf(err, GLMV_ERR_SIZE, "out of memory"), -1;
    pthread_mutex_init(&li->mu, NULL);
    pthread_cond_init(&li->cv, NULL);
    e->impl = li;
    e->free = lib_free;
    e->generate = lib_generate;
    e->prepare = lib_prepare;
    e->prepared_free = lib_prepared_free;
    e->stats = lib_stats;
    e->result_free = glmv_result_free;
    int fit = n_slots < 0; /* the default: as many as fit, up to -n_slots */
    if (fit) n_slots = -n_slots;
    if (n_slots > 256) return snprintf(err, GLMV_ERR_SIZE, "--parallel %d: at most 256", n_slots), -1;
    if (glmv_model_load(&li->model, dir, &o->mp, err)) return -1;
    glmv_kv_stats kv;
    glmv_model_kv_stats(li->model, &kv);
    /* the default on a GPU: many sequences, as the KV budget admits them (a cache takes what its
     * tokens take; past the budget a new request waits and the newest is preempted) */
    if (fit && kv.grows && kv.budget > 0 && o->mp.kv_memory == 0 && n_slots < 64) n_slots = 64;
    li->sess = calloc((size_t)n_slots, sizeof *li->sess);
    li->pending = calloc((size_t)n_slots, sizeof *li->pending);
    if (!li->sess || !li->pending) return snprintf(err, GLMV_ERR_SIZE, "out of memory"), -1;
    for (; li->n < n_slots; li->n++)
        if (glmv_session_new(&li->sess[li->n], li->model, o->n_ctx, err)) {
            if (fit && li->n > 0) { /* a smaller GPU: fewer sequences rather than no server */
                fprintf(stderr, "glmv serve: note: %d sequences of %d tokens fit, not %d (%s); "
                                "--parallel N and --ctx N choose\n",
                        li->n, glmv_session_n_ctx(li->sess[0]), n_slots, err);
                n_slots = li->n;
                break;
            }
            char e2[GLMV_ERR_SIZE];
            snprintf(e2, sizeof e2, "%s", err);
            snprintf(err, GLMV_ERR_SIZE, "--parallel %d: session %d: %.400s", n_slots, li->n + 1, e2);
            return -1;
        }
    /* the slots share their cached prefixes (a system prompt, an image, a conversation
     * that another slot served), unless every request is to start from an empty cache */
    for (int i = 0; i < li->n && !e->fresh_sessions; i++)
        if (glmv_session_share(li->sess[i], 1, err)) return -1;
    if (glmv_batch_new(&li->batch, li->model, n_slots, err)) return -1;
    glmv_model_info wi;
    glmv_model_get_info(li->model, &wi);
    if (!o->no_warmup && strncmp(wi.device, "cpu", 3)) { /* a GPU's lazy start-up, before the first request */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        char e2[GLMV_ERR_SIZE];
        int wrc = glmv_model_warmup(li->model, 1120, 1120, e2);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (wrc) /* e.g. no room beside the slots' caches: the first request loads what it needs */
            fprintf(stderr, "glmv serve: warning: warm-up run failed (%s); serving without it\n", e2);
        else
            fprintf(stderr, "glmv serve: warmed up in %.0f ms\n",
                    (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    }
    e->n_slots = n_slots;
    e->n_ctx = glmv_session_n_ctx(li->sess[0]);
    glmv_model_info info;
    glmv_model_get_info(li->model, &info);
    const char *name = info.name && info.name[0] ? info.name : NULL;
    if (!name) {
        name = strrchr(dir, '/');
        name = name && name[1] ? name + 1 : dir;
    }
    snprintf(e->model_id, sizeof e->model_id, "%s", name);
    snprintf(e->runs_on, sizeof e->runs_on, "%s, precision %s (%s)", info.device, info.precision,
             info.precision_why);
    cli_opts_sampling(o, li->model, &e->defaults);
    e->tok = glmv_model_tokenizer(li->model);
    e->vocab = info.vocab;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The echo engine                                                          */
/* ------------------------------------------------------------------------ */

typedef struct {
    int delay_ms;
} echo_impl;

static void sleep_ms(int ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int directive(const char *text, const char *name, int dflt) {
    char key[32];
    snprintf(key, sizeof key, "[[%s=", name);
    const char *p = strstr(text, key);
    return p ? atoi(p + strlen(key)) : dflt;
}

typedef struct {
    char *p;
    size_t len, cap;
} ebuf;

static void eb_add(ebuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) return;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void eb_str(ebuf *b, const char *s) { eb_add(b, s, strlen(s)); }

/* Stream `text` in pieces of about 4 bytes, cut at UTF-8 boundaries. Returns
 * 1 when generation must end (cancelled, length, stop string). */
static int echo_stream(const char *text, glmv_text_kind kind, const glmv_sampling *sp, int delay,
                       glmv_callback cb, void *user, glmv_result *out, ebuf *acc,
                       const char **finish) {
    size_t n = strlen(text), i = 0;
    while (i < n) {
        if (sp->max_new_tokens > 0 && out->completion_tokens >= sp->max_new_tokens) {
            *finish = "length";
            return 1;
        }
        size_t j = i + 4 < n ? i + 4 : n;
        while (j < n && ((unsigned char)text[j] & 0xC0) == 0x80) j++;
        if (kind == GLMV_TEXT_CONTENT) {
            for (int s = 0; s < sp->n_stop; s++) { /* a stop string ends the answer before it */
                const char *hit = strstr(text + i, sp->stop[s]);
                if (hit && (size_t)(hit - text) < j) {
                    j = (size_t)(hit - text);
                    if (j > i) {
                        glmv_event ev = {0, text + i, j - i, kind, 1, NULL};
                        eb_add(acc, text + i, j - i);
                        out->completion_tokens++;
                        if (cb && cb(user, &ev)) { *finish = "cancelled"; return 1; }
                    }
                    *finish = "stop";
                    return 1;
                }
            }
        }
        sleep_ms(delay);
        glmv_event ev = {(int32_t)(out->completion_tokens + 1000), text + i, j - i, kind, 1, NULL};
        eb_add(acc, text + i, j - i);
        out->completion_tokens++;
        if (cb && cb(user, &ev)) {
            *finish = "cancelled";
            return 1;
        }
        i = j;
    }
    return 0;
}

static int echo_generate(serve_engine *e, int slot, const glmv_message *msgs, int n_msgs,
                         const char *raw, const void *prepared, const glmv_sampling *sp,
                         glmv_callback cb, void *user, glmv_result *out, char *err) {
    (void)prepared; /* the echo engine has no prompt stage of its own */
    if (raw) { /* a raw prompt is echoed as a user message would be */
        glmv_part p = {.kind = GLMV_PART_TEXT, .text = raw};
        glmv_message m = {"user", &p, 1, NULL};
        return echo_generate(e, slot, &m, 1, NULL, NULL, sp, cb, user, out, err);
    }
    echo_impl *ei = e->impl;
    memset(out, 0, sizeof *out);
    const char *last = "";
    int n_img = 0, n_vid = 0;
    size_t prompt_bytes = 0;
    for (int m = 0; m < n_msgs; m++)
        for (int p = 0; p < msgs[m].n_parts; p++) {
            const glmv_part *pt = &msgs[m].parts[p];
            if (pt->kind == GLMV_PART_TEXT) {
                prompt_bytes += strlen(pt->text);
                if (!strcmp(msgs[m].role, "user")) last = pt->text;
            } else {
                if (pt->data && pt->size < 16) {
                    snprintf(err, GLMV_ERR_SIZE, "cannot decode %s: %zu bytes is truncated data",
                             pt->kind == GLMV_PART_IMAGE ? "image" : "video", pt->size);
                    return GLMV_E_MEDIA;
                }
                n_img += pt->kind == GLMV_PART_IMAGE;
                n_vid += pt->kind == GLMV_PART_VIDEO;
            }
        }
    out->image_tokens = 64 * n_img + 256 * n_vid;
    out->prompt_tokens = (int)(prompt_bytes / 4) + 8 + out->image_tokens;
    if (strstr(last, "[[fail]]")) {
        snprintf(err, GLMV_ERR_SIZE, "echo engine: failure requested by [[fail]]");
        return GLMV_E_INTERNAL;
    }
    if (out->prompt_tokens + (sp->max_new_tokens > 0 ? sp->max_new_tokens : 1) > e->n_ctx) {
        snprintf(err, GLMV_ERR_SIZE,
                 "prompt of %d tokens plus max_new_tokens %d exceeds the context of %d tokens",
                 out->prompt_tokens, sp->max_new_tokens, e->n_ctx);
        return GLMV_E_CONTEXT;
    }
    int delay = directive(last, "delay", ei->delay_ms);
    int extra = directive(last, "tokens", 0);
    ebuf think = {0}, answer = {0}, src = {0};
    char head[160];
    snprintf(head, sizeof head, "The user sent %d image(s) and %d video(s) and wrote: ", n_img,
             n_vid);
    eb_str(&src, head);
    eb_str(&src, last);
    const char *finish = "stop";
    ebuf ans = {0};
    eb_str(&ans, "**Echo:** ");
    eb_str(&ans, last);
    if (strstr(last, "[[code]]")) eb_str(&ans, "\n\n```c\nint main(void) {\n    return 0; // ok\n}\n```\n");
    for (int i = 0; i < extra && i < 1000000; i++) eb_str(&ans, " tok");
    if (sp->keep_tags) { /* skip_special_tokens: false: one text, its tags in it */
        ebuf all = {0};
        eb_str(&all, "<think>");
        eb_str(&all, src.p);
        eb_str(&all, "</think><answer>");
        eb_str(&all, ans.p);
        eb_str(&all, "</answer>");
        echo_stream(all.p, GLMV_TEXT_CONTENT, sp, delay, cb, user, out, &answer, &finish);
        free(all.p);
    } else if (!echo_stream(src.p, GLMV_TEXT_REASONING, sp, delay, cb, user, out, &think, &finish)) {
        echo_stream(ans.p, GLMV_TEXT_CONTENT, sp, delay, cb, user, out, &answer, &finish);
    }
    free(ans.p);
    free(src.p);
    out->reasoning = think.p ? think.p : strdup("");
    out->content = answer.p ? answer.p : strdup("");
    out->n_tokens = out->completion_tokens;
    out->token_ids = calloc((size_t)out->n_tokens + 1, sizeof *out->token_ids);
    out->finish_reason = finish;
    (void)slot;
    return 0;
}

static void echo_free(serve_engine *e) {
    free(e->impl);
    free(e);
}

static int echo_open(serve_engine *e, const char *spec, int n_slots, char *err) {
    echo_impl *ei = calloc(1, sizeof *ei);
    if (!ei) return snprintf(err, GLMV_ERR_SIZE, "out of memory"), -1;
    e->impl = ei;
    e->free = echo_free;
    e->generate = echo_generate;
    e->result_free = glmv_result_free; /* the echo result is malloc'd the same way */
    e->n_slots = n_slots;
    e->n_ctx = 4096;
    snprintf(e->model_id, sizeof e->model_id, "echo");
    snprintf(e->runs_on, sizeof e->runs_on, "no model (echo engine)");
    for (const char *p = spec; p && *p;) {
        if (!strncmp(p, "delay_ms=", 9)) ei->delay_ms = atoi(p + 9);
        else if (!strncmp(p, "ctx=", 4)) e->n_ctx = atoi(p + 4);
        else return snprintf(err, GLMV_ERR_SIZE, "echo engine: unknown option '%s'", p), -1;
        p = strchr(p, ',');
        if (p) p++;
    }
    if (e->n_ctx < 16) return snprintf(err, GLMV_ERR_SIZE, "echo engine: ctx must be >= 16"), -1;
    memset(&e->defaults, 0, sizeof e->defaults);
    e->defaults.temperature = 1.0f;
    e->defaults.top_p = 1.0f;
    e->defaults.repetition_penalty = 1.0f;
    return 0;
}

int serve_engine_open(serve_engine **out, const cli_opts *o, int n_slots, int fresh_sessions, char *err) {
    const char *dir = o->model_dir;
    serve_engine *e = calloc(1, sizeof *e);
    if (!e) return snprintf(err, GLMV_ERR_SIZE, "out of memory"), -1;
    e->fresh_sessions = fresh_sessions;
    int rc = !strncmp(dir, "echo:", 5) ? echo_open(e, dir + 5, n_slots < 0 ? -n_slots : n_slots, err)
                                       : lib_open(e, o, n_slots, err);
    if (!rc && !strncmp(dir, "echo:", 5) && o->max_tokens) e->defaults.max_new_tokens = o->max_tokens;
    if (rc) {
        if (e->free) e->free(e);
        else free(e);
        return -1;
    }
    *out = e;
    return 0;
}
