/* util.h — shared plumbing of every srlm module: error codes, logging, files, hashing,
 * time, progress lines and a seeded RNG.
 *
 * Conventions (see docs/DESIGN.md):
 *  - functions return 0 on success or a negative SRLM_E* code; the human-readable reason
 *    is stored per thread with srlm_set_error() and read with srlm_last_error();
 *  - ownership is written next to each pointer parameter;
 *  - log lines are one event each: `TIME ROLE[PID] LEVEL message` on stderr.
 */
#ifndef SRLM_UTIL_H
#define SRLM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- errors ------------------------------------------------------------------------ */
enum {
    SRLM_OK = 0,
    SRLM_EIO = -1,          /* read/write/syscall failure */
    SRLM_EINVAL = -2,       /* bad argument or bad user input (file, field, flag) */
    SRLM_ENOMEM = -3,       /* allocation failed or a size limit was exceeded */
    SRLM_EFORMAT = -4,      /* malformed file or message */
    SRLM_ENOTFOUND = -5,    /* missing file, key, tensor, record */
    SRLM_ETIMEOUT = -6,     /* a peer or child did not answer in time */
    SRLM_EUNSUPPORTED = -7, /* valid but not supported (dtype, config field) */
    SRLM_EINTERNAL = -8,    /* a bug: an invariant did not hold */
    SRLM_EINTR = -9,        /* interrupted by a shutdown signal */
};

/* Static description of an SRLM_E* code ("invalid input", ...). Never NULL. */
const char *srlm_strerror(int code);

/* Record the reason for the error about to be returned (printf format). Thread-local;
 * overwrites the previous message, which may itself be an argument (to add context:
 * `srlm_set_error(rc, "%s: %s", path, srlm_last_error())`). Returns `code` so callers can
 * write `return srlm_set_error(SRLM_EINVAL, "%s:%d: ...", file, line);`. */
int srlm_set_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message set on this thread ("" if none). Valid until the next set. */
const char *srlm_last_error(void);

/* ---- logging ----------------------------------------------------------------------- */
enum { SRLM_LOG_DEBUG = 0, SRLM_LOG_INFO = 1, SRLM_LOG_WARN = 2, SRLM_LOG_ERROR = 3 };
/* Name of this process's role in log lines ("trainer", "broker", ...). Copied. */
void srlm_log_set_role(const char *role);
/* Minimum level printed; default INFO, or $SRLM_LOG_LEVEL (debug|info|warn|error). */
void srlm_log_set_level(int level);
void srlm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define SRLM_DEBUG(...) srlm_log(SRLM_LOG_DEBUG, __VA_ARGS__)
#define SRLM_INFO(...) srlm_log(SRLM_LOG_INFO, __VA_ARGS__)
#define SRLM_WARN(...) srlm_log(SRLM_LOG_WARN, __VA_ARGS__)
#define SRLM_ERROR(...) srlm_log(SRLM_LOG_ERROR, __VA_ARGS__)

/* ---- memory ------------------------------------------------------------------------ */
/* malloc/calloc/realloc that abort with a log line on failure (for small, bounded
 * allocations only; large tensors use srlm_alloc_floats and handle NULL). */
void *srlm_xmalloc(size_t n);
void *srlm_xcalloc(size_t n, size_t size);
void *srlm_xrealloc(void *p, size_t n);
char *srlm_xstrdup(const char *s);
/* 64-byte aligned float buffer of n floats, zeroed; NULL on failure. Free with free(). */
float *srlm_alloc_floats(size_t n);

/* ---- files ------------------------------------------------------------------------- */
/* Read a whole file into a NUL-terminated heap buffer (*out, caller frees); *len excludes
 * the NUL. Files ending in ".gz" (or starting with the gzip magic) are inflated.
 * Errors: SRLM_ENOTFOUND, SRLM_EIO, SRLM_ENOMEM (over max_bytes; 0 = no limit). */
int srlm_read_file(const char *path, char **out, size_t *len, size_t max_bytes);
/* Write data to path atomically: PATH.tmp.PID, fsync, rename, fsync the directory.
 * On error the old file (if any) is untouched. */
int srlm_write_file_atomic(const char *path, const void *data, size_t len);
int srlm_fsync_dir(const char *dir);
/* mkdir -p; existing directories are fine. */
int srlm_mkdir_p(const char *path);
/* rm -rf that never follows symbolic links (unlinks the link itself). */
int srlm_rm_rf(const char *path);
int srlm_file_exists(const char *path);
/* Locate a bundled resource (e.g. "datasets/gsm8k/test.jsonl.gz", "tokenizers/qwen2.5"):
 * tries $SRLM_DATA_DIR/rel, the source tree of this build, then EXE_DIR/../share/srlm/rel.
 * Writes the first existing path into out (size outlen). Error: SRLM_ENOTFOUND. */
int srlm_resource_path(const char *rel, char *out, size_t outlen);

/* ---- hashing ----------------------------------------------------------------------- */
/* SHA-256 as 64 lowercase hex chars + NUL into hex[65]. */
void srlm_sha256_hex(const void *data, size_t len, char hex[65]);
int srlm_sha256_file(const char *path, char hex[65]);

/* ---- time -------------------------------------------------------------------------- */
double srlm_now(void);      /* monotonic seconds */
double srlm_wall_time(void);/* seconds since the Unix epoch */
/* ISO-8601 UTC timestamp with milliseconds into buf (>= 32 bytes). */
void srlm_iso_time(char *buf, size_t n);

/* ---- progress ---------------------------------------------------------------------- */
/* A progress line for long work: "label  done/total  rate unit/s  ETA mm:ss". On a
 * terminal it redraws one line (at most 10×/s); otherwise it logs a line every
 * `every_s` seconds (default 10). */
typedef struct {
    char label[64];
    char unit[16];
    long total;
    double t0, last;
    double every_s;
    int tty;
} srlm_progress;
void srlm_progress_init(srlm_progress *p, const char *label, const char *unit, long total);
void srlm_progress_update(srlm_progress *p, long done, const char *extra);
void srlm_progress_done(srlm_progress *p, long done, const char *extra);

/* ---- random numbers ---------------------------------------------------------------- */
/* xoshiro256** seeded through splitmix64: reproducible across platforms. */
typedef struct { uint64_t s[4]; } srlm_rng;
void srlm_rng_seed(srlm_rng *r, uint64_t seed);
uint64_t srlm_rng_u64(srlm_rng *r);
double srlm_rng_uniform(srlm_rng *r);   /* [0, 1) with 53 random bits */
float srlm_rng_normal(srlm_rng *r);     /* N(0, 1), Box–Muller */
uint64_t srlm_rng_below(srlm_rng *r, uint64_t n); /* uniform in [0, n), unbiased */

/* ---- small strings ----------------------------------------------------------------- */
/* Parse "1,2,3" into a heap array of ints (*out, caller frees). Error: SRLM_EINVAL. */
int srlm_parse_int_list(const char *s, int **out, int *n);
/* qsort/bsearch comparator for an array of C strings (char *), by strcmp. */
int srlm_cmp_strp(const void *a, const void *b);

/* Parse a whole decimal integer in [lo, hi] (no empty string, no trailing text, no
 * overflow) into *out. Error: SRLM_EINVAL, *out unchanged. For numeric CLI flags. */
int srlm_parse_int(const char *s, long lo, long hi, int *out);
/* snprintf that reports truncation as SRLM_EINVAL. */
int srlm_fmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
