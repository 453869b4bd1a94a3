/* backend.c -- the CPU backend: creation, run-time SIMD dispatch, host
 * memory, and the small ops (embed, norms, ropes, elementwise), threaded.
 *
 * glmv_cpu_backend_new picks a kernel table (kernels.h) with
 * __builtin_cpu_supports, or none at all for GLMV_SIMD_NONE, in which case
 * every op is the scalar reference of ref.c. The environment variable
 * GLMV_SIMD (none, avx2, avx512, avx512bf16, amx) overrides GLMV_SIMD_AUTO. The
 * backend owns its thread pool and scratch; matmul and attention live in
 * matmul.c and attention.c.
 */
#include <math.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

#include "base.h"
#include "cpu/cpu.h"
#include "cpu/ref.h"
#include "ops.h"

/* ------------------------------------------------------------------------ */
/* memory                                                                   */
/* ------------------------------------------------------------------------ */

void *cpu_shared(cpu_state *cs, size_t bytes) {
    if (bytes > cs->shared_size) {
        size_t sz = GLMV_MAX(bytes, cs->shared_size + cs->shared_size / 2);
        free(cs->shared);
        cs->shared = glmv_aligned_alloc(sz);
        GLMV_ASSERT(cs->shared != NULL);
        cs->shared_size = sz;
    }
    return cs->shared;
}

static void cpu_destroy(glmv_backend *be) {
    if (!be) return;
    cpu_state *cs = be->impl;
    if (cs) {
        glmv_pool_free(cs->pool);
        free(cs->tscratch);
        free(cs->shared);
        free(cs->kv_wide);
        free(cs);
    }
    free(be);
}
static void *cpu_alloc(glmv_backend *be, size_t bytes) { (void)be; return glmv_aligned_alloc(bytes); }
static void cpu_free(glmv_backend *be, void *p) { (void)be; free(p); }

/* Growing memory: pages the kernel backs when first written (MAP_NORESERVE), given back with
 * MADV_DONTNEED. The range's size sits in the page before it. */
#define CPU_GRANULE ((size_t)64 << 10)
static void *cpu_reserve(glmv_backend *be, size_t bytes, size_t *granule) {
    (void)be;
    size_t size = (bytes + CPU_GRANULE - 1) / CPU_GRANULE * CPU_GRANULE + CPU_GRANULE;
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    memcpy(p, &size, sizeof size);
    *granule = CPU_GRANULE;
    return p + CPU_GRANULE;
}
static int cpu_commit(glmv_backend *be, void *p, size_t bytes) { (void)be, (void)p, (void)bytes; return 0; }
static void cpu_decommit(glmv_backend *be, void *p, size_t keep) {
    (void)be;
    size_t size;
    memcpy(&size, (char *)p - CPU_GRANULE, sizeof size);
    keep = (keep + CPU_GRANULE - 1) / CPU_GRANULE * CPU_GRANULE;
    if (keep < size - CPU_GRANULE) madvise((char *)p + keep, size - CPU_GRANULE - keep, MADV_DONTNEED);
}
static void cpu_release(glmv_backend *be, void *p) {
    (void)be;
    if (!p) return;
    size_t size;
    memcpy(&size, (char *)p - CPU_GRANULE, sizeof size);
    munmap((char *)p - CPU_GRANULE, size);
}
static int cpu_upload(glmv_backend *be, glmv_tensor *t, char *err) {
    (void)be; (void)err;
    t->data = t->host;
    return 0;
}
static void cpu_write(glmv_backend *be, void *dst, const void *src, size_t n) { (void)be; memcpy(dst, src, n); }
static void cpu_read(glmv_backend *be, void *dst, const void *src, size_t n) { (void)be; memcpy(dst, src, n); }
static void cpu_copy(glmv_backend *be, void *dst, const void *src, size_t n) { (void)be; memmove(dst, src, n); }
static void cpu_sync(glmv_backend *be) { (void)be; }

/* ------------------------------------------------------------------------ */
/* row-parallel helpers                                                     */
/* ------------------------------------------------------------------------ */

