/* matmul.c -- y[m, n] = x[m, k] · w[n, k]ᵀ (+ bias) on the CPU, threaded.
 *
 * Two regimes:
 *  - one row (a decode token), and the decode rows of several sequences
 *    (glmv_cpu_matmul_rows, GLMV_MV_MAX rows a weight read): matrix-vector. Each thread streams a
 *    contiguous range of weight rows once, converting bf16/f16 in registers
 *    (in bf16 precision, bf16 weights go to vdpbf16ps against x rounded to
 *    bf16 once; block formats to int8 products); speed is memory bandwidth.
 *  - two rows or more (a prompt's, the vision tower's): a blocked GEMM, whose rows come out
 *    the same however many there are, so that a prompt's rows do not depend on how its chunks
 *    are cut or what other prompts share a pass (batch invariance). Tasks are (row block of x,
 *    column block of w); each converts its weight tile (GLMV_KB x 4 register
 *    tiles) once into a packed float32 panel in per-thread scratch and reuses
 *    it for every row of its block. In bf16 precision (be->bf16, granted on
 *    AVX512-BF16) with bf16 weights the panel stays bf16, x is rounded to
 *    bf16 once, and vdpbf16ps does the math; otherwise all products are f32.
 * Weights are used in place (the mmap); nothing is allocated per call except
 * the backend's shared scratch growing to its high-water mark.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cpu/cpu.h"
#include "cpu/ref.h"
#include "quant.h"

typedef struct {
    cpu_state *cs;
    float *y;
    const float *x;
    const glmv_tensor *w;
    const glmv_tensor *bias;
    int64_t m, n, k;
    int64_t rows_per_task;      /* matvec */
    int64_t nb, mb, n_mb;       /* GEMM blocks: columns, rows, row blocks */
    int64_t kb;                 /* GEMM k-block */
    float *xp;                  /* x in row tiles of mr, k-major: [m/mr][k][mr] (f32 GEMM) */
    const uint16_t *xb;         /* bf16 copy of x, rows of ldxb (bf16 GEMM) */
    int64_t ldxb;
    int8_t *xq;                 /* x quantized to int8, rows of k, its block scales xd and */
    float *xd;                  /* (Q4_0) correction lanes xc (Q8_0/Q4_0 decode: */
    int32_t *xc;                /* glmv_quantize_x_q8, glmv_x_corrections; Q4_K: glmv_q8_block_sums) */
    uint8_t *xu;                /* int8 GEMM: x quantized, + 128, rows of ldxu; xd as above (rows */
    float *xs;                  /* of k/32) and, for Q4_K, d_x·Σq per block */
    int64_t ldxu;
} mm_job;

void glmv_cpu_pack_bf16(uint16_t *dst, int nr, const uint16_t *w, int64_t k, int64_t n0, int nn,
                        int64_t k0, int64_t kk) {
    int64_t k2 = (kk + 1) / 2, whole = kk / 2;
    for (int c = 0; c < nr; c++) {
        uint16_t *d = dst + 2 * c;
        if (c >= nn) {
            for (int64_t p = 0; p < k2; p++) d[p * 2 * nr] = d[p * 2 * nr + 1] = 0;
            continue;
        }
        const uint16_t *s = w + (n0 + c) * k + k0;
        /* the column's next k-block, while this one is copied: each of the panel's columns is
         * its own stream through memory, more than the hardware prefetcher follows */
        for (int64_t q = kk; q < GLMV_MIN(2 * kk, k - k0); q += 32) __builtin_prefetch(s + q);
        for (int64_t p = 0; p < whole; p++) { /* a pair at a time */
            uint32_t v;
            memcpy(&v, s + 2 * p, 4);
            memcpy(d + p * 2 * nr, &v, 4);
        }
        if (whole < k2) {
            d[whole * 2 * nr] = s[2 * whole];
            d[whole * 2 * nr + 1] = 0;
        }
    }
}

