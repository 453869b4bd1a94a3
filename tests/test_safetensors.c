/* test_safetensors.c -- the safetensors loader: round trips of small files
 * written here (single file and sharded), synthetic weights for a tiny config,
 * and every kind of bad input (each must fail with one line naming the file
 * and the tensor, never crash). Files are written to a temp folder per test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "config.h"
#include "glmv.h"
#include "safetensors.h"
#include "test.h"
#include "util_ckpt.h"

static char err[GLMV_ERR_SIZE];

/* the error is one line that mentions each of the given words */
static int err_has(const char *a, const char *b) {
    return !strchr(err, '\n') && strstr(err, a) && (!b || strstr(err, b));
}

static void tiny_config(glmv_config *c) {
    glmv_config_preset_9b(c, 2);
    c->vocab_size = 64;
    c->hidden_size = 32;
    c->intermediate_size = 48;
    c->num_attention_heads = 4;
    c->num_key_value_heads = 2;
    c->head_dim = 8;
    c->mrope_section[0] = 0;
    c->mrope_section[1] = 1;
    c->mrope_section[2] = 1;
    c->v_depth = 2;
    c->v_hidden_size = 16;
    c->v_num_heads = 2;
    c->v_head_dim = 8;
    c->v_image_size = 28;
    c->v_out_hidden_size = 24;
    c->v_intermediate_size = 40;
}

/* ---------------------------------------------------------------- round trips */

TEST(single_file_round_trip) {
    char *dir = ckpt_tmpdir("st");
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    float f32[6] = {1.5f, -2, 3, 4.25f, 0, -1e-3f};
    uint16_t bf[4], f16[3];
    for (int i = 0; i < 4; i++) bf[i] = glmv_f32_to_bf16((float)i - 1.5f);
    for (int i = 0; i < 3; i++) f16[i] = glmv_f32_to_f16((float)i * 0.25f);
    ckpt_tensor ts[] = {
        {"a.weight", "F32", 2, {2, 3}, f32},
        {"b.bias", "BF16", 1, {4}, bf},
        {"c", "F16", 3, {1, 3, 1}, f16},
        {"scalar", "F32", 0, {0}, f32},
        {"empty", "BF16", 2, {0, 5}, NULL},
    };
    CHECK(ckpt_write_safetensors(path, ts, 5) == 0);
    glmv_weights *w = NULL;
    int rc = glmv_weights_open(&w, dir, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK_EQ_INT(glmv_weights_count(w), 5);
        CHECK_EQ_INT(glmv_weights_bytes(w), 24 + 8 + 6 + 4);
        glmv_tensor *a = glmv_weights_find(w, "a.weight");
        CHECK(a && a->dtype == GLMV_F32 && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3);
        if (a) {
            CHECK(a->host == a->data);
            for (int i = 0; i < 6; i++) CHECK(glmv_tensor_get(a, i) == f32[i]);
            CHECK_EQ_INT(((uintptr_t)a->host) % 4, 0);
        }
        glmv_tensor *b = glmv_weights_find(w, "b.bias");
        CHECK(b && b->dtype == GLMV_BF16);
        if (b)
            for (int i = 0; i < 4; i++) CHECK(glmv_tensor_get(b, i) == (float)i - 1.5f);
        glmv_tensor *c = glmv_weights_find(w, "c");
        CHECK(c && c->dtype == GLMV_F16 && glmv_tensor_numel(c) == 3);
        if (c)
            for (int i = 0; i < 3; i++) CHECK(glmv_tensor_get(c, i) == (float)i * 0.25f);
        glmv_tensor *s = glmv_weights_find(w, "scalar");
        CHECK(s && s->ndim == 0 && glmv_tensor_numel(s) == 1 && glmv_tensor_get(s, 0) == 1.5f);
        /* "scalar" starts at data offset 38: misaligned in the file, copied */
        if (s) CHECK_EQ_INT((uintptr_t)s->host % 4, 0);
        glmv_tensor *e = glmv_weights_find(w, "empty");
        CHECK(e && glmv_tensor_numel(e) == 0);
        CHECK(glmv_weights_find(w, "nope") == NULL);
        CHECK(glmv_weights_find(w, "a.weigh") == NULL);
        glmv_tensor *r = NULL;
        CHECK(glmv_weights_require(w, "a.weight", 2, (int64_t[]){2, 3}, &r, err) == 0 && r == a);
        CHECK(glmv_weights_require(w, "a.weight", 2, (int64_t[]){3, 2}, &r, err) != 0 && !r);
        CHECK_MSG(err_has("a.weight", "[2, 3]") && strstr(err, "[3, 2]") &&
                  strstr(err, "model.safetensors"), "%s", err);
        CHECK(glmv_weights_require(w, "a.weight", 1, (int64_t[]){6}, &r, err) != 0);
        CHECK(glmv_weights_require(w, "missing.weight", 1, (int64_t[]){6}, &r, err) != 0);
        CHECK_MSG(err_has("missing.weight", "missing"), "%s", err);
        int64_t seen = 0;
        for (int64_t i = 0; i < glmv_weights_count(w); i++)
            seen += glmv_weights_find(w, glmv_weights_at(w, i)->name) == glmv_weights_at(w, i);
        CHECK_EQ_INT(seen, 5);
        CHECK(glmv_weights_at(w, 5) == NULL && glmv_weights_at(w, -1) == NULL);
    }
    glmv_weights_free(w);
    /* the file named directly */
    w = NULL;
    CHECK_MSG(glmv_weights_open(&w, path, err) == 0, "%s", err);
    CHECK(w && glmv_weights_count(w) == 5 && glmv_weights_find(w, "c"));
    glmv_weights_free(w);
    ckpt_rmdir(dir);
}

