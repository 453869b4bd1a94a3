/* test_video.c -- frame sampling as Glm4vVideoProcessor.sample_frames, the
 * decode of the real clips in ../shared/assets/videos/, and hostile input. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base.h"
#include "test.h"
#include "util_json.h"
#include "video.h"

#define VID "../shared/assets/videos/"

static glmv_image_params video_params(void) {
    glmv_image_params p = {.patch_size = 14, .temporal_patch_size = 2, .merge_size = 2,
                           .min_pixels = 12544, .max_pixels = 47040000,
                           .mean = {0.48145466f, 0.4578275f, 0.40821073f},
                           .std = {0.26862954f, 0.26130258f, 0.27577711f},
                           .rescale_factor = 1.0 / 255};
    return p;
}

/* Expected values worked out from the Python of sample_frames by hand. */
TEST(sample_short_clip) {
    int *idx, n;
    char err[GLMV_ERR_SIZE];
    /* 168 frames at 25 fps: duration 6.72 s -> 13 samples ceil(i*12.5), odd -> last repeated */
    CHECK(glmv_video_sample_indices(168, 25, 168 / 25.0, 2, 300, &idx, &n, err) == 0);
    int want[] = {0, 13, 25, 38, 50, 63, 75, 88, 100, 113, 125, 138, 150, 150};
    CHECK_EQ_INT(n, 14);
    for (int i = 0; i < 14 && i < n; i++) CHECK_EQ_INT(idx[i], want[i]);
    free(idx);
}

TEST(sample_dedupe_and_even) {
    int *idx, n;
    char err[GLMV_ERR_SIZE];
    /* 1 fps video of 5 frames: duration 5 -> 10 samples ceil(i/2): 0,1,1,2,2,3,3,4,4,5->4 */
    CHECK(glmv_video_sample_indices(5, 1, 5, 2, 300, &idx, &n, err) == 0);
    int want[] = {0, 1, 2, 3, 4, 4};
    CHECK_EQ_INT(n, 6);
    for (int i = 0; i < 6 && i < n; i++) CHECK_EQ_INT(idx[i], want[i]);
    free(idx);
}

TEST(sample_long_video_spread) {
    int *idx, n;
    char err[GLMV_ERR_SIZE];
    /* 20 minutes at 30 fps: 600 samples over linspace(0, 1200, 600) */
    CHECK(glmv_video_sample_indices(36000, 30, 1200, 2, 300, &idx, &n, err) == 0);
    CHECK_EQ_INT(n, 600);
    CHECK_EQ_INT(idx[0], 0);
    CHECK_EQ_INT(idx[599], 35999); /* ceil(1200*30) clamped to the last frame */
    /* t_1 = 1200/599 s -> ceil(60.100...) = 61 */
    CHECK_EQ_INT(idx[1], 61);
    free(idx);
    /* unknown duration: round((total-1)/fps)+1 */
    CHECK(glmv_video_sample_indices(50, 25, 0, 2, 300, &idx, &n, err) == 0);
    CHECK_EQ_INT(n, 6); /* duration round(49/25)+1 = 3 -> 6 samples */
    free(idx);
}

TEST(sample_bad) {
    int *idx, n;
    char err[GLMV_ERR_SIZE];
    CHECK(glmv_video_sample_indices(0, 25, 1, 2, 300, &idx, &n, err) != 0);
}

/* value i of a video's patch rows as the vision tower sees it: its byte through its channel's
 * table (392 values a channel in a row of 1,176) */
#define VAL(vid, i) ((vid).lut.v[((i) / 392) % 3][(vid).rows[(i)]])

