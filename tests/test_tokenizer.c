/* test_tokenizer.c — core/tokenizer: reference ids (llama.cpp cases, qwen2.md §5.3
 * vectors), ChatML render + assistant mask, decode, invalid UTF-8 and unusual Unicode,
 * malformed tokenizer.json errors, the byte-level vocabulary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <utf8proc.h>

#include "tokenizer.h"
#include "util.h"

static tok_tokenizer *g_tok; /* Qwen2.5, loaded once by the group setup */

static int setup(void **st) {
    char dir[4096];
    if (srlm_resource_path("tokenizers/qwen2.5", dir, sizeof dir)) return -1;
    int rc = tok_load(dir, &g_tok);
    if (rc) fprintf(stderr, "tok_load: %s\n", srlm_last_error());
    return rc ? -1 : 0;
}
static int teardown(void **st) {
    tok_free(g_tok);
    return 0;
}

static json_t *load_json_resource(const char *rel) {
    char path[4096];
    assert_int_equal(srlm_resource_path(rel, path, sizeof path), 0);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    assert_non_null(j);
    return j;
}

static void assert_ids(const int32_t *got, size_t n, const int32_t *want, size_t wn, const char *what) {
    if (n != wn || memcmp(got, want, n * sizeof *got)) {
        fprintf(stderr, "mismatch for %s\n got:  ", what);
        for (size_t i = 0; i < n; i++) fprintf(stderr, "%d ", got[i]);
        fprintf(stderr, "\n want: ");
        for (size_t i = 0; i < wn; i++) fprintf(stderr, "%d ", want[i]);
        fprintf(stderr, "\n");
        fail();
    }
}

static void check_encode(const char *text, const int32_t *want, size_t wn) {
    int32_t *ids;
    size_t n;
    assert_int_equal(tok_encode(g_tok, text, strlen(text), 1, &ids, &n), 0);
    assert_ids(ids, n, want, wn, text);
    free(ids);
}

static void test_spec_vectors(void **st) {
    check_encode("Hello world", (int32_t[]){9707, 1879}, 2);
    check_encode(" Hello world", (int32_t[]){21927, 1879}, 2);
    check_encode("\n", (int32_t[]){198}, 1);
    assert_int_equal(tok_vocab_size(g_tok), 151665);
    assert_int_equal(tok_token_to_id(g_tok, "<|endoftext|>"), 151643);
    assert_int_equal(tok_token_to_id(g_tok, "<|im_start|>"), 151644);
    assert_int_equal(tok_token_to_id(g_tok, "<|im_end|>"), 151645);
    assert_int_equal(tok_token_to_id(g_tok, "<|file_sep|>"), 151664);
    assert_int_equal(tok_token_to_id(g_tok, "system"), 8948);
    assert_int_equal(tok_token_to_id(g_tok, "Ġworld"), 1879);
    assert_int_equal(tok_token_to_id(g_tok, "!"), 0);
    assert_int_equal(tok_token_to_id(g_tok, "no such token here"), -1);
    assert_int_equal(tok_eos_id(g_tok), 151645);
    assert_int_equal(tok_pad_id(g_tok), 151643);
    assert_true(tok_is_special(g_tok, 151645));
    assert_false(tok_is_special(g_tok, 151657)); /* <tool_call> is added but not special */
    assert_false(tok_is_special(g_tok, 198));
}

static void test_llamacpp_reference_cases(void **st) {
    json_t *cases = load_json_resource("tokenizers/qwen2.5/reference/llamacpp_qwen2_cases.json");
    assert_true(json_array_size(cases) >= 40);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        json_t *text = json_object_get(c, "text"), *want = json_object_get(c, "ids");
        size_t wn = json_array_size(want);
        int32_t *w = malloc((wn + 1) * sizeof *w);
        for (size_t k = 0; k < wn; k++) w[k] = (int32_t)json_integer_value(json_array_get(want, k));
        int32_t *ids;
        size_t n;
        assert_int_equal(tok_encode(g_tok, json_string_value(text), json_string_length(text), 1, &ids, &n), 0);
        assert_ids(ids, n, w, wn, json_string_value(text));
        /* decode gives the text back (all cases are NFC) */
        char *back;
        size_t bl;
        assert_int_equal(tok_decode(g_tok, ids, n, 0, &back, &bl), 0);
        assert_int_equal(bl, json_string_length(text));
        assert_memory_equal(back, json_string_value(text), bl);
        free(back);
        free(ids);
        free(w);
    }
    json_decref(cases);
}