/* Synthetic weights of a tiny config, saved single and sharded, read back:
 * same names, shapes and bytes. */
static void synthetic_round_trip(int shards) {
    glmv_config c;
    tiny_config(&c);
    glmv_weights *w = NULL, *r = NULL;
    CHECK_MSG(glmv_weights_synthetic(&w, &c, 42, err) == 0, "%s", err);
    if (!w) return;
    char *dir = ckpt_tmpdir("st");
    CHECK(ckpt_write_weights(dir, w, shards) == 0);
    int rc = glmv_weights_open(&r, dir, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK_EQ_INT(glmv_weights_count(r), glmv_weights_count(w));
        CHECK_EQ_INT(glmv_weights_bytes(r), glmv_weights_bytes(w));
        int64_t same = 0;
        for (int64_t i = 0; i < glmv_weights_count(w); i++) {
            glmv_tensor *a = glmv_weights_at(w, i), *b = glmv_weights_find(r, a->name);
            if (!b) continue;
            size_t bytes = (size_t)glmv_tensor_numel(a) * glmv_dtype_size(a->dtype);
            same += b->dtype == a->dtype && b->ndim == a->ndim &&
                    !memcmp(a->shape, b->shape, sizeof a->shape) && !memcmp(a->host, b->host, bytes);
        }
        CHECK_EQ_INT(same, glmv_weights_count(w));
        glmv_tensor *t = glmv_weights_find(r, "model.language_model.layers.1.mlp.gate_up_proj.weight");
        CHECK(t && glmv_weights_file_of(r, t) && strstr(glmv_weights_file_of(r, t), dir));
    }
    glmv_weights_free(r);
    glmv_weights_free(w);
    ckpt_rmdir(dir);
}

TEST(synthetic_single_round_trip) { synthetic_round_trip(1); }
TEST(synthetic_sharded_round_trip) { synthetic_round_trip(3); }

