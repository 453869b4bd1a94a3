/* kernels.h -- the SIMD kernel table of the CPU backend.
 *
 * One table per instruction set (kernels_avx2.c, kernels_avx512.c, both
 * generated from kernels_body.h). The drivers in matmul.c, attention.c and
 * backend.c do the threading and blocking and call these single-threaded
 * kernels; backend.c picks a table at run time with __builtin_cpu_supports.
 * Every kernel computes in float32 (the bf16 GEMM rounds x to bf16 first:
 * see kern_bf16), and test_ops.c checks each against the scalar reference.
 */
#ifndef GLMV_CPU_KERNELS_H
#define GLMV_CPU_KERNELS_H

#include <stdint.h>

#include "ops.h"

#define GLMV_MV_MAX 4   /* matvec handles up to this many rows of x per weight read */
#define GLMV_KB 256     /* GEMM k-block (even) */
#define GLMV_MR_MAX 16  /* largest tile rows of any table (mr, or mrb: AMX's 16) */
#define GLMV_NB 128     /* GEMM column block: weight columns packed per task */
#define GLMV_NR_MAX 32  /* largest register tile columns of any table */
#define GLMV_NRQ 32     /* int8 GEMM panel columns */
#define GLMV_QKB 2048   /* int8 GEMM k-block (a multiple of 256, so of every block format) */
#define GLMV_NBQ 64     /* int8 GEMM column block */

