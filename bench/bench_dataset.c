/* bench_dataset.c — records/s served by `srlm dataset serve` (in-process server thread) to
 * 1 and 4 concurrent clients over ipc:// and tcp://127.0.0.1, next to the peer: parsing the
 * same records from a JSONL file with jansson (what a process reading the export would do).
 * Both sides end with decoded records (protobuf-c structs / jansson objects).
 *
 * usage: bench_dataset [RECORDS_PER_CLIENT (default 200000)] [BATCH (default 256)]
 * Data: bundled GSM8K + MATH (21,292 records; streams wrap over epochs). */
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "import.h"
#include "server.h"
#include "store.h"
#include "util.h"

/* CPU seconds of the whole process (server thread + client threads). The machine may be
 * shared, so each figure is given per wall second and per CPU second. */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct {
    double wall, cpu; /* records per wall second, per CPU second */
} rate;

typedef struct {
    const char *ep;
    char consumer[32];
    long n;
    int batch;
    int rc;
    size_t bytes;
} client_job;

static void *client_thread(void *arg) {
    client_job *j = arg;
    dsc_client *c;
    dsc_options o = {10000, 1};
    j->rc = dsc_connect(j->ep, &o, &c);
    if (j->rc) return NULL;
    dsc_stream_spec spec = {.sources = "gsm8k,math", .seed = 1, .reset = 1};
    dsc_stream *s;
    if ((j->rc = dsc_stream_open(c, j->consumer, &spec, &s))) { dsc_close(c); return NULL; }
    for (long done = 0; done < j->n;) {
        int want = (int)(j->n - done < j->batch ? j->n - done : j->batch);
        dsc_batch b;
        if ((j->rc = dsc_stream_next(s, want, &b))) break;
        for (int i = 0; i < b.n; i++) j->bytes += b.records[i]->prompt ? strlen(b.records[i]->prompt) : 0;
        done += b.n;
        dsc_batch_free(&b);
    }
    dsc_stream_close(s);
    dsc_close(c);
    return NULL;
}

typedef struct {
    const char *db, *ep;
    volatile sig_atomic_t stop;
    int rc;
} server_job;

static void *server_thread(void *arg) {
    server_job *s = arg;
    s->rc = ds_serve(s->db, s->ep, DS_NOSYNC, &s->stop);
    return NULL;
}

static rate run_clients(const char *ep, int nclients, long per_client, int batch) {
    client_job jobs[4];
    pthread_t th[4];
    rate z = {0, 0};
    double t0 = srlm_now(), c0 = cpu_now();
    for (int i = 0; i < nclients; i++) {
        jobs[i] = (client_job){.ep = ep, .n = per_client, .batch = batch};
        snprintf(jobs[i].consumer, sizeof jobs[i].consumer, "bench-%d", i);
        pthread_create(&th[i], NULL, client_thread, &jobs[i]);
    }
    for (int i = 0; i < nclients; i++) pthread_join(th[i], NULL);
    double dt = srlm_now() - t0, dc = cpu_now() - c0;
    for (int i = 0; i < nclients; i++)
        if (jobs[i].rc) { fprintf(stderr, "client %d: %s\n", i, srlm_last_error()); return z; }
    double n = (double)nclients * (double)per_client;
    return (rate){n / dt, n / dc};
}

static int export_line(void *ctx, const Dataset__Record *r) {
    char *s;
    if (ds_record_to_json(r, &s)) return -1;
    fprintf((FILE *)ctx, "%s\n", s);
    free(s);
    return 0;
}

/* Peer: parse `n` records from the JSONL export (wrapping around the file) with jansson. */
static rate jsonl_peer(const char *path, long n) {
    char *buf;
    size_t len;
    rate z = {0, 0};
    if (srlm_read_file(path, &buf, &len, 0)) return z;
    double t0 = srlm_now(), c0 = cpu_now();
    long done = 0;
    size_t bytes = 0;
    while (done < n) {
        for (size_t pos = 0; pos < len && done < n;) {
            char *e = memchr(buf + pos, '\n', len - pos);
            size_t l = e ? (size_t)(e - (buf + pos)) : len - pos;
            json_t *o = json_loadb(buf + pos, l, 0, NULL);
            if (o) {
                const char *p = json_string_value(json_object_get(o, "prompt"));
                bytes += p ? strlen(p) : 0;
                json_decref(o);
                done++;
            }
            pos += l + 1;
        }
    }
    double dt = srlm_now() - t0, dc = cpu_now() - c0;
    free(buf);
    if (!bytes) return z;
    return (rate){(double)done / dt, (double)done / dc};
}

int main(int argc, char **argv) {
    long per_client = argc > 1 ? atol(argv[1]) : 200000;
    int batch = argc > 2 ? atoi(argv[2]) : 256;
    if (per_client < 1 || batch < 1 || batch > DS_MAX_BATCH) { fprintf(stderr, "usage: bench_dataset [N] [BATCH]\n"); return 2; }
    srlm_log_set_level(SRLM_LOG_WARN);
    char dir[] = "/tmp/srlm_bench_dataset_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char db[128], jsonl[128], ipc[160], tcp[64];
    snprintf(db, sizeof db, "%s/db", dir);
    snprintf(jsonl, sizeof jsonl, "%s/export.jsonl", dir);
    snprintf(ipc, sizeof ipc, "ipc://%s/ds.sock", dir);
    snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", 20000 + (int)(getpid() % 20000));
    ds_store *st;
    if (ds_open(db, DS_NOSYNC, &st) || ds_import_bundled(st, "gsm8k", NULL) || ds_import_bundled(st, "math", NULL)) {
        fprintf(stderr, "setup: %s\n", srlm_last_error());
        return 1;
    }
    FILE *f = fopen(jsonl, "w");
    ds_foreach(st, "gsm8k,math", NULL, export_line, f);
    fclose(f);
    ds_close(st);

    printf("dataset service: %ld records per client, batches of %d, GSM8K+MATH records\n", per_client, batch);
    rate peer = jsonl_peer(jsonl, per_client);
    printf("  %-34s %12s %14s\n", "", "records/s", "records/CPU-s");
    printf("  %-34s %12.0f %14.0f\n", "peer: JSONL + jansson, 1 reader", peer.wall, peer.cpu);
    const char *eps[2] = {ipc, tcp};
    const char *names[2] = {"ipc", "tcp"};
    int rc = 0;
    for (int e = 0; e < 2; e++) {
        server_job sj = {db, eps[e], 0, 0};
        pthread_t th;
        pthread_create(&th, NULL, server_thread, &sj);
        usleep(200000);
        for (int nc = 1; nc <= 4; nc += 3) {
            rate r = run_clients(eps[e], nc, per_client, batch);
            if (r.wall == 0) rc = 1;
            char label[64];
            snprintf(label, sizeof label, "srlm dataset, %s, %d client%s", names[e], nc, nc > 1 ? "s" : "");
            printf("  %-34s %12.0f %14.0f   (x%.2f / x%.2f of the peer)\n", label, r.wall, r.cpu,
                   peer.wall > 0 ? r.wall / peer.wall : 0, peer.cpu > 0 ? r.cpu / peer.cpu : 0);
        }
        sj.stop = 1;
        pthread_join(th, NULL);
        if (sj.rc) { fprintf(stderr, "server on %s: %s\n", eps[e], srlm_last_error()); rc = 1; }
    }
    srlm_rm_rf(dir);
    return rc;
}
