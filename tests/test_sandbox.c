/* test_sandbox.c — sandbox library and code reward: verdicts of sbx_run, record
 * authentication, code extraction, problem formats, degraded mode (no user namespace). */
#include <dirent.h>
#include <math.h>
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
#include "sandbox.h"
#include "util.h"

static char g_dir[256];

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

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/srlm-test-sandbox-%d", (int)getpid());
    srlm_mkdir_p(g_dir);
    setenv("SRLM_SANDBOX_DIR", g_dir, 1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    srlm_rm_rf(g_dir);
    return 0;
}

static sbx_result run_py(const sbx_ctx *ctx, const sbx_limits *lim, const char *code) {
    char *argv[] = {"/usr/bin/python3", "-I", "-S", "-B", "-c", (char *)code, NULL};
    sbx_job job = {argv, NULL, 0, NULL, NULL};
    sbx_result r;
    assert_int_equal(sbx_run(ctx, lim, &job, &r), 0);
    assert_int_equal(dir_entries(g_dir), 0); /* work dir removed */
    return r;
}

static void test_verdicts(void **state) {
    (void)state;
    sbx_ctx ctx;
    assert_int_equal(sbx_init(&ctx, 0), 0);
    sbx_limits lim;
    sbx_limits_default(&lim);
    lim.wall_s = 2.0;
    sbx_result r = run_py(&ctx, &lim, "print('hello')");
    assert_int_equal(r.verdict, SBX_OK);
    assert_string_equal(r.out, "hello\n");
    sbx_result_free(&r);
    r = run_py(&ctx, &lim, "import sys; sys.exit(3)");
    assert_int_equal(r.verdict, SBX_RE);
    assert_int_equal(r.exit_code, 3);
    sbx_result_free(&r);
    r = run_py(&ctx, &lim, "import time; time.sleep(100)");
    assert_int_equal(r.verdict, SBX_TLE);
    sbx_result_free(&r);
    r = run_py(&ctx, &lim, "import ctypes; ctypes.CDLL(None).syscall(101, 0, 0, 0, 0)");
    assert_int_equal(r.verdict, SBX_SEC);
    assert_int_equal(r.term_signal, 31);
    sbx_result_free(&r);
    lim.out_cap = 1000;
    r = run_py(&ctx, &lim, "while True: print('x' * 100)");
    assert_int_equal(r.verdict, SBX_OLE);
    assert_int_equal(r.out_len, 1000);
    sbx_result_free(&r);
    sbx_limits_default(&lim);
    r = run_py(&ctx, &lim, "x = bytearray(10**11)");
    assert_int_equal(r.verdict, SBX_MLE);
    sbx_result_free(&r);
    /* RLIMIT_NPROC holds: a fork loop stops at the limit (the run's own 1 + 15) */
    lim.nproc = 16;
    r = run_py(&ctx, &lim, "import os, time\nn = 0\ntry:\n    for i in range(100):\n"
                           "        if os.fork() == 0:\n            time.sleep(3); os._exit(0)\n"
                           "        n += 1\nexcept OSError:\n    pass\nprint(n)");
    assert_int_equal(r.verdict, SBX_OK);
    assert_string_equal(r.out, "15\n");
    sbx_result_free(&r);
    sbx_limits_default(&lim);
    /* identity and view: unprivileged, no /etc, no /proc, scrubbed environment */
    r = run_py(&ctx, &lim, "import os; print(os.getuid() != 0, os.path.exists('/etc/shadow'), "
                           "os.path.exists('/proc/1'), sorted(os.environ))");
    assert_int_equal(r.verdict, SBX_OK);
    assert_string_equal(r.out, "True False False ['HOME', 'LANG', 'LC_ALL', 'PATH', 'TMPDIR']\n");
    sbx_result_free(&r);
}

typedef struct {
    int n;
    char last[64];
} recs;

