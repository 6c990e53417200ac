/* cmd_model.c — `srlm init`, `srlm forward`, `srlm generate` (docs/model.md). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "generate.h"
#include "model.h"
#include "tokenizer.h"
#include "util.h"

/* ---- srlm init --------------------------------------------------------------------- */

static void init_usage(FILE *f) {
    fprintf(f,
            "usage: srlm init --config CONFIG.json --out DIR [--seed N] [--tokenizer DIR|bytes] [--dtype f32|bf16]\n\n"
            "Create a randomly initialised model directory (HF layout) of any Qwen2 / Llama shape.\n"
            "Weights ~ normal(0, initializer_range), RMSNorm weights 1, biases 0 (HF _init_weights).\n\n"
            "  --config FILE      config.json to instantiate (e.g. configs/models/qwen2.5-0.5b.json)\n"
            "  --out DIR          output model directory (created)\n"
            "  --seed N           RNG seed (default 0)\n"
            "  --tokenizer X      'bytes' writes the byte-level tokenizer (tiny models);\n"
            "                     a directory copies its tokenizer files (and generation_config.json)\n"
            "  --dtype f32|bf16   weight dtype on disk (default f32)\n"
            "  --threads N        threads (default: all cores)\n");
}

int cmd_init(int argc, char **argv) {
    static const struct option opts[] = {{"config", 1, 0, 'c'}, {"out", 1, 0, 'o'}, {"seed", 1, 0, 's'},
                                         {"tokenizer", 1, 0, 't'}, {"dtype", 1, 0, 'd'}, {"threads", 1, 0, 'j'},
                                         {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *config = NULL, *out = NULL, *tok = NULL, *dtype = "f32";
    unsigned long long seed = 0;
    int threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'o': out = optarg; break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 't': tok = optarg; break;
        case 'd': dtype = optarg; break;
        case 'j': threads = atoi(optarg); break;
        case 'h': init_usage(stdout); return 0;
        default: init_usage(stderr); return 2;
        }
    }
    if (!config || !out || optind < argc) {
        init_usage(stderr);
        return 2;
    }
    lm_set_threads(threads);
    lm_config cfg;
    if (lm_config_load(config, &cfg)) {
        fprintf(stderr, "srlm init: %s\n", srlm_last_error());
        return 1;
    }
    lm_model *m;
    if (lm_model_create(&cfg, &m)) {
        fprintf(stderr, "srlm init: %s\n", srlm_last_error());
        return 1;
    }
    lm_model_init_random(m, seed);
    char *gen = NULL;
    const char *tokdir = NULL;
    int rc = 0;
    if (tok && strcmp(tok, "bytes")) {
        tokdir = tok;
        char p[4096];
        if (!srlm_fmt(p, sizeof p, "%s/generation_config.json", tok) && srlm_file_exists(p)) {
            size_t len;
            if (srlm_read_file(p, &gen, &len, 1 << 20)) gen = NULL;
        }
    }
    if (lm_model_save(m, out, dtype, gen, tokdir)) rc = 1;
    if (!rc && tok && !strcmp(tok, "bytes") && tok_write_byte_level(out)) rc = 1;
    if (rc) fprintf(stderr, "srlm init: %s\n", srlm_last_error());
    else
        SRLM_INFO("initialised %s: %zu parameters (%d layers, hidden %d, vocab %d), seed %llu", out, m->n_params,
                  cfg.num_layers, cfg.hidden_size, cfg.vocab_size, seed);
    free(gen);
    lm_model_free(m);
    return rc;
}

/* ---- srlm forward ------------------------------------------------------------------ */

