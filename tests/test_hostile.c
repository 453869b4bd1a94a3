/* test_hostile.c -- what a library caller can hand glmv_generate by mistake
 * (NULL text, an unknown part kind, a media part with nothing in it, NaN or
 * negative sampling settings, NULL stop strings, video options out of range)
 * must be refused with a one-line error before any work, never crash or
 * quietly sample some other way. Runs on the demo model (models/demo). The
 * command-line and server sides of the same sweep are in tests/cmd_test.sh
 * and tests/server/http.test.mjs.
 */
#include <math.h>

#include "glmv.h"
#include "test.h"

static glmv_model *model;
static glmv_session *sess;
static char err[GLMV_ERR_SIZE];

/* generate with one user message of the given parts; returns rc, err set */
static int gen(const glmv_part *parts, int n_parts, const glmv_sampling *sp) {
    glmv_message msg = {"user", parts, n_parts, NULL};
    glmv_result r;
    err[0] = 0;
    int rc = glmv_generate(sess, &msg, 1, sp, NULL, NULL, &r, err);
    if (rc == 0) glmv_result_free(&r);
    return rc;
}

static void expect_refused(const char *what, const glmv_part *parts, int n, const glmv_sampling *sp,
                           const char *word) {
    int rc = gen(parts, n, sp);
    CHECK_MSG(rc != 0, "%s: accepted", what);
    CHECK_MSG(err[0] && !strchr(err, '\n') && strstr(err, word), "%s: message \"%s\" lacks \"%s\"",
              what, err, word);
}

static glmv_sampling base(void) {
    glmv_sampling sp;
    glmv_sampling_default(model, &sp);
    sp.max_new_tokens = 2;
    sp.do_sample = 0;
    return sp;
}

TEST(bad_messages) {
    glmv_sampling sp = base();
    glmv_result r;
    err[0] = 0;
    CHECK(glmv_generate(sess, NULL, 1, &sp, NULL, NULL, &r, err) != 0 && strstr(err, "messages"));
    glmv_part p = {.kind = GLMV_PART_TEXT, .text = NULL};
    expect_refused("NULL text", &p, 1, &sp, "text is NULL");
    p = (glmv_part){.kind = (glmv_part_kind)42, .text = "x"};
    expect_refused("unknown kind", &p, 1, &sp, "unknown kind 42");
    p = (glmv_part){.kind = GLMV_PART_IMAGE};
    expect_refused("image without path or data", &p, 1, &sp, "no path and no data");
    glmv_message bad = {"user", NULL, 3, NULL};
    err[0] = 0;
    CHECK(glmv_generate(sess, &bad, 1, &sp, NULL, NULL, &r, err) != 0 && strstr(err, "n_parts 3"));
    /* the well-formed request still works after all of them */
    p = (glmv_part){.kind = GLMV_PART_TEXT, .text = "How many shapes?"};
    CHECK_MSG(gen(&p, 1, &sp) == 0, "%s", err);
}

TEST(bad_video_options) {
    glmv_sampling sp = base();
    const glmv_part good = {.kind = GLMV_PART_VIDEO, .path = "tests/fixtures/video/formats/h264.mp4"};
    glmv_part p = good;
    p.video_fps = -1;
    expect_refused("negative fps", &p, 1, &sp, "fps -1");
    p = good;
    p.video_fps = 1e300; /* was "video too long: 2 s" */
    expect_refused("huge fps", &p, 1, &sp, "out of range");
    p = good;
    p.video_start = NAN;
    expect_refused("NaN start", &p, 1, &sp, "start");
    p = good;
    p.video_max_frames = -5;
    expect_refused("negative max_frames", &p, 1, &sp, "max_frames -5");
}

TEST(bad_sampling) {
    glmv_part p = {.kind = GLMV_PART_TEXT, .text = "hi"};
    glmv_sampling sp = base();
    sp.do_sample = 1;
    sp.temperature = NAN;
    expect_refused("NaN temperature", &p, 1, &sp, "temperature");
    sp = base();
    sp.temperature = -1;
    expect_refused("negative temperature", &p, 1, &sp, "temperature");
    sp = base();
    sp.top_p = 5;
    expect_refused("top_p 5", &p, 1, &sp, "top_p");
    sp = base();
    sp.top_k = -7;
    expect_refused("negative top_k", &p, 1, &sp, "top_k -7");
    sp = base();
    sp.repetition_penalty = 0;
    expect_refused("repetition_penalty 0", &p, 1, &sp, "repetition_penalty");
    sp = base();
    sp.max_new_tokens = -5;
    expect_refused("negative max_new_tokens", &p, 1, &sp, "max_new_tokens -5");
    sp = base();
    sp.n_stop = 2;
    sp.stop = NULL;
    expect_refused("NULL stop list", &p, 1, &sp, "n_stop 2");
    const char *st[] = {"ok", ""};
    sp.stop = st;
    expect_refused("empty stop string", &p, 1, &sp, "stop string 1");
}

int main(void) {
    glmv_model_params mp;
    glmv_model_params_default(&mp);
    mp.n_threads = 1;
    if (glmv_model_load(&model, "models/demo", &mp, err) || glmv_session_new(&sess, model, 512, err)) {
        printf("cannot load models/demo: %s\n", err);
        printf("RESULT hostile passed=0 failed=1 skipped=0\n");
        return 1;
    }
    RUN(bad_messages);
    RUN(bad_video_options);
    RUN(bad_sampling);
    glmv_session_free(sess);
    glmv_model_free(model);
    return test_summary("hostile");
}
