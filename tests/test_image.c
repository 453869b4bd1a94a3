/* test_image.c -- the image path against transformers' Glm4vImageProcessor:
 * smart_resize grids (GLM4V.md §6.2 and the committed HF fixtures), decoding
 * of the shared photos and generated edge cases, resized uint8 and
 * pixel_values checksums / sampled rows from scripts/gen_image_fixtures.py
 * (tests/fixtures/image/expected.txt), patch order, and hostile input:
 * empty, truncated, unsupported and oversized files give errors, not crashes.
 */
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
    /* threads do not change the result */
    glmv_rgb c = {0};
    fill_pattern(&a, 1500, 1100, 9);
    CHECK_EQ_INT(glmv_image_resize(&a, 840, 1232, &b, err), 0);
    setenv("GLMV_IMAGE_THREADS", "1", 1);
    CHECK_EQ_INT(glmv_image_resize(&a, 840, 1232, &c, err), 0);
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
    CHECK_EQ_INT(glmv_patchify(&im, 1, &p, rows, err), 0);
    /* row r = block (bh,bw) then (mh,mw); element ((c*2+t)*14+i)*14+j */
    int bad = 0;
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
                    }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(glmv_patchify(&im, 1, &p, rows, err) == 0);
    glmv_rgb odd = {.w = 30, .h = 28, .rgb = im.rgb};
    CHECK(glmv_patchify(&odd, 1, &p, rows, err) != 0);
    free(rows);
    glmv_rgb_free(&im);
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
        float *rows = NULL;
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
    /* truncations of a real JPEG and PNG: an error each, never a crash */
    static const char *files[] = {ASSETS "llava_waterview.jpg", ASSETS "variants/tiny_20x30.png"};
    for (int f = 0; f < 2; f++) {
        size_t n = 0;
        char *buf = glmv_read_file(files[f], &n, err);
        if (!buf) continue;
        /* (a PNG cut inside its trailing chunks still decodes, as in Pillow) */
        size_t cuts[] = {2, 8, 20, 100, n / 2, f == 0 ? n - 10 : n / 3};
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
    RUN(hostile_input);
    return test_summary("image");
}
