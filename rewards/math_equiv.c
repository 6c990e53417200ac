/* math_equiv.c — answer equivalence of the math checker (see math_reward.h).
 *
 * Scalars: exact GMP rational evaluation when the expression is rational (including
 * perfect-power roots, factorials, binomials, percentages by policy); otherwise double
 * evaluation with a relative tolerance; with free variables, evaluation at seeded random
 * points (exact rationals first: a polynomial-identity test; doubles with a tolerance when
 * roots/trig/logs appear). A decimal with n fractional digits (>= 3 significant digits)
 * matches a value it rounds or truncates to (|v - d| < 10^-n), and the tolerance used is
 * reported. Structures: tuples/intervals (ordered, bracket kinds must agree), sets, unions
 * and multiple answers (order-insensitive, ± expanded), matrices, equations (equal up to a
 * nonzero factor), "label = value" (x = 3 vs 3), text (case-insensitive). */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math_internal.h"
#include "util.h"

typedef struct {
    mr_arena *a;
    const mr_opts *o;
    mpq_t *qv;        /* exact variable values or NULL */
    double *dv;       /* double variable values or NULL */
    unsigned mask;    /* ± choices */
    int pmi;          /* ± counter during one evaluation */
    int pct_div;      /* 1: x% = x/100, 0: x% = x */
    int budget;       /* node visits left (time bound) */
    char method[24];
    double tol;
} E;

#define KIDS(a, n) ((a)->nodes[n].kid)
#define NEXT(a, k) ((a)->nodes[k].next)

/* ---- exact evaluation ----------------------------------------------------------------- */
static int too_big(mpq_srcptr q) {
    return mpz_sizeinbase(mpq_numref(q), 2) > MR_MAX_BITS || mpz_sizeinbase(mpq_denref(q), 2) > MR_MAX_BITS;
}

/* q^(1/k) exactly if q >= 0 (or k odd) and both parts are perfect powers. */
static int exact_root(mpq_ptr out, mpq_srcptr q, unsigned long k) {
    if (k == 0 || k > 64) return -1;
    if (mpq_sgn(q) < 0 && !(k & 1)) return -1;
    mpz_t n, d;
    mpz_init(n);
    mpz_init(d);
    int ok = mpz_root(n, mpq_numref(q), k) && mpz_root(d, mpq_denref(q), k);
    if (ok) {
        mpz_set(mpq_numref(out), n);
        mpz_set(mpq_denref(out), d);
        mpq_canonicalize(out);
    }
    mpz_clear(n);
    mpz_clear(d);
    return ok ? 0 : -1;
}

static int ex(E *e, int n, mpq_ptr out);

static int ex_pow(E *e, mpq_srcptr b, mpq_srcptr x, mpq_ptr out) {
    /* exponent p/q with small q: root then integer power */
    if (mpz_sizeinbase(mpq_denref(x), 2) > 6 || mpz_sizeinbase(mpq_numref(x), 2) > 14) return -1;
    long p = mpz_get_si(mpq_numref(x));
    unsigned long q = mpz_get_ui(mpq_denref(x));
    mpq_t base;
    mpq_init(base);
    int rc = 0;
    if (q != 1) rc = exact_root(base, b, q);
    else mpq_set(base, b);
    if (!rc) {
        unsigned long ap = (unsigned long)labs(p);
        size_t bits = mpz_sizeinbase(mpq_numref(base), 2) + mpz_sizeinbase(mpq_denref(base), 2);
        if (mpq_sgn(base) == 0) {
            if (p < 0) rc = -1;
            else mpq_set_ui(out, p == 0 ? 1 : 0, 1);
        } else if ((double)bits * (double)ap > MR_MAX_BITS) {
            rc = -1; /* refuse huge powers */
        } else {
            mpz_pow_ui(mpq_numref(out), mpq_numref(base), ap);
            mpz_pow_ui(mpq_denref(out), mpq_denref(base), ap);
            mpq_canonicalize(out);
            if (p < 0) mpq_inv(out, out);
        }
    }
    mpq_clear(base);
    return rc;
}

