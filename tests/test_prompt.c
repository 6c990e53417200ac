/* test_prompt.c — every named prompt format renders the exact expected prompt and target. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "prompt.h"
#include "util.h"

static const char *GSM =
    "{\"id\":\"gsm8k/test/0\",\"source\":\"gsm8k\",\"split\":\"test\",\"kind\":\"math\",\"prompt\":\"What is 2+3?\","
    "\"answer\":\"5\",\"solution\":\"2+3=<<2+3=5>>5\\n#### 5\",\"solution_clean\":\"2+3=5\\n#### 5\"}";
static const char *MATH =
    "{\"id\":\"math500/test/0\",\"source\":\"math500\",\"kind\":\"math\",\"prompt\":\"Find $x$.\","
    "\"answer\":\"\\\\frac{1}{2}\",\"solution\":\"So $x=\\\\boxed{\\\\frac{1}{2}}$.\"}";
static const char *HE =
    "{\"id\":\"humaneval/test/0\",\"source\":\"humaneval\",\"kind\":\"code\",\"code_format\":\"humaneval\","
    "\"prompt\":\"def add(a, b):\\n    \\\"\\\"\\\"Add.\\\"\\\"\\\"\\n\",\"solution\":\"    return a + b\\n\","
    "\"entry_point\":\"add\",\"tests\":\"def check(c):\\n    assert c(1,2)==3\\n\"}";
static const char *MBPP =
    "{\"id\":\"mbpp/test/1\",\"source\":\"mbpp\",\"kind\":\"code\",\"code_format\":\"mbpp\","
    "\"prompt\":\"Write a function to add two numbers.\",\"solution\":\"def add(a, b):\\n    return a + b\","
    "\"test_list\":[\"assert add(1, 2) == 3\",\"assert add(0, 0) == 0\"]}";
static const char *CHAT =
    "{\"id\":\"jsonl/train/0\",\"source\":\"jsonl\",\"kind\":\"chat\",\"messages\":["
    "{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello!\"}]}";

static json_t *load(const char *s) {
    json_t *r = json_loads(s, 0, NULL);
    assert_non_null(r);
    return r;
}

static void expect(pf_format f, const char *rec, int chat, const char *want_prompt, const char *want_target) {
    char *p = NULL, *t = NULL;
    assert_int_equal(pf_render_prompt_str(f, rec, chat, &p), 0);
    assert_string_equal(p, want_prompt);
    if (want_target) {
        assert_int_equal(pf_render_target_str(f, rec, chat, &t), 0);
        assert_string_equal(t, want_target);
    }
    free(p);
    free(t);
}

static void test_names(void **st) {
    (void)st;
    const char *names[] = {"plain", "gsm8k", "cot-boxed", "humaneval", "mbpp"};
    for (int i = 0; i < 5; i++) {
        pf_format f;
        assert_int_equal(pf_from_name(names[i], &f), 0);
        assert_string_equal(pf_name(f), names[i]);
    }
    pf_format f;
    assert_int_equal(pf_from_name("nope", &f), SRLM_EINVAL);
    assert_non_null(strstr(srlm_last_error(), "nope"));
}

static void test_defaults(void **st) {
    (void)st;
    const char *recs[] = {GSM, MATH, HE, MBPP, CHAT};
    pf_format want[] = {PF_GSM8K, PF_COT_BOXED, PF_HUMANEVAL, PF_MBPP, PF_PLAIN};
    for (int i = 0; i < 5; i++) {
        json_t *r = load(recs[i]);
        assert_int_equal(pf_default_for(r), want[i]);
        json_decref(r);
    }
    json_t *s = load("{\"source\":\"synth-arith\",\"kind\":\"math\",\"prompt\":\"x\"}");
    assert_int_equal(pf_default_for(s), PF_GSM8K);
    json_decref(s);
}

static void test_gsm8k(void **st) {
    (void)st;
    expect(PF_GSM8K, GSM, 0, "Question: What is 2+3?\nAnswer:", " 2+3=5\n#### 5");
    expect(PF_GSM8K, GSM, 1,
           "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+3?\n"
           "Solve the problem step by step. Write the final answer as \"#### N\" on the last line.<|im_end|>\n"
           "<|im_start|>assistant\n",
           "2+3=5\n#### 5<|im_end|>");
    /* a MATH solution gets a #### line from its last \boxed{} */
    expect(PF_GSM8K, MATH, 0, "Question: Find $x$.\nAnswer:", " So $x=\\boxed{\\frac{1}{2}}$.\n#### \\frac{1}{2}");
}

