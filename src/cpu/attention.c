/* attention.c -- causal GQA attention over the KV cache and segment-confined
 * (vision) attention on the CPU, threaded, flash-style.
 *
 * Both walk keys in blocks of ATT_KBLK with an online softmax (running max m,
 * running sum l, unnormalised accumulator), so memory is O(block), never
 * O(keys²). When head_dim is a multiple of the GEMM tile width (128 in the 9B
 * model), scores and P·V run on the matmul register tile (att_tiled); other
 * sizes use dot/axpy kernels. Causal: a task is (kv head, block of query rows,
 * chunk of keys); all query heads sharing the kv head are processed together,
 * so each K/V block is read once per group. Keys are split into chunks of
 * ATT_KCHUNK across threads (flash-decoding) and the partial softmaxes merged,
 * the same chunks for a row whatever else is in the call (batch invariance).
 * Segments: a task is (segment, head, block of query rows).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cpu/cpu.h"
#include "cpu/ref.h"

#define ATT_KBLK 64    /* keys per block */
#define ATT_KCHUNK 256 /* keys per chunk of a causal call (a multiple of ATT_KBLK) */

/* online softmax state of one (row, head) */
typedef struct {
    float m, l;
} att_ml;

/* Fold keys [t0, t1) of one block into (ml, acc) for query q. */
static void att_block(const glmv_cpu_kernels *kn, const float *q, const float *k, int64_t ldk,
                      const float *v, int64_t ldv, int64_t t0, int64_t t1, int hd, float scale,
                      att_ml *ml, float *acc, float *s) {
    int64_t nb = t1 - t0;
    if (nb <= 0) return;
    for (int64_t t = 0; t < nb; t++) s[t] = kn->dot(q, k + (t0 + t) * ldk, hd) * scale;
    float bm = kn->max(s, nb);
    float mnew = bm > ml->m ? bm : ml->m;
    if (mnew > ml->m && ml->l > 0) {
        float corr = expf(ml->m - mnew);
        ml->l *= corr;
        kn->scale(acc, corr, hd);
    }
    ml->m = mnew;
    ml->l += kn->exp_sum(s, nb, mnew);
    for (int64_t t = 0; t < nb; t++) kn->axpy(acc, s[t], v + (t0 + t) * ldv, hd);
}

/* Scratch floats att_tiled needs for nv query vectors of hd (besides O and ml). */
static size_t att_tiled_floats(const glmv_cpu_kernels *kn, int64_t nv, int hd) {
    int64_t mr = kn->mr, tiles = (nv + mr - 1) / mr;
    return (size_t)(tiles * mr * hd + ATT_KBLK * hd + nv * ATT_KBLK + ATT_KBLK * mr + 4 * nv + 16);
}
/* the tiled form applies when head_dim is a multiple of the GEMM tile width */
static int att_tiled_ok(const glmv_cpu_kernels *kn, int hd) {
    return hd % kn->nr == 0 && ATT_KBLK % kn->nr == 0;
}

/* nv query vectors qv[v] (each hd floats) against keys [k0, k1) of one head, keys
 * >= lim[v] hidden from vector v; folds them into O[v][hd] (unnormalised) and ml[v].
 * Scores S = (Q·scale) Kᵀ and the update O += P V run on the GEMM register tile:
 * Q is packed once into k-major tiles, each key block's Kᵀ into panels, V is read
 * in place (its rows are the tile's B rows). Needs att_tiled_ok. */
