/* bench_broker.c — rollouts scored per second through the broker with N = 1, 2, 4 reward
 * workers running a trivial checker, next to a peer: the same jobs sent one by one over a
 * direct DEALER→ROUTER round trip to one in-process scorer (no broker). The broker's
 * overhead per job is broker time per job (N = 1) minus the peer's time per job.
 * Usage: bench_broker [GROUPS] [G]  (default 500 groups of 8). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "broker.h"
#include "pipeline_wire.h"
#include "util.h"

static int trivial(void *ctx, const char *problem, const char *completion, reward_result *out) {
    (void)ctx;
    (void)problem;
    out->correct = strstr(completion, "42") != NULL;
    out->reward = out->correct;
    snprintf(out->verdict, sizeof out->verdict, "%s", out->correct ? "correct" : "wrong");
    return 0;
}

typedef struct {
    broker_config cfg;
    volatile sig_atomic_t stop;
    pthread_t th;
} bkr;
static void *bthread(void *a) {
    bkr *b = a;
    broker_run(&b->cfg, &b->stop, NULL);
    return NULL;
}
typedef struct {
    worker_options o;
    volatile sig_atomic_t stop;
    pthread_t th;
} wkr;
static void *wthread(void *a) {
    wkr *w = a;
    worker_serve_opts(&w->o, trivial, NULL, &w->stop);
    return NULL;
}

static PwRolloutGroup *make_group(int G, uint64_t seq) {
    static char *texts[2] = {"the answer is 42", "the answer is 41"};
    PwRolloutGroup *g = calloc(1, sizeof *g);
    srlm__pipeline__rollout_group__init(g);
    g->schema = PW_SCHEMA;
    g->run = "bench";
    g->group_seq = seq;
    g->problem_id = "p";
    g->kind = "math";
    g->problem_json = "{\"id\":\"p\",\"answer\":\"42\"}";
    g->n_rollouts = (size_t)G;
    g->rollouts = calloc((size_t)G, sizeof *g->rollouts);
    for (int i = 0; i < G; i++) {
        PwRollout *r = calloc(1, sizeof *r);
        srlm__pipeline__rollout__init(r);
        r->completion_text = texts[i % 2];
        g->rollouts[i] = r;
    }
    return g;
}

static void free_group(PwRolloutGroup *g) {
    for (size_t i = 0; i < g->n_rollouts; i++) free(g->rollouts[i]);
    free(g->rollouts);
    free(g);
}

static double run_broker(const char *dir, int nworkers, int groups, int G) {
    char eg[300], ew[300], es[300];
    snprintf(eg, sizeof eg, "ipc://%s/g%d", dir, nworkers);
    snprintf(ew, sizeof ew, "ipc://%s/w%d", dir, nworkers);
    snprintf(es, sizeof es, "ipc://%s/s%d", dir, nworkers);
    bkr b;
    memset(&b, 0, sizeof b);
    b.cfg.groups_endpoint = eg;
    b.cfg.workers_endpoint = ew;
    b.cfg.scored_endpoint = es;
    pthread_create(&b.th, NULL, bthread, &b);
    wkr w[4];
    memset(w, 0, sizeof w);
    for (int i = 0; i < nworkers; i++) {
        w[i].o.endpoint = ew;
        w[i].o.kind = "math";
        pthread_create(&w[i].th, NULL, wthread, &w[i]);
    }
    void *ctx = zmq_ctx_new();
    void *push = pw_socket(ctx, ZMQ_PUSH, eg, 0, 10000, 10000);
    void *pull = pw_socket(ctx, ZMQ_PULL, es, 0, 30000, 10000);
    usleep(300000); /* workers join */
    PwRolloutGroup *g = make_group(G, 0);
    double t0 = srlm_now();
    for (int i = 0; i < groups; i++) {
        g->group_seq = (uint64_t)i;
        pw_send(push, NULL, 0, &g->base, 0);
    }
    long results = 0;
    for (int i = 0; i < groups; i++) {
        ProtobufCMessage *m = NULL;
        if (pw_recv(pull, 0, NULL, NULL, &srlm__pipeline__scored_group__descriptor, &m, "bench") != 0) break;
        results += (long)((PwScoredGroup *)m)->n_results;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    double dt = srlm_now() - t0;
    free_group(g);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    for (int i = 0; i < nworkers; i++) w[i].stop = 1;
    for (int i = 0; i < nworkers; i++) pthread_join(w[i].th, NULL);
    b.stop = 1;
    pthread_join(b.th, NULL);
    if (results != (long)groups * G) fprintf(stderr, "bench: only %ld results\n", results);
    return dt / (double)results;
}

