/* test_cuda.c -- every op of the CUDA backend against the CPU reference
 * (src/cpu/ref.c) on fresh random inputs, by NMSE, with thresholds per path:
 *   fp32 kernels (norms, rope, elementwise, gemv, split attention)  1e-10
 *   BF16 weights through cuBLAS (activations rounded to bf16)       1e-5
 *   tensor-core flash attention (q, k, v, p rounded to bf16)        2e-4
 * Outputs are poisoned (NaN) before each op, so an unwritten element fails.
 * Without GLMV_CUDA, or without a GPU, every test prints SKIP.
 *
 * `test_cuda --bench` times the ops on the 9B shapes instead (decode
 * matrix-vector GB/s, prefill/vision GEMM TFLOP/s, attention);
 * `test_cuda --bench-model` times the model's op sequences (decode step,
 * 512-token prefill, vision tower) with synthetic BF16 weights; `--bench-quant` the quantized
 * products at 1 to 256 rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cpu/ref.h"
#include "model.h"
#include "ops.h"
#include "quant.h"
#include "test.h"

#ifdef GLMV_CUDA

static glmv_backend *be;         /* bf16 precision (the CUDA default) */
static glmv_backend *be_f32;     /* f32 precision */
static glmv_backend *be_kvf32;   /* bf16 precision with float32 KV caches (GLMV_KV_BF16=0) */
static char be_err[GLMV_ERR_SIZE];

/* ---- random data: xorshift, fresh per call ---- */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static float *rand_buf(int64_t n, float amp) {
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = frand() * amp;
    return p;
}

/* a host tensor of random values (rounded to its dtype), 2-D [r, c] or 1-D [r] */
static glmv_tensor make_tensor(glmv_dtype dt, int64_t r, int64_t c, float amp) {
    glmv_tensor t;
    memset(&t, 0, sizeof t);
    t.name = "test";
    t.dtype = dt;
    t.ndim = c ? 2 : 1;
    t.shape[0] = r;
    t.shape[1] = c;
    int64_t n = r * (c ? c : 1);
    void *p = malloc(glmv_dtype_size(dt) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        float v = frand() * amp;
        if (dt == GLMV_F32) ((float *)p)[i] = v;
        else if (dt == GLMV_BF16) ((uint16_t *)p)[i] = glmv_f32_to_bf16(v);
        else ((uint16_t *)p)[i] = glmv_f32_to_f16(v);
    }
    t.data = t.host = p;
    return t;
}
/* upload a copy; returns the device-side tensor (host bytes shared) */
static glmv_tensor dev_tensor(const glmv_tensor *h) {
    glmv_tensor d = *h;
    d.data = d.host;
    char err[GLMV_ERR_SIZE] = "";
    int rc = be->upload(be, &d, err);
    if (rc) printf("  upload failed: %s\n", err);
    GLMV_ASSERT(rc == 0);
    return d;
}
static void free_tensor(glmv_tensor *h, glmv_tensor *d) {
    if (d) be->free(be, d->data);
    free(h->host);
}

static float *dev_from(const float *h, int64_t n) {
    float *d = be->alloc(be, sizeof(float) * (size_t)(n ? n : 1));
    GLMV_ASSERT(d);
    be->write(be, d, h, sizeof(float) * (size_t)n);
    return d;
}
static float *dev_poison(int64_t n) {
    float *d = be->alloc(be, sizeof(float) * (size_t)(n ? n : 1));
    GLMV_ASSERT(d);
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = NAN;
    be->write(be, d, p, sizeof(float) * (size_t)n);
    free(p);
    return d;
}
static float *host_of(const float *d, int64_t n) {
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    be->read(be, h, d, sizeof(float) * (size_t)n);
    return h;
}
/* A KV cache of n elements holding h in be's cache format: where that is bf16, h is rounded
 * to bf16 values first (in place, so that references see what the cache holds). */
static void *cache_from(float *h, int64_t n) {
    if (!be->caps.kv_bf16) return dev_from(h, n);
    uint16_t *b = malloc(2 * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        b[i] = glmv_f32_to_bf16(h[i]);
        h[i] = glmv_bf16_to_f32(b[i]);
    }
    void *d = be->alloc(be, 2 * (size_t)(n ? n : 1));
    GLMV_ASSERT(d);
    be->write(be, d, b, 2 * (size_t)n);
    free(b);
    return d;
}
/* a cache's n elements as floats */
static float *cache_host(const void *d, int64_t n) {
    if (!be->caps.kv_bf16) return host_of(d, n);
    uint16_t *b = malloc(2 * (size_t)(n ? n : 1));
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    be->read(be, b, d, 2 * (size_t)n);
    for (int64_t i = 0; i < n; i++) h[i] = glmv_bf16_to_f32(b[i]);
    free(b);
    return h;
}
/* x rounded to what be's caches hold, in place */
static void cache_round(float *x, int64_t n) {
    if (be->caps.kv_bf16)
        for (int64_t i = 0; i < n; i++) x[i] = glmv_bf16_to_f32(glmv_f32_to_bf16(x[i]));
}

/* compare device result with the reference; prints the NMSE */
static void expect(const char *what, const float *dev, const float *ref, int64_t n, double thr) {
    float *got = host_of(dev, n);
    double e = test_nmse(got, ref, n);
    int finite = 1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(got[i])) finite = 0;
    printf("  %-44s nmse %.3g (max %.0e)\n", what, e, thr);
    CHECK_MSG(finite && e <= thr, "%s: nmse %.3g > %.1g or not finite", what, e, thr);
    char err[GLMV_ERR_SIZE] = "";
    CHECK_MSG(be->status(be, err) == 0, "%s", err);
    free(got);
}

#define NEED_GPU() \
    do { if (!be) { test_skip(be_err); return; } } while (0)

/* ------------------------------------------------------------------ tests */

/* One product on the device against the reference: w [n, k] of dt (amplitude 0.5), a bias of
 * bias_dt (used when with_bias), x [m, k]; the device buffers stay for further checks
 * (mm_case_free). label names the case in the NMSE line. */
typedef struct {
    glmv_tensor w, b, dw, db;
    float *x, *ref, *dx, *dy;
} mm_case;

static void mm_case_run(mm_case *c, const char *label, glmv_dtype dt, glmv_dtype bias_dt, int64_t m, int64_t n,
                        int64_t k, int with_bias, double thr) {
    c->w = make_tensor(dt, n, k, 0.5f);
    c->b = make_tensor(bias_dt, n, 0, 1.0f);
    c->dw = dev_tensor(&c->w);
    c->db = dev_tensor(&c->b);
    c->x = rand_buf(m * k, 1.0f);
    c->ref = malloc(sizeof(float) * (size_t)(m * n));
    glmv_ref_matmul(c->ref, c->x, &c->w, with_bias ? &c->b : NULL, m);
    c->dx = dev_from(c->x, m * k);
    c->dy = dev_poison(m * n);
    be->matmul(be, c->dy, c->dx, &c->dw, with_bias ? &c->db : NULL, m);
    char what[96];
    snprintf(what, sizeof what, "%s m=%lld n=%lld k=%lld%s", label, (long long)m, (long long)n, (long long)k,
             with_bias ? " +bias" : "");
    expect(what, c->dy, c->ref, m * n, thr);
}

static void mm_case_free(mm_case *c) {
    be->free(be, c->dx);
    be->free(be, c->dy);
    free(c->x);
    free(c->ref);
    free_tensor(&c->w, &c->dw);
    free_tensor(&c->b, &c->db);
}

static void one_matmul(glmv_dtype dt, int64_t m, int64_t n, int64_t k, int with_bias,
                       double thr) {
    char label[32];
    snprintf(label, sizeof label, "matmul %s", glmv_dtype_name(dt));
    mm_case c;
    mm_case_run(&c, label, dt, GLMV_F32, m, n, k, with_bias, thr);
    mm_case_free(&c);
}

TEST(matmul_bf16_gemv) {
    NEED_GPU();
    one_matmul(GLMV_BF16, 1, 300, 256, 1, 1e-10);   /* block-per-row, 16-byte loads */
    one_matmul(GLMV_BF16, 3, 77, 100, 0, 1e-10);    /* k % 8 != 0: scalar path */
    one_matmul(GLMV_BF16, 8, 2000, 512, 1, 1e-10);  /* warp-per-row */
    one_matmul(GLMV_BF16, 5, 1500, 13696 / 8, 0, 1e-10);
    one_matmul(GLMV_BF16, 1, 5003, 264, 1, 1e-10);  /* many row blocks, odd count */
    one_matmul(GLMV_BF16, 2, 4500, 96, 0, 1e-10);
}

TEST(matmul_bf16_cublas) {
    NEED_GPU();
    one_matmul(GLMV_BF16, 37, 200, 264, 1, 1e-5);
    one_matmul(GLMV_BF16, 130, 512, 1024, 0, 1e-5);
    one_matmul(GLMV_BF16, 9, 33, 40, 1, 1e-5);
    /* a prompt's rows (128 and more) with a bias: added in cuBLASLt's epilogue, F32 and BF16 biases */
    one_matmul(GLMV_BF16, 300, 512, 1024, 1, 1e-5);
    mm_case c;
    mm_case_run(&c, "matmul BF16, BF16 bias", GLMV_BF16, GLMV_BF16, 257, 4608, 1536, 1, 1e-5);
    mm_case_free(&c);
}

/* The rows of several streams' decode (8 < m <= 16) through the tensor-core matrix-vector kernel:
 * against the reference (x rounded to bf16, so the cuBLAS bound), and every row the same floats
 * whatever the number of rows (9 to 16) beside it, so that within that range a sequence's tokens
 * do not depend on how many others run with it in a step. with_bias 2: a BF16 bias. */
static void one_skinny(int64_t m, int64_t n, int64_t k, int with_bias) {
    mm_case c;
    mm_case_run(&c, "skinny", GLMV_BF16, with_bias == 2 ? GLMV_BF16 : GLMV_F32, m, n, k, with_bias, 1e-5);
    float *all = host_of(c.dy, m * n);
    static const int64_t fewer[] = {9, 12, 15};
    for (int i = 0; i < 3; i++) {
        int64_t mm = fewer[i];
        if (mm >= m) continue;
        float *dy2 = dev_poison(mm * n);
        be->matmul(be, dy2, c.dx + (m - mm) * k, &c.dw, with_bias ? &c.db : NULL, mm); /* the last mm rows */
        float *part = host_of(dy2, mm * n);
        CHECK_MSG(!memcmp(part, all + (m - mm) * n, sizeof(float) * (size_t)(mm * n)),
                  "skinny n=%lld k=%lld: %lld rows of %lld are not the same floats alone", (long long)n, (long long)k,
                  (long long)mm, (long long)m);
        be->free(be, dy2);
        free(part);
    }
    free(all);
    mm_case_free(&c);
}

/* write_bf16: a host array of bf16 values lands as their floats, bit for bit (the token rows of a
 * table kept on the host), through the scratch, also after the scratch was used for more */
TEST(write_bf16) {
    NEED_GPU();
    static const int64_t counts[] = {1, 4096, 3 * 4096 + 5, 600 * 4096};
    for (int i = 0; i < 4; i++) {
        int64_t n = counts[i];
        uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n);
        float *want = malloc(sizeof(float) * (size_t)n);
        for (int64_t j = 0; j < n; j++) {
            h[j] = (uint16_t)(j * 2654435761u >> 7); /* inf, subnormals, -0 among them */
            if ((h[j] & 0x7f80) == 0x7f80 && (h[j] & 0x7f)) h[j] &= 0xff80; /* no NaN: inf instead */
            uint32_t u = (uint32_t)h[j] << 16;
            memcpy(&want[j], &u, 4);
        }
        float *dy = dev_poison(n);
        be->write_bf16(be, dy, h, n);
        memset(h, 0, sizeof(uint16_t) * (size_t)n); /* the host array is free once the call returns */
        float *got = host_of(dy, n);
        CHECK_MSG(!memcmp(got, want, sizeof(float) * (size_t)n), "write_bf16 of %lld values", (long long)n);
        be->free(be, dy);
        free(got);
        free(want);
        free(h);
    }
}

/* write_lut: patch rows as the pixels' bytes land as glmv_patch_expand's floats, bit for bit, for
 * counts of whole rows and not, at an offset into the destination (a later run of segments), and
 * the host's bytes and table are free once the call returns */
TEST(write_lut) {
    NEED_GPU();
    static const int64_t counts[] = {1, 5, 1176 * 7 + 3, 6400 * 1176};
    glmv_image_params ip;
    glmv_image_params_default(&ip);
    glmv_patch_lut lut;
    glmv_patch_lut_init(&ip, &lut);
    for (int i = 0; i < 4; i++) {
        const int64_t n = counts[i], off = i == 2 ? 1176 : 0;
        uint8_t *h = malloc((size_t)n);
        float *want = malloc(sizeof(float) * (size_t)n);
        for (int64_t j = 0; j < n; j++) h[j] = (uint8_t)(j * 2654435761u >> 13);
        glmv_patch_expand(h, n, 392, &lut, want);
        glmv_patch_lut t = lut;
        float *dy = dev_poison(n + off);
        be->write_lut(be, dy + off, h, n, 392, t.v[0], 3);
        memset(h, 0, (size_t)n);
        memset(&t, 0, sizeof t);
        float *got = host_of(dy, n + off);
        CHECK_MSG(!memcmp(got + off, want, sizeof(float) * (size_t)n), "write_lut of %lld values", (long long)n);
        for (int64_t j = 0; j < off; j++) CHECK_MSG(isnan(got[j]), "write_lut wrote before its destination (%lld)", (long long)j);
        be->free(be, dy);
        free(got);
        free(want);
        free(h);
    }
}

/* rope_table_2d: the vision tower's rotation tables made on the GPU from each coordinate's values
 * are glmv_rope_vision_table's floats, bit for bit, for a few grids' merge-block coordinates (the
 * host's arrays cleared after the call) */
TEST(rope_table_2d) {
    NEED_GPU();
    static const int grids[][2] = {{2, 2}, {80, 80}, {6, 148}, {150, 4}};
    for (int g = 0; g < 4; g++) {
        const int gh = grids[g][0], gw = grids[g][1], hd = 128, nf = hd / 4, nv = GLMV_MAX(gh, gw);
        const int64_t n = (int64_t)gh * gw;
        int32_t *hp = malloc(sizeof(int32_t) * (size_t)n), *wp = malloc(sizeof(int32_t) * (size_t)n);
        int64_t r = 0;
        for (int bh = 0; bh < gh / 2; bh++)
            for (int bw = 0; bw < gw / 2; bw++)
                for (int mh = 0; mh < 2; mh++)
                    for (int mw = 0; mw < 2; mw++, r++) hp[r] = 2 * bh + mh, wp[r] = 2 * bw + mw;
        float *wc = malloc(sizeof(float) * (size_t)(n * 2 * nf)), *ws = malloc(sizeof(float) * (size_t)(n * 2 * nf));
        float *tc = malloc(sizeof(float) * (size_t)(nv * nf)), *ts = malloc(sizeof(float) * (size_t)(nv * nf));
        glmv_rope_vision_table(hd, 10000.0, hp, wp, n, wc, ws);
        glmv_rope_vision_values(hd, 10000.0, nv, tc, ts);
        float *dc = dev_poison(n * 2 * nf), *ds = dev_poison(n * 2 * nf);
        be->rope_table_2d(be, dc, ds, tc, ts, nv, hp, wp, n, nf);
        memset(hp, 0, sizeof(int32_t) * (size_t)n);
        memset(tc, 0, sizeof(float) * (size_t)(nv * nf));
        float *gc = host_of(dc, n * 2 * nf), *gs = host_of(ds, n * 2 * nf);
        CHECK_MSG(!memcmp(gc, wc, sizeof(float) * (size_t)(n * 2 * nf)) && !memcmp(gs, ws, sizeof(float) * (size_t)(n * 2 * nf)),
                  "rope_table_2d of a %dx%d grid", gh, gw);
        be->free(be, dc);
        be->free(be, ds);
        free(gc), free(gs), free(wc), free(ws), free(tc), free(ts), free(hp), free(wp);
    }
}

TEST(matmul_skinny) {
    NEED_GPU();
    one_skinny(16, 300, 256, 1);      /* 16-row blocks, the last one part */
    one_skinny(16, 4608, 4096, 1);    /* q/k/v of the 9B */
    one_skinny(13, 1000, 32, 0);      /* one chunk: seven warps with none */
    one_skinny(14, 40000, 96, 1);     /* 32-row blocks (many of them) */
    one_skinny(16, 27392, 4096, 2);   /* gate/up of the 9B: 32-row blocks, many chunks a warp, a BF16 bias */
    one_skinny(10, 512, 13696, 0);    /* down_proj's width */
}

/* matmul_swiglu: bit for bit swiglu then matmul (the SwiGLU rounded straight into the GEMM's
 * bf16 input, or the two ops where the product is the matrix-vector kernel's), gate and up
 * interleaved as the decoder's [gate | up] rows, with and without a bias; and the reference's
 * values within the bf16 bound */
static void one_matmul_swiglu(int64_t m, int64_t n, int64_t k, int with_bias) {
    glmv_tensor w = make_tensor(GLMV_BF16, n, k, 0.5f), b = make_tensor(GLMV_F32, n, 0, 1.0f);
    glmv_tensor dw = dev_tensor(&w), db = dev_tensor(&b);
    float *gu = rand_buf(m * 2 * k, 3.0f), *h = malloc(sizeof(float) * (size_t)(m * k));
    float *ref = malloc(sizeof(float) * (size_t)(m * n));
    glmv_ref_swiglu(h, gu, 2 * k, gu + k, 2 * k, m, k);
    glmv_ref_matmul(ref, h, &w, with_bias ? &b : NULL, m);
    float *dgu = dev_from(gu, m * 2 * k), *dh = dev_poison(m * k), *dy = dev_poison(m * n), *dy2 = dev_poison(m * n);
    be->matmul_swiglu(be, dy, dgu, 2 * k, dgu + k, 2 * k, dh, &dw, with_bias ? &db : NULL, m);
    be->swiglu(be, dh, dgu, 2 * k, dgu + k, 2 * k, m, k);
    be->matmul(be, dy2, dh, &dw, with_bias ? &db : NULL, m);
    float *a = host_of(dy, m * n), *c2 = host_of(dy2, m * n);
    CHECK_MSG(!memcmp(a, c2, sizeof(float) * (size_t)(m * n)), "matmul_swiglu m=%lld n=%lld k=%lld is not swiglu, "
              "matmul bit for bit", (long long)m, (long long)n, (long long)k);
    char what[96];
    snprintf(what, sizeof what, "matmul_swiglu m=%lld n=%lld k=%lld%s", (long long)m, (long long)n, (long long)k,
             with_bias ? " +bias" : "");
    expect(what, dy, ref, m * n, 1e-5);
    be->free(be, dgu);
    be->free(be, dh);
    be->free(be, dy);
    be->free(be, dy2);
    free(a), free(c2), free(gu), free(h), free(ref);
    free_tensor(&w, &dw);
    free_tensor(&b, &db);
}

TEST(matmul_swiglu) {
    NEED_GPU();
    one_matmul_swiglu(512, 300, 1000, 0); /* the GEMM, the SwiGLU rounded into its input */
    one_matmul_swiglu(77, 129, 264, 1);
    one_matmul_swiglu(3, 200, 256, 1);    /* the matrix-vector kernel */
    one_matmul_swiglu(16, 300, 256, 1);   /* the tensor-core matrix-vector kernel */
}

/* be->mlp (a prompt's whole MLP, the gate/up product written in bf16): against the reference with
 * the same roundings (x, gate/up + bias and the SwiGLU's output to bf16; in double otherwise), within
 * 1e-5 (an accumulation order may flip a rounding), and against the ops apart (the float32 gate/up
 * product, then matmul_swiglu) within the bf16 bound; declined with y untouched for the decode
 * rows, F32 weights and f32 precision */
