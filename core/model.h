/* model.h — the Qwen2 / Llama decoder transformer (prefix lm_): configuration, parameter
 * layout, checkpoint load/save, random init, the batched training forward with its
 * activation cache, and the LoRA hooks. Spec: docs/qwen2.md §1–§4 (forward §2,
 * weights §4.1, memory §6.4). Generation (KV cache, sampling) is in generate.h/sampler.h.
 *
 * Notation (shapes in brackets, row-major, last index fastest):
 *   B batch, T sequence length, D hidden_size, H heads, Hkv KV heads, d head_dim = D/H,
 *   Hd = H·d (= D), Kd = Hkv·d, F intermediate_size, V vocab_size, L layers.
 *   A Linear weight W is stored [out, in] exactly as in safetensors; y = x Wᵀ + b.
 *
 * Parameters (llm.c style): ONE contiguous float allocation `lm_model.params` of
 * `lm_model.n_params` floats, described by a tensor table (`lm_model.tensors`, one entry
 * per HF tensor with its name, shape, offset and numel) and by a struct of pointers
 * (`lm_params`). Order inside the allocation (= table order):
 *     model.embed_tokens.weight                         [V, D]
 *     for l in 0..L-1: model.layers.l.
 *         input_layernorm.weight                        [D]
 *         self_attn.q_proj.weight [Hd, D], q_proj.bias [Hd]   (bias only for qwen2)
 *         self_attn.k_proj.weight [Kd, D], k_proj.bias [Kd]   (bias only for qwen2)
 *         self_attn.v_proj.weight [Kd, D], v_proj.bias [Kd]   (bias only for qwen2)
 *         self_attn.o_proj.weight                       [D, Hd]
 *         post_attention_layernorm.weight               [D]
 *         mlp.gate_proj.weight [F, D], mlp.up_proj.weight [F, D], mlp.down_proj.weight [D, F]
 *     model.norm.weight                                 [D]
 *     lm_head.weight                                    [V, D]   (ONLY when untied)
 * Tied embeddings (tie_word_embeddings = true) are ONE parameter: `lm_params.lm_head`
 * points at `lm_params.embed` and there is no lm_head row in the table. A gradient
 * buffer, AdamW m / v, etc. use the same layout: allocate n_params floats and bind a
 * second lm_params to it with lm_params_bind(); the optimizer can iterate one flat array.
 *
 * Threads: matrix products go through cblas_sgemm (OpenBLAS); elementwise loops use
 * OpenMP. lm_set_threads() sets both.
 */
#ifndef SRLM_MODEL_H
#define SRLM_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* ---- configuration (config.json, qwen2.md §1) ------------------------------------ */
#define LM_MAX_EOS 8
typedef struct {
    char model_type[16];        /* "qwen2" (q/k/v bias) or "llama" (no bias) */
    int vocab_size;             /* V */
    int hidden_size;            /* D */
    int intermediate_size;      /* F */
    int num_layers;             /* L  (num_hidden_layers) */
    int num_heads;              /* H  (num_attention_heads) */
    int num_kv_heads;           /* Hkv (num_key_value_heads; null → H) */
    int head_dim;               /* d = D / H (a "head_dim" field must equal D/H) */
    int max_position_embeddings;
    float rms_norm_eps;         /* ε inside the sqrt of RMSNorm */
    float rope_theta;           /* RoPE base θ (also accepted: rope_parameters.rope_theta) */
    float initializer_range;    /* std of normal init (srlm init) */
    int tie_word_embeddings;    /* 1: lm_head ≡ embed_tokens */
    int attn_bias;              /* 1 for qwen2 (q/k/v bias), 0 for llama (attention_bias) */
    int bos_token_id;           /* -1 if absent */
    int pad_token_id;           /* -1 if absent */
    int n_eos;                  /* eos ids from config.json (generation_config overrides) */
    int eos_token_ids[LM_MAX_EOS];
    char torch_dtype[16];       /* as read ("bfloat16", "float32"); informative only */
} lm_config;

/* Fill cfg with the Qwen2Config class defaults (§1.1) — callers then override fields. */
void lm_config_default(lm_config *cfg);
/* Parse config.json text. `path` is only used in error messages. Rejects with
 * SRLM_EUNSUPPORTED (message names file and field): model_type other than qwen2/llama,
 * hidden_act ≠ silu, rope_scaling non-null, use_sliding_window true, D % H ≠ 0,
 * H % Hkv ≠ 0, head_dim ≠ D/H, odd head_dim, attention_bias true for qwen2-incompatible
 * combos, mlp_bias true. SRLM_EFORMAT for invalid JSON or wrong field types. */
