/* quant.cu -- weights in llama.cpp's block formats (src/quant.h) on the GPU: Q8_0 and Q4_0, and
 * Q5_0, Q4_K and Q6_K (the formats of its Q4_K_M recipe; their layout and kernels below the
 * first two's, "Q5_0, Q4_K, Q6_K").
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
 * a kernel is bound by re-reading the activations from L1, not by the weights.) Q8_0 and Q4_0 take
 * this path for up to GEMV_MAX_M rows only: 9 to 64 rows go to the int8 tensor-core kernel of
 * mmq.cu (16 streams of the 9B shape step in 8.2 ms there against 14.0 ms here, H100). For those
 * rows the MLP's gate/up product and its SwiGLU are one kernel (gemv_q_glu_kernel, the backend's
 * matmul_glu), as for BF16 weights: one launch fewer a layer, and the two x that a norm writes are
 * rounded by that norm (k_norm_add_norm, quant_x below). The products of a Q4_0 step
 * stream at about half the bandwidth (docs/PERFORMANCE.md), but not because of the small kernels
 * between them: folding the other two roundings and the rotary away as well gained nothing on an
 * H200; what costs is each product's own ramp and tail.
 *
 * Prefill (more rows): weight rows dequantized in blocks into scratch (bf16 or, in f32
 * precision, the exact fp32 values) and multiplied by cuBLAS as the BF16 weights are. */
#include "cuda/cuda_impl.h"

#define GLMV_QK 32 /* quant.h's block size (quant.h itself is C11) */
#define QV_THREADS 256

/* ------------------------------------------------------------ Q5_0, Q4_K, Q6_K */

/* Device layout of the K formats and Q5_0 (quant.h's blocks), made on upload:
 *   Q4_K: the super-blocks as they are (144 bytes: a 16-byte header d, dmin, scales[12], then
 *         qs in eight 16-byte words), rows of k/256 of them;
 *   Q6_K: each super-block's ql, qh and scales (208 bytes, thirteen 16-byte words), rows of
 *         k/256, then the f16 d of every super-block at kq_off(.., 1);
 *   Q5_0: each block's 16 bytes of nibbles, then every block's 32 fifth bits (u32) at
 *         kq_off(.., 1) and its f16 d at kq_off(.., 2).
 * Every weight load is 16 bytes and aligned. */
static int is_kq(glmv_dtype t) { return t == GLMV_Q5_0 || t == GLMV_Q4_K || t == GLMV_Q6_K; }

/* offset of region r (0: the values) of an [n, k] matrix in dtype t; r = 3: the total */
static size_t kq_off(glmv_dtype t, int64_t n, int64_t k, int r) {
    size_t a = 0;
    if (t == GLMV_Q4_K) return r == 0 ? 0 : (size_t)n * (size_t)(k / 256) * 144;
    if (t == GLMV_Q6_K) {
        size_t body = (size_t)n * (size_t)(k / 256) * 208, d = (body + 255) & ~(size_t)255;
        return r == 0 ? 0 : r == 1 ? d : d + (size_t)n * (size_t)(k / 256) * 2;
    }
    size_t nb = (size_t)n * (size_t)(k / 32), qs = nb * 16, qh = (qs + 255) & ~(size_t)255,
           d = (qh + nb * 4 + 255) & ~(size_t)255;
    a = r == 0 ? 0 : r == 1 ? qh : r == 2 ? d : d + nb * 2;
    return a;
}

/* one thread per Q6_K super-block or Q5_0 block: its fields to their regions */
__global__ void split_kq_kernel(uint8_t *dst, const uint8_t *src, int64_t nblocks, int q6, size_t off1,
                                size_t off2) {
    PDL_ENTRY();
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nblocks) return;
    if (q6) { /* ql[128] qh[64] scales[16] d */
        const uint8_t *b = src + i * 210;
        for (int j = 0; j < 208; j++) dst[i * 208 + j] = b[j];
        ((uint16_t *)(dst + off1))[i] = (uint16_t)(b[208] | b[209] << 8);
    } else { /* d qh[4] qs[16] */
        const uint8_t *b = src + i * 22;
        ((uint16_t *)(dst + off2))[i] = (uint16_t)(b[0] | b[1] << 8);
        ((uint32_t *)(dst + off1))[i] = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
        for (int j = 0; j < 16; j++) dst[i * 16 + j] = b[6 + j];
    }
}

/* 4 bits of h (bits 4i..4i+3 of a block's fifth bits) as bit 4 of 4 bytes */
__device__ __forceinline__ int q5_hi(uint32_t h) {
    return (int)(((h & 1) << 4) | ((h & 2) << 11) | ((h & 4) << 18) | ((h & 8) << 25));
}

/* scale and min j of a Q4_K header's packed bytes q (= scales[12]) */
__device__ __forceinline__ void q4k_sm(const uint8_t *q, int j, int &sc, int &m) {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = (q[j + 4] & 15) | (q[j - 4] >> 6) << 4;
        m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    }
}

/* scales and mins 2p and 2p + 1 of a Q4_K header (its words y, z, w: the 12 packed bytes),
 * without branches: all eight as the bytes of four words (as q4k_sm reads them one by one) */
