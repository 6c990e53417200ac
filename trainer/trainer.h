/* trainer.h — the reusable trainer (prefix tr_): one policy model (full fine-tune or
 * LoRA), its optimizer, an optional frozen reference model (GRPO KL) and an optional
 * local teacher (logit-level KD). Shared by `srlm train` (services/cmd_train.c) and the
 * pipeline's `srlm trainer` service.
 *
 * One call = one optimizer step. The caller passes every row of the step; the trainer
 * splits them into micro-batches of at most cfg.micro_batch rows (gradient accumulation:
 * gradients are summed with += and the loss is normalised by the target-token count of
 * the whole step, as HF's num_items_in_batch), clips the global gradient norm, applies the
 * LR schedule and updates. Deterministic for a given seed and inputs.
 *
 * Token convention: row i holds ids[i][0 .. len[i]-1]; token t (t >= 1) is a *target*
 * when it carries loss: loss_mask[i][t] != 0, or — with loss_mask NULL — t >= prompt_len[i].
 * The prediction of target t comes from the logits at position t − 1 (qwen2.md §2.9).
 *
 * Checkpoints (tr_save / tr_load): a directory written as DIR.tmp.PID, fsynced, renamed:
 *   config.json, model.safetensors, generation_config.json, tokenizer files   (HF model
 *        dir, merged weights when LoRA is on — loadable by `srlm generate`)
 *   adapter_config.json, adapter_model.safetensors   (LoRA only, PEFT layout)
 *   optimizer.safetensors                            (optim.h)
 *   trainer_state.json  {"step", "seed", "base_model", "lora": {...}, "config": {...},
 *                        "user": <caller JSON, e.g. the data cursor>}
 * Resuming from it continues bit-identically (same parameters, moments, step).
 */
#ifndef SRLM_TRAINER_H
#define SRLM_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "loss.h"
#include "optim.h"

struct lm_model;
typedef struct tr_trainer tr_trainer;

typedef struct {
    opt_config opt;            /* optimizer, LR schedule, max_grad_norm */
    int micro_batch;           /* rows per forward/backward (default 4) */
    int threads;               /* OpenBLAS/OpenMP threads, <= 0 = leave as is */
    uint64_t seed;             /* LoRA init and anything random (default 0) */
    /* LoRA: rank 0 = full fine-tune */
    int lora_rank;
    float lora_alpha;
    unsigned lora_targets;     /* bitmask of (1u << LM_LORA_Q) ... (model.h) */
    /* logit-level KD */
    loss_kd_kind kd_kind;      /* default fkl */
    float kd_beta;             /* JSD β (0.5) */
    float kd_temperature;      /* τ (1.0) */
    const char *teacher_dir;   /* local teacher model dir (borrowed), or NULL */
    /* GRPO family */
    loss_grpo_config grpo;     /* clip ε low/high, KL β and estimator, aggregation */
    loss_adv_kind adv_kind;    /* grpo (std-scaled) | mean (Dr. GRPO) | rloo */
    float adv_eps;             /* added to the group std (1e-4) */
    float policy_temperature;  /* logits ÷ τ when scoring rollouts (match the sampler) (1) */
    const char *ref_dir;       /* reference model dir; NULL = the model dir the trainer was
                                  created from (kept across tr_save / tr_load, so resume is
                                  exact), or, without one, a frozen copy of the policy at
                                  the first GRPO step. Loaded only when grpo.kl_beta > 0. */
} tr_config;

void tr_config_default(tr_config *c);

/* Rows of one step (all pointers borrowed for the duration of the call). */
typedef struct {
    int n_rows;
    const int32_t *const *ids;         /* [n_rows] → [len[i]] token ids */
    const int *len;                    /* [n_rows] */
    const int *prompt_len;             /* [n_rows] (used when loss_mask is NULL) */
    const uint8_t *const *loss_mask;   /* [n_rows] → [len[i]], or NULL */
} tr_batch;

/* Teacher top-k for logit-level KD from a teacher process: per row [len[i], K] ids and
 * log-probabilities; entry t is the teacher's distribution of token t given tokens < t
 * (read only at target positions; entry 0 unused). Unused slots: id −1. */
