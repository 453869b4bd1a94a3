/* kernels_avx512.c -- the CPU kernels for AVX-512 (F, BW, VL, DQ; 16 float
 * lanes) and, in the same file, the AVX512-BF16 GEMM (vdpbf16ps).
 *
 * The Makefile compiles this file with the AVX-512 and BF16 flags; backend.c
 * uses glmv_cpu_kernels_avx512 only when the CPU has avx512f/bw/vl/dq, and
 * glmv_cpu_kernels_avx512bf16 only when it also has avx512bf16. The generic
 * kernels come from kernels_body.h. GEMM tile: 8 rows x 32 columns (16 zmm
 * accumulators). The bf16 GEMM rounds x to bf16 (as llama.cpp does for BF16
 * weights): faster, about 1e-6 relative error per product (test_ops states it).
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "base.h"
#include "cpu/kernels.h"
#include "quant.h"

typedef __m512 vf;
#define VL 16
#define KMR 8
#define KSUF(name) name##_avx512

#define vzero() _mm512_setzero_ps()
#define vset1(a) _mm512_set1_ps(a)
#define vloadu(p) _mm512_loadu_ps(p)
#define vstoreu(p, v) _mm512_storeu_ps((p), (v))
#define vadd(a, b) _mm512_add_ps((a), (b))
#define vsub(a, b) _mm512_sub_ps((a), (b))
#define vmul(a, b) _mm512_mul_ps((a), (b))
#define vdiv(a, b) _mm512_div_ps((a), (b))
#define vmax(a, b) _mm512_max_ps((a), (b))
#define vmin(a, b) _mm512_min_ps((a), (b))
#define vfma(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define vround(a) _mm512_roundscale_ps((a), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vpow2i(n) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define vload_bf16(p) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define vload_f16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define vhsum(v) _mm512_reduce_add_ps(v)
#define vhmax(v) _mm512_reduce_max_ps(v)

#define MV_PAIRS /* 32 registers: the matrix-vector kernel takes output rows two at a time */
#include "cpu/kernels_body.h"

/* ------------------------------------------------------------------------ */
/* AVX512-BF16 GEMM                                                         */
/* ------------------------------------------------------------------------ */

static void to_bf16_avx512bf16(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
    }
    for (; i < n; i++) dst[i] = glmv_f32_to_bf16(src[i]);
}

KINLINE void kern_bf16_m(const int M, int64_t K2, const uint16_t *A, int64_t lda,
                         const uint16_t *B, float *C, int64_t ldc, int acc) {
    __m512 c0[KMR], c1[KMR];
    UNROLL for (int i = 0; i < M; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t p = 0; p < K2; p++) {
        __m512i b0 = _mm512_loadu_si512(B + p * 2 * NRV);
        __m512i b1 = _mm512_loadu_si512(B + p * 2 * NRV + 32);
        UNROLL for (int i = 0; i < M; i++) {
            uint32_t pair;
            memcpy(&pair, A + i * lda + 2 * p, 4);
            __m512i a = _mm512_set1_epi32((int)pair);
            c0[i] = _mm512_dpbf16_ps(c0[i], (__m512bh)a, (__m512bh)b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], (__m512bh)a, (__m512bh)b1);
        }
    }
    UNROLL for (int i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (acc) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_loadu_ps(c));
            c1[i] = _mm512_add_ps(c1[i], _mm512_loadu_ps(c + 16));
        }
        _mm512_storeu_ps(c, c0[i]);
        _mm512_storeu_ps(c + 16, c1[i]);
    }
}

static void kern_bf16_avx512bf16(int64_t K2, const uint16_t *A, int64_t lda, const uint16_t *B,
                                 float *C, int64_t ldc, int mr, int acc) {
    switch (mr) {
#define KCASE(r) case r: kern_bf16_m(r, K2, A, lda, B, C, ldc, acc); break;
    KCASE(1) KCASE(2) KCASE(3) KCASE(4) KCASE(5) KCASE(6) KCASE(7)
    default: kern_bf16_m(KMR, K2, A, lda, B, C, ldc, acc); break;
#undef KCASE
    }
}

/* Decode in bf16 precision: 32 pairs of products a vdpbf16ps, two chains of them, so that
 * one load and one product cover 64 bytes of weights (converting bf16 to float32 first
 * costs three instructions for each 32 bytes, and ran 43 GB/s where this runs 57 on 2 Zen 5
 * cores); each row of x summed alone, the same for any m. */
KINLINE void mv_bf16_m(const int M, float *y, int64_t ldy, const uint16_t *xb, int64_t ldxb,
                       const uint16_t *w, int64_t k, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o++) {
        const uint16_t *wr = w + o * k;
        __m512 a0[GLMV_MV_MAX], a1[GLMV_MV_MAX];
        UNROLL for (int i = 0; i < M; i++) a0[i] = a1[i] = _mm512_setzero_ps();
        int64_t j = 0;
        for (; j + 64 <= k; j += 64) {
            __m512i w0 = _mm512_loadu_si512(wr + j), w1 = _mm512_loadu_si512(wr + j + 32);
            UNROLL for (int i = 0; i < M; i++) {
                a0[i] = _mm512_dpbf16_ps(a0[i], (__m512bh)_mm512_loadu_si512(xb + i * ldxb + j), (__m512bh)w0);
                a1[i] = _mm512_dpbf16_ps(a1[i], (__m512bh)_mm512_loadu_si512(xb + i * ldxb + j + 32),
                                         (__m512bh)w1);
            }
        }
        if (j + 32 <= k) {
            __m512i w0 = _mm512_loadu_si512(wr + j);
            UNROLL for (int i = 0; i < M; i++)
                a0[i] = _mm512_dpbf16_ps(a0[i], (__m512bh)_mm512_loadu_si512(xb + i * ldxb + j), (__m512bh)w0);
            j += 32;
        }
        UNROLL for (int i = 0; i < M; i++) {
            float t = _mm512_reduce_add_ps(_mm512_add_ps(a0[i], a1[i]));
            for (int64_t e = j; e < k; e++) t += glmv_bf16_to_f32(xb[i * ldxb + e]) * glmv_bf16_to_f32(wr[e]);
            y[i * ldy + o] = t;
        }
    }
}

