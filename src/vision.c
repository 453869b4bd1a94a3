/* vision.c -- the GLM-4.1V vision tower and merger (GLM4V.md §5), written
 * once against the op table: patch embedding as a matmul over the Conv3d
 * kernel's [Hv, 3*T*P*P] view, post-conv RMSNorm, the learned position table
 * resampled bicubically on the host (exactly torch's grid_sample, A = -0.75,
 * border-clamped taps), 2-D rotary, blocks with attention confined to each
 * image / frame group, post RMSNorm, the 2x2 downsample conv as a permute +
 * matmul, and the merger (proj, LayerNorm, GELU-erf, SwiGLU).
 * All images of a prompt run in one batch; scratch is allocated per call
 * (the MLPs in blocks of rows, so it stays near 50 floats x Hv per patch).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "model.h"
#include "cpu/threads.h"

/* ref: torch get_cubic_upsample_coefficients (A = -0.75) */
static void cubic_coeffs(float t, float c[4]) {
    const float A = -0.75f;
    float x1 = t;
    c[0] = ((A * (x1 + 1.0f) - 5.0f * A) * (x1 + 1.0f) + 8.0f * A) * (x1 + 1.0f) - 4.0f * A;
    c[1] = ((A + 2.0f) * x1 - (A + 3.0f)) * x1 * x1 + 1.0f;
    float x2 = 1.0f - t;
    c[2] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
    c[3] = ((A * (x2 + 1.0f) - 5.0f * A) * (x2 + 1.0f) + 8.0f * A) * (x2 + 1.0f) - 4.0f * A;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ref: Glm4vVisionEmbeddings.forward (F.grid_sample bicubic, align_corners=False,
 * padding_mode="border") for the patches of one gh x gw grid in merge-block order. */
/* o = x0*k0 + x1*k1 + x2*k2 + x3*k3, summed from 0 in that order (the order
 * of tap-by-tap accumulation, so the same floats); eight lanes at a time so
 * that the compiler keeps them in vector registers without reassociating. */
static void taps4(float *restrict o, const float *restrict x0, const float *restrict x1,
                  const float *restrict x2, const float *restrict x3, const float k[4], int n) {
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int u = 0; u < 8; u++) {
            float v = 0.0f;
            v += x0[d + u] * k[0];
            v += x1[d + u] * k[1];
            v += x2[d + u] * k[2];
            v += x3[d + u] * k[3];
            o[d + u] = v;
        }
    for (; d < n; d++) {
        float v = 0.0f;
        v += x0[d] * k[0];
        v += x1[d] * k[1];
        v += x2[d] * k[2];
        v += x3[d] * k[3];
        o[d] = v;
    }
}

typedef struct {
    const float *T;
    const float (*cx)[4], (*cy)[4];
    const int *x0, *y0;
    float *out;
    int S, Hv, ms, gh, gw, c0, c1;
} pe_job;

/* target columns [c0, c1) of every row */
static void *pe_worker(void *arg) {
    pe_job *j = arg;
    const int S = j->S, Hv = j->Hv, ms = j->ms, bw_n = j->gw / ms;
    enum { WC = 32 }; /* target columns per block: bounds X to S*WC*Hv floats */
    float *X = malloc(glmv_mul_size((size_t)S * GLMV_MIN(WC, j->c1 - j->c0), sizeof(float) * (size_t)Hv));
    if (!X) return j; /* out of memory */
    for (int w0 = j->c0; w0 < j->c1; w0 += WC) {
        int nw = GLMV_MIN(WC, j->c1 - w0);
        for (int yy = 0; yy < S; yy++)
            for (int i = 0; i < nw; i++) {
                int wp = w0 + i;
                const float *row = j->T + (int64_t)yy * S * Hv;
#define TX(b) (row + (int64_t)clampi(j->x0[wp] + (b), 0, S - 1) * Hv)
                taps4(X + ((int64_t)yy * nw + i) * Hv, TX(0), TX(1), TX(2), TX(3), j->cx[wp], Hv);
#undef TX
            }
        for (int hp = 0; hp < j->gh; hp++)
            for (int i = 0; i < nw; i++) {
                int wp = w0 + i;
                /* merge-block order (GLM4V.md §5.1) */
                int64_t o = (((int64_t)(hp / ms) * bw_n + wp / ms) * ms + hp % ms) * ms + wp % ms;
#define XY(a) (X + ((int64_t)clampi(j->y0[hp] + (a), 0, S - 1) * nw + i) * Hv)
                taps4(j->out + o * Hv, XY(0), XY(1), XY(2), XY(3), j->cy[hp], Hv);
#undef XY
            }
    }
    free(X);
    return NULL;
}

