/* test_sandbox_cases_slow.c — every hostile/faulty/control program of tests/sandbox_cases/
 * gets its expected verdict (header line `# expect: V`), a reward of 0 unless it is a
 * control or probe that must PASS, and after each run no process of the run remains and
 * the work directory is gone; this process (the worker) survives all of them. Cases
 * marked `# nouserns: yes` (network, file system, exit status, controls) run again
 * without a user namespace (degraded mode). The exit-status, file-system, tampering,
 * process-escape and fault groups also run in strict mode (a fresh candidate process per
 * test). Two threads, as `reward-code --jobs 2`. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "code_reward.h"
#include "util.h"

#define MAXC 256

typedef struct {
    char name[128];
    char expect[16];
    int nouserns;
    char *code;
} tcase;

typedef struct {
    tcase *cases;
    int n, next, only_nouserns, fresh;
    cr_ctx *cr[2];
    pthread_mutex_t mu;
    int failures, runs, slots;
} suite;

static const char *PROBLEM =
    "{\"code_format\":\"mbpp\",\"test_list\":[\"assert f(1) == 2\",\"assert f(5) == 6\"],"
    "\"entry_point\":\"f\",\"solution\":\"def f(x):\\n    return x + 1\\n\"}";

static int dir_entries(const char *d) {
    DIR *dp = opendir(d);
    if (!dp) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(dp);
    return n;
}

/* processes whose real uid is in [lo, hi] */
static int procs_with_uid(unsigned lo, unsigned hi) {
    DIR *dp = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (dp && (e = readdir(dp))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f)) {
            unsigned uid;
            if (sscanf(line, "Uid: %u", &uid) == 1) {
                if (uid >= lo && uid <= hi) n++;
                break;
            }
        }
        fclose(f);
    }
    if (dp) closedir(dp);
    return n;
}

static void *worker(void *arg) {
    suite *s = arg;
    pthread_mutex_lock(&s->mu);
    int slot = s->slots++ & 1;
    pthread_mutex_unlock(&s->mu);
    cr_ctx *cr = s->cr[slot];
    unsigned U = 1000000u + 2u * (unsigned)syscall(SYS_gettid);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int i = s->next < s->n ? s->next++ : -1;
        pthread_mutex_unlock(&s->mu);
        if (i < 0) break;
        tcase *t = &s->cases[i];
        if (s->only_nouserns && !t->nouserns) continue;
        if (s->fresh && !strchr("efhpx", t->name[0])) continue;
        reward_result r;
        memset(&r, 0, sizeof r);
        int rc = cr_score(cr, PROBLEM, t->code, &r);
        int leftover = procs_with_uid(U, U + 1);
        int files = dir_entries(cr->sbx.base_dir);
        int ok = rc == 0 && !r.is_error && !strcmp(r.verdict, t->expect) &&
                 r.reward == (strcmp(t->expect, "PASS") ? 0.0 : 1.0) && leftover == 0 && files == 0;
        pthread_mutex_lock(&s->mu);
        s->runs++;
        if (!ok) {
            s->failures++;
            fprintf(stderr, "MISMATCH %s%s: want %s, got rc %d verdict %s reward %.3f error '%s' "
                    "leftover %d files %d details %s\n", t->name,
                    s->only_nouserns ? " (no userns)" : s->fresh ? " (fresh per test)" : "",
                    t->expect, rc, r.verdict, r.reward, r.error, leftover, files,
                    r.details_json ? r.details_json : "");
        }
        pthread_mutex_unlock(&s->mu);
        reward_result_free(&r);
    }
    return NULL;
}

static int load_cases(tcase *cs) {
    char dir[600];
    const char *src = getenv("SRLM_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/tests/sandbox_cases", src && *src ? src : SRLM_SOURCE_DIR);
    struct dirent **names;
    int nn = scandir(dir, &names, NULL, alphasort);
    assert_true(nn > 0);
    int n = 0;
    for (int i = 0; i < nn; i++) {
        const char *nm = names[i]->d_name;
        size_t l = strlen(nm);
        if (l > 3 && !strcmp(nm + l - 3, ".py") && n < MAXC) {
            char path[800];
            snprintf(path, sizeof path, "%s/%s", dir, nm);
            tcase *t = &cs[n];
            memset(t, 0, sizeof *t);
            size_t len;
            assert_int_equal(srlm_read_file(path, &t->code, &len, 0), 0);
            snprintf(t->name, sizeof t->name, "%s", nm);
            assert_int_equal(sscanf(t->code, "# expect: %15s", t->expect), 1);
            t->nouserns = strstr(t->code, "\n# nouserns: yes") != NULL;
            n++;
        }
        free(names[i]);
    }
    free(names);
    return n;
}

static void run_suite(int nouserns, int fresh) {
    static tcase cases[MAXC];
    int n = load_cases(cases);
    assert_true(n >= 60);
    suite s;
    memset(&s, 0, sizeof s);
    s.cases = cases;
    s.n = n;
    s.only_nouserns = nouserns;
    s.fresh = fresh;
    pthread_mutex_init(&s.mu, NULL);
    for (int k = 0; k < 2; k++) {
        s.cr[k] = malloc(sizeof(cr_ctx));
        assert_int_equal(cr_init(s.cr[k], nouserns), 0);
        s.cr[k]->test_timeout_s = 3.0;
        s.cr[k]->fresh_per_test = fresh;
        snprintf(s.cr[k]->sbx.base_dir, sizeof s.cr[k]->sbx.base_dir, "/tmp/srlm-test-cases-%d-%d",
                 (int)getpid(), k);
        assert_int_equal(srlm_mkdir_p(s.cr[k]->sbx.base_dir), 0);
    }
    pthread_t th[2];
    for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&th[k], NULL, worker, &s), 0);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    fprintf(stderr, "%d cases run%s, %d mismatches\n", s.runs,
            nouserns ? " without user namespace" : fresh ? " with a fresh process per test" : "",
            s.failures);
    assert_false(srlm_file_exists("/tmp/pwned")); /* the daemon case wrote inside the sandbox */
    for (int k = 0; k < 2; k++) {
        srlm_rm_rf(s.cr[k]->sbx.base_dir);
        free(s.cr[k]);
    }
    for (int i = 0; i < n; i++) free(cases[i].code);
    pthread_mutex_destroy(&s.mu);
    assert_int_equal(s.failures, 0);
    assert_true(s.runs >= (nouserns || fresh ? 20 : 60));
}

static void test_cases(void **state) { (void)state; run_suite(0, 0); }
static void test_cases_no_userns(void **state) { (void)state; run_suite(1, 0); }
/* strict mode (a fresh candidate process per test): the exit-status, file-system, harness
 * tampering, process-escape and fault groups */
static void test_cases_fresh_per_test(void **state) { (void)state; run_suite(0, 1); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_cases_no_userns),
        cmocka_unit_test(test_cases_fresh_per_test),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
