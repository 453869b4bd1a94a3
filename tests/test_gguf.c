/* test_gguf.c -- the GGUF reader (src/gguf.c) on files built here in memory:
 * every value type, alignment, and a refusal for each way a file can lie
 * (truncated at every byte, counts too large, misaligned or overlapping data,
 * unknown types...); the q/k un-permutation on a hand-made case; and the GLM-4.1V
 * loader (src/gguf_model.c) on llama.cpp's files of the tiny fixture against the
 * same checkpoint's safetensors: config, tokenizer ids, and every tensor (BF16:
 * bit for bit; F16 mmproj and Q8_0 within their rounding).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "config.h"
#include "gguf.h"
#include "gguf_model.h"
#include "quant.h"
#include "safetensors.h"
#include "test.h"
#include "tokenizer.h"

#define GG "tests/fixtures/gguf/"
#define TINY "tests/fixtures/tiny"

/* ------------------------------------------------------------ a GGUF writer */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_key(buf *b, const char *k, uint32_t type) {
    put_str(b, k);
    put_u32(b, type);
}
static void put_header(buf *b, uint64_t n_t, uint64_t n_kv) {
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, n_t);
    put_u64(b, n_kv);
}
static void put_tensor(buf *b, const char *name, int nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    put_str(b, name);
    put_u32(b, (uint32_t)nd);
    for (int i = 0; i < nd; i++) put_u64(b, ne[i]);
    put_u32(b, type);
    put_u64(b, off);
}
static void pad_to(buf *b, size_t align) {
    static const uint8_t z[64];
    while (b->n % align) put(b, z, 1);
}

/* A file with one key of every type and three tensors:
 * a F32 [4], b BF16 [2, 32] (ne 32, 2), q Q8_0 [1, 64] (ne 64, 1). */
static buf sample(void) {
    buf b = {0};
    put_header(&b, 3, 16);
    uint8_t u8 = 200;
    int8_t i8 = -5;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint32_t u32 = 4000000000u;
    int32_t i32 = -2000000000;
    float f32 = 1.5f;
    uint64_t u64 = 1ull << 40;
    int64_t i64 = -(1ll << 40);
    double f64 = 0.25;
    put_key(&b, "k.u8", GGUF_U8), put(&b, &u8, 1);
    put_key(&b, "k.i8", GGUF_I8), put(&b, &i8, 1);
    put_key(&b, "k.u16", GGUF_U16), put(&b, &u16, 2);
    put_key(&b, "k.i16", GGUF_I16), put(&b, &i16, 2);
    put_key(&b, "k.u32", GGUF_U32), put(&b, &u32, 4);
    put_key(&b, "k.i32", GGUF_I32), put(&b, &i32, 4);
    put_key(&b, "k.f32", GGUF_F32), put(&b, &f32, 4);
    put_key(&b, "k.bool", GGUF_BOOL), put(&b, "\1", 1);
    put_key(&b, "k.str", GGUF_STRING), put_str(&b, "héllo");
    put_key(&b, "k.u64", GGUF_U64), put(&b, &u64, 8);
    put_key(&b, "k.i64", GGUF_I64), put(&b, &i64, 8);
    put_key(&b, "k.f64", GGUF_F64), put(&b, &f64, 8);
    put_key(&b, "k.arr", GGUF_ARRAY), put_u32(&b, GGUF_I32), put_u64(&b, 3);
    int32_t a3[3] = {7, -8, 9};
    put(&b, a3, sizeof a3);
    put_key(&b, "k.strs", GGUF_ARRAY), put_u32(&b, GGUF_STRING), put_u64(&b, 3);
    put_str(&b, "a"), put_str(&b, ""), put_str(&b, "ccc");
    put_key(&b, "k.empty", GGUF_ARRAY), put_u32(&b, GGUF_F32), put_u64(&b, 0);
    put_key(&b, "general.alignment", GGUF_U32), put_u32(&b, 64);
    put_tensor(&b, "a", 1, (uint64_t[]){4}, GGML_F32, 0);
    put_tensor(&b, "b", 2, (uint64_t[]){32, 2}, GGML_BF16, 64);
    put_tensor(&b, "q", 2, (uint64_t[]){64, 1}, GGML_Q8_0, 256);
    pad_to(&b, 64);
    size_t d0 = b.n;
    float fa[4] = {1, 2, 3, 4};
    put(&b, fa, sizeof fa);
    pad_to(&b, 64);
    for (int i = 0; i < 64; i++) {
        uint16_t h = glmv_f32_to_bf16((float)i);
        put(&b, &h, 2);
    }
    while (b.n < d0 + 256) put(&b, "", 1);
    glmv_block_q8_0 blk[2];
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)(i - 32) / 8;
    glmv_quantize_row_q8_0(x, blk, 64);
    put(&b, blk, sizeof blk);
    return b;
}

static int opens(const buf *b, char *err) {
    glmv_gguf *g = NULL;
    err[0] = 0;
    int rc = glmv_gguf_open_memory(&g, b->p, b->n, "mem.gguf", err);
    glmv_gguf_free(g);
    return rc;
}

/* ------------------------------------------------------------ the reader */

