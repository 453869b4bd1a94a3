/* image.c -- from decoded RGB to the vision tower's patch rows, exactly as
 * transformers 5.x Glm4vImageProcessor (the torchvision backend) does it:
 * smart_resize (GLM4V.md §6.1) -> bicubic antialiased uint8 resize, the
 * integer kernel torch runs on CPU for uint8 tensors (int16 weights,
 * horizontal then vertical pass, clamp to u8 in between) -> fused
 * (u8 - 255*mean) / (255*std) in fp32 -> patch rows in merge-block order
 * (§5.1, §6.3). Decoding lives in image_decode.c. Nothing here touches the
 * model; the resize runs on a few threads for big images.
 */
#include "image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

void glmv_rgb_free(glmv_rgb *im) {
    if (!im) return;
    free(im->rgb);
    im->rgb = NULL;
    im->w = im->h = 0;
}

void glmv_image_params_default(glmv_image_params *p) {
    memset(p, 0, sizeof(*p));
    p->patch_size = 14;
    p->temporal_patch_size = 2;
    p->merge_size = 2;
    p->min_pixels = 112 * 112;                         /* size.shortest_edge */
    p->max_pixels = (int64_t)14 * 14 * 2 * 2 * 2 * 6144; /* size.longest_edge */
    p->mean[0] = 0.48145466f, p->mean[1] = 0.4578275f, p->mean[2] = 0.40821073f;
    p->std[0] = 0.26862954f, p->std[1] = 0.26130258f, p->std[2] = 0.27577711f;
    p->rescale_factor = 1.0 / 255.0;
}

int64_t glmv_image_tokens_to_pixels(int64_t tokens, const glmv_image_params *p) {
    /* one LLM token = a merge x merge block of patch x patch pixels; smart_resize
     * counts an image as temporal_patch_size frames */
    int64_t f = (int64_t)p->patch_size * p->merge_size;
    return tokens * f * f * p->temporal_patch_size;
}

int glmv_image_apply_token_limits(glmv_image_params *p, int64_t min_tokens, int64_t max_tokens,
                                  char *err) {
    if (min_tokens < 0 || max_tokens < 0)
        return glmv_errf(err, "image token limits must be >= 0 (min %lld, max %lld)",
                         (long long)min_tokens, (long long)max_tokens);
    if (min_tokens > 0 && max_tokens > 0 && min_tokens > max_tokens)
        return glmv_errf(err, "--min-image-tokens %lld is above --max-image-tokens %lld",
                         (long long)min_tokens, (long long)max_tokens);
    if (max_tokens > 100000000 || min_tokens > 100000000)
        return glmv_errf(err, "image token limit too large (max 100000000)");
    if (min_tokens > 0 && max_tokens == 0 &&
        glmv_image_tokens_to_pixels(min_tokens, p) > p->max_pixels) {
        /* it used to be lowered to the maximum silently: say so instead */
        int64_t cap = p->max_pixels / glmv_image_tokens_to_pixels(1, p);
        return glmv_errf(err, "--min-image-tokens %lld is above the checkpoint's maximum of %lld tokens "
                         "per image (raise it with --max-image-tokens)",
                         (long long)min_tokens, (long long)cap);
    }
    if (min_tokens > 0) p->min_pixels = glmv_image_tokens_to_pixels(min_tokens, p);
    if (max_tokens > 0) p->max_pixels = glmv_image_tokens_to_pixels(max_tokens, p);
    if (p->min_pixels > p->max_pixels) p->min_pixels = p->max_pixels;
    return 0;
}

/* ---------------------------------------------------------------- smart_resize
 * ref: transformers models/glm4v/image_processing_glm4v.py smart_resize.
 * Python's round() is half-to-even: nearbyint() under the default rounding
 * mode. All float64, like Python. */
