/* model.c — Qwen2 / Llama model: config, parameter table, load/save, init, forward
 * (qwen2.md §1, §2, §4). The layer math lives in rmsnorm.c, rope.c, attention.c, mlp.c,
 * linear.c; this file wires them together. */
#include "model.h"

#include <cblas.h>
#include <dirent.h>
#include <sys/stat.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "safetensors.h"
#include "util.h"

/* ---- config ------------------------------------------------------------------------ */

void lm_config_default(lm_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->model_type, sizeof c->model_type, "qwen2");
    c->vocab_size = 151936;
    c->hidden_size = 4096;
    c->intermediate_size = 22016;
    c->num_layers = 32;
    c->num_heads = 32;
    c->num_kv_heads = 32;
    c->head_dim = 128;
    c->max_position_embeddings = 32768;
    c->rms_norm_eps = 1e-6f;
    c->rope_theta = 10000.0f;
    c->initializer_range = 0.02f;
    c->tie_word_embeddings = 0;
    c->attn_bias = 1;
    c->bos_token_id = -1;
    c->pad_token_id = -1;
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "float32");
}

static int get_int(json_t *root, const char *key, int *out, int lo, const char *path) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v))
        return srlm_set_error(SRLM_EFORMAT, "%s: field \"%s\" must be an integer", path, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > INT_MAX / 4)
        return srlm_set_error(SRLM_EFORMAT, "%s: field \"%s\" = %lld is out of range", path, key, (long long)x);
    *out = (int)x;
    return 0;
}

static int get_float(json_t *root, const char *key, float *out, const char *path) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return srlm_set_error(SRLM_EFORMAT, "%s: field \"%s\" must be a number", path, key);
    *out = (float)json_number_value(v);
    return 0;
}

/* eos_token_id: int or list of ints → ids[] */
static int get_id_list(json_t *v, int *ids, int *n, int max, const char *path, const char *key) {
    *n = 0;
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) {
        ids[(*n)++] = (int)json_integer_value(v);
        return 0;
    }
    if (!json_is_array(v)) return srlm_set_error(SRLM_EFORMAT, "%s: field \"%s\" must be an integer or a list", path, key);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        if (!json_is_integer(x)) return srlm_set_error(SRLM_EFORMAT, "%s: field \"%s\"[%zu] must be an integer", path, key, i);
        if (*n < max) ids[(*n)++] = (int)json_integer_value(x);
    }
    return 0;
}

static int is_true(json_t *v) { return v && json_is_true(v); }

int lm_config_parse(const char *text, const char *path, lm_config *c) {
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root) return srlm_set_error(SRLM_EFORMAT, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = srlm_set_error(SRLM_EFORMAT, "%s: not a JSON object", path);
        goto out;
    }
    lm_config_default(c);
    json_t *mt = json_object_get(root, "model_type");
    if (mt && !json_is_string(mt)) { rc = srlm_set_error(SRLM_EFORMAT, "%s: field \"model_type\" must be a string", path); goto out; }
    const char *type = mt ? json_string_value(mt) : "qwen2";
    if (strcmp(type, "qwen2") && strcmp(type, "llama")) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: model_type \"%s\" is not supported (qwen2, llama)", path, type);
        goto out;
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", type);
    c->attn_bias = !strcmp(type, "qwen2");
    if (!strcmp(type, "llama")) c->rope_theta = 10000.0f;
    json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu"))) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: hidden_act must be \"silu\"", path);
        goto out;
    }
    json_t *rs = json_object_get(root, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: rope_scaling is not supported (must be null)", path);
        goto out;
    }
    if (is_true(json_object_get(root, "use_sliding_window"))) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: use_sliding_window = true is not supported", path);
        goto out;
    }
    if (is_true(json_object_get(root, "mlp_bias"))) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: mlp_bias = true is not supported", path);
        goto out;
    }
    if (!strcmp(type, "llama") && is_true(json_object_get(root, "attention_bias"))) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: attention_bias = true is not supported for llama", path);
        goto out;
    }
    if (json_object_get(root, "quantization_config")) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: quantization_config is not supported", path);
        goto out;
    }
    if (is_true(json_object_get(root, "use_mrope"))) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: use_mrope = true is not supported", path);
        goto out;
    }
    c->num_kv_heads = -1;
    int hd = -1;
    /* the sizes have no sensible default: a config without them is not a model config */
    static const char *const required[] = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                           "num_attention_heads"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        json_t *v = json_object_get(root, required[i]);
        if (!v || json_is_null(v)) {
            rc = srlm_set_error(SRLM_EFORMAT, "%s: required field \"%s\" is missing", path, required[i]);
            goto out;
        }
    }
    if ((rc = get_int(root, "vocab_size", &c->vocab_size, 1, path)) ||
        (rc = get_int(root, "hidden_size", &c->hidden_size, 1, path)) ||
        (rc = get_int(root, "intermediate_size", &c->intermediate_size, 1, path)) ||
        (rc = get_int(root, "num_hidden_layers", &c->num_layers, 1, path)) ||
        (rc = get_int(root, "num_attention_heads", &c->num_heads, 1, path)) ||
        (rc = get_int(root, "num_key_value_heads", &c->num_kv_heads, 1, path)) ||
        (rc = get_int(root, "head_dim", &hd, 1, path)) ||
        (rc = get_int(root, "max_position_embeddings", &c->max_position_embeddings, 1, path)) ||
        (rc = get_float(root, "rms_norm_eps", &c->rms_norm_eps, path)) ||
        (rc = get_float(root, "rope_theta", &c->rope_theta, path)) ||
        (rc = get_float(root, "initializer_range", &c->initializer_range, path)) ||
        (rc = get_int(root, "bos_token_id", &c->bos_token_id, 0, path)) ||
        (rc = get_int(root, "pad_token_id", &c->pad_token_id, 0, path)))
        goto out;
    json_t *rp = json_object_get(root, "rope_parameters");
    if (rp && !json_is_null(rp)) {
        json_t *rt = json_object_get(rp, "rope_type");
        if (rt && (!json_is_string(rt) || strcmp(json_string_value(rt), "default"))) {
            rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: rope_parameters.rope_type must be \"default\"", path);
            goto out;
        }
        if ((rc = get_float(rp, "rope_theta", &c->rope_theta, path))) goto out;
    }
    if (c->num_kv_heads < 0) c->num_kv_heads = c->num_heads;
    json_t *tie = json_object_get(root, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie)) { rc = srlm_set_error(SRLM_EFORMAT, "%s: field \"tie_word_embeddings\" must be a boolean", path); goto out; }
    c->tie_word_embeddings = tie ? json_is_true(tie) : 0;
    if ((rc = get_id_list(json_object_get(root, "eos_token_id"), c->eos_token_ids, &c->n_eos, LM_MAX_EOS, path,
                          "eos_token_id")))
        goto out;
    json_t *dt = json_object_get(root, "torch_dtype");
    if (dt && json_is_string(dt)) snprintf(c->torch_dtype, sizeof c->torch_dtype, "%s", json_string_value(dt));
    if (c->hidden_size % c->num_heads) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path,
                            c->hidden_size, c->num_heads);
        goto out;
    }
    c->head_dim = c->hidden_size / c->num_heads;
    if (hd > 0 && hd != c->head_dim) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: head_dim %d != hidden_size / num_attention_heads = %d", path, hd,
                            c->head_dim);
        goto out;
    }
    if (c->num_heads % c->num_kv_heads) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                            path, c->num_heads, c->num_kv_heads);
        goto out;
    }
    if (c->head_dim % 2 || c->head_dim > 1024) {
        rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: head_dim %d must be even and <= 1024", path, c->head_dim);
        goto out;
    }
    if (!(c->rms_norm_eps > 0) || !(c->rope_theta > 1) || !isfinite(c->rms_norm_eps) || !isfinite(c->rope_theta)) {
        rc = srlm_set_error(SRLM_EINVAL, "%s: rms_norm_eps must be finite and > 0, rope_theta finite and > 1", path);
        goto out;
    }
