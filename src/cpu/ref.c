/* ref.c -- scalar reference implementations of the ops in ops.h.
 * Accumulation is in double where it costs nothing in clarity, so that the
 * reference is at least as accurate as any kernel tested against it. */
#include "cpu/ref.h"

#include <math.h>
#include <stdlib.h>

#include "base.h"

void glmv_ref_matmul(float *y, const float *x, const glmv_tensor *w, const glmv_tensor *bias,
                     int64_t m) {
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    for (int64_t i = 0; i < m; i++)
        for (int64_t o = 0; o < n; o++) {
            double acc = bias ? glmv_tensor_get(bias, o) : 0.0;
            for (int64_t j = 0; j < k; j++)
                acc += (double)x[i * k + j] * glmv_tensor_get(w, o * k + j);
            y[i * n + o] = (float)acc;
        }
}

void glmv_ref_embed(float *y, const glmv_tensor *table, const int32_t *ids, int64_t n) {
    int64_t d = glmv_tensor_cols(table);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) y[i * d + j] = glmv_tensor_get(table, ids[i] * d + j);
}

void glmv_ref_rmsnorm(float *y, const float *x, const glmv_tensor *w, int64_t n, int64_t d,
                      float eps) {
    for (int64_t i = 0; i < n; i++) {
        double ss = 0;
        for (int64_t j = 0; j < d; j++) ss += (double)x[i * d + j] * x[i * d + j];
        float r = (float)(1.0 / sqrt(ss / d + eps));
        for (int64_t j = 0; j < d; j++) y[i * d + j] = glmv_tensor_get(w, j) * (x[i * d + j] * r);
    }
}

void glmv_ref_layernorm(float *y, const float *x, const glmv_tensor *w, const glmv_tensor *b,
                        int64_t n, int64_t d, float eps) {
    for (int64_t i = 0; i < n; i++) {
        double mean = 0, var = 0;
        for (int64_t j = 0; j < d; j++) mean += x[i * d + j];
        mean /= d;
        for (int64_t j = 0; j < d; j++) var += (x[i * d + j] - mean) * (x[i * d + j] - mean);
        var /= d;
        double r = 1.0 / sqrt(var + eps);
        for (int64_t j = 0; j < d; j++)
            y[i * d + j] = (float)((x[i * d + j] - mean) * r * glmv_tensor_get(w, j) +
                                   (b ? glmv_tensor_get(b, j) : 0.0));
    }
}

void glmv_ref_rope_interleaved(float *x, int64_t ld, const float *cos, const float *sin,
                               int64_t n, int n_heads, int head_dim, int rot_dim) {
    int half = rot_dim / 2;
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + i * ld + (int64_t)h * head_dim;
            for (int j = 0; j < half; j++) {
                float c = cos[i * half + j], s = sin[i * half + j];
                float x0 = v[2 * j], x1 = v[2 * j + 1];
                v[2 * j] = x0 * c - x1 * s;
                v[2 * j + 1] = x1 * c + x0 * s;
            }
        }
}

void glmv_ref_rope_neox(float *x, int64_t ld, const float *cos, const float *sin, int64_t n,
                        int n_heads, int head_dim) {
    int half = head_dim / 2;
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + i * ld + (int64_t)h * head_dim;
            for (int d = 0; d < half; d++) {
                float c = cos[i * half + d], s = sin[i * half + d];
                float a = v[d], b = v[d + half];
                v[d] = a * c - b * s;
                v[d + half] = b * c + a * s;
            }
        }
}

/* softmax(q·kᵀ·scale)·v for one query row over keys [k0, k1) */
static void attend_row(float *out, const float *q, const float *k, int64_t ldk, const float *v,
                       int64_t ldv, int64_t k0, int64_t k1, int head_dim, float scale,
                       double *p) {
    double mx = -INFINITY;
    for (int64_t t = k0; t < k1; t++) {
        double s = 0;
        for (int d = 0; d < head_dim; d++) s += (double)q[d] * k[t * ldk + d];
        p[t - k0] = s * scale;
        if (p[t - k0] > mx) mx = p[t - k0];
    }
    double sum = 0;
    for (int64_t t = k0; t < k1; t++) sum += (p[t - k0] = exp(p[t - k0] - mx));
    for (int d = 0; d < head_dim; d++) {
        double acc = 0;
        for (int64_t t = k0; t < k1; t++) acc += p[t - k0] * v[t * ldv + d];
        out[d] = (float)(acc / sum);
    }
}

