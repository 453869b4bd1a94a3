/* gemv_stream.cu -- a one-stream decode step's products (one row of x) streamed through shared
 * memory: a block a multiprocessor, each block a run of whole weight rows, copied by bulk copies
 * into a ring of stages, the first ones asked for before the wait on the previous kernel.
 *
 * Why. A decode step of one stream is ~160 products of 8 to 220 MB, each one kernel; the matrix-
 * vector kernels (gemv.cu, quant.cu) start a warp a row (or four), each lane with 8 loads of 16
 * bytes in flight, so that a product is a few rounds of memory latency, plus the ramp of its
 * launch and the tail of its last blocks: a few microseconds each, which on a Q4_0 step of 4.9 GB
 * made the products stream at about half the bandwidth (docs/PERFORMANCE.md, "One stream on Q8_0
 * and Q4_0"). Here a product is one block per multiprocessor. Its thread 0 asks for the first
 * ST_STAGES stages of its rows (~96 KB) before waiting for the kernel before it (PDL_ENTRY): weights
 * are never written, and under programmatic dependent launch the block is resident as soon as
 * every block of the kernel before has started, so that with ~100 KB of shared memory a block its
 * bytes come while that kernel (and the small ones between two products) still runs: all of a
 * Q4_0 q/k/v or o product (~10 MB over 132 multiprocessors) is in flight or landed by the time x
 * is ready, and the copy engine keeps ~64-96 KB a multiprocessor in flight after it.
 *
 * The sums. Thread t of a row's TPR threads (TPR = 256, 128, 64 or 32: the widest that a row's
 * 16-byte chunks fill) takes chunks t, t + TPR, ... of every row; its share of x for those chunks
 * is loaded into registers once; each row's share is reduced over the warp (xor tree) and then
 * over the row's warps in their order. So a row's floats depend on the matrix's width alone, not
 * on which block or stage holds it, and gate/up + SwiGLU (GLU) gives bit for bit the product and
 * then swiglu. They are not the matrix-vector kernels' floats (another order of the same sums);
 * the block formats' block sums are exact integers as there (dp4a) and scaled as there.
 *
 * Layout: BF16 rows of k values; Q8_0 / Q4_0 as quant.cu splits them (the values, rows of k or
 * k/2 bytes, then the f16 scales [n, k/32]); a stage holds RS whole rows (at most ST_STAGE_BYTES)
 * and the 16-byte-aligned window of their scales; three stages and the rest take <= ~101 KB, so
 * that two products' blocks (one streaming, the next asking for its first stages) share a
 * multiprocessor. */
#include "cuda/cuda_impl.h"

#define ST_THREADS 256
#define ST_STAGES 3         /* stages a block (GLMV_CUDA_STREAM_STAGES: 2 to 8) */
#define ST_STAGE_BYTES 32768 /* a stage's rows at most (GLMV_CUDA_STREAM_BYTES: 8 to 64 KB) */
#define ST_MAX_STAGES 8
#define ST_MAX_RS 64
#define ST_MAX_CPT 8 /* BF16 down_proj: 1,712 chunks a row, 7 a thread (x: 56 registers) */

enum { ST_BF16 = 0, ST_Q8 = 1, ST_Q4 = 2 };

struct st_args {
    float *y;             /* y[n] (+ bias), or GLU: h[I] */
    const float *x;       /* BF16: x[k] */
    const int8_t *xq;     /* block formats: x rounded (quant.cu's quant_x) */
    const float *xd;
    const int32_t *xs;
    const uint8_t *w;     /* the rows */
    const uint8_t *d;     /* block formats: the f16 scales [n, k/32] */
    const void *bias;
    int bdt;
    int64_t n;            /* the rows; GLU: I, the columns (2I rows) */
    int64_t k;
    int rowbytes, C, TPR, RS; /* a row's bytes and 16-byte chunks, threads a row, rows a stage */
    int sstage;           /* bytes of a stage's scales window (0: BF16) */
    int ns;               /* stages */
    int off_s, off_red, off_g, off_bar; /* the shared-memory regions */
};

