/* model.h -- the loaded model (config + weights bound by name + backend +
 * tokenizer + chat template) and the session state, shared by model.c,
 * vision.c, text.c, rope.c, sample.c and session.c. Library-internal: tools
 * see only include/glmv.h.
 *
 * Shapes are written PyTorch-style, outermost first, with the config names:
 * H hidden_size, I intermediate_size, V vocab_size, nh/nkv heads, hd head_dim,
 * Hv/Ov/Iv vision hidden/out_hidden/intermediate, P patch_size, T temporal.
 */
#ifndef GLMV_MODEL_H
#define GLMV_MODEL_H

#include <pthread.h>
#include <stdint.h>

#include "chat.h"
#include "config.h"
#include "glmv.h"
#include "image.h"
#include "ops.h"
#include "safetensors.h"

/* ref: Glm4vTextDecoderLayer */
typedef struct {
    glmv_tensor *input_layernorm;          /* (H) */
    glmv_tensor *q_w, *q_b;                /* (nh*hd, H), (nh*hd) */
    glmv_tensor *k_w, *k_b;                /* (nkv*hd, H), (nkv*hd) */
    glmv_tensor *v_w, *v_b;                /* (nkv*hd, H), (nkv*hd) */
    glmv_tensor *o_w;                      /* (H, nh*hd) */
    glmv_tensor *post_self_attn_layernorm; /* (H) */
    glmv_tensor *post_attention_layernorm; /* (H), the pre-MLP norm */
    glmv_tensor *gate_up;                  /* (2I, H): rows [0,I) gate, [I,2I) up */
    glmv_tensor *down;                     /* (H, I) */
    glmv_tensor *post_mlp_layernorm;       /* (H) */
    /* q, k and v joined (model.c join_qkv, where the backend has copy_rows): rows [q; k; v] of
     * one matrix and one bias; NULL where each is multiplied on its own */
    glmv_tensor *qkv_w, *qkv_b;            /* (nh*hd + 2 nkv*hd, H), (same) or NULL */
} glmv_text_layer;

/* ref: Glm4vVisionBlock */
typedef struct {
    glmv_tensor *norm1;                    /* (Hv) */
    glmv_tensor *qkv_w, *qkv_b;            /* (3Hv, Hv), bias optional */
    glmv_tensor *proj_w, *proj_b;          /* (Hv, Hv), bias optional */
    glmv_tensor *norm2;                    /* (Hv) */
    glmv_tensor *gate_w, *gate_b;          /* (Ov, Hv) */
    glmv_tensor *up_w, *up_b;              /* (Ov, Hv) */
    glmv_tensor *down_w, *down_b;          /* (Hv, Ov) */
    glmv_tensor *gate_up_w, *gate_up_b;    /* (2Ov, Hv): gate and up joined (model.c join_weights), or NULL */
} glmv_vision_block;

/* Called with named activations (host copies) when set: GLMV_DUMP and tests. */
typedef void (*glmv_act_hook)(void *user, const char *name, const float *data, int64_t rows,
                              int64_t cols);

struct glmv_model {
    glmv_config cfg;
    glmv_weights *w;
    glmv_backend *be;
    glmv_model_params params;
    void **quant_bufs;                     /* buffers of weights converted at load (--quant; F16 to bf16 on a device) */
    int n_quant_bufs;
    int64_t weight_bytes;                  /* weights as held, after quantization */
    glmv_tensor *joined;                   /* the joined matrices and their biases (2 entries each) */
    int n_joined;
    char (*joined_names)[96];

    /* text: ref Glm4vTextModel + lm_head */
    glmv_tensor *embed;                    /* (V, H) */
    int embed_on_host;                     /* the table was not uploaded: see glmv_model_embed */
    int embed_f32_rows;                    /* GLMV_EMBED_F32_ROWS=1: its rows widened on the host and written as
                                              floats, not written as bf16 (be->write_bf16), to compare */
    int whole_logits;                      /* 1: generations read every row of logits whole instead of
                                              its best (GLMV_WHOLE_LOGITS=1, to compare; tests) */
    glmv_text_layer *layers;               /* num_hidden_layers */
    glmv_tensor *norm;                     /* (H) */
    glmv_tensor *lm_head;                  /* (V, H) */

