/* test_image.c -- the image path against transformers' Glm4vImageProcessor:
 * smart_resize grids (GLM4V.md §6.2 and the committed HF fixtures), decoding
 * of the shared photos and generated edge cases, resized uint8 and
 * pixel_values checksums / sampled rows from scripts/gen_image_fixtures.py
 * (tests/fixtures/image/expected.txt), patch order, and hostile input:
 * empty, truncated, unsupported and oversized files give errors, not crashes.
 */
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "image.h"
#include "test.h"

#define ASSETS "../shared/assets/images/"
#define FIX "tests/fixtures/image/"

static int have_file(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* ---------------------------------------------------------------- smart_resize */
TEST(smart_resize_spec_table) {
    /* GLM4V.md §6.2: input h x w -> H' x W' with the checkpoint's limits */
    static const int t[][4] = {{336, 336, 336, 336},    {224, 224, 224, 224},
                               {768, 1024, 756, 1036},  {1080, 1920, 1092, 1932},
                               {3000, 4000, 1876, 2520}, {70, 70, 84, 84},
                               {50, 60, 84, 112}};
    glmv_image_params p;
    glmv_image_params_default(&p);
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int oh = 0, ow = 0;
        char err[GLMV_ERR_SIZE];
        CHECK_EQ_INT(glmv_smart_resize(2, t[i][0], t[i][1], 28, p.min_pixels, p.max_pixels, &oh,
                                       &ow, err),
                     0);
        CHECK_EQ_INT(oh, t[i][2]);
        CHECK_EQ_INT(ow, t[i][3]);
    }
}

TEST(smart_resize_edges) {
    glmv_image_params p;
    glmv_image_params_default(&p);
    char err[GLMV_ERR_SIZE];
    int oh, ow;
    /* tiny: 1x1 -> scaled to 28x28 by truncation, then up to min_pixels */
    CHECK_EQ_INT(glmv_smart_resize(2, 1, 1, 28, p.min_pixels, p.max_pixels, &oh, &ow, err), 0);
    CHECK_EQ_INT(oh, 84);
    CHECK_EQ_INT(ow, 84);
    /* 200:1 is allowed, 201:1 is not */
    CHECK_EQ_INT(glmv_smart_resize(2, 28, 5600, 28, p.min_pixels, p.max_pixels, &oh, &ow, err), 0);
    CHECK_EQ_INT(oh, 28);
    CHECK_EQ_INT(ow, 5600);
    CHECK(glmv_smart_resize(2, 28, 5628, 28, p.min_pixels, p.max_pixels, &oh, &ow, err) != 0);
    CHECK(strstr(err, "aspect ratio") != NULL);
    /* 5 x 1000 -> scale 5.6: int(5*5.6)=28, int(1000*5.6)=5600 -> ratio 200 ok */
    CHECK_EQ_INT(glmv_smart_resize(2, 5, 1000, 28, p.min_pixels, p.max_pixels, &oh, &ow, err), 0);
    CHECK(glmv_smart_resize(2, 1, 0, 28, p.min_pixels, p.max_pixels, &oh, &ow, err) != 0);
    /* half-to-even: 42/28 = 1.5 -> 2, 70/28 = 2.5 -> 2 */
    CHECK_EQ_INT(glmv_smart_resize(2, 42, 700, 28, p.min_pixels, p.max_pixels, &oh, &ow, err), 0);
    CHECK_EQ_INT(oh, 56);
    CHECK_EQ_INT(ow, 700);
    CHECK_EQ_INT(glmv_smart_resize(2, 70, 700, 28, p.min_pixels, p.max_pixels, &oh, &ow, err), 0);
    CHECK_EQ_INT(oh, 56);
}

