/* generate.c — KV cache, prefill / incremental decode (lm_step) and group sampling
 * (qwen2.md §2.5 KV cache, §2.12 sampling). */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "util.h"

int lm_kvcache_alloc(const lm_model *m, int n_slots, int cap, lm_kvcache **out) {
    *out = NULL;
    if (n_slots <= 0 || cap <= 0) return srlm_set_error(SRLM_EINVAL, "kv cache: n_slots and cap must be positive");
    lm_kvcache *c = srlm_xcalloc(1, sizeof *c);
    c->L = m->cfg.num_layers;
    c->n_slots = n_slots;
    c->cap = cap;
    c->Hkv = m->cfg.num_kv_heads;
    c->d = m->cfg.head_dim;
    size_t n = (size_t)c->L * n_slots * c->Hkv * cap * c->d;
    c->k = malloc(n * sizeof(float));
    c->v = malloc(n * sizeof(float));
    c->len = calloc((size_t)n_slots, sizeof(int));
    if (!c->k || !c->v || !c->len) {
        lm_kvcache_free(c);
        return srlm_set_error(SRLM_ENOMEM, "cannot allocate a KV cache of %d slots × %d tokens (%.2f GB)", n_slots,
                              cap, 2.0 * n * 4 / 1e9);
    }
    *out = c;
    return 0;
}

void lm_kvcache_free(lm_kvcache *c) {
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c->len);
    free(c);
}

static size_t slot_base(const lm_kvcache *c, int l, int slot) {
    return (((size_t)l * c->n_slots + slot) * c->Hkv) * (size_t)c->cap * c->d;
}

void lm_kvcache_copy(lm_kvcache *c, int dst, int src) {
    if (dst == src) return;
    int n = c->len[src];
    for (int l = 0; l < c->L; l++)
        for (int h = 0; h < c->Hkv; h++) {
            size_t so = slot_base(c, l, src) + (size_t)h * c->cap * c->d;
            size_t dof = slot_base(c, l, dst) + (size_t)h * c->cap * c->d;
            memcpy(c->k + dof, c->k + so, sizeof(float) * (size_t)n * c->d);
            memcpy(c->v + dof, c->v + so, sizeof(float) * (size_t)n * c->d);
        }
    c->len[dst] = n;
}

/* Linear with the optional LoRA term (inference: x Aᵀ goes to scratch xa). */
static void step_linear(const lm_model *m, int l, int t, float *out, const float *x, const float *W, const float *b,
                        int N, int n_in, int n_out, float *xa) {
    linear_forward(out, x, W, b, N, n_in, n_out);
    const lm_lora *lo = m->lora;
    if (lo && (lo->targets & (1u << t)) && lo->A[l * LM_LORA_NTARGETS + t])
        lora_forward(out, xa, x, lo->A[l * LM_LORA_NTARGETS + t], lo->B[l * LM_LORA_NTARGETS + t], lo->scale, N,
                     n_in, lo->rank, n_out);
}

