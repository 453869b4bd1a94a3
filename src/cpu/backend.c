/* backend.c -- the CPU backend: host memory and the op table.
 * Ops start as the scalar references (ref.c); faster kernels replace entries
 * of the table according to what the CPU supports (see dispatch). */
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cpu/ref.h"
#include "ops.h"

static void cpu_destroy(glmv_backend *be) { free(be); }
static void *cpu_alloc(glmv_backend *be, size_t bytes) { (void)be; return glmv_aligned_alloc(bytes); }
static void cpu_free(glmv_backend *be, void *p) { (void)be; free(p); }
static int cpu_upload(glmv_backend *be, glmv_tensor *t, char *err) {
    (void)be; (void)err;
    t->data = t->host;
    return 0;
}
static void cpu_write(glmv_backend *be, void *dst, const void *src, size_t n) { (void)be; memcpy(dst, src, n); }
static void cpu_read(glmv_backend *be, void *dst, const void *src, size_t n) { (void)be; memcpy(dst, src, n); }
static void cpu_copy(glmv_backend *be, void *dst, const void *src, size_t n) { (void)be; memmove(dst, src, n); }
static void cpu_sync(glmv_backend *be) { (void)be; }

#define REF0(name, params, args) \
    static void cpu_ref_##name params { (void)be; glmv_ref_##name args; }

REF0(matmul, (glmv_backend *be, float *y, const float *x, const glmv_tensor *w, const glmv_tensor *b, int64_t m), (y, x, w, b, m))
REF0(embed, (glmv_backend *be, float *y, const glmv_tensor *t, const int32_t *ids, int64_t n), (y, t, ids, n))
REF0(rmsnorm, (glmv_backend *be, float *y, const float *x, const glmv_tensor *w, int64_t n, int64_t d, float eps), (y, x, w, n, d, eps))
REF0(layernorm, (glmv_backend *be, float *y, const float *x, const glmv_tensor *w, const glmv_tensor *b, int64_t n, int64_t d, float eps), (y, x, w, b, n, d, eps))
REF0(rope_interleaved, (glmv_backend *be, float *x, int64_t ld, const float *c, const float *s, int64_t n, int nh, int hd, int rd), (x, ld, c, s, n, nh, hd, rd))
REF0(rope_neox, (glmv_backend *be, float *x, int64_t ld, const float *c, const float *s, int64_t n, int nh, int hd), (x, ld, c, s, n, nh, hd))
REF0(attn_causal, (glmv_backend *be, float *o, const float *q, int64_t ldq, const float *kc, const float *vc, int64_t n, int64_t pos0, int nh, int nkv, int hd, float sc), (o, q, ldq, kc, vc, n, pos0, nh, nkv, hd, sc))
REF0(attn_segments, (glmv_backend *be, float *o, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv, const int64_t *cu, int ns, int nh, int hd, float sc), (o, q, ldq, k, ldk, v, ldv, cu, ns, nh, hd, sc))
REF0(swiglu, (glmv_backend *be, float *y, const float *g, int64_t lg, const float *u, int64_t lu, int64_t n, int64_t d), (y, g, lg, u, lu, n, d))
REF0(gelu_erf, (glmv_backend *be, float *y, const float *x, int64_t c), (y, x, c))
REF0(add, (glmv_backend *be, float *y, const float *a, const float *b, int64_t c), (y, a, b, c))
REF0(permute_021, (glmv_backend *be, float *y, const float *x, int64_t A, int64_t B, int64_t C), (y, x, A, B, C))

glmv_backend *glmv_cpu_backend_new(int n_threads, int simd, char *err) {
    (void)n_threads; (void)simd;
    glmv_backend *be = calloc(1, sizeof *be);
    if (!be) {
        glmv_errf(err, "out of memory");
        return NULL;
    }
    be->name = "cpu-ref";
    be->destroy = cpu_destroy;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_upload;
    be->write = cpu_write;
    be->read = cpu_read;
    be->copy = cpu_copy;
    be->sync = cpu_sync;
    be->matmul = cpu_ref_matmul;
    be->embed = cpu_ref_embed;
    be->rmsnorm = cpu_ref_rmsnorm;
    be->layernorm = cpu_ref_layernorm;
    be->rope_interleaved = cpu_ref_rope_interleaved;
    be->rope_neox = cpu_ref_rope_neox;
    be->attn_causal = cpu_ref_attn_causal;
    be->attn_segments = cpu_ref_attn_segments;
    be->swiglu = cpu_ref_swiglu;
    be->gelu_erf = cpu_ref_gelu_erf;
    be->add = cpu_ref_add;
    be->permute_021 = cpu_ref_permute_021;
    return be;
}
