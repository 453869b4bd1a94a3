/* gemv.cu -- y[m, n] = x[m, k] · wᵀ (+ bias) for the few rows of decode, at
 * the speed of memory, and a plain tiled GEMM for weights that are not BF16.
 *
 * gemv_kernel: BF16 weights, fp32 activations and accumulation. Each output
 * row is one warp's work (or a whole block's, split over k, when there are
 * too few rows to fill the GPU); a lane loads 16 bytes (8 weights) per step,
 * four steps in flight, and reuses each weight for all m (<= 8) input rows,
 * which are read from global memory (they stay in L1: the weights are loaded
 * past it, ld_stream). The weight is read exactly once, so the time is bytes /
 * bandwidth.
 *
 * gemm_simt_kernel: 64x64 tiles through shared memory, fp32 FMA; for F32 and
 * F16 weights (test fixtures), any m. Not tuned. */
#include "cuda/cuda_impl.h"

#include <string.h>

#define GEMV_THREADS 256

/* acc[r] += this lane's share of x[r] · w over the 16-byte words j0, j0 + stride, ... < k8 of
 * one weight row (w4), U words in flight; the first U loads go out before waiting for the
 * previous kernel (PDL_ENTRY inside): weights are constant, only x comes from it */
template <int M, int U>
__device__ __forceinline__ void gemv_stream(float (&acc)[M], const float *__restrict__ x, const uint4 *w4,
                                            int64_t k8, int64_t k, int64_t j, int stride) {
    uint4 u[U];
#pragma unroll
    for (int s = 0; s < U; s++)
        u[s] = j + s * stride < k8 ? ld_stream(w4 + j + s * stride) : make_uint4(0, 0, 0, 0);
    PDL_ENTRY();
    for (;;) {
#pragma unroll
        for (int s = 0; s < U; s++) {
            const int64_t jj = j + s * stride;
            if (jj < k8) {
                float f[8];
                bf16x8(u[s], f);
#pragma unroll
                for (int r = 0; r < M; r++) {
                    const float4 *xr = (const float4 *)(x + r * k) + 2 * jj;
                    float4 a = xr[0], b = xr[1];
                    acc[r] += f[0] * a.x + f[1] * a.y + f[2] * a.z + f[3] * a.w +
                              f[4] * b.x + f[5] * b.y + f[6] * b.z + f[7] * b.w;
                }
            }
        }
        j += (int64_t)U * stride;
        if (j >= k8) break;
#pragma unroll
        for (int s = 0; s < U; s++)
            u[s] = j + s * stride < k8 ? ld_stream(w4 + j + s * stride) : make_uint4(0, 0, 0, 0);
    }
}

/* WPR warps per output row (1 or 8); U 16-byte loads in flight per lane.
 * vec: k % 8 == 0 and w, x 16-byte aligned. */
/* (__launch_bounds__ with a minimum of 1 block a multiprocessor: ptxas then gives the M = 1
 * kernel 102 registers instead of 64, two blocks a multiprocessor instead of four, and a 9B
 * decode step took 7.55 ms instead of 7.95 on an H100, glmv bench, alternating) */
template <int M, int WPR, int U>
__global__ void __launch_bounds__(GEMV_THREADS, 1) gemv_kernel(float *__restrict__ y,
                                                            const float *__restrict__ x,
                                                            const __nv_bfloat16 *__restrict__ w,
                                                            const void *bias, int bdt, int64_t n,
                                                            int64_t k, int vec) {
    constexpr int WARPS = GEMV_THREADS / 32, ROWS = WARPS / WPR;
    __shared__ float red[WARPS][M];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * ROWS + warp / WPR;
    const int part = warp % WPR; /* which slice of k this warp takes */
    float acc[M];
#pragma unroll
    for (int r = 0; r < M; r++) acc[r] = 0.f;
    if (vec) {
        const uint4 *w4 = (const uint4 *)(w + (row < n ? row : 0) * k);
        gemv_stream<M, U>(acc, x, w4, row < n ? k / 8 : 0, k, (int64_t)part * 32 + lane, 32 * WPR);
    } else {
        PDL_ENTRY();
        if (row < n) {
            const __nv_bfloat16 *wr = w + row * k;
            for (int64_t j = (int64_t)part * 32 + lane; j < k; j += 32 * WPR) {
                float f = __bfloat162float(wr[j]);
#pragma unroll
                for (int r = 0; r < M; r++) acc[r] += f * x[r * k + j];
            }
        }
    }
    gemv_finish<M, WPR>(acc, red, warp, lane, part, row, n, bias, bdt, y);
}

