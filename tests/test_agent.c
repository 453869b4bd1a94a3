/* test_agent.c -- the GUI agent's library side (src/agent*.c): coordinates
 * mapped to pixels against hand-computed numbers, the drawing checked pixel
 * by pixel against the decoded screenshot (changed inside the box and along a
 * drag's arrow, untouched far from them), every prefix of every recorded
 * answer parsed without a crash (a cut answer is refused, never half-read),
 * and the prompt arguments each mode refuses. The CLI, the JSON and the
 * prompts' text are tests/agent_test.sh's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "agent.h"
#include "glmv.h"
#include "image.h"
#include "test.h"

#define SHOT "../shared/assets/images/glmv_gui_agent_allrecipes.jpg"
#define ANS "tests/fixtures/agent/answers/"
#define BAD "tests/fixtures/agent/bad/"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

static int parse_file(agent_mode mode, const char *path, agent_action *a) {
    char err[256];
    char *raw = slurp(path);
    if (!raw) {
        printf("  cannot read %s\n", path);
        return -1;
    }
    int rc = agent_parse(mode, raw, a, err, sizeof err);
    if (rc) printf("  %s: %s\n", path, err);
    free(raw);
    return rc;
}

TEST(map_mobile_box) {
    agent_action a;
    CHECK(parse_file(AGENT_MOBILE, ANS "mobile_click.txt", &a) == 0);
    CHECK_EQ_STR(a.action, "click");
    CHECK(a.has_box && a.box[0] == 100 && a.box[1] == 200 && a.box[2] == 300 && a.box[3] == 400);
    agent_map(&a, 2048, 1191);
    /* v * size / 1000, rounded: 100*2048/1000 = 204.8, 200*1191/1000 = 238.2, ... */
    CHECK_EQ_INT(a.px_box[0], 205);
    CHECK_EQ_INT(a.px_box[1], 238);
    CHECK_EQ_INT(a.px_box[2], 614);
    CHECK_EQ_INT(a.px_box[3], 476);
    CHECK_EQ_INT(a.px_point[0], 410); /* centre 200 -> 409.6 */
    CHECK_EQ_INT(a.px_point[1], 357); /* centre 300 -> 357.3 */
    agent_map(&a, 1000, 500);
    CHECK(a.px_box[0] == 100 && a.px_box[1] == 100 && a.px_box[2] == 300 && a.px_box[3] == 200);
    agent_action_free(&a);
}

TEST(map_pc_points) {
    agent_action a;
    CHECK(parse_file(AGENT_PC, ANS "pc_left_drag.txt", &a) == 0);
    CHECK(a.has_point && a.has_end && !a.has_box);
    agent_map(&a, 1920, 1080);
    CHECK(a.px_point[0] == 192 && a.px_point[1] == 540 && a.px_end[0] == 1728 && a.px_end[1] == 540);
    agent_action_free(&a);
    /* 0-1000: 1000 is the far edge, kept inside the image */
    CHECK(parse_file(AGENT_PC, ANS "pc_middle_click.txt", &a) == 0);
    agent_map(&a, 1920, 1080);
    CHECK(a.px_point[0] == 1919 && a.px_point[1] == 1079);
    agent_action_free(&a);
}

/* fraction of pixels of [x0,x1) x [y0,y1) that differ between two images */
static double differ(const glmv_rgb *a, const glmv_rgb *b, int x0, int y0, int x1, int y1) {
    long n = 0, d = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++, n++) {
            const uint8_t *p = a->rgb + ((size_t)y * a->w + x) * 3, *q = b->rgb + ((size_t)y * b->w + x) * 3;
            d += p[0] != q[0] || p[1] != q[1] || p[2] != q[2];
        }
    return n ? (double)d / n : 0;
}

