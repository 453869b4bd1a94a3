/* test_rope.c -- M-RoPE position ids (get_rope_index) and the rotary tables.
 * The worked example of GLM4V.md §4.2, video temporal groups, error cases,
 * the text table's section-to-axis mapping and its reduction to 1-D RoPE for
 * text, and the vision table's (h, w) halves, each against values computed
 * here independently in double.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "model.h"
#include "test.h"

static void cfg_init(glmv_config *c) {
    memset(c, 0, sizeof *c);
    c->image_token_id = 151343;
    c->video_token_id = 151344;
    c->image_start_token_id = 151339;
    c->image_end_token_id = 151340;
    c->video_start_token_id = 151341;
    c->video_end_token_id = 151342;
    c->v_spatial_merge_size = 2;
    c->head_dim = 128;
    c->partial_rotary_factor = 0.5f;
    c->rope_theta = 10000.0;
    c->mrope_section[0] = 8;
    c->mrope_section[1] = 12;
    c->mrope_section[2] = 12;
}

TEST(worked_example) {
    glmv_config c;
    cfg_init(&c);
    /* [gMASK]<sop><|user|>\n<|begin_of_image|> + 4 image + <|end_of_image|> Hi <|assistant|>\n */
    int32_t ids[] = {151331, 151333, 151336, 198, 151339, 151343, 151343, 151343, 151343,
                     151340, 13347, 151337, 198};
    int n = sizeof ids / sizeof ids[0];
    int grid[1][3] = {{1, 4, 4}};
    int32_t pos[3 * 13];
    int64_t delta = 99;
    char err[GLMV_ERR_SIZE];
    CHECK(glmv_rope_index(&c, ids, n, (const int(*)[3])grid, 1, NULL, 0, pos, &delta, err) == 0);
    int32_t et[] = {0, 1, 2, 3, 4, 5, 5, 5, 5, 7, 8, 9, 10};
    int32_t eh[] = {0, 1, 2, 3, 4, 5, 5, 6, 6, 7, 8, 9, 10};
    int32_t ew[] = {0, 1, 2, 3, 4, 5, 6, 5, 6, 7, 8, 9, 10};
    for (int i = 0; i < n; i++) {
        CHECK_EQ_INT(pos[i], et[i]);
        CHECK_EQ_INT(pos[n + i], eh[i]);
        CHECK_EQ_INT(pos[2 * n + i], ew[i]);
    }
    CHECK_EQ_INT(delta, -2);
}

TEST(wide_image_and_two_images) {
    glmv_config c;
    cfg_init(&c);
    /* image of grid (1, 2, 6): merged 1 x 3 -> next advances by max(1, 3) = 3 */
    int32_t ids[] = {1, 151339, 151343, 151343, 151343, 151340, 151339, 151343, 151340, 2};
    int n = 10;
    int grid[2][3] = {{1, 2, 6}, {1, 2, 2}};
    int32_t pos[30];
    int64_t delta;
    char err[GLMV_ERR_SIZE];
    CHECK(glmv_rope_index(&c, ids, n, (const int(*)[3])grid, 2, NULL, 0, pos, &delta, err) == 0);
    /* text 0,1; image at 2: w = 2,3,4, h = 2; next = 5; end 5; begin 6; image 7; end 8; text 9 */
    CHECK_EQ_INT(pos[2], 2);
    CHECK_EQ_INT(pos[2 * n + 4], 4);
    CHECK_EQ_INT(pos[n + 4], 2);
    CHECK_EQ_INT(pos[5], 5);
    CHECK_EQ_INT(pos[7], 7);
    CHECK_EQ_INT(pos[9], 9);
    CHECK_EQ_INT(delta, 0);
}

TEST(video_groups) {
    glmv_config c;
    cfg_init(&c);
    /* <|begin_of_video|> [<boi> 1 img <eoi> "0"] [<boi> 1 img <eoi> "1"] <|end_of_video|>, grid (2, 2, 2) */
    int32_t ids[] = {151341, 151339, 151343, 151340, 15, 151339, 151343, 151340, 16, 151342};
    int n = 10;
    int vg[1][3] = {{2, 2, 2}};
    int32_t pos[30];
    int64_t delta;
    char err[GLMV_ERR_SIZE];
    CHECK(glmv_rope_index(&c, ids, n, NULL, 0, (const int(*)[3])vg, 1, pos, &delta, err) == 0);
    for (int i = 0; i < n; i++) CHECK_EQ_INT(pos[i], i); /* every group is 1x1 merged */
    CHECK_EQ_INT(delta, 0);
    /* a video placeholder run with no video given is an error */
    CHECK(glmv_rope_index(&c, ids, n, NULL, 0, NULL, 0, pos, &delta, err) != 0);
}