typedef struct {
    int K;
    const int32_t *const *ids;
    const float *const *logp;
} tr_topk;

/* Scored rollouts of one GRPO step. Targets = completion tokens t >= prompt_len[i]. */
typedef struct {
    int n_rows;
    const int32_t *const *ids;         /* prompt + completion */
    const int *len;
    const int *prompt_len;
    const float *const *logp_old;      /* [n_rows] → [len[i]] behaviour logprobs of token t
                                          (read for t >= prompt_len[i]); NULL = on-policy
                                          (use the current policy: ratio 1) */
    const float *reward;               /* [n_rows] */
    const int *group_id;               /* [n_rows] rows of one group share an id */
} tr_rollouts;

typedef struct {
    long step;          /* optimizer steps done after this call */
    double loss;        /* loss of the step (token mean for SFT/KD; aggregate for GRPO) */
    double grad_norm;   /* global L2 norm before clipping */
    double lr;          /* learning rate used */
    long tokens;        /* target tokens */
    long rows;
    double seconds;     /* wall time of the call */
    double tokens_per_s;/* all tokens (prompt + target) forwarded per second */
    /* GRPO only (0 otherwise) */
    double pg_loss, kl, entropy, clip_frac, ratio_mean, ratio_min, ratio_max;
    double reward_mean, reward_std, adv_abs_mean;
} tr_metrics;

/* Load the policy from an HF model dir and set up LoRA / optimizer / teacher / reference
 * per cfg (cfg is copied; its strings are copied). *out owned → tr_free.
 * Errors: those of lm_model_load, SRLM_EINVAL (bad config), SRLM_ENOMEM. */
int tr_create(const char *model_dir, const tr_config *cfg, tr_trainer **out);
void tr_free(tr_trainer *t);
/* Like tr_create, from a model already in memory; the trainer takes ownership of m (also
 * on error). base_dir (may be NULL) is recorded as the base model and is where tokenizer
 * files are copied from on save; it is also the default GRPO reference (see ref_dir). */
int tr_create_from_model(struct lm_model *m, const char *base_dir, const tr_config *cfg,
                         tr_trainer **out);

/* One optimizer step of SFT: token cross-entropy over the targets (loss.h loss_ce). */
int tr_sft_step(tr_trainer *t, const tr_batch *b, tr_metrics *m);
/* One optimizer step of logit-level KD (loss_kd_full with the local teacher when topk is
 * NULL — needs cfg.teacher_dir —, else loss_kd_topk). Error: SRLM_EINVAL. */
int tr_kd_step(tr_trainer *t, const tr_batch *b, const tr_topk *topk, tr_metrics *m);
/* One optimizer step of the GRPO family (loss_grpo_advantages + loss_grpo). */
int tr_grpo_step(tr_trainer *t, const tr_rollouts *r, tr_metrics *m);

/* The policy model (borrowed; LoRA adapters attached, not merged). */
struct lm_model *tr_model(tr_trainer *t);
long tr_step(const tr_trainer *t);

/* Write a checkpoint directory (layout above) atomically; user_json (may be NULL) is
 * stored verbatim under "user" (must be valid JSON). save_dtype "F32" or "BF16" for the
 * model weights (optimizer state is always F32). Errors: SRLM_EIO, SRLM_EINVAL. */
int tr_save(tr_trainer *t, const char *dir, const char *save_dtype, const char *user_json);
/* Resume: create a trainer from a checkpoint directory written by tr_save. cfg gives the
 * non-persistent settings (threads, micro_batch, teacher/ref dirs); the optimizer config,
 * LoRA setup, step and seed come from the checkpoint. *user_json (optional) receives a
 * heap copy of the stored "user" JSON or NULL. */
int tr_load(const char *dir, const tr_config *cfg, tr_trainer **out, char **user_json);

/* One JSON object (no newline) for metrics.jsonl into buf. Error: SRLM_EINVAL (too small). */
int tr_metrics_json(const tr_metrics *m, const char *stage, char *buf, size_t n);

#endif