static int count_rec(void *user, const char *msg, size_t len, double *wall) {
    (void)wall;
    recs *r = user;
    r->n++;
    snprintf(r->last, sizeof r->last, "%.*s", (int)len, msg);
    return 0;
}

static void test_records_authenticated(void **state) {
    (void)state;
    sbx_ctx ctx;
    assert_int_equal(sbx_init(&ctx, 0), 0);
    sbx_limits lim;
    sbx_limits_default(&lim);
    /* the child's own record is accepted; its forked child's forgery is rejected */
    const char *code =
        "import os, socket\n"
        "s = socket.socket(fileno=4)\n"
        "if os.fork() == 0:\n"
        "    s.send(b'forged'); os._exit(0)\n"
        "os.wait()\n"
        "s.send(b'genuine:' + os.read(3, 100))\n";
    char *argv[] = {"/usr/bin/python3", "-I", "-S", "-B", "-c", (char *)code, NULL};
    recs rc = {0, ""};
    sbx_job job = {argv, "input!", 6, count_rec, &rc};
    sbx_result r;
    assert_int_equal(sbx_run(&ctx, &lim, &job, &r), 0);
    assert_int_equal(r.verdict, SBX_OK);
    assert_int_equal(r.records, 1);
    assert_int_equal(r.records_rejected, 1);
    assert_int_equal(rc.n, 1);
    assert_string_equal(rc.last, "genuine:input!");
    sbx_result_free(&r);
}

static void test_extract(void **state) {
    (void)state;
    int fenced;
    char *c = cr_extract_code("Here:\n```python\ndef f(x):\n    return 1\n```\nand\n```python\nprint(f(2))\n```\n", "f", &fenced);
    assert_int_equal(fenced, 1);
    assert_string_equal(c, "def f(x):\n    return 1\n");
    free(c);
    c = cr_extract_code("```\nx = 1\n```\n```\ny = 2\n```", NULL, &fenced);
    assert_string_equal(c, "y = 2\n");
    free(c);
    c = cr_extract_code("    return x\n", "f", &fenced);
    assert_int_equal(fenced, 0);
    assert_string_equal(c, "    return x\n");
    free(c);
    c = cr_extract_code("```python\ndef f(x):\n    return 2", "f", &fenced); /* cut off */
    assert_string_equal(c, "def f(x):\n    return 2");
    free(c);
}

static reward_result score(cr_ctx *c, const char *problem, const char *completion, int want_rc) {
    reward_result r;
    memset(&r, 0, sizeof r);
    assert_int_equal(cr_score(c, problem, completion, &r), want_rc);
    assert_int_equal(dir_entries(g_dir), 0);
    return r;
}

static const char *HE =
    "{\"task_id\":\"t/0\",\"prompt\":\"def add(a, b):\\n    \\\"\\\"\\\"sum\\\"\\\"\\\"\\n\","
    "\"entry_point\":\"add\",\"test\":\"def check(candidate):\\n    assert candidate(1, 2) == 3\\n"
    "    assert True\\n    x = 5\\n    assert candidate(x, 1) == 6\\n    assert not candidate(0, 0)\\n\"}";
static const char *MB =
    "{\"code_format\":\"mbpp\",\"test_list\":[\"assert sum(10,15) == 6\",\"assert sum(4,6) == 3\"],"
    "\"solution\":\"def sum(a, b):\\n    return 0\\n\"}";