/* rows [row0, row0 + nr) of stage s (GLU: the gate rows' stages, then the same columns' up rows) */
__device__ __forceinline__ void st_stage(const st_args &a, int64_t j0, int cnt, int per_seg, int s, int64_t &row0,
                                         int &nr, int &lr0, int &seg) {
    seg = s >= per_seg;
    lr0 = (s - seg * per_seg) * a.RS;
    nr = min(a.RS, cnt - lr0);
    row0 = (seg ? a.n : 0) + j0 + lr0;
}

template <int FMT>
__device__ __forceinline__ void st_issue(const st_args &a, uint32_t sm, int64_t j0, int cnt, int per_seg, int s) {
    int64_t row0;
    int nr, lr0, seg;
    st_stage(a, j0, cnt, per_seg, s, row0, nr, lr0, seg);
    const int slot = s % a.ns;
    const uint32_t bar = sm + a.off_bar + 8 * slot;
    const int qbytes = nr * a.rowbytes;
    int sbytes = 0;
    int64_t s0 = 0;
    if (FMT != ST_BF16) {
        const int64_t nb = a.k / 32, sa = row0 * nb * 2, se = sa + nr * nb * 2;
        s0 = sa & ~(int64_t)15;
        sbytes = (int)(((se + 15) & ~(int64_t)15) - s0); /* ends at most 14 bytes past the scales: quant_device_bytes' slack */
    }
    mbar_expect_tx(bar, qbytes + sbytes);
    bulk_g2s(sm + slot * a.RS * a.rowbytes, a.w + row0 * a.rowbytes, qbytes, bar);
    if (FMT != ST_BF16) bulk_g2s(sm + a.off_s + slot * a.sstage, a.d + s0, sbytes, bar);
}