void glmv_cpu_matvec_bf16_scalar(float *y, int64_t ldy, const uint16_t *xb, int64_t ldxb, int m,
                                 const uint16_t *w, int64_t k, int64_t o0, int64_t o1) {
    for (int i = 0; i < m; i++)
        for (int64_t o = o0; o < o1; o++) {
            float s = 0;
            for (int64_t e = 0; e < k; e++)
                s += glmv_bf16_to_f32(xb[i * ldxb + e]) * glmv_bf16_to_f32(w[o * k + e]);
            y[i * ldy + o] = s;
        }
}

void glmv_cpu_to_bf16_scalar(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = glmv_f32_to_bf16(src[i]);
}

void glmv_cpu_kern_bf16_scalar(int mr, int nr, int64_t K2, const uint16_t *A, int64_t lda,
                               const uint16_t *B, float *C, int64_t ldc, int rows, int acc) {
    (void)mr;
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < nr; c++) {
            float s = 0;
            for (int64_t p = 0; p < K2; p++)
                s += glmv_bf16_to_f32(A[i * lda + 2 * p]) * glmv_bf16_to_f32(B[(p * nr + c) * 2]) +
                     glmv_bf16_to_f32(A[i * lda + 2 * p + 1]) *
                         glmv_bf16_to_f32(B[(p * nr + c) * 2 + 1]);
            C[i * ldc + c] = acc ? C[i * ldc + c] + s : s;
        }
}

int glmv_cpu_pack_q(int8_t *dst, const void *w, glmv_dtype dt, int64_t k, int64_t n0, int nn,
                    int64_t k0, int64_t kk) {
    const int L = dt == GLMV_Q6_K ? 16 : 32;
    const int64_t bs = glmv_cpu_q_block_bytes(L);
    const size_t rb = glmv_dtype_row_bytes(dt, k);
    for (int c = 0; c < GLMV_NRQ; c++) {
        const char *row = (const char *)w + (size_t)(n0 + c) * rb;
        for (int64_t b32 = 0; b32 < kk / 32; b32++) {
            int8_t v[32] = {0};
            float sc[2] = {0, 0}, o = 0;
            if (c < nn) glmv_block_s8(dt, row, k0 / 32 + b32, v, sc, &o);
            for (int h = 0; h < 32 / L; h++) { /* the 32 elements as one or two panel blocks */
                int8_t *pb = dst + (b32 * 32 / L + h) * bs;
                const int8_t *vh = v + h * L;
                int32_t sum = 0;
                for (int g = 0; g < L / 4; g++) {
                    memcpy(pb + ((int64_t)g * GLMV_NRQ + c) * 4, vh + 4 * g, 4);
                    sum += vh[4 * g] + vh[4 * g + 1] + vh[4 * g + 2] + vh[4 * g + 3];
                }
                int32_t init = -128 * sum;
                float fs = sc[h], fo = o;
                memcpy(pb + (int64_t)L * GLMV_NRQ + 4 * c, &init, 4);
                memcpy(pb + (int64_t)L * GLMV_NRQ + 4 * (GLMV_NRQ + c), &fs, 4);
                memcpy(pb + (int64_t)L * GLMV_NRQ + 4 * (2 * GLMV_NRQ + c), &fo, 4);
            }
        }
    }
    return L;
}

void glmv_cpu_kern_q_scalar(int mr, int64_t nblk, int L, const uint8_t *A, int64_t lda,
                            const float *ad, const float *as, int64_t ldad, const int8_t *P, float *C,
                            int64_t ldc, int rows, int acc) {
    (void)mr;
    const int64_t bs = glmv_cpu_q_block_bytes(L);
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < GLMV_NRQ; c++) {
            float t = 0;
            for (int64_t b = 0; b < nblk; b++) {
                const int8_t *pb = P + b * bs;
                int32_t I;
                float sc, o;
                memcpy(&I, pb + (int64_t)L * GLMV_NRQ + 4 * c, 4);
                memcpy(&sc, pb + (int64_t)L * GLMV_NRQ + 4 * (GLMV_NRQ + c), 4);
                memcpy(&o, pb + (int64_t)L * GLMV_NRQ + 4 * (2 * GLMV_NRQ + c), 4);
                for (int e = 0; e < L; e++)
                    I += (int32_t)A[i * lda + b * L + e] * pb[((int64_t)(e / 4) * GLMV_NRQ + c) * 4 + e % 4];
                int64_t bx = b * L / 32;
                t = fmaf((float)I * ad[i * ldad + bx], sc, t);
                if (as) t = fmaf(-o, as[i * ldad + bx], t);
            }
            C[i * ldc + c] = acc ? C[i * ldc + c] + t : t;
        }
}

