/* test_schema.c -- structured output's recognizer and token mask (src/schema.c).
 *
 * Documents that match a schema are accepted byte by byte and end complete;
 * documents that break it are refused at the first byte that breaks it (and
 * every prefix before that byte is accepted). Unsupported schemas are refused
 * with a message naming the feature. The token mask is compared with a plain
 * loop that feeds every token to a copy of the state, on the demo model's
 * tokenizer and on the real GLM-4 tokenizer (151k tokens), at many states.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "schema.h"
#include "test.h"
#include "tokenizer.h"

/* feed doc; returns the offset of the first refused byte, or -1 if all are
 * taken; *complete says whether the whole doc is a complete value */
static long feed_all(const glmv_schema *s, const char *doc, int *complete) {
    glmv_json_state st;
    glmv_json_init(&st, s);
    size_t n = strlen(doc);
    for (size_t i = 0; i < n; i++)
        if (glmv_json_feed(&st, doc + i, 1)) {
            *complete = 0;
            return (long)i;
        }
    *complete = glmv_json_complete(&st);
    return -1;
}

static void accepts(const glmv_schema *s, const char *doc) {
    int complete;
    long at = feed_all(s, doc, &complete);
    CHECK_MSG(at < 0 && complete, "'%s': refused at %ld (complete %d)", doc, at, complete);
}

/* refused at byte `at` (-1: every byte taken, but incomplete) */
static void refuses(const glmv_schema *s, const char *doc, long at) {
    int complete;
    long got = feed_all(s, doc, &complete);
    CHECK_MSG(got == at && !complete, "'%s': refused at %ld, expected %ld (complete %d)", doc, got, at,
              complete);
}

static glmv_schema *compile_ok(const char *json) {
    char err[GLMV_ERR_SIZE] = "";
    glmv_schema *s = glmv_schema_compile(json, err);
    CHECK_MSG(s != NULL, "%s: %s", json, err);
    return s;
}

TEST(any_object) {
    glmv_schema *s = compile_ok(NULL);
    if (!s) return;
    accepts(s, "{}");
    accepts(s, "{\"a\": 1, \"b\": [true, false, null, -0.5e+3, \"x\\u00e9\\n\"], \"c\": {\"d\": {}}}");
    accepts(s, "{\n  \"key\": \"v\"\n}");
    accepts(s, "{\"k\": \"\xe2\x82\xac \xf0\x9f\x99\x82\"}");
    accepts(s, "{\"\xc3\xa9t\xc3\xa9\":\"caf\xc3\xa9\"}");
    refuses(s, "[1]", 0);                   /* json_object: an object at the top */
    refuses(s, "{\"a\" 1}", 5);
    refuses(s, "{\"a\":01}", 6);            /* no leading zero */
    refuses(s, "{\"a\":tru}", 8);
    refuses(s, "{\"a\":1,}", 7);
    refuses(s, "{\"a\":1}x", 7);            /* nothing after the value */
    refuses(s, "{\"a\":\"x\ny\"}", 7);      /* a raw newline in a string */
    refuses(s, "{\"a\":\"\\q\"}", 7);
    refuses(s, "{\"a\":1", -1);             /* a prefix: fine, but not complete */
    refuses(s, "{          }", 9);         /* whitespace runs are bounded */
    refuses(s, "{\"a\":\"\x80\"}", 6);     /* a continuation byte without its lead */
    refuses(s, "{\"a\":\"\xc3x\"}", 7);    /* a lead byte without its continuation */
    refuses(s, "{\"a\":\"\xff\"}", 6);
    refuses(s, "{\"a\":\"\xe0\x80\x80\"}", 7);  /* overlong */
    refuses(s, "{\"a\":\"\xed\xa0\x80\"}", 7);  /* a surrogate */
    refuses(s, "{\"a\":\"\xf4\x90\x80\x80\"}", 7); /* past U+10FFFF */
    accepts(s, "{\"a\":\"\xe0\xa0\x80\xed\x9f\xbf\xf0\x90\x80\x80\"}");
    glmv_schema_free(s);
}