TEST(token_limits) {
    glmv_image_params p;
    glmv_image_params_default(&p);
    char err[GLMV_ERR_SIZE];
    /* the checkpoint's longest_edge is exactly 6144 tokens */
    CHECK_EQ_INT(glmv_image_tokens_to_pixels(6144, &p), p.max_pixels);
    CHECK_EQ_INT(glmv_image_tokens_to_pixels(4 * 4, &p), 16 * 784 * 2);
    CHECK_EQ_INT(glmv_image_apply_token_limits(&p, 0, 256, err), 0);
    int oh, ow;
    CHECK_EQ_INT(glmv_smart_resize(2, 3000, 4000, 28, p.min_pixels, p.max_pixels, &oh, &ow, err), 0);
    CHECK((oh / 28) * (ow / 28) <= 256);
    CHECK((oh / 28) * (ow / 28) > 200);
    CHECK(glmv_image_apply_token_limits(&p, 300, 200, err) != 0);

    /* a minimum alone above the checkpoint's maximum is refused (it was silently
     * lowered to it: --min-image-tokens 200 gave ~100 tokens on models/demo) */
    glmv_image_params_default(&p);
    p.max_pixels = glmv_image_tokens_to_pixels(100, &p);
    err[0] = 0;
    CHECK(glmv_image_apply_token_limits(&p, 200, 0, err) != 0);
    CHECK(strstr(err, "maximum of 100 tokens") != NULL);
    CHECK_EQ_INT(glmv_image_apply_token_limits(&p, 100, 0, err), 0);
    CHECK_EQ_INT(glmv_image_apply_token_limits(&p, 200, 400, err), 0);
    CHECK_EQ_INT(p.min_pixels, glmv_image_tokens_to_pixels(200, &p));
    CHECK_EQ_INT(p.max_pixels, glmv_image_tokens_to_pixels(400, &p));
}

/* ---------------------------------------------------------------- resize */
static void fill_pattern(glmv_rgb *im, int w, int h, uint32_t seed) {
    im->w = w, im->h = h;
    im->rgb = malloc((size_t)w * h * 3);
    uint32_t s = seed;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        s = s * 1664525u + 1013904223u;
        im->rgb[i] = (uint8_t)(s >> 24);
    }
}

TEST(resize_constant_and_identity) {
    char err[GLMV_ERR_SIZE];
    glmv_rgb a = {0}, b = {0};
    a.w = 97, a.h = 53;
    a.rgb = malloc((size_t)97 * 53 * 3);
    for (int i = 0; i < 97 * 53; i++) a.rgb[3 * i] = 200, a.rgb[3 * i + 1] = 0, a.rgb[3 * i + 2] = 255;
    /* a constant image stays constant under any resize (weights sum to 2^prec) */
    CHECK_EQ_INT(glmv_image_resize(&a, 28, 140, &b, err), 0);
    int bad = 0;
    for (int i = 0; i < 28 * 140; i++)
        bad += b.rgb[3 * i] != 200 || b.rgb[3 * i + 1] != 0 || b.rgb[3 * i + 2] != 255;
    CHECK_EQ_INT(bad, 0);
    glmv_rgb_free(&b);
    glmv_rgb_free(&a);
    fill_pattern(&a, 56, 84, 7);
    CHECK_EQ_INT(glmv_image_resize(&a, 56, 84, &b, err), 0);
    CHECK(memcmp(a.rgb, b.rgb, (size_t)56 * 84 * 3) == 0);
    glmv_rgb_free(&b);
    glmv_rgb_free(&a);
    /* threads do not change the result */
    glmv_rgb c = {0};
    fill_pattern(&a, 1500, 1100, 9);
    setenv("GLMV_IMAGE_THREADS", "7", 1);
    CHECK_EQ_INT(glmv_image_resize(&a, 840, 1232, &b, err), 0);
    setenv("GLMV_IMAGE_THREADS", "1", 1);
    CHECK_EQ_INT(glmv_image_resize(&a, 840, 1232, &c, err), 0);
    unsetenv("GLMV_IMAGE_THREADS");
    CHECK(b.rgb && c.rgb && memcmp(b.rgb, c.rgb, (size_t)840 * 1232 * 3) == 0);
    glmv_rgb_free(&a);
    glmv_rgb_free(&b);
    glmv_rgb_free(&c);
}

