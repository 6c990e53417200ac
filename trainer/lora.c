/* lora.c — LoRA adapters: creation, gradient binding, merge, PEFT save/load (lora.h). */
#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "safetensors.h"
#include "util.h"

static const char *short_names[LM_LORA_NTARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};

int lora_parse_targets(const char *s, unsigned *out) {
    *out = 0;
    char buf[256];
    if (srlm_fmt(buf, sizeof buf, "%s", s)) return srlm_set_error(SRLM_EINVAL, "LoRA targets too long");
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!strcmp(tok, "all")) { *out |= (1u << LM_LORA_NTARGETS) - 1; continue; }
        if (!strcmp(tok, "attn")) { *out |= 0xFu; continue; }
        if (!strcmp(tok, "mlp")) { *out |= 0x70u; continue; }
        int found = 0;
        for (int t = 0; t < LM_LORA_NTARGETS; t++) {
            char full[32];
            snprintf(full, sizeof full, "%s_proj", short_names[t]);
            if (!strcmp(tok, short_names[t]) || !strcmp(tok, full)) {
                *out |= 1u << t;
                found = 1;
            }
        }
        if (!found)
            return srlm_set_error(SRLM_EINVAL, "unknown LoRA target '%s' (expected q,k,v,o,gate,up,down)", tok);
    }
    if (!*out) return srlm_set_error(SRLM_EINVAL, "no LoRA target given");
    return 0;
}

/* The base weight matrix of target t in layer l. */
static float *base_weight(const lm_model *m, int l, int t) {
    const lm_layer_params *p = &m->p.layers[l];
    switch (t) {
    case LM_LORA_Q: return p->wq;
    case LM_LORA_K: return p->wk;
    case LM_LORA_V: return p->wv;
    case LM_LORA_O: return p->wo;
    case LM_LORA_GATE: return p->wg;
    case LM_LORA_UP: return p->wu;
    default: return p->wd;
    }
}

/* Layout: for l, for t in targets: A [r, in] then B [out, r]. */
static size_t layout(const lm_config *c, int r, unsigned targets, float *base, float **A, float **B) {
    size_t off = 0;
    for (int l = 0; l < c->num_layers; l++)
        for (int t = 0; t < LM_LORA_NTARGETS; t++) {
            int i = l * LM_LORA_NTARGETS + t;
            if (A) A[i] = B[i] = NULL;
            if (!(targets & (1u << t))) continue;
            int in, out;
            lm_lora_target_dims(c, t, &in, &out);
            if (A) A[i] = base + off;
            off += (size_t)r * in;
            if (A) B[i] = base + off;
            off += (size_t)out * r;
        }
    return off;
}

int lora_create(const lm_model *m, int rank, float alpha, unsigned targets, uint64_t seed,
                lm_lora **out) {
    *out = NULL;
    if (rank < 1 || !targets || targets >= (1u << LM_LORA_NTARGETS))
        return srlm_set_error(SRLM_EINVAL, "LoRA: rank %d / targets 0x%x invalid", rank, targets);
    const lm_config *c = &m->cfg;
    lm_lora *lo = srlm_xcalloc(1, sizeof *lo);
    lo->rank = rank;
    lo->alpha = alpha;
    lo->scale = alpha / (float)rank;
    lo->targets = targets;
    lo->n_layers = c->num_layers;
    lo->n_params = layout(c, rank, targets, NULL, NULL, NULL);
    lo->data = srlm_alloc_floats(lo->n_params);
    lo->A = calloc((size_t)c->num_layers * LM_LORA_NTARGETS, sizeof(float *));
    lo->B = calloc((size_t)c->num_layers * LM_LORA_NTARGETS, sizeof(float *));
    if (!lo->data || !lo->A || !lo->B) {
        size_t np = lo->n_params;
        lora_free(lo);
        return srlm_set_error(SRLM_ENOMEM, "LoRA: %zu adapter parameters", np);
    }
    layout(c, rank, targets, lo->data, lo->A, lo->B);
    srlm_rng rng;
    srlm_rng_seed(&rng, seed);
    for (int l = 0; l < c->num_layers; l++)
        for (int t = 0; t < LM_LORA_NTARGETS; t++) {
            float *A = lo->A[l * LM_LORA_NTARGETS + t];
            if (!A) continue;
            int in, o;
            lm_lora_target_dims(c, t, &in, &o);
            float bound = 1.0f / sqrtf((float)in);
            for (size_t i = 0; i < (size_t)rank * in; i++)
                A[i] = (float)((2.0 * srlm_rng_uniform(&rng) - 1.0) * bound);
        }
    *out = lo;
    return 0;
}

