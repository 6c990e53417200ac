/* code_reward.c — code-execution reward: build the harness job, run it sandboxed, turn the
 * authenticated per-test records into a reward_result. See code_reward.h. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "code_reward.h"
#include "util.h"

extern const char sbx_harness_py[]; /* sandbox/harness.py, embedded at build time */

int cr_init(cr_ctx *c, int no_userns) {
    memset(c, 0, sizeof *c);
    sbx_limits_default(&c->lim);
    c->test_timeout_s = 6.0;
    c->max_wall_s = 120.0;
    snprintf(c->python, sizeof c->python, "/usr/bin/python3");
    int rc = sbx_init(&c->sbx, no_userns);
    if (rc) return rc;
    if (cr_prepare(c))
        SRLM_WARN("code reward: %s; every run compiles the harness source (slower)",
                  srlm_last_error());
    return 0;
}

/* The judge's bootstrap (python -c): read [u32 length][marshal code] from fd 3 and run it;
 * the harness then reads the job (the rest of fd 3). The code was made by the same
 * interpreter from our own source (cr_prepare): trusted data, never the candidate's. */
static const char BOOTSTRAP[] =
    "import marshal,posix\n"
    "def _r(n):\n"
    "    b=b''\n"
    "    while len(b)<n:\n"
    "        c=posix.read(3,n-len(b))\n"
    "        if not c: raise EOFError('harness code')\n"
    "        b+=c\n"
    "    return b\n"
    "exec(marshal.loads(_r(int.from_bytes(_r(4),'little'))))\n";