void glmv_vision_pos_coefs(const glmv_model *m, int gh, int gw, float *coef, int *idx) {
    const int S = m->cfg.v_image_size / m->cfg.v_patch_size;
    for (int wp = 0; wp < gw; wp++) {
        float gx = (((float)wp + 0.5f) / (float)gw) * 2.0f - 1.0f;
        float ix = ((gx + 1.0f) * (float)S - 1.0f) / 2.0f, fx = floorf(ix);
        cubic_coeffs(ix - fx, coef + 4 * wp);
        idx[wp] = (int)fx - 1;
    }
    for (int hp = 0; hp < gh; hp++) {
        float gy = (((float)hp + 0.5f) / (float)gh) * 2.0f - 1.0f;
        float iy = ((gy + 1.0f) * (float)S - 1.0f) / 2.0f, fy = floorf(iy);
        cubic_coeffs(iy - fy, coef + 4 * (gw + hp));
        idx[gw + hp] = (int)fy - 1;
    }
}

int glmv_vision_pos_embed(const glmv_model *m, int gh, int gw, float *out, int threads) {
    const glmv_config *c = &m->cfg;
    const glmv_tensor *tab = m->pos_embed;
    int S = c->v_image_size / c->v_patch_size, Hv = c->v_hidden_size;
    /* The taps are separable: interpolate along x once per (source row, target
     * column) into X, then along y per patch. Same operations in the same order
     * as tap by tap (x for each of the 4 rows, then y), so the same floats; the
     * threads take ranges of target columns, each output computed as alone. */
    float *T = malloc(glmv_mul_size((size_t)S * S, sizeof(float) * (size_t)Hv));
    float *coef = malloc(sizeof(float[4]) * (size_t)(gw + gh));
    int *idx = malloc(sizeof(int) * (size_t)(gw + gh));
    int rc = -1;
    if (!T || !coef || !idx) goto done;
    glmv_tensor_get_range(tab, 0, (int64_t)S * S * Hv, T);
    glmv_vision_pos_coefs(m, gh, gw, coef, idx);
    const float(*cx)[4] = (const float(*)[4])coef, (*cy)[4] = (const float(*)[4])(coef + 4 * gw);
    const int *x0 = idx, *y0 = idx + gw;
    /* (the caller bounds threads by the work; each takes at least one column) */
    int nt = threads < 1 ? 1 : threads > 32 ? 32 : threads;
    if (nt > gw) nt = gw;
    pe_job jobs[32];
    for (int i = 0; i < nt; i++)
        jobs[i] = (pe_job){T, cx, cy, x0, y0, out, S, Hv,
                           c->v_spatial_merge_size, gh, gw, gw * i / nt, gw * (i + 1) / nt};
    rc = glmv_run_jobs(pe_worker, jobs, sizeof *jobs, nt);
done:
    free(T);
    free(coef);
    free(idx);
    return rc;
}

/* The scratch buffers of one call, in a fixed order; with m->vision_keep_scratch
 * they live in the model and are only reallocated when a call needs more. */
typedef struct {
    glmv_model *m;
    glmv_backend *be;
    void *p[24];
    int n;
    int oom;
} arena;

