/* quant.h -- weight-only quantization in llama.cpp's block formats: Q8_0, Q4_0, Q5_0, and the
 * K-quants Q4_K and Q6_K (the formats of llama.cpp's Q4_K_M recipe).
 *
 * Q8_0, Q4_0, Q5_0: a row of k weights (k a multiple of 32) is k/32 blocks; each block holds an
 * f16 scale d and 32 quantized values. Q8_0: q = round(x / d) in [-127, 127] with d = max|x| /
 * 127; x ≈ d·q. Q4_0: q in [0, 15] with d = (the x of largest magnitude) / -8; x ≈ d·(q - 8);
 * byte j holds element j in its low nibble and element j + 16 in its high one. Q5_0: the same
 * with a fifth bit (element j's in bit j of qh), q in [0, 31], d = (the x of largest
 * magnitude) / -16, x ≈ d·(q - 16).
 *
 * K-quants: a row (k a multiple of 256) is k/256 super-blocks. Q4_K: eight sub-blocks of 32,
 * each with a 6-bit scale s and a 6-bit min m (packed in 12 bytes), x ≈ d·s·q - dmin·m with q
 * in [0, 15] (d, dmin f16); qs[32 i + l] holds element 64 i + l in its low nibble and 64 i + 32
 * + l in its high one. Q6_K: sixteen sub-blocks of 16 with an int8 scale each, x ≈ d·s·(q - 32)
 * with q in [0, 63] (low 4 bits in ql, high 2 in qh; layout in glmv_q6_k_value).
 *
 * The quantizers below are the reference: the blocks are byte for byte those llama.cpp's
 * reference quantizers make from the same float32 values (tests/test_quant.c checks it against
 * blocks made by llama.cpp's gguf-py, and against the tiny checkpoint's matrices as
 * llama-quantize wrote them in Q8_0, Q4_0 and Q4_K_M).
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

typedef struct {
    uint16_t d;                 /* f16 scale */
    uint8_t qh[4];              /* bit j: the fifth bit of element j */
    uint8_t qs[GLMV_QK / 2];    /* low 4 bits, as Q4_0's */
} glmv_block_q5_0;              /* 22 bytes */

#define GLMV_QK_K 256

typedef struct {
    uint16_t d, dmin;           /* f16 super-block scales of the scales and of the mins */
    uint8_t scales[12];         /* 8 x (6-bit scale, 6-bit min): glmv_q4_k_scale_min */
    uint8_t qs[GLMV_QK_K / 2];
} glmv_block_q4_k;              /* 144 bytes */

typedef struct {
    uint8_t ql[GLMV_QK_K / 2];  /* low 4 bits */
    uint8_t qh[GLMV_QK_K / 4];  /* high 2 bits */
    int8_t scales[GLMV_QK_K / 16];
    uint16_t d;                 /* f16 */
} glmv_block_q6_k;              /* 210 bytes */

_Static_assert(sizeof(glmv_block_q8_0) == 34, "Q8_0 block");
_Static_assert(sizeof(glmv_block_q4_0) == 18, "Q4_0 block");
_Static_assert(sizeof(glmv_block_q5_0) == 22, "Q5_0 block");
_Static_assert(sizeof(glmv_block_q4_k) == 144, "Q4_K block");
_Static_assert(sizeof(glmv_block_q6_k) == 210, "Q6_K block");

/* k floats (a multiple of 32) -> k/32 blocks at y, and back. */
void glmv_quantize_row_q8_0(const float *x, glmv_block_q8_0 *y, int64_t k);
void glmv_quantize_row_q4_0(const float *x, glmv_block_q4_0 *y, int64_t k);
void glmv_dequantize_row_q8_0(const glmv_block_q8_0 *x, float *y, int64_t k);
void glmv_dequantize_row_q4_0(const glmv_block_q4_0 *x, float *y, int64_t k);
/* Any block format t: k floats (a multiple of glmv_dtype_block(t)) -> blocks at y, and back. */
void glmv_quantize_row(glmv_dtype t, const float *x, void *y, int64_t k);
void glmv_dequantize_row(glmv_dtype t, const void *x, float *y, int64_t k);
/* Elements [j0, j0 + n) of a row of dtype t (a block format) into y; j0 and n need not be
 * whole blocks. */
void glmv_dequantize_range(glmv_dtype t, const void *row, int64_t j0, int64_t n, float *y);
/* Scale and min of Q4_K sub-block j (0..7) from the 12 packed bytes. */
static inline void glmv_q4_k_scale_min(const uint8_t *q, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 15) | (q[j - 4] >> 6) << 4;
        *m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    }
}
/* Q6_K element e (0..255) of a super-block, q in [0, 63] (subtract 32 for its value). */
static inline int glmv_q6_k_value(const glmv_block_q6_k *b, int e) {
    int n = e / 128, t = (e % 128) / 32, l = e % 32;
    int lo = b->ql[64 * n + 32 * (t & 1) + l] >> 4 * (t >> 1) & 15;
    int hi = b->qh[32 * n + l] >> 2 * t & 3;
    return lo | hi << 4;
}

/* Activations for the Q8_0/Q4_0 decode products (as llama.cpp quantizes them): k floats (a
 * multiple of 32) -> k int8 at q and one float scale per 32-element block at d, each block
 * scaled by its largest magnitude / 127 and rounded to nearest (NaN or inf in x: refused
 * upstream, the model never feeds them). */
void glmv_quantize_x_q8(const float *x, int8_t *q, float *d, int64_t k);
/* For the VNNI products of formats stored unsigned with an offset o (Q4_0: 8, Q5_0: 16, Q6_K: 32):
 * c[j] = -o x (q[4j] + q[4j+1] + q[4j+2] + q[4j+3]), j < k/4, so that a sum of the unsigned
 * values times q started from c is Σ (value - o)·q. */
void glmv_x_corrections(const int8_t *q, int32_t *c, int64_t k, int o);
/* For the Q4_K product (its mins): s[b] = Σ of the 32 q of block b, b < k/32. */
void glmv_q8_block_sums(const int8_t *q, int32_t *s, int64_t k);
/* The scalar reference of that product for one row of weights in any block format: per
 * 32-element block b, the integer sums of the weights' quantized values times q (exact), times
 * the block's scales and d[b], added in order in double. Q8_0/Q4_0/Q5_0: d_w·d[b]·Σ (w - o)·q
 * (o the format's offset); Q4_K: d[b]·(d·s·Σ w·q - dmin·m·Σ q); Q6_K: d[b]·d·(s0·Σ₀ + s1·Σ₁)
 * over the block's two sub-blocks of 16. */
double glmv_dot_q8x_ref(const void *row, glmv_dtype t, const int8_t *q, const float *d, int64_t k);

/* 32-element block b of a row of block format t as int8 values v with w ≈ s·v - o: s[0] for
 * elements 0..15, s[1] for 16..31 (equal but for Q6_K, whose sub-blocks are 16); o is Q4_K's
 * dmin·m, else 0. Q8_0: v = q; Q4_0, Q5_0, Q6_K: q minus the offset; Q4_K: q in [0, 15]. */
void glmv_block_s8(glmv_dtype t, const void *row, int64_t b, int8_t v[32], float s[2], float *o);

/* Quantize a 2-D host tensor (F32, F16 or BF16, columns a multiple of the block) to `to`, rows in
 * parallel on up to n_threads threads: t then points at a new buffer (*owned, malloc'd, the
 * caller frees it after the tensor's last use) and its old bytes are no longer read. */
int glmv_tensor_quantize(glmv_tensor *t, glmv_dtype to, int n_threads, void **owned, char *err);

#endif