/* mean red value (0..255) of temporal group g, frame t, de-normalised */
static double group_brightness(const glmv_video *v, const glmv_image_params *p, int g, int t) {
    int per = 3 * p->temporal_patch_size * p->patch_size * p->patch_size;
    int64_t rows = (int64_t)v->grid[1] * v->grid[2];
    int pp = p->patch_size * p->patch_size;
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = v->rows + ((int64_t)g * rows + r) * per;
        for (int i = 0; i < pp; i++) {
            float x = v->lut.v[0][row[t * pp + i]]; /* channel 0 */
            sum += (x * p->std[0] + p->mean[0]) * 255.0;
            cnt++;
        }
    }
    return sum / cnt;
}

TEST(decode_mmcv_clip) {
    glmv_image_params ip = video_params();
    glmv_video_params vp = {0};
    glmv_video v;
    char err[GLMV_ERR_SIZE];
    if (access(VID "mmcv_test.mp4", R_OK)) {
        test_skip("../shared/assets/videos/mmcv_test.mp4 missing");
        return;
    }
    int rc = glmv_video_load(VID "mmcv_test.mp4", NULL, 0, &vp, &ip, &v, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) return;
    CHECK_EQ_INT(v.total_frames, 168);
    CHECK_NEAR(v.video_fps, 25, 1e-9);
    CHECK_EQ_INT(v.n_frames, 14);
    CHECK_EQ_INT(v.n_groups, 7);
    CHECK_EQ_INT(v.grid[0], 7);
    /* 294x240: round(240/28) = 9 -> 252 high; round(294/28) = round(10.5) = 10 (half to
     * even) -> 280 wide */
    CHECK_EQ_INT(v.grid[1], 18);
    CHECK_EQ_INT(v.grid[2], 20);
    for (int k = 0; k < v.n_groups; k++) CHECK_EQ_INT(v.timestamps[k], k);
    /* frames 0..63 are dark, 64..149 bright, the last ones black (means of the red
     * channel after resizing: ~90, 150..180, 0) */
    for (int g = 0; g < 3; g++)
        for (int t = 0; t < 2; t++) CHECK_NEAR(group_brightness(&v, &ip, g, t), 90, 5);
    for (int g = 3; g < 6; g++)
        for (int t = 0; t < 2; t++) CHECK(group_brightness(&v, &ip, g, t) > 140);
    CHECK(group_brightness(&v, &ip, 6, 0) < 5);
    glmv_video_free(&v);
}

TEST(decode_from_memory_matches_file) {
    glmv_image_params ip = video_params();
    glmv_video_params vp = {0};
    glmv_video a, b;
    char err[GLMV_ERR_SIZE];
    size_t len;
    char *data = glmv_read_file(VID "mmcv_test.mp4", &len, err);
    if (!data) {
        test_skip("clip missing");
        return;
    }
    CHECK(glmv_video_load(VID "mmcv_test.mp4", NULL, 0, &vp, &ip, &a, err) == 0);
    CHECK_MSG(glmv_video_load(NULL, data, len, &vp, &ip, &b, err) == 0, "%s", err);
    int64_t nrow = (int64_t)a.grid[0] * a.grid[1] * a.grid[2] * 3 * 2 * 14 * 14;
    CHECK(a.grid[1] == b.grid[1] && a.grid[2] == b.grid[2]);
    CHECK(a.rows && b.rows && memcmp(a.rows, b.rows, (size_t)nrow) == 0);
    glmv_video_free(&a);
    glmv_video_free(&b);
    free(data);
}

