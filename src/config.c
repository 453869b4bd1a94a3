/* config.c -- reads a checkpoint's JSON files into glmv_config.
 *
 * config.json comes in two layouts: the older one (July 2025) with text keys
 * at the top level and/or in text_config plus rope_scaling{mrope_section},
 * rope_theta and partial_rotary_factor; the newer one (transformers >= 4.57)
 * with text_config.rope_parameters{rope_type, rope_theta,
 * partial_rotary_factor, mrope_section}. Both are accepted, text_config first.
 * A key that is absent takes its transformers class default, as transformers
 * itself does (save_pretrained drops sub-config keys equal to the defaults).
 * Processor settings come from preprocessor_config.json +
 * video_preprocessor_config.json or the single processor_config.json of
 * transformers 5.x; sampling defaults from generation_config.json. */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "base.h"

/* Where a value is looked up: up to three JSON objects in order, with the
 * prefix used to name the key in messages. */
typedef struct {
    const cJSON *obj[3];
    const char *pre[3];
    int n;
    const char *file;
} cfg_scope;

static const cJSON *cfg_find(const cfg_scope *s, const char *key, const char **pre) {
    for (int i = 0; i < s->n; i++) {
        const cJSON *v = s->obj[i] ? cJSON_GetObjectItemCaseSensitive(s->obj[i], key) : NULL;
        if (v && !cJSON_IsNull(v)) {
            *pre = s->pre[i];
            return v;
        }
    }
    return NULL;
}

/* *out = the integer at key, or def when absent. */
static int cfg_int64(const cfg_scope *s, const char *key, int64_t def, int64_t *out, char *err) {
    const char *pre = "";
    const cJSON *v = cfg_find(s, key, &pre);
    if (!v) {
        *out = def;
        return 0;
    }
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        fabs(v->valuedouble) > 9007199254740992.0)
        return glmv_errf(err, "%s: %s%s is not an integer", s->file, pre, key);
    *out = (int64_t)v->valuedouble;
    return 0;
}

static int cfg_int(const cfg_scope *s, const char *key, int def, int *out, char *err) {
    int64_t x;
    if (cfg_int64(s, key, def, &x, err)) return -1;
    if (x < INT_MIN || x > INT_MAX) return glmv_errf(err, "%s: %s = %lld is out of range", s->file, key, (long long)x);
    *out = (int)x;
    return 0;
}

static int cfg_double(const cfg_scope *s, const char *key, double def, double *out, char *err) {
    const char *pre = "";
    const cJSON *v = cfg_find(s, key, &pre);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return glmv_errf(err, "%s: %s%s is not a number", s->file, pre, key);
    *out = v->valuedouble;
    return 0;
}

static int cfg_float(const cfg_scope *s, const char *key, double def, float *out, char *err) {
    double d;
    if (cfg_double(s, key, def, &d, err)) return -1;
    *out = (float)d;
    return 0;
}

/* A list of n numbers (mean/std, mrope_section). Returns 1 when absent. */
static int cfg_array(const cfg_scope *s, const char *key, int n, double *out, char *err) {
    const char *pre = "";
    const cJSON *v = cfg_find(s, key, &pre);
    if (!v) return 1;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return glmv_errf(err, "%s: %s%s must be a list of %d numbers", s->file, pre, key, n);
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
            return glmv_errf(err, "%s: %s%s[%d] is not a number", s->file, pre, key, i);
        out[i] = x->valuedouble;
    }
    return 0;
}

/* Token ids: one integer or a list; appended to ids (deduplicated). */
static int cfg_ids(const cfg_scope *s, const char *key, int32_t *ids, int *n, int *found, char *err) {
    const char *pre = "";
    const cJSON *v = cfg_find(s, key, &pre);
    *found = 0;
    if (!v) return 0;
    const cJSON *one = v, *it = NULL;
    int count = 1;
    if (cJSON_IsArray(v)) {
        count = cJSON_GetArraySize(v);
        it = v->child;
    }
    for (int i = 0; i < count; i++) {
        const cJSON *x = it ? it : one;
        if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 0 ||
            x->valuedouble > INT32_MAX)
            return glmv_errf(err, "%s: %s%s must be a token id or a list of them", s->file, pre,
                             key);
        int32_t id = (int32_t)x->valuedouble;
        int dup = 0;
        for (int j = 0; j < *n; j++) dup |= ids[j] == id;
        if (!dup) {
            if (*n >= GLMV_MAX_EOS)
                return glmv_errf(err, "%s: %s%s has more than %d ids", s->file, pre, key,
                                 GLMV_MAX_EOS);
            ids[(*n)++] = id;
        }
        if (it) it = it->next;
    }
    *found = 1;
    return 0;
}

