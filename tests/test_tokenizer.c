/* test_tokenizer.c -- the GLM-4 tokenizer against Hugging Face: the golden
 * vectors of ../shared/assets/glm4-tokenizer/test_vectors.json, a corpus of
 * strings whose ids HF produced (tests/fixtures/tokenizer/corpus.json, made by
 * scripts/gen_tokenizer_fixtures.py), a 1 MB text built from that corpus,
 * invalid UTF-8, small tokenizers built with HF tokenizers (other
 * pre-tokenizers, merges as strings or pairs), decoding and streaming. */
#include <cJSON.h>
#include <stdint.h>

#include "base.h"
#include "test.h"
#include "util_json.h"
#include "tokenizer_impl.h"

#define GLM4_DIR "../shared/assets/glm4-tokenizer"
#define FIX "tests/fixtures/tokenizer"

static glmv_tokenizer *tok;
static cJSON *corpus; /* {"cases": [{"text"|"hex", "ids"}], "big": {...}} */


/* ids of text vs a cJSON array; prints the first difference */
static int ids_equal(const glmv_tokenizer *t, const char *text, size_t len, const cJSON *want,
                     const char *what) {
    char err[GLMV_ERR_SIZE];
    int32_t *ids;
    int64_t n = glmv_tokenize(t, text, len, &ids, err);
    if (n < 0) {
        printf("  %s: %s\n", what, err);
        return 0;
    }
    int64_t m = cJSON_GetArraySize(want), i = 0;
    const cJSON *e = want ? want->child : NULL;
    for (; i < n && e; i++, e = e->next)
        if (ids[i] != (int32_t)e->valuedouble) break;
    int ok = i == n && i == m;
    if (!ok)
        printf("  %s: ids differ at %lld (got %lld ids, want %lld): got %d want %d\n", what,
               (long long)i, (long long)n, (long long)m, i < n ? ids[i] : -1,
               e ? (int)e->valuedouble : -1);
    free(ids);
    return ok;
}

static int roundtrip(const glmv_tokenizer *t, const char *text, size_t len) {
    char err[GLMV_ERR_SIZE];
    int32_t *ids;
    int64_t n = glmv_tokenize(t, text, len, &ids, err);
    if (n < 0) return 0;
    char *back = glmv_detokenize(t, ids, n, 0);
    int ok = back && strlen(back) == len && !memcmp(back, text, len);
    free(back);
    free(ids);
    return ok;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* case text: "text" (UTF-8) or "hex" (raw bytes, possibly ill-formed) */
static char *case_text(const cJSON *c, size_t *len) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "text");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(c, "hex");
    if (cJSON_IsString(t)) {
        *len = strlen(t->valuestring);
        return strdup(t->valuestring);
    }
    if (!cJSON_IsString(h)) return NULL;
    size_t n = strlen(h->valuestring) / 2;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)(hexval(h->valuestring[2 * i]) << 4 | hexval(h->valuestring[2 * i + 1]));
    s[n] = 0;
    *len = n;
    return s;
}

/* ------------------------------------------------------------------------ */

TEST(load) {
    char err[GLMV_ERR_SIZE];
    double t0 = glmv_now_ms();
    int rc = glmv_tokenizer_load(&tok, GLM4_DIR, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) return;
    printf("  loaded %s/tokenizer.json in %.1f ms\n", GLM4_DIR, glmv_now_ms() - t0);
    CHECK_EQ_INT(glmv_tokenizer_size(tok), 151354);
    CHECK_EQ_INT(glmv_token_id(tok, "\n"), 198);
    CHECK_EQ_INT(glmv_token_id(tok, "[gMASK]"), 151331);
    CHECK_EQ_INT(glmv_token_id(tok, "<|assistant|>"), 151337);
    CHECK_EQ_INT(glmv_token_id(tok, "no such token at all"), -1);
    CHECK(glmv_token_is_special(tok, 151348));  /* </answer> */
    CHECK(!glmv_token_is_special(tok, 151350)); /* </think> is not special */
    CHECK(!glmv_token_is_special(tok, 198));
    size_t l;
    const char *b = glmv_token_bytes(tok, 151336, &l);
    CHECK(b && l == 8 && !memcmp(b, "<|user|>", 8));
    CHECK(glmv_token_bytes(tok, -1, &l) == NULL);
    CHECK(glmv_token_bytes(tok, 151354, &l) == NULL);
    char e2[GLMV_ERR_SIZE];
    glmv_tokenizer *none;
    CHECK(glmv_tokenizer_load(&none, "/nonexistent", e2) != 0 && strstr(e2, "tokenizer.json"));
}

