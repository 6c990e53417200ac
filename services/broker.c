/* broker.c — reward broker: fans rollouts out to reward workers and reassembles groups.
 * Protocol and guarantees: services/broker.h. Pattern: the ZeroMQ guide's paranoid
 * pirate queue (ppqueue.c), with per-job tracking, bounded retries and result dedup. */
#include "broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "pipeline_wire.h"
#include "util.h"

enum { JOB_QUEUED = 0, JOB_RUNNING = 1, JOB_DONE = 2 };

struct group;

typedef struct job {
    uint64_t id;
    struct group *g;
    int idx;                 /* rollout index in the group */
    int state;
    int attempts;            /* dispatches so far */
    int errors;              /* ERROR results received */
    double started;          /* time of the last dispatch */
    uint64_t dispatch;       /* serial of the last dispatch (matches worker.dispatch) */
    char last_error[200];
    struct job *qprev, *qnext;
} job;

typedef struct group {
    PwRolloutGroup *msg;     /* unpacked, owned */
    PwRewardResult **results;/* [G] owned deep copies, NULL until done */
    job *jobs;               /* [G] */
    int remaining;
    uint32_t errors;
    double t_in;
} group;

typedef struct {
    unsigned char id[256];
    size_t id_len;
    char kind[32];
    double expiry;
    uint64_t job_id;         /* 0 = free */
    uint64_t dispatch;       /* serial of the dispatch it holds */
    double job_started;
    int timeout_reported;
} worker;

/* open-addressing map job id -> job* (linear probing, backward-shift delete) */
typedef struct {
    uint64_t *keys;
    job **vals;
    size_t cap, n;
} jobmap;

typedef struct {
    const broker_config *cfg;
    broker_stats st;
    void *ctx, *s_groups, *s_workers, *s_scored;
    worker *workers;
    size_t n_workers, cap_workers;
    job *qhead, *qtail;      /* queued jobs, FIFO */
    uint32_t queued;
    jobmap map;
    uint64_t next_job_id;
    uint64_t dispatch_serial;
    /* outbox of packed scored groups */
    struct outmsg { void *data; size_t len; struct outmsg *next; } *out_head, *out_tail;
    size_t out_n;
    double out_blocked_since;
    double last_group_in, last_silence_warn, last_kind_warn;
} broker;

/* ---- job map ----------------------------------------------------------------------- */
static size_t map_slot(const jobmap *m, uint64_t k) {
    uint64_t h = k * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (m->cap - 1);
}

static void map_put(jobmap *m, uint64_t k, job *v);

static void map_grow(jobmap *m) {
    jobmap nm = {0};
    nm.cap = m->cap ? m->cap * 2 : 1024;
    nm.keys = srlm_xcalloc(nm.cap, sizeof *nm.keys);
    nm.vals = srlm_xcalloc(nm.cap, sizeof *nm.vals);
    for (size_t i = 0; i < m->cap; i++)
        if (m->vals[i]) map_put(&nm, m->keys[i], m->vals[i]);
    free(m->keys);
    free(m->vals);
    *m = nm;
}

static void map_put(jobmap *m, uint64_t k, job *v) {
    if ((m->n + 1) * 2 > m->cap) map_grow(m);
    size_t i = map_slot(m, k);
    while (m->vals[i] && m->keys[i] != k) i = (i + 1) & (m->cap - 1);
    if (!m->vals[i]) m->n++;
    m->keys[i] = k;
    m->vals[i] = v;
}

