/* kernels.cu -- the small ops of the CUDA backend: embedding rows, RMSNorm and
 * LayerNorm, the two rotary forms, SwiGLU, GELU(erf), add, the 0-2-1 permute,
 * and the f32->bf16 conversion that feeds the tensor-core GEMMs.
 *
 * All are memory-bound: one pass, float4 loads where rows are 16-byte aligned,
 * fp32 arithmetic (statistics in fp32 with a two-level reduction). Weights of
 * norms may be F32, F16 or BF16 (read through ldw). Semantics: src/cpu/ref.c. */
#include "cuda/cuda_impl.h"

#include <math.h>

/* one element of a weight of any dtype, as float */
__device__ __forceinline__ float ldw(const void *p, int dt, int64_t i) {
    if (dt == GLMV_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    if (dt == GLMV_F16) return __half2float(((const __half *)p)[i]);
    return ((const float *)p)[i];
}

/* sum over the block (blockDim.x a multiple of 32, <= 1024); all threads get it */
__device__ float block_sum(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads(); /* sh may still be read by a previous call */
    if (l == 0) sh[w] = v;
    __syncthreads();
    v = l < nw ? sh[l] : 0.f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ------------------------------------------------------------------ embed */

#define EMBED_PARAM_IDS 64
struct ids_param { int32_t v[EMBED_PARAM_IDS]; };

__global__ void embed_kernel(float *y, const void *t, int dt, int64_t d, ids_param ip,
                             const int32_t *ids_dev) {
    PDL_ENTRY();
    int64_t i = blockIdx.y;
    int64_t id = ids_dev ? ids_dev[i] : ip.v[i];
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < d;
         j += (int64_t)gridDim.x * blockDim.x)
        y[i * d + j] = ldw(t, dt, id * d + j);
}

void k_embed(cuda_ctx *c, float *y, const glmv_tensor *t, const int32_t *ids, int64_t n) {
    if (n <= 0) return;
    int64_t d = glmv_tensor_cols(t);
    ids_param ip;
    const int32_t *dev_ids = NULL;
    if (n <= EMBED_PARAM_IDS) {
        memcpy(ip.v, ids, sizeof(int32_t) * (size_t)n);
    } else {
        int32_t *s = (int32_t *)cuda_scratch(c, sizeof(int32_t) * (size_t)n);
        if (!s) return;
        cudaError_t e = cudaMemcpyAsync(s, ids, sizeof(int32_t) * (size_t)n,
                                        cudaMemcpyHostToDevice, c->stream);
        if (e != cudaSuccess) { cuda_fail(c, "embed: ids copy", e); return; }
        dev_ids = s;
    }
    for (int64_t i0 = 0; i0 < n; i0 += 65535) { /* grid.y limit */
        int64_t nn = n - i0 < 65535 ? n - i0 : 65535;
        dim3 grid(cdiv(d, 256) < 16 ? cdiv(d, 256) : 16, (unsigned)nn);
        /* ids in the parameter block only when n <= 64, so then i0 == 0 */
        cuda_launch(c, embed_kernel, grid, 256, 0, y + i0 * d, t->data, t->dtype, d, ip,
                                                  dev_ids ? dev_ids + i0 : NULL);
    }
    cuda_check(c, "embed");
}

/* ------------------------------------------------------------------ norms */

/* four floats rounded to bf16 as to_bf16_kernel rounds them, one 8-byte store */
__device__ __forceinline__ void store_bf16x4(__nv_bfloat16 *p, float4 a) {
    __nv_bfloat162 lo = __floats2bfloat162_rn(a.x, a.y), hi = __floats2bfloat162_rn(a.z, a.w);
    *(uint2 *)p = make_uint2(*(uint32_t *)&lo, *(uint32_t *)&hi);
}

__global__ void rmsnorm_kernel(float *y, const float *x, const void *w, int dt, int64_t d,
                               float eps, int vec, __nv_bfloat16 *yb) {
    PDL_ENTRY();
    __shared__ float sh[32];
    const float *xr = x + blockIdx.x * d;
    float *yr = y + blockIdx.x * d;
    float ss = 0;
    if (vec) {
        for (int64_t j = threadIdx.x * 4; j < d; j += blockDim.x * 4) {
            float4 v = *(const float4 *)(xr + j);
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
    } else {
        for (int64_t j = threadIdx.x; j < d; j += blockDim.x) ss += xr[j] * xr[j];
    }
    ss = block_sum(ss, sh);
    float r = rsqrtf(ss / (float)d + eps);
    if (vec) {
        for (int64_t j = threadIdx.x * 4; j < d; j += blockDim.x * 4) {
            float4 v = *(const float4 *)(xr + j);
            v.x = ldw(w, dt, j) * (v.x * r);
            v.y = ldw(w, dt, j + 1) * (v.y * r);
            v.z = ldw(w, dt, j + 2) * (v.z * r);
            v.w = ldw(w, dt, j + 3) * (v.w * r);
            *(float4 *)(yr + j) = v;
            if (yb) store_bf16x4(yb + blockIdx.x * d + j, v);
        }
    } else {
        for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
            yr[j] = ldw(w, dt, j) * (xr[j] * r);
            if (yb) yb[blockIdx.x * d + j] = __float2bfloat16_rn(yr[j]);
        }
    }
}

__nv_bfloat16 *k_bf16_fold(cuda_ctx *c, int64_t n, int64_t d) {
    if (!c->bf16 || c->bfold_off || n <= GEMV_MAX_M) return NULL;
    size_t bytes = sizeof(__nv_bfloat16) * (size_t)(n * d);
    return (__nv_bfloat16 *)cuda_grow(c, &c->bn, &c->bn_bytes, bytes, bytes, "out of device memory for bf16 rows");
}

void k_bf16_folded(cuda_ctx *c, const float *y, int64_t n, int64_t d) {
    c->bn_src = y;
    c->bn_m = n;
    c->bn_k = d;
}

/* a row's threads: a float4 each where the row has room, at most c->norm_tpb */
static int norm_threads(const cuda_ctx *c, int64_t d) {
    int t = 32;
    while (t < c->norm_tpb && t * 4 < d) t *= 2;
    return t;
}

void k_rmsnorm(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w, int64_t n,
               int64_t d, float eps) {
    if (n <= 0) return;
    /* the float4 path needs 16-byte aligned rows */
    int vec = (d & 3) == 0 && !((uintptr_t)x % 16) && !((uintptr_t)y % 16);
    __nv_bfloat16 *yb = k_bf16_fold(c, n, d);
    if (c->failed) return;
    cuda_launch(c, rmsnorm_kernel, (unsigned)n, norm_threads(c, d), 0, y, x, w->data, w->dtype, d,
                                                                   eps, vec, yb);
    if (cuda_check(c, "rmsnorm")) return;
    if (yb) k_bf16_folded(c, y, n, d);
}

/* rmsnorm_kernel's arithmetic twice, with the residual add between: x += w1·(t·r1), then
 * y = w2·(x·r2); the sums are the same block_sum over the same elements, so the results are
 * those of rmsnorm, add, rmsnorm bit for bit. Q: y is also rounded to int8 blocks of 32 as
 * quant_x_kernel rounds it (q, qd, qs: its values, scales and block sums; vec, d % 128 == 0, so
 * that a warp's 32 lanes hold 128 whole elements, 8 lanes a block): the same maximum, the same
 * scale and rounding of each value, the same integer sum. */
template <int Q>
__global__ void norm_add_norm_kernel(float *x, float *y, const float *t, const void *w1, int dt1,
                                     const void *w2, int dt2, int64_t d, float eps, int vec, int8_t *q,
                                     float *qd, int32_t *qs, __nv_bfloat16 *yb) {
    PDL_ENTRY();
    __shared__ float sh[32];
    const float *tr = t + blockIdx.x * d;
    float *xr = x + blockIdx.x * d, *yr = y + blockIdx.x * d;
    float r = 1.f;
    if (w1) { /* (no w1: t is added as it is, as add_kernel adds it) */
        float ss = 0;
        if (vec) {
            for (int64_t j = threadIdx.x * 4; j < d; j += blockDim.x * 4) {
                float4 v = *(const float4 *)(tr + j);
                ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
            }
        } else {
            for (int64_t j = threadIdx.x; j < d; j += blockDim.x) ss += tr[j] * tr[j];
        }
        ss = block_sum(ss, sh);
        r = rsqrtf(ss / (float)d + eps);
    }
    float s2 = 0;
    if (vec) {
        for (int64_t j = threadIdx.x * 4; j < d; j += blockDim.x * 4) {
            float4 v = *(const float4 *)(tr + j), a = *(const float4 *)(xr + j);
            if (w1) {
                v.x = __fmul_rn(ldw(w1, dt1, j), v.x * r);
                v.y = __fmul_rn(ldw(w1, dt1, j + 1), v.y * r);
                v.z = __fmul_rn(ldw(w1, dt1, j + 2), v.z * r);
                v.w = __fmul_rn(ldw(w1, dt1, j + 3), v.w * r);
            }
            a.x = __fadd_rn(a.x, v.x);
            a.y = __fadd_rn(a.y, v.y);
            a.z = __fadd_rn(a.z, v.z);
            a.w = __fadd_rn(a.w, v.w);
            *(float4 *)(xr + j) = a;
            s2 += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
        }
    } else {
        for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
            /* no fused multiply-add: add_kernel rounds twice */
            float a = __fadd_rn(xr[j], w1 ? __fmul_rn(ldw(w1, dt1, j), tr[j] * r) : tr[j]);
            xr[j] = a;
            s2 += a * a;
        }
    }
    s2 = block_sum(s2, sh);
    r = rsqrtf(s2 / (float)d + eps);
    if (vec) {
        for (int64_t j = threadIdx.x * 4; j < d; j += blockDim.x * 4) {
            float4 v = *(const float4 *)(xr + j);
            v.x = ldw(w2, dt2, j) * (v.x * r);
            v.y = ldw(w2, dt2, j + 1) * (v.y * r);
            v.z = ldw(w2, dt2, j + 2) * (v.z * r);
            v.w = ldw(w2, dt2, j + 3) * (v.w * r);
            *(float4 *)(yr + j) = v;
            if (yb) store_bf16x4(yb + blockIdx.x * d + j, v);
            if (Q) { /* q8_round_lane over 8 lanes of 4 values */
                float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
                for (int off = 4; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
                const float dd = amax / 127.0f, id = dd != 0 ? 1.0f / dd : 0.0f;
                const int a = (int)roundf(v.x * id), b = (int)roundf(v.y * id), e = (int)roundf(v.z * id),
                          f = (int)roundf(v.w * id);
                int sum = a + b + e + f;
                for (int off = 4; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
                const int64_t at = (int64_t)blockIdx.x * d + j;
                *(char4 *)(q + at) = make_char4((signed char)a, (signed char)b, (signed char)e, (signed char)f);
                if ((threadIdx.x & 7) == 0) {
                    qd[at / 32] = dd;
                    qs[at / 32] = sum;
                }
            }
        }
    } else {
        for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
            yr[j] = ldw(w2, dt2, j) * (xr[j] * r);
            if (yb) yb[blockIdx.x * d + j] = __float2bfloat16_rn(yr[j]);
        }
    }
}

void k_norm_add_norm(cuda_ctx *c, float *x, float *y, const float *t, const glmv_tensor *w1,
                     const glmv_tensor *w2, int64_t n, int64_t d, float eps) {
    if (n <= 0) return;
    int vec = (d & 3) == 0 && !((uintptr_t)x % 16) && !((uintptr_t)y % 16) && !((uintptr_t)t % 16);
    if (c->has_quant && !c->qfold_off && vec && d % 128 == 0 && n <= GEMV_MAX_M) {
        /* quant_x's layout: values [n, d], then scales and block sums, each 256-byte aligned */
        const size_t a = ((size_t)(n * d) + 255) & ~(size_t)255, b = ((size_t)(n * d / 32) * 4 + 255) & ~(size_t)255;
        char *s = (char *)cuda_grow(c, &c->qn, &c->qn_bytes, a + 2 * b, GLMV_MAX(a + 2 * b, (size_t)1 << 17),
                                    "out of device memory for quantized activations");
        if (!s) return;
        cuda_launch(c, norm_add_norm_kernel<1>, (unsigned)n, norm_threads(c, d), 0, x, y, t, w1 ? w1->data : NULL,
                    w1 ? (int)w1->dtype : 0, w2->data, w2->dtype, d, eps, vec, (int8_t *)s, (float *)(s + a), (int32_t *)(s + a + b),
                    (__nv_bfloat16 *)NULL);
        if (cuda_check(c, "norm_add_norm")) return;
        c->qn_src = y; /* after the launch, which clears it */
        c->qn_m = n;
        c->qn_k = d;
        return;
    }
    __nv_bfloat16 *yb = k_bf16_fold(c, n, d);
    if (c->failed) return;
    cuda_launch(c, norm_add_norm_kernel<0>, (unsigned)n, norm_threads(c, d), 0, x, y, t, w1 ? w1->data : NULL,
                w1 ? (int)w1->dtype : 0, w2->data, w2->dtype, d, eps, vec, (int8_t *)NULL, (float *)NULL, (int32_t *)NULL, yb);
    if (cuda_check(c, "norm_add_norm")) return;
    if (yb) k_bf16_folded(c, y, n, d);
}

__global__ void layernorm_kernel(float *y, const float *x, const void *w, int dtw, const void *b,
                                 int dtb, int64_t d, float eps) {
    PDL_ENTRY();
    __shared__ float sh[32];
    const float *xr = x + blockIdx.x * d;
    float *yr = y + blockIdx.x * d;
    float s = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) s += xr[j];
    float mean = block_sum(s, sh) / (float)d;
    float v = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        float t = xr[j] - mean;
        v += t * t;
    }
    float r = rsqrtf(block_sum(v, sh) / (float)d + eps);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
        yr[j] = (xr[j] - mean) * r * ldw(w, dtw, j) + (b ? ldw(b, dtb, j) : 0.f);
}

