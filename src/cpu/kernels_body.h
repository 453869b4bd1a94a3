/* kernels_body.h -- the CPU kernels, written once over a small vector vocabulary.
 *
 * Included by kernels_avx2.c (8 lanes) and kernels_avx512.c (16 lanes), which
 * define the vector type and operations (vf, VL, vfma, vload_bf16, ...) and
 * KSUF(name) to give each instruction set its own symbols. Everything here is
 * single-threaded; tails shorter than a vector run in scalar code, so any
 * size works. The GEMM register tile is KMR rows by 2*VL columns.
 */

#define NRV (2 * VL) /* GEMM tile columns */

#define KINLINE static inline __attribute__((always_inline))
/* the register tiles are arrays indexed by constant loops: unroll them fully so
 * the accumulators live in registers */
#define UNROLL _Pragma("GCC unroll 16")

KINLINE float sbf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* e^x for float32 lanes: range reduction by ln 2, degree-6 polynomial
 * (Cephes expf coefficients), 2^n built in the exponent bits; |rel err| < 2e-7.
 * Inputs are clamped to [-87.3, 88.3], so exp of very negative x is ~1e-38, not 0. */
KINLINE vf vexp(vf x) {
    x = vmin(vmax(x, vset1(-87.3f)), vset1(88.3f));
    vf n = vround(vmul(x, vset1(1.44269504088896341f)));
    vf r = vfma(n, vset1(-0.693359375f), x);
    r = vfma(n, vset1(2.12194440e-4f), r);
    vf p = vset1(1.9875691500e-4f);
    p = vfma(p, r, vset1(1.3981999507e-3f));
    p = vfma(p, r, vset1(8.3334519073e-3f));
    p = vfma(p, r, vset1(4.1665795894e-2f));
    p = vfma(p, r, vset1(1.6666665459e-1f));
    p = vfma(p, r, vset1(5.0000001201e-1f));
    p = vfma(p, vmul(r, r), vadd(r, vset1(1.0f)));
    return vmul(p, vpow2i(n));
}

/* ------------------------------------------------------------------------ */
/* matvec (decode)                                                          */
/* ------------------------------------------------------------------------ */

/* The accumulators are arrays of GLMV_MV_MAX vectors, indexed below M: an array of M (a function
 * parameter) is variable-length, and GCC then kept the accumulators of MV_BODY2K's inner loop in
 * memory, storing every one on every step (one 9B layer's products for 4 rows of x on 2 Zen 5
 * cores, f32: 19-20 -> 11-12 ms; 2 rows 12-14.5 -> 9.3 ms). */
#define MV_BODY(LOADW, SCALARW)                                                            \
    for (int64_t o = o0; o < o1; o++) {                                                    \
        const WT *wr = (const WT *)w + o * k;                                              \
        vf a0[GLMV_MV_MAX], a1[GLMV_MV_MAX];                                               \
        UNROLL for (int i = 0; i < M; i++) a0[i] = a1[i] = vzero();                        \
        int64_t j = 0;                                                                     \
        for (; j + 2 * VL <= k; j += 2 * VL) {                                             \
            vf w0 = LOADW(wr + j), w1 = LOADW(wr + j + VL);                                \
            UNROLL for (int i = 0; i < M; i++) {                                           \
                a0[i] = vfma(w0, vloadu(x + i * ldx + j), a0[i]);                          \
                a1[i] = vfma(w1, vloadu(x + i * ldx + j + VL), a1[i]);                     \
            }                                                                              \
        }                                                                                  \
        UNROLL for (int i = 0; i < M; i++) {                                               \
            float s = vhsum(vadd(a0[i], a1[i]));                                           \
            for (int64_t jj = j; jj < k; jj++) s += SCALARW(wr[jj]) * x[i * ldx + jj];     \
            y[i * ldy + o] = s;                                                            \
        }                                                                                  \
    }

/* Several rows of x (MV_USE_PAIRS below; MV_PAIRS: AVX-512 and AVX2): output rows two at a
 * time, so that each x vector loaded serves both, and the columns in blocks of MV_KB, so that
 * the M rows' block of x stays in L1 while MV_OB output pairs use it; each pair's accumulators
 * wait in memory between blocks. (Not for one row whose x fits L1: a lone decode streams one
 * weight row at a time faster, 46 against 65 ms a step of the 9B shape's 2 layers on 2 Zen 5
 * cores.) Every output is summed exactly as MV_BODY sums
 * it (the same two chains, in the same order, the same reduction and tail), so the results
 * do not depend on M, the pairing or the blocking. Leaves o0 at the first row left. */
#define MV_KB (64 * VL)
#define MV_OB 8
/* prefetch distance, in pairs: one 9B layer on 2 Zen 5 cores, best of 10-12, three or four
 * alternating rounds: AVX-512, 4 rows of x, 9.8-11.5 ms one pair ahead, 9.0-10.7 two, 9.5-11.1
 * four; AVX2, 2 rows 10.0-10.3 -> 8.8-9.8 ms, a lone row (down's long x) 8.5-8.9 -> 7.9-8.2 */
