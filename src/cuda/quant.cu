/* quant.cu -- Q8_0 and Q4_0 weights (src/quant.h) on the GPU.
 *
 * Device layout. A block-format matrix [n, k] (k a multiple of 32) is uploaded as llama.cpp
 * stores it (rows of 34- or 18-byte blocks) and split once, on the device, into
 *   qs: the quantized values, row r at r·k bytes (Q8_0) or r·k/2 (Q4_0), block b of a row at
 *       b·32 (Q8_0) or b·16 (Q4_0), each block's bytes as in the file;
 *   d:  the f16 scales [n, k/32], at qs + quant_scales_offset(),
 * so that every load is 16 bytes and aligned. The host copy (t->host) keeps the blocks.
 *
 * Decode (up to quant_gemv_max_m rows): x is rounded to int8 per block of 32, as the CPU's decode
 * does (glmv_quantize_x_q8: the same scale, the same rounding, so the same int8 values), and
 * each block's product is an exact integer sum (dp4a), scaled by the weight's and the
 * activation's scales: what glmv_dot_q8x_ref defines, with the blocks added in float.
 * A warp per output row (a block of 8 warps per row when there are few rows), a lane takes
 * 16 bytes of weights per step (half a Q8_0 block, a whole Q4_0 block), several in flight; up
 * to 2 GEMV_MAX_M rows go in groups of GEMV_MAX_M, the weights read once per group. (With 8 rows
 * a kernel is bound by re-reading the activations from L1, not by the weights: on the H200, 16
 * sequences of the 9B shape step in 18 ms this way against 22 ms dequantizing for cuBLAS, but
 * 64 take 69 ms against 31, so more rows than 16 go to cuBLAS.)
 *
 * Prefill (more rows): weight rows dequantized in blocks into scratch (bf16 or, in f32
 * precision, the exact fp32 values) and multiplied by cuBLAS as the BF16 weights are. */
#include "cuda/cuda_impl.h"

#define GLMV_QK 32 /* quant.h's block size (quant.h itself is C11) */

size_t quant_qs_bytes(glmv_dtype t, int64_t n, int64_t k) {
    return (size_t)n * (size_t)(t == GLMV_Q8_0 ? k : k / 2);
}

size_t quant_scales_offset(glmv_dtype t, int64_t n, int64_t k) {
    return (quant_qs_bytes(t, n, k) + 255) & ~(size_t)255;
}

size_t quant_device_bytes(glmv_dtype t, int64_t n, int64_t k) {
    return quant_scales_offset(t, n, k) + (size_t)n * (size_t)(k / GLMV_QK) * 2;
}

/* ------------------------------------------------------------ upload: split the blocks */

/* one thread per block: bpb bytes per block, qb of them quantized values after the scale */
__global__ void split_blocks_kernel(uint8_t *qs, uint16_t *d, const uint8_t *blocks, int64_t nblocks,
                                    int bpb, int qb) {
    PDL_ENTRY();
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nblocks) return;
    const uint8_t *b = blocks + i * bpb;
    d[i] = (uint16_t)(b[0] | b[1] << 8);
    for (int j = 0; j < qb; j++) qs[i * qb + j] = b[2 + j];
}

int quant_upload(cuda_ctx *c, glmv_tensor *t, void **out, char *err) {
    int64_t n = glmv_tensor_rows(t), k = glmv_tensor_cols(t);
    if (k % GLMV_QK || t->ndim != 2)
        return glmv_errf(err, "cuda: %s: a %s tensor must be 2-D with whole blocks of 32", t->name,
                         glmv_dtype_name(t->dtype));
    size_t raw = glmv_dtype_row_bytes(t->dtype, k) * (size_t)n, total = quant_device_bytes(t->dtype, n, k);
    uint8_t *dst = NULL, *tmp = NULL;
    cudaError_t e = cudaMalloc(&dst, total);
    if (e == cudaSuccess) e = cudaMalloc(&tmp, raw);
    if (e != cudaSuccess) {
        cudaGetLastError();
        cudaFree(dst);
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        return glmv_errf(err, "cuda: out of device memory uploading %s (%zu bytes; %.2f of %.2f GiB free on %s)",
                         t->name ? t->name : "tensor", total + raw, fr / 1073741824.0, tot / 1073741824.0,
                         c->device_name);
    }
    const void *src = t->host ? t->host : t->data;
    /* on the backend's stream, so that the split below reads the finished copy (a plain
     * cudaMemcpy from pageable memory may return before its DMA lands, and c->stream does not
     * wait for the legacy stream) */
    e = cudaMemcpyAsync(tmp, src, raw, cudaMemcpyHostToDevice, c->stream);
    int64_t nblocks = n * (k / GLMV_QK);
    int q8 = t->dtype == GLMV_Q8_0;
    if (e == cudaSuccess) {
        cuda_launch(c, split_blocks_kernel, cdiv(nblocks, 256), 256, 0, dst,
                    (uint16_t *)(dst + quant_scales_offset(t->dtype, n, k)), (const uint8_t *)tmp, nblocks,
                    q8 ? 34 : 18, q8 ? 32 : 16);
        e = cudaGetLastError();
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    }
    cudaFree(tmp);
    if (e != cudaSuccess) {
        cudaFree(dst);
        cuda_fail(c, "upload (quantized)", e);
        return glmv_errf(err, "cuda: uploading %s: %s", t->name ? t->name : "tensor", cudaGetErrorString(e));
    }
    *out = dst;
    c->allocated += (int64_t)total;
    return 0;
}

