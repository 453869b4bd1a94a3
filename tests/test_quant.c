/* test_quant.c -- the Q8_0 / Q4_0 quantizers (src/quant.c) against blocks made by llama.cpp's
 * own quantizer from the same floats (tests/fixtures/quant, scripts/gen_quant_fixtures.py),
 * the dequantizers' error bounds, and quantizing a checkpoint tensor (threads, refusals).
 * The kernels that multiply by the blocks are tested in test_ops.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "base.h"
#include "gguf.h"
#include "model.h"
#include "quant.h"
#include "test.h"

#define FIX "tests/fixtures/quant/"
#define R 48
#define C 256

static void *load(const char *path, size_t want) {
    size_t n = 0;
    char err[GLMV_ERR_SIZE];
    char *p = glmv_read_file(path, &n, err);
    if (!p || n != want) {
        printf("  %s: %s (%zu bytes, want %zu)\n", path, p ? "wrong size" : err, n, want);
        free(p);
        return NULL;
    }
    return p;
}

static void same_blocks(glmv_dtype dt, const char *file) {
    size_t rb = glmv_dtype_row_bytes(dt, C);
    float *x = load(FIX "input_f32.bin", sizeof(float) * R * C);
    uint8_t *want = load(file, rb * R), *got = malloc(rb * R);
    CHECK(x && want);
    if (!x || !want) goto done;
    for (int r = 0; r < R; r++) {
        if (dt == GLMV_Q8_0) glmv_quantize_row_q8_0(x + r * C, (glmv_block_q8_0 *)(got + r * rb), C);
        else glmv_quantize_row_q4_0(x + r * C, (glmv_block_q4_0 *)(got + r * rb), C);
    }
    int bad = 0;
    for (int r = 0; r < R; r++)
        if (memcmp(got + r * rb, want + r * rb, rb)) {
            if (bad++ < 3) printf("  %s row %d differs from llama.cpp's blocks\n", glmv_dtype_name(dt), r);
        }
    CHECK_MSG(bad == 0, "%d of %d rows differ", bad, R);
done:
    free(x);
    free(want);
    free(got);
}

TEST(q8_0_blocks_are_llama_cpps) { same_blocks(GLMV_Q8_0, FIX "q8_0.bin"); }
TEST(q4_0_blocks_are_llama_cpps) { same_blocks(GLMV_Q4_0, FIX "q4_0.bin"); }

TEST(dequantized_error_bounds) {
    float *x = load(FIX "input_f32.bin", sizeof(float) * R * C), y[C];
    if (!x) { CHECK(x); return; }
    glmv_block_q8_0 q8[C / 32];
    glmv_block_q4_0 q4[C / 32];
    for (int r = 0; r < R; r++) {
        const float *v = x + r * C;
        glmv_quantize_row_q8_0(v, q8, C);
        glmv_dequantize_row_q8_0(q8, y, C);
        for (int b = 0; b < C / 32; b++) {
            float d = glmv_f16_to_f32(q8[b].d), amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[b * 32 + j]));
            /* half a step, the f16 rounding of the scale over up to 127 steps, and a scale
             * below f16's smallest (6e-8) flushing the block's values (< 127 x 6e-8) */
            int bad = 0;
            for (int j = 0; j < 32; j++)
                bad += !(fabsf(y[b * 32 + j] - v[b * 32 + j]) <= 0.5f * d + amax * 2e-3f + 1e-5f);
            CHECK_MSG(!bad, "q8_0 row %d block %d: %d values off (d %g)", r, b, bad, d);
        }
        glmv_quantize_row_q4_0(v, q4, C);
        glmv_dequantize_row_q4_0(q4, y, C);
        for (int b = 0; b < C / 32; b++) {
            float d = fabsf(glmv_f16_to_f32(q4[b].d)), amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[b * 32 + j]));
            /* 16 levels from -8d to 7d: the far side of the extreme clamps at 7d (an error of d) */
            int bad = 0;
            for (int j = 0; j < 32; j++)
                bad += !(fabsf(y[b * 32 + j] - v[b * 32 + j]) <= d + amax * 2e-3f + 1e-5f);
            CHECK_MSG(!bad, "q4_0 row %d block %d: %d values off (d %g)", r, b, bad, d);
        }
    }
    /* the element of largest magnitude comes back exactly (up to the f16 scale) in both */
    float one[32] = {0};
    one[7] = -0.75f;
    glmv_quantize_row_q4_0(one, q4, 32);
    glmv_dequantize_row_q4_0(q4, y, 32);
    CHECK(y[7] == -0.75f && y[0] == 0.0f);
    free(x);
}