/* ---------------------------------------------------------------- patchify */
TEST(patchify_order) {
    glmv_image_params p;
    glmv_image_params_default(&p);
    char err[GLMV_ERR_SIZE];
    glmv_rgb im;
    fill_pattern(&im, 56, 84, 3); /* grid 6 x 4 patches */
    float *rows = malloc(sizeof(float) * 24 * 1176);
    uint8_t *rows8 = malloc(24 * 1176);
    CHECK_EQ_INT(glmv_patchify(&im, 1, &p, rows, err), 0);
    CHECK_EQ_INT(glmv_patchify_u8(&im, 1, &p, rows8, err), 0);
    /* row r = block (bh,bw) then (mh,mw); element ((c*2+t)*14+i)*14+j: the pixel's byte, and
     * as a float the byte rescaled and normalised */
    int bad = 0, bad8 = 0;
    for (int r = 0; r < 24; r++) {
        int blk = r / 4, bh = blk / 2, bw = blk % 2, mh = (r % 4) / 2, mw = r % 2;
        int ph = 2 * bh + mh, pw = 2 * bw + mw;
        for (int c = 0; c < 3; c++)
            for (int t = 0; t < 2; t++)
                for (int i = 0; i < 14; i++)
                    for (int j = 0; j < 14; j++) {
                        float v = rows[(size_t)r * 1176 + ((c * 2 + t) * 14 + i) * 14 + j];
                        uint8_t u = im.rgb[((size_t)(ph * 14 + i) * 56 + pw * 14 + j) * 3 + c];
                        float m = p.mean[c] * 255.0f, s = p.std[c] * 255.0f;
                        float want = ((float)u - m) / s;
                        bad += v != want;
                        bad8 += rows8[(size_t)r * 1176 + ((c * 2 + t) * 14 + i) * 14 + j] != u;
                    }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(bad8, 0);
    /* the widening alone: rows of bytes through the table give glmv_patchify's floats */
    glmv_patch_lut lut;
    glmv_patch_lut_init(&p, &lut);
    float *wide = malloc(sizeof(float) * 24 * 1176);
    glmv_patch_expand(rows8, 24 * 1176, 392, &lut, wide);
    CHECK(memcmp(wide, rows, sizeof(float) * 24 * 1176) == 0);
    CHECK(lut.v[1][0] == (0.0f - p.mean[1] * 255.0f) / (p.std[1] * 255.0f));
    free(wide);
    CHECK(glmv_patchify(&im, 1, &p, rows, err) == 0);
    glmv_rgb odd = {.w = 30, .h = 28, .rgb = im.rgb};
    CHECK(glmv_patchify(&odd, 1, &p, rows, err) != 0);
    CHECK(glmv_patchify_u8(&odd, 1, &p, rows8, err) != 0);
    free(rows);
    free(rows8);
    glmv_rgb_free(&im);
}

/* ---------------------------------------------------------------- HF parity
 * tests/fixtures/image/expected.txt, from scripts/gen_image_fixtures.py on the
 * GPU machine (transformers 5.x Glm4vImageProcessor, torchvision backend):
 *   image NAME W H OW OH GT GH GW decoded_ck resized_ck pixel_values_ck
 *   rs NAME y x0 step n r g b ...      sampled pixels of the resized uint8
 *   pv NAME row step n v ...           sampled values of pixel_values
 *   error NAME message                 HF refused it; glmv must too
 * NAME is assets/F, variants/F (../shared/assets/images), fix/F (the committed
 * inputs) or synthetic_WxH_SEED (the formula below, same as the script's). */
static uint64_t checksum(const void *data, size_t n) {
    const uint8_t *b = data;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += (uint64_t)b[i] * (uint64_t)(uint32_t)((uint64_t)i * 2654435761u);
    return s;
}

static void synthetic(glmv_rgb *im, int w, int h, int seed) {
    im->w = w, im->h = h;
    im->rgb = malloc((size_t)w * h * 3);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            uint8_t *o = im->rgb + ((size_t)y * w + x) * 3;
            o[0] = (uint8_t)((x * 255 / GLMV_MAX(w - 1, 1) + ((x / 16 + y / 16) % 2) * 40 + seed) % 256);
            o[1] = (uint8_t)((y * 255 / GLMV_MAX(h - 1, 1) + (x * y) % 37) % 256);
            o[2] = (uint8_t)(((x + 2 * y) * 3 + ((x * 7 + y * 13) % 61) + 17 * seed) % 256);
        }
}