__device__ __forceinline__ void q4k_sm_pair(const uint4 &hd, int p, int &sc0, int &m0, int &sc1, int &m1) {
    const uint32_t u0 = hd.y, u1 = hd.z, u2 = hd.w;
    const uint32_t s_lo = u0 & 0x3f3f3f3fu, m_lo = u1 & 0x3f3f3f3fu;
    const uint32_t s_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4;
    const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4;
    const uint32_t sw = p < 2 ? s_lo : s_hi, mw = p < 2 ? m_lo : m_hi;
    const int sh = (2 * p & 3) * 8;
    sc0 = (int)(sw >> sh & 0xff);
    sc1 = (int)(sw >> (sh + 8) & 0xff);
    m0 = (int)(mw >> sh & 0xff);
    m1 = (int)(mw >> (sh + 8) & 0xff);
}

/* FMT 0 Q5_0, 1 Q4_K, 2 Q6_K. A task is 16-byte words of one block: Q5_0 a block (32
 * elements), Q4_K a qs word (16 elements of sub-blocks 2p and 2p+1), Q6_K a quarter of a
 * super-block's words (64 elements, four sub-blocks of 16). Each sub-block's integer sums are
 * exact (dp4a), then scaled as glmv_dot_q8x_ref scales them. */
template <int M, int WPR, int FMT>
__global__ void __launch_bounds__(QV_THREADS)
    gemv_kq_kernel(float *__restrict__ y, const int8_t *__restrict__ xq, const float *__restrict__ xd,
                   const int32_t *__restrict__ xs, const uint8_t *__restrict__ w, size_t off1, size_t off2,
                   const void *bias, int bdt, int64_t n, int64_t k) {
    constexpr int WARPS = QV_THREADS / 32, ROWS = WARPS / WPR;
    __shared__ float red[WARPS][M];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * ROWS + warp / WPR;
    const int part = warp % WPR;
    const int64_t nb = k / 32, nsb = k / 256, r0 = row < n ? row : 0;
    const int64_t tasks = row < n ? (FMT == 0 ? nb : FMT == 1 ? nsb * 8 : nsb * 4) : 0;
    float acc[M];
#pragma unroll
    for (int r = 0; r < M; r++) acc[r] = 0.f;
    PDL_ENTRY();
    const int ones = 0x01010101;
    for (int64_t t = (int64_t)part * 32 + lane; t < tasks; t += 32 * WPR) {
        if (FMT == 0) {
            const int64_t b = r0 * nb + t;
            const uint4 u = ld_stream(w + b * 16);
            const uint32_t h = __ldg((const uint32_t *)(w + off1) + b);
            const float d = __half2float(__ldg((const __half *)(w + off2) + b));
            const int q[4] = {(int)u.x, (int)u.y, (int)u.z, (int)u.w};
            int lo[4], hi[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                lo[i] = (q[i] & 0x0F0F0F0F) | q5_hi(h >> (4 * i));
                hi[i] = ((q[i] >> 4) & 0x0F0F0F0F) | q5_hi(h >> (16 + 4 * i));
            }
#pragma unroll
            for (int r = 0; r < M; r++) {
                const uint4 *xr = (const uint4 *)(xq + r * k + t * 32);
                const uint4 a = xr[0], c = xr[1];
                const int xl[4] = {(int)a.x, (int)a.y, (int)a.z, (int)a.w};
                const int xh[4] = {(int)c.x, (int)c.y, (int)c.z, (int)c.w};
                int s = 0;
#pragma unroll
                for (int i = 0; i < 4; i++) s = __dp4a(hi[i], xh[i], __dp4a(lo[i], xl[i], s));
                s -= 16 * xs[r * nb + t];
                acc[r] += d * xd[r * nb + t] * (float)s;
            }
        } else if (FMT == 1) {
            const int64_t sb = t >> 3;
            const int wq = (int)(t & 7), p = wq >> 1, hh = wq & 1;
            const uint8_t *blk = w + (r0 * nsb + sb) * 144;
            const uint4 hd = ld_stream(blk), u = ld_stream(blk + 16 + 16 * wq);
            const uint8_t *hb = (const uint8_t *)&hd;
            const float d = __half2float(*(const __half *)hb), dmin = __half2float(*(const __half *)(hb + 2));
            int sc0, m0, sc1, m1;
            q4k_sm_pair(hd, p, sc0, m0, sc1, m1);
            const int q[4] = {(int)u.x, (int)u.y, (int)u.z, (int)u.w};
            const int64_t e0 = sb * 256 + 64 * p + 16 * hh, b0 = sb * 8 + 2 * p; /* element, x block */
#pragma unroll
            for (int r = 0; r < M; r++) {
                const uint4 a = *(const uint4 *)(xq + r * k + e0), c = *(const uint4 *)(xq + r * k + e0 + 32);
                const int xl[4] = {(int)a.x, (int)a.y, (int)a.z, (int)a.w};
                const int xh[4] = {(int)c.x, (int)c.y, (int)c.z, (int)c.w};
                int s0 = 0, s1 = 0, x0 = 0, x1 = 0;
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    s0 = __dp4a(q[i] & 0x0F0F0F0F, xl[i], s0);
                    s1 = __dp4a((q[i] >> 4) & 0x0F0F0F0F, xh[i], s1);
                    x0 = __dp4a(ones, xl[i], x0);
                    x1 = __dp4a(ones, xh[i], x1);
                }
                acc[r] += xd[r * nb + b0] * (d * (float)sc0 * (float)s0 - dmin * (float)m0 * (float)x0) +
                          xd[r * nb + b0 + 1] * (d * (float)sc1 * (float)s1 - dmin * (float)m1 * (float)x1);
            }
        } else {
            const int64_t sb = t >> 2;
            const int nn = (int)((t >> 1) & 1), hh = (int)(t & 1);
            const uint8_t *body = w + (r0 * nsb + sb) * 208;
            const uint4 A = ld_stream(body + 64 * nn + 16 * hh);
            const uint4 B = ld_stream(body + 64 * nn + 32 + 16 * hh);
            const uint4 C = ld_stream(body + 128 + 32 * nn + 16 * hh);
            const uint4 S = ld_stream(body + 192);
            const int8_t *sc = (const int8_t *)&S;
            const float d = __half2float(__ldg((const __half *)(w + off1) + r0 * nsb + sb));
            const int a[4] = {(int)A.x, (int)A.y, (int)A.z, (int)A.w}, bq[4] = {(int)B.x, (int)B.y, (int)B.z, (int)B.w},
                      ch[4] = {(int)C.x, (int)C.y, (int)C.z, (int)C.w};
#pragma unroll
            for (int tq = 0; tq < 4; tq++) { /* quarter tq: elements 128 nn + 32 tq + 16 hh + 0..15 */
                int v[4];
#pragma unroll
                for (int i = 0; i < 4; i++)
                    v[i] = (((tq & 1 ? bq[i] : a[i]) >> (4 * (tq >> 1))) & 0x0F0F0F0F) |
                           (((ch[i] >> (2 * tq)) & 0x03030303) << 4);
                const int64_t e0 = sb * 256 + 128 * nn + 32 * tq + 16 * hh;
                const float f = d * (float)sc[8 * nn + 2 * tq + hh];
#pragma unroll
                for (int r = 0; r < M; r++) {
                    const uint4 xv = *(const uint4 *)(xq + r * k + e0);
                    const int xi[4] = {(int)xv.x, (int)xv.y, (int)xv.z, (int)xv.w};
                    int s = 0, sx = 0;
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        s = __dp4a(v[i], xi[i], s);
                        sx = __dp4a(ones, xi[i], sx);
                    }
                    acc[r] += xd[r * nb + (e0 >> 5)] * f * (float)(s - 32 * sx);
                }
            }
        }
    }
    gemv_finish<M, WPR>(acc, red, warp, lane, part, row, n, bias, bdt, y);
}

