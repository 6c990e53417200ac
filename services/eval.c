/* eval.c — `srlm eval`: generation + sandboxed scoring + pass@k / maj@k (see eval.h). */
#include "eval.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "generate.h"
#include "model.h"
#include "passk.h"
#include "prompt.h"
#include "import.h"
#include "store.h"
#include "tokenizer.h"
#include "util.h"
#include "worker.h"

#if defined(__has_include)
#if __has_include("math_reward.h")
#include "math_reward.h"
#define EV_HAVE_MATH 1
#endif
#if __has_include("code_reward.h")
#include "code_reward.h"
#define EV_HAVE_CODE 1
#endif
#endif

void ev_opts_default(ev_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_samples = 1;
    o->ks[0] = 1;
    o->n_ks = 1;
    o->temperature = 0;
    o->top_p = 1;
    o->max_new_tokens = 256;
    o->workers = 2;
    o->seed = 1;
}

/* ---- scoring (runs inside a scorer worker process) ------------------------------------ */

/* Scorer state of one worker process: the math checker runs in its own seccomp-filtered
 * child (mr_sandbox, started on first use); the code scorer sandboxes every program. */
typedef struct {
#ifdef EV_HAVE_MATH
    mr_ctx math;
    int math_ready;
#endif
#ifdef EV_HAVE_CODE
    cr_ctx code;
    int code_ready;
#endif
    int unused;
} ev_scorers;

/* The one place that calls the reward scorers. kind: "math" or "code". */
static int score_one(ev_scorers *sc, const char *kind, const char *problem, const char *completion, reward_result *r) {
    memset(r, 0, sizeof *r);
    (void)sc;
    if (!strcmp(kind, "math")) {
#ifdef EV_HAVE_MATH
        if (!sc->math_ready) {
            mr_ctx_init(&sc->math);
            if (mr_sandbox_start(&sc->math.sb, &sc->math.opts)) {
                r->is_error = 1;
                snprintf(r->error, sizeof r->error, "math sandbox: %s", srlm_last_error());
                return SRLM_EIO;
            }
            sc->math_ready = 1;
        }
        return mr_score(&sc->math, problem, completion, r);
#endif
    } else if (!strcmp(kind, "code")) {
#ifdef EV_HAVE_CODE
        if (!sc->code_ready) {
            if (cr_init(&sc->code, 0)) {
                r->is_error = 1;
                snprintf(r->error, sizeof r->error, "code sandbox: %s", srlm_last_error());
                return SRLM_EIO;
            }
            sc->code_ready = 1;
        }
        return cr_score(&sc->code, problem, completion, r);
#endif
    }
    r->is_error = 1;
    snprintf(r->error, sizeof r->error, "no scorer for kind '%s' in this build", kind);
    return SRLM_EUNSUPPORTED;
}

static void scorers_free(ev_scorers *sc) {
#ifdef EV_HAVE_MATH
    if (sc->math_ready) mr_sandbox_stop(sc->math.sb);
#endif
    (void)sc;
}

