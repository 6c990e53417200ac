/* test_dataset.c — datasets/store, import, synth: bundled counts, answer extraction,
 * idempotency, malformed input (store unchanged), JSONL mapping, export round trip,
 * synthetic determinism, stream determinism and epoch coverage, shared-mode ranges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "import.h"
#include "store.h"
#include "util.h"

typedef struct {
    char dir[64];
    char db[96];
    ds_store *st;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/srlm_test_dataset_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->db, sizeof f->db, "%s/db", f->dir);
    if (ds_open(f->db, DS_NOSYNC, &f->st)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    ds_close(f->st);
    srlm_rm_rf(f->dir);
    free(f);
    return 0;
}

static void write_file(const fixture *f, const char *name, const char *content, size_t len, char *path, size_t plen) {
    snprintf(path, plen, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(content, 1, len, fp), len);
    fclose(fp);
}

/* sha256 over the export of the whole store: "the store is unchanged" */
typedef struct {
    char *buf;
    size_t len, cap;
} acc_t;

static int hash_cb(void *ctx, const Dataset__Record *r) {
    char *s;
    assert_int_equal(ds_record_to_json(r, &s), 0);
    acc_t *a = ctx;
    size_t b = strlen(s);
    if (a->len + b + 1 > a->cap) {
        a->cap = (a->len + b + 1) * 2;
        a->buf = realloc(a->buf, a->cap);
    }
    memcpy(a->buf + a->len, s, b);
    a->buf[a->len + b] = '\n';
    a->len += b + 1;
    free(s);
    return 0;
}

static void store_digest(ds_store *st, char hex[65]) {
    acc_t a = {0};
    assert_int_equal(ds_foreach(st, NULL, NULL, hash_cb, &a), 0);
    srlm_sha256_hex(a.buf ? a.buf : "", a.len, hex);
    free(a.buf);
}

static uint64_t count_of(ds_store *st, const char *source, const char *split) {
    Dataset__Count **c;
    size_t n;
    uint64_t total, r = 0;
    assert_int_equal(ds_counts(st, &c, &n, &total), 0);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(c[i]->source, source) && (!split || !strcmp(c[i]->split, split))) r += c[i]->n;
    ds_counts_free(c, n);
    return r;
}

/* ---- helpers ---- */

static void test_gsm8k_answer(void **state) {
    (void)state;
    char *a;
    assert_int_equal(ds_gsm8k_answer("so 3+4=7\n#### 1,234", &a), 0);
    assert_string_equal(a, "1234");
    free(a);
    assert_int_equal(ds_gsm8k_answer("x #### 1 #### -2.5 ", &a), 0);
    assert_string_equal(a, "-2.5");
    free(a);
    assert_int_equal(ds_gsm8k_answer("no marker", &a), SRLM_EFORMAT);
    assert_int_equal(ds_gsm8k_answer("#### twelve", &a), SRLM_EFORMAT);
    assert_int_equal(ds_gsm8k_answer("#### ", &a), SRLM_EFORMAT);
    char *s = ds_strip_calc("48/2 = <<48/2=24>>24 and <<open");
    assert_string_equal(s, "48/2 = 24 and <<open");
    free(s);
}

static void test_last_boxed(void **state) {
    (void)state;
    char *b = ds_last_boxed("so \\boxed{1} then \\boxed{\\frac{1}{2}}.");
    assert_string_equal(b, "\\frac{1}{2}");
    free(b);
    b = ds_last_boxed("$\\boxed{x^{2}+\\{a\\}}$");
    assert_string_equal(b, "x^{2}+\\{a\\}");
    free(b);
    b = ds_last_boxed("\\fbox{7} end");
    assert_string_equal(b, "7");
    free(b);
    b = ds_last_boxed("\\boxed 5$");
    assert_string_equal(b, "5");
    free(b);
    assert_null(ds_last_boxed("\\boxed{unbalanced"));
    assert_null(ds_last_boxed("nothing"));
}