/* NAME -> a decoded (or generated) image; 1 = skipped (asset missing) */
static int load_named(const char *name, glmv_rgb *im, char *err) {
    char path[600];
    int w, h, seed;
    if (sscanf(name, "synthetic_%dx%d_%d", &w, &h, &seed) == 3) {
        synthetic(im, w, h, seed);
        return 0;
    }
    if (strncmp(name, "assets/", 7) == 0) snprintf(path, sizeof(path), ASSETS "%s", name + 7);
    else if (strncmp(name, "variants/", 9) == 0) snprintf(path, sizeof(path), ASSETS "%s", name);
    else if (strncmp(name, "fix/", 4) == 0) snprintf(path, sizeof(path), FIX "%s", name + 4);
    else return glmv_errf(err, "bad fixture name %s", name);
    if (!have_file(path)) return 1;
    return glmv_image_decode_file(path, 0, im, err) ? -1 : 0;
}

typedef struct {
    char name[256];
    glmv_rgb rs;
    float *pv;
    int64_t pv_rows;
    int ok;
} cur_image;

static long n_px_total, n_px_pm1, n_px_worse, n_images, n_dec_exact, n_rs_exact;

TEST(hf_parity) {
    FILE *f = fopen(FIX "expected.txt", "r");
    if (!f) {
        test_skip("tests/fixtures/image/expected.txt missing");
        return;
    }
    const int sanitize = getenv("GLMV_SANITIZE") != NULL;
    glmv_image_params p;
    glmv_image_params_default(&p);
    cur_image cur = {0};
    static char line[1 << 16];
    while (fgets(line, sizeof(line), f)) {
        char kind[16], name[256];
        int off = 0;
        if (line[0] == '#' || sscanf(line, "%15s %255s %n", kind, name, &off) < 2) continue;
        const char *rest = line + off;
        char err[GLMV_ERR_SIZE] = "";
        if (strcmp(kind, "error") == 0) {
            glmv_rgb im = {0};
            int rc = load_named(name, &im, err);
            if (rc == 1) continue;
            if (rc == 0) {
                uint8_t *rows = NULL;
                int grid[3];
                rc = glmv_image_preprocess(&im, &p, &rows, grid, err);
                free(rows);
                glmv_rgb_free(&im);
            }
            CHECK_MSG(rc != 0, "%s: HF refused it (%s), glmv did not", name, rest);
            continue;
        }
        if (strcmp(kind, "image") == 0) {
            glmv_rgb_free(&cur.rs);
            free(cur.pv);
            memset(&cur, 0, sizeof(cur));
            snprintf(cur.name, sizeof(cur.name), "%s", name);
            int w, h, ow, oh, gt, gh, gw;
            unsigned long long dck, rck, pck;
            if (sscanf(rest, "%d %d %d %d %d %d %d %llu %llu %llu", &w, &h, &ow, &oh, &gt, &gh, &gw,
                       &dck, &rck, &pck) != 10) {
                CHECK_MSG(0, "bad line for %s", name);
                continue;
            }
            if (sanitize && (int64_t)w * h > 3000000) continue; /* too slow under ASan */
            glmv_rgb im = {0};
            int rc = load_named(name, &im, err);
            if (rc == 1) continue;
            CHECK_MSG(rc == 0, "%s: %s", name, err);
            if (rc) continue;
            n_images++;
            CHECK_EQ_INT(im.w, w);
            CHECK_EQ_INT(im.h, h);
            uint64_t ck = im.w == w && im.h == h ? checksum(im.rgb, (size_t)w * h * 3) : 0;
            CHECK_MSG(ck == dck, "%s: decoded pixels differ from PIL's", name);
            n_dec_exact += ck == dck;
            int oh2 = 0, ow2 = 0;
            CHECK_EQ_INT(glmv_smart_resize(2, im.h, im.w, 28, p.min_pixels, p.max_pixels, &oh2, &ow2,
                                           err), 0);
            CHECK_MSG(oh2 == oh && ow2 == ow, "%s: grid %dx%d, HF %dx%d", name, ow2, oh2, ow, oh);
            uint8_t *rows8 = NULL;
            int grid[3] = {0, 0, 0};
            CHECK_MSG(glmv_image_preprocess(&im, &p, &rows8, grid, err) == 0, "%s: %s", name, err);
            /* the floats the vision tower sees: the bytes through the processor's table */
            float *rows = rows8 ? malloc(sizeof(float) * (size_t)grid[1] * grid[2] * 1176) : NULL;
            if (rows) {
                glmv_patch_lut lut;
                glmv_patch_lut_init(&p, &lut);
                glmv_patch_expand(rows8, (int64_t)grid[1] * grid[2] * 1176, 392, &lut, rows);
            }
            free(rows8);
            CHECK(grid[0] == gt && grid[1] == gh && grid[2] == gw);
            if (oh2 == oh && ow2 == ow && glmv_image_resize(&im, ow, oh, &cur.rs, err) == 0) {
                uint64_t rk = checksum(cur.rs.rgb, (size_t)ow * oh * 3);
                n_rs_exact += rk == rck;
                /* measured bit-identical on every fixture (parity.txt): keep it so */
                CHECK_MSG(rk == rck, "%s: resized uint8 image differs from HF's", name);
                if (ck == dck && rows) {
                    uint64_t pk = checksum(rows, (size_t)gh * gw * 1176 * sizeof(float));
                    CHECK_MSG(rk != rck || pk == pck, "%s: pixel_values differ with identical pixels", name);
                }
            }
            cur.pv = rows;
            cur.pv_rows = (int64_t)grid[1] * grid[2];
            cur.ok = rows != NULL && cur.rs.rgb != NULL;
            glmv_rgb_free(&im);
            continue;
        }
        if (!cur.ok || strcmp(name, cur.name) != 0) continue;
        if (strcmp(kind, "rs") == 0) {
            int y, x0, st, n, k;
            const char *q = rest;
            if (sscanf(q, "%d %d %d %d %n", &y, &x0, &st, &n, &k) != 4) continue;
            q += k;
            int worst = 0, wx = 0;
            for (int i = 0; i < n * 3; i++) {
                int v;
                if (sscanf(q, "%d %n", &v, &k) != 1) break;
                q += k;
                int x = x0 + (i / 3) * st;
                if (y >= cur.rs.h || x >= cur.rs.w) break;
                int d = abs((int)cur.rs.rgb[((size_t)y * cur.rs.w + x) * 3 + i % 3] - v);
                n_px_total++;
                n_px_pm1 += d == 1;
                n_px_worse += d > 1;
                if (d > worst) worst = d, wx = x;
            }
            CHECK_MSG(worst <= 1, "%s: resized pixel (%d,%d) differs by %d", name, wx, y, worst);
        } else if (strcmp(kind, "pv") == 0) {
            int r, st, n, k;
            const char *q = rest;
            if (sscanf(q, "%d %d %d %n", &r, &st, &n, &k) != 3 || r >= cur.pv_rows) continue;
            q += k;
            int bad = 0;
            for (int i = 0; i < n; i++) {
                float v;
                if (sscanf(q, "%f %n", &v, &k) != 1) break;
                q += k;
                float got = cur.pv[(int64_t)r * 1176 + (int64_t)i * st];
                /* 1e-6, or exactly one resized-pixel step 1/(255*std[c]) where the
                 * u8 differs by one (counted by the rs checks) */
                int c = (i * st) / (2 * 14 * 14);
                float step = 1.0f / (255.0f * p.std[c]);
                bad += fabsf(got - v) > 1e-6f && fabsf(fabsf(got - v) - step) > 1e-5f;
            }
            CHECK_MSG(bad == 0, "%s: %d pixel_values off in row %d", name, bad, r);
        }
    }
    glmv_rgb_free(&cur.rs);
    free(cur.pv);
    fclose(f);
    printf("  parity: %ld images, decoded identical %ld, resized identical %ld; sampled resized "
           "values %ld, off by 1: %ld, worse: %ld\n",
           n_images, n_dec_exact, n_rs_exact, n_px_total, n_px_pm1, n_px_worse);
    CHECK(n_images > 0);
}

