/* tokenizer.c — byte-level BPE (Hugging Face tokenizer.json) + ChatML; see tokenizer.h.
 * Spec: qwen2.md §5; algorithms follow Hugging Face `tokenizers` (Split "Isolated",
 * ByteLevel, BPE Word::merge_all with a (rank, position) priority queue). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.h"

#include <jansson.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "util.h"

/* The Qwen2 pre-tokenizer regex (qwen2.md §5.3 step 3). */
static const char QWEN2_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* GPT-2 ByteLevel(use_regex=true) regex, used when a tokenizer.json has no Split. */
static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

#define TOK_MAX_ID (1 << 24)
#define TOK_MAX_FILE ((size_t)1 << 30)

/* ---- GPT-2 byte <-> unicode table (qwen2.md §5.3 step 4) ---------------------------- */
static void byte_unicode_table(uint32_t b2u[256], int16_t u2b[0x144]) {
    for (int i = 0; i < 0x144; i++) u2b[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int direct = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        b2u[b] = direct ? (uint32_t)b : (uint32_t)(0x100 + n++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

/* ---- UTF-8 helpers ------------------------------------------------------------------ */
/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if invalid/truncated. Strict:
 * no overlongs, no surrogates, <= U+10FFFF (the same set PCRE2 and utf8proc accept). */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3) return 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4) return 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        return 4;
    }
    return 0;
}

/* Length of the maximal subpart of an ill-formed sequence at s (>= 1), per Unicode §3.9
 * "U+FFFD substitution of maximal subparts" (what Python and Rust from_utf8_lossy do). */
static size_t utf8_invalid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c < 0xE0) need = 2;
    else if (c >= 0xE0 && c < 0xF0) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c < 0xF5) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 1;
    size_t i = 1;
    if (i < n && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i < need && i < n && (s[i] & 0xC0) == 0x80) i++;
    }
    return i;
}

size_t tok_utf8_complete(const char *buf, size_t len) {
    const unsigned char *s = (const unsigned char *)buf;
    /* look back at most 3 bytes for a lead byte whose sequence is incomplete but valid so far */
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned c = s[len - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation: keep looking */
        size_t need = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
        if (need > back && utf8_invalid_len(s + len - back, back) == back) return len - back;
        return len;
    }
    return len;
}

/* Decode one code point of a valid sequence (len from utf8_valid_len). */
static uint32_t utf8_cp(const unsigned char *s, size_t l) {
    if (l == 1) return s[0];
    if (l == 2) return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    if (l == 3) return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
           (s[3] & 0x3F);
}

static size_t utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- growable byte buffer ---------------------------------------------------------- */
typedef struct { char *p; size_t n, cap; } sbuf;
static int sb_put(sbuf *b, const void *d, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
        b->p = q; b->cap = c;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}
static int sb_str(sbuf *b, const char *s) { return sb_put(b, s, strlen(s)); }

/* ---- hash maps ---------------------------------------------------------------------- */
static uint64_t hash_bytes(const void *d, size_t n) {
    /* FNV-1a 64 with a final mix */
    const unsigned char *p = d;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
    h ^= h >> 29; h *= 0xBF58476D1CE4E5B9ULL; h ^= h >> 32;
    return h;
}
static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 31; x *= 0x7FB5D329728EA185ULL; x ^= x >> 27; x *= 0x81DADEF4BC2DD44DULL; x ^= x >> 33;
    return x;
}

/* bytes -> id; keys point into the tokenizer's arena. */
typedef struct { uint32_t off, len; int32_t id; uint32_t h; } smap_slot; /* id < 0 = empty */
typedef struct { smap_slot *s; size_t mask, n; } smap;
/* pair (left id, right id) -> rank, merged id */
typedef struct { uint64_t key; int32_t rank, id; } pmap_slot;           /* rank < 0 = empty */
typedef struct { pmap_slot *s; size_t mask, n; } pmap;

/* ---- the tokenizer ------------------------------------------------------------------- */
typedef struct { char *text; size_t len; int32_t id; int special; } added_tok;

struct tok_tokenizer {
    char *arena;          /* raw bytes of every vocabulary token */
    size_t arena_n, arena_cap;
    uint32_t *tok_off;    /* [vocab_size] offset into arena, */
    int32_t *tok_len;     /* [vocab_size] length, -1 = id not in the vocabulary */
    uint8_t *tok_flags;   /* [vocab_size] 1 = added, 2 = special */
    int vocab_size;
    smap vocab;           /* raw bytes -> id (regular vocabulary) */
    pmap merges;          /* (a, b) -> rank, merged id */
    int32_t byte_id[256]; /* id of each single-byte token */
    added_tok *added;     /* sorted by length, longest first */
    int n_added;
    uint8_t added_first[256]; /* 1 if some added token starts with this byte */
    int nfc;
    pcre2_code *re;
    int jit;
    int eos_id, pad_id;
    size_t max_tok_len;   /* longest regular token in bytes */
    uint32_t b2u[256];
    int16_t u2b[0x144];
};

static int arena_add(tok_tokenizer *t, const char *d, size_t n, uint32_t *off) {
    if (t->arena_n + n > t->arena_cap) {
        size_t c = t->arena_cap ? t->arena_cap : 1 << 20;
        while (c < t->arena_n + n) c *= 2;
        if (c > UINT32_MAX) return srlm_set_error(SRLM_ENOMEM, "tokenizer: vocabulary too large");
        char *q = realloc(t->arena, c);
        if (!q) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
        t->arena = q; t->arena_cap = c;
    }
    memcpy(t->arena + t->arena_n, d, n);
    *off = (uint32_t)t->arena_n;
    t->arena_n += n;
    return 0;
}

