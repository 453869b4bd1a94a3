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
 * flash_wg_kernel (flash_wg.cu): the same function on Hopper's wgmma for head dim 128 and
 * 64 rows or more (prefill and the vision tower on compute capability 9.0; GLMV_CUDA_WGMMA=0
 * keeps flash_kernel), launched from here after the same K/V conversion. About 1.8x
 * flash_kernel on an H100.
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
#include "cuda/flash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------ tensor-core flash */

__device__ __forceinline__ void mma_bf16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
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

/* one flash kernel over nq query rows: blocks of bm rows and threads threads, grid.x at most
 * 65535 blocks a launch; its dynamic shared memory limit raised to sh once a device
 * (attr_set: that kernel's flags, 64 devices) */
int flash_grid(cuda_ctx *c, flash_fn fn, int *attr_set, int bm, int threads, size_t sh, float *out,
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
    /* the ping-pong variant (two warpgroups, 128 keys; GLMV_CUDA_FLASH_PP=0: the warpgroups in step).
     * Measured on an H100: a 6,400-patch segment 687 us against 748, 4,096 rows causal 388 against 444 */
    static int pp = -1;
    if (pp < 0) pp = !(getenv("GLMV_CUDA_FLASH_PP") && atoi(getenv("GLMV_CUDA_FLASH_PP")) == 0);
    /* its tiles in one bulk copy each where it takes the operands (GLMV_CUDA_FLASH_BULK=0, or another
     * variant asked for above: not; k_attn_init) */
    if (k_flash_bulk_takes(c, hd, nq, k, ldk * (int64_t)sizeof(KT), v, ldv * (int64_t)sizeof(KT)))
        return k_flash_bulk<KT>(c, out, ldo, q, ldq, k, ldk, v, ldv, nq, nk, causal, pos0, n_heads, n_kv, scale, NULL,
                                NULL, NULL, NULL, NULL);
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
    if (use_wg)
        return k_flash_wg(c, pad == 128 ? (pp ? 3 : 2) : wg == 1 ? 0 : 1, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad,
                          causal, pos0, n_heads, group, scale);
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

/* A warp's step over 16 keys k0 .. k0 + 15 of a decode block: the scores s (two n-blocks of 8, the
 * mma's C layout; kt = k0 + 2 tig, this thread's first column) scaled to base 2 with the keys at or
 * past c1 masked, the online softmax's step (running maxima m, sums l: this thread's share), the
 * rescale al of what O summed before, and P rounded to bf16 as the A fragment of P V */
__device__ __forceinline__ void dm_softmax16(float (&s)[2][4], int64_t kt, int64_t c1, float scale_log2, float &m_a,
                                             float &m_b, float &l_a, float &l_b, uint32_t (&a)[4], float &al_a,
                                             float &al_b) {
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int nb = 0; nb < 2; nb++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int64_t col = kt + nb * 8 + (e & 1);
            const float x = col < c1 ? s[nb][e] * scale_log2 : -INFINITY;
            s[nb][e] = x;
            if (e < 2) mx_a = fmaxf(mx_a, x);
            else mx_b = fmaxf(mx_b, x);
        }
    float ref_a, ref_b;
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
    a[0] = pack_bf16(s[0][0], s[0][1]);
    a[1] = pack_bf16(s[0][2], s[0][3]);
    a[2] = pack_bf16(s[1][0], s[1][1]);
    a[3] = pack_bf16(s[1][2], s[1][3]);
}

/* The end of a decode block (dec_mma_kernel, dec_tile_kernel): each warp's state (o, m, l of heads
 * gq and gq + 8 over its keys) into shared memory sh (DM_WARPS * 16 * (HD + 2) floats), then merged
 * per (head, dim) into out (one chunk) or the chunk's partial (several) */
