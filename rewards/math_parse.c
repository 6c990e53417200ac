/* math_parse.c — LaTeX / plain-math answer parser of the math checker (see math_internal.h).
 *
 * Stages: mr_prenorm() rewrites spacing, delimiters, \dfrac, degrees, Unicode operators and
 * thousands separators into a canonical string; a lazy lexer turns it into tokens (LaTeX
 * commands, numbers, symbols with subscripts, words, \text{} runs); a recursive-descent
 * parser builds the arena AST with implicit multiplication, mixed numbers (3\frac12),
 * relations and inequality-to-interval conversion. Every loop is bounded by the token,
 * node and depth limits of math_reward.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math_internal.h"

/* ---- arena ---------------------------------------------------------------------------- */
#define MR_MAX_NUMS (MR_MAX_NODES / 2)

void mr_arena_init(mr_arena *a) {
    a->nnodes = 0;
    a->nnums = 0;
    a->nums_init = 0;
    a->nums = NULL;
    a->nvars = 0;
    a->ntext = 0;
}

void mr_arena_free(mr_arena *a) {
    for (int i = 0; i < a->nums_init; i++) mpq_clear(a->nums[i]);
    free(a->nums);
    a->nums = NULL;
    a->nums_init = a->nnums = 0;
}

/* ---- string normalisation ------------------------------------------------------------- */
typedef struct { const char *from, *to; size_t fl, tl; } repl;
#define R(a, b) {a, b, sizeof(a) - 1, sizeof(b) - 1}

/* Applied in order, longest patterns first where prefixes overlap. */
static const repl PRENORM[] = {
    R("\\displaystyle", ""), R("\\textstyle", ""), R("\\scriptstyle", ""),
    R("\\left.", ""), R("\\right.", ""), R("\\left", ""), R("\\right", ""),
    R("\\bigl", ""), R("\\bigr", ""), R("\\Bigl", ""), R("\\Bigr", ""), R("\\biggl", ""),
    R("\\biggr", ""), R("\\Big", ""), R("\\big", ""),
    R("\\!", ""), R("\\,", " "), R("\\;", " "), R("\\:", " "), R("\\ ", " "), R("~", " "),
    R("\\qquad", " "), R("\\quad", " "), R("\\hline", " "),
    R("\\dfrac", "\\frac"), R("\\tfrac", "\\frac"), R("\\cfrac", "\\frac"),
    R("\\dbinom", "\\binom"), R("\\tbinom", "\\binom"),
    R("{}^\\circ", ""), R("^{\\circ}", ""), R("^\\circ", ""), R("\\circ", ""), R("\\degree", ""),
    R("^{\\prime}", "'"), R("\\prime", "'"),
    R("\\$", ""), R("$", ""), R("\\(", ""), R("\\)", ""), R("\\[", ""), R("\\]", ""),
    R("\\%", "%"), R("\\#", ""),
    R("{,}", ","),
    R("\xe2\x88\x92", "-"),            /* − */
    R("\xc3\x97", "*"), R("\xc2\xb7", "*"), R("\xc3\xb7", "/"),
    R("\xe2\x89\xa4", "\\le "), R("\xe2\x89\xa5", "\\ge "), R("\xe2\x89\xa0", "\\ne "),
    R("\xe2\x89\x88", "\\approx "), R("\xcf\x80", "\\pi "), R("\xe2\x88\x9a", "\\sqrt"),
    R("\xe2\x88\x9e", "\\infty "), R("\xc2\xb1", "\\pm "), R("\xc2\xb0", ""),
    R("\xe2\x82\xac", ""), R("\xc2\xa3", ""), R("\xc2\xa5", ""), R("\xc2\xa0", " "),
    R("\xe2\x80\x89", " "), R("\xe2\x80\xaf", " "),
    R("\\infin", "\\infty"),
};

static int is_thousands_run(const char *s, int i, int *end, int *nsep) {
    /* \d{1,3}(,\s?\d{3})+ not followed by a digit; i at the first digit. */
    int j = i, nd = 0;
    while (isdigit((unsigned char)s[j])) { j++; nd++; }
    if (nd < 1 || nd > 3) return 0;
    int seps = 0;
    for (;;) {
        int k = j;
        if (s[k] != ',') break;
        k++;
        if (s[k] == ' ') k++;
        if (!(isdigit((unsigned char)s[k]) && isdigit((unsigned char)s[k + 1]) && isdigit((unsigned char)s[k + 2]) &&
              !isdigit((unsigned char)s[k + 3])))
            break;
        j = k + 3;
        seps++;
    }
    if (!seps) return 0;
    *end = j;
    *nsep = seps;
    return 1;
}

/* Remove thousands separators: runs with >= 2 separators always; a single separator only
 * when the answer has no other comma and no brackets (so "(1,234)" stays a tuple). Also
 * "1 000 000" (space-grouped) when that is the whole answer. */
static void fix_thousands(char *s) {
    size_t n = strlen(s);
    int commas = 0, brackets = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ',') commas++;
        if (strchr("()[]{}", s[i])) brackets++;
    }
    char *o = s;
    for (size_t i = 0; i < n;) {
        int end, nsep;
        if (isdigit((unsigned char)s[i]) && (i == 0 || (!isdigit((unsigned char)s[i - 1]) && s[i - 1] != '.')) &&
            is_thousands_run(s, (int)i, &end, &nsep) && (nsep >= 2 || (commas == 1 && !brackets))) {
            for (int k = (int)i; k < end; k++)
                if (isdigit((unsigned char)s[k])) *o++ = s[k];
            i = (size_t)end;
            continue;
        }
        *o++ = s[i++];
    }
    *o = 0;
    /* whole answer "1 000" / "-12 345 678.5" */
    const char *p = s;
    while (*p == ' ') p++;
    const char *q = p;
    if (*q == '-') q++;
    int nd = 0;
    while (isdigit((unsigned char)q[nd])) nd++;
    if (nd >= 1 && nd <= 3 && q[nd] == ' ') {
        const char *r = q + nd;
        int groups = 0;
        while (r[0] == ' ' && isdigit((unsigned char)r[1]) && isdigit((unsigned char)r[2]) && isdigit((unsigned char)r[3]) &&
               !isdigit((unsigned char)r[4])) {
            r += 4;
            groups++;
        }
        const char *t = r;
        if (*t == '.') {
            t++;
            while (isdigit((unsigned char)*t)) t++;
        }
        while (*t == ' ') t++;
        if (groups && !*t) {
            char *w = s;
            for (const char *c = p; *c; c++)
                if (*c != ' ') *w++ = *c;
            *w = 0;
        }
    }
}

/* Decode one well-formed UTF-8 sequence at s (lead byte >= 0x80); *n gets its length.
 * Returns the code point, or -1 for an ill-formed sequence (then *n = 1). */
