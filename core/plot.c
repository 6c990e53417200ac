/* plot.c — SVG line and bar charts (see plot.h). */
#include "plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const PALETTE[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_PALETTE 10

enum { W = 820, H = 440, ML = 70, MR = 240, MT = 40, MB = 60 }; /* MR: room for the legend */

typedef struct {
    char *p;
    size_t n, cap;
} obuf;

static void ob_printf(obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ob_printf(obuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->p && (size_t)k < room) {
            b->n += (size_t)k;
            return;
        }
        size_t c = b->cap ? b->cap * 2 : 4096;
        while (c < b->n + (size_t)k + 1) c *= 2;
        b->p = srlm_xrealloc(b->p, c);
        b->cap = c;
    }
}

static void ob_escaped(obuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': ob_printf(b, "&lt;"); break;
        case '>': ob_printf(b, "&gt;"); break;
        case '&': ob_printf(b, "&amp;"); break;
        case '"': ob_printf(b, "&quot;"); break;
        default: ob_printf(b, "%c", *s);
        }
    }
}

/* A "nice" tick step for a range (1, 2, 5 × 10^k) giving about 5 ticks. */
static double nice_step(double range) {
    if (!(range > 0)) return 1;
    double raw = range / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double s = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return s * mag;
}

static void header(obuf *b, const char *title) {
    ob_printf(b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
              "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
              "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%d\" y=\"24\" text-anchor=\"middle\" "
              "font-size=\"16\">",
              W, H, W, H, (W - MR + ML) / 2);
    ob_escaped(b, title);
    ob_printf(b, "</text>\n");
}

/* Axes, grid and labels for y in [y0, y1] with the given step; x labels by the caller. */
static void y_axis(obuf *b, double y0, double y1, double step, const char *ylabel) {
    int pw = W - ML - MR, ph = H - MT - MB;
    for (double v = y0; v <= y1 + step * 1e-6; v += step) {
        double py = MT + ph - (v - y0) / (y1 - y0) * ph;
        ob_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ML, py, ML + pw, py);
        ob_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 6, py + 4,
                  fabs(v) < step * 1e-6 ? 0.0 : v);
    }
    ob_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", ML, MT, ML, MT + ph);
    ob_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", ML, MT + ph, ML + pw, MT + ph);
    ob_printf(b, "<text transform=\"translate(16,%d) rotate(-90)\" text-anchor=\"middle\">", MT + ph / 2);
    ob_escaped(b, ylabel);
    ob_printf(b, "</text>\n");
}

static void legend(obuf *b, int i, const char *name) {
    int x = W - MR + 14, y = MT + 10 + 20 * i;
    ob_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"%s\"/>\n<text x=\"%d\" y=\"%d\">", x, y - 9,
              PALETTE[i % N_PALETTE], x + 20, y);
    ob_escaped(b, name);
    ob_printf(b, "</text>\n");
}

static void y_range(double lo, double hi, double *y0, double *y1, double *step) {
    if (lo == hi) {
        lo -= lo == 0 ? 1 : fabs(lo) * 0.1;
        hi += hi == 0 ? 1 : fabs(hi) * 0.1;
    }
    *step = nice_step(hi - lo);
    *y0 = floor(lo / *step) * *step;
    *y1 = ceil(hi / *step) * *step;
    if (*y1 <= *y0) *y1 = *y0 + *step;
}

int plot_line_svg_str(char **out, const char *title, const char *xlabel, const char *ylabel,
                      const plot_series *series, int ns) {
    *out = NULL;
    if (ns < 1) return srlm_set_error(SRLM_EINVAL, "plot '%s': no series", title);
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int x_int = 1; /* every x is a whole number (steps): no fractional x ticks */
    for (int s = 0; s < ns; s++)
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x ? series[s].x[i] : i, y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            x_int &= x == floor(x);
            if (x < xlo) xlo = x;
            if (x > xhi) xhi = x;
            if (y < ylo) ylo = y;
            if (y > yhi) yhi = y;
        }
    if (!isfinite(xlo)) return srlm_set_error(SRLM_EINVAL, "plot '%s': no finite points", title);
    if (xhi == xlo) xhi = xlo + 1;
    double y0, y1, step;
    y_range(ylo, yhi, &y0, &y1, &step);
    obuf b = {0};
    header(&b, title);
    y_axis(&b, y0, y1, step, ylabel);
    int pw = W - ML - MR, ph = H - MT - MB;
    double xs = nice_step(xhi - xlo);
    if (x_int && xs < 1) xs = 1;
    for (double v = ceil(xlo / xs) * xs; v <= xhi + xs * 1e-6; v += xs) {
        double px = ML + (v - xlo) / (xhi - xlo) * pw;
        ob_printf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", px, MT + ph + 18, v);
    }
    ob_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", ML + pw / 2, H - 14);
    ob_escaped(&b, xlabel);
    ob_printf(&b, "</text>\n");
    for (int s = 0; s < ns; s++) {
        int pen = 0;
        ob_printf(&b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" d=\"", PALETTE[s % N_PALETTE]);
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x ? series[s].x[i] : i, y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) {
                pen = 0;
                continue;
            }
            double px = ML + (x - xlo) / (xhi - xlo) * pw, py = MT + ph - (y - y0) / (y1 - y0) * ph;
            ob_printf(&b, "%s%.1f %.1f ", pen ? "L" : "M", px, py);
            pen = 1;
        }
        ob_printf(&b, "\"/>\n");
        legend(&b, s, series[s].name);
    }
    ob_printf(&b, "</svg>\n");
    *out = b.p;
    return 0;
}