static int smap_init(smap *m, size_t expect) {
    size_t c = 1024;
    while (c < expect * 2) c *= 2;
    m->s = malloc(c * sizeof *m->s);
    if (!m->s) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < c; i++) m->s[i].id = -1;
    m->mask = c - 1; m->n = 0;
    return 0;
}
static int32_t smap_get(const tok_tokenizer *t, const char *k, size_t n) {
    const smap *m = &t->vocab;
    uint64_t h = hash_bytes(k, n);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const smap_slot *s = &m->s[i];
        if (s->id < 0) return -1;
        if (s->h == (uint32_t)h && s->len == n && !memcmp(t->arena + s->off, k, n)) return s->id;
    }
}
/* insert (key must be in the arena at off); returns the existing id if present */
static int32_t smap_put(tok_tokenizer *t, uint32_t off, uint32_t n, int32_t id) {
    smap *m = &t->vocab;
    uint64_t h = hash_bytes(t->arena + off, n);
    size_t i = h & m->mask;
    for (;; i = (i + 1) & m->mask) {
        smap_slot *s = &m->s[i];
        if (s->id < 0) break;
        if (s->h == (uint32_t)h && s->len == n && !memcmp(t->arena + s->off, t->arena + off, n)) return s->id;
    }
    m->s[i] = (smap_slot){off, n, id, (uint32_t)h};
    m->n++;
    return -1;
}

static int pmap_init(pmap *m, size_t expect) {
    size_t c = 1024;
    while (c < expect * 2) c *= 2;
    m->s = malloc(c * sizeof *m->s);
    if (!m->s) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < c; i++) m->s[i].rank = -1;
    m->mask = c - 1; m->n = 0;
    return 0;
}
static inline const pmap_slot *pmap_get(const pmap *m, int32_t a, int32_t b) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = hash_u64(k) & m->mask;; i = (i + 1) & m->mask) {
        const pmap_slot *s = &m->s[i];
        if (s->rank < 0) return NULL;
        if (s->key == k) return s;
    }
}
/* keeps the first (lowest-rank) entry of a duplicated merge, like HF */
static void pmap_put(pmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = hash_u64(k) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        if (m->s[i].rank < 0) break;
        if (m->s[i].key == k) return;
    }
    m->s[i] = (pmap_slot){k, rank, id};
    m->n++;
}

void tok_free(tok_tokenizer *t) {
    if (!t) return;
    free(t->arena);
    free(t->tok_off);
    free(t->tok_len);
    free(t->tok_flags);
    free(t->vocab.s);
    free(t->merges.s);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].text);
    free(t->added);
    if (t->re) pcre2_code_free(t->re);
    free(t);
}

/* ---- loading ------------------------------------------------------------------------ */
/* Byte-level string (UTF-8 of GPT-2 unicode chars) -> raw bytes in out (size >= strlen).
 * Returns the byte count, or -1 if a character is outside the byte-level alphabet. */
static long bl_to_bytes(const tok_tokenizer *t, const char *s, size_t n, char *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        size_t l = utf8_valid_len(u + i, n - i);
        if (!l) return -1;
        uint32_t cp = utf8_cp(u + i, l);
        if (cp >= 0x144 || t->u2b[cp] < 0) return -1;
        out[o++] = (char)t->u2b[cp];
        i += l;
    }
    return (long)o;
}

static int grow_ids(tok_tokenizer *t, int want) {
    if (want <= t->vocab_size) return 0;
    uint32_t *o = realloc(t->tok_off, (size_t)want * sizeof *o);
    if (o) t->tok_off = o;
    int32_t *l = realloc(t->tok_len, (size_t)want * sizeof *l);
    if (l) t->tok_len = l;
    uint8_t *f = realloc(t->tok_flags, (size_t)want);
    if (f) t->tok_flags = f;
    if (!o || !l || !f) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
    for (int i = t->vocab_size; i < want; i++) { t->tok_len[i] = -1; t->tok_off[i] = 0; t->tok_flags[i] = 0; }
    t->vocab_size = want;
    return 0;
}

static const char *json_type_name(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE: case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

static int load_vocab(tok_tokenizer *t, const char *file, json_t *vocab) {
    size_t nv = json_object_size(vocab);
    if (smap_init(&t->vocab, nv)) return SRLM_ENOMEM;
    const char *key;
    json_t *val;
    int maxid = -1;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= TOK_MAX_ID)
            return srlm_set_error(SRLM_EFORMAT, "%s: model.vocab[\"%.40s\"]: expected an id in [0, %d), got %s",
                                  file, key, TOK_MAX_ID, json_type_name(val));
        int id = (int)json_integer_value(val);
        if (id > maxid) maxid = id;
    }
    if (grow_ids(t, maxid + 1)) return SRLM_ENOMEM;
    size_t kcap = 256;
    char *kb = malloc(kcap);
    if (!kb) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
    int rc = 0;
    json_object_foreach(vocab, key, val) {
        size_t kn = strlen(key);
        if (kn + 1 > kcap) {
            kcap = kn + 1;
            char *q = realloc(kb, kcap);
            if (!q) { rc = srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory"); break; }
            kb = q;
        }
        long bn = bl_to_bytes(t, key, kn, kb);
        int id = (int)json_integer_value(val);
        if (bn <= 0) {
            rc = srlm_set_error(SRLM_EFORMAT,
                                "%s: model.vocab[\"%.40s\"] (id %d): %s — not a byte-level BPE vocabulary",
                                file, key, id, bn == 0 ? "empty token" : "character outside the GPT-2 byte alphabet");
            break;
        }
        if (t->tok_len[id] >= 0) {
            rc = srlm_set_error(SRLM_EFORMAT, "%s: model.vocab: id %d is used twice (\"%.40s\")", file, id, key);
            break;
        }
        uint32_t off = 0;
        if ((rc = arena_add(t, kb, (size_t)bn, &off))) break;
        t->tok_off[id] = off;
        t->tok_len[id] = (int32_t)bn;
        smap_put(t, off, (uint32_t)bn, id);
    }
    free(kb);
    if (rc) return rc;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = smap_get(t, &c, 1);
        if (t->byte_id[b] < 0)
            return srlm_set_error(SRLM_EFORMAT, "%s: model.vocab lacks the byte token for byte 0x%02X", file, b);
    }
    return 0;
}