template <int M, int FMT>
static void gemv_kq_launch(cuda_ctx *c, float *y, const int8_t *xq, const float *xd, const int32_t *xs,
                           const glmv_tensor *w, const glmv_tensor *bias, int64_t n, int64_t k) {
    const uint8_t *p = (const uint8_t *)w->data;
    size_t o1 = kq_off(w->dtype, n, k, 1), o2 = kq_off(w->dtype, n, k, 2);
    const void *bp = bias ? bias->data : NULL;
    int bdt = bias ? bias->dtype : 0;
    if (n >= 8 * (int64_t)c->sms)
        cuda_launch(c, gemv_kq_kernel<M, 1, FMT>, cdiv(n, 8), QV_THREADS, 0, y, xq, xd, xs, p, o1, o2, bp, bdt, n, k);
    else
        cuda_launch(c, gemv_kq_kernel<M, 8, FMT>, (unsigned)n, QV_THREADS, 0, y, xq, xd, xs, p, o1, o2, bp, bdt, n, k);
}

template <int FMT>
static void gemv_kq_m(cuda_ctx *c, float *y, const int8_t *xq, const float *xd, const int32_t *xs,
                      const glmv_tensor *w, const glmv_tensor *bias, int64_t m, int64_t n, int64_t k) {
    switch (m) {
    case 1: gemv_kq_launch<1, FMT>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 2: gemv_kq_launch<2, FMT>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 3: gemv_kq_launch<3, FMT>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 4: gemv_kq_launch<4, FMT>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 5: gemv_kq_launch<5, FMT>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 6: gemv_kq_launch<6, FMT>(c, y, xq, xd, xs, w, bias, n, k); break;
    case 7: gemv_kq_launch<7, FMT>(c, y, xq, xd, xs, w, bias, n, k); break;
    default: gemv_kq_launch<8, FMT>(c, y, xq, xd, xs, w, bias, n, k); break;
    }
}