TEST(synthetic_has_every_tensor) {
    glmv_config c;
    tiny_config(&c);
    glmv_weights *w = NULL;
    CHECK_MSG(glmv_weights_synthetic(&w, &c, 1, err) == 0, "%s", err);
    if (!w) return;
    /* 2 + 12 per layer (with q/k/v bias) + lm_head; vision 4 + 8 per block + 9 */
    CHECK_EQ_INT(glmv_weights_count(w), 2 + 12 * 2 + 1 + 4 + 8 * 2 + 9);
    glmv_tensor *t;
    const int64_t H = 32, QD = 32, KD = 16, I = 48;
    CHECK(glmv_weights_require(w, "model.language_model.embed_tokens.weight", 2, (int64_t[]){64, H}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.language_model.layers.0.self_attn.q_proj.weight", 2, (int64_t[]){QD, H}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.language_model.layers.1.self_attn.k_proj.bias", 1, (int64_t[]){KD}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.language_model.layers.1.self_attn.o_proj.weight", 2, (int64_t[]){H, QD}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.language_model.layers.1.mlp.gate_up_proj.weight", 2, (int64_t[]){2 * I, H}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.language_model.layers.0.mlp.down_proj.weight", 2, (int64_t[]){H, I}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.language_model.layers.0.post_mlp_layernorm.weight", 1, (int64_t[]){H}, &t, err) == 0);
    if (t) CHECK(glmv_tensor_get(t, 3) == 1.0f);
    CHECK(glmv_weights_require(w, "model.language_model.norm.weight", 1, (int64_t[]){H}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "lm_head.weight", 2, (int64_t[]){64, H}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.visual.patch_embed.proj.weight", 5, (int64_t[]){16, 3, 2, 14, 14}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.visual.embeddings.position_embedding.weight", 2, (int64_t[]){4, 16}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.visual.blocks.1.attn.qkv.weight", 2, (int64_t[]){48, 16}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.visual.blocks.1.mlp.gate_proj.weight", 2, (int64_t[]){24, 16}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.visual.blocks.0.mlp.down_proj.weight", 2, (int64_t[]){16, 24}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.visual.downsample.weight", 4, (int64_t[]){24, 16, 2, 2}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.visual.merger.proj.weight", 2, (int64_t[]){24, 24}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.visual.merger.post_projection_norm.bias", 1, (int64_t[]){24}, &t, err) == 0);
    if (t) CHECK(glmv_tensor_get(t, 0) == 0.0f);
    CHECK(glmv_weights_require(w, "model.visual.merger.gate_proj.weight", 2, (int64_t[]){40, 24}, &t, err) == 0);
    CHECK(glmv_weights_require(w, "model.visual.merger.down_proj.weight", 2, (int64_t[]){24, 40}, &t, err) == 0);
    /* random values: roughly N(0, 0.02), aligned, host == data */
    t = glmv_weights_find(w, "model.language_model.embed_tokens.weight");
    if (t) {
        double s = 0, s2 = 0;
        int64_t n = glmv_tensor_numel(t);
        for (int64_t i = 0; i < n; i++) {
            double x = glmv_tensor_get(t, i);
            s += x;
            s2 += x * x;
        }
        double sd = sqrt(s2 / n);
        CHECK_MSG(fabs(s / n) < 0.005 && sd > 0.015 && sd < 0.025, "mean %g sd %g", s / n, sd);
        CHECK(t->host == t->data && ((uintptr_t)t->host % 64) == 0);
    }
    glmv_weights_free(w);

    c.tie_word_embeddings = 1;
    c.attention_bias = 0;
    CHECK(glmv_weights_synthetic(&w, &c, 1, err) == 0);
    if (w) {
        CHECK(glmv_weights_find(w, "lm_head.weight") == NULL);
        CHECK(glmv_weights_find(w, "model.language_model.layers.0.self_attn.q_proj.bias") == NULL);
        CHECK_EQ_INT(glmv_weights_count(w), 2 + 9 * 2 + 4 + 8 * 2 + 9);
    }
    glmv_weights_free(w);
}

TEST(synthetic_seed_changes_values) {
    glmv_config c;
    tiny_config(&c);
    glmv_weights *a = NULL, *b = NULL, *a2 = NULL;
    glmv_weights_synthetic(&a, &c, 1, err);
    glmv_weights_synthetic(&a2, &c, 1, err);
    glmv_weights_synthetic(&b, &c, 2, err);
    CHECK(a && b && a2);
    if (a && b && a2) {
        glmv_tensor *x = glmv_weights_find(a, "lm_head.weight"), *y = glmv_weights_find(b, "lm_head.weight"),
                    *x2 = glmv_weights_find(a2, "lm_head.weight");
        size_t bytes = (size_t)glmv_tensor_numel(x) * 2;
        CHECK(memcmp(x->host, y->host, bytes) != 0);
        CHECK(memcmp(x->host, x2->host, bytes) == 0);
    }
    glmv_weights_free(a);
    glmv_weights_free(a2);
    glmv_weights_free(b);
}

/* ---------------------------------------------------------------- bad input */

/* Write one file with this header and data_bytes of data as model.safetensors,
 * open it, expect failure with a one-line message containing want1 (and want2). */
static void expect_bad_header(const char *header, size_t data_bytes, uint64_t len_override,
                              const char *want1, const char *want2) {
    char *dir = ckpt_tmpdir("bad");
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(ckpt_write_raw(path, header, len_override, NULL, data_bytes) == 0);
    glmv_weights *w = NULL;
    err[0] = 0;
    int rc = glmv_weights_open(&w, dir, err);
    CHECK_MSG(rc != 0 && w == NULL, "accepted: %s", header);
    CHECK_MSG(err_has("model.safetensors", want1) && (!want2 || strstr(err, want2)),
              "message \"%s\" lacks \"%s\" / \"%s\"", err, want1, want2 ? want2 : "");
    glmv_weights_free(w);
    ckpt_rmdir(dir);
}

TEST(bad_offsets_past_file) {
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, 0,
                      "w", "past the end");
    /* large offsets near 2^53 */
    expect_bad_header("{\"w\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[9007199254740000,9007199254740008]}}",
                      8, 0, "w", "past the end");
}