static int load_merges(tok_tokenizer *t, const char *file, json_t *merges) {
    size_t nm = json_array_size(merges);
    if (nm >= (size_t)TOK_MAX_ID) return srlm_set_error(SRLM_EFORMAT, "%s: model.merges: too many merges", file);
    if (pmap_init(&t->merges, nm)) return SRLM_ENOMEM;
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; i < nm && !rc; i++) {
        json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t an, bn;
        if (json_is_string(m)) {
            a = json_string_value(m);
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' ') || sp == a || !sp[1]) {
                rc = srlm_set_error(SRLM_EFORMAT, "%s: model.merges[%zu] = \"%.60s\": expected two tokens \"A B\"",
                                    file, i, a);
                break;
            }
            an = (size_t)(sp - a); b = sp + 1; bn = strlen(b);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0)); an = strlen(a);
            b = json_string_value(json_array_get(m, 1)); bn = strlen(b);
        } else {
            rc = srlm_set_error(SRLM_EFORMAT, "%s: model.merges[%zu]: expected \"A B\" or [\"A\", \"B\"], got %s",
                                file, i, json_type_name(m));
            break;
        }
        if (an + bn + 1 > cap) {
            cap = 2 * (an + bn + 1);
            char *q = realloc(buf, cap);
            if (!q) { rc = srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory"); break; }
            buf = q;
        }
        long la = bl_to_bytes(t, a, an, buf);
        long lb = la > 0 ? bl_to_bytes(t, b, bn, buf + la) : -1;
        int32_t ia = la > 0 ? smap_get(t, buf, (size_t)la) : -1;
        int32_t ib = lb > 0 ? smap_get(t, buf + la, (size_t)lb) : -1;
        int32_t im = (ia >= 0 && ib >= 0) ? smap_get(t, buf, (size_t)(la + lb)) : -1;
        if (ia < 0 || ib < 0 || im < 0) {
            rc = srlm_set_error(SRLM_EFORMAT, "%s: model.merges[%zu] (\"%.*s\" + \"%.*s\"): %s is not in model.vocab",
                                file, i, (int)(an < 40 ? an : 40), a, (int)(bn < 40 ? bn : 40), b,
                                ia < 0 ? "the first token" : ib < 0 ? "the second token" : "the merged token");
            break;
        }
        pmap_put(&t->merges, ia, ib, (int32_t)i, im);
    }
    free(buf);
    return rc;
}

static int mark_whole_tokens(tok_tokenizer *t);

static int added_cmp(const void *x, const void *y) {
    const added_tok *a = x, *b = y;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id - b->id;
}

static int load_added(tok_tokenizer *t, const char *file, json_t *arr) {
    if (!arr || json_is_null(arr)) return 0;
    if (!json_is_array(arr))
        return srlm_set_error(SRLM_EFORMAT, "%s: added_tokens: expected an array, got %s", file, json_type_name(arr));
    size_t n = json_array_size(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(arr, i);
        json_t *id = json_object_get(a, "id"), *content = json_object_get(a, "content");
        if (!json_is_object(a) || !json_is_integer(id) || !json_is_string(content))
            return srlm_set_error(SRLM_EFORMAT, "%s: added_tokens[%zu]: expected an object with integer \"id\" and "
                                  "string \"content\"", file, i);
        json_int_t v = json_integer_value(id);
        size_t cl = json_string_length(content);
        if (v < 0 || v >= TOK_MAX_ID)
            return srlm_set_error(SRLM_EFORMAT, "%s: added_tokens[%zu].id = %lld out of range", file, i, (long long)v);
        if (cl == 0) return srlm_set_error(SRLM_EFORMAT, "%s: added_tokens[%zu].content is empty", file, i);
        if (grow_ids(t, (int)v + 1)) return SRLM_ENOMEM;
        added_tok *at = &t->added[t->n_added];
        at->text = malloc(cl + 1);
        if (!at->text) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
        memcpy(at->text, json_string_value(content), cl + 1);
        at->len = cl;
        at->id = (int32_t)v;
        at->special = json_is_true(json_object_get(a, "special"));
        t->n_added++;
        uint32_t off = 0;
        if (arena_add(t, at->text, cl, &off)) return SRLM_ENOMEM;
        t->tok_off[v] = off;
        t->tok_len[v] = (int32_t)cl;
        t->tok_flags[v] = (uint8_t)(1 | (at->special ? 2 : 0));
        t->added_first[(unsigned char)at->text[0]] = 1;
    }
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, added_cmp);
    return 0;
}

static int load_normalizer(tok_tokenizer *t, const char *file, json_t *n) {
    if (!n || json_is_null(n)) return 0;
    const char *type = json_string_value(json_object_get(n, "type"));
    if (!json_is_object(n) || !type)
        return srlm_set_error(SRLM_EFORMAT, "%s: normalizer: expected null or an object with a \"type\"", file);
    if (!strcmp(type, "NFC")) { t->nfc = 1; return 0; }
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list))
            return srlm_set_error(SRLM_EFORMAT, "%s: normalizer.normalizers: expected an array", file);
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) {
            int rc = load_normalizer(t, file, x);
            if (rc) return rc;
        }
        return 0;
    }
    return srlm_set_error(SRLM_EUNSUPPORTED, "%s: normalizer type \"%s\" is not supported (only NFC)", file, type);
}

/* Finds the Split regex (or ByteLevel use_regex) in the pre_tokenizer; *pattern = NULL
 * if none. */
static int find_pretok(const char *file, json_t *p, const char **pattern, int *bytelevel_regex) {
    if (!p || json_is_null(p)) return 0;
    const char *type = json_string_value(json_object_get(p, "type"));
    if (!json_is_object(p) || !type)
        return srlm_set_error(SRLM_EFORMAT, "%s: pre_tokenizer: expected an object with a \"type\"", file);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list))
            return srlm_set_error(SRLM_EFORMAT, "%s: pre_tokenizer.pretokenizers: expected an array", file);
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) {
            int rc = find_pretok(file, x, pattern, bytelevel_regex);
            if (rc) return rc;
        }
        return 0;
    }
    if (!strcmp(type, "Split")) {
        const char *re = json_string_value(json_object_get(json_object_get(p, "pattern"), "Regex"));
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (!re)
            return srlm_set_error(SRLM_EUNSUPPORTED, "%s: pre_tokenizer Split: only {\"Regex\": ...} patterns are "
                                  "supported", file);
        if (beh && strcmp(beh, "Isolated"))
            return srlm_set_error(SRLM_EUNSUPPORTED, "%s: pre_tokenizer Split behavior \"%s\" (only Isolated)", file, beh);
        if (json_is_true(json_object_get(p, "invert")))
            return srlm_set_error(SRLM_EUNSUPPORTED, "%s: pre_tokenizer Split invert=true", file);
        if (*pattern) return srlm_set_error(SRLM_EUNSUPPORTED, "%s: pre_tokenizer: more than one Split", file);
        *pattern = re;
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        json_t *ur = json_object_get(p, "use_regex");
        if (!ur || json_is_true(ur)) *bytelevel_regex = 1;
        if (json_is_true(json_object_get(p, "add_prefix_space")))
            return srlm_set_error(SRLM_EUNSUPPORTED, "%s: pre_tokenizer ByteLevel add_prefix_space=true", file);
        return 0;
    }
    return srlm_set_error(SRLM_EUNSUPPORTED, "%s: pre_tokenizer type \"%s\" is not supported", file, type);
}

