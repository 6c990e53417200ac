/* trainer_service.c — `srlm trainer`: runs the stages of a run config in order.
 *
 * Sockets: PUB (bind) → generators: TrainerUpdate (re-published every second and after
 * every group taken, so late joiners and credit waits see the current state);
 * PULL (connect) ← broker: ScoredGroup; DEALER → dataset server (SFT/KD samples);
 * DEALER → teacher (logit KD with a teacher process).
 *
 * Exactly-once: a scored group is identified by (run, stage, group number); groups below
 * the stage's consumed count at (re)start, or already taken, are dropped and counted as
 * duplicates. Results with status ERROR are excluded (never a reward of 0) and counted.
 * Checkpoints: RUN/checkpoints/step_N (trainer.h layout, atomic) with the data position
 * (SFT stream position, GRPO groups consumed) in trainer_state.json "user"; resume loads
 * the newest one. Weight updates: RUN/weights/v_N (F32 HF dir) + sha256, announced on PUB.
 * Metrics: one JSON line per optimizer step in RUN/metrics.jsonl (docs/pipeline.md). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "client.h"
#include "model.h"
#include "pipeline.h"
#include "pipeline_wire.h"
#include "store.h"
#include "trainer.h"
#include "util.h"

typedef struct {
    const pc_config *cfg;
    const char *run_dir;
    volatile sig_atomic_t *stop;
    tr_trainer *t;
    tok_tokenizer *tok;
    void *ctx, *pub, *pull, *teacher;
    dsc_client *dsc;
    dsc_stream *stream;
    FILE *metrics;
    long global_step;
    int stage;
    long stage_step;
    uint64_t data_pos;
    uint64_t groups_consumed;
    uint64_t floor_seq;           /* groups below this are taken */
    uint64_t *seen;
    size_t n_seen, cap_seen;
    PwScoredGroup **pending;      /* received, not yet used */
    size_t n_pending, cap_pending;
    char stage_model[4096];       /* model the stage started from (reference for KL) */
    char w_path[1100], w_sha[65];
    long w_version;
    double last_pub;
    uint64_t duplicates, stale, malformed;
    uint64_t teacher_req;
    double last_group_at, last_silence_warn;
} ts;

/* ---- publishing --------------------------------------------------------------------- */
static void publish(ts *s, int stop) {
    PwTrainerUpdate u = SRLM__PIPELINE__TRAINER_UPDATE__INIT;
    u.schema = PW_SCHEMA;
    u.policy_version = s->w_version >= 0 ? (uint64_t)s->w_version : 0;
    u.path = s->w_path;
    u.sha256 = s->w_sha;
    u.groups_consumed = s->groups_consumed;
    u.step = (uint64_t)s->global_step;
    u.stop = stop;
    u.run = (char *)s->cfg->name;
    u.stage_index = (uint32_t)(s->stage >= 0 ? s->stage : 0);
    u.stage = s->stage >= 0 && s->stage < s->cfg->n_stages ? (char *)s->cfg->stages[s->stage].type_name : "";
    if (s->stage >= 0 && s->stage < s->cfg->n_stages) {
        const pc_stage *st = &s->cfg->stages[s->stage];
        /* without drops the stage takes exactly steps x batch_size groups */
        if (st->type == PC_GRPO && !st->dynamic_sampling) u.groups_limit = (uint64_t)st->steps * (uint64_t)st->batch_size;
    }
    pw_send(s->pub, NULL, 0, &u.base, ZMQ_DONTWAIT);
    s->last_pub = srlm_now();
}

/* Write the current policy as RUN/weights/v_<step> and announce it. */
static int publish_weights(ts *s) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/weights/v_%ld", s->run_dir, s->global_step);
    const pc_stage *st = &s->cfg->stages[s->stage];
    int rc;
    if (st->lora_rank > 0) rc = tr_save(s->t, dir, "F32", NULL); /* merged weights */
    else rc = lm_model_save(tr_model(s->t), dir, "F32", NULL, s->cfg->tokenizer);
    if (rc) return rc;
    char st_path[1200], sha[65];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    if ((rc = srlm_sha256_file(st_path, sha))) return rc;
    /* keep the previous version (a generator may still be loading it) */
    if (s->w_version >= 0 && s->w_path[0] && strcmp(s->w_path, dir) != 0) {
        char old[1100];
        snprintf(old, sizeof old, "%s/weights/v_%ld", s->run_dir, s->w_version - 1);
        for (long v = s->w_version - 1; v >= 0 && v >= s->w_version - 8; v--) {
            snprintf(old, sizeof old, "%s/weights/v_%ld", s->run_dir, v);
            if (srlm_file_exists(old)) srlm_rm_rf(old);
        }
    }
    snprintf(s->w_path, sizeof s->w_path, "%s", dir);
    memcpy(s->w_sha, sha, sizeof sha);
    s->w_version = s->global_step;
    publish(s, 0);
    return 0;
}