static job *map_get(const jobmap *m, uint64_t k) {
    if (!m->cap) return NULL;
    size_t i = map_slot(m, k);
    while (m->vals[i]) {
        if (m->keys[i] == k) return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

static void map_del(jobmap *m, uint64_t k) {
    if (!m->cap) return;
    size_t i = map_slot(m, k);
    while (m->vals[i] && m->keys[i] != k) i = (i + 1) & (m->cap - 1);
    if (!m->vals[i]) return;
    m->vals[i] = NULL;
    m->n--;
    size_t j = i;
    for (;;) { /* backward-shift the cluster after i */
        j = (j + 1) & (m->cap - 1);
        if (!m->vals[j]) break;
        size_t h = map_slot(m, m->keys[j]);
        /* move j into i if h is not cyclically in (i, j] */
        int move = (i <= j) ? (h <= i || h > j) : (h <= i && h > j);
        if (move) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->vals[j] = NULL;
            i = j;
        }
    }
}

/* ---- queue ------------------------------------------------------------------------- */
static void q_push_back(broker *b, job *j) {
    j->qnext = NULL;
    j->qprev = b->qtail;
    if (b->qtail) b->qtail->qnext = j; else b->qhead = j;
    b->qtail = j;
    j->state = JOB_QUEUED;
    b->queued++;
}

static void q_push_front(broker *b, job *j) {
    j->qprev = NULL;
    j->qnext = b->qhead;
    if (b->qhead) b->qhead->qprev = j; else b->qtail = j;
    b->qhead = j;
    j->state = JOB_QUEUED;
    b->queued++;
}

static void q_remove(broker *b, job *j) {
    if (j->qprev) j->qprev->qnext = j->qnext; else b->qhead = j->qnext;
    if (j->qnext) j->qnext->qprev = j->qprev; else b->qtail = j->qprev;
    j->qprev = j->qnext = NULL;
    b->queued--;
}

/* ---- results ----------------------------------------------------------------------- */
static char *dupstr(const char *s) { return srlm_xstrdup(s ? s : ""); }

static PwRewardResult *result_copy(const PwRewardResult *r) {
    PwRewardResult *c = srlm_xmalloc(sizeof *c);
    srlm__pipeline__reward_result__init(c);
    c->job_id = r->job_id;
    c->status = r->status;
    c->reward = r->reward;
    c->correct = r->correct;
    c->format_ok = r->format_ok;
    c->verdict = dupstr(r->verdict);
    c->extracted = dupstr(r->extracted);
    c->error = dupstr(r->error);
    c->details_json = dupstr(r->details_json);
    c->score_seconds = r->score_seconds;
    c->attempts = r->attempts;
    return c;
}

static void result_free(PwRewardResult *c) {
    if (!c) return;
    free(c->verdict);
    free(c->extracted);
    free(c->error);
    free(c->details_json);
    free(c);
}

static void group_free(group *g) {
    if (!g) return;
    if (g->results)
        for (size_t i = 0; i < g->msg->n_rollouts; i++) result_free(g->results[i]);
    free(g->results);
    free(g->jobs);
    protobuf_c_message_free_unpacked(&g->msg->base, NULL);
    free(g);
}

static void outbox_flush(broker *b) {
    while (b->out_head) {
        struct outmsg *o = b->out_head;
        int rc = zmq_send(b->s_scored, o->data, o->len, ZMQ_DONTWAIT);
        if (rc < 0) {
            if (errno != EAGAIN && errno != EINTR)
                SRLM_WARN("send scored group to %s: %s", b->cfg->scored_endpoint, zmq_strerror(errno));
            if (b->out_blocked_since == 0) b->out_blocked_since = srlm_now();
            return;
        }
        b->out_head = o->next;
        if (!b->out_head) b->out_tail = NULL;
        b->out_n--;
        free(o->data);
        free(o);
        b->st.groups_out++;
        b->out_blocked_since = 0;
    }
}

static void group_complete(broker *b, group *g) {
    PwScoredGroup sg = SRLM__PIPELINE__SCORED_GROUP__INIT;
    sg.schema = PW_SCHEMA;
    sg.group = g->msg;
    sg.n_results = g->msg->n_rollouts;
    sg.results = g->results;
    sg.errors = g->errors;
    sg.latency_s = srlm_now() - g->t_in;
    sg.workers = (uint32_t)b->n_workers;
    sg.queue_depth = b->queued;
    struct outmsg *o = srlm_xmalloc(sizeof *o);
    o->len = protobuf_c_message_get_packed_size(&sg.base);
    o->data = srlm_xmalloc(o->len ? o->len : 1);
    protobuf_c_message_pack(&sg.base, o->data);
    o->next = NULL;
    if (b->out_tail) b->out_tail->next = o; else b->out_head = o;
    b->out_tail = o;
    b->out_n++;
    for (size_t i = 0; i < g->msg->n_rollouts; i++) map_del(&b->map, g->jobs[i].id);
    SRLM_DEBUG("group %llu (%s) scored: %zu results, %u errors, %.3f s",
               (unsigned long long)g->msg->group_seq, g->msg->problem_id, g->msg->n_rollouts,
               g->errors, sg.latency_s);
    group_free(g);
    outbox_flush(b);
}

/* Record the final result of job j (r is borrowed and copied). */
static void job_finish(broker *b, job *j, const PwRewardResult *r) {
    group *g = j->g;
    if (j->state == JOB_QUEUED) q_remove(b, j);
    j->state = JOB_DONE;
    PwRewardResult *c = result_copy(r);
    c->job_id = j->id;
    c->attempts = (uint32_t)j->attempts;
    if (c->status != PW_SCORED) {
        c->status = PW_ERROR;
        g->errors++;
        b->st.results_error++;
    } else {
        b->st.results_ok++;
    }
    g->results[j->idx] = c;
    if (--g->remaining == 0) group_complete(b, g);
}

static void job_fail(broker *b, job *j, const char *why) {
    PwRewardResult r = SRLM__PIPELINE__REWARD_RESULT__INIT;
    char msg[300];
    snprintf(msg, sizeof msg, "gave up after %d attempts: %s", j->attempts, why);
    r.status = PW_ERROR;
    r.error = msg;
    r.verdict = "";
    SRLM_WARN("job %llu (%s #%d): %s", (unsigned long long)j->id, j->g->msg->problem_id, j->idx, msg);
    job_finish(b, j, &r);
}

/* The job's current dispatch failed (worker dead, timed out, or ERROR result). */
static void job_retry(broker *b, job *j, const char *why) {
    snprintf(j->last_error, sizeof j->last_error, "%s", why);
    if (j->state == JOB_QUEUED) return; /* already waiting */
    if (j->attempts >= b->cfg->max_attempts) {
        job_fail(b, j, why);
        return;
    }
    b->st.requeued++;
    q_push_front(b, j); /* retries go first: they are the oldest work */
}

/* ---- workers ----------------------------------------------------------------------- */
static worker *worker_find(broker *b, const unsigned char *id, size_t len) {
    for (size_t i = 0; i < b->n_workers; i++)
        if (b->workers[i].id_len == len && memcmp(b->workers[i].id, id, len) == 0) return &b->workers[i];
    return NULL;
}

static worker *worker_add(broker *b, const unsigned char *id, size_t len, const char *kind) {
    if (b->n_workers == b->cap_workers) {
        b->cap_workers = b->cap_workers ? b->cap_workers * 2 : 16;
        b->workers = srlm_xrealloc(b->workers, b->cap_workers * sizeof *b->workers);
    }
    worker *w = &b->workers[b->n_workers++];
    memset(w, 0, sizeof *w);
    memcpy(w->id, id, len);
    w->id_len = len;
    snprintf(w->kind, sizeof w->kind, "%s", kind);
    b->st.workers_joined++;
    SRLM_INFO("worker joined: kind=%s (%zu live)", w->kind, b->n_workers);
    return w;
}

static void worker_remove(broker *b, worker *w, const char *why) {
    if (!strcmp(why, "disconnected")) SRLM_INFO("worker left (kind=%s)", w->kind);
    else SRLM_WARN("worker lost (kind=%s): %s", w->kind, why);
    b->st.workers_lost++;
    if (w->job_id) {
        job *j = map_get(&b->map, w->job_id);
        if (j && j->state == JOB_RUNNING && j->dispatch == w->dispatch) {
            char msg[160];
            snprintf(msg, sizeof msg, "worker %s", why);
            job_retry(b, j, msg);
        }
    }
    size_t i = (size_t)(w - b->workers);
    b->workers[i] = b->workers[--b->n_workers];
}

static int kind_ok(const char *k) {
    size_t n = strlen(k);
    if (n == 0 || n >= 32) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '-' || k[i] == '_'))
            return 0;
    return 1;
}

