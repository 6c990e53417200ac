/* import.h — importers (GSM8K, MATH, MATH-500, HumanEval, MBPP, generic JSONL) and the
 * synthetic task generators of the dataset store. Prefix ds_. Formats: docs/datasets.md;
 * record fields: docs/records.md.
 *
 * Parsing is separate from writing: ds_parse_file() turns one file into heap records (or
 * fails with "FILE:LINE: reason" in srlm_last_error() and produces nothing), and
 * ds_import_files() parses every file first, then writes everything with ds_replace() in
 * one LMDB transaction — so a malformed file leaves the store exactly as it was.
 */
#ifndef SRLM_DS_IMPORT_H
#define SRLM_DS_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* A growable array of heap records (free with ds_recvec_free). */
typedef struct {
    Dataset__Record **v;
    size_t n, cap;
} ds_recvec;
void ds_recvec_push(ds_recvec *rv, Dataset__Record *r); /* takes ownership */
void ds_recvec_free(ds_recvec *rv);

/* Import options. */
typedef struct {
    const char *format; /* gsm8k | math | math500 | humaneval | mbpp | mbpp-sanitized | jsonl */
    const char *split;  /* split name; NULL for mbpp/mbpp-sanitized = by task id (prompt 1-10,
                           test 11-510, validation 511-600, train 601-974) */
    const char *source; /* jsonl only: source name (default "jsonl"); others use the format */
    const char *map;    /* jsonl only: "field=key,..." (canonical field = input key); NULL = identity */
    const char *kind;   /* jsonl only: math|code|chat for records without a kind (default: inferred) */
} ds_import_opts;

/* Parse one file of `opts->format` (gzip is inflated). Records are appended to out with
 * ids SOURCE/SPLIT/N where N = *ordinal (incremented per record, so several files of one
 * import number on). On error nothing is appended and the message names file and line.
 * Errors: SRLM_EFORMAT (bad JSON, missing field, wrong type, empty file), SRLM_ENOTFOUND,
 * SRLM_EIO, SRLM_EINVAL (bad options). */
int ds_parse_file(const ds_import_opts *opts, const char *path, ds_recvec *out, uint32_t *ordinal);

/* Parse every file, then replace the (source, split) groups they produce in one
 * transaction. *n_records (may be NULL) = records written. */
int ds_import_files(ds_store *s, const ds_import_opts *opts, const char *const *files, int n_files,
                    size_t *n_records);

/* Import a bundled data set ("gsm8k", "math", "math500", "humaneval", "mbpp",
 * "mbpp-sanitized" or "all") from datasets/data/ (srlm_resource_path) with its standard
 * splits (gsm8k train/test, math train/test, math500 test, humaneval test, mbpp by task id),
 * in one transaction. */
int ds_import_bundled(ds_store *s, const char *which, size_t *n_records);

/* ---- helpers (exposed for tests) ---------------------------------------------------- */

/* GSM8K: the final answer after the last "####", commas and spaces removed (*out heap).
 * Error SRLM_EFORMAT if there is no "####" or the rest is not a number. */
int ds_gsm8k_answer(const char *answer_text, char **out);
/* Copy of s without calculator annotations "<<...>>" (heap). */
char *ds_strip_calc(const char *s);
/* Content of the last \boxed{...} (or \fbox{...}) with nested braces, heap; NULL if none or
 * unbalanced. "\boxed 5" (no braces) gives "5". */
char *ds_last_boxed(const char *s);

/* ---- synthetic tasks (synth.c) ------------------------------------------------------ */
typedef struct {
    const char *kind;  /* "arith" (source synth-arith, kind math) or "code" (synth-code) */
    size_t n;          /* records */
    const char *split; /* split name */
    uint64_t seed;
    int max_steps;     /* arith: operations per problem, 1..max_steps (default 3) */
    int max_number;    /* arith: largest operand (default 20) */
    const char *exclude_split; /* ds_synth_import: skip problems whose prompt is a record of
                                  (same source, this split) in the store, e.g. "test", so a
                                  training split is disjoint from the held-out one; NULL = none */
} ds_synth_opts;

/* Generate n records deterministically from the seed (same options -> same records).
 * Arith: "Tom has 5 apples. Tom gets 3 more. ... How many apples does Tom have now?" with
 * solution "5+3=8. 8*2=16.\n#### 16". Code: "Write a function add_3(x) that returns x plus
 * 3." with 3 asserts, a reference solution, entry_point, code_format mbpp. */
int ds_synth(const ds_synth_opts *o, ds_recvec *out); /* exclude_split set: SRLM_EINVAL */
/* Generate and store (replacing synth-KIND/SPLIT) in one transaction. With exclude_split,
 * problems whose prompt occurs in that split are skipped and generation goes on (indices
 * n, n+1, ...) until n records are kept; *n_excluded (may be NULL) gets how many were
 * skipped. SRLM_ENOTFOUND when the store has no record of (source, exclude_split): the
 * held-out split must be generated first; SRLM_EINVAL when fewer than n problems outside
 * the split exist in the first 100 n + 1000 indices (the problem space is too small). */
int ds_synth_import(ds_store *s, const ds_synth_opts *o, size_t *n_excluded);

#endif
