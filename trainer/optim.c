/* optim.c — AdamW / SGD, gradient clipping, LR schedules, optimizer.safetensors (optim.h). */
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "optim.h"
#include "util.h"

void opt_config_default(opt_config *c) {
    memset(c, 0, sizeof *c);
    c->kind = OPT_ADAMW;
    c->lr = 1e-5f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->max_grad_norm = 1.0f;
    c->sched = OPT_SCHED_CONSTANT;
}

int opt_parse_kind(const char *s, opt_kind *out) {
    if (!strcmp(s, "adamw")) *out = OPT_ADAMW;
    else if (!strcmp(s, "sgd")) *out = OPT_SGD;
    else return srlm_set_error(SRLM_EINVAL, "unknown optimizer '%s' (expected adamw or sgd)", s);
    return 0;
}

int opt_parse_sched(const char *s, opt_sched *out) {
    if (!strcmp(s, "constant")) *out = OPT_SCHED_CONSTANT;
    else if (!strcmp(s, "linear")) *out = OPT_SCHED_LINEAR;
    else if (!strcmp(s, "cosine")) *out = OPT_SCHED_COSINE;
    else return srlm_set_error(SRLM_EINVAL, "unknown LR schedule '%s' (expected constant, linear or cosine)", s);
    return 0;
}

const char *opt_kind_name(opt_kind k) { return k == OPT_SGD ? "sgd" : "adamw"; }
const char *opt_sched_name(opt_sched s) {
    return s == OPT_SCHED_LINEAR ? "linear" : s == OPT_SCHED_COSINE ? "cosine" : "constant";
}

float opt_lr_at(const opt_config *c, long step) {
    long W = c->warmup_steps > 0 ? c->warmup_steps : 0;
    if (step < W) return (float)((double)c->lr * (double)step / (double)W);
    if (c->sched == OPT_SCHED_CONSTANT) return c->lr;
    long S = c->total_steps;
    double span = (double)(S - W);
    if (span <= 0) return c->sched == OPT_SCHED_CONSTANT ? c->lr : 0.0f;
    double prog = (double)(step - W) / span;
    double f;
    if (c->sched == OPT_SCHED_LINEAR) f = (double)(S - step) / span;
    else f = 0.5 * (1.0 + cos(M_PI * prog));
    if (f < 0) f = 0;
    return (float)((double)c->lr * f);
}

double opt_grad_norm(const float *g, size_t n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

void opt_scale(float *g, size_t n, float s) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= s;
}

void opt_clip_to_norm(float *g, size_t n, float max_norm, double norm) {
    if (max_norm <= 0) return;
    double coef = (double)max_norm / (norm + 1e-6);
    if (coef < 1.0) opt_scale(g, n, (float)coef);
}

double opt_clip_grad_norm(float *g, size_t n, float max_norm) {
    double norm = opt_grad_norm(g, n);
    opt_clip_to_norm(g, n, max_norm, norm);
    return norm;
}

int opt_create(const opt_config *cfg, size_t n, opt_state **out) {
    *out = NULL;
    if (cfg->kind != OPT_ADAMW && cfg->kind != OPT_SGD)
        return srlm_set_error(SRLM_EINVAL, "opt_create: bad optimizer kind %d", (int)cfg->kind);
    opt_state *s = srlm_xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->n = n;
    int need_m = cfg->kind == OPT_ADAMW || cfg->momentum != 0.0f;
    if (need_m && !(s->m = srlm_alloc_floats(n ? n : 1))) goto nomem;
    if (cfg->kind == OPT_ADAMW && !(s->v = srlm_alloc_floats(n ? n : 1))) goto nomem;
    *out = s;
    return 0;
nomem:
    opt_free(s);
    return srlm_set_error(SRLM_ENOMEM, "optimizer state for %zu parameters: out of memory", n);
}

void opt_free(opt_state *s) {
    if (!s) return;
    free(s->m);
    free(s->v);
    free(s->no_decay);
    free(s);
}

