/* test_ops.c -- every op of the CPU backend, at every SIMD level this CPU
 * has and with 1 and 2 threads, against the scalar reference (ref.c).
 *
 * Inputs are random with odd sizes (tails shorter than a vector, ragged GEMM
 * tiles, several k-blocks, row blocks, decode chunks). Agreement is measured
 * as NMSE = Σ(a-b)² / Σb² against thresholds stated in `tol` below: float32
 * kernels against a double-precision reference sit near 1e-14, so 1e-10 leaves
 * room for summation order while any indexing bug gives O(1). Levels the CPU
 * lacks are reported as SKIP. GLMV_SANITIZE=1 uses a smaller subset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cpu/cpu.h"
#include "cpu/ref.h"
#include "ops.h"
#include "quant.h"
#include "test.h"

/* NMSE thresholds */
#define TOL_F32 1e-10       /* float32 math: matmul with F32/F16/BF16 weights, attention, norms */
#define TOL_BF16X 2e-5      /* AVX512-BF16 GEMM: x rounded to bf16 (expected ~1.3e-6) */
/* Q8_0/Q4_0 decode: x rounded to int8 per 32-block (step amax/127, error uniform in half a
 * step: for x uniform in [-1, 1], NMSE = (1/127)^2 / 12 / (1/3) = 1.55e-5, measured 1.3e-5
 * to 1.7e-5); against the same math in scalar code (glmv_dot_q8x_ref) it is TOL_F32 */
#define TOL_Q8X 6e-5
#define TOL_EXACT 0.0       /* embed, add, permute: bit-exact */

static int sanitize;

/* The AVX512-BF16 GEMM path (bf16 x, pair-packed panels, kern_bf16) emulated in
 * plain C on top of the AVX2 table, so its driver is tested on any CPU with AVX2. */
static glmv_cpu_kernels emu_table;
static void emu_kern_bf16(int64_t K2, const uint16_t *A, int64_t lda, const uint16_t *B, float *C,
                          int64_t ldc, int rows, int acc) {
    glmv_cpu_kern_bf16_scalar(emu_table.mr, emu_table.nr, K2, A, lda, B, C, ldc, rows, acc);
}
static void emu_kern_q(int64_t nblk, int L, const uint8_t *A, int64_t lda, const float *ad,
                       const float *as, int64_t ldad, const int8_t *P, float *C, int64_t ldc, int rows,
                       int acc) {
    glmv_cpu_kern_q_scalar(emu_table.mrq, nblk, L, A, lda, ad, as, ldad, P, C, ldc, rows, acc);
}
#define LEVEL_EMU 100

/* ---- backends under test ---- */
#define MAX_BE 24 /* 5 levels x 2 precisions x 2 thread counts, and the emulated table */
static glmv_backend *bes[MAX_BE];
static int be_level[MAX_BE], be_threads[MAX_BE], n_be;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(float lo, float hi) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}
static float *randv(int64_t n, float lo, float hi) {
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = frand(lo, hi);
    return v;
}

/* a random tensor [rows, cols] in dtype dt (rows 0 = 1-D [cols]) */
static glmv_tensor rand_tensor(glmv_dtype dt, int64_t rows, int64_t cols, float lo, float hi) {
    glmv_tensor t = {.name = "t", .dtype = dt};
    int64_t n = (rows ? rows : 1) * cols;
    if (rows) {
        t.ndim = 2;
        t.shape[0] = rows;
        t.shape[1] = cols;
    } else {
        t.ndim = 1;
        t.shape[0] = cols;
    }
    if (glmv_dtype_is_quant(dt)) { /* rows of blocks quantized from random floats */
        void *q = malloc(glmv_dtype_row_bytes(dt, cols) * (size_t)(rows ? rows : 1));
        float *v = randv(cols, lo, hi);
        for (int64_t r = 0; r < (rows ? rows : 1); r++) {
            for (int64_t i = 0; i < cols; i++) v[i] = frand(lo, hi);
            void *row = (char *)q + glmv_dtype_row_bytes(dt, cols) * (size_t)r;
            glmv_quantize_row(dt, v, row, cols);
        }
        free(v);
        t.data = t.host = q;
        return t;
    }
    void *p = malloc((size_t)n * glmv_dtype_size(dt));
    for (int64_t i = 0; i < n; i++) {
        float v = frand(lo, hi);
        if (dt == GLMV_F32) ((float *)p)[i] = v;
        else if (dt == GLMV_F16) ((uint16_t *)p)[i] = glmv_f32_to_f16(v);
        else ((uint16_t *)p)[i] = glmv_f32_to_bf16(v);
    }
    t.data = t.host = p;
    return t;
}

/* does backend b put block-format weights through the int8 GEMM (kern_q)? */
static int be_int8_gemm(int b) {
    return be_level[b] == LEVEL_EMU || be_level[b] >= GLMV_SIMD_AVX512BF16;
}

static const char *be_desc(int b) {
    static char buf[64];
    snprintf(buf, sizeof buf, "%s/%dt/%s",
             be_level[b] == LEVEL_EMU ? "bf16-emulated" : glmv_cpu_simd_name(be_level[b]),
             be_threads[b], bes[b]->bf16 ? "bf16" : "f32");
    return buf;
}

static void check_nmse(const char *what, int b, const float *got, const float *want, int64_t n,
                       double tol) {
    double e = test_nmse(got, want, n);
    int finite = 1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(got[i])) finite = 0;
    CHECK_MSG(finite && e <= tol, "%s on %s: NMSE %.3g > %.3g%s", what, be_desc(b), e, tol,
              finite ? "" : " (non-finite values)");
}

/* ---- tests ---- */

static void level_test(int level) {
    if (!glmv_cpu_simd_supported(level)) {
        char why[96];
        snprintf(why, sizeof why, "this CPU lacks %s; its kernels are not tested here",
                 glmv_cpu_simd_name(level));
        test_skip(why);
        return;
    }
    char err[GLMV_ERR_SIZE];
    for (int bf = 0; bf <= 1; bf++) {
        glmv_backend *be = glmv_cpu_backend_new(1, level, bf, err);
        CHECK_MSG(be != NULL, "%s", err);
        if (!be) continue;
        /* bf16 products are granted only where the CPU has them */
        CHECK_EQ_INT(be->bf16, bf && level >= GLMV_SIMD_AVX512BF16);
        be->destroy(be);
    }
}
TEST(level_avx2) { level_test(GLMV_SIMD_AVX2); }
TEST(level_avx512) { level_test(GLMV_SIMD_AVX512); }
TEST(level_avx512bf16) { level_test(GLMV_SIMD_AVX512BF16); }
TEST(level_amx) { level_test(GLMV_SIMD_AMX); }