static void send_to_worker(broker *b, worker *w, int type, PwRewardJob *jobmsg, int *dead) {
    PwWorkerMsg m = SRLM__PIPELINE__WORKER_MSG__INIT;
    m.schema = PW_SCHEMA;
    m.type = type;
    m.job = jobmsg;
    int rc = pw_send(b->s_workers, w->id, w->id_len, &m.base, ZMQ_DONTWAIT);
    *dead = rc != 0;
}

static void dispatch(broker *b) {
    if (!b->qhead) return;
    for (size_t wi = 0; wi < b->n_workers && b->qhead; wi++) {
        worker *w = &b->workers[wi];
        if (w->job_id) continue;
        job *j = b->qhead;
        while (j && strcmp(j->g->msg->kind, w->kind) != 0) j = j->qnext;
        if (!j) continue;
        const PwRolloutGroup *gm = j->g->msg;
        const PwRollout *ro = gm->rollouts[j->idx];
        PwRolloutId rid = SRLM__PIPELINE__ROLLOUT_ID__INIT;
        if (ro->id) rid = *ro->id;
        PwRewardJob jm = SRLM__PIPELINE__REWARD_JOB__INIT;
        jm.job_id = j->id;
        jm.rollout_id = &rid;
        jm.kind = gm->kind;
        jm.problem_json = gm->problem_json;
        jm.completion = ro->completion_text;
        jm.attempt = (uint32_t)j->attempts;
        int dead = 0;
        send_to_worker(b, w, PW_JOB, &jm, &dead);
        if (dead) { /* peer vanished (ROUTER_MANDATORY) or its pipe is full */
            worker_remove(b, w, "unreachable on dispatch");
            wi--;
            continue;
        }
        q_remove(b, j);
        j->state = JOB_RUNNING;
        j->attempts++;
        j->started = srlm_now();
        j->dispatch = ++b->dispatch_serial;
        w->job_id = j->id;
        w->dispatch = j->dispatch;
        w->job_started = j->started;
        w->timeout_reported = 0;
        b->st.jobs_dispatched++;
    }
}

