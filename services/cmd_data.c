/* cmd_data.c — `srlm data import|stats|get|export|synth` and `srlm dataset serve`
 * (docs/datasets.md). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "commands.h"
#include "import.h"
#include "server.h"
#include "store.h"
#include "util.h"

static void data_usage(FILE *f) {
    fprintf(f,
            "usage: srlm data SUBCOMMAND --db PATH [OPTIONS]\n\n"
            "  import --db PATH --format F --split NAME [--source NAME] [--map FIELD=KEY,...] [--kind K] FILE...\n"
            "      F: gsm8k | math | math500 | humaneval | mbpp | mbpp-sanitized | jsonl. Replaces the records\n"
            "      of (source, split) in one transaction; a malformed file changes nothing. --split may be\n"
            "      omitted for mbpp/mbpp-sanitized (standard splits by task id). jsonl only: --source\n"
            "      (default jsonl), --map (canonical field = input key, e.g. prompt=question,completion=answer),\n"
            "      --kind math|code|chat for records without one.\n"
            "  import --db PATH --bundled gsm8k|math|math500|humaneval|mbpp|mbpp-sanitized|all\n"
            "      import the data sets bundled in datasets/data/ with their standard splits\n"
            "  synth --db PATH --kind arith|code --n N --split NAME [--seed S] [--max-steps K] [--max-number M]\n"
            "        [--exclude-split S]\n"
            "      deterministic synthetic tasks (synth-arith: K<=3 steps, numbers<=20 by default);\n"
            "      --exclude-split S skips problems whose prompt is in split S of the store (held-out sets)\n"
            "  stats --db PATH [--source X] [--split S] [--json]   counts per source and split\n"
            "  get --db PATH ID                                     one record as JSON\n"
            "  export --db PATH [--source X] [--split S] [--out FILE]  records as JSONL (stdout by default)\n\n"
            "  --nosync   LMDB without fsync (faster; a machine crash may lose the last write)\n"
            "Record fields: docs/records.md.\n");
}

enum { O_DB = 1000, O_FORMAT, O_SPLIT, O_SOURCE, O_MAP, O_KIND, O_BUNDLED, O_N, O_SEED, O_MAXSTEPS, O_MAXNUM, O_OUT,
       O_JSON, O_NOSYNC, O_BIND, O_EXCLUDE, O_HELP };

static const struct option DATA_OPTS[] = {
    {"db", required_argument, 0, O_DB},         {"format", required_argument, 0, O_FORMAT},
    {"split", required_argument, 0, O_SPLIT},   {"source", required_argument, 0, O_SOURCE},
    {"map", required_argument, 0, O_MAP},       {"kind", required_argument, 0, O_KIND},
    {"bundled", required_argument, 0, O_BUNDLED}, {"n", required_argument, 0, O_N},
    {"seed", required_argument, 0, O_SEED},     {"max-steps", required_argument, 0, O_MAXSTEPS},
    {"max-number", required_argument, 0, O_MAXNUM}, {"out", required_argument, 0, O_OUT},
    {"json", no_argument, 0, O_JSON},           {"nosync", no_argument, 0, O_NOSYNC},
    {"bind", required_argument, 0, O_BIND},     {"help", no_argument, 0, O_HELP},
    {"exclude-split", required_argument, 0, O_EXCLUDE},
    {0, 0, 0, 0}};

typedef struct {
    const char *db, *format, *split, *source, *map, *kind, *bundled, *out, *bind, *exclude_split;
    long n;
    unsigned long long seed;
    int max_steps, max_number, json, nosync, help;
} data_args;

static int parse_ul(const char *s, unsigned long long *v) {
    char *e;
    if (!*s || *s == '-') return -1;
    *v = strtoull(s, &e, 10);
    return *e ? -1 : 0;
}

static int parse_args(int argc, char **argv, data_args *a) {
    memset(a, 0, sizeof *a);
    a->n = -1;
    optind = 1;
    opterr = 1;
    int c;
    unsigned long long v;
    while ((c = getopt_long(argc, argv, "h", DATA_OPTS, NULL)) != -1) {
        switch (c) {
        case O_DB: a->db = optarg; break;
        case O_FORMAT: a->format = optarg; break;
        case O_SPLIT: a->split = optarg; break;
        case O_SOURCE: a->source = optarg; break;
        case O_MAP: a->map = optarg; break;
        case O_KIND: a->kind = optarg; break;
        case O_BUNDLED: a->bundled = optarg; break;
        case O_OUT: a->out = optarg; break;
        case O_BIND: a->bind = optarg; break;
        case O_JSON: a->json = 1; break;
        case O_NOSYNC: a->nosync = 1; break;
        case O_N:
            if (parse_ul(optarg, &v) || v > 10000000) { fprintf(stderr, "srlm: --n must be 1..10000000\n"); return 2; }
            a->n = (long)v;
            break;
        case O_SEED:
            if (parse_ul(optarg, &v)) { fprintf(stderr, "srlm: --seed must be a non-negative integer\n"); return 2; }
            a->seed = v;
            break;
        case O_MAXSTEPS:
            if (parse_ul(optarg, &v) || v < 1 || v > 20) { fprintf(stderr, "srlm: --max-steps must be 1..20\n"); return 2; }
            a->max_steps = (int)v;
            break;
        case O_MAXNUM:
            if (parse_ul(optarg, &v) || v < 1 || v > 1000000) { fprintf(stderr, "srlm: --max-number must be 1..1000000\n"); return 2; }
            a->max_number = (int)v;
            break;
        case O_EXCLUDE: a->exclude_split = optarg; break;
        case 'h':
        case O_HELP: a->help = 1; break;
        default: return 2;
        }
    }
    return 0;
}

static int open_store(const data_args *a, int flags, ds_store **st) {
    if (!a->db) { fprintf(stderr, "srlm: --db PATH is required\n"); return 2; }
    int rc = ds_open(a->db, flags | (a->nosync ? DS_NOSYNC : 0), st);
    if (rc) { fprintf(stderr, "srlm: %s\n", srlm_last_error()); return 1; }
    return 0;
}

static int do_import(int argc, char **argv, const data_args *a) {
    int nfiles = argc - optind;
    if (a->bundled) {
        if (nfiles || a->format) { fprintf(stderr, "srlm data import: --bundled takes no --format or FILE\n"); return 2; }
    } else if (!a->format || nfiles < 1) {
        fprintf(stderr, "srlm data import: need --format F and at least one FILE (or --bundled NAME); see --help\n");
        return 2;
    }
    ds_store *st;
    int rc = open_store(a, 0, &st);
    if (rc) return rc;
    double t0 = srlm_now();
    size_t n = 0;
    if (a->bundled) {
        rc = ds_import_bundled(st, a->bundled, &n);
    } else {
        ds_import_opts o = {a->format, a->split, a->source, a->map, a->kind};
        rc = ds_import_files(st, &o, (const char *const *)argv + optind, nfiles, &n);
    }
    if (rc) {
        fprintf(stderr, "srlm data import: %s (store unchanged)\n", srlm_last_error());
        ds_close(st);
        return rc == SRLM_EINVAL ? 2 : 1;
    }
    fprintf(stderr, "imported %zu records into %s in %.2f s\n", n, a->db, srlm_now() - t0);
    ds_close(st);
    return 0;
}

static int do_synth(const data_args *a) {
    if (!a->kind || a->n < 1 || !a->split) {
        fprintf(stderr, "srlm data synth: need --kind arith|code, --n N (>=1) and --split NAME\n");
        return 2;
    }
    ds_store *st;
    int rc = open_store(a, 0, &st);
    if (rc) return rc;
    ds_synth_opts o = {a->kind, (size_t)a->n, a->split, a->seed, a->max_steps, a->max_number, a->exclude_split};
    size_t excluded = 0;
    rc = ds_synth_import(st, &o, &excluded);
    ds_close(st);
    if (rc) { fprintf(stderr, "srlm data synth: %s\n", srlm_last_error()); return rc == SRLM_EINVAL || rc == SRLM_ENOTFOUND ? 2 : 1; }
    fprintf(stderr, "generated %ld synth-%s records into %s/%s", a->n, a->kind, a->db, a->split);
    if (a->exclude_split) fprintf(stderr, " (%zu skipped: their prompt is in split %s)", excluded, a->exclude_split);
    fprintf(stderr, "\n");
    return 0;
}

static int in_csv(const char *list, const char *x) {
    if (!list || !*list) return 1;
    size_t l = strlen(x);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == l && !strncmp(p, x, l)) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

static int do_stats(const data_args *a) {
    ds_store *st;
    int rc = open_store(a, DS_RDONLY, &st);
    if (rc) return rc;
    Dataset__Count **c;
    size_t n;
    uint64_t total;
    rc = ds_counts(st, &c, &n, &total);
    if (rc) { fprintf(stderr, "srlm data stats: %s\n", srlm_last_error()); ds_close(st); return 1; }
    uint64_t shown = 0;
    json_t *arr = json_array();
    if (!a->json) printf("%-16s %-12s %8s  %s\n", "source", "split", "records", "imported from (sha256)");
    for (size_t i = 0; i < n; i++) {
        if (!in_csv(a->source, c[i]->source) || !in_csv(a->split, c[i]->split)) continue;
        shown += c[i]->n;
        char *info = NULL;
        json_t *io = NULL;
        if (ds_import_info(st, c[i]->source, c[i]->split, &info) == 0) io = json_loads(info, 0, NULL);
        free(info);
        if (a->json) {
            json_t *o = json_pack("{s:s,s:s,s:I}", "source", c[i]->source, "split", c[i]->split, "n", (json_int_t)c[i]->n);
            if (io) json_object_set(o, "import", io);
            json_array_append_new(arr, o);
        } else {
            char from[160] = "";
            json_t *files = io ? json_object_get(io, "files") : NULL;
            json_t *f0 = json_array_get(files, 0);
            if (f0) {
                const char *p = json_string_value(json_object_get(f0, "path"));
                const char *h = json_string_value(json_object_get(f0, "sha256"));
                const char *b = p ? strrchr(p, '/') : NULL;
                snprintf(from, sizeof from, "%s (%.12s)%s", b ? b + 1 : (p ? p : "?"), h ? h : "?",
                         json_array_size(files) > 1 ? " ..." : "");
            } else if (io && json_object_get(io, "synth")) {
                char *sj = json_dumps(json_object_get(io, "synth"), JSON_COMPACT | JSON_PRESERVE_ORDER);
                snprintf(from, sizeof from, "synth %s", sj ? sj : "");
                free(sj);
            }
            printf("%-16s %-12s %8llu  %s\n", c[i]->source, c[i]->split, (unsigned long long)c[i]->n, from);
        }
        json_decref(io);
    }
    if (a->json) {
        json_t *o = json_pack("{s:I,s:o}", "total", (json_int_t)shown, "counts", arr);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        json_decref(arr);
        printf("%-16s %-12s %8llu  (store total %llu)\n", "total", "", (unsigned long long)shown, (unsigned long long)total);
    }
    ds_counts_free(c, n);
    ds_close(st);
    return 0;
}

static int do_get(int argc, char **argv, const data_args *a) {
    if (argc - optind != 1) { fprintf(stderr, "srlm data get: need exactly one ID\n"); return 2; }
    ds_store *st;
    int rc = open_store(a, DS_RDONLY, &st);
    if (rc) return rc;
    Dataset__Record *r;
    rc = ds_get(st, argv[optind], &r);
    ds_close(st);
    if (rc) { fprintf(stderr, "srlm data get: %s\n", srlm_last_error()); return 1; }
    json_t *o = ds_record_to_jsonobj(r);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", s);
    free(s);
    json_decref(o);
    ds_record_free(r);
    return 0;
}

static int export_one(void *ctx, const Dataset__Record *r) {
    char *s;
    int rc = ds_record_to_json(r, &s);
    if (rc) return rc;
    int bad = fputs(s, (FILE *)ctx) < 0 || fputc('\n', (FILE *)ctx) < 0;
    free(s);
    return bad ? srlm_set_error(SRLM_EIO, "write failed") : 0;
}

static int do_export(const data_args *a) {
    ds_store *st;
    int rc = open_store(a, DS_RDONLY, &st);
    if (rc) return rc;
    FILE *f = stdout;
    char tmp[4096];
    if (a->out) {
        snprintf(tmp, sizeof tmp, "%s.tmp", a->out);
        f = fopen(tmp, "w");
        if (!f) { fprintf(stderr, "srlm data export: cannot write %s\n", tmp); ds_close(st); return 1; }
    }
    rc = ds_foreach(st, a->source, a->split, export_one, f);
    ds_close(st);
    if (a->out) {
        if (fclose(f) != 0 && !rc) rc = srlm_set_error(SRLM_EIO, "write %s failed", tmp);
        if (!rc && rename(tmp, a->out) != 0) rc = srlm_set_error(SRLM_EIO, "rename %s failed", tmp);
        if (rc) remove(tmp);
    } else {
        fflush(stdout);
    }
    if (rc) { fprintf(stderr, "srlm data export: %s\n", srlm_last_error()); return 1; }
    return 0;
}

int cmd_data(int argc, char **argv) {
    srlm_log_set_role("data");
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        data_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    data_args a;
    int rc = parse_args(argc - 1, argv + 1, &a);
    if (rc) return rc;
    if (a.help) { data_usage(stdout); return 0; }
    /* optind refers to argv + 1 */
    int ac = argc - 1;
    char **av = argv + 1;
    if (!strcmp(sub, "import")) return do_import(ac, av, &a);
    if (!strcmp(sub, "synth")) return do_synth(&a);
    if (!strcmp(sub, "stats")) return do_stats(&a);
    if (!strcmp(sub, "get")) return do_get(ac, av, &a);
    if (!strcmp(sub, "export")) return do_export(&a);
    fprintf(stderr, "srlm data: unknown subcommand '%s' (import|synth|stats|get|export)\n", sub);
    return 2;
}