TEST(golden_vectors) {
    if (!tok) return test_skip("no tokenizer");
    cJSON *v = test_read_json(GLM4_DIR "/test_vectors.json");
    CHECK(v != NULL);
    if (!v) return;
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(v, "encode_ordinary")) {
        const char *s = cJSON_GetObjectItemCaseSensitive(e, "text")->valuestring;
        CHECK_MSG(ids_equal(tok, s, strlen(s), cJSON_GetObjectItemCaseSensitive(e, "ids"), "vector"),
                  "%.40s", s);
        CHECK(roundtrip(tok, s, strlen(s)));
        n++;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(v, "glm4_9b_chat_prompts")) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "prompt_text");
        if (!cJSON_IsString(p)) continue;
        CHECK(ids_equal(tok, p->valuestring, strlen(p->valuestring),
                        cJSON_GetObjectItemCaseSensitive(e, "ids"), "prompt"));
        n++;
    }
    CHECK(n >= 13);
    cJSON_Delete(v);
}

TEST(corpus_matches_hf) {
    if (!tok) return test_skip("no tokenizer");
    corpus = test_read_json(FIX "/corpus.json");
    CHECK_MSG(corpus != NULL, "run scripts/gen_tokenizer_fixtures.py");
    if (!corpus) return;
    int n = 0, bad = 0, trips = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(corpus, "cases")) {
        size_t len;
        char *s = case_text(e, &len);
        char what[32];
        snprintf(what, sizeof what, "case %d", n);
        if (!s || !ids_equal(tok, s, len, cJSON_GetObjectItemCaseSensitive(e, "ids"), what)) bad++;
        if (s && cJSON_GetObjectItemCaseSensitive(e, "text")) {
            trips++;
            CHECK_MSG(roundtrip(tok, s, len), "case %d does not round-trip", n);
        }
        free(s);
        n++;
    }
    printf("  %d cases (%d round trips), %d differ\n", n, trips, bad);
    CHECK_EQ_INT(bad, 0);
    CHECK(n >= 2000);
}

static uint64_t fnv_ids(const int32_t *ids, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) h = (h ^ (((uint32_t)ids[i] >> (8 * k)) & 0xff)) * 0x100000001b3ull;
    return h;
}

/* The 1 MB text: the corpus's valid texts joined by "\n\n" until the size is
 * reached (the generator does the same), compared by count, hash and ends. */