void lora_free(lm_lora *lo) {
    if (!lo) return;
    free(lo->data);
    free(lo->A);
    free(lo->B);
    free(lo);
}

int lora_bind(const lm_lora *lo, float *base, lm_lora *out) {
    *out = *lo;
    out->data = base;
    size_t n = (size_t)lo->n_layers * LM_LORA_NTARGETS;
    out->A = calloc(n, sizeof(float *));
    out->B = calloc(n, sizeof(float *));
    if (!out->A || !out->B) {
        lora_unbind(out);
        return srlm_set_error(SRLM_ENOMEM, "lora_bind");
    }
    for (size_t i = 0; i < n; i++) {
        out->A[i] = lo->A[i] ? base + (lo->A[i] - lo->data) : NULL;
        out->B[i] = lo->B[i] ? base + (lo->B[i] - lo->data) : NULL;
    }
    return 0;
}

void lora_unbind(lm_lora *b) {
    free(b->A);
    free(b->B);
    b->A = b->B = NULL;
}

int lora_merge(lm_model *m, const lm_lora *lo, float **backup) {
    const lm_config *c = &m->cfg;
    size_t total = 0;
    for (int l = 0; l < c->num_layers; l++)
        for (int t = 0; t < LM_LORA_NTARGETS; t++)
            if (lo->A[l * LM_LORA_NTARGETS + t]) {
                int in, out;
                lm_lora_target_dims(c, t, &in, &out);
                total += (size_t)in * out;
            }
    float *bk = NULL;
    if (backup) {
        *backup = NULL;
        if (!(bk = srlm_alloc_floats(total ? total : 1)))
            return srlm_set_error(SRLM_ENOMEM, "lora_merge: backup of %zu weights", total);
        *backup = bk;
    }
    size_t off = 0;
    for (int l = 0; l < c->num_layers; l++)
        for (int t = 0; t < LM_LORA_NTARGETS; t++) {
            int i = l * LM_LORA_NTARGETS + t;
            if (!lo->A[i]) continue;
            int in, out;
            lm_lora_target_dims(c, t, &in, &out);
            float *W = base_weight(m, l, t);
            if (bk) memcpy(bk + off, W, sizeof(float) * (size_t)in * out);
            off += (size_t)in * out;
            /* W [out, in] += scale · B [out, r] · A [r, in] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, lo->rank, lo->scale, lo->B[i],
                        lo->rank, lo->A[i], in, 1.0f, W, in);
        }
    return 0;
}

void lora_unmerge(lm_model *m, const lm_lora *lo, float *backup) {
    const lm_config *c = &m->cfg;
    size_t off = 0;
    for (int l = 0; l < c->num_layers; l++)
        for (int t = 0; t < LM_LORA_NTARGETS; t++) {
            if (!lo->A[l * LM_LORA_NTARGETS + t]) continue;
            int in, out;
            lm_lora_target_dims(c, t, &in, &out);
            memcpy(base_weight(m, l, t), backup + off, sizeof(float) * (size_t)in * out);
            off += (size_t)in * out;
        }
    free(backup);
}

static void peft_name(char *buf, size_t n, int l, int t, const char *ab) {
    snprintf(buf, n, "base_model.model.model.layers.%d.%s.%s.lora_%s.weight", l,
             t <= LM_LORA_O ? "self_attn" : "mlp", lm_lora_target_name(t), ab);
}

int lora_save_peft(const lm_model *m, const lm_lora *lo, const char *dir,
                   const char *base_model) {
    const lm_config *c = &m->cfg;
    int rc = srlm_mkdir_p(dir);
    if (rc) return rc;
    json_t *cfg = json_object(), *tm = json_array();
    for (int t = 0; t < LM_LORA_NTARGETS; t++)
        if (lo->targets & (1u << t)) json_array_append_new(tm, json_string(lm_lora_target_name(t)));
    json_object_set_new(cfg, "peft_type", json_string("LORA"));
    json_object_set_new(cfg, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(cfg, "r", json_integer(lo->rank));
    json_object_set_new(cfg, "lora_alpha", json_real(lo->alpha));
    json_object_set_new(cfg, "lora_dropout", json_real(0.0));
    json_object_set_new(cfg, "target_modules", tm);
    json_object_set_new(cfg, "bias", json_string("none"));
    json_object_set_new(cfg, "fan_in_fan_out", json_false());
    json_object_set_new(cfg, "inference_mode", json_true());
    json_object_set_new(cfg, "init_lora_weights", json_true());
    json_object_set_new(cfg, "use_rslora", json_false());
    json_object_set_new(cfg, "use_dora", json_false());
    json_object_set_new(cfg, "modules_to_save", json_null());
    json_object_set_new(cfg, "base_model_name_or_path", base_model ? json_string(base_model) : json_null());
    char *txt = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(cfg);
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    rc = srlm_write_file_atomic(path, txt, strlen(txt));
    free(txt);
    if (rc) return rc;
    int n = 0;
    st_write_tensor *ts = srlm_xcalloc((size_t)2 * c->num_layers * LM_LORA_NTARGETS, sizeof *ts);
    char (*names)[128] = srlm_xcalloc((size_t)2 * c->num_layers * LM_LORA_NTARGETS, 128);
    for (int l = 0; l < c->num_layers; l++)
        for (int t = 0; t < LM_LORA_NTARGETS; t++) {
            int i = l * LM_LORA_NTARGETS + t;
            if (!lo->A[i]) continue;
            int in, out;
            lm_lora_target_dims(c, t, &in, &out);
            peft_name(names[n], 128, l, t, "A");
            ts[n] = (st_write_tensor){.name = names[n], .ndim = 2, .shape = {lo->rank, in}, .data = lo->A[i]};
            n++;
            peft_name(names[n], 128, l, t, "B");
            ts[n] = (st_write_tensor){.name = names[n], .ndim = 2, .shape = {out, lo->rank}, .data = lo->B[i]};
            n++;
        }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    rc = st_write(path, ts, n, ST_F32);
    free(ts);
    free(names);
    return rc;
}

int lora_load_peft(const lm_model *m, const char *dir, lm_lora **out) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_error_t e;
    json_t *cfg = json_load_file(path, 0, &e);
    if (!cfg) return srlm_set_error(SRLM_ENOTFOUND, "%s: %s", path, e.text);
    int r = (int)json_integer_value(json_object_get(cfg, "r"));
    double alpha = json_number_value(json_object_get(cfg, "lora_alpha"));
    unsigned targets = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(cfg, "target_modules"), i, v) {
        unsigned t1;
        const char *s = json_string_value(v);
        if (!s || lora_parse_targets(s, &t1)) {
            json_decref(cfg);
            return srlm_set_error(SRLM_EFORMAT, "%s: bad target_modules entry", path);
        }
        targets |= t1;
    }
    json_decref(cfg);
    if (r < 1 || !targets) return srlm_set_error(SRLM_EFORMAT, "%s: r / target_modules missing", path);
    lm_lora *lo;
    int rc = lora_create(m, r, (float)alpha, targets, 0, &lo);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    st_file *f;
    if ((rc = st_open(path, &f))) {
        lora_free(lo);
        return rc;
    }
    const lm_config *c = &m->cfg;
    for (int l = 0; l < c->num_layers && !rc; l++)
        for (int t = 0; t < LM_LORA_NTARGETS && !rc; t++) {
            int k = l * LM_LORA_NTARGETS + t;
            if (!lo->A[k]) continue;
            int in, o;
            lm_lora_target_dims(c, t, &in, &o);
            for (int ab = 0; ab < 2 && !rc; ab++) {
                char name[128];
                peft_name(name, sizeof name, l, t, ab ? "B" : "A");
                const st_tensor *st = st_find(f, name);
                int64_t r0 = ab ? o : r, r1 = ab ? r : in;
                if (!st) rc = srlm_set_error(SRLM_ENOTFOUND, "%s: tensor %s missing", path, name);
                else if (st->ndim != 2 || st->shape[0] != r0 || st->shape[1] != r1)
                    rc = srlm_set_error(SRLM_EINVAL, "%s: tensor %s: shape must be [%lld, %lld]", path, name,
                                        (long long)r0, (long long)r1);
                else rc = st_read_f32(f, st, ab ? lo->B[k] : lo->A[k]);
            }
        }
    st_close(f);
    if (rc) {
        lora_free(lo);
        return rc;
    }
    *out = lo;
    return 0;
}
