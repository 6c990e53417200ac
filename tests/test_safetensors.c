/* test_safetensors.c — dtype conversions and the writer/reader round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "util.h"

static void test_conversions(void **st) {
    (void)st;
    /* bf16 round-to-nearest-even */
    assert_int_equal(st_f32_to_bf16(1.0f), 0x3F80);
    float x;
    uint32_t u = 0x3F808000u; /* halfway, even below → stays */
    memcpy(&x, &u, 4);
    assert_int_equal(st_f32_to_bf16(x), 0x3F80);
    u = 0x3F818000u; /* halfway, odd below → rounds up */
    memcpy(&x, &u, 4);
    assert_int_equal(st_f32_to_bf16(x), 0x3F82);
    u = 0x3F808001u;
    memcpy(&x, &u, 4);
    assert_int_equal(st_f32_to_bf16(x), 0x3F81);
    assert_true(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
    assert_true(st_bf16_to_f32(0xC040) == -3.0f);
    /* f16 */
    assert_true(st_f16_to_f32(0x3C00) == 1.0f);
    assert_true(st_f16_to_f32(0xC000) == -2.0f);
    assert_true(st_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(st_f16_to_f32(0x0001) == 5.9604644775390625e-8f);
    assert_true(st_f16_to_f32(0x3555) == 0.333251953125f);
    assert_true(isinf(st_f16_to_f32(0x7C00)));
    assert_true(st_f16_to_f32(0x8000) == 0.0f && signbit(st_f16_to_f32(0x8000)));
}

static void test_roundtrip(void **st) {
    (void)st;
    char dir[] = "/tmp/srlm_test_st_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    float a[6] = {1, 2, 3, 4, 5, 6.5f}, b[3] = {-1, 0.1f, 1e-3f};
    st_write_tensor t[3] = {{"a", 2, {2, 3}, a}, {"b", 1, {3}, b}, {"empty", 2, {0, 4}, a}};
    for (int dt = 0; dt < 2; dt++) {
        assert_int_equal(st_write(path, t, 3, dt ? ST_BF16 : ST_F32), 0);
        st_file *f;
        assert_int_equal(st_open(path, &f), 0);
        assert_int_equal(f->n_tensors, 3);
        assert_int_equal((size_t)(f->data - f->map) % 8, 0); /* header padded to 8 */
        const st_tensor *ta = st_find(f, "a");
        assert_non_null(ta);
        assert_int_equal(ta->ndim, 2);
        assert_int_equal(ta->shape[1], 3);
        assert_int_equal(ta->dtype, dt ? ST_BF16 : ST_F32);
        float out[6];
        assert_int_equal(st_read_f32(f, ta, out), 0);
        assert_memory_equal(out, a, sizeof a);
        const st_tensor *tb = st_find(f, "b");
        assert_int_equal(st_read_f32(f, tb, out), 0);
        for (int i = 0; i < 3; i++) assert_true(out[i] == (dt ? st_bf16_to_f32(st_f32_to_bf16(b[i])) : b[i]));
        assert_int_equal(st_find(f, "empty")->numel, 0);
        assert_null(st_find(f, "zzz"));
        st_close(f);
    }
    assert_int_equal(st_write(path, t, 1, ST_F16), SRLM_EINVAL);
    st_file *f;
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    assert_int_equal(st_open(path, &f), SRLM_ENOTFOUND);
    /* header length beyond the file */
    uint8_t bad[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    assert_int_equal(srlm_write_file_atomic(path, bad, sizeof bad), 0);
    assert_int_equal(st_open(path, &f), SRLM_EFORMAT);
    /* size mismatch between shape and offsets */
    const char *h = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}";
    size_t hl = strlen(h);
    uint8_t *buf = calloc(1, 8 + hl + 16);
    buf[0] = (uint8_t)hl;
    memcpy(buf + 8, h, hl);
    assert_int_equal(srlm_write_file_atomic(path, buf, 8 + hl + 16), 0);
    assert_int_equal(st_open(path, &f), SRLM_EFORMAT);
    assert_non_null(strstr(srlm_last_error(), "x"));
    free(buf);
    srlm_rm_rf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
