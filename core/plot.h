/* plot.h — a small, dependency-free SVG chart writer (prefix plot_): line charts for
 * training curves (reward, loss per step, one series per pipeline) and grouped bar charts
 * (accuracy per pipeline and evaluation set). Output is a standalone SVG 1.1 file that any
 * browser or Markdown viewer shows; no fonts or scripts are embedded.
 *
 * Axes are linear; the y range is padded and rounded to "nice" ticks (1, 2, 5 × 10^k).
 * NaN points are skipped (a gap in the line). Colours cycle through a fixed palette. */
#ifndef SRLM_PLOT_H
#define SRLM_PLOT_H

typedef struct {
    const char *name;   /* legend label (borrowed) */
    const double *x;    /* [n] (borrowed); NULL → 0, 1, ..., n-1 */
    const double *y;    /* [n] (borrowed) */
    int n;
} plot_series;

/* Write a line chart of ns series to path (atomically). Titles/labels are borrowed and
 * XML-escaped. Errors: SRLM_EINVAL (ns < 1 or no finite point), SRLM_EIO. */
int plot_line_svg(const char *path, const char *title, const char *xlabel, const char *ylabel,
                  const plot_series *series, int ns);

/* Grouped bar chart: n_groups groups along x (group_labels[g]), n_series bars per group
 * (series_names[s], legend), values[s * n_groups + g]; err (may be NULL) gives a ± error
 * bar of the same layout (NaN or 0 = none). Values NaN are drawn as missing. The y axis
 * starts at 0 (or below for negative values). Errors: SRLM_EINVAL, SRLM_EIO. */
int plot_bars_svg(const char *path, const char *title, const char *ylabel, const char *const *group_labels,
                  int n_groups, const char *const *series_names, int n_series, const double *values,
                  const double *err);

/* Render into a heap string instead of a file (same arguments; *out caller frees). */
int plot_line_svg_str(char **out, const char *title, const char *xlabel, const char *ylabel,
                      const plot_series *series, int ns);
int plot_bars_svg_str(char **out, const char *title, const char *ylabel, const char *const *group_labels,
                      int n_groups, const char *const *series_names, int n_series, const double *values,
                      const double *err);

#endif