/* A generic job over rows [0, n) in tasks of `per` rows; fn does rows [r0, r1). */
typedef struct row_job row_job;
struct row_job {
    cpu_state *cs;
    void (*fn)(row_job *j, int64_t r0, int64_t r1);
    int64_t n, per;
    float *y;
    const float *x, *x2;
    const float *w, *b;         /* float32 copies of norm weights */
    const void *src;            /* embed table / rope cos */
    const void *src2;           /* rope sin */
    const int32_t *ids;
    int64_t d, ld, ld2, A, B, C;
    int i1, i2, i3;
    float f;
    glmv_dtype dt;
};

static void row_task(void *ctx, int64_t t, int thread) {
    (void)thread;
    row_job *j = ctx;
    int64_t r0 = t * j->per, r1 = GLMV_MIN(j->n, r0 + j->per);
    j->fn(j, r0, r1);
}

/* run j->fn over j->n rows; `cost` is the work per row in elements */
static void run_rows(row_job *j, int64_t cost) {
    if (j->n <= 0) return;
    int64_t min_rows = GLMV_MAX((int64_t)1, (int64_t)16384 / GLMV_MAX(cost, (int64_t)1));
    int64_t tasks = GLMV_MIN((int64_t)j->cs->n_threads * 4, (j->n + min_rows - 1) / min_rows);
    tasks = GLMV_MAX(tasks, (int64_t)1);
    j->per = (j->n + tasks - 1) / tasks;
    glmv_pool_run(j->cs->pool, row_task, j, (j->n + j->per - 1) / j->per);
}

/* float32 view of a small 1-D weight, converted into the shared scratch at `off` floats */
static const float *weight_f32(cpu_state *cs, const glmv_tensor *t, int64_t d, size_t off) {
    float *dst = (float *)cpu_shared(cs, (off + (size_t)d) * sizeof(float)) + off;
    cs->k->to_f32(dst, t->data, t->dtype, d);
    return dst;
}

/* ------------------------------------------------------------------------ */
/* ops                                                                      */
/* ------------------------------------------------------------------------ */

static void embed_rows(row_job *j, int64_t r0, int64_t r1) {
    size_t es = glmv_dtype_size(j->dt);
    for (int64_t i = r0; i < r1; i++)
        j->cs->k->to_f32(j->y + i * j->d, (const char *)j->src + (size_t)j->ids[i] * j->d * es,
                         j->dt, j->d);
}
static void cpu_embed(glmv_backend *be, float *y, const glmv_tensor *t, const int32_t *ids, int64_t n) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) { glmv_ref_embed(y, t, ids, n); return; }
    row_job j = {.cs = cs, .fn = embed_rows, .n = n, .y = y, .src = t->data, .ids = ids,
                 .d = glmv_tensor_cols(t), .dt = t->dtype};
    run_rows(&j, j.d);
}

static void rmsnorm_rows(row_job *j, int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++)
        j->cs->k->rmsnorm_row(j->y + i * j->d, j->x + i * j->d, j->w, j->d, j->f);
}
static void cpu_rmsnorm(glmv_backend *be, float *y, const float *x, const glmv_tensor *w, int64_t n,
                        int64_t d, float eps) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) { glmv_ref_rmsnorm(y, x, w, n, d, eps); return; }
    row_job j = {.cs = cs, .fn = rmsnorm_rows, .n = n, .y = y, .x = x, .d = d, .f = eps};
    j.w = weight_f32(cs, w, d, 0);
    run_rows(&j, d);
}

/* rmsnorm, add, rmsnorm row by row with the same kernels (so the same bits as the three ops),
 * y's row holding the first norm's output in between; without w1 (j->w NULL), add, rmsnorm */
