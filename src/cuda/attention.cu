/* attention.cu -- the two attention ops of the CUDA backend.
 *
 * flash_kernel: prefill (causal, GQA) and the vision tower's segments
 * (bidirectional). FlashAttention-2 style: a block takes 64 query rows of one
 * head (4 warps x 16 rows), streams 64-key tiles of K and V through shared
 * memory as bf16 and runs both products on the tensor cores
 * (mma.sync m16n8k16 bf16, fp32 accumulate); softmax is online, in fp32 and
 * base 2. Q, K, V are rounded to bf16 (as in the HF bf16 run), so expect an
 * NMSE near 1e-5 against the fp64 reference. Head dims 64 and 128.
 *
 * flash_wg_kernel: the same function on Hopper's wgmma for head dim 128 and 64 rows or
 * more (prefill and the vision tower on compute capability 9.0; GLMV_CUDA_WGMMA=0 keeps
 * flash_kernel): 128 query rows a block, 128-key tiles, the softmax of one tile overlapped
 * with the product of the tile before by V. About 1.6x flash_kernel on an H100.
 *
 * split_kernel: decode (a few query rows) and the fallback for any head dim:
 * fp32 throughout, flash-decoding: the keys are cut into chunks, each block
 * does one chunk for one kv head and all the query heads that share it (GQA),
 * with an online softmax over 64-key sub-tiles; combine_kernel merges chunks.
 *
 * sgemm_segment: the vision tower's segments in f32 precision (be->bf16 0):
 * S = scale Q Kᵀ per head by strided-batched SGEMM, a row softmax, O = P V,
 * all fp32 (no TF32), at SGEMM speed where the split kernel, built for a
 * few query rows, would take seconds for a large image. */
#include "cuda/cuda_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOG2E 1.4426950408889634f

/* ------------------------------------------------------ tensor-core flash */

__device__ __forceinline__ void mma_bf16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x = lo in the low half */
    return *(uint32_t *)&v;
}

/* A KV cache's elements (KT: float, or __nv_bfloat16 with caps.kv_bf16) as the kernels take
 * them: one as a float (exact); two consecutive ones as a packed bf16 pair (rounded to
 * nearest even from float, as-is from bf16: the same bits either way); four as a float4;
 * the pair of elements a and b (any two) packed likewise, zero where not ok. */
__device__ __forceinline__ float kv_f(float x) { return x; }
__device__ __forceinline__ float kv_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ uint32_t kv_pair(const float *p) {
    const float2 x = *(const float2 *)p;
    return pack_bf16(x.x, x.y);
}
__device__ __forceinline__ uint32_t kv_pair(const __nv_bfloat16 *p) { return *(const uint32_t *)p; }
__device__ __forceinline__ float4 kv_4(const float *p) { return *(const float4 *)p; }
__device__ __forceinline__ float4 kv_4(const __nv_bfloat16 *p) {
    const uint2 u = *(const uint2 *)p;
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                       __uint_as_float(u.y & 0xffff0000u));
}
__device__ __forceinline__ uint32_t kv_bits(float x) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(x));
}
__device__ __forceinline__ uint32_t kv_bits(__nv_bfloat16 x) { return (uint32_t)__bfloat16_as_ushort(x); }
template <typename KT>
__device__ __forceinline__ uint32_t kv_pack2(const KT *a, bool ok_a, const KT *b, bool ok_b) {
    return (ok_a ? kv_bits(*a) : 0u) | (ok_b ? kv_bits(*b) : 0u) << 16;
}
__device__ __forceinline__ void kv_put(float *d, float x) { *d = x; }
__device__ __forceinline__ void kv_put(__nv_bfloat16 *d, float x) { *d = __float2bfloat16_rn(x); }

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

#define FA_BN 64 /* keys per tile */

/* K and V of one head group, converted once per call: Kb [G][nk_pad][HD] and the
 * transpose Vt [G][HD][nk_pad], bf16, zero past nk (nk_pad = nk rounded up to 64),
 * so that the flash kernel copies tiles with 16-byte cp.async and no conversion. */
template <typename KT>
__global__ void conv_k_kernel(__nv_bfloat16 *kb, const KT *k, int64_t ldk, int64_t nk,
                              int64_t nk_pad, int hd) {
    PDL_ENTRY();
    const int g = blockIdx.y;
    const int64_t total = nk_pad * hd;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / hd;
        int d = (int)(i % hd);
        float x = r < nk ? kv_f(k[r * ldk + (int64_t)g * hd + d]) : 0.f;
        kb[(int64_t)g * total + i] = __float2bfloat16_rn(x);
    }
}

/* 32x32 tiles through shared memory: grid (nk_pad/32, hd/32, G), block (32, 8) */
template <typename KT>
__global__ void conv_vt_kernel(__nv_bfloat16 *vt, const KT *v, int64_t ldv, int64_t nk,
                               int64_t nk_pad, int hd) {
    PDL_ENTRY();
    __shared__ float tile[32][33];
    const int g = blockIdx.z;
    const int64_t r0 = (int64_t)blockIdx.x * 32;
    const int d0 = blockIdx.y * 32;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int64_t r = r0 + i;
        tile[i][threadIdx.x] = r < nk ? kv_f(v[r * ldv + (int64_t)g * hd + d0 + threadIdx.x]) : 0.f;
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y)
        vt[((int64_t)g * hd + d0 + i) * nk_pad + r0 + threadIdx.x] =
            __float2bfloat16_rn(tile[threadIdx.x][i]);
}

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

template <int HD> struct fa_smem {
    static constexpr int KS = HD + 8;    /* Ks row stride (bf16): 4-word skew per row */
    static constexpr int VS = FA_BN + 8; /* Vt row stride */
    static constexpr int STAGE = FA_BN * KS + HD * VS;
    static constexpr size_t bytes = (size_t)2 * STAGE * 2; /* two stages */
};

/* one K tile and one Vt tile into a stage (all threads, cp.async) */
template <int HD, int NT>
__device__ __forceinline__ void fa_issue(__nv_bfloat16 *stage, const __nv_bfloat16 *kb,
                                         const __nv_bfloat16 *vt, int64_t nk_pad, int64_t k0) {
    constexpr int KS = fa_smem<HD>::KS, VS = fa_smem<HD>::VS;
    __nv_bfloat16 *Ks = stage, *Vs = stage + FA_BN * KS;
    constexpr int KCH = HD / 8;          /* 16-byte chunks per K row */
    for (int i = threadIdx.x; i < FA_BN * KCH; i += NT) {
        int r = i / KCH, c = (i % KCH) * 8;
        cp_async16(Ks + r * KS + c, kb + (k0 + r) * HD + c);
    }
    constexpr int VCH = FA_BN / 8;       /* chunks per Vt row */
    for (int i = threadIdx.x; i < HD * VCH; i += NT) {
        int d = i / VCH, c = (i % VCH) * 8;
        cp_async16(Vs + d * VS + c, vt + (int64_t)d * nk_pad + k0 + c);
    }
}

/* grid (q tiles of 16*WARPS rows, heads). kb/vt: converted K/V (see conv_*),
 * head group g at kb + g*nk_pad*HD. Query row i sees keys [0, nk) (causal == 0)
 * or [0, pos0 + i] (causal). q/out f32 with row strides ldq/ldo. */
template <int HD, int WARPS>
__global__ void __launch_bounds__(WARPS * 32, WARPS == 4 ? 3 : 1) flash_kernel(
    float *__restrict__ out, int64_t ldo, const float *__restrict__ q, int64_t ldq,
    const __nv_bfloat16 *__restrict__ kb, const __nv_bfloat16 *__restrict__ vt, int64_t nq,
    int64_t nk, int64_t nk_pad, int causal, int64_t pos0, int group, float scale_log2) {
    PDL_ENTRY();
    constexpr int KS = fa_smem<HD>::KS, VS = fa_smem<HD>::VS, STAGE = fa_smem<HD>::STAGE;
    constexpr int BM = 16 * WARPS, NT = 32 * WARPS;
    extern __shared__ __align__(16) unsigned char fa_sh[];
    __nv_bfloat16 *sm = (__nv_bfloat16 *)fa_sh;

    const int h = blockIdx.y, g_kv = h / group;
    const int64_t q0 = (int64_t)blockIdx.x * BM;
    kb += (int64_t)g_kv * nk_pad * HD;
    vt += (int64_t)g_kv * nk_pad * HD;
    q += (int64_t)h * HD;
    out += (int64_t)h * HD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gq = lane >> 2, tig = lane & 3;
    const int64_t row_a = q0 + warp * 16 + gq, row_b = row_a + 8;

    int64_t kend = nk;
    if (causal && pos0 + q0 + BM < kend) kend = pos0 + q0 + BM;
    const int ntiles = (int)((kend + FA_BN - 1) / FA_BN);
    if (ntiles > 0) fa_issue<HD, NT>(sm, kb, vt, nk_pad, 0);
    cp_commit();

    /* Q fragments straight from global (f32 -> bf16), rows past nq are zero */
    uint32_t qf[HD / 16][4];
    load_q_frags<HD>(qf, q + row_a * ldq + tig * 2, q + row_b * ldq + tig * 2, row_a < nq, row_b < nq);
    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f; /* rows gq and gq+8 */

    for (int t = 0; t < ntiles; t++) {
        const int64_t k0 = (int64_t)t * FA_BN;
        if (t + 1 < ntiles) {
            fa_issue<HD, NT>(sm + ((t + 1) & 1) * STAGE, kb, vt, nk_pad, k0 + FA_BN);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const __nv_bfloat16 *Ks = sm + (t & 1) * STAGE, *Vt = Ks + FA_BN * KS;

        float s[FA_BN / 8][4];
#pragma unroll
        for (int nb = 0; nb < FA_BN / 8; nb++) {
            s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
            const __nv_bfloat16 *kr = Ks + (nb * 8 + gq) * KS + tig * 2;
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                uint32_t b0 = *(const uint32_t *)(kr + kk * 16);
                uint32_t b1 = *(const uint32_t *)(kr + kk * 16 + 8);
                mma_bf16(s[nb], qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], b0, b1);
            }
        }
        /* scale, mask, running max */
        const bool need_mask = k0 + FA_BN > nk || (causal && k0 + FA_BN - 1 > pos0 + q0);
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < FA_BN / 8; nb++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[nb][e] * scale_log2;
                if (need_mask) {
                    int64_t col = k0 + nb * 8 + tig * 2 + (e & 1);
                    int64_t row = e < 2 ? row_a : row_b;
                    if (col >= nk || (causal && col > pos0 + row)) x = -INFINITY;
                }
                s[nb][e] = x;
                if (e < 2) mx_a = fmaxf(mx_a, x);
                else mx_b = fmaxf(mx_b, x);
            }
        float ref_a, ref_b, al_a, al_b;
        online_max(m_a, m_b, mx_a, mx_b, ref_a, ref_b, al_a, al_b);
        float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
        for (int nb = 0; nb < FA_BN / 8; nb++) {
            s[nb][0] = exp2f(s[nb][0] - ref_a);
            s[nb][1] = exp2f(s[nb][1] - ref_a);
            s[nb][2] = exp2f(s[nb][2] - ref_b);
            s[nb][3] = exp2f(s[nb][3] - ref_b);
            sum_a += s[nb][0] + s[nb][1];
            sum_b += s[nb][2] + s[nb][3];
        }
        l_a = l_a * al_a + sum_a; /* per-thread partial; the quad is summed at the end */
        l_b = l_b * al_b + sum_b;
