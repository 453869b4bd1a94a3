/* test_sample.c -- token selection with transformers' semantics: greedy's
 * first maximum, the repetition penalty (each distinct id of prompt+output
 * once, divide positives, multiply negatives, applied in greedy too), top-k
 * with ties, top-p's kept set, temperature against the softmax it implies,
 * and seeded reproducibility.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cpu/ref.h"
#include "model.h"
#include "test.h"

static float wf[64];
static int32_t wi[64];

static void sampling(glmv_sampling *s) {
    memset(s, 0, sizeof *s);
    s->temperature = 1.0f;
    s->top_p = 1.0f;
    s->repetition_penalty = 1.0f;
}

TEST(greedy_first_max) {
    glmv_sampling s;
    sampling(&s);
    float l[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 0.0f};
    CHECK_EQ_INT(glmv_sample(l, 6, &s, NULL, 0, NULL, 0, NULL, wf, wi), 1);
}

TEST(repetition_penalty_hf) {
    glmv_sampling s;
    sampling(&s);
    s.repetition_penalty = 2.0f;
    float l[5] = {3.0f, 2.5f, -1.0f, 1.0f, 0.0f};
    int32_t hist[] = {0, 2, 0, 0, 4};
    int32_t id = glmv_sample(l, 5, &s, hist, 5, NULL, 0, NULL, wf, wi);
    CHECK_NEAR(l[0], 1.5, 0);  /* once, not three times */
    CHECK_NEAR(l[2], -2.0, 0); /* negative: multiplied */
    CHECK_NEAR(l[1], 2.5, 0);
    CHECK_NEAR(l[4], 0.0, 0);
    CHECK_EQ_INT(id, 1); /* greedy sees the penalised scores */
}

TEST(top_k_one_is_greedy) {
    glmv_sampling s;
    sampling(&s);
    s.do_sample = 1;
    s.top_k = 1;
    s.temperature = 5.0f;
    glmv_rng r;
    glmv_rng_seed(&r, 7);
    for (int t = 0; t < 200; t++) {
        float l[8] = {0.1f, 0.2f, 0.3f, 0.25f, 0.0f, -1.0f, 0.29f, 0.1f};
        CHECK_EQ_INT(glmv_sample(l, 8, &s, NULL, 0, NULL, 0, &r, wf, wi), 2);
    }
}

TEST(top_k_ties_kept) {
    glmv_sampling s;
    sampling(&s);
    s.do_sample = 1;
    s.top_k = 2;
    float l[5] = {1.0f, 3.0f, 2.0f, 2.0f, 0.0f};
    glmv_rng r;
    glmv_rng_seed(&r, 1);
    glmv_sample(l, 5, &s, NULL, 0, NULL, 0, &r, wf, wi);
    CHECK(isinf(l[0]) && l[0] < 0);
    CHECK(isinf(l[4]) && l[4] < 0);
    CHECK(!isinf(l[2]) && !isinf(l[3])); /* both equal to the 2nd value stay, as in HF */
}

