/* client.c — dataset service client with lazy-pirate retries (see client.h). */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "store.h"
#include "util.h"

struct dsc_client {
    void *ctx, *sock;
    char *endpoint;
    int timeout_ms, retries;
    uint64_t next_request_id;
};

struct dsc_stream {
    dsc_client *c;
    char *consumer;
    Dataset__StreamSpec spec; /* owns sources/splits arrays */
    int shared;
    uint64_t position, size, seq;
    char client_id[96];
};

static int make_socket(dsc_client *c) {
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (!c->sock) return srlm_set_error(SRLM_EIO, "zmq_socket: %s", zmq_strerror(errno));
    int zero = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(c->sock, c->endpoint) != 0) {
        int rc = srlm_set_error(SRLM_EINVAL, "dataset client: cannot connect to %s: %s", c->endpoint, zmq_strerror(errno));
        zmq_close(c->sock);
        c->sock = NULL;
        return rc;
    }
    return 0;
}

int dsc_connect(const char *endpoint, const dsc_options *opt, dsc_client **out) {
    *out = NULL;
    dsc_client *c = srlm_xcalloc(1, sizeof *c);
    c->endpoint = srlm_xstrdup(endpoint);
    c->timeout_ms = opt && opt->timeout_ms > 0 ? opt->timeout_ms : 5000;
    c->retries = opt ? (opt->retries < 0 ? 0 : (opt->retries ? opt->retries : 3)) : 3;
    c->next_request_id = ((uint64_t)getpid() << 32) ^ (uint64_t)(srlm_wall_time() * 1000.0);
    c->ctx = zmq_ctx_new();
    int rc = make_socket(c);
    if (rc) { dsc_close(c); return rc; }
    *out = c;
    return 0;
}

void dsc_close(dsc_client *c) {
    if (!c) return;
    if (c->sock) zmq_close(c->sock);
    if (c->ctx) zmq_ctx_term(c->ctx);
    free(c->endpoint);
    free(c);
}

/* Send q (request_id assigned here) and wait for its reply, resending on silence.
 * *out: the decoded reply with status 0; a non-zero status becomes the return code. */
static int call(dsc_client *c, Dataset__Request *q, Dataset__Reply **out) {
    *out = NULL;
    q->has_schema_version = 1;
    q->schema_version = DS_SCHEMA_VERSION;
    q->has_request_id = 1;
    q->request_id = ++c->next_request_id;
    size_t len = dataset__request__get_packed_size(q);
    unsigned char *buf = srlm_xmalloc(len ? len : 1);
    dataset__request__pack(q, buf);
    int rc = SRLM_ETIMEOUT;
    for (int attempt = 0; attempt <= c->retries; attempt++) {
        if (!c->sock && (rc = make_socket(c))) break;
        if (zmq_send(c->sock, buf, len, 0) < 0) {
            rc = srlm_set_error(SRLM_EIO, "send to dataset server %s: %s", c->endpoint, zmq_strerror(errno));
            break;
        }
        double deadline = srlm_now() + c->timeout_ms / 1000.0;
        for (;;) {
            double left = deadline - srlm_now();
            if (left <= 0) break;
            zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
            int pr = zmq_poll(&it, 1, (long)(left * 1000.0) + 1);
            if (pr < 0) {
                if (errno == EINTR) { rc = srlm_set_error(SRLM_EINTR, "interrupted"); goto done; }
                rc = srlm_set_error(SRLM_EIO, "zmq_poll: %s", zmq_strerror(errno));
                goto done;
            }
            if (pr == 0) continue;
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, c->sock, 0) < 0) { zmq_msg_close(&m); continue; }
            while (zmq_msg_more(&m)) { /* unexpected extra frames: keep the last */
                zmq_msg_close(&m);
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, c->sock, 0) < 0) break;
            }
            Dataset__Reply *r = dataset__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
            zmq_msg_close(&m);
            if (!r) { SRLM_WARN("dataset server %s sent a malformed reply; ignored", c->endpoint); continue; }
            if (!r->has_request_id || r->request_id != q->request_id) { /* stale reply of an earlier try */
                dataset__reply__free_unpacked(r, NULL);
                continue;
            }
            if (r->has_status && r->status != 0) {
                int code = r->status < 0 && r->status >= SRLM_EINTR ? r->status : SRLM_EINTERNAL;
                rc = srlm_set_error(code, "dataset server %s: %s", c->endpoint, r->error ? r->error : srlm_strerror(code));
                dataset__reply__free_unpacked(r, NULL);
                goto done;
            }
            *out = r;
            rc = 0;
            goto done;
        }
        /* lazy pirate: the server is silent; drop the socket (and anything queued on it) */
        SRLM_WARN("dataset server %s did not answer within %d ms (try %d of %d)%s", c->endpoint, c->timeout_ms,
                  attempt + 1, c->retries + 1, attempt < c->retries ? "; reconnecting and resending" : "");
        zmq_close(c->sock);
        c->sock = NULL;
        rc = srlm_set_error(SRLM_ETIMEOUT, "dataset server %s did not answer (%d tries of %d ms)", c->endpoint,
                            attempt + 1, c->timeout_ms);
    }
