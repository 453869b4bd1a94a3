/* model.c -- loading a GLM-4.1V checkpoint: config, weights bound by their
 * Hugging Face names with their shapes checked against the config, the
 * backend (CPU, or CUDA when built with it), tokenizer and chat template.
 * Also the activation dumps (GLMV_DUMP=dir writes <dir>/<name>.f32 rows with
 * the names of scripts/make_tiny_fixtures.py) and the small public queries.
 * The forward passes live in vision.c and text.c; generation in session.c.
 */
#include "model.h"

#define ROW_PAD 4 /* floats before a logits row (glmv_logits_new) */
#include "gguf_model.h"
#include "quant.h"
#include "schema.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "cpu/threads.h"
#include "tokenizer.h"

/* ------------------------------------------------------------------ params */

void glmv_model_params_default(glmv_model_params *p) {
    memset(p, 0, sizeof *p);
    p->device = GLMV_DEVICE_AUTO;
    p->max_decode_pixels = 178956970;
}

void glmv_sampling_default(const glmv_model *m, glmv_sampling *s) {
    memset(s, 0, sizeof *s);
    s->temperature = 1.0f;
    s->top_p = 1.0f;
    s->repetition_penalty = 1.0f;
    if (!m) return;
    const glmv_config *c = &m->cfg;
    s->do_sample = c->gen_do_sample;
    if (c->gen_temperature > 0) s->temperature = c->gen_temperature;
    s->top_k = c->gen_top_k;
    if (c->gen_top_p > 0) s->top_p = c->gen_top_p;
    if (c->gen_repetition_penalty > 0) s->repetition_penalty = c->gen_repetition_penalty;
    s->max_new_tokens = c->gen_max_new_tokens;
}

/* ------------------------------------------------------------------ dumps */

static void dump_to_dir(void *user, const char *name, const float *data, int64_t rows,
                        int64_t cols) {
    glmv_model *m = user;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.f32", m->dump_dir, name);
    FILE *f = fopen(path, "ab"); /* prefill chunks append rows */
    if (!f) {
        glmv_log(0, "GLMV_DUMP: cannot write %s: %s", path, strerror(errno));
        return;
    }
    fwrite(data, sizeof(float), (size_t)(rows * cols), f);
    fclose(f);
    glmv_log(2, "dump %s [%lld, %lld]", name, (long long)rows, (long long)cols);
}

void glmv_model_set_hook(glmv_model *m, glmv_act_hook hook, void *user) {
    m->hook = hook;
    m->hook_user = user;
    if (!hook && m->dump_dir[0]) {
        m->hook = dump_to_dir;
        m->hook_user = m;
    }
}

void glmv_model_dump(glmv_model *m, const char *name, const float *x, int64_t rows, int64_t cols) {
    if (!m->hook || rows <= 0) return;
    size_t bytes = glmv_mul_size((size_t)(rows * cols), sizeof(float));
    float *h = malloc(bytes);
    if (!h) return;
    m->be->read(m->be, h, x, bytes);
    m->hook(m->hook_user, name, h, rows, cols);
    free(h);
}

/* ------------------------------------------------------------------ binding */

typedef struct {
    glmv_model *m;
    char *err;
    int fail;
} binder;

/* Required tensor of this exact shape (dims terminated by -1). */
static glmv_tensor *req(binder *b, const char *fmt, int idx, int64_t d0, int64_t d1, int64_t d2,
                        int64_t d3, int64_t d4) {
    if (b->fail) return NULL;
    char name[256];
    snprintf(name, sizeof name, fmt, idx);
    int64_t shape[5] = {d0, d1, d2, d3, d4};
    int nd = 0;
    while (nd < 5 && shape[nd] >= 0) nd++;
    glmv_tensor *t = NULL;
    if (glmv_weights_require(b->m->w, name, nd, shape, &t, b->err) != 0) {
        b->fail = 1;
        return NULL;
    }
    return t;
}
#define REQ1(b, f, i, a) req(b, f, i, a, -1, -1, -1, -1)
#define REQ2(b, f, i, a, c) req(b, f, i, a, c, -1, -1, -1)

/* Optional bias: absent is fine, present must have n elements. */
static glmv_tensor *opt1(binder *b, const char *fmt, int idx, int64_t n) {
    if (b->fail) return NULL;
    char name[256];
    snprintf(name, sizeof name, fmt, idx);
    if (!glmv_weights_find(b->m->w, name)) return NULL;
    return REQ1(b, fmt, idx, n);
}

