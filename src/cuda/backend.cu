/* backend.cu -- the CUDA backend: device selection, memory, weight upload,
 * error reporting and the op table of ops.h.
 *
 * One stream per backend; every op is queued on it and be->read waits for it.
 * Weights are copied to the device once (upload swaps t->data; t->host stays
 * for the CPU) in their checkpoint dtype, so BF16 stays BF16; Q8_0/Q4_0 blocks are
 * split into values and scales (quant.cu). matmul picks:
 *   BF16 weights, m <= 8      -> gemv_kernel (own, memory-bound, fp32 math)
 *   BF16 weights, 8 < m <= 16, bf16 precision
 *                             -> skinny_kernel (own, memory-bound: x rounded to bf16,
 *                                tensor cores, the bias added in the kernel)
 *   BF16 weights, m > 16 (or rows skinny_kernel does not take), bf16 precision
 *                             -> cuBLAS: x rounded to bf16, bf16 tensor cores,
 *                                fp32 accumulate, fp32 output (bias pre-filled)
 *   BF16 weights, m > 8, f32 precision
 *                             -> cuBLAS SGEMM (no TF32) on blocks of weight rows
 *                                converted to fp32 in scratch: fp32 products
 *   Q8_0/Q4_0, m <= 16        -> gemv_q_kernel: x rounded to int8 blocks, dp4a (quant.cu;
 *                                Q5_0/Q4_K/Q6_K: gemv_kq_kernel),
 *                                8 rows at a time
 *   block formats, more rows  -> rows dequantized to bf16 (f32 in f32 precision), cuBLAS
 *   F32 / F16 weights         -> a plain tiled fp32 kernel (fixtures only)
 * In f32 precision attention also stays in the fp32 split kernel (the flash
 * kernel rounds q, k, v and p to bf16 for the tensor cores).
 * Kernels are launched with programmatic dependent launch (cuda_impl.h).
 * Environment, for benchmarks: GLMV_CUDA_GEMV_MAX=m changes the gemv/cuBLAS
 * cut-over; GLMV_CUDA_PDL=0 turns dependent launch off; GLMV_CUDA_GRAPHS=0 records no
 * decode-step graphs; GLMV_CUDA_NO_FLASH=1
 * sends all attention to the fp32 split kernel. */
#include "cuda/cuda_impl.h"

#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ errors */

int cuda_fail(cuda_ctx *c, const char *what, cudaError_t e) {
    if (c->capturing) { /* the recording is dropped and the step runs without it */
        c->capture_failed = 1;
        return -1;
    }
    if (!c->failed) {
        c->failed = 1;
        snprintf(c->err, sizeof c->err, "cuda: %s: %s (%s)", what, cudaGetErrorString(e),
                 cudaGetErrorName(e));
        fprintf(stderr, "glmv: %s\n", c->err);
    }
    return -1;
}

int cuda_check(cuda_ctx *c, const char *what) {
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? 0 : cuda_fail(c, what, e);
}

int cuda_blas_fail(cuda_ctx *c, const char *what, cublasStatus_t s) {
    if (c->capturing) {
        c->capture_failed = 1;
        return -1;
    }
    if (!c->failed) {
        c->failed = 1;
        snprintf(c->err, sizeof c->err, "cublas: %s: %s", what, cublasGetStatusString(s));
        fprintf(stderr, "glmv: %s\n", c->err);
    }
    return -1;
}

void *cuda_grow(cuda_ctx *c, void **buf, size_t *have, size_t bytes, size_t alloc, const char *what) {
    if (bytes <= *have) return *buf;
    if (*buf) {
        cudaStreamSynchronize(c->stream); /* queued kernels may still read it */
        cudaFree(*buf);
        c->allocated -= (int64_t)*have;
        *buf = NULL;
        *have = 0;
    }
    cudaError_t e = cudaMalloc(buf, alloc);
    if (e != cudaSuccess) {
        *buf = NULL;
        cuda_fail(c, what, e);
        return NULL;
    }
    *have = alloc;
    c->allocated += (int64_t)alloc;
    c->scratch_gen++; /* a recorded graph that holds the old address is stale */
    return *buf;
}

void *cuda_scratch(cuda_ctx *c, size_t bytes) {
    return cuda_grow(c, &c->scratch, &c->scratch_bytes, bytes, bytes + bytes / 4, "out of device memory for scratch");
}

/* ------------------------------------------------------------------ memory */

/* every op but the products: the rows a norm rounded (cuda_ctx's qn) may change */
#define OP_GUARD(be)          \
    cuda_ctx *c = ctx_of(be); \
    c->qn_src = c->bn_src = NULL; \
    if (c->failed) return

static void cu_destroy(glmv_backend *be) {
    if (!be) return;
    cuda_ctx *c = ctx_of(be);
    if (c) {
        cudaSetDevice(c->dev);
        if (c->stream) cudaStreamSynchronize(c->stream);
        cuda_vm_destroy(c);
        if (c->blas) cublasDestroy(c->blas);
        if (c->lt) cublasLtDestroy(c->lt);
        if (c->scratch) cudaFree(c->scratch);
        if (c->qx) cudaFree(c->qx);
        if (c->qn) cudaFree(c->qn);
        if (c->bn) cudaFree(c->bn);
        if (c->bias32) cudaFree(c->bias32);
        if (c->mmq_cnt) cudaFree(c->mmq_cnt);
        if (c->workspace) cudaFree(c->workspace);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
    }
    free(be);
}

/* Plain cudaMalloc (never managed memory). `allocated` only grows here; the
 * figure reported (device_bytes) is cudaMemGetInfo's, context included. */
static void *cu_alloc(glmv_backend *be, size_t bytes) {
    cuda_ctx *c = ctx_of(be);
    void *p = NULL;
    if (bytes == 0) bytes = 256;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* out of memory is not sticky: the caller reports it */
        return NULL;
    }
    c->allocated += (int64_t)bytes;
    return p;
}