#define MV_PFA 2
#define MV_BODY2K(LOADW, SCALARW)                                                          \
    for (; o0 + 2 <= o1;) {                                                                \
        int np = (o1 - o0) / 2 < MV_OB ? (int)((o1 - o0) / 2) : MV_OB;                     \
        vf acc[MV_OB][4][GLMV_MV_MAX];                                                     \
        for (int p = 0; p < np; p++)                                                       \
            UNROLL for (int i = 0; i < M; i++) acc[p][0][i] = acc[p][1][i] = acc[p][2][i] = \
                acc[p][3][i] = vzero();                                                    \
        const int64_t kv = k / (2 * VL) * (2 * VL);                                        \
        for (int64_t j0 = 0; j0 < kv; j0 += MV_KB) {                                       \
            const int64_t j1 = j0 + MV_KB < kv ? j0 + MV_KB : kv;                          \
            for (int p = 0; p < np; p++) {                                                 \
                const WT *wr = (const WT *)w + (o0 + 2 * p) * k, *wq = wr + k;             \
                /* what comes from memory MV_PFA pairs on (or np), a line of each row per  \
                 * step: that pair's rows here, or past the last pair the next block's */  \
                const int pa = np < MV_PFA ? np : MV_PFA;                                  \
                const int64_t pf_d =                                                       \
                    p + pa < np ? 2 * pa * k : MV_KB - 2 * (int64_t)(np - pa) * k;         \
                const int pf_on = p + pa < np || j1 < kv;                                  \
                vf a0[GLMV_MV_MAX], a1[GLMV_MV_MAX];                                       \
                vf b0[GLMV_MV_MAX], b1[GLMV_MV_MAX];                                       \
                UNROLL for (int i = 0; i < M; i++) {                                       \
                    a0[i] = acc[p][0][i];                                                  \
                    a1[i] = acc[p][1][i];                                                  \
                    b0[i] = acc[p][2][i];                                                  \
                    b1[i] = acc[p][3][i];                                                  \
                }                                                                          \
                for (int64_t j = j0; j < j1; j += 2 * VL) {                                \
                    if (pf_on) {                                                           \
                        _mm_prefetch((const char *)(wr + j + pf_d), _MM_HINT_T0);          \
                        _mm_prefetch((const char *)(wq + j + pf_d), _MM_HINT_T0);          \
                    }                                                                      \
                    vf w0 = LOADW(wr + j), w1 = LOADW(wr + j + VL);                        \
                    vf u0 = LOADW(wq + j), u1 = LOADW(wq + j + VL);                        \
                    UNROLL for (int i = 0; i < M; i++) {                                   \
                        vf x0 = vloadu(x + i * ldx + j), x1 = vloadu(x + i * ldx + j + VL); \
                        a0[i] = vfma(w0, x0, a0[i]);                                       \
                        a1[i] = vfma(w1, x1, a1[i]);                                       \
                        b0[i] = vfma(u0, x0, b0[i]);                                       \
                        b1[i] = vfma(u1, x1, b1[i]);                                       \
                    }                                                                      \
                }                                                                          \
                UNROLL for (int i = 0; i < M; i++) {                                       \
                    acc[p][0][i] = a0[i];                                                  \
                    acc[p][1][i] = a1[i];                                                  \
                    acc[p][2][i] = b0[i];                                                  \
                    acc[p][3][i] = b1[i];                                                  \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        for (int p = 0; p < np; p++) {                                                     \
            const WT *wr = (const WT *)w + (o0 + 2 * p) * k, *wq = wr + k;                 \
            UNROLL for (int i = 0; i < M; i++) {                                           \
                float s = vhsum(vadd(acc[p][0][i], acc[p][1][i]));                         \
                float t = vhsum(vadd(acc[p][2][i], acc[p][3][i]));                         \
                for (int64_t jj = kv; jj < k; jj++) s += SCALARW(wr[jj]) * x[i * ldx + jj]; \
                for (int64_t jj = kv; jj < k; jj++) t += SCALARW(wq[jj]) * x[i * ldx + jj]; \
                y[i * ldy + o0 + 2 * p] = s;                                               \
                y[i * ldy + o0 + 2 * p + 1] = t;                                           \
            }                                                                              \
        }                                                                                  \
        o0 += 2 * np;                                                                      \
    }
/* More rows of x than MV_BODY2K holds in registers (AVX2: 3 or 4 rows, whose x, 48-64 KB at the
 * 9B's k = 4,096, no longer stays in L1 from one weight row to the next): one output row at a
 * time over the same column blocks, 2 * MV_OB rows reusing each block of x, each row's two
 * chains waiting in memory between blocks. Summed exactly as MV_BODY sums. Leaves o0 at o1. */
#define MV_BODY1K(LOADW, SCALARW)                                                          \
    for (; o0 < o1;) {                                                                     \
        const int nr = o1 - o0 < 2 * MV_OB ? (int)(o1 - o0) : 2 * MV_OB;                   \
        vf acc[2 * MV_OB][2][GLMV_MV_MAX];                                                 \
        for (int r = 0; r < nr; r++)                                                       \
            UNROLL for (int i = 0; i < M; i++) acc[r][0][i] = acc[r][1][i] = vzero();      \
        const int64_t kv = k / (2 * VL) * (2 * VL);                                        \
        for (int64_t j0 = 0; j0 < kv; j0 += MV_KB) {                                       \
            const int64_t j1 = j0 + MV_KB < kv ? j0 + MV_KB : kv;                          \
            for (int r = 0; r < nr; r++) {                                                 \
                const WT *wr = (const WT *)w + (o0 + r) * k;                               \
                /* from memory 2 * MV_PFA rows on (the paired kernel's distance), or past  \
                 * the last row the next block's (4 rows of x on AVX2: 16.8 -> 13.5 ms a   \
                 * 9B layer against one row ahead) */                                      \
                const int ra = nr < 2 * MV_PFA ? nr : 2 * MV_PFA;                          \
                const int64_t pf_d =                                                       \
                    r + ra < nr ? ra * k : MV_KB - (int64_t)(nr - ra) * k;                 \
                const int pf_on = r + ra < nr || j1 < kv;                                  \
                vf a0[GLMV_MV_MAX], a1[GLMV_MV_MAX];                                       \
                UNROLL for (int i = 0; i < M; i++) {                                       \
                    a0[i] = acc[r][0][i];                                                  \
                    a1[i] = acc[r][1][i];                                                  \
                }                                                                          \
                for (int64_t j = j0; j < j1; j += 2 * VL) {                                \
                    if (pf_on) _mm_prefetch((const char *)(wr + j + pf_d), _MM_HINT_T0);   \
                    vf w0 = LOADW(wr + j), w1 = LOADW(wr + j + VL);                        \
                    UNROLL for (int i = 0; i < M; i++) {                                   \
                        a0[i] = vfma(w0, vloadu(x + i * ldx + j), a0[i]);                  \
                        a1[i] = vfma(w1, vloadu(x + i * ldx + j + VL), a1[i]);             \
                    }                                                                      \
                }                                                                          \
                UNROLL for (int i = 0; i < M; i++) {                                       \
                    acc[r][0][i] = a0[i];                                                  \
                    acc[r][1][i] = a1[i];                                                  \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        for (int r = 0; r < nr; r++) {                                                     \
            const WT *wr = (const WT *)w + (o0 + r) * k;                                   \
            UNROLL for (int i = 0; i < M; i++) {                                           \
                float s = vhsum(vadd(acc[r][0][i], acc[r][1][i]));                         \
                for (int64_t jj = kv; jj < k; jj++) s += SCALARW(wr[jj]) * x[i * ldx + jj]; \
                y[i * ldy + o0 + r] = s;                                                   \
            }                                                                              \
        }                                                                                  \
        o0 += nr;                                                                          \
    }
/* When the paired, column-blocked kernel takes the rows: 2 to MV_PAIRS_M rows of x (its 4 M
 * accumulators in registers: 4 rows with AVX-512's 32, 2 with AVX2's 16, where 3 or 4 rows spill
 * and ran 5-12% slower), and a lone row whose x is larger than MV_L1X bytes: then x no longer stays
 * in L1 from one weight row to the next (the 9B's down_proj: 54 KB of x), and the blocks keep it
 * there (one 9B down_proj on 2 Zen 5 threads, 4 alternating runs: AVX2 28.7-30.0 -> 32.1-37.0
 * GB/s, AVX-512 39.3-40.3 -> 44.4-46.9). The sums are the same either way. */
#ifndef MV_L1X
#define MV_L1X (32 << 10)
#endif
#ifndef MV_PAIRS_M
#define MV_PAIRS_M 4
#endif
#define MV_USE_PAIRS(M, k) (((M) >= 2 && (M) <= MV_PAIRS_M) || ((M) == 1 && (k) * 4 > MV_L1X))
#ifndef MV_PAIRS
#undef MV_BODY2K
#define MV_BODY2K(LOADW, SCALARW)
#undef MV_BODY1K
#define MV_BODY1K(LOADW, SCALARW)
#endif

#define SF32(v) (v)
#define SF16(v) glmv_f16_to_f32(v)
#define VLOADF32(p) vloadu(p)

KINLINE void mv_bf16(float *y, int64_t ldy, const float *x, int64_t ldx, const int M,
                     const void *w, int64_t k, int64_t o0, int64_t o1) {
#define WT uint16_t
    if (MV_USE_PAIRS(M, k)) {
        MV_BODY2K(vload_bf16, sbf16)
    } else if (M > MV_PAIRS_M) {
        MV_BODY1K(vload_bf16, sbf16)
    }
    MV_BODY(vload_bf16, sbf16)
#undef WT
}
KINLINE void mv_f16(float *y, int64_t ldy, const float *x, int64_t ldx, const int M,
                    const void *w, int64_t k, int64_t o0, int64_t o1) {
#define WT uint16_t
    if (MV_USE_PAIRS(M, k)) {
        MV_BODY2K(vload_f16, SF16)
    } else if (M > MV_PAIRS_M) {
        MV_BODY1K(vload_f16, SF16)
    }
    MV_BODY(vload_f16, SF16)
#undef WT
}
KINLINE void mv_f32(float *y, int64_t ldy, const float *x, int64_t ldx, const int M,
                    const void *w, int64_t k, int64_t o0, int64_t o1) {
#define WT float
    if (MV_USE_PAIRS(M, k)) {
        MV_BODY2K(VLOADF32, SF32)
    } else if (M > MV_PAIRS_M) {
        MV_BODY1K(VLOADF32, SF32)
    }
    MV_BODY(VLOADF32, SF32)
#undef WT
}

/* Quantized rows against x quantized per 32-element block to int8 (glmv_quantize_x_q8, as
 * llama.cpp does for its Q8_0/Q4_0 products): per block the 32 integer products summed
 * exactly (|w| <= 128, |x| <= 127: maddubs' pairs stay inside int16), then scaled by
 * d_w * d_x into one of two accumulators (even and odd blocks). 256-bit integer vectors on
 * every table; the same operations in the same order for every row, whatever M is. */
KINLINE __m256i q4_0_unpack(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(15));
    return _mm256_sub_epi8(v, _mm256_set1_epi8(8)); /* elements 0..15 low nibbles, 16..31 high */
}
/* Q5_0: the nibbles as Q4_0's, each byte's fifth bit from bit e of qh, minus 16 */
KINLINE __m256i q5_0_unpack(const glmv_block_q5_0 *w) {
    const __m128i b = _mm_loadu_si128((const __m128i *)w->qs);
    const __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(15));
    uint32_t qh;
    memcpy(&qh, w->qh, 4);
    const __m256i rep = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                                            _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                                              0x0101010101010101LL, 0)); /* byte e: qh's byte e/8 */
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);     /* byte e: 1 << e%8 */
    const __m256i hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(rep, bit), bit), _mm256_set1_epi8(16));
    return _mm256_sub_epi8(_mm256_or_si256(v, hi), _mm256_set1_epi8(16));
}
KINLINE float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
/* the signed int8 values wv of one block times row i's block b, scaled by fac (8 lanes: each
 * the sum of 4 consecutive products), into acc */
