/* backward.c — backward kernels of the decoder layers and the whole-model backward
 * (backward.h; formulas of qwen2.md §3). Gradients accumulate (+=). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backward.h"
#include "layers.h"
#include "util.h"

void rmsnorm_backward(float *dx, float *dg, const float *dy, const float *x, const float *g,
                      const float *rstd, int N, int D) {
#pragma omp parallel for schedule(static) if (N > 4)
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * D, *dyr = dy + (size_t)r * D;
        float *dxr = dx + (size_t)r * D;
        float s = rstd[r], dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < D; c++) dot += dyr[c] * g[c] * xr[c] * s;
        float mean = dot / (float)D;
#pragma omp simd
        for (int c = 0; c < D; c++) {
            float n = xr[c] * s;
            dxr[c] += s * (dyr[c] * g[c] - n * mean);
        }
    }
    if (dg) {
        /* column sums: parallel over columns to avoid write races */
#pragma omp parallel for schedule(static) if (N * D > 65536)
        for (int c0 = 0; c0 < D; c0 += 64) {
            int c1 = c0 + 64 < D ? c0 + 64 : D;
            float acc[64] = {0};
            for (int r = 0; r < N; r++) {
                const float *xr = x + (size_t)r * D, *dyr = dy + (size_t)r * D;
                float s = rstd[r];
                for (int c = c0; c < c1; c++) acc[c - c0] += dyr[c] * xr[c] * s;
            }
            for (int c = c0; c < c1; c++) dg[c] += acc[c - c0];
        }
    }
}

void linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                     const float *W, int N, int n_in, int n_out) {
    if (N <= 0) return;
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, n_in, n_out, 1.0f, dy, n_out, W,
                    n_in, 1.0f, dx, n_in);
    if (dW)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, n_in, N, 1.0f, dy, n_out, x,
                    n_in, 1.0f, dW, n_in);
    if (db) {
#pragma omp parallel for schedule(static) if ((size_t)N * n_out > 65536)
        for (int o0 = 0; o0 < n_out; o0 += 64) {
            int o1 = o0 + 64 < n_out ? o0 + 64 : n_out;
            for (int r = 0; r < N; r++) {
                const float *d = dy + (size_t)r * n_out;
                for (int o = o0; o < o1; o++) db[o] += d[o];
            }
        }
    }
}

void lora_backward(float *dx, float *dA, float *dB, float *work, const float *dy,
                   const float *x, const float *xa, const float *A, const float *B,
                   float scale, int N, int n_in, int r, int n_out) {
    if (N <= 0) return;
    if (dB)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, r, N, scale, dy, n_out, xa, r,
                    1.0f, dB, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, n_out, scale, dy, n_out, B, r,
                0.0f, work, r);
    if (dA)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, n_in, N, 1.0f, work, r, x, n_in,
                    1.0f, dA, n_in);
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, n_in, r, 1.0f, work, r, A, n_in,
                    1.0f, dx, n_in);
}

void swiglu_backward(float *dg, float *du, const float *dz, const float *g, const float *u,
                     size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + expf(-g[i]));
        float s = g[i] * sg;
        du[i] = dz[i] * s;
        dg[i] = dz[i] * u[i] * (sg + s * (1.0f - sg));
    }
}

/* Query rows are processed in blocks of ATT_BLOCK against the causal key prefix; each
 * block is five sgemms (S, dP, dQ, dK, dV) and one elementwise pass. */
#define ATT_BLOCK 128

