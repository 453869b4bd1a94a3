/* sample.c -- choosing the next token the way transformers' generate does:
 * RepetitionPenaltyLogitsProcessor over every id of the sequence (prompt and
 * output, each distinct id once: s/p when s > 0, s*p otherwise), OpenAI's
 * presence and frequency penalties over the ids generated so far (as vLLM
 * applies them: s - frequency * count - presence when count > 0), then, only
 * when sampling, TemperatureLogitsWarper, TopKLogitsWarper (ties with the k-th
 * value kept) and TopPLogitsWarper (ascending sort, drop while the cumulative
 * probability <= 1 - top_p, the best token always kept), min-p (ids below min_p
 * times the best probability dropped), then a draw from the softmax with a
 * seeded xoshiro256** generator. Greedy takes the first maximum. OpenAI's
 * logit_bias is added before all of this.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "model.h"

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void glmv_rng_seed(glmv_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(glmv_rng *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

double glmv_rng_uniform(glmv_rng *r) { return (double)(next_u64(r) >> 11) * 0x1.0p-53; }

#define TOPK_SMALL 64 /* top-k up to this from one pass, larger from a sort */

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* ascending by value; ties by index, so the order is deterministic */
static int cmp_asc(const void *a, const void *b, void *ctx) {
    const float *vals = ctx;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    float x = vals[i], y = vals[j];
    if (x < y) return -1;
    if (x > y) return 1;
    return i < j ? 1 : (i > j ? -1 : 0);
}

float glmv_logprobs_top(const float *logits, int V, int k, glmv_logprob *lp) {
    float mx = logits[argmax(logits, V)];
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    float lse = mx + (float)log(sum);
    if (k > GLMV_MAX_TOP_LOGPROBS) k = GLMV_MAX_TOP_LOGPROBS;
    if (k > V) k = V;
    int n = 0; /* insertion into a sorted list of at most k: cheap for k <= 20 */
    for (int i = 0; i < V && k > 0; i++) {
        float x = logits[i];
        if (n == k && !(x > logits[lp->top_ids[n - 1]])) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && x > logits[lp->top_ids[j - 1]]) {
            lp->top_ids[j] = lp->top_ids[j - 1];
            j--;
        }
        lp->top_ids[j] = i;
    }
    lp->n_top = n;
    for (int j = 0; j < n; j++) lp->top_logprobs[j] = logits[lp->top_ids[j]] - lse;
    return lse;
}

/* The warpers and the draw over n logits x of the ids `ids` (ascending; NULL: 0..n-1, the whole
 * row, n = V): every step either works element by element or goes through the ids in order, so
 * that where the ids left out are at -inf after top-k it does over the ids kept what it does
 * over the row. */
static int32_t warp_and_draw(float *x, const int32_t *ids, int n, int V, const glmv_sampling *sp, glmv_rng *rng,
                             float *work_f, int32_t *work_i) {
    /* ref: TemperatureLogitsWarper. The maximum is subtracted first (softmax does not
     * change), so a tiny temperature sends the others to -inf instead of overflowing
     * everything to +-inf and NaN. */
    if (sp->temperature != 1.0f) {
        float mx = x[argmax(x, n)];
        for (int i = 0; i < n; i++) x[i] = (x[i] - mx) / sp->temperature;
    }
    /* ref: TopKLogitsWarper: remove scores < the k-th largest. The k-th largest value
     * (duplicates counted) from one pass keeping the k largest in order when k is small
     * (the official setting is 2), else from a sort: the same value either way, and a
     * sort of the 151,552 logits would cost more than a decode step of the GPU. */
    if (sp->top_k > 0 && sp->top_k < V) {
        float kth;
        if (sp->top_k <= TOPK_SMALL) {
            float top[TOPK_SMALL];
            int have = 0, k = sp->top_k;
            for (int i = 0; i < n; i++) {
                float v = x[i];
                if (have == k && !(v > top[k - 1])) continue;
                int j = have < k ? have++ : k - 1;
                while (j > 0 && v > top[j - 1]) {
                    top[j] = top[j - 1];
                    j--;
                }
                top[j] = v;
            }
            kth = top[k - 1];
        } else {
            memcpy(work_f, x, sizeof(float) * (size_t)n);
            for (int i = 0; i < n; i++) work_i[i] = i;
            qsort_r(work_i, (size_t)n, sizeof(int32_t), cmp_asc, work_f);
            kth = work_f[work_i[n - sp->top_k]];
        }
        for (int i = 0; i < n; i++)
            if (x[i] < kth) x[i] = -INFINITY;
    }
    /* ref: TopPLogitsWarper. Ids already at -inf (top-k, min-p, a bias) sort first and add
     * exactly 0 to the cumulative probability, so only the others are sorted: after top-k
     * that is a handful instead of the whole vocabulary, with the same order and sums. */
    if (sp->top_p > 0 && sp->top_p < 1.0f) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (x[i] != -INFINITY) work_i[m++] = i;
        if (m == 0) /* nothing left to order: as the full sort sees it */
            for (int i = 0; i < n; i++) work_i[m++] = i;
        qsort_r(work_i, (size_t)m, sizeof(int32_t), cmp_asc, x);
        float mx = x[work_i[m - 1]];
        double sum = 0;
        for (int i = 0; i < n; i++) /* exp(-inf) adds exactly 0: not computed */
            if (x[i] != -INFINITY || m == n) sum += exp((double)x[i] - mx);
        double cum = 0;
        for (int r = 0; r < m - 1; r++) { /* the top token is always kept */
            int32_t id = work_i[r];
            cum += exp((double)x[id] - mx) / sum;
            if (cum <= 1.0 - (double)sp->top_p) x[id] = -INFINITY;
            else break;
        }
    }
    /* min-p (as vLLM and llama.cpp): drop what is below min_p x the best probability */
    if (sp->min_p > 0) {
        float top = x[argmax(x, n)];
        float cut = top + logf(sp->min_p); /* p_i >= min_p p_max  <=>  l_i >= l_max + log(min_p) */
        for (int i = 0; i < n; i++)
            if (x[i] < cut) x[i] = -INFINITY;
    }
    /* draw from softmax */
    int32_t best = argmax(x, n);
    float mx = x[best];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += x[i] == -INFINITY ? 0.0 : exp((double)x[i] - mx);
    double u = (rng ? glmv_rng_uniform(rng) : 0.0) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        if (x[i] == -INFINITY) continue;
        acc += exp((double)x[i] - mx);
        if (u < acc) return ids ? ids[i] : i;
    }
    return ids ? ids[best] : best;
}

