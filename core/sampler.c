/* sampler.c — repetition penalty, temperature, top-k, top-p, multinomial / greedy
 * (qwen2.md §2.12; HF RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
 * TopKLogitsWarper, TopPLogitsWarper semantics). */
#include "sampler.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void lm_sampling_default(lm_sampling *s) {
    memset(s, 0, sizeof *s);
    s->do_sample = 0;
    s->temperature = 1.0f;
    s->top_k = 0;
    s->top_p = 1.0f;
    s->repetition_penalty = 1.0f;
    s->max_new_tokens = 128;
}

int lm_sampling_from_json(lm_sampling *s, const char *text, const char *path) {
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return srlm_set_error(SRLM_EFORMAT, "%s: invalid JSON object (%s)", path, o ? "" : jerr.text);
    }
    int rc = 0;
    json_t *v;
    if ((v = json_object_get(o, "do_sample")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) rc = srlm_set_error(SRLM_EFORMAT, "%s: do_sample must be a boolean", path);
        else s->do_sample = json_is_true(v);
    }
    const char *fkeys[] = {"temperature", "top_p", "repetition_penalty"};
    float *fdst[] = {&s->temperature, &s->top_p, &s->repetition_penalty};
    for (int i = 0; i < 3 && !rc; i++)
        if ((v = json_object_get(o, fkeys[i])) && !json_is_null(v)) {
            if (!json_is_number(v)) rc = srlm_set_error(SRLM_EFORMAT, "%s: %s must be a number", path, fkeys[i]);
            else *fdst[i] = (float)json_number_value(v);
        }
    if (!rc && (v = json_object_get(o, "top_k")) && !json_is_null(v)) {
        if (!json_is_integer(v)) rc = srlm_set_error(SRLM_EFORMAT, "%s: top_k must be an integer", path);
        else s->top_k = (int)json_integer_value(v);
    }
    if (!rc && (v = json_object_get(o, "max_new_tokens")) && !json_is_null(v)) {
        if (!json_is_integer(v)) rc = srlm_set_error(SRLM_EFORMAT, "%s: max_new_tokens must be an integer", path);
        else s->max_new_tokens = (int)json_integer_value(v);
    }
    if (!rc && (v = json_object_get(o, "eos_token_id")) && !json_is_null(v)) {
        s->n_stop = 0;
        if (json_is_integer(v)) s->stop_ids[s->n_stop++] = (int32_t)json_integer_value(v);
        else if (json_is_array(v)) {
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x) {
                if (!json_is_integer(x)) {
                    rc = srlm_set_error(SRLM_EFORMAT, "%s: eos_token_id[%zu] must be an integer", path, i);
                    break;
                }
                if (s->n_stop < LM_MAX_STOP) s->stop_ids[s->n_stop++] = (int32_t)json_integer_value(x);
            }
        } else rc = srlm_set_error(SRLM_EFORMAT, "%s: eos_token_id must be an integer or a list", path);
    }
    json_decref(o);
    return rc;
}

int lm_sampling_validate(const lm_sampling *s) {
    if (s->do_sample && !(s->temperature >= 1e-6f && isfinite(s->temperature)))
        return srlm_set_error(SRLM_EINVAL,
                              "temperature must be finite and >= 1e-6 when sampling (got %g; use greedy decoding for "
                              "argmax)", s->temperature);
    if (!(s->top_p > 0 && s->top_p <= 1)) return srlm_set_error(SRLM_EINVAL, "top_p must be in (0, 1] (got %g)", s->top_p);
    if (s->top_k < 0) return srlm_set_error(SRLM_EINVAL, "top_k must be >= 0 (got %d)", s->top_k);
    if (!(s->repetition_penalty > 0) || !isfinite(s->repetition_penalty))
        return srlm_set_error(SRLM_EINVAL, "repetition_penalty must be > 0 (got %g)", s->repetition_penalty);
    if (s->max_new_tokens <= 0) return srlm_set_error(SRLM_EINVAL, "max_new_tokens must be > 0 (got %d)", s->max_new_tokens);
    return 0;
}

int lm_sampler_init(lm_sampler *sp, int V) {
    sp->V = V;
    sp->work = malloc(sizeof(float) * (size_t)V * 2);
    sp->idx = malloc(sizeof(int32_t) * (size_t)V);
    sp->seen = calloc((size_t)V, 1);
    if (!sp->work || !sp->idx || !sp->seen) {
        lm_sampler_free(sp);
        return srlm_set_error(SRLM_ENOMEM, "out of memory (sampler)");
    }
    return 0;
}

void lm_sampler_free(lm_sampler *sp) {
    free(sp->work);
    free(sp->idx);
    free(sp->seen);
    sp->work = NULL;
    sp->idx = NULL;
    sp->seen = NULL;
}

