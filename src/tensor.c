/* tensor.c -- dtype sizes and names, element access for references and tests. */
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "ops.h"
#include "quant.h"

size_t glmv_dtype_size(glmv_dtype t) {
    GLMV_ASSERT(!glmv_dtype_is_quant(t));
    return t == GLMV_F32 ? 4 : 2;
}

size_t glmv_dtype_row_bytes(glmv_dtype t, int64_t k) {
    if (t == GLMV_Q8_0) return (size_t)(k / GLMV_QK) * sizeof(glmv_block_q8_0);
    if (t == GLMV_Q4_0) return (size_t)(k / GLMV_QK) * sizeof(glmv_block_q4_0);
    if (t == GLMV_Q5_0) return (size_t)(k / GLMV_QK) * sizeof(glmv_block_q5_0);
    if (t == GLMV_Q4_K) return (size_t)(k / GLMV_QK_K) * sizeof(glmv_block_q4_k);
    if (t == GLMV_Q6_K) return (size_t)(k / GLMV_QK_K) * sizeof(glmv_block_q6_k);
    return (size_t)k * glmv_dtype_size(t);
}

const char *glmv_dtype_name(glmv_dtype t) {
    switch (t) {
    case GLMV_F32: return "F32";
    case GLMV_F16: return "F16";
    case GLMV_BF16: return "BF16";
    case GLMV_Q8_0: return "Q8_0";
    case GLMV_Q4_0: return "Q4_0";
    case GLMV_Q5_0: return "Q5_0";
    case GLMV_Q4_K: return "Q4_K";
    case GLMV_Q6_K: return "Q6_K";
    }
    return "?";
}

int64_t glmv_tensor_numel(const glmv_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

float glmv_tensor_get(const glmv_tensor *t, int64_t i) {
    const void *p = t->host ? t->host : t->data;
    switch (t->dtype) {
    case GLMV_F32: return ((const float *)p)[i];
    case GLMV_F16: return glmv_f16_to_f32(((const uint16_t *)p)[i]);
    case GLMV_BF16: return glmv_bf16_to_f32(((const uint16_t *)p)[i]);
    default: {
        float v;
        glmv_tensor_get_range(t, i, 1, &v);
        return v;
    }
    }
    return 0;
}

void glmv_tensor_get_range(const glmv_tensor *t, int64_t i0, int64_t n, float *dst) {
    const void *p = t->host ? t->host : t->data;
    const uint16_t *h = (const uint16_t *)p + i0;
    switch (t->dtype) {
    case GLMV_F32: memcpy(dst, (const float *)p + i0, sizeof(float) * (size_t)n); break;
    case GLMV_F16: for (int64_t i = 0; i < n; i++) dst[i] = glmv_f16_to_f32(h[i]); break;
    case GLMV_BF16: for (int64_t i = 0; i < n; i++) dst[i] = glmv_bf16_to_f32(h[i]); break;
    default: { /* a block format: row by row of the 2-D view */
        int64_t k = glmv_tensor_cols(t);
        size_t rb = glmv_dtype_row_bytes(t->dtype, k);
        for (int64_t j = i0; j < i0 + n;) {
            int64_t r = j / k, c = j % k, take = GLMV_MIN(k - c, i0 + n - j);
            glmv_dequantize_range(t->dtype, (const char *)p + (size_t)r * rb, c, take, dst + (j - i0));
            j += take;
        }
        break;
    }
    }
}

int glmv_env_kv_bf16(int def, int *kv_bf16, char *err) {
    const char *e = getenv("GLMV_KV_BF16");
    if (!e || !*e) *kv_bf16 = def;
    else if (!strcmp(e, "0") || !strcmp(e, "1")) *kv_bf16 = e[0] == '1';
    else return glmv_errf(err, "GLMV_KV_BF16=%s: expected 0 (float32 KV caches) or 1 (bf16)", e);
    return 0;
}
