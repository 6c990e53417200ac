/* fuzz_safetensors.c — libFuzzer target for core/safetensors.c and the config parser of
 * core/model.c. The first input byte picks the mode, the rest is the payload:
 *   0..159   the payload is a .safetensors file: open it, and if it validates, convert
 *            every F32/BF16/F16 tensor to f32 (reads must stay inside the mapping);
 *   160..255 the payload is a config.json: parse it; if accepted, the derived shape must
 *            be consistent (head_dim · heads == hidden, heads % kv_heads == 0).
 * Any crash, leak, sanitizer report or abort is a bug.
 * Run: `make fuzz FUZZ_TARGET=fuzz_safetensors`; seeds: tests/fuzz/corpus/safetensors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "safetensors.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (data[0] < 160) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/fuzz_st_%d.safetensors", (int)getpid());
        FILE *f = fopen(path, "wb");
        if (!f) abort();
        if (n && fwrite(p, 1, n, f) != n) abort();
        fclose(f);
        st_file *st;
        if (st_open(path, &st) == 0) {
            for (int i = 0; i < st->n_tensors; i++) {
                const st_tensor *t = &st->tensors[i];
                if (t->end > st->data_size || t->begin > t->end) abort();
                if (t->numel > (1u << 22)) continue; /* keep memory bounded */
                float *buf = malloc(sizeof(float) * (t->numel + 1));
                st_read_f32(st, t, buf);
                free(buf);
            }
            st_close(st);
        }
        unlink(path);
    } else {
        char *text = malloc(n + 1);
        memcpy(text, p, n);
        text[n] = 0;
        lm_config c;
        if (lm_config_parse(text, "fuzz.json", &c) == 0) {
            if (c.head_dim * c.num_heads != c.hidden_size || c.num_heads % c.num_kv_heads || c.head_dim % 2) abort();
        }
        free(text);
    }
    return 0;
}