/* h[r, j] = silu(g) * u for g = x[r] · w[j], u = x[r] · w[I + j] (w: [gate | up], 2I rows, no bias):
 * warps 0-3 of a block take gate rows 4b .. 4b + 3, warps 4-7 the same up rows, each row as
 * gemv_kernel<M, 1, U> sums it (so the same floats as that product), and the SwiGLU is
 * swiglu_kernel's silu_mul: bit for bit the product and then the SwiGLU. vec only. */
template <int M, int U>
__global__ void __launch_bounds__(GEMV_THREADS, 1) gemv_glu_kernel(float *__restrict__ h,
                                                                const float *__restrict__ x,
                                                                const __nv_bfloat16 *__restrict__ w, int64_t I,
                                                                int64_t k) {
    __shared__ float up[4][M];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t j = (int64_t)blockIdx.x * 4 + (warp & 3); /* the output column */
    const bool ok = j < I;
    const int64_t row = (warp >= 4 ? I : 0) + (ok ? j : 0);
    float acc[M];
#pragma unroll
    for (int r = 0; r < M; r++) acc[r] = 0.f;
    gemv_stream<M, U>(acc, x, (const uint4 *)(w + row * k), ok ? k / 8 : 0, k, lane, 32);
    glu_finish<M>(acc, up, warp, lane, ok, h, I, j);
}

template <int M>
static void gemv_launch(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w,
                        const glmv_tensor *bias, int64_t n, int64_t k, int vec) {
    const void *bp = bias ? bias->data : NULL;
    int bdt = bias ? bias->dtype : 0;
    const __nv_bfloat16 *wp = (const __nv_bfloat16 *)w->data;
    /* one warp per row fills the GPU from about 4 rows per multiprocessor */
    constexpr int U = M == 1 ? 8 : 4; /* more bytes in flight when x is one row */
    if (n >= 8 * (int64_t)c->sms)
        cuda_launch(c, gemv_kernel<M, 1, U>, cdiv(n, 8), GEMV_THREADS, 0, y, x, wp, bp, bdt, n, k,
                    vec);
    else
        cuda_launch(c, gemv_kernel<M, 8, U>, (unsigned)n, GEMV_THREADS, 0, y, x, wp, bp, bdt, n,
                    k, vec);
}

void k_gemv(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w, const glmv_tensor *bias,
            int64_t m) {
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    if (m <= 0 || n <= 0) return;
    int vec = !(k & 7) && !((uintptr_t)w->data % 16) && !((uintptr_t)x % 16);
    switch (m) {
    case 1: gemv_launch<1>(c, y, x, w, bias, n, k, vec); break;
    case 2: gemv_launch<2>(c, y, x, w, bias, n, k, vec); break;
    case 3: gemv_launch<3>(c, y, x, w, bias, n, k, vec); break;
    case 4: gemv_launch<4>(c, y, x, w, bias, n, k, vec); break;
    case 5: gemv_launch<5>(c, y, x, w, bias, n, k, vec); break;
    case 6: gemv_launch<6>(c, y, x, w, bias, n, k, vec); break;
    case 7: gemv_launch<7>(c, y, x, w, bias, n, k, vec); break;
    default: gemv_launch<8>(c, y, x, w, bias, n, k, vec); break;
    }
    cuda_check(c, "matmul (gemv)");
}

template <int M>
static void glu_launch(cuda_ctx *c, float *h, const float *x, const __nv_bfloat16 *w, int64_t I, int64_t k) {
    constexpr int U = M == 1 ? 8 : 4;
    cuda_launch(c, gemv_glu_kernel<M, U>, cdiv(I, 4), GEMV_THREADS, 0, h, x, w, I, k);
}

int k_gemv_glu(cuda_ctx *c, float *h, const float *x, const glmv_tensor *w, int64_t m) {
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w), I = n / 2;
    if (m <= 0 || m > GEMV_MAX_M || w->dtype != GLMV_BF16 || n % 2 || I <= 0 || (k & 7) || (uintptr_t)w->data % 16 ||
        (uintptr_t)x % 16 || cdiv(I, 4) > INT32_MAX)
        return 1;
    const __nv_bfloat16 *wp = (const __nv_bfloat16 *)w->data;
    switch (m) {
    case 1: glu_launch<1>(c, h, x, wp, I, k); break;
    case 2: glu_launch<2>(c, h, x, wp, I, k); break;
    case 3: glu_launch<3>(c, h, x, wp, I, k); break;
    case 4: glu_launch<4>(c, h, x, wp, I, k); break;
    case 5: glu_launch<5>(c, h, x, wp, I, k); break;
    case 6: glu_launch<6>(c, h, x, wp, I, k); break;
    case 7: glu_launch<7>(c, h, x, wp, I, k); break;
    default: glu_launch<8>(c, h, x, wp, I, k); break;
    }
    cuda_check(c, "matmul + swiglu (gemv)");
    return 0;
}

