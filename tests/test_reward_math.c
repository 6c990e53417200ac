/* test_reward_math.c — the math checker (rewards/math_*.c): case files, the GSM8K and
 * MATH-500 acceptance sets, extraction rules, bounds on hostile input, mr_score and the
 * seccomp allowlist (in a forked child). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "math_reward.h"
#include "util.h"
#include "math_cases.h"

static char *read_res(const char *rel) {
    char path[1024];
    assert_int_equal(srlm_resource_path(rel, path, sizeof path), 0);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(srlm_read_file(path, &buf, &len, 0), 0);
    return buf;
}


static void test_examples(void **s) {
    (void)s;
    run_cases("tests/cases/math_examples.jsonl", 40);
}

static void test_own_cases(void **s) {
    (void)s;
    run_cases("tests/cases/math_cases.jsonl", 150);
}

static const char *gsm_final(const char *sol, char *out, size_t n) {
    const char *h = strstr(sol, "####");
    assert_non_null(h);
    h += 4;
    while (*h == ' ') h++;
    snprintf(out, n, "%s", h);
    char *e = strchr(out, '\n');
    if (e) *e = 0;
    return out;
}

static void strip_commas(const char *s, char *out, size_t n) {
    size_t o = 0;
    for (; *s && o + 1 < n; s++)
        if (*s != ',') out[o++] = *s;
    out[o] = 0;
}

/* GSM8K: every reference solution is correct for its own answer; every solution is wrong
 * for the next problem's answer when the numbers differ. */
static void test_gsm8k_acceptance(void **s) {
    (void)s;
    char *buf = read_res("datasets/data/gsm8k/test.jsonl.gz");
    json_t *rows[1400];
    int n = 0;
    for (char *line = strtok(buf, "\n"); line && n < 1400; line = strtok(NULL, "\n")) {
        json_error_t err;
        rows[n] = json_loads(line, 0, &err);
        assert_non_null(rows[n]);
        n++;
    }
    assert_int_equal(n, 1319);
    int bad_own = 0, bad_cross = 0, cross = 0;
    for (int i = 0; i < n; i++) {
        const char *sol = json_string_value(json_object_get(rows[i], "answer"));
        const char *nsol = json_string_value(json_object_get(rows[(i + 1) % n], "answer"));
        char gold[128], ngold[128], a[128], b[128];
        gsm_final(sol, gold, sizeof gold);
        gsm_final(nsol, ngold, sizeof ngold);
        mr_result r;
        mr_check(gold, sol, NULL, &r);
        if (!r.correct) { bad_own++; fprintf(stderr, "gsm8k %d own: %s vs %s\n", i, gold, r.extracted); }
        assert_int_equal(r.rule, MR_RULE_HASH);
        assert_true(r.format_ok);
        strip_commas(gold, a, sizeof a);
        strip_commas(ngold, b, sizeof b);
        if (strcmp(a, b)) {
            cross++;
            mr_check(gold, nsol, NULL, &r);
            if (r.correct) { bad_cross++; fprintf(stderr, "gsm8k %d cross: %s accepted %s\n", i, gold, r.extracted); }
        }
    }
    for (int i = 0; i < n; i++) json_decref(rows[i]);
    free(buf);
    assert_true(cross > 1200);
    assert_int_equal(bad_own, 0);
    assert_int_equal(bad_cross, 0);
}

static void test_math500_acceptance(void **s) {
    (void)s;
    char *buf = read_res("datasets/data/math/math500_test.jsonl.gz");
    int n = 0, bad = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        assert_non_null(o);
        const char *sol = json_string_value(json_object_get(o, "solution"));
        const char *ans = json_string_value(json_object_get(o, "answer"));
        mr_result r;
        mr_check(ans, sol, NULL, &r);
        if (!r.correct) { bad++; fprintf(stderr, "math500 %d: %s vs %s\n", n, ans, r.extracted); }
        n++;
        json_decref(o);
    }
    free(buf);
    assert_int_equal(n, 500);
    assert_int_equal(bad, 0);
}

static void extract_is(const char *text, const char *want, mr_rule rule, int fmt) {
    char out[512];
    mr_rule r;
    int f;
    int rc = mr_extract(text, strlen(text), out, sizeof out, &r, &f);
    if (rc || strcmp(out, want) || r != rule || f != fmt) fprintf(stderr, "extract '%s': rc %d '%s' rule %d fmt %d\n", text, rc, out, (int)r, f);
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);
    assert_int_equal(r, rule);
    assert_int_equal(f, fmt);
}