/* element e (within the row's k) of row `row`, as quant.h's dequantizers compute it */
template <int FMT>
__device__ __forceinline__ float kq_value(const uint8_t *w, size_t off1, size_t off2, int64_t row, int64_t k,
                                          int64_t e) {
    if (FMT == 0) {
        const int64_t b = row * (k / 32) + e / 32;
        const int j = (int)(e % 32);
        const uint8_t byte = w[b * 16 + (j & 15)];
        const int lo = j < 16 ? byte & 15 : byte >> 4;
        const int hb = (int)(((const uint32_t *)(w + off1))[b] >> j & 1);
        return __half2float(((const __half *)(w + off2))[b]) * (float)((lo | hb << 4) - 16);
    } else if (FMT == 1) {
        const uint8_t *blk = w + (row * (k / 256) + e / 256) * 144;
        const int in = (int)(e % 256), sub = in / 32, l = in % 32;
        const uint8_t byte = blk[16 + 32 * (sub / 2) + l];
        const int q = sub & 1 ? byte >> 4 : byte & 15;
        int sc, m;
        q4k_sm(blk + 4, sub, sc, m);
        const float d = __half2float(*(const __half *)blk) * (float)sc, dm = __half2float(*(const __half *)(blk + 2)) * (float)m;
        return d * (float)q - dm;
    } else {
        const int64_t sb = row * (k / 256) + e / 256;
        const uint8_t *body = w + sb * 208;
        const int in = (int)(e % 256), nn = in / 128, tq = (in % 128) / 32, l = in % 32;
        const int lo = body[64 * nn + 32 * (tq & 1) + l] >> (4 * (tq >> 1)) & 15;
        const int hi = body[128 + 32 * nn + l] >> (2 * tq) & 3;
        const float d = __half2float(((const __half *)(w + off1))[sb]);
        return d * (float)((const int8_t *)body)[192 + in / 16] * (float)((lo | hi << 4) - 32);
    }
}

/* rows [r0, r0 + nr) of a Q5_0 / Q4_K / Q6_K matrix to bf16 (BF=1) or f32, a thread per 8
 * consecutive elements */
template <int BF, int FMT>
__global__ void dequant_kq_kernel(void *out, const uint8_t *w, size_t off1, size_t off2, int64_t r0, int64_t nr,
                                  int64_t k) {
    PDL_ENTRY();
    const int64_t per_row = k / 8;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nr * per_row) return;
    const int64_t r = i / per_row, c = (i % per_row) * 8;
    float v[8];
#pragma unroll
    for (int e = 0; e < 8; e++) v[e] = kq_value<FMT>(w, off1, off2, r0 + r, k, c + e);
    if (BF) {
        uint4 o;
        uint32_t *u = (uint32_t *)&o;
        for (int e = 0; e < 4; e++) {
            __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * e], v[2 * e + 1]);
            u[e] = *(uint32_t *)&h;
        }
        *(uint4 *)((__nv_bfloat16 *)out + r * k + c) = o;
    } else {
        float4 *o = (float4 *)((float *)out + r * k + c);
        o[0] = make_float4(v[0], v[1], v[2], v[3]);
        o[1] = make_float4(v[4], v[5], v[6], v[7]);
    }
}

static void dequant_kq(cuda_ctx *c, void *out, int bf16, const glmv_tensor *w, int64_t r0, int64_t nr) {
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    const uint8_t *p = (const uint8_t *)w->data;
    size_t o1 = kq_off(w->dtype, n, k, 1), o2 = kq_off(w->dtype, n, k, 2);
    unsigned g = cdiv(nr * (k / 8), 256);
    int f = w->dtype == GLMV_Q5_0 ? 0 : w->dtype == GLMV_Q4_K ? 1 : 2;
#define DQ(BF, F) cuda_launch(c, dequant_kq_kernel<BF, F>, g, 256, 0, out, p, o1, o2, r0, nr, k)
    if (bf16) {
        if (f == 0) DQ(1, 0);
        else if (f == 1) DQ(1, 1);
        else DQ(1, 2);
    } else {
        if (f == 0) DQ(0, 0);
        else if (f == 1) DQ(0, 1);
        else DQ(0, 2);
    }
#undef DQ
}

size_t quant_qs_bytes(glmv_dtype t, int64_t n, int64_t k) {
    return (size_t)n * (size_t)(t == GLMV_Q8_0 ? k : k / 2);
}

size_t quant_scales_offset(glmv_dtype t, int64_t n, int64_t k) {
    return (quant_qs_bytes(t, n, k) + 255) & ~(size_t)255;
}