TEST(strict_object) {
    glmv_schema *s = compile_ok(
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":5},"
        "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
        "\"minItems\":1,\"maxItems\":2},\"ok\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"age\"],"
        "\"additionalProperties\":false}");
    if (!s) return;
    accepts(s, "{\"name\":\"Ann\",\"age\":31}");
    accepts(s, "{\"age\":-2,\"name\":\"\",\"ok\":false,\"tags\":[\"a\",\"b\"]}");
    refuses(s, "{\"name\":\"Ann\"}", 13);          /* age is required */
    refuses(s, "{\"nam\":", 5);                    /* not a property */
    refuses(s, "{\"name\":\"Ann\",\"name\"", 15);  /* no key twice: nothing is left starting 'n' */
    refuses(s, "{\"name\":\"Annabel\"}", 14);      /* maxLength 5 */
    refuses(s, "{\"name\":\"A\",\"age\":1.5}", 19); /* integer */
    refuses(s, "{\"name\":\"A\",\"age\":1,\"tags\":[]}", 28); /* minItems */
    refuses(s, "{\"name\":\"A\",\"age\":1,\"tags\":[\"a\",\"b\",\"c\"]}", 35); /* maxItems */
    refuses(s, "{\"name\":\"A\",\"age\":1,\"extra\":1}", 21);
    refuses(s, "{\"name\":\"A\",\"age\":1,\"ok\":tru}", 28);
    glmv_schema_free(s);
}

TEST(enum_const_union_ref) {
    glmv_schema *s = compile_ok(
        "{\"type\":\"object\",\"properties\":{\"colour\":{\"enum\":[\"red\",\"green\",\"reddish\"]},"
        "\"n\":{\"enum\":[1,12,null]},\"v\":{\"const\":\"x\"},\"maybe\":{\"type\":[\"string\",\"null\"]},"
        "\"num\":{\"anyOf\":[{\"type\":\"number\"},{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/leaf\"}}]}},"
        "\"required\":[\"colour\",\"n\",\"v\",\"maybe\",\"num\"],\"additionalProperties\":false,"
        "\"$defs\":{\"leaf\":{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"boolean\"}},"
        "\"required\":[\"k\"],\"additionalProperties\":false}}}");
    if (!s) return;
    accepts(s, "{\"colour\":\"red\",\"n\":12,\"v\":\"x\",\"maybe\":null,\"num\":3}");
    accepts(s, "{\"colour\":\"reddish\",\"n\":1,\"v\":\"x\",\"maybe\":\"s\",\"num\":[{\"k\":true}]}");
    accepts(s, "{\"colour\":\"green\",\"n\":null,\"v\":\"x\",\"maybe\":\"\",\"num\":[]}");
    refuses(s, "{\"colour\":\"blue\"", 11);
    refuses(s, "{\"colour\":\"red\",\"n\":2", 20);
    refuses(s, "{\"colour\":\"red\",\"n\":1,\"v\":\"y\"", 27);
    refuses(s, "{\"colour\":\"red\",\"n\":1,\"v\":\"x\",\"maybe\":5", 38);
    refuses(s, "{\"colour\":\"red\",\"n\":1,\"v\":\"x\",\"maybe\":null,\"num\":[{\"k\":1}", 55);
    glmv_schema_free(s);
    /* recursion: a tree of nodes */
    s = compile_ok("{\"$defs\":{\"t\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
                   "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/t\"}}},\"required\":[\"v\"],"
                   "\"additionalProperties\":false}},\"$ref\":\"#/$defs/t\"}");
    if (!s) return;
    accepts(s, "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[{\"v\":4,\"kids\":[]}]}]}");
    refuses(s, "{\"v\":1,\"kids\":[{\"w\":2}", 17);
    glmv_schema_free(s);
    /* a number at the top ends with the output */
    s = compile_ok("{\"type\":\"number\"}");
    if (!s) return;
    accepts(s, "-12.5e3");
    refuses(s, "12.", -1);
    glmv_schema_free(s);
    /* too deep: refused, not overflowed */
    s = compile_ok(NULL);
    char deep[200] = "{\"a\":";
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    CHECK(feed_all(s, deep, &(int){0}) >= 0);
    glmv_schema_free(s);
}

