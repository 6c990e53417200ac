/* math_internal.h — the checker's private AST, shared by math_parse.c and math_equiv.c.
 *
 * One mr_arena holds the parsed gold and prediction of one check: nodes (first-child /
 * next-sibling lists), exact rational literals (GMP mpq), interned variable names and a
 * text pool. Everything is bounded (math_reward.h MR_MAX_*). */
#ifndef SRLM_MATH_INTERNAL_H
#define SRLM_MATH_INTERNAL_H

#include <gmp.h>

#include "math_reward.h"

typedef enum {
    N_NUM,      /* rational literal: num index, ndec fractional digits (-1 integer), sig */
    N_SYM,      /* variable: var index */
    N_PI, N_E, N_INF,
    N_ADD,      /* kids: terms */
    N_MUL,      /* kids: factors */
    N_NEG,      /* kid */
    N_DIV,      /* kids: a, b */
    N_POW,      /* kids: base, exponent */
    N_FUNC,     /* op: F_*; kids: arg [, base/index] */
    N_FACT,     /* kid! */
    N_PCT,      /* kid% */
    N_PM,       /* kids: a, b -> a ± b (unary ±b: a is NUM 0); op '+'=±, '-'=∓ */
    N_LIST,     /* top-level multiple answers (unordered) */
    N_TUPLE,    /* bracketed list: op open char, op2 close char ( ( [ ) ] ) */
    N_SET,      /* \{ ... \} (unordered) */
    N_UNION,    /* A \cup B (unordered) */
    N_MATRIX,   /* rows x cols, kids row-major */
    N_REL,      /* kids: lhs, rhs; op R_* */
    N_TEXT,     /* text answer: text offset, len (normalised lowercase) */
    N_EMPTY,    /* \emptyset */
} mr_ntype;

enum { F_SQRT = 1, F_ROOT, F_SIN, F_COS, F_TAN, F_SEC, F_CSC, F_COT, F_ASIN, F_ACOS, F_ATAN,
       F_SINH, F_COSH, F_TANH, F_LN, F_LOG, F_LOGB, F_EXP, F_ABS, F_FLOOR, F_CEIL, F_BINOM };
enum { R_EQ = 1, R_LT, R_LE, R_GT, R_GE, R_NE, R_IN };

typedef struct {
    uint8_t t, op, op2;
    int16_t var;
    int kid, next, last;   /* first child, next sibling, last child (-1 none) */
    int num;               /* N_NUM: index in nums; N_TEXT: offset in text */
    int16_t ndec, sig;     /* N_NUM: fractional digits written (-1: none), significant digits */
    int16_t rows, cols;    /* N_MATRIX; N_TEXT: cols = length */
} mr_node;

typedef struct {
    mr_node nodes[MR_MAX_NODES];
    int nnodes;
    mpq_t *nums;           /* MR_MAX_NODES/2 slots, initialised lazily */
    int nnums, nums_init;
    char vars[MR_MAX_VARS][24];
    int nvars;
    char text[MR_MAX_ANSWER * 2];
    int ntext;
} mr_arena;

void mr_arena_init(mr_arena *a);
void mr_arena_free(mr_arena *a);

/* Parse an (already extracted) answer string into the arena. Returns the root node
 * index (N_LIST of items, or a single item), or -1 when unparsable (reason in why). */
int mr_parse(mr_arena *a, const char *s, char *why, size_t whylen);

/* Compact normal form for the string short-cut: LaTeX spacing, \left/\right, $, \! and
 * \dfrac/\tfrac removed; out NUL-terminated. */
void mr_compact(const char *s, char *out, size_t outlen);
/* Plain-text normal form: lowercase letters and digits only (\text{} etc. unwrapped). */
void mr_textnorm(const char *s, char *out, size_t outlen);

#endif