/* ---------------------------------------------------------------- decoding */
TEST(decode_shared_photos) {
    static const char *names[] = {"coco_000000039769.png", "glmv_gui_agent_allrecipes.jpg",
                                  "llamacpp_test-1.jpeg", "llava_extreme_ironing.jpg",
                                  "llava_waterview.jpg", "variants/cats_rgba.png",
                                  "variants/gray.png", "variants/tiny_20x30.png"};
    if (!have_file(ASSETS "llava_waterview.jpg")) {
        test_skip("../shared/assets/images not present");
        return;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[512], err[GLMV_ERR_SIZE] = "";
        snprintf(path, sizeof(path), ASSETS "%s", names[i]);
        glmv_rgb im;
        int rc = glmv_image_decode_file(path, 0, &im, err);
        CHECK_MSG(rc == 0, "%s: %s", names[i], err);
        if (rc) continue;
        CHECK(im.w > 0 && im.h > 0);
        uint8_t *rows = NULL;
        int grid[3];
        glmv_image_params p;
        glmv_image_params_default(&p);
        CHECK_MSG(glmv_image_preprocess(&im, &p, &rows, grid, err) == 0, "%s: %s", names[i], err);
        CHECK_EQ_INT(grid[0], 1);
        CHECK(grid[1] % 2 == 0 && grid[2] % 2 == 0);
        free(rows);
        glmv_rgb_free(&im);
    }
}

