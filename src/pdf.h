/* pdf.h -- documents as pages: a PDF's pages rendered with poppler at a size chosen for the
 * model, each becoming an image of the prompt (GLMV_PART_PDF).
 *
 * The prompt stage calls glmv_pdf_expand first: it replaces every PDF part by its selected
 * pages as image parts (24-bit BMP in memory, which the image decoder reads back without
 * loss), so the template, the preprocessing and the cache see ordinary images. Work is
 * bounded before anything is rendered: the page selection, each page's pixel size and the
 * vision tokens of all selected pages are checked against the limits and the context.
 */
#ifndef GLMV_PDF_H
#define GLMV_PDF_H

#include <stdint.h>

#include "glmv.h"

/* Pages at most this many dots per inch; fewer when the model's image budget is smaller. */
#define GLMV_PDF_DPI 150.0
/* At most this many pages selected from one PDF ("all" of a longer one is refused). */
#define GLMV_PDF_MAX_PAGES 1024

/* A page selection: "1-3,5,9-" (1-based, in the order given; "N-" to the last page, "-M" from
 * the first); NULL or "" is every page. Fills sel[0..*n) with 0-based page numbers. */
int glmv_pdf_parse_pages(const char *spec, int n_pages, int *sel, int max_sel, int *n, char *err);

typedef struct {
    glmv_message *msgs;         /* the messages with PDF parts replaced (or the caller's, if none) */
    glmv_part *parts;           /* their parts (owned) */
    uint8_t **bufs;             /* rendered pages (owned) */
    int n_bufs;
    int expanded;               /* 1 when msgs is a new array */
} glmv_pdf_expansion;

/* Render the PDF parts of msgs. Pages are rendered at GLMV_PDF_DPI or smaller so that each
 * keeps at most page_pixels pixels (the model's budget for one image; nothing is gained by
 * rendering larger) and a multiple-of-`factor` grid is what the vision tower sees; the pages
 * of all PDFs together must fit max_tokens vision tokens (the context). Errors name the
 * message and part. */
int glmv_pdf_expand(const glmv_message *msgs, int n_msgs, int64_t page_pixels, int factor,
                    int64_t max_tokens, glmv_pdf_expansion *x, char *err);
void glmv_pdf_expansion_free(glmv_pdf_expansion *x);

#endif
