/* sampler.h — next-token selection per docs/qwen2.md §2.12 (HF generate
 * semantics): repetition penalty → temperature → top-k → top-p → softmax → multinomial
 * draw (or argmax when greedy), with stop ids and max new tokens in lm_sampling.
 *
 * Log-probabilities reported for each chosen token (RL needs them):
 *   logprob          = log softmax(s / τ)[token], where s = the RAW model logits of that
 *                      step (no repetition penalty, no top-k/top-p truncation) and τ the
 *                      temperature (τ = 1 when greedy). This is the policy distribution
 *                      π_τ(token | context) that the trainer recomputes with
 *                      lm_sequence_logprobs(..., temperature = τ) — use it as the
 *                      behaviour log-probability for importance ratios.
 *   sampled_logprob  = log of the probability the token actually had in the processed
 *                      distribution it was drawn from (after penalty, τ, top-k, top-p);
 *                      0 for greedy. Informative (e.g. to audit truncation). */
#ifndef SRLM_SAMPLER_H
#define SRLM_SAMPLER_H

#include <stdint.h>
#include "util.h"

#define LM_MAX_STOP 16
typedef struct {
    int do_sample;             /* 0 → greedy argmax (temperature ignored) */
    float temperature;         /* τ > 0; 1 = unchanged */
    int top_k;                 /* 0 = off */
    float top_p;               /* 1 = off */
    float repetition_penalty;  /* 1 = off; applied over prompt + generated ids */
    int max_new_tokens;        /* > 0 */
    uint64_t seed;             /* srlm_rng seed of the draws */
    int n_stop;
    int32_t stop_ids[LM_MAX_STOP];  /* generation stops after emitting one of these */
} lm_sampling;

/* Greedy, τ 1, top-k 0, top-p 1, penalty 1, max_new_tokens 128, seed 0, no stop ids. */
void lm_sampling_default(lm_sampling *s);
/* Override fields of s from a generation_config.json text (do_sample, temperature,
 * top_k, top_p, repetition_penalty, max_new_tokens, eos_token_id int or list → stop ids).
 * Unknown fields are ignored. Errors: SRLM_EFORMAT (bad JSON / field type; names path). */
int lm_sampling_from_json(lm_sampling *s, const char *json_text, const char *path);
/* SRLM_EINVAL with a message for out-of-range values (τ <= 0 when sampling, top_p ∉ (0,1],
 * top_k < 0, penalty <= 0, max_new_tokens <= 0). */
int lm_sampling_validate(const lm_sampling *s);

/* Scratch for one vocabulary (reuse across steps; not thread-shared). */
typedef struct {
    int V;
    float *work;     /* [V] */
    int32_t *idx;    /* [V] */
    uint8_t *seen;   /* [V] repetition-penalty marks */
} lm_sampler;
int lm_sampler_init(lm_sampler *sp, int V);
void lm_sampler_free(lm_sampler *sp);

/* Choose the next token from logits [V] (not modified). history [n_hist] = prompt +
 * generated ids (repetition penalty). rng is advanced only when sampling. Writes the two
 * log-probabilities described above (either pointer may be NULL). Returns the id. */
int32_t lm_sample(lm_sampler *sp, const float *logits, const lm_sampling *s,
                  const int32_t *history, int n_hist, srlm_rng *rng, float *logprob,
                  float *sampled_logprob);

#endif
