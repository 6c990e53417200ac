/* test_pipeline_services.c — the pipeline services against hand-driven peers:
 *  - trainer service (ts_run): garbage frames, inconsistent groups, groups of another run
 *    and duplicate groups on its PULL socket are dropped; each step applies exactly
 *    batch_size distinct groups; checkpoints and metrics are written;
 *  - generator (gen_run): garbage and unknown-schema updates on its SUB socket are dropped,
 *    the trainer's stop message ends it with 0;
 *  - teacher (gen_run role teacher): garbage is dropped, a request gets top-k
 *    log-probabilities (sorted, <= 0);
 *  - worker (worker_serve_opts): garbage from the broker is dropped, the next job is scored. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

#include "broker.h"
#include "model.h"
#include "pipeline.h"
#include "pipeline_wire.h"
#include "tokenizer.h"
#include "util.h"

typedef struct {
    char dir[128], model[256], run[256];
    pc_config cfg;
} fixture;

static void make_fixture(fixture *f, const char *stages) {
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/srlm_tps_%d_XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->model, sizeof f->model, "%s/model", f->dir);
    snprintf(f->run, sizeof f->run, "%s/run", f->dir);
    char p[512];
    snprintf(p, sizeof p, "%s/sock", f->run);
    assert_int_equal(srlm_mkdir_p(p), 0);
    const char *src = getenv("SRLM_SOURCE_DIR");
    char cfgp[512];
    snprintf(cfgp, sizeof cfgp, "%s/configs/models/tiny-qwen2.json", src ? src : SRLM_SOURCE_DIR);
    lm_config lc;
    assert_int_equal(lm_config_load(cfgp, &lc), 0);
    lm_model *m = NULL;
    assert_int_equal(lm_model_create(&lc, &m), 0);
    lm_model_init_random(m, 3);
    assert_int_equal(tok_write_byte_level(f->model), 0);
    assert_int_equal(lm_model_save(m, f->model, "F32", NULL, NULL), 0);
    lm_model_free(m);
    char text[2048];
    snprintf(text, sizeof text, "{\"name\": \"t\", \"model\": \"%s\", \"seed\": 3, \"stages\": %s}", f->model, stages);
    assert_int_equal(pc_parse(text, "test.json", f->run, &f->cfg), 0);
}

static void free_fixture(fixture *f) {
    pc_free(&f->cfg);
    srlm_rm_rf(f->dir);
}

/* ---- trainer ------------------------------------------------------------------------- */
typedef struct {
    fixture *f;
    volatile sig_atomic_t stop;
    int rc;
} ts_arg;
static void *ts_thread(void *a) {
    ts_arg *t = a;
    t->rc = ts_run(&t->f->cfg, t->f->run, 0, &t->stop);
    return NULL;
}

static void send_scored(void *push, const char *run, uint64_t seq, int bad_results) {
    enum { G = 2 };
    uint32_t prompt[3] = {10, 11, 12};
    uint32_t comp[2] = {13, 14};
    float lp[2] = {-5.5f, -5.6f};
    PwRollout ro[G];
    PwRollout *rp[G];
    PwRewardResult rr[G];
    PwRewardResult *rrp[G];
    for (int i = 0; i < G; i++) {
        srlm__pipeline__rollout__init(&ro[i]);
        ro[i].n_completion_ids = 2;
        ro[i].completion_ids = comp;
        ro[i].n_logprobs = 2;
        ro[i].logprobs = lp;
        ro[i].completion_text = "x";
        rp[i] = &ro[i];
        srlm__pipeline__reward_result__init(&rr[i]);
        rr[i].status = PW_SCORED;
        rr[i].reward = i;
        rr[i].correct = i;
        rrp[i] = &rr[i];
    }
    PwRolloutGroup g = SRLM__PIPELINE__ROLLOUT_GROUP__INIT;
    g.schema = PW_SCHEMA;
    g.run = (char *)run;
    g.group_seq = seq;
    g.problem_id = "p";
    g.kind = "math";
    g.problem_json = "{}";
    g.n_prompt_ids = 3;
    g.prompt_ids = prompt;
    g.n_rollouts = G;
    g.rollouts = rp;
    PwScoredGroup sg = SRLM__PIPELINE__SCORED_GROUP__INIT;
    sg.schema = PW_SCHEMA;
    sg.group = &g;
    sg.n_results = bad_results ? 1 : G;
    sg.results = rrp;
    sg.workers = 1;
    assert_int_equal(pw_send(push, NULL, 0, &sg.base, 0), 0);
}

