/* train_fixture.h — helpers shared by the trainer tests: load a JSON fixture from
 * tests/fixtures/train/ and compare float arrays with a relative tolerance. Header-only
 * (static functions) so each test program stays one file. */
#ifndef SRLM_TRAIN_FIXTURE_H
#define SRLM_TRAIN_FIXTURE_H

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

__attribute__((unused)) static json_t *tf_load(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/train/%s", SRLM_SOURCE_DIR, name);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j) fprintf(stderr, "cannot load %s: %s\n", path, e.text);
    return j;
}

/* JSON number array -> heap float array (caller frees). */
__attribute__((unused)) static float *tf_floats(json_t *a) {
    size_t n = json_array_size(a);
    float *f = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) f[i] = (float)json_number_value(json_array_get(a, i));
    return f;
}

__attribute__((unused)) static int *tf_ints(json_t *a) {
    size_t n = json_array_size(a);
    int *f = malloc(sizeof(int) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) f[i] = (int)json_integer_value(json_array_get(a, i));
    return f;
}

/* max_i |got − want| / max(max_i |want|, floor): the error relative to the scale of the
 * reference tensor (so that near-zero entries do not dominate). */
__attribute__((unused)) static double tf_rel_err(const float *got, const float *want, size_t n, double floor) {
    double scale = floor, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= err)) err = d; /* NaN-safe */
    }
    return err / scale;
}

__attribute__((unused)) static double tf_rel_err_json(const float *got, json_t *want, double floor) {
    float *w = tf_floats(want);
    double e = tf_rel_err(got, w, json_array_size(want), floor);
    free(w);
    return e;
}

__attribute__((unused)) static double tf_scalar_rel(double got, double want) {
    return fabs(got - want) / fmax(fabs(want), 1e-6);
}

#endif