/* y[i*ldy + o] += bias[o] for i < m, o in [o0, o1) */
static void add_bias(const glmv_cpu_kernels *kn, float *y, int64_t ldy, int64_t m,
                     const glmv_tensor *bias, int64_t o0, int64_t o1, float *tmp, int64_t tmp_n) {
    size_t es = glmv_dtype_size(bias->dtype);
    for (int64_t c0 = o0; c0 < o1; c0 += tmp_n) {
        int64_t c1 = GLMV_MIN(o1, c0 + tmp_n);
        kn->to_f32(tmp, (const char *)bias->data + (size_t)c0 * es, bias->dtype, c1 - c0);
        for (int64_t i = 0; i < m; i++) kn->add(y + i * ldy + c0, y + i * ldy + c0, tmp, c1 - c0);
    }
}

/* Output columns [o0, o1) for every row of x, GLMV_MV_MAX rows of x per kernel call. With
 * more rows than that, the weight rows go in slices of about 256 KB, each used by every
 * group of x rows while it is in cache: the weights come from memory once whatever m is.
 * Each output is the same sum, in the same order, whatever m and the slicing are. */
static void matvec_task(void *ctx, int64_t t, int thread) {
    mm_job *j = ctx;
    const glmv_cpu_kernels *kn = j->cs->k;
    int64_t o0 = t * j->rows_per_task, o1 = GLMV_MIN(j->n, o0 + j->rows_per_task);
    /* quantized weights (j->xq): the int8 product, on x as run_matvec quantized it */
    int64_t slice = j->m <= GLMV_MV_MAX ? o1 - o0 : GLMV_MAX((int64_t)1, (int64_t)(256 << 10) /
                                        (int64_t)glmv_dtype_row_bytes(j->w->dtype, j->k));
    for (int64_t s0 = o0; s0 < o1; s0 += slice)
        for (int64_t i = 0; i < j->m; i += GLMV_MV_MAX) {
            int rows = (int)GLMV_MIN((int64_t)GLMV_MV_MAX, j->m - i);
            int64_t s1 = GLMV_MIN(o1, s0 + slice);
            if (j->xb)
                kn->matvec_bf16(j->y + i * j->n, j->n, j->xb + i * j->ldxb, j->ldxb, rows, j->w->data, j->k,
                                s0, s1);
            else if (j->xq)
                kn->matvec_q(j->y + i * j->n, j->n, j->xq + i * j->k, j->xd + i * (j->k / 32),
                             j->xc + i * (j->k / 4), j->k, rows, j->w->data, j->w->dtype, j->k, s0, s1);
            else
                kn->matvec(j->y + i * j->n, j->n, j->x + i * j->k, j->k, rows, j->w->data,
                           j->w->dtype, j->k, s0, s1);
        }
    if (j->bias)
        add_bias(kn, j->y, j->n, j->m, j->bias, o0, o1, cpu_tscratch(j->cs, thread),
                 GLMV_CPU_TSCRATCH / sizeof(float));
}

/* Where a kernel writes a tile of `rows` x nr outputs whose columns start at c (rows of n):
 * c itself, or, for a ragged last panel of nn < nr columns, a full-width tile in tmp
 * (holding c's values when the kernel accumulates); tile_done copies such a tile back. */
static float *tile_begin(float *c, int64_t n, int nn, int nr, int rows, int acc, float *tmp,
                         int64_t *ldc) {
    if (nn == nr) {
        *ldc = n;
        return c;
    }
    *ldc = nr;
    if (acc)
        for (int r = 0; r < rows; r++) memcpy(tmp + r * nr, c + r * n, (size_t)nn * 4);
    return tmp;
}

static void tile_done(float *c, int64_t n, int nn, int nr, int rows, const float *cd) {
    if (cd != c)
        for (int r = 0; r < rows; r++) memcpy(c + r * n, cd + r * nr, (size_t)nn * 4);
}