static void norm_add_norm_rows(row_job *j, int64_t r0, int64_t r1) {
    const glmv_cpu_kernels *k = j->cs->k;
    for (int64_t i = r0; i < r1; i++) {
        float *x = (float *)j->x + i * j->d, *y = j->y + i * j->d;
        const float *t = j->x2 + i * j->d;
        if (j->w) {
            k->rmsnorm_row(y, t, j->w, j->d, j->f);
            t = y;
        }
        k->add(x, x, t, j->d);
        k->rmsnorm_row(y, x, j->b, j->d, j->f);
    }
}
static void cpu_norm_add_norm(glmv_backend *be, float *x, float *y, const float *t, const glmv_tensor *w1,
                              const glmv_tensor *w2, int64_t n, int64_t d, float eps) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) {
        if (w1) glmv_ref_rmsnorm(y, t, w1, n, d, eps);
        glmv_ref_add(x, x, w1 ? y : t, n * d);
        glmv_ref_rmsnorm(y, x, w2, n, d, eps);
        return;
    }
    row_job j = {.cs = cs, .fn = norm_add_norm_rows, .n = n, .y = y, .x = x, .x2 = t, .d = d, .f = eps};
    j.b = weight_f32(cs, w2, d, (size_t)d); /* the larger offset first: the scratch grows once */
    j.w = w1 ? weight_f32(cs, w1, d, 0) : NULL;
    run_rows(&j, 3 * d);
}

static void cpu_copy_rows(glmv_backend *be, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows,
                          int64_t cols) {
    (void)be;
    for (int64_t i = 0; i < rows; i++) memcpy(y + i * ldy, x + i * ldx, sizeof(float) * (size_t)cols);
}

static void cpu_kv_store(glmv_backend *be, void *dst, const float *x, int64_t ldx, int64_t rows, int64_t cols) {
    if (!be->caps.kv_bf16) {
        cpu_copy_rows(be, dst, cols, x, ldx, rows, cols);
        return;
    }
    uint16_t *d = dst;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) d[i * cols + j] = glmv_f32_to_bf16(x[i * ldx + j]);
}

static void layernorm_rows(row_job *j, int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++)
        j->cs->k->layernorm_row(j->y + i * j->d, j->x + i * j->d, j->w, j->b, j->d, j->f);
}
static void cpu_layernorm(glmv_backend *be, float *y, const float *x, const glmv_tensor *w,
                          const glmv_tensor *b, int64_t n, int64_t d, float eps) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) { glmv_ref_layernorm(y, x, w, b, n, d, eps); return; }
    row_job j = {.cs = cs, .fn = layernorm_rows, .n = n, .y = y, .x = x, .d = d, .f = eps};
    float *buf = cpu_shared(cs, sizeof(float) * (size_t)(2 * d));
    cs->k->to_f32(buf, w->data, w->dtype, d);
    if (b) cs->k->to_f32(buf + d, b->data, b->dtype, d);
    j.w = buf;
    j.b = b ? buf + d : NULL;
    run_rows(&j, d);
}

/* ref: the text model's interleaved M-RoPE (pairs 2j, 2j+1) */
static void rope_il_rows(row_job *j, int64_t r0, int64_t r1) {
    const float *cs_ = j->src, *sn = j->src2;
    int half = j->i3 / 2;
    for (int64_t i = r0; i < r1; i++)
        for (int h = 0; h < j->i1; h++) {
            float *v = j->y + i * j->ld + (int64_t)h * j->i2;
            const float *c = cs_ + i * half, *s = sn + i * half;
            for (int q = 0; q < half; q++) {
                float x0 = v[2 * q], x1 = v[2 * q + 1];
                v[2 * q] = x0 * c[q] - x1 * s[q];
                v[2 * q + 1] = x1 * c[q] + x0 * s[q];
            }
        }
}
static void cpu_rope_interleaved(glmv_backend *be, float *x, int64_t ld, const float *c,
                                 const float *s, int64_t n, int nh, int hd, int rd) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) { glmv_ref_rope_interleaved(x, ld, c, s, n, nh, hd, rd); return; }
    row_job j = {.cs = cs, .fn = rope_il_rows, .n = n, .y = x, .ld = ld, .src = c, .src2 = s,
                 .i1 = nh, .i2 = hd, .i3 = rd};
    run_rows(&j, (int64_t)nh * rd);
}