TEST(values_and_tensors) {
    buf b = sample();
    glmv_gguf *g = NULL;
    char err[GLMV_ERR_SIZE] = "";
    CHECK_MSG(glmv_gguf_open_memory(&g, b.p, b.n, "mem.gguf", err) == 0, "%s", err);
    if (!g) goto out;
    CHECK_EQ_INT(glmv_gguf_version(g), 3);
    CHECK_EQ_INT(glmv_gguf_n_kv(g), 16);
    int64_t v = 0;
    double d = 0;
    const struct { const char *k; int64_t want; } ints[] = {
        {"k.u8", 200}, {"k.i8", -5}, {"k.u16", 60000}, {"k.i16", -30000}, {"k.u32", 4000000000ll},
        {"k.i32", -2000000000}, {"k.u64", 1ll << 40}, {"k.i64", -(1ll << 40)}, {"general.alignment", 64}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        CHECK_EQ_INT(glmv_gguf_get_int(g, ints[i].k, &v, err), 0);
        CHECK_EQ_INT(v, ints[i].want);
    }
    CHECK_EQ_INT(glmv_gguf_get_float(g, "k.f32", &d, err), 0);
    CHECK_NEAR(d, 1.5, 0);
    CHECK_EQ_INT(glmv_gguf_get_float(g, "k.f64", &d, err), 0);
    CHECK_NEAR(d, 0.25, 0);
    CHECK_EQ_INT(glmv_gguf_get_float(g, "k.i32", &d, err), 0); /* an integer reads as a number */
    CHECK_NEAR(d, -2000000000.0, 0);
    int bo = 0;
    CHECK_EQ_INT(glmv_gguf_get_bool(g, "k.bool", &bo, err), 0);
    CHECK_EQ_INT(bo, 1);
    const char *s;
    size_t n;
    CHECK_EQ_INT(glmv_gguf_get_str(g, "k.str", &s, &n, err), 0);
    CHECK(n == 6 && !memcmp(s, "héllo", 6));
    /* absent: 1; wrong type: -1 with the key named */
    CHECK_EQ_INT(glmv_gguf_get_int(g, "k.none", &v, err), 1);
    CHECK_EQ_INT(glmv_gguf_get_int(g, "k.str", &v, err), -1);
    CHECK(strstr(err, "k.str") != NULL);
    CHECK_EQ_INT(glmv_gguf_get_str(g, "k.u8", &s, &n, err), -1);
    CHECK_EQ_INT(glmv_gguf_get_bool(g, "k.u8", &bo, err), -1);
    CHECK_EQ_INT(glmv_gguf_get_float(g, "k.arr", &d, err), -1);
    const glmv_gguf_kv *kv = glmv_gguf_find_kv(g, "k.arr");
    CHECK(kv && kv->type == GGUF_ARRAY && kv->arr_type == GGUF_I32 && kv->n == 3);
    if (kv)
        CHECK(glmv_gguf_arr_num(kv, 0) == 7 && glmv_gguf_arr_num(kv, 1) == -8 &&
              glmv_gguf_arr_num(kv, 2) == 9);
    kv = glmv_gguf_find_kv(g, "k.strs");
    CHECK(kv && kv->n == 3);
    if (kv) {
        s = glmv_gguf_arr_str(kv, 0, &n);
        CHECK(n == 1 && s[0] == 'a');
        glmv_gguf_arr_str(kv, 1, &n);
        CHECK_EQ_INT(n, 0);
        s = glmv_gguf_arr_str(kv, 2, &n);
        CHECK(n == 3 && !memcmp(s, "ccc", 3));
    }
    kv = glmv_gguf_find_kv(g, "k.empty");
    CHECK(kv && kv->n == 0);

    CHECK_EQ_INT(glmv_gguf_n_tensors(g), 3);
    const glmv_gguf_tensor *ta = glmv_gguf_find_tensor(g, "a"), *tb = glmv_gguf_find_tensor(g, "b"),
                           *tq = glmv_gguf_find_tensor(g, "q");
    CHECK(ta && tb && tq && !glmv_gguf_find_tensor(g, "c"));
    if (ta && tb && tq) {
        CHECK(ta->n_dims == 1 && ta->ne[0] == 4 && ta->bytes == 16 && ta->type == GGML_F32);
        CHECK(((const float *)ta->data)[3] == 4.0f);
        CHECK(tb->n_dims == 2 && tb->ne[0] == 32 && tb->ne[1] == 2 && tb->bytes == 128);
        CHECK(glmv_bf16_to_f32(((const uint16_t *)tb->data)[63]) == 63.0f);
        CHECK_EQ_INT(((uintptr_t)tb->data - (uintptr_t)b.p) % 64, 0); /* general.alignment 64 */
        CHECK_EQ_INT(tq->bytes, 68);
        float y[64];
        glmv_dequantize_row_q8_0(tq->data, y, 64);
        CHECK_NEAR(y[0], -4.0, 0.02);
        CHECK_NEAR(y[63], 3.875, 0.02);
    }
    glmv_gguf_free(g);
out:
    free(b.p);
}

/* Every proper prefix of a valid file is refused, with no read past it (ASan). */
TEST(truncated_anywhere) {
    buf b = sample();
    char err[GLMV_ERR_SIZE];
    int accepted = 0;
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, b.p, n);
        glmv_gguf *g = NULL;
        if (glmv_gguf_open_memory(&g, p, n, "cut.gguf", err) == 0) accepted++;
        else CHECK_MSG(strlen(err) > 10 && !strchr(err, '\n'), "prefix %zu: '%s'", n, err);
        glmv_gguf_free(g);
        free(p);
    }
    CHECK_EQ_INT(accepted, 0);
    free(b.p);
}

/* One tensor "t" of type ty and ne (nd dims) at offset off, data_bytes of data;
 * kv_extra adds a key from fn. */
static buf one_tensor(int nd, const uint64_t *ne, uint32_t ty, uint64_t off, size_t data_bytes) {
    buf b = {0};
    put_header(&b, 1, 0);
    put_tensor(&b, "t", nd, ne, ty, off);
    pad_to(&b, 32);
    for (size_t i = 0; i < data_bytes; i++) put(&b, "\0", 1);
    return b;
}