int32_t glmv_sample(float *logits, int V, const glmv_sampling *sp, const int32_t *hist,
                    int64_t n_hist, const int32_t *out, int64_t n_out, glmv_rng *rng,
                    float *work_f, int32_t *work_i) {
    /* OpenAI's logit_bias: added first, so every later step sees it */
    for (int i = 0; sp && i < sp->n_bias; i++)
        if (sp->bias_ids[i] >= 0 && sp->bias_ids[i] < V) logits[sp->bias_ids[i]] += sp->bias_values[i];
    /* ref: RepetitionPenaltyLogitsProcessor (gather, penalise, scatter: each id once) */
    float p = sp ? sp->repetition_penalty : 1.0f;
    if (p > 0 && p != 1.0f && hist && n_hist > 0) {
        unsigned char *seen = (unsigned char *)work_i; /* V bytes fit in V ints */
        memset(seen, 0, (size_t)V);
        for (int64_t i = 0; i < n_hist; i++) {
            int32_t id = hist[i];
            if (id < 0 || id >= V || seen[id]) continue;
            seen[id] = 1;
            logits[id] = logits[id] < 0 ? logits[id] * p : logits[id] / p;
        }
    }
    /* presence / frequency: count each generated id, then penalise each once */
    float pres = sp ? sp->presence_penalty : 0.0f, freq = sp ? sp->frequency_penalty : 0.0f;
    if ((pres != 0 || freq != 0) && out && n_out > 0) {
        int32_t *count = work_i;
        memset(count, 0, sizeof(int32_t) * (size_t)V);
        for (int64_t i = 0; i < n_out; i++)
            if (out[i] >= 0 && out[i] < V) count[out[i]]++;
        for (int64_t i = 0; i < n_out; i++) {
            int32_t id = out[i];
            if (id < 0 || id >= V || !count[id]) continue;
            logits[id] -= freq * (float)count[id] + pres;
            count[id] = 0;
        }
    }
    /* a temperature that rounds to 0 in float is greedy (dividing by it would make NaN) */
    if (!sp || !sp->do_sample || !(sp->temperature > 0)) return argmax(logits, V);
    return warp_and_draw(logits, NULL, V, V, sp, rng, work_f, work_i);
}


int glmv_sample_top_k(const glmv_sampling *sp, int vocab) {
    if (sp && (sp->n_bias > 0 || (sp->repetition_penalty > 0 && sp->repetition_penalty != 1.0f) ||
               sp->presence_penalty != 0 || sp->frequency_penalty != 0))
        return 0; /* they move logits of any id before the choice */
    if (!sp || !sp->do_sample || !(sp->temperature > 0)) return 1;
    if (sp->top_k <= 0 || sp->top_k >= GLMV_TOP_MAX || sp->top_k >= vocab || GLMV_TOP_MAX > vocab) return 0;
    return GLMV_TOP_MAX;
}

int glmv_top_covers(const glmv_top *t, const glmv_sampling *sp) {
    if (!sp || !sp->do_sample || !(sp->temperature > 0)) return t->n >= 1;
    int k = sp->top_k;
    if (k <= 0 || t->n <= k) return 0;
    for (int j = 0; j < t->n; j++)
        if (t->logit[j] != t->logit[j]) return 0;
    /* anything past the n found is <= the last of them, and stays so through the temperature
     * (warp_and_draw's (x - max) / T, the same floats): below the top-k-th, it is no tie */
    float last = t->logit[t->n - 1], kth = t->logit[k - 1];
    if (sp->temperature != 1.0f) {
        float mx = t->logit[0];
        last = (last - mx) / sp->temperature;
        kth = (kth - mx) / sp->temperature;
    }
    return last < kth;
}

int32_t glmv_sample_top(const glmv_top *t, int vocab, const glmv_sampling *sp, glmv_rng *rng) {
    if (!sp || !sp->do_sample || !(sp->temperature > 0)) return t->id[0]; /* the first maximum */
    float x[GLMV_TOP_MAX], wf[GLMV_TOP_MAX];
    int32_t ids[GLMV_TOP_MAX], wi[GLMV_TOP_MAX];
    int n = 0;
    for (int j = 0; j < t->n && j < GLMV_TOP_MAX; j++) { /* in id order, as the row's loops go */
        int i = n++;
        while (i > 0 && ids[i - 1] > t->id[j]) {
            ids[i] = ids[i - 1];
            x[i] = x[i - 1];
            i--;
        }
        ids[i] = t->id[j];
        x[i] = t->logit[j];
    }
    return warp_and_draw(x, ids, n, vocab, sp, rng, wf, wi);
}