static void cu_free(glmv_backend *be, void *p) {
    (void)be;
    if (p) cudaFree(p);
}

static int cu_upload(glmv_backend *be, glmv_tensor *t, char *err) {
    cuda_ctx *c = ctx_of(be);
    if (c->failed) return glmv_errf(err, "%s", c->err);
    const void *src = t->host ? t->host : t->data;
    if (glmv_dtype_is_quant(t->dtype)) {
        void *dq = NULL;
        if (quant_upload(c, t, &dq, err)) return -1;
        if (!t->host) t->host = t->data;
        t->data = dq;
        return 0;
    }
    size_t bytes = (size_t)glmv_tensor_numel(t) * glmv_dtype_size(t->dtype);
    void *d = NULL;
    cudaError_t e = cudaMalloc(&d, bytes ? bytes : 256);
    if (e != cudaSuccess) {
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        return glmv_errf(err,
                         "cuda: out of device memory uploading %s (%zu bytes; %.2f of %.2f GiB "
                         "free on %s)",
                         t->name ? t->name : "tensor", bytes, fr / 1073741824.0,
                         tot / 1073741824.0, c->device_name);
    }
    if (bytes) { /* on the stream the ops run on, finished before returning */
        e = cudaMemcpyAsync(d, src, bytes, cudaMemcpyHostToDevice, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess) {
            cudaFree(d);
            cuda_fail(c, "upload", e);
            return glmv_errf(err, "cuda: uploading %s: %s", t->name ? t->name : "tensor",
                             cudaGetErrorString(e));
        }
    }
    if (!t->host) t->host = t->data; /* keep the host bytes for the CPU */
    t->data = d;
    c->allocated += (int64_t)bytes;
    return 0;
}

static void cu_write(glmv_backend *be, void *dst, const void *src, size_t n) {
    OP_GUARD(be);
    if (!n) return;
    cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream);
    if (e != cudaSuccess) cuda_fail(c, "write", e);
}

/* through the scratch: the bf16 values copied (from pageable memory the call returns once the
 * driver holds them), then widened on the device; the scratch is next written by a kernel queued
 * after the widening */
static void cu_write_bf16(glmv_backend *be, float *dst, const uint16_t *src, int64_t count) {
    OP_GUARD(be);
    if (count <= 0) return;
    __nv_bfloat16 *sc = (__nv_bfloat16 *)cuda_scratch(c, sizeof(uint16_t) * (size_t)count);
    if (!sc) return;
    cudaError_t e = cudaMemcpyAsync(sc, src, sizeof(uint16_t) * (size_t)count, cudaMemcpyHostToDevice, c->stream);
    if (e != cudaSuccess) {
        cuda_fail(c, "write (bf16)", e);
        return;
    }
    k_bf16_to_f32(c, dst, sc, count);
}

/* through the scratch as write_bf16: the tables, then the bytes, copied (the call returns once the
 * driver holds them), then widened on the device */
static void cu_write_lut(glmv_backend *be, float *dst, const uint8_t *src, int64_t count, int64_t run,
                         const float *lut, int tables) {
    OP_GUARD(be);
    if (count <= 0) return;
    if (run <= 0 || tables < 1 || tables > 16) {
        cuda_fail(c, "write (lut): bad tables", cudaErrorInvalidValue);
        return;
    }
    const size_t tb = sizeof(float) * 256 * (size_t)tables;
    uint8_t *sc = (uint8_t *)cuda_scratch(c, tb + (size_t)count);
    if (!sc) return;
    cudaError_t e = cudaMemcpyAsync(sc, lut, tb, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess) e = cudaMemcpyAsync(sc + tb, src, (size_t)count, cudaMemcpyHostToDevice, c->stream);
    if (e != cudaSuccess) {
        cuda_fail(c, "write (lut)", e);
        return;
    }
    k_lut_widen(c, dst, sc + tb, count, run, (const float *)sc, tables);
}

/* the per-coordinate values and the coordinates copied into the scratch (the call returns once the
 * driver holds them), then the rows made on the device */
static void cu_rope_table_2d(glmv_backend *be, float *cs, float *sn, const float *tc, const float *ts, int nv,
                             const int32_t *hp, const int32_t *wp, int64_t n, int nf) {
    OP_GUARD(be);
    if (n <= 0) return;
    const size_t tb = sizeof(float) * (size_t)nv * (size_t)nf, pb = sizeof(int32_t) * (size_t)n;
    const size_t o2 = (tb + 255) & ~(size_t)255, o3 = o2 + ((tb + 255) & ~(size_t)255), o4 = o3 + ((pb + 255) & ~(size_t)255);
    char *sc = (char *)cuda_scratch(c, o4 + pb);
    if (!sc) return;
    cudaError_t e = cudaMemcpyAsync(sc, tc, tb, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess) e = cudaMemcpyAsync(sc + o2, ts, tb, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess) e = cudaMemcpyAsync(sc + o3, hp, pb, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess) e = cudaMemcpyAsync(sc + o4, wp, pb, cudaMemcpyHostToDevice, c->stream);
    if (e != cudaSuccess) {
        cuda_fail(c, "rope_table_2d", e);
        return;
    }
    k_rope_table_2d(c, cs, sn, (const float *)sc, (const float *)(sc + o2), (const int32_t *)(sc + o3),
                    (const int32_t *)(sc + o4), n, nf);
}

static void cu_read_async(glmv_backend *be, void *dst, const void *src, size_t n) {
    cuda_ctx *c = ctx_of(be);
    if (c->failed) {
        memset(dst, 0, n);
        return;
    }
    cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, c->stream);
    if (e != cudaSuccess) {
        cuda_fail(c, "read", e);
        memset(dst, 0, n);
    }
}

