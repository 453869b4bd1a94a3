/* agent_draw.c -- an agent action drawn on its screenshot (agent.h), because
 * people would rather look than read: a rectangle for a box, a ring and a
 * crosshair for the point acted on, an arrow for a swipe, scroll or drag, and
 * a label with the action's name and its text or keys. The screenshot is
 * decoded by glmv's own decoder (any format `glmv run` takes), copied into a
 * cairo RGB24 surface and written as PNG at its own size. */
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "glmv.h"
#include "image.h"

/* screenshots beyond this are refused before decoding (an 8K screen is 33 Mpx) */
#define AGENT_MAX_PIXELS ((int64_t)1 << 27)

/* RGB bytes -> a cairo RGB24 surface (check its status) */
static cairo_surface_t *rgb_surface(const glmv_rgb *im) {
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, im->w, im->h);
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) return sf;
    cairo_surface_flush(sf);
    unsigned char *px = cairo_image_surface_get_data(sf);
    int stride = cairo_image_surface_get_stride(sf);
    for (int y = 0; y < im->h; y++) {
        uint32_t *row = (uint32_t *)(px + (size_t)y * stride);
        const uint8_t *src = im->rgb + (size_t)y * im->w * 3;
        for (int x = 0; x < im->w; x++)
            row[x] = (uint32_t)src[3 * x] << 16 | (uint32_t)src[3 * x + 1] << 8 | src[3 * x + 2];
    }
    cairo_surface_mark_dirty(sf);
    return sf;
}

static void arrow(cairo_t *cr, double x0, double y0, double x1, double y1, double lw) {
    double a = atan2(y1 - y0, x1 - x0), head = lw * 6;
    cairo_move_to(cr, x0, y0);
    cairo_line_to(cr, x1, y1);
    cairo_stroke(cr);
    cairo_move_to(cr, x1, y1);
    cairo_line_to(cr, x1 - head * cos(a - 0.45), y1 - head * sin(a - 0.45));
    cairo_line_to(cr, x1 - head * cos(a + 0.45), y1 - head * sin(a + 0.45));
    cairo_close_path(cr);
    cairo_fill(cr);
}

/* A label on a dark band at (x, y) (its top left), kept inside the image. */
static void label(cairo_t *cr, const char *text, double x, double y, double size, int w, int h) {
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t te;
    cairo_text_extents(cr, text, &te);
    double pad = size * 0.3, bw = te.x_advance + 2 * pad, bh = size * 1.4;
    if (x + bw > w) x = w - bw;
    if (y + bh > h) y = h - bh;
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    cairo_set_source_rgba(cr, 0, 0, 0, 0.75);
    cairo_rectangle(cr, x, y, bw, bh);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 1, 1, 0.3);
    cairo_move_to(cr, x + pad, y + size * 1.05);
    cairo_show_text(cr, text);
}

/* "click", "type: drip coffee maker", "Click [5]": at most ~90 bytes, cut on a UTF-8 boundary */
static void label_text(const agent_action *a, char *out, size_t size) {
    const char *arg = a->text ? a->text : a->keys ? a->keys : a->app_name ? a->app_name
                    : a->goal_status ? a->goal_status : a->direction ? a->direction
                    : a->element_info;
    int n;
    if (a->mode == AGENT_WEB && a->element >= 0) n = snprintf(out, size, "%s [%d]", a->action, a->element);
    else if (a->mode == AGENT_WEB && a->element == -1) n = snprintf(out, size, "%s [WINDOW]", a->action);
    else n = snprintf(out, size, "%s", a->action);
    if (arg && n >= 0 && (size_t)n < size) {
        size_t len = strlen(arg), room = size - (size_t)n;
        int cut = len + 3 > room && room > 8;
        snprintf(out + n, room, ": %.*s", (int)(cut ? room - 8 : len), arg);
        if (cut) {
            size_t e = strlen(out);
            while (e > 0 && ((unsigned char)out[e - 1] & 0xC0) == 0x80) e--; /* continuation bytes */
            if (e > 0 && ((unsigned char)out[e - 1] & 0x80)) e--;             /* their lead byte */
            snprintf(out + e, size - e, "...");
        }
    }
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
}

