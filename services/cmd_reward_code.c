/* cmd_reward_code.c — `srlm sandbox` (run any command sandboxed) and `srlm reward-code`
 * (code-execution reward: --jsonl batch scoring or --connect service mode). */
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "code_reward.h"
#include "commands.h"
#include "sandbox.h"
#include "util.h"
#include "worker.h"

enum { OPT_WALL = 1000, OPT_CPU, OPT_MEM, OPT_FSIZE, OPT_TMP, OPT_NOFILE, OPT_NPROC, OPT_OUTCAP,
       OPT_NO_USERNS, OPT_NO_SECCOMP, OPT_JSONL, OPT_JOBS, OPT_TIMEOUT, OPT_CONNECT, OPT_INPUT,
       OPT_OUTPUT, OPT_MAXWALL, OPT_PYTHON, OPT_FRESH };

#define LIMIT_OPTIONS                                                                    \
    {"wall", required_argument, 0, OPT_WALL}, {"cpu", required_argument, 0, OPT_CPU},    \
    {"memory-mb", required_argument, 0, OPT_MEM},                                        \
    {"fsize-mb", required_argument, 0, OPT_FSIZE},                                       \
    {"tmp-mb", required_argument, 0, OPT_TMP}, {"nofile", required_argument, 0, OPT_NOFILE}, \
    {"nproc", required_argument, 0, OPT_NPROC},                                          \
    {"output-cap", required_argument, 0, OPT_OUTCAP},                                    \
    {"no-userns", no_argument, 0, OPT_NO_USERNS}

static const char LIMITS_HELP[] =
    "  --memory-mb M     address-space limit per process, MiB (default 1024)\n"
    "  --cpu S           CPU-seconds limit per process (default: wall + 2)\n"
    "  --fsize-mb M      largest file the program may write, MiB (default 16)\n"
    "  --tmp-mb M        size of the private /tmp work directory, MiB (default 64)\n"
    "  --nofile N        open files per process (default 64)\n"
    "  --nproc N         processes + threads (default 32)\n"
    "  --output-cap B    bytes allowed on stdout and on stderr; more is OLE (default 4194304)\n"
    "  --no-userns       do not use a user namespace (simulates a container without them;\n"
    "                    also SRLM_SANDBOX_NO_USERNS=1)\n";

/* Parse a limit flag into l; 1 if handled, 0 if not a limit flag, -1 on a bad value. */
static int limit_opt(int c, const char *arg, sbx_limits *l, int *no_userns) {
    if (c < OPT_WALL || c > OPT_NO_USERNS) return 0;
    char *end = NULL;
    double v = arg ? strtod(arg, &end) : 0;
    if (arg && (end == arg || *end || v < 0)) return -1;
    switch (c) {
    case OPT_WALL: if (v <= 0) return -1; l->wall_s = v; return 1;
    case OPT_CPU: l->cpu_s = (int)v; return 1;
    case OPT_MEM: if (v < 16) return -1; l->mem_mb = (int)v; return 1;
    case OPT_FSIZE: l->fsize_mb = (int)v; return 1;
    case OPT_TMP: if (v < 1) return -1; l->tmp_mb = (int)v; return 1;
    case OPT_NOFILE: if (v < 8) return -1; l->nofile = (int)v; return 1;
    case OPT_NPROC: if (v < 1) return -1; l->nproc = (int)v; return 1;
    case OPT_OUTCAP: l->out_cap = (size_t)v; return 1;
    case OPT_NO_USERNS: *no_userns = 1; return 1;
    default: return 0;
    }
}

/* ---------------------------------------------------------------- srlm sandbox */
static void sandbox_usage(FILE *f) {
    fprintf(f,
            "usage: srlm sandbox [LIMITS] [--input FILE] -- CMD [ARGS...]\n\n"
            "Run CMD in the code sandbox (namespaces, read-only /usr, private tmpfs /tmp,\n"
            "rlimits, seccomp allowlist) and print one JSON object: verdict (OK|TLE|MLE|OLE|RE|SEC),\n"
            "exit_code, signal, wall_s, cpu_s, setup_s, stdout, stderr, namespaces, uid.\n"
            "CMD without a '/' is looked up in /usr/bin. Exit status 0 when the program ran.\n\n"
            "  --wall S          wall-clock limit, seconds (default 10)\n%s"
            "  --input FILE      bytes the program can read on fd 3\n"
            "  --no-seccomp      debugging only: skip the seccomp filter\n"
            "  -h, --help        this help\n", LIMITS_HELP);
}