void glmv_ref_attn_causal(float *out, const float *q, int64_t ldq, const float *kc,
                          const float *vc, int64_t n, int64_t pos0, int n_heads,
                          int n_kv_heads, int head_dim, float scale) {
    int64_t kvd = (int64_t)n_kv_heads * head_dim, group = n_heads / n_kv_heads;
    double *p = malloc(sizeof(double) * (size_t)(pos0 + n));
    GLMV_ASSERT(p);
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < n_heads; h++) {
            int64_t g = h / group;
            attend_row(out + i * n_heads * head_dim + (int64_t)h * head_dim,
                       q + i * ldq + (int64_t)h * head_dim, kc + g * head_dim, kvd,
                       vc + g * head_dim, kvd, 0, pos0 + i + 1, head_dim, scale, p);
        }
    free(p);
}

void glmv_ref_attn_segments(float *out, const float *q, int64_t ldq, const float *k,
                            int64_t ldk, const float *v, int64_t ldv, const int64_t *cu,
                            int n_seg, int n_heads, int head_dim, float scale) {
    int64_t maxlen = 1;
    for (int s = 0; s < n_seg; s++) maxlen = GLMV_MAX(maxlen, cu[s + 1] - cu[s]);
    double *p = malloc(sizeof(double) * (size_t)maxlen);
    GLMV_ASSERT(p);
    for (int s = 0; s < n_seg; s++)
        for (int64_t i = cu[s]; i < cu[s + 1]; i++)
            for (int h = 0; h < n_heads; h++)
                attend_row(out + i * n_heads * head_dim + (int64_t)h * head_dim,
                           q + i * ldq + (int64_t)h * head_dim, k + (int64_t)h * head_dim, ldk,
                           v + (int64_t)h * head_dim, ldv, cu[s], cu[s + 1], head_dim, scale,
                           p);
    free(p);
}

void glmv_ref_swiglu(float *y, const float *gate, int64_t ld_g, const float *up, int64_t ld_u,
                     int64_t n, int64_t d) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) {
            float g = gate[i * ld_g + j];
            y[i * d + j] = g / (1.0f + expf(-g)) * up[i * ld_u + j];
        }
}

void glmv_ref_gelu_erf(float *y, const float *x, int64_t count) {
    for (int64_t i = 0; i < count; i++)
        y[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
}

void glmv_ref_add(float *y, const float *a, const float *b, int64_t count) {
    for (int64_t i = 0; i < count; i++) y[i] = a[i] + b[i];
}

void glmv_ref_permute_021(float *y, const float *x, int64_t A, int64_t B, int64_t C) {
    for (int64_t a = 0; a < A; a++)
        for (int64_t b = 0; b < B; b++)
            for (int64_t c = 0; c < C; c++) y[(a * C + c) * B + b] = x[(a * B + b) * C + c];
}

/* per row: the k best keys so far, best first, each new value checked against the worst */
void glmv_ref_top_k(float *vals, int32_t *ids, const float *x, int64_t rows, int64_t n, int k) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *vr = vals + r * k;
        int32_t *ir = ids + r * k;
        int have = 0;
        for (int64_t i = 0; i < n; i++) {
            uint64_t key = glmv_top_key(xr[i], i);
            if (have == k && key <= glmv_top_key(vr[k - 1], ir[k - 1])) continue;
            int j = have < k ? have++ : k - 1;
            while (j > 0 && key > glmv_top_key(vr[j - 1], ir[j - 1])) {
                vr[j] = vr[j - 1];
                ir[j] = ir[j - 1];
                j--;
            }
            vr[j] = xr[i];
            ir[j] = (int32_t)i;
        }
    }
}