#define MVQ_DOT(wv, aw, b, fac, acc)                                                                   \
    do {                                                                                               \
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + i * ldxq + (b) * 32));           \
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv)), ones); \
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), fac, acc);                                        \
    } while (0)
/* one block b of row o into acc[i] for the M rows of x; fmt 0 Q8_0, 1 Q4_0, 2 Q5_0 */
#define MVQ_BLOCK(b, acc)                                                                              \
    do {                                                                                               \
        const __m256i wv = fmt == 1   ? q4_0_unpack(w4[b].qs)                                          \
                           : fmt == 2 ? q5_0_unpack(w5 + (b))                                          \
                                      : _mm256_loadu_si256((const __m256i *)w8[b].qs);                 \
        const float dw = _cvtsh_ss(fmt == 1 ? w4[b].d : fmt == 2 ? w5[b].d : w8[b].d);                 \
        const __m256i aw = _mm256_sign_epi8(wv, wv);                                                   \
        UNROLL for (int i = 0; i < M; i++) MVQ_DOT(wv, aw, b, _mm256_set1_ps(dw * xd[i * ldd + (b)]), acc[i]); \
    } while (0)

KINLINE void mvq_x8(float *y, int64_t ldy, const int8_t *xq, const float *xd, int64_t ldxq,
                    const int M, const void *w, const int fmt, int64_t k, int64_t o0, int64_t o1) {
    const int64_t nb = k / 32, ldd = ldxq / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t o = o0; o < o1; o++) {
        const glmv_block_q8_0 *w8 = (const glmv_block_q8_0 *)w + o * nb;
        const glmv_block_q4_0 *w4 = (const glmv_block_q4_0 *)w + o * nb;
        const glmv_block_q5_0 *w5 = (const glmv_block_q5_0 *)w + o * nb;
        __m256 a0[4], a1[4]; /* even and odd blocks, named so that they stay in registers */
        UNROLL for (int i = 0; i < M; i++) a0[i] = a1[i] = _mm256_setzero_ps();
        int64_t b = 0;
        for (; b + 1 < nb; b += 2) {
            MVQ_BLOCK(b, a0);
            MVQ_BLOCK(b + 1, a1);
        }
        if (b < nb) MVQ_BLOCK(b, a0);
        UNROLL for (int i = 0; i < M; i++) y[i * ldy + o] = hsum256(_mm256_add_ps(a0[i], a1[i]));
    }
}
#undef MVQ_BLOCK