int cmd_sandbox(int argc, char **argv) {
    static const struct option opts[] = {LIMIT_OPTIONS,
                                         {"input", required_argument, 0, OPT_INPUT},
                                         {"no-seccomp", no_argument, 0, OPT_NO_SECCOMP},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    sbx_limits lim;
    sbx_limits_default(&lim);
    int no_userns = 0, c;
    const char *input_path = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        int r = limit_opt(c, optarg, &lim, &no_userns);
        if (r < 0) { fprintf(stderr, "srlm sandbox: bad value '%s' for a limit flag\n", optarg); return 2; }
        if (r) continue;
        if (c == 'h') { sandbox_usage(stdout); return 0; }
        if (c == OPT_INPUT) input_path = optarg;
        else if (c == OPT_NO_SECCOMP) lim.no_seccomp = 1;
        else { sandbox_usage(stderr); return 2; }
    }
    if (optind >= argc) {
        fprintf(stderr, "srlm sandbox: missing command (srlm sandbox [LIMITS] -- CMD ARGS)\n");
        return 2;
    }
    char **cargv = srlm_xcalloc((size_t)(argc - optind + 1), sizeof *cargv);
    for (int i = optind; i < argc; i++) cargv[i - optind] = argv[i];
    char path[512];
    if (!strchr(cargv[0], '/')) {
        snprintf(path, sizeof path, "/usr/bin/%s", cargv[0]);
        cargv[0] = path;
    }
    char *input = NULL;
    size_t input_len = 0;
    if (input_path && srlm_read_file(input_path, &input, &input_len, 0)) {
        fprintf(stderr, "srlm sandbox: %s\n", srlm_last_error());
        free(cargv);
        return 1;
    }
    sbx_ctx ctx;
    if (sbx_init(&ctx, no_userns)) {
        fprintf(stderr, "srlm sandbox: %s\n", srlm_last_error());
        free(cargv);
        free(input);
        return 1;
    }
    sbx_job job = {cargv, input, input_len, NULL, NULL};
    sbx_result r;
    int rc = sbx_run(&ctx, &lim, &job, &r);
    if (rc) {
        fprintf(stderr, "srlm sandbox: %s\n", srlm_last_error());
    } else {
        char ns[96];
        sbx_ns_names(ctx.have, ns, sizeof ns);
        json_t *o = json_object();
        json_object_set_new(o, "verdict", json_string(sbx_verdict_name(r.verdict)));
        json_object_set_new(o, "exit_code", r.exit_code >= 0 ? json_integer(r.exit_code) : json_null());
        json_object_set_new(o, "signal", json_integer(r.term_signal));
        json_object_set_new(o, "wall_s", json_real(r.wall_s));
        json_object_set_new(o, "cpu_s", json_real(r.cpu_s));
        json_object_set_new(o, "setup_s", json_real(r.setup_s));
        json_object_set_new(o, "max_rss_kb", json_integer(r.max_rss_kb));
        json_object_set_new(o, "stdout", json_stringn_nocheck(r.out, r.out_len));
        json_object_set_new(o, "stderr", json_stringn_nocheck(r.err, r.err_len));
        json_object_set_new(o, "stdout_bytes", json_integer((json_int_t)r.out_total));
        json_object_set_new(o, "stderr_bytes", json_integer((json_int_t)r.err_total));
        json_object_set_new(o, "namespaces", json_string(ns));
        json_object_set_new(o, "uid", json_integer(r.host_uid));
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        if (s) printf("%s\n", s);
        free(s);
        json_decref(o);
    }
    sbx_result_free(&r);
    free(cargv);
    free(input);
    return rc ? 1 : 0;
}

/* ---------------------------------------------------------------- srlm reward-code */
static void reward_usage(FILE *f) {
    fprintf(f,
            "usage: srlm reward-code --jsonl [--input FILE] [--output FILE] [--jobs N] [OPTIONS]\n"
            "       srlm reward-code --connect ENDPOINT [OPTIONS]\n\n"
            "Code-execution reward. --jsonl reads lines {\"problem\": {...}, \"completion\": \"...\"}\n"
            "(problem as a canonical record, raw HumanEval or raw MBPP object) and writes one line per\n"
            "input, in input order: {\"reward\": 0..1, \"passed\": bool, \"verdict\":\n"
            "\"PASS|WA|TLE|MLE|OLE|RE|SEC\", \"tests\": [...], \"timings\": {...}, \"error\": null|text}.\n"
            "Infrastructure failures and unusable lines give reward null and an error, never 0.\n"
            "--connect serves jobs of kind \"code\" from a broker until SIGTERM/SIGINT.\n\n"
            "  --jsonl           batch mode (stdin -> stdout unless --input/--output)\n"
            "  --input FILE      input JSONL (default stdin)\n"
            "  --output FILE     output JSONL (default stdout)\n"
            "  --jobs N          sandboxes run in parallel (default 1)\n"
            "  --timeout S       wall-clock limit per test, seconds (default 6)\n"
            "  --max-wall S      wall-clock cap of one completion's whole run (default 120)\n"
            "  --python PATH     interpreter (default /usr/bin/python3; run as -I -S -B)\n"
            "  --fresh-per-test  strict mode: a fresh candidate process for every test (default:\n"
            "                    one per completion, replaced after any test that does not pass)\n"
            "  --connect EP      service mode: join the broker at EP (e.g. tcp://127.0.0.1:5555)\n%s"
            "  -h, --help        this help\n", LIMITS_HELP);
}