static int ex(E *e, int n, mpq_ptr out) {
    if (--e->budget < 0) return -1;
    mr_arena *a = e->a;
    mr_node *x = &a->nodes[n];
    int rc = 0;
    mpq_t t;
    switch (x->t) {
    case N_NUM: mpq_set(out, a->nums[x->num]); return 0;
    case N_SYM:
        if (!e->qv) return -1;
        mpq_set(out, e->qv[x->var]);
        return 0;
    case N_NEG:
        if (ex(e, x->kid, out)) return -1;
        mpq_neg(out, out);
        return 0;
    case N_ADD: case N_MUL: {
        mpq_init(t);
        int first = 1;
        for (int k = x->kid; k >= 0 && !rc; k = NEXT(a, k)) {
            if (first) { rc = ex(e, k, out); first = 0; continue; }
            rc = ex(e, k, t);
            if (!rc) {
                if (x->t == N_ADD) mpq_add(out, out, t);
                else mpq_mul(out, out, t);
                if (too_big(out)) rc = -1;
            }
        }
        mpq_clear(t);
        return rc;
    }
    case N_DIV: case N_POW: case N_PM: {
        mpq_init(t);
        int k0 = x->kid, k1 = NEXT(a, k0);
        rc = ex(e, k0, out);
        if (!rc) rc = ex(e, k1, t);
        if (!rc) {
            if (x->t == N_DIV) {
                if (mpq_sgn(t) == 0) rc = -1;
                else mpq_div(out, out, t);
            } else if (x->t == N_PM) {
                int bit = (e->mask >> e->pmi) & 1;
                e->pmi++;
                int minus = (x->op == '-') ? !bit : bit;
                if (minus) mpq_sub(out, out, t);
                else mpq_add(out, out, t);
            } else {
                mpq_t b;
                mpq_init(b);
                mpq_set(b, out);
                rc = ex_pow(e, b, t, out);
                mpq_clear(b);
            }
            if (!rc && too_big(out)) rc = -1;
        }
        mpq_clear(t);
        return rc;
    }
    case N_PCT:
        if (ex(e, x->kid, out)) return -1;
        if (e->pct_div) {
            mpq_init(t);
            mpq_set_ui(t, 100, 1);
            mpq_div(out, out, t);
            mpq_clear(t);
        }
        return 0;
    case N_FACT:
        if (ex(e, x->kid, out)) return -1;
        if (mpz_cmp_ui(mpq_denref(out), 1) || mpq_sgn(out) < 0 || mpz_cmp_ui(mpq_numref(out), 800) > 0) return -1;
        mpz_fac_ui(mpq_numref(out), mpz_get_ui(mpq_numref(out)));
        return 0;
    case N_FUNC: {
        int k0 = x->kid, k1 = NEXT(a, k0);
        if (x->op == F_SQRT || x->op == F_ROOT) {
            unsigned long k = 2;
            if (x->op == F_ROOT) {
                mpq_init(t);
                rc = ex(e, k1, t);
                if (!rc && (mpz_cmp_ui(mpq_denref(t), 1) || mpq_sgn(t) <= 0 || mpz_cmp_ui(mpq_numref(t), 64) > 0)) rc = -1;
                if (!rc) k = mpz_get_ui(mpq_numref(t));
                mpq_clear(t);
                if (rc) return -1;
            }
            if (ex(e, k0, out)) return -1;
            mpq_init(t);
            rc = exact_root(t, out, k);
            if (!rc) mpq_set(out, t);
            mpq_clear(t);
            return rc;
        }
        if (x->op == F_ABS) {
            if (ex(e, k0, out)) return -1;
            mpq_abs(out, out);
            return 0;
        }
        if (x->op == F_FLOOR || x->op == F_CEIL) {
            if (ex(e, k0, out)) return -1;
            if (x->op == F_FLOOR) mpz_fdiv_q(mpq_numref(out), mpq_numref(out), mpq_denref(out));
            else mpz_cdiv_q(mpq_numref(out), mpq_numref(out), mpq_denref(out));
            mpz_set_ui(mpq_denref(out), 1);
            return 0;
        }
        if (x->op == F_BINOM) {
            mpq_init(t);
            rc = ex(e, k0, out);
            if (!rc) rc = ex(e, k1, t);
            if (!rc && (mpz_cmp_ui(mpq_denref(out), 1) || mpz_cmp_ui(mpq_denref(t), 1) || mpq_sgn(out) < 0 ||
                        mpq_sgn(t) < 0 || mpz_cmp_ui(mpq_numref(out), 2000) > 0))
                rc = -1;
            if (!rc) {
                unsigned long nn = mpz_get_ui(mpq_numref(out)), kk = mpz_get_ui(mpq_numref(t));
                mpz_bin_uiui(mpq_numref(out), nn, kk);
                mpz_set_ui(mpq_denref(out), 1);
            }
            mpq_clear(t);
            return rc;
        }
        return -1;
    }
    default: return -1;
    }
}