/* ------------------------------------------------------------ simt gemm */

#define SG_T 64
#define SG_K 16

__global__ void __launch_bounds__(256) gemm_simt_kernel(float *y, const float *x, const void *w,
                                                        int wdt, const void *bias, int bdt,
                                                        int64_t m, int64_t n, int64_t k) {
    PDL_ENTRY();
    __shared__ float xs[SG_K][SG_T + 1];
    __shared__ float ws[SG_K][SG_T + 1];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int64_t i0 = (int64_t)blockIdx.y * SG_T, o0 = (int64_t)blockIdx.x * SG_T;
    float acc[4][4] = {};
    for (int64_t k0 = 0; k0 < k; k0 += SG_K) {
        for (int e = threadIdx.x; e < SG_K * SG_T; e += 256) {
            int r = e / SG_K, kk = e % SG_K;
            int64_t kj = k0 + kk;
            xs[kk][r] = (i0 + r < m && kj < k) ? x[(i0 + r) * k + kj] : 0.f;
            ws[kk][r] = (o0 + r < n && kj < k) ? ldw_any(w, wdt, (o0 + r) * k + kj) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < SG_K; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                a[i] = xs[kk][ty + 16 * i];
                b[i] = ws[kk][tx + 16 * i];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int64_t r = i0 + ty + 16 * i, o = o0 + tx + 16 * j;
            if (r < m && o < n) y[r * n + o] = acc[i][j] + (bias ? ldw_any(bias, bdt, o) : 0.f);
        }
}

void k_gemm_simt(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w,
                 const glmv_tensor *bias, int64_t m) {
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    if (m <= 0 || n <= 0) return;
    for (int64_t r0 = 0; r0 < m; r0 += (int64_t)SG_T * 65535) {
        int64_t mm = m - r0 < (int64_t)SG_T * 65535 ? m - r0 : (int64_t)SG_T * 65535;
        dim3 grid(cdiv(n, SG_T), cdiv(mm, SG_T));
        cuda_launch(c, gemm_simt_kernel, grid, 256, 0, y + r0 * n, x + r0 * k, w->data, w->dtype,
                                                      bias ? bias->data : NULL,
                                                      bias ? bias->dtype : 0, mm, n, k);
    }
    cuda_check(c, "matmul (simt)");
}

/* ----------------------------------------------------------- skinny gemm */

/* skinny_kernel: y[m, n] = xb[m, k] · W[n, k]ᵀ (+ bias) for the decode rows of several streams
 * (GEMV_MAX_M < m <= SKINNY_MAX_M), x in bf16, on the tensor cores (mma.sync m16n8k16, fp32
 * accumulate): the weights are the A operand (16 weight rows a tile), x the B operand (8 rows of
 * x a tile), so the weights stream once from memory however many rows x has, and no split-K
 * reduction or bias fill runs as a kernel of its own.
 *
 * A block takes 16 MT weight rows (MT 1 or 2); its 8 warps take the k chunks of 32 in turn (warp w:
 * chunks w, w + 8, ...). In a chunk, lane (g, q) = (lane / 4, lane % 4) loads 16 bytes of weight
 * rows g and g + 8 of each 16-row tile and of x row g of each 8-row tile, all at columns
 * 8q .. 8q + 7: one load a row instead of the mma layout's four pieces. The mma's k order is
 * then a permutation of the chunk's (its k 2q, 2q+1 / 2q+8, 2q+9 are columns 8q+0,1 / 8q+2,3 for
 * the first mma, 8q+4,5 / 8q+6,7 for the second), the same for A and B, so each product is the
 * chunk's sum. The loads of a warp's next U chunks go out before the current ones are multiplied. The
 * warps' sums are added in warp order through shared memory, then the bias.
 *
 * Every output is summed in an order that depends on k alone, not on m: a row of x gives the same
 * floats whether it comes with 8 others or 15 (test_cuda matmul_skinny). Below 9 rows the fp32
 * matrix-vector kernel takes them and above 16 cuBLAS, so batch invariance holds within 9-16. */
#define SK_WARPS 8

__device__ __forceinline__ void sk_mma(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                       uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <int MT, int NT, int U>
struct sk_regs {
    uint4 w[U][MT][2]; /* weight rows g and g + 8 of each 16-row tile */
    uint4 x[U][NT];       /* x row g of each 8-row tile */
};

/* chunk c0 + 8u for u < U: the weights (sk_load_w) or the rows of x (sk_load_x); zeros past the
 * chunks */
template <int MT, int NT, int U>
__device__ __forceinline__ void sk_load_w(sk_regs<MT, NT, U> &r, const __nv_bfloat16 *const (&wp)[MT][2],
                                          int64_t c0, int64_t nc) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int64_t c = c0 + (int64_t)u * SK_WARPS;
#pragma unroll
        for (int t = 0; t < MT; t++)
#pragma unroll
            for (int h = 0; h < 2; h++)
                r.w[u][t][h] = c < nc && wp[t][h] ? ld_stream(wp[t][h] + 32 * c) : make_uint4(0, 0, 0, 0);
    }
}
template <int MT, int NT, int U>
__device__ __forceinline__ void sk_load_x(sk_regs<MT, NT, U> &r, const __nv_bfloat16 *const (&xp)[NT], int64_t c0,
                                          int64_t nc) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int64_t c = c0 + (int64_t)u * SK_WARPS;
