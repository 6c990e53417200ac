/* test_train_trainer.c — the trainer API (trainer/trainer.c) on tiny random models:
 * SFT overfits 8 short examples (loss < 0.05), micro-batching equals one big batch,
 * checkpoint resume is bit-exact (full AdamW, SGD, LoRA), KD (local teacher and top-k)
 * and GRPO steps run and report sane metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lora.h"
#include "model.h"
#include "trainer.h"
#include "util.h"

static char g_dir[64];

static void make_model(const char *sub, uint64_t seed) {
    lm_config c;
    lm_config_default(&c);
    snprintf(c.model_type, sizeof c.model_type, "qwen2");
    c.vocab_size = 48;
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 8;
    c.max_position_embeddings = 64;
    c.rope_theta = 10000.0f;
    c.initializer_range = 0.1f;
    c.tie_word_embeddings = 1;
    c.attn_bias = 1;
    c.n_eos = 1;
    c.eos_token_ids[0] = 1;
    c.bos_token_id = -1;
    c.pad_token_id = -1;
    lm_model *m;
    assert_int_equal(lm_model_create(&c, &m), 0);
    lm_model_init_random(m, seed);
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, sub);
    assert_int_equal(lm_model_save(m, path, "F32", NULL, NULL), 0);
    lm_model_free(m);
}

static int setup(void **st) {
    snprintf(g_dir, sizeof g_dir, "/tmp/srlm_test_trainer_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    make_model("base", 1);
    make_model("teacher", 2);
    return 0;
}

static int teardown(void **st) {
    srlm_rm_rf(g_dir);
    return 0;
}

/* 8 rows: a 3-token prompt and a 5..9-token completion, deterministic. */
typedef struct {
    int32_t ids[8][16];
    const int32_t *rows[8];
    int len[8], plen[8];
} data8;

static void make_data(data8 *d, uint64_t seed) {
    srlm_rng r;
    srlm_rng_seed(&r, seed);
    for (int i = 0; i < 8; i++) {
        d->len[i] = 8 + (int)srlm_rng_below(&r, 5);
        d->plen[i] = 3;
        for (int t = 0; t < d->len[i]; t++) d->ids[i][t] = 2 + (int32_t)srlm_rng_below(&r, 46);
        d->rows[i] = d->ids[i];
    }
}

static tr_batch batch_of(data8 *d, int n) {
    return (tr_batch){n, d->rows, d->len, d->plen, NULL};
}

static tr_trainer *make_trainer(tr_config *c) {
    char path[128];
    snprintf(path, sizeof path, "%s/base", g_dir);
    tr_trainer *t;
    c->threads = 1; /* tiny shapes: threads only add overhead on a shared machine */
    int rc = tr_create(path, c, &t);
    if (rc) fprintf(stderr, "tr_create: %s\n", srlm_last_error());
    assert_int_equal(rc, 0);
    return t;
}

static void test_sft_overfits(void **st) {
    tr_config c;
    tr_config_default(&c);
    c.opt.lr = 3e-3f;
    c.micro_batch = 8;
    tr_trainer *t = make_trainer(&c);
    data8 d;
    make_data(&d, 7);
    tr_batch b = batch_of(&d, 8);
    tr_metrics m;
    double first = 0;
    int step;
    for (step = 0; step < 400; step++) {
        assert_int_equal(tr_sft_step(t, &b, &m), 0);
        if (step == 0) first = m.loss;
        if (m.loss < 0.05) break;
    }
    fprintf(stderr, "SFT overfit: loss %.3f -> %.4f after %d steps\n", first, m.loss, step + 1);
    assert_true(first > 3.0);
    assert_true(m.loss < 0.05);
    assert_int_equal(m.tokens, (long)(d.len[0] + d.len[1] + d.len[2] + d.len[3] + d.len[4] + d.len[5] + d.len[6] +
                                      d.len[7] - 8 * 3));
    char buf[1024];
    assert_int_equal(tr_metrics_json(&m, "sft", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "\"grad_norm\""));
    tr_free(t);
}

/* One step with micro_batch 3 equals one step with all 8 rows at once. */
static void test_micro_batches_equal_full_batch(void **st) {
    data8 d;
    make_data(&d, 9);
    tr_batch b = batch_of(&d, 8);
    tr_metrics m1, m2;
    tr_config c;
    tr_config_default(&c);
    c.opt.lr = 1e-2f;
    c.opt.kind = OPT_SGD;
    c.opt.max_grad_norm = 0;
    c.micro_batch = 8;
    tr_trainer *a = make_trainer(&c);
    c.micro_batch = 3;
    tr_trainer *b2 = make_trainer(&c);
    assert_int_equal(tr_sft_step(a, &b, &m1), 0);
    assert_int_equal(tr_sft_step(b2, &b, &m2), 0);
    assert_true(fabs(m1.loss - m2.loss) < 1e-5 * fabs(m1.loss));
    assert_true(fabs(m1.grad_norm - m2.grad_norm) < 1e-4 * m1.grad_norm);
    lm_model *ma = tr_model(a), *mb = tr_model(b2);
    double err = 0;
    for (size_t i = 0; i < ma->n_params; i++) err = fmax(err, fabs(ma->params[i] - mb->params[i]));
    assert_true(err < 1e-6);
    tr_free(a);
    tr_free(b2);
}