/* ---- inputs ------------------------------------------------------------------------ */
static int group_valid(const PwRolloutGroup *g, char *why, size_t n) {
    if (g->n_rollouts == 0 || g->n_rollouts > 4096) return snprintf(why, n, "%zu rollouts", g->n_rollouts), 0;
    if (!g->kind || !kind_ok(g->kind)) return snprintf(why, n, "bad kind"), 0;
    if (!g->problem_json || !*g->problem_json) return snprintf(why, n, "empty problem_json"), 0;
    if (!g->problem_id) return snprintf(why, n, "no problem_id"), 0;
    for (size_t i = 0; i < g->n_rollouts; i++)
        if (!g->rollouts[i] || !g->rollouts[i]->completion_text)
            return snprintf(why, n, "rollout %zu has no completion", i), 0;
    return 1;
}

static void on_group(broker *b) {
    ProtobufCMessage *m = NULL;
    int rc = pw_recv(b->s_groups, 0, NULL, NULL, &srlm__pipeline__rollout_group__descriptor, &m,
                     "broker groups socket");
    if (rc == SRLM_EFORMAT) { b->st.malformed++; return; }
    if (rc != 0) return;
    PwRolloutGroup *gm = (PwRolloutGroup *)m;
    char why[128];
    if (!group_valid(gm, why, sizeof why)) {
        SRLM_WARN("broker groups socket: invalid rollout group (%s): dropped", why);
        b->st.malformed++;
        protobuf_c_message_free_unpacked(m, NULL);
        return;
    }
    group *g = srlm_xcalloc(1, sizeof *g);
    g->msg = gm;
    g->remaining = (int)gm->n_rollouts;
    g->t_in = srlm_now();
    g->results = srlm_xcalloc(gm->n_rollouts, sizeof *g->results);
    g->jobs = srlm_xcalloc(gm->n_rollouts, sizeof *g->jobs);
    for (size_t i = 0; i < gm->n_rollouts; i++) {
        job *j = &g->jobs[i];
        j->id = b->next_job_id++;
        j->g = g;
        j->idx = (int)i;
        map_put(&b->map, j->id, j);
        q_push_back(b, j);
        b->st.jobs_created++;
    }
    b->st.groups_in++;
    b->last_group_in = srlm_now();
}