static void cu_read(glmv_backend *be, void *dst, const void *src, size_t n) {
    cuda_ctx *c = ctx_of(be);
    cu_read_async(be, dst, src, n);
    if (c->failed) return;
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        cuda_fail(c, "read", e);
        memset(dst, 0, n);
    }
}

static void *cu_host_alloc(glmv_backend *be, size_t n) {
    (void)be;
    void *p = NULL;
    if (cudaMallocHost(&p, n) != cudaSuccess) {
        cudaGetLastError(); /* not sticky: the caller falls back to malloc */
        return NULL;
    }
    return p;
}

static void cu_host_free(glmv_backend *be, void *p) {
    (void)be;
    if (p) cudaFreeHost(p);
}

static void cu_copy(glmv_backend *be, void *dst, const void *src, size_t n) {
    OP_GUARD(be);
    if (!n) return;
    cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, c->stream);
    if (e != cudaSuccess) cuda_fail(c, "copy", e);
}

static void cu_sync(glmv_backend *be) {
    cuda_ctx *c = ctx_of(be);
    if (c->failed) return;
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) cuda_fail(c, "sync", e);
}

static int cu_status(glmv_backend *be, char *err) {
    cuda_ctx *c = ctx_of(be);
    if (!c->failed) {
        cudaError_t e = cudaStreamQuery(c->stream);
        if (e != cudaSuccess && e != cudaErrorNotReady) cuda_fail(c, "status", e);
    }
    return c->failed ? glmv_errf(err, "%s", c->err) : 0;
}

static int64_t cu_device_bytes(glmv_backend *be) {
    cuda_ctx *c = ctx_of(be);
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) return c->allocated;
    return (int64_t)(tot - fr);
}

static int64_t cu_device_free(glmv_backend *be) {
    (void)be;
    size_t fr = 0, tot = 0;
    return cudaMemGetInfo(&fr, &tot) == cudaSuccess ? (int64_t)fr : 0;
}

static void cu_bind_thread(glmv_backend *be) { cudaSetDevice(ctx_of(be)->dev); }
static void *cu_queue(glmv_backend *be) { return (void *)ctx_of(be)->stream; }

/* ------------------------------------------------------------------ graphs */

/* A decode step is ~700 small kernels; replayed as one graph their launch costs go. The
 * model records a step the second time it sees its shape (the first run sizes the scratch,
 * which must not move while recording) and replays it from then on. */
typedef struct {
    cudaGraphExec_t exec;
    unsigned gen; /* scratch_gen when recorded */
} cu_graph;

static int graphs_off(void) {
    const char *s = getenv("GLMV_CUDA_GRAPHS");
    return s && !strcmp(s, "0");
}

static int cu_graph_begin(glmv_backend *be) {
    cuda_ctx *c = ctx_of(be);
    if (c->failed || c->no_graphs || graphs_off()) return -1;
    cudaError_t e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        cudaGetLastError();
        c->no_graphs = 1;
        return -1;
    }
    c->capturing = 1;
    c->capture_failed = 0;
    return 0;
}

static void *cu_graph_end(glmv_backend *be) {
    cuda_ctx *c = ctx_of(be);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    c->capturing = 0;
    cudaGraphExec_t x = NULL;
    if (e == cudaSuccess && !c->capture_failed) e = cudaGraphInstantiate(&x, g, 0);
    if (g) cudaGraphDestroy(g);
    cu_graph *r = NULL;
    if (e == cudaSuccess && !c->capture_failed && x) {
        r = (cu_graph *)malloc(sizeof *r);
        if (r) {
            r->exec = x;
            r->gen = c->scratch_gen;
        }
    }
    if (!r) {
        if (x) cudaGraphExecDestroy(x);
        cudaGetLastError(); /* not sticky: the step runs without a graph */
        if (!c->no_graphs)
            fprintf(stderr, "glmv: cuda: decode steps run without graphs (recording failed%s%s)\n",
                    e != cudaSuccess ? ": " : "", e != cudaSuccess ? cudaGetErrorString(e) : "");
        c->no_graphs = 1;
    }
    c->capture_failed = 0;
    return r;
}

static int cu_graph_run(glmv_backend *be, void *graph) {
    cuda_ctx *c = ctx_of(be);
    cu_graph *g = (cu_graph *)graph;
    if (g->gen != c->scratch_gen) return -1;
    if (c->failed) return 0;
    cudaError_t e = cudaGraphLaunch(g->exec, c->stream);
    if (e != cudaSuccess) cuda_fail(c, "graph launch", e);
    return 0;
}

static void cu_graph_free(glmv_backend *be, void *graph) {
    (void)be;
    cu_graph *g = (cu_graph *)graph;
    if (!g) return;
    cudaGraphExecDestroy(g->exec);
    free(g);
}

/* ------------------------------------------------------------------ matmul */

static int gemv_max_m(void) {
    static int v = -1;
    if (v < 0) {
        const char *s = getenv("GLMV_CUDA_GEMV_MAX");
        v = s ? atoi(s) : GEMV_MAX_M;
        if (v < 0) v = 0;
        if (v > GEMV_MAX_M) v = GEMV_MAX_M;
    }
    return v;
}

/* y[m, n] (+)= xb[m, k] · W[n, k]ᵀ, bf16 inputs, float32 accumulation and output (beta 1: y holds the
 * bias) */
static void gemm_bf16(cuda_ctx *c, float *y, const __nv_bfloat16 *xb, const glmv_tensor *w, int64_t m, float beta) {
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    float alpha = 1.f;
    /* column-major view: yᵀ[n, m] = W[k, n]ᵀ · xᵀ[k, m] */
    cublasStatus_t s = cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k,
                                    &alpha, w->data, CUDA_R_16BF, (int)k, xb, CUDA_R_16BF, (int)k,
                                    &beta, y, CUDA_R_32F, (int)n, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) cuda_blas_fail(c, "matmul (bf16 gemm)", s);
}

