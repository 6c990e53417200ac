/* math_extract.c — final-answer extraction from raw model text (see math_reward.h).
 *
 * Rules, in order of preference (the first that yields an answer wins):
 *   boxed        the last \boxed{...} / \fbox{...} (nested braces; "\boxed 5" form); boxes
 *                separated only by commas, "and", \quad, $ are joined as multiple answers.
 *                A "final answer is ..." statement written after the last box overrides it.
 *   hash         GSM8K "#### N" (the last one)
 *   final        "final answer is ..." / "Final Answer: ..."
 *   answer       "answer: ..." / "the answer is ..."
 *   whole        the whole text when it is short and parses as math
 *   last_number  the last number (thousands separators, decimals, sign)
 * The format reward is on for boxed / hash / final answers that come after </think> when
 * the text opens a <think> block. Everything is linear in the text length (box matching
 * is capped at MR_MAX_ANSWER bytes and 64 candidates). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "math_internal.h"
#include "util.h"

/* Compiled once, read-only afterwards (shared by all threads; no JIT: no executable
 * memory, so the seccomp filter can forbid PROT_EXEC). */
static pcre2_code *RE_FINAL, *RE_ANSWER, *RE_NUMBER;
static pthread_once_t RE_ONCE = PTHREAD_ONCE_INIT;

static pcre2_code *compile(const char *pat) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &err, &off, NULL);
    if (!c) SRLM_ERROR("math: regex compile failed at %zu: %s", (size_t)off, pat);
    return c;
}

static void re_init(void) {
    /* "Final Answer: x", "**Final Answer**: x", "**Final Answer:** x", "final answer is x",
     * also with a full-width colon (U+FF1A, bytes EF BC 9A) */
    RE_FINAL = compile("final\\s+answer\\s*(?:\\*\\*|__)?\\s*(?:is\\b|:|\xef\xbc\x9a)\\s*(?:(?::|\xef\xbc\x9a)\\s*)?");
    RE_ANSWER = compile("\\banswer\\s*(?:\\*\\*|__)?\\s*(?:is\\b|:|=|\xef\xbc\x9a)\\s*(?:(?::|\xef\xbc\x9a)\\s*)?");
    RE_NUMBER = compile("-?\\d{1,3}(?:,\\d{3})+(?:\\.\\d+)?|-?\\d+(?:\\.\\d+)?|-?\\.\\d+");
}

void mr_prepare(void) { pthread_once(&RE_ONCE, re_init); }

const char *mr_rule_name(mr_rule r) {
    switch (r) {
    case MR_RULE_BOXED: return "boxed";
    case MR_RULE_HASH: return "hash";
    case MR_RULE_FINAL: return "final";
    case MR_RULE_ANSWER: return "answer";
    case MR_RULE_WHOLE: return "whole";
    case MR_RULE_LAST_NUMBER: return "last_number";
    default: return "none";
    }
}

/* Last match of re in text[0, len) that `skip` (if given) does not reject: start/end of
 * the match. Returns 1 if found. */
typedef int (*match_skip)(const char *t, size_t len, size_t s, size_t e);
static int last_match(pcre2_code *re, const char *text, size_t len, match_skip skip, size_t *ms, size_t *me) {
    if (!re) return 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return 0;
    size_t off = 0;
    int found = 0;
    while (off <= len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)text, len, off, 0, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (!skip || !skip(text, len, ov[0], ov[1])) {
            *ms = ov[0];
            *me = ov[1];
            found = 1;
        }
        off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
    }
    pcre2_match_data_free(md);
    return found;
}

/* A number that only labels what follows: "Step 2:", "Case 3", "2. Compute ..." / "2) ..."
 * at the start of a line. A truncated completion ending in such a label has no answer. */