/* ------------------------------------------------------------ decode */

/* The int8 activations' own buffer (the GEMM scratch may hold weights being multiplied). */
static void *qx_scratch(cuda_ctx *c, size_t bytes) {
    return cuda_grow(c, &c->qx, &c->qx_bytes, bytes, GLMV_MAX(bytes, (size_t)1 << 20),
                     "out of device memory for quantized activations");
}

/* x [m, k] -> int8 q [m, k], scales xd [m, k/32], block sums xs [m, k/32]; a warp per block.
 * The arithmetic is glmv_quantize_x_q8's (IEEE division and reciprocal, roundf). */
__global__ void quant_x_kernel(int8_t *q, float *xd, int32_t *xs, const float *x, int64_t nblocks) {
    PDL_ENTRY();
    int64_t b = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (b >= nblocks) return;
    const int lane = threadIdx.x & 31;
    const float v = x[b * 32 + lane];
    float amax = fabsf(v);
    for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    const int qi = (int)roundf(v * id);
    q[b * 32 + lane] = (int8_t)qi;
    int s = qi;
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) {
        xd[b] = d;
        xs[b] = s;
    }
}

#define QV_THREADS 256

/* Q4: 1 for Q4_0, 0 for Q8_0. WPR warps per output row (1 or 8), U 16-byte loads in flight
 * per lane. A "chunk" is 16 bytes of a row's qs: 16 elements (Q8_0) or 32 (Q4_0). */