int plot_bars_svg_str(char **out, const char *title, const char *ylabel, const char *const *group_labels,
                      int n_groups, const char *const *series_names, int n_series, const double *values,
                      const double *err) {
    *out = NULL;
    if (n_groups < 1 || n_series < 1) return srlm_set_error(SRLM_EINVAL, "plot '%s': no bars", title);
    double lo = 0, hi = -INFINITY;
    for (int i = 0; i < n_groups * n_series; i++) {
        double v = values[i], e = err && isfinite(err[i]) ? fabs(err[i]) : 0;
        if (!isfinite(v)) continue;
        if (v + e > hi) hi = v + e;
        if (v - e < lo) lo = v - e;
    }
    if (!isfinite(hi)) hi = 1;
    if (hi <= lo) hi = lo + 1;
    double y0, y1, step;
    y_range(lo, hi, &y0, &y1, &step);
    obuf b = {0};
    header(&b, title);
    y_axis(&b, y0, y1, step, ylabel);
    int pw = W - ML - MR, ph = H - MT - MB;
    double gw = (double)pw / n_groups, bw = gw * 0.8 / n_series;
    double zero = MT + ph - (0 - y0) / (y1 - y0) * ph;
    for (int g = 0; g < n_groups; g++) {
        double gx = ML + g * gw + gw * 0.1;
        for (int s = 0; s < n_series; s++) {
            double v = values[s * n_groups + g];
            if (!isfinite(v)) continue;
            double py = MT + ph - (v - y0) / (y1 - y0) * ph;
            double top = py < zero ? py : zero, hgt = fabs(zero - py);
            double x = gx + s * bw;
            ob_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x, top,
                      bw * 0.92, hgt < 0.5 ? 0.5 : hgt, PALETTE[s % N_PALETTE]);
            ob_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"8\">%.2f</text>\n",
                      x + bw * 0.46, top - 3, v);
            double e = err ? err[s * n_groups + g] : 0;
            if (isfinite(e) && e > 0) {
                double pa = MT + ph - (v + e - y0) / (y1 - y0) * ph, pb = MT + ph - (v - e - y0) / (y1 - y0) * ph;
                ob_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                          x + bw * 0.46, pa, x + bw * 0.46, pb);
            }
        }
        ob_printf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", ML + g * gw + gw / 2, MT + ph + 18);
        ob_escaped(&b, group_labels[g]);
        ob_printf(&b, "</text>\n");
    }
    for (int s = 0; s < n_series; s++) legend(&b, s, series_names[s]);
    ob_printf(&b, "</svg>\n");
    *out = b.p;
    return 0;
}

static int write_str(const char *path, char *s) {
    int rc = srlm_write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}

int plot_line_svg(const char *path, const char *title, const char *xlabel, const char *ylabel,
                  const plot_series *series, int ns) {
    char *s = NULL;
    int rc = plot_line_svg_str(&s, title, xlabel, ylabel, series, ns);
    return rc ? rc : write_str(path, s);
}

int plot_bars_svg(const char *path, const char *title, const char *ylabel, const char *const *group_labels,
                  int n_groups, const char *const *series_names, int n_series, const double *values,
                  const double *err) {
    char *s = NULL;
    int rc = plot_bars_svg_str(&s, title, ylabel, group_labels, n_groups, series_names, n_series, values, err);
    return rc ? rc : write_str(path, s);
}
