/* flash.h -- what the two flash attention kernels share: attention.cu's flash_kernel
 * (mma.sync, any GPU of the backend) and flash_wg.cu's flash_wg_kernel (Hopper's wgmma):
 * the bf16 packing of Q's fragments, the online softmax's step, cp.async's groups, and the
 * launcher both go through. Device helpers only (each .cu that includes it gets its own). */
#ifndef GLMV_CUDA_FLASH_H
#define GLMV_CUDA_FLASH_H

#include "cuda/cuda_impl.h"

#define LOG2E 1.4426950408889634f

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x = lo in the low half */
    return *(uint32_t *)&v;
}

/* A fragments of rows a and b of Q (f32 -> bf16, the mma's row-major A layout: thread
 * (gq, tig) holds columns 2 tig, 2 tig + 1 and the same + 8 of each 16), from qa / qb,
 * which point at column 2 tig of their rows; a row not ok reads as zero */
template <int HD>
__device__ __forceinline__ void load_q_frags(uint32_t (&qf)[HD / 16][4], const float *qa, const float *qb,
                                             bool ok_a, bool ok_b) {
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        float2 x0 = ok_a ? *(const float2 *)(qa + kk * 16) : make_float2(0.f, 0.f);
        float2 x1 = ok_b ? *(const float2 *)(qb + kk * 16) : make_float2(0.f, 0.f);
        float2 x2 = ok_a ? *(const float2 *)(qa + kk * 16 + 8) : make_float2(0.f, 0.f);
        float2 x3 = ok_b ? *(const float2 *)(qb + kk * 16 + 8) : make_float2(0.f, 0.f);
        qf[kk][0] = pack_bf16(x0.x, x0.y);
        qf[kk][1] = pack_bf16(x1.x, x1.y);
        qf[kk][2] = pack_bf16(x2.x, x2.y);
        qf[kk][3] = pack_bf16(x3.x, x3.y);
    }
}

/* The online softmax's step for rows a and b: this tile's maxima mx_* (each thread's,
 * reduced over the quad here) into the running maxima m_*, the reference each row's
 * exponents subtract (0 while a row has seen only -inf) and the rescale alpha of what
 * was summed before (exp2(-inf) = 0) */
__device__ __forceinline__ void online_max(float &m_a, float &m_b, float mx_a, float mx_b, float &ref_a,
                                           float &ref_b, float &al_a, float &al_b) {
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, off));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, off));
    }
    float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
    ref_a = mn_a == -INFINITY ? 0.f : mn_a;
    ref_b = mn_b == -INFINITY ? 0.f : mn_b;
    al_a = exp2f(m_a - ref_a);
    al_b = exp2f(m_b - ref_b);
    m_a = mn_a;
    m_b = mn_b;
}

__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* the flash kernels' common signature (flash_kernel, flash_wg_kernel) */
typedef void (*flash_fn)(float *, int64_t, const float *, int64_t, const __nv_bfloat16 *, const __nv_bfloat16 *,
                         int64_t, int64_t, int64_t, int, int64_t, int, float);

/* one flash kernel over nq query rows: blocks of bm rows and threads threads, grid.x at most
 * 65535 blocks a launch; its dynamic shared memory limit raised to sh once a device
 * (attr_set: that kernel's flags, 64 devices) */
int flash_grid(cuda_ctx *c, flash_fn fn, int *attr_set, int bm, int threads, size_t sh, float *out,
               int64_t ldo, const float *q, int64_t ldq, const __nv_bfloat16 *kb, const __nv_bfloat16 *vt,
               int64_t nq, int64_t nk, int64_t nk_pad, int causal, int64_t pos0, int n_heads, int group,
               float scale, const char *what);

/* the wgmma flash kernel over nq rows (arguments as flash_kernel's, kb/vt converted with whole
 * tiles: nk_pad a multiple of 128 for variants 2 and 3, of 64 otherwise); variant 0: one
 * warpgroup a block, 64-key tiles; 1: two warpgroups, 64-key tiles; 2: two, 128-key tiles, in
 * step; 3: two, 128-key tiles, ping-pong (the default) */
int k_flash_wg(cuda_ctx *c, int variant, float *out, int64_t ldo, const float *q, int64_t ldq, const __nv_bfloat16 *kb,
               const __nv_bfloat16 *vt, int64_t nq, int64_t nk, int64_t nk_pad, int causal, int64_t pos0, int n_heads,
               int group, float scale);

#endif
