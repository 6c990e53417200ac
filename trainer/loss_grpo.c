/* loss_grpo.c — group-relative advantages and the clipped policy-gradient loss of the
 * GRPO family (GRPO, Dr. GRPO, DAPO, RLOO) with a KL penalty to a reference (loss.h). */
#include <math.h>
#include <stdlib.h>

#include "loss.h"
#include "util.h"

void loss_grpo_config_default(loss_grpo_config *c) {
    c->eps_low = 0.2f;
    c->eps_high = 0.2f;
    c->kl_beta = 0.04f;
    c->kl_kind = LOSS_KL_K3;
    c->agg = LOSS_AGG_SEQ_MEAN_TOKEN_MEAN;
    c->norm_const = 1.0f;
}

int loss_grpo_advantages(const float *rewards, const int *group_ids, int n,
                         loss_adv_kind kind, float eps, float *adv) {
    if (n < 0) return srlm_set_error(SRLM_EINVAL, "loss_grpo_advantages: n < 0");
    /* O(n²) grouping: groups are small (G ≤ 64) and n ≤ a few thousand per step. */
    for (int i = 0; i < n; i++) {
        double s = 0, s2 = 0;
        int g = 0;
        for (int j = 0; j < n; j++)
            if (group_ids[j] == group_ids[i]) {
                s += rewards[j];
                g++;
            }
        if (g < 2) {
            adv[i] = 0.0f;
            continue;
        }
        double mean = s / g;
        for (int j = 0; j < n; j++)
            if (group_ids[j] == group_ids[i]) s2 += (rewards[j] - mean) * (rewards[j] - mean);
        double a = rewards[i] - mean;
        if (kind == LOSS_ADV_GRPO) a /= sqrt(s2 / (g - 1)) + eps;
        else if (kind == LOSS_ADV_RLOO) a *= (double)g / (g - 1);
        adv[i] = (float)a;
    }
    return 0;
}

float loss_grpo(const loss_grpo_config *cfg, int n_seq, const int *offsets,
                const float *logp, const float *logp_old, const float *logp_ref,
                const float *adv, const float *entropy, float *dlogp,
                loss_grpo_stats *stats) {
    long tokens = 0;
    int nonempty = 0;
    for (int i = 0; i < n_seq; i++) {
        int len = offsets[i + 1] - offsets[i];
        if (len > 0) {
            tokens += len;
            nonempty++;
        }
    }
    double beta = logp_ref ? cfg->kl_beta : 0.0;
    double lo = 1.0 - cfg->eps_low, hi = 1.0 + cfg->eps_high;
    double loss = 0, pg = 0, kl_sum = 0, ent_sum = 0, rsum = 0;
    double rmin = INFINITY, rmax = -INFINITY;
    long clipped = 0;
    for (int i = 0; i < n_seq; i++) {
        int a0 = offsets[i], len = offsets[i + 1] - a0;
        if (len <= 0) continue;
        double w; /* weight of each token of this sequence in the aggregate */
        if (cfg->agg == LOSS_AGG_SEQ_MEAN_TOKEN_MEAN) w = 1.0 / ((double)nonempty * len);
        else if (cfg->agg == LOSS_AGG_TOKEN_SUM_CONST)
            w = 1.0 / (cfg->norm_const > 0 ? cfg->norm_const : 1.0f);
        else w = 1.0 / (double)tokens;
        double A = adv[i];
        for (int t = a0; t < a0 + len; t++) {
            double r = exp((double)logp[t] - (double)logp_old[t]);
            double rc = r < lo ? lo : r > hi ? hi : r;
            double l1 = -A * r, l2 = -A * rc;
            double lt, d;
            if (l2 > l1) { /* the clipped branch is active: no gradient through r */
                lt = l2;
                d = 0;
                clipped++;
            } else {
                lt = l1;
                d = -A * r; /* ∂(−A r)/∂logp */
            }
            pg += w * lt;
            double kl = 0;
            if (logp_ref) {
                double delta = (double)logp_ref[t] - (double)logp[t];
                if (cfg->kl_kind == LOSS_KL_K1) {
                    kl = -delta;
                    d += beta;
                } else if (cfg->kl_kind == LOSS_KL_K2) {
                    kl = 0.5 * delta * delta;
                    d += beta * -delta;
                } else {
                    kl = exp(delta) - 1.0 - delta;
                    d += beta * (1.0 - exp(delta));
                }
                kl_sum += kl;
            }
            loss += w * (lt + beta * kl);
            if (dlogp) dlogp[t] = (float)(w * d);
            if (entropy) ent_sum += entropy[t];
            rsum += r;
            if (r < rmin) rmin = r;
            if (r > rmax) rmax = r;
        }
    }
    if (stats) {
        stats->loss = loss;
        stats->pg_loss = pg;
        stats->tokens = tokens;
        stats->kl_mean = tokens ? kl_sum / tokens : 0;
        stats->entropy_mean = tokens ? ent_sum / tokens : 0;
        stats->clip_frac = tokens ? (double)clipped / tokens : 0;
        stats->ratio_mean = tokens ? rsum / tokens : 0;
        stats->ratio_min = tokens ? rmin : 0;
        stats->ratio_max = tokens ? rmax : 0;
    }
    return (float)loss;
}
