/* cmd_pipeline.c — `srlm broker`, `srlm generator`, `srlm trainer`, `srlm run`: the CLI
 * of the pipeline services (docs/pipeline.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "pipeline.h"
#include "pipeline_config.h"
#include "commands.h"
#include "pipeline_wire.h"
#include "util.h"

static int parse_pos_int(const char *s, const char *flag, int *out) {
    if (srlm_parse_int(s, 1, 100000000, out)) {
        fprintf(stderr, "srlm: %s expects a positive integer, got '%s'\n", flag, s);
        return -1;
    }
    return 0;
}

static void broker_usage(FILE *f) {
    fprintf(f,
            "usage: srlm broker --groups EP --workers EP --scored EP [options]\n"
            "Receive rollout groups, score every rollout on a reward worker of its kind, push\n"
            "scored groups to the trainer (protocol: services/broker.h, docs/pipeline.md).\n"
            "  --groups EP         bind: PULL rollout groups from generators (ipc:// or tcp://)\n"
            "  --workers EP        bind: ROUTER for reward workers (srlm reward-math|reward-code --connect EP)\n"
            "  --scored EP         bind: PUSH scored groups to the trainer\n"
            "  --heartbeat-ms N    heartbeat interval (default $SRLM_HEARTBEAT_MS or 1000)\n"
            "  --liveness N        missed heartbeats before a worker is dead (default $SRLM_LIVENESS or 5)\n"
            "  --max-attempts N    dispatches per job before an ERROR result (default 3)\n"
            "  --job-timeout-ms N  re-queue a job running longer than this (default 300000)\n"
            "  --stats FILE        rewrite broker counters as JSON every second\n"
            "  -h, --help          this help\n"
            "Endpoints may also come from $SRLM_BROKER_GROUPS, $SRLM_BROKER_WORKERS, $SRLM_BROKER_SCORED.\n"
            "SIGTERM/SIGINT: clean shutdown, exit 0.\n");
}

int cmd_broker(int argc, char **argv) {
    srlm_log_set_role("broker");
    broker_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.groups_endpoint = getenv("SRLM_BROKER_GROUPS");
    cfg.workers_endpoint = getenv("SRLM_BROKER_WORKERS");
    cfg.scored_endpoint = getenv("SRLM_BROKER_SCORED");
    cfg.heartbeat_ms = pw_env_ms("SRLM_HEARTBEAT_MS", 1000);
    cfg.liveness = pw_env_ms("SRLM_LIVENESS", 5);
    static const struct option opts[] = {
        {"groups", required_argument, 0, 'g'},      {"workers", required_argument, 0, 'w'},
        {"scored", required_argument, 0, 's'},      {"heartbeat-ms", required_argument, 0, 'H'},
        {"liveness", required_argument, 0, 'L'},    {"max-attempts", required_argument, 0, 'A'},
        {"job-timeout-ms", required_argument, 0, 'T'}, {"stats", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'g': cfg.groups_endpoint = optarg; break;
        case 'w': cfg.workers_endpoint = optarg; break;
        case 's': cfg.scored_endpoint = optarg; break;
        case 'H': if (parse_pos_int(optarg, "--heartbeat-ms", &cfg.heartbeat_ms)) return 2; break;
        case 'L': if (parse_pos_int(optarg, "--liveness", &cfg.liveness)) return 2; break;
        case 'A': if (parse_pos_int(optarg, "--max-attempts", &cfg.max_attempts)) return 2; break;
        case 'T': if (parse_pos_int(optarg, "--job-timeout-ms", &cfg.job_timeout_ms)) return 2; break;
        case 'S': cfg.stats_path = optarg; break;
        case 'h': broker_usage(stdout); return 0;
        default: broker_usage(stderr); return 2;
        }
    }
    if (optind < argc || !cfg.groups_endpoint || !cfg.workers_endpoint || !cfg.scored_endpoint) {
        fprintf(stderr, "srlm broker: --groups, --workers and --scored are required\n");
        broker_usage(stderr);
        return 2;
    }
    volatile sig_atomic_t *stop = pw_install_stop_handler();
    int rc = broker_run(&cfg, stop, NULL);
    if (rc != 0) {
        fprintf(stderr, "srlm broker: %s\n", srlm_last_error());
        return 1;
    }
    return 0;
}


/* --config FILE [--run-dir DIR]: the run config as every service reads it */
static int load_cfg(const char *cmd, const char *config, const char *run_dir, pc_config *cfg) {
    if (!config) {
        fprintf(stderr, "srlm %s: --config FILE is required\n", cmd);
        return 2;
    }
    if (pc_load(config, run_dir, cfg) != 0) {
        fprintf(stderr, "srlm %s: %s\n", cmd, srlm_last_error());
        return 2;
    }
    return 0;
}