template <int FMT, int CPT, bool GLU>
__global__ void __launch_bounds__(ST_THREADS, 2) gemv_stream_kernel(st_args a) {
    extern __shared__ __align__(128) uint8_t smem[];
    const uint32_t sm = (uint32_t)__cvta_generic_to_shared(smem);
    const int tid = threadIdx.x, lane = tid & 31;
    const int G = gridDim.x, TPR = a.TPR, groups = ST_THREADS / TPR, gi = tid / TPR, tig = tid % TPR,
              wig = tig >> 5, WPG = TPR >> 5;
    const int64_t j0 = a.n * blockIdx.x / G, j1 = a.n * (blockIdx.x + 1) / G;
    const int cnt = (int)(j1 - j0), per_seg = (cnt + a.RS - 1) / a.RS, S = GLU ? 2 * per_seg : per_seg;
    if (tid == 0) {
        for (int i = 0; i < a.ns; i++) mbar_init(sm + a.off_bar + 8 * i, 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        for (int s = 0; s < S && s < a.ns; s++) st_issue<FMT>(a, sm, j0, cnt, per_seg, s);
    }
    __syncthreads(); /* the mbarriers initialised for every thread */
    PDL_ENTRY();     /* x comes from the kernel before */
    const int64_t nb = a.k / 32;
    /* this thread's share of x: chunks tig + c TPR */
    float xf[FMT == ST_BF16 ? CPT : 1][8];
    int xi[FMT == ST_BF16 ? 1 : CPT][FMT == ST_Q4 ? 8 : 4];
    float xdv[CPT];
    int xsv[CPT];
#pragma unroll
    for (int c = 0; c < CPT; c++) {
        const int j = tig + c * TPR;
        const bool in = j < a.C;
        if constexpr (FMT == ST_BF16) {
            const float4 *xr = (const float4 *)(a.x + (in ? (int64_t)j * 8 : 0));
            const float4 p = xr[0], q = xr[1];
            xf[c][0] = p.x, xf[c][1] = p.y, xf[c][2] = p.z, xf[c][3] = p.w;
            xf[c][4] = q.x, xf[c][5] = q.y, xf[c][6] = q.z, xf[c][7] = q.w;
        } else if constexpr (FMT == ST_Q8) {
            const uint4 v = *(const uint4 *)(a.xq + (in ? (int64_t)j * 16 : 0));
            xi[c][0] = (int)v.x, xi[c][1] = (int)v.y, xi[c][2] = (int)v.z, xi[c][3] = (int)v.w;
            xdv[c] = a.xd[in ? j >> 1 : 0];
        } else {
            const uint4 *xr = (const uint4 *)(a.xq + (in ? (int64_t)j * 32 : 0));
            const uint4 lo = xr[0], hi = xr[1];
            xi[c][0] = (int)lo.x, xi[c][1] = (int)lo.y, xi[c][2] = (int)lo.z, xi[c][3] = (int)lo.w;
            xi[c][4] = (int)hi.x, xi[c][5] = (int)hi.y, xi[c][6] = (int)hi.z, xi[c][7] = (int)hi.w;
            xdv[c] = a.xd[in ? j : 0];
            xsv[c] = a.xs[in ? j : 0];
        }
    }
    float *red = (float *)(smem + a.off_red), *gs = (float *)(smem + a.off_g);
    for (int s = 0; s < S; s++) {
        int64_t row0;
        int nr, lr0, seg;
        st_stage(a, j0, cnt, per_seg, s, row0, nr, lr0, seg);
        const int slot = s % a.ns;
        mbar_wait(sm + a.off_bar + 8 * slot, (s / a.ns) & 1);
        const uint8_t *st = smem + slot * a.RS * a.rowbytes;
        const __half *sd = (const __half *)(smem + a.off_s + slot * a.sstage + ((row0 * nb * 2) & 15));
        float *rd = red + (s & 1) * a.RS * 8;
#pragma unroll 2
        for (int lr = gi; lr < nr; lr += groups) {
            float acc = 0.f;
#pragma unroll
            for (int c = 0; c < CPT; c++) {
                const int j = tig + c * TPR;
                if (j < a.C) {
                    const uint4 u = *(const uint4 *)(st + lr * a.rowbytes + j * 16);
                    if constexpr (FMT == ST_BF16) {
                        float f[8];
                        bf16x8(u, f);
                        acc += f[0] * xf[c][0] + f[1] * xf[c][1] + f[2] * xf[c][2] + f[3] * xf[c][3] +
                               f[4] * xf[c][4] + f[5] * xf[c][5] + f[6] * xf[c][6] + f[7] * xf[c][7];
                    } else {
                        const int w[4] = {(int)u.x, (int)u.y, (int)u.z, (int)u.w};
                        int isum = 0;
                        if constexpr (FMT == ST_Q4) {
#pragma unroll
                            for (int i = 0; i < 4; i++) {
                                isum = __dp4a(w[i] & 0x0F0F0F0F, xi[c][i], isum);
                                isum = __dp4a((w[i] >> 4) & 0x0F0F0F0F, xi[c][4 + i], isum);
                            }
                            isum -= 8 * xsv[c];
                        } else {
#pragma unroll
                            for (int i = 0; i < 4; i++) isum = __dp4a(w[i], xi[c][i], isum);
                        }
                        const float dw = __half2float(sd[lr * nb + (FMT == ST_Q4 ? j : j >> 1)]);
                        acc += dw * xdv[c] * (float)isum;
                    }
                }
            }
            for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
            if (lane == 0) rd[lr * 8 + wig] = acc;
        }
        __syncthreads(); /* the stage read, its rows' warp sums in rd */
        if (tid == 0 && s + a.ns < S) {
            asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
            st_issue<FMT>(a, sm, j0, cnt, per_seg, s + a.ns);
        }
        if (tid < nr) { /* rd[(s & 1)] is written again two stages on, after another barrier */
            float v = rd[tid * 8];
            for (int w = 1; w < WPG; w++) v += rd[tid * 8 + w];
            if (!GLU) {
                const int64_t row = row0 + tid;
                a.y[row] = v + (a.bias ? ldw_any(a.bias, a.bdt, row) : 0.f);
            } else if (!seg) {
                gs[lr0 + tid] = v + 0.f; /* as gemv_finish stores a product without a bias */
            } else {
                a.y[j0 + lr0 + tid] = silu_mul(gs[lr0 + tid], v + 0.f);
            }
        }
    }
}

/* ------------------------------------------------------------ launch */

/* GLMV_CUDA_STREAM=1 takes it, =0 not; unset: ST_DEFAULT */
#define ST_DEFAULT 0
static int stream_off(void) {
    const char *e = getenv("GLMV_CUDA_STREAM");
    return e && *e ? !strcmp(e, "0") : !ST_DEFAULT;
}

#define ST_SMEM_MAX (227 * 1024) /* the most a block may have (~100 KB by default) */

/* the shared memory a block may ask for, and the multiprocessors' split of L1 and shared memory at
 * its most shared: two products' blocks (~100 KB each) side by side */
template <typename K>
static int st_attr1(K kern) {
    return cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, ST_SMEM_MAX) != cudaSuccess ||
           cudaFuncSetAttribute(kern, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared) !=
               cudaSuccess;
}
template <int FMT, bool GLU>
static int st_attr(void) {
    int bad = st_attr1(gemv_stream_kernel<FMT, 1, GLU>) | st_attr1(gemv_stream_kernel<FMT, 2, GLU>) |
              st_attr1(gemv_stream_kernel<FMT, 4, GLU>);
    if constexpr (FMT == ST_BF16) bad |= st_attr1(gemv_stream_kernel<FMT, 8, GLU>);
    return bad;
}

