/* bench_cuda.c -- the whole engine on the GPU through the public API:
 *
 *   bench_cuda parity DIR [N]   CPU and CUDA backends on one checkpoint (a tiny
 *                               fixture): the logits of a fixed prompt (NMSE)
 *                               and N greedy tokens (default 32), which must be
 *                               the same on both
 *   bench_cuda logits DIR OUT N IDS [cpu|cuda]   writes the last prompt token's
 *                               logits (f32, vocab) then N greedy ids (int32)
 *                               to OUT; IDS is a comma-separated prompt (for
 *                               scripts/cuda_parity_9b.py); on CUDA unless
 *                               cpu is given; GLMV_PRECISION picks f32 or bf16,
 *                               GLMV_TP=N splits the decoder over N GPUs
 *   bench_cuda synthetic [L]    synthetic:9b (L layers, default 40) on CUDA:
 *                               prefill 512, decode at 1k and 8k context, the
 *                               vision tower on 1120x1120, time to first token
 *                               of that image plus a question, GPU memory
 *
 * Built by `make CUDA=1 bench-cuda`; not part of the test suite (it needs a
 * GPU and minutes). Prints one line per figure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "glmv.h"

#ifdef GLMV_CUDA
#include <cuda_runtime_api.h>
static double gpu_used_gib(void) {
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) return -1;
    return (double)(tot - fr) / 1073741824.0;
}
#else
static double gpu_used_gib(void) { return -1; }
#endif

static double nmse(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

static int load(glmv_model **m, const char *dir, glmv_device dev) {
    glmv_model_params p;
    glmv_model_params_default(&p);
    p.device = dev;
    const char *tp = getenv("GLMV_TP"); /* the decoder split over this many GPUs (scripts/device_tp.sh) */
    if (tp && dev == GLMV_DEVICE_CUDA) p.tensor_parallel = atoi(tp);
    char err[GLMV_ERR_SIZE];
    if (glmv_model_load(m, dir, &p, err)) {
        fprintf(stderr, "bench_cuda: %s: %s\n", dir, err);
        return -1;
    }
    return 0;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* prompt logits and n greedy tokens of one backend */
static int greedy(glmv_model *m, const int32_t *prompt, int np, int n, float *logits0, int32_t *out) {
    glmv_model_info info;
    glmv_model_get_info(m, &info);
    glmv_session *s;
    char err[GLMV_ERR_SIZE];
    if (glmv_session_new(&s, m, np + n + 8, err)) {
        fprintf(stderr, "bench_cuda: %s\n", err);
        return -1;
    }
    float *lg = malloc(sizeof(float) * (size_t)info.vocab);
    int rc = glmv_session_eval(s, prompt, np, lg, err);
    if (!rc) memcpy(logits0, lg, sizeof(float) * (size_t)info.vocab);
    for (int i = 0; i < n && !rc; i++) {
        out[i] = argmax(lg, info.vocab);
        rc = glmv_session_eval(s, &out[i], 1, lg, err);
    }
    if (rc) fprintf(stderr, "bench_cuda: %s\n", err);
    free(lg);
    glmv_session_free(s);
    return rc;
}

static int parity(const char *dir, int n) {
    glmv_model *mc, *mg;
    if (load(&mc, dir, GLMV_DEVICE_CPU) || load(&mg, dir, GLMV_DEVICE_CUDA)) return 1;
    glmv_model_info info;
    glmv_model_get_info(mg, &info);
    printf("parity %s: cpu vs %s, vocab %d\n", dir, info.device, info.vocab);
    int32_t prompt[24];
    for (int i = 0; i < 24; i++) prompt[i] = (int32_t)((i * 7919 + 13) % (info.vocab - 100));
    float *lc = malloc(sizeof(float) * (size_t)info.vocab), *lgpu = malloc(sizeof(float) * (size_t)info.vocab);
    int32_t *tc = calloc((size_t)n, sizeof(int32_t)), *tg = calloc((size_t)n, sizeof(int32_t));
    if (greedy(mc, prompt, 24, n, lc, tc) || greedy(mg, prompt, 24, n, lgpu, tg)) return 1;
    double e = nmse(lgpu, lc, info.vocab);
    int same = 0;
    while (same < n && tc[same] == tg[same]) same++;
    printf("  prompt logits nmse %.3g\n  greedy tokens identical: %d of %d\n  cpu :", e, same, n);
    for (int i = 0; i < n; i++) printf(" %d", tc[i]);
    printf("\n  cuda:");
    for (int i = 0; i < n; i++) printf(" %d", tg[i]);
    printf("\nRESULT parity %s\n", same == n && e < 1e-3 ? "ok" : "DIFFERENT");
    glmv_model_free(mc);
    glmv_model_free(mg);
    return same == n ? 0 : 1;
}