static int compile_regex(tok_tokenizer *t, const char *file, const char *pattern) {
    int err;
    PCRE2_SIZE eoff;
    t->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &eoff, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return srlm_set_error(SRLM_EFORMAT, "%s: pre_tokenizer regex: %s at offset %zu", file, (char *)msg, (size_t)eoff);
    }
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    return 0;
}

static int special_from_config(const tok_tokenizer *t, json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return -2; /* absent */
    return tok_token_to_id(t, json_string_value(v));
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int tok_load(const char *path_or_dir, tok_tokenizer **out) {
    if (!path_or_dir || !out) return srlm_set_error(SRLM_EINVAL, "tok_load: NULL argument");
    *out = NULL;
    char file[4096], dir[4096];
    if (is_dir(path_or_dir)) {
        snprintf(dir, sizeof dir, "%s", path_or_dir);
        snprintf(file, sizeof file, "%s/tokenizer.json", path_or_dir);
        if (!srlm_file_exists(file)) snprintf(file, sizeof file, "%s/tokenizer.json.gz", path_or_dir);
        if (!srlm_file_exists(file))
            return srlm_set_error(SRLM_ENOTFOUND, "%s: no tokenizer.json or tokenizer.json.gz in this directory",
                                  path_or_dir);
    } else {
        if (!srlm_file_exists(path_or_dir))
            return srlm_set_error(SRLM_ENOTFOUND, "%s: tokenizer file or directory not found", path_or_dir);
        snprintf(file, sizeof file, "%s", path_or_dir);
        snprintf(dir, sizeof dir, "%s", path_or_dir);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    }
    char *data = NULL;
    size_t len = 0;
    int rc = srlm_read_file(file, &data, &len, TOK_MAX_FILE);
    if (rc) return rc;
    json_error_t jerr;
    size_t skip = len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3) ? 3 : 0; /* a UTF-8 byte order mark */
    json_t *root = json_loadb(data + skip, len - skip, 0, &jerr);
    free(data);
    if (!root)
        return srlm_set_error(SRLM_EFORMAT, "%s: invalid JSON at line %d column %d: %s", file, jerr.line,
                              jerr.column, jerr.text);
    tok_tokenizer *t = calloc(1, sizeof *t);
    if (!t) { json_decref(root); return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory"); }
    byte_unicode_table(t->b2u, t->u2b);
    t->eos_id = t->pad_id = -1;

    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    const char *pattern = NULL;
    int bl_regex = 0;
    if (!json_is_object(root)) {
        rc = srlm_set_error(SRLM_EFORMAT, "%s: top level: expected an object, got %s", file, json_type_name(root));
    } else if (!model) {
        rc = srlm_set_error(SRLM_EFORMAT, "%s: missing field \"model\"", file);
    } else if (!json_is_object(model)) {
        rc = srlm_set_error(SRLM_EFORMAT, "%s: field \"model\": expected an object, got %s", file, json_type_name(model));
    } else if (mtype && strcmp(mtype, "BPE")) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: model.type \"%s\" is not supported (only BPE)", file, mtype);
    } else if (!vocab) {
        rc = srlm_set_error(SRLM_EFORMAT, "%s: missing field \"model.vocab\"", file);
    } else if (!json_is_object(vocab)) {
        rc = srlm_set_error(SRLM_EFORMAT, "%s: field \"model.vocab\": expected an object, got %s", file,
                            json_type_name(vocab));
    } else if (merges && !json_is_array(merges)) {
        rc = srlm_set_error(SRLM_EFORMAT, "%s: field \"model.merges\": expected an array, got %s", file,
                            json_type_name(merges));
    } else if (json_is_true(json_object_get(model, "byte_fallback"))) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: model.byte_fallback=true is not supported", file);
    }
    if (!rc) rc = load_vocab(t, file, vocab);
    if (!rc) rc = load_merges(t, file, merges); /* NULL: no merges */
    if (!rc) rc = mark_whole_tokens(t);
    if (!rc) rc = load_added(t, file, json_object_get(root, "added_tokens"));
    if (!rc) rc = load_normalizer(t, file, json_object_get(root, "normalizer"));
    if (!rc) rc = find_pretok(file, json_object_get(root, "pre_tokenizer"), &pattern, &bl_regex);
    if (!rc) rc = compile_regex(t, file, pattern ? pattern : bl_regex ? GPT2_REGEX : QWEN2_REGEX);
    json_decref(root);
    if (rc) { tok_free(t); return rc; }

    /* tokenizer_config.json (optional): eos / pad token names */
    char cfgpath[4200];
    snprintf(cfgpath, sizeof cfgpath, "%s/tokenizer_config.json", dir);
    int eos = -2, pad = -2;
    if (srlm_file_exists(cfgpath)) {
        json_t *cfg = json_load_file(cfgpath, 0, &jerr);
        if (!cfg) {
            SRLM_WARN("%s: invalid JSON at line %d: %s (ignored)", cfgpath, jerr.line, jerr.text);
        } else {
            eos = special_from_config(t, cfg, "eos_token");
            pad = special_from_config(t, cfg, "pad_token");
            json_decref(cfg);
        }
    }
    if (eos == -2) {
        eos = tok_token_to_id(t, "<|im_end|>");
        if (eos < 0) eos = tok_token_to_id(t, "<|endoftext|>");
    }
    if (pad == -2) pad = tok_token_to_id(t, "<|endoftext|>");
    t->eos_id = eos;
    t->pad_id = pad;
    *out = t;
    return 0;
}

/* ---- encoding ----------------------------------------------------------------------- */
typedef struct { int32_t **ids; size_t *n, *cap; } idvec;

static int iv_push(idvec *v, int32_t id) {
    if (*v->n == *v->cap) {
        size_t c = *v->cap ? *v->cap * 2 : 64;
        int32_t *q = realloc(*v->ids, c * sizeof *q);
        if (!q) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
        *v->ids = q; *v->cap = c;
    }
    (*v->ids)[(*v->n)++] = id;
    return 0;
}