/* ---- bundled data ---- */

static int gsm_check(void *ctx, const Dataset__Record *r) {
    int *n = ctx;
    assert_non_null(r->answer);
    char *end;
    strtod(r->answer, &end);
    assert_true(*r->answer && *end == 0); /* every GSM8K answer parses as a number */
    assert_non_null(r->solution_clean);
    assert_null(strstr(r->solution_clean, "<<"));
    assert_non_null(strstr(r->solution, "####"));
    assert_string_equal(r->kind, "math");
    (*n)++;
    return 0;
}

static void test_bundled_counts(void **state) {
    fixture *f = *state;
    size_t n = 0;
    double t0 = srlm_now();
    assert_int_equal(ds_import_bundled(f->st, "all", &n), 0);
    print_message("imported %zu bundled records in %.2f s\n", n, srlm_now() - t0);
    assert_int_equal(count_of(f->st, "gsm8k", "train"), 7473);
    assert_int_equal(count_of(f->st, "gsm8k", "test"), 1319);
    assert_int_equal(count_of(f->st, "math", "train"), 7500);
    assert_int_equal(count_of(f->st, "math", "test"), 5000);
    assert_int_equal(count_of(f->st, "math500", "test"), 500);
    assert_int_equal(count_of(f->st, "humaneval", "test"), 164);
    assert_int_equal(count_of(f->st, "mbpp", NULL), 974);
    assert_int_equal(count_of(f->st, "mbpp", "test"), 500);
    assert_int_equal(count_of(f->st, "mbpp-sanitized", NULL), 427);
    assert_int_equal(n, 7473 + 1319 + 7500 + 5000 + 500 + 164 + 974 + 427);
    assert_int_equal(ds_total(f->st), n);
    int ng = 0;
    assert_int_equal(ds_foreach(f->st, "gsm8k", NULL, gsm_check, &ng), 0);
    assert_int_equal(ng, 7473 + 1319);

    Dataset__Record *r;
    assert_int_equal(ds_get(f->st, "gsm8k/train/0", &r), 0);
    assert_string_equal(r->answer, "72");
    ds_record_free(r);
    assert_int_equal(ds_get(f->st, "math500/test/0", &r), 0);
    assert_non_null(r->answer);
    assert_non_null(strstr(r->metadata_json, "\"subject\""));
    assert_non_null(strstr(r->metadata_json, "\"level\""));
    ds_record_free(r);
    assert_int_equal(ds_get(f->st, "humaneval/test/0", &r), 0);
    assert_string_equal(r->entry_point, "has_close_elements");
    assert_string_equal(r->code_format, "humaneval");
    assert_non_null(strstr(r->tests, "def check(candidate)"));
    ds_record_free(r);
    assert_int_equal(ds_get(f->st, "mbpp/test/11", &r), 0);
    assert_string_equal(r->entry_point, "remove_Occ");
    assert_int_equal(r->n_test_list, 3);
    assert_string_equal(r->code_format, "mbpp");
    ds_record_free(r);
    assert_int_equal(ds_get(f->st, "nope/x/1", &r), SRLM_ENOTFOUND);

    char *info;
    assert_int_equal(ds_import_info(f->st, "humaneval", "test", &info), 0);
    assert_non_null(strstr(info, "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef")); /* .gz */
    assert_non_null(strstr(info, "1d49078ba3e2b196b9344535bef34a43021f038fad9561d6ee7c53450609a6a2")); /* content */
    free(info);
    assert_int_equal(ds_import_info(f->st, "gsm8k", "test", &info), 0); /* SOURCES.md */
    assert_non_null(strstr(info, "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"));
    assert_non_null(strstr(info, "\"schema_version\":1"));
    free(info);

    /* idempotent: the same import again changes nothing */
    char h1[65], h2[65];
    store_digest(f->st, h1);
    assert_int_equal(ds_import_bundled(f->st, "gsm8k", &n), 0);
    assert_int_equal(ds_total(f->st), 7473 + 1319 + 7500 + 5000 + 500 + 164 + 974 + 427);
    store_digest(f->st, h2);
    assert_string_equal(h1, h2);
}