/* Q4_K and Q6_K rows: each super-block's eight blocks of 32 unpacked to unsigned bytes (Q4_K:
 * q in [0, 15]; Q6_K: q in [0, 63]) with their scales, then each block's integer products with
 * x (maddubs: unsigned times signed, pairs inside int16), block j's into a0 (j even) or a1 (j
 * odd). Q6_K's lanes start from x's corrections xs (-32 x the sum of their 4 bytes,
 * glmv_x_corrections: Σ (q - 32)·x exactly), and its block holds two sub-blocks of 16, whose
 * scales take lanes 0-3 and 4-7; Q4_K's mins come off through x's block sums xs
 * (glmv_q8_block_sums), summed apart in float in block order. */
KINLINE void mvq_k(float *y, int64_t ldy, const int8_t *xq, const float *xd, const int32_t *xs, int64_t ldxq,
                   const int M, const void *w, const int q6, int64_t k, int64_t o0, int64_t o1) {
    const int64_t nsb = k / 256, ldd = ldxq / 32, lds = ldxq / 4;
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
    for (int64_t o = o0; o < o1; o++) {
        __m256 a0[4], a1[4];
        float mins[4];
        UNROLL for (int i = 0; i < M; i++) a0[i] = a1[i] = _mm256_setzero_ps(), mins[i] = 0.0f;
        for (int64_t s = 0; s < nsb; s++) {
            __m256i wv[8];
            float f0[8], f1[8], fm[8] = {0};
            if (q6) {
                const glmv_block_q6_k *B = (const glmv_block_q6_k *)w + o * nsb + s;
                const float d = _cvtsh_ss(B->d);
                for (int n = 0; n < 2; n++) {
                    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(B->ql + 64 * n));
                    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(B->ql + 64 * n + 32));
                    const __m256i h = _mm256_loadu_si256((const __m256i *)(B->qh + 32 * n));
#define Q6V(lo, sh) _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, sh), m2), 4))
                    wv[4 * n] = Q6V(_mm256_and_si256(l0, m4), 0);
                    wv[4 * n + 1] = Q6V(_mm256_and_si256(l1, m4), 2);
                    wv[4 * n + 2] = Q6V(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), 4);
                    wv[4 * n + 3] = Q6V(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), 6);
#undef Q6V
                }
                for (int j = 0; j < 8; j++) f0[j] = d * B->scales[2 * j], f1[j] = d * B->scales[2 * j + 1];
            } else {
                const glmv_block_q4_k *B = (const glmv_block_q4_k *)w + o * nsb + s;
                const float d = _cvtsh_ss(B->d), dmin = _cvtsh_ss(B->dmin);
                for (int p = 0; p < 4; p++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(B->qs + 32 * p));
                    wv[2 * p] = _mm256_and_si256(v, m4);
                    wv[2 * p + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                }
                for (int j = 0; j < 8; j++) {
                    int sc, m;
                    glmv_q4_k_scale_min(B->scales, j, &sc, &m);
                    f0[j] = f1[j] = d * sc;
                    fm[j] = dmin * m;
                }
            }
            for (int j = 0; j < 8; j++) {
                const int64_t b = s * 8 + j;
                UNROLL for (int i = 0; i < M; i++) {
                    const float dx = xd[i * ldd + b];
                    const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + i * ldxq + b * 32));
                    __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wv[j], xv), ones);
                    __m256 fac;
                    if (q6) {
                        p = _mm256_add_epi32(p, _mm256_loadu_si256((const __m256i *)(xs + i * lds + b * 8)));
                        fac = _mm256_set_m128(_mm_set1_ps(f1[j] * dx), _mm_set1_ps(f0[j] * dx));
                    } else {
                        fac = _mm256_set1_ps(f0[j] * dx);
                        mins[i] += fm[j] * dx * (float)xs[i * lds + b];
                    }
                    if (j & 1) a1[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), fac, a1[i]);
                    else a0[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), fac, a0[i]);
                }
            }
        }
        UNROLL for (int i = 0; i < M; i++) y[i * ldy + o] = hsum256(_mm256_add_ps(a0[i], a1[i])) - mins[i];
    }
}
#undef MVQ_DOT