int glmv_smart_resize(int n_frames, int h, int w, int factor, int64_t min_pixels,
                      int64_t max_pixels, int *out_h, int *out_w, char *err) {
    const int tf = 2; /* temporal_factor */
    if (h <= 0 || w <= 0 || factor <= 0)
        return glmv_errf(err, "smart_resize: bad size %dx%d (factor %d)", w, h, factor);
    if (n_frames < tf)
        return glmv_errf(err, "smart_resize: t:%d must be larger than temporal_factor:%d",
                         n_frames, tf);
    double hh = h, ww = w;
    if (h < factor || w < factor) {
        double s = fmax((double)factor / h, (double)factor / w);
        hh = trunc(h * s);
        ww = trunc(w * s);
        if (hh < 1 || ww < 1)
            return glmv_errf(err, "image %dx%d: too thin to resize (aspect ratio > 200)", w, h);
    }
    double ratio = fmax(hh, ww) / fmin(hh, ww);
    if (ratio > 200)
        return glmv_errf(err, "image %dx%d: aspect ratio %.1f is above the limit of 200", w, h,
                         ratio);
    double hb = nearbyint(hh / factor) * factor;
    double wb = nearbyint(ww / factor) * factor;
    double tb = nearbyint((double)n_frames / tf) * tf;
    if (tb * hb * wb > (double)max_pixels) {
        double beta = sqrt(((double)n_frames * hh * ww) / (double)max_pixels);
        hb = fmax(factor, floor(hh / beta / factor) * factor);
        wb = fmax(factor, floor(ww / beta / factor) * factor);
    } else if (tb * hb * wb < (double)min_pixels) {
        double beta = sqrt((double)min_pixels / ((double)n_frames * hh * ww));
        hb = ceil(hh * beta / factor) * factor;
        wb = ceil(ww * beta / factor) * factor;
    }
    if (hb < factor || wb < factor || hb > 1e6 || wb > 1e6)
        return glmv_errf(err, "image %dx%d: resized size %.0fx%.0f out of range", w, h, wb, hb);
    *out_h = (int)hb;
    *out_w = (int)wb;
    return 0;
}

/* ---------------------------------------------------------------- resize
 * ref: aten/src/ATen/native/cpu/UpSampleKernel.cpp, HelperInterpBase::
 * _compute_indices_min_size_weights_aa and _compute_index_ranges_int16_weights
 * (the weights), ImagingResampleHorizontal/Vertical in UpSampleKernelAVXAntialias.h
 * (the integer sums). Weights are computed in double exactly as there, then
 * scaled to int16 with a precision chosen from the largest weight; each output
 * is clamp((sum + 2^(prec-1)) >> prec). Integer sums make it bit-exact. */

typedef struct {
    int out, ksize, prec;
    int *xmin, *xsize;          /* [out] */
    int16_t *k;                 /* [out, ksize] */
} resize_coeffs;

static double aa_cubic(double x) {
    const double a = -0.5; /* Keys cubic, as Pillow */
    x = fabs(x);
    if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0.0;
}

static void coeffs_free(resize_coeffs *c) {
    free(c->xmin);
    free(c->xsize);
    free(c->k);
    memset(c, 0, sizeof(*c));
}

