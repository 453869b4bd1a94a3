/* mmq.cu -- the decode rows of several streams through Q8_0 / Q4_0 weights on the tensor cores:
 * y[m, n] = x[m, k] · W[n, k]ᵀ (+ bias) for MMQ_MIN_M <= m <= mmq_max_m(), the weights read once
 * for every 64 rows of x. Below that the matrix-vector kernels of quant.cu take the rows (one
 * stream's step), above it the prompt path (dequantize, cuBLAS); the K formats (Q5_0, Q4_K, Q6_K)
 * are not taken here.
 *
 * The arithmetic is the int8 decode's (glmv_dot_q8x_ref): x rounded to int8 per block of 32 as the
 * CPU rounds it, each block's product an exact integer sum, scaled by the weight's and x's scales
 * and added in float. The integer sums come from mma.sync m16n8k32 (s8 x s8 -> s32): a k of 32 is
 * one block, so each mma gives the 16 x 8 block products of 16 weight rows (the A operand) and 8
 * rows of x (B) at once; the int32 sums become floats exactly (|sum| < 2^22: a magic-number add,
 * two instructions, where cvt runs at a quarter of the FP32 rate) before their scales.
 *
 * A block of 8 warps takes 32 RW weight rows: RW warps along the rows (32 rows, two 16-row tiles
 * each) times 8 / RW along k (warp kw takes blocks kw, kw + 8 / RW, ... of 32). The warps along k
 * add their sums through shared memory in a fixed order. Warps of one k read the same rows of x,
 * which L1 then holds for the block, so x costs m / (32 RW) of the weights' bytes (Q8_0) from L2.
 * Where even RW = 1 leaves too few blocks to fill the GPU, k is split over S blocks as well, each
 * writing its partial sums; the last of the S to finish (a counter a row tile) adds them in split
 * order and writes y. RW and S depend on n, k and the GPU alone (mmq_shape), so each output is
 * summed in the same order whatever m is: a row of x gives the same floats beside 8 other rows or
 * 63 (test_cuda matmul_mmq).
 *
 * The weights stream through a ring of stages in shared memory per warp (cp.async, 16 bytes a
 * copy, past L1): 7 (Q8_0) or 11 (Q4_0) blocks of 32 in flight a warp without holding registers,
 * about 56 KB a multiprocessor. A register version with two blocks in flight a warp streamed at
 * 1.1 TB/s on an H100 (the loads' latency, not the arithmetic, bounds this kernel).
 * Fragments: lane (g, q) = (lane / 4, lane % 4) reads, for each block of 32, bytes 8q .. 8q + 7 of
 * weight rows g and g + 8 of each tile and of x row g (Q8_0: the mma's k order is then a
 * permutation of the block's, the same for A and B, and a block's sum does not depend on it), or
 * Q4_0's bytes 4q .. 4q + 3, whose low and high nibbles are the block's elements 4q.. and
 * 16 + 4q.., the mma's own order. */
#include "cuda/cuda_impl.h"

#define MQ_THREADS 256
#define MQ_WARPS 8
#define MQ_MAX_S 16  /* k splits at most */

__device__ __forceinline__ void mq_mma(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%10,%10,%10};\n"
                 : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(0));
}

/* an integer of magnitude below 2^22 as a float, exactly: 1.5·2^23 + i has i as its low bits */
__device__ __forceinline__ float mq_i2f(int i) { return __int_as_float(i + 0x4B400000) - 12582912.0f; }

/* Q4_0's nibbles (0..15) of a word, minus 8, as four signed bytes */
__device__ __forceinline__ uint32_t mq_lo(uint32_t w) { return __vsub4(w & 0x0F0F0F0Fu, 0x08080808u); }
__device__ __forceinline__ uint32_t mq_hi(uint32_t w) { return __vsub4((w >> 4) & 0x0F0F0F0Fu, 0x08080808u); }

/* x [m, k] -> int8 xq [m, k] and the scales transposed, xdt [k/32, ms] (ms >= m; the columns past m
 * zero): a warp a block of 32, as quant_x_kernel rounds (q8_round_lane) */