static const cJSON *cfg_obj(const cJSON *o, const char *key) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsObject(v) ? v : NULL;
}

/* Parse dir/name; *root = NULL (and 0) when the file does not exist and
 * optional is set. */
static int cfg_read(const char *dir, const char *name, int optional, cJSON **root, char *path,
                    size_t path_cap, char *err) {
    snprintf(path, path_cap, "%s/%s", dir, name);
    *root = NULL;
    struct stat sb;
    if (optional && stat(path, &sb) != 0) return 0;
    size_t len;
    char *text = glmv_read_file(path, &len, err);
    if (!text) return -1;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t at = end ? (size_t)(end - text) : 0;
    free(text);
    if (!j) return glmv_errf(err, "%s: not valid JSON (near byte %zu)", path, at);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return glmv_errf(err, "%s: not a JSON object", path);
    }
    *root = j;
    return 0;
}

/* ---------------------------------------------------------------- config.json */

/* glmv computes SiLU (SwiGLU) only; HF would take ACT2FN[hidden_act], so any
 * other activation named in the config would be silently ignored. */
static int cfg_act_silu(const cfg_scope *s, char *err) {
    const char *pre = "";
    const cJSON *a = cfg_find(s, "hidden_act", &pre);
    if (a && (!cJSON_IsString(a) || (strcmp(a->valuestring, "silu") && strcmp(a->valuestring, "swish"))))
        return glmv_errf(err, "%s: %shidden_act \"%.40s\" is not supported (only \"silu\")", s->file,
                         pre, cJSON_IsString(a) ? a->valuestring : "?");
    return 0;
}