/* one (row block, column block) tile of the GEMM */
static void gemm_task(void *ctx, int64_t t, int thread) {
    mm_job *j = ctx;
    const glmv_cpu_kernels *kn = j->cs->k;
    int bf = j->xb != NULL;
    const int mr = bf && kn->mrb ? kn->mrb : kn->mr, nr = kn->nr;
    const int64_t n = j->n, k = j->k;
    int64_t ib = t % j->n_mb, jb = t / j->n_mb;
    int64_t i0 = ib * j->mb, i1 = GLMV_MIN(j->m, i0 + j->mb);
    int64_t j0 = jb * j->nb, nbw = GLMV_MIN(j->nb, n - j0);
    int npan = (int)((nbw + nr - 1) / nr);

    char *scr = cpu_tscratch(j->cs, thread);
    float *panel = (float *)scr;                                  /* npan x KB x nr floats */
    uint16_t *panel16 = (uint16_t *)scr;                          /* npan x KB x nr bf16 */
    const int64_t KB = j->kb;
    float *ctmp = (float *)(scr + (size_t)j->nb * KB * (bf ? 2 : 4)); /* mr x nr */
    float *btmp = ctmp + GLMV_MR_MAX * GLMV_NR_MAX;               /* nb floats */

    for (int64_t k0 = 0; k0 < k; k0 += KB) {
        int64_t kk = GLMV_MIN((int64_t)KB, k - k0);
        for (int p = 0; p < npan; p++) {
            int nn = (int)GLMV_MIN((int64_t)nr, nbw - (int64_t)p * nr);
            if (bf)
                (kn->pack_bf16 ? kn->pack_bf16 : glmv_cpu_pack_bf16)(panel16 + (size_t)p * KB * nr, nr,
                                                                     j->w->data, k, j0 + p * nr, nn, k0, kk);
            else
                kn->pack(panel + (size_t)p * KB * nr, j->w->data, j->w->dtype, k, j0 + p * nr,
                         nn, k0, kk);
        }
        int acc = k0 > 0;
        for (int64_t i = i0; i < i1; i += mr) {
            int rows = (int)GLMV_MIN((int64_t)mr, i1 - i);
            for (int p = 0; p < npan; p++) {
                int nn = (int)GLMV_MIN((int64_t)nr, nbw - (int64_t)p * nr);
                float *c = j->y + i * n + j0 + (int64_t)p * nr;
                int64_t ldc;
                float *cd = tile_begin(c, n, nn, nr, rows, acc, ctmp, &ldc);
                if (bf)
                    kn->kern_bf16((kk + 1) / 2, j->xb + i * j->ldxb + k0, j->ldxb,
                                  panel16 + (size_t)p * KB * nr, cd, ldc, rows, acc);
                else
                    kn->kern(kk, j->xp + (i / mr) * k * mr + k0 * mr,
                             panel + (size_t)p * KB * nr, nr, cd, ldc, rows, acc);
                tile_done(c, n, nn, nr, rows, cd);
            }
        }
    }
    if (j->bias)
        add_bias(kn, j->y + i0 * n, n, i1 - i0, j->bias, j0, j0 + nbw, btmp, j->nb);
}

/* one (row block, column block) tile of the int8 GEMM: GLMV_QKB-element slices of the block
 * column packed once (glmv_cpu_pack_q) and used by every row tile of the block */
