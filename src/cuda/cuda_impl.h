/* cuda_impl.h -- what the files of the CUDA backend share: the backend's
 * private state, error checking, and the kernel launchers each .cu file
 * provides. Not seen by the model code, which uses only ops.h.
 *
 * Error model: every launch is checked (cudaGetLastError); the first CUDA
 * error is kept (sticky) with the op that raised it, printed once to stderr,
 * and returned by be->status. After an error the ops do nothing, so a broken
 * device never makes the caller wait: the next be->read returns at once. */
#ifndef GLMV_CUDA_IMPL_H
#define GLMV_CUDA_IMPL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define _Noreturn [[noreturn]] /* base.h is C11 */
extern "C" {
#include "base.h"
#include "ops.h"
}
#undef _Noreturn

struct cuda_ctx {
    int dev;
    char device_name[256];
    cudaStream_t stream;
    cublasHandle_t blas;
    int sms;                     /* multiprocessors */
    int failed;                  /* sticky: first error kept in err */
    int pdl;                     /* launch with programmatic dependent launch */
    int wgmma;                   /* Hopper (sm_90a code): the wgmma flash kernel for head dim 128 */
    int bf16;                    /* be->bf16: bf16 tensor cores for GEMMs and prefill attention */
    int kv_bf16;                 /* be->caps.kv_bf16: the KV caches hold bf16 */
    char err[GLMV_ERR_SIZE];
    /* scratch for GEMM inputs in bf16 (f32 weight blocks in f32 precision) and
     * for split attention; grown on demand
     * (never during a captured step: sized by the first calls) */
    void *scratch;
    size_t scratch_bytes;
    void *qx;                    /* int8 activations of the quantized decode products (quant.cu) */
    size_t qx_bytes;
    /* A norm's output rounded to int8 blocks by the norm kernel itself (k_norm_add_norm, when
     * block-format weights are loaded: has_quant), in quant_x's layout, for the quantized product
     * that reads those rows next to take instead of rounding them again (quant.cu). Valid while
     * qn_src is set: cuda_launch clears it, so any kernel after the norm's ends it, and so do the
     * backend's copies and writes. */
    void *qn;
    size_t qn_bytes;
    const float *qn_src;
    int64_t qn_m, qn_k;
    int has_quant, qfold_off;    /* qfold_off: GLMV_CUDA_QFOLD=0 */
    /* Likewise a norm's output of more than GEMV_MAX_M rows rounded to bf16 by the norm kernel
     * itself (bf16 precision), for the BF16 product that reads those rows next to take instead of
     * converting them (k_to_bf16: the same rounding); valid while bn_src is set, cleared as qn_src
     * is and by the product that takes it. Not with GLMV_CUDA_BFOLD=0 (bfold_off). */
    void *bn;
    size_t bn_bytes;
    const float *bn_src;
    int64_t bn_m, bn_k;
    int bfold_off;
    void *workspace;             /* cuBLAS workspace */
    size_t workspace_bytes;
    int64_t allocated;           /* bytes from be->alloc and uploads, live */
    /* graphs (backend.cu): scratch_gen counts (re)allocations of scratch and qx, which a
     * recorded graph holds the addresses of; an error while recording is not sticky */
    unsigned scratch_gen;
    int capturing, capture_failed, no_graphs;
    struct cuda_vm *vm;          /* growing memory (vmm.cu), or NULL */
    int *mmq_cnt;                /* mmq.cu's split-k counters [MMQ_COUNTERS], zero between products */
    cublasLtHandle_t lt;         /* cuBLASLt, for products written in bf16 with the bias in the epilogue (be->mlp) */
    int dec_tile;                /* the decode attention's kernel and chunks (attention.cu, k_attn_init); -1: by the step */
    int dec_occ[2];              /* dec_tile_kernel's blocks a multiprocessor, head dims 128 and 64 */
    int dec_min_steps;           /* its chunks' 64-key steps at least (GLMV_CUDA_DEC_MIN_STEPS) */
    int lt_bias;                 /* a prompt's biases in cuBLASLt's epilogue (GLMV_CUDA_LT_BIAS, default 1) */
    void *bias32;                /* a BF16 bias widened for that epilogue (float32 outputs take float32 biases) */
    size_t bias32_bytes;
    int flash_bulk;              /* the wgmma flash kernel fed by bulk copies (GLMV_CUDA_FLASH_BULK, default 1) */
    int norm_tpb;                /* the norms' threads a row at most (kernels.cu; GLMV_CUDA_NORM_THREADS, default 1024) */
};