/* ---- malformed input leaves the store unchanged ---- */

static void expect_fail(fixture *f, const char *format, const char *name, const char *content, size_t len,
                        const char *needle) {
    char path[256], before[65], after[65];
    write_file(f, name, content, len, path, sizeof path);
    store_digest(f->st, before);
    uint64_t gen = ds_generation(f->st);
    ds_import_opts o = {format, "train", NULL, NULL, NULL};
    const char *files[] = {path};
    int rc = ds_import_files(f->st, &o, files, 1, NULL);
    assert_int_not_equal(rc, 0);
    if (!strstr(srlm_last_error(), needle)) fail_msg("error '%s' lacks '%s'", srlm_last_error(), needle);
    store_digest(f->st, after);
    assert_string_equal(before, after);
    assert_int_equal(ds_generation(f->st), gen);
}

/* content given as a string literal (may hold NUL bytes) */
#define EXPECT_FAIL(format, name, lit, needle) expect_fail(f, format, name, lit, sizeof(lit) - 1, needle)

static void test_malformed(void **state) {
    fixture *f = *state;
    ds_synth_opts so = {"arith", 20, "train", 1, 3, 20, NULL};
    assert_int_equal(ds_synth_import(f->st, &so, NULL), 0);
    const char *good = "{\"question\":\"q1\",\"answer\":\"a\\n#### 1\"}\n";
    char buf[512];
    /* bad JSON on line 3 (a valid first line must not be written either) */
    snprintf(buf, sizeof buf, "%s\n{\"question\": \"q\", \"answer\": \"#### 2\"\n", good);
    expect_fail(f, "gsm8k", "bad3.jsonl", buf, strlen(buf), "bad3.jsonl:3: bad JSON");
    snprintf(buf, sizeof buf, "%s{\"question\":\"q2\"}\n", good);
    expect_fail(f, "gsm8k", "missing.jsonl", buf, strlen(buf), "missing.jsonl:2: missing field 'answer'");
    snprintf(buf, sizeof buf, "%s%s{\"question\":7,\"answer\":\"#### 1\"}\n", good, good);
    expect_fail(f, "gsm8k", "type.jsonl", buf, strlen(buf), "type.jsonl:3: field 'question' must be a string");
    EXPECT_FAIL("gsm8k", "noans.jsonl", "{\"question\":\"q\",\"answer\":\"#### x\"}\n", "noans.jsonl:1: field 'answer': final answer 'x' after '####' is not a number");
    expect_fail(f, "gsm8k", "empty.jsonl", "", 0, "empty.jsonl: empty file");
    EXPECT_FAIL("gsm8k", "blank.jsonl", "\n\n  \n", "blank.jsonl: empty file");
    unsigned char junk[300];
    srlm_rng r;
    srlm_rng_seed(&r, 42);
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)srlm_rng_u64(&r);
    junk[0] = 0x80; /* not a gzip magic, not JSON */
    expect_fail(f, "gsm8k", "junk.bin", (const char *)junk, sizeof junk, "junk.bin:1: bad JSON");
    EXPECT_FAIL("gsm8k", "nul.jsonl", "{\"question\":\"a\0b\",\"answer\":\"#### 1\"}\n", "nul.jsonl:1: bad JSON");
    EXPECT_FAIL("gsm8k", "arr.jsonl", "[1,2]\n", "arr.jsonl:1: expected a JSON object");
    EXPECT_FAIL("math", "nobox.jsonl", "{\"problem\":\"p\",\"solution\":\"no box\"}\n", "nobox.jsonl:1: no 'answer'");
    EXPECT_FAIL("humaneval", "he.jsonl", "{\"task_id\":\"x\",\"prompt\":\"p\"}\n", "he.jsonl:1: missing field 'entry_point'");
    EXPECT_FAIL("mbpp", "mb.jsonl", "{\"task_id\":1,\"text\":\"t\",\"code\":\"c\",\"test_list\":[1]}\n",
                "mb.jsonl:1: field 'test_list' must be an array of strings");
    const char *san = "[{\"task_id\":2,\"prompt\":\"p\",\"code\":\"c\"}]";
    expect_fail(f, "mbpp-sanitized", "san.json", san, strlen(san),
                "san.json: element 1: missing field 'test_list'");
    EXPECT_FAIL("jsonl", "j.jsonl", "{\"q\":\"x\"}\n", "j.jsonl:1: missing field 'prompt'");
    EXPECT_FAIL("gsm8k", "dup.jsonl", "{\"question\":\"q\",\"question\":\"r\",\"answer\":\"#### 1\"}\n",
                "dup.jsonl:1: bad JSON");
    /* missing file */
    ds_import_opts o = {"gsm8k", "train", NULL, NULL, NULL};
    const char *files[] = {"/nonexistent/x.jsonl"};
    assert_int_equal(ds_import_files(f->st, &o, files, 1, NULL), SRLM_ENOTFOUND);
    ds_import_opts bad = {"csv", "train", NULL, NULL, NULL};
    assert_int_equal(ds_import_files(f->st, &bad, files, 1, NULL), SRLM_EINVAL);
    assert_int_equal(count_of(f->st, "synth-arith", "train"), 20);
    assert_int_equal(count_of(f->st, "gsm8k", NULL), 0);
}

