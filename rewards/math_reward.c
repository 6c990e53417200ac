/* math_reward.c — the math checker as a reward scorer (reward_score_fn of
 * services/worker.h), JSON rendering of results, and the seccomp allowlist that the
 * reward-math worker installs once it has loaded everything (see math_reward.h). */
#include <errno.h>
#include <jansson.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "math_reward.h"
#include "util.h"

void mr_ctx_init(mr_ctx *ctx) {
    mr_opts_default(&ctx->opts);
    ctx->sb = NULL;
    ctx->timeout_s = 10.0;
    mr_prepare();
}

char *mr_result_json(const mr_result *r) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "correct", json_boolean(r->correct));
    json_object_set_new(o, "verdict", json_string(mr_verdict_name(r->verdict)));
    json_object_set_new(o, "extracted", json_stringn(r->extracted, strlen(r->extracted)));
    json_object_set_new(o, "rule", json_string(mr_rule_name(r->rule)));
    json_object_set_new(o, "format_ok", json_boolean(r->format_ok));
    json_object_set_new(o, "gold", json_stringn(r->gold, strlen(r->gold)));
    json_object_set_new(o, "method", json_string(r->method));
    json_object_set_new(o, "tolerance", json_real(r->tolerance));
    if (r->reason[0]) json_object_set_new(o, "reason", json_string(r->reason));
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

/* Keep a string valid UTF-8 after byte truncation (drop a cut multi-byte tail). */
static void utf8_trim(char *s) {
    size_t n = strlen(s);
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--;
    if (i > 0 && (unsigned char)s[i - 1] >= 0xC0) {
        unsigned char c = (unsigned char)s[i - 1];
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (n - (i - 1) < need) s[i - 1] = 0;
    }
}

int mr_score(void *ctx, const char *problem_json, const char *completion, reward_result *out) {
    mr_ctx *c = ctx;
    mr_opts def;
    mr_opts_default(&def);
    const mr_opts *opts = c ? &c->opts : &def;
    json_error_t jerr;
    json_t *pj = problem_json ? json_loads(problem_json, JSON_DECODE_ANY, &jerr) : NULL;
    const char *gold = NULL;
    char numbuf[64];
    if (pj && json_is_object(pj)) {
        json_t *ans = json_object_get(pj, "answer");
        if (json_is_string(ans)) gold = json_string_value(ans);
        else if (json_is_integer(ans)) {
            snprintf(numbuf, sizeof numbuf, "%lld", (long long)json_integer_value(ans));
            gold = numbuf;
        } else if (json_is_real(ans)) {
            snprintf(numbuf, sizeof numbuf, "%.17g", json_real_value(ans));
            gold = numbuf;
        }
    }
    if (!gold || !completion) {
        out->is_error = 1;
        snprintf(out->error, sizeof out->error, "%s",
                 !pj ? "problem is not valid JSON" : !completion ? "no completion" : "problem has no \"answer\" field");
        json_decref(pj);
        return srlm_set_error(SRLM_EINVAL, "mr_score: %s", out->error);
    }
    mr_result r;
    int rc = 0;
    if (c && c->sb) rc = mr_sandbox_check(c->sb, gold, completion, &r, c->timeout_s);
    else mr_check(gold, completion, opts, &r);
    json_decref(pj);
    if (r.verdict < MR_CORRECT || r.verdict > MR_UNPARSABLE) r.verdict = MR_UNPARSABLE;
    if ((int)r.rule < MR_RULE_NONE || (int)r.rule > MR_RULE_LAST_NUMBER) r.rule = MR_RULE_NONE;
    r.correct = r.verdict == MR_CORRECT;
    if (rc) SRLM_ERROR("math checker: %s", srlm_last_error());
    out->is_error = 0;
    out->correct = r.correct;
    out->reward = r.correct ? 1.0 : 0.0;
    out->format_ok = r.format_ok;
    snprintf(out->verdict, sizeof out->verdict, "%s", mr_verdict_name(r.verdict));
    snprintf(out->extracted, sizeof out->extracted, "%s", r.extracted);
    utf8_trim(out->extracted);
    utf8_trim(r.extracted);
    utf8_trim(r.gold);
    out->details_json = mr_result_json(&r);
    return 0;
}

/* ---- seccomp ------------------------------------------------------------------------- */
static int allow(scmp_filter_ctx f, int nr) { return seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0); }

int mr_seccomp_install(int level) {
    mr_prepare();
    json_object_seed(0); /* jansson seeds its hash from /dev/urandom: do it before the filter */
    (void)level; /* one level: strict */
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!f) return srlm_set_error(SRLM_EIO, "seccomp_init failed");
    int rc = 0;
    static const int BASE[] = {
        SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
        SCMP_SYS(lseek), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(brk), SCMP_SYS(munmap),
        SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(futex), SCMP_SYS(exit), SCMP_SYS(exit_group),
        SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday),
        SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(tgkill), SCMP_SYS(sched_yield), SCMP_SYS(restart_syscall),
        SCMP_SYS(getrandom), SCMP_SYS(close),
    };
    for (size_t i = 0; i < sizeof BASE / sizeof BASE[0] && !rc; i++) rc = allow(f, BASE[i]);
    /* memory: never executable */
    if (!rc) rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (!rc) rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (!rc && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) rc = -errno;
    if (!rc) rc = seccomp_load(f);
    seccomp_release(f);
    if (rc) return srlm_set_error(SRLM_EIO, "seccomp filter: %s", strerror(-rc));
    return 0;
}
