/* test_harden_math.c — adversarial cases for the math checker (rewards/math_*.c):
 * realistic model output (Qwen-style CoT endings, "**Final Answer**:", units, currency,
 * repeated boxes, truncated completions), Unicode (full-width digits, U+2212, NBSP / thin
 * spaces, superscripts, vulgar fractions, invisible format characters, emoji), and
 * pathological inputs that must return a verdict without crashing.
 * Cases: tests/cases/math_harden.jsonl ({"gold","pred","expected"}). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math_reward.h"
#include "util.h"
#include "math_cases.h"

static void test_case_file(void **s) {
    (void)s;
    run_cases("tests/cases/math_harden.jsonl", 250);
}

static int check(const char *gold, const char *pred) {
    mr_result r;
    assert_int_equal(mr_check(gold, pred, NULL, &r), 0);
    return r.correct;
}

/* Regressions, each failed before its fix. */
static void test_fixed_regressions(void **s) {
    (void)s;
    /* "**Final Answer**: $x$" (markdown bold before the colon) used to fall through to the
     * last number */
    assert_true(check("\\frac{3}{4}", "3+5=8.\n**Final Answer**: $\\frac{3}{4}$"));
    assert_false(check("\\frac{3}{4}", "3+5=8.\n**Final Answer**: $\\frac{3}{5}$"));
    assert_true(check("18", "**Answer**: 18"));
    /* the same answer boxed twice was read as the list "7, 7" */
    assert_true(check("7", "\\boxed{7} \\boxed{7}"));
    assert_false(check("7", "\\boxed{7}, \\boxed{8}"));
    assert_true(check("7, 8", "\\boxed{7}, \\boxed{8}"));
    /* full-width digits / colon, superscripts, vulgar fractions */
    assert_true(check("18", "The answer is \\boxed{\xef\xbc\x91\xef\xbc\x98}."));
    assert_true(check("18", "The answer is\xef\xbc\x9a\xef\xbc\x91\xef\xbc\x98"));
    assert_true(check("x^2", "\\boxed{x\xc2\xb2}"));
    assert_false(check("2x", "\\boxed{x\xc2\xb2}"));
    assert_true(check("9", "\\boxed{3\xc2\xb2}"));
    assert_true(check("0.001", "\\boxed{10\xe2\x81\xbb\xc2\xb3}"));
    assert_true(check("\\frac{1}{2}", "\\boxed{\xc2\xbd}"));
    assert_true(check("3.5", "\\boxed{3\xc2\xbd}"));
    assert_false(check("3", "\\boxed{3\xc2\xbd}"));
    /* zero-width space / RLM / BOM inside the answer */
    assert_true(check("18", "\\boxed{1\xe2\x80\x8b" "8\xe2\x80\x8f}"));
    assert_true(check("18", "\xef\xbb\xbf\\boxed{18}"));
    /* "10 00" is not a thousands grouping of 1000 */
    assert_false(check("1000", "\\boxed{10 00}"));
    assert_false(check("1000", "\\boxed{10\xc2\xa0" "00}"));
    assert_true(check("1000", "\\boxed{1 000}"));
    assert_true(check("1000", "\\boxed{1\xc2\xa0" "000}"));
    /* a truncated completion ending in a step label: "Step 2:" is not the answer 2 */
    assert_false(check("2", "Step 1: Janet has 16 eggs. She eats 3.\n\nStep 2:"));
    assert_false(check("2", "We compute:\n1. Janet has 16 eggs.\n2. She eats"));
    assert_false(check("4", "Case 4: n is even"));
    assert_true(check("4", "so n = 2 + 2 = 4"));
    /* the answer phrase ends before an explanation */
    assert_true(check("18", "The answer is 18 because 3 * 6 = 18."));
    assert_true(check("18", "The answer is 18, since 3 * 6 = 18."));
    assert_false(check("18", "The answer is 17 because 3 * 6 = 18."));
    /* multiple choice answered with the option's label and value */
    assert_true(check("\\text{(B)}", "The correct answer is **(B) 12**."));
    assert_false(check("\\text{(B)}", "The correct answer is **(C) 12**."));
}

