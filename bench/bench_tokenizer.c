/* bench_tokenizer.c — encode throughput (MB/s, one core) of the srlm tokenizer on the
 * GSM8K train set (every question and answer encoded as its own text), next to the
 * peer @huggingface/tokenizers (Tokenizers.js on Node.js, bench/peers/tokenizer_peer.mjs)
 * measured in the same run on the same texts, with the ratio and an id-checksum parity
 * check. The peer is skipped with a message if node or the npm package is missing
 * (install: npm ci --prefix bench/peers).
 *
 * Reported: best-of-N wall-clock MB/s (and the CPU seconds of that pass, which is the
 * fairer figure on a loaded machine).
 *
 * usage: bench_tokenizer [--tokenizer DIR] [--file JSONL[.gz]] [--repeats N]
 *                        [--peer-repeats N] [--no-peer] */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tokenizer.h"
#include "util.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct { char **s; size_t *len; size_t n, cap, bytes; } texts;

static void add_text(texts *t, const char *s, size_t n) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        t->s = srlm_xrealloc(t->s, t->cap * sizeof *t->s);
        t->len = srlm_xrealloc(t->len, t->cap * sizeof *t->len);
    }
    t->s[t->n] = srlm_xmalloc(n + 1);
    memcpy(t->s[t->n], s, n + 1);
    t->len[t->n++] = n;
    t->bytes += n;
}

