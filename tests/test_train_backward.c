/* test_train_backward.c — the whole-model backward (trainer/backward.c) and LoRA
 * (trainer/lora.c) against PyTorch autograd on a tiny Qwen2 model
 * (tests/fixtures/train/tiny + grads.safetensors), a finite-difference check, and the
 * LoRA equivalences (zero B = base logits; merged weights = base + adapters). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include "backward.h"
#include "layers.h"
#include "loss.h"
#include "lora.h"
#include "safetensors.h"
#include "train_fixture.h"

#define TOL 1e-4

static const char *LNAME[LM_LORA_NTARGETS] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                               "gate_proj", "up_proj", "down_proj"};

typedef struct {
    lm_model *m;
    st_file *ref;
    int32_t tokens[64];
    int lengths[8], targets[64];
    int B, T;
} fx;

static void load_fx(fx *f) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/train/tiny", SRLM_SOURCE_DIR);
    assert_int_equal(lm_model_load(path, &f->m), 0);
    snprintf(path, sizeof path, "%s/tests/fixtures/train/grads.safetensors", SRLM_SOURCE_DIR);
    assert_int_equal(st_open(path, &f->ref), 0);
    const st_tensor *t = st_find(f->ref, "tokens");
    f->B = (int)t->shape[0];
    f->T = (int)t->shape[1];
    memcpy(f->tokens, f->ref->data + t->begin, sizeof(int32_t) * f->B * f->T);
    memcpy(f->lengths, f->ref->data + st_find(f->ref, "lengths")->begin, sizeof(int) * f->B);
    memcpy(f->targets, f->ref->data + st_find(f->ref, "targets")->begin, sizeof(int) * f->B * f->T);
}

static void free_fx(fx *f) {
    lm_model_free(f->m);
    st_close(f->ref);
}

static float ref_scalar(fx *f, const char *name) {
    float x;
    assert_int_equal(st_read_f32(f->ref, st_find(f->ref, name), &x), 0);
    return x;
}

static double ce_fn(void *ctx, const int *rows, int n, float *logits, int want_grad) {
    const int *tg = ((const int **)ctx)[0];
    const float *denom = ((const float **)ctx)[1];
    int V = *((const int **)ctx)[2];
    int *t = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) t[i] = tg[rows[i]];
    int cnt;
    double l = loss_ce(logits, t, n, V, *denom, want_grad ? logits : NULL, &cnt);
    free(t);
    return l;
}

/* loss and (optionally) gradients for the fixture batch; grads/dlora zeroed here. */
static double loss_and_grad(fx *f, float *grad, lm_lora *dlora) {
    lm_model *m = f->m;
    int N = f->B * f->T, D = m->cfg.hidden_size, V = m->cfg.vocab_size;
    lm_acts *acts;
    assert_int_equal(lm_acts_alloc(m, f->B, f->T, 0, &acts), 0);
    assert_int_equal(lm_forward(m, f->tokens, f->lengths, f->B, f->T, NULL, acts), 0);
    int rows[64], nr = 0;
    for (int r = 0; r < N; r++)
        if (f->targets[r] >= 0) rows[nr++] = r;
    float denom = (float)nr;
    const void *ctx[3] = {f->targets, &denom, &V};
    float *dy = grad || dlora ? malloc(sizeof(float) * N * D) : NULL;
    lm_params gp;
    if (grad) {
        memset(grad, 0, sizeof(float) * m->n_params);
        assert_int_equal(lm_params_bind(m, grad, &gp), 0);
    }
    if (dlora) memset(dlora->data, 0, sizeof(float) * dlora->n_params);
    double loss;
    assert_int_equal(lm_head_backward(m, acts->y, N, rows, nr, 5, ce_fn, ctx, dy, grad ? gp.lm_head : NULL, &loss), 0);
    if (dy) assert_int_equal(lm_backward(m, acts, f->tokens, f->lengths, f->B, f->T, dy, grad ? &gp : NULL, dlora), 0);
    if (grad) lm_params_unbind(&gp);
    free(dy);
    lm_acts_free(acts);
    return loss;
}