static void att_tiled(const glmv_cpu_kernels *kn, int64_t nv, const float *const *qv,
                      const int64_t *lim, const float *k, int64_t ldk, const float *v, int64_t ldv,
                      int64_t k0, int64_t k1, int hd, float scale, float *O, att_ml *ml,
                      float *scr) {
    const int mr = kn->mr, nr = kn->nr;
    int64_t tiles = (nv + mr - 1) / mr;
    float *Qt = scr;                                   /* tiles x [hd][mr] */
    float *Kt = Qt + tiles * mr * hd;                  /* ATT_KBLK/nr panels x [hd][nr] */
    float *S = Kt + (int64_t)ATT_KBLK * hd;            /* nv x ATT_KBLK */
    float *Pt = S + nv * ATT_KBLK;                     /* [ATT_KBLK][mr] */
    for (int64_t t = 0; t < tiles; t++)
        for (int r = 0; r < mr; r++) {
            int64_t vi = t * mr + r;
            float *d = Qt + t * mr * hd + r;
            for (int e = 0; e < hd; e++) d[e * mr] = vi < nv ? qv[vi][e] * scale : 0.0f;
        }
    int64_t kend = k0;
    for (int64_t i = 0; i < nv; i++) kend = GLMV_MAX(kend, GLMV_MIN(k1, lim[i]));
    for (int64_t b0 = k0; b0 < kend; b0 += ATT_KBLK) {
        int64_t nb = GLMV_MIN((int64_t)ATT_KBLK, kend - b0);
        int npan = (int)((nb + nr - 1) / nr);
        kn->pack_kt(Kt, k + b0 * ldk, ldk, nb, hd);
        for (int64_t t = 0; t < tiles; t++) {
            int rows = (int)GLMV_MIN((int64_t)mr, nv - t * mr);
            for (int p = 0; p < npan; p++)
                kn->kern(hd, Qt + t * mr * hd, Kt + (int64_t)p * hd * nr, nr,
                         S + t * mr * ATT_KBLK + p * nr, ATT_KBLK, rows, 0);
        }
        for (int64_t i = 0; i < nv; i++) {
            float *si = S + i * ATT_KBLK;
            int64_t cnt = GLMV_MAX((int64_t)0, GLMV_MIN(nb, GLMV_MIN(k1, lim[i]) - b0));
            if (cnt > 0) {
                float bm = kn->max(si, cnt);
                float mnew = bm > ml[i].m ? bm : ml[i].m;
                if (mnew > ml[i].m && ml[i].l > 0) {
                    float corr = expf(ml[i].m - mnew);
                    ml[i].l *= corr;
                    kn->scale(O + i * hd, corr, hd);
                }
                ml[i].m = mnew;
                ml[i].l += kn->exp_sum(si, cnt, mnew);
            }
            for (int64_t x = cnt; x < nb; x++) si[x] = 0.0f; /* hidden keys weigh nothing */
        }
        for (int64_t t = 0; t < tiles; t++) {
            int rows = (int)GLMV_MIN((int64_t)mr, nv - t * mr);
            for (int64_t x = 0; x < nb; x++)
                for (int r = 0; r < rows; r++) Pt[x * mr + r] = S[(t * mr + r) * ATT_KBLK + x];
            for (int c0 = 0; c0 < hd; c0 += nr)
                kn->kern(nb, Pt, v + b0 * ldv + c0, ldv, O + t * mr * hd + c0, hd, rows, 1);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* causal GQA                                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    cpu_state *cs;
    float *out;
    const float *q, *kc, *vc;
    int64_t ldq, n, pos0;
    int n_heads, n_kv, hd, group;
    float scale;
    int64_t rb, n_rb;           /* query rows per task, row blocks */
    int64_t chunk, n_chunks;    /* keys per chunk, chunks */
    int seq;                    /* a task takes all chunks of its rows, merging as it goes */
    float *part;                /* else, n_chunks > 1: [n][n_heads][n_chunks] x (hd + 2) */
} causal_job;

/* One key chunk's state (ml, acc) of a (row, head) merged into the running (st, o), chunks taken in
 * order: the larger maximum rescales what is there. A task that takes every chunk of its rows and
 * the merge of chunks done apart (causal_merge_task) both merge this way, so a row's result does
 * not depend on which of them ran. */
static void merge_chunk(const glmv_cpu_kernels *kn, float *o, att_ml *st, const float *acc, att_ml ml, int hd) {
    if (!(ml.l > 0)) return; /* no visible key in the chunk */
    if (ml.m > st->m) {
        float corr = expf(st->m - ml.m); /* 0 for the first */
        st->l *= corr;
        kn->scale(o, corr, hd);
        st->m = ml.m;
    }
    float w = expf(ml.m - st->m);
    st->l += w * ml.l;
    kn->axpy(o, w, acc, hd);
}

static void causal_task(void *ctx, int64_t t, int thread) {
    causal_job *j = ctx;
    const glmv_cpu_kernels *kn = j->cs->k;
    int hd = j->hd, G = j->group;
    int64_t cf = j->seq ? 0 : t % j->n_chunks, rest = j->seq ? t : t / j->n_chunks;
    int64_t ce = j->seq ? j->n_chunks : cf + 1; /* chunks [cf, ce) */
    /* row blocks in reverse: the last rows see the most keys, start them first */
    int64_t rbi = j->n_rb - 1 - rest % j->n_rb;
    int g = (int)(rest / j->n_rb);
    int64_t r0 = rbi * j->rb, r1 = GLMV_MIN(j->n, r0 + j->rb);
    int64_t nr = r1 - r0, kvd = (int64_t)j->n_kv * hd;
    int merged = j->seq && j->n_chunks > 1;

    float *mo = cpu_tscratch(j->cs, thread);              /* merged: nr x G x hd */
    att_ml *mml = (att_ml *)(mo + (merged ? nr * G * hd : 0)); /* merged: nr x G */
    float *acc = (float *)(mml + (merged ? nr * G : 0));  /* nr x G x hd */
    att_ml *ml = (att_ml *)(acc + nr * G * hd);           /* nr x G */
    float *s = (float *)(ml + nr * G);                    /* ATT_KBLK */
    if (merged) {
        memset(mo, 0, sizeof(float) * (size_t)(nr * G * hd));
        for (int64_t i = 0; i < nr * G; i++) mml[i] = (att_ml){-INFINITY, 0.0f};
    }
    for (int64_t c = cf; c < ce; c++) {
        int64_t c0 = c * j->chunk, c1 = GLMV_MIN(j->pos0 + j->n, c0 + j->chunk);
        if (merged && c0 >= j->pos0 + r1) break; /* past every key of these rows (causal) */
        memset(acc, 0, sizeof(float) * (size_t)(nr * G * hd));
        for (int64_t i = 0; i < nr * G; i++) ml[i] = (att_ml){-INFINITY, 0.0f};

        const float *kb = j->kc + (int64_t)g * hd, *vb = j->vc + (int64_t)g * hd;
        if (att_tiled_ok(kn, hd)) {
            int64_t nv = nr * G;
            const float **qv = (const float **)(s + ATT_KBLK);
            int64_t *lim = (int64_t *)(qv + nv);
            for (int64_t r = 0; r < nr; r++)
                for (int h = 0; h < G; h++) {
                    qv[r * G + h] = j->q + (r0 + r) * j->ldq + (int64_t)(g * G + h) * hd;
                    lim[r * G + h] = j->pos0 + r0 + r + 1; /* causal: keys <= position */
                }
            att_tiled(kn, nv, qv, lim, kb, kvd, vb, kvd, c0, c1, hd, j->scale, acc, ml,
                      (float *)(lim + nv));
        } else
        for (int64_t b0 = c0; b0 < c1; b0 += ATT_KBLK) {
            int64_t b1 = GLMV_MIN(c1, b0 + ATT_KBLK);
            for (int64_t r = 0; r < nr; r++) {
                int64_t lim = GLMV_MIN(b1, j->pos0 + r0 + r + 1); /* causal: keys <= position */
                for (int h = 0; h < G; h++) {
                    int qh = g * G + h;
                    att_block(kn, j->q + (r0 + r) * j->ldq + (int64_t)qh * hd, kb, kvd, vb, kvd, b0,
                              lim, hd, j->scale, &ml[r * G + h], acc + (r * G + h) * hd, s);
                }
            }
        }
        for (int64_t r = 0; r < nr; r++)
            for (int h = 0; h < G; h++) {
                int qh = g * G + h;
                float *a = acc + (r * G + h) * hd;
                att_ml st = ml[r * G + h];
                if (j->n_chunks == 1) {
                    float *o = j->out + (r0 + r) * (int64_t)j->n_heads * hd + (int64_t)qh * hd;
                    float inv = st.l > 0 ? 1.0f / st.l : 0.0f;
                    for (int d = 0; d < hd; d++) o[d] = a[d] * inv;
                } else if (merged) {
                    merge_chunk(kn, mo + (r * G + h) * hd, &mml[r * G + h], a, st, hd);
                } else {
                    float *p = j->part + (((r0 + r) * j->n_heads + qh) * j->n_chunks + c) * (hd + 2);
                    p[0] = st.m;
                    p[1] = st.l;
                    memcpy(p + 2, a, sizeof(float) * (size_t)hd);
                }
            }
    }
    if (merged) /* normalised, as causal_merge_task ends */
        for (int64_t r = 0; r < nr; r++)
            for (int h = 0; h < G; h++) {
                float *o = j->out + (r0 + r) * (int64_t)j->n_heads * hd + (int64_t)(g * G + h) * hd;
                memcpy(o, mo + (r * G + h) * hd, sizeof(float) * (size_t)hd);
                float L = mml[r * G + h].l;
                if (L > 0) kn->scale(o, 1.0f / L, hd);
            }
}

/* merge the key chunks of one (row, head) */
static void causal_merge_task(void *ctx, int64_t t, int thread) {
    (void)thread;
    causal_job *j = ctx;
    int hd = j->hd;
    const float *p = j->part + t * j->n_chunks * (hd + 2);
    float *o = j->out + t * hd; /* t = row * n_heads + head, out rows are n_heads*hd */
    att_ml st = {-INFINITY, 0.0f};
    for (int d = 0; d < hd; d++) o[d] = 0;
    for (int64_t c = 0; c < j->n_chunks; c++) {
        const float *pc = p + c * (hd + 2);
        merge_chunk(j->cs->k, o, &st, pc + 2, (att_ml){pc[0], pc[1]}, hd);
    }
    if (st.l > 0) j->cs->k->scale(o, 1.0f / st.l, hd);
}

static void attn_causal_f32(cpu_state *cs, float *out, const float *q, int64_t ldq, const float *kc,
                            const float *vc, int64_t n, int64_t pos0, int n_heads, int n_kv_heads, int head_dim,
                            float scale) {
    if (!cs->k) {
        glmv_ref_attn_causal(out, q, ldq, kc, vc, n, pos0, n_heads, n_kv_heads, head_dim, scale);
        return;
    }
    if (n <= 0) return;
    causal_job j = {.cs = cs, .out = out, .q = q, .kc = kc, .vc = vc, .ldq = ldq, .n = n,
                    .pos0 = pos0, .n_heads = n_heads, .n_kv = n_kv_heads, .hd = head_dim,
                    .group = n_heads / n_kv_heads, .scale = scale};
    /* rows per task bounded by the per-thread scratch: the merged chunks' o + ml, acc + ml,
     * scores (+ tiles) */
    j.rb = 8;
    for (;; j.rb--) {
        int64_t nv = j.rb * j.group;
        size_t need = sizeof(float) * (2 * (size_t)nv * (size_t)(head_dim + 2) + ATT_KBLK) +
                      (att_tiled_ok(cs->k, head_dim)
                           ? sizeof(float) * att_tiled_floats(cs->k, nv, head_dim) + 24 * (size_t)nv
                           : 0);
        if (need <= GLMV_CPU_TSCRATCH) break;
        GLMV_ASSERT(j.rb > 1);
    }
    j.n_rb = (n + j.rb - 1) / j.rb;
    int64_t keys = pos0 + n, tasks = (int64_t)n_kv_heads * j.n_rb;
    /* keys in chunks of a fixed size (whatever the rows and the threads), merged in order: a
     * row's result is then the same in any call it is part of, a decode step, a prompt's chunk
     * of any length (batch invariance); the chunks also give a decode row's keys to several
     * threads (flash-decoding) */
    j.chunk = ATT_KCHUNK;
    j.n_chunks = (keys + j.chunk - 1) / j.chunk;
    /* with tasks enough for the threads, or partials that would take much memory, a task takes
     * all chunks of its rows; else the chunks are tasks of their own, merged after (the same
     * arithmetic either way) */
    j.seq = tasks >= 2 * (int64_t)cs->n_threads ||
            (double)n * n_heads * j.n_chunks * (head_dim + 2) * sizeof(float) > 32.0 * (1 << 20);
    if (j.n_chunks > 1 && !j.seq)
        j.part = cpu_shared(cs, sizeof(float) * (size_t)(n * n_heads * j.n_chunks) *
                                    (size_t)(head_dim + 2));
    glmv_pool_run(cs->pool, causal_task, &j, j.seq ? tasks : tasks * j.n_chunks);
    if (j.n_chunks > 1 && !j.seq) glmv_pool_run(cs->pool, causal_merge_task, &j, n * n_heads);
}

/* a bf16 cache's rows [0, rows) of K and of V widened to float32 (exactly), in blocks of rows
 * on the pool */
typedef struct {
    float *dst;
    const uint16_t *k, *v;
    int64_t rows, kvd;
} widen_job;

#define WIDEN_ROWS 256
static void widen_task(void *ctx, int64_t t, int thread) {
    (void)thread;
    widen_job *j = ctx;
    int64_t r0 = t * WIDEN_ROWS, r1 = GLMV_MIN(j->rows, r0 + WIDEN_ROWS);
    for (int half = 0; half < 2; half++) {
        const uint16_t *src = half ? j->v : j->k;
        float *dst = j->dst + (size_t)half * (size_t)(j->rows * j->kvd);
        for (int64_t i = r0 * j->kvd; i < r1 * j->kvd; i++) dst[i] = glmv_bf16_to_f32(src[i]);
    }
}

void glmv_cpu_attn_causal(glmv_backend *be, float *out, const float *q, int64_t ldq,
                          const void *kc, const void *vc, int64_t n, int64_t pos0,
                          int n_heads, int n_kv_heads, int head_dim, float scale) {
    cpu_state *cs = cpu_of(be);
    if (n <= 0) return;
    if (!be->caps.kv_bf16) {
        attn_causal_f32(cs, out, q, ldq, kc, vc, n, pos0, n_heads, n_kv_heads, head_dim, scale);
        return;
    }
    /* the float32 kernels on the widened rows: the same results as a float32 cache holding
     * the bf16 values (the cache's memory halved, not its attention's reads) */
    int64_t kvd = (int64_t)n_kv_heads * head_dim, rows = pos0 + n;
    size_t need = glmv_mul_size(glmv_mul_size(2 * sizeof(float), (size_t)rows), (size_t)kvd);
    if (need > cs->kv_wide_size) {
        free(cs->kv_wide);
        cs->kv_wide = glmv_aligned_alloc(need);
        GLMV_ASSERT(cs->kv_wide); /* as cpu_shared: sized by a cache the caller already holds */
        cs->kv_wide_size = need;
    }
    widen_job w = {cs->kv_wide, kc, vc, rows, kvd};
    if (cs->k) glmv_pool_run(cs->pool, widen_task, &w, (rows + WIDEN_ROWS - 1) / WIDEN_ROWS);
    else for (int64_t t = 0; t * WIDEN_ROWS < rows; t++) widen_task(&w, t, 0);
    attn_causal_f32(cs, out, q, ldq, cs->kv_wide, cs->kv_wide + rows * kvd, n, pos0, n_heads, n_kv_heads,
                    head_dim, scale);
}

/* ------------------------------------------------------------------------ */
/* segments (vision)                                                        */
/* ------------------------------------------------------------------------ */

typedef struct {
    cpu_state *cs;
    float *out;
    const float *q, *k, *v;
    int64_t ldq, ldk, ldv;
    const int64_t *cu;
    int n_heads, hd;
    float scale;
    int64_t rb;
    int64_t *task_seg;          /* first task of each segment, n_seg + 1 entries */
    int n_seg;
} seg_job;

static void seg_task(void *ctx, int64_t t, int thread) {
    seg_job *j = ctx;
    const glmv_cpu_kernels *kn = j->cs->k;
    int hd = j->hd;
    int s = 0;
    while (j->task_seg[s + 1] <= t) s++;
    int64_t local = t - j->task_seg[s];
    int h = (int)(local % j->n_heads);
    int64_t r0 = j->cu[s] + (local / j->n_heads) * j->rb, r1 = GLMV_MIN(j->cu[s + 1], r0 + j->rb);
    int64_t nr = r1 - r0;

    float *acc = cpu_tscratch(j->cs, thread);             /* nr x hd */
    att_ml *ml = (att_ml *)(acc + nr * hd);
    float *sc = (float *)(ml + nr);
    memset(acc, 0, sizeof(float) * (size_t)(nr * hd));
    for (int64_t i = 0; i < nr; i++) ml[i] = (att_ml){-INFINITY, 0.0f};
    const float *kb = j->k + (int64_t)h * hd, *vb = j->v + (int64_t)h * hd;
    if (att_tiled_ok(kn, hd)) {
        const float **qv = (const float **)(sc + ATT_KBLK);
        int64_t *lim = (int64_t *)(qv + nr);
        for (int64_t r = 0; r < nr; r++) {
            qv[r] = j->q + (r0 + r) * j->ldq + (int64_t)h * hd;
            lim[r] = j->cu[s + 1];
        }
        att_tiled(kn, nr, qv, lim, kb, j->ldk, vb, j->ldv, j->cu[s], j->cu[s + 1], hd, j->scale,
                  acc, ml, (float *)(lim + nr));
    } else
    for (int64_t b0 = j->cu[s]; b0 < j->cu[s + 1]; b0 += ATT_KBLK) {
        int64_t b1 = GLMV_MIN(j->cu[s + 1], b0 + ATT_KBLK);
        for (int64_t r = 0; r < nr; r++)
            att_block(kn, j->q + (r0 + r) * j->ldq + (int64_t)h * hd, kb, j->ldk, vb, j->ldv, b0,
                      b1, hd, j->scale, &ml[r], acc + r * hd, sc);
    }
    for (int64_t r = 0; r < nr; r++) {
        float *o = j->out + (r0 + r) * (int64_t)j->n_heads * hd + (int64_t)h * hd;
        float inv = ml[r].l > 0 ? 1.0f / ml[r].l : 0.0f;
        for (int d = 0; d < hd; d++) o[d] = acc[r * hd + d] * inv;
    }
}

void glmv_cpu_attn_segments(glmv_backend *be, float *out, const float *q, int64_t ldq,
                            const float *k, int64_t ldk, const float *v, int64_t ldv,
                            const int64_t *cu, int n_seg, int n_heads, int head_dim,
                            float scale) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) {
        glmv_ref_attn_segments(out, q, ldq, k, ldk, v, ldv, cu, n_seg, n_heads, head_dim, scale);
        return;
    }
    if (n_seg <= 0) return;
    seg_job j = {.cs = cs, .out = out, .q = q, .k = k, .v = v, .ldq = ldq, .ldk = ldk,
                 .ldv = ldv, .cu = cu, .n_heads = n_heads, .hd = head_dim, .scale = scale,
                 .n_seg = n_seg};
    /* many rows per task: the transposed K blocks are then reused across more of them */
    j.rb = att_tiled_ok(cs->k, head_dim) ? 128 : 32;
    for (;; j.rb--) {
        size_t need = sizeof(float) * ((size_t)j.rb * (size_t)(head_dim + 2) + ATT_KBLK) +
                      (att_tiled_ok(cs->k, head_dim)
                           ? sizeof(float) * att_tiled_floats(cs->k, j.rb, head_dim) + 24 * (size_t)j.rb
                           : 0);
        if (need <= GLMV_CPU_TSCRATCH) break;
        GLMV_ASSERT(j.rb > 1);
    }
    j.task_seg = cpu_shared(cs, sizeof(int64_t) * (size_t)(n_seg + 1));
    j.task_seg[0] = 0;
    for (int s = 0; s < n_seg; s++) {
        int64_t len = cu[s + 1] - cu[s];
        j.task_seg[s + 1] = j.task_seg[s] + (len > 0 ? (len + j.rb - 1) / j.rb * n_heads : 0);
    }
    glmv_pool_run(cs->pool, seg_task, &j, j.task_seg[n_seg]);
}

/* the CPU keeps its caches in host memory: the tables are plain host arrays */
void glmv_cpu_attn_decode_batch(glmv_backend *be, float *out, const float *q, int64_t ldq,
                                const float *k_new, const float *v_new, int64_t ldkv,
                                void *const *kc, void *const *vc, const int64_t *n_keys, int n,
                                int64_t max_keys, int n_heads, int n_kv_heads, int head_dim,
                                float scale) {
    (void)max_keys;
    int64_t kvd = (int64_t)n_kv_heads * head_dim, qd = (int64_t)n_heads * head_dim;
    size_t row = (size_t)kvd * (be->caps.kv_bf16 ? 2 : 4);
    for (int i = 0; i < n; i++) {
        int64_t pos = n_keys[i] - 1;
        be->kv_store(be, (char *)kc[i] + (size_t)pos * row, k_new + i * ldkv, ldkv, 1, kvd);
        be->kv_store(be, (char *)vc[i] + (size_t)pos * row, v_new + i * ldkv, ldkv, 1, kvd);
        glmv_cpu_attn_causal(be, out + i * qd, q + i * ldq, ldq, kc[i], vc[i], 1, pos, n_heads,
                             n_kv_heads, head_dim, scale);
    }
}