static int load_texts(const char *path, texts *t) {
    char *data;
    size_t len;
    if (srlm_read_file(path, &data, &len, 0)) return -1;
    char *p = data, *end = data + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        json_error_t e;
        json_t *rec = l ? json_loadb(p, l, 0, &e) : NULL;
        const char *k;
        json_t *v;
        json_object_foreach(rec, k, v) if (json_is_string(v)) add_text(t, json_string_value(v), json_string_length(v));
        json_decref(rec);
        p += l + 1;
    }
    free(data);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {{"tokenizer", required_argument, 0, 't'}, {"file", required_argument, 0, 'f'},
                                         {"repeats", required_argument, 0, 'r'},   {"no-peer", no_argument, 0, 'P'},
                                         {"peer-repeats", required_argument, 0, 'R'},
                                         {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    char tokdir[4096] = "", file[4096] = "";
    int repeats = 5, peer_repeats = 1, peer = 1, c;
    while ((c = getopt_long(argc, argv, "t:f:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': snprintf(tokdir, sizeof tokdir, "%s", optarg); break;
        case 'f': snprintf(file, sizeof file, "%s", optarg); break;
        case 'r': repeats = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
        case 'P': peer = 0; break;
        case 'R': peer_repeats = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
        case 'h':
            printf("usage: bench_tokenizer [--tokenizer DIR] [--file JSONL[.gz]] [--repeats N] [--peer-repeats N] "
                   "[--no-peer]\n"
                   "Encode MB/s of srlm vs @huggingface/tokenizers (Node) on GSM8K train (default).\n");
            return 0;
        default: return 2;
        }
    }
    if (!*tokdir && srlm_resource_path("tokenizers/qwen2.5", tokdir, sizeof tokdir)) {
        fprintf(stderr, "%s\n", srlm_last_error());
        return 1;
    }
    if (!*file && srlm_resource_path("datasets/data/gsm8k/train.jsonl.gz", file, sizeof file)) {
        fprintf(stderr, "%s\n", srlm_last_error());
        return 1;
    }
    texts tx = {0};
    if (load_texts(file, &tx)) {
        fprintf(stderr, "%s\n", srlm_last_error());
        return 1;
    }
    double t0 = srlm_now();
    tok_tokenizer *tok;
    if (tok_load(tokdir, &tok)) {
        fprintf(stderr, "tok_load: %s\n", srlm_last_error());
        return 1;
    }
    double load_s = srlm_now() - t0;
    printf("tokenizer %s (load %.2f s)\ninput %s: %zu texts, %.2f MB\n", tokdir, load_s, file, tx.n, tx.bytes / 1e6);

    /* srlm, one thread, best of `repeats` */
    double best = 1e30, best_cpu = 0;
    size_t tokens = 0;
    uint32_t checksum = 0;
    for (int r = 0; r < repeats; r++) {
        size_t n_tok = 0;
        uint32_t h = 2166136261u;
        double a = srlm_now(), ca = cpu_now();
        for (size_t i = 0; i < tx.n; i++) {
            int32_t *ids;
            size_t n;
            if (tok_encode(tok, tx.s[i], tx.len[i], 1, &ids, &n)) {
                fprintf(stderr, "tok_encode: %s\n", srlm_last_error());
                return 1;
            }
            n_tok += n;
            for (size_t k = 0; k < n; k++) h = (h ^ (uint32_t)ids[k]) * 16777619u;
            free(ids);
        }
        double dt = srlm_now() - a, dc = cpu_now() - ca;
        if (dt < best) { best = dt; best_cpu = dc; }
        tokens = n_tok;
        checksum = h;
    }
    double c_mbs = tx.bytes / 1e6 / best;
    printf("\n%-44s %8s %8s %8s %10s %10s\n", "encoder (1 thread)", "MB/s", "wall s", "cpu s", "tokens", "checksum");
    printf("%-44s %8.2f %8.3f %8.3f %10zu %10u\n", "srlm tok_encode (C)", c_mbs, best, best_cpu, tokens, checksum);

    if (!peer) {
        printf("peer: skipped (--no-peer)\n");
    } else if (system("command -v node >/dev/null 2>&1") != 0) {
        printf("peer: skipped — node (Node.js) is not installed\n");
    } else {
        char script[4096], pkg[4096];
        if (srlm_resource_path("bench/peers/tokenizer_peer.mjs", script, sizeof script) ||
            srlm_resource_path("bench/peers/node_modules/@huggingface/tokenizers/package.json", pkg, sizeof pkg)) {
            printf("peer: skipped — @huggingface/tokenizers is not installed (run: npm ci --prefix bench/peers)\n");
        } else {
            char tj[] = "/tmp/srlm_bench_tok_XXXXXX";
            int fd = mkstemp(tj);
            json_t *arr = json_array();
            for (size_t i = 0; i < tx.n; i++) json_array_append_new(arr, json_stringn(tx.s[i], tx.len[i]));
            int ok = fd >= 0 && json_dumpfd(arr, fd, JSON_COMPACT) == 0;
            json_decref(arr);
            if (fd >= 0) close(fd);
            char cmd[12000];
            snprintf(cmd, sizeof cmd, "node '%s' '%s' '%s' %d", script, tokdir, tj, peer_repeats);
            FILE *pp = ok ? popen(cmd, "r") : NULL;
            char line[4096] = "";
            if (pp) {
                if (!fgets(line, sizeof line, pp)) line[0] = 0;
                pclose(pp);
            }
            unlink(tj);
            json_error_t e;
            json_t *res = json_loads(line, 0, &e);
            double p_mbs = json_real_value(json_object_get(res, "mb_per_s"));
            if (!res || p_mbs <= 0) {
                printf("peer: failed (no result from: %s)\n", cmd);
            } else {
                char name[64];
                snprintf(name, sizeof name, "@huggingface/tokenizers %s (Node %s)",
                         json_string_value(json_object_get(res, "version")),
                         json_string_value(json_object_get(res, "node")));
                uint32_t pck = (uint32_t)json_integer_value(json_object_get(res, "checksum"));
                size_t ptok = (size_t)json_integer_value(json_object_get(res, "tokens"));
                printf("%-44s %8.2f %8.3f %8.3f %10zu %10u\n", name, p_mbs,
                       json_real_value(json_object_get(res, "seconds")),
                       json_real_value(json_object_get(res, "cpu_seconds")), ptok, pck);
                printf("\nratio srlm / peer: %.2fx   ids identical: %s\n", c_mbs / p_mbs,
                       (pck == checksum && ptok == tokens) ? "yes" : "NO (checksums differ)");
            }
            json_decref(res);
        }
    }
    printf("goal: >= 10 MB/s on one core: %s\n", c_mbs >= 10 ? "met" : "NOT met (is the machine loaded? see cpu s)");
    tok_free(tok);
    for (size_t i = 0; i < tx.n; i++) free(tx.s[i]);
    free(tx.s);
    free(tx.len);
    return 0;
}
