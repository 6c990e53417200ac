/* loss.h — training losses of srlm: SFT cross-entropy, logit-level knowledge distillation
 * (forward KL, reverse KL, generalized JSD) and the GRPO policy-gradient family.
 *
 * Every loss returns its value and writes the gradient of that value with respect to its
 * inputs (student logits [N, V], or per-token log-probabilities [M] for the policy part,
 * which loss_logprob_backward() chains through log-softmax into dlogits [N, V]).
 * Gradients are OVERWRITTEN (not accumulated) in the output buffers; a dlogits buffer may
 * alias the logits buffer (in-place), which halves the memory of the vocabulary-sized
 * tensors at the 0.5B shape. All arithmetic is float32 with double-precision row sums.
 * Rows are independent and processed in parallel with OpenMP.
 *
 * Conventions: N = token rows, V = vocabulary size, target −100 (LOSS_IGNORE) = no loss
 * on that row (its gradient row is zero). "denom" is the loss normaliser: pass > 0 to fix
 * it (gradient accumulation: the number of target tokens of the whole optimizer step,
 * like HF's num_items_in_batch), or <= 0 to use the number of counted rows in this call.
 */
#ifndef SRLM_LOSS_H
#define SRLM_LOSS_H

#include <stddef.h>

#define LOSS_IGNORE (-100)

/* ---- SFT ------------------------------------------------------------------------------
 * Token cross-entropy (qwen2.md §2.9, §3.1; HF ForCausalLMLoss):
 *   ℓ_j = logsumexp(z_j) − z_j[t_j]   for rows with t_j != LOSS_IGNORE
 *   loss = Σ_j ℓ_j / denom            (token mean across the whole batch by default)
 *   dz_j = (softmax(z_j) − onehot(t_j)) / denom
 * logits: [N, V] (borrowed); targets: [N] ids in [0, V) or LOSS_IGNORE; dlogits: [N, V]
 * (written; may equal logits; NULL = loss only). *count (optional) = counted rows.
 * Returns the loss (0 when no row is counted). A target outside [0, V) counts as ignored. */
float loss_ce(const float *logits, const int *targets, int N, int V, float denom,
              float *dlogits, int *count);

/* Per-token log-probability of the target and entropy of the distribution:
 *   logp[j] = z_j[t_j] − logsumexp(z_j),  entropy[j] = −Σ_v p_j[v] log p_j[v]
 * logits: [N, V]; targets: [N] (LOSS_IGNORE rows get logp 0); logp: [N] (written);
 * entropy: [N] or NULL. Used for GRPO (current policy and reference model). */
void loss_token_logprobs(const float *logits, const int *targets, int N, int V,
                         float *logp, float *entropy);

/* Chain a gradient w.r.t. per-token log-probabilities through log-softmax:
 *   dz_j = dlogp[j] · (onehot(t_j) − softmax(z_j))
 * logits: [N, V]; targets, dlogp: [N]; dlogits: [N, V] written (may equal logits).
 * Rows with LOSS_IGNORE targets or dlogp 0 get a zero gradient row. */
void loss_logprob_backward(const float *logits, const int *targets, const float *dlogp,
                           int N, int V, float *dlogits);

/* ---- knowledge distillation -----------------------------------------------------------
 * Divergences between the teacher distribution P and the student distribution Q per token
 * (Agarwal et al. 2024, "On-Policy Distillation of Language Models: Learning from
 * Self-Generated Mistakes" (GKD), eq. 1 and §3; the same definitions as TRL's
 * GKDTrainer.generalized_jsd_loss):
 *   LOSS_KD_FKL  forward KL   KL(P‖Q) = Σ P (log P − log Q)           (mode covering)
 *   LOSS_KD_RKL  reverse KL   KL(Q‖P) = Σ Q (log Q − log P)           (mode seeking)
 *   LOSS_KD_JSD  generalized JSD(β) = β KL(P‖M) + (1−β) KL(Q‖M),  M = β P + (1−β) Q,
 *                0 < β < 1 (β = 0.5 is the symmetric JSD). Use FKL / RKL for the limits.
 * Temperature τ: Q = softmax(z_s / τ) and, for full teacher logits, P = softmax(z_t / τ).
 * No τ² factor is applied (as TRL GKD); multiply the result yourself for Hinton scaling.
 * Gradients w.r.t. student logits (g = ∂D/∂Q per bucket, then softmax chain, ÷ τ):
 *   FKL: dz = (Q − P)/τ;  RKL: g = log Q − log P;  JSD: g = (1−β)(log Q − log M);
 *   dz_v = Q_v (g_v − Σ_w Q_w g_w) / τ.
 */