size_t quant_device_bytes(glmv_dtype t, int64_t n, int64_t k) {
    if (is_kq(t)) return kq_off(t, n, k, 3);
    /* + 16: mmq.cu reads a scale as the aligned 4-byte word that holds it, which for the last one
     * may end 2 bytes past the scales */
    return quant_scales_offset(t, n, k) + (size_t)n * (size_t)(k / GLMV_QK) * 2 + 16;
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
    const int be = glmv_dtype_block(t->dtype);
    if (k % be || t->ndim != 2)
        return glmv_errf(err, "cuda: %s: a %s tensor must be 2-D with whole blocks of %d", t->name,
                         glmv_dtype_name(t->dtype), be);
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
    int64_t nblocks = n * (k / be);
    int q8 = t->dtype == GLMV_Q8_0;
    if (e == cudaSuccess && t->dtype == GLMV_Q4_K) { /* used as it is */
        e = cudaMemcpyAsync(dst, tmp, raw, cudaMemcpyDeviceToDevice, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    } else if (e == cudaSuccess && is_kq(t->dtype)) {
        cuda_launch(c, split_kq_kernel, cdiv(nblocks, 256), 256, 0, dst, (const uint8_t *)tmp, nblocks,
                    t->dtype == GLMV_Q6_K, kq_off(t->dtype, n, k, 1), kq_off(t->dtype, n, k, 2));
        e = cudaGetLastError();
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    } else if (e == cudaSuccess) {
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
    c->has_quant = 1; /* norms round their rows for the products from now on (k_norm_add_norm) */
    return 0;
}

/* ------------------------------------------------------------ decode */

/* The int8 activations' own buffer (the GEMM scratch may hold weights being multiplied). */
static void *qx_scratch(cuda_ctx *c, size_t bytes) {
    return cuda_grow(c, &c->qx, &c->qx_bytes, bytes, GLMV_MAX(bytes, (size_t)1 << 20),
                     "out of device memory for quantized activations");
}

/* x [m, k] -> int8 q [m, k], scales xd [m, k/32], block sums xs [m, k/32]; a warp per block.
 * The arithmetic is glmv_quantize_x_q8's (q8_round_lane). */
__global__ void quant_x_kernel(int8_t *q, float *xd, int32_t *xs, const float *x, int64_t nblocks) {
    PDL_ENTRY();
    int64_t b = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (b >= nblocks) return;
    const int lane = threadIdx.x & 31;
    float d;
    const int qi = q8_round_lane(x[b * 32 + lane], &d);
    q[b * 32 + lane] = (int8_t)qi;
    int s = qi;
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) {
        xd[b] = d;
        xs[b] = s;
    }
}

/* acc[r] += this lane's share of x[r] · w over the 16-byte chunks j, j + stride, ... < chunks of one
 * Q8_0 (Q4 = 0) or Q4_0 (Q4 = 1) weight row: w4 its values, drow its f16 scales. A "chunk" is 16
 * bytes of the row's values: 16 elements (Q8_0) or 32 (Q4_0). U loads in flight per lane; the first
 * U go out before waiting for the previous kernel (PDL_ENTRY inside): weights are constant, only x
 * comes from it. Each block's sum is exact (dp4a), scaled by the weight's and x's scales. */
template <int M, int U, int Q4>
__device__ __forceinline__ void gemv_q_row(float (&acc)[M], const int8_t *__restrict__ xq,
                                           const float *__restrict__ xd, const int32_t *__restrict__ xs,
                                           const uint4 *w4, const __half *drow, int64_t chunks, int64_t k, int64_t j,
                                           int stride) {
    const int64_t nb = k / 32;
    uint4 u[U];
#pragma unroll
    for (int s = 0; s < U; s++) u[s] = j + s * stride < chunks ? ld_stream(w4 + j + s * stride) : make_uint4(0, 0, 0, 0);
    PDL_ENTRY();
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
        for (int s = 0; s < U; s++) u[s] = j + s * stride < chunks ? ld_stream(w4 + j + s * stride) : make_uint4(0, 0, 0, 0);
    }
}

/* WPR warps per output row (1 or 8), U 16-byte loads in flight per lane. (__launch_bounds__ with
 * a minimum of one block a multiprocessor, which sped the BF16 kernel up, let ptxas give the M = 1
 * kernel 70 registers instead of 64 and slowed a 9B decode step by 10 % on Q8_0 and Q4_0 weights,
 * 16 loads in flight and 104 registers by 20 %: H100, glmv bench, alternating.) */
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
    gemv_q_row<M, U, Q4>(acc, xq, xd, xs, w4, drow, chunks, k, (int64_t)part * 32 + lane, 32 * WPR);
    gemv_finish<M, WPR>(acc, red, warp, lane, part, row, n, bias, bdt, y);
}

/* One row of x, R weight rows a warp (rows row0 .. row0 + R - 1; past n: row n - 1 read, its sums
 * dropped): lane l takes chunks l, l + 32, ... of each row, as gemv_q_kernel<1, 1, ...> does, so
 * every row's sum is that kernel's bit for bit (same shares, same order, same reduction); the R
 * rows' chunks at one column share their loads of x, and D columns' weights and scales are in
 * flight at once (a stage refilled as soon as it is multiplied), the first D before waiting for
 * the previous kernel. */