/* The AMX tile (16 rows by 32 columns, 16 pairs a step) against the scalar kern_bf16: the
 * products of bf16 values are exact in float32, so only the order of the float32 additions
 * differs; fewer rows or a pair count not a multiple of 16 take the AVX512-BF16 kernel. */
TEST(kern_bf16_amx) {
    if (!glmv_cpu_simd_supported(GLMV_SIMD_AMX)) {
        test_skip("this CPU lacks AMX-BF16 (or the kernel did not grant the tile registers)");
        return;
    }
    const int nr = glmv_cpu_kernels_avx512bf16.nr;
    static const int64_t k2s[] = {16, 32, 1024, 24};
    static const int rowss[] = {16, 11};
    for (int a = 0; a < 4; a++)
        for (int r = 0; r < 2; r++)
            for (int acc = 0; acc <= 1; acc++) {
                int64_t K2 = k2s[a], lda = 2 * K2 + 6, ldc = nr + 8;
                int rows = rowss[r];
                float *af = randv(rows * lda, -2, 2), *bfv = randv(K2 * nr * 2, -2, 2);
                float *c0 = randv(16 * ldc, -1, 1), *c1 = malloc(sizeof(float) * (size_t)(16 * ldc));
                memcpy(c1, c0, sizeof(float) * (size_t)(16 * ldc));
                uint16_t *A = malloc(2 * (size_t)(rows * lda)), *B = malloc(2 * (size_t)(K2 * nr * 2));
                glmv_cpu_to_bf16_scalar(A, af, rows * lda);
                glmv_cpu_to_bf16_scalar(B, bfv, K2 * nr * 2);
                glmv_cpu_kern_bf16_amx(K2, A, lda, B, c0, ldc, rows, acc);
                glmv_cpu_kern_bf16_scalar(16, nr, K2, A, lda, B, c1, ldc, rows, acc);
                double e = test_nmse(c0, c1, 16 * ldc);
                CHECK_MSG(e <= 1e-10, "K2 %lld, %d rows, acc %d: NMSE %.3g", (long long)K2, rows, acc, e);
                free(af);
                free(bfv);
                free(c0);
                free(c1);
                free(A);
                free(B);
            }
}


TEST(backend_errors) {
    char err[GLMV_ERR_SIZE] = "";
    CHECK(glmv_cpu_backend_new(1, 7, 0, err) == NULL && strstr(err, "SIMD level"));
    for (int l = GLMV_SIMD_AVX2; l <= GLMV_SIMD_AMX; l++)
        if (!glmv_cpu_simd_supported(l)) {
            err[0] = 0;
            CHECK(glmv_cpu_backend_new(1, l, 0, err) == NULL && strstr(err, "lacks"));
        }
    glmv_backend *be = glmv_cpu_backend_new(0, GLMV_SIMD_NONE, 1, err);
    CHECK(be && !strcmp(be->name, "cpu-ref") && !be->bf16);
    if (be) be->destroy(be);
    /* GLMV_KV_BF16: 0 or 1, anything else refused with the value named; unset, float32 caches */
    char *was = getenv("GLMV_KV_BF16") ? strdup(getenv("GLMV_KV_BF16")) : NULL;
    const char *vals[] = {"1", "0", "yes", "2", ""};
    for (int i = 0; i < 5; i++) {
        setenv("GLMV_KV_BF16", vals[i], 1);
        err[0] = 0;
        be = glmv_cpu_backend_new(1, GLMV_SIMD_NONE, 0, err);
        if (i == 2 || i == 3)
            CHECK_MSG(!be && strstr(err, "GLMV_KV_BF16") && strstr(err, vals[i]), "%s: %s", vals[i], err);
        else
            CHECK_MSG(be && be->caps.kv_bf16 == (i == 0), "GLMV_KV_BF16=%s: %s", vals[i], err);
        if (be) be->destroy(be);
    }
    unsetenv("GLMV_KV_BF16");
    be = glmv_cpu_backend_new(1, GLMV_SIMD_NONE, 0, err);
    CHECK(be && be->caps.kv_bf16 == 0);
    if (be) be->destroy(be);
    if (was) setenv("GLMV_KV_BF16", was, 1);
    free(was);
}

/* the Q8_0/Q4_0 decode product in scalar code: x rows quantized to int8 blocks, exact
 * integer sums (glmv_dot_q8x_ref), plus the bias */
static void q8x_want(float *want, const float *x, const glmv_tensor *w, const glmv_tensor *bias,
                     int64_t m) {
    int64_t n = glmv_tensor_rows(w), k = glmv_tensor_cols(w);
    int8_t *q = malloc((size_t)k);
    float *d = malloc(sizeof(float) * (size_t)(k / 32));
    for (int64_t i = 0; i < m; i++) {
        glmv_quantize_x_q8(x + i * k, q, d, k);
        for (int64_t o = 0; o < n; o++)
            want[i * n + o] = (float)(glmv_dot_q8x_ref((const char *)w->data +
                                                           o * glmv_dtype_row_bytes(w->dtype, k),
                                                       w->dtype, q, d, k) +
                                      (bias ? glmv_tensor_get(bias, o) : 0.0));
    }
    free(q);
    free(d);
}

/* what bf16 precision computes for BF16 weights: the product of x rounded to bf16 */
static void bx_want(float *want, const float *x, const glmv_tensor *w, const glmv_tensor *bias, int64_t m) {
    int64_t k = glmv_tensor_cols(w);
    float *xr = malloc(sizeof(float) * (size_t)(m * k));
    for (int64_t i = 0; i < m * k; i++) xr[i] = glmv_bf16_to_f32(glmv_f32_to_bf16(x[i]));
    glmv_ref_matmul(want, xr, w, bias, m);
    free(xr);
}