static float bf(float v) { return glmv_bf16_to_f32(glmv_f32_to_bf16(v)); }
static void one_mlp(int64_t m, int64_t I, int64_t k, int64_t H, int with_bias) {
    glmv_tensor wgu = make_tensor(GLMV_BF16, 2 * I, k, 0.5f), wd = make_tensor(GLMV_BF16, H, I, 0.5f);
    glmv_tensor bgu = make_tensor(GLMV_BF16, 2 * I, 0, 1.0f), bd = make_tensor(GLMV_BF16, H, 0, 1.0f);
    glmv_tensor dgu = dev_tensor(&wgu), dwd = dev_tensor(&wd), dbgu = dev_tensor(&bgu), dbd = dev_tensor(&bd);
    const glmv_tensor *pb = with_bias ? &dbgu : NULL, *pbd = with_bias ? &dbd : NULL;
    float *x = rand_buf(m * k, 1.0f), *ref = malloc(sizeof(float) * (size_t)(m * H));
    float *wg = malloc(sizeof(float) * (size_t)(2 * I * k)), *wdf = malloc(sizeof(float) * (size_t)(H * I));
    float *hr = malloc(sizeof(float) * (size_t)I), *xr = malloc(sizeof(float) * (size_t)k);
    for (int64_t i = 0; i < 2 * I * k; i++) wg[i] = glmv_tensor_get(&wgu, i);
    for (int64_t i = 0; i < H * I; i++) wdf[i] = glmv_tensor_get(&wd, i);
    for (int64_t r = 0; r < m; r++) {
        for (int64_t j = 0; j < k; j++) xr[j] = bf(x[r * k + j]);
        for (int64_t j = 0; j < I; j++) {
            double g = with_bias ? glmv_tensor_get(&bgu, j) : 0, u = with_bias ? glmv_tensor_get(&bgu, I + j) : 0;
            for (int64_t e = 0; e < k; e++) {
                g += (double)xr[e] * wg[j * k + e];
                u += (double)xr[e] * wg[(I + j) * k + e];
            }
            const float gf = bf((float)g), uf = bf((float)u);
            hr[j] = bf(gf / (1.0f + expf(-gf)) * uf);
        }
        for (int64_t o = 0; o < H; o++) {
            double acc = with_bias ? glmv_tensor_get(&bd, o) : 0;
            for (int64_t j = 0; j < I; j++) acc += (double)hr[j] * wdf[o * I + j];
            ref[r * H + o] = (float)acc;
        }
    }
    float *dx = dev_from(x, m * k), *dy = dev_poison(m * H), *sc = dev_poison(m * 2 * I), *dy2 = dev_poison(m * H);
    float *gu2 = dev_poison(m * 2 * I), *h2 = dev_poison(m * I);
    const int rc = be->mlp(be, dy, dx, &dgu, pb, &dwd, pbd, sc, m);
    char what[96];
    snprintf(what, sizeof what, "mlp m=%lld I=%lld k=%lld H=%lld%s", (long long)m, (long long)I, (long long)k,
             (long long)H, with_bias ? " +bias" : "");
    if (m <= 8) { /* the decode rows' products: declined */
        float *got = host_of(dy, m * H);
        int untouched = 1;
        for (int64_t i = 0; i < m * H; i++) untouched &= isnan(got[i]);
        CHECK_MSG(rc == 1 && untouched, "%s: not declined untouched", what);
        free(got);
    } else {
        CHECK_MSG(rc == 0, "%s: declined", what);
        expect(what, dy, ref, m * H, 1e-5);
        be->matmul(be, gu2, dx, &dgu, pb, m); /* the ops apart: float32 gate/up */
        be->matmul_swiglu(be, dy2, gu2, 2 * I, gu2 + I, 2 * I, h2, &dwd, pbd, m);
        float *a = host_of(dy, m * H), *b = host_of(dy2, m * H);
        const double e = test_nmse(a, b, m * H);
        printf("  %-44s against the ops apart: nmse %.3g\n", what, e);
        CHECK_MSG(e < 1e-4 && e > 0, "%s: nmse %.3g against the ops apart (bf16 gate/up: above 0, within 1e-4)",
                  what, e);
        free(a), free(b);
    }
    float *bufs[] = {dx, dy, sc, dy2, gu2, h2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->free(be, bufs[i]);
    free(x), free(ref), free(wg), free(wdf), free(hr), free(xr);
    free_tensor(&wgu, &dgu);
    free_tensor(&wd, &dwd);
    free_tensor(&bgu, &dbgu);
    free_tensor(&bd, &dbd);
}

TEST(mlp) {
    NEED_GPU();
    CHECK(be->mlp != NULL);
    if (!be->mlp) return;
    one_mlp(40, 384, 256, 128, 1);
    one_mlp(300, 1024, 1536, 256, 0);
    one_mlp(17, 100, 96, 72, 1); /* rows of 100: the SwiGLU's scalar path */
    one_mlp(8, 256, 256, 64, 0); /* decode rows: declined */
    /* F32 weights, and f32 precision: declined */
    glmv_tensor w = make_tensor(GLMV_F32, 64, 32, 0.5f), dw = dev_tensor(&w);
    float *dx = dev_poison(32 * 32), *dy = dev_poison(32 * 32), *sc = dev_poison(32 * 64);
    CHECK(be->mlp(be, dy, dx, &dw, NULL, &dw, NULL, sc, 32) == 1);
    if (be_f32 && be_f32->mlp) {
        glmv_tensor h = make_tensor(GLMV_BF16, 64, 32, 0.5f), d2 = h;
        d2.data = d2.host;
        char err[GLMV_ERR_SIZE] = "";
        CHECK(be_f32->upload(be_f32, &d2, err) == 0);
        float *fx = be_f32->alloc(be_f32, 4 * 32 * 32), *fy = be_f32->alloc(be_f32, 4 * 32 * 32),
              *fs = be_f32->alloc(be_f32, 4 * 32 * 64);
        CHECK(be_f32->mlp(be_f32, fy, fx, &d2, NULL, &d2, NULL, fs, 32) == 1);
        be_f32->free(be_f32, fx), be_f32->free(be_f32, fy), be_f32->free(be_f32, fs), be_f32->free(be_f32, d2.data);
        free(h.host);
    }
    be->free(be, dx), be->free(be, dy), be->free(be, sc);
    free_tensor(&w, &dw);
}

/* What one matmul_glu call must have done: declined (rc 1) with h untouched (dh2 still as
 * poisoned), or done (rc 0) with h bit for bit matmul into [gate | up] then swiglu where exact,
 * and within thr of the reference ref */
static void glu_outcome(const char *what, int rc, int declined, int exact, int64_t m, int64_t I, float *dh,
                        float *dh2, float *dgu, float *dx, const glmv_tensor *dw, const float *ref, double thr) {
    if (declined) {
        float *h = host_of(dh, m * I), *p = host_of(dh2, m * I);
        CHECK_MSG(rc == 1 && !memcmp(h, p, sizeof(float) * (size_t)(m * I)), "%s: not declined untouched", what);
        free(h), free(p);
        return;
    }
    CHECK_MSG(rc == 0, "%s: declined", what);
    be->matmul(be, dgu, dx, dw, NULL, m);
    be->swiglu(be, dh2, dgu, 2 * I, dgu + I, 2 * I, m, I);
    float *a = host_of(dh, m * I), *b = host_of(dh2, m * I);
    if (exact)
        CHECK_MSG(!memcmp(a, b, sizeof(float) * (size_t)(m * I)), "%s is not matmul, swiglu bit for bit", what);
    expect(what, dh, ref, m * I, thr);
    free(a), free(b);
}

/* matmul_glu (a decode step's gate/up product and SwiGLU in one kernel): bit for bit matmul into
 * [gate | up] and then swiglu where the matrix-vector kernel takes a warp a row (2I >= 8 rows a
 * multiprocessor), the reference's values within the bf16 bound otherwise too; rows it does not
 * take (more than the matrix-vector kernel's) are declined, nothing written */
static void one_matmul_glu(int64_t m, int64_t I, int64_t k, int exact) {
    glmv_tensor w = make_tensor(GLMV_BF16, 2 * I, k, 0.5f), dw = dev_tensor(&w);
    float *x = rand_buf(m * k, 1.0f), *gu = malloc(sizeof(float) * (size_t)(m * 2 * I));
    float *ref = malloc(sizeof(float) * (size_t)(m * I));
    glmv_ref_matmul(gu, x, &w, NULL, m);
    glmv_ref_swiglu(ref, gu, 2 * I, gu + I, 2 * I, m, I);
    float *dx = dev_from(x, m * k), *dh = dev_poison(m * I), *dgu = dev_poison(m * 2 * I), *dh2 = dev_poison(m * I);
    int rc = be->matmul_glu(be, dh, dx, &dw, m);
    char what[96];
    snprintf(what, sizeof what, "matmul_glu m=%lld I=%lld k=%lld", (long long)m, (long long)I, (long long)k);
    glu_outcome(what, rc, m > 8, exact, m, I, dh, dh2, dgu, dx, &dw, ref, 1e-5);
    be->free(be, dx);
    be->free(be, dh);
    be->free(be, dgu);
    be->free(be, dh2);
    free(x), free(gu), free(ref);
    free_tensor(&w, &dw);
}

TEST(matmul_glu) {
    NEED_GPU();
    CHECK(be->matmul_glu != NULL);
    if (!be->matmul_glu) return;
    one_matmul_glu(1, 1370, 4096, 1); /* a block's last columns past I */
    one_matmul_glu(3, 2048, 264, 1);
    one_matmul_glu(8, 1370, 1000, 1); /* (exact where 2I >= 8 rows a multiprocessor: up to 342 of them) */
    one_matmul_glu(2, 50, 256, 0);    /* few rows: the product alone takes 8 warps a row */
    one_matmul_glu(9, 600, 256, 0);   /* declined */
}

/* a host tensor [n, k] of random values quantized to dt (its blocks owned by .host) */
static glmv_tensor make_quant(glmv_dtype dt, int64_t n, int64_t k, float amp, int threads) {
    glmv_tensor w = make_tensor(GLMV_F32, n, k, amp);
    void *plain = w.host, *blocks = NULL;
    char err[GLMV_ERR_SIZE] = "";
    GLMV_ASSERT(glmv_tensor_quantize(&w, dt, threads, &blocks, err) == 0);
    free(plain);
    return w;
}

/* be->pos_embed (the default; GLMV_CUDA_POS_EMBED=0: none): the position table resampled on the
 * GPU, bit for bit the host's glmv_vision_pos_embed, for the 9B tower's table (24 x 24 x 1536) at
 * the grids of a 1120x1120 image, a small one, a tall strip and a square one, in BF16, F16 and
 * F32; a table it cannot read (a block format) declined with nothing written */
static void one_pos_embed(glmv_backend *pb, glmv_dtype dt, int gh, int gw) {
    static glmv_model m; /* what glmv_vision_pos_embed and glmv_vision_pos_coefs read */
    memset(&m, 0, sizeof m);
    m.cfg.v_image_size = 336;
    m.cfg.v_patch_size = 14;
    m.cfg.v_hidden_size = 1536;
    m.cfg.v_spatial_merge_size = 2;
    const int S = 24, Hv = 1536;
    glmv_tensor t = make_tensor(dt, S * S, Hv, 1.0f), dt2 = t;
    dt2.data = dt2.host;
    char err[GLMV_ERR_SIZE] = "";
    GLMV_ASSERT(pb->upload(pb, &dt2, err) == 0);
    m.pos_embed = &dt2; /* (its host bytes for the host's resample) */
    const int64_t n = (int64_t)gh * gw * Hv;
    float *want = malloc(sizeof(float) * (size_t)n), *coef = malloc(sizeof(float) * 4 * (size_t)(gw + gh));
    int *idx = malloc(sizeof(int) * (size_t)(gw + gh));
    GLMV_ASSERT(glmv_vision_pos_embed(&m, gh, gw, want, 2) == 0);
    glmv_vision_pos_coefs(&m, gh, gw, coef, idx);
    float *d = pb->alloc(pb, sizeof(float) * (size_t)n);
    GLMV_ASSERT(d);
    const int rc = pb->pos_embed(pb, d, &dt2, S, 2, gh, gw, coef, idx);
    float *got = malloc(sizeof(float) * (size_t)n);
    pb->read(pb, got, d, sizeof(float) * (size_t)n);
    CHECK_MSG(rc == 0 && !memcmp(got, want, sizeof(float) * (size_t)n), "pos_embed %s %dx%d: not the host's floats",
              glmv_dtype_name(dt), gh, gw);
    CHECK_MSG(pb->status(pb, err) == 0, "%s", err);
    printf("  pos_embed %-4s %3dx%-3d: the host's floats bit for bit\n", glmv_dtype_name(dt), gh, gw);
    pb->free(pb, d);
    pb->free(pb, dt2.data);
    free(t.host), free(want), free(coef), free(idx), free(got);
}

TEST(pos_embed) {
    NEED_GPU();
    char err[GLMV_ERR_SIZE] = "";
    char *keep = getenv("GLMV_CUDA_POS_EMBED") ? strdup(getenv("GLMV_CUDA_POS_EMBED")) : NULL;
    setenv("GLMV_CUDA_POS_EMBED", "0", 1); /* the host's resample, as asked */
    glmv_backend *pb = glmv_cuda_backend_new(0, 1, err);
    CHECK_MSG(pb && !pb->pos_embed, "GLMV_CUDA_POS_EMBED=0 left pos_embed on (%s)", err);
    if (pb) pb->destroy(pb);
    unsetenv("GLMV_CUDA_POS_EMBED"); /* the default: on the GPU */
    pb = glmv_cuda_backend_new(0, 1, err);
    if (keep) setenv("GLMV_CUDA_POS_EMBED", keep, 1);
    free(keep);
    CHECK_MSG(pb && pb->pos_embed, "no backend with pos_embed: %s", err);
    if (!pb || !pb->pos_embed) {
        if (pb) pb->destroy(pb);
        return;
    }
    one_pos_embed(pb, GLMV_BF16, 80, 80); /* a 1120x1120 image */
    one_pos_embed(pb, GLMV_BF16, 4, 6);
    one_pos_embed(pb, GLMV_F16, 200, 2);
    one_pos_embed(pb, GLMV_F32, 24, 24);
    /* a block-format table: declined */
    glmv_tensor q = make_quant(GLMV_Q8_0, 576, 64, 1.0f, 2), dq = q;
    dq.data = dq.host;
    GLMV_ASSERT(pb->upload(pb, &dq, err) == 0);
    float coef[16] = {0};
    int idx[4] = {0};
    float *d = pb->alloc(pb, sizeof(float) * 4 * 64);
    CHECK(pb->pos_embed(pb, d, &dq, 24, 2, 2, 2, coef, idx) == 1);
    pb->free(pb, d);
    pb->free(pb, dq.data);
    free(q.host);
    pb->destroy(pb);
}

/* matmul_glu on Q8_0 / Q4_0 weights (k_gemv_q_glu): x rounded to int8 once, each row summed as
 * the quantized matrix-vector kernel sums it, so bit for bit matmul and then swiglu where that
 * kernel takes a warp a row (2I >= 8 rows a multiprocessor), and against the scalar int8 product
 * (glmv_dot_q8x_ref on x rounded as the CPU rounds it) then the SwiGLU; other formats, and more
 * rows than the one-row kernel's, are declined with nothing written */
static void one_matmul_glu_q(glmv_dtype dt, int64_t m, int64_t I, int64_t k, int exact) {
    glmv_tensor w = make_quant(dt, 2 * I, k, 0.5f, 2), dw = dev_tensor(&w);
    float *x = rand_buf(m * k, 1.0f), *gu = malloc(sizeof(float) * (size_t)(m * 2 * I));
    float *ref = malloc(sizeof(float) * (size_t)(m * I));
    int8_t *q = malloc((size_t)k);
    float *d = malloc(sizeof(float) * (size_t)(k / 32));
    size_t rb = glmv_dtype_row_bytes(dt, k);
    for (int64_t i = 0; i < m; i++) {
        glmv_quantize_x_q8(x + i * k, q, d, k);
        for (int64_t o = 0; o < 2 * I; o++)
            gu[i * 2 * I + o] = (float)glmv_dot_q8x_ref((const char *)w.host + o * rb, dt, q, d, k);
    }
    glmv_ref_swiglu(ref, gu, 2 * I, gu + I, 2 * I, m, I);
    float *dx = dev_from(x, m * k), *dh = dev_poison(m * I), *dgu = dev_poison(m * 2 * I), *dh2 = dev_poison(m * I);
    int rc = be->matmul_glu(be, dh, dx, &dw, m);
    char what[96];
    snprintf(what, sizeof what, "matmul_glu %s m=%lld I=%lld k=%lld", glmv_dtype_name(dt), (long long)m,
             (long long)I, (long long)k);
    glu_outcome(what, rc, m > 8 || (dt != GLMV_Q8_0 && dt != GLMV_Q4_0), exact, m, I, dh, dh2, dgu, dx, &dw, ref,
                1e-10);
    be->free(be, dx);
    be->free(be, dh);
    be->free(be, dgu);
    be->free(be, dh2);
    free(x), free(gu), free(ref), free(q), free(d);
    free_tensor(&w, &dw);
}

TEST(matmul_glu_quant) {
    NEED_GPU();
    if (!be->matmul_glu) return;
    for (int q4 = 0; q4 < 2; q4++) {
        glmv_dtype dt = q4 ? GLMV_Q4_0 : GLMV_Q8_0;
        one_matmul_glu_q(dt, 1, 1370, 4096, 1); /* a block's last columns past I */
        one_matmul_glu_q(dt, 3, 2048, 256, 1);
        one_matmul_glu_q(dt, 8, 1370, 1024, 1);
        one_matmul_glu_q(dt, 1, 700, 13696, 1); /* the 9B's down_proj width: 428 blocks a row */
        one_matmul_glu_q(dt, 2, 50, 256, 0);    /* few rows: the product alone takes 8 warps a row */
        one_matmul_glu_q(dt, 9, 600, 256, 0);   /* declined: the tensor-core kernel's rows */
    }
    one_matmul_glu_q(GLMV_Q4_K, 1, 600, 256, 0); /* declined: the K formats go product, then SwiGLU */
}

/* One row x through Q8_0 / Q4_0 weights with R = 2 or 4 weight rows a warp (GLMV_CUDA_QROWS):
 * bit for bit the warp-a-row kernel's product (R = 1), and its gate/up + SwiGLU; rows and columns
 * past a warp's last, chunks fewer than lanes, the down_proj width, a bias */
static void one_qrows(glmv_dtype dt, int64_t n, int64_t k, int with_bias) {
    glmv_tensor w = make_quant(dt, n, k, 0.5f, 2), dw = dev_tensor(&w), b = make_tensor(GLMV_F32, n, 0, 1.0f),
                db = dev_tensor(&b);
    float *x = rand_buf(k, 1.0f), *dx = dev_from(x, k);
    float *y[3], *h[3];
    int rc[3];
    static const char *rs[] = {"1", "2", "4"};
    for (int i = 0; i < 3; i++) {
        setenv("GLMV_CUDA_QROWS", rs[i], 1);
        float *dy = dev_poison(n), *dh = dev_poison(n / 2);
        be->matmul(be, dy, dx, &dw, with_bias ? &db : NULL, 1);
        rc[i] = be->matmul_glu ? be->matmul_glu(be, dh, dx, &dw, 1) : 1;
        y[i] = host_of(dy, n), h[i] = host_of(dh, n / 2);
        be->free(be, dy);
        be->free(be, dh);
    }
    unsetenv("GLMV_CUDA_QROWS");
    for (int i = 1; i < 3; i++) {
        CHECK_MSG(!memcmp(y[0], y[i], sizeof(float) * (size_t)n), "%s %lldx%lld%s: %s rows a warp not bit for bit one",
                  glmv_dtype_name(dt), (long long)n, (long long)k, with_bias ? " +bias" : "", rs[i]);
        CHECK_MSG(rc[i] == rc[0] && (rc[0] || !memcmp(h[0], h[i], sizeof(float) * (size_t)(n / 2))),
                  "%s %lldx%lld: gate/up + SwiGLU with %s rows a warp not bit for bit one", glmv_dtype_name(dt),
                  (long long)n, (long long)k, rs[i]);
    }
    for (int i = 0; i < 3; i++) free(y[i]), free(h[i]);
    be->free(be, dx);
    free(x);
    free_tensor(&w, &dw);
    free_tensor(&b, &db);
}

TEST(matmul_quant_rows) {
    NEED_GPU();
    for (int q4 = 0; q4 < 2; q4++) {
        glmv_dtype dt = q4 ? GLMV_Q4_0 : GLMV_Q8_0;
        one_qrows(dt, 2742, 4096, 1);  /* a block's last rows past n (2742 = 85 x 32 + 22) */
        one_qrows(dt, 1100, 96, 0);    /* fewer chunks than lanes */
        one_qrows(dt, 1222, 13696, 1); /* the 9B's down_proj width */
        one_qrows(dt, 34, 512, 0);     /* few rows: the product keeps 8 warps a row, gate/up takes R */
    }
}

/* With block-format weights loaded, norm_add_norm of up to 8 rows also rounds its output to int8
 * blocks, and the quantized product (or gate/up + SwiGLU) that reads those rows right after takes
 * them instead of rounding them again: bit for bit what the product gives on a copy of the rows
 * (which it rounds itself), the norm's own outputs still rmsnorm, add, rmsnorm bit for bit; and
 * rows changed after the norm (a kernel, a write from the host) are rounded afresh */
static void one_norm_fold(glmv_dtype qt, int64_t n, int64_t d) {
    const int64_t N = 640, I = 320; /* the product's rows; gate/up's columns */
    glmv_tensor w = make_quant(qt, N, d, 0.5f, 2), dw = dev_tensor(&w);
    glmv_tensor gu = make_quant(qt, 2 * I, d, 0.5f, 2), dgu = dev_tensor(&gu);
    glmv_tensor w1 = make_tensor(GLMV_F32, d, 0, 1.0f), w2 = make_tensor(GLMV_BF16, d, 0, 1.0f);
    glmv_tensor d1 = dev_tensor(&w1), d2 = dev_tensor(&w2);
    float *x = rand_buf(n * d, 3.0f), *t = rand_buf(n * d, 3.0f), *other = rand_buf(n * d, 2.0f);
    float *dx = dev_from(x, n * d), *dtin = dev_from(t, n * d), *dy = dev_poison(n * d), *cp = dev_poison(n * d);
    float *ux = dev_from(x, n * d), *ut = dev_poison(n * d), *uy = dev_poison(n * d);
    float *ya = dev_poison(n * N), *yb = dev_poison(n * N), *ha = dev_poison(n * I), *hb = dev_poison(n * I);
    const size_t row_b = sizeof(float) * (size_t)(n * d);
    char what[128];
    /* the norm, then the product on its rows; the same product on a copy of them */
    be->norm_add_norm(be, dx, dy, dtin, &d1, &d2, n, d, 1e-5f);
    be->matmul(be, ya, dy, &dw, NULL, n);
    be->copy(be, cp, dy, row_b);
    be->matmul(be, yb, cp, &dw, NULL, n);
    be->rmsnorm(be, ut, dtin, &d1, n, d, 1e-5f);
    be->add(be, ux, ux, ut, n * d);
    be->rmsnorm(be, uy, ux, &d2, n, d, 1e-5f);
    snprintf(what, sizeof what, "%s %lldx%lld: norm_add_norm then matmul", glmv_dtype_name(qt), (long long)n,
             (long long)d);
    float *a = host_of(ya, n * N), *b = host_of(yb, n * N), *p = host_of(dy, n * d), *q = host_of(uy, n * d);
    CHECK_MSG(!memcmp(a, b, sizeof(float) * (size_t)(n * N)), "%s: not the product of the rows bit for bit", what);
    CHECK_MSG(!memcmp(p, q, row_b), "%s: the norm's output is not rmsnorm, add, rmsnorm bit for bit", what);
    free(a), free(b), free(p), free(q);
    /* the same for gate/up and the SwiGLU */
    be->norm_add_norm(be, dx, dy, dtin, &d1, &d2, n, d, 1e-5f);
    int rc = be->matmul_glu ? be->matmul_glu(be, ha, dy, &dgu, n) : 1;
    be->copy(be, cp, dy, row_b);
    int rc2 = be->matmul_glu ? be->matmul_glu(be, hb, cp, &dgu, n) : 1;
    CHECK_MSG(rc == rc2, "%s: matmul_glu taken once, declined once", what);
    if (!rc) {
        a = host_of(ha, n * I), b = host_of(hb, n * I);
        CHECK_MSG(!memcmp(a, b, sizeof(float) * (size_t)(n * I)), "%s: matmul_glu not bit for bit", what);
        free(a), free(b);
    }
    /* rows changed after the norm: by a kernel, by a write from the host */
    for (int how = 0; how < 2; how++) {
        be->norm_add_norm(be, dx, dy, dtin, &d1, &d2, n, d, 1e-5f);
        if (how == 0) be->add(be, dy, dy, dtin, n * d);
        else be->write(be, dy, other, row_b);
        be->matmul(be, ya, dy, &dw, NULL, n);
        be->copy(be, cp, dy, row_b);
        be->matmul(be, yb, cp, &dw, NULL, n);
        a = host_of(ya, n * N), b = host_of(yb, n * N);
        CHECK_MSG(!memcmp(a, b, sizeof(float) * (size_t)(n * N)), "%s: rows changed by %s after the norm: stale rounding",
                  what, how ? "a write" : "a kernel");
        free(a), free(b);
    }
    float *bufs[] = {dx, dtin, dy, cp, ux, ut, uy, ya, yb, ha, hb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->free(be, bufs[i]);
    free(x), free(t), free(other);
    free_tensor(&w, &dw);
    free_tensor(&gu, &dgu);
    free_tensor(&w1, &d1);
    free_tensor(&w2, &d2);
}

/* In bf16 precision (unless GLMV_CUDA_BFOLD=0) a norm of more than 8 rows also writes them in bf16,
 * and the BF16 product that reads those rows right after takes them instead of converting them:
 * bit for bit the product on a
 * copy of the rows (which it converts itself), with and without a bias, after rmsnorm and after
 * norm_add_norm; taken once (a second product of the same rows converts them); and rows changed
 * after the norm (a kernel, a write from the host, a product writing them) are converted afresh */
static void one_norm_bf16_fold(int64_t n, int64_t d, int with_bias) {
    glmv_tensor w = make_tensor(GLMV_BF16, d, d, 0.5f), dw = dev_tensor(&w); /* square: a product can write x */
    glmv_tensor bias = make_tensor(GLMV_F32, d, 0, 1.0f), db = dev_tensor(&bias);
    glmv_tensor w1 = make_tensor(GLMV_F32, d, 0, 1.0f), w2 = make_tensor(GLMV_BF16, d, 0, 1.0f);
    glmv_tensor d1 = dev_tensor(&w1), d2 = dev_tensor(&w2);
    const glmv_tensor *bp = with_bias ? &db : NULL;
    float *x = rand_buf(n * d, 3.0f), *t = rand_buf(n * d, 3.0f), *other = rand_buf(n * d, 2.0f);
    float *dx = dev_from(x, n * d), *dtin = dev_from(t, n * d), *dy = dev_poison(n * d), *cp = dev_poison(n * d);
    float *ya = dev_poison(n * d), *yb = dev_poison(n * d), *yc = dev_poison(n * d);
    const size_t bytes = sizeof(float) * (size_t)(n * d);
    for (int how = 0; how < 6; how++) {
        /* 0 rmsnorm, 1 norm_add_norm: the product on the norm's rows, twice; 2 a kernel, 3 a write,
           4 a product changes the rows before the product reads them; 5 another product between */
        if (how == 1) be->norm_add_norm(be, dx, dy, dtin, &d1, &d2, n, d, 1e-5f);
        else be->rmsnorm(be, dy, dtin, &d1, n, d, 1e-5f);
        if (how == 2) be->add(be, dy, dy, dtin, n * d);
        if (how == 3) be->write(be, dy, other, bytes);
        if (how == 4) be->matmul(be, dy, dtin, &dw, bp, n);
        if (how == 5) be->matmul(be, yc, dtin, &dw, bp, n);
        be->matmul(be, ya, dy, &dw, bp, n);
        be->matmul(be, yc, dy, &dw, bp, n); /* the same rows again: converted by the product */
        be->copy(be, cp, dy, bytes);
        be->matmul(be, yb, cp, &dw, bp, n);
        float *a = host_of(ya, n * d), *b = host_of(yb, n * d), *c2 = host_of(yc, n * d);
        CHECK_MSG(!memcmp(a, b, bytes) && !memcmp(c2, b, bytes), "%lldx%lld%s, case %d: the product of a norm's rows "
                  "is not the product of a copy of them bit for bit", (long long)n, (long long)d,
                  with_bias ? " +bias" : "", how);
        free(a), free(b), free(c2);
    }
    /* the norm's outputs are still its own (norm_add_norm adds into x: the sum starts from x as it is now) */
    float *ux = dev_poison(n * d), *ut = dev_poison(n * d), *uy = dev_poison(n * d);
    be->copy(be, ux, dx, bytes);
    be->norm_add_norm(be, dx, dy, dtin, &d1, &d2, n, d, 1e-5f);
    be->rmsnorm(be, ut, dtin, &d1, n, d, 1e-5f);
    be->add(be, ux, ux, ut, n * d);
    be->rmsnorm(be, uy, ux, &d2, n, d, 1e-5f);
    float *p = host_of(dy, n * d), *q = host_of(uy, n * d);
    CHECK_MSG(!memcmp(p, q, bytes), "%lldx%lld: norm_add_norm not rmsnorm, add, rmsnorm bit for bit", (long long)n,
              (long long)d);
    free(p), free(q);
    float *bufs[] = {dx, dtin, dy, cp, ya, yb, yc, ux, ut, uy};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->free(be, bufs[i]);
    free(x), free(t), free(other);
    free_tensor(&w, &dw);
    free_tensor(&bias, &db);
    free_tensor(&w1, &d1);
    free_tensor(&w2, &d2);
}

TEST(norm_bf16_fold) {
    NEED_GPU();
    one_norm_bf16_fold(8, 256, 0);    /* the matrix-vector kernel's rows: no fold */
    one_norm_bf16_fold(9, 256, 1);    /* the skinny kernel's */
    one_norm_bf16_fold(16, 1024, 0);
    one_norm_bf16_fold(200, 1536, 1); /* cuBLAS */
    one_norm_bf16_fold(513, 96, 0);   /* rows not a multiple of 4 wide: the norms' scalar path */
    one_norm_bf16_fold(64, 100, 1);
}

TEST(norm_quant_fold) {
    NEED_GPU();
    one_norm_fold(GLMV_Q8_0, 1, 4096);
    one_norm_fold(GLMV_Q4_0, 1, 4096);
    one_norm_fold(GLMV_Q8_0, 3, 256);
    one_norm_fold(GLMV_Q4_0, 8, 1024);
    one_norm_fold(GLMV_Q8_0, 2, 96);   /* d not a multiple of 128: rounded by the product */
    one_norm_fold(GLMV_Q4_0, 12, 512); /* more rows than the one-row kernel's: the tensor-core kernel */
}

/* Block-format weights (Q8_0 / Q4_0 split into values and scales on upload; Q5_0 / Q6_K split
 * into their fields, Q4_K as it is). Decode rows (up to 16; Q8_0 and Q4_0 up to 64, the tensor-core
 * kernel's default bound, mmq.cu) against the scalar int8 product glmv_dot_q8x_ref on x rounded as
 * the CPU rounds it (the
 * GPU must round every activation the same way and sum each block exactly: one int8 off
 * in a row costs ~1e-6 of NMSE, far above the bound); more rows against the float product
 * of the dequantized weights (bf16 inputs in bf16 precision, exact in f32). */
static void one_matmul_q(glmv_dtype dt, int64_t m, int64_t n, int64_t k, int with_bias, double thr) {
    glmv_tensor w = make_quant(dt, n, k, 0.5f, 2), b = make_tensor(GLMV_F32, n, 0, 1.0f);
    glmv_tensor dw = dev_tensor(&w), db = dev_tensor(&b);
    float *x = rand_buf(m * k, 1.0f), *ref = malloc(sizeof(float) * (size_t)(m * n));
    if (m <= 16 || ((dt == GLMV_Q8_0 || dt == GLMV_Q4_0) && m <= 64)) { /* the backend's int8 cut-overs */
        int8_t *q = malloc((size_t)k);
        float *d = malloc(sizeof(float) * (size_t)(k / 32));
        size_t rb = glmv_dtype_row_bytes(dt, k);
        for (int64_t i = 0; i < m; i++) {
            glmv_quantize_x_q8(x + i * k, q, d, k);
            for (int64_t o = 0; o < n; o++)
                ref[i * n + o] = (float)(glmv_dot_q8x_ref((const char *)w.host + o * rb, dt, q, d, k) +
                                         (with_bias ? ((float *)b.host)[o] : 0.0));
        }
        free(q);
        free(d);
    } else { /* glmv_ref_matmul's product, each weight row dequantized once */
        float *row = malloc(sizeof(float) * (size_t)k);
        size_t rb = glmv_dtype_row_bytes(dt, k);
        for (int64_t o = 0; o < n; o++) {
            glmv_dequantize_range(dt, (const char *)w.host + o * rb, 0, k, row);
            for (int64_t i = 0; i < m; i++) {
                double acc = with_bias ? ((float *)b.host)[o] : 0.0;
                for (int64_t j = 0; j < k; j++) acc += (double)x[i * k + j] * row[j];
                ref[i * n + o] = (float)acc;
            }
        }
        free(row);
    }
    float *dx = dev_from(x, m * k), *dy = dev_poison(m * n);
    be->matmul(be, dy, dx, &dw, with_bias ? &db : NULL, m);
    char what[96];
    snprintf(what, sizeof what, "matmul %s m=%lld n=%lld k=%lld%s", glmv_dtype_name(dt), (long long)m,
             (long long)n, (long long)k, with_bias ? " +bias" : "");
    expect(what, dy, ref, m * n, thr);
    be->free(be, dx);
    be->free(be, dy);
    free(x);
    free(ref);
    free_tensor(&w, &dw);
    free_tensor(&b, &db);
}

TEST(matmul_quant_decode) {
    NEED_GPU();
    for (int q4 = 0; q4 < 2; q4++) {
        glmv_dtype dt = q4 ? GLMV_Q4_0 : GLMV_Q8_0;
        one_matmul_q(dt, 1, 300, 256, 1, 1e-10);     /* a block of 8 warps per row */
        one_matmul_q(dt, 3, 77, 96, 0, 1e-10);       /* fewer chunks than lanes */
        one_matmul_q(dt, 8, 2000, 512, 1, 1e-10);    /* a warp per row */
        one_matmul_q(dt, 5, 1500, 13696, 0, 1e-10);  /* the 9B's down_proj width */
        one_matmul_q(dt, 1, 5003, 4096, 1, 1e-10);   /* many rows, odd count */
        one_matmul_q(dt, 2, 4500, 32, 0, 1e-10);     /* one block per row */
        one_matmul_q(dt, 12, 1100, 512, 1, 1e-10);   /* batched decode: groups of 8 and 4 rows */
        one_matmul_q(dt, 16, 700, 256, 0, 1e-10);
    }
    /* Q5_0 (blocks of 32), Q4_K and Q6_K (super-blocks of 256) */
    for (int f = 0; f < 3; f++) {
        glmv_dtype dt = f == 0 ? GLMV_Q5_0 : f == 1 ? GLMV_Q4_K : GLMV_Q6_K;
        one_matmul_q(dt, 1, 300, 256, 1, 1e-10);    /* a block of 8 warps per row, one super-block */
        one_matmul_q(dt, 3, 77, 512, 0, 1e-10);
        one_matmul_q(dt, 8, 2000, 1024, 1, 1e-10);  /* a warp per row */
        one_matmul_q(dt, 1, 5003, 4096, 1, 1e-10);  /* many rows, odd count */
        one_matmul_q(dt, 12, 1100, 512, 1, 1e-10);  /* batched decode: groups of 8 and 4 rows */
        one_matmul_q(dt, 16, 700, 2304, 0, 1e-10);
    }
    one_matmul_q(GLMV_Q5_0, 5, 1500, 13696, 0, 1e-10); /* the 9B's down_proj width (Q4_K_M's Q5_0) */
}

/* The tensor-core kernel for several streams' rows of Q8_0 / Q4_0 (mmq.cu): against the int8
 * reference (one_matmul_q), across its block shapes, k splits and tiles of x; then each row's
 * floats the same whatever rows come beside it, and the same twice (the split counters reset). */
static void mmq_invariant(glmv_dtype dt, int64_t n, int64_t k) {
    glmv_tensor w = make_quant(dt, n, k, 0.5f, 2), b = make_tensor(GLMV_F32, n, 0, 1.0f);
    glmv_tensor dw = dev_tensor(&w), db = dev_tensor(&b);
    const int64_t big = 64, rows[] = {9, 17, 40, big}; /* 2, 3, 5 and 8 tiles of x */
    float *x = rand_buf(big * k, 1.0f), *dx = dev_from(x, big * k), *dy = dev_poison(big * n);
    float *want = NULL;
    for (int i = 0; i < 4; i++) {
        be->matmul(be, dy, dx, &dw, &db, rows[i]);
        float *got = host_of(dy, rows[0] * n);
        if (!want) want = got;
        else {
            CHECK_MSG(!memcmp(got, want, sizeof(float) * (size_t)(rows[0] * n)),
                      "mmq %s n=%lld k=%lld: the first 9 rows differ with %lld rows beside them", glmv_dtype_name(dt),
                      (long long)n, (long long)k, (long long)rows[i]);
            free(got);
        }
    }
    be->matmul(be, dy, dx, &dw, &db, rows[0]); /* again: the counters were left at zero */
    float *again = host_of(dy, rows[0] * n);
    CHECK_MSG(!memcmp(again, want, sizeof(float) * (size_t)(rows[0] * n)), "mmq %s n=%lld k=%lld: not the same twice",
              glmv_dtype_name(dt), (long long)n, (long long)k);
    be->free(be, dx);
    be->free(be, dy);
    free(x), free(want), free(again);
    free_tensor(&w, &dw);
    free_tensor(&b, &db);
}

TEST(matmul_mmq) {
    NEED_GPU();
    for (int q4 = 0; q4 < 2; q4++) {
        glmv_dtype dt = q4 ? GLMV_Q4_0 : GLMV_Q8_0;
        one_matmul_q(dt, 9, 300, 4096, 1, 1e-10);    /* 10 blocks of 32 rows, the last part; k split 4 ways */
        one_matmul_q(dt, 33, 4096, 4096, 0, 1e-10);  /* o_proj of the 9B: 128 blocks of 32 rows; 5 tiles of x */
        one_matmul_q(dt, 64, 1100, 13696, 1, 1e-10); /* down_proj's width, k split; 8 tiles of x (the bound) */
        one_matmul_q(dt, 17, 27392, 512, 0, 1e-10);  /* 128-row blocks */
        one_matmul_q(dt, 64, 77, 96, 1, 1e-10);      /* 3 blocks of 32 a row, one block of rows */
        one_matmul_q(dt, 40, 640, 256, 0, 1e-10);
        mmq_invariant(dt, 300, 4096);               /* k split */
        mmq_invariant(dt, 40000, 96);               /* 128-row blocks, not split */
        mmq_invariant(dt, 4096, 4096);              /* 32-row blocks (the 9B's o_proj) */
    }
}

TEST(matmul_quant_prefill) {
    NEED_GPU();
    glmv_backend *keep = be;
    for (int f32 = 0; f32 < 2; f32++) {
        if (f32 && !be_f32) break;
        be = f32 ? be_f32 : keep;
        double thr = f32 ? 1e-10 : 1e-5;
        /* Q8_0 / Q4_0: more rows than the tensor-core kernel takes (128) */
        one_matmul_q(GLMV_Q8_0, 137, 200, 256, 1, thr);
        one_matmul_q(GLMV_Q4_0, 137, 200, 256, 1, thr);
        one_matmul_q(GLMV_Q8_0, 130, 512, 1024, 0, thr);
        one_matmul_q(GLMV_Q4_0, 170, 1030, 96, 0, thr);
        one_matmul_q(GLMV_Q5_0, 37, 200, 256, 1, thr);
        one_matmul_q(GLMV_Q4_K, 37, 200, 512, 1, thr);
        one_matmul_q(GLMV_Q6_K, 130, 512, 1024, 0, thr);
        if (f32) one_matmul_q(GLMV_Q8_0, 133, 9000, 4096, 1, thr); /* two blocks of weight rows */
    }
    be = keep;
}

TEST(matmul_f32_f16) {
    NEED_GPU();
    one_matmul(GLMV_F32, 1, 100, 72, 1, 1e-10);
    one_matmul(GLMV_F32, 70, 65, 130, 0, 1e-10);
    one_matmul(GLMV_F16, 20, 129, 33, 1, 1e-10);
}

TEST(embed) {
    NEED_GPU();
    for (int pass = 0; pass < 2; pass++) {
        int64_t n = pass ? 100 : 5, d = 136, rows = 1000;
        glmv_tensor t = make_tensor(GLMV_BF16, rows, d, 1.0f), dt = dev_tensor(&t);
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
        for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)((frand() + 1.0f) * 0.5f * (rows - 1));
        ids[0] = (int32_t)rows - 1;
        float *ref = malloc(sizeof(float) * (size_t)(n * d)), *dy = dev_poison(n * d);
        glmv_ref_embed(ref, &t, ids, n);
        be->embed(be, dy, &dt, ids, n);
        expect(pass ? "embed n=100 (ids on device)" : "embed n=5 (ids in parameters)", dy, ref,
               n * d, 0);
        be->free(be, dy);
        free(ref);
        free(ids);
        free_tensor(&t, &dt);
    }
}

/* norm_add_norm against the three ops it replaces, on the GPU (bit for bit: the same sums,
 * no fused multiply-add in the residual) and against the reference (fp32 bound); copy_rows
 * exactly */
TEST(fused_norm_and_copy_rows) {
    NEED_GPU();
    int64_t shapes[4][2] = {{7, 4096}, {3, 100}, {1, 4096}, {40, 1536}};
    for (int s = 0; s < 4; s++) {
        int64_t n = shapes[s][0], d = shapes[s][1];
        glmv_tensor w1 = make_tensor(GLMV_F32, d, 0, 1.0f), w2 = make_tensor(GLMV_BF16, d, 0, 1.0f);
        glmv_tensor d1 = dev_tensor(&w1), d2 = dev_tensor(&w2);
        float *x = rand_buf(n * d, 3.0f), *t = rand_buf(n * d, 3.0f);
        float *rx = malloc(sizeof(float) * (size_t)(n * d)), *ry = malloc(sizeof(float) * (size_t)(n * d));
        memcpy(rx, x, sizeof(float) * (size_t)(n * d));
        glmv_ref_rmsnorm(ry, t, &w1, n, d, 1e-5f);
        glmv_ref_add(rx, rx, ry, n * d);
        glmv_ref_rmsnorm(ry, rx, &w2, n, d, 1e-5f);
        float *dx = dev_from(x, n * d), *dt = dev_from(t, n * d), *dy = dev_poison(n * d);
        float *ux = dev_from(x, n * d), *ut = dev_poison(n * d), *uy = dev_poison(n * d);
        be->norm_add_norm(be, dx, dy, dt, &d1, &d2, n, d, 1e-5f);
        be->rmsnorm(be, ut, dt, &d1, n, d, 1e-5f);
        be->add(be, ux, ux, ut, n * d);
        be->rmsnorm(be, uy, ux, &d2, n, d, 1e-5f);
        char what[96];
        snprintf(what, sizeof what, "norm_add_norm %lldx%lld: x", (long long)n, (long long)d);
        expect(what, dx, rx, n * d, 1e-10);
        snprintf(what, sizeof what, "norm_add_norm %lldx%lld: y", (long long)n, (long long)d);
        expect(what, dy, ry, n * d, 1e-10);
        float *a = host_of(dx, n * d), *b = host_of(ux, n * d), *c2 = host_of(dy, n * d), *e = host_of(uy, n * d);
        CHECK_MSG(!memcmp(a, b, sizeof(float) * (size_t)(n * d)) && !memcmp(c2, e, sizeof(float) * (size_t)(n * d)),
                  "norm_add_norm %lldx%lld is not rmsnorm, add, rmsnorm bit for bit", (long long)n, (long long)d);
        { /* no w1 (the vision tower's residual): add, rmsnorm bit for bit, and the reference */
            float *vx = dev_from(x, n * d), *vy = dev_poison(n * d), *wx = dev_from(x, n * d), *wy = dev_poison(n * d);
            be->norm_add_norm(be, vx, vy, dt, NULL, &d2, n, d, 1e-5f);
            be->add(be, wx, wx, dt, n * d);
            be->rmsnorm(be, wy, wx, &d2, n, d, 1e-5f);
            memcpy(rx, x, sizeof(float) * (size_t)(n * d));
            glmv_ref_add(rx, rx, t, n * d);
            glmv_ref_rmsnorm(ry, rx, &w2, n, d, 1e-5f);
            snprintf(what, sizeof what, "norm_add_norm %lldx%lld, no w1: y", (long long)n, (long long)d);
            expect(what, vy, ry, n * d, 1e-10);
            float *p1 = host_of(vx, n * d), *p2 = host_of(wx, n * d), *p3 = host_of(vy, n * d), *p4 = host_of(wy, n * d);
            CHECK_MSG(!memcmp(p1, p2, sizeof(float) * (size_t)(n * d)) && !memcmp(p3, p4, sizeof(float) * (size_t)(n * d)),
                      "norm_add_norm %lldx%lld without w1 is not add, rmsnorm bit for bit", (long long)n, (long long)d);
            free(p1), free(p2), free(p3), free(p4);
            be->free(be, vx), be->free(be, vy), be->free(be, wx), be->free(be, wy);
        }
        /* copy_rows: columns [5, 5 + 37) of the n rows of ld d into rows of ld 40 at column 3 */
        if (d >= 64) {
            float *cy = dev_poison(n * 40);
            be->copy_rows(be, cy + 3, 40, dx + 5, d, n, 37);
            float *got = host_of(cy, n * 40);
            int same = 1;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < 40; j++) {
                    int in = j >= 3 && j < 40;
                    if (in && got[i * 40 + j] != a[i * d + 5 + j - 3]) same = 0;
                    if (!in && !isnan(got[i * 40 + j])) same = 0;
                }
            CHECK_MSG(same, "copy_rows");
            free(got);
            be->free(be, cy);
        }
        free(a), free(b), free(c2), free(e);
        float *bufs[] = {dx, dt, dy, ux, ut, uy};
        for (int i = 0; i < 6; i++) be->free(be, bufs[i]);
        free(x), free(t), free(rx), free(ry);
        free_tensor(&w1, &d1);
        free_tensor(&w2, &d2);
    }
}