static void test_code_reward(void **state) {
    (void)state;
    cr_ctx *c = malloc(sizeof *c);
    assert_int_equal(cr_init(c, 0), 0);
    c->test_timeout_s = 3;
    reward_result r = score(c, HE, "    return a + b\n", 0);
    assert_string_equal(r.verdict, "PASS");
    assert_true(r.correct);
    assert_true(r.format_ok); /* the prompt opens the function: prompt + body defines add */
    assert_true(r.reward == 1.0);
    json_t *d = json_loads(r.details_json, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(d, "tests")), 3); /* `assert True` is no test */
    json_decref(d);
    reward_result_free(&r);
    r = score(c, HE, "", 0);
    assert_string_equal(r.verdict, "WA");
    assert_false(r.format_ok);
    assert_true(r.reward == 0.0);
    reward_result_free(&r);
    r = score(c, HE, "    return a - b\n", 0); /* passes `not candidate(0, 0)` only */
    assert_string_equal(r.verdict, "WA");
    assert_true(r.reward > 0.3 && r.reward < 0.34);
    reward_result_free(&r);
    r = score(c, HE, "Sure!\n```python\ndef add(a, b):\n    return b + a\n```\n", 0);
    assert_string_equal(r.verdict, "PASS");
    assert_true(r.format_ok);
    reward_result_free(&r);
    /* MBPP: the solution shadows the builtin `sum`; the tests must call the candidate */
    r = score(c, MB, "def sum(a, b):\n    t = 0\n    for i in range(1, min(a, b)):\n"
                     "        if a % i == 0 and b % i == 0:\n            t += i\n    return t\n", 0);
    assert_string_equal(r.verdict, "PASS");
    assert_true(r.format_ok); /* unfenced (the MBPP prompt opens the fence) but defines sum */
    reward_result_free(&r);
    r = score(c, MB, "print(6)\n", 0); /* no function at all: the tests hit the builtin sum */
    assert_false(r.correct);
    assert_false(r.format_ok);
    reward_result_free(&r);
    /* unusable problems are errors, never a reward of 0 */
    r = score(c, "{\"prompt\":\"x\"}", "pass", SRLM_EINVAL);
    assert_true(r.is_error);
    reward_result_free(&r);
    r = score(c, "{\"code_format\":\"mbpp\",\"test_list\":[\"assert (\"]}", "x = 1", SRLM_EINVAL);
    assert_true(r.is_error);
    reward_result_free(&r);
    free(c);
}

/* Statuses of the per-test records, joined with ','. */
static void statuses(const reward_result *r, char *buf, size_t n) {
    json_t *d = json_loads(r->details_json, 0, NULL);
    assert_non_null(d);
    size_t i, len = 0;
    json_t *t;
    buf[0] = 0;
    json_array_foreach(json_object_get(d, "tests"), i, t)
        len += (size_t)snprintf(buf + len, len < n ? n - len : 0, "%s%s", i ? "," : "",
                                json_string_value(json_object_get(t, "status")));
    json_decref(d);
}

static const char *P4 =
    "{\"code_format\":\"mbpp\",\"test_list\":[\"assert f(1) == 2\",\"assert f(2) == 3\","
    "\"assert f(3) == 4\",\"assert f(4) == 5\",\"assert f(5) == 6\"],\"entry_point\":\"f\"}";

/* One candidate process serves the tests while they pass; after any test that does not
 * pass, a fresh one takes over, so a hang or crash costs that test only and state a
 * candidate left behind cannot turn a later wrong answer into a pass. Strict mode
 * (fresh_per_test) gives every test a fresh process. */