    /* vision: ref Glm4vVisionModel */
    int has_vision;
    glmv_tensor *patch_w, *patch_b;        /* (Hv, 3, T, P, P) viewed (Hv, 3*T*P*P), (Hv) */
    glmv_tensor *post_conv_norm;           /* (Hv) */
    glmv_tensor *pos_embed;                /* (S*S, Hv), S = image_size / P */
    glmv_vision_block *blocks;             /* v_depth */
    glmv_tensor *post_norm;                /* (Hv) */
    glmv_tensor *ds_w, *ds_b;              /* (Ov, Hv, 2, 2) viewed (Ov, 4Hv), (Ov) */
    glmv_tensor *mg_proj;                  /* (Ov, Ov) */
    glmv_tensor *mg_ln_w, *mg_ln_b;        /* (Ov), (Ov) */
    glmv_tensor *mg_gate, *mg_up;          /* (Iv, Ov) */
    glmv_tensor *mg_gate_up;               /* (2Iv, Ov): the two joined, or NULL */
    glmv_tensor *mg_down;                  /* (Ov, Iv) */

    glmv_tokenizer *tok;                   /* NULL for synthetic weights */
    struct glmv_vocab_index *vocab_index;  /* tokens by bytes, for JSON output (built on first use) */
    int64_t max_token_bytes;               /* the longest token: a prompt of more than n_ctx times
                                              this many bytes cannot fit, whatever its tokens */
    glmv_chat_template *tmpl;

    char name[256];
    char dir[1024];                        /* the folder as given (or "synthetic:...") */
    int is_gguf;                           /* loaded from llama.cpp's GGUF files (gguf_model.c) */
    char gguf_notes[256];                  /* what the GGUF loader converted ("" when nothing) */
    char quant_desc[320];                  /* a quantized GGUF's formats, for glmv_model_info */
    char device[96];
    const char *precision;                 /* "f32" or "bf16": what m->be's GEMMs do */
    char precision_why[160];               /* how it was chosen (glmv_model_info) */
    double load_ms;
    int64_t n_params;
    int64_t device_bytes;

    int vision_row_block;                  /* rows per vision MLP pass (0: the backend's caps.vision_rows, else 1024; tests set it small) */
    /* Vision scratch kept between calls on backends where allocation is
     * costly (a device: cudaMalloc per buffer per image would add up), grown
     * as needed and freed with the model. Off on the CPU unless
     * GLMV_VISION_KEEP_SCRATCH=1 (tests use it to exercise the path). */
    int vision_keep_scratch;
    void *vision_buf[24];
    size_t vision_cap[24];
    void *vision_hbuf[6];                  /* the host tables of a call, kept likewise */
    size_t vision_hcap[6];
    unsigned char vision_hpinned[6];       /* 1: from be->host_alloc (page-locked), else malloc */
    /* The backend runs one thing at a time: a prefill chunk, a vision tower call or a
     * batched decode step holds this lock (FIFO: glmv_model_lock), so sessions of one
     * model may run on several threads and a long prefill yields to the decode steps
     * between its chunks. The vision scratch above is used under it. */
    pthread_mutex_t run_mu;
    pthread_cond_t run_cv;
    /* sessions sharing cached prefixes (glmv_session_share); read and changed under the
     * model lock, as is every sharing session's pos, hist and seg_hash */
    struct glmv_session **sharing;
    int n_sharing, cap_sharing;
    /* The KV caches grow with their sequences (be->reserve) from one budget: kv_used of
     * kv_budget bytes (0: no limit) are backed; past it, the caches that only wait for a next
     * request are given back, least recently used first, and a batched pass preempts its newest
     * generation (session.c). All sessions are listed for that. Under the model lock. */
    int64_t kv_budget, kv_used;
    struct glmv_session **sessions;
    int n_sessions, cap_sessions;
    uint64_t use_clock, gen_clock;
    int64_t kv_evictions, kv_preemptions;
    /* preemptions of a generation that came back from one and wrote less than a granule of new
     * rows since (its cache copied back and forth for nothing; swap_in_room prevents them) */
    int64_t kv_bounces;
    /* rows of logits in host memory the backend reads into fastest, kept for reuse
     * (glmv_logits_new): a page-locked allocation costs more than a request's prefill */
    pthread_mutex_t rows_mu;
    void **free_rows;
    int n_free_rows, cap_free_rows;
    uint64_t run_next, run_serving;
    glmv_act_hook hook;                    /* NULL: no activation dumps */
    void *hook_user;
    char dump_dir[512];
    /* The decoder's heads and MLP width as this model holds them: the config's, or with
     * tensor parallelism (tp.c) this rank's share of them */
    int t_nh, t_nkv;
    int64_t t_I;
    /* Tensor parallelism (-tp N > 1, tp.c): this model is rank tp_rank of tp; rank 0 is the
     * model the caller holds (tokenizer, vision tower, embeddings, lm_head, its share of every
     * decoder layer), ranks 1.. hold their shares of the layers only. NULL: not split. */
    struct glmv_tp *tp;
    int tp_rank;
};