/* ---- double evaluation ---------------------------------------------------------------- */
static double ev(E *e, int n) {
    if (--e->budget < 0) return NAN;
    mr_arena *a = e->a;
    mr_node *x = &a->nodes[n];
    switch (x->t) {
    case N_NUM: return mpq_get_d(a->nums[x->num]);
    case N_SYM: return e->dv ? e->dv[x->var] : NAN;
    case N_PI: return M_PI;
    case N_E: return M_E;
    case N_INF: return INFINITY;
    case N_NEG: return -ev(e, x->kid);
    case N_ADD: case N_MUL: {
        double r = x->t == N_ADD ? 0.0 : 1.0;
        for (int k = x->kid; k >= 0; k = NEXT(a, k)) {
            double v = ev(e, k);
            r = x->t == N_ADD ? r + v : r * v;
        }
        return r;
    }
    case N_DIV: {
        double u = ev(e, x->kid), v = ev(e, NEXT(a, x->kid));
        return v == 0 ? NAN : u / v;
    }
    case N_POW: {
        double u = ev(e, x->kid), v = ev(e, NEXT(a, x->kid));
        return pow(u, v);
    }
    case N_PM: {
        double u = ev(e, x->kid), v = ev(e, NEXT(a, x->kid));
        int bit = (e->mask >> e->pmi) & 1;
        e->pmi++;
        int minus = (x->op == '-') ? !bit : bit;
        return minus ? u - v : u + v;
    }
    case N_PCT: return ev(e, x->kid) / (e->pct_div ? 100.0 : 1.0);
    case N_FACT: {
        double u = ev(e, x->kid);
        return (u < 0 || u > 170) ? NAN : tgamma(u + 1);
    }
    case N_FUNC: {
        double u = ev(e, x->kid);
        double v = NEXT(a, x->kid) >= 0 ? ev(e, NEXT(a, x->kid)) : 0;
        switch (x->op) {
        case F_SQRT: return sqrt(u);
        case F_ROOT: return (u < 0 && fmod(v, 2) == 1) ? -pow(-u, 1 / v) : pow(u, 1 / v);
        case F_SIN: return sin(u);
        case F_COS: return cos(u);
        case F_TAN: return tan(u);
        case F_SEC: return 1 / cos(u);
        case F_CSC: return 1 / sin(u);
        case F_COT: return 1 / tan(u);
        case F_ASIN: return asin(u);
        case F_ACOS: return acos(u);
        case F_ATAN: return atan(u);
        case F_SINH: return sinh(u);
        case F_COSH: return cosh(u);
        case F_TANH: return tanh(u);
        case F_LN: return log(u);
        case F_LOG: return log10(u);
        case F_LOGB: return log(u) / log(v);
        case F_EXP: return exp(u);
        case F_ABS: return fabs(u);
        case F_FLOOR: return floor(u);
        case F_CEIL: return ceil(u);
        case F_BINOM: return (u < 0 || v < 0 || u > 170 || v > u) ? NAN : round(tgamma(u + 1) / (tgamma(v + 1) * tgamma(u - v + 1)));
        default: return NAN;
        }
    }
    default: return NAN;
    }
}

/* ---- structure helpers ---------------------------------------------------------------- */
static unsigned varmask(mr_arena *a, int n, int depth) {
    if (depth > 4 * MR_MAX_DEPTH) return 0;
    unsigned m = a->nodes[n].t == N_SYM ? 1u << a->nodes[n].var : 0;
    for (int k = a->nodes[n].kid; k >= 0; k = NEXT(a, k)) m |= varmask(a, k, depth + 1);
    return m;
}

static int count_pm(mr_arena *a, int n, int depth) {
    if (depth > 4 * MR_MAX_DEPTH) return 0;
    int c = a->nodes[n].t == N_PM;
    for (int k = a->nodes[n].kid; k >= 0; k = NEXT(a, k)) c += count_pm(a, k, depth + 1);
    return c;
}

static int has_type(mr_arena *a, int n, int t, int depth) {
    if (depth > 4 * MR_MAX_DEPTH) return 0;
    if (a->nodes[n].t == t) return 1;
    for (int k = a->nodes[n].kid; k >= 0; k = NEXT(a, k))
        if (has_type(a, k, t, depth + 1)) return 1;
    return 0;
}

static int is_scalar(int t) {
    return t == N_NUM || t == N_SYM || t == N_PI || t == N_E || t == N_INF || t == N_ADD || t == N_MUL || t == N_NEG ||
           t == N_DIV || t == N_POW || t == N_FUNC || t == N_FACT || t == N_PCT || t == N_PM;
}

static int all_scalar(mr_arena *a, int n, int depth) {
    if (depth > 4 * MR_MAX_DEPTH || !is_scalar(a->nodes[n].t)) return 0;
    for (int k = a->nodes[n].kid; k >= 0; k = NEXT(a, k))
        if (!all_scalar(a, k, depth + 1)) return 0;
    return 1;
}

/* A "label" is the named side of "label = value": x, x_1, |AB|, A:B, f(x), (p,q,r). */
int mr_is_label(const mr_arena *a, int n, int depth) {
    if (depth > 16) return 0;
    const mr_node *x = &a->nodes[n];
    switch (x->t) {
    case N_SYM: return 1;
    case N_FUNC: return x->op == F_ABS && mr_is_label(a, x->kid, depth + 1);
    case N_DIV: return mr_is_label(a, x->kid, depth + 1) && mr_is_label(a, a->nodes[x->kid].next, depth + 1);
    case N_MUL: {
        if (!mr_is_label(a, x->kid, depth + 1)) return 0;
        if (a->nodes[x->kid].t != N_SYM) /* AB|CD style: every factor a label */
            for (int k = a->nodes[x->kid].next; k >= 0; k = a->nodes[k].next)
                if (!mr_is_label(a, k, depth + 1)) return 0;
        return 1;
    }
    case N_TUPLE:
        for (int k = x->kid; k >= 0; k = a->nodes[k].next)
            if (!mr_is_label(a, k, depth + 1)) return 0;
        return x->kid >= 0;
    default: return 0;
    }
}

/* decimal literal (maybe negated): returns fractional digits written, or -1 */
static int dec_lit(mr_arena *a, int n, int *sig) {
    if (a->nodes[n].t == N_NEG) n = a->nodes[n].kid;
    if (a->nodes[n].t != N_NUM || a->nodes[n].ndec < 1) return -1;
    *sig = a->nodes[n].sig;
    return a->nodes[n].ndec;
}

static void set_method(E *e, const char *m, double tol) {
    snprintf(e->method, sizeof e->method, "%s", m);
    e->tol = tol;
}

