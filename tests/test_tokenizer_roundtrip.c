/* test_tokenizer_roundtrip.c — decode(encode(x)) == x for every text field of the
 * bundled GSM8K (train + test), MATH-500, HumanEval and MBPP records, with the Qwen2.5
 * tokenizer (special-token parsing on and off) and with the byte-level vocabulary.
 * Texts that are not in NFC are compared with their NFC form (the tokenizer normalises;
 * see docs/tokenizer.md); the test reports how many there were. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "tokenizer.h"
#include "util.h"

static const char *FILES[] = {
    "datasets/data/gsm8k/train.jsonl.gz",  "datasets/data/gsm8k/test.jsonl.gz",
    "datasets/data/math/math500_test.jsonl.gz", "datasets/data/humaneval/HumanEval.jsonl.gz",
    "datasets/data/mbpp/mbpp.jsonl.gz",    "datasets/data/mbpp/sanitized-mbpp.json.gz",
};

typedef struct {
    const tok_tokenizer *t;
    int parse_special;
    long fields, non_nfc, tokens;
    size_t bytes;
} rt_state;

static void check_text(rt_state *s, const char *x, size_t n) {
    int32_t *ids;
    size_t ni;
    assert_int_equal(tok_encode(s->t, x, n, s->parse_special, &ids, &ni), 0);
    char *back;
    size_t bl;
    assert_int_equal(tok_decode(s->t, ids, ni, 0, &back, &bl), 0);
    s->fields++;
    s->tokens += (long)ni;
    s->bytes += n;
    if (bl != n || memcmp(back, x, n)) {
        /* allowed only if x is not NFC and back == NFC(x) */
        utf8proc_uint8_t *norm;
        utf8proc_ssize_t nl = utf8proc_map((const utf8proc_uint8_t *)x, (utf8proc_ssize_t)n, &norm,
                                           UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        assert_true(nl >= 0);
        if ((size_t)nl != bl || memcmp(norm, back, bl)) {
            fprintf(stderr, "round trip failed (%zu bytes): %.200s\n", n, x);
            fail();
        }
        s->non_nfc++;
        free(norm);
    }
    free(back);
    free(ids);
}

static void walk(rt_state *s, json_t *j) {
    if (json_is_string(j)) {
        check_text(s, json_string_value(j), json_string_length(j));
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) walk(s, v);
    } else if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) walk(s, v);
    }
}

static void run_files(rt_state *s) {
    for (size_t f = 0; f < sizeof FILES / sizeof *FILES; f++) {
        char path[4096];
        assert_int_equal(srlm_resource_path(FILES[f], path, sizeof path), 0);
        char *data;
        size_t len;
        assert_int_equal(srlm_read_file(path, &data, &len, 0), 0);
        long before = s->fields;
        json_error_t e;
        if (data[0] == '[') {
            json_t *arr = json_loadb(data, len, 0, &e);
            assert_non_null(arr);
            walk(s, arr);
            json_decref(arr);
        } else {
            char *p = data, *end = data + len;
            while (p < end) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
                if (l > 0) {
                    json_t *rec = json_loadb(p, l, 0, &e);
                    assert_non_null(rec);
                    walk(s, rec);
                    json_decref(rec);
                }
                p += l + 1;
            }
        }
        assert_true(s->fields > before);
        free(data);
    }
}

static void test_roundtrip_qwen(void **st) {
    char dir[4096];
    assert_int_equal(srlm_resource_path("tokenizers/qwen2.5", dir, sizeof dir), 0);
    tok_tokenizer *t;
    assert_int_equal(tok_load(dir, &t), 0);
    for (int ps = 0; ps <= 1; ps++) {
        rt_state s = {.t = t, .parse_special = ps};
        double t0 = srlm_now();
        run_files(&s);
        double dt = srlm_now() - t0;
        fprintf(stderr, "qwen2.5 parse_special=%d: %ld fields, %.1f MB, %ld tokens, %ld not NFC, %.2f s\n", ps,
                s.fields, s.bytes / 1e6, s.tokens, s.non_nfc, dt);
        assert_true(s.fields > 20000);
    }
    tok_free(t);
}

static void test_roundtrip_byte_level(void **st) {
    char dir[] = "/tmp/srlm_test_tokrt_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(tok_write_byte_level(dir), 0);
    tok_tokenizer *t;
    assert_int_equal(tok_load(dir, &t), 0);
    rt_state s = {.t = t, .parse_special = 1};
    run_files(&s);
    /* no merges: one token per byte (after NFC) */
    assert_true(s.tokens <= (long)s.bytes && s.tokens >= (long)(s.bytes * 0.99));
    tok_free(t);
    assert_int_equal(srlm_rm_rf(dir), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_qwen),
        cmocka_unit_test(test_roundtrip_byte_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
