/* test_code_reward_slow.c — acceptance on the bundled data sets: every HumanEval canonical
 * solution and every MBPP (full and sanitized) reference solution passes; an empty
 * completion scores 0 on every problem; a wrong completion (raises instead of answering)
 * scores 0 on a sample of every set. Two scoring threads. Data set errata: docs/sandbox.md. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "code_reward.h"
#include "util.h"

typedef struct {
    char *problem;      /* JSON text */
    char *completion;
    int want_pass;      /* 1: must PASS; 0: reward must be 0 */
    char id[64];
} job;

typedef struct {
    job *jobs;
    int n, next, bad;
    cr_ctx *cr;
    pthread_mutex_t mu;
} pool;

static void *worker(void *arg) {
    pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int i = p->next < p->n ? p->next++ : -1;
        pthread_mutex_unlock(&p->mu);
        if (i < 0) return NULL;
        job *j = &p->jobs[i];
        reward_result r;
        memset(&r, 0, sizeof r);
        int rc = cr_score(p->cr, j->problem, j->completion, &r);
        int ok = rc == 0 && !r.is_error &&
                 (j->want_pass ? (r.correct && !strcmp(r.verdict, "PASS")) : r.reward == 0.0);
        if (!ok) {
            pthread_mutex_lock(&p->mu);
            p->bad++;
            fprintf(stderr, "FAIL %s (%s): rc %d verdict %s reward %.3f error '%s' %s\n", j->id,
                    j->want_pass ? "reference" : "wrong/empty", rc, r.verdict, r.reward, r.error,
                    r.details_json ? r.details_json : "");
            pthread_mutex_unlock(&p->mu);
        }
        reward_result_free(&r);
    }
}

static json_t *load_set(const char *rel) {
    char path[800], *text;
    size_t len;
    assert_int_equal(srlm_resource_path(rel, path, sizeof path), 0);
    assert_int_equal(srlm_read_file(path, &text, &len, 0), 0);
    json_t *arr = json_array();
    if (text[0] == '[') {
        json_decref(arr);
        arr = json_loads(text, 0, NULL);
    } else {
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
            json_array_append_new(arr, json_loads(line, 0, NULL));
    }
    free(text);
    assert_non_null(arr);
    return arr;
}

/* the name of the first top-level def in a reference solution */
static void first_def(const char *code, char *name, size_t n) {
    const char *p = code;
    name[0] = 0;
    while (p && *p) {
        if (!strncmp(p, "def ", 4)) {
            size_t k = 0;
            p += 4;
            while (p[k] && p[k] != '(' && p[k] != ' ' && k + 1 < n) { name[k] = p[k]; k++; }
            name[k] = 0;
            return;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
}

static void run(job *jobs, int n) {
    pool p;
    memset(&p, 0, sizeof p);
    p.jobs = jobs;
    p.n = n;
    p.cr = malloc(sizeof *p.cr);
    assert_int_equal(cr_init(p.cr, 0), 0);
    /* Wall-clock limit per test: MBPP 123 needs ~4 s of CPU, and a loaded machine (other
     * tests in parallel) stretched it past 20 s of wall time. Correctness, not speed, is
     * what this acceptance test checks. */
    p.cr->test_timeout_s = 90.0;
    pthread_mutex_init(&p.mu, NULL);
    pthread_t th[2];
    for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&th[k], NULL, worker, &p), 0);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    for (int i = 0; i < n; i++) {
        free(jobs[i].problem);
        free(jobs[i].completion);
    }
    pthread_mutex_destroy(&p.mu);
    free(p.cr);
    fprintf(stderr, "%d scored, %d failed\n", n, p.bad);
    assert_int_equal(p.bad, 0);
}

static void add(job *j, json_t *prob, const char *completion, int want_pass, const char *id) {
    j->problem = json_dumps(prob, JSON_COMPACT);
    j->completion = srlm_xstrdup(completion);
    j->want_pass = want_pass;
    snprintf(j->id, sizeof j->id, "%s", id);
}

static void test_humaneval(void **state) {
    (void)state;
    json_t *set = load_set("datasets/data/humaneval/HumanEval.jsonl.gz");
    size_t n = json_array_size(set);
    assert_int_equal(n, 164);
    job *jobs = calloc(3 * n, sizeof *jobs);
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(set, i);
        const char *id = json_string_value(json_object_get(p, "task_id"));
        add(&jobs[k++], p, json_string_value(json_object_get(p, "canonical_solution")), 1, id);
        add(&jobs[k++], p, "", 0, id);
        if (i % 4 == 0) add(&jobs[k++], p, "    raise ValueError(\"wrong\")\n", 0, id);
    }
    run(jobs, k);
    free(jobs);
    json_decref(set);
}

static void mbpp(const char *rel, int expect_n) {
    json_t *set = load_set(rel);
    size_t n = json_array_size(set);
    assert_int_equal((int)n, expect_n);
    job *jobs = calloc(3 * n, sizeof *jobs);
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(set, i);
        char id[64], name[128], wrong[300];
        snprintf(id, sizeof id, "%s/%lld", rel, (long long)json_integer_value(json_object_get(p, "task_id")));
        const char *code = json_string_value(json_object_get(p, "code"));
        add(&jobs[k++], p, code, 1, id);
        add(&jobs[k++], p, "", 0, id);
        first_def(code, name, sizeof name);
        if (i % 10 == 0 && name[0]) {
            snprintf(wrong, sizeof wrong, "def %s(*args, **kwargs):\n    raise ValueError(\"wrong\")\n", name);
            add(&jobs[k++], p, wrong, 0, id);
        }
    }
    run(jobs, k);
    free(jobs);
    json_decref(set);
}

static void test_mbpp(void **state) { (void)state; mbpp("datasets/data/mbpp/mbpp.jsonl.gz", 974); }
static void test_mbpp_sanitized(void **state) {
    (void)state;
    mbpp("datasets/data/mbpp/sanitized-mbpp.json.gz", 427);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_humaneval),
        cmocka_unit_test(test_mbpp),
        cmocka_unit_test(test_mbpp_sanitized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
