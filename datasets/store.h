/* store.h — the dataset store: problems and training samples in one LMDB environment.
 * Prefix ds_.
 *
 * Layout (an LMDB directory, named databases):
 *   rec     id -> Dataset__Record, protobuf-packed (proto/dataset.proto)
 *   ord     source \0 split \0 ordinal (u32 big-endian) -> id   (per source/split index,
 *           in import order; a range scan lists one split of one source)
 *   meta    "schema_version" -> decimal text; "generation" -> u64 (bumped by every write
 *           of records); "import/SOURCE/SPLIT" -> JSON {format, files:[{path, sha256,
 *           content_sha256, bytes, records}], records, schema_version, time}
 *   cursor  consumer name -> Dataset__ConsumerState; "\1alloc\0CONSUMER\0CLIENT" ->
 *           {seq, start, count} of the last shared-mode range handed to that client
 *
 * Records are stored in their protobuf encoding (schema_version = DS_SCHEMA_VERSION); the
 * versioning rules are in proto/dataset.proto and docs/datasets.md.
 *
 * Ownership: every Dataset__Record this module returns or takes is a "heap record": the
 * struct, its strings and arrays are separate malloc'd blocks, exactly as
 * dataset__record__unpack(NULL, ...) produces; free it with ds_record_free().
 *
 * Durability: writes are one LMDB transaction each (all or nothing). DS_NOSYNC (or
 * $SRLM_DS_NOSYNC=1) opens the environment with MDB_NOSYNC: a crash of the machine (not
 * of the process) may lose the last transactions; tests use it for speed. Cursor commits
 * always sync (mdb_env_sync) before returning.
 */
#ifndef SRLM_DS_STORE_H
#define SRLM_DS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dataset.pb-c.h"

#define DS_SCHEMA_VERSION 1
#define DS_MAX_BATCH 4096 /* records per NEXT/GET reply */

typedef struct ds_store ds_store;

enum {
    DS_RDONLY = 1, /* open read-only (no writes; the directory must exist) */
    DS_NOSYNC = 2, /* MDB_NOSYNC, see above */
};

/* Open (creating the directory and databases if needed) the store at `path`.
 * A store written by a newer schema than DS_SCHEMA_VERSION opens (fields are additive)
 * with a warning. Errors: SRLM_EIO (naming path and the LMDB reason), SRLM_ENOTFOUND. */
int ds_open(const char *path, int flags, ds_store **out);
void ds_close(ds_store *s);
const char *ds_path(const ds_store *s);

/* ---- records ------------------------------------------------------------------------ */

/* Free a heap record (NULL is fine). */
void ds_record_free(Dataset__Record *r);
/* A new empty heap record with schema_version set. */
Dataset__Record *ds_record_new(void);
/* Set a string field of a heap record to a copy of v (frees the old value); v NULL clears. */
void ds_set_str(char **field, const char *v);
/* Append a copy of v to a repeated string field (e.g. &r->test_list, &r->n_test_list). */
void ds_push_str(char ***arr, size_t *n, const char *v);
/* Append a chat message. */
void ds_push_message(Dataset__Record *r, const char *role, const char *content);

/* Canonical JSON (docs/records.md) of a record: a new jansson object (caller decrefs) /
 * compact text (*out heap, caller frees; keys in the records.md order). */
json_t *ds_record_to_jsonobj(const Dataset__Record *r);
int ds_record_to_json(const Dataset__Record *r, char **out);
/* Parse a canonical JSON object into a heap record. Unknown keys are an error (so typos
 * don't silently drop data); err (size errlen) gets "field: reason". */
int ds_record_from_jsonobj(const json_t *o, Dataset__Record **out, char *err, size_t errlen);

/* Metadata of one import (stored under meta "import/SOURCE/SPLIT"). */
typedef struct {
    const char *format;  /* gsm8k, math, ..., jsonl, synth */
    const char **files;  /* source files (paths as given) */
    const char **sha256; /* 64-hex sha256 of each file's bytes on disk */
    const char **content_sha256; /* sha256 of the decompressed content (= sha256 for plain files), or NULL */
    const size_t *bytes; /* size of each file */
    const size_t *records; /* records taken from each file */
    int n_files;
    const char *extra_json; /* optional JSON object text merged in (synth parameters), or NULL */
} ds_import_meta;

/* A group of records that replaces everything stored under (source, split). */
typedef struct {
    const char *source, *split;
    Dataset__Record **recs; /* borrowed; schema_version and ordinal are set on them */
    size_t n;
    const ds_import_meta *meta; /* may be NULL */
} ds_group;