static void on_worker(broker *b) {
    unsigned char id[256];
    size_t id_len = 0;
    ProtobufCMessage *m = NULL;
    int rc = pw_recv(b->s_workers, 1, id, &id_len, &srlm__pipeline__worker_msg__descriptor, &m,
                     "broker workers socket");
    if (rc == SRLM_EFORMAT) { b->st.malformed++; return; }
    if (rc != 0) return;
    PwWorkerMsg *wm = (PwWorkerMsg *)m;
    worker *w = worker_find(b, id, id_len);
    double now = srlm_now();
    double life = b->cfg->heartbeat_ms * b->cfg->liveness / 1000.0;
    switch (wm->type) {
    case PW_READY:
    case PW_HEARTBEAT:
        if (!kind_ok(wm->kind ? wm->kind : "")) {
            SRLM_WARN("broker workers socket: %s with bad kind: dropped",
                      wm->type == PW_READY ? "READY" : "HEARTBEAT");
            b->st.malformed++;
            break;
        }
        if (!w) {
            w = worker_add(b, id, id_len, wm->kind);
            /* a re-registering busy worker keeps its job slot until it sends RESULT */
            if (wm->type == PW_HEARTBEAT && wm->busy) w->job_id = UINT64_MAX;
        } else if (wm->type == PW_READY && w->job_id) {
            /* READY while we think it holds a job: the worker restarted; re-queue */
            job *j = map_get(&b->map, w->job_id);
            if (j && j->state == JOB_RUNNING && j->dispatch == w->dispatch) job_retry(b, j, "worker restarted");
            w->job_id = 0;
        }
        w->expiry = now + life;
        break;
    case PW_RESULT: {
        if (!wm->result) {
            SRLM_WARN("broker workers socket: RESULT without result: dropped");
            b->st.malformed++;
            break;
        }
        if (w) {
            w->expiry = now + life;
            if (w->job_id == wm->result->job_id || w->job_id == UINT64_MAX) w->job_id = 0;
        }
        job *j = map_get(&b->map, wm->result->job_id);
        if (!j || j->state == JOB_DONE) {
            b->st.duplicates++;
            SRLM_DEBUG("result for job %llu dropped (already done or unknown)",
                       (unsigned long long)wm->result->job_id);
            break;
        }
        if (wm->result->status != PW_SCORED) {
            j->errors++;
            snprintf(j->last_error, sizeof j->last_error, "%s", wm->result->error ? wm->result->error : "");
            /* retry only when the error answers the job's current dispatch */
            if (j->state == JOB_RUNNING && w && j->dispatch == w->dispatch) {
                if (j->attempts >= b->cfg->max_attempts) {
                    job_finish(b, j, wm->result);
                } else {
                    b->st.requeued++;
                    q_push_front(b, j);
                }
            }
            break;
        }
        job_finish(b, j, wm->result);
        break;
    }
    case PW_DISCONNECT:
        if (w) worker_remove(b, w, "disconnected");
        break;
    default:
        SRLM_WARN("broker workers socket: unexpected message type %d: dropped", (int)wm->type);
        b->st.malformed++;
    }
    protobuf_c_message_free_unpacked(m, NULL);
}

static void on_tick(broker *b) {
    double now = srlm_now();
    for (size_t i = 0; i < b->n_workers; i++) {
        worker *w = &b->workers[i];
        if (now > w->expiry) {
            char why[96];
            snprintf(why, sizeof why, "silent for %.1f s", b->cfg->heartbeat_ms * b->cfg->liveness / 1000.0);
            worker_remove(b, w, why);
            i--;
            continue;
        }
        if (w->job_id && w->job_id != UINT64_MAX && !w->timeout_reported &&
            now - w->job_started > b->cfg->job_timeout_ms / 1000.0) {
            job *j = map_get(&b->map, w->job_id);
            w->timeout_reported = 1;
            if (j && j->state == JOB_RUNNING && j->dispatch == w->dispatch) {
                SRLM_WARN("job %llu timed out after %.0f s on a %s worker: re-queued",
                          (unsigned long long)j->id, now - w->job_started, w->kind);
                job_retry(b, j, "job timed out");
            }
        }
        int dead = 0;
        send_to_worker(b, w, PW_HEARTBEAT, NULL, &dead);
        if (dead) {
            worker_remove(b, w, "unreachable");
            i--;
        }
    }
    double warn_s = b->cfg->silence_warn_ms / 1000.0;
    if (b->out_blocked_since > 0 && now - b->out_blocked_since > warn_s && now - b->last_silence_warn > warn_s) {
        SRLM_WARN("trainer at %s is not taking scored groups (%zu waiting for %.0f s)",
                  b->cfg->scored_endpoint, b->out_n, now - b->out_blocked_since);
        b->last_silence_warn = now;
    }
    if (now - b->last_group_in > warn_s && now - b->last_silence_warn > warn_s) {
        SRLM_WARN("no rollout groups from generators on %s for %.0f s", b->cfg->groups_endpoint,
                  now - b->last_group_in);
        b->last_silence_warn = now;
    }
    if (b->qhead && now - b->last_kind_warn > warn_s) {
        for (job *j = b->qhead; j; j = j->qnext) {
            int have = 0;
            for (size_t i = 0; i < b->n_workers; i++)
                if (!strcmp(b->workers[i].kind, j->g->msg->kind)) have = 1;
            if (!have) {
                SRLM_WARN("%u jobs queued; no %s workers connected on %s", b->queued, j->g->msg->kind,
                          b->cfg->workers_endpoint);
                b->last_kind_warn = now;
                break;
            }
        }
    }
}