typedef struct { int32_t rank, pos, right, lid, rid; } heap_ent;

static inline int he_less(const heap_ent *a, const heap_ent *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}
static void heap_push(heap_ent *h, size_t *n, heap_ent e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!he_less(&e, &h[p])) break;
        h[i] = h[p]; i = p;
    }
    h[i] = e;
}
static heap_ent heap_pop(heap_ent *h, size_t *n) {
    heap_ent top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && he_less(&h[c + 1], &h[c])) c++;
        if (!he_less(&h[c], &last)) break;
        h[i] = h[c]; i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* BPE on one pre-tokenized piece of raw bytes (qwen2.md §5.3 step 5). Symbols live in
 * arrays indexed by the byte position where they start; a min-heap of candidate pairs
 * ordered by (rank, position) gives HF's Word::merge_all order. */
static int bpe_heap(const tok_tokenizer *t, const unsigned char *p, size_t n, idvec *out);

/* Short pieces: symbols in a compact array, the rank of each adjacent pair cached, a
 * linear scan for the lowest (leftmost on ties) rank — the same order as bpe_heap. */
enum { BPE_SMALL = 24 };
static int bpe_small(const tok_tokenizer *t, const unsigned char *p, size_t n, idvec *out) {
    int32_t id[BPE_SMALL], rk[BPE_SMALL], mid[BPE_SMALL];
    size_t k = n;
    for (size_t i = 0; i < n; i++) id[i] = t->byte_id[p[i]];
    for (size_t i = 0; i + 1 < k; i++) {
        const pmap_slot *m = pmap_get(&t->merges, id[i], id[i + 1]);
        rk[i] = m ? m->rank : INT32_MAX;
        mid[i] = m ? m->id : -1;
    }
    while (k > 1) {
        size_t j = 0;
        for (size_t i = 1; i + 1 < k; i++)
            if (rk[i] < rk[j]) j = i;
        if (rk[j] == INT32_MAX) break;
        id[j] = mid[j];
        /* remove symbol j+1 and pair j+1 */
        memmove(id + j + 1, id + j + 2, (k - j - 2) * sizeof *id);
        if (j + 2 < k) {
            memmove(rk + j + 1, rk + j + 2, (k - j - 2 - 1) * sizeof *rk);
            memmove(mid + j + 1, mid + j + 2, (k - j - 2 - 1) * sizeof *mid);
        }
        k--;
        if (j > 0) {
            const pmap_slot *m = pmap_get(&t->merges, id[j - 1], id[j]);
            rk[j - 1] = m ? m->rank : INT32_MAX;
            mid[j - 1] = m ? m->id : -1;
        }
        if (j + 1 < k) {
            const pmap_slot *m = pmap_get(&t->merges, id[j], id[j + 1]);
            rk[j] = m ? m->rank : INT32_MAX;
            mid[j] = m ? m->id : -1;
        }
    }
    for (size_t i = 0; i < k; i++) {
        int rc = iv_push(out, id[i]);
        if (rc) return rc;
    }
    return 0;
}

/* One piece: a single byte; a whole vocabulary token that BPE is known to produce as
 * itself (flag 4, computed at load); else the BPE merge loop. */
static int bpe_piece(const tok_tokenizer *t, const unsigned char *p, size_t n, idvec *out) {
    if (n == 1) return iv_push(out, t->byte_id[p[0]]);
    if (n <= t->max_tok_len) {
        int32_t w = smap_get(t, (const char *)p, n);
        if (w >= 0 && (t->tok_flags[w] & 4)) return iv_push(out, w);
    }
    return n <= BPE_SMALL ? bpe_small(t, p, n, out) : bpe_heap(t, p, n, out);
}

static int bpe_heap(const tok_tokenizer *t, const unsigned char *p, size_t n, idvec *out) {
    enum { STACK = 64 };
    int32_t s_id[STACK], s_next[STACK], s_prev[STACK];
    heap_ent s_heap[2 * STACK];
    int32_t *id = s_id, *nx = s_next, *pv = s_prev;
    heap_ent *heap = s_heap;
    void *mem = NULL;
    if (n > STACK) {
        if (n > INT32_MAX / 2) return srlm_set_error(SRLM_ENOMEM, "tokenizer: piece too long");
        mem = malloc(n * (3 * sizeof(int32_t) + 2 * sizeof(heap_ent)));
        if (!mem) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
        heap = mem;
        id = (int32_t *)(heap + 2 * n);
        nx = id + n; pv = nx + n;
    }
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        id[i] = t->byte_id[p[i]];
        nx[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        pv[i] = (int32_t)i - 1;
    }
    /* heap size <= (n - 1) initial pairs + 1 net per merge (pop 1, push <= 2) < 2n */
    for (size_t i = 0; i + 1 < n; i++) {
        const pmap_slot *m = pmap_get(&t->merges, id[i], id[i + 1]);
        if (m) heap_push(heap, &hn, (heap_ent){m->rank, (int32_t)i, (int32_t)i + 1, id[i], id[i + 1]});
    }
    while (hn) {
        heap_ent e = heap_pop(heap, &hn);
        /* stale entry? (a side was merged away or changed) */
        if (id[e.pos] != e.lid || id[e.right] != e.rid || nx[e.pos] != e.right) continue;
        const pmap_slot *m = pmap_get(&t->merges, e.lid, e.rid);
        int32_t L = e.pos, R = e.right;
        id[L] = m->id;
        id[R] = -1; /* dead */
        nx[L] = nx[R];
        if (nx[R] >= 0) pv[nx[R]] = L;
        if (pv[L] >= 0) {
            const pmap_slot *q = pmap_get(&t->merges, id[pv[L]], id[L]);
            if (q) heap_push(heap, &hn, (heap_ent){q->rank, pv[L], L, id[pv[L]], id[L]});
        }
        if (nx[L] >= 0) {
            const pmap_slot *q = pmap_get(&t->merges, id[L], id[nx[L]]);
            if (q) heap_push(heap, &hn, (heap_ent){q->rank, L, nx[L], id[L], id[nx[L]]});
        }
    }
    int rc = 0;
    for (int32_t i = 0; i >= 0 && !rc; i = nx[i]) rc = iv_push(out, id[i]);
    free(mem);
    return rc;
}