void k_layernorm(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w,
                 const glmv_tensor *b, int64_t n, int64_t d, float eps) {
    if (n <= 0) return;
    cuda_launch(c, layernorm_kernel, (unsigned)n, norm_threads(c, d), 0, 
        y, x, w->data, w->dtype, b ? b->data : NULL, b ? b->dtype : 0, d, eps);
    cuda_check(c, "layernorm");
}

/* ------------------------------------------------------------------ rotary */

/* one thread per (row, head, pair) */
__global__ void rope_interleaved_kernel(float *x, int64_t ld, const float *cs, const float *sn,
                                        int64_t n, int n_heads, int head_dim, int half) {
    PDL_ENTRY();
    int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    int64_t total = n * n_heads * half;
    if (t >= total) return;
    int j = (int)(t % half);
    int64_t rh = t / half;
    int h = (int)(rh % n_heads);
    int64_t i = rh / n_heads;
    float *v = x + i * ld + (int64_t)h * head_dim + 2 * j;
    rope_rot(v[0], v[1], cs[i * half + j], sn[i * half + j], v[0], v[1]); /* (one rounding a product) */
}

void k_rope_interleaved(cuda_ctx *c, float *x, int64_t ld, const float *cos, const float *sin,
                        int64_t n, int n_heads, int head_dim, int rot_dim) {
    int half = rot_dim / 2;
    int64_t total = n * n_heads * half;
    if (total <= 0) return;
    cuda_launch(c, rope_interleaved_kernel, cdiv(total, 256), 256, 0, x, ld, cos, sin, n, n_heads,
                                                                      head_dim, half);
    cuda_check(c, "rope_interleaved");
}