/* jobs dispatched and not answered yet */
static uint32_t count_running(const broker *b) {
    uint32_t n = 0;
    for (size_t i = 0; i < b->map.cap; i++)
        if (b->map.vals[i] && b->map.vals[i]->state == JOB_RUNNING) n++;
    return n;
}

static void write_stats(broker *b) {
    if (!b->cfg->stats_path) return;
    char buf[1024];
    broker_stats *s = &b->st;
    int n = snprintf(buf, sizeof buf,
                     "{\"groups_in\":%llu,\"groups_out\":%llu,\"jobs_created\":%llu,\"jobs_dispatched\":%llu,"
                     "\"results_ok\":%llu,\"results_error\":%llu,\"requeued\":%llu,\"duplicates\":%llu,"
                     "\"malformed\":%llu,\"workers_joined\":%llu,\"workers_lost\":%llu,\"workers_live\":%u,"
                     "\"queue_depth\":%u,\"in_flight\":%u}\n",
                     (unsigned long long)s->groups_in, (unsigned long long)s->groups_out,
                     (unsigned long long)s->jobs_created, (unsigned long long)s->jobs_dispatched,
                     (unsigned long long)s->results_ok, (unsigned long long)s->results_error,
                     (unsigned long long)s->requeued, (unsigned long long)s->duplicates,
                     (unsigned long long)s->malformed, (unsigned long long)s->workers_joined,
                     (unsigned long long)s->workers_lost, s->workers_live, s->queue_depth, s->in_flight);
    if (n > 0) srlm_write_file_atomic(b->cfg->stats_path, buf, (size_t)n);
}

void broker_config_defaults(broker_config *cfg) {
    if (cfg->heartbeat_ms <= 0) cfg->heartbeat_ms = 1000;
    if (cfg->liveness <= 0) cfg->liveness = 5;
    if (cfg->max_attempts <= 0) cfg->max_attempts = 3;
    if (cfg->job_timeout_ms <= 0) cfg->job_timeout_ms = 300000;
    if (cfg->silence_warn_ms <= 0) cfg->silence_warn_ms = 60000;
}

