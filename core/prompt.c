/* prompt.c — named prompt formats (see prompt.h). */
#include "prompt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const NAMES[PF_N_FORMATS] = {"plain", "gsm8k", "cot-boxed", "humaneval", "mbpp"};

int pf_from_name(const char *name, pf_format *out) {
    for (int i = 0; name && i < PF_N_FORMATS; i++)
        if (!strcmp(name, NAMES[i])) {
            *out = (pf_format)i;
            return 0;
        }
    return srlm_set_error(SRLM_EINVAL, "unknown prompt format '%s' (valid: gsm8k, cot-boxed, humaneval, mbpp, plain)",
                          name ? name : "(null)");
}

const char *pf_name(pf_format f) {
    return (f >= 0 && (int)f < PF_N_FORMATS) ? NAMES[f] : "plain";
}

/* ---- a tiny growable string ---------------------------------------------------------- */
typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        b->p = srlm_xrealloc(b->p, c);
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_put(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }
static char *sb_take(sbuf *b) {
    if (!b->p) return srlm_xstrdup("");
    return b->p;
}

static const char *str_field(const json_t *rec, const char *key) {
    const json_t *v = json_object_get(rec, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !memcmp(s + a - b, suf, b);
}

pf_format pf_default_for(const json_t *rec) {
    const char *src = str_field(rec, "source");
    const char *kind = str_field(rec, "kind");
    if (!src) src = "";
    if (!kind) kind = "";
    if (!strcmp(src, "gsm8k") || !strcmp(src, "synth-arith")) return PF_GSM8K;
    if (!strcmp(src, "math") || !strcmp(src, "math500")) return PF_COT_BOXED;
    if (!strcmp(kind, "math")) {
        const char *sol = str_field(rec, "solution");
        if (sol && strstr(sol, "####")) return PF_GSM8K;
        return PF_COT_BOXED;
    }
    if (!strcmp(kind, "code")) {
        const char *cf = str_field(rec, "code_format");
        if (cf && !strcmp(cf, "humaneval")) return PF_HUMANEVAL;
        if (!cf && !strcmp(src, "humaneval")) return PF_HUMANEVAL;
        return PF_MBPP;
    }
    return PF_PLAIN;
}

/* The first MBPP-style test shown in the prompt, or NULL. */
static const char *first_test(const json_t *rec) {
    const json_t *tl = json_object_get(rec, "test_list");
    if (json_is_array(tl) && json_array_size(tl) > 0 && json_is_string(json_array_get(tl, 0)))
        return json_string_value(json_array_get(tl, 0));
    return NULL;
}

/* The user-turn text (chat) of a record without messages. */
static int user_text(pf_format f, const json_t *rec, int chat, sbuf *b) {
    const char *q = str_field(rec, "prompt");
    if (!q) return srlm_set_error(SRLM_EINVAL, "record %s: missing field 'prompt'", str_field(rec, "id") ? str_field(rec, "id") : "?");
    switch (f) {
    case PF_GSM8K:
        if (chat) {
            sb_put(b, q);
            sb_put(b, "\nSolve the problem step by step. Write the final answer as \"#### N\" on the last line.");
        } else {
            sb_put(b, "Question: ");
            sb_put(b, q);
            sb_put(b, "\nAnswer:");
        }
        return 0;
    case PF_COT_BOXED:
        sb_put(b, q);
        sb_put(b, "\nPlease reason step by step, and put your final answer within \\boxed{}.");
        if (!chat) sb_put(b, "\n");
        return 0;
    case PF_HUMANEVAL:
        if (chat) {
            sb_put(b, "Complete the following Python function. Reply with the whole function in a ```python code block.\n```python\n");
            sb_put(b, q);
            if (!ends_with(q, "\n")) sb_put(b, "\n");
            sb_put(b, "```");
        } else {
            sb_put(b, q);
        }
        return 0;
    case PF_MBPP: {
        const char *t = first_test(rec);
        sb_put(b, q);
        if (t) {
            sb_put(b, "\nYour code should pass this test:\n");
            sb_put(b, t);
        }
        if (chat)
            sb_put(b, "\nWrite the Python function in a ```python code block.");
        else
            sb_put(b, "\n```python\n");
        return 0;
    }
    case PF_PLAIN:
    default:
        sb_put(b, q);
        return 0;
    }
}

/* Index of the last assistant message of a messages array, or -1. */
static long last_assistant(const json_t *msgs) {
    for (long i = (long)json_array_size(msgs) - 1; i >= 0; i--) {
        const char *role = json_string_value(json_object_get(json_array_get(msgs, (size_t)i), "role"));
        if (role && !strcmp(role, "assistant")) return i;
    }
    return -1;
}

static int check_messages(const json_t *msgs) {
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        if (!json_is_string(json_object_get(m, "role")) || !json_is_string(json_object_get(m, "content")))
            return srlm_set_error(SRLM_EINVAL, "messages[%zu]: needs string fields 'role' and 'content'", i);
    }
    return 0;
}