static int cfg_model(glmv_config *c, const cJSON *root, const char *path, char *err) {
    const cJSON *tc = cfg_obj(root, "text_config"), *vc = cfg_obj(root, "vision_config");
    /* older layout: text keys at the top level too; text_config wins */
    cfg_scope T = {{tc, root}, {"text_config.", ""}, 2, path};
    int r = 0;
    /* ref: Glm4vTextConfig defaults */
    r |= cfg_int(&T, "vocab_size", 151552, &c->vocab_size, err);
    r |= cfg_int(&T, "hidden_size", 4096, &c->hidden_size, err);
    r |= cfg_int(&T, "intermediate_size", 13696, &c->intermediate_size, err);
    r |= cfg_int(&T, "num_hidden_layers", 40, &c->num_hidden_layers, err);
    r |= cfg_int(&T, "num_attention_heads", 32, &c->num_attention_heads, err);
    if (r) return -1;
    r |= cfg_int(&T, "num_key_value_heads", c->num_attention_heads, &c->num_key_value_heads, err);
    /* no head_dim key in the 4.1V checkpoint: the code uses hidden / heads */
    r |= cfg_int(&T, "head_dim",
                 c->num_attention_heads > 0 ? c->hidden_size / c->num_attention_heads : 0,
                 &c->head_dim, err);
    r |= cfg_int(&T, "max_position_embeddings", 32768, &c->max_position_embeddings, err);
    r |= cfg_float(&T, "rms_norm_eps", 1e-5, &c->rms_norm_eps, err);
    /* Glm4vTextAttention always has q/k/v bias; the key exists in GLM-4 configs */
    r |= cfg_int(&T, "attention_bias", 1, &c->attention_bias, err);
    r |= cfg_int(&T, "tie_word_embeddings", 0, &c->tie_word_embeddings, err);
    if (r || cfg_act_silu(&T, err)) return -1;
    if (c->num_attention_heads > 0 && !cfg_find(&T, "head_dim", &(const char *){""}) &&
        c->hidden_size % c->num_attention_heads)
        return glmv_errf(err, "%s: hidden_size %d is not divisible by num_attention_heads %d "
                         "(and there is no head_dim key)", path, c->hidden_size,
                         c->num_attention_heads);

    /* rope: newer rope_parameters, else older rope_scaling + top-level keys */
    const cJSON *rp = cfg_obj(tc, "rope_parameters");
    if (!rp) rp = cfg_obj(root, "rope_parameters");
    const cJSON *rs = cfg_obj(tc, "rope_scaling");
    if (!rs) rs = cfg_obj(root, "rope_scaling");
    cfg_scope R = {{rp, tc, root}, {"rope_parameters.", "text_config.", ""}, 3, path};
    cfg_scope RS = {{rp ? rp : rs}, {rp ? "rope_parameters." : "rope_scaling."}, 1, path};
    double pf;
    r |= cfg_double(&R, "rope_theta", 10000.0, &c->rope_theta, err);
    r |= cfg_double(&R, "partial_rotary_factor", 0.5, &pf, err);
    if (r) return -1;
    c->partial_rotary_factor = (float)pf;
    const char *pre = "";
    const cJSON *rt = cfg_find(&RS, "rope_type", &pre);
    if (!rt) rt = cfg_find(&RS, "type", &pre);
    if (rt && (!cJSON_IsString(rt) || (strcmp(rt->valuestring, "default") &&
                                       strcmp(rt->valuestring, "mrope"))))
        return glmv_errf(err, "%s: %srope_type \"%.40s\" is not supported (only \"default\")", path,
                         pre, cJSON_IsString(rt) ? rt->valuestring : "?");
    double ms[3] = {8, 12, 12}; /* ref: Glm4vTextRotaryEmbedding default */
    int a = cfg_array(&RS, "mrope_section", 3, ms, err);
    if (a < 0) return -1;
    for (int i = 0; i < 3; i++) {
        if (ms[i] < 0 || ms[i] != floor(ms[i]) || ms[i] > 65536)
            return glmv_errf(err, "%s: mrope_section[%d] = %g is not a non-negative integer", path,
                             i, ms[i]);
        c->mrope_section[i] = (int)ms[i];
    }

    /* ref: Glm4vVisionConfig defaults */
    cfg_scope V = {{vc}, {"vision_config."}, 1, path};
    r |= cfg_int(&V, "depth", 24, &c->v_depth, err);
    r |= cfg_int(&V, "hidden_size", 1536, &c->v_hidden_size, err);
    r |= cfg_int(&V, "num_heads", 12, &c->v_num_heads, err);
    r |= cfg_int(&V, "patch_size", 14, &c->v_patch_size, err);
    r |= cfg_int(&V, "temporal_patch_size", 2, &c->v_temporal_patch_size, err);
    r |= cfg_int(&V, "spatial_merge_size", 2, &c->v_spatial_merge_size, err);
    r |= cfg_int(&V, "in_channels", 3, &c->v_in_channels, err);
    r |= cfg_int(&V, "out_hidden_size", 4096, &c->v_out_hidden_size, err);
    r |= cfg_int(&V, "intermediate_size", 13696, &c->v_intermediate_size, err);
    r |= cfg_float(&V, "rms_norm_eps", 1e-5, &c->v_rms_norm_eps, err);
    r |= cfg_int(&V, "attention_bias", 0, &c->v_attention_bias, err);
    if (r || cfg_act_silu(&V, err)) return -1;
    /* image_size may be an int or [h, w] (square in every GLM-4.1V config) */
    const cJSON *is = vc ? cJSON_GetObjectItemCaseSensitive(vc, "image_size") : NULL;
    if (cJSON_IsArray(is)) {
        double hw[2];
        if (cfg_array(&V, "image_size", 2, hw, err)) return -1;
        if (hw[0] != hw[1])
            return glmv_errf(err, "%s: vision_config.image_size [%g, %g] is not square", path,
                             hw[0], hw[1]);
        c->v_image_size = (int)hw[0];
    } else if (cfg_int(&V, "image_size", 336, &c->v_image_size, err)) {
        return -1;
    }
    c->v_head_dim = c->v_num_heads > 0 ? c->v_hidden_size / c->v_num_heads : 0;

    /* token ids: top level (ref: Glm4vConfig defaults), text_config as fallback */
    cfg_scope K = {{root, tc}, {"", "text_config."}, 2, path};
    int t[7] = {0};
    r |= cfg_int(&K, "image_token_id", 151343, &t[0], err);
    r |= cfg_int(&K, "video_token_id", 151344, &t[1], err);
    r |= cfg_int(&K, "image_start_token_id", 151339, &t[2], err);
    r |= cfg_int(&K, "image_end_token_id", 151340, &t[3], err);
    r |= cfg_int(&K, "video_start_token_id", 151341, &t[4], err);
    r |= cfg_int(&K, "video_end_token_id", 151342, &t[5], err);
    cfg_scope KP = {{tc, root}, {"text_config.", ""}, 2, path};
    r |= cfg_int(&KP, "pad_token_id", -1, &t[6], err);
    if (r) return -1;
    c->image_token_id = t[0];
    c->video_token_id = t[1];
    c->image_start_token_id = t[2];
    c->image_end_token_id = t[3];
    c->video_start_token_id = t[4];
    c->video_end_token_id = t[5];
    c->pad_token_id = t[6];
    int found;
    c->n_eos = 0;
    if (cfg_ids(&KP, "eos_token_id", c->eos_token_ids, &c->n_eos, &found, err)) return -1;
    return 0;
}

