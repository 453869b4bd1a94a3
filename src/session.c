/* session.c -- one conversation: KV cache and scratch allocated once, and
 * glmv_generate: render the chat template, expand each image placeholder to
 * its vision tokens, tokenize, preprocess the images, run the vision tower on
 * all of them in one batch, splice the features into the embeddings, compute
 * the M-RoPE positions, prefill, then decode token by token (stopping on the
 * checkpoint's eos ids, max tokens, stop strings or the callback) with the
 * <think>/<answer> splitter of chat.h turning ids into streamed text. A
 * thinking budget forces "</think><answer>" when it runs out.
 * The prompt holds the whole conversation; the cache keeps the prefix it shares
 * with the previous request (same ids, identical images), so a chat turn only
 * prefills what is new.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base.h"
#include "chat.h"
#include "cpu/threads.h"
#include "image.h"
#include "model.h"
#include "schema.h"
#include "tokenizer.h"
#include "pdf.h"
#include "video.h"

/* ------------------------------------------------------------------ session */

/* tensor parallelism (tp.c): s's session on rank r, and the calling thread on its device */
static glmv_session *rank_sess(glmv_session *s, int r) { return r ? s->tp_peer[r] : s; }
static void rank_bind(const glmv_session *s) {
    glmv_backend *be = s->m->be;
    if (be->bind_thread) be->bind_thread(be);
}

/* The session's prefill scratch (glmv_text_forward's, s->chunk rows), made on first use: a
 * session that only runs in batched passes never needs it (under the model lock). */
int glmv_session_scratch(glmv_session *s, char *err) {
    if (s->x) return 0;
    glmv_model *m = s->m;
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    int64_t H = c->hidden_size, I = m->t_I, C = s->chunk;
    int64_t qd = (int64_t)m->t_nh * c->head_dim;
    int64_t kvd = glmv_kv_dim(m);
    int rot = (int)(c->head_dim * c->partial_rotary_factor + 0.5f);
    int half = GLMV_MAX(rot / 2, 1);
    float **bufs[] = {&s->x, &s->xn, &s->t1, &s->q, &s->att, &s->gu, &s->h, &s->cos, &s->sin, &s->logits_dev};
    int64_t n[] = {C * H, C * H, C * H, C * (qd + 2 * kvd), C * qd, C * 2 * I, C * I, C * half, C * half,
                   c->vocab_size};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        *bufs[i] = be->alloc(be, glmv_mul_size(sizeof(float), (size_t)n[i]));
        if (*bufs[i]) continue;
        for (size_t j = 0; j < i; j++) { /* all or nothing: s->x says it is there */
            be->free(be, *bufs[j]);
            *bufs[j] = NULL;
        }
        return glmv_errc(err, GLMV_E_NOMEM, "out of memory for a prefill of %lld rows", (long long)C);
    }
    return 0;
}

int glmv_session_new(glmv_session **out, glmv_model *m, int n_ctx, char *err) {
    *out = NULL;
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    if (n_ctx <= 0) n_ctx = GLMV_MIN(c->max_position_embeddings > 0 ? c->max_position_embeddings : 4096, 16384);
    if (n_ctx > (1 << 24)) return glmv_errf(err, "n_ctx %d too large", n_ctx);
    if (m->params.min_image_tokens || m->params.max_image_tokens) { /* refuse bad limits up front */
        glmv_image_params ip = glmv_processor_params(c, 0);
        if (glmv_image_apply_token_limits(&ip, m->params.min_image_tokens, m->params.max_image_tokens, err))
            return -1;
    }
    glmv_session *s = calloc(1, sizeof *s);
    if (!s) return glmv_errf(err, "out of memory");
    s->m = m;
    s->n_ctx = n_ctx;
    s->chunk = GLMV_MIN(be->caps.prefill_chunk > 0 ? be->caps.prefill_chunk : 256, n_ctx);
    int L = c->num_hidden_layers;
    int64_t H = c->hidden_size, C = s->chunk;
    int64_t kvd = glmv_kv_dim(m);
    int rot = (int)(c->head_dim * c->partial_rotary_factor + 0.5f);
    int half = GLMV_MAX(rot / 2, 1);
    s->kc = calloc((size_t)L, sizeof(void *));
    s->vc = calloc((size_t)L, sizeof(void *));
    int oom = !s->kc || !s->vc;
    size_t kvb = glmv_mul_size(glmv_mul_size((size_t)n_ctx, (size_t)kvd), glmv_kv_elt(m));
    /* the cache as address space, backed as the sequence grows (glmv_kv_ensure); where the
     * backend cannot, all of it now */
    s->kv_growing = be->reserve != NULL;
    for (int l = 0; l < L && !oom; l++) {
        if (s->kv_growing) {
            s->kc[l] = be->reserve(be, kvb, &s->kv_granule);
            s->vc[l] = be->reserve(be, kvb, &s->kv_granule);
        } else {
            s->kc[l] = be->alloc(be, kvb);
            s->vc[l] = be->alloc(be, kvb);
        }
        oom = !s->kc[l] || !s->vc[l];
    }
    if (s->kv_growing) {
        if (s->kv_granule) s->kv_reserved = (kvb + s->kv_granule - 1) / s->kv_granule * s->kv_granule;
    } else {
        s->kv_rows = n_ctx;
        s->kv_bytes = kvb;
    }
    if (!oom) {
        s->hcos = malloc(sizeof(float) * (size_t)(C * half));
        s->hsin = malloc(sizeof(float) * (size_t)(C * half));
        s->hpos = malloc(sizeof(int32_t) * (size_t)(3 * C));
        s->epos = malloc(sizeof(int32_t) * (size_t)(3 * C));
        s->hist = malloc(sizeof(int32_t) * (size_t)n_ctx);
        oom = !s->hcos || !s->hsin || !s->hpos || !s->epos || !s->hist;
        if (!oom && m->embed_on_host) {
            s->hemb_rows = GLMV_MIN(C, 512);
            s->hemb = malloc(glmv_mul_size((size_t)(s->hemb_rows * H), sizeof(float)));
            oom = !s->hemb;
        }
    }
    if (!oom) { /* listed in the model, for the budget's evictions */
        glmv_model_lock(m);
        if (m->n_sessions == m->cap_sessions) {
            int cap = m->cap_sessions ? 2 * m->cap_sessions : 8;
            glmv_session **ns = realloc(m->sessions, sizeof *ns * (size_t)cap);
            if (ns) {
                m->sessions = ns;
                m->cap_sessions = cap;
            }
        }
        oom = m->n_sessions == m->cap_sessions;
        if (!oom) m->sessions[m->n_sessions++] = s;
        glmv_model_unlock(m);
    }
    if (oom) {
        glmv_session_free(s);
        return glmv_errf(err, "out of memory for a session of %d tokens (KV cache %zu MB)", n_ctx,
                         (size_t)(2 * (double)kvb * L / 1e6));
    }
    if (m->tp && m->tp_rank == 0) { /* the same sequence on the other ranks: their heads' caches and scratch */
        int n = glmv_tp_size(m->tp);
        s->tp_peer = calloc((size_t)n, sizeof *s->tp_peer);
        s->tp_stage = malloc(glmv_mul_size((size_t)(C * H), sizeof(float)));
        if (!s->tp_peer || !s->tp_stage) {
            glmv_session_free(s);
            return glmv_errf(err, "out of memory");
        }
        glmv_model_lock(m); /* (the other ranks' models are used under rank 0's lock) */
        int rc = 0;
        for (int r = 1; r < n && !rc; r++) {
            glmv_model *rm = glmv_tp_rank(m->tp, r);
            if (rm->be->bind_thread) rm->be->bind_thread(rm->be);
            rc = glmv_session_new(&s->tp_peer[r], rm, n_ctx, err);
            if (m->be->bind_thread) m->be->bind_thread(m->be);
            if (!rc) s->tp_peer[r]->chunk = s->chunk;
        }
        glmv_model_unlock(m);
        if (rc) {
            glmv_session_free(s);
            return -1;
        }
    }
    *out = s;
    return 0;
}

/* tensor parallelism: s's sessions on the other ranks (after s left the model's lists, under its
 * lock: a pass or a sharing session may read them until then) */
static void free_peers(glmv_session *s) {
    if (!s->tp_peer) return;
    glmv_model_lock(s->m);
    for (int r = 1; r < glmv_tp_size(s->m->tp); r++) {
        glmv_session *p = s->tp_peer[r];
        if (!p) continue;
        rank_bind(p);
        glmv_session_free(p);
        rank_bind(s);
    }
    free(s->tp_peer);
    s->tp_peer = NULL;
    glmv_model_unlock(s->m);
}

void glmv_session_free(glmv_session *s) {
    if (!s) return;
    glmv_session_share(s, 0, NULL);
    glmv_model *m = s->m;
    glmv_backend *be = m->be;
    glmv_model_lock(m);
    for (int i = 0; i < m->n_sessions; i++)
        if (m->sessions[i] == s) {
            m->sessions[i] = m->sessions[--m->n_sessions];
            break;
        }
    if (s->kv_growing) glmv_kv_shrink(s, 0);
    glmv_model_unlock(m);
    free_peers(s);
    free(s->tp_stage);
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        if (s->kc && s->kc[l]) (s->kv_growing ? be->release : be->free)(be, s->kc[l]);
        if (s->vc && s->vc[l]) (s->kv_growing ? be->release : be->free)(be, s->vc[l]);
    }
    glmv_batch_free(s->b1);
    float *bufs[] = {s->x, s->xn, s->t1, s->q, s->att, s->gu, s->h, s->cos, s->sin, s->logits_dev};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->free(be, bufs[i]);
    free(s->kc);
    free(s->vc);
    free(s->hcos);
    free(s->hsin);
    free(s->hemb);
    free(s->hpos);
    free(s->epos);
    free(s->hist);
    free(s->seg_hash);
    free(s);
}

/* ------------------------------------------------------------------ the KV budget */

void glmv_model_kv_stats(glmv_model *m, glmv_kv_stats *out) {
    glmv_model_lock(m);
    *out = (glmv_kv_stats){m->kv_used, m->kv_budget, m->kv_evictions, m->kv_preemptions, m->be->reserve != NULL};
    glmv_model_unlock(m);
}

/* Bytes of one of s's K or V tensors (a layer's) that hold `rows` rows, in whole granules. */
static size_t kv_tensor_bytes(const glmv_session *s, int64_t rows) {
    size_t rb = glmv_kv_elt(s->m) * (size_t)glmv_kv_dim(s->m);
    return ((size_t)rows * rb + s->kv_granule - 1) / s->kv_granule * s->kv_granule;
}

void glmv_kv_shrink(glmv_session *s, int64_t rows) {
    for (int r = 1; s->tp_peer && r < glmv_tp_size(s->m->tp); r++) {
        glmv_session *p = s->tp_peer[r];
        if (!p) continue;
        if (p->m->be->bind_thread) p->m->be->bind_thread(p->m->be);
        glmv_kv_shrink(p, rows);
        if (s->m->be->bind_thread) s->m->be->bind_thread(s->m->be);
    }
    if (!s->kv_growing || !s->kv_granule) return; /* whole, or never reserved */
    glmv_model *m = s->m;
    glmv_backend *be = m->be;
    size_t rb = glmv_kv_elt(m) * (size_t)glmv_kv_dim(m);
    size_t keep = kv_tensor_bytes(s, rows);
    if (keep >= s->kv_bytes) return;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        be->decommit(be, s->kc[l], keep);
        be->decommit(be, s->vc[l], keep);
    }
    m->kv_used -= (int64_t)(s->kv_bytes - keep) * 2 * m->cfg.num_hidden_layers;
    s->kv_bytes = keep;
    s->kv_rows = (int64_t)(keep / rb);
    if (s->kv_rows > s->n_ctx) s->kv_rows = s->n_ctx;
}

/* An idle cache to give back: the least recently used session whose cache only waits for a
 * next request's prefix (not s, not one a generation runs on). */
static glmv_session *kv_victim(glmv_model *m, const glmv_session *s) {
    glmv_session *v = NULL;
    for (int i = 0; i < m->n_sessions; i++) {
        glmv_session *o = m->sessions[i];
        if (o == s || o->busy || !o->evictable || o->kv_bytes == 0) continue;
        if (!v || o->last_use < v->last_use) v = o;
    }
    return v;
}

static void kv_evict(glmv_session *o) {
    o->pos = 0;
    o->n_seg_hash = 0;
    glmv_kv_shrink(o, 0);
    o->m->kv_evictions++;
}