#pragma unroll
        for (int nb = 0; nb < HD / 8; nb++) {
            o[nb][0] *= al_a;
            o[nb][1] *= al_a;
            o[nb][2] *= al_b;
            o[nb][3] *= al_b;
        }
        /* O += P V: P from the S accumulators (C layout of two n-blocks = A layout) */
#pragma unroll
        for (int kq = 0; kq < FA_BN / 16; kq++) {
            uint32_t a0 = pack_bf16(s[2 * kq][0], s[2 * kq][1]);
            uint32_t a1 = pack_bf16(s[2 * kq][2], s[2 * kq][3]);
            uint32_t a2 = pack_bf16(s[2 * kq + 1][0], s[2 * kq + 1][1]);
            uint32_t a3 = pack_bf16(s[2 * kq + 1][2], s[2 * kq + 1][3]);
            const __nv_bfloat16 *vr = Vt + gq * VS + kq * 16 + tig * 2;
#pragma unroll
            for (int nb = 0; nb < HD / 8; nb++) {
                uint32_t b0 = *(const uint32_t *)(vr + nb * 8 * VS);
                uint32_t b1 = *(const uint32_t *)(vr + nb * 8 * VS + 8);
                mma_bf16(o[nb], a0, a1, a2, a3, b0, b1);
            }
        }
        __syncthreads(); /* this stage is refilled two tiles on */
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
#pragma unroll
    for (int nb = 0; nb < HD / 8; nb++) {
        int cc = nb * 8 + tig * 2;
        if (row_a < nq) *(float2 *)(out + row_a * ldo + cc) = make_float2(o[nb][0] * inv_a, o[nb][1] * inv_a);
        if (row_b < nq) *(float2 *)(out + row_b * ldo + cc) = make_float2(o[nb][2] * inv_b, o[nb][3] * inv_b);
    }
}

/* the flash kernels' common signature (flash_kernel, flash_wg_kernel) */
typedef void (*flash_fn)(float *, int64_t, const float *, int64_t, const __nv_bfloat16 *, const __nv_bfloat16 *,
                         int64_t, int64_t, int64_t, int, int64_t, int, float);

/* one flash kernel over nq query rows: blocks of bm rows and threads threads, grid.x at most
 * 65535 blocks a launch; its dynamic shared memory limit raised to sh once a device
 * (attr_set: that kernel's flags, 64 devices) */
static int flash_grid(cuda_ctx *c, flash_fn fn, int *attr_set, int bm, int threads, size_t sh, float *out,
                      int64_t ldo, const float *q, int64_t ldq, const __nv_bfloat16 *kb, const __nv_bfloat16 *vt,
                      int64_t nq, int64_t nk, int64_t nk_pad, int causal, int64_t pos0, int n_heads, int group,
                      float scale, const char *what) {
    if (!attr_set[c->dev & 63]) {
        cudaError_t e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
        if (e != cudaSuccess) return cuda_fail(c, "attention: shared memory", e);
        attr_set[c->dev & 63] = 1;
    }
    for (int64_t t0 = 0; t0 < nq; t0 += (int64_t)bm * 65535) { /* grid.x is ample */
        int64_t nqq = nq - t0;
        dim3 grid(cdiv(nqq, bm), (unsigned)n_heads);
        cuda_launch(c, fn, grid, threads, sh, out + t0 * ldo, ldo, q + t0 * ldq, ldq, kb, vt, nqq, nk, nk_pad, causal,
                    pos0 + t0, group, scale * LOG2E);
    }
    return cuda_check(c, what);
}

template <int HD, int WARPS>
static int flash_run(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq,
                     const __nv_bfloat16 *kb, const __nv_bfloat16 *vt, int64_t nq, int64_t nk,
                     int64_t nk_pad, int causal, int64_t pos0, int n_heads, int group,
                     float scale) {
    static int attr_set[64];
    return flash_grid(c, flash_kernel<HD, WARPS>, attr_set, 16 * WARPS, 32 * WARPS, fa_smem<HD>::bytes, out, ldo, q,
                      ldq, kb, vt, nq, nk, nk_pad, causal, pos0, n_heads, group, scale, "attention (flash)");
}

/* ------------------------------------------------- Hopper (wgmma) flash */

/* flash_wg_kernel: flash_kernel's function for head dim 128 on the Hopper tensor cores.
 * A block is WG warpgroups of 4 warps, each warpgroup 64 query rows (wgmma's M); they
 * share each BN-key tile of K and Vt (64 or 128), copied into shared memory by all threads with
 * cp.async, three stages deep (see the loop). S = Q Kᵀ is wgmma m64n64k16 with Q's fragments in registers
 * (the mma.sync A layout, which is wgmma's) and K from shared memory; O += P Vᵀᵀ is
 * m64n128k16 with P from the S accumulators (as in flash_kernel) and Vt from shared
 * memory. Both B tiles are K-major (the reduced dimension contiguous: K's rows are d,
 * Vt's rows are keys) in the 128-byte swizzle: 8 rows of 128 bytes make a 1024-byte
 * atom, whose 16-byte chunk c of row r sits at chunk c ^ (r & 7). The K tile's 128 d
 * are two such column halves of 64 rows (8 KB each); the Vt tile is 128 rows of 64 keys.
 * The same roundings and online softmax as flash_kernel: the same function to within
 * summation order. sm_90a only: compiled empty elsewhere, and launched only where
 * c->wgmma says the device is 9.0. */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GLMV_WGMMA_CODE 1
#endif

/* Whether the code loaded for this device holds the wgmma kernel (the Makefile's sm_90a; a
 * build for plain sm_90, NVARCH overridden, compiles it empty): asked of the device once, when
 * the backend starts, so that such a build falls back to flash_kernel instead of running an
 * empty kernel. */
__global__ void wgmma_probe_kernel(int *ok) {
#ifdef GLMV_WGMMA_CODE
    *ok = 1;
#else
    *ok = 0;
#endif
}

int k_wgmma_built(cuda_ctx *c) {
    int *d = NULL, h = 0;
    if (cudaMalloc(&d, sizeof(int)) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    wgmma_probe_kernel<<<1, 1, 0, c->stream>>>(d);
    bool ok = cudaGetLastError() == cudaSuccess &&
              cudaMemcpyAsync(&h, d, sizeof h, cudaMemcpyDeviceToHost, c->stream) == cudaSuccess &&
              cudaStreamSynchronize(c->stream) == cudaSuccess;
    cudaFree(d);
    if (!ok) cudaGetLastError();
    return ok && h == 1;
}

/* D[64 x 64] (+)= A[64 x 16] (registers, bf16) B (shared memory, K-major, 128-byte swizzle) */
__device__ __forceinline__ void wgmma_m64n64(float (&d)[32], const uint32_t (&a)[4], uint64_t b, int acc) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));
}

/* D[64 x 128] (+)= A[64 x 16] (registers, bf16) B (shared memory, K-major, 128-byte swizzle) */
__device__ __forceinline__ void wgmma_m64n128(float (&d)[64], const uint32_t (&a)[4], uint64_t b, int acc) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));
}