/* decimal d (nd fractional digits) vs value v: d must be v rounded (half-up) or truncated
 * to nd digits, up to double precision */
static int dec_close(double d, int nd, double v) {
    if (!isfinite(v) || !isfinite(d)) return 0;
    if ((d < 0) != (v < 0) && fabs(d) > 0 && fabs(v) > 0) return 0;
    double sc = pow(10.0, nd), ax = fabs(v) * sc, ad = round(fabs(d) * sc);
    double slack = 4 * DBL_EPSILON * ax + 1e-9;
    if (fabs(ax - ad) <= 0.5 + slack) return 1;           /* rounded */
    return ax >= ad - slack && ax < ad + 1 + slack;        /* truncated */
}

static int close_rel(double u, double v, double tol) {
    if (isinf(u) || isinf(v)) return u == v;
    if (!isfinite(u) || !isfinite(v)) return 0;
    return fabs(u - v) <= tol * fmax(1.0, fmax(fabs(u), fabs(v)));
}

static int eq_const(E *e, int g, unsigned gm, int p, unsigned pm) {
    mr_arena *a = e->a;
    int pct = has_type(a, g, N_PCT, 0) || has_type(a, p, N_PCT, 0);
    int modes = (pct && e->o->percent == MR_PCT_LENIENT) ? 2 : 1;
    int gs = 0, ps = 0, gd = dec_lit(a, g, &gs), pd = dec_lit(a, p, &ps);
    for (int mode = 0; mode < modes; mode++) {
        e->pct_div = mode == 0;
        mpq_t x, y;
        mpq_init(x);
        mpq_init(y);
        e->mask = gm; e->pmi = 0;
        int okg = ex(e, g, x) == 0;
        e->mask = pm; e->pmi = 0;
        int okp = ex(e, p, y) == 0;
        int res = -1;
        if (okg && okp) {
            if (mpq_equal(x, y)) { set_method(e, mode ? "exact-percent" : "exact", 0); res = 1; }
            else {
                /* one side a decimal approximating a non-terminating value */
                res = 0;
                mpq_t s;
                mpq_init(s);
                if (gd >= 1 && gs >= 3 && pd < 0) {
                    mpz_ui_pow_ui(mpq_numref(s), 10, (unsigned long)gd);
                    mpq_mul(s, s, y);
                    if (mpz_cmp_ui(mpq_denref(s), 1) && dec_close(mpq_get_d(x), gd, mpq_get_d(y))) res = 2, set_method(e, "decimal", pow(10, -gd));
                } else if (pd >= 1 && ps >= 3 && gd < 0) {
                    mpz_ui_pow_ui(mpq_numref(s), 10, (unsigned long)pd);
                    mpz_set_ui(mpq_denref(s), 1);
                    mpq_mul(s, s, x);
                    if (mpz_cmp_ui(mpq_denref(s), 1) && dec_close(mpq_get_d(y), pd, mpq_get_d(x))) res = 2, set_method(e, "decimal", pow(10, -pd));
                }
                mpq_clear(s);
            }
        }
        mpq_clear(x);
        mpq_clear(y);
        if (res >= 1) return 1;
        if (res == 0) continue;
        /* inexact: doubles */
        e->mask = gm; e->pmi = 0;
        double u = ev(e, g);
        e->mask = pm; e->pmi = 0;
        double v = ev(e, p);
        if (e->budget < 0) return 0;
        if (gd >= 1 && gs >= 3 && pd < 0 && !okp) {
            if (dec_close(u, gd, v)) { set_method(e, "decimal", pow(10, -gd)); return 1; }
            continue;
        }
        if (pd >= 1 && ps >= 3 && gd < 0 && !okg) {
            if (dec_close(v, pd, u)) { set_method(e, "decimal", pow(10, -pd)); return 1; }
            continue;
        }
        if (close_rel(u, v, e->o->rel_tol)) { set_method(e, "numeric", e->o->rel_tol); return 1; }
    }
    return 0;
}