typedef struct {
    char *line;       /* input line (owned) */
    long lineno;
    char *result;     /* output JSON (owned) */
    int done;
} item;

typedef struct {
    cr_ctx *cr;
    item *items;
    long n, next;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const char *src;
} batch;

static char *score_line(cr_ctx *cr, const char *line, long lineno, const char *src) {
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    json_t *res = json_object();
    char err[400] = "";
    reward_result rr;
    memset(&rr, 0, sizeof rr);
    json_t *prob = o ? json_object_get(o, "problem") : NULL;
    json_t *comp = o ? json_object_get(o, "completion") : NULL;
    if (!o) {
        snprintf(err, sizeof err, "%s:%ld: invalid JSON: %s", src, lineno, je.text);
    } else if (!json_is_object(prob)) {
        snprintf(err, sizeof err, "%s:%ld: field 'problem' missing or not an object", src, lineno);
    } else if (!json_is_string(comp)) {
        snprintf(err, sizeof err, "%s:%ld: field 'completion' missing or not a string", src, lineno);
    } else {
        char *pj = json_dumps(prob, JSON_COMPACT);
        int rc = cr_score(cr, pj, json_string_value(comp), &rr);
        free(pj);
        if (rc || rr.is_error) snprintf(err, sizeof err, "%s:%ld: %s", src, lineno, rr.error);
    }
    if (err[0]) {
        json_object_set_new(res, "reward", json_null());
        json_object_set_new(res, "passed", json_false());
        json_object_set_new(res, "verdict", json_null());
        json_object_set_new(res, "tests", json_array());
        json_object_set_new(res, "error", json_string(err));
    } else {
        json_object_set_new(res, "reward", json_real(rr.reward));
        json_object_set_new(res, "passed", json_boolean(rr.correct));
        json_object_set_new(res, "verdict", json_string(rr.verdict));
        json_t *d = rr.details_json ? json_loads(rr.details_json, 0, NULL) : NULL;
        json_t *tests = d ? json_object_get(d, "tests") : NULL;
        json_object_set_new(res, "tests", tests ? json_incref(tests) : json_array());
        json_t *tm = d ? json_object_get(d, "timings") : NULL;
        if (tm) json_object_set(res, "timings", tm);
        json_object_set_new(res, "format_ok", json_boolean(rr.format_ok));
        json_object_set_new(res, "error", json_null());
        json_decref(d);
    }
    reward_result_free(&rr);
    json_decref(o);
    char *s = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(res);
    return s;
}

static void *batch_worker(void *arg) {
    batch *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        long i = b->next < b->n ? b->next++ : -1;
        pthread_mutex_unlock(&b->mu);
        if (i < 0) return NULL;
        char *r = score_line(b->cr, b->items[i].line, b->items[i].lineno, b->src);
        pthread_mutex_lock(&b->mu);
        b->items[i].result = r;
        b->items[i].done = 1;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
    }
}

