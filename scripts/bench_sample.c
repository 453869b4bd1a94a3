/* bench_sample.c -- host time of glmv_sample for one token of the 9B's vocabulary (151,552
 * logits) with GLM-4.1V's published sampling (do_sample, top_k 2, top_p 1e-5), over 20 rows
 * of random logits; prints the mean and a checksum of the drawn ids (the same before and
 * after a change that keeps the semantics). Not part of the build:
 *   make && cc -O2 -std=c11 -D_GNU_SOURCE -Isrc -Iinclude -o bench_sample \
 *      scripts/bench_sample.c build/release/libglmv.a -lm -lpthread && ./bench_sample
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base.h"
#include "model.h"
int main(void) {
    enum { V = 151552 };
    float *l = malloc(sizeof(float) * V), *w = malloc(sizeof(float) * V);
    int32_t *wi = malloc(sizeof(int32_t) * V);
    glmv_sampling s; memset(&s, 0, sizeof s);
    s.do_sample = 1; s.temperature = 1.0f; s.top_k = 2; s.top_p = 1e-5f; s.repetition_penalty = 1.0f;
    glmv_rng r; glmv_rng_seed(&r, 1);
    srand(1);
    double t = 0; int n = 20; long acc = 0;
    for (int it = 0; it < n; it++) {
        for (int i = 0; i < V; i++) l[i] = (float)rand() / RAND_MAX * 20.0f;
        struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
        acc += glmv_sample(l, V, &s, NULL, 0, NULL, 0, &r, w, wi);
        clock_gettime(CLOCK_MONOTONIC, &b);
        t += (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    }
    printf("top_k 2, top_p 1e-5: %.3f ms a token (%ld)\n", t / n, acc);
    return 0;
}
