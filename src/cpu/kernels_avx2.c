/* kernels_avx2.c -- the CPU kernels for AVX2 + FMA + F16C (8 float lanes).
 *
 * The Makefile compiles this file alone with -mavx2 -mfma -mf16c; backend.c
 * calls into it only after __builtin_cpu_supports says the CPU has them. The
 * kernels themselves are in kernels_body.h; this file defines the vector
 * vocabulary they are written in. GEMM tile: 6 rows x 16 columns (12 ymm
 * accumulators).
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "base.h"
#include "cpu/kernels.h"
#include "quant.h"

typedef __m256 vf;
#define VL 8
#define KMR 6
#define KSUF(name) name##_avx2

#define vzero() _mm256_setzero_ps()
#define vset1(a) _mm256_set1_ps(a)
#define vloadu(p) _mm256_loadu_ps(p)
#define vstoreu(p, v) _mm256_storeu_ps((p), (v))
#define vadd(a, b) _mm256_add_ps((a), (b))
#define vsub(a, b) _mm256_sub_ps((a), (b))
#define vmul(a, b) _mm256_mul_ps((a), (b))
#define vdiv(a, b) _mm256_div_ps((a), (b))
#define vmax(a, b) _mm256_max_ps((a), (b))
#define vmin(a, b) _mm256_min_ps((a), (b))
#define vfma(a, b, c) _mm256_fmadd_ps((a), (b), (c)) /* a*b + c */
#define vround(a) _mm256_round_ps((a), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
/* 2^n for integral n in [-126, 127] */
#define vpow2i(n) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define vload_bf16(p) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#define vload_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))

static inline float vhsum(vf v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float vhmax(vf v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define MV_PAIRS   /* the matrix-vector kernel takes output rows two at a time ... */
#define MV_PAIRS_M 2 /* ... for 2 rows of x or a lone row with a long x (16 registers) */
#include "cpu/kernels_body.h"

const glmv_cpu_kernels glmv_cpu_kernels_avx2 = {
    .name = "avx2",
    .mr = KMR,
    .nr = NRV,
    .matvec = matvec_avx2,
    .matvec_q = matvec_q_avx2,
    .pack = pack_avx2,
    .kern = kern_avx2,
    .pack_kt = pack_kt_avx2,
    .dot = dot_avx2,
    .axpy = axpy_avx2,
    .scale = scale_avx2,
    .to_f32 = to_f32_avx2,
    .max = max_avx2,
    .exp_sum = exp_sum_avx2,
    .rmsnorm_row = rmsnorm_row_avx2,
    .layernorm_row = layernorm_row_avx2,
    .swiglu_row = swiglu_row_avx2,
    .add = add_avx2,
};