static int is_label_number(const char *t, size_t len, size_t s, size_t e) {
    size_t k = e;
    while (k < len && (t[k] == ' ' || t[k] == '\t')) k++;
    if (k < len && t[k] == ':') return 1;
    static const char *const W[] = {"step ", "case ", "part ", "stage ", "phase ", "question ", "problem ", NULL};
    for (int w = 0; W[w]; w++) {
        size_t wl = strlen(W[w]);
        if (s >= wl && !strncasecmp(t + s - wl, W[w], wl) && (s == wl || !isalpha((unsigned char)t[s - wl - 1])))
            return 1;
    }
    size_t b = s;
    while (b > 0 && (t[b - 1] == ' ' || t[b - 1] == '\t' || t[b - 1] == '#' || t[b - 1] == '*')) b--;
    if ((b == 0 || t[b - 1] == '\n') && e + 1 < len && (t[e] == '.' || t[e] == ')') && t[e + 1] == ' ') {
        k = e + 1;
        while (k < len && t[k] == ' ') k++;
        if (k < len && (isalpha((unsigned char)t[k]) || t[k] == '*')) return 1;
    }
    return 0;
}

static int memfind_last(const char *text, size_t end, const char *pat, size_t *at) {
    size_t pl = strlen(pat);
    if (end < pl) return 0;
    size_t lim = end - pl + 1; /* candidate starts are in [0, lim) */
    while (lim > 0) {
        const char *q = memrchr(text, pat[0], lim);
        if (!q) return 0;
        size_t i = (size_t)(q - text);
        if (!memcmp(text + i, pat, pl)) {
            *at = i;
            return 1;
        }
        lim = i;
    }
    return 0;
}

typedef struct { size_t start, cs, cl, end; } box;

/* The last \boxed / \fbox that starts before `end` and has well-formed content. */
static int last_box(const char *t, size_t end, box *b) {
    for (int tries = 0; tries < 64 && end > 0; tries++) {
        size_t a1 = 0, a2 = 0;
        int f1 = memfind_last(t, end, "\\boxed", &a1), f2 = memfind_last(t, end, "\\fbox", &a2);
        if (!f1 && !f2) return 0;
        size_t at = (f1 && (!f2 || a1 > a2)) ? a1 : a2;
        size_t i = at + ((f1 && (!f2 || a1 > a2)) ? 6 : 5);
        size_t n = end; /* content may extend past `end` only within the text: use the full length */
        (void)n;
        end = at; /* next try: earlier */
        size_t j = i;
        while (t[j] == ' ') j++;
        if (t[j] == '{') {
            int depth = 0;
            size_t k;
            for (k = j; t[k] && k - j < MR_MAX_ANSWER; k++) {
                if (t[k] == '\\' && t[k + 1]) { k++; continue; }
                if (t[k] == '{') depth++;
                else if (t[k] == '}' && --depth == 0) break;
            }
            if (t[k] != '}') continue;
            b->start = at;
            b->cs = j + 1;
            b->cl = k - j - 1;
            b->end = k + 1;
            return 1;
        }
        if (j > i && t[j] && t[j] != '$') { /* "\boxed 5" */
            size_t k = j;
            while (t[k] && !isspace((unsigned char)t[k]) && t[k] != '$' && k - j < 256) k++;
            while (k > j && (t[k - 1] == '.' || t[k - 1] == ',')) k--;
            if (k == j) continue;
            b->start = at;
            b->cs = j;
            b->cl = k - j;
            b->end = k;
            return 1;
        }
    }
    return 0;
}

/* Only separators between two boxes: spaces , ; $ & . \quad \text{and} and \\ ("or" means
 * alternatives of one answer: then only the last box counts) */
static int only_separators(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (isspace((unsigned char)c) || c == ',' || c == ';' || c == '$' || c == '&' || c == '.' || c == '~') { i++; continue; }
        static const char *const W[] = {"\\quad", "\\qquad", "\\text{ and }", "\\text{and}",
                                        "\\\\", "\\,", "\\;", "\\(", "\\)", "\\[", "\\]", "and", "\\mbox{ and }", NULL};
        int m = 0;
        for (int w = 0; W[w]; w++) {
            size_t wl = strlen(W[w]);
            if (i + wl <= n && !strncmp(s + i, W[w], wl)) { i += wl; m = 1; break; }
        }
        if (!m) return 0;
    }
    return 1;
}

static int append(char *out, size_t outlen, size_t *o, const char *s, size_t n) {
    if (*o + n + 1 > outlen) return -1;
    memcpy(out + *o, s, n);
    *o += n;
    out[*o] = 0;
    return 0;
}