static inline cuda_ctx *ctx_of(glmv_backend *be) { return (cuda_ctx *)be->impl; }

/* Record the first error (printed once); returns -1. */
int cuda_fail(cuda_ctx *c, const char *what, cudaError_t e);
/* The same for a cuBLAS status; returns -1. */
int cuda_blas_fail(cuda_ctx *c, const char *what, cublasStatus_t s);
/* After a launch: checks cudaGetLastError. Returns 0 when fine. */
int cuda_check(cuda_ctx *c, const char *what);
/* A device buffer (*buf, *have bytes) grown to `alloc` bytes when `bytes` do not fit, after the
 * stream drains (kernels may still read it); NULL and the error `what` recorded on OOM. */
void *cuda_grow(cuda_ctx *c, void **buf, size_t *have, size_t bytes, size_t alloc, const char *what);
/* Scratch of at least `bytes` (device); NULL (and error recorded) on OOM. */
void *cuda_scratch(cuda_ctx *c, size_t bytes);

/* ---- vmm.cu: be->reserve, commit, decommit, release through CUDA virtual memory ---- */
void cuda_vm_init(glmv_backend *be);   /* leaves them NULL where the device has none */
void cuda_vm_destroy(cuda_ctx *c);

/* ---- kernels.cu: elementwise, norms, rope, embed, conversions ---- */
void k_embed(cuda_ctx *c, float *y, const glmv_tensor *t, const int32_t *ids_dev, int64_t n);
void k_rmsnorm(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w, int64_t n,
               int64_t d, float eps);
/* x += rmsnorm(t)·w1; y = rmsnorm(x)·w2 (ops.h norm_add_norm); with block-format weights loaded
 * and up to GEMV_MAX_M rows, y also rounded to int8 blocks into c->qn (see cuda_ctx) */
void k_norm_add_norm(cuda_ctx *c, float *x, float *y, const float *t, const glmv_tensor *w1,
                     const glmv_tensor *w2, int64_t n, int64_t d, float eps);
void k_layernorm(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w,
                 const glmv_tensor *b, int64_t n, int64_t d, float eps);
void k_rope_interleaved(cuda_ctx *c, float *x, int64_t ld, const float *cos, const float *sin,
                        int64_t n, int n_heads, int head_dim, int rot_dim);
void k_rope_neox(cuda_ctx *c, float *x, int64_t ld, const float *cos, const float *sin,
                 int64_t n, int n_heads, int head_dim);
void k_swiglu(cuda_ctx *c, float *y, const float *g, int64_t ld_g, const float *u,
              int64_t ld_u, int64_t n, int64_t d);
void k_gelu_erf(cuda_ctx *c, float *y, const float *x, int64_t count);
void k_add(cuda_ctx *c, float *y, const float *a, const float *b, int64_t count);
void k_permute_021(cuda_ctx *c, float *y, const float *x, int64_t A, int64_t B, int64_t C);
void k_top_k(cuda_ctx *c, float *vals, int32_t *ids, const float *x, int64_t rows, int64_t n, int k);
void k_swiglu_bf16(cuda_ctx *c, __nv_bfloat16 *y, const float *g, int64_t ld_g, const float *u, int64_t ld_u,
                   int64_t n, int64_t d);
/* f32 -> bf16, count elements */
void k_to_bf16(cuda_ctx *c, __nv_bfloat16 *y, const float *x, int64_t count);
/* be->pos_embed (kernels.cu): 1 where the table's dtype or the grid is not taken, nothing done */
int k_pos_embed(cuda_ctx *c, float *out, const glmv_tensor *tab, int S, int ms, int gh, int gw, const float *coef,
                const int *idx);
/* h [n, d] = swiglu of gu [n, 2d] ([gate | up] in bf16), rounded to bf16 */
void k_swiglu_b2b(cuda_ctx *c, __nv_bfloat16 *h, const __nv_bfloat16 *gu, int64_t n, int64_t d);
/* bf16 -> f32 (exact), count elements */
void k_bf16_to_f32(cuda_ctx *c, float *y, const __nv_bfloat16 *x, int64_t count);
void k_lut_widen(cuda_ctx *c, float *y, const uint8_t *x, int64_t count, int64_t run, const float *lut,
                 int tables);
void k_rope_kv_store(cuda_ctx *c, float *x, int64_t ldq, const float *cs, const float *sn, int64_t n, int nh, int nkv,
                     int hd, int rot, void *kc, void *vc);