TEST(tensor_quantize) {
    /* a BF16 tensor [70, 96] quantized on 1 and 3 threads: the same blocks as row by row */
    int64_t rows = 70, cols = 96;
    uint16_t *bf = malloc(sizeof(uint16_t) * (size_t)(rows * cols));
    float *f = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) {
        bf[i] = glmv_f32_to_bf16(sinf((float)i * 0.37f) * (1 + (i % 7)));
        f[i] = glmv_bf16_to_f32(bf[i]);
    }
    for (int d = 0; d < 2; d++) {
        glmv_dtype to = d ? GLMV_Q4_0 : GLMV_Q8_0;
        size_t rb = glmv_dtype_row_bytes(to, cols);
        uint8_t *want = malloc(rb * (size_t)rows);
        for (int64_t r = 0; r < rows; r++) {
            if (to == GLMV_Q8_0) glmv_quantize_row_q8_0(f + r * cols, (void *)(want + r * rb), cols);
            else glmv_quantize_row_q4_0(f + r * cols, (void *)(want + r * rb), cols);
        }
        for (int nt = 1; nt <= 3; nt += 2) {
            glmv_tensor t = {.name = "w", .dtype = GLMV_BF16, .ndim = 2, .shape = {rows, cols}, .data = bf, .host = bf};
            void *owned = NULL;
            char err[GLMV_ERR_SIZE];
            CHECK_EQ_INT(glmv_tensor_quantize(&t, to, nt, &owned, err), 0);
            CHECK(t.dtype == to && t.data == owned && t.host == owned);
            CHECK(owned && !memcmp(owned, want, rb * (size_t)rows));
            /* element access for references */
            CHECK(fabsf(glmv_tensor_get(&t, 5 * cols + 3) - f[5 * cols + 3]) < 0.1f * (1 + 6));
            float got[40];
            glmv_tensor_get_range(&t, 2 * cols + 80, 40, got); /* across a row boundary */
            float rowv[2 * 96];
            if (to == GLMV_Q8_0) glmv_dequantize_row_q8_0((void *)(want + 2 * rb), rowv, 2 * cols);
            else glmv_dequantize_row_q4_0((void *)(want + 2 * rb), rowv, 2 * cols);
            CHECK(!memcmp(got, rowv + 80, sizeof got));
            free(owned);
        }
        free(want);
    }
    /* refusals: a block that does not fit the row, already quantized, a 1-D tensor */
    char err[GLMV_ERR_SIZE];
    void *owned;
    glmv_tensor t = {.name = "odd", .dtype = GLMV_BF16, .ndim = 2, .shape = {2, 40}, .data = bf, .host = bf};
    CHECK(glmv_tensor_quantize(&t, GLMV_Q8_0, 1, &owned, err) != 0 && strstr(err, "blocks of 32"));
    t.shape[1] = 32;
    t.dtype = GLMV_Q8_0;
    CHECK(glmv_tensor_quantize(&t, GLMV_Q4_0, 1, &owned, err) != 0); /* already in blocks */
    t.dtype = GLMV_BF16;
    CHECK(glmv_tensor_quantize(&t, GLMV_Q4_K, 1, &owned, err) != 0 && strstr(err, "blocks of 256"));
    glmv_tensor one = {.name = "v", .dtype = GLMV_BF16, .ndim = 1, .shape = {64}, .data = bf, .host = bf};
    CHECK(glmv_tensor_quantize(&one, GLMV_Q8_0, 1, &owned, err) != 0);
    CHECK(glmv_tensor_quantize(&one, GLMV_F32, 1, &owned, err) != 0);
    free(bf);
    free(f);
}

