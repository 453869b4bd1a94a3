/* gguf_model.c -- GLM-4.1V from llama.cpp's GGUF pair (text model + mmproj),
 * turned into what glmv loads from a Hugging Face folder: a glmv_config, a
 * tokenizer and the tensors under their HF names and shapes (model.c binds them
 * as it binds safetensors).
 *
 * Tensor data is used in place where glmv runs the type as it is (F32, F16,
 * BF16; Q8_0, Q4_0, Q5_0, Q4_K and Q6_K matrices of the decoder, which the CPU
 * backend multiplies in their blocks: every format of llama.cpp's Q4_K_M recipe).
 * What is copied: the q/k rows the converter moved into NeoX order (a row
 * permutation, whole rows, so quantized rows move as they are), the patch
 * embedding's two temporal slices joined into one kernel, decoder matrices in
 * other block formats (Q4_1, Q5_1, Q5_K: re-quantized to Q8_0, gguf_dequant.c)
 * and any other tensor in blocks (dequantized to F32: the vision tower, norms and
 * biases run plain types only). Other ggml types are refused with their name and
 * the tensor's.
 * ref: llama.cpp conversion/glm.py (Glm4Model), conversion/qwen3vl.py
 * (Glm4VVisionModel), gguf-py/gguf/tensor_mapping.py */
#include "gguf_model.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "base.h"
#include "gguf.h"
#include "quant.h"

/* ---------------------------------------------------------------- locate */

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

int glmv_gguf_locate(const char *path, const char *mmproj, char *text, char *mm, size_t cap, char *err) {
    struct stat sb;
    text[0] = mm[0] = 0;
    if (mmproj && *mmproj) snprintf(mm, cap, "%s", mmproj);
    if (stat(path, &sb) != 0) /* the safetensors loader names the problem with a folder */
        return has_suffix(path, ".gguf") ? glmv_errf(err, "%s: %s", path, strerror(errno)) : 0;
    if (S_ISREG(sb.st_mode)) {
        if (!has_suffix(path, ".gguf") && !glmv_gguf_is_gguf(path)) return 0;
        snprintf(text, cap, "%s", path);
        return 1;
    }
    if (!S_ISDIR(sb.st_mode)) return 0;
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", path);
    if (stat(p, &sb) == 0) return 0; /* a Hugging Face folder, even with GGUF files beside it */
    DIR *d = opendir(path);
    if (!d) return 0;
    int n_text = 0, n_mm = 0;
    char other[512] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".gguf")) continue;
        if (!strncmp(e->d_name, "mmproj", 6)) {
            if (!(mmproj && *mmproj) && n_mm++ == 0) snprintf(mm, cap, "%s/%s", path, e->d_name);
            else if (!(mmproj && *mmproj)) snprintf(other, sizeof other, "%s", e->d_name);
        } else {
            if (n_text++ == 0) snprintf(text, cap, "%s/%s", path, e->d_name);
            else snprintf(other, sizeof other, "%s", e->d_name);
        }
    }
    closedir(d);
    if (n_text == 0 && n_mm == 0) return 0;
    if (n_text != 1) {
        text[0] = 0;
        return glmv_errf(err, "%s: %s text model .gguf (found %d besides mmproj*.gguf%s%s); name the "
                         "file with -m FILE.gguf", path, n_text ? "more than one" : "no", n_text,
                         n_text ? ", e.g. " : "", n_text ? other : "");
    }
    if (n_mm > 1)
        return glmv_errf(err, "%s: %d mmproj*.gguf files (e.g. %s); name one with --mmproj FILE", path,
                         n_mm, other);
    return 1;
}

/* ---------------------------------------------------------------- keys */

typedef struct {
    const glmv_gguf *g;
    char *err;
    int fail;
} keys;

/* An integer key that must be present and in [lo, hi]. */
static int key_int(keys *k, const char *key, int64_t lo, int64_t hi, int dflt_ok, int64_t dflt) {
    if (k->fail) return 0;
    int64_t v = dflt;
    int r = glmv_gguf_get_int(k->g, key, &v, k->err);
    if (r < 0 || (r == 1 && !dflt_ok) || v < lo || v > hi) {
        if (r == 1 && !dflt_ok) glmv_errf(k->err, "%s: key %s is missing", glmv_gguf_path(k->g), key);
        else if (r >= 0)
            glmv_errf(k->err, "%s: %s = %lld%s is out of range [%lld, %lld]", glmv_gguf_path(k->g), key,
                      (long long)v, r == 1 ? " (absent: derived from the other keys)" : "", (long long)lo,
                      (long long)hi);
        k->fail = 1;
        return 0;
    }
    return (int)v;
}

static double key_float(keys *k, const char *key, double dflt) {
    if (k->fail) return 0;
    double v = dflt;
    if (glmv_gguf_get_float(k->g, key, &v, k->err) < 0 || v != v) {
        if (v != v) glmv_errf(k->err, "%s: %s is not a number", glmv_gguf_path(k->g), key);
        k->fail = 1;
        return 0;
    }
    return v;
}