static void matmul_case(glmv_dtype dt, int64_t m, int64_t n, int64_t k, int with_bias) {
    glmv_tensor w = rand_tensor(dt, n, k, -1, 1);
    glmv_tensor bias = rand_tensor(dt == GLMV_F16 ? GLMV_F16 : GLMV_BF16, 0, n, -1, 1);
    float *x = randv(m * k, -1, 1), *want = randv(m * n, 0, 0), *got = malloc(sizeof(float) * (size_t)(m * n));
    float *want8 = malloc(sizeof(float) * (size_t)(m * n));
    glmv_ref_matmul(want, x, &w, with_bias ? &bias : NULL, m);
    for (int b = 0; b < n_be; b++) {
        for (int64_t i = 0; i < m * n; i++) got[i] = NAN;
        bes[b]->matmul(bes[b], got, x, &w, with_bias ? &bias : NULL, m);
        /* bf16 precision rounds x to bf16 for BF16 weights (GEMM and decode) */
        int bx = bes[b]->bf16 && dt == GLMV_BF16;
        /* a decode row (one: the matrix-vector kernel; two or more take the GEMM), and rows through
         * the int8 GEMM: x rounded to int8 per block */
        int q8x = glmv_dtype_is_quant(dt) && (m == 1 || be_int8_gemm(b));
        char what[96];
        snprintf(what, sizeof what, "matmul %s m=%lld n=%lld k=%lld%s", glmv_dtype_name(dt),
                 (long long)m, (long long)n, (long long)k, with_bias ? " +bias" : "");
        /* (a rounding's NMSE is a mean: over a handful of outputs it can stray) */
        if (!(q8x || bx) || m * n >= 64) check_nmse(what, b, got, want, m * n, q8x ? TOL_Q8X : bx ? TOL_BF16X : TOL_F32);
        if (q8x) { /* and exactly the int8 product */
            q8x_want(want8, x, &w, with_bias ? &bias : NULL, m);
            check_nmse(what, b, got, want8, m * n, TOL_F32);
        }
        if (bx) { /* and exactly the product of the rounded x */
            bx_want(want8, x, &w, with_bias ? &bias : NULL, m);
            check_nmse(what, b, got, want8, m * n, TOL_F32);
        }
    }
    free(w.data);
    free(bias.data);
    free(x);
    free(want);
    free(want8);
    free(got);
}

TEST(matmul) {
    static const int64_t ms[] = {1, 2, 3, 4, 5, 7, 13, 50};
    static const int64_t ns[] = {1, 17, 33, 131};
    static const int64_t ks[] = {1, 3, 37, 300};
    glmv_dtype dts[] = {GLMV_BF16, GLMV_F16, GLMV_F32};
    for (int d = 0; d < 3; d++)
        for (int a = 0; a < 8; a++)
            for (int b = 0; b < 4; b++)
                for (int c = 0; c < 4; c++) {
                    if (sanitize && (a + b + c) % 3) continue;
                    matmul_case(dts[d], ms[a], ns[b], ks[c], (a + b + c) & 1);
                }
}

/* bf16 GEMMs whose pairs come in whole 16s (k a multiple of 32), so that on an AMX CPU the
 * tile registers do the work (16-row tiles, and the 8-row AVX512-BF16 kernel for the rest) */
TEST(matmul_amx_shapes) {
    static const int64_t ms[] = {16, 50}, ns[] = {33, 131};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) matmul_case(GLMV_BF16, ms[a], ns[b], 512, (a + b) & 1);
}

/* Block-format weights: the blocks' values are exact enough in float32 (an f16 scale times a
 * small integer; K-quants: d·s·q - dmin·m) that the kernels must give the reference's float32
 * products (decode kernels and the GEMM's dequantized panels). Rows of 32-element blocks
 * (Q8_0, Q4_0, Q5_0) and of 256 (Q4_K, Q6_K). */
TEST(matmul_quant) {
    static const int64_t ms[] = {1, 2, 3, 4, 5, 13, 50};
    static const int64_t ns[] = {1, 17, 33, 131};
    static const int64_t ks[] = {32, 64, 320, 1056}, kks[] = {256, 512, 1280, 2304};
    glmv_dtype dts[] = {GLMV_Q8_0, GLMV_Q4_0, GLMV_Q5_0, GLMV_Q4_K, GLMV_Q6_K};
    for (int d = 0; d < 5; d++)
        for (int a = 0; a < 7; a++)
            for (int b = 0; b < 4; b++)
                for (int c = 0; c < 4; c++) {
                    if ((sanitize || d >= 2) && (a + b + c) % 3) continue;
                    matmul_case(dts[d], ms[a], ns[b], glmv_dtype_block(dts[d]) == 256 ? kks[c] : ks[c],
                                (a + b + c) & 1);
                }
    matmul_case(GLMV_Q4_0, 300, 70, 544, 1); /* several k-blocks (256) with a tail of 32 */
    matmul_case(GLMV_Q8_0, 9, 300, 800, 0);
    matmul_case(GLMV_Q4_K, 70, 40, 768, 1);
    matmul_case(GLMV_Q6_K, 9, 300, 512, 0);
}

/* The int8 GEMM kernel of the AVX512-VNNI table against its scalar form, bit for bit: panels
 * packed from every block format (L = 32, and 16 for Q6_K), 1..6 rows, a ragged column count,
 * with and without the min term and the accumulation into C. */
TEST(kern_q_exact) {
    if (!glmv_cpu_simd_supported(GLMV_SIMD_AVX512BF16)) {
        test_skip("this CPU lacks AVX512-VNNI/BF16; the int8 GEMM is checked through the emulated table");
        return;
    }
    const glmv_cpu_kernels *kn = &glmv_cpu_kernels_avx512bf16;
    CHECK(kn->kern_q != NULL && kn->mrq >= 1 && kn->mrq <= GLMV_MR_MAX);
    glmv_dtype dts[] = {GLMV_Q8_0, GLMV_Q4_0, GLMV_Q5_0, GLMV_Q4_K, GLMV_Q6_K};
    const int64_t k = 512, n = 29, ldc = 40;
    int8_t *panel = glmv_aligned_alloc((size_t)(k / 16) * (size_t)glmv_cpu_q_block_bytes(16));
    uint8_t *xu = malloc((size_t)(8 * k));
    float *ad = randv(8 * k / 32, 0.001f, 0.02f), *as = randv(8 * k / 32, -3, 3);
    float *c1 = malloc(sizeof(float) * 8 * ldc), *c2 = malloc(sizeof(float) * 8 * ldc);
    for (int64_t i = 0; i < 8 * k; i++) xu[i] = (uint8_t)(1 + (int)frand(0, 254.99f));
    for (int d = 0; d < 5; d++) {
        glmv_tensor w = rand_tensor(dts[d], n, k, -1, 1);
        int L = glmv_cpu_pack_q(panel, w.data, dts[d], k, 0, (int)n, 0, k);
        CHECK_EQ_INT(L, dts[d] == GLMV_Q6_K ? 16 : 32);
        /* the table's packer: the same bytes, for a full panel at a k offset and a ragged one */
        {
            glmv_tensor w2 = rand_tensor(dts[d], 70, 2 * k, -1, 1);
            size_t pb = (size_t)(k / 16) * (size_t)glmv_cpu_q_block_bytes(16);
            int8_t *p1 = calloc(1, pb), *p2 = calloc(1, pb);
            for (int nn = 32; nn >= 5; nn -= 27) {
                int L1 = glmv_cpu_pack_q(p1, w2.data, dts[d], 2 * k, 37, nn, k, k);
                int L2 = kn->pack_q(p2, w2.data, dts[d], 2 * k, 37, nn, k, k);
                CHECK_MSG(L1 == L2 && !memcmp(p1, p2, (size_t)(k / L1) * (size_t)glmv_cpu_q_block_bytes(L1)),
                          "pack_q %s nn=%d differs from glmv_cpu_pack_q", glmv_dtype_name(dts[d]), nn);
            }
            free(p1);
            free(p2);
            free(w2.data);
        }
        for (int rows = 1; rows <= kn->mrq; rows++)
            for (int acc = 0; acc <= 1; acc++) {
                for (int i = 0; i < 8 * ldc; i++) c1[i] = c2[i] = frand(-1, 1);
                const float *a_s = dts[d] == GLMV_Q4_K ? as : NULL;
                glmv_cpu_kern_q_scalar(kn->mrq, k / L, L, xu, k, ad, a_s, k / 32, panel, c1, ldc, rows, acc);
                kn->kern_q(k / L, L, xu, k, ad, a_s, k / 32, panel, c2, ldc, rows, acc);
                CHECK_MSG(!memcmp(c1, c2, sizeof(float) * 8 * ldc), "kern_q %s rows=%d acc=%d differs from the scalar form",
                          glmv_dtype_name(dts[d]), rows, acc);
            }
        free(w.data);
    }
    free(panel);
    free(xu);
    free(ad);
    free(as);
    free(c1);
    free(c2);
}