struct glmv_session {
    glmv_model *m;
    int n_ctx;
    int pos;                               /* tokens in the KV cache */
    int64_t rope_delta;                    /* M-RoPE offset of decode positions */
    int chunk;                             /* prefill rows per pass */

    void **kc, **vc;                       /* per layer (n_ctx, nkv*hd), post-RoPE keys and the values, in
                                              glmv_kv_elt bytes an element (float32 or bf16) */
    /* the cache's backing (glmv_kv_ensure): rows [0, kv_rows) of every kc[l], vc[l] are backed,
     * kv_bytes of each; kv_granule is the backend's unit, kv_reserved each range's size; with
     * kv_growing 0 (no be->reserve) all n_ctx rows were allocated at once */
    int64_t kv_rows;
    size_t kv_bytes, kv_granule, kv_reserved;
    int kv_growing;
    int busy;                              /* a generation runs on it (or waits, preempted) */
    int suspended;                         /* preempted: its rows [0, pos) are on the host (session.c) */
    int evictable;                         /* its cache only waits for a next request's prefix */
    uint64_t last_use;
    /* scratch (backend memory), chunk rows each */
    float *x, *xn, *t1;                    /* (chunk, H) */
    float *q;                              /* (chunk, nh*hd + 2 nkv*hd): q, or [q | k | v] when joined */
    float *att;                            /* (chunk, nh*hd) */
    float *gu;                             /* (chunk, 2I) */
    float *h;                              /* (chunk, I) */
    float *cos, *sin;                      /* (chunk, rot/2) */
    float *logits_dev;                     /* (V) */
    float *hcos, *hsin;                    /* host (chunk, rot/2) */
    float *hemb;                           /* host (hemb_rows, H) when m->embed_on_host: the token rows' staging */
    int64_t hemb_rows;                     /* min(chunk, 512): a device's long chunk needs no more host memory */
    int32_t *hpos;                         /* host (3, chunk) */
    int32_t *epos;                         /* host (3, chunk): glmv_session_eval's positions */

    struct glmv_batch *b1;                 /* decode steps on a backend with graphs: a batch of one */
    int32_t *hist;                         /* ids in the cache (n_ctx), for penalties */
    /* vision segments whose features are in the cache, in prompt order: a
     * hash of each one's grid and pixel rows, so that the next request can
     * keep the common prefix of the conversation (glmv_generate) */
    uint64_t *seg_hash;
    int n_seg_hash, cap_seg_hash;
    int sharing;                           /* in m->sharing (glmv_session_share) */
    /* tensor parallelism: the same sequence's session on every other rank (their caches hold
     * their heads' keys and values), and a host row buffer that carries a chunk's input rows
     * to them; NULL without */
    struct glmv_session **tp_peer;
    float *tp_stage;
};

