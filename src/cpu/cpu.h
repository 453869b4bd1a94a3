/* cpu.h -- the CPU backend's private state, shared by its driver files
 * (backend.c: creation, dispatch and the small ops; matmul.c; attention.c).
 *
 * The backend owns its thread pool and all scratch: per-thread buffers sized
 * at creation (GEMM panels) and a shared buffer that grows on demand on the
 * calling thread (bf16 copies of x, attention partials), so steady-state
 * decode allocates nothing. A backend serves one caller at a time: its pool and
 * scratch are not reentrant (sessions sharing a model must not run ops concurrently).
 */
#ifndef GLMV_CPU_CPU_H
#define GLMV_CPU_CPU_H

#include "cpu/kernels.h"
#include "cpu/threads.h"
#include "ops.h"

#define GLMV_CPU_TSCRATCH (256 * 1024) /* bytes of scratch per thread */

typedef struct {
    const glmv_cpu_kernels *k;  /* NULL for the scalar reference */
    glmv_pool *pool;
    int n_threads;
    char *tscratch;             /* n_threads x GLMV_CPU_TSCRATCH, 64-byte aligned */
    void *shared;               /* grows on demand (cpu_shared) */
    size_t shared_size;
    float *kv_wide;             /* a bf16 cache's rows widened for attention (caps.kv_bf16) */
    size_t kv_wide_size;
} cpu_state;

static inline cpu_state *cpu_of(glmv_backend *be) { return (cpu_state *)be->impl; }
static inline void *cpu_tscratch(cpu_state *cs, int thread) {
    return cs->tscratch + (size_t)thread * GLMV_CPU_TSCRATCH;
}
/* The shared scratch, at least `bytes` long; aborts on OOM (it is sized by
 * activations the caller already holds, so failure here is not recoverable). */
void *cpu_shared(cpu_state *cs, size_t bytes);

/* SIMD levels (GLMV_SIMD_*): whether this CPU can run one, its name, the best one. */
int glmv_cpu_simd_supported(int level);
const char *glmv_cpu_simd_name(int level);
int glmv_cpu_simd_best(void);

/* A backend on an explicit kernel table (tests: emulated tables); name is kept;
 * bf16 as for glmv_cpu_backend_new (granted when the table has kern_bf16). */
glmv_backend *glmv_cpu_backend_new_table(int n_threads, const glmv_cpu_kernels *k,
                                         const char *name, int bf16, char *err);

void glmv_cpu_matmul_rows(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                          const glmv_tensor *bias, int64_t m);
void glmv_cpu_attn_decode_batch(glmv_backend *be, float *out, const float *q, int64_t ldq,
                                const float *k_new, const float *v_new, int64_t ldkv,
                                void *const *kc, void *const *vc, const int64_t *n_keys, int n,
                                int64_t max_keys, int n_heads, int n_kv_heads, int head_dim,
                                float scale);
void glmv_cpu_matmul(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                     const glmv_tensor *bias, int64_t m);
void glmv_cpu_attn_causal(glmv_backend *be, float *out, const float *q, int64_t ldq,
                          const void *kc, const void *vc, int64_t n, int64_t pos0,
                          int n_heads, int n_kv_heads, int head_dim, float scale);
void glmv_cpu_attn_segments(glmv_backend *be, float *out, const float *q, int64_t ldq,
                            const float *k, int64_t ldk, const float *v, int64_t ldv,
                            const int64_t *cu, int n_seg, int n_heads, int head_dim,
                            float scale);

#endif