int cmd_reward_code(int argc, char **argv) {
    static const struct option opts[] = {LIMIT_OPTIONS,
                                         {"jsonl", no_argument, 0, OPT_JSONL},
                                         {"jobs", required_argument, 0, OPT_JOBS},
                                         {"timeout", required_argument, 0, OPT_TIMEOUT},
                                         {"max-wall", required_argument, 0, OPT_MAXWALL},
                                         {"python", required_argument, 0, OPT_PYTHON},
                                         {"fresh-per-test", no_argument, 0, OPT_FRESH},
                                         {"connect", required_argument, 0, OPT_CONNECT},
                                         {"input", required_argument, 0, OPT_INPUT},
                                         {"output", required_argument, 0, OPT_OUTPUT},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    sbx_limits lim;
    sbx_limits_default(&lim);
    int no_userns = 0, jsonl = 0, jobs = 1, fresh = 0, c;
    double timeout = 6.0, max_wall = 120.0;
    const char *connect = NULL, *in_path = NULL, *out_path = NULL, *python = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = limit_opt(c, optarg, &lim, &no_userns);
        if (r < 0) { fprintf(stderr, "srlm reward-code: bad value '%s' for a limit flag\n", optarg); return 2; }
        if (r) continue;
        char *end = NULL;
        switch (c) {
        case 'h': reward_usage(stdout); return 0;
        case OPT_JSONL: jsonl = 1; break;
        case OPT_JOBS:
            if (srlm_parse_int(optarg, 1, 256, &jobs)) { fprintf(stderr, "srlm reward-code: --jobs wants 1..256\n"); return 2; }
            break;
        case OPT_TIMEOUT:
            timeout = strtod(optarg, &end);
            if (*end || timeout <= 0) { fprintf(stderr, "srlm reward-code: --timeout wants seconds > 0\n"); return 2; }
            break;
        case OPT_MAXWALL:
            max_wall = strtod(optarg, &end);
            if (*end || max_wall <= 0) { fprintf(stderr, "srlm reward-code: --max-wall wants seconds > 0\n"); return 2; }
            break;
        case OPT_PYTHON: python = optarg; break;
        case OPT_FRESH: fresh = 1; break;
        case OPT_CONNECT: connect = optarg; break;
        case OPT_INPUT: in_path = optarg; break;
        case OPT_OUTPUT: out_path = optarg; break;
        default: reward_usage(stderr); return 2;
        }
    }
    if (optind < argc || (!jsonl && !connect) || (jsonl && connect)) {
        fprintf(stderr, "srlm reward-code: give exactly one of --jsonl or --connect EP (--help)\n");
        return 2;
    }
    cr_ctx *cr = srlm_xmalloc(sizeof *cr);
    if (cr_init(cr, no_userns)) {
        fprintf(stderr, "srlm reward-code: %s\n", srlm_last_error());
        free(cr);
        return 1;
    }
    cr->lim = lim;
    cr->test_timeout_s = timeout;
    cr->max_wall_s = max_wall;
    cr->fresh_per_test = fresh;
    if (python) {
        snprintf(cr->python, sizeof cr->python, "%s", python);
        if (cr_prepare(cr))
            SRLM_WARN("reward-code: %s; every run compiles the harness source (slower)",
                      srlm_last_error());
    }
    if (connect) {
        int rc = worker_serve(connect, "code", cr_score, cr);
        if (rc) fprintf(stderr, "srlm reward-code: %s\n", srlm_last_error());
        free(cr);
        return rc ? 1 : 0;
    }
    FILE *in = in_path ? fopen(in_path, "r") : stdin;
    if (!in) {
        fprintf(stderr, "srlm reward-code: cannot open %s\n", in_path);
        free(cr);
        return 1;
    }
    batch b;
    memset(&b, 0, sizeof b);
    b.cr = cr;
    b.src = in_path ? in_path : "<stdin>";
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    long cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    long lineno = 0;
    while ((len = getline(&line, &lcap, in)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (b.n == cap) {
            cap = cap ? cap * 2 : 64;
            b.items = srlm_xrealloc(b.items, (size_t)cap * sizeof *b.items);
        }
        b.items[b.n++] = (item){srlm_xstrdup(line), lineno, NULL, 0};
    }
    free(line);
    if (in != stdin) fclose(in);
    FILE *out = out_path ? fopen(out_path, "w") : stdout;
    if (!out) {
        fprintf(stderr, "srlm reward-code: cannot write %s\n", out_path);
        for (long i = 0; i < b.n; i++) free(b.items[i].line);
        free(b.items);
        free(cr);
        return 1;
    }
    if (jobs > b.n && b.n > 0) jobs = (int)b.n;
    pthread_t *th = srlm_xcalloc((size_t)jobs, sizeof *th);
    int started = 0;
    for (int i = 0; i < jobs && b.n > 0; i++)
        if (pthread_create(&th[i], NULL, batch_worker, &b) == 0) started++;
    if (started == 0 && b.n > 0) batch_worker(&b);
    srlm_progress prog;
    srlm_progress_init(&prog, "reward-code", "completions", b.n);
    long npass = 0;
    for (long i = 0; i < b.n; i++) {
        pthread_mutex_lock(&b.mu);
        while (!b.items[i].done) pthread_cond_wait(&b.cv, &b.mu);
        pthread_mutex_unlock(&b.mu);
        fprintf(out, "%s\n", b.items[i].result ? b.items[i].result : "{\"error\":\"out of memory\"}");
        fflush(out);
        if (b.items[i].result && strstr(b.items[i].result, "\"passed\":true")) npass++;
        free(b.items[i].result);
        free(b.items[i].line);
        srlm_progress_update(&prog, i + 1, NULL);
    }
    char extra[64];
    snprintf(extra, sizeof extra, "%ld passed", npass);
    srlm_progress_done(&prog, b.n, extra);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    free(b.items);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
    int werr = out != stdout ? fclose(out) : fflush(out);
    free(cr);
    return werr ? 1 : 0;
}
