/* test_chat.c -- the chat template against HF's Jinja renders
 * (tests/fixtures/tokenizer/chat_renders.json, made on the GPU machine by
 * scripts/gen_tokenizer_fixtures.py), template loading and detection, and the
 * <think>/<answer> splitter: tags as single ids, tags split over text pieces,
 * missing and unbalanced tags, multi-byte characters cut between ids. */
#include <cJSON.h>

#include "base.h"
#include "chat.h"
#include "test.h"
#include "util_json.h"
#include "tokenizer_impl.h"

#define GLM4_DIR "../shared/assets/glm4-tokenizer"
#define TPL_DIR "../shared/assets/glm41v"
#define FIX "tests/fixtures/tokenizer"

static glmv_tokenizer *tok;


/* ------------------------------------------------------------------------ */
/* Rendering                                                                */
/* ------------------------------------------------------------------------ */

TEST(template_load) {
    char err[GLMV_ERR_SIZE];
    glmv_chat_template *t;
    CHECK(glmv_chat_template_load(&t, TPL_DIR, err) == 0);
    CHECK(glmv_chat_template_is_official(t));
    glmv_chat_template_free(t);
    /* the template inside tokenizer_config.json, and an unknown one */
    CHECK(glmv_chat_template_load(&t, FIX "/tpl_config", err) == 0);
    CHECK(glmv_chat_template_is_official(t));
    glmv_chat_template_free(t);
    CHECK(glmv_chat_template_load(&t, FIX "/tpl_unknown", err) == 0);
    CHECK(t && !glmv_chat_template_is_official(t));
    glmv_message m = {"user", &(glmv_part){.kind = GLMV_PART_TEXT, .text = "hi"}, 1, NULL};
    char *s = glmv_chat_render(t, &m, 1, 1, err);
    CHECK_EQ_STR(s, "[gMASK]<sop><|user|>\nhi<|assistant|>\n");
    free(s);
    glmv_chat_template_free(t);
    /* no template at all: still served */
    CHECK(glmv_chat_template_load(&t, "/nonexistent", err) == 0 && t);
    glmv_chat_template_free(t);
}

TEST(render_by_hand) {
    char err[GLMV_ERR_SIZE];
    glmv_chat_template *t;
    CHECK(glmv_chat_template_load(&t, TPL_DIR, err) == 0);
    glmv_part img = {.kind = GLMV_PART_IMAGE, .path = "x.png"};
    glmv_part txt = {.kind = GLMV_PART_TEXT, .text = "What kind of dog is this?"};
    glmv_part parts[2] = {img, txt};
    glmv_message m = {"user", parts, 2, NULL};
    char *s = glmv_chat_render(t, &m, 1, 1, err);
    /* GLM4V.md 8.1 */
    CHECK_EQ_STR(s, "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>"
                    "What kind of dog is this?<|assistant|>\n");
    free(s);
    s = glmv_chat_render(t, NULL, 0, 0, err);
    CHECK_EQ_STR(s, "[gMASK]<sop>");
    free(s);
    glmv_message bad = {"user", NULL, 2, NULL};
    s = glmv_chat_render(t, &bad, 1, 1, err);
    CHECK(s == NULL && strstr(err, "message 0"));
    glmv_chat_template_free(t);
}

static glmv_part_kind kind_of(const char *s) {
    return !strcmp(s, "image") ? GLMV_PART_IMAGE : !strcmp(s, "video") ? GLMV_PART_VIDEO : GLMV_PART_TEXT;
}

/* Each case: messages in HF form (content a string or a list of
 * {"type": ...}), add_generation_prompt, HF's render and its ids. */
