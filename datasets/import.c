/* import.c — file importers of the dataset store (see import.h, docs/datasets.md). */
#include "import.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_IMPORT_BYTES ((size_t)2 << 30)

void ds_recvec_push(ds_recvec *rv, Dataset__Record *r) {
    if (rv->n == rv->cap) {
        rv->cap = rv->cap ? rv->cap * 2 : 256;
        rv->v = srlm_xrealloc(rv->v, rv->cap * sizeof *rv->v);
    }
    rv->v[rv->n++] = r;
}

void ds_recvec_free(ds_recvec *rv) {
    for (size_t i = 0; i < rv->n; i++) ds_record_free(rv->v[i]);
    free(rv->v);
    rv->v = NULL;
    rv->n = rv->cap = 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

char *ds_strip_calc(const char *s) {
    size_t n = strlen(s);
    char *o = srlm_xmalloc(n + 1), *w = o;
    for (const char *p = s; *p;) {
        if (p[0] == '<' && p[1] == '<') {
            const char *e = strstr(p + 2, ">>");
            if (e) { p = e + 2; continue; }
        }
        *w++ = *p++;
    }
    *w = 0;
    return o;
}

/* Is s (length n) a decimal number: [+-]digits[.digits][e[+-]digits] or a fraction a/b? */
static int is_number(const char *s, size_t n) {
    if (!n) return 0;
    char buf[128];
    if (n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end || errno == ERANGE || !isfinite(v)) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789+-.eE", buf[i])) return 0; /* no inf/nan/hex */
    return 1;
}

int ds_gsm8k_answer(const char *answer_text, char **out) {
    *out = NULL;
    const char *h = NULL;
    for (const char *p = strstr(answer_text, "####"); p; p = strstr(p + 4, "####")) h = p;
    if (!h) return srlm_set_error(SRLM_EFORMAT, "no '#### N' final answer");
    h += 4;
    size_t n = strlen(h);
    char *a = srlm_xmalloc(n + 1), *w = a;
    for (const char *p = h; *p; p++)
        if (*p != ',' && !isspace((unsigned char)*p)) *w++ = *p;
    *w = 0;
    if (!is_number(a, (size_t)(w - a))) {
        int rc = srlm_set_error(SRLM_EFORMAT, "final answer '%.40s' after '####' is not a number", a);
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

char *ds_last_boxed(const char *s) {
    const char *last = NULL;
    size_t skip = 0;
    for (const char *p = s; (p = strstr(p, "\\boxed")); p += 6) { last = p; skip = 6; }
    for (const char *p = s; (p = strstr(p, "\\fbox")); p += 5)
        if (p > last) { last = p; skip = 5; }
    if (!last) return NULL;
    const char *p = last + skip;
    if (*p == ' ') { /* "\boxed 5" */
        p++;
        size_t l = strcspn(p, "$ \n");
        if (!l) return NULL;
        char *o = srlm_xmalloc(l + 1);
        memcpy(o, p, l);
        o[l] = 0;
        return o;
    }
    if (*p != '{') return NULL;
    int depth = 0;
    const char *start = p + 1;
    for (; *p; p++) {
        if (*p == '\\' && p[1]) { p++; continue; } /* \{ \} are not grouping braces */
        if (*p == '{') depth++;
        else if (*p == '}' && --depth == 0) {
            size_t l = (size_t)(p - start);
            char *o = srlm_xmalloc(l + 1);
            memcpy(o, start, l);
            o[l] = 0;
            return o;
        }
    }
    return NULL;
}

/* ---- per-format converters ------------------------------------------------------------ */

typedef struct {
    const ds_import_opts *opts;
    const char *path;
    long line; /* 1-based line (JSONL) or element index + 1 (JSON array) */
    int array; /* 1: line is an element index */
    const char *source;
    char **map_to; /* jsonl: target fields */
    char **map_from;
    int n_map;
} pctx;

static int perr(const pctx *c, const char *fmt, const char *a, const char *b) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    if (c->array) return srlm_set_error(SRLM_EFORMAT, "%s: element %ld: %s", c->path, c->line, msg);
    return srlm_set_error(SRLM_EFORMAT, "%s:%ld: %s", c->path, c->line, msg);
}

/* Required string field. */
static int req_str(const pctx *c, json_t *o, const char *k, const char **out) {
    json_t *v = json_object_get(o, k);
    if (!v) return perr(c, "missing field '%s'%s", k, "");
    if (!json_is_string(v)) return perr(c, "field '%s' must be a string%s", k, "");
    *out = json_string_value(v);
    return 0;
}

/* Optional string field: absent/null -> NULL. */
static int opt_str(const pctx *c, json_t *o, const char *k, const char **out) {
    json_t *v = json_object_get(o, k);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return perr(c, "field '%s' must be a string%s", k, "");
    *out = json_string_value(v);
    return 0;
}

static int str_array(const pctx *c, json_t *o, const char *k, int required, char ***arr, size_t *n) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return required ? perr(c, "missing field '%s'%s", k, "") : 0;
    if (!json_is_array(v)) return perr(c, "field '%s' must be an array of strings%s", k, "");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) return perr(c, "field '%s' must be an array of strings%s", k, "");
        ds_push_str(arr, n, json_string_value(e));
    }
    return 0;
}