/* glmv quantize (glmv_model_save): the tiny checkpoint quantized at load, written, read back
 * with the same bytes in every tensor; its decoder matrices, output matrix and token table are
 * the blocks llama.cpp made from the same weights (tests/fixtures/gguf, scripts/gen_gguf_fixtures.py:
 * Q8_0 by its converter, Q4_0 and Q4_K_M by llama-quantize; the GGUF reader undoes the
 * converter's row permutation of q/k, which moves whole rows of blocks). Without the fixtures:
 * SKIP. */
static glmv_model *load_cpu(const char *dir, glmv_quant q, char *err) {
    glmv_model_params mp;
    glmv_model_params_default(&mp);
    mp.device = GLMV_DEVICE_CPU;
    mp.quant = q;
    glmv_model *m = NULL;
    if (glmv_model_load(&m, dir, &mp, err)) {
        CHECK_MSG(0, "%s: %s", dir, err);
        return NULL;
    }
    return m;
}

static int same_tensor(const glmv_tensor *a, const glmv_tensor *b) {
    if (a->dtype != b->dtype || glmv_tensor_rows(a) != glmv_tensor_rows(b) || glmv_tensor_cols(a) != glmv_tensor_cols(b))
        return 0;
    size_t n = glmv_dtype_row_bytes(a->dtype, glmv_tensor_cols(a)) * (size_t)glmv_tensor_rows(a);
    return !memcmp(a->host, b->host, n);
}

static void saved_case(glmv_quant q, const char *gguf) {
    const char *src = "tests/fixtures/tiny";
    if (access(gguf, R_OK)) {
        test_skip("no GGUF fixtures");
        return;
    }
    char err[GLMV_ERR_SIZE], dir[] = "/tmp/glmv-quantize-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    glmv_model *m = load_cpu(src, q, err), *r = NULL, *g = NULL;
    if (m) CHECK_MSG(glmv_model_save(m, dir, err) == 0, "%s", err);
    if (m) r = load_cpu(dir, GLMV_QUANT_NONE, err);
    if (m && r) {
        int64_t n = glmv_weights_count(m->w), same = 0;
        CHECK_EQ_INT((int)glmv_weights_count(r->w), (int)n);
        for (int64_t i = 0; i < n; i++) {
            const glmv_tensor *a = glmv_weights_at(m->w, i), *b = glmv_weights_find(r->w, a->name);
            if (b && same_tensor(a, b)) same++;
            else CHECK_MSG(0, "%s differs after the round trip", a->name);
        }
        CHECK(same == n);
        /* llama.cpp's recipes: the output matrix Q8_0 or Q6_K, the token table in the format of
         * the matrices; the vision tower as it was */
        glmv_dtype head = q == GLMV_QUANT_Q8_0 ? GLMV_Q8_0 : GLMV_Q6_K;
        glmv_dtype table = q == GLMV_QUANT_Q8_0 ? GLMV_Q8_0 : q == GLMV_QUANT_Q4_0 ? GLMV_Q4_0 : GLMV_Q4_K;
        CHECK(glmv_dtype_is_quant(r->layers[0].q_w->dtype) && r->lm_head->dtype == head);
        CHECK(r->embed->dtype == table && r->blocks[0].qkv_w->dtype == GLMV_BF16);
        glmv_model_info info;
        glmv_model_get_info(r, &info);
        CHECK_MSG(strstr(info.quant, "glmv quantize") != NULL, "%s", info.quant);
        /* saving into the checkpoint's own folder is refused */
        CHECK(glmv_model_save(r, dir, err) != 0 && strstr(err, "own"));
    }
    if (r) g = load_cpu(gguf, GLMV_QUANT_NONE, err);
    if (r && g) {
        int matrices = 0;
        for (int l = 0; l < r->cfg.num_hidden_layers; l++) {
            const glmv_text_layer *a = &r->layers[l], *b = &g->layers[l];
            const glmv_tensor *pa[] = {a->q_w, a->k_w, a->v_w, a->o_w, a->gate_up, a->down};
            const glmv_tensor *pb[] = {b->q_w, b->k_w, b->v_w, b->o_w, b->gate_up, b->down};
            for (int i = 0; i < 6; i++) {
                CHECK_MSG(same_tensor(pa[i], pb[i]), "%s: not llama-quantize's blocks", pa[i]->name);
                matrices++;
            }
        }
        CHECK_EQ_INT(matrices, 6 * r->cfg.num_hidden_layers);
        /* the whole recipe: the output matrix and the token table too */
        CHECK_MSG(same_tensor(r->lm_head, g->lm_head), "lm_head: not llama-quantize's blocks");
        CHECK_MSG(same_tensor(r->embed, g->embed), "the token table: not llama-quantize's blocks");
    }
    glmv_model_free(g);
    glmv_model_free(r);
    glmv_model_free(m);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* Every tensor of llama-quantize's Q4_K_M file of the tiny model (Q4_K, Q6_K, and what its
 * recipe leaves in other formats) quantized again by glmv from the BF16 file it was made from:
 * the same bytes. */