static void refused(buf *b, const char *want) {
    char err[GLMV_ERR_SIZE];
    CHECK_MSG(opens(b, err) != 0, "accepted; wanted a refusal with '%s'", want);
    CHECK_MSG(strstr(err, want) != NULL, "'%s' does not say '%s'", err, want);
    free(b->p);
    memset(b, 0, sizeof *b);
}

TEST(refusals) {
    buf b = sample();
    b.p[0] = 'X';
    refused(&b, "not a GGUF file");
    b = sample();
    b.p[4] = 1; /* version 1 */
    refused(&b, "version 1");
    b = sample();
    b.p[4] = 0, b.p[7] = 3; /* version 3, big-endian */
    refused(&b, "big-endian");

    b = (buf){0};
    put_header(&b, 0, 1000000);
    refused(&b, "key-value pairs cannot fit");
    b = (buf){0};
    put_header(&b, 100000, 0);
    refused(&b, "tensors cannot fit");

    b = (buf){0};
    put_header(&b, 0, 2);
    put_key(&b, "a", GGUF_U8), put(&b, "\1", 1);
    put_key(&b, "a", GGUF_U8), put(&b, "\1", 1);
    refused(&b, "appears twice");

    b = (buf){0};
    put_header(&b, 0, 1);
    put_key(&b, "a", 13), put_u64(&b, 0);
    refused(&b, "unknown value type 13");

    b = (buf){0};
    put_header(&b, 0, 1);
    put_key(&b, "a", GGUF_ARRAY), put_u32(&b, GGUF_ARRAY), put_u64(&b, 0);
    refused(&b, "arrays of arrays");

    b = (buf){0}; /* an array count far beyond the file */
    put_header(&b, 0, 1);
    put_key(&b, "a", GGUF_ARRAY), put_u32(&b, GGUF_U32), put_u64(&b, 1ull << 61);
    refused(&b, "run past the end");
    b = (buf){0};
    put_header(&b, 0, 1);
    put_key(&b, "a", GGUF_ARRAY), put_u32(&b, GGUF_STRING), put_u64(&b, 1ull << 61);
    refused(&b, "strings cannot fit");
    b = (buf){0}; /* a string length far beyond the file */
    put_header(&b, 0, 1);
    put_key(&b, "a", GGUF_STRING), put_u64(&b, ~0ull);
    refused(&b, "runs past the end");
    b = (buf){0};
    put_header(&b, 0, 1);
    put_u64(&b, 0), put_u32(&b, GGUF_U8), put(&b, "\1", 1);
    refused(&b, "has length 0");

    b = (buf){0};
    put_header(&b, 0, 1);
    put_key(&b, "general.alignment", GGUF_U32), put_u32(&b, 48);
    refused(&b, "power of two");
    b = (buf){0};
    put_header(&b, 0, 1);
    put_key(&b, "general.alignment", GGUF_STRING), put_str(&b, "32");
    refused(&b, "not an integer");

    b = one_tensor(1, (uint64_t[]){4}, 99, 0, 16);
    refused(&b, "ggml type 99");
    b = one_tensor(1, (uint64_t[]){20}, GGML_Q8_0, 0, 64);
    refused(&b, "whole Q8_0 blocks of 32");
    b = one_tensor(5, (uint64_t[]){1, 1, 1, 1, 1}, GGML_F32, 0, 4);
    refused(&b, "5 dimensions");
    b = one_tensor(2, (uint64_t[]){4, 0}, GGML_F32, 0, 16);
    refused(&b, "dimension 1 is 0");
    b = one_tensor(2, (uint64_t[]){1ull << 40, 1ull << 40}, GGML_F32, 0, 16);
    refused(&b, "absurdly large");
    b = one_tensor(1, (uint64_t[]){4}, GGML_F32, 8, 64);
    refused(&b, "not a multiple of the alignment");
    b = one_tensor(1, (uint64_t[]){4}, GGML_F32, 32, 40);
    refused(&b, "past the end of the file");
    b = one_tensor(1, (uint64_t[]){4}, GGML_F32, ~0ull - 31, 40);
    refused(&b, "past the end of the file");

    b = (buf){0};
    put_header(&b, 2, 0);
    put_tensor(&b, "x", 1, (uint64_t[]){16}, GGML_F32, 0);
    put_tensor(&b, "y", 1, (uint64_t[]){16}, GGML_F32, 32);
    pad_to(&b, 32);
    for (int i = 0; i < 128; i++) put(&b, "", 1);
    refused(&b, "overlap");
    b = (buf){0};
    put_header(&b, 2, 0);
    put_tensor(&b, "x", 1, (uint64_t[]){4}, GGML_F32, 0);
    put_tensor(&b, "x", 1, (uint64_t[]){4}, GGML_F32, 32);
    pad_to(&b, 32);
    for (int i = 0; i < 64; i++) put(&b, "", 1);
    refused(&b, "appears twice");

    /* a file on disk: a missing one, a directory, a truncated copy of a real one */
    char err[GLMV_ERR_SIZE];
    glmv_gguf *g = NULL;
    CHECK(glmv_gguf_open(&g, "tests/fixtures/gguf/none.gguf", err) != 0 && strstr(err, "No such file"));
    CHECK(glmv_gguf_open(&g, "tests/fixtures/gguf", err) != 0 && strstr(err, "not a regular file"));
    size_t len = 0;
    char *whole = glmv_read_file(GG "tiny-BF16.gguf", &len, err);
    CHECK(whole != NULL);
    if (whole) {
        CHECK(glmv_gguf_open_memory(&g, whole, len, "whole", err) == 0);
        glmv_gguf_free(g);
        g = NULL;
        CHECK(glmv_gguf_open_memory(&g, whole, len - 1000, "cut", err) != 0 && strstr(err, "truncated"));
        CHECK(glmv_gguf_open_memory(&g, whole, 5000, "cut", err) != 0 && strstr(err, "truncated"));
        free(whole);
    }
}

