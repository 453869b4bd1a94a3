/* test_eval.c -- the items and match rules of `glmv eval` (tools/eval_item.c):
 * each rule with answers it must take and answers it must refuse, the answer
 * extracted from a model's output, and items refused before any model work.
 * The test programs link only libglmv.a, so the tools' file is compiled in here.
 */
#include "../tools/eval_item.c"

#include "test.h"

static char err[512];

/* An item from one JSON line (media relative to the fixtures folder); aborts the test on failure. */
static int item(eval_item *it, const char *json) {
    int rc = eval_item_parse(it, json, 7, "tests/fixtures/demo_eval", err, sizeof err);
    if (rc) printf("  (parse: %d %s)\n", rc, err);
    return rc;
}

static int matches(const char *json, const char *got) {
    eval_item it;
    if (item(&it, json)) return -1;
    int r = eval_match(&it, got);
    eval_item_free(&it);
    return r;
}

TEST(extract_answer) {
    const char *cases[][2] = {
        {"<answer>4</answer>", "4"},
        {"  4 \n", "4"},
        {"<answer><|begin_of_box|>green<|end_of_box|></answer>", "green"},
        {"The reasoning... <answer> left", "left"}, /* cut short: no </answer> */
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *a = eval_extract_answer(cases[i][0]);
        CHECK_EQ_STR(a, cases[i][1]);
        free(a);
    }
}

TEST(match_exact) {
    const char *j = "{\"question\": \"q\", \"answer\": \"Dark green\"}";
    CHECK_EQ_INT(matches(j, "dark green"), 1);
    CHECK_EQ_INT(matches(j, "  DARK   green. "), 1);
    CHECK_EQ_INT(matches(j, "green"), 0);
    CHECK_EQ_INT(matches(j, "dark greenish"), 0);
    CHECK_EQ_INT(matches(j, ""), 0);
}

TEST(match_number) {
    const char *j = "{\"question\": \"q\", \"answer\": 4, \"match\": \"number\"}";
    CHECK_EQ_INT(matches(j, "4"), 1);
    CHECK_EQ_INT(matches(j, "4.0"), 1);
    CHECK_EQ_INT(matches(j, "There are 4 shapes."), 1);
    CHECK_EQ_INT(matches(j, "5"), 0);
    CHECK_EQ_INT(matches(j, "I count 3, no, 4"), 1); /* the last number */
    CHECK_EQ_INT(matches(j, "four"), 0);
    CHECK_EQ_INT(matches(j, "3-4"), 1); /* a range: 3 then 4, not -4 */
    const char *a = "{\"question\": \"q\", \"answer\": \"3.14159\", \"match\": \"number\", "
                    "\"tolerance\": 0.01}";
    CHECK_EQ_INT(matches(a, "3.14"), 1);
    CHECK_EQ_INT(matches(a, "3.2"), 0);
    const char *r = "{\"question\": \"q\", \"answer\": \"1,000\", \"match\": \"number\", "
                    "\"rel_tolerance\": 0.05}";
    CHECK_EQ_INT(matches(r, "1049"), 1);
    CHECK_EQ_INT(matches(r, "1,040"), 1);
    CHECK_EQ_INT(matches(r, "1e3"), 1);
    CHECK_EQ_INT(matches(r, "1051"), 0);
    CHECK_EQ_INT(matches(r, "-1000"), 0);
    const char *n = "{\"question\": \"q\", \"answer\": \"-2.5\", \"match\": \"number\"}";
    CHECK_EQ_INT(matches(n, "-2.5"), 1);
    CHECK_EQ_INT(matches(n, "2.5"), 0);
}

TEST(match_choice) {
    const char *j = "{\"question\": \"Which?\", \"answer\": \"B\", \"match\": \"choice\", "
                    "\"choices\": [\"red\", \"green\", \"blue\"]}";
    CHECK_EQ_INT(matches(j, "B"), 1);
    CHECK_EQ_INT(matches(j, "(b)"), 1);
    CHECK_EQ_INT(matches(j, "B. green"), 1);
    CHECK_EQ_INT(matches(j, "Green"), 1);
    CHECK_EQ_INT(matches(j, "A"), 0);
    CHECK_EQ_INT(matches(j, "Blue"), 0);   /* the word blue, not the letter B */
    CHECK_EQ_INT(matches(j, "B. red"), 0); /* letter and text disagree */
    CHECK_EQ_INT(matches(j, "D"), 0);
    /* the answer may be the option's text; the options follow the question */
    eval_item it;
    CHECK_EQ_INT(item(&it, "{\"question\": \"Which?\", \"answer\": \"blue\", \"match\": \"choice\", "
                           "\"choices\": [\"red\", \"green\", \"blue\"]}"), 0);
    CHECK_EQ_INT(it.choice, 2);
    CHECK_EQ_STR(it.question, "Which?\nA. red\nB. green\nC. blue");
    CHECK_EQ_INT(eval_match(&it, "C"), 1);
    eval_item_free(&it);
}