TEST(options_range_fps_max_frames) {
    glmv_image_params ip = video_params();
    glmv_video v;
    char err[GLMV_ERR_SIZE];
    if (access(VID "mmcv_test.mp4", R_OK)) {
        test_skip("../shared/assets/videos/mmcv_test.mp4 missing");
        return;
    }
    glmv_video_params vp = {.start = 2.0, .end = 4.0};
    CHECK_MSG(glmv_video_load(VID "mmcv_test.mp4", NULL, 0, &vp, &ip, &v, err) == 0, "%s", err);
    CHECK_EQ_INT(v.total_frames, 50);
    CHECK_EQ_INT(v.frame_indices[0], 50);
    CHECK_EQ_INT(v.timestamps[0], 2);
    glmv_video_free(&v);
    vp = (glmv_video_params){.max_frames = 4};
    CHECK(glmv_video_load(VID "mmcv_test.mp4", NULL, 0, &vp, &ip, &v, err) == 0);
    CHECK_EQ_INT(v.n_frames, 4);
    glmv_video_free(&v);
    vp = (glmv_video_params){.fps = 1};
    CHECK(glmv_video_load(VID "mmcv_test.mp4", NULL, 0, &vp, &ip, &v, err) == 0);
    CHECK_EQ_INT(v.frame_indices[1], 25);
    glmv_video_free(&v);
    vp = (glmv_video_params){.start = 100};
    CHECK(glmv_video_load(VID "mmcv_test.mp4", NULL, 0, &vp, &ip, &v, err) != 0);
    /* no end given: the message must not show a range ending at 0 s */
    CHECK_MSG(strstr(err, "past the end") != NULL && !strstr(err, "-0.00"), "%s", err);
    vp = (glmv_video_params){.start = 3, .end = 1}; /* reversed */
    CHECK(glmv_video_load(VID "mmcv_test.mp4", NULL, 0, &vp, &ip, &v, err) != 0);
    CHECK_MSG(strstr(err, "not after its start") != NULL, "%s", err);
    /* a PNG handed over as a video: named as an image, not "no frame could be decoded" */
    size_t png_len = 0;
    char *png = glmv_read_file("models/demo/example.png", &png_len, err);
    CHECK_MSG(png != NULL, "%s", err);
    vp = (glmv_video_params){0};
    CHECK(png && glmv_video_load(NULL, png, png_len, &vp, &ip, &v, err) != 0);
    CHECK_MSG(strstr(err, "an image file") != NULL, "%s", err);
    free(png);
    vp = (glmv_video_params){.start = 100, .end = 200};
    CHECK(glmv_video_load(VID "mmcv_test.mp4", NULL, 0, &vp, &ip, &v, err) != 0);
    CHECK_MSG(strstr(err, "holds no frames") != NULL, "%s", err);
}

static void write_file(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(d, 1, n, f);
    fclose(f);
}

TEST(hostile_inputs) {
    glmv_image_params ip = video_params();
    glmv_video_params vp = {0};
    glmv_video v;
    char err[GLMV_ERR_SIZE], path[256];
    snprintf(path, sizeof path, "/tmp/glmv_test_video_%d.bin", (int)getpid());
    /* missing file */
    CHECK(glmv_video_load("/nonexistent/clip.mp4", NULL, 0, &vp, &ip, &v, err) != 0);
    CHECK(strstr(err, "clip.mp4") != NULL);
    /* zero bytes */
    write_file(path, "", 0);
    CHECK(glmv_video_load(path, NULL, 0, &vp, &ip, &v, err) != 0);
    CHECK(glmv_video_load(NULL, "", 0, &vp, &ip, &v, err) != 0);
    /* random bytes */
    unsigned char junk[4096];
    for (int i = 0; i < 4096; i++) junk[i] = (unsigned char)(i * 7919 + 13);
    CHECK(glmv_video_load(NULL, junk, sizeof junk, &vp, &ip, &v, err) != 0);
    /* audio only: a 0.1 s WAV file */
    unsigned char wav[44 + 1600] = {0};
    memcpy(wav, "RIFF", 4);
    uint32_t sz = 36 + 1600;
    memcpy(wav + 4, &sz, 4);
    memcpy(wav + 8, "WAVEfmt ", 8);
    uint32_t fmt_len = 16, rate = 8000, brate = 16000;
    uint16_t pcm = 1, ch = 1, align = 2, bits = 16;
    memcpy(wav + 16, &fmt_len, 4);
    memcpy(wav + 20, &pcm, 2);
    memcpy(wav + 22, &ch, 2);
    memcpy(wav + 24, &rate, 4);
    memcpy(wav + 28, &brate, 4);
    memcpy(wav + 32, &align, 2);
    memcpy(wav + 34, &bits, 2);
    memcpy(wav + 36, "data", 4);
    uint32_t dlen = 1600;
    memcpy(wav + 40, &dlen, 4);
    CHECK(glmv_video_load(NULL, wav, sizeof wav, &vp, &ip, &v, err) != 0);
    CHECK_MSG(strstr(err, "no video stream") != NULL, "%s", err);
    /* truncated mp4: the first 20 KB of a real clip */
    size_t len;
    char *data = glmv_read_file(VID "mmcv_test.mp4", &len, err);
    if (data) {
        for (size_t cut = 16; cut < len; cut = cut * 4) {
            int rc = glmv_video_load(NULL, data, cut, &vp, &ip, &v, err);
            if (rc == 0) glmv_video_free(&v); /* decodable prefix: fine, as long as no crash */
        }
        free(data);
    }
    /* a frame-size limit refuses before decoding */
    vp.max_decode_pixels = 1000;
    CHECK(glmv_video_load(VID "mmcv_test.mp4", NULL, 0, &vp, &ip, &v, err) != 0);
    CHECK(strstr(err, "exceed") != NULL);
    unlink(path);
}