static int write_npy(const char *path, const float *x, int rows, int cols) {
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    size_t hl = (size_t)n + pad + 1;
    size_t sz = 10 + hl + (size_t)rows * cols * 4;
    unsigned char *buf = malloc(sz);
    if (!buf) return srlm_set_error(SRLM_ENOMEM, "out of memory");
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)(hl >> 8);
    memcpy(buf + 10, hdr, (size_t)n);
    memset(buf + 10 + n, ' ', (size_t)pad);
    buf[10 + n + pad] = '\n';
    memcpy(buf + 10 + hl, x, (size_t)rows * cols * 4);
    int rc = srlm_write_file_atomic(path, buf, sz);
    free(buf);
    return rc;
}

/* Index of the first NaN/Inf of x[n], or n when all are finite. */
static size_t first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

static void forward_usage(FILE *f) {
    fprintf(f,
            "usage: srlm forward --model DIR --ids 1,2,3 [--out logits.npy] [--threads N]\n\n"
            "Run the model on one sequence of token ids (positions 0..T-1).\n"
            "  --model DIR    HF model directory\n"
            "  --ids LIST     comma-separated token ids\n"
            "  --out FILE     write logits [T, V] as float32 NumPy .npy; without it, print the\n"
            "                 top-5 next-token ids and log-probabilities per position\n"
            "  --threads N    threads (default: all cores)\n"
            "Exit status 1 when the model cannot be loaded (a NaN/Inf weight is named) or its\n"
            "logits are not finite.\n");
}

int cmd_forward(int argc, char **argv) {
    static const struct option opts[] = {{"model", 1, 0, 'm'}, {"ids", 1, 0, 'i'}, {"out", 1, 0, 'o'},
                                         {"threads", 1, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *ids_s = NULL, *out = NULL;
    int threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i': ids_s = optarg; break;
        case 'o': out = optarg; break;
        case 'j': threads = atoi(optarg); break;
        case 'h': forward_usage(stdout); return 0;
        default: forward_usage(stderr); return 2;
        }
    }
    if (!model || !ids_s || optind < argc) {
        forward_usage(stderr);
        return 2;
    }
    int *ids = NULL, n = 0;
    if (srlm_parse_int_list(ids_s, &ids, &n) || n <= 0) {
        fprintf(stderr, "srlm forward: --ids: %s\n", n <= 0 ? "empty list" : srlm_last_error());
        free(ids);
        return 2;
    }
    lm_set_threads(threads);
    lm_model *m;
    if (lm_model_load(model, &m)) {
        fprintf(stderr, "srlm forward: %s\n", srlm_last_error());
        free(ids);
        return 1;
    }
    int V = m->cfg.vocab_size, rc = 0;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) tok[i] = ids[i];
    float *lg = malloc(sizeof(float) * (size_t)n * V);
    size_t bad = (size_t)n * V;
    if (!lg || lm_forward(m, tok, NULL, 1, n, lg, NULL)) {
        fprintf(stderr, "srlm forward: %s\n", lg ? srlm_last_error() : "out of memory");
        rc = 1;
    } else if ((bad = first_nonfinite(lg, (size_t)n * V)) < (size_t)n * V) {
        /* the loader rejects NaN/Inf weights; finite weights can still overflow float32 */
        fprintf(stderr,
                "srlm forward: %s: the logits are not finite (NaN or Inf at position %zu, token %zu): the "
                "model's weights overflow float32; the checkpoint is broken\n",
                model, bad / (size_t)V, bad % (size_t)V);
        rc = 1;
    } else if (out) {
        if (write_npy(out, lg, n, V)) {
            fprintf(stderr, "srlm forward: %s\n", srlm_last_error());
            rc = 1;
        }
    } else {
        for (int t = 0; t < n; t++) {
            const float *z = lg + (size_t)t * V;
            float mx = -INFINITY;
            for (int v = 0; v < V; v++) mx = fmaxf(mx, z[v]);
            double s = 0;
            for (int v = 0; v < V; v++) s += exp((double)(z[v] - mx));
            printf("pos %d id %d:", t, tok[t]);
            int used[5] = {-1, -1, -1, -1, -1};
            for (int k = 0; k < 5 && k < V; k++) {
                int best = -1;
                for (int v = 0; v < V; v++) {
                    int skip = 0;
                    for (int j = 0; j < k; j++) skip |= used[j] == v;
                    if (!skip && (best < 0 || z[v] > z[best])) best = v;
                }
                used[k] = best;
                printf(" %d(%.4f)", best, (double)(z[best] - mx) - log(s));
            }
            printf("\n");
        }
    }
    free(lg);
    free(tok);
    free(ids);
    lm_model_free(m);
    return rc;
}

