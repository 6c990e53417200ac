/* test_dataset_server.c — the dataset service and its client in one process (server on a
 * thread, ipc://): health, stats, get, streams (resume from the committed cursor, binding,
 * shared mode), malformed socket messages, and the client's report of a silent server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "client.h"
#include "import.h"
#include "server.h"
#include "store.h"
#include "util.h"

typedef struct {
    char dir[64], db[96], ep[128];
    pthread_t th;
    volatile sig_atomic_t stop;
    int rc;
} fixture;

static void *serve_thread(void *arg) {
    fixture *f = arg;
    f->rc = ds_serve(f->db, f->ep, DS_NOSYNC, &f->stop);
    return NULL;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/srlm_test_dsserver_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->db, sizeof f->db, "%s/db", f->dir);
    snprintf(f->ep, sizeof f->ep, "ipc://%s/ds.sock", f->dir);
    ds_store *st;
    if (ds_open(f->db, DS_NOSYNC, &st)) return -1;
    ds_synth_opts a = {"arith", 50, "train", 1, 3, 20, NULL}, c = {"code", 20, "train", 1, 0, 0, NULL}, t = {"arith", 10, "test", 2, 3, 20, NULL};
    if (ds_synth_import(st, &a, NULL) || ds_synth_import(st, &c, NULL) || ds_synth_import(st, &t, NULL)) return -1;
    ds_close(st);
    pthread_create(&f->th, NULL, serve_thread, f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    f->stop = 1;
    pthread_join(f->th, NULL);
    assert_int_equal(f->rc, 0);
    srlm_rm_rf(f->dir);
    free(f);
    return 0;
}

static dsc_client *connect_client(fixture *f) {
    dsc_client *c;
    dsc_options o = {2000, 2};
    assert_int_equal(dsc_connect(f->ep, &o, &c), 0);
    return c;
}

static void test_health_stats_get(void **state) {
    fixture *f = *state;
    dsc_client *c = connect_client(f);
    uint64_t total = 0;
    assert_int_equal(dsc_health(c, &total), 0);
    assert_int_equal(total, 80);
    char *js;
    assert_int_equal(dsc_stats_json(c, &js), 0);
    assert_non_null(strstr(js, "\"total\":80"));
    assert_non_null(strstr(js, "{\"source\":\"synth-code\",\"split\":\"train\",\"n\":20}"));
    free(js);
    const char *ids[] = {"synth-code/train/3", "synth-arith/test/9"};
    dsc_batch b;
    assert_int_equal(dsc_get(c, ids, 2, &b), 0);
    assert_int_equal(b.n, 2);
    assert_string_equal(b.records[0]->id, ids[0]);
    assert_string_equal(b.records[1]->id, ids[1]);
    /* the record JSON through the client equals the store's */
    ds_store *st;
    assert_int_equal(ds_open(f->db, DS_RDONLY, &st), 0);
    Dataset__Record *r;
    assert_int_equal(ds_get(st, ids[0], &r), 0);
    char *j1, *j2;
    assert_int_equal(ds_record_to_json(r, &j1), 0);
    assert_int_equal(ds_record_to_json(b.records[0], &j2), 0);
    assert_string_equal(j1, j2);
    assert_non_null(strstr(j2, "\"test_list\":[\"assert "));
    free(j1);
    free(j2);
    ds_record_free(r);
    ds_close(st);
    dsc_batch_free(&b);
    const char *bad[] = {"synth-code/train/3", "nope/1"};
    assert_int_equal(dsc_get(c, bad, 2, &b), SRLM_ENOTFOUND);
    assert_non_null(strstr(srlm_last_error(), "nope/1"));
    dsc_close(c);
}

static void read_ids(dsc_stream *s, int n, int batch, char ids[][64]) {
    for (int done = 0; done < n;) {
        int want = n - done < batch ? n - done : batch;
        dsc_batch b;
        assert_int_equal(dsc_stream_next(s, want, &b), 0);
        for (int i = 0; i < b.n; i++) snprintf(ids[done + i], 64, "%s", b.records[i]->id);
        done += b.n;
        dsc_batch_free(&b);
    }
}