/* ---- jsonl mapping, round trip ---- */

static int collect(void *ctx, const Dataset__Record *r) {
    ds_recvec *rv = ctx;
    size_t len = dataset__record__get_packed_size(r);
    unsigned char *b = malloc(len + 1);
    dataset__record__pack(r, b);
    ds_recvec_push(rv, dataset__record__unpack(NULL, len, b));
    free(b);
    return 0;
}

static void assert_same_record(const Dataset__Record *a, const Dataset__Record *b) {
    Dataset__Record x = *a, y = *b;
    x.has_ordinal = y.has_ordinal = 0; /* the JSON form has no ordinal */
    size_t la = dataset__record__get_packed_size(&x), lb = dataset__record__get_packed_size(&y);
    assert_int_equal(la, lb);
    unsigned char *pa = malloc(la + 1), *pb = malloc(lb + 1);
    dataset__record__pack(&x, pa);
    dataset__record__pack(&y, pb);
    assert_memory_equal(pa, pb, la);
    free(pa);
    free(pb);
}

static void test_jsonl_map_and_roundtrip(void **state) {
    fixture *f = *state;
    const char *text =
        "{\"question\":\"2+2?\",\"final\":4,\"trace\":\"2+2=4\",\"uid\":\"a1\",\"extra\":[1]}\n"
        "\n"
        "{\"question\":\"hi\",\"conv\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}]}\n";
    char path[256];
    write_file(f, "kd.jsonl", text, strlen(text), path, sizeof path);
    ds_import_opts o = {"jsonl", "train", "kd", "prompt=question,answer=final,completion=trace,id=uid,messages=conv", NULL};
    const char *files[] = {path};
    size_t n;
    assert_int_equal(ds_import_files(f->st, &o, files, 1, &n), 0);
    assert_int_equal(n, 2);
    Dataset__Record *r;
    assert_int_equal(ds_get(f->st, "kd/train/a1", &r), 0);
    assert_string_equal(r->answer, "4");
    assert_string_equal(r->completion, "2+2=4");
    assert_string_equal(r->kind, "math");
    assert_string_equal(r->metadata_json, "{\"extra\":[1]}");
    ds_record_free(r);
    assert_int_equal(ds_get(f->st, "kd/train/1", &r), 0);
    assert_string_equal(r->kind, "chat");
    assert_int_equal(r->n_messages, 2);
    assert_string_equal(r->messages[1]->content, "yo");
    ds_record_free(r);
    /* a UTF-8 byte order mark and CRLF line ends are accepted */
    char bpath[256];
    const char bom[] = "\xEF\xBB\xBF{\"prompt\":\"x\",\"completion\":\"y\"}\r\n{\"prompt\":\"z\"}\r\n";
    write_file(f, "bom.jsonl", bom, sizeof bom - 1, bpath, sizeof bpath);
    ds_import_opts bo = {"jsonl", "train", "bom", NULL, "chat"};
    const char *bfiles[] = {bpath};
    assert_int_equal(ds_import_files(f->st, &bo, bfiles, 1, &n), 0);
    assert_int_equal(n, 2);
    ds_import_opts badmap = {"jsonl", "train", "kd", "promt=question", NULL};
    assert_int_equal(ds_import_files(f->st, &badmap, files, 1, NULL), SRLM_EINVAL);

    /* export -> JSON -> record gives back every field, for every format */
    assert_int_equal(ds_import_bundled(f->st, "humaneval", NULL), 0);
    assert_int_equal(ds_import_bundled(f->st, "mbpp-sanitized", NULL), 0);
    assert_int_equal(ds_import_bundled(f->st, "math500", NULL), 0);
    ds_synth_opts so = {"code", 30, "train", 5, 0, 0, NULL};
    assert_int_equal(ds_synth_import(f->st, &so, NULL), 0);
    ds_recvec all = {0};
    assert_int_equal(ds_foreach(f->st, NULL, NULL, collect, &all), 0);
    assert_int_equal(all.n, 2 + 2 + 164 + 427 + 500 + 30);
    for (size_t i = 0; i < all.n; i++) {
        char *js;
        assert_int_equal(ds_record_to_json(all.v[i], &js), 0);
        json_error_t je;
        json_t *o2 = json_loads(js, 0, &je);
        assert_non_null(o2);
        Dataset__Record *back;
        char err[200];
        assert_int_equal(ds_record_from_jsonobj(o2, &back, err, sizeof err), 0);
        assert_same_record(all.v[i], back);
        ds_record_free(back);
        json_decref(o2);
        free(js);
    }
    /* and re-importing the export as canonical JSONL keeps the ids and fields */
    FILE *fp = fopen(path, "w");
    for (size_t i = 0; i < all.n; i++) {
        if (strcmp(all.v[i]->source, "humaneval")) continue;
        char *js;
        ds_record_to_json(all.v[i], &js);
        fprintf(fp, "%s\n", js);
        free(js);
    }
    fclose(fp);
    ds_import_opts again = {"jsonl", "test", "humaneval", NULL, NULL};
    assert_int_equal(ds_import_files(f->st, &again, files, 1, &n), 0);
    assert_int_equal(n, 164);
    ds_recvec he = {0};
    assert_int_equal(ds_foreach(f->st, "humaneval", NULL, collect, &he), 0);
    size_t k = 0;
    for (size_t i = 0; i < all.n; i++)
        if (!strcmp(all.v[i]->source, "humaneval")) assert_same_record(all.v[i], he.v[k++]);
    assert_int_equal(k, 164);
    ds_recvec_free(&he);
    ds_recvec_free(&all);
}