__global__ void rope_neox_kernel(float *x, int64_t ld, const float *cs, const float *sn, int64_t n,
                                 int n_heads, int head_dim, int half) {
    PDL_ENTRY();
    int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    int64_t total = n * n_heads * half;
    if (t >= total) return;
    int d = (int)(t % half);
    int64_t rh = t / half;
    int h = (int)(rh % n_heads);
    int64_t i = rh / n_heads;
    float *v = x + i * ld + (int64_t)h * head_dim;
    float c = cs[i * half + d], s = sn[i * half + d];
    rope_rot(v[d], v[d + half], c, s, v[d], v[d + half]);
}

void k_rope_neox(cuda_ctx *c, float *x, int64_t ld, const float *cos, const float *sin,
                 int64_t n, int n_heads, int head_dim) {
    int half = head_dim / 2;
    int64_t total = n * n_heads * half;
    if (total <= 0) return;
    cuda_launch(c, rope_neox_kernel, cdiv(total, 256), 256, 0, x, ld, cos, sin, n, n_heads,
                                                               head_dim, half);
    cuda_check(c, "rope_neox");
}

/* ------------------------------------------------------------- elementwise */

__global__ void swiglu_kernel(float *y, const float *g, int64_t ld_g, const float *u,
                              int64_t ld_u, int64_t n, int64_t d) {
    PDL_ENTRY();
    int64_t i = blockIdx.y;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < d;
         j += (int64_t)gridDim.x * blockDim.x) {
        y[i * d + j] = silu_mul(g[i * ld_g + j], u[i * ld_u + j]);
    }
}

