/* generate.h — KV cache, prefill + incremental decode, and sampling loops (lm_ prefix).
 * Spec: docs/qwen2.md §2.5 (cache holds post-RoPE keys and biased values),
 * §2.12 (sampling, see sampler.h). Decoding with the cache gives the same logits as a full
 * lm_forward of the same tokens (tests/test_model.c checks it).
 *
 * A GRPO group of G completions of one prompt shares the prompt's prefill: the prompt is
 * run once into slot 0, its cache rows are copied into slots 1..G-1, and the G rows are
 * decoded as one batch (one sgemm per linear per step); finished rows drop out. */
#ifndef SRLM_GENERATE_H
#define SRLM_GENERATE_H

#include <stdint.h>
#include "model.h"
#include "sampler.h"

typedef struct {
    int L, n_slots, cap, Hkv, d;  /* cap = max tokens per slot */
    float *k, *v;                 /* [L, n_slots, Hkv, cap, d] each */
    int *len;                     /* [n_slots] tokens currently cached */
} lm_kvcache;

/* Allocate a cache of n_slots sequences of up to cap tokens: 2·L·Hkv·d·4 bytes per token
 * per slot (Qwen2.5-0.5B: 24 KB). Errors: SRLM_ENOMEM. */
int lm_kvcache_alloc(const lm_model *m, int n_slots, int cap, lm_kvcache **out);
void lm_kvcache_free(lm_kvcache *c);
/* Copy slot src's cached tokens into slot dst (len included). */
void lm_kvcache_copy(lm_kvcache *c, int dst, int src);

/* Run n tokens for each of the listed slots, appending them to those slots' caches
 * (positions continue from each slot's len). tokens [n_rows, n] (row i → slots[i]);
 * logits [n_rows, n, V] out for every new position, or only the last position
 * [n_rows, V] when last_only is 1; may be NULL. Decode = n 1. Errors: SRLM_EINVAL (cache
 * full, bad slot or id), SRLM_ENOMEM. */
int lm_step(lm_model *m, lm_kvcache *c, const int *slots, int n_rows, const int32_t *tokens,
            int n, float *logits, int last_only);

enum { LM_FINISH_STOP = 0, LM_FINISH_LENGTH = 1 };
typedef struct {
    int32_t *ids;        /* [n] generated ids (stop id included when finish = stop), owned */
    float *logprobs;     /* [n] log π_τ(id) — see sampler.h */
    float *sampled_logprobs; /* [n] log-prob in the processed distribution (sampler.h) */
    int n;
    int finish_reason;   /* LM_FINISH_STOP | LM_FINISH_LENGTH */
} lm_completion;
void lm_completion_free(lm_completion *c);
const char *lm_finish_reason_name(int r);   /* "stop" | "length" */

/* G completions of one prompt (a GRPO group) sharing the prompt's KV cache. Draws use
 * one srlm_rng seeded with s->seed; each step draws rows in order 0..G-1, so results are
 * deterministic for a seed on a given machine and thread count (sgemm summation order may
 * change the last bits of the logits with the thread count). out [G] filled (caller
 * frees each with lm_completion_free). prompt_len >= 1. Errors: SRLM_EINVAL, SRLM_ENOMEM. */
int lm_generate_group(lm_model *m, const int32_t *prompt, int prompt_len, int G,
                      const lm_sampling *s, lm_completion *out);

/* Several prompts at once (e.g. an evaluation batch or several GRPO groups): prompt p
 * (prompts[p], prompt_lens[p] >= 1) gets G completions out[p·G + g]; each prompt is
 * prefilled once and shared by its G rows; all unfinished rows of all prompts decode
 * together, one batched step per token. Draws: one srlm_rng seeded with s->seed, rows in
 * order p·G + g each step (lm_generate_group = this with n_prompts 1). KV cache memory:
 * n_prompts·G·(max prompt_len + max_new_tokens)·2·L·Hkv·d·4 bytes.
 * Errors: SRLM_EINVAL, SRLM_ENOMEM. */
int lm_generate_batch(lm_model *m, const int32_t *const *prompts, const int *prompt_lens,
                      int n_prompts, int G, const lm_sampling *s, lm_completion *out);

#endif