TEST(render_matches_hf) {
    cJSON *j = test_read_json(FIX "/chat_renders.json");
    CHECK_MSG(j != NULL, "run scripts/gen_tokenizer_fixtures.py");
    if (!j) return;
    char err[GLMV_ERR_SIZE];
    glmv_chat_template *t;
    CHECK(glmv_chat_template_load(&t, TPL_DIR, err) == 0);
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, j) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(c, "messages"), *m;
        int nm = cJSON_GetArraySize(msgs), i = 0;
        glmv_message *mv = calloc((size_t)nm + 1, sizeof *mv);
        glmv_part *pv = calloc(64 * ((size_t)nm + 1), sizeof *pv);
        int np = 0;
        cJSON_ArrayForEach(m, msgs) {
            mv[i].role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
            const cJSON *meta = cJSON_GetObjectItemCaseSensitive(m, "metadata");
            mv[i].metadata = cJSON_IsString(meta) ? meta->valuestring : NULL;
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content"), *it;
            mv[i].parts = pv + np;
            if (cJSON_IsString(content)) {
                pv[np++] = (glmv_part){.kind = GLMV_PART_TEXT, .text = content->valuestring};
                mv[i].n_parts = 1;
            } else {
                cJSON_ArrayForEach(it, content) {
                    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(it, "type");
                    const cJSON *tx = cJSON_GetObjectItemCaseSensitive(it, "text");
                    pv[np++] = (glmv_part){.kind = kind_of(ty->valuestring),
                                           .text = cJSON_IsString(tx) ? tx->valuestring : NULL};
                    mv[i].n_parts++;
                }
            }
            i++;
        }
        int gen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"));
        char *s = glmv_chat_render(t, mv, nm, gen, err);
        const char *want = cJSON_GetObjectItemCaseSensitive(c, "render")->valuestring;
        CHECK_MSG(s && !strcmp(s, want), "case %d:\n    got  %s\n    want %s", n, s ? s : "(null)",
                  want);
        /* and the ids of the render, as HF's tokenizer gave them */
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(c, "ids");
        if (tok && s && ids) {
            int32_t *v;
            int64_t k = glmv_tokenize(tok, s, strlen(s), &v, err), q = 0;
            int ok = k == cJSON_GetArraySize(ids);
            const cJSON *x;
            cJSON_ArrayForEach(x, ids) ok = ok && q < k && v[q++] == (int32_t)x->valuedouble;
            CHECK_MSG(ok, "case %d ids", n);
            free(v);
        }
        free(s);
        free(mv);
        free(pv);
        n++;
    }
    printf("  %d renders compared\n", n);
    CHECK(n >= 10);
    glmv_chat_template_free(t);
    cJSON_Delete(j);
}

/* ------------------------------------------------------------------------ */
/* Splitter                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct {
    char reasoning[4096], content[4096];
    size_t nr, nc;
    int calls;
    int empty_calls;
} sink;

static void on_text(void *user, glmv_text_kind kind, const char *text, size_t len) {
    sink *k = user;
    k->calls++;
    if (!len) k->empty_calls++;
    char *dst = kind == GLMV_TEXT_REASONING ? k->reasoning : k->content;
    size_t *n = kind == GLMV_TEXT_REASONING ? &k->nr : &k->nc;
    if (*n + len < 4096) {
        memcpy(dst + *n, text, len);
        *n += len;
        dst[*n] = 0;
    }
}

/* Encode `text` with the real tokenizer and feed the ids one by one. */
static void split_ids(const int32_t *ids, int64_t n, sink *k) {
    memset(k, 0, sizeof *k);
    glmv_splitter *s = glmv_splitter_new(tok);
    for (int64_t i = 0; i < n; i++) glmv_splitter_push(s, ids[i], on_text, k);
    glmv_splitter_finish(s, on_text, k);
    glmv_splitter_free(s);
}

static void split_text(const char *text, sink *k) {
    char err[GLMV_ERR_SIZE];
    int32_t *ids;
    int64_t n = glmv_tokenize(tok, text, strlen(text), &ids, err);
    split_ids(ids, n, k);
    free(ids);
}

/* The same text as byte tokens only: every tag arrives cut in pieces. */
static void split_bytes(const char *text, sink *k) {
    size_t n = strlen(text);
    int32_t *ids = malloc(sizeof(int32_t) * (n + 1));
    for (size_t i = 0; i < n; i++) ids[i] = tok->byte_id[(unsigned char)text[i]];
    split_ids(ids, (int64_t)n, k);
    free(ids);
}

#define EXPECT_SPLIT(text, r, c)                                                       \
    do {                                                                               \
        sink k_;                                                                       \
        split_text(text, &k_);                                                         \
        CHECK_MSG(!strcmp(k_.reasoning, r) && !strcmp(k_.content, c),                  \
                  "ids: [%s] -> reasoning '%s' content '%s'", text, k_.reasoning, k_.content); \
        CHECK(k_.empty_calls == 0);                                                    \
        split_bytes(text, &k_);                                                        \
        CHECK_MSG(!strcmp(k_.reasoning, r) && !strcmp(k_.content, c),                  \
                  "bytes: [%s] -> reasoning '%s' content '%s'", text, k_.reasoning, k_.content); \
    } while (0)