/* ---- checkpoints --------------------------------------------------------------------- */
long ts_latest_checkpoint(const char *run_dir, char *out, size_t n) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    DIR *d = opendir(dir);
    if (!d) return -1;
    long best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "step_", 5) != 0) continue;
        long k = strtol(e->d_name + 5, &end, 10);
        if (*end || k < 0 || k <= best) continue;
        char st[1400];
        snprintf(st, sizeof st, "%s/%s/trainer_state.json", dir, e->d_name);
        if (!srlm_file_exists(st)) continue;
        best = k;
    }
    closedir(d);
    if (best >= 0) snprintf(out, n, "%s/step_%ld", dir, best);
    return best;
}

static void prune_checkpoints(ts *s) {
    int keep = s->cfg->checkpoint_keep;
    if (keep <= 0) return;
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/checkpoints", s->run_dir);
    for (;;) {
        DIR *d = opendir(dir);
        if (!d) return;
        long lo = -1;
        int count = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            char *end;
            if (strncmp(e->d_name, "step_", 5) != 0) continue;
            long k = strtol(e->d_name + 5, &end, 10);
            if (*end) continue;
            count++;
            if (lo < 0 || k < lo) lo = k;
        }
        closedir(d);
        if (count <= keep || lo < 0) return;
        char p[1200];
        snprintf(p, sizeof p, "%s/step_%ld", dir, lo);
        srlm_rm_rf(p);
    }
}

/* Make sure a checkpoint is a self-contained model dir: copy the tokenizer files the
 * trainer did not write (srlm generate --model DIR needs them). */
static void ensure_tokenizer(const ts *s, const char *dir) {
    static const char *files[] = {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                                  "special_tokens_map.json", "chat_template.jinja"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[1400], dst[1400];
        snprintf(src, sizeof src, "%s/%s", s->cfg->tokenizer, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        if (srlm_file_exists(dst) || !srlm_file_exists(src)) continue;
        char *data = NULL;
        size_t len = 0;
        if (srlm_read_file(src, &data, &len, 0) == 0) srlm_write_file_atomic(dst, data, len);
        free(data);
    }
}

static int save_checkpoint(ts *s, char *out_dir, size_t n) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/checkpoints/step_%ld", s->run_dir, s->global_step);
    json_t *u = json_pack("{s:I, s:i, s:I, s:I, s:I, s:I, s:s, s:s}", "global_step", (json_int_t)s->global_step,
                          "stage_index", s->stage, "stage_step", (json_int_t)s->stage_step, "data_position",
                          (json_int_t)s->data_pos, "groups_consumed", (json_int_t)s->groups_consumed,
                          "policy_version", (json_int_t)s->global_step, "stage_model", s->stage_model, "run",
                          s->cfg->name);
    char *uj = json_dumps(u, JSON_COMPACT);
    json_decref(u);
    if (srlm_file_exists(dir)) srlm_rm_rf(dir); /* a re-run of the same step (resume) */
    int rc = tr_save(s->t, dir, s->cfg->save_dtype, uj);
    free(uj);
    if (rc) {
        SRLM_ERROR("checkpoint %s: %s", dir, srlm_last_error());
        return rc;
    }
    ensure_tokenizer(s, dir);
    if (s->stream) dsc_stream_commit(s->stream, s->data_pos);
    SRLM_INFO("checkpoint %s (stage %s step %ld)", dir, s->cfg->stages[s->stage].name, s->stage_step);
    if (out_dir) snprintf(out_dir, n, "%s", dir);
    prune_checkpoints(s);
    return 0;
}

