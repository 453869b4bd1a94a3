/* image_decode.c -- encoded bytes -> RGB u8, as transformers' load_image
 * sees them: PIL.Image.open, PIL.ImageOps.exif_transpose, .convert("RGB").
 * JPEG (libjpeg-turbo: baseline, progressive, gray, CMYK/YCCK read as
 * Adobe-inverted the way Pillow does), PNG (libpng: palette, gray 1-16 bit,
 * 16-bit as Pillow's modes give it, alpha dropped, not composited; the
 * common 8-bit files inflated by libdeflate, below), WebP
 * (libwebp, still images), GIF (giflib, first frame) and BMP (by hand). The
 * format is sniffed from the bytes; sizes are checked against max_pixels
 * from the header, before any pixel is decoded. Hostile input gives an
 * error message, never a crash (tests/fuzz_image.c).
 */
#include <stdio.h> /* before jpeglib.h */

#include <gif_lib.h>
#include <jerror.h>
#include <jpeglib.h>
#include <libdeflate.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "base.h"
#include "image.h"

#define DEFAULT_MAX_PIXELS 178956970 /* Pillow's decompression-bomb error limit */

static int check_size(const char *fmt, int64_t w, int64_t h, int64_t max_pixels, char *err) {
    if (max_pixels <= 0) max_pixels = DEFAULT_MAX_PIXELS;
    if (w <= 0 || h <= 0) return glmv_errf(err, "%s: bad image size %lldx%lld", fmt, (long long)w,
                                           (long long)h);
    if (w > 1000000 || h > 1000000 || w * h > max_pixels)
        return glmv_errf(err, "%s: image of %lldx%lld pixels is above the limit of %lld pixels", fmt,
                         (long long)w, (long long)h, (long long)max_pixels);
    return 0;
}

static int alloc_rgb(glmv_rgb *out, int w, int h, char *err) {
    out->rgb = malloc((size_t)w * h * 3);
    if (!out->rgb) return glmv_errf(err, "out of memory for a %dx%d image", w, h);
    out->w = w;
    out->h = h;
    return 0;
}

/* ---------------------------------------------------------------- EXIF
 * Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block.
 * Returns 1..8, or 1 when absent or malformed. */
static int exif_orientation(const uint8_t *p, size_t n) {
    if (n >= 6 && memcmp(p, "Exif\0\0", 6) == 0) p += 6, n -= 6;
    if (n < 8) return 1;
    int le;
    if (p[0] == 'I' && p[1] == 'I') le = 1;
    else if (p[0] == 'M' && p[1] == 'M') le = 0;
    else return 1;
#define RD16(q) (le ? (uint32_t)(q)[0] | (uint32_t)(q)[1] << 8 : (uint32_t)(q)[1] | (uint32_t)(q)[0] << 8)
#define RD32(q) (le ? RD16(q) | RD16((q) + 2) << 16 : RD16(q) << 16 | RD16((q) + 2))
    if (RD16(p + 2) != 42) return 1;
    uint32_t ifd = RD32(p + 4);
    if (ifd > n - 2 || ifd < 8) return 1;
    uint32_t cnt = RD16(p + ifd);
    for (uint32_t i = 0; i < cnt; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n) break;
        if (RD16(p + e) == 0x0112) {
            uint32_t type = RD16(p + e + 2);
            uint32_t v = type == 3 ? RD16(p + e + 8) : type == 4 ? RD32(p + e + 8) : 0;
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
#undef RD16
#undef RD32
    return 1;
}

/* ref: PIL.ImageOps.exif_transpose (2 FLIP_LEFT_RIGHT, 3 ROTATE_180,
 * 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90). */
static int apply_orientation(glmv_rgb *im, int o, char *err) {
    if (o <= 1 || o > 8) return 0;
    const int W = im->w, H = im->h;
    const int swap = o >= 5;
    const int ow = swap ? H : W, oh = swap ? W : H;
    uint8_t *dst = malloc((size_t)W * H * 3);
    if (!dst) return glmv_errf(err, "out of memory rotating a %dx%d image", W, H);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = W - 1 - x, sy = y; break;
            case 3: sx = W - 1 - x, sy = H - 1 - y; break;
            case 4: sx = x, sy = H - 1 - y; break;
            case 5: sx = y, sy = x; break;
            case 6: sx = y, sy = H - 1 - x; break;
            case 7: sx = W - 1 - y, sy = H - 1 - x; break;
            default: sx = W - 1 - y, sy = x; break; /* 8 */
            }
            memcpy(dst + ((size_t)y * ow + x) * 3, im->rgb + ((size_t)sy * W + sx) * 3, 3);
        }
    free(im->rgb);
    im->rgb = dst;
    im->w = ow;
    im->h = oh;
    return 0;
}

/* ---------------------------------------------------------------- JPEG */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
} jpeg_err;

static void jpeg_on_error(j_common_ptr ci) {
    jpeg_err *e = (jpeg_err *)ci->err;
    ci->err->format_message(ci, e->msg);
    longjmp(e->jb, 1);
}

