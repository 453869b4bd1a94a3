/* quant.c -- the reference quantizers and dequantizers of the block formats (quant.h), and
 * quantization of a checkpoint tensor at load time. The kernels that multiply by quantized
 * weights are the CPU backend's (src/cpu/kernels_body.h) and the CUDA backend's
 * (src/cuda/quant.cu); these functions define what they must compute.
 *
 * The quantizers follow llama.cpp's reference ones operation for operation, in float32 with
 * no fused multiply-add (this file is compiled as ISO C, where GCC does not contract), since
 * the point is the same bytes: a GGUF file made by llama-quantize and a folder made by
 * `glmv quantize` hold the same blocks for the same weights.
 */
#include "quant.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "gguf.h"

/* One block of 32: q = round(v / d) with d = amax / 127 (0 for a zero block); returns d. */
static float q8_block(const float *v, int8_t *q) {
    float amax = 0;
    for (int j = 0; j < GLMV_QK; j++) amax = fmaxf(amax, fabsf(v[j]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < GLMV_QK; j++) q[j] = (int8_t)roundf(v[j] * id);
    return d;
}

void glmv_quantize_row_q8_0(const float *x, glmv_block_q8_0 *y, int64_t k) {
    for (int64_t b = 0; b < k / GLMV_QK; b++) y[b].d = glmv_f32_to_f16(q8_block(x + b * GLMV_QK, y[b].qs));
}

void glmv_quantize_x_q8(const float *x, int8_t *q, float *d, int64_t k) {
    for (int64_t b = 0; b < k / GLMV_QK; b++) d[b] = q8_block(x + b * GLMV_QK, q + b * GLMV_QK);
}

void glmv_x_corrections(const int8_t *q, int32_t *c, int64_t k, int o) {
    for (int64_t j = 0; j < k / 4; j++) c[j] = -o * (q[4 * j] + q[4 * j + 1] + q[4 * j + 2] + q[4 * j + 3]);
}

void glmv_q8_block_sums(const int8_t *q, int32_t *s, int64_t k) {
    for (int64_t b = 0; b < k / GLMV_QK; b++) {
        int32_t t = 0;
        for (int j = 0; j < GLMV_QK; j++) t += q[b * GLMV_QK + j];
        s[b] = t;
    }
}

/* The quantized value of element j (0..31) of 32-element block b of a row, offset removed
 * (Q8_0, Q4_0, Q5_0, Q6_K: the signed value; Q4_K: q in [0, 15], its min apart). */
static int block_value(const void *row, glmv_dtype t, int64_t b, int j) {
    switch (t) {
    case GLMV_Q8_0: return ((const glmv_block_q8_0 *)row)[b].qs[j];
    case GLMV_Q4_0: {
        const glmv_block_q4_0 *w = (const glmv_block_q4_0 *)row + b;
        return (j < 16 ? w->qs[j] & 15 : w->qs[j - 16] >> 4) - 8;
    }
    case GLMV_Q5_0: {
        const glmv_block_q5_0 *w = (const glmv_block_q5_0 *)row + b;
        int lo = j < 16 ? w->qs[j] & 15 : w->qs[j - 16] >> 4;
        return (lo | (w->qh[j / 8] >> (j % 8) & 1) << 4) - 16;
    }
    case GLMV_Q4_K: {
        const glmv_block_q4_k *w = (const glmv_block_q4_k *)row + b / 8;
        int sub = (int)(b % 8);
        return w->qs[32 * (sub / 2) + j] >> 4 * (sub % 2) & 15;
    }
    case GLMV_Q6_K: return glmv_q6_k_value((const glmv_block_q6_k *)row + b / 8, (int)(b % 8) * 32 + j) - 32;
    default: return 0;
    }
}

void glmv_block_s8(glmv_dtype t, const void *row, int64_t b, int8_t v[32], float s[2], float *o) {
    *o = 0;
    switch (t) {
    case GLMV_Q8_0: {
        const glmv_block_q8_0 *w = (const glmv_block_q8_0 *)row + b;
        memcpy(v, w->qs, 32);
        s[0] = s[1] = glmv_f16_to_f32(w->d);
        return;
    }
    case GLMV_Q4_0: {
        const glmv_block_q4_0 *w = (const glmv_block_q4_0 *)row + b;
        for (int j = 0; j < 16; j++) {
            v[j] = (int8_t)((w->qs[j] & 15) - 8);
            v[j + 16] = (int8_t)((w->qs[j] >> 4) - 8);
        }
        s[0] = s[1] = glmv_f16_to_f32(w->d);
        return;
    }
    case GLMV_Q5_0: {
        const glmv_block_q5_0 *w = (const glmv_block_q5_0 *)row + b;
        uint32_t qh;
        memcpy(&qh, w->qh, 4);
        for (int j = 0; j < 16; j++) {
            v[j] = (int8_t)(((w->qs[j] & 15) | (qh >> j & 1) << 4) - 16);
            v[j + 16] = (int8_t)(((w->qs[j] >> 4) | (qh >> (j + 16) & 1) << 4) - 16);
        }
        s[0] = s[1] = glmv_f16_to_f32(w->d);
        return;
    }
    case GLMV_Q4_K: {
        const glmv_block_q4_k *w = (const glmv_block_q4_k *)row + b / 8;
        int sub = (int)(b % 8), sc, m;
        const uint8_t *qs = w->qs + 32 * (sub / 2);
        const int sh = 4 * (sub % 2);
        for (int j = 0; j < 32; j++) v[j] = (int8_t)(qs[j] >> sh & 15);
        glmv_q4_k_scale_min(w->scales, sub, &sc, &m);
        s[0] = s[1] = glmv_f16_to_f32(w->d) * (float)sc;
        *o = glmv_f16_to_f32(w->dmin) * (float)m;
        return;
    }
    case GLMV_Q6_K: {
        const glmv_block_q6_k *w = (const glmv_block_q6_k *)row + b / 8;
        int sb = (int)(b % 8), n = sb / 4, tt = sb % 4;
        const uint8_t *ql = w->ql + 64 * n + 32 * (tt & 1), *qh = w->qh + 32 * n;
        const int sl = 4 * (tt >> 1), shh = 2 * tt;
        for (int j = 0; j < 32; j++) v[j] = (int8_t)(((ql[j] >> sl & 15) | (qh[j] >> shh & 3) << 4) - 32);
        float d = glmv_f16_to_f32(w->d);
        s[0] = d * (float)w->scales[2 * sb];
        s[1] = d * (float)w->scales[2 * sb + 1];
        return;
    }
    default: memset(v, 0, 32); s[0] = s[1] = 0; return;
    }
}

double glmv_dot_q8x_ref(const void *row, glmv_dtype t, const int8_t *q, const float *d, int64_t k) {
    double acc = 0;
    for (int64_t b = 0; b < k / GLMV_QK; b++) {
        const int8_t *qb = q + b * GLMV_QK;
        int32_t s0 = 0, s1 = 0; /* the products' sums over elements 0..15 and 16..31 */
        for (int j = 0; j < GLMV_QK; j++) *(j < 16 ? &s0 : &s1) += block_value(row, t, b, j) * qb[j];
        double blk;
        if (t == GLMV_Q4_K) {
            const glmv_block_q4_k *w = (const glmv_block_q4_k *)row + b / 8;
            int sc, m, sq = 0;
            glmv_q4_k_scale_min(w->scales, (int)(b % 8), &sc, &m);
            for (int j = 0; j < GLMV_QK; j++) sq += qb[j];
            blk = (double)glmv_f16_to_f32(w->d) * sc * (s0 + s1) - (double)glmv_f16_to_f32(w->dmin) * m * sq;
        } else if (t == GLMV_Q6_K) {
            const glmv_block_q6_k *w = (const glmv_block_q6_k *)row + b / 8;
            const int8_t *sc = w->scales + 2 * (b % 8);
            blk = (double)glmv_f16_to_f32(w->d) * ((double)sc[0] * s0 + (double)sc[1] * s1);
        } else {
            uint16_t dh = t == GLMV_Q8_0   ? ((const glmv_block_q8_0 *)row)[b].d
                          : t == GLMV_Q4_0 ? ((const glmv_block_q4_0 *)row)[b].d
                                           : ((const glmv_block_q5_0 *)row)[b].d;
            blk = (double)glmv_f16_to_f32(dh) * (s0 + s1);
        }
        acc += blk * d[b];
    }
    return acc;
}

void glmv_quantize_row_q4_0(const float *x, glmv_block_q4_0 *y, int64_t k) {
    for (int64_t b = 0; b < k / GLMV_QK; b++) {
        const float *v = x + b * GLMV_QK;
        float amax = 0, max = 0; /* the value of largest magnitude, with its sign (the first) */
        for (int j = 0; j < GLMV_QK; j++)
            if (amax < fabsf(v[j])) amax = fabsf(v[j]), max = v[j];
        const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = glmv_f32_to_f16(d);
        for (int j = 0; j < GLMV_QK / 2; j++) {
            /* x·id rounded to float, + 8.5 rounded to float, then truncated: llama.cpp's C
             * reference (quantize_row_q4_0_ref, compiled as ISO C without contraction), what
             * llama-quantize writes. Separate statements, so no compiler fuses them. */
            const float p0 = v[j] * id, p1 = v[j + GLMV_QK / 2] * id;
            const float s0 = p0 + 8.5f, s1 = p1 + 8.5f;
            int q0 = (int)s0, q1 = (int)s1;
            y[b].qs[j] = (uint8_t)((q0 < 15 ? q0 : 15) | (q1 < 15 ? q1 : 15) << 4);
        }
    }
}

void glmv_dequantize_row_q8_0(const glmv_block_q8_0 *x, float *y, int64_t k) {
    for (int64_t b = 0; b < k / GLMV_QK; b++) {
        const float d = glmv_f16_to_f32(x[b].d);
        for (int j = 0; j < GLMV_QK; j++) y[b * GLMV_QK + j] = d * x[b].qs[j];
    }
}

void glmv_dequantize_row_q4_0(const glmv_block_q4_0 *x, float *y, int64_t k) {
    for (int64_t b = 0; b < k / GLMV_QK; b++) {
        const float d = glmv_f16_to_f32(x[b].d);
        for (int j = 0; j < GLMV_QK / 2; j++) {
            y[b * GLMV_QK + j] = d * ((x[b].qs[j] & 15) - 8);
            y[b * GLMV_QK + j + GLMV_QK / 2] = d * ((x[b].qs[j] >> 4) - 8);
        }
    }
}

/* ------------------------------------------------------------------ Q5_0 and the K-quants */

/* round to nearest, ties to even, for |v| < 2^22 (llama.cpp's nearest_int: the same integers) */
static inline int nearest_int(float v) {
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static void quantize_row_q5_0(const float *x, glmv_block_q5_0 *y, int64_t k) {
    for (int64_t b = 0; b < k / GLMV_QK; b++) {
        const float *v = x + b * GLMV_QK;
        float amax = 0, max = 0;
        for (int j = 0; j < GLMV_QK; j++)
            if (amax < fabsf(v[j])) amax = fabsf(v[j]), max = v[j];
        const float d = max / -16.0f, id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = glmv_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < GLMV_QK / 2; j++) {
            const float p0 = v[j] * id, p1 = v[j + GLMV_QK / 2] * id; /* as Q4_0: two roundings */
            const float s0 = p0 + 16.5f, s1 = p1 + 16.5f;
            int q0 = (int)s0, q1 = (int)s1;
            q0 = q0 < 31 ? q0 : 31;
            q1 = q1 < 31 ? q1 : 31;
            y[b].qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
            qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
        }
        memcpy(y[b].qh, &qh, 4);
    }
}

/* A scale and a min for n values with weights, levels 0..nmax: from the range, then nstep + 1
 * trial scales (nmax + rmin + rdelta·i over the range), each fitted by weighted least squares
 * (a positive min clamped to 0); the fit of least weighted squared error wins. Returns the
 * scale, *neg_min = -min, L the levels. */
static float scale_min_search(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        float diff = scale * L[i] + min - x[i];
        best += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                err += w[i] * (diff * diff);
            }
            if (err < best) {
                memcpy(L, Laux, (size_t)n);
                best = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *neg_min = -min;
    return scale;
}

static void quantize_row_q4_k(const float *x, glmv_block_q4_k *y, int64_t k) {
    uint8_t L[GLMV_QK_K], Laux[32];
    float w[32], mins[8], scales[8];
    for (int64_t i = 0; i < k / GLMV_QK_K; i++, x += GLMV_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            const float *v = x + 32 * j;
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += v[l] * v[l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(v[l]);
            scales[j] = scale_min_search(32, 15, v, w, L + 32 * j, &mins[j], Laux, -1.0f, 0.1f, 20);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
        float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
        memset(y[i].scales, 0, sizeof y[i].scales);
        for (int j = 0; j < 8; j++) {
            uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]), lm = (uint8_t)nearest_int(inv_min * mins[j]);
            ls = ls < 63 ? ls : 63;
            lm = lm < 63 ? lm : 63;
            if (j < 4) {
                y[i].scales[j] = ls;
                y[i].scales[j + 4] = lm;
            } else {
                y[i].scales[j + 4] = (uint8_t)((ls & 15) | (lm & 15) << 4);
                y[i].scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
                y[i].scales[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        y[i].d = glmv_f32_to_f16(max_scale / 63.0f);
        y[i].dmin = glmv_f32_to_f16(max_min / 63.0f);
        for (int j = 0; j < 8; j++) { /* the levels again, against the rounded scales */
            int sc, m;
            glmv_q4_k_scale_min(y[i].scales, j, &sc, &m);
            const float d = glmv_f16_to_f32(y[i].d) * sc;
            if (d == 0) continue;
            const float dm = glmv_f16_to_f32(y[i].dmin) * m;
            for (int l = 0; l < 32; l++) {
                int q = nearest_int((x[32 * j + l] + dm) / d);
                L[32 * j + l] = (uint8_t)(q < 0 ? 0 : q > 15 ? 15 : q);
            }
        }
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) y[i].qs[32 * j + l] = (uint8_t)(L[64 * j + l] | L[64 * j + 32 + l] << 4);
    }
}

/* A signed scale for n values, levels -nmax..nmax-1, weights x²: from the value of largest
 * magnitude, then 18 nearby scales, each fitted by weighted least squares; the best fit wins.
 * L holds level + nmax. */
static float scale_search_sym(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void quantize_row_q6_k(const float *x, glmv_block_q6_k *y, int64_t k) {
    int8_t L[GLMV_QK_K];
    float scales[16];
    for (int64_t i = 0; i < k / GLMV_QK_K; i++, x += GLMV_QK_K) {
        float max_scale = 0, max_abs = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = scale_search_sym(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs) max_abs = fabsf(scales[ib]), max_scale = scales[ib];
        }
        if (max_abs < 1e-15f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -128.0f / max_scale;
        y[i].d = glmv_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < 16; ib++) {
            int s = nearest_int(iscale * scales[ib]);
            y[i].scales[ib] = (int8_t)(s < 127 ? s : 127);
        }
        for (int j = 0; j < 16; j++) { /* the levels again, against the rounded scales */
            float d = glmv_f16_to_f32(y[i].d) * y[i].scales[j];
            if (d == 0) continue;
            for (int l = 0; l < 16; l++) {
                int q = nearest_int(x[16 * j + l] / d);
                L[16 * j + l] = (int8_t)((q < -32 ? -32 : q > 31 ? 31 : q) + 32);
            }
        }
        for (int n = 0; n < 2; n++)
            for (int l = 0; l < 32; l++) {
                const int8_t *q = L + 128 * n + l;
                y[i].ql[64 * n + l] = (uint8_t)((q[0] & 15) | (q[64] & 15) << 4);
                y[i].ql[64 * n + 32 + l] = (uint8_t)((q[32] & 15) | (q[96] & 15) << 4);
                y[i].qh[32 * n + l] = (uint8_t)(q[0] >> 4 | (q[32] >> 4) << 2 | (q[64] >> 4) << 4 | (q[96] >> 4) << 6);
            }
    }
}

void glmv_quantize_row(glmv_dtype t, const float *x, void *y, int64_t k) {
    switch (t) {
    case GLMV_Q8_0: glmv_quantize_row_q8_0(x, y, k); break;
    case GLMV_Q4_0: glmv_quantize_row_q4_0(x, y, k); break;
    case GLMV_Q5_0: quantize_row_q5_0(x, y, k); break;
    case GLMV_Q4_K: quantize_row_q4_k(x, y, k); break;
    case GLMV_Q6_K: quantize_row_q6_k(x, y, k); break;
    default: GLMV_ASSERT(0);
    }
}

void glmv_dequantize_row(glmv_dtype t, const void *x, float *y, int64_t k) {
    switch (t) {
    case GLMV_Q8_0: glmv_dequantize_row_q8_0(x, y, k); break;
    case GLMV_Q4_0: glmv_dequantize_row_q4_0(x, y, k); break;
    /* the same layouts as GGUF's (gguf_dequant.c) */
    case GLMV_Q5_0: glmv_ggml_dequantize_row(GGML_Q5_0, x, y, k); break;
    case GLMV_Q4_K: glmv_ggml_dequantize_row(GGML_Q4_K, x, y, k); break;
    case GLMV_Q6_K: glmv_ggml_dequantize_row(GGML_Q6_K, x, y, k); break;
    default: GLMV_ASSERT(0);
    }
}

void glmv_dequantize_range(glmv_dtype t, const void *row, int64_t j0, int64_t n, float *y) {
    float blk[GLMV_QK_K];
    const int be = glmv_dtype_block(t);
    const size_t bb = glmv_dtype_row_bytes(t, be);
    for (int64_t j = j0; j < j0 + n;) {
        int64_t b = j / be, off = j % be, take = GLMV_MIN(be - off, j0 + n - j);
        glmv_dequantize_row(t, (const char *)row + (size_t)b * bb, blk, be);
        memcpy(y + (j - j0), blk + off, sizeof(float) * (size_t)take);
        j += take;
    }
}

/* ------------------------------------------------------------------ a tensor */

typedef struct {
    const glmv_tensor *src;
    glmv_dtype to;
    uint8_t *dst;
    int64_t rows, cols;
    size_t row_bytes;
    int64_t next;
    pthread_mutex_t mu;
} quant_job;

static void *quant_worker(void *arg) {
    quant_job *q = arg;
    float *row = malloc(sizeof(float) * (size_t)q->cols);
    if (!row) return (void *)1;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        int64_t r0 = q->next;
        q->next += 64;
        pthread_mutex_unlock(&q->mu);
        if (r0 >= q->rows) break;
        for (int64_t r = r0; r < GLMV_MIN(q->rows, r0 + 64); r++) {
            glmv_tensor_get_range(q->src, r * q->cols, q->cols, row);
            glmv_quantize_row(q->to, row, q->dst + (size_t)r * q->row_bytes, q->cols);
        }
    }
    free(row);
    return NULL;
}

int glmv_tensor_quantize(glmv_tensor *t, glmv_dtype to, int n_threads, void **owned, char *err) {
    *owned = NULL;
    if (!glmv_dtype_is_quant(to) || glmv_dtype_is_quant(t->dtype))
        return glmv_errf(err, "%s: cannot quantize %s to %s", t->name, glmv_dtype_name(t->dtype),
                         glmv_dtype_name(to));
    int64_t rows = glmv_tensor_rows(t), cols = glmv_tensor_cols(t);
    if (t->ndim != 2 || cols % glmv_dtype_block(to))
        return glmv_errf(err, "%s: %lld columns are not whole blocks of %d (%s)", t->name, (long long)cols,
                         glmv_dtype_block(to), glmv_dtype_name(to));
    quant_job q = {.src = t, .to = to, .rows = rows, .cols = cols, .row_bytes = glmv_dtype_row_bytes(to, cols)};
    q.dst = malloc(glmv_mul_size((size_t)rows, q.row_bytes));
    if (!q.dst) return glmv_errc(err, GLMV_E_NOMEM, "out of memory quantizing %s", t->name);
    pthread_mutex_init(&q.mu, NULL);
    int nt = GLMV_MAX(1, GLMV_MIN(n_threads, 64)), started = 0, failed = 0;
    pthread_t th[64];
    for (int i = 1; i < nt; i++) started += pthread_create(&th[started], NULL, quant_worker, &q) == 0;
    failed |= quant_worker(&q) != NULL;
    for (int i = 0; i < started; i++) {
        void *r;
        pthread_join(th[i], &r);
        failed |= r != NULL;
    }
    pthread_mutex_destroy(&q.mu);
    if (failed) {
        free(q.dst);
        return glmv_errc(err, GLMV_E_NOMEM, "out of memory quantizing %s", t->name);
    }
    t->dtype = to;
    t->data = t->host = q.dst;
    *owned = q.dst;
    return 0;
}