/* ------------------------------------------------------------ un-permutation */

/* llama.cpp's Glm4Model.normal_to_neox, by hand for 2 heads of head_dim 6, rotary 4:
 * each head's rows [r0 r1 r2 r3 | r4 r5] become [r0 r2 r1 r3 | r4 r5]. */
TEST(unpermute_hand_case) {
    const uint8_t neox[12] = {0, 2, 1, 3, 4, 5, 10, 12, 11, 13, 14, 15};
    const uint8_t hf[12] = {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15};
    uint8_t out[12];
    glmv_gguf_unpermute_rows(out, neox, 1, 2, 6, 4);
    CHECK(!memcmp(out, hf, 12));
    /* rotary 6 of 8 rows of 3 bytes: [r0..r5 | r6 r7] stored as [r0 r2 r4 r1 r3 r5 | r6 r7] */
    uint8_t src[24], want[24], got[24];
    const int order[8] = {0, 2, 4, 1, 3, 5, 6, 7};
    for (int r = 0; r < 8; r++)
        for (int k = 0; k < 3; k++) {
            want[r * 3 + k] = (uint8_t)(r * 16 + k);
            src[r * 3 + k] = (uint8_t)(order[r] * 16 + k);
        }
    glmv_gguf_unpermute_rows(got, src, 3, 1, 8, 6);
    CHECK(!memcmp(got, want, 24));
}

/* ------------------------------------------------------------ block formats by hand */

/* The formats no fixture holds (Q4_1, Q5_0, Q5_1, Q5_K), one block each, with the
 * expected values written from ggml-common.h's description, sub-block by sub-block. */
TEST(dequant_by_hand) {
    uint8_t b[256];
    float y[256];
    const uint16_t two = 0x4000, half = 0x3800; /* f16 2.0 and 0.5 */
    /* Q4_1: d 2, m 0.5; qs[j] = j | (15 - j) << 4 */
    memcpy(b, &two, 2), memcpy(b + 2, &half, 2);
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(j | (15 - j) << 4);
    CHECK_EQ_INT(glmv_ggml_dequantize_row(GGML_Q4_1, b, y, 32), 0);
    int bad = 0;
    for (int j = 0; j < 16; j++) bad += y[j] != 2.0f * j + 0.5f || y[16 + j] != 2.0f * (15 - j) + 0.5f;
    CHECK_EQ_INT(bad, 0);
    /* Q5_0 and Q5_1: the fifth bit of value j is bit j of qh (values 0-15) or bit
     * j + 16 (values 16-31, the high nibbles) */
    const uint32_t qh = 0xA5C3F00Fu;
    for (int with_min = 0; with_min < 2; with_min++) {
        uint8_t *p = b;
        memcpy(p, &two, 2), p += 2;
        if (with_min) memcpy(p, &half, 2), p += 2;
        memcpy(p, &qh, 4), p += 4;
        for (int j = 0; j < 16; j++) p[j] = (uint8_t)(j | (15 - j) << 4);
        CHECK_EQ_INT(glmv_ggml_dequantize_row(with_min ? GGML_Q5_1 : GGML_Q5_0, b, y, 32), 0);
        bad = 0;
        for (int v = 0; v < 32; v++) {
            int q = (v < 16 ? v : 15 - (v - 16)) + (int)((qh >> v) & 1) * 16;
            float want = with_min ? 2.0f * q + 0.5f : 2.0f * (q - 16);
            bad += y[v] != want;
        }
        CHECK_MSG(bad == 0, "Q5_%d: %d values differ", with_min, bad);
    }
    /* Q5_K: d 2, dmin 0.5; sub-block s (32 values) has scale s + 1 and min 7 - s
     * (6 bits: s 0-3 in the low bits of bytes 0-7, s 4-7 in the nibbles of bytes
     * 8-11 and the top bits of bytes 0-7), low 4 bits from the nibbles of qs
     * (byte 32 (s / 2) + l, low nibble for even s), fifth bit s of qh[l] */
    memset(b, 0, sizeof b);
    memcpy(b, &two, 2), memcpy(b + 2, &half, 2);
    int sc[8], mn[8];
    for (int s8 = 0; s8 < 8; s8++) sc[s8] = s8 + 1 + (s8 >= 4 ? 40 : 0), mn[s8] = 7 - s8 + (s8 >= 4 ? 16 : 0);
    uint8_t *scl = b + 4, *qhp = b + 16, *qs = b + 48;
    for (int s8 = 0; s8 < 4; s8++) {
        scl[s8] = (uint8_t)(sc[s8] | (sc[s8 + 4] >> 4) << 6);
        scl[s8 + 4] = (uint8_t)(mn[s8] | (mn[s8 + 4] >> 4) << 6);
        scl[s8 + 8] = (uint8_t)((sc[s8 + 4] & 0xF) | (mn[s8 + 4] & 0xF) << 4);
    }
    for (int l = 0; l < 32; l++) qhp[l] = (uint8_t)(l * 37 + 11);
    for (int i = 0; i < 128; i++) qs[i] = (uint8_t)(i * 73 + 5);
    CHECK_EQ_INT(glmv_ggml_dequantize_row(GGML_Q5_K, b, y, 256), 0);
    bad = 0;
    for (int s8 = 0; s8 < 8; s8++)
        for (int l = 0; l < 32; l++) {
            uint8_t byte = qs[32 * (s8 / 2) + l];
            int q = (s8 % 2 ? byte >> 4 : byte & 0xF) + ((qhp[l] >> s8) & 1) * 16;
            bad += y[32 * s8 + l] != 2.0f * (float)sc[s8] * (float)q - 0.5f * (float)mn[s8];
        }
    CHECK_EQ_INT(bad, 0);
    /* types glmv does not read, and rows that are not whole blocks */
    CHECK_EQ_INT(glmv_ggml_dequantize_row(GGML_Q2_K, b, y, 256), -1);
    CHECK_EQ_INT(glmv_ggml_dequantize_row(GGML_Q4_K, b, y, 100), -1);
}