/* The same for 2 to 4 rows of x: output rows two at a time, so that each vector of x loaded
 * serves both, and the columns in blocks of MVB_KB, so that the rows' block of x (8 KB for 4
 * rows) stays in L1 while MVB_OB output pairs use it; each pair's accumulators wait in memory
 * between blocks, and the next pair's weights are asked for a line a row per step. (One output
 * row at a time over all of k, 3 or 4 rows of x ran at half the speed of memory: x's rows, 8 to
 * 27 KB each, were evicted from L1 by the weights streaming through it. One 9B layer's products
 * on 2 Zen 5 cores, 4 rows: 12.8 ms that way, 7.9-8.3 ms with blocks of 1,024 columns, 8.6-8.8
 * with 512, 8.6-9.6 with 2,048, 10.3 with 4,096; one row: 6.9-7.5.) Each output is summed
 * exactly as mv_bf16_m sums it (the same two chains over the same 64-element steps, the same
 * tail), so the results depend neither on the blocking nor on m. */
/* (Prefetching two pairs ahead, as the float32 kernel does, ran 8.4-8.7 ms against 7.8-8.0 for 4 rows.) */
#define MVB_KB 1024
#define MVB_OB 8
KINLINE void mv_bf16_blocked(const int M, float *y, int64_t ldy, const uint16_t *xb, int64_t ldxb,
                             const uint16_t *w, int64_t k, int64_t o0, int64_t o1) {
    const int64_t kv = k / 64 * 64;
    while (o0 + 2 <= o1) {
        const int np = (o1 - o0) / 2 < MVB_OB ? (int)((o1 - o0) / 2) : MVB_OB;
        __m512 acc[MVB_OB][4][GLMV_MV_MAX];
        for (int p = 0; p < np; p++)
            UNROLL for (int i = 0; i < M; i++) acc[p][0][i] = acc[p][1][i] = acc[p][2][i] = acc[p][3][i] =
                _mm512_setzero_ps();
        for (int64_t j0 = 0; j0 < kv; j0 += MVB_KB) {
            const int64_t j1 = j0 + MVB_KB < kv ? j0 + MVB_KB : kv;
            for (int p = 0; p < np; p++) {
                const uint16_t *wr = w + (o0 + 2 * p) * k, *wq = wr + k;
                /* next from memory: the next pair's rows, or after the last pair the first pair's
                 * next block */
                const int64_t pf_d = p + 1 < np ? 2 * k : MVB_KB - 2 * (int64_t)p * k;
                const int pf_on = p + 1 < np || j1 < kv;
                __m512 a0[GLMV_MV_MAX], a1[GLMV_MV_MAX], b0[GLMV_MV_MAX], b1[GLMV_MV_MAX];
                UNROLL for (int i = 0; i < M; i++) {
                    a0[i] = acc[p][0][i];
                    a1[i] = acc[p][1][i];
                    b0[i] = acc[p][2][i];
                    b1[i] = acc[p][3][i];
                }
                for (int64_t j = j0; j < j1; j += 64) {
                    if (pf_on) {
                        _mm_prefetch((const char *)(wr + j + pf_d), _MM_HINT_T0);
                        _mm_prefetch((const char *)(wr + j + 32 + pf_d), _MM_HINT_T0);
                        _mm_prefetch((const char *)(wq + j + pf_d), _MM_HINT_T0);
                        _mm_prefetch((const char *)(wq + j + 32 + pf_d), _MM_HINT_T0);
                    }
                    const __m512i w0 = _mm512_loadu_si512(wr + j), w1 = _mm512_loadu_si512(wr + j + 32);
                    const __m512i u0 = _mm512_loadu_si512(wq + j), u1 = _mm512_loadu_si512(wq + j + 32);
                    UNROLL for (int i = 0; i < M; i++) {
                        const __m512bh x0 = (__m512bh)_mm512_loadu_si512(xb + i * ldxb + j);
                        const __m512bh x1 = (__m512bh)_mm512_loadu_si512(xb + i * ldxb + j + 32);
                        a0[i] = _mm512_dpbf16_ps(a0[i], x0, (__m512bh)w0);
                        a1[i] = _mm512_dpbf16_ps(a1[i], x1, (__m512bh)w1);
                        b0[i] = _mm512_dpbf16_ps(b0[i], x0, (__m512bh)u0);
                        b1[i] = _mm512_dpbf16_ps(b1[i], x1, (__m512bh)u1);
                    }
                }
                UNROLL for (int i = 0; i < M; i++) {
                    acc[p][0][i] = a0[i];
                    acc[p][1][i] = a1[i];
                    acc[p][2][i] = b0[i];
                    acc[p][3][i] = b1[i];
                }
            }
        }
        for (int p = 0; p < np; p++) { /* mv_bf16_m's 32-element step and scalar tail, then the sums */
            const uint16_t *wr = w + (o0 + 2 * p) * k, *wq = wr + k;
            int64_t j = kv;
            if (j + 32 <= k) {
                const __m512i w0 = _mm512_loadu_si512(wr + j), u0 = _mm512_loadu_si512(wq + j);
                UNROLL for (int i = 0; i < M; i++) {
                    const __m512bh x0 = (__m512bh)_mm512_loadu_si512(xb + i * ldxb + j);
                    acc[p][0][i] = _mm512_dpbf16_ps(acc[p][0][i], x0, (__m512bh)w0);
                    acc[p][2][i] = _mm512_dpbf16_ps(acc[p][2][i], x0, (__m512bh)u0);
                }
                j += 32;
            }
            UNROLL for (int i = 0; i < M; i++) {
                float t = _mm512_reduce_add_ps(_mm512_add_ps(acc[p][0][i], acc[p][1][i]));
                float u = _mm512_reduce_add_ps(_mm512_add_ps(acc[p][2][i], acc[p][3][i]));
                for (int64_t e = j; e < k; e++) {
                    t += glmv_bf16_to_f32(xb[i * ldxb + e]) * glmv_bf16_to_f32(wr[e]);
                    u += glmv_bf16_to_f32(xb[i * ldxb + e]) * glmv_bf16_to_f32(wq[e]);
                }
                y[i * ldy + o0 + 2 * p] = t;
                y[i * ldy + o0 + 2 * p + 1] = u;
            }
        }
        o0 += 2 * np;
    }
    if (o0 < o1) mv_bf16_m(M, y, ldy, xb, ldxb, w, k, o0, o1);
}