TEST(one_megabyte) {
    if (!tok || !corpus) return test_skip("no corpus");
    const cJSON *big = cJSON_GetObjectItemCaseSensitive(corpus, "big");
    CHECK(big != NULL);
    if (!big) return;
    size_t target = (size_t)cJSON_GetObjectItemCaseSensitive(big, "bytes")->valuedouble;
    char *buf = malloc(target + 1);
    size_t n = 0;
    for (int done = 0; !done;) {
        int any = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(corpus, "cases")) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "text");
            if (!cJSON_IsString(t)) continue;
            size_t l = strlen(t->valuestring);
            if (n + l + 2 > target) {
                done = 1;
                break;
            }
            memcpy(buf + n, t->valuestring, l);
            memcpy(buf + n + l, "\n\n", 2);
            n += l + 2;
            any = 1;
        }
        if (!any) done = 1;
    }
    while (n < target) buf[n++] = 'x';
    char err[GLMV_ERR_SIZE];
    int32_t *ids;
    double t0 = glmv_now_ms();
    int64_t m = glmv_tokenize(tok, buf, n, &ids, err);
    double ms = glmv_now_ms() - t0;
    CHECK_MSG(m > 0, "%s", err);
    if (m > 0) {
        printf("  %zu bytes -> %lld ids in %.1f ms (%.1f MB/s)\n", n, (long long)m, ms,
               (double)n / 1e3 / ms);
        CHECK_EQ_INT(m, (int64_t)cJSON_GetObjectItemCaseSensitive(big, "n_ids")->valuedouble);
        char h[32];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)fnv_ids(ids, m));
        CHECK_EQ_STR(h, cJSON_GetObjectItemCaseSensitive(big, "fnv64")->valuestring);
        const cJSON *head = cJSON_GetObjectItemCaseSensitive(big, "head");
        const cJSON *tail = cJSON_GetObjectItemCaseSensitive(big, "tail");
        int i = 0, nt = cJSON_GetArraySize(tail);
        const cJSON *e;
        cJSON_ArrayForEach(e, head) CHECK(i < m && ids[i++] == (int32_t)e->valuedouble);
        i = 0;
        cJSON_ArrayForEach(e, tail) CHECK(ids[m - nt + i++] == (int32_t)e->valuedouble);
        char *back = glmv_detokenize(tok, ids, m, 0);
        CHECK(back && strlen(back) == n && !memcmp(back, buf, n));
        free(back);
        free(ids);
    }
    free(buf);
}

/* ------------------------------------------------------------------------ */

static int64_t enc(const glmv_tokenizer *t, const char *s, int32_t **ids) {
    char err[GLMV_ERR_SIZE];
    int64_t n = glmv_tokenize(t, s, strlen(s), ids, err);
    if (n < 0) printf("  %s\n", err);
    return n;
}

static int same_ids(const glmv_tokenizer *t, const char *a, const char *b) {
    int32_t *x, *y;
    int64_t n = enc(t, a, &x), m = enc(t, b, &y);
    int ok = n == m && n >= 0 && !memcmp(x, y, (size_t)n * 4);
    free(x);
    free(y);
    return ok;
}

/* Ill-formed input: each maximal ill-formed subpart becomes U+FFFD first. */
TEST(invalid_utf8) {
    if (!tok) return test_skip("no tokenizer");
    CHECK(same_ids(tok, "a\xff b", "a\xEF\xBF\xBD b"));
    CHECK(same_ids(tok, "x\xE4\xBD", "x\xEF\xBF\xBD"));                       /* truncated 3-byte */
    CHECK(same_ids(tok, "\xC0\xAF!", "\xEF\xBF\xBD\xEF\xBF\xBD!"));           /* overlong: 2 */
    CHECK(same_ids(tok, "\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD")); /* surrogate */
    CHECK(same_ids(tok, "\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"));
    CHECK(same_ids(tok, "\xF0\x9F\x98<|user|>", "\xEF\xBF\xBD<|user|>"));
    /* NUL bytes are ordinary text */
    int32_t *ids;
    char err[GLMV_ERR_SIZE];
    int64_t n = glmv_tokenize(tok, "a\0b", 3, &ids, err);
    CHECK(n >= 2);
    if (n > 0) {
        char *s = glmv_detokenize(tok, ids, n, 0);
        CHECK(s && s[0] == 'a' && s[1] == 0 && s[2] == 'b');
        free(s);
        free(ids);
    }
    /* decoding a lone byte token gives U+FFFD */
    int32_t lone = tok->byte_id[0xE4];
    char *s = glmv_detokenize(tok, &lone, 1, 0);
    CHECK_EQ_STR(s, "\xEF\xBF\xBD");
    free(s);
    n = glmv_tokenize(tok, "", 0, &ids, err);
    CHECK(n == 0 && ids != NULL);
    free(ids);
}

