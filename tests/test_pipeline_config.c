/* test_pipeline_config.c — the run config parser: defaults, endpoints, every error names
 * the key path (unknown keys, wrong types, out of range, bad choices, missing required). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "pipeline_config.h"
#include "util.h"

static void expect_error(const char *json, const char *needle) {
    pc_config c;
    int rc = pc_parse(json, "cfg.json", "/r", &c);
    if (rc == 0) {
        pc_free(&c);
        fail_msg("accepted: %s", json);
    }
    if (!strstr(srlm_last_error(), needle)) fail_msg("error '%s' does not mention '%s'", srlm_last_error(), needle);
    if (!strstr(srlm_last_error(), "cfg.json")) fail_msg("error '%s' does not name the file", srlm_last_error());
}

static void test_defaults(void **state) {
    (void)state;
    pc_config c;
    assert_int_equal(pc_parse("{\"model\": \"m\", \"stages\": [{\"type\": \"sft\", \"steps\": 3},"
                              " {\"type\": \"grpo\", \"steps\": 2, \"max_new_tokens\": 64}]}",
                              "cfg.json", "/r/run1", &c),
                     0);
    assert_string_equal(c.name, "run1");
    assert_string_equal(c.tokenizer, "m");
    assert_string_equal(c.db, "/r/run1/data.lmdb");
    assert_int_equal(c.n_stages, 2);
    assert_int_equal(c.stages[0].type, PC_SFT);
    assert_string_equal(c.stages[0].name, "sft");
    assert_int_equal(c.stages[0].batch_size, 8);
    assert_string_equal(c.stages[0].splits, "train");
    assert_true(c.stages[1].norm_const == 64.0); /* dr_grpo constant defaults to max_new_tokens */
    assert_int_equal(c.stages[1].group_size, 4);
    assert_int_equal(c.workers_math, 1);
    assert_int_equal(c.heartbeat_ms, 1000);
    assert_string_equal(c.ep_dataset, "ipc:///r/run1/sock/dataset");
    assert_string_equal(c.ep_updates, "ipc:///r/run1/sock/updates");
    assert_int_equal(pc_has_grpo(&c), 1);
    pc_free(&c);
}

static void test_tcp_and_imports(void **state) {
    (void)state;
    pc_config c;
    assert_int_equal(pc_parse("{\"model\": \"m\", \"endpoints\": {\"transport\": \"tcp\", \"host\": \"h\", \"port_base\": 7000,"
                              " \"scored\": \"tcp://b:1\"}, \"data\": {\"import\": [[\"synth\", \"--n\", \"5\"]]},"
                              " \"stages\": [{\"type\": \"sft\", \"steps\": 1}]}",
                              "cfg.json", "/r", &c),
                     0);
    assert_string_equal(c.ep_dataset, "tcp://h:7000");
    assert_string_equal(c.ep_workers, "tcp://h:7002");
    assert_string_equal(c.ep_scored, "tcp://b:1");
    assert_int_equal(c.n_imports, 1);
    assert_string_equal(c.imports[0][0], "synth");
    assert_string_equal(c.imports[0][2], "5");
    assert_null(c.imports[0][3]);
    char b[64];
    pc_bind_endpoint(c.ep_dataset, b, sizeof b);
    assert_string_equal(b, "tcp://0.0.0.0:7000");
    pc_bind_endpoint("ipc:///x/y", b, sizeof b);
    assert_string_equal(b, "ipc:///x/y");
    pc_free(&c);
}

static void test_long_run_dir_gets_short_sockets(void **state) {
    (void)state;
    char rd[200];
    memset(rd, 'a', sizeof rd);
    rd[0] = '/';
    rd[150] = 0;
    pc_config c;
    assert_int_equal(pc_parse("{\"model\": \"m\", \"stages\": [{\"type\": \"sft\", \"steps\": 1}]}", "cfg.json", rd, &c), 0);
    assert_true(strncmp(c.ep_dataset, "ipc:///tmp/srlm-sock-", 21) == 0);
    assert_true(strlen(c.ep_teacher) < 100);
    pc_free(&c);
}

static void test_errors_name_the_key(void **state) {
    (void)state;
    const char *S = "\"model\": \"m\", ";
    char buf[512];
    expect_error("{\"model\": \"m\", \"stages\": [{\"type\": \"sft\", \"steps\": 1, \"lrr\": 1}]}", "stages[0].lrr: unknown key");
    expect_error("{\"model\": \"m\", \"bogus\": 1, \"stages\": [{\"type\": \"sft\", \"steps\": 1}]}", "bogus: unknown key");
    expect_error("{\"model\": \"m\", \"broker\": {\"heartbeat\": 5}, \"stages\": [{\"type\": \"sft\", \"steps\": 1}]}",
                 "broker.heartbeat: unknown key");
    expect_error("{\"model\": \"m\", \"stages\": [{\"type\": \"sft\", \"steps\": \"3\"}]}", "stages[0].steps: expected an integer");
    expect_error("{\"model\": \"m\", \"stages\": [{\"type\": \"sft\", \"steps\": 1}, {\"type\": \"grpo\", \"steps\": 1, \"top_p\": 2}]}",
                 "stages[1].top_p: 2 out of range");
    expect_error("{\"model\": \"m\", \"stages\": [{\"type\": \"ppo\", \"steps\": 1}]}", "stages[0].type: 'ppo' is not one of");
    expect_error("{\"model\": \"m\", \"stages\": [{\"type\": \"sft\"}]}", "stages[0].steps: required");
    expect_error("{\"model\": \"m\", \"stages\": []}", "stages: required");
    expect_error("{\"stages\": [{\"type\": \"sft\", \"steps\": 1}]}", "model: required");
    expect_error("{\"model\": \"m\", \"stages\": [{\"type\": \"kd\", \"kd_mode\": \"logit\", \"steps\": 1}]}", "stages[0].teacher: required");
    expect_error("{\"model\": \"m\", \"stages\": [{\"type\": \"grpo\", \"steps\": 1, \"group_size\": 1}]}", "stages[0].group_size");
    expect_error("{\"model\": \"m\", \"data\": {\"import\": [\"synth\"]}, \"stages\": [{\"type\": \"sft\", \"steps\": 1}]}",
                 "data.import[0]");
    expect_error("{\"model\": \"m\", \"stages\": [{\"type\": \"sft\", \"steps\": 1, \"chat\": 1}]}", "stages[0].chat: expected true or false");
    snprintf(buf, sizeof buf, "{%s \"stages\": [{\"type\": \"sft\", \"steps\": 1},]}", S);
    expect_error(buf, "cfg.json:1:");  /* JSON syntax error with line and column */
}

int main(void) {
    srlm_log_set_role("test_pipeline_config");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_tcp_and_imports),
        cmocka_unit_test(test_long_run_dir_gets_short_sockets),
        cmocka_unit_test(test_errors_name_the_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