/* ------------------------------------------------------------ the GLM-4.1V loader */

static double max_abs_diff(const glmv_tensor *a, const glmv_tensor *b, double *amax) {
    int64_t n = glmv_tensor_numel(a);
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    glmv_tensor_get_range(a, 0, n, x);
    glmv_tensor_get_range(b, 0, n, y);
    double m = 0;
    *amax = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - y[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
        if (fabs(x[i]) > *amax) *amax = fabs(x[i]);
    }
    free(x);
    free(y);
    return m;
}

/* Every tensor of the safetensors checkpoint, by name and shape, from the GGUF pair. */
static void compare_weights(const char *text, int q8) {
    glmv_gguf_model gm;
    glmv_weights *st = NULL;
    char err[GLMV_ERR_SIZE] = "";
    CHECK_MSG(glmv_gguf_model_load(&gm, text, GG "mmproj-tiny-F16.gguf", 2, err) == 0, "%s", err);
    CHECK_MSG(glmv_weights_open(&st, TINY, err) == 0, "%s", err);
    if (!gm.w || !st) goto out;
    CHECK_EQ_INT(glmv_weights_count(gm.w), glmv_weights_count(st));
    int exact = 0, close = 0, quant = 0;
    for (int64_t i = 0; i < glmv_weights_count(st); i++) {
        const glmv_tensor *a = glmv_weights_at(st, i), *b = glmv_weights_find(gm.w, a->name);
        CHECK_MSG(b != NULL, "%s is missing from the GGUF pair", a->name);
        if (!b) continue;
        int same = a->ndim == b->ndim;
        for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
        CHECK_MSG(same, "%s: shapes differ", a->name);
        if (!same) continue;
        double amax, m = max_abs_diff(a, b, &amax);
        if (!strncmp(a->name, "model.visual.", 13)) {
            /* F16 of a BF16 value: exact in F16's normal range; a subnormal (below
             * 2^-14) rounds to a multiple of 2^-24, off by at most 2^-25 */
            CHECK_MSG(m <= 0x1p-25, "%s: differs by %g", a->name, m);
            close++;
        } else if (glmv_dtype_is_quant(b->dtype)) {
            /* Q8_0: q = round(w / d) with d = max|block| / 127, stored as f16 (relative
             * error 2^-11): |w - q d16| <= d / 2 + 127 d 2^-11, d at most max|w| / 127 */
            CHECK_MSG(m <= amax / 127 * (0.5 + 127 * 0x1p-11), "%s: differs by %g (max |w| %g)", a->name, m,
                      amax);
            quant++;
        } else {
            CHECK_MSG(m == 0, "%s: differs by %g", a->name, m);
            exact++;
        }
    }
    printf("  %s: %d tensors equal, %d vision tensors within F16 rounding, %d Q8_0 within a half step\n",
           text, exact, close, quant);
    CHECK(close >= 20);
    if (q8) CHECK(quant >= 14);
    else CHECK_EQ_INT(quant, 0);
out:
    if (gm.w || gm.tok) glmv_gguf_model_clear(&gm);
    glmv_weights_free(st);
}

TEST(weights_bf16_equal_safetensors) { compare_weights(GG "tiny-BF16.gguf", 0); }
TEST(weights_q8_0_close_to_safetensors) { compare_weights(GG "tiny-Q8_0.gguf", 1); }

/* llama-quantize's 4-bit files: every matrix used in its blocks as the file holds it (Q4_0;
 * Q4_K with Q6_K where the Q4_K_M recipe puts it; the Q6_K output matrix of both), nothing
 * converted. Each decoder matrix against the checkpoint, by NMSE: 4 bits over a 32-value
 * block of Gaussian weights are steps of about max|w| / 8 = 2.1 sigma / 8, an NMSE of
 * (2.1 / 8)^2 / 12 = 5.7e-3 (measured 5e-3 to 7.5e-3), so 1.5e-2 for the 4-bit formats;
 * lm_head (Q6_K: steps of 2 x 1.8 sigma / 63 over 16 values, 2.7e-4) must be within 1e-3. A
 * dequantizer that misplaces a nibble, a bit or a scale gives an NMSE near 1 or above. */
static double nmse_of(const glmv_tensor *a, const glmv_tensor *b) {
    int64_t n = glmv_tensor_numel(a);
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    glmv_tensor_get_range(a, 0, n, x);
    glmv_tensor_get_range(b, 0, n, y);
    double se = 0, ss = 0;
    for (int64_t i = 0; i < n; i++)
        se += ((double)x[i] - y[i]) * ((double)x[i] - y[i]), ss += (double)x[i] * x[i];
    free(x);
    free(y);
    return ss > 0 ? se / ss : INFINITY;
}