static void test_extract_rules(void **s) {
    (void)s;
    extract_is("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}", MR_RULE_BOXED, 1);
    extract_is("\\boxed{a{b}c} then \\boxed{{x}}", "{x}", MR_RULE_BOXED, 1);
    extract_is("The answer is $\\boxed 5$.", "5", MR_RULE_BOXED, 1);
    extract_is("\\fbox{7}", "7", MR_RULE_BOXED, 1);
    extract_is("$\\boxed{1}, \\boxed{2}$", "1, 2", MR_RULE_BOXED, 1);
    extract_is("\\boxed{3} or \\boxed{4}", "4", MR_RULE_BOXED, 1);
    extract_is("calc\n#### 1,234\n", "1,234", MR_RULE_HASH, 1);
    extract_is("The final answer is $10,455$. I hope it is correct.", "10,455", MR_RULE_FINAL, 1);
    extract_is("\\boxed{200} ... Final Answer: The final answer is $7$.", "7", MR_RULE_FINAL, 1);
    extract_is("Answer: 42\n", "42", MR_RULE_ANSWER, 0);
    extract_is("$\\frac13$", "\\frac13", MR_RULE_WHOLE, 0);
    extract_is("it was 12 then 1,000.5 units.", "1,000.5", MR_RULE_LAST_NUMBER, 0);
    extract_is("<think>try \\boxed{3}</think> so \\boxed{4}", "4", MR_RULE_BOXED, 1);
    extract_is("<think>try \\boxed{3}", "3", MR_RULE_BOXED, 0);
    extract_is("<think>hmm</think> The answer is \\boxed{5}", "5", MR_RULE_BOXED, 1);
    char out[64];
    mr_rule r;
    int f;
    char prose[400];
    memset(prose, 0, sizeof prose);
    for (int i = 0; i < 30; i++) strcat(prose, "no digits ");
    assert_int_equal(mr_extract(prose, strlen(prose), out, sizeof out, &r, &f), SRLM_ENOTFOUND);
    extract_is("east", "east", MR_RULE_WHOLE, 0); /* short text answers */
}

static void check_is(const char *g, const char *p, int verdict) {
    mr_result r;
    assert_int_equal(mr_check(g, p, NULL, &r), 0);
    if (r.verdict != verdict) fprintf(stderr, "gold '%s' pred '%.60s': %s (%s)\n", g, p, mr_verdict_name(r.verdict), r.reason);
    assert_int_equal(r.verdict, verdict);
}

static void test_equivalence_details(void **s) {
    (void)s;
    mr_opts o;
    mr_opts_default(&o);
    o.extract_pred = 0;
    mr_result r;
    mr_check("\\frac{1}{3}", "0.333", &o, &r);
    assert_true(r.correct);
    assert_string_equal(r.method, "decimal");
    assert_true(r.tolerance > 0.0009 && r.tolerance < 0.0011);
    mr_check("\\frac12", "0.5", &o, &r);
    assert_string_equal(r.method, "exact");
    assert_true(r.tolerance == 0);
    mr_check("\\sqrt{2}+\\sqrt{3}", "\\sqrt{5+2\\sqrt6}", &o, &r);
    assert_true(r.correct);
    assert_string_equal(r.method, "numeric");
    mr_check("(x+1)^2", "x^2+2x+1", &o, &r);
    assert_true(r.correct);
    assert_string_equal(r.method, "points-exact");
    mr_check("\\sin^2 x + \\cos^2 x", "1", &o, &r);
    assert_true(r.correct);
    assert_string_equal(r.method, "points");
    /* percent policy */
    o.percent = MR_PCT_STRICT;
    mr_check("28\\%", "28", &o, &r);
    assert_false(r.correct);
    mr_check("28\\%", "0.28", &o, &r);
    assert_true(r.correct);
    check_is("4\\sqrt{2}", "\\boxed{4}", MR_WRONG);
    check_is("5", "\\boxed{\\foo{", MR_UNPARSABLE);
}

/* hostile inputs: bounded, answered, never a crash */
static void test_bounds(void **s) {
    (void)s;
    char *big = malloc(300000);
    /* deep nesting */
    size_t o = 0;
    o += (size_t)sprintf(big + o, "\\boxed{");
    for (int i = 0; i < 1000; i++) big[o++] = '(';
    big[o++] = '5';
    for (int i = 0; i < 1000; i++) big[o++] = ')';
    big[o++] = '}';
    big[o] = 0;
    mr_result r;
    mr_check("5", big, NULL, &r);
    assert_false(r.correct);
    /* huge powers are refused, not computed */
    check_is("5", "\\boxed{2^{2^{2^{2^{2^{2^{2^{2}}}}}}}}", MR_WRONG);
    check_is("5", "\\boxed{10^{10^{10}}}", MR_WRONG);
    check_is("5", "\\boxed{99999999999999999999!}", MR_WRONG);
    check_is("1", "\\boxed{1^{99999999999999999999999}}", MR_CORRECT);
    /* too many tokens */
    o = 0;
    o += (size_t)sprintf(big + o, "\\boxed{");
    for (int i = 0; i < 900; i++) o += (size_t)sprintf(big + o, "1+");
    o += (size_t)sprintf(big + o, "1}");
    check_is("901", big, MR_UNPARSABLE);
    /* a long completion full of unmatched boxes */
    o = 0;
    while (o + 8 < 290000) o += (size_t)sprintf(big + o, "\\boxed{{");
    big[o] = 0;
    mr_check("5", big, NULL, &r);
    assert_false(r.correct);
    /* over the text limit */
    char *huge = malloc(MR_MAX_TEXT + 16);
    memset(huge, '1', MR_MAX_TEXT + 8);
    huge[MR_MAX_TEXT + 8] = 0;
    mr_check("5", huge, NULL, &r);
    assert_int_equal(r.verdict, MR_UNPARSABLE);
    free(huge);
    /* invalid UTF-8 and control bytes */
    check_is("5", "\\boxed{\xff\xfe\x01 5}", MR_UNPARSABLE);
    free(big);
}