/* d[m, n] = xb[m, k] · W[n, k]ᵀ (+ bias), bf16 inputs, float32 accumulation, the bias (BF16 or F32)
 * added in cuBLASLt's epilogue, d of type dt (CUDA_R_16BF: the sum rounded to bf16 once; CUDA_R_32F).
 * 0; 1 where cuBLASLt has no way to do it (nothing launched); -1 when the product failed (the error
 * recorded). */
static int gemm_lt(cuda_ctx *c, void *d, cudaDataType_t dt, const __nv_bfloat16 *xb, const glmv_tensor *w,
                   const glmv_tensor *bias, int64_t m) {
    if (!c->lt || (bias && bias->dtype != GLMV_BF16 && bias->dtype != GLMV_F32)) return 1;
    const int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    /* the bias in the output's type: a BF16 bias widened first where the output is float32 */
    const void *bp = bias ? bias->data : NULL;
    if (bias && dt == CUDA_R_32F && bias->dtype == GLMV_BF16) {
        const int64_t n_b = glmv_tensor_rows(w);
        const size_t bb = sizeof(float) * (size_t)n_b;
        if (bb > c->bias32_bytes && c->capturing) return 1; /* no allocation while recording */
        float *b32 = (float *)cuda_grow(c, &c->bias32, &c->bias32_bytes, bb, bb, "out of device memory for a bias");
        if (!b32) return -1;
        k_bf16_to_f32(c, b32, (const __nv_bfloat16 *)bias->data, n_b);
        bp = b32;
    }
    const cudaDataType_t bt = bias && (dt == CUDA_R_32F || bias->dtype == GLMV_F32) ? CUDA_R_32F : CUDA_R_16BF;
    const size_t ws = c->workspace_bytes;
    /* column-major view, as gemm_bf16: dᵀ[n, m] = W[k, n]ᵀ · xbᵀ[k, m] */
    cublasStatus_t s = cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (!s) s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (!s) s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (!s) s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    if (!s && bias) s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp);
    if (!s && bias) s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
    if (!s) s = cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, (uint64_t)k, (uint64_t)n, k);
    if (!s) s = cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, (uint64_t)k, (uint64_t)m, k);
    if (!s) s = cublasLtMatrixLayoutCreate(&ld, dt, (uint64_t)n, (uint64_t)m, n);
    if (!s) s = cublasLtMatmulPreferenceCreate(&pref);
    if (!s) s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    if (!s) s = cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, ld, ld, pref, 1, &h, &found);
    if (!s && !found) s = CUBLAS_STATUS_NOT_SUPPORTED;
    const float alpha = 1.f, beta = 0.f;
    int rc = s ? 1 : 0;
    if (!rc) {
        s = cublasLtMatmul(c->lt, op, &alpha, w->data, la, xb, lb, &beta, d, ld, d, ld, &h.algo, c->workspace, ws,
                           c->stream);
        if (s) rc = cuda_blas_fail(c, "matmul (bf16 gemm, cuBLASLt)", s);
    }
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}

/* y = xb · Wᵀ (+ bias) for bf16 x: the tensor-core matrix-vector kernel for a few streams' rows,
 * cuBLAS for more: a prompt's rows (LT_BIAS_ROWS and more) with the bias added in cuBLASLt's
 * epilogue (GLMV_CUDA_LT_BIAS=0: not), else the bias written into y first and the product added
 * to it (beta 1), which writes and reads y once more (for the tower's q/k/v, 118 MB a block at
 * 6,400 patches) */
#define LT_BIAS_ROWS 128
static void product_bf16(cuda_ctx *c, float *y, const __nv_bfloat16 *xb, const glmv_tensor *w,
                         const glmv_tensor *bias, int64_t m) {
    if (k_skinny_takes(w, xb, m)) {
        k_skinny(c, y, xb, w, bias, m);
        return;
    }
    if (bias && m >= LT_BIAS_ROWS && c->lt_bias && gemm_lt(c, y, CUDA_R_32F, xb, w, bias, m) <= 0) return;
    float beta = 0.f;
    if (bias) {
        k_fill_bias(c, y, bias, m, glmv_tensor_rows(w));
        beta = 1.f;
    }
    gemm_bf16(c, y, xb, w, m, beta);
}