template <int M, int WPR, int U, int Q4>
__global__ void __launch_bounds__(QV_THREADS)
    gemv_q_kernel(float *__restrict__ y, const int8_t *__restrict__ xq, const float *__restrict__ xd,
                  const int32_t *__restrict__ xs, const uint8_t *__restrict__ qs,
                  const __half *__restrict__ dw, const void *bias, int bdt, int64_t n, int64_t k) {
    constexpr int WARPS = QV_THREADS / 32, ROWS = WARPS / WPR;
    __shared__ float red[WARPS][M];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * ROWS + warp / WPR;
    const int part = warp % WPR;
    const int64_t nb = k / 32, chunks = row < n ? (Q4 ? nb : 2 * nb) : 0;
    const uint4 *w4 = (const uint4 *)(qs + (row < n ? row : 0) * (Q4 ? k / 2 : k));
    const __half *drow = dw + (row < n ? row : 0) * nb;
    float acc[M];
#pragma unroll
    for (int r = 0; r < M; r++) acc[r] = 0.f;
    const int stride = 32 * WPR;
    int64_t j = (int64_t)part * 32 + lane;
    uint4 u[U];
#pragma unroll
    for (int s = 0; s < U; s++) u[s] = j + s * stride < chunks ? __ldg(w4 + j + s * stride) : make_uint4(0, 0, 0, 0);
    PDL_WAIT();
    PDL_LAUNCH();
    while (j < chunks) {
#pragma unroll
        for (int s = 0; s < U; s++) {
            const int64_t jj = j + s * stride;
            if (jj < chunks) {
                const int64_t b = Q4 ? jj : jj >> 1; /* the block */
                const float d = __half2float(drow[b]);
                const int w[4] = {(int)u[s].x, (int)u[s].y, (int)u[s].z, (int)u[s].w};
#pragma unroll
                for (int r = 0; r < M; r++) {
                    int isum = 0;
                    if (Q4) {
                        const uint4 *xr = (const uint4 *)(xq + r * k + b * 32);
                        const uint4 lo = xr[0], hi = xr[1];
                        const int xl[4] = {(int)lo.x, (int)lo.y, (int)lo.z, (int)lo.w};
                        const int xh[4] = {(int)hi.x, (int)hi.y, (int)hi.z, (int)hi.w};
#pragma unroll
                        for (int i = 0; i < 4; i++) {
                            isum = __dp4a(w[i] & 0x0F0F0F0F, xl[i], isum);
                            isum = __dp4a((w[i] >> 4) & 0x0F0F0F0F, xh[i], isum);
                        }
                        isum -= 8 * xs[r * nb + b];
                    } else {
                        const uint4 xv = *(const uint4 *)(xq + r * k + jj * 16);
                        const int xi[4] = {(int)xv.x, (int)xv.y, (int)xv.z, (int)xv.w};
#pragma unroll
                        for (int i = 0; i < 4; i++) isum = __dp4a(w[i], xi[i], isum);
                    }
                    acc[r] += d * xd[r * nb + b] * (float)isum;
                }
            }
        }
        j += (int64_t)U * stride;
#pragma unroll
        for (int s = 0; s < U; s++) u[s] = j + s * stride < chunks ? __ldg(w4 + j + s * stride) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int r = 0; r < M; r++)
        for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
    if (WPR > 1) {
        if (lane == 0)
#pragma unroll
            for (int r = 0; r < M; r++) red[warp][r] = acc[r];
        __syncthreads();
        if (part == 0 && lane == 0)
#pragma unroll
            for (int r = 0; r < M; r++) {
                float s = 0.f;
                for (int p = 0; p < WPR; p++) s += red[warp + p][r];
                acc[r] = s;
            }
    }
    if (row < n && part == 0 && lane == 0) {
        float bv = 0.f;
        if (bias)
            bv = bdt == GLMV_BF16 ? __bfloat162float(((const __nv_bfloat16 *)bias)[row])
                 : bdt == GLMV_F16 ? __half2float(((const __half *)bias)[row])
                                   : ((const float *)bias)[row];
#pragma unroll
        for (int r = 0; r < M; r++) y[r * n + row] = acc[r] + bv;
    }
}

template <int M, int Q4>
static void gemv_q_launch(cuda_ctx *c, float *y, const int8_t *xq, const float *xd, const int32_t *xs,
                          const glmv_tensor *w, const glmv_tensor *bias, int64_t n, int64_t k) {
    const uint8_t *qs = (const uint8_t *)w->data;
    const __half *d = (const __half *)(qs + quant_scales_offset(w->dtype, n, k));
    const void *bp = bias ? bias->data : NULL;
    int bdt = bias ? bias->dtype : 0;
    constexpr int U = M == 1 ? 8 : 4;
    if (n >= 8 * (int64_t)c->sms)
        cuda_launch(c, gemv_q_kernel<M, 1, U, Q4>, cdiv(n, 8), QV_THREADS, 0, y, xq, xd, xs, qs, d, bp, bdt, n, k);
    else
        cuda_launch(c, gemv_q_kernel<M, 8, U, Q4>, (unsigned)n, QV_THREADS, 0, y, xq, xd, xs, qs, d, bp, bdt, n, k);
}

template <int Q4>
static void gemv_q_m(cuda_ctx *c, float *y, const int8_t *xq, const float *xd, const int32_t *xs,
                     const glmv_tensor *w, const glmv_tensor *bias, int64_t m, int64_t n, int64_t k) {
    switch (m) {
    case 1: gemv_q_launch<1, Q4>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 2: gemv_q_launch<2, Q4>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 3: gemv_q_launch<3, Q4>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 4: gemv_q_launch<4, Q4>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 5: gemv_q_launch<5, Q4>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 6: gemv_q_launch<6, Q4>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 7: gemv_q_launch<7, Q4>(c, y, xq, xd, xs, w, bias, n, k); break;
    default: gemv_q_launch<8, Q4>(c, y, xq, xd, xs, w, bias, n, k); break;
    }
}

int quant_gemv_max_m(glmv_dtype t) {
    (void)t;
    return 2 * GEMV_MAX_M;
}