/* S tile of 64 or 128 keys */
template <int BN> __device__ __forceinline__ void wgmma_s(float (&d)[BN / 2], const uint32_t (&a)[4], uint64_t b, int acc);
template <> __device__ __forceinline__ void wgmma_s<64>(float (&d)[32], const uint32_t (&a)[4], uint64_t b, int acc) {
    wgmma_m64n64(d, a, b, acc);
}
template <> __device__ __forceinline__ void wgmma_s<128>(float (&d)[64], const uint32_t (&a)[4], uint64_t b, int acc) {
    wgmma_m64n128(d, a, b, acc);
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wg_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ float ex2_ftz(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
/* keeps the compiler from moving accesses of an accumulator across the asynchronous product */
template <int N> __device__ __forceinline__ void wg_hold(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
/* the same for A fragments: defined before the fence, not among the products */
template <int N> __device__ __forceinline__ void wg_hold(uint32_t (&a)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+r"(a[i][0]), "+r"(a[i][1]), "+r"(a[i][2]), "+r"(a[i][3])::"memory");
}

/* the shared-memory descriptor of a K-major, 128-byte-swizzled operand at shared address a
 * (its atoms 1024-byte aligned; a k step of 16 elements inside an atom adds 32 bytes):
 * start address >> 4, leading offset 1 (unused in this layout), stride 1024 bytes
 * between groups of 8 rows, swizzle mode 1 (128 bytes) */
__device__ __forceinline__ uint64_t wg_desc(uint32_t a) {
    return (uint64_t)((a & 0x3FFFF) >> 4) | (uint64_t)1 << 16 | (uint64_t)(1024 >> 4) << 32 | (uint64_t)1 << 62;
}

/* bytes of a K tile of BN keys (and of a Vt tile): BN x 128 bf16 */
#define FW_TILE(BN) ((BN) * 128 * 2)
/* shared memory of ST stages (+ room to align the atoms): tiles t + 1 .. t + ST - 2 loading,
 * t in S, t - 1 in P·V */
#define FW_SMEM(ST, BN) ((ST) * 2 * FW_TILE(BN) + 1024 + 64) /* + the ping-pong's mbarriers */

/* mbarriers (the ping-pong variant): init, arrive, a thread's cp.async copies arriving when
 * they land (noinc: the count set at init includes them), and the wait on a phase's parity */
__device__ __forceinline__ void mbar_init(uint32_t a, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t a) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(a) : "memory");
}
__device__ __forceinline__ void mbar_cp_async_arrive(uint32_t a) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(a) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t a, int parity) {
    uint32_t ok = 0;
    while (!ok)
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(ok)
                     : "r"(a), "r"(parity)
                     : "memory");
}
/* named barriers 1 and 2 of the two warpgroups' turns (0 is __syncthreads') */
__device__ __forceinline__ void nbar_sync(int id) { asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory"); }
__device__ __forceinline__ void nbar_arrive(int id) { asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory"); }

/* one K tile (keys k0 .. k0 + BN of kb, 128 d each: two column halves of 64 d, BN rows of
 * 128 bytes) and one Vt tile (128 rows of keys k0..: BN / 64 column blocks of 128 rows of
 * 128 bytes) into a stage at shared address st, swizzled, by NT threads */
template <int NT, int BN>
__device__ __forceinline__ void fw_issue(uint32_t st, const __nv_bfloat16 *kb, const __nv_bfloat16 *vt,
                                         int64_t nk_pad, int64_t k0) {
#pragma unroll
    for (int i = threadIdx.x; i < BN * 16; i += NT) { /* K: BN rows of 16 chunks */
        int r = i >> 4, c = i & 15;
        uint32_t dst = st + (c >> 3) * (BN * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(kb + (k0 + r) * 128 + c * 8));
    }
    constexpr int VC = BN / 8; /* chunks of a Vt row */
#pragma unroll
    for (int i = threadIdx.x; i < 128 * VC; i += NT) { /* Vt: 128 rows of VC chunks */
        int d = i / VC, c = i % VC;
        uint32_t dst = st + FW_TILE(BN) + (c >> 3) * (128 * 128) + d * 128 + (((c & 7) ^ (d & 7)) << 4);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst),
                     "l"(vt + (int64_t)d * nk_pad + k0 + c * 8));
    }
}

/* grid (q tiles of 64*WG rows, heads); arguments as flash_kernel's */
/* PP (two warpgroups only): the warpgroups issue their products in turn (ping-pong, named
 * barriers), so that one's softmax runs while the other's products are on the tensor cores, and
 * the stages are handed over by mbarriers (full: a tile's copies landed; empty: both warpgroups'
 * P·V read it) instead of a block barrier a tile, which would keep the two in step. */
template <int WG, int ST, int BN, bool PP = false>
__global__ void __launch_bounds__(WG * 128, 1) flash_wg_kernel(
    float *__restrict__ out, int64_t ldo, const float *__restrict__ q, int64_t ldq,
    const __nv_bfloat16 *__restrict__ kb, const __nv_bfloat16 *__restrict__ vt, int64_t nq,
    int64_t nk, int64_t nk_pad, int causal, int64_t pos0, int group, float scale_log2) {
#ifdef GLMV_WGMMA_CODE
    PDL_ENTRY();
    constexpr int HD = 128, BM = 64 * WG, NT = 128 * WG;
    extern __shared__ __align__(16) unsigned char fw_sh[];
    const uint32_t sbase = ((uint32_t)__cvta_generic_to_shared(fw_sh) + 1023u) & ~1023u;

    const int h = blockIdx.y, g_kv = h / group;
    const int64_t q0 = (int64_t)blockIdx.x * BM;
    kb += (int64_t)g_kv * nk_pad * HD;
    vt += (int64_t)g_kv * nk_pad * HD;
    q += (int64_t)h * HD;
    out += (int64_t)h * HD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gq = lane >> 2, tig = lane & 3;
    const int64_t row_a = q0 + warp * 16 + gq, row_b = row_a + 8; /* warp w: rows 16 w.. of the block */

    int64_t kend = nk;
    if (causal && pos0 + q0 + BM < kend) kend = pos0 + q0 + BM;
    const int ntiles = (int)((kend + BN - 1) / BN);
    constexpr int AHEAD = ST - 2; /* tiles in flight ahead of the one computed */
    static_assert(!PP || (WG == 2 && AHEAD == 1), "ping-pong: two warpgroups, one tile ahead");
    const uint32_t full = sbase + ST * 2 * FW_TILE(BN), empty = full + 8 * ST; /* mbarriers (PP) */
    const int wgi = threadIdx.x >> 7;                                           /* this warpgroup */
    if constexpr (PP) {
        if (threadIdx.x == 0)
            for (int i = 0; i < ST; i++) {
                mbar_init(full + 8 * i, NT);
                mbar_init(empty + 8 * i, NT);
            }
        __syncthreads();
        if (ntiles > 0) {
            fw_issue<NT, BN>(sbase, kb, vt, nk_pad, 0);
            mbar_cp_async_arrive(full);
        }
        if (wgi == 1) nbar_arrive(1); /* warpgroup 0 issues first */
    } else {
#pragma unroll
        for (int i = 0; i < AHEAD; i++) { /* a group per tile, empty past the last */
            if (i < ntiles) fw_issue<NT, BN>(sbase + i * 2 * FW_TILE(BN), kb, vt, nk_pad, (int64_t)i * BN);
            cp_commit();
        }
    }

    uint32_t qf[HD / 16][4];
    load_q_frags<HD>(qf, q + row_a * ldq + tig * 2, q + row_b * ldq + tig * 2, row_a < nq, row_b < nq);
    float o[HD / 2]; /* m64n128 accumulators: o[4 nb + e] as flash_kernel's o[nb][e] */
#pragma unroll
    for (int i = 0; i < HD / 2; i++) o[i] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;

    /* Tile t: its K and V landed (the copy issued AHEAD tiles before), the copy of tile
     * t + AHEAD goes into the stage that P·V of tile t - 2 read (done before this tile's
     * barrier);
     * then S(t) and P·V(t - 1) go to the tensor cores together, and the softmax of S(t)
     * runs while P·V(t - 1) is in flight; O is rescaled once that is done. Tile 0 has no
     * tile before it: its P·V(t - 1) multiplies P = 0 by tile 0's V (finite values), which
     * adds exact zeros. (A branch around the products, or tile 0 peeled off, makes ptxas
     * serialize them.) */
    uint32_t pf[BN / 16][4]; /* P of the tile before, bf16 A fragments */
#pragma unroll
    for (int i = 0; i < BN / 16; i++) pf[i][0] = pf[i][1] = pf[i][2] = pf[i][3] = 0u;
    float al_a, al_b;           /* the rescale of what O held before this tile */
    auto begin_tile = [&](int t) {
        if constexpr (PP) {
            mbar_wait(full + 8 * (t % ST), (t / ST) & 1);
            asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
            nbar_sync(1 + wgi); /* this warpgroup's turn */
            return;
        }
        cp_wait<AHEAD - 1>(); /* one group a tile: tile t's is the oldest left */
        /* the tensor cores read what cp.async wrote: order it for the async proxy */
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads();
        if (t + AHEAD < ntiles)
            fw_issue<NT, BN>(sbase + ((t + AHEAD) % ST) * 2 * FW_TILE(BN), kb, vt, nk_pad, (int64_t)(t + AHEAD) * BN);
        cp_commit();
    };
    /* the descriptors are made before the fence: an instruction that defines a product's
     * input between the products makes ptxas serialize them */
    auto desc_k = [&](int t) { return wg_desc(sbase + (t % ST) * 2 * FW_TILE(BN)); };
    auto desc_v = [&](int t) { return wg_desc(sbase + (t % ST) * 2 * FW_TILE(BN) + FW_TILE(BN)); };
    auto issue_s = [&](float (&s)[BN / 2], uint64_t dk) { /* S = Q K(t)ᵀ; the start field counts 16 bytes */
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++)
            wgmma_s<BN>(s, qf[kk], dk + (((kk >> 2) * (BN * 128) + (kk & 3) * 32) >> 4), kk);
        wg_commit();
    };
    auto issue_pv = [&](uint64_t dv) { /* O += P(t) V(t) */
#pragma unroll
        for (int kq = 0; kq < BN / 16; kq++)
            wgmma_m64n128(o, pf[kq], dv + (((kq >> 2) * (128 * 128) + (kq & 3) * 32) >> 4), 1);
        wg_commit();
    };
    /* S(t) into P(t) (float), al and l. The maxima are taken on the raw scores and scaled
     * once (scaling by a positive factor keeps the order, and rounding is monotonic, so it
     * is the maximum of the scaled scores); each exponent is one fma and one ex2.approx.ftz
     * (flash_kernel: a multiply, a subtraction and exp2f, whose denormal handling adds
     * instructions; the results differ by rounding alone) */
    auto softmax = [&](float (&s)[BN / 2], int t) {
        const int64_t k0 = (int64_t)t * BN;
        const bool need_mask = k0 + BN > nk || (causal && k0 + BN - 1 > pos0 + q0);
        /* four partial maxima and sums a row: a serial chain of 32 dependent max (or add)
         * instructions with two warps a scheduler leaves the scheduler idle */
        if (need_mask) {
#pragma unroll
            for (int nb = 0; nb < BN / 8; nb++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int64_t col = k0 + nb * 8 + tig * 2 + (e & 1);
                    int64_t row = e < 2 ? row_a : row_b;
                    if (col >= nk || (causal && col > pos0 + row)) s[4 * nb + e] = -INFINITY;
                }
        }
        float ma[4], mb[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            ma[i] = fmaxf(s[8 * i + 0], s[8 * i + 1]);
            mb[i] = fmaxf(s[8 * i + 2], s[8 * i + 3]);
            ma[i] = fmaxf(ma[i], fmaxf(s[8 * i + 4], s[8 * i + 5]));
            mb[i] = fmaxf(mb[i], fmaxf(s[8 * i + 6], s[8 * i + 7]));
        }
#pragma unroll
        for (int nb = 8; nb < BN / 8; nb += 2)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int i = (nb / 2 + h) & 3, b = 4 * (nb + h);
                ma[i] = fmaxf(ma[i], fmaxf(s[b + 0], s[b + 1]));
                mb[i] = fmaxf(mb[i], fmaxf(s[b + 2], s[b + 3]));
            }
        const float mx_a = fmaxf(fmaxf(ma[0], ma[1]), fmaxf(ma[2], ma[3]));
        const float mx_b = fmaxf(fmaxf(mb[0], mb[1]), fmaxf(mb[2], mb[3]));
        float ref_a, ref_b;
        online_max(m_a, m_b, mx_a * scale_log2, mx_b * scale_log2, ref_a, ref_b, al_a, al_b);
        float sa[4] = {0.f, 0.f, 0.f, 0.f}, sb[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int nb = 0; nb < BN / 8; nb++) {
            s[4 * nb + 0] = ex2_ftz(fmaf(s[4 * nb + 0], scale_log2, -ref_a));
            s[4 * nb + 1] = ex2_ftz(fmaf(s[4 * nb + 1], scale_log2, -ref_a));
            s[4 * nb + 2] = ex2_ftz(fmaf(s[4 * nb + 2], scale_log2, -ref_b));
            s[4 * nb + 3] = ex2_ftz(fmaf(s[4 * nb + 3], scale_log2, -ref_b));
            sa[nb & 3] += s[4 * nb + 0] + s[4 * nb + 1];
            sb[nb & 3] += s[4 * nb + 2] + s[4 * nb + 3];
        }
        l_a = l_a * al_a + ((sa[0] + sa[1]) + (sa[2] + sa[3]));
        l_b = l_b * al_b + ((sb[0] + sb[1]) + (sb[2] + sb[3]));
    };
    for (int t = 0; t < ntiles; t++) {
        float s[BN / 2]; /* m64nBN: s[4 nb + e] */
        begin_tile(t);
        const uint64_t dk = desc_k(t), dv = desc_v(t ? t - 1 : 0);
        wg_hold(o);
        wg_hold(pf);
        wg_fence();
        issue_s(s, dk);
        issue_pv(dv);
        if constexpr (PP) {
            nbar_arrive(2 - wgi); /* the other warpgroup's turn */
            const int u = t + 1;  /* its copy goes into the stage tile u - ST used */
            if (u < ntiles) {
                if (u >= ST) mbar_wait(empty + 8 * (u % ST), (u / ST - 1) & 1);
                fw_issue<NT, BN>(sbase + (u % ST) * 2 * FW_TILE(BN), kb, vt, nk_pad, (int64_t)u * BN);
                mbar_cp_async_arrive(full + 8 * (u % ST));
            }
        }
        wg_wait<1>(); /* S(t) done, P·V(t - 1) may still run */
        wg_hold(s);
        softmax(s, t);
        wg_wait<0>(); /* P·V(t - 1) has read pf: it may now take P(t) */
        wg_hold(o);
        if constexpr (PP)
            if (t > 0) mbar_arrive(empty + 8 * ((t - 1) % ST)); /* this thread is done with tile t - 1 */
#pragma unroll
        for (int kq = 0; kq < BN / 16; kq++) {
            pf[kq][0] = pack_bf16(s[8 * kq + 0], s[8 * kq + 1]);
            pf[kq][1] = pack_bf16(s[8 * kq + 2], s[8 * kq + 3]);
            pf[kq][2] = pack_bf16(s[8 * kq + 4], s[8 * kq + 5]);
            pf[kq][3] = pack_bf16(s[8 * kq + 6], s[8 * kq + 7]);
        }
        if (__any_sync(0xffffffffu, al_a != 1.f || al_b != 1.f)) { /* no row's maximum moved: nothing to do */
#pragma unroll
            for (int nb = 0; nb < HD / 8; nb++) {
                o[4 * nb + 0] *= al_a;
                o[4 * nb + 1] *= al_a;
                o[4 * nb + 2] *= al_b;
                o[4 * nb + 3] *= al_b;
            }
        }
    }
    if constexpr (PP)
        if (wgi == 0) nbar_sync(1); /* warpgroup 1's last turn handed back: the barrier left balanced */
    if (ntiles > 0) { /* P·V of the last tile */
        const uint64_t dv = desc_v(ntiles - 1);
        wg_hold(o);
        wg_hold(pf);
        wg_fence();
        issue_pv(dv);
        wg_wait<0>();
        wg_hold(o);
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
#pragma unroll
    for (int nb = 0; nb < HD / 8; nb++) {
        int cc = nb * 8 + tig * 2;
        if (row_a < nq)
            *(float2 *)(out + row_a * ldo + cc) = make_float2(o[4 * nb + 0] * inv_a, o[4 * nb + 1] * inv_a);
        if (row_b < nq)
            *(float2 *)(out + row_b * ldo + cc) = make_float2(o[4 * nb + 2] * inv_b, o[4 * nb + 3] * inv_b);
    }
#endif
}

