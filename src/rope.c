/* rope.c -- rotary position embeddings of GLM-4.1V (GLM4V.md §4):
 *  - get_rope_index: the 3-axis (t, h, w) M-RoPE position ids of a prompt with
 *    text, image and video runs, and the rope_delta that decode positions add;
 *  - the text cos/sin tables: partial interleaved M-RoPE, frequency j taking its
 *    position from the axis that mrope_section assigns to it;
 *  - the vision 2-D tables (NeoX half rotation; h frequencies then w).
 * Tables are computed with torch's float32 steps (inv_freq = 1 / theta^(2j/d) in
 * fp32, angle = fp32 product) and cos/sin evaluated in double, then rounded.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "model.h"

/* ref: Glm4vModel.get_rope_index (one sequence, no padding) */
int glmv_rope_index(const glmv_config *c, const int32_t *ids, int64_t n, const int (*img_grid)[3],
                    int n_img, const int (*vid_grid)[3], int n_vid, int32_t *pos,
                    int64_t *rope_delta, char *err) {
    int32_t *pt = pos, *ph = pos + n, *pw = pos + 2 * n;
    int ms = c->v_spatial_merge_size > 0 ? c->v_spatial_merge_size : 2;
    int64_t next = 0;
    int img = 0, vid = 0, vid_frame = 0, in_video = 0;
    int64_t i = 0;
    while (i < n) {
        if (ids[i] == c->video_start_token_id) in_video = 1;
        if (ids[i] == c->video_end_token_id) in_video = 0;
        if (ids[i] != c->image_token_id) { /* text token */
            pt[i] = ph[i] = pw[i] = (int32_t)next;
            next++;
            i++;
            continue;
        }
        /* a run of placeholders: one image, or one temporal group of a video */
        int gh, gw;
        if (!in_video) {
            if (img >= n_img)
                return glmv_errf(err, "prompt has more image runs than the %d images given", n_img);
            gh = img_grid[img][1];
            gw = img_grid[img][2];
            img++;
        } else {
            if (vid >= n_vid)
                return glmv_errf(err, "prompt has more video runs than the %d videos given", n_vid);
            gh = vid_grid[vid][1];
            gw = vid_grid[vid][2];
            if (++vid_frame >= vid_grid[vid][0]) {
                vid++;
                vid_frame = 0;
            }
        }
        int64_t H = gh / ms, W = gw / ms, k = H * W;
        if (i + k > n)
            return glmv_errf(err, "image run at token %lld needs %lld placeholders, prompt ends",
                             (long long)i, (long long)k);
        for (int64_t j = 0; j < k; j++) {
            if (ids[i + j] != c->image_token_id)
                return glmv_errf(err, "image run at token %lld has %lld placeholders, grid needs %lld",
                                 (long long)i, (long long)j, (long long)k);
            pt[i + j] = (int32_t)next;
            ph[i + j] = (int32_t)(next + j / W);
            pw[i + j] = (int32_t)(next + j % W);
        }
        next += H > W ? H : W;
        i += k;
        /* the next run of placeholders starts a new image even when adjacent */
    }
    if (img != n_img) return glmv_errf(err, "%d images given, prompt has %d image runs", n_img, img);
    *rope_delta = next - n;
    return 0;
}

static float inv_freq_f32(double theta, int j, int dim) {
    float e = (float)(2 * j) / (float)dim;
    float p = (float)pow(theta, (double)e);
    return 1.0f / p;
}

/* ref: Glm4vTextRotaryEmbedding + apply_multimodal_rotary_pos_emb (interleaved) */
void glmv_rope_text_table(const glmv_config *c, const int32_t *pos, int64_t stride, int64_t n,
                          float *cos_out, float *sin_out) {
    int rot = (int)(c->head_dim * c->partial_rotary_factor + 0.5f);
    rot -= rot % 2;
    int half = rot / 2;
    float inv[512];
    int axis[512];
    GLMV_ASSERT(half <= 512);
    for (int j = 0, a = 0, acc = c->mrope_section[0]; j < half; j++) {
        inv[j] = inv_freq_f32(c->rope_theta, j, rot);
        while (a < 2 && j >= acc) acc += c->mrope_section[++a];
        axis[j] = a;
    }
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < half; j++) {
            float ang = (float)pos[axis[j] * stride + i] * inv[j];
            cos_out[i * half + j] = (float)cos((double)ang);
            sin_out[i * half + j] = (float)sin((double)ang);
        }
}

/* ref: Glm4vVisionRotaryEmbedding(head_dim / 2) at the coordinates 0 .. nv - 1 */
void glmv_rope_vision_values(int head_dim, double theta, int32_t nv, float *tc, float *ts) {
    int dim = head_dim / 2, nf = dim / 2; /* nf frequencies per axis */
    float inv[512];
    GLMV_ASSERT(nf <= 512);
    for (int j = 0; j < nf; j++) inv[j] = inv_freq_f32(theta, j, dim);
    for (int32_t v = 0; v < nv; v++)
        for (int j = 0; j < nf; j++) {
            float a = (float)v * inv[j];
            tc[(size_t)v * nf + j] = (float)cos((double)a);
            ts[(size_t)v * nf + j] = (float)sin((double)a);
        }
}

/* ref: Glm4vVisionRotaryEmbedding(head_dim / 2) indexed by (hpos, wpos) */
void glmv_rope_vision_table(int head_dim, double theta, const int32_t *hp, const int32_t *wp,
                            int64_t n, float *cos_out, float *sin_out) {
    int dim = head_dim / 2, nf = dim / 2; /* nf frequencies per axis */
    float inv[512];
    GLMV_ASSERT(nf <= 512);
    for (int j = 0; j < nf; j++) inv[j] = inv_freq_f32(theta, j, dim);
    /* the positions are small grid coordinates: each value's cos and sin are computed once
     * (the same expression, so the same floats) and copied to the rows that have it; 6400
     * patches take 80 values' instead of 819,200 calls of cos and sin */
    int32_t vmax = -1, vmin = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t a = hp[i] > wp[i] ? hp[i] : wp[i], b = hp[i] < wp[i] ? hp[i] : wp[i];
        vmax = a > vmax ? a : vmax;
        vmin = b < vmin ? b : vmin;
    }
    float *tc = vmin >= 0 && (int64_t)vmax < n + 64 /* grid coordinates, not arbitrary values */
                    ? malloc(sizeof(float) * 2 * (size_t)nf * (size_t)(vmax + 1)) : NULL;
    if (tc) {
        float *ts = tc + (size_t)nf * (size_t)(vmax + 1);
        glmv_rope_vision_values(head_dim, theta, vmax + 1, tc, ts);
        for (int64_t i = 0; i < n; i++) {
            memcpy(cos_out + i * dim, tc + (size_t)hp[i] * nf, sizeof(float) * (size_t)nf);
            memcpy(sin_out + i * dim, ts + (size_t)hp[i] * nf, sizeof(float) * (size_t)nf);
            memcpy(cos_out + i * dim + nf, tc + (size_t)wp[i] * nf, sizeof(float) * (size_t)nf);
            memcpy(sin_out + i * dim + nf, ts + (size_t)wp[i] * nf, sizeof(float) * (size_t)nf);
        }
        free(tc);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < nf; j++) {
            float ah = (float)hp[i] * inv[j], aw = (float)wp[i] * inv[j];
            cos_out[i * dim + j] = (float)cos((double)ah);
            sin_out[i * dim + j] = (float)sin((double)ah);
            cos_out[i * dim + nf + j] = (float)cos((double)aw);
            sin_out[i * dim + nf + j] = (float)sin((double)aw);
        }
}
