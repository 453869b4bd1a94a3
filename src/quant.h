/* quant.h -- weight-only quantization in llama.cpp's block formats, Q8_0 and Q4_0.
 *
 * A row of k weights (k a multiple of 32) is k/32 blocks; each block holds an f16 scale d and
 * 32 quantized values. Q8_0: q = round(x / d) in [-127, 127] with d = max|x| / 127; x ≈ d·q.
 * Q4_0: q in [0, 15] with d = (the x of largest magnitude) / -8; x ≈ d·(q - 8); byte j holds
 * element j in its low nibble and element j + 16 in its high one. The quantizers below are the
 * reference: the blocks are byte for byte those llama.cpp's reference quantizers make from the
 * same float32 values (tests/test_quant.c checks it against blocks made by llama.cpp's gguf-py,
 * and against the tiny checkpoint's matrices as llama-quantize wrote them).
 */
#ifndef GLMV_QUANT_H
#define GLMV_QUANT_H

#include <stdint.h>

#include "ops.h"

#define GLMV_QK 32

typedef struct {
    uint16_t d;                 /* f16 scale */
    int8_t qs[GLMV_QK];
} glmv_block_q8_0;              /* 34 bytes */

typedef struct {
    uint16_t d;                 /* f16 scale */
    uint8_t qs[GLMV_QK / 2];    /* element j: low nibble of qs[j]; element j+16: high nibble */
} glmv_block_q4_0;              /* 18 bytes */

_Static_assert(sizeof(glmv_block_q8_0) == 34, "Q8_0 block");
_Static_assert(sizeof(glmv_block_q4_0) == 18, "Q4_0 block");

/* k floats (a multiple of 32) -> k/32 blocks at y, and back. */
void glmv_quantize_row_q8_0(const float *x, glmv_block_q8_0 *y, int64_t k);
void glmv_quantize_row_q4_0(const float *x, glmv_block_q4_0 *y, int64_t k);
void glmv_dequantize_row_q8_0(const glmv_block_q8_0 *x, float *y, int64_t k);
void glmv_dequantize_row_q4_0(const glmv_block_q4_0 *x, float *y, int64_t k);
/* Elements [j0, j0 + n) of a row of dtype t (a block format) into y; j0 and n need not be
 * whole blocks. */
void glmv_dequantize_range(glmv_dtype t, const void *row, int64_t j0, int64_t n, float *y);

/* Activations for the Q8_0/Q4_0 decode products (as llama.cpp quantizes them): k floats (a
 * multiple of 32) -> k int8 at q and one float scale per 32-element block at d, each block
 * scaled by its largest magnitude / 127 and rounded to nearest (NaN or inf in x: refused
 * upstream, the model never feeds them). */
void glmv_quantize_x_q8(const float *x, int8_t *q, float *d, int64_t k);
/* For the VNNI Q4_0 product: c[j] = -8 x (q[4j] + q[4j+1] + q[4j+2] + q[4j+3]), j < k/4, so
 * that a sum of unsigned nibbles times q started from c is Σ (nibble - 8)·q. */
void glmv_q4_corrections(const int8_t *q, int32_t *c, int64_t k);
/* The scalar reference of that product: Σ_b d_w[b] · d[b] · Σ_j w_q[b][j] · q[b][j] for one
 * row of Q8_0 or Q4_0 weights (integer sums exact, blocks added in order in double). */
double glmv_dot_q8x_ref(const void *row, glmv_dtype t, const int8_t *q, const float *d, int64_t k);

/* Quantize a 2-D host tensor (F32, F16 or BF16, columns a multiple of 32) to `to`, rows in
 * parallel on up to n_threads threads: t then points at a new buffer (*owned, malloc'd, the
 * caller frees it after the tensor's last use) and its old bytes are no longer read. */
int glmv_tensor_quantize(glmv_tensor *t, glmv_dtype to, int n_threads, void **owned, char *err);

#endif