static void set_id(Dataset__Record *r, const char *source, const char *split, const char *n) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s/%s", source, split, n);
    ds_set_str(&r->id, buf);
    ds_set_str(&r->source, source);
    ds_set_str(&r->split, split);
}

static void set_id_num(Dataset__Record *r, const char *source, const char *split, uint64_t n) {
    char b[32];
    snprintf(b, sizeof b, "%llu", (unsigned long long)n);
    set_id(r, source, split, b);
}

static int conv_gsm8k(const pctx *c, json_t *o, uint32_t ord, Dataset__Record *r) {
    const char *q = NULL, *a = NULL;
    int rc;
    if ((rc = req_str(c, o, "question", &q)) || (rc = req_str(c, o, "answer", &a))) return rc;
    char *fin = NULL;
    if (ds_gsm8k_answer(a, &fin)) return perr(c, "field 'answer': %s%s", srlm_last_error(), "");
    set_id_num(r, c->source, c->opts->split, ord);
    ds_set_str(&r->kind, "math");
    ds_set_str(&r->prompt, q);
    r->answer = fin;
    ds_set_str(&r->solution, a);
    r->solution_clean = ds_strip_calc(a);
    return 0;
}

static int conv_math(const pctx *c, json_t *o, uint32_t ord, Dataset__Record *r, int is500) {
    const char *p = NULL, *sol = NULL, *ans = NULL, *subject = NULL, *uid = NULL;
    int rc;
    if ((rc = req_str(c, o, "problem", &p)) || (rc = req_str(c, o, "solution", &sol)) ||
        (rc = opt_str(c, o, "answer", &ans)) || (rc = opt_str(c, o, is500 ? "subject" : "type", &subject)) ||
        (rc = opt_str(c, o, "unique_id", &uid)))
        return rc;
    if (!subject && (rc = opt_str(c, o, is500 ? "type" : "subject", &subject))) return rc;
    char *box = ans ? srlm_xstrdup(ans) : ds_last_boxed(sol);
    if (!box) return perr(c, "no 'answer' field and no \\boxed{...} in 'solution'%s%s", "", "");
    /* an empty \boxed{} is imported as an empty answer: the real MATH train set has one
     * (train/number_theory/7115.json) and its record count is part of the contract */
    json_t *lv = json_object_get(o, "level");
    json_t *meta = json_object();
    if (subject) json_object_set_new(meta, "subject", json_string(subject));
    if (json_is_string(lv) || json_is_integer(lv)) json_object_set(meta, "level", lv);
    else if (lv && !json_is_null(lv)) { json_decref(meta); free(box); return perr(c, "field 'level' must be a string or integer%s%s", "", ""); }
    if (uid) json_object_set_new(meta, "unique_id", json_string(uid));
    set_id_num(r, c->source, c->opts->split, ord);
    ds_set_str(&r->kind, "math");
    ds_set_str(&r->prompt, p);
    r->answer = box;
    ds_set_str(&r->solution, sol);
    r->metadata_json = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(meta);
    return 0;
}

