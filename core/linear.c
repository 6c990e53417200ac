/* linear.c — Linear (y = x Wᵀ + b), the LoRA term, embedding lookup and residual add
 * (qwen2.md §2.1, §2.3). Matrix products are one cblas_sgemm each. */
#include <cblas.h>
#include <string.h>

#include "layers.h"

void linear_forward(float *out, const float *x, const float *W, const float *b, int N, int n_in, int n_out) {
    if (N == 1) { /* one row (decode): matrix-vector product */
        if (b) memcpy(out, b, sizeof(float) * (size_t)n_out);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n_out, n_in, 1.0f, W, n_in, x, 1, b ? 1.0f : 0.0f, out, 1);
        return;
    }
    if (N <= 16) {
        /* a few rows (batched decode): OpenBLAS sgemm is slow at small M, so stream each
         * weight row once and dot it with all N inputs (memory-bound, like sgemv). */
#pragma omp parallel for schedule(static)
        for (int o = 0; o < n_out; o++) {
            const float *w = W + (size_t)o * n_in;
            float bo = b ? b[o] : 0.0f;
            int r = 0;
            for (; r + 4 <= N; r += 4) {
                const float *x0 = x + (size_t)r * n_in, *x1 = x0 + n_in, *x2 = x1 + n_in, *x3 = x2 + n_in;
                float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
                for (int i = 0; i < n_in; i++) {
                    float wi = w[i];
                    a0 += wi * x0[i];
                    a1 += wi * x1[i];
                    a2 += wi * x2[i];
                    a3 += wi * x3[i];
                }
                out[(size_t)r * n_out + o] = a0 + bo;
                out[(size_t)(r + 1) * n_out + o] = a1 + bo;
                out[(size_t)(r + 2) * n_out + o] = a2 + bo;
                out[(size_t)(r + 3) * n_out + o] = a3 + bo;
            }
            for (; r < N; r++) {
                const float *xr = x + (size_t)r * n_in;
                float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                for (int i = 0; i < n_in; i++) acc += w[i] * xr[i];
                out[(size_t)r * n_out + o] = acc + bo;
            }
        }
        return;
    }
    float beta = 0.0f;
    if (b) {
#pragma omp parallel for schedule(static) if (N > 4)
        for (int r = 0; r < N; r++) memcpy(out + (size_t)r * n_out, b, sizeof(float) * (size_t)n_out);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, n_out, n_in, 1.0f, x, n_in, W, n_in, beta, out,
                n_out);
}

void lora_forward(float *out, float *xa, const float *x, const float *A, const float *B, float scale, int N,
                  int n_in, int r, int n_out) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, n_in, 1.0f, x, n_in, A, n_in, 0.0f, xa, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, n_out, r, scale, xa, r, B, r, 1.0f, out, n_out);
}

void embedding_forward(float *out, const int32_t *tokens, const float *E, int N, int D) {
#pragma omp parallel for schedule(static) if (N > 64)
    for (int r = 0; r < N; r++) memcpy(out + (size_t)r * D, E + (size_t)tokens[r] * D, sizeof(float) * (size_t)D);
}

void residual_add(float *out, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] += x[i];
}
