/* rope.c — rotary position embedding, half-split (NEOX) convention (qwen2.md §2.4). */
#include <math.h>

#include "layers.h"

void rope_inv_freq(float *inv_freq, int d, float theta) {
    for (int i = 0; i < d / 2; i++) inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)d);
}

/* Rotate every head of x [N, nheads, d] in place by sign·φ_i(pos[r]) (sign = +1: the
 * forward rotation; -1: its inverse, which is also its transpose). */
static void rope_rotate(float *x, const int *pos, int N, int nheads, int d, const float *inv_freq,
                        float sign) {
    int half = d / 2;
#pragma omp parallel for schedule(static) if (N > 4)
    for (int r = 0; r < N; r++) {
        float cs[512], sn[512]; /* d/2 <= 512 (checked by the config parser) */
        float p = (float)pos[r];
        for (int i = 0; i < half; i++) {
            float a = p * inv_freq[i];
            cs[i] = cosf(a);
            sn[i] = sign * sinf(a);
        }
        for (int h = 0; h < nheads; h++) {
            float *v = x + (size_t)r * nheads * d + (size_t)h * d;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * cs[i] - b * sn[i];
                v[i + half] = b * cs[i] + a * sn[i];
            }
        }
    }
}

void rope_forward(float *x, const int *pos, int N, int nheads, int d, const float *inv_freq) {
    rope_rotate(x, pos, N, nheads, d, inv_freq, 1.0f);
}

/* The rotation is orthogonal, so its backward is the inverse rotation: dx = Rᵀ dy. */
void rope_backward(float *dx, const int *pos, int N, int nheads, int d, const float *inv_freq) {
    rope_rotate(dx, pos, N, nheads, d, inv_freq, -1.0f);
}