/* ---- synthetic tasks ---- */

static void test_synth_deterministic(void **state) {
    (void)state;
    ds_synth_opts o = {"arith", 200, "train", 11, 3, 20, NULL};
    ds_recvec a = {0}, b = {0}, c = {0};
    assert_int_equal(ds_synth(&o, &a), 0);
    assert_int_equal(ds_synth(&o, &b), 0);
    o.seed = 12;
    assert_int_equal(ds_synth(&o, &c), 0);
    int differ = 0;
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(a.v[i]->prompt, b.v[i]->prompt);
        assert_string_equal(a.v[i]->solution, b.v[i]->solution);
        differ += strcmp(a.v[i]->prompt, c.v[i]->prompt) != 0;
        /* the solution's equations are right and end in "#### answer" */
        const char *s = a.v[i]->solution;
        long x, y, z, last = -1;
        char op;
        int steps = 0, off = 0, used;
        while (sscanf(s + off, "%ld%c%ld=%ld.%n", &x, &op, &y, &z, &used) == 4) {
            assert_int_equal(op == '+' ? x + y : op == '-' ? x - y : x * y, z);
            assert_true(z >= 0 && z <= 60);
            if (last >= 0) assert_int_equal(x, last);
            last = z;
            steps++;
            off += used;
            while (s[off] == ' ') off++;
        }
        assert_true(steps >= 1 && steps <= 3);
        char tail[32];
        snprintf(tail, sizeof tail, "\n#### %ld", last);
        assert_string_equal(s + off, tail);
        char ans[32];
        snprintf(ans, sizeof ans, "%ld", last);
        assert_string_equal(a.v[i]->answer, ans);
        assert_true(strlen(a.v[i]->prompt) < 200);
    }
    assert_true(differ > 150);
    ds_recvec_free(&a);
    ds_recvec_free(&b);
    ds_recvec_free(&c);

    ds_synth_opts co = {"code", 50, "train", 3, 0, 0, NULL};
    assert_int_equal(ds_synth(&co, &a), 0);
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(a.v[i]->kind, "code");
        assert_string_equal(a.v[i]->code_format, "mbpp");
        assert_int_equal(a.v[i]->n_test_list, 3);
        char def[96];
        snprintf(def, sizeof def, "def %s(", a.v[i]->entry_point);
        assert_non_null(strstr(a.v[i]->solution, def));
        assert_non_null(strstr(a.v[i]->test_list[0], a.v[i]->entry_point));
    }
    ds_recvec_free(&a);
    ds_synth_opts bad = {"poems", 5, "train", 3, 0, 0, NULL};
    assert_int_equal(ds_synth(&bad, &a), SRLM_EINVAL);
}

