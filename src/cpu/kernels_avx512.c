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

#define AVX512_COMMON                   \
    .mr = KMR,                          \
    .nr = NRV,                          \
    .matvec = matvec_avx512,            \
    .matvec_q = matvec_q_avx512,        \
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
};

const glmv_cpu_kernels glmv_cpu_kernels_avx512bf16 = {
    .name = "avx512bf16",
    AVX512_COMMON,
    .to_bf16 = to_bf16_avx512bf16,
    .kern_bf16 = kern_bf16_avx512bf16,
};
