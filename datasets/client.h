/* client.h — client of the dataset service (`srlm dataset serve`), used by the generator,
 * the trainer and eval. Prefix dsc_.
 *
 * Transport: one ZeroMQ DEALER socket per client, one protobuf Request (proto/dataset.proto)
 * per message, one Reply back. Reliability is the ZeroMQ guide's "lazy pirate": every call
 * waits `timeout_ms` for the reply; when the server is silent the client logs it with the
 * endpoint, closes and recreates its socket and resends the same request, up to `retries`
 * resends, then fails with SRLM_ETIMEOUT ("dataset server at ENDPOINT did not answer").
 * Every request is idempotent: a stream read names its position (or, in shared mode, a
 * (client_id, seq) pair the server remembers durably), so a resend never skips or repeats
 * records, even across a server restart.
 *
 * Streams: a consumer (a name, e.g. "trainer-sft") reads a stream — the records of some
 * sources/splits, reshuffled each epoch from a seed — by position. Position p of a stream
 * with N records is record perm(seed, p / N)[p % N]: every epoch covers every record once,
 * and the same seed gives the same order. Positions only grow; epoch = position / N.
 *   - private mode (default): the client keeps its own position, starting at the
 *     consumer's committed cursor; dsc_stream_commit() makes a position durable on the
 *     server (the trainer commits the position it stored in its checkpoint). After a
 *     crash of either side, reading resumes at the committed cursor.
 *   - shared mode (spec.shared = 1): several processes using the same consumer name share
 *     one stream; the server hands out consecutive ranges and persists its head, so each
 *     record of an epoch goes to exactly one of them.
 *
 * Records arrive as Dataset__Record (protoc-c struct; fields per docs/records.md);
 * ds_record_to_json() (store.h) gives the canonical JSON that reward workers take.
 * Not thread-safe: use one dsc_client per thread.
 */
#ifndef SRLM_DSC_CLIENT_H
#define SRLM_DSC_CLIENT_H

#include <stdint.h>

#include "dataset.pb-c.h"

typedef struct dsc_client dsc_client;
typedef struct dsc_stream dsc_stream;

typedef struct {
    int timeout_ms; /* per attempt; default 5000 (0 = default) */
    int retries;    /* resends after a timeout; default 3 (-1 = none) */
} dsc_options;

/* Which records a stream serves and how it is ordered. */
typedef struct {
    const char *sources; /* comma-separated sources ("gsm8k,synth-arith"); NULL/"" = all */
    const char *splits;  /* comma-separated splits ("train"); NULL/"" = all */
    uint64_t seed;       /* shuffle seed */
    int no_shuffle;      /* 1: serve in (source, split, ordinal) order every epoch */
    int shared;          /* 1: shared mode (server-side head), see above */
    int reset;           /* 1: forget the consumer's persisted cursor/stream on open */
} dsc_stream_spec;

/* A batch of records. records[i] sits at stream position position + i (NEXT) or answers
 * ids[i] (GET). Owned by the batch; free with dsc_batch_free(). */
typedef struct {
    int n;
    uint64_t position;
    uint64_t stream_size; /* records per epoch (0 for GET) */
    Dataset__Record **records;
    Dataset__Reply *reply_; /* internal: owns records */
} dsc_batch;

/* Connect to a dataset server (ipc://, tcp://). Does not wait for the server (ZeroMQ
 * connects lazily); use dsc_health() to check it. opt may be NULL (defaults).
 * Errors: SRLM_EINVAL (bad endpoint), SRLM_EIO. */
int dsc_connect(const char *endpoint, const dsc_options *opt, dsc_client **out);
void dsc_close(dsc_client *c);

/* Ping. *total (may be NULL) = records in the store. Error: SRLM_ETIMEOUT if silent. */
int dsc_health(dsc_client *c, uint64_t *total);

/* Counts per (source, split) as a JSON object text {"total":N,"counts":[{"source":..,
 * "split":..,"n":..},...]} (*json heap, caller frees). */
int dsc_stats_json(dsc_client *c, char **json);

/* Records by id, in the order asked. Error: SRLM_ENOTFOUND naming the first missing id. */
int dsc_get(dsc_client *c, const char *const *ids, int n, dsc_batch *out);

/* Open (and register) consumer `consumer` on a stream. The stream's position starts at
 * the consumer's committed cursor (0 for a new consumer). A consumer is bound to the
 * stream it was first opened with: opening it with a different spec is SRLM_EINVAL unless
 * spec->reset. An empty selection is SRLM_ENOTFOUND. The stream borrows c (close the
 * stream before the client). */
int dsc_stream_open(dsc_client *c, const char *consumer, const dsc_stream_spec *spec, dsc_stream **out);
void dsc_stream_close(dsc_stream *s);

/* Read the next `count` records (1..4096) at the stream's position and advance it.
 * Always returns `count` records (streams wrap into the next epoch). */
int dsc_stream_next(dsc_stream *s, int count, dsc_batch *out);

/* Position of the next record to read (private mode), and records per epoch. */
uint64_t dsc_stream_position(const dsc_stream *s);
uint64_t dsc_stream_size(const dsc_stream *s);
/* Move the read position (e.g. to the cursor stored in a checkpoint). Private mode only. */
int dsc_stream_seek(dsc_stream *s, uint64_t position);
/* Durably record `position` as the consumer's committed cursor (fsync'd before the reply).
 * The usual call is dsc_stream_commit(s, dsc_stream_position(s)) after a checkpoint. */
int dsc_stream_commit(dsc_stream *s, uint64_t position);
/* The consumer's persisted state: committed cursor and (shared mode) server head. */
int dsc_stream_cursor(dsc_stream *s, uint64_t *committed, uint64_t *head);

void dsc_batch_free(dsc_batch *b);

#endif
