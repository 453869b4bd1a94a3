/* test_pdf.c -- PDF pages as images (src/pdf.c) on the fixtures of scripts/gen_pdf_fixtures.py:
 * page ranges, the rendered pixels (a page rendered 1:1 against the PNG it embeds: orientation
 * and channel order), the size chosen for the model's budget, text drawn with a real font,
 * messages with several PDFs, and hostile files (damaged, encrypted, 2,000 pages, 200-inch and
 * 720:1 pages, too many tokens for the context) refused with their kind of error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "image.h"
#include "pdf.h"
#include "test.h"

#define FIX "tests/fixtures/pdf/"

TEST(page_ranges) {
    int sel[64], n;
    char err[GLMV_ERR_SIZE];
    CHECK_EQ_INT(glmv_pdf_parse_pages(NULL, 3, sel, 64, &n, err), 0);
    CHECK(n == 3 && sel[0] == 0 && sel[1] == 1 && sel[2] == 2);
    CHECK_EQ_INT(glmv_pdf_parse_pages("2", 3, sel, 64, &n, err), 0);
    CHECK(n == 1 && sel[0] == 1);
    CHECK_EQ_INT(glmv_pdf_parse_pages("3, 1-2", 5, sel, 64, &n, err), 0);
    CHECK(n == 3 && sel[0] == 2 && sel[1] == 0 && sel[2] == 1);
    CHECK_EQ_INT(glmv_pdf_parse_pages("4-", 5, sel, 64, &n, err), 0);
    CHECK(n == 2 && sel[0] == 3 && sel[1] == 4);
    CHECK_EQ_INT(glmv_pdf_parse_pages("-2", 5, sel, 64, &n, err), 0);
    CHECK(n == 2 && sel[0] == 0 && sel[1] == 1);
    static const char *bad[] = {"0", "6", "3-2", "x", "1,,", "1-2-3", "-", "1;2", "99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_MSG(glmv_pdf_parse_pages(bad[i], 5, sel, 64, &n, err) != 0, "'%s' accepted", bad[i]);
        CHECK_EQ_INT(glmv_last_error(), GLMV_E_INVALID);
    }
    /* more pages than allowed at once: the document's fault, with advice */
    CHECK(glmv_pdf_parse_pages("1-", 100, sel, 64, &n, err) != 0);
    CHECK(strstr(err, "at most 64") != NULL);
}

static int expand1(const char *file, const char *pages, int64_t page_pixels, int64_t max_tokens,
                   glmv_pdf_expansion *x, char *err) {
    glmv_part p = {.kind = GLMV_PART_PDF, .path = file, .pages = pages};
    glmv_message m = {"user", &p, 1, NULL};
    return glmv_pdf_expand(&m, 1, page_pixels, 28, max_tokens, x, err);
}

TEST(page_rendered_one_to_one_matches_its_image) {
    /* page 1 is models/demo/example.png (252 x 195) on a 252 x 195 point page: with a budget of
     * exactly its pixels the page is drawn at 72 dpi, pixel for pixel */
    glmv_pdf_expansion x;
    char err[GLMV_ERR_SIZE];
    CHECK_EQ_INT(expand1(FIX "pages.pdf", "1", 252 * 195, 1 << 20, &x, err), 0);
    CHECK_EQ_INT(x.n_bufs, 1);
    CHECK(x.expanded && x.msgs[0].n_parts == 1 && x.msgs[0].parts[0].kind == GLMV_PART_IMAGE);
    glmv_rgb page = {0}, png = {0};
    CHECK_EQ_INT(glmv_image_decode_mem(x.msgs[0].parts[0].data, x.msgs[0].parts[0].size, 0, &page, err), 0);
    CHECK_EQ_INT(glmv_image_decode_file("models/demo/example.png", 0, &png, err), 0);
    CHECK(page.w == 252 && page.h == 195);
    if (page.w == png.w && page.h == png.h) {
        double sum = 0;
        int64_t n = (int64_t)png.w * png.h * 3;
        for (int64_t i = 0; i < n; i++) sum += abs((int)page.rgb[i] - (int)png.rgb[i]);
        CHECK_MSG(sum / n < 2.0, "mean absolute difference %.2f", sum / n);
    }
    glmv_rgb_free(&page);
    glmv_rgb_free(&png);
    glmv_pdf_expansion_free(&x);
}

