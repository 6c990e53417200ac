/* math_reward.h — the math-answer checker (prefix mr_): extraction of the final answer
 * from raw model text, a LaTeX/plain-math parser, and answer equivalence.
 *
 * Pipeline of one check (docs/reward_math.md has the user-facing description):
 *   1. extraction (math_extract.c): last \boxed{}/\fbox{} (adjacent boxes are joined as
 *      multiple answers), GSM8K "#### N", "final answer is ...", "answer: ...", the whole
 *      text when it is short math, and as the last resort the last number;
 *   2. parsing (math_parse.c): LaTeX and plain math into a bounded arena AST (numbers as
 *      exact GMP rationals, symbols, + - * / ^, roots, trig, logs, \pm, tuples, sets,
 *      intervals, matrices, relations, text);
 *   3. equivalence (math_equiv.c): exact rational arithmetic where possible, evaluation at
 *      seeded random points otherwise, order-insensitive sets and multiple answers.
 *
 * Bounds (all checks are bounded in time and memory; exceeding one gives the verdict
 * "unparsable", never a hang or crash): MR_MAX_TEXT bytes of completion, MR_MAX_ANSWER
 * bytes of extracted answer, MR_MAX_TOKENS tokens, MR_MAX_NODES AST nodes, MR_MAX_DEPTH
 * nesting, MR_MAX_BITS bits in any exact intermediate rational (huge powers are refused),
 * MR_MAX_ITEMS answers per list, MR_MAX_PM ± signs per answer.
 *
 * Thread safety: the compiled extraction regexes are built once (pthread_once) and are
 * read-only afterwards; every other state lives on the caller's stack / heap. */
#ifndef SRLM_MATH_REWARD_H
#define SRLM_MATH_REWARD_H

#include <stddef.h>
#include <stdint.h>

#include "worker.h"

#define MR_MAX_TEXT (1 << 20)  /* completion bytes; longer -> unparsable */
#define MR_MAX_ANSWER 2048     /* extracted answer bytes */
#define MR_MAX_TOKENS 1024
#define MR_MAX_NODES 2048
#define MR_MAX_DEPTH 48
#define MR_MAX_BITS 8192       /* per exact rational numerator/denominator */
#define MR_MAX_ITEMS 32
#define MR_MAX_PM 3
#define MR_MAX_VARS 16

/* Which extraction rule produced the answer. */
typedef enum {
    MR_RULE_NONE = 0,
    MR_RULE_BOXED,       /* last \boxed{...} / \fbox{...} (adjacent ones joined) */
    MR_RULE_HASH,        /* GSM8K "#### N" */
    MR_RULE_FINAL,       /* "final answer is ..." / "Final Answer: ..." */
    MR_RULE_ANSWER,      /* "answer: ..." / "the answer is ..." */
    MR_RULE_WHOLE,       /* the whole (short) text is the answer */
    MR_RULE_LAST_NUMBER, /* the last number in the text */
} mr_rule;

enum { MR_CORRECT = 0, MR_WRONG = 1, MR_UNPARSABLE = 2 };
enum { MR_PCT_LENIENT = 0, /* 28% matches 28% , 28 and 0.28 */
       MR_PCT_STRICT = 1   /* 28% matches 0.28 and 28% only */ };

typedef struct {
    int percent;          /* MR_PCT_* */
    double rel_tol;       /* float tolerance for inexact (irrational) values, relative; 1e-9 */
    double point_tol;     /* tolerance at random points for symbolic expressions; 1e-7 */
    int n_points;         /* random evaluation points (seeded), 6 */
    uint64_t seed;        /* seed of the random points */
    int extract_pred;     /* 1: pred is raw model text, run extraction (default) */
} mr_opts;

typedef struct {
    int verdict;          /* MR_CORRECT | MR_WRONG | MR_UNPARSABLE */
    int correct;          /* verdict == MR_CORRECT */
    int format_ok;        /* boxed / #### / final-answer, after </think> when <think> is used */
    mr_rule rule;         /* extraction rule that fired for pred */
    char extracted[256];  /* the extracted prediction (truncated) */
    char gold[256];       /* the gold answer as compared (truncated) */
    char method[24];      /* how equality was decided: string|text|exact|numeric|decimal|points|... */
    double tolerance;     /* tolerance applied by `method` (0 = exact) */
    char reason[96];      /* unparsable / wrong: short reason */
} mr_result;