TEST(k_quant_blocks_are_llama_quantizes) {
    const char *bf = "tests/fixtures/gguf/tiny-BF16.gguf", *qf = "tests/fixtures/gguf/tiny-Q4_K_M.gguf";
    if (access(bf, R_OK) || access(qf, R_OK)) {
        test_skip("no GGUF fixtures");
        return;
    }
    char err[GLMV_ERR_SIZE];
    glmv_gguf *gb = NULL, *gq = NULL;
    CHECK_MSG(glmv_gguf_open(&gb, bf, err) == 0 && glmv_gguf_open(&gq, qf, err) == 0, "%s", err);
    int seen[8] = {0}, bad = 0;
    for (int64_t i = 0; gb && gq && i < glmv_gguf_n_tensors(gq); i++) {
        const glmv_gguf_tensor *q = glmv_gguf_tensor_at(gq, i), *b = glmv_gguf_find_tensor(gb, q->name);
        glmv_dtype dt;
        if (q->type == GGML_Q4_K) dt = GLMV_Q4_K;
        else if (q->type == GGML_Q6_K) dt = GLMV_Q6_K;
        else if (q->type == GGML_Q5_0) dt = GLMV_Q5_0;
        else if (q->type == GGML_Q8_0) dt = GLMV_Q8_0;
        else if (q->type == GGML_Q4_0) dt = GLMV_Q4_0;
        else continue;
        CHECK_MSG(b && b->type == GGML_BF16, "%s: not BF16 in %s", q->name, bf);
        if (!b || b->type != GGML_BF16) continue;
        int64_t k = q->ne[0], rows = (int64_t)(b->bytes / 2 / (uint64_t)k);
        size_t rb = glmv_dtype_row_bytes(dt, k);
        float *row = malloc(sizeof(float) * (size_t)k);
        uint8_t *got = malloc(rb);
        int diff = 0;
        for (int64_t r = 0; r < rows; r++) {
            glmv_ggml_dequantize_row(GGML_BF16, (const uint16_t *)b->data + r * k, row, k);
            glmv_quantize_row(dt, row, got, k);
            diff += memcmp(got, (const uint8_t *)q->data + (size_t)r * rb, rb) != 0;
        }
        if (diff) printf("  %s (%s): %d of %lld rows differ\n", q->name, glmv_dtype_name(dt), diff, (long long)rows);
        bad += diff;
        seen[dt]++;
        free(row);
        free(got);
    }
    CHECK_EQ_INT(bad, 0);
    /* the recipe's two K formats are there: the token table, q, k, o and gate_up of both
     * layers, v and down of layer 0 in Q4_K; v and down of layer 1 and the output in Q6_K */
    CHECK_EQ_INT(seen[GLMV_Q4_K], 11);
    CHECK_EQ_INT(seen[GLMV_Q6_K], 3);
    glmv_gguf_free(gb);
    glmv_gguf_free(gq);
}

