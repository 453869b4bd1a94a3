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
 * split_kernel: decode (a few query rows) and the fallback for any head dim:
 * fp32 throughout, flash-decoding: the keys are cut into chunks, each block
 * does one chunk for one kv head and all the query heads that share it (GQA),
 * with an online softmax over 64-key sub-tiles; combine_kernel merges chunks. */
#include "cuda/cuda_impl.h"

#include <math.h>

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

#define FA_BM 64
#define FA_BN 64

template <int HD> struct fa_smem {
    static constexpr int QS = HD + 8;    /* row stride of Qs/Ks in bf16: 4-word skew per row */
    static constexpr int VS = FA_BN + 8; /* row stride of Vt */
    static constexpr size_t bytes = (size_t)(2 * FA_BM * QS + HD * VS) * 2;
};

/* rows [r0, r0+64) of a [rows, ld] f32 matrix into bf16 shared [64][QS]; zeros past nrows */
template <int HD>
__device__ __forceinline__ void fa_load_rows(__nv_bfloat16 *dst, const float *src, int64_t ld,
                                             int64_t r0, int64_t nrows, int vec) {
    constexpr int QS = fa_smem<HD>::QS;
    for (int i = threadIdx.x; i < FA_BM * HD / 4; i += blockDim.x) {
        int r = i / (HD / 4), c = (i % (HD / 4)) * 4;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r0 + r < nrows) {
            const float *p = src + (r0 + r) * ld + c;
            if (vec) v = *(const float4 *)p;
            else v = make_float4(p[0], p[1], p[2], p[3]);
        }
        __nv_bfloat162 *d2 = (__nv_bfloat162 *)(dst + r * QS + c);
        d2[0] = __floats2bfloat162_rn(v.x, v.y);
        d2[1] = __floats2bfloat162_rn(v.z, v.w);
    }
}

/* V rows [r0, r0+64) transposed into Vt[HD][VS] (bf16), zeros past nrows */
template <int HD>
__device__ __forceinline__ void fa_load_vt(__nv_bfloat16 *vt, const float *src, int64_t ld,
                                           int64_t r0, int64_t nrows, int vec) {
    constexpr int VS = fa_smem<HD>::VS;
    for (int i = threadIdx.x; i < FA_BN * HD / 4; i += blockDim.x) {
        int r = i / (HD / 4), c = (i % (HD / 4)) * 4;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r0 + r < nrows) {
            const float *p = src + (r0 + r) * ld + c;
            if (vec) v = *(const float4 *)p;
            else v = make_float4(p[0], p[1], p[2], p[3]);
        }
        vt[(c + 0) * VS + r] = __float2bfloat16_rn(v.x);
        vt[(c + 1) * VS + r] = __float2bfloat16_rn(v.y);
        vt[(c + 2) * VS + r] = __float2bfloat16_rn(v.z);
        vt[(c + 3) * VS + r] = __float2bfloat16_rn(v.w);
    }
}

/* grid (q tiles, heads); q/k/v/out point at row 0 of the segment or sequence.
 * Query row i sees keys [0, nk) (causal == 0) or [0, pos0 + i] (causal). */