static void test_special_tokens_parse_or_not(void **st) {
    const char *s = "a<|im_end|>b";
    int32_t *ids;
    size_t n;
    assert_int_equal(tok_encode(g_tok, s, strlen(s), 1, &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 151645);
    free(ids);
    assert_int_equal(tok_encode(g_tok, s, strlen(s), 0, &ids, &n), 0);
    assert_true(n > 3);
    for (size_t i = 0; i < n; i++) assert_true(ids[i] < 151643);
    char *back;
    size_t bl;
    assert_int_equal(tok_decode(g_tok, ids, n, 0, &back, &bl), 0);
    assert_string_equal(back, s);
    free(back);
    free(ids);
    /* longest match first: <|im_start|> is not confused with a prefix; adjacent tokens */
    s = "<|im_start|><|im_end|><|im_end|";
    assert_int_equal(tok_encode(g_tok, s, strlen(s), 1, &ids, &n), 0);
    assert_int_equal(ids[0], 151644);
    assert_int_equal(ids[1], 151645);
    assert_true(n > 2 && ids[2] < 151643);
    /* skip_special drops <|im_start|>/<|im_end|> but keeps plain text */
    assert_int_equal(tok_decode(g_tok, ids, n, TOK_DECODE_SKIP_SPECIAL, &back, &bl), 0);
    assert_string_equal(back, "<|im_end|");
    free(back);
    free(ids);
    /* non-special added tokens are matched too, and kept by skip_special */
    s = "<tool_call>x";
    assert_int_equal(tok_encode(g_tok, s, strlen(s), 1, &ids, &n), 0);
    assert_int_equal(ids[0], 151657);
    assert_int_equal(tok_decode(g_tok, ids, n, 1, &back, &bl), 0);
    assert_string_equal(back, s);
    free(back);
    free(ids);
}

static void test_chat_reference_examples(void **st) {
    json_t *ex = load_json_resource("tokenizers/qwen2.5/reference/chat_template_examples_DERIVED.json");
    size_t i;
    json_t *c;
    json_array_foreach(ex, i, c) {
        json_t *jm = json_object_get(c, "messages");
        int nm = (int)json_array_size(jm);
        tok_message *m = calloc((size_t)nm, sizeof *m);
        for (int k = 0; k < nm; k++) {
            m[k].role = json_string_value(json_object_get(json_array_get(jm, (size_t)k), "role"));
            m[k].content = json_string_value(json_object_get(json_array_get(jm, (size_t)k), "content"));
        }
        char *text;
        int32_t *ids;
        uint8_t *mask;
        size_t n;
        assert_int_equal(tok_chat_render(g_tok, m, nm, json_is_true(json_object_get(c, "add_generation_prompt")),
                                         &text, &ids, &mask, &n), 0);
        assert_string_equal(text, json_string_value(json_object_get(c, "rendered")));
        json_t *want = json_object_get(c, "ids");
        size_t wn = json_array_size(want);
        int32_t *w = malloc(wn * sizeof *w);
        for (size_t k = 0; k < wn; k++) w[k] = (int32_t)json_integer_value(json_array_get(want, k));
        assert_ids(ids, n, w, wn, json_string_value(json_object_get(c, "name")));
        /* ids == encode(rendered text) with special tokens parsed */
        int32_t *ids2;
        size_t n2;
        assert_int_equal(tok_encode(g_tok, text, strlen(text), 1, &ids2, &n2), 0);
        assert_ids(ids2, n2, ids, n, "encode(render)");
        /* the mask covers exactly the assistant content + its <|im_end|> */
        int has_assistant = 0;
        for (int k = 0; k < nm; k++) has_assistant |= !strcmp(m[k].role, "assistant");
        size_t marked = 0;
        for (size_t k = 0; k < n; k++) marked += mask[k];
        if (!has_assistant) {
            assert_int_equal(marked, 0);
        } else {
            const char *content = m[nm - 1].content;
            int32_t *cid;
            size_t cn;
            assert_int_equal(tok_encode(g_tok, content, strlen(content), 0, &cid, &cn), 0);
            assert_int_equal(marked, cn + 1);
            /* marked tokens are the last cn+2 .. 2 (content, <|im_end|>), not the final "\n" */
            assert_int_equal(mask[n - 1], 0);
            assert_int_equal(ids[n - 1], 198);
            assert_int_equal(ids[n - 2], 151645);
            assert_int_equal(mask[n - 2], 1);
            assert_memory_equal(ids + n - 2 - cn, cid, cn * sizeof *cid);
            for (size_t k = n - 2 - cn; k < n - 1; k++) assert_int_equal(mask[k], 1);
            free(cid);
        }
        free(w); free(ids); free(ids2); free(mask); free(text); free(m);
    }
    json_decref(ex);
}

static void test_chat_render_cases(void **st) {
    /* system first, then two assistant turns; tool messages grouped into one user turn */
    tok_message m[] = {
        {"system", "S"}, {"user", "q1"}, {"assistant", "a1"}, {"tool", "r1"}, {"tool", "r2"},
        {"system", "late"}, {"assistant", "\n\nleading newlines"},
    };
    char *text;
    int32_t *ids;
    uint8_t *mask;
    size_t n;
    assert_int_equal(tok_chat_render(g_tok, m, 7, 1, &text, &ids, &mask, &n), 0);
    assert_string_equal(text,
                        "<|im_start|>system\nS<|im_end|>\n"
                        "<|im_start|>user\nq1<|im_end|>\n"
                        "<|im_start|>assistant\na1<|im_end|>\n"
                        "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n"
                        "</tool_response><|im_end|>\n"
                        "<|im_start|>system\nlate<|im_end|>\n"
                        "<|im_start|>assistant\n\n\nleading newlines<|im_end|>\n"
                        "<|im_start|>assistant\n");
    int32_t *ids2;
    size_t n2;
    assert_int_equal(tok_encode(g_tok, text, strlen(text), 1, &ids2, &n2), 0);
    assert_ids(ids, n, ids2, n2, "encode(render) multi-turn");
    /* decode of the masked tokens = the two assistant contents and their <|im_end|> */
    int32_t *sel = malloc(n * sizeof *sel);
    size_t ns = 0;
    for (size_t k = 0; k < n; k++) if (mask[k]) sel[ns++] = ids[k];
    char *back;
    size_t bl;
    assert_int_equal(tok_decode(g_tok, sel, ns, 0, &back, &bl), 0);
    /* the "\n" after "assistant" merged with the content's leading newlines into one
     * token, which is marked (it holds content bytes) */
    assert_string_equal(back, "a1<|im_end|>\n\n\nleading newlines<|im_end|>");
    free(back); free(sel); free(ids); free(ids2); free(mask); free(text);

    /* content that spells a special token stays plain text */
    tok_message inj[] = {{"user", "x<|im_end|>y"}};
    assert_int_equal(tok_chat_render(g_tok, inj, 1, 0, NULL, &ids, NULL, &n), 0);
    int ends = 0;
    for (size_t k = 0; k < n; k++) ends += ids[k] == 151645;
    assert_int_equal(ends, 2); /* system + user turns only */
    free(ids);

    /* errors */
    tok_message bad[] = {{"robot", "x"}};
    assert_int_equal(tok_chat_render(g_tok, bad, 1, 0, &text, NULL, NULL, &n), SRLM_EINVAL);
    assert_non_null(strstr(srlm_last_error(), "robot"));
    assert_int_equal(tok_chat_render(g_tok, m, 0, 0, &text, NULL, NULL, &n), SRLM_EINVAL);
}

static void test_decode_replacement_and_raw(void **st) {
    int32_t ff = tok_token_to_id(g_tok, "ÿ"); /* byte 0xFF */
    int32_t ids[] = {9707, ff, 1879};
    char *s;
    size_t n;
    assert_int_equal(tok_decode(g_tok, ids, 3, 0, &s, &n), 0);
    assert_string_equal(s, "Hello\xEF\xBF\xBD world");
    free(s);
    assert_int_equal(tok_decode(g_tok, ids, 3, TOK_DECODE_RAW, &s, &n), 0);
    assert_int_equal(n, 12);
    assert_memory_equal(s, "Hello\xFF world", 12);
    free(s);
    /* ids in the model's padding range decode to nothing; negative ids are an error */
    int32_t pad[] = {9707, 151700, 151935};
    assert_int_equal(tok_decode(g_tok, pad, 3, 0, &s, &n), 0);
    assert_string_equal(s, "Hello");
    free(s);
    int32_t neg[] = {-1};
    assert_int_equal(tok_decode(g_tok, neg, 1, 0, &s, &n), SRLM_EINVAL);
    assert_int_equal(tok_decode(g_tok, NULL, 0, 0, &s, &n), 0);
    assert_int_equal(n, 0);
    free(s);
    /* maximal subparts: E2 82 (truncated 3-byte) + 'A' -> one U+FFFD; C0 AF -> two */
    const char raw[] = "\xE2\x82" "A" "\xC0\xAF";
    int32_t *e;
    size_t en;
    assert_int_equal(tok_encode(g_tok, raw, 5, 0, &e, &en), 0);
    assert_int_equal(tok_decode(g_tok, e, en, 0, &s, &n), 0);
    assert_string_equal(s, "\xEF\xBF\xBD" "A" "\xEF\xBF\xBD\xEF\xBF\xBD");
    free(s);
    free(e);
    /* streaming helper */
    assert_int_equal(tok_utf8_complete("ab", 2), 2);
    assert_int_equal(tok_utf8_complete("a\xE2\x82", 3), 1);
    assert_int_equal(tok_utf8_complete("a\xE2", 2), 1);
    assert_int_equal(tok_utf8_complete("a\xE2\x82\xAC", 4), 4);
    assert_int_equal(tok_utf8_complete("a\xF0\x9F\xA6", 4), 1);
    assert_int_equal(tok_utf8_complete("a\xFF", 2), 2);  /* invalid, not incomplete */
    assert_int_equal(tok_utf8_complete("a\xE0\x80", 3), 3); /* overlong: invalid already */
    assert_int_equal(tok_utf8_complete("", 0), 0);
}

/* Expected raw-decode output of encode(x): valid runs NFC-normalised, invalid bytes kept. */
static char *expected_raw(const unsigned char *s, size_t n, size_t *on) {
    char *o = malloc(n * 4 + 16);
    size_t k = 0, i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t l = utf8proc_iterate(s + j, (utf8proc_ssize_t)(n - j), &cp);
            if (l <= 0) break;
            j += (size_t)l;
        }
        if (j > i) {
            utf8proc_uint8_t *norm;
            utf8proc_ssize_t nl = utf8proc_map(s + i, (utf8proc_ssize_t)(j - i), &norm,
                                               UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            assert_true(nl >= 0);
            memcpy(o + k, norm, (size_t)nl);
            k += (size_t)nl;
            free(norm);
        }
        if (j < n) o[k++] = (char)s[j++];
        i = j;
    }
    *on = k;
    return o;
}