/* ---------------------------------------------------------------- generation_config.json */

static int cfg_generation(glmv_config *c, const cJSON *g, const char *path, char *err) {
    cfg_scope G = {{g}, {""}, 1, path};
    int r = 0, found = 0;
    int32_t ids[GLMV_MAX_EOS];
    int n = 0;
    if (cfg_ids(&G, "eos_token_id", ids, &n, &found, err)) return -1;
    if (found && n > 0) { /* generation_config's list replaces config.json's */
        memcpy(c->eos_token_ids, ids, sizeof ids);
        c->n_eos = n;
    }
    int pad = c->pad_token_id;
    r |= cfg_int(&G, "pad_token_id", c->pad_token_id, &pad, err);
    c->pad_token_id = pad;
    r |= cfg_int(&G, "do_sample", 0, &c->gen_do_sample, err);
    r |= cfg_float(&G, "temperature", 1.0, &c->gen_temperature, err);
    r |= cfg_int(&G, "top_k", 0, &c->gen_top_k, err);
    r |= cfg_float(&G, "top_p", 1.0, &c->gen_top_p, err);
    r |= cfg_float(&G, "repetition_penalty", 1.0, &c->gen_repetition_penalty, err);
    r |= cfg_int(&G, "max_new_tokens", 0, &c->gen_max_new_tokens, err);
    if (r) return -1;
    if (c->gen_temperature < 0) return glmv_errf(err, "%s: temperature %g is negative", path, c->gen_temperature);
    if (c->gen_top_k < 0) return glmv_errf(err, "%s: top_k %d is negative", path, c->gen_top_k);
    if (!(c->gen_top_p > 0 && c->gen_top_p <= 1))
        return glmv_errf(err, "%s: top_p %g is not in (0, 1]", path, c->gen_top_p);
    if (!(c->gen_repetition_penalty > 0))
        return glmv_errf(err, "%s: repetition_penalty %g is not positive", path,
                         c->gen_repetition_penalty);
    if (c->gen_max_new_tokens < 0)
        return glmv_errf(err, "%s: max_new_tokens %d is negative", path, c->gen_max_new_tokens);
    return 0;
}

/* ---------------------------------------------------------------- processors */

/* One image or video processor object. min/max pixels from
 * size.shortest_edge/longest_edge (2025 layout), or min_pixels/max_pixels. */