template <int HD>
__global__ void __launch_bounds__(128) flash_kernel(float *out, int64_t ldo, const float *q,
                                                    int64_t ldq, const float *k, int64_t ldk,
                                                    const float *v, int64_t ldv, int64_t nq,
                                                    int64_t nk, int causal, int64_t pos0,
                                                    int group, float scale_log2, int vec) {
    constexpr int QS = fa_smem<HD>::QS, VS = fa_smem<HD>::VS;
    extern __shared__ __align__(16) unsigned char fa_sh[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)fa_sh;
    __nv_bfloat16 *Ks = Qs + FA_BM * QS;
    __nv_bfloat16 *Vt = Ks + FA_BN * QS;

    const int h = blockIdx.y, g_kv = h / group;
    const int64_t q0 = (int64_t)blockIdx.x * FA_BM;
    q += (int64_t)h * HD;
    out += (int64_t)h * HD;
    k += (int64_t)g_kv * HD;
    v += (int64_t)g_kv * HD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gq = lane >> 2, tig = lane & 3;

    fa_load_rows<HD>(Qs, q, ldq, q0, nq, vec);
    __syncthreads();
    uint32_t qf[HD / 16][4];
    {
        const __nv_bfloat16 *qa = Qs + (warp * 16 + gq) * QS + tig * 2;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            qf[kk][0] = *(const uint32_t *)(qa + kk * 16);
            qf[kk][1] = *(const uint32_t *)(qa + 8 * QS + kk * 16);
            qf[kk][2] = *(const uint32_t *)(qa + kk * 16 + 8);
            qf[kk][3] = *(const uint32_t *)(qa + 8 * QS + kk * 16 + 8);
        }
    }
    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f; /* rows gq and gq+8 */
    const int64_t row_a = q0 + warp * 16 + gq, row_b = row_a + 8;

    int64_t kend = nk;
    if (causal) {
        int64_t last = pos0 + q0 + FA_BM; /* keys < this are visible to some row */
        if (last < kend) kend = last;
    }
    for (int64_t k0 = 0; k0 < kend; k0 += FA_BN) {
        __syncthreads(); /* the previous tile is no longer read */
        fa_load_rows<HD>(Ks, k, ldk, k0, nk, vec);
        fa_load_vt<HD>(Vt, v, ldv, k0, nk, vec);
        __syncthreads();

        float s[FA_BN / 8][4];
#pragma unroll
        for (int nb = 0; nb < FA_BN / 8; nb++) {
            s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
            const __nv_bfloat16 *kb = Ks + (nb * 8 + gq) * QS + tig * 2;
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                uint32_t b0 = *(const uint32_t *)(kb + kk * 16);
                uint32_t b1 = *(const uint32_t *)(kb + kk * 16 + 8);
                mma_bf16(s[nb], qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], b0, b1);
            }
        }
        /* scale, mask, running max */
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < FA_BN / 8; nb++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int64_t col = k0 + nb * 8 + tig * 2 + (e & 1);
                int64_t row = e < 2 ? row_a : row_b;
                bool ok = col < nk && (!causal || col <= pos0 + row);
                float x = ok ? s[nb][e] * scale_log2 : -INFINITY;
                s[nb][e] = x;
                if (e < 2) mx_a = fmaxf(mx_a, x);
                else mx_b = fmaxf(mx_b, x);
            }
#pragma unroll
        for (int off = 1; off <= 2; off <<= 1) {
            mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, off));
            mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, off));
        }
        float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
        float ref_a = mn_a == -INFINITY ? 0.f : mn_a, ref_b = mn_b == -INFINITY ? 0.f : mn_b;
        float al_a = exp2f(m_a - ref_a), al_b = exp2f(m_b - ref_b); /* exp2(-inf) = 0 */
        m_a = mn_a;
        m_b = mn_b;
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
        for (int kb = 0; kb < FA_BN / 16; kb++) {
            uint32_t a0 = pack_bf16(s[2 * kb][0], s[2 * kb][1]);
            uint32_t a1 = pack_bf16(s[2 * kb][2], s[2 * kb][3]);
            uint32_t a2 = pack_bf16(s[2 * kb + 1][0], s[2 * kb + 1][1]);
            uint32_t a3 = pack_bf16(s[2 * kb + 1][2], s[2 * kb + 1][3]);
            const __nv_bfloat16 *vb = Vt + gq * VS + kb * 16 + tig * 2;
#pragma unroll
            for (int nb = 0; nb < HD / 8; nb++) {
                uint32_t b0 = *(const uint32_t *)(vb + nb * 8 * VS);
                uint32_t b1 = *(const uint32_t *)(vb + nb * 8 * VS + 8);
                mma_bf16(o[nb], a0, a1, a2, a3, b0, b1);
            }
        }
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
#pragma unroll
    for (int nb = 0; nb < HD / 8; nb++) {
        int c = nb * 8 + tig * 2;
        if (row_a < nq) {
            out[row_a * ldo + c] = o[nb][0] * inv_a;
            out[row_a * ldo + c + 1] = o[nb][1] * inv_a;
        }
        if (row_b < nq) {
            out[row_b * ldo + c] = o[nb][2] * inv_b;
            out[row_b * ldo + c + 1] = o[nb][3] * inv_b;
        }
    }
}

