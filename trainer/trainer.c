/* trainer.c — the reusable trainer: SFT / KD / GRPO optimizer steps over micro-batches,
 * full fine-tuning or LoRA, checkpoints with bit-exact resume (trainer.h). */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backward.h"
#include "lora.h"
#include "model.h"
#include "trainer.h"
#include "util.h"

struct tr_trainer {
    tr_config cfg;
    char *base_dir;      /* model dir the policy (or LoRA base) came from */
    char *tok_dir;       /* where tokenizer files are copied from on save */
    char *teacher_dir, *ref_dir;
    lm_model *m;
    lm_lora *lora;       /* owned; attached as m->lora */
    float *train;        /* the trainable flat array: m->params or lora->data */
    size_t n_train;
    float *grad;         /* [n_train] */
    lm_params gp;        /* full FT: grad bound to the model layout */
    lm_lora dl;          /* LoRA: grad bound to the adapter layout */
    opt_state *opt;
    lm_model *teacher, *ref;
    lm_acts *acts, *tacts;   /* policy / teacher activation caches */
};

void tr_config_default(tr_config *c) {
    memset(c, 0, sizeof *c);
    opt_config_default(&c->opt);
    c->micro_batch = 4;
    c->lora_alpha = 16.0f;
    c->lora_targets = 0x7Fu;
    c->kd_kind = LOSS_KD_FKL;
    c->kd_beta = 0.5f;
    c->kd_temperature = 1.0f;
    loss_grpo_config_default(&c->grpo);
    c->adv_kind = LOSS_ADV_GRPO;
    c->adv_eps = 1e-4f;
    c->policy_temperature = 1.0f;
}

static char *dup_or_null(const char *s) { return s ? srlm_xstrdup(s) : NULL; }

void tr_free(tr_trainer *t) {
    if (!t) return;
    if (t->lora) lora_unbind(&t->dl);
    lm_params_unbind(&t->gp);
    if (t->m) t->m->lora = NULL;
    lm_model_free(t->m);
    lora_free(t->lora);
    free(t->grad);
    opt_free(t->opt);
    lm_model_free(t->teacher);
    lm_model_free(t->ref);
    lm_acts_free(t->acts);
    lm_acts_free(t->tacts);
    free(t->base_dir);
    free(t->tok_dir);
    free(t->teacher_dir);
    free(t->ref_dir);
    free(t);
}

/* Everything after the policy (and its LoRA) is in place: gradients, optimizer, teacher,
 * reference. */
static int finish_setup(tr_trainer *t) {
    int rc;
    if (t->lora) {
        t->m->lora = t->lora;
        t->train = t->lora->data;
        t->n_train = t->lora->n_params;
    } else {
        t->train = t->m->params;
        t->n_train = t->m->n_params;
    }
    if (!(t->grad = srlm_alloc_floats(t->n_train)))
        return srlm_set_error(SRLM_ENOMEM, "gradient buffer of %zu floats", t->n_train);
    if (t->lora) rc = lora_bind(t->lora, t->grad, &t->dl);
    else rc = lm_params_bind(t->m, t->grad, &t->gp);
    if (rc) return rc;
    if ((rc = opt_create(&t->cfg.opt, t->n_train, &t->opt))) return rc;
    if (!t->lora) /* HF Trainer: no weight decay on biases and norm weights */
        for (int i = 0; i < t->m->n_tensors; i++) {
            lm_tensor_kind k = t->m->tensors[i].kind;
            if (k == LM_T_LN1 || k == LM_T_LN2 || k == LM_T_NORM || k == LM_T_BQ || k == LM_T_BK || k == LM_T_BV)
                opt_no_decay(t->opt, t->m->tensors[i].offset, t->m->tensors[i].numel);
        }
    if (t->teacher_dir) {
        if ((rc = lm_model_load(t->teacher_dir, &t->teacher))) return rc;
        if (t->teacher->cfg.vocab_size != t->m->cfg.vocab_size)
            return srlm_set_error(SRLM_EINVAL, "teacher %s has vocab %d, student %d", t->teacher_dir,
                                  t->teacher->cfg.vocab_size, t->m->cfg.vocab_size);
    }
    return 0;
}

/* The GRPO reference model, loaded on the first GRPO step that needs it: cfg.ref_dir, else
 * the model directory the trainer was created from (base_dir; recorded in checkpoints, so
 * a resumed trainer gets the same reference), else (no directory, or it is gone) a frozen
 * copy of the policy as it is now (LoRA merged). */