TEST(saved_q8_0_is_llama_quantize) { saved_case(GLMV_QUANT_Q8_0, "tests/fixtures/gguf/tiny-Q8_0.gguf"); }
TEST(saved_q4_0_is_llama_quantize) { saved_case(GLMV_QUANT_Q4_0, "tests/fixtures/gguf/tiny-Q4_0.gguf"); }
TEST(saved_q4_k_m_is_llama_quantize) { saved_case(GLMV_QUANT_Q4_K_M, "tests/fixtures/gguf/tiny-Q4_K_M.gguf"); }

/* activations for the decode products: scale amax/127 per block, nearest integer, a zero
 * block stays zero; and the scalar product against a hand-made Q8_0/Q4_0 row */
TEST(activations_q8) {
    float x[64], d[2];
    int8_t q[64];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) * 0.25f; /* amax 4: step 4/127 */
    x[5] = -4.0f;
    for (int j = 32; j < 64; j++) x[j] = 0.0f;
    glmv_quantize_x_q8(x, q, d, 64);
    CHECK(d[0] == 4.0f / 127.0f && d[1] == 0.0f);
    CHECK_EQ_INT(q[5], -127);
    CHECK_EQ_INT(q[16], 0);
    CHECK_EQ_INT(q[17], 8);  /* 0.25 * 127/4 = 7.94 -> 8 */
    CHECK_EQ_INT(q[31], 119); /* 3.75 * 31.75 = 119.06 */
    int bad = 0;
    for (int j = 32; j < 64; j++) bad |= q[j] != 0;
    CHECK(!bad);
    glmv_block_q8_0 w8[2];
    glmv_block_q4_0 w4[2];
    for (int b = 0; b < 2; b++) {
        w8[b].d = w4[b].d = glmv_f32_to_f16(0.5f);
        for (int j = 0; j < 32; j++) w8[b].qs[j] = (int8_t)(j % 3 - 1);
        for (int j = 0; j < 16; j++) w4[b].qs[j] = (uint8_t)(9 | 7 << 4); /* +1 low, -1 high */
    }
    double want8 = 0, want4 = 0;
    for (int j = 0; j < 32; j++) {
        want8 += 0.5 * d[0] * (j % 3 - 1) * q[j];
        want4 += 0.5 * d[0] * (j < 16 ? 1 : -1) * q[j];
    }
    CHECK(glmv_dot_q8x_ref(w8, GLMV_Q8_0, q, d, 64) == want8);
    CHECK(glmv_dot_q8x_ref(w4, GLMV_Q4_0, q, d, 64) == want4);
}

TEST(row_bytes) {
    CHECK_EQ_INT(glmv_dtype_row_bytes(GLMV_Q8_0, 4096), 128 * 34);
    CHECK_EQ_INT(glmv_dtype_row_bytes(GLMV_Q4_0, 4096), 128 * 18);
    CHECK_EQ_INT(glmv_dtype_row_bytes(GLMV_BF16, 4096), 8192);
    CHECK_EQ_STR(glmv_dtype_name(GLMV_Q4_0), "Q4_0");
}

int main(void) {
    RUN(q8_0_blocks_are_llama_cpps);
    RUN(q4_0_blocks_are_llama_cpps);
    RUN(dequantized_error_bounds);
    RUN(tensor_quantize);
    RUN(activations_q8);
    RUN(row_bytes);
    RUN(k_quant_blocks_are_llama_quantizes);
    RUN(saved_q8_0_is_llama_quantize);
    RUN(saved_q4_0_is_llama_quantize);
    RUN(saved_q4_k_m_is_llama_quantize);
    return test_summary("quant");
}