template <int WG, int ST, int BN, bool PP = false>
static int flash_wg_run(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq,
                        const __nv_bfloat16 *kb, const __nv_bfloat16 *vt, int64_t nq, int64_t nk,
                        int64_t nk_pad, int causal, int64_t pos0, int n_heads, int group, float scale) {
    static int attr_set[64];
    return flash_grid(c, flash_wg_kernel<WG, ST, BN, PP>, attr_set, 64 * WG, 128 * WG, FW_SMEM(ST, BN), out, ldo, q,
                      ldq, kb, vt, nq, nk, nk_pad, causal, pos0, n_heads, group, scale, "attention (flash, wgmma)");
}

/* convert K/V (n_kv heads of hd at column g*hd; KT float or bf16) and run the flash kernel */
template <typename KT>
static int flash_launch(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq,
                        const KT *k, int64_t ldk, const KT *v, int64_t ldv, int64_t nq,
                        int64_t nk, int causal, int64_t pos0, int n_heads, int n_kv, int hd,
                        float scale) {
    /* the wgmma kernel's warpgroups a block and keys a tile: GLMV_CUDA_FLASH_WG=2|1, _BN=128|64
     * (128 keys with two warpgroups only: the stages fill the shared memory). Measured on an
     * H100: two warpgroups and 128 keys 1.09-1.15x 64 keys, which one warpgroup matches. */
    static int wg = -1, bn = -1;
    if (wg < 0) wg = getenv("GLMV_CUDA_FLASH_WG") && atoi(getenv("GLMV_CUDA_FLASH_WG")) == 1 ? 1 : 2;
    if (bn < 0) bn = getenv("GLMV_CUDA_FLASH_BN") && atoi(getenv("GLMV_CUDA_FLASH_BN")) == 64 ? 64 : 128;
    const bool use_wg = hd == 128 && c->wgmma && nq >= 64;
    const int pad = use_wg && bn == 128 && wg == 2 ? 128 : FA_BN; /* whole tiles of K and Vt */
    int64_t nk_pad = (nk + pad - 1) / pad * pad;
    size_t plane = (size_t)nk_pad * hd * n_kv;
    __nv_bfloat16 *kb = (__nv_bfloat16 *)cuda_scratch(c, 2 * plane * sizeof(__nv_bfloat16));
    if (!kb) return -1;
    __nv_bfloat16 *vt = kb + plane;
    unsigned gx = cdiv(nk_pad * hd, 256);
    cuda_launch(c, conv_k_kernel<KT>, dim3(gx > 1024 ? 1024 : gx, (unsigned)n_kv), 256, 0, kb, k, ldk, nk,
                nk_pad, hd);
    cuda_launch(c, conv_vt_kernel<KT>, dim3(cdiv(nk_pad, 32), (unsigned)(hd / 32), (unsigned)n_kv), dim3(32, 8), 0, vt, v, ldv, nk, nk_pad, hd);
    if (cuda_check(c, "attention (convert k/v)")) return -1;
    int group = n_heads / n_kv;
    static int force = -1;
    if (force < 0) force = getenv("GLMV_CUDA_FLASH_WARPS") ? atoi(getenv("GLMV_CUDA_FLASH_WARPS")) : 0;
    bool big = force ? force == 8 : nq >= 128; /* measured: 8 warps win for prefill and vision */
    /* the ping-pong variant (two warpgroups, 128 keys; GLMV_CUDA_FLASH_PP=0: the warpgroups in step).
     * Measured on an H100: a 6,400-patch segment 687 us against 748, 4,096 rows causal 388 against 444 */
    static int pp = -1;
    if (pp < 0) pp = !(getenv("GLMV_CUDA_FLASH_PP") && atoi(getenv("GLMV_CUDA_FLASH_PP")) == 0);
    if (use_wg) {
        if (pad == 128 && pp)
            return flash_wg_run<2, 3, 128, true>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0, n_heads,
                                                 group, scale);
        if (pad == 128)
            return flash_wg_run<2, 3, 128>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0, n_heads, group,
                                           scale);
        return wg == 1 ? flash_wg_run<1, 3, 64>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0, n_heads,
                                                group, scale)
                       : flash_wg_run<2, 3, 64>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0, n_heads,
                                                group, scale);
    }
    if (hd == 128)
        return big ? flash_run<128, 8>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0,
                                       n_heads, group, scale)
                   : flash_run<128, 4>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0,
                                       n_heads, group, scale);
    return big ? flash_run<64, 8>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0,
                                  n_heads, group, scale)
               : flash_run<64, 4>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0,
                                  n_heads, group, scale);
}

