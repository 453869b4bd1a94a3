/* ops.h -- the op interface between the model code and its backends.
 *
 * The model (vision.c, text.c) is written once against this table of
 * function pointers; the CPU backend (src/cpu/) and the CUDA backend
 * (src/cuda/) implement it. The scalar CPU reference (src/cpu/ref.c) defines
 * what every op means; every faster implementation is tested against it.
 *
 * Conventions:
 *  - activations are float32, row-major, PyTorch order (outermost first);
 *    pointers to activations are backend memory (be->alloc);
 *  - weights are glmv_tensor in their checkpoint dtype (F32, F16, BF16) or a block
 *    format (Q8_0, Q4_0: 2-D, rows of whole blocks; a device may keep them in a layout
 *    of its own), `[out, in]` like torch.nn.Linear; a weight of more than two dimensions
 *    is viewed as [shape[0], prod(shape[1:])] (Conv3d/Conv2d kernels);
 *  - host arrays (ids, cu_seqlens) are plain host memory;
 *  - ops are asynchronous on devices; be->read synchronises.
 */
#ifndef GLMV_OPS_H
#define GLMV_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Q8_0, Q4_0, Q5_0, Q4_K and Q6_K are llama.cpp's block formats (src/quant.h): rows of blocks
 * of 32 elements (Q8_0, Q4_0, Q5_0) or of 256 (the K-quants), each a few scales and the
 * quantized values. */
typedef enum {
    GLMV_F32 = 0, GLMV_F16 = 1, GLMV_BF16 = 2, GLMV_Q8_0 = 3, GLMV_Q4_0 = 4, GLMV_Q5_0 = 5, GLMV_Q4_K = 6,
    GLMV_Q6_K = 7
} glmv_dtype;

/* Bytes of one element of a plain dtype (F32, F16, BF16; not the block formats). */
size_t glmv_dtype_size(glmv_dtype t);
/* Bytes of a row of k elements (k a multiple of the block, glmv_dtype_block, for the block
 * formats). */
size_t glmv_dtype_row_bytes(glmv_dtype t, int64_t k);
static inline int glmv_dtype_is_quant(glmv_dtype t) { return t >= GLMV_Q8_0 && t <= GLMV_Q6_K; }
/* Elements of one block: 1 for F32/F16/BF16, 32 or 256 for the block formats. */
static inline int glmv_dtype_block(glmv_dtype t) {
    return t == GLMV_Q4_K || t == GLMV_Q6_K ? 256 : glmv_dtype_is_quant(t) ? 32 : 1;
}
const char *glmv_dtype_name(glmv_dtype t);

#define GLMV_MAX_DIMS 5

typedef struct {
    const char *name;           /* safetensors key (points into the header) */
    glmv_dtype dtype;
    int ndim;
    int64_t shape[GLMV_MAX_DIMS];
    void *data;                 /* host (mmap'd) or device memory after upload */
    void *host;                 /* the mmap'd bytes, kept for the CPU */
} glmv_tensor;

int64_t glmv_tensor_numel(const glmv_tensor *t);
/* rows/cols of the 2-D view [shape[0], prod(shape[1:])] */
static inline int64_t glmv_tensor_rows(const glmv_tensor *t) { return t->shape[0]; }
static inline int64_t glmv_tensor_cols(const glmv_tensor *t) {
    int64_t c = 1;
    for (int i = 1; i < t->ndim; i++) c *= t->shape[i];
    return c;
}
/* One element as float (host data); for references and tests. */
float glmv_tensor_get(const glmv_tensor *t, int64_t i);
/* Elements [i0, i0 + n) as floats into dst (host data). */
void glmv_tensor_get_range(const glmv_tensor *t, int64_t i0, int64_t n, float *dst);

typedef struct glmv_backend glmv_backend;

/* The KV caches' element as GLMV_KV_BF16 asks: "1" bf16, "0" float32, unset or empty: def (the
 * backend's default). 0, or -1 with err for any other value. */
int glmv_env_kv_bf16(int def, int *kv_bf16, char *err);

/* What a backend is, for the model code to decide by instead of comparing names. */
typedef struct {
    int device;                 /* 1: its memory is not the host's (be->alloc is device memory, weights
                                   are copied there, host rows are written and read) */
    int prefill_chunk;          /* a lone prompt's rows in one pass (GEMM efficiency vs scratch) */
    int batch_prompt_rows;      /* prompt rows a batched pass takes beside the decode rows (0: prefill_chunk):
                                   fewer than a lone prompt's, so that a long prompt does not stall
                                   the running streams for long */
    int vision_rows;            /* rows of the vision tower's MLP a pass (0: 1024; bounds its scratch) */
    int keep_scratch;           /* 1: allocation is costly (cudaMalloc): keep per-call scratch */
    int kv_bf16;                /* 1: a KV cache holds bf16 (2 bytes an element, rounded to nearest
                                   even by kv_store), half the memory and the attention's reads; 0:
                                   float32. The caches' pointers are void * for that reason. */
} glmv_backend_caps;