/* Extraction stops at a NUL byte; invalid UTF-8 never crashes. */
static void test_bytes(void **s) {
    (void)s;
    char out[256];
    mr_rule rule;
    int fmt;
    static const char t1[] = "The answer is \\boxed{18}\0 and then \\boxed{19}";
    assert_int_equal(mr_extract(t1, sizeof t1 - 1, out, sizeof out, &rule, &fmt), 0);
    assert_string_equal(out, "18");
    assert_int_equal(rule, MR_RULE_BOXED);
    static const char *const junk[] = {
        "\\boxed{\xff\xfe}", "\\boxed{1\xc3}", "\\boxed{\xe2\x88}", "\\boxed{\xf4\x90\x80\x80}",
        "\\boxed{\xed\xa0\x80}", "\\boxed{\xc0\xaf}", "\xe2\x81", "\\boxed{x\xe2\x81}", "\xc2",
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        mr_result r;
        assert_int_equal(mr_check("18", junk[i], NULL, &r), 0);
        assert_false(r.correct);
    }
}

/* Huge / deeply nested inputs: a verdict, never a crash or hang. */
static void test_pathological(void **s) {
    (void)s;
    size_t n = 100000;
    char *t = malloc(7 * n + 64);
    assert_non_null(t);
    strcpy(t, "\\boxed{5}");
    for (size_t i = 0; i < n; i++) memcpy(t + 9 + 7 * i, " filler", 8);
    assert_true(check("5", t));
    memset(t, '{', 100000);
    strcpy(t + 100000, "\\boxed{5}");
    assert_true(check("5", t));
    memset(t, 'x', 300000);
    t[300000] = 0;
    assert_false(check("5", t));
    /* more than MR_MAX_TEXT: unparsable */
    free(t);
    t = malloc(MR_MAX_TEXT + 64);
    assert_non_null(t);
    memset(t, ' ', MR_MAX_TEXT + 10);
    strcpy(t + MR_MAX_TEXT + 10, "\\boxed{5}");
    mr_result r;
    assert_int_equal(mr_check("5", t, NULL, &r), 0);
    assert_int_equal(r.verdict, MR_UNPARSABLE);
    free(t);
    /* nested structures at and beyond the depth bound: no crash (verdict either way) */
    static const char *const open[] = {"{", "(", "\\frac{", "\\sqrt{", "[", "\\left(", "-", "x^"};
    static const char *const close[] = {"}", ")", "}{1}", "}", "]", "\\right)", "", ""};
    for (size_t k = 0; k < sizeof open / sizeof open[0]; k++) {
        for (int depth = 10; depth <= 3000; depth *= 3) {
            size_t ol = strlen(open[k]), cl = strlen(close[k]);
            char *b = malloc((ol + cl) * (size_t)depth + 32);
            assert_non_null(b);
            size_t o = 0;
            memcpy(b, "\\boxed{", 7);
            o = 7;
            for (int i = 0; i < depth; i++) { memcpy(b + o, open[k], ol); o += ol; }
            b[o++] = '5';
            for (int i = 0; i < depth; i++) { memcpy(b + o, close[k], cl); o += cl; }
            b[o++] = '}';
            b[o] = 0;
            assert_int_equal(mr_check("5", b, NULL, &r), 0);
            assert_int_equal(mr_check(b + 7, "5", NULL, &r), 0);
            free(b);
        }
    }
    /* towers, factorials, division by zero: never "correct" */
    static const char *const wild[] = {"\\boxed{5^{5^{5^{5^{5}}}}}", "\\boxed{9999999999!}", "\\boxed{10^{10^{10}}}",
                                       "\\boxed{5/0}", "\\boxed{\\sqrt[0]{5}}", "\\boxed{\\infty}", "\\boxed{0^0}",
                                       "\\boxed{\\log 0}", "\\boxed{(-8)^{1/3}}", "\\boxed{\\binom{10^9}{5}}"};
    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
        assert_int_equal(mr_check("7", wild[i], NULL, &r), 0);
        assert_false(r.correct);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_file),
        cmocka_unit_test(test_fixed_regressions),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_pathological),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