TEST(bad_overlapping_ranges) {
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                      16, 0, "overlap", "b");
    expect_bad_header("{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                      "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                      20, 0, "overlap", "a");
    /* the same range twice */
    expect_bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                      8, 0, "overlap", NULL);
}

TEST(bad_dtype) {
    expect_bad_header("{\"model.x\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
                      0, "model.x", "I64");
    expect_bad_header("{\"model.x\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}",
                      2, 0, "model.x", "F8_E4M3");
    expect_bad_header("{\"model.x\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,4]}}", 4, 0,
                      "model.x", "dtype");
}

/* glmv quantize's rows: U8 [rows, bytes] read as Q8_0/Q4_0 [rows, cols] when __metadata__ names
 * the format; refused without it, with an unknown one, or with a row that is not whole blocks */
TEST(quantized_rows) {
    char *dir = ckpt_tmpdir("q");
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(ckpt_write_raw(path, "{\"__metadata__\":{\"glmv.quant:a\":\"Q8_0\",\"glmv.quant:b\":\"Q4_0\","
                               "\"glmv.quant:c\":\"Q4_K\"},"
                               "\"a\":{\"dtype\":\"U8\",\"shape\":[2,68],\"data_offsets\":[0,136]},"
                               "\"b\":{\"dtype\":\"U8\",\"shape\":[3,18],\"data_offsets\":[136,190]},"
                               "\"c\":{\"dtype\":\"U8\",\"shape\":[1,288],\"data_offsets\":[190,478]}}",
                         0, NULL, 478) == 0);
    glmv_weights *w = NULL;
    CHECK_MSG(glmv_weights_open(&w, dir, err) == 0, "%s", err);
    glmv_tensor *a = w ? glmv_weights_find(w, "a") : NULL, *b = w ? glmv_weights_find(w, "b") : NULL;
    CHECK(a && a->dtype == GLMV_Q8_0 && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 64);
    CHECK(b && b->dtype == GLMV_Q4_0 && b->shape[0] == 3 && b->shape[1] == 32);
    glmv_tensor *c = w ? glmv_weights_find(w, "c") : NULL; /* two super-blocks of 256 */
    CHECK(c && c->dtype == GLMV_Q4_K && c->shape[0] == 1 && c->shape[1] == 512);
    glmv_weights_free(w);
    ckpt_rmdir(dir);
    expect_bad_header("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,34],\"data_offsets\":[0,34]}}", 34, 0, "w",
                      "glmv.quant:w");
    expect_bad_header("{\"__metadata__\":{\"glmv.quant:w\":\"Q5_K\"},"
                      "\"w\":{\"dtype\":\"U8\",\"shape\":[1,34],\"data_offsets\":[0,34]}}",
                      34, 0, "w", "block format");
    expect_bad_header("{\"__metadata__\":{\"glmv.quant:w\":\"Q8_0\"},"
                      "\"w\":{\"dtype\":\"U8\",\"shape\":[1,35],\"data_offsets\":[0,35]}}",
                      35, 0, "w", "whole 34-byte blocks");
    expect_bad_header("{\"__metadata__\":{\"glmv.quant:w\":\"Q6_K\"},"
                      "\"w\":{\"dtype\":\"U8\",\"shape\":[1,200],\"data_offsets\":[0,200]}}",
                      200, 0, "w", "whole 210-byte blocks");
    expect_bad_header("{\"__metadata__\":{\"glmv.quant:w\":\"Q4_0\"},"
                      "\"w\":{\"dtype\":\"U8\",\"shape\":[36],\"data_offsets\":[0,36]}}",
                      36, 0, "w", "2-D");
}

TEST(bad_sizes) {
    /* bytes do not match dtype * shape */
    expect_bad_header("{\"w\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[0,16]}}", 16, 0,
                      "w", "needs 12");
    /* absurd shape: product overflows */
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                      "\"data_offsets\":[0,16]}}", 16, 0, "w", "absurd");
    /* negative, fractional, too large for a double */
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16, 0,
                      "w", "shape");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,6]}}", 16, 0,
                      "w", "shape");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,16]}}", 16, 0,
                      "w", "shape");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
                      4, 0, "w", "dimensions");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, 0, "w",
                      "before");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, 0, "w",
                      "data_offsets");
}