__global__ void mq_quant_x_kernel(int8_t *xq, float *xdt, const float *x, int64_t m, int64_t ms, int64_t nb) {
    PDL_ENTRY();
    const int64_t i = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (i >= ms * nb) return;
    const int lane = threadIdx.x & 31;
    const int64_t r = i / nb, b = i % nb;
    if (r >= m) {
        if (lane == 0) xdt[b * ms + r] = 0.f;
        return;
    }
    float d;
    const int qi = q8_round_lane(x[r * nb * 32 + b * 32 + lane], &d);
    xq[r * nb * 32 + b * 32 + lane] = (int8_t)qi;
    if (lane == 0) xdt[b * ms + r] = d;
}

/* A warp's weights stream through its own ring of D stages in shared memory (cp.async, no
 * registers held while in flight): a stage is one block of 32 of its 32 rows (32 x 32 bytes of
 * Q8_0, 32 x 16 of Q4_0) and each row's scale, as the 4-byte word that holds it. */
template <int Q4> struct mq_ring {
    static constexpr int WB = Q4 ? 16 : 32;      /* a row's bytes of a block */
    static constexpr int STAGE = 32 * WB + 32 * 4;
    static constexpr int D = Q4 ? 12 : 8;        /* stages: D - 1 blocks in flight */
    static constexpr int BYTES = MQ_WARPS * D * STAGE;
};