static void four_bit(const char *file, glmv_dtype want) {
    glmv_gguf_model gm;
    glmv_weights *st = NULL;
    char err[GLMV_ERR_SIZE] = "";
    CHECK_MSG(glmv_gguf_model_load(&gm, file, NULL, 2, err) == 0, "%s", err);
    CHECK_MSG(glmv_weights_open(&st, TINY, err) == 0, "%s", err);
    if (!gm.w || !st) goto out;
    int n = 0, n6 = 0;
    double worst = 0;
    for (int64_t i = 0; i < glmv_weights_count(st); i++) {
        const glmv_tensor *a = glmv_weights_at(st, i), *b = glmv_weights_find(gm.w, a->name);
        if (strncmp(a->name, "model.visual.", 13) == 0) continue;
        CHECK_MSG(b != NULL, "%s is missing", a->name);
        if (!b || a->ndim != 2) continue;
        double e = nmse_of(a, b);
        int lm = !strcmp(a->name, "lm_head.weight");
        int ok = lm ? b->dtype == GLMV_Q6_K : b->dtype == want || (want == GLMV_Q4_K && b->dtype == GLMV_Q6_K);
        CHECK_MSG(ok, "%s: dtype %s", a->name, glmv_dtype_name(b->dtype));
        n6 += !lm && b->dtype == GLMV_Q6_K;
        CHECK_MSG(e <= (lm ? 1e-3 : 1.5e-2), "%s: nmse %.3e", a->name, e);
        if (!lm && e > worst) worst = e;
        if (lm) printf("  %s: lm_head (Q6_K) nmse %.3e\n", file, e);
        n++;
    }
    printf("  %s: %d matrices, worst 4-bit nmse %.3e\n", file, n, worst);
    CHECK_EQ_INT(n, 2 * 6 + 2);
    /* the recipe's Q6_K: layer 1's v and down (use_more_bits of 2 layers) */
    CHECK_EQ_INT(n6, want == GLMV_Q4_K ? 2 : 0);
    CHECK_MSG(!strstr(gm.notes, "converted"), "%s", gm.notes);
out:
    if (gm.w || gm.tok) glmv_gguf_model_clear(&gm);
    glmv_weights_free(st);
}

TEST(weights_q4_0) { four_bit(GG "tiny-Q4_0.gguf", GLMV_Q4_0); }
TEST(weights_q4_k_m) { four_bit(GG "tiny-Q4_K_M.gguf", GLMV_Q4_K); }

/* What config.json and the processor files say, from the GGUF keys and tensors. */
TEST(config_matches) {
    glmv_gguf_model gm;
    glmv_config hf;
    char err[GLMV_ERR_SIZE] = "";
    CHECK_MSG(glmv_config_load(&hf, TINY, err) == 0, "%s", err);
    if (glmv_gguf_model_load(&gm, GG "tiny-BF16.gguf", GG "mmproj-tiny-F16.gguf", 2, err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    const glmv_config *c = &gm.cfg;
#define SAME(f) CHECK_MSG(c->f == hf.f, #f ": %g vs %g", (double)c->f, (double)hf.f)
    SAME(vocab_size); SAME(hidden_size); SAME(intermediate_size); SAME(num_hidden_layers);
    SAME(num_attention_heads); SAME(num_key_value_heads); SAME(head_dim); SAME(max_position_embeddings);
    SAME(rms_norm_eps); SAME(rope_theta); SAME(partial_rotary_factor); SAME(attention_bias);
    SAME(tie_word_embeddings); SAME(mrope_section[0]); SAME(mrope_section[1]); SAME(mrope_section[2]);
    SAME(v_depth); SAME(v_hidden_size); SAME(v_num_heads); SAME(v_head_dim); SAME(v_patch_size);
    SAME(v_temporal_patch_size); SAME(v_spatial_merge_size); SAME(v_image_size); SAME(v_in_channels);
    SAME(v_out_hidden_size); SAME(v_intermediate_size); SAME(v_rms_norm_eps); SAME(v_attention_bias);
    SAME(image_token_id); SAME(video_token_id); SAME(image_start_token_id); SAME(image_end_token_id);
    SAME(video_start_token_id); SAME(video_end_token_id); SAME(pad_token_id); SAME(n_eos);
    for (int i = 0; i < c->n_eos && i < hf.n_eos; i++) SAME(eos_token_ids[i]);
    SAME(gen_temperature); SAME(gen_top_k); SAME(gen_top_p); SAME(gen_do_sample);
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR(c->img_mean[i], hf.img_mean[i], 1e-7);
        CHECK_NEAR(c->img_std[i], hf.img_std[i], 1e-7);
    }
    SAME(proc_patch_size); SAME(proc_merge_size); SAME(proc_temporal_patch_size);
#undef SAME
    CHECK(gm.chat_template && strstr(gm.chat_template, "<|assistant|>"));
    glmv_gguf_model_clear(&gm);

    /* the text model alone: a vision config that passes the checks, no vision tensors */
    CHECK_MSG(glmv_gguf_model_load(&gm, GG "tiny-BF16.gguf", NULL, 2, err) == 0, "%s", err);
    if (gm.w) CHECK(!glmv_weights_find(gm.w, "model.visual.patch_embed.proj.weight"));
    CHECK_EQ_INT(gm.cfg.v_out_hidden_size, hf.hidden_size);
    glmv_gguf_model_clear(&gm);
}

/* The GGUF vocabulary encodes as tokenizer.json does. */
TEST(tokenizer_matches) {
    glmv_gguf_model gm;
    glmv_tokenizer *hf = NULL;
    char err[GLMV_ERR_SIZE] = "";
    CHECK_MSG(glmv_tokenizer_load(&hf, TINY, err) == 0, "%s", err);
    CHECK_MSG(glmv_gguf_model_load(&gm, GG "tiny-BF16.gguf", NULL, 2, err) == 0, "%s", err);
    if (!hf || !gm.tok) goto out;
    static const char *texts[] = {
        "Hello world",
        "What is in this image?",
        "[gMASK]<sop><|user|>\nDescribe<|begin_of_image|><|image|><|end_of_image|><|assistant|>\n",
        "<think>let me see</think><answer>a cat</answer><|endoftext|>",
        "  leading spaces\n\n\ttabs and 12345678 digits, ünïcödé 中文字 emoji 😀 it's we'LL",
        "<|begin_of_box|>42<|end_of_box|>\r\n\r\n   \n",
        "x",
        "",
    };
    int n_ids = 0;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *a = NULL, *b = NULL;
        int64_t na = glmv_tokenize(hf, texts[i], strlen(texts[i]), &a, err);
        int64_t nb = glmv_tokenize(gm.tok, texts[i], strlen(texts[i]), &b, err);
        CHECK_MSG(na == nb && na >= 0, "'%s': %lld vs %lld tokens", texts[i], (long long)na, (long long)nb);
        if (na == nb && na > 0)
            CHECK_MSG(!memcmp(a, b, sizeof *a * (size_t)na), "'%s': ids differ", texts[i]);
        n_ids += (int)(na > 0 ? na : 0);
        free(a);
        free(b);
    }
    CHECK(n_ids > 80);
    /* every id decodes to the same bytes, and the same ids are special */
    int bad = 0;
    for (int32_t id = 0; id < glmv_tokenizer_size(hf); id++) {
        size_t la = 0, lb = 0;
        const char *a = glmv_token_bytes(hf, id, &la), *b = glmv_token_bytes(gm.tok, id, &lb);
        if (!a != !b || la != lb || (a && memcmp(a, b, la)) ||
            glmv_token_is_special(hf, id) != glmv_token_is_special(gm.tok, id) ||
            glmv_token_is_added(hf, id) != glmv_token_is_added(gm.tok, id)) {
            bad++;
            printf("  id %d: '%.*s' (special %d, added %d) vs '%.*s' (special %d, added %d)\n", id, (int)la,
                   a ? a : "", glmv_token_is_special(hf, id), glmv_token_is_added(hf, id), (int)lb,
                   b ? b : "", glmv_token_is_special(gm.tok, id), glmv_token_is_added(gm.tok, id));
        }
    }
    CHECK_EQ_INT(bad, 0);
out:
    glmv_tokenizer_free(hf);
    if (gm.w || gm.tok) glmv_gguf_model_clear(&gm);
}

