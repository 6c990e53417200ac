/* loss_kd.c — logit-level knowledge distillation: forward KL, reverse KL and the
 * generalized JSD of GKD (Agarwal et al. 2024), from full teacher logits or from the
 * teacher's top-k log-probabilities with an explicit "rest" bucket (see loss.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loss.h"
#include "util.h"

int loss_kd_parse(const char *name, loss_kd_kind *out) {
    if (!strcmp(name, "fkl")) *out = LOSS_KD_FKL;
    else if (!strcmp(name, "rkl")) *out = LOSS_KD_RKL;
    else if (!strcmp(name, "jsd")) *out = LOSS_KD_JSD;
    else return srlm_set_error(SRLM_EINVAL, "unknown KD loss '%s' (expected fkl, rkl or jsd)", name);
    return 0;
}

const char *loss_kd_name(loss_kd_kind k) {
    return k == LOSS_KD_FKL ? "fkl" : k == LOSS_KD_RKL ? "rkl" : "jsd";
}

/* log-softmax of z/τ into out[V] (double). */
static void log_softmax_t(const float *z, int V, double inv_t, double *out) {
    double mx = -INFINITY;
    for (int v = 0; v < V; v++) {
        out[v] = (double)z[v] * inv_t;
        if (out[v] > mx) mx = out[v];
    }
    double s = 0;
    for (int v = 0; v < V; v++) s += exp(out[v] - mx);
    double lse = mx + log(s);
    for (int v = 0; v < V; v++) out[v] -= lse;
}

static double logaddexp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    double m = a > b ? a : b;
    return m + log(exp(a - m) + exp(b - m));
}

/* Divergence over nb buckets given student log-masses lq[b] and teacher log-masses lp[b]
 * (−inf allowed). Writes w[b] = g_b − Σ_c Q_c g_c with g = ∂D/∂Q, so that the gradient
 * w.r.t. a student logit v in bucket b is Q_v · w[b] (before ÷τ). Returns D. */
static double divergence(loss_kd_kind kind, double beta, int nb, const double *lq,
                         const double *lp, double *w) {
    double D = 0, gbar = 0;
    if (kind == LOSS_KD_FKL) {
        for (int b = 0; b < nb; b++) {
            if (lp[b] == -INFINITY) { w[b] = 0; continue; }
            double P = exp(lp[b]);
            D += P * (lp[b] - lq[b]);
            w[b] = -exp(lp[b] - lq[b]);  /* −P/Q */
            gbar -= P;                   /* Σ Q·(−P/Q) */
        }
    } else if (kind == LOSS_KD_RKL) {
        for (int b = 0; b < nb; b++) {
            if (lq[b] == -INFINITY) { w[b] = 0; continue; }
            double Q = exp(lq[b]);
            double g = lq[b] - lp[b];
            D += Q * g;
            w[b] = g;
            gbar += Q * g;
        }
    } else {
        double lb = log(beta), l1b = log1p(-beta);
        for (int b = 0; b < nb; b++) {
            double lm = logaddexp(lb + lp[b], l1b + lq[b]);
            if (lp[b] != -INFINITY) D += beta * exp(lp[b]) * (lp[b] - lm);
            if (lq[b] == -INFINITY) { w[b] = 0; continue; }
            double Q = exp(lq[b]);
            double g = (1 - beta) * (lq[b] - lm);
            D += (1 - beta) * Q * (lq[b] - lm);
            w[b] = g;
            gbar += Q * g;
        }
    }
    for (int b = 0; b < nb; b++) w[b] -= gbar;
    return D;
}

static double mask_denom(const float *mask, int N, float denom) {
    if (denom > 0) return denom;
    if (!mask) return N;
    double s = 0;
    for (int j = 0; j < N; j++) s += mask[j];
    return s;
}