/* ref: apply_rotary_pos_emb_vision (rotate_half over the whole head) */
static void rope_neox_rows(row_job *j, int64_t r0, int64_t r1) {
    const float *cs_ = j->src, *sn = j->src2;
    int half = j->i2 / 2;
    for (int64_t i = r0; i < r1; i++)
        for (int h = 0; h < j->i1; h++) {
            float *v = j->y + i * j->ld + (int64_t)h * j->i2;
            const float *c = cs_ + i * half, *s = sn + i * half;
            for (int q = 0; q < half; q++) {
                float a = v[q], b = v[q + half];
                v[q] = a * c[q] - b * s[q];
                v[q + half] = b * c[q] + a * s[q];
            }
        }
}
static void cpu_rope_neox(glmv_backend *be, float *x, int64_t ld, const float *c, const float *s,
                          int64_t n, int nh, int hd) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) { glmv_ref_rope_neox(x, ld, c, s, n, nh, hd); return; }
    row_job j = {.cs = cs, .fn = rope_neox_rows, .n = n, .y = x, .ld = ld, .src = c, .src2 = s,
                 .i1 = nh, .i2 = hd};
    run_rows(&j, (int64_t)nh * hd);
}

static void swiglu_rows(row_job *j, int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++)
        j->cs->k->swiglu_row(j->y + i * j->d, j->x + i * j->ld, j->x2 + i * j->ld2, j->d);
}
static void cpu_swiglu(glmv_backend *be, float *y, const float *g, int64_t lg, const float *u,
                       int64_t lu, int64_t n, int64_t d) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) { glmv_ref_swiglu(y, g, lg, u, lu, n, d); return; }
    row_job j = {.cs = cs, .fn = swiglu_rows, .n = n, .y = y, .x = g, .ld = lg, .x2 = u,
                 .ld2 = lu, .d = d};
    run_rows(&j, d);
}

/* elementwise ops run over "rows" of ELEM_CHUNK elements */
#define ELEM_CHUNK 4096
static void gelu_rows(row_job *j, int64_t r0, int64_t r1) {
    int64_t e0 = r0 * ELEM_CHUNK, e1 = GLMV_MIN(j->d, r1 * ELEM_CHUNK);
    for (int64_t i = e0; i < e1; i++) {
        float v = j->x[i];
        j->y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); /* exact erf form */
    }
}
static void cpu_gelu_erf(glmv_backend *be, float *y, const float *x, int64_t count) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) { glmv_ref_gelu_erf(y, x, count); return; }
    row_job j = {.cs = cs, .fn = gelu_rows, .n = (count + ELEM_CHUNK - 1) / ELEM_CHUNK, .y = y,
                 .x = x, .d = count};
    run_rows(&j, 4 * ELEM_CHUNK);
}

static void add_rows(row_job *j, int64_t r0, int64_t r1) {
    int64_t e0 = r0 * ELEM_CHUNK, e1 = GLMV_MIN(j->d, r1 * ELEM_CHUNK);
    j->cs->k->add(j->y + e0, j->x + e0, j->x2 + e0, e1 - e0);
}
static void cpu_add(glmv_backend *be, float *y, const float *a, const float *b, int64_t count) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) { glmv_ref_add(y, a, b, count); return; }
    row_job j = {.cs = cs, .fn = add_rows, .n = (count + ELEM_CHUNK - 1) / ELEM_CHUNK, .y = y,
                 .x = a, .x2 = b, .d = count};
    run_rows(&j, ELEM_CHUNK / 4);
}

/* y[a, c, b] = x[a, b, c]: rows are (a, block of 32 c), each a small transpose */
static void permute_rows(row_job *j, int64_t r0, int64_t r1) {
    int64_t B = j->B, C = j->C, ncb = (C + 31) / 32;
    for (int64_t r = r0; r < r1; r++) {
        int64_t a = r / ncb, c0 = (r % ncb) * 32, c1 = GLMV_MIN(C, c0 + 32);
        const float *xa = j->x + a * B * C;
        float *ya = j->y + a * B * C;
        for (int64_t b = 0; b < B; b++)
            for (int64_t c = c0; c < c1; c++) ya[c * B + b] = xa[b * C + c];
    }
}
static void cpu_permute_021(glmv_backend *be, float *y, const float *x, int64_t A, int64_t B,
                            int64_t C) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) { glmv_ref_permute_021(y, x, A, B, C); return; }
    row_job j = {.cs = cs, .fn = permute_rows, .n = A * ((C + 31) / 32), .y = y, .x = x,
                 .A = A, .B = B, .C = C};
    run_rows(&j, B * 32);
}