static void matvec_bf16_avx512bf16(float *y, int64_t ldy, const uint16_t *xb, int64_t ldxb, int m,
                                   const uint16_t *w, int64_t k, int64_t o0, int64_t o1) {
    switch (m) {
    case 1: mv_bf16_m(1, y, ldy, xb, ldxb, w, k, o0, o1); break;
    case 2: mv_bf16_blocked(2, y, ldy, xb, ldxb, w, k, o0, o1); break;
    case 3: mv_bf16_blocked(3, y, ldy, xb, ldxb, w, k, o0, o1); break;
    default: mv_bf16_blocked(GLMV_MV_MAX, y, ldy, xb, ldxb, w, k, o0, o1); break;
    }
}

/* The bf16 panel (glmv_cpu_pack_bf16: dst[p][c] = the pair w[n0 + c][k0 + 2p ..]) is the
 * transpose of the panel's rows read as 32-bit pairs: 16 columns by 16 pairs at a time, a
 * 16x16 transpose of dwords in registers (two unpack stages within 128-bit lanes, two lane
 * shuffles), one 64-byte store per pair; the ragged edges (columns past the last 16, pairs
 * past the last 16, an odd kk) as the portable packer writes them. Each column is its own
 * stream through memory, more than the hardware prefetcher follows: the next k-block is
 * asked for while this one is read. */
KINLINE void transpose16_epi32(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int j = 0; j < 4; j++) { /* u[4j + m], lane L: rows 4j..4j+3 of element 4L + m */
        u[4 * j] = _mm512_unpacklo_epi64(t[4 * j], t[4 * j + 2]);
        u[4 * j + 1] = _mm512_unpackhi_epi64(t[4 * j], t[4 * j + 2]);
        u[4 * j + 2] = _mm512_unpacklo_epi64(t[4 * j + 1], t[4 * j + 3]);
        u[4 * j + 3] = _mm512_unpackhi_epi64(t[4 * j + 1], t[4 * j + 3]);
    }
    for (int m = 0; m < 4; m++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x44), v1 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xEE);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x44);
        __m512i v3 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xEE);
        r[m] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[4 + m] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        r[8 + m] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + m] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