static int conv_humaneval(const pctx *c, json_t *o, uint32_t ord, Dataset__Record *r) {
    const char *tid = NULL, *p = NULL, *ep = NULL, *sol = NULL, *test = NULL;
    int rc;
    if ((rc = req_str(c, o, "task_id", &tid)) || (rc = req_str(c, o, "prompt", &p)) ||
        (rc = req_str(c, o, "entry_point", &ep)) || (rc = req_str(c, o, "test", &test)) ||
        (rc = opt_str(c, o, "canonical_solution", &sol)))
        return rc;
    set_id_num(r, c->source, c->opts->split, ord);
    ds_set_str(&r->kind, "code");
    ds_set_str(&r->prompt, p);
    ds_set_str(&r->entry_point, ep);
    ds_set_str(&r->tests, test);
    ds_set_str(&r->solution, sol);
    ds_set_str(&r->code_format, "humaneval");
    json_t *meta = json_pack("{s:s}", "task_id", tid);
    r->metadata_json = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    return 0;
}

/* The function under test: the first `def NAME(` of code whose NAME occurs in the first
 * test; else the first def. */
static char *mbpp_entry(const char *code, const char *test0) {
    char *first = NULL;
    for (const char *p = code; (p = strstr(p, "def ")); p += 4) {
        if (p != code && !isspace((unsigned char)p[-1])) continue;
        const char *q = p + 4;
        while (*q == ' ') q++;
        size_t l = 0;
        while (isalnum((unsigned char)q[l]) || q[l] == '_') l++;
        if (!l || q[l] != '(') continue;
        char *name = srlm_xmalloc(l + 1);
        memcpy(name, q, l);
        name[l] = 0;
        if (test0) {
            const char *t = test0;
            while ((t = strstr(t, name))) {
                int before = t == test0 || !(isalnum((unsigned char)t[-1]) || t[-1] == '_');
                if (before && t[l] == '(') { free(first); return name; }
                t += l;
            }
        }
        if (!first) first = name;
        else free(name);
    }
    return first;
}

static const char *mbpp_split(const pctx *c, json_int_t task_id) {
    if (c->opts->split) return c->opts->split;
    if (task_id <= 10) return "prompt";
    if (task_id <= 510) return "test";
    if (task_id <= 600) return "validation";
    return "train";
}

static int conv_mbpp(const pctx *c, json_t *o, Dataset__Record *r, int sanitized) {
    const char *text = NULL, *code = NULL;
    int rc;
    json_t *tid = json_object_get(o, "task_id");
    if (!tid) return perr(c, "missing field 'task_id'%s%s", "", "");
    if (!json_is_integer(tid) || json_integer_value(tid) < 0) return perr(c, "field 'task_id' must be a non-negative integer%s%s", "", "");
    json_int_t task = json_integer_value(tid);
    if ((rc = req_str(c, o, sanitized ? "prompt" : "text", &text)) || (rc = req_str(c, o, "code", &code))) return rc;
    if ((rc = str_array(c, o, "test_list", 1, &r->test_list, &r->n_test_list))) return rc;
    if (!r->n_test_list) return perr(c, "field 'test_list' is empty%s%s", "", "");
    if (sanitized) {
        char **imp = NULL;
        size_t ni = 0;
        if ((rc = str_array(c, o, "test_imports", 0, &imp, &ni))) {
            for (size_t i = 0; i < ni; i++) free(imp[i]);
            free(imp);
            return rc;
        }
        if (ni) {
            size_t len = 1;
            for (size_t i = 0; i < ni; i++) len += strlen(imp[i]) + 1;
            r->setup_code = srlm_xmalloc(len);
            r->setup_code[0] = 0;
            for (size_t i = 0; i < ni; i++) {
                strcat(r->setup_code, imp[i]);
                strcat(r->setup_code, "\n");
            }
        }
        for (size_t i = 0; i < ni; i++) free(imp[i]);
        free(imp);
    } else {
        const char *setup;
        if ((rc = opt_str(c, o, "test_setup_code", &setup))) return rc;
        if (setup && *setup) ds_set_str(&r->setup_code, setup);
    }
    json_t *meta = json_pack("{s:I}", "task_id", (json_int_t)task);
    json_t *ch = json_object_get(o, "challenge_test_list");
    if (json_is_array(ch) && json_array_size(ch)) json_object_set(meta, "challenge_test_list", ch);
    json_t *sf = json_object_get(o, "source_file");
    if (json_is_string(sf)) json_object_set(meta, "source_file", sf);
    r->metadata_json = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(meta);
    set_id_num(r, c->source, mbpp_split(c, task), (uint64_t)task);
    ds_set_str(&r->kind, "code");
    ds_set_str(&r->prompt, text);
    ds_set_str(&r->solution, code);
    r->entry_point = mbpp_entry(code, r->test_list[0]);
    ds_set_str(&r->code_format, "mbpp");
    return 0;
}