int glmv_kv_ensure(glmv_session *s, int64_t rows, char *err) {
    glmv_model *m = s->m;
    s->last_use = ++m->use_clock;
    if (rows <= s->kv_rows || !s->kv_growing) return 0;
    if (rows > s->n_ctx) rows = s->n_ctx;
    glmv_backend *be = m->be;
    int L = m->cfg.num_hidden_layers;
    size_t rb = glmv_kv_elt(m) * (size_t)glmv_kv_dim(m);
    size_t want = kv_tensor_bytes(s, rows);
    if (want > s->kv_reserved) want = s->kv_reserved;
    int64_t add = (int64_t)(want - s->kv_bytes) * 2 * L;
    for (;;) {
        glmv_session *v;
        if (m->kv_budget > 0 && m->kv_used + add > m->kv_budget) {
            if ((v = kv_victim(m, s)) != NULL) {
                kv_evict(v);
                continue;
            }
            return glmv_errc(err, GLMV_E_NOMEM, "KV cache memory exhausted: %lld MB of %lld MB in use, %lld MB more "
                             "asked for", (long long)(m->kv_used >> 20), (long long)(m->kv_budget >> 20),
                             (long long)(add >> 20));
        }
        int l = 0, ok = 1;
        for (; l < L && ok; l++) ok = be->commit(be, s->kc[l], want) == 0 && be->commit(be, s->vc[l], want) == 0;
        if (ok) break;
        for (int j = 0; j < l; j++) { /* nothing changed: back to what it was */
            be->decommit(be, s->kc[j], s->kv_bytes);
            be->decommit(be, s->vc[j], s->kv_bytes);
        }
        if ((v = kv_victim(m, s)) != NULL) { /* the device itself is full: an idle cache makes room */
            kv_evict(v);
            continue;
        }
        return glmv_errc(err, GLMV_E_NOMEM, "KV cache memory exhausted: the device has no room for %lld MB "
                         "more (%lld MB in use)", (long long)(add >> 20), (long long)(m->kv_used >> 20));
    }
    m->kv_used += add;
    s->kv_bytes = want;
    s->kv_rows = (int64_t)(want / rb);
    if (s->kv_rows > s->n_ctx) s->kv_rows = s->n_ctx;
    return 0;
}

void glmv_session_reset(glmv_session *s) {
    glmv_model_lock(s->m); /* a sharing session's pos is read by the others */
    s->pos = 0;
    s->rope_delta = 0;
    s->n_seg_hash = 0;
    glmv_kv_shrink(s, 0); /* the memory back to the budget */
    glmv_model_unlock(s->m);
}

int glmv_session_share(glmv_session *s, int on, char *err) {
    glmv_model *m = s->m;
    int rc = 0;
    glmv_model_lock(m);
    if (on && !s->sharing) {
        if (m->n_sharing == m->cap_sharing) {
            int cap = m->cap_sharing ? 2 * m->cap_sharing : 8;
            glmv_session **v = realloc(m->sharing, sizeof *v * (size_t)cap);
            if (v) {
                m->sharing = v;
                m->cap_sharing = cap;
            }
        }
        if (m->n_sharing < m->cap_sharing) {
            m->sharing[m->n_sharing++] = s;
            s->sharing = 1;
        } else {
            rc = glmv_errc(err, GLMV_E_NOMEM, "out of memory");
        }
    } else if (!on && s->sharing) {
        int j = 0;
        for (int i = 0; i < m->n_sharing; i++)
            if (m->sharing[i] != s) m->sharing[j++] = m->sharing[i];
        m->n_sharing = j;
        s->sharing = 0;
    }
    glmv_model_unlock(m);
    return rc;
}
int glmv_session_pos(const glmv_session *s) { return s->pos; }
int glmv_session_n_ctx(const glmv_session *s) { return s->n_ctx; }

/* Text ids at the current position; decode positions: s + rope_delta on all axes. */
int glmv_session_eval(glmv_session *s, const int32_t *ids, int n, float *logits, char *err) {
    if (n <= 0) return glmv_errf(err, "glmv_session_eval: no tokens");
    if (s->pos + n > s->n_ctx)
        return glmv_errc(err, GLMV_E_CONTEXT, "context full: %d cached + %d new tokens > n_ctx %d", s->pos, n,
                         s->n_ctx);
    /* one token on a backend that records graphs: the batched step, whose every argument
     * stays the same from token to token (positions and cache counts live in device
     * memory), so that it is replayed as one graph */
    if (n == 1 && s->m->be->graph_begin && !s->m->hook && !s->m->tp) {
        if (ids[0] < 0 || ids[0] >= s->m->cfg.vocab_size) /* as glmv_text_forward says it */
            return glmv_errf(err, "token id %d at 0 outside the vocabulary (%d)", ids[0], s->m->cfg.vocab_size);
        if (!s->b1 && glmv_batch_new(&s->b1, s->m, 1, err)) return -1;
        float *lg[1] = {logits};
        glmv_session *ss[1] = {s};
        return glmv_batch_decode(s->b1, ss, ids, 1, lg, err);
    }
    /* decode steps use the session's buffer: no allocation per token */
    int32_t *pos = n <= s->chunk ? s->epos : malloc(sizeof(int32_t) * 3 * (size_t)n);
    if (!pos) return glmv_errf(err, "out of memory");
    for (int i = 0; i < n; i++)
        pos[i] = pos[n + i] = pos[2 * n + i] = (int32_t)(s->pos + i + s->rope_delta);
    int rc = glmv_text_forward(s, NULL, ids, pos, n, logits, err);
    if (pos != s->epos) free(pos);
    return rc;
}

/* ------------------------------------------------------------------ generate */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

typedef struct {
    glmv_callback cb;
    void *user;
    int32_t token;
    int n_emit;
    int cancelled;
    sbuf reasoning, content;
    const char *const *stop;
    int n_stop;
    int stopped;
    const glmv_logprob *lp;     /* the current token's, or NULL */
} gen_state;

static void on_emit(void *user, glmv_text_kind kind, const char *text, size_t len) {
    gen_state *g = user;
    if (g->stopped) return;
    sbuf *b = kind == GLMV_TEXT_CONTENT ? &g->content : &g->reasoning;
    size_t before = b->n;
    sb_add(b, text, len);
    if (kind == GLMV_TEXT_CONTENT && g->n_stop > 0 && b->p) {
        /* stop strings: cut the answer at the first match, stream only what precedes it */
        for (int i = 0; i < g->n_stop; i++) {
            const char *st = g->stop[i];
            if (!st || !*st) continue;
            size_t from = before >= strlen(st) ? before - strlen(st) + 1 : 0;
            char *hit = strstr(b->p + from, st);
            if (hit) {
                size_t cut = (size_t)(hit - b->p);
                b->n = cut;
                b->p[cut] = 0;
                g->stopped = 1;
                len = cut > before ? cut - before : 0;
                break;
            }
        }
    }
    if (g->cb && len > 0 && !g->cancelled) {
        glmv_event ev = {g->token, text, len, kind, g->n_emit == 0, g->lp};
        if (g->cb(g->user, &ev)) g->cancelled = 1;
    }
    if (len > 0) g->n_emit++;
}

static int is_eos(const glmv_config *c, int32_t id) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] == id) return 1;
    return 0;
}

/* The media of a prompt in order of appearance. The vision tower sees one
 * segment per image and per video frame pair (grid); M-RoPE needs the
 * images' grids and the videos' grids apart. */
typedef struct {
    uint8_t *rows;   /* all patch rows [n_rows, K] as the pixels' bytes (glmv_patchify_u8) */
    int64_t n_rows;
    int64_t rows_cap; /* rows it has room for */
    glmv_patch_lut *luts; /* what the bytes stand for: the image and the video processors' */
    int n_luts;
    int *seg_lut;    /* per segment: its table in luts */
    int (*grid)[3];  /* vision segments: images and video frame pairs (1, gh, gw) */
    int n;
    int (*img_grid)[3];
    int n_img;
    int (*vid_grid)[3]; /* (frame pairs, gh, gw) per video */
    int **vid_ts;       /* per video: the timestamp of each frame pair */
    int n_vid;
} media;

static void media_free(media *md) {
    free(md->rows);
    free(md->luts);
    free(md->seg_lut);
    free(md->grid);
    free(md->img_grid);
    free(md->vid_grid);
    for (int i = 0; i < md->n_vid; i++) free(md->vid_ts[i]);
    free(md->vid_ts);
}

/* Append patch rows (bytes standing for lut's values) and one segment grid per frame pair (or the
 * image). The first medium's rows are taken as they are (*rows becomes NULL): a 1120x1120
 * image's are 7.5 MB, not worth copying into fresh memory; later ones are appended (into memory
 * that doubles, on huge pages). */
static int media_add_rows(media *md, uint8_t **rows, const int grid[3], int64_t K, const glmv_patch_lut *lut,
                          char *err) {
    int64_t per = (int64_t)grid[1] * grid[2], nr = per * grid[0];
    int(*g)[3] = realloc(md->grid, sizeof(int[3]) * (size_t)(md->n + grid[0]));
    if (g) md->grid = g;
    int *sl = g ? realloc(md->seg_lut, sizeof(int) * (size_t)(md->n + grid[0])) : NULL;
    if (sl) md->seg_lut = sl;
    int li = 0;
    while (li < md->n_luts && memcmp(&md->luts[li], lut, sizeof *lut)) li++;
    if (sl && li == md->n_luts) {
        glmv_patch_lut *l = realloc(md->luts, sizeof *l * (size_t)(md->n_luts + 1));
        if (l) {
            md->luts = l;
            l[md->n_luts++] = *lut;
        } else {
            sl = NULL;
        }
    }
    if (!sl) return glmv_errf(err, "out of memory for the patch rows of %d media", md->n + 1);
    if (!md->rows) {
        md->rows = *rows;
        md->rows_cap = nr;
        *rows = NULL;
    } else {
        if (md->n_rows + nr > md->rows_cap) { /* doubling: each row copied about once in all */
            int64_t cap = GLMV_MAX(md->n_rows + nr, 2 * md->rows_cap);
            uint8_t *all = glmv_alloc_big(glmv_mul_size((size_t)cap, (size_t)K));
            if (!all) return glmv_errf(err, "out of memory for the patch rows of %d media", md->n + 1);
            memcpy(all, md->rows, (size_t)(md->n_rows * K));
            free(md->rows);
            md->rows = all;
            md->rows_cap = cap;
        }
        memcpy(md->rows + md->n_rows * K, *rows, (size_t)(nr * K));
    }
    for (int t = 0; t < grid[0]; t++) {
        md->seg_lut[md->n] = li;
        md->grid[md->n][0] = 1;
        md->grid[md->n][1] = grid[1];
        md->grid[md->n][2] = grid[2];
        md->n++;
    }
    md->n_rows += nr;
    return 0;
}

glmv_image_params glmv_processor_params(const glmv_config *c, int video) {
    glmv_image_params ip;
    memset(&ip, 0, sizeof ip);
    ip.patch_size = c->proc_patch_size > 0 ? c->proc_patch_size : c->v_patch_size;
    ip.temporal_patch_size = c->proc_temporal_patch_size > 0 ? c->proc_temporal_patch_size : c->v_temporal_patch_size;
    ip.merge_size = c->proc_merge_size > 0 ? c->proc_merge_size : c->v_spatial_merge_size;
    ip.min_pixels = video ? c->vid_min_pixels : c->img_min_pixels;
    ip.max_pixels = video ? c->vid_max_pixels : c->img_max_pixels;
    memcpy(ip.mean, video ? c->vid_mean : c->img_mean, sizeof ip.mean);
    memcpy(ip.std, video ? c->vid_std : c->img_std, sizeof ip.std);
    ip.rescale_factor = c->img_rescale_factor > 0 ? c->img_rescale_factor : 1.0 / 255.0;
    return ip;
}

static int load_video(glmv_model *m, const glmv_part *pt, media *md, int64_t K, int64_t max_tokens,
                      char *err) {
    const glmv_config *c = &m->cfg;
    glmv_image_params ip = glmv_processor_params(c, 1);
    glmv_video_params vp = {.fps = pt->video_fps > 0 ? pt->video_fps : c->vid_fps,
                            .max_duration = c->vid_max_duration,
                            .max_frames = pt->video_max_frames,
                            .start = pt->video_start,
                            .end = pt->video_end,
                            .max_decode_pixels = m->params.max_decode_pixels,
                            .apply_rotation = 1,
                            .max_tokens = max_tokens};
    glmv_video v;
    if (glmv_video_load(pt->path, pt->data, pt->size, &vp, &ip, &v, err)) return -1;
    int rc = -1;
    int(*vg)[3] = realloc(md->vid_grid, sizeof(int[3]) * (size_t)(md->n_vid + 1));
    if (vg) md->vid_grid = vg;
    int **vt = realloc(md->vid_ts, sizeof(int *) * (size_t)(md->n_vid + 1));
    if (vt) md->vid_ts = vt;
    if (!vg || !vt) {
        glmv_errf(err, "out of memory");
        goto done;
    }
    if (media_add_rows(md, &v.rows, v.grid, K, &v.lut, err)) goto done;
    memcpy(md->vid_grid[md->n_vid], v.grid, sizeof v.grid);
    md->vid_ts[md->n_vid] = v.timestamps;
    v.timestamps = NULL;
    md->n_vid++;
    glmv_log(1, "video %s: %d frames sampled of %d at %.3f fps, grid (%d, %d, %d), decode %.0f ms, "
                "preprocess %.0f ms", pt->path ? pt->path : "(data)", v.n_frames, v.total_frames,
             v.video_fps, v.grid[0], v.grid[1], v.grid[2], v.decode_ms, v.preprocess_ms);
    rc = 0;
done:
    glmv_video_free(&v);
    return rc;
}

/* An image part's file decoded on its own thread: a prompt's images are decoded a window at a
 * time in parallel (each decoder is single-threaded), then resized and patchified in order. */
typedef struct {
    const glmv_part *pt;
    int64_t max_px;
    glmv_rgb rgb;
    int rc;
    glmv_errcode code; /* the decoder's kind of failure (kept per thread) */
    char err[GLMV_ERR_SIZE];
} decode_job;

