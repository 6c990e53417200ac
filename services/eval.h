/* eval.h — evaluation of a model on a problem set (prefix ev_): generate n samples per
 * problem with a named prompt format (core/prompt.h), score every completion with the
 * reward scorers (math checker / code sandbox, each call in a separate scorer worker
 * process), and report accuracy, pass@k (unbiased, core/passk.h) and maj@k.
 *
 * Outputs in out_dir:
 *   results.jsonl  one object per problem: id, source, prompt_format, answer (gold),
 *                  completions [n], extracted [n], verdicts [n], rewards [n], correct [n],
 *                  finish [n] ("stop"/"length"), n_correct, maj_answer, maj_correct
 *   summary.json   model, dataset, counts, accuracy, pass@k, maj@k, format rate, scorer
 *                  errors, timings (the fields of ev_summary)
 * User documentation: docs/study.md. */
#ifndef SRLM_EVAL_H
#define SRLM_EVAL_H

#include <stddef.h>
#include <stdint.h>

#define EV_MAX_K 8

typedef struct {
    const char *model_dir;     /* HF model directory (tokenizer files inside) */
    const char *dataset;       /* gsm8k | math500 | humaneval | mbpp | DB:SPLIT */
    const char *sources;       /* DB form only: comma-separated sources filter, or NULL */
    const char *cache_db;      /* named datasets: store to import into (NULL: default cache) */
    int limit;                 /* first N problems (0 = all) */
    int n_samples;             /* samples per problem (n >= max k) */
    int ks[EV_MAX_K];          /* k values for pass@k / maj@k */
    int n_ks;
    int chat;                  /* ChatML prompts */
    float temperature;         /* 0 = greedy */
    float top_p;
    int max_new_tokens;
    const char *prompt_format; /* NULL = pf_default_for(record) */
    const char *out_dir;       /* NULL = no files */
    int workers;               /* scorer worker processes (>= 1) */
    int threads;               /* model threads (0 = leave as is) */
    uint64_t seed;
    int quiet;                 /* no progress line / table */
} ev_opts;

typedef struct {
    int n_problems, n_samples;
    long n_scored, n_errors;   /* completions scored by the workers / infrastructure errors */
    long n_format_ok;
    double accuracy;           /* mean over problems of (correct samples / n) = pass@1 */
    int n_ks;
    int ks[EV_MAX_K];
    double pass_at[EV_MAX_K];  /* -1 when n < k */
    double maj_at[EV_MAX_K];
    double gen_seconds, score_seconds, seconds;
    long gen_tokens;
} ev_summary;

/* Defaults: n 1, k {1}, greedy, top_p 1, max_new_tokens 256, workers 2, seed 1. */
void ev_opts_default(ev_opts *o);

/* Run one evaluation (see the top of this file). Errors: SRLM_EINVAL (bad options /
 * dataset name), SRLM_ENOTFOUND (model, store or split missing), SRLM_EIO, plus those of
 * the model and tokenizer loaders. */
int ev_run(const ev_opts *o, ev_summary *out);

/* Resolve a named data set to the cache store, importing the bundled files on first use.
 * name: gsm8k | math500 | humaneval | mbpp. Writes the store path (db, size dbn), its
 * source and split (ds_import_bundled; MBPP test = task ids 11-510). */
int ev_resolve_named(const char *name, const char *cache_db, char *db, size_t dbn, char *source, size_t sn,
                     char *split, size_t spn);

#endif