/* The AVX512-BF16 table's panel packer against glmv_cpu_pack_bf16, byte for byte: full and
 * ragged panels (columns past 16 and past nn zero), k-blocks with 16-pair groups and a tail,
 * an odd kk (the last pair half zero), at a k offset with and without a next block. */
TEST(pack_bf16_exact) {
    if (!glmv_cpu_simd_supported(GLMV_SIMD_AVX512BF16)) {
        test_skip("this CPU lacks AVX512-BF16; the bf16 GEMM is checked through the emulated table");
        return;
    }
    const glmv_cpu_kernels *kn = &glmv_cpu_kernels_avx512bf16;
    CHECK(kn->pack_bf16 != NULL);
    const int nr = kn->nr;
    const int64_t n = 80, k = 1000;
    uint16_t *w = malloc(sizeof(uint16_t) * (size_t)(n * k));
    for (int64_t i = 0; i < n * k; i++) w[i] = (uint16_t)(1 + (i * 2654435761u >> 7) % 65535);
    static const int nns[] = {32, 31, 17, 16, 15, 1};
    static const int64_t k0s[] = {0, 0, 0, 2, 96, 500, 968};
    static const int64_t kks[] = {1000, 64, 31, 71, 128, 500, 32};
    size_t bytes = sizeof(uint16_t) * (size_t)(2 * nr) * 512;
    uint16_t *p1 = malloc(bytes), *p2 = malloc(bytes);
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 7; b++) {
            int64_t k2 = (kks[b] + 1) / 2;
            memset(p1, 0xAB, bytes);
            memset(p2, 0xCD, bytes);
            glmv_cpu_pack_bf16(p1, nr, w, k, 37, nns[a], k0s[b], kks[b]);
            kn->pack_bf16(p2, nr, w, k, 37, nns[a], k0s[b], kks[b]);
            CHECK_MSG(!memcmp(p1, p2, sizeof(uint16_t) * (size_t)(2 * nr * k2)),
                      "pack_bf16 nn=%d k0=%lld kk=%lld differs from glmv_cpu_pack_bf16", nns[a],
                      (long long)k0s[b], (long long)kks[b]);
        }
    free(p1);
    free(p2);
    free(w);
}

/* The tables' activation quantizers against glmv_quantize_x_q8, byte for byte: random blocks,
 * a zero block, and blocks whose scale is 1 holding exact halves (roundf: away from zero) and
 * values just under a half. */
TEST(quant_x_exact) {
    const glmv_cpu_kernels *tabs[] = {&glmv_cpu_kernels_avx2, &glmv_cpu_kernels_avx512, &glmv_cpu_kernels_avx512bf16};
    const int levels[] = {GLMV_SIMD_AVX2, GLMV_SIMD_AVX512, GLMV_SIMD_AVX512BF16};
    const int64_t k = 32 * 40;
    float *x = randv(k, -3, 3);
    for (int j = 0; j < 32; j++) x[32 + j] = 0;
    for (int b = 2; b < 6; b++) {
        x[32 * b] = 127; /* d = 1 */
        for (int j = 1; j < 32; j++)
            x[32 * b + j] = (float)((j % 2 ? 1 : -1) * ((j + b) % 9)) + (b % 2 ? 0.5f : 0.49999997f);
    }
    int8_t *q1 = malloc((size_t)k), *q2 = malloc((size_t)k);
    float *d1 = malloc(sizeof(float) * (size_t)(k / 32)), *d2 = malloc(sizeof(float) * (size_t)(k / 32));
    glmv_quantize_x_q8(x, q1, d1, k);
    int tested = 0;
    for (int t = 0; t < 3; t++) {
        if (!tabs[t]->quant_x || !glmv_cpu_simd_supported(levels[t])) continue;
        tested++;
        memset(q2, 0x55, (size_t)k);
        tabs[t]->quant_x(x, q2, d2, k);
        CHECK_MSG(!memcmp(q1, q2, (size_t)k) && !memcmp(d1, d2, sizeof(float) * (size_t)(k / 32)),
                  "quant_x of %s differs from glmv_quantize_x_q8", tabs[t]->name);
    }
    if (!tested) test_skip("no table of this CPU has its own activation quantizer");
    free(x);
    free(q1);
    free(q2);
    free(d1);
    free(d2);
}

TEST(matmul_blocks) {
    /* several k-blocks with an odd tail, several row and column blocks (k-blocks of 256 for
     * block formats' f32 panels, 1,024 for f32, 2,048 for the bf16 GEMM) */
    matmul_case(GLMV_BF16, 37, 70, 4133, 1);
    matmul_case(GLMV_F16, 20, 33, 2100, 0);
    matmul_case(GLMV_BF16, 401, 70, 517, 1);
    matmul_case(GLMV_BF16, 9, 300, 600, 0);
    if (!sanitize) {
        matmul_case(GLMV_F16, 70, 129, 513, 1);
        matmul_case(GLMV_F32, 200, 65, 257, 0);
        matmul_case(GLMV_BF16, 1, 1000, 1001, 1);
    }
}

/* matmul_rows: the decode rows of m sequences, each bit for bit what matmul gives that row
 * alone (what makes batched decoding give every request the answer it gets alone), against
 * the reference too; odd n and k with a vector tail, k past any blocking of the kernel. */
