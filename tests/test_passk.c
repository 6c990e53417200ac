/* test_passk.c — pass@k estimator against exact binomial ratios; maj@k voting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "passk.h"

static double binom(int n, int k) {
    if (k < 0 || k > n) return 0;
    double r = 1;
    for (int i = 1; i <= k; i++) r = r * (n - k + i) / i;
    return r;
}

static void test_exact_small(void **st) {
    (void)st;
    for (int n = 1; n <= 20; n++)
        for (int c = 0; c <= n; c++)
            for (int k = 1; k <= n; k++) {
                double want = 1.0 - binom(n - c, k) / binom(n, k);
                assert_true(fabs(pk_pass_at_k(n, c, k) - want) < 1e-12);
            }
    /* hand values */
    assert_true(fabs(pk_pass_at_k(10, 1, 1) - 0.1) < 1e-15);
    assert_true(fabs(pk_pass_at_k(4, 2, 2) - (1.0 - 1.0 / 6.0)) < 1e-15); /* 1 - C(2,2)/C(4,2) */
    assert_true(fabs(pk_pass_at_k(5, 0, 3) - 0.0) < 1e-15);
    assert_true(fabs(pk_pass_at_k(5, 3, 3) - 1.0) < 1e-15); /* n - c < k */
    /* pass@1 is the plain fraction correct */
    assert_true(fabs(pk_pass_at_k(8, 3, 1) - 3.0 / 8.0) < 1e-15);
}

static void test_large_stable(void **st) {
    (void)st;
    /* n = 2000: C(n, k) overflows doubles for k ~ 1000; the product must not */
    double p = pk_pass_at_k(2000, 1, 1000);
    assert_true(fabs(p - 0.5) < 1e-12);
    p = pk_pass_at_k(2000, 10, 100);
    double want = 1.0;
    for (int i = 0; i < 100; i++) want *= (double)(1990 - i) / (2000 - i);
    assert_true(fabs(p - (1.0 - want)) < 1e-12);
    assert_true(p > 0 && p < 1);
}

static void test_invalid(void **st) {
    (void)st;
    assert_true(pk_pass_at_k(3, 1, 4) < 0);
    assert_true(pk_pass_at_k(3, 4, 1) < 0);
    assert_true(pk_pass_at_k(0, 0, 1) < 0);
    assert_true(pk_pass_at_k(3, -1, 1) < 0);
    int ns[] = {4, 2, 4}, cs[] = {1, 2, 0};
    assert_true(fabs(pk_mean_pass_at_k(ns, cs, 3, 1) - (0.25 + 1.0 + 0.0) / 3) < 1e-15);
    /* k = 4 skips the problem with n = 2 */
    assert_true(fabs(pk_mean_pass_at_k(ns, cs, 3, 4) - 0.5) < 1e-15);
    assert_true(pk_mean_pass_at_k(ns, cs, 3, 5) < 0);
}

static void test_majority(void **st) {
    (void)st;
    const char *a[] = {"3", "5", "5", NULL, "3", "5", ""};
    int c[] = {0, 1, 1, 0, 0, 1, 0};
    int solved = -1;
    assert_int_equal(pk_majority(a, c, 7, 0, &solved), 1); /* "5" ×3 beats "3" ×2 */
    assert_int_equal(solved, 1);
    /* first 2: "3" and "5" tie with one each; "3" reached the count first */
    assert_int_equal(pk_majority(a, c, 7, 2, &solved), 0);
    assert_int_equal(solved, 0);
    /* first 5: "3" ×2 (positions 0, 4), "5" ×2 (1, 2): "5" reached 2 first */
    assert_int_equal(pk_majority(a, c, 7, 5, &solved), 1);
    assert_int_equal(solved, 1);
    const char *none[] = {NULL, "", NULL};
    int c0[] = {0, 0, 0};
    assert_int_equal(pk_majority(none, c0, 3, 3, &solved), -1);
    assert_int_equal(solved, 0);
    const char *one[] = {"7"};
    int c1[] = {1};
    assert_int_equal(pk_majority(one, c1, 1, 1, NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_small),
        cmocka_unit_test(test_large_stable),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_majority),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