/* ---- jsonl with a field mapping ----------------------------------------------------- */

static const char *const JSONL_TARGETS[] = {"id", "kind", "prompt", "answer", "solution", "solution_clean", "tests",
                                            "test_list", "setup_code", "entry_point", "code_format", "messages",
                                            "completion", "metadata"};
#define N_TARGETS (sizeof JSONL_TARGETS / sizeof JSONL_TARGETS[0])

static int parse_map(const char *map, char ***to, char ***from, int *n) {
    *to = *from = NULL;
    *n = 0;
    if (!map || !*map) return 0;
    char *m = srlm_xstrdup(map), *save = NULL;
    for (char *tok = strtok_r(m, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok || !eq[1]) {
            free(m);
            return srlm_set_error(SRLM_EINVAL, "--map: '%s' is not FIELD=KEY", tok);
        }
        *eq = 0;
        int ok = 0;
        for (size_t i = 0; i < N_TARGETS; i++) ok |= !strcmp(tok, JSONL_TARGETS[i]);
        if (!ok) {
            int rc = srlm_set_error(SRLM_EINVAL, "--map: unknown record field '%s' (see docs/records.md)", tok);
            free(m);
            return rc;
        }
        *to = srlm_xrealloc(*to, (*n + 1) * sizeof **to);
        *from = srlm_xrealloc(*from, (*n + 1) * sizeof **from);
        (*to)[*n] = srlm_xstrdup(tok);
        (*from)[*n] = srlm_xstrdup(eq + 1);
        (*n)++;
    }
    free(m);
    return 0;
}

static const char *map_key(const pctx *c, const char *target) {
    for (int i = 0; i < c->n_map; i++)
        if (!strcmp(c->map_to[i], target)) return c->map_from[i];
    return target;
}