TEST(match_regex) {
    const char *j = "{\"question\": \"q\", \"answer\": \"^\\\\d{4}$\", \"match\": \"regex\"}";
    CHECK_EQ_INT(matches(j, "4071"), 1);
    CHECK_EQ_INT(matches(j, "40712"), 0);
    CHECK_EQ_INT(matches(j, "abcd"), 0);
    const char *i = "{\"question\": \"q\", \"answer\": \"(?i)gr[ae]y\", \"match\": \"regex\"}";
    CHECK_EQ_INT(matches(i, "It is GREY."), 1);
    CHECK_EQ_INT(matches(i, "green"), 0);
}

TEST(item_fields) {
    eval_item it;
    CHECK_EQ_INT(item(&it, "{\"id\": \"a1\", \"category\": \"count\", \"images\": [\"000.png\", \"001.png\"], "
                           "\"question\": \"How many?\", \"answer\": \"1\", \"match\": \"number\"}"), 0);
    CHECK_EQ_STR(it.id, "a1");
    CHECK_EQ_STR(it.category, "count");
    CHECK_EQ_INT(it.n_images, 2);
    CHECK_EQ_STR(it.images[1], "tests/fixtures/demo_eval/001.png");
    CHECK_EQ_INT(it.rule, EVAL_NUMBER);
    eval_item_free(&it);
    /* defaults: id from the line, category "all", rule exact; "image" for one image */
    CHECK_EQ_INT(item(&it, "{\"question\": \"q\", \"answer\": \"x\", \"image\": \"000.png\"}"), 0);
    CHECK_EQ_STR(it.id, "line 7");
    CHECK_EQ_STR(it.category, "all");
    CHECK_EQ_INT(it.rule, EVAL_EXACT);
    CHECK_EQ_INT(it.n_images, 1);
    eval_item_free(&it);
    /* blank lines and comments are skipped */
    CHECK_EQ_INT(eval_item_parse(&it, "   \n", 1, "", err, sizeof err), 1);
    CHECK_EQ_INT(eval_item_parse(&it, "# a comment\n", 1, "", err, sizeof err), 1);
}

/* each bad item is refused with a message that names what is wrong */
TEST(item_errors) {
    const char *cases[][2] = {
        {"{\"question\": \"q\", \"answer\": ", "not valid JSON"},
        {"[1, 2]", "JSON object"},
        {"{\"answer\": \"x\"}", "missing field 'question'"},
        {"{\"question\": \"q\"}", "missing field 'answer'"},
        {"{\"question\": \"\", \"answer\": \"x\"}", "'question' is empty"},
        {"{\"question\": \"q\", \"answer\": true}", "'answer' must be"},
        {"{\"question\": \"q\", \"answer\": \"x\", \"match\": \"fuzzy\"}", "unknown match rule 'fuzzy'"},
        {"{\"question\": \"q\", \"answer\": \"(ab\", \"match\": \"regex\"}", "not a valid regex"},
        {"{\"question\": \"q\", \"answer\": \"four\", \"match\": \"number\"}", "not a number"},
        {"{\"question\": \"q\", \"answer\": \"4\", \"match\": \"number\", \"tolerance\": -1}",
         "'tolerance' must be"},
        {"{\"question\": \"q\", \"answer\": \"4\", \"tolerance\": 0.1}", "applies only"},
        {"{\"question\": \"q\", \"answer\": \"A\", \"match\": \"choice\"}", "needs 'choices'"},
        {"{\"question\": \"q\", \"answer\": \"E\", \"match\": \"choice\", \"choices\": [\"a\", \"b\"]}",
         "neither a letter"},
        {"{\"question\": \"q\", \"answer\": \"x\", \"images\": [\"nothere.png\"]}", "nothere.png"},
        {"{\"question\": \"q\", \"answer\": \"x\", \"images\": \"000.png\"}", "array of paths"},
        {"{\"question\": \"q\", \"answer\": \"x\", \"video\": \".\"}", "is a directory"},
        {"{\"question\": \"q\", \"answer\": \"x\", \"qestion\": \"typo\"}", "unknown field 'qestion'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eval_item it;
        err[0] = 0;
        int rc = eval_item_parse(&it, cases[i][0], 3, "tests/fixtures/demo_eval", err, sizeof err);
        CHECK_MSG(rc == -1 && strstr(err, cases[i][1]), "case %zu: rc %d, '%s' lacks '%s'", i, rc, err,
                  cases[i][1]);
        if (rc == 0) eval_item_free(&it);
    }
}

int main(void) {
    RUN(extract_answer);
    RUN(match_exact);
    RUN(match_number);
    RUN(match_choice);
    RUN(match_regex);
    RUN(item_fields);
    RUN(item_errors);
    return test_summary("eval");
}
