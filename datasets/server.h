/* server.h — the dataset service: a ZeroMQ ROUTER in front of the LMDB store. Prefix ds_.
 *
 * Frames: a request is [envelope frames...][payload] where payload is one protobuf
 * dataset.Request (DEALER clients send just [payload]; REQ clients add an empty
 * delimiter, which is kept in the envelope). The reply is [same envelope][Reply].
 * Requests and their replies: proto/dataset.proto. A payload that does not decode, or a
 * request missing what its type needs, is logged (with the peer's byte count) and answered
 * with status SRLM_EFORMAT / SRLM_EINVAL; the server never exits because of a message.
 * Stream positions, cursors and shared-mode ranges: client.h and docs/datasets.md.
 * Single-threaded: one request at a time, in arrival order.
 */
#ifndef SRLM_DS_SERVER_H
#define SRLM_DS_SERVER_H

#include <signal.h>

#include "store.h"

/* Serve the store at db_path on endpoint (bind) until *stop becomes non-zero (checked at
 * least every 200 ms; a signal handler may set it). flags: DS_NOSYNC etc. (ds_open).
 * Returns 0 after a clean stop, or a negative SRLM_E* code (bind failed, store missing). */
int ds_serve(const char *db_path, const char *endpoint, int flags, volatile sig_atomic_t *stop);

#endif