static void *decode_main(void *arg) {
    decode_job *j = arg;
    j->rc = j->pt->path ? glmv_image_decode_file(j->pt->path, j->max_px, &j->rgb, j->err)
                        : glmv_image_decode_mem(j->pt->data, j->pt->size, j->max_px, &j->rgb, j->err);
    j->code = j->rc ? glmv_last_error() : GLMV_E_OK;
    return NULL;
}

/* Images decoded at once at most. Each of a window's decoders may make at most 1/window of
 * max_decode_pixels, so that together they hold no more than one image could; an image refused
 * by that share (or failing otherwise) is decoded again alone, with the whole allowance, when its
 * turn comes, and that decides. */
#define DECODE_WINDOW 8

static int load_images(glmv_model *m, const glmv_message *msgs, int n_msgs, int n_ctx, media *md,
                       char *err) {
    const glmv_config *c = &m->cfg;
    glmv_image_params ip = glmv_processor_params(c, 0);
    if ((m->params.min_image_tokens || m->params.max_image_tokens) &&
        glmv_image_apply_token_limits(&ip, m->params.min_image_tokens, m->params.max_image_tokens, err))
        return -1;
    glmv_patch_lut lut;
    glmv_patch_lut_init(&ip, &lut);
    int64_t K = (int64_t)c->v_in_channels * c->v_temporal_patch_size * c->v_patch_size * c->v_patch_size;
    int threads = m->params.n_threads > 0 ? m->params.n_threads : glmv_cpu_count();
    int window = GLMV_MAX(1, GLMV_MIN(threads, DECODE_WINDOW));
    decode_job jobs[DECODE_WINDOW];
    int have = 0, next = 0, rc = 0; /* jobs[next, have) decoded, not yet used */
    for (int i = 0; i < n_msgs && !rc; i++)
        for (int j = 0; j < msgs[i].n_parts && !rc; j++) {
            const glmv_part *pt = &msgs[i].parts[j];
            if (pt->kind == GLMV_PART_VIDEO) {
                /* vision tokens so far (rows are patches, merge_size^2 to a token) */
                int64_t used = md->n_rows / ((int64_t)ip.merge_size * ip.merge_size);
                if (load_video(m, pt, md, K, GLMV_MAX((int64_t)n_ctx - used, 1), err)) rc = -1;
                continue;
            }
            if (pt->kind != GLMV_PART_IMAGE) continue;
            if (next == have) { /* this image and the next ones, up to a window, in parallel */
                next = have = 0;
                for (int i2 = i, j2 = j; i2 < n_msgs && have < window; i2++, j2 = 0)
                    for (; j2 < msgs[i2].n_parts && have < window; j2++)
                        if (msgs[i2].parts[j2].kind == GLMV_PART_IMAGE) {
                            memset(&jobs[have], 0, sizeof jobs[have]);
                            jobs[have].pt = &msgs[i2].parts[j2];
                            jobs[have++].max_px = m->params.max_decode_pixels;
                        }
                for (int k = 0; have > 1 && k < have; k++) jobs[k].max_px /= have;
                glmv_run_jobs(decode_main, jobs, sizeof *jobs, have);
            }
            decode_job *jb = &jobs[next++];
            if (jb->rc && jb->max_px < m->params.max_decode_pixels) { /* alone, with the whole allowance */
                jb->max_px = m->params.max_decode_pixels;
                decode_main(jb);
            }
            glmv_rgb rgb = jb->rgb;
            jb->rgb.rgb = NULL;
            if (jb->rc) {
                if (!pt->path) /* name what failed: the decoder's message may not ("GIF: ...") */
                    glmv_errf(err, "cannot decode image %d: %s", md->n_img + 1, jb->err);
                else
                    snprintf(err, GLMV_ERR_SIZE, "%s", jb->err);
                glmv_errcode_set(jb->code);
                rc = -1;
                break;
            }
            /* a config with a huge min_pixels would upscale the image to gigabytes
             * of patch rows before the prompt is found not to fit: check first */
            int th, tw, fct = ip.patch_size * ip.merge_size;
            if (glmv_smart_resize(ip.temporal_patch_size, rgb.h, rgb.w, fct, ip.min_pixels,
                                  ip.max_pixels, &th, &tw, err)) {
                glmv_rgb_free(&rgb);
                rc = -1;
                break;
            }
            int64_t img_tokens = md->n_rows / ((int64_t)ip.merge_size * ip.merge_size) +
                                 ((int64_t)th / fct) * (tw / fct);
            if (img_tokens > n_ctx) {
                glmv_errc(err, GLMV_E_CONTEXT, "image %d (%dx%d, resized to %dx%d) brings the vision tokens to %lld, "
                          "beyond the context (n_ctx %d)", md->n_img + 1, rgb.w, rgb.h, tw, th,
                          (long long)img_tokens, n_ctx);
                glmv_rgb_free(&rgb);
                rc = -1;
                break;
            }
            uint8_t *rows = NULL;
            int grid[3];
            int prc = glmv_image_preprocess(&rgb, &ip, &rows, grid, err);
            glmv_rgb_free(&rgb);
            if (prc) {
                rc = -1;
                break;
            }
            int(*ig)[3] = realloc(md->img_grid, sizeof(int[3]) * (size_t)(md->n_img + 1));
            if (ig) md->img_grid = ig;
            prc = ig ? media_add_rows(md, &rows, grid, K, &lut, err) : glmv_errf(err, "out of memory");
            free(rows);
            if (prc) {
                rc = -1;
                break;
            }
            memcpy(md->img_grid[md->n_img++], grid, sizeof(int[3]));
        }
    for (int k = next; k < have; k++) glmv_rgb_free(&jobs[k].rgb); /* decoded, not reached (an error) */
    return rc;
}

/* Replace each <|video|> by its frame pairs as Glm4vProcessor does:
 * <|begin_of_image|><|image|><|end_of_image|>TIMESTAMP per pair, one
 * placeholder each (expanded next with the others). */
static int expand_videos(glmv_model *m, int32_t **ids, int64_t *n, const media *md, char *err) {
    const glmv_config *c = &m->cfg;
    int nv = 0;
    for (int64_t i = 0; i < *n; i++) nv += (*ids)[i] == c->video_token_id;
    if (nv != md->n_vid)
        return glmv_errf(err, "%d videos but %d video placeholders in the prompt (a text "
                         "holding the special token <|video|> makes one)", md->n_vid, nv);
    if (nv == 0) return 0;
    int64_t cap = *n + 1;
    for (int v = 0; v < md->n_vid; v++) cap += (int64_t)md->vid_grid[v][0] * 8;
    int32_t *o = malloc(sizeof(int32_t) * (size_t)cap);
    if (!o) return glmv_errf(err, "out of memory");
    int64_t j = 0;
    int v = 0;
    for (int64_t i = 0; i < *n; i++) {
        if ((*ids)[i] != c->video_token_id) {
            o[j++] = (*ids)[i];
            continue;
        }
        for (int k = 0; k < md->vid_grid[v][0]; k++) {
            char num[16];
            int32_t *tid = NULL;
            snprintf(num, sizeof num, "%d", md->vid_ts[v][k]);
            int64_t nt = glmv_tokenize(m->tok, num, strlen(num), &tid, err);
            if (nt < 0 || nt > 5) {
                free(tid);
                free(o);
                return nt < 0 ? -1 : glmv_errf(err, "timestamp %s tokenizes to %lld tokens", num, (long long)nt);
            }
            o[j++] = c->image_start_token_id;
            o[j++] = c->image_token_id;
            o[j++] = c->image_end_token_id;
            for (int64_t t = 0; t < nt; t++) o[j++] = tid[t];
            free(tid);
        }
        v++;
    }
    free(*ids);
    *ids = o;
    *n = j;
    return 0;
}

/* Replace each image placeholder by grid_t*grid_h*grid_w / merge² copies. */
static int expand_placeholders(const glmv_config *c, const int32_t *ids, int64_t n, const media *md,
                               int32_t **out, int64_t *n_out, char *err) {
    int ms2 = c->v_spatial_merge_size * c->v_spatial_merge_size, k = 0;
    int64_t total = n;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] == c->image_token_id) {
            if (k >= md->n)
                return glmv_errf(err, "prompt has more image placeholders than the %d images (a "
                                 "text holding the special token <|image|> makes one)", md->n);
            total += (int64_t)md->grid[k][0] * md->grid[k][1] * md->grid[k][2] / ms2 - 1;
            k++;
        }
    if (k != md->n)
        return glmv_errf(err, "%d images but %d image placeholders in the prompt (a text "
                         "holding the special token <|image|> makes one)", md->n, k);
    int32_t *o = malloc(sizeof(int32_t) * (size_t)GLMV_MAX(total, 1));
    if (!o) return glmv_errf(err, "out of memory");
    int64_t j = 0;
    k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] != c->image_token_id) {
            o[j++] = ids[i];
            continue;
        }
        int64_t cnt = (int64_t)md->grid[k][0] * md->grid[k][1] * md->grid[k][2] / ms2;
        for (int64_t t = 0; t < cnt; t++) o[j++] = c->image_token_id;
        k++;
    }
    *out = o;
    *n_out = total;
    return 0;
}

int glmv_session_prefill_mm(glmv_session *s, const int32_t *ids, int64_t n, const float *pixels,
                            int64_t n_rows, const int (*grid)[3], int n_img, float *logits,
                            double *vision_ms, char *err) {
    return glmv_session_prefill_media(s, ids, n, pixels, n_rows, grid, n_img, grid, n_img, NULL, 0,
                                      logits, vision_ms, err);
}

/* The inputs of the prompt ids[0, n) of which ids[0, start) are already in the cache
 * (s->pos == start) together with the vision segments before seg0 (rows and seg_grid
 * cover all segments, pixels included): the vision tower run on the rest, the embeddings of
 * tokens [start, n) with its features spliced in (*emb_out, backend, (n - start, H)) and
 * their M-RoPE positions (*pos_out, host, (3, n - start)); sets s->rope_delta, s->pos. */
static int prompt_inputs(glmv_session *s, const int32_t *ids, int64_t n, int64_t start, int seg0,
                         const glmv_patches *pixels_all, int64_t n_rows_all, const int (*seg_grid)[3],
                         int n_seg_all, const int (*img_grid)[3], int n_img,
                         const int (*vid_grid)[3], int n_vid, float **emb_out, int32_t **pos_out,
                         double *vision_ms, char *err) {
    glmv_model *m = s->m;
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    int64_t H = c->hidden_size;
    int64_t K = (int64_t)c->v_in_channels * c->v_temporal_patch_size * c->v_patch_size * c->v_patch_size;
    *emb_out = NULL;
    *pos_out = NULL;
    if (n > s->n_ctx)
        return glmv_errf(err, "prompt of %lld tokens does not fit: n_ctx %d", (long long)n, s->n_ctx);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return glmv_errf(err, "token id %d outside the vocabulary (%d)", ids[i], c->vocab_size);
    /* the segments still to run */
    int64_t row0 = 0;
    for (int j = 0; j < seg0; j++) row0 += (int64_t)seg_grid[j][0] * seg_grid[j][1] * seg_grid[j][2];
    glmv_patches pixels = {0};
    if (pixels_all) {
        pixels = *pixels_all;
        if (pixels.f32) pixels.f32 += row0 * K;
        if (pixels.u8) pixels.u8 += row0 * K;
        if (pixels.seg_lut) pixels.seg_lut += seg0;
    }
    int64_t n_rows = n_rows_all - row0;
    int n_seg = n_seg_all - seg0;
    seg_grid += seg0;
    int64_t nn = n - start; /* tokens to run */
    /* the backend is the model's: taken for each piece of work on it (glmv_model_lock) */
    int32_t *pos = malloc(sizeof(int32_t) * 3 * (size_t)n);
    glmv_model_lock(m);
    float *emb = nn > 0 ? be->alloc(be, glmv_mul_size((size_t)(nn * H), sizeof(float))) : NULL;
    /* the tokens' rows; with vision segments to run, those of their placeholders are left for
     * the features spliced in below (1,600 rows of a 1120x1120 image not gathered and written) */
    for (int64_t a = start; emb && a < n;) {
        int64_t b = a;
        if (n_seg > 0 && ids[a] == c->image_token_id) {
            while (b < n && ids[b] == c->image_token_id) b++;
        } else {
            while (b < n && !(n_seg > 0 && ids[b] == c->image_token_id)) b++;
            glmv_model_embed(m, emb + (a - start) * H, ids + a, b - a, s->hemb, s->hemb_rows);
        }
        a = b;
    }
    glmv_model_unlock(m);
    float *feat = NULL;
    int rc = -1;
    int64_t delta = 0;
    if (!pos || (nn > 0 && !emb)) {
        glmv_errf(err, "out of memory for a prompt of %lld tokens", (long long)n);
        goto done;
    }
    if (glmv_rope_index(c, ids, n, img_grid, n_img, vid_grid, n_vid, pos, &delta, err)) goto done;
    for (int a = 0; a < 3; a++) memmove(pos + a * nn, pos + a * n + start, sizeof(int32_t) * (size_t)nn);
    if (n_seg > 0) {
        int64_t ms2 = (int64_t)c->v_spatial_merge_size * c->v_spatial_merge_size;
        int64_t n_feat = n_rows / ms2, k = 0;
        glmv_model_lock(m);
        feat = be->alloc(be, glmv_mul_size((size_t)(n_feat * c->v_out_hidden_size), sizeof(float)));
        glmv_model_unlock(m);
        if (!feat) {
            glmv_errf(err, "out of memory for %lld vision tokens", (long long)n_feat);
            goto done;
        }
        double t0 = glmv_now_ms();
        if (glmv_vision_forward_patches(m, &pixels, n_rows, seg_grid, n_seg, feat, err)) goto done;
        if (vision_ms) *vision_ms = glmv_now_ms() - t0;
        if (c->v_out_hidden_size != H) {
            glmv_errf(err, "vision out_hidden_size %d != text hidden_size %lld", c->v_out_hidden_size,
                      (long long)H);
            goto done;
        }
        /* ref: Glm4vModel.forward masked_scatter: placeholders in order */
        for (int64_t i = start; i < n; i++)
            if (ids[i] == c->image_token_id) k++;
        if (k > n_feat) {
            glmv_errf(err, "more image placeholders than the %lld vision tokens", (long long)n_feat);
            goto done;
        }
        k = 0;
        glmv_model_lock(m);
        for (int64_t i = start; i < n;) { /* one copy per run of placeholders */
            if (ids[i] != c->image_token_id) {
                i++;
                continue;
            }
            int64_t j = i;
            while (j < n && ids[j] == c->image_token_id) j++;
            be->copy(be, emb + (i - start) * H, feat + k * H, sizeof(float) * (size_t)((j - i) * H));
            k += j - i;
            i = j;
        }
        glmv_model_unlock(m);
        if (k != n_feat) {
            glmv_errf(err, "%lld image placeholders for %lld vision tokens", (long long)k,
                      (long long)n_feat);
            goto done;
        }
    }
    glmv_model_lock(m);
    s->rope_delta = delta;
    s->pos = (int)start;
    glmv_model_unlock(m);
    rc = 0;
done:
    glmv_model_lock(m);
    if (feat) be->free(be, feat);
    if (rc && emb) be->free(be, emb);
    glmv_model_unlock(m);
    if (rc) {
        free(pos);
        return -1;
    }
    *emb_out = emb;
    *pos_out = pos;
    return 0;
}