TEST(size_follows_dpi_and_budget) {
    glmv_pdf_expansion x;
    char err[GLMV_ERR_SIZE];
    glmv_rgb im = {0};
    /* a large budget: 150 dpi, 252 pt -> 525 px */
    CHECK_EQ_INT(expand1(FIX "pages.pdf", "1", 1 << 24, 1 << 20, &x, err), 0);
    CHECK_EQ_INT(glmv_image_decode_mem(x.msgs[0].parts[0].data, x.msgs[0].parts[0].size, 0, &im, err), 0);
    CHECK(im.w == 525 && im.h == 406);
    glmv_rgb_free(&im);
    glmv_pdf_expansion_free(&x);
    /* a 200 x 200 inch page within a 1 MP budget */
    CHECK_EQ_INT(expand1(FIX "huge_page.pdf", "1", 1000000, 1 << 20, &x, err), 0);
    CHECK_EQ_INT(glmv_image_decode_mem(x.msgs[0].parts[0].data, x.msgs[0].parts[0].size, 0, &im, err), 0);
    CHECK(im.w == 1000 && im.h == 1000);
    /* its content: a red square from 1000 to 13400 pt (y up), white around */
    if (im.w == 1000) {
        const uint8_t *c = im.rgb + (500 * 1000 + 500) * 3, *e = im.rgb + (10 * 1000 + 10) * 3;
        CHECK(c[0] > 250 && c[1] < 5 && c[2] < 5);
        CHECK(e[0] > 250 && e[1] > 250 && e[2] > 250);
    }
    glmv_rgb_free(&im);
    glmv_pdf_expansion_free(&x);
}

TEST(text_is_drawn) {
    glmv_pdf_expansion x;
    char err[GLMV_ERR_SIZE];
    glmv_rgb im = {0};
    CHECK_EQ_INT(expand1(FIX "pages.pdf", "3", 1 << 24, 1 << 20, &x, err), 0);
    CHECK_EQ_INT(glmv_image_decode_mem(x.msgs[0].parts[0].data, x.msgs[0].parts[0].size, 0, &im, err), 0);
    int64_t dark = 0;
    for (int64_t i = 0; i < (int64_t)im.w * im.h; i++) dark += im.rgb[3 * i] < 128;
    /* a line of 24 pt text covers a few percent of the page, not none and not all */
    CHECK_MSG(dark > (int64_t)im.w * im.h / 200 && dark < (int64_t)im.w * im.h / 4, "%lld dark pixels",
              (long long)dark);
    glmv_rgb_free(&im);
    glmv_pdf_expansion_free(&x);
}

TEST(messages_keep_their_order) {
    /* text, a PDF's pages 2 and 1, text, an image, another PDF (from memory) */
    size_t n;
    char err[GLMV_ERR_SIZE];
    char *mem = glmv_read_file(FIX "example.pdf", &n, err);
    CHECK(mem != NULL);
    glmv_part parts[] = {
        {.kind = GLMV_PART_TEXT, .text = "a"},
        {.kind = GLMV_PART_PDF, .path = FIX "pages.pdf", .pages = "2,1"},
        {.kind = GLMV_PART_TEXT, .text = "b"},
        {.kind = GLMV_PART_IMAGE, .path = "models/demo/example.png"},
        {.kind = GLMV_PART_PDF, .data = mem, .size = n},
    };
    glmv_part sys = {.kind = GLMV_PART_TEXT, .text = "s"};
    glmv_message msgs[] = {{"system", &sys, 1, NULL}, {"user", parts, 5, NULL}};
    glmv_pdf_expansion x;
    CHECK_EQ_INT(glmv_pdf_expand(msgs, 2, 1 << 24, 28, 1 << 20, &x, err), 0);
    CHECK_EQ_INT(x.n_bufs, 3);
    CHECK(x.msgs[0].n_parts == 1 && !strcmp(x.msgs[0].parts[0].text, "s"));
    const glmv_part *q = x.msgs[1].parts;
    CHECK_EQ_INT(x.msgs[1].n_parts, 6);
    CHECK(q[0].kind == GLMV_PART_TEXT && q[1].kind == GLMV_PART_IMAGE && q[2].kind == GLMV_PART_IMAGE &&
          q[3].kind == GLMV_PART_TEXT && q[4].kind == GLMV_PART_IMAGE && q[4].path &&
          q[5].kind == GLMV_PART_IMAGE && q[5].data);
    /* page 2 (the digits, 162 pt wide) comes first */
    glmv_rgb im = {0};
    CHECK_EQ_INT(glmv_image_decode_mem(q[1].data, q[1].size, 0, &im, err), 0);
    CHECK_EQ_INT(im.w, 337);
    glmv_rgb_free(&im);
    glmv_pdf_expansion_free(&x);
    /* no PDF: the caller's messages, untouched */
    CHECK_EQ_INT(glmv_pdf_expand(msgs, 1, 1 << 24, 28, 1 << 20, &x, err), 0);
    CHECK(!x.expanded && x.msgs == msgs && x.n_bufs == 0);
    glmv_pdf_expansion_free(&x);
    free(mem);
}