static int conv_jsonl(const pctx *c, json_t *o, uint32_t ord, Dataset__Record *r) {
    int rc;
    const char *split = c->opts->split;
    /* id */
    json_t *idv = json_object_get(o, map_key(c, "id"));
    if (idv && !json_is_null(idv)) {
        char nb[64];
        const char *ids;
        if (json_is_string(idv)) ids = json_string_value(idv);
        else if (json_is_integer(idv)) { snprintf(nb, sizeof nb, "%lld", (long long)json_integer_value(idv)); ids = nb; }
        else return perr(c, "field '%s' (id) must be a string or integer%s", map_key(c, "id"), "");
        char pre[600];
        snprintf(pre, sizeof pre, "%s/%s/", c->source, split);
        if (!*ids) return perr(c, "field '%s' (id) is empty%s", map_key(c, "id"), "");
        if (!strncmp(ids, pre, strlen(pre))) {
            ds_set_str(&r->id, ids);
            ds_set_str(&r->source, c->source);
            ds_set_str(&r->split, split);
        } else {
            set_id(r, c->source, split, ids);
        }
    } else {
        set_id_num(r, c->source, split, ord);
    }
    static const char *const STRS[] = {"prompt", "solution", "solution_clean", "tests", "setup_code", "entry_point",
                                       "code_format", "completion", "kind"};
    char **dst[] = {&r->prompt, &r->solution, &r->solution_clean, &r->tests, &r->setup_code, &r->entry_point,
                    &r->code_format, &r->completion, &r->kind};
    for (size_t i = 0; i < sizeof STRS / sizeof STRS[0]; i++) {
        const char *v;
        const char *k = map_key(c, STRS[i]);
        if ((rc = opt_str(c, o, k, &v))) return rc;
        if (v) ds_set_str(dst[i], v);
    }
    /* answer: string or number */
    json_t *av = json_object_get(o, map_key(c, "answer"));
    if (json_is_string(av)) ds_set_str(&r->answer, json_string_value(av));
    else if (json_is_integer(av)) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)json_integer_value(av));
        ds_set_str(&r->answer, b);
    } else if (json_is_real(av)) {
        char b[64];
        snprintf(b, sizeof b, "%.17g", json_real_value(av));
        ds_set_str(&r->answer, b);
    } else if (av && !json_is_null(av))
        return perr(c, "field '%s' (answer) must be a string or number%s", map_key(c, "answer"), "");
    if ((rc = str_array(c, o, map_key(c, "test_list"), 0, &r->test_list, &r->n_test_list))) return rc;
    json_t *mv = json_object_get(o, map_key(c, "messages"));
    if (mv && !json_is_null(mv)) {
        if (!json_is_array(mv)) return perr(c, "field '%s' (messages) must be an array of {role, content}", map_key(c, "messages"), "");
        size_t i;
        json_t *e;
        json_array_foreach(mv, i, e) {
            json_t *ro = json_object_get(e, "role"), *co = json_object_get(e, "content");
            if (!json_is_string(ro) || !json_is_string(co))
                return perr(c, "field '%s' (messages): each element needs string 'role' and 'content'%s",
                            map_key(c, "messages"), "");
            const char *role = json_string_value(ro);
            if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool"))
                return perr(c, "field 'messages': role '%s' is not system, user, assistant or tool%s", role, "");
            ds_push_message(r, role, json_string_value(co));
        }
    }
    /* metadata: the mapped object plus every input key no field took */
    json_t *meta = json_object();
    json_t *md = json_object_get(o, map_key(c, "metadata"));
    if (md && !json_is_null(md)) {
        if (!json_is_object(md)) { json_decref(meta); return perr(c, "field '%s' (metadata) must be an object%s", map_key(c, "metadata"), ""); }
        json_object_update(meta, md);
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int used = !strcmp(k, "source") || !strcmp(k, "split");
        for (size_t i = 0; i < N_TARGETS && !used; i++) used = !strcmp(k, map_key(c, JSONL_TARGETS[i]));
        if (!used) json_object_set(meta, k, v);
    }
    if (json_object_size(meta)) r->metadata_json = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(meta);
    if (!r->prompt && !r->n_messages)
        return perr(c, "missing field '%s' (prompt) or '%s' (messages)", map_key(c, "prompt"), map_key(c, "messages"));
    if (!r->kind) {
        if (c->opts->kind) ds_set_str(&r->kind, c->opts->kind);
        else if (r->n_messages) ds_set_str(&r->kind, "chat");
        else if (r->tests || r->n_test_list) ds_set_str(&r->kind, "code");
        else if (r->answer) ds_set_str(&r->kind, "math");
        else ds_set_str(&r->kind, "chat");
    }
    if (strcmp(r->kind, "math") && strcmp(r->kind, "code") && strcmp(r->kind, "chat"))
        return perr(c, "kind '%s' is not math, code or chat%s", r->kind, "");
    return 0;
}

/* ---- files -------------------------------------------------------------------------- */

/* Two records of one file with the same id (a repeated "id" key in JSONL, a repeated MBPP
 * task_id): an error naming both lines, before the store would refuse the write. */
static int check_dup_id(const pctx *c, json_t *seen, const char *id) {
    if (!id) return 0;
    json_t *prev = json_object_get(seen, id);
    if (prev) {
        char first[48];
        snprintf(first, sizeof first, "%s %lld", c->array ? "element" : "line", (long long)json_integer_value(prev));
        return perr(c, "duplicate id '%s' (first on %s)", id, first);
    }
    json_object_set_new(seen, id, json_integer(c->line));
    return 0;
}