static volatile sig_atomic_t g_stop; /* set by SIGTERM/SIGINT: the one process-wide flag */
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static void next_usage(FILE *f) {
    fprintf(f,
            "usage: srlm dataset next --connect ENDPOINT --consumer NAME --n N [OPTIONS]\n\n"
            "Reads N records of a consumer's stream from a running server and prints `POSITION ID` per\n"
            "record (or the record JSON with --json); `# commit POSITION` after each commit.\n"
            "  --connect EP        server endpoint\n"
            "  --consumer NAME     consumer name (its committed cursor is the start position)\n"
            "  --sources A,B       sources of the stream (default all)\n"
            "  --splits S,T        splits of the stream (default all)\n"
            "  --seed S            shuffle seed (default 0)   --no-shuffle  keep store order\n"
            "  --shared            shared mode (server hands out ranges)\n"
            "  --reset             forget the consumer's persisted cursor first\n"
            "  --n N               records to read   --batch B  records per request (default 64)\n"
            "  --commit-every K    commit the position after every K batches and at the end (default 0: never)\n"
            "  --delay-ms D        sleep between batches   --timeout-ms T  per try (default 5000)\n"
            "  --retries R         resends before giving up (default 3)   --json  print records\n");
}

static int dataset_next(int argc, char **argv) {
    enum { N_CONNECT = 2000, N_CONSUMER, N_SOURCES, N_SPLITS, N_SEED, N_NOSHUF, N_SHARED, N_RESET, N_N, N_BATCH,
           N_COMMIT, N_DELAY, N_TIMEOUT, N_RETRIES, N_JSON, N_HELP };
    static const struct option O[] = {
        {"connect", required_argument, 0, N_CONNECT}, {"consumer", required_argument, 0, N_CONSUMER},
        {"sources", required_argument, 0, N_SOURCES}, {"splits", required_argument, 0, N_SPLITS},
        {"seed", required_argument, 0, N_SEED},       {"no-shuffle", no_argument, 0, N_NOSHUF},
        {"shared", no_argument, 0, N_SHARED},         {"reset", no_argument, 0, N_RESET},
        {"n", required_argument, 0, N_N},             {"batch", required_argument, 0, N_BATCH},
        {"commit-every", required_argument, 0, N_COMMIT}, {"delay-ms", required_argument, 0, N_DELAY},
        {"timeout-ms", required_argument, 0, N_TIMEOUT}, {"retries", required_argument, 0, N_RETRIES},
        {"json", no_argument, 0, N_JSON},             {"help", no_argument, 0, N_HELP},
        {0, 0, 0, 0}};
    const char *ep = NULL, *consumer = NULL;
    dsc_stream_spec spec = {0};
    dsc_options opt = {0};
    unsigned long long n = 0, batch = 64, every = 0, delay = 0, v = 0;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", O, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case N_CONNECT: ep = optarg; break;
        case N_CONSUMER: consumer = optarg; break;
        case N_SOURCES: spec.sources = optarg; break;
        case N_SPLITS: spec.splits = optarg; break;
        case N_SEED: bad = parse_ul(optarg, &v); spec.seed = v; break;
        case N_NOSHUF: spec.no_shuffle = 1; break;
        case N_SHARED: spec.shared = 1; break;
        case N_RESET: spec.reset = 1; break;
        case N_N: bad = parse_ul(optarg, &n); break;
        case N_BATCH: bad = parse_ul(optarg, &batch) || batch < 1 || batch > DS_MAX_BATCH; break;
        case N_COMMIT: bad = parse_ul(optarg, &every); break;
        case N_DELAY: bad = parse_ul(optarg, &delay) || delay > 60000; break;
        case N_TIMEOUT: bad = parse_ul(optarg, &v) || v < 1 || v > 3600000; opt.timeout_ms = (int)v; break;
        case N_RETRIES: bad = parse_ul(optarg, &v) || v > 1000; opt.retries = v ? (int)v : -1; break;
        case N_JSON: json = 1; break;
        case 'h':
        case N_HELP: next_usage(stdout); return 0;
        default: return 2;
        }
        if (bad) { fprintf(stderr, "srlm dataset next: bad value for --%s\n", O[c - N_CONNECT].name); return 2; }
    }
    if (!ep || !consumer || n < 1) { next_usage(stderr); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    dsc_client *cl;
    int rc = dsc_connect(ep, &opt, &cl);
    if (rc) { fprintf(stderr, "srlm dataset next: %s\n", srlm_last_error()); return 1; }
    dsc_stream *st = NULL;
    rc = dsc_stream_open(cl, consumer, &spec, &st);
    unsigned long long done = 0, batches = 0;
    while (!rc && done < n) {
        int want = (int)(n - done < batch ? n - done : batch);
        dsc_batch b;
        if ((rc = dsc_stream_next(st, want, &b))) break;
        for (int i = 0; i < b.n; i++) {
            if (json) {
                char *js;
                if (ds_record_to_json(b.records[i], &js) == 0) { printf("%s\n", js); free(js); }
            } else {
                printf("%llu %s\n", (unsigned long long)(b.position + (uint64_t)i), b.records[i]->id);
            }
        }
        dsc_batch_free(&b);
        done += (unsigned long long)want;
        batches++;
        if (every && (batches % every == 0 || done == n)) {
            uint64_t p = dsc_stream_position(st);
            if ((rc = dsc_stream_commit(st, p))) break;
            if (!json) printf("# commit %llu\n", (unsigned long long)p);
        }
        if (delay && done < n) {
            struct timespec ts = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (rc) fprintf(stderr, "srlm dataset next: %s\n", srlm_last_error());
    dsc_stream_close(st);
    dsc_close(cl);
    return rc ? 1 : 0;
}

int cmd_dataset(int argc, char **argv) {
    srlm_log_set_role("dataset");
    if (argc >= 2 && !strcmp(argv[1], "next")) return dataset_next(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "serve")) {
        int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fprintf(help ? stdout : stderr,
                "usage: srlm dataset serve --db PATH --bind ENDPOINT [--nosync]\n"
                "       srlm dataset next --connect ENDPOINT --consumer NAME --n N ...  (see next --help)\n\n"
                "Serves the store over a ZeroMQ ROUTER socket (ipc://PATH or tcp://HOST:PORT): next batch of a\n"
                "consumer's stream (epoch shuffle from a seed), records by id, stats, health, cursor commits.\n"
                "SIGTERM/SIGINT stop it cleanly (exit 0). Protocol: proto/dataset.proto, docs/datasets.md.\n"
                "  --db PATH        the LMDB store (created by `srlm data import`)\n"
                "  --bind ENDPOINT  where to listen\n"
                "  --nosync         LMDB without fsync for shared-mode ranges (commits are always synced)\n");
        return help ? 0 : 2;
    }
    data_args a;
    int rc = parse_args(argc - 1, argv + 1, &a);
    if (rc) return rc;
    if (a.help) return cmd_dataset(2, (char *[]){argv[0], "--help", NULL});
    if (!a.db || !a.bind) { fprintf(stderr, "srlm dataset serve: --db PATH and --bind ENDPOINT are required\n"); return 2; }
    if (!srlm_file_exists(a.db)) {
        fprintf(stderr, "srlm dataset serve: no store at %s (create it with `srlm data import`)\n", a.db);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    g_stop = 0;
    rc = ds_serve(a.db, a.bind, a.nosync ? DS_NOSYNC : 0, &g_stop);
    if (rc) { fprintf(stderr, "srlm dataset serve: %s\n", srlm_last_error()); return 1; }
    return 0;
}