static void cu_matmul(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                      const glmv_tensor *bias, int64_t m) {
    cuda_ctx *c = ctx_of(be);
    if (c->failed || m <= 0) return;
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    int quant = glmv_dtype_is_quant(w->dtype);
    if (w->dtype != GLMV_BF16 && !quant) {
        k_gemm_simt(c, y, x, w, bias, m);
        return;
    }
    if (quant && k_mmq(c, y, x, w, bias, m) == 0) return;
    if (quant && m <= quant_gemv_max_m(w->dtype) && gemv_max_m() > 0) {
        k_gemv_q(c, y, x, w, bias, m);
        return;
    }
    if (m <= gemv_max_m()) {
        k_gemv(c, y, x, w, bias, m);
        return;
    }
    if (n > INT32_MAX || k > INT32_MAX || m > INT32_MAX) {
        cuda_fail(c, "matmul: dimension beyond 2^31", cudaErrorInvalidValue);
        return;
    }
    if (!quant && c->bf16) { /* x rounded to bf16 (by the norm that wrote it, or here), bf16 tensor cores */
        if (x == c->bn_src && m == c->bn_m && k == c->bn_k) {
            c->bn_src = NULL; /* taken */
            product_bf16(c, y, (const __nv_bfloat16 *)c->bn, w, bias, m);
            return;
        }
        __nv_bfloat16 *xb = (__nv_bfloat16 *)cuda_scratch(c, sizeof(__nv_bfloat16) * (size_t)(m * k));
        if (!xb) return;
        k_to_bf16(c, xb, x, m * k);
        product_bf16(c, y, xb, w, bias, m);
        return;
    }
    float beta = 0.f, alpha = 1.f;
    if (bias) {
        k_fill_bias(c, y, bias, m, n);
        beta = 1.f;
    }
    if (quant) {
        /* weight rows in blocks of at most 32 M elements dequantized into scratch (after
         * x in bf16), then the product as for BF16 weights (bf16) or f32 ones (f32) */
        int64_t rows = GLMV_MAX((int64_t)1, GLMV_MIN(n, ((int64_t)32 << 20) / k));
        size_t es = c->bf16 ? 2 : 4, xbytes = c->bf16 ? ((size_t)(m * k) * 2 + 255) & ~(size_t)255 : 0;
        char *sc = (char *)cuda_scratch(c, xbytes + es * (size_t)(rows * k));
        if (!sc) return;
        if (c->bf16) k_to_bf16(c, (__nv_bfloat16 *)sc, x, m * k);
        void *wd = sc + xbytes;
        for (int64_t n0 = 0; n0 < n && !c->failed; n0 += rows) {
            int64_t nn = GLMV_MIN(rows, n - n0);
            k_dequant_rows(c, wd, c->bf16, w, n0, nn);
            /* column-major: yᵀ[n0:n0+nn, m] (ld n) = W[k, nn]ᵀ · xᵀ[k, m] */
            cublasStatus_t st =
                c->bf16 ? cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nn, (int)m, (int)k, &alpha, wd,
                                       CUDA_R_16BF, (int)k, sc, CUDA_R_16BF, (int)k, &beta, y + n0, CUDA_R_32F,
                                       (int)n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)
                        : cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nn, (int)m, (int)k, &alpha,
                                      (const float *)wd, (int)k, x, (int)k, &beta, y + n0, (int)n);
            if (st != CUBLAS_STATUS_SUCCESS) cuda_blas_fail(c, "matmul (quantized gemm)", st);
        }
        return;
    }
    /* f32 precision: weight rows in blocks of at most 64 M elements
     * (256 MB of fp32 scratch), each converted exactly and multiplied in
     * fp32 (the handle's math mode leaves TF32 off). */
    int64_t rows = GLMV_MAX((int64_t)1, GLMV_MIN(n, ((int64_t)64 << 20) / k));
    float *wf = (float *)cuda_scratch(c, sizeof(float) * (size_t)(rows * k));
    if (!wf) return;
    for (int64_t n0 = 0; n0 < n && !c->failed; n0 += rows) {
        int64_t nn = GLMV_MIN(rows, n - n0);
        k_bf16_to_f32(c, wf, (const __nv_bfloat16 *)w->data + n0 * k, nn * k);
        /* column-major: yᵀ[n0:n0+nn, m] (ld n) = Wf[k, nn]ᵀ · xᵀ[k, m] */
        cublasStatus_t s = cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nn, (int)m,
                                       (int)k, &alpha, wf, (int)k, x, (int)k, &beta, y + n0,
                                       (int)n);
        if (s != CUBLAS_STATUS_SUCCESS) cuda_blas_fail(c, "matmul (f32 gemm)", s);
    }
}

/* be->mlp: the gate/up product written in bf16 (its bias added before that one rounding, in the
 * GEMM's epilogue), the SwiGLU from those values rounded to bf16 for the down product's input, then
 * the down product: the f32 gate/up rows (8 bytes a value, written and read again) become 2, and
 * the SwiGLU reads half. In bf16 precision with BF16 weights (and biases), for more rows than the
 * matrix-vector kernels take; else declined. scratch [m, 2I] floats holds the bf16 gate/up rows and
 * the SwiGLU's. (GLMV_CUDA_MLP=0: no be->mlp.) */
static int cu_mlp(glmv_backend *be, float *y, const float *x, const glmv_tensor *gate_up, const glmv_tensor *gate_up_b,
                  const glmv_tensor *down, const glmv_tensor *down_b, float *scratch, int64_t m) {
    cuda_ctx *c = ctx_of(be);
    if (c->failed) return 0; /* the error is already recorded */
    const int64_t n2 = glmv_tensor_rows(gate_up), k = glmv_tensor_cols(gate_up), I = n2 / 2;
    if (!c->bf16 || !c->lt || gate_up->dtype != GLMV_BF16 || down->dtype != GLMV_BF16 ||
        (gate_up_b && gate_up_b->dtype != GLMV_BF16) || m <= gemv_max_m() || n2 % 2 || glmv_tensor_cols(down) != I ||
        n2 > INT32_MAX || k > INT32_MAX || m > INT32_MAX || ((uintptr_t)scratch % 16))
        return 1;
    const __nv_bfloat16 *xb;
    if (x == c->bn_src && m == c->bn_m && k == c->bn_k) { /* the norm's bf16 rows */
        c->bn_src = NULL;
        xb = (const __nv_bfloat16 *)c->bn;
    } else {
        __nv_bfloat16 *t = (__nv_bfloat16 *)cuda_scratch(c, sizeof(__nv_bfloat16) * (size_t)(m * k));
        if (!t) return 0;
        k_to_bf16(c, t, x, m * k);
        xb = t;
    }
    __nv_bfloat16 *gu = (__nv_bfloat16 *)scratch, *h = gu + m * n2; /* 4I + 2I bytes a row of the 8I */
    const int r = gemm_lt(c, gu, CUDA_R_16BF, xb, gate_up, gate_up_b, m);
    if (r) return r > 0; /* no cuBLASLt algorithm: declined (x converted again by the ops apart) */
    k_swiglu_b2b(c, h, gu, m, I);
    product_bf16(c, y, h, down, down_b, m);
    return 0;
}

static int cu_pos_embed(glmv_backend *be, float *out, const glmv_tensor *table, int S, int ms, int gh, int gw,
                        const float *coef, const int *idx) {
    cuda_ctx *c = ctx_of(be);
    if (c->failed) return 0;
    return k_pos_embed(c, out, table, S, ms, gh, gw, coef, idx);
}