/* Scratch for one decode step of up to cap sequences together (glmv_batch_decode):
 * the mutable state of a batched step lives here, not in the model. */
struct glmv_batch {
    glmv_model *m;
    int cap;
    int prompt_rows;                       /* prompt rows a step takes beside cap decode rows (the
                                              backend's prefill chunk; tests make it smaller) */
    int idle_rows;                         /* prompt rows a step with no decode rows may take when more:
                                              the backend's prefill chunk (a lone prompt's passes) */
    int rows;                              /* rows the buffers below hold: cap, or cap + prompt_rows
                                              once a step mixes prompts in (glmv_batch_eval), or the
                                              rows of the largest step since */
    int last_rows;                         /* the rows of the last step (tests) */
    float *x, *xn, *t1;                    /* (rows, H) */
    float *q, *att;                        /* (rows, nh*hd + 2 nkv*hd) (q, or [q | k | v]), (rows, nh*hd) */
    float *k, *v;                          /* (rows, nkv*hd): the step's keys and values */
    float *gu, *h;                         /* (rows, 2I), (rows, I) */
    float *cos, *sin;                      /* (rows, rot/2) */
    float *logits_dev;                     /* (cap, V) */
    float *top_val, *htop_val;             /* backend, host: (cap, GLMV_TOP_MAX) best logits */
    int32_t *top_id, *htop_id;             /* and their ids (htop_id: in htop_val's allocation) */
    int htop_malloc;                       /* htop_val from malloc, not be->host_alloc */
    int64_t top_rows, top_whole;           /* rows read as their best logits; of them, read whole */
    float *hcos, *hsin, *hemb;             /* host */
    int32_t *hpos;                         /* host (3, rows) */
    /* attn_decode_batch's tables for a step, built on the host and written once: per layer
     * the sequences' K cache pointers, then their V cache pointers; then their key counts */
    void **tab, **htab;                    /* backend, host: (2 L + 1) cap entries of 8 bytes */
    /* recorded steps (be->graph_*), by shape: sequences << 32 | key bound (a multiple of
     * GLMV_GRAPH_KEYS); last_key is the previous step's, recorded when it comes again */
    struct { uint64_t key; void *g; } graphs[8];
    int next_graph;
    uint64_t last_key;
    int64_t replays;                       /* steps run from a recorded graph (tests) */
    /* tensor parallelism: the same step's batch on every other rank, and host rows that carry
     * the step's input rows to them; NULL without */
    struct glmv_batch **tp_peer;
    float *tp_stage;
    int64_t tp_stage_rows;
};
#define GLMV_GRAPH_KEYS 256

/* ---- model.c ---- */
/* Take and give back the model's backend, in the order asked (a ticket lock). */
void glmv_model_lock(glmv_model *m);
void glmv_model_unlock(glmv_model *m);
/* Call the activation hook (if any) on backend rows x[rows, cols]. */
void glmv_model_dump(glmv_model *m, const char *name, const float *x, int64_t rows,
                     int64_t cols);
/* Install a hook (tests); NULL restores the GLMV_DUMP default. */
void glmv_model_set_hook(glmv_model *m, glmv_act_hook hook, void *user);

/* Rows of a K or V cache tensor as this model holds them (its rank's kv heads). */
static inline int64_t glmv_kv_dim(const glmv_model *m) { return (int64_t)m->t_nkv * m->cfg.head_dim; }
/* bytes of one KV cache element: 2 where the backend keeps bf16 caches (caps.kv_bf16), else 4 */
static inline size_t glmv_kv_elt(const glmv_model *m) { return m->be->caps.kv_bf16 ? 2 : 4; }
/* row `row` of a cache (kc[l] or vc[l]) of session s */
static inline void *glmv_kv_row(const glmv_model *m, void *cache, int64_t row) {
    return (char *)cache + (size_t)row * (size_t)glmv_kv_dim(m) * glmv_kv_elt(m);
}