void k_swiglu(cuda_ctx *c, float *y, const float *g, int64_t ld_g, const float *u,
              int64_t ld_u, int64_t n, int64_t d) {
    if (n <= 0 || d <= 0) return;
    for (int64_t i0 = 0; i0 < n; i0 += 65535) {
        int64_t nn = n - i0 < 65535 ? n - i0 : 65535;
        unsigned gx = cdiv(d, 256);
        if (gx > 64) gx = 64;
        cuda_launch(c, swiglu_kernel, dim3(gx, (unsigned)nn), 256, 0, 
            y + i0 * d, g + i0 * ld_g, ld_g, u + i0 * ld_u, ld_u, nn, d);
    }
    cuda_check(c, "swiglu");
}

/* the same products rounded to bf16 (for a GEMM's input), rows of d: y [n, d]; four at a time
 * (16-byte loads) where the rows allow */

__global__ void swiglu_bf16_kernel(__nv_bfloat16 *y, const float *g, int64_t ld_g, const float *u, int64_t ld_u,
                                   int64_t d, int vec) {
    PDL_ENTRY();
    int64_t i = blockIdx.y;
    if (vec) {
        const float4 *g4 = (const float4 *)(g + i * ld_g), *u4 = (const float4 *)(u + i * ld_u);
        uint2 *y4 = (uint2 *)(y + i * d);
        for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < d / 4;
             j += (int64_t)gridDim.x * blockDim.x) {
            float4 a = g4[j], b = u4[j];
            __nv_bfloat162 lo = __floats2bfloat162_rn(silu_mul(a.x, b.x), silu_mul(a.y, b.y));
            __nv_bfloat162 hi = __floats2bfloat162_rn(silu_mul(a.z, b.z), silu_mul(a.w, b.w));
            y4[j] = make_uint2(*(uint32_t *)&lo, *(uint32_t *)&hi);
        }
        return;
    }
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < d; j += (int64_t)gridDim.x * blockDim.x)
        y[i * d + j] = __float2bfloat16_rn(silu_mul(g[i * ld_g + j], u[i * ld_u + j]));
}