static long utf8_cp(const unsigned char *s, int *n) {
    *n = 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf && (s[1] & 0xc0) == 0x80) {
        *n = 2;
        return ((long)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
    }
    if (s[0] >= 0xe0 && s[0] <= 0xef && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80) {
        long c = ((long)(s[0] & 0x0f) << 12) | ((long)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        if (c < 0x800) return -1;
        *n = 3;
        return c;
    }
    if (s[0] >= 0xf0 && s[0] <= 0xf4 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80) {
        long c = ((long)(s[0] & 0x07) << 18) | ((long)(s[1] & 0x3f) << 12) | ((long)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
        if (c < 0x10000 || c > 0x10ffff) return -1;
        *n = 4;
        return c;
    }
    return -1;
}

/* Superscript digit / sign code points -> ASCII, 0 if c is none. */
static char superscript_ascii(long c) {
    switch (c) {
    case 0x2070: return '0';
    case 0xb9: return '1';
    case 0xb2: return '2';
    case 0xb3: return '3';
    case 0x207b: return '-';
    case 0x207a: return '+';
    default: return (c >= 0x2074 && c <= 0x2079) ? (char)('0' + (c - 0x2070)) : 0;
    }
}

/* Fold the Unicode forms that models write for ASCII math into ASCII / LaTeX before the
 * PRENORM rules: full-width forms U+FF01..FF5E (１８ -> 18, ／ -> /), ideographic space
 * and full stop, the other space characters (U+2000..200A, U+3000) -> space, invisible
 * format characters (zero-width spaces and joiners, LRM/RLM, bidi embeddings and
 * isolates, word joiner, BOM) -> nothing, superscript runs (x²³ -> x^{23}, 10⁻³ ->
 * 10^{-3}), vulgar fractions (½ -> \frac{1}{2}, so 3½ is a mixed number), the fraction
 * slash U+2044 and the division slash U+2215 -> /, the asterisk operator U+2217 and the
 * dot operator U+22C5 -> *. Other bytes are copied unchanged. */
static void unifold(const char *s, char *out, size_t outlen) {
    static const struct { long cp; const char *to; } VULGAR[] = {
        {0xbd, "\\frac{1}{2}"}, {0xbc, "\\frac{1}{4}"}, {0xbe, "\\frac{3}{4}"}, {0x2153, "\\frac{1}{3}"},
        {0x2154, "\\frac{2}{3}"}, {0x2155, "\\frac{1}{5}"}, {0x2156, "\\frac{2}{5}"}, {0x2157, "\\frac{3}{5}"},
        {0x2158, "\\frac{4}{5}"}, {0x2159, "\\frac{1}{6}"}, {0x215a, "\\frac{5}{6}"}, {0x215b, "\\frac{1}{8}"},
        {0x215c, "\\frac{3}{8}"}, {0x215d, "\\frac{5}{8}"}, {0x215e, "\\frac{7}{8}"},
    };
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p && o + 16 < outlen) {
        if (*p < 0x80) { out[o++] = (char)*p++; continue; }
        int n;
        long c = utf8_cp(p, &n);
        if (c >= 0xff01 && c <= 0xff5e) { out[o++] = (char)(c - 0xfee0); p += n; continue; }
        if (c == 0x3000 || (c >= 0x2000 && c <= 0x200a) || c == 0x205f) { out[o++] = ' '; p += n; continue; }
        if (c == 0x3002 || c == 0xff61) { out[o++] = '.'; p += n; continue; }
        if ((c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) || (c >= 0x2060 && c <= 0x2064) ||
            (c >= 0x2066 && c <= 0x2069) || c == 0xfeff || c == 0xad) { p += n; continue; }
        if (c == 0x2044 || c == 0x2215) { out[o++] = '/'; p += n; continue; }
        if (c == 0x2217 || c == 0x22c5) { out[o++] = '*'; p += n; continue; }
        if (superscript_ascii(c)) {
            out[o++] = '^';
            out[o++] = '{';
            int m;
            long d;
            while (o + 4 < outlen && (d = utf8_cp(p, &m)) >= 0 && superscript_ascii(d)) {
                out[o++] = superscript_ascii(d);
                p += m;
            }
            out[o++] = '}';
            continue;
        }
        int done = 0;
        for (size_t v = 0; v < sizeof VULGAR / sizeof VULGAR[0]; v++)
            if (VULGAR[v].cp == c) {
                size_t tl = strlen(VULGAR[v].to);
                memcpy(out + o, VULGAR[v].to, tl);
                o += tl;
                p += n;
                done = 1;
                break;
            }
        if (done) continue;
        while (n-- > 0 && *p) out[o++] = (char)*p++;
    }
    out[o] = 0;
}

/* Canonical rewrite of an answer string (see PRENORM). out has outlen bytes. */
static void mr_prenorm(const char *s0, char *out, size_t outlen) {
    size_t o = 0;
    char *fold = malloc(outlen);
    if (!fold) {
        if (outlen) out[0] = 0;
        return;
    }
    unifold(s0, fold, outlen);
    const char *s = fold;
    const size_t NR = sizeof PRENORM / sizeof PRENORM[0];
    while (*s && o + 8 < outlen) {
        int done = 0;
        if (*s == '\\' || *s == '~' || *s == '$' || *s == '{' || *s == '^' || (unsigned char)*s >= 0x80) {
            for (size_t r = 0; r < NR; r++) {
                size_t fl = PRENORM[r].fl;
                if (s[0] == PRENORM[r].from[0] && (fl < 2 || s[1] == PRENORM[r].from[1]) && !strncmp(s, PRENORM[r].from, fl)) {
                    /* don't cut \leftarrow, \right-arrows, \bigcup, \quadrilateral etc. into pieces wrongly:
                     * only \left/\right/\big must not be followed by a letter */
                    if ((!strcmp(PRENORM[r].from, "\\left") || !strcmp(PRENORM[r].from, "\\right") ||
                         !strcmp(PRENORM[r].from, "\\big") || !strcmp(PRENORM[r].from, "\\Big") ||
                         !strcmp(PRENORM[r].from, "\\circ") || !strcmp(PRENORM[r].from, "\\prime")) &&
                        isalpha((unsigned char)s[fl]))
                        continue;
                    size_t tl = PRENORM[r].tl;
                    if (o + tl + 1 >= outlen) break;
                    memcpy(out + o, PRENORM[r].to, tl);
                    o += tl;
                    s += fl;
                    done = 1;
                    break;
                }
            }
        }
        if (!done) {
            if (*s == '\\' && s[1]) { /* copy a whole command so later rules can't split it */
                out[o++] = *s++;
                if (isalpha((unsigned char)*s)) {
                    while (isalpha((unsigned char)*s) && o + 2 < outlen) out[o++] = *s++;
                } else {
                    out[o++] = *s++;
                }
            } else {
                out[o++] = *s++;
            }
        }
    }
    out[o] = 0;
    free(fold);
    fix_thousands(out);
}

void mr_compact(const char *s, char *out, size_t outlen) {
    char *tmp = malloc(outlen * 2 + 16);
    if (!tmp) {
        if (outlen) out[0] = 0;
        return;
    }
    mr_prenorm(s, tmp, outlen * 2 + 16);
    size_t o = 0;
    for (const char *p = tmp; *p && o + 1 < outlen; p++) {
        if (!isspace((unsigned char)*p)) {
            out[o++] = *p;
            continue;
        }
        /* keep one space between two digits: "10 00" is not 1000 (fix_thousands already
         * joined the well-formed groups "1 000") */
        const char *q = p;
        while (isspace((unsigned char)q[1])) q++;
        if (o && isdigit((unsigned char)out[o - 1]) && isdigit((unsigned char)q[1])) out[o++] = ' ';
        p = q;
    }
    /* strip trailing periods */
    while (o && out[o - 1] == '.') o--;
    if (outlen) out[o] = 0;
    free(tmp);
}

void mr_textnorm(const char *s, char *out, size_t outlen) {
    size_t o = 0;
    for (const char *p = s; *p && o + 1 < outlen; p++) {
        if (*p == '\\') { /* drop command names (\text, \mathrm, ...) */
            p++;
            while (isalpha((unsigned char)*p)) p++;
            p--;
            continue;
        }
        if (isalnum((unsigned char)*p)) out[o++] = (char)tolower((unsigned char)*p);
        else if ((unsigned char)*p >= 0x80) out[o++] = *p;
    }
    if (outlen) out[o] = 0;
}

/* ---- lexer ---------------------------------------------------------------------------- */
enum {
    TK_EOF = 0, TK_NUM, TK_SYM, TK_WORD, TK_TEXT, TK_OP, TK_REL, TK_APPROX, TK_PM, TK_FUNC,
    TK_PI, TK_INF, TK_FRAC, TK_SQRT, TK_BINOM, TK_LSET, TK_RSET, TK_CUP, TK_BEGIN, TK_END,
    TK_AMP, TK_ROWSEP, TK_SEPW, TK_EMPTYSET, TK_LFLOOR, TK_RFLOOR, TK_LCEIL, TK_RCEIL, TK_BAD,
    TK_SKIP,
};

typedef struct {
    int type;
    int ival;          /* op char / R_* / F_* / PM sign */
    int start, len;    /* span in source (NUM: literal; WORD/TEXT: content) */
    int end;           /* position after the token */
    char name[24];     /* SYM name */
} tok;

typedef struct {
    mr_arena *a;
    const char *s;
    int len, pos;
    int depth, ntok, abs_depth;
    int latex;          /* source uses LaTeX commands/braces: single-char ^ arguments */
    int have;
    tok cur;
    char *why;
    size_t whylen;
    int err;
} P;

static int fail(P *p, const char *msg) {
    if (!p->err) {
        p->err = 1;
        snprintf(p->why, p->whylen, "%s", msg);
    }
    return -1;
}

typedef struct { const char *name; int type, ival; } cmd;
static const cmd CMDS[] = {
    {"frac", TK_FRAC, 0}, {"sqrt", TK_SQRT, 0}, {"binom", TK_BINOM, 0}, {"choose", TK_BAD, 0},
    {"pi", TK_PI, 0}, {"infty", TK_INF, 0}, {"pm", TK_PM, '+'}, {"mp", TK_PM, '-'},
    {"cdot", TK_OP, '*'}, {"times", TK_OP, '*'}, {"ast", TK_OP, '*'}, {"div", TK_OP, '/'},
    {"le", TK_REL, R_LE}, {"leq", TK_REL, R_LE}, {"leqslant", TK_REL, R_LE},
    {"ge", TK_REL, R_GE}, {"geq", TK_REL, R_GE}, {"geqslant", TK_REL, R_GE},
    {"lt", TK_REL, R_LT}, {"gt", TK_REL, R_GT}, {"ne", TK_REL, R_NE}, {"neq", TK_REL, R_NE},
    {"in", TK_REL, R_IN}, {"equiv", TK_REL, R_EQ}, {"approx", TK_APPROX, 0}, {"simeq", TK_APPROX, 0},
    {"cong", TK_APPROX, 0}, {"sim", TK_APPROX, 0},
    {"cup", TK_CUP, 0}, {"lbrace", TK_LSET, 0}, {"rbrace", TK_RSET, 0},
    {"emptyset", TK_EMPTYSET, 0}, {"varnothing", TK_EMPTYSET, 0},
    {"sin", TK_FUNC, F_SIN}, {"cos", TK_FUNC, F_COS}, {"tan", TK_FUNC, F_TAN},
    {"sec", TK_FUNC, F_SEC}, {"csc", TK_FUNC, F_CSC}, {"cot", TK_FUNC, F_COT},
    {"arcsin", TK_FUNC, F_ASIN}, {"arccos", TK_FUNC, F_ACOS}, {"arctan", TK_FUNC, F_ATAN},
    {"sinh", TK_FUNC, F_SINH}, {"cosh", TK_FUNC, F_COSH}, {"tanh", TK_FUNC, F_TANH},
    {"ln", TK_FUNC, F_LN}, {"log", TK_FUNC, F_LOG}, {"lg", TK_FUNC, F_LOG}, {"exp", TK_FUNC, F_EXP},
    {"lfloor", TK_LFLOOR, 0}, {"rfloor", TK_RFLOOR, 0}, {"lceil", TK_LCEIL, 0}, {"rceil", TK_RCEIL, 0},
    {"langle", TK_OP, '('}, {"rangle", TK_OP, ')'}, {"lvert", TK_OP, '|'}, {"rvert", TK_OP, '|'},
    {"vert", TK_OP, '|'}, {"mid", TK_OP, '|'}, {"lVert", TK_OP, '|'}, {"rVert", TK_OP, '|'},
    {"colon", TK_OP, ':'},
    {"and", TK_SEPW, 0}, {"or", TK_SEPW, 0}, {"text", TK_TEXT, 0}, {"textbf", TK_TEXT, 0},
    {"textit", TK_TEXT, 0}, {"textnormal", TK_TEXT, 0}, {"textrm", TK_TEXT, 0}, {"texttt", TK_TEXT, 0},
    {"mbox", TK_TEXT, 0}, {"mathrm", TK_TEXT, 0}, {"mathbf", TK_TEXT, 0}, {"mathit", TK_TEXT, 0},
    {"operatorname", TK_TEXT, 0}, {"textsf", TK_TEXT, 0}, {"hbox", TK_TEXT, 0},
    {"begin", TK_BEGIN, 0}, {"end", TK_END, 0},
    {"dots", TK_WORD, 0}, {"ldots", TK_WORD, 0}, {"cdots", TK_WORD, 0},
    /* ignored: font / decoration commands (their {group} stays a group) */
    {"boldsymbol", TK_SKIP, 0},
    {"mathbb", TK_SKIP, 0}, {"mathcal", TK_SKIP, 0}, {"vec", TK_SKIP, 0},
    {"overline", TK_SKIP, 0}, {"bar", TK_SKIP, 0}, {"hat", TK_SKIP, 0}, {"widehat", TK_SKIP, 0},
    {"overrightarrow", TK_SKIP, 0}, {"boxed", TK_SKIP, 0}, {"fbox", TK_SKIP, 0}, {"limits", TK_SKIP, 0},
    {"mathsf", TK_SKIP, 0}, {"bf", TK_SKIP, 0}, {"rm", TK_SKIP, 0}, {"it", TK_SKIP, 0},
    {"tilde", TK_SKIP, 0}, {"underline", TK_SKIP, 0}, {"not", TK_SKIP, 0}, {"phantom", TK_BAD, 0},
};
#define N_CMDS (sizeof CMDS / sizeof CMDS[0])

/* Plain-text words that are functions or constants. */
static const cmd PLAIN[] = {
    {"sqrt", TK_SQRT, 0}, {"pi", TK_PI, 0}, {"inf", TK_INF, 0}, {"infty", TK_INF, 0},
    {"infinity", TK_INF, 0}, {"sin", TK_FUNC, F_SIN}, {"cos", TK_FUNC, F_COS},
    {"tan", TK_FUNC, F_TAN}, {"sec", TK_FUNC, F_SEC}, {"csc", TK_FUNC, F_CSC},
    {"cot", TK_FUNC, F_COT}, {"arcsin", TK_FUNC, F_ASIN}, {"arccos", TK_FUNC, F_ACOS},
    {"arctan", TK_FUNC, F_ATAN}, {"ln", TK_FUNC, F_LN}, {"log", TK_FUNC, F_LOG},
    {"exp", TK_FUNC, F_EXP}, {"and", TK_SEPW, 0}, {"or", TK_SEPW, 0}, {"is", TK_REL, R_EQ},
    {"equals", TK_REL, R_EQ}, {"pct", TK_OP, '%'}, {"percent", TK_OP, '%'}, {"abs", TK_FUNC, F_ABS},
};
/* Two/three-letter runs that are words (units, prose) rather than products of symbols. */
static const char *const SHORTWORDS[] = {
    "of", "to", "at", "be", "so", "an", "as", "we", "it", "by", "on", "if", "no", "am", "are",
    "cm", "km", "mm", "kg", "mg", "ml", "ft", "hr", "yd", "oz", "lb", "mi", "in", "us", "th", "st", "nd", "rd",
    "the", "per", "hrs", "min", "day", "lbs", "mph", "yes", "not", "for", "all", "has", "its", "was", "one",
    "two", "six", "ten", "usd", "cup", "box", "sq", "cu", "deg", "rad", "m", NULL};

static int is_shortword(const char *s, int n) {
    for (int i = 0; SHORTWORDS[i]; i++)
        if ((int)strlen(SHORTWORDS[i]) == n && !strncasecmp(s, SHORTWORDS[i], (size_t)n) && n > 1) return 1;
    return 0;
}

static void skip_ws(P *p) {
    while (p->pos < p->len && isspace((unsigned char)p->s[p->pos])) p->pos++;
}

/* Read a balanced {...} starting at i (s[i]=='{'); returns index after '}', content span. */
static int read_group(const char *s, int len, int i, int *cs, int *cl) {
    int depth = 0;
    for (int j = i; j < len; j++) {
        if (s[j] == '\\' && j + 1 < len) { j++; continue; }
        if (s[j] == '{') depth++;
        else if (s[j] == '}' && --depth == 0) {
            *cs = i + 1;
            *cl = j - i - 1;
            return j + 1;
        }
    }
    return -1;
}

/* x_1, x_{12}: append the subscript to a symbol name; returns the position after it. */
static int lex_subscript(const char *s, int len, int j, tok *t) {
    if (j < len && s[j] == '_') {
        int k = j + 1, cs, cl;
        size_t nl = strlen(t->name);
        if (k < len && s[k] == '{') {
            int e = read_group(s, len, k, &cs, &cl);
            if (e < 0) { t->type = TK_BAD; return len; }
            t->name[nl++] = '_';
            for (int q = 0; q < cl && nl < sizeof t->name - 1; q++)
                if (!isspace((unsigned char)s[cs + q]) && s[cs + q] != '{' && s[cs + q] != '}')
                    t->name[nl++] = s[cs + q];
            t->name[nl] = 0;
            j = e;
        } else if (k < len && isalnum((unsigned char)s[k])) {
            if (nl + 2 < sizeof t->name) {
                t->name[nl++] = '_';
                t->name[nl++] = s[k];
                t->name[nl] = 0;
            }
            j = k + 1;
        }
    }
    return j;
}

static void lex_at(P *p, int i, tok *t) {
    const char *s = p->s;
    int len = p->len;
    memset(t, 0, sizeof *t);
    while (i < len && isspace((unsigned char)s[i])) i++;
    t->start = i;
    if (i >= len) { t->type = TK_EOF; t->end = i; return; }
    unsigned char c = (unsigned char)s[i];
    if (isdigit(c) || (c == '.' && i + 1 < len && isdigit((unsigned char)s[i + 1]))) {
        int j = i;
        while (j < len && isdigit((unsigned char)s[j])) j++;
        if (j < len && s[j] == '.' && j + 1 < len && isdigit((unsigned char)s[j + 1])) {
            j++;
            while (j < len && isdigit((unsigned char)s[j])) j++;
        }
        /* scientific notation 1.5e-3 / 2E10 (not "2e" = 2·e) */
        if (j < len && (s[j] == 'e' || s[j] == 'E')) {
            int k = j + 1;
            if (k < len && (s[k] == '+' || s[k] == '-')) k++;
            if (k < len && isdigit((unsigned char)s[k])) {
                while (k < len && isdigit((unsigned char)s[k])) k++;
                j = k;
            }
        }
        t->type = TK_NUM;
        t->len = j - i;
        t->end = j;
        return;
    }
    if (isalpha(c)) {
        int j = i;
        while (j < len && isalpha((unsigned char)s[j])) j++;
        int n = j - i;
        for (size_t k = 0; k < sizeof PLAIN / sizeof PLAIN[0]; k++) {
            if ((int)strlen(PLAIN[k].name) == n && !strncasecmp(s + i, PLAIN[k].name, (size_t)n)) {
                t->type = PLAIN[k].type;
                t->ival = PLAIN[k].ival;
                t->end = j;
                t->len = n;
                return;
            }
        }
        if (n >= 4 || (n >= 2 && is_shortword(s + i, n))) {
            t->type = TK_WORD;
            t->len = n;
            t->end = j;
            return;
        }
        /* single letter symbol (a run of 2-3 letters is a product: lex one letter) */
        t->type = TK_SYM;
        t->name[0] = (char)c;
        t->name[1] = 0;
        t->end = lex_subscript(s, len, i + 1, t);
        return;
    }
    if (c == '\\') {
        int j = i + 1;
        if (j >= len) { t->type = TK_BAD; t->end = len; return; }
        if (!isalpha((unsigned char)s[j])) {
            t->end = j + 1;
            switch (s[j]) {
            case '{': t->type = TK_LSET; return;
            case '}': t->type = TK_RSET; return;
            case '\\': t->type = TK_ROWSEP; return;
            case '|': t->type = TK_OP; t->ival = '|'; return;
            case '&': t->type = TK_SKIP; return;
            case ',': case ';': case ':': case '!': case ' ': t->type = TK_SKIP; return;
            default: t->type = TK_BAD; return;
            }
        }
        while (j < len && isalpha((unsigned char)s[j])) j++;
        int n = j - i - 1;
        const char *nm = s + i + 1;
        int best = -1, bestlen = 0;
        for (size_t k = 0; k < N_CMDS; k++) {
            int cl = (int)strlen(CMDS[k].name);
            if (cl == n && !strncmp(nm, CMDS[k].name, (size_t)n)) { best = (int)k; bestlen = cl; break; }
        }
        if (best < 0) { /* \quadx-style run-ons: the longest known command prefix (>= 2 letters) */
            for (size_t k = 0; k < N_CMDS; k++) {
                int cl = (int)strlen(CMDS[k].name);
                if (cl >= 2 && cl < n && cl > bestlen && !strncmp(nm, CMDS[k].name, (size_t)cl)) {
                    best = (int)k;
                    bestlen = cl;
                }
            }
        }
        if (best < 0) { /* unknown command (Greek letters etc.): a symbol named after it */
            t->type = TK_SYM;
            snprintf(t->name, sizeof t->name, "\\%.*s", n > 20 ? 20 : n, nm);
            t->end = lex_subscript(s, len, j, t);
            return;
        }
        j = i + 1 + bestlen;
        t->type = CMDS[best].type;
        t->ival = CMDS[best].ival;
        t->end = j;
        if (t->type == TK_TEXT) { /* \text{...}: content span */
            int k = j, cs, cl;
            while (k < len && s[k] == ' ') k++;
            if (k < len && s[k] == '{') {
                int e = read_group(s, len, k, &cs, &cl);
                if (e < 0) { t->type = TK_BAD; t->end = len; return; }
                t->start = cs;
                t->len = cl;
                t->end = e;
                /* separators and empty text */
                int a = cs, b = cs + cl;
                while (a < b && isspace((unsigned char)s[a])) a++;
                while (b > a && (isspace((unsigned char)s[b - 1]) || s[b - 1] == ',')) b--;
                int digits = 0;
                for (int q = a; q < b; q++) digits |= isdigit((unsigned char)s[q]) != 0;
                if (b == a) t->type = TK_SKIP;
                else if (digits) { t->type = TK_SKIP; t->end = j; } /* \text{{12}}: math inside */
                else if ((b - a == 3 && !strncasecmp(s + a, "and", 3)) || (b - a == 2 && !strncasecmp(s + a, "or", 2)))
                    t->type = TK_SEPW;
                else if (b - a == 1 && isalpha((unsigned char)s[a])) { /* \text{E}, \mathrm-like */
                    t->type = TK_SYM;
                    t->name[0] = s[a];
                    t->name[1] = 0;
                }
            } else {
                t->type = TK_BAD;
            }
        } else if (t->type == TK_BEGIN || t->type == TK_END) {
            int k = j, cs, cl;
            if (k < len && s[k] == '{') {
                int e = read_group(s, len, k, &cs, &cl);
                if (e < 0) { t->type = TK_BAD; t->end = len; return; }
                t->end = e;
                t->start = cs;
                t->len = cl;
                int ok = 0;
                static const char *const ENVS[] = {"pmatrix", "bmatrix", "matrix", "Bmatrix", "vmatrix",
                                                   "smallmatrix", "array", NULL};
                for (int q = 0; ENVS[q]; q++)
                    if ((int)strlen(ENVS[q]) == cl && !strncmp(s + cs, ENVS[q], (size_t)cl)) ok = 1;
                if (!ok) t->type = TK_BAD;
                if (ok && t->type == TK_BEGIN && cl == 5 && !strncmp(s + cs, "array", 5) && e < len && s[e] == '{') {
                    int e2 = read_group(s, len, e, &cs, &cl); /* column spec */
                    if (e2 > 0) t->end = e2;
                }
            } else {
                t->type = TK_BAD;
            }
        }
        return;
    }
    t->end = i + 1;
    switch (c) {
    case '+': case '-': case '*': case '/': case '^': case '(': case ')': case '[': case ']':
    case '{': case '}': case ',': case ';': case ':': case '|': case '!': case '%': case '_': case '\'':
        t->type = TK_OP;
        t->ival = c;
        return;
    case '=': t->type = TK_REL; t->ival = R_EQ; return;
    case '<':
        if (i + 1 < len && s[i + 1] == '=') { t->type = TK_REL; t->ival = R_LE; t->end = i + 2; return; }
        t->type = TK_REL; t->ival = R_LT; return;
    case '>':
        if (i + 1 < len && s[i + 1] == '=') { t->type = TK_REL; t->ival = R_GE; t->end = i + 2; return; }
        t->type = TK_REL; t->ival = R_GT; return;
    case '&': t->type = TK_AMP; return;
    case '.': case '?': case '"': case '`': t->type = TK_SKIP; return;
    default:
        if (c >= 0x80) { /* other UTF-8: part of a word */
            int j = i;
            while (j < len && (unsigned char)s[j] >= 0x80) j++;
            t->type = TK_WORD;
            t->len = j - i;
            t->end = j;
            return;
        }
        t->type = TK_BAD;
        return;
    }
}

static tok *peek(P *p) {
    while (!p->have) {
        lex_at(p, p->pos, &p->cur);
        p->have = 1;
        if (p->cur.type == TK_SKIP) { /* ignorable command: consume and re-lex */
            p->pos = p->cur.end;
            p->have = 0;
            if (++p->ntok > MR_MAX_TOKENS) { fail(p, "too many tokens"); p->cur.type = TK_EOF; p->have = 1; }
        }
    }
    return &p->cur;
}

static void advance(P *p) {
    peek(p);
    p->pos = p->cur.end;
    p->have = 0;
    if (++p->ntok > MR_MAX_TOKENS) fail(p, "too many tokens");
}

static int is_op(P *p, int c) {
    tok *t = peek(p);
    return t->type == TK_OP && t->ival == c;
}

/* ---- node construction ---------------------------------------------------------------- */
static int new_node(P *p, int type) {
    mr_arena *a = p->a;
    if (a->nnodes >= MR_MAX_NODES) return fail(p, "too many nodes");
    int i = a->nnodes++;
    mr_node *n = &a->nodes[i];
    memset(n, 0, sizeof *n);
    n->t = (uint8_t)type;
    n->kid = n->next = n->last = -1;
    n->var = -1;
    n->ndec = -1;
    return i;
}

static void add_kid(P *p, int parent, int kid) {
    mr_node *n = &p->a->nodes[parent];
    if (n->kid < 0) n->kid = kid;
    else p->a->nodes[n->last].next = kid;
    n->last = kid;
    p->a->nodes[kid].next = -1;
}

static int node1(P *p, int type, int a) {
    if (a < 0) return -1;
    int n = new_node(p, type);
    if (n < 0) return -1;
    add_kid(p, n, a);
    return n;
}

static int node2(P *p, int type, int a, int b) {
    if (a < 0 || b < 0) return -1;
    int n = new_node(p, type);
    if (n < 0) return -1;
    add_kid(p, n, a);
    add_kid(p, n, b);
    return n;
}

static int new_num_slot(P *p) {
    mr_arena *a = p->a;
    if (a->nnums >= MR_MAX_NUMS) return fail(p, "too many numbers");
    if (!a->nums) {
        a->nums = malloc(sizeof(mpq_t) * MR_MAX_NUMS);
        if (!a->nums) return fail(p, "out of memory");
    }
    if (a->nnums >= a->nums_init) mpq_init(a->nums[a->nums_init++]);
    return a->nnums++;
}

static int num_int(P *p, long v) {
    int n = new_node(p, N_NUM);
    if (n < 0) return -1;
    int k = new_num_slot(p);
    if (k < 0) return -1;
    mpq_set_si(p->a->nums[k], v, 1);
    p->a->nodes[n].num = k;
    p->a->nodes[n].sig = 1;
    return n;
}

/* Decimal literal "123.45", ".5", "1.5e-3" -> exact rational. */
static int num_lit(P *p, const char *s, int len) {
    if (len > 1000) return fail(p, "number literal too long");
    char buf[1024];
    int nb = 0, ndec = -1, exp10 = 0, sig = 0, lead = 1;
    for (int i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') { ndec = 0; continue; }
        if (c == 'e' || c == 'E') {
            exp10 = atoi(s + i + 1);
            if (exp10 > 1000 || exp10 < -1000) return fail(p, "exponent too large");
            break;
        }
        if (lead && c == '0') { if (ndec >= 0) ndec++; continue; }
        lead = 0;
        sig++;
        buf[nb++] = c;
        if (ndec >= 0) ndec++;
    }
    if (!nb) buf[nb++] = '0';
    buf[nb] = 0;
    int n = new_node(p, N_NUM);
    if (n < 0) return -1;
    int k = new_num_slot(p);
    if (k < 0) return -1;
    mpq_ptr q = p->a->nums[k];
    mpz_set_str(mpq_numref(q), buf, 10);
    int scale = (ndec > 0 ? ndec : 0) - exp10;
    mpz_set_ui(mpq_denref(q), 1);
    if (scale > 0) mpz_ui_pow_ui(mpq_denref(q), 10, (unsigned long)scale);
    else if (scale < 0) {
        mpz_t f;
        mpz_init(f);
        mpz_ui_pow_ui(f, 10, (unsigned long)-scale);
        mpz_mul(mpq_numref(q), mpq_numref(q), f);
        mpz_clear(f);
    }
    mpq_canonicalize(q);
    mr_node *nd = &p->a->nodes[n];
    nd->num = k;
    nd->ndec = (int16_t)(exp10 ? -1 : ndec); /* scientific literals are treated as exact */
    nd->sig = (int16_t)(sig ? sig : 1);
    return n;
}

static int intern_var(P *p, const char *name) {
    mr_arena *a = p->a;
    for (int i = 0; i < a->nvars; i++)
        if (!strcmp(a->vars[i], name)) return i;
    if (a->nvars >= MR_MAX_VARS) return fail(p, "too many variables");
    snprintf(a->vars[a->nvars], sizeof a->vars[0], "%s", name);
    return a->nvars++;
}

static int sym_node(P *p, const char *name) {
    if (!strcmp(name, "e")) return new_node(p, N_E);
    int v = intern_var(p, name);
    if (v < 0) return -1;
    int n = new_node(p, N_SYM);
    if (n < 0) return -1;
    p->a->nodes[n].var = (int16_t)v;
    return n;
}

static int text_node(P *p, const char *s, int len) {
    mr_arena *a = p->a;
    int n = new_node(p, N_TEXT);
    if (n < 0) return -1;
    int off = a->ntext, l = 0;
    for (int i = 0; i < len && a->ntext + 2 < (int)sizeof a->text; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c >= 0x80) { a->text[a->ntext++] = (char)tolower(c); l++; }
    }
    a->text[a->ntext++] = 0;
    a->nodes[n].num = off;
    a->nodes[n].cols = (int16_t)l;
    return n;
}