#pragma unroll
        for (int j = 0; j < NT; j++)
            r.x[u][j] = c < nc && xp[j] ? *(const uint4 *)(xp[j] + 32 * c) : make_uint4(0, 0, 0, 0);
    }
}
template <int MT, int NT, int U>
__device__ __forceinline__ void sk_mul(float (&acc)[MT][NT][4], const sk_regs<MT, NT, U> &r) {
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
        for (int t = 0; t < MT; t++)
#pragma unroll
            for (int j = 0; j < NT; j++) {
                const uint4 &a = r.w[u][t][0], &b = r.w[u][t][1], &x = r.x[u][j];
                sk_mma(acc[t][j], a.x, b.x, a.y, b.y, x.x, x.y);
                sk_mma(acc[t][j], a.z, b.z, a.w, b.w, x.z, x.w);
            }
}
/* one step of the pipeline: the loads of the chunks after *c into nxt, then cur multiplied;
 * 1 when the warp's chunks are done */
template <int MT, int NT, int U>
__device__ __forceinline__ int sk_step(float (&acc)[MT][NT][4], const sk_regs<MT, NT, U> &cur, sk_regs<MT, NT, U> &nxt,
                                       const __nv_bfloat16 *const (&wp)[MT][2], const __nv_bfloat16 *const (&xp)[NT],
                                       int64_t *c, int64_t nc) {
    const int64_t step = (int64_t)U * SK_WARPS;
    if (*c + step < nc) {
        sk_load_w(nxt, wp, *c + step, nc);
        sk_load_x(nxt, xp, *c + step, nc);
    }
    sk_mul(acc, cur);
    *c += step;
    return *c >= nc;
}

