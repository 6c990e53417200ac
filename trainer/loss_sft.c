/* loss_sft.c — token cross-entropy, per-token log-probabilities and the log-softmax
 * backward (see loss.h; qwen2.md §2.9 and §3.1). */
#include <math.h>
#include <string.h>

#include "loss.h"

/* max and log-sum-exp of one row, in double for the sum. */
static double row_lse(const float *z, int V) {
    float mx = z[0];
    for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double s = 0;
    for (int v = 0; v < V; v++) s += exp((double)(z[v] - mx));
    return (double)mx + log(s);
}

float loss_ce(const float *logits, const int *targets, int N, int V, float denom,
              float *dlogits, int *count) {
    int cnt = 0;
    for (int j = 0; j < N; j++)
        if (targets[j] >= 0 && targets[j] < V) cnt++;
    if (count) *count = cnt;
    double norm = denom > 0 ? (double)denom : (double)cnt;
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int j = 0; j < N; j++) {
        const float *z = logits + (size_t)j * V;
        int t = targets[j];
        float *dz = dlogits ? dlogits + (size_t)j * V : NULL;
        if (t < 0 || t >= V || norm <= 0) {
            if (dz) memset(dz, 0, sizeof(float) * (size_t)V);
            continue;
        }
        double lse = row_lse(z, V);
        total += lse - (double)z[t];
        if (dz) {
            float inv = (float)(1.0 / norm);
            /* in place (dz == z) is safe: z[v] is read before dz[v] is written */
            for (int v = 0; v < V; v++) dz[v] = (float)exp((double)z[v] - lse) * inv;
            dz[t] -= inv;
        }
    }
    return norm > 0 ? (float)(total / norm) : 0.0f;
}

void loss_token_logprobs(const float *logits, const int *targets, int N, int V,
                         float *logp, float *entropy) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < N; j++) {
        const float *z = logits + (size_t)j * V;
        int t = targets[j];
        double lse = row_lse(z, V);
        logp[j] = (t >= 0 && t < V) ? (float)((double)z[t] - lse) : 0.0f;
        if (entropy) {
            double h = 0;
            for (int v = 0; v < V; v++) {
                double lp = (double)z[v] - lse;
                h -= exp(lp) * lp;
            }
            entropy[j] = (float)h;
        }
    }
}

void loss_logprob_backward(const float *logits, const int *targets, const float *dlogp,
                           int N, int V, float *dlogits) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < N; j++) {
        const float *z = logits + (size_t)j * V;
        float *dz = dlogits + (size_t)j * V;
        int t = targets[j];
        float g = dlogp[j];
        if (t < 0 || t >= V || g == 0.0f) {
            memset(dz, 0, sizeof(float) * (size_t)V);
            continue;
        }
        double lse = row_lse(z, V);
        for (int v = 0; v < V; v++) dz[v] = -g * (float)exp((double)z[v] - lse);
        dz[t] += g;
    }
}
