/* layers.h — forward kernels of the transformer layers (llm.c style: plain functions,
 * one file per layer family: rmsnorm.c, rope.c, attention.c, mlp.c, linear.c).
 * The matching *_backward functions live in trainer/. N = number of token rows; all
 * buffers row-major; `out` buffers are overwritten unless stated otherwise.
 * Spec: docs/qwen2.md §2. */
#ifndef SRLM_LAYERS_H
#define SRLM_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* RMSNorm (§2.2): out[r] = g ⊙ (x[r] · rstd[r]), rstd[r] = 1/sqrt(mean(x[r]²) + eps).
 * out [N, D], rstd [N] (saved for backward; may be NULL), x [N, D], g [D]. */
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *g, int N, int D,
                     float eps);

/* RoPE half-split / NEOX (§2.4), in place on x [N, nheads·d]: for every row r and head,
 * pairs (i, i + d/2) rotate by angle pos[r]·inv_freq[i] (angle product and cos/sin in
 * float32, as HF). inv_freq [d/2]. */
void rope_forward(float *x, const int *pos, int N, int nheads, int d, const float *inv_freq);
/* inv_freq[i] = 1 / theta^((2i)/d), i = 0..d/2-1 (float32 arithmetic). */
void rope_inv_freq(float *inv_freq, int d, float theta);

/* Linear (§2.3): out [N, n_out] = x [N, n_in] · Wᵀ (W [n_out, n_in]) + b (b [n_out] or
 * NULL). One cblas_sgemm. */
void linear_forward(float *out, const float *x, const float *W, const float *b, int N,
                    int n_in, int n_out);
/* LoRA term (added): xa [N, r] = x Aᵀ (A [r, n_in]); out [N, n_out] += scale · xa Bᵀ
 * (B [n_out, r]). xa is saved for the backward. */
void lora_forward(float *out, float *xa, const float *x, const float *A, const float *B,
                  float scale, int N, int n_in, int r, int n_out);
/* Embedding lookup (§2.1): out [N, D] = E[tokens[r]]. */
void embedding_forward(float *out, const int32_t *tokens, const float *E, int N, int D);
/* out [N, n] += x [N, n] (residual add). */
void residual_add(float *out, const float *x, size_t n);

/* SwiGLU (§2.7): z [n] = silu(g) ⊙ u, silu(g) = g / (1 + exp(-g)). */
void swiglu_forward(float *z, const float *g, const float *u, size_t n);

/* Causal grouped-query attention over right-padded batches (§2.5), token-major layout:
 *   q [B·T, H·d] (rotated), k, v [B·T, Hkv·d] (k rotated); query head h uses KV head
 *   h / (H/Hkv). Key j is allowed for query i of row b iff j <= i && j < lengths[b]
 *   (lengths NULL → T). Scores (q·k)/sqrt(d), softmax in float32.
 *   out   [B·T, H·d]  attention output (heads concatenated)
 *   lse   [B, H, T]   log-sum-exp of the allowed scaled scores per query (may be NULL);
 *                     -INFINITY and out = 0 for a row with no allowed key (len 0).
 *   probs [B, H, T, T] softmax probabilities, 0 at masked keys (may be NULL). */
void attention_forward(float *out, float *lse, float *probs, const float *q, const float *k,
                       const float *v, const int *lengths, int B, int T, int H, int Hkv, int d);

/* Attention of n new query rows against a KV cache (decode / prefill):
 *   q [n, H·d] rotated queries of the new tokens at positions past+0..past+n-1,
 *   kc, vc [Hkv, S_cap, d] one sequence's cache already holding past+n keys/values
 *   (post-RoPE keys, §2.5). out [n, H·d]. Query i attends keys 0..past+i. */
void attention_cached(float *out, const float *q, const float *kc, const float *vc, int n,
                      int past, int S_cap, int H, int Hkv, int d);

#endif