static int coeffs_make(int in, int out, resize_coeffs *c, char *err) {
    memset(c, 0, sizeof(*c));
    double scale = (double)in / out;
    double support = scale >= 1.0 ? (4 * 0.5) * scale : 4 * 0.5;
    int ks = (int)ceil(support) * 2 + 1;
    double *w = malloc(sizeof(double) * (size_t)out * ks);
    c->xmin = malloc(sizeof(int) * (size_t)out);
    c->xsize = malloc(sizeof(int) * (size_t)out);
    c->k = malloc(sizeof(int16_t) * (size_t)out * ks);
    if (!w || !c->xmin || !c->xsize || !c->k) {
        free(w);
        coeffs_free(c);
        return glmv_errf(err, "resize: out of memory for %d weights", out);
    }
    c->out = out;
    c->ksize = ks;
    double wt_max = 0.0;
    for (int i = 0; i < out; i++) {
        double *wi = w + (size_t)i * ks;
        double center = scale * (i + 0.5);
        double total = 0.0;
        double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
        int64_t xmin = (int64_t)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int64_t xend = (int64_t)(center + support + 0.5);
        if (xend > in) xend = in;
        int64_t xsize = xend - xmin;
        if (xsize < 0) xsize = 0;
        if (xsize > ks) xsize = ks;
        int64_t j = 0;
        for (; j < xsize; j++) {
            double v = aa_cubic(((double)(j + xmin) - center + 0.5) * invscale);
            wi[j] = v;
            total += v;
        }
        if (total != 0.0) {
            for (j = 0; j < xsize; j++) {
                wi[j] /= total;
                if (wi[j] > wt_max) wt_max = wi[j];
            }
        }
        for (; j < ks; j++) wi[j] = 0.0;
        c->xmin[i] = (int)xmin;
        c->xsize[i] = (int)xsize;
    }
    int prec;
    for (prec = 0; prec < 22; prec++) {
        int next = (int)(0.5 + wt_max * (1 << (prec + 1)));
        if (next >= (1 << 15)) break;
    }
    c->prec = prec;
    for (size_t i = 0; i < (size_t)out * ks; i++) {
        double v = w[i] * (1 << prec);
        c->k[i] = (int16_t)(v < 0 ? (int)(-0.5 + v) : (int)(0.5 + v));
    }
    free(w);
    if (prec < 1) {
        coeffs_free(c);
        return glmv_errf(err, "resize %d -> %d: degenerate weights", in, out);
    }
    return 0;
}