static void test_cot_boxed(void **st) {
    (void)st;
    expect(PF_COT_BOXED, MATH, 0, "Find $x$.\nPlease reason step by step, and put your final answer within \\boxed{}.\n",
           "So $x=\\boxed{\\frac{1}{2}}$.");
    expect(PF_COT_BOXED, GSM, 0,
           "What is 2+3?\nPlease reason step by step, and put your final answer within \\boxed{}.\n",
           "2+3=5\nThe final answer is $\\boxed{5}$.");
    expect(PF_COT_BOXED, MATH, 1,
           "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nFind $x$.\n"
           "Please reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n",
           "So $x=\\boxed{\\frac{1}{2}}$.<|im_end|>");
}

static void test_code(void **st) {
    (void)st;
    expect(PF_HUMANEVAL, HE, 0, "def add(a, b):\n    \"\"\"Add.\"\"\"\n", "    return a + b\n");
    expect(PF_HUMANEVAL, HE, 1,
           "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nComplete the following "
           "Python function. Reply with the whole function in a ```python code block.\n```python\ndef add(a, b):\n"
           "    \"\"\"Add.\"\"\"\n```<|im_end|>\n<|im_start|>assistant\n",
           "```python\ndef add(a, b):\n    \"\"\"Add.\"\"\"\n    return a + b\n```<|im_end|>");
    expect(PF_MBPP, MBPP, 0,
           "Write a function to add two numbers.\nYour code should pass this test:\nassert add(1, 2) == 3\n```python\n",
           "def add(a, b):\n    return a + b\n```");
    expect(PF_MBPP, MBPP, 1,
           "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nWrite a function to add two "
           "numbers.\nYour code should pass this test:\nassert add(1, 2) == 3\nWrite the Python function in a "
           "```python code block.<|im_end|>\n<|im_start|>assistant\n",
           "```python\ndef add(a, b):\n    return a + b\n```<|im_end|>");
}

static void test_plain_and_messages(void **st) {
    (void)st;
    expect(PF_PLAIN, GSM, 0, "What is 2+3?", "2+3=5\n#### 5");
    expect(PF_PLAIN, CHAT, 0, "Hi", "Hello!");
    expect(PF_PLAIN, CHAT, 1,
           "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
           "<|im_start|>assistant\n",
           "Hello!<|im_end|>");
    json_t *r = load(CHAT), *m = NULL;
    assert_int_equal(pf_render_messages(PF_PLAIN, r, &m), 0);
    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "content")), "Hi");
    json_decref(m);
    json_decref(r);
    expect(PF_PLAIN, "{\"prompt\":\"p\",\"completion\":\"c\",\"solution\":\"s\"}", 0, "p", "c");
}

static void test_errors(void **st) {
    (void)st;
    char *out = (char *)1;
    assert_int_equal(pf_render_prompt_str(PF_GSM8K, "{\"answer\":\"1\"}", 0, &out), SRLM_EINVAL);
    assert_null(out);
    assert_non_null(strstr(srlm_last_error(), "prompt"));
    assert_int_equal(pf_render_prompt_str(PF_GSM8K, "{bad json", 0, &out), SRLM_EFORMAT);
    assert_int_equal(pf_render_target_str(PF_PLAIN, "{\"prompt\":\"x\"}", 0, &out), SRLM_EINVAL);
    assert_int_equal(pf_render_target_str(PF_GSM8K, "{\"prompt\":\"x\",\"answer\":\"7\"}", 0, &out), 0);
    assert_string_equal(out, " #### 7");
    free(out);
    assert_int_equal(pf_render_prompt_str(PF_PLAIN, "{\"messages\":[{\"role\":1}]}", 0, &out), SRLM_EINVAL);
}

static void test_stops(void **st) {
    (void)st;
    char t1[] = "    return a + b\n\ndef other():\n    pass";
    assert_int_equal(pf_truncate_at_stop(PF_HUMANEVAL, 0, t1), strlen("    return a + b\n"));
    assert_string_equal(t1, "    return a + b\n");
    char t2[] = "x = 1\n#### 1<|im_end|>junk";
    pf_truncate_at_stop(PF_GSM8K, 1, t2);
    assert_string_equal(t2, "x = 1\n#### 1");
    char t3[] = "def f():\n    return 1\n```\ntrailing";
    pf_truncate_at_stop(PF_MBPP, 0, t3);
    assert_string_equal(t3, "def f():\n    return 1\n");
    char t4[] = "unchanged";
    assert_int_equal(pf_truncate_at_stop(PF_PLAIN, 0, t4), 9);
    assert_null(pf_stop_strings(PF_PLAIN, 0)[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),   cmocka_unit_test(test_defaults), cmocka_unit_test(test_gsm8k),
        cmocka_unit_test(test_cot_boxed), cmocka_unit_test(test_code),   cmocka_unit_test(test_plain_and_messages),
        cmocka_unit_test(test_errors),  cmocka_unit_test(test_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
