/* lora.h — LoRA adapters for the Qwen2 model (prefix lora_; Hu et al. 2021, "LoRA:
 * Low-Rank Adaptation of Large Language Models"; tensor layout and file format of
 * Hugging Face PEFT). The forward hook lives in core/model.c (model.h lm_lora): every
 * targeted linear W [out, in] computes y = x Wᵀ + b + (alpha/r)·(x Aᵀ) Bᵀ with
 * A [r, in], B [out, r]; lora dropout is 0.
 *
 * Initialisation (PEFT init_lora_weights=True): A ~ kaiming-uniform(a=√5), i.e.
 * U(−1/√in, 1/√in); B = 0, so a fresh adapter leaves the logits unchanged.
 * Only adapter weights get gradients and optimizer state (trainer.c binds a gradient
 * buffer with lora_bind and runs the optimizer over lm_lora.data).
 */
#ifndef SRLM_LORA_H
#define SRLM_LORA_H

#include <stdint.h>

#include "model.h"

/* "q,k,v,o,gate,up,down" (any subset, comma separated; "all" = all seven; "attn" =
 * q,k,v,o; "mlp" = gate,up,down) → bitmask over LM_LORA_*. Error: SRLM_EINVAL. */
int lora_parse_targets(const char *s, unsigned *out);

/* Allocate adapters for every layer and every target in the bitmask (rank r >= 1).
 * *out owned → lora_free. Does not attach: set m->lora = *out before lm_acts_alloc.
 * Errors: SRLM_EINVAL, SRLM_ENOMEM. */
int lora_create(const lm_model *m, int rank, float alpha, unsigned targets, uint64_t seed,
                lm_lora **out);
void lora_free(lm_lora *lo);

/* A second lm_lora with the same layout over an external buffer of lo->n_params floats
 * (gradients). out->A / out->B are heap arrays → lora_unbind. */
int lora_bind(const lm_lora *lo, float *base, lm_lora *out);
void lora_unbind(lm_lora *b);

/* W += scale · B·A for every adapter (model weights modified in place). If backup is
 * non-NULL, *backup receives a heap copy of the original targeted weights for
 * lora_unmerge, which restores them bit-exactly and frees the copy. */
int lora_merge(lm_model *m, const lm_lora *lo, float **backup);
void lora_unmerge(lm_model *m, const lm_lora *lo, float *backup);

/* PEFT layout in dir (created): adapter_config.json (peft_type LORA, r, lora_alpha,
 * target_modules, lora_dropout 0, bias "none", task_type CAUSAL_LM,
 * base_model_name_or_path) and adapter_model.safetensors with tensors
 * base_model.model.model.layers.L.self_attn.q_proj.lora_A.weight [r, in] and
 * ...lora_B.weight [out, r] (mlp.gate_proj / up_proj / down_proj for the MLP).
 * Errors: SRLM_EIO. */
int lora_save_peft(const lm_model *m, const lm_lora *lo, const char *dir,
                   const char *base_model);
/* Read a PEFT adapter directory written by lora_save_peft (or PEFT itself, same names).
 * Errors: SRLM_ENOTFOUND, SRLM_EFORMAT, SRLM_EINVAL (shape / target mismatch). */
int lora_load_peft(const lm_model *m, const char *dir, lm_lora **out);

#endif
