/* test_base.c -- half-precision conversion and the CPU reference ops on
 * values worked out by hand. */
#include "base.h"
#include "cpu/ref.h"
#include "test.h"

TEST(bf16_roundtrip) {
    CHECK_EQ_INT(glmv_f32_to_bf16(1.0f), 0x3f80);
    CHECK(glmv_bf16_to_f32(0x3f80) == 1.0f);
    /* 1 + 2^-8 is exactly halfway between two bf16 values: ties to even (down) */
    CHECK_EQ_INT(glmv_f32_to_bf16(1.00390625f), 0x3f80);
    CHECK_EQ_INT(glmv_f32_to_bf16(1.01171875f), 0x3f82); /* 1+3*2^-8: halfway, rounds up to even */
    CHECK_EQ_INT(glmv_f32_to_bf16(-2.0f), 0xc000);
}

TEST(f16_roundtrip) {
    CHECK_EQ_INT(glmv_f32_to_f16(1.0f), 0x3c00);
    CHECK(glmv_f16_to_f32(0x3c00) == 1.0f);
    CHECK(glmv_f16_to_f32(0xc000) == -2.0f);
    CHECK(glmv_f16_to_f32(0x0001) == 5.9604644775390625e-08f);
    CHECK_EQ_INT(glmv_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(glmv_f32_to_f16(1e6f), 0x7c00);
    for (int h = 0; h < 0x7c00; h += 7) CHECK_EQ_INT(glmv_f32_to_f16(glmv_f16_to_f32((uint16_t)h)), h);
}

TEST(ref_matmul_bias) {
    float w[6] = {1, 2, 3, 4, 5, 6}, b[2] = {10, 20};
    glmv_tensor W = {.dtype = GLMV_F32, .ndim = 2, .shape = {2, 3}, .data = w, .host = w};
    glmv_tensor Bt = {.dtype = GLMV_F32, .ndim = 1, .shape = {2}, .data = b, .host = b};
    float x[3] = {1, 0, -1}, y[2];
    glmv_ref_matmul(y, x, &W, &Bt, 1);
    CHECK(y[0] == 10 - 2 && y[1] == 20 - 2);
}

TEST(ref_rope_interleaved) {
    float x[4] = {1, 0, 0, 1}, c[1] = {0}, s[1] = {1};
    glmv_ref_rope_interleaved(x, 4, c, s, 1, 1, 4, 2); /* rotate (1,0) by 90 degrees; dims 2,3 pass */
    CHECK_NEAR(x[0], 0, 1e-7);
    CHECK_NEAR(x[1], 1, 1e-7);
    CHECK(x[2] == 0 && x[3] == 1);
}

TEST(ref_attn_causal_first_row) {
    /* one head, first query sees only the first key: output = v[0] */
    float q[4] = {1, 2, 3, 4}, k[4] = {1, 1, 5, 5}, v[4] = {7, 8, 9, 10}, o[4];
    glmv_ref_attn_causal(o, q, 2, k, v, 2, 0, 1, 1, 2, 0.5f);
    CHECK(o[0] == 7 && o[1] == 8);
    double s0 = (3 + 4) * 0.5, s1 = (15 + 20) * 0.5;
    double p1 = 1 / (1 + exp(s0 - s1));
    CHECK_NEAR(o[2], 7 * (1 - p1) + 9 * p1, 1e-5);
}

/* the reference vectors of the SipHash paper (key 00..0f, message 00..len-1) */
TEST(siphash_vectors) {
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++) key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++) msg[i] = (uint8_t)i;
    CHECK(glmv_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ull);
    CHECK(glmv_siphash(key, msg, 1) == 0x74f839c593dc67fdull);
    CHECK(glmv_siphash(key, msg, 15) == 0xa129ca6149be45e5ull);
    /* the process key: drawn once, not all zero */
    const uint8_t *k1 = glmv_hash_key(), *k2 = glmv_hash_key();
    CHECK(k1 == k2);
    int nz = 0;
    for (int i = 0; i < 16; i++) nz |= k1[i];
    CHECK(nz != 0);
}

/* the chunked hash: glmv_siphash up to a chunk; beyond, the hash of the chunks' hashes, the same
 * for any thread count, and any byte of any chunk changes it */
TEST(siphash_chunked) {
    uint8_t key[16];
    for (int i = 0; i < 16; i++) key[i] = (uint8_t)(3 * i + 1);
    size_t n = 3 * GLMV_HASH_CHUNK + 12345; /* 4 chunks, the last short */
    uint8_t *d = malloc(n);
    CHECK(d != NULL);
    if (!d) return;
    for (size_t i = 0; i < n; i++) d[i] = (uint8_t)(i * 2654435761u >> 13);
    CHECK(glmv_siphash_chunked(key, d, 1000, 4) == glmv_siphash(key, d, 1000));
    CHECK(glmv_siphash_chunked(key, d, GLMV_HASH_CHUNK, 4) == glmv_siphash(key, d, GLMV_HASH_CHUNK));
    uint8_t hs[32];
    for (int c = 0; c < 4; c++) {
        size_t off = (size_t)c * GLMV_HASH_CHUNK, len = c < 3 ? GLMV_HASH_CHUNK : 12345;
        uint64_t h = glmv_siphash(key, d + off, len);
        for (int b = 0; b < 8; b++) hs[8 * c + b] = (uint8_t)(h >> (8 * b));
    }
    uint64_t want = glmv_siphash(key, hs, sizeof hs);
    for (int t = 1; t <= 9; t++) CHECK_MSG(glmv_siphash_chunked(key, d, n, t) == want, "threads %d", t);
    CHECK(want != glmv_siphash(key, d, n));
    size_t at[3] = {0, GLMV_HASH_CHUNK + 7, n - 1};
    for (int i = 0; i < 3; i++) {
        d[at[i]] ^= 1;
        CHECK_MSG(glmv_siphash_chunked(key, d, n, 3) != want, "byte %zu", at[i]);
        d[at[i]] ^= 1;
    }
    CHECK(glmv_siphash_chunked(key, d, n - 1, 3) != want);
    free(d);
}

int main(void) {
    RUN(bf16_roundtrip);
    RUN(f16_roundtrip);
    RUN(ref_matmul_bias);
    RUN(ref_rope_interleaved);
    RUN(ref_attn_causal_first_row);
    RUN(siphash_vectors);
    RUN(siphash_chunked);
    return test_summary("base");
}