static void roundtrip_raw(const tok_tokenizer *t, const char *s, size_t n, int parse_special) {
    int32_t *ids;
    size_t ni;
    assert_int_equal(tok_encode(t, s, n, parse_special, &ids, &ni), 0);
    char *back;
    size_t bl;
    assert_int_equal(tok_decode(t, ids, ni, TOK_DECODE_RAW, &back, &bl), 0);
    size_t en;
    char *exp = expected_raw((const unsigned char *)s, n, &en);
    if (bl != en || memcmp(back, exp, en)) {
        fprintf(stderr, "round trip failed for %zu bytes:", n);
        for (size_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %02x", (unsigned char)s[i]);
        fprintf(stderr, "\n");
        fail();
    }
    free(exp);
    free(back);
    free(ids);
}

static void test_unusual_unicode(void **st) {
    static const char *cases[] = {
        "e\xCC\x81",                         /* e + combining acute -> é after NFC */
        "a\xCC\x81\xCC\x82\xCC\x83\xCC\x84 x",
        "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7", /* ZWJ family */
        "\xF0\x9F\x8F\xB3\xEF\xB8\x8F\xE2\x80\x8D\xF0\x9F\x8C\x88",                 /* flag + VS16 */
        "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C",            /* CJK */
        "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xD8\xB9\xD8\xA7\xD9\x84\xD9\x85",       /* Hebrew, Arabic */
        "\xE2\x80\x8F\xE2\x80\xAE\xE2\x81\xA6rtl\xE2\x81\xA9",                     /* RLM, RLO, isolates */
        "\xE2\x80\x8B\xE2\x80\x8C\xE2\x80\x8D\xEF\xBB\xBF",                         /* ZW space/joiners, BOM */
        "\xED\xA0\xBD\xED\xB8\x80",       /* lone surrogates as (invalid) UTF-8 */
        "\xC0\x80 \xF8\x88\x80\x80\x80",  /* overlong NUL, 5-byte form */
        "\xF4\x90\x80\x80",                /* > U+10FFFF */
        "\xE2\x82",                        /* truncated */
        "\x80\x80\x80 abc \xBF",
        "\xEA\xB0\x80\xE1\x84\x80\xE1\x85\xA1", /* Hangul syllable + conjoining jamo */
        "\xE2\x80\xA8\xE2\x80\xA9\xC2\x85\x0B\x0C\r\n", /* Unicode line separators */
        "\xC2\xA0\xE3\x80\x80\xE2\x80\x83x",              /* NBSP, ideographic, em space */
        "\xF0\x9D\x90\x80\xF0\x9D\x9F\x8E 12345 \xD9\xA3\xE0\xA5\xA8",   /* math letters, other digits */
        "'S 'LL 'Ve \xC5\xBF",
        "<|im_start|><|im_end|<|im_start|",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        roundtrip_raw(g_tok, cases[i], strlen(cases[i]), 0);
        roundtrip_raw(g_tok, cases[i], strlen(cases[i]), 1);
    }
    /* NUL bytes inside the text */
    const char nul[] = "a\0b\0\0 c\0";
    roundtrip_raw(g_tok, nul, sizeof nul - 1, 1);
    int32_t *ids;
    size_t n;
    assert_int_equal(tok_encode(g_tok, "", 0, 1, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_non_null(ids);
    free(ids);
    /* NFC: decomposed é and precomposed é give the same ids */
    int32_t *a, *b;
    size_t na, nb;
    assert_int_equal(tok_encode(g_tok, "caf\x65\xCC\x81", 6, 0, &a, &na), 0);
    assert_int_equal(tok_encode(g_tok, "caf\xC3\xA9", 5, 0, &b, &nb), 0);
    assert_ids(a, na, b, nb, "NFC");
    free(a);
    free(b);
}

static void test_random_bytes_roundtrip(void **st) {
    srlm_rng r;
    srlm_rng_seed(&r, 12345);
    static const char *frags[] = {" ", "\n", "the", "'s", "123", "\xC3\xA9", "\xCC\x81", "\xF0\x9F\x98\x81",
                                  "<|im_end|>", "\xE4\xB8\x96", "\t", "  ", "!?"};
    char buf[600];
    for (int it = 0; it < 3000; it++) {
        size_t n = srlm_rng_below(&r, 200);
        size_t k = 0;
        while (k < n) {
            if (srlm_rng_below(&r, 3) == 0) {
                const char *f = frags[srlm_rng_below(&r, sizeof frags / sizeof *frags)];
                size_t fl = strlen(f);
                memcpy(buf + k, f, fl);
                k += fl;
            } else {
                buf[k++] = (char)srlm_rng_below(&r, 256);
            }
        }
        roundtrip_raw(g_tok, buf, k, (int)(it & 1));
    }
    /* long pathological runs: many spaces, a long symbol run, a long digit run */
    size_t big = 200000;
    char *s = malloc(big);
    memset(s, ' ', big);
    roundtrip_raw(g_tok, s, big, 1);
    memset(s, '=', big);
    roundtrip_raw(g_tok, s, big, 1);
    for (size_t i = 0; i < big; i++) s[i] = (char)('0' + i % 10);
    roundtrip_raw(g_tok, s, big, 1);
    for (size_t i = 0; i < big; i++) s[i] = (char)(0x80 + i % 64);
    roundtrip_raw(g_tok, s, big, 1);
    free(s);
}

/* ---- malformed tokenizer.json ---- */
static char g_dir[64];

static int load_text(const char *json, tok_tokenizer **t) {
    char path[128];
    snprintf(path, sizeof path, "%s/tokenizer.json", g_dir);
    assert_int_equal(srlm_write_file_atomic(path, json, strlen(json)), 0);
    return tok_load(g_dir, t);
}

static void expect_error(const char *json, int code, const char *needle) {
    tok_tokenizer *t = (tok_tokenizer *)1;
    int rc = load_text(json, &t);
    if (rc != code || !strstr(srlm_last_error(), needle)) {
        fprintf(stderr, "for %.80s\n  rc %d (want %d), message: %s (want '%s')\n", json, rc, code,
                srlm_last_error(), needle);
        fail();
    }
    assert_null(t);
}

#define BYTES_OK "\"model\": {\"type\": \"BPE\", \"vocab\": {"

static void test_malformed_files(void **st) {
    snprintf(g_dir, sizeof g_dir, "/tmp/srlm_test_tok_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    /* a valid minimal byte-level tokenizer to derive broken variants from */
    char d2[128];
    snprintf(d2, sizeof d2, "%s/bytes", g_dir);
    assert_int_equal(tok_write_byte_level(d2), 0);
    char *good;
    size_t gl;
    char p[160];
    snprintf(p, sizeof p, "%s/tokenizer.json", d2);
    assert_int_equal(srlm_read_file(p, &good, &gl, 0), 0);

    expect_error("{}", SRLM_EFORMAT, "missing field \"model\"");
    expect_error("[1, 2]", SRLM_EFORMAT, "top level");
    expect_error("", SRLM_EFORMAT, "invalid JSON");
    expect_error("{\"model\": 3}", SRLM_EFORMAT, "\"model\": expected an object");
    expect_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", SRLM_EUNSUPPORTED, "WordPiece");
    expect_error("{\"model\": {\"type\": \"BPE\"}}", SRLM_EFORMAT, "model.vocab");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": [\"a\"]}}", SRLM_EFORMAT, "model.vocab");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"1\"}}}", SRLM_EFORMAT, "model.vocab[\"a\"]");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": {}}}", SRLM_EFORMAT,
                 "model.merges");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", SRLM_EFORMAT, "byte token");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a b\": 0}}}", SRLM_EFORMAT, "byte alphabet");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}}", SRLM_EFORMAT, "used twice");

    /* variants of the good file */
    size_t cap = gl + 512;
    char *bad = malloc(cap);
    /* truncated */
    memcpy(bad, good, gl / 2);
    bad[gl / 2] = 0;
    expect_error(bad, SRLM_EFORMAT, "invalid JSON at line");
    /* bad merges line: "merges": [] -> ["ab"] (no space) / ["a q"] with q unknown / [7] */
    const char *mk = "\"merges\": []";
    char *at = strstr(good, mk);
    assert_non_null(at);
    const char *repl[] = {"\"merges\": [\"ab\"]", "\"merges\": [\"a \\u00e9\\u00e9\\u00e9\", \"a Ā\"]",
                          "\"merges\": [7]", "\"merges\": [\"a b c\"]"};
    const char *needle[] = {"model.merges[0]", "model.merges[0]", "model.merges[0]", "model.merges[0]"};
    for (int i = 0; i < 4; i++) {
        snprintf(bad, cap, "%.*s%s%s", (int)(at - good), good, repl[i], at + strlen(mk));
        expect_error(bad, SRLM_EFORMAT, needle[i]);
    }
    /* the merged token must exist: "a b" -> "ab" is not in a byte vocabulary */
    snprintf(bad, cap, "%.*s%s%s", (int)(at - good), good, "\"merges\": [\"a b\"]", at + strlen(mk));
    expect_error(bad, SRLM_EFORMAT, "merged token is not in model.vocab");
    /* added_tokens of the wrong type */
    at = strstr(good, "\"added_tokens\": [");
    assert_non_null(at);
    snprintf(bad, cap, "%.*s\"added_tokens\": 5, \"x\": [%s", (int)(at - good), good, at + 17);
    expect_error(bad, SRLM_EFORMAT, "added_tokens");
    /* unsupported normalizer */
    at = strstr(good, "\"NFC\"");
    assert_non_null(at);
    snprintf(bad, cap, "%.*s\"NFKD\"%s", (int)(at - good), good, at + 5);
    expect_error(bad, SRLM_EUNSUPPORTED, "NFKD");
    /* a broken regex */
    at = strstr(good, "\"Regex\": \"");
    assert_non_null(at);
    snprintf(bad, cap, "%.*s\"Regex\": \"(unclosed\", \"y\": \"%s", (int)(at - good), good, at + 10);
    expect_error(bad, SRLM_EFORMAT, "regex");

    /* missing directory / missing file / non-gzip .gz */
    tok_tokenizer *t;
    assert_int_equal(tok_load("/nonexistent/dir/x", &t), SRLM_ENOTFOUND);
    char empty[128];
    snprintf(empty, sizeof empty, "%s/empty", g_dir);
    assert_int_equal(srlm_mkdir_p(empty), 0);
    assert_int_equal(tok_load(empty, &t), SRLM_ENOTFOUND);
    assert_non_null(strstr(srlm_last_error(), "tokenizer.json"));
    snprintf(p, sizeof p, "%s/broken.json.gz", g_dir);
    assert_int_equal(srlm_write_file_atomic(p, "\x1f\x8b\x08garbage", 10), 0);
    assert_true(tok_load(p, &t) < 0);

    free(bad);
    free(good);
    assert_int_equal(srlm_rm_rf(g_dir), 0);
}