void k_rope_table_2d(cuda_ctx *c, float *cs, float *sn, const float *tc, const float *ts, const int32_t *hp,
                     const int32_t *wp, int64_t n, int nf);
/* y[i, :] = bias[:] (any dtype) for m rows of n */
void k_fill_bias(cuda_ctx *c, float *y, const glmv_tensor *bias, int64_t m, int64_t n);

/* ---- gemv.cu: matrix-vector for small m, generic fallback GEMM ---- */
/* y[m, n] = x[m, k] · wᵀ (+ bias), m <= GEMV_MAX_M, any weight dtype */
#define GEMV_MAX_M 8
void k_gemv(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w, const glmv_tensor *bias,
            int64_t m);
/* h[m, I] = swiglu(x · w[:I]ᵀ, x · w[I:]ᵀ) for BF16 w = [gate | up] (2I rows), m <= GEMV_MAX_M:
 * the product and the SwiGLU in one kernel, a warp a row: the same floats as k_gemv then k_swiglu
 * where k_gemv also takes a warp a row (2I >= 8 rows a multiprocessor, as for the 9B; for
 * fewer rows it splits each over 8 warps, another summation order). Returns 1 (nothing done) for
 * what it does not take. */
int k_gemv_glu(cuda_ctx *c, float *h, const float *x, const glmv_tensor *w, int64_t m);
/* y[m, n] = xb[m, k] · wᵀ (+ bias) on the tensor cores for the rows of several streams' decode:
 * BF16 weights, x already in bf16, GEMV_MAX_M < m <= SKINNY_MAX_M (GLMV_CUDA_SKINNY_MAX=m
 * changes the bound, up to 64; GLMV_CUDA_SKINNY=0 leaves those rows to cuBLAS), k % 32 == 0.
 * 16: at 32 rows x, which every block reads whole, costs as many bytes as the weights, and
 * cuBLAS was as fast or faster (H100, test_cuda --bench) */
#define SKINNY_MAX_M 16
/* the most rows the skinny kernel takes (GLMV_CUDA_SKINNY, GLMV_CUDA_SKINNY_MAX); 0 where it is off */
int k_skinny_max(void);
int k_skinny_takes(const glmv_tensor *w, const __nv_bfloat16 *xb, int64_t m);
void k_skinny(cuda_ctx *c, float *y, const __nv_bfloat16 *xb, const glmv_tensor *w, const glmv_tensor *bias,
              int64_t m);
/* the same for any m with a simple tiled kernel (F32/F16 weights, no tensor cores) */
void k_gemm_simt(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w,
                 const glmv_tensor *bias, int64_t m);

/* ---- quant.cu: Q8_0 / Q4_0 weights, split on the device into values and scales ---- */
/* bytes of the values, where the f16 scales start, and the whole device tensor */
size_t quant_qs_bytes(glmv_dtype t, int64_t n, int64_t k);
size_t quant_scales_offset(glmv_dtype t, int64_t n, int64_t k);
size_t quant_device_bytes(glmv_dtype t, int64_t n, int64_t k);
/* copy t's blocks (t->host) to the device and split them; *out the new device pointer */
int quant_upload(cuda_ctx *c, glmv_tensor *t, void **out, char *err);
/* y[m, n] = x · wᵀ (+ bias) for m <= quant_gemv_max_m(w->dtype), x rounded to int8 blocks,
 * integer products */
int quant_gemv_max_m(glmv_dtype t);
void k_gemv_q(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w, const glmv_tensor *bias,
              int64_t m);
/* h[m, I] = swiglu(x · w[:I]ᵀ, x · w[I:]ᵀ) for Q8_0 / Q4_0 w = [gate | up] (2I rows), m <= GEMV_MAX_M:
 * x rounded once, the product and the SwiGLU in one kernel, the same floats as k_gemv_q then
 * k_swiglu where k_gemv_q takes a warp a row (2I >= 8 rows a multiprocessor). 1: declined (another
 * format or shape), nothing done. */
int k_gemv_q_glu(cuda_ctx *c, float *h, const float *x, const glmv_tensor *w, int64_t m);
/* the same for MMQ_MIN_M <= m <= GLMV_CUDA_MMQ_MAX (64) rows of Q8_0 / Q4_0 weights on the tensor
 * cores (mmq.cu); returns 1 (nothing done) for what it does not take */
#define MMQ_COUNTERS 4096
int k_mmq(cuda_ctx *c, float *y, const float *x, const glmv_tensor *w, const glmv_tensor *bias, int64_t m);
/* rows [r0, r0 + nr) of w dequantized into out: bf16 (bf16 = 1) or f32, rows of k */
void k_dequant_rows(cuda_ctx *c, void *out, int bf16, const glmv_tensor *w, int64_t r0, int64_t nr);