void k_gemv_q(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w, const glmv_tensor *bias,
              int64_t m) {
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    if (m <= 0 || n <= 0) return;
    int64_t nb = m * (k / 32);
    /* int8 x, then its scales and block sums, each 256-byte aligned */
    size_t a = ((size_t)(m * k) + 255) & ~(size_t)255, b = ((size_t)nb * 4 + 255) & ~(size_t)255;
    char *s = (char *)qx_scratch(c, a + 2 * b);
    if (!s) return;
    int8_t *xq = (int8_t *)s;
    float *xd = (float *)(s + a);
    int32_t *xs = (int32_t *)(s + a + b);
    cuda_launch(c, quant_x_kernel, cdiv(nb, 8), 256, 0, xq, xd, xs, x, nb);
    /* rows in groups of GEMV_MAX_M, the weights read once per group; a row's sums do not
     * depend on its group (matmul_rows' promise) */
    for (int64_t r0 = 0; r0 < m; r0 += GEMV_MAX_M) {
        int64_t g = GLMV_MIN((int64_t)GEMV_MAX_M, m - r0), o = r0 * (k / 32);
        if (w->dtype == GLMV_Q4_0) gemv_q_m<1>(c, y + r0 * n, xq + r0 * k, xd + o, xs + o, w, bias, g, n, k);
        else gemv_q_m<0>(c, y + r0 * n, xq + r0 * k, xd + o, xs + o, w, bias, g, n, k);
    }
    cuda_check(c, "matmul (quantized gemv)");
}

/* ------------------------------------------------------------ prefill: dequantize */

/* rows [r0, r0 + nr) of a split Q8_0/Q4_0 matrix to bf16 (BF=1) or f32: a thread per 8
 * consecutive elements (8 bytes or 8 nibbles in, 16 or 32 bytes out), so that a warp's loads
 * and stores are contiguous */
template <int BF, int Q4>
__global__ void dequant_kernel(void *out, const uint8_t *qs, const __half *dw, int64_t r0, int64_t nr, int64_t k) {
    PDL_ENTRY();
    const int64_t per_row = k / 8, nb = k / 32;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nr * per_row) return;
    const int64_t r = i / per_row, c = (i % per_row) * 8, row = r0 + r, b = c / 32;
    const int j = (int)(c % 32); /* 0, 8, 16 or 24 within the block */
    const float d = __half2float(dw[row * nb + b]);
    float v[8];
    if (Q4) { /* element j of a block: low nibble of byte j (j < 16), high nibble of byte j - 16 */
        const uint2 u = *(const uint2 *)(qs + row * (k / 2) + b * 16 + (j & 15));
        const uint8_t *p = (const uint8_t *)&u;
        for (int e = 0; e < 8; e++) v[e] = d * (float)((j < 16 ? p[e] & 15 : p[e] >> 4) - 8);
    } else {
        const uint2 u = *(const uint2 *)(qs + row * k + c);
        const int8_t *p = (const int8_t *)&u;
        for (int e = 0; e < 8; e++) v[e] = d * (float)p[e];
    }
    if (BF) {
        uint4 o;
        uint32_t *w = (uint32_t *)&o;
        for (int e = 0; e < 4; e++) {
            __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * e], v[2 * e + 1]);
            w[e] = *(uint32_t *)&h;
        }
        *(uint4 *)((__nv_bfloat16 *)out + r * k + c) = o;
    } else {
        float4 *o = (float4 *)((float *)out + r * k + c);
        o[0] = make_float4(v[0], v[1], v[2], v[3]);
        o[1] = make_float4(v[4], v[5], v[6], v[7]);
    }
}

void k_dequant_rows(cuda_ctx *c, void *out, int bf16, const glmv_tensor *w, int64_t r0, int64_t nr) {
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    const uint8_t *qs = (const uint8_t *)w->data;
    const __half *d = (const __half *)(qs + quant_scales_offset(w->dtype, n, k));
    int q4 = w->dtype == GLMV_Q4_0;
    int64_t threads = nr * (k / 8);
    unsigned g = cdiv(threads, 256);
    if (bf16 && q4) cuda_launch(c, dequant_kernel<1, 1>, g, 256, 0, out, qs, d, r0, nr, k);
    else if (bf16) cuda_launch(c, dequant_kernel<1, 0>, g, 256, 0, out, qs, d, r0, nr, k);
    else if (q4) cuda_launch(c, dequant_kernel<0, 1>, g, 256, 0, out, qs, d, r0, nr, k);
    else cuda_launch(c, dequant_kernel<0, 0>, g, 256, 0, out, qs, d, r0, nr, k);
    cuda_check(c, "matmul (dequantize)");
}