static void pack_bf16_avx512(uint16_t *dst, int nr, const uint16_t *w, int64_t k, int64_t n0, int nn,
                             int64_t k0, int64_t kk) {
    int64_t whole = kk / 2, k2 = (kk + 1) / 2, pv = whole / 16 * 16;
    int nc = nn / 16 * 16;
    int64_t ahead = GLMV_MIN(kk, k - k0 - kk); /* elements of the next k-block to ask for */
    for (int cb = 0; cb < nc; cb += 16) {
        const uint16_t *s = w + (n0 + cb) * k + k0;
        for (int64_t p = 0; p < pv; p += 16) {
            __m512i r[16];
            UNROLL for (int i = 0; i < 16; i++) {
                r[i] = _mm512_loadu_si512(s + i * k + 2 * p);
                if (2 * p < ahead) _mm_prefetch((const char *)(s + i * k + kk + 2 * p), _MM_HINT_T0);
            }
            transpose16_epi32(r);
            UNROLL for (int q = 0; q < 16; q++) _mm512_storeu_si512(dst + (p + q) * 2 * nr + 2 * cb, r[q]);
        }
    }
    for (int c = 0; c < nr; c++) { /* the edges */
        uint16_t *d = dst + 2 * c;
        const uint16_t *s = w + (n0 + c) * k + k0;
        for (int64_t p = c < nc ? pv : 0; p < k2; p++) {
            uint32_t v = 0;
            if (c < nn && p < whole) memcpy(&v, s + 2 * p, 4);
            else if (c < nn) v = s[2 * p];
            memcpy(d + p * 2 * nr, &v, 4);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Q4_0 and Q5_0 decode with AVX512-VNNI (every AVX512-BF16 CPU has it:     */
/* backend.c asks for both): two blocks per 512-bit vector, their values as */
/* unsigned bytes (Q4_0: the nibbles; Q5_0: with each fifth bit set through */
/* a byte mask) into vpdpbusd against x's int8, each lane started from x's  */
/* correction (-8 or -16 x the sum of its 4 bytes), so it holds             */
/* Σ (q - offset)·x exactly; then scaled by d_w·d_x of its block. Two       */
/* accumulators (pairs of blocks alternate); the same operations for every  */
/* row, whatever M is.                                                      */
/* ------------------------------------------------------------------------ */
#define VNNI __attribute__((target("avx512vnni")))
#define MV_PF 9216 /* software prefetch distance of the decode kernels, bytes */

/* a Q4_0 (q5 = 0) or Q5_0 block's 32 values as unsigned bytes, elements 0..31: the low nibbles
 * of qs (after d, and Q5_0's qh), then the high ones */
VNNI KINLINE __m256i q45_bytes(const uint8_t *blk, const int q5) {
    const __m128i t = _mm_loadu_si128((const __m128i *)(blk + (q5 ? 6 : 2)));
    const __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(15));
    if (!q5) return v;
    uint32_t qh;
    memcpy(&qh, blk + 2, 4);
    return _mm256_or_si256(v, _mm256_maskz_mov_epi8((__mmask32)qh, _mm256_set1_epi8(16)));
}

/* blocks b and b + 1 of the row (bb bytes each, d first) into acc[i] for the M rows of x */
#define Q45_PAIR(b, acc)                                                                           \
    do {                                                                                           \
        const uint8_t *p0 = row + (b) * bb, *p1 = p0 + bb;                                         \
        __m512i wz;                                                                                \
        __m512 dw;                                                                                 \
        if (q5) {                                                                                  \
            wz = _mm512_inserti64x4(_mm512_castsi256_si512(q45_bytes(p0, q5)), q45_bytes(p1, q5), 1); \
            uint16_t d0, d1;                                                                       \
            memcpy(&d0, p0, 2);                                                                    \
            memcpy(&d1, p1, 2);                                                                    \
            dw = _mm512_permutexvar_ps(sidx, _mm512_castps128_ps512(_mm_cvtph_ps(                  \
                                                 _mm_cvtsi32_si128((int)((uint32_t)d0 | (uint32_t)d1 << 16))))); \
        } else { /* Q4_0: the two blocks' 36 bytes in one load, their qs words each twice (low    \
                  * nibbles, high nibbles) and their d eight times each by word permutes */      \
            const __m512i raw = _mm512_maskz_loadu_epi16(0x3FFFF, p0);                            \
            const __m512i q = _mm512_permutexvar_epi16(q4_qidx, raw);                              \
            wz = _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xFF00FF00u, q, 4), _mm512_set1_epi8(15)); \
            dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(q4_didx, raw)));  \
        }                                                                                          \
        UNROLL for (int i = 0; i < M; i++) {                                                       \
            const __m512i p = _mm512_dpbusd_epi32(_mm512_loadu_si512(xc + i * lds + (b) * 8), wz,    \
                                                  _mm512_loadu_si512(xq + i * ldxq + (b) * 32));   \
            const __m512 xs = _mm512_permutexvar_ps(                                                \
                sidx, _mm512_castps128_ps512(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(xd + i * ldd + (b)))))); \
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, xs), acc[i]);        \
        }                                                                                          \
    } while (0)

VNNI KINLINE void mvq45_vnni(float *y, int64_t ldy, const int8_t *xq, const float *xd, const int32_t *xc,
                             int64_t ldxq, const int M, const void *w, const int q5, int64_t k, int64_t o0,
                             int64_t o1) {
    const int64_t nb = k / 32, ldd = ldxq / 32, lds = ldxq / 4;
    const int64_t bb = q5 ? (int64_t)sizeof(glmv_block_q5_0) : (int64_t)sizeof(glmv_block_q4_0);
    const __m512i sidx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    /* Q4_0 pairs (18 words): words 1-8 (block b's qs) twice, then words 10-17 twice; word 0
     * (block b's d) eight times, then word 9 */
    const __m512i q4_qidx = _mm512_set_epi16(17, 16, 15, 14, 13, 12, 11, 10, 17, 16, 15, 14, 13, 12, 11, 10,
                                             8, 7, 6, 5, 4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1);
    const __m512i q4_didx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                             9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *row = (const uint8_t *)w + o * nb * bb;
        __m512 a0[4], a1[4];
        UNROLL for (int i = 0; i < M; i++) a0[i] = a1[i] = _mm512_setzero_ps();
        int64_t b = 0;
        for (; b + 3 < nb; b += 4) {
            /* the bytes MV_PF ahead (the next rows' near the row's end): this kernel's
             * unpacking leaves too few loads in flight for the hardware prefetcher alone */
            _mm_prefetch((const char *)row + b * bb + MV_PF, _MM_HINT_T0);
            _mm_prefetch((const char *)row + b * bb + MV_PF + 64, _MM_HINT_T0);
            Q45_PAIR(b, a0);
            Q45_PAIR(b + 2, a1);
        }
        if (b + 1 < nb) {
            Q45_PAIR(b, a0);
            b += 2;
        }
        if (b < nb) { /* an odd last block, in 256 bits */
            const __m256i wv = q45_bytes(row + b * bb, q5);
            uint16_t dh;
            memcpy(&dh, row + b * bb, 2);
            const float dw = _cvtsh_ss(dh);
            UNROLL for (int i = 0; i < M; i++) {
                const __m256i p = _mm256_dpbusd_epi32(_mm256_loadu_si256((const __m256i *)(xc + i * lds + b * 8)),
                                                      wv, _mm256_loadu_si256((const __m256i *)(xq + i * ldxq + b * 32)));
                a1[i] = _mm512_add_ps(a1[i], _mm512_zextps256_ps512(_mm256_mul_ps(
                                                 _mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * xd[i * ldd + b]))));
            }
        }
        UNROLL for (int i = 0; i < M; i++) y[i * ldy + o] = _mm512_reduce_add_ps(_mm512_add_ps(a0[i], a1[i]));
    }
}
#undef Q45_PAIR

