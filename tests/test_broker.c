/* test_broker.c — broker + worker_serve protocol: every rollout scored exactly once,
 * workers that die or go silent have their jobs re-queued, late results are deduplicated,
 * bounded retries end in an ERROR result, malformed frames are dropped. */
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
#include "pipeline_wire.h"
#include "util.h"

typedef struct {
    char dir[256];
    char ep_groups[300], ep_workers[300], ep_scored[300];
    broker_config cfg;
    volatile sig_atomic_t stop;
    broker_stats st;
    pthread_t th;
} bk;

static void *broker_thread(void *arg) {
    bk *b = arg;
    broker_run(&b->cfg, &b->stop, &b->st);
    return NULL;
}

static void bk_start(bk *b) {
    memset(b, 0, sizeof *b);
    snprintf(b->dir, sizeof b->dir, "/tmp/srlm_test_broker_%d_XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(b->dir));
    snprintf(b->ep_groups, sizeof b->ep_groups, "ipc://%s/groups", b->dir);
    snprintf(b->ep_workers, sizeof b->ep_workers, "ipc://%s/workers", b->dir);
    snprintf(b->ep_scored, sizeof b->ep_scored, "ipc://%s/scored", b->dir);
    b->cfg.groups_endpoint = b->ep_groups;
    b->cfg.workers_endpoint = b->ep_workers;
    b->cfg.scored_endpoint = b->ep_scored;
    b->cfg.heartbeat_ms = 100;
    b->cfg.liveness = 3;
    b->cfg.max_attempts = 3;
    assert_int_equal(pthread_create(&b->th, NULL, broker_thread, b), 0);
}

static void bk_stop(bk *b) {
    b->stop = 1;
    pthread_join(b->th, NULL);
    srlm_rm_rf(b->dir);
}

/* trivial scorer: reward = 1 if the completion ends in "ok" */
static int score_ok(void *ctx, const char *problem, const char *completion, reward_result *out) {
    (void)ctx;
    (void)problem;
    size_t n = strlen(completion);
    out->correct = n >= 2 && !strcmp(completion + n - 2, "ok");
    out->reward = out->correct ? 1.0 : 0.0;
    snprintf(out->verdict, sizeof out->verdict, "%s", out->correct ? "correct" : "wrong");
    return 0;
}

static int score_fail(void *ctx, const char *problem, const char *completion, reward_result *out) {
    (void)ctx;
    (void)problem;
    (void)completion;
    out->is_error = 1;
    snprintf(out->error, sizeof out->error, "sandbox unavailable");
    return SRLM_EIO;
}

typedef struct {
    worker_options o;
    reward_score_fn fn;
    volatile sig_atomic_t stop;
    pthread_t th;
} wk;

static void *worker_thread(void *arg) {
    wk *w = arg;
    worker_serve_opts(&w->o, w->fn, NULL, &w->stop);
    return NULL;
}

static void wk_start(wk *w, bk *b, const char *kind, reward_score_fn fn) {
    memset(w, 0, sizeof *w);
    w->o.endpoint = b->ep_workers;
    w->o.kind = kind;
    w->o.heartbeat_ms = 100;
    w->o.liveness = 3;
    w->fn = fn;
    assert_int_equal(pthread_create(&w->th, NULL, worker_thread, w), 0);
}

static void wk_stop(wk *w) {
    w->stop = 1;
    pthread_join(w->th, NULL);
}

static void push_group(void *push, uint64_t seq, const char *kind, int G) {
    PwRolloutGroup g = SRLM__PIPELINE__ROLLOUT_GROUP__INIT;
    g.schema = PW_SCHEMA;
    g.run = "t";
    g.group_seq = seq;
    char pid[32];
    snprintf(pid, sizeof pid, "p%llu", (unsigned long long)seq);
    g.problem_id = pid;
    g.kind = (char *)kind;
    g.problem_json = "{\"id\":\"x\"}";
    PwRollout *rs = calloc((size_t)G, sizeof *rs);
    PwRollout **rp = calloc((size_t)G, sizeof *rp);
    char (*txt)[16] = calloc((size_t)G, 16);
    for (int i = 0; i < G; i++) {
        srlm__pipeline__rollout__init(&rs[i]);
        snprintf(txt[i], 16, "%s", (i % 2) ? "ok" : "no");
        rs[i].completion_text = txt[i];
        rp[i] = &rs[i];
    }
    g.n_rollouts = (size_t)G;
    g.rollouts = rp;
    assert_int_equal(pw_send(push, NULL, 0, &g.base, 0), 0);
    free(rs);
    free(rp);
    free(txt);
}

/* Receive n scored groups; check one result per rollout, rewards, and unique seqs. */
static void pull_groups(void *pull, uint64_t base, int n, int G, int expect_errors, uint32_t *errors_out) {
    int *seen = calloc((size_t)n, sizeof *seen);
    uint32_t errors = 0;
    for (int k = 0; k < n; k++) {
        ProtobufCMessage *m = NULL;
        int rc = pw_recv(pull, 0, NULL, NULL, &srlm__pipeline__scored_group__descriptor, &m, "test");
        assert_int_equal(rc, 0);
        PwScoredGroup *sg = (PwScoredGroup *)m;
        assert_non_null(sg->group);
        assert_true(sg->group->group_seq >= base && sg->group->group_seq < base + (uint64_t)n);
        assert_int_equal(seen[sg->group->group_seq - base], 0);
        seen[sg->group->group_seq - base] = 1;
        assert_int_equal(sg->n_results, (size_t)G);
        for (int i = 0; i < G; i++) {
            if (expect_errors) {
                assert_int_equal(sg->results[i]->status, PW_ERROR);
                assert_non_null(strstr(sg->results[i]->error, "sandbox unavailable"));
            } else {
                assert_int_equal(sg->results[i]->status, PW_SCORED);
                assert_true(sg->results[i]->reward == ((i % 2) ? 1.0 : 0.0));
            }
        }
        errors += sg->errors;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    free(seen);
    if (errors_out) *errors_out = errors;
}

static void test_every_rollout_scored_once(void **state) {
    (void)state;
    bk b;
    bk_start(&b);
    wk w[3];
    wk_start(&w[0], &b, "math", score_ok);
    wk_start(&w[1], &b, "math", score_ok);
    wk_start(&w[2], &b, "code", score_ok);
    void *ctx = zmq_ctx_new();
    void *push = pw_socket(ctx, ZMQ_PUSH, b.ep_groups, 0, 10000, 10000);
    void *pull = pw_socket(ctx, ZMQ_PULL, b.ep_scored, 0, 20000, 10000);
    assert_non_null(push);
    assert_non_null(pull);
    const int N = 40, G = 4;
    for (int i = 0; i < N; i++) push_group(push, (uint64_t)i, (i % 3) ? "math" : "code", G);
    pull_groups(pull, 0, N, G, 0, NULL);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    for (int i = 0; i < 3; i++) wk_stop(&w[i]);
    bk_stop(&b);
    assert_int_equal(b.st.groups_in, (uint64_t)N);
    assert_int_equal(b.st.groups_out, (uint64_t)N);
    assert_int_equal(b.st.results_ok, (uint64_t)(N * G));
    assert_int_equal(b.st.jobs_created, (uint64_t)(N * G));
    assert_int_equal(b.st.results_error, 0);
}

/* A fake worker takes a job and goes silent; the broker re-queues it to a real worker;
 * the fake then sends a late result, which must be dropped as a duplicate. */
static void test_dead_worker_requeue_and_dedup(void **state) {
    (void)state;
    bk b;
    bk_start(&b);
    void *ctx = zmq_ctx_new();
    void *fake = pw_socket(ctx, ZMQ_DEALER, b.ep_workers, 0, 5000, 5000);
    PwWorkerMsg ready = SRLM__PIPELINE__WORKER_MSG__INIT;
    ready.schema = PW_SCHEMA;
    ready.type = PW_READY;
    ready.kind = "math";
    assert_int_equal(pw_send(fake, NULL, 0, &ready.base, 0), 0);
    usleep(200000);
    void *push = pw_socket(ctx, ZMQ_PUSH, b.ep_groups, 0, 10000, 10000);
    void *pull = pw_socket(ctx, ZMQ_PULL, b.ep_scored, 0, 20000, 10000);
    push_group(push, 0, "math", 2);
    /* the fake receives the first job (skip heartbeats) */
    uint64_t job_id = 0;
    for (int k = 0; k < 50 && !job_id; k++) {
        ProtobufCMessage *m = NULL;
        assert_int_equal(pw_recv(fake, 0, NULL, NULL, &srlm__pipeline__worker_msg__descriptor, &m, "fake"), 0);
        PwWorkerMsg *wm = (PwWorkerMsg *)m;
        if (wm->type == PW_JOB) job_id = wm->job->job_id;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    assert_true(job_id != 0);
    /* now a real worker joins; the fake stays silent until declared dead */
    wk w;
    wk_start(&w, &b, "math", score_ok);
    pull_groups(pull, 0, 1, 2, 0, NULL);
    /* late result from the presumed-dead fake: wrong reward, must be dropped */
    PwRewardResult r = SRLM__PIPELINE__REWARD_RESULT__INIT;
    r.job_id = job_id;
    r.status = PW_SCORED;
    r.reward = 0.5;
    PwWorkerMsg res = SRLM__PIPELINE__WORKER_MSG__INIT;
    res.schema = PW_SCHEMA;
    res.type = PW_RESULT;
    res.result = &r;
    assert_int_equal(pw_send(fake, NULL, 0, &res.base, 0), 0);
    push_group(push, 1, "math", 2);
    pull_groups(pull, 1, 1, 2, 0, NULL);
    zmq_close(fake);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    wk_stop(&w);
    bk_stop(&b);
    assert_true(b.st.workers_lost >= 1);
    assert_true(b.st.requeued >= 1);
    assert_int_equal(b.st.duplicates, 1);
    assert_int_equal(b.st.results_ok, 4);
    assert_int_equal(b.st.groups_out, 2);
}

static void test_bounded_retries_give_error(void **state) {
    (void)state;
    bk b;
    bk_start(&b);
    wk w;
    wk_start(&w, &b, "code", score_fail);
    void *ctx = zmq_ctx_new();
    void *push = pw_socket(ctx, ZMQ_PUSH, b.ep_groups, 0, 10000, 10000);
    void *pull = pw_socket(ctx, ZMQ_PULL, b.ep_scored, 0, 20000, 10000);
    push_group(push, 0, "code", 3);
    uint32_t errors = 0;
    pull_groups(pull, 0, 1, 3, 1, &errors);
    assert_int_equal(errors, 3);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    wk_stop(&w);
    bk_stop(&b);
    assert_int_equal(b.st.jobs_dispatched, 9); /* 3 jobs x 3 attempts */
    assert_int_equal(b.st.results_error, 3);
    assert_int_equal(b.st.results_ok, 0);
}

static void test_malformed_frames_dropped(void **state) {
    (void)state;
    bk b;
    bk_start(&b);
    void *ctx = zmq_ctx_new();
    void *push = pw_socket(ctx, ZMQ_PUSH, b.ep_groups, 0, 10000, 10000);
    void *raw = pw_socket(ctx, ZMQ_DEALER, b.ep_workers, 0, 10000, 10000);
    /* pw_socket sets linger 0; this peer may still be (re)connecting when the group
     * completes, so let zmq_ctx_term deliver its frames before the broker stops. */
    int linger = 10000;
    zmq_setsockopt(raw, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    void *pull = pw_socket(ctx, ZMQ_PULL, b.ep_scored, 0, 20000, 10000);
    const char junk[] = "\xff\xfe garbage \x01\x02";
    zmq_send(push, junk, sizeof junk, 0);                 /* garbage group */
    zmq_send(push, "a", 1, ZMQ_SNDMORE);                   /* multipart */
    zmq_send(push, "b", 1, 0);
    zmq_send(raw, junk, sizeof junk, 0);                  /* garbage worker frame */
    PwWorkerMsg wm = SRLM__PIPELINE__WORKER_MSG__INIT;    /* wrong schema version */
    wm.schema = 99;
    wm.type = PW_READY;
    wm.kind = "math";
    pw_send(raw, NULL, 0, &wm.base, 0);
    PwWorkerMsg bad = SRLM__PIPELINE__WORKER_MSG__INIT;   /* READY with hostile kind */
    bad.schema = PW_SCHEMA;
    bad.type = PW_READY;
    bad.kind = "../../etc";
    pw_send(raw, NULL, 0, &bad.base, 0);
    PwRolloutGroup empty = SRLM__PIPELINE__ROLLOUT_GROUP__INIT; /* valid proto, no rollouts */
    empty.schema = PW_SCHEMA;
    pw_send(push, NULL, 0, &empty.base, 0);
    /* a scored-socket peer sending junk is ignored by PUSH semantics; the service must
     * still work afterwards */
    wk w;
    wk_start(&w, &b, "math", score_ok);
    push_group(push, 0, "math", 2);
    pull_groups(pull, 0, 1, 2, 0, NULL);
    zmq_close(push);
    zmq_close(raw);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    wk_stop(&w);
    bk_stop(&b);
    assert_int_equal(b.st.malformed, 6);
    assert_int_equal(b.st.groups_out, 1);
}

int main(void) {
    srlm_log_set_role("test_broker");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_rollout_scored_once),
        cmocka_unit_test(test_dead_worker_requeue_and_dedup),
        cmocka_unit_test(test_bounded_retries_give_error),
        cmocka_unit_test(test_malformed_frames_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