static int eq_points(E *e, int g, unsigned gm, int p, unsigned pm, unsigned vars) {
    mr_arena *a = e->a;
    srlm_rng rng;
    srlm_rng_seed(&rng, e->o->seed);
    int npts = e->o->n_points > 0 ? e->o->n_points : 6;
    if (npts > 16) npts = 16;
    int modes = ((has_type(a, g, N_PCT, 0) || has_type(a, p, N_PCT, 0)) && e->o->percent == MR_PCT_LENIENT) ? 2 : 1;
    for (int mode = 0; mode < modes; mode++) {
        e->pct_div = mode == 0;
        /* exact rational points: a polynomial / rational-function identity test */
        mpq_t qv[MR_MAX_VARS], x, y;
        for (int i = 0; i < MR_MAX_VARS; i++) mpq_init(qv[i]);
        mpq_init(x);
        mpq_init(y);
        int exact_all = 1, equal = 1;
        for (int pt = 0; pt < npts && exact_all && equal; pt++) {
            for (int i = 0; i < a->nvars; i++)
                if (vars >> i & 1) {
                    mpq_set_si(qv[i], (long)srlm_rng_below(&rng, 97) + 3, (unsigned long)srlm_rng_below(&rng, 5) + 1);
                    mpq_canonicalize(qv[i]);
                }
            e->qv = qv;
            e->mask = gm; e->pmi = 0;
            int okg = ex(e, g, x) == 0;
            e->mask = pm; e->pmi = 0;
            int okp = ex(e, p, y) == 0;
            if (!okg || !okp) exact_all = 0;
            else if (!mpq_equal(x, y)) equal = 0;
        }
        e->qv = NULL;
        for (int i = 0; i < MR_MAX_VARS; i++) mpq_clear(qv[i]);
        mpq_clear(x);
        mpq_clear(y);
        if (exact_all) {
            if (equal) { set_method(e, "points-exact", 0); return 1; }
            continue;
        }
        /* double points in [0.5, 2.5] (positive keeps roots and logs defined) */
        double dv[MR_MAX_VARS] = {0};
        int valid = 0, bad = 0;
        for (int pt = 0; pt < npts * 2 && valid < npts && !bad; pt++) {
            for (int i = 0; i < a->nvars; i++) dv[i] = 0.5 + 2.0 * srlm_rng_uniform(&rng);
            e->dv = dv;
            e->mask = gm; e->pmi = 0;
            double u = ev(e, g);
            e->mask = pm; e->pmi = 0;
            double v = ev(e, p);
            e->dv = NULL;
            if (e->budget < 0) return 0;
            if (isnan(u) && isnan(v)) continue;
            if (!close_rel(u, v, e->o->point_tol)) bad = 1;
            else valid++;
        }
        if (!bad && valid >= 3) { set_method(e, "points", e->o->point_tol); return 1; }
    }
    return 0;
}

static int eq_scalar(E *e, int g, unsigned gm, int p, unsigned pm) {
    mr_arena *a = e->a;
    if (!all_scalar(a, g, 0) || !all_scalar(a, p, 0)) return 0;
    unsigned vars = varmask(a, g, 0) | varmask(a, p, 0);
    if (!vars) return eq_const(e, g, gm, p, pm);
    /* different variable sets: x+1 vs y+1 are different answers */
    if (varmask(a, g, 0) != varmask(a, p, 0)) {
        /* allow cancellation only via points: fall through (x - x + 1 vs 1) */
    }
    return eq_points(e, g, gm, p, pm, vars);
}

/* Equations equal up to a nonzero constant factor: (lg - rg) = c (lp - rp). */
static int eq_equation(E *e, int g, int p) {
    mr_arena *a = e->a;
    int lg = a->nodes[g].kid, rg = NEXT(a, lg), lp = a->nodes[p].kid, rp = NEXT(a, lp);
    if (!all_scalar(a, lg, 0) || !all_scalar(a, rg, 0) || !all_scalar(a, lp, 0) || !all_scalar(a, rp, 0)) return 0;
    srlm_rng rng;
    srlm_rng_seed(&rng, e->o->seed ^ 0x9e3779b97f4a7c15ull);
    double dv[MR_MAX_VARS] = {0}, ratio = NAN;
    int valid = 0;
    e->pct_div = 1;
    for (int pt = 0; pt < 24 && valid < 6; pt++) {
        for (int i = 0; i < a->nvars; i++) dv[i] = 0.5 + 2.0 * srlm_rng_uniform(&rng);
        e->dv = dv;
        e->mask = 0; e->pmi = 0;
        double fg = ev(e, lg) - ev(e, rg);
        e->pmi = 0;
        double fp = ev(e, lp) - ev(e, rp);
        e->dv = NULL;
        if (e->budget < 0) return 0;
        if (!isfinite(fg) || !isfinite(fp)) continue;
        if (fabs(fg) < 1e-12 && fabs(fp) < 1e-12) continue;
        if (fabs(fg) < 1e-12 || fabs(fp) < 1e-12) return 0;
        double r = fp / fg;
        if (isnan(ratio)) ratio = r;
        else if (!close_rel(r, ratio, e->o->point_tol)) return 0;
        valid++;
    }
    if (valid >= 3) { set_method(e, "equation", e->o->point_tol); return 1; }
    return 0;
}

/* ---- structures ----------------------------------------------------------------------- */
typedef struct { int n; unsigned mask; } vitem;

static int eq_item(E *e, int g, unsigned gm, int p, unsigned pm, int depth);

/* children of an unordered collection, each expanded over its ± choices */
static int expand(E *e, int n, vitem *out, int max) {
    mr_arena *a = e->a;
    int c = 0;
    int t = a->nodes[n].t;
    int kids[MR_MAX_ITEMS * 4], nk = 0;
    if (t == N_LIST || t == N_SET || t == N_UNION) {
        for (int k = a->nodes[n].kid; k >= 0 && nk < MR_MAX_ITEMS * 4; k = NEXT(a, k)) kids[nk++] = k;
    } else {
        kids[nk++] = n;
    }
    for (int i = 0; i < nk; i++) {
        int k = kids[i];
        int npm = count_pm(a, k, 0);
        if (npm > MR_MAX_PM) return -1;
        for (unsigned m = 0; m < (1u << npm); m++) {
            if (c >= max) return -1;
            out[c].n = k;
            out[c].mask = m;
            c++;
        }
    }
    return c;
}