static void test_full_gradients_match_torch(void **st) {
    fx f;
    load_fx(&f);
    lm_model *m = f.m;
    float *grad = srlm_alloc_floats(m->n_params);
    double loss = loss_and_grad(&f, grad, NULL);
    assert_true(tf_scalar_rel(loss, ref_scalar(&f, "loss")) < TOL);
    for (int i = 0; i < m->n_tensors; i++) {
        const lm_tensor *t = &m->tensors[i];
        char name[160];
        snprintf(name, sizeof name, "grad.%s", t->name);
        const st_tensor *rt = st_find(f.ref, name);
        assert_non_null(rt);
        assert_int_equal(rt->numel, t->numel);
        float *want = malloc(sizeof(float) * t->numel);
        assert_int_equal(st_read_f32(f.ref, rt, want), 0);
        double e = tf_rel_err(grad + t->offset, want, t->numel, 1e-6);
        if (e >= TOL) fprintf(stderr, "%s: rel err %g\n", t->name, e);
        assert_true(e < TOL);
        free(want);
    }
    free(grad);
    free_fx(&f);
}

/* Central differences on a few coordinates of several tensors (float32: eps 1e-2,
 * tolerance 2e-2 relative to max(|g|, 1e-2)). */
static void test_finite_differences(void **st) {
    fx f;
    load_fx(&f);
    lm_model *m = f.m;
    float *grad = srlm_alloc_floats(m->n_params);
    loss_and_grad(&f, grad, NULL);
    srlm_rng rng;
    srlm_rng_seed(&rng, 5);
    int checked = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const lm_tensor *t = &m->tensors[i];
        for (int k = 0; k < 2; k++) {
            size_t j = t->offset + srlm_rng_below(&rng, t->numel);
            float keep = m->params[j], eps = 1e-2f;
            m->params[j] = keep + eps;
            double lp = loss_and_grad(&f, NULL, NULL);
            m->params[j] = keep - eps;
            double lm = loss_and_grad(&f, NULL, NULL);
            m->params[j] = keep;
            double fd = (lp - lm) / (2 * eps);
            double err = fabs(fd - grad[j]) / fmax(fabs(grad[j]), 1e-2);
            if (err > 2e-2) fprintf(stderr, "FD %s[%zu]: analytic %g numeric %g\n", t->name, j - t->offset, grad[j], fd);
            assert_true(err <= 2e-2);
            checked++;
        }
    }
    assert_true(checked >= 20);
    free(grad);
    free_fx(&f);
}

static void fill_lora_from_fixture(fx *f, lm_lora *lo) {
    for (int l = 0; l < f->m->cfg.num_layers; l++)
        for (int t = 0; t < LM_LORA_NTARGETS; t++) {
            char n[64];
            snprintf(n, sizeof n, "lora.%d.%s.A", l, LNAME[t]);
            assert_int_equal(st_read_f32(f->ref, st_find(f->ref, n), lo->A[l * LM_LORA_NTARGETS + t]), 0);
            snprintf(n, sizeof n, "lora.%d.%s.B", l, LNAME[t]);
            assert_int_equal(st_read_f32(f->ref, st_find(f->ref, n), lo->B[l * LM_LORA_NTARGETS + t]), 0);
        }
}