/* Pre-tokenize one valid, normalised UTF-8 run and BPE every piece. */
static int encode_run(const tok_tokenizer *t, const unsigned char *s, size_t n, pcre2_match_data *md, idvec *out) {
    size_t off = 0;
    int rc = 0;
    while (off < n && !rc) {
        int m = t->jit ? pcre2_jit_match(t->re, s, n, off, PCRE2_NO_UTF_CHECK, md, NULL)
                       : pcre2_match(t->re, s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
        size_t a, b;
        if (m > 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            a = ov[0]; b = ov[1];
            if (a < off || b < a || b > n) { a = off; b = off; } /* defensive: treat as failure */
        } else if (m == PCRE2_ERROR_NOMATCH) {
            a = b = n; /* the rest is a gap piece */
        } else {
            a = b = off; /* match error (e.g. JIT stack limit): take one code point below */
        }
        if (a > off) rc = bpe_piece(t, s + off, a - off, out); /* gap between matches is a piece */
        if (rc) break;
        if (b == a) {
            if (a >= n) break;
            size_t l = utf8_valid_len(s + a, n - a);
            if (!l) l = 1;
            rc = bpe_piece(t, s + a, l, out);
            off = a + l;
        } else {
            rc = bpe_piece(t, s + a, b - a, out);
            off = b;
        }
    }
    return rc;
}

/* Text between added tokens: split into valid-UTF-8 runs (NFC + regex + BPE) and
 * invalid bytes (one byte token each). */
static int encode_plain(const tok_tokenizer *t, const unsigned char *s, size_t n, pcre2_match_data *md, idvec *out) {
    size_t i = 0;
    int rc = 0;
    while (i < n && !rc) {
        size_t j = i;
        int ascii = 1;
        while (j < n) {
            if (s[j] < 0x80) { j++; continue; }
            size_t l = utf8_valid_len(s + j, n - j);
            if (!l) break;
            ascii = 0;
            j += l;
        }
        if (j > i) {
            if (t->nfc && !ascii) {
                utf8proc_uint8_t *norm = NULL;
                utf8proc_ssize_t nl = utf8proc_map(s + i, (utf8proc_ssize_t)(j - i), &norm,
                                                   UTF8PROC_STABLE | UTF8PROC_COMPOSE);
                if (nl < 0) {
                    free(norm);
                    rc = encode_run(t, s + i, j - i, md, out); /* cannot happen for valid UTF-8 */
                } else {
                    rc = encode_run(t, norm, (size_t)nl, md, out);
                    free(norm);
                }
            } else {
                rc = encode_run(t, s + i, j - i, md, out);
            }
        }
        i = j;
        if (i < n && !rc) { /* an invalid sequence: its bytes as byte tokens */
            size_t l = utf8_invalid_len(s + i, n - i);
            for (size_t k = 0; k < l && !rc; k++) rc = iv_push(out, t->byte_id[s[i + k]]);
            i += l;
        }
    }
    return rc;
}

/* Flag 4 on every regular token whose own bytes BPE-encode to exactly that token, so
 * that encoding can return such a piece with one vocabulary lookup (an exact shortcut:
 * tokens BPE cannot reach keep going through the merge loop). */
static int mark_whole_tokens(tok_tokenizer *t) {
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    idvec v = {&ids, &n, &cap};
    t->max_tok_len = 1;
    for (int id = 0; id < t->vocab_size; id++) {
        int32_t len = t->tok_len[id];
        if (len < 1 || (t->tok_flags[id] & 1)) continue;
        if (len == 1) { t->tok_flags[id] |= 4; continue; }
        n = 0;
        const unsigned char *p = (const unsigned char *)t->arena + t->tok_off[id];
        int rc = (size_t)len <= BPE_SMALL ? bpe_small(t, p, (size_t)len, &v) : bpe_heap(t, p, (size_t)len, &v);
        if (rc) { free(ids); return rc; }
        if (n == 1 && ids[0] == id) {
            t->tok_flags[id] |= 4;
            if ((size_t)len > t->max_tok_len) t->max_tok_len = (size_t)len;
        }
    }
    free(ids);
    return 0;
}

int tok_encode_append(const tok_tokenizer *t, const char *text, size_t len, int parse_special, int32_t **ids,
                      size_t *n_ids, size_t *cap) {
    if (!t || (!text && len) || !ids || !n_ids || !cap) return srlm_set_error(SRLM_EINVAL, "tok_encode: NULL argument");
    idvec v = {ids, n_ids, cap};
    if (!*ids) {
        *cap = 0;
        *n_ids = 0;
        if (iv_push(&v, 0)) return SRLM_ENOMEM;
        *n_ids = 0;
    }
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    if (!md) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
    const unsigned char *s = (const unsigned char *)text;
    size_t pos = 0;
    int rc = 0;
    while (pos < len && !rc) {
        size_t seg_end = len, tok_len = 0;
        int32_t tok_id = -1;
        if (parse_special && t->n_added) {
            for (size_t i = pos; i < len && tok_id < 0; i++) {
                if (!t->added_first[s[i]]) continue;
                for (int k = 0; k < t->n_added; k++) {
                    const added_tok *a = &t->added[k];
                    if (a->len <= len - i && !memcmp(s + i, a->text, a->len)) {
                        seg_end = i; tok_len = a->len; tok_id = a->id;
                        break;
                    }
                }
            }
        }
        if (seg_end > pos) rc = encode_plain(t, s + pos, seg_end - pos, md, &v);
        if (!rc && tok_id >= 0) rc = iv_push(&v, tok_id);
        pos = seg_end + tok_len;
    }
    pcre2_match_data_free(md);
    return rc;
}

int tok_encode(const tok_tokenizer *t, const char *text, size_t len, int parse_special, int32_t **ids,
               size_t *n_ids) {
    if (!ids || !n_ids) return srlm_set_error(SRLM_EINVAL, "tok_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    size_t cap = 0;
    int rc = tok_encode_append(t, text, len, parse_special, ids, n_ids, &cap);
    if (rc) { free(*ids); *ids = NULL; *n_ids = 0; }
    return rc;
}

/* ---- decoding ----------------------------------------------------------------------- */
const char *tok_id_to_bytes(const tok_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->vocab_size || t->tok_len[id] < 0) { if (len) *len = 0; return NULL; }
    if (len) *len = (size_t)t->tok_len[id];
    return t->arena + t->tok_off[id];
}

int tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int flags, char **text, size_t *len) {
    if (!t || (!ids && n) || !text) return srlm_set_error(SRLM_EINVAL, "tok_decode: NULL argument");
    *text = NULL;
    sbuf raw = {0};
    int rc = sb_put(&raw, "", 0);
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t id = ids[i];
        if (id < 0) { rc = srlm_set_error(SRLM_EINVAL, "tok_decode: negative token id %d at position %zu", id, i); break; }
        if (id >= t->vocab_size || t->tok_len[id] < 0) continue;
        if ((flags & TOK_DECODE_SKIP_SPECIAL) && (t->tok_flags[id] & 2)) continue;
        rc = sb_put(&raw, t->arena + t->tok_off[id], (size_t)t->tok_len[id]);
    }
    if (rc) { free(raw.p); return rc; }
    if (flags & TOK_DECODE_RAW) {
        *text = raw.p;
        if (len) *len = raw.n;
        return 0;
    }
    /* replace invalid UTF-8 (maximal subparts) by U+FFFD */
    sbuf o = {0};
    rc = sb_put(&o, "", 0);
    const unsigned char *s = (const unsigned char *)raw.p;
    size_t i = 0;
    while (i < raw.n && !rc) {
        size_t j = i;
        while (j < raw.n) {
            size_t l = s[j] < 0x80 ? 1 : utf8_valid_len(s + j, raw.n - j);
            if (!l) break;
            j += l;
        }
        rc = sb_put(&o, s + i, j - i);
        i = j;
        if (i < raw.n && !rc) {
            rc = sb_put(&o, "\xEF\xBF\xBD", 3);
            i += utf8_invalid_len(s + i, raw.n - i);
        }
    }
    free(raw.p);
    if (rc) { free(o.p); return rc; }
    *text = o.p;
    if (len) *len = o.n;
    return 0;
}