TEST(norms) {
    NEED_GPU();
    int64_t shapes[3][2] = {{7, 4096}, {3, 100}, {2, 1536}};
    for (int s = 0; s < 3; s++)
        for (int dtw = 0; dtw < 2; dtw++) {
            int64_t n = shapes[s][0], d = shapes[s][1];
            glmv_dtype wt = dtw ? GLMV_BF16 : GLMV_F32;
            glmv_tensor w = make_tensor(wt, d, 0, 1.0f), b = make_tensor(wt, d, 0, 1.0f);
            glmv_tensor dw = dev_tensor(&w), db = dev_tensor(&b);
            float *x = rand_buf(n * d, 3.0f), *ref = malloc(sizeof(float) * (size_t)(n * d));
            float *dx = dev_from(x, n * d), *dy = dev_poison(n * d);
            char what[96];
            glmv_ref_rmsnorm(ref, x, &w, n, d, 1e-5f);
            be->rmsnorm(be, dy, dx, &dw, n, d, 1e-5f);
            snprintf(what, sizeof what, "rmsnorm %lldx%lld %s", (long long)n, (long long)d,
                     glmv_dtype_name(wt));
            expect(what, dy, ref, n * d, 1e-10);
            glmv_ref_layernorm(ref, x, &w, &b, n, d, 1e-5f);
            be->layernorm(be, dy, dx, &dw, &db, n, d, 1e-5f);
            snprintf(what, sizeof what, "layernorm %lldx%lld %s", (long long)n, (long long)d,
                     glmv_dtype_name(wt));
            expect(what, dy, ref, n * d, 1e-10);
            glmv_ref_layernorm(ref, x, &w, NULL, n, d, 1e-5f);
            be->layernorm(be, dy, dx, &dw, NULL, n, d, 1e-5f);
            expect("layernorm, no bias", dy, ref, n * d, 1e-10);
            be->free(be, dx);
            be->free(be, dy);
            free(x);
            free(ref);
            free_tensor(&w, &dw);
            free_tensor(&b, &db);
        }
}