/* A string key equal to want (or refuse). */
static int key_is(const glmv_gguf *g, const char *key, const char *want, char *err) {
    const char *s;
    size_t n;
    int r = glmv_gguf_get_str(g, key, &s, &n, err);
    if (r < 0) return -1;
    if (r == 1)
        return glmv_errf(err, "%s: key %s is missing (not a llama.cpp GGUF?)", glmv_gguf_path(g), key);
    if (n != strlen(want) || memcmp(s, want, n)) {
        char got[64];
        snprintf(got, sizeof got, "%.*s", (int)GLMV_MIN(n, 48), s);
        for (char *c = got; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        return glmv_errf(err, "%s: %s is \"%s\"; glmv loads GLM-4.1V (%s \"%s\")", glmv_gguf_path(g), key,
                         got, key, want);
    }
    return 0;
}

/* ---------------------------------------------------------------- tensors */

void glmv_gguf_unpermute_rows(void *dst, const void *src, size_t row_bytes, int64_t n_heads,
                              int64_t head_dim, int64_t rot) {
    const char *s = src;
    char *d = dst;
    for (int64_t h = 0; h < n_heads; h++) {
        const char *sh = s + (size_t)(h * head_dim) * row_bytes;
        char *dh = d + (size_t)(h * head_dim) * row_bytes;
        for (int64_t j = 0; j < rot / 2; j++) {
            memcpy(dh + (size_t)(2 * j) * row_bytes, sh + (size_t)j * row_bytes, row_bytes);
            memcpy(dh + (size_t)(2 * j + 1) * row_bytes, sh + (size_t)(rot / 2 + j) * row_bytes, row_bytes);
        }
        memcpy(dh + (size_t)rot * row_bytes, sh + (size_t)rot * row_bytes,
               (size_t)(head_dim - rot) * row_bytes);
    }
}

typedef struct {
    glmv_weights *w;
    const glmv_gguf *g;
    int file;             /* g's index in w */
    char *err;
    int vision;           /* tensors of the mmproj: quantized ones are dequantized */
    int plain;            /* the next tensor must not be in blocks (a token table shared with the output) */
    int n_threads;        /* for conversions */
    int n_f32, n_q8;      /* tensors dequantized to F32, re-quantized to Q8_0 */
    uint32_t types_seen;  /* bit t: a tensor of ggml type t was converted */
} adder;

/* ggml type -> glmv dtype run as it is; -1 when it needs converting */
static int plain_dtype(uint32_t t, glmv_dtype *dt) {
    switch (t) {
    case GGML_F32: *dt = GLMV_F32; return 0;
    case GGML_F16: *dt = GLMV_F16; return 0;
    case GGML_BF16: *dt = GLMV_BF16; return 0;
    case GGML_Q8_0: *dt = GLMV_Q8_0; return 0;
    case GGML_Q4_0: *dt = GLMV_Q4_0; return 0;
    case GGML_Q5_0: *dt = GLMV_Q5_0; return 0;
    case GGML_Q4_K: *dt = GLMV_Q4_K; return 0;
    case GGML_Q6_K: *dt = GLMV_Q6_K; return 0;
    }
    return -1;
}

typedef struct {
    const glmv_gguf_tensor *t;
    char *dst;
    size_t src_rb, dst_rb;
    int64_t rows, next;
    int q8;
    pthread_mutex_t mu;
} convert_job;

static void *convert_rows(void *arg) {
    convert_job *j = arg;
    int64_t k = j->t->ne[0];
    float *row = j->q8 ? malloc(sizeof(float) * (size_t)k) : NULL;
    if (j->q8 && !row) return (void *)1;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int64_t r0 = j->next;
        j->next += 64;
        pthread_mutex_unlock(&j->mu);
        if (r0 >= j->rows) break;
        for (int64_t r = r0; r < GLMV_MIN(j->rows, r0 + 64); r++) {
            const char *src = (const char *)j->t->data + (size_t)r * j->src_rb;
            char *dst = j->dst + (size_t)r * j->dst_rb;
            if (!j->q8) {
                glmv_ggml_dequantize_row(j->t->type, src, (float *)dst, k);
                continue;
            }
            glmv_ggml_dequantize_row(j->t->type, src, row, k);
            glmv_quantize_row_q8_0(row, (glmv_block_q8_0 *)dst, k);
        }
    }
    free(row);
    return NULL;
}

/* t's values in a buffer kept by w: as F32, or re-quantized to Q8_0 (q8); rows in
 * chunks over a->n_threads threads (a 9B Q4_K_M file holds 9 billion weights). */
static void *convert(adder *a, const glmv_gguf_tensor *t, int q8) {
    int be, bb;
    glmv_ggml_block(t->type, &be, &bb);
    convert_job j = {.t = t, .rows = 1, .q8 = q8, .src_rb = (size_t)(t->ne[0] / be) * (size_t)bb};
    for (int i = 1; i < t->n_dims; i++) j.rows *= t->ne[i];
    j.dst_rb = q8 ? glmv_dtype_row_bytes(GLMV_Q8_0, t->ne[0]) : sizeof(float) * (size_t)t->ne[0];
    j.dst = glmv_aligned_alloc(glmv_mul_size(j.dst_rb, (size_t)j.rows));
    if (!j.dst || glmv_weights_keep(a->w, j.dst)) {
        free(j.dst);
        glmv_errf(a->err, "%s: out of memory converting %s", glmv_gguf_path(a->g), t->name);
        return NULL;
    }
    pthread_mutex_init(&j.mu, NULL);
    int nt = (int)GLMV_MAX(1, GLMV_MIN(GLMV_MIN(a->n_threads, 64), j.rows / 64)), started = 0, failed = 0;
    pthread_t th[64];
    for (int i = 1; i < nt; i++) started += pthread_create(&th[started], NULL, convert_rows, &j) == 0;
    failed |= convert_rows(&j) != NULL;
    for (int i = 0; i < started; i++) {
        void *r;
        pthread_join(th[i], &r);
        failed |= r != NULL;
    }
    pthread_mutex_destroy(&j.mu);
    if (failed) {
        glmv_errf(a->err, "%s: out of memory converting %s", glmv_gguf_path(a->g), t->name);
        return NULL;
    }
    a->types_seen |= 1u << (t->type & 31);
    if (q8) a->n_q8++;
    else a->n_f32++;
    return j.dst;
}