/* Strip delimiters, markdown emphasis and trailing punctuation; copy into out. */
static int clean_copy(const char *s, size_t n, char *out, size_t outlen) {
    size_t a = 0, b = n;
    for (int rep = 0; rep < 8; rep++) {
        while (a < b && (isspace((unsigned char)s[a]) || s[a] == '*' || s[a] == ':')) a++;
        while (b > a && (isspace((unsigned char)s[b - 1]) || s[b - 1] == '*' || s[b - 1] == '.' || s[b - 1] == ',' ||
                         s[b - 1] == ';'))
            b--;
        if (b - a >= 4 && !strncmp(s + a, "$$", 2) && !strncmp(s + b - 2, "$$", 2)) { a += 2; b -= 2; continue; }
        if (b - a >= 2 && s[a] == '$' && s[b - 1] == '$') { a++; b--; continue; }
        if (b - a >= 4 && s[a] == '\\' && (s[a + 1] == '(' || s[a + 1] == '[') && s[b - 2] == '\\' &&
            (s[b - 1] == ')' || s[b - 1] == ']')) { a += 2; b -= 2; continue; }
        break;
    }
    if (b <= a) return SRLM_ENOTFOUND;
    if (b - a + 1 > outlen) return SRLM_ENOMEM;
    memcpy(out, s + a, b - a);
    out[b - a] = 0;
    return 0;
}

/* The answer phrase after "final answer is" / "answer:": a $...$ span, or up to the end
 * of the sentence / line. */
static size_t phrase_end(const char *t, size_t len, size_t i) {
    while (i < len && (t[i] == ' ' || t[i] == '\t')) i++;
    if (i < len && t[i] == '$') {
        int dbl = i + 1 < len && t[i + 1] == '$';
        size_t k = i + (dbl ? 2 : 1);
        for (; k < len; k++) {
            if (t[k] == '\\' && k + 1 < len) { k++; continue; }
            if (t[k] == '$') return k + (dbl && k + 1 < len && t[k + 1] == '$' ? 2 : 1);
        }
        return len;
    }
    size_t k = i;
    /* the answer ends before an explanation: "18 because 3 * 6 = 18", "18, since ..." */
    static const char *const CONN[] = {" because ", ", because", " since ", ", since", ", as ", ", which ", " which ",
                                       ", so ", " so that ", " given that ", ", given ", ", where ", " where ", ", i.e.",
                                       " (since ", " (because ", NULL};
    while (k < len && t[k] != '\n') {
        if (t[k] == '.' && (k + 1 >= len || isspace((unsigned char)t[k + 1])) && !(k > i && isdigit((unsigned char)t[k - 1]) && k + 1 < len && isdigit((unsigned char)t[k + 1])))
            break;
        if ((t[k] == ' ' || t[k] == ',') && k > i) {
            int cut = 0;
            for (int w = 0; CONN[w] && !cut; w++) {
                size_t wl = strlen(CONN[w]);
                cut = k + wl <= len && !strncasecmp(t + k, CONN[w], wl);
            }
            if (cut) break;
        }
        k++;
    }
    if (k - i > MR_MAX_ANSWER) k = i + MR_MAX_ANSWER;
    return k;
}

static int parses(const char *s) {
    mr_arena *a = malloc(sizeof *a);
    if (!a) return 0;
    mr_arena_init(a);
    char why[64];
    int ok = mr_parse(a, s, why, sizeof why) >= 0;
    mr_arena_free(a);
    free(a);
    return ok;
}

