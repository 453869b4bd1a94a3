/* bench.c -- `glmv bench`: load time, prefill and decode speed at given
 * context lengths, vision tower time for given image sizes, peak memory, and
 * (--membw) the plain multi-thread memory read bandwidth decode is bound by.
 *
 * Runs on a checkpoint (-m DIR) or on random BF16 weights of the 9B shape
 * (--synthetic [--layers N]); with fewer layers it also states figures per
 * layer and their extrapolation to the full 40 layers (see per_layer below).
 * Uses only the public API (glmv.h). --json prints one object on stdout.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *bench_help =
    "usage: glmv bench [-m DIR | --synthetic [--layers N]] [options]\n"
    "\n"
    "  -m DIR            a checkpoint folder, or llama.cpp's GGUF text model (FILE.gguf, or a\n"
    "                    folder holding one .gguf and one mmproj*.gguf)\n"
    "  --mmproj FILE     the GGUF model's vision tower\n"
    "  --tokenizer DIR   with --synthetic: read messages through DIR's tokenizer.json (the\n"
    "                    checkpoint's tokenizer files alone), which --image and --video need\n"
    "  --synthetic       random BF16 weights of the 9B shape (no download)\n"
    "  --layers N        decoder layers of the synthetic model (1..40, default 2)\n"
    "  -t THREADS        CPU threads (default: all cores)\n"
    "  --prompt N        prompt tokens for the prefill figure (default 512; 0 = skip)\n"
    "  --prompt-reps N   prefill the prompt N times (default 2): the figure is the median of\n"
    "                    all but the first (warm, as llama-bench's after its warm-up run); the\n"
    "                    first, which also pays for touching fresh buffers, is reported apart\n"
    "  --decode N        tokens generated per decode figure (default 16)\n"
    "  --ctx A,B,...     also decode after filling the cache to these lengths\n"
    "  --vision HxW,...  time the vision tower on these image sizes (multiples of 28)\n"
    "  --image FILE      time to first token for this image file and --question, as a user\n"
    "                    waits for it: file decoding and preprocessing, vision tower, prefill,\n"
    "                    the first token, each stage reported (a checkpoint, or --synthetic\n"
    "                    with --tokenizer;\n"
    "                    three requests on an empty cache: the first, and the faster of the\n"
    "                    other two)\n"
    "  --video FILE      the same for a video file (its frames decoded and sampled as the\n"
    "                    checkpoint's video processor says; decoding is preprocessing's time)\n"
    "  --question TEXT   the question asked about --image or --video (default \"Describe this\n"
    "                    image.\" or \"Describe this video.\")\n"
    "  --warmup          first a warm-up run, as glmv serve makes on a GPU (glmv_model_warmup:\n"
    "                    the vision tower on 1120x1120, a prefill, decode steps); its time is\n"
    "                    reported, and the first request's time after it\n"
    "  --device cpu|cuda where to run (default: cuda when built with it and present)\n"
    "  --precision P     f32 or bf16 GEMM inputs (default: $GLMV_PRECISION, else f32 on the\n"
    "                    CPU, bf16 on CUDA)\n"
    "  --quant Q         q8_0, q4_0 or q4_k_m: the decoder's weights quantized at load\n"
    "  -tp, --tensor-parallel N  the decoder split over N GPUs (NCCL; GLM-4.1V allows 1 or 2)\n"
    "  --concurrency A,B,...  decode A (then B, ...) sequences together, each after a prefill\n"
    "                    of --prompt tokens: aggregate and per-stream tokens/s, time to first\n"
    "                    token (prefills one after another, as a server admits them)\n"
    "  --requests N      with --concurrency C: serve N requests of --prompt random tokens and\n"
    "                    --decode new tokens each, C at a time, admitted as slots free (all\n"
    "                    arrive at once): generated tokens/s with the prefills on the clock, and\n"
    "                    each request's time to first token\n"
    "  --schedule S      how --requests runs prompts: mixed (default: in chunks in the passes\n"
    "                    that carry the running streams' tokens), separate (each prefilled\n"
    "                    alone while the streams wait), or mixed,separate (both, in turn)\n"
    "  --membw           measure the plain memory read bandwidth of THREADS threads\n"
    "  --json            one JSON object on stdout\n";

/* ------------------------------------------------------------------------ */
/* memory bandwidth                                                         */
/* ------------------------------------------------------------------------ */

typedef struct {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} bw_arg;

static void *bw_read(void *arg) {
    bw_arg *a = arg;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= a->n; i += 4) {
        s0 += a->p[i];
        s1 += a->p[i + 1];
        s2 += a->p[i + 2];
        s3 += a->p[i + 3];
    }
    a->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/* Best of 5 passes of n_threads threads each summing its share of a 1 GiB
 * buffer; GB/s (1e9 bytes). */
static double membw(int n_threads) {
    size_t bytes = (size_t)1 << 30, n = bytes / 8;
    uint64_t *buf = malloc(bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = i;
    double best = 0;
    pthread_t th[256];
    bw_arg args[256];
    if (n_threads > 256) n_threads = 256;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ms();
        for (int t = 0; t < n_threads; t++) {
            args[t].p = buf + n / n_threads * t;
            args[t].n = n / n_threads;
            if (t == 0 || pthread_create(&th[t], NULL, bw_read, &args[t]) != 0) {
                if (t) args[t].n = 0;
            }
        }
        bw_read(&args[0]);
        for (int t = 1; t < n_threads; t++)
            if (args[t].n) pthread_join(th[t], NULL);
        double gbs = bytes / ((now_ms() - t0) * 1e6);
        if (gbs > best) best = gbs;
    }
    volatile uint64_t sink = args[0].sum;
    (void)sink;
    free(buf);
    return best;
}

/* ------------------------------------------------------------------------ */
/* the benchmark                                                            */
/* ------------------------------------------------------------------------ */

#define MAX_LIST 16

typedef struct {
    int ctx, tokens;
    double fill_ms;             /* prefill of the ctx tokens before it */
    double ms_per_token;
} decode_fig;

typedef struct {
    int h, w, tokens;
    double ms;
} vision_fig;

static int parse_list(const char *flag, const char *s, int *out, int max) {
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1 << 24 || n == max || (*end && *end != ',')) {
            fprintf(stderr, "glmv: %s expects a list of positive integers, got '%s'\n", flag, s);
            return -1;
        }
        out[n++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return n;
}