struct glmv_backend {
    const char *name;           /* "cpu-ref", "cpu-avx2", "cuda", ... */
    void *impl;                 /* backend private state */
    glmv_backend_caps caps;     /* set by the constructor */
    /* 1: matmul (and, on a device, prefill attention) rounds its float32 inputs
     * to bf16 and multiplies them in hardware; 0: float32 products of the
     * weights as stored. Fixed at creation (the constructors' bf16 argument,
     * granted only where the hardware has bf16 products). */
    int bf16;

    void (*destroy)(glmv_backend *be);

    /* ---- memory ---- */
    void *(*alloc)(glmv_backend *be, size_t bytes);          /* NULL on OOM */
    void (*free)(glmv_backend *be, void *p);
    /* Make t->data usable by this backend (CPU: no-op; CUDA: copy once). */
    int (*upload)(glmv_backend *be, glmv_tensor *t, char *err);
    void (*write)(glmv_backend *be, void *dst, const void *src_host, size_t bytes);
    /* dst[i] = the float of bf16 value src_host[i], i < count: half the bytes of writing the
     * floats (the prompt's rows of a token table kept on the host). src_host is pageable
     * memory (malloc), which may be reused when the call returns (CUDA: the driver has staged
     * it); not page-locked memory from host_alloc, whose copy may still be under way. NULL:
     * convert on the host and write. */
    void (*write_bf16)(glmv_backend *be, float *dst, const uint16_t *src_host, int64_t count);
    /* dst[i] = lut[256 * ((i / run) % tables) + src_host[i]], i < count: bytes written and
     * widened through tables of 256 floats (the vision tower's patch rows as the pixels' bytes:
     * a quarter of the floats' transfer). The same pageable-memory terms as write_bf16; lut is
     * read before the call returns. NULL: widen on the host and write. */
    void (*write_lut)(glmv_backend *be, float *dst, const uint8_t *src_host, int64_t count, int64_t run,
                      const float *lut, int tables);
    /* The vision tower's rotation tables from their values at each coordinate: cos[i, :] = [tc[hp[i]] |
     * tc[wp[i]]] and sin[i, :] likewise from ts (rows of 2 nf floats; backend memory), i < n; tc, ts
     * [nv, nf] and hp, wp (each in [0, nv)) on the host, in pageable memory (free once the call
     * returns) or page-locked memory left as it is until the next sync: ~70 KB over the bus and
     * no host work a row, instead of a 1120x1120 image's 3.3 MB of tables made on the host and
     * written. NULL: made on the host and written. */
    void (*rope_table_2d)(glmv_backend *be, float *cos, float *sin, const float *tc, const float *ts, int nv,
                          const int32_t *hp, const int32_t *wp, int64_t n, int nf);
    void (*read)(glmv_backend *be, void *dst_host, const void *src, size_t bytes);
    /* The same without waiting: the bytes are there after the next sync (NULL: read). */
    void (*read_async)(glmv_backend *be, void *dst_host, const void *src, size_t bytes);
    /* Host memory that reads fill fastest (CUDA: page-locked, so a read is one transfer at
     * the bus's speed instead of a copy through a staging buffer); NULL: malloc and free. */
    void *(*host_alloc)(glmv_backend *be, size_t bytes);
    void (*host_free)(glmv_backend *be, void *p);
    /* Memory that grows as it is used (the KV caches): reserve takes an address range of `bytes`
     * with nothing behind it yet and says in *granule the unit commit backs it in; commit backs
     * the range's first `bytes` (a multiple of the granule): 0, or -1 when the memory is not there
     * (nothing changed); decommit gives back all but the first `keep` bytes (a multiple of the
     * granule; after the ops queued before it are done); release frees the range. NULL: none
     * (alloc stands in, all of it backed at once). */
    void *(*reserve)(glmv_backend *be, size_t bytes, size_t *granule);
    int (*commit)(glmv_backend *be, void *p, size_t bytes);
    void (*decommit)(glmv_backend *be, void *p, size_t keep);
    void (*release)(glmv_backend *be, void *p);
    void (*copy)(glmv_backend *be, void *dst, const void *src, size_t bytes);
    void (*sync)(glmv_backend *be);
    /* y[i, :cols] = x[i, :cols] for rows of strides ldy, ldx (floats; backend memory): the
     * joined q|k|v product's k and v columns into the cache */
    void (*copy_rows)(glmv_backend *be, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows,
                      int64_t cols);
    /* rows of a KV cache from float rows: row i of dst ([rows, cols] in the cache's element,
     * caps.kv_bf16) = x[i, :cols] (rows of stride ldx floats; backend memory), rounded to bf16
     * where the cache holds bf16 */
    void (*kv_store)(glmv_backend *be, void *dst, const float *x, int64_t ldx, int64_t rows, int64_t cols);