template <int HD>
__device__ __forceinline__ void dm_finish(float *sh, const float (&o)[HD / 8][4], float m_a, float m_b, float l_a,
                                          float l_b, float *__restrict__ out, int64_t ldo, float *__restrict__ part,
                                          int64_t i, int g, int group, int n_heads, int n_chunks) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, tig = lane & 3;
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    /* the warps' states into shared memory, then merged per (head, dim) */
    float *wo = sh, *wm = sh + DM_WARPS * 16 * HD, *wl = wm + DM_WARPS * 16;
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
        uint32_t a[4];
        float al_a, al_b;
        dm_softmax16(s, k0 + tig * 2, c1, scale_log2, m_a, m_b, l_a, l_b, a, al_a, al_b);
        /* O = O * alpha + P V: V rows k0 + 2 tig, + 1, + 8, + 9 at dims nb * 8 + gq (zero past
         * c1: P is zero there, V may be anything) */
        const int64_t r0 = k0 + tig * 2;
        const bool v0 = r0 < c1, v1 = r0 + 1 < c1, v2 = r0 + 8 < c1, v3 = r0 + 9 < c1;
        const KT *vr = vb + r0 * ldkv + gq;
#pragma unroll
        for (int nb = 0; nb < HD / 8; nb++) {
            o[nb][0] *= al_a;
            o[nb][1] *= al_a;
            o[nb][2] *= al_b;
            o[nb][3] *= al_b;
            mma_bf16(o[nb], a[0], a[1], a[2], a[3], kv_pack2(vr + nb * 8, v0, vr + ldkv + nb * 8, v1),
                     kv_pack2(vr + 8 * ldkv + nb * 8, v2, vr + 9 * ldkv + nb * 8, v3));
        }
    }
    dm_finish<HD>(dm_sh, o, m_a, m_b, l_a, l_b, out, ldo, part, i, g, group, n_heads, n_chunks);
}

/* dec_mma_kernel's work with the keys and values staged in shared memory (bf16 caches): the
 * block's chunk in tiles of DT_KEYS keys, each copied whole by all threads with 16-byte cp.async
 * (STAGES 2: the next tile loads while this one is used), its fragments read with ldmatrix.
 * Warp w takes keys w * 16 .. w * 16 + 15 of every tile, the steps dec_mma_kernel gives it, with
 * the same products in the same order: from the same chunks, the same bits. (dec_mma_kernel's
 * loads are 4 and 2 bytes a lane, ~100 instructions a warp for 16 keys: at 64 sequences of 1k
 * keys it read the caches at ~1.37 TB/s of an H100's 3.35; this kernel at ~1.95, 34 us a layer
 * against 49.) The block that holds the newest key
 * stores it to the caches as dec_mma_kernel does, copies its tile without that row, and writes
 * the row into shared memory itself (what the cache holds: kv_put's rounding). */
#define DT_KEYS (DM_WARPS * 16)
template <int HD> struct dt_smem {
    static constexpr int S = HD + 8;                /* row stride (bf16): ldmatrix's 8 rows in 8 bank groups */
    static constexpr int STAGE = 2 * DT_KEYS * S;   /* K tile, then V tile */
    static constexpr size_t bytes(int stages) { return (size_t)stages * STAGE * 2; }
};

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void *p, bool trans) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    if (trans)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
}

/* 16 bytes from global into shared memory, or zeros (nothing read) where !ok */
__device__ __forceinline__ void cp_async16_or0(void *smem, const void *gmem, bool ok) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(ok ? 16 : 0));
}

/* keys k0 .. k0 + DT_KEYS - 1 of one kv head (rows of ldkv elements from kb, vb) into a stage;
 * rows at or past end are zeros */
template <int HD>
__device__ __forceinline__ void dt_issue(__nv_bfloat16 *stage, const __nv_bfloat16 *kb, const __nv_bfloat16 *vb,
                                         int64_t ldkv, int64_t k0, int64_t end) {
    constexpr int S = dt_smem<HD>::S, CH = HD / 8; /* 16-byte pieces a row */
    constexpr int ROWS = DM_WARPS * 32 / CH;        /* rows a pass of all threads */
    __nv_bfloat16 *ks = stage, *vs = stage + DT_KEYS * S;
    const int r0 = threadIdx.x / CH, cc = (threadIdx.x % CH) * 8;
#pragma unroll
    for (int it = 0; it < DT_KEYS / ROWS; it++) {
        const int r = r0 + it * ROWS;
        const bool ok = k0 + r < end;
        const int64_t off = (ok ? k0 + r : 0) * ldkv + cc;
        cp_async16_or0(ks + r * S + cc, kb + off, ok);
        cp_async16_or0(vs + r * S + cc, vb + off, ok);
    }
}