/* the reference's selection, rows spread over the threads */
static void top_k_rows(row_job *j, int64_t r0, int64_t r1) {
    glmv_ref_top_k(j->y + r0 * j->i1, (int32_t *)j->src + r0 * j->i1, j->x + r0 * j->d, r1 - r0, j->d, j->i1);
}
static void cpu_top_k(glmv_backend *be, float *vals, int32_t *ids, const float *x, int64_t rows, int64_t n, int k) {
    row_job j = {.cs = cpu_of(be), .fn = top_k_rows, .n = rows, .y = vals, .src = ids, .x = x, .d = n, .i1 = k};
    run_rows(&j, n);
}

/* ------------------------------------------------------------------------ */
/* dispatch                                                                 */
/* ------------------------------------------------------------------------ */

#include <cpuid.h>
#include <pthread.h>
#ifdef __clang__
/* clang before 16 rejects "f16c" and "avx512bf16" in __builtin_cpu_supports
 * (make fuzz builds with clang): read CPUID.1:ECX[29] and
 * CPUID.(EAX=7,ECX=1):EAX[5]; the OS support for the AVX/AVX-512 state is
 * already checked through avx2 and avx512f. */
static int cpu_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && ((c >> 29) & 1);
}
static int cpu_avx512bf16(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1);
}
static int cpu_avx512vnni(void) { /* CPUID.(EAX=7,ECX=0):ECX[11] */
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((c >> 11) & 1);
}
#else
static int cpu_f16c(void) { return __builtin_cpu_supports("f16c"); }
static int cpu_avx512bf16(void) { return __builtin_cpu_supports("avx512bf16"); }
static int cpu_avx512vnni(void) { return __builtin_cpu_supports("avx512vnni"); }
#endif

/* AMX-TILE and AMX-BF16 (CPUID.(EAX=7,ECX=0):EDX[24], [22]), and the kernel's leave to use
 * the tile registers (asked for once) */
static int cpu_amx(void) {
    static int ok = -1;
    if (ok < 0) {
        unsigned a, b, c, d;
        ok = __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((d >> 24) & 1) && ((d >> 22) & 1) && glmv_cpu_amx_init();
    }
    return ok;
}