static void test_trainer_exactly_once_and_malformed(void **state) {
    (void)state;
    fixture f;
    make_fixture(&f, "[{\"type\": \"grpo\", \"steps\": 2, \"batch_size\": 2, \"group_size\": 2, \"lr\": 1e-3}]");
    void *ctx = zmq_ctx_new();
    void *push = pw_socket(ctx, ZMQ_PUSH, f.cfg.ep_scored, 1, 5000, 5000); /* we are the broker */
    void *sub = pw_socket(ctx, ZMQ_SUB, f.cfg.ep_updates, 0, 20000, 5000);
    assert_non_null(push);
    assert_non_null(sub);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    ts_arg a = {&f, 0, -1};
    pthread_t th;
    pthread_create(&th, NULL, ts_thread, &a);
    /* wait for the first weight update: the trainer is up and connected */
    ProtobufCMessage *m = NULL;
    assert_int_equal(pw_recv(sub, 0, NULL, NULL, &srlm__pipeline__trainer_update__descriptor, &m, "test"), 0);
    PwTrainerUpdate *u = (PwTrainerUpdate *)m;
    assert_int_equal(u->policy_version, 0);
    assert_true(strlen(u->sha256) == 64);
    protobuf_c_message_free_unpacked(m, NULL);
    const char junk[] = "\x00\x01garbage\xff";
    zmq_send(push, junk, sizeof junk, 0);            /* garbage */
    zmq_send(push, "a", 1, ZMQ_SNDMORE);              /* extra frames */
    zmq_send(push, "b", 1, 0);
    send_scored(push, "t", 0, 1);                     /* results do not match rollouts */
    send_scored(push, "other-run", 0, 0);             /* another run's group */
    send_scored(push, "t", 0, 0);                     /* step 1 */
    send_scored(push, "t", 0, 0);                     /* duplicate of group 0 */
    send_scored(push, "t", 1, 0);
    send_scored(push, "t", 1, 0);                     /* duplicate of group 1 */
    send_scored(push, "t", 2, 0);                     /* step 2 */
    send_scored(push, "t", 3, 0);
    pthread_join(th, NULL);
    assert_int_equal(a.rc, 0);
    char p[600];
    snprintf(p, sizeof p, "%s/metrics.jsonl", f.run);
    json_error_t e;
    FILE *mf = fopen(p, "r");
    assert_non_null(mf);
    char line[4096];
    int n = 0;
    json_t *last = NULL;
    while (fgets(line, sizeof line, mf)) {
        json_decref(last);
        last = json_loads(line, 0, &e);
        assert_non_null(last);
        assert_int_equal(json_integer_value(json_object_get(last, "groups")), 2);
        assert_true(json_real_value(json_object_get(last, "reward_mean")) == 0.5);
        n++;
    }
    fclose(mf);
    assert_int_equal(n, 2);
    assert_int_equal(json_integer_value(json_object_get(last, "groups_consumed")), 4);
    assert_int_equal(json_integer_value(json_object_get(last, "duplicates")), 2);
    json_decref(last);
    snprintf(p, sizeof p, "%s/checkpoints/step_2/trainer_state.json", f.run);
    assert_true(srlm_file_exists(p));
    char ck[600];
    assert_int_equal(ts_latest_checkpoint(f.run, ck, sizeof ck), 2);
    zmq_close(push);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    free_fixture(&f);
}

/* ---- generator ------------------------------------------------------------------------ */
typedef struct {
    fixture *f;
    const char *role;
    volatile sig_atomic_t stop;
    int rc;
} gen_arg;
static void *gen_thread(void *a) {
    gen_arg *g = a;
    g->rc = gen_run(&g->f->cfg, g->role, g->role && !strcmp(g->role, "teacher") ? g->f->model : NULL, &g->stop);
    return NULL;
}