int mr_extract(const char *text, size_t len, char *out, size_t outlen, mr_rule *rule, int *format_ok) {
    mr_prepare();
    *rule = MR_RULE_NONE;
    *format_ok = 0;
    if (outlen) out[0] = 0;
    if (len > MR_MAX_TEXT) return SRLM_ENOMEM;
    /* work on a NUL-terminated copy (text may contain NULs: stop there) */
    char *t = malloc(len + 1);
    if (!t) return SRLM_ENOMEM;
    memcpy(t, text, len);
    t[len] = 0;
    len = strlen(t);

    size_t think_end = 0, at;
    int think_open = strstr(t, "<think>") != NULL, think_closed = 0;
    if (memfind_last(t, len, "</think>", &at)) {
        think_end = at + 8;
        think_closed = 1;
    }
    int rc = SRLM_ENOTFOUND;
    size_t ans_pos = 0;
    box b;
    int have_box = last_box(t, len, &b);
    size_t fs = 0, fe = 0;
    int have_final = last_match(RE_FINAL, t, len, NULL, &fs, &fe);
    if (have_box && !(have_final && fs >= b.end)) {
        /* join adjacent boxes: \boxed{1}, \boxed{2} */
        box parts[16];
        int np = 0;
        parts[np++] = b;
        box prev;
        while (np < 16 && last_box(t, parts[np - 1].start, &prev) && prev.end <= parts[np - 1].start &&
               only_separators(t + prev.end, parts[np - 1].start - prev.end))
            parts[np++] = prev;
        size_t o = 0, first_len = 0;
        int nparts = 0, all_same = 1;
        rc = 0;
        char *tmp = malloc(MR_MAX_ANSWER + 1);
        if (!tmp) { free(t); return SRLM_ENOMEM; }
        for (int i = np - 1; i >= 0 && !rc; i--) {
            int r2 = clean_copy(t + parts[i].cs, parts[i].cl, tmp, MR_MAX_ANSWER + 1);
            if (r2 == SRLM_ENOTFOUND) continue;
            if (r2) { rc = r2; break; }
            size_t tl = strlen(tmp);
            if (nparts && (tl != first_len || memcmp(out, tmp, tl))) all_same = 0;
            if (o && append(out, outlen, &o, ", ", 2)) rc = SRLM_ENOMEM;
            else if (append(out, outlen, &o, tmp, tl)) rc = SRLM_ENOMEM;
            if (!nparts++) first_len = tl;
        }
        free(tmp);
        /* the same answer boxed twice in a row ("\boxed{7} \boxed{7}") is one answer */
        if (!rc && nparts > 1 && all_same) out[first_len] = 0;
        if (!rc && o == 0) rc = SRLM_ENOTFOUND;
        if (!rc) {
            *rule = MR_RULE_BOXED;
            ans_pos = b.start;
        }
    }
    if (rc && have_final) {
        size_t e = phrase_end(t, len, fe);
        rc = clean_copy(t + fe, e - fe, out, outlen);
        if (!rc) { *rule = MR_RULE_FINAL; ans_pos = fs; }
    }
    if (rc && memfind_last(t, len, "####", &at)) {
        size_t s = at + 4, e = s;
        while (e < len && t[e] != '\n') e++;
        rc = clean_copy(t + s, e - s, out, outlen);
        if (!rc) { *rule = MR_RULE_HASH; ans_pos = at; }
    }
    size_t as = 0, ae = 0;
    if (rc && last_match(RE_ANSWER, t, len, NULL, &as, &ae)) {
        size_t e = phrase_end(t, len, ae);
        rc = clean_copy(t + ae, e - ae, out, outlen);
        if (!rc) { *rule = MR_RULE_ANSWER; ans_pos = as; }
    }
    if (rc) {
        size_t s = think_closed ? think_end : 0;
        if (len - s <= 256) {
            rc = clean_copy(t + s, len - s, out, outlen);
            if (!rc && !parses(out)) rc = SRLM_ENOTFOUND;
            if (!rc) { *rule = MR_RULE_WHOLE; ans_pos = s; }
        }
    }
    size_t ns = 0, ne = 0;
    /* the last number that is not a label */
    if (rc && last_match(RE_NUMBER, t, len, is_label_number, &ns, &ne)) {
        rc = clean_copy(t + ns, ne - ns, out, outlen);
        if (!rc) { *rule = MR_RULE_LAST_NUMBER; ans_pos = ns; }
    }
    if (!rc) {
        int strong = *rule == MR_RULE_BOXED || *rule == MR_RULE_HASH || *rule == MR_RULE_FINAL;
        *format_ok = strong && (!think_open || (think_closed && ans_pos >= think_end));
    } else if (outlen) {
        out[0] = 0;
    }
    free(t);
    return rc;
}
