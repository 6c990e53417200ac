/* generator.c — `srlm generator`: the policy sampler of GRPO stages, and (--role teacher)
 * the teacher top-k service of logit-level KD.
 *
 * Policy role. Sockets: SUB ← trainer (TrainerUpdate), PUSH → broker (RolloutGroup),
 * DEALER → dataset server (dsc_ client). The generator does nothing until the trainer has
 * published its state; then, in a GRPO stage, group number g (0, 1, 2, ... per stage) is
 * the record at position g of the stage's dataset stream, sampled G times with the seed
 * pd_group_seed(g) and the newest policy version. Staleness bound (credit scheme): group
 * g is produced only while g < groups_consumed + (1 + max_staleness) · batch_size, where
 * groups_consumed is the trainer's count (published with every update); a new policy
 * version is loaded (sha256 of model.safetensors verified) before any further group is
 * sampled. With max_staleness 0 every group of step s is sampled with version s, which
 * makes a run reproducible. If the trainer's count does not move for
 * PD_REGEN_AFTER_S while we are blocked (groups lost with a restarted broker), the
 * generator re-produces from groups_consumed (the trainer drops duplicates by group
 * number). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "client.h"
#include "generate.h"
#include "model.h"
#include "pipeline.h"
#include "pipeline_wire.h"
#include "prompt.h"
#include "store.h"
#include "util.h"

#define PD_REGEN_AFTER_S 120.0

typedef struct {
    const pc_config *cfg;
    tok_tokenizer *tok;
    lm_model *model;
    long version;                 /* loaded policy version, -1 none */
    PwTrainerUpdate *latest;      /* newest update (owned) */
    double latest_at;             /* when it arrived */
    dsc_client *dsc;
    dsc_stream *stream;
    int stream_stage;
    uint64_t next_seq;
    uint64_t consumed_seen;
    double consumed_changed_at;
} gen;

/* Cut a completion at the first stop string of the prompt format (token granularity: the
 * token that completes the stop string is kept), like HF generate's stop_strings. */
static int cut_at_stop(const tok_tokenizer *tok, int fmt, int chat, const int32_t *ids, int n, int *cut) {
    const char *const *stops = pf_stop_strings((pf_format)fmt, chat);
    *cut = n;
    if (!stops[0]) return 0;
    size_t cap = 256, len = 0;
    char *buf = srlm_xmalloc(cap);
    for (int i = 0; i < n; i++) {
        size_t bl = 0;
        const char *b = tok_id_to_bytes(tok, ids[i], &bl);
        if (!b) continue;
        if (len + bl + 1 > cap) buf = srlm_xrealloc(buf, cap = (len + bl + 1) * 2);
        memcpy(buf + len, b, bl);
        len += bl;
        buf[len] = 0;
        for (const char *const *s = stops; *s; s++) {
            size_t sl = strlen(*s);
            size_t from = len > bl + sl ? len - bl - sl : 0;
            if (memmem(buf + from, len - from, *s, sl)) {
                *cut = i + 1;
                free(buf);
                return 1;
            }
        }
    }
    free(buf);
    return 0;
}

static int load_version(gen *g, const PwTrainerUpdate *u) {
    char st[1200], sha[65];
    snprintf(st, sizeof st, "%s/model.safetensors", u->path);
    int rc = srlm_sha256_file(st, sha);
    if (rc) {
        SRLM_ERROR("policy version %llu: cannot hash %s: %s", (unsigned long long)u->policy_version, st, srlm_last_error());
        return rc;
    }
    if (strcmp(sha, u->sha256) != 0) {
        SRLM_ERROR("policy version %llu at %s: sha256 %s does not match the announced %s: not switching",
                   (unsigned long long)u->policy_version, u->path, sha, u->sha256);
        return SRLM_EFORMAT;
    }
    lm_model *m = NULL;
    rc = lm_model_load(u->path, &m);
    if (rc) {
        SRLM_ERROR("policy version %llu: %s", (unsigned long long)u->policy_version, srlm_last_error());
        return rc;
    }
    lm_model_free(g->model);
    g->model = m;
    g->version = (long)u->policy_version;
    SRLM_INFO("policy version %ld loaded from %s (sha256 %.12s…)", g->version, u->path, sha);
    return 0;
}