typedef struct {
    char **v;
    size_t n;
} prompts;

static int keep_prompt(void *ctx, const Dataset__Record *r) {
    prompts *p = ctx;
    p->v = realloc(p->v, (p->n + 1) * sizeof *p->v);
    p->v[p->n++] = strdup(r->prompt);
    return 0;
}

/* exclude_split: a training split synthesized after the test split shares no prompt with
 * it and still has n records; without it the small problem space (1 step, numbers <= 5)
 * repeats test prompts. A space too small to fill n is a named SRLM_EINVAL. */
static void test_synth_exclude_split(void **state) {
    fixture *f = *state;
    ds_synth_opts te = {"arith", 40, "test", 2, 1, 5, NULL};
    assert_int_equal(ds_synth_import(f->st, &te, NULL), 0);
    prompts t = {0}, tr = {0};
    assert_int_equal(ds_foreach(f->st, "synth-arith", "test", keep_prompt, &t), 0);
    ds_synth_opts plain = {"arith", 200, "train", 1, 1, 5, NULL};
    ds_recvec a = {0};
    assert_int_equal(ds_synth(&plain, &a), 0);
    size_t shared = 0;
    for (size_t i = 0; i < a.n; i++)
        for (size_t j = 0; j < t.n; j++) shared += !strcmp(a.v[i]->prompt, t.v[j]);
    assert_true(shared > 0); /* the case the option exists for */
    ds_recvec_free(&a);
    ds_synth_opts ex = plain;
    ex.exclude_split = "test";
    assert_int_equal(ds_synth(&ex, &a), SRLM_EINVAL); /* without a store the exclusion cannot hold */
    assert_int_equal(a.n, 0);
    size_t skipped = 0;
    assert_int_equal(ds_synth_import(f->st, &ex, &skipped), 0);
    assert_true(skipped >= shared);
    assert_int_equal(ds_foreach(f->st, "synth-arith", "train", keep_prompt, &tr), 0);
    assert_int_equal(tr.n, 200);
    for (size_t i = 0; i < tr.n; i++)
        for (size_t j = 0; j < t.n; j++) assert_string_not_equal(tr.v[i], t.v[j]);
    char *info = NULL;
    assert_int_equal(ds_import_info(f->st, "synth-arith", "train", &info), 0);
    assert_non_null(strstr(info, "\"exclude_split\":\"test\""));
    free(info);
    /* the same split as its own exclusion, and a space that cannot hold n new problems */
    ds_synth_opts self = ex;
    self.exclude_split = "train";
    assert_int_equal(ds_synth_import(f->st, &self, NULL), SRLM_EINVAL);
    ds_synth_opts typo = ex; /* a split that is not in the store excludes nothing: an error */
    typo.exclude_split = "tst";
    assert_int_equal(ds_synth_import(f->st, &typo, NULL), SRLM_ENOTFOUND);
    assert_non_null(strstr(srlm_last_error(), "generate the held-out split first"));
    ds_synth_opts all = {"arith", 20000, "all", 3, 1, 2, NULL}; /* every 1-step prompt over 1..2 */
    assert_int_equal(ds_synth_import(f->st, &all, NULL), 0);
    ds_synth_opts tiny = {"arith", 10, "more", 1, 1, 2, "all"};
    assert_int_equal(ds_synth_import(f->st, &tiny, NULL), SRLM_EINVAL);
    assert_non_null(strstr(srlm_last_error(), "problem space is too small"));
    for (size_t i = 0; i < t.n; i++) free(t.v[i]);
    for (size_t i = 0; i < tr.n; i++) free(tr.v[i]);
    free(t.v);
    free(tr.v);
}

