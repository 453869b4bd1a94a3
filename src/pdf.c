/* pdf.c -- PDF pages as images, with poppler (poppler-glib) rendering into cairo surfaces.
 *
 * A page is rendered on white at GLMV_PDF_DPI, or at the largest scale that keeps it within
 * the model's pixel budget for one image, then stored as a 24-bit BMP so that the image
 * path (decode, smart_resize, normalise) treats it as any other image. Nothing here decides
 * what the model sees beyond the page's pixels: no text layer, no OCR.
 *
 * Hostile files: damaged and encrypted documents are refused with poppler's reason; the page
 * count, page sizes and the total vision tokens are checked before the first page is drawn.
 * poppler's own diagnostics ("Syntax Error ...") are kept off stderr unless GLMV_LOG >= 2.
 */
#include "pdf.h"

#include <cairo.h>
#include <glib.h>
#include <math.h>
#include <poppler.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

/* ------------------------------------------------------------------ page selection */

static int parse_num(const char **s, long *v) {
    if (**s < '0' || **s > '9') return -1;
    long x = 0;
    while (**s >= '0' && **s <= '9') {
        x = x * 10 + (**s - '0');
        if (x > 100000000) return -1;
        (*s)++;
    }
    *v = x;
    return 0;
}

int glmv_pdf_parse_pages(const char *spec, int n_pages, int *sel, int max_sel, int *n, char *err) {
    *n = 0;
    if (!spec || !*spec) spec = "1-";
    const char *s = spec;
    while (*s) {
        while (*s == ' ') s++;
        long a = 1, b;
        if (*s == '-') {
            s++;
            if (parse_num(&s, &b)) goto bad;
        } else {
            if (parse_num(&s, &a)) goto bad;
            b = a;
            if (*s == '-') {
                s++;
                if (*s == ',' || *s == ' ' || !*s) b = n_pages;
                else if (parse_num(&s, &b)) goto bad;
            }
        }
        while (*s == ' ') s++;
        if (*s == ',') s++;
        else if (*s) goto bad;
        if (a < 1 || b < a)
            return glmv_errc(err, GLMV_E_INVALID, "pages '%.80s': %ld-%ld is not a range of pages "
                             "(they count from 1)", spec, a, b);
        if (b > n_pages)
            return glmv_errc(err, GLMV_E_INVALID, "pages '%.80s': page %ld is beyond the document's %d "
                             "page%s", spec, b, n_pages, n_pages == 1 ? "" : "s");
        if ((long)*n + (b - a + 1) > max_sel)
            return glmv_errc(err, GLMV_E_MEDIA, "the PDF has %d pages: at most %d at once (choose "
                             "some with a page range, e.g. 1-%d)", n_pages, max_sel,
                             max_sel < 10 ? max_sel : 10);
        for (long p = a; p <= b; p++) sel[(*n)++] = (int)(p - 1);
    }
    if (!*n) goto bad;
    return 0;
bad:
    return glmv_errc(err, GLMV_E_INVALID, "pages '%.80s': expected page numbers and ranges such as "
                     "1-3,5,9-", spec);
}

/* ------------------------------------------------------------------ rendering */

static void quiet_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer user) {
    (void)level;
    (void)user;
    if (glmv_log_level >= 2) glmv_log(2, "%s: %s", domain ? domain : "glib", msg);
}

static void set_quiet_log(void) {
    static int done;
    if (!__atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL))
        g_log_set_handler("Poppler", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION,
                          quiet_log, NULL);
}