/* ---- attention.cu ---- */
/* kc, vc: KV caches, float32 or bf16 (c->kv_bf16) */
void k_attn_causal(cuda_ctx *c, float *out, const float *q, int64_t ldq, const void *kc,
                   const void *vc, int64_t n, int64_t pos0, int n_heads, int n_kv_heads,
                   int head_dim, float scale);
void k_attn_decode_batch(cuda_ctx *c, float *out, const float *q, int64_t ldq, const float *k_new,
                         const float *v_new, int64_t ldkv, void *const *kc, void *const *vc,
                         const int64_t *n_keys, int n, int64_t max_keys, int n_heads,
                         int n_kv_heads, int head_dim, float scale);
/* be->kv_store into a bf16 cache: dst[i, j] = x[i * ldx + j] rounded, rows of cols */
void k_kv_store_bf16(cuda_ctx *c, __nv_bfloat16 *dst, const float *x, int64_t ldx, int64_t rows, int64_t cols);
/* where an op's n rows of d also go out in bf16 for the product after it (c->bn: norms, the
 * bulk-copy attention), that buffer, else NULL; and, after the op's last launch (which clears it),
 * the mark that y's rows are there */
__nv_bfloat16 *k_bf16_fold(cuda_ctx *c, int64_t n, int64_t d);
void k_bf16_folded(cuda_ctx *c, const float *y, int64_t n, int64_t d);
void k_attn_rope_segments(cuda_ctx *c, float *out, float *q, int64_t ldq, float *k, int64_t ldk, const float *v,
                          int64_t ldv, const float *cs, const float *sn, const int64_t *cu, int n_seg, int n_heads,
                          int head_dim, float scale);
void k_attn_segments(cuda_ctx *c, float *out, const float *q, int64_t ldq, const float *k,
                     int64_t ldk, const float *v, int64_t ldv, const int64_t *cu, int n_seg,
                     int n_heads, int head_dim, float scale);

/* the decode attention's choices (GLMV_CUDA_DEC_TILE) and its kernels' attributes, once a backend;
 * -1 with err set on failure */
int k_attn_init(cuda_ctx *c, char *err);
/* 1 when the loaded code holds the wgmma flash kernel (attention.cu) */
int k_wgmma_built(cuda_ctx *c);

static inline unsigned cdiv(int64_t a, int64_t b) { return (unsigned)((a + b - 1) / b); }

/* Programmatic dependent launch (sm_90): every kernel of the backend starts
 * with PDL_ENTRY(), which first lets the next kernel in the stream be launched
 * and then waits until the previous one has finished and its writes are
 * visible. Launched with the attribute, a kernel's blocks are scheduled while
 * the kernels before it still run (as far as the multiprocessors have room),
 * which removes most of the gap between the many small kernels of a decode
 * step; the wait keeps the order (a kernel's wait returns once the previous
 * kernel, which itself waited for its own, is done). Without the attribute
 * (GLMV_CUDA_PDL=0) the instructions do nothing. Reads of weights (never
 * written by a kernel) may come before PDL_WAIT: the decode matrix-vector
 * kernel starts streaming its weights while the kernels before it finish.
 * This holds only while every kernel launched with the attribute (cuda_launch)
 * executes PDL_WAIT in every block and reads nothing but weights before it: a
 * kernel's early part may now run beside several kernels before it.
 * Letting the next kernel launch before the wait rather than after it:
 * 7.23 -> 7.09 ms a 9B decode step on an H100 (test_cuda --bench-decode). */
#define PDL_WAIT() asm volatile("griddepcontrol.wait;\n" ::: "memory")
#define PDL_LAUNCH() asm volatile("griddepcontrol.launch_dependents;\n" :::)
#define PDL_ENTRY()   \
    do {              \
        PDL_LAUNCH(); \
        PDL_WAIT();   \
    } while (0)

/* eight bf16 weights (16 bytes) as floats */
__device__ __forceinline__ void bf16x8(const uint4 &u, float (&f)[8]) {
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

/* mbarriers (flash_wg.cu's bulk-copy and ping-pong variants): init, arrive, a thread's cp.async copies arriving when
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
/* the copying thread's arrival on a full mbarrier, with the bytes its bulk copy will bring */
__device__ __forceinline__ void mbar_expect_tx(uint32_t a, int bytes) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(a),
                 "r"(bytes)
                 : "memory");
}
/* bytes (a multiple of 16) from global src into shared dst (16-byte aligned) by the copy engine,
 * completing on the mbarrier at bar */