/* the gate/up product and the SwiGLU in one kernel for a decode step's rows (k_gemv_glu; k_gemv_q_glu
 * for Q8_0 and Q4_0 weights; other formats are declined) */
static int cu_matmul_glu(glmv_backend *be, float *h, const float *x, const glmv_tensor *w, int64_t m) {
    cuda_ctx *c = ctx_of(be);
    if (c->failed) return 0; /* the error is already recorded: nothing more to do */
    if (m > gemv_max_m()) return 1;
    if (w->dtype == GLMV_Q8_0 || w->dtype == GLMV_Q4_0) return k_gemv_q_glu(c, h, x, w, m);
    return k_gemv_glu(c, h, x, w, m);
}

/* swiglu, then the product: the SwiGLU rounded straight into the bf16 GEMM's input where the
 * product is one (bf16 precision, BF16 weights, more rows than the matrix-vector kernel takes),
 * the same values as swiglu's float32 rounded by to_bf16 */
static void cu_matmul_swiglu(glmv_backend *be, float *y, const float *g, int64_t ld_g, const float *u, int64_t ld_u,
                             float *h, const glmv_tensor *w, const glmv_tensor *bias, int64_t m) {
    cuda_ctx *c = ctx_of(be);
    if (c->failed || m <= 0) return;
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    if (!c->bf16 || w->dtype != GLMV_BF16 || m <= gemv_max_m() || n > INT32_MAX || k > INT32_MAX ||
        m > INT32_MAX) {
        k_swiglu(c, h, g, ld_g, u, ld_u, m, k);
        cu_matmul(be, y, h, w, bias, m);
        return;
    }
    __nv_bfloat16 *xb = (__nv_bfloat16 *)cuda_scratch(c, sizeof(__nv_bfloat16) * (size_t)(m * k));
    if (!xb) return;
    k_swiglu_bf16(c, xb, g, ld_g, u, ld_u, m, k);
    product_bf16(c, y, xb, w, bias, m);
}

/* ------------------------------------------------------------------ ops */

static void cu_embed(glmv_backend *be, float *y, const glmv_tensor *t, const int32_t *ids,
                     int64_t n) {
    OP_GUARD(be);
    if (glmv_dtype_is_quant(t->dtype)) { /* the model keeps a quantized token table on the host */
        cuda_fail(c, "embed: a quantized token table on the device", cudaErrorInvalidValue);
        return;
    }
    k_embed(c, y, t, ids, n);
}
static void cu_rmsnorm(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                       int64_t n, int64_t d, float eps) {
    OP_GUARD(be);
    k_rmsnorm(c, y, x, w, n, d, eps);
}
static void cu_norm_add_norm(glmv_backend *be, float *x, float *y, const float *t, const glmv_tensor *w1,
                             const glmv_tensor *w2, int64_t n, int64_t d, float eps) {
    OP_GUARD(be);
    k_norm_add_norm(c, x, y, t, w1, w2, n, d, eps);
}
static void cu_copy_rows(glmv_backend *be, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows,
                         int64_t cols) {
    OP_GUARD(be);
    if (rows <= 0 || cols <= 0) return;
    cudaError_t e = cudaMemcpy2DAsync(y, sizeof(float) * (size_t)ldy, x, sizeof(float) * (size_t)ldx,
                                      sizeof(float) * (size_t)cols, (size_t)rows, cudaMemcpyDeviceToDevice,
                                      c->stream);
    if (e != cudaSuccess) cuda_fail(c, "copy_rows", e);
}
/* a float32 cache's rows are copied as copy_rows copies them */
static void cu_kv_store(glmv_backend *be, void *dst, const float *x, int64_t ldx, int64_t rows, int64_t cols) {
    OP_GUARD(be);
    if (c->kv_bf16) k_kv_store_bf16(c, (__nv_bfloat16 *)dst, x, ldx, rows, cols);
    else cu_copy_rows(be, (float *)dst, cols, x, ldx, rows, cols);
}
static void cu_layernorm(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                         const glmv_tensor *b, int64_t n, int64_t d, float eps) {
    OP_GUARD(be);
    k_layernorm(c, y, x, w, b, n, d, eps);
}
static void cu_rope_interleaved(glmv_backend *be, float *x, int64_t ld, const float *cs,
                                const float *sn, int64_t n, int nh, int hd, int rd) {
    OP_GUARD(be);
    k_rope_interleaved(c, x, ld, cs, sn, n, nh, hd, rd);
}
static void cu_rope_neox(glmv_backend *be, float *x, int64_t ld, const float *cs,
                         const float *sn, int64_t n, int nh, int hd) {
    OP_GUARD(be);
    k_rope_neox(c, x, ld, cs, sn, n, nh, hd);
}
static void cu_rope_kv_store(glmv_backend *be, float *x, int64_t ldq, const float *cs, const float *sn, int64_t n,
                             int nh, int nkv, int hd, int rot, void *kc, void *vc) {
    OP_GUARD(be);
    k_rope_kv_store(c, x, ldq, cs, sn, n, nh, nkv, hd, rot, kc, vc);
}
static void cu_attn_causal(glmv_backend *be, float *o, const float *q, int64_t ldq,
                           const void *kc, const void *vc, int64_t n, int64_t pos0, int nh,
                           int nkv, int hd, float sc) {
    OP_GUARD(be);
    k_attn_causal(c, o, q, ldq, kc, vc, n, pos0, nh, nkv, hd, sc);
}
static void cu_attn_decode_batch(glmv_backend *be, float *o, const float *q, int64_t ldq,
                                 const float *kn, const float *vn, int64_t ldkv, void *const *kc,
                                 void *const *vc, const int64_t *nk, int n, int64_t max_keys,
                                 int nh, int nkv, int hd, float sc) {
    OP_GUARD(be);
    k_attn_decode_batch(c, o, q, ldq, kn, vn, ldkv, kc, vc, nk, n, max_keys, nh, nkv, hd, sc);
}
static void cu_attn_segments(glmv_backend *be, float *o, const float *q, int64_t ldq,
                             const float *k, int64_t ldk, const float *v, int64_t ldv,
                             const int64_t *cu, int ns, int nh, int hd, float sc) {
    OP_GUARD(be);
    k_attn_segments(c, o, q, ldq, k, ldk, v, ldv, cu, ns, nh, hd, sc);
}
static void cu_attn_rope_segments(glmv_backend *be, float *o, float *q, int64_t ldq, float *k, int64_t ldk,
                                  const float *v, int64_t ldv, const float *cs, const float *sn, const int64_t *cu,
                                  int ns, int nh, int hd, float sc) {
    OP_GUARD(be);
    k_attn_rope_segments(c, o, q, ldq, k, ldk, v, ldv, cs, sn, cu, ns, nh, hd, sc);
}
static void cu_swiglu(glmv_backend *be, float *y, const float *g, int64_t lg, const float *u,
                      int64_t lu, int64_t n, int64_t d) {
    OP_GUARD(be);
    k_swiglu(c, y, g, lg, u, lu, n, d);
}
static void cu_gelu_erf(glmv_backend *be, float *y, const float *x, int64_t count) {
    OP_GUARD(be);
    k_gelu_erf(c, y, x, count);
}
static void cu_add(glmv_backend *be, float *y, const float *a, const float *b, int64_t count) {
    OP_GUARD(be);
    k_add(c, y, a, b, count);
}
static void cu_top_k(glmv_backend *be, float *vals, int32_t *ids, const float *x, int64_t rows, int64_t n,
                     int k) {
    OP_GUARD(be);
    k_top_k(c, vals, ids, x, rows, n, k);
}