static int bind_weights(glmv_model *m, char *err) {
    const glmv_config *c = &m->cfg;
    binder b = {m, err, 0};
    int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t qd = (int64_t)c->num_attention_heads * c->head_dim;
    int64_t kvd = (int64_t)c->num_key_value_heads * c->head_dim;
    const char *tp = "model.language_model.";
    char f[256];

    snprintf(f, sizeof f, "%sembed_tokens.weight", tp);
    m->embed = REQ2(&b, f, 0, V, H);
    m->layers = calloc((size_t)c->num_hidden_layers, sizeof *m->layers);
    if (!m->layers) return glmv_errf(err, "out of memory binding %d layers", c->num_hidden_layers);
    for (int l = 0; l < c->num_hidden_layers && !b.fail; l++) {
        glmv_text_layer *L = &m->layers[l];
#define TL(s) "model.language_model.layers.%d." s
        L->input_layernorm = REQ1(&b, TL("input_layernorm.weight"), l, H);
        L->q_w = REQ2(&b, TL("self_attn.q_proj.weight"), l, qd, H);
        L->k_w = REQ2(&b, TL("self_attn.k_proj.weight"), l, kvd, H);
        L->v_w = REQ2(&b, TL("self_attn.v_proj.weight"), l, kvd, H);
        if (c->attention_bias) {
            L->q_b = REQ1(&b, TL("self_attn.q_proj.bias"), l, qd);
            L->k_b = REQ1(&b, TL("self_attn.k_proj.bias"), l, kvd);
            L->v_b = REQ1(&b, TL("self_attn.v_proj.bias"), l, kvd);
        }
        L->o_w = REQ2(&b, TL("self_attn.o_proj.weight"), l, H, qd);
        L->post_self_attn_layernorm = REQ1(&b, TL("post_self_attn_layernorm.weight"), l, H);
        L->post_attention_layernorm = REQ1(&b, TL("post_attention_layernorm.weight"), l, H);
        L->gate_up = REQ2(&b, TL("mlp.gate_up_proj.weight"), l, 2 * I, H);
        L->down = REQ2(&b, TL("mlp.down_proj.weight"), l, H, I);
        L->post_mlp_layernorm = REQ1(&b, TL("post_mlp_layernorm.weight"), l, H);
#undef TL
    }
    snprintf(f, sizeof f, "%snorm.weight", tp);
    m->norm = REQ1(&b, f, 0, H);
    if (c->tie_word_embeddings && !glmv_weights_find(m->w, "lm_head.weight"))
        m->lm_head = m->embed;
    else
        m->lm_head = REQ2(&b, "lm_head.weight", 0, V, H);
    if (b.fail) return -1;

    /* vision tower: present in every GLM-4.1V checkpoint; a text-only folder works without */
    m->has_vision = glmv_weights_find(m->w, "model.visual.patch_embed.proj.weight") != NULL;
    if (!m->has_vision) return 0;
    int64_t Hv = c->v_hidden_size, Ov = c->v_out_hidden_size, Iv = c->v_intermediate_size;
    int64_t P = c->v_patch_size, T = c->v_temporal_patch_size, Cin = c->v_in_channels;
    int64_t S = c->v_image_size / c->v_patch_size, ms = c->v_spatial_merge_size;
    m->patch_w = req(&b, "model.visual.patch_embed.proj.weight", 0, Hv, Cin, T, P, P);
    m->patch_b = opt1(&b, "model.visual.patch_embed.proj.bias", 0, Hv);
    m->post_conv_norm = REQ1(&b, "model.visual.post_conv_layernorm.weight", 0, Hv);
    m->pos_embed = REQ2(&b, "model.visual.embeddings.position_embedding.weight", 0, S * S, Hv);
    m->blocks = calloc((size_t)c->v_depth, sizeof *m->blocks);
    if (!m->blocks) return glmv_errf(err, "out of memory binding %d vision blocks", c->v_depth);
    for (int l = 0; l < c->v_depth && !b.fail; l++) {
        glmv_vision_block *B = &m->blocks[l];
#define VB(s) "model.visual.blocks.%d." s
        B->norm1 = REQ1(&b, VB("norm1.weight"), l, Hv);
        B->qkv_w = REQ2(&b, VB("attn.qkv.weight"), l, 3 * Hv, Hv);
        B->qkv_b = opt1(&b, VB("attn.qkv.bias"), l, 3 * Hv);
        B->proj_w = REQ2(&b, VB("attn.proj.weight"), l, Hv, Hv);
        B->proj_b = opt1(&b, VB("attn.proj.bias"), l, Hv);
        B->norm2 = REQ1(&b, VB("norm2.weight"), l, Hv);
        B->gate_w = REQ2(&b, VB("mlp.gate_proj.weight"), l, Ov, Hv);
        B->gate_b = opt1(&b, VB("mlp.gate_proj.bias"), l, Ov);
        B->up_w = REQ2(&b, VB("mlp.up_proj.weight"), l, Ov, Hv);
        B->up_b = opt1(&b, VB("mlp.up_proj.bias"), l, Ov);
        B->down_w = REQ2(&b, VB("mlp.down_proj.weight"), l, Hv, Ov);
        B->down_b = opt1(&b, VB("mlp.down_proj.bias"), l, Hv);
#undef VB
    }
    m->post_norm = REQ1(&b, "model.visual.post_layernorm.weight", 0, Hv);
    m->ds_w = req(&b, "model.visual.downsample.weight", 0, Ov, Hv, ms, ms, -1);
    m->ds_b = opt1(&b, "model.visual.downsample.bias", 0, Ov);
    m->mg_proj = REQ2(&b, "model.visual.merger.proj.weight", 0, Ov, Ov);
    m->mg_ln_w = REQ1(&b, "model.visual.merger.post_projection_norm.weight", 0, Ov);
    m->mg_ln_b = REQ1(&b, "model.visual.merger.post_projection_norm.bias", 0, Ov);
    m->mg_gate = REQ2(&b, "model.visual.merger.gate_proj.weight", 0, Iv, Ov);
    m->mg_up = REQ2(&b, "model.visual.merger.up_proj.weight", 0, Iv, Ov);
    m->mg_down = REQ2(&b, "model.visual.merger.down_proj.weight", 0, Ov, Iv);
    return b.fail ? -1 : 0;
}

/* ------------------------------------------------------------------ quantization */

int glmv_quant_parse(const char *s, glmv_quant *out) {
    if (!s) return -1;
    if (!strcasecmp(s, "none") || !strcasecmp(s, "bf16")) *out = GLMV_QUANT_NONE;
    else if (!strcasecmp(s, "q8_0") || !strcasecmp(s, "q8")) *out = GLMV_QUANT_Q8_0;
    else if (!strcasecmp(s, "q4_0") || !strcasecmp(s, "q4")) *out = GLMV_QUANT_Q4_0;
    else if (!strcasecmp(s, "q4_k_m")) *out = GLMV_QUANT_Q4_K_M;
    else return -1;
    return 0;
}

static const char *quant_name(glmv_quant q) {
    return q == GLMV_QUANT_Q8_0   ? "q8_0"
           : q == GLMV_QUANT_Q4_0 ? "q4_0"
           : q == GLMV_QUANT_Q4_K_M ? "q4_k_m"
                                    : "none";
}

/* t to `to` (a block format) unless it is already in blocks or its rows are not whole blocks */
static int quantize_one(glmv_model *m, glmv_tensor *t, glmv_dtype to, char *err) {
    if (!t || glmv_dtype_is_quant(t->dtype) || glmv_tensor_cols(t) % glmv_dtype_block(to)) return 0;
    void *buf;
    const void *old = t->host ? t->host : t->data;
    size_t old_bytes = glmv_dtype_row_bytes(t->dtype, glmv_tensor_cols(t)) * (size_t)glmv_tensor_rows(t);
    void **nb = realloc(m->quant_bufs, sizeof *nb * (size_t)(m->n_quant_bufs + 1));
    if (!nb) return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
    m->quant_bufs = nb;
    if (glmv_tensor_quantize(t, to, m->params.n_threads > 0 ? m->params.n_threads : glmv_cpu_count(), &buf, err))
        return -1;
    m->quant_bufs[m->n_quant_bufs++] = buf;
    glmv_weights_release(m->w, old, old_bytes); /* the checkpoint's bytes are not read again */
    return 0;
}

