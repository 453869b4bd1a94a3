/* eval_plot.c -- the plot `glmv eval --plot FILE.svg` writes: accuracy (0-100 %)
 * against the thinking budget, one line per category and a thicker one for all
 * items together, with axes, ticks, labels and a legend. Plain SVG written by
 * hand: any browser shows it, no library needed. Budgets sit on a log2 scale
 * (0 never occurs: the smallest budget is 1 token), "unlimited" at the right.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "eval.h"

/* category names come from the items file: escape them for XML */
static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

int eval_plot_svg(const char *path, const int *budgets, int n_budgets, const char *const *names,
                  int n_names, const double *acc, char *err, size_t errsz) {
    static const char *const colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    const double W = 760, H = 440, L = 70, R = 190, T = 40, B = 60; /* margins */
    const double pw = W - L - R, ph = H - T - B;
    FILE *f = fopen(path, "w");
    if (!f) return snprintf(err, errsz, "cannot write %s: %s", path, strerror(errno)), -1;
    /* x: log2 of the budget, "unlimited" one step beyond the largest */
    double xs[256];
    double lo = 1e300, hi = -1e300;
    for (int b = 0; b < n_budgets && b < 256; b++)
        if (budgets[b] > 0) {
            xs[b] = log2(budgets[b]);
            lo = fmin(lo, xs[b]);
            hi = fmax(hi, xs[b]);
        }
    if (lo > hi) lo = hi = 0; /* only "unlimited" */
    for (int b = 0; b < n_budgets && b < 256; b++)
        if (budgets[b] == 0) xs[b] = hi + (hi > lo ? (hi - lo) / 4 + 1 : 1);
    double xmax = lo;
    for (int b = 0; b < n_budgets && b < 256; b++) xmax = fmax(xmax, xs[b]);
    double span = xmax > lo ? xmax - lo : 1;
#define PX(x) (L + (n_budgets == 1 ? pw / 2 : ((x) - lo) / span * pw))
#define PY(a) (T + ph - (a) * ph)
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
               "viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%g\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
               "Accuracy against the thinking budget</text>\n", L + pw / 2);
    /* y grid and ticks every 20 % */
    for (int k = 0; k <= 5; k++) {
        double y = PY(k / 5.0);
        fprintf(f, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, y, L + pw, y);
        fprintf(f, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>\n", L - 6, y + 4, k * 20);
    }
    /* x ticks at each budget */
    for (int b = 0; b < n_budgets; b++) {
        double x = PX(xs[b]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#333\"/>\n", x, T + ph, x,
                T + ph + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">", x, T + ph + 18);
        if (budgets[b]) fprintf(f, "%d</text>\n", budgets[b]);
        else fprintf(f, "unlimited</text>\n");
    }
    fprintf(f, "<path d=\"M%g %g V%g H%g\" fill=\"none\" stroke=\"#333\"/>\n", L, T, T + ph, L + pw);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">thinking budget (tokens, log scale)</text>\n",
            L + pw / 2, H - 18);
    fprintf(f, "<text transform=\"translate(18 %g) rotate(-90)\" text-anchor=\"middle\">accuracy</text>\n",
            T + ph / 2);
    /* one line per series, the last ("overall") black and thicker; a legend on the right */
    for (int c = 0; c < n_names; c++) {
        int last = c == n_names - 1;
        const char *col = last ? "#000" : colours[c % 10];
        double w = last ? 3 : 1.5;
        fprintf(f, "<g class=\"series\" data-name=\"");
        xml_text(f, names[c]);
        fprintf(f, "\" stroke=\"%s\" fill=\"%s\">\n<polyline fill=\"none\" stroke-width=\"%g\" points=\"", col,
                col, w);
        for (int b = 0; b < n_budgets; b++) {
            double a = acc[c * n_budgets + b];
            if (!isnan(a)) fprintf(f, "%.1f,%.1f ", PX(xs[b]), PY(a));
        }
        fprintf(f, "\"/>\n");
        for (int b = 0; b < n_budgets; b++) {
            double a = acc[c * n_budgets + b];
            if (isnan(a)) continue;
            fprintf(f, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"%g\"><title>", PX(xs[b]),
                    PY(a), last ? 4.0 : 3.0);
            xml_text(f, names[c]);
            if (budgets[b]) fprintf(f, ", budget %d: %.1f%%</title></circle>\n", budgets[b], 100 * a);
            else fprintf(f, ", unlimited: %.1f%%</title></circle>\n", 100 * a);
        }
        double ly = T + 10 + c * 20;
        fprintf(f, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke-width=\"%g\"/>\n", L + pw + 20, ly,
                L + pw + 44, ly, w);
        fprintf(f, "<text x=\"%g\" y=\"%g\" stroke=\"none\" fill=\"#000\">", L + pw + 50, ly + 4);
        xml_text(f, names[c]);
        fprintf(f, "</text>\n</g>\n");
    }
    fprintf(f, "</svg>\n");
#undef PX
#undef PY
    if (fclose(f)) return snprintf(err, errsz, "cannot write %s: %s", path, strerror(errno)), -1;
    return 0;
}