/* Q4_K and Q6_K with AVX512-VNNI: 64 elements a vector (Q4_K: a qs word pair's low then high
 * nibbles, sub-blocks 2p and 2p+1; Q6_K: two quarters of a half super-block), unsigned values
 * into vpdpbusd against x's int8 (Q6_K's lanes started from x's corrections, -32 x the sum of
 * their 4 bytes: Σ (q - 32)·x exactly), then each lane's integer sum times its sub-block's
 * scale and its block's d_x. Q4_K's mins: d_min·m·d_x times x's block sums, in 8 lanes apart.
 * The same operations for every row, whatever M is. */
VNNI KINLINE __m512i cat256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

VNNI KINLINE void mvk_vnni(float *y, int64_t ldy, const int8_t *xq, const float *xd, const int32_t *xc,
                           int64_t ldxq, const int M, const void *w, const int q6, int64_t k, int64_t o0,
                           int64_t o1) {
    const int64_t nsb = k / 256, ldd = ldxq / 32, lds = ldxq / 4;
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
    /* lane -> source element of a factor vector: Q4_K pair p: 2p x 8, 2p+1 x 8; Q6_K: g x 4 */
    const __m512i two = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i four = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    for (int64_t o = o0; o < o1; o++) {
        __m512 acc[4];
        __m256 macc[4];
        UNROLL for (int i = 0; i < M; i++) acc[i] = _mm512_setzero_ps(), macc[i] = _mm256_setzero_ps();
        for (int64_t s = 0; s < nsb; s++) {
            const int64_t e0 = s * 256;
            if (!q6) { /* as in mvq45_vnni: the bytes MV_PF ahead */
                const char *pf = (const char *)w + (o * nsb + s) * (int64_t)sizeof(glmv_block_q4_k) + MV_PF;
                _mm_prefetch(pf, _MM_HINT_T0);
                _mm_prefetch(pf + 64, _MM_HINT_T0);
                _mm_prefetch(pf + 128, _MM_HINT_T0);
            }
            if (!q6) {
                const glmv_block_q4_k *B = (const glmv_block_q4_k *)w + o * nsb + s;
                /* the 8 six-bit scales and mins (glmv_q4_k_scale_min) as bytes of 32-bit words:
                 * sc0..3 = u0 & 63, m0..3 = u1 & 63, sc4..7 = (u2 & 15) | (u0 >> 6) << 4,
                 * m4..7 = (u2 >> 4 & 15) | (u1 >> 6) << 4, byte by byte */
                uint32_t u0, u1, u2;
                memcpy(&u0, B->scales, 4);
                memcpy(&u1, B->scales + 4, 4);
                memcpy(&u2, B->scales + 8, 4);
                const uint32_t s_lo = u0 & 0x3f3f3f3fu, m_lo = u1 & 0x3f3f3f3fu;
                const uint32_t s_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4;
                const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4;
                const __m256 vs = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(B->d)),
                                                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)s_hi, (int)s_lo))));
                const __m256 vm = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(B->dmin)),
                                                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)m_hi, (int)m_lo))));
                __m512i wz[4];
                for (int p = 0; p < 4; p++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(B->qs + 32 * p));
                    wz[p] = cat256(_mm256_and_si256(v, m4), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
                }
                UNROLL for (int i = 0; i < M; i++) {
                    const __m256 dx = _mm256_loadu_ps(xd + i * ldd + s * 8);
                    const __m512 f = _mm512_castps256_ps512(_mm256_mul_ps(vs, dx));
                    macc[i] = _mm256_fmadd_ps(_mm256_mul_ps(vm, dx),
                                              _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(xc + i * lds + s * 8))),
                                              macc[i]);
                    for (int p = 0; p < 4; p++) {
                        const __m512i x = _mm512_loadu_si512(xq + i * ldxq + e0 + 64 * p);
                        const __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wz[p], x);
                        const __m512i idx = _mm512_add_epi32(two, _mm512_set1_epi32(2 * p));
                        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_permutexvar_ps(idx, f), acc[i]);
                    }
                }
            } else {
                const glmv_block_q6_k *B = (const glmv_block_q6_k *)w + o * nsb + s;
                const __m512 sc = _mm512_mul_ps(
                    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)B->scales))),
                    _mm512_set1_ps(_cvtsh_ss(B->d)));
                __m512i wz[4];
                for (int n = 0; n < 2; n++) {
                    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(B->ql + 64 * n));
                    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(B->ql + 64 * n + 32));
                    const __m256i h = _mm256_loadu_si256((const __m256i *)(B->qh + 32 * n));