/* ---- trainer config from a stage ---------------------------------------------------- */
static int stage_tr_config(const ts *s, const pc_stage *st, tr_config *tc) {
    tr_config_default(tc);
    int rc = opt_parse_kind(st->optimizer, &tc->opt.kind);
    if (!rc) rc = opt_parse_sched(st->schedule, &tc->opt.sched);
    if (rc) return rc;
    tc->opt.lr = (float)st->lr;
    tc->opt.weight_decay = (float)st->weight_decay;
    tc->opt.max_grad_norm = (float)st->max_grad_norm;
    tc->opt.warmup_steps = st->warmup_steps;
    tc->opt.total_steps = st->steps;
    tc->micro_batch = st->micro_batch;
    tc->threads = s->cfg->threads;
    tc->seed = s->cfg->seed;
    tc->lora_rank = st->lora_rank;
    tc->lora_alpha = (float)st->lora_alpha;
    if (st->lora_rank > 0) {
        static const char *names[] = {"q", "k", "v", "o", "gate", "up", "down"};
        char buf[64];
        snprintf(buf, sizeof buf, "%s", st->lora_targets);
        tc->lora_targets = 0;
        for (char *save = NULL, *tk = strtok_r(buf, ",", &save); tk; tk = strtok_r(NULL, ",", &save)) {
            int found = -1;
            for (int i = 0; i < 7; i++)
                if (!strcmp(tk, names[i])) found = i;
            if (found < 0) return srlm_set_error(SRLM_EINVAL, "stages[%d].lora_targets: unknown target '%s'", s->stage, tk);
            tc->lora_targets |= 1u << found;
        }
    }
    if (st->type == PC_KD) {
        if ((rc = loss_kd_parse(st->kd_loss, &tc->kd_kind))) return rc;
        tc->kd_beta = (float)st->kd_beta;
        tc->kd_temperature = (float)st->kd_temperature;
        if (!strcmp(st->kd_mode, "logit") && !st->teacher_service) tc->teacher_dir = st->teacher;
    }
    if (st->type == PC_GRPO) {
        tc->grpo.eps_low = (float)st->clip_low;
        tc->grpo.eps_high = (float)st->clip_high;
        tc->grpo.kl_beta = (float)st->kl_beta;
        tc->grpo.kl_kind = st->kl_estimator[1] == '1' ? LOSS_KL_K1 : st->kl_estimator[1] == '2' ? LOSS_KL_K2 : LOSS_KL_K3;
        tc->grpo.agg = !strcmp(st->aggregation, "dr_grpo") ? LOSS_AGG_TOKEN_SUM_CONST
                       : !strcmp(st->aggregation, "dapo")  ? LOSS_AGG_TOKEN_MEAN
                                                            : LOSS_AGG_SEQ_MEAN_TOKEN_MEAN;
        tc->grpo.norm_const = (float)st->norm_const;
        tc->adv_kind = !strcmp(st->advantage, "mean") ? LOSS_ADV_MEAN : !strcmp(st->advantage, "rloo") ? LOSS_ADV_RLOO : LOSS_ADV_GRPO;
        tc->policy_temperature = (float)st->temperature;
        tc->ref_dir = s->stage_model;
    }
    return 0;
}

/* ---- metrics ------------------------------------------------------------------------- */
typedef struct {
    double reward_mean, reward_std, accuracy, latency, have_rewards;
    long errors, groups, dropped, rows;
    uint32_t queue_depth, workers;
} step_extra;