    /* ---- linear algebra ---- */
    /* y[m, n] = x[m, k] · w[n, k]ᵀ (+ bias[n]); n, k from w's 2-D view.
     * bias may be NULL. */
    void (*matmul)(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                   const glmv_tensor *bias, int64_t m);
    /* The same product for m independent rows (one decode step of each of m sequences):
     * the weights are read once for all of them, and each row's result is bit for bit
     * what matmul gives that row alone (m = 1), so that a sequence's tokens do not depend
     * on what runs beside it. NULL: matmul stands in, without that guarantee. */
    void (*matmul_rows)(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                        const glmv_tensor *bias, int64_t m);
    /* y[i, :] = table[ids[i], :] for i < n (ids on the host, checked by the caller) */
    void (*embed)(glmv_backend *be, float *y, const glmv_tensor *table, const int32_t *ids,
                  int64_t n);

    /* ---- normalisation ---- */
    /* ref: Glm4RMSNorm: y = w * (x / sqrt(mean(x²) + eps)), per row of d */
    void (*rmsnorm)(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                    int64_t n, int64_t d, float eps);
    /* The end of a decoder sublayer and the start of the next in one step: x[i] +=
     * rmsnorm(t[i])·w1 (the sublayer's output norm and the residual), then y[i] =
     * rmsnorm(x[i])·w2 (the next input norm), per row of d. ref: rmsnorm, add, rmsnorm, with
     * the same rounding (bit for bit the three ops). w1 NULL: x[i] += t[i] (a residual with no
     * norm of its own, the vision tower's), then the norm: bit for bit add, rmsnorm. */
    void (*norm_add_norm)(glmv_backend *be, float *x, float *y, const float *t, const glmv_tensor *w1,
                          const glmv_tensor *w2, int64_t n, int64_t d, float eps);
    /* ref: nn.LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b, per row of d */
    void (*layernorm)(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                      const glmv_tensor *b, int64_t n, int64_t d, float eps);

    /* ---- rotary ---- */
    /* Interleaved (GPT-J) rotary on the first rot_dim dims of each head, in place:
     * x[n, ld] holds heads of head_dim starting at column 0 (n_heads of them);
     * cos/sin [n, rot_dim/2]; pair (2j, 2j+1) rotates by angle j. ref: text M-RoPE */
    void (*rope_interleaved)(glmv_backend *be, float *x, int64_t ld, const float *cos,
                             const float *sin, int64_t n, int n_heads, int head_dim,
                             int rot_dim);
    /* Joined q|k|v rows x [n, ldq] (nh heads of q, then nkv of k and nkv of v, hd each): what
     * rope_interleaved over the nh + nkv heads of q and k (rot dims), then kv_store of k's and v's
     * rows into kc and vc (rows of nkv hd) do, in one pass. NULL: those ops. */
    void (*rope_kv_store)(glmv_backend *be, float *x, int64_t ldq, const float *cos, const float *sin, int64_t n,
                          int nh, int nkv, int hd, int rot, void *kc, void *vc);
    /* NeoX half rotation over the whole head, in place: pair (d, d + head_dim/2);
     * cos/sin [n, head_dim/2]. ref: apply_rotary_pos_emb_vision */
    void (*rope_neox)(glmv_backend *be, float *x, int64_t ld, const float *cos,
                      const float *sin, int64_t n, int n_heads, int head_dim);