#define Q6U(lo, sh) _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, sh), m2), 4))
                    wz[2 * n] = cat256(Q6U(_mm256_and_si256(l0, m4), 0), Q6U(_mm256_and_si256(l1, m4), 2));
                    wz[2 * n + 1] = cat256(Q6U(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), 4),
                                           Q6U(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), 6));
#undef Q6U
                }
                UNROLL for (int i = 0; i < M; i++) {
                    /* one factor per 16 elements: d·s_g·d_x of its block */
                    const __m512 f = _mm512_mul_ps(
                        sc, _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(xd + i * ldd + s * 8))));
                    for (int z = 0; z < 4; z++) {
                        const __m512i x = _mm512_loadu_si512(xq + i * ldxq + e0 + 64 * z);
                        const __m512i c = _mm512_loadu_si512(xc + i * lds + (e0 + 64 * z) / 4);
                        const __m512i sum = _mm512_dpbusd_epi32(c, wz[z], x);
                        const __m512i idx = _mm512_add_epi32(four, _mm512_set1_epi32(4 * z));
                        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_permutexvar_ps(idx, f), acc[i]);
                    }
                }
            }
        }
        UNROLL for (int i = 0; i < M; i++) {
            float mn = 0;
            if (!q6) {
                __m128 t = _mm_add_ps(_mm256_castps256_ps128(macc[i]), _mm256_extractf128_ps(macc[i], 1));
                t = _mm_add_ps(t, _mm_movehl_ps(t, t));
                mn = _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
            }
            y[i * ldy + o] = _mm512_reduce_add_ps(acc[i]) - mn;
        }
    }
}

VNNI static void matvec_q_avx512vnni(float *y, int64_t ldy, const int8_t *xq, const float *xd,
                                     const int32_t *xc, int64_t ldxq, int m, const void *w,
                                     glmv_dtype dt, int64_t k, int64_t o0, int64_t o1) {
#define VCASES(CALL)                                                                                 \
    switch (m) {                                                                                     \
    case 1: CALL(1); break;                                                                          \
    case 2: CALL(2); break;                                                                          \
    case 3: CALL(3); break;                                                                          \
    default: CALL(4); break;                                                                         \
    }
#define Q4(M_) mvq45_vnni(y, ldy, xq, xd, xc, ldxq, M_, w, 0, k, o0, o1)
#define Q5(M_) mvq45_vnni(y, ldy, xq, xd, xc, ldxq, M_, w, 1, k, o0, o1)
#define QK(M_) mvk_vnni(y, ldy, xq, xd, xc, ldxq, M_, w, 0, k, o0, o1)
#define Q6(M_) mvk_vnni(y, ldy, xq, xd, xc, ldxq, M_, w, 1, k, o0, o1)
    switch (dt) {
    case GLMV_Q4_0: VCASES(Q4) break;
    case GLMV_Q5_0: VCASES(Q5) break;
    case GLMV_Q4_K: VCASES(QK) break;
    case GLMV_Q6_K: VCASES(Q6) break;
    default: matvec_q_avx512(y, ldy, xq, xd, xc, ldxq, m, w, dt, k, o0, o1); break;
    }
#undef Q4
#undef Q5
#undef QK
#undef Q6
#undef VCASES
}

/* ------------------------------------------------------------------------ */
/* int8 GEMM with AVX512-VNNI (kern_q; panel layout in kernels.h): a tile   */
/* of QMR rows by 32 columns, one int32 accumulator pair per row started    */
/* from the block's init (undoing x's +128), 4 bytes of x broadcast against */
/* 4 bytes of each of 32 columns per vpdpbusd, then each block's integer    */
/* sums to float, times d_x, into the float tile by fma with the columns'   */
/* scales (and, Q4_K, minus min·d_x·Σq): the float operations of            */
/* glmv_cpu_kern_q_scalar, in its order.                                    */
/* ------------------------------------------------------------------------ */
#define QMR 6