static int open_stream(gen *g, int stage) {
    if (g->stream) dsc_stream_close(g->stream);
    g->stream = NULL;
    const pc_stage *st = &g->cfg->stages[stage];
    dsc_stream_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.sources = st->sources;
    spec.splits = st->splits;
    spec.seed = pd_stream_seed(g->cfg, stage);
    char name[64];
    pd_consumer_name("gen", stage, name, sizeof name);
    int rc = dsc_stream_open(g->dsc, name, &spec, &g->stream);
    if (rc) SRLM_ERROR("dataset stream %s at %s: %s", name, g->cfg->ep_dataset, srlm_last_error());
    else g->stream_stage = stage;
    return rc;
}

/* Sample group seq of the current stage and push it. */
static int make_group(gen *g, void *push, int stage, uint64_t seq) {
    const pc_stage *st = &g->cfg->stages[stage];
    int rc = dsc_stream_seek(g->stream, seq);
    dsc_batch b;
    memset(&b, 0, sizeof b);
    if (!rc) rc = dsc_stream_next(g->stream, 1, &b);
    if (rc) {
        SRLM_ERROR("dataset server at %s: %s", g->cfg->ep_dataset, srlm_last_error());
        return rc;
    }
    char *rec_json = NULL;
    json_t *rec = ds_record_to_jsonobj(b.records[0]);
    rc = ds_record_to_json(b.records[0], &rec_json);
    int32_t *prompt = NULL;
    int np = 0, plen = 0, fmt = 0;
    if (!rc) rc = pd_render(g->tok, st, rec, 0, &prompt, &np, &plen, &fmt);
    if (rc) {
        SRLM_WARN("record %s: %s: skipped", b.records[0]->id, srlm_last_error());
        json_decref(rec);
        free(rec_json);
        dsc_batch_free(&b);
        return 1; /* skip, not fatal */
    }
    lm_sampling s;
    lm_sampling_default(&s);
    s.do_sample = 1;
    s.temperature = (float)st->temperature;
    s.top_p = (float)st->top_p;
    s.top_k = st->top_k;
    s.max_new_tokens = st->max_new_tokens;
    s.seed = pd_group_seed(g->cfg, stage, seq);
    int eos = tok_eos_id(g->tok), eot = tok_token_to_id(g->tok, "<|endoftext|>");
    if (eos >= 0) s.stop_ids[s.n_stop++] = eos;
    if (eot >= 0 && eot != eos) s.stop_ids[s.n_stop++] = eot;
    for (int i = 0; i < g->model->cfg.n_eos && s.n_stop < LM_MAX_STOP; i++) {
        int dup = 0;
        for (int j = 0; j < s.n_stop; j++) dup |= s.stop_ids[j] == g->model->cfg.eos_token_ids[i];
        if (!dup) s.stop_ids[s.n_stop++] = g->model->cfg.eos_token_ids[i];
    }
    int G = st->group_size;
    lm_completion *comp = srlm_xcalloc((size_t)G, sizeof *comp);
    double t0 = srlm_now();
    rc = lm_generate_group(g->model, prompt, np, G, &s, comp);
    double gen_s = srlm_now() - t0;
    if (rc) {
        SRLM_ERROR("sampling group %llu: %s", (unsigned long long)seq, srlm_last_error());
        free(comp);
        free(prompt);
        json_decref(rec);
        free(rec_json);
        dsc_batch_free(&b);
        return rc;
    }
    const char *kind = b.records[0]->kind && !strcmp(b.records[0]->kind, "code") ? "code" : "math";
    PwRolloutGroup gm = SRLM__PIPELINE__ROLLOUT_GROUP__INIT;
    gm.schema = PW_SCHEMA;
    gm.run = (char *)g->cfg->name;
    gm.policy_version = (uint64_t)g->version;
    gm.group_seq = seq;
    gm.stage_index = (uint32_t)stage;
    gm.problem_id = b.records[0]->id;
    gm.kind = (char *)kind;
    gm.problem_json = rec_json;
    gm.n_prompt_ids = (size_t)np;
    gm.prompt_ids = (uint32_t *)prompt; /* ids are >= 0 */
    gm.created_time = srlm_wall_time();
    gm.gen_seconds = gen_s;
    PwRollout *ro = srlm_xcalloc((size_t)G, sizeof *ro);
    PwRolloutId *rid = srlm_xcalloc((size_t)G, sizeof *rid);
    PwRollout **rp = srlm_xcalloc((size_t)G, sizeof *rp);
    char **texts = srlm_xcalloc((size_t)G, sizeof *texts);
    for (int i = 0; i < G; i++) {
        srlm__pipeline__rollout__init(&ro[i]);
        srlm__pipeline__rollout_id__init(&rid[i]);
        rid[i].run = gm.run;
        rid[i].policy_version = gm.policy_version;
        rid[i].problem_id = gm.problem_id;
        rid[i].sample_index = (uint32_t)i;
        rid[i].group_seq = seq;
        int n = comp[i].n, cut = n;
        int stopped = cut_at_stop(g->tok, fmt, st->chat, comp[i].ids, n, &cut);
        ro[i].id = &rid[i];
        ro[i].n_completion_ids = (size_t)cut;
        ro[i].completion_ids = (uint32_t *)comp[i].ids;
        ro[i].n_logprobs = (size_t)cut;
        ro[i].logprobs = comp[i].logprobs;
        ro[i].finish_reason = (stopped || comp[i].finish_reason == LM_FINISH_STOP) ? SRLM__PIPELINE__FINISH_REASON__FINISH_STOP
                                                                                    : SRLM__PIPELINE__FINISH_REASON__FINISH_LENGTH;
        size_t tl = 0;
        if (tok_decode(g->tok, comp[i].ids, (size_t)cut, TOK_DECODE_SKIP_SPECIAL, &texts[i], &tl) != 0)
            texts[i] = srlm_xstrdup("");
        pf_truncate_at_stop((pf_format)fmt, st->chat, texts[i]);
        ro[i].completion_text = texts[i];
        rp[i] = &ro[i];
    }
    gm.n_rollouts = (size_t)G;
    gm.rollouts = rp;
    rc = pw_send(push, NULL, 0, &gm.base, 0);
    if (rc) SRLM_WARN("broker at %s did not take group %llu within the send timeout: %s (will retry)",
                      g->cfg->ep_groups, (unsigned long long)seq, srlm_strerror(rc));
    for (int i = 0; i < G; i++) {
        free(texts[i]);
        lm_completion_free(&comp[i]);
    }
    free(texts);
    free(rp);
    free(rid);
    free(ro);
    free(comp);
    free(prompt);
    json_decref(rec);
    free(rec_json);
    dsc_batch_free(&b);
    return rc ? rc : 0;
}