int lm_step(lm_model *m, lm_kvcache *c, const int *slots, int n_rows, const int32_t *tokens, int n, float *logits,
            int last_only) {
    const lm_config *cf = &m->cfg;
    if (n_rows <= 0 || n <= 0) return srlm_set_error(SRLM_EINVAL, "lm_step: n_rows and n must be positive");
    for (int i = 0; i < n_rows; i++) {
        if (slots[i] < 0 || slots[i] >= c->n_slots) return srlm_set_error(SRLM_EINVAL, "lm_step: bad slot %d", slots[i]);
        if (c->len[slots[i]] + n > c->cap)
            return srlm_set_error(SRLM_EINVAL, "lm_step: KV cache slot %d full (%d + %d > %d tokens)", slots[i],
                                  c->len[slots[i]], n, c->cap);
        for (int j = 0; j < n; j++)
            if (tokens[(size_t)i * n + j] < 0 || tokens[(size_t)i * n + j] >= cf->vocab_size)
                return srlm_set_error(SRLM_EINVAL, "lm_step: token id %d out of range", tokens[(size_t)i * n + j]);
    }
    int D = cf->hidden_size, F = cf->intermediate_size, H = cf->num_heads, Hkv = cf->num_kv_heads, d = cf->head_dim;
    int Hd = H * d, Kd = Hkv * d, L = cf->num_layers;
    size_t R = (size_t)n_rows * n;
    int rmax = m->lora ? m->lora->rank : 0;
    size_t nf = R * (3 * (size_t)D + 2 * (size_t)Hd + 2 * (size_t)Kd + 3 * (size_t)F + (size_t)rmax);
    /* every scratch row is written before it is read: no need to zero (prefill scratch
     * can be hundreds of MB) */
    float *buf = aligned_alloc(64, ((nf * sizeof(float)) + 63) & ~(size_t)63);
    int *pos = malloc(sizeof(int) * R);
    if (!buf || !pos) {
        free(buf);
        free(pos);
        return srlm_set_error(SRLM_ENOMEM, "lm_step: out of memory");
    }
    float *h = buf, *x = h + R * D, *tmp = x + R * D, *q = tmp + R * D, *att = q + R * Hd, *k = att + R * Hd,
          *v = k + R * Kd, *g = v + R * Kd, *u = g + R * F, *z = u + R * F, *xa = z + R * F;
    for (int i = 0; i < n_rows; i++)
        for (int j = 0; j < n; j++) pos[(size_t)i * n + j] = c->len[slots[i]] + j;
    embedding_forward(h, tokens, m->p.embed, (int)R, D);
    for (int l = 0; l < L; l++) {
        const lm_layer_params *w = &m->p.layers[l];
        rmsnorm_forward(x, NULL, h, w->ln1, (int)R, D, cf->rms_norm_eps);
        step_linear(m, l, LM_LORA_Q, q, x, w->wq, w->bq, (int)R, D, Hd, xa);
        step_linear(m, l, LM_LORA_K, k, x, w->wk, w->bk, (int)R, D, Kd, xa);
        step_linear(m, l, LM_LORA_V, v, x, w->wv, w->bv, (int)R, D, Kd, xa);
        rope_forward(q, pos, (int)R, H, d, m->rope_inv_freq);
        rope_forward(k, pos, (int)R, Hkv, d, m->rope_inv_freq);
        /* append k, v to the caches: [Hkv, cap, d] per slot */
        for (int i = 0; i < n_rows; i++) {
            size_t base = slot_base(c, l, slots[i]);
            int past = c->len[slots[i]];
            for (int j = 0; j < n; j++)
                for (int kh = 0; kh < Hkv; kh++) {
                    size_t dst = base + ((size_t)kh * c->cap + past + j) * d;
                    size_t src = ((size_t)i * n + j) * Kd + (size_t)kh * d;
                    memcpy(c->k + dst, k + src, sizeof(float) * (size_t)d);
                    memcpy(c->v + dst, v + src, sizeof(float) * (size_t)d);
                }
        }
        if (n_rows > 1 && n == 1) {
#pragma omp parallel for schedule(dynamic, 1)
            for (int i = 0; i < n_rows; i++) {
                size_t base = slot_base(c, l, slots[i]);
                attention_cached(att + (size_t)i * n * Hd, q + (size_t)i * n * Hd, c->k + base, c->v + base, n,
                                 c->len[slots[i]], c->cap, H, Hkv, d);
            }
        } else {
            for (int i = 0; i < n_rows; i++) {
                size_t base = slot_base(c, l, slots[i]);
                attention_cached(att + (size_t)i * n * Hd, q + (size_t)i * n * Hd, c->k + base, c->v + base, n,
                                 c->len[slots[i]], c->cap, H, Hkv, d);
            }
        }
        step_linear(m, l, LM_LORA_O, tmp, att, w->wo, NULL, (int)R, Hd, D, xa);
        residual_add(h, tmp, R * D);
        rmsnorm_forward(x, NULL, h, w->ln2, (int)R, D, cf->rms_norm_eps);
        step_linear(m, l, LM_LORA_GATE, g, x, w->wg, NULL, (int)R, D, F, xa);
        step_linear(m, l, LM_LORA_UP, u, x, w->wu, NULL, (int)R, D, F, xa);
        swiglu_forward(z, g, u, R * F);
        step_linear(m, l, LM_LORA_DOWN, tmp, z, w->wd, NULL, (int)R, F, D, xa);
        residual_add(h, tmp, R * D);
    }
    for (int i = 0; i < n_rows; i++) c->len[slots[i]] += n;
    if (logits) {
        if (last_only && n > 1) {
            for (int i = 0; i < n_rows; i++)
                memcpy(tmp + (size_t)i * D, h + ((size_t)i * n + n - 1) * D, sizeof(float) * (size_t)D);
            rmsnorm_forward(x, NULL, tmp, m->p.norm, n_rows, D, cf->rms_norm_eps);
            lm_logits(m, x, n_rows, logits);
        } else {
            rmsnorm_forward(x, NULL, h, m->p.norm, (int)R, D, cf->rms_norm_eps);
            lm_logits(m, x, (int)R, logits);
        }
    }
    free(buf);
    free(pos);
    return 0;
}

void lm_completion_free(lm_completion *c) {
    if (!c) return;
    free(c->ids);
    free(c->logprobs);
    free(c->sampled_logprobs);
    memset(c, 0, sizeof *c);
}

const char *lm_finish_reason_name(int r) { return r == LM_FINISH_STOP ? "stop" : "length"; }

static int is_stop(const lm_sampling *s, int32_t t) {
    for (int i = 0; i < s->n_stop; i++)
        if (s->stop_ids[i] == t) return 1;
    return 0;
}

int lm_generate_group(lm_model *m, const int32_t *prompt, int prompt_len, int G, const lm_sampling *s,
                      lm_completion *out) {
    return lm_generate_batch(m, &prompt, &prompt_len, 1, G, s, out);
}

