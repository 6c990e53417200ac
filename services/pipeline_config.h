/* pipeline_config.h — the run config of `srlm run` and of every pipeline service
 * (prefix pc_). One JSON file (parsed with jansson); every key, its type and default is
 * listed in docs/pipeline.md and in the tables of pipeline_config.c (pc_print_keys prints
 * them). Unknown keys are errors that name the key path ("stages[1].lrr"); wrong types and
 * out-of-range values name the path too.
 *
 * Endpoints: with transport "ipc" (default) every socket lives under RUN/sock/ (or, when that
 * path is too long for an ipc:// address, /tmp/srlm-sock-<sha256(RUN) prefix>/); with "tcp"
 * they are tcp://HOST:PORT_BASE+k (k: dataset 0, groups 1, workers 2, scored 3, updates 4,
 * teacher 5). Any endpoint can be given explicitly (endpoints.dataset, ...). These are
 * the addresses peers CONNECT to; the binding side binds tcp://0.0.0.0:PORT for tcp. */
#ifndef SRLM_PIPELINE_CONFIG_H
#define SRLM_PIPELINE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PC_MAX_STAGES 16
#define PC_MAX_IMPORTS 32

enum { PC_SFT = 0, PC_KD = 1, PC_GRPO = 2 };

typedef struct {
    int type;                 /* PC_SFT | PC_KD | PC_GRPO */
    char type_name[8];        /* "sft" | "kd" | "grpo" */
    char name[64];            /* default = type */
    int steps;                /* optimizer steps of this stage (required, > 0) */
    int batch_size;           /* SFT/KD: samples per step; GRPO: groups per step */
    int micro_batch;          /* rows per forward/backward */
    char sources[256];        /* dataset sources, comma-separated ("" = all) */
    char splits[128];         /* dataset splits ("train") */
    char prompt_format[16];   /* "auto" | gsm8k | cot-boxed | humaneval | mbpp | plain */
    int chat;                 /* ChatML prompts */
    int max_seq_len;          /* SFT/KD samples are truncated to this many tokens */
    /* optimizer */
    char optimizer[8];        /* adamw | sgd */
    double lr, weight_decay, max_grad_norm;
    char schedule[12];        /* constant | linear | cosine */
    int warmup_steps;
    /* LoRA */
    int lora_rank;
    double lora_alpha;
    char lora_targets[64];    /* "q,k,v,o,gate,up,down" */
    /* KD */
    char kd_mode[12];         /* "sequence" (SFT on teacher traces) | "logit" */
    char teacher[512];        /* logit KD: teacher model dir */
    int teacher_service;      /* 1: a `srlm generator --role teacher` process serves it */
    int teacher_top_k;        /* top-k per position from the teacher service */
    char kd_loss[8];          /* fkl | rkl | jsd */
    double kd_beta, kd_temperature;
    /* GRPO: sampling */
    int group_size, max_new_tokens, top_k;
    double temperature, top_p;
    /* GRPO: loss */
    double clip_low, clip_high, kl_beta, norm_const;
    char kl_estimator[4];     /* k1 | k2 | k3 */
    char aggregation[12];     /* grpo | dr_grpo | dapo */
    char advantage[8];        /* grpo | mean | rloo */
    int dynamic_sampling;     /* drop groups whose valid rewards are all equal */
    int max_staleness;        /* generator at most this many versions ahead */
} pc_stage;

typedef struct {
    char path[1024];          /* file it was read from */
    char name[128];
    char model[1024];         /* initial policy (HF dir), required */
    char tokenizer[1024];     /* default: model */
    uint64_t seed;
    int threads;
    /* data */
    char db[1024];            /* default RUN/data.lmdb */
    int n_imports;
    char **imports[PC_MAX_IMPORTS]; /* each a NULL-terminated argv for `srlm data` (heap) */
    /* stages */
    int n_stages;
    pc_stage stages[PC_MAX_STAGES];
    /* processes */
    int workers_math, workers_code, generators;
    int heartbeat_ms, liveness, max_attempts, job_timeout_ms;
    int checkpoint_every, checkpoint_keep;
    char save_dtype[8];       /* F32 | BF16 */
    int max_restarts;
    /* endpoints (connect form) */
    char transport[8];        /* ipc | tcp */
    char host[128];
    int port_base;
    char ep_dataset[256], ep_groups[256], ep_workers[256], ep_scored[256], ep_updates[256],
        ep_teacher[256];
    char sock_dir[128];      /* ipc: directory of the default sockets (RUN/sock, or
                                 /tmp/srlm-sock-HASH when RUN's path is too long for ipc) */
} pc_config;

/* Parse config JSON text. run_dir (may be NULL) resolves the RUN/ defaults (db, ipc
 * sockets); relative paths in the config are kept as written (relative to the CWD of
 * the process that reads them, documented). Errors: SRLM_EFORMAT (bad JSON, with line),
 * SRLM_EINVAL (unknown key, wrong type or bad value; message names the key path). */
int pc_parse(const char *json_text, const char *path, const char *run_dir, pc_config *out);
int pc_load(const char *path, const char *run_dir, pc_config *out);
void pc_free(pc_config *c);

/* The bind form of a connect endpoint: tcp://HOST:PORT → tcp://0.0.0.0:PORT; ipc unchanged. */
void pc_bind_endpoint(const char *connect_ep, char *out, size_t n);

/* 1 if any stage is GRPO (the launcher then starts generator, broker, workers). */
int pc_has_grpo(const pc_config *c);

/* Print every key with type, default and meaning (markdown table rows). */
void pc_print_keys(FILE *f);

#endif