/* The GGUF tensor gname, checked to hold n_dims dims (the HF shape reversed), as the
 * HF tensor hname. Its data is used in place where glmv runs its type there (F32,
 * F16, BF16 anywhere; Q8_0, Q4_0, Q5_0, Q4_K, Q6_K as decoder matrices); another block format is
 * re-quantized to Q8_0 for a decoder matrix and dequantized to F32 elsewhere.
 * NULL on failure (message in err); *missing = 1 (no message) when absent and the
 * caller allows it. */
static glmv_tensor *add_tensor(adder *a, const char *gname, const char *hname, int *missing) {
    const glmv_gguf_tensor *t = glmv_gguf_find_tensor(a->g, gname);
    if (!t) {
        if (missing) {
            *missing = 1;
            return NULL;
        }
        glmv_errf(a->err, "%s: tensor %s (for %s) is missing", glmv_gguf_path(a->g), gname, hname);
        return NULL;
    }
    int64_t shape[GLMV_MAX_DIMS];
    for (int i = 0; i < t->n_dims; i++) shape[i] = t->ne[t->n_dims - 1 - i];
    glmv_dtype dt;
    void *data = (void *)t->data;
    int matrix = !a->vision && !a->plain && t->n_dims == 2 && t->ne[0] % GLMV_QK == 0;
    int plain = plain_dtype(t->type, &dt) == 0;
    if (!plain || (glmv_dtype_is_quant(dt) && !matrix)) {
        float probe;
        int be, bb;
        if (glmv_ggml_block(t->type, &be, &bb) || be > 256 ||
            glmv_ggml_dequantize_row(t->type, t->data, &probe, 0) != 0) {
            glmv_errf(a->err,
                      "%s: tensor %s has type %s, which glmv does not read (it reads F32, F16, "
                      "BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q6_K, and converts Q4_1, Q5_1, Q5_K)",
                      glmv_gguf_path(a->g), gname, glmv_ggml_type_name(t->type));
            return NULL;
        }
        dt = matrix ? GLMV_Q8_0 : GLMV_F32;
        if (!(data = convert(a, t, matrix))) return NULL;
    }
    return glmv_weights_add(a->w, hname, a->file, dt, t->n_dims, shape, data, a->err);
}

/* A copy of t's data (kept by w) with its q or k rows back in HF order. */
static int unpermute(adder *a, glmv_tensor *t, int64_t heads, int64_t head_dim, int64_t rot) {
    int64_t rows = t->shape[0];
    if (rows != heads * head_dim)
        return glmv_errf(a->err, "%s: %s has %lld rows, expected %lld heads x %lld", glmv_gguf_path(a->g),
                         t->name, (long long)rows, (long long)heads, (long long)head_dim);
    size_t rb =
        t->ndim == 1 ? glmv_dtype_size(t->dtype) : glmv_dtype_row_bytes(t->dtype, glmv_tensor_cols(t));
    void *p = glmv_aligned_alloc(glmv_mul_size(rb, (size_t)rows));
    if (!p || glmv_weights_keep(a->w, p)) {
        free(p);
        return glmv_errf(a->err, "out of memory");
    }
    glmv_gguf_unpermute_rows(p, t->data, rb, heads, head_dim, rot);
    glmv_weights_release(a->w, t->data, rb * (size_t)rows); /* the file's bytes are not read again */
    t->data = t->host = p;
    return 0;
}

/* ---------------------------------------------------------------- text model */