int lm_config_parse(const char *json_text, const char *path, lm_config *cfg);
int lm_config_load(const char *path, lm_config *cfg);
/* Serialize as an HF config.json (heap string, caller frees). */
char *lm_config_to_json(const lm_config *cfg);

/* ---- parameter layout -------------------------------------------------------------- */
typedef struct {
    float *ln1;          /* input_layernorm.weight          [D] */
    float *wq, *bq;      /* q_proj.weight [Hd, D], bias [Hd] (bq NULL for llama) */
    float *wk, *bk;      /* k_proj.weight [Kd, D], bias [Kd] (bk NULL for llama) */
    float *wv, *bv;      /* v_proj.weight [Kd, D], bias [Kd] (bv NULL for llama) */
    float *wo;           /* o_proj.weight                   [D, Hd] */
    float *ln2;          /* post_attention_layernorm.weight [D] */
    float *wg;           /* mlp.gate_proj.weight            [F, D] */
    float *wu;           /* mlp.up_proj.weight              [F, D] */
    float *wd;           /* mlp.down_proj.weight            [D, F] */
} lm_layer_params;

typedef struct {
    float *embed;             /* model.embed_tokens.weight [V, D] */
    lm_layer_params *layers;  /* [L] (heap array owned by this struct) */
    float *norm;              /* model.norm.weight [D] */
    float *lm_head;           /* [V, D]; == embed when tied */
} lm_params;

/* What a table entry is, so code can dispatch without parsing names. */
typedef enum {
    LM_T_EMBED = 0, LM_T_LN1, LM_T_WQ, LM_T_BQ, LM_T_WK, LM_T_BK, LM_T_WV, LM_T_BV, LM_T_WO,
    LM_T_LN2, LM_T_WG, LM_T_WU, LM_T_WD, LM_T_NORM, LM_T_LM_HEAD, LM_T_COUNT
} lm_tensor_kind;

typedef struct {
    char name[96];       /* HF name, e.g. "model.layers.3.self_attn.q_proj.weight" */
    int ndim;            /* 1 or 2 */
    int64_t shape[2];    /* [out, in] for weights, [n] for vectors */
    size_t offset;       /* in floats from the start of the parameter allocation */
    size_t numel;
    int layer;           /* 0..L-1, or -1 for embed / norm / lm_head */
    lm_tensor_kind kind;
} lm_tensor;

/* ---- LoRA (hooks; allocation, backward, merge and PEFT I/O live in trainer/) -------- */
/* Targets, as bits of lm_lora.targets: (1u << LM_LORA_Q) | ... */
enum { LM_LORA_Q = 0, LM_LORA_K, LM_LORA_V, LM_LORA_O, LM_LORA_GATE, LM_LORA_UP, LM_LORA_DOWN,
       LM_LORA_NTARGETS };
/* One adapter per targeted linear (W [out, in]): A [r, in], B [out, r] so that
 *     y = x Wᵀ + b + scale · (x Aᵀ) Bᵀ,      scale = alpha / r     (LoRA, Hu et al. 2021;
 *     PEFT's lora_A.weight = A [r, in], lora_B.weight = B [out, r]).
 * All A and B live in ONE float allocation `data` (n_params floats) so an optimizer can
 * iterate it flat; A[l * LM_LORA_NTARGETS + t] / B[...] point into it (NULL for targets
 * not in the bitmask). The train helper owns creation (lm_lora_* in trainer/), attaches it
 * with `model->lora = lora` (the model does not own or free it) and must allocate the
 * lm_acts AFTER attaching so the acts get the lora_xa buffers. The forward reads A/B and
 * saves x Aᵀ (lm_layer_acts.lora_xa) for the backward. */
typedef struct lm_lora {
    int rank;            /* r */
    float alpha;
    float scale;         /* alpha / r, used by the forward */
    unsigned targets;    /* bitmask over LM_LORA_* */
    int n_layers;        /* L */
    float *data;         /* all adapter weights */
    size_t n_params;
    float **A;           /* [L * LM_LORA_NTARGETS] → [r, in] or NULL */
    float **B;           /* [L * LM_LORA_NTARGETS] → [out, r] or NULL */
} lm_lora;

/* in/out dimensions of target t for config cfg (e.g. Q: in D, out Hd). */
void lm_lora_target_dims(const lm_config *cfg, int t, int *in, int *out);
/* PEFT module name of target t: "q_proj", "k_proj", ..., "down_proj". */
const char *lm_lora_target_name(int t);

