/* synth.c — deterministic synthetic tasks for tiny models (see import.h, docs/datasets.md).
 *
 * arith: a start quantity and 1..max_steps operations from a fixed set of templates, with
 *   a chain-of-thought solution of one equation per step ending in GSM8K's "#### N":
 *     "Tom has 5 apples. Tom gets 3 more. Tom's apples double. How many apples does Tom
 *      have now?"  ->  "5+3=8. 8*2=16.\n#### 16"
 *   Numbers stay in [0, 3*max_number]; multiplications use factors 2..3.
 * code: small function-writing problems from a fixed set of templates with 3 asserts and a
 *   reference solution (code_format mbpp), e.g. "Write a function add_3(x) that returns x
 *   plus 3."
 * Every record is a function of (seed, split, index) only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "util.h"

static const char *const NAMES[] = {"Tom", "Ann", "Bob", "Sue", "Max", "Lia", "Sam", "Eva"};
static const char *const ITEMS[] = {"apples", "books", "coins", "pens", "cards", "eggs", "cups", "stones"};

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf ? b->buf + b->len : NULL, b->buf ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->buf && (size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        b->cap = (b->cap + (size_t)n + 64) * 2;
        b->buf = srlm_xrealloc(b->buf, b->cap);
        if (b->len == 0) b->buf[0] = 0;
    }
}

static void rng_for(srlm_rng *r, uint64_t seed, const char *split, size_t i, uint64_t salt) {
    /* FNV-1a of the split name mixed with seed, index and kind */
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = split; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    srlm_rng_seed(r, seed ^ h ^ ((uint64_t)i * 0x9E3779B97F4A7C15ULL) ^ (salt << 56));
}

static long rnd(srlm_rng *r, long lo, long hi) { return lo + (long)srlm_rng_below(r, (uint64_t)(hi - lo + 1)); }

static Dataset__Record *synth_arith(const ds_synth_opts *o, size_t idx) {
    srlm_rng r;
    rng_for(&r, o->seed, o->split, idx, 1);
    int maxn = o->max_number > 0 ? o->max_number : 20, maxs = o->max_steps > 0 ? o->max_steps : 3;
    const char *who = NAMES[srlm_rng_below(&r, 8)], *what = ITEMS[srlm_rng_below(&r, 8)];
    long v = rnd(&r, 1, maxn);
    int steps = (int)rnd(&r, 1, maxs);
    sbuf p = {0}, s = {0};
    sb_printf(&p, "%s has %ld %s.", who, v, what);
    long cap = 3L * maxn;
    for (int k = 0; k < steps; k++) {
        int op = (int)srlm_rng_below(&r, 3);
        if (op == 2 && v * 2 > cap) op = 1;
        if (op == 0 && v + 1 > cap) op = 1;
        if (op == 1 && v == 0) op = 0;
        if (op == 0) {
            long b = rnd(&r, 1, maxn < cap - v ? maxn : cap - v);
            sb_printf(&p, " %s gets %ld more.", who, b);
            sb_printf(&s, "%s%ld+%ld=%ld.", k ? " " : "", v, b, v + b);
            v += b;
        } else if (op == 1) {
            long b = rnd(&r, 1, v < maxn ? v : maxn);
            sb_printf(&p, " %s gives away %ld.", who, b);
            sb_printf(&s, "%s%ld-%ld=%ld.", k ? " " : "", v, b, v - b);
            v -= b;
        } else {
            long f = (v * 3 <= cap && srlm_rng_below(&r, 2)) ? 3 : 2;
            sb_printf(&p, " %s's %s %s.", who, what, f == 2 ? "double" : "triple");
            sb_printf(&s, "%s%ld*%ld=%ld.", k ? " " : "", v, f, v * f);
            v *= f;
        }
    }
    sb_printf(&p, " How many %s does %s have now?", what, who);
    sb_printf(&s, "\n#### %ld", v);
    Dataset__Record *rec = ds_record_new();
    char id[256], ans[32], meta[96];
    snprintf(id, sizeof id, "synth-arith/%s/%zu", o->split, idx);
    snprintf(ans, sizeof ans, "%ld", v);
    snprintf(meta, sizeof meta, "{\"steps\":%d}", steps);
    ds_set_str(&rec->id, id);
    ds_set_str(&rec->source, "synth-arith");
    ds_set_str(&rec->split, o->split);
    ds_set_str(&rec->kind, "math");
    rec->prompt = p.buf;
    ds_set_str(&rec->answer, ans);
    ds_set_str(&rec->solution, s.buf);
    rec->solution_clean = s.buf;
    rec->metadata_json = srlm_xstrdup(meta);
    return rec;
}