VNNI KINLINE void kern_q_m(const int M, const int L, int64_t nblk, const uint8_t *A, int64_t lda,
                           const float *ad, const float *as, int64_t ldad, const int8_t *P, float *C,
                           int64_t ldc, int acc) {
    const int64_t bs = (int64_t)L * 32 + 12 * 32;
    __m512 f0[QMR], f1[QMR];
    UNROLL for (int i = 0; i < M; i++) f0[i] = f1[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nblk; b++) {
        const int8_t *pb = P + b * bs;
        const int8_t *tail = pb + L * 32;
        const uint8_t *xb = A + b * L;
        __m512i a0[QMR], a1[QMR];
        UNROLL for (int i = 0; i < M; i++) {
            a0[i] = _mm512_loadu_si512(tail);
            a1[i] = _mm512_loadu_si512(tail + 64);
        }
        UNROLL for (int g = 0; g < L / 4; g++) {
            const __m512i w0 = _mm512_loadu_si512(pb + g * 128), w1 = _mm512_loadu_si512(pb + g * 128 + 64);
            UNROLL for (int i = 0; i < M; i++) {
                int32_t xv;
                memcpy(&xv, xb + i * lda + 4 * g, 4);
                const __m512i xx = _mm512_set1_epi32(xv);
                a0[i] = _mm512_dpbusd_epi32(a0[i], xx, w0);
                a1[i] = _mm512_dpbusd_epi32(a1[i], xx, w1);
            }
        }
        const __m512 s0 = _mm512_loadu_ps((const float *)(tail + 128)), s1 = _mm512_loadu_ps((const float *)(tail + 192));
        const int64_t bx = b * L / 32;
        UNROLL for (int i = 0; i < M; i++) {
            const __m512 d = _mm512_set1_ps(ad[i * ldad + bx]);
            f0[i] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(a0[i]), d), s0, f0[i]);
            f1[i] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(a1[i]), d), s1, f1[i]);
        }
        if (as) {
            const __m512 o0 = _mm512_loadu_ps((const float *)(tail + 256)), o1 = _mm512_loadu_ps((const float *)(tail + 320));
            UNROLL for (int i = 0; i < M; i++) {
                const __m512 e = _mm512_set1_ps(as[i * ldad + bx]);
                f0[i] = _mm512_fnmadd_ps(o0, e, f0[i]);
                f1[i] = _mm512_fnmadd_ps(o1, e, f1[i]);
            }
        }
    }
    UNROLL for (int i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (acc) {
            f0[i] = _mm512_add_ps(_mm512_loadu_ps(c), f0[i]);
            f1[i] = _mm512_add_ps(_mm512_loadu_ps(c + 16), f1[i]);
        }
        _mm512_storeu_ps(c, f0[i]);
        _mm512_storeu_ps(c + 16, f1[i]);
    }
}

/* The panel of glmv_cpu_pack_q, the same bytes, 16 columns at a time: each 32-bit group of 4
 * values gathered from the 16 rows, the nibbles (and Q5_0's fifth bits, spread from qh by a
 * multiply) unpacked in the lanes, the offsets taken off bytewise, the init from vpdpbusd
 * against ones. Q6_K and a ragged last panel go through the portable packer. */
VNNI static int pack_q_avx512vnni(int8_t *dst, const void *w, glmv_dtype dt, int64_t k, int64_t n0, int nn,
                                  int64_t k0, int64_t kk) {
    if (nn < 32 || dt == GLMV_Q6_K || (dt != GLMV_Q8_0 && dt != GLMV_Q4_0 && dt != GLMV_Q5_0 && dt != GLMV_Q4_K))
        return glmv_cpu_pack_q(dst, w, dt, k, n0, nn, k0, kk);
    const int64_t rb = (int64_t)glmv_dtype_row_bytes(dt, k), bs = 32 * 32 + 12 * 32;
    const __m512i vidx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32((int)rb));
    const __m512i m4 = _mm512_set1_epi8(15), ones = _mm512_set1_epi8(1), lo16 = _mm512_set1_epi32(0xffff);
    for (int h = 0; h < 2; h++) {
        const char *base = (const char *)w + (n0 + 16 * h) * rb;
        for (int64_t b32 = 0; b32 < kk / 32; b32++) {
            const int64_t b = k0 / 32 + b32;
            int8_t *pb = dst + b32 * bs;
            __m512i W[8];
            __m512 sc, o = _mm512_setzero_ps();
            if (dt == GLMV_Q4_K) {
                const char *sb = base + (b / 8) * (int64_t)sizeof(glmv_block_q4_k);
                const int sub = (int)(b % 8);
                const char *p = sb + 16 + 32 * (sub / 2);
                UNROLL for (int g = 0; g < 8; g++)
                    W[g] = _mm512_and_si512(_mm512_srli_epi32(_mm512_i32gather_epi32(vidx, p + 4 * g, 1), 4 * (sub % 2)), m4);
                float fs[16], fo[16];
                for (int c = 0; c < 16; c++) {
                    const glmv_block_q4_k *q = (const glmv_block_q4_k *)(sb + c * rb);
                    int s6, m6;
                    glmv_q4_k_scale_min(q->scales, sub, &s6, &m6);
                    fs[c] = _cvtsh_ss(q->d) * (float)s6;
                    fo[c] = _cvtsh_ss(q->dmin) * (float)m6;
                }
                sc = _mm512_loadu_ps(fs);
                o = _mm512_loadu_ps(fo);
            } else {
                const int64_t bb = dt == GLMV_Q8_0 ? 34 : dt == GLMV_Q4_0 ? 18 : 22;
                const char *p = base + b * bb;
                const __m512i dw = _mm512_and_si512(_mm512_i32gather_epi32(vidx, p, 1), lo16);
                sc = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dw));
                if (dt == GLMV_Q8_0) {
                    UNROLL for (int g = 0; g < 8; g++) W[g] = _mm512_i32gather_epi32(vidx, p + 2 + 4 * g, 1);
                } else {
                    const char *qs = p + (dt == GLMV_Q4_0 ? 2 : 6);
                    UNROLL for (int t = 0; t < 4; t++) {
                        const __m512i q = _mm512_i32gather_epi32(vidx, qs + 4 * t, 1);
                        W[t] = _mm512_and_si512(q, m4);
                        W[t + 4] = _mm512_and_si512(_mm512_srli_epi32(q, 4), m4);
                    }
                    if (dt == GLMV_Q4_0) {
                        UNROLL for (int g = 0; g < 8; g++) W[g] = _mm512_sub_epi8(W[g], _mm512_set1_epi8(8));
                    } else {
                        const __m512i qh = _mm512_i32gather_epi32(vidx, p + 2, 1);
                        UNROLL for (int g = 0; g < 8; g++) {
                            /* bits 4g..4g+3 of qh to bit 4 of bytes 0..3 */
                            const __m512i x = _mm512_and_si512(_mm512_srli_epi32(qh, 4 * g), _mm512_set1_epi32(15));
                            const __m512i sp = _mm512_and_si512(_mm512_mullo_epi32(x, _mm512_set1_epi32(0x00204081)),
                                                                _mm512_set1_epi32(0x01010101));
                            W[g] = _mm512_sub_epi8(_mm512_or_si512(W[g], _mm512_slli_epi32(sp, 4)), _mm512_set1_epi8(16));
                        }
                    }
                }
            }
            __m512i sum = _mm512_setzero_si512();
            UNROLL for (int g = 0; g < 8; g++) {
                _mm512_storeu_si512(pb + (g * 32 + 16 * h) * 4, W[g]);
                sum = _mm512_dpbusd_epi32(sum, ones, W[g]);
            }
            _mm512_storeu_si512(pb + 32 * 32 + 64 * h, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7)));
            _mm512_storeu_ps(pb + 32 * 32 + 128 + 64 * h, sc);
            _mm512_storeu_ps(pb + 32 * 32 + 256 + 64 * h, o);
        }
    }
    return 32;
}