template <int MT, int NT, int U>
__global__ void __launch_bounds__(SK_WARPS * 32) skinny_kernel(float *__restrict__ y,
                                                                const __nv_bfloat16 *__restrict__ xb,
                                                                const __nv_bfloat16 *__restrict__ w,
                                                                const void *bias, int bdt, int64_t m,
                                                                int64_t n, int64_t k) {
    constexpr int ROWS = 16 * MT;
    __shared__ float red[SK_WARPS][8][ROWS];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int64_t row0 = (int64_t)blockIdx.x * ROWS, nc = k / 32;
    const __nv_bfloat16 *wp[MT][2];
#pragma unroll
    for (int t = 0; t < MT; t++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int64_t r = row0 + 16 * t + 8 * h + g;
            wp[t][h] = r < n ? w + r * k + 8 * q : NULL;
        }
    const __nv_bfloat16 *xp[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) xp[j] = 8 * j + g < m ? xb + (8 * j + g) * k + 8 * q : NULL;
    float acc[MT][NT][4];
#pragma unroll
    for (int t = 0; t < MT; t++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[t][j][e] = 0.f;
    /* two register sets: the loads of one go out while the other is multiplied; the weights'
     * first loads before waiting for the kernel that wrote x */
    sk_regs<MT, NT, U> ra, rb;
    int64_t c = warp;
    sk_load_w(ra, wp, c, nc);
    PDL_ENTRY();
    sk_load_x(ra, xp, c, nc);
    while (!sk_step(acc, ra, rb, wp, xp, &c, nc) && !sk_step(acc, rb, ra, wp, xp, &c, nc)) {
    }
    /* the warps' sums, 8 columns (rows of x) at a time: C fragment (g, 2q + e) and (g + 8, 2q + e) */
    const int tc = threadIdx.x / ROWS, tr = threadIdx.x % ROWS; /* the output this thread adds */
    const int64_t orow = row0 + tr;
    const float b = bias && orow < n ? ldw_any(bias, bdt, orow) : 0.f;
#pragma unroll
    for (int j = 0; j < NT; j++) {
#pragma unroll
        for (int t = 0; t < MT; t++) {
            red[warp][2 * q][16 * t + g] = acc[t][j][0];
            red[warp][2 * q + 1][16 * t + g] = acc[t][j][1];
            red[warp][2 * q][16 * t + g + 8] = acc[t][j][2];
            red[warp][2 * q + 1][16 * t + g + 8] = acc[t][j][3];
        }
        __syncthreads();
        if (tc < 8) { /* 8 x ROWS outputs, one a thread */
            float s = 0.f;
#pragma unroll
            for (int v = 0; v < SK_WARPS; v++) s += red[v][tc][tr];
            const int64_t xr = 8 * j + tc;
            if (xr < m && orow < n) y[xr * n + orow] = s + b;
        }
        __syncthreads();
    }
}

static int skinny_max_m(void) {
    static int v = -1;
    if (v < 0) {
        const char *s = getenv("GLMV_CUDA_SKINNY");
        const char *mx = getenv("GLMV_CUDA_SKINNY_MAX");
        v = s && !strcmp(s, "0") ? 0 : mx ? atoi(mx) : SKINNY_MAX_M;
        if (v < 0) v = 0;
        if (v > 64) v = 64;
    }
    return v;
}

int k_skinny_max(void) { return skinny_max_m(); }

int k_skinny_takes(const glmv_tensor *w, const __nv_bfloat16 *xb, int64_t m) {
    int64_t k = glmv_tensor_cols(w);
    return w->dtype == GLMV_BF16 && m > GEMV_MAX_M && m <= skinny_max_m() && k % 32 == 0 &&
           !((uintptr_t)w->data % 16) && !((uintptr_t)xb % 16);
}

/* 32 weight rows a block where the grid still has 4 blocks for each multiprocessor (x, re-read by
 * every block, then costs half the weights' bytes at 16 rows), else 16, so that the last blocks' tail
 * stays short. (With 16 rows of x a 32-row block takes 94 registers a thread: 2 blocks of 256
 * threads run on a multiprocessor at once; a 16-row block 62: 4.) */
template <int NT>
static void skinny_launch(cuda_ctx *c, float *y, const __nv_bfloat16 *xb, const glmv_tensor *w,
                          const glmv_tensor *bias, int64_t m) {
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    const void *bp = bias ? bias->data : NULL;
    int bdt = bias ? (int)bias->dtype : 0;
    const __nv_bfloat16 *wp = (const __nv_bfloat16 *)w->data;
    if (n >= 32 * 4 * (int64_t)c->sms)
        cuda_launch(c, skinny_kernel<2, NT, 1>, cdiv(n, 32), SK_WARPS * 32, 0, y, xb, wp, bp, bdt, m, n, k);
    else
        cuda_launch(c, skinny_kernel<1, NT, 1>, cdiv(n, 16), SK_WARPS * 32, 0, y, xb, wp, bp, bdt, m, n, k);
}

void k_skinny(cuda_ctx *c, float *y, const __nv_bfloat16 *xb, const glmv_tensor *w, const glmv_tensor *bias,
              int64_t m) {
    if (m <= 0 || glmv_tensor_rows(w) <= 0) return;
    switch ((m + 7) / 8) {
    case 2: skinny_launch<2>(c, y, xb, w, bias, m); break;
    case 3: skinny_launch<3>(c, y, xb, w, bias, m); break;
    case 4: skinny_launch<4>(c, y, xb, w, bias, m); break;
    case 5: skinny_launch<5>(c, y, xb, w, bias, m); break;
    case 6: skinny_launch<6>(c, y, xb, w, bias, m); break;
    case 7: skinny_launch<7>(c, y, xb, w, bias, m); break;
    default: skinny_launch<8>(c, y, xb, w, bias, m); break;
    }
    cuda_check(c, "matmul (skinny)");
}