template <int HD, int STAGES>
__global__ void __launch_bounds__(DM_WARPS * 32, 3) dec_tile_kernel(
    float *__restrict__ out, int64_t ldo, float *__restrict__ part, const float *__restrict__ q, int64_t ldq,
    int n_heads, int group, int64_t chunk, float scale_log2, const __nv_bfloat16 *const *kps,
    const __nv_bfloat16 *const *vps, const int64_t *nks, int64_t ldkv, const float *k_new, const float *v_new,
    int64_t ld_new) {
    PDL_ENTRY(); /* q and the new key and value rows come from the kernels before */
    constexpr int S = dt_smem<HD>::S, STAGE = dt_smem<HD>::STAGE;
    extern __shared__ __align__(16) unsigned char dt_sh[];
    __nv_bfloat16 *sm = (__nv_bfloat16 *)dt_sh;
    const int64_t i = blockIdx.z;
    const int g = blockIdx.y, n_chunks = gridDim.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, tig = lane & 3;
    const int64_t lim = nks[i], c0 = (int64_t)blockIdx.x * chunk;
    const int64_t c1 = c0 + chunk < lim ? c0 + chunk : lim;
    const __nv_bfloat16 *kb = kps[i] + (int64_t)g * HD, *vb = vps[i] + (int64_t)g * HD;
    const bool mine = k_new && c0 <= lim - 1 && lim - 1 < c1; /* this block holds the newest key */
    const float *ks_new = mine ? k_new + i * ld_new + (int64_t)g * HD : NULL;
    const float *vs_new = mine ? v_new + i * ld_new + (int64_t)g * HD : NULL;
    if (mine)
        for (int d = threadIdx.x; d < HD; d += DM_WARPS * 32) {
            kv_put((__nv_bfloat16 *)kb + (lim - 1) * ldkv + d, ks_new[d]);
            kv_put((__nv_bfloat16 *)vb + (lim - 1) * ldkv + d, vs_new[d]);
        }
    const int64_t copy_end = mine ? lim - 1 : c1; /* the newest row is not read back from global */
    const int n_tiles = c1 > c0 ? (int)((c1 - c0 + DT_KEYS - 1) / DT_KEYS) : 0;
    if (n_tiles > 0) dt_issue<HD>(sm, kb, vb, ldkv, c0, copy_end);
    cp_commit();

    const float *qg = q + i * ldq + (int64_t)g * group * HD;
    uint32_t qf[HD / 16][4];
    load_q_frags<HD>(qf, qg + gq * HD + tig * 2, qg + (gq + 8) * HD + tig * 2, gq < group, gq + 8 < group);
    float o[HD / 8][4];
#pragma unroll
    for (int j = 0; j < HD / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;
    /* ldmatrix's rows: lane l gives row l % 8 of matrix l / 8 */
    const int lr = lane & 7, lm = lane >> 3;

    for (int t = 0; t < n_tiles; t++) {
        const int64_t t0 = c0 + (int64_t)t * DT_KEYS;
        if (STAGES == 2 && t + 1 < n_tiles) {
            dt_issue<HD>(sm + ((t + 1) & 1) * STAGE, kb, vb, ldkv, t0 + DT_KEYS, copy_end);
            cp_commit();
            cp_wait<1>();
        } else {
            if (STAGES == 1 && t > 0) {
                dt_issue<HD>(sm, kb, vb, ldkv, t0, copy_end);
                cp_commit();
            }
            cp_wait<0>();
        }
        __syncthreads();
        __nv_bfloat16 *ks = sm + (STAGES == 2 ? (t & 1) * STAGE : 0), *vs = ks + DT_KEYS * S;
        if (mine && t == n_tiles - 1) { /* the newest row, as the cache holds it */
            const int r = (int)(lim - 1 - t0);
            for (int d = threadIdx.x; d < HD; d += DM_WARPS * 32) {
                ks[r * S + d] = __float2bfloat16_rn(ks_new[d]);
                vs[r * S + d] = __float2bfloat16_rn(vs_new[d]);
            }
            __syncthreads();
        }
        const int64_t k0 = t0 + warp * 16;
        if (k0 < c1) {
            /* S = Q Kᵀ for keys k0 .. k0 + 15: matrices (keys nb * 8 .., dims 16 kk + 8 m) */
            float s[2][4];
#pragma unroll
            for (int nb = 0; nb < 2; nb++) {
                s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
                const __nv_bfloat16 *kr = ks + (warp * 16 + nb * 8 + lr) * S + lm * 8;
#pragma unroll
                for (int kk = 0; kk < HD / 16; kk += 2) {
                    uint32_t b[4];
                    ldsm_x4(b, kr + kk * 16, false);
                    mma_bf16(s[nb], qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], b[0], b[1]);
                    mma_bf16(s[nb], qf[kk + 1][0], qf[kk + 1][1], qf[kk + 1][2], qf[kk + 1][3], b[2], b[3]);
                }
            }
            uint32_t a[4];
            float al_a, al_b;
            dm_softmax16(s, k0 + tig * 2, c1, scale_log2, m_a, m_b, l_a, l_b, a, al_a, al_b);
            /* O = O * alpha + P V: matrices (keys 8 (m & 1) .., dims 16 nb2 + 8 (m >> 1)), transposed */
            const __nv_bfloat16 *vr = vs + (warp * 16 + (lm & 1) * 8 + lr) * S + (lm >> 1) * 8;
#pragma unroll
            for (int nb = 0; nb < HD / 8; nb += 2) {
                uint32_t b[4];
                ldsm_x4(b, vr + nb * 8, true);
                o[nb][0] *= al_a;
                o[nb][1] *= al_a;
                o[nb][2] *= al_b;
                o[nb][3] *= al_b;
                mma_bf16(o[nb], a[0], a[1], a[2], a[3], b[0], b[1]);
                o[nb + 1][0] *= al_a;
                o[nb + 1][1] *= al_a;
                o[nb + 1][2] *= al_b;
                o[nb + 1][3] *= al_b;
                mma_bf16(o[nb + 1], a[0], a[1], a[2], a[3], b[2], b[3]);
            }
        }
        __syncthreads(); /* this stage is refilled STAGES tiles on; after the last, the merge's */
    }
    dm_finish<HD>((float *)dt_sh, o, m_a, m_b, l_a, l_b, out, ldo, part, i, g, group, n_heads, n_chunks);
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
 * stored at row nks[i] - 1 of the caches by the kernel itself (by the block whose chunk holds
 * that row: max_keys must bound every nks[i], as the op requires, or no block would).
 * dec_tile_kernel (bf16 caches, c->dec_tile 1 or 2) or dec_mma_kernel: the keys cut into chunks of
 * whole 64-key steps. dec_mma_kernel's chunks (and c->dec_tile 2's): about four blocks a
 * multiprocessor in all. c->dec_tile 1: as many chunks as fill the multiprocessors' resident
 * blocks once (c->dec_occ a multiprocessor) and no more, so that no second, partial wave of
 * blocks runs after the first (64 sequences of 1k keys on an H100: 3 chunks of 384 keys, 384
 * blocks for 396 places, where four blocks a multiprocessor made 512). */