static void test_score(void **s) {
    (void)s;
    mr_ctx ctx;
    mr_ctx_init(&ctx);
    reward_result r;
    memset(&r, 0, sizeof r);
    assert_int_equal(mr_score(&ctx, "{\"id\":\"gsm8k/test/0\",\"answer\":\"18\"}", "<think>9*2</think> \\boxed{18}", &r), 0);
    assert_int_equal(r.is_error, 0);
    assert_true(r.reward == 1.0);
    assert_true(r.correct && r.format_ok);
    assert_string_equal(r.verdict, "correct");
    assert_string_equal(r.extracted, "18");
    assert_non_null(r.details_json);
    json_error_t err;
    json_t *d = json_loads(r.details_json, 0, &err);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "rule")), "boxed");
    json_decref(d);
    reward_result_free(&r);
    memset(&r, 0, sizeof r);
    assert_int_equal(mr_score(&ctx, "{\"answer\":18}", "so 17", &r), 0);
    assert_true(r.reward == 0.0);
    assert_string_equal(r.verdict, "wrong");
    reward_result_free(&r);
    memset(&r, 0, sizeof r);
    assert_int_equal(mr_score(&ctx, "{\"answer\":\"18\"}", "I don't know", &r), 0);
    assert_string_equal(r.verdict, "unparsable");
    reward_result_free(&r);
    memset(&r, 0, sizeof r);
    assert_int_equal(mr_score(&ctx, "{\"prompt\":\"x\"}", "18", &r), SRLM_EINVAL);
    assert_int_equal(r.is_error, 1);
    reward_result_free(&r);
    memset(&r, 0, sizeof r);
    assert_int_equal(mr_score(&ctx, "not json", "18", &r), SRLM_EINVAL);
    assert_int_equal(r.is_error, 1);
    reward_result_free(&r);
}

/* The strict allowlist: checks keep working, opening a file kills the process. */
static void test_seccomp(void **s) {
    (void)s;
#if defined(__SANITIZE_ADDRESS__)
    skip();
#endif
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (mr_seccomp_install(MR_SECCOMP_STRICT)) _exit(3);
        mr_result r;
        mr_check("\\frac{1}{2}", "so \\boxed{0.5}", NULL, &r);
        if (!r.correct) _exit(4);
        char *j = mr_result_json(&r);
        if (!j) _exit(5);
        free(j);
        int fd = open("/etc/hostname", O_RDONLY); /* must not return */
        (void)fd;
        _exit(6);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSYS);
}

/* Service mode: checks in the forked, filtered child; a timed-out child is replaced. */
static void test_sandbox(void **s) {
    (void)s;
    mr_sandbox *sb = NULL;
    assert_int_equal(mr_sandbox_start(&sb, NULL), 0);
    mr_result r;
    assert_int_equal(mr_sandbox_check(sb, "\\frac{3}{4}", "so \\boxed{0.75}", &r, 10), 0);
    assert_true(r.correct);
    assert_string_equal(r.extracted, "0.75");
    assert_int_equal(r.rule, MR_RULE_BOXED);
    assert_int_equal(mr_sandbox_check(sb, "18", "#### 17", &r, 10), 0);
    assert_int_equal(r.verdict, MR_WRONG);
    /* a zero wall-clock budget: either answered in time or killed and restarted */
    assert_int_equal(mr_sandbox_check(sb, "1", "\\boxed{1}", &r, 1e-9), 0);
    assert_true(r.verdict == MR_CORRECT || (r.verdict == MR_UNPARSABLE && strstr(r.reason, "timed out")));
    assert_int_equal(mr_sandbox_check(sb, "2", "\\boxed{2}", &r, 10), 0);
    assert_true(r.correct);
    mr_ctx ctx;
    mr_ctx_init(&ctx);
    ctx.sb = sb;
    reward_result rr;
    memset(&rr, 0, sizeof rr);
    assert_int_equal(mr_score(&ctx, "{\"answer\":\"\\\\{1,2\\\\}\"}", "\\boxed{2,1}", &rr), 0);
    assert_true(rr.correct);
    reward_result_free(&rr);
    mr_sandbox_stop(sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_own_cases),
        cmocka_unit_test(test_gsm8k_acceptance),
        cmocka_unit_test(test_math500_acceptance),
        cmocka_unit_test(test_extract_rules),
        cmocka_unit_test(test_equivalence_details),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_score),
        cmocka_unit_test(test_seccomp),
        cmocka_unit_test(test_sandbox),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