/* k-th largest (1-based) of a[0..n) by quickselect; a is permuted. */
static float kth_largest(float *a, int n, int k) {
    int lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        float piv = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > piv) i++;
            while (a[j] < piv) j--;
            if (i <= j) {
                float t = a[i]; a[i] = a[j]; a[j] = t;
                i++; j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return a[want];
    }
    return a[want];
}

static int cmp_idx_asc(const void *a, const void *b, void *ctx) {
    const float *v = ctx;
    float x = v[*(const int32_t *)a], y = v[*(const int32_t *)b];
    if (x < y) return -1;
    if (x > y) return 1;
    return *(const int32_t *)a < *(const int32_t *)b ? 1 : -1; /* stable-ish: larger id first */
}

static float log_softmax_at(const float *z, int V, float inv_t, int tok) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int v = 0; v < V; v++) mx = fmaxf(mx, z[v] * inv_t);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int v = 0; v < V; v++) s += (double)expf(z[v] * inv_t - mx);
    return (float)((double)(z[tok] * inv_t - mx) - log(s));
}

int32_t lm_sample(lm_sampler *sp, const float *logits, const lm_sampling *s, const int32_t *history, int n_hist,
                  srlm_rng *rng, float *logprob, float *sampled_logprob) {
    int V = sp->V;
    float *w = sp->work;
    memcpy(w, logits, sizeof(float) * (size_t)V);
    /* 1. repetition penalty over distinct ids of the sequence */
    if (s->repetition_penalty != 1.0f && history) {
        float rho = s->repetition_penalty;
        for (int i = 0; i < n_hist; i++) {
            int t = history[i];
            if (t < 0 || t >= V || sp->seen[t]) continue;
            sp->seen[t] = 1;
            w[t] = w[t] < 0 ? w[t] * rho : w[t] / rho;
        }
        for (int i = 0; i < n_hist; i++)
            if (history[i] >= 0 && history[i] < V) sp->seen[history[i]] = 0;
    }
    float tau = s->do_sample ? s->temperature : 1.0f;
    int32_t tok = 0;
    if (!s->do_sample) {
        float best = -INFINITY;
        for (int v = 0; v < V; v++)
            if (w[v] > best) { best = w[v]; tok = v; }
        if (sampled_logprob) *sampled_logprob = 0.0f;
    } else {
        /* 2. temperature */
        float inv_t = 1.0f / tau;
        for (int v = 0; v < V; v++) w[v] *= inv_t;
        /* 3. top-k: drop values below the k-th largest (ties survive) */
        if (s->top_k > 0 && s->top_k < V) {
            float *tmp = w + V;
            memcpy(tmp, w, sizeof(float) * (size_t)V);
            float kth = kth_largest(tmp, V, s->top_k);
            for (int v = 0; v < V; v++)
                if (w[v] < kth) w[v] = -INFINITY;
        }
        /* softmax of the survivors */
        float mx = -INFINITY;
        for (int v = 0; v < V; v++) mx = fmaxf(mx, w[v]);
        double sum = 0;
        float *p = w + V;
        for (int v = 0; v < V; v++) {
            p[v] = w[v] == -INFINITY ? 0.0f : expf(w[v] - mx);
            sum += p[v];
        }
        for (int v = 0; v < V; v++) p[v] = (float)(p[v] / sum);
        /* 4. top-p: sort ascending, drop entries with cumulative mass <= 1 - top_p, keep the
         * largest. Entries with p < (1-top_p)/V are always dropped (their ascending
         * cumulative sum is < 1 - top_p), so only the rest need sorting. */
        if (s->top_p < 1.0f) {
            double cut = 1.0 - (double)s->top_p, thr = cut / V, below = 0;
            int nc = 0;
            for (int v = 0; v < V; v++) {
                if (p[v] > 0 && p[v] >= thr) sp->idx[nc++] = v;
                else if (p[v] > 0) { below += p[v]; p[v] = 0; }
            }
            qsort_r(sp->idx, (size_t)nc, sizeof(int32_t), cmp_idx_asc, p);
            double c = below;
            for (int i = 0; i < nc - 1; i++) {
                c += p[sp->idx[i]];
                if (c <= cut) p[sp->idx[i]] = 0;
                else break;
            }
            double s2 = 0;
            for (int v = 0; v < V; v++) s2 += p[v];
            for (int v = 0; v < V; v++) p[v] = (float)(p[v] / s2);
        }
        /* 5. multinomial draw */
        double u = srlm_rng_uniform(rng), c = 0;
        int last = -1;
        tok = -1;
        for (int v = 0; v < V; v++) {
            if (p[v] <= 0) continue;
            last = v;
            c += p[v];
            if (u < c) { tok = v; break; }
        }
        if (tok < 0) tok = last; /* rounding: u beyond the accumulated mass */
        if (sampled_logprob) *sampled_logprob = logf(p[tok]);
    }
    if (logprob) *logprob = log_softmax_at(logits, V, 1.0f / tau, tok);
    return tok;
}