TEST(other_clips_decode) {
    const char *clips[] = {"llamacpp_test-3.mp4", "videollava_sample_demo_1.mp4",
                           "videollava_sample_demo_3.mp4", "videollava_sample_demo_9.mp4"};
    glmv_image_params ip = video_params();
    ip.max_pixels = 28 * 28 * 2 * 64; /* keep it quick: few tokens per group */
    glmv_video_params vp = {0};
    for (int i = 0; i < 4; i++) {
        char path[256], err[GLMV_ERR_SIZE];
        snprintf(path, sizeof path, VID "%s", clips[i]);
        glmv_video v;
        int rc = glmv_video_load(path, NULL, 0, &vp, &ip, &v, err);
        CHECK_MSG(rc == 0, "%s: %s", clips[i], err);
        if (rc) continue;
        CHECK(v.n_frames % 2 == 0 && v.n_frames >= 2);
        CHECK(v.grid[0] == v.n_groups);
        for (int k = 1; k < v.n_groups; k++) CHECK(v.timestamps[k] >= v.timestamps[k - 1]);
        glmv_video_free(&v);
    }
}

/* Parity with transformers' Glm4vVideoProcessor on the same decoded frames
 * (tests/fixtures/video/hf_video.json, made by scripts/gen_video_fixtures.py). */