/* Code templates: K is a small integer parameter; x/a/b/s/xs the arguments. */
typedef struct {
    const char *name;  /* printf with K */
    const char *args;  /* parameter list */
    const char *text;  /* "returns ..." (printf with K) */
    const char *body;  /* return expression (printf with K) */
    int input;         /* 0 int, 1 two ints, 2 list of ints, 3 string */
} code_tpl;

static const code_tpl TPL[] = {
    {"add_%d", "x", "returns x plus %d", "x + %d", 0},
    {"sub_%d", "x", "returns x minus %d", "x - %d", 0},
    {"mul_%d", "x", "returns x times %d", "x * %d", 0},
    {"is_greater_than_%d", "x", "returns True if x is greater than %d, else False", "x > %d", 0},
    {"mod_%d", "x", "returns the remainder of x divided by %d", "x %% %d", 0},
    {"square_plus_%d", "x", "returns x squared plus %d", "x * x + %d", 0},
    {"sum_plus_%d", "a, b", "returns a plus b plus %d", "a + b + %d", 1},
    {"max_plus_%d", "a, b", "returns the larger of a and b, plus %d", "max(a, b) + %d", 1},
    {"count_%d", "xs", "returns how many times %d occurs in the list xs", "xs.count(%d)", 2},
    {"sum_list_plus_%d", "xs", "returns the sum of the list xs plus %d", "sum(xs) + %d", 2},
    {"repeat_%d", "s", "returns the string s repeated %d times", "s * %d", 3},
    {"first_%d_chars", "s", "returns the first %d characters of the string s", "s[:%d]", 3},
};
#define N_TPL (sizeof TPL / sizeof TPL[0])

/* Python value of the template applied to the argument (as text). */
static void eval_tpl(int t, int K, long a, long b, const long *xs, int nx, const char *s, char *out, size_t n) {
    long v = 0, c = 0;
    switch (t) {
    case 0: v = a + K; break;
    case 1: v = a - K; break;
    case 2: v = a * K; break;
    case 3: snprintf(out, n, "%s", a > K ? "True" : "False"); return;
    case 4: v = ((a % K) + K) % K; break;
    case 5: v = a * a + K; break;
    case 6: v = a + b + K; break;
    case 7: v = (a > b ? a : b) + K; break;
    case 8: for (int i = 0; i < nx; i++) c += xs[i] == K; v = c; break;
    case 9: for (int i = 0; i < nx; i++) c += xs[i]; v = c + K; break;
    case 10: {
        size_t l = 0;
        out[l++] = '\'';
        for (int k = 0; k < K; k++)
            for (const char *p = s; *p && l + 3 < n; p++) out[l++] = *p;
        out[l++] = '\'';
        out[l] = 0;
        return;
    }
    case 11: snprintf(out, n, "'%.*s'", K, s); return;
    }
    snprintf(out, n, "%ld", v);
}