static int cfg_processor(const cJSON *p, const char *path, const char *pre, int64_t *min_px,
                         int64_t *max_px, float *mean, float *std, int *patch, int *tpatch,
                         int *merge, char *err) {
    const cJSON *size = cfg_obj(p, "size");
    char spre[64];
    snprintf(spre, sizeof spre, "%ssize.", pre);
    cfg_scope S = {{size, p}, {spre, pre}, 2, path};
    cfg_scope P = {{p}, {pre}, 1, path};
    int r = 0;
    r |= cfg_int64(&S, "shortest_edge", *min_px, min_px, err);
    r |= cfg_int64(&S, "longest_edge", *max_px, max_px, err);
    r |= cfg_int64(&P, "min_pixels", *min_px, min_px, err);
    r |= cfg_int64(&P, "max_pixels", *max_px, max_px, err);
    r |= cfg_int(&P, "patch_size", *patch, patch, err);
    r |= cfg_int(&P, "temporal_patch_size", *tpatch, tpatch, err);
    r |= cfg_int(&P, "merge_size", *merge, merge, err);
    if (r) return -1;
    double m[3], s[3];
    int a = cfg_array(&P, "image_mean", 3, m, err);
    if (a < 0) return -1;
    if (a == 0)
        for (int i = 0; i < 3; i++) mean[i] = (float)m[i];
    a = cfg_array(&P, "image_std", 3, s, err);
    if (a < 0) return -1;
    if (a == 0)
        for (int i = 0; i < 3; i++) std[i] = (float)s[i];
    for (int i = 0; i < 3; i++)
        if (!(std[i] > 0)) return glmv_errf(err, "%s: %simage_std[%d] = %g is not positive", path, pre, i, std[i]);
    if (*min_px <= 0 || *max_px < *min_px)
        return glmv_errf(err, "%s: %ssize: shortest_edge %lld / longest_edge %lld (pixels) must "
                         "satisfy 0 < min <= max", path, pre, (long long)*min_px, (long long)*max_px);
    return 0;
}

void glmv_config_processor_defaults(glmv_config *c) {
    /* Used when no processor file is present: the transformers class defaults
     * (Glm4vImageProcessor: longest_edge 28*28*15000; Glm4vVideoProcessor:
     * 28*28*2*30000). The 4.1V checkpoint's own file sets the image
     * longest_edge to 9633792 (GLM4V.md §1.4), which then overrides these. */
    static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    c->img_min_pixels = 112 * 112;
    c->img_max_pixels = 28 * 28 * 15000;
    c->vid_min_pixels = 112 * 112;
    c->vid_max_pixels = (int64_t)28 * 28 * 2 * 30000;
    memcpy(c->img_mean, clip_mean, sizeof clip_mean);
    memcpy(c->img_std, clip_std, sizeof clip_std);
    memcpy(c->vid_mean, clip_mean, sizeof clip_mean);
    memcpy(c->vid_std, clip_std, sizeof clip_std);
    c->img_rescale_factor = 1.0 / 255.0;
    c->vid_fps = 2.0;
    c->vid_max_duration = 300.0;
    c->proc_patch_size = c->v_patch_size;
    c->proc_temporal_patch_size = c->v_temporal_patch_size;
    c->proc_merge_size = c->v_spatial_merge_size;
}

static int cfg_image_proc(glmv_config *c, const cJSON *p, const char *path, const char *pre,
                          char *err) {
    if (cfg_processor(p, path, pre, &c->img_min_pixels, &c->img_max_pixels, c->img_mean,
                      c->img_std, &c->proc_patch_size, &c->proc_temporal_patch_size,
                      &c->proc_merge_size, err))
        return -1;
    cfg_scope P = {{p}, {pre}, 1, path};
    if (cfg_double(&P, "rescale_factor", c->img_rescale_factor, &c->img_rescale_factor, err)) return -1;
    if (!(c->img_rescale_factor > 0))
        return glmv_errf(err, "%s: %srescale_factor %g is not positive", path, pre, c->img_rescale_factor);
    return 0;
}

static int cfg_video_proc(glmv_config *c, const cJSON *p, const char *path, const char *pre,
                          char *err) {
    int patch = c->proc_patch_size, tp = c->proc_temporal_patch_size, merge = c->proc_merge_size;
    if (cfg_processor(p, path, pre, &c->vid_min_pixels, &c->vid_max_pixels, c->vid_mean,
                      c->vid_std, &patch, &tp, &merge, err))
        return -1;
    if (patch != c->proc_patch_size || tp != c->proc_temporal_patch_size || merge != c->proc_merge_size)
        return glmv_errf(err, "%s: %spatch_size/temporal_patch_size/merge_size %d/%d/%d differ "
                         "from the image processor's %d/%d/%d", path, pre, patch, tp, merge,
                         c->proc_patch_size, c->proc_temporal_patch_size, c->proc_merge_size);
    cfg_scope P = {{p}, {pre}, 1, path};
    if (cfg_double(&P, "fps", c->vid_fps, &c->vid_fps, err)) return -1;
    if (cfg_double(&P, "max_duration", c->vid_max_duration, &c->vid_max_duration, err)) return -1;
    if (!(c->vid_fps > 0)) return glmv_errf(err, "%s: %sfps %g is not positive", path, pre, c->vid_fps);
    if (!(c->vid_max_duration > 0))
        return glmv_errf(err, "%s: %smax_duration %g is not positive", path, pre, c->vid_max_duration);
    return 0;
}