/* ---- srlm generate ----------------------------------------------------------------- */

static void generate_usage(FILE *f) {
    fprintf(f,
            "usage: srlm generate --model DIR (--prompt TEXT | --ids 1,2,3) [options]\n\n"
            "Sample completions with a KV cache (qwen2.md §2.12). Defaults come from the model's\n"
            "generation_config.json; flags override them.\n"
            "  --model DIR              HF model directory (tokenizer files inside it)\n"
            "  --prompt TEXT            prompt text (needs the tokenizer)\n"
            "  --ids LIST               prompt as comma-separated token ids\n"
            "  --chat                   wrap the prompt as a ChatML user turn + assistant header\n"
            "  -n, --num G              completions of the prompt (a group sharing its KV cache; default 1)\n"
            "  --max-new-tokens N       default: generation_config max_new_tokens, else 128\n"
            "  --temperature T          > 0 samples, 0 = greedy\n"
            "  --greedy                 argmax decoding (same as --temperature 0)\n"
            "  --top-p P                nucleus sampling mass in (0, 1]\n"
            "  --top-k K                keep the K highest logits (0 = off)\n"
            "  --repetition-penalty R   HF repetition penalty (1 = off)\n"
            "  --seed S                 sampling seed (default 0)\n"
            "  --json                   one JSON object per completion: ids, logprobs, text, finish_reason\n"
            "  --threads N              threads (default: all cores)\n"
            "logprobs are log softmax(logits / T) of the raw model logits (T = 1 when greedy).\n");
}