TEST(parity_with_hf) {
    char err[GLMV_ERR_SIZE];
    cJSON *root = test_read_json("tests/fixtures/video/hf_video.json");
    CHECK(root != NULL);
    if (!root) return;
    cJSON *clips = cJSON_GetObjectItem(root, "clips"), *c;
    glmv_tokenizer *tok = NULL;
    if (glmv_tokenizer_load(&tok, "../shared/assets/glm4-tokenizer", err)) printf("  no tokenizer: %s\n", err);
    glmv_image_params ip = video_params();
    cJSON_ArrayForEach(c, clips) {
        char path[256];
        snprintf(path, sizeof path, VID "%s.mp4", c->string);
        glmv_video_params vp = {0};
        glmv_video v;
        int rc = glmv_video_load(path, NULL, 0, &vp, &ip, &v, err);
        CHECK_MSG(rc == 0, "%s: %s", c->string, err);
        if (rc) continue;
        CHECK_EQ_INT(v.total_frames, cJSON_GetObjectItem(c, "total_frames")->valueint);
        CHECK_NEAR(v.video_fps, cJSON_GetObjectItem(c, "fps")->valuedouble, 1e-9);
        cJSON *fi = cJSON_GetObjectItem(c, "frame_indices");
        CHECK_EQ_INT(v.n_frames, cJSON_GetArraySize(fi));
        for (int i = 0; i < v.n_frames && i < cJSON_GetArraySize(fi); i++)
            CHECK_EQ_INT(v.frame_indices[i], cJSON_GetArrayItem(fi, i)->valueint);
        cJSON *ts = cJSON_GetObjectItem(c, "timestamps");
        for (int k = 0; k < v.n_groups && k < cJSON_GetArraySize(ts); k++)
            CHECK_EQ_INT(v.timestamps[k], cJSON_GetArrayItem(ts, k)->valueint);
        cJSON *grid = cJSON_GetObjectItem(c, "grid");
        for (int k = 0; k < 3; k++) CHECK_EQ_INT(v.grid[k], cJSON_GetArrayItem(grid, k)->valueint);
        /* the expanded prompt: count of <|image|> runs and their lengths */
        cJSON *runs = cJSON_GetObjectItem(c, "input_id_runs"), *r;
        int image_runs = 0;
        cJSON_ArrayForEach(r, runs) {
            if (cJSON_GetArrayItem(r, 0)->valueint == 151343) {
                image_runs++;
                CHECK_EQ_INT(cJSON_GetArrayItem(r, 1)->valueint, v.grid[1] * v.grid[2] / 4);
            }
        }
        CHECK_EQ_INT(image_runs, v.n_groups);
        /* the whole prompt, built as Glm4vProcessor does, tokenized with the real vocabulary */
        if (tok) {
            char *vp_text = glmv_video_prompt(&v, 2);
            const char *head = "<|begin_of_video|>", *tail = "<|end_of_video|>Describe this video.";
            size_t tl = strlen(head) + strlen(vp_text) + strlen(tail) + 1;
            char *text = malloc(tl);
            snprintf(text, tl, "%s%s%s", head, vp_text, tail);
            int32_t *ids = NULL;
            int64_t n = glmv_tokenize(tok, text, strlen(text), &ids, err);
            int64_t j = 0, mism = 0;
            cJSON_ArrayForEach(r, runs) {
                int id = cJSON_GetArrayItem(r, 0)->valueint, cnt = cJSON_GetArrayItem(r, 1)->valueint;
                for (int q = 0; q < cnt; q++, j++) mism += j >= n || ids[j] != id;
            }
            CHECK_MSG(mism == 0 && j == n, "%s: %lld of %lld prompt ids differ (%lld vs %lld)", c->string,
                      (long long)mism, (long long)j, (long long)n, (long long)j);
            free(ids);
            free(text);
            free(vp_text);
        }
        if (v.grid[0] != cJSON_GetArrayItem(grid, 0)->valueint ||
            v.grid[1] != cJSON_GetArrayItem(grid, 1)->valueint ||
            v.grid[2] != cJSON_GetArrayItem(grid, 2)->valueint) {
            glmv_video_free(&v);
            continue;
        }
        /* pixels: same decoded frames, so differences come from resampling only */
        int per = 3 * 2 * 14 * 14;
        double max_diff = 0;
        int64_t n_diff = 0, n_tot = 0;
        cJSON *rows = cJSON_GetObjectItem(c, "sample_rows"), *row;
        cJSON_ArrayForEach(row, rows) {
            int64_t ri = atoll(row->string);
            for (int j = 0; j < per; j++) {
                double d = fabs(VAL(v, ri * per + j) - cJSON_GetArrayItem(row, j)->valuedouble);
                if (d > max_diff) max_diff = d;
                n_diff += d > 1e-4;
                n_tot++;
            }
        }
        cJSON *sums = cJSON_GetObjectItem(c, "row_sums");
        double max_sum_diff = 0;
        int64_t nrows = (int64_t)v.grid[0] * v.grid[1] * v.grid[2];
        for (int64_t ri = 0; ri < nrows && ri < cJSON_GetArraySize(sums); ri++) {
            double s = 0;
            for (int j = 0; j < per; j++) s += VAL(v, ri * per + j);
            double d = fabs(s - cJSON_GetArrayItem(sums, (int)ri)->valuedouble);
            if (d > max_sum_diff) max_sum_diff = d;
        }
        printf("  %s: sampled values differing %lld/%lld, max |diff| %.4g, max row-sum diff %.4g\n",
               c->string, (long long)n_diff, (long long)n_tot, max_diff, max_sum_diff);
        /* one u8 step is 1/(255*std) < 0.0151 after normalisation */
        CHECK_MSG(max_diff < 0.0152, "%s: max |diff| %g is more than one pixel step", c->string, max_diff);
        CHECK_MSG(max_sum_diff < 0.05, "%s: a patch row's sum differs by %g", c->string, max_sum_diff);
        CHECK_MSG(n_diff * 100 <= n_tot, "%s: %lld of %lld values differ", c->string, (long long)n_diff,
                  (long long)n_tot);
        glmv_video_free(&v);
    }
    cJSON_Delete(root);
    glmv_tokenizer_free(tok);
}