/* llama.cpp's use_more_bits: the layers whose v and down its _M recipes give more bits (the
 * first and last eighth, every third between) */
static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* A K format for rows of `cols`, or llama.cpp's fallback where they are not whole blocks of
 * 256 (Q4_K -> Q5_0, Q6_K -> Q8_0: the 9B's down projection has 13,696 columns). */
static glmv_dtype k_fit(glmv_dtype want, int64_t cols) {
    if (cols % GLMV_QK_K == 0) return want;
    return want == GLMV_Q4_K ? GLMV_Q5_0 : GLMV_Q8_0;
}

/* The decoder's matrices, the output matrix and the token table by llama.cpp's recipes, tensor
 * for tensor (llama_tensor_get_type for this architecture), so that the blocks are the ones
 * llama-quantize writes: Q8_0 everywhere; Q4_0 with the output matrix in Q6_K (the matrix most
 * sensitive to 4 bits); Q4_K_M: Q4_K, with Q6_K for the output matrix and for v and down of
 * the more_bits layers. The vision tower and the norms keep the checkpoint's dtype. */
static int quantize_weights(glmv_model *m, char *err) {
    glmv_quant q = m->params.quant;
    if (q == GLMV_QUANT_NONE) return 0;
    int nl = m->cfg.num_hidden_layers, km = q == GLMV_QUANT_Q4_K_M;
    glmv_dtype to = q == GLMV_QUANT_Q8_0 ? GLMV_Q8_0 : GLMV_Q4_0;
    for (int l = 0; l < nl; l++) {
        glmv_text_layer *L = &m->layers[l];
        glmv_tensor *ws[] = {L->q_w, L->k_w, L->v_w, L->o_w, L->gate_up, L->down};
        for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) {
            glmv_dtype t = to;
            if (km && ws[i]) {
                int wide = (ws[i] == L->v_w || ws[i] == L->down) && more_bits(l, nl);
                t = k_fit(wide ? GLMV_Q6_K : GLMV_Q4_K, glmv_tensor_cols(ws[i]));
            }
            if (quantize_one(m, ws[i], t, err)) return -1;
        }
    }
    if (m->lm_head != m->embed) { /* (a shared table stays as it is: a device needs it unquantized) */
        int64_t hc = glmv_tensor_cols(m->lm_head), ec = glmv_tensor_cols(m->embed);
        if (quantize_one(m, m->lm_head, q == GLMV_QUANT_Q8_0 ? GLMV_Q8_0 : k_fit(GLMV_Q6_K, hc), err)) return -1;
        if (quantize_one(m, m->embed, km ? k_fit(GLMV_Q4_K, ec) : to, err)) return -1;
    }
    return 0;
}

/* What the decoder's matrices hold: "q4_k_m" where there is Q4_K, else q_proj's format. */
static const char *held_quant(const glmv_model *m) {
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        const glmv_text_layer *L = &m->layers[l];
        const glmv_tensor *ws[] = {L->q_w, L->k_w, L->v_w, L->o_w, L->gate_up, L->down};
        for (size_t i = 0; i < sizeof ws / sizeof *ws; i++)
            if (ws[i] && ws[i]->dtype == GLMV_Q4_K) return "q4_k_m";
    }
    switch (m->layers[0].q_w->dtype) {
    case GLMV_Q8_0: return "q8_0";
    case GLMV_Q4_0: return "q4_0";
    case GLMV_Q5_0: return "q5_0";
    case GLMV_Q6_K: return "q6_k";
    default: return "none";
    }
}

/* Matrices that read the same input as one matrix of their rows stacked (and one bias), on a
 * device: one product (one launch, one rounding of the input, a wider GEMM) instead of several.
 * Each decoder layer's q, k and v (where the backend can copy the joined product's k and v
 * columns into the caches: copy_rows), and the vision tower's gate and up projections, each
 * block's and the merger's (the SwiGLU reads the two halves of the joined rows). A block format's
 * rows are whole blocks, so quantized matrices join as well. The parts stay in the weights table,
 * not uploaded: their mmap'd pages are handed back, buffers made at load freed
 * (free_uploaded_quant). Parts that differ in dtype or width (a GGUF recipe may) stay apart. On a
 * device the joined host bytes are freed once uploaded. GLMV_JOIN_QKV=1 joins on the CPU too
 * (tests: the CPU then runs the joined paths), =0 nowhere. */
static int join_rows(glmv_model *m, glmv_tensor *const *w, glmv_tensor *const *b, int n, const char *name,
                     glmv_tensor **out_w, glmv_tensor **out_b, char *err) {
    int ok = 1, nb = 0;
    for (int i = 0; i < n; i++) {
        ok &= w[i] && w[i]->dtype == w[0]->dtype && glmv_tensor_cols(w[i]) == glmv_tensor_cols(w[0]) && w[i]->ndim == 2;
        nb += b[i] != NULL;
        if (b[i] && b[0]) ok &= b[i]->dtype == b[0]->dtype && !glmv_dtype_is_quant(b[i]->dtype);
    }
    if (!ok || (nb != 0 && nb != n)) return 0;
    int j = m->n_joined;
    glmv_tensor *jw = &m->joined[j], *jb = &m->joined[j + 1];
    int64_t cols = glmv_tensor_cols(w[0]), rows = 0;
    size_t rb = glmv_dtype_row_bytes(w[0]->dtype, cols), off = 0;
    for (int i = 0; i < n; i++) rows += glmv_tensor_rows(w[i]);
    snprintf(m->joined_names[j], sizeof m->joined_names[j], "%s (joined)", name);
    snprintf(m->joined_names[j + 1], sizeof m->joined_names[j + 1], "%s bias (joined)", name);
    *jw = (glmv_tensor){.name = m->joined_names[j], .dtype = w[0]->dtype, .ndim = 2, .shape = {rows, cols}};
    jw->data = jw->host = glmv_aligned_alloc(glmv_mul_size((size_t)rows, rb));
    if (!jw->data) return glmv_errc(err, GLMV_E_NOMEM, "out of memory joining %s", jw->name);
    m->n_joined += 2; /* freed from here on */
    for (int i = 0; i < n; i++) {
        size_t bytes = rb * (size_t)glmv_tensor_rows(w[i]);
        memcpy((char *)jw->data + off, w[i]->host ? w[i]->host : w[i]->data, bytes);
        off += bytes;
    }
    if (nb) {
        size_t es = glmv_dtype_size(b[0]->dtype);
        *jb = (glmv_tensor){.name = m->joined_names[j + 1], .dtype = b[0]->dtype, .ndim = 1, .shape = {rows}};
        jb->data = jb->host = glmv_aligned_alloc(glmv_mul_size((size_t)rows, es));
        if (!jb->data) return glmv_errc(err, GLMV_E_NOMEM, "out of memory joining %s", jb->name);
        off = 0;
        for (int i = 0; i < n; i++) {
            size_t bytes = es * (size_t)glmv_tensor_numel(b[i]);
            memcpy((char *)jb->data + off, b[i]->host ? b[i]->host : b[i]->data, bytes);
            off += bytes;
        }
    }
    *out_w = jw;
    if (out_b) *out_b = nb ? jb : NULL;
    return 0;
}