static void test_generator_drops_malformed_updates(void **state) {
    (void)state;
    fixture f;
    make_fixture(&f, "[{\"type\": \"grpo\", \"steps\": 1, \"batch_size\": 1, \"group_size\": 2}]");
    void *ctx = zmq_ctx_new();
    void *pub = pw_socket(ctx, ZMQ_PUB, f.cfg.ep_updates, 1, 5000, 5000); /* we are the trainer */
    gen_arg a = {&f, "policy", 0, -1};
    pthread_t th;
    pthread_create(&th, NULL, gen_thread, &a);
    PwTrainerUpdate bad = SRLM__PIPELINE__TRAINER_UPDATE__INIT;
    bad.schema = 42;
    bad.stop = 1;                                     /* unknown schema: must be ignored */
    PwTrainerUpdate stop = SRLM__PIPELINE__TRAINER_UPDATE__INIT;
    stop.schema = PW_SCHEMA;
    stop.stop = 1;
    stop.run = "t";
    const char junk[] = "\x12\x34not a message";
    for (int i = 0; i < 10; i++) { /* slow joiner: repeat */
        zmq_send(pub, junk, sizeof junk, 0);
        pw_send(pub, NULL, 0, &bad.base, 0);
        usleep(100000);
    }
    assert_int_equal(pthread_tryjoin_np(th, NULL) == 0 ? 1 : 0, 0); /* still running */
    for (int i = 0; i < 100; i++) {
        pw_send(pub, NULL, 0, &stop.base, 0);
        usleep(50000);
        if (pthread_tryjoin_np(th, NULL) == 0) break;
        if (i == 99) { a.stop = 1; pthread_join(th, NULL); fail_msg("generator ignored the stop message"); }
    }
    assert_int_equal(a.rc, 0);
    zmq_close(pub);
    zmq_ctx_term(ctx);
    free_fixture(&f);
}

static void test_teacher_topk_and_malformed(void **state) {
    (void)state;
    fixture f;
    make_fixture(&f, "[{\"type\": \"kd\", \"kd_mode\": \"logit\", \"teacher\": \"x\", \"teacher_service\": true, \"steps\": 1}]");
    gen_arg a = {&f, "teacher", 0, -1};
    pthread_t th;
    pthread_create(&th, NULL, gen_thread, &a);
    void *ctx = zmq_ctx_new();
    void *d = pw_socket(ctx, ZMQ_DEALER, f.cfg.ep_teacher, 0, 20000, 5000);
    const char junk[] = "junk";
    zmq_send(d, junk, sizeof junk, 0);
    uint32_t ids[3] = {65, 66, 67};
    PwTeacherRequest rq = SRLM__PIPELINE__TEACHER_REQUEST__INIT;
    rq.schema = PW_SCHEMA;
    rq.request_id = 7;
    rq.n_ids = 3;
    rq.ids = ids;
    rq.top_k = 4;
    assert_int_equal(pw_send(d, NULL, 0, &rq.base, 0), 0);
    ProtobufCMessage *m = NULL;
    assert_int_equal(pw_recv(d, 0, NULL, NULL, &srlm__pipeline__teacher_reply__descriptor, &m, "test"), 0);
    PwTeacherReply *r = (PwTeacherReply *)m;
    assert_int_equal(r->request_id, 7);
    assert_int_equal(r->length, 3);
    assert_int_equal(r->top_k, 4);
    assert_int_equal(r->n_topk_logprobs, 12);
    double mass = 0;
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 4; k++) {
            float v = r->topk_logprobs[t * 4 + k];
            assert_true(v <= 0.0f);
            if (k) assert_true(v <= r->topk_logprobs[t * 4 + k - 1]);
            if (t == 0) mass += exp(v);
        }
    assert_true(mass > 0 && mass <= 1.0 + 1e-5);
    protobuf_c_message_free_unpacked(m, NULL);
    rq.ids[0] = 100000; /* out of vocabulary: an error reply, not a crash */
    rq.request_id = 8;
    assert_int_equal(pw_send(d, NULL, 0, &rq.base, 0), 0);
    assert_int_equal(pw_recv(d, 0, NULL, NULL, &srlm__pipeline__teacher_reply__descriptor, &m, "test"), 0);
    assert_true(strlen(((PwTeacherReply *)m)->error) > 0);
    protobuf_c_message_free_unpacked(m, NULL);
    a.stop = 1;
    pthread_join(th, NULL);
    assert_int_equal(a.rc, 0);
    zmq_close(d);
    zmq_ctx_term(ctx);
    free_fixture(&f);
}