/* Random corruptions and truncations of a valid tokenizer.json never crash: each load
 * either fails with an error code and a message or yields a working tokenizer. */
static void test_mutated_files_never_crash(void **st) {
    char dir[] = "/tmp/srlm_test_tokm_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(tok_write_byte_level(dir), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *good;
    size_t gl;
    assert_int_equal(srlm_read_file(path, &good, &gl, 0), 0);
    char *buf = malloc(gl + 1);
    srlm_rng r;
    srlm_rng_seed(&r, 99);
    static const char junk[] = "{}[]\",:0-9e\\ u";
    int ok = 0, failed = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(buf, good, gl);
        size_t n = gl;
        if (it % 4 == 0) {
            n = srlm_rng_below(&r, gl); /* truncation */
        } else {
            int k = 1 + (int)srlm_rng_below(&r, 4);
            for (int j = 0; j < k; j++) {
                size_t at = srlm_rng_below(&r, gl);
                buf[at] = srlm_rng_below(&r, 2) ? junk[srlm_rng_below(&r, sizeof junk - 1)]
                                                : (char)srlm_rng_below(&r, 256);
            }
        }
        assert_int_equal(srlm_write_file_atomic(path, buf, n), 0);
        tok_tokenizer *t = NULL;
        int rc = tok_load(dir, &t);
        if (rc) {
            assert_true(rc < 0);
            assert_null(t);
            assert_true(strlen(srlm_last_error()) > 0);
            failed++;
            continue;
        }
        ok++;
        int32_t *ids;
        size_t ni;
        const char *s = "Hi <|im_end|> \xC3\xA9\xFF";
        assert_int_equal(tok_encode(t, s, strlen(s), 1, &ids, &ni), 0);
        char *back;
        size_t bl;
        assert_int_equal(tok_decode(t, ids, ni, 0, &back, &bl), 0);
        free(back);
        free(ids);
        tok_free(t);
    }
    assert_true(failed > 100);
    free(buf);
    free(good);
    assert_int_equal(srlm_rm_rf(dir), 0);
}