/* GLMV_CUDA_NORM_THREADS caps a norm's threads a row (for measuring): a backend made with 128 (8
 * float4s a thread for the 9B's 4,096) passes the norms' tests above (the reference's bound, and
 * norm_add_norm rmsnorm, add, rmsnorm bit for bit); a row's bits are the same alone and among 8
 * rows; and they are not all the default's (another order of the sums: so the cap took effect) */
TEST(norm_threads) {
    NEED_GPU();
    char err[GLMV_ERR_SIZE] = "";
    char *keep = getenv("GLMV_CUDA_NORM_THREADS") ? strdup(getenv("GLMV_CUDA_NORM_THREADS")) : NULL;
    setenv("GLMV_CUDA_NORM_THREADS", "128", 1);
    glmv_backend *pb = glmv_cuda_backend_new(0, 1, err);
    if (keep) setenv("GLMV_CUDA_NORM_THREADS", keep, 1);
    else unsetenv("GLMV_CUDA_NORM_THREADS");
    free(keep);
    CHECK_MSG(pb != NULL, "no backend with GLMV_CUDA_NORM_THREADS=128: %s", err);
    if (!pb) return;
    const int64_t n = 8, d = 4096;
    glmv_tensor w = make_tensor(GLMV_BF16, d, 0, 1.0f), dw = dev_tensor(&w);
    float *x = rand_buf(n * d, 3.0f), *dx = dev_from(x, n * d), *dy = dev_poison(n * d);
    be->rmsnorm(be, dy, dx, &dw, n, d, 1e-5f); /* the default's rows */
    float *def = host_of(dy, n * d);
    glmv_backend *base = be;
    be = pb; /* the helpers and the tests below on the capped backend */
    test_norms();
    test_fused_norm_and_copy_rows();
    glmv_tensor pw = dev_tensor(&w);
    float *px = dev_from(x, n * d), *py = dev_poison(n * d), *p1 = dev_poison(d);
    be->rmsnorm(be, py, px, &pw, n, d, 1e-5f);
    be->rmsnorm(be, p1, px + (n - 1) * d, &pw, 1, d, 1e-5f);
    float *all = host_of(py, n * d), *one = host_of(p1, d);
    CHECK_MSG(!memcmp(all + (n - 1) * d, one, sizeof(float) * (size_t)d),
              "128 threads: a row's bits alone are not its bits among %lld rows", (long long)n);
    CHECK_MSG(memcmp(all, def, sizeof(float) * (size_t)(n * d)), "128 threads: the default's bits (the cap not taken)");
    be->free(be, px), be->free(be, py), be->free(be, p1), be->free(be, pw.data);
    free(all), free(one);
    be = base;
    pb->destroy(pb);
    be->free(be, dx), be->free(be, dy);
    free(x), free(def);
    free_tensor(&w, &dw);
}

TEST(rope) {
    NEED_GPU();
    int64_t n = 9, nh = 4, hd = 128, ld = nh * hd + 2 * 128 + 8; /* q inside a wider row */
    float *x = rand_buf(n * ld, 1.0f), *cs = rand_buf(n * hd / 2, 1.0f),
          *sn = rand_buf(n * hd / 2, 1.0f);
    float *ref = malloc(sizeof(float) * (size_t)(n * ld));
    float *dcs = dev_from(cs, n * hd / 2), *dsn = dev_from(sn, n * hd / 2);
    memcpy(ref, x, sizeof(float) * (size_t)(n * ld));
    glmv_ref_rope_interleaved(ref, ld, cs, sn, n, (int)nh, (int)hd, 64);
    float *dx = dev_from(x, n * ld);
    be->rope_interleaved(be, dx, ld, dcs, dsn, n, (int)nh, (int)hd, 64);
    expect("rope_interleaved 9x4x128 rot 64", dx, ref, n * ld, 1e-12);
    memcpy(ref, x, sizeof(float) * (size_t)(n * ld));
    glmv_ref_rope_neox(ref, ld, cs, sn, n, (int)nh, (int)hd);
    be->write(be, dx, x, sizeof(float) * (size_t)(n * ld));
    be->rope_neox(be, dx, ld, dcs, dsn, n, (int)nh, (int)hd);
    expect("rope_neox 9x4x128", dx, ref, n * ld, 1e-12);
    be->free(be, dx);
    be->free(be, dcs);
    be->free(be, dsn);
    free(x);
    free(cs);
    free(sn);
    free(ref);
}

/* rope_kv_store on backend b (a bf16 or a float32 cache): the rows and the caches it leaves are what
 * rope_interleaved and two kv_store leave, bit for bit; the caches' rows before and after are kept */
static void one_rope_kv_store(glmv_backend *b, int64_t n, int nh, int nkv, int rot) {
    glmv_backend *keep = be;
    be = b;
    const int hd = 128;
    const int64_t ldq = (int64_t)(nh + 2 * nkv) * hd, kvd = (int64_t)nkv * hd, cap = n + 6;
    float *x = rand_buf(n * ldq, 2.0f), *cs = rand_buf(n * rot / 2, 1.0f), *sn = rand_buf(n * rot / 2, 1.0f);
    float *c0 = rand_buf(cap * kvd, 1.0f);
    float *dcs = dev_from(cs, n * rot / 2), *dsn = dev_from(sn, n * rot / 2), *dx[2];
    void *kc[2], *vc[2];
    const size_t es = b->caps.kv_bf16 ? 2 : 4;
    for (int v = 0; v < 2; v++) {
        dx[v] = dev_from(x, n * ldq);
        kc[v] = cache_from(c0, cap * kvd);
        vc[v] = cache_from(c0, cap * kvd);
    }
    /* rows [3, 3 + n) of the caches */
    char *k0 = (char *)kc[0] + 3 * kvd * es, *v0 = (char *)vc[0] + 3 * kvd * es;
    b->rope_interleaved(b, dx[0], ldq, dcs, dsn, n, nh + nkv, hd, rot);
    b->kv_store(b, k0, dx[0] + nh * hd, ldq, n, kvd);
    b->kv_store(b, v0, dx[0] + (nh + nkv) * hd, ldq, n, kvd);
    b->rope_kv_store(b, dx[1], ldq, dcs, dsn, n, nh, nkv, hd, rot, (char *)kc[1] + 3 * kvd * es,
                     (char *)vc[1] + 3 * kvd * es);
    float *h[2], *hk[2], *hv[2];
    for (int v = 0; v < 2; v++) {
        h[v] = host_of(dx[v], n * ldq);
        hk[v] = cache_host(kc[v], cap * kvd);
        hv[v] = cache_host(vc[v], cap * kvd);
    }
    CHECK_MSG(!memcmp(h[0], h[1], sizeof(float) * (size_t)(n * ldq)) &&
                  !memcmp(hk[0], hk[1], sizeof(float) * (size_t)(cap * kvd)) &&
                  !memcmp(hv[0], hv[1], sizeof(float) * (size_t)(cap * kvd)),
              "rope_kv_store n=%lld heads %d/%d rot %d%s: rows and caches as rope_interleaved + kv_store",
              (long long)n, nh, nkv, rot, b->caps.kv_bf16 ? " (bf16 cache)" : "");
    for (int v = 0; v < 2; v++) {
        b->free(b, dx[v]), b->free(b, kc[v]), b->free(b, vc[v]);
        free(h[v]), free(hk[v]), free(hv[v]);
    }
    b->free(b, dcs), b->free(b, dsn);
    free(x), free(cs), free(sn), free(c0);
    be = keep;
}

TEST(rope_kv_store) {
    NEED_GPU();
    CHECK(be->rope_kv_store != NULL);
    if (!be->rope_kv_store) return;
    one_rope_kv_store(be, 37, 32, 2, 64); /* the 9B's heads, half of each rotated */
    one_rope_kv_store(be, 512, 4, 2, 128);
    one_rope_kv_store(be, 1, 2, 1, 32);
    if (be_kvf32) one_rope_kv_store(be_kvf32, 37, 32, 2, 64);
}

static void one_causal(int64_t n, int64_t pos0, int nh, int nkv, int hd, int64_t ldq_extra,
                       double thr) {
    int64_t ldq = (int64_t)nh * hd + ldq_extra, kvd = (int64_t)nkv * hd, tot = pos0 + n;
    int64_t cap = tot + 5; /* the cache holds more rows than are used */
    float *q = rand_buf(n * ldq, 2.0f), *kc = rand_buf(cap * kvd, 2.0f),
          *vc = rand_buf(cap * kvd, 1.0f);
    float *ref = malloc(sizeof(float) * (size_t)(n * nh * hd));
    float scale = 1.0f / sqrtf((float)hd);
    float *dq = dev_from(q, n * ldq);
    void *dk = cache_from(kc, cap * kvd), *dv = cache_from(vc, cap * kvd);
    glmv_ref_attn_causal(ref, q, ldq, kc, vc, n, pos0, nh, nkv, hd, scale);
    float *dout = dev_poison(n * nh * hd);
    be->attn_causal(be, dout, dq, ldq, dk, dv, n, pos0, nh, nkv, hd, scale);
    char what[96];
    snprintf(what, sizeof what, "attn_causal n=%lld pos0=%lld h=%d/%d hd=%d%s", (long long)n,
             (long long)pos0, nh, nkv, hd, be->caps.kv_bf16 ? " (bf16 cache)" : "");
    expect(what, dout, ref, n * nh * hd, thr);
    be->free(be, dq);
    be->free(be, dk);
    be->free(be, dv);
    be->free(be, dout);
    free(q);
    free(kc);
    free(vc);
    free(ref);
}

TEST(attn_causal_decode) {
    NEED_GPU();
    one_causal(1, 300, 32, 2, 128, 0, 1e-10);   /* decode, GQA 16 */
    one_causal(1, 0, 32, 2, 128, 512, 1e-10);   /* first token */
    one_causal(3, 1000, 8, 2, 64, 17, 1e-10);   /* a few rows, mask inside a chunk */
    one_causal(4, 5000, 32, 2, 128, 0, 1e-10);  /* many chunks */
    one_causal(40, 7, 6, 3, 32, 0, 1e-10);      /* head dim without a flash kernel */
}

/* A decode step of several sequences with caches of different lengths: the new key and
 * value rows are stored at each cache's next row, then each query attends to its own
 * cache; against the reference per sequence (and the stored rows checked). */