template <int R, int D, int Q4>
__device__ __forceinline__ void gemv_q1_rows(float (&acc)[R], const int8_t *__restrict__ xq,
                                             const float *__restrict__ xd, const int32_t *__restrict__ xs,
                                             const uint8_t *__restrict__ qs, const __half *__restrict__ dw,
                                             int64_t row0, int64_t n, int64_t k, int lane) {
    const int64_t nb = k / 32, chunks = Q4 ? nb : 2 * nb, rbytes = Q4 ? k / 2 : k;
    const int64_t T = chunks > lane ? (chunks - lane + 31) / 32 : 0; /* this lane's columns */
    const uint8_t *wr[R];
    const __half *dr[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int64_t row = GLMV_MIN(row0 + r, n - 1);
        wr[r] = qs + row * rbytes;
        dr[r] = dw + row * nb;
    }
    uint4 u[D][R];
    __half h[D][R];
#define Q1_LOAD(s, t)                                                             \
    do {                                                                          \
        const int64_t jj_ = lane + 32 * (t);                                      \
        const bool in_ = (t) < T;                                                 \
        _Pragma("unroll") for (int r = 0; r < R; r++) {                           \
            u[s][r] = in_ ? ld_stream(wr[r] + jj_ * 16) : make_uint4(0, 0, 0, 0); \
            h[s][r] = in_ ? dr[r][Q4 ? jj_ : jj_ >> 1] : __half();                \
        }                                                                         \
    } while (0)
#pragma unroll
    for (int s = 0; s < D; s++) Q1_LOAD(s, s);
    PDL_ENTRY();
    for (int64_t t = 0; t < T; t += D) {
#pragma unroll
        for (int s = 0; s < D; s++) {
            const int64_t jj = lane + 32 * (t + s);
            if (t + s < T) {
                const int64_t b = Q4 ? jj : jj >> 1;
                int xv[8];
                if (Q4) {
                    const uint4 *xr = (const uint4 *)(xq + b * 32);
                    const uint4 lo = xr[0], hi = xr[1];
                    xv[0] = (int)lo.x, xv[1] = (int)lo.y, xv[2] = (int)lo.z, xv[3] = (int)lo.w;
                    xv[4] = (int)hi.x, xv[5] = (int)hi.y, xv[6] = (int)hi.z, xv[7] = (int)hi.w;
                } else {
                    const uint4 x4 = *(const uint4 *)(xq + jj * 16);
                    xv[0] = (int)x4.x, xv[1] = (int)x4.y, xv[2] = (int)x4.z, xv[3] = (int)x4.w;
                }
                const float xdb = xd[b];
                const int xsb = Q4 ? xs[b] : 0;
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const int w[4] = {(int)u[s][r].x, (int)u[s][r].y, (int)u[s][r].z, (int)u[s][r].w};
                    int isum = 0;
                    if (Q4) {
#pragma unroll
                        for (int i = 0; i < 4; i++) {
                            isum = __dp4a(w[i] & 0x0F0F0F0F, xv[i], isum);
                            isum = __dp4a((w[i] >> 4) & 0x0F0F0F0F, xv[4 + i], isum);
                        }
                        isum -= 8 * xsb;
                    } else {
#pragma unroll
                        for (int i = 0; i < 4; i++) isum = __dp4a(w[i], xv[i], isum);
                    }
                    acc[r] += __half2float(h[s][r]) * xdb * (float)isum;
                }
            }
            Q1_LOAD(s, t + D + s); /* stage s refilled at once: D - 1 others stay in flight */
        }
    }
#undef Q1_LOAD
}

/* y = x · wᵀ (+ bias) for one row x: R weight rows a warp (gemv_q1_rows), bit for bit
 * gemv_q_kernel<1, 1, ...>; the choice of R in gemv_q_launch */
template <int R, int D, int Q4>
__global__ void __launch_bounds__(QV_THREADS)
    gemv_q1_kernel(float *__restrict__ y, const int8_t *__restrict__ xq, const float *__restrict__ xd,
                   const int32_t *__restrict__ xs, const uint8_t *__restrict__ qs,
                   const __half *__restrict__ dw, const void *bias, int bdt, int64_t n, int64_t k) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t row0 = ((int64_t)blockIdx.x * (QV_THREADS / 32) + warp) * R;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.f;
    gemv_q1_rows<R, D, Q4>(acc, xq, xd, xs, qs, dw, row0, n, k, lane);
#pragma unroll
    for (int r = 0; r < R; r++) {
        for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
        if (lane == 0 && row0 + r < n) y[row0 + r] = acc[r] + (bias ? ldw_any(bias, bdt, row0 + r) : 0.f);
    }
}

/* gemv_q_glu_kernel for one row x with R columns a warp: warps 0-3 take gate rows
 * 4Rb + Rw .. + R - 1, warps 4-7 the same up rows (gemv_q1_rows), then the SwiGLU as glu_finish
 * does it: bit for bit gemv_q_glu_kernel<1, ...> */
template <int R, int D, int Q4>
__global__ void __launch_bounds__(QV_THREADS)
    gemv_q1_glu_kernel(float *__restrict__ h, const int8_t *__restrict__ xq, const float *__restrict__ xd,
                       const int32_t *__restrict__ xs, const uint8_t *__restrict__ qs,
                       const __half *__restrict__ dw, int64_t I, int64_t k) {
    __shared__ float up[4][R];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t j0 = ((int64_t)blockIdx.x * 4 + (warp & 3)) * R; /* the first output column */
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.f;
    /* the gate rows j0 .. (up: I + j0 ..); past I the last valid one is read and dropped */
    const int64_t first = GLMV_MIN(j0, I - 1) + (warp >= 4 ? I : 0), last = (warp >= 4 ? 2 * I : I);
    gemv_q1_rows<R, D, Q4>(acc, xq, xd, xs, qs, dw, first, last, k, lane);
#pragma unroll
    for (int r = 0; r < R; r++) {
        for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
        if (warp >= 4 && lane == 0) up[warp & 3][r] = acc[r] + 0.f;
    }
    __syncthreads();
    if (warp < 4 && lane == 0)
#pragma unroll
        for (int r = 0; r < R; r++)
            if (j0 + r < I) h[j0 + r] = silu_mul(acc[r] + 0.f, up[warp][r]);
}