/* Defaults: lenient percent, rel_tol 1e-9, point_tol 1e-7, 6 points, seed 0x5eed. */
void mr_opts_default(mr_opts *o);
const char *mr_rule_name(mr_rule r);      /* "boxed", "hash", "final", "answer", "whole", "last_number", "none" */
const char *mr_verdict_name(int verdict); /* "correct" | "wrong" | "unparsable" */

/* Extract the final answer from raw model text `text` (len bytes, need not be
 * NUL-terminated). Writes the answer (NUL-terminated, cleaned of $...$ delimiters and
 * trailing punctuation) into out[outlen], the rule into *rule and the format reward into
 * *format_ok. Returns 0, or SRLM_ENOTFOUND when nothing answer-like is found, or
 * SRLM_ENOMEM when text exceeds MR_MAX_TEXT or the answer exceeds outlen. */
int mr_extract(const char *text, size_t len, char *out, size_t outlen, mr_rule *rule, int *format_ok);

/* Compare a gold answer with a prediction. gold: a reference answer ("18", "\frac{3}{4}",
 * or a reference solution containing \boxed / ####); pred: raw model text when
 * opts->extract_pred, else an answer. opts may be NULL (defaults). Fills *res.
 * Returns 0 (the verdict is in res) or SRLM_EINVAL on NULL arguments. */
int mr_check(const char *gold, const char *pred, const mr_opts *opts, mr_result *res);

/* The checker in a forked child process under the strict seccomp allowlist (service
 * mode: the ZeroMQ worker process itself never parses untrusted text). The child gets
 * RLIMIT_AS 1 GiB and no core dumps; a child that crashes or exceeds the wall-clock limit
 * is killed and restarted, and that check's verdict is "unparsable". Start it before
 * creating threads. Ignores SIGPIPE process-wide. */
typedef struct mr_sandbox mr_sandbox;
int mr_sandbox_start(mr_sandbox **out, const mr_opts *opts); /* 0 | SRLM_EIO | SRLM_ENOMEM */
/* One check in the child (thread-safe: serialised). timeout_s <= 0: 10 s. Returns 0, or
 * SRLM_EIO when the child cannot be restarted (res still holds the verdict). */
int mr_sandbox_check(mr_sandbox *sb, const char *gold, const char *pred, mr_result *res, double timeout_s);
long mr_sandbox_restarts(const mr_sandbox *sb);
void mr_sandbox_stop(mr_sandbox *sb);

/* Scorer context for mr_score: options, and optionally the sandbox child to run in. */
typedef struct {
    mr_opts opts;
    mr_sandbox *sb;      /* NULL: check in-process */
    double timeout_s;    /* per check in the sandbox (default 10 s) */
} mr_ctx;
void mr_ctx_init(mr_ctx *ctx);

/* reward_score_fn (services/worker.h): gold = problem_json's "answer" (a string; a
 * number is accepted too). reward 1/0, verdict correct|wrong|unparsable, extracted,
 * format_ok, details_json {"rule","method","tolerance","gold","reason"} (heap).
 * ctx: mr_ctx* or NULL. Returns 0, or SRLM_EINVAL (out->is_error) when problem_json is
 * not JSON or has no answer. */
int mr_score(void *ctx, const char *problem_json, const char *completion, reward_result *out);

/* Render res as one JSON object (heap string, caller frees): {"correct","verdict",
 * "extracted","rule","format_ok","gold","method","tolerance","reason"}. NULL on OOM. */
char *mr_result_json(const mr_result *res);

/* Seccomp allowlist for the checker's steady state (libseccomp; any other system call
 * kills the process): read/write/readv/writev/pread64/lseek/fstat/newfstatat/close on
 * descriptors already open, brk/munmap/mremap/madvise and mmap/mprotect without
 * PROT_EXEC, futex, clock_gettime/gettimeofday, getpid/gettid/tgkill (abort), getrandom,
 * rt_sigreturn/rt_sigprocmask/restart_syscall/sched_yield, exit/exit_group. No open, no
 * socket, no fork/clone, no execve. Sets PR_SET_NO_NEW_PRIVS. Returns 0 or SRLM_EIO. */
enum { MR_SECCOMP_STRICT = 0 };
int mr_seccomp_install(int level);

/* Warm up everything that must be loaded before the filter (regexes, locale, stdio). */
void mr_prepare(void);

#endif
