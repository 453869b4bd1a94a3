/* test.h -- a tiny test harness shared by the test programs.
 *
 *   TEST(name) { CHECK(cond); CHECK_EQ_INT(a, b); CHECK_NEAR(a, b, tol); }
 *   int main(void) { RUN(name); ...; return test_summary("suite"); }
 *
 * Each failing check prints file:line and what failed; a test fails if any
 * check in it failed. test_summary prints "RESULT suite passed=N failed=M",
 * which tests/run.sh adds up. Tests run from the project root, so shared
 * assets are at ../shared/assets/... and fixtures at tests/fixtures/...
 * test_skip("why") marks the current test skipped (printed, not counted).
 * GLMV_TEST_SKIP=a,b skips the tests named a and b (a machine that lacks a
 * library a test needs, such as the GPU host without FFmpeg); GLMV_TEST_ONLY=a,b runs only those.
 */
#ifndef GLMV_TEST_H
#define GLMV_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* unused in a program whose tests are all compiled out (test_cuda without CUDA) */
__attribute__((unused)) static int test_passed_, test_failed_, test_skipped_, test_cur_failed_,
    test_cur_skipped_;
__attribute__((unused)) static const char *test_cur_name_;

#define TEST(name) static void test_##name(void)

#define CHECK(c)                                                                         \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            printf("  FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, test_cur_name_, #c);   \
            test_cur_failed_++;                                                          \
        }                                                                                \
    } while (0)

#define CHECK_MSG(c, ...)                                                                \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            printf("  FAIL %s:%d: %s: %s: ", __FILE__, __LINE__, test_cur_name_, #c);    \
            printf(__VA_ARGS__);                                                         \
            printf("\n");                                                                \
            test_cur_failed_++;                                                          \
        }                                                                                \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                               \
    do {                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                              \
        CHECK_MSG(a_ == b_, "%lld != %lld", a_, b_);                                     \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                               \
    do {                                                                                 \
        const char *a_ = (a), *b_ = (b);                                                 \
        CHECK_MSG(a_ && b_ && strcmp(a_, b_) == 0, "\"%s\" != \"%s\"", a_ ? a_ : "(null)", \
                  b_ ? b_ : "(null)");                                                   \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                            \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        CHECK_MSG(fabs(a_ - b_) <= (tol), "%.9g vs %.9g (tol %g)", a_, b_, (double)(tol)); \
    } while (0)

static inline void test_skip(const char *why) {
    printf("  SKIP %s: %s\n", test_cur_name_, why);
    test_cur_skipped_ = 1;
}

/* name listed in the environment variable var (comma-separated)? */
static inline int test_listed_(const char *var, const char *name) {
    const char *e = getenv(var);
    size_t n = strlen(name);
    while (e && *e) {
        const char *c = strchr(e, ',');
        size_t l = c ? (size_t)(c - e) : strlen(e);
        if (l == n && !strncmp(e, name, n)) return 1;
        e = c ? c + 1 : NULL;
    }
    return 0;
}

#define RUN(name)                                                                        \
    do {                                                                                 \
        test_cur_name_ = #name;                                                          \
        test_cur_failed_ = 0;                                                            \
        test_cur_skipped_ = 0;                                                           \
        if (test_listed_("GLMV_TEST_SKIP", #name)) test_skip("in GLMV_TEST_SKIP");        \
        else if (getenv("GLMV_TEST_ONLY") && !test_listed_("GLMV_TEST_ONLY", #name))      \
            test_skip("not in GLMV_TEST_ONLY");                                          \
        else test_##name();                                                              \
        if (test_cur_failed_) {                                                          \
            test_failed_++;                                                              \
            printf("not ok %s\n", #name);                                                \
        } else if (test_cur_skipped_) {                                                  \
            test_skipped_++;                                                             \
        } else {                                                                         \
            test_passed_++;                                                              \
            printf("ok %s\n", #name);                                                    \
        }                                                                                \
        fflush(stdout);                                                                  \
    } while (0)

static inline int test_summary(const char *suite) {
    printf("RESULT %s passed=%d failed=%d skipped=%d\n", suite, test_passed_, test_failed_,
           test_skipped_);
    return test_failed_ ? 1 : 0;
}

/* normalised mean squared error: sum (a-b)² / sum b² */
static inline double test_nmse(const float *a, const float *b, long long n) {
    double num = 0, den = 0;
    for (long long i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

#endif
