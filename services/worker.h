/* worker.h — the contract between reward scorers and the broker's worker protocol.
 *
 * A reward scorer (math checker, code sandbox) is a function that turns one problem and
 * one completion into a reward_result. `srlm reward-math|reward-code --connect EP` hands
 * its scorer to worker_serve(), which joins the broker (services/broker.c documents the
 * frames), announces the kind, heartbeats, and processes one job at a time.
 *
 * Problem records are passed as JSON text in the canonical record form of docs/records.md
 * (the same objects `srlm data export` writes). */
#ifndef SRLM_WORKER_H
#define SRLM_WORKER_H

typedef struct {
    int is_error;          /* 1: infrastructure failure (never a reward of 0; trainer excludes it) */
    double reward;         /* scored: 0..1 (math: 0 or 1; code: fraction of tests passed) */
    int correct;           /* math: answer equivalent; code: every test passed */
    int format_ok;         /* the answer came in the expected form (boxed / #### / fenced code) */
    char verdict[16];      /* math: correct|wrong|unparsable; code: PASS|WA|TLE|MLE|OLE|RE|SEC */
    char extracted[256];   /* the extracted answer (math) or "" */
    char error[256];       /* is_error: why */
    char *details_json;    /* optional heap JSON object with everything else (caller frees) */
} reward_result;

/* Score one completion. problem_json: canonical record JSON (borrowed); completion: raw
 * model text (borrowed, UTF-8, may be hostile). Fills *out (zeroed by the caller).
 * Returns 0, or a negative SRLM_E* code for infrastructure failures (then out->is_error
 * is set too). */
typedef int (*reward_score_fn)(void *ctx, const char *problem_json, const char *completion,
                               reward_result *out);

/* Serve jobs of `kind` ("math" or "code") from the broker at `endpoint` until SIGTERM/
 * SIGINT. Reconnects with back-off when the broker is silent (logged with the endpoint).
 * Returns 0 on clean shutdown. [services/broker.c / worker.c] */
int worker_serve(const char *endpoint, const char *kind, reward_score_fn fn, void *ctx);

void reward_result_free(reward_result *r);

#endif