static int ensure_ref(tr_trainer *t) {
    if (t->ref || !(t->cfg.grpo.kl_beta > 0)) return 0;
    int rc;
    const char *rd = t->ref_dir ? t->ref_dir : t->base_dir;
    if (rd && !t->ref_dir && !srlm_file_exists(rd)) {
        SRLM_WARN("reference model %s is gone: using a copy of the current policy", rd);
        rd = NULL;
    }
    if (rd) {
        if ((rc = lm_model_load(rd, &t->ref))) return rc;
        if (t->ref->cfg.vocab_size != t->m->cfg.vocab_size)
            return srlm_set_error(SRLM_EINVAL, "reference model %s has vocab %d, policy %d", rd,
                                  t->ref->cfg.vocab_size, t->m->cfg.vocab_size);
        return 0;
    }
    if ((rc = lm_model_create(&t->m->cfg, &t->ref))) return rc;
    memcpy(t->ref->params, t->m->params, sizeof(float) * t->m->n_params);
    if (t->lora) rc = lora_merge(t->ref, t->lora, NULL);
    return rc;
}

static void copy_cfg(tr_trainer *t, const tr_config *cfg) {
    t->cfg = *cfg;
    if (t->cfg.micro_batch < 1) t->cfg.micro_batch = 1;
    t->teacher_dir = dup_or_null(cfg->teacher_dir);
    t->ref_dir = dup_or_null(cfg->ref_dir);
    t->cfg.teacher_dir = t->teacher_dir;
    t->cfg.ref_dir = t->ref_dir;
    if (cfg->threads > 0) lm_set_threads(cfg->threads);
}