/* ---- the model --------------------------------------------------------------------- */
typedef struct lm_model {
    lm_config cfg;
    float *params;          /* n_params floats, 64-byte aligned, owned */
    size_t n_params;
    lm_params p;            /* pointers into params */
    lm_tensor *tensors;     /* [n_tensors] table, owned */
    int n_tensors;
    lm_lora *lora;          /* optional adapters (NOT owned); NULL = none */
    float *rope_inv_freq;   /* [d/2] inv_freq[i] = 1/θ^(2i/d), float32 as HF (§2.4) */
    char *gen_config_json;  /* generation_config.json text as loaded (owned, may be NULL);
                               lm_model_save writes it back unless given another */
} lm_model;

/* Build the table and allocate zeroed parameters for cfg (no I/O). *out owned by caller,
 * free with lm_model_free. Errors: SRLM_ENOMEM. */
int lm_model_create(const lm_config *cfg, lm_model **out);
void lm_model_free(lm_model *m);
/* normal(0, initializer_range) for every weight matrix and the embedding, norms = 1,
 * biases = 0 (HF _init_weights); deterministic in seed (srlm_rng). */
void lm_model_init_random(lm_model *m, uint64_t seed);
/* Table lookup by HF name; "lm_head.weight" of a tied model resolves to the embedding
 * entry. NULL if unknown. */
const lm_tensor *lm_model_find_tensor(const lm_model *m, const char *name);

/* Bind a pointer struct to any buffer with the parameter layout (gradients, AdamW m/v):
 * base holds m->n_params floats. out->layers is a heap array: release with
 * lm_params_unbind(). When tied, out->lm_head == out->embed. Errors: SRLM_ENOMEM. */
int lm_params_bind(const lm_model *m, float *base, lm_params *out);
void lm_params_unbind(lm_params *p);

/* Load an HF model directory: config.json, model.safetensors or the sharded
 * model.safetensors.index.json (F32 / BF16 / F16 → f32). Every tensor of the table must
 * be present with the exact shape; lm_head.weight is optional when tied (if present it
 * is ignored). Errors name the file and the tensor: SRLM_ENOTFOUND (missing file or
 * tensor), SRLM_EFORMAT (truncated / bad header / bad offsets), SRLM_EUNSUPPORTED
 * (dtype, config field), SRLM_EINVAL (wrong shape). */
int lm_model_load(const char *dir, lm_model **out);

/* Save an HF model directory (created if needed): config.json, model.safetensors
 * (dtype "F32" or "BF16"; tied models omit lm_head.weight), generation_config.json
 * (from gen_config_json if non-NULL, else a minimal one with the eos ids), and copies of
 * the tokenizer files (tokenizer.json, tokenizer_config.json, vocab.json, merges.txt,
 * special_tokens_map.json, chat_template.jinja — whichever exist) from tokenizer_dir if
 * non-NULL. Each file is written atomically. */
int lm_model_save(const lm_model *m, const char *dir, const char *dtype,
                  const char *gen_config_json, const char *tokenizer_dir);

/* Process-wide thread count for OpenBLAS and OpenMP (n <= 0: leave as is). */
void lm_set_threads(int n);

/* ---- training forward and its activation cache ------------------------------------- */
/* Per-layer saved activations (N = B·T token rows, row r = b·T + t). Everything the
 * backward of §3 needs; kept minimal per §6.4:
 *   floats per token per layer = 4·D + 2 + Hd + 2·Kd + H + Hd + 2·F  (+ r per LoRA target)
 *   (Qwen2.5-0.5B: 15,376 floats = 61.5 KB; × 24 layers = 1.48 MB per token),
 *   + per token: 2·D + 1 (final h and y) (+ H·T per layer with LM_ACTS_PROBS).
 * Not stored (recompute in the backward): silu(gate) ⊙ up (input of down_proj) and, by
 * default, the attention probabilities: P[b,h,i,j] = exp(s_ij − lse[b,h,i]) where
 * s_ij = (q̃_i · k̃_j)/sqrt(d) for allowed keys (see lm_forward mask rule), 0 otherwise. */