/* ---- worker ---------------------------------------------------------------------------- */
static int score_len(void *ctx, const char *problem, const char *completion, reward_result *out) {
    (void)ctx;
    (void)problem;
    out->reward = (double)strlen(completion);
    snprintf(out->verdict, sizeof out->verdict, "ok");
    return 0;
}
typedef struct {
    worker_options o;
    volatile sig_atomic_t stop;
    int rc;
} wk_arg;
static void *wk_thread(void *a) {
    wk_arg *w = a;
    w->rc = worker_serve_opts(&w->o, score_len, NULL, &w->stop);
    return NULL;
}

static void test_worker_drops_malformed(void **state) {
    (void)state;
    char dir[] = "/tmp/srlm_tpw_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ep[128];
    snprintf(ep, sizeof ep, "ipc://%s/w", dir);
    void *ctx = zmq_ctx_new();
    void *router = pw_socket(ctx, ZMQ_ROUTER, ep, 1, 10000, 5000); /* we are the broker */
    wk_arg w;
    memset(&w, 0, sizeof w);
    w.o.endpoint = ep;
    w.o.kind = "math";
    w.o.heartbeat_ms = 100;
    pthread_t th;
    pthread_create(&th, NULL, wk_thread, &w);
    unsigned char id[256];
    size_t il = 0;
    ProtobufCMessage *m = NULL;
    assert_int_equal(pw_recv(router, 1, id, &il, &srlm__pipeline__worker_msg__descriptor, &m, "test"), 0);
    assert_int_equal(((PwWorkerMsg *)m)->type, PW_READY);
    assert_string_equal(((PwWorkerMsg *)m)->kind, "math");
    protobuf_c_message_free_unpacked(m, NULL);
    zmq_send(router, id, il, ZMQ_SNDMORE);
    zmq_send(router, "\xff\xff", 2, 0);               /* garbage */
    PwWorkerMsg nojob = SRLM__PIPELINE__WORKER_MSG__INIT; /* JOB without a job */
    nojob.schema = PW_SCHEMA;
    nojob.type = PW_JOB;
    pw_send(router, id, il, &nojob.base, 0);
    PwRewardJob j = SRLM__PIPELINE__REWARD_JOB__INIT;
    j.job_id = 99;
    j.kind = "math";
    j.problem_json = "{}";
    j.completion = "abcd";
    PwWorkerMsg jm = SRLM__PIPELINE__WORKER_MSG__INIT;
    jm.schema = PW_SCHEMA;
    jm.type = PW_JOB;
    jm.job = &j;
    assert_int_equal(pw_send(router, id, il, &jm.base, 0), 0);
    int got = 0;
    for (int k = 0; k < 100 && !got; k++) {
        assert_int_equal(pw_recv(router, 1, id, &il, &srlm__pipeline__worker_msg__descriptor, &m, "test"), 0);
        PwWorkerMsg *wm = (PwWorkerMsg *)m;
        if (wm->type == PW_RESULT) {
            assert_int_equal(wm->result->job_id, 99);
            assert_int_equal(wm->result->status, PW_SCORED);
            assert_true(wm->result->reward == 4.0);
            got = 1;
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    assert_true(got);
    w.stop = 1;
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
    zmq_close(router);
    zmq_ctx_term(ctx);
    srlm_rm_rf(dir);
}

int main(void) {
    srlm_log_set_role("test_pipeline_services");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trainer_exactly_once_and_malformed),
        cmocka_unit_test(test_generator_drops_malformed_updates),
        cmocka_unit_test(test_teacher_topk_and_malformed),
        cmocka_unit_test(test_worker_drops_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
