/* attention.c -- causal GQA attention over the KV cache and segment-confined
 * (vision) attention on the CPU, threaded, flash-style.
 *
 * Both walk keys in blocks of ATT_KBLK with an online softmax (running max m,
 * running sum l, unnormalised accumulator), so memory is O(block), never
 * O(keys²). Causal: a task is (kv head, block of query rows, chunk of keys);
 * all query heads that share the kv head are processed together, so each
 * K/V block is read once per group rather than once per head. Decode has one
 * query row, so keys are split into chunks across threads (flash-decoding)
 * and the partial softmaxes are merged at the end. Segments: a task is
 * (segment, head, block of query rows).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cpu/cpu.h"
#include "cpu/ref.h"

#define ATT_KBLK 64 /* keys per block */

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
    float *part;                /* n_chunks > 1: [n][n_heads][n_chunks] x (hd + 2) */
} causal_job;

static void causal_task(void *ctx, int64_t t, int thread) {
    causal_job *j = ctx;
    const glmv_cpu_kernels *kn = j->cs->k;
    int hd = j->hd, G = j->group;
    int64_t c = t % j->n_chunks, rest = t / j->n_chunks;
    /* row blocks in reverse: the last rows see the most keys, start them first */
    int64_t rbi = j->n_rb - 1 - rest % j->n_rb;
    int g = (int)(rest / j->n_rb);
    int64_t r0 = rbi * j->rb, r1 = GLMV_MIN(j->n, r0 + j->rb);
    int64_t c0 = c * j->chunk, c1 = GLMV_MIN(j->pos0 + j->n, c0 + j->chunk);
    int64_t nr = r1 - r0, kvd = (int64_t)j->n_kv * hd;

    float *acc = cpu_tscratch(j->cs, thread);             /* nr x G x hd */
    att_ml *ml = (att_ml *)(acc + nr * G * hd);           /* nr x G */
    float *s = (float *)(ml + nr * G);                    /* ATT_KBLK */
    memset(acc, 0, sizeof(float) * (size_t)(nr * G * hd));
    for (int64_t i = 0; i < nr * G; i++) ml[i] = (att_ml){-INFINITY, 0.0f};

    const float *kb = j->kc + (int64_t)g * hd, *vb = j->vc + (int64_t)g * hd;
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
            } else {
                float *p = j->part + (((r0 + r) * j->n_heads + qh) * j->n_chunks + c) * (hd + 2);
                p[0] = st.m;
                p[1] = st.l;
                memcpy(p + 2, a, sizeof(float) * (size_t)hd);
            }
        }
}

/* merge the key chunks of one (row, head) */
static void causal_merge_task(void *ctx, int64_t t, int thread) {
    (void)thread;
    causal_job *j = ctx;
    int hd = j->hd;
    const float *p = j->part + t * j->n_chunks * (hd + 2);
    float *o = j->out + t * hd; /* t = row * n_heads + head, out rows are n_heads*hd */
    float M = -INFINITY;
    for (int64_t c = 0; c < j->n_chunks; c++)
        if (p[c * (hd + 2) + 1] > 0 && p[c * (hd + 2)] > M) M = p[c * (hd + 2)];
    float L = 0;
    for (int d = 0; d < hd; d++) o[d] = 0;
    for (int64_t c = 0; c < j->n_chunks; c++) {
        const float *pc = p + c * (hd + 2);
        if (!(pc[1] > 0)) continue;
        float wgt = expf(pc[0] - M);
        L += wgt * pc[1];
        j->cs->k->axpy(o, wgt, pc + 2, hd);
    }
    if (L > 0) j->cs->k->scale(o, 1.0f / L, hd);
}

void glmv_cpu_attn_causal(glmv_backend *be, float *out, const float *q, int64_t ldq,
                          const float *kc, const float *vc, int64_t n, int64_t pos0,
                          int n_heads, int n_kv_heads, int head_dim, float scale) {
    cpu_state *cs = cpu_of(be);
    if (!cs->k) {
        glmv_ref_attn_causal(out, q, ldq, kc, vc, n, pos0, n_heads, n_kv_heads, head_dim, scale);
        return;
    }
    if (n <= 0) return;
    causal_job j = {.cs = cs, .out = out, .q = q, .kc = kc, .vc = vc, .ldq = ldq, .n = n,
                    .pos0 = pos0, .n_heads = n_heads, .n_kv = n_kv_heads, .hd = head_dim,
                    .group = n_heads / n_kv_heads, .scale = scale};
    /* rows per task bounded by the per-thread scratch: acc + ml + scores */
    size_t per_row = sizeof(float) * (size_t)j.group * (size_t)(head_dim + 2);
    int64_t fit = (int64_t)((GLMV_CPU_TSCRATCH - sizeof(float) * ATT_KBLK) / per_row);
    GLMV_ASSERT(fit >= 1);
    j.rb = GLMV_MIN((int64_t)8, fit);
    j.n_rb = (n + j.rb - 1) / j.rb;
    int64_t keys = pos0 + n, tasks = (int64_t)n_kv_heads * j.n_rb;
    j.n_chunks = 1;
    int64_t want = 4 * (int64_t)cs->n_threads;
    if (tasks < want && keys > 2 * ATT_KBLK) {
        j.n_chunks = GLMV_MIN((want + tasks - 1) / tasks, (keys + ATT_KBLK - 1) / ATT_KBLK);
    }
    j.chunk = (keys + j.n_chunks - 1) / j.n_chunks;
    j.chunk = (j.chunk + ATT_KBLK - 1) / ATT_KBLK * ATT_KBLK;
    j.n_chunks = (keys + j.chunk - 1) / j.chunk;
    if (j.n_chunks > 1)
        j.part = cpu_shared(cs, sizeof(float) * (size_t)(n * n_heads * j.n_chunks) *
                                    (size_t)(head_dim + 2));
    glmv_pool_run(cs->pool, causal_task, &j, tasks * j.n_chunks);
    if (j.n_chunks > 1) glmv_pool_run(cs->pool, causal_merge_task, &j, n * n_heads);
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
    size_t per_row = sizeof(float) * (size_t)(head_dim + 2);
    int64_t fit = (int64_t)((GLMV_CPU_TSCRATCH - sizeof(float) * ATT_KBLK) / per_row);
    GLMV_ASSERT(fit >= 1);
    j.rb = GLMV_MIN((int64_t)32, fit);
    j.task_seg = cpu_shared(cs, sizeof(int64_t) * (size_t)(n_seg + 1));
    j.task_seg[0] = 0;
    for (int s = 0; s < n_seg; s++) {
        int64_t len = cu[s + 1] - cu[s];
        j.task_seg[s + 1] = j.task_seg[s] + (len > 0 ? (len + j.rb - 1) / j.rb * n_heads : 0);
    }
    glmv_pool_run(cs->pool, seg_task, &j, j.task_seg[n_seg]);
}