/* ---- parser --------------------------------------------------------------------------- */
static int parse_expr(P *p);
static int parse_union(P *p);
static int parse_power(P *p);
static int parse_unary(P *p);

#define ENTER(p)                                                          \
    do {                                                                  \
        if (++(p)->depth > MR_MAX_DEPTH) return fail((p), "nesting too deep"); \
    } while (0)
#define LEAVE(p) ((p)->depth--)

/* A LaTeX command argument: {group} or a single character / command. */
static int latex_arg(P *p) {
    p->have = 0;
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, "missing argument");
    char c = p->s[p->pos];
    if (c == '{') {
        advance(p);
        int e = parse_union(p);
        if (e < 0) return -1;
        if (!is_op(p, '}')) return fail(p, "unbalanced braces");
        advance(p);
        return e;
    }
    if (isdigit((unsigned char)c)) {
        p->pos++;
        p->ntok++;
        return num_lit(p, &c, 1);
    }
    if (isalpha((unsigned char)c)) {
        char nm[2] = {c, 0};
        p->pos++;
        p->ntok++;
        return sym_node(p, nm);
    }
    if (c == '\\') return parse_power(p);
    return fail(p, "bad argument");
}

static int can_start_factor(P *p) {
    tok *t = peek(p);
    switch (t->type) {
    case TK_NUM: case TK_SYM: case TK_PI: case TK_INF: case TK_FUNC: case TK_FRAC: case TK_SQRT:
    case TK_BINOM: case TK_LFLOOR: case TK_LCEIL: case TK_BEGIN: case TK_LSET:
        return 1;
    case TK_OP:
        return t->ival == '(' || t->ival == '{' || (t->ival == '|' && p->abs_depth == 0);
    default:
        return 0;
    }
}

