/* math_cases.h — shared by the math-reward tests: run a case file of the math checker
 * (a tests/cases file, one {"gold", "pred", "expected"} per line) and assert every line
 * agrees, at least min_cases lines, both verdicts present. Include after cmocka.h,
 * jansson.h, math_reward.h and util.h. */
#ifndef SRLM_TEST_MATH_CASES_H
#define SRLM_TEST_MATH_CASES_H

/* every line {"gold","pred","expected"} must agree */
static void run_cases(const char *rel, int min_cases) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", SRLM_SOURCE_DIR, rel);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(srlm_read_file(path, &buf, &len, 0), 0);
    int n = 0, bad = 0, npos = 0, nneg = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        assert_non_null(o);
        const char *g = json_string_value(json_object_get(o, "gold"));
        const char *p = json_string_value(json_object_get(o, "pred"));
        assert_non_null(g);
        assert_non_null(p);
        int expected = json_is_true(json_object_get(o, "expected"));
        mr_result r;
        assert_int_equal(mr_check(g, p, NULL, &r), 0);
        if (r.correct != expected) {
            bad++;
            fprintf(stderr, "%s:%d: expected %d got %d (%s, rule %s, extracted '%s', gold '%s')\n", rel, n + 1, expected,
                    r.correct, mr_verdict_name(r.verdict), mr_rule_name(r.rule), r.extracted, r.gold);
        }
        npos += expected;
        nneg += !expected;
        n++;
        json_decref(o);
    }
    free(buf);
    assert_true(n >= min_cases);
    assert_true(npos > 0 && nneg > 0);
    assert_int_equal(bad, 0);
}

#endif