static void KSUF(matvec_q)(float *y, int64_t ldy, const int8_t *xq, const float *xd,
                           const int32_t *xc, int64_t ldxq, int m, const void *w, glmv_dtype dt,
                           int64_t k, int64_t o0, int64_t o1) {
#define MVQ_CASES(CALL)                                                                              \
    switch (m) {                                                                                     \
    case 1: CALL(1); break;                                                                          \
    case 2: CALL(2); break;                                                                          \
    case 3: CALL(3); break;                                                                          \
    default: CALL(4); break;                                                                         \
    }
#define X8(M_, F) mvq_x8(y, ldy, xq, xd, ldxq, M_, w, F, k, o0, o1)
    switch (dt) {
#define C(M_) X8(M_, 0)
    case GLMV_Q8_0: MVQ_CASES(C) break;
#undef C
#define C(M_) X8(M_, 1)
    case GLMV_Q4_0: MVQ_CASES(C) break;
#undef C
#define C(M_) X8(M_, 2)
    case GLMV_Q5_0: MVQ_CASES(C) break;
#undef C
#define C(M_) mvq_k(y, ldy, xq, xd, xc, ldxq, M_, w, 0, k, o0, o1)
    case GLMV_Q4_K: MVQ_CASES(C) break;
#undef C
#define C(M_) mvq_k(y, ldy, xq, xd, xc, ldxq, M_, w, 1, k, o0, o1)
    case GLMV_Q6_K: MVQ_CASES(C) break;
#undef C
    default: break;
    }
#undef X8
#undef MVQ_CASES
}