template <int HD>
static int flash_launch(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq,
                        const float *k, int64_t ldk, const float *v, int64_t ldv, int64_t nq,
                        int64_t nk, int causal, int64_t pos0, int n_heads, int group,
                        float scale) {
    static int attr_set[64]; /* per device */
    size_t sh = fa_smem<HD>::bytes;
    if (sh > 48 * 1024 && !attr_set[c->dev & 63]) {
        cudaError_t e = cudaFuncSetAttribute(flash_kernel<HD>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
        if (e != cudaSuccess) return cuda_fail(c, "attention: shared memory", e);
        attr_set[c->dev & 63] = 1;
    }
    int vec = !(ldq & 3) && !(ldk & 3) && !(ldv & 3) && !((uintptr_t)q % 16) &&
              !((uintptr_t)k % 16) && !((uintptr_t)v % 16);
    for (int64_t t0 = 0; t0 < nq; t0 += (int64_t)FA_BM * 65535) { /* grid.x is ample */
        int64_t nqq = nq - t0;
        dim3 grid(cdiv(nqq, FA_BM), (unsigned)n_heads);
        flash_kernel<HD><<<grid, 128, sh, c->stream>>>(out + t0 * ldo, ldo, q + t0 * ldq, ldq, k,
                                                       ldk, v, ldv, nqq, nk, causal, pos0 + t0,
                                                       group, scale * LOG2E, vec);
    }
    return cuda_check(c, "attention (flash)");
}

/* ------------------------------------------------------------ fp32 split */

#define SP_T 64       /* keys per sub-tile */
#define SP_THREADS 256
#define SP_HPT 8      /* heads per thread in the score loop: group <= 4 * 8 */

/* grid (chunks, kv heads, query rows (strided)). Chunk c covers keys
 * [c*chunk, min(nk, (c+1)*chunk)). Query row i sees keys <= lim0 + i (causal)
 * or all nk. Writes part[((i * n_heads + h) * n_chunks + c) * (hd + 2) + ...]
 * = unnormalised o[hd], m, l. */
__global__ void __launch_bounds__(SP_THREADS) split_kernel(
    float *part, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
    int64_t ldv, int64_t n, int64_t nk, int causal, int64_t pos0, int n_heads, int group,
    int hd, int64_t chunk, float scale_log2) {
    extern __shared__ __align__(16) float sp_sh[];
    const int qs = hd + 4;                          /* q row stride (bank skew) */
    float *qsh = sp_sh;                             /* [group][qs] */
    float *ssh = qsh + group * qs;                  /* [group][SP_T] */
    float *acc = ssh + group * SP_T;                /* [group][hd] */
    float *mst = acc + group * hd;                  /* [group] running max */
    float *lst = mst + group;                       /* [group] running sum */
    float *alf = lst + group;                       /* [group] rescale of this tile */
    const int g_kv = blockIdx.y, n_chunks = gridDim.x;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, nwarp = SP_THREADS / 32;
    const int64_t c0 = (int64_t)blockIdx.x * chunk;
    const float *kb = k + (int64_t)g_kv * hd, *vb = v + (int64_t)g_kv * hd;
    const bool vec = !(hd & 3) && !(ldk & 3) && !((uintptr_t)k % 16) && !(ldq & 3) &&
                     !((uintptr_t)q % 16);

    for (int64_t i = blockIdx.z; i < n; i += gridDim.z) {
        int64_t lim = causal ? pos0 + i + 1 : nk; /* keys < lim are visible */
        if (lim > nk) lim = nk;
        int64_t c1 = c0 + chunk < lim ? c0 + chunk : lim;
        __syncthreads();
        for (int j = tid; j < group * hd; j += SP_THREADS) {
            int hh = j / hd, d = j % hd;
            qsh[hh * qs + d] = q[i * ldq + (int64_t)(g_kv * group + hh) * hd + d];
            acc[j] = 0.f;
        }
        for (int j = tid; j < group; j += SP_THREADS) {
            mst[j] = -INFINITY;
            lst[j] = 0.f;
        }
        __syncthreads();
        for (int64_t t0 = c0; t0 < c1; t0 += SP_T) {
            /* scores: thread -> key t0 + tid % SP_T, heads tid / SP_T + 4r */
            {
                const int tl = tid % SP_T, hj = tid / SP_T;
                const int64_t t = t0 + tl;
                float dot[SP_HPT];
#pragma unroll
                for (int r = 0; r < SP_HPT; r++) dot[r] = 0.f;
                if (t < c1) {
                    const float *kr = kb + t * ldk;
                    if (vec) {
                        for (int d = 0; d < hd; d += 4) {
                            float4 kv = *(const float4 *)(kr + d);
#pragma unroll
                            for (int r = 0; r < SP_HPT; r++) {
                                int hh = hj + 4 * r;
                                if (hh < group) {
                                    float4 qv = *(const float4 *)(qsh + hh * qs + d);
                                    dot[r] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z +
                                              qv.w * kv.w;
                                }
                            }
                        }
                    } else {
                        for (int d = 0; d < hd; d++) {
                            float kv = kr[d];
#pragma unroll
                            for (int r = 0; r < SP_HPT; r++) {
                                int hh = hj + 4 * r;
                                if (hh < group) dot[r] += qsh[hh * qs + d] * kv;
                            }
                        }
                    }
                }
#pragma unroll
                for (int r = 0; r < SP_HPT; r++) {
                    int hh = hj + 4 * r;
                    if (hh < group) ssh[hh * SP_T + tl] = t < c1 ? dot[r] * scale_log2 : -INFINITY;
                }
            }
            __syncthreads();
            /* per head: tile max, rescale, probabilities, sum (one warp per head) */
            for (int hh = warp; hh < group; hh += nwarp) {
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
            /* acc[h][d] = acc * alpha + sum_t p[h][t] v[t][d] */
            int64_t nt = c1 - t0 < SP_T ? c1 - t0 : SP_T;
            for (int j = tid; j < group * hd; j += SP_THREADS) {
                int hh = j / hd, d = j % hd;
                const float *pr = ssh + hh * SP_T;
                const float *vr = vb + t0 * ldv + d;
                float a = acc[j] * alf[hh];
                for (int t = 0; t < nt; t++) a += pr[t] * vr[t * ldv];
                acc[j] = a;
            }
            __syncthreads();
        }
        for (int j = tid; j < group * hd; j += SP_THREADS) {
            int hh = j / hd, d = j % hd;
            int h = g_kv * group + hh;
            part[((i * n_heads + h) * n_chunks + blockIdx.x) * (hd + 2) + d] = acc[j];
        }
        for (int hh = tid; hh < group; hh += SP_THREADS) {
            int h = g_kv * group + hh;
            float *pp = part + ((i * n_heads + h) * n_chunks + blockIdx.x) * (hd + 2) + hd;
            pp[0] = mst[hh];
            pp[1] = lst[hh];
        }
    }
}

/* grid (n_heads, rows (strided)); out[i, h*hd + d] */
__global__ void combine_kernel(float *out, int64_t ldo, const float *part, int64_t n,
                               int n_heads, int hd, int n_chunks) {
    int h = blockIdx.x;
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
        const float *pp = part + ((i * n_heads + h) * n_chunks) * (hd + 2);
        float m = -INFINITY;
        for (int c = 0; c < n_chunks; c++) m = fmaxf(m, pp[c * (hd + 2) + hd]);
        float ref = m == -INFINITY ? 0.f : m;
        float l = 0.f;
        for (int c = 0; c < n_chunks; c++) {
            float lc = pp[c * (hd + 2) + hd + 1];
            if (lc > 0.f) l += lc * exp2f(pp[c * (hd + 2) + hd] - ref);
        }
        float inv = l > 0.f ? 1.f / l : 0.f;
        for (int d = threadIdx.x; d < hd; d += blockDim.x) {
            float a = 0.f;
            for (int c = 0; c < n_chunks; c++) {
                float lc = pp[c * (hd + 2) + hd + 1];
                if (lc > 0.f) a += pp[c * (hd + 2) + d] * exp2f(pp[c * (hd + 2) + hd] - ref);
            }
            out[i * ldo + (int64_t)h * hd + d] = a * inv;
        }
    }
}

static int split_launch(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq,
                        const float *k, int64_t ldk, const float *v, int64_t ldv, int64_t n,
                        int64_t nk, int causal, int64_t pos0, int n_heads, int n_kv_heads,
                        int hd, float scale) {
    int group = n_heads / n_kv_heads;
    if (group > 4 * SP_HPT)
        return cuda_fail(c, "attention: more than 32 query heads per kv head", cudaErrorInvalidValue);
    if (n <= 0 || nk <= 0) return 0;
    /* chunks: enough blocks to fill the GPU, at least one 64-key sub-tile each */
    int64_t blocks_per_chunk = (int64_t)n_kv_heads * (n < 65535 ? n : 65535);
    int64_t want = (4 * (int64_t)c->sms + blocks_per_chunk - 1) / blocks_per_chunk;
    int64_t n_chunks = cdiv(nk, SP_T);
    if (n_chunks > want) n_chunks = want;
    if (n_chunks < 1) n_chunks = 1;
    int64_t chunk = cdiv(cdiv(nk, n_chunks), SP_T) * SP_T;
    n_chunks = cdiv(nk, chunk);
    size_t part_bytes = sizeof(float) * (size_t)n * n_heads * n_chunks * (hd + 2);
    float *part = (float *)cuda_scratch(c, part_bytes);
    if (!part) return -1;
    size_t sh = sizeof(float) * ((size_t)group * (hd + 4) + group * SP_T + group * hd + 3 * group);
    if (sh > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(split_kernel,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
        if (e != cudaSuccess) return cuda_fail(c, "attention: shared memory", e);
    }
    unsigned gz = (unsigned)(n < 65535 ? n : 65535);
    split_kernel<<<dim3((unsigned)n_chunks, (unsigned)n_kv_heads, gz), SP_THREADS, sh,
                   c->stream>>>(part, q, ldq, k, ldk, v, ldv, n, nk, causal, pos0, n_heads,
                                group, hd, chunk, scale * LOG2E);
    if (cuda_check(c, "attention (split)")) return -1;
    int th = hd < 128 ? 32 * (int)cdiv(hd, 32) : 128;
    combine_kernel<<<dim3((unsigned)n_heads, gz), th, 0, c->stream>>>(out, ldo, part, n, n_heads,
                                                                     hd, (int)n_chunks);
    return cuda_check(c, "attention (combine)");
}

/* ------------------------------------------------------------------ ops */

/* below this many query rows the fp32 split kernel (decode) is used */
#define FLASH_MIN_ROWS 16

static int flash_ok(int hd) { return hd == 64 || hd == 128; }

static int flash_any(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq,
                     const float *k, int64_t ldk, const float *v, int64_t ldv, int64_t nq,
                     int64_t nk, int causal, int64_t pos0, int n_heads, int group, int hd,
                     float scale) {
    if (hd == 128)
        return flash_launch<128>(c, out, ldo, q, ldq, k, ldk, v, ldv, nq, nk, causal, pos0,
                                 n_heads, group, scale);
    return flash_launch<64>(c, out, ldo, q, ldq, k, ldk, v, ldv, nq, nk, causal, pos0, n_heads,
                            group, scale);
}

void k_attn_causal(cuda_ctx *c, float *out, const float *q, int64_t ldq, const float *kc,
                   const float *vc, int64_t n, int64_t pos0, int n_heads, int n_kv_heads,
                   int head_dim, float scale) {
    if (n <= 0) return;
    int64_t kvd = (int64_t)n_kv_heads * head_dim, ldo = (int64_t)n_heads * head_dim;
    if (n >= FLASH_MIN_ROWS && flash_ok(head_dim) && !getenv("GLMV_CUDA_NO_FLASH"))
        flash_any(c, out, ldo, q, ldq, kc, kvd, vc, kvd, n, pos0 + n, 1, pos0, n_heads,
                  n_heads / n_kv_heads, head_dim, scale);
    else
        split_launch(c, out, ldo, q, ldq, kc, kvd, vc, kvd, n, pos0 + n, 1, pos0, n_heads,
                     n_kv_heads, head_dim, scale);
}

void k_attn_segments(cuda_ctx *c, float *out, const float *q, int64_t ldq, const float *k,
                     int64_t ldk, const float *v, int64_t ldv, const int64_t *cu, int n_seg,
                     int n_heads, int head_dim, float scale) {
    int64_t ldo = (int64_t)n_heads * head_dim;
    int use_flash = flash_ok(head_dim) && !getenv("GLMV_CUDA_NO_FLASH");
    for (int s = 0; s < n_seg; s++) {
        int64_t a = cu[s], len = cu[s + 1] - cu[s];
        if (len <= 0) continue;
        int r;
        if (use_flash && len >= FLASH_MIN_ROWS)
            r = flash_any(c, out + a * ldo, ldo, q + a * ldq, ldq, k + a * ldk, ldk, v + a * ldv,
                          ldv, len, len, 0, 0, n_heads, 1, head_dim, scale);
        else
            r = split_launch(c, out + a * ldo, ldo, q + a * ldq, ldq, k + a * ldk, ldk,
                             v + a * ldv, ldv, len, len, 0, 0, n_heads, n_heads, head_dim, scale);
        if (r) return;
    }
}