/* items separated by ',' / ';' inside brackets, until a closing op in `closers`. */
static int parse_seq(P *p, int container, const char *closers, int close_set) {
    for (int count = 0;; count++) {
        tok *t = peek(p);
        if (count == 0 && ((close_set && t->type == TK_RSET) || (t->type == TK_OP && strchr(closers, t->ival) && t->ival))) break;
        if (count >= MR_MAX_ITEMS * 4) return fail(p, "too many elements");
        int e = parse_union(p);
        if (e < 0) return -1;
        /* allow relations inside brackets: (x=1, y=2) keeps the value */
        while (peek(p)->type == TK_REL || peek(p)->type == TK_APPROX) {
            advance(p);
            e = parse_union(p);
            if (e < 0) return -1;
        }
        add_kid(p, container, e);
        t = peek(p);
        if (t->type == TK_OP && (t->ival == ',' || t->ival == ';')) { advance(p); continue; }
        break;
    }
    return 0;
}

static int count_kids(mr_arena *a, int n) {
    int c = 0;
    for (int k = a->nodes[n].kid; k >= 0; k = a->nodes[k].next) c++;
    return c;
}

static int parse_matrix(P *p) {
    int m = new_node(p, N_MATRIX);
    if (m < 0) return -1;
    int rows = 0, cols = -1, cur = 0;
    for (;;) {
        tok *t = peek(p);
        if (t->type == TK_END) { advance(p); break; }
        if (t->type == TK_EOF) return fail(p, "unterminated matrix");
        if (t->type == TK_ROWSEP) {
            advance(p);
            if (cur == 0) continue;
            if (cols >= 0 && cur != cols) return fail(p, "ragged matrix");
            cols = cur;
            rows++;
            cur = 0;
            continue;
        }
        if (t->type == TK_AMP) { advance(p); continue; }
        int e = parse_expr(p);
        if (e < 0) return -1;
        add_kid(p, m, e);
        if (++cur > 64) return fail(p, "matrix too large");
        t = peek(p);
        if (t->type != TK_AMP && t->type != TK_ROWSEP && t->type != TK_END) return fail(p, "bad matrix cell");
    }
    if (cur) {
        if (cols >= 0 && cur != cols) return fail(p, "ragged matrix");
        cols = cur;
        rows++;
    }
    if (rows == 0 || rows > 64) return fail(p, "empty matrix");
    p->a->nodes[m].rows = (int16_t)rows;
    p->a->nodes[m].cols = (int16_t)cols;
    return m;
}