static int cpu_has(int level) {
    __builtin_cpu_init();
    switch (level) {
    case GLMV_SIMD_NONE: return 1;
    case GLMV_SIMD_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               cpu_f16c();
    case GLMV_SIMD_AVX512:
        return cpu_has(GLMV_SIMD_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq");
    case GLMV_SIMD_AVX512BF16:
        /* its table's Q4_0 product uses AVX512-VNNI, which every AVX512-BF16 CPU has */
        return cpu_has(GLMV_SIMD_AVX512) && cpu_avx512bf16() && cpu_avx512vnni();
    case GLMV_SIMD_AMX:
        return cpu_has(GLMV_SIMD_AVX512BF16) && cpu_amx();
    }
    return 0;
}

static const char *level_name(int level) {
    static const char *names[] = {"none", "avx2", "avx512", "avx512bf16", "amx"};
    return level >= 0 && level <= GLMV_SIMD_AMX ? names[level] : "?";
}

int glmv_cpu_simd_supported(int level) { return level >= 0 && level <= GLMV_SIMD_AMX && cpu_has(level); }
const char *glmv_cpu_simd_name(int level) { return level_name(level); }

/* The AMX table: the AVX512-BF16 one with its bf16 GEMM tile on the tile registers. */
static glmv_cpu_kernels amx_table;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static void amx_table_init(void) {
    amx_table = glmv_cpu_kernels_avx512bf16;
    amx_table.name = "amx";
    amx_table.kern_bf16 = glmv_cpu_kern_bf16_amx;
    amx_table.mrb = 16;
}

/* the best level this CPU has (AMX's table differs from AVX512-BF16's in the bf16 GEMM only) */
int glmv_cpu_simd_best(void) {
    for (int l = GLMV_SIMD_AMX; l > GLMV_SIMD_NONE; l--)
        if (cpu_has(l)) return l;
    return GLMV_SIMD_NONE;
}

glmv_backend *glmv_cpu_backend_new(int n_threads, int simd, int bf16, char *err) {
    if (simd == GLMV_SIMD_AUTO) {
        const char *e = getenv("GLMV_SIMD");
        simd = glmv_cpu_simd_best();
        if (e && *e) {
            int found = -1;
            for (int l = 0; l <= GLMV_SIMD_AMX; l++)
                if (!strcmp(e, level_name(l))) found = l;
            if (found < 0) {
                glmv_errf(err, "GLMV_SIMD=%s: expected none, avx2, avx512, avx512bf16 or amx", e);
                return NULL;
            }
            simd = found;
        }
    }
    if (simd < GLMV_SIMD_NONE || simd > GLMV_SIMD_AMX) {
        glmv_errf(err, "unknown SIMD level %d", simd);
        return NULL;
    }
    if (!cpu_has(simd)) {
        glmv_errf(err, "this CPU lacks %s", level_name(simd));
        return NULL;
    }
    pthread_once(&amx_once, amx_table_init);
    static const glmv_cpu_kernels *tables[] = {NULL, &glmv_cpu_kernels_avx2, &glmv_cpu_kernels_avx512,
                                               &glmv_cpu_kernels_avx512bf16, &amx_table};
    static const char *names[] = {"cpu-ref", "cpu-avx2", "cpu-avx512", "cpu-avx512bf16", "cpu-amx"};
    return glmv_cpu_backend_new_table(simd == GLMV_SIMD_NONE ? 1 : n_threads, tables[simd],
                                      names[simd], bf16, err);
}

glmv_backend *glmv_cpu_backend_new_table(int n_threads, const glmv_cpu_kernels *k,
                                         const char *name, int bf16, char *err) {
    if (n_threads <= 0) n_threads = glmv_cpu_count();
    if (n_threads > 1024) {
        glmv_errf(err, "%d threads: at most 1024", n_threads);
        return NULL;
    }
    glmv_backend *be = calloc(1, sizeof *be);
    cpu_state *cs = calloc(1, sizeof *cs);
    if (!be || !cs) {
        free(be);
        free(cs);
        glmv_errf(err, "out of memory");
        return NULL;
    }
    be->impl = cs;
    be->destroy = cpu_destroy;
    be->name = name;
    be->bf16 = bf16 && k && k->kern_bf16; /* bf16 products only where the table has them */
    cs->n_threads = k ? n_threads : 1;
    cs->k = k;
    cs->pool = glmv_pool_new(cs->n_threads);
    cs->tscratch = glmv_aligned_alloc((size_t)cs->n_threads * GLMV_CPU_TSCRATCH);
    if (!cs->pool || !cs->tscratch) {
        cpu_destroy(be);
        glmv_errf(err, "cannot start %d CPU threads", cs->n_threads);
        return NULL;
    }
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->reserve = cpu_reserve;
    be->commit = cpu_commit;
    be->decommit = cpu_decommit;
    be->release = cpu_release;
    be->upload = cpu_upload;
    be->write = cpu_write;
    be->read = cpu_read;
    be->copy = cpu_copy;
    be->sync = cpu_sync;
    be->caps = (glmv_backend_caps){.device = 0, .prefill_chunk = 256, .keep_scratch = 0};
    /* float32 caches unless GLMV_KV_BF16=1 asks for bf16 ones (half the memory; attention widens
     * the rows it reads, so it is slower here) */
    if (glmv_env_kv_bf16(0, &be->caps.kv_bf16, err)) {
        cpu_destroy(be);
        return NULL;
    }
    be->matmul = glmv_cpu_matmul;
    be->matmul_rows = glmv_cpu_matmul_rows;
    be->embed = cpu_embed;
    be->rmsnorm = cpu_rmsnorm;
    be->layernorm = cpu_layernorm;
    be->rope_interleaved = cpu_rope_interleaved;
    be->rope_neox = cpu_rope_neox;
    be->attn_causal = glmv_cpu_attn_causal;
    be->attn_decode_batch = glmv_cpu_attn_decode_batch;
    be->attn_segments = glmv_cpu_attn_segments;
    be->swiglu = cpu_swiglu;
    be->gelu_erf = cpu_gelu_erf;
    be->add = cpu_add;
    be->permute_021 = cpu_permute_021;
    be->norm_add_norm = cpu_norm_add_norm;
    be->copy_rows = cpu_copy_rows;
    be->kv_store = cpu_kv_store;
    be->top_k = cpu_top_k;
    return be;
}