void k_swiglu_bf16(cuda_ctx *c, __nv_bfloat16 *y, const float *g, int64_t ld_g, const float *u, int64_t ld_u,
                   int64_t n, int64_t d) {
    if (n <= 0 || d <= 0) return;
    int vec = d % 4 == 0 && ld_g % 4 == 0 && ld_u % 4 == 0 && ((uintptr_t)g | (uintptr_t)u | (uintptr_t)y) % 16 == 0;
    for (int64_t i0 = 0; i0 < n; i0 += 65535) {
        int64_t nn = n - i0 < 65535 ? n - i0 : 65535;
        unsigned gx = cdiv(vec ? d / 4 : d, 256);
        if (gx > 64) gx = 64;
        cuda_launch(c, swiglu_bf16_kernel, dim3(gx, (unsigned)nn), 256, 0, y + i0 * d, g + i0 * ld_g, ld_g,
                    u + i0 * ld_u, ld_u, d, vec);
    }
    cuda_check(c, "swiglu (bf16)");
}

/* h[i, j] = silu(g) * u rounded to bf16 for g, u the bf16 values gu[i, j] and gu[i, d + j] (a gate/up
 * product written in bf16), eight at a time (16-byte loads) where the rows allow */
__global__ void swiglu_b2b_kernel(__nv_bfloat16 *h, const __nv_bfloat16 *gu, int64_t d, int vec) {
    PDL_ENTRY();
    const int64_t i = blockIdx.y;
    const __nv_bfloat16 *g = gu + i * 2 * d, *u = g + d;
    __nv_bfloat16 *y = h + i * d;
    if (vec) {
        for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < d / 8;
             j += (int64_t)gridDim.x * blockDim.x) {
            const uint4 a = ((const uint4 *)g)[j], b = ((const uint4 *)u)[j];
            const __nv_bfloat162 *a2 = (const __nv_bfloat162 *)&a, *b2 = (const __nv_bfloat162 *)&b;
            uint4 o;
            __nv_bfloat162 *o2 = (__nv_bfloat162 *)&o;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float2 x = __bfloat1622float2(a2[e]), z = __bfloat1622float2(b2[e]);
                o2[e] = __floats2bfloat162_rn(silu_mul(x.x, z.x), silu_mul(x.y, z.y));
            }
            ((uint4 *)y)[j] = o;
        }
        return;
    }
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < d; j += (int64_t)gridDim.x * blockDim.x)
        y[j] = __float2bfloat16_rn(silu_mul(__bfloat162float(g[j]), __bfloat162float(u[j])));
}

void k_swiglu_b2b(cuda_ctx *c, __nv_bfloat16 *h, const __nv_bfloat16 *gu, int64_t n, int64_t d) {
    if (n <= 0 || d <= 0) return;
    const int vec = d % 8 == 0 && ((uintptr_t)gu | (uintptr_t)h) % 16 == 0;
    for (int64_t i0 = 0; i0 < n; i0 += 65535) {
        const int64_t nn = n - i0 < 65535 ? n - i0 : 65535;
        unsigned gx = cdiv(vec ? d / 8 : d, 256);
        if (gx > 64) gx = 64;
        cuda_launch(c, swiglu_b2b_kernel, dim3(gx, (unsigned)nn), 256, 0, h + i0 * d, gu + i0 * 2 * d, d, vec);
    }
    cuda_check(c, "swiglu (bf16 to bf16)");
}

__global__ void gelu_kernel(float *y, const float *x, int64_t count) {
    PDL_ENTRY();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

static unsigned grid_for(int64_t count) {
    unsigned g = cdiv(count, 256);
    return g > 4096 ? 4096 : (g ? g : 1);
}

void k_gelu_erf(cuda_ctx *c, float *y, const float *x, int64_t count) {
    if (count <= 0) return;
    cuda_launch(c, gelu_kernel, grid_for(count), 256, 0, y, x, count);
    cuda_check(c, "gelu_erf");
}

__global__ void add_kernel(float *y, const float *a, const float *b, int64_t count) {
    PDL_ENTRY();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = a[i] + b[i];
}

__global__ void add4_kernel(float4 *y, const float4 *a, const float4 *b, int64_t count4) {
    PDL_ENTRY();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count4;
         i += (int64_t)gridDim.x * blockDim.x) {
        float4 p = a[i], q = b[i];
        y[i] = make_float4(p.x + q.x, p.y + q.y, p.z + q.z, p.w + q.w);
    }
}

void k_add(cuda_ctx *c, float *y, const float *a, const float *b, int64_t count) {
    if (count <= 0) return;
    if ((count & 3) == 0 && !((uintptr_t)y % 16) && !((uintptr_t)a % 16) && !((uintptr_t)b % 16))
        cuda_launch(c, add4_kernel, grid_for(count / 4), 256, 0, (float4 *)y, (const float4 *)a,
                                                                (const float4 *)b, count / 4);
    else
        cuda_launch(c, add_kernel, grid_for(count), 256, 0, y, a, b, count);
    cuda_check(c, "add");
}

