/* optim.h — optimizers of srlm: AdamW and SGD over one flat float32 parameter array,
 * global-norm gradient clipping, learning-rate schedules, and a bit-exact save/restore of
 * the optimizer state as "optimizer.safetensors".
 *
 * The optimizer sees a flat array of n parameters and its gradient (the model keeps all
 * parameters in one allocation; LoRA keeps its adapters in another). Ranges can be
 * excluded from weight decay (biases and norm weights, as HF Trainer does).
 * Gradient accumulation is the caller's: sum the micro-batch gradients into one buffer
 * (the backward accumulates with +=) with the loss normaliser of the whole step, then
 * call opt_step once.
 */
#ifndef SRLM_OPTIM_H
#define SRLM_OPTIM_H

#include <stddef.h>

typedef enum { OPT_ADAMW = 0, OPT_SGD = 1 } opt_kind;
typedef enum { OPT_SCHED_CONSTANT = 0, OPT_SCHED_LINEAR = 1, OPT_SCHED_COSINE = 2 } opt_sched;

typedef struct {
    opt_kind kind;
    float lr;            /* peak learning rate */
    float beta1, beta2;  /* AdamW moments (0.9, 0.999) */
    float eps;           /* AdamW epsilon (1e-8) */
    float weight_decay;  /* AdamW: decoupled; SGD: L2 added to the gradient (torch) */
    float momentum;      /* SGD momentum (0 = plain SGD) */
    float dampening;     /* SGD dampening (0) */
    int nesterov;        /* SGD Nesterov momentum (0) */
    float max_grad_norm; /* global-norm clip threshold, <= 0 = no clipping (default 1.0) */
    opt_sched sched;
    long warmup_steps;   /* linear warmup from 0 (0 = none) */
    long total_steps;    /* for linear / cosine decay */
} opt_config;

/* AdamW, lr 1e-5, betas (0.9, 0.999), eps 1e-8, wd 0, clip 1.0, constant schedule,
 * no warmup (HF TrainingArguments defaults, qwen2.md §3.9). */
void opt_config_default(opt_config *c);
/* "adamw" | "sgd";  "constant" | "linear" | "cosine". Error: SRLM_EINVAL. */
int opt_parse_kind(const char *s, opt_kind *out);
int opt_parse_sched(const char *s, opt_sched *out);
const char *opt_kind_name(opt_kind k);
const char *opt_sched_name(opt_sched s);

/* Learning rate for the update that follows `step` completed updates (step = 0 for the
 * first), as HF's get_{constant,linear,cosine}_schedule_with_warmup (LambdaLR):
 *   warmup (step < W):  lr · step / W
 *   constant:           lr
 *   linear:             lr · max(0, (S − step) / (S − W))
 *   cosine:             lr · max(0, ½ (1 + cos(π · (step − W) / (S − W))))
 * (so with warmup the very first update uses lr 0, exactly like HF). */
float opt_lr_at(const opt_config *c, long step);

/* Global L2 norm of a gradient [n] (double accumulation). */
double opt_grad_norm(const float *g, size_t n);
/* torch.nn.utils.clip_grad_norm_: norm = ‖g‖₂; if max_norm > 0, g *= min(1,
 * max_norm / (norm + 1e-6)). Returns the norm before clipping. */
double opt_clip_grad_norm(float *g, size_t n, float max_norm);
/* The scaling half of opt_clip_grad_norm, for a caller that already has norm = ‖g‖₂
 * (e.g. to reject a non-finite norm before touching g): if max_norm > 0,
 * g *= min(1, max_norm / (norm + 1e-6)). */
void opt_clip_to_norm(float *g, size_t n, float max_norm, double norm);
/* g *= s (e.g. 1/K after K micro-batches when each was normalised on its own). */
void opt_scale(float *g, size_t n, float s);

typedef struct opt_state {
    opt_config cfg;
    size_t n;        /* parameters */
    long step;       /* completed updates */
    float *m;        /* AdamW exp_avg [n] or SGD momentum_buffer [n] (NULL without momentum) */
    float *v;        /* AdamW exp_avg_sq [n] (NULL for SGD) */
    size_t (*no_decay)[2]; /* sorted, disjoint [begin, end) ranges without weight decay */
    int n_no_decay, cap_no_decay;
} opt_state;

/* Allocate the state for n parameters (zeroed moments). *out owned by the caller, free
 * with opt_free. Errors: SRLM_EINVAL, SRLM_ENOMEM. */
int opt_create(const opt_config *cfg, size_t n, opt_state **out);
void opt_free(opt_state *s);
/* Exclude params [off, off+len) from weight decay. Error: SRLM_EINVAL (out of range). */
int opt_no_decay(opt_state *s, size_t off, size_t len);

/* One update of params [n] with grads [n] (not modified) at learning rate lr, then
 * step++. Formulas (torch 1.13 single-tensor implementations, qwen2.md §3.9):
 *   AdamW: θ ← θ(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
 *          θ ← θ − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps)          (t = step+1)
 *   SGD:   d = g + wd·θ; with momentum μ: b ← d (first step) or μ b + (1−dampening) d,
 *          d = nesterov ? d + μ b : b;  θ ← θ − lr·d */
void opt_step(opt_state *s, float *params, const float *grads, float lr);

/* Save / restore the state (moments, step, config) as safetensors: tensors "exp_avg",
 * "exp_avg_sq" (AdamW) or "momentum_buffer" (SGD with momentum), F32 [n];
 * __metadata__ {"format":"srlm-optimizer","kind","step","n", hyperparameters,
 * "no_decay": "b0-e0,b1-e1,..."}.
 * Written to PATH.tmp.PID, fsynced, renamed. Restore is bit-exact; opt_load requires the
 * same kind and n as the state it loads into (config fields are restored from the file).
 * Errors: SRLM_EIO, SRLM_EFORMAT, SRLM_EINVAL (mismatch), SRLM_ENOTFOUND. */
int opt_save(const opt_state *s, const char *path);
int opt_load(opt_state *s, const char *path);
/* Create a state from a file alone: kind, n, config and moments as stored (resume).
 * *out owned → opt_free. Errors as opt_load. */
int opt_load_new(const char *path, opt_state **out);

#endif
