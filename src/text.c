/* text.c -- the GLM-4 decoder of GLM-4.1V (GLM4V.md §3) over the op table:
 * per layer input RMSNorm, q/k/v projections with bias, interleaved partial
 * M-RoPE, causal GQA attention over the session's KV cache (post-RoPE keys),
 * o_proj, RMSNorm of the attention output, residual; pre-MLP RMSNorm, fused
 * gate_up SwiGLU MLP, RMSNorm of the MLP output, residual (each residual with the
 * norms around it in one op, norm_add_norm). Then the final norm and lm_head for the
 * last token only. The last layer computes every row's keys and values (the cache needs
 * them) but the rest only for the rows whose logits are read: the last row of a prompt's
 * final chunk, none of an earlier chunk (as llama.cpp does; a hook, which sees every row's
 * activations, turns this off). Where the model joined q, k and v (model.c) they
 * are one product. Prompts run in chunks of s->chunk rows through scratch buffers
 * the session allocated once: nothing is allocated here. One-token steps on a
 * backend with graphs take the batched path (batch_step), recorded and replayed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "model.h"

/* 1: rows of which [0, nd) are decode rows go through one product (on a device, or without decode
 * rows or matmul_rows); else the decode rows through matmul_rows (mm_mixed) */
static int one_product(const glmv_backend *be, int64_t nd) { return be->caps.device || nd == 0 || !be->matmul_rows; }

/* y[r0.., :] = x[r0.., :] · wᵀ for rows [0, R) of which [0, nd) are decode rows: on the CPU
 * those go through matmul_rows (each as it would be alone) and the prompt rows through one
 * matmul; on a device all R rows are one product (the weights read once). */
static void mm_mixed(glmv_backend *be, float *y, const float *x, const glmv_tensor *w, const glmv_tensor *bias,
                     int64_t nd, int64_t R) {
    if (one_product(be, nd)) {
        be->matmul(be, y, x, w, bias, R);
        return;
    }
    int64_t N = glmv_tensor_rows(w), K = glmv_tensor_cols(w);
    be->matmul_rows(be, y, x, w, bias, nd);
    if (R > nd) be->matmul(be, y + nd * N, x + nd * K, w, bias, R - nd);
}

/* y = swiglu(gu) · wᵀ over rows [0, R) of gu ([gate | up], I columns each; [0, nd) decode rows, as
 * mm_mixed takes them): the backend's fused op where the rows are one product, else the SwiGLU
 * into h and the product */
static void mlp_down(glmv_backend *be, float *y, float *h, const float *gu, int64_t I, const glmv_tensor *w,
                     int64_t nd, int64_t R) {
    if (be->matmul_swiglu && one_product(be, nd)) {
        be->matmul_swiglu(be, y, gu, 2 * I, gu + I, 2 * I, h, w, NULL, R);
        return;
    }
    be->swiglu(be, h, gu, 2 * I, gu + I, 2 * I, R, I);
    mm_mixed(be, y, h, w, NULL, nd, R);
}

/* ref: Glm4vTextModel.forward for rows [pos0, pos0 + n) (one chunk) */
static void forward_chunk(glmv_session *s, int64_t n, int want_logits, float *logits, int keep_all) {
    glmv_model *m = s->m;
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    int64_t H = c->hidden_size, I = m->t_I; /* this rank's heads and MLP columns (tp.c) */
    int nh = m->t_nh, nkv = m->t_nkv, hd = c->head_dim;
    int64_t qd = (int64_t)nh * hd, kvd = (int64_t)nkv * hd;
    int rot = (int)(hd * c->partial_rotary_factor + 0.5f);
    rot -= rot % 2;
    float eps = c->rms_norm_eps, scale = (float)(1.0 / sqrt((double)hd));
    int64_t pos0 = s->pos;
    /* the first row the last layer carries past its keys and values (n: none) */
    const int64_t keep0 = keep_all ? 0 : want_logits ? n - 1 : n;

    for (int l = 0; l < c->num_hidden_layers; l++) {
        const glmv_text_layer *L = &m->layers[l];
        void *kc = glmv_kv_row(m, s->kc[l], pos0), *vc = glmv_kv_row(m, s->vc[l], pos0);
        const int64_t r = l + 1 == c->num_hidden_layers ? keep0 : 0, nr = n - r; /* rows [r, n) go on */
        float *x = s->x + r * H, *xn = s->xn + r * H;
        /* ref: Glm4vTextAttention */
        if (l == 0) /* later layers' input norm ends the layer before */
            be->rmsnorm(be, s->xn, s->x, L->input_layernorm, n, H, eps);
        int64_t ldq = qd;
        if (L->qkv_w) { /* one product [q | k | v], rotary on q's and k's heads together, k and v to the cache */
            ldq = qd + 2 * kvd;
            be->matmul(be, s->q, s->xn, L->qkv_w, L->qkv_b, n);
            if (rot > 0 && be->rope_kv_store) {
                be->rope_kv_store(be, s->q, ldq, s->cos, s->sin, n, nh, nkv, hd, rot, kc, vc); /* in one pass */
            } else {
                if (rot > 0) be->rope_interleaved(be, s->q, ldq, s->cos, s->sin, n, nh + nkv, hd, rot);
                be->kv_store(be, kc, s->q + qd, ldq, n, kvd);
                be->kv_store(be, vc, s->q + qd + kvd, ldq, n, kvd);
            }
        } else { /* k and v after q's chunk rows in s->q (room for [q | k | v]), then to the cache */
            float *k = s->q + s->chunk * qd, *v = k + s->chunk * kvd;
            be->matmul(be, s->q, s->xn, L->q_w, L->q_b, n);
            be->matmul(be, k, s->xn, L->k_w, L->k_b, n);
            be->matmul(be, v, s->xn, L->v_w, L->v_b, n);
            if (rot > 0) {
                be->rope_interleaved(be, s->q, qd, s->cos, s->sin, n, nh, hd, rot);
                be->rope_interleaved(be, k, kvd, s->cos, s->sin, n, nkv, hd, rot);
            }
            be->kv_store(be, kc, k, kvd, n, kvd);
            be->kv_store(be, vc, v, kvd, n, kvd);
        }
        if (nr == 0) break; /* the last layer of a chunk whose rows nobody reads */
        be->attn_causal(be, s->att, s->q + r * ldq, ldq, s->kc[l], s->vc[l], nr, pos0 + r, nh, nkv, hd, scale);
        be->matmul(be, s->t1, s->att, L->o_w, NULL, nr);
        if (m->tp) glmv_tp_allreduce(m, s->t1, nr * H); /* each rank's heads' share of o's output */
        /* the residual, then ref: Glm4vTextMLP */
        be->norm_add_norm(be, x, xn, s->t1, L->post_self_attn_layernorm, L->post_attention_layernorm, nr, H, eps);
        if (be->matmul_glu && !be->matmul_glu(be, s->h, xn, L->gate_up, nr)) { /* gate/up and SwiGLU in one */
            be->matmul(be, s->t1, s->h, L->down, NULL, nr);
        } else if (be->mlp && !be->mlp(be, s->t1, xn, L->gate_up, NULL, L->down, NULL, s->gu, nr)) {
            /* (the MLP in one op: gate/up written in bf16) */
        } else {
            be->matmul(be, s->gu, xn, L->gate_up, NULL, nr);
            mlp_down(be, s->t1, s->h, s->gu, I, L->down, 0, nr);
        }
        if (m->tp) glmv_tp_allreduce(m, s->t1, nr * H);
        /* the residual, and the next layer's input norm (after the last layer, the final norm) */
        const glmv_tensor *next = l + 1 < c->num_hidden_layers ? m->layers[l + 1].input_layernorm : m->norm;
        be->norm_add_norm(be, x, xn, s->t1, L->post_mlp_layernorm, next, nr, H, eps);
        if (m->hook) {
            char name[32];
            snprintf(name, sizeof name, "t.layer.%d", l);
            glmv_model_dump(m, name, s->x, n, H);
        }
    }
    if (m->hook) glmv_model_dump(m, "t.norm", s->xn, n, H); /* the final norm, every row (keep0 = 0) */
    if (want_logits && m->lm_head) { /* (tensor parallelism: rank 0's alone) */
        be->matmul(be, s->logits_dev, s->xn + (n - 1) * H, m->lm_head, NULL, 1);
        if (logits) be->read(be, logits, s->logits_dev, sizeof(float) * (size_t)c->vocab_size);
    }
}

