/* glmv_matmul.c -- times glmv's CPU matmul on the four weight matrices of one
 * 9B decoder layer (q/k/v fused as 4608x4096, o 4096x4096, gate_up 27392x4096,
 * down 4096x13696; BF16), for m rows of x. Prints wall-clock rates and rates per
 * CPU-second (work / process CPU time), which time-sharing on a busy machine
 * does not distort. Built and run by compare_matmul.sh.
 * usage: glmv_matmul THREADS M [SIMD (-1 auto, 0 none, 1 avx2, ...)] [REPS]
 * GLMV_PRECISION=bf16 rounds x to bf16 where the CPU multiplies bf16 (else f32);
 * GLMV_QUANT=q8_0|q4_0|q5_0|q4_k|q6_k quantizes the weights first (llama.cpp's block formats;
 * a K format's rows that are not whole super-blocks, down's, fall back as llama.cpp's recipes do:
 * Q4_K to Q5_0, Q6_K to Q8_0); GLMV_HASH=1 also prints a hash of the outputs' bits (REPS 0: only
 * that), to check that a kernel change leaves the results as they were.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base.h"
#include "ops.h"
#include "quant.h"

static double cpu_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static glmv_tensor make(int64_t n, int64_t k) {
    glmv_tensor t = {.name = "w", .dtype = GLMV_BF16, .ndim = 2, .shape = {n, k}};
    uint16_t *p = glmv_aligned_alloc((size_t)(n * k * 2));
    for (int64_t i = 0; i < n * k; i++)
        p[i] = glmv_f32_to_bf16((float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f);
    t.data = t.host = p;
    return t;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s THREADS M [SIMD] [REPS]\n", argv[0]);
        return 2;
    }
    int th = atoi(argv[1]), m = atoi(argv[2]), simd = argc > 3 ? atoi(argv[3]) : -1;
    int reps = argc > 4 ? atoi(argv[4]) : 3;
    char err[GLMV_ERR_SIZE];
    glmv_backend *be = glmv_cpu_backend_new(th, simd, getenv("GLMV_PRECISION") && !strcmp(getenv("GLMV_PRECISION"), "bf16"), err);
    if (!be) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    static const int64_t shapes[4][2] = {{4608, 4096}, {4096, 4096}, {27392, 4096}, {4096, 13696}};
    glmv_tensor w[4];
    double bytes = 0, flop = 0;
    const char *q = getenv("GLMV_QUANT");
    static const struct { const char *name; glmv_dtype t; } fmts[] = {
        {"q8_0", GLMV_Q8_0}, {"q4_0", GLMV_Q4_0}, {"q5_0", GLMV_Q5_0}, {"q4_k", GLMV_Q4_K}, {"q6_k", GLMV_Q6_K}};
    glmv_dtype q0 = GLMV_BF16;
    for (size_t f = 0; q && f < sizeof fmts / sizeof *fmts; f++)
        if (!strcmp(q, fmts[f].name)) q0 = fmts[f].t;
    for (int i = 0; i < 4; i++) {
        glmv_dtype qt = q0;
        if (shapes[i][1] % glmv_dtype_block(qt)) qt = qt == GLMV_Q4_K ? GLMV_Q5_0 : GLMV_Q8_0;
        w[i] = make(shapes[i][0], shapes[i][1]);
        void *owned = NULL;
        if (qt != GLMV_BF16 && glmv_tensor_quantize(&w[i], qt, th, &owned, err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        bytes += (double)shapes[i][0] * (double)glmv_dtype_row_bytes(qt, shapes[i][1]);
        flop += 2.0 * shapes[i][0] * shapes[i][1] * m;
    }
    float *x = glmv_aligned_alloc((size_t)m * 13696 * 4), *y = glmv_aligned_alloc((size_t)m * 27392 * 4);
    for (int64_t i = 0; i < (int64_t)m * 13696; i++) x[i] = 0.01f * (float)(i % 100);
    for (int i = 0; i < 4; i++) be->matmul(be, y, x, &w[i], NULL, m); /* warm: first touch of y */
    if (getenv("GLMV_HASH")) { /* the outputs' bits, to compare two builds' results (FNV-1a) */
        uint64_t h = 1469598103934665603ull;
        for (int i = 0; i < 4; i++) {
            be->matmul(be, y, x, &w[i], NULL, m);
            const unsigned char *b = (const unsigned char *)y;
            for (size_t e = 0; e < (size_t)m * (size_t)shapes[i][0] * sizeof(float); e++)
                h = (h ^ b[e]) * 1099511628211ull;
        }
        printf("glmv %s m=%d: outputs' hash %016llx\n", be->name, m, (unsigned long long)h);
    }
    for (int r = 0; r < reps; r++) {
        double c0 = cpu_ms(), t0 = glmv_now_ms();
        for (int i = 0; i < 4; i++) be->matmul(be, y, x, &w[i], NULL, m);
        double t = glmv_now_ms() - t0, ct = cpu_ms() - c0;
        printf("glmv %s threads=%d m=%d: layer %.1f ms, %.2f GB/s, %.1f GFLOP/s; per CPU-second: "
               "%.1f GFLOP, %.2f GB\n",
               be->name, th, m, t, bytes / t / 1e6, flop / t / 1e6, flop / ct / 1e6, bytes / ct / 1e6);
    }
    be->destroy(be);
    return 0;
}
