/* ref.h -- the scalar reference of every op in ops.h, in plain C on the host.
 * Slow and obviously correct: it defines what an op means. Fast kernels (SIMD,
 * threaded, CUDA) are tested against these functions, op by op. Same
 * parameters as the glmv_backend members, without the backend. */
#ifndef GLMV_CPU_REF_H
#define GLMV_CPU_REF_H

#include "ops.h"

void glmv_ref_matmul(float *y, const float *x, const glmv_tensor *w, const glmv_tensor *bias,
                     int64_t m);
void glmv_ref_embed(float *y, const glmv_tensor *table, const int32_t *ids, int64_t n);
void glmv_ref_rmsnorm(float *y, const float *x, const glmv_tensor *w, int64_t n, int64_t d,
                      float eps);
void glmv_ref_layernorm(float *y, const float *x, const glmv_tensor *w, const glmv_tensor *b,
                        int64_t n, int64_t d, float eps);
void glmv_ref_rope_interleaved(float *x, int64_t ld, const float *cos, const float *sin,
                               int64_t n, int n_heads, int head_dim, int rot_dim);
void glmv_ref_rope_neox(float *x, int64_t ld, const float *cos, const float *sin, int64_t n,
                        int n_heads, int head_dim);
void glmv_ref_attn_causal(float *out, const float *q, int64_t ldq, const float *kc,
                          const float *vc, int64_t n, int64_t pos0, int n_heads,
                          int n_kv_heads, int head_dim, float scale);
void glmv_ref_attn_segments(float *out, const float *q, int64_t ldq, const float *k,
                            int64_t ldk, const float *v, int64_t ldv, const int64_t *cu,
                            int n_seg, int n_heads, int head_dim, float scale);
void glmv_ref_swiglu(float *y, const float *gate, int64_t ld_g, const float *up, int64_t ld_u,
                     int64_t n, int64_t d);
void glmv_ref_gelu_erf(float *y, const float *x, int64_t count);
void glmv_ref_add(float *y, const float *a, const float *b, int64_t count);
void glmv_ref_permute_021(float *y, const float *x, int64_t A, int64_t B, int64_t C);
void glmv_ref_top_k(float *vals, int32_t *ids, const float *x, int64_t rows, int64_t n, int k);
/* The order top_k sorts by, as one unsigned integer: a larger key is a larger value, or an equal
 * value at a smaller index (+0 and -0 the same; NaN below -inf). */
static inline uint64_t glmv_top_key(float v, int64_t i) {
    union { float f; uint32_t u; } b = {v};
    uint32_t o = v != v ? 0u : v == 0.0f ? 0x80000000u : (b.u & 0x80000000u) ? ~b.u : (b.u | 0x80000000u);
    return (uint64_t)o << 32 | (uint32_t)(0xffffffffu - (uint32_t)i);
}

#endif