template <typename KT>
static int dec_mma_launch(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq, int n,
                          int64_t max_keys, int n_heads, int n_kv_heads, int hd, float scale,
                          const KT *const *kps, const KT *const *vps, const int64_t *nks, const float *k_new,
                          const float *v_new, int64_t ld_new) {
    const int group = n_heads / n_kv_heads, step = DM_WARPS * 16;
    const int64_t ldkv = (int64_t)n_kv_heads * hd;
    /* by the step (the default): dec_tile_kernel where the products of the step's rows go through
     * cuBLAS (more rows than the matrix-vector and skinny kernels take) and the weights are BF16,
     * the case measured faster; dec_mma_kernel beside those kernels (see dec_tile_kernel) */
    const int auto_mode = c->dec_tile < 0;
    const int mode = !auto_mode ? c->dec_tile
                     : n > GEMV_MAX_M && n > k_skinny_max() && !c->has_quant ? 1 : 0;
    const bool tile = sizeof(KT) == 2 && mode;
    const int64_t pairs = (int64_t)n_kv_heads * n, steps = cdiv(max_keys, step);
    int64_t want = cdiv(4 * (int64_t)c->sms, pairs);
    int64_t most = steps; /* chunks at most: one a 64-key step */
    if (tile && mode == 1) {
        want = (int64_t)c->sms * c->dec_occ[hd == 128 ? 0 : 1] / pairs;
        if (want < 1) want = 1;
        most = cdiv(steps, c->dec_min_steps);
    }
    int64_t n_chunks = most < want ? most : want;
    if (n_chunks < 1) n_chunks = 1;
    int64_t chunk = cdiv(cdiv(max_keys, n_chunks), step) * step;
    n_chunks = cdiv(max_keys, chunk);
    float *part = NULL;
    if (n_chunks > 1) {
        part = (float *)cuda_scratch(c, sizeof(float) * (size_t)n * n_heads * n_chunks * (hd + 2));
        if (!part) return -1;
    }
    dim3 grid((unsigned)n_chunks, (unsigned)n_kv_heads, (unsigned)n);
    const float sl2 = scale * LOG2E;
    if (tile) {
        /* two stages where a chunk has several tiles, or by the step (as measured); asked for, one
         * where a chunk is one tile (half the shared memory: with two, a block of one tile slowed 16
         * streams' step 7.9 -> 12.7 ms on an H100 under dependent launch, beside the skinny kernel;
         * not yet measured with one) */
        const __nv_bfloat16 *const *kb = (const __nv_bfloat16 *const *)kps, *const *vb = (const __nv_bfloat16 *const *)vps;
        const bool two = auto_mode || chunk > DT_KEYS;
        if (hd == 128 && two)
            cuda_launch(c, dec_tile_kernel<128, 2>, grid, DM_WARPS * 32, dt_smem<128>::bytes(2), out, ldo, part, q,
                        ldq, n_heads, group, chunk, sl2, kb, vb, nks, ldkv, k_new, v_new, ld_new);
        else if (hd == 128)
            cuda_launch(c, dec_tile_kernel<128, 1>, grid, DM_WARPS * 32, dt_smem<128>::bytes(1), out, ldo, part, q,
                        ldq, n_heads, group, chunk, sl2, kb, vb, nks, ldkv, k_new, v_new, ld_new);
        else if (two)
            cuda_launch(c, dec_tile_kernel<64, 2>, grid, DM_WARPS * 32, dt_smem<64>::bytes(2), out, ldo, part, q,
                        ldq, n_heads, group, chunk, sl2, kb, vb, nks, ldkv, k_new, v_new, ld_new);
        else
            cuda_launch(c, dec_tile_kernel<64, 1>, grid, DM_WARPS * 32, dt_smem<64>::bytes(1), out, ldo, part, q,
                        ldq, n_heads, group, chunk, sl2, kb, vb, nks, ldkv, k_new, v_new, ld_new);
    } else {
        size_t sh = sizeof(float) * (size_t)DM_WARPS * 16 * (hd + 2);
        if (hd == 128)
            cuda_launch(c, dec_mma_kernel<128, KT>, grid, DM_WARPS * 32, sh, out, ldo, part, q, ldq, n_heads,
                        group, chunk, sl2, kps, vps, nks, ldkv, k_new, v_new, ld_new);
        else
            cuda_launch(c, dec_mma_kernel<64, KT>, grid, DM_WARPS * 32, sh, out, ldo, part, q, ldq, n_heads,
                        group, chunk, sl2, kps, vps, nks, ldkv, k_new, v_new, ld_new);
    }
    if (cuda_check(c, "attention (decode, tensor cores)") || n_chunks == 1) return c->failed ? -1 : 0;
    combine_launch(c, out, ldo, part, n, n_heads, hd, (int)n_chunks);
    return cuda_check(c, "attention (combine)");
}