static void test_lora_gradients_and_equivalences(void **st) {
    fx f;
    load_fx(&f);
    lm_model *m = f.m;
    int N = f.B * f.T, V = m->cfg.vocab_size;
    float *base_logits = malloc(sizeof(float) * N * V), *lg = malloc(sizeof(float) * N * V);
    assert_int_equal(lm_forward(m, f.tokens, f.lengths, f.B, f.T, base_logits, NULL), 0);
    unsigned targets;
    assert_int_equal(lora_parse_targets("q,k,v,o,gate,up,down", &targets), 0);
    assert_int_equal(targets, 0x7Fu);
    assert_int_equal(lora_parse_targets("q,bogus", &targets), SRLM_EINVAL);
    lm_lora *lo;
    assert_int_equal(lora_create(m, 2, 4.0f, 0x7F, 1, &lo), 0);
    m->lora = lo;
    /* fresh adapter (B = 0): logits equal the base model's */
    lm_acts *acts;
    assert_int_equal(lm_acts_alloc(m, f.B, f.T, 0, &acts), 0);
    assert_int_equal(lm_forward(m, f.tokens, f.lengths, f.B, f.T, lg, acts), 0);
    assert_memory_equal(lg, base_logits, sizeof(float) * N * V);
    lm_acts_free(acts);
    /* fixture adapters: logits, loss, dA and dB match torch */
    fill_lora_from_fixture(&f, lo);
    float *ref_lg = malloc(sizeof(float) * N * V);
    assert_int_equal(st_read_f32(f.ref, st_find(f.ref, "lora_logits"), ref_lg), 0);
    assert_int_equal(lm_forward(m, f.tokens, f.lengths, f.B, f.T, lg, NULL), 0);
    assert_true(tf_rel_err(lg, ref_lg, N * V, 1e-6) < TOL);
    float *gbuf = srlm_alloc_floats(lo->n_params);
    lm_lora dl;
    assert_int_equal(lora_bind(lo, gbuf, &dl), 0);
    double loss = loss_and_grad(&f, NULL, &dl);
    assert_true(tf_scalar_rel(loss, ref_scalar(&f, "lora_loss")) < TOL);
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int t = 0; t < LM_LORA_NTARGETS; t++)
            for (int ab = 0; ab < 2; ab++) {
                char n[64];
                snprintf(n, sizeof n, "dlora.%d.%s.%s", l, LNAME[t], ab ? "B" : "A");
                const st_tensor *rt = st_find(f.ref, n);
                float *want = malloc(sizeof(float) * rt->numel);
                st_read_f32(f.ref, rt, want);
                float *got = ab ? dl.B[l * LM_LORA_NTARGETS + t] : dl.A[l * LM_LORA_NTARGETS + t];
                double e = tf_rel_err(got, want, rt->numel, 1e-6);
                if (e >= TOL) fprintf(stderr, "%s: rel err %g\n", n, e);
                assert_true(e < TOL);
                free(want);
            }
    lora_unbind(&dl);
    /* merged weights give the same logits as base + adapters; unmerge is bit-exact */
    float *before = malloc(sizeof(float) * m->n_params);
    memcpy(before, m->params, sizeof(float) * m->n_params);
    float *bk;
    assert_int_equal(lora_merge(m, lo, &bk), 0);
    m->lora = NULL;
    assert_int_equal(lm_forward(m, f.tokens, f.lengths, f.B, f.T, base_logits, NULL), 0);
    assert_true(tf_rel_err(base_logits, lg, N * V, 1e-6) < TOL);
    lora_unmerge(m, lo, bk);
    assert_memory_equal(before, m->params, sizeof(float) * m->n_params);
    /* PEFT save / load round trip */
    char dir[] = "/tmp/srlm_test_lora_XXXXXX", p2[256];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(lora_save_peft(m, lo, dir, "tiny"), 0);
    lm_lora *lo2;
    assert_int_equal(lora_load_peft(m, dir, &lo2), 0);
    assert_int_equal(lo2->n_params, lo->n_params);
    assert_true(lo2->scale == lo->scale);
    assert_memory_equal(lo2->data, lo->data, sizeof(float) * lo->n_params);
    st_file *sf;
    snprintf(p2, sizeof p2, "%s/adapter_model.safetensors", dir);
    assert_int_equal(st_open(p2, &sf), 0);
    assert_non_null(st_find(sf, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    assert_non_null(st_find(sf, "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
    st_close(sf);
    lora_free(lo2);
    srlm_rm_rf(dir);
    free(before); free(ref_lg); free(gbuf); free(lg); free(base_logits);
    lora_free(lo);
    free_fx(&f);
}

/* Direct per-(i, j) attention backward (§3.6) as the reference for the blocked sgemm
 * version, on sequences longer than one 128-row block. */
static void naive_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                     const float *k, const float *v, const float *out, const float *lse,
                                     const int *lengths, int B, int T, int H, int Hkv, int d) {
    int G = H / Hkv;
    size_t qs = (size_t)H * d, ks = (size_t)Hkv * d;
    double scale = 1.0 / sqrt((double)d);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < lengths[b]; i++) {
                size_t ri = (size_t)b * T + i;
                const float *qi = q + ri * qs + h * d, *oi = out + ri * qs + h * d, *doi = dout + ri * qs + h * d;
                double delta = 0;
                for (int c = 0; c < d; c++) delta += doi[c] * oi[c];
                for (int j = 0; j <= i; j++) {
                    size_t rj = (size_t)b * T + j;
                    const float *kj = k + rj * ks + (h / G) * d, *vj = v + rj * ks + (h / G) * d;
                    double s = 0, dp = 0;
                    for (int c = 0; c < d; c++) {
                        s += qi[c] * kj[c];
                        dp += doi[c] * vj[c];
                    }
                    double p = exp(s * scale - lse[((size_t)b * H + h) * T + i]);
                    double ds = p * (dp - delta) * scale;
                    for (int c = 0; c < d; c++) {
                        dq[ri * qs + h * d + c] += (float)(ds * kj[c]);
                        dk[rj * ks + (h / G) * d + c] += (float)(ds * qi[c]);
                        dv[rj * ks + (h / G) * d + c] += (float)(p * doi[c]);
                    }
                }
            }
}

static void test_attention_backward_blocks(void **st) {
    enum { B = 2, T = 300, H = 4, Hkv = 2, d = 8 };
    int lengths[B] = {300, 170};
    size_t N = (size_t)B * T, nq = N * H * d, nk = N * Hkv * d;
    float *q = malloc(4 * nq), *k = malloc(4 * nk), *v = malloc(4 * nk), *out = malloc(4 * nq), *dout = calloc(nq, 4);
    float *lse = malloc(4 * (size_t)B * H * T);
    float *dq1 = calloc(nq, 4), *dk1 = calloc(nk, 4), *dv1 = calloc(nk, 4);
    float *dq2 = calloc(nq, 4), *dk2 = calloc(nk, 4), *dv2 = calloc(nk, 4);
    float *work = malloc(sizeof(float) * 2 * 128 * T);
    srlm_rng r;
    srlm_rng_seed(&r, 21);
    for (size_t i = 0; i < nq; i++) q[i] = srlm_rng_normal(&r);
    for (size_t i = 0; i < nk; i++) k[i] = srlm_rng_normal(&r), v[i] = srlm_rng_normal(&r);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < lengths[b]; t++)
            for (int c = 0; c < H * d; c++) dout[((size_t)b * T + t) * H * d + c] = srlm_rng_normal(&r);
    attention_forward(out, lse, NULL, q, k, v, lengths, B, T, H, Hkv, d);
    naive_attention_backward(dq1, dk1, dv1, dout, q, k, v, out, lse, lengths, B, T, H, Hkv, d);
    attention_backward(dq2, dk2, dv2, work, dout, q, k, v, out, lse, lengths, B, T, H, Hkv, d);
    assert_true(tf_rel_err(dq2, dq1, nq, 1e-6) < 1e-4);
    assert_true(tf_rel_err(dk2, dk1, nk, 1e-6) < 1e-4);
    assert_true(tf_rel_err(dv2, dv1, nk, 1e-6) < 1e-4);
    free(q); free(k); free(v); free(out); free(dout); free(lse); free(work);
    free(dq1); free(dk1); free(dv1); free(dq2); free(dk2); free(dv2);
}

int main(void) {
    lm_set_threads(1); /* tiny shapes */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_gradients_match_torch),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_lora_gradients_and_equivalences),
        cmocka_unit_test(test_attention_backward_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