/* The tokenizer of g's tokenizer.ggml.* lists. */
static int gguf_tokenizer(glmv_tokenizer **out, const glmv_gguf *g, char *err) {
    const char *path = glmv_gguf_path(g);
    const glmv_gguf_kv *toks = glmv_gguf_find_kv(g, "tokenizer.ggml.tokens");
    const glmv_gguf_kv *types = glmv_gguf_find_kv(g, "tokenizer.ggml.token_type");
    const glmv_gguf_kv *merges = glmv_gguf_find_kv(g, "tokenizer.ggml.merges");
    if (key_is(g, "tokenizer.ggml.model", "gpt2", err)) return -1;
    if (!toks || toks->type != GGUF_ARRAY || toks->arr_type != GGUF_STRING || toks->n == 0 ||
        toks->n >= (1 << 22))
        return glmv_errf(err, "%s: tokenizer.ggml.tokens is missing or not a list of strings", path);
    if (!merges || merges->type != GGUF_ARRAY || merges->arr_type != GGUF_STRING)
        return glmv_errf(err, "%s: tokenizer.ggml.merges is missing or not a list of strings", path);
    if (types && (types->type != GGUF_ARRAY || types->arr_type == GGUF_STRING || types->n != toks->n))
        return glmv_errf(err, "%s: tokenizer.ggml.token_type is not one integer per token", path);
    const char *pre;
    size_t pre_len;
    char pre_s[64] = "";
    if (glmv_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &pre_len, err) < 0) return -1;
    else if (glmv_gguf_find_kv(g, "tokenizer.ggml.pre"))
        snprintf(pre_s, sizeof pre_s, "%.*s", (int)GLMV_MIN(pre_len, 60), pre);
    int32_t nt = (int32_t)toks->n;
    glmv_tokenizer_spec sp = {.n_tokens = nt, .n_merges = (int64_t)merges->n, .pre = pre_s};
    const char **tp = malloc(sizeof *tp * (size_t)nt), **mp = malloc(sizeof *mp * (merges->n + 1));
    size_t *tl = malloc(sizeof *tl * (size_t)nt), *ml = malloc(sizeof *ml * (merges->n + 1));
    int32_t *ty = malloc(sizeof *ty * (size_t)nt);
    int rc = -1;
    if (!tp || !mp || !tl || !ml || !ty) {
        glmv_errf(err, "%s: out of memory", path);
        goto done;
    }
    for (int32_t i = 0; i < nt; i++) {
        tp[i] = glmv_gguf_arr_str(toks, (uint64_t)i, &tl[i]);
        double v = types ? glmv_gguf_arr_num(types, (uint64_t)i) : 1;
        ty[i] = v >= 0 && v <= 64 ? (int32_t)v : -1;
        /* the converter types every token that looks like <|...|> CONTROL; GLM-4.1V's
         * tokenizer.json has these two as added but not special (answers keep them) */
        if (ty[i] == 3 && ((tl[i] == 16 && !memcmp(tp[i], "<|begin_of_box|>", 16)) ||
                           (tl[i] == 14 && !memcmp(tp[i], "<|end_of_box|>", 14))))
            ty[i] = 4;
    }
    for (uint64_t i = 0; i < merges->n; i++) mp[i] = glmv_gguf_arr_str(merges, i, &ml[i]);
    sp.tokens = tp, sp.token_len = tl, sp.types = ty, sp.merges = mp, sp.merge_len = ml;
    rc = glmv_tokenizer_build(out, &sp, path, err);
done:
    free(tp), free(mp), free(tl), free(ml), free(ty);
    return rc;
}

static int token_id(const glmv_gguf_kv *toks, const char *text) {
    size_t want = strlen(text);
    for (uint64_t i = 0; i < toks->n; i++) {
        size_t l;
        const char *s = glmv_gguf_arr_str(toks, i, &l);
        if (l == want && !memcmp(s, text, l)) return (int)i;
    }
    return -1;
}