static int match_unordered(E *e, vitem *G, int ng, vitem *Pv, int np, int depth) {
    if (ng != np) return 0;
    int used[MR_MAX_ITEMS * 4] = {0};
    for (int i = 0; i < ng; i++) {
        int found = 0;
        for (int j = 0; j < np && !found; j++) {
            if (used[j]) continue;
            if (eq_item(e, G[i].n, G[i].mask, Pv[j].n, Pv[j].mask, depth + 1)) used[j] = found = 1;
        }
        if (!found) {
            /* duplicates after ± expansion (0 ± 0): accept an already matched twin */
            int twin = 0;
            for (int j = 0; j < np && !twin; j++)
                if (eq_item(e, G[i].n, G[i].mask, Pv[j].n, Pv[j].mask, depth + 1)) twin = 1;
            if (!twin) return 0;
        }
    }
    return 1;
}

static int eq_ordered(E *e, int g, int p, int depth) {
    mr_arena *a = e->a;
    int kg = a->nodes[g].kid, kp = a->nodes[p].kid;
    while (kg >= 0 && kp >= 0) {
        if (!eq_item(e, kg, 0, kp, 0, depth + 1)) return 0;
        kg = NEXT(a, kg);
        kp = NEXT(a, kp);
    }
    return kg < 0 && kp < 0;
}

static int nkids(mr_arena *a, int n) {
    int c = 0;
    for (int k = a->nodes[n].kid; k >= 0; k = NEXT(a, k)) c++;
    return c;
}

static int text_of(E *e, int n, char *buf, size_t len) {
    mr_arena *a = e->a;
    mr_node *x = &a->nodes[n];
    if (x->t == N_TEXT) { snprintf(buf, len, "%s", a->text + x->num); return 1; }
    if (x->t == N_SYM) { mr_textnorm(a->vars[x->var], buf, len); return 1; }
    if (x->t == N_E) { snprintf(buf, len, "e"); return 1; }
    return 0;
}

static int eq_item(E *e, int g, unsigned gm, int p, unsigned pm, int depth) {
    mr_arena *a = e->a;
    if (depth > MR_MAX_DEPTH || e->budget < 0) return 0;
    int tg = a->nodes[g].t, tp = a->nodes[p].t;
    /* label = value */
    if (tg == N_REL && tp == N_REL && a->nodes[g].op == R_EQ && a->nodes[p].op == R_EQ) {
        int lg = a->nodes[g].kid, lp = a->nodes[p].kid;
        if (mr_is_label(a, lg, 0) && mr_is_label(a, lp, 0)) return eq_item(e, NEXT(a, lg), gm, NEXT(a, lp), pm, depth + 1);
        return eq_equation(e, g, p);
    }
    if (tg == N_REL && (a->nodes[g].op == R_EQ || a->nodes[g].op == R_IN) && mr_is_label(a, a->nodes[g].kid, 0))
        return eq_item(e, NEXT(a, a->nodes[g].kid), gm, p, pm, depth + 1);
    if (tp == N_REL && (a->nodes[p].op == R_EQ || a->nodes[p].op == R_IN) && mr_is_label(a, a->nodes[p].kid, 0))
        return eq_item(e, g, gm, NEXT(a, a->nodes[p].kid), pm, depth + 1);
    if (tg == N_REL || tp == N_REL) {
        if (tg != tp || a->nodes[g].op != a->nodes[p].op) return 0;
        return eq_ordered(e, g, p, depth);
    }
    /* text / multiple-choice letters */
    char tgb[128], tpb[128];
    if (tg == N_TEXT || tp == N_TEXT) {
        if (text_of(e, g, tgb, sizeof tgb) && text_of(e, p, tpb, sizeof tpb) && tgb[0] && !strcmp(tgb, tpb)) {
            set_method(e, "text", 0);
            return 1;
        }
        return 0;
    }
    if (tg == N_TUPLE && tp == N_TUPLE) {
        if (a->nodes[g].op != a->nodes[p].op || a->nodes[g].op2 != a->nodes[p].op2) return 0;
        return eq_ordered(e, g, p, depth);
    }
    if ((tg == N_TUPLE && tp == N_MATRIX) || (tg == N_MATRIX && tp == N_TUPLE)) {
        int m = tg == N_MATRIX ? g : p, t = tg == N_MATRIX ? p : g;
        if ((a->nodes[m].rows == 1 || a->nodes[m].cols == 1) && nkids(a, m) == nkids(a, t) && a->nodes[t].op == '(')
            return eq_ordered(e, g, p, depth);
        return 0;
    }
    if (tg == N_MATRIX && tp == N_MATRIX) {
        if (a->nodes[g].rows != a->nodes[p].rows || a->nodes[g].cols != a->nodes[p].cols) return 0;
        return eq_ordered(e, g, p, depth);
    }
    if ((tg == N_SET || tg == N_UNION || tg == N_LIST) && (tp == N_SET || tp == N_UNION || tp == N_LIST)) {
        vitem G[MR_MAX_ITEMS * 2], Pv[MR_MAX_ITEMS * 2];
        int ng = expand(e, g, G, MR_MAX_ITEMS * 2), np = expand(e, p, Pv, MR_MAX_ITEMS * 2);
        if (ng < 0 || np < 0) return 0;
        return match_unordered(e, G, ng, Pv, np, depth);
    }
    if (is_scalar(tg) && is_scalar(tp)) return eq_scalar(e, g, gm, p, pm);
    /* a one-letter answer vs text ("E" vs \text{E}) */
    if (text_of(e, g, tgb, sizeof tgb) && text_of(e, p, tpb, sizeof tpb) && !strcmp(tgb, tpb)) return 1;
    return 0;
}