static inline uint8_t clip8(int32_t v, int prec) {
    v >>= prec;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

typedef struct {
    const uint8_t *src;
    uint8_t *dst;
    int src_w, dst_w;           /* pixels per row */
    const resize_coeffs *c;
    int row0, row1;             /* rows of dst to produce */
    int src_row_off;            /* horizontal: src row = dst row + off */
} resize_job;

/* Horizontal pass: rows [row0,row1) of dst from the same rows of src. The
 * SSE2 path takes two taps per step: the bytes of pixels x and x+1 are
 * interleaved to (r0 r1 g0 g1 b0 b1 ..) as int16 and _mm_madd_epi16 with
 * (k0 k1) gives the three channel sums; exact integer arithmetic, so it
 * matches the scalar loop bit for bit. */
static void *horiz_worker(void *arg) {
    const resize_job *j = arg;
    const resize_coeffs *c = j->c;
    const int32_t half = (int32_t)1 << (c->prec - 1);
    for (int y = j->row0; y < j->row1; y++) {
        const uint8_t *s = j->src + (size_t)(y + j->src_row_off) * j->src_w * 3;
        uint8_t *d = j->dst + (size_t)y * j->dst_w * 3;
        for (int x = 0; x < c->out; x++) {
            const int16_t *k = c->k + (size_t)x * c->ksize;
            const int x0 = c->xmin[x], n = c->xsize[x];
            const uint8_t *p = s + (size_t)x0 * 3;
            int32_t r = half, g = half, b = half;
            int t = 0;
#ifdef __SSE2__
            /* a pair (t, t+1) reads 4 bytes at pixel t+1, i.e. into pixel t+2 */
            const int npair = x0 + n + 1 <= j->src_w - 1 ? n / 2 : (j->src_w - 2 - x0) / 2;
            if (npair > 0) {
                __m128i acc = _mm_setzero_si128();
                const __m128i zero = _mm_setzero_si128();
                for (int q = 0; q < npair; q++, t += 2) {
                    int32_t a32, b32;
                    memcpy(&a32, p + 3 * t, 4);
                    memcpy(&b32, p + 3 * t + 3, 4);
                    __m128i v = _mm_unpacklo_epi8(_mm_cvtsi32_si128(a32), _mm_cvtsi32_si128(b32));
                    v = _mm_unpacklo_epi8(v, zero);
                    int32_t kk = (int32_t)((uint32_t)(uint16_t)k[t] | (uint32_t)(uint16_t)k[t + 1] << 16);
                    acc = _mm_add_epi32(acc, _mm_madd_epi16(v, _mm_set1_epi32(kk)));
                }
                int32_t lane[4];
                _mm_storeu_si128((__m128i *)lane, acc);
                r += lane[0], g += lane[1], b += lane[2];
            }
#endif
            for (; t < n; t++) {
                r += p[3 * t + 0] * k[t];
                g += p[3 * t + 1] * k[t];
                b += p[3 * t + 2] * k[t];
            }
            d[3 * x + 0] = clip8(r, c->prec);
            d[3 * x + 1] = clip8(g, c->prec);
            d[3 * x + 2] = clip8(b, c->prec);
        }
    }
    return NULL;
}

/* Vertical pass: rows [row0,row1) of dst; src rows are relative to
 * src_row_off (the first source row the horizontal pass produced). SSE2:
 * two source rows per step, interleaved to int16 pairs for _mm_madd_epi16. */
static void *vert_worker(void *arg) {
    const resize_job *j = arg;
    const resize_coeffs *c = j->c;
    const int32_t half = (int32_t)1 << (c->prec - 1);
    const int n3 = j->dst_w * 3;
    int32_t *acc = malloc(sizeof(int32_t) * ((size_t)n3 + 16));
    if (!acc) return (void *)1;
    for (int y = j->row0; y < j->row1; y++) {
        const int16_t *k = c->k + (size_t)y * c->ksize;
        const uint8_t *s = j->src + (size_t)(c->xmin[y] - j->src_row_off) * n3;
        const int n = c->xsize[y];
        for (int i = 0; i < n3; i++) acc[i] = half;
        int t = 0;
#ifdef __SSE2__
        const __m128i zero = _mm_setzero_si128();
        for (; t + 1 < n; t += 2) {
            const uint8_t *r0 = s + (size_t)t * n3, *r1 = r0 + n3;
            const __m128i kk = _mm_set1_epi32(
                (int32_t)((uint32_t)(uint16_t)k[t] | (uint32_t)(uint16_t)k[t + 1] << 16));
            int i = 0;
            for (; i + 16 <= n3; i += 16) {
                __m128i a = _mm_loadu_si128((const __m128i *)(r0 + i));
                __m128i b = _mm_loadu_si128((const __m128i *)(r1 + i));
                __m128i lo = _mm_unpacklo_epi8(a, b), hi = _mm_unpackhi_epi8(a, b);
                __m128i p0 = _mm_unpacklo_epi8(lo, zero), p1 = _mm_unpackhi_epi8(lo, zero);
                __m128i p2 = _mm_unpacklo_epi8(hi, zero), p3 = _mm_unpackhi_epi8(hi, zero);
                __m128i *o = (__m128i *)(acc + i);
                _mm_storeu_si128(o + 0, _mm_add_epi32(_mm_loadu_si128(o + 0), _mm_madd_epi16(p0, kk)));
                _mm_storeu_si128(o + 1, _mm_add_epi32(_mm_loadu_si128(o + 1), _mm_madd_epi16(p1, kk)));
                _mm_storeu_si128(o + 2, _mm_add_epi32(_mm_loadu_si128(o + 2), _mm_madd_epi16(p2, kk)));
                _mm_storeu_si128(o + 3, _mm_add_epi32(_mm_loadu_si128(o + 3), _mm_madd_epi16(p3, kk)));
            }
            for (; i < n3; i++) acc[i] += r0[i] * k[t] + r1[i] * k[t + 1];
        }
#endif
        for (; t < n; t++) {
            const uint8_t *row = s + (size_t)t * n3;
            const int32_t kt = k[t];
            for (int i = 0; i < n3; i++) acc[i] += row[i] * kt;
        }
        uint8_t *d = j->dst + (size_t)y * n3;
        for (int i = 0; i < n3; i++) d[i] = clip8(acc[i], c->prec);
    }
    free(acc);
    return NULL;
}

static int n_threads_for(int64_t work) {
    static volatile int ncpu; /* a benign race: every thread computes the same value */
    if (!ncpu) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        ncpu = n < 1 ? 1 : n > 32 ? 32 : (int)n;
    }
    int lim = ncpu;
    const char *e = getenv("GLMV_IMAGE_THREADS");
    if (e && atoi(e) > 0) lim = atoi(e) > 32 ? 32 : atoi(e);
    int64_t t = work / 2000000 + 1; /* ~2M multiply-adds per thread at least */
    return (int)(t < lim ? t : lim);
}