int k_stream_init(cuda_ctx *c) {
    c->stream_gemv = 0;
    if (!c->pdl) return 0; /* (without dependent launch nothing is asked for early) */
    int bad = st_attr<ST_BF16, false>() | st_attr<ST_BF16, true>() | st_attr<ST_Q8, false>() | st_attr<ST_Q8, true>() |
              st_attr<ST_Q4, false>() | st_attr<ST_Q4, true>();
    if (bad) {
        cudaGetLastError(); /* not an error of the backend: the matrix-vector kernels stay */
        return 0;
    }
    /* the ring's shape, read once (for measuring; see ST_STAGES, ST_STAGE_BYTES, ST_MAX_CPT) */
    const char *ne = getenv("GLMV_CUDA_STREAM_STAGES"), *be = getenv("GLMV_CUDA_STREAM_BYTES"),
               *ce = getenv("GLMV_CUDA_STREAM_CPT");
    c->stream_ns = ne && atoi(ne) >= 2 ? GLMV_MIN(atoi(ne), ST_MAX_STAGES) : ST_STAGES;
    c->stream_bytes = be && atoi(be) >= 8192 ? GLMV_MIN(atoi(be), 65536) : ST_STAGE_BYTES;
    c->stream_cpt = ce && atoi(ce) == 4 ? 4 : ST_MAX_CPT;
    c->stream_gemv = 1;
    return 0;
}

/* 0 when launched, 1 when no kernel has cpt chunks a thread (8: BF16 only) */
template <int FMT, bool GLU>
static int st_launch(cuda_ctx *c, const st_args &a, int cpt, size_t smem) {
    if (cpt == 1) cuda_launch(c, gemv_stream_kernel<FMT, 1, GLU>, c->sms, ST_THREADS, smem, a);
    else if (cpt == 2) cuda_launch(c, gemv_stream_kernel<FMT, 2, GLU>, c->sms, ST_THREADS, smem, a);
    else if (cpt == 4) cuda_launch(c, gemv_stream_kernel<FMT, 4, GLU>, c->sms, ST_THREADS, smem, a);
    else if constexpr (FMT == ST_BF16) cuda_launch(c, gemv_stream_kernel<FMT, 8, GLU>, c->sms, ST_THREADS, smem, a);
    else return 1;
    return 0;
}

