/* test_sampler.c — sampling per qwen2.md §2.12 on hand-made distributions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

static void test_greedy_and_penalty(void **st) {
    (void)st;
    lm_sampler sp;
    assert_int_equal(lm_sampler_init(&sp, 3), 0);
    lm_sampling s;
    lm_sampling_default(&s);
    float z[3] = {2.0f, -2.0f, 1.5f};
    float lp, slp;
    assert_int_equal(lm_sample(&sp, z, &s, NULL, 0, NULL, &lp, &slp), 0);
    double lse = log(exp(2.0) + exp(-2.0) + exp(1.5));
    assert_true(fabs(lp - (2.0 - lse)) < 1e-6);
    assert_true(slp == 0.0f);
    /* penalty 2 on ids {0, 1}: [1, -4, 1.5] → argmax 2; duplicates count once */
    s.repetition_penalty = 2.0f;
    int32_t hist[3] = {0, 1, 0};
    assert_int_equal(lm_sample(&sp, z, &s, hist, 3, NULL, &lp, NULL), 2);
    /* reported logprob is of the raw distribution */
    assert_true(fabs(lp - (1.5 - lse)) < 1e-6);
    assert_int_equal(lm_sample(&sp, z, &s, hist, 3, NULL, NULL, NULL), 2); /* marks were reset */
    lm_sampler_free(&sp);
}

static void test_top_p_top_k(void **st) {
    (void)st;
    lm_sampler sp;
    assert_int_equal(lm_sampler_init(&sp, 4), 0);
    float z[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    lm_sampling s;
    lm_sampling_default(&s);
    s.do_sample = 1;
    srlm_rng rng;
    srlm_rng_seed(&rng, 1);
    int count[4];
    /* top_p 0.8: ascending cumulative 0.05, 0.2 <= 0.2 removed → keep {0.5, 0.3} */
    s.top_p = 0.8f;
    memset(count, 0, sizeof count);
    for (int i = 0; i < 4000; i++) {
        float lp, slp;
        int t = lm_sample(&sp, z, &s, NULL, 0, &rng, &lp, &slp);
        count[t]++;
        if (t == 0) assert_true(fabsf(slp - logf(0.5f / 0.8f)) < 1e-5f && fabsf(lp - logf(0.5f)) < 1e-5f);
    }
    assert_int_equal(count[2] + count[3], 0);
    assert_true(fabs(count[0] / 4000.0 - 0.625) < 0.03);
    /* top_p 0.85: only 0.05 removed */
    s.top_p = 0.85f;
    memset(count, 0, sizeof count);
    for (int i = 0; i < 4000; i++) count[lm_sample(&sp, z, &s, NULL, 0, &rng, NULL, NULL)]++;
    assert_int_equal(count[3], 0);
    assert_true(count[2] > 0);
    /* top_k 1 = greedy; top_k 3 drops the smallest */
    s.top_p = 1.0f;
    s.top_k = 1;
    for (int i = 0; i < 100; i++) assert_int_equal(lm_sample(&sp, z, &s, NULL, 0, &rng, NULL, NULL), 0);
    s.top_k = 3;
    memset(count, 0, sizeof count);
    for (int i = 0; i < 4000; i++) count[lm_sample(&sp, z, &s, NULL, 0, &rng, NULL, NULL)]++;
    assert_int_equal(count[3], 0);
    assert_true(fabs(count[1] / 4000.0 - 0.3 / 0.95) < 0.03);
    /* temperature: τ = 0.5 squares the odds; reported logprob uses the τ distribution */
    s.top_k = 0;
    s.temperature = 0.5f;
    memset(count, 0, sizeof count);
    float lp0 = 0;
    for (int i = 0; i < 8000; i++) {
        float lp;
        int t = lm_sample(&sp, z, &s, NULL, 0, &rng, &lp, NULL);
        count[t]++;
        if (t == 0) lp0 = lp;
    }
    double zsum = 0.25 + 0.09 + 0.0225 + 0.0025;
    assert_true(fabs(count[0] / 8000.0 - 0.25 / zsum) < 0.03);
    assert_true(fabs(lp0 - log(0.25 / zsum)) < 1e-5);
    /* ties with the k-th value survive */
    float tz[4] = {1, 1, 1, 0};
    s.temperature = 1;
    s.top_k = 2;
    memset(count, 0, sizeof count);
    for (int i = 0; i < 3000; i++) count[lm_sample(&sp, tz, &s, NULL, 0, &rng, NULL, NULL)]++;
    assert_true(count[0] > 0 && count[1] > 0 && count[2] > 0 && count[3] == 0);
    lm_sampler_free(&sp);
}

static void test_deterministic_seed(void **st) {
    (void)st;
    int V = 1000;
    lm_sampler sp;
    assert_int_equal(lm_sampler_init(&sp, V), 0);
    float *z = malloc(sizeof(float) * V);
    srlm_rng r;
    srlm_rng_seed(&r, 9);
    for (int i = 0; i < V; i++) z[i] = 2 * srlm_rng_normal(&r);
    lm_sampling s;
    lm_sampling_default(&s);
    s.do_sample = 1;
    s.top_p = 0.9f;
    s.top_k = 100;
    s.temperature = 0.7f;
    int a[50], b[50];
    srlm_rng_seed(&r, 42);
    for (int i = 0; i < 50; i++) a[i] = lm_sample(&sp, z, &s, NULL, 0, &r, NULL, NULL);
    srlm_rng_seed(&r, 42);
    for (int i = 0; i < 50; i++) b[i] = lm_sample(&sp, z, &s, NULL, 0, &r, NULL, NULL);
    assert_memory_equal(a, b, sizeof a);
    free(z);
    lm_sampler_free(&sp);
}

static void test_generation_config(void **st) {
    (void)st;
    lm_sampling s;
    lm_sampling_default(&s);
    const char *qwen = "{\"bos_token_id\": 151643, \"pad_token_id\": 151643, \"do_sample\": true,"
                       "\"eos_token_id\": [151645, 151643], \"repetition_penalty\": 1.1, \"temperature\": 0.7,"
                       "\"top_p\": 0.8, \"top_k\": 20}";
    assert_int_equal(lm_sampling_from_json(&s, qwen, "g.json"), 0);
    assert_int_equal(s.do_sample, 1);
    assert_int_equal(s.n_stop, 2);
    assert_int_equal(s.stop_ids[0], 151645);
    assert_int_equal(s.stop_ids[1], 151643);
    assert_int_equal(s.top_k, 20);
    assert_true(fabsf(s.top_p - 0.8f) < 1e-6f && fabsf(s.temperature - 0.7f) < 1e-6f);
    assert_true(fabsf(s.repetition_penalty - 1.1f) < 1e-6f);
    assert_int_equal(lm_sampling_validate(&s), 0);
    assert_int_equal(lm_sampling_from_json(&s, "{\"top_k\": \"x\"}", "g.json"), SRLM_EFORMAT);
    assert_int_equal(lm_sampling_from_json(&s, "[", "g.json"), SRLM_EFORMAT);
    s.top_p = 0;
    assert_int_equal(lm_sampling_validate(&s), SRLM_EINVAL);
    s.top_p = 1;
    s.temperature = 0;
    assert_int_equal(lm_sampling_validate(&s), SRLM_EINVAL);
    s.do_sample = 0;
    assert_int_equal(lm_sampling_validate(&s), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_and_penalty),
        cmocka_unit_test(test_top_p_top_k),
        cmocka_unit_test(test_deterministic_seed),
        cmocka_unit_test(test_generation_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
