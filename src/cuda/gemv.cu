/* gemv.cu -- y[m, n] = x[m, k] · wᵀ (+ bias) for the few rows of decode, at
 * the speed of memory, and a plain tiled GEMM for weights that are not BF16.
 *
 * gemv_kernel: BF16 weights, fp32 activations and accumulation. Each output
 * row is one warp's work (or a whole block's, split over k, when there are
 * too few rows to fill the GPU); a lane loads 16 bytes (8 weights) per step,
 * four steps in flight, and reuses each weight for all m (<= 8) input rows,
 * which are read from global memory (they stay in L1/L2). The weight is read
 * exactly once, so the time is bytes / bandwidth.
 *
 * gemm_simt_kernel: 64x64 tiles through shared memory, fp32 FMA; for F32 and
 * F16 weights (test fixtures), any m. Not tuned. */
#include "cuda/cuda_impl.h"

__device__ __forceinline__ void bf16x8(const uint4 &u, float (&f)[8]) {
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

#define GEMV_THREADS 256

/* WPR warps per output row (1 or 8); U 16-byte loads in flight per lane.
 * vec: k % 8 == 0 and w, x 16-byte aligned. */
template <int M, int WPR, int U>
__global__ void __launch_bounds__(GEMV_THREADS) gemv_kernel(float *__restrict__ y,
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
        const int64_t k8 = row < n ? k / 8 : 0;
        const int stride = 32 * WPR;
        int64_t j = (int64_t)part * 32 + lane;
        /* the first U loads go out before waiting for the previous kernel:
         * weights are constant, only x comes from it */
        uint4 u[U];
#pragma unroll
        for (int s = 0; s < U; s++)
            u[s] = j + s * stride < k8 ? __ldg(w4 + j + s * stride) : make_uint4(0, 0, 0, 0);
        PDL_WAIT();
        PDL_LAUNCH();
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
                u[s] = j + s * stride < k8 ? __ldg(w4 + j + s * stride) : make_uint4(0, 0, 0, 0);
        }
    } else {
        PDL_WAIT();
        PDL_LAUNCH();
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