__device__ __forceinline__ void cp16(uint32_t dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void cp4(uint32_t dst, const void *src) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* lane's copies of block b into the stage at dst (shared address): Q8_0 rows lane/2 and 16 + lane/2,
 * half lane%2 of each; Q4_0 row lane; and row lane's scale word */
template <int Q4>
__device__ __forceinline__ void mq_issue(uint32_t dst, const uint8_t *const (&src)[2], const uint8_t *sc, int64_t b,
                                         int lane) {
    using R = mq_ring<Q4>;
    if (Q4) {
        cp16(dst + lane * 16, src[0] + b * 16);
    } else {
        cp16(dst + (lane >> 1) * 32 + (lane & 1) * 16, src[0] + b * 32);
        cp16(dst + (16 + (lane >> 1)) * 32 + (lane & 1) * 16, src[1] + b * 32);
    }
    cp4(dst + 32 * R::WB + lane * 4, (const void *)((uintptr_t)(sc + 2 * b) & ~(uintptr_t)3));
}

/* NT tiles of 8 rows of x (ms = 8 NT); RW warps along the rows (32 rows each), 8 / RW along k;
 * grid (row tiles of 32 RW, S). part [S, m, n] and cnt [row tiles] only where S > 1. Dynamic shared
 * memory: mq_ring<Q4>::BYTES. */
template <int NT, int Q4, int RW>
__global__ void __launch_bounds__(MQ_THREADS, 1)
    mmq_kernel(float *__restrict__ y, const int8_t *__restrict__ xq, const float *__restrict__ xdt,
               const uint8_t *__restrict__ qs, const __half *__restrict__ dw, const void *bias, int bdt, int64_t m,
               int64_t n, int64_t k, float *part, int *cnt) {
    using R = mq_ring<Q4>;
    constexpr int KW = MQ_WARPS / RW;
    constexpr int64_t ms = 8 * NT;
    extern __shared__ __align__(16) uint8_t mq_smem[];
    __shared__ int last;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int rw = warp % RW, kw = warp / RW;
    const int64_t nb = k / 32, S = gridDim.y, split = blockIdx.y, rb = Q4 ? k / 2 : k;
    const int64_t kb0 = nb * split / S, kb1 = nb * (split + 1) / S;
    const int64_t tile0 = (int64_t)blockIdx.x * 32 * RW, row0 = tile0 + 32 * rw;
    /* what this lane copies (rows past n: row n - 1, never stored) */
    const uint8_t *src[2];
    if (Q4) src[0] = src[1] = qs + GLMV_MIN(row0 + lane, n - 1) * rb;
    else {
        src[0] = qs + GLMV_MIN(row0 + (lane >> 1), n - 1) * rb + (lane & 1) * 16;
        src[1] = qs + GLMV_MIN(row0 + 16 + (lane >> 1), n - 1) * rb + (lane & 1) * 16;
    }
    const uint8_t *sc = (const uint8_t *)(dw + GLMV_MIN(row0 + lane, n - 1) * nb);
    /* and what it reads: rows 16 t + 8 h + g of its warp, their scales' offsets' parity */
    int64_t srow[2][2];
#pragma unroll
    for (int t = 0; t < 2; t++)
#pragma unroll
        for (int h = 0; h < 2; h++) srow[t][h] = GLMV_MIN(row0 + 16 * t + 8 * h + g, n - 1) * nb;
    const uint32_t ring = (uint32_t)__cvta_generic_to_shared(mq_smem) + warp * R::D * R::STAGE;
    const uint8_t *ringp = mq_smem + warp * R::D * R::STAGE;
    const int8_t *xp[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) xp[j] = xq + GLMV_MIN((int64_t)(8 * j + g), m - 1) * k;
    float acc[2][NT][4];
#pragma unroll
    for (int t = 0; t < 2; t++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[t][j][e] = 0.f;
    /* the warp's blocks: kb0 + kw + i KW for i < nblk */
    const int64_t first = kb0 + kw, nblk = first < kb1 ? (kb1 - first + KW - 1) / KW : 0;
#pragma unroll
    for (int i = 0; i < R::D - 1; i++) { /* weights before waiting for the kernel that wrote x */
        if (i < nblk) mq_issue<Q4>(ring + i * R::STAGE, src, sc, first + (int64_t)i * KW, lane);
        cp_commit();
    }
    PDL_ENTRY();
    for (int64_t i = 0; i < nblk; i++) {
        const int64_t nx = i + R::D - 1; /* into the stage read last time round */
        if (nx < nblk) mq_issue<Q4>(ring + (int)(nx % R::D) * R::STAGE, src, sc, first + nx * KW, lane);
        cp_commit();
        cp_wait<R::D - 1>(); /* block i is here (this lane's copies) */
        __syncwarp();         /* and the other lanes' */
        const int64_t b = first + i * KW;
        const uint8_t *st = ringp + (int)(i % R::D) * R::STAGE;
        uint32_t a[2][4]; /* the A fragments of the two tiles */
        float d[2][2];
#pragma unroll
        for (int t = 0; t < 2; t++) {
            const int r0 = 16 * t + g, r1 = r0 + 8;
            if (Q4) {
                const uint32_t w0 = *(const uint32_t *)(st + r0 * 16 + 4 * q), w1 = *(const uint32_t *)(st + r1 * 16 + 4 * q);
                a[t][0] = mq_lo(w0), a[t][1] = mq_lo(w1), a[t][2] = mq_hi(w0), a[t][3] = mq_hi(w1);
            } else {
                const uint2 w0 = *(const uint2 *)(st + r0 * 32 + 8 * q), w1 = *(const uint2 *)(st + r1 * 32 + 8 * q);
                a[t][0] = w0.x, a[t][1] = w1.x, a[t][2] = w0.y, a[t][3] = w1.y;
            }
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const uint32_t wv = *(const uint32_t *)(st + 32 * R::WB + (r0 + 8 * h) * 4);
                const unsigned short hv = (unsigned short)(((srow[t][h] + b) & 1) ? wv >> 16 : wv & 0xFFFFu);
                d[t][h] = __half2float(__ushort_as_half(hv));
            }
        }
        __syncwarp(); /* every lane has read the stage before any refills it */
#pragma unroll
        for (int j = 0; j < NT; j++) {
            uint32_t x0, x1;
            if (Q4) {
                x0 = *(const uint32_t *)(xp[j] + b * 32 + 4 * q);
                x1 = *(const uint32_t *)(xp[j] + b * 32 + 16 + 4 * q);
            } else {
                const uint2 v = *(const uint2 *)(xp[j] + b * 32 + 8 * q);
                x0 = v.x, x1 = v.y;
            }
            const float2 sx = *(const float2 *)(xdt + b * ms + 8 * j + 2 * q);
#pragma unroll
            for (int t = 0; t < 2; t++) {
                int c[4];
                mq_mma(c, a[t][0], a[t][1], a[t][2], a[t][3], x0, x1);
                acc[t][j][0] += d[t][0] * sx.x * mq_i2f(c[0]);
                acc[t][j][1] += d[t][0] * sx.y * mq_i2f(c[1]);
                acc[t][j][2] += d[t][1] * sx.x * mq_i2f(c[2]);
                acc[t][j][3] += d[t][1] * sx.y * mq_i2f(c[3]);
            }
        }
    }
    cp_wait<0>();
    __syncthreads(); /* the rings are free: the k warps' sums go through that memory */
    float(*red)[NT * 8][32] = (float(*)[NT * 8][32])mq_smem; /* [warp][x row][row] */
    /* the k warps' sums, halving: k warp i adds i + half's (an order fixed by KW alone); C fragment
     * (g, 2q + e) and (g + 8, 2q + e) */
#pragma unroll
    for (int half = KW / 2; half >= 1; half /= 2) {
        if (kw >= half && kw < 2 * half)
#pragma unroll
            for (int t = 0; t < 2; t++)
#pragma unroll
                for (int j = 0; j < NT; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        red[(kw - half) * RW + rw][8 * j + 2 * q + (e & 1)][16 * t + g + 8 * (e >> 1)] = acc[t][j][e];
        __syncthreads();
        if (kw < half)
#pragma unroll
            for (int t = 0; t < 2; t++)
#pragma unroll
                for (int j = 0; j < NT; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        acc[t][j][e] += red[kw * RW + rw][8 * j + 2 * q + (e & 1)][16 * t + g + 8 * (e >> 1)];
        __syncthreads();
    }
    if (S > 1) { /* this split's sums, then the last split of the tile adds them all, in split order */
        if (kw == 0)
#pragma unroll
            for (int t = 0; t < 2; t++)
#pragma unroll
                for (int j = 0; j < NT; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int64_t r = row0 + 16 * t + g + 8 * (e >> 1), xr = 8 * j + 2 * q + (e & 1);
                        if (r < n && xr < m) part[(split * m + xr) * n + r] = acc[t][j][e];
                    }
        __threadfence();
        __syncthreads();
        if (threadIdx.x == 0) last = atomicAdd(&cnt[blockIdx.x], 1) == S - 1;
        __syncthreads();
        if (!last) return;
        __threadfence();
        /* every thread of the block: outputs along the rows, S loads in flight each */
        for (int64_t i = threadIdx.x; i < 32 * RW * m; i += MQ_THREADS) {
            const int64_t r = tile0 + i % (32 * RW), xr = i / (32 * RW);
            if (r >= n) continue;
            float v[MQ_MAX_S];
#pragma unroll
            for (int p = 0; p < MQ_MAX_S; p++) v[p] = p < S ? __ldcg(part + (p * m + xr) * n + r) : 0.f;
            float sum = 0.f;
#pragma unroll
            for (int p = 0; p < MQ_MAX_S; p++)
                if (p < S) sum += v[p];
            y[xr * n + r] = sum + (bias ? ldw_any(bias, bdt, r) : 0.f);
        }
        if (threadIdx.x == 0) cnt[blockIdx.x] = 0; /* ready for the next product */
        return;
    }
    if (kw != 0) return;
#pragma unroll
    for (int t = 0; t < 2; t++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int64_t r = row0 + 16 * t + 8 * h + g;
            if (r >= n) continue;
            const float bv = bias ? ldw_any(bias, bdt, r) : 0.f;
#pragma unroll
            for (int j = 0; j < NT; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int64_t xr = 8 * j + 2 * q + e;
                    if (xr < m) y[xr * n + r] = acc[t][j][2 * h + e] + bv;
                }
        }
}

/* rows of x at most, and at least (fewer: quant.cu's matrix-vector kernels). GLMV_CUDA_MMQ=0 leaves
 * the rows to those kernels (up to 16) and to the prompt path; GLMV_CUDA_MMQ_MAX=m moves the upper
 * bound (rows beyond 64 go in passes of 64, each reading the weights again). 64: at 128 rows two
 * passes took 1.4x the prompt path's time over a 9B layer's products on an H100, at 64 rows 0.7x. */
#define MMQ_MIN_M (GEMV_MAX_M + 1)
static int mmq_max_m(void) {
    static int v = -1;
    if (v < 0) {
        const char *s = getenv("GLMV_CUDA_MMQ"), *mx = getenv("GLMV_CUDA_MMQ_MAX");
        v = s && !strcmp(s, "0") ? 0 : mx ? atoi(mx) : 64;
        if (v < 0) v = 0;
    }
    return v;
}

/* The block shape (RW warps along the rows) and the k splits S for an [n, k] matrix: the widest
 * block that still gives a block to every multiprocessor (fewer, wider blocks read x fewer times),
 * and k split only where even 32-row blocks leave half the multiprocessors idle (splits cost their
 * partial sums' traffic). On an H100 (test_cuda --bench-quant, RW fixed to 1, 2, 4): gate/up
 * (27,392 rows) was fastest with 4 (214 blocks), o and down (4,096 rows) with 1, and splitting
 * gate/up three ways cost it 10-25 %. Depends on n, k and the GPU alone (the summation order must
 * not depend on m). GLMV_CUDA_MMQ_RW=1|2|4 fixes RW, to compare. */
static void mmq_shape(cuda_ctx *c, int64_t n, int64_t k, int *rw_out, int64_t *s_out) {
    static int force = -1;
    if (force < 0) {
        force = getenv("GLMV_CUDA_MMQ_RW") ? atoi(getenv("GLMV_CUDA_MMQ_RW")) : 0;
        if (force != 1 && force != 2 && force != 4) force = 0; /* anything else: the rule below */
    }
    const int64_t nb = k / 32, sms = c->sms;
    int rw = force ? force : 4;
    while (!force && rw > 1 && cdiv(n, 32 * rw) < sms) rw /= 2;
    const int64_t tiles = cdiv(n, 32 * rw);
    int64_t s = 1;
    if (2 * tiles < sms && tiles <= MMQ_COUNTERS)
        s = GLMV_MAX((int64_t)1, GLMV_MIN(GLMV_MIN((int64_t)MQ_MAX_S, nb / (4 * (MQ_WARPS / rw))), cdiv(sms, tiles)));
    *rw_out = rw;
    *s_out = s;
}

template <int NT, int Q4>
static void mmq_launch(cuda_ctx *c, float *y, const int8_t *xq, const float *xdt, const glmv_tensor *w,
                       const glmv_tensor *bias, int64_t m, int rw, int64_t S, float *part) {
    const int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    const uint8_t *qs = (const uint8_t *)w->data;
    const __half *d = (const __half *)(qs + quant_scales_offset(w->dtype, n, k));
    const void *bp = bias ? bias->data : NULL;
    const int bdt = bias ? (int)bias->dtype : 0;
    const dim3 grid(cdiv(n, 32 * rw), (unsigned)S);
    constexpr int smem = mq_ring<Q4>::BYTES;
    static_assert(smem >= (MQ_WARPS / 2) * NT * 8 * 32 * 4, "the k warps' sums go through the rings' memory");
    void (*kern)(float *, const int8_t *, const float *, const uint8_t *, const __half *, const void *, int, int64_t,
                 int64_t, int64_t, float *, int *) = rw == 1   ? mmq_kernel<NT, Q4, 1>
                                                     : rw == 2 ? mmq_kernel<NT, Q4, 2>
                                                               : mmq_kernel<NT, Q4, 4>;
    static int ready[3]; /* the shared memory beyond 48 KB, asked for once a kernel */
    int *rd = &ready[rw == 1 ? 0 : rw == 2 ? 1 : 2];
    if (!*rd) {
        cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (e != cudaSuccess) {
            cuda_fail(c, "matmul (quantized, tensor cores): shared memory", e);
            return;
        }
        *rd = 1;
    }
    cuda_launch(c, kern, grid, MQ_THREADS, smem, y, xq, xdt, qs, d, bp, bdt, m, n, k, part, c->mmq_cnt);
}

template <int Q4>
static void mmq_pass(cuda_ctx *c, float *y, const int8_t *xq, const float *xdt, const glmv_tensor *w,
                     const glmv_tensor *bias, int64_t m, int rw, int64_t S, float *part) {
    switch ((m + 7) / 8) {
    case 1: mmq_launch<1, Q4>(c, y, xq, xdt, w, bias, m, rw, S, part); break;
    case 2: mmq_launch<2, Q4>(c, y, xq, xdt, w, bias, m, rw, S, part); break;
    case 3: mmq_launch<3, Q4>(c, y, xq, xdt, w, bias, m, rw, S, part); break;
    case 4: mmq_launch<4, Q4>(c, y, xq, xdt, w, bias, m, rw, S, part); break;
    case 5: mmq_launch<5, Q4>(c, y, xq, xdt, w, bias, m, rw, S, part); break;
    case 6: mmq_launch<6, Q4>(c, y, xq, xdt, w, bias, m, rw, S, part); break;
    case 7: mmq_launch<7, Q4>(c, y, xq, xdt, w, bias, m, rw, S, part); break;
    default: mmq_launch<8, Q4>(c, y, xq, xdt, w, bias, m, rw, S, part); break;
    }
}

int k_mmq(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w, const glmv_tensor *bias, int64_t m) {
    const int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    if ((w->dtype != GLMV_Q8_0 && w->dtype != GLMV_Q4_0) || m < MMQ_MIN_M || m > mmq_max_m() || k % 32 ||
        n <= 0 || !c->mmq_cnt)
        return 1;
    const int64_t nb = k / 32, pm = GLMV_MIN(m, (int64_t)64);
    int rw = 1;
    int64_t S = 1;
    mmq_shape(c, n, k, &rw, &S);
    /* int8 x [m, k], then each pass's transposed scales [nb, 64], then the partial sums [S, 64, n] */
    const size_t a = ((size_t)(m * k) + 255) & ~(size_t)255, b = ((size_t)(nb * 64) * 4 + 255) & ~(size_t)255;
    const size_t passes = (size_t)cdiv(m, 64), pbytes = S > 1 ? (size_t)(S * pm * n) * 4 : 0;
    char *s = (char *)cuda_grow(c, &c->qx, &c->qx_bytes, a + passes * b + pbytes,
                                GLMV_MAX(a + passes * b + pbytes, (size_t)1 << 20),
                                "out of device memory for quantized activations");
    if (!s) return 0; /* the error is recorded */
    int8_t *xq = (int8_t *)s;
    float *part = S > 1 ? (float *)(s + a + passes * b) : NULL;
    for (int64_t r0 = 0; r0 < m; r0 += 64) {
        const int64_t mm = GLMV_MIN((int64_t)64, m - r0), ms = 8 * ((mm + 7) / 8);
        float *xdt = (float *)(s + a + (size_t)(r0 / 64) * b);
        cuda_launch(c, mq_quant_x_kernel, cdiv(ms * nb, 8), 256, 0, xq + r0 * k, xdt, x + r0 * k, mm, ms, nb);
        if (w->dtype == GLMV_Q4_0) mmq_pass<1>(c, y + r0 * n, xq + r0 * k, xdt, w, bias, mm, rw, S, part);
        else mmq_pass<0>(c, y + r0 * n, xq + r0 * k, xdt, w, bias, mm, rw, S, part);
    }
    cuda_check(c, "matmul (quantized, tensor cores)");
    return 0;
}