static int join_weights(glmv_model *m, char *err) {
    int nl = m->cfg.num_hidden_layers, nv = m->has_vision ? m->cfg.v_depth : 0;
    const char *e = getenv("GLMV_JOIN_QKV");
    if (!(e ? strcmp(e, "0") != 0 : m->be->caps.device)) return 0;
    int qkv = m->be->copy_rows != NULL, cap = 2 * ((qkv ? nl : 0) + nv + (m->has_vision ? 1 : 0));
    if (!cap) return 0;
    m->joined = calloc((size_t)cap, sizeof *m->joined);
    m->joined_names = calloc((size_t)cap, sizeof *m->joined_names);
    if (!m->joined || !m->joined_names) return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
    char name[96];
    for (int l = 0; qkv && l < nl; l++) {
        glmv_text_layer *L = &m->layers[l];
        glmv_tensor *w[3] = {L->q_w, L->k_w, L->v_w}, *b[3] = {L->q_b, L->k_b, L->v_b};
        snprintf(name, sizeof name, "model.language_model.layers.%d.self_attn.qkv", l);
        if (join_rows(m, w, b, 3, name, &L->qkv_w, &L->qkv_b, err)) return -1;
    }
    for (int l = 0; l < nv; l++) {
        glmv_vision_block *B = &m->blocks[l];
        glmv_tensor *w[2] = {B->gate_w, B->up_w}, *b[2] = {B->gate_b, B->up_b};
        snprintf(name, sizeof name, "model.visual.blocks.%d.mlp.gate_up", l);
        if (join_rows(m, w, b, 2, name, &B->gate_up_w, &B->gate_up_b, err)) return -1;
    }
    if (m->has_vision) {
        glmv_tensor *w[2] = {m->mg_gate, m->mg_up}, *b[2] = {NULL, NULL};
        if (join_rows(m, w, b, 2, "model.visual.merger.gate_up", &m->mg_gate_up, NULL, err)) return -1;
    }
    return 0;
}

/* On a device, the block-format buffers made at load (--quant) once the device holds the
 * blocks, and those of matrices join_weights took into joined ones: nothing reads them again (a
 * model on a device is not saved), and for the 9B they are 5 to 10 GB of host memory. */
static void free_uploaded_quant(glmv_model *m) {
    for (int64_t i = 0; i < glmv_weights_count(m->w); i++) {
        glmv_tensor *t = glmv_weights_at(m->w, i);
        if (!glmv_dtype_is_quant(t->dtype) || !t->host || (t == m->embed && m->embed_on_host)) continue;
        for (int b = 0; b < m->n_quant_bufs; b++)
            if (m->quant_bufs[b] == t->host) {
                if (t->data == t->host) t->data = NULL; /* joined away: never uploaded */
                free(m->quant_bufs[b]);
                m->quant_bufs[b] = NULL;
                t->host = NULL;
                break;
            }
    }
}

/* a tensor that join_weights took into a joined one: not uploaded */
static int joined_away(const glmv_model *m, const glmv_tensor *t) {
    for (int l = 0; m->joined && l < m->cfg.num_hidden_layers; l++) {
        const glmv_text_layer *L = &m->layers[l];
        if (L->qkv_w && (t == L->q_w || t == L->k_w || t == L->v_w || t == L->q_b || t == L->k_b || t == L->v_b))
            return 1;
    }
    for (int l = 0; m->joined && m->has_vision && l < m->cfg.v_depth; l++) {
        const glmv_vision_block *B = &m->blocks[l];
        if (B->gate_up_w && (t == B->gate_w || t == B->up_w || t == B->gate_b || t == B->up_b)) return 1;
    }
    return m->joined && m->mg_gate_up && (t == m->mg_gate || t == m->mg_up);
}

/* F16 matrices (a GGUF mmproj's) on a device that multiplies bf16: its GEMMs round
 * their inputs to bf16 anyway, and its kernels for bf16 weights are the fast ones
 * (F16 weights take a plain fp32 path there). */
static int f16_to_bf16(glmv_model *m, char *err) {
    for (int64_t i = 0; i < glmv_weights_count(m->w); i++) {
        glmv_tensor *t = glmv_weights_at(m->w, i);
        if (t->dtype != GLMV_F16 || t->ndim < 2) continue;
        int64_t n = glmv_tensor_numel(t);
        uint16_t *b = glmv_aligned_alloc(glmv_mul_size((size_t)n, 2));
        void **nb = realloc(m->quant_bufs, sizeof *nb * (size_t)(m->n_quant_bufs + 1));
        if (!b || !nb) {
            free(b);
            if (nb) m->quant_bufs = nb;
            return glmv_errc(err, GLMV_E_NOMEM, "out of memory converting %s to bf16", t->name);
        }
        m->quant_bufs = nb;
        m->quant_bufs[m->n_quant_bufs++] = b;
        const uint16_t *h = t->host ? t->host : t->data;
        for (int64_t k = 0; k < n; k++) b[k] = glmv_f32_to_bf16(glmv_f16_to_f32(h[k]));
        t->dtype = GLMV_BF16;
        t->data = t->host = b;
    }
    return 0;
}