/* ---------------------------------------------------------------- PNG through libdeflate
 * 8-bit gray, gray + alpha, RGB and RGBA files, not interlaced, are inflated by libdeflate and
 * unfiltered by image_decode.c itself: each filter type alone and libpng's mix, widths of 1 to
 * 37 pixels (an odd last pixel for the two-row Paeth, rows in pairs and alone), one IDAT or
 * many, against libpng's own decoding of the same bytes (written and read here) */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} membuf;

static void mem_write(png_structp png, png_bytep d, png_size_t n) {
    membuf *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}
static void mem_flush(png_structp png) { (void)png; }

/* w x h pixels of ch channels (ctype: libpng's colour type), filters: libpng's PNG_FILTER_* mask,
 * zbuf: the compression buffer (small: many IDAT chunks) */
static membuf png_encode(const uint8_t *px, int w, int h, int ch, int ctype, int filters, int zbuf) {
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(m.p);
        return (membuf){0};
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, ctype, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_set_filter(png, 0, filters);
    png_set_compression_buffer_size(png, (size_t)zbuf);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(px + (size_t)y * w * ch));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return m;
}

TEST(png_libdeflate_path) {
    static const struct {
        int ch, ctype;
    } kinds[] = {{1, PNG_COLOR_TYPE_GRAY}, {2, PNG_COLOR_TYPE_GRAY_ALPHA}, {3, PNG_COLOR_TYPE_RGB},
                 {4, PNG_COLOR_TYPE_RGB_ALPHA}};
    static const int filters[] = {PNG_FILTER_NONE, PNG_FILTER_SUB,   PNG_FILTER_UP,
                                  PNG_FILTER_AVG,  PNG_FILTER_PAETH, PNG_ALL_FILTERS};
    static const int widths[] = {1, 2, 5, 37};
    int cases = 0;
    uint32_t seed = 12345;
    for (size_t k = 0; k < 4; k++)
        for (size_t f = 0; f < 6; f++)
            for (size_t wi = 0; wi < 4; wi++)
                for (int zb = 0; zb < 2; zb++) {
                    const int w = widths[wi], h = 9 + (int)wi, ch = kinds[k].ch;
                    uint8_t *px = malloc((size_t)w * h * ch);
                    for (int i = 0; i < w * h * ch; i++) { /* noise on a gradient: every predictor wins somewhere */
                        seed = seed * 1103515245u + 12345u;
                        px[i] = (uint8_t)((i * 7) / 3 + ((seed >> 16) % 23) * (i % 3 == 0));
                    }
                    membuf m = png_encode(px, w, h, ch, kinds[k].ctype, filters[f], zb ? 16 : 8192);
                    char err[GLMV_ERR_SIZE] = "";
                    glmv_rgb im = {0};
                    int rc = m.p ? glmv_image_decode_mem(m.p, m.n, 0, &im, err) : -1;
                    CHECK_MSG(rc == 0, "ch %d filters %d w %d: %s", ch, filters[f], w, err);
                    if (!rc) {
                        int bad = im.w != w || im.h != h;
                        for (int i = 0; !bad && i < w * h; i++)
                            for (int c = 0; c < 3; c++)
                                bad |= im.rgb[3 * i + c] != px[(size_t)i * ch + (ch <= 2 ? 0 : c)];
                        CHECK_MSG(!bad, "ch %d filters %d w %d zbuf %d: pixels differ from those written", ch,
                                  filters[f], w, zb ? 16 : 8192);
                        cases++;
                    }
                    glmv_rgb_free(&im);
                    free(m.p);
                    free(px);
                }
    CHECK_EQ_INT(cases, 4 * 6 * 4 * 2);
    { /* a buffer of more than 1 MB (on huge pages): 720 x 500 RGB, libpng's filter mix */
        const int w = 720, h = 500;
        uint8_t *px = malloc((size_t)w * h * 3);
        for (int i = 0; i < w * h * 3; i++) {
            seed = seed * 1103515245u + 12345u;
            px[i] = (uint8_t)(i / 7 + (seed >> 20) % 9);
        }
        membuf big = png_encode(px, w, h, 3, PNG_COLOR_TYPE_RGB, PNG_ALL_FILTERS, 8192);
        char e[GLMV_ERR_SIZE] = "";
        glmv_rgb bi = {0};
        CHECK_MSG(big.p && glmv_image_decode_mem(big.p, big.n, 0, &bi, e) == 0, "720x500: %s", e);
        CHECK(bi.rgb && bi.w == w && bi.h == h && !memcmp(bi.rgb, px, (size_t)w * h * 3));
        glmv_rgb_free(&bi);
        free(big.p);
        free(px);
    }
    /* a broken IDAT CRC: libpng's error, as before */
    uint8_t px[16 * 4 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 5);
    membuf m = png_encode(px, 16, 4, 3, PNG_COLOR_TYPE_RGB, PNG_FILTER_PAETH, 8192);
    for (size_t o = 8; m.p && o + 12 <= m.n;) {
        uint32_t len = (uint32_t)m.p[o] << 24 | m.p[o + 1] << 16 | m.p[o + 2] << 8 | m.p[o + 3];
        if (!memcmp(m.p + o + 4, "IDAT", 4)) {
            m.p[o + 8 + len] ^= 1; /* its CRC */
            break;
        }
        o += 12 + len;
    }
    char err[GLMV_ERR_SIZE] = "";
    glmv_rgb im = {0};
    CHECK(m.p && glmv_image_decode_mem(m.p, m.n, 0, &im, err) != 0);
    CHECK_MSG(strstr(err, "CRC") != NULL, "%s", err);
    free(m.p);
}