/* Split rows [0,rows) over threads running fn; returns 0 or -1. */
static int run_rows(void *(*fn)(void *), resize_job base, int rows, int64_t work_per_row) {
    int nt = n_threads_for(work_per_row * rows);
    if (nt > rows) nt = rows;
    if (nt <= 1) {
        base.row0 = 0;
        base.row1 = rows;
        return fn(&base) ? -1 : 0;
    }
    resize_job jobs[32];
    for (int i = 0; i < nt; i++) {
        jobs[i] = base;
        jobs[i].row0 = (int)((int64_t)rows * i / nt);
        jobs[i].row1 = (int)((int64_t)rows * (i + 1) / nt);
    }
    return glmv_run_jobs(fn, jobs, sizeof *jobs, nt);
}

int glmv_image_resize(const glmv_rgb *src, int out_w, int out_h, glmv_rgb *dst, char *err) {
    memset(dst, 0, sizeof(*dst));
    if (!src || !src->rgb || src->w <= 0 || src->h <= 0)
        return glmv_errf(err, "resize: empty source image");
    if (out_w <= 0 || out_h <= 0 || (int64_t)out_w * out_h > ((int64_t)1 << 31))
        return glmv_errf(err, "resize: bad target size %dx%d", out_w, out_h);
    size_t out_bytes = glmv_mul_size(glmv_mul_size((size_t)out_w, (size_t)out_h), 3);
    dst->rgb = malloc(out_bytes);
    if (!dst->rgb) return glmv_errf(err, "resize: out of memory for %dx%d", out_w, out_h);
    dst->w = out_w;
    dst->h = out_h;
    if (out_w == src->w && out_h == src->h) {
        memcpy(dst->rgb, src->rgb, out_bytes);
        return 0;
    }
    resize_coeffs ch = {0}, cv = {0};
    uint8_t *tmp = NULL;
    int rc = -1;
    const uint8_t *cur = src->rgb;
    int cur_w = src->w, row_off = 0;
    if (out_h != src->h && coeffs_make(src->h, out_h, &cv, err)) goto done;
    if (out_w != src->w) {
        if (coeffs_make(src->w, out_w, &ch, err)) goto done;
        /* only the source rows the vertical pass reads */
        int y0 = 0, y1 = src->h;
        if (out_h != src->h) {
            y0 = cv.xmin[0];
            y1 = cv.xmin[out_h - 1] + cv.xsize[out_h - 1];
        }
        uint8_t *hdst = out_h == src->h ? dst->rgb : NULL;
        if (!hdst) {
            tmp = malloc(glmv_mul_size(glmv_mul_size((size_t)out_w, (size_t)(y1 - y0)), 3));
            if (!tmp) {
                glmv_errf(err, "resize: out of memory for %dx%d", out_w, y1 - y0);
                goto done;
            }
            hdst = tmp;
        }
        resize_job j = {.src = src->rgb, .dst = hdst, .src_w = src->w, .dst_w = out_w, .c = &ch,
                        .src_row_off = y0};
        if (run_rows(horiz_worker, j, y1 - y0, (int64_t)out_w * ch.ksize * 3)) {
            glmv_errf(err, "resize: out of memory");
            goto done;
        }
        cur = hdst;
        cur_w = out_w;
        row_off = y0;
    }
    if (out_h != src->h) {
        resize_job j = {.src = cur, .dst = dst->rgb, .src_w = cur_w, .dst_w = out_w, .c = &cv,
                        .src_row_off = row_off};
        if (run_rows(vert_worker, j, out_h, (int64_t)out_w * cv.ksize * 3)) {
            glmv_errf(err, "resize: out of memory");
            goto done;
        }
    }
    rc = 0;
done:
    free(tmp);
    coeffs_free(&ch);
    coeffs_free(&cv);
    if (rc) glmv_rgb_free(dst);
    return rc;
}