#define MV_CASES(FN)                                                                       \
    switch (m) {                                                                           \
    case 1: FN(y, ldy, x, ldx, 1, w, k, o0, o1); break;                                    \
    case 2: FN(y, ldy, x, ldx, 2, w, k, o0, o1); break;                                    \
    case 3: FN(y, ldy, x, ldx, 3, w, k, o0, o1); break;                                    \
    default: FN(y, ldy, x, ldx, 4, w, k, o0, o1); break;                                   \
    }

static void KSUF(matvec)(float *y, int64_t ldy, const float *x, int64_t ldx, int m,
                         const void *w, glmv_dtype dt, int64_t k, int64_t o0, int64_t o1) {
    switch (dt) {
    case GLMV_BF16: MV_CASES(mv_bf16); break;
    case GLMV_F16: MV_CASES(mv_f16); break;
    case GLMV_F32: MV_CASES(mv_f32); break;
    default: break; /* Q8_0, Q4_0: matvec_q */
    }
}

/* ------------------------------------------------------------------------ */
/* GEMM: packing and the register tile                                      */
/* ------------------------------------------------------------------------ */

/* 8 x 8 transpose of float lanes (AVX2; also used by the AVX-512 build) */
KINLINE void tr8x8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int q = 0; q < 8; q += 2) {
        t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
        t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
    }
    for (int q = 0; q < 8; q += 4) {
        u[q] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int q = 0; q < 4; q++) {
        r[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
        r[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
    }
}

KINLINE __m256 load8(const void *w, glmv_dtype dt, int64_t i) {
    if (dt == GLMV_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i))), 16));
    if (dt == GLMV_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
    return _mm256_loadu_ps((const float *)w + i);
}

static float sget(const void *w, glmv_dtype dt, int64_t i) {
    if (dt == GLMV_BF16) return sbf16(((const uint16_t *)w)[i]);
    if (dt == GLMV_F16) return glmv_f16_to_f32(((const uint16_t *)w)[i]);
    return ((const float *)w)[i];
}

/* blocks of 8 columns x 8 k: 8 row loads, convert, transpose, 8 stores */
KINLINE void pack_dt(float *dst, const void *w, const glmv_dtype dt, int64_t k, int64_t n0,
                     int nn, int64_t k0, int64_t kk) {
    int c = 0;
    for (; c + 8 <= nn; c += 8) {
        int64_t base = (n0 + c) * k + k0, p = 0;
        for (; p + 8 <= kk; p += 8) {
            __m256 r[8];
            for (int q = 0; q < 8; q++) r[q] = load8(w, dt, base + q * k + p);
            tr8x8(r);
            for (int q = 0; q < 8; q++) _mm256_storeu_ps(dst + (p + q) * NRV + c, r[q]);
        }
        for (; p < kk; p++)
            for (int q = 0; q < 8; q++) dst[p * NRV + c + q] = sget(w, dt, base + q * k + p);
    }
    for (; c < nn; c++) {
        int64_t base = (n0 + c) * k + k0;
        for (int64_t p = 0; p < kk; p++) dst[p * NRV + c] = sget(w, dt, base + p);
    }
    for (; c < NRV; c++)
        for (int64_t p = 0; p < kk; p++) dst[p * NRV + c] = 0.0f;
}

/* quantized weights: each column's k range dequantized (scalar; the GEMM reuses a packed
 * panel for a whole block of x rows) */
