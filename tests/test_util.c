/* test_util.c — core/util: files, atomic writes, hashing, RNG determinism, int lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static void test_sha256_known_vector(void **st) {
    char hex[65];
    srlm_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_atomic_write_and_read(void **st) {
    char dir[] = "/tmp/srlm_test_util_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/a/b/file.txt", dir);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    assert_int_equal(srlm_mkdir_p(sub), 0);
    assert_int_equal(srlm_write_file_atomic(path, "hello", 5), 0);
    assert_int_equal(srlm_write_file_atomic(path, "world!", 6), 0);
    char *buf; size_t n;
    assert_int_equal(srlm_read_file(path, &buf, &n, 0), 0);
    assert_int_equal(n, 6);
    assert_string_equal(buf, "world!");
    free(buf);
    assert_int_equal(srlm_read_file(path, &buf, &n, 3), SRLM_ENOMEM);
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(srlm_read_file(path, &buf, &n, 0), SRLM_ENOTFOUND);
    assert_non_null(strstr(srlm_last_error(), "missing"));
    /* rm -rf does not follow a symlink out of the tree */
    char keep[256], link[256];
    snprintf(keep, sizeof keep, "%s/keep", dir);
    assert_int_equal(srlm_mkdir_p(keep), 0);
    snprintf(link, sizeof link, "%s/a/link", dir);
    assert_int_equal(symlink(keep, link), 0);
    snprintf(sub, sizeof sub, "%s/a", dir);
    assert_int_equal(srlm_rm_rf(sub), 0);
    assert_false(srlm_file_exists(sub));
    assert_true(srlm_file_exists(keep));
    assert_int_equal(srlm_rm_rf(dir), 0);
}

/* Numeric CLI flags: the whole string, in range, no overflow; *out untouched on error. */
/* The previous message may be an argument of the next (adding context to an error): the
 * result keeps it whole instead of reading the buffer while writing it. */
static void test_error_wraps_previous(void **st) {
    (void)st;
    assert_int_equal(srlm_set_error(SRLM_EINVAL, "required field \"%s\" is missing", "vocab_size"), SRLM_EINVAL);
    assert_int_equal(srlm_set_error(SRLM_EIO, "%s: %s", "/m/config.json", srlm_last_error()), SRLM_EIO);
    assert_string_equal(srlm_last_error(), "/m/config.json: required field \"vocab_size\" is missing");
    assert_int_equal(srlm_set_error(SRLM_EIO, "--model: %s", srlm_last_error()), SRLM_EIO);
    assert_string_equal(srlm_last_error(), "--model: /m/config.json: required field \"vocab_size\" is missing");
}

static void test_parse_int(void **st) {
    (void)st;
    int v = 7;
    assert_int_equal(srlm_parse_int("42", 1, 64, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(srlm_parse_int("-3", -5, 5, &v), 0);
    assert_int_equal(v, -3);
    v = 7;
    const char *bad[] = {"", "4x", "x", " ", "65", "0", "99999999999", "2147483648", "1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(srlm_parse_int(bad[i], 1, 64, &v), SRLM_EINVAL);
        assert_int_equal(v, 7);
    }
    assert_int_equal(srlm_parse_int(NULL, 1, 64, &v), SRLM_EINVAL);
    assert_int_equal(srlm_parse_int("2147483647", 0, 2147483647L, &v), 0);
    assert_int_equal(v, 2147483647);
}

static void test_rng_is_deterministic(void **st) {
    srlm_rng a, b;
    srlm_rng_seed(&a, 42);
    srlm_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_true(srlm_rng_u64(&a) == srlm_rng_u64(&b));
    srlm_rng_seed(&a, 7);
    double mean = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t x = srlm_rng_below(&a, 10);
        assert_true(x < 10);
        mean += x;
    }
    mean /= 10000;
    assert_true(mean > 4.3 && mean < 4.7);
}

static void test_int_list(void **st) {
    int *v, n;
    assert_int_equal(srlm_parse_int_list("[1, 2,3]", &v, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[2], 3);
    free(v);
    assert_int_equal(srlm_parse_int_list("1,x", &v, &n), SRLM_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_known_vector),
        cmocka_unit_test(test_atomic_write_and_read),
        cmocka_unit_test(test_error_wraps_previous),
        cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_rng_is_deterministic),
        cmocka_unit_test(test_int_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