static int parse_primary(P *p) {
    ENTER(p);
    tok *t = peek(p);
    int r = -1;
    switch (t->type) {
    case TK_NUM: {
        int st = t->start, ln = t->len;
        advance(p);
        r = num_lit(p, p->s + st, ln);
        break;
    }
    case TK_SYM: {
        char nm[24];
        memcpy(nm, t->name, sizeof nm);
        advance(p);
        r = sym_node(p, nm);
        break;
    }
    case TK_PI: advance(p); r = new_node(p, N_PI); break;
    case TK_INF: advance(p); r = new_node(p, N_INF); break;
    case TK_EMPTYSET: advance(p); r = new_node(p, N_SET); break;
    case TK_FRAC: {
        advance(p);
        int a = latex_arg(p);
        if (a < 0) break;
        int b = latex_arg(p);
        r = node2(p, N_DIV, a, b);
        break;
    }
    case TK_BINOM: {
        advance(p);
        int a = latex_arg(p);
        if (a < 0) break;
        int b = latex_arg(p);
        r = node2(p, N_FUNC, a, b);
        if (r >= 0) p->a->nodes[r].op = F_BINOM;
        break;
    }
    case TK_SQRT: {
        advance(p);
        p->have = 0;
        skip_ws(p);
        int idx = -1;
        if (p->pos < p->len && p->s[p->pos] == '[') {
            advance(p);
            idx = parse_expr(p);
            if (idx < 0) break;
            if (!is_op(p, ']')) { fail(p, "bad root index"); break; }
            advance(p);
            p->have = 0;
            skip_ws(p);
        }
        int a;
        if (p->pos < p->len && p->s[p->pos] == '(' ) { /* plain sqrt(x) */
            a = parse_primary(p);
        } else {
            a = latex_arg(p);
        }
        if (a < 0) break;
        if (idx >= 0) {
            r = node2(p, N_FUNC, a, idx);
            if (r >= 0) p->a->nodes[r].op = F_ROOT;
        } else {
            r = node1(p, N_FUNC, a);
            if (r >= 0) p->a->nodes[r].op = F_SQRT;
        }
        break;
    }
    case TK_FUNC: {
        int f = t->ival;
        advance(p);
        int pw = -1, base = -1;
        for (int rep = 0; rep < 2; rep++) {
            if (is_op(p, '^') && pw < 0) {
                advance(p);
                pw = latex_arg(p);
                if (pw < 0) goto out;
            } else if (is_op(p, '_') && base < 0 && f == F_LOG) {
                advance(p);
                base = latex_arg(p);
                if (base < 0) goto out;
            }
        }
        int a;
        if (is_op(p, '(')) a = parse_primary(p);
        else a = parse_power(p);
        if (a < 0) break;
        if (base >= 0) {
            r = node2(p, N_FUNC, a, base);
            if (r >= 0) p->a->nodes[r].op = F_LOGB;
        } else {
            r = node1(p, N_FUNC, a);
            if (r >= 0) p->a->nodes[r].op = (uint8_t)f;
        }
        if (r >= 0 && pw >= 0) r = node2(p, N_POW, r, pw);
        break;
    }
    case TK_LFLOOR: case TK_LCEIL: {
        int fl = t->type == TK_LFLOOR;
        advance(p);
        int a = parse_expr(p);
        if (a < 0) break;
        if (peek(p)->type != (fl ? TK_RFLOOR : TK_RCEIL)) { fail(p, "unbalanced floor/ceil"); break; }
        advance(p);
        r = node1(p, N_FUNC, a);
        if (r >= 0) p->a->nodes[r].op = fl ? F_FLOOR : F_CEIL;
        break;
    }
    case TK_BEGIN: advance(p); r = parse_matrix(p); break;
    case TK_LSET: {
        advance(p);
        r = new_node(p, N_SET);
        if (r < 0) break;
        if (parse_seq(p, r, "", 1) < 0) { r = -1; break; }
        if (peek(p)->type != TK_RSET) { r = fail(p, "unbalanced \\{"); break; }
        advance(p);
        break;
    }
    case TK_OP:
        if (t->ival == '(' || t->ival == '[') {
            int open = t->ival;
            advance(p);
            int c = new_node(p, N_TUPLE);
            if (c < 0) break;
            if (parse_seq(p, c, ")]", 0) < 0) break;
            tok *e = peek(p);
            if (!(e->type == TK_OP && (e->ival == ')' || e->ival == ']'))) { fail(p, "unbalanced brackets"); break; }
            int close = e->ival;
            advance(p);
            int nk = count_kids(p->a, c);
            if (nk == 1 && ((open == '(' && close == ')') || (open == '[' && close == ']'))) {
                r = p->a->nodes[c].kid;
                break;
            }
            if (nk == 0) { fail(p, "empty brackets"); break; }
            p->a->nodes[c].op = (uint8_t)open;
            p->a->nodes[c].op2 = (uint8_t)close;
            r = c;
        } else if (t->ival == '{') {
            advance(p);
            int c = new_node(p, N_SET);
            if (c < 0) break;
            if (parse_seq(p, c, "}", 0) < 0) break;
            if (!is_op(p, '}')) { fail(p, "unbalanced braces"); break; }
            advance(p);
            int nk = count_kids(p->a, c);
            r = nk == 1 ? p->a->nodes[c].kid : c;
        } else if (t->ival == '|') {
            advance(p);
            p->abs_depth++;
            int a = parse_expr(p);
            p->abs_depth--;
            if (a < 0) break;
            if (!is_op(p, '|')) { fail(p, "unbalanced |"); break; }
            advance(p);
            r = node1(p, N_FUNC, a);
            if (r >= 0) p->a->nodes[r].op = F_ABS;
        } else {
            fail(p, "unexpected operator");
        }
        break;
    case TK_EOF: fail(p, "unexpected end"); break;
    default: fail(p, "unexpected token"); break;
    }
out:
    LEAVE(p);
    return p->err ? -1 : r;
}

