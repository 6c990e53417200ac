/* cmd_study.c — `srlm eval` and `srlm study` command lines (the work is in eval.c and
 * study.c). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "eval.h"
#include "study.h"
#include "util.h"

static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: srlm eval --model DIR --dataset NAME|DB:SPLIT [options]\n\n"
            "Generate with the model, score every completion with the reward scorers (math checker,\n"
            "sandboxed code tests) in worker processes, report accuracy, pass@k and maj@k.\n\n"
            "  --model DIR            HF model directory (with tokenizer files)\n"
            "  --dataset NAME         gsm8k | math500 | humaneval | mbpp (bundled test sets, imported into\n"
            "                         the cache store on first use), or DB:SPLIT (an srlm store and split)\n"
            "  --sources LIST         with DB:SPLIT: only these sources (comma-separated)\n"
            "  --cache-db PATH        store for the named data sets (default $SRLM_CACHE_DIR/datasets.lmdb,\n"
            "                         else ~/.cache/srlm/datasets.lmdb)\n"
            "  --limit N              first N problems (default all)\n"
            "  -n, --samples N        samples per problem (default 1)\n"
            "  -k, --k LIST           k values for pass@k and maj@k, e.g. 1,4,8 (default 1; each <= n)\n"
            "  --chat                 ChatML prompts (instruct models)\n"
            "  --temperature T        sampling temperature; 0 = greedy (default 0; n > 1 needs T > 0)\n"
            "  --top-p P              nucleus sampling (default 1)\n"
            "  --max-new-tokens N     generation budget per sample (default 256)\n"
            "  --prompt-format NAME   gsm8k | cot-boxed | humaneval | mbpp | plain (default: per record,\n"
            "                         see docs/study.md)\n"
            "  --out DIR              write DIR/results.jsonl and DIR/summary.json\n"
            "  --workers N            scorer worker processes (default 2)\n"
            "  --threads N            model threads (default: all cores)\n"
            "  --seed S               sampling seed (default 1)\n"
            "  --quiet                no progress line or table\n"
            "  -h, --help             this text\n");
}

static void print_summary(const ev_opts *o, const ev_summary *s) {
    printf("\ndataset %s\n%8s %8s %8s", o->dataset, "problems", "samples", "accuracy");
    for (int i = 0; i < s->n_ks; i++) printf("  pass@%-3d", s->ks[i]);
    for (int i = 0; i < s->n_ks; i++) printf("  maj@%-4d", s->ks[i]);
    printf("  errors\n%8d %8d %8.4f", s->n_problems, s->n_samples, s->accuracy);
    for (int i = 0; i < s->n_ks; i++) printf("  %8.4f", s->pass_at[i]);
    for (int i = 0; i < s->n_ks; i++) printf("  %8.4f", s->maj_at[i]);
    printf("  %6ld\n", s->n_errors);
    printf("scored %ld completions (%ld format ok) in %.1f s; generation %.1f tok/s\n", s->n_scored, s->n_format_ok,
           s->seconds, s->gen_seconds > 0 ? s->gen_tokens / s->gen_seconds : 0.0);
}

int cmd_eval(int argc, char **argv) {
    ev_opts o;
    ev_opts_default(&o);
    static const struct option L[] = {
        {"model", required_argument, 0, 'm'},       {"dataset", required_argument, 0, 'd'},
        {"sources", required_argument, 0, 'S'},     {"cache-db", required_argument, 0, 'C'},
        {"limit", required_argument, 0, 'l'},       {"samples", required_argument, 0, 'n'},
        {"k", required_argument, 0, 'k'},           {"chat", no_argument, 0, 'c'},
        {"temperature", required_argument, 0, 't'}, {"top-p", required_argument, 0, 'p'},
        {"max-new-tokens", required_argument, 0, 'M'}, {"prompt-format", required_argument, 0, 'f'},
        {"out", required_argument, 0, 'o'},         {"workers", required_argument, 0, 'w'},
        {"threads", required_argument, 0, 'T'},     {"seed", required_argument, 0, 's'},
        {"quiet", no_argument, 0, 'q'},             {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 1;
    int c;
    char *end;
    int li = -1;
    while ((li = -1, c = getopt_long(argc, argv, "n:k:h", L, &li)) != -1) {
        switch (c) {
        case 'm': o.model_dir = optarg; break;
        case 'd': o.dataset = optarg; break;
        case 'S': o.sources = optarg; break;
        case 'C': o.cache_db = optarg; break;
        case 'l': if (srlm_parse_int(optarg, 0, INT_MAX, &o.limit)) goto bad; break;
        case 'n': if (srlm_parse_int(optarg, 1, INT_MAX, &o.n_samples)) goto bad; break;
        case 'k': {
            int *ks = NULL, nk = 0;
            if (srlm_parse_int_list(optarg, &ks, &nk) || nk < 1 || nk > EV_MAX_K) {
                free(ks);
                goto bad;
            }
            memcpy(o.ks, ks, (size_t)nk * sizeof *ks);
            o.n_ks = nk;
            free(ks);
            break;
        }
        case 'c': o.chat = 1; break;
        case 't': o.temperature = strtof(optarg, &end); if (*end || o.temperature < 0) goto bad; break;
        case 'p': o.top_p = strtof(optarg, &end); if (*end || o.top_p <= 0 || o.top_p > 1) goto bad; break;
        case 'M': if (srlm_parse_int(optarg, 1, INT_MAX, &o.max_new_tokens)) goto bad; break;
        case 'f': o.prompt_format = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 'w': if (srlm_parse_int(optarg, 1, 1024, &o.workers)) goto bad; break;
        case 'T': if (srlm_parse_int(optarg, 0, 1024, &o.threads)) goto bad; break;
        case 's': o.seed = strtoull(optarg, &end, 10); if (*end) goto bad; break;
        case 'q': o.quiet = 1; break;
        case 'h': eval_usage(stdout); return 0;
        default: eval_usage(stderr); return 2;
        }
    }
    if (optind < argc || !o.model_dir || !o.dataset) {
        fprintf(stderr, "srlm eval: --model and --dataset are required\n");
        eval_usage(stderr);
        return 2;
    }
    ev_summary s;
    int rc = ev_run(&o, &s);
    if (rc) {
        SRLM_ERROR("eval: %s", srlm_last_error());
        return rc == SRLM_EINVAL ? 2 : 1;
    }
    if (!o.quiet) print_summary(&o, &s);
    return 0;
bad:
    if (li >= 0) fprintf(stderr, "srlm eval: bad value for --%s: '%s'\n", L[li].name, optarg);
    else fprintf(stderr, "srlm eval: bad value for -%c: '%s'\n", c, optarg);
    return 2;
}

static void study_usage(FILE *f) {
    fprintf(f,
            "usage: srlm study CONFIG.json [--out RUN_DIR] [--only NAME,...] [--seeds LIST] [--keep-going]\n"
            "                  [--model DIR] [--teacher DIR] [--jobs N] [--check]\n\n"
            "Run every pipeline of the study config from the same starting model (base, SFT, KD, RL,\n"
            "SFT->RL, KD->RL, ... each through the real services via `srlm run`), evaluate each result on\n"
            "the held-out sets, and write RUN_DIR/report.md, RUN_DIR/*.svg and RUN_DIR/results.json;\n"
            "print the comparison table. Config keys: docs/study.md.\n\n"
            "  --out DIR        run directory (default runs/NAME-TIMESTAMP)\n"
            "  --only LIST      run only these pipelines (names from the config); the teacher is\n"
            "                   trained only when one of them has a KD stage\n"
            "  --seeds LIST     override the config's seeds (e.g. 1,2,3 for the seed spread)\n"
            "  --keep-going     continue with the next pipeline when one fails\n"
            "  --model DIR      starting model (HF dir), overrides the config's student model\n"
            "  --teacher DIR    teacher model (HF dir), overrides the config's teacher model\n"
            "  --jobs N         run up to N stages/evaluations at once (default: the config's\n"
            "                   \"jobs\", else 1); results do not depend on N\n"
            "  --check          validate the config and every stage (srlm run --check) in a temporary\n"
            "                   directory that is removed: trains nothing, leaves nothing on disk\n"
            "  -h, --help       this text\n");
}

int cmd_study(int argc, char **argv) {
    st_opts o;
    memset(&o, 0, sizeof o);
    static const struct option L[] = {{"out", required_argument, 0, 'o'},    {"only", required_argument, 0, 'O'},
                                      {"seeds", required_argument, 0, 's'},  {"keep-going", no_argument, 0, 'k'},
                                      {"model", required_argument, 0, 'm'},  {"teacher", required_argument, 0, 't'},
                                      {"check", no_argument, 0, 'c'},        {"jobs", required_argument, 0, 'j'},
                                      {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", L, NULL)) != -1) {
        switch (c) {
        case 'o': o.out_dir = optarg; break;
        case 'O': o.only = optarg; break;
        case 's': o.seeds = optarg; break;
        case 'k': o.keep_going = 1; break;
        case 'm': o.model = optarg; break;
        case 't': o.teacher = optarg; break;
        case 'c': o.check_only = 1; break;
        case 'j':
            if (srlm_parse_int(optarg, 1, 64, &o.jobs)) {
                fprintf(stderr, "srlm study: --jobs %s: expected an integer 1..64\n", optarg);
                return 2;
            }
            break;
        case 'h': study_usage(stdout); return 0;
        default: study_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "srlm study: exactly one CONFIG is required\n");
        study_usage(stderr);
        return 2;
    }
    o.config_path = argv[optind];
    int rc = st_run(&o);
    if (rc) {
        SRLM_ERROR("study: %s", srlm_last_error());
        return rc == SRLM_EINVAL ? 2 : 1;
    }
    return 0;
}