/* peer: one scorer behind a ROUTER, jobs sent one at a time from a DEALER */
typedef struct {
    char ep[300];
    volatile int stop;
} peer;
static void *peer_thread(void *a) {
    peer *p = a;
    void *ctx = zmq_ctx_new();
    void *s = pw_socket(ctx, ZMQ_ROUTER, p->ep, 1, 200, 1000);
    while (!p->stop) {
        unsigned char id[256];
        size_t il;
        ProtobufCMessage *m = NULL;
        if (pw_recv(s, 1, id, &il, &srlm__pipeline__worker_msg__descriptor, &m, "peer") != 0) continue;
        PwWorkerMsg *wm = (PwWorkerMsg *)m;
        reward_result rr;
        memset(&rr, 0, sizeof rr);
        trivial(NULL, wm->job->problem_json, wm->job->completion, &rr);
        PwRewardResult r = SRLM__PIPELINE__REWARD_RESULT__INIT;
        r.job_id = wm->job->job_id;
        r.status = PW_SCORED;
        r.reward = rr.reward;
        r.verdict = rr.verdict;
        PwWorkerMsg out = SRLM__PIPELINE__WORKER_MSG__INIT;
        out.schema = PW_SCHEMA;
        out.type = PW_RESULT;
        out.result = &r;
        pw_send(s, id, il, &out.base, 0);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return NULL;
}

static double run_peer(const char *dir, long jobs) {
    peer p;
    memset(&p, 0, sizeof p);
    snprintf(p.ep, sizeof p.ep, "ipc://%s/peer", dir);
    pthread_t th;
    pthread_create(&th, NULL, peer_thread, &p);
    usleep(100000);
    void *ctx = zmq_ctx_new();
    void *d = pw_socket(ctx, ZMQ_DEALER, p.ep, 0, 10000, 10000);
    PwRewardJob j = SRLM__PIPELINE__REWARD_JOB__INIT;
    j.kind = "math";
    j.problem_json = "{\"id\":\"p\",\"answer\":\"42\"}";
    PwWorkerMsg m = SRLM__PIPELINE__WORKER_MSG__INIT;
    m.schema = PW_SCHEMA;
    m.type = PW_JOB;
    m.job = &j;
    double t0 = srlm_now();
    for (long i = 0; i < jobs; i++) {
        j.job_id = (uint64_t)i + 1;
        j.completion = (i % 2) ? "the answer is 41" : "the answer is 42";
        pw_send(d, NULL, 0, &m.base, 0);
        ProtobufCMessage *r = NULL;
        if (pw_recv(d, 0, NULL, NULL, &srlm__pipeline__worker_msg__descriptor, &r, "bench") != 0) break;
        protobuf_c_message_free_unpacked(r, NULL);
    }
    double dt = srlm_now() - t0;
    zmq_close(d);
    zmq_ctx_term(ctx);
    p.stop = 1;
    pthread_join(th, NULL);
    return dt / (double)jobs;
}

int main(int argc, char **argv) {
    int groups = argc > 1 ? atoi(argv[1]) : 500, G = argc > 2 ? atoi(argv[2]) : 8;
    if (groups <= 0 || G <= 0) { fprintf(stderr, "usage: bench_broker [GROUPS] [G]\n"); return 2; }
    srlm_log_set_role("bench_broker");
    srlm_log_set_level(SRLM_LOG_WARN);
    char dir[] = "/tmp/srlm_bench_broker_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    long jobs = (long)groups * G;
    double peer_s = run_peer(dir, jobs);
    printf("bench_broker: %d groups x %d rollouts = %ld jobs, trivial checker, ipc\n", groups, G, jobs);
    printf("peer (direct DEALER->ROUTER round trip, 1 scorer, no broker): %8.0f jobs/s  %7.1f us/job\n",
           1.0 / peer_s, peer_s * 1e6);
    double b1 = 0;
    for (int n = 1; n <= 4; n *= 2) {
        double s = run_broker(dir, n, groups, G);
        if (n == 1) b1 = s;
        printf("broker + %d worker%s:                                    %8.0f rollouts/s  %7.1f us/job  (%.2fx peer)\n",
               n, n > 1 ? "s" : " ", 1.0 / s, s * 1e6, peer_s / s);
    }
    double over = b1 - peer_s;
    printf("broker overhead per job (broker+1 worker minus peer): %.1f us (%s the 1 ms goal)\n", over * 1e6,
           over < 1e-3 ? "within" : "ABOVE");
    srlm_rm_rf(dir);
    return 0;
}
