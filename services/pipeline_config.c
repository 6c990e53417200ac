/* pipeline_config.c — the run config: table-driven JSON parsing (keys, types, defaults,
 * ranges) so the parser, the validation and the key list in docs/pipeline.md agree. */
#include "pipeline_config.h"

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef enum { K_INT, K_DOUBLE, K_BOOL, K_STR, K_U64 } ktype;

typedef struct {
    const char *key;
    ktype type;
    size_t off, size;      /* offset in the struct; size of char arrays */
    const char *def;       /* default as text */
    double lo, hi;         /* allowed range for numbers */
    const char *choices;   /* "|a|b|c|" for strings, or NULL */
    const char *doc;
} kspec;

#define S(f) offsetof(pc_stage, f), sizeof(((pc_stage *)0)->f)
#define C(f) offsetof(pc_config, f), sizeof(((pc_config *)0)->f)

static const kspec stage_keys[] = {
    {"type", K_STR, S(type_name), "", 0, 0, "|sft|kd|grpo|", "stage kind (required)"},
    {"name", K_STR, S(name), "", 0, 0, NULL, "label in metrics and logs (default: type)"},
    {"steps", K_INT, S(steps), "0", 1, 1e9, NULL, "optimizer steps of the stage (required)"},
    {"batch_size", K_INT, S(batch_size), "8", 1, 65536, NULL, "SFT/KD: samples per step; GRPO: groups per step"},
    {"micro_batch", K_INT, S(micro_batch), "4", 1, 65536, NULL, "rows per forward/backward (gradient accumulation)"},
    {"sources", K_STR, S(sources), "", 0, 0, NULL, "dataset sources, comma-separated (\"\" = all)"},
    {"splits", K_STR, S(splits), "train", 0, 0, NULL, "dataset splits, comma-separated"},
    {"prompt_format", K_STR, S(prompt_format), "auto", 0, 0, "|auto|gsm8k|cot-boxed|humaneval|mbpp|plain|", "prompt format (core/prompt.h); auto = per record"},
    {"chat", K_BOOL, S(chat), "false", 0, 0, NULL, "ChatML prompts"},
    {"max_seq_len", K_INT, S(max_seq_len), "512", 8, 1e6, NULL, "SFT/KD samples are truncated to this many tokens"},
    {"optimizer", K_STR, S(optimizer), "adamw", 0, 0, "|adamw|sgd|", "optimizer"},
    {"lr", K_DOUBLE, S(lr), "1e-5", 0, 10, NULL, "peak learning rate"},
    {"weight_decay", K_DOUBLE, S(weight_decay), "0", 0, 10, NULL, "decoupled weight decay (AdamW)"},
    {"max_grad_norm", K_DOUBLE, S(max_grad_norm), "1.0", 0, 1e9, NULL, "global-norm clip (0 = off)"},
    {"schedule", K_STR, S(schedule), "constant", 0, 0, "|constant|linear|cosine|", "LR schedule over the stage's steps"},
    {"warmup_steps", K_INT, S(warmup_steps), "0", 0, 1e9, NULL, "linear warmup steps"},
    {"lora_rank", K_INT, S(lora_rank), "0", 0, 4096, NULL, "LoRA rank (0 = full fine-tune)"},
    {"lora_alpha", K_DOUBLE, S(lora_alpha), "16", 0, 1e6, NULL, "LoRA alpha"},
    {"lora_targets", K_STR, S(lora_targets), "q,k,v,o,gate,up,down", 0, 0, NULL, "LoRA target projections"},
    {"kd_mode", K_STR, S(kd_mode), "sequence", 0, 0, "|sequence|logit|", "KD: sequence (SFT on teacher traces) or logit"},
    {"teacher", K_STR, S(teacher), "", 0, 0, NULL, "logit KD: teacher model dir"},
    {"teacher_service", K_BOOL, S(teacher_service), "false", 0, 0, NULL, "logit KD: query a teacher process (endpoints.teacher, started by srlm run) for top-k log-probabilities instead of loading the teacher in the trainer"},
    {"teacher_top_k", K_INT, S(teacher_top_k), "16", 1, 4096, NULL, "logit KD with teacher_service: top-k per position"},
    {"kd_loss", K_STR, S(kd_loss), "fkl", 0, 0, "|fkl|rkl|jsd|", "logit KD divergence"},
    {"kd_beta", K_DOUBLE, S(kd_beta), "0.5", 0, 1, NULL, "generalized JSD beta"},
    {"kd_temperature", K_DOUBLE, S(kd_temperature), "1.0", 1e-3, 100, NULL, "KD temperature"},
    {"group_size", K_INT, S(group_size), "4", 1, 1024, NULL, "GRPO: completions per problem (G)"},
    {"max_new_tokens", K_INT, S(max_new_tokens), "128", 1, 1e6, NULL, "GRPO: sampling limit per completion"},
    {"temperature", K_DOUBLE, S(temperature), "1.0", 1e-3, 100, NULL, "GRPO: sampling temperature"},
    {"top_p", K_DOUBLE, S(top_p), "1.0", 1e-6, 1, NULL, "GRPO: nucleus sampling"},
    {"top_k", K_INT, S(top_k), "0", 0, 1e7, NULL, "GRPO: top-k sampling (0 = off)"},
    {"clip_low", K_DOUBLE, S(clip_low), "0.2", 0, 10, NULL, "PPO clip epsilon below"},
    {"clip_high", K_DOUBLE, S(clip_high), "0.2", 0, 10, NULL, "PPO clip epsilon above (DAPO: 0.28)"},
    {"kl_beta", K_DOUBLE, S(kl_beta), "0", 0, 100, NULL, "KL penalty coefficient to the reference (initial policy of the stage)"},
    {"kl_estimator", K_STR, S(kl_estimator), "k3", 0, 0, "|k1|k2|k3|", "KL estimator"},
    {"aggregation", K_STR, S(aggregation), "grpo", 0, 0, "|grpo|dr_grpo|dapo|", "loss aggregation: seq-mean-token-mean | token-sum/const | token-mean"},
    {"norm_const", K_DOUBLE, S(norm_const), "0", 0, 1e9, NULL, "dr_grpo constant (0 = max_new_tokens)"},
    {"advantage", K_STR, S(advantage), "grpo", 0, 0, "|grpo|mean|rloo|", "advantage estimator"},
    {"dynamic_sampling", K_BOOL, S(dynamic_sampling), "false", 0, 0, NULL, "drop groups whose rewards are all equal (DAPO)"},
    {"max_staleness", K_INT, S(max_staleness), "0", 0, 1000, NULL, "generator at most this many policy versions ahead"},
};

