/* test_train_loss.c — SFT cross-entropy, KD (fkl/rkl/jsd, full and top-k, temperature)
 * and GRPO losses against PyTorch autograd (tests/fixtures/train/losses.json). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "loss.h"
#include "train_fixture.h"

#define TOL 1e-4

static json_t *g_fx;

static void test_sft_ce(void **st) {
    json_t *c = json_object_get(g_fx, "sft");
    int N = (int)json_integer_value(json_object_get(c, "N"));
    int V = (int)json_integer_value(json_object_get(c, "V"));
    float *z = tf_floats(json_object_get(c, "logits"));
    int *t = tf_ints(json_object_get(c, "targets"));
    float *dz = malloc(sizeof(float) * N * V);
    int cnt = 0;
    float loss = loss_ce(z, t, N, V, 0, dz, &cnt);
    assert_int_equal(cnt, 5);
    assert_true(tf_scalar_rel(loss, json_number_value(json_object_get(c, "loss"))) < TOL);
    assert_true(tf_rel_err_json(dz, json_object_get(c, "dlogits"), 1e-6) < TOL);
    loss = loss_ce(z, t, N, V, 10, dz, NULL);
    assert_true(tf_scalar_rel(loss, json_number_value(json_object_get(c, "loss_denom10"))) < TOL);
    assert_true(tf_rel_err_json(dz, json_object_get(c, "dlogits_denom10"), 1e-6) < TOL);
    /* in place */
    float *z2 = malloc(sizeof(float) * N * V);
    memcpy(z2, z, sizeof(float) * N * V);
    loss_ce(z2, t, N, V, 0, z2, NULL);
    assert_true(tf_rel_err_json(z2, json_object_get(c, "dlogits"), 1e-6) < TOL);
    float logp[64], ent[64];
    loss_token_logprobs(z, t, N, V, logp, ent);
    assert_true(tf_rel_err_json(logp, json_object_get(c, "logp"), 1e-6) < TOL);
    assert_true(tf_rel_err_json(ent, json_object_get(c, "entropy"), 1e-6) < TOL);
    free(z); free(z2); free(t); free(dz);
}

static void test_kd(void **st) {
    json_t *c = json_object_get(g_fx, "kd");
    int N = (int)json_integer_value(json_object_get(c, "N"));
    int V = (int)json_integer_value(json_object_get(c, "V"));
    int K = (int)json_integer_value(json_object_get(c, "K"));
    float *zs = tf_floats(json_object_get(c, "student"));
    float *zt = tf_floats(json_object_get(c, "teacher"));
    float *mask = tf_floats(json_object_get(c, "mask"));
    int *ids = tf_ints(json_object_get(c, "topk_ids"));
    float *tlp = tf_floats(json_object_get(c, "topk_logp"));
    float *dz = malloc(sizeof(float) * N * V);
    size_t i;
    json_t *cs;
    int ncases = 0;
    json_array_foreach(json_object_get(c, "cases"), i, cs) {
        loss_kd_kind kind;
        assert_int_equal(loss_kd_parse(json_string_value(json_object_get(cs, "kind")), &kind), 0);
        float beta = (float)json_number_value(json_object_get(cs, "beta"));
        float T = (float)json_number_value(json_object_get(cs, "temperature"));
        int topk = (int)json_integer_value(json_object_get(cs, "topk"));
        float loss = topk ? loss_kd_topk(zs, ids, tlp, K, mask, N, V, kind, beta, T, 0, dz)
                          : loss_kd_full(zs, zt, mask, N, V, kind, beta, T, 0, dz);
        double want = json_number_value(json_object_get(cs, "loss"));
        double el = tf_scalar_rel(loss, want), eg = tf_rel_err_json(dz, json_object_get(cs, "dlogits"), 1e-6);
        if (el >= TOL || eg >= TOL)
            fprintf(stderr, "kd %s beta %g T %g topk %d: loss %g want %g (rel %g) grad rel %g\n",
                    loss_kd_name(kind), beta, T, topk, loss, want, el, eg);
        assert_true(el < TOL);
        assert_true(eg < TOL);
        ncases++;
    }
    assert_int_equal(ncases, 16);
    /* top-k with K = V equals the full loss */
    int *all = malloc(sizeof(int) * N * V);
    float *alp = malloc(sizeof(float) * N * V);
    float *dz2 = malloc(sizeof(float) * N * V);
    for (int j = 0; j < N; j++) {
        double mx = -1e30, s = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, zt[j * V + v]);
        for (int v = 0; v < V; v++) s += exp(zt[j * V + v] - mx);
        for (int v = 0; v < V; v++) {
            all[j * V + v] = v;
            alp[j * V + v] = (float)(zt[j * V + v] - mx - log(s));
        }
    }
    for (int k = 0; k < 3; k++) {
        float a = loss_kd_full(zs, zt, mask, N, V, (loss_kd_kind)k, 0.3f, 1.0f, 0, dz);
        float b = loss_kd_topk(zs, all, alp, V, mask, N, V, (loss_kd_kind)k, 0.3f, 1.0f, 0, dz2);
        assert_true(tf_scalar_rel(b, a) < 1e-4);
        assert_true(tf_rel_err(dz2, dz, N * V, 1e-6) < 1e-4);
    }
    loss_kd_kind kk;
    assert_int_equal(loss_kd_parse("bogus", &kk), SRLM_EINVAL);
    free(all); free(alp); free(dz2);
    free(zs); free(zt); free(mask); free(ids); free(tlp); free(dz);
}