TEST(errors) {
    glmv_config c;
    cfg_init(&c);
    int32_t ids[] = {1, 151343, 151343, 151343, 2};
    int grid[1][3] = {{1, 4, 4}}; /* needs 4 placeholders */
    int32_t pos[15];
    int64_t delta;
    char err[GLMV_ERR_SIZE] = "";
    CHECK(glmv_rope_index(&c, ids, 5, (const int(*)[3])grid, 1, NULL, 0, pos, &delta, err) != 0);
    CHECK(strstr(err, "placeholders") != NULL);
    CHECK(glmv_rope_index(&c, ids, 5, NULL, 0, NULL, 0, pos, &delta, err) != 0);
    int32_t txt[] = {1, 2, 3};
    CHECK(glmv_rope_index(&c, txt, 3, (const int(*)[3])grid, 1, NULL, 0, pos, &delta, err) != 0);
    CHECK(strstr(err, "1 images") != NULL);
}

TEST(text_table_sections) {
    glmv_config c;
    cfg_init(&c);
    c.head_dim = 32;
    c.rope_theta = 1000.0;
    c.mrope_section[0] = 2;
    c.mrope_section[1] = 3;
    c.mrope_section[2] = 3; /* rot 16, 8 frequencies: t t h h h w w w */
    int32_t pos[3] = {5, 17, 1234};
    float cs[8], sn[8];
    glmv_rope_text_table(&c, pos, 1, 1, cs, sn);
    int axis[8] = {0, 0, 1, 1, 1, 2, 2, 2};
    for (int j = 0; j < 8; j++) {
        double inv = 1.0 / pow(1000.0, 2.0 * j / 16.0);
        double a = pos[axis[j]] * inv;
        CHECK_NEAR(cs[j], cos(a), 2e-4 * (1 + fabs(a)) * 1e-2 + 1e-6 * (1 + fabs(a)));
        CHECK_NEAR(sn[j], sin(a), 1e-6 * (1 + fabs(a)));
    }
    /* text tokens (all axes equal) reduce to ordinary 1-D RoPE over 32 freqs */
    cfg_init(&c);
    int32_t p3[3] = {100, 100, 100};
    float c2[32], s2[32];
    glmv_rope_text_table(&c, p3, 1, 1, c2, s2);
    for (int j = 0; j < 32; j++) {
        double a = 100.0 / pow(10000.0, 2.0 * j / 64.0);
        CHECK_NEAR(c2[j], cos(a), 1e-4);
        CHECK_NEAR(s2[j], sin(a), 1e-4);
    }
}

TEST(vision_table) {
    int32_t hp[2] = {0, 3}, wp[2] = {0, 7};
    float cs[2 * 64], sn[2 * 64];
    glmv_rope_vision_table(128, 10000.0, hp, wp, 2, cs, sn);
    for (int j = 0; j < 32; j++) {
        CHECK_NEAR(cs[j], 1.0, 0);
        CHECK_NEAR(sn[32 + j], 0.0, 0);
        double inv = 1.0 / pow(10000.0, 2.0 * j / 64.0);
        CHECK_NEAR(cs[64 + j], cos(3 * inv), 2e-6);
        CHECK_NEAR(sn[64 + 32 + j], sin(7 * inv), 2e-6);
    }
}

/* many patches: each value's cos and sin computed once and copied, the same floats as each
 * computed on its own (the direct path, taken where a value is beyond n + 64) */
TEST(vision_table_shared_values) {
    enum { N = 6400 };
    int32_t *hp = malloc(sizeof(int32_t) * N), *wp = malloc(sizeof(int32_t) * N);
    float *cs = malloc(sizeof(float) * N * 64), *sn = malloc(sizeof(float) * N * 64);
    CHECK(hp && wp && cs && sn);
    if (!hp || !wp || !cs || !sn) return;
    for (int i = 0; i < N; i++) hp[i] = (i / 160) * 2 + (i / 2) % 2, wp[i] = ((i / 4) % 40) * 2 + i % 2;
    hp[N - 1] = 79, wp[N - 1] = 79;
    glmv_rope_vision_table(128, 10000.0, hp, wp, N, cs, sn);
    int bad = 0;
    for (int i = 0; i < N; i += 37) {
        /* the row with a second whose value is beyond n + 64: no table, each value computed */
        int32_t hh[2] = {hp[i], 1000}, ww[2] = {wp[i], 1000};
        float c2[128], s2[128];
        glmv_rope_vision_table(128, 10000.0, hh, ww, 2, c2, s2);
        if (memcmp(cs + (size_t)i * 64, c2, sizeof(float) * 64) || memcmp(sn + (size_t)i * 64, s2, sizeof(float) * 64))
            bad++;
    }
    CHECK_MSG(bad == 0, "%d rows differ from the direct computation", bad);
    free(hp);
    free(wp);
    free(cs);
    free(sn);
}

int main(void) {
    RUN(worked_example);
    RUN(wide_image_and_two_images);
    RUN(video_groups);
    RUN(errors);
    RUN(text_table_sections);
    RUN(vision_table);
    RUN(vision_table_shared_values);
    return test_summary("rope");
}