    /* ---- attention ---- */
    /* Causal GQA attention for n queries at absolute positions pos0..pos0+n-1
     * over cached keys/values 0..pos0+n-1.
     * q [n, ldq] (n_heads × head_dim from column 0), kc/vc [>= pos0+n, n_kv_heads*head_dim]
     * (KV caches: float32, or bf16 with caps.kv_bf16), out [n, n_heads*head_dim]; query head h
     * uses kv head h / (n_heads/n_kv_heads). */
    void (*attn_causal)(glmv_backend *be, float *out, const float *q, int64_t ldq,
                        const void *kc, const void *vc, int64_t n, int64_t pos0,
                        int n_heads, int n_kv_heads, int head_dim, float scale);
    /* One decode step of n sequences, each over its own cache: first the step's key and
     * value rows k_new[i], v_new[i] (rows of ldkv floats) are stored at row n_keys[i] - 1 of
     * the caches kc[i], vc[i] (as kv_store would); then query row i of q [n, ldq] attends to keys 0..n_keys[i]-1 of its
     * cache, as attn_causal with n = 1 and pos0 = n_keys[i] - 1 would. kc, vc (n
     * pointers each) and n_keys (n counts) are themselves in backend memory, so that a
     * device reads them without a copy per call; max_keys bounds them (the largest n_keys[i], or
     * more: a recorded step passes a bound rounded up, and the work split may follow it). */
    void (*attn_decode_batch)(glmv_backend *be, float *out, const float *q, int64_t ldq,
                              const float *k_new, const float *v_new, int64_t ldkv,
                              void *const *kc, void *const *vc, const int64_t *n_keys, int n,
                              int64_t max_keys, int n_heads, int n_kv_heads, int head_dim,
                              float scale);
    /* Bidirectional attention confined to segments [cu[s], cu[s+1]) (host array
     * of n_seg+1 offsets). q/k/v rows have strides ldq/ldk/ldv; out [rows, n_heads*head_dim]. */
    void (*attn_segments)(glmv_backend *be, float *out, const float *q, int64_t ldq,
                          const float *k, int64_t ldk, const float *v, int64_t ldv,
                          const int64_t *cu, int n_seg, int n_heads, int head_dim,
                          float scale);

    /* Optional (NULL: rope_neox on q's and k's heads, then attn_segments): the same, in one op, for
     * a device that rotates q and k as it reads them; q and k may be left rotated or as they were
     * (the op owns their rows). cs / sn as rope_neox's, rows as q's. The same floats as the two ops. */
    void (*attn_rope_segments)(glmv_backend *be, float *out, float *q, int64_t ldq, float *k, int64_t ldk,
                               const float *v, int64_t ldv, const float *cs, const float *sn, const int64_t *cu,
                               int n_seg, int n_heads, int head_dim, float scale);

    /* ---- elementwise ---- */
    /* y[i, j] = silu(gate[i, j]) * up[i, j] for j < d; rows with strides ld_g, ld_u; y [n, d] */
    void (*swiglu)(glmv_backend *be, float *y, const float *gate, int64_t ld_g, const float *up,
                   int64_t ld_u, int64_t n, int64_t d);
    /* Optional (NULL: swiglu into h, then matmul): y[m, n] = swiglu(gate, up) · wᵀ (+ bias), the
     * SwiGLU of the rows of strides ld_g, ld_u over w's cols(w) columns. The products may land in h
     * ([m, cols(w)], may be gate) or go straight into the product's input: a device that rounds
     * GEMM inputs to bf16 rounds them there instead of writing them out in float32 first. The
     * same values as the two ops. */
    void (*matmul_swiglu)(glmv_backend *be, float *y, const float *gate, int64_t ld_g, const float *up, int64_t ld_u,
                          float *h, const glmv_tensor *w, const glmv_tensor *bias, int64_t m);
    /* Optional (NULL, or it returns 1 having done nothing: the product into [gate | up] rows,
     * then swiglu): h[m, I] = swiglu(x · w[:I]ᵀ, x · w[I:]ᵀ) for w = [gate | up] (2I rows, no
     * bias), the product and the SwiGLU in one step. A backend may take only some shapes (a
     * decode step's few rows, where the separate SwiGLU is a launch of its own) and return 1 for
     * the others; 0 when done. */
    int (*matmul_glu)(glmv_backend *be, float *h, const float *x, const glmv_tensor *w, int64_t m);
    /* Optional (NULL: none): a whole MLP on prompt rows, y = swiglu(x · gate_upᵀ + gate_up_b) · downᵀ
     * + down_b (gate_up [gate | up], 2I rows; biases may be NULL), with the gate/up products rounded
     * to bf16 as the reference's bf16 Linear rounds them (so within rounding, not bit for bit, of
     * matmul and then matmul_swiglu). scratch: [m, 2I] floats it may overwrite. 0 when done; 1 when
     * declined, nothing written (rows, weights or precision it does not take): the ops apart then. */
    int (*mlp)(glmv_backend *be, float *y, const float *x, const glmv_tensor *gate_up, const glmv_tensor *gate_up_b,
               const glmv_tensor *down, const glmv_tensor *down_b, float *scratch, int64_t m);
    /* Optional (NULL, or it returns 1 having done nothing: the model resamples on the host): the
     * vision tower's position table (S*S rows of d) resampled for a gh x gw grid into out's gh*gw
     * rows in merge-block order (ms), glmv_vision_pos_embed's floats bit for bit: out = Σ_a cy[a] ·
     * (Σ_b cx[b] · table[clamp(y0 + a)·S + clamp(x0 + b)]), clamped to [0, S), each sum from 0 in tap
     * order with products and sums rounded apart. coef (host): cx [gw][4], then cy [gh][4]; idx
     * (host): x0 [gw], then y0 [gh] (glmv_vision_pos_coefs). 0 when done. */
    int (*pos_embed)(glmv_backend *be, float *out, const glmv_tensor *table, int S, int ms, int gh, int gw,
                     const float *coef, const int *idx);
    /* y = 0.5 x (1 + erf(x / sqrt 2)) */
    void (*gelu_erf)(glmv_backend *be, float *y, const float *x, int64_t count);
    /* y = a + b */
    void (*add)(glmv_backend *be, float *y, const float *a, const float *b, int64_t count);
    /* y[a, c, b] = x[a, b, c] */
    void (*permute_021)(glmv_backend *be, float *y, const float *x, int64_t A, int64_t B,
                        int64_t C);