static void test_grpo(void **st) {
    json_t *c = json_object_get(g_fx, "grpo");
    float *r = tf_floats(json_object_get(c, "rewards"));
    int *gid = tf_ints(json_object_get(c, "group_ids"));
    int *off = tf_ints(json_object_get(c, "offsets"));
    int n = (int)json_array_size(json_object_get(c, "rewards"));
    int M = off[n];
    float *lp = tf_floats(json_object_get(c, "logp"));
    float *old = tf_floats(json_object_get(c, "logp_old"));
    float *ref = tf_floats(json_object_get(c, "logp_ref"));
    float *ent = tf_floats(json_object_get(c, "entropy"));
    const char *advk[3] = {"grpo", "mean", "rloo"};
    float adv[3][16];
    for (int k = 0; k < 3; k++) {
        assert_int_equal(loss_grpo_advantages(r, gid, n, (loss_adv_kind)k, 1e-4f, adv[k]), 0);
        assert_true(tf_rel_err_json(adv[k], json_object_get(json_object_get(c, "adv"), advk[k]), 1e-6) < TOL);
    }
    float *d = malloc(sizeof(float) * M);
    size_t i;
    json_t *cs;
    int ncases = 0;
    json_array_foreach(json_object_get(c, "cases"), i, cs) {
        loss_grpo_config cfg;
        loss_grpo_config_default(&cfg);
        const char *agg = json_string_value(json_object_get(cs, "agg"));
        cfg.agg = !strcmp(agg, "seq_mean_token_mean") ? LOSS_AGG_SEQ_MEAN_TOKEN_MEAN
                  : !strcmp(agg, "token_sum_const")   ? LOSS_AGG_TOKEN_SUM_CONST
                                                      : LOSS_AGG_TOKEN_MEAN;
        const char *ak = json_string_value(json_object_get(cs, "adv"));
        int a = !strcmp(ak, "grpo") ? 0 : !strcmp(ak, "mean") ? 1 : 2;
        int kl = (int)json_integer_value(json_object_get(cs, "kl"));
        cfg.kl_beta = (float)json_number_value(json_object_get(cs, "beta"));
        cfg.kl_kind = kl ? (loss_kl_kind)kl : LOSS_KL_K3;
        cfg.eps_low = (float)json_number_value(json_object_get(cs, "eps_low"));
        cfg.eps_high = (float)json_number_value(json_object_get(cs, "eps_high"));
        cfg.norm_const = (float)json_number_value(json_object_get(cs, "norm_const"));
        loss_grpo_stats s;
        float loss = loss_grpo(&cfg, n, off, lp, old, kl ? ref : NULL, adv[a], ent, d, &s);
        double want = json_number_value(json_object_get(cs, "loss"));
        double el = tf_scalar_rel(loss, want), eg = tf_rel_err_json(d, json_object_get(cs, "dlogp"), 1e-6);
        if (el >= TOL || eg >= TOL)
            fprintf(stderr, "grpo %s adv %s kl %d: loss %g want %g grad rel %g\n", agg, ak, kl, loss, want, eg);
        assert_true(el < TOL);
        assert_true(eg < TOL);
        assert_true(fabs(s.clip_frac - json_number_value(json_object_get(cs, "clip_frac"))) < 1e-9);
        assert_true(fabs(s.kl_mean - json_number_value(json_object_get(cs, "kl_mean"))) < 1e-5);
        assert_true(tf_scalar_rel(s.ratio_mean, json_number_value(json_object_get(cs, "ratio_mean"))) < TOL);
        assert_true(tf_scalar_rel(s.ratio_min, json_number_value(json_object_get(cs, "ratio_min"))) < TOL);
        assert_true(tf_scalar_rel(s.ratio_max, json_number_value(json_object_get(cs, "ratio_max"))) < TOL);
        assert_true(tf_scalar_rel(s.entropy_mean, json_number_value(json_object_get(cs, "entropy_mean"))) < TOL);
        assert_int_equal(s.tokens, M);
        ncases++;
    }
    assert_int_equal(ncases, 16);
    /* some tokens are clipped in the fixture, so the clip path is exercised */
    json_t *c0 = json_array_get(json_object_get(c, "cases"), 0);
    assert_true(json_number_value(json_object_get(c0, "clip_frac")) > 0);
    /* chain through log-softmax */
    json_t *ch = json_object_get(c, "chain");
    int N = (int)json_integer_value(json_object_get(ch, "N"));
    int V = (int)json_integer_value(json_object_get(ch, "V"));
    float *z = tf_floats(json_object_get(ch, "logits"));
    int *t = tf_ints(json_object_get(ch, "targets"));
    float *dl = tf_floats(json_object_get(ch, "dlogp"));
    float *dz = malloc(sizeof(float) * N * V);
    loss_logprob_backward(z, t, dl, N, V, dz);
    assert_true(tf_rel_err_json(dz, json_object_get(ch, "dlogits"), 1e-6) < TOL);
    free(z); free(t); free(dl); free(dz);
    free(r); free(gid); free(off); free(lp); free(old); free(ref); free(ent); free(d);
}

int main(void) {
    g_fx = tf_load("losses.json");
    if (!g_fx) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sft_ce),
        cmocka_unit_test(test_kd),
        cmocka_unit_test(test_grpo),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(g_fx);
    return rc;
}