static int parse_postfix(P *p) {
    int r = parse_primary(p);
    for (int i = 0; r >= 0 && i < 8; i++) {
        if (is_op(p, '!')) { advance(p); r = node1(p, N_FACT, r); }
        else if (is_op(p, '%')) { advance(p); r = node1(p, N_PCT, r); }
        else if (is_op(p, '\'')) { advance(p); }
        else break;
    }
    return r;
}

static int parse_power(P *p) {
    ENTER(p);
    int b = parse_postfix(p);
    if (b >= 0 && is_op(p, '^')) {
        advance(p);
        int e;
        p->have = 0;
        skip_ws(p);
        char c = p->pos < p->len ? p->s[p->pos] : 0;
        if (c == '{' || c == '\\' || (p->latex && (isdigit((unsigned char)c) || isalpha((unsigned char)c)))) e = latex_arg(p);
        else e = parse_unary(p);
        b = node2(p, N_POW, b, e);
        /* postfix after a power: x^2% is rare; n!^2 handled by postfix of the base */
        if (b >= 0 && is_op(p, '%')) { advance(p); b = node1(p, N_PCT, b); }
    }
    LEAVE(p);
    return p->err ? -1 : b;
}

static int parse_unary(P *p) {
    ENTER(p);
    int r;
    tok *t = peek(p);
    if (t->type == TK_OP && t->ival == '-') { advance(p); r = node1(p, N_NEG, parse_unary(p)); }
    else if (t->type == TK_OP && t->ival == '+') { advance(p); r = parse_unary(p); }
    else if (t->type == TK_PM) {
        int sign = t->ival;
        advance(p);
        int z = num_int(p, 0);
        r = node2(p, N_PM, z, parse_unary(p));
        if (r >= 0) p->a->nodes[r].op = (uint8_t)sign;
    } else r = parse_power(p);
    LEAVE(p);
    return p->err ? -1 : r;
}

