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

/* load_q_frags with Q rotated first (rope_rot): ca/sa and cb/sb point at column 2 tig of rows a
 * and b's cos and sin tables (HD / 2 floats a row). Fragment kk < HD / 32 holds columns d, its
 * partner kk + HD / 32 the columns d + HD / 2, in the same thread. */
template <int HD>
__device__ __forceinline__ void load_q_frags_rope(uint32_t (&qf)[HD / 16][4], const float *qa, const float *qb,
                                                  bool ok_a, bool ok_b, const float *ca, const float *sa,
                                                  const float *cb, const float *sb) {
    constexpr int P = HD / 32;
#pragma unroll
    for (int kk = 0; kk < P; kk++)
#pragma unroll
        for (int j = 0; j < 2; j++) { /* columns kk * 16 + 8 j + (0, 1) */
            const int o = kk * 16 + 8 * j;
            float2 la = ok_a ? *(const float2 *)(qa + o) : make_float2(0.f, 0.f);
            float2 ha = ok_a ? *(const float2 *)(qa + o + HD / 2) : make_float2(0.f, 0.f);
            float2 lb = ok_b ? *(const float2 *)(qb + o) : make_float2(0.f, 0.f);
            float2 hb = ok_b ? *(const float2 *)(qb + o + HD / 2) : make_float2(0.f, 0.f);
            float2 c_a = ok_a ? *(const float2 *)(ca + o) : make_float2(0.f, 0.f);
            float2 s_a = ok_a ? *(const float2 *)(sa + o) : make_float2(0.f, 0.f);
            float2 c_b = ok_b ? *(const float2 *)(cb + o) : make_float2(0.f, 0.f);
            float2 s_b = ok_b ? *(const float2 *)(sb + o) : make_float2(0.f, 0.f);
            float la0, la1, ha0, ha1, lb0, lb1, hb0, hb1;
            rope_rot(la.x, ha.x, c_a.x, s_a.x, la0, ha0);
            rope_rot(la.y, ha.y, c_a.y, s_a.y, la1, ha1);
            rope_rot(lb.x, hb.x, c_b.x, s_b.x, lb0, hb0);
            rope_rot(lb.y, hb.y, c_b.y, s_b.y, lb1, hb1);
            /* A fragment: [0] row a cols 0-1, [1] row b cols 0-1, [2] row a cols 8-9, [3] row b cols 8-9 */
            qf[kk][2 * j] = pack_bf16(la0, la1);
            qf[kk][2 * j + 1] = pack_bf16(lb0, lb1);
            qf[kk + P][2 * j] = pack_bf16(ha0, ha1);
            qf[kk + P][2 * j + 1] = pack_bf16(hb0, hb1);
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

/* the bulk-copy variant (flash_wp_kernel: two warpgroups, 128-key tiles, ping-pong, each tile one
 * bulk copy from the images conv_img_kernel writes first): whether it takes these operands
 * (c->flash_bulk, the wgmma shape, 16-byte rows), and the attention through it, arguments as
 * flash_launch's; kcs / ksn and qcs / qsn (NULL: none): K and Q rotated on the way (NeoX, rope_rot;
 * rows of 64 floats, row r of k / q at + 64 r); outb (NULL: none): the output in bf16 as well */
int k_flash_bulk_takes(const cuda_ctx *c, int hd, int64_t nq, const void *k, int64_t ldk_bytes, const void *v,
                       int64_t ldv_bytes);
template <typename KT>
int k_flash_bulk(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq, const KT *k, int64_t ldk,
                 const KT *v, int64_t ldv, int64_t nq, int64_t nk, int causal, int64_t pos0, int n_heads, int n_kv,
                 float scale, const float *kcs, const float *ksn, const float *qcs, const float *qsn,
                 __nv_bfloat16 *outb);

#endif
