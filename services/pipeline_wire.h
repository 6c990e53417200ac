/* pipeline_wire.h — the wire layer of the RL pipeline (prefix pw_): short names for the
 * protobuf-c messages of proto/pipeline.proto and helpers to send/receive one packed
 * message per ZeroMQ frame with timeouts.
 *
 * Every message on a pipeline socket is exactly one frame holding one packed protobuf
 * message (ROUTER sockets add the peer identity frame in front). A receiver that cannot
 * unpack a frame, sees extra frames, or sees a schema it does not know logs a warning
 * naming the socket's role and endpoint and drops the message (pw_recv returns
 * SRLM_EFORMAT and the caller continues). */
#ifndef SRLM_PIPELINE_WIRE_H
#define SRLM_PIPELINE_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include "pipeline.pb-c.h"

#define PW_SCHEMA 1u              /* schema of every top-level pipeline message */
#define PW_MAX_FRAME (256u << 20) /* frames above 256 MiB are dropped as malformed */

typedef Srlm__Pipeline__RolloutId PwRolloutId;
typedef Srlm__Pipeline__Rollout PwRollout;
typedef Srlm__Pipeline__RolloutGroup PwRolloutGroup;
typedef Srlm__Pipeline__RewardJob PwRewardJob;
typedef Srlm__Pipeline__RewardResult PwRewardResult;
typedef Srlm__Pipeline__ScoredGroup PwScoredGroup;
typedef Srlm__Pipeline__WorkerMsg PwWorkerMsg;
typedef Srlm__Pipeline__TrainerUpdate PwTrainerUpdate;
typedef Srlm__Pipeline__TeacherRequest PwTeacherRequest;
typedef Srlm__Pipeline__TeacherReply PwTeacherReply;

#define PW_READY SRLM__PIPELINE__WORKER_MSG__TYPE__READY
#define PW_HEARTBEAT SRLM__PIPELINE__WORKER_MSG__TYPE__HEARTBEAT
#define PW_JOB SRLM__PIPELINE__WORKER_MSG__TYPE__JOB
#define PW_RESULT SRLM__PIPELINE__WORKER_MSG__TYPE__RESULT
#define PW_DISCONNECT SRLM__PIPELINE__WORKER_MSG__TYPE__DISCONNECT
#define PW_SCORED SRLM__PIPELINE__RESULT_STATUS__RESULT_SCORED
#define PW_ERROR SRLM__PIPELINE__RESULT_STATUS__RESULT_ERROR

/* Pack `m` and send it as one frame (flags: 0, ZMQ_SNDMORE, ZMQ_DONTWAIT). If `ident`
 * is non-NULL, an identity frame (ident, ident_len bytes) is sent first (ROUTER).
 * Returns 0, SRLM_ETIMEOUT when the send would block (EAGAIN), SRLM_EINTR, SRLM_EIO. */
int pw_send(void *sock, const void *ident, size_t ident_len, const ProtobufCMessage *m, int flags);

/* Receive one message (identity frame first if want_ident, copied into ident[256],
 * *ident_len set) and unpack it with `desc`. *out is the unpacked message; free it with
 * protobuf_c_message_free_unpacked(*out, NULL).
 * Errors: SRLM_ETIMEOUT (nothing within the socket's RCVTIMEO / EAGAIN), SRLM_EINTR,
 * SRLM_EFORMAT (garbage, wrong frame count, unknown schema — already logged with
 * `what`, the role/endpoint of the socket), SRLM_EIO. */
int pw_recv(void *sock, int want_ident, unsigned char *ident, size_t *ident_len,
            const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, const char *what);

/* Create a socket of `type` in ctx with the standard options: linger 0 (or linger_ms),
 * receive/send timeouts (ms, -1 = none), then bind (do_bind) or connect. ipc:// paths'
 * directories must exist. Returns NULL with srlm_set_error on failure. */
void *pw_socket(void *ctx, int type, const char *endpoint, int do_bind, int rcvtimeo_ms,
                int sndtimeo_ms);

/* Install SIGTERM/SIGINT handlers that set *flag (process-wide; the one sanctioned
 * global). Returns the flag's address for passing to *_run functions. */
volatile sig_atomic_t *pw_install_stop_handler(void);

/* Milliseconds from $NAME if set to a positive integer, else def. */
int pw_env_ms(const char *name, int def);

#endif