float loss_kd_full(const float *student, const float *teacher, const float *mask, int N,
                   int V, loss_kd_kind kind, float beta, float temperature, float denom,
                   float *dlogits) {
    double norm = mask_denom(mask, N, denom);
    double inv_t = 1.0 / (temperature > 0 ? temperature : 1.0f);
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
        double *lq = malloc(sizeof(double) * (size_t)V * 3);
        double *lp = lq + V, *w = lp + V;
#pragma omp for schedule(static)
        for (int j = 0; j < N; j++) {
            float mj = mask ? mask[j] : 1.0f;
            float *dz = dlogits ? dlogits + (size_t)j * V : NULL;
            if (mj == 0.0f || norm <= 0 || !lq) {
                if (dz) memset(dz, 0, sizeof(float) * (size_t)V);
                continue;
            }
            log_softmax_t(student + (size_t)j * V, V, inv_t, lq);
            log_softmax_t(teacher + (size_t)j * V, V, inv_t, lp);
            double D = divergence(kind, beta, V, lq, lp, w);
            total += mj * D;
            if (dz) {
                double s = mj * inv_t / norm;
                for (int v = 0; v < V; v++) dz[v] = (float)(exp(lq[v]) * w[v] * s);
            }
        }
        free(lq);
    }
    return norm > 0 ? (float)(total / norm) : 0.0f;
}

float loss_kd_topk(const float *student, const int *topk_ids, const float *topk_logp, int K,
                   const float *mask, int N, int V, loss_kd_kind kind, float beta,
                   float temperature, float denom, float *dlogits) {
    double norm = mask_denom(mask, N, denom);
    double inv_t = 1.0 / (temperature > 0 ? temperature : 1.0f);
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
        double *ls = malloc(sizeof(double) * ((size_t)V + 3 * ((size_t)K + 1)));
        int *bucket = malloc(sizeof(int) * (size_t)V);
        double *lq = ls ? ls + V : NULL, *lp = lq ? lq + K + 1 : NULL, *w = lp ? lp + K + 1 : NULL;
        if (bucket)
            for (int v = 0; v < V; v++) bucket[v] = K; /* K = the rest bucket */
#pragma omp for schedule(static)
        for (int j = 0; j < N; j++) {
            float mj = mask ? mask[j] : 1.0f;
            float *dz = dlogits ? dlogits + (size_t)j * V : NULL;
            if (mj == 0.0f || norm <= 0 || !ls || !bucket) {
                if (dz) memset(dz, 0, sizeof(float) * (size_t)V);
                continue;
            }
            log_softmax_t(student + (size_t)j * V, V, inv_t, ls);
            const int *ids = topk_ids + (size_t)j * K;
            const float *tl = topk_logp + (size_t)j * K;
            double psum = 0;
            for (int k = 0; k < K; k++) {
                int id = ids[k];
                if (id < 0 || id >= V || bucket[id] != K) { /* unused or duplicate slot */
                    lq[k] = -INFINITY;
                    lp[k] = -INFINITY;
                    continue;
                }
                bucket[id] = k;
                lq[k] = ls[id];
                lp[k] = (double)tl[k];
                psum += exp(lp[k]);
            }
            double qrest = 0;
            for (int v = 0; v < V; v++)
                if (bucket[v] == K) qrest += exp(ls[v]);
            double prest = 1.0 - psum;
            lp[K] = prest > 1e-12 ? log(prest) : -INFINITY;
            lq[K] = qrest > 0 ? log(qrest) : -INFINITY;
            if (lq[K] == -INFINITY && lp[K] != -INFINITY) lq[K] = log(1e-30);
            if (lp[K] == -INFINITY && kind == LOSS_KD_RKL && lq[K] != -INFINITY)
                lp[K] = log(1e-30); /* RKL needs P > 0 wherever Q > 0 */
            double D = divergence(kind, beta, K + 1, lq, lp, w);
            total += mj * D;
            if (dz) {
                double s = mj * inv_t / norm;
                for (int v = 0; v < V; v++) dz[v] = (float)(exp(ls[v]) * w[bucket[v]] * s);
            }
            for (int k = 0; k < K; k++)
                if (ids[k] >= 0 && ids[k] < V) bucket[ids[k]] = K;
        }
        free(ls);
        free(bucket);
    }
    return norm > 0 ? (float)(total / norm) : 0.0f;
}