/* Frames on the worker socketpair: u32 length (host order) + JSON text. */
static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}
static int read_all(int fd, void *p, size_t n) {
    char *c = p;
    while (n) {
        ssize_t k = read(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}
static int send_frame(int fd, const char *s) {
    uint32_t n = (uint32_t)strlen(s);
    return write_all(fd, &n, 4) || write_all(fd, s, n) ? -1 : 0;
}
static char *recv_frame(int fd) {
    uint32_t n;
    if (read_all(fd, &n, 4) || n > (64u << 20)) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    if (read_all(fd, s, n)) {
        free(s);
        return NULL;
    }
    s[n] = 0;
    return s;
}

static void worker_main(int fd) {
    signal(SIGINT, SIG_IGN);
    ev_scorers sc;
    memset(&sc, 0, sizeof sc);
    for (;;) {
        char *req = recv_frame(fd);
        if (!req) {
            scorers_free(&sc);
            _exit(0);
        }
        json_t *j = json_loads(req, 0, NULL);
        free(req);
        reward_result r;
        const char *kind = json_string_value(json_object_get(j, "kind"));
        const char *prob = json_string_value(json_object_get(j, "problem"));
        const char *comp = json_string_value(json_object_get(j, "completion"));
        if (!kind || !prob || !comp) {
            memset(&r, 0, sizeof r);
            r.is_error = 1;
            snprintf(r.error, sizeof r.error, "malformed scorer request");
        } else {
            int rc = score_one(&sc, kind, prob, comp, &r);
            if (rc && !r.is_error) {
                r.is_error = 1;
                snprintf(r.error, sizeof r.error, "%s", srlm_last_error());
            }
        }
        json_t *o = json_pack("{s:I,s:b,s:f,s:b,s:b,s:s,s:s,s:s}", "i", json_integer_value(json_object_get(j, "i")),
                              "is_error", r.is_error, "reward", r.reward, "correct", r.correct, "format_ok",
                              r.format_ok, "verdict", r.verdict, "extracted", r.extracted, "error", r.error);
        reward_result_free(&r);
        json_decref(j);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(o);
        if (!s || send_frame(fd, s)) _exit(1);
        free(s);
    }
}

/* ---- the worker pool ---------------------------------------------------------------- */
typedef struct {
    pid_t pid;
    int fd;
    long job; /* job index in flight, -1 idle */
} ev_worker;

typedef struct {
    char *req;      /* request frame */
    int done;
    int is_error, correct, format_ok;
    double reward;
    char verdict[16], extracted[256], error[256];
} ev_job;

typedef struct {
    ev_worker *w;
    int n;
    ev_job *jobs;
    long n_jobs, cap_jobs, next_send, n_done;
} ev_pool;

/* Start a scorer worker in slot w. The child closes the parent ends of every other
 * worker (others[0..n_others)) so that closing them in the parent gives EOF. */
static int spawn(ev_worker *w, const ev_worker *others, int n_others) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return srlm_set_error(SRLM_EIO, "socketpair: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return srlm_set_error(SRLM_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(sv[0]);
        for (int i = 0; i < n_others; i++)
            if (&others[i] != w && others[i].fd >= 0) close(others[i].fd);
        srlm_log_set_role("eval-scorer");
        worker_main(sv[1]);
        _exit(0);
    }
    close(sv[1]);
    w->pid = pid;
    w->fd = sv[0];
    w->job = -1;
    return 0;
}

static int pool_start(ev_pool *p, int n) {
    memset(p, 0, sizeof *p);
    p->w = srlm_xcalloc((size_t)n, sizeof *p->w);
    p->n = n;
    for (int i = 0; i < n; i++) p->w[i].fd = -1;
    for (int i = 0; i < n; i++) {
        int rc = spawn(&p->w[i], p->w, n);
        if (rc) return rc;
        p->n = i + 1;
    }
    return 0;
}

static void pool_stop(ev_pool *p) {
    for (int i = 0; i < p->n; i++) {
        if (p->w[i].fd >= 0) close(p->w[i].fd);
        if (p->w[i].pid > 0) waitpid(p->w[i].pid, NULL, 0);
    }
    for (long i = 0; i < p->n_jobs; i++) free(p->jobs[i].req);
    free(p->jobs);
    free(p->w);
    memset(p, 0, sizeof *p);
}

static long pool_add(ev_pool *p, long idx, const char *kind, const char *problem, const char *completion) {
    if (p->n_jobs == p->cap_jobs) {
        p->cap_jobs = p->cap_jobs ? p->cap_jobs * 2 : 256;
        p->jobs = srlm_xrealloc(p->jobs, (size_t)p->cap_jobs * sizeof *p->jobs);
    }
    ev_job *j = &p->jobs[p->n_jobs];
    memset(j, 0, sizeof *j);
    json_t *o = json_pack("{s:I,s:s,s:s,s:s}", "i", (json_int_t)idx, "kind", kind, "problem", problem, "completion",
                          completion);
    j->req = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!j->req) { /* invalid UTF-8 etc.: an error result, never a 0 reward */
        j->done = 1;
        j->is_error = 1;
        snprintf(j->error, sizeof j->error, "could not encode the scorer request");
        p->n_done++;
    }
    return p->n_jobs++;
}