int pf_render_messages(pf_format f, const json_t *rec, json_t **out) {
    *out = NULL;
    if (!json_is_object(rec)) return srlm_set_error(SRLM_EINVAL, "record is not a JSON object");
    const json_t *msgs = json_object_get(rec, "messages");
    if (json_is_array(msgs) && json_array_size(msgs) > 0) {
        int rc = check_messages(msgs);
        if (rc) return rc;
        long last = last_assistant(msgs);
        size_t n = last >= 0 ? (size_t)last : json_array_size(msgs);
        json_t *arr = json_array();
        const char *r0 = json_string_value(json_object_get(json_array_get(msgs, 0), "role"));
        if (strcmp(r0, "system"))
            json_array_append_new(arr, json_pack("{s:s,s:s}", "role", "system", "content", PF_DEFAULT_SYSTEM));
        for (size_t i = 0; i < n; i++) {
            const json_t *m = json_array_get(msgs, i);
            json_array_append_new(arr, json_pack("{s:O,s:O}", "role", json_object_get(m, "role"), "content",
                                                 json_object_get(m, "content")));
        }
        *out = arr;
        return 0;
    }
    sbuf b = {0};
    int rc = user_text(f, rec, 1, &b);
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "system", "content", PF_DEFAULT_SYSTEM, "role", "user", "content",
                     b.p);
    free(b.p);
    return 0;
}

int pf_render_prompt(pf_format f, const json_t *rec, int chat, char **out) {
    *out = NULL;
    if (!json_is_object(rec)) return srlm_set_error(SRLM_EINVAL, "record is not a JSON object");
    const json_t *msgs = json_object_get(rec, "messages");
    int has_msgs = json_is_array(msgs) && json_array_size(msgs) > 0;
    sbuf b = {0};
    if (chat) {
        json_t *m = NULL;
        int rc = pf_render_messages(f, rec, &m);
        if (rc) return rc;
        for (size_t i = 0; i < json_array_size(m); i++) {
            const json_t *x = json_array_get(m, i);
            sb_put(&b, PF_IM_START);
            sb_put(&b, json_string_value(json_object_get(x, "role")));
            sb_put(&b, "\n");
            sb_put(&b, json_string_value(json_object_get(x, "content")));
            sb_put(&b, PF_IM_END "\n");
        }
        sb_put(&b, PF_IM_START "assistant\n");
        json_decref(m);
        *out = sb_take(&b);
        return 0;
    }
    if (has_msgs && !json_is_string(json_object_get(rec, "prompt"))) {
        /* Plain rendering of a chat sample: the user turns joined, one per paragraph. */
        int rc = check_messages(msgs);
        if (rc) return rc;
        long last = last_assistant(msgs);
        size_t n = last >= 0 ? (size_t)last : json_array_size(msgs);
        for (size_t i = 0; i < n; i++) {
            const json_t *x = json_array_get(msgs, i);
            if (strcmp(json_string_value(json_object_get(x, "role")), "user")) continue;
            if (b.n) sb_put(&b, "\n\n");
            sb_put(&b, json_string_value(json_object_get(x, "content")));
        }
        if (!b.n) return srlm_set_error(SRLM_EINVAL, "record: messages have no user turn");
        *out = sb_take(&b);
        return 0;
    }
    int rc = user_text(f, rec, 0, &b);
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = sb_take(&b);
    return 0;
}

/* The final answer inside the last \boxed{...} of s (nested braces), heap, or NULL. */
static char *last_boxed(const char *s) {
    const char *p = NULL, *q = s;
    while ((q = strstr(q, "\\boxed{")) != NULL) {
        p = q;
        q += 7;
    }
    if (!p) return NULL;
    p += 7;
    int depth = 1;
    const char *e = p;
    for (; *e; e++) {
        if (*e == '{') depth++;
        else if (*e == '}' && --depth == 0) break;
    }
    if (!*e) return NULL;
    char *r = srlm_xmalloc((size_t)(e - p) + 1);
    memcpy(r, p, (size_t)(e - p));
    r[e - p] = 0;
    return r;
}

/* Position of a final "#### N" marker (start of its line) in s, or NULL. */
static const char *hash_marker(const char *s) {
    const char *p = NULL, *q = s;
    while ((q = strstr(q, "####")) != NULL) {
        if (q == s || q[-1] == '\n') p = q;
        q += 4;
    }
    return p;
}