/* ---- streams ---- */

static void test_selection_epochs(void **state) {
    fixture *f = *state;
    ds_synth_opts o = {"arith", 97, "train", 1, 3, 20, NULL};
    assert_int_equal(ds_synth_import(f->st, &o, NULL), 0);
    o.split = "test";
    o.n = 13;
    assert_int_equal(ds_synth_import(f->st, &o, NULL), 0);
    Dataset__StreamSpec spec = DATASET__STREAM_SPEC__INIT;
    char *splits[] = {"train"};
    spec.splits = splits;
    spec.n_splits = 1;
    spec.has_seed = 1;
    spec.seed = 99;
    ds_selection *a, *b;
    assert_int_equal(ds_selection_build(f->st, &spec, &a), 0);
    assert_int_equal(ds_selection_build(f->st, &spec, &b), 0);
    assert_int_equal(ds_selection_size(a), 97);
    /* same seed same order; each epoch a permutation; epochs differ */
    int same01 = 1;
    for (uint64_t e = 0; e < 3; e++) {
        char seen[97] = {0};
        for (uint64_t i = 0; i < 97; i++) {
            const char *id = ds_selection_at(a, e * 97 + i);
            assert_string_equal(id, ds_selection_at(b, e * 97 + i));
            int k = atoi(strrchr(id, '/') + 1);
            assert_true(k >= 0 && k < 97);
            assert_int_equal(seen[k], 0);
            seen[k] = 1;
            assert_non_null(strstr(id, "/train/"));
            if (e == 1 && strcmp(id, ds_selection_at(b, i))) same01 = 0;
        }
    }
    assert_false(same01);
    /* random access (far epochs, backwards) gives the same ids */
    assert_string_equal(ds_selection_at(a, 5 * 97 + 3), ds_selection_at(b, 5 * 97 + 3));
    assert_string_equal(ds_selection_at(a, 7), ds_selection_at(b, 7));
    ds_selection_free(b);
    /* different seed -> different order; no shuffle -> store order */
    spec.seed = 100;
    assert_int_equal(ds_selection_build(f->st, &spec, &b), 0);
    int diff = 0;
    for (uint64_t i = 0; i < 97; i++) diff += strcmp(ds_selection_at(a, i), ds_selection_at(b, i)) != 0;
    assert_true(diff > 50);
    ds_selection_free(b);
    spec.has_shuffle = 1;
    spec.shuffle = 0;
    assert_int_equal(ds_selection_build(f->st, &spec, &b), 0);
    assert_string_equal(ds_selection_at(b, 98), "synth-arith/train/1");
    ds_selection_free(b);
    ds_selection_free(a);
    /* spec keys normalize list order; empty selection is ENOTFOUND */
    char k1[256], k2[256];
    char *s1[] = {"b,a"}, *s2[] = {"a", "b", "a"};
    Dataset__StreamSpec x = DATASET__STREAM_SPEC__INIT, y = DATASET__STREAM_SPEC__INIT;
    x.sources = s1;
    x.n_sources = 1;
    y.sources = s2;
    y.n_sources = 3;
    ds_spec_key(&x, k1, sizeof k1);
    ds_spec_key(&y, k2, sizeof k2);
    assert_string_equal(k1, k2);
    char *none[] = {"nothing"};
    spec.splits = none;
    assert_int_equal(ds_selection_build(f->st, &spec, &a), SRLM_ENOTFOUND);
}

