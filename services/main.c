/* main.c — the single `srlm` binary: dispatches to one subcommand per role/tool. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "util.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

static const command COMMANDS[] = {
    {"tokenize", cmd_tokenize, "text -> token ids (JSON array; --jsonl streams; --chat applies ChatML)"},
    {"detokenize", cmd_detokenize, "token ids -> text"},
    {"tokenizer", cmd_tokenizer, "tokenizer tools: init-bytes (byte-level vocabulary for tiny models)"},
    {"init", cmd_init, "create a randomly initialised Qwen2 model directory from a config"},
    {"forward", cmd_forward, "run the model on token ids, write logits [T, V] as .npy"},
    {"generate", cmd_generate, "sample completions from a model (greedy/temperature/top-k/top-p)"},
    {"train", cmd_train, "one-off training: sft | kd (full or LoRA)"},
    {"data", cmd_data, "dataset store: import | stats | get | export | synth"},
    {"dataset", cmd_dataset, "dataset service: serve (LMDB over ZeroMQ)"},
    {"sandbox", cmd_sandbox, "run a command inside the code sandbox and print the verdict"},
    {"reward-code", cmd_reward_code, "code-execution reward (sandboxed tests); --connect joins a broker"},
    {"reward-math", cmd_reward_math, "math answer checking reward; --connect joins a broker"},
    {"generator", cmd_generator, "pipeline service: samples rollout groups from the policy"},
    {"broker", cmd_broker, "pipeline service: fans rollouts out to reward workers, reassembles groups"},
    {"trainer", cmd_trainer, "pipeline service: SFT / KD / GRPO training, checkpoints, weight updates"},
    {"run", cmd_run, "launch a whole pipeline on one machine from a config (--resume RUN_DIR)"},
    {"eval", cmd_eval, "evaluate a model: accuracy, pass@k, maj@k through the reward workers"},
    {"study", cmd_study, "run a list of pipelines, evaluate each, write report.md and plots"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f) {
    fprintf(f,
            "srlm %s — post-training of small reasoning language models (SFT, KD, GRPO)\n\n"
            "usage: srlm COMMAND [OPTIONS]     (srlm COMMAND --help for its options)\n\n"
            "commands:\n",
            SRLM_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\nenvironment: SRLM_LOG_LEVEL=debug|info|warn|error, SRLM_DATA_DIR=bundled data root\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("srlm %s\n", SRLM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (!strcmp(argv[1], COMMANDS[i].name)) {
            srlm_log_set_role(COMMANDS[i].name);
            return COMMANDS[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "srlm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