static void rows_case(glmv_dtype dt, int64_t m, int64_t n, int64_t k, int with_bias) {
    glmv_tensor w = rand_tensor(dt, n, k, -1, 1);
    glmv_tensor bias = rand_tensor(GLMV_BF16, 0, n, -1, 1);
    float *x = randv(m * k, -1, 1), *want = randv(m * n, 0, 0);
    float *got = malloc(sizeof(float) * (size_t)(m * n)), *one = malloc(sizeof(float) * (size_t)n);
    float *want8 = malloc(sizeof(float) * (size_t)(m * n));
    glmv_ref_matmul(want, x, &w, with_bias ? &bias : NULL, m);
    for (int b = 0; b < n_be; b++) {
        if (!bes[b]->matmul_rows) continue;
        for (int64_t i = 0; i < m * n; i++) got[i] = NAN;
        bes[b]->matmul_rows(bes[b], got, x, &w, with_bias ? &bias : NULL, m);
        char what[96];
        snprintf(what, sizeof what, "matmul_rows %s m=%lld n=%lld k=%lld", glmv_dtype_name(dt),
                 (long long)m, (long long)n, (long long)k);
        if (glmv_dtype_is_quant(dt)) { /* decode rows: the int8 product (see TOL_Q8X) */
            check_nmse(what, b, got, want, m * n, TOL_Q8X);
            q8x_want(want8, x, &w, with_bias ? &bias : NULL, m);
            check_nmse(what, b, got, want8, m * n, TOL_F32);
        } else if (bes[b]->bf16 && dt == GLMV_BF16) { /* decode rows of the rounded x */
            check_nmse(what, b, got, want, m * n, TOL_BF16X);
            bx_want(want8, x, &w, with_bias ? &bias : NULL, m);
            check_nmse(what, b, got, want8, m * n, TOL_F32);
        } else {
            check_nmse(what, b, got, want, m * n, TOL_F32);
        }
        int same = 1;
        for (int64_t i = 0; i < m && same; i++) {
            bes[b]->matmul(bes[b], one, x + i * k, &w, with_bias ? &bias : NULL, 1);
            same = !memcmp(one, got + i * n, sizeof(float) * (size_t)n);
        }
        CHECK_MSG(same, "%s on %s: a row differs from the same row alone", what, bes[b]->name);
    }
    free(w.data);
    free(bias.data);
    free(x);
    free(want);
    free(got);
    free(want8);
    free(one);
}

TEST(matmul_rows) {
    rows_case(GLMV_BF16, 6, 37, 4133, 1);
    rows_case(GLMV_BF16, 4, 40, 2051, 0);
    rows_case(GLMV_BF16, 2, 5, 300, 0);
    /* x longer than L1 keeps (MV_L1X): a lone row takes the paired, column-blocked kernel too,
     * and 3 or 4 rows on AVX2 the one-row, column-blocked kernel (MV_BODY1K): the same sums
     * either way (a tail of 13 columns) */
    rows_case(GLMV_BF16, 3, 19, 8205, 1);
    if (!sanitize) {
        rows_case(GLMV_BF16, 13, 70, 1100, 1);
        rows_case(GLMV_F16, 5, 33, 3000, 0);
        rows_case(GLMV_F32, 9, 21, 2111, 1);
    }
    rows_case(GLMV_Q8_0, 6, 37, 4128, 1);
    rows_case(GLMV_Q4_0, 4, 40, 2048, 0);
    rows_case(GLMV_Q4_0, 13, 21, 1024, 1);
    rows_case(GLMV_Q5_0, 6, 30, 2080, 1);
    rows_case(GLMV_Q4_K, 6, 37, 4096, 1);
    rows_case(GLMV_Q6_K, 5, 33, 2048, 0);
}

TEST(embed) {
    glmv_dtype dts[] = {GLMV_BF16, GLMV_F16, GLMV_F32};
    for (int d = 0; d < 3; d++) {
        glmv_tensor t = rand_tensor(dts[d], 50, 333, -3, 3);
        int32_t ids[9];
        for (int i = 0; i < 9; i++) ids[i] = (int32_t)(frand(0, 49.99f));
        float want[9 * 333], got[9 * 333];
        glmv_ref_embed(want, &t, ids, 9);
        for (int b = 0; b < n_be; b++) {
            bes[b]->embed(bes[b], got, &t, ids, 9);
            check_nmse("embed", b, got, want, 9 * 333, TOL_EXACT);
        }
        free(t.data);
    }
}

TEST(rmsnorm) {
    static const int64_t cases[][2] = {{1, 4099}, {5, 17}, {64, 1000}, {3, 1}};
    for (int c = 0; c < 4; c++) {
        int64_t n = cases[c][0], d = cases[c][1];
        glmv_tensor w = rand_tensor(c & 1 ? GLMV_F32 : GLMV_BF16, 0, d, 0.5f, 1.5f);
        float *x = randv(n * d, -4, 4), *want = randv(n * d, 0, 0), *got = randv(n * d, 0, 0);
        glmv_ref_rmsnorm(want, x, &w, n, d, 1e-5f);
        for (int b = 0; b < n_be; b++) {
            bes[b]->rmsnorm(bes[b], got, x, &w, n, d, 1e-5f);
            check_nmse("rmsnorm", b, got, want, n * d, TOL_F32);
        }
        /* in place */
        for (int b = 0; b < n_be; b++) {
            memcpy(got, x, sizeof(float) * (size_t)(n * d));
            bes[b]->rmsnorm(bes[b], got, got, &w, n, d, 1e-5f);
            check_nmse("rmsnorm in place", b, got, want, n * d, TOL_F32);
        }
        free(w.data);
        free(x);
        free(want);
        free(got);
    }
}

/* norm_add_norm: the three ops it stands for (rmsnorm, add, rmsnorm) bit for bit on every
 * level, and the reference's values; copy_rows exactly */