/* The session's scratch made and its cache backed for `rows` rows (under the model lock). */
static int session_ready(glmv_session *s, int64_t rows, char *err) {
    return glmv_session_scratch(s, err) || glmv_kv_ensure(s, rows, err) ? -1 : 0;
}

/* Tensor parallelism: a chunk of k rows on every rank at once. The other ranks' sessions get
 * rank 0's input rows (through host memory), the rotary tables and the position, then each
 * runs the layers on its share, the all-reduces joining them (tp.c). */
typedef struct {
    glmv_session *s;
    int64_t n;
    int want;
    int keep_all;
} chunk_job;

static void chunk_on_rank(int r, void *arg) {
    chunk_job *j = arg;
    /* (rank 0's logits read after every rank's job: no blocking copy while another rank may not
     * have queued its last all-reduce) */
    forward_chunk(r ? j->s->tp_peer[r] : j->s, j->n, j->want, NULL, j->keep_all);
}

static int tp_chunk_inputs(glmv_session *s, int64_t k, size_t tab, char *err) {
    glmv_model *m = s->m;
    size_t xb = sizeof(float) * (size_t)(k * m->cfg.hidden_size);
    m->be->read(m->be, s->tp_stage, s->x, xb);
    for (int r = 1; r < glmv_tp_size(m->tp); r++) {
        glmv_session *p = s->tp_peer[r];
        glmv_backend *be = p->m->be;
        if (be->bind_thread) be->bind_thread(be);
        p->pos = s->pos;
        int rc = session_ready(p, s->pos + k, err);
        if (!rc) {
            be->write(be, p->x, s->tp_stage, xb);
            be->write(be, p->cos, s->hcos, tab * (size_t)k);
            be->write(be, p->sin, s->hsin, tab * (size_t)k);
        }
        if (m->be->bind_thread) m->be->bind_thread(m->be);
        if (rc) return -1;
    }
    return 0;
}

/* The other ranks' work on m's sequences ss done and well, and the all-reduces; their positions
 * as rank 0's after it appends add[i] rows to ss[i] (NULL: one each). */
static int tp_ranks_done(glmv_model *m, glmv_session *const *ss, const int64_t *add, int n, char *err) {
    int failed = 0;
    for (int r = 1; r < glmv_tp_size(m->tp); r++) {
        glmv_backend *be = glmv_tp_rank(m->tp, r)->be;
        if (be->bind_thread) be->bind_thread(be);
        be->sync(be);
        if (!failed && be->status && be->status(be, err)) failed = 1;
        for (int i = 0; i < n; i++) ss[i]->tp_peer[r]->pos = ss[i]->pos + (int)(add ? add[i] : 1);
    }
    if (m->be->bind_thread) m->be->bind_thread(m->be);
    if (!failed && glmv_tp_status(m->tp, err)) failed = 1;
    if (failed) glmv_errcode_set(GLMV_E_BACKEND);
    return failed ? -1 : 0;
}