static int load_text(glmv_gguf_model *out, const glmv_gguf *g, adder *a, char *err) {
    glmv_config *c = &out->cfg;
    const char *path = glmv_gguf_path(g);
    if (key_is(g, "general.architecture", "glm4", err)) return -1;
    keys k = {g, err, 0};
    c->hidden_size = key_int(&k, "glm4.embedding_length", 1, 1 << 16, 0, 0);
    c->intermediate_size = key_int(&k, "glm4.feed_forward_length", 1, 1 << 18, 0, 0);
    c->num_hidden_layers = key_int(&k, "glm4.block_count", 1, 1024, 0, 0);
    c->num_attention_heads = key_int(&k, "glm4.attention.head_count", 1, 1024, 0, 0);
    c->num_key_value_heads = key_int(&k, "glm4.attention.head_count_kv", 1, 1024, 1, c->num_attention_heads);
    c->head_dim = key_int(&k, "glm4.attention.key_length", 1, 4096, 1,
                          c->num_attention_heads ? c->hidden_size / c->num_attention_heads : 0);
    c->max_position_embeddings = key_int(&k, "glm4.context_length", 1, 1 << 24, 0, 0);
    c->rms_norm_eps = (float)key_float(&k, "glm4.attention.layer_norm_rms_epsilon", 1e-5);
    c->rope_theta = key_float(&k, "glm4.rope.freq_base", 10000.0);
    int rot = key_int(&k, "glm4.rope.dimension_count", 2, 4096, 1, c->head_dim / 2);
    if (k.fail) return -1;
    c->partial_rotary_factor = (float)rot / (float)c->head_dim;
    const glmv_gguf_kv *sec = glmv_gguf_find_kv(g, "glm4.rope.dimension_sections");
    if (!sec)
        return glmv_errf(err, "%s: no glm4.rope.dimension_sections: a GLM-4 text model, not GLM-4.1V's "
                         "(M-RoPE)", path);
    if (sec->type != GGUF_ARRAY || sec->arr_type == GGUF_STRING || sec->n < 3)
        return glmv_errf(err, "%s: glm4.rope.dimension_sections is not a list of 3 or 4 integers", path);
    for (int i = 0; i < 3; i++) {
        double v = glmv_gguf_arr_num(sec, (uint64_t)i);
        if (!(v >= 0 && v <= 4096))
            return glmv_errf(err, "%s: glm4.rope.dimension_sections[%d] = %g", path, i, v);
        c->mrope_section[i] = (int)v;
    }

    if (gguf_tokenizer(&out->tok, g, err)) return -1;
    const glmv_gguf_kv *toks = glmv_gguf_find_kv(g, "tokenizer.ggml.tokens");
    int32_t nt = (int32_t)toks->n;

    /* the prompt's special tokens are found by their text (config.json is not in a GGUF) */
    static const char *const names[] = {"<|image|>", "<|video|>", "<|begin_of_image|>", "<|end_of_image|>",
                                        "<|begin_of_video|>", "<|end_of_video|>"};
    int32_t *dst[] = {&c->image_token_id, &c->video_token_id, &c->image_start_token_id,
                      &c->image_end_token_id, &c->video_start_token_id, &c->video_end_token_id};
    for (int i = 0; i < 6; i++)
        if ((*dst[i] = token_id(toks, names[i])) < 0)
            return glmv_errf(err, "%s: the vocabulary has no %s token (not GLM-4.1V's tokenizer)", path,
                             names[i]);
    /* stop tokens: GLM-4.1V's generation_config.json lists these four */
    static const char *const stops[] = {"<|endoftext|>", "<|user|>", "<|observation|>", "</answer>"};
    c->n_eos = 0;
    for (int i = 0; i < 4; i++) {
        int id = token_id(toks, stops[i]);
        if (id >= 0) c->eos_token_ids[c->n_eos++] = id;
    }
    int64_t v;
    if (glmv_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &v, err) < 0) return -1;
    int known = 0;
    if (glmv_gguf_find_kv(g, "tokenizer.ggml.eos_token_id")) {
        if (v < 0 || v >= nt)
            return glmv_errf(err, "%s: tokenizer.ggml.eos_token_id %lld is outside the vocabulary", path,
                             (long long)v);
        for (int i = 0; i < c->n_eos; i++) known |= c->eos_token_ids[i] == v;
        if (!known && c->n_eos < GLMV_MAX_EOS) c->eos_token_ids[c->n_eos++] = (int32_t)v;
    }
    c->pad_token_id = c->n_eos ? c->eos_token_ids[0] : 0;
    if (glmv_gguf_get_int(g, "tokenizer.ggml.padding_token_id", &v, err) < 0) return -1;
    if (glmv_gguf_find_kv(g, "tokenizer.ggml.padding_token_id") && v >= 0 && v < nt)
        c->pad_token_id = (int32_t)v;

    /* sampling: general.sampling.* come from generation_config.json, which samples */
    c->gen_temperature = 1.0f;
    c->gen_top_p = 1.0f;
    c->gen_repetition_penalty = 1.0f;
    keys s = {g, err, 0};
    c->gen_temperature = (float)key_float(&s, "general.sampling.temp", 1.0);
    c->gen_top_p = (float)key_float(&s, "general.sampling.top_p", 1.0);
    c->gen_top_k = key_int(&s, "general.sampling.top_k", 0, 1 << 24, 1, 0);
    if (s.fail) return -1;
    c->gen_do_sample = glmv_gguf_find_kv(g, "general.sampling.temp") ||
                       glmv_gguf_find_kv(g, "general.sampling.top_p") ||
                       glmv_gguf_find_kv(g, "general.sampling.top_k");
    if (!(c->gen_temperature >= 0) || !(c->gen_top_p > 0 && c->gen_top_p <= 1))
        return glmv_errf(err, "%s: general.sampling.temp %g / top_p %g out of range", path,
                         c->gen_temperature, c->gen_top_p);

    /* chat template */
    const char *ct;
    size_t ctl;
    int r = glmv_gguf_get_str(g, "tokenizer.chat_template", &ct, &ctl, err);
    if (r < 0) return -1;
    if (r == 0) {
        out->chat_template = malloc(ctl + 1);
        if (!out->chat_template) return glmv_errf(err, "%s: out of memory", path);
        memcpy(out->chat_template, ct, ctl);
        out->chat_template[ctl] = 0;
    }

    /* tensors */
    const glmv_gguf_tensor *emb = glmv_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return glmv_errf(err, "%s: tensor token_embd.weight is missing or not 2-D", path);
    c->vocab_size = (int)GLMV_MIN(emb->ne[1], 1 << 25);
    c->attention_bias = glmv_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    c->tie_word_embeddings = glmv_gguf_find_tensor(g, "output.weight") == NULL;
    const char *tp_ = "model.language_model";
    char gn[128], hn[160];
    glmv_tensor *t;