static void pack_q(float *dst, const void *w, glmv_dtype dt, int64_t k, int64_t n0, int nn,
                   int64_t k0, int64_t kk) {
    float tmp[GLMV_KB];
    size_t rb = glmv_dtype_row_bytes(dt, k);
    int c = 0;
    for (; c < nn; c++) {
        glmv_dequantize_range(dt, (const char *)w + (size_t)(n0 + c) * rb, k0, kk, tmp);
        for (int64_t p = 0; p < kk; p++) dst[p * NRV + c] = tmp[p];
    }
    for (; c < NRV; c++)
        for (int64_t p = 0; p < kk; p++) dst[p * NRV + c] = 0.0f;
}

static void KSUF(pack)(float *dst, const void *w, glmv_dtype dt, int64_t k, int64_t n0, int nn,
                       int64_t k0, int64_t kk) {
    switch (dt) {
    case GLMV_BF16: pack_dt(dst, w, GLMV_BF16, k, n0, nn, k0, kk); break;
    case GLMV_F16: pack_dt(dst, w, GLMV_F16, k, n0, nn, k0, kk); break;
    case GLMV_F32: pack_dt(dst, w, GLMV_F32, k, n0, nn, k0, kk); break;
    default: pack_q(dst, w, dt, k, n0, nn, k0, kk); break; /* the block formats */
    }
}

/* Kᵀ panels for attention: dst[p][e][c] = k[(p*nr + c)*ldk + e] for keys < nk, zero for
 * the padding keys up to a multiple of nr; hd a multiple of 8. */
static void KSUF(pack_kt)(float *dst, const float *k, int64_t ldk, int64_t nk, int hd) {
    int64_t npan = (nk + NRV - 1) / NRV;
    for (int64_t p = 0; p < npan; p++)
        for (int c = 0; c < NRV; c += 8) {
            int64_t key0 = p * NRV + c;
            float *d = dst + p * hd * NRV + c;
            if (key0 + 8 <= nk) {
                for (int e = 0; e < hd; e += 8) {
                    __m256 r[8];
                    for (int q = 0; q < 8; q++) r[q] = _mm256_loadu_ps(k + (key0 + q) * ldk + e);
                    tr8x8(r);
                    for (int q = 0; q < 8; q++) _mm256_storeu_ps(d + (int64_t)(e + q) * NRV, r[q]);
                }
            } else {
                for (int q = 0; q < 8; q++)
                    for (int e = 0; e < hd; e++)
                        d[(int64_t)e * NRV + q] = key0 + q < nk ? k[(key0 + q) * ldk + e] : 0.0f;
            }
        }
}

KINLINE void kern_m(const int M, int64_t K, const float *A, const float *B, int64_t ldb,
                    float *C, int64_t ldc, int acc) {
    vf c0[KMR], c1[KMR];
    UNROLL for (int i = 0; i < M; i++) c0[i] = c1[i] = vzero();
    for (int64_t p = 0; p < K; p++) {
        vf b0 = vloadu(B + p * ldb), b1 = vloadu(B + p * ldb + VL);
        UNROLL for (int i = 0; i < M; i++) {
            vf a = vset1(A[p * KMR + i]);
            c0[i] = vfma(a, b0, c0[i]);
            c1[i] = vfma(a, b1, c1[i]);
        }
    }
    UNROLL for (int i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (acc) {
            c0[i] = vadd(c0[i], vloadu(c));
            c1[i] = vadd(c1[i], vloadu(c + VL));
        }
        vstoreu(c, c0[i]);
        vstoreu(c + VL, c1[i]);
    }
}

static void KSUF(kern)(int64_t K, const float *A, const float *B, int64_t ldb, float *C,
                       int64_t ldc, int mr, int acc) {
    switch (mr) {
#define KCASE(r) case r: kern_m(r, K, A, B, ldb, C, ldc, acc); break;
    KCASE(1) KCASE(2) KCASE(3) KCASE(4) KCASE(5)
#if KMR > 6
    KCASE(6) KCASE(7)
#endif
    default: kern_m(KMR, K, A, B, ldb, C, ldc, acc); break;
#undef KCASE
    }
}

/* ------------------------------------------------------------------------ */
/* vectors                                                                  */
/* ------------------------------------------------------------------------ */