void attention_backward(float *dq, float *dk, float *dv, float *work, const float *dout,
                        const float *q, const float *k, const float *v, const float *out,
                        const float *lse, const int *lengths, int B, int T, int H, int Hkv,
                        int d) {
    int G = H / Hkv;
    int qs = H * d, ks = Hkv * d;
    float scale = 1.0f / sqrtf((float)d);
    float *S = work, *dP = work + (size_t)ATT_BLOCK * T;
    for (int b = 0; b < B; b++) {
        int len = lengths ? lengths[b] : T;
        for (int h = 0; h < H; h++) {
            int kh = h / G;
            size_t r0 = (size_t)b * T;
            const float *Q = q + r0 * qs + (size_t)h * d, *O = out + r0 * qs + (size_t)h * d;
            const float *dO = dout + r0 * qs + (size_t)h * d;
            const float *K = k + r0 * ks + (size_t)kh * d, *Vv = v + r0 * ks + (size_t)kh * d;
            float *dQ = dq + r0 * qs + (size_t)h * d;
            float *dK = dk + r0 * ks + (size_t)kh * d, *dV = dv + r0 * ks + (size_t)kh * d;
            const float *lrow = lse + ((size_t)b * H + h) * T;
            for (int i0 = 0; i0 < len; i0 += ATT_BLOCK) {
                int bs = len - i0 < ATT_BLOCK ? len - i0 : ATT_BLOCK;
                int nk = i0 + bs; /* keys 0 .. nk-1 (causal prefix of the block's last row) */
                /* S = Q_blk Kᵀ, dP = dO_blk Vᵀ   [bs, nk] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bs, nk, d, 1.0f, Q + (size_t)i0 * qs, qs, K,
                            ks, 0.0f, S, nk);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bs, nk, d, 1.0f, dO + (size_t)i0 * qs, qs,
                            Vv, ks, 0.0f, dP, nk);
#pragma omp parallel for schedule(static) if (bs * nk > 16384)
                for (int ii = 0; ii < bs; ii++) {
                    int i = i0 + ii;
                    const float *oi = O + (size_t)i * qs, *doi = dO + (size_t)i * qs;
                    float delta = 0.0f;
                    for (int c = 0; c < d; c++) delta += doi[c] * oi[c];
                    float l = lrow[i];
                    float *sr = S + (size_t)ii * nk, *dr = dP + (size_t)ii * nk;
                    for (int j = 0; j <= i; j++) {
                        float p = expf(sr[j] * scale - l);
                        sr[j] = p;                              /* P */
                        dr[j] = p * (dr[j] - delta) * scale;    /* dS (scaled) */
                    }
                    for (int j = i + 1; j < nk; j++) sr[j] = dr[j] = 0.0f;
                }
                /* dQ_blk += dS K;  dK += dSᵀ Q_blk;  dV += Pᵀ dO_blk  (GQA: heads of a group
                 * accumulate into the same KV rows) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bs, d, nk, 1.0f, dP, nk, K, ks, 1.0f,
                            dQ + (size_t)i0 * qs, qs);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, d, bs, 1.0f, dP, nk, Q + (size_t)i0 * qs,
                            qs, 1.0f, dK, ks);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, d, bs, 1.0f, S, nk, dO + (size_t)i0 * qs,
                            qs, 1.0f, dV, ks);
            }
        }
    }
}

void embedding_backward(float *dE, const float *dh, const int32_t *tokens, int N, int D) {
    /* parallel over column blocks: rows with the same token never race */
#pragma omp parallel for schedule(static) if ((size_t)N * D > 65536)
    for (int c0 = 0; c0 < D; c0 += 64) {
        int c1 = c0 + 64 < D ? c0 + 64 : D;
        for (int r = 0; r < N; r++) {
            float *e = dE + (size_t)tokens[r] * D;
            const float *g = dh + (size_t)r * D;
            for (int c = c0; c < c1; c++) e[c] += g[c];
        }
    }
}

/* Linear (+ LoRA target t of layer l) backward. */
static void lin_bw(const lm_model *m, int l, int t, float *dx, float *dW, float *db,
                   lm_lora *dlora, float *work, const float *dy, const float *x, const float *W,
                   const float *xa, int N, int n_in, int n_out) {
    linear_backward(dx, dW, db, dy, x, W, N, n_in, n_out);
    const lm_lora *lo = m->lora;
    int i = l * LM_LORA_NTARGETS + t;
    if (lo && (lo->targets & (1u << t)) && lo->A[i] && xa)
        lora_backward(dx, dlora ? dlora->A[i] : NULL, dlora ? dlora->B[i] : NULL, work, dy, x, xa,
                      lo->A[i], lo->B[i], lo->scale, N, n_in, lo->rank, n_out);
}

int lm_backward(const lm_model *m, const lm_acts *acts, const int32_t *tokens,
                const int *lengths, int B, int T, float *dy, lm_params *grads,
                lm_lora *dlora) {
    const lm_config *c = &m->cfg;
    size_t N = (size_t)B * T;
    if (B <= 0 || T <= 0 || T > acts->T || N > (size_t)acts->B * acts->T)
        return srlm_set_error(SRLM_EINVAL, "lm_backward: batch [%d, %d] does not fit the activations [%d, %d]",
                              B, T, acts->B, acts->T);
    int D = c->hidden_size, F = c->intermediate_size, H = c->num_heads, Hkv = c->num_kv_heads;
    int d = c->head_dim, Hd = H * d, Kd = Hkv * d, L = c->num_layers;
    int r = m->lora ? m->lora->rank : 0;
    size_t ws = N * (2 * (size_t)D + 2 * (size_t)Hd + 2 * (size_t)Kd + 3 * (size_t)F) +
                2 * (size_t)ATT_BLOCK * T + N * (size_t)(r > 0 ? r : 1);
    float *w = srlm_alloc_floats(ws);
    int *pos = malloc(sizeof(int) * N);
    if (!w || !pos) {
        free(w);
        free(pos);
        return srlm_set_error(SRLM_ENOMEM, "lm_backward: workspace of %.2f GB", ws * 4.0 / 1e9);
    }
    for (size_t i = 0; i < N; i++) pos[i] = (int)(i % (size_t)T);
    float *dh = w, *dx = dh + N * D, *dq = dx + N * D, *datt = dq + N * Hd;
    float *dk = datt + N * Hd, *dv = dk + N * Kd, *z = dv + N * Kd, *dz = z + N * F;
    float *dgu = dz + N * F, *attw = dgu + N * F, *lw = attw + 2 * (size_t)ATT_BLOCK * T;
    float *dgate = dz, *dup = dgu; /* dz is dead once swiglu_backward has read it: see below */
    lm_params *g = grads;

    /* final norm */
    memset(dh, 0, sizeof(float) * N * D);
    rmsnorm_backward(dh, g ? g->norm : NULL, dy, acts->h_out, m->p.norm, acts->rstd_final, (int)N, D);
    for (int l = L - 1; l >= 0; l--) {
        const lm_layer_acts *a = &acts->layers[l];
        const lm_layer_params *p = &m->p.layers[l];
        lm_layer_params *gl = g ? &g->layers[l] : NULL;
        /* MLP: h_next = h_mid + (silu(gate) ⊙ up) Wdᵀ;  dh is ∂/∂h_next */
        swiglu_forward(z, a->gate, a->up, N * F);
        memset(dz, 0, sizeof(float) * N * F);
        lin_bw(m, l, LM_LORA_DOWN, dz, gl ? gl->wd : NULL, NULL, dlora, lw, dh, z, p->wd,
               a->lora_xa[LM_LORA_DOWN], (int)N, F, D);
        /* dgate overwrites dz in place (elementwise: each dz[i] is read before dg[i] is
         * written), dup goes to its own buffer */
        swiglu_backward(dgate, dup, dz, a->gate, a->up, N * F);
        memset(dx, 0, sizeof(float) * N * D);
        lin_bw(m, l, LM_LORA_GATE, dx, gl ? gl->wg : NULL, NULL, dlora, lw, dgate, a->x2, p->wg,
               a->lora_xa[LM_LORA_GATE], (int)N, D, F);
        lin_bw(m, l, LM_LORA_UP, dx, gl ? gl->wu : NULL, NULL, dlora, lw, dup, a->x2, p->wu,
               a->lora_xa[LM_LORA_UP], (int)N, D, F);
        rmsnorm_backward(dh, gl ? gl->ln2 : NULL, dx, a->h_mid, p->ln2, a->rstd2, (int)N, D);
        /* attention: h_mid = h_in + att Woᵀ;  dh is now ∂/∂h_mid */
        memset(datt, 0, sizeof(float) * N * Hd);
        lin_bw(m, l, LM_LORA_O, datt, gl ? gl->wo : NULL, NULL, dlora, lw, dh, a->att, p->wo,
               a->lora_xa[LM_LORA_O], (int)N, Hd, D);
        memset(dq, 0, sizeof(float) * N * Hd);
        memset(dk, 0, sizeof(float) * N * Kd);
        memset(dv, 0, sizeof(float) * N * Kd);
        attention_backward(dq, dk, dv, attw, datt, a->q, a->k, a->v, a->att, a->lse, lengths, B, T,
                           H, Hkv, d);
        rope_backward(dq, pos, (int)N, H, d, m->rope_inv_freq);
        rope_backward(dk, pos, (int)N, Hkv, d, m->rope_inv_freq);
        memset(dx, 0, sizeof(float) * N * D);
        lin_bw(m, l, LM_LORA_Q, dx, gl ? gl->wq : NULL, gl ? gl->bq : NULL, dlora, lw, dq, a->x1,
               p->wq, a->lora_xa[LM_LORA_Q], (int)N, D, Hd);
        lin_bw(m, l, LM_LORA_K, dx, gl ? gl->wk : NULL, gl ? gl->bk : NULL, dlora, lw, dk, a->x1,
               p->wk, a->lora_xa[LM_LORA_K], (int)N, D, Kd);
        lin_bw(m, l, LM_LORA_V, dx, gl ? gl->wv : NULL, gl ? gl->bv : NULL, dlora, lw, dv, a->x1,
               p->wv, a->lora_xa[LM_LORA_V], (int)N, D, Kd);
        rmsnorm_backward(dh, gl ? gl->ln1 : NULL, dx, a->h_in, p->ln1, a->rstd1, (int)N, D);
    }
    if (g) embedding_backward(g->embed, dh, tokens, (int)N, D);
    free(w);
    free(pos);
    return 0;
}

int lm_head_backward(const lm_model *m, const float *y, int N, const int *rows, int n_rows,
                     int chunk, lm_head_loss_fn fn, void *ctx, float *dy, float *dhead,
                     double *loss) {
    int D = m->cfg.hidden_size, V = m->cfg.vocab_size;
    if (chunk <= 0) { /* auto: logits chunk of at most 2^25 floats (128 MB), >= 64 rows */
        chunk = (int)(((size_t)1 << 25) / (size_t)V);
        if (chunk < 64) chunk = 64;
    }
    if (dy) memset(dy, 0, sizeof(float) * (size_t)N * D);
    *loss = 0;
    if (n_rows <= 0) return 0;
    if (chunk > n_rows) chunk = n_rows;
    float *yc = srlm_alloc_floats((size_t)chunk * D * 2);
    float *lg = srlm_alloc_floats((size_t)chunk * V);
    if (!yc || !lg) {
        free(yc);
        free(lg);
        return srlm_set_error(SRLM_ENOMEM, "LM head: %d-row logits chunk", chunk);
    }
    float *dyc = yc + (size_t)chunk * D;
    for (int r0 = 0; r0 < n_rows; r0 += chunk) {
        int n = n_rows - r0 < chunk ? n_rows - r0 : chunk;
        for (int i = 0; i < n; i++) memcpy(yc + (size_t)i * D, y + (size_t)rows[r0 + i] * D, sizeof(float) * D);
        lm_logits(m, yc, n, lg);
        *loss += fn(ctx, rows + r0, n, lg, dy != NULL);
        if (!dy) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, V, 1.0f, lg, V, m->p.lm_head, D,
                    0.0f, dyc, D);
        for (int i = 0; i < n; i++) memcpy(dy + (size_t)rows[r0 + i] * D, dyc + (size_t)i * D, sizeof(float) * D);
        if (dhead)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, D, n, 1.0f, lg, V, yc, D, 1.0f,
                        dhead, D);
    }
    free(yc);
    free(lg);
    return 0;
}