/* Finish a job from a worker reply (or mark it errored when the worker died). */
static void job_finish(ev_pool *p, long ji, const char *reply) {
    ev_job *j = &p->jobs[ji];
    json_t *o = reply ? json_loads(reply, 0, NULL) : NULL;
    if (!o) {
        j->is_error = 1;
        snprintf(j->error, sizeof j->error, "scorer worker died or sent garbage");
    } else {
        j->is_error = json_is_true(json_object_get(o, "is_error"));
        j->correct = json_is_true(json_object_get(o, "correct"));
        j->format_ok = json_is_true(json_object_get(o, "format_ok"));
        j->reward = json_number_value(json_object_get(o, "reward"));
        snprintf(j->verdict, sizeof j->verdict, "%s", json_string_value(json_object_get(o, "verdict")) ?: "");
        snprintf(j->extracted, sizeof j->extracted, "%s", json_string_value(json_object_get(o, "extracted")) ?: "");
        snprintf(j->error, sizeof j->error, "%s", json_string_value(json_object_get(o, "error")) ?: "");
        json_decref(o);
    }
    j->done = 1;
    p->n_done++;
}

/* Dispatch queued jobs to idle workers and collect replies. block: wait for at least
 * one reply when any job is in flight. */
static void pool_pump(ev_pool *p, int block) {
    for (;;) {
        for (int i = 0; i < p->n; i++) {
            ev_worker *w = &p->w[i];
            while (w->job < 0 && p->next_send < p->n_jobs) {
                long ji = p->next_send++;
                if (p->jobs[ji].done) continue;
                if (send_frame(w->fd, p->jobs[ji].req)) {
                    job_finish(p, ji, NULL);
                    close(w->fd);
                    waitpid(w->pid, NULL, 0);
                    if (spawn(w, p->w, p->n)) w->fd = -1;
                    continue;
                }
                w->job = ji;
            }
        }
        struct pollfd pf[64];
        int idx[64], np = 0;
        for (int i = 0; i < p->n && np < 64; i++)
            if (p->w[i].job >= 0 && p->w[i].fd >= 0) {
                pf[np].fd = p->w[i].fd;
                pf[np].events = POLLIN;
                idx[np++] = i;
            }
        if (!np) return;
        int r = poll(pf, (nfds_t)np, block ? 1000 : 0);
        if (r <= 0) {
            if (block) continue;
            return;
        }
        for (int k = 0; k < np; k++) {
            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ev_worker *w = &p->w[idx[k]];
            char *reply = recv_frame(w->fd);
            job_finish(p, w->job, reply);
            w->job = -1;
            if (!reply) { /* the worker died: replace it */
                SRLM_WARN("scorer worker %d died; restarting it", (int)w->pid);
                close(w->fd);
                waitpid(w->pid, NULL, 0);
                if (spawn(w, p->w, p->n)) w->fd = -1;
            }
            free(reply);
        }
        if (!block) return;
        return;
    }
}

/* ---- data sets ---------------------------------------------------------------------- */
static int split_count(const char *db, const char *source, const char *split, uint64_t *n) {
    *n = 0;
    if (!srlm_file_exists(db)) return 0;
    ds_store *s = NULL;
    int rc = ds_open(db, DS_RDONLY, &s);
    if (rc) return rc;
    Dataset__Count **c = NULL;
    size_t nc = 0;
    uint64_t total = 0;
    rc = ds_counts(s, &c, &nc, &total);
    for (size_t i = 0; !rc && i < nc; i++)
        if ((!source || !strcmp(c[i]->source, source)) && !strcmp(c[i]->split, split)) *n += c[i]->n;
    if (!rc) ds_counts_free(c, nc);
    ds_close(s);
    return rc;
}