int tok_token_to_id(const tok_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    size_t n = strlen(token);
    for (int k = 0; k < t->n_added; k++)
        if (t->added[k].len == n && !memcmp(t->added[k].text, token, n)) return t->added[k].id;
    if (!n) return -1;
    char *buf = malloc(n);
    if (!buf) return -1;
    long bn = bl_to_bytes(t, token, n, buf);
    int id = bn > 0 ? smap_get(t, buf, (size_t)bn) : -1;
    free(buf);
    return id;
}

int tok_vocab_size(const tok_tokenizer *t) { return t ? t->vocab_size : 0; }

int tok_is_special(const tok_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->vocab_size && (t->tok_flags[id] & 2);
}

int tok_eos_id(const tok_tokenizer *t) { return t ? t->eos_id : -1; }
int tok_pad_id(const tok_tokenizer *t) { return t ? t->pad_id : -1; }

/* ---- ChatML (qwen2.md §5.5) ----------------------------------------------------------- */
typedef struct {
    const tok_tokenizer *t;
    sbuf text;
    int32_t *ids;
    size_t n, cap;
    uint8_t *mask;
    size_t mask_cap;
    int32_t im_start, im_end;
} chat_ctx;

static int chat_sync_mask(chat_ctx *c, size_t from, uint8_t val) {
    if (c->mask_cap < c->cap) {
        uint8_t *q = realloc(c->mask, c->cap);
        if (!q) return srlm_set_error(SRLM_ENOMEM, "tokenizer: out of memory");
        c->mask = q; c->mask_cap = c->cap;
    }
    for (size_t i = from; i < c->n; i++) c->mask[i] = val;
    return 0;
}

static int chat_special(chat_ctx *c, int32_t id, const char *str, uint8_t mask) {
    int rc = sb_str(&c->text, str);
    idvec v = {&c->ids, &c->n, &c->cap};
    size_t from = c->n;
    if (!rc) rc = iv_push(&v, id);
    if (!rc) rc = chat_sync_mask(c, from, mask);
    return rc;
}

/* Text between two special tokens, encoded as one segment (as HF does on the rendered
 * string). If mask_after is non-NULL, tokens after the header `mask_after` (e.g.
 * "assistant\n") are marked. */
static int chat_segment(chat_ctx *c, const char *seg, size_t len, const char *header) {
    size_t from = c->n;
    int rc = sb_put(&c->text, seg, len);
    if (!rc) rc = tok_encode_append(c->t, seg, len, 0, &c->ids, &c->n, &c->cap);
    if (!rc) rc = chat_sync_mask(c, from, 0);
    if (rc || !header) return rc;
    /* header tokens: "role\n" if the segment starts with exactly its tokens, else only
     * "role" (the "\n" merged with leading whitespace of the content, which is then marked) */
    int32_t *h = NULL;
    size_t hn = 0, start = 0;
    size_t hl = strlen(header);
    rc = tok_encode(c->t, header, hl, 0, &h, &hn);
    if (rc) return rc;
    if (hn <= c->n - from && !memcmp(h, c->ids + from, hn * sizeof *h)) {
        start = hn;
    } else {
        free(h);
        h = NULL;
        rc = tok_encode(c->t, header, hl - 1, 0, &h, &hn);
        start = hn;
    }
    free(h);
    for (size_t i = from + start; i < c->n; i++) c->mask[i] = 1;
    return rc;
}

static int chat_turn(chat_ctx *c, const char *role, const char *content, int assistant) {
    sbuf seg = {0};
    int rc = sb_str(&seg, role);
    if (!rc) rc = sb_str(&seg, "\n");
    if (!rc) rc = sb_str(&seg, content);
    char header[32];
    snprintf(header, sizeof header, "%s\n", role);
    if (!rc) rc = chat_special(c, c->im_start, "<|im_start|>", 0);
    if (!rc) rc = chat_segment(c, seg.p, seg.n, assistant ? header : NULL);
    if (!rc) rc = chat_special(c, c->im_end, "<|im_end|>", (uint8_t)assistant);
    if (!rc) rc = chat_segment(c, "\n", 1, NULL);
    free(seg.p);
    return rc;
}