int cmd_generate(int argc, char **argv) {
    enum { O_MAXNEW = 256, O_TEMP, O_TOPP, O_TOPK, O_REP, O_SEED, O_JSON, O_CHAT, O_GREEDY, O_THREADS, O_IDS };
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"prompt", 1, 0, 'p'}, {"ids", 1, 0, O_IDS}, {"chat", 0, 0, O_CHAT},
        {"num", 1, 0, 'n'}, {"max-new-tokens", 1, 0, O_MAXNEW}, {"temperature", 1, 0, O_TEMP},
        {"top-p", 1, 0, O_TOPP}, {"top-k", 1, 0, O_TOPK}, {"repetition-penalty", 1, 0, O_REP},
        {"seed", 1, 0, O_SEED}, {"json", 0, 0, O_JSON}, {"greedy", 0, 0, O_GREEDY},
        {"threads", 1, 0, O_THREADS}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *prompt = NULL, *ids_s = NULL;
    int chat = 0, G = 1, json = 0, threads = 0, c;
    int max_new = -1, top_k = -1, greedy = 0;
    float temp = -1, top_p = -1, rep = -1;
    long long seed = -1;
    int bad_flag = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hn:", opts, NULL)) != -1) {
        /* numeric flags: the whole argument must parse and be in range (no silent 0 from
         * atoi, no NaN/Inf, no negative value mistaken for "not given") */
        int iv = 0;
        float fv = 0;
        if (c == 'n' || c == O_MAXNEW || c == O_TOPK || c == O_SEED || c == O_THREADS) {
            if (srlm_parse_int(optarg, c == O_TOPK || c == O_SEED || c == O_THREADS ? 0 : 1, INT_MAX, &iv)) {
                fprintf(stderr, "srlm generate: bad value '%s' for --%s\n", optarg,
                        c == 'n' ? "num" : c == O_MAXNEW ? "max-new-tokens" : c == O_TOPK ? "top-k"
                                         : c == O_SEED ? "seed" : "threads");
                bad_flag = 1;
            }
        } else if (c == O_TEMP || c == O_TOPP || c == O_REP) {
            char *end;
            fv = strtof(optarg, &end);
            if (end == optarg || *end || !isfinite(fv) || fv < 0) {
                fprintf(stderr, "srlm generate: bad value '%s' for --%s (a finite number >= 0)\n", optarg,
                        c == O_TEMP ? "temperature" : c == O_TOPP ? "top-p" : "repetition-penalty");
                bad_flag = 1;
            }
        }
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case O_IDS: ids_s = optarg; break;
        case O_CHAT: chat = 1; break;
        case 'n': G = iv; break;
        case O_MAXNEW: max_new = iv; break;
        case O_TEMP: temp = fv; break;
        case O_TOPP: top_p = fv; break;
        case O_TOPK: top_k = iv; break;
        case O_REP: rep = fv; break;
        case O_SEED: seed = iv; break;
        case O_JSON: json = 1; break;
        case O_GREEDY: greedy = 1; break;
        case O_THREADS: threads = iv; break;
        case 'h': generate_usage(stdout); return 0;
        default: generate_usage(stderr); return 2;
        }
    }
    if (bad_flag) return 2;
    if (!model || (!prompt == !ids_s) || optind < argc || G < 1 || G > 4096) {
        if (!model || (!prompt == !ids_s)) fprintf(stderr, "srlm generate: need --model and one of --prompt / --ids\n");
        generate_usage(stderr);
        return 2;
    }
    lm_set_threads(threads);
    lm_model *m = NULL;
    tok_tokenizer *tk = NULL;
    int32_t *pids = NULL;
    size_t np = 0;
    int rc = 1;
    lm_completion *out = NULL;
    if (lm_model_load(model, &m)) {
        fprintf(stderr, "srlm generate: %s\n", srlm_last_error());
        return 1;
    }
    if (tok_load(model, &tk)) {
        tk = NULL;
        if (prompt) {
            fprintf(stderr, "srlm generate: %s (use --ids without a tokenizer)\n", srlm_last_error());
            goto done;
        }
    }
    if (ids_s) {
        int *ii = NULL, n = 0;
        if (srlm_parse_int_list(ids_s, &ii, &n) || n <= 0) {
            fprintf(stderr, "srlm generate: --ids: bad list\n");
            free(ii);
            rc = 2;
            goto done;
        }
        pids = malloc(sizeof(int32_t) * (size_t)n);
        for (int i = 0; i < n; i++) pids[i] = ii[i];
        np = (size_t)n;
        free(ii);
    } else if (chat) {
        tok_message msg = {"user", prompt};
        if (tok_chat_render(tk, &msg, 1, 1, NULL, &pids, NULL, &np)) {
            fprintf(stderr, "srlm generate: %s\n", srlm_last_error());
            goto done;
        }
    } else if (tok_encode(tk, prompt, strlen(prompt), 1, &pids, &np)) {
        fprintf(stderr, "srlm generate: %s\n", srlm_last_error());
        goto done;
    }
    if (np == 0) {
        fprintf(stderr, "srlm generate: the prompt encodes to no tokens\n");
        rc = 2;
        goto done;
    }
    for (size_t i = 0; i < np; i++)
        if (pids[i] < 0 || pids[i] >= m->cfg.vocab_size) {
            fprintf(stderr,
                    "srlm generate: prompt token %zu has id %d, outside the vocabulary [0, %d) of %s/config.json%s\n",
                    i, (int)pids[i], m->cfg.vocab_size, model, ids_s ? "" : " (tokenizer and model do not match)");
            goto done;
        }
    lm_sampling s;
    lm_sampling_default(&s);
    for (int i = 0; i < m->cfg.n_eos && s.n_stop < LM_MAX_STOP; i++) s.stop_ids[s.n_stop++] = m->cfg.eos_token_ids[i];
    if (m->gen_config_json && lm_sampling_from_json(&s, m->gen_config_json, "generation_config.json"))
        SRLM_WARN("%s/generation_config.json ignored: %s", model, srlm_last_error());
    if (max_new > 0) s.max_new_tokens = max_new;
    else if (max_new == 0) { fprintf(stderr, "srlm generate: --max-new-tokens must be > 0\n"); rc = 2; goto done; }
    if (temp >= 0) {
        s.do_sample = temp > 0;
        if (temp > 0) s.temperature = temp;
    }
    if (greedy) s.do_sample = 0;
    if (top_p >= 0) s.top_p = top_p;
    if (top_k >= 0) s.top_k = top_k;
    if (rep >= 0) s.repetition_penalty = rep;
    if (seed >= 0) s.seed = (uint64_t)seed;
    if (lm_sampling_validate(&s)) {
        fprintf(stderr, "srlm generate: %s\n", srlm_last_error());
        rc = 2;
        goto done;
    }
    if ((long long)np + s.max_new_tokens > m->cfg.max_position_embeddings)
        SRLM_WARN("prompt (%zu tokens) + max_new_tokens (%d) exceeds max_position_embeddings %d of %s/config.json: "
                  "positions beyond it are extrapolated (RoPE has no hard limit) and quality degrades",
                  np, s.max_new_tokens, m->cfg.max_position_embeddings, model);
    out = calloc((size_t)G, sizeof *out);
    double t0 = srlm_now();
    if (lm_generate_group(m, pids, (int)np, G, &s, out)) {
        fprintf(stderr, "srlm generate: %s\n", srlm_last_error());
        free(out);
        out = NULL;
        goto done;
    }
    double dt = srlm_now() - t0;
    long total = 0;
    for (int g = 0; g < G; g++) {
        total += out[g].n;
        char *text = NULL;
        size_t tl = 0;
        if (tk && tok_decode(tk, out[g].ids, (size_t)out[g].n, 0, &text, &tl)) text = NULL;
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "index", json_integer(g));
            json_t *pi = json_array(), *ids = json_array(), *lp = json_array();
            for (size_t i = 0; i < np; i++) json_array_append_new(pi, json_integer(pids[i]));
            for (int i = 0; i < out[g].n; i++) {
                json_array_append_new(ids, json_integer(out[g].ids[i]));
                json_array_append_new(lp, json_real(out[g].logprobs[i]));
            }
            json_object_set_new(o, "prompt_ids", pi);
            json_object_set_new(o, "ids", ids);
            json_object_set_new(o, "logprobs", lp);
            if (text) json_object_set_new(o, "text", json_stringn(text, tl));
            json_object_set_new(o, "finish_reason", json_string(lm_finish_reason_name(out[g].finish_reason)));
            char *sj = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7));
            printf("%s\n", sj);
            free(sj);
            json_decref(o);
        } else {
            if (G > 1) printf("--- completion %d (%s, %d tokens)\n", g, lm_finish_reason_name(out[g].finish_reason), out[g].n);
            if (text) printf("%s\n", text);
            else {
                for (int i = 0; i < out[g].n; i++) printf("%s%d", i ? "," : "", out[g].ids[i]);
                printf("\n");
            }
        }
        free(text);
    }
    SRLM_INFO("generated %ld tokens in %.2f s (%.1f tokens/s), prompt %zu tokens, group %d", total, dt,
              dt > 0 ? total / dt : 0.0, np, G);
    rc = 0;
done:
    if (out)
        for (int g = 0; g < G; g++) lm_completion_free(&out[g]);
    free(out);
    free(pids);
    tok_free(tk);
    lm_model_free(m);
    return rc;
}