TEST(added_tokens) {
    if (!tok) return test_skip("no tokenizer");
    int32_t *ids;
    int64_t n = enc(tok, "[gMASK]<sop><|user|>\nhi<think>x</think><answer>y</answer><|assistant|>", &ids);
    int32_t want_head[] = {151331, 151333, 151336, 198};
    CHECK(n > 10 && !memcmp(ids, want_head, sizeof want_head));
    int seen_think = 0, seen_end = 0, seen_ans = 0, seen_eans = 0;
    for (int64_t i = 0; i < n; i++) {
        seen_think += ids[i] == glmv_token_id(tok, "<think>");
        seen_end += ids[i] == glmv_token_id(tok, "</think>");
        seen_ans += ids[i] == glmv_token_id(tok, "<answer>");
        seen_eans += ids[i] == glmv_token_id(tok, "</answer>");
    }
    CHECK(seen_think == 1 && seen_end == 1 && seen_ans == 1 && seen_eans == 1);
    char *s = glmv_detokenize(tok, ids, n, 0);
    CHECK_EQ_STR(s, "[gMASK]<sop><|user|>\nhi<think>x</think><answer>y</answer><|assistant|>");
    free(s);
    /* skip_special drops special tokens only: <think> is not special */
    s = glmv_detokenize(tok, ids, n, 1);
    CHECK_EQ_STR(s, "\nhi<think>x</think><answer>y");
    free(s);
    free(ids);
    /* a broken tag is text */
    n = enc(tok, "<|user|", &ids);
    CHECK(n > 1);
    for (int64_t i = 0; i < n; i++) CHECK(ids[i] < 151329);
    free(ids);
}

/* The heap BPE (long chunks) and the scan (short ones) agree. */
TEST(bpe_heap_equals_scan) {
    if (!tok) return test_skip("no tokenizer");
    const char *texts[] = {
        "晚上睡不着应该怎么办我想在apple工作很高兴见到你有什么可以帮助你的吗这是一个非常长的中文句子没有任何标点符号",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "               \n\n\n\t\t\t                                                      x",
        "==================================================================================",
        "😀😁😂🤣😃😄😅😆😉😊😋😎😍😘🥰😗😙😚☺️🙂🤗🤩🤔🤨😐😑😶🙄😏😣😥😮🤐😯😪😫😴😌😛😜😝🤤😒😓😔😕🙃🤑😲",
    };
    int saved = tok_bpe_heap_threshold;
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
        int32_t *a, *b;
        tok_bpe_heap_threshold = 1 << 30;
        int64_t n = enc(tok, texts[k], &a);
        tok_bpe_heap_threshold = 0;
        int64_t m = enc(tok, texts[k], &b);
        CHECK_MSG(n == m && n > 0 && !memcmp(a, b, (size_t)n * 4), "text %zu", k);
        free(a);
        free(b);
    }
    tok_bpe_heap_threshold = saved;
}

/* Streaming: pieces are always well-formed and add up to the full decode. */
static int valid_utf8(const char *s, size_t n) {
    char *o = malloc(3 * n + 1);
    size_t ol;
    tok_utf8_lossy(s, n, 1, o, &ol);
    int ok = ol == n && !memcmp(o, s, n);
    free(o);
    return ok;
}

static void check_stream(const int32_t *ids, int64_t n, int skip) {
    glmv_detok d;
    glmv_detok_init(&d, tok, skip);
    char *acc = malloc(1);
    size_t an = 0;
    for (int64_t i = 0; i <= n; i++) {
        char *p;
        size_t l;
        int rc = i < n ? glmv_detok_push(&d, ids[i], &p, &l) : glmv_detok_flush(&d, &p, &l);
        CHECK(rc == 0);
        CHECK(valid_utf8(p, l));
        acc = realloc(acc, an + l + 1);
        memcpy(acc + an, p, l);
        an += l;
        free(p);
    }
    acc[an] = 0;
    char *full = glmv_detokenize(tok, ids, n, skip);
    CHECK(full && strlen(full) == an && !memcmp(full, acc, an));
    free(full);
    free(acc);
}

