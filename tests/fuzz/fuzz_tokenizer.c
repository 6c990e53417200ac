/* fuzz_tokenizer.c — libFuzzer target for core/tokenizer.c. The first input byte picks
 * the mode, the rest is the payload:
 *   0..191   encode the payload with the bundled Qwen2.5 tokenizer (special-token parsing
 *            on for odd bytes), decode it raw and check decode_raw(encode(x)) == x with
 *            every valid UTF-8 run NFC-normalised (docs/tokenizer.md); also decode with
 *            U+FFFD replacement and the streaming helper;
 *   192..255 write the payload as a tokenizer.json and load it; if it loads, encode and
 *            decode a fixed string with it.
 * Any crash, leak, sanitizer report, abort (broken invariant) or timeout is a bug.
 * Run: `make fuzz FUZZ_TARGET=fuzz_tokenizer`; seeds: tests/fuzz/corpus/tokenizer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "tokenizer.h"
#include "util.h"

static tok_tokenizer *qwen(void) {
    static tok_tokenizer *t; /* fuzz harness only: loaded once per process */
    if (!t) {
        char dir[4096];
        if (srlm_resource_path("tokenizers/qwen2.5", dir, sizeof dir) || tok_load(dir, &t)) {
            fprintf(stderr, "fuzz_tokenizer: cannot load the bundled tokenizer: %s\n", srlm_last_error());
            abort();
        }
    }
    return t;
}

/* valid runs NFC-normalised, invalid bytes kept */
static char *expected_raw(const uint8_t *s, size_t n, size_t *on) {
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
            if (nl < 0) abort();
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

static void fuzz_encode(const uint8_t *p, size_t n, int parse_special) {
    const tok_tokenizer *t = qwen();
    int32_t *ids;
    size_t ni;
    if (tok_encode(t, (const char *)p, n, parse_special, &ids, &ni)) abort();
    char *raw, *text;
    size_t rl, tl;
    if (tok_decode(t, ids, ni, TOK_DECODE_RAW, &raw, &rl)) abort();
    size_t el;
    char *exp = expected_raw(p, n, &el);
    if (rl != el || memcmp(raw, exp, el)) abort();
    if (tok_decode(t, ids, ni, 0, &text, &tl)) abort();
    if (tok_utf8_complete(text, tl) != tl) abort(); /* replaced text is valid UTF-8 */
    free(text);
    free(exp);
    free(raw);
    free(ids);
}

static void fuzz_load(const uint8_t *p, size_t n) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/fuzz_tok_%d", (int)getpid());
    char path[96];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (srlm_mkdir_p(dir) || srlm_write_file_atomic(path, p, n)) return;
    tok_tokenizer *t = NULL;
    if (tok_load(dir, &t) == 0) {
        const char *s = "Hi <|im_end|> caf\xC3\xA9 \xFF 123";
        int32_t *ids;
        size_t ni;
        if (tok_encode(t, s, strlen(s), 1, &ids, &ni)) abort();
        char *back;
        size_t bl;
        if (tok_decode(t, ids, ni, 0, &back, &bl)) abort();
        free(back);
        free(ids);
        tok_free(t);
    } else if (t) {
        abort(); /* failed load must not return a tokenizer */
    }
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 64 * 1024) return 0;
    if (data[0] < 192) fuzz_encode(data + 1, size - 1, data[0] & 1);
    else fuzz_load(data + 1, size - 1);
    return 0;
}