/* Small clips in the containers and codecs Debian's FFmpeg decodes (made by
 * ffmpeg from testsrc2, 96x64, 10 fps, 2 s): each gives 20 frames sampled as
 * 0,5,10,15 (the variable-rate one has 15); the rotated one (display matrix
 * 90 degrees) comes out taller than wide. */
TEST(containers_and_codecs) {
    const char *clips[] = {"h264.mp4", "h264.mov", "hevc.mkv", "vp9.webm", "vp8.webm",
                           "av1.mkv", "mpeg4.avi", "vfr.mkv", "rotated90.mp4"};
    glmv_image_params ip = video_params();
    glmv_video_params vp = {.apply_rotation = 1};
    for (size_t i = 0; i < sizeof clips / sizeof *clips; i++) {
        char path[256], err[GLMV_ERR_SIZE];
        snprintf(path, sizeof path, "tests/fixtures/video/formats/%s", clips[i]);
        glmv_video v;
        int rc = glmv_video_load(path, NULL, 0, &vp, &ip, &v, err);
        CHECK_MSG(rc == 0, "%s: %s", clips[i], err);
        if (rc) continue;
        /* the variable-rate clip holds 15 frames (ffprobe -count_frames) */
        int want_total = strcmp(clips[i], "vfr.mkv") ? 20 : 15;
        CHECK_MSG(v.total_frames == want_total, "%s: %d frames", clips[i], v.total_frames);
        CHECK(v.n_frames % 2 == 0 && v.n_frames >= 2);
        if (strcmp(clips[i], "vfr.mkv") != 0) {
            CHECK_EQ_INT(v.n_frames, 4);
            for (int k = 0; k < v.n_frames && k < 4; k++) CHECK_EQ_INT(v.frame_indices[k], 5 * k);
        }
        if (!strcmp(clips[i], "rotated90.mp4")) CHECK_MSG(v.grid[1] > v.grid[2], "rotated grid %dx%d", v.grid[1], v.grid[2]);
        else CHECK_MSG(v.grid[1] < v.grid[2], "%s: grid %dx%d", clips[i], v.grid[1], v.grid[2]);
        /* the frames are not blank */
        double s = 0;
        int64_t nv = (int64_t)v.grid[0] * v.grid[1] * v.grid[2] * 1176;
        for (int64_t q = 0; q < nv; q++) s += fabs(VAL(v, q));
        CHECK_MSG(s / nv > 0.1, "%s: mean |value| %g", clips[i], s / nv);
        glmv_video_free(&v);
    }
}

/* A file cut short says so: half of each clip (an MP4 with its index first, an AVI, Matroska
 * and WebM, whose frames are counted from the packets) is refused, not answered from the
 * part that decodes; the whole clip and one cut by 3% (a frame or two) still load. */