static void test_stream_resume(void **state) {
    fixture *f = *state;
    dsc_client *c = connect_client(f);
    dsc_stream_spec spec = {.sources = "synth-arith", .splits = "train", .seed = 5};
    dsc_stream *s;
    assert_int_equal(dsc_stream_open(c, "trainer", &spec, &s), 0);
    assert_int_equal(dsc_stream_size(s), 50);
    assert_int_equal(dsc_stream_position(s), 0);
    static char a[160][64], b[160][64];
    read_ids(s, 60, 7, a);
    /* epoch 0 covers every record once */
    for (int i = 0; i < 50; i++)
        for (int j = 0; j < i; j++) assert_string_not_equal(a[i], a[j]);
    assert_int_equal(dsc_stream_commit(s, 40), 0);
    uint64_t committed, head;
    assert_int_equal(dsc_stream_cursor(s, &committed, &head), 0);
    assert_int_equal(committed, 40);
    dsc_stream_close(s);
    /* reopen: resumes at the committed cursor, same records */
    assert_int_equal(dsc_stream_open(c, "trainer", &spec, &s), 0);
    assert_int_equal(dsc_stream_position(s), 40);
    read_ids(s, 20, 20, b);
    for (int i = 0; i < 20; i++) assert_string_equal(b[i], a[40 + i]);
    /* seek back (trainer resuming a checkpoint) */
    assert_int_equal(dsc_stream_seek(s, 3), 0);
    read_ids(s, 2, 2, b);
    assert_string_equal(b[0], a[3]);
    assert_string_equal(b[1], a[4]);
    dsc_stream_close(s);
    /* a consumer is bound to its stream */
    dsc_stream_spec other = {.sources = "synth-code", .seed = 5};
    assert_int_equal(dsc_stream_open(c, "trainer", &other, &s), SRLM_EINVAL);
    other.reset = 1;
    assert_int_equal(dsc_stream_open(c, "trainer", &other, &s), 0);
    assert_int_equal(dsc_stream_position(s), 0);
    assert_int_equal(dsc_stream_size(s), 20);
    dsc_stream_close(s);
    /* a second consumer of the same spec sees the same order */
    assert_int_equal(dsc_stream_open(c, "eval", &spec, &s), 0);
    read_ids(s, 60, 60, b);
    for (int i = 0; i < 60; i++) assert_string_equal(b[i], a[i]);
    dsc_stream_close(s);
    dsc_stream_spec empty = {.sources = "nothing"};
    assert_int_equal(dsc_stream_open(c, "x", &empty, &s), SRLM_ENOTFOUND);
    dsc_close(c);
}

static void test_shared_stream(void **state) {
    fixture *f = *state;
    dsc_client *c1 = connect_client(f), *c2 = connect_client(f);
    dsc_stream_spec spec = {.sources = "synth-code", .seed = 9, .shared = 1};
    dsc_stream *s1, *s2;
    assert_int_equal(dsc_stream_open(c1, "gen", &spec, &s1), 0);
    assert_int_equal(dsc_stream_open(c2, "gen", &spec, &s2), 0);
    int seen[20] = {0};
    for (int k = 0; k < 8; k++) { /* 8 batches of 5 = 2 epochs over 20 records */
        dsc_batch b;
        assert_int_equal(dsc_stream_next(k % 2 ? s2 : s1, 5, &b), 0);
        assert_int_equal(b.position, (uint64_t)k * 5);
        for (int i = 0; i < b.n; i++) seen[atoi(strrchr(b.records[i]->id, '/') + 1)]++;
        dsc_batch_free(&b);
    }
    for (int i = 0; i < 20; i++) assert_int_equal(seen[i], 2);
    uint64_t committed, head;
    assert_int_equal(dsc_stream_cursor(s1, &committed, &head), 0);
    assert_int_equal(head, 40);
    assert_int_equal(dsc_stream_seek(s1, 0), SRLM_EINVAL);
    dsc_stream_close(s1);
    dsc_stream_close(s2);
    dsc_close(c1);
    dsc_close(c2);
}

/* Send raw frames on a DEALER (or REQ) socket, return the reply payload decoded. */
static Dataset__Reply *raw_call(void *sock, const void *const *frames, const size_t *lens, int n) {
    for (int i = 0; i < n; i++) assert_true(zmq_send(sock, frames[i], lens[i], i < n - 1 ? ZMQ_SNDMORE : 0) >= 0);
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 3000) <= 0) return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, sock, 0) >= 0);
    while (zmq_msg_more(&m)) {
        zmq_msg_close(&m);
        zmq_msg_init(&m);
        zmq_msg_recv(&m, sock, 0);
    }
    Dataset__Reply *r = dataset__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    return r;
}