/* ------------------------------------------------------------ fp32 split */

#define SP_T 64       /* keys per sub-tile */
#define SP_THREADS 256
#define SP_HPT 8      /* heads per thread in the score loop: heads per block <= 4 * 8 */
#define SP_R 4        /* output items per thread in P·V: heads * hd / vw <= 4 * 256 */

/* shared memory of split_kernel, in floats, for gpb heads per block */
static size_t split_smem_floats(int gpb, int hd) {
    return (size_t)gpb * (hd + 4) + (size_t)SP_T * (hd + 4) + (size_t)SP_T * hd +
           (size_t)gpb * SP_T + 3 * (size_t)gpb;
}

/* grid (chunks, kv heads * hsplit, query rows (strided)). A block takes the
 * gpb = group / hsplit query heads [hs*gpb, hs*gpb + gpb) of one kv head over
 * keys [c*chunk, min(nk, (c+1)*chunk)); query row i sees keys <= pos0 + i
 * (causal) or all nk. Each 64-key sub-tile of K and V is first copied to
 * shared memory by all threads (independent 16-byte loads). The P·V
 * accumulators live in registers: item j = tid + 256 r is (head, vw dims).
 * With one chunk the result goes straight to out; else part[((i * n_heads +
 * h) * n_chunks + c) * (hd + 2) + ...] = unnormalised o[hd], m, l (base 2). */
template <typename KT>
__global__ void __launch_bounds__(SP_THREADS, 1) split_kernel(
    float *out, int64_t ldo, float *part, const float *q, int64_t ldq, const KT *k,
    int64_t ldk, const KT *v, int64_t ldv, int64_t n, int64_t nk, int causal, int64_t pos0,
    int n_heads, int group, int hsplit, int hd, int64_t chunk, float scale_log2,
    const KT *const *kps, const KT *const *vps, const int64_t *nks) {
    PDL_ENTRY(); /* the keys and values may come from the kernel before (kv_append, rope) */
    extern __shared__ __align__(16) float sp_sh[];
    const int gpb = group / hsplit;
    const int qs = hd + 4;                          /* q and K row stride (bank skew) */
    float *qsh = sp_sh;                             /* [gpb][qs] */
    float *ksh = qsh + gpb * qs;                    /* [SP_T][qs] */
    float *vsh = ksh + SP_T * qs;                   /* [SP_T][hd] */
    float *ssh = vsh + SP_T * hd;                   /* [gpb][SP_T] */
    float *mst = ssh + gpb * SP_T;                  /* [gpb] running max */
    float *lst = mst + gpb;                         /* [gpb] running sum */
    float *alf = lst + gpb;                         /* [gpb] rescale of this tile */
    const int g_kv = blockIdx.y / hsplit, hbase = g_kv * group + (blockIdx.y % hsplit) * gpb;
    const int n_chunks = gridDim.x;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, nwarp = SP_THREADS / 32;
    const int64_t c0 = (int64_t)blockIdx.x * chunk;
    /* a batch of sequences (kps set): row i is sequence i's query over its own cache of
     * nks[i] keys; the caches come from cudaMalloc, so their rows are 4-element aligned */
    const bool vec = !(hd & 3) && !(ldk & 3) && !(ldv & 3) && !((uintptr_t)k % (4 * sizeof(KT))) &&
                     !((uintptr_t)v % (4 * sizeof(KT)));
    const int vw = (hd & 3) ? 1 : 4, per_head = hd / vw, items = gpb * per_head;

    for (int64_t i = blockIdx.z; i < n; i += gridDim.z) {
        const KT *kb = (kps ? kps[i] : k) + (int64_t)g_kv * hd;
        const KT *vb = (vps ? vps[i] : v) + (int64_t)g_kv * hd;
        int64_t lim = nks ? nks[i] : causal ? pos0 + i + 1 : nk; /* keys < lim are visible */
        if (lim > nk) lim = nk;
        int64_t c1 = c0 + chunk < lim ? c0 + chunk : lim;
        float acc[SP_R][4];
#pragma unroll
        for (int r = 0; r < SP_R; r++) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = 0.f;
        __syncthreads();
        for (int j = tid; j < gpb * hd; j += SP_THREADS) {
            int hh = j / hd, d = j % hd;
            qsh[hh * qs + d] = q[i * ldq + (int64_t)(hbase + hh) * hd + d];
        }
        for (int j = tid; j < gpb; j += SP_THREADS) {
            mst[j] = -INFINITY;
            lst[j] = 0.f;
        }
        for (int64_t t0 = c0; t0 < c1; t0 += SP_T) {
            const int nt = c1 - t0 < SP_T ? (int)(c1 - t0) : SP_T;
            __syncthreads(); /* the previous tile is no longer read */
            /* K and V rows [t0, t0 + nt) into shared memory; zeros past nt */
            if (vec) {
                const int h4 = hd / 4;
                for (int j = tid; j < SP_T * h4; j += SP_THREADS) {
                    int t = j / h4, d = (j % h4) * 4;
                    float4 kv = make_float4(0.f, 0.f, 0.f, 0.f), vv = kv;
                    if (t < nt) {
                        kv = kv_4(kb + (t0 + t) * ldk + d);
                        vv = kv_4(vb + (t0 + t) * ldv + d);
                    }
                    *(float4 *)(ksh + t * qs + d) = kv;
                    *(float4 *)(vsh + t * hd + d) = vv;
                }
            } else {
                for (int j = tid; j < SP_T * hd; j += SP_THREADS) {
                    int t = j / hd, d = j % hd;
                    ksh[t * qs + d] = t < nt ? kv_f(kb[(t0 + t) * ldk + d]) : 0.f;
                    vsh[t * hd + d] = t < nt ? kv_f(vb[(t0 + t) * ldv + d]) : 0.f;
                }
            }
            __syncthreads();
            /* scores: thread -> key tid % SP_T, heads tid / SP_T + 4r */
            {
                const int tl = tid % SP_T, hj = tid / SP_T;
                float dot[SP_HPT];
#pragma unroll
                for (int r = 0; r < SP_HPT; r++) dot[r] = 0.f;
                const float *kr = ksh + tl * qs;
                if (vw == 4) {
                    for (int d = 0; d < hd; d += 4) {
                        float4 kv = *(const float4 *)(kr + d);
#pragma unroll
                        for (int r = 0; r < SP_HPT; r++) {
                            int hh = hj + 4 * r;
                            if (hh < gpb) {
                                float4 qv = *(const float4 *)(qsh + hh * qs + d);
                                dot[r] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
                            }
                        }
                    }
                } else {
                    for (int d = 0; d < hd; d++) {
                        float kv = kr[d];
#pragma unroll
                        for (int r = 0; r < SP_HPT; r++) {
                            int hh = hj + 4 * r;
                            if (hh < gpb) dot[r] += qsh[hh * qs + d] * kv;
                        }
                    }
                }
#pragma unroll
                for (int r = 0; r < SP_HPT; r++) {
                    int hh = hj + 4 * r;
                    if (hh < gpb) ssh[hh * SP_T + tl] = tl < nt ? dot[r] * scale_log2 : -INFINITY;
                }
            }
            __syncthreads();
            /* per head: tile max, rescale, probabilities, sum (one warp per head) */
            for (int hh = warp; hh < gpb; hh += nwarp) {
                float a = ssh[hh * SP_T + lane], b = ssh[hh * SP_T + lane + 32];
                float mx = fmaxf(a, b);
                for (int off = 16; off > 0; off >>= 1)
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
                float mo = mst[hh], mn = fmaxf(mo, mx);
                float ref = mn == -INFINITY ? 0.f : mn;
                a = exp2f(a - ref);
                b = exp2f(b - ref);
                ssh[hh * SP_T + lane] = a;
                ssh[hh * SP_T + lane + 32] = b;
                float sum = a + b;
                for (int off = 16; off > 0; off >>= 1)
                    sum += __shfl_xor_sync(0xffffffffu, sum, off);
                __syncwarp();
                if (lane == 0) {
                    float al = exp2f(mo - ref);
                    alf[hh] = al;
                    lst[hh] = lst[hh] * al + sum;
                    mst[hh] = mn;
                }
            }
            __syncthreads();
            /* acc = acc * alpha + sum_t p[h][t] v[t][d..d+vw) (p = 0 past nt, V zero there) */
#pragma unroll
            for (int r = 0; r < SP_R; r++) {
                int j = tid + SP_THREADS * r;
                if (j < items) {
                    int hh = j / per_head, d = (j % per_head) * vw;
                    const float *pr = ssh + hh * SP_T;
                    float al = alf[hh];
                    float a0 = acc[r][0] * al, a1 = acc[r][1] * al, a2 = acc[r][2] * al,
                          a3 = acc[r][3] * al;
                    if (vw == 4) {
#pragma unroll 8
                        for (int t = 0; t < SP_T; t++) {
                            float p = pr[t];
                            float4 vv = *(const float4 *)(vsh + t * hd + d);
                            a0 += p * vv.x;
                            a1 += p * vv.y;
                            a2 += p * vv.z;
                            a3 += p * vv.w;
                        }
                    } else {
                        for (int t = 0; t < SP_T; t++) a0 += pr[t] * vsh[t * hd + d];
                    }
                    acc[r][0] = a0;
                    acc[r][1] = a1;
                    acc[r][2] = a2;
                    acc[r][3] = a3;
                }
            }
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < SP_R; r++) {
            int j = tid + SP_THREADS * r;
            if (j < items) {
                int hh = j / per_head, d = (j % per_head) * vw;
                int h = hbase + hh;
                if (n_chunks == 1) { /* the whole key range: normalise and store */
                    float l = lst[hh], inv = l > 0.f ? 1.f / l : 0.f;
                    float *o = out + i * ldo + (int64_t)h * hd + d;
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if (e < vw) o[e] = acc[r][e] * inv;
                } else {
                    float *pp = part + ((i * n_heads + h) * n_chunks + blockIdx.x) * (hd + 2) + d;
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if (e < vw) pp[e] = acc[r][e];
                }
            }
        }
        if (n_chunks > 1)
            for (int hh = tid; hh < gpb; hh += SP_THREADS) {
                int h = hbase + hh;
                float *pp = part + ((i * n_heads + h) * n_chunks + blockIdx.x) * (hd + 2) + hd;
                pp[0] = mst[hh];
                pp[1] = lst[hh];
            }
    }
}