static float KSUF(dot)(const float *a, const float *b, int64_t n) {
    vf s0 = vzero(), s1 = vzero();
    int64_t i = 0;
    for (; i + 2 * VL <= n; i += 2 * VL) {
        s0 = vfma(vloadu(a + i), vloadu(b + i), s0);
        s1 = vfma(vloadu(a + i + VL), vloadu(b + i + VL), s1);
    }
    for (; i + VL <= n; i += VL) s0 = vfma(vloadu(a + i), vloadu(b + i), s0);
    float s = vhsum(vadd(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void KSUF(axpy)(float *y, float a, const float *x, int64_t n) {
    vf va = vset1(a);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) vstoreu(y + i, vfma(va, vloadu(x + i), vloadu(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void KSUF(scale)(float *y, float a, int64_t n) {
    vf va = vset1(a);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) vstoreu(y + i, vmul(va, vloadu(y + i)));
    for (; i < n; i++) y[i] *= a;
}

static void KSUF(to_f32)(float *dst, const void *src, glmv_dtype dt, int64_t n) {
    int64_t i = 0;
    if (dt == GLMV_BF16) {
        const uint16_t *s = src;
        for (; i + VL <= n; i += VL) vstoreu(dst + i, vload_bf16(s + i));
        for (; i < n; i++) dst[i] = sbf16(s[i]);
    } else if (dt == GLMV_F16) {
        const uint16_t *s = src;
        for (; i + VL <= n; i += VL) vstoreu(dst + i, vload_f16(s + i));
        for (; i < n; i++) dst[i] = glmv_f16_to_f32(s[i]);
    } else {
        memcpy(dst, src, (size_t)n * sizeof(float));
    }
}

static float KSUF(max)(const float *x, int64_t n) {
    float m = -INFINITY;
    int64_t i = 0;
    if (n >= VL) {
        vf vm = vloadu(x);
        for (i = VL; i + VL <= n; i += VL) vm = vmax(vm, vloadu(x + i));
        m = vhmax(vm);
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static float KSUF(exp_sum)(float *p, int64_t n, float mx) {
    vf vs = vzero(), vm = vset1(mx);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf e = vexp(vsub(vloadu(p + i), vm));
        vstoreu(p + i, e);
        vs = vadd(vs, e);
    }
    float s = vhsum(vs);
    for (; i < n; i++) s += (p[i] = expf(p[i] - mx));
    return s;
}

/* ------------------------------------------------------------------------ */
/* rows and elementwise                                                     */
/* ------------------------------------------------------------------------ */

/* ref: Glm4RMSNorm */
static void KSUF(rmsnorm_row)(float *y, const float *x, const float *w, int64_t d, float eps) {
    vf s0 = vzero(), s1 = vzero();
    int64_t j = 0;
    for (; j + 2 * VL <= d; j += 2 * VL) {
        vf a = vloadu(x + j), b = vloadu(x + j + VL);
        s0 = vfma(a, a, s0);
        s1 = vfma(b, b, s1);
    }
    double ss = vhsum(vadd(s0, s1));
    for (; j < d; j++) ss += (double)x[j] * x[j];
    float r = (float)(1.0 / sqrt(ss / (double)d + eps));
    vf vr = vset1(r);
    for (j = 0; j + VL <= d; j += VL) vstoreu(y + j, vmul(vloadu(w + j), vmul(vloadu(x + j), vr)));
    for (; j < d; j++) y[j] = w[j] * (x[j] * r);
}

/* ref: nn.LayerNorm (two passes: mean, then centred variance) */
static void KSUF(layernorm_row)(float *y, const float *x, const float *w, const float *b,
                                int64_t d, float eps) {
    vf s = vzero();
    int64_t j = 0;
    for (; j + VL <= d; j += VL) s = vadd(s, vloadu(x + j));
    double sum = vhsum(s);
    for (; j < d; j++) sum += x[j];
    float mean = (float)(sum / (double)d);
    vf vmn = vset1(mean), v = vzero();
    for (j = 0; j + VL <= d; j += VL) {
        vf c = vsub(vloadu(x + j), vmn);
        v = vfma(c, c, v);
    }
    double var = vhsum(v);
    for (; j < d; j++) var += (double)(x[j] - mean) * (x[j] - mean);
    float r = (float)(1.0 / sqrt(var / (double)d + eps));
    vf vr = vset1(r);
    for (j = 0; j + VL <= d; j += VL) {
        vf c = vmul(vsub(vloadu(x + j), vmn), vr);
        c = vmul(c, vloadu(w + j));
        if (b) c = vadd(c, vloadu(b + j));
        vstoreu(y + j, c);
    }
    for (; j < d; j++) y[j] = (x[j] - mean) * r * w[j] + (b ? b[j] : 0.0f);
}

/* silu(g)·u = g / (1 + e^-g) · u */
static void KSUF(swiglu_row)(float *y, const float *g, const float *u, int64_t d) {
    vf one = vset1(1.0f);
    int64_t j = 0;
    for (; j + VL <= d; j += VL) {
        vf gv = vloadu(g + j);
        vf e = vexp(vsub(vzero(), gv));
        vstoreu(y + j, vmul(vdiv(gv, vadd(one, e)), vloadu(u + j)));
    }
    for (; j < d; j++) y[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
}

static void KSUF(add)(float *y, const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL) vstoreu(y + i, vadd(vloadu(a + i), vloadu(b + i)));
    for (; i < n; i++) y[i] = a[i] + b[i];
}