static const kspec top_keys[] = {
    {"name", K_STR, C(name), "", 0, 0, NULL, "run name (default: run directory name)"},
    {"model", K_STR, C(model), "", 0, 0, NULL, "initial policy, HF model dir (required)"},
    {"tokenizer", K_STR, C(tokenizer), "", 0, 0, NULL, "tokenizer dir (default: model)"},
    {"seed", K_U64, C(seed), "0", 0, 1.8e19, NULL, "seed of data order, sampling, init"},
    {"threads", K_INT, C(threads), "1", 1, 1024, NULL, "BLAS/OpenMP threads per process"},
    {"save_dtype", K_STR, C(save_dtype), "F32", 0, 0, "|F32|BF16|", "checkpoint weight dtype"},
    {"checkpoint_every", K_INT, C(checkpoint_every), "0", 0, 1e9, NULL, "checkpoint every N steps (0 = end of each stage only)"},
    {"checkpoint_keep", K_INT, C(checkpoint_keep), "0", 0, 1e6, NULL, "keep the newest N checkpoints (0 = all)"},
    {"max_restarts", K_INT, C(max_restarts), "10", 0, 1e6, NULL, "launcher restarts per crashed worker/generator"},
};

static const kspec data_keys[] = {
    {"db", K_STR, C(db), "", 0, 0, NULL, "LMDB store (default RUN/data.lmdb)"},
};
static const kspec workers_keys[] = {
    {"math", K_INT, C(workers_math), "1", 0, 32, NULL, "srlm reward-math processes started by srlm run"},
    {"code", K_INT, C(workers_code), "1", 0, 32, NULL, "srlm reward-code processes started by srlm run (more: start them by hand with --connect)"},
    {"generators", K_INT, C(generators), "1", 1, 1, NULL, "srlm generator processes (1)"},
};
static const kspec broker_keys[] = {
    {"heartbeat_ms", K_INT, C(heartbeat_ms), "1000", 10, 600000, NULL, "heartbeat interval (broker and workers)"},
    {"liveness", K_INT, C(liveness), "5", 1, 1000, NULL, "missed heartbeats before a worker is dead"},
    {"max_attempts", K_INT, C(max_attempts), "3", 1, 100, NULL, "dispatches per job before an ERROR result"},
    {"job_timeout_ms", K_INT, C(job_timeout_ms), "300000", 100, 1e8, NULL, "re-queue a job running longer"},
};
static const kspec endpoint_keys[] = {
    {"transport", K_STR, C(transport), "ipc", 0, 0, "|ipc|tcp|", "ipc (one machine) or tcp"},
    {"host", K_STR, C(host), "127.0.0.1", 0, 0, NULL, "tcp: host every peer connects to"},
    {"port_base", K_INT, C(port_base), "5550", 1, 65530, NULL, "tcp: first of 6 ports"},
    {"dataset", K_STR, C(ep_dataset), "", 0, 0, NULL, "dataset server endpoint"},
    {"groups", K_STR, C(ep_groups), "", 0, 0, NULL, "broker: rollout groups in"},
    {"workers", K_STR, C(ep_workers), "", 0, 0, NULL, "broker: reward workers"},
    {"scored", K_STR, C(ep_scored), "", 0, 0, NULL, "broker: scored groups out"},
    {"updates", K_STR, C(ep_updates), "", 0, 0, NULL, "trainer: weight updates (PUB)"},
    {"teacher", K_STR, C(ep_teacher), "", 0, 0, NULL, "teacher top-k service"},
};

