/* bench_host_buffers.c -- two host costs on the way to a vision tower, for a
 * 6400-patch image (80x80 grid) of the 9B shape, three runs each:
 *  - identifying its 28 MB of pixel rows for the prompt cache: SipHash-2-4 over
 *    64-bit words (glmv_siphash, which session.c runs per 1 MiB chunk on the model's threads:
 *    glmv_siphash_chunked) against byte-wise
 *    FNV-1a (what it used before);
 *  - writing its 39 MB position table into freshly allocated memory (page
 *    faults each call) against memory already mapped (the kept scratch).
 * Not part of the build:
 *   make && cc -O2 -std=c11 -D_GNU_SOURCE -Isrc -Iinclude -o bench_host_buffers \
 *      scripts/bench_host_buffers.c build/release/libglmv.a -lpthread -lm && ./bench_host_buffers
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static volatile uint64_t sink;

int main(void) {
    size_t rows = (size_t)6400 * 1176 * sizeof(float), table = (size_t)6400 * 1536 * sizeof(float);
    unsigned char *px = malloc(rows), *kept = malloc(table);
    if (!px || !kept) return 1;
    for (size_t i = 0; i < rows; i++) px[i] = (unsigned char)(i * 131);
    memset(kept, 0, table);
    for (int r = 0; r < 3; r++) {
        double t = glmv_now_ms();
        sink = glmv_siphash(glmv_hash_key(), px, rows);
        double sip = glmv_now_ms() - t;
        t = glmv_now_ms();
        sink = fnv1a(px, rows);
        printf("hash %zu MB: siphash %.1f ms, fnv-1a %.1f ms\n", rows >> 20, sip, glmv_now_ms() - t);
    }
    for (int r = 0; r < 3; r++) {
        double t = glmv_now_ms();
        unsigned char *fresh = malloc(table);
        if (!fresh) return 1;
        for (size_t i = 0; i < table; i += 64) fresh[i] = (unsigned char)i;
        sink = fresh[table / 2];
        free(fresh);
        double f = glmv_now_ms() - t;
        t = glmv_now_ms();
        for (size_t i = 0; i < table; i += 64) kept[i] = (unsigned char)i;
        sink = kept[table / 3];
        printf("write %zu MB table: fresh memory %.1f ms, kept %.1f ms\n", table >> 20, f,
               glmv_now_ms() - t);
    }
    free(px);
    free(kept);
    return 0;
}