static void gemm_q_task(void *ctx, int64_t t, int thread) {
    mm_job *j = ctx;
    const glmv_cpu_kernels *kn = j->cs->k;
    const int mr = kn->mrq;
    const int64_t n = j->n, k = j->k, ldd = k / 32;
    int64_t ib = t % j->n_mb, jb = t / j->n_mb;
    int64_t i0 = ib * j->mb, i1 = GLMV_MIN(j->m, i0 + j->mb);
    int64_t j0 = jb * j->nb, nbw = GLMV_MIN(j->nb, n - j0);
    int npan = (int)((nbw + GLMV_NRQ - 1) / GLMV_NRQ);
    const int64_t pstride = (GLMV_QKB / 16) * glmv_cpu_q_block_bytes(16); /* the larger of L = 16, 32 */

    char *scr = cpu_tscratch(j->cs, thread);
    int8_t *panel = (int8_t *)scr;
    float *ctmp = (float *)(scr + (size_t)pstride * (GLMV_NBQ / GLMV_NRQ));
    float *btmp = ctmp + GLMV_MR_MAX * GLMV_NRQ;

    for (int64_t k0 = 0; k0 < k; k0 += GLMV_QKB) {
        int64_t kk = GLMV_MIN((int64_t)GLMV_QKB, k - k0);
        int L = 32;
        for (int p = 0; p < npan; p++) {
            int nn = (int)GLMV_MIN((int64_t)GLMV_NRQ, nbw - (int64_t)p * GLMV_NRQ);
            L = (kn->pack_q ? kn->pack_q : glmv_cpu_pack_q)(panel + p * pstride, j->w->data, j->w->dtype, k, j0 + p * GLMV_NRQ, nn, k0, kk);
        }
        int acc = k0 > 0;
        for (int64_t i = i0; i < i1; i += mr) {
            int rows = (int)GLMV_MIN((int64_t)mr, i1 - i);
            for (int p = 0; p < npan; p++) {
                int nn = (int)GLMV_MIN((int64_t)GLMV_NRQ, nbw - (int64_t)p * GLMV_NRQ);
                float *c = j->y + i * n + j0 + (int64_t)p * GLMV_NRQ;
                int64_t ldc;
                float *cd = tile_begin(c, n, nn, GLMV_NRQ, rows, acc, ctmp, &ldc);
                kn->kern_q(kk / L, L, j->xu + i * j->ldxu + k0, j->ldxu, j->xd + i * ldd + k0 / 32,
                           j->xs ? j->xs + i * ldd + k0 / 32 : NULL, ldd, panel + p * pstride, cd, ldc,
                           rows, acc);
                tile_done(c, n, nn, GLMV_NRQ, rows, cd);
            }
        }
    }
    if (j->bias)
        add_bias(kn, j->y + i0 * n, n, i1 - i0, j->bias, j0, j0 + nbw, btmp, j->nb);
}

/* panels of L = 16 (the larger: glmv_cpu_q_block_bytes(16) = 28 x GLMV_NRQ bytes a block), then
 * ctmp and btmp */
_Static_assert((GLMV_QKB / 16) * 28 * GLMV_NRQ * (GLMV_NBQ / GLMV_NRQ) +
                       (GLMV_MR_MAX * GLMV_NRQ + GLMV_NBQ) * sizeof(float) <= GLMV_CPU_TSCRATCH,
               "the int8 GEMM's panels and tiles fit a thread's scratch");

/* a row of x for the int8 GEMM: int8 blocks as for decode, stored + 128 */
static void quant_xu_task(void *ctx, int64_t t, int thread) {
    (void)thread;
    mm_job *j = ctx;
    int8_t *q = (int8_t *)(j->xu + t * j->ldxu);
    float *d = j->xd + t * (j->k / 32);
    (j->cs->k->quant_x ? j->cs->k->quant_x : glmv_quantize_x_q8)(j->x + t * j->k, q, d, j->k);
    if (j->xs)
        for (int64_t b = 0; b < j->k / 32; b++) {
            int32_t sum = 0;
            for (int e = 0; e < 32; e++) sum += q[b * 32 + e];
            j->xs[t * (j->k / 32) + b] = d[b] * (float)sum;
        }
    for (int64_t e = 0; e < j->k; e++) j->xu[t * j->ldxu + e] = (uint8_t)(q[e] + 128);
}