/* rows a warp for one row x: 4 where the grid keeps two blocks of 8 warps a multiprocessor, else 2
 * where it can, else 1 (unset or GLMV_CUDA_QROWS=auto); =1, 2 or 4 fixes it (1: gemv_q_kernel's warp
 * a row). Measured on an H100 (docs/PERFORMANCE.md, "The switches measured"): one stream's Q4_0
 * decode 283 -> 303 tokens/s, Q8_0 205 -> 218; test_cuda matmul_quant_rows holds it bit for bit. */
static int q1_rows(const cuda_ctx *c, int64_t n) {
    const char *e = getenv("GLMV_CUDA_QROWS");
    if (!e || !strcmp(e, "auto")) return n >= 64 * (int64_t)c->sms ? 4 : n >= 32 * (int64_t)c->sms ? 2 : 1;
    return atoi(e) >= 4 ? 4 : atoi(e) >= 2 ? 2 : 1;
}

/* h[r, j] = silu(g) * u for g = x[r] · w[j], u = x[r] · w[I + j] (w: [gate | up], 2I rows of Q8_0
 * or Q4_0, no bias), x already rounded to int8 blocks: warps 0-3 of a block take gate rows
 * 4b .. 4b + 3, warps 4-7 the same up rows, each row summed as gemv_q_kernel<M, 1, ...> sums it
 * (so the same floats as that product), and the SwiGLU is swiglu_kernel's silu_mul: bit for bit
 * the product and then the SwiGLU. */
template <int M, int U, int Q4>
__global__ void __launch_bounds__(QV_THREADS)
    gemv_q_glu_kernel(float *__restrict__ h, const int8_t *__restrict__ xq, const float *__restrict__ xd,
                      const int32_t *__restrict__ xs, const uint8_t *__restrict__ qs,
                      const __half *__restrict__ dw, int64_t I, int64_t k) {
    __shared__ float up[4][M];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t j = (int64_t)blockIdx.x * 4 + (warp & 3); /* the output column */
    const bool ok = j < I;
    const int64_t row = (warp >= 4 ? I : 0) + (ok ? j : 0), nb = k / 32;
    float acc[M];
#pragma unroll
    for (int r = 0; r < M; r++) acc[r] = 0.f;
    gemv_q_row<M, U, Q4>(acc, xq, xd, xs, (const uint4 *)(qs + row * (Q4 ? k / 2 : k)), dw + row * nb,
                         ok ? (Q4 ? nb : 2 * nb) : 0, k, lane, 32);
    glu_finish<M>(acc, up, warp, lane, ok, h, I, j);
}