static int is_int_lit(mr_arena *a, int n) {
    return n >= 0 && a->nodes[n].t == N_NUM && a->nodes[n].ndec < 0 && mpz_cmp_ui(mpq_denref(a->nums[a->nodes[n].num]), 1) == 0;
}

static int skip_unit(P *p) {
    /* a unit after a value: words / \text{...}, optionally ^2 / ^3 */
    int any = 0;
    for (int i = 0; i < 16; i++) {
        tok *t = peek(p);
        if (t->type == TK_WORD || t->type == TK_TEXT) {
            advance(p);
            any = 1;
            if (is_op(p, '^')) {
                advance(p);
                tok *e = peek(p);
                if (e->type == TK_NUM || e->type == TK_OP) advance(p);
            }
            if (is_op(p, '/')) { /* km/h, $ per unit */
                advance(p);
                if (peek(p)->type == TK_WORD || peek(p)->type == TK_SYM) advance(p);
            }
        } else break;
    }
    return any;
}

static int parse_term(P *p) {
    ENTER(p);
    int f = parse_unary(p), flat = -1;
    int nf = 1;
    for (int i = 0; f >= 0 && i < MR_MAX_TOKENS; i++) {
        tok *t = peek(p);
        if (t->type == TK_OP && (t->ival == '*' || t->ival == '/' || t->ival == ':')) {
            int op = t->ival;
            advance(p);
            int g = parse_unary(p);
            if (g < 0) { f = -1; break; }
            if (op == '*' && f == flat) add_kid(p, f, g);
            else if (op == '*') flat = f = node2(p, N_MUL, f, g);
            else f = node2(p, N_DIV, f, g);
            nf++;
        } else if (t->type == TK_WORD || t->type == TK_TEXT) {
            skip_unit(p);
            break;
        } else if (can_start_factor(p)) {
            int frac = t->type == TK_FRAC;
            if (t->type == TK_NUM && p->a->nodes[f].t == N_NUM) break; /* "1 000" is not 1·000 */
            int g = parse_power(p);
            if (g < 0) { f = -1; break; }
            mr_arena *a = p->a;
            if (frac && nf == 1 && is_int_lit(a, f) && a->nodes[g].t == N_DIV && is_int_lit(a, a->nodes[g].kid) &&
                is_int_lit(a, a->nodes[a->nodes[g].kid].next) &&
                mpq_cmp(a->nums[a->nodes[a->nodes[g].kid].num], a->nums[a->nodes[a->nodes[a->nodes[g].kid].next].num]) < 0 &&
                mpq_sgn(a->nums[a->nodes[a->nodes[g].kid].num]) > 0) {
                f = node2(p, N_ADD, f, g); /* mixed number 3\frac12 */
            } else if (f == flat) {
                add_kid(p, f, g);
            } else {
                flat = f = node2(p, N_MUL, f, g);
            }
            nf++;
        } else break;
    }
    LEAVE(p);
    return p->err ? -1 : f;
}

static int parse_expr(P *p) {
    ENTER(p);
    int acc = parse_term(p), flat = -1; /* flat: the N_ADD this loop is extending */
    for (int i = 0; acc >= 0 && i < MR_MAX_TOKENS; i++) {
        tok *t = peek(p);
        if (t->type == TK_OP && (t->ival == '+' || t->ival == '-')) {
            int op = t->ival;
            advance(p);
            int b = parse_term(p);
            if (b >= 0 && op == '-') b = node1(p, N_NEG, b);
            if (b < 0) { acc = -1; break; }
            if (acc == flat) add_kid(p, acc, b); /* a + b + c: one node, bounded depth */
            else flat = acc = node2(p, N_ADD, acc, b);
        } else if (t->type == TK_PM) {
            int sign = t->ival;
            advance(p);
            int b = parse_term(p);
            acc = node2(p, N_PM, acc, b);
            if (acc >= 0) p->a->nodes[acc].op = (uint8_t)sign;
        } else break;
    }
    LEAVE(p);
    return p->err ? -1 : acc;
}

static int parse_union(P *p) {
    ENTER(p);
    int a = parse_expr(p);
    if (a >= 0 && peek(p)->type == TK_CUP) {
        int u = new_node(p, N_UNION);
        if (u >= 0) {
            add_kid(p, u, a);
            for (int i = 0; i < MR_MAX_ITEMS && peek(p)->type == TK_CUP; i++) {
                advance(p);
                int b = parse_expr(p);
                if (b < 0) { u = -1; break; }
                add_kid(p, u, b);
            }
        }
        a = u;
    }
    LEAVE(p);
    return p->err ? -1 : a;
}