/* The chunks' partials merged: grid (n_heads, rows (strided)), CB_WARPS warps a block. The
 * chunks' maxima, then their weights 2^(m_c - max) (0 for a chunk that saw no key) and the
 * sum l, are taken by all threads at once; then warp w sums the dims of the chunks w, w +
 * CB_WARPS, ... (the lanes a dim each, 32 apart), and the warps' sums are added in order. A
 * long context has a chunk per 64 keys, and one thread looping over all of them (two
 * dependent loads from L2 each) took as long as the attention itself. */
#define CB_WARPS 4
static size_t combine_smem(int n_chunks, int hd) {
    return sizeof(float) * ((size_t)n_chunks + (size_t)CB_WARPS * hd + 2 * CB_WARPS);
}

__global__ void __launch_bounds__(CB_WARPS * 32) combine_kernel(float *out, int64_t ldo, const float *part,
                                                                 int64_t n, int n_heads, int hd, int n_chunks) {
    PDL_ENTRY();
    extern __shared__ __align__(16) float cb_sh[];
    float *w = cb_sh, *acc = w + n_chunks, *red = acc + CB_WARPS * hd;
    const int h = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int64_t st = hd + 2;
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
        const float *pp = part + ((i * n_heads + h) * n_chunks) * st;
        float m = -INFINITY;
        for (int c = tid; c < n_chunks; c += CB_WARPS * 32)
            if (pp[c * st + hd + 1] > 0.f) m = fmaxf(m, pp[c * st + hd]);
        for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
        if (lane == 0) red[warp] = m;
        __syncthreads();
        m = red[0];
        for (int k = 1; k < CB_WARPS; k++) m = fmaxf(m, red[k]);
        const float ref = m == -INFINITY ? 0.f : m;
        float l = 0.f;
        for (int c = tid; c < n_chunks; c += CB_WARPS * 32) {
            const float lc = pp[c * st + hd + 1], wc = lc > 0.f ? exp2f(pp[c * st + hd] - ref) : 0.f;
            w[c] = wc;
            l += lc > 0.f ? lc * wc : 0.f;
        }
        for (int off = 16; off > 0; off >>= 1) l += __shfl_xor_sync(0xffffffffu, l, off);
        if (lane == 0) red[CB_WARPS + warp] = l;
        __syncthreads(); /* w and the warps' sums are there */
        l = 0.f;
        for (int k = 0; k < CB_WARPS; k++) l += red[CB_WARPS + k];
        const float inv = l > 0.f ? 1.f / l : 0.f;
        for (int d0 = 0; d0 < hd; d0 += 128) {
            float a[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll 4
            for (int c = warp; c < n_chunks; c += CB_WARPS) {
                const float wc = w[c];
                if (wc == 0.f) continue; /* the same c for the whole warp */
                const float *pc = pp + c * st + d0 + lane;
#pragma unroll
                for (int j = 0; j < 4; j++)
                    if (d0 + lane + 32 * j < hd) a[j] += pc[32 * j] * wc;
            }
#pragma unroll
            for (int j = 0; j < 4; j++)
                if (d0 + lane + 32 * j < hd) acc[warp * hd + d0 + lane + 32 * j] = a[j];
        }
        __syncthreads();
        for (int d = tid; d < hd; d += CB_WARPS * 32) {
            float a = 0.f;
            for (int k = 0; k < CB_WARPS; k++) a += acc[k * hd + d];
            out[i * ldo + (int64_t)h * hd + d] = a * inv;
        }
        __syncthreads(); /* before the next row reuses the shared memory */
    }
}

static void combine_launch(cuda_ctx *c, float *out, int64_t ldo, const float *part, int64_t n, int n_heads,
                           int hd, int n_chunks) {
    const unsigned rows = (unsigned)(n < 65535 ? n : 65535);
    cuda_launch(c, combine_kernel, dim3((unsigned)n_heads, rows), CB_WARPS * 32, combine_smem(n_chunks, hd), out,
                ldo, part, n, n_heads, hd, n_chunks);
}