/* top level: multiple answers / ± expansions / tuple vs bare list */
static int eq_top(E *e, int g, int p) {
    mr_arena *a = e->a;
    int tg = a->nodes[g].t, tp = a->nodes[p].t;
    if ((tg == N_TUPLE && tp == N_LIST && a->nodes[g].op == '(' && nkids(a, g) == nkids(a, p)) ||
        (tp == N_TUPLE && tg == N_LIST && a->nodes[p].op == '(' && nkids(a, g) == nkids(a, p)))
        if (eq_ordered(e, g, p, 0)) return 1;
    vitem G[MR_MAX_ITEMS * 2], Pv[MR_MAX_ITEMS * 2];
    /* a set at the top level is a list of answers */
    int ng = expand(e, (tg == N_LIST || tg == N_SET) ? g : g, G, MR_MAX_ITEMS * 2);
    int np = expand(e, (tp == N_LIST || tp == N_SET) ? p : p, Pv, MR_MAX_ITEMS * 2);
    if (ng < 0 || np < 0) return 0;
    if (ng == 0 && np == 0) return tg == N_SET && tp == N_SET; /* \emptyset */
    if (ng == 1 && np == 1) return eq_item(e, G[0].n, G[0].mask, Pv[0].n, Pv[0].mask, 0);
    if ((tg == N_SET) != (tp == N_SET) || tg == N_UNION || tp == N_UNION || tg == N_LIST || tp == N_LIST || ng > 1 || np > 1)
        return match_unordered(e, G, ng, Pv, np, 0);
    return 0;
}

/* ---- public --------------------------------------------------------------------------- */
void mr_opts_default(mr_opts *o) {
    memset(o, 0, sizeof *o);
    o->percent = MR_PCT_LENIENT;
    o->rel_tol = 1e-9;
    o->point_tol = 1e-7;
    o->n_points = 6;
    o->seed = 0x5eed;
    o->extract_pred = 1;
}

const char *mr_verdict_name(int v) {
    return v == MR_CORRECT ? "correct" : v == MR_WRONG ? "wrong" : "unparsable";
}

static void verdict(mr_result *r, int v, const char *method, double tol, const char *reason) {
    r->verdict = v;
    r->correct = v == MR_CORRECT;
    snprintf(r->method, sizeof r->method, "%s", method ? method : "");
    r->tolerance = tol;
    snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
}

/* gold may be a whole reference solution: take its boxed / #### answer */
static void gold_answer(const char *gold, char *out, size_t outlen) {
    mr_rule rule;
    int fmt;
    if ((strstr(gold, "\\boxed") || strstr(gold, "\\fbox") || strstr(gold, "####")) &&
        mr_extract(gold, strlen(gold), out, outlen, &rule, &fmt) == 0 && (rule == MR_RULE_BOXED || rule == MR_RULE_HASH))
        return;
    snprintf(out, outlen, "%s", gold);
}

static void copy_trunc(char *dst, size_t n, const char *src) {
    size_t l = strlen(src);
    if (l >= n) l = n - 1;
    memcpy(dst, src, l);
    dst[l] = 0;
}

static int has_digit(const char *s) {
    for (; *s; s++)
        if (isdigit((unsigned char)*s)) return 1;
    return 0;
}

/* The letter of a compacted multiple-choice gold answer: "B", "(B)", "\\text{(B)}",
 * "\\textbf{B}" -> 'B' (A..E); 0 otherwise. */
static char choice_letter(const char *c) {
    char buf[32];
    size_t o = 0;
    for (const char *p = c; *p && o + 1 < sizeof buf; p++) {
        if (*p == '\\') {
            p++;
            while (isalpha((unsigned char)*p)) p++;
            p--;
            continue;
        }
        if (*p == '{' || *p == '}' || *p == '(' || *p == ')' || *p == ' ') continue;
        buf[o++] = *p;
    }
    buf[o] = 0;
    return (o == 1 && buf[0] >= 'A' && buf[0] <= 'E') ? buf[0] : 0;
}

/* A prediction that starts with a choice label followed by the option's text or value:
 * "(B) 12", "B) 12", "\\text{(B) } 12" -> 'B'; 0 otherwise (then the normal comparison runs). */
static char leading_choice(const char *s) {
    while (*s == ' ' || *s == '*') s++;
    if (!strncmp(s, "\\text{", 6) || !strncmp(s, "\\textbf{", 8)) s = strchr(s, '{') + 1;
    int paren = *s == '(';
    if (paren) s++;
    if (!(*s >= 'A' && *s <= 'E') || s[1] != ')') return 0;
    char l = *s;
    s += 2;
    while (*s == ' ' || *s == '}' || *s == '*') s++;
    return *s ? l : 0; /* "(B)" alone is left to the usual rules */
}