static int set_default(const kspec *k, void *base) {
    char *p = (char *)base + k->off;
    switch (k->type) {
    case K_INT: *(int *)p = atoi(k->def); break;
    case K_BOOL: *(int *)p = !strcmp(k->def, "true"); break;
    case K_DOUBLE: *(double *)p = strtod(k->def, NULL); break;
    case K_U64: *(uint64_t *)p = strtoull(k->def, NULL, 10); break;
    case K_STR: snprintf(p, k->size, "%s", k->def); break;
    }
    return 0;
}

static int set_value(const kspec *k, void *base, json_t *v, const char *path) {
    char *p = (char *)base + k->off;
    switch (k->type) {
    case K_INT:
    case K_U64: {
        if (!json_is_integer(v)) return srlm_set_error(SRLM_EINVAL, "%s: expected an integer", path);
        json_int_t x = json_integer_value(v);
        if ((double)x < k->lo || (double)x > k->hi)
            return srlm_set_error(SRLM_EINVAL, "%s: %lld out of range [%.0f, %.0f]", path, (long long)x, k->lo, k->hi);
        if (k->type == K_INT) *(int *)p = (int)x; else *(uint64_t *)p = (uint64_t)x;
        break;
    }
    case K_BOOL:
        if (!json_is_boolean(v)) return srlm_set_error(SRLM_EINVAL, "%s: expected true or false", path);
        *(int *)p = json_is_true(v);
        break;
    case K_DOUBLE: {
        if (!json_is_number(v)) return srlm_set_error(SRLM_EINVAL, "%s: expected a number", path);
        double x = json_number_value(v);
        if (x < k->lo || x > k->hi)
            return srlm_set_error(SRLM_EINVAL, "%s: %g out of range [%g, %g]", path, x, k->lo, k->hi);
        *(double *)p = x;
        break;
    }
    case K_STR: {
        if (json_is_null(v)) { p[0] = 0; break; }
        if (!json_is_string(v)) return srlm_set_error(SRLM_EINVAL, "%s: expected a string", path);
        const char *s = json_string_value(v);
        if (strlen(s) >= k->size) return srlm_set_error(SRLM_EINVAL, "%s: longer than %zu bytes", path, k->size - 1);
        if (k->choices) {
            char pat[80];
            snprintf(pat, sizeof pat, "|%s|", s);
            if (!*s || !strstr(k->choices, pat))
                return srlm_set_error(SRLM_EINVAL, "%s: '%s' is not one of %s", path, s, k->choices);
        }
        snprintf(p, k->size, "%s", s);
        break;
    }
    }
    return 0;
}

/* Apply an object against a key table; unknown keys (not in `extra`, a "|a|b|" list of keys
 * the caller handles) are errors. */
static int apply(json_t *obj, const kspec *keys, size_t nkeys, void *base, const char *prefix,
                 const char *extra) {
    if (!json_is_object(obj)) return srlm_set_error(SRLM_EINVAL, "%s: expected an object", prefix[0] ? prefix : "config");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", key);
        size_t i;
        for (i = 0; i < nkeys; i++)
            if (!strcmp(keys[i].key, key)) break;
        if (i == nkeys) {
            char pat[128];
            snprintf(pat, sizeof pat, "|%s|", key);
            if (extra && strstr(extra, pat)) continue;
            return srlm_set_error(SRLM_EINVAL, "%s: unknown key", path);
        }
        int rc = set_value(&keys[i], base, v, path);
        if (rc) return rc;
    }
    return 0;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void defaults(const kspec *keys, size_t n, void *base) {
    for (size_t i = 0; i < n; i++) set_default(&keys[i], base);
}