/* The tokenizer is immutable after loading: 4 threads encoding at once get the same ids
 * as one thread. */
typedef struct { const char *text; const int32_t *want; size_t wn; int ok; } thread_job;

static void *encode_many(void *arg) {
    thread_job *j = arg;
    j->ok = 1;
    for (int it = 0; it < 200 && j->ok; it++) {
        int32_t *ids;
        size_t n;
        if (tok_encode(g_tok, j->text, strlen(j->text), 1, &ids, &n) || n != j->wn ||
            memcmp(ids, j->want, n * sizeof *ids))
            j->ok = 0;
        free(ids);
    }
    return NULL;
}

static void test_concurrent_encode(void **st) {
    const char *texts[4] = {"Hello, y'all! How are you \xF0\x9F\x98\x81 ?\xE6\x88\x91\xE6\x83\xB3",
                            "<|im_start|>user\nWhat is 2+3?<|im_end|>\n", "    def f(x):\n        return x * 2\n",
                            "caf\x65\xCC\x81 na\xC3\xAFve \xFF\xFE"};
    int32_t *want[4];
    size_t wn[4];
    thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tok_encode(g_tok, texts[i], strlen(texts[i]), 1, &want[i], &wn[i]), 0);
        jobs[i] = (thread_job){texts[i], want[i], wn[i], 0};
    }
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, encode_many, &jobs[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(jobs[i].ok);
        free(want[i]);
    }
}