TEST(norm_add_norm_copy_rows) {
    static const int64_t cases[][2] = {{1, 4099}, {5, 17}, {64, 1000}};
    for (int c = 0; c < 3; c++) {
        int64_t n = cases[c][0], d = cases[c][1];
        size_t bytes = sizeof(float) * (size_t)(n * d);
        glmv_tensor w1 = rand_tensor(GLMV_BF16, 0, d, 0.5f, 1.5f), w2 = rand_tensor(GLMV_F32, 0, d, 0.5f, 1.5f);
        float *x = randv(n * d, -4, 4), *t = randv(n * d, -4, 4), *rx = randv(n * d, 0, 0), *ry = randv(n * d, 0, 0);
        float *gx = randv(n * d, 0, 0), *gy = randv(n * d, 0, 0), *ux = randv(n * d, 0, 0), *uy = randv(n * d, 0, 0);
        memcpy(rx, x, bytes);
        glmv_ref_rmsnorm(ry, t, &w1, n, d, 1e-5f);
        glmv_ref_add(rx, rx, ry, n * d);
        glmv_ref_rmsnorm(ry, rx, &w2, n, d, 1e-5f);
        for (int b = 0; b < n_be; b++) {
            glmv_backend *be = bes[b];
            memcpy(gx, x, bytes);
            be->norm_add_norm(be, gx, gy, t, &w1, &w2, n, d, 1e-5f);
            check_nmse("norm_add_norm x", b, gx, rx, n * d, TOL_F32);
            check_nmse("norm_add_norm y", b, gy, ry, n * d, TOL_F32);
            memcpy(ux, x, bytes);
            be->rmsnorm(be, uy, t, &w1, n, d, 1e-5f);
            be->add(be, ux, ux, uy, n * d);
            be->rmsnorm(be, uy, ux, &w2, n, d, 1e-5f);
            CHECK_MSG(!memcmp(gx, ux, bytes) && !memcmp(gy, uy, bytes), "%s: norm_add_norm %lldx%lld is not "
                      "rmsnorm, add, rmsnorm bit for bit", be->name, (long long)n, (long long)d);
            /* no w1 (the vision tower's residual): add, rmsnorm */
            memcpy(gx, x, bytes);
            be->norm_add_norm(be, gx, gy, t, NULL, &w2, n, d, 1e-5f);
            memcpy(ux, x, bytes);
            be->add(be, ux, ux, t, n * d);
            be->rmsnorm(be, uy, ux, &w2, n, d, 1e-5f);
            CHECK_MSG(!memcmp(gx, ux, bytes) && !memcmp(gy, uy, bytes), "%s: norm_add_norm %lldx%lld without w1 is "
                      "not add, rmsnorm bit for bit", be->name, (long long)n, (long long)d);
            /* copy_rows: 3 columns from column 2 of the rows of x into rows of 5 at column 1 */
            float *cy = randv(n * 5, 7, 7);
            be->copy_rows(be, cy + 1, 5, x + 2, d > 4 ? d : 5, d > 4 ? n : 0, 3);
            int same = 1;
            for (int64_t i = 0; i < n && d > 4; i++)
                for (int j = 0; j < 5; j++)
                    same &= cy[i * 5 + j] == (j >= 1 && j < 4 ? x[i * d + 2 + j - 1] : 7.0f);
            CHECK_MSG(same, "%s: copy_rows", be->name);
            free(cy);
        }
        free(w1.data), free(w2.data);
        free(x), free(t), free(rx), free(ry), free(gx), free(gy), free(ux), free(uy);
    }
}

/* top_k: the reference against a full sort by its order (the larger value first, equal values by
 * the smaller index, +0 = -0, NaN last), and every backend against the reference exactly */
static const float *tk_row;
static int tk_cmp(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    float x = tk_row[i], y = tk_row[j];
    int nx = x != x, ny = y != y;
    if (nx != ny) return nx - ny; /* NaN after numbers */
    if (!nx && x != y) return x > y ? -1 : 1;
    return (i > j) - (i < j);
}
TEST(top_k) {
    static const int64_t cases[][3] = {{1, 151552, 64}, {3, 5000, 3}, {4, 4097, 1}, {2, 33, 33}, {5, 70, 17}};
    for (int c = 0; c < 5; c++) {
        int64_t rows = cases[c][0], n = cases[c][1];
        int k = (int)cases[c][2];
        float *x = randv(rows * n, -3, 3);
        for (int64_t i = 0; i < rows * n; i++) { /* ties, +-0, infinities and NaN */
            if (i % 5 == 0) x[i] = roundf(x[i] * 4) / 4;
            if (i % 97 == 3) x[i] = i % 2 ? 0.0f : -0.0f;
            if (i % 131 == 7) x[i] = i % 2 ? -INFINITY : NAN;
            if (i % 1009 == 11) x[i] = 3.0f;
        }
        float *rv = randv(rows * k, 0, 0), *gv = randv(rows * k, 0, 0);
        int32_t *ri = malloc(sizeof(int32_t) * (size_t)(rows * k)), *gi = malloc(sizeof(int32_t) * (size_t)(rows * k));
        int32_t *ix = malloc(sizeof(int32_t) * (size_t)n);
        glmv_ref_top_k(rv, ri, x, rows, n, k);
        int same = 1;
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t i = 0; i < n; i++) ix[i] = (int32_t)i;
            tk_row = x + r * n;
            qsort(ix, (size_t)n, sizeof *ix, tk_cmp);
            for (int j = 0; j < k; j++)
                same &= ri[r * k + j] == ix[j] && !memcmp(&rv[r * k + j], &tk_row[ix[j]], sizeof(float));
        }
        CHECK_MSG(same, "top_k ref %lldx%lld k %d: not the sorted order", (long long)rows, (long long)n, k);
        for (int b = 0; b < n_be; b++) {
            bes[b]->top_k(bes[b], gv, gi, x, rows, n, k);
            CHECK_MSG(!memcmp(gi, ri, sizeof(int32_t) * (size_t)(rows * k)) &&
                          !memcmp(gv, rv, sizeof(float) * (size_t)(rows * k)),
                      "%s: top_k %lldx%lld k %d", bes[b]->name, (long long)rows, (long long)n, k);
        }
        free(x), free(rv), free(gv), free(ri), free(gi), free(ix);
    }
}

TEST(layernorm) {
    static const int64_t cases[][2] = {{1, 1537}, {7, 33}, {40, 1536}};
    for (int c = 0; c < 3; c++) {
        int64_t n = cases[c][0], d = cases[c][1];
        glmv_tensor w = rand_tensor(GLMV_BF16, 0, d, 0.5f, 1.5f);
        glmv_tensor bb = rand_tensor(GLMV_F32, 0, d, -1, 1);
        float *x = randv(n * d, -2, 6), *want = randv(n * d, 0, 0), *got = randv(n * d, 0, 0);
        for (int hasb = 0; hasb < 2; hasb++) {
            glmv_ref_layernorm(want, x, &w, hasb ? &bb : NULL, n, d, 1e-5f);
            for (int b = 0; b < n_be; b++) {
                bes[b]->layernorm(bes[b], got, x, &w, hasb ? &bb : NULL, n, d, 1e-5f);
                check_nmse(hasb ? "layernorm+bias" : "layernorm", b, got, want, n * d, TOL_F32);
            }
        }
        free(w.data);
        free(bb.data);
        free(x);
        free(want);
        free(got);
    }
}