template <typename KT>
static int split_launch(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq,
                        const KT *k, int64_t ldk, const KT *v, int64_t ldv, int64_t n,
                        int64_t nk, int causal, int64_t pos0, int n_heads, int n_kv_heads,
                        int hd, float scale, const KT *const *kps = NULL,
                        const KT *const *vps = NULL, const int64_t *nks = NULL) {
    int group = n_heads / n_kv_heads;
    if (n <= 0 || nk <= 0) return 0;
    const int vw = (hd & 3) ? 1 : 4;
    const int64_t rows = n < 65535 ? n : 65535;
    /* chunks of keys: enough blocks to fill the GPU, at least one 64-key sub-tile each */
    int64_t want = cdiv(2 * (int64_t)c->sms, (int64_t)n_kv_heads * rows);
    int64_t n_chunks = cdiv(nk, SP_T);
    if (n_chunks > want) n_chunks = want;
    if (n_chunks < 1) n_chunks = 1;
    int64_t chunk = cdiv(cdiv(nk, n_chunks), SP_T) * SP_T;
    n_chunks = cdiv(nk, chunk);
    /* split the query heads of a kv head over blocks while the GPU is not full,
     * and whenever one block could not hold them (SP_HPT, SP_R) */
    int hsplit = 1;
    while (group % (2 * hsplit) == 0 &&
           (group / hsplit > 4 * SP_HPT || (int64_t)(group / hsplit) * (hd / vw) > SP_R * SP_THREADS ||
            n_chunks * n_kv_heads * rows * hsplit * 2 <= 2 * (int64_t)c->sms))
        hsplit *= 2;
    int gpb = group / hsplit;
    if (gpb > 4 * SP_HPT || (int64_t)gpb * (hd / vw) > SP_R * SP_THREADS)
        return cuda_fail(c, "attention: too many query heads per kv head for the split kernel",
                         cudaErrorInvalidValue);
    float *part = NULL;
    if (n_chunks > 1) {
        part = (float *)cuda_scratch(c, sizeof(float) * (size_t)n * n_heads * n_chunks * (hd + 2));
        if (!part) return -1;
    }
    size_t sh = sizeof(float) * split_smem_floats(gpb, hd);
    static size_t sh_set[64]; /* the limit raised so far, per device (and cache element) */
    if (sh > 48 * 1024 && sh > sh_set[c->dev & 63]) {
        cudaError_t e = cudaFuncSetAttribute(split_kernel<KT>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
        if (e != cudaSuccess) return cuda_fail(c, "attention: shared memory", e);
        sh_set[c->dev & 63] = sh;
    }
    cuda_launch(c, split_kernel<KT>, dim3((unsigned)n_chunks, (unsigned)(n_kv_heads * hsplit), (unsigned)rows),
                SP_THREADS, sh, out, ldo, part, q, ldq, k, ldk, v, ldv, n, nk, causal, pos0, n_heads,
                group, hsplit, hd, chunk, scale * LOG2E, kps, vps, nks);
    if (cuda_check(c, "attention (split)") || n_chunks == 1) return c->failed ? -1 : 0;
    combine_launch(c, out, ldo, part, n, n_heads, hd, (int)n_chunks);
    return cuda_check(c, "attention (combine)");
}

/* ------------------------------------------------ decode on the tensor cores */

/* A decode step's attention in bf16 precision, one query row per sequence: the query heads
 * that share a kv head (GQA, group <= 16) are the 16 rows of an mma tile. Grid (chunks,
 * kv heads, sequences), DM_WARPS warps a block; warp w takes the 16-key steps w, w +
 * DM_WARPS, ... of the block's chunk of the sequence's keys, reading K and V rows straight
 * from its f32 cache (every 32-byte sector read whole) and rounding them to bf16 in
 * registers. Q, K, V and P are rounded to bf16 as in flash_kernel; the softmax is online,
 * f32, base 2. The warps' states are merged in shared memory; one chunk writes the
 * output, several write the partials that combine_kernel merges (split_kernel's layout).
 * The f32 split kernel, which does its arithmetic from shared memory, was bound by
 * shared-memory bandwidth at 64 sequences (about 0.6 TB/s of cache read). */
#define DM_WARPS 4

template <int HD, typename KT>
__global__ void __launch_bounds__(DM_WARPS * 32, 3) dec_mma_kernel(
    float *__restrict__ out, int64_t ldo, float *__restrict__ part, const float *__restrict__ q,
    int64_t ldq, int n_heads, int group, int64_t chunk, float scale_log2,
    const KT *const *kps, const KT *const *vps, const int64_t *nks, int64_t ldkv, const float *k_new,
    const float *v_new, int64_t ld_new) {
    PDL_ENTRY(); /* q and the new key and value rows come from the kernels before */
    extern __shared__ __align__(16) float dm_sh[]; /* o [warps][16][HD], m [warps][16], l [warps][16] */
    const int64_t i = blockIdx.z;
    const int g = blockIdx.y, n_chunks = gridDim.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, tig = lane & 3;
    const int64_t lim = nks[i], c0 = (int64_t)blockIdx.x * chunk;
    const int64_t c1 = c0 + chunk < lim ? c0 + chunk : lim;
    const KT *kb = kps[i] + (int64_t)g * HD, *vb = vps[i] + (int64_t)g * HD;
    if (k_new && c0 <= lim - 1 && lim - 1 < c1) {
        /* the chunk that holds the newest key stores this kv head's share of the new key and
         * value rows (kv_append's work) and then reads them back like the others: the block's
         * own writes, visible to it after the barrier */
        KT *kd = (KT *)kb + (lim - 1) * ldkv, *vd = (KT *)vb + (lim - 1) * ldkv;
        const float *ks = k_new + i * ld_new + (int64_t)g * HD, *vs = v_new + i * ld_new + (int64_t)g * HD;
        for (int d = threadIdx.x; d < HD; d += DM_WARPS * 32) {
            kv_put(kd + d, ks[d]);
            kv_put(vd + d, vs[d]);
        }
        __syncthreads();
    }
    const float *qg = q + i * ldq + (int64_t)g * group * HD; /* the group's heads: rows of HD */

    uint32_t qf[HD / 16][4]; /* A fragments: heads gq and gq + 8 (zero past the group) */
    load_q_frags<HD>(qf, qg + gq * HD + tig * 2, qg + (gq + 8) * HD + tig * 2, gq < group, gq + 8 < group);
    float o[HD / 8][4];
#pragma unroll
    for (int j = 0; j < HD / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;

    for (int64_t k0 = c0 + warp * 16; k0 < c1; k0 += DM_WARPS * 16) {
        /* S = Q Kᵀ for keys k0 .. k0 + 15 (two n-blocks of 8); keys past c1 read as zero */
        float s[2][4];
#pragma unroll
        for (int nb = 0; nb < 2; nb++) {
            s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
            const int64_t key = k0 + nb * 8 + gq;
            const bool ok = key < c1;
            const KT *kr = kb + key * ldkv + tig * 2;
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                const uint32_t x = ok ? kv_pair(kr + kk * 16) : 0u, y = ok ? kv_pair(kr + kk * 16 + 8) : 0u;
                mma_bf16(s[nb], qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], x, y);
            }
        }
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < 2; nb++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int64_t col = k0 + nb * 8 + tig * 2 + (e & 1);
                float x = col < c1 ? s[nb][e] * scale_log2 : -INFINITY;
                s[nb][e] = x;
                if (e < 2) mx_a = fmaxf(mx_a, x);
                else mx_b = fmaxf(mx_b, x);
            }
        float ref_a, ref_b, al_a, al_b;
        online_max(m_a, m_b, mx_a, mx_b, ref_a, ref_b, al_a, al_b);
#pragma unroll
        for (int nb = 0; nb < 2; nb++) {
            s[nb][0] = exp2f(s[nb][0] - ref_a);
            s[nb][1] = exp2f(s[nb][1] - ref_a);
            s[nb][2] = exp2f(s[nb][2] - ref_b);
            s[nb][3] = exp2f(s[nb][3] - ref_b);
        }
        l_a = l_a * al_a + s[0][0] + s[0][1] + s[1][0] + s[1][1];
        l_b = l_b * al_b + s[0][2] + s[0][3] + s[1][2] + s[1][3];
        /* O = O * alpha + P V: P is the A fragment of the two S blocks; V rows k0 + 2 tig,
         * + 1, + 8, + 9 at dims nb * 8 + gq (zero past c1: P is zero there, V may be anything) */
        const uint32_t a0 = pack_bf16(s[0][0], s[0][1]), a1 = pack_bf16(s[0][2], s[0][3]);
        const uint32_t a2 = pack_bf16(s[1][0], s[1][1]), a3 = pack_bf16(s[1][2], s[1][3]);
        const int64_t r0 = k0 + tig * 2;
        const bool v0 = r0 < c1, v1 = r0 + 1 < c1, v2 = r0 + 8 < c1, v3 = r0 + 9 < c1;
        const KT *vr = vb + r0 * ldkv + gq;
#pragma unroll
        for (int nb = 0; nb < HD / 8; nb++) {
            o[nb][0] *= al_a;
            o[nb][1] *= al_a;
            o[nb][2] *= al_b;
            o[nb][3] *= al_b;
            mma_bf16(o[nb], a0, a1, a2, a3, kv_pack2(vr + nb * 8, v0, vr + ldkv + nb * 8, v1),
                     kv_pack2(vr + 8 * ldkv + nb * 8, v2, vr + 9 * ldkv + nb * 8, v3));
        }
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    /* the warps' states into shared memory, then merged per (head, dim) */
    float *wo = dm_sh, *wm = dm_sh + DM_WARPS * 16 * HD, *wl = wm + DM_WARPS * 16;
    {
        float *mine = wo + warp * 16 * HD;
#pragma unroll
        for (int nb = 0; nb < HD / 8; nb++) {
            int cc = nb * 8 + tig * 2;
            *(float2 *)(mine + gq * HD + cc) = make_float2(o[nb][0], o[nb][1]);
            *(float2 *)(mine + (gq + 8) * HD + cc) = make_float2(o[nb][2], o[nb][3]);
        }
        if (tig == 0) {
            wm[warp * 16 + gq] = m_a;
            wm[warp * 16 + gq + 8] = m_b;
            wl[warp * 16 + gq] = l_a;
            wl[warp * 16 + gq + 8] = l_b;
        }
    }
    __syncthreads();
    for (int j = threadIdx.x; j < group * HD; j += DM_WARPS * 32) {
        const int r = j / HD, d = j % HD, h = g * group + r;
        float mx = -INFINITY;
#pragma unroll
        for (int w = 0; w < DM_WARPS; w++) mx = fmaxf(mx, wm[w * 16 + r]);
        const float ref = mx == -INFINITY ? 0.f : mx;
        float acc = 0.f, l = 0.f;
#pragma unroll
        for (int w = 0; w < DM_WARPS; w++) {
            float f = exp2f(wm[w * 16 + r] - ref); /* 0 for a warp that saw no key */
            acc += wo[(w * 16 + r) * HD + d] * f;
            l += wl[w * 16 + r] * f;
        }
        if (n_chunks == 1) {
            out[i * ldo + (int64_t)h * HD + d] = l > 0.f ? acc / l : 0.f;
        } else {
            float *pp = part + ((i * n_heads + h) * n_chunks + blockIdx.x) * (HD + 2);
            pp[d] = acc;
            if (d == 0) {
                pp[HD] = mx;
                pp[HD + 1] = l;
            }
        }
    }
}

/* 1 when dec_mma_kernel takes this shape (else the f32 split kernel); GLMV_CUDA_DEC_MMA=0
 * keeps the split kernel, for comparisons */
static int dec_mma_ok(const cuda_ctx *c, int n_heads, int n_kv_heads, int hd) {
    static int off = -1;
    if (off < 0) {
        const char *e = getenv("GLMV_CUDA_DEC_MMA");
        off = e && !strcmp(e, "0");
    }
    return !off && c->bf16 && (hd == 64 || hd == 128) && n_kv_heads > 0 && n_heads % n_kv_heads == 0 &&
           n_heads / n_kv_heads <= 16;
}

/* k_new, v_new (rows of ld_new; NULL: already in the caches): the step's new key and value rows,
 * stored at row nks[i] - 1 of the caches by the kernel itself */
template <typename KT>
static int dec_mma_launch(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq, int n,
                          int64_t max_keys, int n_heads, int n_kv_heads, int hd, float scale,
                          const KT *const *kps, const KT *const *vps, const int64_t *nks, const float *k_new,
                          const float *v_new, int64_t ld_new) {
    const int group = n_heads / n_kv_heads, step = DM_WARPS * 16;
    const int64_t ldkv = (int64_t)n_kv_heads * hd;
    /* chunks of whole block steps: about four blocks per multiprocessor in all */
    int64_t want = cdiv(4 * (int64_t)c->sms, (int64_t)n_kv_heads * n);
    int64_t n_chunks = cdiv(max_keys, step);
    if (n_chunks > want) n_chunks = want;
    if (n_chunks < 1) n_chunks = 1;
    int64_t chunk = cdiv(cdiv(max_keys, n_chunks), step) * step;
    n_chunks = cdiv(max_keys, chunk);
    float *part = NULL;
    if (n_chunks > 1) {
        part = (float *)cuda_scratch(c, sizeof(float) * (size_t)n * n_heads * n_chunks * (hd + 2));
        if (!part) return -1;
    }
    size_t sh = sizeof(float) * (size_t)DM_WARPS * 16 * (hd + 2);
    dim3 grid((unsigned)n_chunks, (unsigned)n_kv_heads, (unsigned)n);
    if (hd == 128)
        cuda_launch(c, dec_mma_kernel<128, KT>, grid, DM_WARPS * 32, sh, out, ldo, part, q, ldq, n_heads,
                    group, chunk, scale * LOG2E, kps, vps, nks, ldkv, k_new, v_new, ld_new);
    else
        cuda_launch(c, dec_mma_kernel<64, KT>, grid, DM_WARPS * 32, sh, out, ldo, part, q, ldq, n_heads,
                    group, chunk, scale * LOG2E, kps, vps, nks, ldkv, k_new, v_new, ld_new);
    if (cuda_check(c, "attention (decode, tensor cores)") || n_chunks == 1) return c->failed ? -1 : 0;
    combine_launch(c, out, ldo, part, n, n_heads, hd, (int)n_chunks);
    return cuda_check(c, "attention (combine)");
}

/* ------------------------------------------------------ fp32 via SGEMM */

/* each block: one row of n scores, in place: p = exp(s - max) / sum */
__global__ void softmax_rows_kernel(float *s, int64_t n) {
    PDL_ENTRY();
    float *row = s + (int64_t)blockIdx.x * n;
    __shared__ float red[32];
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, row[i]);
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
    __syncthreads();
    mx = red[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); w++) mx = fmaxf(mx, red[w]);
    __syncthreads();
    float sum = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float e = expf(row[i] - mx);
        row[i] = e;
        sum += e;
    }
    for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = sum;
    __syncthreads();
    sum = 0;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) sum += red[w];
    float inv = 1.0f / sum;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) row[i] *= inv;
}

/* scores held at once (floats): 256 M (1 GB), GLMV_CUDA_ATTN_SCORES=n for tests */
static int64_t scores_max(void) {
    const char *e = getenv("GLMV_CUDA_ATTN_SCORES");
    long long v = e ? atoll(e) : 0;
    return v > 0 ? (int64_t)v : (int64_t)256 << 20;
}