typedef enum { LOSS_KD_FKL = 0, LOSS_KD_RKL = 1, LOSS_KD_JSD = 2 } loss_kd_kind;

/* Parse "fkl" | "rkl" | "jsd" into *out. Error: SRLM_EINVAL. */
int loss_kd_parse(const char *name, loss_kd_kind *out);
const char *loss_kd_name(loss_kd_kind k);

/* KD from full teacher logits.
 * student, teacher: [N, V] (borrowed); mask: [N] per-row weights (1 = counted, 0 = skipped)
 * or NULL (all rows); loss = Σ_j mask_j D_j / denom, denom <= 0 → Σ mask.
 * dlogits: [N, V] written (may equal student; NULL = loss only). Returns the loss. */
float loss_kd_full(const float *student, const float *teacher, const float *mask, int N,
                   int V, loss_kd_kind kind, float beta, float temperature, float denom,
                   float *dlogits);

/* KD from the teacher's top-k log-probabilities (what a teacher process sends).
 * topk_ids: [N, K] token ids (distinct per row, in [0, V); −1 = unused slot);
 * topk_logp: [N, K] teacher log-probabilities of those ids, already at the intended
 * temperature (the student logits are divided by τ here).
 * The remaining mass is an explicit "rest" bucket: the divergence is computed over K+1
 * buckets, P_rest = max(0, 1 − Σ_k exp(topk_logp)), Q_rest = 1 − Σ_k Q[id_k] (computed as
 * the sum of Q over the other tokens, so it stays accurate when tiny). With K = V this
 * equals loss_kd_full. Buckets with zero probability contribute 0 (0·log 0 = 0).
 * Other arguments as loss_kd_full. */
float loss_kd_topk(const float *student, const int *topk_ids, const float *topk_logp, int K,
                   const float *mask, int N, int V, loss_kd_kind kind, float beta,
                   float temperature, float denom, float *dlogits);

/* ---- GRPO family ----------------------------------------------------------------------
 * Advantages, group-relative (Shao et al. 2024, DeepSeekMath §4.1.2 outcome supervision;
 * Liu et al. 2025 "Understanding R1-Zero-Like Training" (Dr. GRPO) drops the std scaling;
 * Ahmadian et al. 2024 "Back to Basics" (RLOO) uses the leave-one-out mean):
 *   LOSS_ADV_GRPO:  A_i = (r_i − mean_g r) / (std_g r + eps)   std unbiased (n−1), as TRL
 *   LOSS_ADV_MEAN:  A_i =  r_i − mean_g r                        (Dr. GRPO)
 *   LOSS_ADV_RLOO:  A_i =  r_i − mean_{j∈g, j≠i} r_j = G/(G−1) (r_i − mean_g r)
 * A group of one sequence gets A = 0. */
typedef enum { LOSS_ADV_GRPO = 0, LOSS_ADV_MEAN = 1, LOSS_ADV_RLOO = 2 } loss_adv_kind;

/* rewards, group_ids: [n] (sequences of one group share an id; any order); adv: [n]
 * written. eps: added to the std (TRL uses 1e-4). Returns 0 or SRLM_EINVAL (n < 0). */
int loss_grpo_advantages(const float *rewards, const int *group_ids, int n,
                         loss_adv_kind kind, float eps, float *adv);