template <int M, int Q4>
static void gemv_q_launch(cuda_ctx *c, float *y, const int8_t *xq, const float *xd, const int32_t *xs,
                          const glmv_tensor *w, const glmv_tensor *bias, int64_t n, int64_t k) {
    const uint8_t *qs = (const uint8_t *)w->data;
    const __half *d = (const __half *)(qs + quant_scales_offset(w->dtype, n, k));
    const void *bp = bias ? bias->data : NULL;
    int bdt = bias ? bias->dtype : 0;
    constexpr int U = M == 1 ? 8 : 4; /* more bytes in flight when x is one row */
    /* (fewer than 8 rows a multiprocessor: 8 warps a row, below) */
    const int R = M == 1 && n >= 8 * (int64_t)c->sms ? q1_rows(c, n) : 1;
    if (R == 4)
        cuda_launch(c, gemv_q1_kernel<4, 2, Q4>, cdiv(n, 32), QV_THREADS, 0, y, xq, xd, xs, qs, d, bp, bdt, n, k);
    else if (R == 2)
        cuda_launch(c, gemv_q1_kernel<2, 4, Q4>, cdiv(n, 16), QV_THREADS, 0, y, xq, xd, xs, qs, d, bp, bdt, n, k);
    else if (n >= 8 * (int64_t)c->sms)
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

template <int M, int Q4>
static void glu_q_launch(cuda_ctx *c, float *h, const int8_t *xq, const float *xd, const int32_t *xs,
                         const glmv_tensor *w, int64_t I, int64_t k) {
    const uint8_t *qs = (const uint8_t *)w->data;
    const __half *d = (const __half *)(qs + quant_scales_offset(w->dtype, 2 * I, k));
    constexpr int U = M == 1 ? 8 : 4;
    const int R = M == 1 ? q1_rows(c, 2 * I) : 1;
    if (R == 4) cuda_launch(c, gemv_q1_glu_kernel<4, 2, Q4>, cdiv(I, 16), QV_THREADS, 0, h, xq, xd, xs, qs, d, I, k);
    else if (R == 2) cuda_launch(c, gemv_q1_glu_kernel<2, 4, Q4>, cdiv(I, 8), QV_THREADS, 0, h, xq, xd, xs, qs, d, I, k);
    else cuda_launch(c, gemv_q_glu_kernel<M, U, Q4>, cdiv(I, 4), QV_THREADS, 0, h, xq, xd, xs, qs, d, I, k);
}

template <int Q4>
static void glu_q_m(cuda_ctx *c, float *h, const int8_t *xq, const float *xd, const int32_t *xs,
                    const glmv_tensor *w, int64_t m, int64_t I, int64_t k) {
    switch (m) {
    case 1: glu_q_launch<1, Q4>(c, h, xq, xd, xs, w, I, k); break;
    case 2: glu_q_launch<2, Q4>(c, h, xq, xd, xs, w, I, k); break;
    case 3: glu_q_launch<3, Q4>(c, h, xq, xd, xs, w, I, k); break;
    case 4: glu_q_launch<4, Q4>(c, h, xq, xd, xs, w, I, k); break;
    case 5: glu_q_launch<5, Q4>(c, h, xq, xd, xs, w, I, k); break;
    case 6: glu_q_launch<6, Q4>(c, h, xq, xd, xs, w, I, k); break;
    case 7: glu_q_launch<7, Q4>(c, h, xq, xd, xs, w, I, k); break;
    default: glu_q_launch<8, Q4>(c, h, xq, xd, xs, w, I, k); break;
    }
}

int quant_gemv_max_m(glmv_dtype t) {
    (void)t;
    return 2 * GEMV_MAX_M;
}

/* x [m, k] rounded to int8 blocks in the activations' buffer: the values, then their scales and
 * block sums, each 256-byte aligned; 0 when out of memory (the error is recorded) */
static int quant_x(cuda_ctx *c, const float *x, int64_t m, int64_t k, int8_t **xq, float **xd, int32_t **xs) {
    const int64_t nb = m * (k / 32);
    size_t a = ((size_t)(m * k) + 255) & ~(size_t)255, b = ((size_t)nb * 4 + 255) & ~(size_t)255;
    if (x == c->qn_src && m == c->qn_m && k == c->qn_k) { /* the norm that wrote x rounded it too */
        char *s = (char *)c->qn;
        *xq = (int8_t *)s;
        *xd = (float *)(s + a);
        *xs = (int32_t *)(s + a + b);
        return 1;
    }
    char *s = (char *)qx_scratch(c, a + 2 * b);
    if (!s) return 0;
    *xq = (int8_t *)s;
    *xd = (float *)(s + a);
    *xs = (int32_t *)(s + a + b);
    cuda_launch(c, quant_x_kernel, cdiv(nb, 8), 256, 0, *xq, *xd, *xs, x, nb);
    return 1;
}

void k_gemv_q(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w, const glmv_tensor *bias,
              int64_t m) {
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    if (m <= 0 || n <= 0) return;
    int8_t *xq;
    float *xd;
    int32_t *xs;
    if (!quant_x(c, x, m, k, &xq, &xd, &xs)) return;
    /* rows in groups of GEMV_MAX_M, the weights read once per group; a row's sums do not
     * depend on its group (matmul_rows' promise) */
    for (int64_t r0 = 0; r0 < m; r0 += GEMV_MAX_M) {
        int64_t g = GLMV_MIN((int64_t)GEMV_MAX_M, m - r0), o = r0 * (k / 32);
        if (w->dtype == GLMV_Q4_0) gemv_q_m<1>(c, y + r0 * n, xq + r0 * k, xd + o, xs + o, w, bias, g, n, k);
        else if (w->dtype == GLMV_Q5_0) gemv_kq_m<0>(c, y + r0 * n, xq + r0 * k, xd + o, xs + o, w, bias, g, n, k);
        else if (w->dtype == GLMV_Q4_K) gemv_kq_m<1>(c, y + r0 * n, xq + r0 * k, xd + o, xs + o, w, bias, g, n, k);
        else if (w->dtype == GLMV_Q6_K) gemv_kq_m<2>(c, y + r0 * n, xq + r0 * k, xd + o, xs + o, w, bias, g, n, k);
        else gemv_q_m<0>(c, y + r0 * n, xq + r0 * k, xd + o, xs + o, w, bias, g, n, k);
    }
    cuda_check(c, "matmul (quantized gemv)");
}

int k_gemv_q_glu(cuda_ctx *c, float *h, const float *x, const glmv_tensor *w, int64_t m) {
    const int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w), I = n / 2;
    if ((w->dtype != GLMV_Q8_0 && w->dtype != GLMV_Q4_0) || m <= 0 || m > GEMV_MAX_M || n % 2 || I <= 0 ||
        k % 32 || cdiv(I, 4) > INT32_MAX)
        return 1;
    int8_t *xq;
    float *xd;
    int32_t *xs;
    if (!quant_x(c, x, m, k, &xq, &xd, &xs)) return 0; /* the error is recorded */
    if (w->dtype == GLMV_Q4_0) glu_q_m<1>(c, h, xq, xd, xs, w, m, I, k);
    else glu_q_m<0>(c, h, xq, xd, xs, w, m, I, k);
    cuda_check(c, "matmul + swiglu (quantized gemv)");
    return 0;
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
    if (is_kq(w->dtype)) {
        dequant_kq(c, out, bf16, w, r0, nr);
        cuda_check(c, "matmul (dequantize)");
        return;
    }
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