#define ADD(G, ...)                                                   \
    do {                                                              \
        snprintf(gn, sizeof gn, "%s", G);                             \
        snprintf(hn, sizeof hn, __VA_ARGS__);                         \
        if (!(t = add_tensor(a, gn, hn, NULL))) return -1;            \
    } while (0)
    a->plain = c->tie_word_embeddings; /* the embedding kernels read plain rows; tied, it is no host table */
    ADD("token_embd.weight", "%s.embed_tokens.weight", tp_);
    a->plain = 0;
    ADD("output_norm.weight", "%s.norm.weight", tp_);
    if (!c->tie_word_embeddings) ADD("output.weight", "lm_head.weight");
    static const struct { const char *g, *h; int perm; } L[] = {
        {"attn_norm.weight", "input_layernorm.weight", 0},
        {"attn_q.weight", "self_attn.q_proj.weight", 1},
        {"attn_k.weight", "self_attn.k_proj.weight", 2},
        {"attn_v.weight", "self_attn.v_proj.weight", 0},
        {"attn_q.bias", "self_attn.q_proj.bias", 1},
        {"attn_k.bias", "self_attn.k_proj.bias", 2},
        {"attn_v.bias", "self_attn.v_proj.bias", 0},
        {"attn_output.weight", "self_attn.o_proj.weight", 0},
        {"post_attention_norm.weight", "post_self_attn_layernorm.weight", 0},
        {"ffn_norm.weight", "post_attention_layernorm.weight", 0},
        /* gate and up stay fused in HF's order: the first half of the rows is the gate */
        {"ffn_up.weight", "mlp.gate_up_proj.weight", 0},
        {"ffn_down.weight", "mlp.down_proj.weight", 0},
        {"post_ffw_norm.weight", "post_mlp_layernorm.weight", 0},
    };
    if (rot > c->head_dim || rot % 2)
        return glmv_errf(err, "%s: rope.dimension_count %d does not fit head_dim %d", path, rot, c->head_dim);
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
            snprintf(gn, sizeof gn, "blk.%d.%s", l, L[i].g);
            snprintf(hn, sizeof hn, "%s.layers.%d.%s", tp_, l, L[i].h);
            int missing = 0;
            int bias = strstr(L[i].g, ".bias") != NULL;
            t = add_tensor(a, gn, hn, bias ? &missing : NULL);
            if (missing) continue;
            if (!t) return -1;
            /* the converter moved the rotary rows of q and k into NeoX order */
            if (L[i].perm && unpermute(a, t, L[i].perm == 1 ? c->num_attention_heads : c->num_key_value_heads,
                                       c->head_dim, rot))
                return -1;
        }
#undef ADD
    return 0;
}

/* ---------------------------------------------------------------- vision tower */