static float *aget(arena *a, int64_t floats) {
    size_t bytes = glmv_mul_size((size_t)(floats > 0 ? floats : 1), sizeof(float));
    GLMV_ASSERT(a->n < 24);
    glmv_model *m = a->m;
    void *p;
    if (m->vision_keep_scratch) {
        int i = a->n;
        if (m->vision_cap[i] < bytes) {
            if (m->vision_buf[i]) a->be->free(a->be, m->vision_buf[i]);
            m->vision_buf[i] = a->be->alloc(a->be, bytes);
            m->vision_cap[i] = m->vision_buf[i] ? bytes : 0;
        }
        p = m->vision_buf[i];
    } else {
        p = a->be->alloc(a->be, bytes);
    }
    if (!p) a->oom = 1;
    a->p[a->n++] = p;
    return p;
}

static void afree(arena *a) {
    if (a->m->vision_keep_scratch) return;
    for (int i = 0; i < a->n; i++)
        if (a->p[i]) a->be->free(a->be, a->p[i]);
}

static void hkept_free(glmv_model *m, int i) {
    if (m->vision_hpinned[i]) m->be->host_free(m->be, m->vision_hbuf[i]);
    else free(m->vision_hbuf[i]);
    m->vision_hbuf[i] = NULL;
    m->vision_hcap[i] = 0;
}

/* Host table i of a call (positions, position embedding, rope): kept in the
 * model with its scratch (a 6400-patch image's position embedding alone is
 * 39 MB, whose fresh pages cost milliseconds each call), else malloc'd. Kept
 * tables are in the backend's host memory where it has one (CUDA: page-locked,
 * so that their writes go at the bus's speed instead of through the driver's
 * staging); a next call rewrites them only after this one's closing sync. */
static void *hget(glmv_model *m, int i, size_t bytes) {
    if (!m->vision_keep_scratch) return malloc(bytes);
    if (m->vision_hcap[i] < bytes) {
        hkept_free(m, i);
        void *p = m->be->host_alloc ? m->be->host_alloc(m->be, bytes) : NULL;
        m->vision_hpinned[i] = p != NULL;
        m->vision_hbuf[i] = p ? p : malloc(bytes);
        m->vision_hcap[i] = m->vision_hbuf[i] ? bytes : 0;
    }
    return m->vision_hbuf[i];
}

static void hfree(glmv_model *m, void *p) {
    if (!m->vision_keep_scratch) free(p);
}

void glmv_vision_free_scratch(glmv_model *m) {
    for (int i = 0; i < 24; i++) {
        if (m->vision_buf[i]) m->be->free(m->be, m->vision_buf[i]);
        m->vision_buf[i] = NULL;
        m->vision_cap[i] = 0;
    }
    for (int i = 0; i < 6; i++) hkept_free(m, i);
}

/* The resampled position table of every grid's frames into rows of out (backend) through
 * be->pos_embed; a grid of the last one's size copies its rows. 0, or -1 with err. */
static int pos_embed_on_backend(glmv_model *m, float *out, const int (*grid)[3], int n_grid, char *err) {
    glmv_backend *be = m->be;
    const int Hv = m->cfg.v_hidden_size, S = m->cfg.v_image_size / m->cfg.v_patch_size;
    int64_t r = 0, last_r = -1;
    int last_gh = 0, last_gw = 0;
    for (int g = 0; g < n_grid; g++) {
        const int gh = grid[g][1], gw = grid[g][2];
        const int64_t rows = (int64_t)gh * gw;
        for (int t = 0; t < grid[g][0]; t++, r += rows) {
            if (last_r >= 0 && last_gh == gh && last_gw == gw) {
                be->copy(be, out + r * Hv, out + last_r * Hv, sizeof(float) * (size_t)(rows * Hv));
                continue;
            }
            float *coef = malloc(sizeof(float[4]) * (size_t)(gw + gh));
            int *idx = malloc(sizeof(int) * (size_t)(gw + gh));
            int rc = !coef || !idx ? -1 : 0;
            if (!rc) {
                glmv_vision_pos_coefs(m, gh, gw, coef, idx);
                rc = be->pos_embed(be, out + r * Hv, m->pos_embed, S, m->cfg.v_spatial_merge_size, gh, gw, coef,
                                   idx);
            }
            if (rc > 0) { /* declined (a table it cannot read): the host's floats */
                float *h = malloc(glmv_mul_size((size_t)rows, sizeof(float) * (size_t)Hv));
                rc = !h || glmv_vision_pos_embed(m, gh, gw, h, 1) ? -1 : 0;
                if (!rc) be->write(be, out + r * Hv, h, glmv_mul_size((size_t)rows, sizeof(float) * (size_t)Hv));
                free(h);
            }
            free(coef);
            free(idx);
            if (rc) return glmv_errf(err, "vision: out of memory for the position table of a %dx%d grid", gh, gw);
            last_r = r;
            last_gh = gh;
            last_gw = gw;
        }
    }
    return 0;
}