/* ---- tp.c: tensor parallelism ---- */
typedef struct glmv_tp glmv_tp;
/* Split m's decoder n ways (n > 1; after quantization and joining, before upload): rank 0
 * keeps its share in m->layers, ranks 1.. get backends of m->be's kind (CUDA: devices 1..n-1;
 * GLMV_TP_ONE_DEVICE=1 puts every rank on device 0, for tests) and their shares, uploaded. */
int glmv_tp_setup(glmv_model *m, int n, char *err);
void glmv_tp_free(glmv_model *m);
/* a whole tensor whose shares replaced it (not uploaded) */
int glmv_tp_replaced(const glmv_model *m, const glmv_tensor *t);
/* Run fn(rank, arg) for every rank at once: rank 0 on this thread, the others on threads of
 * their own (bound to their devices). */
void glmv_tp_run(struct glmv_tp *tp, void (*fn)(int rank, void *arg), void *arg);
/* Sum buf (count floats of backend memory) over the ranks, in place on each: called by every
 * rank's thread with its own buffer (NCCL on CUDA, in host memory on the CPU). */
void glmv_tp_allreduce(glmv_model *m, float *buf, int64_t count);
/* 0, or -1 with err set when an all-reduce failed since the last call */
int glmv_tp_status(struct glmv_tp *tp, char *err);
/* rank r's model */
glmv_model *glmv_tp_rank(struct glmv_tp *tp, int r);
int glmv_tp_size(const struct glmv_tp *tp);

/* ---- rope.c ---- */
/* get_rope_index for one unpadded sequence: pos is (3, n) (t, h, w rows).
 * grids are (t, h, w) in patches; images then videos in prompt order. */
int glmv_rope_index(const glmv_config *c, const int32_t *ids, int64_t n, const int (*img_grid)[3],
                    int n_img, const int (*vid_grid)[3], int n_vid, int32_t *pos,
                    int64_t *rope_delta, char *err);
/* Text M-RoPE tables: pos (3, stride) -> cos/sin (n, rot/2), fp32 like torch. */
void glmv_rope_text_table(const glmv_config *c, const int32_t *pos, int64_t stride, int64_t n,
                          float *cos, float *sin);
/* Vision 2-D rope tables for patches (hp, wp): cos/sin (n, hd/2). */
/* The same angles' cos and sin at the coordinates 0 .. nv - 1: tc, ts [nv, head_dim / 4] (a row of
 * the table above is [t[hp] | t[wp]], the same floats). */
void glmv_rope_vision_values(int head_dim, double theta, int32_t nv, float *tc, float *ts);
void glmv_rope_vision_table(int head_dim, double theta, const int32_t *hp, const int32_t *wp,
                            int64_t n, float *cos, float *sin);

/* The image (video 0) or video (1) processor's settings from the checkpoint's configs (session.c). */
glmv_image_params glmv_processor_params(const glmv_config *c, int video);

/* ---- vision.c ---- */
/* The vision tower's input rows (n_patches, 3*T*P*P) on the host: floats, or the pixels' bytes
 * (what the prompt stage keeps: a quarter of the memory, hashed and written to a device as they
 * are and widened there), byte b of a row's channel c standing for luts[seg_lut[segment]].v[c][b]. */
typedef struct {
    const float *f32;                      /* the rows as floats, or NULL: */
    const uint8_t *u8;                     /* the rows as bytes */
    const glmv_patch_lut *luts;
    const int *seg_lut;                    /* a table per segment (NULL: luts[0] for all) */
} glmv_patches;

/* Rows of all images/frame groups (n_patches, 3*T*P*P) (host), their grids;
 * out (backend) receives (n_patches / merge^2, Ov) features. */
int glmv_vision_forward(glmv_model *m, const float *pixels, int64_t n_patches,
                        const int (*grid)[3], int n_grid, float *out, char *err);