int opt_no_decay(opt_state *s, size_t off, size_t len) {
    if (off > s->n || len > s->n - off)
        return srlm_set_error(SRLM_EINVAL, "opt_no_decay: range [%zu, +%zu) outside %zu params", off, len, s->n);
    if (!len) return 0;
    if (s->n_no_decay == s->cap_no_decay) {
        s->cap_no_decay = s->cap_no_decay ? 2 * s->cap_no_decay : 16;
        s->no_decay = srlm_xrealloc(s->no_decay, sizeof(*s->no_decay) * s->cap_no_decay);
    }
    s->no_decay[s->n_no_decay][0] = off;
    s->no_decay[s->n_no_decay][1] = off + len;
    s->n_no_decay++;
    /* keep sorted and merged (insertion sort: ranges arrive mostly in order) */
    for (int i = s->n_no_decay - 1; i > 0 && s->no_decay[i][0] < s->no_decay[i - 1][0]; i--) {
        size_t a = s->no_decay[i][0], b = s->no_decay[i][1];
        s->no_decay[i][0] = s->no_decay[i - 1][0];
        s->no_decay[i][1] = s->no_decay[i - 1][1];
        s->no_decay[i - 1][0] = a;
        s->no_decay[i - 1][1] = b;
    }
    int w = 0;
    for (int i = 0; i < s->n_no_decay; i++) {
        if (w > 0 && s->no_decay[i][0] <= s->no_decay[w - 1][1]) {
            if (s->no_decay[i][1] > s->no_decay[w - 1][1]) s->no_decay[w - 1][1] = s->no_decay[i][1];
        } else {
            s->no_decay[w][0] = s->no_decay[i][0];
            s->no_decay[w][1] = s->no_decay[i][1];
            w++;
        }
    }
    s->n_no_decay = w;
    return 0;
}

/* Update params [a, b) with weight decay on or off. */
static void update_range(opt_state *s, float *p, const float *g, float lr, size_t a, size_t b, int decay) {
    const opt_config *c = &s->cfg;
    long t = s->step + 1;
    if (c->kind == OPT_ADAMW) {
        float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
        float wdf = decay && c->weight_decay != 0.0f ? 1.0f - lr * c->weight_decay : 1.0f;
        float bc1 = 1.0f - powf(b1, (float)t);
        float bc2s = sqrtf(1.0f - powf(b2, (float)t));
        float step_size = lr / bc1;
        float *m = s->m, *v = s->v;
#pragma omp parallel for schedule(static) if (b - a > 32768)
        for (size_t i = a; i < b; i++) {
            float th = p[i] * wdf;
            float gi = g[i];
            m[i] = m[i] * b1 + gi * (1.0f - b1);
            v[i] = v[i] * b2 + gi * gi * (1.0f - b2);
            float den = sqrtf(v[i]) / bc2s + eps;
            p[i] = th - step_size * (m[i] / den);
        }
    } else {
        float wd = decay ? c->weight_decay : 0.0f, mu = c->momentum, damp = c->dampening;
        float *buf = s->m;
        int first = s->step == 0, nest = c->nesterov;
#pragma omp parallel for schedule(static) if (b - a > 32768)
        for (size_t i = a; i < b; i++) {
            float d = g[i];
            if (wd != 0.0f) d += wd * p[i];
            if (mu != 0.0f) {
                buf[i] = first ? d : buf[i] * mu + (1.0f - damp) * d;
                d = nest ? d + mu * buf[i] : buf[i];
            }
            p[i] -= lr * d;
        }
    }
}

void opt_step(opt_state *s, float *p, const float *g, float lr) {
    size_t prev = 0;
    for (int i = 0; i < s->n_no_decay; i++) {
        update_range(s, p, g, lr, prev, s->no_decay[i][0], 1);
        update_range(s, p, g, lr, s->no_decay[i][0], s->no_decay[i][1], 0);
        prev = s->no_decay[i][1];
    }
    update_range(s, p, g, lr, prev, s->n, 1);
    s->step++;
}

/* ---- optimizer.safetensors ------------------------------------------------------------ */

static void meta_set(json_t *meta, const char *k, const char *fmt, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, fmt, v);
    json_object_set_new(meta, k, json_string(buf));
}

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