static int has_var_or_bad(mr_arena *a, int n, int depth) {
    if (depth > MR_MAX_DEPTH * 2) return 1;
    mr_node *x = &a->nodes[n];
    if (x->t == N_SYM || x->t == N_TEXT || x->t == N_LIST || x->t == N_REL) return 1;
    for (int k = x->kid; k >= 0; k = a->nodes[k].next)
        if (has_var_or_bad(a, k, depth + 1)) return 1;
    return 0;
}

static int make_interval(P *p, int lo, int lo_closed, int hi, int hi_closed) {
    if (lo < 0) lo = node1(p, N_NEG, new_node(p, N_INF));
    if (hi < 0) hi = new_node(p, N_INF);
    int t = node2(p, N_TUPLE, lo, hi);
    if (t >= 0) {
        p->a->nodes[t].op = lo_closed ? '[' : '(';
        p->a->nodes[t].op2 = hi_closed ? ']' : ')';
    }
    return t;
}

/* Inequality chain over one variable -> interval (N_TUPLE with bracket kinds). */
static int ineq_to_interval(P *p, int *items, int *ops, int n) {
    mr_arena *a = p->a;
    if (n == 2) {
        int x = items[0], c = items[1], op = ops[0];
        if (a->nodes[x].t != N_SYM) { /* c op x  ->  x op' c */
            if (a->nodes[c].t != N_SYM) return -2;
            int tmp = x; x = c; c = tmp;
            op = op == R_LT ? R_GT : op == R_GT ? R_LT : op == R_LE ? R_GE : op == R_GE ? R_LE : op;
        }
        if (has_var_or_bad(a, c, 0)) return -2;
        switch (op) {
        case R_LT: return make_interval(p, -1, 0, c, 0);
        case R_LE: return make_interval(p, -1, 0, c, 1);
        case R_GT: return make_interval(p, c, 0, -1, 0);
        case R_GE: return make_interval(p, c, 1, -1, 0);
        default: return -2;
        }
    }
    if (n == 3 && a->nodes[items[1]].t == N_SYM && !has_var_or_bad(a, items[0], 0) && !has_var_or_bad(a, items[2], 0)) {
        int o1 = ops[0], o2 = ops[1];
        if ((o1 == R_LT || o1 == R_LE) && (o2 == R_LT || o2 == R_LE))
            return make_interval(p, items[0], o1 == R_LE, items[2], o2 == R_LE);
        if ((o1 == R_GT || o1 == R_GE) && (o2 == R_GT || o2 == R_GE))
            return make_interval(p, items[2], o2 == R_GE, items[0], o1 == R_GE);
    }
    return -2;
}

int mr_is_label(const mr_arena *a, int n, int depth);

static int parse_item(P *p) {
    ENTER(p);
    /* leading prose words ("The answer is", "x is") */
    int wstart = -1, wend = -1, nwords = 0;
    for (int i = 0; i < 64; i++) {
        tok *t = peek(p);
        if (t->type == TK_WORD || t->type == TK_TEXT) {
            if (wstart < 0) wstart = t->start;
            wend = t->start + t->len;
            nwords++;
            advance(p);
        } else break;
    }
    tok *t = peek(p);
    int r = -1;
    if (nwords && t->type == TK_REL && t->ival == R_EQ) { /* "the distance is 5" */
        advance(p);
        t = peek(p);
    }
    if (nwords && (t->type == TK_EOF || (t->type == TK_OP && (t->ival == ',' || t->ival == ';')) || t->type == TK_SEPW)) {
        r = text_node(p, p->s + wstart, wend - wstart);
        LEAVE(p);
        return r;
    }
    int items[8], ops[8], n = 0;
    items[n++] = parse_union(p);
    if (items[0] < 0) { LEAVE(p); return -1; }
    while (n < 8) {
        t = peek(p);
        if (t->type != TK_REL && t->type != TK_APPROX) break;
        ops[n - 1] = t->type == TK_APPROX ? -1 : t->ival;
        advance(p);
        skip_unit(p);
        int e = parse_union(p);
        if (e < 0) { LEAVE(p); return -1; }
        items[n++] = e;
    }
    skip_unit(p);
    /* ≈: "x ≈ 11" keeps 11; "1/3 ≈ 0.33" keeps 1/3 */
    for (int i = 0; i < n - 1; i++) {
        if (ops[i] != -1) continue;
        if (i == 0 && mr_is_label(p->a, items[0], 0)) {
            memmove(items, items + 1, sizeof(int) * (size_t)(n - 1));
            memmove(ops, ops + 1, sizeof(int) * (size_t)(n - 2 > 0 ? n - 2 : 0));
            n--;
            i = -1;
            continue;
        }
        n = i + 1;
        break;
    }
    if (n == 1) r = items[0];
    else {
        int all_eq = 1, all_ineq = 1;
        for (int i = 0; i < n - 1; i++) {
            if (ops[i] != R_EQ) all_eq = 0;
            if (!(ops[i] == R_LT || ops[i] == R_LE || ops[i] == R_GT || ops[i] == R_GE)) all_ineq = 0;
        }
        if (all_ineq) {
            r = ineq_to_interval(p, items, ops, n);
            if (r == -2) {
                r = node2(p, N_REL, items[0], items[n - 1]);
                if (r >= 0) p->a->nodes[r].op = (uint8_t)ops[0];
            }
        } else if (all_eq || (n == 2 && ops[0] == R_IN)) {
            r = node2(p, N_REL, items[0], items[n - 1]);
            if (r >= 0) p->a->nodes[r].op = (uint8_t)ops[0];
        } else if (n == 3 && ops[0] == R_EQ && ops[1] == R_IN) { /* x = y \in S rare */
            r = node2(p, N_REL, items[0], items[2]);
            if (r >= 0) p->a->nodes[r].op = R_IN;
        } else {
            r = node2(p, N_REL, items[0], items[n - 1]);
            if (r >= 0) p->a->nodes[r].op = (uint8_t)ops[0];
        }
    }
    LEAVE(p);
    return p->err ? -1 : r;
}

int mr_parse(mr_arena *a, const char *s, char *why, size_t whylen) {
    size_t sl = strlen(s);
    if (sl > MR_MAX_ANSWER) {
        snprintf(why, whylen, "answer too long");
        return -1;
    }
    char buf[MR_MAX_ANSWER * 2 + 64];
    mr_prenorm(s, buf, sizeof buf);
    P p;
    memset(&p, 0, sizeof p);
    p.a = a;
    p.s = buf;
    p.len = (int)strlen(buf);
    p.why = why;
    p.whylen = whylen;
    p.latex = strchr(buf, '\\') != NULL || strchr(buf, '{') != NULL;
    /* strip trailing periods / commas */
    while (p.len > 0 && (buf[p.len - 1] == '.' || buf[p.len - 1] == ',' || isspace((unsigned char)buf[p.len - 1]))) p.len--;
    buf[p.len] = 0;
    if (p.len == 0) {
        snprintf(why, whylen, "empty answer");
        return -1;
    }
    int list = new_node(&p, N_LIST);
    if (list < 0) return -1;
    for (int count = 0;; count++) {
        if (count >= MR_MAX_ITEMS) return fail(&p, "too many answers");
        tok *t = peek(&p);
        if (t->type == TK_EOF) break;
        if (t->type == TK_SEPW || (t->type == TK_OP && (t->ival == ',' || t->ival == ';'))) { advance(&p); continue; }
        int e = parse_item(&p);
        if (e < 0) return -1;
        add_kid(&p, list, e);
        t = peek(&p);
        if (t->type == TK_EOF) break;
        if (t->type == TK_SEPW || (t->type == TK_OP && (t->ival == ',' || t->ival == ';'))) { advance(&p); continue; }
        return fail(&p, t->type == TK_BAD ? "unknown character or command" : "trailing input");
    }
    if (p.err) return -1;
    int nk = count_kids(a, list);
    if (nk == 0) {
        snprintf(why, whylen, "empty answer");
        return -1;
    }
    return nk == 1 ? a->nodes[list].kid : list;
}