static int convert(const pctx *c, json_t *o, uint32_t ord, Dataset__Record *r) {
    const char *f = c->opts->format;
    if (!json_is_object(o)) return perr(c, "expected a JSON object%s%s", "", "");
    if (!strcmp(f, "gsm8k")) return conv_gsm8k(c, o, ord, r);
    if (!strcmp(f, "math")) return conv_math(c, o, ord, r, 0);
    if (!strcmp(f, "math500")) return conv_math(c, o, ord, r, 1);
    if (!strcmp(f, "humaneval")) return conv_humaneval(c, o, ord, r);
    if (!strcmp(f, "mbpp")) return conv_mbpp(c, o, r, 0);
    if (!strcmp(f, "mbpp-sanitized")) return conv_mbpp(c, o, r, 1);
    return conv_jsonl(c, o, ord, r);
}

static int check_opts(const ds_import_opts *o) {
    static const char *const F[] = {"gsm8k", "math", "math500", "humaneval", "mbpp", "mbpp-sanitized", "jsonl"};
    int ok = 0;
    for (size_t i = 0; i < sizeof F / sizeof F[0]; i++) ok |= o->format && !strcmp(o->format, F[i]);
    if (!ok)
        return srlm_set_error(SRLM_EINVAL, "unknown format '%s' (gsm8k|math|math500|humaneval|mbpp|mbpp-sanitized|jsonl)",
                              o->format ? o->format : "");
    int mbpp = !strncmp(o->format, "mbpp", 4);
    if (!mbpp && (!o->split || !*o->split)) return srlm_set_error(SRLM_EINVAL, "--split is required for format %s", o->format);
    if (o->split && (!*o->split || strchr(o->split, '/') || strchr(o->split, ',')))
        return srlm_set_error(SRLM_EINVAL, "bad split name '%s'", o->split);
    if (strcmp(o->format, "jsonl") && (o->map || o->source))
        return srlm_set_error(SRLM_EINVAL, "--map and --source apply to --format jsonl only");
    if (o->kind && strcmp(o->kind, "math") && strcmp(o->kind, "code") && strcmp(o->kind, "chat"))
        return srlm_set_error(SRLM_EINVAL, "--kind must be math, code or chat");
    return 0;
}

int ds_parse_file(const ds_import_opts *opts, const char *path, ds_recvec *out, uint32_t *ordinal) {
    int rc = check_opts(opts);
    if (rc) return rc;
    char *buf;
    size_t len;
    rc = srlm_read_file(path, &buf, &len, MAX_IMPORT_BYTES);
    if (rc) return rc; /* the message names the file */
    pctx c = {.opts = opts, .path = path};
    c.source = !strcmp(opts->format, "jsonl") ? (opts->source ? opts->source : "jsonl") : opts->format;
    if (!*c.source || strchr(c.source, '/') || strchr(c.source, ',')) {
        free(buf);
        return srlm_set_error(SRLM_EINVAL, "bad source name '%s'", c.source);
    }
    if ((rc = parse_map(opts->map, &c.map_to, &c.map_from, &c.n_map))) { free(buf); return rc; }
    size_t n0 = out->n;
    uint32_t ord = *ordinal;
    json_t *seen = json_object(); /* id -> line of its first record in this file */
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) { /* UTF-8 byte order mark */
        memmove(buf, buf + 3, len - 3 + 1);
        len -= 3;
    }
    if (!strcmp(opts->format, "mbpp-sanitized") && len && buf[strspn(buf, " \t\r\n")] == '[') {
        /* one JSON array (the upstream sanitized-mbpp.json layout) */
        json_error_t je;
        json_t *arr = json_loadb(buf, len, 0, &je);
        if (!arr) rc = srlm_set_error(SRLM_EFORMAT, "%s:%d: bad JSON: %s", path, je.line, je.text);
        else if (!json_is_array(arr)) rc = srlm_set_error(SRLM_EFORMAT, "%s: expected a JSON array of objects", path);
        else if (!json_array_size(arr)) rc = srlm_set_error(SRLM_EFORMAT, "%s: empty array (no records)", path);
        c.array = 1;
        for (size_t i = 0; !rc && i < json_array_size(arr); i++) {
            c.line = (long)i + 1;
            Dataset__Record *r = ds_record_new();
            rc = convert(&c, json_array_get(arr, i), ord, r);
            if (!rc) rc = check_dup_id(&c, seen, r->id);
            if (rc) { ds_record_free(r); break; }
            ds_recvec_push(out, r);
            ord++;
        }
        json_decref(arr);
    } else {
        size_t pos = 0;
        long line = 0;
        while (!rc && pos < len) {
            size_t e = pos;
            while (e < len && buf[e] != '\n') e++;
            line++;
            size_t s = pos, t = e;
            pos = e + 1;
            while (s < t && (buf[s] == ' ' || buf[s] == '\t' || buf[s] == '\r')) s++;
            while (t > s && (buf[t - 1] == ' ' || buf[t - 1] == '\t' || buf[t - 1] == '\r')) t--;
            if (s == t) continue; /* blank line */
            c.line = line;
            json_error_t je;
            json_t *o = json_loadb(buf + s, t - s, JSON_REJECT_DUPLICATES, &je);
            if (!o) {
                rc = srlm_set_error(SRLM_EFORMAT, "%s:%ld: bad JSON (column %d): %s", path, line, je.column, je.text);
                break;
            }
            Dataset__Record *r = ds_record_new();
            rc = convert(&c, o, ord, r);
            json_decref(o);
            if (!rc) rc = check_dup_id(&c, seen, r->id);
            if (rc) { ds_record_free(r); break; }
            ds_recvec_push(out, r);
            ord++;
        }
        if (!rc && out->n == n0) rc = srlm_set_error(SRLM_EFORMAT, "%s: empty file (no records)", path);
    }
    for (int i = 0; i < c.n_map; i++) { free(c.map_to[i]); free(c.map_from[i]); }
    free(c.map_to);
    free(c.map_from);
    free(buf);
    json_decref(seen);
    if (rc) {
        for (size_t i = n0; i < out->n; i++) ds_record_free(out->v[i]);
        out->n = n0;
        return rc;
    }
    *ordinal = ord;
    return 0;
}