static void write_metrics(ts *s, const pc_stage *st, const tr_metrics *m, const step_extra *x) {
    json_t *o = json_object();
    int rl = st->type == PC_GRPO;
    json_object_set_new(o, "step", json_integer(s->global_step));
    json_object_set_new(o, "stage", json_string(st->name));
    json_object_set_new(o, "stage_type", json_string(st->type_name));
    json_object_set_new(o, "stage_step", json_integer(s->stage_step));
    json_object_set_new(o, "loss", json_real(m->loss));
    json_object_set_new(o, "reward_mean", rl ? json_real(x->reward_mean) : json_null());
    json_object_set_new(o, "reward_std", rl ? json_real(x->reward_std) : json_null());
    json_object_set_new(o, "accuracy", rl ? json_real(x->accuracy) : json_null());
    json_object_set_new(o, "kl", rl ? json_real(m->kl) : json_null());
    json_object_set_new(o, "entropy", rl ? json_real(m->entropy) : json_null());
    json_object_set_new(o, "clip_frac", rl ? json_real(m->clip_frac) : json_null());
    json_object_set_new(o, "grad_norm", json_real(m->grad_norm));
    json_object_set_new(o, "lr", json_real(m->lr));
    json_object_set_new(o, "tokens_per_s", json_real(m->tokens_per_s));
    json_object_set_new(o, "rollout_latency_s", rl ? json_real(x->latency) : json_null());
    json_object_set_new(o, "queue_depth", rl ? json_integer(x->queue_depth) : json_null());
    json_object_set_new(o, "workers", rl ? json_integer(x->workers) : json_null());
    json_object_set_new(o, "errors", json_integer(x->errors));
    json_object_set_new(o, "policy_version", json_integer(s->global_step));
    json_object_set_new(o, "time", json_real(srlm_wall_time()));
    json_object_set_new(o, "tokens", json_integer(m->tokens));
    json_object_set_new(o, "rows", json_integer(m->rows));
    if (rl) {
        json_object_set_new(o, "groups", json_integer(x->groups));
        json_object_set_new(o, "groups_dropped", json_integer(x->dropped));
        json_object_set_new(o, "groups_consumed", json_integer((json_int_t)s->groups_consumed));
        json_object_set_new(o, "duplicates", json_integer((json_int_t)s->duplicates));
    } else {
        json_object_set_new(o, "data_position", json_integer((json_int_t)s->data_pos));
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    fprintf(s->metrics, "%s\n", line);
    fflush(s->metrics);
    free(line);
}

/* ---- SFT / KD ------------------------------------------------------------------------ */
static int open_stream(ts *s, const pc_stage *st) {
    if (s->stream) dsc_stream_close(s->stream);
    s->stream = NULL;
    dsc_stream_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.sources = st->sources;
    spec.splits = st->splits;
    spec.seed = pd_stream_seed(s->cfg, s->stage);
    char name[64];
    pd_consumer_name("trainer", s->stage, name, sizeof name);
    int rc = dsc_stream_open(s->dsc, name, &spec, &s->stream);
    if (!rc) rc = dsc_stream_seek(s->stream, s->data_pos);
    if (rc) SRLM_ERROR("dataset stream %s at %s: %s", name, s->cfg->ep_dataset, srlm_last_error());
    return rc;
}

/* Top-k from the teacher process for each row (logit KD with teacher = ENDPOINT). */
static int teacher_topk(ts *s, int n_rows, int32_t **ids, const int *len, int K, int32_t ***tid, float ***tlp) {
    *tid = srlm_xcalloc((size_t)n_rows, sizeof **tid);
    *tlp = srlm_xcalloc((size_t)n_rows, sizeof **tlp);
    for (int i = 0; i < n_rows; i++) {
        PwTeacherRequest rq = SRLM__PIPELINE__TEACHER_REQUEST__INIT;
        rq.schema = PW_SCHEMA;
        rq.request_id = ++s->teacher_req;
        rq.n_ids = (size_t)len[i];
        rq.ids = (uint32_t *)ids[i];
        rq.top_k = (uint32_t)K;
        int rc = pw_send(s->teacher, NULL, 0, &rq.base, 0);
        if (rc) return srlm_set_error(SRLM_ETIMEOUT, "teacher at %s: send: %s", s->cfg->ep_teacher, srlm_strerror(rc));
        for (;;) {
            ProtobufCMessage *m = NULL;
            rc = pw_recv(s->teacher, 0, NULL, NULL, &srlm__pipeline__teacher_reply__descriptor, &m, "trainer teacher socket");
            if (rc == SRLM_EFORMAT) continue;
            if (rc == SRLM_ETIMEOUT) return srlm_set_error(SRLM_ETIMEOUT, "teacher at %s did not answer within 120 s", s->cfg->ep_teacher);
            if (rc) return rc;
            PwTeacherReply *rp = (PwTeacherReply *)m;
            if (rp->request_id != rq.request_id) { protobuf_c_message_free_unpacked(m, NULL); continue; }
            if (rp->error && *rp->error) {
                rc = srlm_set_error(SRLM_EIO, "teacher: %s", rp->error);
                protobuf_c_message_free_unpacked(m, NULL);
                return rc;
            }
            int T = len[i], k = (int)rp->top_k;
            if ((int)rp->length != T || k != K || rp->n_topk_ids != (size_t)T * K) {
                protobuf_c_message_free_unpacked(m, NULL);
                return srlm_set_error(SRLM_EFORMAT, "teacher reply shape mismatch");
            }
            /* reply row t predicts token t+1; tr_topk entry t is the distribution of token t */
            (*tid)[i] = srlm_xmalloc((size_t)T * K * sizeof(int32_t));
            (*tlp)[i] = srlm_xmalloc((size_t)T * K * sizeof(float));
            for (int j = 0; j < K; j++) { (*tid)[i][j] = -1; (*tlp)[i][j] = 0; }
            for (int t = 1; t < T; t++)
                for (int j = 0; j < K; j++) {
                    (*tid)[i][(size_t)t * K + j] = (int32_t)rp->topk_ids[(size_t)(t - 1) * K + j];
                    (*tlp)[i][(size_t)t * K + j] = rp->topk_logprobs[(size_t)(t - 1) * K + j];
                }
            protobuf_c_message_free_unpacked(m, NULL);
            break;
        }
    }
    return 0;
}

static int sft_step(ts *s, const pc_stage *st, tr_metrics *m) {
    dsc_batch b;
    memset(&b, 0, sizeof b);
    int rc = dsc_stream_next(s->stream, st->batch_size, &b);
    if (rc) return rc;
    int n = b.n;
    int32_t **ids = srlm_xcalloc((size_t)n, sizeof *ids);
    int *len = srlm_xcalloc((size_t)n, sizeof *len), *plen = srlm_xcalloc((size_t)n, sizeof *plen);
    int rows = 0;
    for (int i = 0; i < n; i++) {
        json_t *rec = ds_record_to_jsonobj(b.records[i]);
        if (pd_render(s->tok, st, rec, 1, &ids[rows], &len[rows], &plen[rows], NULL) != 0)
            SRLM_WARN("record %s: %s: skipped", b.records[i]->id, srlm_last_error());
        else
            rows++;
        json_decref(rec);
    }
    s->data_pos = b.position + (uint64_t)b.n;
    dsc_batch_free(&b);
    if (rows == 0) {
        rc = srlm_set_error(SRLM_EINVAL, "stage %s: no usable samples in a batch of %d", st->name, n);
    } else {
        tr_batch tb = {rows, (const int32_t *const *)ids, len, plen, NULL};
        if (st->type == PC_KD && !strcmp(st->kd_mode, "logit")) {
            if (st->teacher_service) {
                int32_t **tid = NULL;
                float **tlp = NULL;
                const int K = st->teacher_top_k;
                rc = teacher_topk(s, rows, ids, len, K, &tid, &tlp);
                if (!rc) {
                    tr_topk tk = {K, (const int32_t *const *)tid, (const float *const *)tlp};
                    rc = tr_kd_step(s->t, &tb, &tk, m);
                }
                for (int i = 0; i < rows && tid; i++) { free(tid[i]); free(tlp[i]); }
                free(tid);
                free(tlp);
            } else {
                rc = tr_kd_step(s->t, &tb, NULL, m);
            }
        } else {
            rc = tr_sft_step(s->t, &tb, m);
        }
    }
    for (int i = 0; i < rows; i++) free(ids[i]);
    free(ids);
    free(len);
    free(plen);
    return rc;
}

/* ---- GRPO ---------------------------------------------------------------------------- */
static int seen_has(const ts *s, uint64_t seq) {
    if (seq < s->floor_seq) return 1;
    for (size_t i = 0; i < s->n_seen; i++)
        if (s->seen[i] == seq) return 1;
    return 0;
}

static void seen_add(ts *s, uint64_t seq) {
    if (s->n_seen == s->cap_seen) s->seen = srlm_xrealloc(s->seen, (s->cap_seen = s->cap_seen * 2 + 64) * sizeof *s->seen);
    s->seen[s->n_seen++] = seq;
    /* advance the floor over a contiguous prefix to keep the list short */
    int moved = 1;
    while (moved) {
        moved = 0;
        for (size_t i = 0; i < s->n_seen; i++)
            if (s->seen[i] == s->floor_seq) {
                s->seen[i] = s->seen[--s->n_seen];
                s->floor_seq++;
                moved = 1;
                break;
            }
    }
}

/* Receive one scored group (or time out after ~1 s). Returns 1 if one was added to pending. */
static int receive_group(ts *s) {
    zmq_pollitem_t it = {s->pull, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&it, 1, 1000);
    double now = srlm_now();
    if (now - s->last_pub >= 1.0) publish(s, 0);
    if (s->last_group_at == 0) s->last_group_at = now;
    if (n <= 0) {
        if (now - s->last_group_at > 60 && now - s->last_silence_warn > 60) {
            SRLM_WARN("no scored groups from the broker at %s for %.0f s (generator at %s? workers?)", s->cfg->ep_scored,
                      now - s->last_group_at, s->cfg->ep_groups);
            s->last_silence_warn = now;
        }
        return 0;
    }
    s->last_group_at = now;
    ProtobufCMessage *m = NULL;
    int rc = pw_recv(s->pull, 0, NULL, NULL, &srlm__pipeline__scored_group__descriptor, &m, "trainer scored socket");
    if (rc == SRLM_EFORMAT) { s->malformed++; return 0; }
    if (rc) return 0;
    PwScoredGroup *sg = (PwScoredGroup *)m;
    const PwRolloutGroup *g = sg->group;
    if (!g || sg->n_results != g->n_rollouts || g->n_rollouts == 0) {
        SRLM_WARN("trainer scored socket: scored group without one result per rollout: dropped");
        s->malformed++;
        protobuf_c_message_free_unpacked(m, NULL);
        return 0;
    }
    for (size_t i = 0; i < g->n_rollouts; i++) {
        const PwRollout *r = g->rollouts[i];
        if (!r || r->n_logprobs != r->n_completion_ids || !sg->results[i]) {
            SRLM_WARN("trainer scored socket: rollout %zu of group %llu is inconsistent: group dropped", i,
                      (unsigned long long)g->group_seq);
            s->malformed++;
            protobuf_c_message_free_unpacked(m, NULL);
            return 0;
        }
    }
    if (strcmp(g->run ? g->run : "", s->cfg->name) != 0 || g->stage_index != (uint32_t)s->stage) {
        s->stale++;
        SRLM_DEBUG("group of run %s stage %u dropped (this is %s stage %d)", g->run, g->stage_index, s->cfg->name, s->stage);
        protobuf_c_message_free_unpacked(m, NULL);
        return 0;
    }
    if (seen_has(s, g->group_seq)) {
        s->duplicates++;
        SRLM_INFO("duplicate group %llu dropped (already applied)", (unsigned long long)g->group_seq);
        protobuf_c_message_free_unpacked(m, NULL);
        return 0;
    }
    seen_add(s, g->group_seq);
    if (s->n_pending == s->cap_pending)
        s->pending = srlm_xrealloc(s->pending, (s->cap_pending = s->cap_pending * 2 + 16) * sizeof *s->pending);
    s->pending[s->n_pending++] = sg;
    return 1;
}

static int cmp_group(const void *a, const void *b) {
    const PwScoredGroup *x = *(PwScoredGroup *const *)a, *y = *(PwScoredGroup *const *)b;
    return x->group->group_seq < y->group->group_seq ? -1 : x->group->group_seq > y->group->group_seq;
}

static int grpo_step(ts *s, const pc_stage *st, tr_metrics *m, step_extra *x) {
    memset(x, 0, sizeof *x);
    int B = st->batch_size;
    PwScoredGroup **use = srlm_xcalloc((size_t)B, sizeof *use);
    int kept = 0;
    double rsum = 0, rsq = 0, correct = 0, lat = 0;
    long nscored = 0;
    int ret = 0;
    while (kept < B) {
        if (*s->stop) { ret = SRLM_EINTR; break; }
        if (s->n_pending == 0) {
            if (receive_group(s)) publish(s, 0);
            continue;
        }
        /* lowest group number first (deterministic with max_staleness 0) */
        qsort(s->pending, s->n_pending, sizeof *s->pending, cmp_group);
        PwScoredGroup *sg = s->pending[0];
        memmove(s->pending, s->pending + 1, (--s->n_pending) * sizeof *s->pending);
        s->groups_consumed++;
        x->groups++;
        x->queue_depth = sg->queue_depth;
        x->workers = sg->workers;
        lat += sg->latency_s + sg->group->gen_seconds;
        int valid = 0, first = 1, all_equal = 1;
        double r0 = 0;
        for (size_t i = 0; i < sg->n_results; i++) {
            const PwRewardResult *r = sg->results[i];
            if (r->status != PW_SCORED) { x->errors++; continue; }
            if (sg->group->rollouts[i]->n_completion_ids == 0) continue;
            valid++;
            rsum += r->reward;
            rsq += r->reward * r->reward;
            correct += r->correct ? 1 : 0;
            nscored++;
            if (first) { r0 = r->reward; first = 0; } else if (r->reward != r0) all_equal = 0;
        }
        if (valid < 2 || (st->dynamic_sampling && all_equal)) {
            x->dropped++;
            protobuf_c_message_free_unpacked(&sg->base, NULL);
        } else {
            use[kept++] = sg;
        }
        publish(s, 0); /* credit for the generator */
    }
    if (ret == 0) {
        qsort(use, (size_t)kept, sizeof *use, cmp_group);
        int n = 0;
        for (int k = 0; k < kept; k++) n += (int)use[k]->n_results;
        int32_t **ids = srlm_xcalloc((size_t)n, sizeof *ids);
        float **lpo = srlm_xcalloc((size_t)n, sizeof *lpo);
        int *len = srlm_xcalloc((size_t)n, sizeof *len), *plen = srlm_xcalloc((size_t)n, sizeof *plen);
        int *gid = srlm_xcalloc((size_t)n, sizeof *gid);
        float *rew = srlm_xcalloc((size_t)n, sizeof *rew);
        int rows = 0;
        for (int k = 0; k < kept; k++) {
            const PwRolloutGroup *g = use[k]->group;
            for (size_t i = 0; i < g->n_rollouts; i++) {
                const PwRewardResult *r = use[k]->results[i];
                const PwRollout *ro = g->rollouts[i];
                if (r->status != PW_SCORED || ro->n_completion_ids == 0) continue;
                int P = (int)g->n_prompt_ids, C = (int)ro->n_completion_ids;
                ids[rows] = srlm_xmalloc((size_t)(P + C) * sizeof(int32_t));
                lpo[rows] = srlm_xcalloc((size_t)(P + C), sizeof(float));
                for (int t = 0; t < P; t++) ids[rows][t] = (int32_t)g->prompt_ids[t];
                for (int t = 0; t < C; t++) {
                    ids[rows][P + t] = (int32_t)ro->completion_ids[t];
                    lpo[rows][P + t] = ro->logprobs[t];
                }
                len[rows] = P + C;
                plen[rows] = P;
                rew[rows] = (float)r->reward;
                gid[rows] = k;
                rows++;
            }
        }
        tr_rollouts tr = {rows, (const int32_t *const *)ids, len, plen, (const float *const *)lpo, rew, gid};
        ret = tr_grpo_step(s->t, &tr, m);
        for (int i = 0; i < rows; i++) { free(ids[i]); free(lpo[i]); }
        free(ids); free(lpo); free(len); free(plen); free(gid); free(rew);
    }
    for (int k = 0; k < kept; k++) protobuf_c_message_free_unpacked(&use[k]->base, NULL);
    free(use);
    if (nscored > 0) {
        x->reward_mean = rsum / nscored;
        x->reward_std = nscored > 1 ? sqrt(fmax(0, (rsq - rsum * rsum / nscored) / (nscored - 1))) : 0;
        x->accuracy = correct / nscored;
    }
    x->latency = x->groups ? lat / x->groups : 0;
    return ret;
}

/* ---- the stage loop ------------------------------------------------------------------ */
static int read_user_state(const char *ckpt, ts *s) {
    char path[1200];
    snprintf(path, sizeof path, "%s/trainer_state.json", ckpt);
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e);
    if (!root) return srlm_set_error(SRLM_EFORMAT, "%s:%d: %s", path, e.line, e.text);
    json_t *u = json_object_get(root, "user");
    int rc = 0;
    if (!json_is_object(u)) rc = srlm_set_error(SRLM_EFORMAT, "%s: no \"user\" state (not a pipeline checkpoint)", path);
    else {
        s->global_step = (long)json_integer_value(json_object_get(u, "global_step"));
        s->stage = (int)json_integer_value(json_object_get(u, "stage_index"));
        s->stage_step = (long)json_integer_value(json_object_get(u, "stage_step"));
        s->data_pos = (uint64_t)json_integer_value(json_object_get(u, "data_position"));
        s->groups_consumed = (uint64_t)json_integer_value(json_object_get(u, "groups_consumed"));
        const char *sm = json_string_value(json_object_get(u, "stage_model"));
        snprintf(s->stage_model, sizeof s->stage_model, "%s", sm ? sm : "");
    }
    json_decref(root);
    return rc;
}

