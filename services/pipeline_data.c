/* pipeline_data.c — helpers the generator and the trainer service share: rendering
 * records into token sequences with core/prompt.h, stream names and seeds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "prompt.h"
#include "util.h"

int pd_render(const tok_tokenizer *tok, const pc_stage *st, const json_t *rec, int want_target,
              int32_t **ids, int *n, int *prompt_len, int *fmt_out) {
    *ids = NULL;
    *n = 0;
    *prompt_len = 0;
    pf_format f;
    if (!strcmp(st->prompt_format, "auto")) f = pf_default_for(rec);
    else {
        int rc = pf_from_name(st->prompt_format, &f);
        if (rc) return rc;
    }
    if (fmt_out) *fmt_out = (int)f;
    char *prompt = NULL, *target = NULL;
    int rc = pf_render_prompt(f, rec, st->chat, &prompt);
    if (rc) return rc;
    int32_t *buf = NULL;
    size_t nb = 0, cap = 0;
    /* chat prompts carry the template's special tokens; record text itself was placed by
     * pf_render_prompt, so parse_special follows the mode */
    rc = tok_encode_append(tok, prompt, strlen(prompt), st->chat, &buf, &nb, &cap);
    free(prompt);
    if (rc) return rc;
    size_t np = nb;
    if (want_target) {
        rc = pf_render_target(f, rec, st->chat, &target);
        if (rc) { free(buf); return rc; }
        rc = tok_encode_append(tok, target, strlen(target), st->chat, &buf, &nb, &cap);
        free(target);
        if (rc) { free(buf); return rc; }
        if (!st->chat) {
            int eos = tok_eos_id(tok);
            if (eos >= 0) {
                if (nb == cap) buf = srlm_xrealloc(buf, (cap = cap * 2 + 1) * sizeof *buf);
                buf[nb++] = eos;
            }
        }
        if ((int)nb > st->max_seq_len) nb = (size_t)st->max_seq_len;
        if (np >= nb) { /* the prompt alone fills max_seq_len: keep its tail and one target */
            free(buf);
            return srlm_set_error(SRLM_EINVAL, "prompt of %zu tokens leaves no room for a target within max_seq_len %d",
                                  np, st->max_seq_len);
        }
    }
    *ids = buf;
    *n = (int)nb;
    *prompt_len = (int)np;
    return 0;
}

void pd_consumer_name(const char *role, int stage_index, char *out, size_t n) {
    snprintf(out, n, "%s-stage%d", role, stage_index);
}

static uint64_t mix(uint64_t x) { /* splitmix64 finaliser */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t pd_stream_seed(const pc_config *c, int stage_index) { return mix(c->seed * 1000003u + (uint64_t)stage_index); }

uint64_t pd_group_seed(const pc_config *c, int stage_index, uint64_t seq) {
    return mix(mix(c->seed ^ 0x5eedull) + (uint64_t)stage_index * 0x100000001ull + seq);
}