static void test_candidate_reuse(void **state) {
    (void)state;
    cr_ctx *c = malloc(sizeof *c);
    assert_int_equal(cr_init(c, 0), 0);
    c->test_timeout_s = 1.5;
    char st[256];
    for (int strict = 0; strict <= 1; strict++) {
        c->fresh_per_test = strict;
        /* hangs in test 2 of 5: tests 3-5 are still scored */
        reward_result r = score(c, P4, "def f(x):\n    while x == 2:\n        pass\n    return x + 1\n", 0);
        statuses(&r, st, sizeof st);
        assert_string_equal(st, "pass,timeout,pass,pass,pass");
        assert_string_equal(r.verdict, "TLE");
        assert_true(fabs(r.reward - 0.8) < 1e-9);
        reward_result_free(&r);
        /* crashes (SIGSEGV in test 1, exit in test 3): a fresh process for the next test */
        r = score(c, P4, "import ctypes, os\ndef f(x):\n    if x == 1:\n        ctypes.string_at(0)\n"
                         "    if x == 3:\n        os._exit(0)\n    return x + 1\n", 0);
        statuses(&r, st, sizeof st);
        assert_string_equal(st, "signal,pass,exit,pass,pass");
        assert_string_equal(r.verdict, "RE");
        reward_result_free(&r);
        /* state from a passing test: shadowed builtins, a patched harness, a rigged object
         * for later calls. The first call of each process answers right, later calls
         * wrong: shared mode sees pass,fail,pass,fail,pass (a fresh process after each
         * failure), strict mode passes every test (every call is a first call). */
        r = score(c, P4,
                  "import builtins, sys\n"
                  "calls = [0]\n"
                  "class Any:\n    def __eq__(self, o): return True\n    def __bool__(self): return True\n"
                  "def f(x):\n"
                  "    calls[0] += 1\n"
                  "    if calls[0] == 1:\n"
                  "        builtins.AssertionError = KeyError\n"
                  "        builtins.isinstance = lambda *a: True\n"
                  "        h = sys.modules['__main__'].__dict__\n"
                  "        real = h['_dumps']\n"
                  "        h['_dumps'] = lambda o: real({'v': {'r': 1}} if calls[0] > 1 and 'v' in o else o)\n"
                  "        return x + 1\n"
                  "    return Any()\n", 0);
        statuses(&r, st, sizeof st);
        assert_string_equal(st, strict ? "pass,pass,pass,pass,pass" : "pass,fail,pass,fail,pass");
        reward_result_free(&r);
        /* a program that does not compile: one load, every test an error */
        r = score(c, P4, "def f(x)\n    return x + 1\n", 0);
        statuses(&r, st, sizeof st);
        assert_string_equal(st, "error,error,error,error,error");
        assert_string_equal(r.verdict, "RE");
        reward_result_free(&r);
    }
    /* an exception message that is not valid UTF-8 text still scores (0), not an error */
    c->fresh_per_test = 0;
    reward_result r = score(c, P4, "def f(x):\n    raise ValueError('\\ud800')\n", 0);
    assert_false(r.is_error);
    assert_string_equal(r.verdict, "RE");
    assert_true(r.reward == 0.0);
    reward_result_free(&r);
    free(c);
}

/* The network, file-system and exit-status attacks are contained without user namespaces. */
static void test_no_userns(void **state) {
    (void)state;
    cr_ctx *c = malloc(sizeof *c);
    assert_int_equal(cr_init(c, 1), 0);
    assert_true(c->sbx.missing & SBX_NS_USER);
    c->test_timeout_s = 3;
    const char *prob = "{\"code_format\":\"mbpp\",\"test_list\":[\"assert f(1) == 2\"],"
                       "\"entry_point\":\"f\"}";
    static const char *const probes[] = {
        "import socket\ndef f(x):\n    try:\n        socket.create_connection(('127.0.0.1', 22), timeout=1)\n"
        "        return 0\n    except OSError:\n        return x + 1\n",
        "import os\ndef f(x):\n    try:\n        open('/etc/shadow').read()\n        return 0\n"
        "    except OSError:\n        return x + 1 if os.getuid() != 0 else 0\n",
        "def f(x):\n    try:\n        open('/usr/lib/python3.11/sitecustomize.py', 'w')\n        return 0\n"
        "    except OSError:\n        return x + 1\n",
    };
    for (size_t i = 0; i < 3; i++) {
        reward_result r = score(c, prob, probes[i], 0);
        assert_string_equal(r.verdict, "PASS");
        reward_result_free(&r);
    }
    reward_result r = score(c, prob, "import sys\ndef f(x):\n    return 0\nsys.exit(0)\n", 0);
    assert_string_equal(r.verdict, "WA");
    reward_result_free(&r);
    free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_records_authenticated),
        cmocka_unit_test(test_code_reward),
        cmocka_unit_test(test_candidate_reuse),
        cmocka_unit_test(test_no_userns),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
