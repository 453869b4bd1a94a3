/* ggml_matmul.c -- the layer of glmv_matmul.c through ggml's CPU backend (the
 * matmul code llama.cpp runs): F16 or BF16 weights, F32 x, computed with
 * ggml_graph_compute_with_ctx on THREADS threads; wall-clock rates and rates
 * per CPU-second. Uses only ggml's public API. Built and run by compare_matmul.sh.
 * usage: ggml_matmul THREADS M f16|bf16 [REPS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-cpu.h"
#include "ggml.h"

static double ms(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s THREADS M f16|bf16 [REPS]\n", argv[0]);
        return 2;
    }
    int th = atoi(argv[1]), m = atoi(argv[2]), bf = !strcmp(argv[3], "bf16");
    int reps = argc > 4 ? atoi(argv[4]) : 3;
    static const int64_t shapes[4][2] = {{4608, 4096}, {4096, 4096}, {27392, 4096}, {4096, 13696}};
    struct ggml_init_params ip = {.mem_size = (size_t)1400 << 20, .mem_buffer = NULL, .no_alloc = false};
    struct ggml_context *ctx = ggml_init(ip);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    double bytes = 0, flop = 0;
    for (int i = 0; i < 4; i++) {
        int64_t n = shapes[i][0], k = shapes[i][1];
        struct ggml_tensor *w = ggml_new_tensor_2d(ctx, bf ? GGML_TYPE_BF16 : GGML_TYPE_F16, k, n);
        uint16_t *p = w->data;
        for (int64_t j = 0; j < n * k; j++) /* small normal numbers in either format */
            p[j] = bf ? (uint16_t)(0x3c00 + (j * 2654435761u) % 256) : (uint16_t)(0x2000 + (j * 2654435761u) % 4096);
        struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, m);
        float *xd = x->data;
        for (int64_t j = 0; j < k * m; j++) xd[j] = 0.01f * (float)(j % 100);
        ggml_build_forward_expand(gf, ggml_mul_mat(ctx, w, x));
        bytes += 2.0 * n * k;
        flop += 2.0 * n * k * m;
    }
    ggml_graph_compute_with_ctx(ctx, gf, th); /* warm */
    for (int r = 0; r < reps; r++) {
        double c0 = ms(CLOCK_PROCESS_CPUTIME_ID), t0 = ms(CLOCK_MONOTONIC);
        ggml_graph_compute_with_ctx(ctx, gf, th);
        double t = ms(CLOCK_MONOTONIC) - t0, ct = ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
        printf("ggml %s threads=%d m=%d: layer %.1f ms, %.2f GB/s, %.1f GFLOP/s; per CPU-second: "
               "%.1f GFLOP, %.2f GB\n",
               bf ? "bf16" : "f16", th, m, t, bytes / t / 1e6, flop / t / 1e6, flop / ct / 1e6,
               bytes / ct / 1e6);
    }
    ggml_free(ctx);
    return 0;
}