int mr_check(const char *gold, const char *pred, const mr_opts *opts, mr_result *res) {
    if (!gold || !pred || !res) return srlm_set_error(SRLM_EINVAL, "mr_check: NULL argument");
    mr_opts def;
    if (!opts) {
        mr_opts_default(&def);
        opts = &def;
    }
    memset(res, 0, sizeof *res);
    char gbuf[MR_MAX_ANSWER + 1], pbuf[MR_MAX_ANSWER + 1];
    if (strlen(gold) > MR_MAX_TEXT) {
        verdict(res, MR_UNPARSABLE, "", 0, "gold too long");
        return 0;
    }
    gold_answer(gold, gbuf, sizeof gbuf);
    copy_trunc(res->gold, sizeof res->gold, gbuf);
    char cg[MR_MAX_ANSWER + 1], cp[MR_MAX_ANSWER + 1];
    if (opts->extract_pred && strlen(pred) <= 256) { /* the prediction is the gold, verbatim */
        mr_compact(gbuf, cg, sizeof cg);
        mr_compact(pred, cp, sizeof cp);
        if (cg[0] && !strcmp(cg, cp)) {
            copy_trunc(res->extracted, sizeof res->extracted, pred);
            res->rule = MR_RULE_WHOLE;
            verdict(res, MR_CORRECT, "string", 0, NULL);
            return 0;
        }
    }
    if (opts->extract_pred) {
        int rc = mr_extract(pred, strlen(pred), pbuf, sizeof pbuf, &res->rule, &res->format_ok);
        if (rc) {
            snprintf(res->extracted, sizeof res->extracted, "%s", "");
            verdict(res, MR_UNPARSABLE, "", 0, rc == SRLM_ENOMEM ? "input too long" : "no answer found");
            return 0;
        }
    } else {
        if (strlen(pred) > MR_MAX_ANSWER) {
            verdict(res, MR_UNPARSABLE, "", 0, "answer too long");
            return 0;
        }
        snprintf(pbuf, sizeof pbuf, "%s", pred);
        res->rule = MR_RULE_WHOLE;
    }
    copy_trunc(res->extracted, sizeof res->extracted, pbuf);

    /* 1. identical (verbatim, or after LaTeX normalisation) */
    if (gbuf[0] && !strcmp(gbuf, pbuf)) {
        verdict(res, MR_CORRECT, "string", 0, NULL);
        return 0;
    }
    mr_compact(gbuf, cg, sizeof cg);
    mr_compact(pbuf, cp, sizeof cp);
    if (cg[0] && !strcmp(cg, cp)) {
        verdict(res, MR_CORRECT, "string", 0, NULL);
        return 0;
    }
    /* 1b. multiple choice: gold is a choice letter, pred is "(B) 12" / "B) 12" (letter + value) */
    char gl = choice_letter(cg), pl = leading_choice(pbuf);
    if (gl && pl) {
        verdict(res, gl == pl ? MR_CORRECT : MR_WRONG, gl == pl ? "choice" : "", 0, NULL);
        return 0;
    }
    /* 2. parse both */
    mr_arena *a = malloc(sizeof *a);
    if (!a) {
        verdict(res, MR_UNPARSABLE, "", 0, "out of memory");
        return 0;
    }
    mr_arena_init(a);
    char whyg[64] = "", whyp[64] = "";
    int g = mr_parse(a, gbuf, whyg, sizeof whyg);
    int p = g >= 0 ? mr_parse(a, pbuf, whyp, sizeof whyp) : -1;
    if (g < 0 || p < 0) {
        /* plain-text answers: case-insensitive after normalisation */
        char tg[256], tp[256];
        mr_textnorm(gbuf, tg, sizeof tg);
        mr_textnorm(pbuf, tp, sizeof tp);
        if (tg[0] && !strcmp(tg, tp) && !has_digit(gbuf)) verdict(res, MR_CORRECT, "text", 0, NULL);
        else if (g < 0 && p >= 0) verdict(res, MR_WRONG, "", 0, "gold unparsable");
        else if (g < 0) {
            /* gold unparsable: parse pred alone to tell wrong from unparsable */
            mr_arena_free(a);
            mr_arena_init(a);
            if (mr_parse(a, pbuf, whyp, sizeof whyp) >= 0) verdict(res, MR_WRONG, "", 0, "gold unparsable");
            else verdict(res, MR_UNPARSABLE, "", 0, whyp);
        } else verdict(res, MR_UNPARSABLE, "", 0, whyp);
        mr_arena_free(a);
        free(a);
        return 0;
    }
    E e;
    memset(&e, 0, sizeof e);
    e.a = a;
    e.o = opts;
    e.budget = 400000; /* node visits: bounds the time of one check */
    int ok = eq_top(&e, g, p);
    if (e.budget < 0) verdict(res, MR_UNPARSABLE, "", 0, "work limit exceeded");
    else if (ok) verdict(res, MR_CORRECT, e.method[0] ? e.method : "structure", e.tol, NULL);
    else verdict(res, MR_WRONG, "", 0, NULL);
    mr_arena_free(a);
    free(a);
    return 0;
}