/* ------------------------------------------------------------------ backend */

int glmv_precision_parse(const char *s, glmv_precision *out) {
    if (!s) return -1;
    if (!strcmp(s, "f32") || !strcmp(s, "fp32") || !strcmp(s, "float32")) *out = GLMV_PRECISION_F32;
    else if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16")) *out = GLMV_PRECISION_BF16;
    else if (!strcmp(s, "auto")) *out = GLMV_PRECISION_AUTO;
    else return -1;
    return 0;
}

/* The precision asked for: the parameter, else $GLMV_PRECISION, else AUTO
 * (the device's default, decided once the device is known). */
static int wanted_precision(const glmv_model_params *p, glmv_precision *out, const char **why,
                            char *err) {
    *out = p->precision;
    *why = "asked for";
    if (*out != GLMV_PRECISION_AUTO) return 0;
    const char *e = getenv("GLMV_PRECISION");
    if (e && *e) {
        if (glmv_precision_parse(e, out))
            return glmv_errf(err, "GLMV_PRECISION=%s: expected f32, bf16 or auto", e);
        *why = "GLMV_PRECISION";
    }
    return 0;
}

/* Record what the backend does; say so when bf16 was asked for and the
 * hardware cannot multiply bf16 (the math then stays float32). */
static void set_precision(glmv_model *m, glmv_precision want, const char *why, int device_bf16) {
    m->precision = m->be->bf16 ? "bf16" : "f32";
    if (want == GLMV_PRECISION_AUTO)
        snprintf(m->precision_why, sizeof m->precision_why, "the default on %s",
                 device_bf16 ? "CUDA" : "the CPU");
    else if (want == GLMV_PRECISION_BF16 && !m->be->bf16)
        snprintf(m->precision_why, sizeof m->precision_why,
                 "bf16 %s, but %s has no bf16 products (AVX512-BF16)", why, m->be->name);
    else
        snprintf(m->precision_why, sizeof m->precision_why, "%s", why);
    if (want == GLMV_PRECISION_BF16 && !m->be->bf16)
        glmv_log(1, "precision: %s; computing in f32", m->precision_why);
}

static int make_backend(glmv_model *m, const glmv_model_params *p, char *err) {
    char e2[GLMV_ERR_SIZE] = "";
    glmv_precision want;
    const char *why;
    if (wanted_precision(p, &want, &why, err)) return -1;
#ifdef GLMV_CUDA
    if (p->device == GLMV_DEVICE_CUDA || p->device == GLMV_DEVICE_AUTO) {
        m->be = glmv_cuda_backend_new(0, want != GLMV_PRECISION_F32, e2);
        if (m->be) {
            snprintf(m->device, sizeof m->device, "cuda (%s)",
                     m->be->device_name ? m->be->device_name : m->be->name);
            set_precision(m, want, why, 1);
            return 0;
        }
        if (p->device == GLMV_DEVICE_CUDA) return glmv_errf(err, "CUDA backend: %s", e2);
        if (strstr(e2, "GLMV_KV_BF16")) return glmv_errf(err, "%s", e2); /* not the device's fault */
        glmv_log(1, "no CUDA device (%s); using the CPU", e2);
    }
#else
    if (p->device == GLMV_DEVICE_CUDA)
        return glmv_errf(err, "this glmv was built without CUDA (make CUDA=1)");
#endif
    m->be = glmv_cpu_backend_new(p->n_threads, GLMV_SIMD_AUTO, want == GLMV_PRECISION_BF16, e2);
    if (!m->be) return glmv_errf(err, "CPU backend: %s", e2);
    snprintf(m->device, sizeof m->device, "cpu (%s)", m->be->name);
    set_precision(m, want, why, 0);
    return 0;
}

/* an environment switch: set to a positive number */
static int env_flag(const char *name) {
    const char *v = getenv(name);
    return v && atoi(v) > 0;
}

/* "synthetic:9b[,layers=N][,seed=S]" */
static int parse_synthetic(const char *dir, int *layers, uint64_t *seed, char *err) {
    const char *s = dir + strlen("synthetic:");
    if (strncmp(s, "9b", 2) != 0)
        return glmv_errf(err, "%s: unknown synthetic model (expected synthetic:9b[,layers=N][,seed=S])", dir);
    s += 2;
    *layers = 0;
    *seed = 1;
    while (*s == ',') {
        s++;
        if (!strncmp(s, "layers=", 7)) {
            *layers = atoi(s + 7);
            if (*layers < 1 || *layers > 40) return glmv_errf(err, "%s: layers must be 1..40", dir);
        } else if (!strncmp(s, "seed=", 5)) {
            *seed = strtoull(s + 5, NULL, 10);
        } else {
            return glmv_errf(err, "%s: unknown option at '%s'", dir, s);
        }
        while (*s && *s != ',') s++;
    }
    if (*s) return glmv_errf(err, "%s: trailing characters '%s'", dir, s);
    return 0;
}

/* The GLM-4.1V prompt is built from these strings (chat.c) and the media
 * placeholders are found by the config's ids (session.c): a tokenizer.json
 * that lacks them as single tokens, or maps them elsewhere, would feed the
 * model a prompt it never saw in training (a silently wrong answer), so the
 * load is refused. An id of -1 in want means: any single token. */