static int run_policy(const pc_config *cfg, volatile sig_atomic_t *stop) {
    gen g;
    memset(&g, 0, sizeof g);
    g.cfg = cfg;
    g.version = -1;
    g.stream_stage = -1;
    int ret = 0;
    lm_set_threads(cfg->threads);
    if (tok_load(cfg->tokenizer, &g.tok) != 0) {
        SRLM_ERROR("tokenizer %s: %s", cfg->tokenizer, srlm_last_error());
        return SRLM_EINVAL;
    }
    dsc_options dopt = {0, 0};
    if (dsc_connect(cfg->ep_dataset, &dopt, &g.dsc) != 0) {
        SRLM_ERROR("dataset %s: %s", cfg->ep_dataset, srlm_last_error());
        tok_free(g.tok);
        return SRLM_EIO;
    }
    void *ctx = zmq_ctx_new();
    void *sub = pw_socket(ctx, ZMQ_SUB, cfg->ep_updates, 0, 0, 0);
    void *push = pw_socket(ctx, ZMQ_PUSH, cfg->ep_groups, 0, 0, 5000);
    if (!sub || !push) {
        SRLM_ERROR("generator: %s", srlm_last_error());
        ret = SRLM_EIO;
        goto out;
    }
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    SRLM_INFO("generator up: updates %s, groups %s, dataset %s", cfg->ep_updates, cfg->ep_groups, cfg->ep_dataset);
    double started = srlm_now(), last_warn = 0;
    int pending_send_fail = 0;
    while (!*stop) {
        /* can we produce a group right now? */
        int can = 0;
        const PwTrainerUpdate *u = g.latest;
        const pc_stage *st = NULL;
        if (u && !u->stop && u->stage_index < (uint32_t)cfg->n_stages &&
            cfg->stages[u->stage_index].type == PC_GRPO && g.model && g.version == (long)u->policy_version) {
            st = &cfg->stages[u->stage_index];
            uint64_t allowed = u->groups_consumed + (uint64_t)(1 + st->max_staleness) * (uint64_t)st->batch_size;
            if (g.next_seq < u->groups_consumed) g.next_seq = u->groups_consumed;
            if (u->groups_limit && allowed > u->groups_limit) allowed = u->groups_limit;
            can = g.next_seq < allowed;
            if (!can && u->groups_consumed < allowed && srlm_now() - g.consumed_changed_at > PD_REGEN_AFTER_S) {
                SRLM_WARN("trainer has taken no group for %.0f s: re-producing from group %llu",
                          srlm_now() - g.consumed_changed_at, (unsigned long long)u->groups_consumed);
                g.next_seq = u->groups_consumed;
                g.consumed_changed_at = srlm_now();
                can = 1;
            }
        }
        zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, can ? 0 : 500);
        if (n < 0 && errno != EINTR) {
            ret = srlm_set_error(SRLM_EIO, "zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        int got = 0;
        while (n > 0) {
            ProtobufCMessage *m = NULL;
            int rc = pw_recv(sub, 0, NULL, NULL, &srlm__pipeline__trainer_update__descriptor, &m,
                             "generator updates socket");
            if (rc == SRLM_ETIMEOUT || rc == SRLM_EINTR || rc == SRLM_EIO) break;
            if (rc == 0) {
                /* one trainer publishes, in order: the newest message is its state (a
                 * resumed trainer may announce an older version: follow it) */
                if (g.latest) protobuf_c_message_free_unpacked(&g.latest->base, NULL);
                g.latest = (PwTrainerUpdate *)m;
                got = 1;
            }
            int ev = 0;
            size_t sz = sizeof ev;
            zmq_getsockopt(sub, ZMQ_EVENTS, &ev, &sz);
            if (!(ev & ZMQ_POLLIN)) break;
        }
        if (got) {
            g.latest_at = srlm_now();
            u = g.latest;
            if (u->stop) {
                SRLM_INFO("trainer announced the end of the run");
                break;
            }
            int went_back = u->groups_consumed < g.consumed_seen;
            if (u->groups_consumed != g.consumed_seen) {
                g.consumed_seen = u->groups_consumed;
                g.consumed_changed_at = srlm_now();
            }
            if (u->stage_index < (uint32_t)cfg->n_stages && cfg->stages[u->stage_index].type == PC_GRPO) {
                if ((long)u->policy_version != g.version) {
                    if (load_version(&g, u) != 0) { ret = SRLM_EIO; break; }
                }
                if (g.stream_stage != (int)u->stage_index) {
                    if (open_stream(&g, (int)u->stage_index) != 0) { ret = SRLM_EIO; break; }
                    g.next_seq = u->groups_consumed;
                    g.consumed_changed_at = srlm_now();
                }
                if (went_back) g.next_seq = u->groups_consumed; /* the trainer resumed */
            }
            continue; /* re-evaluate credit with the newest state */
        }
        double now = srlm_now();
        double silent = now - (g.latest ? g.latest_at : started);
        if (silent > 30 && now - last_warn > 30) {
            SRLM_WARN("trainer at %s silent for %.0f s (no updates)", cfg->ep_updates, silent);
            last_warn = now;
        }
        if (can && g.stream) {
            int rc = make_group(&g, push, (int)g.latest->stage_index, g.next_seq);
            if (rc == 0 || rc == 1) {
                g.next_seq++;
                pending_send_fail = 0;
            } else if (rc == SRLM_ETIMEOUT) {
                if (++pending_send_fail > 1000) { ret = rc; break; }
            } else {
                ret = rc;
                break;
            }
        }
    }
out:
    if (g.latest) protobuf_c_message_free_unpacked(&g.latest->base, NULL);
    if (sub) zmq_close(sub);
    if (push) zmq_close(push);
    zmq_ctx_term(ctx);
    if (g.stream) dsc_stream_close(g.stream);
    dsc_close(g.dsc);
    lm_model_free(g.model);
    tok_free(g.tok);
    return ret;
}

/* ---- teacher role ------------------------------------------------------------------- */
static int teacher_reply(lm_model *m, const PwTeacherRequest *rq, PwTeacherReply *rp, uint32_t **ids_out,
                         float **lp_out) {
    int T = (int)rq->n_ids, V = m->cfg.vocab_size;
    int K = rq->top_k ? (int)rq->top_k : 8;
    if (K > V) K = V;
    if (T < 1 || T > 1 << 16) return srlm_set_error(SRLM_EINVAL, "bad sequence length %d", T);
    int32_t *tok = srlm_xmalloc((size_t)T * sizeof *tok);
    for (int t = 0; t < T; t++) {
        if (rq->ids[t] >= (uint32_t)V) { free(tok); return srlm_set_error(SRLM_EINVAL, "token id %u >= vocab %d", rq->ids[t], V); }
        tok[t] = (int32_t)rq->ids[t];
    }
    float *logits = srlm_alloc_floats((size_t)T * V);
    if (!logits) { free(tok); return srlm_set_error(SRLM_ENOMEM, "logits [%d, %d]", T, V); }
    int rc = lm_forward(m, tok, NULL, 1, T, logits, NULL);
    free(tok);
    if (rc) { free(logits); return rc; }
    uint32_t *ids = srlm_xmalloc((size_t)T * K * sizeof *ids);
    float *lp = srlm_xmalloc((size_t)T * K * sizeof *lp);
    for (int t = 0; t < T; t++) {
        const float *z = logits + (size_t)t * V;
        float mx = z[0];
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        double se = 0;
        for (int v = 0; v < V; v++) se += exp((double)(z[v] - mx));
        float lse = mx + (float)log(se);
        /* top K by insertion into a sorted list (O(V) for K << V) */
        uint32_t *bi = ids + (size_t)t * K;
        float *bv = lp + (size_t)t * K;
        int have = 0;
        for (int v = 0; v < V; v++) {
            if (have == K && z[v] <= bv[K - 1]) continue;
            int j = have < K ? have++ : K - 1;
            while (j > 0 && bv[j - 1] < z[v]) {
                bv[j] = bv[j - 1];
                bi[j] = bi[j - 1];
                j--;
            }
            bv[j] = z[v];
            bi[j] = (uint32_t)v;
        }
        for (int k = 0; k < K; k++) bv[k] -= lse;
    }
    free(logits);
    rp->top_k = (uint32_t)K;
    rp->length = (uint32_t)T;
    rp->n_topk_ids = (size_t)T * K;
    rp->topk_ids = ids;
    rp->n_topk_logprobs = (size_t)T * K;
    rp->topk_logprobs = lp;
    *ids_out = ids;
    *lp_out = lp;
    return 0;
}

static int run_teacher(const pc_config *cfg, const char *model_dir, volatile sig_atomic_t *stop) {
    lm_set_threads(cfg->threads);
    lm_model *m = NULL;
    if (lm_model_load(model_dir, &m) != 0) {
        SRLM_ERROR("teacher model %s: %s", model_dir, srlm_last_error());
        return SRLM_EIO;
    }
    char bind[300];
    pc_bind_endpoint(cfg->ep_teacher, bind, sizeof bind);
    void *ctx = zmq_ctx_new();
    void *s = pw_socket(ctx, ZMQ_ROUTER, bind, 1, 0, 5000);
    int ret = 0;
    if (!s) {
        SRLM_ERROR("teacher: %s", srlm_last_error());
        ret = SRLM_EIO;
    } else {
        SRLM_INFO("teacher up: %s serving top-k log-probabilities on %s", model_dir, bind);
    }
    while (s && !*stop) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, 500);
        if (n <= 0) continue;
        unsigned char ident[256];
        size_t il = 0;
        ProtobufCMessage *msg = NULL;
        int rc = pw_recv(s, 1, ident, &il, &srlm__pipeline__teacher_request__descriptor, &msg, "teacher socket");
        if (rc) continue;
        PwTeacherRequest *rq = (PwTeacherRequest *)msg;
        PwTeacherReply rp = SRLM__PIPELINE__TEACHER_REPLY__INIT;
        rp.schema = PW_SCHEMA;
        rp.request_id = rq->request_id;
        uint32_t *ids = NULL;
        float *lp = NULL;
        if (teacher_reply(m, rq, &rp, &ids, &lp) != 0) {
            rp.error = (char *)srlm_last_error();
            SRLM_WARN("teacher request %llu: %s", (unsigned long long)rq->request_id, rp.error);
        }
        pw_send(s, ident, il, &rp.base, ZMQ_DONTWAIT);
        free(ids);
        free(lp);
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    if (s) zmq_close(s);
    zmq_ctx_term(ctx);
    lm_model_free(m);
    return ret;
}

int gen_run(const pc_config *cfg, const char *role, const char *model_dir, volatile sig_atomic_t *stop) {
    if (role && !strcmp(role, "teacher")) {
        const char *dir = model_dir && *model_dir ? model_dir : cfg->model;
        for (int i = 0; i < cfg->n_stages && !(model_dir && *model_dir); i++)
            if (cfg->stages[i].type == PC_KD && cfg->stages[i].teacher[0]) dir = cfg->stages[i].teacher;
        return run_teacher(cfg, dir, stop);
    }
    return run_policy(cfg, stop);
}