/* KL estimators of KL(π_θ‖π_ref) per token (Schulman 2020, "Approximating KL
 * Divergence"), with δ = logp_ref − logp:
 *   k1 = −δ,   k2 = δ²/2,   k3 = exp(δ) − 1 − δ       (k3 is what GRPO uses) */
typedef enum { LOSS_KL_K1 = 1, LOSS_KL_K2 = 2, LOSS_KL_K3 = 3 } loss_kl_kind;

/* Loss aggregation over the completion tokens (ℓ_it = per-token loss of sequence i):
 *   LOSS_AGG_SEQ_MEAN_TOKEN_MEAN  (1/n) Σ_i (1/|o_i|) Σ_t ℓ_it          GRPO
 *   LOSS_AGG_TOKEN_SUM_CONST      (1/C) Σ_i Σ_t ℓ_it, C = norm_const    Dr. GRPO
 *                                 (TRL: n · max_completion_length)
 *   LOSS_AGG_TOKEN_MEAN           Σ_i Σ_t ℓ_it / Σ_i |o_i|              DAPO */
typedef enum {
    LOSS_AGG_SEQ_MEAN_TOKEN_MEAN = 0,
    LOSS_AGG_TOKEN_SUM_CONST = 1,
    LOSS_AGG_TOKEN_MEAN = 2
} loss_agg_kind;

typedef struct {
    float eps_low;          /* PPO clip below: ratio >= 1 − eps_low (0.2) */
    float eps_high;         /* PPO clip above: ratio <= 1 + eps_high (0.2; DAPO 0.28) */
    float kl_beta;          /* coefficient of the KL penalty (0 = no reference needed) */
    loss_kl_kind kl_kind;   /* k1 | k2 | k3 */
    loss_agg_kind agg;
    float norm_const;       /* C for LOSS_AGG_TOKEN_SUM_CONST */
} loss_grpo_config;

/* Defaults: eps 0.2/0.2, kl_beta 0.04, k3, seq-mean-token-mean, norm_const 1. */
void loss_grpo_config_default(loss_grpo_config *c);

typedef struct {
    double loss;         /* aggregated loss (pg + β·kl) */
    double pg_loss;      /* aggregated policy-gradient part */
    double kl_mean;      /* token mean of the KL estimator (0 without a reference) */
    double entropy_mean; /* token mean of the policy entropy (0 if not given) */
    double clip_frac;    /* fraction of tokens whose gradient the clip removed:
                            (A > 0 and ratio > 1+eps_high) or (A < 0 and ratio < 1−eps_low) */
    double ratio_mean, ratio_min, ratio_max;
    long tokens;         /* completion tokens counted */
} loss_grpo_stats;

/* Clipped-surrogate GRPO loss (Shao et al. 2024 eq. 3; Yu et al. 2025 DAPO eq. 8 for the
 * decoupled clip range). Per token t of sequence i, r = exp(logp − logp_old):
 *   ℓ_it = max(−A_i r, −A_i clip(r, 1−eps_low, 1+eps_high)) + β · k(logp, logp_ref)
 * then aggregated (see loss_agg_kind).
 * n_seq sequences; offsets: [n_seq+1], tokens of sequence i are [offsets[i],
 * offsets[i+1]) in the flat arrays; logp, logp_old: [M] (M = offsets[n_seq]);
 * logp_ref: [M] or NULL (then no KL term); adv: [n_seq]; entropy: [M] or NULL (stats only);
 * dlogp: [M] written, ∂loss/∂logp (NULL = loss only); stats: written (may be NULL).
 * Returns the loss. Empty sequences are skipped (they do not count in n for the
 * seq-mean aggregation). */
float loss_grpo(const loss_grpo_config *cfg, int n_seq, const int *offsets,
                const float *logp, const float *logp_old, const float *logp_ref,
                const float *adv, const float *entropy, float *dlogp,
                loss_grpo_stats *stats);

#endif