/* c->dec_tile from GLMV_CUDA_DEC_TILE (unset: -1, the kernel by the step, see dec_mma_launch; 0:
 * dec_mma_kernel; 1: dec_tile_kernel in one wave of chunks; 2: dec_tile_kernel in dec_mma_kernel's
 * chunks, to compare bit for bit), and what dec_tile_kernel needs before a launch (which may be
 * recorded in a graph): its shared memory limit raised, and how many of its blocks a
 * multiprocessor holds. -1 with the error in err where the variable is not one of those or, asked
 * for, the kernel cannot run; unasked, dec_mma_kernel then. */
int k_attn_init(cuda_ctx *c, char *err) {
    const char *fp = getenv("GLMV_CUDA_FLASH_BULK");
    c->flash_bulk = 1;
    if (fp && *fp) {
        if (strcmp(fp, "0") && strcmp(fp, "1")) {
            glmv_errf(err, "GLMV_CUDA_FLASH_BULK=%s: expected 0 or 1", fp);
            return -1;
        }
        c->flash_bulk = atoi(fp);
    }
    /* the other variants asked for (flash_launch's switches) leave it out */
    const char *pp = getenv("GLMV_CUDA_FLASH_PP"), *wg = getenv("GLMV_CUDA_FLASH_WG"), *bn = getenv("GLMV_CUDA_FLASH_BN");
    if ((pp && atoi(pp) == 0) || (wg && atoi(wg) == 1) || (bn && atoi(bn) == 64)) c->flash_bulk = 0;
    const char *e = getenv("GLMV_CUDA_DEC_TILE");
    c->dec_tile = -1;
    if (e && *e) {
        if (strcmp(e, "0") && strcmp(e, "1") && strcmp(e, "2")) {
            glmv_errf(err, "GLMV_CUDA_DEC_TILE=%s: expected 0, 1 or 2", e);
            return -1;
        }
        c->dec_tile = atoi(e);
    }
    /* GLMV_CUDA_DEC_MIN_STEPS: dec_tile_kernel's chunks' 64-key steps at least (1 to 64; 1 by default;
     * 4 took one stream at 8k keys 7.46 -> 7.33 ms a token on an H100, but dec_tile_kernel is not
     * taken for one stream by default) */
    const char *ms = getenv("GLMV_CUDA_DEC_MIN_STEPS");
    c->dec_min_steps = 1;
    if (ms && *ms) {
        char *end;
        long v = strtol(ms, &end, 10);
        if (*end || v < 1 || v > 64) {
            glmv_errf(err, "GLMV_CUDA_DEC_MIN_STEPS=%s: expected 1 to 64", ms);
            return -1;
        }
        c->dec_min_steps = (int)v;
    }
    if (!c->dec_tile) return 0;
    int occ[2] = {0, 0};
    cudaError_t r = cudaFuncSetAttribute(dec_tile_kernel<128, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)dt_smem<128>::bytes(2));
    if (r == cudaSuccess)
        r = cudaFuncSetAttribute(dec_tile_kernel<64, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)dt_smem<64>::bytes(2));
    if (r == cudaSuccess)
        r = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ[0], dec_tile_kernel<128, 2>, DM_WARPS * 32,
                                                          dt_smem<128>::bytes(2));
    if (r == cudaSuccess)
        r = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ[1], dec_tile_kernel<64, 2>, DM_WARPS * 32,
                                                          dt_smem<64>::bytes(2));
    if (r != cudaSuccess || occ[0] < 1 || occ[1] < 1) {
        cudaGetLastError();
        if (c->dec_tile < 0) {
            c->dec_tile = 0;
            return 0;
        }
        glmv_errf(err, "cuda: the decode attention kernel cannot run here: %s",
                  r != cudaSuccess ? cudaGetErrorString(r) : "no block fits a multiprocessor");
        return -1;
    }
    c->dec_occ[0] = occ[0];
    c->dec_occ[1] = occ[1];
    return 0;
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