TEST(draw_box_and_drag) {
    char err[GLMV_ERR_SIZE], png[64];
    glmv_rgb shot = {0}, out = {0};
    if (glmv_image_decode_file(SHOT, (int64_t)1 << 27, &shot, err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    snprintf(png, sizeof png, "/tmp/glmv_test_agent_%d.png", (int)getpid());
    agent_action a;
    CHECK(parse_file(AGENT_MOBILE, ANS "mobile_click.txt", &a) == 0);
    CHECK(agent_draw(&a, SHOT, png, err, sizeof err) == 0);
    if (glmv_image_decode_file(png, (int64_t)1 << 27, &out, err) == 0) {
        CHECK_EQ_INT(out.w, shot.w);
        CHECK_EQ_INT(out.h, shot.h);
        agent_map(&a, shot.w, shot.h);
        /* the box is outlined and tinted: (nearly) every pixel inside changes */
        double in = differ(&shot, &out, a.px_box[0], a.px_box[1], a.px_box[2], a.px_box[3]);
        CHECK_MSG(in > 0.9, "only %.3f of the box changed", in);
        /* the right third of the screen is far from the box and its label */
        double far = differ(&shot, &out, 2 * shot.w / 3, 0, shot.w, shot.h);
        CHECK_MSG(far == 0, "%.4f of the untouched region changed", far);
    } else {
        CHECK_MSG(0, "%s", err);
    }
    glmv_rgb_free(&out);
    agent_action_free(&a);

    CHECK(parse_file(AGENT_PC, ANS "pc_left_drag.txt", &a) == 0);
    CHECK(agent_draw(&a, SHOT, png, err, sizeof err) == 0);
    if (glmv_image_decode_file(png, (int64_t)1 << 27, &out, err) == 0) {
        agent_map(&a, shot.w, shot.h);
        /* the arrow from start to end crosses the middle of the screen at y = 596 */
        int y = a.px_point[1], xm = (a.px_point[0] + a.px_end[0]) / 2;
        CHECK_MSG(differ(&shot, &out, xm - 20, y - 1, xm + 20, y + 2) > 0.9, "no arrow at (%d,%d)", xm, y);
        CHECK(differ(&shot, &out, 0, 0, shot.w, 100) == 0); /* the top band is far from it */
    } else {
        CHECK_MSG(0, "%s", err);
    }
    glmv_rgb_free(&out);
    agent_action_free(&a);

    /* a screenshot that is not an image, and a PNG that cannot be written */
    CHECK(parse_file(AGENT_PC, ANS "pc_key.txt", &a) == 0);
    CHECK(agent_draw(&a, ANS "pc_key.txt", png, err, sizeof err) != 0);
    CHECK(agent_draw(&a, SHOT, "/nonexistent-dir/x.png", err, sizeof err) != 0);
    agent_action_free(&a);
    unlink(png);
    glmv_rgb_free(&shot);
}

/* pc's earlier screens: half the size, the same picture (mean colour within a level) */
TEST(half_png) {
    char err[GLMV_ERR_SIZE];
    glmv_rgb shot = {0}, half = {0};
    void *png = NULL;
    size_t size = 0;
    CHECK(glmv_image_decode_file(SHOT, (int64_t)1 << 27, &shot, err) == 0);
    CHECK(agent_half_png(SHOT, &png, &size, err, sizeof err) == 0);
    CHECK(size > 8 && png && !memcmp(png, "\x89PNG", 4));
    if (png && glmv_image_decode_mem(png, size, (int64_t)1 << 27, &half, err) == 0) {
        CHECK_EQ_INT(half.w, 1024);
        CHECK_EQ_INT(half.h, 595);
        for (int c = 0; c < 3; c++) {
            double a = 0, b = 0;
            for (long i = 0; i < (long)shot.w * shot.h; i++) a += shot.rgb[3 * i + c];
            for (long i = 0; i < (long)half.w * half.h; i++) b += half.rgb[3 * i + c];
            a /= (double)shot.w * shot.h;
            b /= (double)half.w * half.h;
            CHECK_MSG(fabs(a - b) < 1.0, "channel %d: mean %.2f, at half size %.2f", c, a, b);
        }
    } else {
        CHECK_MSG(0, "the half-size PNG does not decode: %s", err);
    }
    free(png);
    glmv_rgb_free(&half);
    glmv_rgb_free(&shot);
    CHECK(agent_half_png(ANS "pc_key.txt", &png, &size, err, sizeof err) != 0 && png == NULL);
}

/* Every prefix of every answer, good and bad: parsed or refused, never a crash
 * or a read past the text (run under ASan by make asan-test). A cut answer
 * whose action is complete may parse; one cut inside its action may not. */
static void prefixes(agent_mode mode, const char *path, int *n_ok) {
    char *raw = slurp(path);
    if (!raw) return;
    size_t n = strlen(raw);
    char err[256];
    for (size_t k = 0; k <= n; k++) {
        char *cut = malloc(k + 1);
        memcpy(cut, raw, k);
        cut[k] = 0;
        agent_action a;
        if (agent_parse(mode, cut, &a, err, sizeof err) == 0) {
            (*n_ok)++;
            agent_map(&a, 640, 480);
            cJSON_Delete(agent_action_json(&a, 640, 480, cut));
            agent_action_free(&a);
        } else {
            CHECK(err[0] != 0);
        }
        free(cut);
    }
    free(raw);
}

TEST(every_prefix) {
    static const char *const files[][2] = {
        {"mobile", ANS "mobile_input_text.txt"}, {"mobile", ANS "mobile_click.txt"},
        {"mobile", ANS "mobile_answer.txt"},     {"mobile", BAD "mobile_unclosed.txt"},
        {"pc", ANS "pc_scroll.txt"},             {"pc", ANS "pc_right_click.txt"},
        {"pc", BAD "pc_two_calls.txt"},          {"web", ANS "web_Type.txt"},
        {"web", ANS "web_ANSWER.txt"},           {"web", ANS "web_Scroll.txt"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int ok = 0;
        prefixes((agent_mode)agent_mode_parse(files[i][0]), files[i][1], &ok);
        /* the whole good answer parses; a prefix that stops before its action's end does not */
        char *raw = slurp(files[i][1]);
        CHECK_MSG(raw != NULL, "%s", files[i][1]);
        if (raw && strstr(files[i][1], "/answers/")) CHECK_MSG(ok >= 1, "%s never parsed", files[i][1]);
        if (raw) CHECK_MSG(ok < (int)strlen(raw) / 2, "%s: %d prefixes parsed", files[i][1], ok);
        free(raw);
    }
}

TEST(prompt_arguments) {
    char err[256];
    const char *steps[] = {"Memory: None\nReason: r\nAction: {\"action_type\": \"wait\"}"};
    agent_prompt_args a = {.mode = AGENT_MOBILE, .task = "Open Settings", .history = steps, .n_history = 1};
    char *p = agent_prompt(&a, err, sizeof err);
    CHECK(p && strstr(p, "The current user goal/request is: Open Settings\n"));
    CHECK(p && strstr(p, "Here is a history of what you have done so far:\nStep 0:\nMemory: None\n"));
    CHECK(p && strstr(p, "-- supported app_names: Google Chrome,Google Chat,Settings,"));
    CHECK(p && !strstr(p, "#HISTORT_STEPS#") && !strstr(p, "#COMMAND#") && !strstr(p, "#SUPPORTED_APPS#"));
    free(p);
    a.apps = "Clock,Files";
    p = agent_prompt(&a, err, sizeof err);
    CHECK(p && strstr(p, "-- supported app_names: Clock,Files\n"));
    free(p);
    a.memory = "[]"; /* mobile's prompt has no memory part */
    CHECK(agent_prompt(&a, err, sizeof err) == NULL && err[0]);
    agent_prompt_args w = {.mode = AGENT_WEB, .task = "Find a recipe"};
    CHECK(agent_prompt(&w, err, sizeof err) == NULL); /* web needs the site */
    w.url = "https://example.com/";
    p = agent_prompt(&w, err, sizeof err);
    CHECK(p && strstr(p, "final mission: \"Find a recipe\", Please interact with https://example.com/ and"));
    CHECK(p && strstr(p, "Memory:{}\n") && !strstr(p, "{web_text}") && !strstr(p, "#PREVIOUS_ACTIONS#"));
    free(p);
    agent_prompt_args c = {.mode = AGENT_PC, .task = "Do it", .url = "https://example.com/"};
    CHECK(agent_prompt(&c, err, sizeof err) == NULL); /* a URL is web's */
    c.url = NULL;
    p = agent_prompt(&c, err, sizeof err);
    /* no history: only the memory part follows the task */
    CHECK(p && strstr(p, "solve the following task:\nDo it\nMemory:\n[]") && !strstr(p, "History actions"));
    free(p);
    /* a saved model output as a step: its answer only, without the box tokens */
    const char *raw_step[] = {"<think>The box.</think><answer>Click it.\n"
                              "left_click(start_box='<|begin_of_box|>[1,2]<|end_of_box|>')\n</answer>"};
    c.history = raw_step;
    c.n_history = 1;
    p = agent_prompt(&c, err, sizeof err);
    CHECK(p && strstr(p, "\nHistory actions:\nstep 1: Click it.\nleft_click(start_box='[1,2]')\nMemory:\n[]"));
    free(p);
    c.task = "";
    CHECK(agent_prompt(&c, err, sizeof err) == NULL);
}

int main(void) {
    RUN(map_mobile_box);
    RUN(map_pc_points);
    RUN(draw_box_and_drag);
    RUN(half_png);
    RUN(every_prefix);
    RUN(prompt_arguments);
    return test_summary("agent");
}
