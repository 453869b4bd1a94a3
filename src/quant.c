/* quant.c -- the Q8_0 / Q4_0 reference quantizers and dequantizers, and quantization of a
 * checkpoint tensor at load time. The kernels that multiply by quantized weights are the CPU
 * backend's (src/cpu/kernels_body.h); these functions define what they must compute.
 */
#include "quant.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

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

void glmv_q4_corrections(const int8_t *q, int32_t *c, int64_t k) {
    for (int64_t j = 0; j < k / 4; j++) c[j] = -8 * (q[4 * j] + q[4 * j + 1] + q[4 * j + 2] + q[4 * j + 3]);
}

double glmv_dot_q8x_ref(const void *row, glmv_dtype t, const int8_t *q, const float *d, int64_t k) {
    double acc = 0;
    for (int64_t b = 0; b < k / GLMV_QK; b++) {
        int32_t s = 0;
        float dw;
        if (t == GLMV_Q8_0) {
            const glmv_block_q8_0 *w = (const glmv_block_q8_0 *)row + b;
            for (int j = 0; j < GLMV_QK; j++) s += w->qs[j] * q[b * GLMV_QK + j];
            dw = glmv_f16_to_f32(w->d);
        } else {
            const glmv_block_q4_0 *w = (const glmv_block_q4_0 *)row + b;
            for (int j = 0; j < GLMV_QK / 2; j++)
                s += ((w->qs[j] & 15) - 8) * q[b * GLMV_QK + j] +
                     ((w->qs[j] >> 4) - 8) * q[b * GLMV_QK + j + 16];
            dw = glmv_f16_to_f32(w->d);
        }
        acc += (double)dw * d[b] * s;
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

void glmv_dequantize_range(glmv_dtype t, const void *row, int64_t j0, int64_t n, float *y) {
    float blk[GLMV_QK];
    for (int64_t j = j0; j < j0 + n;) {
        int64_t b = j / GLMV_QK, off = j % GLMV_QK, take = GLMV_MIN(GLMV_QK - off, j0 + n - j);
        if (t == GLMV_Q8_0) glmv_dequantize_row_q8_0((const glmv_block_q8_0 *)row + b, blk, GLMV_QK);
        else glmv_dequantize_row_q4_0((const glmv_block_q4_0 *)row + b, blk, GLMV_QK);
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
            void *out = q->dst + (size_t)r * q->row_bytes;
            if (q->to == GLMV_Q8_0) glmv_quantize_row_q8_0(row, out, q->cols);
            else glmv_quantize_row_q4_0(row, out, q->cols);
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
    if (t->ndim != 2 || cols % GLMV_QK)
        return glmv_errf(err, "%s: %lld columns are not whole blocks of %d", t->name, (long long)cols, GLMV_QK);
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