/* Pixel size of a page of w x h points at the chosen scale. */
static int page_scale(double wpt, double hpt, int64_t page_pixels, int *pw, int *ph, double *scale,
                      char *err) {
    if (!(wpt > 0 && hpt > 0 && wpt < 1e6 && hpt < 1e6))
        return glmv_errc(err, GLMV_E_MEDIA, "a page of %gx%g points has no size", wpt, hpt);
    if (fmax(wpt, hpt) / fmin(wpt, hpt) > 200)
        return glmv_errc(err, GLMV_E_MEDIA, "the page is %gx%g points: its aspect ratio %.0f is above "
                         "the limit of 200", wpt, hpt, fmax(wpt, hpt) / fmin(wpt, hpt));
    double s = GLMV_PDF_DPI / 72.0;
    double fit = sqrt((double)page_pixels / (wpt * hpt));
    if (fit < s) s = fit;
    /* cairo's surfaces stop at 32767 pixels a side; an extreme page is refused later by its
     * aspect ratio, not here by a crash */
    double side = 16384.0 / fmax(wpt, hpt);
    if (side < s) s = side;
    *scale = s;
    *pw = (int)fmax(1, floor(wpt * s));
    *ph = (int)fmax(1, floor(hpt * s));
    return 0;
}

/* The BMP of a cairo RGB24 surface: BITMAPINFOHEADER, 24 bits, rows bottom-up, padded to 4. */
static uint8_t *surface_bmp(cairo_surface_t *sf, int w, int h, size_t *size) {
    size_t stride = ((size_t)w * 3 + 3) & ~(size_t)3;
    size_t n = 54 + stride * (size_t)h;
    uint8_t *b = calloc(1, n);
    if (!b) return NULL;
    const uint32_t v[] = {(uint32_t)n, 0, 54, 40, (uint32_t)w, (uint32_t)h};
    b[0] = 'B', b[1] = 'M';
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 4; k++) b[2 + 4 * i + k] = (uint8_t)(v[i] >> (8 * k));
    b[26] = 1;  /* planes */
    b[28] = 24; /* bits per pixel; compression 0 */
    const uint8_t *src = cairo_image_surface_get_data(sf);
    int sstride = cairo_image_surface_get_stride(sf);
    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(src + (size_t)y * sstride);
        uint8_t *d = b + 54 + (size_t)(h - 1 - y) * stride;
        for (int x = 0; x < w; x++) {
            uint32_t px = row[x]; /* 0x00RRGGBB */
            d[3 * x] = (uint8_t)px, d[3 * x + 1] = (uint8_t)(px >> 8), d[3 * x + 2] = (uint8_t)(px >> 16);
        }
    }
    *size = n;
    return b;
}

static uint8_t *render_page(PopplerPage *pg, int w, int h, double scale, size_t *size, char *err) {
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(sf);
        glmv_errc(err, GLMV_E_NOMEM, "cannot make a %dx%d surface for a page", w, h);
        return NULL;
    }
    cairo_t *cr = cairo_create(sf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_scale(cr, scale, scale);
    poppler_page_render(pg, cr);
    cairo_destroy(cr);
    cairo_surface_flush(sf);
    uint8_t *b = surface_bmp(sf, w, h, size);
    cairo_surface_destroy(sf);
    if (!b) glmv_errc(err, GLMV_E_NOMEM, "out of memory");
    return b;
}

/* How errors name a PDF: its path, else its place in the messages. */
static const char *doc_name(const glmv_part *p, int i, int k, char *buf, size_t n) {
    if (p->path) return p->path;
    snprintf(buf, n, "the PDF in messages[%d].content[%d]", i, k);
    return buf;
}

static PopplerDocument *open_doc(const glmv_part *p, const char *name, char *err) {
    set_quiet_log();
    size_t n = p->size;
    char *file = NULL;
    const void *data = p->data;
    if (!data) {
        if (glmv_check_regular(p->path, "PDF", err)) return NULL;
        file = glmv_read_file(p->path, &n, err);
        if (!file) return NULL;
        data = file;
    }
    if (n < 5 || !memmem(data, n < 1024 ? n : 1024, "%PDF-", 5)) {
        free(file);
        glmv_errc(err, GLMV_E_MEDIA, "%s is not a PDF (no %%PDF- header)", name);
        return NULL;
    }
    GBytes *bytes = file ? g_bytes_new_with_free_func(file, n, free, file) : g_bytes_new_static(data, n);
    GError *ge = NULL;
    PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &ge);
    g_bytes_unref(bytes);
    if (!doc) {
        int enc = ge && ge->domain == POPPLER_ERROR && ge->code == POPPLER_ERROR_ENCRYPTED;
        glmv_errc(err, GLMV_E_MEDIA, "%s: %s%s", name,
                  enc ? "the PDF is encrypted (a password protects it): glmv does not open it"
                      : "cannot read the PDF: ",
                  enc ? "" : ge && ge->message ? ge->message : "damaged");
        if (ge) g_error_free(ge);
        return NULL;
    }
    return doc;
}