/* joined q|k|v rows x [n, ldq] (nh heads of q, nkv of k, nkv of v, hd each): the first rot dims of
 * q's and k's heads rotated in place (interleaved pairs, as rope_interleaved_kernel), k's and v's
 * rows stored into the caches kc, vc (rows of nkv hd, as kv_store): one thread a pair */
template <typename KT>
__global__ void rope_kv_store_kernel(float *x, int64_t ldq, const float *cs, const float *sn, int64_t n, int nh,
                                     int nkv, int hd, int half, KT *kc, KT *vc) {
    PDL_ENTRY();
    const int hp = hd / 2;
    const int64_t per = (int64_t)(nh + 2 * nkv) * hp, kvd = (int64_t)nkv * hd;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n * per;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = t / per;
        const int r = (int)(t - i * per), h = r / hp, j = r - h * hp;
        float *v = x + i * ldq + (int64_t)h * hd + 2 * j;
        float x0 = v[0], x1 = v[1];
        if (h < nh + nkv && j < half) {
            rope_rot(x0, x1, cs[i * half + j], sn[i * half + j], x0, x1);
            v[0] = x0;
            v[1] = x1;
        }
        if (h >= nh) {
            KT *d = (h < nh + nkv ? kc + (int64_t)(h - nh) * hd : vc + (int64_t)(h - nh - nkv) * hd) + i * kvd + 2 * j;
            kv_put(d, x0);
            kv_put(d + 1, x1);
        }
    }
}