VNNI static void kern_q_avx512vnni(int64_t nblk, int L, const uint8_t *A, int64_t lda, const float *ad,
                                   const float *as, int64_t ldad, const int8_t *P, float *C, int64_t ldc,
                                   int rows, int acc) {
#define QC(r)                                                                                            case r:                                                                                                  if (L == 32) kern_q_m(r, 32, nblk, A, lda, ad, as, ldad, P, C, ldc, acc);                            else kern_q_m(r, 16, nblk, A, lda, ad, as, ldad, P, C, ldc, acc);                                    break;
    switch (rows) {
        QC(1) QC(2) QC(3) QC(4) QC(5)
    default: QC(6)
    }
#undef QC
}

/* glmv_quantize_x_q8 16 lanes at a time, the same bytes: amax of the block, d = amax / 127,
 * q = roundf(x·(1/d)) (half away from zero: the truncation plus one step where the exact
 * remainder is half or more) */
static void quant_x_avx512(const float *x, int8_t *q, float *d, int64_t k) {
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    for (int64_t b = 0; b < k / 32; b++) {
        const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float db = amax / 127.0f, id = db != 0 ? 1.0f / db : 0.0f;
        d[b] = db;
        __m512 r[2] = {_mm512_mul_ps(v0, _mm512_set1_ps(id)), _mm512_mul_ps(v1, _mm512_set1_ps(id))};
        for (int h = 0; h < 2; h++) {
            const __m512 t = _mm512_roundscale_ps(r[h], _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m512 fr = _mm512_abs_ps(_mm512_sub_ps(r[h], t));
            const __mmask16 up = _mm512_cmp_ps_mask(fr, half, _CMP_GE_OQ);
            /* t ± 1 away from zero: the sign of r (t may be -0 or 0) */
            const __m512 st = _mm512_or_ps(one, _mm512_and_ps(r[h], _mm512_set1_ps(-0.0f)));
            const __m512 rr = _mm512_mask_add_ps(t, up, t, st);
            _mm_storeu_si128((__m128i *)(q + 32 * b + 16 * h), _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(rr)));
        }
    }
}

#define AVX512_COMMON                   \
    .mr = KMR,                          \
    .nr = NRV,                          \
    .matvec = matvec_avx512,            \
    .pack = pack_avx512,                \
    .kern = kern_avx512,                \
    .pack_kt = pack_kt_avx512,      \
    .dot = dot_avx512,                  \
    .axpy = axpy_avx512,                \
    .scale = scale_avx512,              \
    .to_f32 = to_f32_avx512,            \
    .max = max_avx512,                  \
    .exp_sum = exp_sum_avx512,          \
    .rmsnorm_row = rmsnorm_row_avx512,  \
    .layernorm_row = layernorm_row_avx512, \
    .swiglu_row = swiglu_row_avx512,    \
    .add = add_avx512

const glmv_cpu_kernels glmv_cpu_kernels_avx512 = {
    .name = "avx512",
    AVX512_COMMON,
    .matvec_q = matvec_q_avx512,
};

const glmv_cpu_kernels glmv_cpu_kernels_avx512bf16 = {
    .name = "avx512bf16",
    AVX512_COMMON,
    .matvec_q = matvec_q_avx512vnni,
    .mrq = QMR,
    .quant_x = quant_x_avx512,
    .kern_q = kern_q_avx512vnni,
    .pack_q = pack_q_avx512vnni,
    .to_bf16 = to_bf16_avx512bf16,
    .kern_bf16 = kern_bf16_avx512bf16,
    .pack_bf16 = pack_bf16_avx512,
    .matvec_bf16 = matvec_bf16_avx512bf16,
};