/* ------------------------------------------------------------------ expansion */

typedef struct {
    PopplerDocument *doc;
    int *sel, n_sel;
    int *w, *h;
    double *scale;
} pdf_job;

void glmv_pdf_expansion_free(glmv_pdf_expansion *x) {
    if (x->expanded) {
        free(x->msgs);
        free(x->parts);
    }
    for (int i = 0; i < x->n_bufs; i++) free(x->bufs[i]);
    free(x->bufs);
    memset(x, 0, sizeof *x);
}

int glmv_pdf_expand(const glmv_message *msgs, int n_msgs, int64_t page_pixels, int factor,
                    int64_t max_tokens, glmv_pdf_expansion *x, char *err) {
    memset(x, 0, sizeof *x);
    x->msgs = (glmv_message *)msgs;
    int n_pdf = 0, n_parts = 0;
    for (int i = 0; i < n_msgs; i++)
        for (int k = 0; k < msgs[i].n_parts; k++) n_pdf += msgs[i].parts[k].kind == GLMV_PART_PDF;
    if (!n_pdf) return 0;
    pdf_job *jobs = calloc((size_t)n_pdf, sizeof *jobs);
    if (!jobs) return glmv_errc(err, GLMV_E_NOMEM, "out of memory");
    int rc = -1, j = 0, total_pages = 0;
    int64_t tokens = 0;
    /* open every document and size every page before drawing any */
    for (int i = 0; i < n_msgs; i++)
        for (int k = 0; k < msgs[i].n_parts; k++) {
            const glmv_part *p = &msgs[i].parts[k];
            n_parts++;
            if (p->kind != GLMV_PART_PDF) continue;
            pdf_job *jb = &jobs[j++];
            char e2[GLMV_ERR_SIZE], nb[64];
            const char *name = doc_name(p, i, k, nb, sizeof nb);
            if (!(jb->doc = open_doc(p, name, err))) goto done;
            int np = poppler_document_get_n_pages(jb->doc);
            if (np <= 0) {
                glmv_errc(err, GLMV_E_MEDIA, "%s has no pages", name);
                goto done;
            }
            int cap = np < GLMV_PDF_MAX_PAGES ? np : GLMV_PDF_MAX_PAGES;
            /* a selection may repeat pages: room for the cap, checked while parsing */
            jb->sel = malloc(sizeof(int) * (size_t)GLMV_PDF_MAX_PAGES);
            if (!jb->sel) {
                glmv_errc(err, GLMV_E_NOMEM, "out of memory");
                goto done;
            }
            if (glmv_pdf_parse_pages(p->pages, np, jb->sel, cap, &jb->n_sel, e2)) {
                glmv_errc(err, glmv_last_error(), "%s: %s", name, e2);
                goto done;
            }
            jb->w = malloc(sizeof(int) * (size_t)jb->n_sel);
            jb->h = malloc(sizeof(int) * (size_t)jb->n_sel);
            jb->scale = malloc(sizeof(double) * (size_t)jb->n_sel);
            if (!jb->w || !jb->h || !jb->scale) {
                glmv_errc(err, GLMV_E_NOMEM, "out of memory");
                goto done;
            }
            for (int s = 0; s < jb->n_sel; s++) {
                PopplerPage *pg = poppler_document_get_page(jb->doc, jb->sel[s]);
                if (!pg) {
                    glmv_errc(err, GLMV_E_MEDIA, "%s: page %d cannot be read", name, jb->sel[s] + 1);
                    goto done;
                }
                double wpt, hpt;
                poppler_page_get_size(pg, &wpt, &hpt);
                g_object_unref(pg);
                if (page_scale(wpt, hpt, page_pixels, &jb->w[s], &jb->h[s], &jb->scale[s], e2)) {
                    glmv_errc(err, GLMV_E_MEDIA, "%s: page %d: %s", name, jb->sel[s] + 1, e2);
                    goto done;
                }
                /* smart_resize rounds each side to the nearest multiple of factor; a token is
                 * a 2x2 block of patches */
                int64_t gw = (int64_t)fmax(1, nearbyint((double)jb->w[s] / factor));
                int64_t gh = (int64_t)fmax(1, nearbyint((double)jb->h[s] / factor));
                tokens += gw * gh;
            }
            total_pages += jb->n_sel;
        }
    if (total_pages > GLMV_PDF_MAX_PAGES) {
        glmv_errc(err, GLMV_E_MEDIA, "%d PDF pages in one prompt: at most %d", total_pages, GLMV_PDF_MAX_PAGES);
        goto done;
    }
    if (tokens > max_tokens) {
        glmv_errc(err, GLMV_E_CONTEXT, "the %d PDF page%s need about %lld vision tokens, more than the "
                  "context holds (%lld): choose fewer pages, or fewer tokens a page (--max-image-tokens)",
                  total_pages, total_pages == 1 ? "" : "s", (long long)tokens, (long long)max_tokens);
        goto done;
    }
    x->parts = calloc((size_t)(n_parts - n_pdf + total_pages), sizeof *x->parts);
    x->msgs = calloc((size_t)n_msgs, sizeof *x->msgs);
    x->bufs = calloc((size_t)total_pages, sizeof *x->bufs);
    x->expanded = 1;
    if (!x->parts || !x->msgs || !x->bufs) {
        glmv_errc(err, GLMV_E_NOMEM, "out of memory");
        goto done;
    }
    int np_out = 0;
    j = 0;
    for (int i = 0; i < n_msgs; i++) {
        x->msgs[i] = msgs[i];
        x->msgs[i].parts = &x->parts[np_out];
        for (int k = 0; k < msgs[i].n_parts; k++) {
            const glmv_part *p = &msgs[i].parts[k];
            if (p->kind != GLMV_PART_PDF) {
                x->parts[np_out++] = *p;
                continue;
            }
            pdf_job *jb = &jobs[j++];
            for (int s = 0; s < jb->n_sel; s++) {
                PopplerPage *pg = poppler_document_get_page(jb->doc, jb->sel[s]);
                size_t size = 0;
                uint8_t *b = pg ? render_page(pg, jb->w[s], jb->h[s], jb->scale[s], &size, err) : NULL;
                if (pg) g_object_unref(pg);
                else glmv_errc(err, GLMV_E_MEDIA, "PDF page %d cannot be read", jb->sel[s] + 1);
                if (!b) goto done;
                x->bufs[x->n_bufs++] = b;
                glmv_part *q = &x->parts[np_out++];
                memset(q, 0, sizeof *q);
                q->kind = GLMV_PART_IMAGE;
                q->data = b;
                q->size = size;
            }
        }
        x->msgs[i].n_parts = (int)(&x->parts[np_out] - x->msgs[i].parts);
    }
    rc = 0;
done:
    for (int i = 0; i < n_pdf; i++) {
        if (jobs[i].doc) g_object_unref(jobs[i].doc);
        free(jobs[i].sel);
        free(jobs[i].w);
        free(jobs[i].h);
        free(jobs[i].scale);
    }
    free(jobs);
    if (rc) glmv_pdf_expansion_free(x);
    return rc;
}