int broker_run(const broker_config *cfg_in, volatile sig_atomic_t *stop, broker_stats *stats) {
    broker_config cfg = *cfg_in;
    broker_config_defaults(&cfg);
    broker b;
    memset(&b, 0, sizeof b);
    b.cfg = &cfg;
    /* job ids start from the wall clock so a restarted broker never reuses an id that a
     * late worker could still answer */
    b.next_job_id = ((uint64_t)(srlm_wall_time() * 1000.0) << 16) + 1;
    int ret = 0;
    b.ctx = zmq_ctx_new();
    b.s_groups = pw_socket(b.ctx, ZMQ_PULL, cfg.groups_endpoint, 1, 0, 0);
    b.s_workers = b.s_groups ? pw_socket(b.ctx, ZMQ_ROUTER, cfg.workers_endpoint, 1, 0, 0) : NULL;
    b.s_scored = b.s_workers ? pw_socket(b.ctx, ZMQ_PUSH, cfg.scored_endpoint, 1, 0, 0) : NULL;
    if (!b.s_scored) {
        ret = SRLM_EIO;
        SRLM_ERROR("broker: %s", srlm_last_error());
        goto done;
    }
    int one = 1;
    zmq_setsockopt(b.s_workers, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    SRLM_INFO("broker up: groups %s, workers %s, scored %s (heartbeat %d ms x %d, %d attempts)",
              cfg.groups_endpoint, cfg.workers_endpoint, cfg.scored_endpoint, cfg.heartbeat_ms,
              cfg.liveness, cfg.max_attempts);
    double next_tick = srlm_now() + cfg.heartbeat_ms / 1000.0;
    double next_stats = srlm_now() + 1.0;
    b.last_group_in = srlm_now();
    while (!*stop) {
        zmq_pollitem_t items[3] = {
            {b.s_groups, 0, ZMQ_POLLIN, 0},
            {b.s_workers, 0, ZMQ_POLLIN, 0},
            {b.s_scored, 0, ZMQ_POLLOUT, 0},
        };
        double now = srlm_now();
        long timeout = (long)((next_tick - now) * 1000.0);
        if (timeout < 0) timeout = 0;
        if (timeout > 200) timeout = 200;
        int n = zmq_poll(items, b.out_head ? 3 : 2, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            ret = srlm_set_error(SRLM_EIO, "zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        /* bounded batches so one busy socket cannot starve the others */
        for (int k = 0; k < 64 && (items[1].revents & ZMQ_POLLIN); k++) {
            on_worker(&b);
            int ev = 0;
            size_t sz = sizeof ev;
            zmq_getsockopt(b.s_workers, ZMQ_EVENTS, &ev, &sz);
            if (!(ev & ZMQ_POLLIN)) break;
        }
        for (int k = 0; k < 64 && (items[0].revents & ZMQ_POLLIN); k++) {
            on_group(&b);
            int ev = 0;
            size_t sz = sizeof ev;
            zmq_getsockopt(b.s_groups, ZMQ_EVENTS, &ev, &sz);
            if (!(ev & ZMQ_POLLIN)) break;
        }
        if (b.out_head) outbox_flush(&b);
        now = srlm_now();
        if (now >= next_tick) {
            on_tick(&b);
            next_tick = now + cfg.heartbeat_ms / 1000.0;
        }
        dispatch(&b);
        if (now >= next_stats) {
            b.st.workers_live = (uint32_t)b.n_workers;
            b.st.queue_depth = b.queued;
            b.st.in_flight = count_running(&b);
            write_stats(&b);
            next_stats = now + 1.0;
        }
    }
    if (!ret) SRLM_INFO("broker stopping: %llu groups in, %llu out, %llu results, %llu errors, %llu requeued, %llu duplicates dropped",
                        (unsigned long long)b.st.groups_in, (unsigned long long)b.st.groups_out,
                        (unsigned long long)b.st.results_ok, (unsigned long long)b.st.results_error,
                        (unsigned long long)b.st.requeued, (unsigned long long)b.st.duplicates);
done:
    b.st.workers_live = (uint32_t)b.n_workers;
    b.st.queue_depth = b.queued;
    b.st.in_flight = count_running(&b);
    write_stats(&b);
    if (stats) *stats = b.st;
    /* free every group still in flight (each appears once per job in the map) */
    for (size_t i = 0; i < b.map.cap; i++) {
        job *j = b.map.vals[i];
        if (!j) continue;
        group *g = j->g;
        for (size_t k = 0; k < g->msg->n_rollouts; k++) map_del(&b.map, g->jobs[k].id);
        group_free(g);
        i = (size_t)-1; /* the table shifted: rescan */
    }
    free(b.map.keys);
    free(b.map.vals);
    while (b.out_head) {
        struct outmsg *o = b.out_head;
        b.out_head = o->next;
        free(o->data);
        free(o);
    }
    free(b.workers);
    if (b.s_groups) zmq_close(b.s_groups);
    if (b.s_workers) zmq_close(b.s_workers);
    if (b.s_scored) zmq_close(b.s_scored);
    zmq_ctx_term(b.ctx);
    return ret;
}