static int logits_cmd(const char *dir, const char *out, int n, const char *list, glmv_device dev) {
    int32_t prompt[4096];
    int np = 0;
    for (const char *p = list; *p && np < 4096;) {
        prompt[np++] = (int32_t)strtol(p, (char **)&p, 10);
        if (*p == ',') p++;
    }
    glmv_model *m;
    if (np == 0 || load(&m, dir, dev)) return 1;
    glmv_model_info info;
    glmv_model_get_info(m, &info);
    float *lg = malloc(sizeof(float) * (size_t)info.vocab);
    int32_t *toks = calloc((size_t)n + 1, sizeof(int32_t));
    if (greedy(m, prompt, np, n, lg, toks)) return 1;
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(lg, sizeof(float), (size_t)info.vocab, f) != (size_t)info.vocab ||
        fwrite(toks, sizeof(int32_t), (size_t)n, f) != (size_t)n || fclose(f)) {
        fprintf(stderr, "bench_cuda: cannot write %s\n", out);
        return 1;
    }
    printf("%s on %s, precision %s: %d prompt ids, greedy:", dir, info.device, info.precision, np);
    for (int i = 0; i < n; i++) printf(" %d", toks[i]);
    printf("\n");
    glmv_model_free(m);
    free(lg);
    free(toks);
    return 0;
}

static double eval_ms(glmv_session *s, const int32_t *ids, int n, float *lg) {
    char err[GLMV_ERR_SIZE];
    double t0 = glmv_now_ms();
    if (glmv_session_eval(s, ids, n, lg, err)) {
        fprintf(stderr, "bench_cuda: %s\n", err);
        exit(1);
    }
    return glmv_now_ms() - t0;
}

static int synthetic(int layers) {
    char dir[64];
    snprintf(dir, sizeof dir, "synthetic:9b,layers=%d", layers);
    double t0 = glmv_now_ms();
    glmv_model *m;
    if (load(&m, dir, GLMV_DEVICE_CUDA)) return 1;
    glmv_model_info info;
    glmv_model_get_info(m, &info);
    printf("%s on %s: %.1f B parameters, loaded in %.1f s, GPU memory in use %.2f GiB\n", dir,
           info.device, info.n_params / 1e9, (glmv_now_ms() - t0) / 1e3, gpu_used_gib());
    int n_ctx = 8192 + 128;
    glmv_session *s;
    char err[GLMV_ERR_SIZE];
    if (glmv_session_new(&s, m, n_ctx, err)) {
        fprintf(stderr, "bench_cuda: %s\n", err);
        return 1;
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_ctx);
    for (int i = 0; i < n_ctx; i++) ids[i] = (int32_t)((i * 7919 + 13) % 150000);
    float *lg = malloc(sizeof(float) * (size_t)info.vocab);
    /* prefill 512 (best of 3) */
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        glmv_session_reset(s);
        double ms = eval_ms(s, ids, 512, lg);
        if (r && ms < best) best = ms; /* the first run warms up */
    }
    printf("  prefill 512 tokens: %.2f ms (%.0f tokens/s)\n", best, 512 / best * 1e3);
    /* decode at 1k and 8k: fill the cache, then 64 single-token steps */
    int ctxs[2] = {1024, 8192};
    for (int c = 0; c < 2; c++) {
        glmv_session_reset(s);
        for (int off = 0; off < ctxs[c]; off += 512) eval_ms(s, ids + off, 512, NULL);
        for (int i = 0; i < 4; i++) eval_ms(s, ids + i, 1, lg);
        double t = 0;
        for (int i = 0; i < 64; i++) t += eval_ms(s, ids + 100 + i, 1, lg);
        printf("  decode at %d context: %.3f ms/token = %.1f tokens/s\n", ctxs[c], t / 64,
               64 / t * 1e3);
        if (c == 1) printf("  GPU memory in use at 8k context: %.2f GiB\n", gpu_used_gib());
    }
    /* vision tower on 1120x1120 (6400 patches), best of 3 after a warm-up */
    int ntok = 0;
    best = 1e30;
    for (int r = 0; r < 4; r++) {
        double v0 = glmv_now_ms();
        if (glmv_vision_eval(m, 1120, 1120, &ntok, err)) {
            fprintf(stderr, "bench_cuda: %s\n", err);
            return 1;
        }
        double ms = glmv_now_ms() - v0;
        if (r && ms < best) best = ms;
    }
    printf("  vision 1120x1120 (%d merged tokens): %.2f ms (glmv_vision_eval, with its host-side "
           "synthetic pixels)\n", ntok, best);
    /* time to first token ~ vision + prefill of the image tokens and a short question */
    double pbest = 1e30;
    for (int r = 0; r < 3; r++) {
        glmv_session_reset(s);
        double ms = eval_ms(s, ids, ntok + 24, lg);
        if (r && ms < pbest) pbest = ms;
    }
    printf("  prefill %d tokens (image + question): %.2f ms; time to first token ~ %.2f ms\n",
           ntok + 24, pbest, best + pbest);
    glmv_session_free(s);
    glmv_model_free(m);
    free(ids);
    free(lg);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "parity")) return parity(argv[2], argc > 3 ? atoi(argv[3]) : 32);
    if (argc >= 6 && !strcmp(argv[1], "logits"))
        return logits_cmd(argv[2], argv[3], atoi(argv[4]), argv[5],
                          argc > 6 && !strcmp(argv[6], "cpu") ? GLMV_DEVICE_CPU : GLMV_DEVICE_CUDA);
    if (argc >= 2 && !strcmp(argv[1], "synthetic")) return synthetic(argc > 2 ? atoi(argv[2]) : 40);
    fprintf(stderr, "usage: bench_cuda parity DIR [N] | logits DIR OUT N IDS [cpu|cuda] | synthetic [LAYERS]\n");
    return 2;
}