static void test_byte_level_vocabulary(void **st) {
    char dir[] = "/tmp/srlm_test_tokb_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(tok_write_byte_level(dir), 0);
    tok_tokenizer *t;
    assert_int_equal(tok_load(dir, &t), 0);
    assert_int_equal(tok_vocab_size(t), TOK_BYTE_VOCAB);
    assert_int_equal(tok_token_to_id(t, "<|endoftext|>"), TOK_BYTE_ENDOFTEXT);
    assert_int_equal(tok_token_to_id(t, "<|im_start|>"), TOK_BYTE_IM_START);
    assert_int_equal(tok_token_to_id(t, "<|im_end|>"), TOK_BYTE_IM_END);
    assert_int_equal(tok_eos_id(t), TOK_BYTE_IM_END);
    assert_int_equal(tok_pad_id(t), TOK_BYTE_ENDOFTEXT);
    const char *s = "h\xC3\xA9 <|im_end|>\xFF";
    int32_t *ids;
    size_t n;
    assert_int_equal(tok_encode(t, s, strlen(s), 1, &ids, &n), 0);
    int32_t want[] = {'h', 0xC3, 0xA9, ' ', TOK_BYTE_IM_END, 0xFF};
    assert_ids(ids, n, want, 6, "byte-level");
    char *back;
    size_t bl;
    assert_int_equal(tok_decode(t, ids, n, TOK_DECODE_RAW, &back, &bl), 0);
    assert_string_equal(back, s);
    free(back);
    free(ids);
    /* every byte value round-trips */
    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)i;
    assert_int_equal(tok_encode(t, all, 256, 0, &ids, &n), 0);
    assert_int_equal(n, 256);
    for (int i = 0; i < 256; i++) assert_int_equal(ids[i], i);
    free(ids);
    /* chat render: ids are bytes + specials, mask on the assistant part */
    tok_message m[] = {{"system", "sys"}, {"user", "hi"}, {"assistant", "yo"}};
    char *text;
    uint8_t *mask;
    assert_int_equal(tok_chat_render(t, m, 3, 0, &text, &ids, &mask, &n), 0);
    assert_string_equal(text, "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                              "<|im_start|>assistant\nyo<|im_end|>\n");
    assert_int_equal(n, (1 + 10 + 1 + 1) + (1 + 7 + 1 + 1) + (1 + 12 + 1 + 1));
    assert_int_equal(ids[0], TOK_BYTE_IM_START);
    assert_int_equal(ids[n - 1], '\n');
    assert_int_equal(ids[n - 2], TOK_BYTE_IM_END);
    assert_int_equal(ids[n - 3], 'o');
    assert_int_equal(ids[n - 4], 'y');
    for (size_t k = 0; k < n; k++) assert_int_equal(mask[k], k >= n - 4 && k <= n - 2);
    free(text); free(ids); free(mask);
    /* extension: {"system", NULL} first = no system turn */
    tok_message ns[] = {{"system", NULL}, {"user", "hi"}};
    assert_int_equal(tok_chat_render(t, ns, 2, 1, &text, &ids, NULL, &n), 0);
    assert_string_equal(text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    assert_int_equal(n, 1 + 7 + 1 + 1 + 1 + 10);
    free(text); free(ids);
    tok_message ns2[] = {{"user", "hi"}, {"system", NULL}};
    assert_int_equal(tok_chat_render(t, ns2, 2, 1, &text, &ids, NULL, &n), SRLM_EINVAL);
    tok_free(t);
    assert_int_equal(srlm_rm_rf(dir), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_vectors),
        cmocka_unit_test(test_llamacpp_reference_cases),
        cmocka_unit_test(test_special_tokens_parse_or_not),
        cmocka_unit_test(test_chat_reference_examples),
        cmocka_unit_test(test_chat_render_cases),
        cmocka_unit_test(test_decode_replacement_and_raw),
        cmocka_unit_test(test_unusual_unicode),
        cmocka_unit_test(test_random_bytes_roundtrip),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_mutated_files_never_crash),
        cmocka_unit_test(test_concurrent_encode),
        cmocka_unit_test(test_byte_level_vocabulary),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