typedef struct {
    const char *name;           /* "avx2", "avx512", "avx512bf16" */
    int mr, nr;                 /* GEMM register tile: mr rows of x by nr columns of w */

    /* y[i*ldy + o] = Σ_j x[i*ldx + j] · w[o*k + j] for i < m (1..GLMV_MV_MAX), o in [o0, o1);
     * w is [n, k] in dtype dt (BF16, F16, F32), read once for all m rows (decode). */
    void (*matvec)(float *y, int64_t ldy, const float *x, int64_t ldx, int m, const void *w,
                   glmv_dtype dt, int64_t k, int64_t o0, int64_t o1);

    /* The same for w in a block format against x quantized to int8 (glmv_quantize_x_q8): row
     * i of x is xq[i*ldxq ..] with one scale xd[i*ldxq/32 + b] per 32-element block b, and at
     * xc[i*ldxq/4 ..] (Q4_0, Q5_0, Q6_K) its correction lanes (glmv_x_corrections, offsets 8,
     * 16 and 32) or (Q4_K) its block sums (glmv_q8_block_sums). */
    void (*matvec_q)(float *y, int64_t ldy, const int8_t *xq, const float *xd, const int32_t *xc,
                     int64_t ldxq, int m, const void *w, glmv_dtype dt, int64_t k, int64_t o0,
                     int64_t o1);

    /* Pack columns [n0, n0+nn) (nn <= nr) and k range [k0, k0+kk) of w [n, k] into
     * dst[kk][nr] float32, zero padded to nr columns. */
    void (*pack)(float *dst, const void *w, glmv_dtype dt, int64_t k, int64_t n0, int nn,
                 int64_t k0, int64_t kk);
    /* C[i*ldc + j] (acc ? += : =) Σ_p A[p*mr + i] · B[p*ldb + j] for i < rows (1..mr of
     * the table), j < nr, p < K: A is a row tile packed k-major ([K][mr], see
     * glmv_cpu_pack_a), so the tile's rows never conflict in the L1 cache. */
    void (*kern)(int64_t K, const float *A, const float *B, int64_t ldb, float *C, int64_t ldc,
                 int rows, int acc);

    /* Kᵀ panels for attention: dst[p][e][c] = k[(p*nr + c)*ldk + e], e < hd (a multiple
     * of 8), keys past nk zero up to a multiple of nr. */
    void (*pack_kt)(float *dst, const float *k, int64_t ldk, int64_t nk, int hd);

    /* bf16 GEMM (NULL unless AVX512-BF16): x rounded to bf16 once (to_bf16), w packed in
     * pairs along k by glmv_cpu_pack_bf16 into [kk/2][nr][2]; kern_bf16 computes
     * C[i*ldc + j] (acc ? += : =) Σ_p Σ_e A[i*lda + 2p + e] · B[(p*nr + j)*2 + e] for
     * i < rows, j < nr, p < K2 (pairs); A rows of bf16 with an even stride lda. */
    void (*to_bf16)(uint16_t *dst, const float *src, int64_t n);
    void (*kern_bf16)(int64_t K2, const uint16_t *A, int64_t lda, const uint16_t *B, float *C,
                      int64_t ldc, int mr, int acc);
    int mrb;                    /* rows a kern_bf16 call takes (0: mr; AMX: 16) */
    /* Decode in bf16 precision (NULL where the table has no bf16 products): y[i*ldy + o] =
     * Σ_j xb[i*ldxb + j] · w[o*k + j] for i < m (1..GLMV_MV_MAX), o in [o0, o1), x already
     * rounded to bf16 (as the bf16 GEMM rounds it), w BF16 [n, k]. Each output is summed the
     * same way whatever m is (so a batched decode row is the row alone, bit for bit). */
    void (*matvec_bf16)(float *y, int64_t ldy, const uint16_t *xb, int64_t ldxb, int m,
                        const uint16_t *w, int64_t k, int64_t o0, int64_t o1);
    /* glmv_cpu_pack_bf16, the same bytes, faster (NULL: the portable one) */
    void (*pack_bf16)(uint16_t *dst, int nr, const uint16_t *w, int64_t k, int64_t n0, int nn,
                      int64_t k0, int64_t kk);

    /* int8 GEMM for block-format weights (NULL where the table has none): x quantized to int8
     * per 32-element block as for decode (glmv_quantize_x_q8), stored as unsigned bytes
     * (q + 128) in rows of lda, with ad[i*ldad + b] its scale d_x of block b and, for formats
     * with a min (Q4_K), as[i*ldad + b] = d_x·Σq of the block (else as is NULL). The panel P
     * (glmv_cpu_pack_q) holds GLMV_NRQ columns of w in nblk blocks of L (32, or 16 for Q6_K)
     * elements. For i < rows (1..mrq), j < GLMV_NRQ:
     *   t ← fma(float(I_b) · ad[i*ldad + b'], s_b[j], t), then (as) t ← fma(-o_b[j], as[..], t)
     * block after block from t = 0, and C[i*ldc + j] = acc ? C + t : t; where I_b = init_b[j] + Σ_e
     * A[i][bL + e]·v_b[e][j] is exact in int32 (init_b[j] = -128 Σ_e v_b[e][j] undoes the
     * +128) and b' = bL/32: so every table gives the same floats (glmv_cpu_kern_q_scalar). */
    int mrq;
    /* glmv_quantize_x_q8, the same bytes, faster (NULL: the portable one) */
    void (*quant_x)(const float *x, int8_t *q, float *d, int64_t k);
    /* glmv_cpu_pack_q, the same bytes, faster (NULL: the portable one) */
    int (*pack_q)(int8_t *dst, const void *w, glmv_dtype dt, int64_t k, int64_t n0, int nn, int64_t k0,
                  int64_t kk);
    void (*kern_q)(int64_t nblk, int L, const uint8_t *A, int64_t lda, const float *ad,
                   const float *as, int64_t ldad, const int8_t *P, float *C, int64_t ldc, int rows,
                   int acc);

    /* vectors */
    float (*dot)(const float *a, const float *b, int64_t n);
    void (*axpy)(float *y, float a, const float *x, int64_t n);      /* y += a·x */
    void (*scale)(float *y, float a, int64_t n);                     /* y *= a */
    void (*to_f32)(float *dst, const void *src, glmv_dtype dt, int64_t n);
    float (*max)(const float *x, int64_t n);
    /* p[i] = exp(p[i] - mx); returns Σ p[i] */
    float (*exp_sum)(float *p, int64_t n, float mx);

    /* rows and elementwise (w, b already float32) */
    void (*rmsnorm_row)(float *y, const float *x, const float *w, int64_t d, float eps);
    void (*layernorm_row)(float *y, const float *x, const float *w, const float *b, int64_t d,
                          float eps);
    void (*swiglu_row)(float *y, const float *g, const float *u, int64_t d);
    void (*add)(float *y, const float *a, const float *b, int64_t n);
} glmv_cpu_kernels;