static int load_vision(glmv_gguf_model *out, const glmv_gguf *g, adder *a, char *err) {
    glmv_config *c = &out->cfg;
    const char *path = glmv_gguf_path(g);
    if (key_is(g, "general.architecture", "clip", err)) return -1;
    if (key_is(g, "clip.projector_type", "glm4v", err)) return -1;
    keys k = {g, err, 0};
    c->v_depth = key_int(&k, "clip.vision.block_count", 1, 1024, 0, 0);
    c->v_hidden_size = key_int(&k, "clip.vision.embedding_length", 1, 1 << 16, 0, 0);
    c->v_num_heads = key_int(&k, "clip.vision.attention.head_count", 1, 1024, 0, 0);
    c->v_patch_size = key_int(&k, "clip.vision.patch_size", 1, 1024, 0, 0);
    c->v_image_size = key_int(&k, "clip.vision.image_size", 1, 65536, 0, 0);
    c->v_out_hidden_size = key_int(&k, "clip.vision.projection_dim", 1, 1 << 16, 1, c->hidden_size);
    c->v_rms_norm_eps = (float)key_float(&k, "clip.vision.attention.layer_norm_epsilon", 1e-5);
    if (k.fail) return -1;
    c->v_head_dim = c->v_hidden_size / c->v_num_heads;
    const glmv_gguf_tensor *pe = glmv_gguf_find_tensor(g, "v.patch_embd.weight");
    const glmv_gguf_tensor *pe1 = glmv_gguf_find_tensor(g, "v.patch_embd.weight.1");
    const glmv_gguf_tensor *pm = glmv_gguf_find_tensor(g, "mm.patch_merger.weight");
    const glmv_gguf_tensor *gate = glmv_gguf_find_tensor(g, "mm.gate.weight");
    if (!pe || !pe1 || !pm || !gate)
        return glmv_errf(err, "%s: tensor %s is missing", path,
                         !pe    ? "v.patch_embd.weight"
                         : !pe1 ? "v.patch_embd.weight.1"
                         : !pm  ? "mm.patch_merger.weight"
                                : "mm.gate.weight");
    /* ne innermost first: patch slices [P, P, C, Hv], merger kernel [m, m, Hv, O], gate [O, I] */
    if (pe->n_dims != 4 || pe1->n_dims != 4 || memcmp(pe->ne, pe1->ne, sizeof pe->ne) ||
        pe->type != pe1->type || pe->ne[0] != c->v_patch_size || pe->ne[1] != c->v_patch_size ||
        pe->ne[3] != c->v_hidden_size)
        return glmv_errf(
            err, "%s: v.patch_embd.weight and .weight.1 are not two [%d, C, %d, %d] kernels of one type",
            path, c->v_hidden_size, c->v_patch_size, c->v_patch_size);
    if (pm->n_dims != 4 || pm->ne[0] != pm->ne[1] || gate->n_dims != 2)
        return glmv_errf(err, "%s: mm.patch_merger.weight or mm.gate.weight has an unexpected shape", path);
    c->v_in_channels = (int)GLMV_MIN(pe->ne[2], 1 << 20);
    c->v_temporal_patch_size = 2; /* the converter writes one kernel per temporal slice, two of them */
    c->v_spatial_merge_size = (int)GLMV_MIN(pm->ne[0], 1 << 20);
    int64_t sm;
    if (glmv_gguf_get_int(g, "clip.vision.spatial_merge_size", &sm, err) < 0) return -1;
    if (glmv_gguf_find_kv(g, "clip.vision.spatial_merge_size") && sm != c->v_spatial_merge_size)
        return glmv_errf(err, "%s: clip.vision.spatial_merge_size %lld differs from mm.patch_merger's %d",
                         path, (long long)sm, c->v_spatial_merge_size);
    c->v_intermediate_size = (int)GLMV_MIN(gate->ne[1], 1 << 20);
    c->v_attention_bias = glmv_gguf_find_tensor(g, "v.blk.0.attn_qkv.bias") != NULL;

    /* processor: what the mmproj says, else GLM-4.1V-9B-Thinking's preprocessor_config.json */
    glmv_config_processor_defaults(c);
    c->img_min_pixels = 12544;
    c->img_max_pixels = 9633792;
    c->proc_patch_size = c->v_patch_size;
    c->proc_temporal_patch_size = c->v_temporal_patch_size;
    c->proc_merge_size = c->v_spatial_merge_size;
    const char *ms[2] = {"clip.vision.image_mean", "clip.vision.image_std"};
    float *mv[2] = {c->img_mean, c->img_std};
    for (int i = 0; i < 2; i++) {
        const glmv_gguf_kv *kv = glmv_gguf_find_kv(g, ms[i]);
        if (!kv) continue;
        if (kv->type != GGUF_ARRAY || kv->arr_type == GGUF_STRING || kv->n != 3)
            return glmv_errf(err, "%s: %s is not a list of 3 numbers", path, ms[i]);
        for (int j = 0; j < 3; j++) {
            double v = glmv_gguf_arr_num(kv, (uint64_t)j);
            if (!(v > -100 && v < 100) || (i == 1 && !(v > 0)))
                return glmv_errf(err, "%s: %s[%d] = %g", path, ms[i], j, v);
            mv[i][j] = (float)v;
        }
    }
    memcpy(c->vid_mean, c->img_mean, sizeof c->img_mean);
    memcpy(c->vid_std, c->img_std, sizeof c->img_std);
    int64_t px;
    if (glmv_gguf_get_int(g, "clip.vision.image_min_pixels", &px, err) < 0) return -1;
    if (glmv_gguf_find_kv(g, "clip.vision.image_min_pixels")) c->img_min_pixels = px;
    if (glmv_gguf_get_int(g, "clip.vision.image_max_pixels", &px, err) < 0) return -1;
    if (glmv_gguf_find_kv(g, "clip.vision.image_max_pixels")) c->img_max_pixels = px;
    if (c->img_min_pixels <= 0 || c->img_max_pixels < c->img_min_pixels)
        return glmv_errf(err, "%s: image_min_pixels %lld / image_max_pixels %lld", path,
                         (long long)c->img_min_pixels, (long long)c->img_max_pixels);

    /* tensors */
    const char *vp = "model.visual";
    char gn[128], hn[160];
    glmv_tensor *t;
    static const struct { const char *g, *h; int opt; } V[] = {
        {"v.patch_embd.bias", "patch_embed.proj.bias", 1},
        {"v.norm_embd.weight", "post_conv_layernorm.weight", 0},
        {"v.position_embd.weight", "embeddings.position_embedding.weight", 0},
        {"v.post_ln.weight", "post_layernorm.weight", 0},
        {"mm.patch_merger.weight", "downsample.weight", 0},
        {"mm.patch_merger.bias", "downsample.bias", 1},
        {"mm.model.fc.weight", "merger.proj.weight", 0},
        {"mm.post_norm.weight", "merger.post_projection_norm.weight", 0},
        {"mm.post_norm.bias", "merger.post_projection_norm.bias", 0},
        {"mm.gate.weight", "merger.gate_proj.weight", 0},
        {"mm.up.weight", "merger.up_proj.weight", 0},
        {"mm.down.weight", "merger.down_proj.weight", 0},
    };
    for (size_t i = 0; i < sizeof V / sizeof V[0]; i++) {
        snprintf(hn, sizeof hn, "%s.%s", vp, V[i].h);
        int missing = 0;
        t = add_tensor(a, V[i].g, hn, V[i].opt ? &missing : NULL);
        if (!t && !missing) return -1;
    }
    static const struct { const char *g, *h; } B[] = {
        {"ln1.weight", "norm1.weight"},          {"attn_qkv.weight", "attn.qkv.weight"},
        {"attn_qkv.bias", "attn.qkv.bias"},      {"attn_out.weight", "attn.proj.weight"},
        {"attn_out.bias", "attn.proj.bias"},     {"ln2.weight", "norm2.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"}, {"ffn_gate.bias", "mlp.gate_proj.bias"},
        {"ffn_up.weight", "mlp.up_proj.weight"}, {"ffn_up.bias", "mlp.up_proj.bias"},
        {"ffn_down.weight", "mlp.down_proj.weight"}, {"ffn_down.bias", "mlp.down_proj.bias"},
    };
    for (int l = 0; l < c->v_depth; l++)
        for (size_t i = 0; i < sizeof B / sizeof B[0]; i++) {
            snprintf(gn, sizeof gn, "v.blk.%d.%s", l, B[i].g);
            snprintf(hn, sizeof hn, "%s.blocks.%d.%s", vp, l, B[i].h);
            int missing = 0;
            t = add_tensor(a, gn, hn, strstr(B[i].g, ".bias") ? &missing : NULL);
            if (!t && !missing) return -1;
        }

    /* the Conv3d kernel [Hv, C, T, P, P] from its two temporal slices [Hv, C, P, P] */
    glmv_dtype dt;
    if (plain_dtype(pe->type, &dt) || glmv_dtype_is_quant(dt))
        return glmv_errf(err, "%s: v.patch_embd.weight has type %s (glmv reads F32, F16 or BF16 here)", path,
                         glmv_ggml_type_name(pe->type));
    size_t es = glmv_dtype_size(dt), plane = (size_t)(pe->ne[0] * pe->ne[1]) * es;
    int64_t oc = pe->ne[3] * pe->ne[2];
    char *p = glmv_aligned_alloc(glmv_mul_size(2 * plane, (size_t)oc));
    if (!p || glmv_weights_keep(a->w, p)) {
        free(p);
        return glmv_errf(err, "out of memory");
    }
    for (int64_t i = 0; i < oc; i++) {
        memcpy(p + (size_t)(2 * i) * plane, (const char *)pe->data + (size_t)i * plane, plane);
        memcpy(p + (size_t)(2 * i + 1) * plane, (const char *)pe1->data + (size_t)i * plane, plane);
    }
    int64_t shape[5] = {pe->ne[3], pe->ne[2], 2, pe->ne[1], pe->ne[0]};
    snprintf(hn, sizeof hn, "%s.patch_embed.proj.weight", vp);
    if (!glmv_weights_add(a->w, hn, a->file, dt, 5, shape, p, err)) return -1;
    return 0;
}