int opt_save(const opt_state *s, const char *path) {
    const opt_config *c = &s->cfg;
    json_t *h = json_object(), *meta = json_object();
    json_object_set_new(meta, "format", json_string("srlm-optimizer"));
    json_object_set_new(meta, "kind", json_string(opt_kind_name(c->kind)));
    json_object_set_new(meta, "sched", json_string(opt_sched_name(c->sched)));
    meta_set(meta, "step", "%.0f", (double)s->step);
    meta_set(meta, "n", "%.0f", (double)s->n);
    meta_set(meta, "lr", "%.9g", c->lr);
    meta_set(meta, "beta1", "%.9g", c->beta1);
    meta_set(meta, "beta2", "%.9g", c->beta2);
    meta_set(meta, "eps", "%.9g", c->eps);
    meta_set(meta, "weight_decay", "%.9g", c->weight_decay);
    meta_set(meta, "momentum", "%.9g", c->momentum);
    meta_set(meta, "dampening", "%.9g", c->dampening);
    meta_set(meta, "nesterov", "%.0f", c->nesterov);
    meta_set(meta, "max_grad_norm", "%.9g", c->max_grad_norm);
    meta_set(meta, "warmup_steps", "%.0f", (double)c->warmup_steps);
    meta_set(meta, "total_steps", "%.0f", (double)c->total_steps);
    {
        size_t cap = 16 + (size_t)s->n_no_decay * 44, k = 0;
        char *nd = srlm_xmalloc(cap);
        nd[0] = 0;
        for (int i = 0; i < s->n_no_decay; i++)
            k += (size_t)snprintf(nd + k, cap - k, "%s%zu-%zu", i ? "," : "", s->no_decay[i][0], s->no_decay[i][1]);
        json_object_set_new(meta, "no_decay", json_string(nd));
        free(nd);
    }
    json_object_set_new(h, "__metadata__", meta);
    const char *names[3];
    const void *data[3];
    size_t bytes[3];
    const char *dtypes[3];
    int nt = 0;
    if (s->m) {
        names[nt] = c->kind == OPT_ADAMW ? "exp_avg" : "momentum_buffer";
        data[nt] = s->m; bytes[nt] = s->n * 4; dtypes[nt++] = "F32";
    }
    if (s->v) { names[nt] = "exp_avg_sq"; data[nt] = s->v; bytes[nt] = s->n * 4; dtypes[nt++] = "F32"; }
    size_t off = 0;
    for (int i = 0; i < nt; i++) {
        json_t *ti = json_object();
        json_object_set_new(ti, "dtype", json_string(dtypes[i]));
        json_object_set_new(ti, "shape", json_pack("[I]", (json_int_t)s->n));
        json_object_set_new(ti, "data_offsets", json_pack("[II]", (json_int_t)off, (json_int_t)(off + bytes[i])));
        json_object_set_new(h, names[i], ti);
        off += bytes[i];
    }
    char *hs = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(h);
    if (!hs) return srlm_set_error(SRLM_ENOMEM, "opt_save: header");
    size_t hl = strlen(hs), padded = (hl + 7) & ~(size_t)7;
    char tmp[4096];
    if (srlm_fmt(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid())) { free(hs); return SRLM_EINVAL; }
    FILE *f = fopen(tmp, "wb");
    if (!f) { free(hs); return srlm_set_error(SRLM_EIO, "%s: %s", tmp, strerror(errno)); }
    uint64_t hl64 = padded;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(hl64 >> (8 * i));
    int bad = write_all(f, le, 8) || write_all(f, hs, hl) || write_all(f, "        ", padded - hl);
    free(hs);
    for (int i = 0; i < nt && !bad; i++) bad = write_all(f, data[i], bytes[i]);
    if (!bad) bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    if (fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return srlm_set_error(SRLM_EIO, "writing %s: %s", path, strerror(e));
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    srlm_fsync_dir(dirname(dir));
    return 0;
}

static int meta_get(json_t *meta, const char *k, double *out, const char *path) {
    const char *s = json_string_value(json_object_get(meta, k));
    if (!s) return srlm_set_error(SRLM_EFORMAT, "%s: __metadata__ lacks '%s'", path, k);
    char *end;
    *out = strtod(s, &end);
    if (*end) return srlm_set_error(SRLM_EFORMAT, "%s: __metadata__ '%s' = '%s' is not a number", path, k, s);
    return 0;
}

static int read_tensor(FILE *f, json_t *h, const char *name, const char *dtype, size_t bytes,
                       size_t base, size_t file_size, void *dst, const char *path) {
    json_t *ti = json_object_get(h, name);
    if (!ti) return srlm_set_error(SRLM_EFORMAT, "%s: tensor '%s' missing", path, name);
    const char *dt = json_string_value(json_object_get(ti, "dtype"));
    json_t *offs = json_object_get(ti, "data_offsets");
    if (!dt || strcmp(dt, dtype) || json_array_size(offs) != 2)
        return srlm_set_error(SRLM_EFORMAT, "%s: tensor '%s': expected dtype %s", path, name, dtype);
    json_int_t a = json_integer_value(json_array_get(offs, 0)), b = json_integer_value(json_array_get(offs, 1));
    if (a < 0 || b < a || (size_t)(b - a) != bytes || base + (size_t)b > file_size)
        return srlm_set_error(SRLM_EFORMAT, "%s: tensor '%s': offsets [%lld, %lld) do not hold %zu bytes",
                              path, name, (long long)a, (long long)b, bytes);
    if (fseeko(f, (off_t)(base + (size_t)a), SEEK_SET) != 0 || fread(dst, 1, bytes, f) != bytes)
        return srlm_set_error(SRLM_EIO, "%s: reading tensor '%s'", path, name);
    return 0;
}

static int opt_load_impl(opt_state *s, const char *path, opt_state **created);

int opt_load(opt_state *s, const char *path) { return opt_load_impl(s, path, NULL); }

int opt_load_new(const char *path, opt_state **out) {
    *out = NULL;
    return opt_load_impl(NULL, path, out);
}

static int opt_load_impl(opt_state *s, const char *path, opt_state **created) {
    FILE *f = fopen(path, "rb");
    if (!f) return srlm_set_error(errno == ENOENT ? SRLM_ENOTFOUND : SRLM_EIO, "%s: %s", path, strerror(errno));
    int rc = 0;
    json_t *h = NULL;
    char *hs = NULL;
    unsigned char le[8];
    fseeko(f, 0, SEEK_END);
    size_t fsize = (size_t)ftello(f);
    rewind(f);
    if (fread(le, 1, 8, f) != 8) { rc = srlm_set_error(SRLM_EFORMAT, "%s: truncated header", path); goto out; }
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)le[i] << (8 * i);
    if (hl > 1 << 20 || 8 + hl > fsize) { rc = srlm_set_error(SRLM_EFORMAT, "%s: bad header length %llu", path, (unsigned long long)hl); goto out; }
    hs = srlm_xmalloc(hl + 1);
    if (fread(hs, 1, hl, f) != hl) { rc = srlm_set_error(SRLM_EFORMAT, "%s: truncated header", path); goto out; }
    hs[hl] = 0;
    json_error_t jerr;
    h = json_loads(hs, 0, &jerr);
    if (!json_is_object(h)) { rc = srlm_set_error(SRLM_EFORMAT, "%s: header is not JSON: %s", path, jerr.text); goto out; }
    json_t *meta = json_object_get(h, "__metadata__");
    const char *fmt = json_string_value(json_object_get(meta, "format"));
    const char *kind = json_string_value(json_object_get(meta, "kind"));
    const char *sched = json_string_value(json_object_get(meta, "sched"));
    if (!fmt || strcmp(fmt, "srlm-optimizer") || !kind || !sched) {
        rc = srlm_set_error(SRLM_EFORMAT, "%s: not an srlm optimizer state", path);
        goto out;
    }
    double step = 0, n = 0, lr = 0, b1 = 0, b2 = 0, eps = 0, wd = 0, mom = 0, damp = 0, nest = 0, mgn = 0, warm = 0,
           total = 0;
    if (created) {
        opt_config oc;
        opt_config_default(&oc);
        if ((rc = opt_parse_kind(kind, &oc.kind)) || (rc = meta_get(meta, "n", &n, path)) ||
            (rc = meta_get(meta, "momentum", &mom, path)))
            goto out;
        oc.momentum = (float)mom;
        if ((rc = opt_create(&oc, (size_t)n, created))) goto out;
        s = *created;
    }
    if (strcmp(kind, opt_kind_name(s->cfg.kind))) {
        rc = srlm_set_error(SRLM_EINVAL, "%s: optimizer is %s, expected %s", path, kind, opt_kind_name(s->cfg.kind));
        goto out;
    }
    if ((rc = meta_get(meta, "step", &step, path)) || (rc = meta_get(meta, "n", &n, path)) ||
        (rc = meta_get(meta, "lr", &lr, path)) || (rc = meta_get(meta, "beta1", &b1, path)) ||
        (rc = meta_get(meta, "beta2", &b2, path)) || (rc = meta_get(meta, "eps", &eps, path)) ||
        (rc = meta_get(meta, "weight_decay", &wd, path)) || (rc = meta_get(meta, "momentum", &mom, path)) ||
        (rc = meta_get(meta, "dampening", &damp, path)) || (rc = meta_get(meta, "nesterov", &nest, path)) ||
        (rc = meta_get(meta, "max_grad_norm", &mgn, path)) ||
        (rc = meta_get(meta, "warmup_steps", &warm, path)) || (rc = meta_get(meta, "total_steps", &total, path)))
        goto out;
    if ((size_t)n != s->n) {
        rc = srlm_set_error(SRLM_EINVAL, "%s: state for %.0f parameters, model has %zu", path, n, s->n);
        goto out;
    }
    if ((s->cfg.kind == OPT_SGD) && ((mom != 0.0) != (s->m != NULL))) {
        rc = srlm_set_error(SRLM_EINVAL, "%s: SGD momentum %g does not match this optimizer's %g", path, mom, s->cfg.momentum);
        goto out;
    }
    size_t base = 8 + hl;
    if (s->m && (rc = read_tensor(f, h, s->cfg.kind == OPT_ADAMW ? "exp_avg" : "momentum_buffer", "F32",
                                  s->n * 4, base, fsize, s->m, path))) goto out;
    if (s->v && (rc = read_tensor(f, h, "exp_avg_sq", "F32", s->n * 4, base, fsize, s->v, path))) goto out;
    {
        const char *nd = json_string_value(json_object_get(meta, "no_decay"));
        if (!nd) { rc = srlm_set_error(SRLM_EFORMAT, "%s: __metadata__ lacks 'no_decay'", path); goto out; }
        s->n_no_decay = 0;
        for (const char *q = nd; *q;) {
            char *e1, *e2;
            unsigned long long a = strtoull(q, &e1, 10);
            if (*e1 != '-') { rc = srlm_set_error(SRLM_EFORMAT, "%s: bad no_decay '%s'", path, nd); goto out; }
            unsigned long long b = strtoull(e1 + 1, &e2, 10);
            if ((*e2 && *e2 != ',') || b < a || b > s->n) {
                rc = srlm_set_error(SRLM_EFORMAT, "%s: bad no_decay '%s'", path, nd);
                goto out;
            }
            opt_no_decay(s, (size_t)a, (size_t)(b - a));
            q = *e2 ? e2 + 1 : e2;
        }
    }
    opt_parse_sched(sched, &s->cfg.sched);
    s->step = (long)step;
    s->cfg.lr = (float)lr; s->cfg.beta1 = (float)b1; s->cfg.beta2 = (float)b2; s->cfg.eps = (float)eps;
    s->cfg.weight_decay = (float)wd; s->cfg.momentum = (float)mom; s->cfg.dampening = (float)damp;
    s->cfg.nesterov = (int)nest; s->cfg.max_grad_norm = (float)mgn;
    s->cfg.warmup_steps = (long)warm; s->cfg.total_steps = (long)total;
out:
    json_decref(h);
    free(hs);
    fclose(f);
    if (rc && created && *created) {
        opt_free(*created);
        *created = NULL;
    }
    return rc;
}
