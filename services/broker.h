/* broker.h — the reward broker (prefix broker_): rollout groups in, scored groups out.
 *
 * Sockets (the broker binds all three; everyone else connects):
 *   groups   PULL   ← generators push RolloutGroup (one frame each)
 *   workers  ROUTER ⇄ reward workers (DEALER), frames [identity][WorkerMsg]
 *   scored   PUSH   → trainer pulls ScoredGroup (one frame each)
 *
 * Worker protocol (the ZeroMQ guide's paranoid pirate, one job at a time):
 *   worker → READY{kind}           joined (or re-joined) and free
 *   worker → HEARTBEAT{kind,busy}  every heartbeat_ms, also while scoring (the scorer runs
 *                                  in a child thread); an unknown worker that heartbeats
 *                                  is (re-)registered, so a restarted broker recovers its
 *                                  workers without their help
 *   worker → RESULT{result}        the result of the job it holds; it is free again
 *   worker → DISCONNECT            leaving (its job, if any, is re-queued)
 *   broker → JOB{job}              only to a free worker of the job's kind
 *   broker → HEARTBEAT             every heartbeat_ms to every known worker
 *   A worker silent for heartbeat_ms × liveness is dead: it is forgotten and its job is
 *   re-queued. A job running longer than job_timeout_ms is re-queued too (the worker
 *   stays busy until it answers). A job is dispatched at most max_attempts times; after
 *   that (or after max_attempts ERROR results) its result is an ERROR result
 *   ("gave up after N attempts: ..."), never a reward of 0.
 *   Results are deduplicated by job id: the first result of a job wins; a late result
 *   from a worker presumed dead, or a second result after a re-queue, is counted in
 *   `duplicates` and dropped. A scored group therefore holds exactly one result per
 *   rollout.
 *   The worker's side lives in services/worker.c (worker_serve, services/worker.h).
 *
 * Malformed frames on any socket (garbage, extra frames, unknown schema, invalid
 * content) are logged and dropped. Scored groups that cannot be delivered (no trainer
 * connected) wait in an outbox; a trainer or generator silent for `silence_warn_ms`
 * is reported with its endpoint. */
#ifndef SRLM_BROKER_H
#define SRLM_BROKER_H

#include <signal.h>
#include <stdint.h>

typedef struct {
    const char *groups_endpoint;   /* bind, PULL (e.g. ipc://RUN/sock/groups) */
    const char *workers_endpoint;  /* bind, ROUTER */
    const char *scored_endpoint;   /* bind, PUSH */
    int heartbeat_ms;              /* default 1000 */
    int liveness;                  /* missed heartbeats before a worker is dead; default 5 */
    int max_attempts;              /* dispatches per job; default 3 */
    int job_timeout_ms;            /* a job running longer is re-queued; default 300000 */
    int silence_warn_ms;           /* report silent generator/trainer after; default 60000 */
    const char *stats_path;        /* optional: JSON stats rewritten every ~1 s and at exit */
} broker_config;

typedef struct {
    uint64_t groups_in, groups_out, jobs_created, jobs_dispatched, results_ok, results_error;
    uint64_t requeued, duplicates, malformed, workers_joined, workers_lost;
    uint32_t workers_live, queue_depth, in_flight;
} broker_stats;

/* Fill defaults for every zero field of *cfg. */
void broker_config_defaults(broker_config *cfg);

/* Run the broker until *stop becomes non-zero (checked at least every heartbeat_ms).
 * `stats` (optional) receives the final counters. Returns 0 on clean shutdown, negative
 * SRLM_E* if a socket could not be bound. */
int broker_run(const broker_config *cfg, volatile sig_atomic_t *stop, broker_stats *stats);

/* ---- the worker side (services/worker.c) ----------------------------------------- */
#include "worker.h"

typedef struct {
    const char *endpoint;     /* broker's workers endpoint (connect) */
    const char *kind;         /* "math" | "code" | ... */
    int heartbeat_ms;         /* default $SRLM_HEARTBEAT_MS or 1000 */
    int liveness;             /* default $SRLM_LIVENESS or 5 */
    int max_backoff_ms;       /* reconnect back-off doubles from heartbeat_ms up to this; 32000 */
    long max_jobs;            /* exit 0 after this many results (0 = unlimited; tests) */
} worker_options;

/* worker_serve with explicit options and stop flag (tests run workers in threads).
 * The scorer runs in a child thread so heartbeats flow while a slow code job runs.
 * On *stop: sends DISCONNECT (the broker re-queues an unfinished job), waits for the
 * scorer thread, returns 0. */
int worker_serve_opts(const worker_options *opt, reward_score_fn fn, void *ctx,
                      volatile sig_atomic_t *stop);

#endif