int tok_chat_render(const tok_tokenizer *t, const tok_message *msgs, int n, int add_generation_prompt, char **text,
                    int32_t **ids, uint8_t **assistant_mask, size_t *n_ids) {
    if (text) *text = NULL;
    if (ids) *ids = NULL;
    if (assistant_mask) *assistant_mask = NULL;
    if (n_ids) *n_ids = 0;
    if (!t || !msgs || n < 1) return srlm_set_error(SRLM_EINVAL, "tok_chat_render: need at least one message");
    for (int i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (i == 0 && r && !msgs[i].content && !strcmp(r, "system")) continue; /* "no system turn" */
        if (!r || !msgs[i].content)
            return srlm_set_error(SRLM_EINVAL, "tok_chat_render: message %d has no %s", i, r ? "content" : "role");
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "tool"))
            return srlm_set_error(SRLM_EINVAL, "tok_chat_render: message %d: unknown role \"%.32s\" "
                                  "(system, user, assistant, tool)", i, r);
    }
    chat_ctx c = {.t = t};
    c.im_start = tok_token_to_id(t, "<|im_start|>");
    c.im_end = tok_token_to_id(t, "<|im_end|>");
    if (c.im_start < 0 || c.im_end < 0)
        return srlm_set_error(SRLM_EUNSUPPORTED, "tok_chat_render: the tokenizer has no <|im_start|>/<|im_end|> tokens");
    int rc = sb_put(&c.text, "", 0);
    int first = 0;
    if (!rc && !strcmp(msgs[0].role, "system")) {
        if (msgs[0].content) rc = chat_turn(&c, "system", msgs[0].content, 0);
        first = 1;
    } else if (!rc) {
        rc = chat_turn(&c, "system", TOK_DEFAULT_SYSTEM, 0);
    }
    for (int i = first; i < n && !rc; i++) {
        const char *r = msgs[i].role;
        if (strcmp(r, "tool")) {
            rc = chat_turn(&c, r, msgs[i].content, !strcmp(r, "assistant"));
            continue;
        }
        /* a run of tool messages -> one user turn */
        sbuf seg = {0};
        rc = sb_str(&seg, "user");
        for (; i < n && !strcmp(msgs[i].role, "tool") && !rc; i++) {
            rc = sb_str(&seg, "\n<tool_response>\n");
            if (!rc) rc = sb_str(&seg, msgs[i].content);
            if (!rc) rc = sb_str(&seg, "\n</tool_response>");
        }
        i--;
        if (!rc) rc = chat_special(&c, c.im_start, "<|im_start|>", 0);
        if (!rc) rc = chat_segment(&c, seg.p, seg.n, NULL);
        if (!rc) rc = chat_special(&c, c.im_end, "<|im_end|>", 0);
        if (!rc) rc = chat_segment(&c, "\n", 1, NULL);
        free(seg.p);
    }
    if (!rc && add_generation_prompt) {
        rc = chat_special(&c, c.im_start, "<|im_start|>", 0);
        if (!rc) rc = chat_segment(&c, "assistant\n", 10, NULL);
    }
    if (!rc) rc = chat_sync_mask(&c, c.n, 0); /* make sure mask is allocated */
    if (rc) {
        free(c.text.p); free(c.ids); free(c.mask);
        return rc;
    }
    if (text) *text = c.text.p; else free(c.text.p);
    if (ids) *ids = c.ids; else free(c.ids);
    if (assistant_mask) *assistant_mask = c.mask; else free(c.mask);
    if (n_ids) *n_ids = c.n;
    return 0;
}

/* ---- byte-level vocabulary ------------------------------------------------------------ */
static json_t *added_json(int id, const char *content) {
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content, "single_word", 0,
                     "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1);
}

static json_t *bytelevel_json(void) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0,
                     "use_regex", 0);
}

int tok_write_byte_level(const char *dir) {
    if (!dir) return srlm_set_error(SRLM_EINVAL, "tok_write_byte_level: NULL dir");
    int rc = srlm_mkdir_p(dir);
    if (rc) return rc;
    uint32_t b2u[256];
    int16_t u2b[0x144];
    byte_unicode_table(b2u, u2b);
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char k[8];
        size_t l = utf8_put(k, b2u[b]);
        k[l] = 0;
        json_object_set_new(vocab, k, json_integer(b));
    }
    const char *names[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    json_t *added = json_array();
    for (int i = 0; i < 3; i++) json_array_append_new(added, added_json(256 + i, names[i]));
    json_t *split = json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex", QWEN2_REGEX,
                              "behavior", "Isolated", "invert", 0);
    json_t *root = json_pack(
        "{s:s, s:n, s:n, s:o, s:{s:s}, s:{s:s, s:[o, o]}, s:o, s:o, "
        "s:{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:o, s:[]}}",
        "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer", "type", "NFC",
        "pre_tokenizer", "type", "Sequence", "pretokenizers", split, bytelevel_json(), "post_processor",
        bytelevel_json(), "decoder", bytelevel_json(), "model", "type", "BPE", "dropout", "unk_token",
        "continuing_subword_prefix", "", "end_of_word_suffix", "", "fuse_unk", 0, "byte_fallback", 0, "vocab", vocab,
        "merges");
    if (!root) return srlm_set_error(SRLM_EINTERNAL, "tok_write_byte_level: building JSON failed");
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    rc = s ? srlm_write_file_atomic(path, s, strlen(s)) : srlm_set_error(SRLM_ENOMEM, "out of memory");
    free(s);
    if (rc) return rc;

    json_t *dec = json_object();
    for (int i = 0; i < 3; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", 256 + i);
        json_t *a = added_json(256 + i, names[i]);
        json_object_del(a, "id");
        json_object_set_new(dec, k, a);
    }
    json_t *cfg = json_pack("{s:b, s:b, s:o, s:n, s:s, s:s, s:n, s:b, s:s, s:i, s:s, s:b}", "add_bos_token", 0,
                            "add_prefix_space", 0, "added_tokens_decoder", dec, "bos_token", "eos_token",
                            "<|im_end|>", "pad_token", "<|endoftext|>", "unk_token", "clean_up_tokenization_spaces",
                            0, "errors", "replace", "model_max_length", 131072, "tokenizer_class", "Qwen2Tokenizer",
                            "split_special_tokens", 0);
    if (!cfg) return srlm_set_error(SRLM_EINTERNAL, "tok_write_byte_level: building config JSON failed");
    s = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(cfg);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    rc = s ? srlm_write_file_atomic(path, s, strlen(s)) : srlm_set_error(SRLM_ENOMEM, "out of memory");
    free(s);
    return rc;
}