/* ref: Glm4vVisionModel.forward */
static int vision_forward(glmv_model *m, const glmv_patches *pixels, int64_t N, const int (*grid)[3],
                          int n_grid, float *out, char *err);

int glmv_vision_forward_patches(glmv_model *m, const glmv_patches *px, int64_t N, const int (*grid)[3],
                                int n_grid, float *out, char *err) {
    glmv_model_lock(m);
    int rc = vision_forward(m, px, N, grid, n_grid, out, err);
    glmv_model_unlock(m);
    return rc;
}

int glmv_vision_forward(glmv_model *m, const float *pixels, int64_t N, const int (*grid)[3],
                        int n_grid, float *out, char *err) {
    const glmv_patches px = {.f32 = pixels};
    return glmv_vision_forward_patches(m, &px, N, grid, n_grid, out, err);
}

/* The rows of bytes (px->u8, N rows of K) written into dst (backend) as floats: a run of segments
 * of one table at a time, widened by the backend (be->write_lut), or here (into dst itself on a
 * host backend, else into a block of rows written after) */
static int write_patch_bytes(glmv_backend *be, float *dst, const glmv_patches *px, const int (*grid)[3],
                             int n_grid, int64_t K, int64_t block_rows, char *err) {
    if (K % 3) return glmv_errf(err, "vision: patch rows of bytes need 3 channels (%lld values a row)", (long long)K);
    if (!px->u8 || !px->luts) return glmv_errf(err, "vision: patch rows of bytes without their rows or tables");
    /* W: rows a write_lut (~8 MB of bytes, which a device stages; block_rows where set, as tests
     * do), B: rows a host write */
    const int64_t ch = K / 3, W = block_rows > 0 ? block_rows : GLMV_MAX((int64_t)1, ((int64_t)8 << 20) / K),
                  B = GLMV_MIN(W, (int64_t)256);
    float *buf = NULL;
    int64_t a = 0, r = 0; /* the run's first row, the next segment's */
    int seg = 0, rc = 0;
    for (int g = 0; g < n_grid && !rc; g++)
        for (int t = 0; t < grid[g][0] && !rc; t++, seg++) {
            const int li = px->seg_lut ? px->seg_lut[seg] : 0;
            r += (int64_t)grid[g][1] * grid[g][2];
            /* the run goes on while the next segment has the same table */
            const int last = t + 1 == grid[g][0] && g + 1 == n_grid;
            if (!last && (!px->seg_lut || px->seg_lut[seg + 1] == li)) continue;
            const uint8_t *src = px->u8 + a * K;
            const glmv_patch_lut *lut = &px->luts[li];
            const int64_t n = r - a;
            if (be->write_lut) {
                for (int64_t i = 0; i < n; i += W)
                    be->write_lut(be, dst + (a + i) * K, src + i * K, GLMV_MIN(W, n - i) * K, ch, lut->v[0], 3);
            } else if (!be->caps.device) {
                glmv_patch_expand(src, n * K, ch, lut, dst + a * K);
            } else if (!buf && !(buf = malloc(sizeof(float) * (size_t)(B * K)))) {
                rc = glmv_errf(err, "vision: out of memory");
            } else {
                for (int64_t i = 0; i < n; i += B) {
                    const int64_t nb = GLMV_MIN(B, n - i);
                    glmv_patch_expand(src + i * K, nb * K, ch, lut, buf);
                    be->write(be, dst + (a + i) * K, buf, sizeof(float) * (size_t)(nb * K));
                    be->sync(be); /* buf is written again next */
                }
            }
            a = r;
        }
    free(buf);
    return rc;
}