out:
    json_decref(root);
    return rc;
}

int lm_config_load(const char *path, lm_config *cfg) {
    char *text;
    size_t len;
    int rc = srlm_read_file(path, &text, &len, 16 << 20);
    if (rc) return rc;
    rc = lm_config_parse(text, path, cfg);
    free(text);
    return rc;
}

/* A float field as the shortest decimal that round-trips in float32 (1e-06, not
 * 9.99999997e-07), so saved configs read like the published ones. */
static json_t *json_float(float x) {
    char buf[32];
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return json_real(strtod(buf, NULL));
}

char *lm_config_to_json(const lm_config *c) {
    json_t *o = json_object();
    int llama = !strcmp(c->model_type, "llama");
    json_t *arch = json_array();
    json_array_append_new(arch, json_string(llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM"));
    json_object_set_new(o, "architectures", arch);
    json_object_set_new(o, "attention_dropout", json_real(0.0));
    if (llama) json_object_set_new(o, "attention_bias", json_false());
    if (c->bos_token_id >= 0) json_object_set_new(o, "bos_token_id", json_integer(c->bos_token_id));
    if (c->n_eos == 1) json_object_set_new(o, "eos_token_id", json_integer(c->eos_token_ids[0]));
    else if (c->n_eos > 1) {
        json_t *a = json_array();
        for (int i = 0; i < c->n_eos; i++) json_array_append_new(a, json_integer(c->eos_token_ids[i]));
        json_object_set_new(o, "eos_token_id", a);
    }
    if (c->pad_token_id >= 0) json_object_set_new(o, "pad_token_id", json_integer(c->pad_token_id));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(o, "initializer_range", json_float(c->initializer_range));
    json_object_set_new(o, "intermediate_size", json_integer(c->intermediate_size));
    json_object_set_new(o, "max_position_embeddings", json_integer(c->max_position_embeddings));
    if (!llama) json_object_set_new(o, "max_window_layers", json_integer(c->num_layers));
    json_object_set_new(o, "model_type", json_string(c->model_type));
    json_object_set_new(o, "num_attention_heads", json_integer(c->num_heads));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->num_layers));
    json_object_set_new(o, "num_key_value_heads", json_integer(c->num_kv_heads));
    json_object_set_new(o, "rms_norm_eps", json_float(c->rms_norm_eps));
    json_object_set_new(o, "rope_scaling", json_null());
    json_object_set_new(o, "rope_theta", json_float(c->rope_theta));
    if (!llama) json_object_set_new(o, "sliding_window", json_null());
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_word_embeddings));
    json_object_set_new(o, "torch_dtype", json_string(c->torch_dtype[0] ? c->torch_dtype : "float32"));
    json_object_set_new(o, "use_cache", json_true());
    if (!llama) json_object_set_new(o, "use_sliding_window", json_false());
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
    json_decref(o);
    return s;
}