static int parse_sizes(const char *s, vision_fig *out, int max) {
    int n = 0;
    while (*s) {
        int h, w, used = 0;
        if (n == max || sscanf(s, "%dx%d%n", &h, &w, &used) != 2 || h < 1 || w < 1 ||
            (s[used] && s[used] != ',')) {
            fprintf(stderr, "glmv: --vision expects sizes like 448x448,1120x1120, got '%s'\n", s);
            return -1;
        }
        if (h % 28 || w % 28) { /* checked before the (slow) load, not after it */
            fprintf(stderr, "glmv: --vision: %dx%d is not a multiple of 28 (patch 14 x merge 2)\n", h, w);
            return -1;
        }
        out[n].h = h;
        out[n].w = w;
        n++;
        s += used + (s[used] == ',');
    }
    return n;
}

static uint32_t rng_state = 2463534242u;
static int32_t rand_id(int vocab) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    /* stay clear of the special ids at the top of the vocabulary */
    return (int32_t)(rng_state % (uint32_t)(vocab > 1000 ? vocab - 1000 : vocab));
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* median of n values (sorts them) */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* fill the cache with n random tokens (one call: the library chunks it) */
static int fill(glmv_session *s, int n, int vocab, double *ms, char *err) {
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    if (!ids) {
        snprintf(err, GLMV_ERR_SIZE, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) ids[i] = rand_id(vocab);
    double t0 = now_ms();
    int rc = glmv_session_eval(s, ids, n, NULL, err);
    *ms = now_ms() - t0;
    free(ids);
    return rc;
}

/* n greedy tokens one after another, each picked as a generation picks it: with b (a batch of one:
 * a model on a GPU, not split) from the best logit found on the device, else from the whole row
 * read to the host */
static int decode(glmv_session *s, glmv_batch *b, int n, int vocab, float *logits, double *ms, char *err) {
    int32_t id = rand_id(vocab);
    const int one = 1;
    glmv_top top = {.k = 1}, *tp = &top;
    double t0 = now_ms();
    for (int i = 0; i < n; i++) {
        if (b) {
            if (glmv_session_eval_top(b, &s, &id, &one, 1, &tp, err)) return -1;
            id = top.id[0];
            continue;
        }
        if (glmv_session_eval(s, &id, 1, logits, err)) return -1;
        int best = 0; /* greedy, as generation would */
        for (int v = 1; v < vocab; v++)
            if (logits[v] > logits[best]) best = v;
        id = best;
    }
    *ms = now_ms() - t0;
    return 0;
}

/* s as a JSON string */
static void json_str(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

/* time to first token for an image or video file and a question, as glmv run or a server request
 * takes it (the prompt stage, the vision tower, the prefill, the first token picked), on
 * an emptied cache each time; the stages as the library reports them */
#define TTFT_REPS 3
typedef struct {
    int prompt_tokens, image_tokens;
    double first_ms, ms, preprocess_ms, vision_ms, prefill_ms;
} ttft_fig;

static int ttft(glmv_model *m, glmv_part_kind kind, const char *path, const char *question, ttft_fig *f,
                char *err) {
    glmv_part parts[2];
    memset(parts, 0, sizeof parts);
    parts[0].kind = kind;
    parts[0].path = path;
    parts[1].kind = GLMV_PART_TEXT;
    parts[1].text = question;
    glmv_message msg = {"user", parts, 2, NULL};
    /* the session: the default context for an image; a video's prompt and its first token (a
     * minute of video is ~28,000 tokens, past the default; counted by one untimed prompt stage) */
    int n_ctx = 0;
    if (kind == GLMV_PART_VIDEO) {
        glmv_prompt *p = NULL;
        if (glmv_prompt_new(&p, m, &msg, 1, 0, err)) return -1;
        n_ctx = glmv_prompt_tokens(p) + 1;
        glmv_prompt_free(p);
    }
    glmv_session *s = NULL;
    if (glmv_session_new(&s, m, n_ctx, err)) return -1;
    glmv_sampling sp;
    glmv_sampling_default(m, &sp);
    sp.do_sample = 0;
    sp.max_new_tokens = 1;
    double t[TTFT_REPS];
    glmv_result res[TTFT_REPS];
    memset(res, 0, sizeof res);
    int rc = 0;
    for (int r = 0; r < TTFT_REPS && !rc; r++) {
        glmv_session_reset(s);
        double t0 = now_ms();
        rc = glmv_generate(s, &msg, 1, &sp, NULL, NULL, &res[r], err);
        t[r] = now_ms() - t0;
    }
    if (!rc) {
        /* the warm figure: the faster request after the first, with its own stages */
        int best = 1;
        for (int r = 2; r < TTFT_REPS; r++)
            if (t[r] < t[best]) best = r;
        memset(f, 0, sizeof *f);
        f->prompt_tokens = res[best].prompt_tokens;
        f->image_tokens = res[best].image_tokens;
        f->first_ms = t[0];
        f->ms = t[best];
        f->preprocess_ms = res[best].preprocess_ms;
        f->vision_ms = res[best].vision_ms;
        f->prefill_ms = res[best].prefill_ms;
    }
    for (int r = 0; r < TTFT_REPS; r++) glmv_result_free(&res[r]);
    glmv_session_free(s);
    return rc;
}

typedef struct {
    int streams, ctx, tokens;
    double prefill_ms;          /* all the prompts, one after another */
    double ttft_p50_ms, ttft_max_ms; /* prefill done, as each stream waits for the ones before */
    double ms_per_step;         /* one token for every stream */
    double eval_ms_per_step;    /* of which the batched forward (logits on the host) */
} conc_fig;

typedef struct {
    float **lg;
    int32_t *ids;
    int i0, i1, vocab;
} pick_arg;

static void *pick_main(void *p) {
    pick_arg *a = p;
    for (int i = a->i0; i < a->i1; i++) {
        const float *l = a->lg[i];
        /* the first index of the largest value, in two passes the compiler vectorizes (one
         * compare against a running best index does not) */
        float mx = l[0];
        for (int v = 1; v < a->vocab; v++) mx = l[v] > mx ? l[v] : mx;
        int best = 0;
        while (best < a->vocab - 1 && l[best] != mx) best++;
        a->ids[i] = best;
    }
    return NULL;
}

/* the greedy pick of n streams, spread over up to 16 threads (glmv serve samples each stream
 * on its own thread: the bench should not charge the engine for doing it one by one) */
static void pick_all(float **lg, int32_t *ids, int n, int vocab) {
    enum { T = 16 };
    pthread_t th[T];
    pick_arg args[T];
    int nt = n < T ? n : T, started[T] = {0};
    if (n <= 0) return;
    for (int t = 0; t < nt; t++) {
        args[t] = (pick_arg){lg, ids, n * t / nt, n * (t + 1) / nt, vocab};
        if (t > 0) started[t] = pthread_create(&th[t], NULL, pick_main, &args[t]) == 0;
    }
    pick_main(&args[0]);
    for (int t = 1; t < nt; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else pick_main(&args[t]);
    }
}

/* The greedy picks read as each row's best logit, found on the backend (glmv_session_eval_top), as
 * glmv serve's generations read them; GLMV_WHOLE_LOGITS=1: every row read whole and the maximum
 * found on the host (as before, to compare). */
static int picks_on_backend(void) {
    const char *e = getenv("GLMV_WHOLE_LOGITS");
    return !(e && atoi(e) > 0);
}

/* n sessions, each filled with `prompt` random tokens, then `steps` greedy decode steps of
 * all of them in one batched pass each */
static int concurrency(glmv_model *m, int vocab, int n, int prompt, int steps, conc_fig *f, char *err) {
    glmv_session **ss = calloc((size_t)n, sizeof *ss);
    float **lg = calloc((size_t)n, sizeof *lg);
    int32_t *ids = calloc((size_t)n, sizeof *ids);
    double *ttft = calloc((size_t)n, sizeof *ttft);
    glmv_top *tops = calloc((size_t)n, sizeof *tops);
    int on_backend = picks_on_backend();
    glmv_top **tp = on_backend ? calloc((size_t)n, sizeof *tp) : NULL;
    int *ones = calloc((size_t)n, sizeof *ones);
    glmv_batch *b = NULL;
    int rc = -1;
    if (!ss || !lg || !ids || !ttft || !tops || (on_backend && !tp) || !ones) {
        snprintf(err, GLMV_ERR_SIZE, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        tops[i].k = 1;
        if (tp) tp[i] = &tops[i];
        ones[i] = 1;
    }
    if (glmv_batch_new(&b, m, n, err)) goto done;
    memset(f, 0, sizeof *f);
    f->streams = n;
    f->ctx = prompt;
    f->tokens = steps;
    for (int i = 0; i < n; i++) {
        lg[i] = glmv_logits_new(m); /* page-locked on a GPU, as glmv serve's */
        if (!lg[i]) {
            snprintf(err, GLMV_ERR_SIZE, "out of memory");
            goto done;
        }
        if (glmv_session_new(&ss[i], m, prompt + steps + 2, err)) goto done;
        double ms;
        if (prompt > 0 && fill(ss[i], prompt, vocab, &ms, err)) goto done;
        f->prefill_ms += prompt > 0 ? ms : 0;
        ttft[i] = f->prefill_ms;
        ids[i] = rand_id(vocab);
    }
    qsort(ttft, (size_t)n, sizeof *ttft, cmp_double);
    f->ttft_p50_ms = ttft[(n - 1) / 2];
    f->ttft_max_ms = ttft[n - 1];
    double t0 = now_ms(), te = 0;
    for (int t = 0; t < steps; t++) {
        double e0 = now_ms();
        if (tp) {
            if (glmv_session_eval_top(b, ss, ids, ones, n, tp, err)) goto done;
            te += now_ms() - e0;
            for (int i = 0; i < n; i++) ids[i] = tops[i].id[0];
            continue;
        }
        if (glmv_session_eval_batch(b, ss, ids, n, lg, err)) goto done;
        te += now_ms() - e0;
        pick_all(lg, ids, n, vocab); /* greedy, each stream on a thread of its own, as serve does */
    }
    f->ms_per_step = steps > 0 ? (now_ms() - t0) / steps : 0;
    f->eval_ms_per_step = steps > 0 ? te / steps : 0;
    rc = 0;
done:
    for (int i = 0; i < n; i++) {
        if (ss) glmv_session_free(ss[i]);
        if (lg) glmv_logits_free(m, lg[i]);
    }
    free(ss);
    free(lg);
    free(ids);
    free(ttft);
    free(tops);
    free(tp);
    free(ones);
    glmv_batch_free(b);
    return rc;
}

typedef struct {
    int streams, requests, prompt, tokens, mixed;
    double ms;                  /* all requests, from the first admission to the last token */
    int64_t passes, rows;       /* forward passes, and the rows (tokens) they carried */
    int64_t prompt_passes;      /* of them, those with prompt rows (a prefill alone, or mixed) */
    double prompt_pass_ms, decode_pass_ms, pick_ms; /* time in those passes, in the others, picking */
    int64_t device_bytes;       /* the device's memory in use at the end, the caches still held */
    double ttft_p50_ms, ttft_max_ms; /* from the start (every request arrives then) */
} serve_fig;

/* n_req requests, each `prompt` random tokens then `steps` generated tokens (the first picked
 * from the prompt's logits), at most n running, admitted first come first served as slots
 * free, as glmv serve runs them. mixed: each pass carries every running stream's token and the
 * next chunk of the prompts waiting (glmv_session_eval_chunks, up to glmv_batch_max_rows
 * rows, glmv_batch_idle_rows for a lone prompt); else each admitted prompt is prefilled alone
 * (glmv_session_eval) before the pass. */
static int serving(glmv_model *m, int vocab, int n, int n_req, int prompt, int steps, int mixed, serve_fig *f,
                   char *err) {
    glmv_session **ss = calloc((size_t)n, sizeof *ss), **sel = calloc((size_t)n, sizeof *sel);
    float **lg = calloc((size_t)n, sizeof *lg), **sel_lg = calloc((size_t)n, sizeof *sel_lg);
    int32_t *next = calloc((size_t)n, sizeof *next), *picked = calloc((size_t)n, sizeof *picked);
    int *req = malloc(sizeof(int) * (size_t)n), *off = calloc((size_t)n, sizeof(int)),
        *got = calloc((size_t)n, sizeof(int)), *counts = calloc((size_t)n, sizeof(int)),
        *who = calloc((size_t)n, sizeof(int));
    int32_t *prompts = malloc(sizeof(int32_t) * (size_t)n * (size_t)(prompt > 0 ? prompt : 1));
    double *ttft = calloc((size_t)n_req, sizeof *ttft);
    glmv_top *tops = calloc((size_t)n, sizeof *tops), **sel_top = calloc((size_t)n, sizeof *sel_top);
    int on_backend = picks_on_backend();
    glmv_batch *b = NULL;
    int rc = -1;
    int32_t *row_ids = NULL;
    if (!ss || !sel || !lg || !sel_lg || !next || !picked || !req || !off || !got || !counts || !who ||
        !prompts || !ttft || !tops || !sel_top) {
        snprintf(err, GLMV_ERR_SIZE, "out of memory");
        goto done;
    }
    if (glmv_batch_new(&b, m, n, err)) goto done;
    int max_rows = glmv_batch_max_rows(b), idle_rows = glmv_batch_idle_rows(b);
    row_ids = malloc(sizeof(int32_t) * (size_t)idle_rows);
    if (!row_ids) {
        snprintf(err, GLMV_ERR_SIZE, "out of memory");
        goto done;
    }
    memset(f, 0, sizeof *f);
    *f = (serve_fig){.streams = n, .requests = n_req, .prompt = prompt, .tokens = steps, .mixed = mixed};
    for (int i = 0; i < n; i++) {
        req[i] = -1;
        lg[i] = glmv_logits_new(m);
        if (!lg[i]) {
            snprintf(err, GLMV_ERR_SIZE, "out of memory");
            goto done;
        }
        if (glmv_session_new(&ss[i], m, prompt + steps + 2, err)) goto done;
    }
    int admitted = 0, finished = 0;
    double t0 = now_ms();
    while (finished < n_req) {
        for (int i = 0; i < n && admitted < n_req; i++) { /* admission: a free slot takes the next request */
            if (req[i] >= 0) continue;
            req[i] = admitted++;
            off[i] = got[i] = 0;
            glmv_session_reset(ss[i]);
            for (int t = 0; t < prompt; t++) prompts[(size_t)i * prompt + t] = rand_id(vocab);
            if (prompt == 0) next[i] = rand_id(vocab), off[i] = -1; /* no prompt: a token to start from */
            if (!mixed && prompt > 0) {
                double e0 = now_ms();
                if (glmv_session_eval(ss[i], prompts + (size_t)i * prompt, prompt, lg[i], err)) goto done;
                double e1 = now_ms();
                f->prompt_pass_ms += e1 - e0;
                f->passes += (prompt + max_rows - 1) / max_rows;
                f->prompt_passes += (prompt + max_rows - 1) / max_rows;
                f->rows += prompt;
                off[i] = prompt;
                ttft[req[i]] = now_ms() - t0;
                pick_all(&lg[i], &next[i], 1, vocab);
                f->pick_ms += now_ms() - e1;
                got[i] = 1;
            }
        }
        /* the pass: every stream's token, then prompt chunks in the rows left */
        int k = 0, rows = 0;
        for (int i = 0; i < n; i++)
            if (req[i] >= 0 && (off[i] == prompt || off[i] < 0) && got[i] < steps) {
                who[k] = i;
                counts[k] = 1;
                row_ids[rows++] = next[i];
                k++;
            }
        int active = 0; /* a lone prompt (one request, no token yet) takes the longer passes, as glmv serve's */
        for (int i = 0; i < n; i++) active += req[i] >= 0;
        const int limit = rows || active != 1 ? max_rows : idle_rows;
        for (int i = 0; i < n && rows < limit; i++)
            if (req[i] >= 0 && off[i] >= 0 && off[i] < prompt) {
                int t = prompt - off[i] < limit - rows ? prompt - off[i] : limit - rows;
                who[k] = i;
                counts[k] = t;
                memcpy(row_ids + rows, prompts + (size_t)i * prompt + off[i], sizeof(int32_t) * (size_t)t);
                rows += t;
                k++;
            }
        for (int j = 0; j < k; j++) {
            int i = who[j];
            sel[j] = ss[i];
            int last = counts[j] == 1 || off[i] + counts[j] == prompt;
            sel_lg[j] = last ? lg[i] : NULL;
            tops[i].k = 1;
            sel_top[j] = last ? &tops[i] : NULL;
        }
        if (k > 0) {
            double e0 = now_ms();
            if (on_backend ? glmv_session_eval_top(b, sel, row_ids, counts, k, sel_top, err)
                           : glmv_session_eval_chunks(b, sel, row_ids, counts, k, sel_lg, err))
                goto done;
            double e = now_ms() - e0;
            int with_prompt = off[who[k - 1]] >= 0 && off[who[k - 1]] < prompt; /* prompts come last */
            f->passes++;
            f->prompt_passes += with_prompt;
            *(with_prompt ? &f->prompt_pass_ms : &f->decode_pass_ms) += e;
            f->rows += rows;
        }
        /* the picks: streams that evaluated a token, and prompts now complete (their first token) */
        int np = 0;
        for (int j = 0; j < k; j++) {
            int i = who[j];
            if (off[i] >= 0 && off[i] < prompt) {
                off[i] += counts[j];
                if (off[i] < prompt) continue;
                ttft[req[i]] = now_ms() - t0;
            }
            sel_lg[np] = lg[i];
            picked[np] = 0;
            who[np++] = i;
        }
        double p0 = now_ms();
        if (on_backend)
            for (int j = 0; j < np; j++) picked[j] = tops[who[j]].id[0];
        else
            pick_all(sel_lg, picked, np, vocab);
        f->pick_ms += now_ms() - p0;
        for (int j = 0; j < np; j++) {
            int i = who[j];
            next[i] = picked[j];
            got[i]++;
        }
        for (int i = 0; i < n; i++) /* a request with all its tokens frees its slot */
            if (req[i] >= 0 && got[i] >= steps && (off[i] == prompt || off[i] < 0)) {
                req[i] = -1;
                finished++;
            }
    }
    f->ms = now_ms() - t0;
    f->device_bytes = glmv_device_bytes(m);
    qsort(ttft, (size_t)n_req, sizeof *ttft, cmp_double);
    f->ttft_p50_ms = ttft[(n_req - 1) / 2];
    f->ttft_max_ms = ttft[n_req - 1];
    rc = 0;
done:
    for (int i = 0; i < n; i++) {
        if (ss) glmv_session_free(ss[i]);
        if (lg) glmv_logits_free(m, lg[i]);
    }
    free(ss);
    free(sel);
    free(lg);
    free(sel_lg);
    free(next);
    free(picked);
    free(req);
    free(off);
    free(got);
    free(counts);
    free(who);
    free(prompts);
    free(ttft);
    free(tops);
    free(sel_top);
    free(row_ids);
    glmv_batch_free(b);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    const char *dir = NULL;
    int synthetic = 0, json = 0, do_membw = 0, warmup = 0;
    const char *mmproj = NULL, *image = NULL, *video = NULL, *question = NULL, *tokenizer = NULL;
    long layers = 2, threads = 0, prompt = 512, n_decode = 16, prompt_reps = 2, n_requests = 0, tp = 1;
    int sched[4] = {1, 1, 1, 1}, n_sched = 1, sched_given = 0, n_sf = 0;
    serve_fig sf[4 * MAX_LIST];
    glmv_device device = GLMV_DEVICE_AUTO;
    glmv_precision precision = GLMV_PRECISION_AUTO;
    glmv_quant quant = GLMV_QUANT_NONE;
    int ctx[MAX_LIST], n_ctx_list = 0, n_vis = 0, conc[MAX_LIST], n_conc = 0;
    conc_fig cf[MAX_LIST];
    vision_fig vis[MAX_LIST];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_ARG                                                                   \
    do {                                                                           \
        if (!v) {                                                                  \
            fprintf(stderr, "glmv bench: %s needs a value\n", a);                  \
            return 2;                                                              \
        }                                                                          \
        i++;                                                                       \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(bench_help, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEED_ARG;
            dir = v;
        } else if (!strcmp(a, "--mmproj")) {
            NEED_ARG;
            mmproj = v;
        } else if (!strcmp(a, "--tokenizer")) {
            NEED_ARG;
            tokenizer = v;
        } else if (!strcmp(a, "--warmup")) {
            warmup = 1;
        } else if (!strcmp(a, "--synthetic")) {
            synthetic = 1;
        } else if (!strcmp(a, "--layers")) {
            NEED_ARG;
            if (cli_parse_int(a, v, 1, 40, &layers)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_ARG;
            if (cli_parse_int(a, v, 0, 1024, &threads)) return 2;
        } else if (!strcmp(a, "--prompt-reps")) {
            NEED_ARG;
            if (cli_parse_int(a, v, 1, 100, &prompt_reps)) return 2;
        } else if (!strcmp(a, "--prompt")) {
            NEED_ARG;
            if (cli_parse_int(a, v, 0, 1 << 20, &prompt)) return 2;
        } else if (!strcmp(a, "--decode")) {
            NEED_ARG;
            if (cli_parse_int(a, v, 0, 1 << 20, &n_decode)) return 2;
        } else if (!strcmp(a, "--ctx")) {
            NEED_ARG;
            if ((n_ctx_list = parse_list(a, v, ctx, MAX_LIST)) < 0) return 2;
        } else if (!strcmp(a, "--concurrency")) {
            NEED_ARG;
            if ((n_conc = parse_list(a, v, conc, MAX_LIST)) < 0) return 2;
            for (int k = 0; k < n_conc; k++)
                if (conc[k] > 4096) {
                    fprintf(stderr, "glmv bench: --concurrency %d: at most 4096 sequences\n", conc[k]);
                    return 2;
                }
        } else if (!strcmp(a, "--requests")) {
            NEED_ARG;
            if (cli_parse_int(a, v, 1, 1 << 20, &n_requests)) return 2;
        } else if (!strcmp(a, "--schedule")) {
            NEED_ARG;
            n_sched = 0;
            for (const char *q = v;;) { /* mixed, separate, or both (in the order given, up to 4) */
                size_t l = strcspn(q, ",");
                if (n_sched == 4) {
                    fprintf(stderr, "glmv bench: --schedule: at most 4 runs, got '%s'\n", v);
                    return 2;
                }
                if ((l == 5 && !strncmp(q, "mixed", 5)) || (l == 8 && !strncmp(q, "separate", 8))) {
                    sched[n_sched++] = l == 5;
                } else {
                    fprintf(stderr, "glmv bench: --schedule expects mixed, separate or both (a comma list), "
                                    "got '%s'\n", v);
                    return 2;
                }
                if (!q[l]) break;
                q += l + 1;
            }
            sched_given = 1;
        } else if (!strcmp(a, "--vision")) {
            NEED_ARG;
            if ((n_vis = parse_sizes(v, vis, MAX_LIST)) < 0) return 2;
        } else if (!strcmp(a, "--image")) {
            NEED_ARG;
            image = v;
        } else if (!strcmp(a, "--video")) {
            NEED_ARG;
            video = v;
        } else if (!strcmp(a, "--question")) {
            NEED_ARG;
            question = v;
        } else if (!strcmp(a, "--device")) {
            NEED_ARG;
            if (!strcmp(v, "cpu")) device = GLMV_DEVICE_CPU;
            else if (!strcmp(v, "cuda")) device = GLMV_DEVICE_CUDA;
            else {
                fprintf(stderr, "glmv bench: --device expects cpu or cuda, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--precision")) {
            NEED_ARG;
            if (glmv_precision_parse(v, &precision)) {
                fprintf(stderr, "glmv bench: --precision expects f32, bf16 or auto, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--quant")) {
            NEED_ARG;
            if (glmv_quant_parse(v, &quant)) {
                fprintf(stderr, "glmv bench: --quant expects q8_0, q4_0, q4_k_m or none, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "-tp") || !strcmp(a, "--tensor-parallel")) {
            NEED_ARG;
            if (cli_parse_int(a, v, 1, 8, &tp)) return 2;
        } else if (!strcmp(a, "--membw")) {
            do_membw = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            fprintf(stderr, "glmv bench: unknown option '%s'\n%s", a, bench_help);
            return 2;
        }
#undef NEED_ARG
    }
    if (!dir && !synthetic && !do_membw) {
        fprintf(stderr, "glmv bench: give -m DIR or --synthetic (or --membw)\n%s", bench_help);
        return 2;
    }
    if (dir && synthetic) {
        fprintf(stderr, "glmv bench: -m and --synthetic exclude each other\n");
        return 2;
    }
    if (image && video) {
        fprintf(stderr, "glmv bench: --image and --video exclude each other (one time to first token a run)\n");
        return 2;
    }
    /* the medium whose time to first token is measured */
    const char *media = image ? image : video, *mopt = image ? "--image" : "--video";
    glmv_part_kind mkind = image ? GLMV_PART_IMAGE : GLMV_PART_VIDEO;
    if (media && synthetic && !tokenizer) {
        fprintf(stderr, "glmv bench: %s needs a tokenizer: a checkpoint (-m DIR), or --synthetic with "
                        "--tokenizer DIR (--vision times the tower alone)\n", mopt);
        return 2;
    }
    if (tokenizer && !synthetic) {
        fprintf(stderr, "glmv bench: --tokenizer goes with --synthetic (a checkpoint has its own)\n");
        return 2;
    }
    if (n_requests && !n_conc) {
        fprintf(stderr, "glmv bench: --requests N goes with --concurrency C (the requests running at once)\n");
        return 2;
    }
    if (sched_given && !n_requests) {
        fprintf(stderr, "glmv bench: --schedule goes with --requests\n");
        return 2;
    }
    if (n_requests && n_decode < 1) {
        fprintf(stderr, "glmv bench: --requests needs --decode of at least 1 (the tokens of each request)\n");
        return 2;
    }
    if (question && !media) {
        fprintf(stderr, "glmv bench: --question goes with --image or --video\n");
        return 2;
    }
    if (media && access(media, R_OK) != 0) {
        fprintf(stderr, "glmv bench: %s %s: %s\n", mopt, media, strerror(errno));
        return 2;
    }

    int n_threads = (int)threads;
    double bw = 0;
    if (do_membw) {
        if (n_threads <= 0) {
            long nc = sysconf(_SC_NPROCESSORS_ONLN);
            n_threads = nc > 0 ? (int)nc : 1;
        }
        bw = membw(n_threads);
        if (!json) printf("memory read bandwidth, %d threads: %.2f GB/s\n", n_threads, bw);
        if (!dir && !synthetic) {
            if (json) printf("{\"membw\": {\"threads\": %d, \"gb_per_s\": %.3f}}\n", n_threads, bw);
            return 0;
        }
    }

    char err[GLMV_ERR_SIZE], name[64];
    if (synthetic) snprintf(name, sizeof name, "synthetic:9b,layers=%ld", layers);
    glmv_model_params mp;
    glmv_model_params_default(&mp);
    mp.n_threads = (int)threads;
    mp.device = device;
    mp.precision = precision;
    mp.quant = quant;
    mp.mmproj = mmproj;
    mp.tokenizer = tokenizer;
    mp.tensor_parallel = (int)tp;
    glmv_model *m = NULL;
    glmv_batch *b1 = NULL; /* the decode lines' batch of one (see there) */
    const char *pick = "row";
    double t0 = now_ms();
    if (glmv_model_load(&m, synthetic ? name : dir, &mp, err)) {
        fprintf(stderr, "glmv bench: %s\n", err);
        return 1;
    }
    double load_ms = now_ms() - t0, warmup_ms = 0;
    glmv_model_info info;
    glmv_model_get_info(m, &info);
    if (warmup) {
        double w0 = now_ms();
        if (glmv_model_warmup(m, info.vision_depth > 0 ? 1120 : 0, info.vision_depth > 0 ? 1120 : 0, err)) {
            fprintf(stderr, "glmv bench: warm-up: %s\n", err);
            glmv_model_free(m);
            return 1;
        }
        warmup_ms = now_ms() - w0;
    }
    if (!json)
        printf("model %s on %s, precision %s (%s), weights %s (%.2f GiB), KV caches %s: %d layers, %lld params, "
               "loaded in %.0f ms\n",
               info.name, info.device, info.precision, info.precision_why, info.quant,
               info.weight_bytes / 1073741824.0, info.kv_cache, info.n_layers,
               (long long)info.n_params, load_ms);
    if (!json && warmup) printf("warm-up run: %.0f ms\n", warmup_ms);

    int max_ctx = (int)prompt;
    for (int i = 0; i < n_ctx_list; i++) max_ctx = ctx[i] > max_ctx ? ctx[i] : max_ctx;
    glmv_session *s = NULL;
    float *logits = glmv_logits_new(m); /* page-locked on a GPU, as a generation's */
    double prefill_ms = 0, first_ms = 0;
    decode_fig dec[MAX_LIST + 1];
    int n_dec = 0, rc = 1;
    if (!logits) {
        fprintf(stderr, "glmv bench: out of memory\n");
        goto done;
    }
    if (glmv_session_new(&s, m, max_ctx + (int)n_decode + 1, err)) {
        fprintf(stderr, "glmv bench: %s\n", err);
        goto done;
    }
    /* prefill of the prompt, then decode right after it */
    if (prompt > 0) {
        double reps[100];
        for (long r = 0; r < prompt_reps; r++) {
            if (r) glmv_session_reset(s);
            if (fill(s, (int)prompt, info.vocab, &reps[r], err)) goto fail;
        }
        first_ms = reps[0];
        prefill_ms = prompt_reps == 1 ? reps[0] : median(reps + 1, (int)prompt_reps - 1);
        if (!json) {
            printf("prefill %ld tokens: %.0f ms, %.2f tokens/s", prompt, prefill_ms, prompt / (prefill_ms / 1e3));
            if (prompt_reps > 1)
                printf(" (median of %ld after the first; the first: %.0f ms, %.2f tokens/s)", prompt_reps - 1,
                       first_ms, prompt / (first_ms / 1e3));
            printf("\n");
        }
    }
    /* the decode lines pick as `glmv run` and `glmv serve` do: on a GPU (one, not split) from the best
     * logit found there; on the CPU, with -tp, or with GLMV_WHOLE_LOGITS=1 from the whole row */
    if (n_decode > 0 && !strncmp(info.device, "cuda", 4) && tp == 1 && picks_on_backend()) {
        if (glmv_batch_new(&b1, m, 1, err)) goto fail;
        pick = "best";
    }
    if (n_decode > 0 && !json)
        printf("decode: each token picked from %s\n",
               b1 ? "the best logit found on the device, as generation there" : "the whole row of logits on the host");
    if (n_decode > 0) {
        decode_fig *d = &dec[n_dec++];
        d->ctx = (int)prompt;
        d->tokens = (int)n_decode;
        d->fill_ms = prefill_ms;
        double ms;
        if (decode(s, b1, (int)n_decode, info.vocab, logits, &ms, err)) goto fail;
        d->ms_per_token = ms / n_decode;
        if (!json)
            printf("decode at ctx %d: %.1f ms/token, %.3f tokens/s\n", d->ctx, d->ms_per_token,
                   1e3 / d->ms_per_token);
        for (int i = 0; i < n_ctx_list; i++) {
            d = &dec[n_dec++];
            glmv_session_reset(s);
            d->ctx = ctx[i];
            d->tokens = (int)n_decode;
            if (fill(s, ctx[i], info.vocab, &d->fill_ms, err)) goto fail;
            if (decode(s, b1, (int)n_decode, info.vocab, logits, &ms, err)) goto fail;
            d->ms_per_token = ms / n_decode;
            if (!json)
                printf("decode at ctx %d: %.1f ms/token, %.3f tokens/s (filled in %.0f ms, %.2f "
                       "tokens/s)\n",
                       d->ctx, d->ms_per_token, 1e3 / d->ms_per_token, d->fill_ms,
                       d->ctx / (d->fill_ms / 1e3));
        }
    }
    for (int i = 0; i < n_conc && n_requests; i++)
        for (int k = 0; k < n_sched; k++, n_sf++) {
            serve_fig *f = &sf[n_sf];
            if (serving(m, info.vocab, conc[i], (int)n_requests, (int)prompt, (int)n_decode, sched[k], f, err))
                goto fail;
            if (!json)
                printf("%ld requests, %d at a time (prompt %ld, %ld tokens each, %s): %.0f ms, %.2f generated "
                       "tokens/s, %lld passes of %.1f rows; first token p50 %.0f ms, last %.0f ms\n",
                       n_requests, conc[i], prompt, n_decode, f->mixed ? "mixed" : "separate", f->ms,
                       n_requests * n_decode * 1e3 / f->ms, (long long)f->passes,
                       f->passes ? (double)f->rows / f->passes : 0.0, f->ttft_p50_ms, f->ttft_max_ms);
        }
    for (int i = 0; i < n_conc && !n_requests; i++) {
        if (concurrency(m, info.vocab, conc[i], (int)prompt, (int)n_decode, &cf[i], err)) goto fail;
        if (!json)
            printf("%d streams (prompt %ld, %ld tokens each): %.1f ms/step, %.2f tokens/s in all, %.2f "
                   "per stream; prefills %.0f ms, first token p50 %.0f ms, last %.0f ms\n",
                   cf[i].streams, prompt, n_decode, cf[i].ms_per_step,
                   cf[i].streams * 1e3 / cf[i].ms_per_step, 1e3 / cf[i].ms_per_step, cf[i].prefill_ms,
                   cf[i].ttft_p50_ms, cf[i].ttft_max_ms);
    }
    ttft_fig tf;
    memset(&tf, 0, sizeof tf);
    if (media) {
        if (ttft(m, mkind, media, question ? question : image ? "Describe this image." : "Describe this video.", &tf,
                 err))
            goto fail;
        if (!json)
            printf("time to first token, %s (%d prompt tokens, %d of the %s): %.1f ms (preprocessing "
                   "%.1f, vision %.1f, prefill %.1f); the first request %.1f ms\n",
                   media, tf.prompt_tokens, tf.image_tokens, image ? "image" : "video", tf.ms, tf.preprocess_ms,
                   tf.vision_ms, tf.prefill_ms, tf.first_ms);
    }
    for (int i = 0; i < n_vis; i++) {
        double v0 = now_ms();
        if (glmv_vision_eval(m, vis[i].h, vis[i].w, &vis[i].tokens, err)) goto fail;
        vis[i].ms = now_ms() - v0;
        if (!json)
            printf("vision %dx%d: %d tokens in %.0f ms\n", vis[i].h, vis[i].w, vis[i].tokens,
                   vis[i].ms);
    }

    /* Per layer (synthetic): prefill is compute-bound, so its time is split evenly
     * over the layers, the last counted for its q/k/v products only (the rest of it,
     * like lm_head, runs for one row). Decode is bound by the bytes it
     * reads, so each token's time is split in proportion to bytes: a layer's BF16
     * weights and KV cache against lm_head's vocab x hidden; the full model is then
     * 40 such layers plus lm_head. Weight shapes are the 9B preset's. */
    int64_t H = info.hidden, qd = (int64_t)info.n_heads * info.head_dim,
            kvd = (int64_t)info.n_kv_heads * info.head_dim, I9 = 13696;
    double layer_bytes = 2.0 * (2 * H * qd + 2 * H * kvd + 3 * H * I9);
    double head_bytes = 2.0 * (double)info.vocab * H;
    int64_t peak = glmv_peak_host_bytes(), devb = glmv_device_bytes(m);

    if (json) {
        printf("{\"model\": \"%s\", \"device\": \"%s\", \"precision\": \"%s\", \"quant\": \"%s\", "
               "\"kv_cache\": \"%s\", \"weight_bytes\": %lld, \"threads\": %d, "
               "\"synthetic\": %s, \"layers\": %d, \"params\": %lld, \"load_ms\": %.1f",
               info.name, info.device, info.precision, info.quant, info.kv_cache, (long long)info.weight_bytes, n_threads,
               synthetic ? "true" : "false", info.n_layers, (long long)info.n_params, load_ms);
        if (warmup) printf(", \"warmup_ms\": %.1f", warmup_ms);
        if (prompt > 0)
            printf(", \"prefill\": {\"tokens\": %ld, \"ms\": %.1f, \"tokens_per_s\": %.3f, \"reps\": %ld, "
                   "\"first_ms\": %.1f}",
                   prompt, prefill_ms, prompt / (prefill_ms / 1e3), prompt_reps, first_ms);
        printf(", \"decode_pick\": \"%s\", \"decode\": [", pick);
        for (int i = 0; i < n_dec; i++)
            printf("%s{\"ctx\": %d, \"tokens\": %d, \"ms_per_token\": %.2f, \"tokens_per_s\": %.4f, "
                   "\"fill_ms\": %.1f}",
                   i ? ", " : "", dec[i].ctx, dec[i].tokens, dec[i].ms_per_token,
                   1e3 / dec[i].ms_per_token, dec[i].fill_ms);
        printf("], \"concurrency\": [");
        for (int i = 0; i < n_conc && !n_requests; i++)
            printf("%s{\"streams\": %d, \"prompt\": %d, \"tokens\": %d, \"ms_per_step\": %.2f, "
                   "\"aggregate_tokens_per_s\": %.3f, \"per_stream_tokens_per_s\": %.3f, "
                   "\"prefill_ms\": %.1f, \"ttft_p50_ms\": %.1f, \"ttft_max_ms\": %.1f, "
                   "\"eval_ms_per_step\": %.2f}",
                   i ? ", " : "", cf[i].streams, cf[i].ctx, cf[i].tokens, cf[i].ms_per_step,
                   cf[i].streams * 1e3 / cf[i].ms_per_step, 1e3 / cf[i].ms_per_step, cf[i].prefill_ms,
                   cf[i].ttft_p50_ms, cf[i].ttft_max_ms, cf[i].eval_ms_per_step);
        printf("], \"serving\": [");
        for (int i = 0; i < n_sf; i++)
            printf("%s{\"streams\": %d, \"requests\": %d, \"schedule\": \"%s\", \"prompt\": %d, \"tokens\": %d, "
                   "\"ms\": %.1f, \"generated_tokens_per_s\": %.3f, \"passes\": %lld, \"rows\": %lld, \"rows_per_pass\": %.2f, "
                   "\"ttft_p50_ms\": %.1f, \"ttft_max_ms\": %.1f, \"prompt_passes\": %lld, \"prompt_pass_ms\": %.1f, "
                   "\"decode_pass_ms\": %.1f, \"pick_ms\": %.1f, \"device_bytes\": %lld}",
                   i ? ", " : "", sf[i].streams, sf[i].requests, sf[i].mixed ? "mixed" : "separate", sf[i].prompt,
                   sf[i].tokens, sf[i].ms, (double)sf[i].requests * sf[i].tokens * 1e3 / sf[i].ms,
                   (long long)sf[i].passes, (long long)sf[i].rows,
                   sf[i].passes ? (double)sf[i].rows / sf[i].passes : 0.0, sf[i].ttft_p50_ms, sf[i].ttft_max_ms,
                   (long long)sf[i].prompt_passes, sf[i].prompt_pass_ms, sf[i].decode_pass_ms, sf[i].pick_ms,
                   (long long)sf[i].device_bytes);
        printf("], \"vision\": [");
        for (int i = 0; i < n_vis; i++)
            printf("%s{\"image\": \"%dx%d\", \"tokens\": %d, \"ms\": %.1f}", i ? ", " : "",
                   vis[i].h, vis[i].w, vis[i].tokens, vis[i].ms);
        printf("]");
        if (media) {
            printf(", \"ttft\": {\"%s\": ", image ? "image" : "video");
            json_str(media);
            printf(", \"prompt_tokens\": %d, \"image_tokens\": %d, \"ms\": %.1f, \"preprocess_ms\": %.1f, "
                   "\"vision_ms\": %.1f, \"prefill_ms\": %.1f, \"other_ms\": %.1f, \"first_ms\": %.1f}",
                   tf.prompt_tokens, tf.image_tokens, tf.ms, tf.preprocess_ms, tf.vision_ms, tf.prefill_ms,
                   tf.ms - tf.preprocess_ms - tf.vision_ms - tf.prefill_ms, tf.first_ms);
        }
        printf(", \"peak_host_bytes\": %lld, \"device_bytes\": %lld", (long long)peak,
               (long long)devb);
        if (do_membw) printf(", \"membw\": {\"threads\": %d, \"gb_per_s\": %.3f}", n_threads, bw);
    } else {
        printf("peak host memory %.2f GB", peak / 1e9);
        if (devb) printf(", device %.2f GB", devb / 1e9);
        printf("\n");
    }
    if (synthetic) {
        int L = info.n_layers;
        if (json) printf(", \"per_layer\": {\"note\": \"prefill split evenly over layers but the last, "
                         "which computes only its q/k/v for all but the last row; decode split by bytes read "
                         "(layer weights + KV vs lm_head); full = 40 layers\"");
        if (prompt > 0) {
            /* the last layer's share of a prompt's work: its q/k/v products (the rest of it runs
             * for the last row only) */
            double qkv = (double)H * (qd + 2 * kvd) / (layer_bytes / 2);
            double pl = prefill_ms / prompt / (L - 1 + qkv);
            if (json)
                printf(", \"prefill_ms_per_token_layer\": %.3f, \"prefill_full_tokens_per_s\": %.3f",
                       pl, 1e3 / (pl * (39 + qkv)));
            else
                printf("per layer: prefill %.2f ms/token/layer -> 40 layers %.2f tokens/s\n", pl,
                       1e3 / (pl * (39 + qkv)));
        }
        if (json) printf(", \"decode\": [");
        for (int i = 0; i < n_dec; i++) {
            /* K and V read per layer, float32 or bf16 */
            double kv = 2.0 * (strcmp(info.kv_cache, "bf16") ? 4 : 2) * (double)kvd * dec[i].ctx;
            double tok_bytes = L * (layer_bytes + kv) + head_bytes;
            double per_layer = dec[i].ms_per_token * (layer_bytes + kv) / tok_bytes;
            double full = dec[i].ms_per_token * (40 * (layer_bytes + kv) + head_bytes) / tok_bytes;
            double gbs = tok_bytes / (dec[i].ms_per_token * 1e6);
            if (json)
                printf("%s{\"ctx\": %d, \"ms_per_layer\": %.3f, \"full_ms_per_token\": %.1f, "
                       "\"full_tokens_per_s\": %.4f, \"read_gb_per_s\": %.3f}",
                       i ? ", " : "", dec[i].ctx, per_layer, full, 1e3 / full, gbs);
            else
                printf("per layer: decode at ctx %d %.2f ms/layer, reading %.2f GB/s -> 40 layers "
                       "%.0f ms/token, %.3f tokens/s\n",
                       dec[i].ctx, per_layer, gbs, full, 1e3 / full);
        }
        if (json) printf("]}");
    }
    if (json) printf("}\n");
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "glmv bench: %s\n", err);
done:
    if (m) glmv_logits_free(m, logits);
    glmv_batch_free(b1);
    glmv_session_free(s);
    glmv_model_free(m);
    return rc;
}