/* -m DIR: one text .gguf and one mmproj*.gguf; anything else is named. */
TEST(locate) {
    char text[512], mm[512], err[GLMV_ERR_SIZE], d[64] = "/tmp/glmv-gguf-XXXXXX", p[256], cwd[512];
    CHECK(mkdtemp(d) != NULL);
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK_EQ_INT(glmv_gguf_locate(TINY, NULL, text, mm, sizeof text, err), 0); /* a HF folder */
    CHECK_EQ_INT(glmv_gguf_locate(GG "tiny-BF16.gguf", NULL, text, mm, sizeof text, err), 1);
    CHECK_EQ_STR(text, GG "tiny-BF16.gguf");
    CHECK_EQ_STR(mm, "");
    CHECK_EQ_INT(glmv_gguf_locate(d, NULL, text, mm, sizeof text, err), 0); /* empty folder */
    snprintf(p, sizeof p, "%s/model-BF16.gguf", d);
    char target[768];
    snprintf(target, sizeof target, "%s/" GG "tiny-BF16.gguf", cwd);
    CHECK(symlink(target, p) == 0);
    CHECK_EQ_INT(glmv_gguf_locate(d, NULL, text, mm, sizeof text, err), 1);
    CHECK_EQ_STR(text, p);
    CHECK_EQ_STR(mm, "");
    snprintf(p, sizeof p, "%s/mmproj-F16.gguf", d);
    snprintf(target, sizeof target, "%s/" GG "mmproj-tiny-F16.gguf", cwd);
    CHECK(symlink(target, p) == 0);
    CHECK_EQ_INT(glmv_gguf_locate(d, NULL, text, mm, sizeof text, err), 1);
    CHECK_EQ_STR(mm, p);
    CHECK_EQ_INT(glmv_gguf_locate(d, "other.gguf", text, mm, sizeof text, err), 1); /* --mmproj wins */
    CHECK_EQ_STR(mm, "other.gguf");
    char p2[256];
    snprintf(p2, sizeof p2, "%s/model-Q8_0.gguf", d);
    CHECK(symlink(target, p2) == 0);
    CHECK_EQ_INT(glmv_gguf_locate(d, NULL, text, mm, sizeof text, err), -1);
    CHECK(strstr(err, "more than one") != NULL);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s/mmproj-BF16.gguf", d);
    CHECK(symlink(target, p2) == 0);
    CHECK_EQ_INT(glmv_gguf_locate(d, NULL, text, mm, sizeof text, err), -1);
    CHECK(strstr(err, "mmproj*.gguf files") != NULL);
    unlink(p2);
    unlink(p);
    snprintf(p, sizeof p, "%s/model-BF16.gguf", d);
    unlink(p);
    rmdir(d);
}

/* A copy of fixture file with the first `from` replaced by `to` (n bytes each), loaded
 * as the text model (mm NULL) or as the mmproj of the BF16 text model: refused with want. */
