/* test_plot.c — SVG charts: well-formed output, escaped labels, NaN gaps, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plot.h"
#include "util.h"

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++) n++;
    return n;
}

static void test_line(void **st) {
    (void)st;
    double y1[] = {0.1, 0.3, NAN, 0.5}, y2[] = {1, 2, 3};
    double x2[] = {10, 20, 30};
    plot_series s[] = {{"sft <a&b>", NULL, y1, 4}, {"grpo", x2, y2, 3}};
    char *svg = NULL;
    assert_int_equal(plot_line_svg_str(&svg, "reward", "step", "mean reward", s, 2), 0);
    assert_non_null(strstr(svg, "<svg"));
    assert_non_null(strstr(svg, "</svg>"));
    assert_non_null(strstr(svg, "sft &lt;a&amp;b&gt;"));
    assert_int_equal(count(svg, "<path"), 2);
    /* the NaN splits series 0 into two pieces: two M commands */
    const char *p0 = strstr(svg, "<path");
    const char *e0 = strstr(p0, "/>");
    int moves = 0;
    for (const char *q = p0; q < e0; q++) moves += *q == 'M';
    assert_int_equal(moves, 2);
    free(svg);
    /* whole-number x (steps 1..2): integer ticks only, not 1.2, 1.4, ... */
    double xs2[] = {1, 2}, ys2[] = {0.5, 0.25};
    plot_series s2 = {"grpo", xs2, ys2, 2};
    assert_int_equal(plot_line_svg_str(&svg, "reward", "step", "reward", &s2, 1), 0);
    assert_non_null(strstr(svg, ">1</text>"));
    assert_non_null(strstr(svg, ">2</text>"));
    assert_null(strstr(svg, ">1.2</text>"));
    assert_null(strstr(svg, ">1.5</text>"));
    free(svg);
    double bad[] = {NAN};
    plot_series sb = {"x", NULL, bad, 1};
    assert_int_equal(plot_line_svg_str(&svg, "t", "x", "y", &sb, 1), SRLM_EINVAL);
    assert_int_equal(plot_line_svg_str(&svg, "t", "x", "y", s, 0), SRLM_EINVAL);
}

static void test_bars(void **st) {
    (void)st;
    const char *groups[] = {"base", "sft", "rl"};
    const char *series[] = {"synth", "gsm8k"};
    double v[] = {0.1, 0.5, 0.7, 0.0, 0.01, NAN};
    double e[] = {0.02, 0.03, 0.0, NAN, 0, 0};
    char *svg = NULL;
    assert_int_equal(plot_bars_svg_str(&svg, "accuracy", "accuracy", groups, 3, series, 2, v, e), 0);
    /* 5 finite bars + 2 legend swatches + background */
    assert_int_equal(count(svg, "<rect"), 5 + 2 + 1);
    assert_non_null(strstr(svg, ">0.7<"));
    free(svg);
    char path[] = "/tmp/srlm_test_plot_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(plot_bars_svg(path, "a", "b", groups, 3, series, 2, v, NULL), 0);
    char *txt = NULL;
    size_t len = 0;
    assert_int_equal(srlm_read_file(path, &txt, &len, 0), 0);
    assert_true(len > 100);
    free(txt);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_line), cmocka_unit_test(test_bars)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
