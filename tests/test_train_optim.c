/* test_train_optim.c — AdamW and SGD steps, gradient clipping and LR schedules against
 * PyTorch (tests/fixtures/train/optim.json); optimizer state save/restore is bit-exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include "optim.h"
#include "train_fixture.h"

#define TOL 1e-4
static json_t *g_fx;

static void test_steps_match_torch(void **st) {
    int n = (int)json_integer_value(json_object_get(g_fx, "n"));
    float *p0 = tf_floats(json_object_get(g_fx, "params"));
    float *g1 = tf_floats(json_object_get(g_fx, "grad1"));
    float *g2 = tf_floats(json_object_get(g_fx, "grad2"));
    float p[64];
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(g_fx, "cases"), i, c) {
        opt_config cfg;
        opt_config_default(&cfg);
        assert_int_equal(opt_parse_kind(json_string_value(json_object_get(c, "kind")), &cfg.kind), 0);
        cfg.lr = (float)json_number_value(json_object_get(c, "lr"));
        cfg.weight_decay = (float)json_number_value(json_object_get(c, "weight_decay"));
        if (cfg.kind == OPT_SGD) {
            cfg.momentum = (float)json_number_value(json_object_get(c, "momentum"));
            cfg.nesterov = (int)json_integer_value(json_object_get(c, "nesterov"));
        }
        opt_state *s;
        assert_int_equal(opt_create(&cfg, n, &s), 0);
        int nd = (int)json_integer_value(json_object_get(c, "no_decay_from"));
        assert_int_equal(opt_no_decay(s, nd, n - nd), 0);
        memcpy(p, p0, sizeof(float) * n);
        opt_step(s, p, g1, opt_lr_at(&s->cfg, s->step));
        assert_true(tf_rel_err_json(p, json_object_get(c, "after1"), 1e-6) < TOL);
        opt_step(s, p, g2, opt_lr_at(&s->cfg, s->step));
        assert_true(tf_rel_err_json(p, json_object_get(c, "after2"), 1e-6) < TOL);
        if (cfg.kind == OPT_ADAMW) {
            assert_true(tf_rel_err_json(s->m, json_object_get(c, "exp_avg"), 1e-6) < TOL);
            assert_true(tf_rel_err_json(s->v, json_object_get(c, "exp_avg_sq"), 1e-9) < TOL);
        }
        assert_int_equal(s->step, 2);
        opt_free(s);
    }
    free(p0); free(g1); free(g2);
}

static void test_clip_and_schedules(void **st) {
    json_t *c = json_object_get(g_fx, "clip");
    float *g = tf_floats(json_object_get(c, "grad"));
    size_t n = json_array_size(json_object_get(c, "grad"));
    double norm = opt_clip_grad_norm(g, n, (float)json_number_value(json_object_get(c, "max_norm")));
    assert_true(tf_scalar_rel(norm, json_number_value(json_object_get(c, "norm"))) < TOL);
    assert_true(tf_rel_err_json(g, json_object_get(c, "clipped"), 1e-6) < TOL);
    free(g);
    json_t *s = json_object_get(g_fx, "sched");
    const char *names[3] = {"constant", "linear", "cosine"};
    for (int k = 0; k < 3; k++) {
        opt_config cfg;
        opt_config_default(&cfg);
        cfg.lr = 1.0f;
        cfg.warmup_steps = 3;
        cfg.total_steps = 10;
        assert_int_equal(opt_parse_sched(names[k], &cfg.sched), 0);
        json_t *want = json_object_get(s, names[k]);
        for (size_t t = 0; t < json_array_size(want); t++)
            assert_true(fabs(opt_lr_at(&cfg, (long)t) - json_number_value(json_array_get(want, t))) < 1e-6);
    }
    opt_kind k;
    assert_int_equal(opt_parse_kind("adam", &k), SRLM_EINVAL);
}

/* Save after 3 steps, continue 2 more; load into a fresh state and redo the 2 steps:
 * parameters and moments are bit-identical. */
static void run_resume(opt_kind kind, float momentum) {
    enum { N = 1000 };
    opt_config cfg;
    opt_config_default(&cfg);
    cfg.kind = kind;
    cfg.lr = 1e-2f;
    cfg.weight_decay = 0.05f;
    cfg.momentum = momentum;
    cfg.sched = OPT_SCHED_COSINE;
    cfg.warmup_steps = 2;
    cfg.total_steps = 5;
    static float p[N], p_saved[N], g[5][N];
    srlm_rng rng;
    srlm_rng_seed(&rng, 3);
    for (int i = 0; i < N; i++) p[i] = srlm_rng_normal(&rng);
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < N; i++) g[t][i] = srlm_rng_normal(&rng);
    opt_state *a, *b;
    assert_int_equal(opt_create(&cfg, N, &a), 0);
    assert_int_equal(opt_no_decay(a, 900, 100), 0);
    for (int t = 0; t < 3; t++) opt_step(a, p, g[t], opt_lr_at(&a->cfg, a->step));
    char dir[] = "/tmp/srlm_test_optim_XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    assert_int_equal(opt_save(a, path), 0);
    memcpy(p_saved, p, sizeof p);
    for (int t = 3; t < 5; t++) opt_step(a, p, g[t], opt_lr_at(&a->cfg, a->step));
    opt_config other = cfg;
    other.lr = 99.0f; /* restored from the file */
    assert_int_equal(opt_create(&other, N, &b), 0);
    assert_int_equal(opt_load(b, path), 0);
    assert_int_equal(b->step, 3);
    assert_true(b->cfg.lr == cfg.lr);
    for (int t = 3; t < 5; t++) opt_step(b, p_saved, g[t], opt_lr_at(&b->cfg, b->step));
    assert_memory_equal(p, p_saved, sizeof p);
    if (a->m) assert_memory_equal(a->m, b->m, sizeof(float) * N);
    if (a->v) assert_memory_equal(a->v, b->v, sizeof(float) * N);
    opt_free(b);
    /* size mismatch and garbage files are refused */
    assert_int_equal(opt_create(&cfg, N + 1, &b), 0);
    assert_int_equal(opt_load(b, path), SRLM_EINVAL);
    opt_free(b);
    assert_int_equal(srlm_write_file_atomic(path, "\x10\0\0\0\0\0\0\0{garbage}       ", 24), 0);
    assert_int_equal(opt_create(&cfg, N, &b), 0);
    assert_int_equal(opt_load(b, path), SRLM_EFORMAT);
    opt_free(b);
    opt_free(a);
    srlm_rm_rf(dir);
}

static void test_save_restore_bit_exact(void **st) {
    run_resume(OPT_ADAMW, 0);
    run_resume(OPT_SGD, 0.9f);
    run_resume(OPT_SGD, 0);
}

int main(void) {
    g_fx = tf_load("optim.json");
    if (!g_fx) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_match_torch),
        cmocka_unit_test(test_clip_and_schedules),
        cmocka_unit_test(test_save_restore_bit_exact),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(g_fx);
    return rc;
}