/* ---------------------------------------------------------------- load */

int glmv_gguf_tokenizer_load(glmv_tokenizer **out, const char *path, char *err) {
    *out = NULL;
    glmv_gguf *g = NULL;
    if (glmv_gguf_open(&g, path, err)) return -1;
    int rc = key_is(g, "general.architecture", "glm4", err) ? -1 : gguf_tokenizer(out, g, err);
    glmv_gguf_free(g);
    return rc;
}

/* Without an mmproj the vision fields still have to pass the config checks:
 * the 9B's tower, its output sized to this decoder (nothing of it is loaded). */
static void no_vision(glmv_config *c) {
    glmv_config p;
    glmv_config_preset_9b(&p, 1);
    c->v_depth = p.v_depth;
    c->v_hidden_size = p.v_hidden_size;
    c->v_num_heads = p.v_num_heads;
    c->v_head_dim = p.v_head_dim;
    c->v_patch_size = p.v_patch_size;
    c->v_temporal_patch_size = p.v_temporal_patch_size;
    c->v_spatial_merge_size = p.v_spatial_merge_size;
    c->v_image_size = p.v_image_size;
    c->v_in_channels = p.v_in_channels;
    c->v_out_hidden_size = c->hidden_size;
    c->v_intermediate_size = p.v_intermediate_size;
    c->v_rms_norm_eps = p.v_rms_norm_eps;
    glmv_config_processor_defaults(c);
    c->img_min_pixels = 12544;
    c->img_max_pixels = 9633792; /* GLM-4.1V-9B-Thinking's preprocessor_config.json */
}

/* Open path and hand its mapping to w (tensors point into it). */
static int open_file(glmv_gguf **g, glmv_weights *w, const char *path, int *file, char *err) {
    if (glmv_gguf_open(g, path, err)) return -1;
    void *map;
    size_t size;
    glmv_gguf_take_map(*g, &map, &size);
    if ((*file = glmv_weights_adopt_map(w, path, map, size)) < 0) {
        munmap(map, size);
        return glmv_errf(err, "out of memory");
    }
    return 0;
}

void glmv_gguf_model_clear(glmv_gguf_model *g) {
    glmv_weights_free(g->w);
    glmv_tokenizer_free(g->tok);
    free(g->chat_template);
    memset(g, 0, sizeof *g);
}

int glmv_gguf_model_load(glmv_gguf_model *out, const char *text, const char *mmproj, int n_threads,
                         char *err) {
    memset(out, 0, sizeof *out);
    glmv_gguf *gt = NULL, *gv = NULL;
    int rc = -1;
    out->w = glmv_weights_new();
    if (!out->w) return glmv_errf(err, "out of memory");
    adder a = {.w = out->w, .err = err, .n_threads = n_threads};
    adder b = {.w = out->w, .err = err, .vision = 1, .n_threads = n_threads};
    if (open_file(&gt, out->w, text, &a.file, err)) goto done;
    a.g = gt;
    if (load_text(out, gt, &a, err)) goto done;
    no_vision(&out->cfg);
    if (glmv_config_check(&out->cfg, text, err)) goto done;
    if (mmproj && *mmproj) {
        if (open_file(&gv, out->w, mmproj, &b.file, err)) goto done;
        b.g = gv;
        if (load_vision(out, gv, &b, err)) goto done;
        a.n_f32 += b.n_f32;
        a.types_seen |= b.types_seen;
    }
    if (gv && glmv_config_check(&out->cfg, mmproj, err)) goto done;
    if (a.n_q8 || a.n_f32) {
        char types[96] = "";
        for (uint32_t t = 0; t < 32; t++)
            if (a.types_seen >> t & 1)
                snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s", types[0] ? ", " : "",
                         glmv_ggml_type_name(t));
        snprintf(out->notes, sizeof out->notes, "%s tensors converted at load: %d to Q8_0, %d to F32", types,
                 a.n_q8, a.n_f32);
    }
    rc = 0;
done:
    glmv_gguf_free(gt);
    glmv_gguf_free(gv);
    if (rc) glmv_gguf_model_clear(out);
    return rc;
}