/* y = x·wᵀ for block-format w through the int8 GEMM (kn->kern_q) */
static void run_gemm_q(cpu_state *cs, mm_job *j) {
    const glmv_cpu_kernels *kn = cs->k;
    size_t m = (size_t)j->m, k = (size_t)j->k;
    j->ldxu = (j->k + 63) / 64 * 64;
    size_t ub = glmv_mul_size(m, (size_t)j->ldxu), db = glmv_mul_size(m, k / 32 * sizeof(float));
    char *sc = cpu_shared(cs, ub + 2 * db + 128);
    j->xu = (uint8_t *)sc;
    j->xd = (float *)(sc + (ub + 63) / 64 * 64);
    j->xs = j->w->dtype == GLMV_Q4_K ? (float *)((char *)j->xd + (db + 63) / 64 * 64) : NULL;
    glmv_pool_run(cs->pool, quant_xu_task, j, j->m);
    /* one row block where possible, so each weight is unpacked once per product */
    j->nb = GLMV_NBQ;
    int64_t n_nb = (j->n + j->nb - 1) / j->nb;
    j->mb = GLMV_MIN((j->m + kn->mrq - 1) / kn->mrq, (int64_t)128) * kn->mrq;
    j->n_mb = (j->m + j->mb - 1) / j->mb;
    while (j->n_mb * n_nb < 2 * (int64_t)cs->n_threads && j->mb > kn->mrq) {
        j->mb = GLMV_MAX((int64_t)kn->mrq, (j->mb / 2 + kn->mrq - 1) / kn->mrq * kn->mrq);
        j->n_mb = (j->m + j->mb - 1) / j->mb;
    }
    glmv_pool_run(cs->pool, gemm_q_task, j, j->n_mb * n_nb);
}

/* one row tile of x, k-major: xp[t][p][r] = x[t*mr + r][p], zero past m */
static void pack_x_task(void *ctx, int64_t t, int thread) {
    (void)thread;
    mm_job *j = ctx;
    int mr = j->cs->k->mr;
    int64_t k = j->k, rows = GLMV_MIN((int64_t)mr, j->m - t * mr);
    float *d = j->xp + t * k * mr;
    for (int64_t k0 = 0; k0 < k; k0 += 64) { /* in strips, so the mr source rows stay in L1 */
        int64_t k1 = GLMV_MIN(k, k0 + 64);
        for (int r = 0; r < mr; r++) {
            const float *xr = j->x + (t * mr + r) * k;
            if (r < rows)
                for (int64_t p = k0; p < k1; p++) d[p * mr + r] = xr[p];
            else
                for (int64_t p = k0; p < k1; p++) d[p * mr + r] = 0.0f;
        }
    }
}

static void quant_x_task(void *ctx, int64_t t, int thread) {
    (void)thread;
    mm_job *j = ctx;
    (j->cs->k->quant_x ? j->cs->k->quant_x : glmv_quantize_x_q8)(j->x + t * j->k, j->xq + t * j->k,
                                                                 j->xd + t * (j->k / 32), j->k);
    if (j->w->dtype == GLMV_Q4_0) glmv_x_corrections(j->xq + t * j->k, j->xc + t * (j->k / 4), j->k, 8);
    if (j->w->dtype == GLMV_Q5_0) glmv_x_corrections(j->xq + t * j->k, j->xc + t * (j->k / 4), j->k, 16);
    if (j->w->dtype == GLMV_Q6_K) glmv_x_corrections(j->xq + t * j->k, j->xc + t * (j->k / 4), j->k, 32);
    if (j->w->dtype == GLMV_Q4_K) glmv_q8_block_sums(j->xq + t * j->k, j->xc + t * (j->k / 4), j->k);
}

static void to_bf16_task(void *ctx, int64_t t, int thread) {
    (void)thread;
    mm_job *j = ctx;
    uint16_t *d = (uint16_t *)j->xb + t * j->ldxb;
    j->cs->k->to_bf16(d, j->x + t * j->k, j->k);
    if (j->ldxb > j->k) d[j->k] = 0;
}

/* x rounded to bf16 once for the bf16 products (GEMM and decode): rows of an even ldxb */
static void round_x_bf16(cpu_state *cs, mm_job *j) {
    j->ldxb = (j->k + 1) & ~(int64_t)1;
    j->xb = cpu_shared(cs, glmv_mul_size((size_t)j->m, (size_t)j->ldxb * 2));
    glmv_pool_run(cs->pool, to_bf16_task, j, j->m);
}

