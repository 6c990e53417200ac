/* pipeline_wire.c — one packed protobuf message per ZeroMQ frame (see pipeline_wire.h). */
#include "pipeline_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "util.h"

int pw_send(void *sock, const void *ident, size_t ident_len, const ProtobufCMessage *m, int flags) {
    size_t n = protobuf_c_message_get_packed_size(m);
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, n) != 0) return srlm_set_error(SRLM_ENOMEM, "zmq_msg_init_size(%zu)", n);
    protobuf_c_message_pack(m, zmq_msg_data(&msg));
    if (ident) {
        if (zmq_send(sock, ident, ident_len, ZMQ_SNDMORE | (flags & ZMQ_DONTWAIT)) < 0) {
            int e = errno;
            zmq_msg_close(&msg);
            if (e == EAGAIN) return SRLM_ETIMEOUT;
            if (e == EINTR) return SRLM_EINTR;
            /* EHOSTUNREACH with ROUTER_MANDATORY: the peer is gone */
            return srlm_set_error(SRLM_EIO, "zmq_send: %s", zmq_strerror(e));
        }
    }
    if (zmq_msg_send(&msg, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        if (e == EAGAIN) return SRLM_ETIMEOUT;
        if (e == EINTR) return SRLM_EINTR;
        return srlm_set_error(SRLM_EIO, "zmq_send: %s", zmq_strerror(e));
    }
    return 0;
}

/* Drain the remaining frames of a multipart message. */
static void drain(void *sock) {
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) { zmq_msg_close(&m); break; }
        zmq_msg_close(&m);
        sz = sizeof more;
    }
}

static int has_more(void *sock) {
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    return more;
}

int pw_recv(void *sock, int want_ident, unsigned char *ident, size_t *ident_len,
            const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, const char *what) {
    *out = NULL;
    zmq_msg_t m;
    if (want_ident) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            int e = errno;
            zmq_msg_close(&m);
            if (e == EAGAIN) return SRLM_ETIMEOUT;
            if (e == EINTR) return SRLM_EINTR;
            return srlm_set_error(SRLM_EIO, "%s: zmq_recv: %s", what, zmq_strerror(e));
        }
        size_t n = zmq_msg_size(&m);
        if (n > 255) n = 255;
        memcpy(ident, zmq_msg_data(&m), n);
        *ident_len = n;
        zmq_msg_close(&m);
        if (!has_more(sock)) {
            SRLM_WARN("%s: malformed message (identity frame only): dropped", what);
            return SRLM_EFORMAT;
        }
    }
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) {
        int e = errno;
        zmq_msg_close(&m);
        if (e == EAGAIN) return SRLM_ETIMEOUT;
        if (e == EINTR) return SRLM_EINTR;
        return srlm_set_error(SRLM_EIO, "%s: zmq_recv: %s", what, zmq_strerror(e));
    }
    if (has_more(sock)) {
        drain(sock);
        zmq_msg_close(&m);
        SRLM_WARN("%s: malformed message (extra frames): dropped", what);
        return SRLM_EFORMAT;
    }
    size_t n = zmq_msg_size(&m);
    ProtobufCMessage *msg = NULL;
    if (n <= PW_MAX_FRAME)
        msg = protobuf_c_message_unpack(desc, NULL, n, zmq_msg_data(&m));
    zmq_msg_close(&m);
    if (!msg) {
        SRLM_WARN("%s: malformed message (%zu bytes, not a %s): dropped", what, n, desc->short_name);
        return SRLM_EFORMAT;
    }
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, "schema");
    if (f && f->type == PROTOBUF_C_TYPE_UINT32) {
        uint32_t schema = *(const uint32_t *)((const char *)msg + f->offset);
        if (schema == 0 || schema > PW_SCHEMA) {
            SRLM_WARN("%s: %s with unknown schema %u (this build knows %u): dropped", what,
                      desc->short_name, schema, PW_SCHEMA);
            protobuf_c_message_free_unpacked(msg, NULL);
            return SRLM_EFORMAT;
        }
    }
    *out = msg;
    return 0;
}

void *pw_socket(void *ctx, int type, const char *endpoint, int do_bind, int rcvtimeo_ms,
                int sndtimeo_ms) {
    void *s = zmq_socket(ctx, type);
    if (!s) {
        srlm_set_error(SRLM_EIO, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &rcvtimeo_ms, sizeof rcvtimeo_ms);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &sndtimeo_ms, sizeof sndtimeo_ms);
    int64_t maxmsg = (int64_t)PW_MAX_FRAME;
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    int rc = do_bind ? zmq_bind(s, endpoint) : zmq_connect(s, endpoint);
    if (rc != 0) {
        srlm_set_error(SRLM_EIO, "%s %s: %s", do_bind ? "bind" : "connect", endpoint, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

static volatile sig_atomic_t g_stop; /* the process-wide shutdown flag */

static void on_stop(int sig) {
    (void)sig;
    g_stop = 1;
}

volatile sig_atomic_t *pw_install_stop_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return &g_stop;
}

int pw_env_ms(const char *name, int def) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x <= 0 || x > 86400000) return def;
    return (int)x;
}