/* ---- imports ------------------------------------------------------------------------ */

typedef struct {
    ds_import_opts opts;
    const char *const *files;
    int n_files;
} import_job;

static int run_jobs(ds_store *s, const import_job *jobs, int n_jobs, size_t *n_records) {
    ds_recvec *rvs = srlm_xcalloc((size_t)n_jobs, sizeof *rvs);
    ds_import_meta *metas = srlm_xcalloc((size_t)n_jobs, sizeof *metas);
    int total_files = 0;
    for (int j = 0; j < n_jobs; j++) total_files += jobs[j].n_files;
    char(*sha)[65] = srlm_xcalloc((size_t)total_files + 1, 65);
    char(*csha)[65] = srlm_xcalloc((size_t)total_files + 1, 65);
    const char **shap = srlm_xcalloc((size_t)total_files + 1, sizeof *shap);
    const char **cshap = srlm_xcalloc((size_t)total_files + 1, sizeof *cshap);
    size_t *bytes = srlm_xcalloc((size_t)total_files + 1, sizeof *bytes);
    size_t *nrec = srlm_xcalloc((size_t)total_files + 1, sizeof *nrec);
    ds_group *groups = NULL;
    int ng = 0, rc = 0, fi = 0;
    for (int j = 0; j < n_jobs && !rc; j++) {
        uint32_t ord = 0;
        metas[j].format = jobs[j].opts.format;
        metas[j].files = (const char **)jobs[j].files;
        metas[j].sha256 = shap + fi;
        metas[j].content_sha256 = cshap + fi;
        metas[j].bytes = bytes + fi;
        metas[j].records = nrec + fi;
        metas[j].n_files = jobs[j].n_files;
        for (int f = 0; f < jobs[j].n_files && !rc; f++, fi++) {
            const char *path = jobs[j].files[f];
            size_t before = rvs[j].n;
            rc = ds_parse_file(&jobs[j].opts, path, &rvs[j], &ord);
            if (rc) break;
            if ((rc = srlm_sha256_file(path, sha[fi]))) break;
            shap[fi] = sha[fi];
            char *content;
            size_t clen;
            if (srlm_read_file(path, &content, &clen, MAX_IMPORT_BYTES) == 0) {
                srlm_sha256_hex(content, clen, csha[fi]);
                cshap[fi] = csha[fi];
                free(content);
            }
            FILE *fp = fopen(path, "rb");
            if (fp) { fseek(fp, 0, SEEK_END); bytes[fi] = (size_t)ftell(fp); fclose(fp); }
            nrec[fi] = rvs[j].n - before;
        }
        /* group this job's records by (source, split), keeping first-seen order */
        for (size_t i = 0; i < rvs[j].n && !rc; i++) {
            Dataset__Record *r = rvs[j].v[i];
            int g = -1;
            for (int k = 0; k < ng; k++)
                if (!strcmp(groups[k].source, r->source) && !strcmp(groups[k].split, r->split)) g = k;
            if (g >= 0 && groups[g].meta != &metas[j])
                rc = srlm_set_error(SRLM_EINVAL, "two imports in one run write %s/%s", r->source, r->split);
            if (g < 0) {
                groups = srlm_xrealloc(groups, (size_t)(ng + 1) * sizeof *groups);
                groups[ng] = (ds_group){r->source, r->split, NULL, 0, &metas[j]};
                g = ng++;
            }
            if (!rc) {
                groups[g].recs = srlm_xrealloc(groups[g].recs, (groups[g].n + 1) * sizeof *groups[g].recs);
                groups[g].recs[groups[g].n++] = r;
            }
        }
    }
    size_t total = 0;
    if (!rc) {
        rc = ds_replace(s, groups, ng);
        for (int k = 0; k < ng; k++) total += groups[k].n;
    }
    if (!rc && n_records) *n_records = total;
    for (int k = 0; k < ng; k++) free(groups[k].recs);
    free(groups);
    for (int j = 0; j < n_jobs; j++) ds_recvec_free(&rvs[j]);
    free(rvs);
    free(metas);
    free(sha);
    free(shap);
    free(csha);
    free(cshap);
    free(bytes);
    free(nrec);
    return rc;
}