/* y = swiglu(g, u) · wᵀ (+ bias) for k rows of d (g's and u's rows of stride ld): the backend's fused
 * op where it has one (the products rounded straight into its GEMM's input), else the SwiGLU into h
 * ([k, d], may be g) and the product */
static void swiglu_down(glmv_backend *be, float *y, const float *g, const float *u, int64_t ld, float *h, int64_t d,
                        const glmv_tensor *w, const glmv_tensor *bias, int64_t k) {
    if (be->matmul_swiglu) {
        be->matmul_swiglu(be, y, g, ld, u, ld, h, w, bias, k);
        return;
    }
    be->swiglu(be, h, g, ld, u, ld, k, d);
    be->matmul(be, y, h, w, bias, k);
}

/* y = swiglu(x · gateᵀ, x · upᵀ) · downᵀ (+ biases) for k rows of x: gate and up as one product where
 * the model joined them (gu [k, 2d], then the SwiGLU of its two halves; h [k, d] scratch), else as
 * two (into gu and h, the SwiGLU's output over gu) */
static void mlp(glmv_backend *be, float *y, const float *x, const glmv_tensor *gate_up, const glmv_tensor *gate_up_b,
                const glmv_tensor *gate, const glmv_tensor *gate_b, const glmv_tensor *up, const glmv_tensor *up_b,
                const glmv_tensor *down, const glmv_tensor *down_b, float *gu, float *h, int64_t d, int64_t k) {
    if (gate_up && be->mlp && !be->mlp(be, y, x, gate_up, gate_up_b, down, down_b, gu, k)) return; /* in one op */
    if (gate_up) {
        be->matmul(be, gu, x, gate_up, gate_up_b, k);
        swiglu_down(be, y, gu, gu + d, 2 * d, h, d, down, down_b, k);
        return;
    }
    be->matmul(be, gu, x, gate, gate_b, k);
    be->matmul(be, h, x, up, up_b, k);
    swiglu_down(be, y, gu, h, d, gu, d, down, down_b, k);
}

