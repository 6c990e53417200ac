/* cmd_reward_math.c — `srlm reward-math`: check one answer (--gold/--pred), a JSONL
 * stream (--jsonl), or serve the broker (--connect). Parsing of untrusted text runs under
 * a seccomp allowlist installed after start-up (rewards/math_reward.h). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "math_reward.h"
#include "util.h"
#include "worker.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: srlm reward-math --gold G --pred P [options]\n"
            "       srlm reward-math --jsonl [FILE] [options]\n"
            "       srlm reward-math --connect ENDPOINT [options]\n\n"
            "Math answer checker: extracts the final answer from model text and compares it\n"
            "with the gold answer (exact rationals, expressions, sets, intervals, matrices).\n\n"
            "  --gold G           gold answer (\"18\", \"\\\\frac{3}{4}\", or a solution with \\\\boxed / ####)\n"
            "  --pred P           model output (raw text; the answer is extracted)\n"
            "  --jsonl [FILE]     read JSON lines (FILE or stdin): {\"gold\",\"pred\"} or\n"
            "                     {\"problem\":{...,\"answer\"},\"completion\"}; write one result per line\n"
            "  --connect EP       serve reward jobs of kind \"math\" from the broker at EP\n"
            "  --no-extract       treat pred as an answer (skip extraction)\n"
            "  --percent-strict   28%% matches 0.28 only (default lenient: also 28)\n"
            "  --seed N           seed of the random evaluation points (default 24301)\n"
            "  --timeout S        service mode: wall-clock limit of one check (default 10)\n"
            "  --no-seccomp       do not install the seccomp filter / sandbox child (debugging)\n"
            "  -h, --help         this help\n\n"
            "Output: {\"correct\",\"verdict\",\"extracted\",\"rule\",\"format_ok\",\"gold\",\"method\",\n"
            "\"tolerance\"[,\"reason\"]}; verdict is correct|wrong|unparsable. docs/reward_math.md.\n");
}

static int emit(const mr_result *r) {
    char *s = mr_result_json(r);
    if (!s) return 1;
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
    return 0;
}

static int run_jsonl(FILE *in, const char *name, const mr_opts *opts) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int bad = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (n == 0 || line[0] == '\n') continue;
        json_error_t err;
        json_t *o = json_loadb(line, (size_t)n, 0, &err);
        const char *gold = NULL, *pred = NULL;
        char numbuf[64];
        if (o && json_is_object(o)) {
            json_t *g = json_object_get(o, "gold"), *p = json_object_get(o, "pred");
            json_t *prob = json_object_get(o, "problem");
            if (json_is_object(prob)) g = json_object_get(prob, "answer");
            if (!p) p = json_object_get(o, "completion");
            if (json_is_string(g)) gold = json_string_value(g);
            else if (json_is_number(g)) {
                if (json_is_integer(g)) snprintf(numbuf, sizeof numbuf, "%lld", (long long)json_integer_value(g));
                else snprintf(numbuf, sizeof numbuf, "%.17g", json_real_value(g));
                gold = numbuf;
            }
            if (json_is_string(p)) pred = json_string_value(p);
        }
        if (!gold || !pred) {
            fprintf(stderr, "srlm reward-math: %s:%ld: %s\n", name, lineno,
                    !o ? err.text : "need string fields \"gold\" and \"pred\" (or \"problem\".\"answer\" and \"completion\")");
            json_decref(o);
            bad = 1;
            printf("{\"error\":\"bad input line %ld\"}\n", lineno);
            continue;
        }
        mr_result r;
        mr_check(gold, pred, opts, &r);
        json_decref(o);
        if (emit(&r)) { bad = 1; break; }
        fflush(stdout);
    }
    free(line);
    return bad;
}

int cmd_reward_math(int argc, char **argv) {
    static const struct option LONG[] = {
        {"gold", required_argument, 0, 'g'}, {"pred", required_argument, 0, 'p'},
        {"jsonl", no_argument, 0, 'j'}, {"connect", required_argument, 0, 'c'},
        {"no-extract", no_argument, 0, 'x'}, {"percent-strict", no_argument, 0, 'P'},
        {"seed", required_argument, 0, 's'}, {"no-seccomp", no_argument, 0, 'S'}, {"timeout", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *gold = NULL, *pred = NULL, *connect = NULL;
    int jsonl = 0, seccomp = 1;
    mr_ctx ctx;
    mr_ctx_init(&ctx);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        switch (c) {
        case 'g': gold = optarg; break;
        case 'p': pred = optarg; break;
        case 'j': jsonl = 1; break;
        case 'c': connect = optarg; break;
        case 'x': ctx.opts.extract_pred = 0; break;
        case 'P': ctx.opts.percent = MR_PCT_STRICT; break;
        case 's': ctx.opts.seed = strtoull(optarg, NULL, 0); break;
        case 'S': seccomp = 0; break;
        case 't': ctx.timeout_s = atof(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int modes = (gold || pred) + jsonl + (connect != NULL);
    if (modes != 1 || ((gold || pred) && !(gold && pred))) {
        fprintf(stderr, "srlm reward-math: give exactly one of --gold/--pred, --jsonl, --connect\n");
        usage(stderr);
        return 2;
    }
    if (connect) {
        /* the ZeroMQ process never parses untrusted text: checks run in a forked child
         * under the strict seccomp allowlist (restarted if it crashes or hangs) */
        if (seccomp && mr_sandbox_start(&ctx.sb, &ctx.opts)) {
            fprintf(stderr, "srlm reward-math: %s\n", srlm_last_error());
            return 1;
        }
        int rc = worker_serve(connect, "math", mr_score, &ctx);
        if (rc) fprintf(stderr, "srlm reward-math: %s\n", srlm_last_error());
        mr_sandbox_stop(ctx.sb);
        return rc ? 1 : 0;
    }
    FILE *in = stdin;
    const char *name = "<stdin>";
    if (jsonl && optind < argc) {
        name = argv[optind];
        in = fopen(name, "r");
        if (!in) {
            fprintf(stderr, "srlm reward-math: cannot open %s\n", name);
            return 1;
        }
    }
#if defined(__SANITIZE_ADDRESS__)
    /* LeakSanitizer needs threads and ptrace at exit: sanitizer builds check without the
     * filter here (the service-mode sandbox child still installs it) */
    seccomp = 0;
#endif
    if (seccomp) {
        /* everything is loaded: from here on only read/write/memory syscalls */
        fflush(stdout);
        if (mr_seccomp_install(MR_SECCOMP_STRICT)) {
            fprintf(stderr, "srlm reward-math: %s\n", srlm_last_error());
            if (in != stdin) fclose(in);
            return 1;
        }
    }
    int rc;
    if (jsonl) {
        rc = run_jsonl(in, name, &ctx.opts);
        if (in != stdin) fclose(in);
    } else {
        mr_result r;
        mr_check(gold, pred, &ctx.opts, &r);
        rc = emit(&r);
    }
    fflush(stdout);
    return rc;
}