TEST(cut_short_is_refused) {
    const char *clips[] = {VID "videollava_sample_demo_1.mp4", "tests/fixtures/video/formats/mpeg4.avi",
                           "tests/fixtures/video/formats/hevc.mkv", "tests/fixtures/video/formats/vp9.webm",
                           "tests/fixtures/video/formats/vfr.mkv"};
    glmv_image_params ip = video_params();
    glmv_video_params vp = {0};
    for (size_t i = 0; i < sizeof clips / sizeof *clips; i++) {
        char err[GLMV_ERR_SIZE];
        size_t len;
        char *data = glmv_read_file(clips[i], &len, err);
        if (!data) {
            test_skip("clip missing");
            continue;
        }
        glmv_video v;
        int rc = glmv_video_load(NULL, data, len / 2, &vp, &ip, &v, err);
        CHECK_MSG(rc != 0 && strstr(err, "cut short"), "%s, half: rc %d '%s'", clips[i], rc, rc ? err : "");
        if (!rc) glmv_video_free(&v);
        rc = glmv_video_load(NULL, data, len - len * 3 / 100, &vp, &ip, &v, err);
        CHECK_MSG(rc == 0, "%s, 97%%: %s", clips[i], err);
        if (!rc) glmv_video_free(&v);
        free(data);
    }
}

/* A fuzzer's AVI whose index sends every seek back to the start: the loader used to seek
 * again after each frame, forever. It must come back (frames or an error) well inside the
 * alarm; the alarm only catches a hang, it times nothing. */
static void hung(int sig) {
    (void)sig;
    static const char msg[] = "not ok seek_loop_returns: glmv_video_load did not return in 60 s\n"
                              "RESULT video passed=0 failed=1 skipped=0\n";
    if (write(1, msg, sizeof msg - 1)) _exit(1);
    _exit(1);
}

TEST(seek_loop_returns) {
    glmv_image_params ip = video_params();
    glmv_video_params vp = {.max_decode_pixels = 1 << 20, .max_frames = 8};
    glmv_video v;
    char err[GLMV_ERR_SIZE];
    signal(SIGALRM, hung);
    alarm(60);
    int rc = glmv_video_load("tests/fixtures/video/fuzz/seek_loop.avi", NULL, 0, &vp, &ip, &v, err);
    alarm(0);
    if (!rc) {
        CHECK(v.n_frames >= 2 && v.n_frames <= 8);
        glmv_video_free(&v);
    }
}

/* Another fuzzer's AVI: 96x64 in its header, then a frame of 264x6176. The pixel limit holds
 * for every frame, not only for the size the header states. */
TEST(frame_size_change_is_checked) {
    glmv_image_params ip = video_params();
    glmv_video_params vp = {.max_decode_pixels = 1 << 20, .max_frames = 8};
    glmv_video v;
    char err[GLMV_ERR_SIZE] = "";
    int rc = glmv_video_load("tests/fixtures/video/fuzz/size_change.avi", NULL, 0, &vp, &ip, &v, err);
    CHECK_MSG(rc != 0 && strstr(err, "264x6176") && strstr(err, "exceeds the limit"), "rc %d: %s", rc, err);
    if (!rc) glmv_video_free(&v);
}

int main(void) {
    RUN(sample_short_clip);
    RUN(sample_dedupe_and_even);
    RUN(sample_long_video_spread);
    RUN(sample_bad);
    RUN(decode_mmcv_clip);
    RUN(decode_from_memory_matches_file);
    RUN(options_range_fps_max_frames);
    RUN(hostile_inputs);
    RUN(other_clips_decode);
    RUN(parity_with_hf);
    RUN(containers_and_codecs);
    RUN(cut_short_is_refused);
    RUN(seek_loop_returns);
    RUN(frame_size_change_is_checked);
    return test_summary("video");
}