int k_gemv_stream(cuda_ctx *c, float *y, const float *x, const int8_t *xq, const float *xd, const int32_t *xs,
                  const glmv_tensor *w, const glmv_tensor *bias, int glu) {
    if (!c->stream_gemv || stream_off()) return 1; /* (the switch read each call, as GLMV_CUDA_QROWS is) */
    const int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    const int fmt = w->dtype == GLMV_BF16 ? ST_BF16 : w->dtype == GLMV_Q8_0 ? ST_Q8 : w->dtype == GLMV_Q4_0 ? ST_Q4 : -1;
    if (fmt < 0 || n <= 0 || k <= 0 || (glu && (n % 2 || bias)) || (uintptr_t)w->data % 16) return 1;
    if (fmt == ST_BF16 ? (k % 8 || (uintptr_t)x % 16) : (k % 32 || (uintptr_t)xq % 16)) return 1;
    const int64_t rowbytes = fmt == ST_BF16 ? 2 * k : fmt == ST_Q8 ? k : k / 2, C = rowbytes / 16;
    const int ns = c->stream_ns;
    const int64_t sbb = c->stream_bytes;
    if (rowbytes > sbb) return 1;
    const int TPR = C >= 256 ? 256 : C >= 128 ? 128 : C >= 64 ? 64 : 32;
    const int64_t cpt = (C + TPR - 1) / TPR;
    /* x a thread: up to 4 chunks for the block formats (Q8_0 k <= 16,384, Q4_0 k <= 32,768; wider
     * rows are declined here), up to 8 for BF16 (GLMV_CUDA_STREAM_CPT=4: 4) */
    if (cpt > (fmt != ST_BF16 ? 4 : c->stream_cpt)) return 1;
    const int64_t sbytes_row = fmt == ST_BF16 ? 0 : k / 32 * 2; /* a row's scales */
    const int RS = (int)GLMV_MAX((int64_t)1, GLMV_MIN((int64_t)ST_MAX_RS, sbb / (rowbytes + sbytes_row)));
    const int64_t rows = glu ? n / 2 : n, maxcnt = (rows + c->sms - 1) / c->sms;
    st_args a = {};
    a.y = y, a.x = x, a.xq = xq, a.xd = xd, a.xs = xs;
    a.w = (const uint8_t *)w->data;
    a.d = fmt == ST_BF16 ? NULL : a.w + quant_scales_offset(w->dtype, n, k);
    a.bias = bias ? bias->data : NULL;
    a.bdt = bias ? bias->dtype : 0;
    a.n = rows, a.k = k;
    a.rowbytes = (int)rowbytes, a.C = (int)C, a.TPR = TPR, a.RS = RS;
    a.sstage = fmt == ST_BF16 ? 0 : (int)(((int64_t)RS * (k / 32) * 2 + 31) & ~(int64_t)15);
    a.ns = ns;
    size_t off = (size_t)ns * RS * rowbytes;
    a.off_s = (int)off;
    off += (size_t)ns * a.sstage;
    a.off_red = (int)off;
    off += sizeof(float) * 2 * (size_t)RS * 8;
    a.off_g = (int)off;
    off += glu ? sizeof(float) * (size_t)maxcnt : 0;
    off = (off + 7) & ~(size_t)7;
    a.off_bar = (int)off;
    off += 8 * (size_t)ns;
    if (off > ST_SMEM_MAX) return 1; /* (only where the switches ask for more) */
    const int icpt = cpt == 1 ? 1 : cpt == 2 ? 2 : cpt <= 4 ? 4 : 8;
    int rc;
    if (fmt == ST_BF16) rc = glu ? st_launch<ST_BF16, true>(c, a, icpt, off) : st_launch<ST_BF16, false>(c, a, icpt, off);
    else if (fmt == ST_Q8) rc = glu ? st_launch<ST_Q8, true>(c, a, icpt, off) : st_launch<ST_Q8, false>(c, a, icpt, off);
    else rc = glu ? st_launch<ST_Q4, true>(c, a, icpt, off) : st_launch<ST_Q4, false>(c, a, icpt, off);
    if (rc) return 1;
    cuda_check(c, glu ? "matmul + swiglu (streamed)" : "matmul (streamed)");
    return 0;
}