TEST(bad_header_itself) {
    /* header length beyond the file, absurd, or too small */
    expect_bad_header("{}", 0, 1000, "header length", NULL);
    expect_bad_header("{}", 0, (uint64_t)1 << 62, "header length", "limit");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 1,
                      "header length", NULL);
    /* not JSON, not an object, not an entry */
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",", 0, 0, "JSON", NULL);
    expect_bad_header("[1, 2, 3]", 0, 0, "object", NULL);
    expect_bad_header("{\"w\": 5}", 0, 0, "w", "object");
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, 0, "w", "shape");
    expect_bad_header("{\"__metadata__\": 3}", 0, 0, "__metadata__", NULL);
    expect_bad_header("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0,
                      "empty name", NULL);
    /* a duplicated key */
    expect_bad_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0, "w",
                      "also in");
    /* a file shorter than the 8-byte length */
    char *dir = ckpt_tmpdir("bad");
    CHECK(ckpt_write_text(dir, "model.safetensors", "abc") == 0);
    glmv_weights *w = NULL;
    CHECK(glmv_weights_open(&w, dir, err) != 0);
    CHECK_MSG(err_has("model.safetensors", "too short"), "%s", err);
    ckpt_rmdir(dir);
}

TEST(bad_folder) {
    char *dir = ckpt_tmpdir("bad");
    glmv_weights *w = NULL;
    CHECK(glmv_weights_open(&w, dir, err) != 0);
    CHECK_MSG(err_has(dir, "model.safetensors"), "%s", err);
    ckpt_rmdir(dir);
    CHECK(glmv_weights_open(&w, "/nonexistent/glmv", err) != 0);
    CHECK_MSG(err_has("/nonexistent/glmv", NULL), "%s", err);
}

/* A 2-shard checkpoint of three tensors; returns the folder. */
static char *write_sharded(void) {
    char *dir = ckpt_tmpdir("shard");
    char p[4096];
    ckpt_tensor s1[] = {{"x.weight", "BF16", 2, {4, 4}, NULL}, {"y.weight", "F32", 1, {3}, NULL}};
    ckpt_tensor s2[] = {{"z.weight", "F16", 1, {8}, NULL}};
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    CHECK(ckpt_write_safetensors(p, s1, 2) == 0);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(ckpt_write_safetensors(p, s2, 1) == 0);
    CHECK(ckpt_write_text(dir, "model.safetensors.index.json",
                          "{\"metadata\":{\"total_size\":60},\"weight_map\":{"
                          "\"x.weight\":\"model-00001-of-00002.safetensors\","
                          "\"y.weight\":\"model-00001-of-00002.safetensors\","
                          "\"z.weight\":\"model-00002-of-00002.safetensors\"}}") == 0);
    return dir;
}