static void one_decode_batch(int n, const int64_t *lens, int nh, int nkv, int hd, double thr) {
    int64_t qd = (int64_t)nh * hd, kvd = (int64_t)nkv * hd, maxk = 0;
    float *q = rand_buf(n * qd, 2.0f), *kn = rand_buf(n * kvd, 2.0f), *vn = rand_buf(n * kvd, 1.0f);
    float *ref = malloc(sizeof(float) * (size_t)(n * qd));
    float *hk[64], *hv[64];
    void *dk[64], *dv[64];
    float *dq = dev_from(q, n * qd), *dkn = dev_from(kn, n * kvd), *dvn = dev_from(vn, n * kvd);
    cache_round(kn, n * kvd); /* what the cache will hold (the rows went up unrounded) */
    cache_round(vn, n * kvd);
    int64_t nk[64];
    float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i < n; i++) {
        int64_t cap = lens[i] + 3;
        hk[i] = rand_buf(cap * kvd, 2.0f);
        hv[i] = rand_buf(cap * kvd, 1.0f);
        dk[i] = cache_from(hk[i], cap * kvd);
        dv[i] = cache_from(hv[i], cap * kvd);
        nk[i] = lens[i] + 1;
        maxk = nk[i] > maxk ? nk[i] : maxk;
        memcpy(hk[i] + lens[i] * kvd, kn + i * kvd, sizeof(float) * (size_t)kvd);
        memcpy(hv[i] + lens[i] * kvd, vn + i * kvd, sizeof(float) * (size_t)kvd);
        glmv_ref_attn_causal(ref + i * qd, q + i * qd, qd, hk[i], hv[i], 1, lens[i], nh, nkv, hd, scale);
    }
    void *tab = be->alloc(be, sizeof(void *) * 3 * (size_t)n);
    void *htab[3 * 64];
    for (int i = 0; i < n; i++) {
        htab[i] = dk[i];
        htab[n + i] = dv[i];
        memcpy(&htab[2 * n + i], &nk[i], 8);
    }
    be->write(be, tab, htab, sizeof(void *) * 3 * (size_t)n);
    float *dout = dev_poison(n * qd);
    be->attn_decode_batch(be, dout, dq, qd, dkn, dvn, kvd, (void *const *)tab, (void *const *)tab + n,
                          (const int64_t *)((void **)tab + 2 * n), n, maxk, nh, nkv, hd, scale);
    char what[96];
    snprintf(what, sizeof what, "attn_decode_batch n=%d h=%d/%d hd=%d%s", n, nh, nkv, hd,
             be->caps.kv_bf16 ? " (bf16 cache)" : "");
    expect(what, dout, ref, n * qd, thr);
    for (int i = 0; i < n; i++) { /* the appended rows, exactly (rounded in a bf16 cache) */
        float *got = cache_host(dk[i], (lens[i] + 1) * kvd), *gv = cache_host(dv[i], (lens[i] + 1) * kvd);
        CHECK_MSG(!memcmp(got + lens[i] * kvd, kn + i * kvd, sizeof(float) * (size_t)kvd) &&
                      !memcmp(gv + lens[i] * kvd, vn + i * kvd, sizeof(float) * (size_t)kvd),
                  "sequence %d: the new key/value row was not stored at row %lld", i, (long long)lens[i]);
        free(got);
        free(gv);
        be->free(be, dk[i]);
        be->free(be, dv[i]);
        free(hk[i]);
        free(hv[i]);
    }
    be->free(be, tab);
    be->free(be, dq);
    be->free(be, dkn);
    be->free(be, dvn);
    be->free(be, dout);
    free(q);
    free(kn);
    free(vn);
    free(ref);
}

/* bf16 precision: head dims 64 and 128 with up to 16 query heads a kv head go through the
 * tensor-core decode kernel (q, k, v, p rounded to bf16: the flash bound), others through
 * the f32 split kernel; precision_f32 checks the split kernel on the 9B's shape */
TEST(attn_decode_batch) {
    NEED_GPU();
    int64_t l1[] = {0, 300, 5000, 17, 1023, 64};
    one_decode_batch(6, l1, 32, 2, 128, 2e-4);       /* the 9B's heads, very different lengths */
    int64_t l2[] = {7, 8, 9};
    one_decode_batch(3, l2, 6, 3, 32, 1e-10);        /* a head dim without float4 rows: split */
    int64_t l3[16];
    for (int i = 0; i < 16; i++) l3[i] = 100 * i + 3;
    one_decode_batch(16, l3, 32, 2, 128, 2e-4);
    /* 48 sequences: few chunks, of many key steps each */
    int64_t l9[48];
    for (int i = 0; i < 48; i++) l9[i] = (i * 997) % 3001 + (i == 5 ? 3000 : 0);
    one_decode_batch(48, l9, 32, 2, 128, 2e-4);
    int64_t l4[] = {5, 200, 62, 63, 64};
    one_decode_batch(5, l4, 8, 2, 64, 2e-4);         /* 4 query heads a kv head, hd 64 */
    int64_t l5[] = {2000, 15};
    one_decode_batch(2, l5, 16, 1, 128, 2e-4);       /* one kv head */
    int64_t l6[] = {40};
    one_decode_batch(1, l6, 34, 2, 128, 1e-10);      /* 17 heads a kv head: split */
    /* more chunks than the merge's block has threads (a chunk per 64 keys, up to ~4 blocks an SM) */
    int64_t l7[] = {20000};
    one_decode_batch(1, l7, 32, 2, 128, 2e-4);
    int64_t l8[] = {9000};
    one_decode_batch(1, l8, 8, 2, 64, 2e-4);
    one_causal(1, 12000, 4, 1, 80, 0, 1e-10);        /* head dim 80, split kernel, many chunks */
}

/* A decode step (as one_decode_batch) on backend pb of the given data: hk/hv the caches'
 * values before the step (rows of lens[i] + 1 keys, in the caches' format), kn/vn the new rows;
 * returns the output, and in *stored the rows each cache holds at lens[i] afterwards (key then
 * value, 2 * kvd floats a sequence). */
static float *decode_on(glmv_backend *pb, int n, const int64_t *lens, int nh, int nkv, int hd, const float *q,
                        const float *kn, const float *vn, float *const *hk, float *const *hv, float **stored) {
    glmv_backend *keep = be;
    be = pb;
    int64_t qd = (int64_t)nh * hd, kvd = (int64_t)nkv * hd, maxk = 0;
    float *dq = dev_from(q, n * qd), *dkn = dev_from(kn, n * kvd), *dvn = dev_from(vn, n * kvd);
    void *dk[64], *dv[64], *htab[3 * 64];
    for (int i = 0; i < n; i++) {
        dk[i] = cache_from(hk[i], (lens[i] + 1) * kvd);
        dv[i] = cache_from(hv[i], (lens[i] + 1) * kvd);
        int64_t nk = lens[i] + 1;
        maxk = nk > maxk ? nk : maxk;
        htab[i] = dk[i];
        htab[n + i] = dv[i];
        memcpy(&htab[2 * n + i], &nk, 8);
    }
    void *tab = be->alloc(be, sizeof(void *) * 3 * (size_t)n);
    be->write(be, tab, htab, sizeof(void *) * 3 * (size_t)n);
    float *dout = dev_poison(n * qd);
    be->attn_decode_batch(be, dout, dq, qd, dkn, dvn, kvd, (void *const *)tab, (void *const *)tab + n,
                          (const int64_t *)((void **)tab + 2 * n), n, maxk, nh, nkv, hd, 1.0f / sqrtf((float)hd));
    float *out = host_of(dout, n * qd);
    *stored = malloc(sizeof(float) * (size_t)(2 * n * kvd));
    for (int i = 0; i < n; i++) {
        float *gk = cache_host(dk[i], (lens[i] + 1) * kvd), *gv = cache_host(dv[i], (lens[i] + 1) * kvd);
        memcpy(*stored + 2 * i * kvd, gk + lens[i] * kvd, sizeof(float) * (size_t)kvd);
        memcpy(*stored + (2 * i + 1) * kvd, gv + lens[i] * kvd, sizeof(float) * (size_t)kvd);
        free(gk);
        free(gv);
        be->free(be, dk[i]);
        be->free(be, dv[i]);
    }
    char err[GLMV_ERR_SIZE] = "";
    CHECK_MSG(be->status(be, err) == 0, "%s", err);
    be->free(be, tab);
    be->free(be, dq);
    be->free(be, dkn);
    be->free(be, dvn);
    be->free(be, dout);
    be = keep;
    return out;
}

/* dec_tile_kernel (the decode attention through shared memory, GLMV_CUDA_DEC_TILE): in
 * dec_mma_kernel's chunks (2) bit for bit what dec_mma_kernel gives (0), the outputs and the new
 * rows stored; in its own chunks (1), one_decode_batch's checks against the reference */
static void one_dec_tile(glmv_backend *const *pb, int n, const int64_t *lens, int nh, int nkv, int hd) {
    int64_t qd = (int64_t)nh * hd, kvd = (int64_t)nkv * hd;
    float *q = rand_buf(n * qd, 2.0f), *kn = rand_buf(n * kvd, 2.0f), *vn = rand_buf(n * kvd, 1.0f);
    float *hk[64], *hv[64];
    for (int i = 0; i < n; i++) {
        hk[i] = rand_buf((lens[i] + 1) * kvd, 2.0f);
        hv[i] = rand_buf((lens[i] + 1) * kvd, 1.0f);
        for (int64_t j = 0; j < (lens[i] + 1) * kvd; j++) { /* bf16 values: the caches' */
            hk[i][j] = glmv_bf16_to_f32(glmv_f32_to_bf16(hk[i][j]));
            hv[i][j] = glmv_bf16_to_f32(glmv_f32_to_bf16(hv[i][j]));
        }
    }
    float *s0, *s1, *s2, *s3;
    float *o0 = decode_on(pb[0], n, lens, nh, nkv, hd, q, kn, vn, hk, hv, &s0);
    float *o1 = decode_on(pb[1], n, lens, nh, nkv, hd, q, kn, vn, hk, hv, &s1);
    float *o2 = decode_on(pb[2], n, lens, nh, nkv, hd, q, kn, vn, hk, hv, &s2);
    float *o3 = decode_on(pb[3], n, lens, nh, nkv, hd, q, kn, vn, hk, hv, &s3);
    const size_t ob = sizeof(float) * (size_t)(n * qd), sb = sizeof(float) * (size_t)(2 * n * kvd);
    int same = !memcmp(o0, o2, ob), stored = !memcmp(s0, s2, sb) && !memcmp(s0, s1, sb) && !memcmp(s0, s3, sb);
    /* unset, the kernel by the step: dec_tile_kernel's chunks where more rows than the skinny
     * kernel takes (16) go through cuBLAS, dec_mma_kernel's below */
    int pick = getenv("GLMV_CUDA_SKINNY") || getenv("GLMV_CUDA_SKINNY_MAX") || !memcmp(o3, n > 16 ? o1 : o0, ob);
    printf("  dec_tile n=%-2d h=%d/%d hd=%d: %s, new rows %s; by the step: %s\n", n, nh, nkv, hd,
           same ? "dec_mma_kernel's output bit for bit" : "OUTPUT DIFFERS", stored ? "the same" : "DIFFER",
           pick ? (n > 16 ? "dec_tile_kernel's" : "dec_mma_kernel's") : "NEITHER EXPECTED OUTPUT");
    CHECK_MSG(same && stored, "dec_tile_kernel in dec_mma_kernel's chunks: n=%d h=%d/%d hd=%d", n, nh, nkv, hd);
    CHECK_MSG(pick, "GLMV_CUDA_DEC_TILE unset, n=%d: not the kernel the step asks for", n);
    glmv_backend *keep = be;
    be = pb[1];
    one_decode_batch(n, lens, nh, nkv, hd, 2e-4);
    be = keep;
    for (int i = 0; i < n; i++) free(hk[i]), free(hv[i]);
    free(q), free(kn), free(vn), free(o0), free(o1), free(o2), free(o3), free(s0), free(s1), free(s2), free(s3);
}

TEST(dec_tile) {
    NEED_GPU();
    if ((getenv("GLMV_CUDA_DEC_MMA") && !strcmp(getenv("GLMV_CUDA_DEC_MMA"), "0")) ||
        (getenv("GLMV_CUDA_KV_FUSE") && atoi(getenv("GLMV_CUDA_KV_FUSE")) == 0)) {
        printf("  skipped: GLMV_CUDA_DEC_MMA=0 or GLMV_CUDA_KV_FUSE=0 take neither kernel or no new rows\n");
        return;
    }
    glmv_backend *pb[4] = {NULL, NULL, NULL, NULL}; /* GLMV_CUDA_DEC_TILE 0, 1, 2, unset */
    char *keep = getenv("GLMV_CUDA_DEC_TILE") ? strdup(getenv("GLMV_CUDA_DEC_TILE")) : NULL;
    for (int v = 0; v < 4; v++) {
        char err[GLMV_ERR_SIZE] = "", num[2] = {(char)('0' + v), 0};
        if (v < 3) setenv("GLMV_CUDA_DEC_TILE", num, 1);
        else unsetenv("GLMV_CUDA_DEC_TILE");
        pb[v] = glmv_cuda_backend_new(0, 1, err);
        CHECK_MSG(pb[v] && pb[v]->caps.kv_bf16, "GLMV_CUDA_DEC_TILE=%d: no backend with bf16 caches: %s", v, err);
    }
    setenv("GLMV_CUDA_DEC_TILE", "3", 1); /* not a choice: an error, not a default */
    char err[GLMV_ERR_SIZE] = "";
    glmv_backend *bad = glmv_cuda_backend_new(0, 1, err);
    CHECK_MSG(!bad && strstr(err, "GLMV_CUDA_DEC_TILE"), "GLMV_CUDA_DEC_TILE=3 accepted (%s)", err);
    if (bad) bad->destroy(bad);
    setenv("GLMV_CUDA_DEC_TILE", "1", 1);
    setenv("GLMV_CUDA_DEC_MIN_STEPS", "0", 1); /* out of 1-64 */
    err[0] = 0;
    bad = glmv_cuda_backend_new(0, 1, err);
    unsetenv("GLMV_CUDA_DEC_MIN_STEPS");
    CHECK_MSG(!bad && strstr(err, "GLMV_CUDA_DEC_MIN_STEPS"), "GLMV_CUDA_DEC_MIN_STEPS=0 accepted (%s)", err);
    if (bad) bad->destroy(bad);
    if (keep) setenv("GLMV_CUDA_DEC_TILE", keep, 1);
    else unsetenv("GLMV_CUDA_DEC_TILE");
    free(keep);
    int all = 1;
    for (int v = 0; v < 4; v++) all = all && pb[v] && pb[v]->caps.kv_bf16;
    if (all) {
        int64_t l1[] = {0, 300, 5000, 17, 1023, 64};
        one_dec_tile(pb, 6, l1, 32, 2, 128); /* the 9B's heads: chunks of many tiles, partial tiles */
        int64_t l2[64];
        for (int i = 0; i < 64; i++) l2[i] = 900 + (i * 37) % 250; /* 64 streams at ~1k keys */
        one_dec_tile(pb, 64, l2, 32, 2, 128);
        int64_t l3[16];
        for (int i = 0; i < 16; i++) l3[i] = 100 * i + 3;
        one_dec_tile(pb, 16, l3, 32, 2, 128);
        int64_t l4[] = {5, 200, 62, 63, 64};
        one_dec_tile(pb, 5, l4, 8, 2, 64);   /* hd 64, 4 query heads a kv head */
        int64_t l5[] = {2000, 15};
        one_dec_tile(pb, 2, l5, 16, 1, 128); /* one kv head */
        int64_t l6[] = {130, 1};
        one_dec_tile(pb, 2, l6, 12, 2, 128); /* 6 heads a kv head: rows of the tile past the group */
        int64_t l7[] = {9000};
        one_dec_tile(pb, 1, l7, 32, 2, 128); /* one stream, a chunk a 64 keys */
        int64_t l8[] = {63};
        one_dec_tile(pb, 1, l8, 32, 2, 128); /* the newest key the last row of the only tile */
    }
    for (int v = 0; v < 4; v++)
        if (pb[v]) pb[v]->destroy(pb[v]);
}

TEST(attn_causal_flash) {
    NEED_GPU();
    one_causal(100, 0, 32, 2, 128, 0, 2e-4);    /* prefill */
    one_causal(70, 30, 4, 2, 128, 256, 2e-4);   /* prefill after a prefix, q in a wider row */
    one_causal(129, 0, 4, 4, 64, 0, 2e-4);      /* hd 64, no GQA */
    one_causal(16, 200, 2, 1, 128, 0, 2e-4);    /* smallest flash n */
    /* on Hopper, 64 rows and more of head dim 128 take the wgmma kernel (128-row blocks) */
    one_causal(300, 77, 4, 2, 128, 0, 2e-4);    /* blocks past the first, ragged keys */
    one_causal(1000, 0, 2, 1, 128, 0, 2e-4);    /* many tiles, masked on the diagonal */
    one_causal(64, 0, 2, 1, 128, 0, 2e-4);      /* one warpgroup's rows, the other's past n */
}

static void one_segments(const int64_t *cu, int n_seg, int nh, int hd, double thr) {
    int64_t rows = cu[n_seg], ld = 3 * (int64_t)nh * hd; /* fused qkv rows */
    float *qkv = rand_buf(rows * ld, 2.0f), *ref = malloc(sizeof(float) * (size_t)(rows * nh * hd));
    int64_t off = (int64_t)nh * hd;
    float scale = 1.0f / sqrtf((float)hd);
    glmv_ref_attn_segments(ref, qkv, ld, qkv + off, ld, qkv + 2 * off, ld, cu, n_seg, nh, hd,
                           scale);
    float *d = dev_from(qkv, rows * ld), *dout = dev_poison(rows * nh * hd);
    be->attn_segments(be, dout, d, ld, d + off, ld, d + 2 * off, ld, cu, n_seg, nh, hd, scale);
    char what[96];
    snprintf(what, sizeof what, "attn_segments rows=%lld segs=%d h=%d hd=%d", (long long)rows,
             n_seg, nh, hd);
    expect(what, dout, ref, rows * nh * hd, thr);
    be->free(be, d);
    be->free(be, dout);
    free(qkv);
    free(ref);
}

TEST(attn_segments) {
    NEED_GPU();
    int64_t cu1[] = {0, 70, 70, 200, 210};       /* an empty and a short segment */
    one_segments(cu1, 4, 3, 128, 2e-4);
    int64_t cu2[] = {0, 256};
    one_segments(cu2, 1, 2, 64, 2e-4);
    int64_t cu3[] = {0, 40, 100};
    one_segments(cu3, 2, 2, 80, 1e-10);          /* hd 80: fp32 split kernel */
    int64_t cu4[] = {0, 1000, 1333};              /* long segments (wgmma on Hopper) */
    one_segments(cu4, 2, 2, 128, 2e-4);
}

/* The wgmma flash kernel fed by bulk copies of tile images (GLMV_CUDA_FLASH_BULK, the default on
 * Hopper) against the kernel that copies its tiles with cp.async (GLMV_CUDA_FLASH_BULK=0): the same
 * products in the same order, so the same bits. Vision segments through attn_rope_segments (the
 * rotation inside the attention; short segments rotated in place and through the split kernel)
 * against rope_neox and then attn_segments on the other backend, memcmp, and against the fp64
 * reference after the host's rotation; the causal prefill over bf16 caches likewise. */
static float *rope_segments_on(glmv_backend *b, const float *qkv, int64_t rows, int nh, const float *cs,
                               const float *sn, const int64_t *cu, int n_seg, int fused) {
    glmv_backend *keep = be;
    be = b;
    const int hd = 128;
    int64_t ld = 3 * (int64_t)nh * hd, off = (int64_t)nh * hd;
    float *d = dev_from(qkv, rows * ld), *dcs = dev_from(cs, rows * hd / 2), *dsn = dev_from(sn, rows * hd / 2);
    float *dout = dev_poison(rows * nh * hd);
    float scale = 1.0f / sqrtf((float)hd);
    if (fused) {
        b->attn_rope_segments(b, dout, d, ld, d + off, ld, d + 2 * off, ld, dcs, dsn, cu, n_seg, nh, hd, scale);
        /* where every segment went through the bulk-copy kernel, it wrote its output in bf16 too, for
         * the product right after it: that product against the same on a copy of the output */
        glmv_tensor w = make_tensor(GLMV_BF16, 96, off, 0.5f), dw = dev_tensor(&w);
        float *y1 = dev_poison(rows * 96), *y2 = dev_poison(rows * 96), *cp = dev_poison(rows * off);
        b->matmul(b, y1, dout, &dw, NULL, rows);
        b->copy(b, cp, dout, sizeof(float) * (size_t)(rows * off));
        b->matmul(b, y2, cp, &dw, NULL, rows);
        float *h1 = host_of(y1, rows * 96), *h2 = host_of(y2, rows * 96);
        CHECK_MSG(!memcmp(h1, h2, sizeof(float) * (size_t)(rows * 96)), "the product after attn_rope_segments");
        free(h1), free(h2);
        b->free(b, y1), b->free(b, y2), b->free(b, cp);
        free_tensor(&w, &dw);
    } else {
        b->rope_neox(b, d, ld, dcs, dsn, rows, 2 * nh, hd);
        b->attn_segments(b, dout, d, ld, d + off, ld, d + 2 * off, ld, cu, n_seg, nh, hd, scale);
    }
    float *h = host_of(dout, rows * nh * hd);
    b->free(b, d), b->free(b, dcs), b->free(b, dsn), b->free(b, dout);
    be = keep;
    return h;
}