void pc_free(pc_config *c) {
    for (int i = 0; i < c->n_imports; i++) {
        for (char **a = c->imports[i]; a && *a; a++) free(*a);
        free(c->imports[i]);
        c->imports[i] = NULL;
    }
    c->n_imports = 0;
}

static int parse_stage(json_t *o, int idx, pc_stage *st) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "stages[%d]", idx);
    defaults(stage_keys, N(stage_keys), st);
    int rc = apply(o, stage_keys, N(stage_keys), st, prefix, NULL);
    if (rc) return rc;
    if (!st->type_name[0]) return srlm_set_error(SRLM_EINVAL, "%s.type: required (sft, kd or grpo)", prefix);
    if (st->steps <= 0) return srlm_set_error(SRLM_EINVAL, "%s.steps: required (> 0)", prefix);
    st->type = !strcmp(st->type_name, "sft") ? PC_SFT : !strcmp(st->type_name, "kd") ? PC_KD : PC_GRPO;
    if (!st->name[0]) snprintf(st->name, sizeof st->name, "%s", st->type_name);
    if (st->type == PC_KD && !strcmp(st->kd_mode, "logit") && !st->teacher[0])
        return srlm_set_error(SRLM_EINVAL, "%s.teacher: required for kd_mode \"logit\"", prefix);
    if (st->type == PC_GRPO && st->group_size < 2)
        return srlm_set_error(SRLM_EINVAL, "%s.group_size: GRPO needs at least 2", prefix);
    if (st->norm_const <= 0) st->norm_const = st->max_new_tokens;
    return 0;
}

static void set_endpoint(char *dst, size_t n, const pc_config *c, const char *name, int k) {
    if (dst[0]) return;
    if (!strcmp(c->transport, "tcp"))
        snprintf(dst, n, "tcp://%s:%d", c->host, c->port_base + k);
    else
        snprintf(dst, n, "ipc://%s/%s", c->sock_dir, name);
}

int pc_parse(const char *text, const char *path, const char *run_dir, pc_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", path ? path : "");
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!root) return srlm_set_error(SRLM_EFORMAT, "%s:%d:%d: %s", path, err.line, err.column, err.text);
    defaults(top_keys, N(top_keys), c);
    defaults(data_keys, N(data_keys), c);
    defaults(workers_keys, N(workers_keys), c);
    defaults(broker_keys, N(broker_keys), c);
    defaults(endpoint_keys, N(endpoint_keys), c);
    int rc = apply(root, top_keys, N(top_keys), c, "", "|data|stages|workers|broker|endpoints|");
    json_t *v;
    if (!rc && (v = json_object_get(root, "data"))) {
        rc = apply(v, data_keys, N(data_keys), c, "data", "|import|");
        json_t *imp = json_is_object(v) ? json_object_get(v, "import") : NULL;
        if (!rc && imp) {
            if (!json_is_array(imp)) rc = srlm_set_error(SRLM_EINVAL, "data.import: expected an array of argument arrays");
            size_t i;
            json_t *a;
            json_array_foreach(imp, i, a) {
                if (rc) break;
                if (i >= PC_MAX_IMPORTS) { rc = srlm_set_error(SRLM_EINVAL, "data.import: more than %d entries", PC_MAX_IMPORTS); break; }
                if (!json_is_array(a) || json_array_size(a) == 0) {
                    rc = srlm_set_error(SRLM_EINVAL, "data.import[%zu]: expected a non-empty array of strings (arguments of `srlm data`)", i);
                    break;
                }
                char **argv = srlm_xcalloc(json_array_size(a) + 1, sizeof *argv);
                c->imports[c->n_imports++] = argv;
                size_t j;
                json_t *s;
                json_array_foreach(a, j, s) {
                    if (!json_is_string(s)) { rc = srlm_set_error(SRLM_EINVAL, "data.import[%zu][%zu]: expected a string", i, j); break; }
                    argv[j] = srlm_xstrdup(json_string_value(s));
                }
            }
        }
    }
    if (!rc && (v = json_object_get(root, "workers"))) rc = apply(v, workers_keys, N(workers_keys), c, "workers", NULL);
    if (!rc && (v = json_object_get(root, "broker"))) rc = apply(v, broker_keys, N(broker_keys), c, "broker", NULL);
    if (!rc && (v = json_object_get(root, "endpoints"))) rc = apply(v, endpoint_keys, N(endpoint_keys), c, "endpoints", NULL);
    if (!rc) {
        json_t *st = json_object_get(root, "stages");
        if (!st || !json_is_array(st) || json_array_size(st) == 0)
            rc = srlm_set_error(SRLM_EINVAL, "stages: required, a non-empty array of stage objects");
        else if (json_array_size(st) > PC_MAX_STAGES)
            rc = srlm_set_error(SRLM_EINVAL, "stages: more than %d stages", PC_MAX_STAGES);
        else {
            size_t i;
            json_t *o;
            json_array_foreach(st, i, o) {
                if ((rc = parse_stage(o, (int)i, &c->stages[i]))) break;
                c->n_stages++;
            }
        }
    }
    if (!rc && !c->model[0]) rc = srlm_set_error(SRLM_EINVAL, "model: required (initial policy model dir)");
    json_decref(root);
    if (rc) {
        /* keep the message, prefix the file */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", srlm_last_error());
        pc_free(c);
        return srlm_set_error(rc, "%s: %s", path ? path : "config", msg);
    }
    if (!c->tokenizer[0]) snprintf(c->tokenizer, sizeof c->tokenizer, "%s", c->model);
    if (!c->db[0]) snprintf(c->db, sizeof c->db, "%s/data.lmdb", run_dir ? run_dir : ".");
    if (!c->name[0]) {
        const char *b = run_dir ? strrchr(run_dir, '/') : NULL;
        snprintf(c->name, sizeof c->name, "%s", b ? b + 1 : (run_dir ? run_dir : "run"));
    }
    /* ipc:// addresses are limited to ~107 bytes (sun_path): long run paths get their
     * sockets in a short directory derived from the run path */
    const char *rd = run_dir ? run_dir : ".";
    if (strlen(rd) + sizeof "ipc:///sock/dataset" > 100) {
        char hex[65];
        srlm_sha256_hex(rd, strlen(rd), hex);
        snprintf(c->sock_dir, sizeof c->sock_dir, "/tmp/srlm-sock-%.16s", hex);
    } else {
        snprintf(c->sock_dir, sizeof c->sock_dir, "%.120s/sock", rd);
    }
    set_endpoint(c->ep_dataset, sizeof c->ep_dataset, c, "dataset", 0);
    set_endpoint(c->ep_groups, sizeof c->ep_groups, c, "groups", 1);
    set_endpoint(c->ep_workers, sizeof c->ep_workers, c, "workers", 2);
    set_endpoint(c->ep_scored, sizeof c->ep_scored, c, "scored", 3);
    set_endpoint(c->ep_updates, sizeof c->ep_updates, c, "updates", 4);
    set_endpoint(c->ep_teacher, sizeof c->ep_teacher, c, "teacher", 5);
    return 0;
}