TEST(ropes) {
    int64_t n = 7, ld = 150;
    int nh = 3, hd = 40, rd = 20;
    float *x = randv(n * ld, -2, 2), *want = randv(n * ld, 0, 0), *got = randv(n * ld, 0, 0);
    float *c = randv(n * hd / 2, -1, 1), *s = randv(n * hd / 2, -1, 1);
    memcpy(want, x, sizeof(float) * (size_t)(n * ld));
    glmv_ref_rope_interleaved(want, ld, c, s, n, nh, hd, rd);
    for (int b = 0; b < n_be; b++) {
        memcpy(got, x, sizeof(float) * (size_t)(n * ld));
        bes[b]->rope_interleaved(bes[b], got, ld, c, s, n, nh, hd, rd);
        check_nmse("rope_interleaved", b, got, want, n * ld, TOL_F32);
    }
    memcpy(want, x, sizeof(float) * (size_t)(n * ld));
    glmv_ref_rope_neox(want, ld, c, s, n, nh, hd);
    for (int b = 0; b < n_be; b++) {
        memcpy(got, x, sizeof(float) * (size_t)(n * ld));
        bes[b]->rope_neox(bes[b], got, ld, c, s, n, nh, hd);
        check_nmse("rope_neox", b, got, want, n * ld, TOL_F32);
    }
    free(x);
    free(want);
    free(got);
    free(c);
    free(s);
}

static void causal_case(int64_t n, int64_t pos0, int nh, int nkv, int hd) {
    int64_t T = pos0 + n, kvd = (int64_t)nkv * hd, ldq = (int64_t)nh * hd + 5;
    float *q = randv(n * ldq, -1.5f, 1.5f), *kc = randv(T * kvd, -1.5f, 1.5f),
          *vc = randv(T * kvd, -1, 1);
    int64_t no = n * nh * hd;
    float *want = randv(no, 0, 0), *got = randv(no, 0, 0);
    float scale = 1.0f / sqrtf((float)hd);
    glmv_ref_attn_causal(want, q, ldq, kc, vc, n, pos0, nh, nkv, hd, scale);
    for (int b = 0; b < n_be; b++) {
        for (int64_t i = 0; i < no; i++) got[i] = NAN;
        bes[b]->attn_causal(bes[b], got, q, ldq, kc, vc, n, pos0, nh, nkv, hd, scale);
        char what[96];
        snprintf(what, sizeof what, "attn_causal n=%lld pos0=%lld heads=%d/%d hd=%d",
                 (long long)n, (long long)pos0, nh, nkv, hd);
        check_nmse(what, b, got, want, no, TOL_F32);
    }
    free(q);
    free(kc);
    free(vc);
    free(want);
    free(got);
}

TEST(attn_causal) {
    causal_case(37, 0, 6, 2, 40);      /* prefill, several row blocks */
    causal_case(1, 300, 6, 2, 40);     /* decode: keys split into chunks */
    causal_case(3, 150, 4, 4, 24);     /* no GQA, a few rows */
    causal_case(1, 0, 2, 1, 8);        /* first token */
    causal_case(45, 100, 4, 2, 32);    /* head_dim a multiple of the tile: the GEMM-tiled path */
    causal_case(1, 700, 8, 2, 64);     /* tiled decode over key chunks */
    if (!sanitize) {
        causal_case(1, 1000, 32, 2, 128); /* the 9B layout */
        causal_case(70, 20, 32, 2, 128);
    }
}

/* A bf16 KV cache (caps.kv_bf16, GLMV_KV_BF16=1) on every backend: kv_store rounds to nearest
 * even; attn_causal and attn_decode_batch over it give bit for bit what they give over a float32
 * cache holding the rounded values, and the decode step stores its rounded rows */
TEST(kv_bf16) {
    const int nh = 8, nkv = 2, hd = 64;
    const int64_t pos0 = 300, n = 5, kvd = (int64_t)nkv * hd, qd = (int64_t)nh * hd, T = pos0 + n;
    float *q = randv(n * qd, -1.5f, 1.5f), *k = randv(T * kvd, -1.5f, 1.5f), *v = randv(T * kvd, -1, 1);
    uint16_t *kb = malloc(2 * (size_t)(T * kvd)), *vb = malloc(2 * (size_t)(T * kvd));
    float *kr = malloc(sizeof(float) * (size_t)(T * kvd)), *vr = malloc(sizeof(float) * (size_t)(T * kvd));
    float *want = randv(n * qd, 0, 0), *got = randv(n * qd, 0, 0);
    for (int b = 0; b < n_be; b++) {
        glmv_backend *be = bes[b];
        const int was = be->caps.kv_bf16;
        be->caps.kv_bf16 = 1;
        /* kv_store from rows of stride kvd + 3 */
        float *x = randv(T * (kvd + 3), -1.5f, 1.5f);
        for (int64_t i = 0; i < T; i++) memcpy(x + i * (kvd + 3), k + i * kvd, sizeof(float) * (size_t)kvd);
        be->kv_store(be, kb, x, kvd + 3, T, kvd);
        int bad = 0;
        for (int64_t i = 0; i < T * kvd && !bad; i++) bad = kb[i] != glmv_f32_to_bf16(k[i]);
        CHECK_MSG(!bad, "%s: kv_store", be->name);
        free(x);
        be->kv_store(be, vb, v, kvd, T, kvd);
        for (int64_t i = 0; i < T * kvd; i++) {
            kr[i] = glmv_bf16_to_f32(kb[i]);
            vr[i] = glmv_bf16_to_f32(vb[i]);
        }
        be->caps.kv_bf16 = 0;
        be->attn_causal(be, want, q, qd, kr, vr, n, pos0, nh, nkv, hd, 0.125f);
        be->caps.kv_bf16 = 1;
        be->attn_causal(be, got, q, qd, kb, vb, n, pos0, nh, nkv, hd, 0.125f);
        CHECK_MSG(!memcmp(got, want, sizeof(float) * (size_t)(n * qd)), "%s: attn_causal over a bf16 cache",
                  be->name);
        /* one decode step: the new rows (k's and v's row pos0, unrounded) stored, then attended */
        void *kp[1] = {kb}, *vp[1] = {vb};
        int64_t nk[1] = {pos0 + 1};
        memset(kb + pos0 * kvd, 0, 2 * (size_t)kvd);
        memset(vb + pos0 * kvd, 0, 2 * (size_t)kvd);
        be->attn_decode_batch(be, got, q, qd, k + pos0 * kvd, v + pos0 * kvd, kvd, kp, vp, nk, 1, pos0 + 1, nh, nkv,
                              hd, 0.125f);
        be->caps.kv_bf16 = 0;
        be->attn_causal(be, want, q, qd, kr, vr, 1, pos0, nh, nkv, hd, 0.125f);
        bad = 0;
        for (int64_t i = 0; i < kvd && !bad; i++)
            bad = kb[pos0 * kvd + i] != glmv_f32_to_bf16(k[pos0 * kvd + i]) ||
                  vb[pos0 * kvd + i] != glmv_f32_to_bf16(v[pos0 * kvd + i]);
        CHECK_MSG(!bad, "%s: attn_decode_batch's stored rows", be->name);
        CHECK_MSG(!memcmp(got, want, sizeof(float) * (size_t)qd), "%s: attn_decode_batch over a bf16 cache",
                  be->name);
        be->caps.kv_bf16 = was;
    }
    free(q);
    free(k);
    free(v);
    free(kb);
    free(vb);
    free(kr);
    free(vr);
    free(want);
    free(got);
}

