/* fuzz_math.c — libFuzzer target for the math checker's extraction and parsing
 * (rewards/math_*.c). Input: "GOLD\0PRED" (without a NUL: gold "42", pred = input).
 * Runs extraction on the raw text, then a full check (parse + equivalence). Any crash,
 * leak, sanitizer report or timeout is a bug. Build and run: `make fuzz` (clang,
 * -DSRLM_FUZZ=ON; FUZZ_SECONDS=600 by default); corpus: tests/fuzz/corpus/math. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "math_reward.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 64 * 1024) return 0;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    const char *gold = "42", *pred = buf;
    char *nul = memchr(buf, 0, size);
    if (nul && nul < buf + size) {
        gold = buf;
        pred = nul + 1;
    }
    char out[MR_MAX_ANSWER + 1];
    mr_rule rule;
    int fmt;
    mr_extract(pred, strlen(pred), out, sizeof out, &rule, &fmt);
    mr_result r;
    mr_check(gold, pred, NULL, &r);
    mr_opts o;
    mr_opts_default(&o);
    o.extract_pred = 0;
    mr_check(pred, gold, &o, &r);
    free(buf);
    return 0;
}