TEST(sharded_ok) {
    char *dir = write_sharded();
    glmv_weights *w = NULL;
    int rc = glmv_weights_open(&w, dir, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (!rc) {
        CHECK_EQ_INT(glmv_weights_count(w), 3);
        glmv_tensor *z = glmv_weights_find(w, "z.weight");
        CHECK(z && z->dtype == GLMV_F16 && strstr(glmv_weights_file_of(w, z), "00002-of"));
    }
    glmv_weights_free(w);
    ckpt_rmdir(dir);
}

static void expect_open_fails(const char *dir, const char *want1, const char *want2) {
    glmv_weights *w = NULL;
    err[0] = 0;
    CHECK(glmv_weights_open(&w, dir, err) != 0 && !w);
    CHECK_MSG(err_has(want1, want2), "message \"%s\" lacks \"%s\" / \"%s\"", err, want1,
              want2 ? want2 : "");
}

TEST(sharded_missing_shard) {
    char *dir = write_sharded();
    char p[4096];
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    unlink(p);
    expect_open_fails(dir, "model-00002-of-00002.safetensors", "z.weight");
    ckpt_rmdir(dir);
}

TEST(sharded_truncated_shard) {
    char *dir = write_sharded();
    char p[4096];
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    struct stat sb;
    CHECK(stat(p, &sb) == 0);
    CHECK(truncate(p, sb.st_size - 5) == 0);
    expect_open_fails(dir, "model-00001-of-00002.safetensors", "truncated");
    /* truncated inside the header */
    CHECK(truncate(p, 20) == 0);
    expect_open_fails(dir, "model-00001-of-00002.safetensors", "header length");
    ckpt_rmdir(dir);
}

TEST(sharded_index_lies) {
    char *dir = write_sharded();
    /* names a tensor the shard does not hold */
    CHECK(ckpt_write_text(dir, "model.safetensors.index.json",
                          "{\"weight_map\":{\"x.weight\":\"model-00001-of-00002.safetensors\","
                          "\"w.weight\":\"model-00002-of-00002.safetensors\"}}") == 0);
    expect_open_fails(dir, "w.weight", "model-00002-of-00002.safetensors");
    /* says a tensor is in the wrong shard */
    CHECK(ckpt_write_text(dir, "model.safetensors.index.json",
                          "{\"weight_map\":{\"x.weight\":\"model-00002-of-00002.safetensors\","
                          "\"z.weight\":\"model-00001-of-00002.safetensors\"}}") == 0);
    expect_open_fails(dir, "model.safetensors.index.json", "x.weight");
    /* names a file that is not there */
    CHECK(ckpt_write_text(dir, "model.safetensors.index.json",
                          "{\"weight_map\":{\"x.weight\":\"model-00001-of-00002.safetensors\","
                          "\"q.weight\":\"model-00003-of-00002.safetensors\"}}") == 0);
    expect_open_fails(dir, "model-00003-of-00002.safetensors", "q.weight");
    /* a path outside the folder */
    CHECK(ckpt_write_text(dir, "model.safetensors.index.json",
                          "{\"weight_map\":{\"x.weight\":\"../etc/passwd\"}}") == 0);
    expect_open_fails(dir, "../etc/passwd", "x.weight");
    /* no weight_map, bad JSON, wrong types */
    CHECK(ckpt_write_text(dir, "model.safetensors.index.json", "{\"metadata\":{}}") == 0);
    expect_open_fails(dir, "model.safetensors.index.json", "weight_map");
    CHECK(ckpt_write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{") == 0);
    expect_open_fails(dir, "model.safetensors.index.json", "JSON");
    CHECK(ckpt_write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\"x.weight\":3}}") == 0);
    expect_open_fails(dir, "model.safetensors.index.json", "x.weight");
    /* the same tensor in two shards */
    char p[4096];
    ckpt_tensor dup[] = {{"x.weight", "BF16", 2, {4, 4}, NULL}};
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(ckpt_write_safetensors(p, dup, 1) == 0);
    CHECK(ckpt_write_text(dir, "model.safetensors.index.json",
                          "{\"weight_map\":{\"x.weight\":\"model-00001-of-00002.safetensors\","
                          "\"y.weight\":\"model-00002-of-00002.safetensors\"}}") == 0);
    expect_open_fails(dir, "x.weight", "also in");
    ckpt_rmdir(dir);
}

/* Random corruption of a valid file: every mutation either loads (and then
 * every tensor lies inside the file) or fails with one line. */
TEST(mutated_headers_never_crash) {
    glmv_config c;
    tiny_config(&c);
    c.num_hidden_layers = 1;
    c.v_depth = 1;
    glmv_weights *w = NULL;
    CHECK(glmv_weights_synthetic(&w, &c, 3, err) == 0);
    if (!w) return;
    char *dir = ckpt_tmpdir("mut");
    CHECK(ckpt_write_weights(dir, w, 1) == 0);
    glmv_weights_free(w);
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    size_t len;
    char *orig = glmv_read_file(p, &len, err);
    CHECK(orig != NULL);
    if (!orig) {
        ckpt_rmdir(dir);
        return;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | (unsigned char)orig[i];
    char *buf = malloc(len);
    uint64_t s = 12345;
    int n_ok = 0, n_bad = 0, iters = getenv("GLMV_SANITIZE") ? 300 : 2000;
    for (int it = 0; it < iters; it++) {
        memcpy(buf, orig, len);
        int muts = 1 + it % 3;
        for (int m = 0; m < muts; m++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = 8 + (size_t)((s >> 33) % hl);
            static const char digits[] = "0123456789,[]{}\":-.eE ";
            buf[at] = (s >> 20) & 1 ? digits[(s >> 24) % (sizeof digits - 1)] : (char)(s >> 40);
        }
        glmv_weights *x = NULL;
        err[0] = 0;
        if (glmv_weights_open_memory(&x, buf, len, "mut.safetensors", err) == 0) {
            n_ok++;
            for (int64_t i = 0; i < glmv_weights_count(x); i++) {
                glmv_tensor *t = glmv_weights_at(x, i);
                size_t bytes = (size_t)glmv_tensor_numel(t) * glmv_dtype_size(t->dtype);
                const char *b = t->host;
                CHECK(b >= buf + 8 + hl && b + bytes <= buf + len);
            }
        } else {
            n_bad++;
            CHECK_MSG(err[0] && !strchr(err, '\n') && strstr(err, "mut.safetensors"), "%s", err);
        }
        glmv_weights_free(x);
    }
    CHECK(n_bad > 0);
    printf("  mutations: %d loaded, %d refused\n", n_ok, n_bad);
    free(buf);
    free(orig);
    ckpt_rmdir(dir);
}

/* The tiny checkpoints made with transformers 5.17 (tests/fixtures/tiny*,
 * written by scripts/make_tiny_fixtures.py): the config loads, and the
 * checkpoint holds exactly the tensors the synthetic source derives from that
 * config, with the same shapes: names and shapes per GLM4V.md §2 agree with HF. */
TEST(hf_tiny_checkpoints_match_synthetic_layout) {
    static const char *dirs[] = {"tests/fixtures/tiny", "tests/fixtures/tiny2"};
    int seen = 0;
    for (int d = 0; d < 2; d++) {
        char p[512];
        snprintf(p, sizeof p, "%s/model.safetensors", dirs[d]);
        if (access(p, R_OK) != 0) continue;
        seen++;
        glmv_config c;
        int rc = glmv_config_load(&c, dirs[d], err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc) continue;
        glmv_weights *w = NULL, *s = NULL;
        rc = glmv_weights_open(&w, dirs[d], err);
        CHECK_MSG(rc == 0, "%s", err);
        c.num_hidden_layers = GLMV_MIN(c.num_hidden_layers, 64);
        CHECK_MSG(glmv_weights_synthetic(&s, &c, 1, err) == 0, "%s", err);
        if (w && s) {
            CHECK_EQ_INT(glmv_weights_count(w), glmv_weights_count(s));
            for (int64_t i = 0; i < glmv_weights_count(s); i++) {
                glmv_tensor *a = glmv_weights_at(s, i), *b = NULL;
                CHECK_MSG(glmv_weights_require(w, a->name, a->ndim, a->shape, &b, err) == 0,
                          "%s: %s", dirs[d], err);
            }
        }
        glmv_weights_free(w);
        glmv_weights_free(s);
    }
    if (!seen) test_skip("no tests/fixtures/tiny*/model.safetensors");
}

/* ---------------------------------------------------------------- through the model */

/* Copy the tiny2 checkpoint's config and weights into a temp folder, with
 * tensor `drop` left out, tensor `reshape` given its dims reversed, and every
 * tensor stored as dtype `as` ("BF16", "F16", "F32"); n_shards files. */
static char *tiny2_variant(const char *drop, const char *reshape, const char *as, int n_shards) {
    glmv_weights *w = NULL;
    if (glmv_weights_open(&w, "tests/fixtures/tiny2", err)) return NULL;
    char *dir = ckpt_tmpdir("tiny2");
    size_t len;
    char *cfg = glmv_read_file("tests/fixtures/tiny2/config.json", &len, err);
    if (cfg) ckpt_write_text(dir, "config.json", cfg);
    free(cfg);
    int64_t n = glmv_weights_count(w), k = 0;
    ckpt_tensor *ts = calloc((size_t)n, sizeof *ts);
    void **bufs = calloc((size_t)n, sizeof *bufs);
    for (int64_t i = 0; i < n; i++) {
        glmv_tensor *t = glmv_weights_at(w, i);
        if (drop && !strcmp(t->name, drop)) continue;
        ckpt_tensor *o = &ts[k++];
        o->name = t->name;
        o->dtype = as;
        o->ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++)
            o->shape[d] = reshape && !strcmp(t->name, reshape) ? t->shape[t->ndim - 1 - d] : t->shape[d];
        int64_t m = glmv_tensor_numel(t);
        int f32 = !strcmp(as, "F32");
        bufs[i] = malloc((size_t)(m ? m : 1) * (f32 ? 4 : 2));
        for (int64_t e = 0; e < m; e++) {
            float v = glmv_tensor_get(t, e);
            if (f32) ((float *)bufs[i])[e] = v;
            else ((uint16_t *)bufs[i])[e] = !strcmp(as, "F16") ? glmv_f32_to_f16(v) : glmv_f32_to_bf16(v);
        }
        o->data = bufs[i];
    }
    if (n_shards <= 1) {
        char p[4096];
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        ckpt_write_safetensors(p, ts, (int)k);
    } else {
        /* through ckpt_write_weights: build a weights table from the files just written */
        char *tmp = ckpt_tmpdir("tiny2single");
        char p[4096];
        snprintf(p, sizeof p, "%s/model.safetensors", tmp);
        ckpt_write_safetensors(p, ts, (int)k);
        glmv_weights *x = NULL;
        if (glmv_weights_open(&x, tmp, err) == 0) ckpt_write_weights(dir, x, n_shards);
        glmv_weights_free(x);
        ckpt_rmdir(tmp);
    }
    for (int64_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(ts);
    glmv_weights_free(w);
    return dir;
}

static int load_model(const char *dir) {
    glmv_model_params p;
    glmv_model_params_default(&p);
    p.n_threads = 1;
    p.device = GLMV_DEVICE_CPU;
    glmv_model *m = NULL;
    err[0] = 0;
    int rc = glmv_model_load(&m, dir, &p, err);
    glmv_model_free(m);
    return rc;
}

/* Issue 2 item 8 end to end: the model refuses a checkpoint with a missing
 * tensor, a tensor of the wrong shape, a missing or truncated shard, or an
 * inconsistent config, with one line naming the tensor, file or key; F16 and
 * F32 checkpoints load like BF16 ones. */
TEST(model_load_bad_checkpoints) {
    if (access("tests/fixtures/tiny2/model.safetensors", R_OK) != 0) {
        test_skip("no tests/fixtures/tiny2");
        return;
    }
    const char *k = "model.language_model.layers.1.self_attn.k_proj.weight";
    char *d = tiny2_variant(NULL, NULL, "BF16", 1);
    CHECK_MSG(load_model(d) == 0, "%s", err);
    ckpt_rmdir(d);
    d = tiny2_variant(NULL, NULL, "F16", 2);
    CHECK_MSG(load_model(d) == 0, "F16: %s", err);
    ckpt_rmdir(d);
    d = tiny2_variant(NULL, NULL, "F32", 1);
    CHECK_MSG(load_model(d) == 0, "F32: %s", err);
    ckpt_rmdir(d);

    d = tiny2_variant(k, NULL, "BF16", 1);
    CHECK(load_model(d) != 0);
    CHECK_MSG(err_has(k, "missing"), "%s", err);
    ckpt_rmdir(d);

    d = tiny2_variant(NULL, k, "BF16", 1);
    CHECK(load_model(d) != 0);
    CHECK_MSG(err_has(k, "[96, 32]") && strstr(err, "[32, 96]"), "%s", err);
    ckpt_rmdir(d);

    d = tiny2_variant(NULL, NULL, "BF16", 3);
    char p[4096];
    snprintf(p, sizeof p, "%s/model-00002-of-00003.safetensors", d);
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && truncate(p, sb.st_size - 1) == 0);
    CHECK(load_model(d) != 0);
    CHECK_MSG(err_has("model-00002-of-00003.safetensors", "truncated"), "%s", err);
    unlink(p);
    CHECK(load_model(d) != 0);
    CHECK_MSG(err_has("model-00002-of-00003.safetensors", "index"), "%s", err);
    ckpt_rmdir(d);

    d = tiny2_variant(NULL, NULL, "BF16", 1);
    size_t len;
    char *cfg = glmv_read_file("tests/fixtures/tiny2/config.json", &len, err);
    if (cfg) {
        /* 3 heads of 32 -> 2 heads of 48: caught by the config checks */
        char *h = strstr(cfg, "\"num_attention_heads\": 3");
        char *im = strstr(cfg, "\"intermediate_size\": 128");
        if (h && im) {
            h[strlen("\"num_attention_heads\": ")] = '2';
            ckpt_write_text(d, "config.json", cfg);
            CHECK(load_model(d) != 0);
            CHECK_MSG(err_has("config.json", "mrope_section"), "%s", err);
            h[strlen("\"num_attention_heads\": ")] = '3';
            /* a consistent config that does not match the weights */
            memcpy(im, "\"intermediate_size\": 129", strlen("\"intermediate_size\": 129"));
            ckpt_write_text(d, "config.json", cfg);
            CHECK(load_model(d) != 0);
            CHECK_MSG(err_has("gate_up_proj.weight", "[256, 96]") && strstr(err, "expected [258, 96]"), "%s", err);
        } else {
            CHECK_MSG(0, "tiny2 config.json lacks \"num_attention_heads\": 3 or \"intermediate_size\": 128");
        }
        free(cfg);
    }
    ckpt_rmdir(d);
}

int main(void) {
    RUN(single_file_round_trip);
    RUN(synthetic_single_round_trip);
    RUN(synthetic_sharded_round_trip);
    RUN(synthetic_has_every_tensor);
    RUN(synthetic_seed_changes_values);
    RUN(bad_offsets_past_file);
    RUN(bad_overlapping_ranges);
    RUN(bad_dtype);
    RUN(quantized_rows);
    RUN(bad_sizes);
    RUN(bad_header_itself);
    RUN(bad_folder);
    RUN(sharded_ok);
    RUN(sharded_missing_shard);
    RUN(sharded_truncated_shard);
    RUN(sharded_index_lies);
    RUN(mutated_headers_never_crash);
    RUN(hf_tiny_checkpoints_match_synthetic_layout);
    RUN(model_load_bad_checkpoints);
    return test_summary("safetensors");
}