static int vision_forward(glmv_model *m, const glmv_patches *pixels, int64_t N, const int (*grid)[3],
                          int n_grid, float *out, char *err) {
    const glmv_config *c = &m->cfg;
    glmv_backend *be = m->be;
    if (!m->has_vision)
        return m->is_gguf ? glmv_errc(err, GLMV_E_INVALID, "%s: no vision tower: a GGUF text model reads images "
                                      "with its mmproj file (--mmproj FILE, or an mmproj*.gguf beside it)", m->name)
                          : glmv_errf(err, "%s: checkpoint has no vision tower", m->name);
    int ms = c->v_spatial_merge_size, Hv = c->v_hidden_size, Ov = c->v_out_hidden_size;
    int Iv = c->v_intermediate_size, nh = c->v_num_heads, hd = c->v_head_dim;
    int64_t K = glmv_tensor_cols(m->patch_w);
    /* segments: one per image and per video temporal group */
    int n_seg = 0;
    int64_t total = 0;
    for (int g = 0; g < n_grid; g++) {
        if (grid[g][0] < 1 || grid[g][1] % ms || grid[g][2] % ms || grid[g][1] < ms || grid[g][2] < ms)
            return glmv_errf(err, "vision grid %d (%d, %d, %d) is not a multiple of the merge size %d",
                             g, grid[g][0], grid[g][1], grid[g][2], ms);
        n_seg += grid[g][0];
        total += (int64_t)grid[g][0] * grid[g][1] * grid[g][2];
    }
    if (total != N)
        return glmv_errf(err, "vision: %lld patch rows given, grids need %lld", (long long)N,
                         (long long)total);
    /* the position table resampled on the backend where it can (be->pos_embed), else here */
    const int dev_pe = be->pos_embed != NULL;
    int64_t *cu = hget(m, 0, sizeof(int64_t) * (size_t)(n_seg + 1));
    float *hpe = dev_pe ? NULL : hget(m, 1, glmv_mul_size((size_t)N, sizeof(float) * (size_t)Hv));
    int32_t *hp = hget(m, 2, sizeof(int32_t) * (size_t)N), *wp = hget(m, 3, sizeof(int32_t) * (size_t)N);
    /* the rotation tables made on the backend from each coordinate's values where it can
     * (be->rope_table_2d: hcos holds those values), else here */
    const int dev_rt = be->rope_table_2d != NULL, nf = hd / 4;
    int32_t nv = 0; /* coordinates 0 .. nv - 1 */
    for (int g = 0; g < n_grid; g++) nv = GLMV_MAX(nv, GLMV_MAX(grid[g][1], grid[g][2]));
    float *hcos = hget(m, 4, dev_rt ? sizeof(float) * 2 * (size_t)nv * (size_t)nf
                                    : glmv_mul_size((size_t)N, sizeof(float) * (size_t)(hd / 2)));
    float *hsin = dev_rt ? (hcos ? hcos + (size_t)nv * (size_t)nf : NULL)
                         : hget(m, 5, glmv_mul_size((size_t)N, sizeof(float) * (size_t)(hd / 2)));
    arena a = {m, be, {0}, 0, 0};
    int rc = -1;
    if (!cu || (!hpe && !dev_pe) || !hp || !wp || !hcos || !hsin) {
        glmv_errf(err, "vision: out of memory for %lld patches", (long long)N);
        goto done;
    }
    /* host tables: positions, resampled position embedding, rope */
    {
        /* the position table's resample: ~2M multiply-adds a thread at least */
        int threads = m->params.n_threads > 0 ? m->params.n_threads : glmv_cpu_count();
        int64_t pe_work = 0, S = c->v_image_size / c->v_patch_size;
        for (int g = 0; g < n_grid; g++) pe_work = GLMV_MAX(pe_work, (grid[g][1] + S) * grid[g][2] * 4 * Hv);
        threads = (int)GLMV_MAX(1, GLMV_MIN((int64_t)threads, pe_work / 2000000));
        int s = 0, last_gh = 0, last_gw = 0;
        int64_t r = 0, last_r = -1;
        cu[0] = 0;
        for (int g = 0; g < n_grid; g++) {
            int gh = grid[g][1], gw = grid[g][2];
            for (int t = 0; t < grid[g][0]; t++, s++) {
                /* the table depends only on (gh, gw): frame pairs of a video and
                 * images of one size copy the last one computed */
                if (dev_pe) { /* (below, on the backend) */
                } else if (last_r >= 0 && last_gh == gh && last_gw == gw) {
                    memcpy(hpe + r * Hv, hpe + last_r * Hv, sizeof(float) * (size_t)((int64_t)gh * gw * Hv));
                } else {
                    if (glmv_vision_pos_embed(m, gh, gw, hpe + r * Hv, threads)) {
                        glmv_errf(err, "vision: out of memory for the position table of a %dx%d grid", gh, gw);
                        goto done;
                    }
                    last_r = r;
                    last_gh = gh;
                    last_gw = gw;
                }
                for (int bh = 0; bh < gh / ms; bh++)
                    for (int bw = 0; bw < gw / ms; bw++)
                        for (int mh = 0; mh < ms; mh++)
                            for (int mw = 0; mw < ms; mw++, r++) {
                                hp[r] = bh * ms + mh;
                                wp[r] = bw * ms + mw;
                            }
                cu[s + 1] = r;
            }
        }
        if (dev_rt)
            glmv_rope_vision_values(hd, 10000.0, nv, hcos, hsin);
        else
            glmv_rope_vision_table(hd, 10000.0, hp, wp, N, hcos, hsin);
    }
    float *px = aget(&a, N * K), *h = aget(&a, N * Hv), *hn = aget(&a, N * Hv);
    float *qkv = aget(&a, N * 3 * Hv), *att = aget(&a, N * Hv), *tmp = aget(&a, N * Hv);
    /* the MLPs run over at most rb rows at a time, which bounds their scratch
     * (a 4.8 Mpx image has 24576 patches) */
    int64_t rb = m->vision_row_block > 0 ? m->vision_row_block : be->caps.vision_rows > 0 ? be->caps.vision_rows : 1024;
    int64_t RB = GLMV_MIN(N, rb);
    int jv = 0, jm = m->mg_gate_up != NULL; /* joined: gate and up both in g1 / mg */
    for (int l = 0; l < c->v_depth; l++) jv |= m->blocks[l].gate_up_w != NULL;
    float *g1 = aget(&a, RB * (jv ? 2 : 1) * Ov), *u1 = aget(&a, RB * Ov);
    float *cs = aget(&a, N * (hd / 2)), *sn = aget(&a, N * (hd / 2));
    int64_t M = N / (ms * ms);
    float *z = aget(&a, M * Ov), *z2 = aget(&a, M * Ov);
    int64_t MB = GLMV_MIN(M, rb);
    float *mg = aget(&a, MB * (jm ? 2 : 1) * Iv), *mu = aget(&a, MB * Iv);
    if (a.oom) {
        glmv_errf(err, "vision: out of backend memory for %lld patches", (long long)N);
        goto done;
    }
    if (pixels->f32)
        be->write(be, px, pixels->f32, glmv_mul_size((size_t)(N * K), sizeof(float)));
    else if (write_patch_bytes(be, px, pixels, grid, n_grid, K, m->vision_row_block, err))
        goto done;
    if (dev_rt) {
        be->rope_table_2d(be, cs, sn, hcos, hsin, nv, hp, wp, N, nf);
    } else {
        be->write(be, cs, hcos, glmv_mul_size((size_t)N, sizeof(float) * (size_t)(hd / 2)));
        be->write(be, sn, hsin, glmv_mul_size((size_t)N, sizeof(float) * (size_t)(hd / 2)));
    }
    if (!dev_pe) {
        be->write(be, tmp, hpe, glmv_mul_size((size_t)N, sizeof(float) * (size_t)Hv));
    } else if (pos_embed_on_backend(m, tmp, grid, n_grid, err)) {
        goto done;
    }
    float eps = c->v_rms_norm_eps;

    /* ref: Glm4vVisionPatchEmbed, post_conv_layernorm, Glm4vVisionEmbeddings */
    be->matmul(be, h, px, m->patch_w, m->patch_b, N);
    glmv_model_dump(m, "v.patch_embed", h, N, Hv);
    be->rmsnorm(be, hn, h, m->post_conv_norm, N, Hv, eps);
    glmv_model_dump(m, "v.post_conv_norm", hn, N, Hv);
    be->add(be, h, hn, tmp, N * Hv);
    glmv_model_dump(m, "v.pos_embed", h, N, Hv);

    float scale = (float)(1.0 / sqrt((double)hd));
    for (int l = 0; l < c->v_depth; l++) {
        const glmv_vision_block *B = &m->blocks[l];
        /* ref: Glm4vVisionAttention (a later block's norm1 ends the block before it) */
        if (l == 0) be->rmsnorm(be, hn, h, B->norm1, N, Hv, eps);
        be->matmul(be, qkv, hn, B->qkv_w, B->qkv_b, N);
        if (be->attn_rope_segments) { /* the rotation inside the attention */
            be->attn_rope_segments(be, att, qkv, 3 * Hv, qkv + Hv, 3 * Hv, qkv + 2 * Hv, 3 * Hv, cs, sn, cu, n_seg,
                                   nh, hd, scale);
        } else {
            be->rope_neox(be, qkv, 3 * Hv, cs, sn, N, 2 * nh, hd); /* q's heads and k's after them, [q | k | v] */
            be->attn_segments(be, att, qkv, 3 * Hv, qkv + Hv, 3 * Hv, qkv + 2 * Hv, 3 * Hv, cu, n_seg, nh, hd,
                              scale);
        }
        be->matmul(be, tmp, att, B->proj_w, B->proj_b, N);
        /* the residual and ref: Glm4VisionMlp's norm in one op (bit for bit add, rmsnorm) */
        be->norm_add_norm(be, h, hn, tmp, NULL, B->norm2, N, Hv, eps);
        for (int64_t r = 0; r < N; r += RB) {
            int64_t k = GLMV_MIN(RB, N - r);
            mlp(be, tmp + r * Hv, hn + r * Hv, B->gate_up_w, B->gate_up_b, B->gate_w, B->gate_b, B->up_w, B->up_b,
                B->down_w, B->down_b, g1, u1, Ov, k);
        }
        /* the residual, and the next block's norm1 (after the last block, post_layernorm) */
        be->norm_add_norm(be, h, hn, tmp, NULL, l + 1 < c->v_depth ? m->blocks[l + 1].norm1 : m->post_norm, N, Hv,
                          eps);
        char name[32];
        snprintf(name, sizeof name, "v.block.%d", l);
        glmv_model_dump(m, name, h, N, Hv);
    }
    glmv_model_dump(m, "v.post_norm", hn, N, Hv);
    /* ref: downsample Conv2d(k = s = merge): block rows [4, Hv] -> [Hv, 4] -> matmul */
    be->permute_021(be, tmp, hn, M, (int64_t)ms * ms, Hv);
    be->matmul(be, z, tmp, m->ds_w, m->ds_b, M);
    glmv_model_dump(m, "v.downsample", z, M, Ov);
    /* ref: Glm4vVisionPatchMerger */
    be->matmul(be, z2, z, m->mg_proj, NULL, M);
    be->layernorm(be, z, z2, m->mg_ln_w, m->mg_ln_b, M, Ov, 1e-5f);
    be->gelu_erf(be, z, z, M * Ov);
    for (int64_t r = 0; r < M; r += MB) {
        int64_t k = GLMV_MIN(MB, M - r);
        mlp(be, out + r * Ov, z + r * Ov, m->mg_gate_up, NULL, m->mg_gate, NULL, m->mg_up, NULL, m->mg_down, NULL,
            mg, mu, Iv, k);
    }
    glmv_model_dump(m, "v.merger", out, M, Ov);
    be->sync(be);
    rc = be->status && be->status(be, err) ? -1 : 0; /* a device's failure surfaces here */
    if (rc) glmv_errcode_set(GLMV_E_BACKEND);
done:
    if (rc) be->sync(be); /* copies from the kept host buffers may be queued: done before they are reused */
    afree(&a);
    void *host[] = {cu, hpe, hp, wp, hcos, dev_rt ? NULL : hsin};
    for (int i = 0; i < 6; i++) hfree(m, host[i]);
    return rc;
}