int glmv_text_forward(glmv_session *s, const float *x, const int32_t *ids, const int32_t *pos,
                      int64_t n, float *logits, char *err) {
    glmv_model *m = s->m;
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    int64_t H = c->hidden_size;
    if (n <= 0) return glmv_errf(err, "no tokens to evaluate");
    if (s->pos + n > s->n_ctx)
        return glmv_errc(err, GLMV_E_CONTEXT, "context full: %d tokens cached + %lld new > n_ctx %d", s->pos,
                         (long long)n, s->n_ctx);
    if (ids)
        for (int64_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= c->vocab_size)
                return glmv_errf(err, "token id %d at %lld outside the vocabulary (%d)", ids[i],
                                 (long long)i, c->vocab_size);
    int rot = (int)(c->head_dim * c->partial_rotary_factor + 0.5f);
    rot -= rot % 2;
    size_t tab = sizeof(float) * (size_t)(rot / 2);
    for (int64_t off = 0, k; off < n; off += k) {
        /* never a last chunk of one row: a row alone is a decode row's product on the CPU (the
         * matrix-vector kernel), the prompt's others the GEMM's; batched passes cut likewise */
        k = GLMV_MIN((int64_t)s->chunk, n - off);
        if (n - off - k == 1 && k > 2) k--;
        glmv_model_lock(m); /* per chunk: other sessions' decode steps run in between */
        s->evictable = 0; /* the caller holds on to this cache */
        if (session_ready(s, s->pos + k, err)) {
            glmv_model_unlock(m);
            return -1;
        }
        if (x)
            be->copy(be, s->x, x + off * H, sizeof(float) * (size_t)(k * H));
        else
            glmv_model_embed(m, s->x, ids + off, k, s->hemb, s->hemb_rows);
        /* positions of this chunk as (3, k) on the host, then the rope tables */
        for (int a = 0; a < 3; a++) memcpy(s->hpos + a * k, pos + a * n + off, sizeof(int32_t) * (size_t)k);
        glmv_rope_text_table(c, s->hpos, k, k, s->hcos, s->hsin);
        be->write(be, s->cos, s->hcos, tab * (size_t)k);
        be->write(be, s->sin, s->hsin, tab * (size_t)k);
        if (m->hook && off == 0 && x) glmv_model_dump(m, "t.inputs_embeds", x, n, H);
        int last = off + k == n;
        int failed = 0;
        if (m->tp) {
            if (tp_chunk_inputs(s, k, tab, err)) {
                glmv_model_unlock(m);
                return -1;
            }
            chunk_job job = {s, k, last, m->hook != NULL};
            glmv_tp_run(m->tp, chunk_on_rank, &job);
            failed = tp_ranks_done(m, &s, &k, 1, err);
            if (!failed && last && logits)
                be->read(be, logits, s->logits_dev, sizeof(float) * (size_t)c->vocab_size);
        } else {
            forward_chunk(s, k, last, last ? logits : NULL, m->hook != NULL);
        }
        if (ids) memcpy(s->hist + s->pos, ids + off, sizeof(int32_t) * (size_t)k);
        s->pos += (int)k;
        if (failed) glmv_errcode_set(GLMV_E_BACKEND);
        if (!failed && off + k == n) {
            be->sync(be);
            /* a device reports its failures late: never hand back what a failed step left */
            failed = be->status && be->status(be, err);
            if (failed) glmv_errcode_set(GLMV_E_BACKEND);
        }
        glmv_model_unlock(m);
        if (failed) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ batched decode */

/* the buffers of rows (x ... sin, host tables): freed, or (re)allocated for `rows` rows */
static void batch_rows_free(glmv_batch *b) {
    glmv_backend *be = b->m->be;
    float **bufs[] = {&b->x, &b->xn, &b->t1, &b->q, &b->att, &b->k, &b->v, &b->gu, &b->h, &b->cos, &b->sin};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (*bufs[i]) be->free(be, *bufs[i]);
        *bufs[i] = NULL;
    }
    free(b->hcos);
    free(b->hsin);
    free(b->hemb);
    free(b->hpos);
    b->hcos = b->hsin = b->hemb = NULL;
    b->hpos = NULL;
    b->rows = 0;
}

static int batch_rows_alloc(glmv_batch *b, int rows) {
    glmv_model *m = b->m;
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    batch_rows_free(b);
    /* recorded steps name the buffers: they go with them */
    for (size_t i = 0; i < sizeof b->graphs / sizeof b->graphs[0]; i++)
        if (b->graphs[i].g) {
            be->graph_free(be, b->graphs[i].g);
            b->graphs[i].g = NULL;
        }
    b->last_key = 0;
    int64_t H = c->hidden_size, I = m->t_I, C = rows;
    int64_t qd = (int64_t)m->t_nh * c->head_dim;
    int64_t kvd = glmv_kv_dim(m);
    int rot = (int)(c->head_dim * c->partial_rotary_factor + 0.5f);
    int64_t half = GLMV_MAX(rot / 2, 1);
    int oom = 0;
#define BA(p, n) if (!oom) { p = be->alloc(be, glmv_mul_size(sizeof(float), (size_t)(n))); oom = !p; }
    BA(b->x, C * H) BA(b->xn, C * H) BA(b->t1, C * H) BA(b->q, C * (qd + 2 * kvd))
    BA(b->att, C * qd) BA(b->k, C * kvd) BA(b->v, C * kvd) BA(b->gu, C * 2 * I) BA(b->h, C * I)
    BA(b->cos, C * half) BA(b->sin, C * half)
#undef BA
    if (!oom) {
        b->hcos = malloc(sizeof(float) * (size_t)(C * half));
        b->hsin = malloc(sizeof(float) * (size_t)(C * half));
        b->hpos = malloc(sizeof(int32_t) * (size_t)(3 * C));
        b->hemb = m->embed_on_host ? malloc(glmv_mul_size((size_t)(C * H), sizeof(float))) : NULL;
        oom = !b->hcos || !b->hsin || !b->hpos || (m->embed_on_host && !b->hemb);
    }
    if (oom) {
        batch_rows_free(b);
        return -1;
    }
    b->rows = rows;
    return 0;
}

void glmv_batch_free(glmv_batch *b) {
    if (!b) return;
    for (int r = 1; b->tp_peer && r < glmv_tp_size(b->m->tp); r++) {
        glmv_batch *p = b->tp_peer[r];
        if (!p) continue;
        if (p->m->be->bind_thread) p->m->be->bind_thread(p->m->be);
        glmv_batch_free(p);
        if (b->m->be->bind_thread) b->m->be->bind_thread(b->m->be);
    }
    free(b->tp_peer);
    free(b->tp_stage);
    glmv_backend *be = b->m->be;
    batch_rows_free(b);
    if (b->logits_dev) be->free(be, b->logits_dev);
    if (b->top_val) be->free(be, b->top_val);
    if (b->top_id) be->free(be, b->top_id);
    if (b->htop_val && !b->htop_malloc && be->host_free) be->host_free(be, b->htop_val);
    else free(b->htop_val);
    if (b->tab) be->free(be, b->tab);
    for (size_t i = 0; i < sizeof b->graphs / sizeof b->graphs[0]; i++)
        if (b->graphs[i].g) be->graph_free(be, b->graphs[i].g);
    free(b->htab);
    free(b);
}

int glmv_batch_new(glmv_batch **out, glmv_model *m, int cap, char *err) {
    *out = NULL;
    if (cap < 1 || cap > 4096) return glmv_errf(err, "batch of %d sequences: must be 1 to 4096", cap);
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    glmv_batch *b = calloc(1, sizeof *b);
    if (!b) return glmv_errf(err, "out of memory");
    b->m = m;
    b->cap = cap;
    b->prompt_rows = be->caps.batch_prompt_rows > 0 ? be->caps.batch_prompt_rows
                     : be->caps.prefill_chunk > 0   ? be->caps.prefill_chunk
                                                    : 256;
    b->idle_rows = be->caps.prefill_chunk;
    int oom = batch_rows_alloc(b, cap) != 0;
    if (!oom) {
        b->logits_dev = be->alloc(be, glmv_mul_size(sizeof(float), (size_t)cap * (size_t)c->vocab_size));
        oom = !b->logits_dev;
    }
    if (!oom) { /* the best logits of every row (glmv_top), page-locked on the host where the device reads fastest */
        size_t tk = glmv_mul_size((size_t)cap, GLMV_TOP_MAX * sizeof(float));
        b->top_val = be->alloc(be, tk);
        b->top_id = be->alloc(be, tk);
        b->htop_val = be->host_alloc ? be->host_alloc(be, 2 * tk) : NULL;
        if (!b->htop_val) { /* (page-locked memory short: ordinary memory works too) */
            b->htop_val = malloc(2 * tk);
            b->htop_malloc = 1;
        }
        b->htop_id = b->htop_val ? (int32_t *)(b->htop_val + (size_t)cap * GLMV_TOP_MAX) : NULL;
        oom = !b->top_val || !b->top_id || !b->htop_val;
    }
    if (!oom) {
        size_t tb = glmv_mul_size((size_t)(2 * c->num_hidden_layers + 1) * (size_t)cap, 8);
        b->htab = malloc(tb);
        b->tab = be->alloc(be, tb);
        oom = !b->htab || !b->tab;
    }
    if (oom) {
        glmv_batch_free(b);
        return glmv_errf(err, "out of memory for a batch of %d sequences", cap);
    }
    if (m->tp && m->tp_rank == 0) { /* the same batch on the other ranks */
        int n = glmv_tp_size(m->tp);
        if (!(b->tp_peer = calloc((size_t)n, sizeof *b->tp_peer))) {
            glmv_batch_free(b);
            return glmv_errf(err, "out of memory");
        }
        for (int r = 1; r < n; r++) {
            glmv_model *rm = glmv_tp_rank(m->tp, r);
            if (rm->be->bind_thread) rm->be->bind_thread(rm->be);
            int rc = glmv_batch_new(&b->tp_peer[r], rm, cap, err);
            if (be->bind_thread) be->bind_thread(be);
            if (rc) {
                glmv_batch_free(b);
                return -1;
            }
        }
    }
    *out = b;
    return 0;
}

int glmv_batch_capacity(const glmv_batch *b) { return b->cap; }

/* a mixed step's rows: every sequence's decode row, and prompt rows as the backend prefers them
 * beside decode rows (at least 2: a prompt is never cut into a piece of one row, see eval_group) */
int glmv_batch_max_rows(const glmv_batch *b) { return b->cap + GLMV_MAX(b->prompt_rows, 2); }
int glmv_batch_idle_rows(const glmv_batch *b) { return GLMV_MAX(glmv_batch_max_rows(b), b->idle_rows); }

int glmv_batch_reserve(glmv_batch *b, int rows) {
    int n = b->tp_peer ? glmv_tp_size(b->m->tp) : 1, rc = 0;
    for (int r = 0; r < n && !rc; r++) { /* this rank's buffers, then the other ranks' */
        glmv_batch *p = r ? b->tp_peer[r] : b;
        if (r && p->m->be->bind_thread) p->m->be->bind_thread(p->m->be);
        rc = p->rows < rows && batch_rows_alloc(p, rows) ? -1 : 0;
    }
    for (int r = 0; r < n && rc; r++) { /* short: all back to what decode steps need */
        glmv_batch *p = r ? b->tp_peer[r] : b;
        if (p->m->be->bind_thread) p->m->be->bind_thread(p->m->be);
        if (p->rows > p->cap) batch_rows_alloc(p, p->cap);
    }
    if (n > 1 && b->m->be->bind_thread) b->m->be->bind_thread(b->m->be);
    return rc;
}

static int batch_step(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, int n,
                      float *const *logits, glmv_top *const *top, const glmv_sampling *const *top_sp, char *err);

/* ref: Glm4vTextModel.forward for one new token of each sequence. Every op but attention
 * takes the n rows together (the weights read once per step); attention runs per
 * sequence over its own cache; each row is computed as it would be alone (matmul_rows). */
static int batch_decode_locked(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, int n,
                               float *const *logits, glmv_top *const *top, const glmv_sampling *const *top_sp, char *err);

int glmv_batch_decode(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, int n,
                      float *const *logits, char *err) {
    glmv_model_lock(b->m);
    int rc = batch_decode_locked(b, ss, ids, n, logits, NULL, NULL, err);
    glmv_model_unlock(b->m);
    return rc;
}

static int batch_decode_locked(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, int n,
                               float *const *logits, glmv_top *const *top, const glmv_sampling *const *top_sp, char *err) {
    glmv_model *m = b->m;
    const glmv_config *c = &m->cfg;
    if (n <= 0) return 0;
    if (n > b->cap) return glmv_errc(err, GLMV_E_INVALID, "batch: %d sequences, room for %d", n, b->cap);
    if (b->rows < n) /* a mixed step's buffers could not be made, nor these again */
        return glmv_errc(err, GLMV_E_NOMEM, "batch: out of memory for its buffers");
    for (int i = 0; i < n; i++) {
        if (ss[i]->m != m)
            return glmv_errc(err, GLMV_E_INVALID, "batch: sequence %d is a session of another model", i);
        if (ss[i]->pos + 1 > ss[i]->n_ctx)
            return glmv_errc(err, GLMV_E_CONTEXT, "batch: sequence %d: context full (n_ctx %d)", i,
                             ss[i]->n_ctx);
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return glmv_errc(err, GLMV_E_INVALID, "batch: sequence %d: token id %d outside the vocabulary (%d)",
                             i, ids[i], c->vocab_size);
        for (int j = 0; j < i; j++)
            if (ss[j] == ss[i])
                return glmv_errc(err, GLMV_E_INVALID, "batch: sequences %d and %d share a session", j, i);
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        ss[i]->evictable = 0;
        rc = glmv_kv_ensure(ss[i], ss[i]->pos + 1, err);
    }
    if (!rc) rc = batch_step(b, ss, ids, n, logits, top, top_sp, err);
    for (int i = 0; i < n && !rc; i++) { /* under the lock: sharing sessions read them */
        ss[i]->hist[ss[i]->pos] = ids[i];
        ss[i]->pos++;
    }
    return rc ? -1 : 0;
}

static void mixed_layers(glmv_batch *b, const glmv_batch_item *const *it, const int64_t *r0, const int64_t *orow,
                         int n_it, int nd, int64_t R, int64_t R2, int64_t max_keys);

/* ---- tensor parallelism: a step on every rank (tp.c) ---- */

/* s's session on rank r (its heads' cache) */
static glmv_session *rank_session(glmv_session *s, int r) { return r ? s->tp_peer[r] : s; }

/* The step's inputs on the other ranks, rank 0's being written: the input rows (through host
 * memory), the rotary tables, each sequence's cache backed for its add[i] new rows (NULL: one
 * each) at rank 0's position, and the decode rows' cache tables (of their own caches). */
static int tp_batch_inputs(glmv_batch *b, glmv_session *const *ss, const int64_t *add, int n, int nd, int64_t R,
                           char *err) {
    glmv_model *m = b->m;
    const glmv_config *c = &m->cfg;
    const int64_t H = c->hidden_size;
    const int L_n = c->num_hidden_layers;
    int rot = (int)(c->head_dim * c->partial_rotary_factor + 0.5f);
    rot -= rot % 2;
    const size_t xb = sizeof(float) * (size_t)(R * H), tab = sizeof(float) * (size_t)(rot / 2) * (size_t)R;
    if (b->tp_stage_rows < R) {
        free(b->tp_stage);
        b->tp_stage_rows = 0;
        if (!(b->tp_stage = malloc(xb))) return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
        b->tp_stage_rows = R;
    }
    m->be->read(m->be, b->tp_stage, b->x, xb);
    int rc = 0;
    for (int r = 1; r < glmv_tp_size(m->tp) && !rc; r++) {
        glmv_batch *p = b->tp_peer[r];
        glmv_backend *be = p->m->be;
        if (be->bind_thread) be->bind_thread(be);
        p->prompt_rows = b->prompt_rows;
        if (p->rows < R && batch_rows_alloc(p, (int)GLMV_MAX(R, glmv_batch_max_rows(p))))
            rc = glmv_errc(err, GLMV_E_NOMEM, "out of memory for a step of %lld rows", (long long)R);
        for (int i = 0; i < n && !rc; i++) {
            glmv_session *ps = ss[i]->tp_peer[r];
            ps->pos = ss[i]->pos;
            ps->evictable = 0;
            rc = glmv_kv_ensure(ps, ps->pos + (add ? add[i] : 1), err);
        }
        if (!rc) {
            be->write(be, p->x, b->tp_stage, xb);
            be->write(be, p->cos, b->hcos, tab);
            be->write(be, p->sin, b->hsin, tab);
        }
        if (!rc && nd > 0) {
            const int64_t *nk = (const int64_t *)(b->htab + (size_t)2 * L_n * nd);
            for (int i = 0; i < nd; i++)
                for (int l = 0; l < L_n; l++) {
                    p->htab[(size_t)(2 * l) * nd + i] = ss[i]->tp_peer[r]->kc[l];
                    p->htab[(size_t)(2 * l + 1) * nd + i] = ss[i]->tp_peer[r]->vc[l];
                }
            memcpy(p->htab + (size_t)2 * L_n * nd, nk, sizeof(int64_t) * (size_t)nd);
            be->write(be, p->tab, p->htab, (size_t)(2 * L_n + 1) * (size_t)nd * 8);
        }
        if (m->be->bind_thread) m->be->bind_thread(m->be);
    }
    return rc ? -1 : 0;
}

typedef struct {
    glmv_batch *b;
    const glmv_batch_item *const *it;
    const int64_t *r0, *orow;
    int n_it, nd;
    int64_t R, R2, max_keys;
} layers_job;

static void layers_on_rank(int r, void *arg) {
    layers_job *j = arg;
    mixed_layers(r ? j->b->tp_peer[r] : j->b, j->it, j->r0, j->orow, j->n_it, j->nd, j->R, j->R2, j->max_keys);
}


/* The ops of a step after its inputs are written: every layer (a mixed step of decode rows
 * only), the final norm and lm_head on the batch's buffers (recorded as one graph where the
 * backend can). */
static void batch_layers(glmv_batch *b, int n, int64_t max_keys) {
    glmv_backend *be = b->m->be;
    mixed_layers(b, NULL, NULL, NULL, n, n, n, n, max_keys);
    (be->matmul_rows ? be->matmul_rows : be->matmul)(be, b->logits_dev, b->xn, b->m->lm_head, NULL, n);
}

/* Run batch_layers from a recorded graph when there is one for this shape, record it when
 * the shape comes a second time in a row, else queue the ops. */
static void batch_layers_graph(glmv_batch *b, int n, int64_t max_keys) {
    glmv_backend *be = b->m->be;
    uint64_t key = (uint64_t)n << 32 | (uint64_t)max_keys;
    int slots = (int)(sizeof b->graphs / sizeof b->graphs[0]);
    for (int i = 0; i < slots; i++)
        if (b->graphs[i].g && b->graphs[i].key == key) {
            if (be->graph_run(be, b->graphs[i].g) == 0) {
                b->replays++;
                return;
            }
            be->graph_free(be, b->graphs[i].g); /* stale: its scratch moved */
            b->graphs[i].g = NULL;
            break;
        }
    int again = b->last_key == key;
    b->last_key = key;
    if (!again || be->graph_begin(be)) {
        batch_layers(b, n, max_keys);
        return;
    }
    batch_layers(b, n, max_keys);
    void *g = be->graph_end(be);
    if (!g || be->graph_run(be, g)) { /* not recorded (or already stale): run the ops */
        if (g) be->graph_free(be, g);
        batch_layers(b, n, max_keys);
        return;
    }
    b->replays++;
    int k = b->next_graph;
    b->next_graph = (k + 1) % slots;
    if (b->graphs[k].g) be->graph_free(be, b->graphs[k].g);
    b->graphs[k].key = key;
    b->graphs[k].g = g;
}

/* Rows 0..nl-1 of b->logits_dev to where each is asked for: the whole row into lg[j] (host), or
 * its best top[j]->k logits into top[j] (the best of every such row found at once on the
 * backend, a few bytes read for each instead of the row); with both, a row whose best may not
 * decide the pick sampled by sps[j] (glmv_top_covers) is read whole into lg[j] instead
 * (top[j]->n = 0). One wait for all the reads; 0, or -1 with the backend's error. */
static int read_rows(glmv_batch *b, int nl, float *const *lg, glmv_top *const *top, const glmv_sampling *const *sps,
                     char *err) {
    glmv_backend *be = b->m->be;
    int64_t V = b->m->cfg.vocab_size;
    void (*rd)(glmv_backend *, void *, const void *, size_t) = be->read_async ? be->read_async : be->read;
    int K = 0;
    for (int j = 0; top && j < nl; j++)
        if (top[j] && top[j]->k > K) K = top[j]->k;
    if (K > 0) {
        be->top_k(be, b->top_val, b->top_id, b->logits_dev, nl, V, K);
        rd(be, b->htop_val, b->top_val, sizeof(float) * (size_t)(nl * K));
        rd(be, b->htop_id, b->top_id, sizeof(int32_t) * (size_t)(nl * K));
    }
    for (int j = 0; j < nl; j++)
        if (lg[j] && !(top && top[j])) rd(be, lg[j], b->logits_dev + j * V, sizeof(float) * (size_t)V);
    be->sync(be);
    if (be->status && be->status(be, err)) {
        glmv_errcode_set(GLMV_E_BACKEND);
        return -1;
    }
    for (int j = 0; top && j < nl; j++) {
        glmv_top *t = top[j];
        if (!t) continue;
        t->n = t->k;
        memcpy(t->logit, b->htop_val + (size_t)j * K, sizeof(float) * (size_t)t->k);
        memcpy(t->id, b->htop_id + (size_t)j * K, sizeof(int32_t) * (size_t)t->k);
        b->top_rows++;
        if (lg[j] && sps && !glmv_top_covers(t, sps[j])) { /* ties may lie past them: the row */
            be->read(be, lg[j], b->logits_dev + j * V, sizeof(float) * (size_t)V);
            t->n = 0;
            b->top_whole++;
            if (be->status && be->status(be, err)) {
                glmv_errcode_set(GLMV_E_BACKEND);
                return -1;
            }
        }
    }
    return 0;
}

static int batch_step(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, int n,
                      float *const *logits, glmv_top *const *top, const glmv_sampling *const *top_sp, char *err) {
    glmv_model *m = b->m;
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    int rot = (int)(c->head_dim * c->partial_rotary_factor + 0.5f);
    rot -= rot % 2;
    glmv_model_embed(m, b->x, ids, n, b->hemb, b->rows);
    /* decode positions: the next index plus the sequence's M-RoPE offset, on all three axes */
    for (int i = 0; i < n; i++)
        b->hpos[i] = b->hpos[n + i] = b->hpos[2 * n + i] = (int32_t)(ss[i]->pos + ss[i]->rope_delta);
    glmv_rope_text_table(c, b->hpos, n, n, b->hcos, b->hsin);
    size_t tab = sizeof(float) * (size_t)(rot / 2) * (size_t)n;
    be->write(be, b->cos, b->hcos, tab);
    be->write(be, b->sin, b->hsin, tab);
    int L_n = c->num_hidden_layers;
    int64_t max_keys = 0;
    { /* every layer's cache pointers and the key counts, in one write */
        int64_t *nk = (int64_t *)(b->htab + (size_t)2 * L_n * n);
        for (int i = 0; i < n; i++) {
            for (int l = 0; l < L_n; l++) {
                b->htab[(size_t)(2 * l) * n + i] = ss[i]->kc[l];
                b->htab[(size_t)(2 * l + 1) * n + i] = ss[i]->vc[l];
            }
            nk[i] = ss[i]->pos + 1;
            if (nk[i] > max_keys) max_keys = nk[i];
        }
        be->write(be, b->tab, b->htab, (size_t)(2 * L_n + 1) * (size_t)n * 8);
    }
    if (m->tp) { /* every rank's share of the layers at once; lm_head on rank 0 */
        if (tp_batch_inputs(b, ss, NULL, n, n, n, err)) return -1;
        layers_job j = {b, NULL, NULL, NULL, n, n, n, n, max_keys};
        glmv_tp_run(m->tp, layers_on_rank, &j);
        (be->matmul_rows ? be->matmul_rows : be->matmul)(be, b->logits_dev, b->xn, m->lm_head, NULL, n);
    } else if (be->graph_begin) {
        /* the bound on the key counts rounded up, so that a recorded step serves the next
         * GLMV_GRAPH_KEYS tokens (each sequence still attends to its own count), recorded or not */
        batch_layers_graph(b, n, (max_keys + GLMV_GRAPH_KEYS - 1) / GLMV_GRAPH_KEYS * GLMV_GRAPH_KEYS);
    } else {
        batch_layers(b, n, max_keys);
    }
    if (read_rows(b, n, logits, top, top_sp, err)) return -1;
    return m->tp ? tp_ranks_done(m, ss, NULL, n, err) : 0;
}

int glmv_session_eval_batch(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, int n,
                            float *const *logits, char *err) {
    return glmv_batch_decode(b, ss, ids, n, logits, err);
}

/* ------------------------------------------------------------------ mixed steps */


/* The layers of a mixed step: rows [0, nd) are the decode items (attention together, their
 * tables in b->tab), then each prompt item's rows it[k].n from row r0[k] (k >= nd). The last
 * layer, past its keys and values, carries on only the decode rows and the last row of each
 * prompt item whose logits are read, moved to row orow[k] (-1: none) of the first R2: those
 * rows then go through every product as decode rows do (on the CPU, matmul_rows: the row is
 * bit for bit what a prompt alone gives it, glmv_text_forward's pruned last row). */
static void mixed_layers(glmv_batch *b, const glmv_batch_item *const *it, const int64_t *r0, const int64_t *orow,
                         int n_it, int nd, int64_t R, int64_t R2, int64_t max_keys) {
    glmv_model *m = b->m;
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    int64_t H = c->hidden_size, I = m->t_I;
    int nh = m->t_nh, nkv = m->t_nkv, hd = c->head_dim;
    int64_t qd = (int64_t)nh * hd, kvd = (int64_t)nkv * hd;
    int rot = (int)(hd * c->partial_rotary_factor + 0.5f);
    rot -= rot % 2;
    float eps = c->rms_norm_eps, scale = (float)(1.0 / sqrt((double)hd));
    int L_n = c->num_hidden_layers;
    be->rmsnorm(be, b->xn, b->x, m->layers[0].input_layernorm, R, H, eps);
    for (int l = 0; l < L_n; l++) {
        const glmv_text_layer *L = &m->layers[l];
        const float *k_new = b->k, *v_new = b->v;
        int64_t ldq = qd, ldkv = kvd;
        if (L->qkv_w) { /* [q | k | v] in b->q's rows */
            ldq = ldkv = qd + 2 * kvd;
            k_new = b->q + qd;
            v_new = b->q + qd + kvd;
            mm_mixed(be, b->q, b->xn, L->qkv_w, L->qkv_b, nd, R);
            if (rot > 0) be->rope_interleaved(be, b->q, ldq, b->cos, b->sin, R, nh + nkv, hd, rot);
        } else {
            mm_mixed(be, b->q, b->xn, L->q_w, L->q_b, nd, R);
            mm_mixed(be, b->k, b->xn, L->k_w, L->k_b, nd, R);
            mm_mixed(be, b->v, b->xn, L->v_w, L->v_b, nd, R);
            if (rot > 0) {
                be->rope_interleaved(be, b->q, qd, b->cos, b->sin, R, nh, hd, rot);
                be->rope_interleaved(be, b->k, kvd, b->cos, b->sin, R, nkv, hd, rot);
            }
        }
        if (nd > 0)
            be->attn_decode_batch(be, b->att, b->q, ldq, k_new, v_new, ldkv,
                                  b->tab + (size_t)(2 * l) * nd, b->tab + (size_t)(2 * l + 1) * nd,
                                  (const int64_t *)(b->tab + (size_t)2 * L_n * nd), nd, max_keys, nh, nkv, hd,
                                  scale);
        const int last = l + 1 == L_n && R2 < R;
        for (int k = nd; k < n_it; k++) { /* a prompt chunk: its keys and values into its cache, then causal */
            glmv_session *s = rank_session(it[k]->s, m->tp_rank);
            int64_t n = it[k]->n, r = r0[k];
            be->kv_store(be, glmv_kv_row(m, s->kc[l], s->pos), k_new + r * ldkv, ldkv, n, kvd);
            be->kv_store(be, glmv_kv_row(m, s->vc[l], s->pos), v_new + r * ldkv, ldkv, n, kvd);
            if (!last)
                be->attn_causal(be, b->att + r * qd, b->q + r * ldq, ldq, s->kc[l], s->vc[l], n, s->pos, nh, nkv,
                                hd, scale);
            else if (orow[k] >= 0) /* its last row alone, and that row's residual, to row orow[k] */
                be->attn_causal(be, b->att + orow[k] * qd, b->q + (r + n - 1) * ldq, ldq, s->kc[l], s->vc[l], 1,
                                s->pos + n - 1, nh, nkv, hd, scale);
        }
        if (last)
            for (int k = nd; k < n_it; k++) /* orow[k] <= the source row, rising: nothing read is overwritten */
                if (orow[k] >= 0 && orow[k] != r0[k] + it[k]->n - 1)
                    be->copy(be, b->x + orow[k] * H, b->x + (r0[k] + it[k]->n - 1) * H, sizeof(float) * (size_t)H);
        const int64_t Rl = last ? R2 : R, ndl = last ? R2 : nd; /* the rows that go on; as decode rows */
        mm_mixed(be, b->t1, b->att, L->o_w, NULL, ndl, Rl);
        if (m->tp) glmv_tp_allreduce(m, b->t1, Rl * H); /* each rank's heads' share */
        be->norm_add_norm(be, b->x, b->xn, b->t1, L->post_self_attn_layernorm, L->post_attention_layernorm, Rl, H,
                          eps);
        if (one_product(be, ndl) && be->matmul_glu && !be->matmul_glu(be, b->h, b->xn, L->gate_up, Rl)) {
            mm_mixed(be, b->t1, b->h, L->down, NULL, ndl, Rl); /* gate/up and SwiGLU were one op */
        } else if (ndl == 0 && be->mlp && !be->mlp(be, b->t1, b->xn, L->gate_up, NULL, L->down, NULL, b->gu, Rl)) {
            /* (prompt rows alone: the MLP in one op, gate/up written in bf16; decode rows keep
               the float32 products they have alone) */
        } else {
            mm_mixed(be, b->gu, b->xn, L->gate_up, NULL, ndl, Rl);
            mlp_down(be, b->t1, b->h, b->gu, I, L->down, ndl, Rl);
        }
        if (m->tp) glmv_tp_allreduce(m, b->t1, Rl * H);
        be->norm_add_norm(be, b->x, b->xn, b->t1, L->post_mlp_layernorm,
                          l + 1 < L_n ? m->layers[l + 1].input_layernorm : m->norm, Rl, H, eps);
    }
}

/* an item whose last row's logits go somewhere */
static int wants_row(const glmv_batch_item *t) { return t->logits || t->top; }

int glmv_batch_eval(glmv_batch *b, const glmv_batch_item *items, int n, char *err) {
    glmv_model_lock(b->m);
    int rc = glmv_batch_eval_locked(b, items, n, err);
    glmv_model_unlock(b->m);
    return rc;
}

int glmv_batch_eval_locked(glmv_batch *b, const glmv_batch_item *items, int n, char *err) {
    glmv_model *m = b->m;
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    int64_t H = c->hidden_size;
    if (n <= 0) return 0;
    if (n > b->cap) return glmv_errc(err, GLMV_E_INVALID, "batch: %d sequences, room for %d", n, b->cap);
    int64_t R = 0;
    int simple = 1; /* every item a decode token of ids at its next position: the decode step */
    for (int i = 0; i < n; i++) {
        const glmv_batch_item *t = &items[i];
        if (t->s->m != m)
            return glmv_errc(err, GLMV_E_INVALID, "batch: sequence %d is a session of another model", i);
        if (t->n <= 0 || (!t->ids && !t->x) || (t->pos && t->pos_stride < t->n))
            return glmv_errc(err, GLMV_E_INVALID, "batch: sequence %d: no rows, no input or short positions", i);
        if (t->s->pos + t->n > t->s->n_ctx)
            return glmv_errc(err, GLMV_E_CONTEXT, "batch: sequence %d: context full: %d cached + %lld new > n_ctx %d",
                             i, t->s->pos, (long long)t->n, t->s->n_ctx);
        if (t->ids)
            for (int64_t j = 0; j < t->n; j++)
                if (t->ids[j] < 0 || t->ids[j] >= c->vocab_size)
                    return glmv_errc(err, GLMV_E_INVALID, "batch: sequence %d: token id %d outside the "
                                     "vocabulary (%d)", i, t->ids[j], c->vocab_size);
        for (int j = 0; j < i; j++)
            if (items[j].s == t->s)
                return glmv_errc(err, GLMV_E_INVALID, "batch: sequences %d and %d share a session", j, i);
        if (t->top && (t->top->k < 1 || t->top->k > GLMV_MIN(GLMV_TOP_MAX, c->vocab_size)))
            return glmv_errc(err, GLMV_E_INVALID, "batch: sequence %d: %d best logits asked for, not 1 to %d", i,
                             t->top->k, GLMV_MIN(GLMV_TOP_MAX, c->vocab_size));
        R += t->n;
        simple &= t->n == 1 && t->ids && !t->x && !t->pos;
    }
    if (R > glmv_batch_idle_rows(b))
        return glmv_errc(err, GLMV_E_INVALID, "batch: %lld rows in a step, room for %d", (long long)R,
                         glmv_batch_idle_rows(b));
    b->last_rows = (int)R;
    if (simple) { /* the decode step as it is recorded and replayed */
        glmv_session *ss[64];
        int32_t ids[64];
        float *lg[64];
        glmv_top *tp[64];
        const glmv_sampling *tt[64];
        for (int i0 = 0; i0 < n; i0 += 64) {
            int k = GLMV_MIN(64, n - i0);
            for (int j = 0; j < k; j++) {
                ss[j] = items[i0 + j].s;
                ids[j] = items[i0 + j].ids[0];
                lg[j] = items[i0 + j].logits;
                tp[j] = items[i0 + j].top;
                tt[j] = items[i0 + j].top_sp;
            }
            if (batch_decode_locked(b, ss, ids, k, lg, tp, tt, err)) return -1;
        }
        return 0;
    }
    /* decode items (one row) first, then the prompt chunks */
    const glmv_batch_item **it = malloc(sizeof *it * (size_t)n);
    int64_t *r0 = malloc(sizeof *r0 * (size_t)n), *orow = malloc(sizeof *orow * (size_t)n);
    int32_t *dids = malloc(sizeof *dids * (size_t)n); /* the decode rows' ids, gathered in one go */
    glmv_session **tss = malloc(sizeof *tss * (size_t)n); /* tensor parallelism: the sessions, their rows */
    int64_t *tadd = malloc(sizeof *tadd * (size_t)n);
    float **lgs = malloc(sizeof *lgs * (size_t)n); /* where the logits rows go (read_rows) */
    glmv_top **tps = malloc(sizeof *tps * (size_t)n);
    const glmv_sampling **tts = malloc(sizeof *tts * (size_t)n);
    if (!it || !r0 || !orow || !dids || !tss || !tadd || !lgs || !tps || !tts) {
        free(it);
        free(r0);
        free(orow);
        free(dids);
        free(tss);
        free(tadd);
        free(lgs);
        free(tps);
        free(tts);
        return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
    }
    int nd = 0, k = 0;
    for (int i = 0; i < n; i++)
        if (items[i].n == 1) it[nd++] = &items[i];
    k = nd;
    for (int i = 0; i < n; i++)
        if (items[i].n > 1) it[k++] = &items[i];
    int rc = -1;
    for (int i = 0; i < n; i++) {
        it[i]->s->evictable = 0;
        if (glmv_kv_ensure(it[i]->s, it[i]->s->pos + it[i]->n, err)) goto done;
    }
    if (glmv_batch_reserve(b, (int)GLMV_MAX(R, glmv_batch_max_rows(b)))) {
        glmv_errc(err, GLMV_E_NOMEM, "out of memory for a step of %lld rows", (long long)R);
        goto done;
    }
    int rot = (int)(c->head_dim * c->partial_rotary_factor + 0.5f);
    rot -= rot % 2;
    int L_n = c->num_hidden_layers;
    int64_t row = 0, max_keys = 0;
    for (int i = 0; i < n; i++) { /* inputs and positions, row by row */
        const glmv_batch_item *t = it[i];
        glmv_session *s = t->s;
        r0[i] = row;
        if (t->x) {
            be->copy(be, b->x + row * H, t->x, sizeof(float) * (size_t)(t->n * H));
        } else if (i < nd) { /* the decode tokens' rows: one gather for all of them (at the first) */
            if (i == 0 || it[i - 1]->x) {
                int e = i;
                while (e < nd && !it[e]->x) e++;
                for (int j = i; j < e; j++) dids[j - i] = it[j]->ids[0];
                glmv_model_embed(m, b->x + row * H, dids, e - i, b->hemb, b->rows);
            }
        } else {
            glmv_model_embed(m, b->x + row * H, t->ids, t->n, b->hemb, b->rows);
        }
        for (int64_t j = 0; j < t->n; j++)
            for (int a = 0; a < 3; a++)
                b->hpos[a * R + row + j] =
                    t->pos ? t->pos[a * t->pos_stride + j] : (int32_t)(s->pos + j + s->rope_delta);
        row += t->n;
    }
    glmv_rope_text_table(c, b->hpos, R, R, b->hcos, b->hsin);
    size_t tab = sizeof(float) * (size_t)(rot / 2) * (size_t)R;
    be->write(be, b->cos, b->hcos, tab);
    be->write(be, b->sin, b->hsin, tab);
    if (nd > 0) { /* the decode rows' cache pointers and key counts, as batch_step writes them */
        int64_t *nk = (int64_t *)(b->htab + (size_t)2 * L_n * nd);
        for (int i = 0; i < nd; i++) {
            for (int l = 0; l < L_n; l++) {
                b->htab[(size_t)(2 * l) * nd + i] = it[i]->s->kc[l];
                b->htab[(size_t)(2 * l + 1) * nd + i] = it[i]->s->vc[l];
            }
            nk[i] = it[i]->s->pos + 1;
            if (nk[i] > max_keys) max_keys = nk[i];
        }
        be->write(be, b->tab, b->htab, (size_t)(2 * L_n + 1) * (size_t)nd * 8);
    }
    /* the rows the last layer carries on: the decode rows, then the last row of each prompt
     * item whose logits are read */
    int64_t R2 = nd;
    for (int i = 0; i < n; i++) orow[i] = i < nd ? r0[i] : wants_row(it[i]) ? R2++ : -1;
    if (m->tp) { /* every rank's share of the layers at once (its sessions' caches) */
        for (int i = 0; i < n; i++) {
            tss[i] = it[i]->s;
            tadd[i] = it[i]->n;
        }
        if (tp_batch_inputs(b, tss, tadd, n, nd, R, err)) goto done;
        layers_job j = {b, it, r0, orow, n, nd, R, R2, max_keys};
        glmv_tp_run(m->tp, layers_on_rank, &j);
    } else {
        mixed_layers(b, it, r0, orow, n, nd, R, R2, max_keys);
    }
    /* the rows whose logits are asked for, gathered into t1, through lm_head together (each as
     * it would be alone: matmul_rows) */
    int nl = 0;
    for (int i = 0; i < n; i++) {
        if (!wants_row(it[i])) continue;
        int e = i; /* a run of rows whose logits are asked for, one after another: one copy */
        while (e + 1 < n && wants_row(it[e + 1]) && orow[e + 1] == orow[e] + 1) e++;
        be->copy(be, b->t1 + nl * H, b->xn + orow[i] * H, sizeof(float) * (size_t)((e - i + 1) * H));
        nl += e - i + 1;
        i = e;
    }
    if (nl > 0) (be->matmul_rows ? be->matmul_rows : be->matmul)(be, b->logits_dev, b->t1, m->lm_head, NULL, nl);
    for (int i = 0, j = 0; i < n; i++) /* where each row goes */
        if (wants_row(it[i])) {
            lgs[j] = it[i]->logits;
            tps[j] = it[i]->top;
            tts[j++] = it[i]->top_sp;
        }
    if (read_rows(b, nl, lgs, tps, tts, err)) goto done;
    if (m->tp && tp_ranks_done(m, tss, tadd, n, err)) goto done;
    for (int i = 0; i < n; i++) { /* under the lock: sharing sessions read them */
        glmv_session *s = it[i]->s;
        if (it[i]->ids) memcpy(s->hist + s->pos, it[i]->ids, sizeof(int32_t) * (size_t)it[i]->n);
        s->pos += (int)it[i]->n;
    }
    rc = 0;
done:
    free(it);
    free(r0);
    free(orow);
    free(dids);
    free(tss);
    free(tadd);
    free(lgs);
    free(tps);
    free(tts);
    return rc;
}

static int eval_chunks(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, const int *counts, int n,
                       float *const *logits, glmv_top *const *top, char *err) {
    if (n <= 0) return 0;
    if (n > b->cap) return glmv_errc(err, GLMV_E_INVALID, "batch: %d sequences, room for %d", n, b->cap);
    glmv_batch_item *it = malloc(sizeof *it * (size_t)n);
    if (!it) return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (counts[i] <= 0) {
            free(it);
            return glmv_errc(err, GLMV_E_INVALID, "batch: sequence %d: %d ids", i, counts[i]);
        }
        it[i] = (glmv_batch_item){ss[i], counts[i], ids + off, NULL, NULL, 0, logits ? logits[i] : NULL,
                                  top ? top[i] : NULL, NULL};
        off += counts[i];
    }
    int rc = glmv_batch_eval(b, it, n, err);
    free(it);
    return rc;
}

int glmv_session_eval_chunks(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, const int *counts,
                             int n, float *const *logits, char *err) {
    return eval_chunks(b, ss, ids, counts, n, logits, NULL, err);
}

int glmv_session_eval_top(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, const int *counts, int n,
                          glmv_top *const *top, char *err) {
    return eval_chunks(b, ss, ids, counts, n, NULL, top, err);
}