/* one segment of len rows, all heads, in chunks of heads whose scores fit scores_max() */
static int sgemm_segment(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq,
                         const float *k, int64_t ldk, const float *v, int64_t ldv, int64_t len,
                         int n_heads, int hd, float scale) {
    int64_t per = len * len;
    if (len > INT32_MAX / 2 || ldq > INT32_MAX || ldk > INT32_MAX || ldv > INT32_MAX ||
        ldo > INT32_MAX)
        return cuda_fail(c, "attention (sgemm): dimension beyond 2^31", cudaErrorInvalidValue);
    int hc = (int)GLMV_MAX((int64_t)1, GLMV_MIN((int64_t)n_heads, scores_max() / per));
    float *s = (float *)cuda_scratch(c, sizeof(float) * (size_t)(hc * per));
    if (!s) return -1;
    const float one = 1.f, zero = 0.f;
    for (int h0 = 0; h0 < n_heads && !c->failed; h0 += hc) {
        int nh = GLMV_MIN(hc, n_heads - h0);
        /* column-major: S_h[key, query] = scale Σ_d K_h[d, key] Q_h[d, query] */
        cublasStatus_t st = cublasSgemmStridedBatched(
            c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)len, (int)len, hd, &scale,
            k + (int64_t)h0 * hd, (int)ldk, hd, q + (int64_t)h0 * hd, (int)ldq, hd, &zero, s,
            (int)len, per, nh);
        if (st != CUBLAS_STATUS_SUCCESS) return cuda_blas_fail(c, "attention (sgemm qk)", st);
        cuda_launch(c, softmax_rows_kernel, dim3((unsigned)(nh * len)), 256, 0, s, len);
        if (cuda_check(c, "attention (softmax)")) return -1;
        /* O_h[d, query] = Σ_key V_h[d, key] P_h[key, query] */
        st = cublasSgemmStridedBatched(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, (int)len, (int)len,
                                       &one, v + (int64_t)h0 * hd, (int)ldv, hd, s, (int)len, per,
                                       &zero, out + (int64_t)h0 * hd, (int)ldo, hd, nh);
        if (st != CUBLAS_STATUS_SUCCESS) return cuda_blas_fail(c, "attention (sgemm pv)", st);
    }
    return c->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ ops */

/* below this many query rows the fp32 split kernel (decode) is used */
#define FLASH_MIN_ROWS 16

static int flash_ok(cuda_ctx *c, int hd, int64_t ldq, const float *q) {
    return (hd == 64 || hd == 128) && !(ldq & 1) && !((uintptr_t)q % 8) && c->bf16 &&
           !getenv("GLMV_CUDA_NO_FLASH");
}

template <typename KT>
static void attn_causal_t(cuda_ctx *c, float *out, const float *q, int64_t ldq, const KT *kc, const KT *vc,
                          int64_t n, int64_t pos0, int n_heads, int n_kv_heads, int head_dim, float scale) {
    int64_t kvd = (int64_t)n_kv_heads * head_dim, ldo = (int64_t)n_heads * head_dim;
    if (n >= FLASH_MIN_ROWS && flash_ok(c, head_dim, ldq, q))
        flash_launch<KT>(c, out, ldo, q, ldq, kc, kvd, vc, kvd, n, pos0 + n, 1, pos0, n_heads, n_kv_heads, head_dim,
                         scale);
    else
        split_launch<KT>(c, out, ldo, q, ldq, kc, kvd, vc, kvd, n, pos0 + n, 1, pos0, n_heads, n_kv_heads, head_dim,
                         scale);
}

void k_attn_causal(cuda_ctx *c, float *out, const float *q, int64_t ldq, const void *kc, const void *vc, int64_t n,
                   int64_t pos0, int n_heads, int n_kv_heads, int head_dim, float scale) {
    if (n <= 0) return;
    if (c->kv_bf16)
        attn_causal_t(c, out, q, ldq, (const __nv_bfloat16 *)kc, (const __nv_bfloat16 *)vc, n, pos0, n_heads,
                      n_kv_heads, head_dim, scale);
    else
        attn_causal_t(c, out, q, ldq, (const float *)kc, (const float *)vc, n, pos0, n_heads, n_kv_heads, head_dim,
                      scale);
}

/* grid (n, 2): block (i, 0) stores sequence i's new key row at row n_keys[i] - 1 of its
 * cache, block (i, 1) its value row (rounded to bf16 in a bf16 cache) */
template <typename KT>
__global__ void kv_append_kernel(const float *k_new, const float *v_new, int64_t ldkv, KT *const *kc,
                                 KT *const *vc, const int64_t *n_keys, int64_t kvd) {
    PDL_ENTRY();
    int64_t i = blockIdx.x;
    const float *src = (blockIdx.y ? v_new : k_new) + i * ldkv;
    KT *dst = (blockIdx.y ? vc[i] : kc[i]) + (n_keys[i] - 1) * kvd;
    for (int64_t d = threadIdx.x; d < kvd; d += blockDim.x) kv_put(dst + d, src[d]);
}

template <typename KT>
static void attn_decode_batch_t(cuda_ctx *c, float *out, const float *q, int64_t ldq, const float *k_new,
                                const float *v_new, int64_t ldkv, KT *const *kc, KT *const *vc,
                                const int64_t *n_keys, int n, int64_t max_keys, int n_heads, int n_kv_heads,
                                int head_dim, float scale) {
    int64_t kvd = (int64_t)n_kv_heads * head_dim, ldo = (int64_t)n_heads * head_dim;
    /* dec_mma_kernel stores the new rows itself (one launch fewer a layer); GLMV_CUDA_KV_FUSE=0: the
     * kv_append kernel first, as the split kernel needs */
    static int fuse = -1;
    if (fuse < 0) fuse = !(getenv("GLMV_CUDA_KV_FUSE") && atoi(getenv("GLMV_CUDA_KV_FUSE")) == 0);
    const bool mma = n <= 65535 && dec_mma_ok(c, n_heads, n_kv_heads, head_dim);
    if (mma && fuse) {
        dec_mma_launch<KT>(c, out, ldo, q, ldq, n, max_keys, n_heads, n_kv_heads, head_dim, scale,
                           (const KT *const *)kc, (const KT *const *)vc, n_keys, k_new, v_new, ldkv);
        return;
    }
    cuda_launch(c, kv_append_kernel<KT>, dim3((unsigned)n, 2), 256, 0, k_new, v_new, ldkv, kc, vc, n_keys, kvd);
    if (cuda_check(c, "attention (kv append)")) return;
    if (mma) {
        dec_mma_launch<KT>(c, out, ldo, q, ldq, n, max_keys, n_heads, n_kv_heads, head_dim, scale,
                           (const KT *const *)kc, (const KT *const *)vc, n_keys, NULL, NULL, 0);
        return;
    }
    split_launch<KT>(c, out, ldo, q, ldq, NULL, kvd, NULL, kvd, n, max_keys, 0, 0, n_heads, n_kv_heads, head_dim,
                     scale, (const KT *const *)kc, (const KT *const *)vc, n_keys);
}

void k_attn_decode_batch(cuda_ctx *c, float *out, const float *q, int64_t ldq, const float *k_new,
                         const float *v_new, int64_t ldkv, void *const *kc, void *const *vc, const int64_t *n_keys,
                         int n, int64_t max_keys, int n_heads, int n_kv_heads, int head_dim, float scale) {
    if (n <= 0) return;
    if (c->kv_bf16)
        attn_decode_batch_t(c, out, q, ldq, k_new, v_new, ldkv, (__nv_bfloat16 *const *)kc,
                            (__nv_bfloat16 *const *)vc, n_keys, n, max_keys, n_heads, n_kv_heads, head_dim, scale);
    else
        attn_decode_batch_t(c, out, q, ldq, k_new, v_new, ldkv, (float *const *)kc, (float *const *)vc, n_keys, n,
                            max_keys, n_heads, n_kv_heads, head_dim, scale);
}

/* rows of x (stride ldx) into rows of cols elements of a cache: grid (rows (strided)) */
__global__ void kv_store_kernel(__nv_bfloat16 *dst, const float *x, int64_t ldx, int64_t rows, int64_t cols) {
    PDL_ENTRY();
    for (int64_t i = blockIdx.x; i < rows; i += gridDim.x)
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dst[i * cols + j] = __float2bfloat16_rn(x[i * ldx + j]);
}

void k_kv_store_bf16(cuda_ctx *c, __nv_bfloat16 *dst, const float *x, int64_t ldx, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return;
    cuda_launch(c, kv_store_kernel, (unsigned)(rows < 65535 ? rows : 65535), 256, 0, dst, x, ldx, rows, cols);
    cuda_check(c, "kv_store");
}

void k_attn_segments(cuda_ctx *c, float *out, const float *q, int64_t ldq, const float *k,
                     int64_t ldk, const float *v, int64_t ldv, const int64_t *cu, int n_seg,
                     int n_heads, int head_dim, float scale) {
    int64_t ldo = (int64_t)n_heads * head_dim;
    int use_flash = flash_ok(c, head_dim, ldq, q);
    for (int s = 0; s < n_seg; s++) {
        int64_t a = cu[s], len = cu[s + 1] - cu[s];
        if (len <= 0) continue;
        int r;
        if (!c->bf16 && len >= FLASH_MIN_ROWS)
            r = sgemm_segment(c, out + a * ldo, ldo, q + a * ldq, ldq, k + a * ldk, ldk,
                              v + a * ldv, ldv, len, n_heads, head_dim, scale);
        else if (use_flash && len >= FLASH_MIN_ROWS)
            r = flash_launch<float>(c, out + a * ldo, ldo, q + a * ldq, ldq, k + a * ldk, ldk,
                             v + a * ldv, ldv, len, len, 0, 0, n_heads, n_heads, head_dim, scale);
        else
            r = split_launch<float>(c, out + a * ldo, ldo, q + a * ldq, ldq, k + a * ldk, ldk,
                             v + a * ldv, ldv, len, len, 0, 0, n_heads, n_heads, head_dim, scale);
        if (r) return;
    }
}