/* What a config-driven service runs, with its own flags in arg. */
typedef struct {
    const char *role, *model; /* generator */
    const char *run_dir;      /* trainer */
    int resume;               /* trainer */
} service_args;

static int generator_main(const pc_config *cfg, const service_args *a, volatile sig_atomic_t *stop) {
    return gen_run(cfg, a->role, a->model, stop);
}

static int trainer_main(const pc_config *cfg, const service_args *a, volatile sig_atomic_t *stop) {
    return ts_run(cfg, a->run_dir, a->resume, stop);
}

/* The common tail of `srlm generator` and `srlm trainer`: load the run config, install the
 * SIGTERM/SIGINT handler, run fn. Exit status: 0 (also after a signal), 1 on a runtime
 * error (printed as "srlm CMD: message"), 2 on a missing or bad config. */
static int run_service(const char *cmd, const char *config, const char *run_dir,
                       int (*fn)(const pc_config *, const service_args *, volatile sig_atomic_t *),
                       const service_args *a) {
    pc_config cfg;
    int rc = load_cfg(cmd, config, run_dir, &cfg);
    if (rc) return rc;
    volatile sig_atomic_t *stop = pw_install_stop_handler();
    rc = fn(&cfg, a, stop);
    pc_free(&cfg);
    if (rc && rc != SRLM_EINTR) {
        fprintf(stderr, "srlm %s: %s\n", cmd, srlm_last_error());
        return 1;
    }
    return 0;
}

static void generator_usage(FILE *f) {
    fprintf(f,
            "usage: srlm generator --config FILE [--run-dir DIR] [--role policy|teacher] [--model DIR]\n"
            "policy (default): sample GRPO groups of the config's stages with the trainer's newest\n"
            "  policy version and push them to the broker (endpoints.groups); follows the trainer's\n"
            "  updates (endpoints.updates); problems come from the dataset server (endpoints.dataset).\n"
            "teacher: serve top-k teacher log-probabilities for logit KD on endpoints.teacher.\n"
            "  --config FILE   run config (docs/pipeline.md)\n"
            "  --run-dir DIR   run directory (ipc socket paths, default .)\n"
            "  --role R        policy | teacher\n"
            "  --model DIR     teacher: model dir (default: the KD stage's teacher, else the config's model)\n"
            "  -h, --help      this help\n"
            "SIGTERM/SIGINT: clean shutdown, exit 0.\n");
}

int cmd_generator(int argc, char **argv) {
    const char *config = NULL, *run_dir = NULL, *role = "policy", *model = NULL;
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"run-dir", required_argument, 0, 'r'},
                                         {"role", required_argument, 0, 'R'},   {"model", required_argument, 0, 'm'},
                                         {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'r': run_dir = optarg; break;
        case 'R': role = optarg; break;
        case 'm': model = optarg; break;
        case 'h': generator_usage(stdout); return 0;
        default: generator_usage(stderr); return 2;
        }
    }
    if (optind < argc || (strcmp(role, "policy") && strcmp(role, "teacher"))) {
        generator_usage(stderr);
        return 2;
    }
    srlm_log_set_role(strcmp(role, "teacher") ? "generator" : "teacher");
    service_args a = {.role = role, .model = model};
    return run_service("generator", config, run_dir, generator_main, &a);
}

static void trainer_usage(FILE *f) {
    fprintf(f,
            "usage: srlm trainer --config FILE [--run-dir DIR] [--resume]\n"
            "Run the config's stages in order (SFT, KD, GRPO), writing RUN/metrics.jsonl,\n"
            "RUN/checkpoints/step_N and RUN/weights/v_N (docs/pipeline.md).\n"
            "  --config FILE   run config\n"
            "  --run-dir DIR   run directory (default .)\n"
            "  --resume        continue from the newest checkpoint in RUN/checkpoints\n"
            "  -h, --help      this help\n"
            "SIGTERM/SIGINT: stop after the current step's work is abandoned, exit 0 (resume\n"
            "continues from the last checkpoint).\n");
}