/* The same for rows as floats or bytes. */
int glmv_vision_forward_patches(glmv_model *m, const glmv_patches *px, int64_t n_patches,
                                const int (*grid)[3], int n_grid, float *out, char *err);
/* Bicubic resample of the learned position table for one grid (host):
 * out (gh*gw, Hv) in merge-block order, on `threads` threads (at most one a
 * column; the same floats for any number). -1: out of memory. */
int glmv_vision_pos_embed(const glmv_model *m, int gh, int gw, float *out, int threads);
/* That resample's taps for a gh x gw grid: coef = cx [gw][4], then cy [gh][4]; idx = x0 [gw], then
 * y0 [gh] (the first source column and row, before clamping), as be->pos_embed takes them. */
void glmv_vision_pos_coefs(const glmv_model *m, int gh, int gw, float *coef, int *idx);
/* y (backend, (n, H)) = the embedding rows of ids (on the host, checked by
 * the caller). On a device backend the token table (V x H, 1.2 GB for the 9B)
 * stays in host memory: its rows are gathered on the host into staging
 * (staging_rows x H floats) and written, a few KB per decoded token. */
void glmv_model_embed(const glmv_model *m, float *y, const int32_t *ids, int64_t n,
                      float *staging, int64_t staging_rows);
/* Release the vision scratch kept between calls (glmv_model_free does it). */
void glmv_vision_free_scratch(glmv_model *m);

/* ---- text.c ---- */
/* Run n tokens at s->pos: x (backend, (n, H) embeddings) or ids when x is NULL;
 * pos (3, n) host positions. logits (host, V) of the last token, may be NULL. */
int glmv_text_forward(glmv_session *s, const float *x, const int32_t *ids, const int32_t *pos,
                      int64_t n, float *logits, char *err);

/* One decode step of n sequences at once: ids[i] is appended to ss[i] (distinct sessions
 * of b's model) and its logits land in logits[i] (host, V floats each; NULL to skip). */
int glmv_batch_decode(glmv_batch *b, glmv_session *const *ss, const int32_t *ids, int n,
                      float *const *logits, char *err);

/* One sequence's part of a step (glmv_batch_eval): n rows appended at s->pos, a decode
 * token (n = 1) or a chunk of a prompt. */
typedef struct {
    glmv_session *s;
    int64_t n;
    const int32_t *ids;                    /* n ids (host; checked), or NULL with x */
    const float *x;                        /* backend (n, H) input embeddings, or NULL */
    const int32_t *pos;                    /* host (3, pos_stride) M-RoPE positions of the rows, or
                                              NULL: s->pos + s->rope_delta + i on all three axes */
    int64_t pos_stride;
    float *logits;                         /* host (V): the last row's logits, or NULL */
    glmv_top *top;                         /* the last row's best top->k logits instead, or NULL */
    const glmv_sampling *top_sp;           /* with top and logits: the sampling they are for; where
                                              the k found may not decide it (glmv_top_covers), the
                                              whole row is read into logits instead and top->n is 0
                                              (NULL: the first is enough) */
} glmv_batch_item;

/* The batch's buffers (and its tensor-parallel peers') made to hold `rows` rows (0), or, when
 * memory is short, left for its decode steps' rows (-1). */
int glmv_batch_reserve(glmv_batch *b, int rows);
/* One step of n items of distinct sessions (n <= b->cap, rows in all <= glmv_batch_idle_rows):
 * every row through each weight matrix together, attention per sequence over its own cache
 * (the decode rows together, each prompt chunk causally over its cache). On the CPU the
 * one-row items go through matmul_rows and the decode attention as a decode step alone
 * would (bit for bit glmv_batch_decode's rows); on a device all rows share one product. */
int glmv_batch_eval(glmv_batch *b, const glmv_batch_item *it, int n, char *err);
/* The same with the model lock held by the caller. */
int glmv_batch_eval_locked(glmv_batch *b, const glmv_batch_item *it, int n, char *err);

