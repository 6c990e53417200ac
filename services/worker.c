/* worker.c — the reward worker's side of the broker protocol (services/broker.h):
 * DEALER, READY with kind, heartbeats both ways, one job at a time scored in a child
 * thread, reconnect with exponential back-off when the broker is silent. */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "broker.h"
#include "pipeline_wire.h"
#include "util.h"

void reward_result_free(reward_result *r) {
    if (!r) return;
    free(r->details_json);
    r->details_json = NULL;
}

typedef struct {
    reward_score_fn fn;
    void *ctx;
    uint64_t job_id;
    char *problem, *completion;
    reward_result res;
    int rc;
    double seconds;
    int pipe_w;
} score_task;

static void *score_thread(void *arg) {
    score_task *t = arg;
    double t0 = srlm_now();
    memset(&t->res, 0, sizeof t->res);
    t->rc = t->fn(t->ctx, t->problem, t->completion, &t->res);
    if (t->rc < 0 && !t->res.is_error) {
        t->res.is_error = 1;
        if (!t->res.error[0]) snprintf(t->res.error, sizeof t->res.error, "%s", srlm_last_error());
    }
    t->seconds = srlm_now() - t0;
    char c = 1;
    while (write(t->pipe_w, &c, 1) < 0 && errno == EINTR) {}
    return NULL;
}

static int send_simple(void *sock, int type, const char *kind, int busy) {
    PwWorkerMsg m = SRLM__PIPELINE__WORKER_MSG__INIT;
    m.schema = PW_SCHEMA;
    m.type = type;
    m.kind = (char *)kind;
    m.busy = (uint32_t)busy;
    return pw_send(sock, NULL, 0, &m.base, ZMQ_DONTWAIT);
}

static void *connect_dealer(void *zctx, const char *ep) {
    void *s = pw_socket(zctx, ZMQ_DEALER, ep, 0, 0, 1000);
    if (!s) SRLM_ERROR("worker: %s", srlm_last_error());
    return s;
}