/* y[a, c, b] = x[a, b, c] through 32x32 shared tiles */
__global__ void permute_021_kernel(float *y, const float *x, int64_t B, int64_t C) {
    PDL_ENTRY();
    __shared__ float tile[32][33];
    int64_t a = blockIdx.z;
    int64_t b0 = blockIdx.y * 32, c0 = blockIdx.x * 32;
    const float *xa = x + a * B * C;
    float *ya = y + a * B * C;
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
        int64_t b = b0 + r, cc = c0 + threadIdx.x;
        if (b < B && cc < C) tile[r][threadIdx.x] = xa[b * C + cc];
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
        int64_t cc = c0 + r, b = b0 + threadIdx.x;
        if (b < B && cc < C) ya[cc * B + b] = tile[threadIdx.x][r];
    }
}

void k_permute_021(cuda_ctx *c, float *y, const float *x, int64_t A, int64_t B, int64_t C) {
    if (A <= 0 || B <= 0 || C <= 0) return;
    for (int64_t a0 = 0; a0 < A; a0 += 65535) {
        int64_t na = A - a0 < 65535 ? A - a0 : 65535;
        dim3 grid(cdiv(C, 32), cdiv(B, 32), (unsigned)na);
        cuda_launch(c, permute_021_kernel, grid, dim3(32, 8), 0, y + a0 * B * C, x + a0 * B * C, B,
                                                                C);
    }
    cuda_check(c, "permute_021");
}

/* ------------------------------------------------------------- conversions */

__global__ void to_bf16_kernel(__nv_bfloat16 *y, const float *x, int64_t count, int vec) {
    PDL_ENTRY();
    if (vec) { /* four at a time: 16-byte loads, 8-byte stores */
        for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count / 4;
             i += (int64_t)gridDim.x * blockDim.x) {
            float4 a = ((const float4 *)x)[i];
            __nv_bfloat162 lo = __floats2bfloat162_rn(a.x, a.y), hi = __floats2bfloat162_rn(a.z, a.w);
            ((uint2 *)y)[i] = make_uint2(*(uint32_t *)&lo, *(uint32_t *)&hi);
        }
        return;
    }
    int64_t n2 = count / 2;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n2;
         i += (int64_t)gridDim.x * blockDim.x)
        ((__nv_bfloat162 *)y)[i] = __floats2bfloat162_rn(x[2 * i], x[2 * i + 1]);
    if ((count & 1) && blockIdx.x == 0 && threadIdx.x == 0)
        y[count - 1] = __float2bfloat16_rn(x[count - 1]);
}

void k_to_bf16(cuda_ctx *c, __nv_bfloat16 *y, const float *x, int64_t count) {
    if (count <= 0) return;
    int vec = count % 4 == 0 && ((uintptr_t)x | (uintptr_t)y) % 16 == 0;
    cuda_launch(c, to_bf16_kernel, grid_for(vec ? count / 4 : count / 2 + 1), 256, 0, y, x, count, vec);
    cuda_check(c, "to_bf16");
}

__global__ void bf16_to_f32_kernel(float *y, const __nv_bfloat16 *x, int64_t count) {
    PDL_ENTRY();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = __bfloat162float(x[i]);
}

void k_bf16_to_f32(cuda_ctx *c, float *y, const __nv_bfloat16 *x, int64_t count) {
    if (count <= 0) return;
    cuda_launch(c, bf16_to_f32_kernel, grid_for(count), 256, 0, y, x, count);
    cuda_check(c, "bf16_to_f32");
}

/* y[i] = lut[256 * ((i / run) % tables) + x[i]]: bytes widened through tables of 256 floats (the
 * vision tower's patch rows), the tables in shared memory */
__global__ void lut_widen_kernel(float *y, const uint8_t *x, int64_t count, int64_t run, const float *lut,
                                 int tables) {
    extern __shared__ float t[];
    PDL_ENTRY();
    for (int i = threadIdx.x; i < 256 * tables; i += blockDim.x) t[i] = lut[i];
    __syncthreads();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = t[256 * (int)((i / run) % tables) + x[i]];
}

void k_lut_widen(cuda_ctx *c, float *y, const uint8_t *x, int64_t count, int64_t run, const float *lut,
                 int tables) {
    if (count <= 0) return;
    cuda_launch(c, lut_widen_kernel, grid_for(count), 256, sizeof(float) * 256 * tables, y, x, count, run, lut,
                tables);
    cuda_check(c, "lut_widen");
}

/* cs[r, :] = [tc[hp[r]] | tc[wp[r]]], sn likewise from ts: rows of 2 nf floats (the vision tower's
 * rotation tables from their values at each coordinate) */
__global__ void rope_table_2d_kernel(float *cs, float *sn, const float *tc, const float *ts, const int32_t *hp,
                                     const int32_t *wp, int64_t n, int nf) {
    PDL_ENTRY();
    const int64_t w = 2 * (int64_t)nf;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n * w; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / w;
        const int j = (int)(i - r * w), a = j < nf;
        const int64_t t = (int64_t)(a ? hp[r] : wp[r]) * nf + (a ? j : j - nf);
        cs[i] = tc[t];
        sn[i] = ts[t];
    }
}