int glmv_vision_eval(glmv_model *m, int h, int w, int *n_tokens, char *err) {
    const glmv_config *c = &m->cfg;
    int f = c->v_patch_size * c->v_spatial_merge_size;
    if (h < f || w < f || h % f || w % f)
        return glmv_errf(err, "vision_eval: %dx%d is not a positive multiple of %d", h, w, f);
    int grid[1][3] = {{1, h / c->v_patch_size, w / c->v_patch_size}};
    int64_t N = (int64_t)grid[0][1] * grid[0][2];
    int64_t K = (int64_t)c->v_in_channels * c->v_temporal_patch_size * c->v_patch_size * c->v_patch_size;
    int64_t M = N / (c->v_spatial_merge_size * c->v_spatial_merge_size);
    /* made-up pixels as a prompt holds them: bytes, and the image processor's table */
    uint8_t *px = malloc(glmv_mul_size((size_t)N, (size_t)K));
    float *out = m->be->alloc(m->be, glmv_mul_size((size_t)(M * c->v_out_hidden_size), sizeof(float)));
    int rc = -1;
    if (!px || !out) {
        glmv_errf(err, "vision_eval: out of memory for %dx%d", h, w);
    } else {
        uint32_t s = 12345;
        for (int64_t i = 0; i < N * K; i++) {
            s = s * 1664525u + 1013904223u;
            px[i] = (uint8_t)(s >> 24);
        }
        const glmv_image_params ip = glmv_processor_params(c, 0);
        glmv_patch_lut lut;
        glmv_patch_lut_init(&ip, &lut);
        const glmv_patches pb = {.u8 = px, .luts = &lut};
        rc = glmv_vision_forward_patches(m, &pb, N, (const int(*)[3])grid, 1, out, err);
        if (rc == 0 && n_tokens) *n_tokens = (int)M;
    }
    free(px);
    if (out) m->be->free(m->be, out);
    return rc;
}