__device__ __forceinline__ void bulk_g2s(uint32_t dst, const void *src, int bytes, uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}
/* The NeoX rotation of one pair (a = x[d], b = x[d + hd/2]; c, s the row's cos and sin at d):
 * x[d] = a c - b s, x[d + hd/2] = b c + a s, each product and sum rounded apart (no fused
 * multiply-add), so that every kernel that rotates (rope_neox_kernel, the flash kernels' Q, the
 * conversion of K into the wgmma kernel's tiles) gives the same floats */
__device__ __forceinline__ void rope_rot(float a, float b, float c, float s, float &x, float &y) {
    x = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    y = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

/* 16 bytes of weights, which a matrix-vector product reads once: loaded past L1
 * (L1::no_allocate), so that they do not evict the activations every row re-reads there */
__device__ __forceinline__ uint4 ld_stream(const void *p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

/* x rounded to int8 per block of 32, a lane an element (the whole warp calls it): the block's
 * scale in *d and the lane's value returned; glmv_quantize_x_q8's arithmetic (IEEE division and
 * reciprocal, roundf), so that the GPU's int8 products see the CPU's values */
__device__ __forceinline__ int q8_round_lane(float v, float *d) {
    float amax = fabsf(v);
    for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    const float dd = amax / 127.0f, id = dd != 0 ? 1.0f / dd : 0.0f;
    *d = dd;
    return (int)roundf(v * id);
}

/* silu(a) * u, the SwiGLU of the decoder's and the vision tower's MLPs: one expression for every
 * kernel that computes it (swiglu_kernel, swiglu_bf16_kernel, gemv_glu_kernel), so that they agree
 * bit for bit */
__device__ __forceinline__ float silu_mul(float a, float u) { return a / (1.0f + expf(-a)) * u; }

/* Element i of a BF16, F16 or F32 array as float. */
__device__ __forceinline__ float ldw_any(const void *p, int dt, int64_t i) {
    if (dt == GLMV_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    if (dt == GLMV_F16) return __half2float(((const __half *)p)[i]);
    return ((const float *)p)[i];
}

/* The end of the matrix-vector kernels (gemv.cu, quant.cu): each warp's M sums reduced over
 * its lanes, the WPR warps of a row (consecutive, `part` 0..WPR-1) added through red (the
 * kernel's shared [warps][M]), then lane 0 of part 0 adds the bias and stores the row's M
 * outputs y[r * n + row]. */
template <int M, int WPR>
__device__ __forceinline__ void gemv_finish(float (&acc)[M], float (*red)[M], int warp, int lane, int part,
                                            int64_t row, int64_t n, const void *bias, int bdt, float *y) {
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
        const float b = bias ? ldw_any(bias, bdt, row) : 0.f;
#pragma unroll
        for (int r = 0; r < M; r++) y[r * n + row] = acc[r] + b;
    }
}

/* The end of the gate/up + SwiGLU kernels (gemv.cu, quant.cu): a block's warps 0-3 hold the sums
 * of gate rows j (their acc, lanes' shares), warps 4-7 those of the same up rows; each sum reduced
 * over its lanes as gemv_finish reduces it, then h[r, j] = silu_mul(gate, up) for the ok columns */
template <int M>
__device__ __forceinline__ void glu_finish(float (&acc)[M], float (*up)[M], int warp, int lane, bool ok,
                                           float *h, int64_t I, int64_t j) {
#pragma unroll
    for (int r = 0; r < M; r++)
        for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
    if (warp >= 4 && lane == 0)
#pragma unroll
        for (int r = 0; r < M; r++) up[warp & 3][r] = acc[r] + 0.f; /* as gemv_finish stores it */
    __syncthreads();
    if (warp < 4 && lane == 0 && ok)
#pragma unroll
        for (int r = 0; r < M; r++) h[r * I + j] = silu_mul(acc[r] + 0.f, up[warp][r]);
}

template <typename... KArgs, typename... Args>
static inline void cuda_launch(cuda_ctx *c, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                               size_t smem, Args &&...args) {
    c->qn_src = c->bn_src = NULL; /* a norm's rounded rows are for the kernel right after it only */
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = c->pdl ? 1 : 0;
    cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, static_cast<Args &&>(args)...);
    if (e != cudaSuccess) cuda_fail(c, "kernel launch", e);
}

#endif