static void jpeg_on_message(j_common_ptr ci, int level) {
    jpeg_err *e = (jpeg_err *)ci->err;
    /* Pillow refuses truncated files ("image file is truncated"); other
     * warnings (extraneous bytes...) it tolerates, and so do we. */
    if (level < 0 && ci->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}

static void jpeg_on_progress(j_common_ptr ci) {
    /* a progressive file with thousands of scans is a decoding bomb */
    j_decompress_ptr d = (j_decompress_ptr)ci;
    if (d->is_decompressor && d->input_scan_number > 1000) {
        jpeg_err *e = (jpeg_err *)ci->err;
        snprintf(e->msg, sizeof(e->msg), "more than 1000 progressive scans");
        longjmp(e->jb, 1);
    }
}

static int decode_jpeg(const uint8_t *data, size_t size, int64_t max_pixels, glmv_rgb *out,
                       char *err) {
    struct jpeg_decompress_struct ci;
    jpeg_err je;
    struct jpeg_progress_mgr prog = {.progress_monitor = jpeg_on_progress};
    uint8_t *volatile row = NULL;
    volatile int orient = 1;
    memset(&je, 0, sizeof(je));
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_on_error;
    je.pub.emit_message = jpeg_on_message;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&ci);
        free(row);
        glmv_rgb_free(out);
        return glmv_errf(err, "JPEG: %s", je.msg);
    }
    jpeg_create_decompress(&ci);
    ci.progress = &prog;
    jpeg_mem_src(&ci, (unsigned char *)data, (unsigned long)size);
    jpeg_save_markers(&ci, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&ci, TRUE);
    for (jpeg_saved_marker_ptr m = ci.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            orient = exif_orientation(m->data, m->data_length);
            break;
        }
    if (check_size("JPEG", ci.image_width, ci.image_height, max_pixels, err)) {
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    /* Pillow: CMYK (and YCCK, converted by libjpeg) is read as "CMYK;I", i.e.
     * Adobe's inverted convention, then converted with cmyk2rgb */
    int cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
    int gray = ci.jpeg_color_space == JCS_GRAYSCALE;
    ci.out_color_space = cmyk ? JCS_CMYK : gray ? JCS_GRAYSCALE : JCS_RGB;
    ci.dct_method = JDCT_ISLOW;
    ci.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&ci);
    const int w = (int)ci.output_width, h = (int)ci.output_height, nc = ci.output_components;
    if (alloc_rgb(out, w, h, err)) {
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    if (nc != 3) {
        row = malloc((size_t)w * nc);
        if (!row) {
            jpeg_destroy_decompress(&ci);
            glmv_rgb_free(out);
            return glmv_errf(err, "JPEG: out of memory");
        }
    }
    while (ci.output_scanline < ci.output_height) {
        int y = (int)ci.output_scanline;
        uint8_t *dst = out->rgb + (size_t)y * w * 3;
        JSAMPROW rp = nc == 3 ? dst : row;
        if (jpeg_read_scanlines(&ci, &rp, 1) != 1 || je.truncated) break;
        if (nc == 1) {
            for (int x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
        } else if (nc == 4) {
            for (int x = 0; x < w; x++) {
                /* "CMYK;I" inverts each byte; then Pillow's cmyk2rgb:
                 * nk = 255 - k; out = nk - MULDIV255(c, nk) */
                int c[4];
                for (int i = 0; i < 4; i++) c[i] = 255 - row[4 * x + i];
                int nk = 255 - c[3];
                for (int i = 0; i < 3; i++) {
                    int t = c[i] * nk + 128;
                    int v = nk - (((t >> 8) + t) >> 8);
                    dst[3 * x + i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        }
    }
    if (je.truncated || ci.output_scanline < ci.output_height) {
        jpeg_destroy_decompress(&ci);
        free(row);
        glmv_rgb_free(out);
        return glmv_errf(err, "JPEG: file is truncated (%zu bytes)", size);
    }
    jpeg_destroy_decompress(&ci);
    free(row);
    return apply_orientation(out, orient, err) ? (glmv_rgb_free(out), -1) : 0;
}

/* ---------------------------------------------------------------- PNG */
typedef struct {
    const uint8_t *p;
    size_t n, off;
    char msg[160];
    jmp_buf jb;
} png_src;

static void png_on_read(png_structp png, png_bytep dst, png_size_t len) {
    png_src *s = png_get_io_ptr(png);
    if (len > s->n - s->off) png_error(png, "file is truncated");
    memcpy(dst, s->p + s->off, len);
    s->off += len;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof(s->msg), "%s", msg);
    longjmp(s->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* The common PNG -- 8 bits a sample, gray, gray + alpha, RGB or RGBA, not interlaced, no eXIf
 * chunk, well formed -- decoded here: its image data inflated by libdeflate (about 7x zlib's
 * speed: 2.8 ms against 20 for a 1120x1120 photo, on the critical path of a first token) and
 * the rows unfiltered (PNG spec, section 9). Anything else, or anything unusual in such a file (a
 * CRC that does not match, an unknown critical chunk, IDAT chunks apart, a stream that inflates
 * to other than the image's bytes, a filter type above 4, no IEND), returns 1 and libpng decodes
 * the file as before, with its own errors. The pixels are libpng's bit for bit (tests/test_image.c
 * compares the two on every filter type and colour type). */
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Paeth's predictor (a left, b above, c above left) without branches: the filter's cost is
 * this chain from one pixel to the next, and mispredicted branches doubled it */
static uint8_t paeth(int a, int b, int c) {
    const int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
    const int m1 = -(pb <= pc), bc = (b & m1) | (c & ~m1), m2 = -(pa <= (pb <= pc ? pb : pc));
    return (uint8_t)((a & m2) | (bc & ~m2));
}

#ifdef __SSE2__
/* Paeth's predictor of a pixel's bytes at once, in 16-bit lanes (the same choice as paeth() in
 * each), plus the filtered bytes d, wrapped to 8 bits */
static inline __m128i paeth_px(__m128i a, __m128i b, __m128i c, __m128i d) {
    const __m128i z = _mm_setzero_si128();
    __m128i pa = _mm_sub_epi16(b, c), pb = _mm_sub_epi16(a, c), pc = _mm_add_epi16(pa, pb);
    pa = _mm_max_epi16(pa, _mm_sub_epi16(z, pa));
    pb = _mm_max_epi16(pb, _mm_sub_epi16(z, pb));
    pc = _mm_max_epi16(pc, _mm_sub_epi16(z, pc));
    const __m128i gt = _mm_cmpgt_epi16(pb, pc), bc = _mm_or_si128(_mm_and_si128(gt, c), _mm_andnot_si128(gt, b));
    const __m128i g2 = _mm_cmpgt_epi16(pa, _mm_min_epi16(pb, pc));
    /* bytewise add: the low bytes wrap, the high bytes stay 0 */
    return _mm_add_epi8(d, _mm_or_si128(_mm_and_si128(g2, bc), _mm_andnot_si128(g2, a)));
}

static inline __m128i px_load(const uint8_t *p) { /* 4 bytes from p, widened */
    int32_t v;
    memcpy(&v, p, 4);
    return _mm_unpacklo_epi8(_mm_cvtsi32_si128(v), _mm_setzero_si128());
}

static inline void px_store(uint8_t *p, __m128i v, int bpp) {
    const int32_t o = _mm_cvtsi128_si32(_mm_packus_epi16(v, v));
    if (bpp == 4) {
        memcpy(p, &o, 4);
    } else { /* constant sizes: moves, not a call to memcpy per pixel */
        memcpy(p, &o, 2);
        p[2] = (uint8_t)((uint32_t)o >> 16);
    }
}

/* The Paeth filter of 3- or 4-byte pixels: of a row r1 below prev, and when r2 is not NULL of
 * the row r2 below r1 as well, skewed a pixel behind it, so that the two rows' chains from a
 * pixel to the next (the filter's whole cost) run side by side; r2 reads r1's outputs from
 * registers. Reads 4 bytes at every pixel, so one byte past a row of 3-byte pixels (the rows
 * are read from a buffer with a byte to spare); writes each pixel's own bytes. */
static void paeth_sse2(uint8_t *r1, uint8_t *r2, const uint8_t *prev, size_t n, int bpp) {
    const __m128i z = _mm_setzero_si128();
    __m128i a1 = z, c1 = z, a2 = z, o1 = z, o1p = z; /* o1, o1p: r1's last two outputs */
    for (size_t i = 0;; i += (size_t)bpp) {
        if (r2 && i) { /* r2's pixel before i: above it o1, above left o1p */
            a2 = paeth_px(a2, o1, o1p, px_load(r2 + i - bpp));
            px_store(r2 + i - bpp, a2, bpp);
        }
        if (i >= n) break;
        const __m128i b1 = px_load(prev + i);
        a1 = paeth_px(a1, b1, c1, px_load(r1 + i));
        px_store(r1 + i, a1, bpp);
        c1 = b1;
        o1p = i ? o1 : z;
        o1 = a1;
    }
}
#endif

/* row (n bytes, bpp bytes a pixel) unfiltered in place; prev the row above (unfiltered), NULL for
 * the first; 0, or 1 for a filter type PNG does not define */
static int png_unfilter(int type, uint8_t *row, const uint8_t *prev, size_t n, int bpp) {
    size_t i;
    switch (type) {
    case 0: return 0;
    case 1:
        for (i = (size_t)bpp; i < n; i++) row[i] = (uint8_t)(row[i] + row[i - bpp]);
        return 0;
    case 2:
        if (prev)
            for (i = 0; i < n; i++) row[i] = (uint8_t)(row[i] + prev[i]);
        return 0;
    case 3:
        for (i = 0; i < n; i++) {
            const int a = i >= (size_t)bpp ? row[i - bpp] : 0, b = prev ? prev[i] : 0;
            row[i] = (uint8_t)(row[i] + ((a + b) >> 1));
        }
        return 0;
    case 4:
        if (!prev) { /* b = c = 0: the predictor is a, as Sub's */
            for (i = (size_t)bpp; i < n; i++) row[i] = (uint8_t)(row[i] + row[i - bpp]);
            return 0;
        }
#ifdef __SSE2__
        if (bpp >= 3) {
            paeth_sse2(row, NULL, prev, n, bpp);
            return 0;
        }
#endif
        for (i = 0; i < (size_t)bpp && i < n; i++) row[i] = (uint8_t)(row[i] + prev[i]);
        for (; i < n; i++) row[i] = (uint8_t)(row[i] + paeth(row[i - bpp], prev[i], prev[i - bpp]));
        return 0;
    default: return 1;
    }
}

static int decode_png_fast(const uint8_t *data, size_t size, int64_t max_pixels, glmv_rgb *out, char *err) {
    size_t off = 8, idat_bytes = 0, idat_first = 0;
    int nidat = 0, idat_done = 0, ch = 0;
    uint32_t w = 0, h = 0;
    /* the chunks: IHDR first, IDAT together, IEND last; CRCs of the critical ones checked */
    for (int first = 1;; first = 0) {
        if (size - off < 12) return 1;
        const uint32_t len = be32(data + off);
        const uint8_t *type = data + off + 4;
        if (len > 0x7fffffffu || len > size - off - 12) return 1;
        for (int i = 0; i < 4; i++) /* libpng refuses other chunk names */
            if (!((type[i] | 0x20) >= 'a' && (type[i] | 0x20) <= 'z')) return 1;
        const int critical = !(type[0] & 0x20);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* (fuzzing: mutated chunks reach the code below) */
        if (critical && libdeflate_crc32(0, type, (size_t)len + 4) != be32(data + off + 8 + len)) return 1;
#endif
        if (first != !memcmp(type, "IHDR", 4)) return 1;
        if (first) {
            const uint8_t *b = data + off + 8;
            if (len != 13) return 1;
            w = be32(b), h = be32(b + 4);
            ch = b[9] == 0 ? 1 : b[9] == 4 ? 2 : b[9] == 2 ? 3 : b[9] == 6 ? 4 : 0;
            if (w == 0 || h == 0 || w > 1000000 || h > 1000000 || b[8] != 8 || !ch || b[10] || b[11] || b[12])
                return 1;
        } else if (!memcmp(type, "IDAT", 4)) {
            if (idat_done) return 1;
            if (!nidat++) idat_first = off;
            idat_bytes += len;
        } else if (!memcmp(type, "IEND", 4)) {
            break;
        } else {
            if (nidat) idat_done = 1;
            if (critical && memcmp(type, "PLTE", 4)) return 1; /* (a suggested palette: nothing to do) */
            if (!memcmp(type, "eXIf", 4)) return 1;            /* libpng's rules for it, and the orientation */
        }
        off += 12 + (size_t)len;
    }
    if (!nidat) return 1;
    if (check_size("PNG", w, h, max_pixels, err)) return -1;
    /* the IDAT chunks' data joined (one chunk: read in place), then inflated whole */
    uint8_t *z = NULL;
    const uint8_t *zp = data + idat_first + 8;
    if (nidat > 1) {
        if (!(z = malloc(idat_bytes))) return 1;
        size_t o = 0;
        for (size_t c = idat_first; o < idat_bytes; c += 12 + (size_t)be32(data + c)) {
            memcpy(z + o, data + c + 8, be32(data + c));
            o += be32(data + c);
        }
        zp = z;
    }
    const size_t rb = (size_t)w * ch, raw_n = (size_t)h * (rb + 1);
    /* + 1: paeth_sse2 reads a byte past the last row. On huge pages from 1 MB: 4 KB pages cost a
     * fault each (a quarter of the decode on the dev VM) */
    uint8_t *raw = glmv_alloc_big(raw_n + 1);
    struct libdeflate_decompressor *dc = raw ? libdeflate_alloc_decompressor() : NULL;
    size_t got = 0;
    const int ok = dc && libdeflate_zlib_decompress(dc, zp, idat_bytes, raw, raw_n, &got) == LIBDEFLATE_SUCCESS &&
                   got == raw_n;
    if (dc) libdeflate_free_decompressor(dc);
    free(z);
    if (!ok) {
        free(raw);
        return 1;
    }
    /* rows unfiltered in place (each after its filter byte), two Paeth rows at once where they
     * come in pairs; RGB rows packed in place as soon as the row below no longer reads them (row y
     * moves left by y + 1 bytes, onto rows already moved), while they are in cache */
    for (uint32_t y = 0, packed = 0; y < h; y++) {
        uint8_t *row = raw + (size_t)y * (rb + 1) + 1;
#ifdef __SSE2__
        if (ch >= 3 && y && row[-1] == 4 && y + 1 < h && row[rb] == 4) {
            paeth_sse2(row, row + rb + 1, row - (rb + 1), rb, ch);
            y++;
        } else
#endif
            if (png_unfilter(row[-1], row, y ? row - (rb + 1) : NULL, rb, ch)) {
            free(raw);
            return 1;
        }
        for (; ch == 3 && packed < y; packed++)
            memmove(raw + (size_t)packed * rb, raw + (size_t)packed * (rb + 1) + 1, rb);
        if (ch == 3 && y + 1 == h) memmove(raw + (size_t)y * rb, raw + (size_t)y * (rb + 1) + 1, rb);
    }
    if (ch == 3) { /* RGB: the packed rows are the image */
        uint8_t *fit = realloc(raw, (size_t)h * rb);
        out->rgb = fit ? fit : raw;
        out->w = (int)w;
        out->h = (int)h;
        return 0;
    }
    if (alloc_rgb(out, (int)w, (int)h, err)) {
        free(raw);
        return -1;
    }
    for (uint32_t y = 0; y < h; y++) { /* to RGB as Pillow's convert does */
        const uint8_t *row = raw + (size_t)y * (rb + 1) + 1;
        uint8_t *o = out->rgb + (size_t)y * w * 3;
        for (uint32_t x = 0; x < w; x++, o += 3) {
            const uint8_t *px = row + (size_t)x * ch;
            if (ch <= 2) o[0] = o[1] = o[2] = px[0];
            else o[0] = px[0], o[1] = px[1], o[2] = px[2];
        }
    }
    free(raw);
    return 0;
}

static int decode_png(const uint8_t *data, size_t size, int64_t max_pixels, glmv_rgb *out,
                      char *err) {
    const int fast = decode_png_fast(data, size, max_pixels, out, err);
    if (fast <= 0) return fast; /* decoded, or a size or memory error */
    png_src src = {.p = data, .n = size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error,
                                             png_on_warning);
    if (!png) return glmv_errf(err, "PNG: out of memory");
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile buf = NULL;
    png_bytep *volatile rows = NULL;
    volatile int have_image = 0;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return glmv_errf(err, "PNG: out of memory");
    }
    if (setjmp(src.jb)) {
        if (have_image) goto finish; /* trouble after the pixels (e.g. in trailing chunks) */
        png_destroy_read_struct(&png, &info, NULL);
        free(buf);
        free(rows);
        return glmv_errf(err, "PNG: %s", src.msg);
    }
    png_set_read_fn(png, &src, png_on_read);
    png_set_user_limits(png, 1000000, 1000000);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ctype, ilace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &ilace, NULL, NULL);
    if (check_size("PNG", w, h, max_pixels, err)) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int ch = png_get_channels(png, info);
    const int d = png_get_bit_depth(png, info);
    const size_t rb = png_get_rowbytes(png, info);
    if (ch < 1 || ch > 4 || (d != 8 && d != 16) || rb < (size_t)w * ch * (d / 8))
        png_error(png, "unexpected pixel layout");
    buf = malloc(rb * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!buf || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = buf + rb * y;
    png_read_image(png, rows);
    if (d == 8 && ch == 3 && rb == (size_t)w * 3) { /* already RGB, rows packed: taken as they are */
        out->rgb = buf;
        out->w = (int)w;
        out->h = (int)h;
        buf = NULL;
        have_image = 1;
        png_read_end(png, info);
        goto finish;
    }
    if (alloc_rgb(out, (int)w, (int)h, err)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(buf);
        free(rows);
        return -1;
    }
    /* Pillow's modes: 8-bit anything -> take the colour channels; 16-bit RGB,
     * RGBA, LA -> the high byte ("RGB;16B"...); 16-bit gray is mode "I;16"
     * and convert("RGB") clips it to 255 */
    for (png_uint_32 y = 0; y < h; y++) {
        const uint8_t *s = rows[y];
        uint8_t *o = out->rgb + (size_t)y * w * 3;
        for (png_uint_32 x = 0; x < w; x++, o += 3) {
            if (d == 8) {
                const uint8_t *px = s + (size_t)x * ch;
                if (ch <= 2) o[0] = o[1] = o[2] = px[0];
                else o[0] = px[0], o[1] = px[1], o[2] = px[2];
            } else {
                const uint8_t *px = s + (size_t)x * ch * 2;
                if (ch == 1) {
                    unsigned v = (unsigned)px[0] << 8 | px[1];
                    o[0] = o[1] = o[2] = (uint8_t)(v > 255 ? 255 : v);
                } else if (ch == 2) {
                    o[0] = o[1] = o[2] = px[0];
                } else {
                    o[0] = px[0], o[1] = px[2], o[2] = px[4];
                }
            }
        }
    }
    have_image = 1;
    png_read_end(png, info); /* eXIf may follow the image data */
finish:;
    int orient = 1;
#ifdef PNG_eXIf_SUPPORTED
    png_bytep exif = NULL;
    png_uint_32 exif_n = 0;
    if (png_get_eXIf_1(png, info, &exif_n, &exif) && exif && exif_n)
        orient = exif_orientation(exif, exif_n);
#endif
    png_destroy_read_struct(&png, &info, NULL);
    free(buf);
    free(rows);
    return apply_orientation(out, orient, err) ? (glmv_rgb_free(out), -1) : 0;
}

/* ---------------------------------------------------------------- WebP */
static int decode_webp(const uint8_t *data, size_t size, int64_t max_pixels, glmv_rgb *out,
                       char *err) {
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(data, size, &f);
    if (st == VP8_STATUS_NOT_ENOUGH_DATA) return glmv_errf(err, "WebP: file is truncated");
    if (st != VP8_STATUS_OK) return glmv_errf(err, "WebP: bad header (status %d)", (int)st);
    if (check_size("WebP", f.width, f.height, max_pixels, err)) return -1;
    if (alloc_rgb(out, f.width, f.height, err)) return -1;
    if (f.has_animation) {
        /* Pillow reads WebP through WebPAnimDecoder: frame 1 drawn on a canvas
         * of transparent black, RGBA; we keep the colour channels */
        WebPData wd = {data, size};
        WebPAnimDecoderOptions o;
        WebPAnimDecoderOptionsInit(&o);
        o.color_mode = MODE_RGBA;
        o.use_threads = 0;
        WebPAnimDecoder *ad = WebPAnimDecoderNew(&wd, &o);
        WebPAnimInfo ai;
        uint8_t *fr = NULL;
        int ts = 0;
        if (!ad || !WebPAnimDecoderGetInfo(ad, &ai) || (int)ai.canvas_width != f.width ||
            (int)ai.canvas_height != f.height || !WebPAnimDecoderGetNext(ad, &fr, &ts) || !fr) {
            if (ad) WebPAnimDecoderDelete(ad);
            glmv_rgb_free(out);
            return glmv_errf(err, "WebP: cannot decode the first frame (corrupt or truncated)");
        }
        for (size_t i = 0; i < (size_t)f.width * f.height; i++) memcpy(out->rgb + 3 * i, fr + 4 * i, 3);
        WebPAnimDecoderDelete(ad);
    } else if (!WebPDecodeRGBInto(data, size, out->rgb, (size_t)f.width * f.height * 3, f.width * 3)) {
        /* WebPDecodeRGB gives the colour of the RGBA decode with alpha dropped */
        glmv_rgb_free(out);
        return glmv_errf(err, "WebP: cannot decode (corrupt or truncated)");
    }
    /* EXIF chunk of an extended (VP8X) file */
    int orient = 1;
    if (size >= 30 && memcmp(data + 12, "VP8X", 4) == 0 && (data[20] & 0x08)) {
        size_t off = 12;
        while (off + 8 <= size) {
            uint32_t len = data[off + 4] | data[off + 5] << 8 | data[off + 6] << 16 |
                           (uint32_t)data[off + 7] << 24;
            if (len > size - off - 8) break;
            if (memcmp(data + off, "EXIF", 4) == 0) {
                orient = exif_orientation(data + off + 8, len);
                break;
            }
            off += 8 + (size_t)len + (len & 1);
        }
    }
    return apply_orientation(out, orient, err) ? (glmv_rgb_free(out), -1) : 0;
}

/* ---------------------------------------------------------------- GIF */
typedef struct {
    const uint8_t *p;
    size_t n, off;
} gif_src;

static int gif_on_read(GifFileType *g, GifByteType *dst, int len) {
    gif_src *s = g->UserData;
    if (len < 0) return 0;
    size_t k = (size_t)len;
    if (k > s->n - s->off) k = s->n - s->off;
    memcpy(dst, s->p + s->off, k);
    s->off += k;
    return (int)k;
}

/* ref: Pillow GifImagePlugin, first frame: the canvas starts as the
 * transparency index of the frame (or 0), the frame is drawn at its offset
 * (the canvas grows to hold it), then "P" -> RGB through the palette. */
static int decode_gif(const uint8_t *data, size_t size, int64_t max_pixels, glmv_rgb *out,
                      char *err) {
    gif_src src = {data, size, 0};
    int e = 0;
    GifFileType *g = DGifOpen(&src, gif_on_read, &e);
    if (!g) return glmv_errf(err, "GIF: %s", GifErrorString(e) ? GifErrorString(e) : "bad header");
    int transp = -1, rc = -1;
    uint8_t *idx = NULL;
    GifRecordType rt;
    for (;;) {
        if (DGifGetRecordType(g, &rt) == GIF_ERROR) {
            glmv_errf(err, "GIF: file is truncated or corrupt before the first frame");
            goto done;
        }
        if (rt == TERMINATE_RECORD_TYPE) {
            glmv_errf(err, "GIF: no image in file");
            goto done;
        }
        if (rt == IMAGE_DESC_RECORD_TYPE) break;
        if (rt == EXTENSION_RECORD_TYPE) {
            int code;
            GifByteType *ext;
            if (DGifGetExtension(g, &code, &ext) == GIF_ERROR) {
                glmv_errf(err, "GIF: corrupt extension block");
                goto done;
            }
            if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4 && (ext[1] & 1))
                transp = ext[4];
            while (ext) {
                if (DGifGetExtensionNext(g, &ext) == GIF_ERROR) {
                    glmv_errf(err, "GIF: corrupt extension block");
                    goto done;
                }
            }
        }
    }
    if (DGifGetImageDesc(g) == GIF_ERROR) {
        glmv_errf(err, "GIF: corrupt image descriptor");
        goto done;
    }
    const GifImageDesc *d = &g->Image;
    int64_t fx = d->Left, fy = d->Top, fw = d->Width, fh = d->Height;
    int64_t cw = GLMV_MAX((int64_t)g->SWidth, fx + fw), chh = GLMV_MAX((int64_t)g->SHeight, fy + fh);
    if (fw <= 0 || fh <= 0) {
        glmv_errf(err, "GIF: empty first frame");
        goto done;
    }
    if (check_size("GIF", cw, chh, max_pixels, err)) goto done;
    const ColorMapObject *cm = d->ColorMap ? d->ColorMap : g->SColorMap;
    idx = malloc((size_t)cw * chh);
    if (!idx) {
        glmv_errf(err, "GIF: out of memory");
        goto done;
    }
    memset(idx, transp >= 0 ? transp : 0, (size_t)cw * chh);
    static const int ioff[4] = {0, 4, 2, 1}, istep[4] = {8, 8, 4, 2};
    const int passes = d->Interlace ? 4 : 1;
    for (int p = 0; p < passes; p++) {
        int y0 = d->Interlace ? ioff[p] : 0, st = d->Interlace ? istep[p] : 1;
        for (int64_t y = y0; y < fh; y += st) {
            if (DGifGetLine(g, idx + (size_t)(fy + y) * cw + fx, (int)fw) == GIF_ERROR) {
                glmv_errf(err, "GIF: file is truncated or corrupt in the first frame");
                goto done;
            }
        }
    }
    if (alloc_rgb(out, (int)cw, (int)chh, err)) goto done;
    for (size_t i = 0; i < (size_t)cw * chh; i++) {
        int k = idx[i];
        uint8_t *o = out->rgb + i * 3;
        if (cm && k < cm->ColorCount)
            o[0] = cm->Colors[k].Red, o[1] = cm->Colors[k].Green, o[2] = cm->Colors[k].Blue;
        else if (cm)
            o[0] = o[1] = o[2] = 0;
        else
            o[0] = o[1] = o[2] = (uint8_t)k; /* no palette: Pillow reads it as "L" */
    }
    rc = 0;
done:
    free(idx);
    DGifCloseFile(g, &e);
    return rc;
}

/* ---------------------------------------------------------------- BMP
 * ref: Pillow BmpImagePlugin. Headers: OS/2 core (12), INFO (40) and its V2-V5
 * extensions; 1/4/8-bit palette, 16 (5-5-5 or the 5-6-5 bitfields), 24,
 * 32 (BGRX, or the bitfield layouts Pillow knows); RLE8/RLE4. */
static uint32_t le16(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

static int bmp_rle(const uint8_t *p, size_t n, int w, int h, int four, uint8_t *idx) {
    /* idx rows bottom-up as stored; returns 0 (Pillow tolerates an early end) */
    int x = 0, y = 0;
    size_t i = 0;
    while (i + 1 < n && y < h) {
        int a = p[i], b = p[i + 1];
        i += 2;
        if (a) {
            for (int k = 0; k < a && x < w; k++, x++)
                idx[(size_t)y * w + x] = four ? (k & 1 ? b & 15 : b >> 4) : b;
        } else if (b == 0) {
            x = 0, y++;
        } else if (b == 1) {
            break;
        } else if (b == 2) {
            if (i + 1 >= n) break;
            x += p[i], y += p[i + 1];
            i += 2;
        } else {
            size_t nbytes = four ? ((size_t)b + 1) / 2 : (size_t)b;
            if (i + nbytes > n) break;
            for (int k = 0; k < b && x < w; k++, x++) {
                int v = four ? (k & 1 ? p[i + k / 2] & 15 : p[i + k / 2] >> 4) : p[i + k];
                idx[(size_t)y * w + x] = (uint8_t)v;
            }
            i += nbytes + (nbytes & 1);
        }
    }
    return 0;
}

static int decode_bmp(const uint8_t *p, size_t n, int64_t max_pixels, glmv_rgb *out, char *err) {
    if (n < 26) return glmv_errf(err, "BMP: file is truncated (%zu bytes)", n);
    uint32_t off = le32(p + 10), hs = le32(p + 14);
    int64_t w, h;
    int bpp, comp = 0, core = hs == 12;
    uint32_t ncol = 0, masks[4] = {0, 0, 0, 0};
    if (core) {
        w = le16(p + 18), h = (int16_t)le16(p + 20), bpp = (int)le16(p + 24);
    } else if (hs >= 40 && hs <= 124 && n >= 14 + 40) {
        w = (int32_t)le32(p + 18), h = (int32_t)le32(p + 22), bpp = (int)le16(p + 28);
        comp = (int)le32(p + 30), ncol = le32(p + 46);
        if (comp == 3 || comp == 6) {
            size_t mo = hs >= 52 ? 54 : 14 + hs; /* masks inside V2+ headers, else after */
            int nm = comp == 6 || hs >= 56 ? 4 : 3;
            if (mo + 4 * nm > n) return glmv_errf(err, "BMP: file is truncated (bitfields)");
            for (int i = 0; i < nm; i++) masks[i] = le32(p + mo + 4 * i);
        }
    } else {
        return glmv_errf(err, "BMP: unsupported header size %u", hs);
    }
    int top_down = h < 0;
    if (top_down) h = -h;
    if (w <= 0 || h <= 0) return glmv_errf(err, "BMP: bad image size %lldx%lld", (long long)w, (long long)h);
    if (check_size("BMP", w, h, max_pixels, err)) return -1;
    if (!(bpp == 1 || bpp == 4 || bpp == 8 || bpp == 16 || bpp == 24 || bpp == 32))
        return glmv_errf(err, "BMP: unsupported bit depth %d", bpp);
    int rle = (comp == 1 && bpp == 8) || (comp == 2 && bpp == 4);
    if (!(comp == 0 || rle || ((comp == 3 || comp == 6) && (bpp == 16 || bpp == 32))))
        return glmv_errf(err, "BMP: unsupported compression %d at %d bits", comp, bpp);
    /* palette */
    uint8_t pal[256][3];
    memset(pal, 0, sizeof(pal));
    if (bpp <= 8) {
        int esz = core ? 3 : 4;
        uint32_t cnt = ncol && ncol <= 256u ? ncol : 1u << bpp;
        size_t po = 14 + (size_t)hs;
        for (uint32_t i = 0; i < cnt && po + (size_t)esz * (i + 1) <= n; i++) {
            pal[i][0] = p[po + esz * i + 2];
            pal[i][1] = p[po + esz * i + 1];
            pal[i][2] = p[po + esz * i + 0];
        }
    }
    /* bitfields: the layouts Pillow maps to raw modes */
    enum { BF_NONE, BF_555, BF_565, BF_BGRX, BF_RGBX, BF_XBGR, BF_XRGB } bf = BF_NONE;
    if (comp == 3 || comp == 6) {
        uint32_t r = masks[0], g = masks[1], b = masks[2];
        if (bpp == 16 && r == 0x7c00 && g == 0x3e0 && b == 0x1f) bf = BF_555;
        else if (bpp == 16 && r == 0xf800 && g == 0x7e0 && b == 0x1f) bf = BF_565;
        else if (bpp == 32 && r == 0xff0000 && g == 0xff00 && b == 0xff) bf = BF_BGRX;
        else if (bpp == 32 && r == 0xff && g == 0xff00 && b == 0xff0000) bf = BF_RGBX;
        else if (bpp == 32 && r == 0xff000000u && g == 0xff0000 && b == 0xff00) bf = BF_XBGR;
        else if (bpp == 32 && r == 0xff00 && g == 0xff0000 && b == 0xff000000u) bf = BF_XRGB;
        else return glmv_errf(err, "BMP: unsupported bitfields layout");
    } else if (bpp == 16) {
        bf = BF_555;
    }
    if (off >= n) return glmv_errf(err, "BMP: file is truncated (no pixel data)");
    const uint8_t *px = p + off;
    size_t avail = n - off;
    uint8_t *ridx = NULL;
    size_t stride = ((size_t)w * bpp + 31) / 32 * 4;
    if (rle) {
        ridx = calloc((size_t)w * h, 1);
        if (!ridx) return glmv_errf(err, "BMP: out of memory");
        bmp_rle(px, avail, (int)w, (int)h, comp == 2, ridx);
    } else if (stride * (size_t)h > avail) {
        return glmv_errf(err, "BMP: file is truncated (%zu of %zu pixel bytes)", avail, stride * (size_t)h);
    }
    if (alloc_rgb(out, (int)w, (int)h, err)) {
        free(ridx);
        return -1;
    }
    for (int64_t y = 0; y < h; y++) {
        int64_t sy = top_down ? y : h - 1 - y;
        const uint8_t *s = px + stride * (size_t)sy;
        uint8_t *o = out->rgb + (size_t)y * w * 3;
        for (int64_t x = 0; x < w; x++, o += 3) {
            int k = -1;
            if (rle) k = ridx[(size_t)sy * w + x];
            else if (bpp == 1) k = (s[x >> 3] >> (7 - (x & 7))) & 1;
            else if (bpp == 4) k = (s[x >> 1] >> (x & 1 ? 0 : 4)) & 15;
            else if (bpp == 8) k = s[x];
            if (k >= 0) {
                o[0] = pal[k][0], o[1] = pal[k][1], o[2] = pal[k][2];
            } else if (bpp == 24) {
                o[0] = s[3 * x + 2], o[1] = s[3 * x + 1], o[2] = s[3 * x];
            } else if (bpp == 16) {
                uint32_t v = le16(s + 2 * x);
                if (bf == BF_565)
                    o[0] = (uint8_t)(((v >> 11) & 31) * 255 / 31), o[1] = (uint8_t)(((v >> 5) & 63) * 255 / 63),
                    o[2] = (uint8_t)((v & 31) * 255 / 31);
                else
                    o[0] = (uint8_t)(((v >> 10) & 31) * 255 / 31), o[1] = (uint8_t)(((v >> 5) & 31) * 255 / 31),
                    o[2] = (uint8_t)((v & 31) * 255 / 31);
            } else { /* 32 */
                const uint8_t *q = s + 4 * x;
                switch (bf) {
                case BF_RGBX: o[0] = q[0], o[1] = q[1], o[2] = q[2]; break;
                case BF_XBGR: o[0] = q[3], o[1] = q[2], o[2] = q[1]; break;
                case BF_XRGB: o[0] = q[1], o[1] = q[2], o[2] = q[3]; break;
                default: o[0] = q[2], o[1] = q[1], o[2] = q[0]; break; /* BGRX */
                }
            }
        }
    }
    free(ridx);
    return 0;
}

/* ---------------------------------------------------------------- entry */
static const char *sniff_other(const uint8_t *p, size_t n) {
    if (n >= 4 && (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0)) return "TIFF";
    if (n >= 12 && memcmp(p + 4, "ftyp", 4) == 0) {
        if (memcmp(p + 8, "avif", 4) == 0 || memcmp(p + 8, "avis", 4) == 0) return "AVIF";
        if (memcmp(p + 8, "heic", 4) == 0 || memcmp(p + 8, "heix", 4) == 0 ||
            memcmp(p + 8, "mif1", 4) == 0)
            return "HEIF";
        return "an MP4/QuickTime container";
    }
    if (n >= 4 && memcmp(p, "\0\0\1\0", 4) == 0) return "ICO";
    if (n >= 4 && memcmp(p, "8BPS", 4) == 0) return "PSD";
    if (n >= 5 && (memcmp(p, "<?xml", 5) == 0 || memcmp(p, "<svg", 4) == 0)) return "SVG/XML";
    if (n >= 4 && memcmp(p, "%PDF", 4) == 0) return "PDF";
    return NULL;
}

int glmv_image_decode_mem(const void *data, size_t size, int64_t max_pixels, glmv_rgb *out,
                          char *err) {
    const uint8_t *p = data;
    memset(out, 0, sizeof(*out));
    if (!p || size == 0) return glmv_errf(err, "image: empty input (0 bytes)");
    if (size >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return decode_jpeg(p, size, max_pixels, out, err);
    if (size >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
        return decode_png(p, size, max_pixels, out, err);
    if (size >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return decode_webp(p, size, max_pixels, out, err);
    if (size >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
        return decode_gif(p, size, max_pixels, out, err);
    if (size >= 2 && p[0] == 'B' && p[1] == 'M') return decode_bmp(p, size, max_pixels, out, err);
    const char *other = sniff_other(p, size);
    if (other)
        return glmv_errf(err, "image: %s is not supported (use JPEG, PNG, WebP, GIF or BMP)", other);
    return glmv_errf(err, "image: unknown format (not JPEG, PNG, WebP, GIF or BMP; %zu bytes)", size);
}

int glmv_image_decode_file(const char *path, int64_t max_pixels, glmv_rgb *out, char *err) {
    memset(out, 0, sizeof(*out));
    if (glmv_check_regular(path, "image", err)) return -1;
    size_t len = 0;
    char *buf = glmv_read_file(path, &len, err);
    if (!buf) return -1;
    char e2[GLMV_ERR_SIZE];
    int rc = glmv_image_decode_mem(buf, len, max_pixels, out, e2);
    free(buf);
    if (rc) return glmv_errf(err, "%s: %s", path, e2);
    return 0;
}