typedef struct {
    float *h_in;     /* [N, D]   layer input (residual stream before input_layernorm) */
    float *rstd1;    /* [N]      1/rms of h_in (r of §2.2) */
    float *x1;       /* [N, D]   input_layernorm output (input of q/k/v) */
    float *q;        /* [N, Hd]  q after bias and RoPE (token-major; head h = cols h·d..) */
    float *k;        /* [N, Kd]  k after bias and RoPE */
    float *v;        /* [N, Kd]  v (with bias) */
    float *lse;      /* [B, H, T] log-sum-exp of the scaled, masked scores of each query row */
    float *probs;    /* [B, H, T, T] softmax probabilities, or NULL (LM_ACTS_PROBS) */
    float *att;      /* [N, Hd]  attention output, heads concatenated (input of o_proj) */
    float *h_mid;    /* [N, D]   h_in + o_proj(att) (input of post_attention_layernorm) */
    float *rstd2;    /* [N]      1/rms of h_mid */
    float *x2;       /* [N, D]   post_attention_layernorm output (input of gate/up) */
    float *gate;     /* [N, F]   gate_proj pre-activation g */
    float *up;       /* [N, F]   up_proj output u */
    float *lora_xa[LM_LORA_NTARGETS]; /* [N, r] x Aᵀ per LoRA target (NULL if not targeted) */
} lm_layer_acts;

enum { LM_ACTS_PROBS = 1 };  /* also store the full attention probabilities */

typedef struct {
    int B, T;                 /* capacity the buffers were sized for */
    int flags;
    lm_layer_acts *layers;    /* [L] */
    float *h_out;             /* [N, D] output of the last layer (input of model.norm) */
    float *rstd_final;        /* [N] */
    float *y;                 /* [N, D] final normalized y (input of the LM head) */
    float *mem;               /* one allocation holding all of the above (owned) */
    size_t n_floats;
    float *scratch;           /* forward scratch (not saved state) */
    size_t n_scratch;
    int lora_rank;            /* LoRA rank / targets the lora_xa buffers were sized for */
    unsigned lora_targets;    /* (lm_forward refuses a model whose m->lora differs) */
} lm_acts;

/* Bytes lm_acts_alloc would allocate for B·T tokens (planning; no allocation). */
size_t lm_acts_bytes(const lm_model *m, int B, int T, int flags);
/* Allocate the activation cache for batches up to [B, T] (uses m->lora at this time for
 * the lora_xa buffers). *out owned by caller → lm_acts_free. Errors: SRLM_ENOMEM. */
int lm_acts_alloc(const lm_model *m, int B, int T, int flags, lm_acts **out);
void lm_acts_free(lm_acts *a);

/* Batched forward over right-padded sequences (§2).
 *   tokens  [B, T] int32 ids in [0, V) (padding slots must hold a valid id, e.g. 0)
 *   lengths [B] real lengths (1..T), or NULL = all T. Positions are 0..T-1 per row.
 *   Mask (HF causal + padding mask): query i of row b may attend to key j iff
 *           j <= i AND j < lengths[b];
 *   so padded query rows (i >= len) attend to the whole real prefix; their outputs are
 *   well-defined but meaningless — give them zero loss weight.
 *   logits  [B, T, V] out, or NULL to stop after the final norm (acts->y holds y; use
 *           lm_logits() per chunk of rows to bound memory).
 *   acts    activation cache from lm_acts_alloc with capacity >= B·T rows (B ≤ acts->B is
 *           not required: only B·T ≤ acts->B·acts->T and T ≤ acts->T), or NULL for an
 *           inference-only forward (internal temporary buffers, nothing saved).
 * When m->lora is set, targeted linears add scale · (x Aᵀ) Bᵀ and save x Aᵀ.
 * Returns 0, SRLM_EINVAL (bad shape / token id out of range), SRLM_ENOMEM. */
int lm_forward(lm_model *m, const int32_t *tokens, const int *lengths, int B, int T,
               float *logits, lm_acts *acts);

/* LM head on n rows: logits [n, V] = y [n, D] · lm_headᵀ (sgemm). */
void lm_logits(const lm_model *m, const float *y, int n, float *logits);

/* log p(tokens[b, t] | tokens[b, <t]) for t = 1..len-1 into out [B, T]; out[b, 0] = 0 and
 * out[b, t >= len] = 0. Scores are logits / temperature (temperature <= 0 → 1), i.e. the
 * same distribution lm_generate reports in lm_completion.logprobs. Used for reference /
 * behaviour log-probabilities. Processes rows in chunks (memory O(T·V) per row).
 * Errors as lm_forward. */
int lm_sequence_logprobs(lm_model *m, const int32_t *tokens, const int *lengths, int B, int T,
                         float temperature, float *out);

#endif