static int check_prompt_tokens(const glmv_model *m, const char *dir, char *err) {
    const glmv_config *c = &m->cfg;
    const struct { const char *text; int32_t want; } need[] = {
        {"[gMASK]", -1}, {"<sop>", -1}, {"<|system|>", -1}, {"<|user|>", -1},
        {"<|assistant|>", -1},
        {"<|begin_of_image|>", c->image_start_token_id}, {"<|image|>", c->image_token_id},
        {"<|end_of_image|>", c->image_end_token_id},
        {"<|begin_of_video|>", c->video_start_token_id}, {"<|video|>", c->video_token_id},
        {"<|end_of_video|>", c->video_end_token_id},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        int32_t *ids = NULL;
        char e2[GLMV_ERR_SIZE];
        int64_t n = glmv_tokenize(m->tok, need[i].text, strlen(need[i].text), &ids, e2);
        int32_t id = n == 1 ? ids[0] : -1;
        free(ids);
        if (n < 0) return glmv_errf(err, "%s%s: %s", dir, m->is_gguf ? "" : "/tokenizer.json", e2);
        if (n != 1)
            return glmv_errf(err,
                             "%s%s: \"%s\" of the GLM-4.1V prompt format is not one token "
                             "(it encodes to %lld; added_tokens missing?)",
                             dir, m->is_gguf ? "" : "/tokenizer.json", need[i].text, (long long)n);
        if (need[i].want >= 0 && id != need[i].want)
            return glmv_errf(err,
                             "%s/tokenizer.json: \"%s\" is token %d but config.json says %d",
                             dir, need[i].text, id, need[i].want);
    }
    return 0;
}

/* Are the decoder's matrices in a block format (a quantized GGUF)? */
static int c_has_quant(const glmv_model *m) {
    return m->cfg.num_hidden_layers > 0 && m->layers && m->layers[0].q_w &&
           glmv_dtype_is_quant(m->layers[0].q_w->dtype);
}

static int file_exists(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, R_OK) == 0;
}