/* minimum / maximum: a byte that leaves no way into the bounds is refused */
static void in_object(const glmv_schema *s, const char *num, long at_in_num, int ok) {
    char doc[128];
    snprintf(doc, sizeof doc, "{\"x\":%s}", num);
    if (ok) accepts(s, doc);
    else refuses(s, doc, at_in_num < 0 ? -1 : 5 + at_in_num);
}

TEST(numeric_bounds) {
    glmv_schema *s = compile_ok("{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\","
                                "\"minimum\":1,\"maximum\":12}},\"required\":[\"x\"],\"additionalProperties\":false}");
    if (!s) return;
    in_object(s, "1", 0, 1);
    in_object(s, "12", 0, 1);
    in_object(s, "7", 0, 1);
    in_object(s, "0", 0, 0);       /* 0 cannot grow into [1, 12] */
    in_object(s, "13", 1, 0);      /* neither can 13 */
    in_object(s, "-1", 0, 0);
    in_object(s, "2.0", 1, 0);     /* an integer */
    glmv_schema_free(s);
    /* zod's int(): the safe-integer range */
    s = compile_ok("{\"type\":\"integer\",\"minimum\":-9007199254740991,\"maximum\":9007199254740991}");
    if (!s) return;
    accepts(s, "42");
    accepts(s, "-9007199254740991");
    refuses(s, "-90071992547409919", 17);
    glmv_schema_free(s);
    s = compile_ok("{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\",\"exclusiveMinimum\":0,"
                   "\"maximum\":1}},\"required\":[\"x\"],\"additionalProperties\":false}");
    if (!s) return;
    in_object(s, "0.5", 0, 1);
    in_object(s, "1", 0, 1);
    in_object(s, "0.001", 0, 1);
    in_object(s, "0", 1, 0);       /* 0 is excluded: the number may not end there */
    in_object(s, "1.5", 2, 0);
    in_object(s, "2", 0, 0);
    in_object(s, "1e0", 1, 0);     /* no exponent beside bounds */
    glmv_schema_free(s);
    /* ends that cannot be reached (the review's cases): each prefix must still be able to end
     * inside, so the model is never steered into a number with no way out */
    static const struct { const char *schema, *num; long at; int ok; } cases[] = {
        {"\"exclusiveMaximum\":1", "1", 0, 0},      /* 1.xxx is never below 1 */
        {"\"exclusiveMaximum\":1", "0.999", 0, 1},
        {"\"exclusiveMaximum\":0", "0", 0, 0},      /* zod's negative() */
        {"\"exclusiveMaximum\":0", "-0.5", 0, 1},
        {"\"minimum\":1", "0", 0, 0},
        {"\"minimum\":2", "1.", 1, 0},
        {"\"minimum\":2", "15", 0, 1},
        {"\"maximum\":-1", "-0", 1, 0},
        {"\"exclusiveMinimum\":0", "-", 0, 0},      /* zod's positive() */
        {"\"maximum\":0.3", "0.3", 0, 1},           /* a number at its bound, exactly */
        {"\"maximum\":2.675", "2.675", 0, 1},
        {"\"minimum\":0.1,\"maximum\":0.3", "0.1", 0, 1},
        {"\"minimum\":0.1,\"maximum\":0.3", "0.31", 3, 0},
        {"\"minimum\":0.1,\"maximum\":0.3", "0.09", 2, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char js[256];
        snprintf(js, sizeof js, "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\",%s}},"
                 "\"required\":[\"x\"],\"additionalProperties\":false}", cases[i].schema);
        glmv_schema *b = compile_ok(js);
        if (!b) continue;
        in_object(b, cases[i].num, cases[i].at, cases[i].ok);
        glmv_schema_free(b);
    }
    /* an unbounded number keeps room for the digit a '.' needs */
    s = compile_ok("{\"type\":\"number\"}");
    if (s) {
        refuses(s, "1234567890123456789012345678901.", 31);
        accepts(s, "123456789012345678901234567890.5");
        glmv_schema_free(s);
    }
    /* draft 4's boolean exclusiveMaximum */
    s = compile_ok("{\"type\":\"integer\",\"maximum\":10,\"exclusiveMaximum\":true}");
    if (!s) return;
    accepts(s, "9");
    refuses(s, "10", 1);           /* 10 cannot grow back into range */
    glmv_schema_free(s);
}

TEST(unsupported_schemas_refused) {
    static const char *const bad[][2] = {
        {"{\"type\":\"string\",\"pattern\":\"a+\"}", "pattern"},
        {"{\"type\":\"string\",\"format\":\"date\"}", "format"},
        {"{\"type\":\"integer\",\"minimum\":3,\"maximum\":2}", "minimum and maximum"},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":1,\"exclusiveMaximum\":2}", "minimum and maximum"},
        {"{\"type\":\"number\",\"minimum\":1e25}", "1e21"},
        {"{\"anyOf\":[{\"type\":\"string\"},{\"enum\":[\"a\"]}]}", "same character"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":true}", "additionalProperties"},
        {"{\"$ref\":\"#/$defs/missing\"}", "$ref"},
        {"{\"$ref\":\"http://x/y\"}", "$ref"},
        {"{\"type\":\"object\",\"properties\":{\"a\\\"b\":{}}}", "escaping"},
        {"{\"type\":\"tuple\"}", "unknown type"},
        {"{\"type\":\"object\",\"required\":[\"z\"]}", "required"},
        {"[1,2", "not valid JSON"},
        {"{\"type\":\"array\",\"prefixItems\":[]}", "prefixItems"},
        /* left recursion: the first alternative leads back to the union before any byte */
        {"{\"anyOf\":[{\"$ref\":\"#\"},{\"type\":\"string\"}]}", "same character"},
        {"{\"$defs\":{\"a\":{\"anyOf\":[{\"$ref\":\"#/$defs/a\"},{\"type\":\"null\"}]}},\"$ref\":\"#/$defs/a\"}", "same character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[GLMV_ERR_SIZE] = "";
        glmv_schema *s = glmv_schema_compile(bad[i][0], err);
        CHECK_MSG(s == NULL && strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
        glmv_schema_free(s);
    }
}

/* the mask against feeding every token to a copy of the state */
static void mask_matches(const glmv_tokenizer *tok, const glmv_schema *s, const char *doc, int every) {
    glmv_vocab_index *v = glmv_vocab_index_new(tok);
    CHECK(v != NULL);
    if (!v) return;
    int V = glmv_tokenizer_size(tok);
    uint8_t *allow = malloc((size_t)V);
    glmv_json_state *scratch = malloc(sizeof(glmv_json_state) * (size_t)(glmv_vocab_index_max_len(v) + 1));
    glmv_json_state st, cp;
    glmv_json_init(&st, s);
    size_t n = strlen(doc);
    int checked = 0, bad = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i % (size_t)every == 0 || i == n) {
            int count = glmv_schema_mask(&st, v, allow, V, scratch);
            int want_count = 0;
            for (int id = 0; id < V; id++) {
                size_t l = 0;
                const char *b = glmv_token_bytes(tok, id, &l);
                int want = 0;
                if (b && l > 0 && !glmv_token_is_added(tok, id)) {
                    cp = st;
                    want = glmv_json_feed(&cp, b, l) == 0;
                }
                want_count += want;
                if (want != allow[id] && bad++ < 5)
                    printf("  at %zu ('%.*s'): token %d allowed %d, should be %d\n", i, (int)i, doc, id,
                           allow[id], want);
            }
            CHECK_EQ_INT(count, want_count);
            checked++;
        }
        if (i < n) CHECK(glmv_json_feed(&st, doc + i, 1) == 0);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(checked > 3);
    free(allow);
    free(scratch);
    glmv_vocab_index_free(v);
}

static const char *SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"answer\":{\"type\":\"integer\"},\"shapes\":{\"type\":\"array\","
    "\"items\":{\"type\":\"object\",\"properties\":{\"colour\":{\"enum\":[\"red\",\"green\",\"blue\"]},"
    "\"kind\":{\"type\":\"string\",\"maxLength\":8}},\"required\":[\"colour\",\"kind\"],"
    "\"additionalProperties\":false}},\"note\":{\"type\":[\"string\",\"null\"]}},"
    "\"required\":[\"answer\",\"shapes\"],\"additionalProperties\":false}";
static const char *DOC =
    "{\"answer\": 42, \"shapes\": [{\"colour\": \"red\", \"kind\": \"circle\"}, {\"kind\":\"sq\\u00e9\","
    "\"colour\":\"blue\"}], \"note\": \"free text, caf\xc3\xa9 \\\"quoted\\\"\"}";

TEST(mask_demo_tokenizer) {
    char err[GLMV_ERR_SIZE];
    glmv_tokenizer *tok = NULL;
    if (glmv_tokenizer_load(&tok, "models/demo", err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    glmv_schema *s = compile_ok(SCHEMA);
    if (s) {
        accepts(s, DOC);
        mask_matches(tok, s, DOC, 1);
        glmv_schema_free(s);
    }
    s = compile_ok(NULL);
    if (s) mask_matches(tok, s, "{\"a\": [1, -2.5e3, true, null, {\"b\": \"x\\ny\"}]}", 1);
    glmv_schema_free(s);
    glmv_tokenizer_free(tok);
}

TEST(mask_glm4_tokenizer) {
    char err[GLMV_ERR_SIZE];
    glmv_tokenizer *tok = NULL;
    if (glmv_tokenizer_load(&tok, "../shared/assets/glm4-tokenizer", err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    glmv_schema *s = compile_ok(SCHEMA);
    if (s) {
        mask_matches(tok, s, DOC, getenv("GLMV_SANITIZE") ? 29 : 7);
        /* the time a constrained step costs, at a structural point and inside a string */
        glmv_vocab_index *v = glmv_vocab_index_new(tok);
        int V = glmv_tokenizer_size(tok);
        uint8_t *allow = malloc((size_t)V);
        glmv_json_state *scratch = malloc(sizeof(glmv_json_state) * (size_t)(glmv_vocab_index_max_len(v) + 1));
        const char *at[2] = {"{\"answer\": 42, \"shapes\": [", "{\"answer\": 42, \"shapes\": [], \"note\": \"fr"};
        for (int k = 0; k < 2; k++) {
            glmv_json_state st;
            glmv_json_init(&st, s);
            glmv_json_feed(&st, at[k], strlen(at[k]));
            double t0 = glmv_now_ms();
            int c = 0;
            for (int r = 0; r < 5; r++) c = glmv_schema_mask(&st, v, allow, V, scratch);
            printf("  mask over %d tokens after '%s': %d allowed, %.2f ms\n", V, at[k], c,
                   (glmv_now_ms() - t0) / 5);
        }
        free(allow);
        free(scratch);
        glmv_vocab_index_free(v);
        glmv_schema_free(s);
    }
    glmv_tokenizer_free(tok);
}

int main(void) {
    RUN(any_object);
    RUN(strict_object);
    RUN(enum_const_union_ref);
    RUN(numeric_bounds);
    RUN(unsupported_schemas_refused);
    RUN(mask_demo_tokenizer);
    RUN(mask_glm4_tokenizer);
    return test_summary("schema");
}