TEST(top_p_set) {
    glmv_sampling s;
    sampling(&s);
    s.do_sample = 1;
    s.top_p = 0.75f;
    /* probs .5 .3 .15 .05 -> ascending cumsum .05 .2 .5 1 <= .25: drop .05 and .15 */
    float base[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    glmv_rng r;
    glmv_rng_seed(&r, 3);
    int count[4] = {0};
    for (int t = 0; t < 4000; t++) {
        float l[4];
        memcpy(l, base, sizeof l);
        count[glmv_sample(l, 4, &s, NULL, 0, NULL, 0, &r, wf, wi)]++;
    }
    CHECK_EQ_INT(count[2], 0);
    CHECK_EQ_INT(count[3], 0);
    CHECK_NEAR(count[0] / 4000.0, 0.625, 0.03); /* renormalised 0.5 / 0.8 */
    /* top_p 1e-5 keeps only the best (the official demo setting) */
    s.top_p = 1e-5f;
    for (int t = 0; t < 100; t++) {
        float l[4];
        memcpy(l, base, sizeof l);
        CHECK_EQ_INT(glmv_sample(l, 4, &s, NULL, 0, NULL, 0, &r, wf, wi), 0);
    }
}

TEST(temperature_distribution) {
    glmv_sampling s;
    sampling(&s);
    s.do_sample = 1;
    s.temperature = 0.5f;
    float base[3] = {0.0f, 0.5f, 1.0f};
    double p[3], z = 0;
    for (int i = 0; i < 3; i++) z += p[i] = exp(base[i] / 0.5);
    glmv_rng r;
    glmv_rng_seed(&r, 11);
    int count[3] = {0}, N = 20000;
    for (int t = 0; t < N; t++) {
        float l[3];
        memcpy(l, base, sizeof l);
        count[glmv_sample(l, 3, &s, NULL, 0, NULL, 0, &r, wf, wi)]++;
    }
    for (int i = 0; i < 3; i++) CHECK_NEAR(count[i] / (double)N, p[i] / z, 0.015);
}

TEST(presence_frequency_openai) {
    glmv_sampling s;
    sampling(&s);
    s.presence_penalty = 0.5f;
    s.frequency_penalty = 0.25f;
    float l[6] = {3.0f, 2.9f, 1.0f, -1.0f, 0.0f, 2.0f};
    int32_t hist[] = {5, 5, 5, 0, 0, 0, 3}; /* the prompt (5, 5) and the output (5, 0, 0, 0, 3) */
    int32_t id = glmv_sample(l, 6, &s, hist, 7, hist + 2, 5, NULL, wf, wi);
    CHECK_NEAR(l[0], 3.0 - 0.5 - 3 * 0.25, 1e-6); /* three times in the output */
    CHECK_NEAR(l[5], 2.0 - 0.5 - 1 * 0.25, 1e-6); /* the prompt's two do not count */
    CHECK_NEAR(l[3], -1.0 - 0.5 - 0.25, 1e-6);
    CHECK(l[1] == 2.9f);
    CHECK_NEAR(l[2], 1.0, 0);
    CHECK_EQ_INT(id, 1);
    /* negative values favour repeats; 0 leaves the scores alone */
    float m[3] = {1.0f, 1.5f, 0.0f};
    int32_t out[] = {0, 0};
    s.presence_penalty = -0.2f;
    s.frequency_penalty = -0.2f;
    CHECK_EQ_INT(glmv_sample(m, 3, &s, NULL, 0, out, 2, NULL, wf, wi), 0);
    CHECK_NEAR(m[0], 1.6, 1e-6);
    float z[3] = {1.0f, 1.5f, 0.0f};
    s.presence_penalty = s.frequency_penalty = 0;
    CHECK_EQ_INT(glmv_sample(z, 3, &s, NULL, 0, out, 2, NULL, wf, wi), 1);
    CHECK_NEAR(z[0], 1.0, 0);
}

TEST(seeded) {
    glmv_sampling s;
    sampling(&s);
    s.do_sample = 1;
    int32_t a[64], b[64], c[64];
    glmv_rng r1, r2, r3;
    glmv_rng_seed(&r1, 42);
    glmv_rng_seed(&r2, 42);
    glmv_rng_seed(&r3, 43);
    int diff = 0;
    for (int t = 0; t < 64; t++) {
        float l1[16], l2[16], l3[16];
        for (int i = 0; i < 16; i++) l1[i] = l2[i] = l3[i] = (float)(i % 5) * 0.1f;
        a[t] = glmv_sample(l1, 16, &s, NULL, 0, NULL, 0, &r1, wf, wi);
        b[t] = glmv_sample(l2, 16, &s, NULL, 0, NULL, 0, &r2, wf, wi);
        c[t] = glmv_sample(l3, 16, &s, NULL, 0, NULL, 0, &r3, wf, wi);
        diff += a[t] != c[t];
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(diff > 0);
    double u = 0;
    for (int i = 0; i < 1000; i++) {
        double x = glmv_rng_uniform(&r1);
        CHECK(x >= 0 && x < 1);
        u += x;
    }
    CHECK_NEAR(u / 1000, 0.5, 0.05);
}

/* OpenAI's logit_bias: added before greedy and before the penalties' view */
TEST(logit_bias) {
    glmv_sampling s;
    sampling(&s);
    int32_t ids[2] = {1, 4};
    float vals[2] = {-100.0f, 1.5f};
    s.bias_ids = ids;
    s.bias_values = vals;
    s.n_bias = 2;
    float l[5] = {1.0f, 3.0f, 0.5f, 2.0f, 0.6f};
    CHECK_EQ_INT(glmv_sample(l, 5, &s, NULL, 0, NULL, 0, NULL, wf, wi), 4); /* 0.6 + 1.5 > 2.0 */
    CHECK_NEAR(l[1], -97.0, 1e-6);
    s.n_bias = 1;
    float m[5] = {1.0f, 3.0f, 0.5f, 2.0f, 0.6f};
    CHECK_EQ_INT(glmv_sample(m, 5, &s, NULL, 0, NULL, 0, NULL, wf, wi), 3); /* 1 is banned */
}

/* min-p keeps exactly the ids with p >= min_p x p_max */
TEST(min_p_set) {
    glmv_sampling s;
    sampling(&s);
    s.do_sample = 1;
    s.min_p = 0.3f;
    glmv_rng r;
    glmv_rng_seed(&r, 3);
    int count[4] = {0};
    for (int t = 0; t < 4000; t++) {
        /* p ∝ 8, 4, 2, 1: 4/8 and 2/8 = 0.25 < 0.3? no: 0.5 kept, 0.25 and 0.125 dropped */
        float l[4] = {logf(8), logf(4), logf(2), logf(1)};
        count[glmv_sample(l, 4, &s, NULL, 0, NULL, 0, &r, wf, wi)]++;
    }
    CHECK(count[2] == 0 && count[3] == 0);
    CHECK_NEAR(count[0] / 4000.0, 2.0 / 3.0, 0.03); /* renormalised over {8, 4} */
    s.min_p = 0.0f;
    memset(count, 0, sizeof count);
    for (int t = 0; t < 4000; t++) {
        float l[4] = {logf(8), logf(4), logf(2), logf(1)};
        count[glmv_sample(l, 4, &s, NULL, 0, NULL, 0, &r, wf, wi)]++;
    }
    CHECK(count[3] > 0);
}

/* log-probabilities: log-softmax, the top ids best first, ties by the lower id */
TEST(logprobs_top) {
    float l[6] = {1.0f, 3.0f, -2.0f, 3.0f, 0.0f, 2.0f};
    glmv_logprob lp;
    memset(&lp, 0, sizeof lp);
    float lse = glmv_logprobs_top(l, 6, 4, &lp);
    double sum = 0;
    for (int i = 0; i < 6; i++) sum += exp((double)l[i]);
    CHECK_NEAR(lse, log(sum), 1e-5);
    CHECK_EQ_INT(lp.n_top, 4);
    int want[4] = {1, 3, 5, 0};
    for (int j = 0; j < 4; j++) {
        CHECK_EQ_INT(lp.top_ids[j], want[j]);
        CHECK_NEAR(lp.top_logprobs[j], l[want[j]] - log(sum), 1e-5);
    }
    CHECK(glmv_logprobs_top(l, 6, 0, &lp) > 0 && lp.n_top == 0);
    CHECK(glmv_logprobs_top(l, 6, 50, &lp) > 0 && lp.n_top == 6);
}

/* temperatures at the edge of float: greedy, never NaN */
TEST(tiny_temperature_is_greedy) {
    glmv_sampling s;
    sampling(&s);
    s.do_sample = 1;
    glmv_rng r;
    glmv_rng_seed(&r, 9);
    const float temps[3] = {1e-38f, 1e-45f, 0.0f};
    for (int k = 0; k < 3; k++)
        for (int t = 0; t < 50; t++) {
            float l[5] = {0.1f, 2.0f, 1.999f, -3.0f, 2.0f - 1e-6f};
            s.temperature = temps[k];
            CHECK_EQ_INT(glmv_sample(l, 5, &s, NULL, 0, NULL, 0, &r, wf, wi), 1);
        }
}

/* the warpers as transformers writes them (a full ascending sort for each), to check the
 * one-pass top-k and the top-p that sorts only what top-k left against */
static int asc_cmp(const void *a, const void *b, void *ctx) {
    const float *v = ctx;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    return v[i] < v[j] ? -1 : v[i] > v[j] ? 1 : i < j ? 1 : i > j ? -1 : 0;
}

static void ref_warp(float *l, int V, int k, float p) {
    int32_t *ix = malloc(sizeof(int32_t) * (size_t)V);
    if (k > 0 && k < V) {
        for (int i = 0; i < V; i++) ix[i] = i;
        qsort_r(ix, (size_t)V, sizeof(int32_t), asc_cmp, l);
        float kth = l[ix[V - k]];
        for (int i = 0; i < V; i++)
            if (l[i] < kth) l[i] = -INFINITY;
    }
    if (p > 0 && p < 1) {
        for (int i = 0; i < V; i++) ix[i] = i;
        qsort_r(ix, (size_t)V, sizeof(int32_t), asc_cmp, l);
        float mx = l[ix[V - 1]];
        double sum = 0, cum = 0;
        for (int i = 0; i < V; i++) sum += exp((double)l[i] - mx);
        for (int r = 0; r < V - 1; r++) {
            cum += exp((double)l[ix[r]] - mx) / sum;
            if (cum <= 1.0 - (double)p) l[ix[r]] = -INFINITY;
            else break;
        }
    }
    free(ix);
}

TEST(top_k_top_p_fast_paths) {
    enum { V = 5000 };
    static float a[V], b[V], w[V];
    static int32_t wi2[V];
    const int ks[] = {0, 1, 2, 3, 40, 64, 65, 300};
    const float ps[] = {1.0f, 1e-5f, 0.3f, 0.9f};
    srand(7);
    int checked = 0;
    for (int t = 0; t < 6; t++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++) {
                for (int i = 0; i < V; i++) { /* coarse values: many ties; some already -inf */
                    a[i] = (float)(rand() % (t % 2 ? 50 : 2000)) / 16.0f;
                    if (t >= 4 && rand() % 3 == 0) a[i] = -INFINITY;
                }
                memcpy(b, a, sizeof a);
                glmv_sampling s;
                sampling(&s);
                s.do_sample = 1;
                s.top_k = ks[ki];
                s.top_p = ps[pi];
                glmv_rng r1, r2;
                glmv_rng_seed(&r1, 1000 + t);
                glmv_rng_seed(&r2, 1000 + t);
                int32_t got = glmv_sample(a, V, &s, NULL, 0, NULL, 0, &r1, w, wi2);
                ref_warp(b, V, ks[ki], ps[pi]);
                CHECK_MSG(!memcmp(a, b, sizeof a), "t %d top_k %d top_p %g: kept set differs", t, ks[ki],
                          ps[pi]);
                /* the draw from what is left, as glmv_sample makes it */
                s.top_k = 0;
                s.top_p = 1.0f;
                int32_t want = glmv_sample(b, V, &s, NULL, 0, NULL, 0, &r2, w, wi2);
                CHECK_EQ_INT(got, want);
                checked++;
            }
    printf("  %d cases\n", checked);
}

/* Sampling from a row's best logits (what a decode step reads from the backend) picks what
 * sampling from the whole row picks, the same random draws included, whenever the best hold
 * every tie of the top-k-th (glmv_top_covers); rows with ties reaching past them are told
 * apart; what needs the whole row is refused (glmv_sample_top_t). */
TEST(sample_from_best_logits) {
    enum { V = 3000 };
    static float row[V], a[V], w[V];
    static int32_t wi2[V];
    struct { int sample, top_k; float temp, top_p, min_p; } cs[] = {
        {0, 0, 1, 1, 0},     {1, 1, 1, 1, 0},      {1, 2, 1, 1e-5f, 0}, {1, 2, 0.6f, 1, 0},
        {1, 40, 1.3f, 0.95f, 0.02f}, {1, 63, 1, 0.9f, 0}, {1, 5, 0.7f, 0.5f, 0.1f}, {1, 62, 0.7f, 1, 0},
        {1, 60, 1.7f, 1, 0}};
    srand(11);
    int same = 0, told = 0, refused_ok = 1;
    for (int t = 0; t < 40; t++) {
        /* coarse values (ties), some -inf, -0 and +0; every 4th row 70 ties at the maximum */
        for (int i = 0; i < V; i++) {
            row[i] = (float)(rand() % (t % 2 ? 60 : 3000)) / 8.0f - 100.0f;
            if (rand() % 7 == 0) row[i] = -INFINITY;
        }
        row[rand() % V] = 0.0f;
        row[rand() % V] = -0.0f;
        if (t % 4 == 3)
            for (int j = 0; j < 70; j++) row[(j * 41 + t) % V] = 300.0f;
        if (t % 4 == 1 || t % 4 == 2) { /* values an ulp apart, which the temperature's rounding makes equal */
            row[0] = 0.1f + (float)t * 1e-6f; /* where the rounding's groups fall moves from row to row */
            for (int i = 1; i < V; i++) row[i] = nextafterf(row[i - 1], 1.0f);
            row[V / 2] = 0.5f;
        }
        glmv_top top;
        top.k = top.n = GLMV_TOP_MAX;
        glmv_ref_top_k(top.logit, top.id, row, 1, V, GLMV_TOP_MAX);
        for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
            glmv_sampling s;
            sampling(&s);
            s.do_sample = cs[c].sample;
            s.top_k = cs[c].top_k;
            s.temperature = cs[c].temp;
            s.top_p = cs[c].top_p;
            s.min_p = cs[c].min_p;
            int k = glmv_sample_top_k(&s, V), tt = cs[c].sample ? cs[c].top_k : 0;
            CHECK_EQ_INT(k, cs[c].sample ? GLMV_TOP_MAX : 1);
            glmv_top tk = top;
            tk.n = k;
            if (!glmv_top_covers(&tk, &s)) { /* a tie of the top-k-th (after the temperature) may lie past */
                float l = tk.logit[tk.n - 1], kth = tk.logit[tt - 1], mx = tk.logit[0];
                if (s.temperature != 1.0f) l = (l - mx) / s.temperature, kth = (kth - mx) / s.temperature;
                CHECK_MSG(tt > 0 && l == kth, "row %d case %zu: refused wrongly", t, c);
                told++;
                continue;
            }
            for (int seed = 0; seed < 4; seed++) {
                glmv_rng r1, r2;
                glmv_rng_seed(&r1, 100 + seed);
                glmv_rng_seed(&r2, 100 + seed);
                memcpy(a, row, sizeof row);
                int32_t want = glmv_sample(a, V, &s, NULL, 0, NULL, 0, &r1, w, wi2);
                int32_t got = glmv_sample_top(&tk, V, &s, &r2);
                CHECK_MSG(got == want, "row %d case %zu seed %d: %d from the best, %d from the row", t, c, seed, got, want);
                CHECK(glmv_rng_uniform(&r1) == glmv_rng_uniform(&r2)); /* the same draws taken */
                same++;
            }
        }
    }
    /* what moves logits of any id, or samples beyond the best, needs the whole row */
    glmv_sampling s;
    sampling(&s);
    s.repetition_penalty = 1.1f;
    refused_ok &= glmv_sample_top_k(&s, V) == 0;
    sampling(&s);
    s.presence_penalty = 0.5f;
    refused_ok &= glmv_sample_top_k(&s, V) == 0;
    sampling(&s);
    int32_t bid = 5;
    float bv = 3;
    s.bias_ids = &bid;
    s.bias_values = &bv;
    s.n_bias = 1;
    refused_ok &= glmv_sample_top_k(&s, V) == 0;
    sampling(&s);
    s.do_sample = 1; /* no top-k: the whole softmax */
    refused_ok &= glmv_sample_top_k(&s, V) == 0;
    s.top_k = GLMV_TOP_MAX;
    refused_ok &= glmv_sample_top_k(&s, V) == 0;
    s.top_k = 3;
    refused_ok &= glmv_sample_top_k(&s, 40) == 0; /* a vocabulary smaller than the best asked */
    CHECK(refused_ok);
    printf("  %d picks the same, %d rows with ties past the best told apart\n", same, told);
    CHECK(same >= 500 && told >= 10);
}

int main(void) {
    RUN(greedy_first_max);
    RUN(tiny_temperature_is_greedy);
    RUN(logit_bias);
    RUN(min_p_set);
    RUN(logprobs_top);
    RUN(repetition_penalty_hf);
    RUN(presence_frequency_openai);
    RUN(top_k_one_is_greedy);
    RUN(top_k_ties_kept);
    RUN(top_p_set);
    RUN(top_k_top_p_fast_paths);
    RUN(temperature_distribution);
    RUN(seeded);
    RUN(sample_from_best_logits);
    return test_summary("sample");
}