/* ---------------------------------------------------------------- checks */

static int cfg_fail(char *err);

static int cfg_check(const glmv_config *c, const char *path, char *err) {
#define POS(x, key)                                                                      \
    if ((x) <= 0) return glmv_errf(err, "%s: %s = %lld must be positive", path, key, (long long)(x))
    POS(c->vocab_size, "vocab_size");
    POS(c->hidden_size, "hidden_size");
    POS(c->intermediate_size, "intermediate_size");
    POS(c->num_hidden_layers, "num_hidden_layers");
    POS(c->num_attention_heads, "num_attention_heads");
    POS(c->num_key_value_heads, "num_key_value_heads");
    POS(c->head_dim, "head_dim");
    POS(c->max_position_embeddings, "max_position_embeddings");
    POS(c->v_depth, "vision_config.depth");
    POS(c->v_hidden_size, "vision_config.hidden_size");
    POS(c->v_num_heads, "vision_config.num_heads");
    POS(c->v_patch_size, "vision_config.patch_size");
    POS(c->v_temporal_patch_size, "vision_config.temporal_patch_size");
    POS(c->v_spatial_merge_size, "vision_config.spatial_merge_size");
    POS(c->v_image_size, "vision_config.image_size");
    POS(c->v_in_channels, "vision_config.in_channels");
    POS(c->v_out_hidden_size, "vision_config.out_hidden_size");
    POS(c->v_intermediate_size, "vision_config.intermediate_size");
#undef POS
    /* sizes stay far below these in any real model; the limits keep int64
     * products (rows * cols, positions * dims) from overflowing */
    if (c->vocab_size > (1 << 24) || c->hidden_size > (1 << 16) || c->intermediate_size > (1 << 18) ||
        c->num_hidden_layers > 1024 || c->num_attention_heads > 1024 || c->head_dim > 4096 ||
        c->v_depth > 1024 || c->v_hidden_size > (1 << 16) || c->v_out_hidden_size > (1 << 16) ||
        c->v_intermediate_size > (1 << 18) || c->v_patch_size > 1024 || c->v_image_size > 65536 ||
        c->v_temporal_patch_size > 64 || c->v_spatial_merge_size > 64 || c->v_in_channels > 64 ||
        c->max_position_embeddings > (1 << 24))
        return glmv_errf(err, "%s: a size is absurdly large (hidden %d, layers %d, vocab %d, "
                         "vision hidden %d)", path, c->hidden_size, c->num_hidden_layers,
                         c->vocab_size, c->v_hidden_size);
    if (!(c->rms_norm_eps > 0) || !(c->v_rms_norm_eps > 0))
        return glmv_errf(err, "%s: rms_norm_eps must be positive", path);
    if (!(c->rope_theta > 0)) return glmv_errf(err, "%s: rope_theta %g must be positive", path, c->rope_theta);
    if (c->num_attention_heads % c->num_key_value_heads)
        return glmv_errf(err, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                         path, c->num_attention_heads, c->num_key_value_heads);
    double rd = c->head_dim * (double)c->partial_rotary_factor;
    int rot = (int)rd;
    if (!(c->partial_rotary_factor > 0 && c->partial_rotary_factor <= 1) || rot != rd || rot % 2)
        return glmv_errf(err, "%s: partial_rotary_factor %g times head_dim %d must be an even "
                         "integer", path, c->partial_rotary_factor, c->head_dim);
    if (c->mrope_section[0] + c->mrope_section[1] + c->mrope_section[2] != rot / 2)
        return glmv_errf(err, "%s: mrope_section [%d, %d, %d] sums to %d, but rotary_dim/2 = "
                         "head_dim %d * partial_rotary_factor %g / 2 = %d", path,
                         c->mrope_section[0], c->mrope_section[1], c->mrope_section[2],
                         c->mrope_section[0] + c->mrope_section[1] + c->mrope_section[2],
                         c->head_dim, c->partial_rotary_factor, rot / 2);
    if (c->v_hidden_size % c->v_num_heads)
        return glmv_errf(err, "%s: vision_config.hidden_size %d is not divisible by num_heads %d",
                         path, c->v_hidden_size, c->v_num_heads);
    if (c->v_head_dim % 4)
        return glmv_errf(err, "%s: vision head dim %d must be a multiple of 4 (2-D rotary)", path,
                         c->v_head_dim);
    if (c->v_out_hidden_size != c->hidden_size)
        return glmv_errf(err, "%s: vision_config.out_hidden_size %d differs from the text "
                         "hidden_size %d (image features replace token embeddings)", path,
                         c->v_out_hidden_size, c->hidden_size);
    if (c->v_image_size % c->v_patch_size)
        return glmv_errf(err, "%s: vision_config.image_size %d is not a multiple of patch_size %d",
                         path, c->v_image_size, c->v_patch_size);
    const int32_t ids[] = {c->image_token_id, c->video_token_id, c->image_start_token_id,
                           c->image_end_token_id, c->video_start_token_id, c->video_end_token_id};
    static const char *const names[] = {"image_token_id", "video_token_id", "image_start_token_id",
                                        "image_end_token_id", "video_start_token_id",
                                        "video_end_token_id"};
    for (int i = 0; i < 6; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return glmv_errf(err, "%s: %s %d is outside the vocabulary (%d)", path, names[i],
                             ids[i], c->vocab_size);
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] >= c->vocab_size)
            return glmv_errf(err, "%s: eos_token_id %d is outside the vocabulary (%d)", path,
                             c->eos_token_ids[i], c->vocab_size);
    if (c->pad_token_id >= c->vocab_size)
        return glmv_errf(err, "%s: pad_token_id %d is outside the vocabulary (%d)", path,
                         c->pad_token_id, c->vocab_size);
    return 0;
}