int glmv_model_load(glmv_model **out, const char *dir, const glmv_model_params *p, char *err) {
    double t0 = glmv_now_ms();
    *out = NULL;
    glmv_model_params defp;
    if (!p) {
        glmv_model_params_default(&defp);
        p = &defp;
    }
    glmv_model *m = calloc(1, sizeof *m);
    if (!m) return glmv_errf(err, "out of memory");
    pthread_mutex_init(&m->run_mu, NULL);
    pthread_mutex_init(&m->rows_mu, NULL);
    pthread_cond_init(&m->run_cv, NULL);
    m->params = *p;
    if (!m->params.max_decode_pixels) m->params.max_decode_pixels = 178956970;
    int synthetic = !strncmp(dir, "synthetic:", 10), gguf = 0;
    char gtext[4096], gmm[4096];
    glmv_gguf_model gm;
    memset(&gm, 0, sizeof gm);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    if (p->tokenizer && !synthetic) {
        glmv_errc(err, GLMV_E_INVALID, "--tokenizer %s: a tokenizer folder goes with a synthetic model; %s has its "
                  "own", p->tokenizer, dir);
        goto fail;
    }
    if (synthetic && p->tokenizer && !file_exists(p->tokenizer, "tokenizer.json")) {
        glmv_errc(err, GLMV_E_INVALID, "--tokenizer %s: no tokenizer.json there", p->tokenizer);
        goto fail;
    }
    if (synthetic) {
        int layers = 0;
        uint64_t seed = 1;
        if (parse_synthetic(dir, &layers, &seed, err)) goto fail;
        glmv_config_preset_9b(&m->cfg, layers);
        if (glmv_weights_synthetic(&m->w, &m->cfg, seed, err)) goto fail;
        snprintf(m->name, sizeof m->name, "%s", dir);
    } else {
        gguf = glmv_gguf_locate(dir, p->mmproj, gtext, gmm, sizeof gtext, err);
        if (gguf < 0) goto fail;
        if (!gguf && p->mmproj && *p->mmproj) {
            glmv_errc(err, GLMV_E_INVALID, "--mmproj %s: an mmproj goes with a GGUF text model, and %s is "
                      "not one (a Hugging Face folder holds its vision tower)", p->mmproj, dir);
            goto fail;
        }
        if (gguf) {
            int nt = p->n_threads > 0 ? p->n_threads : glmv_cpu_count();
            if (glmv_gguf_model_load(&gm, gtext, gmm, nt, err)) goto fail;
            m->cfg = gm.cfg;
            m->w = gm.w;
            m->tok = gm.tok;
            gm.w = NULL, gm.tok = NULL;
            m->is_gguf = 1;
            snprintf(m->gguf_notes, sizeof m->gguf_notes, "%s", gm.notes);
        } else {
            if (glmv_config_load(&m->cfg, dir, err)) goto fail;
            if (glmv_weights_open(&m->w, dir, err)) goto fail;
        }
        const char *base = strrchr(dir, '/');
        while (base && base[1] == 0 && base > dir) { /* trailing slash */
            const char *q = base - 1;
            while (q > dir && *q != '/') q--;
            base = q;
        }
        snprintf(m->name, sizeof m->name, "%s", base ? base + (*base == '/') : dir);
        size_t nl = strlen(m->name);
        if (nl && m->name[nl - 1] == '/') m->name[nl - 1] = 0;
        nl = strlen(m->name);
        if (nl > 5 && !strcmp(m->name + nl - 5, ".gguf")) m->name[nl - 5] = 0;
    }
    if (bind_weights(m, err)) goto fail;
    m->t_nh = m->cfg.num_attention_heads;
    m->t_nkv = m->cfg.num_key_value_heads;
    m->t_I = m->cfg.intermediate_size;
    if (c_has_quant(m)) {
        const char *have = held_quant(m);
        if (m->is_gguf)
            snprintf(m->quant_desc, sizeof m->quant_desc, "%s (from the GGUF%s%s)", have,
                     m->gguf_notes[0] ? "; " : "", m->gguf_notes);
        else
            snprintf(m->quant_desc, sizeof m->quant_desc, "%s (from the folder, glmv quantize)", have);
        if (p->quant != GLMV_QUANT_NONE && strcmp(quant_name(p->quant), have)) {
            glmv_errc(err, GLMV_E_INVALID, "--quant %s: the matrices of %s are already %s; load it without "
                      "--quant (or quantize the BF16 checkpoint)", quant_name(p->quant), dir, have);
            goto fail;
        }
    }
    if (make_backend(m, p, err)) goto fail;
    if (m->be->caps.device && m->embed == m->lm_head && glmv_dtype_is_quant(m->embed->dtype)) {
        glmv_errc(err, GLMV_E_INVALID, "%s: the token table is also the output matrix and is %s: on %s glmv needs "
                  "it unquantized (or use --device cpu)", dir, glmv_dtype_name(m->embed->dtype), m->device);
        goto fail;
    }
    if (m->be->caps.device && m->be->bf16 && f16_to_bf16(m, err)) goto fail;
    if (quantize_weights(m, err)) goto fail;
    if (join_weights(m, err)) goto fail;
    if (p->tensor_parallel < 0 || p->tensor_parallel > 8) {
        glmv_errc(err, GLMV_E_INVALID, "tensor parallel %d: expected 1 to 8", p->tensor_parallel);
        goto fail;
    }
    if (p->tensor_parallel > 1) {
        if (glmv_tp_setup(m, p->tensor_parallel, err)) goto fail;
        size_t dl = strlen(m->device);
        snprintf(m->device + dl, sizeof m->device - dl, ", tensor parallel x%d", p->tensor_parallel);
    }
    /* tests take the kept-scratch path on the CPU too */
    m->vision_keep_scratch = m->be->caps.keep_scratch || env_flag("GLMV_VISION_KEEP_SCRATCH");
    m->whole_logits = env_flag("GLMV_WHOLE_LOGITS");
    m->embed_f32_rows = env_flag("GLMV_EMBED_F32_ROWS");
    /* The token table is read one row per token: on a device it would hold
     * 1.2 GB of memory for a few KB of reads per step, so it stays on the host
     * unless lm_head shares it (GLMV_EMBED_ON_DEVICE=1 uploads it anyway;
     * GLMV_EMBED_ON_HOST=1 takes the host path on any backend, for tests). */
    int device = m->be->caps.device;
    m->embed_on_host = m->embed != m->lm_head &&
                       ((device && !env_flag("GLMV_EMBED_ON_DEVICE")) || env_flag("GLMV_EMBED_ON_HOST") ||
                        glmv_dtype_is_quant(m->embed->dtype)); /* a GGUF's quantized token table: rows
                                                                  dequantized one by one */
    int64_t kept_bytes = 0;
    for (int64_t i = 0; i < glmv_weights_count(m->w); i++) {
        glmv_tensor *t = glmv_weights_at(m->w, i);
        m->n_params += glmv_tensor_numel(t);
        m->weight_bytes += (int64_t)glmv_dtype_row_bytes(t->dtype, glmv_tensor_cols(t)) * glmv_tensor_rows(t);
        if (t == m->embed && m->embed_on_host) {
            kept_bytes = (int64_t)glmv_dtype_row_bytes(t->dtype, glmv_tensor_cols(t)) * glmv_tensor_rows(t);
            continue;
        }
        if (joined_away(m, t) || glmv_tp_replaced(m, t)) { /* (a share of it was uploaded instead) */
            if (t->host) glmv_weights_release(m->w, t->host, glmv_dtype_row_bytes(t->dtype, glmv_tensor_cols(t)) *
                                                                 (size_t)glmv_tensor_rows(t));
            continue;
        }
        if (m->be->upload(m->be, t, err)) goto fail;
    }
    for (int i = 0; m->joined && i < m->n_joined; i++) {
        glmv_tensor *t = &m->joined[i];
        if (glmv_tp_replaced(m, t)) { /* its shares were uploaded (tp.c) */
            free(t->host);
            t->host = t->data = NULL;
        }
        if (!t->data) continue;
        if (m->be->upload(m->be, t, err)) goto fail;
        if (m->be->caps.device) { /* the device holds them now */
            free(t->host);
            t->host = NULL;
        }
    }
    if (device) {
        m->device_bytes = glmv_weights_bytes(m->w) - kept_bytes;
        free_uploaded_quant(m);
    }
    /* a synthetic model reads the tokenizer of p->tokenizer (checked before the weights are
     * made), a checkpoint its own */
    const char *tdir = synthetic ? p->tokenizer : dir;
    if (gguf || (tdir && file_exists(tdir, "tokenizer.json"))) {
        if (!gguf && glmv_tokenizer_load(&m->tok, tdir, err)) goto fail;
        for (int32_t id = 0; id < glmv_tokenizer_size(m->tok); id++) {
            size_t l = 0;
            if (glmv_token_bytes(m->tok, id, &l) && (int64_t)l > m->max_token_bytes) m->max_token_bytes = (int64_t)l;
        }
        if (check_prompt_tokens(m, gguf ? gtext : tdir, err)) goto fail;
        if (gguf ? glmv_chat_template_from_source(&m->tmpl, gm.chat_template, gtext, err)
                 : glmv_chat_template_load(&m->tmpl, tdir, err))
            goto fail;
    }
    const char *dd = getenv("GLMV_DUMP");
    if (dd && *dd) {
        snprintf(m->dump_dir, sizeof m->dump_dir, "%s", dd);
        mkdir(dd, 0777);
        glmv_model_set_hook(m, NULL, NULL);
    }
    /* the KV caches' budget: as asked, else on a GPU most of what the weights left free (room
     * kept for the batch's and the vision tower's scratch); the CPU's caches take what they use */
    if (p->kv_memory < 0) {
        glmv_errf(err, "kv_memory %lld: must be 0 (the default) or a number of bytes", (long long)p->kv_memory);
        goto fail;
    }
    m->kv_budget = p->kv_memory;
    if (!m->kv_budget && m->be->device_free) {
        int64_t fr = m->be->device_free(m->be);
        m->kv_budget = GLMV_MAX((int64_t)(fr * 0.9) - ((int64_t)1 << 30), (int64_t)256 << 20);
    }
    m->load_ms = glmv_now_ms() - t0;
    if (p->verbose)
        fprintf(stderr, "glmv: loaded %s (%lld params) on %s, precision %s (%s), in %.0f ms\n",
                m->name, (long long)m->n_params, m->device, m->precision, m->precision_why,
                m->load_ms);
    glmv_gguf_model_clear(&gm);
    *out = m;
    return 0;
fail:
    glmv_gguf_model_clear(&gm);
    glmv_model_free(m);
    return -1;
}

/* a logits row back to whoever allocated it: the float before it says which (glmv_logits_new) */
static void row_release(glmv_model *m, void *row) {
    float *base = (float *)row - ROW_PAD;
    if (base[0] == 1.0f && m->be && m->be->host_free) m->be->host_free(m->be, base);
    else free(base);
}