/* ---- session.c ---- */
/* Back s's KV cache for `rows` rows (under the model lock): within the budget, after giving
 * back idle caches (m->sessions' evictable ones, least recently used first). 0, or -1 with
 * GLMV_E_NOMEM when the memory is not there. */
int glmv_kv_ensure(glmv_session *s, int64_t rows, char *err);
/* Give back all of s's cache beyond `rows` rows (under the model lock). */
void glmv_kv_shrink(glmv_session *s, int64_t rows);
/* s's prefill scratch (glmv_text_forward's), made on first use (under the model lock). */
int glmv_session_scratch(glmv_session *s, char *err);
/* Prefill ids (placeholders already expanded) at s->pos with n_img images whose
 * patch rows (n_rows, 3*T*P*P) are on the host: vision tower, splice, M-RoPE
 * positions (sets s->rope_delta), forward. logits (host, V) of the last token. */
int glmv_session_prefill_mm(glmv_session *s, const int32_t *ids, int64_t n, const float *pixels,
                            int64_t n_rows, const int (*grid)[3], int n_img, float *logits,
                            double *vision_ms, char *err);
/* The general form: seg_grid lists the vision tower's segments (each image,
 * each video frame pair) in prompt order; img_grid/vid_grid are what M-RoPE
 * needs (GLM4V.md §4.2). */
int glmv_session_prefill_media(glmv_session *s, const int32_t *ids, int64_t n, const float *pixels,
                               int64_t n_rows, const int (*seg_grid)[3], int n_seg,
                               const int (*img_grid)[3], int n_img, const int (*vid_grid)[3],
                               int n_vid, float *logits, double *vision_ms, char *err);

/* ---- sample.c ---- */
typedef struct { uint64_t s[4]; } glmv_rng;
void glmv_rng_seed(glmv_rng *r, uint64_t seed);
double glmv_rng_uniform(glmv_rng *r);  /* [0, 1) */
/* Pick the next id from logits (modified in place) with HF's processor order:
 * repetition penalty over hist -> presence/frequency penalties over out (the
 * ids generated so far) -> (sampling only) temperature -> top-k -> top-p.
 * work: vocab floats + vocab ints of scratch. */
/* Log-sum-exp of logits[V] (returned) and the k (<= GLMV_MAX_TOP_LOGPROBS) most likely ids
 * with their log-probabilities into lp (top_ids, top_logprobs, n_top), best first, ties by
 * the lower id. */
float glmv_logprobs_top(const float *logits, int V, int k, glmv_logprob *lp);
int32_t glmv_sample(float *logits, int vocab, const glmv_sampling *sp, const int32_t *hist,
                    int64_t n_hist, const int32_t *out, int64_t n_out, glmv_rng *rng,
                    float *work_f, int32_t *work_i);
/* How many of a row's best logits glmv_sample_top needs to pick as glmv_sample would from the
 * row: 1 for greedy, GLMV_TOP_MAX for top-k sampling; 0 when sp needs the whole row (penalties,
 * a bias, sampling without a top-k or with one beyond GLMV_TOP_MAX - 1). */
int glmv_sample_top_k(const glmv_sampling *sp, int vocab);
/* 1 when t's best t->n logits decide sp's pick as the whole row does (sp NULL or greedy: the
 * first suffices): every logit tied with the top-k-th after the temperature is among them (no
 * other can be), and none is NaN. */
int glmv_top_covers(const glmv_top *t, const glmv_sampling *sp);
/* glmv_sample from the best logits of a row (t->n of them, best first, covering sp's top-k:
 * glmv_top_covers): the same id glmv_sample picks from the row, the same random draw, for an
 * sp that glmv_sample_top_k accepts. (A NaN at id 0 makes the row's greedy pick id 0, which the
 * best, NaN ranked last, do not: a row with NaN is a failed model either way.) */
int32_t glmv_sample_top(const glmv_top *t, int vocab, const glmv_sampling *sp, glmv_rng *rng);

#endif
