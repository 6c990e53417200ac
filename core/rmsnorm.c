/* rmsnorm.c — RMSNorm forward (qwen2.md §2.2). Backward: trainer/. */
#include <math.h>

#include "layers.h"

void rmsnorm_forward(float *out, float *rstd, const float *x, const float *g, int N, int D, float eps) {
#pragma omp parallel for schedule(static) if (N > 4)
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * D;
        float *o = out + (size_t)r * D;
        float ms = 0.0f;
#pragma omp simd reduction(+ : ms)
        for (int c = 0; c < D; c++) ms += xr[c] * xr[c];
        ms /= (float)D;
        float s = 1.0f / sqrtf(ms + eps);
        if (rstd) rstd[r] = s;
#pragma omp simd
        for (int c = 0; c < D; c++) o[c] = g[c] * (xr[c] * s);
    }
}