void k_rope_kv_store(cuda_ctx *c, float *x, int64_t ldq, const float *cs, const float *sn, int64_t n, int nh, int nkv,
                     int hd, int rot, void *kc, void *vc) {
    const int64_t total = n * (nh + 2 * nkv) * (hd / 2);
    if (total <= 0) return;
    const unsigned g = total / 256 + 1 > 4096 ? 4096 : (unsigned)(total / 256 + 1); /* grid-stride beyond */
    if (c->kv_bf16)
        cuda_launch(c, rope_kv_store_kernel<__nv_bfloat16>, g, 256, 0, x, ldq, cs, sn, n, nh, nkv, hd,
                    rot / 2, (__nv_bfloat16 *)kc, (__nv_bfloat16 *)vc);
    else
        cuda_launch(c, rope_kv_store_kernel<float>, g, 256, 0, x, ldq, cs, sn, n, nh, nkv, hd, rot / 2,
                    (float *)kc, (float *)vc);
    cuda_check(c, "rope_kv_store");
}

/* k_attn_segments after rope_neox on q's and k's heads (tables cs / sn, rows of head_dim / 2): through
 * the bulk-copy kernel, which rotates Q as it loads it and K as it converts it (q and k stay as they
 * were), where it takes a segment; elsewhere q's and k's rows of the segment rotated in place first.
 * Where it takes every segment, it also writes the output in bf16 for the product after it (c->bn). */
void k_attn_rope_segments(cuda_ctx *c, float *out, float *q, int64_t ldq, float *k, int64_t ldk, const float *v,
                          int64_t ldv, const float *cs, const float *sn, const int64_t *cu, int n_seg, int n_heads,
                          int head_dim, float scale) {
    const int64_t ldo = (int64_t)n_heads * head_dim, half = head_dim / 2;
    auto bulk = [&](int s) {
        const int64_t a = cu[s], len = cu[s + 1] - cu[s];
        return c->bf16 && len >= FLASH_MIN_ROWS && flash_ok(c, head_dim, ldq, q) &&
               k_flash_bulk_takes(c, head_dim, len, k + a * ldk, ldk * 4, v + a * ldv, ldv * 4);
    };
    bool all = cu[0] == 0;
    for (int s = 0; s < n_seg && all; s++) all = cu[s + 1] == cu[s] || bulk(s);
    __nv_bfloat16 *outb = all ? k_bf16_fold(c, cu[n_seg], ldo) : NULL;
    for (int s = 0; s < n_seg; s++) {
        const int64_t a = cu[s], len = cu[s + 1] - cu[s];
        if (len <= 0) continue;
        if (bulk(s)) {
            if (k_flash_bulk<float>(c, out + a * ldo, ldo, q + a * ldq, ldq, k + a * ldk, ldk, v + a * ldv, ldv, len,
                                    len, 0, 0, n_heads, n_heads, scale, cs + a * half, sn + a * half,
                                    cs + a * half, sn + a * half, outb ? outb + a * ldo : NULL))
                return;
            continue;
        }
        k_rope_neox(c, q + a * ldq, ldq, cs + a * half, sn + a * half, len, n_heads, head_dim);
        k_rope_neox(c, k + a * ldk, ldk, cs + a * half, sn + a * half, len, n_heads, head_dim);
        int64_t one[2] = {0, len};
        k_attn_segments(c, out + a * ldo, q + a * ldq, ldq, k + a * ldk, ldk, v + a * ldv, ldv, one, 1, n_heads,
                        head_dim, scale);
        if (c->failed) return;
    }
    if (outb && !c->failed) k_bf16_folded(c, out, cu[n_seg], ldo);
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