/* Prefill the prompt ids[0, n) of which ids[0, start) are already in the cache
 * (prompt_inputs, then the decoder over tokens [start, n)). */
static int prefill_from(glmv_session *s, const int32_t *ids, int64_t n, int64_t start, int seg0,
                        const glmv_patches *pixels_all, int64_t n_rows_all, const int (*seg_grid)[3],
                        int n_seg_all, const int (*img_grid)[3], int n_img,
                        const int (*vid_grid)[3], int n_vid, float *logits, double *vision_ms,
                        char *err) {
    float *emb;
    int32_t *pos;
    if (prompt_inputs(s, ids, n, start, seg0, pixels_all, n_rows_all, seg_grid, n_seg_all, img_grid, n_img,
                      vid_grid, n_vid, &emb, &pos, vision_ms, err))
        return -1;
    int64_t nn = n - start;
    int rc = nn > 0 ? glmv_text_forward(s, emb, ids + start, pos, nn, logits, err) : 0;
    free(pos);
    glmv_model_lock(s->m);
    if (emb) s->m->be->free(s->m->be, emb);
    glmv_model_unlock(s->m);
    return rc;
}

int glmv_session_prefill_media(glmv_session *s, const int32_t *ids, int64_t n, const float *pixels,
                               int64_t n_rows, const int (*seg_grid)[3], int n_seg,
                               const int (*img_grid)[3], int n_img, const int (*vid_grid)[3],
                               int n_vid, float *logits, double *vision_ms, char *err) {
    glmv_session_reset(s);
    const glmv_patches px = {.f32 = pixels};
    return prefill_from(s, ids, n, 0, 0, pixels ? &px : NULL, n_rows, seg_grid, n_seg, img_grid, n_img, vid_grid,
                        n_vid, logits, vision_ms, err);
}

/* A segment's identity in the cache: SipHash of its pixel rows' bytes under this
 * process's random key, with the grid and lh, the SipHash of the bytes' table (what
 * they stand for; lut_hash), folded into the key (so one client cannot craft an image that
 * another client's cached image would match) */
/* (7.5 MB for a 1120x1120 image: on the model's threads, ~2 ms on one Zen 5 core) */
static uint64_t seg_hash(const int grid[3], uint64_t lh, const uint8_t *rows, int64_t n, int threads) {
    uint8_t key[16];
    memcpy(key, glmv_hash_key(), sizeof key);
    for (int b = 0; b < 4; b++) key[12 + b] ^= (uint8_t)(lh >> (8 * b)); /* (bytes 12-15 are the key's own) */
    for (int i = 0; i < 3; i++) {
        uint32_t g = (uint32_t)grid[i];
        for (int b = 0; b < 4; b++) key[4 * i + b] ^= (uint8_t)(g >> (8 * b));
    }
    return glmv_siphash_chunked(key, rows, (size_t)n, threads);
}

/* a patch table's SipHash under this process's key, for seg_hash */
static uint64_t lut_hash(const glmv_patch_lut *lut) { return glmv_siphash(glmv_hash_key(), lut, sizeof *lut); }

/* How much of the cache a new prompt can keep: the common prefix of ids,
 * cut before the first vision segment that is not identical (or that the
 * prefix ends inside), and short of the last token (its logits are needed).
 * *seg0 receives the number of segments kept; hashes (n_seg) are the new ones. */
static int64_t reusable_prefix(const glmv_session *s, const glmv_config *c, const int32_t *ids,
                               int64_t n, const int (*grid)[3], const uint64_t *hashes, int n_seg,
                               int *seg0) {
    int64_t L = 0;
    while (L < s->pos && L < n && s->hist[L] == ids[L]) L++;
    if (L >= n) L = n - 1;
    int ms2 = c->v_spatial_merge_size * c->v_spatial_merge_size, j = 0;
    for (int64_t i = 0; i < n && j < n_seg;) {
        if (ids[i] != c->image_token_id) {
            i++;
            continue;
        }
        int64_t a = i, b = i + (int64_t)grid[j][0] * grid[j][1] * grid[j][2] / ms2;
        if (a >= L) break;
        if (b > L || j >= s->n_seg_hash || s->seg_hash[j] != hashes[j]) {
            L = a;
            break;
        }
        j++;
        i = b;
    }
    *seg0 = j;
    return L < 0 ? 0 : L;
}

/* The longest prefix of the prompt that another sharing session holds, when longer than
 * the `own` tokens s keeps: its rows [own, L) of every layer's keys and values, its ids
 * and its segments' hashes copied into s. Called under the model lock, under which the
 * other sessions' caches and what describes them change. Returns the tokens s now holds
 * (*seg0 the segments among them). */
static int64_t share_prefix(glmv_session *s, const glmv_config *c, const int32_t *ids, int64_t n,
                            const int (*grid)[3], const uint64_t *hashes, int n_seg, int64_t own,
                            int *seg0) {
    glmv_model *m = s->m;
    const glmv_session *d = NULL;
    int64_t best = own;
    int best_seg = *seg0;
    for (int i = 0; i < m->n_sharing; i++) {
        const glmv_session *o = m->sharing[i];
        if (o == s || o->pos <= best || o->suspended) continue;
        int sg = 0;
        int64_t L = reusable_prefix(o, c, ids, n, grid, hashes, n_seg, &sg);
        if (L > best) {
            best = L;
            best_seg = sg;
            d = o;
        }
    }
    if (!d) return own;
    char e2[GLMV_ERR_SIZE];
    /* room for the copy, but not by giving back the cache it is copied from */
    glmv_session *dm = (glmv_session *)d;
    int was_busy = dm->busy;
    dm->busy = 1;
    int no_room = glmv_kv_ensure(s, best, e2);
    dm->busy = was_busy;
    if (no_room) return own; /* computed as it comes */
    if (best_seg > s->cap_seg_hash) {
        uint64_t *nh = realloc(s->seg_hash, sizeof(uint64_t) * (size_t)best_seg);
        if (!nh) return own; /* computed instead */
        s->seg_hash = nh;
        s->cap_seg_hash = best_seg;
    }
    for (int r = 1; r < glmv_tp_size(m->tp); r++) { /* tensor parallelism: every rank's caches */
        glmv_session *ps = s->tp_peer[r];
        ps->pos = s->pos;
        rank_bind(ps);
        no_room = glmv_kv_ensure(ps, best, e2);
        rank_bind(s);
        if (no_room) return own;
    }
    size_t bytes = glmv_kv_elt(m) * (size_t)((best - own) * glmv_kv_dim(m));
    for (int r = 0; r < glmv_tp_size(m->tp); r++) {
        glmv_session *rs = rank_sess(s, r);
        const glmv_session *rd = r ? d->tp_peer[r] : d;
        glmv_backend *be = rs->m->be;
        rank_bind(rs);
        for (int l = 0; l < c->num_hidden_layers; l++) {
            be->copy(be, glmv_kv_row(m, rs->kc[l], own), glmv_kv_row(m, rd->kc[l], own), bytes);
            be->copy(be, glmv_kv_row(m, rs->vc[l], own), glmv_kv_row(m, rd->vc[l], own), bytes);
        }
    }
    rank_bind(s);
    memcpy(s->hist + own, d->hist + own, sizeof(int32_t) * (size_t)(best - own));
    if (best_seg > 0) memcpy(s->seg_hash, d->seg_hash, sizeof(uint64_t) * (size_t)best_seg);
    s->n_seg_hash = best_seg;
    *seg0 = best_seg;
    return best;
}

void glmv_result_free(glmv_result *r) {
    if (!r) return;
    free(r->reasoning);
    free(r->content);
    free(r->token_ids);
    free(r->logprobs);
    memset(r, 0, sizeof *r);
}

/* What the library is handed is checked before any work: the command line
 * and the server validate their input too, but a library caller's NULL text,
 * unknown part kind or NaN temperature must give an error, not a crash or a
 * sampler that quietly does something else. */
static int check_messages(const glmv_message *msgs, int n_msgs, char *err) {
    if (n_msgs < 0 || (n_msgs > 0 && !msgs))
        return glmv_errf(err, "generate: %d messages at %p", n_msgs, (const void *)msgs);
    for (int i = 0; i < n_msgs; i++) {
        const glmv_message *m = &msgs[i];
        if (m->n_parts < 0 || (m->n_parts > 0 && !m->parts))
            return glmv_errf(err, "generate: message %d has n_parts %d and parts %p", i, m->n_parts,
                             (const void *)m->parts);
        for (int k = 0; k < m->n_parts; k++) {
            const glmv_part *p = &m->parts[k];
            if (p->kind == GLMV_PART_TEXT) {
                if (!p->text) return glmv_errf(err, "generate: message %d part %d: text is NULL", i, k);
            } else if (p->kind == GLMV_PART_IMAGE || p->kind == GLMV_PART_VIDEO || p->kind == GLMV_PART_PDF) {
                if (!p->path && !p->data)
                    return glmv_errf(err, "generate: message %d part %d: no path and no data", i, k);
                if (p->kind == GLMV_PART_VIDEO &&
                    (!(p->video_fps >= 0 && p->video_fps <= 1e4) || p->video_max_frames < 0 ||
                     !(p->video_start >= 0 && p->video_start < 1e12) ||
                     !(p->video_end >= 0 && p->video_end < 1e12)))
                    return glmv_errf(err, "generate: message %d part %d: video fps %g, max_frames %d, "
                                     "start %g, end %g out of range", i, k, p->video_fps,
                                     p->video_max_frames, p->video_start, p->video_end);
            } else {
                return glmv_errf(err, "generate: message %d part %d: unknown kind %d", i, k,
                                 (int)p->kind);
            }
        }
    }
    return 0;
}