int cr_prepare(cr_ctx *c) {
    static const char compiler[] =
        "import marshal,sys\n"
        "sys.stdout.buffer.write(marshal.dumps(compile(sys.stdin.buffer.read(),'<harness>','exec')))\n";
    c->harness_code_len = 0;
    c->harness_python[0] = 0;
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
        int e = errno;
        if (in[0] >= 0) { close(in[0]); close(in[1]); }
        return srlm_set_error(SRLM_EIO, "harness compile: pipe: %s", strerror(e));
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0) _exit(127);
        char *argv[] = {c->python, "-I", "-S", "-B", "-c", (char *)compiler, NULL};
        char *envp[] = {"LC_ALL=C.UTF-8", NULL};
        execve(c->python, argv, envp);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        return srlm_set_error(SRLM_EIO, "harness compile: fork: %s", strerror(errno));
    }
    /* write the source, then read the code (the interpreter reads all input first) */
    extern const char sbx_harness_py[];
    const char *src = sbx_harness_py;
    size_t n = strlen(src), off = 0, got = 0;
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    while (off < n) {
        ssize_t w = write(in[1], src + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    close(in[1]);
    signal(SIGPIPE, old);
    int too_big = 0;
    for (;;) {
        char buf[8192];
        ssize_t r = read(out[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (got + (size_t)r > sizeof c->harness_code) { too_big = 1; continue; }
        memcpy(c->harness_code + got, buf, (size_t)r);
        got += (size_t)r;
    }
    close(out[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (off < n || too_big || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || got == 0)
        return srlm_set_error(SRLM_EIO, "harness compile with %s failed (%s)", c->python,
                              too_big ? "code larger than the buffer" : "interpreter error");
    c->harness_code_len = got;
    snprintf(c->harness_python, sizeof c->harness_python, "%s", c->python);
    return 0;
}

/* ---------------------------------------------------------------- code extraction */
typedef struct {
    const char *start;
    size_t len;
    int tagged; /* python / py / python3 */
} block;

char *cr_extract_code(const char *text, const char *entry, int *fenced) {
    block b[64];
    int nb = 0;
    const char *p = text;
    *fenced = 0;
    while ((p = strstr(p, "```")) && nb < 64) {
        /* a fence opens at the start of a line (or of the text) */
        if (p != text && p[-1] != '\n' && p[-1] != ' ' && p[-1] != '\t') { p += 3; continue; }
        const char *info = p + 3;
        const char *nl = strchr(info, '\n');
        if (!nl) break;
        size_t il = (size_t)(nl - info);
        while (il && (info[il - 1] == ' ' || info[il - 1] == '\r' || info[il - 1] == '\t')) il--;
        int tagged = (il == 6 && !strncmp(info, "python", 6)) || (il == 2 && !strncmp(info, "py", 2)) ||
                     (il == 7 && !strncmp(info, "python3", 7)) || (il == 6 && !strncmp(info, "Python", 6));
        int untagged = il == 0;
        const char *body = nl + 1;
        const char *end = strstr(body, "```");
        while (end && end != body && end[-1] != '\n') end = strstr(end + 3, "```");
        size_t len = end ? (size_t)(end - body) : strlen(body);
        if (tagged || untagged) b[nb++] = (block){body, len, tagged};
        if (!end) break;
        p = end + 3;
    }
    int any_tagged = 0;
    for (int i = 0; i < nb; i++) any_tagged |= b[i].tagged;
    int pick = -1;
    char def[300] = "";
    if (entry && *entry) snprintf(def, sizeof def, "def %s", entry);
    for (int i = 0; i < nb && pick < 0 && def[0]; i++) {
        if (any_tagged && !b[i].tagged) continue;
        char *s = strndup(b[i].start, b[i].len);
        if (strstr(s, def)) pick = i;
        free(s);
    }
    for (int i = nb - 1; i >= 0 && pick < 0; i--)
        if (!any_tagged || b[i].tagged) pick = i;
    if (pick < 0) return srlm_xstrdup(text);
    *fenced = 1;
    return strndup(b[pick].start, b[pick].len);
}

static int blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\n' && *s != '\t' && *s != '\r') return 0;
    return 1;
}

/* ---------------------------------------------------------------- problem -> job */
typedef struct {
    int humaneval;
    const char *prompt, *check, *entry, *setup, *reference;
    json_t *tests;       /* borrowed array of strings (mbpp) */
    char *setup_owned;   /* sanitized MBPP test_imports joined */
} problem;

static const char *jstr(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int parse_problem(json_t *o, problem *pb) {
    memset(pb, 0, sizeof *pb);
    if (!json_is_object(o)) return srlm_set_error(SRLM_EINVAL, "problem: not a JSON object");
    const char *fmt = jstr(o, "code_format");
    const char *check = jstr(o, "tests");
    if (!check) check = jstr(o, "test");
    json_t *tl = json_object_get(o, "test_list");
    pb->entry = jstr(o, "entry_point");
    if (fmt ? !strcmp(fmt, "humaneval") : (check && !json_is_array(tl))) {
        pb->humaneval = 1;
        pb->prompt = jstr(o, "prompt");
        pb->check = check;
        if (!pb->prompt || !pb->check || !pb->entry)
            return srlm_set_error(SRLM_EINVAL, "problem: humaneval format needs prompt, tests "
                                               "(or test) and entry_point");
        pb->reference = jstr(o, "solution");
        if (!pb->reference) pb->reference = jstr(o, "canonical_solution");
        return 0;
    }
    if (fmt && strcmp(fmt, "mbpp"))
        return srlm_set_error(SRLM_EINVAL, "problem: unknown code_format '%s'", fmt);
    if (!json_is_array(tl) || json_array_size(tl) == 0)
        return srlm_set_error(SRLM_EINVAL, "problem: no tests (need test_list, or tests/test "
                                           "with check(candidate))");
    size_t i;
    json_t *v;
    json_array_foreach(tl, i, v) if (!json_is_string(v))
        return srlm_set_error(SRLM_EINVAL, "problem: test_list[%zu] is not a string", i);
    pb->tests = tl;
    pb->setup = jstr(o, "setup_code");
    if (!pb->setup) pb->setup = jstr(o, "test_setup_code");
    json_t *imps = json_object_get(o, "test_imports");
    if (json_is_array(imps) && json_array_size(imps)) {
        size_t n = 1;
        json_array_foreach(imps, i, v) if (json_is_string(v)) n += strlen(json_string_value(v)) + 1;
        if (pb->setup) n += strlen(pb->setup) + 1;
        pb->setup_owned = srlm_xcalloc(1, n);
        json_array_foreach(imps, i, v) if (json_is_string(v)) {
            strcat(pb->setup_owned, json_string_value(v));
            strcat(pb->setup_owned, "\n");
        }
        if (pb->setup) strcat(pb->setup_owned, pb->setup);
        pb->setup = pb->setup_owned;
    }
    pb->reference = jstr(o, "solution");
    if (!pb->reference) pb->reference = jstr(o, "code");
    return 0;
}

/* ---------------------------------------------------------------- records */
enum { T_MISSING = 0, T_PASS, T_FAIL, T_EXIT, T_ERROR, T_TIMEOUT, T_MEMORY, T_SEC, T_OLE,
       T_SIGNAL };
static const char *const tstat_names[] = {"missing", "pass", "fail", "exit", "error",
                                          "timeout", "memory", "sec", "ole", "signal"};

typedef struct {
    double setup_wall, timeout, max_wall;
    int n;         /* tests planned (-1: no plan yet) */
    int *status;   /* [n] */
    double *ms;    /* [n] */
    char (*msg)[120];
    int done, dup, bad, tamper;
    char harness_error[200];
} runstate;

static int on_record(void *user, const char *msg, size_t len, double *wall_s) {
    runstate *rs = user;
    json_error_t je;
    json_t *r = json_loadb(msg, len, 0, &je);
    const char *kind = r ? jstr(r, "kind") : NULL;
    int rc = 0;
    if (!kind) {
        rs->bad++;
    } else if (!strcmp(kind, "plan") && rs->n < 0) {
        json_int_t n = json_integer_value(json_object_get(r, "n"));
        if (n < 0 || n > 10000) { rs->bad++; rc = -1; goto out; }
        rs->n = (int)n;
        rs->status = srlm_xcalloc((size_t)n + 1, sizeof *rs->status);
        rs->ms = srlm_xcalloc((size_t)n + 1, sizeof *rs->ms);
        rs->msg = srlm_xcalloc((size_t)n + 1, sizeof *rs->msg);
        double w = rs->setup_wall + (double)n * (rs->timeout + 0.5);
        *wall_s = w < rs->max_wall ? w : rs->max_wall;
    } else if (!strcmp(kind, "test") && rs->n >= 0) {
        json_int_t i = json_integer_value(json_object_get(r, "i"));
        const char *st = jstr(r, "status");
        if (i < 0 || i >= rs->n || !st) { rs->bad++; goto out; }
        if (rs->status[i] != T_MISSING) { rs->dup++; goto out; }
        int s = T_FAIL;
        for (int k = 1; k < (int)(sizeof tstat_names / sizeof *tstat_names); k++)
            if (!strcmp(st, tstat_names[k])) s = k;
        rs->status[i] = s;
        rs->ms[i] = json_real_value(json_object_get(r, "ms"));
        if (json_is_integer(json_object_get(r, "ms")))
            rs->ms[i] = (double)json_integer_value(json_object_get(r, "ms"));
        const char *m = jstr(r, "msg");
        snprintf(rs->msg[i], sizeof rs->msg[i], "%s", m ? m : "");
    } else if (!strcmp(kind, "tamper")) {
        rs->tamper = 1;
    } else if (!strcmp(kind, "done")) {
        rs->done = 1;
    } else if (!strcmp(kind, "harness_error")) {
        const char *m = jstr(r, "msg");
        snprintf(rs->harness_error, sizeof rs->harness_error, "%s", m ? m : "?");
    } else {
        rs->bad++;
    }
out:
    json_decref(r);
    return rc;
}

static int fail(reward_result *out, int code, const char *why) {
    out->is_error = 1;
    out->reward = 0;
    snprintf(out->verdict, sizeof out->verdict, "%s", "");
    snprintf(out->error, sizeof out->error, "%s", why);
    return code;
}

int cr_score(void *vctx, const char *problem_json, const char *completion, reward_result *out) {
    const cr_ctx *c = vctx;
    json_error_t je;
    json_t *pj = json_loads(problem_json, 0, &je);
    if (!pj) {
        char why[200];
        snprintf(why, sizeof why, "problem JSON: %s (column %d)", je.text, je.column);
        srlm_set_error(SRLM_EINVAL, "%s", why);
        return fail(out, SRLM_EINVAL, why);
    }
    problem pb;
    int rc = parse_problem(pj, &pb);
    if (rc) {
        fail(out, rc, srlm_last_error());
        free(pb.setup_owned);
        json_decref(pj);
        return rc;
    }
    int fenced = 0;
    char *code = cr_extract_code(completion ? completion : "", pb.entry, &fenced);
    /* format ok: a fenced block, or (prompts that open the fence or the function
     * themselves: MBPP, HumanEval) a non-blank completion that defines the entry point or,
     * HumanEval, continues the prompt's definition of it */
    char def[300] = "def "; /* "def ENTRY(", or any "def " when the problem names no entry point */
    if (pb.entry && *pb.entry) snprintf(def, sizeof def, "def %s(", pb.entry);
    out->format_ok = fenced || (!blank(code) && (strstr(code, def) || (pb.humaneval && strstr(pb.prompt, def))));
    if (blank(code)) {
        /* nothing to run: a wrong answer, not an infrastructure failure */
        out->reward = 0;
        out->correct = 0;
        snprintf(out->verdict, sizeof out->verdict, "WA");
        out->details_json = srlm_xstrdup("{\"tests\":[],\"note\":\"empty program\"}");
        free(code);
        free(pb.setup_owned);
        json_decref(pj);
        return 0;
    }
    /* The program. HumanEval: prompt + completion (a fenced block is a whole program: it
     * follows the prompt so the prompt's imports and helpers stay available). */
    char *program;
    if (pb.humaneval) {
        size_t n = strlen(pb.prompt) + strlen(code) + 2;
        program = srlm_xmalloc(n);
        snprintf(program, n, "%s%s%s", pb.prompt, fenced ? "\n" : "", code);
    } else {
        program = srlm_xstrdup(code);
    }
    free(code);
    json_t *job = json_object();
    json_object_set_new(job, "format", json_string(pb.humaneval ? "humaneval" : "mbpp"));
    json_object_set_new(job, "program", json_string(program));
    json_object_set_new(job, "timeout", json_real(c->test_timeout_s));
    if (c->fresh_per_test) json_object_set_new(job, "fresh_per_test", json_true());
    if (pb.entry) json_object_set_new(job, "entry_point", json_string(pb.entry));
    if (pb.reference) json_object_set_new(job, "reference", json_string(pb.reference));
    if (pb.setup) json_object_set_new(job, "setup", json_string(pb.setup));
    if (pb.humaneval) {
        json_object_set_new(job, "prompt", json_string(pb.prompt));
        json_object_set_new(job, "check", json_string(pb.check));
    } else {
        json_object_set(job, "tests", pb.tests);
    }
    free(program);
    char *jtext = json_dumps(job, JSON_COMPACT);
    json_decref(job);
    /* fd 3: [u32 length][harness code] (fast path) then the job */
    int fast = c->harness_code_len > 0 && !strcmp(c->harness_python, c->python);
    char *input = NULL;
    size_t input_len = 0;
    if (jtext) {
        size_t jl = strlen(jtext), pre = fast ? 4 + c->harness_code_len : 0;
        input = srlm_xmalloc(pre + jl + 1);
        if (fast) {
            uint32_t l32 = (uint32_t)c->harness_code_len;
            unsigned char le[4] = {(unsigned char)l32, (unsigned char)(l32 >> 8),
                                   (unsigned char)(l32 >> 16), (unsigned char)(l32 >> 24)};
            memcpy(input, le, 4);
            memcpy(input + 4, c->harness_code, c->harness_code_len);
        }
        memcpy(input + pre, jtext, jl + 1);
        input_len = pre + jl;
        free(jtext);
    }
    if (!input) {
        free(pb.setup_owned);
        json_decref(pj);
        return fail(out, SRLM_EINVAL, "program is not valid UTF-8 text");
    }

    runstate rs;
    memset(&rs, 0, sizeof rs);
    rs.n = -1;
    rs.timeout = c->test_timeout_s;
    rs.max_wall = c->max_wall_s;
    rs.setup_wall = 5.0;
    sbx_limits lim = c->lim;
    /* Until the plan arrives only our harness runs (no candidate code yet): be generous,
     * a busy machine can take seconds to start the interpreter. */
    lim.wall_s = c->max_wall_s < 30.0 ? c->max_wall_s : 30.0;
    if (lim.cpu_s <= 0) lim.cpu_s = (int)ceil(c->max_wall_s) + 1;
    char *argv[] = {(char *)c->python, "-I", "-S", "-B", "-c",
                    fast ? (char *)BOOTSTRAP : (char *)sbx_harness_py, NULL};
    sbx_job sj = {argv, input, input_len, on_record, &rs};
    sbx_result sr;
    rc = sbx_run(&c->sbx, &lim, &sj, &sr);
    free(input);
    free(pb.setup_owned);
    json_decref(pj);
    if (rc) {
        char why[256];
        snprintf(why, sizeof why, "%s", srlm_last_error());
        fail(out, rc, why);
        goto done;
    }
    if (rs.harness_error[0]) {
        char why[256];
        snprintf(why, sizeof why, "problem tests unusable: %s", rs.harness_error);
        rc = fail(out, SRLM_EINVAL, why);
        goto done;
    }
    if (rs.n < 0 || rs.dup || rs.bad) {
        char why[256];
        const char *tail = sr.err_len > 160 ? sr.err + sr.err_len - 160 : sr.err;
        snprintf(why, sizeof why, "harness: %s (sandbox %s, exit %d, signal %d): %s",
                 rs.n < 0 ? "no test plan" : "malformed records", sbx_verdict_name(sr.verdict),
                 sr.exit_code, sr.term_signal, tail);
        rc = fail(out, SRLM_EINTERNAL, why);
        goto done;
    }
    int passed = 0, worst = 0;
    /* verdict of a failed run: the most specific cause among the tests */
    static const int rank[] = {[T_MISSING] = 1, [T_PASS] = 0, [T_FAIL] = 1, [T_EXIT] = 1,
                               [T_ERROR] = 2, [T_SIGNAL] = 2, [T_TIMEOUT] = 3, [T_MEMORY] = 4,
                               [T_OLE] = 5, [T_SEC] = 6};
    for (int i = 0; i < rs.n; i++) {
        if (rs.status[i] == T_PASS) passed++;
        if (rank[rs.status[i]] > worst) worst = rank[rs.status[i]];
    }
    if (sr.verdict == SBX_OLE && worst < 5) worst = 5;
    if (sr.verdict == SBX_TLE && passed < rs.n && worst < 3) worst = 3;
    if ((sr.verdict == SBX_SEC || rs.tamper) && worst < 6) worst = 6;
    if (rs.tamper) passed = 0; /* an escape attempt earns nothing */
    static const char *const vn[] = {"PASS", "WA", "RE", "TLE", "MLE", "OLE", "SEC"};
    out->correct = rs.n > 0 && passed == rs.n;
    out->reward = rs.n > 0 ? (double)passed / rs.n : 0.0;
    snprintf(out->verdict, sizeof out->verdict, "%s", out->correct ? "PASS" : vn[worst ? worst : 1]);
    json_t *d = json_object();
    json_t *ta = json_array();
    for (int i = 0; i < rs.n; i++) {
        json_t *t = json_object();
        json_object_set_new(t, "status", json_string(tstat_names[rs.status[i]]));
        json_object_set_new(t, "ms", json_real(rs.ms[i]));
        if (rs.msg[i][0]) json_object_set_new(t, "msg", json_string(rs.msg[i]));
        json_array_append_new(ta, t);
    }
    json_object_set_new(d, "tests", ta);
    json_t *tm = json_object();
    json_object_set_new(tm, "setup_s", json_real(sr.setup_s));
    json_object_set_new(tm, "wall_s", json_real(sr.wall_s));
    json_object_set_new(tm, "cpu_s", json_real(sr.cpu_s));
    json_object_set_new(d, "timings", tm);
    json_object_set_new(d, "sandbox", json_string(sbx_verdict_name(sr.verdict)));
    json_object_set_new(d, "stdout_bytes", json_integer((json_int_t)sr.out_total));
    json_object_set_new(d, "stderr_bytes", json_integer((json_int_t)sr.err_total));
    json_object_set_new(d, "records_rejected", json_integer(sr.records_rejected));
    json_object_set_new(d, "complete", json_boolean(rs.done));
    json_object_set_new(d, "tamper", json_boolean(rs.tamper));
    out->details_json = json_dumps(d, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(d);
    rc = 0;
done:
    sbx_result_free(&sr);
    free(rs.status);
    free(rs.ms);
    free(rs.msg);
    return rc;
}