TEST(incremental_decode) {
    if (!tok) return test_skip("no tokenizer");
    int32_t *ids;
    int64_t n = enc(tok, "你好👋！😶‍🌫️ 🇫🇷 é ﬁ<|user|>x", &ids);
    CHECK(n > 5);
    check_stream(ids, n, 0);
    check_stream(ids, n, 1);
    free(ids);
    /* byte tokens cut a character in three, with a special token inside */
    int32_t cut[] = {tok->byte_id[0xE4], tok->byte_id[0xBD], 151336, tok->byte_id[0xA0],
                     tok->byte_id[0xE4], tok->byte_id[0xBD], tok->byte_id[0xA0], tok->byte_id[0xF0]};
    check_stream(cut, 8, 0);
    check_stream(cut, 8, 1);
    char *s = glmv_detokenize(tok, cut, 8, 1);
    CHECK_EQ_STR(s, "你你\xEF\xBF\xBD");
    free(s);
    if (corpus) {
        const cJSON *e;
        int k = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(corpus, "cases")) {
            if (k++ % 7) continue;
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "ids");
            int64_t m = cJSON_GetArraySize(a), i = 0;
            int32_t *v = malloc(sizeof(int32_t) * (size_t)(m + 1));
            const cJSON *x;
            cJSON_ArrayForEach(x, a) v[i++] = (int32_t)x->valuedouble;
            check_stream(v, m, k & 1);
            free(v);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Small tokenizers made with HF tokenizers (other pre-tokenizer layouts)   */
/* ------------------------------------------------------------------------ */

TEST(small_tokenizers) {
    cJSON *idx = test_read_json(FIX "/small/cases.json");
    CHECK_MSG(idx != NULL, "run scripts/gen_tokenizer_fixtures.py");
    if (!idx) return;
    const cJSON *d;
    int nd = 0;
    cJSON_ArrayForEach(d, idx) {
        const char *name = cJSON_GetObjectItemCaseSensitive(d, "dir")->valuestring;
        char dir[512], err[GLMV_ERR_SIZE];
        snprintf(dir, sizeof dir, FIX "/small/%s", name);
        glmv_tokenizer *t;
        int rc = glmv_tokenizer_load(&t, dir, err);
        CHECK_MSG(rc == 0, "%s: %s", name, err);
        if (rc) continue;
        const cJSON *e;
        int k = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "cases")) {
            size_t len;
            char *s = case_text(e, &len);
            char what[600];
            snprintf(what, sizeof what, "%s case %d", name, k++);
            CHECK_MSG(s && ids_equal(t, s, len, cJSON_GetObjectItemCaseSensitive(e, "ids"), what),
                      "%s", what);
            const cJSON *dec = cJSON_GetObjectItemCaseSensitive(e, "decoded");
            if (s && cJSON_IsString(dec)) {
                int32_t *ids;
                int64_t n = glmv_tokenize(t, s, len, &ids, err);
                char *back = n >= 0 ? glmv_detokenize(t, ids, n, 0) : NULL;
                CHECK_MSG(back && !strcmp(back, dec->valuestring), "%s decode", what);
                free(back);
                free(ids);
            }
            free(s);
        }
        glmv_tokenizer_free(t);
        nd++;
    }
    CHECK(nd >= 3);
    cJSON_Delete(idx);
}

TEST(bad_files) {
    char err[GLMV_ERR_SIZE];
    glmv_tokenizer *t;
    const char *bad[] = {"bad_json", "bad_merge", "bad_pretok"};
    for (int i = 0; i < 3; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, FIX "/%s", bad[i]);
        err[0] = 0;
        CHECK_MSG(glmv_tokenizer_load(&t, dir, err) != 0, "%s loaded", bad[i]);
        CHECK_MSG(strstr(err, "tokenizer.json") != NULL, "%s: '%s'", bad[i], err);
    }
}

int main(void) {
    RUN(load);
    RUN(golden_vectors);
    RUN(corpus_matches_hf);
    RUN(one_megabyte);
    RUN(invalid_utf8);
    RUN(added_tokens);
    RUN(bpe_heap_equals_scan);
    RUN(incremental_decode);
    RUN(small_tokenizers);
    RUN(bad_files);
    cJSON_Delete(corpus);
    glmv_tokenizer_free(tok);
    return test_summary("tokenizer");
}
