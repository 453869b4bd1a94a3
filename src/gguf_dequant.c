/* gguf_dequant.c -- rows of llama.cpp's block formats back to floats, for the
 * GGUF types glmv does not multiply in place: Q4_1, Q5_0, Q5_1 (32 values a
 * block) and the K-quants Q4_K, Q5_K, Q6_K (256 values a block of 8 or 16
 * sub-blocks with their own scales). gguf_model.c re-quantizes such a decoder
 * matrix to Q8_0 at load and dequantizes other such tensors to F32.
 * Layouts as ggml-common.h declares them (little-endian, packed):
 *   Q4_1 {f16 d, m; u8 qs[16]}            x = d q + m, q: low nibbles then high
 *   Q5_0 {f16 d; u8 qh[4]; u8 qs[16]}     x = d (q - 16), bit 4 of q from qh
 *   Q5_1 {f16 d, m; u8 qh[4]; u8 qs[16]}  x = d q + m
 *   Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]}            8 x 32, 6-bit scale/min
 *   Q5_K {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]} the same, a 5th bit
 *   Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}      16 x 16, x = d s (q - 32)
 * Q2_K and Q3_K (the 2- and 3-bit recipes) are not read. */
#include <string.h>

#include "base.h"
#include "gguf.h"
#include "quant.h"

static float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return glmv_f16_to_f32(h);
}

/* Scale and min j (0..7) of a Q4_K/Q5_K block: 6 bits each, the first four in
 * the low bits of bytes 0-3 (scales) and 4-7 (mins), the last four split between
 * the nibbles of bytes 8-11 and the top two bits of bytes 0-7. */
static void k_scale_min(int j, const uint8_t *s, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void row_q4_1(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 20, y += 32) {
        float d = f16(b), m = f16(b + 2);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (b[4 + j] & 0xF) + m;
            y[j + 16] = d * (b[4 + j] >> 4) + m;
        }
    }
}

static void row_q5(const uint8_t *b, float *y, int64_t nb, int with_min) {
    size_t bs = with_min ? 24 : 22;
    for (int64_t i = 0; i < nb; i++, b += bs, y += 32) {
        float d = f16(b), m = with_min ? f16(b + 2) : 0;
        const uint8_t *qh = b + (with_min ? 4 : 2), *qs = qh + 4;
        uint32_t h;
        memcpy(&h, qh, 4);
        int off = with_min ? 0 : 16;
        for (int j = 0; j < 16; j++) {
            int q0 = (qs[j] & 0xF) | (int)(((h >> j) & 1) << 4);
            int q1 = (qs[j] >> 4) | (int)(((h >> (j + 16)) & 1) << 4);
            y[j] = d * (float)(q0 - off) + m;
            y[j + 16] = d * (float)(q1 - off) + m;
        }
    }
}

static void row_q4_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 144) {
        float d = f16(b), dmin = f16(b + 2);
        const uint8_t *sc = b + 4, *q = b + 16;
        for (int j = 0; j < 8; j += 2, q += 32) { /* 64 values: low nibbles, then high */
            int s0, m0, s1, m1;
            k_scale_min(j, sc, &s0, &m0);
            k_scale_min(j + 1, sc, &s1, &m1);
            for (int l = 0; l < 32; l++) *y++ = d * (float)s0 * (float)(q[l] & 0xF) - dmin * (float)m0;
            for (int l = 0; l < 32; l++) *y++ = d * (float)s1 * (float)(q[l] >> 4) - dmin * (float)m1;
        }
    }
}

static void row_q5_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 176) {
        float d = f16(b), dmin = f16(b + 2);
        const uint8_t *sc = b + 4, *qh = b + 16, *q = b + 48;
        for (int j = 0; j < 8; j += 2, q += 32) { /* the 5th bits: bit j and j+1 of qh[l] */
            int s0, m0, s1, m1;
            k_scale_min(j, sc, &s0, &m0);
            k_scale_min(j + 1, sc, &s1, &m1);
            for (int l = 0; l < 32; l++)
                *y++ = d * (float)s0 * (float)((q[l] & 0xF) + ((qh[l] >> j) & 1) * 16) - dmin * (float)m0;
            for (int l = 0; l < 32; l++)
                *y++ =
                    d * (float)s1 * (float)((q[l] >> 4) + ((qh[l] >> (j + 1)) & 1) * 16) - dmin * (float)m1;
        }
    }
}

static void row_q6_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        float d = f16(b + 208);
        for (int n = 0; n < 2; n++, ql += 64, qh += 32, sc += 8, y += 128) {
            /* 128 values: four runs of 32, low 4 bits from ql (nibbles of two
             * 32-byte halves), high 2 bits from the four bit pairs of qh */
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

int glmv_ggml_dequantize_row(uint32_t type, const void *src, float *y, int64_t k) {
    const uint8_t *b = src;
    int be, bb;
    if (glmv_ggml_block(type, &be, &bb) || k % be) return -1;
    int64_t nb = k / be;
    switch (type) {
    case GGML_F32: memcpy(y, src, sizeof(float) * (size_t)k); return 0;
    case GGML_F16:
        for (int64_t i = 0; i < k; i++) y[i] = f16(b + 2 * i);
        return 0;
    case GGML_BF16:
        for (int64_t i = 0; i < k; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            y[i] = glmv_bf16_to_f32(h);
        }
        return 0;
    case GGML_Q8_0: glmv_dequantize_row_q8_0(src, y, k); return 0;
    case GGML_Q4_0: glmv_dequantize_row_q4_0(src, y, k); return 0;
    case GGML_Q4_1: row_q4_1(b, y, nb); return 0;
    case GGML_Q5_0: row_q5(b, y, nb, 0); return 0;
    case GGML_Q5_1: row_q5(b, y, nb, 1); return 0;
    case GGML_Q4_K: row_q4_k(b, y, nb); return 0;
    case GGML_Q5_K: row_q5_k(b, y, nb); return 0;
    case GGML_Q6_K: row_q6_k(b, y, nb); return 0;
    }
    return -1;
}