/* ---- parameter table --------------------------------------------------------------- */

static const char *KIND_SUFFIX[LM_T_COUNT] = {
    [LM_T_LN1] = "input_layernorm.weight", [LM_T_WQ] = "self_attn.q_proj.weight",
    [LM_T_BQ] = "self_attn.q_proj.bias", [LM_T_WK] = "self_attn.k_proj.weight",
    [LM_T_BK] = "self_attn.k_proj.bias", [LM_T_WV] = "self_attn.v_proj.weight",
    [LM_T_BV] = "self_attn.v_proj.bias", [LM_T_WO] = "self_attn.o_proj.weight",
    [LM_T_LN2] = "post_attention_layernorm.weight", [LM_T_WG] = "mlp.gate_proj.weight",
    [LM_T_WU] = "mlp.up_proj.weight", [LM_T_WD] = "mlp.down_proj.weight"};

static void add_tensor(lm_model *m, size_t *off, int layer, lm_tensor_kind kind, int64_t d0, int64_t d1) {
    lm_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->layer = layer;
    if (kind == LM_T_EMBED) snprintf(t->name, sizeof t->name, "model.embed_tokens.weight");
    else if (kind == LM_T_NORM) snprintf(t->name, sizeof t->name, "model.norm.weight");
    else if (kind == LM_T_LM_HEAD) snprintf(t->name, sizeof t->name, "lm_head.weight");
    else snprintf(t->name, sizeof t->name, "model.layers.%d.%s", layer, KIND_SUFFIX[kind]);
    t->ndim = d1 > 0 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 > 0 ? d1 : 0;
    t->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    t->offset = *off;
    /* keep every tensor 16-float aligned (64 bytes) for vector loads */
    *off += (t->numel + 15) & ~(size_t)15;
}

static void build_table(lm_model *m) {
    const lm_config *c = &m->cfg;
    int D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    int Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    m->tensors = srlm_xcalloc((size_t)c->num_layers * 12 + 3, sizeof(lm_tensor));
    m->n_tensors = 0;
    size_t off = 0;
    add_tensor(m, &off, -1, LM_T_EMBED, V, D);
    for (int l = 0; l < c->num_layers; l++) {
        add_tensor(m, &off, l, LM_T_LN1, D, 0);
        add_tensor(m, &off, l, LM_T_WQ, Hd, D);
        if (c->attn_bias) add_tensor(m, &off, l, LM_T_BQ, Hd, 0);
        add_tensor(m, &off, l, LM_T_WK, Kd, D);
        if (c->attn_bias) add_tensor(m, &off, l, LM_T_BK, Kd, 0);
        add_tensor(m, &off, l, LM_T_WV, Kd, D);
        if (c->attn_bias) add_tensor(m, &off, l, LM_T_BV, Kd, 0);
        add_tensor(m, &off, l, LM_T_WO, D, Hd);
        add_tensor(m, &off, l, LM_T_LN2, D, 0);
        add_tensor(m, &off, l, LM_T_WG, F, D);
        add_tensor(m, &off, l, LM_T_WU, F, D);
        add_tensor(m, &off, l, LM_T_WD, D, F);
    }
    add_tensor(m, &off, -1, LM_T_NORM, D, 0);
    if (!c->tie_word_embeddings) add_tensor(m, &off, -1, LM_T_LM_HEAD, V, D);
    m->n_params = off;
}

int lm_params_bind(const lm_model *m, float *base, lm_params *p) {
    memset(p, 0, sizeof *p);
    p->layers = calloc((size_t)m->cfg.num_layers, sizeof(lm_layer_params));
    if (!p->layers) return srlm_set_error(SRLM_ENOMEM, "out of memory");
    for (int i = 0; i < m->n_tensors; i++) {
        const lm_tensor *t = &m->tensors[i];
        float *x = base + t->offset;
        lm_layer_params *L = t->layer >= 0 ? &p->layers[t->layer] : NULL;
        switch (t->kind) {
        case LM_T_EMBED: p->embed = x; break;
        case LM_T_NORM: p->norm = x; break;
        case LM_T_LM_HEAD: p->lm_head = x; break;
        case LM_T_LN1: L->ln1 = x; break;
        case LM_T_WQ: L->wq = x; break;
        case LM_T_BQ: L->bq = x; break;
        case LM_T_WK: L->wk = x; break;
        case LM_T_BK: L->bk = x; break;
        case LM_T_WV: L->wv = x; break;
        case LM_T_BV: L->bv = x; break;
        case LM_T_WO: L->wo = x; break;
        case LM_T_LN2: L->ln2 = x; break;
        case LM_T_WG: L->wg = x; break;
        case LM_T_WU: L->wu = x; break;
        case LM_T_WD: L->wd = x; break;
        default: break;
        }
    }
    if (!p->lm_head) p->lm_head = p->embed;
    return 0;
}

void lm_params_unbind(lm_params *p) {
    free(p->layers);
    p->layers = NULL;
}

int lm_model_create(const lm_config *cfg, lm_model **out) {
    *out = NULL;
    lm_model *m = srlm_xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    build_table(m);
    m->params = srlm_alloc_floats(m->n_params);
    if (!m->params) {
        int rc = srlm_set_error(SRLM_ENOMEM, "cannot allocate %zu parameters (%.2f GB)", m->n_params,
                                m->n_params * 4.0 / 1e9);
        lm_model_free(m);
        return rc;
    }
    int rc = lm_params_bind(m, m->params, &m->p);
    if (rc) { lm_model_free(m); return rc; }
    m->rope_inv_freq = srlm_xmalloc(sizeof(float) * (size_t)(cfg->head_dim / 2));
    rope_inv_freq(m->rope_inv_freq, cfg->head_dim, cfg->rope_theta);
    *out = m;
    return 0;
}

