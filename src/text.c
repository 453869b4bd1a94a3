/* text.c -- the GLM-4 decoder of GLM-4.1V (GLM4V.md §3) over the op table:
 * per layer input RMSNorm, q/k/v projections with bias, interleaved partial
 * M-RoPE, causal GQA attention over the session's KV cache (post-RoPE keys),
 * o_proj, RMSNorm of the attention output, residual; pre-MLP RMSNorm, fused
 * gate_up SwiGLU MLP, RMSNorm of the MLP output, residual. Then the final norm
 * and lm_head for the last token only. Prompts run in chunks of s->chunk rows
 * through scratch buffers the session allocated once: nothing is allocated here.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "model.h"

/* ref: Glm4vTextModel.forward for rows [pos0, pos0 + n) (one chunk) */
static void forward_chunk(glmv_session *s, int64_t n, int want_logits, float *logits) {
    glmv_model *m = s->m;
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    int64_t H = c->hidden_size, I = c->intermediate_size;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads, hd = c->head_dim;
    int64_t qd = (int64_t)nh * hd, kvd = (int64_t)nkv * hd;
    int rot = (int)(hd * c->partial_rotary_factor + 0.5f);
    rot -= rot % 2;
    float eps = c->rms_norm_eps, scale = (float)(1.0 / sqrt((double)hd));
    int64_t pos0 = s->pos;

    for (int l = 0; l < c->num_hidden_layers; l++) {
        const glmv_text_layer *L = &m->layers[l];
        float *kc = s->kc[l] + pos0 * kvd, *vc = s->vc[l] + pos0 * kvd;
        /* ref: Glm4vTextAttention */
        be->rmsnorm(be, s->xn, s->x, L->input_layernorm, n, H, eps);
        be->matmul(be, s->q, s->xn, L->q_w, L->q_b, n);
        be->matmul(be, kc, s->xn, L->k_w, L->k_b, n);
        be->matmul(be, vc, s->xn, L->v_w, L->v_b, n);
        if (rot > 0) {
            be->rope_interleaved(be, s->q, qd, s->cos, s->sin, n, nh, hd, rot);
            be->rope_interleaved(be, kc, kvd, s->cos, s->sin, n, nkv, hd, rot);
        }
        be->attn_causal(be, s->att, s->q, qd, s->kc[l], s->vc[l], n, pos0, nh, nkv, hd, scale);
        be->matmul(be, s->t1, s->att, L->o_w, NULL, n);
        be->rmsnorm(be, s->t2, s->t1, L->post_self_attn_layernorm, n, H, eps);
        be->add(be, s->x, s->x, s->t2, n * H);
        /* ref: Glm4vTextMLP */
        be->rmsnorm(be, s->xn, s->x, L->post_attention_layernorm, n, H, eps);
        be->matmul(be, s->gu, s->xn, L->gate_up, NULL, n);
        be->swiglu(be, s->h, s->gu, 2 * I, s->gu + I, 2 * I, n, I);
        be->matmul(be, s->t1, s->h, L->down, NULL, n);
        be->rmsnorm(be, s->t2, s->t1, L->post_mlp_layernorm, n, H, eps);
        be->add(be, s->x, s->x, s->t2, n * H);
        if (m->hook) {
            char name[32];
            snprintf(name, sizeof name, "t.layer.%d", l);
            glmv_model_dump(m, name, s->x, n, H);
        }
    }
    if (m->hook) {
        be->rmsnorm(be, s->xn, s->x, m->norm, n, H, eps);
        glmv_model_dump(m, "t.norm", s->xn, n, H);
    }
    if (want_logits) {
        const float *last = s->x + (n - 1) * H;
        be->rmsnorm(be, s->xn, last, m->norm, 1, H, eps);
        be->matmul(be, s->logits_dev, s->xn, m->lm_head, NULL, 1);
        if (logits)
            be->read(be, logits, s->logits_dev, sizeof(float) * (size_t)c->vocab_size);
    }
}

int glmv_text_forward(glmv_session *s, const float *x, const int32_t *ids, const int32_t *pos,
                      int64_t n, float *logits, char *err) {
    glmv_model *m = s->m;
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    int64_t H = c->hidden_size;
    if (n <= 0) return glmv_errf(err, "no tokens to evaluate");
    if (s->pos + n > s->n_ctx)
        return glmv_errf(err, "context full: %d tokens cached + %lld new > n_ctx %d", s->pos,
                         (long long)n, s->n_ctx);
    if (ids)
        for (int64_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= c->vocab_size)
                return glmv_errf(err, "token id %d at %lld outside the vocabulary (%d)", ids[i],
                                 (long long)i, c->vocab_size);
    int rot = (int)(c->head_dim * c->partial_rotary_factor + 0.5f);
    rot -= rot % 2;
    size_t tab = sizeof(float) * (size_t)(rot / 2);
    for (int64_t off = 0; off < n; off += s->chunk) {
        int64_t k = GLMV_MIN((int64_t)s->chunk, n - off);
        if (x)
            be->copy(be, s->x, x + off * H, sizeof(float) * (size_t)(k * H));
        else
            glmv_model_embed(m, s->x, ids + off, k, s->hemb, s->chunk);
        /* positions of this chunk as (3, k) on the host, then the rope tables */
        for (int a = 0; a < 3; a++) memcpy(s->hpos + a * k, pos + a * n + off, sizeof(int32_t) * (size_t)k);
        glmv_rope_text_table(c, s->hpos, k, k, s->hcos, s->hsin);
        be->write(be, s->cos, s->hcos, tab * (size_t)k);
        be->write(be, s->sin, s->hsin, tab * (size_t)k);
        if (m->hook && off == 0 && x) glmv_model_dump(m, "t.inputs_embeds", x, n, H);
        int last = off + k == n;
        forward_chunk(s, k, last, last ? logits : NULL);
        if (ids) memcpy(s->hist + s->pos, ids + off, sizeof(int32_t) * (size_t)k);
        s->pos += (int)k;
    }
    be->sync(be);
    return 0;
}