int glmv_config_check(const glmv_config *c, const char *path, char *err) {
    return cfg_check(c, path, err) ? cfg_fail(err) : 0;
}

static int cfg_check_proc(const glmv_config *c, const char *path, char *err) {
    if (c->proc_patch_size != c->v_patch_size ||
        c->proc_temporal_patch_size != c->v_temporal_patch_size ||
        c->proc_merge_size != c->v_spatial_merge_size)
        return glmv_errf(err, "%s: patch_size/temporal_patch_size/merge_size %d/%d/%d do not match "
                         "config.json's vision_config %d/%d/%d", path, c->proc_patch_size,
                         c->proc_temporal_patch_size, c->proc_merge_size, c->v_patch_size,
                         c->v_temporal_patch_size, c->v_spatial_merge_size);
    return 0;
}

/* ---------------------------------------------------------------- load */

/* Strings from the files (rope_type) end up in messages: keep them one line. */
static int cfg_fail(char *err) {
    if (err)
        for (char *p = err; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return -1;
}

static int cfg_load(glmv_config *c, const char *dir, char *err);

int glmv_config_load(glmv_config *c, const char *dir, char *err) {
    return cfg_load(c, dir, err) ? cfg_fail(err) : 0;
}

static int cfg_load(glmv_config *c, const char *dir, char *err) {
    memset(c, 0, sizeof *c);
    char path[4096];
    cJSON *root = NULL;
    if (cfg_read(dir, "config.json", 0, &root, path, sizeof path, err)) return -1;
    int rc = cfg_model(c, root, path, err);
    if (!rc) rc = cfg_check(c, path, err);
    cJSON_Delete(root);
    if (rc) return -1;

    /* generation defaults: greedy, t = 1, no top-k/top-p, no penalty */
    c->gen_do_sample = 0;
    c->gen_temperature = 1.0f;
    c->gen_top_k = 0;
    c->gen_top_p = 1.0f;
    c->gen_repetition_penalty = 1.0f;
    c->gen_max_new_tokens = 0;
    if (cfg_read(dir, "generation_config.json", 1, &root, path, sizeof path, err)) return -1;
    if (root) {
        rc = cfg_generation(c, root, path, err);
        if (!rc) rc = cfg_check(c, path, err); /* eos/pad ids against the vocabulary */
        cJSON_Delete(root);
        if (rc) return -1;
    }

    glmv_config_processor_defaults(c);
    /* transformers 5.x: one processor_config.json with both processors */
    if (cfg_read(dir, "processor_config.json", 1, &root, path, sizeof path, err)) return -1;
    int have_image = 0, have_video = 0;
    if (root) {
        const cJSON *ip = cfg_obj(root, "image_processor"), *vp = cfg_obj(root, "video_processor");
        rc = 0;
        if (ip) rc = cfg_image_proc(c, ip, path, "image_processor.", err);
        if (!rc && vp) rc = cfg_video_proc(c, vp, path, "video_processor.", err);
        if (!rc) rc = cfg_check_proc(c, path, err);
        have_image = ip != NULL;
        have_video = vp != NULL;
        cJSON_Delete(root);
        if (rc) return -1;
    }
    /* 2025 layout: separate files (they take over where processor_config lacks a part) */
    if (!have_image) {
        if (cfg_read(dir, "preprocessor_config.json", 1, &root, path, sizeof path, err)) return -1;
        if (root) {
            rc = cfg_image_proc(c, root, path, "", err);
            if (!rc) rc = cfg_check_proc(c, path, err);
            cJSON_Delete(root);
            if (rc) return -1;
        } else {
            glmv_log(0, "warning: %s: no preprocessor_config.json (or processor_config.json): images "
                        "are prepared with GLM-4.1V-9B-Thinking's settings", dir);
        }
    }
    if (!have_video) {
        if (cfg_read(dir, "video_preprocessor_config.json", 1, &root, path, sizeof path, err))
            return -1;
        if (root) {
            rc = cfg_video_proc(c, root, path, "", err);
            cJSON_Delete(root);
            if (rc) return -1;
        } else {
            glmv_log(0, "warning: %s: no video_preprocessor_config.json (or processor_config.json): "
                        "videos are prepared with GLM-4.1V-9B-Thinking's settings", dir);
        }
    }
    return 0;
}

void glmv_config_preset_9b(glmv_config *c, int n_layers) {
    /* GLM4V.md §1: GLM-4.1V-9B-Thinking; for synthetic benchmarks only */
    memset(c, 0, sizeof *c);
    c->vocab_size = 151552;
    c->hidden_size = 4096;
    c->intermediate_size = 13696;
    c->num_hidden_layers = n_layers > 0 ? n_layers : 40;
    c->num_attention_heads = 32;
    c->num_key_value_heads = 2;
    c->head_dim = 128;
    c->max_position_embeddings = 65536;
    c->rms_norm_eps = 1e-5f;
    c->rope_theta = 10000.0;
    c->partial_rotary_factor = 0.5f;
    c->mrope_section[0] = 8;
    c->mrope_section[1] = 12;
    c->mrope_section[2] = 12;
    c->attention_bias = 1;
    c->tie_word_embeddings = 0;
    c->v_depth = 24;
    c->v_hidden_size = 1536;
    c->v_num_heads = 12;
    c->v_head_dim = 128;
    c->v_patch_size = 14;
    c->v_temporal_patch_size = 2;
    c->v_spatial_merge_size = 2;
    c->v_image_size = 336;
    c->v_in_channels = 3;
    c->v_out_hidden_size = 4096;
    c->v_intermediate_size = 13696;
    c->v_rms_norm_eps = 1e-5f;
    c->v_attention_bias = 0;
    c->image_token_id = 151343;
    c->video_token_id = 151344;
    c->image_start_token_id = 151339;
    c->image_end_token_id = 151340;
    c->video_start_token_id = 151341;
    c->video_end_token_id = 151342;
    c->pad_token_id = 151329;
    static const int32_t eos[] = {151329, 151336, 151338, 151348};
    c->n_eos = 4;
    memcpy(c->eos_token_ids, eos, sizeof eos);
    c->gen_do_sample = 0;
    c->gen_temperature = 1.0f;
    c->gen_top_p = 1.0f;
    c->gen_repetition_penalty = 1.0f;
    glmv_config_processor_defaults(c);
    c->img_max_pixels = 9633792; /* the checkpoint's preprocessor_config.json (§1.4) */
}