static void one_flash_bulk_segments(glmv_backend *off_be, const int64_t *cu, int n_seg, int nh) {
    const int hd = 128;
    int64_t rows = cu[n_seg], ld = 3 * (int64_t)nh * hd;
    float *qkv = rand_buf(rows * ld, 2.0f), *cs = malloc(sizeof(float) * (size_t)(rows * hd / 2)),
          *sn = malloc(sizeof(float) * (size_t)(rows * hd / 2));
    for (int64_t i = 0; i < rows * hd / 2; i++) {
        double a = (double)(i / (hd / 2)) * pow(10000.0, -(double)(i % (hd / 2)) / (hd / 2));
        cs[i] = (float)cos(a), sn[i] = (float)sin(a);
    }
    float *o_bulk = rope_segments_on(be, qkv, rows, nh, cs, sn, cu, n_seg, 1);
    float *o_old = rope_segments_on(off_be, qkv, rows, nh, cs, sn, cu, n_seg, 0);
    char what[96];
    snprintf(what, sizeof what, "attn_rope_segments rows=%lld segs=%d h=%d: bulk == cp.async", (long long)rows,
             n_seg, nh);
    CHECK_MSG(!memcmp(o_bulk, o_old, sizeof(float) * (size_t)(rows * nh * hd)), what);
    printf("  %-60s %s\n", what, memcmp(o_bulk, o_old, sizeof(float) * (size_t)(rows * nh * hd)) ? "DIFFER" : "same");
    /* the reference: the host's rotation (glmv_ref_rope_neox), then fp64 attention */
    float *ref = malloc(sizeof(float) * (size_t)(rows * nh * hd));
    glmv_ref_rope_neox(qkv, ld, cs, sn, rows, 2 * nh, hd);
    glmv_ref_attn_segments(ref, qkv, ld, qkv + nh * hd, ld, qkv + 2 * nh * hd, ld, cu, n_seg, nh, hd,
                           1.0f / sqrtf((float)hd));
    float *d = dev_from(o_bulk, rows * nh * hd);
    snprintf(what, sizeof what, "attn_rope_segments rows=%lld segs=%d h=%d", (long long)rows, n_seg, nh);
    expect(what, d, ref, rows * nh * hd, 2e-4);
    be->free(be, d);
    free(qkv), free(cs), free(sn), free(o_bulk), free(o_old), free(ref);
}

static float *causal_on(glmv_backend *b, float *q, int64_t ldq, float *kc, float *vc, int64_t n, int64_t pos0,
                        int nh, int nkv) {
    glmv_backend *keep = be;
    be = b;
    const int hd = 128;
    int64_t kvd = (int64_t)nkv * hd, tot = pos0 + n;
    float *dq = dev_from(q, n * ldq), *dout = dev_poison(n * nh * hd);
    void *dk = cache_from(kc, tot * kvd), *dv = cache_from(vc, tot * kvd);
    b->attn_causal(b, dout, dq, ldq, dk, dv, n, pos0, nh, nkv, hd, 1.0f / sqrtf((float)hd));
    float *h = host_of(dout, n * nh * hd);
    b->free(b, dq), b->free(b, dout), b->free(b, dk), b->free(b, dv);
    be = keep;
    return h;
}

static void one_flash_bulk_causal(glmv_backend *off_be, int64_t n, int64_t pos0, int nh, int nkv) {
    int64_t ldq = (int64_t)nh * 128, kvd = (int64_t)nkv * 128, tot = pos0 + n;
    float *q = rand_buf(n * ldq, 2.0f), *kc = rand_buf(tot * kvd, 2.0f), *vc = rand_buf(tot * kvd, 1.0f);
    float *a = causal_on(be, q, ldq, kc, vc, n, pos0, nh, nkv);
    float *b = causal_on(off_be, q, ldq, kc, vc, n, pos0, nh, nkv);
    char what[96];
    snprintf(what, sizeof what, "attn_causal n=%lld pos0=%lld h=%d/%d: bulk == cp.async", (long long)n,
             (long long)pos0, nh, nkv);
    int same = !memcmp(a, b, sizeof(float) * (size_t)(n * nh * 128));
    CHECK_MSG(same, what);
    printf("  %-60s %s\n", what, same ? "same" : "DIFFER");
    free(q), free(kc), free(vc), free(a), free(b);
}

TEST(flash_bulk) {
    NEED_GPU();
    char err[GLMV_ERR_SIZE] = "";
    char *keep = getenv("GLMV_CUDA_FLASH_BULK") ? strdup(getenv("GLMV_CUDA_FLASH_BULK")) : NULL;
    setenv("GLMV_CUDA_FLASH_BULK", "2", 1); /* not a choice: an error */
    glmv_backend *bad = glmv_cuda_backend_new(0, 1, err);
    CHECK_MSG(!bad && strstr(err, "GLMV_CUDA_FLASH_BULK"), "GLMV_CUDA_FLASH_BULK=2 refused");
    if (bad) bad->destroy(bad);
    setenv("GLMV_CUDA_FLASH_BULK", "0", 1);
    glmv_backend *off_be = glmv_cuda_backend_new(0, 1, err);
    if (keep) setenv("GLMV_CUDA_FLASH_BULK", keep, 1);
    else unsetenv("GLMV_CUDA_FLASH_BULK");
    free(keep);
    CHECK(off_be != NULL);
    if (!off_be) return;
    CHECK(be->attn_rope_segments != NULL);
    int64_t cu1[] = {0, 1000};                  /* one segment: tiles past the keys' end zeroed */
    one_flash_bulk_segments(off_be, cu1, 1, 2);
    int64_t cu2[] = {0, 40, 340, 1101, 1101, 1357}; /* short (split kernel), ragged, empty */
    one_flash_bulk_segments(off_be, cu2, 5, 3);
    int64_t cu3[] = {0, 64, 192};               /* a warpgroup's rows; whole tiles */
    one_flash_bulk_segments(off_be, cu3, 2, 1);
    one_flash_bulk_causal(off_be, 300, 77, 4, 2);   /* prefill after a prefix, GQA */
    one_flash_bulk_causal(off_be, 1000, 0, 32, 2);  /* the 9B's heads */
    one_flash_bulk_causal(off_be, 64, 0, 2, 1);
    off_be->destroy(off_be);
}

/* --precision f32: SGEMM on weight blocks converted to fp32, attention in the
 * fp32 split kernel at every size: float32 bounds where bf16 has its own */
TEST(precision_f32) {
    NEED_GPU();
    CHECK(be->bf16 == 1 && be_f32 && be_f32->bf16 == 0);
    if (!be_f32) return;
    glmv_backend *keep = be;
    be = be_f32;
    one_matmul(GLMV_BF16, 37, 200, 264, 1, 1e-10);
    one_matmul(GLMV_BF16, 130, 512, 1024, 0, 1e-10);
    one_matmul(GLMV_BF16, 9, 66000, 1024, 1, 1e-10); /* two blocks of 65536 weight rows */
    one_matmul(GLMV_BF16, 3, 77, 100, 0, 1e-10);     /* gemv, as in bf16 */
    int64_t l1[] = {0, 300, 5000, 17, 1023, 64};
    one_decode_batch(6, l1, 32, 2, 128, 1e-10);      /* decode: split kernel, not tensor cores */
    int64_t l7[] = {20000};
    one_decode_batch(1, l7, 32, 2, 128, 1e-10);      /* more chunks than the merge has threads */
    one_causal(100, 0, 32, 2, 128, 0, 1e-10);        /* prefill: split kernel, not flash */
    one_causal(70, 30, 4, 2, 128, 256, 1e-10);
    int64_t cu[] = {0, 70, 70, 200, 210};
    one_segments(cu, 4, 3, 128, 1e-10);              /* SGEMM attention, split for the short one */
    int64_t cu3[] = {0, 40, 100};
    one_segments(cu3, 2, 2, 80, 1e-10);
    setenv("GLMV_CUDA_ATTN_SCORES", "5000", 1);      /* one head's scores at a time */
    one_segments(cu, 4, 3, 128, 1e-10);
    unsetenv("GLMV_CUDA_ATTN_SCORES");
    be = keep;
}

/* One sequence's attention on the current be, from float inputs (the caches made in be's
 * format from copies): decode 1 appends kn, vn at row pos0 through attn_decode_batch and
 * attends over pos0 + 1 keys; else attn_causal over n query rows after pos0 cached ones. */
static float *kv_attn_run(int decode, int64_t n, int64_t pos0, int nh, int nkv, int hd, const float *q,
                          const float *k, const float *v, const float *kn, const float *vn) {
    int64_t qd = (int64_t)nh * hd, kvd = (int64_t)nkv * hd, rows = pos0 + n + 2;
    float *hk = malloc(sizeof(float) * (size_t)(rows * kvd)), *hv = malloc(sizeof(float) * (size_t)(rows * kvd));
    memcpy(hk, k, sizeof(float) * (size_t)(rows * kvd));
    memcpy(hv, v, sizeof(float) * (size_t)(rows * kvd));
    void *dk = cache_from(hk, rows * kvd), *dv = cache_from(hv, rows * kvd);
    float *dq = dev_from(q, n * qd), *dout = dev_poison(n * qd);
    float scale = 1.0f / sqrtf((float)hd);
    if (decode) {
        float *dkn = dev_from(kn, kvd), *dvn = dev_from(vn, kvd);
        int64_t nk = pos0 + 1;
        void *htab[3] = {dk, dv, NULL};
        memcpy(&htab[2], &nk, 8);
        void **tab = be->alloc(be, sizeof htab);
        be->write(be, tab, htab, sizeof htab);
        be->attn_decode_batch(be, dout, dq, qd, dkn, dvn, kvd, tab, tab + 1, (const int64_t *)(tab + 2), 1, nk,
                              nh, nkv, hd, scale);
        be->free(be, tab);
        be->free(be, dkn);
        be->free(be, dvn);
    } else {
        be->attn_causal(be, dout, dq, qd, dk, dv, n, pos0, nh, nkv, hd, scale);
    }
    float *out = host_of(dout, n * qd);
    be->free(be, dk);
    be->free(be, dv);
    be->free(be, dq);
    be->free(be, dout);
    free(hk);
    free(hv);
    return out;
}

/* bf16 KV caches (the default in bf16 precision): the tensor-core kernels (flash prefill, the
 * decode kernel, its chunks' merge) give bit for bit what they give from float32 caches,
 * which they round the same way; the float32 kernels read the rounded values (the reference
 * tests above run on both kinds of cache); kv_store rounds to nearest even. */
TEST(kv_bf16) {
    NEED_GPU();
    CHECK(be->caps.kv_bf16 == 1 && be_f32 && be_f32->caps.kv_bf16 == 0 && be_kvf32 &&
          be_kvf32->caps.kv_bf16 == 0);
    if (!be_f32 || !be_kvf32) return;
    glmv_backend *keep = be;
    const int nh = 32, nkv = 2, hd = 128;
    const int64_t qd = (int64_t)nh * hd, kvd = (int64_t)nkv * hd;
    struct { int decode; int64_t n, pos0; } cases[] = {{1, 1, 5000}, {1, 1, 300}, {0, 100, 30}, {0, 512, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t n = cases[c].n, pos0 = cases[c].pos0, rows = pos0 + n + 2;
        float *q = rand_buf(n * qd, 2.0f), *k = rand_buf(rows * kvd, 2.0f), *v = rand_buf(rows * kvd, 1.0f);
        float *kn = rand_buf(kvd, 2.0f), *vn = rand_buf(kvd, 1.0f);
        be = keep;
        float *a = kv_attn_run(cases[c].decode, n, pos0, nh, nkv, hd, q, k, v, kn, vn);
        be = be_kvf32;
        float *b = kv_attn_run(cases[c].decode, n, pos0, nh, nkv, hd, q, k, v, kn, vn);
        CHECK_MSG(!memcmp(a, b, sizeof(float) * (size_t)(n * qd)),
                  "%s n=%lld pos0=%lld: a bf16 cache gives other floats than a float32 one",
                  cases[c].decode ? "decode" : "prefill", (long long)n, (long long)pos0);
        free(a);
        free(b);
        free(q);
        free(k);
        free(v);
        free(kn);
        free(vn);
    }
    /* the reference tests on float32 caches in bf16 precision */
    int64_t l1[] = {0, 300, 5000, 17, 1023, 64};
    one_decode_batch(6, l1, 32, 2, 128, 2e-4);
    one_causal(100, 0, 32, 2, 128, 0, 2e-4);
    one_causal(3, 1000, 8, 2, 64, 17, 1e-10);
    be = keep;
    /* kv_store: rows of a wider buffer, ties to even, overflow to infinity, tiny values */
    const int64_t rows = 5, cols = 37, ldx = 50;
    float *x = rand_buf(rows * ldx, 3.0f);
    const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0xff7fffffu, 0x00000001u, 0x80000000u,
                                0x7f800000u, 0x3f80ffffu};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) memcpy(&x[ldx + i], &special[i], 4);
    float *dx = dev_from(x, rows * ldx);
    for (int which = 0; which < 2; which++) {
        be = which ? be_kvf32 : keep;
        const size_t elt = be->caps.kv_bf16 ? 2 : 4;
        void *d = be->alloc(be, elt * (size_t)(rows * cols));
        be->kv_store(be, d, dx, ldx, rows, cols);
        unsigned char *got = malloc(elt * (size_t)(rows * cols));
        be->read(be, got, d, elt * (size_t)(rows * cols));
        int bad = 0;
        for (int64_t i = 0; i < rows && !bad; i++)
            for (int64_t j = 0; j < cols && !bad; j++) {
                const float f = x[i * ldx + j];
                if (elt == 2) {
                    uint16_t h;
                    memcpy(&h, got + 2 * (size_t)(i * cols + j), 2);
                    bad = h != glmv_f32_to_bf16(f);
                } else {
                    bad = memcmp(got + 4 * (size_t)(i * cols + j), &f, 4) != 0;
                }
                CHECK_MSG(!bad, "kv_store (%s cache): row %lld col %lld", elt == 2 ? "bf16" : "float32",
                          (long long)i, (long long)j);
            }
        free(got);
        be->free(be, d);
    }
    be = keep;
    be->free(be, dx);
    free(x);
}

TEST(elementwise) {
    NEED_GPU();
    int64_t n = 5, d = 1000, cnt = 12345;
    float *gu = rand_buf(n * 2 * d, 4.0f), *ref = malloc(sizeof(float) * (size_t)(n * d));
    glmv_ref_swiglu(ref, gu, 2 * d, gu + d, 2 * d, n, d);
    float *dgu = dev_from(gu, n * 2 * d), *dy = dev_poison(n * d);
    be->swiglu(be, dy, dgu, 2 * d, dgu + d, 2 * d, n, d);
    expect("swiglu 5x1000 (fused gate|up rows)", dy, ref, n * d, 1e-10);
    be->free(be, dy);
    free(ref);

    float *a = rand_buf(cnt, 4.0f), *b = rand_buf(cnt, 4.0f);
    ref = malloc(sizeof(float) * (size_t)cnt);
    float *da = dev_from(a, cnt), *db = dev_from(b, cnt);
    dy = dev_poison(cnt);
    glmv_ref_gelu_erf(ref, a, cnt);
    be->gelu_erf(be, dy, da, cnt);
    expect("gelu_erf 12345", dy, ref, cnt, 1e-10);
    glmv_ref_add(ref, a, b, cnt);
    be->add(be, dy, da, db, cnt);
    expect("add 12345", dy, ref, cnt, 0);
    glmv_ref_add(ref, a, b, 4096);
    be->add(be, dy, da, db, 4096);
    expect("add 4096 (float4)", dy, ref, 4096, 0);
    be->free(be, dy);
    free(ref);

    int64_t A = 3, B = 37, C = 70;
    ref = malloc(sizeof(float) * (size_t)(A * B * C));
    glmv_ref_permute_021(ref, a, A, B, C);
    dy = dev_poison(A * B * C);
    be->permute_021(be, dy, da, A, B, C);
    expect("permute_021 3x37x70", dy, ref, A * B * C, 0);
    be->free(be, dy);
    be->free(be, da);
    be->free(be, db);
    be->free(be, dgu);
    free(ref);
    free(a);
    free(b);
    free(gu);
}

/* top_k against the reference exactly (ids and the values' bits): ties, +-0, infinities and NaN;
 * one pass (n <= 4096), two (the 9B's 151,552 logits), three (k 64 over 300,000), and k 1 */
TEST(top_k) {
    NEED_GPU();
    static const int64_t cases[][3] = {{64, 151552, 64}, {64, 151552, 1}, {1, 151552, 3}, {2, 300000, 64},
                                       {3, 5000, 3},     {4, 4097, 1},    {2, 33, 33},    {5, 70, 17}};
    for (int c = 0; c < 8; c++) {
        int64_t rows = cases[c][0], n = cases[c][1];
        int k = (int)cases[c][2];
        float *x = rand_buf(rows * n, 3);
        for (int64_t i = 0; i < rows * n; i++) {
            if (i % 5 == 0) x[i] = roundf(x[i] * 4) / 4;
            if (i % 97 == 3) x[i] = i % 2 ? 0.0f : -0.0f;
            if (i % 131 == 7) x[i] = i % 2 ? -INFINITY : NAN;
            if (i % 1009 == 11) x[i] = 3.0f;
        }
        float *rv = malloc(sizeof(float) * (size_t)(rows * k)), *gv = malloc(sizeof(float) * (size_t)(rows * k));
        int32_t *ri = malloc(sizeof(int32_t) * (size_t)(rows * k)), *gi = malloc(sizeof(int32_t) * (size_t)(rows * k));
        glmv_ref_top_k(rv, ri, x, rows, n, k);
        float *dx = dev_from(x, rows * n), *dv = dev_poison(rows * k);
        int32_t *di = (int32_t *)dev_poison(rows * k);
        be->top_k(be, dv, di, dx, rows, n, k);
        be->read(be, gv, dv, sizeof(float) * (size_t)(rows * k));
        be->read(be, gi, di, sizeof(int32_t) * (size_t)(rows * k));
        char err[GLMV_ERR_SIZE];
        CHECK_MSG(be->status(be, err) == 0, "%s", err);
        CHECK_MSG(!memcmp(gi, ri, sizeof(int32_t) * (size_t)(rows * k)) &&
                      !memcmp(gv, rv, sizeof(float) * (size_t)(rows * k)),
                  "top_k %lldx%lld k %d differs from the reference", (long long)rows, (long long)n, k);
        be->free(be, dx);
        be->free(be, dv);
        be->free(be, di);
        free(x), free(rv), free(gv), free(ri), free(gi);
    }
}

TEST(errors) {
    NEED_GPU();
    char err[GLMV_ERR_SIZE] = "";
    double t0 = glmv_now_ms();
    glmv_backend *bad = glmv_cuda_backend_new(97, 1, err);
    CHECK(bad == NULL);
    CHECK_MSG(strstr(err, "device 97") != NULL, "%s", err);
    CHECK(glmv_now_ms() - t0 < 5000);
    /* an allocation beyond the device reports NULL, and leaves no sticky error */
    void *p = be->alloc(be, (size_t)1 << 50);
    CHECK(p == NULL);
    CHECK(be->status(be, err) == 0);
    CHECK(be->device_bytes(be) > 0);
    printf("  device %s, %.2f GiB in use\n", be->device_name, be->device_bytes(be) / 1073741824.0);
}