/* Write groups in ONE write transaction: for each group, the old records of its (source,
 * split) are deleted, recs[i] is stored under its id with ordinal = i, the index rebuilt
 * and the import metadata written; then the generation is bumped. Every record must carry
 * id, source == group source, split == group split. Importing the same content again gives
 * the same store (idempotent). On any error nothing changes.
 * Errors: SRLM_EFORMAT (duplicate id), SRLM_EINVAL (bad names), SRLM_EIO / SRLM_ENOMEM (LMDB). */
int ds_replace(ds_store *s, const ds_group *groups, int n_groups);

/* Number of records in the store. */
uint64_t ds_total(ds_store *s);

/* One record by id (heap record, caller frees). Error: SRLM_ENOTFOUND. */
int ds_get(ds_store *s, const char *id, Dataset__Record **out);

/* Counts per (source, split), sorted by source then split. counts: heap array of heap
 * Dataset__Count (free with ds_counts_free). */
int ds_counts(ds_store *s, Dataset__Count ***counts, size_t *n, uint64_t *total);
void ds_counts_free(Dataset__Count **counts, size_t n);

/* Import metadata of (source, split) as JSON text (*out heap) or SRLM_ENOTFOUND. */
int ds_import_info(ds_store *s, const char *source, const char *split, char **out);

/* Call fn(ctx, record) for every record whose source is in `sources` and split in `splits`
 * (comma-separated lists; NULL/"" = any), in (source, split, ordinal) order. The record is
 * borrowed for the call. A non-zero return of fn stops and is returned. */
int ds_foreach(ds_store *s, const char *sources, const char *splits,
               int (*fn)(void *ctx, const Dataset__Record *r), void *ctx);

/* Generation counter: changes whenever records are written. */
uint64_t ds_generation(ds_store *s);

/* ---- streams ------------------------------------------------------------------------ */

/* The records of a StreamSpec in (source, split, ordinal) order, plus the per-epoch
 * permutation. Position p -> record perm(seed, p / N)[p % N], where perm(seed, e) is a
 * Fisher–Yates shuffle of 0..N-1 driven by srlm_rng seeded with
 * seed ^ ((e + 1) * 0x9E3779B97F4A7C15) (identity when shuffle is off). */
typedef struct ds_selection ds_selection;

/* Build the selection of spec (sources/splits empty = any). Error: SRLM_ENOTFOUND when it
 * selects no record. */
int ds_selection_build(ds_store *s, const Dataset__StreamSpec *spec, ds_selection **out);
void ds_selection_free(ds_selection *sel);
uint64_t ds_selection_size(const ds_selection *sel);
uint64_t ds_selection_generation(const ds_selection *sel);
/* The id at stream position p (borrowed; valid until the selection is freed). Caches the
 * permutation of the last epochs asked. */
const char *ds_selection_at(ds_selection *sel, uint64_t p);
/* Normalized text form of a spec ("sources=a,b;splits=train;seed=1;shuffle=1", lists
 * sorted and deduplicated): two specs select the same stream iff their keys are equal. */
void ds_spec_key(const Dataset__StreamSpec *spec, char *out, size_t outlen);

/* Raw packed bytes of record `id` inside a read transaction the store keeps open between
 * ds_read_begin / ds_read_end (the server's zero-copy path). *data is valid until
 * ds_read_end. Error: SRLM_ENOTFOUND. */
int ds_read_begin(ds_store *s);
int ds_read_packed(ds_store *s, const char *id, const void **data, size_t *len);
void ds_read_end(ds_store *s);

/* ---- consumers ---------------------------------------------------------------------- */

/* Persisted consumer state (heap message, free with dataset__consumer_state__free_unpacked
 * (st, NULL)). Error: SRLM_ENOTFOUND for an unknown consumer. */
int ds_consumer_get(ds_store *s, const char *name, Dataset__ConsumerState **out);
/* Store a consumer's state durably (synced before returning). */
int ds_consumer_put(ds_store *s, const char *name, const Dataset__ConsumerState *st);
/* Delete a consumer (and its shared-mode allocations). Missing is fine. */
int ds_consumer_delete(ds_store *s, const char *name);
/* Shared mode: hand client `client_id` its range for request `seq` of `count` records.
 * If (client_id, seq) is the last request already answered, the same *start is returned;
 * otherwise *start = head and head += count, durably, in one transaction. */
int ds_consumer_alloc(ds_store *s, const char *name, const char *client_id, uint64_t seq, uint32_t count,
                      uint64_t *start);

#endif