static Dataset__Record *synth_code(const ds_synth_opts *o, size_t idx) {
    srlm_rng r;
    rng_for(&r, o->seed, o->split, idx, 2);
    int t = (int)srlm_rng_below(&r, N_TPL);
    /* K: 2..19 (176 distinct functions in all, so a held-out split can exclude its own);
     * count_K needs K among the list values 0..9, the string templates stay short */
    int K = (int)rnd(&r, 2, t == 8 ? 9 : t >= 10 ? 4 : 19);
    const code_tpl *T = &TPL[t];
    char name[64], text[160], body[96];
    snprintf(name, sizeof name, T->name, K);
    snprintf(text, sizeof text, T->text, K);
    snprintf(body, sizeof body, T->body, K);
    sbuf prompt = {0}, sol = {0};
    sb_printf(&prompt, "Write a function %s(%s) that %s.", name, T->args, text);
    sb_printf(&sol, "def %s(%s):\n    return %s\n", name, T->args, body);
    Dataset__Record *rec = ds_record_new();
    static const char *const WORDS[] = {"cat", "sun", "hello", "ab", "tree", "xyz", "moon", "data"};
    for (int k = 0; k < 3; k++) {
        char call[160], val[160], test[400];
        long a = rnd(&r, 0, 20), b = rnd(&r, 0, 20), xs[5];
        int nx = (int)rnd(&r, 1, 5);
        for (int i = 0; i < nx; i++) xs[i] = rnd(&r, 0, 9);
        if (t == 8 && nx > 1) xs[0] = K; /* make the count non-trivial */
        const char *s = WORDS[srlm_rng_below(&r, 8)];
        if (T->input == 0) snprintf(call, sizeof call, "%s(%ld)", name, a);
        else if (T->input == 1) snprintf(call, sizeof call, "%s(%ld, %ld)", name, a, b);
        else if (T->input == 2) {
            int l = snprintf(call, sizeof call, "%s([", name);
            for (int i = 0; i < nx; i++) l += snprintf(call + l, sizeof call - (size_t)l, "%s%ld", i ? ", " : "", xs[i]);
            snprintf(call + l, sizeof call - (size_t)l, "])");
        } else
            snprintf(call, sizeof call, "%s('%s')", name, s);
        eval_tpl(t, K, a, b, xs, nx, s, val, sizeof val);
        snprintf(test, sizeof test, "assert %s == %s", call, val);
        ds_push_str(&rec->test_list, &rec->n_test_list, test);
    }
    char id[256], meta[96];
    snprintf(id, sizeof id, "synth-code/%s/%zu", o->split, idx);
    snprintf(meta, sizeof meta, "{\"template\":%d,\"k\":%d}", t, K);
    ds_set_str(&rec->id, id);
    ds_set_str(&rec->source, "synth-code");
    ds_set_str(&rec->split, o->split);
    ds_set_str(&rec->kind, "code");
    rec->prompt = prompt.buf;
    rec->solution = sol.buf;
    ds_set_str(&rec->entry_point, name);
    ds_set_str(&rec->code_format, "mbpp");
    rec->metadata_json = srlm_xstrdup(meta);
    return rec;
}

static int check_opts(const ds_synth_opts *o) {
    if (!o->kind || (strcmp(o->kind, "arith") && strcmp(o->kind, "code")))
        return srlm_set_error(SRLM_EINVAL, "--kind must be arith or code");
    if (!o->split || !*o->split || strchr(o->split, '/') || strchr(o->split, ','))
        return srlm_set_error(SRLM_EINVAL, "bad split name '%s'", o->split ? o->split : "");
    if (o->n < 1 || o->n > 10000000) return srlm_set_error(SRLM_EINVAL, "--n must be 1..10000000");
    if (o->max_steps < 0 || o->max_steps > 20 || o->max_number < 0 || o->max_number > 1000000)
        return srlm_set_error(SRLM_EINVAL, "--max-steps must be 1..20 and --max-number 1..1000000");
    if (o->exclude_split && !strcmp(o->exclude_split, o->split))
        return srlm_set_error(SRLM_EINVAL, "--exclude-split names the split being generated ('%s')", o->split);
    return 0;
}