/* Memory that grows (GLMV_CUDA_VMM=1, src/cuda/vmm.cu): a range backed a granule at a time
 * keeps what was written as it grows, gives the device memory back when it shrinks (the
 * device's own count, cudaMemGetInfo, goes down), takes it again, and a commit past the
 * range fails and changes nothing. A kernel (add) reads and writes across granules. */
TEST(grow_memory) {
    NEED_GPU();
    char err[GLMV_ERR_SIZE] = "";
    setenv("GLMV_CUDA_VMM", "1", 1);
    glmv_backend *g = glmv_cuda_backend_new(0, 1, err);
    unsetenv("GLMV_CUDA_VMM");
    CHECK_MSG(g != NULL, "%s", err);
    if (!g) return;
    if (!g->reserve) {
        test_skip("the driver or device has no virtual memory management");
        g->destroy(g);
        return;
    }
    size_t gran = 0;
    float *p = g->reserve(g, ((size_t)5 << 21) + 100, &gran);
    CHECK(p != NULL && gran > 0 && gran % 4096 == 0);
    if (!p) {
        g->destroy(g);
        return;
    }
    size_t nf = gran / sizeof(float);  /* floats a granule */
    float *h = malloc(gran * 3), *back = malloc(gran * 3);
    for (size_t i = 0; i < nf * 3; i++) h[i] = (float)(i % 1000003) * 0.5f;
    CHECK(g->commit(g, p, gran) == 0);
    g->write(g, p, h, gran);
    int64_t b1 = g->device_bytes(g);
    CHECK(g->commit(g, p, gran * 3) == 0);
    int64_t b3 = g->device_bytes(g);
    CHECK_MSG(b3 - b1 >= (int64_t)(2 * gran), "%lld -> %lld bytes", (long long)b1, (long long)b3);
    g->write(g, p + nf, h + nf, gran * 2);
    g->read(g, back, p, gran * 3);
    CHECK(memcmp(back, h, gran * 3) == 0);
    /* a kernel over the three granules: p[i] += p[i] */
    g->add(g, p, p, p, (int64_t)nf * 3);
    g->read(g, back, p, gran * 3);
    int bad = 0;
    for (size_t i = 0; i < nf * 3; i++) bad += back[i] != h[i] * 2;
    CHECK_MSG(bad == 0, "%d of %zu floats wrong after add", bad, nf * 3);
    /* past the range: refused, nothing changed */
    size_t past = ((size_t)5 << 21) + 100;
    past = (past + gran - 1) / gran * gran + gran;
    CHECK(g->commit(g, p, past) == -1);
    g->read(g, back, p, gran);
    CHECK(back[7] == h[7] * 2);
    /* shrink to one granule: memory given back, the first granule kept */
    g->decommit(g, p, gran);
    int64_t bs = g->device_bytes(g);
    CHECK_MSG(b3 - bs >= (int64_t)(2 * gran), "%lld -> %lld bytes", (long long)b3, (long long)bs);
    g->read(g, back, p, gran);
    bad = 0;
    for (size_t i = 0; i < nf; i++) bad += back[i] != h[i] * 2;
    CHECK(bad == 0);
    /* and grow again */
    CHECK(g->commit(g, p, gran * 2) == 0);
    g->write(g, p + nf, h, gran);
    g->read(g, back, p + nf, gran);
    CHECK(memcmp(back, h, gran) == 0);
    CHECK(g->status(g, err) == 0);
    printf("  granule %zu KB; %.1f MB in use with 1, %.1f with 3, %.1f after shrinking\n", gran >> 10,
           b1 / 1048576.0, b3 / 1048576.0, bs / 1048576.0);
    g->release(g, p);
    free(h);
    free(back);
    g->destroy(g);
}

/* ------------------------------------------------------------------ bench */

static double time_ms(void (*fn)(void *), void *arg, int reps) {
    fn(arg); /* warm-up */
    be->sync(be);
    double t0 = glmv_now_ms();
    for (int i = 0; i < reps; i++) fn(arg);
    be->sync(be);
    return (glmv_now_ms() - t0) / reps;
}

typedef struct {
    glmv_tensor *w;   /* n_w copies rotate so that L2 does not hold the weight */
    int n_w, i;
    float *x, *y;
    int64_t m;
} mm_arg;
static void mm_fn(void *p) {
    mm_arg *a = p;
    be->matmul(be, a->y, a->x, &a->w[a->i++ % a->n_w], NULL, a->m);
}

/* bf16 tensor filled with a repeated random block (cheap to make, not zeros) */
static glmv_tensor bench_tensor(int64_t r, int64_t c) {
    glmv_tensor t;
    memset(&t, 0, sizeof t);
    t.name = "bench";
    t.dtype = GLMV_BF16;
    t.ndim = 2;
    t.shape[0] = r;
    t.shape[1] = c;
    size_t n = (size_t)(r * c);
    uint16_t *p = malloc(n * 2);
    GLMV_ASSERT(p);
    size_t blk = 1 << 20;
    for (size_t i = 0; i < blk && i < n; i++) p[i] = glmv_f32_to_bf16(frand() * 0.05f);
    for (size_t i = blk; i < n; i += blk) memcpy(p + i, p, (n - i < blk ? n - i : blk) * 2);
    t.data = t.host = p;
    char err[GLMV_ERR_SIZE];
    if (be->upload(be, &t, err)) {
        printf("bench: %s\n", err);
        exit(1);
    }
    free(t.host);
    t.host = NULL;
    return t;
}

static void bench_matmul(int64_t m, int64_t n, int64_t k, const char *label) {
    size_t bytes = (size_t)(n * k) * 2;
    int copies = (int)((512ull << 20) / bytes) + 1;
    if (copies > 8) copies = 8;
    mm_arg a = {.n_w = copies, .m = m};
    a.w = calloc((size_t)copies, sizeof(glmv_tensor));
    for (int i = 0; i < copies; i++) a.w[i] = bench_tensor(n, k);
    float *x = rand_buf(m * k, 1.0f);
    a.x = dev_from(x, m * k);
    a.y = be->alloc(be, sizeof(float) * (size_t)(m * n));
    int reps = m <= 64 ? 200 : 30;
    double ms = time_ms(mm_fn, &a, reps);
    double gbs = (double)bytes / (ms * 1e-3) / 1e9;
    double tfl = 2.0 * m * n * k / (ms * 1e-3) / 1e12;
    printf("  %-26s m=%-5lld %6lldx%-6lld %9.1f us  %7.0f GB/s  %6.1f TFLOP/s\n", label,
           (long long)m, (long long)n, (long long)k, ms * 1e3, gbs, tfl);
    for (int i = 0; i < copies; i++) be->free(be, a.w[i].data);
    be->free(be, a.x);
    be->free(be, a.y);
    free(a.w);
    free(x);
}

typedef struct {
    float *out, *q, *k, *v;
    int64_t n, pos0, ldq, ldk;
    int nh, nkv, hd, causal;
    int64_t cu[2];
} at_arg;
static void at_fn(void *p) {
    at_arg *a = p;
    if (a->causal)
        be->attn_causal(be, a->out, a->q, a->ldq, a->k, a->v, a->n, a->pos0, a->nh, a->nkv, a->hd,
                        0.088388f);
    else
        be->attn_segments(be, a->out, a->q, a->ldq, a->k, a->ldk, a->v, a->ldk, a->cu, 1, a->nh,
                          a->hd, 0.088388f);
}

static void bench_attn(int causal, int64_t n, int64_t pos0, int nh, int nkv, const char *label) {
    at_arg a = {.n = n, .pos0 = pos0, .nh = nh, .nkv = nkv, .hd = 128, .causal = causal};
    int64_t kv_rows = pos0 + n, kvd = (int64_t)nkv * 128;
    a.ldq = (int64_t)nh * 128;
    a.ldk = kvd;
    a.cu[0] = 0;
    a.cu[1] = n;
    float *h = rand_buf(kv_rows * kvd > n * a.ldq ? kv_rows * kvd : n * a.ldq, 1.0f);
    a.q = dev_from(h, n * a.ldq);
    a.k = dev_from(h, kv_rows * kvd);
    a.v = dev_from(h, kv_rows * kvd);
    a.out = be->alloc(be, sizeof(float) * (size_t)(n * nh * 128));
    double ms = time_ms(at_fn, &a, n > 8 ? 10 : 100);
    double flop = causal ? 4.0 * n * (pos0 + n / 2.0) * 128 * nh : 4.0 * n * n * 128 * nh;
    double bytes = 2.0 * kv_rows * kvd * (be->caps.kv_bf16 ? 2 : 4); /* (random bits: a timing only) */
    printf("  %-34s %9.1f us  %7.1f TFLOP/s  %6.0f GB/s (K+V)\n", label, ms * 1e3,
           flop / (ms * 1e-3) / 1e12, bytes / (ms * 1e-3) / 1e9);
    be->free(be, a.q);
    be->free(be, a.k);
    be->free(be, a.v);
    be->free(be, a.out);
    free(h);
}

typedef struct {
    float *y, *x, *x2;
    glmv_tensor *w;
} small_arg;
static void rms_fn(void *p) {
    small_arg *a = p;
    be->rmsnorm(be, a->y, a->x, a->w, 1, 4096, 1e-5f);
}
static void add_fn(void *p) {
    small_arg *a = p;
    be->add(be, a->y, a->x, a->x2, 4096);
}

/* ---- op sequences of the model (as src/text.c and src/vision.c call them) ---- */

static glmv_tensor bench_vec(int64_t d) {
    glmv_tensor t = bench_tensor(d, 1);
    t.ndim = 1;
    return t;
}

typedef struct {
    glmv_tensor in_norm, q_w, q_b, k_w, k_b, v_w, v_b, o_w, post_attn_norm, pre_mlp_norm,
        gate_up, down, post_mlp_norm;
} bench_layer;

static void free_t(glmv_tensor *t) { be->free(be, t->data); }

static float *dev_random(int64_t n) { /* n floats of a repeated random block */
    int64_t blk = n < (1 << 20) ? n : (1 << 20);
    float *h = rand_buf(blk, 1.0f), *d = be->alloc(be, sizeof(float) * (size_t)n);
    GLMV_ASSERT(d);
    for (int64_t i = 0; i < n; i += blk)
        be->write(be, d + i, h, sizeof(float) * (size_t)(n - i < blk ? n - i : blk));
    be->sync(be);
    free(h);
    return d;
}

/* decode (n = 1) and prefill (n rows) of the 9B decoder; returns ms per call */
static double bench_text(int64_t n, int64_t pos0, int reps) {
    enum { NL = 40, DISTINCT = 4 };
    const int64_t H = 4096, I = 13696, V = 151552, kvd = 256;
    const int nh = 32, nkv = 2, hd = 128;
    static bench_layer L[DISTINCT]; /* made once, kept to the end of the process */
    static glmv_tensor emb, head, norm;
    static int made;
    for (int i = 0; i < DISTINCT && !made; i++) {
        L[i].in_norm = bench_vec(H);
        L[i].q_w = bench_tensor(H, H);
        L[i].q_b = bench_vec(H);
        L[i].k_w = bench_tensor(kvd, H);
        L[i].k_b = bench_vec(kvd);
        L[i].v_w = bench_tensor(kvd, H);
        L[i].v_b = bench_vec(kvd);
        L[i].o_w = bench_tensor(H, H);
        L[i].post_attn_norm = bench_vec(H);
        L[i].pre_mlp_norm = bench_vec(H);
        L[i].gate_up = bench_tensor(2 * I, H);
        L[i].down = bench_tensor(H, I);
        L[i].post_mlp_norm = bench_vec(H);
    }
    if (!made) {
        emb = bench_tensor(V, H);
        head = bench_tensor(V, H);
        norm = bench_vec(H);
        made = 1;
    }
    float *kc[NL], *vc[NL];
    for (int l = 0; l < NL; l++) {
        kc[l] = dev_random((pos0 + n) * kvd);
        vc[l] = dev_random((pos0 + n) * kvd);
    }
    float *x = be->alloc(be, sizeof(float) * (size_t)(n * H)), *xn = be->alloc(be, sizeof(float) * (size_t)(n * H));
    float *q = be->alloc(be, sizeof(float) * (size_t)(n * H)), *att = be->alloc(be, sizeof(float) * (size_t)(n * H));
    float *t1 = be->alloc(be, sizeof(float) * (size_t)(n * H)), *t2 = be->alloc(be, sizeof(float) * (size_t)(n * H));
    float *gu = be->alloc(be, sizeof(float) * (size_t)(n * 2 * I)), *hh = be->alloc(be, sizeof(float) * (size_t)(n * I));
    float *logits = be->alloc(be, sizeof(float) * (size_t)V), *hlog = malloc(sizeof(float) * (size_t)V);
    float *hcs = rand_buf(n * 32, 1.0f), *cs = be->alloc(be, sizeof(float) * (size_t)(n * 32));
    float *sn = be->alloc(be, sizeof(float) * (size_t)(n * 32));
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(i * 7919 % V);
    double best = 0, t0 = 0;
    for (int r = -2; r < reps; r++) {
        if (r == 0) t0 = glmv_now_ms();
        be->embed(be, x, &emb, ids, n);
        be->write(be, cs, hcs, sizeof(float) * (size_t)(n * 32));
        be->write(be, sn, hcs, sizeof(float) * (size_t)(n * 32));
        for (int l = 0; l < NL; l++) {
            bench_layer *B = &L[l % DISTINCT];
            float *k = kc[l] + pos0 * kvd, *v = vc[l] + pos0 * kvd;
            be->rmsnorm(be, xn, x, &B->in_norm, n, H, 1e-5f);
            be->matmul(be, q, xn, &B->q_w, &B->q_b, n);
            be->matmul(be, k, xn, &B->k_w, &B->k_b, n);
            be->matmul(be, v, xn, &B->v_w, &B->v_b, n);
            be->rope_interleaved(be, q, H, cs, sn, n, nh, hd, 64);
            be->rope_interleaved(be, k, kvd, cs, sn, n, nkv, hd, 64);
            be->attn_causal(be, att, q, H, kc[l], vc[l], n, pos0, nh, nkv, hd, 0.0883883f);
            be->matmul(be, t1, att, &B->o_w, NULL, n);
            be->rmsnorm(be, t2, t1, &B->post_attn_norm, n, H, 1e-5f);
            be->add(be, x, x, t2, n * H);
            be->rmsnorm(be, xn, x, &B->pre_mlp_norm, n, H, 1e-5f);
            be->matmul(be, gu, xn, &B->gate_up, NULL, n);
            be->swiglu(be, hh, gu, 2 * I, gu + I, 2 * I, n, I);
            be->matmul(be, t1, hh, &B->down, NULL, n);
            be->rmsnorm(be, t2, t1, &B->post_mlp_norm, n, H, 1e-5f);
            be->add(be, x, x, t2, n * H);
        }
        be->rmsnorm(be, xn, x + (n - 1) * H, &norm, 1, H, 1e-5f);
        be->matmul(be, logits, xn, &head, NULL, 1);
        be->read(be, hlog, logits, sizeof(float) * (size_t)V);
    }
    best = (glmv_now_ms() - t0) / reps;
    for (int l = 0; l < NL; l++) {
        be->free(be, kc[l]);
        be->free(be, vc[l]);
    }
    float *bufs[] = {x, xn, q, att, t1, t2, gu, hh, logits, cs, sn};
    for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++) be->free(be, bufs[j]);
    free(hlog);
    free(hcs);
    free(ids);
    return best;
}

/* A weight of the decode-step bench: BF16 (bench_tensor), or with GLMV_BENCH_QUANT=q8_0|q4_0 random
 * values of the same size quantized to that format (make_quant; its host blocks kept) */
static glmv_tensor bench_weight(int64_t r, int64_t c) {
    const char *qe = getenv("GLMV_BENCH_QUANT");
    if (!qe || !*qe) return bench_tensor(r, c);
    if (strcmp(qe, "q4_0") && strcmp(qe, "q8_0")) {
        printf("bench: GLMV_BENCH_QUANT=%s: q8_0 or q4_0\n", qe);
        exit(1);
    }
    glmv_tensor t = make_quant(!strcmp(qe, "q4_0") ? GLMV_Q4_0 : GLMV_Q8_0, r, c, 0.05f, 16);
    char err[GLMV_ERR_SIZE] = "";
    if (be->upload(be, &t, err)) {
        printf("bench: %s\n", err);
        exit(1);
    }
    return t;
}

/* A decode step of the 9B as src/text.c runs it today (q/k/v joined, the batched decode attention,
 * norm_add_norm), for m streams (their rows through every product together) at pos0 keys each, with
 * parts left out (skip: 1 the small ops, 2 attention, 4 the matrix products), so that differences
 * say where the step's time goes; ms per step. */
static double bench_decode_parts(int m, int64_t pos0, int skip, int reps) {
    enum { NL = 40, DISTINCT = 4 };
    const int64_t H = 4096, I = 13696, V = 151552, kvd = 256, ldq = H + 2 * kvd;
    const int nh = 32, nkv = 2, hd = 128;
    static struct { glmv_tensor in_norm, qkv_w, qkv_b, o_w, n1, n2, gate_up, down, n3; } L[DISTINCT];
    static glmv_tensor head;
    static int made;
    for (int i = 0; i < DISTINCT && !made; i++) {
        L[i].in_norm = bench_vec(H);
        L[i].qkv_w = bench_weight(ldq, H);
        L[i].qkv_b = bench_vec(ldq);
        L[i].o_w = bench_weight(H, H);
        L[i].n1 = bench_vec(H);
        L[i].n2 = bench_vec(H);
        L[i].gate_up = bench_weight(2 * I, H);
        L[i].down = bench_weight(H, I);
        L[i].n3 = bench_vec(H);
    }
    if (!made) {
        head = bench_weight(V, H);
        made = 1;
    }
    /* each stream's caches of every layer, and the tables the batched attention reads them through:
     * made once for the process's m and pos0, as the weights (every call stores row pos0 again) */
    static void *tab[NL];
    static int kv_m;
    static int64_t kv_pos;
    GLMV_ASSERT(!kv_m || (kv_m == m && kv_pos == pos0));
    if (!kv_m) {
        void **htab = malloc(sizeof(void *) * (size_t)(3 * m));
        GLMV_ASSERT(htab);
        for (int l = 0; l < NL; l++) {
            for (int i = 0; i < m; i++) {
                htab[i] = dev_random((pos0 + 1) * kvd);
                htab[m + i] = dev_random((pos0 + 1) * kvd);
                const int64_t nk = pos0 + 1;
                memcpy(&htab[2 * m + i], &nk, 8);
            }
            tab[l] = be->alloc(be, sizeof(void *) * (size_t)(3 * m));
            be->write(be, tab[l], htab, sizeof(void *) * (size_t)(3 * m));
        }
        free(htab);
        kv_m = m;
        kv_pos = pos0;
    }
    float *x = dev_random(m * H), *xn = dev_random(m * H), *q = dev_random(m * ldq), *att = dev_random(m * H);
    float *t1 = dev_random(m * H), *gu = dev_random(m * 2 * I), *hh = dev_random(m * I), *logits = dev_random(m * V);
    float *cs = dev_random(32 * m), *sn = dev_random(32 * m);
    const int glu_off = getenv("GLMV_CUDA_GLU") && !atoi(getenv("GLMV_CUDA_GLU"));
    double t0 = 0;
    for (int r = -2; r < reps; r++) {
        if (r == 0) {
            be->sync(be);
            t0 = glmv_now_ms();
        }
        for (int l = 0; l < NL; l++) {
            const int b = l % DISTINCT;
            if (!(skip & 4)) be->matmul(be, q, xn, &L[b].qkv_w, &L[b].qkv_b, m);
            if (!(skip & 1)) be->rope_interleaved(be, q, ldq, cs, sn, m, nh + nkv, hd, 64);
            if (!(skip & 2))
                be->attn_decode_batch(be, att, q, ldq, q + H, q + H + kvd, ldq, (void *const *)tab[l],
                                      (void *const *)tab[l] + m, (const int64_t *)((void **)tab[l] + 2 * m), m,
                                      pos0 + 1, nh, nkv, hd, 0.0883883f);
            if (!(skip & 4)) be->matmul(be, t1, att, &L[b].o_w, NULL, m);
            if (!(skip & 1)) be->norm_add_norm(be, x, xn, t1, &L[b].n1, &L[b].n2, m, H, 1e-5f);
            /* as text.c: gate/up and the SwiGLU in one op where the backend takes the rows (a few),
             * else the product, then the SwiGLU straight into down's product */
            if (!(skip & 4) && be->matmul_glu && !glu_off && !be->matmul_glu(be, hh, xn, &L[b].gate_up, m)) {
                be->matmul(be, t1, hh, &L[b].down, NULL, m);
            } else {
                if (!(skip & 4)) be->matmul(be, gu, xn, &L[b].gate_up, NULL, m);
                if (!(skip & 4) && be->matmul_swiglu)
                    be->matmul_swiglu(be, t1, gu, 2 * I, gu + I, 2 * I, hh, &L[b].down, NULL, m);
                else {
                    if (!(skip & 1)) be->swiglu(be, hh, gu, 2 * I, gu + I, 2 * I, m, I);
                    if (!(skip & 4)) be->matmul(be, t1, hh, &L[b].down, NULL, m);
                }
            }
            if (!(skip & 1)) be->norm_add_norm(be, x, xn, t1, &L[b].n3, &L[(b + 1) % DISTINCT].in_norm, m, H, 1e-5f);
        }
        if (!(skip & 4)) be->matmul(be, logits, xn, &head, NULL, m);
        be->sync(be);
    }
    double ms = (glmv_now_ms() - t0) / reps;
    float *bufs[] = {x, xn, q, att, t1, gu, hh, logits, cs, sn};
    for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++) be->free(be, bufs[j]);
    return ms;
}