/* ---------------------------------------------------------------- patchify
 * ref: Glm4vImageProcessor._rescale_and_normalize (fused: mean and std are
 * fp32 tensors multiplied by 1/rescale_factor in fp32, then (x - m) / s in
 * fp32) and Glm4vImageProcessor.patchify. The rows are made as the pixels'
 * bytes (a quarter of the floats' memory, hashed and copied to a device as
 * they are) and widened through the channel's table where they are used
 * (glmv_patch_expand, or a device kernel); glmv_patchify does both here. */
void glmv_patch_lut_init(const glmv_image_params *p, glmv_patch_lut *lut) {
    /* the fused constants: fp32(mean) * fp32(1/rescale), rounded to fp32 */
    float inv = (float)(1.0 / p->rescale_factor);
    for (int c = 0; c < 3; c++) {
        const float m = p->mean[c] * inv, sd = p->std[c] * inv;
        for (int v = 0; v < 256; v++) lut->v[c][v] = ((float)v - m) / sd;
    }
}

void glmv_patch_expand(const uint8_t *rows8, int64_t n, int64_t ch, const glmv_patch_lut *lut, float *out) {
    for (int64_t i0 = 0; i0 < n; i0 += ch) {
        const float *t = lut->v[(i0 / ch) % 3];
        const int64_t e = GLMV_MIN(n, i0 + ch);
        for (int64_t i = i0; i < e; i++) out[i] = t[rows8[i]];
    }
}

typedef struct {
    const glmv_rgb *frames;
    int n_frames, ps, tp, ms, gh, gw;
    uint8_t *rows;
    int ph0, ph1;               /* patch rows [ph0, ph1) of every temporal group */
} patch_job;

/* n bytes; the checkpoint's 14 as two overlapping 8-byte moves (not a call of memcpy) */
static inline void copy_run(uint8_t *d, const uint8_t *s, int n) {
    if (n == 14) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + 6, 8);
        memcpy(d, &a, 8);
        memcpy(d + 6, &b, 8);
    } else {
        memcpy(d, s, (size_t)n);
    }
}

/* For each image row: split it once into planes (c, x), then copy 14-byte
 * runs to the patch rows that hold them, for each temporal slot that uses
 * this frame. */
static void *patch_worker(void *arg) {
    const patch_job *j = arg;
    const int ps = j->ps, tp = j->tp, ms = j->ms, w = j->frames[0].w;
    const int gt = (j->n_frames + tp - 1) / tp;
    const int64_t row_len = (int64_t)3 * tp * ps * ps;
    uint8_t *nr = malloc(3 * (size_t)w);
    if (!nr) return (void *)1;
    for (int t = 0; t < gt; t++)
        for (int tt = 0; tt < tp;) {
            /* slots tt .. tt+span-1 show the same frame (an image: both) */
            int f = GLMV_MIN(t * tp + tt, j->n_frames - 1), span = 1;
            while (tt + span < tp && GLMV_MIN(t * tp + tt + span, j->n_frames - 1) == f) span++;
            const uint8_t *img = j->frames[f].rgb;
            for (int ph = j->ph0; ph < j->ph1; ph++)
                for (int i = 0; i < ps; i++) {
                    const uint8_t *px = img + (size_t)(ph * ps + i) * w * 3;
                    for (int c = 0; c < 3; c++) {
                        uint8_t *o = nr + (size_t)c * w;
                        for (int x = 0; x < w; x++) o[x] = px[3 * x + c];
                    }
                    for (int pw = 0; pw < j->gw; pw++) {
                        int64_t r = (int64_t)t * j->gh * j->gw +
                                    (((int64_t)(ph / ms) * (j->gw / ms) + pw / ms) * ms + ph % ms) * ms +
                                    pw % ms;
                        uint8_t *row = j->rows + r * row_len;
                        for (int c = 0; c < 3; c++)
                            for (int k = 0; k < span; k++)
                                copy_run(row + (((int64_t)c * tp + tt + k) * ps + i) * ps,
                                         nr + (size_t)c * w + (size_t)pw * ps, ps);
                    }
                }
            tt += span;
        }
    free(nr);
    return NULL;
}