/* Train 2 steps, checkpoint, 2 more; resume from the checkpoint and redo the 2 steps:
 * identical bits. */
static void resume_case(tr_config *c) {
    data8 d;
    make_data(&d, 11);
    tr_batch b = batch_of(&d, 8);
    tr_metrics m;
    tr_trainer *t = make_trainer(c);
    char ck[128];
    snprintf(ck, sizeof ck, "%s/ckpt", g_dir);
    for (int i = 0; i < 2; i++) assert_int_equal(tr_sft_step(t, &b, &m), 0);
    assert_int_equal(tr_save(t, ck, "F32", "{\"cursor\": 42}"), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(tr_sft_step(t, &b, &m), 0);
    tr_config c2;
    tr_config_default(&c2);
    c2.micro_batch = c->micro_batch;
    tr_trainer *r;
    char *user = NULL;
    int rc = tr_load(ck, &c2, &r, &user);
    if (rc) fprintf(stderr, "tr_load: %s\n", srlm_last_error());
    assert_int_equal(rc, 0);
    assert_non_null(user);
    assert_non_null(strstr(user, "42"));
    free(user);
    assert_int_equal(tr_step(r), 2);
    for (int i = 0; i < 2; i++) assert_int_equal(tr_sft_step(r, &b, &m), 0);
    lm_model *a = tr_model(t), *z = tr_model(r);
    assert_memory_equal(a->params, z->params, sizeof(float) * a->n_params);
    if (a->lora) {
        assert_non_null(z->lora);
        assert_memory_equal(a->lora->data, z->lora->data, sizeof(float) * a->lora->n_params);
    }
    /* the checkpoint is a loadable HF dir */
    lm_model *chk;
    assert_int_equal(lm_model_load(ck, &chk), 0);
    lm_model_free(chk);
    tr_free(t);
    tr_free(r);
    srlm_rm_rf(ck);
}

static void test_resume_bit_exact(void **st) {
    tr_config c;
    tr_config_default(&c);
    c.opt.lr = 1e-3f;
    c.opt.weight_decay = 0.01f;
    c.opt.sched = OPT_SCHED_COSINE;
    c.opt.warmup_steps = 1;
    c.opt.total_steps = 10;
    c.micro_batch = 4;
    resume_case(&c);
    c.opt.kind = OPT_SGD;
    c.opt.momentum = 0.9f;
    resume_case(&c);
    tr_config_default(&c);
    c.opt.lr = 1e-2f;
    c.lora_rank = 4;
    c.lora_alpha = 8;
    c.lora_targets = 0x7F;
    c.seed = 3;
    resume_case(&c);
}

static void test_lora_trains_adapters_only(void **st) {
    tr_config c;
    tr_config_default(&c);
    c.opt.lr = 1e-2f;
    c.lora_rank = 4;
    c.lora_alpha = 8;
    assert_int_equal(lora_parse_targets("q,v,down", &c.lora_targets), 0);
    tr_trainer *t = make_trainer(&c);
    lm_model *m = tr_model(t);
    float *base = malloc(sizeof(float) * m->n_params);
    memcpy(base, m->params, sizeof(float) * m->n_params);
    data8 d;
    make_data(&d, 13);
    tr_batch b = batch_of(&d, 8);
    tr_metrics m0, m1;
    assert_int_equal(tr_sft_step(t, &b, &m0), 0);
    for (int i = 0; i < 20; i++) assert_int_equal(tr_sft_step(t, &b, &m1), 0);
    assert_true(m1.loss < m0.loss);
    assert_memory_equal(base, m->params, sizeof(float) * m->n_params); /* base frozen */
    /* the saved checkpoint: merged model + PEFT adapter */
    char ck[128], p[200];
    snprintf(ck, sizeof ck, "%s/lora_ckpt", g_dir);
    assert_int_equal(tr_save(t, ck, "F32", NULL), 0);
    snprintf(p, sizeof p, "%s/adapter_config.json", ck);
    assert_true(srlm_file_exists(p));
    lm_model *merged;
    assert_int_equal(lm_model_load(ck, &merged), 0);
    int32_t ids[8] = {2, 5, 9, 11, 3, 4, 40, 7};
    float *l1 = malloc(sizeof(float) * 8 * 48), *l2 = malloc(sizeof(float) * 8 * 48);
    assert_int_equal(lm_forward(m, ids, NULL, 1, 8, l1, NULL), 0);
    assert_int_equal(lm_forward(merged, ids, NULL, 1, 8, l2, NULL), 0);
    double e = 0, s = 1e-6;
    for (int i = 0; i < 8 * 48; i++) {
        e = fmax(e, fabs(l1[i] - l2[i]));
        s = fmax(s, fabs(l1[i]));
    }
    assert_true(e / s < 1e-4);
    free(l1); free(l2); free(base);
    lm_model_free(merged);
    tr_free(t);
    srlm_rm_rf(ck);
}

static void test_kd_steps(void **st) {
    char tdir[128];
    snprintf(tdir, sizeof tdir, "%s/teacher", g_dir);
    data8 d;
    make_data(&d, 17);
    tr_batch b = batch_of(&d, 8);
    for (int k = 0; k < 3; k++) {
        tr_config c;
        tr_config_default(&c);
        c.opt.lr = 3e-3f;
        c.teacher_dir = tdir;
        c.kd_kind = (loss_kd_kind)k;
        c.kd_beta = 0.5f;
        c.kd_temperature = 1.5f;
        tr_trainer *t = make_trainer(&c);
        tr_metrics m0, m1;
        assert_int_equal(tr_kd_step(t, &b, NULL, &m0), 0);
        for (int i = 0; i < 15; i++) assert_int_equal(tr_kd_step(t, &b, NULL, &m1), 0);
        fprintf(stderr, "KD %s: %.4f -> %.4f\n", loss_kd_name((loss_kd_kind)k), m0.loss, m1.loss);
        assert_true(m0.loss > 0);
        assert_true(m1.loss < m0.loss);
        tr_free(t);
    }
    /* top-k (K = 5) from the teacher's log-probabilities */
    lm_model *teacher;
    assert_int_equal(lm_model_load(tdir, &teacher), 0);
    int K = 5, V = 48;
    int32_t *ids[8];
    float *lp[8];
    for (int i = 0; i < 8; i++) {
        float *lg = malloc(sizeof(float) * d.len[i] * V);
        assert_int_equal(lm_forward(teacher, d.ids[i], NULL, 1, d.len[i], lg, NULL), 0);
        ids[i] = calloc((size_t)d.len[i] * K, sizeof(int32_t));
        lp[i] = calloc((size_t)d.len[i] * K, sizeof(float));
        for (int t = 1; t < d.len[i]; t++) { /* entry t: distribution of token t, from logits at t-1 */
            const float *z = lg + (size_t)(t - 1) * V;
            double mx = -1e30, s = 0;
            for (int v = 0; v < V; v++) mx = fmax(mx, z[v]);
            for (int v = 0; v < V; v++) s += exp(z[v] - mx);
            int used[48] = {0};
            for (int k = 0; k < K; k++) {
                int best = -1;
                for (int v = 0; v < V; v++)
                    if (!used[v] && (best < 0 || z[v] > z[best])) best = v;
                used[best] = 1;
                ids[i][t * K + k] = best;
                lp[i][t * K + k] = (float)(z[best] - mx - log(s));
            }
        }
        free(lg);
    }
    tr_topk tk = {K, (const int32_t *const *)ids, (const float *const *)lp};
    tr_config c;
    tr_config_default(&c);
    c.opt.lr = 3e-3f;
    tr_trainer *t = make_trainer(&c);
    tr_metrics m0, m1;
    assert_int_equal(tr_kd_step(t, &b, &tk, &m0), 0);
    for (int i = 0; i < 15; i++) assert_int_equal(tr_kd_step(t, &b, &tk, &m1), 0);
    fprintf(stderr, "KD top-%d fkl: %.4f -> %.4f\n", K, m0.loss, m1.loss);
    assert_true(m1.loss < m0.loss);
    /* without a teacher and without top-k: a clear error */
    assert_int_equal(tr_kd_step(t, &b, NULL, &m1), SRLM_EINVAL);
    tr_free(t);
    for (int i = 0; i < 8; i++) {
        free(ids[i]);
        free(lp[i]);
    }
    lm_model_free(teacher);
}

static void test_grpo_steps(void **st) {
    data8 d;
    make_data(&d, 19);
    float reward[8] = {1, 0, 0, 1, 1, 1, 0, 1};
    int gid[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    tr_config c;
    tr_config_default(&c);
    c.opt.lr = 1e-2f;
    c.micro_batch = 3;
    c.grpo.kl_beta = 0.04f;
    c.grpo.eps_high = 0.28f;
    tr_trainer *t = make_trainer(&c);
    /* behaviour logprobs from the initial policy */
    lm_model *m = tr_model(t);
    float *old[8];
    for (int i = 0; i < 8; i++) {
        old[i] = calloc(16, sizeof(float));
        assert_int_equal(lm_sequence_logprobs(m, d.ids[i], &d.len[i], 1, d.len[i], 1.0f, old[i]), 0);
    }
    tr_rollouts ro = {8, d.rows, d.len, d.plen, (const float *const *)old, reward, gid};
    tr_metrics m1, m2, m3;
    assert_int_equal(tr_grpo_step(t, &ro, &m1), 0);
    /* first step: on-policy, ratio 1, nothing clipped, KL 0 (policy = reference) */
    assert_true(fabs(m1.ratio_mean - 1) < 1e-4 && fabs(m1.ratio_min - 1) < 1e-4 && fabs(m1.ratio_max - 1) < 1e-4);
    assert_true(m1.clip_frac == 0);
    assert_true(fabs(m1.kl) < 1e-6);
    assert_true(m1.grad_norm > 0);
    assert_true(m1.entropy > 0);
    assert_true(fabs(m1.reward_mean - 0.625) < 1e-9);
    assert_int_equal(tr_grpo_step(t, &ro, &m2), 0);
    for (int i = 0; i < 8; i++) assert_int_equal(tr_grpo_step(t, &ro, &m3), 0);
    /* after updates: ratios move, the policy drifts from the reference */
    assert_true(m2.kl > 0);
    assert_true(m3.ratio_max > 1.0 || m3.ratio_min < 1.0);
    /* the positive-advantage rows became more likely */
    double up = 0, down = 0;
    float now[16];
    for (int i = 0; i < 8; i++) {
        assert_int_equal(lm_sequence_logprobs(m, d.ids[i], &d.len[i], 1, d.len[i], 1.0f, now), 0);
        double s = 0;
        for (int k = d.plen[i]; k < d.len[i]; k++) s += now[k] - old[i][k];
        if (reward[i] > 0) up += s;
        else down += s;
    }
    fprintf(stderr, "GRPO: Σ Δlogp rewarded %.3f, unrewarded %.3f, clip %.3f, kl %.4f\n", up, down, m3.clip_frac,
            m3.kl);
    assert_true(up > down);
    char buf[2048];
    assert_int_equal(tr_metrics_json(&m3, "grpo", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "\"clip_frac\""));
    for (int i = 0; i < 8; i++) free(old[i]);
    tr_free(t);
}

/* GRPO with a KL penalty resumes bit-exactly: the reference is the model dir the trainer
 * came from, recorded in the checkpoint. */
static void test_grpo_resume_bit_exact(void **st) {
    data8 d;
    make_data(&d, 23);
    float reward[8] = {1, 0, 1, 0, 0, 0, 1, 1};
    int gid[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    tr_config c;
    tr_config_default(&c);
    c.opt.lr = 1e-2f;
    c.grpo.kl_beta = 0.1f;
    tr_trainer *t = make_trainer(&c);
    tr_rollouts ro = {8, d.rows, d.len, d.plen, NULL, reward, gid};
    tr_metrics m;
    char ck[128];
    snprintf(ck, sizeof ck, "%s/grpo_ckpt", g_dir);
    for (int i = 0; i < 2; i++) assert_int_equal(tr_grpo_step(t, &ro, &m), 0);
    assert_int_equal(tr_save(t, ck, "F32", NULL), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(tr_grpo_step(t, &ro, &m), 0);
    assert_true(m.kl > 0);
    tr_config c2;
    tr_config_default(&c2);
    c2.grpo.kl_beta = 0.1f;
    c2.threads = 1;
    tr_trainer *r;
    assert_int_equal(tr_load(ck, &c2, &r, NULL), 0);
    tr_metrics m2;
    for (int i = 0; i < 2; i++) assert_int_equal(tr_grpo_step(r, &ro, &m2), 0);
    assert_true(m2.kl == m.kl);
    assert_memory_equal(tr_model(t)->params, tr_model(r)->params, sizeof(float) * tr_model(t)->n_params);
    tr_free(t);
    tr_free(r);
    srlm_rm_rf(ck);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sft_overfits),
        cmocka_unit_test(test_micro_batches_equal_full_batch),
        cmocka_unit_test(test_resume_bit_exact),
        cmocka_unit_test(test_lora_trains_adapters_only),
        cmocka_unit_test(test_kd_steps),
        cmocka_unit_test(test_grpo_steps),
        cmocka_unit_test(test_grpo_resume_bit_exact),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