int cmd_trainer(int argc, char **argv) {
    srlm_log_set_role("trainer");
    const char *config = NULL, *run_dir = ".";
    int resume = 0;
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"run-dir", required_argument, 0, 'r'},
                                         {"resume", no_argument, 0, 'R'},       {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'r': run_dir = optarg; break;
        case 'R': resume = 1; break;
        case 'h': trainer_usage(stdout); return 0;
        default: trainer_usage(stderr); return 2;
        }
    }
    if (optind < argc) { trainer_usage(stderr); return 2; }
    service_args a = {.run_dir = run_dir, .resume = resume};
    return run_service("trainer", config, run_dir, trainer_main, &a);
}

static void run_usage(FILE *f) {
    fprintf(f,
            "usage: srlm run CONFIG [--run-dir DIR] [--quiet]\n"
            "       srlm run --resume RUN_DIR\n"
            "       srlm run --print-keys\n"
            "       srlm run --check CONFIG\n"
            "Run a post-training pipeline (stages in order, e.g. sft -> grpo) on this machine:\n"
            "creates RUN_DIR (default runs/NAME) with config.json, logs/ROLE.log, metrics.jsonl,\n"
            "checkpoints/step_N/; imports data; starts the dataset server, broker, reward workers,\n"
            "generator and trainer over ipc://; restarts crashed workers and the generator; shows\n"
            "progress; Ctrl-C stops everything cleanly.\n"
            "  --run-dir DIR   run directory (default runs/<config name>)\n"
            "  --resume DIR    continue an interrupted run from its newest checkpoint\n"
            "  --quiet         no progress line\n"
            "  --print-keys    print every config key with its default (markdown)\n"
            "  --check         validate CONFIG and print its stages; start nothing\n"
            "  -h, --help      this help\n"
            "Config keys: docs/pipeline.md.\n");
}

int cmd_run(int argc, char **argv) {
    srlm_log_set_role("run");
    ln_options o;
    memset(&o, 0, sizeof o);
    static const struct option opts[] = {{"run-dir", required_argument, 0, 'r'}, {"resume", required_argument, 0, 'R'},
                                         {"quiet", no_argument, 0, 'q'},        {"print-keys", no_argument, 0, 'k'},
                                         {"check", no_argument, 0, 'C'},
                                         {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    optind = 1;
    int c, check = 0;
    while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
        switch (c) {
        case 'C': check = 1; break;
        case 'r': o.run_dir = optarg; break;
        case 'R': o.run_dir = optarg; o.resume = 1; break;
        case 'q': o.quiet = 1; break;
        case 'k': pc_print_keys(stdout); return 0;
        case 'h': run_usage(stdout); return 0;
        default: run_usage(stderr); return 2;
        }
    }
    if (o.resume) {
        if (optind != argc) { run_usage(stderr); return 2; }
    } else {
        if (optind + 1 != argc) { run_usage(stderr); return 2; }
        o.config_path = argv[optind];
    }
    if (check) {
        if (o.resume) { run_usage(stderr); return 2; }
        pc_config cfg;
        if (pc_load(o.config_path, "RUN", &cfg) != 0) {
            fprintf(stderr, "srlm run: %s\n", srlm_last_error());
            return 2;
        }
        printf("%s: run \"%s\", model %s, %d stage%s\n", o.config_path, cfg.name, cfg.model, cfg.n_stages,
               cfg.n_stages > 1 ? "s" : "");
        for (int i = 0; i < cfg.n_stages; i++)
            printf("  %d. %-10s %-4s %6d steps, batch %d%s\n", i + 1, cfg.stages[i].name, cfg.stages[i].type_name,
                   cfg.stages[i].steps, cfg.stages[i].batch_size, cfg.stages[i].type == PC_GRPO ? " groups" : "");
        pc_free(&cfg);
        return 0;
    }
    volatile sig_atomic_t *stop = pw_install_stop_handler();
    int rc = ln_run(&o, stop);
    if (rc) {
        fprintf(stderr, "srlm run: %s\n", srlm_last_error());
        return rc == SRLM_EINVAL || rc == SRLM_ENOTFOUND ? 2 : 1;
    }
    return 0;
}