int ev_resolve_named(const char *name, const char *cache_db, char *db, size_t dbn, char *source, size_t sn,
                     char *split, size_t spn) {
    static const struct {
        const char *name, *format, *source, *split, *file;
    } NAMED[] = {
        {"gsm8k", "gsm8k", "gsm8k", "test", "datasets/data/gsm8k/test.jsonl.gz"},
        {"math500", "math500", "math500", "test", "datasets/data/math/math500_test.jsonl.gz"},
        {"humaneval", "humaneval", "humaneval", "test", "datasets/data/humaneval/HumanEval.jsonl.gz"},
        {"mbpp", "mbpp", "mbpp", "test", "datasets/data/mbpp/mbpp.jsonl.gz"},
    };
    int k = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, NAMED[i].name)) k = i;
    if (k < 0) return srlm_set_error(SRLM_EINVAL, "unknown dataset '%s' (gsm8k, math500, humaneval, mbpp, or DB:SPLIT)", name);
    if (cache_db && *cache_db) {
        if (srlm_fmt(db, dbn, "%s", cache_db)) return SRLM_EINVAL;
    } else {
        const char *c = getenv("SRLM_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
        int rc = c && *c   ? srlm_fmt(db, dbn, "%s/datasets.lmdb", c)
                 : x && *x ? srlm_fmt(db, dbn, "%s/srlm/datasets.lmdb", x)
                           : srlm_fmt(db, dbn, "%s/.cache/srlm/datasets.lmdb", h && *h ? h : "/tmp");
        if (rc) return rc;
    }
    snprintf(source, sn, "%s", NAMED[k].source);
    snprintf(split, spn, "%s", NAMED[k].split);
    uint64_t n = 0;
    int rc = split_count(db, source, split, &n);
    if (rc) return rc;
    if (n > 0) return 0;
    char parent[4096];
    srlm_fmt(parent, sizeof parent, "%s", db);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        srlm_mkdir_p(parent);
    }
    SRLM_INFO("importing the bundled %s data set into %s", name, db);
    ds_store *s = NULL;
    if ((rc = ds_open(db, 0, &s))) return rc;
    size_t got = 0;
    rc = ds_import_bundled(s, NAMED[k].format, &got);
    ds_close(s);
    if (rc) return rc;
    if ((rc = split_count(db, source, split, &n))) return rc;
    if (!n) return srlm_set_error(SRLM_ENOTFOUND, "%s: no %s/%s records after import", db, source, split);
    return 0;
}

typedef struct {
    json_t *arr;
    int limit;
} collect_ctx;

static int collect(void *ctx, const Dataset__Record *r) {
    collect_ctx *c = ctx;
    if (c->limit > 0 && (int)json_array_size(c->arr) >= c->limit) return 1;
    json_array_append_new(c->arr, ds_record_to_jsonobj(r));
    return 0;
}

static int load_problems(const ev_opts *o, json_t **out, char *desc, size_t descn) {
    char db[4096], source[128] = "", split[128] = "";
    const char *sources = o->sources;
    int rc;
    const char *colon = strrchr(o->dataset, ':');
    if (colon) {
        if (srlm_fmt(db, sizeof db, "%.*s", (int)(colon - o->dataset), o->dataset) ||
            srlm_fmt(split, sizeof split, "%s", colon + 1) || !*split || !*db)
            return srlm_set_error(SRLM_EINVAL, "--dataset '%s': expected DB:SPLIT", o->dataset);
        if (!srlm_file_exists(db)) return srlm_set_error(SRLM_ENOTFOUND, "--dataset: store %s not found", db);
    } else {
        if ((rc = ev_resolve_named(o->dataset, o->cache_db, db, sizeof db, source, sizeof source, split, sizeof split)))
            return rc;
        sources = source;
    }
    snprintf(desc, descn, "%s:%s%s%s", db, split, sources && *sources ? " sources=" : "", sources ? sources : "");
    ds_store *s = NULL;
    if ((rc = ds_open(db, DS_RDONLY, &s))) return rc;
    collect_ctx c = {json_array(), o->limit};
    rc = ds_foreach(s, sources, split, collect, &c);
    ds_close(s);
    if (rc < 0) {
        json_decref(c.arr);
        return rc;
    }
    if (json_array_size(c.arr) == 0) {
        json_decref(c.arr);
        return srlm_set_error(SRLM_ENOTFOUND, "%s: no records in split '%s'%s%s", db, split,
                              sources && *sources ? " of sources " : "", sources ? sources : "");
    }
    *out = c.arr;
    return 0;
}

/* ---- the evaluation ----------------------------------------------------------------- */
static json_t *str_array_n(char **v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(v[i] ? v[i] : ""));
    return a;
}

