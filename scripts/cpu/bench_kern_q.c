/* bench_kern_q.c -- the AVX512-VNNI int8 GEMM kernel (kern_q) on one thread, its panel in
 * cache, against the machine's vpdpbusd peak (12 independent chains, no loads). Prints
 * G multiply-adds per second for 1..mrq rows and the peak in vpdpbusd per nanosecond.
 * build: make && cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc scripts/cpu/bench_kern_q.c \
 *        build/release/libglmv.a -lm -lpthread -o build/bench_kern_q
 * usage: build/bench_kern_q        (needs AVX512-VNNI)
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base.h"
#include "cpu/kernels.h"
#include "quant.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

__attribute__((target("avx512f,avx512vnni"))) static double peak_per_ns(void) {
    __m512i a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_epi32(i);
    __m512i x = _mm512_set1_epi8(1), y = _mm512_set1_epi8(2);
    const long n = 100000000;
    double t0 = now();
    for (long r = 0; r < n; r++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) a[i] = _mm512_dpbusd_epi32(a[i], x, y);
        __asm__ volatile("" : "+v"(x));
    }
    double t = now() - t0;
    __m512i s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_epi32(s, a[i]);
    volatile int sink = _mm512_reduce_add_epi32(s);
    (void)sink;
    return n * 12 / t * 1e-9;
}

int main(void) {
    if (!__builtin_cpu_supports("avx512vnni")) {
        fprintf(stderr, "bench_kern_q: this CPU lacks AVX512-VNNI\n");
        return 1;
    }
    const glmv_cpu_kernels *kn = &glmv_cpu_kernels_avx512bf16;
    const int64_t k = 2048;
    const glmv_dtype dt = GLMV_Q8_0;
    float *wf = malloc(sizeof(float) * 32 * k);
    for (int64_t i = 0; i < 32 * k; i++) wf[i] = (float)rand() / RAND_MAX - 0.5f;
    size_t rb = glmv_dtype_row_bytes(dt, k);
    char *w = malloc(rb * 32);
    for (int c = 0; c < 32; c++) glmv_quantize_row(dt, wf + c * k, w + c * rb, k);
    int8_t *panel = glmv_aligned_alloc((size_t)(k / 16) * (size_t)glmv_cpu_q_block_bytes(16));
    int L = kn->pack_q(panel, w, dt, k, 0, 32, 0, k);
    uint8_t *xu = glmv_aligned_alloc((size_t)(8 * k));
    for (int64_t i = 0; i < 8 * k; i++) xu[i] = (uint8_t)(rand() & 255);
    float ad[8 * 64], C[8 * 32];
    for (int i = 0; i < 8 * 64; i++) ad[i] = 0.01f;
    for (int rows = 1; rows <= kn->mrq; rows++) {
        const int reps = 20000;
        double t0 = now();
        for (int r = 0; r < reps; r++) kn->kern_q(k / L, L, xu, k, ad, NULL, k / 32, panel, C, 32, rows, 0);
        double t = now() - t0;
        printf("kern_q rows=%d: %.1f G multiply-adds/s on one thread\n", rows, (double)reps * rows * 32 * k / t * 1e-9);
    }
    double p = peak_per_ns();
    printf("vpdpbusd zmm peak: %.2f a nanosecond = %.0f G multiply-adds/s on one thread\n", p, p * 64);
    free(wf);
    free(w);
    free(panel);
    free(xu);
    return 0;
}