int lm_generate_batch(lm_model *m, const int32_t *const *prompts, const int *prompt_lens, int n_prompts, int G,
                      const lm_sampling *s, lm_completion *out) {
    if (n_prompts < 1 || G < 1) return srlm_set_error(SRLM_EINVAL, "generate: need n_prompts >= 1 and G >= 1");
    int Pmax = 0;
    for (int p = 0; p < n_prompts; p++) {
        if (prompt_lens[p] < 1) return srlm_set_error(SRLM_EINVAL, "generate: prompt %d is empty", p);
        if (prompt_lens[p] > Pmax) Pmax = prompt_lens[p];
    }
    int rc = lm_sampling_validate(s);
    if (rc) return rc;
    int V = m->cfg.vocab_size, M = s->max_new_tokens, R = n_prompts * G;
    size_t hcap = (size_t)Pmax + M;
    memset(out, 0, sizeof(lm_completion) * (size_t)R);
    lm_kvcache *c = NULL;
    lm_sampler sp = {0};
    float *logits = NULL;
    int32_t *hist = NULL, *tok = NULL;
    int *slots = NULL, *active = NULL;
    if ((rc = lm_kvcache_alloc(m, R, Pmax + M, &c))) return rc;
    if ((rc = lm_sampler_init(&sp, V))) goto done;
    logits = srlm_alloc_floats((size_t)R * V);
    hist = malloc(sizeof(int32_t) * (size_t)R * hcap);
    tok = malloc(sizeof(int32_t) * (size_t)R);
    slots = malloc(sizeof(int) * (size_t)R);
    active = malloc(sizeof(int) * (size_t)R);
    if (!logits || !hist || !tok || !slots || !active) { rc = srlm_set_error(SRLM_ENOMEM, "generate: out of memory"); goto done; }
    for (int r = 0; r < R; r++) {
        int p = r / G;
        out[r].ids = malloc(sizeof(int32_t) * (size_t)M);
        out[r].logprobs = malloc(sizeof(float) * (size_t)M);
        out[r].sampled_logprobs = malloc(sizeof(float) * (size_t)M);
        if (!out[r].ids || !out[r].logprobs || !out[r].sampled_logprobs) {
            rc = srlm_set_error(SRLM_ENOMEM, "generate: out of memory");
            goto done;
        }
        memcpy(hist + (size_t)r * hcap, prompts[p], sizeof(int32_t) * (size_t)prompt_lens[p]);
        out[r].finish_reason = LM_FINISH_LENGTH;
    }
    /* prefill each prompt once into its first row's slot, share with the other G-1 */
    for (int p = 0; p < n_prompts; p++) {
        int s0 = p * G;
        if ((rc = lm_step(m, c, &s0, 1, prompts[p], prompt_lens[p], logits + (size_t)s0 * V, 1))) goto done;
        for (int g = 1; g < G; g++) {
            lm_kvcache_copy(c, s0 + g, s0);
            memcpy(logits + (size_t)(s0 + g) * V, logits + (size_t)s0 * V, sizeof(float) * (size_t)V);
        }
    }
    srlm_rng rng;
    srlm_rng_seed(&rng, s->seed);
    int n_active = R;
    for (int r = 0; r < R; r++) active[r] = r;
    /* logits row i belongs to row active[i] */
    for (int step = 0; step < M && n_active > 0; step++) {
        int w = 0;
        for (int i = 0; i < n_active; i++) {
            int r = active[i], pl = prompt_lens[r / G];
            int32_t *hr = hist + (size_t)r * hcap;
            float lp, slp;
            int32_t t = lm_sample(&sp, logits + (size_t)i * V, s, hr, pl + out[r].n, &rng, &lp, &slp);
            if (!isfinite(lp)) { /* NaN / Inf logits: weights that overflow; never emit garbage silently */
                rc = srlm_set_error(SRLM_EINVAL, "generation: non-finite logits at new token %d of row %d "
                                                 "(the model's weights overflow the forward pass)", out[r].n, r);
                goto done;
            }
            hr[pl + out[r].n] = t;
            out[r].ids[out[r].n] = t;
            out[r].logprobs[out[r].n] = lp;
            out[r].sampled_logprobs[out[r].n] = slp;
            out[r].n++;
            if (is_stop(s, t)) out[r].finish_reason = LM_FINISH_STOP;
            else if (out[r].n < M) { slots[w] = r; tok[w] = t; w++; }
        }
        n_active = w;
        for (int i = 0; i < n_active; i++) active[i] = slots[i];
        if (n_active > 0 && (rc = lm_step(m, c, slots, n_active, tok, 1, logits, 1))) goto done;
    }
done:
    if (rc)
        for (int r = 0; r < R; r++) lm_completion_free(&out[r]);
    lm_kvcache_free(c);
    lm_sampler_free(&sp);
    free(logits);
    free(hist);
    free(tok);
    free(slots);
    free(active);
    return rc;
}