int ds_import_files(ds_store *s, const ds_import_opts *opts, const char *const *files, int n_files,
                    size_t *n_records) {
    if (n_files < 1) return srlm_set_error(SRLM_EINVAL, "no input files");
    import_job j = {*opts, files, n_files};
    return run_jobs(s, &j, 1, n_records);
}

typedef struct {
    const char *name, *format, *split, *rel;
} bundled_file;

static const bundled_file BUNDLED[] = {
    {"gsm8k", "gsm8k", "train", "datasets/data/gsm8k/train.jsonl.gz"},
    {"gsm8k", "gsm8k", "test", "datasets/data/gsm8k/test.jsonl.gz"},
    {"math", "math", "train", "datasets/data/math/math_train.jsonl.gz"},
    {"math", "math", "test", "datasets/data/math/math_test.jsonl.gz"},
    {"math500", "math500", "test", "datasets/data/math/math500_test.jsonl.gz"},
    {"humaneval", "humaneval", "test", "datasets/data/humaneval/HumanEval.jsonl.gz"},
    {"mbpp", "mbpp", NULL, "datasets/data/mbpp/mbpp.jsonl.gz"},
    {"mbpp-sanitized", "mbpp-sanitized", NULL, "datasets/data/mbpp/sanitized-mbpp.json.gz"},
};
#define N_BUNDLED (sizeof BUNDLED / sizeof BUNDLED[0])

int ds_import_bundled(ds_store *s, const char *which, size_t *n_records) {
    import_job jobs[N_BUNDLED];
    char paths[N_BUNDLED][4096];
    const char *pp[N_BUNDLED];
    int nj = 0;
    for (size_t i = 0; i < N_BUNDLED; i++) {
        if (strcmp(which, "all") && strcmp(which, BUNDLED[i].name)) continue;
        int rc = srlm_resource_path(BUNDLED[i].rel, paths[nj], sizeof paths[nj]);
        if (rc) return rc;
        pp[nj] = paths[nj];
        jobs[nj] = (import_job){{BUNDLED[i].format, BUNDLED[i].split, NULL, NULL, NULL}, &pp[nj], 1};
        nj++;
    }
    if (!nj)
        return srlm_set_error(SRLM_EINVAL,
                              "unknown bundled data set '%s' (gsm8k|math|math500|humaneval|mbpp|mbpp-sanitized|all)", which);
    return run_jobs(s, jobs, nj, n_records);
}
