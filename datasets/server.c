/* server.c — the dataset service (see server.h). */
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "util.h"

#define MAX_FRAMES 16
#define SEL_SLOTS 16

typedef struct {
    char key[1024];
    ds_selection *sel;
    uint64_t used; /* LRU tick */
} sel_slot;

typedef struct {
    ds_store *st;
    sel_slot sels[SEL_SLOTS];
    uint64_t tick;
    /* reply assembly */
    unsigned char *buf;
    size_t len, cap;
} server;

static void buf_reserve(server *s, size_t extra) {
    if (s->len + extra <= s->cap) return;
    s->cap = (s->len + extra) * 2;
    s->buf = srlm_xrealloc(s->buf, s->cap);
}

static void buf_varint(server *s, uint64_t v) {
    buf_reserve(s, 10);
    while (v >= 0x80) {
        s->buf[s->len++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    s->buf[s->len++] = (unsigned char)v;
}

/* Append `records` (field 5) entries as raw packed bytes: protobuf lets repeated fields
 * follow the rest of the message, so stored records are served without decoding. */
static void buf_record(server *s, const void *data, size_t len) {
    buf_reserve(s, len + 12);
    s->buf[s->len++] = (5 << 3) | 2;
    buf_varint(s, len);
    memcpy(s->buf + s->len, data, len);
    s->len += len;
}

static void reply_init(Dataset__Reply *r, const Dataset__Request *q) {
    dataset__reply__init(r);
    r->has_schema_version = 1;
    r->schema_version = DS_SCHEMA_VERSION;
    if (q && q->has_request_id) {
        r->has_request_id = 1;
        r->request_id = q->request_id;
    }
}

/* Start the reply buffer with the packed header message. */
static void reply_pack(server *s, const Dataset__Reply *r) {
    s->len = 0;
    size_t n = dataset__reply__get_packed_size(r);
    buf_reserve(s, n + 1);
    s->len = dataset__reply__pack(r, s->buf);
}

static void reply_error(server *s, const Dataset__Request *q, int code, const char *msg) {
    Dataset__Reply r;
    reply_init(&r, q);
    r.has_status = 1;
    r.status = code;
    r.error = (char *)msg;
    reply_pack(s, &r);
}

/* Selection for a spec, cached (rebuilt when the store's generation changed). */
static int get_selection(server *s, const Dataset__StreamSpec *spec, ds_selection **out) {
    char key[1024];
    ds_spec_key(spec, key, sizeof key);
    uint64_t gen = ds_generation(s->st);
    int victim = 0;
    for (int i = 0; i < SEL_SLOTS; i++) {
        sel_slot *sl = &s->sels[i];
        if (sl->sel && !strcmp(sl->key, key)) {
            if (ds_selection_generation(sl->sel) == gen) {
                sl->used = ++s->tick;
                *out = sl->sel;
                return 0;
            }
            ds_selection_free(sl->sel);
            sl->sel = NULL;
            victim = i;
            break;
        }
        if (!sl->sel || (s->sels[victim].sel && sl->used < s->sels[victim].used)) victim = i;
    }
    ds_selection *sel;
    int rc = ds_selection_build(s->st, spec, &sel);
    if (rc) return rc;
    sel_slot *sl = &s->sels[victim];
    ds_selection_free(sl->sel);
    sl->sel = sel;
    snprintf(sl->key, sizeof sl->key, "%s", key);
    sl->used = ++s->tick;
    *out = sel;
    return 0;
}

/* Check the persisted binding of a consumer against spec (0 if unknown or equal). */
static int check_binding(server *s, const char *consumer, const Dataset__StreamSpec *spec,
                         Dataset__ConsumerState **st_out) {
    Dataset__ConsumerState *st = NULL;
    int rc = ds_consumer_get(s->st, consumer, &st);
    if (rc == SRLM_ENOTFOUND) { *st_out = NULL; return 0; }
    if (rc) return rc;
    if (st->stream) {
        char a[1024], b[1024];
        ds_spec_key(st->stream, a, sizeof a);
        ds_spec_key(spec, b, sizeof b);
        if (strcmp(a, b)) {
            dataset__consumer_state__free_unpacked(st, NULL);
            return srlm_set_error(SRLM_EINVAL, "consumer '%s' is bound to stream %s, not %s (open with reset)",
                                  consumer, a, b);
        }
    }
    *st_out = st;
    return 0;
}

static int handle_next(server *s, const Dataset__Request *q) {
    if (!q->consumer || !*q->consumer || !q->stream)
        return srlm_set_error(SRLM_EINVAL, "NEXT needs consumer and stream");
    uint32_t count = q->has_count ? q->count : 1;
    if (count < 1 || count > DS_MAX_BATCH) return srlm_set_error(SRLM_EINVAL, "NEXT count %u not in 1..%d", count, DS_MAX_BATCH);
    ds_selection *sel;
    int rc = get_selection(s, q->stream, &sel);
    if (rc) return rc;
    uint64_t pos;
    if (q->has_position) {
        Dataset__ConsumerState *st = NULL;
        if ((rc = check_binding(s, q->consumer, q->stream, &st))) return rc;
        if (st) dataset__consumer_state__free_unpacked(st, NULL);
        pos = q->position;
    } else {
        if (!q->client_id || !*q->client_id || !q->has_seq)
            return srlm_set_error(SRLM_EINVAL, "shared-mode NEXT needs client_id and seq");
        Dataset__ConsumerState *st = NULL;
        if ((rc = check_binding(s, q->consumer, q->stream, &st))) return rc;
        if (!st) return srlm_set_error(SRLM_ENOTFOUND, "unknown consumer '%s' (OPEN it first)", q->consumer);
        dataset__consumer_state__free_unpacked(st, NULL);
        if ((rc = ds_consumer_alloc(s->st, q->consumer, q->client_id, q->seq, count, &pos))) return rc;
    }
    if (pos > UINT64_MAX - count) return srlm_set_error(SRLM_EINVAL, "position overflow");
    Dataset__Reply r;
    reply_init(&r, q);
    r.has_status = 1;
    r.has_position = 1;
    r.position = pos;
    r.has_stream_size = 1;
    r.stream_size = ds_selection_size(sel);
    reply_pack(s, &r);
    if ((rc = ds_read_begin(s->st))) return rc;
    for (uint32_t i = 0; i < count; i++) {
        const char *id = ds_selection_at(sel, pos + i);
        const void *data;
        size_t len;
        if ((rc = ds_read_packed(s->st, id, &data, &len))) break;
        buf_record(s, data, len);
    }
    ds_read_end(s->st);
    return rc;
}

static int handle_get(server *s, const Dataset__Request *q) {
    if (q->n_ids > DS_MAX_BATCH) return srlm_set_error(SRLM_EINVAL, "GET of %zu ids (max %d)", q->n_ids, DS_MAX_BATCH);
    Dataset__Reply r;
    reply_init(&r, q);
    r.has_status = 1;
    reply_pack(s, &r);
    int rc = ds_read_begin(s->st);
    if (rc) return rc;
    for (size_t i = 0; i < q->n_ids; i++) {
        const void *data;
        size_t len;
        if (!q->ids[i] || (rc = ds_read_packed(s->st, q->ids[i] ? q->ids[i] : "", &data, &len))) {
            if (!q->ids[i]) rc = srlm_set_error(SRLM_EINVAL, "empty id");
            break;
        }
        buf_record(s, data, len);
    }
    ds_read_end(s->st);
    return rc;
}

static int handle_open(server *s, const Dataset__Request *q) {
    if (!q->consumer || !*q->consumer || !q->stream) return srlm_set_error(SRLM_EINVAL, "OPEN needs consumer and stream");
    int rc;
    if (q->has_reset && q->reset && (rc = ds_consumer_delete(s->st, q->consumer))) return rc;
    ds_selection *sel;
    if ((rc = get_selection(s, q->stream, &sel))) return rc;
    Dataset__ConsumerState *st = NULL;
    if ((rc = check_binding(s, q->consumer, q->stream, &st))) return rc;
    Dataset__Reply r;
    reply_init(&r, q);
    r.has_status = 1;
    r.has_stream_size = 1;
    r.stream_size = ds_selection_size(sel);
    r.has_committed = r.has_head = 1;
    if (st) {
        r.committed = st->committed;
        r.head = st->head;
        dataset__consumer_state__free_unpacked(st, NULL);
    } else {
        Dataset__ConsumerState ns;
        dataset__consumer_state__init(&ns);
        ns.has_schema_version = 1;
        ns.schema_version = DS_SCHEMA_VERSION;
        ns.stream = q->stream;
        ns.has_committed = ns.has_head = ns.has_updated = 1;
        ns.updated = srlm_wall_time();
        if ((rc = ds_consumer_put(s->st, q->consumer, &ns))) return rc;
        SRLM_INFO("new consumer '%s' on a stream of %llu records", q->consumer, (unsigned long long)r.stream_size);
    }
    reply_pack(s, &r);
    return 0;
}

static int handle_commit(server *s, const Dataset__Request *q) {
    if (!q->consumer || !*q->consumer || !q->has_position)
        return srlm_set_error(SRLM_EINVAL, "COMMIT needs consumer and position");
    Dataset__ConsumerState *st;
    int rc = ds_consumer_get(s->st, q->consumer, &st);
    if (rc) return rc;
    st->has_committed = 1;
    st->committed = q->position;
    st->has_updated = 1;
    st->updated = srlm_wall_time();
    rc = ds_consumer_put(s->st, q->consumer, st);
    Dataset__Reply r;
    reply_init(&r, q);
    r.has_status = r.has_committed = r.has_head = 1;
    r.committed = st->committed;
    r.head = st->head;
    dataset__consumer_state__free_unpacked(st, NULL);
    if (rc) return rc;
    reply_pack(s, &r);
    return 0;
}

static int handle_position(server *s, const Dataset__Request *q) {
    if (!q->consumer || !*q->consumer) return srlm_set_error(SRLM_EINVAL, "POSITION needs consumer");
    Dataset__ConsumerState *st;
    int rc = ds_consumer_get(s->st, q->consumer, &st);
    if (rc) return rc;
    Dataset__Reply r;
    reply_init(&r, q);
    r.has_status = r.has_committed = r.has_head = 1;
    r.committed = st->committed;
    r.head = st->head;
    dataset__consumer_state__free_unpacked(st, NULL);
    reply_pack(s, &r);
    return 0;
}

static int handle_stats(server *s, const Dataset__Request *q, int health) {
    Dataset__Reply r;
    reply_init(&r, q);
    r.has_status = r.has_total = 1;
    Dataset__Count **c = NULL;
    size_t n = 0;
    char ver[64];
    if (health) {
        r.total = ds_total(s->st);
        snprintf(ver, sizeof ver, "srlm-dataset %s", SRLM_VERSION);
        r.server = ver;
    } else {
        int rc = ds_counts(s->st, &c, &n, &r.total);
        if (rc) return rc;
        r.counts = c;
        r.n_counts = n;
    }
    reply_pack(s, &r);
    ds_counts_free(c, n);
    return 0;
}

static void handle(server *s, const unsigned char *data, size_t len) {
    Dataset__Request *q = dataset__request__unpack(NULL, len, data);
    if (!q) {
        SRLM_WARN("malformed request (%zu bytes): not a dataset.Request; answered with an error", len);
        reply_error(s, NULL, SRLM_EFORMAT, "malformed request: not a dataset.Request protobuf");
        return;
    }
    int rc;
    int type = q->has_type ? (int)q->type : -1;
    switch (type) {
    case DATASET__REQUEST__TYPE__HEALTH: rc = handle_stats(s, q, 1); break;
    case DATASET__REQUEST__TYPE__STATS: rc = handle_stats(s, q, 0); break;
    case DATASET__REQUEST__TYPE__GET: rc = handle_get(s, q); break;
    case DATASET__REQUEST__TYPE__OPEN: rc = handle_open(s, q); break;
    case DATASET__REQUEST__TYPE__NEXT: rc = handle_next(s, q); break;
    case DATASET__REQUEST__TYPE__COMMIT: rc = handle_commit(s, q); break;
    case DATASET__REQUEST__TYPE__POSITION: rc = handle_position(s, q); break;
    default: rc = srlm_set_error(SRLM_EINVAL, "request without a known type (%d)", type);
    }
    if (rc) {
        if (rc == SRLM_EINVAL || rc == SRLM_EFORMAT)
            SRLM_WARN("bad request (type %d, consumer %s): %s", type, q->consumer ? q->consumer : "-", srlm_last_error());
        reply_error(s, q, rc, srlm_last_error());
    }
    dataset__request__free_unpacked(q, NULL);
}

int ds_serve(const char *db_path, const char *endpoint, int flags, volatile sig_atomic_t *stop) {
    server s = {0};
    int rc = ds_open(db_path, flags & ~DS_RDONLY, &s.st);
    if (rc) return rc;
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_ROUTER);
    int zero = 0, one = 1;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one); /* vanished peers: error, not block */
    if (zmq_bind(sock, endpoint) != 0) {
        rc = srlm_set_error(SRLM_EIO, "dataset server: cannot bind %s: %s", endpoint, zmq_strerror(errno));
        zmq_close(sock);
        zmq_ctx_term(ctx);
        ds_close(s.st);
        return rc;
    }
    SRLM_INFO("dataset server on %s serving %s (%llu records)", endpoint, db_path, (unsigned long long)ds_total(s.st));
    zmq_msg_t frames[MAX_FRAMES];
    uint64_t served = 0;
    while (!*stop) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        int pr = zmq_poll(&it, 1, 200);
        if (pr < 0) {
            if (errno == EINTR) continue;
            rc = srlm_set_error(SRLM_EIO, "zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        if (!(it.revents & ZMQ_POLLIN)) continue;
        /* drain what is ready, up to a bound, before polling again */
        for (int burst = 0; burst < 64 && !*stop; burst++) {
            int nf = 0, more = 1, ok = 1;
            while (more) {
                zmq_msg_t m;
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, sock, burst ? ZMQ_DONTWAIT : 0) < 0) {
                    zmq_msg_close(&m);
                    ok = 0;
                    break;
                }
                more = zmq_msg_more(&m);
                if (nf < MAX_FRAMES) frames[nf++] = m;
                else { zmq_msg_close(&m); ok = -1; }
            }
            if (!ok && nf == 0) break; /* nothing more queued */
            if (ok > 0 && nf >= 2) {
                handle(&s, zmq_msg_data(&frames[nf - 1]), zmq_msg_size(&frames[nf - 1]));
                for (int i = 0; i < nf - 1; i++) zmq_msg_send(&frames[i], sock, ZMQ_SNDMORE | ZMQ_DONTWAIT);
                if (zmq_send(sock, s.buf, s.len, ZMQ_DONTWAIT) < 0)
                    SRLM_WARN("reply not delivered (%s): peer gone", zmq_strerror(errno));
                served++;
                zmq_msg_close(&frames[nf - 1]);
                for (int i = 0; i < nf - 1; i++) zmq_msg_close(&frames[i]); /* no-op if sent */
            } else {
                SRLM_WARN("dropped a message of %d frames (need envelope + payload, at most %d)", nf, MAX_FRAMES);
                for (int i = 0; i < nf; i++) zmq_msg_close(&frames[i]);
            }
        }
    }
    SRLM_INFO("dataset server stopping after %llu requests", (unsigned long long)served);
    for (int i = 0; i < SEL_SLOTS; i++) ds_selection_free(s.sels[i].sel);
    free(s.buf);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    ds_close(s.st);
    return rc;
}