void k_rope_table_2d(cuda_ctx *c, float *cs, float *sn, const float *tc, const float *ts, const int32_t *hp,
                     const int32_t *wp, int64_t n, int nf) {
    if (n <= 0) return;
    cuda_launch(c, rope_table_2d_kernel, grid_for(n * 2 * nf), 256, 0, cs, sn, tc, ts, hp, wp, n, nf);
    cuda_check(c, "rope_table_2d");
}

/* y[i, j] = bias[j]: grid (column blocks, rows), no division per element */
__global__ void fill_bias_kernel(float *y, const void *b, int dt, int64_t n) {
    PDL_ENTRY();
    float *yr = y + (int64_t)blockIdx.y * n;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < n; j += (int64_t)gridDim.x * blockDim.x)
        yr[j] = ldw(b, dt, j);
}

void k_fill_bias(cuda_ctx *c, float *y, const glmv_tensor *bias, int64_t m, int64_t n) {
    if (m * n <= 0) return;
    unsigned gx = cdiv(n, 256);
    if (gx > 64) gx = 64;
    for (int64_t i0 = 0; i0 < m; i0 += 65535) {
        int64_t mm = m - i0 < 65535 ? m - i0 : 65535;
        cuda_launch(c, fill_bias_kernel, dim3(gx, (unsigned)mm), 256, 0, y + i0 * n, bias->data, bias->dtype, n);
    }
    cuda_check(c, "bias");
}

/* ------------------------------------------------------------------ top_k */

/* Each row cut in chunks of TOPK_CHUNK items, one block a chunk: its items as 64-bit keys that
 * order them as top_k does (glmv_top_key: the value's bits made monotonic, then the index
 * reversed, so that the larger key is the larger value or the smaller index), sorted in shared
 * memory (bitonic, descending) and its best k kept; the chunks' keys go through the same kernel
 * until one chunk holds a row's, whose best k become the values (read back from x, exactly as
 * stored) and indices. k = 1 takes the maximum key instead of sorting. */
#define TOPK_CHUNK 4096
#define TOPK_THREADS 512

__device__ __forceinline__ uint64_t top_key_dev(float v, uint32_t i) {
    uint32_t b = __float_as_uint(v);
    uint32_t o = v != v ? 0u : v == 0.0f ? 0x80000000u : (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return (uint64_t)o << 32 | (0xffffffffu - i);
}

/* kin NULL: the items are x's floats (row stride n_x), else keys (row stride ld_in); len items a
 * row. vals NULL: the chunk's best k keys to kout[row * ld_out + chunk * k + j]; else (one chunk
 * a row) the row's best k to vals and ids [row, k]. */
__global__ void topk_chunk_kernel(uint64_t *kout, int64_t ld_out, float *vals, int32_t *ids, const float *x,
                                  int64_t n_x, const uint64_t *kin, int64_t ld_in, int64_t len, int k) {
    PDL_ENTRY();
    __shared__ uint64_t s[TOPK_CHUNK];
    __shared__ uint64_t red[TOPK_THREADS / 32];
    const int64_t row = blockIdx.y, c0 = (int64_t)blockIdx.x * TOPK_CHUNK;
    const float *xr = x + row * n_x;
    const uint64_t *kr = kin ? kin + row * ld_in : NULL;
    if (k == 1) {
        uint64_t best = 0;
        for (int t = threadIdx.x; t < TOPK_CHUNK; t += blockDim.x) {
            int64_t i = c0 + t;
            if (i >= len) break;
            uint64_t key = kr ? kr[i] : top_key_dev(xr[i], (uint32_t)i);
            best = key > best ? key : best;
        }
        for (int o = 16; o > 0; o >>= 1) {
            uint64_t v = __shfl_xor_sync(0xffffffffu, best, o);
            best = v > best ? v : best;
        }
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = best;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 0; w < (int)(blockDim.x >> 5); w++) best = red[w] > best ? red[w] : best;
            s[0] = best;
        }
    } else {
        for (int t = threadIdx.x; t < TOPK_CHUNK; t += blockDim.x) {
            int64_t i = c0 + t;
            s[t] = i >= len ? 0 : kr ? kr[i] : top_key_dev(xr[i], (uint32_t)i);
        }
        for (int size = 2; size <= TOPK_CHUNK; size <<= 1)
            for (int stride = size >> 1; stride > 0; stride >>= 1) {
                __syncthreads();
                for (int t = threadIdx.x; t < TOPK_CHUNK / 2; t += blockDim.x) {
                    int i = 2 * t - (t & (stride - 1)), j = i + stride;
                    uint64_t a = s[i], b = s[j];
                    if ((a < b) == ((i & size) == 0)) {
                        s[i] = b;
                        s[j] = a;
                    }
                }
            }
    }
    __syncthreads();
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        uint64_t key = s[j];
        if (vals) {
            uint32_t i = 0xffffffffu - (uint32_t)key;
            ids[row * k + j] = (int32_t)i;
            vals[row * k + j] = xr[i];
        } else {
            kout[row * ld_out + (int64_t)blockIdx.x * k + j] = key;
        }
    }
}