done:
    free(buf);
    return rc;
}

int dsc_health(dsc_client *c, uint64_t *total) {
    Dataset__Request q;
    dataset__request__init(&q);
    q.has_type = 1;
    q.type = DATASET__REQUEST__TYPE__HEALTH;
    Dataset__Reply *r;
    int rc = call(c, &q, &r);
    if (rc) return rc;
    if (total) *total = r->total;
    dataset__reply__free_unpacked(r, NULL);
    return 0;
}

int dsc_stats_json(dsc_client *c, char **json) {
    Dataset__Request q;
    dataset__request__init(&q);
    q.has_type = 1;
    q.type = DATASET__REQUEST__TYPE__STATS;
    Dataset__Reply *r;
    int rc = call(c, &q, &r);
    if (rc) return rc;
    json_t *o = json_object(), *a = json_array();
    json_object_set_new(o, "total", json_integer((json_int_t)r->total));
    for (size_t i = 0; i < r->n_counts; i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:I}", "source", r->counts[i]->source ? r->counts[i]->source : "",
                                           "split", r->counts[i]->split ? r->counts[i]->split : "", "n",
                                           (json_int_t)r->counts[i]->n));
    json_object_set_new(o, "counts", a);
    *json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    dataset__reply__free_unpacked(r, NULL);
    return 0;
}

static void batch_take(dsc_batch *b, Dataset__Reply *r) {
    memset(b, 0, sizeof *b);
    b->reply_ = r;
    b->n = (int)r->n_records;
    b->records = r->records;
    b->position = r->position;
    b->stream_size = r->stream_size;
}

void dsc_batch_free(dsc_batch *b) {
    if (b && b->reply_) dataset__reply__free_unpacked(b->reply_, NULL);
    if (b) memset(b, 0, sizeof *b);
}

int dsc_get(dsc_client *c, const char *const *ids, int n, dsc_batch *out) {
    memset(out, 0, sizeof *out);
    if (n < 0 || n > DS_MAX_BATCH) return srlm_set_error(SRLM_EINVAL, "dsc_get: %d ids (max %d)", n, DS_MAX_BATCH);
    Dataset__Request q;
    dataset__request__init(&q);
    q.has_type = 1;
    q.type = DATASET__REQUEST__TYPE__GET;
    q.ids = (char **)ids;
    q.n_ids = (size_t)n;
    Dataset__Reply *r;
    int rc = call(c, &q, &r);
    if (rc) return rc;
    if ((int)r->n_records != n) {
        dataset__reply__free_unpacked(r, NULL);
        return srlm_set_error(SRLM_EFORMAT, "dataset server %s answered %zu records for %d ids", c->endpoint,
                              r->n_records, n);
    }
    batch_take(out, r);
    return 0;
}