TEST(splitter) {
    if (!tok) return test_skip("no tokenizer");
    /* the usual output */
    EXPECT_SPLIT("<think>Got it, a cat.</think><answer>A cat.</answer>", "Got it, a cat.", "A cat.");
    EXPECT_SPLIT("<think>\nhmm\n</think>\n<answer>\nYes</answer>", "\nhmm\n", "\nYes");
    /* </think> without <answer>: the rest is the answer, leading whitespace dropped */
    EXPECT_SPLIT("<think>r</think>\n\nThe answer is 4.", "r", "The answer is 4.");
    /* no tags at all: content */
    EXPECT_SPLIT("just text", "", "just text");
    EXPECT_SPLIT("  \n just text", "", "just text");
    /* no <think> but </think>: what came before was already content */
    EXPECT_SPLIT("abc</think>def", "", "abcdef");
    /* unterminated thinking */
    EXPECT_SPLIT("<think>still thinking", "still thinking", "");
    /* <answer> without </think> ends the thinking */
    EXPECT_SPLIT("<think>r<answer>a</answer>", "r", "a");
    /* stray and repeated tags are dropped, never shown */
    EXPECT_SPLIT("<think>a<think>b</think><answer>c</think>d<answer>e</answer>", "ab", "cde");
    /* text after </answer> is content */
    EXPECT_SPLIT("<think>x</think><answer>y</answer>z", "x", "yz");
    /* things that look like tags but are not */
    EXPECT_SPLIT("<think>a < b and <thinking> <th</think><answer>x<y</answer>", "a < b and <thinking> <th",
                 "x<y");
    EXPECT_SPLIT("<think>r</think><answer>ends with <", "r", "ends with <");
    EXPECT_SPLIT("<think>r</think><answer>ends with </ans", "r", "ends with </ans");
    /* multi-byte characters */
    EXPECT_SPLIT("<think>你好👋</think><answer>😶‍🌫️ é</answer>", "你好👋", "😶‍🌫️ é");
}

TEST(splitter_ids_and_state) {
    if (!tok) return test_skip("no tokenizer");
    int32_t think = glmv_token_id(tok, "<think>"), end = glmv_token_id(tok, "</think>");
    int32_t ans = glmv_token_id(tok, "<answer>"), eans = glmv_token_id(tok, "</answer>");
    CHECK(think >= 0 && end >= 0 && ans >= 0 && eans >= 0);
    sink k;
    memset(&k, 0, sizeof k);
    glmv_splitter *s = glmv_splitter_new(tok);
    CHECK(glmv_splitter_state(s) == GLMV_TEXT_CONTENT);
    glmv_splitter_push(s, think, on_text, &k);
    CHECK(glmv_splitter_state(s) == GLMV_TEXT_REASONING);
    CHECK(k.calls == 0);
    char err[GLMV_ERR_SIZE];
    int32_t *ids;
    int64_t n = glmv_tokenize(tok, "ok", 2, &ids, err);
    for (int64_t i = 0; i < n; i++) glmv_splitter_push(s, ids[i], on_text, &k);
    free(ids);
    /* a text "<" then the </think> id: the "<" is text, shown as reasoning */
    n = glmv_tokenize(tok, "<", 1, &ids, err);
    glmv_splitter_push(s, ids[0], on_text, &k);
    free(ids);
    glmv_splitter_push(s, end, on_text, &k);
    CHECK(glmv_splitter_state(s) == GLMV_TEXT_CONTENT);
    glmv_splitter_push(s, ans, on_text, &k);
    /* a special non-tag id (eos) is invisible */
    glmv_splitter_push(s, glmv_token_id(tok, "<|endoftext|>"), on_text, &k);
    glmv_splitter_push(s, eans, on_text, &k);
    glmv_splitter_finish(s, on_text, &k);
    glmv_splitter_free(s);
    CHECK_EQ_STR(k.reasoning, "ok<");
    CHECK_EQ_STR(k.content, "");
    CHECK(k.empty_calls == 0);
}

int main(void) {
    char err[GLMV_ERR_SIZE];
    if (glmv_tokenizer_load(&tok, GLM4_DIR, err)) printf("  %s\n", err);
    RUN(template_load);
    RUN(render_by_hand);
    RUN(render_matches_hf);
    RUN(splitter);
    RUN(splitter_ids_and_state);
    glmv_tokenizer_free(tok);
    return test_summary("chat");
}