static void patched(const char *file, const char *from, const char *to, size_t n, int as_mmproj,
                    const char *want) {
    char err[GLMV_ERR_SIZE] = "", path[64] = "/tmp/glmv-gguf-patch-XXXXXX";
    size_t len = 0;
    char *f = glmv_read_file(file, &len, err);
    char *at = f ? memmem(f, len, from, n) : NULL;
    CHECK_MSG(at != NULL, "%s: no '%s'", file, from);
    if (!at) {
        free(f);
        return;
    }
    memcpy(at, to, n);
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, f, len) == (ssize_t)len);
    close(fd);
    glmv_gguf_model gm;
    int rc = as_mmproj ? glmv_gguf_model_load(&gm, GG "tiny-BF16.gguf", path, 2, err)
                       : glmv_gguf_model_load(&gm, path, NULL, 2, err);
    CHECK_MSG(rc != 0 && strstr(err, want), "'%s' -> '%s': %s", from, to, rc ? err : "accepted");
    if (!rc) glmv_gguf_model_clear(&gm);
    unlink(path);
    free(f);
}

/* from and to are string literals of the same length (NUL bytes included) */
#define PATCHED(file, from, to, ...) patched(file, from, to, sizeof(from) - 1, __VA_ARGS__)

TEST(loader_refusals_of_keys) {
    PATCHED(GG "tiny-BF16.gguf", "glm4.rope.dimension_sections", "glm4.rope.dimension_sectionX", 0,
            "no glm4.rope.dimension_sections");
    PATCHED(GG "tiny-BF16.gguf", "glm4.embedding_length", "glm4.embedding_lengtX", 0,
            "key glm4.embedding_length is missing");
    PATCHED(GG "tiny-BF16.gguf", "tokenizer.ggml.pre\x08\0\0\0\x04\0\0\0\0\0\0\0glm4",
            "tokenizer.ggml.pre\x08\0\0\0\x04\0\0\0\0\0\0\0glmX", 0, "pre-tokenizer 'glmX' is not known");
    PATCHED(GG "tiny-BF16.gguf", "<|image|>", "<|imagX|>", 0, "no <|image|> token");
    PATCHED(GG "tiny-BF16.gguf", "blk.1.ffn_down.weight", "blk.1.ffn_down.weighX", 0,
            "tensor blk.1.ffn_down.weight (for model.language_model.layers.1.mlp.down_proj.weight) "
            "is missing");
    PATCHED(GG "mmproj-tiny-F16.gguf", "glm4v", "glm4x", 1, "clip.projector_type is \"glm4x\"");
    PATCHED(GG "mmproj-tiny-F16.gguf", "v.patch_embd.weight.1", "v.patch_embd.weight.2", 1,
            "v.patch_embd.weight.1 is missing");
    PATCHED(GG "mmproj-tiny-F16.gguf", "clip.vision.projection_dim\x04\0\0\0\0\x01",
            "clip.vision.projection_dim\x04\0\0\0\0\x02", 1, "out_hidden_size 512 differs");
}

/* A tensor of a type glmv does not run is named with its type; a vision file as
 * the text model and a text file as the mmproj are refused. */
TEST(loader_refusals) {
    char err[GLMV_ERR_SIZE] = "", path[64] = "/tmp/glmv-gguf-q2k-XXXXXX";
    glmv_gguf_model gm;
    CHECK(glmv_gguf_model_load(&gm, GG "mmproj-tiny-F16.gguf", NULL, 2, err) != 0);
    CHECK_MSG(strstr(err, "general.architecture is \"clip\"") != NULL, "%s", err);
    CHECK(glmv_gguf_model_load(&gm, GG "tiny-BF16.gguf", GG "tiny-Q8_0.gguf", 2, err) != 0);
    CHECK_MSG(strstr(err, "general.architecture is \"glm4\"") != NULL, "%s", err);
    CHECK(glmv_gguf_model_load(&gm, TINY "/config.json", NULL, 2, err) != 0);
    CHECK_MSG(strstr(err, "not a GGUF file") != NULL, "%s", err);

    /* blk.0.ffn_down.weight retyped to Q2_K: its 65536 values take 21504 bytes,
     * inside the BF16 tensor's range, so only the loader can object */
    size_t len = 0;
    char *f = glmv_read_file(GG "tiny-BF16.gguf", &len, err);
    CHECK(f != NULL);
    if (!f) return;
    const char *name = "blk.0.ffn_down.weight";
    char *at = memmem(f, len, name, strlen(name));
    CHECK(at != NULL);
    if (at) {
        uint32_t nd;
        memcpy(&nd, at + strlen(name), 4);
        uint32_t q2k = GGML_Q2_K;
        memcpy(at + strlen(name) + 4 + 8 * nd, &q2k, 4);
        int fd = mkstemp(path);
        CHECK(fd >= 0 && write(fd, f, len) == (ssize_t)len);
        close(fd);
        CHECK(glmv_gguf_model_load(&gm, path, NULL, 2, err) != 0);
        CHECK_MSG(strstr(err, "blk.0.ffn_down.weight has type Q2_K") != NULL, "%s", err);
        unlink(path);
    }
    free(f);
}

int main(void) {
    RUN(values_and_tensors);
    RUN(truncated_anywhere);
    RUN(refusals);
    RUN(unpermute_hand_case);
    RUN(dequant_by_hand);
    RUN(weights_bf16_equal_safetensors);
    RUN(weights_q8_0_close_to_safetensors);
    RUN(weights_q4_0);
    RUN(weights_q4_k_m);
    RUN(config_matches);
    RUN(tokenizer_matches);
    RUN(locate);
    RUN(loader_refusals);
    RUN(loader_refusals_of_keys);
    return test_summary("gguf");
}
