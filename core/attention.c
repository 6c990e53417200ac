/* attention.c — causal grouped-query attention (qwen2.md §2.5): scores (q̃·k̃)/sqrt(d),
 * float32 softmax over allowed keys, weighted sum of values. Query head h reads KV head
 * h / (H/Hkv). The matching backward (trainer/) recomputes P from q, k and lse. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "layers.h"
#include "util.h"

/* Rows of queries at or above which one (b, h) block goes through two sgemm calls
 * (S = Q Kᵀ, O = P V) instead of per-row dot products. */
#define ATT_GEMM_MIN_ROWS 32

/* One head's block with sgemm: n_q queries whose absolute positions are past..past+n_q-1
 * against keys 0..n_k-1 (n_k <= past + n_q). Query i sees key j iff j <= past + i and
 * j < limit. q rows stride ldq, k/v rows stride ldk, out rows stride ldo. S: scratch
 * [n_q, n_k]; on return S holds the probabilities (0 at masked keys). Queries go in
 * chunks of ATT_CHUNK rows so the masked upper triangle is mostly not computed. */
#define ATT_CHUNK 64
static void attend_block(float *out, size_t ldo, float *lse, float *S, const float *q, size_t ldq, const float *k,
                         const float *v, size_t ldk, int n_q, int n_k, int past, int limit, int d, float scale) {
    for (int c0 = 0; c0 < n_q; c0 += ATT_CHUNK) {
        int nq = n_q - c0 < ATT_CHUNK ? n_q - c0 : ATT_CHUNK;
        int kc = past + c0 + nq; /* keys any row of this chunk may see */
        if (kc > n_k) kc = n_k;
        if (kc > limit) kc = limit;
        float *Sc = S + (size_t)c0 * n_k;
        if (kc > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, kc, d, scale, q + (size_t)c0 * ldq, (int)ldq, k,
                        (int)ldk, 0.0f, Sc, n_k);
#pragma omp parallel for schedule(static) if (nq * kc > 16384)
        for (int ii = 0; ii < nq; ii++) {
            int i = c0 + ii;
            float *s = Sc + (size_t)ii * n_k;
            int nk = past + i + 1;
            if (nk > limit) nk = limit;
            if (nk > n_k) nk = n_k;
            if (nk <= 0) {
                memset(s, 0, sizeof(float) * (size_t)n_k);
                if (lse) lse[i] = -INFINITY;
                continue;
            }
            float mx = -INFINITY;
            for (int j = 0; j < nk; j++) mx = s[j] > mx ? s[j] : mx;
            float sum = 0.0f;
            for (int j = 0; j < nk; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < nk; j++) s[j] *= inv;
            for (int j = nk; j < n_k; j++) s[j] = 0.0f;
            if (lse) lse[i] = mx + logf(sum);
        }
        if (kc > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, d, kc, 1.0f, Sc, n_k, v, (int)ldk, 0.0f,
                        out + (size_t)c0 * ldo, (int)ldo);
        else
            for (int ii = 0; ii < nq; ii++) memset(out + (size_t)(c0 + ii) * ldo, 0, sizeof(float) * (size_t)d);
    }
}

/* One query row: s[j] = scale·(q·k_j) for j < n_keys, softmax, out = Σ P_j v_j.
 * k_j at k + j·kstride, v_j at v + j·vstride. Returns the log-sum-exp; writes P into s. */
static float attend_row(float *out, float *s, const float *q, const float *k, const float *v, int n_keys,
                        size_t kstride, size_t vstride, int d, float scale) {
    if (n_keys <= 0) {
        memset(out, 0, sizeof(float) * (size_t)d);
        return -INFINITY;
    }
    float mx = -INFINITY;
    for (int j = 0; j < n_keys; j++) {
        const float *kj = k + (size_t)j * kstride;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < d; c++) dot += q[c] * kj[c];
        s[j] = dot * scale;
        if (s[j] > mx) mx = s[j];
    }
    float sum = 0.0f;
    for (int j = 0; j < n_keys; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    float inv = 1.0f / sum;
    memset(out, 0, sizeof(float) * (size_t)d);
    for (int j = 0; j < n_keys; j++) {
        s[j] *= inv;
        const float *vj = v + (size_t)j * vstride;
        float p = s[j];
#pragma omp simd
        for (int c = 0; c < d; c++) out[c] += p * vj[c];
    }
    return mx + logf(sum);
}