void lm_model_free(lm_model *m) {
    if (!m) return;
    free(m->params);
    lm_params_unbind(&m->p);
    free(m->tensors);
    free(m->rope_inv_freq);
    free(m->gen_config_json);
    free(m);
}

void lm_model_init_random(lm_model *m, uint64_t seed) {
    srlm_rng rng;
    srlm_rng_seed(&rng, seed);
    float std = m->cfg.initializer_range;
    for (int i = 0; i < m->n_tensors; i++) {
        const lm_tensor *t = &m->tensors[i];
        float *x = m->params + t->offset;
        if (t->kind == LM_T_LN1 || t->kind == LM_T_LN2 || t->kind == LM_T_NORM)
            for (size_t j = 0; j < t->numel; j++) x[j] = 1.0f;
        else if (t->kind == LM_T_BQ || t->kind == LM_T_BK || t->kind == LM_T_BV)
            memset(x, 0, t->numel * sizeof(float));
        else
            for (size_t j = 0; j < t->numel; j++) x[j] = std * srlm_rng_normal(&rng);
    }
}

const lm_tensor *lm_model_find_tensor(const lm_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    if (m->cfg.tie_word_embeddings && !strcmp(name, "lm_head.weight")) return &m->tensors[0];
    return NULL;
}

void lm_set_threads(int n) {
    if (n <= 0) return;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

/* ---- LoRA helpers ------------------------------------------------------------------ */

static const char *LORA_NAMES[LM_LORA_NTARGETS] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                   "gate_proj", "up_proj", "down_proj"};
const char *lm_lora_target_name(int t) { return t >= 0 && t < LM_LORA_NTARGETS ? LORA_NAMES[t] : "?"; }

void lm_lora_target_dims(const lm_config *c, int t, int *in, int *out) {
    int D = c->hidden_size, F = c->intermediate_size;
    int Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    switch (t) {
    case LM_LORA_Q: *in = D; *out = Hd; break;
    case LM_LORA_K: *in = D; *out = Kd; break;
    case LM_LORA_V: *in = D; *out = Kd; break;
    case LM_LORA_O: *in = Hd; *out = D; break;
    case LM_LORA_GATE: *in = D; *out = F; break;
    case LM_LORA_UP: *in = D; *out = F; break;
    case LM_LORA_DOWN: *in = F; *out = D; break;
    default: *in = *out = 0;
    }
}

/* ---- checkpoint load --------------------------------------------------------------- */

static int path_join(char *buf, size_t n, const char *dir, const char *name) {
    return srlm_fmt(buf, n, "%s/%s", dir, name);
}

/* Load every table tensor found in file f (names in the table); marks found[]. */
static int load_from_file(lm_model *m, st_file *f, unsigned char *found) {
    for (int i = 0; i < f->n_tensors; i++) {
        const st_tensor *st = &f->tensors[i];
        const lm_tensor *t = NULL;
        int idx = -1;
        for (int j = 0; j < m->n_tensors; j++)
            if (!strcmp(m->tensors[j].name, st->name)) { t = &m->tensors[j]; idx = j; break; }
        if (!t) {
            if (!strcmp(st->name, "lm_head.weight") && m->cfg.tie_word_embeddings) continue; /* tied copy */
            if (strstr(st->name, "rotary_emb.inv_freq")) continue; /* old HF buffers */
            SRLM_WARN("%s: ignoring unexpected tensor %s", f->path, st->name);
            continue;
        }
        int ok = st->ndim == t->ndim && st->shape[0] == t->shape[0] && (t->ndim == 1 || st->shape[1] == t->shape[1]);
        if (!ok) {
            char got[128] = "";
            size_t p = 0;
            for (int d = 0; d < st->ndim && p < sizeof got - 24; d++)
                p += (size_t)snprintf(got + p, sizeof got - p, "%s%lld", d ? ", " : "", (long long)st->shape[d]);
            if (t->ndim == 2)
                return srlm_set_error(SRLM_EINVAL, "%s: tensor %s has shape [%s], expected [%lld, %lld] from config.json",
                                      f->path, st->name, got, (long long)t->shape[0], (long long)t->shape[1]);
            return srlm_set_error(SRLM_EINVAL, "%s: tensor %s has shape [%s], expected [%lld] from config.json", f->path,
                                  st->name, got, (long long)t->shape[0]);
        }
        int rc = st_read_f32(f, st, m->params + t->offset);
        if (rc) return rc;
        found[idx] = 1;
    }
    return 0;
}

/* Before allocating the parameters: a config.json that describes more parameters than
 * the directory's *.safetensors files can hold (≥ 2 bytes each) is an error, not a
 * multi-GB zero-filled allocation (e.g. num_hidden_layers 100000 next to a tiny file).
 * Small models (≤ 2^26 parameters, 256 MB as f32) skip it, so that their per-tensor
 * errors (missing tensor, wrong shape, ...) are the ones reported. */