static int check_sampling(const glmv_sampling *sp, int vocab, char *err) {
    if (sp->max_new_tokens < 0 || sp->max_thinking_tokens < 0 || sp->top_k < 0)
        return glmv_errf(err, "generate: max_new_tokens %d, max_thinking_tokens %d, top_k %d: "
                         "none may be negative", sp->max_new_tokens, sp->max_thinking_tokens, sp->top_k);
    if (!(sp->temperature >= 0 && sp->temperature <= 1e6))
        return glmv_errf(err, "generate: temperature %g is not in [0, 1e6]", sp->temperature);
    if (!(sp->top_p >= 0 && sp->top_p <= 1))
        return glmv_errf(err, "generate: top_p %g is not in [0, 1]", sp->top_p);
    if (!(sp->repetition_penalty > 0 && sp->repetition_penalty <= 1e6))
        return glmv_errf(err, "generate: repetition_penalty %g is not in (0, 1e6]",
                         sp->repetition_penalty);
    if (!(sp->presence_penalty >= -2 && sp->presence_penalty <= 2) ||
        !(sp->frequency_penalty >= -2 && sp->frequency_penalty <= 2))
        return glmv_errf(err, "generate: presence_penalty %g, frequency_penalty %g: each must be "
                         "in [-2, 2]", sp->presence_penalty, sp->frequency_penalty);
    if (!(sp->min_p >= 0 && sp->min_p <= 1) || sp->min_tokens < 0)
        return glmv_errf(err, "generate: min_p %g (must be in [0, 1]), min_tokens %d (must not be "
                         "negative)", sp->min_p, sp->min_tokens);
    if (sp->n_bias < 0 || (sp->n_bias > 0 && (!sp->bias_ids || !sp->bias_values)))
        return glmv_errf(err, "generate: n_bias %d with bias_ids %p, bias_values %p", sp->n_bias,
                         (const void *)sp->bias_ids, (const void *)sp->bias_values);
    for (int i = 0; i < sp->n_bias; i++)
        if (sp->bias_ids[i] < 0 || sp->bias_ids[i] >= vocab ||
            !(sp->bias_values[i] >= -100 && sp->bias_values[i] <= 100))
            return glmv_errf(err, "generate: logit bias %d: id %d (vocabulary %d), value %g (must be "
                             "in [-100, 100])", i, sp->bias_ids[i], vocab, sp->bias_values[i]);
    if (sp->logprobs && (sp->top_logprobs < 0 || sp->top_logprobs > GLMV_MAX_TOP_LOGPROBS))
        return glmv_errf(err, "generate: top_logprobs %d is not in [0, %d]", sp->top_logprobs,
                         GLMV_MAX_TOP_LOGPROBS);
    if (sp->n_stop < 0 || (sp->n_stop > 0 && !sp->stop))
        return glmv_errf(err, "generate: n_stop %d with stop %p", sp->n_stop, (const void *)sp->stop);
    for (int i = 0; i < sp->n_stop; i++)
        if (!sp->stop[i] || !sp->stop[i][0])
            return glmv_errf(err, "generate: stop string %d is NULL or empty", i);
    return 0;
}

int glmv_json_schema_check(const char *schema, char *err) {
    glmv_schema *c = glmv_schema_compile(schema, err);
    glmv_schema_free(c);
    return c ? 0 : -1;
}

/* JSON answers: the schema, where the answer stands, and the mask's buffers */
typedef struct {
    glmv_schema *schema;
    glmv_json_state st;
    glmv_json_state *scratch;
    uint8_t *allow;
    const glmv_vocab_index *vi;
    int32_t think_id, answer_id;
} json_out;

static pthread_mutex_t vocab_index_mu = PTHREAD_MUTEX_INITIALIZER;

static int json_out_init(json_out *j, glmv_model *m, const glmv_sampling *sp, char *err) {
    memset(j, 0, sizeof *j);
    char e2[GLMV_ERR_SIZE];
    j->schema = glmv_schema_compile(sp->json_schema, e2);
    if (!j->schema) return glmv_errf(err, "response format: %s", e2);
    pthread_mutex_lock(&vocab_index_mu); /* sessions may share the model */
    if (!m->vocab_index) m->vocab_index = glmv_vocab_index_new(m->tok);
    j->vi = m->vocab_index;
    pthread_mutex_unlock(&vocab_index_mu);
    if (!j->vi) return glmv_errf(err, "out of memory");
    j->scratch = malloc(sizeof(glmv_json_state) * (size_t)(glmv_vocab_index_max_len(j->vi) + 1));
    j->allow = malloc((size_t)m->cfg.vocab_size);
    if (!j->scratch || !j->allow) return glmv_errf(err, "out of memory");
    glmv_json_init(&j->st, j->schema);
    j->think_id = glmv_token_id(m->tok, "<think>");
    j->answer_id = glmv_token_id(m->tok, "<answer>");
    return 0;
}

static void json_out_free(json_out *j) {
    glmv_schema_free(j->schema);
    free(j->scratch);
    free(j->allow);
}

/* Mask the logits to what keeps the answer valid JSON: <think> as the first
 * token, <answer> before the JSON starts, the eos ids once it is complete. */
static int json_out_mask(json_out *j, const glmv_config *c, float *logits, int V, int n_gen, char *err) {
    int n = glmv_schema_mask(&j->st, j->vi, j->allow, V, j->scratch);
    if (!j->st.started) {
        if (n_gen == 0 && j->think_id >= 0 && j->think_id < V) j->allow[j->think_id] = 1, n++;
        if (j->answer_id >= 0 && j->answer_id < V) j->allow[j->answer_id] = 1, n++;
    }
    if (glmv_json_complete(&j->st))
        for (int e = 0; e < c->n_eos; e++)
            if (c->eos_token_ids[e] >= 0 && c->eos_token_ids[e] < V) j->allow[c->eos_token_ids[e]] = 1, n++;
    if (n == 0) return glmv_errf(err, "JSON answer: no token can continue it");
    for (int i = 0; i < V; i++)
        if (!j->allow[i]) logits[i] = -INFINITY;
    return 0;
}

/* The token taken: JSON bytes advance the answer; <think>/<answer>/eos do not. */
static int json_out_take(json_out *j, const glmv_tokenizer *tok, int32_t id, char *err) {
    if (glmv_token_is_added(tok, id)) return 0;
    size_t len = 0;
    const char *b = glmv_token_bytes(tok, id, &len);
    if (!b || glmv_json_feed(&j->st, b, len))
        return glmv_errf(err, "JSON answer: token %d does not continue it", id);
    return 0;
}

/* One generation in flight on a session: glmv_gen_start runs the prompt and its prefill,
 * then glmv_gen_step picks each token from the logits of the one before and streams it,
 * and the caller evaluates the token it names (alone, or with other generations' tokens
 * in one batched forward: glmv_gen_eval_batch), until glmv_gen_step says it is done. */
struct glmv_gen {
    glmv_session *s;
    int raw;                    /* a raw prompt: no <think>/<answer> split */
    int keep_tags;              /* a chat prompt whose output is streamed unsplit (sp.keep_tags) */
    glmv_sampling sp;
    float *logits;              /* (V) the logits the next token is picked from */
    glmv_top top;               /* or, when top.n > 0, the best of them (glmv_gen_eval_batch) */
    float *wf, *raw_logits;
    int32_t *wi, *gen, *force;
    glmv_logprob *lps;
    glmv_splitter *spl;
    glmv_detok dt;
    json_out jo;
    int have_jo;
    gen_state g;
    glmv_rng rng;
    int max_new, n_gen, n_think, forced, n_force, i_force;
    const char *finish;
    int done;
    int32_t next;               /* the token to evaluate before the next step */
    glmv_result res;            /* prompt counts and timings so far */
    double t1, t2;              /* the prompt's run stage began, the first token could be picked */
    /* a prompt left for glmv_gen_eval_batch (glmv_gen_begin_prompt): tokens [pf_off, pf_n) of
     * what was not cached, their ids, embeddings (backend) and positions (3, pf_n), and the
     * prompt's vision segments, recorded in the session once all of it is in the cache */
    int32_t *pf_ids, *pf_pos;
    float *pf_emb;
    int64_t pf_n, pf_off;
    uint64_t *pf_hs;
    int pf_nseg;
    /* the KV budget (glmv_gen_eval_batch): the newest generation (ticket) gives way when memory
     * runs out; preempted, its rows are in swap (host, K then V of every layer) until it
     * resumes; waiting: its work was not done in the last pass (no memory for it) */
    uint64_t ticket;
    char *swap;
    int64_t back_at;            /* its position when it last came back (-1: never preempted) */
    int waiting;
    /* a generation that cannot go on by itself (its sequence can never fit the KV budget) while
     * the others in its pass do: why, for its next glmv_gen_step */
    glmv_errcode fail_code;
    char *fail_msg;
};

/* How many best logits the next pick needs instead of the whole row (glmv_sample_top_k); 0: the
 * whole row (log-probabilities, a JSON answer, eos held back by min_tokens, penalties, a bias,
 * sampling without a small top-k). */
static int gen_top_k(const glmv_gen *q) {
    if (q->s->m->whole_logits || q->lps || q->have_jo || q->n_gen < q->sp.min_tokens) return 0;
    return glmv_sample_top_k(&q->sp, q->s->m->cfg.vocab_size);
}

/* The item that evaluates rows of q and asks for its logits (or its best ones) when `last`. */
static glmv_batch_item gen_item(glmv_gen *q, int64_t n, const int32_t *ids, const float *x, const int32_t *pos,
                                int64_t pos_stride, int last) {
    int tk = last ? gen_top_k(q) : 0;
    q->top.k = tk;
    q->top.n = 0;
    return (glmv_batch_item){q->s, n, ids, x, pos, pos_stride, last ? q->logits : NULL, tk ? &q->top : NULL,
                             tk ? &q->sp : NULL};
}

/* The prompt's inputs released (the embeddings under the model lock: they are the backend's). */
static void gen_prompt_free(glmv_gen *q) {
    if (q->pf_emb) {
        glmv_model *m = q->s->m;
        glmv_model_lock(m);
        m->be->free(m->be, q->pf_emb);
        glmv_model_unlock(m);
    }
    free(q->pf_ids);
    free(q->pf_pos);
    free(q->pf_hs);
    q->pf_emb = NULL;
    q->pf_ids = q->pf_pos = NULL;
    q->pf_hs = NULL;
}

/* After a prefill: the prompt's vision segments recorded as the session's (the next request
 * keeps the prefix they are part of), or none when it failed. */
static void record_segments(glmv_session *s, const uint64_t *hs, int n_seg, int ok) {
    glmv_model *m = s->m;
    glmv_model_lock(m);
    if (ok && n_seg > s->cap_seg_hash) {
        uint64_t *nh = realloc(s->seg_hash, sizeof(uint64_t) * (size_t)n_seg);
        if (nh) {
            s->seg_hash = nh;
            s->cap_seg_hash = n_seg;
        }
    }
    if (ok && n_seg <= s->cap_seg_hash) {
        if (n_seg > 0) memcpy(s->seg_hash, hs, sizeof(uint64_t) * (size_t)n_seg);
        s->n_seg_hash = n_seg;
    } else {
        s->n_seg_hash = 0;
    }
    glmv_model_unlock(m);
}

/* the splitter's view of where the output is; a raw prompt's output is all content */
static glmv_text_kind gen_state_kind(const glmv_gen *q) {
    return q->raw ? GLMV_TEXT_CONTENT : glmv_splitter_state(q->spl);
}

/* what the caller is told the text is: all content when it is not split */
static glmv_text_kind event_kind(const glmv_gen *q) {
    return q->keep_tags ? GLMV_TEXT_CONTENT : gen_state_kind(q);
}

/* keep_tags: the splitter only tracks where the output is; its text is not used */
static void discard_emit(void *user, glmv_text_kind kind, const char *text, size_t len) {
    (void)user, (void)kind, (void)text, (void)len;
}

void glmv_gen_free(glmv_gen *q) {
    if (!q) return;
    gen_prompt_free(q);
    glmv_session *s = q->s;
    glmv_model_lock(s->m); /* the cache now only waits for a next request (a preempted one is gone) */
    if (s->suspended) {
        s->suspended = 0;
        s->pos = 0;
        s->n_seg_hash = 0;
    }
    s->busy = 0;
    s->evictable = 1;
    glmv_model_unlock(s->m);
    free(q->swap);
    free(q->fail_msg);
    if (q->have_jo) json_out_free(&q->jo);
    if (q->spl) glmv_splitter_free(q->spl);
    free(q->g.reasoning.p);
    free(q->g.content.p);
    free(q->gen);
    free(q->force);
    glmv_logits_free(q->s->m, q->logits);
    free(q->raw_logits);
    free(q->lps);
    free(q->wf);
    free(q->wi);
    free(q);
}

int32_t glmv_gen_token(const glmv_gen *q) { return q->next; }
int glmv_gen_prompt_left(const glmv_gen *q) { return (int)(q->pf_n - q->pf_off); }
int glmv_gen_pending(const glmv_gen *q) {
    return !q->fail_code && (q->pf_off < q->pf_n || q->waiting || q->s->suspended);
}
glmv_session *glmv_gen_session(const glmv_gen *q) { return q->s; }

/* The prompt stage: what a request's messages become before any model computation, read-only
 * on the model and so safe on any thread (glmv_prompt_new): the template rendered, the media
 * decoded and patchified, the text tokenized, placeholders expanded, each vision segment's
 * identity hashed for the cache. */
struct glmv_prompt {
    glmv_model *m;
    int raw;                    /* a raw prompt: no <think>/<answer> split */
    int32_t *ids;
    int64_t n;
    media md;
    uint64_t *hs;               /* per vision segment: seg_hash (md.n entries) */
    int n_ctx;                  /* the context its vision tokens were checked against */
    int image_tokens;
    double preprocess_ms;
};

void glmv_prompt_free(glmv_prompt *p) {
    if (!p) return;
    free(p->ids);
    media_free(&p->md);
    free(p->hs);
    free(p);
}

int glmv_prompt_tokens(const glmv_prompt *p) { return (int)p->n; }

const int32_t *glmv_prompt_ids(const glmv_prompt *p) { return p->ids; }