int ev_run(const ev_opts *o, ev_summary *sum) {
    memset(sum, 0, sizeof *sum);
    double t0 = srlm_now();
    if (!o->model_dir || !o->dataset) return srlm_set_error(SRLM_EINVAL, "eval needs --model and --dataset");
    if (o->n_samples < 1) return srlm_set_error(SRLM_EINVAL, "-n must be >= 1");
    if (o->n_ks < 1 || o->n_ks > EV_MAX_K) return srlm_set_error(SRLM_EINVAL, "-k: 1..%d values", EV_MAX_K);
    for (int i = 0; i < o->n_ks; i++)
        if (o->ks[i] < 1 || o->ks[i] > o->n_samples)
            return srlm_set_error(SRLM_EINVAL, "-k %d: needs 1 <= k <= n (= %d samples per problem)", o->ks[i],
                                  o->n_samples);
    if (o->n_samples > 1 && o->temperature <= 0)
        return srlm_set_error(SRLM_EINVAL, "-n %d with greedy decoding gives identical samples: set --temperature > 0",
                              o->n_samples);
    if (o->workers < 1 || o->workers > 64) return srlm_set_error(SRLM_EINVAL, "--workers: 1..64");
    pf_format forced = PF_PLAIN;
    if (o->prompt_format && pf_from_name(o->prompt_format, &forced)) return SRLM_EINVAL;

    json_t *probs = NULL;
    char desc[4400];
    int rc = load_problems(o, &probs, desc, sizeof desc);
    if (rc) return rc;
    int P = (int)json_array_size(probs), N = o->n_samples;

    /* scorer workers first: small processes, forked before the model is loaded */
    ev_pool pool;
    if ((rc = pool_start(&pool, o->workers))) {
        pool_stop(&pool);
        json_decref(probs);
        return rc;
    }
    lm_model *m = NULL;
    tok_tokenizer *tok = NULL;
    lm_set_threads(o->threads);
    if ((rc = lm_model_load(o->model_dir, &m)) || (rc = tok_load(o->model_dir, &tok))) {
        pool_stop(&pool);
        json_decref(probs);
        lm_model_free(m);
        return rc;
    }
    lm_sampling samp;
    lm_sampling_default(&samp);
    samp.do_sample = o->temperature > 0;
    samp.temperature = o->temperature > 0 ? o->temperature : 1;
    samp.top_p = o->top_p > 0 ? o->top_p : 1;
    samp.max_new_tokens = o->max_new_tokens;
    for (int i = 0; i < m->cfg.n_eos && samp.n_stop < LM_MAX_STOP; i++) samp.stop_ids[samp.n_stop++] = m->cfg.eos_token_ids[i];
    int eos = tok_eos_id(tok), eot = tok_token_to_id(tok, "<|endoftext|>");
    int extra[2] = {eos, eot};
    for (int e = 0; e < 2; e++) {
        int dup = extra[e] < 0;
        for (int i = 0; i < samp.n_stop; i++) dup |= samp.stop_ids[i] == extra[e];
        if (!dup && samp.n_stop < LM_MAX_STOP) samp.stop_ids[samp.n_stop++] = extra[e];
    }

    char **comps = srlm_xcalloc((size_t)P * N, sizeof *comps);
    int *finish = srlm_xcalloc((size_t)P * N, sizeof *finish);
    long *job_of = srlm_xcalloc((size_t)P * N, sizeof *job_of);
    pf_format *fmts = srlm_xcalloc((size_t)P, sizeof *fmts);
    srlm_progress prog;
    srlm_progress_init(&prog, "eval", "problems", P);
    if (o->quiet) prog.every_s = 1e9;
    double tg = 0;
    for (int pi = 0; pi < P && !rc; pi++) {
        json_t *rec = json_array_get(probs, (size_t)pi);
        pf_format f = o->prompt_format ? forced : pf_default_for(rec);
        fmts[pi] = f;
        char *prompt = NULL, *pjson = NULL;
        int32_t *ids = NULL;
        size_t nids = 0;
        if ((rc = pf_render_prompt(f, rec, o->chat, &prompt))) break;
        rc = tok_encode(tok, prompt, strlen(prompt), o->chat, &ids, &nids);
        free(prompt);
        if (rc) break;
        lm_sampling s = samp;
        s.seed = o->seed * 1000003ULL + (uint64_t)pi;
        int room = m->cfg.max_position_embeddings - (int)nids;
        if (s.max_new_tokens > room) s.max_new_tokens = room;
        lm_completion *cs = srlm_xcalloc((size_t)N, sizeof *cs);
        double tgs = srlm_now();
        if (nids >= 1 && s.max_new_tokens >= 1) {
            rc = lm_generate_group(m, ids, (int)nids, N, &s, cs);
            if (rc) {
                free(ids);
                free(cs);
                break;
            }
        } else {
            SRLM_WARN("%s: prompt of %zu tokens leaves no room to generate (max_position_embeddings %d)",
                      json_string_value(json_object_get(rec, "id")), nids, m->cfg.max_position_embeddings);
        }
        tg += srlm_now() - tgs;
        free(ids);
        const char *kind = json_string_value(json_object_get(rec, "kind"));
        if (!kind) kind = "math";
        pjson = json_dumps(rec, JSON_COMPACT);
        for (int si = 0; si < N; si++) {
            char *text = NULL;
            size_t tl = 0;
            if (cs[si].n > 0) {
                rc = tok_decode(tok, cs[si].ids, (size_t)cs[si].n, TOK_DECODE_SKIP_SPECIAL, &text, &tl);
                if (rc) break;
            } else {
                text = srlm_xstrdup("");
            }
            pf_truncate_at_stop(f, o->chat, text);
            comps[pi * N + si] = text;
            finish[pi * N + si] = cs[si].finish_reason;
            sum->gen_tokens += cs[si].n;
            job_of[pi * N + si] = pool_add(&pool, (long)pi * N + si, kind, pjson, text);
        }
        free(pjson);
        for (int si = 0; si < N; si++) lm_completion_free(&cs[si]);
        free(cs);
        pool_pump(&pool, 0);
        char extra_s[64];
        snprintf(extra_s, sizeof extra_s, "scored %ld/%ld", pool.n_done, (long)(pi + 1) * N);
        srlm_progress_update(&prog, pi + 1, extra_s);
    }
    double ts = srlm_now();
    while (!rc && pool.n_done < pool.n_jobs) pool_pump(&pool, 1);
    sum->score_seconds = srlm_now() - ts;
    char done_s[64]; /* the last update may have been printed before scoring finished */
    snprintf(done_s, sizeof done_s, "scored %ld/%ld", pool.n_done, pool.n_jobs);
    srlm_progress_done(&prog, P, done_s);
    sum->gen_seconds = tg;

    /* metrics */
    FILE *fr = NULL;
    char path[4200];
    if (!rc && o->out_dir) {
        if ((rc = srlm_mkdir_p(o->out_dir)) == 0 && srlm_fmt(path, sizeof path, "%s/results.jsonl", o->out_dir) == 0) {
            fr = fopen(path, "w");
            if (!fr) rc = srlm_set_error(SRLM_EIO, "%s: %s", path, strerror(errno));
        }
    }
    int *ns = srlm_xcalloc((size_t)P, sizeof *ns), *cs_ = srlm_xcalloc((size_t)P, sizeof *cs_);
    double maj[EV_MAX_K] = {0};
    double acc = 0;
    for (int pi = 0; !rc && pi < P; pi++) {
        json_t *rec = json_array_get(probs, (size_t)pi);
        const char **ans = srlm_xcalloc((size_t)N, sizeof *ans);
        int *cor = srlm_xcalloc((size_t)N, sizeof *cor);
        char **verd = srlm_xcalloc((size_t)N, sizeof *verd), **ext = srlm_xcalloc((size_t)N, sizeof *ext);
        json_t *rewards = json_array(), *corr = json_array(), *fin = json_array(), *errs = json_array();
        int nc = 0, nvalid = 0;
        /* majority vote: over extracted answers (math), over identical programs (code) */
        const char *rk = json_string_value(json_object_get(rec, "kind"));
        int vote_code = rk && !strcmp(rk, "code");
        for (int si = 0; si < N; si++) {
            ev_job *j = &pool.jobs[job_of[pi * N + si]];
            if (j->is_error) {
                sum->n_errors++;
                json_array_append_new(errs, json_string(j->error));
            } else {
                sum->n_scored++;
                nvalid++;
            }
            sum->n_format_ok += j->format_ok;
            cor[si] = !j->is_error && j->correct;
            nc += cor[si];
            ans[si] = j->is_error ? NULL : vote_code ? comps[pi * N + si] : j->extracted;
            verd[si] = j->is_error ? "error" : j->verdict;
            ext[si] = j->extracted;
            json_array_append_new(rewards, j->is_error ? json_null() : json_real(j->reward));
            json_array_append_new(corr, json_boolean(cor[si]));
            json_array_append_new(fin, json_string(lm_finish_reason_name(finish[pi * N + si])));
        }
        /* errors count as not correct for accuracy (reported separately in n_errors) */
        ns[pi] = N;
        cs_[pi] = nc;
        acc += (double)nc / N;
        int maj_solved_all = 0;
        int win = pk_majority(ans, cor, N, N, &maj_solved_all);
        for (int ki = 0; ki < o->n_ks; ki++) {
            int sv = 0;
            pk_majority(ans, cor, N, o->ks[ki], &sv);
            maj[ki] += sv;
        }
        if (fr) {
            json_t *line = json_pack("{s:O?,s:O?,s:s,s:O?,s:o,s:o,s:o,s:o,s:o,s:o,s:i,s:s?,s:b}", "id",
                                     json_object_get(rec, "id"), "source", json_object_get(rec, "source"),
                                     "prompt_format", pf_name(fmts[pi]), "answer", json_object_get(rec, "answer"),
                                     "completions", str_array_n(comps + (size_t)pi * N, N), "extracted",
                                     str_array_n(ext, N), "verdicts", str_array_n(verd, N), "rewards", rewards,
                                     "correct", corr, "finish", fin, "n_correct", nc, "maj_answer",
                                     win >= 0 ? ans[win] : NULL, "maj_correct", maj_solved_all);
            if (line && json_array_size(errs)) json_object_set(line, "errors", errs);
            char *s = line ? json_dumps(line, JSON_COMPACT) : NULL;
            if (s) fprintf(fr, "%s\n", s);
            free(s);
            json_decref(line);
        } else {
            json_decref(rewards);
            json_decref(corr);
            json_decref(fin);
        }
        json_decref(errs);
        free(ans);
        free(cor);
        free(verd);
        free(ext);
    }
    if (fr && fclose(fr) && !rc) rc = srlm_set_error(SRLM_EIO, "%s: write failed", path);
    if (!rc) {
        sum->n_problems = P;
        sum->n_samples = N;
        sum->accuracy = acc / P;
        sum->n_ks = o->n_ks;
        for (int ki = 0; ki < o->n_ks; ki++) {
            sum->ks[ki] = o->ks[ki];
            sum->pass_at[ki] = pk_mean_pass_at_k(ns, cs_, P, o->ks[ki]);
            sum->maj_at[ki] = maj[ki] / P;
        }
        sum->seconds = srlm_now() - t0;
    }
    if (!rc && o->out_dir) {
        json_t *pk = json_object(), *mk = json_object();
        for (int ki = 0; ki < o->n_ks; ki++) {
            char key[16];
            snprintf(key, sizeof key, "%d", o->ks[ki]);
            json_object_set_new(pk, key, json_real(sum->pass_at[ki]));
            json_object_set_new(mk, key, json_real(sum->maj_at[ki]));
        }
        json_t *js = json_pack(
            "{s:s,s:s,s:s,s:s,s:b,s:f,s:i,s:i,s:i,s:I,s:I,s:I,s:f,s:o,s:o,s:f,s:I,s:f,s:f,s:f,s:i}", "model",
            o->model_dir, "dataset", o->dataset, "data", desc, "prompt_format",
            o->prompt_format ? o->prompt_format : "auto", "chat", o->chat, "temperature", (double)o->temperature,
            "max_new_tokens", o->max_new_tokens, "n_problems", P, "n_samples", N, "n_scored",
            (json_int_t)sum->n_scored, "n_errors", (json_int_t)sum->n_errors, "n_format_ok",
            (json_int_t)sum->n_format_ok, "accuracy", sum->accuracy, "pass_at_k", pk, "maj_at_k", mk, "gen_seconds",
            sum->gen_seconds, "gen_tokens", (json_int_t)sum->gen_tokens, "score_seconds", sum->score_seconds,
            "seconds", sum->seconds, "tokens_per_s", sum->gen_seconds > 0 ? sum->gen_tokens / sum->gen_seconds : 0.0,
            "workers", o->workers);
        char *s = js ? json_dumps(js, JSON_INDENT(2)) : NULL;
        json_decref(js);
        if (!s || srlm_fmt(path, sizeof path, "%s/summary.json", o->out_dir)) rc = SRLM_EINVAL;
        else rc = srlm_write_file_atomic(path, s, strlen(s));
        free(s);
    }
    free(ns);
    free(cs_);
    for (long i = 0; i < (long)P * N; i++) free(comps[i]);
    free(comps);
    free(finish);
    free(job_of);
    free(fmts);
    pool_stop(&pool);
    tok_free(tok);
    lm_model_free(m);
    json_decref(probs);
    return rc;
}