int agent_draw(const agent_action *a, const char *screenshot, const char *png_path, char *err,
               size_t err_size) {
    char ierr[GLMV_ERR_SIZE] = "";
    glmv_rgb im = {0};
    if (glmv_image_decode_file(screenshot, AGENT_MAX_PIXELS, &im, ierr)) {
        snprintf(err, err_size, "%s", ierr);
        return -1;
    }
    int w = im.w, h = im.h, rc = -1;
    cairo_surface_t *sf = rgb_surface(&im);
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) {
        snprintf(err, err_size, "cannot make a %dx%d drawing surface", w, h);
        goto out;
    }

    cairo_t *cr = cairo_create(sf);
    double s = (w < h ? w : h) / 1000.0, lw = fmax(2.0, 4 * s), font = fmax(12.0, 28 * s);
    agent_action m = *a; /* pixels for this image, whatever the caller mapped */
    agent_map(&m, w, h);
    cairo_set_line_width(cr, lw);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    cairo_set_source_rgb(cr, 1, 0.1, 0.1);
    if (m.has_box) {
        double bw = fmax(m.px_box[2] - m.px_box[0], 1), bh = fmax(m.px_box[3] - m.px_box[1], 1);
        cairo_rectangle(cr, m.px_box[0], m.px_box[1], bw, bh);
        cairo_stroke(cr);
        cairo_set_source_rgba(cr, 1, 0.1, 0.1, 0.18);
        cairo_rectangle(cr, m.px_box[0], m.px_box[1], bw, bh);
        cairo_fill(cr);
    }
    int has_point = m.has_box || m.has_point;
    if (has_point) {
        double x = m.px_point[0], y = m.px_point[1], r = lw * 4;
        cairo_set_source_rgb(cr, 1, 0.1, 0.1);
        cairo_arc(cr, x, y, r, 0, 2 * M_PI);
        cairo_stroke(cr);
        cairo_move_to(cr, x - 2 * r, y);
        cairo_line_to(cr, x + 2 * r, y);
        cairo_move_to(cr, x, y - 2 * r);
        cairo_line_to(cr, x, y + 2 * r);
        cairo_stroke(cr);
        cairo_arc(cr, x, y, lw, 0, 2 * M_PI);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.1, 0.6, 1);
    if (m.has_end) {
        arrow(cr, m.px_point[0], m.px_point[1], m.px_end[0], m.px_end[1], lw);
    } else if (m.direction && m.mode != AGENT_WEB) {
        /* the finger's motion for a swipe (up: bottom to top), the wheel's for a
           scroll (down: the page moves on downwards), over the box or the screen */
        double x0 = m.has_box ? m.px_box[0] : 0, y0 = m.has_box ? m.px_box[1] : 0;
        double x1 = m.has_box ? m.px_box[2] : w, y1 = m.has_box ? m.px_box[3] : h;
        double cx = has_point ? m.px_point[0] : (x0 + x1) / 2, cy = has_point ? m.px_point[1] : (y0 + y1) / 2;
        double dx = 0, dy = 0;
        if (!strcmp(m.direction, "up")) dy = -1;
        else if (!strcmp(m.direction, "down")) dy = 1;
        else if (!strcmp(m.direction, "left")) dx = -1;
        else dx = 1;
        /* a swipe spans most of its region along its direction; a scroll is a short hint */
        double len = m.mode == AGENT_MOBILE ? 0.6 * (dy ? y1 - y0 : x1 - x0) : fmax(h, w) / 8.0;
        len = fmax(len, lw * 10);
        arrow(cr, cx - dx * len / 2, cy - dy * len / 2, cx + dx * len / 2, cy + dy * len / 2, lw * 1.5);
    }
    char text[128];
    label_text(a, text, sizeof text);
    double lx = 0, ly = 0;
    if (m.has_box) lx = m.px_box[0], ly = m.px_box[3] + lw;
    else if (has_point) lx = m.px_point[0] + lw * 8, ly = m.px_point[1] + lw * 8;
    label(cr, text, lx, ly, font, w, h);
    cairo_destroy(cr);
    cairo_surface_flush(sf);
    cairo_status_t st = cairo_surface_write_to_png(sf, png_path);
    if (st != CAIRO_STATUS_SUCCESS) {
        snprintf(err, err_size, "cannot write %s: %s", png_path, cairo_status_to_string(st));
        goto out;
    }
    rc = 0;
out:
    cairo_surface_destroy(sf);
    glmv_rgb_free(&im);
    return rc;
}

/* --- pc's earlier screenshots at half size ------------------------------ */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} png_buf;

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int len) {
    png_buf *b = closure;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + len) cap *= 2;
        unsigned char *np = realloc(b->p, cap);
        if (!np) return CAIRO_STATUS_NO_MEMORY;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
    return CAIRO_STATUS_SUCCESS;
}

int agent_half_png(const char *path, void **png, size_t *size, char *err, size_t err_size) {
    char ierr[GLMV_ERR_SIZE] = "";
    glmv_rgb im = {0}, half = {0};
    png_buf b = {0};
    cairo_surface_t *sf = NULL;
    int rc = -1;
    *png = NULL;
    *size = 0;
    if (glmv_image_decode_file(path, AGENT_MAX_PIXELS, &im, ierr) ||
        glmv_image_resize(&im, im.w > 1 ? im.w / 2 : 1, im.h > 1 ? im.h / 2 : 1, &half, ierr)) {
        snprintf(err, err_size, "%s", ierr);
        goto out;
    }
    sf = rgb_surface(&half);
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS ||
        cairo_surface_write_to_png_stream(sf, png_write, &b) != CAIRO_STATUS_SUCCESS) {
        snprintf(err, err_size, "cannot encode %s at half size", path);
        free(b.p);
        goto out;
    }
    *png = b.p;
    *size = b.n;
    rc = 0;
out:
    if (sf) cairo_surface_destroy(sf);
    glmv_rgb_free(&half);
    glmv_rgb_free(&im);
    return rc;
}