static int prompt_new(glmv_prompt **out, glmv_model *m, const glmv_message *msgs, int n_msgs,
                      const char *raw, int n_ctx, char *err) {
    const glmv_config *c = &m->cfg;
    *out = NULL;
    glmv_errcode_set(GLMV_E_OK);
    if (!m->tok || !m->tmpl) {
        if (!strncmp(m->dir, "synthetic:", 10))
            return glmv_errc(err, GLMV_E_INVALID,
                             "%s: random weights have no tokenizer: cannot generate from messages (give "
                             "one: --tokenizer DIR, a folder with the checkpoint's tokenizer.json)", m->dir);
        return glmv_errc(err, GLMV_E_INVALID, "%s/tokenizer.json: not found (the checkpoint's tokenizer "
                         "is needed to generate from messages)", m->dir);
    }
    if (check_messages(msgs, n_msgs, err)) {
        glmv_errcode_set(GLMV_E_INVALID);
        return -1;
    }
    if (n_ctx <= 0) n_ctx = 1 << 24;
    /* PDF parts become their pages, as images, before anything else sees the messages */
    glmv_pdf_expansion px = {0};
    if (!raw) {
        glmv_image_params ip = glmv_processor_params(c, 0);
        if ((m->params.min_image_tokens || m->params.max_image_tokens) &&
            glmv_image_apply_token_limits(&ip, m->params.min_image_tokens, m->params.max_image_tokens, err))
            return glmv_errc(err, GLMV_E_INVALID, "%s", err);
        if (glmv_pdf_expand(msgs, n_msgs, ip.max_pixels / ip.temporal_patch_size,
                            ip.patch_size * ip.merge_size, n_ctx, &px, err)) {
            glmv_errcode_default(GLMV_E_MEDIA);
            return -1;
        }
        msgs = px.msgs;
    }
    glmv_prompt *p = calloc(1, sizeof *p);
    if (!p) {
        glmv_pdf_expansion_free(&px);
        return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
    }
    p->m = m;
    p->raw = raw != NULL;
    p->n_ctx = n_ctx;
    double t0 = glmv_now_ms();
    char *text = NULL;
    int32_t *ids0 = NULL;
    int64_t n0 = 0;
    int rc = -1;
    text = raw ? strdup(raw) : glmv_chat_render(m->tmpl, msgs, n_msgs, 1, err);
    if (!text) {
        if (raw) glmv_errc(err, GLMV_E_NOMEM, "out of memory");
        else glmv_errcode_default(GLMV_E_INVALID);
        goto done;
    }
    if (!raw && load_images(m, msgs, n_msgs, n_ctx, &p->md, err)) {
        glmv_errcode_default(strstr(err, "out of memory") ? GLMV_E_NOMEM : GLMV_E_MEDIA);
        goto done;
    }
    /* a prompt longer than the context could hold at the longest token is refused before
     * tokenizing it (a 62 MB text would take seconds and gigabytes to be told so) */
    if (m->max_token_bytes > 0 && (int64_t)strlen(text) > (int64_t)n_ctx * m->max_token_bytes) {
        glmv_errc(err, GLMV_E_CONTEXT, "the prompt has %zu bytes: more than the context (n_ctx %d) "
                  "holds, even at %lld bytes a token", strlen(text), n_ctx, (long long)m->max_token_bytes);
        goto done;
    }
    n0 = glmv_tokenize(m->tok, text, strlen(text), &ids0, err);
    if (n0 < 0 || expand_videos(m, &ids0, &n0, &p->md, err) ||
        expand_placeholders(c, ids0, n0, &p->md, &p->ids, &p->n, err)) {
        glmv_errcode_default(GLMV_E_INVALID); /* e.g. an <|image|> the request has no image for */
        goto done;
    }
    p->image_tokens = (int)(p->md.n_rows / (c->v_spatial_merge_size * c->v_spatial_merge_size));
    /* each vision segment's identity in the cache */
    int64_t K = (int64_t)c->v_in_channels * c->v_temporal_patch_size * c->v_patch_size * c->v_patch_size;
    p->hs = malloc(sizeof(uint64_t) * (size_t)(p->md.n + 1));
    if (!p->hs) {
        glmv_errc(err, GLMV_E_NOMEM, "out of memory");
        goto done;
    }
    int64_t r = 0;
    uint64_t lh = 0; /* the table's hash, once a run of segments with one table (a video's frame pairs) */
    for (int j = 0; j < p->md.n; j++) {
        int64_t nr = (int64_t)p->md.grid[j][0] * p->md.grid[j][1] * p->md.grid[j][2];
        if (j == 0 || p->md.seg_lut[j] != p->md.seg_lut[j - 1]) lh = lut_hash(&p->md.luts[p->md.seg_lut[j]]);
        p->hs[j] = seg_hash(p->md.grid[j], lh, p->md.rows + r * K, nr * K,
                            m->params.n_threads > 0 ? m->params.n_threads : glmv_cpu_count());
        r += nr;
    }
    p->preprocess_ms = glmv_now_ms() - t0;
    rc = 0;
done:
    free(text);
    free(ids0);
    glmv_pdf_expansion_free(&px);
    if (rc) glmv_prompt_free(p);
    else *out = p;
    return rc;
}

int glmv_prompt_new(glmv_prompt **out, glmv_model *m, const glmv_message *msgs, int n_msgs,
                    int n_ctx, char *err) {
    return prompt_new(out, m, msgs, n_msgs, NULL, n_ctx, err);
}

int glmv_prompt_new_raw(glmv_prompt **out, glmv_model *m, const char *prompt, int n_ctx, char *err) {
    if (!prompt) {
        *out = NULL;
        return glmv_errc(err, GLMV_E_INVALID, "generate: the prompt is NULL");
    }
    return prompt_new(out, m, NULL, 0, prompt, n_ctx, err);
}

/* The run stage: the prompt on session s (the cached prefix kept), its prefill; q is then
 * ready for glmv_gen_step. p is not consumed (n choices may share it). */
/* The run stage: the prefix kept or copied, the vision tower, and the prefill (defer 0) or
 * the prompt's inputs kept for glmv_gen_eval_batch (defer 1). */
static int gen_begin(glmv_gen **qout, glmv_session *s, const glmv_prompt *p, const glmv_sampling *sp_in,
                     glmv_callback cb, void *user, int defer, char *err) {
    glmv_model *m = s->m;
    const glmv_config *c = &m->cfg;
    *qout = NULL;
    glmv_errcode_set(GLMV_E_OK);
    if (p->m != m) return glmv_errc(err, GLMV_E_INVALID, "generate: the prompt was made for another model");
    glmv_sampling sp;
    if (sp_in) sp = *sp_in;
    else glmv_sampling_default(m, &sp);
    if (check_sampling(&sp, c->vocab_size, err)) {
        glmv_errcode_set(GLMV_E_INVALID);
        return -1;
    }
    if (p->raw && sp.json) return glmv_errc(err, GLMV_E_INVALID, "generate: JSON output needs a chat prompt");
    if (p->image_tokens > s->n_ctx)
        return glmv_errc(err, GLMV_E_CONTEXT, "the prompt's %d vision tokens do not fit the context "
                         "(n_ctx %d)", p->image_tokens, s->n_ctx);
    glmv_gen *q = calloc(1, sizeof *q);
    if (!q) return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
    q->s = s;
    q->raw = p->raw;
    q->keep_tags = sp.keep_tags && !p->raw;
    q->sp = sp;
    glmv_result *out = &q->res;
    const media *md = &p->md;
    const int32_t *ids = p->ids;
    int64_t n = p->n;
    int rc = -1;
    out->prompt_tokens = (int)n;
    out->image_tokens = p->image_tokens;
    out->preprocess_ms = p->preprocess_ms;
    int max_new = sp.max_new_tokens > 0 ? sp.max_new_tokens : s->n_ctx - (int)n;
    /* a default the caller never asked for must not refuse a prompt that fits */
    if (sp.max_new_is_default && n < s->n_ctx && n + (int64_t)max_new > s->n_ctx)
        max_new = s->n_ctx - (int)n;
    if (n + (int64_t)max_new > s->n_ctx || max_new <= 0) {
        glmv_errc(err, GLMV_E_CONTEXT, "prompt (%lld tokens) + max_new_tokens (%d) exceeds the context "
                  "(n_ctx %d)", (long long)n, sp.max_new_tokens, s->n_ctx);
        goto done;
    }
    q->max_new = max_new;
    if (sp.json) {
        q->have_jo = 1;
        if (json_out_init(&q->jo, m, &sp, err)) {
            glmv_errcode_default(GLMV_E_INVALID);
            goto done;
        }
    }

    int V = c->vocab_size;
    q->logits = glmv_logits_new(m);
    q->wf = malloc(sizeof(float) * (size_t)V);
    q->wi = malloc(sizeof(int32_t) * (size_t)V);
    q->gen = malloc(sizeof(int32_t) * (size_t)(max_new + 8));
    if (sp.logprobs) {
        q->lps = calloc((size_t)max_new + 8, sizeof *q->lps);
        q->raw_logits = malloc(sizeof(float) * (size_t)V);
    }
    q->spl = glmv_splitter_new(m->tok);
    glmv_detok_init(&q->dt, m->tok, 1);
    if (!q->logits || !q->wf || !q->wi || !q->gen || !q->spl ||
        (sp.logprobs && (!q->lps || !q->raw_logits))) {
        glmv_errc(err, GLMV_E_NOMEM, "out of memory");
        goto done;
    }
    double t1 = glmv_now_ms();
    {
        /* keep the cached prefix of the conversation (earlier turns, same images), or a
         * longer one that another sharing session holds */
        int seg0 = 0;
        glmv_model_lock(m);
        s->busy = 1; /* its cache is not given back while a generation runs on it */
        s->evictable = 0;
        q->ticket = ++m->gen_clock;
        q->back_at = -1;
        int64_t start = reusable_prefix(s, c, ids, n, (const int(*)[3])md->grid, p->hs, md->n, &seg0);
        if (s->sharing) {
            int64_t own = start;
            start = share_prefix(s, c, ids, n, (const int(*)[3])md->grid, p->hs, md->n, start, &seg0);
            out->shared_tokens = (int)(start - own);
        }
        s->n_seg_hash = GLMV_MIN(s->n_seg_hash, seg0);
        s->pos = (int)start;
        glmv_model_unlock(m);
        out->cached_tokens = (int)start;
        int prc;
        const glmv_patches px = {.u8 = md->rows, .luts = md->luts, .seg_lut = md->seg_lut};
        if (!defer) {
            prc = prefill_from(s, ids, n, start, seg0, md->n ? &px : NULL, md->n_rows, (const int(*)[3])md->grid, md->n,
                               (const int(*)[3])md->img_grid, md->n_img, (const int(*)[3])md->vid_grid,
                               md->n_vid, q->logits, &out->vision_ms, err);
            record_segments(s, p->hs, md->n, prc == 0);
        } else {
            prc = prompt_inputs(s, ids, n, start, seg0, md->n ? &px : NULL, md->n_rows, (const int(*)[3])md->grid, md->n,
                                (const int(*)[3])md->img_grid, md->n_img, (const int(*)[3])md->vid_grid,
                                md->n_vid, &q->pf_emb, &q->pf_pos, &out->vision_ms, err);
            q->pf_n = n - start;
            q->pf_nseg = md->n;
            q->pf_ids = prc ? NULL : malloc(sizeof(int32_t) * (size_t)q->pf_n);
            q->pf_hs = prc || md->n == 0 ? NULL : malloc(sizeof(uint64_t) * (size_t)md->n);
            if (!prc && (!q->pf_ids || (md->n > 0 && !q->pf_hs))) {
                prc = glmv_errc(err, GLMV_E_NOMEM, "out of memory");
            } else if (!prc) {
                memcpy(q->pf_ids, ids + start, sizeof(int32_t) * (size_t)q->pf_n);
                if (md->n > 0) memcpy(q->pf_hs, p->hs, sizeof(uint64_t) * (size_t)md->n);
            }
            if (prc) record_segments(s, NULL, 0, 0);
        }
        if (prc) {
            glmv_session_reset(s);
            goto done;
        }
    }
    q->t1 = t1;
    if (!defer) out->prefill_ms = glmv_now_ms() - t1 - out->vision_ms;

    glmv_rng_seed(&q->rng, sp.seed);
    q->g.cb = cb;
    q->g.user = user;
    q->g.stop = q->sp.stop;
    q->g.n_stop = q->sp.n_stop;
    q->finish = "length";
    q->t2 = glmv_now_ms();
    rc = 0;
done:
    if (rc) glmv_gen_free(q);
    else *qout = q;
    return rc;
}

int glmv_gen_start_prompt(glmv_gen **qout, glmv_session *s, const glmv_prompt *p, const glmv_sampling *sp,
                          glmv_callback cb, void *user, char *err) {
    return gen_begin(qout, s, p, sp, cb, user, 0, err);
}

int glmv_gen_begin_prompt(glmv_gen **qout, glmv_session *s, const glmv_prompt *p, const glmv_sampling *sp,
                          glmv_callback cb, void *user, char *err) {
    return gen_begin(qout, s, p, sp, cb, user, 1, err);
}

/* glmv_generate (msgs) and glmv_generate_raw (raw): both stages on the caller's thread */
static int gen_start(glmv_gen **qout, glmv_session *s, const glmv_message *msgs, int n_msgs,
                     const char *raw, const glmv_sampling *sp_in, glmv_callback cb, void *user,
                     char *err) {
    *qout = NULL;
    glmv_sampling sp;
    if (sp_in) sp = *sp_in;
    else glmv_sampling_default(s->m, &sp);
    /* the sampling values first: a bad one is refused before the media are decoded */
    if (check_sampling(&sp, s->m->cfg.vocab_size, err)) {
        glmv_errcode_set(GLMV_E_INVALID);
        return -1;
    }
    glmv_prompt *p = NULL;
    if (prompt_new(&p, s->m, msgs, n_msgs, raw, s->n_ctx, err)) return -1;
    int rc = glmv_gen_start_prompt(qout, s, p, &sp, cb, user, err);
    glmv_prompt_free(p);
    return rc;
}