/* sleep ms, waking early on *stop */
static void nap(int ms, volatile sig_atomic_t *stop) {
    while (ms > 0 && !*stop) {
        int step = ms > 100 ? 100 : ms;
        struct timespec ts = {0, step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

int worker_serve_opts(const worker_options *opt_in, reward_score_fn fn, void *fctx,
                      volatile sig_atomic_t *stop) {
    worker_options o = *opt_in;
    if (o.heartbeat_ms <= 0) o.heartbeat_ms = pw_env_ms("SRLM_HEARTBEAT_MS", 1000);
    if (o.liveness <= 0) o.liveness = pw_env_ms("SRLM_LIVENESS", 5);
    if (o.max_backoff_ms <= 0) o.max_backoff_ms = 32000;
    if (!o.endpoint || !o.kind || !*o.kind) return srlm_set_error(SRLM_EINVAL, "worker: endpoint and kind are required");
    int pfd[2];
    if (pipe(pfd) != 0) return srlm_set_error(SRLM_EIO, "pipe: %s", strerror(errno));
    void *zctx = zmq_ctx_new();
    void *sock = connect_dealer(zctx, o.endpoint);
    int ret = 0;
    if (!sock) { ret = SRLM_EIO; goto out; }
    SRLM_INFO("%s worker connecting to broker at %s", o.kind, o.endpoint);
    send_simple(sock, PW_READY, o.kind, 0);

    score_task task;
    memset(&task, 0, sizeof task);
    task.fn = fn;
    task.ctx = fctx;
    task.pipe_w = pfd[1];
    pthread_t th;
    int busy = 0;
    long done_jobs = 0;
    int backoff = o.heartbeat_ms;
    double life = o.heartbeat_ms * o.liveness / 1000.0;
    double last_heard = srlm_now();
    double next_hb = srlm_now() + o.heartbeat_ms / 1000.0;

    while (!*stop) {
        zmq_pollitem_t items[2] = {{sock, 0, ZMQ_POLLIN, 0}, {NULL, pfd[0], ZMQ_POLLIN, 0}};
        long timeout = (long)((next_hb - srlm_now()) * 1000.0);
        if (timeout < 0) timeout = 0;
        int n = zmq_poll(items, 2, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            ret = srlm_set_error(SRLM_EIO, "zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            char c;
            while (read(pfd[0], &c, 1) < 0 && errno == EINTR) {}
            pthread_join(th, NULL);
            busy = 0;
            PwRewardResult r = SRLM__PIPELINE__REWARD_RESULT__INIT;
            r.job_id = task.job_id;
            r.status = task.res.is_error ? PW_ERROR : PW_SCORED;
            r.reward = task.res.reward;
            r.correct = task.res.correct != 0;
            r.format_ok = task.res.format_ok != 0;
            task.res.verdict[sizeof task.res.verdict - 1] = 0;
            task.res.extracted[sizeof task.res.extracted - 1] = 0;
            task.res.error[sizeof task.res.error - 1] = 0;
            r.verdict = task.res.verdict;
            r.extracted = task.res.extracted;
            r.error = task.res.error;
            r.details_json = task.res.details_json ? task.res.details_json : "";
            r.score_seconds = task.seconds;
            PwWorkerMsg m = SRLM__PIPELINE__WORKER_MSG__INIT;
            m.schema = PW_SCHEMA;
            m.type = PW_RESULT;
            m.kind = (char *)o.kind;
            m.result = &r;
            int rc = pw_send(sock, NULL, 0, &m.base, 0);
            if (rc != 0) SRLM_WARN("worker: result of job %llu not sent to %s: %s",
                                   (unsigned long long)task.job_id, o.endpoint, srlm_strerror(rc));
            reward_result_free(&task.res);
            free(task.problem);
            free(task.completion);
            task.problem = task.completion = NULL;
            done_jobs++;
            if (o.max_jobs > 0 && done_jobs >= o.max_jobs) break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            for (int k = 0; k < 16; k++) {
                ProtobufCMessage *pm = NULL;
                int rc = pw_recv(sock, 0, NULL, NULL, &srlm__pipeline__worker_msg__descriptor, &pm,
                                 "worker socket");
                if (rc == SRLM_ETIMEOUT || rc == SRLM_EINTR) break;
                if (rc != 0) {
                    int ev = 0;
                    size_t sz = sizeof ev;
                    zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz);
                    if (!(ev & ZMQ_POLLIN)) break;
                    continue;
                }
                PwWorkerMsg *wm = (PwWorkerMsg *)pm;
                last_heard = srlm_now();
                backoff = o.heartbeat_ms;
                if (wm->type == PW_JOB && wm->job) {
                    if (busy) {
                        SRLM_WARN("worker: job %llu arrived while busy: dropped (the broker will re-queue it)",
                                  (unsigned long long)wm->job->job_id);
                    } else {
                        task.job_id = wm->job->job_id;
                        task.problem = srlm_xstrdup(wm->job->problem_json ? wm->job->problem_json : "");
                        task.completion = srlm_xstrdup(wm->job->completion ? wm->job->completion : "");
                        if (pthread_create(&th, NULL, score_thread, &task) != 0) {
                            SRLM_ERROR("worker: pthread_create failed");
                            free(task.problem);
                            free(task.completion);
                            task.problem = task.completion = NULL;
                        } else {
                            busy = 1;
                        }
                    }
                } else if (wm->type == PW_DISCONNECT) {
                    SRLM_INFO("worker: broker asked us to reconnect");
                    last_heard = 0;
                } else if (wm->type != PW_HEARTBEAT) {
                    SRLM_WARN("worker socket: unexpected message type %d: dropped", (int)wm->type);
                }
                protobuf_c_message_free_unpacked(pm, NULL);
                int ev = 0;
                size_t sz = sizeof ev;
                zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz);
                if (!(ev & ZMQ_POLLIN)) break;
            }
        }
        double now = srlm_now();
        if (now - last_heard > life) {
            SRLM_WARN("broker at %s silent for %.1f s: reconnecting in %.1f s", o.endpoint, now - last_heard,
                      backoff / 1000.0);
            zmq_close(sock);
            sock = NULL;
            nap(backoff, stop);
            if (backoff < o.max_backoff_ms) backoff *= 2;
            if (backoff > o.max_backoff_ms) backoff = o.max_backoff_ms;
            if (*stop) break;
            sock = connect_dealer(zctx, o.endpoint);
            if (!sock) { ret = SRLM_EIO; break; }
            /* a busy worker re-registers through its heartbeat (busy=1) */
            if (!busy) send_simple(sock, PW_READY, o.kind, 0);
            last_heard = srlm_now();
            now = last_heard;
            next_hb = now;
        }
        if (now >= next_hb) {
            if (sock) send_simple(sock, PW_HEARTBEAT, o.kind, busy);
            next_hb = now + o.heartbeat_ms / 1000.0;
        }
    }
    if (sock && *stop) {
        int linger = 500; /* let DISCONNECT leave before the socket closes */
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
        send_simple(sock, PW_DISCONNECT, o.kind, busy);
    }
    if (busy) {
        pthread_join(th, NULL);
        reward_result_free(&task.res);
        free(task.problem);
        free(task.completion);
    }
    if (*stop) SRLM_INFO("%s worker stopping (%ld jobs scored)", o.kind, done_jobs);
out:
    if (sock) zmq_close(sock);
    zmq_ctx_term(zctx);
    close(pfd[0]);
    close(pfd[1]);
    return ret;
}

int worker_serve(const char *endpoint, const char *kind, reward_score_fn fn, void *ctx) {
    volatile sig_atomic_t *stop = pw_install_stop_handler();
    worker_options o;
    memset(&o, 0, sizeof o);
    o.endpoint = endpoint;
    o.kind = kind;
    return worker_serve_opts(&o, fn, ctx, stop);
}
