/* mlp.c — SwiGLU activation of the MLP (qwen2.md §2.7); the three projections are
 * linear_forward calls in model.c. */
#include <math.h>

#include "layers.h"

void swiglu_forward(float *z, const float *g, const float *u, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) z[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
