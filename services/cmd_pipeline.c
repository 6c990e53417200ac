/* cmd_pipeline.c — `srlm broker`, `srlm generator`, `srlm trainer`, `srlm run`: the CLI
 * of the pipeline services (docs/pipeline.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "commands.h"
#include "pipeline_wire.h"
#include "util.h"

static int parse_pos_int(const char *s, const char *flag, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v <= 0 || v > 100000000) {
        fprintf(stderr, "srlm: %s expects a positive integer, got '%s'\n", flag, s);
        return -1;
    }
    *out = (int)v;
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

int cmd_generator(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
int cmd_trainer(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
int cmd_run(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