static void bench_decode(void) {
    static const struct { int skip; const char *what; } v[] = {
        {0, "the whole step"}, {1, "without the small ops"}, {2, "without attention"},
        {3, "the matrix products alone"}, {4, "without the matrix products"}, {6, "the small ops alone"},
        {5, "attention alone"}};
    const char *qe = getenv("GLMV_BENCH_QUANT");
    /* bytes a weight: BF16 2, Q8_0 34/32, Q4_0 18/32 */
    const double per = !qe || !*qe ? 2.0 : !strcmp(qe, "q4_0") ? 18.0 / 32 : 34.0 / 32;
    const double gb = (40.0 * ((4608 + 4096 + 27392) * 4096.0 + 4096.0 * 13696) + 151552.0 * 4096) * per * 1e-9;
    /* GLMV_BENCH_ROWS=m: m streams' rows a step (default 1) */
    const int m = getenv("GLMV_BENCH_ROWS") && atoi(getenv("GLMV_BENCH_ROWS")) > 0 ? atoi(getenv("GLMV_BENCH_ROWS")) : 1;
    printf("decode step of the 9B (40 layers + lm_head, %.1f GB of %s weights), %d stream%s, parts left out:\n", gb,
           !qe || !*qe ? "BF16" : qe, m, m == 1 ? "" : "s");
    /* GLMV_BENCH_QUICK=1: the whole step and the products alone only */
    const int quick = getenv("GLMV_BENCH_QUICK") && atoi(getenv("GLMV_BENCH_QUICK"));
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            if (quick && v[i].skip != 0 && v[i].skip != 3) continue;
            double ms = bench_decode_parts(m, 1024, v[i].skip, 20);
            if (v[i].skip & 4)
                printf("  1k context, %-28s %7.3f ms\n", v[i].what, ms);
            else
                printf("  1k context, %-28s %7.3f ms  (weights %.1f GB: %.2f TB/s)\n", v[i].what, ms, gb, gb / ms);
        }
}

/* the vision tower on one image of N patches (as src/vision.c); ms per call */
static double bench_vision(int64_t N, int reps) {
    enum { DEPTH = 24, DISTINCT = 2 };
    const int64_t Hv = 1536, Ov = 4096, Iv = 13696, K = 1176, M = N / 4;
    const int nh = 12, hd = 128;
    struct { glmv_tensor n1, qkv, proj, n2, gate, up, down; } B[DISTINCT];
    for (int i = 0; i < DISTINCT; i++) {
        B[i].n1 = bench_vec(Hv);
        B[i].qkv = bench_tensor(3 * Hv, Hv);
        B[i].proj = bench_tensor(Hv, Hv);
        B[i].n2 = bench_vec(Hv);
        B[i].gate = bench_tensor(Ov, Hv);
        B[i].up = bench_tensor(Ov, Hv);
        B[i].down = bench_tensor(Hv, Ov);
    }
    glmv_tensor pw = bench_tensor(Hv, K), pb = bench_vec(Hv), pcn = bench_vec(Hv), post = bench_vec(Hv);
    glmv_tensor ds = bench_tensor(Ov, 4 * Hv), dsb = bench_vec(Ov), mp = bench_tensor(Ov, Ov);
    glmv_tensor lw = bench_vec(Ov), lb = bench_vec(Ov), mg = bench_tensor(Iv, Ov), mu = bench_tensor(Iv, Ov);
    glmv_tensor md = bench_tensor(Ov, Iv);
    float *px = dev_random(N * K), *cs = dev_random(N * hd / 2), *pe = dev_random(N * Hv);
    float *h = be->alloc(be, sizeof(float) * (size_t)(N * Hv)), *hn = be->alloc(be, sizeof(float) * (size_t)(N * Hv));
    float *qkv = be->alloc(be, sizeof(float) * (size_t)(N * 3 * Hv)), *att = be->alloc(be, sizeof(float) * (size_t)(N * Hv));
    float *tmp = be->alloc(be, sizeof(float) * (size_t)(N * Hv)), *g1 = be->alloc(be, sizeof(float) * (size_t)(N * Ov));
    float *u1 = be->alloc(be, sizeof(float) * (size_t)(N * Ov)), *z = be->alloc(be, sizeof(float) * (size_t)(M * Ov));
    float *z2 = be->alloc(be, sizeof(float) * (size_t)(M * Ov)), *g2 = be->alloc(be, sizeof(float) * (size_t)(M * Iv));
    float *u2 = be->alloc(be, sizeof(float) * (size_t)(M * Iv)), *out = be->alloc(be, sizeof(float) * (size_t)(M * Ov));
    int64_t cu[2] = {0, N};
    double t0 = 0;
    for (int r = -1; r < reps; r++) {
        if (r == 0) {
            be->sync(be);
            t0 = glmv_now_ms();
        }
        be->matmul(be, h, px, &pw, &pb, N);
        be->rmsnorm(be, hn, h, &pcn, N, Hv, 1e-5f);
        be->add(be, h, hn, pe, N * Hv);
        for (int l = 0; l < DEPTH; l++) {
            __typeof__(&B[0]) b = &B[l % DISTINCT];
            be->rmsnorm(be, hn, h, &b->n1, N, Hv, 1e-5f);
            be->matmul(be, qkv, hn, &b->qkv, NULL, N);
            be->rope_neox(be, qkv, 3 * Hv, cs, cs, N, nh, hd);
            be->rope_neox(be, qkv + Hv, 3 * Hv, cs, cs, N, nh, hd);
            be->attn_segments(be, att, qkv, 3 * Hv, qkv + Hv, 3 * Hv, qkv + 2 * Hv, 3 * Hv, cu, 1,
                              nh, hd, 0.0883883f);
            be->matmul(be, tmp, att, &b->proj, NULL, N);
            be->add(be, h, h, tmp, N * Hv);
            be->rmsnorm(be, hn, h, &b->n2, N, Hv, 1e-5f);
            be->matmul(be, g1, hn, &b->gate, NULL, N);
            be->matmul(be, u1, hn, &b->up, NULL, N);
            be->swiglu(be, g1, g1, Ov, u1, Ov, N, Ov);
            be->matmul(be, tmp, g1, &b->down, NULL, N);
            be->add(be, h, h, tmp, N * Hv);
        }
        be->rmsnorm(be, hn, h, &post, N, Hv, 1e-5f);
        be->permute_021(be, tmp, hn, M, 4, Hv);
        be->matmul(be, z, tmp, &ds, &dsb, M);
        be->matmul(be, z2, z, &mp, NULL, M);
        be->layernorm(be, z, z2, &lw, &lb, M, Ov, 1e-5f);
        be->gelu_erf(be, z, z, M * Ov);
        be->matmul(be, g2, z, &mg, NULL, M);
        be->matmul(be, u2, z, &mu, NULL, M);
        be->swiglu(be, g2, g2, Iv, u2, Iv, M, Iv);
        be->matmul(be, out, g2, &md, NULL, M);
    }
    be->sync(be);
    double ms = (glmv_now_ms() - t0) / reps;
    for (int i = 0; i < DISTINCT; i++) {
        glmv_tensor *ts[] = {&B[i].n1, &B[i].qkv, &B[i].proj, &B[i].n2, &B[i].gate, &B[i].up, &B[i].down};
        for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) free_t(ts[j]);
    }
    glmv_tensor *ts[] = {&pw, &pb, &pcn, &post, &ds, &dsb, &mp, &lw, &lb, &mg, &mu, &md};
    for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) free_t(ts[j]);
    float *bufs[] = {px, cs, pe, h, hn, qkv, att, tmp, g1, u1, z, z2, g2, u2, out};
    for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++) be->free(be, bufs[j]);
    return ms;
}

static void bench_model(void) {
    printf("model op sequences (9B shapes, as src/text.c / src/vision.c call the ops):\n");
    double d1 = bench_text(1, 1024, 20);
    printf("  decode step at 1k context      %8.2f ms  = %6.1f tokens/s\n", d1, 1000.0 / d1);
    double d8 = bench_text(1, 8192, 20);
    printf("  decode step at 8k context      %8.2f ms  = %6.1f tokens/s\n", d8, 1000.0 / d8);
    double d32 = bench_text(1, 32768, 10);
    printf("  decode step at 32k context     %8.2f ms  = %6.1f tokens/s\n", d32, 1000.0 / d32);
    double p = bench_text(512, 0, 5);
    printf("  prefill 512 tokens             %8.2f ms\n", p);
    double v = bench_vision(6400, 5);
    printf("  vision tower, 6400 patches     %8.2f ms\n", v);
    char err[GLMV_ERR_SIZE];
    if (be->status(be, err)) printf("bench: %s\n", err);
}

/* block-format weights: the 9B's decoder products at 1 to 256 rows (test_cuda --bench-quant;
 * GLMV_CUDA_MMQ=0 to time the kernels the tensor-core one replaces). GB/s counts the weights'
 * bytes alone. */
static void bench_qmatmul(glmv_dtype dt, int64_t n, int64_t k, const char *label) {
    static const int64_t rows[] = {1, 8, 9, 16, 32, 64, 128, 256};
    /* GLMV_BENCH_ONE_ROW=1: the one-row product alone */
    const int n_rows = getenv("GLMV_BENCH_ONE_ROW") && atoi(getenv("GLMV_BENCH_ONE_ROW")) ? 1 : 8;
    glmv_tensor h = make_quant(dt, n, k, 0.05f, 16);
    size_t bytes = glmv_dtype_row_bytes(dt, k) * (size_t)n;
    int copies = (int)((512ull << 20) / bytes) + 1;
    if (copies > 8) copies = 8;
    glmv_tensor *w = calloc((size_t)copies, sizeof(glmv_tensor));
    for (int i = 0; i < copies; i++) w[i] = dev_tensor(&h);
    float *x = rand_buf(256 * k, 1.0f), *dx = dev_from(x, 256 * k), *dy = be->alloc(be, sizeof(float) * (size_t)(256 * n));
    for (int r = 0; r < n_rows; r++) {
        mm_arg a = {.w = w, .n_w = copies, .m = rows[r], .x = dx, .y = dy};
        double ms = time_ms(mm_fn, &a, 100);
        printf("  %-5s %-13s m=%-4lld %6lldx%-6lld %8.1f us  %6.0f GB/s\n", glmv_dtype_name(dt), label,
               (long long)rows[r], (long long)n, (long long)k, ms * 1e3, (double)bytes / (ms * 1e-3) / 1e9);
    }
    for (int i = 0; i < copies; i++) be->free(be, w[i].data);
    be->free(be, dx);
    be->free(be, dy);
    free(w);
    free(x);
    free(h.host);
}

static void bench_quant(void) {
    static const glmv_dtype dts[] = {GLMV_Q8_0, GLMV_Q4_0};
    for (int d = 0; d < 2; d++) {
        bench_qmatmul(dts[d], 4608, 4096, "q/k/v");
        bench_qmatmul(dts[d], 4096, 4096, "o_proj");
        bench_qmatmul(dts[d], 27392, 4096, "gate_up_proj");
        bench_qmatmul(dts[d], 4096, 13696, "down_proj");
    }
}

/* several streams' decode rows (GLMV_BENCH_BATCHED=1: these alone) */
static void bench_batched(void) {
    printf("batched decode, several streams' rows (BF16 weights, x rounded to bf16):\n");
    static const int64_t streams[] = {16, 32, 64};
    for (int i = 0; i < 3; i++) {
        bench_matmul(streams[i], 4608, 4096, "q/k/v");
        bench_matmul(streams[i], 4096, 4096, "o_proj");
        bench_matmul(streams[i], 27392, 4096, "gate_up_proj");
        bench_matmul(streams[i], 4096, 13696, "down_proj");
    }
    printf("a batched pass's rows: 512 prompt rows, and 16 or 64 decode rows beside them:\n");
    static const int64_t pass_rows[] = {512, 528, 576};
    for (int i = 0; i < 3; i++) bench_matmul(pass_rows[i], 27392, 4096, "gate_up_proj");
}

static int bench(void) {
    if (!be) {
        printf("SKIP bench: %s\n", be_err);
        return 0;
    }
    printf("bench on %s (9B shapes; weights rotate through >= 512 MB so L2 does not hold them)\n",
           be->device_name);
    if (getenv("GLMV_BENCH_BATCHED")) {
        bench_batched();
        return 0;
    }
    printf("decode matrix-vector (own kernel, BF16 weights):\n");
    bench_matmul(1, 4608, 4096, "q/k/v (joined)");
    bench_matmul(1, 4096, 4096, "q_proj / o_proj");
    bench_matmul(1, 256, 4096, "k_proj / v_proj");
    bench_matmul(1, 27392, 4096, "gate_up_proj");
    bench_matmul(1, 4096, 13696, "down_proj");
    bench_matmul(1, 151552, 4096, "lm_head");
    bench_matmul(4, 27392, 4096, "gate_up_proj, 4 rows");
    bench_matmul(8, 4096, 4096, "q_proj, 8 rows");
    bench_batched();
    printf("prefill / vision GEMM (cuBLAS, bf16 tensor cores, fp32 accumulate):\n");
    bench_matmul(512, 4096, 4096, "q_proj / o_proj");
    bench_matmul(512, 27392, 4096, "gate_up_proj");
    bench_matmul(512, 4096, 13696, "down_proj");
    bench_matmul(6400, 4608, 1536, "vision qkv");
    bench_matmul(6400, 1536, 1536, "vision proj");
    bench_matmul(6400, 4096, 1536, "vision gate / up");
    bench_matmul(6400, 1536, 4096, "vision down");
    bench_matmul(1600, 13696, 4096, "merger gate / up");
    printf("attention:\n");
    bench_attn(1, 1, 1024, 32, 2, "decode, 1k context");
    bench_attn(1, 1, 8192, 32, 2, "decode, 8k context");
    bench_attn(1, 1, 32768, 32, 2, "decode, 32k context");
    bench_attn(1, 512, 0, 32, 2, "prefill 512, causal (flash)");
    bench_attn(0, 6400, 0, 12, 12, "vision 6400 patches (flash)");
    bench_attn(1, 4096, 0, 32, 2, "prefill 4096, causal (flash)");
    bench_attn(1, 28032, 0, 32, 2, "prefill 28032, causal (a minute of video)");
    printf("small ops (launch-bound at decode):\n");
    glmv_tensor w = bench_tensor(4096, 0 + 1);
    w.ndim = 1;
    small_arg s;
    float *h = rand_buf(4096, 1.0f);
    s.x = dev_from(h, 4096);
    s.x2 = dev_from(h, 4096);
    s.y = be->alloc(be, 4096 * 4);
    s.w = &w;
    printf("  rmsnorm 1x4096 %.1f us, add 4096 %.1f us (per call, back to back)\n",
           time_ms(rms_fn, &s, 1000) * 1e3, time_ms(add_fn, &s, 1000) * 1e3);
    char err[GLMV_ERR_SIZE];
    if (be->status(be, err)) {
        printf("bench: %s\n", err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    char err[GLMV_ERR_SIZE] = "";
    /* the backends with their default caches (bf16 in bf16 precision, float32 in f32), and bf16
     * precision with float32 caches, whatever GLMV_KV_BF16 says */
    char *kv_env = getenv("GLMV_KV_BF16") ? strdup(getenv("GLMV_KV_BF16")) : NULL;
    unsetenv("GLMV_KV_BF16");
    be = getenv("GLMV_NO_CUDA") ? NULL : glmv_cuda_backend_new(0, 1, err);
    if (be) be_f32 = glmv_cuda_backend_new(0, 0, err);
    if (be) {
        setenv("GLMV_KV_BF16", "0", 1);
        be_kvf32 = glmv_cuda_backend_new(0, 1, err);
    }
    if (kv_env) setenv("GLMV_KV_BF16", kv_env, 1);
    else unsetenv("GLMV_KV_BF16");
    free(kv_env);
    if (!be) {
        snprintf(be_err, sizeof be_err, "no GPU: %s", err[0] ? err : "GLMV_NO_CUDA set");
        printf("SKIP cuda: %s\n", be_err);
    } else {
        printf("cuda backend on %s\n", be->device_name);
    }
    if (argc > 1 && !strcmp(argv[1], "--bench-attn")) {
        if (be) {
            bench_attn(1, 512, 0, 32, 2, "prefill 512, causal (flash)");
            bench_attn(0, 6400, 0, 12, 12, "vision 6400 patches (flash)");
            bench_attn(1, 4096, 0, 32, 2, "prefill 4096, causal (flash)");
            bench_attn(1, 28032, 0, 32, 2, "prefill 28032, causal (a minute of video)");
            be->destroy(be);
        }
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bench-decode")) {
        if (be) bench_decode();
        if (be) be->destroy(be);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bench-quant")) {
        if (be) bench_quant();
        if (be) be->destroy(be);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bench-model")) {
        if (be) bench_model();
        if (be) be->destroy(be);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        int rc = bench();
        if (be) be->destroy(be);
        return rc;
    }
    RUN(matmul_bf16_gemv);
    RUN(matmul_bf16_cublas);
    RUN(matmul_skinny);
    RUN(write_bf16);
    RUN(write_lut);
    RUN(rope_table_2d);
    RUN(rope_kv_store);
    RUN(matmul_swiglu);
    RUN(matmul_glu);
    RUN(matmul_glu_quant);
    RUN(mlp);
    RUN(pos_embed);
    RUN(matmul_quant_rows);
    RUN(norm_quant_fold);
    RUN(norm_bf16_fold);
    RUN(matmul_f32_f16);
    RUN(matmul_quant_decode);
    RUN(matmul_mmq);
    RUN(matmul_quant_prefill);
    RUN(embed);
    RUN(norms);
    RUN(fused_norm_and_copy_rows);
    RUN(norm_threads);
    RUN(rope);
    RUN(attn_causal_decode);
    RUN(attn_causal_flash);
    RUN(attn_decode_batch);
    RUN(dec_tile);
    RUN(kv_bf16);
    RUN(attn_segments);
    RUN(flash_bulk);
    RUN(elementwise);
    RUN(top_k);
    RUN(precision_f32);
    RUN(errors);
    RUN(grow_memory);
    if (be_f32) be_f32->destroy(be_f32);
    if (be_kvf32) be_kvf32->destroy(be_kvf32);
    if (be) be->destroy(be);
    return test_summary("cuda");
}

#else /* !GLMV_CUDA */

int main(void) {
    printf("SKIP cuda: built without CUDA (make CUDA=1)\n");
    test_skipped_ = 1;
    return test_summary("cuda");
}

#endif