static void test_consumers(void **state) {
    fixture *f = *state;
    Dataset__ConsumerState *st;
    assert_int_equal(ds_consumer_get(f->st, "c", &st), SRLM_ENOTFOUND);
    Dataset__ConsumerState ns = DATASET__CONSUMER_STATE__INIT;
    ns.has_committed = 1;
    ns.committed = 5;
    assert_int_equal(ds_consumer_put(f->st, "c", &ns), 0);
    uint64_t s1, s2, s3, s4;
    assert_int_equal(ds_consumer_alloc(f->st, "c", "w1", 1, 10, &s1), 0);
    assert_int_equal(ds_consumer_alloc(f->st, "c", "w2", 1, 10, &s2), 0);
    assert_int_equal(ds_consumer_alloc(f->st, "c", "w1", 1, 10, &s3), 0); /* resend */
    assert_int_equal(ds_consumer_alloc(f->st, "c", "w1", 2, 10, &s4), 0);
    assert_int_equal(s1, 0);
    assert_int_equal(s2, 10);
    assert_int_equal(s3, 0);
    assert_int_equal(s4, 20);
    assert_int_equal(ds_consumer_get(f->st, "c", &st), 0);
    assert_int_equal(st->committed, 5);
    assert_int_equal(st->head, 30);
    dataset__consumer_state__free_unpacked(st, NULL);
    /* survives reopening */
    ds_close(f->st);
    assert_int_equal(ds_open(f->db, 0, &f->st), 0);
    assert_int_equal(ds_consumer_get(f->st, "c", &st), 0);
    assert_int_equal(st->head, 30);
    dataset__consumer_state__free_unpacked(st, NULL);
    assert_int_equal(ds_consumer_delete(f->st, "c"), 0);
    assert_int_equal(ds_consumer_get(f->st, "c", &st), SRLM_ENOTFOUND);
    assert_int_equal(ds_consumer_alloc(f->st, "c", "w1", 3, 10, &s1), SRLM_ENOTFOUND);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gsm8k_answer),
        cmocka_unit_test(test_last_boxed),
        cmocka_unit_test_setup_teardown(test_bundled_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jsonl_map_and_roundtrip, setup, teardown),
        cmocka_unit_test(test_synth_deterministic),
        cmocka_unit_test_setup_teardown(test_synth_exclude_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_selection_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consumers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