/* Pick the next token from q->logits, stream it. 1: finished; 0: q->next is to be
 * evaluated (its logits into q->logits) before the next step; -1: error. */
int glmv_gen_step(glmv_gen *q, char *err) {
    if (q->done) return 1;
    if (q->fail_code) return glmv_errc(err, q->fail_code, "%s", q->fail_msg ? q->fail_msg : "out of memory");
    if (q->pf_off < q->pf_n)
        return glmv_errc(err, GLMV_E_INVALID, "generate: %lld prompt tokens are still to evaluate "
                         "(glmv_gen_eval_batch)", (long long)(q->pf_n - q->pf_off));
    if (q->waiting || q->s->suspended)
        return glmv_errc(err, GLMV_E_INVALID, "generate: the last token is still to evaluate (glmv_gen_eval_batch)");
    glmv_session *s = q->s;
    glmv_model *m = s->m;
    const glmv_config *c = &m->cfg;
    const glmv_sampling *sp = &q->sp;
    int V = c->vocab_size;
    float *logits = q->logits;
    gen_state *g = &q->g;
    q->done = 1; /* unless a token is to be evaluated below */
    if (q->n_gen >= q->max_new) return 1;
    int32_t id;
    /* log-probabilities of the model's own distribution, before the sampler touches it */
    glmv_logprob *lp = q->lps ? &q->lps[q->n_gen] : NULL;
    float lse = 0;
    if (lp) {
        lse = glmv_logprobs_top(logits, V, sp->top_logprobs, lp);
        memcpy(q->raw_logits, logits, sizeof(float) * (size_t)V);
    }
    /* min_tokens holds the eos back, but not past a complete JSON answer (nothing else may follow) */
    if (q->n_gen < sp->min_tokens && !(q->have_jo && glmv_json_complete(&q->jo.st)))
        for (int e = 0; e < c->n_eos; e++)
            if (c->eos_token_ids[e] >= 0 && c->eos_token_ids[e] < V)
                logits[c->eos_token_ids[e]] = -INFINITY;
    /* a JSON answer is constrained everywhere but inside <think>...</think> */
    /* once the JSON has started, it stays constrained whatever the text in it looks like */
    int in_json = q->have_jo && (gen_state_kind(q) != GLMV_TEXT_REASONING || q->jo.st.started);
    int constrained = in_json && q->i_force >= q->n_force;
    if (constrained && json_out_mask(&q->jo, c, logits, V, q->n_gen, err)) return -1;
    if (constrained) { /* nothing left to say (the penalties or a bias took the rest): stop */
        int any = 0;
        for (int i = 0; i < V && !any; i++) any = logits[i] > -INFINITY;
        if (!any) {
            q->finish = "stop";
            return 1;
        }
    }
    if (q->i_force < q->n_force) {
        id = q->force[q->i_force++];
    } else if (q->top.n > 0) { /* the best logits, for a pick that needs no others (gen_top_k) */
        id = glmv_sample_top(&q->top, V, sp, &q->rng);
    } else {
        id = glmv_sample(logits, V, sp, s->hist, s->pos, q->gen, q->n_gen, &q->rng, q->wf, q->wi);
    }
    q->top.n = 0;
    if (in_json && json_out_take(&q->jo, m->tok, id, err)) return -1;
    if (lp) {
        lp->token = id;
        lp->logprob = q->raw_logits[id] - lse;
    }
    q->gen[q->n_gen++] = id;
    if (is_eos(c, id) && !sp->ignore_eos) {
        q->finish = "stop";
        if (g->cb && lp) { /* no text, but its log-probability, as in the result */
            glmv_event ev = {id, "", 0, event_kind(q), 1, lp};
            g->cb(g->user, &ev);
        }
        return 1;
    }
    g->token = id;
    g->n_emit = 0;
    g->lp = lp;
    g->n_stop = q->n_gen > sp->min_tokens ? sp->n_stop : 0; /* no stop string before min_tokens */
    int was_thinking = gen_state_kind(q) == GLMV_TEXT_REASONING;
    if (was_thinking) q->res.reasoning_tokens++;
    if (q->raw || q->keep_tags) { /* the text as the tokens spell it (special tokens left out) */
        char *piece = NULL;
        size_t pl = 0;
        if (glmv_detok_push(&q->dt, id, &piece, &pl) == 0 && piece) on_emit(g, GLMV_TEXT_CONTENT, piece, pl);
        free(piece);
        if (q->keep_tags) glmv_splitter_push(q->spl, id, discard_emit, NULL);
    } else {
        glmv_splitter_push(q->spl, id, on_emit, g);
    }
    if (g->cb && g->n_emit == 0 && !g->cancelled) {
        glmv_event ev = {id, "", 0, event_kind(q), 1, lp};
        if (g->cb(g->user, &ev)) g->cancelled = 1;
    }
    if (g->cancelled) {
        q->finish = "cancelled";
        return 1;
    }
    if (g->stopped) {
        q->finish = "stop";
        return 1;
    }
    if (q->n_gen >= q->max_new) return 1;
    /* thinking budget: tokens generated after <think>; when spent (and still
     * thinking), force "</think><answer>" as the official bench script does */
    if (was_thinking) q->n_think++;
    if (sp->max_thinking_tokens > 0 && !q->forced && gen_state_kind(q) == GLMV_TEXT_REASONING &&
        q->n_think >= sp->max_thinking_tokens) {
        q->forced = 1;
        const char *tag = "</think><answer>";
        int64_t nf = glmv_tokenize(m->tok, tag, strlen(tag), &q->force, err);
        if (nf < 0) return -1;
        q->n_force = (int)nf;
        q->i_force = 0;
    }
    if (s->pos + 1 > s->n_ctx) return 1;
    q->next = id;
    q->done = 0;
    return 0;
}

/* The result of a finished (or abandoned) generation; frees q either way. */
int glmv_gen_finish(glmv_gen *q, glmv_result *out, char *err) {
    memset(out, 0, sizeof *out);
    glmv_model *m = q->s->m;
    gen_state *g = &q->g;
    if (q->raw || q->keep_tags) {
        char *piece = NULL;
        size_t pl = 0;
        if (glmv_detok_flush(&q->dt, &piece, &pl) == 0 && piece) on_emit(g, GLMV_TEXT_CONTENT, piece, pl);
        free(piece);
        if (q->keep_tags) glmv_splitter_finish(q->spl, discard_emit, NULL);
    } else {
        glmv_splitter_finish(q->spl, on_emit, g);
    }
    *out = q->res;
    out->decode_ms = glmv_now_ms() - q->t2;
    out->finish_reason = q->finish;
    out->n_tokens = out->completion_tokens = q->n_gen;
    out->token_ids = q->gen;
    q->gen = NULL;
    out->logprobs = q->lps;
    q->lps = NULL;
    out->reasoning = g->reasoning.p ? g->reasoning.p : calloc(1, 1);
    out->content = g->content.p ? g->content.p : calloc(1, 1);
    g->reasoning.p = g->content.p = NULL;
    int oom = !out->reasoning || !out->content || g->reasoning.oom || g->content.oom;
    glmv_gen_free(q);
    if (oom) {
        glmv_result_free(out);
        return glmv_errf(err, "out of memory");
    }
    if (m->params.verbose)
        fprintf(stderr, "glmv: prompt %d tokens (%d image), preprocess %.0f ms, vision %.0f ms, "
                        "prefill %.0f ms, decode %d tokens in %.0f ms\n",
                out->prompt_tokens, out->image_tokens, out->preprocess_ms, out->vision_ms,
                out->prefill_ms, out->n_tokens, out->decode_ms);
    return 0;
}

int glmv_gen_start(glmv_gen **out, glmv_session *s, const glmv_message *msgs, int n_msgs,
                   const glmv_sampling *sp, glmv_callback cb, void *user, char *err) {
    return gen_start(out, s, msgs, n_msgs, NULL, sp, cb, user, err);
}

int glmv_gen_start_raw(glmv_gen **out, glmv_session *s, const char *prompt, const glmv_sampling *sp,
                       glmv_callback cb, void *user, char *err) {
    if (!prompt) {
        *out = NULL;
        return glmv_errf(err, "generate: the prompt is NULL");
    }
    return gen_start(out, s, NULL, 0, prompt, sp, cb, user, err);
}

/* Preemption (under the model lock): q's cache rows go to the host and its memory back to
 * the budget; gen_swap_in brings them back when there is room again. Exact: the same bytes. */
static int gen_swap_out(glmv_gen *q, char *err) {
    glmv_session *s = q->s;
    glmv_model *m = s->m;
    int L = m->cfg.num_hidden_layers, nr = glmv_tp_size(m->tp); /* every rank's cache (tensor parallelism) */
    size_t row = (size_t)glmv_kv_dim(m) * glmv_kv_elt(m), per = row * (size_t)s->pos; /* bytes */
    q->swap = s->pos > 0 ? malloc(glmv_mul_size(2 * (size_t)L * (size_t)nr, per)) : NULL;
    if (s->pos > 0 && !q->swap) return glmv_errc(err, GLMV_E_NOMEM, "out of host memory to preempt a sequence");
    for (int r = 0; r < nr && per > 0; r++) {
        glmv_session *rs = rank_sess(s, r);
        glmv_backend *be = rs->m->be;
        rank_bind(rs);
        for (int l = 0; l < L; l++) {
            be->read(be, q->swap + (size_t)(2 * (r * L + l)) * per, rs->kc[l], per);
            be->read(be, q->swap + (size_t)(2 * (r * L + l) + 1) * per, rs->vc[l], per);
        }
    }
    rank_bind(s);
    glmv_kv_shrink(s, 0);
    s->suspended = 1;
    m->kv_preemptions++;
    /* back, and out again before it wrote a granule of new rows */
    m->kv_bounces += q->back_at >= 0 && (int64_t)((size_t)(s->pos - q->back_at) * row) < (int64_t)s->kv_granule;
    return 0;
}

static int gen_swap_in(glmv_gen *q, char *err) {
    glmv_session *s = q->s;
    glmv_model *m = s->m;
    if (glmv_kv_ensure(s, s->pos + 1, err)) return -1;
    int L = m->cfg.num_hidden_layers, nr = glmv_tp_size(m->tp);
    size_t per = (size_t)glmv_kv_dim(m) * glmv_kv_elt(m) * (size_t)s->pos; /* bytes */
    for (int r = 0; r < nr; r++) {
        glmv_session *rs = rank_sess(s, r);
        glmv_backend *be = rs->m->be;
        rank_bind(rs);
        int rc = r ? glmv_kv_ensure(rs, s->pos + 1, err) : 0;
        for (int l = 0; l < L && per > 0 && !rc; l++) {
            be->write(be, rs->kc[l], q->swap + (size_t)(2 * (r * L + l)) * per, per);
            be->write(be, rs->vc[l], q->swap + (size_t)(2 * (r * L + l) + 1) * per, per);
        }
        rs->pos = s->pos;
        rank_bind(s);
        if (rc) return -1;
    }
    free(q->swap);
    q->swap = NULL;
    s->suspended = 0;
    q->back_at = s->pos;
    return 0;
}

/* Whether preempted q may come back now: its rows and, besides them, the next granule of
 * every running generation fit the budget, counting the idle caches as room (without that
 * headroom the first of them to grow would preempt q again in the same pass, and q's rows would
 * go back and forth between host and device once per granule). */
static int swap_in_room(const glmv_gen *q, glmv_gen *const *gens, int g) {
    glmv_session *s = q->s;
    glmv_model *m = s->m;
    if (m->kv_budget <= 0) return 1;
    int64_t L2 = 2 * (int64_t)m->cfg.num_hidden_layers, idle = 0, running = 0;
    for (int i = 0; i < m->n_sessions; i++) {
        const glmv_session *o = m->sessions[i];
        if (!o->busy && o->evictable) idle += (int64_t)o->kv_bytes * L2;
    }
    for (int j = 0; j < g; j++) /* the generations holding a cache that will grow */
        running += !gens[j]->s->suspended && !gens[j]->fail_code && gens[j]->s->kv_bytes > 0;
    int64_t need = (int64_t)kv_tensor_bytes(s, s->pos + 1) * L2;
    return m->kv_used - idle + need + running * (int64_t)s->kv_granule * L2 <= m->kv_budget;
}

/* q (preempted) fails alone when its rows can never fit the budget, even with nobody else's. */
static int swap_in_never(glmv_gen *q) {
    glmv_session *s = q->s;
    glmv_model *m = s->m;
    if (m->kv_budget <= 0 || (int64_t)kv_tensor_bytes(s, s->pos + 1) * 2 * m->cfg.num_hidden_layers <= m->kv_budget)
        return 0;
    char msg[GLMV_ERR_SIZE];
    snprintf(msg, sizeof msg, "a sequence of %lld tokens does not fit the KV cache budget (%lld MB)",
             (long long)(s->pos + 1), (long long)(m->kv_budget >> 20));
    q->fail_msg = strdup(msg);
    q->fail_code = GLMV_E_NOMEM;
    q->waiting = 0;
    return 1;
}