/* Portable parts of the bf16 GEMM, shared by every table that has one (and by
 * the scalar emulation test_ops uses to test the bf16 path on any CPU). */
/* Pack columns [n0, n0+nn) (nn <= nr), k range [k0, k0+kk) of bf16 w [n, k] in pairs
 * along k: dst[p][c][e] = w[n0 + c][k0 + 2p + e], zero past kk and past nn. */
void glmv_cpu_pack_bf16(uint16_t *dst, int nr, const uint16_t *w, int64_t k, int64_t n0, int nn,
                        int64_t k0, int64_t kk);
void glmv_cpu_to_bf16_scalar(uint16_t *dst, const float *src, int64_t n);
/* matvec_bf16 in plain C (each output a float32 sum over j in order) */
void glmv_cpu_matvec_bf16_scalar(float *y, int64_t ldy, const uint16_t *xb, int64_t ldxb, int m,
                                 const uint16_t *w, int64_t k, int64_t o0, int64_t o1);
/* kern_bf16 in plain C for a tile of mr x nr (what vdpbf16ps computes, with
 * float32 accumulation of each pair). */
void glmv_cpu_kern_bf16_scalar(int mr, int nr, int64_t K2, const uint16_t *A, int64_t lda,
                               const uint16_t *B, float *C, int64_t ldc, int rows, int acc);

/* The int8 GEMM's panel: columns [n0, n0+nn) (nn <= GLMV_NRQ) and elements [k0, k0+kk) of w
 * [n, k] in block format dt (k0, kk multiples of 32; of 256 for K-quants), as kk/L blocks of
 * glmv_cpu_q_block_bytes(L) bytes: v[L/4][GLMV_NRQ][4] (int8 values: 4 consecutive elements
 * of a column per 32-bit word), then int32 init[GLMV_NRQ], float s[GLMV_NRQ], float
 * o[GLMV_NRQ] (w ≈ s·v - o; columns past nn all zero). Returns L. */
int glmv_cpu_pack_q(int8_t *dst, const void *w, glmv_dtype dt, int64_t k, int64_t n0, int nn,
                    int64_t k0, int64_t kk);
static inline int64_t glmv_cpu_q_block_bytes(int L) { return (int64_t)L * GLMV_NRQ + 12 * GLMV_NRQ; }
/* kern_q in plain C for a tile of mr x GLMV_NRQ */
void glmv_cpu_kern_q_scalar(int mr, int64_t nblk, int L, const uint8_t *A, int64_t lda,
                            const float *ad, const float *as, int64_t ldad, const int8_t *P, float *C,
                            int64_t ldc, int rows, int acc);

extern const glmv_cpu_kernels glmv_cpu_kernels_avx2;
extern const glmv_cpu_kernels glmv_cpu_kernels_avx512;
extern const glmv_cpu_kernels glmv_cpu_kernels_avx512bf16;
/* AMX (kernels_amx.c): the bf16 GEMM tile on the tile registers; the process's permission to
 * use them asked for once (1: granted) */
void glmv_cpu_kern_bf16_amx(int64_t K2, const uint16_t *A, int64_t lda, const uint16_t *B, float *C,
                            int64_t ldc, int rows, int acc);
int glmv_cpu_amx_init(void);

#endif
