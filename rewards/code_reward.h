/* code_reward.h — the code-execution reward (prefix cr_): problem + completion -> program,
 * run every test separately in the sandbox, reward = fraction of tests passed.
 *
 * Verdict source (DESIGN.md "Sandbox contract", docs/sandbox.md): the embedded harness
 * (sandbox/harness.py) runs the TRUSTED test code in a judge process that never executes
 * candidate code; the candidate runs in a child forked from a zygote that never held the
 * tests (one per completion, replaced after any test that does not pass; one per test
 * with fresh_per_test); its return values come back as plain data decoded by the judge. The
 * judge sends one record per test on fd 4, and the supervisor accepts records only from
 * the judge's pid (kernel-checked SCM_CREDENTIALS). A missing record is a failure; the
 * program's exit status and output never decide anything.
 *
 * Problems: canonical records (docs/records.md: code_format humaneval|mbpp, prompt, tests,
 * test_list, setup_code, entry_point, solution), raw HumanEval (prompt, test, entry_point,
 * canonical_solution) and raw MBPP (code, test_list, test_setup_code; sanitized MBPP's
 * test_imports). */
#ifndef SRLM_CODE_REWARD_H
#define SRLM_CODE_REWARD_H

#include <stddef.h>

#include "sandbox.h"
#include "worker.h"

typedef struct {
    sbx_ctx sbx;           /* probed once by cr_init */
    sbx_limits lim;        /* per run; wall_s is set from the number of tests */
    double test_timeout_s; /* wall-clock limit per test, seconds (default 6) */
    double max_wall_s;     /* cap of a whole run, seconds (default 120) */
    char python[256];      /* interpreter (default /usr/bin/python3, run as -I -S -B) */
    int fresh_per_test;    /* 1: a fresh candidate process for every test (strict mode);
                            * 0 (default): one per problem, re-forked after a non-pass */
    /* The harness compiled once by `python` (marshal format of that interpreter, made by
     * cr_init / cr_prepare): the judge then skips compiling ~30 KB of source per run.
     * Used only while harness_python equals python; else the source is run. */
    char harness_python[256];
    size_t harness_code_len;
    unsigned char harness_code[128 << 10];
} cr_ctx;

/* Defaults and the sandbox probe (logs one warning in degraded mode). no_userns: see
 * sbx_init. Errors: as sbx_init. */
int cr_init(cr_ctx *c, int no_userns);

/* Compile the harness with c->python (call after changing c->python; cr_init does it for
 * the default). Runs the interpreter once, outside the sandbox, on trusted source only.
 * Returns 0, or a negative SRLM_E* (then runs compile the source themselves: slower, the
 * same results). */
int cr_prepare(cr_ctx *c);

/* Extract the program text from raw model output: the first ```python (or ```py, or
 * untagged when no block is tagged) fenced block that defines `entry` (may be NULL or ""),
 * else the last such block; an unterminated final fence runs to the end. Without fences
 * the whole text. *fenced = 1 when a block was used. Returns a heap string (caller frees). */
char *cr_extract_code(const char *completion, const char *entry, int *fenced);

/* Score one completion (reward_score_fn of services/worker.h). ctx: a cr_ctx. Thread-safe.
 * out->details_json gets {"tests":[{"status","ms","msg"}...],"timings":{...},...}.
 * Returns 0, or a negative SRLM_E* for infrastructure failures and unusable problems
 * (then out->is_error = 1 and out->error says why; never a reward of 0). */
int cr_score(void *ctx, const char *problem_json, const char *completion, reward_result *out);

#endif