static int check_config_vs_files(const char *dir, const char *cfg_path, const lm_config *cfg) {
    lm_model tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.cfg = *cfg;
    build_table(&tmp);
    size_t numel = 0;
    for (int i = 0; i < tmp.n_tensors; i++) numel += tmp.tensors[i].numel;
    free(tmp.tensors);
    DIR *d = opendir(dir);
    if (!d) return 0; /* the open of the weights reports it */
    size_t bytes = 0;
    int nfiles = 0;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") || !strcmp(e->d_name, "adapter_model.safetensors") ||
            !strcmp(e->d_name, "optimizer.safetensors"))
            continue;
        struct stat st;
        if (srlm_fmt(p, sizeof p, "%s/%s", dir, e->d_name) || stat(p, &st) || !S_ISREG(st.st_mode) || st.st_size < 8)
            continue; /* a truncated file is reported by st_open */
        bytes += (size_t)st.st_size;
        nfiles++;
    }
    closedir(d);
    if (nfiles && numel > ((size_t)1 << 26) && numel > bytes / 2)
        return srlm_set_error(SRLM_EINVAL,
                              "%s: describes %zu parameters (%.2f GB as BF16) but %s holds only %zu bytes of "
                              "safetensors; the config does not match the weights",
                              cfg_path, numel, numel * 2.0 / 1e9, dir, bytes);
    return 0;
}

/* Every parameter must be finite: a NaN / Inf weight would silently turn every logit
 * into NaN. Names the first bad tensor. */
static int check_finite(const lm_model *m, const char *file) {
    for (int i = 0; i < m->n_tensors; i++) {
        const lm_tensor *t = &m->tensors[i];
        const float *x = m->params + t->offset;
        int bad = 0;
#pragma omp parallel for reduction(| : bad) schedule(static) if (t->numel > 65536)
        for (size_t j = 0; j < t->numel; j++) bad |= !isfinite(x[j]);
        if (bad)
            return srlm_set_error(SRLM_EINVAL, "%s: tensor %s contains NaN or Inf values", file, t->name);
    }
    return 0;
}

int lm_model_load(const char *dir, lm_model **out) {
    *out = NULL;
    char path[4096];
    int rc;
    lm_config cfg;
    if ((rc = path_join(path, sizeof path, dir, "config.json"))) return rc;
    if ((rc = lm_config_load(path, &cfg))) return rc;
    if ((rc = check_config_vs_files(dir, path, &cfg))) return rc;
    lm_model *m;
    if ((rc = lm_model_create(&cfg, &m))) return rc;
    unsigned char *found = srlm_xcalloc((size_t)m->n_tensors, 1);
    char first_file[4096] = "";
    char idx_path[4096];
    path_join(idx_path, sizeof idx_path, dir, "model.safetensors.index.json");
    path_join(path, sizeof path, dir, "model.safetensors");
    if (srlm_file_exists(path) || !srlm_file_exists(idx_path)) {
        st_file *f;
        if ((rc = st_open(path, &f))) goto fail;
        rc = load_from_file(m, f, found);
        st_close(f);
        if (rc) goto fail;
        snprintf(first_file, sizeof first_file, "%s", path);
    } else {
        char *text;
        size_t len;
        if ((rc = srlm_read_file(idx_path, &text, &len, 64 << 20))) goto fail;
        json_error_t jerr;
        json_t *root = json_loads(text, 0, &jerr);
        free(text);
        json_t *wm = root ? json_object_get(root, "weight_map") : NULL;
        if (!json_is_object(wm)) {
            json_decref(root);
            rc = srlm_set_error(SRLM_EFORMAT, "%s: missing \"weight_map\" object", idx_path);
            goto fail;
        }
        /* distinct shard names, in order of appearance */
        const char *key;
        json_t *val;
        char **shards = NULL;
        int ns = 0;
        json_object_foreach(wm, key, val) {
            if (!json_is_string(val) || strchr(json_string_value(val), '/')) {
                json_decref(root);
                for (int i = 0; i < ns; i++) free(shards[i]);
                free(shards);
                rc = srlm_set_error(SRLM_EFORMAT, "%s: weight_map[\"%s\"] must be a file name", idx_path, key);
                goto fail;
            }
            int seen = 0;
            for (int i = 0; i < ns; i++) seen |= !strcmp(shards[i], json_string_value(val));
            if (!seen) {
                shards = srlm_xrealloc(shards, sizeof(char *) * (size_t)(ns + 1));
                shards[ns++] = srlm_xstrdup(json_string_value(val));
            }
        }
        json_decref(root);
        for (int i = 0; i < ns && !rc; i++) {
            path_join(path, sizeof path, dir, shards[i]);
            st_file *f;
            if (!(rc = st_open(path, &f))) {
                rc = load_from_file(m, f, found);
                st_close(f);
            }
        }
        for (int i = 0; i < ns; i++) free(shards[i]);
        free(shards);
        if (rc) goto fail;
        snprintf(first_file, sizeof first_file, "%s", idx_path);
    }
    for (int i = 0; i < m->n_tensors; i++)
        if (!found[i]) {
            rc = srlm_set_error(SRLM_ENOTFOUND, "%s: tensor %s is missing", first_file, m->tensors[i].name);
            goto fail;
        }
    if ((rc = check_finite(m, first_file))) goto fail;
    free(found);
    /* generation_config.json: eos ids override config.json's */
    path_join(path, sizeof path, dir, "generation_config.json");
    if (srlm_file_exists(path)) {
        char *text;
        size_t len;
        if (!srlm_read_file(path, &text, &len, 1 << 20)) m->gen_config_json = text;
    }
    *out = m;
    return 0;
fail:
    free(found);
    lm_model_free(m);
    return rc;
}