/* bf: bf16 precision and bf16 weights (vdpbf16ps where the table has it) */
static void run_matvec(cpu_state *cs, mm_job *j, int bf) {
    if (bf && cs->k->matvec_bf16) {
        round_x_bf16(cs, j);
    } else if (glmv_dtype_is_quant(j->w->dtype)) { /* x to int8 blocks once, for every weight row */
        size_t qb = glmv_mul_size((size_t)j->m, (size_t)j->k), qa = (qb + 63) / 64 * 64;
        char *sc = cpu_shared(cs, qa + qb / 32 * sizeof(float) + 64 + qb / 4 * sizeof(int32_t));
        j->xq = (int8_t *)sc;
        j->xd = (float *)(sc + qa);
        j->xc = (int32_t *)(sc + qa + (qb / 32 * sizeof(float) + 63) / 64 * 64);
        glmv_pool_run(cs->pool, quant_x_task, j, j->m);
    }
    /* a few tasks per thread, each a contiguous stream of weight rows */
    int64_t tasks = (int64_t)cs->n_threads * 4;
    j->rows_per_task = GLMV_MAX((int64_t)16, (j->n + tasks - 1) / tasks);
    glmv_pool_run(cs->pool, matvec_task, j, (j->n + j->rows_per_task - 1) / j->rows_per_task);
}

/* Decode rows of several sequences: always the matrix-vector kernel, so that each row's
 * result is bit for bit what matmul gives it alone (m = 1). */
void glmv_cpu_matmul_rows(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                          const glmv_tensor *bias, int64_t m) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) {
        glmv_ref_matmul(y, x, w, bias, m);
        return;
    }
    mm_job j = {.cs = cs, .y = y, .x = x, .w = w, .bias = bias, .m = m,
                .n = glmv_tensor_rows(w), .k = glmv_tensor_cols(w)};
    if (m <= 0 || j.n <= 0) return;
    run_matvec(cs, &j, be->bf16 && w->dtype == GLMV_BF16);
}

void glmv_cpu_matmul(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                     const glmv_tensor *bias, int64_t m) {
    cpu_state *cs = cpu_of(be);
    const glmv_cpu_kernels *kn = cs->k;
    if (!kn) {
        glmv_ref_matmul(y, x, w, bias, m);
        return;
    }
    mm_job j = {.cs = cs, .y = y, .x = x, .w = w, .bias = bias, .m = m,
                .n = glmv_tensor_rows(w), .k = glmv_tensor_cols(w)};
    if (m <= 0 || j.n <= 0) return;
    int bf = be->bf16 && w->dtype == GLMV_BF16; /* --precision bf16 on AVX512-BF16 */
    if (m == 1) {
        run_matvec(cs, &j, bf);
        return;
    }
    if (kn->kern_q && glmv_dtype_is_quant(w->dtype)) {
        run_gemm_q(cs, &j);
        return;
    }
    /* narrow column blocks and long k-blocks in the same scratch, so that each tile of C is
     * read back from cache once per 1,024 (f32 panels) or 2,048 (bf16) elements of k; the
     * block formats' f32 panels (CPUs without the int8 GEMM) keep GLMV_KB */
    int q = glmv_dtype_is_quant(w->dtype);
    j.nb = q ? GLMV_NB : GLMV_NB / 4;
    j.kb = q ? GLMV_KB : bf ? 8 * GLMV_KB : 4 * GLMV_KB;
    int64_t mr = bf && kn->mrb ? kn->mrb : kn->mr; /* rows of a tile */
    j.mb = 64 * (int64_t)kn->mr;
    j.n_mb = (m + j.mb - 1) / j.mb;
    int64_t n_nb = (j.n + j.nb - 1) / j.nb;
    /* few column blocks and many threads: smaller row blocks keep everyone busy */
    while (j.n_mb * n_nb < 2 * (int64_t)cs->n_threads && j.mb > mr) {
        j.mb = GLMV_MAX(mr, (j.mb / 2 + mr - 1) / mr * mr);
        j.n_mb = (m + j.mb - 1) / j.mb;
    }
    if (bf) {
        round_x_bf16(cs, &j);
    } else {
        int64_t tiles = (m + kn->mr - 1) / kn->mr;
        j.xp = cpu_shared(cs, glmv_mul_size((size_t)tiles * (size_t)kn->mr, (size_t)j.k * 4));
        glmv_pool_run(cs->pool, pack_x_task, &j, tiles);
    }
    glmv_pool_run(cs->pool, gemm_task, &j, j.n_mb * n_nb);
}