static void test_malformed_messages(void **state) {
    fixture *f = *state;
    void *ctx = zmq_ctx_new();
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(d, f->ep), 0);
    /* garbage bytes */
    unsigned char junk[64];
    srlm_rng r;
    srlm_rng_seed(&r, 3);
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)srlm_rng_u64(&r);
    junk[0] = 0xff;
    const void *fr[3] = {junk};
    size_t ln[3] = {sizeof junk};
    Dataset__Reply *rep = raw_call(d, fr, ln, 1);
    assert_non_null(rep);
    assert_int_equal(rep->status, SRLM_EFORMAT);
    dataset__reply__free_unpacked(rep, NULL);
    /* wrong schema: a Record where a Request belongs (decodes, but no request type) */
    Dataset__Record rec = DATASET__RECORD__INIT;
    rec.id = "x";
    rec.prompt = "hello";
    unsigned char pb[64];
    size_t pl = dataset__record__pack(&rec, pb);
    fr[0] = pb;
    ln[0] = pl;
    rep = raw_call(d, fr, ln, 1);
    assert_non_null(rep);
    assert_true(rep->status == SRLM_EINVAL || rep->status == SRLM_EFORMAT);
    dataset__reply__free_unpacked(rep, NULL);
    /* empty payload: decodes as a Request with no type */
    fr[0] = "";
    ln[0] = 0;
    rep = raw_call(d, fr, ln, 1);
    assert_non_null(rep);
    assert_int_equal(rep->status, SRLM_EINVAL);
    dataset__reply__free_unpacked(rep, NULL);
    /* NEXT without consumer; NEXT with a huge count */
    Dataset__Request q = DATASET__REQUEST__INIT;
    q.has_type = 1;
    q.type = DATASET__REQUEST__TYPE__NEXT;
    unsigned char qb[256];
    fr[0] = qb;
    ln[0] = dataset__request__pack(&q, qb);
    rep = raw_call(d, fr, ln, 1);
    assert_int_equal(rep->status, SRLM_EINVAL);
    dataset__reply__free_unpacked(rep, NULL);
    Dataset__StreamSpec spec = DATASET__STREAM_SPEC__INIT;
    q.consumer = "c";
    q.stream = &spec;
    q.has_count = 1;
    q.count = 1u << 30;
    q.has_position = 1;
    ln[0] = dataset__request__pack(&q, qb);
    rep = raw_call(d, fr, ln, 1);
    assert_int_equal(rep->status, SRLM_EINVAL);
    dataset__reply__free_unpacked(rep, NULL);
    /* unknown enum value */
    unsigned char bad_type[] = {0x18, 0x63}; /* field 3 (type) = 99 */
    fr[0] = bad_type;
    ln[0] = sizeof bad_type;
    rep = raw_call(d, fr, ln, 1);
    assert_non_null(rep);
    assert_true(rep->status < 0);
    dataset__reply__free_unpacked(rep, NULL);
    /* too many frames: dropped without a reply, the server keeps going */
    const void *many[20];
    size_t ml[20];
    for (int i = 0; i < 20; i++) { many[i] = "x"; ml[i] = 1; }
    for (int i = 0; i < 20; i++) zmq_send(d, many[i], ml[i], i < 19 ? ZMQ_SNDMORE : 0);
    zmq_close(d);
    /* a REQ client (empty delimiter frame) gets a proper answer */
    void *req = zmq_socket(ctx, ZMQ_REQ);
    zmq_setsockopt(req, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(req, f->ep), 0);
    Dataset__Request h = DATASET__REQUEST__INIT;
    h.has_type = 1;
    h.type = DATASET__REQUEST__TYPE__HEALTH;
    h.has_request_id = 1;
    h.request_id = 77;
    fr[0] = qb;
    ln[0] = dataset__request__pack(&h, qb);
    rep = raw_call(req, fr, ln, 1);
    assert_non_null(rep);
    assert_int_equal(rep->status, 0);
    assert_int_equal(rep->request_id, 77);
    assert_int_equal(rep->total, 80);
    assert_non_null(strstr(rep->server, "srlm-dataset"));
    dataset__reply__free_unpacked(rep, NULL);
    zmq_close(req);
    zmq_ctx_term(ctx);
    /* and the regular client still works */
    dsc_client *c = connect_client(f);
    assert_int_equal(dsc_health(c, NULL), 0);
    dsc_close(c);
}

static void test_silent_server(void **state) {
    fixture *f = *state;
    char ep[160];
    snprintf(ep, sizeof ep, "ipc://%s/nobody.sock", f->dir);
    dsc_client *c;
    dsc_options o = {100, 2};
    assert_int_equal(dsc_connect(ep, &o, &c), 0);
    assert_int_equal(dsc_health(c, NULL), SRLM_ETIMEOUT);
    assert_non_null(strstr(srlm_last_error(), ep));
    assert_non_null(strstr(srlm_last_error(), "3 tries"));
    dsc_close(c);
    assert_int_equal(dsc_connect("bogus://x", NULL, &c), SRLM_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_stats_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_server, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
