/* test_reward_math_service.c — `srlm reward-math --connect` end to end: a broker (in a
 * thread), the real srlm binary as the math worker (checks in its seccomp-filtered child),
 * one rollout group pushed in, the scored group checked (rewards, verdicts, extracted,
 * format_ok, details), and the worker stopped with SIGTERM. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

#include "broker.h"
#include "pipeline_wire.h"
#include "util.h"

typedef struct {
    broker_config cfg;
    volatile sig_atomic_t stop;
    broker_stats st;
} bk;

static void *broker_thread(void *arg) {
    bk *b = arg;
    broker_run(&b->cfg, &b->stop, &b->st);
    return NULL;
}

static void test_connect_scores_group(void **state) {
    (void)state;
    const char *bin = getenv("SRLM_BIN");
    if (!bin) skip();
    char dir[256], epg[300], epw[300], eps[300];
    snprintf(dir, sizeof dir, "/tmp/srlm_test_rmath_%d_XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(dir));
    snprintf(epg, sizeof epg, "ipc://%s/groups", dir);
    snprintf(epw, sizeof epw, "ipc://%s/workers", dir);
    snprintf(eps, sizeof eps, "ipc://%s/scored", dir);
    bk b;
    memset(&b, 0, sizeof b);
    broker_config_defaults(&b.cfg);
    b.cfg.groups_endpoint = epg;
    b.cfg.workers_endpoint = epw;
    b.cfg.scored_endpoint = eps;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, broker_thread, &b), 0);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(bin, bin, "reward-math", "--connect", epw, (char *)NULL);
        _exit(127);
    }

    void *ctx = zmq_ctx_new();
    void *push = pw_socket(ctx, ZMQ_PUSH, epg, 0, 10000, 10000);
    void *pull = pw_socket(ctx, ZMQ_PULL, eps, 0, 30000, 10000);
    assert_non_null(push);
    assert_non_null(pull);
    static const char *COMPLETIONS[] = {
        "<think>9 * 2 = 18</think> The answer is \\boxed{18}.", /* correct, format ok */
        "She makes 17 dollars.",                               /* wrong, last number */
        NULL,                                                  /* unparsable: long prose */
        "#### 18",                                             /* correct */
    };
    const int G = 4;
    PwRolloutGroup g = SRLM__PIPELINE__ROLLOUT_GROUP__INIT;
    g.schema = PW_SCHEMA;
    g.run = "t";
    g.group_seq = 7;
    g.problem_id = "gsm8k/test/0";
    g.kind = "math";
    g.problem_json = "{\"id\":\"gsm8k/test/0\",\"source\":\"gsm8k\",\"kind\":\"math\",\"answer\":\"18\"}";
    char prose[1200] = "";
    for (int i = 0; i < 40; i++) strcat(prose, "I have no idea. ");
    PwRollout rs[4], *rp[4];
    for (int i = 0; i < G; i++) {
        srlm__pipeline__rollout__init(&rs[i]);
        rs[i].completion_text = COMPLETIONS[i] ? (char *)COMPLETIONS[i] : prose;
        rp[i] = &rs[i];
    }
    g.n_rollouts = (size_t)G;
    g.rollouts = rp;
    assert_int_equal(pw_send(push, NULL, 0, &g.base, 0), 0);

    ProtobufCMessage *m = NULL;
    int rc = pw_recv(pull, 0, NULL, NULL, &srlm__pipeline__scored_group__descriptor, &m, "test");
    /* stop the worker before any assertion can end the test */
    kill(pid, SIGTERM);
    int st = 0;
    pid_t w = waitpid(pid, &st, 0);
    assert_int_equal(rc, 0);
    assert_int_equal(w, pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    PwScoredGroup *sg = (PwScoredGroup *)m;
    assert_int_equal(sg->n_results, (size_t)G);
    static const char *VERDICTS[] = {"correct", "wrong", "unparsable", "correct"};
    static const double REWARDS[] = {1, 0, 0, 1};
    for (int i = 0; i < G; i++) {
        assert_int_equal(sg->results[i]->status, PW_SCORED);
        assert_string_equal(sg->results[i]->verdict, VERDICTS[i]);
        assert_true(sg->results[i]->reward == REWARDS[i]);
    }
    assert_string_equal(sg->results[0]->extracted, "18");
    assert_true(sg->results[0]->format_ok);
    assert_false(sg->results[1]->format_ok);
    assert_string_equal(sg->results[1]->extracted, "17");
    assert_non_null(strstr(sg->results[0]->details_json, "\"rule\":\"boxed\""));
    protobuf_c_message_free_unpacked(m, NULL);

    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    b.stop = 1;
    pthread_join(th, NULL);
    srlm_rm_rf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_scores_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