/* One pass for up to b's capacity of generations (gens[0, g)), under the model lock. Memory
 * first: preempted generations resume, oldest first, while there is room; then each one's rows
 * are backed, oldest first, and when they cannot be, the newest generation holding a cache
 * gives way (preempted), or, when none is newer, this one waits for a later pass. idle: the call
 * is one generation's prompt, nobody else's work, so it may take the backend's longer passes
 * (glmv_batch_idle_rows) as glmv_session_eval would. */
static int eval_group(glmv_batch *b, glmv_gen *const *gens, int g, int idle, glmv_batch_item *it, glmv_gen **pg,
                      int64_t *take, char *err) {
    glmv_model *m = b->m;
    int max_rows = glmv_batch_max_rows(b);
    char e2[GLMV_ERR_SIZE];
    for (int j = 0; j < g; j++)
        if (gens[j]->done) return glmv_errc(err, GLMV_E_INVALID, "batch: generation %d has finished", j);
    for (;;) { /* the oldest preempted generation, while it fits */
        glmv_gen *o = NULL;
        for (int j = 0; j < g; j++)
            if (gens[j]->s->suspended && !gens[j]->fail_code && (!o || gens[j]->ticket < o->ticket)) o = gens[j];
        if (o && swap_in_never(o)) continue;
        if (!o || !swap_in_room(o, gens, g) || gen_swap_in(o, e2)) break;
    }
    /* while a preempted generation waits to come back, no newer one that holds no cache yet
     * starts its prompt: the memory that frees up goes to the preempted one first */
    uint64_t oldest_out = UINT64_MAX;
    for (int j = 0; j < g; j++)
        if (gens[j]->s->suspended && !gens[j]->fail_code && gens[j]->ticket < oldest_out) oldest_out = gens[j]->ticket;
    /* the plan: every running generation's token, then prompt chunks in the rows left */
    int k = 0;
    int64_t rows = 0;
    for (int j = 0; j < g; j++) {
        glmv_gen *q = gens[j];
        if (q->fail_code) continue;
        q->waiting = 1; /* until its work is done below */
        if (q->s->suspended || q->pf_off < q->pf_n) continue;
        it[k] = gen_item(q, 1, &q->next, NULL, NULL, 0, 1);
        pg[k] = q;
        take[k++] = 1;
        rows++;
    }
    /* a lone prompt takes the backend's longer passes */
    const int64_t limit = idle && !rows ? glmv_batch_idle_rows(b) : max_rows;
    for (int j = 0; j < g; j++) {
        glmv_gen *q = gens[j];
        int64_t left = q->pf_n - q->pf_off, t = GLMV_MIN(left, limit - rows);
        /* no piece of one row from a longer prompt (it would be a decode row's product on the
         * CPU, where glmv_session_eval gives it the GEMM's, as to the prompt's others) */
        if (t < left && left - t == 1) t--;
        if (t == 1 && left > 1) t = 0;
        if (q->fail_code || q->s->suspended || left <= 0 || t <= 0) continue;
        if (q->pf_off == 0 && q->s->kv_bytes == 0 && q->ticket > oldest_out)
            continue; /* holds nothing yet: waits for the preempted one */
        it[k] = gen_item(q, t, q->pf_ids + q->pf_off, q->pf_emb + q->pf_off * q->s->m->cfg.hidden_size,
                         q->pf_pos + q->pf_off, q->pf_n, t == left);
        pg[k] = q;
        take[k++] = t;
        rows += t;
    }
    /* memory for each planned item, oldest generation first */
    for (;;) {
        int at = -1;
        for (int j = 0; j < k; j++)
            if (it[j].s && it[j].s->kv_rows < GLMV_MIN(it[j].s->pos + it[j].n, it[j].s->n_ctx) &&
                (at < 0 || pg[j]->ticket < pg[at]->ticket))
                at = j;
        if (at < 0) break;
        if (glmv_kv_ensure(it[at].s, it[at].s->pos + it[at].n, e2) == 0) continue;
        glmv_gen *v = NULL; /* the newest generation holding a cache, newer than this one */
        for (int j = 0; j < g; j++) {
            glmv_gen *o = gens[j];
            if (o->ticket > pg[at]->ticket && !o->s->suspended && o->s->kv_bytes > 0 && (!v || o->ticket > v->ticket))
                v = o;
        }
        if (v) {
            if (gen_swap_out(v, err)) return -1;
            for (int j = 0; j < k; j++)
                if (pg[j] == v) it[j].s = NULL; /* out of this pass */
            continue;
        }
        /* nothing to take the memory from: this one waits, unless nobody else holds any (then
         * it can never fit: it fails, alone; the others' pass goes on) */
        int64_t own = (int64_t)it[at].s->kv_bytes * 2 * m->cfg.num_hidden_layers;
        if (m->kv_used - own <= 0) {
            glmv_gen *f = pg[at];
            char msg[GLMV_ERR_SIZE];
            snprintf(msg, sizeof msg, "a sequence of %lld tokens does not fit the KV cache budget (%lld MB): %.300s",
                     (long long)(it[at].s->pos + it[at].n), (long long)(m->kv_budget >> 20), e2);
            f->fail_msg = strdup(msg);
            f->fail_code = GLMV_E_NOMEM;
            f->waiting = 0;
            glmv_session *fs = it[at].s; /* its cache goes back to the budget, for the others */
            glmv_kv_shrink(fs, 0);
            fs->pos = 0;
            fs->n_seg_hash = 0;
        }
        it[at].s = NULL;
    }
    int kk = 0;
    for (int j = 0; j < k; j++)
        if (it[j].s) {
            it[kk] = it[j];
            pg[kk] = pg[j];
            take[kk++] = take[j];
        }
    if (kk > 0 && glmv_batch_eval_locked(b, it, kk, err)) return -1;
    for (int j = 0; j < kk; j++) {
        pg[j]->waiting = 0;
        if (pg[j]->pf_off < pg[j]->pf_n) pg[j]->pf_off += take[j];
    }
    for (int j = 0; j < g; j++) /* prompts still in chunks are pending through pf_off */
        if (gens[j]->pf_off < gens[j]->pf_n) gens[j]->waiting = 0;
    return kk;
}

int glmv_gen_eval_batch(glmv_batch *b, glmv_gen *const *gens, int n, char *err) {
    int cap = glmv_batch_capacity(b);
    size_t g0 = (size_t)GLMV_MIN(n > 0 ? n : 1, cap);
    glmv_batch_item *it = malloc(sizeof *it * g0);
    glmv_gen **pg = malloc(sizeof *pg * g0);
    int64_t *take = malloc(sizeof *take * g0);
    if (!it || !pg || !take) {
        free(it);
        free(pg);
        free(take);
        return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
    }
    int rc = 0, advanced = 0, active = 0, idle = 1;
    for (int j = 0; j < n; j++) { /* a lone prompt: no other generation, no token, nothing preempted */
        glmv_gen *q = gens[j];
        if (q->fail_code || q->done) continue;
        active++;
        idle &= q->pf_off < q->pf_n && !q->s->suspended;
    }
    idle &= active == 1;
    /* the longer passes' buffers; when the device lacks the memory, this batch keeps to the
     * passes beside tokens from now on */
    if (idle && b->idle_rows > glmv_batch_max_rows(b)) {
        glmv_model_lock(b->m);
        if (glmv_batch_reserve(b, glmv_batch_idle_rows(b))) b->idle_rows = 0, idle = 0;
        glmv_model_unlock(b->m);
    }
    b->last_rows = 0;
    for (int i0 = 0; i0 < n && rc >= 0; i0 += cap) {
        int g = GLMV_MIN(cap, n - i0);
        glmv_model_lock(b->m);
        rc = eval_group(b, gens + i0, g, idle, it, pg, take, err);
        if (rc >= 0) advanced += rc;
        for (int j = 0; j < g; j++) advanced += gens[i0 + j]->fail_code != 0; /* failed: no longer waits */
        if (rc >= 0 && i0 + g >= n && advanced == 0) { /* nobody advanced: is the memory anyone else's? */
            int64_t ours = 0;
            glmv_model *m = b->m;
            for (int j = 0; j < n; j++) ours += (int64_t)gens[j]->s->kv_bytes * 2 * m->cfg.num_hidden_layers;
            if (ours >= m->kv_used)
                rc = glmv_errc(err, GLMV_E_NOMEM, "KV cache memory exhausted: none of %d sequences can advance "
                               "(%lld MB of %lld MB in use)", n, (long long)(m->kv_used >> 20),
                               (long long)(m->kv_budget >> 20));
        }
        glmv_model_unlock(b->m);
        for (int j = 0; j < rc; j++) { /* a prompt all in the cache: the first token may be picked */
            glmv_gen *q = pg[j];
            if (q->pf_off < q->pf_n || !q->pf_ids) continue;
            record_segments(q->s, q->pf_hs, q->pf_nseg, 1);
            gen_prompt_free(q);
            q->res.prefill_ms = glmv_now_ms() - q->t1 - q->res.vision_ms;
            q->t2 = glmv_now_ms();
        }
    }
    free(it);
    free(pg);
    free(take);
    if (rc >= 0 && advanced == 0 && n > 0) { /* all wait for memory others hold: not a spin */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return rc < 0 ? -1 : 0;
}

/* A generation's token evaluated alone. Where glmv_session_eval takes the batched step (a
 * backend with graphs), the step's item asks for the best logits where the pick needs no
 * others: a few bytes read instead of the row. */
static int gen_eval_next(glmv_gen *q, char *err) {
    glmv_session *s = q->s;
    glmv_model *m = s->m;
    if (m->be->graph_begin && !m->hook && !m->tp && gen_top_k(q)) {
        if (!s->b1 && glmv_batch_new(&s->b1, m, 1, err)) return -1;
        glmv_batch_item it = gen_item(q, 1, &q->next, NULL, NULL, 0, 1);
        return glmv_batch_eval(s->b1, &it, 1, err);
    }
    q->top.n = 0;
    return glmv_session_eval(s, &q->next, 1, q->logits, err);
}

/* one generation on its own: each token evaluated as it is picked */
static int generate(glmv_session *s, const glmv_message *msgs, int n_msgs, const char *raw,
                    const glmv_sampling *sp, glmv_callback cb, void *user, glmv_result *out,
                    char *err) {
    memset(out, 0, sizeof *out);
    glmv_gen *q;
    if (gen_start(&q, s, msgs, n_msgs, raw, sp, cb, user, err)) return -1;
    int r;
    while ((r = glmv_gen_step(q, err)) == 0)
        if (gen_eval_next(q, err)) {
            r = -1;
            break;
        }
    if (r < 0) {
        glmv_gen_free(q);
        return -1;
    }
    return glmv_gen_finish(q, out, err);
}

int glmv_generate(glmv_session *s, const glmv_message *msgs, int n_msgs, const glmv_sampling *sp,
                  glmv_callback cb, void *user, glmv_result *out, char *err) {
    return generate(s, msgs, n_msgs, NULL, sp, cb, user, out, err);
}

int glmv_generate_raw(glmv_session *s, const char *prompt, const glmv_sampling *sp,
                      glmv_callback cb, void *user, glmv_result *out, char *err) {
    if (!prompt) {
        memset(out, 0, sizeof *out);
        return glmv_errf(err, "generate: the prompt is NULL");
    }
    return generate(s, NULL, 0, prompt, sp, cb, user, out, err);
}

int glmv_model_warmup(glmv_model *m, int h, int w, char *err) {
    int tok = 0;
    /* no larger than an image the model's limits let through (the scratch stays that size) */
    glmv_image_params ip = glmv_processor_params(&m->cfg, 0);
    if ((m->params.min_image_tokens || m->params.max_image_tokens) &&
        glmv_image_apply_token_limits(&ip, m->params.min_image_tokens, m->params.max_image_tokens, err))
        return -1;
    int f = ip.patch_size * ip.merge_size;
    while (h > f && w > f && (int64_t)h * w * ip.temporal_patch_size > ip.max_pixels) h -= f, w -= f;
    if ((h || w) && m->has_vision && glmv_vision_eval(m, h, w, &tok, err)) return -1;
    /* a whole chunk and a part of one: the prompt's products at both shapes */
    int n = (m->be->caps.prefill_chunk > 0 ? m->be->caps.prefill_chunk : 256) + 17, V = m->cfg.vocab_size;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    float *logits = glmv_logits_new(m);
    glmv_session *s = NULL;
    glmv_batch *b = NULL;
    int rc = -1;
    if (!ids || !logits) {
        glmv_errc(err, GLMV_E_NOMEM, "warm-up: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((1000 + 7919u * (unsigned)i) % (unsigned)V);
    if (glmv_session_new(&s, m, n + 8, err) || glmv_session_eval(s, ids, n, logits, err) ||
        glmv_session_eval(s, ids, 1, logits, err) || glmv_batch_new(&b, m, 1, err))
        goto done;
    glmv_top top = {.k = 1}, *tops[1] = {&top};
    int one = 1;
    if (glmv_session_eval_top(b, &s, ids + 1, &one, 1, tops, err)) goto done;
    rc = 0;
done:
    glmv_batch_free(b);
    glmv_session_free(s);
    if (logits) glmv_logits_free(m, logits);
    free(ids);
    return rc;
}
