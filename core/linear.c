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