int pf_render_target(pf_format f, const json_t *rec, int chat, char **out) {
    *out = NULL;
    if (!json_is_object(rec)) return srlm_set_error(SRLM_EINVAL, "record is not a JSON object");
    const char *id = str_field(rec, "id") ? str_field(rec, "id") : "?";
    const char *t = NULL;
    const json_t *msgs = json_object_get(rec, "messages");
    if (json_is_array(msgs) && json_array_size(msgs) > 0) {
        int rc = check_messages(msgs);
        if (rc) return rc;
        long last = last_assistant(msgs);
        if (last >= 0) t = json_string_value(json_object_get(json_array_get(msgs, (size_t)last), "content"));
    }
    if (!t) t = str_field(rec, "completion");
    if (!t) t = str_field(rec, "solution_clean");
    if (!t) t = str_field(rec, "solution");
    sbuf b = {0};
    const char *ans = str_field(rec, "answer");
    if (!t) {
        if (!ans) return srlm_set_error(SRLM_EINVAL, "record %s: no target (completion, solution_clean, solution or answer)", id);
        if (f == PF_COT_BOXED) {
            sb_put(&b, "The final answer is $\\boxed{");
            sb_put(&b, ans);
            sb_put(&b, "}$.");
        } else {
            if (f == PF_GSM8K && !chat) sb_put(&b, " ");
            sb_put(&b, "#### ");
            sb_put(&b, ans);
        }
    } else if (f == PF_GSM8K) {
        if (!chat) sb_put(&b, " ");
        sb_put(&b, t);
        if (!hash_marker(t)) {
            char *bx = last_boxed(t);
            const char *a = bx ? bx : ans;
            if (a) {
                sb_put(&b, "\n#### ");
                sb_put(&b, a);
            }
            free(bx);
        }
    } else if (f == PF_COT_BOXED) {
        const char *m = hash_marker(t);
        if (m && !strstr(t, "\\boxed{")) {
            const char *a = m + 4;
            while (*a == ' ') a++;
            size_t alen = strcspn(a, "\n");
            while (alen && (a[alen - 1] == ' ' || a[alen - 1] == '\r')) alen--;
            sb_putn(&b, t, m > t ? (size_t)(m - t) : 0); /* m points into t */
            sb_put(&b, "The final answer is $\\boxed{");
            sb_putn(&b, a, alen);
            sb_put(&b, "}$.");
        } else {
            sb_put(&b, t);
        }
    } else if (f == PF_HUMANEVAL && chat) {
        const char *q = str_field(rec, "prompt");
        sb_put(&b, "```python\n");
        if (q) sb_put(&b, q);
        sb_put(&b, t);
        if (!ends_with(t, "\n")) sb_put(&b, "\n");
        sb_put(&b, "```");
    } else if (f == PF_MBPP) {
        if (chat) sb_put(&b, "```python\n");
        sb_put(&b, t);
        if (!ends_with(t, "\n")) sb_put(&b, "\n");
        sb_put(&b, "```");
    } else {
        sb_put(&b, t);
    }
    if (chat) sb_put(&b, PF_IM_END);
    *out = sb_take(&b);
    return 0;
}

static int with_parsed(pf_format f, const char *js, int chat, char **out, int target) {
    *out = NULL;
    json_error_t err;
    json_t *rec = json_loads(js, 0, &err);
    if (!rec) return srlm_set_error(SRLM_EFORMAT, "record JSON: line %d: %s", err.line, err.text);
    int rc = target ? pf_render_target(f, rec, chat, out) : pf_render_prompt(f, rec, chat, out);
    json_decref(rec);
    return rc;
}

int pf_render_prompt_str(pf_format f, const char *record_json, int chat, char **out) {
    return with_parsed(f, record_json, chat, out, 0);
}
int pf_render_target_str(pf_format f, const char *record_json, int chat, char **out) {
    return with_parsed(f, record_json, chat, out, 1);
}

static const char *const STOP_CHAT[] = {PF_IM_END, "<|endoftext|>", NULL};
static const char *const STOP_MATH[] = {"\n\nQuestion:", "<|endoftext|>", NULL};
static const char *const STOP_HUMANEVAL[] = {"\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", NULL};
static const char *const STOP_MBPP[] = {"```", NULL};
static const char *const STOP_NONE[] = {NULL};

const char *const *pf_stop_strings(pf_format f, int chat) {
    if (chat) return STOP_CHAT;
    switch (f) {
    case PF_GSM8K:
    case PF_COT_BOXED: return STOP_MATH;
    case PF_HUMANEVAL: return STOP_HUMANEVAL;
    case PF_MBPP: return STOP_MBPP;
    default: return STOP_NONE;
    }
}

size_t pf_truncate_at_stop(pf_format f, int chat, char *text) {
    const char *const *st = pf_stop_strings(f, chat);
    size_t cut = strlen(text);
    for (size_t i = 0; st[i]; i++) {
        const char *p = strstr(text, st[i]);
        if (p && (size_t)(p - text) < cut) cut = (size_t)(p - text);
    }
    text[cut] = 0;
    return cut;
}