int ts_run(const pc_config *cfg, const char *run_dir, int resume, volatile sig_atomic_t *stop) {
    ts s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.run_dir = run_dir;
    s.stop = stop;
    s.w_version = -1;
    s.stage = 0;
    int ret = 0;
    char path[1200], ckpt[1100] = "";
    snprintf(path, sizeof path, "%s/weights", run_dir);
    srlm_mkdir_p(path);
    snprintf(path, sizeof path, "%s/checkpoints", run_dir);
    srlm_mkdir_p(path);
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    s.metrics = fopen(path, "a");
    if (!s.metrics) return srlm_set_error(SRLM_EIO, "%s: %s", path, strerror(errno));
    lm_set_threads(cfg->threads);
    if ((ret = tok_load(cfg->tokenizer, &s.tok))) {
        SRLM_ERROR("tokenizer %s: %s", cfg->tokenizer, srlm_last_error());
        fclose(s.metrics);
        return ret;
    }
    s.ctx = zmq_ctx_new();
    char bind[300];
    pc_bind_endpoint(cfg->ep_updates, bind, sizeof bind);
    s.pub = pw_socket(s.ctx, ZMQ_PUB, bind, 1, 0, 1000);
    if (pc_has_grpo(cfg)) s.pull = pw_socket(s.ctx, ZMQ_PULL, cfg->ep_scored, 0, 1000, 0);
    dsc_options dopt = {0, 0};
    if (!s.pub || (pc_has_grpo(cfg) && !s.pull) || dsc_connect(cfg->ep_dataset, &dopt, &s.dsc) != 0) {
        SRLM_ERROR("trainer sockets: %s", srlm_last_error());
        ret = SRLM_EIO;
        goto out;
    }
    snprintf(s.stage_model, sizeof s.stage_model, "%s", cfg->model);
    long have = resume ? ts_latest_checkpoint(run_dir, ckpt, sizeof ckpt) : -1;
    int resumed_mid_stage = 0;
    if (have >= 0) {
        if ((ret = read_user_state(ckpt, &s))) goto out;
        SRLM_INFO("resuming from %s: step %ld, stage %d (%s) step %ld", ckpt, s.global_step, s.stage,
                  cfg->stages[s.stage].name, s.stage_step);
        if (s.stage_step >= cfg->stages[s.stage].steps) { /* that stage was complete */
            s.stage++;
            s.stage_step = 0;
            s.data_pos = 0;
            s.groups_consumed = 0;
            snprintf(s.stage_model, sizeof s.stage_model, "%s", ckpt);
        } else {
            resumed_mid_stage = 1;
        }
    } else if (resume) {
        SRLM_INFO("no checkpoint in %s/checkpoints: starting from the beginning", run_dir);
    }
    for (; s.stage < cfg->n_stages && !*stop; s.stage++) {
        const pc_stage *st = &cfg->stages[s.stage];
        tr_config tc;
        if ((ret = stage_tr_config(&s, st, &tc))) break;
        if (resumed_mid_stage) {
            ret = tr_load(ckpt, &tc, &s.t, NULL);
            resumed_mid_stage = 0;
        } else {
            s.stage_step = 0;
            s.data_pos = 0;
            s.groups_consumed = 0;
            ret = tr_create(s.stage_model, &tc, &s.t);
        }
        if (ret) {
            SRLM_ERROR("stage %s: %s", st->name, srlm_last_error());
            break;
        }
        s.floor_seq = s.groups_consumed;
        s.n_seen = 0;
        SRLM_INFO("stage %d/%d: %s (%s), %d steps from %s", s.stage + 1, cfg->n_stages, st->name, st->type_name,
                  st->steps, s.stage_model);
        if (st->type == PC_GRPO) {
            if (s.teacher) { zmq_close(s.teacher); s.teacher = NULL; }
            if ((ret = publish_weights(&s))) { SRLM_ERROR("publish weights: %s", srlm_last_error()); break; }
        } else {
            publish(&s, 0);
            if ((ret = open_stream(&s, st))) break;
            if (st->type == PC_KD && st->teacher_service && !s.teacher) {
                s.teacher = pw_socket(s.ctx, ZMQ_DEALER, cfg->ep_teacher, 0, 120000, 10000);
                if (!s.teacher) { ret = SRLM_EIO; break; }
            }
        }
        char last_ckpt[1100] = "";
        while (s.stage_step < st->steps && !*stop) {
            tr_metrics m;
            memset(&m, 0, sizeof m);
            step_extra x;
            memset(&x, 0, sizeof x);
            if (st->type == PC_GRPO) ret = grpo_step(&s, st, &m, &x);
            else ret = sft_step(&s, st, &m);
            if (ret == SRLM_EINTR || *stop) { ret = SRLM_EINTR; break; }
            if (ret) { SRLM_ERROR("stage %s step %ld: %s", st->name, s.stage_step + 1, srlm_last_error()); break; }
            s.global_step++;
            s.stage_step++;
            write_metrics(&s, st, &m, &x);
            int last = s.stage_step == st->steps;
            if (last || (cfg->checkpoint_every > 0 && s.global_step % cfg->checkpoint_every == 0)) {
                if ((ret = save_checkpoint(&s, last_ckpt, sizeof last_ckpt))) break;
            }
            if (st->type == PC_GRPO && !last) {
                if ((ret = publish_weights(&s))) { SRLM_ERROR("publish weights: %s", srlm_last_error()); break; }
            } else if (srlm_now() - s.last_pub > 1.0) {
                publish(&s, 0);
            }
        }
        tr_free(s.t);
        s.t = NULL;
        for (size_t i = 0; i < s.n_pending; i++) protobuf_c_message_free_unpacked(&s.pending[i]->base, NULL);
        s.n_pending = 0;
        if (ret || *stop) break;
        if (last_ckpt[0]) snprintf(s.stage_model, sizeof s.stage_model, "%s", last_ckpt);
        if (s.stream) { dsc_stream_close(s.stream); s.stream = NULL; }
    }
    if (*stop && (ret == 0 || ret == SRLM_EINTR)) {
        SRLM_INFO("trainer stopping on signal at step %ld", s.global_step);
        ret = SRLM_EINTR;
    } else if (ret == 0) {
        SRLM_INFO("all %d stages done: %ld steps, %llu duplicate groups dropped, %llu stale", cfg->n_stages,
                  s.global_step, (unsigned long long)s.duplicates, (unsigned long long)s.stale);
        /* tell the generators, a few times (PUB drops to slow joiners) */
        for (int i = 0; i < 5; i++) {
            publish(&s, 1);
            struct timespec ts_ = {0, 100000000L};
            nanosleep(&ts_, NULL);
        }
    }
out:
    if (s.t) tr_free(s.t);
    for (size_t i = 0; i < s.n_pending; i++) protobuf_c_message_free_unpacked(&s.pending[i]->base, NULL);
    free(s.pending);
    free(s.seen);
    if (s.stream) dsc_stream_close(s.stream);
    if (s.dsc) dsc_close(s.dsc);
    if (s.pub) zmq_close(s.pub);
    if (s.pull) zmq_close(s.pull);
    if (s.teacher) zmq_close(s.teacher);
    zmq_ctx_term(s.ctx);
    tok_free(s.tok);
    fclose(s.metrics);
    return ret;
}