static void spec_list(const char *s, char ***arr, size_t *n) {
    if (!s) return;
    char *d = srlm_xstrdup(s), *save = NULL;
    for (char *t = strtok_r(d, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (*t) ds_push_str(arr, n, t);
    free(d);
}

int dsc_stream_open(dsc_client *c, const char *consumer, const dsc_stream_spec *spec, dsc_stream **out) {
    *out = NULL;
    if (!consumer || !*consumer) return srlm_set_error(SRLM_EINVAL, "dsc_stream_open: empty consumer name");
    dsc_stream *s = srlm_xcalloc(1, sizeof *s);
    s->c = c;
    s->consumer = srlm_xstrdup(consumer);
    dataset__stream_spec__init(&s->spec);
    spec_list(spec->sources, &s->spec.sources, &s->spec.n_sources);
    spec_list(spec->splits, &s->spec.splits, &s->spec.n_splits);
    s->spec.has_seed = 1;
    s->spec.seed = spec->seed;
    s->spec.has_shuffle = 1;
    s->spec.shuffle = !spec->no_shuffle;
    s->shared = spec->shared;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    /* unique per stream object: host, pid and 64 random bits */
    uint64_t rnd = (uint64_t)(srlm_wall_time() * 1e9) ^ (uint64_t)(uintptr_t)s;
    FILE *ur = fopen("/dev/urandom", "rb");
    if (ur) {
        if (fread(&rnd, sizeof rnd, 1, ur) != 1) rnd ^= (uint64_t)(uintptr_t)c;
        fclose(ur);
    }
    snprintf(s->client_id, sizeof s->client_id, "%s-%d-%016llx", host, (int)getpid(), (unsigned long long)rnd);
    Dataset__Request q;
    dataset__request__init(&q);
    q.has_type = 1;
    q.type = DATASET__REQUEST__TYPE__OPEN;
    q.consumer = s->consumer;
    q.stream = &s->spec;
    q.has_reset = 1;
    q.reset = spec->reset != 0;
    Dataset__Reply *r;
    int rc = call(c, &q, &r);
    if (rc) { dsc_stream_close(s); return rc; }
    s->position = r->committed;
    s->size = r->stream_size;
    dataset__reply__free_unpacked(r, NULL);
    *out = s;
    return 0;
}

void dsc_stream_close(dsc_stream *s) {
    if (!s) return;
    for (size_t i = 0; i < s->spec.n_sources; i++) free(s->spec.sources[i]);
    for (size_t i = 0; i < s->spec.n_splits; i++) free(s->spec.splits[i]);
    free(s->spec.sources);
    free(s->spec.splits);
    free(s->consumer);
    free(s);
}

int dsc_stream_next(dsc_stream *s, int count, dsc_batch *out) {
    memset(out, 0, sizeof *out);
    if (count < 1 || count > DS_MAX_BATCH) return srlm_set_error(SRLM_EINVAL, "dsc_stream_next: count %d not in 1..%d", count, DS_MAX_BATCH);
    Dataset__Request q;
    dataset__request__init(&q);
    q.has_type = 1;
    q.type = DATASET__REQUEST__TYPE__NEXT;
    q.consumer = s->consumer;
    q.stream = &s->spec;
    q.has_count = 1;
    q.count = (uint32_t)count;
    if (s->shared) {
        q.client_id = s->client_id;
        q.has_seq = 1;
        q.seq = ++s->seq;
    } else {
        q.has_position = 1;
        q.position = s->position;
    }
    Dataset__Reply *r;
    int rc = call(s->c, &q, &r);
    if (rc) return rc;
    if ((int)r->n_records != count || (!s->shared && r->position != s->position)) {
        dataset__reply__free_unpacked(r, NULL);
        return srlm_set_error(SRLM_EFORMAT, "dataset server %s: NEXT answered the wrong range", s->c->endpoint);
    }
    batch_take(out, r);
    s->size = r->stream_size;
    if (!s->shared) s->position += (uint64_t)count;
    else s->position = r->position + (uint64_t)count;
    return 0;
}

uint64_t dsc_stream_position(const dsc_stream *s) { return s->position; }
uint64_t dsc_stream_size(const dsc_stream *s) { return s->size; }

int dsc_stream_seek(dsc_stream *s, uint64_t position) {
    if (s->shared) return srlm_set_error(SRLM_EINVAL, "dsc_stream_seek: shared streams are positioned by the server");
    s->position = position;
    return 0;
}

int dsc_stream_commit(dsc_stream *s, uint64_t position) {
    Dataset__Request q;
    dataset__request__init(&q);
    q.has_type = 1;
    q.type = DATASET__REQUEST__TYPE__COMMIT;
    q.consumer = s->consumer;
    q.has_position = 1;
    q.position = position;
    Dataset__Reply *r;
    int rc = call(s->c, &q, &r);
    if (rc) return rc;
    dataset__reply__free_unpacked(r, NULL);
    return 0;
}

int dsc_stream_cursor(dsc_stream *s, uint64_t *committed, uint64_t *head) {
    Dataset__Request q;
    dataset__request__init(&q);
    q.has_type = 1;
    q.type = DATASET__REQUEST__TYPE__POSITION;
    q.consumer = s->consumer;
    Dataset__Reply *r;
    int rc = call(s->c, &q, &r);
    if (rc) return rc;
    if (committed) *committed = r->committed;
    if (head) *head = r->head;
    dataset__reply__free_unpacked(r, NULL);
    return 0;
}