/* ---- checkpoint save --------------------------------------------------------------- */

static int copy_file(const char *src, const char *dst) {
    char *data;
    size_t len;
    int rc = srlm_read_file(src, &data, &len, 0);
    if (rc) return rc;
    rc = srlm_write_file_atomic(dst, data, len);
    free(data);
    return rc;
}

int lm_model_save(const lm_model *m, const char *dir, const char *dtype, const char *gen_config_json,
                  const char *tokenizer_dir) {
    st_dtype dt;
    if (!dtype || !strcmp(dtype, "F32") || !strcmp(dtype, "f32") || !strcmp(dtype, "float32")) dt = ST_F32;
    else if (!strcmp(dtype, "BF16") || !strcmp(dtype, "bf16") || !strcmp(dtype, "bfloat16")) dt = ST_BF16;
    else return srlm_set_error(SRLM_EINVAL, "save dtype must be F32 or BF16, not \"%s\"", dtype);
    int rc = srlm_mkdir_p(dir);
    if (rc) return rc;
    char path[4096];
    lm_config cfg = m->cfg;
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "%s", dt == ST_F32 ? "float32" : "bfloat16");
    char *cj = lm_config_to_json(&cfg);
    path_join(path, sizeof path, dir, "config.json");
    rc = srlm_write_file_atomic(path, cj, strlen(cj));
    free(cj);
    if (rc) return rc;
    st_write_tensor *wt = srlm_xcalloc((size_t)m->n_tensors, sizeof *wt);
    for (int i = 0; i < m->n_tensors; i++) {
        wt[i].name = m->tensors[i].name;
        wt[i].ndim = m->tensors[i].ndim;
        wt[i].shape[0] = m->tensors[i].shape[0];
        wt[i].shape[1] = m->tensors[i].shape[1];
        wt[i].data = m->params + m->tensors[i].offset;
    }
    path_join(path, sizeof path, dir, "model.safetensors");
    rc = st_write(path, wt, m->n_tensors, dt);
    free(wt);
    if (rc) return rc;
    path_join(path, sizeof path, dir, "generation_config.json");
    const char *gc = gen_config_json ? gen_config_json : m->gen_config_json;
    if (gc) {
        rc = srlm_write_file_atomic(path, gc, strlen(gc));
    } else {
        json_t *o = json_object();
        if (m->cfg.bos_token_id >= 0) json_object_set_new(o, "bos_token_id", json_integer(m->cfg.bos_token_id));
        json_t *a = json_array();
        for (int i = 0; i < m->cfg.n_eos; i++) json_array_append_new(a, json_integer(m->cfg.eos_token_ids[i]));
        json_object_set_new(o, "eos_token_id", a);
        json_object_set_new(o, "do_sample", json_false());
        char *s = json_dumps(o, JSON_INDENT(2));
        json_decref(o);
        rc = srlm_write_file_atomic(path, s, strlen(s));
        free(s);
    }
    if (rc) return rc;
    if (tokenizer_dir) {
        static const char *files[] = {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                                      "special_tokens_map.json", "chat_template.jinja", "added_tokens.json"};
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            char src[4096];
            path_join(src, sizeof src, tokenizer_dir, files[i]);
            if (!srlm_file_exists(src)) {
                /* bundled tokenizers are gzipped: tokenizer.json.gz → tokenizer.json */
                char gz[4096];
                if (srlm_fmt(gz, sizeof gz, "%s.gz", src) || !srlm_file_exists(gz)) continue;
                snprintf(src, sizeof src, "%s", gz);
            }
            path_join(path, sizeof path, dir, files[i]);
            if (!strcmp(src, path)) continue;
            if ((rc = copy_file(src, path))) return rc;
        }
    }
    return 0;
}

/* ---- activations ------------------------------------------------------------------- */

enum { ACTS_SHARED = 1 << 8 }; /* internal: all layers alias one layer's buffers (inference) */

static size_t layer_floats(const lm_model *m, size_t N, int B, int T, int flags) {
    const lm_config *c = &m->cfg;
    size_t D = c->hidden_size, F = c->intermediate_size, H = c->num_heads;
    size_t Hd = H * c->head_dim, Kd = (size_t)c->num_kv_heads * c->head_dim;
    size_t n = N * (4 * D + 2 + 2 * Hd + 2 * Kd + 2 * F) + (size_t)B * H * T;
    if (flags & LM_ACTS_PROBS) n += (size_t)B * H * T * T;
    if (m->lora)
        for (int t = 0; t < LM_LORA_NTARGETS; t++)
            if (m->lora->targets & (1u << t)) n += N * (size_t)m->lora->rank;
    return n;
}

static size_t scratch_floats(const lm_model *m, size_t N) {
    return N * ((size_t)m->cfg.intermediate_size + (size_t)m->cfg.hidden_size);
}

size_t lm_acts_bytes(const lm_model *m, int B, int T, int flags) {
    size_t N = (size_t)B * T;
    int layers = (flags & ACTS_SHARED) ? 1 : m->cfg.num_layers;
    size_t n = layers * layer_floats(m, N, B, T, flags) + N * (2 * (size_t)m->cfg.hidden_size + 1) +
               scratch_floats(m, N);
    return n * sizeof(float);
}