    /* ---- selection ---- */
    /* The k largest of each of `rows` rows of n floats x (rows one after another), largest
     * first, into vals[rows, k] and their column indices into ids[rows, k] (backend memory):
     * among equal values the smaller index first, +0 and -0 equal, NaN below everything
     * (-inf included). 1 <= k <= n. A decode step reads these few instead of the row (151,552
     * logits of the 9B, 606 KB). ref: glmv_ref_top_k */
    void (*top_k)(glmv_backend *be, float *vals, int32_t *ids, const float *x, int64_t rows, int64_t n, int k);

    /* ---- optional: NULL where a backend has no such thing ---- */
    /* Device backends queue ops and report failures later: 0 when all is well,
     * else -1 with the first (sticky) error, e.g. "cuda: matmul (gemv): an
     * illegal memory access was encountered". Call after be->read. */
    int (*status)(glmv_backend *be, char *err);
    /* Graphs: the ops queued between graph_begin and graph_end recorded once and replayed
     * by graph_run on the same buffers with the same arguments (whatever changes between
     * replays lives in backend memory, written before the replay). graph_begin: 0 when
     * recording (the ops then run only when the graph does), -1 when not. graph_end: the
     * graph, or NULL if it could not be recorded (nothing ran; the backend records no more
     * graphs). graph_run: 0 when it ran, -1 when the graph is stale (scratch it used has
     * moved): free it and queue the ops again. NULL where a backend has no graphs. */
    int (*graph_begin)(glmv_backend *be);
    void *(*graph_end)(glmv_backend *be);
    int (*graph_run)(glmv_backend *be, void *graph);
    void (*graph_free)(glmv_backend *be, void *graph);
    /* Bytes of device memory in use (the whole device's view), for glmv_device_bytes; and free. */
    int64_t (*device_bytes)(glmv_backend *be);
    int64_t (*device_free)(glmv_backend *be);
    /* Tensor parallelism (tp.c), where several backends of one kind run on threads of their
     * own: make this backend's device the calling thread's (CUDA: cudaSetDevice), and the queue
     * its ops go to (CUDA: the cudaStream_t, for NCCL). NULL on the CPU. */
    void (*bind_thread)(glmv_backend *be);
    void *(*queue)(glmv_backend *be);
    const char *device_name;    /* e.g. "NVIDIA H200" */
};

/* The CPU backend. simd: -1 = best the CPU has, 0 = scalar reference only,
 * or a GLMV_SIMD_* level to force (tests compare levels). n_threads 0 = all cores.
 * bf16 1 asks for bf16 GEMM inputs: granted (be->bf16) only on AVX512-BF16. */
enum { GLMV_SIMD_AUTO = -1, GLMV_SIMD_NONE = 0, GLMV_SIMD_AVX2 = 1, GLMV_SIMD_AVX512 = 2,
       GLMV_SIMD_AVX512BF16 = 3, GLMV_SIMD_AMX = 4 };
glmv_backend *glmv_cpu_backend_new(int n_threads, int simd, int bf16, char *err);

#ifdef GLMV_CUDA
/* The CUDA backend on device `dev`; NULL with err set when no usable GPU.
 * bf16 0: GEMMs in float32 (SGEMM on converted weights), attention in the
 * float32 split kernel; 1: bf16 tensor cores for both (see be->bf16). */
glmv_backend *glmv_cuda_backend_new(int dev, int bf16, char *err);
#endif

#endif