void attention_forward(float *out, float *lse, float *probs, const float *q, const float *k, const float *v,
                       const int *lengths, int B, int T, int H, int Hkv, int d) {
    int G = H / Hkv;
    size_t qs = (size_t)H * d, ks = (size_t)Hkv * d;
    float scale = 1.0f / sqrtf((float)d);
    if (T >= ATT_GEMM_MIN_ROWS) {
        float *S = probs ? NULL : srlm_xmalloc(sizeof(float) * (size_t)T * T);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                int len = lengths ? lengths[b] : T;
                size_t row = (size_t)b * T;
                float *Sb = probs ? probs + ((size_t)b * H + h) * T * T : S;
                attend_block(out + row * qs + (size_t)h * d, qs, lse ? lse + ((size_t)b * H + h) * T : NULL, Sb,
                             q + row * qs + (size_t)h * d, qs, k + row * ks + (size_t)(h / G) * d,
                             v + row * ks + (size_t)(h / G) * d, ks, T, T, 0, len, d, scale);
            }
        free(S);
        return;
    }
#pragma omp parallel
    {
        float *s = srlm_xmalloc(sizeof(float) * (size_t)(T > 0 ? T : 1));
#pragma omp for collapse(3) schedule(dynamic, 8)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < T; i++) {
                    int len = lengths ? lengths[b] : T;
                    int nk = i + 1 < len ? i + 1 : len;
                    size_t row = (size_t)b * T + i;
                    int kh = h / G;
                    float l = attend_row(out + row * qs + (size_t)h * d, s, q + row * qs + (size_t)h * d,
                                         k + (size_t)b * T * ks + (size_t)kh * d,
                                         v + (size_t)b * T * ks + (size_t)kh * d, nk, ks, ks, d, scale);
                    if (lse) lse[((size_t)b * H + h) * T + i] = l;
                    if (probs) {
                        float *pr = probs + (((size_t)b * H + h) * T + i) * T;
                        if (nk > 0) memcpy(pr, s, sizeof(float) * (size_t)nk);
                        if (T > nk) memset(pr + (nk > 0 ? nk : 0), 0, sizeof(float) * (size_t)(T - (nk > 0 ? nk : 0)));
                    }
                }
        free(s);
    }
}

void attention_cached(float *out, const float *q, const float *kc, const float *vc, int n, int past, int S_cap,
                      int H, int Hkv, int d) {
    int G = H / Hkv;
    size_t qs = (size_t)H * d;
    float scale = 1.0f / sqrtf((float)d);
    int S = past + n;
    if (n >= ATT_GEMM_MIN_ROWS) {
        float *Sc = srlm_xmalloc(sizeof(float) * (size_t)n * S);
        for (int h = 0; h < H; h++) {
            int kh = h / G;
            attend_block(out + (size_t)h * d, qs, NULL, Sc, q + (size_t)h * d, qs, kc + (size_t)kh * S_cap * d,
                         vc + (size_t)kh * S_cap * d, (size_t)d, n, S, past, S, d, scale);
        }
        free(Sc);
        return;
    }
#pragma omp parallel if ((size_t)n * H * S > 4096)
    {
        float *s = srlm_xmalloc(sizeof(float) * (size_t)(S > 0 ? S : 1));
#pragma omp for collapse(2) schedule(dynamic, 4)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < n; i++) {
                int kh = h / G;
                const float *kb = kc + (size_t)kh * S_cap * d, *vb = vc + (size_t)kh * S_cap * d;
                attend_row(out + (size_t)i * qs + (size_t)h * d, s, q + (size_t)i * qs + (size_t)h * d, kb, vb,
                           past + i + 1, (size_t)d, (size_t)d, d, scale);
            }
        free(s);
    }
}