int lm_acts_alloc(const lm_model *m, int B, int T, int flags, lm_acts **out) {
    *out = NULL;
    if (B <= 0 || T <= 0) return srlm_set_error(SRLM_EINVAL, "lm_acts_alloc: B and T must be positive");
    const lm_config *c = &m->cfg;
    size_t N = (size_t)B * T;
    size_t D = c->hidden_size, F = c->intermediate_size, H = c->num_heads;
    size_t Hd = H * c->head_dim, Kd = (size_t)c->num_kv_heads * c->head_dim;
    int L = c->num_layers, nl = (flags & ACTS_SHARED) ? 1 : L;
    size_t per = layer_floats(m, N, B, T, flags);
    size_t total = nl * per + N * (2 * D + 1);
    lm_acts *a = srlm_xcalloc(1, sizeof *a);
    a->B = B;
    a->T = T;
    a->flags = flags;
    a->n_floats = total;
    a->n_scratch = scratch_floats(m, N);
    a->mem = srlm_alloc_floats(total);
    a->scratch = srlm_alloc_floats(a->n_scratch);
    a->layers = calloc((size_t)L, sizeof(lm_layer_acts));
    if (m->lora) {
        a->lora_rank = m->lora->rank;
        a->lora_targets = m->lora->targets;
    }
    if (!a->mem || !a->scratch || !a->layers) {
        lm_acts_free(a);
        return srlm_set_error(SRLM_ENOMEM, "cannot allocate activations for B=%d T=%d (%.2f GB)", B, T,
                              lm_acts_bytes(m, B, T, flags) / 1e9);
    }
    float *p = a->mem;
    for (int l = 0; l < nl; l++) {
        lm_layer_acts *la = &a->layers[l];
        la->h_in = p; p += N * D;
        la->rstd1 = p; p += N;
        la->x1 = p; p += N * D;
        la->q = p; p += N * Hd;
        la->k = p; p += N * Kd;
        la->v = p; p += N * Kd;
        la->lse = p; p += (size_t)B * H * T;
        if (flags & LM_ACTS_PROBS) { la->probs = p; p += (size_t)B * H * T * T; }
        la->att = p; p += N * Hd;
        la->h_mid = p; p += N * D;
        la->rstd2 = p; p += N;
        la->x2 = p; p += N * D;
        la->gate = p; p += N * F;
        la->up = p; p += N * F;
        if (m->lora)
            for (int t = 0; t < LM_LORA_NTARGETS; t++)
                if (m->lora->targets & (1u << t)) { la->lora_xa[t] = p; p += N * (size_t)m->lora->rank; }
    }
    for (int l = nl; l < L; l++) a->layers[l] = a->layers[0];
    a->h_out = p; p += N * D;
    a->rstd_final = p; p += N;
    a->y = p; p += N * D;
    *out = a;
    return 0;
}

void lm_acts_free(lm_acts *a) {
    if (!a) return;
    free(a->mem);
    free(a->scratch);
    free(a->layers);
    free(a);
}

/* ---- forward ----------------------------------------------------------------------- */

/* y = x Wᵀ + b (+ LoRA of target t of layer l when attached). xa: saved x Aᵀ buffer. */
static void lm_linear(const lm_model *m, int l, int t, float *out, const float *x, const float *W, const float *b,
                      int N, int n_in, int n_out, float *xa) {
    linear_forward(out, x, W, b, N, n_in, n_out);
    const lm_lora *lo = m->lora;
    if (lo && (lo->targets & (1u << t)) && lo->A[l * LM_LORA_NTARGETS + t] && xa)
        lora_forward(out, xa, x, lo->A[l * LM_LORA_NTARGETS + t], lo->B[l * LM_LORA_NTARGETS + t], lo->scale, N,
                     n_in, lo->rank, n_out);
}

void lm_logits(const lm_model *m, const float *y, int n, float *logits) {
    linear_forward(logits, y, m->p.lm_head, NULL, n, m->cfg.hidden_size, m->cfg.vocab_size);
}