int tr_create(const char *model_dir, const tr_config *cfg, tr_trainer **out) {
    *out = NULL;
    tr_trainer *t = srlm_xcalloc(1, sizeof *t);
    copy_cfg(t, cfg);
    char abs[PATH_MAX];
    t->base_dir = srlm_xstrdup(realpath(model_dir, abs) ? abs : model_dir);
    t->tok_dir = srlm_xstrdup(t->base_dir);
    int rc = lm_model_load(model_dir, &t->m);
    if (!rc && cfg->lora_rank > 0)
        rc = lora_create(t->m, cfg->lora_rank, cfg->lora_alpha, cfg->lora_targets, cfg->seed, &t->lora);
    if (!rc) rc = finish_setup(t);
    if (rc) {
        tr_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int tr_create_from_model(lm_model *m, const char *base_dir, const tr_config *cfg, tr_trainer **out) {
    *out = NULL;
    tr_trainer *t = srlm_xcalloc(1, sizeof *t);
    copy_cfg(t, cfg);
    t->m = m;
    t->base_dir = dup_or_null(base_dir);
    t->tok_dir = dup_or_null(base_dir);
    int rc = 0;
    if (cfg->lora_rank > 0)
        rc = lora_create(t->m, cfg->lora_rank, cfg->lora_alpha, cfg->lora_targets, cfg->seed, &t->lora);
    if (!rc) rc = finish_setup(t);
    if (rc) {
        tr_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

lm_model *tr_model(tr_trainer *t) { return t->m; }
long tr_step(const tr_trainer *t) { return t->opt->step; }

/* ---- micro-batches ------------------------------------------------------------------ */

typedef struct {
    int B, T;
    int32_t *tokens;  /* [B, T] right-padded with 0 */
    int *lengths;     /* [B] */
    int *targets;     /* [B·T]: next-token target of row r or LOSS_IGNORE */
    int *rows;        /* rows with a target */
    int n_rows;
    int *src;         /* [B·T] flat index of the target token in the caller's row (b, t+1) */
} mbatch;

static int target_at(const tr_batch *b, int i, int t) {
    if (t < 1 || t >= b->len[i]) return 0;
    if (b->loss_mask) return b->loss_mask[i][t] != 0;
    return t >= (b->prompt_len ? b->prompt_len[i] : 1);
}

static void mb_build(mbatch *mb, const tr_batch *b, int i0, int n) {
    int T = 1;
    for (int i = i0; i < i0 + n; i++) T = b->len[i] > T ? b->len[i] : T;
    mb->B = n;
    mb->T = T;
    size_t N = (size_t)n * T;
    mb->tokens = srlm_xcalloc(N, sizeof(int32_t));
    mb->lengths = srlm_xmalloc(sizeof(int) * n);
    mb->targets = srlm_xmalloc(sizeof(int) * N);
    mb->rows = srlm_xmalloc(sizeof(int) * N);
    mb->src = srlm_xmalloc(sizeof(int) * N);
    mb->n_rows = 0;
    for (int k = 0; k < n; k++) {
        int i = i0 + k;
        mb->lengths[k] = b->len[i];
        memcpy(mb->tokens + (size_t)k * T, b->ids[i], sizeof(int32_t) * b->len[i]);
        for (int t = 0; t < T; t++) {
            int r = k * T + t;
            mb->src[r] = -1;
            if (target_at(b, i, t + 1)) {
                mb->targets[r] = b->ids[i][t + 1];
                mb->src[r] = t + 1;
                mb->rows[mb->n_rows++] = r;
            } else {
                mb->targets[r] = LOSS_IGNORE;
            }
        }
    }
}

static void mb_free(mbatch *mb) {
    free(mb->tokens);
    free(mb->lengths);
    free(mb->targets);
    free(mb->rows);
    free(mb->src);
}

static int ensure_acts(lm_model *m, lm_acts **acts, int B, int T) {
    if (*acts && (*acts)->T >= T && (size_t)(*acts)->B * (*acts)->T >= (size_t)B * T) return 0;
    lm_acts_free(*acts);
    *acts = NULL;
    return lm_acts_alloc(m, B, T, 0, acts);
}

static int check_batch(const tr_trainer *t, int n_rows, const int32_t *const *ids, const int *len) {
    if (n_rows <= 0) return srlm_set_error(SRLM_EINVAL, "empty batch");
    int V = t->m->cfg.vocab_size;
    for (int i = 0; i < n_rows; i++) {
        if (len[i] < 1) return srlm_set_error(SRLM_EINVAL, "row %d: length %d", i, len[i]);
        if (len[i] > t->m->cfg.max_position_embeddings && t->m->cfg.max_position_embeddings > 0)
            SRLM_DEBUG("row %d: %d tokens exceed max_position_embeddings %d", i, len[i],
                       t->m->cfg.max_position_embeddings);
        for (int k = 0; k < len[i]; k++)
            if (ids[i][k] < 0 || ids[i][k] >= V)
                return srlm_set_error(SRLM_EINVAL, "row %d token %d: id %d outside the vocabulary [0, %d)", i, k,
                                      ids[i][k], V);
    }
    return 0;
}

/* Zero gradients at the start of a step. */
static void zero_grad(tr_trainer *t) { memset(t->grad, 0, sizeof(float) * t->n_train); }

/* Forward + loss head + backward for one micro-batch. */
static int mb_train(tr_trainer *t, mbatch *mb, lm_head_loss_fn fn, void *ctx, double *loss) {
    lm_model *m = t->m;
    int rc = ensure_acts(m, &t->acts, mb->B, mb->T);
    if (rc) return rc;
    if ((rc = lm_forward(m, mb->tokens, mb->lengths, mb->B, mb->T, NULL, t->acts))) return rc;
    size_t N = (size_t)mb->B * mb->T;
    float *dy = srlm_alloc_floats(N * m->cfg.hidden_size);
    if (!dy) return srlm_set_error(SRLM_ENOMEM, "dy");
    rc = lm_head_backward(m, t->acts->y, (int)N, mb->rows, mb->n_rows, 0, fn, ctx, dy,
                          t->lora ? NULL : t->gp.lm_head, loss);
    if (!rc)
        rc = lm_backward(m, t->acts, mb->tokens, mb->lengths, mb->B, mb->T, dy, t->lora ? NULL : &t->gp,
                         t->lora ? &t->dl : NULL);
    free(dy);
    return rc;
}

/* Clip and apply the accumulated gradient. A non-finite loss or gradient norm (overflow,
 * NaN data / weights) stops here with SRLM_EINVAL before anything is updated: the
 * parameters, the optimizer state and its step stay those of the last good step, so a
 * checkpoint saved afterwards (or the last one on disk) never holds NaN. */
static int finish_step(tr_trainer *t, tr_metrics *mt, double t0, long all_tokens) {
    float lr = opt_lr_at(&t->opt->cfg, t->opt->step);
    double norm = opt_grad_norm(t->grad, t->n_train);
    mt->grad_norm = norm;
    if (!isfinite(norm) || !isfinite(mt->loss)) {
        memset(t->grad, 0, sizeof(float) * t->n_train);
        return srlm_set_error(SRLM_EINVAL,
                              "step %ld: non-finite loss (%g) or gradient norm (%g); parameters not updated "
                              "(lower --lr, check the data and the model weights)",
                              t->opt->step + 1, mt->loss, norm);
    }
    opt_clip_to_norm(t->grad, t->n_train, t->opt->cfg.max_grad_norm, norm);
    opt_step(t->opt, t->train, t->grad, lr);
    mt->lr = lr;
    mt->step = t->opt->step;
    mt->seconds = srlm_now() - t0;
    mt->tokens_per_s = mt->seconds > 0 ? all_tokens / mt->seconds : 0;
    return 0;
}

/* ---- SFT ------------------------------------------------------------------------------ */

typedef struct {
    const mbatch *mb;
    float denom;
    int V;
} ce_ctx;

static double ce_fn(void *vctx, const int *rows, int n, float *logits, int want_grad) {
    ce_ctx *c = vctx;
    int *tg = srlm_xmalloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) tg[i] = c->mb->targets[rows[i]];
    double l = loss_ce(logits, tg, n, c->V, c->denom, want_grad ? logits : NULL, NULL);
    free(tg);
    return l;
}

static long count_targets(const tr_batch *b) {
    long n = 0;
    for (int i = 0; i < b->n_rows; i++)
        for (int t = 1; t < b->len[i]; t++) n += target_at(b, i, t);
    return n;
}

static long count_tokens(int n, const int *len) {
    long s = 0;
    for (int i = 0; i < n; i++) s += len[i];
    return s;
}

/* The end of an SFT or KD step: record the summed loss and the target-token count of
 * batch b, then clip and apply (finish_step). */
static int finish_batch_step(tr_trainer *t, tr_metrics *mt, double t0, const tr_batch *b, double loss,
                             long ntg) {
    mt->loss = loss;
    mt->tokens = ntg;
    mt->rows = b->n_rows;
    return finish_step(t, mt, t0, count_tokens(b->n_rows, b->len));
}

int tr_sft_step(tr_trainer *t, const tr_batch *b, tr_metrics *mt) {
    memset(mt, 0, sizeof *mt);
    int rc = check_batch(t, b->n_rows, b->ids, b->len);
    if (rc) return rc;
    double t0 = srlm_now();
    long ntg = count_targets(b);
    if (ntg == 0) return srlm_set_error(SRLM_EINVAL, "SFT batch has no target tokens");
    zero_grad(t);
    double total = 0;
    for (int i0 = 0; i0 < b->n_rows && !rc; i0 += t->cfg.micro_batch) {
        int n = b->n_rows - i0 < t->cfg.micro_batch ? b->n_rows - i0 : t->cfg.micro_batch;
        mbatch mb;
        mb_build(&mb, b, i0, n);
        ce_ctx c = {&mb, (float)ntg, t->m->cfg.vocab_size};
        double l = 0;
        rc = mb_train(t, &mb, ce_fn, &c, &l);
        total += l;
        mb_free(&mb);
    }
    if (rc) return rc;
    return finish_batch_step(t, mt, t0, b, total, ntg);
}

/* ---- KD ------------------------------------------------------------------------------- */

typedef struct {
    tr_trainer *t;
    const mbatch *mb;
    int i0;            /* first caller row of the micro-batch */
    const tr_topk *topk;
    const float *ty;   /* teacher y [N, D] (local teacher) */
    float denom;
} kd_ctx;

static double kd_fn(void *vctx, const int *rows, int n, float *logits, int want_grad) {
    kd_ctx *c = vctx;
    tr_trainer *t = c->t;
    const tr_config *cfg = &t->cfg;
    int V = t->m->cfg.vocab_size;
    float *dz = want_grad ? logits : NULL;
    if (!c->topk) {
        int D = t->teacher->cfg.hidden_size;
        float *yc = srlm_alloc_floats((size_t)n * D), *tl = srlm_alloc_floats((size_t)n * V);
        if (!yc || !tl) {
            free(yc);
            free(tl);
            return NAN;
        }
        for (int i = 0; i < n; i++) memcpy(yc + (size_t)i * D, c->ty + (size_t)rows[i] * D, sizeof(float) * D);
        lm_logits(t->teacher, yc, n, tl);
        double l = loss_kd_full(logits, tl, NULL, n, V, cfg->kd_kind, cfg->kd_beta, cfg->kd_temperature,
                                c->denom, dz);
        free(yc);
        free(tl);
        return l;
    }
    int K = c->topk->K;
    int32_t *ids = srlm_xmalloc(sizeof(int32_t) * (size_t)n * K);
    float *lp = srlm_xmalloc(sizeof(float) * (size_t)n * K);
    for (int i = 0; i < n; i++) {
        int r = rows[i], row = c->i0 + r / c->mb->T, pos = c->mb->src[r];
        memcpy(ids + (size_t)i * K, c->topk->ids[row] + (size_t)pos * K, sizeof(int32_t) * K);
        memcpy(lp + (size_t)i * K, c->topk->logp[row] + (size_t)pos * K, sizeof(float) * K);
    }
    double l = loss_kd_topk(logits, ids, lp, K, NULL, n, V, cfg->kd_kind, cfg->kd_beta, cfg->kd_temperature,
                            c->denom, dz);
    free(ids);
    free(lp);
    return l;
}

int tr_kd_step(tr_trainer *t, const tr_batch *b, const tr_topk *topk, tr_metrics *mt) {
    memset(mt, 0, sizeof *mt);
    int rc = check_batch(t, b->n_rows, b->ids, b->len);
    if (rc) return rc;
    if (!topk && !t->teacher)
        return srlm_set_error(SRLM_EINVAL, "KD step without teacher top-k needs a local teacher (teacher_dir)");
    if (topk && topk->K < 1) return srlm_set_error(SRLM_EINVAL, "KD top-k: K = %d", topk->K);
    double t0 = srlm_now();
    long ntg = count_targets(b);
    if (ntg == 0) return srlm_set_error(SRLM_EINVAL, "KD batch has no target tokens");
    zero_grad(t);
    double total = 0;
    for (int i0 = 0; i0 < b->n_rows && !rc; i0 += t->cfg.micro_batch) {
        int n = b->n_rows - i0 < t->cfg.micro_batch ? b->n_rows - i0 : t->cfg.micro_batch;
        mbatch mb;
        mb_build(&mb, b, i0, n);
        kd_ctx c = {t, &mb, i0, topk, NULL, (float)ntg};
        if (!topk) {
            rc = ensure_acts(t->teacher, &t->tacts, mb.B, mb.T);
            if (!rc) rc = lm_forward(t->teacher, mb.tokens, mb.lengths, mb.B, mb.T, NULL, t->tacts);
            c.ty = t->tacts ? t->tacts->y : NULL;
        }
        double l = 0;
        if (!rc) rc = mb_train(t, &mb, kd_fn, &c, &l);
        if (!rc && isnan(l)) rc = srlm_set_error(SRLM_ENOMEM, "KD: teacher logits chunk");
        total += l;
        mb_free(&mb);
    }
    if (rc) return rc;
    return finish_batch_step(t, mt, t0, b, total, ntg);
}

/* ---- GRPO ----------------------------------------------------------------------------- */

typedef struct {
    const mbatch *mb;
    float inv_temp;
    int V;
    float *logp, *ent;   /* pass 1 outputs, indexed like rows (position in the rows list) */
    const float *dlogp;  /* pass 2 input, same indexing */
    int base;            /* index of the chunk's first row in the rows list */
    const int *rows0;    /* the rows list (to find a chunk's offset) */
} pg_ctx;

static double pg_fn(void *vctx, const int *rows, int n, float *logits, int want_grad) {
    pg_ctx *c = vctx;
    int off = (int)(rows - c->rows0);
    int *tg = srlm_xmalloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) tg[i] = c->mb->targets[rows[i]];
    size_t nv = (size_t)n * c->V;
    if (c->inv_temp != 1.0f)
        for (size_t i = 0; i < nv; i++) logits[i] *= c->inv_temp;
    if (!want_grad) {
        loss_token_logprobs(logits, tg, n, c->V, c->logp + off, c->ent + off);
    } else {
        loss_logprob_backward(logits, tg, c->dlogp + off, n, c->V, logits);
        if (c->inv_temp != 1.0f)
            for (size_t i = 0; i < nv; i++) logits[i] *= c->inv_temp;
    }
    free(tg);
    return 0;
}

int tr_grpo_step(tr_trainer *t, const tr_rollouts *ro, tr_metrics *mt) {
    memset(mt, 0, sizeof *mt);
    int rc = check_batch(t, ro->n_rows, ro->ids, ro->len);
    if (rc) return rc;
    double t0 = srlm_now();
    if ((rc = ensure_ref(t))) return rc;
    int n = ro->n_rows;
    float *adv = srlm_xmalloc(sizeof(float) * n);
    if ((rc = loss_grpo_advantages(ro->reward, ro->group_id, n, t->cfg.adv_kind, t->cfg.adv_eps, adv))) {
        free(adv);
        return rc;
    }
    double rs = 0, rs2 = 0, aabs = 0;
    long total_tok = 0;
    int nonempty = 0;
    for (int i = 0; i < n; i++) {
        rs += ro->reward[i];
        rs2 += (double)ro->reward[i] * ro->reward[i];
        aabs += fabs(adv[i]);
        int c = ro->len[i] - (ro->prompt_len[i] > 1 ? ro->prompt_len[i] : 1);
        if (c > 0) {
            total_tok += c;
            nonempty++;
        }
    }
    mt->reward_mean = rs / n;
    mt->reward_std = sqrt(fmax(0, rs2 / n - mt->reward_mean * mt->reward_mean));
    mt->adv_abs_mean = aabs / n;
    if (total_tok == 0) {
        free(adv);
        return srlm_set_error(SRLM_EINVAL, "GRPO batch has no completion tokens");
    }
    zero_grad(t);
    tr_batch b = {n, ro->ids, ro->len, ro->prompt_len, NULL};
    loss_grpo_stats acc = {0};
    acc.ratio_min = INFINITY;
    acc.ratio_max = -INFINITY;
    lm_model *m = t->m;
    int V = m->cfg.vocab_size;
    for (int i0 = 0; i0 < n && !rc; i0 += t->cfg.micro_batch) {
        int nb = n - i0 < t->cfg.micro_batch ? n - i0 : t->cfg.micro_batch;
        mbatch mb;
        mb_build(&mb, &b, i0, nb);
        int M = mb.n_rows;
        float *lp = srlm_xcalloc((size_t)M + 1, sizeof(float)), *ent = srlm_xcalloc((size_t)M + 1, sizeof(float));
        float *old = srlm_xcalloc((size_t)M + 1, sizeof(float)), *ref = srlm_xcalloc((size_t)M + 1, sizeof(float));
        float *dl = srlm_xcalloc((size_t)M + 1, sizeof(float));
        int *off = srlm_xcalloc((size_t)nb + 1, sizeof(int));
        float *refall = NULL;
        /* rows are in (row, position) order, so the tokens of micro-batch row k are the
         * contiguous range off[k]..off[k+1] of the rows list */
        for (int k = 0, j = 0; k < nb; k++) {
            while (j < M && mb.rows[j] / mb.T == k) j++;
            off[k + 1] = j;
        }
        pg_ctx c = {&mb, 1.0f / (t->cfg.policy_temperature > 0 ? t->cfg.policy_temperature : 1.0f), V, lp, ent,
                    dl, 0, mb.rows};
        double dummy;
        rc = ensure_acts(m, &t->acts, mb.B, mb.T);
        if (!rc) rc = lm_forward(m, mb.tokens, mb.lengths, mb.B, mb.T, NULL, t->acts);
        if (!rc) rc = lm_head_backward(m, t->acts->y, mb.B * mb.T, mb.rows, M, 0, pg_fn, &c, NULL, NULL, &dummy);
        if (!rc && t->ref) {
            refall = srlm_xmalloc(sizeof(float) * (size_t)mb.B * mb.T);
            rc = lm_sequence_logprobs(t->ref, mb.tokens, mb.lengths, mb.B, mb.T, t->cfg.policy_temperature, refall);
            for (int j = 0; j < M && !rc; j++) ref[j] = refall[mb.rows[j] + 1];
        }
        int sub_nonempty = 0;
        for (int j = 0; j < M; j++) {
            int r = mb.rows[j], k = r / mb.T;
            old[j] = ro->logp_old ? ro->logp_old[i0 + k][mb.src[r]] : lp[j];
        }
        for (int k = 0; k < nb; k++) sub_nonempty += off[k + 1] > off[k];
        if (!rc && M > 0) {
            loss_grpo_config gc = t->cfg.grpo;
            loss_grpo_stats s;
            float loss = loss_grpo(&gc, nb, off, lp, old, t->ref ? ref : NULL, adv + i0, ent, dl, &s);
            /* rescale the micro-batch aggregate to the whole step's normaliser */
            double f = gc.agg == LOSS_AGG_SEQ_MEAN_TOKEN_MEAN ? (double)sub_nonempty / nonempty
                       : gc.agg == LOSS_AGG_TOKEN_MEAN      ? (double)M / total_tok
                                                            : 1.0;
            for (int j = 0; j < M; j++) dl[j] = (float)(dl[j] * f);
            mt->loss += loss * f;
            mt->pg_loss += s.pg_loss * f;
            acc.kl_mean += s.kl_mean * M;
            acc.entropy_mean += s.entropy_mean * M;
            acc.clip_frac += s.clip_frac * M;
            acc.ratio_mean += s.ratio_mean * M;
            acc.ratio_min = fmin(acc.ratio_min, s.ratio_min);
            acc.ratio_max = fmax(acc.ratio_max, s.ratio_max);
            /* pass 2: gradient through the LM head and the model */
            float *dy = srlm_alloc_floats((size_t)mb.B * mb.T * m->cfg.hidden_size);
            if (!dy) rc = srlm_set_error(SRLM_ENOMEM, "dy");
            if (!rc)
                rc = lm_head_backward(m, t->acts->y, mb.B * mb.T, mb.rows, M, 0, pg_fn, &c, dy,
                                      t->lora ? NULL : t->gp.lm_head, &dummy);
            if (!rc)
                rc = lm_backward(m, t->acts, mb.tokens, mb.lengths, mb.B, mb.T, dy, t->lora ? NULL : &t->gp,
                                 t->lora ? &t->dl : NULL);
            free(dy);
        }
        free(lp); free(ent); free(old); free(ref); free(dl); free(off); free(refall);
        mb_free(&mb);
    }
    free(adv);
    if (rc) return rc;
    mt->kl = acc.kl_mean / total_tok;
    mt->entropy = acc.entropy_mean / total_tok;
    mt->clip_frac = acc.clip_frac / total_tok;
    mt->ratio_mean = acc.ratio_mean / total_tok;
    mt->ratio_min = acc.ratio_min;
    mt->ratio_max = acc.ratio_max;
    mt->tokens = total_tok;
    mt->rows = n;
    return finish_step(t, mt, t0, count_tokens(n, ro->len));
}

/* ---- checkpoints ---------------------------------------------------------------------- */

static int save_model_files(tr_trainer *t, const char *dir, const char *dtype) {
    int rc;
    if (t->lora) {
        float *bk;
        if ((rc = lora_merge(t->m, t->lora, &bk))) return rc;
        t->m->lora = NULL;
        rc = lm_model_save(t->m, dir, dtype, NULL, t->tok_dir);
        t->m->lora = t->lora;
        lora_unmerge(t->m, t->lora, bk);
        if (!rc) rc = lora_save_peft(t->m, t->lora, dir, t->base_dir);
        return rc;
    }
    return lm_model_save(t->m, dir, dtype, NULL, t->tok_dir);
}

int tr_save(tr_trainer *t, const char *dir, const char *save_dtype, const char *user_json) {
    json_t *user = NULL;
    if (user_json) {
        json_error_t e;
        if (!(user = json_loads(user_json, JSON_DECODE_ANY, &e)))
            return srlm_set_error(SRLM_EINVAL, "tr_save: user JSON is invalid: %s", e.text);
    }
    char tmp[4096], old[4096], path[4200];
    if (srlm_fmt(tmp, sizeof tmp, "%s.tmp.%d", dir, (int)getpid()) ||
        srlm_fmt(old, sizeof old, "%s.old.%d", dir, (int)getpid())) {
        json_decref(user);
        return SRLM_EINVAL;
    }
    srlm_rm_rf(tmp);
    int rc = srlm_mkdir_p(tmp);
    if (!rc) rc = save_model_files(t, tmp, save_dtype);
    snprintf(path, sizeof path, "%s/optimizer.safetensors", tmp);
    if (!rc) rc = opt_save(t->opt, path);
    if (!rc) {
        json_t *st = json_object(), *c = json_object();
        json_object_set_new(st, "format", json_string("srlm-trainer-state"));
        json_object_set_new(st, "step", json_integer(t->opt->step));
        json_object_set_new(st, "seed", json_integer((json_int_t)t->cfg.seed));
        json_object_set_new(st, "base_model", t->base_dir ? json_string(t->base_dir) : json_null());
        json_object_set_new(st, "save_dtype", json_string(save_dtype ? save_dtype : "F32"));
        if (t->lora)
            json_object_set_new(st, "lora", json_pack("{s:i, s:f, s:i}", "rank", t->lora->rank, "alpha",
                                                     (double)t->lora->alpha, "targets", (int)t->lora->targets));
        json_object_set_new(c, "optimizer", json_string(opt_kind_name(t->opt->cfg.kind)));
        json_object_set_new(c, "lr", json_real(t->opt->cfg.lr));
        json_object_set_new(c, "schedule", json_string(opt_sched_name(t->opt->cfg.sched)));
        json_object_set_new(c, "micro_batch", json_integer(t->cfg.micro_batch));
        json_object_set_new(c, "kd_loss", json_string(loss_kd_name(t->cfg.kd_kind)));
        json_object_set_new(c, "kl_beta", json_real(t->cfg.grpo.kl_beta));
        json_object_set_new(st, "config", c);
        if (user) json_object_set(st, "user", user);
        char *txt = json_dumps(st, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(st);
        snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
        rc = srlm_write_file_atomic(path, txt, strlen(txt));
        free(txt);
    }
    json_decref(user);
    if (!rc) rc = srlm_fsync_dir(tmp);
    if (!rc) {
        srlm_rm_rf(old);
        int had = srlm_file_exists(dir);
        if (had && rename(dir, old) != 0) rc = srlm_set_error(SRLM_EIO, "rename %s: %s", dir, strerror(errno));
        if (!rc && rename(tmp, dir) != 0) rc = srlm_set_error(SRLM_EIO, "rename %s: %s", tmp, strerror(errno));
        if (!rc && had) srlm_rm_rf(old);
        if (!rc) {
            char parent[4096];
            snprintf(parent, sizeof parent, "%s", dir);
            char *sl = strrchr(parent, '/');
            if (sl && sl != parent) *sl = 0;
            else snprintf(parent, sizeof parent, "%s", sl ? "/" : ".");
            srlm_fsync_dir(parent);
        }
    }
    if (rc) srlm_rm_rf(tmp);
    return rc;
}

int tr_load(const char *dir, const tr_config *cfg, tr_trainer **out, char **user_json) {
    *out = NULL;
    if (user_json) *user_json = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    json_error_t e;
    json_t *st = json_load_file(path, 0, &e);
    if (!st) return srlm_set_error(srlm_file_exists(path) ? SRLM_EFORMAT : SRLM_ENOTFOUND, "%s: %s", path, e.text);
    const char *fmt = json_string_value(json_object_get(st, "format"));
    const char *base = json_string_value(json_object_get(st, "base_model"));
    if (!fmt || strcmp(fmt, "srlm-trainer-state") || (!base && json_object_get(st, "lora"))) {
        json_decref(st);
        return srlm_set_error(SRLM_EFORMAT, "%s: not an srlm trainer state", path);
    }
    tr_trainer *t = srlm_xcalloc(1, sizeof *t);
    copy_cfg(t, cfg);
    t->cfg.seed = (uint64_t)json_integer_value(json_object_get(st, "seed"));
    t->base_dir = dup_or_null(base);
    t->tok_dir = srlm_xstrdup(base && srlm_file_exists(base) ? base : dir);
    json_t *lj = json_object_get(st, "lora");
    int rc;
    if (lj) {
        rc = lm_model_load(base, &t->m);
        if (!rc) rc = lora_load_peft(t->m, dir, &t->lora);
        if (!rc) {
            t->cfg.lora_rank = t->lora->rank;
            t->cfg.lora_alpha = t->lora->alpha;
            t->cfg.lora_targets = t->lora->targets;
        }
    } else {
        rc = lm_model_load(dir, &t->m);
        t->cfg.lora_rank = 0;
    }
    if (!rc) rc = finish_setup(t);
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    if (!rc) {
        /* the optimizer (kind, hyperparameters, moments, step) comes from the file */
        opt_state *o;
        rc = opt_load_new(path, &o);
        if (!rc && o->n != t->n_train) {
            rc = srlm_set_error(SRLM_EFORMAT, "%s: %zu parameters, the model has %zu", path, o->n, t->n_train);
            opt_free(o);
        }
        if (!rc) {
            opt_free(t->opt);
            t->opt = o;
            t->cfg.opt = o->cfg;
        }
    }
    if (!rc && user_json) {
        json_t *u = json_object_get(st, "user");
        if (u) *user_json = json_dumps(u, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    json_decref(st);
    if (rc) {
        tr_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int tr_metrics_json(const tr_metrics *m, const char *stage, char *buf, size_t n) {
    char ts[40];
    srlm_iso_time(ts, sizeof ts);
    int k = snprintf(buf, n,
                     "{\"time\":\"%s\",\"stage\":\"%s\",\"step\":%ld,\"loss\":%.6g,\"grad_norm\":%.6g,\"lr\":%.6g,"
                     "\"tokens\":%ld,\"rows\":%ld,\"seconds\":%.4f,\"tokens_per_s\":%.2f",
                     ts, stage, m->step, m->loss, m->grad_norm, m->lr, m->tokens, m->rows, m->seconds,
                     m->tokens_per_s);
    if (k < 0 || (size_t)k >= n) return srlm_set_error(SRLM_EINVAL, "metrics buffer too small");
    if (stage && !strcmp(stage, "grpo")) {
        int k2 = snprintf(buf + k, n - k,
                          ",\"pg_loss\":%.6g,\"kl\":%.6g,\"entropy\":%.6g,\"clip_frac\":%.6g,\"ratio_mean\":%.6g,"
                          "\"ratio_min\":%.6g,\"ratio_max\":%.6g,\"reward_mean\":%.6g,\"reward_std\":%.6g,"
                          "\"adv_abs_mean\":%.6g",
                          m->pg_loss, m->kl, m->entropy, m->clip_frac, m->ratio_mean, m->ratio_min, m->ratio_max,
                          m->reward_mean, m->reward_std, m->adv_abs_mean);
        if (k2 < 0 || (size_t)(k + k2) >= n) return srlm_set_error(SRLM_EINVAL, "metrics buffer too small");
        k += k2;
    }
    if ((size_t)k + 2 > n) return srlm_set_error(SRLM_EINVAL, "metrics buffer too small");
    buf[k] = '}';
    buf[k + 1] = 0;
    return 0;
}