int glmv_patchify_u8(const glmv_rgb *frames, int n_frames, const glmv_image_params *p, uint8_t *rows,
                     char *err) {
    const int ps = p->patch_size, tp = p->temporal_patch_size, ms = p->merge_size;
    if (n_frames < 1 || ps < 1 || tp < 1 || ms < 1)
        return glmv_errf(err, "patchify: bad parameters (frames %d, patch %d)", n_frames, ps);
    const int w = frames[0].w, h = frames[0].h;
    if (w <= 0 || h <= 0 || w % (ps * ms) || h % (ps * ms))
        return glmv_errf(err, "patchify: %dx%d is not a multiple of %d", w, h, ps * ms);
    for (int f = 1; f < n_frames; f++)
        if (frames[f].w != w || frames[f].h != h)
            return glmv_errf(err, "patchify: frame %d is %dx%d, frame 0 is %dx%d", f, frames[f].w,
                             frames[f].h, w, h);
    patch_job base = {.frames = frames, .n_frames = n_frames, .ps = ps, .tp = tp, .ms = ms,
                      .gh = h / ps, .gw = w / ps, .rows = rows};
    int nt = n_threads_for((int64_t)w * h * 3 * tp);
    if (nt > base.gh) nt = base.gh;
    patch_job jobs[32];
    for (int i = 0; i < nt; i++) {
        jobs[i] = base;
        jobs[i].ph0 = (int)((int64_t)base.gh * i / nt);
        jobs[i].ph1 = (int)((int64_t)base.gh * (i + 1) / nt);
    }
    return glmv_run_jobs(patch_worker, jobs, sizeof *jobs, nt) ? glmv_errf(err, "patchify: out of memory") : 0;
}

int glmv_patchify(const glmv_rgb *frames, int n_frames, const glmv_image_params *p, float *rows,
                  char *err) {
    const int ps = p->patch_size, tp = p->temporal_patch_size;
    if (n_frames < 1 || ps < 1 || tp < 1 || frames[0].w <= 0 || frames[0].h <= 0)
        return glmv_errf(err, "patchify: bad parameters (frames %d, patch %d)", n_frames, ps);
    const int64_t n = (int64_t)((n_frames + tp - 1) / tp) * (frames[0].h / ps) * (frames[0].w / ps) * 3 * tp * ps * ps;
    uint8_t *b = malloc((size_t)GLMV_MAX(n, 1));
    if (!b) return glmv_errf(err, "patchify: out of memory");
    int rc = glmv_patchify_u8(frames, n_frames, p, b, err);
    if (!rc) {
        glmv_patch_lut lut;
        glmv_patch_lut_init(p, &lut);
        glmv_patch_expand(b, n, (int64_t)tp * ps * ps, &lut, rows);
    }
    free(b);
    return rc;
}

int glmv_image_preprocess(const glmv_rgb *img, const glmv_image_params *p, uint8_t **rows,
                          int grid[3], char *err) {
    *rows = NULL;
    int oh, ow;
    if (glmv_smart_resize(p->temporal_patch_size, img->h, img->w, p->patch_size * p->merge_size,
                          p->min_pixels, p->max_pixels, &oh, &ow, err))
        return -1;
    glmv_rgb rs = {0};
    /* already the size (a 1120x1120 image): patchified as it is, not copied first */
    const int same = ow == img->w && oh == img->h;
    if (!same && glmv_image_resize(img, ow, oh, &rs, err)) return -1;
    const int gh = oh / p->patch_size, gw = ow / p->patch_size;
    size_t n = glmv_mul_size(glmv_mul_size((size_t)gh * gw, (size_t)3 * p->temporal_patch_size),
                             (size_t)p->patch_size * p->patch_size);
    uint8_t *out = n == SIZE_MAX ? NULL : glmv_alloc_big(n); /* ~25 MB for a big image */
    if (!out) {
        glmv_rgb_free(&rs);
        return glmv_errf(err, "image %dx%d: out of memory for %dx%d patches", img->w, img->h, gw,
                         gh);
    }
    int rc = glmv_patchify_u8(same ? img : &rs, 1, p, out, err);
    glmv_rgb_free(&rs);
    if (rc) {
        free(out);
        return -1;
    }
    *rows = out;
    grid[0] = 1;
    grid[1] = gh;
    grid[2] = gw;
    return 0;
}