TEST(hostile_input) {
    char err[GLMV_ERR_SIZE];
    glmv_rgb im;
    CHECK(glmv_image_decode_mem("", 0, 0, &im, err) != 0);
    CHECK(strstr(err, "empty") != NULL);
    CHECK(glmv_image_decode_mem("hello world, not an image", 25, 0, &im, err) != 0);
    CHECK(strstr(err, "unknown format") != NULL);
    CHECK(glmv_image_decode_mem("II*\0\x08\0\0\0", 8, 0, &im, err) != 0);
    CHECK(strstr(err, "TIFF") != NULL);
    CHECK(glmv_image_decode_file("/nonexistent/x.png", 0, &im, err) != 0);
    CHECK(strstr(err, "/nonexistent/x.png") != NULL);
    /* a header claiming 100000 x 100000: refused before decoding */
    CHECK(glmv_image_decode_file(FIX "bomb_100000x100000.png", 0, &im, err) != 0);
    CHECK_MSG(strstr(err, "100000x100000") && strstr(err, "limit"), "%s", err);
    /* a JPEG cut in half (Pillow: "image file is truncated") */
    CHECK(glmv_image_decode_file(FIX "truncated.jpg", 0, &im, err) != 0);
    CHECK_MSG(strstr(err, "truncated") != NULL, "%s", err);
    /* zero-byte file; a PNG named .jpg decodes (format from the bytes) */
    FILE *z = fopen("/tmp/glmv_test_empty.jpg", "wb");
    if (z) {
        fclose(z);
        CHECK(glmv_image_decode_file("/tmp/glmv_test_empty.jpg", 0, &im, err) != 0);
        CHECK_MSG(strstr(err, "empty") != NULL, "%s", err);
        remove("/tmp/glmv_test_empty.jpg");
    }
    size_t pn = 0;
    char *png = glmv_read_file(FIX "rgba.png", &pn, err);
    FILE *wz = png ? fopen("/tmp/glmv_test_png.jpg", "wb") : NULL;
    if (wz) {
        fwrite(png, 1, pn, wz);
        fclose(wz);
        CHECK_EQ_INT(glmv_image_decode_file("/tmp/glmv_test_png.jpg", 0, &im, err), 0);
        CHECK(im.w == 64 && im.h == 48);
        glmv_rgb_free(&im);
        remove("/tmp/glmv_test_png.jpg");
    }
    free(png);
    /* truncations of each format: an error each, never a crash */
    static const char *files[] = {ASSETS "llava_waterview.jpg", FIX "tiny_20x30.png",
                                  FIX "jpeg_progressive.jpg", FIX "lossy.webp",
                                  FIX "lossless_alpha.webp", FIX "palette.gif", FIX "rgb24.bmp",
                                  FIX "palette8.bmp", FIX "jpeg_cmyk.jpg"};
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        size_t n = 0;
        char *buf = glmv_read_file(files[f], &n, err);
        if (!buf) continue;
        /* (a PNG cut inside its trailing chunks still decodes, as in Pillow) */
        size_t cuts[] = {2, 8, 20, 100, n / 2, f == 0 ? n - 10 : n / 3};
        if (strstr(files[f], ".webp") || strstr(files[f], ".gif") || strstr(files[f], ".bmp"))
            cuts[1] = 30, cuts[2] = 60; /* their headers are longer than 8 bytes */
        for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
            if (cuts[c] >= n) continue;
            err[0] = 0;
            int rc = glmv_image_decode_mem(buf, cuts[c], 0, &im, err);
            CHECK_MSG(rc != 0, "%s cut at %zu decoded", files[f], cuts[c]);
            CHECK(err[0] != 0);
            if (rc == 0) glmv_rgb_free(&im);
        }
        /* refused from the header when above max_pixels */
        CHECK(glmv_image_decode_mem(buf, n, 100, &im, err) != 0);
        CHECK_MSG(strstr(err, "limit") != NULL, "%s", err);
        free(buf);
    }
}

int main(void) {
    RUN(smart_resize_spec_table);
    RUN(smart_resize_edges);
    RUN(token_limits);
    RUN(resize_constant_and_identity);
    RUN(patchify_order);
    RUN(decode_shared_photos);
    RUN(png_libdeflate_path);
    RUN(hostile_input);
    RUN(hf_parity);
    return test_summary("image");
}