float *glmv_logits_new(glmv_model *m) {
    float *r = NULL;
    pthread_mutex_lock(&m->rows_mu);
    if (m->n_free_rows > 0) r = m->free_rows[--m->n_free_rows];
    pthread_mutex_unlock(&m->rows_mu);
    if (r) return r;
    /* ROW_PAD floats before the row (16-byte alignment kept): the first says whether the
     * backend allocated it (1) or malloc did (0) */
    size_t bytes = sizeof(float) * ((size_t)m->cfg.vocab_size + ROW_PAD);
    float *base = m->be && m->be->host_alloc ? m->be->host_alloc(m->be, bytes) : NULL;
    if (base) {
        base[0] = 1.0f;
    } else {
        base = malloc(bytes);
        if (!base) return NULL;
        base[0] = 0.0f;
    }
    return base + ROW_PAD;
}

void glmv_logits_free(glmv_model *m, float *row) {
    if (!row) return;
    pthread_mutex_lock(&m->rows_mu);
    if (m->n_free_rows == m->cap_free_rows) {
        int cap = m->cap_free_rows ? 2 * m->cap_free_rows : 16;
        void **v = realloc(m->free_rows, sizeof *v * (size_t)cap);
        if (v) {
            m->free_rows = v;
            m->cap_free_rows = cap;
        }
    }
    int kept = m->n_free_rows < m->cap_free_rows;
    if (kept) m->free_rows[m->n_free_rows++] = row;
    pthread_mutex_unlock(&m->rows_mu);
    if (!kept) row_release(m, row);
}

void glmv_model_lock(glmv_model *m) {
    pthread_mutex_lock(&m->run_mu);
    uint64_t t = m->run_next++;
    while (m->run_serving != t) pthread_cond_wait(&m->run_cv, &m->run_mu);
    pthread_mutex_unlock(&m->run_mu);
}

void glmv_model_unlock(glmv_model *m) {
    pthread_mutex_lock(&m->run_mu);
    m->run_serving++;
    pthread_cond_broadcast(&m->run_cv);
    pthread_mutex_unlock(&m->run_mu);
}

void glmv_model_free(glmv_model *m) {
    if (!m) return;
    if (m->tmpl) glmv_chat_template_free(m->tmpl);
    if (m->tok) glmv_tokenizer_free(m->tok);
    glmv_vocab_index_free(m->vocab_index);
    for (int i = 0; i < m->n_free_rows; i++) row_release(m, m->free_rows[i]);
    free(m->free_rows);
    if (m->be) glmv_vision_free_scratch(m);
    glmv_tp_free(m);
    if (m->be) m->be->destroy(m->be);
    glmv_weights_free(m->w);
    for (int i = 0; i < m->n_quant_bufs; i++) free(m->quant_bufs[i]);
    free(m->quant_bufs);
    free(m->sharing);
    free(m->sessions); /* empty: each session leaves it when freed, before its model */
    for (int i = 0; m->joined && i < m->n_joined; i++)
        free(m->joined[i].host); /* on a device, freed once uploaded */
    free(m->joined);
    free(m->joined_names);
    free(m->layers);
    free(m->blocks);
    free(m);
}

const glmv_tokenizer *glmv_model_tokenizer(const glmv_model *m) { return m ? m->tok : NULL; }

void glmv_model_get_info(const glmv_model *m, glmv_model_info *info) {
    memset(info, 0, sizeof *info);
    const glmv_config *c = &m->cfg;
    info->name = m->name;
    info->device = m->device;
    info->precision = m->precision;
    info->precision_why = m->precision_why;
    info->kv_cache = m->be->caps.kv_bf16 ? "bf16" : "f32";
    info->quant = quant_name(m->params.quant);
    if (m->params.quant == GLMV_QUANT_NONE && c->num_hidden_layers > 0 && m->layers[0].q_w &&
        glmv_dtype_is_quant(m->layers[0].q_w->dtype)) /* a quantized file (GGUF or glmv quantize) */
        info->quant = m->quant_desc;
    info->weight_bytes = m->weight_bytes;
    info->n_params = m->n_params;
    info->n_layers = c->num_hidden_layers;
    info->hidden = c->hidden_size;
    info->n_heads = c->num_attention_heads;
    info->n_kv_heads = c->num_key_value_heads;
    info->head_dim = c->head_dim;
    info->vocab = c->vocab_size;
    info->vision_depth = m->has_vision ? c->v_depth : 0;
    info->vision_hidden = m->has_vision ? c->v_hidden_size : 0;
    info->max_position_embeddings = c->max_position_embeddings;
    info->load_ms = m->load_ms;
}

int64_t glmv_peak_host_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (int64_t)ru.ru_maxrss * 1024;
}

void glmv_model_embed(const glmv_model *m, float *y, const int32_t *ids, int64_t n,
                      float *staging, int64_t staging_rows) {
    glmv_backend *be = m->be;
    const glmv_tensor *t = m->embed;
    if (!m->embed_on_host) {
        be->embed(be, y, t, ids, n);
        return;
    }
    int64_t H = glmv_tensor_cols(t);
    if (t->dtype == GLMV_BF16 && be->write_bf16 && !m->embed_f32_rows) {
        /* the rows as they are, widened on the device: half the bytes written, no conversion
         * here (staging holds twice as many bf16 rows as float ones) */
        const uint16_t *tab = (const uint16_t *)(t->host ? t->host : t->data);
        uint16_t *st = (uint16_t *)staging;
        for (int64_t off = 0; off < n; off += 2 * staging_rows) {
            int64_t k = GLMV_MIN(2 * staging_rows, n - off);
            for (int64_t r = 0; r < k; r++)
                memcpy(st + r * H, tab + (int64_t)ids[off + r] * H, sizeof(uint16_t) * (size_t)H);
            be->write_bf16(be, y + off * H, st, k * H);
        }
        return;
    }
    for (int64_t off = 0; off < n; off += staging_rows) {
        int64_t k = GLMV_MIN(staging_rows, n - off);
        for (int64_t r = 0; r < k; r++)
            glmv_tensor_get_range(t, (int64_t)ids[off + r] * H, H, staging + r * H);
        be->write(be, y + off * H, staging, sizeof(float) * (size_t)(k * H));
    }
}

int64_t glmv_device_bytes(const glmv_model *m) {
    if (m && m->device_bytes && m->be->device_bytes) return m->be->device_bytes(m->be); /* all of it */
    return m ? m->device_bytes : 0;
}
