/* backward.h — backward pass of the Qwen2 / Llama decoder (qwen2.md §3), llm.c style:
 * one *_backward kernel per forward kernel of core/layers.h, and lm_backward() for the
 * whole model, which consumes the activation cache that lm_forward() filled.
 *
 * Conventions: N = token rows (B·T, row r = b·T + t), row-major buffers. Every gradient
 * output ACCUMULATES (+=), so a tensor used twice (the tied embedding: LM head and token
 * lookup; the residual stream) needs no special case, and gradient accumulation over
 * micro-batches is just calling the backward again. Zero the gradient buffers yourself at
 * the start of an optimizer step.
 *
 * Activation memory (planned, qwen2.md §6.4): lm_forward saves per layer only what these
 * kernels read (h_in, rstd1, x1, q̃, k̃, v, lse, att, h_mid, rstd2, x2, gate, up and the
 * LoRA x·Aᵀ): 4D + 2 + 2Hd + 2Kd + H + 2F floats per token per layer (0.5B: 61.5 KB).
 * The SwiGLU product silu(g)⊙u and the attention probabilities are recomputed here (P from
 * q̃, k̃ and the saved log-sum-exp, flash-attention style), so no [T, T] matrix is stored.
 * lm_backward adds a transient workspace of N·(2D + 2Hd + 2Kd + 3F + r) + 256·T floats.
 * Logits are never materialised for the whole batch: the trainer runs the LM head and the
 * loss in chunks of rows (trainer.c), producing dy = ∂loss/∂y for lm_backward.
 */
#ifndef SRLM_BACKWARD_H
#define SRLM_BACKWARD_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* RMSNorm (§3.3), x [N, D], g [D], rstd [N] saved by the forward, dy [N, D]:
 *   n = x·rstd,  dn = dy ⊙ g,  dg += Σ_r dy ⊙ n,  dx += rstd·(dn − n·mean(dn ⊙ n)).
 * dg may be NULL (frozen). */
void rmsnorm_backward(float *dx, float *dg, const float *dy, const float *x, const float *g,
                      const float *rstd, int N, int D);

/* Linear y = x Wᵀ + b (§3.2), x [N, n_in], W [n_out, n_in], dy [N, n_out]:
 *   dx += dy·W,  dW += dyᵀ·x,  db += Σ_r dy.   Any output may be NULL (skipped). */
void linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                     const float *W, int N, int n_in, int n_out);

/* LoRA term y += s·(x Aᵀ) Bᵀ with xa = x Aᵀ [N, r] saved (Hu et al. 2021):
 *   dB += s·dyᵀ·xa [n_out, r],  dxa = s·dy·B [N, r],  dA += dxaᵀ·x [r, n_in],
 *   dx += dxa·A.   work: [N, r] scratch. dx may be NULL. */
void lora_backward(float *dx, float *dA, float *dB, float *work, const float *dy,
                   const float *x, const float *xa, const float *A, const float *B,
                   float scale, int N, int n_in, int r, int n_out);

/* SwiGLU z = silu(g) ⊙ u (§3.5): dg = dz ⊙ u ⊙ silu'(g), du = dz ⊙ silu(g) (written,
 * not accumulated). silu'(g) = σ(g)(1 + g(1 − σ(g))). n elements. */
void swiglu_backward(float *dg, float *du, const float *dz, const float *g, const float *u,
                     size_t n);

/* RoPE (§3.7): in place on dx [N, nheads·d], rotation of each pair (i, i+d/2) by −φ.
 * Defined in core/rope.c, sharing the rotation with rope_forward. */
void rope_backward(float *dx, const int *pos, int N, int nheads, int d, const float *inv_freq);

/* Causal GQA attention (§3.6), same layout and mask as attention_forward:
 *   q [N, H·d], k, v [N, Hkv·d], out [N, H·d] and lse [B, H, T] from the forward,
 *   dout [N, H·d] → dq [N, H·d], dk, dv [N, Hkv·d] (accumulated). P is recomputed from
 *   q, k, lse. The KV-head gradients are the sums over the G = H/Hkv query heads of the
 *   group (repeat_kv backward). Query rows i >= lengths[b] are skipped (they must carry
 *   zero gradient: padding). Query rows go in blocks of 128 against their causal key
 *   prefix: five sgemms per block and head. work: 2·128·T floats. */
void attention_backward(float *dq, float *dk, float *dv, float *work, const float *dout,
                        const float *q, const float *k, const float *v, const float *out,
                        const float *lse, const int *lengths, int B, int T, int H, int Hkv,
                        int d);

/* Embedding (§3.8): dE[tokens[r]] += dh[r] for r < N (scatter-add; repeats accumulate). */
void embedding_backward(float *dE, const float *dh, const int32_t *tokens, int N, int D);

/* Whole-model backward after lm_forward(m, tokens, lengths, B, T, ..., acts).
 *   dy     [B·T, D] ∂loss/∂y at the final-norm output (from the LM head / loss; rows of
 *          padding must be 0). Consumed: overwritten as scratch.
 *   grads  parameter gradients bound with lm_params_bind to an n_params buffer (+=), or
 *          NULL when the base is frozen (LoRA): base dW are then not computed at all.
 *   dlora  adapter gradients with the layout of m->lora (dlora->A / dlora->B point into a
 *          buffer of m->lora->n_params floats) (+=), or NULL.
 * The tied embedding receives only its lookup gradient here; the caller adds the LM-head
 * part (dE += dlogitsᵀ·y) — see trainer.c. Errors: SRLM_ENOMEM, SRLM_EINVAL. */
int lm_backward(const lm_model *m, const lm_acts *acts, const int32_t *tokens,
                const int *lengths, int B, int T, float *dy, lm_params *grads,
                lm_lora *dlora);

/* LM head + loss over a selection of rows, in chunks of `chunk` rows (bounds the logits
 * memory to chunk·V floats; chunk <= 0 = auto: 2^25 / V rows, at least 64, so the dhead
 * product, which rewrites all of dhead [V, D] per chunk, stays efficient).
 * For each chunk: gather y rows → logits = y·lm_headᵀ → fn(ctx, rows, n, logits)
 * computes the chunk's loss contribution and overwrites logits
 * with ∂loss/∂logits → dy[rows] = dlogits·lm_head (other rows of dy are zeroed) and
 * dhead += dlogitsᵀ·y (dhead NULL = frozen head).
 *   y [N, D] (acts->y), rows [n_rows] distinct row indices, dy [N, D] written (or NULL:
 *   loss only — fn is then called with want_grad 0 and need not write gradients).
 * Returns 0 and *loss = Σ of fn's returns; SRLM_ENOMEM. */
typedef double (*lm_head_loss_fn)(void *ctx, const int *rows, int n, float *logits,
                                  int want_grad);
int lm_head_backward(const lm_model *m, const float *y, int N, const int *rows, int n_rows,
                     int chunk, lm_head_loss_fn fn, void *ctx, float *dy, float *dhead,
                     double *loss);

#endif