int pc_load(const char *path, const char *run_dir, pc_config *out) {
    char *text = NULL;
    size_t len = 0;
    int rc = srlm_read_file(path, &text, &len, 16u << 20);
    if (rc) return rc;
    rc = pc_parse(text, path, run_dir, out);
    free(text);
    return rc;
}

void pc_bind_endpoint(const char *ep, char *out, size_t n) {
    if (!strncmp(ep, "tcp://", 6)) {
        const char *colon = strrchr(ep + 6, ':');
        if (colon) {
            snprintf(out, n, "tcp://0.0.0.0%s", colon);
            return;
        }
    }
    snprintf(out, n, "%s", ep);
}

int pc_has_grpo(const pc_config *c) {
    for (int i = 0; i < c->n_stages; i++)
        if (c->stages[i].type == PC_GRPO) return 1;
    return 0;
}

static void print_table(FILE *f, const char *prefix, const kspec *k, size_t n) {
    static const char *tn[] = {"int", "number", "bool", "string", "int"};
    for (size_t i = 0; i < n; i++)
        fprintf(f, "| `%s%s` | %s | `%s` | %s%s%s |\n", prefix, k[i].key, tn[k[i].type],
                k[i].def[0] ? k[i].def : "\"\"", k[i].doc, k[i].choices ? "; one of " : "",
                k[i].choices ? k[i].choices : "");
}

void pc_print_keys(FILE *f) {
    fprintf(f, "| key | type | default | meaning |\n|---|---|---|---|\n");
    print_table(f, "", top_keys, N(top_keys));
    print_table(f, "data.", data_keys, N(data_keys));
    fprintf(f, "| `data.import` | [[string]] | `[]` | each entry: arguments of `srlm data` (`--db` is added) run once when the store is created |\n");
    print_table(f, "workers.", workers_keys, N(workers_keys));
    print_table(f, "broker.", broker_keys, N(broker_keys));
    print_table(f, "endpoints.", endpoint_keys, N(endpoint_keys));
    fprintf(f, "| `stages` | [object] | required | stages in order; keys below |\n");
    print_table(f, "stages[].", stage_keys, N(stage_keys));
}