void k_top_k(cuda_ctx *c, float *vals, int32_t *ids, const float *x, int64_t rows, int64_t n, int k) {
    if (rows <= 0) return;
    if (k < 1 || k > n || k > TOPK_CHUNK / 2 || n > INT32_MAX || rows > 65535) {
        cuda_fail(c, "top_k: k outside 1..min(n, 2048), or more than 65535 rows", cudaErrorInvalidValue);
        return;
    }
    int64_t chunks = cdiv(n, TOPK_CHUNK), len = n, ld_in = 0;
    const uint64_t *kin = NULL;
    uint64_t *buf[2] = {NULL, NULL};
    if (chunks > 1) { /* the first pass's keys and the next's, turn about */
        size_t per = (size_t)(rows * chunks * k);
        buf[0] = (uint64_t *)cuda_scratch(c, sizeof(uint64_t) * 2 * per);
        if (!buf[0]) return;
        buf[1] = buf[0] + per;
    }
    for (int p = 0; chunks > 1; p ^= 1) {
        cuda_launch(c, topk_chunk_kernel, dim3((unsigned)chunks, (unsigned)rows), TOPK_THREADS, 0, buf[p],
                    chunks * k, (float *)NULL, (int32_t *)NULL, x, n, kin, ld_in, len, k);
        kin = buf[p];
        ld_in = len = chunks * k;
        chunks = cdiv(len, TOPK_CHUNK);
    }
    cuda_launch(c, topk_chunk_kernel, dim3(1, (unsigned)rows), TOPK_THREADS, 0, (uint64_t *)NULL, (int64_t)0, vals,
                ids, x, n, kin, ld_in, len, k);
    cuda_check(c, "top_k");
}

/* ------------------------------------------------------------ the tower's position table */

/* be->pos_embed: a block a target patch (hp, wp), threads over the dims: for each of the 4 source
 * rows y0 + a the 4 taps along x, then the 4 along y, each sum from 0 in tap order with the products
 * and sums rounded apart (glmv_vision_pos_embed's taps4 twice: the same floats) */
__global__ void pos_embed_kernel(float *out, const void *tab, int dt, int S, int Hv, int ms, int gh, int gw,
                                 const float *coef, const int *idx) {
    PDL_ENTRY();
    const int hp = blockIdx.x / gw, wp = blockIdx.x % gw;
    const float *cx = coef + 4 * wp, *cy = coef + 4 * (gw + hp);
    const int x0 = idx[wp], y0 = idx[gw + hp];
    int xs[4], ys[4];
#pragma unroll
    for (int b = 0; b < 4; b++) {
        xs[b] = min(max(x0 + b, 0), S - 1);
        ys[b] = min(max(y0 + b, 0), S - 1);
    }
    const int64_t o = (((int64_t)(hp / ms) * (gw / ms) + wp / ms) * ms + hp % ms) * ms + wp % ms; /* merge-block order */
    for (int d = threadIdx.x; d < Hv; d += blockDim.x) {
        float v = 0.f;
#pragma unroll
        for (int a = 0; a < 4; a++) {
            const int64_t rowi = (int64_t)ys[a] * S;
            float x = 0.f;
#pragma unroll
            for (int b = 0; b < 4; b++) x = __fadd_rn(x, __fmul_rn(ldw_any(tab, dt, (rowi + xs[b]) * Hv + d), cx[b]));
            v = __fadd_rn(v, __fmul_rn(x, cy[a]));
        }
        out[o * Hv + d] = v;
    }
}

int k_pos_embed(cuda_ctx *c, float *out, const glmv_tensor *tab, int S, int ms, int gh, int gw, const float *coef,
                const int *idx) {
    const int Hv = (int)glmv_tensor_cols(tab);
    if (tab->dtype != GLMV_BF16 && tab->dtype != GLMV_F16 && tab->dtype != GLMV_F32) return 1;
    if (glmv_tensor_rows(tab) != (int64_t)S * S || gh <= 0 || gw <= 0 || gh % ms || gw % ms) return 1;
    /* the taps, 5 (gw + gh) words, into scratch ahead of the kernel that reads them (from pageable
     * memory: the copy has taken them when it returns, so the caller may free them) */
    const size_t cb = sizeof(float) * 4 * (size_t)(gw + gh), ib = sizeof(int) * (size_t)(gw + gh);
    char *d = (char *)cuda_scratch(c, cb + ib);
    if (!d) return 0; /* the error is recorded */
    cudaError_t e = cudaMemcpyAsync(d, coef, cb, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess) e = cudaMemcpyAsync(d + cb, idx, ib, cudaMemcpyHostToDevice, c->stream);
    if (e != cudaSuccess) {
        cuda_fail(c, "pos_embed (taps)", e);
        return 0;
    }
    cuda_launch(c, pos_embed_kernel, (unsigned)((int64_t)gh * gw), 256, 0, out, (const void *)tab->data, (int)tab->dtype,
                S, Hv, ms, gh, gw, (const float *)d, (const int *)(d + cb));
    cuda_check(c, "pos_embed");
    return 0;
}
