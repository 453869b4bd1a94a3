/* tensor.c -- dtype sizes and names, element access for references and tests. */
#include <string.h>

#include "base.h"
#include "ops.h"

size_t glmv_dtype_size(glmv_dtype t) { return t == GLMV_F32 ? 4 : 2; }

const char *glmv_dtype_name(glmv_dtype t) {
    switch (t) {
    case GLMV_F32: return "F32";
    case GLMV_F16: return "F16";
    case GLMV_BF16: return "BF16";
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
    }
}