/* n records from indices 0, 1, ... skipping prompts in the sorted set excl[n_excl]. */
static int synth_excluding(const ds_synth_opts *o, char *const *excl, size_t n_excl, ds_recvec *out, size_t *skipped) {
    int arith = !strcmp(o->kind, "arith");
    size_t limit = o->n * 100 + 1000;
    *skipped = 0;
    for (size_t i = 0; out->n < o->n; i++) {
        if (i >= limit)
            return srlm_set_error(SRLM_EINVAL, "synth-%s/%s: only %zu of %zu problems are not in split '%s' "
                                  "(tried %zu; the problem space is too small: raise --max-number or --max-steps)",
                                  o->kind, o->split, out->n, o->n, o->exclude_split, limit);
        Dataset__Record *r = arith ? synth_arith(o, i) : synth_code(o, i);
        const char *key = r->prompt;
        if (n_excl && bsearch(&key, excl, n_excl, sizeof *excl, srlm_cmp_strp)) {
            ds_record_free(r);
            ++*skipped;
            continue;
        }
        ds_recvec_push(out, r);
    }
    return 0;
}

int ds_synth(const ds_synth_opts *o, ds_recvec *out) {
    int rc = check_opts(o);
    if (!rc && o->exclude_split) /* the excluded prompts live in a store */
        rc = srlm_set_error(SRLM_EINVAL, "exclude_split needs the store: use ds_synth_import");
    size_t skipped;
    return rc ? rc : synth_excluding(o, NULL, 0, out, &skipped);
}

typedef struct {
    char **v;
    size_t n, cap;
} strset;

static int collect_prompt(void *ctx, const Dataset__Record *r) {
    strset *s = ctx;
    if (!r->prompt) return 0;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->v = srlm_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = srlm_xstrdup(r->prompt);
    return 0;
}

int ds_synth_import(ds_store *s, const ds_synth_opts *o, size_t *n_excluded) {
    int rc = check_opts(o);
    if (rc) return rc;
    const char *src = !strcmp(o->kind, "arith") ? "synth-arith" : "synth-code";
    strset ex = {0};
    if (o->exclude_split && (rc = ds_foreach(s, src, o->exclude_split, collect_prompt, &ex))) return rc;
    if (o->exclude_split && ex.n == 0)
        return srlm_set_error(SRLM_ENOTFOUND, "--exclude-split %s: the store has no %s records in split '%s' "
                              "(generate the held-out split first)", o->exclude_split, src, o->exclude_split);
    if (ex.n) qsort(ex.v, ex.n, sizeof *ex.v, srlm_cmp_strp);
    ds_recvec rv = {0};
    size_t skipped = 0;
    rc = synth_excluding(o, ex.v, ex.n, &rv, &skipped);
    for (size_t i = 0; i < ex.n; i++) free(ex.v[i]);
    free(ex.v);
    if (rc) {
        ds_recvec_free(&rv);
        return rc;
    }
    char extra[512], excl[160] = "";
    if (o->exclude_split)
        snprintf(excl, sizeof excl, ",\"exclude_split\":\"%.100s\",\"excluded\":%zu", o->exclude_split, skipped);
    snprintf(extra, sizeof extra, "{\"synth\":{\"kind\":\"%s\",\"n\":%zu,\"seed\":%llu,\"max_steps\":%d,\"max_number\":%d%s}}",
             o->kind, o->n, (unsigned long long)o->seed, o->max_steps > 0 ? o->max_steps : 3,
             o->max_number > 0 ? o->max_number : 20, excl);
    ds_import_meta meta = {.format = "synth", .n_files = 0, .extra_json = extra};
    ds_group g = {src, o->split, rv.v, rv.n, &meta};
    rc = ds_replace(s, &g, 1);
    ds_recvec_free(&rv);
    if (!rc && n_excluded) *n_excluded = skipped;
    return rc;
}