TEST(hostile_files_refused) {
    glmv_pdf_expansion x;
    char err[GLMV_ERR_SIZE];
    static const struct {
        const char *file, *pages, *says;
        int64_t max_tokens;
        glmv_errcode code;
    } t[] = {
        {FIX "broken.pdf", NULL, "damaged", 1 << 20, GLMV_E_MEDIA},
        {FIX "encrypted.pdf", NULL, "encrypted", 1 << 20, GLMV_E_MEDIA},
        {FIX "many_pages.pdf", NULL, "2000 pages", 1 << 20, GLMV_E_MEDIA},
        {FIX "huge_page.pdf", "2", "aspect ratio", 1 << 20, GLMV_E_MEDIA},
        {FIX "pages.pdf", "4", "beyond", 1 << 20, GLMV_E_INVALID},
        {FIX "pages.pdf", NULL, "context", 100, GLMV_E_CONTEXT},
        {"models/demo/example.png", NULL, "not a PDF", 1 << 20, GLMV_E_MEDIA},
        {FIX "nothere.pdf", NULL, "nothere.pdf", 1 << 20, GLMV_E_INTERNAL},
        {"tests/fixtures", NULL, "directory", 1 << 20, GLMV_E_INTERNAL},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        err[0] = 0;
        int rc = expand1(t[i].file, t[i].pages, 1 << 22, t[i].max_tokens, &x, err);
        CHECK_MSG(rc != 0, "%s accepted", t[i].file);
        CHECK_MSG(strstr(err, t[i].says) != NULL, "%s: '%s' does not say '%s'", t[i].file, err, t[i].says);
        /* the prompt stage turns INTERNAL (a file that cannot be read) into MEDIA */
        CHECK_MSG(glmv_last_error() == t[i].code, "%s: code %d", t[i].file, (int)glmv_last_error());
        CHECK(x.n_bufs == 0 && !x.expanded);
    }
    /* a page range picks 1 of the 2,000 pages */
    CHECK_EQ_INT(expand1(FIX "many_pages.pdf", "1500", 1 << 22, 1 << 20, &x, err), 0);
    CHECK_EQ_INT(x.n_bufs, 1);
    glmv_pdf_expansion_free(&x);
    /* a data part that is not a PDF, and an empty one */
    glmv_part p = {.kind = GLMV_PART_PDF, .data = "%PDX-1.4 hello", .size = 14};
    glmv_message m = {"user", &p, 1, NULL};
    CHECK(glmv_pdf_expand(&m, 1, 1 << 22, 28, 1 << 20, &x, err) != 0 && strstr(err, "not a PDF"));
    p.size = 0;
    CHECK(glmv_pdf_expand(&m, 1, 1 << 22, 28, 1 << 20, &x, err) != 0);
}

int main(void) {
    RUN(page_ranges);
    RUN(page_rendered_one_to_one_matches_its_image);
    RUN(size_follows_dpi_and_budget);
    RUN(text_is_drawn);
    RUN(messages_keep_their_order);
    RUN(hostile_files_refused);
    return test_summary("pdf");
}