static void segments_case(int nh, int hd) {
    int64_t cu[] = {0, 5, 5, 77, 140, 141};
    int n_seg = 5;
    int64_t rows = cu[n_seg], ld = 3 * (int64_t)nh * hd;
    float *qkv = randv(rows * ld, -1.5f, 1.5f);
    int64_t no = rows * nh * hd;
    float *want = randv(no, 0, 0), *got = randv(no, 0, 0);
    float scale = 1.0f / sqrtf((float)hd);
    glmv_ref_attn_segments(want, qkv, ld, qkv + nh * hd, ld, qkv + 2 * nh * hd, ld, cu, n_seg,
                           nh, hd, scale);
    for (int b = 0; b < n_be; b++) {
        for (int64_t i = 0; i < no; i++) got[i] = NAN;
        bes[b]->attn_segments(bes[b], got, qkv, ld, qkv + nh * hd, ld, qkv + 2 * nh * hd, ld, cu,
                              n_seg, nh, hd, scale);
        char what[64];
        snprintf(what, sizeof what, "attn_segments heads=%d hd=%d", nh, hd);
        check_nmse(what, b, got, want, no, TOL_F32);
    }
    free(qkv);
    free(want);
    free(got);
}

TEST(attn_segments) {
    segments_case(3, 40);  /* head_dim not a multiple of the tile: dot/axpy path */
    segments_case(2, 64);  /* GEMM-tiled path */
    if (!sanitize) segments_case(2, 128);
}

TEST(elementwise) {
    int64_t n = 3, d = 1001, lg = 1010, lu = 1020;
    float *g = randv(n * lg, -20, 20), *u = randv(n * lu, -2, 2);
    float *want = randv(100003, 0, 0), *got = randv(100003, 0, 0);
    glmv_ref_swiglu(want, g, lg, u, lu, n, d);
    for (int b = 0; b < n_be; b++) {
        bes[b]->swiglu(bes[b], got, g, lg, u, lu, n, d);
        check_nmse("swiglu", b, got, want, n * d, TOL_F32);
    }
    float *x = randv(100003, -6, 6), *x2 = randv(100003, -6, 6);
    glmv_ref_gelu_erf(want, x, 10007);
    for (int b = 0; b < n_be; b++) {
        bes[b]->gelu_erf(bes[b], got, x, 10007);
        check_nmse("gelu_erf", b, got, want, 10007, TOL_F32);
    }
    glmv_ref_add(want, x, x2, 100003);
    for (int b = 0; b < n_be; b++) {
        bes[b]->add(bes[b], got, x, x2, 100003);
        check_nmse("add", b, got, want, 100003, TOL_EXACT);
    }
    glmv_ref_permute_021(want, x, 3, 37, 70);
    for (int b = 0; b < n_be; b++) {
        bes[b]->permute_021(bes[b], got, x, 3, 37, 70);
        check_nmse("permute_021", b, got, want, 3 * 37 * 70, TOL_EXACT);
    }
    free(g);
    free(u);
    free(x);
    free(x2);
    free(want);
    free(got);
}

int main(void) {
    sanitize = getenv("GLMV_SANITIZE") != NULL;
    char err[GLMV_ERR_SIZE];
    for (int l = GLMV_SIMD_AVX2; l <= GLMV_SIMD_AMX; l++) {
        if (!glmv_cpu_simd_supported(l)) continue;
        /* f32 precision at every level; bf16 precision where it has bf16 products */
        for (int bf = 0; bf <= (l >= GLMV_SIMD_AVX512BF16); bf++)
            for (int t = 1; t <= 2; t++) {
                GLMV_ASSERT(n_be + 2 < MAX_BE); /* (12 were too few on an AMX CPU: it overran) */
                glmv_backend *be = glmv_cpu_backend_new(t, l, bf, err);
                if (!be) {
                    printf("  FAIL backend %s/%dt: %s\n", glmv_cpu_simd_name(l), t, err);
                    return 1;
                }
                be_level[n_be] = l;
                be_threads[n_be] = t;
                bes[n_be++] = be;
            }
    }
    if (glmv_cpu_simd_supported(GLMV_SIMD_AVX2)) {
        emu_table = glmv_cpu_kernels_avx2;
        emu_table.to_bf16 = glmv_cpu_to_bf16_scalar;
        emu_table.kern_bf16 = emu_kern_bf16;
        emu_table.matvec_bf16 = glmv_cpu_matvec_bf16_scalar;
        emu_table.mrq = 4;
        emu_table.kern_q = emu_kern_q;
        for (int t = 1; t <= 2; t++) {
            glmv_backend *be = glmv_cpu_backend_new_table(t, &emu_table, "cpu-bf16emu", 1, err);
            if (!be) {
                printf("  FAIL backend bf16emu: %s\n", err);
                return 1;
            }
            be_level[n_be] = LEVEL_EMU;
            be_threads[n_be] = t;
            bes[n_be++] = be;
        }
    }
    /* the tests hand attention float32 caches, whatever GLMV_KV_BF16 says (kv_bf16 sets its own) */
    for (int b = 0; b < n_be; b++) bes[b]->caps.kv_bf16 = 0;
    printf("# testing %d CPU backends against the scalar reference\n", n_be);
    RUN(level_avx2);
    RUN(level_avx512);
    RUN(level_avx512bf16);
    RUN(level_amx);
    RUN(kern_bf16_amx);
    RUN(matmul_amx_shapes);
    RUN(backend_errors);
    RUN(matmul);
    RUN(matmul_blocks);
    RUN(matmul_rows);
    RUN(matmul_quant);
    RUN(kern_q_exact);
    RUN(pack_bf16_exact);
    RUN(quant_x_exact);
    RUN(embed);
    RUN(rmsnorm);
    RUN(norm_add_norm_copy_rows);
    RUN(layernorm);
    RUN(ropes);
    RUN(attn_causal);
    RUN(kv_bf16);
    RUN(attn_segments);
    RUN(elementwise);
    RUN(top_k);
    for (int b = 0; b < n_be; b++) bes[b]->destroy(bes[b]);
    return test_summary("ops");
}