int lm_forward(lm_model *m, const int32_t *tokens, const int *lengths, int B, int T, float *logits, lm_acts *acts) {
    const lm_config *c = &m->cfg;
    if (B <= 0 || T <= 0) return srlm_set_error(SRLM_EINVAL, "lm_forward: B=%d T=%d must be positive", B, T);
    size_t N = (size_t)B * T;
    for (size_t r = 0; r < N; r++)
        if (tokens[r] < 0 || tokens[r] >= c->vocab_size)
            return srlm_set_error(SRLM_EINVAL, "lm_forward: token id %d at row %zu is out of range [0, %d)",
                                  tokens[r], r, c->vocab_size);
    if (lengths)
        for (int b = 0; b < B; b++)
            if (lengths[b] < 0 || lengths[b] > T)
                return srlm_set_error(SRLM_EINVAL, "lm_forward: lengths[%d] = %d not in [0, %d]", b, lengths[b], T);
    lm_acts *own = NULL;
    if (!acts) {
        int rc = lm_acts_alloc(m, B, T, ACTS_SHARED, &own);
        if (rc) return rc;
        acts = own;
    } else if (T > acts->T || N > (size_t)acts->B * acts->T) {
        return srlm_set_error(SRLM_EINVAL, "lm_forward: batch [%d, %d] exceeds the activation cache [%d, %d]", B, T,
                              acts->B, acts->T);
    } else if (m->lora && m->lora->targets &&
               (acts->lora_rank != m->lora->rank || acts->lora_targets != m->lora->targets)) {
        return srlm_set_error(SRLM_EINVAL, "lm_forward: the activation cache was allocated for LoRA rank %d targets "
                              "0x%x but the model has rank %d targets 0x%x (allocate the acts after attaching)",
                              acts->lora_rank, acts->lora_targets, m->lora->rank, m->lora->targets);
    }
    int D = c->hidden_size, F = c->intermediate_size, H = c->num_heads, Hkv = c->num_kv_heads, d = c->head_dim;
    int Hd = H * d, Kd = Hkv * d, L = c->num_layers;
    int *pos = srlm_xmalloc(sizeof(int) * N);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) pos[(size_t)b * T + t] = t;
    float *z = acts->scratch, *tmp = acts->scratch + N * (size_t)F;
    embedding_forward(acts->layers[0].h_in, tokens, m->p.embed, (int)N, D);
    for (int l = 0; l < L; l++) {
        lm_layer_acts *a = &acts->layers[l];
        const lm_layer_params *w = &m->p.layers[l];
        rmsnorm_forward(a->x1, a->rstd1, a->h_in, w->ln1, (int)N, D, c->rms_norm_eps);
        lm_linear(m, l, LM_LORA_Q, a->q, a->x1, w->wq, w->bq, (int)N, D, Hd, a->lora_xa[LM_LORA_Q]);
        lm_linear(m, l, LM_LORA_K, a->k, a->x1, w->wk, w->bk, (int)N, D, Kd, a->lora_xa[LM_LORA_K]);
        lm_linear(m, l, LM_LORA_V, a->v, a->x1, w->wv, w->bv, (int)N, D, Kd, a->lora_xa[LM_LORA_V]);
        rope_forward(a->q, pos, (int)N, H, d, m->rope_inv_freq);
        rope_forward(a->k, pos, (int)N, Hkv, d, m->rope_inv_freq);
        attention_forward(a->att, a->lse, a->probs, a->q, a->k, a->v, lengths, B, T, H, Hkv, d);
        lm_linear(m, l, LM_LORA_O, tmp, a->att, w->wo, NULL, (int)N, Hd, D, a->lora_xa[LM_LORA_O]);
        memcpy(a->h_mid, a->h_in, sizeof(float) * N * D);
        residual_add(a->h_mid, tmp, N * D);
        rmsnorm_forward(a->x2, a->rstd2, a->h_mid, w->ln2, (int)N, D, c->rms_norm_eps);
        lm_linear(m, l, LM_LORA_GATE, a->gate, a->x2, w->wg, NULL, (int)N, D, F, a->lora_xa[LM_LORA_GATE]);
        lm_linear(m, l, LM_LORA_UP, a->up, a->x2, w->wu, NULL, (int)N, D, F, a->lora_xa[LM_LORA_UP]);
        swiglu_forward(z, a->gate, a->up, N * F);
        lm_linear(m, l, LM_LORA_DOWN, tmp, z, w->wd, NULL, (int)N, F, D, a->lora_xa[LM_LORA_DOWN]);
        float *next = l + 1 < L ? acts->layers[l + 1].h_in : acts->h_out;
        memcpy(next, a->h_mid, sizeof(float) * N * D);
        residual_add(next, tmp, N * D);
    }
    rmsnorm_forward(acts->y, acts->rstd_final, acts->h_out, m->p.norm, (int)N, D, c->rms_norm_eps);
    if (logits) lm_logits(m, acts->y, (int)N, logits);
    free(pos);
    lm_acts_free(own);
    return 0;
}

int lm_sequence_logprobs(lm_model *m, const int32_t *tokens, const int *lengths, int B, int T, float temperature,
                         float *out) {
    if (temperature <= 0) temperature = 1.0f;
    lm_acts *acts;
    int rc = lm_acts_alloc(m, B, T, ACTS_SHARED, &acts);
    if (rc) return rc;
    if ((rc = lm_forward(m, tokens, lengths, B, T, NULL, acts))) {
        lm_acts_free(acts);
        return rc;
    }
    int V = m->cfg.vocab_size, D = m->cfg.hidden_size;
    int chunk = 64;
    float *lg = srlm_alloc_floats((size_t)chunk * V);
    if (!lg) {
        lm_acts_free(acts);
        return srlm_set_error(SRLM_ENOMEM, "out of memory (logits chunk)");
    }
    size_t N = (size_t)B * T;
    memset(out, 0, sizeof(float) * N);
    for (size_t r0 = 0; r0 < N; r0 += (size_t)chunk) {
        int n = (int)(N - r0 < (size_t)chunk ? N - r0 : (size_t)chunk);
        lm_logits(m, acts->y + r0 * D, n, lg);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            size_t r = r0 + (size_t)i;
            int b = (int)(r / (size_t)T), t = (int)(r % (size_t)T);
            int len = lengths ? lengths[b] : T;
            if (t + 1 >= len) continue;
            const float *z = lg + (size_t)i * V;
            float mx = -INFINITY;
            for (int v = 0; v < V; v++) mx = z[v] / temperature > mx ? z[v] / temperature : mx;
            double s = 0;
            for (int v = 0; v < V; v++) s += exp((double)(z[v] / temperature - mx));
            int nt = tokens[r + 1];
            out[r + 1] = (float)((double)(z[nt] / temperature - mx) - log(s));
        }
    }
    free(lg);
    lm_acts_free(acts);
    return 0;
}