static void cu_permute_021(glmv_backend *be, float *y, const float *x, int64_t A, int64_t B,
                           int64_t C) {
    OP_GUARD(be);
    k_permute_021(c, y, x, A, B, C);
}

/* ------------------------------------------------------------------ create */

extern "C" glmv_backend *glmv_cuda_backend_new(int dev, int bf16, char *err) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        glmv_errf(err, "cuda: no usable GPU: %s", cudaGetErrorString(e));
        return NULL;
    }
    if (count == 0) {
        glmv_errf(err, "cuda: no GPU found");
        return NULL;
    }
    if (dev < 0 || dev >= count) {
        glmv_errf(err, "cuda: device %d does not exist (%d GPU%s)", dev, count,
                  count == 1 ? "" : "s");
        return NULL;
    }
    cudaDeviceProp prop;
    if ((e = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess || (e = cudaSetDevice(dev)) != cudaSuccess) {
        glmv_errf(err, "cuda: device %d: %s", dev, cudaGetErrorString(e));
        return NULL;
    }
    if (prop.major < 9) { /* the kernels use Hopper's griddepcontrol; the build holds sm_90a code and compute_90 PTX */
        glmv_errf(err, "cuda: %s has compute capability %d.%d; glmv's CUDA build needs 9.0 (Hopper) or newer",
                  prop.name, prop.major, prop.minor);
        return NULL;
    }
    glmv_backend *be = (glmv_backend *)calloc(1, sizeof *be);
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        glmv_errf(err, "out of memory");
        return NULL;
    }
    be->impl = c;
    c->dev = dev;
    c->sms = prop.multiProcessorCount;
    c->bf16 = be->bf16 = bf16 != 0;
    c->pdl = prop.major >= 9 && !(getenv("GLMV_CUDA_PDL") && !strcmp(getenv("GLMV_CUDA_PDL"), "0"));
    /* the sm_90a cubin runs on compute capability 9.0 alone; GLMV_CUDA_WGMMA=0 keeps mma.sync */
    c->wgmma = prop.major == 9 && prop.minor == 0 && !(getenv("GLMV_CUDA_WGMMA") && !strcmp(getenv("GLMV_CUDA_WGMMA"), "0"));
    snprintf(c->device_name, sizeof c->device_name, "%s", prop.name);
    if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        glmv_errf(err, "cuda: %s: cannot create a stream: %s", prop.name, cudaGetErrorString(e));
        cu_destroy(be);
        return NULL;
    }
    cublasStatus_t s = cublasCreate(&c->blas);
    if (s != CUBLAS_STATUS_SUCCESS) {
        c->blas = NULL;
        glmv_errf(err, "cublas: cannot initialise: %s", cublasGetStatusString(s));
        cu_destroy(be);
        return NULL;
    }
    c->workspace_bytes = 32u << 20;
    if (cudaMalloc(&c->workspace, c->workspace_bytes) != cudaSuccess) {
        cudaGetLastError();
        glmv_errf(err, "cuda: out of device memory for the cuBLAS workspace");
        cu_destroy(be);
        return NULL;
    }
    /* mmq.cu's split-k counters (its kernels leave them at zero); without them it declines */
    if (cudaMalloc((void **)&c->mmq_cnt, MMQ_COUNTERS * sizeof(int)) != cudaSuccess ||
        cudaMemset(c->mmq_cnt, 0, MMQ_COUNTERS * sizeof(int)) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(c->mmq_cnt);
        c->mmq_cnt = NULL;
    }
    if (cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS) c->lt = NULL; /* be->mlp then declines */
    /* room for a widened bias of up to 64K outputs now, so that none is allocated (a synchronisation)
     * while a step is being recorded */
    if (c->lt && cudaMalloc(&c->bias32, 256u << 10) == cudaSuccess) {
        c->bias32_bytes = 256u << 10;
        c->allocated += 256 << 10;
    } else {
        c->bias32 = NULL; /* on demand, then */
        cudaGetLastError();
    }
    cublasSetStream(c->blas, c->stream);
    cublasSetWorkspace(c->blas, c->workspace, c->workspace_bytes);
    cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH); /* no TF32 for fp32 */
    if (c->wgmma) c->wgmma = k_wgmma_built(c);

    be->name = "cuda";
    be->destroy = cu_destroy;
    be->alloc = cu_alloc;
    be->free = cu_free;
    be->upload = cu_upload;
    be->write = cu_write;
    be->write_bf16 = cu_write_bf16;
    be->write_lut = cu_write_lut;
    be->rope_table_2d = cu_rope_table_2d;
    be->read = cu_read;
    be->read_async = cu_read_async;
    be->host_alloc = cu_host_alloc;
    be->host_free = cu_host_free;
    be->copy = cu_copy;
    be->sync = cu_sync;
    be->matmul = cu_matmul;
    be->embed = cu_embed;
    be->rmsnorm = cu_rmsnorm;
    be->layernorm = cu_layernorm;
    be->norm_add_norm = cu_norm_add_norm;
    be->copy_rows = cu_copy_rows;
    be->kv_store = cu_kv_store;
    be->rope_interleaved = cu_rope_interleaved;
    be->rope_kv_store = cu_rope_kv_store;
    be->rope_neox = cu_rope_neox;
    be->attn_causal = cu_attn_causal;
    be->attn_decode_batch = cu_attn_decode_batch;
    be->attn_segments = cu_attn_segments;
    be->attn_rope_segments = cu_attn_rope_segments;
    be->swiglu = cu_swiglu;
    be->gelu_erf = cu_gelu_erf;
    be->add = cu_add;
    be->permute_021 = cu_permute_021;
    be->top_k = cu_top_k;
    /* GLMV_CUDA_SWIGLU_GEMM=0: the SwiGLU written out in float32 and converted apart (to compare) */
    const char *sg = getenv("GLMV_CUDA_SWIGLU_GEMM");
    be->matmul_swiglu = sg && !atoi(sg) ? NULL : cu_matmul_swiglu;
    const char *glu = getenv("GLMV_CUDA_GLU"); /* 0: the decode rows' gate/up product, then the SwiGLU apart */
    be->matmul_glu = glu && !atoi(glu) ? NULL : cu_matmul_glu;
    const char *lb = getenv("GLMV_CUDA_LT_BIAS"); /* 0: a prompt's biases written before its products */
    c->lt_bias = !(lb && !strcmp(lb, "0"));
    const char *mo = getenv("GLMV_CUDA_MLP"); /* 0: a prompt's gate/up product in float32, the ops apart */
    be->mlp = mo && !atoi(mo) ? NULL : cu_mlp;
    /* the tower's position table resampled on the GPU, bit for bit the host's (first token of a
     * 1120x1120 PNG 105.8 -> 103.5 ms on an H100, the tower 44.6 -> 41.3); GLMV_CUDA_POS_EMBED=0:
     * resampled on the host and uploaded */
    const char *pe = getenv("GLMV_CUDA_POS_EMBED");
    be->pos_embed = pe && !atoi(pe) ? NULL : cu_pos_embed;
    const char *qf = getenv("GLMV_CUDA_QFOLD"); /* 0: the products round a norm's rows themselves */
    c->qfold_off = qf && !atoi(qf);
    /* norms write bf16 rows for the product after them; GLMV_CUDA_BFOLD=0: the products convert
     * their rows themselves */
    const char *bf = getenv("GLMV_CUDA_BFOLD");
    c->bfold_off = bf && !atoi(bf);
    /* the norms' threads a row at most: 32 to 1024, a power of two (for measuring) */
    const char *nt = getenv("GLMV_CUDA_NORM_THREADS");
    const int ntv = nt ? atoi(nt) : 0;
    c->norm_tpb = ntv >= 32 && ntv <= 1024 && !(ntv & (ntv - 1)) ? ntv : 1024;
    be->graph_begin = cu_graph_begin;
    be->graph_end = cu_graph_end;
    be->graph_run = cu_graph_run;
    be->graph_free = cu_graph_free;
    be->status = cu_status;
    be->device_bytes = cu_device_bytes;
    be->device_free = cu_device_free;
    be->bind_thread = cu_bind_thread;
    be->queue = cu_queue;
    cuda_vm_init(be);
    be->device_name = c->device_name;
    be->caps.device = 1;
    /* A lone prompt in passes of 2,048 rows: the first token of a 1120x1120 image and a question
     * (1,612 tokens) 58.4 -> 47.6 ms of prefill on an H100 against 512-row passes (the GEMMs of
     * 512 rows leave multiprocessors idle); ~0.5 GB of scratch for the 9B. Batched passes keep 512
     * prompt rows beside the decode rows. GLMV_CUDA_PREFILL_CHUNK=rows (16-8192) sets the first. */
    be->caps.prefill_chunk = 2048;
    be->caps.batch_prompt_rows = 512;
    const char *pc = getenv("GLMV_CUDA_PREFILL_CHUNK");
    if (pc && atoi(pc) >= 16 && atoi(pc) <= 8192) be->caps.prefill_chunk = atoi(pc);
    be->caps.vision_rows = 8192; /* the tower's MLPs in one pass up to 8,192 patches (1120x1120: 6,400) */
    be->caps.keep_scratch = 1;    /* cudaMalloc per buffer per image would add up */
    /* bf16 caches in bf16 precision: its tensor-core attention kernels (prefill, decode) round K
     * and V to bf16 anyway, and now read half the bytes for the same results; the float32 kernel
     * that fewer than 16 prompt rows take reads the rounded values (GLMV_KV_BF16=0: float32) */
    if (glmv_env_kv_bf16(c->bf16, &be->caps.kv_bf16, err)) {
        cu_destroy(be);
        return NULL;
    }
    c->kv_bf16 = be->caps.kv_bf16;
    if (k_attn_init(c, err)) {
        cu_destroy(be);
        return NULL;
    }
    return be;
}
