/* study.c — `srlm study` (see study.h; config keys in docs/study.md). */
#include "study.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <lmdb.h>

#include "import.h"
#include "model.h"
#include "plot.h"
#include "prompt.h"
#include "safetensors.h"
#include "store.h"
#include "tokenizer.h"
#include "util.h"

#define ST_MAX_SEEDS 16
#define ST_PATH 4096
/* JSON written for people (config.json and report.md of the run, results.json): reals with
 * 10 significant digits (0.005, not 0.0050000000000000001). Machine inputs (the stage
 * configs given to `srlm run`) keep jansson's exact default. */
#define ST_JSON_HUMAN (JSON_INDENT(2) | JSON_REAL_PRECISION(10))

/* ---- small helpers -------------------------------------------------------------------- */

static int check_keys(const json_t *o, const char *where, const char *const *allowed) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        int ok = 0;
        for (int i = 0; allowed[i]; i++) ok |= !strcmp(k, allowed[i]);
        if (!ok) return srlm_set_error(SRLM_EINVAL, "study config: %s: unknown key '%s'", where, k);
    }
    return 0;
}

static const char *jstr(const json_t *o, const char *k, const char *def) {
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : def;
}
static double jnum(const json_t *o, const char *k, double def) {
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : def;
}

/* argv vector */
typedef struct {
    char **v;
    int n, cap;
} st_argv;
static void av_push(st_argv *a, const char *s) {
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 32;
        a->v = srlm_xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = srlm_xstrdup(s);
    a->v[a->n] = NULL;
}
static void av_pushf(st_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void av_pushf(st_argv *a, const char *fmt, ...) {
    char buf[ST_PATH];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    av_push(a, buf);
}
static void av_free(st_argv *a) {
    for (int i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}
/* Append every key of obj as "--key value" (booleans: "--key" when true). */
static void av_flags(st_argv *a, const json_t *obj) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        if (json_is_true(v)) {
            av_pushf(a, "--%s", k);
        } else if (json_is_false(v) || json_is_null(v)) {
            continue;
        } else if (json_is_string(v)) {
            av_pushf(a, "--%s", k);
            av_push(a, json_string_value(v));
        } else if (json_is_integer(v)) {
            av_pushf(a, "--%s", k);
            av_pushf(a, "%lld", (long long)json_integer_value(v));
        } else if (json_is_real(v)) {
            av_pushf(a, "--%s", k);
            av_pushf(a, "%.9g", json_real_value(v));
        } else if (json_is_array(v)) { /* lists: comma-joined */
            char buf[1024] = "";
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x) {
                size_t l = strlen(buf);
                if (json_is_string(x)) srlm_fmt(buf + l, sizeof buf - l, "%s%s", i ? "," : "", json_string_value(x));
                else srlm_fmt(buf + l, sizeof buf - l, "%s%g", i ? "," : "", json_number_value(x));
            }
            av_pushf(a, "--%s", k);
            av_push(a, buf);
        }
    }
}

static char *av_join(const st_argv *a) {
    size_t n = 1;
    for (int i = 0; i < a->n; i++) n += strlen(a->v[i]) + 3;
    char *s = srlm_xmalloc(n);
    s[0] = 0;
    for (int i = 0; i < a->n; i++) {
        strcat(s, i ? " " : "");
        strcat(s, a->v[i]);
    }
    return s;
}

/* Run argv with stdout+stderr appended to logpath; returns 0 when it exits 0. The command
 * line is written at the top of the log. SIGINT reaches the child (same process group). */
/* Progress of a running stage: every 20 s, the last line of its metrics.jsonl. */
typedef struct {
    const char *metrics;  /* metrics.jsonl path, or NULL */
    const char *label;    /* "sft (seed 1)" */
    int total_steps;
} st_watch;

static void watch_print(const st_watch *w, double elapsed) {
    FILE *f = fopen(w->metrics, "r");
    if (!f) return;
    char *line = NULL, *last = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        free(last);
        last = srlm_xstrdup(line);
    }
    free(line);
    fclose(f);
    json_t *o = last ? json_loads(last, 0, NULL) : NULL;
    free(last);
    if (!o) return;
    const json_t *step = json_object_get(o, "stage_step");
    if (!step) step = json_object_get(o, "step");
    char extra[128] = "";
    const json_t *r = json_object_get(o, "reward_mean"), *l = json_object_get(o, "loss");
    if (json_is_number(r)) srlm_fmt(extra, sizeof extra, "reward %.3f", json_number_value(r));
    else if (json_is_number(l)) srlm_fmt(extra, sizeof extra, "loss %.4f", json_number_value(l));
    printf("        %s: step %lld/%d %s (%.0f s)\n", w->label, (long long)json_integer_value(step), w->total_steps, extra,
           elapsed);
    fflush(stdout);
    json_decref(o);
}

static int run_logged_w(const st_argv *a, const char *logpath, double *seconds, const st_watch *w);
static int run_logged(const st_argv *a, const char *logpath, double *seconds) {
    return run_logged_w(a, logpath, seconds, NULL);
}

static int run_logged_w(const st_argv *a, const char *logpath, double *seconds, const st_watch *w) {
    char *cmd = av_join(a);
    SRLM_DEBUG("run: %s", cmd);
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(cmd);
        return srlm_set_error(SRLM_EIO, "%s: %s", logpath, strerror(errno));
    }
    dprintf(fd, "$ %s\n", cmd);
    double t0 = srlm_now();
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        free(cmd);
        return srlm_set_error(SRLM_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        execv(a->v[0], a->v);
        dprintf(2, "exec %s: %s\n", a->v[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    int st = 0;
    double last = t0;
    for (;;) {
        pid_t r = waitpid(pid, &st, w && w->metrics ? WNOHANG : 0);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) break;
        if (r == 0) {
            usleep(200000);
            double now = srlm_now();
            if (now - last >= 20) {
                last = now;
                watch_print(w, now - t0);
            }
        }
    }
    if (seconds) *seconds = srlm_now() - t0;
    int rc = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        /* the log path in full (the command is the log's first line), then the command */
        rc = srlm_set_error(SRLM_EIO, "srlm %s failed (%s %d); see %s, which starts with the command: %.200s",
                            a->n > 1 ? a->v[1] : "?", WIFEXITED(st) ? "exit status" : "signal",
                            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), logpath, cmd);
    free(cmd);
    return rc;
}

/* ---- the study state ------------------------------------------------------------------ */
typedef struct {
    char name[64];
    double acc_mean, acc_std, acc_min, acc_max;
    double acc[ST_MAX_SEEDS];
    double pass_at[ST_MAX_SEEDS][8], maj_at[ST_MAX_SEEDS][8];
    long scored[ST_MAX_SEEDS], errors[ST_MAX_SEEDS];
    int n_problems;
    int n;
} st_cell;

typedef struct {
    const char *name;
    json_t *stages;       /* array of stage names (borrowed from the config) */
    int failed;
    char error[1024];
    double train_s[ST_MAX_SEEDS], eval_s[ST_MAX_SEEDS];
    st_cell *cells;       /* [n_evals] */
} st_pipe;

/* The curve of one trained stage (first seed): SFT/KD training loss, or GRPO mean rollout
 * reward, against the stage's own step. A stage prefix shared by several pipelines is
 * trained once and is one curve; pipes lists every pipeline that uses it. */
typedef struct {
    char key[2048];       /* the stage cache key: seed-S/stage1/.../stageK */
    char stage[64];
    char pipes[256];      /* "sft, sft-rl" */
    char label[352];      /* "sft, sft-rl: sft" */
    int grpo;
    double *x, *y;
    int n;
} st_curve;

typedef struct {
    json_t *cfg;
    const char *name;
    char run[ST_PATH], exe[ST_PATH], db[ST_PATH], tokdir[ST_PATH];
    int seeds[ST_MAX_SEEDS], n_seeds;
    int threads;
    int chat;
    const char *prompt_format;
    char student[ST_PATH], teacher[ST_PATH];
    char traces_jsonl[ST_PATH];
    json_t *evals;        /* array of eval set objects */
    int n_evals;
    st_pipe *pipes;
    int n_pipes;
    double t0, setup_s, teacher_s, base_s;
    char base_stages[512]; /* "instruct" (the config's base.stages, for the report), "" = none */
    uint64_t base_seed;    /* seed of the base stages: the student model's seed */
    long n_traces;
    int teacher_used;     /* the teacher was trained (a selected pipeline has a KD stage) */
    int teacher_traces;   /* ... and wrote traces (a selected pipeline has a sequence-KD stage) */
    FILE *log;            /* RUN/study.log: one line per event */
    st_curve *curves;     /* [n_curves], in training order */
    int n_curves;
} study;

static void note(study *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(study *S, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    double t = srlm_now() - S->t0;
    /* elapsed time since the study started (not a clock time): [+mm:ss] */
    printf("[+%02d:%02d] %s\n", (int)(t / 60), (int)t % 60, buf);
    fflush(stdout);
    if (S->log) {
        fprintf(S->log, "[+%.1fs] %s\n", t, buf);
        fflush(S->log);
    }
}

/* Resolve a path from the config: absolute, relative to the current directory, or a
 * bundled resource (relative to the source tree). */
static int resolve(const char *rel, char *out, size_t n) {
    if (rel[0] == '/' || srlm_file_exists(rel)) return srlm_fmt(out, n, "%s", rel);
    return srlm_resource_path(rel, out, n);
}

/* ---- setup: models, tokenizer, data ---------------------------------------------------- */
/* A model directory given by path (--model, --teacher, models.X.path) must hold a valid
 * config.json and weights: model.safetensors with a valid header, or a shard index. Reads
 * headers only (no weights), so `study --check` catches a broken download in
 * milliseconds. Errors name the flag or key (what) and the file. */
static int check_model_dir(const char *what, const char *dir) {
    char p[ST_PATH];
    lm_config c;
    srlm_fmt(p, sizeof p, "%s/config.json", dir);
    if (lm_config_load(p, &c)) return srlm_set_error(SRLM_EINVAL, "%s: %s", what, srlm_last_error());
    srlm_fmt(p, sizeof p, "%s/model.safetensors", dir);
    if (srlm_file_exists(p)) {
        st_file *f = NULL;
        if (st_open(p, &f)) return srlm_set_error(SRLM_EINVAL, "%s: %s", what, srlm_last_error());
        st_close(f);
        return 0;
    }
    srlm_fmt(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (srlm_file_exists(p)) return 0;
    return srlm_set_error(SRLM_EINVAL, "%s %s: no model.safetensors or model.safetensors.index.json", what, dir);
}

static int make_model(study *S, const char *role, const json_t *spec, char *out, size_t n) {
    static const char *const KEYS[] = {"config", "override", "path", "seed", NULL};
    int rc;
    if (!json_is_object(spec)) return srlm_set_error(SRLM_EINVAL, "study config: models.%s: expected an object", role);
    if ((rc = check_keys(spec, role, KEYS))) return rc;
    const char *path = jstr(spec, "path", NULL);
    if (path) {
        const char *env = getenv("SRLM_MODEL");
        if (!strcmp(path, "$SRLM_MODEL")) {
            if (!env || !*env)
                return srlm_set_error(SRLM_EINVAL, "models.%s.path is $SRLM_MODEL: give the model with --model DIR (or set SRLM_MODEL=DIR)", role);
            path = env;
        }
        if (!srlm_file_exists(path)) return srlm_set_error(SRLM_ENOTFOUND, "models.%s.path: %s not found", role, path);
        char what[128];
        srlm_fmt(what, sizeof what, "models.%s.path", role);
        if ((rc = check_model_dir(what, path))) return rc;
        return srlm_fmt(out, n, "%s", path);
    }
    const char *cf = jstr(spec, "config", NULL);
    if (!cf) return srlm_set_error(SRLM_EINVAL, "models.%s: needs 'config' or 'path'", role);
    char cpath[ST_PATH];
    if ((rc = resolve(cf, cpath, sizeof cpath))) return rc;
    /* config.json, with the "override" object's fields replaced (e.g. a wider teacher) */
    json_error_t jerr;
    json_t *cj = json_load_file(cpath, 0, &jerr);
    if (!cj) return srlm_set_error(SRLM_EFORMAT, "%s:%d: %s", cpath, jerr.line, jerr.text);
    const json_t *ov = json_object_get(spec, "override");
    if (ov && !json_is_object(ov)) {
        json_decref(cj);
        return srlm_set_error(SRLM_EINVAL, "models.%s.override: expected an object of config.json fields", role);
    }
    if (ov) json_object_update(cj, (json_t *)ov);
    char *ctext = json_dumps(cj, 0);
    json_decref(cj);
    lm_config c;
    rc = ctext ? lm_config_parse(ctext, cpath, &c) : SRLM_ENOMEM;
    free(ctext);
    if (rc) return rc;
    lm_model *m = NULL;
    if ((rc = lm_model_create(&c, &m))) return rc;
    lm_model_init_random(m, (uint64_t)jnum(spec, "seed", 1));
    if ((rc = srlm_fmt(out, n, "%s/models/%s-init", S->run, role)) == 0)
        rc = lm_model_save(m, out, "F32", NULL, S->tokdir[0] ? S->tokdir : NULL);
    char *ovs = ov ? json_dumps(ov, JSON_COMPACT) : NULL; /* e.g. a wider teacher */
    note(S, "created %s model %s (%zu parameters, %s%s%s)", role, out, m->n_params, cf, ovs ? " with " : "",
         ovs ? ovs : "");
    free(ovs);
    lm_model_free(m);
    return rc;
}

/* data.synth[]: each exclude_split names a split that another entry of the same kind
 * synthesizes (checked with --check, before anything is generated). */
static int check_synth_excludes(const json_t *data) {
    size_t i, j;
    json_t *e, *f;
    json_array_foreach(json_object_get(data, "synth"), i, e) {
        const char *x = jstr(e, "exclude_split", NULL);
        if (!x) continue;
        int found = 0;
        json_array_foreach(json_object_get(data, "synth"), j, f) found |= j != i &&
            !strcmp(jstr(f, "kind", "arith"), jstr(e, "kind", "arith")) && !strcmp(jstr(f, "split", "train"), x);
        if (!found)
            return srlm_set_error(SRLM_EINVAL, "study config: data.synth[%zu].exclude_split: no %s set of split '%s' "
                                  "in data.synth", i, jstr(e, "kind", "arith"), x);
    }
    return 0;
}

static int setup_data(study *S, const json_t *data) {
    static const char *const KEYS[] = {"synth", "import", NULL};
    static const char *const SK[] = {"kind", "split", "n", "seed", "max_steps", "max_number", "exclude_split", NULL};
    static const char *const IK[] = {"bundled", "format", "split", "source", "files", NULL};
    int rc;
    if ((rc = check_keys(data, "data", KEYS))) return rc;
    ds_store *st = NULL;
    if ((rc = ds_open(S->db, DS_NOSYNC, &st))) return rc;
    size_t i;
    json_t *e;
    /* two passes: sets that exclude another split's prompts come after the others */
    for (int pass = 0; pass < 2 && !rc; pass++)
    json_array_foreach(json_object_get(data, "synth"), i, e) {
        if ((rc = check_keys(e, "data.synth[]", SK))) break;
        if ((jstr(e, "exclude_split", NULL) != NULL) != pass) continue;
        ds_synth_opts so;
        memset(&so, 0, sizeof so);
        so.kind = jstr(e, "kind", "arith");
        so.split = jstr(e, "split", "train");
        so.n = (size_t)jnum(e, "n", 1000);
        so.seed = (uint64_t)jnum(e, "seed", 1);
        so.max_steps = (int)jnum(e, "max_steps", 0);
        so.max_number = (int)jnum(e, "max_number", 0);
        so.exclude_split = jstr(e, "exclude_split", NULL);
        size_t excluded = 0;
        if ((rc = ds_synth_import(st, &so, &excluded))) break;
        if (so.exclude_split)
            note(S, "synthesized %zu %s problems (split %s; %zu skipped: their prompt is in split %s)", so.n, so.kind,
                 so.split, excluded, so.exclude_split);
        else
            note(S, "synthesized %zu %s problems (split %s)", so.n, so.kind, so.split);
    }
    json_array_foreach(json_object_get(data, "import"), i, e) {
        if (rc || (rc = check_keys(e, "data.import[]", IK))) break;
        size_t n = 0;
        const char *bundled = jstr(e, "bundled", NULL);
        if (bundled) {
            if ((rc = ds_import_bundled(st, bundled, &n))) break;
            note(S, "imported bundled %s (%zu records)", bundled, n);
            continue;
        }
        ds_import_opts io;
        memset(&io, 0, sizeof io);
        io.format = jstr(e, "format", "jsonl");
        io.split = jstr(e, "split", NULL);
        io.source = jstr(e, "source", NULL);
        const json_t *fl = json_object_get(e, "files");
        int nf = (int)json_array_size(fl);
        char **files = srlm_xcalloc((size_t)nf + 1, sizeof *files);
        for (int k = 0; k < nf && !rc; k++) {
            files[k] = srlm_xmalloc(ST_PATH);
            rc = resolve(json_string_value(json_array_get(fl, (size_t)k)) ?: "", files[k], ST_PATH);
        }
        if (!rc && !nf) rc = srlm_set_error(SRLM_EINVAL, "data.import[%zu]: needs 'bundled' or 'files'", i);
        if (!rc) rc = ds_import_files(st, &io, (const char *const *)files, nf, &n);
        for (int k = 0; k < nf; k++) free(files[k]);
        free(files);
        if (!rc) note(S, "imported %zu %s records", n, io.format);
    }
    ds_close(st);
    return rc;
}

typedef struct {
    study *S;
    FILE *fo;
    long n;
} sft_ctx;

static int sft_one(void *ctx, const Dataset__Record *r) {
    sft_ctx *c = ctx;
    json_t *rec = ds_record_to_jsonobj(r);
    pf_format f = PF_PLAIN;
    if (!c->S->prompt_format || pf_from_name(c->S->prompt_format, &f)) f = pf_default_for(rec);
    char *p = NULL, *t = NULL;
    if (!pf_render_prompt(f, rec, c->S->chat, &p) && !pf_render_target(f, rec, c->S->chat, &t)) {
        json_t *o = json_pack("{s:s,s:s}", "prompt", p, "completion", t);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s) {
            fprintf(c->fo, "%s\n", s);
            c->n++;
        }
        free(s);
        json_decref(o);
    }
    free(p);
    free(t);
    json_decref(rec);
    return 0;
}

/* Render the (sources, split) records of the study store as SFT samples {"prompt",
 * "completion"} (runner "train" reads them; the pipeline renders the same text itself). */
static int write_sft_jsonl(study *S, const char *sources, const char *split, const char *out, long *count) {
    ds_store *st = NULL;
    int rc = ds_open(S->db, DS_RDONLY, &st);
    if (rc) return rc;
    sft_ctx c = {S, fopen(out, "w"), 0};
    if (!c.fo) {
        ds_close(st);
        return srlm_set_error(SRLM_EIO, "%s: %s", out, strerror(errno));
    }
    rc = ds_foreach(st, sources, split, sft_one, &c);
    ds_close(st);
    if (fclose(c.fo) && !rc) rc = srlm_set_error(SRLM_EIO, "%s: write failed", out);
    *count = c.n;
    if (!rc && !c.n)
        rc = srlm_set_error(SRLM_ENOTFOUND, "no records in %s for sources %s, split %s", S->db, sources ? sources : "*",
                            split ? split : "*");
    return rc;
}

/* ---- stages ----------------------------------------------------------------------------- */

/* The newest checkpoint under dir (checkpoints/step_N with the largest N), else dir/model
 * or dir itself when it holds config.json. */
static int find_output_model(const char *dir, char *out, size_t n) {
    char p[ST_PATH];
    long best = -1;
    srlm_fmt(p, sizeof p, "%s/checkpoints", dir);
    DIR *d = opendir(p);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        char *end;
        if (strncmp(de->d_name, "step_", 5)) continue;
        long step = strtol(de->d_name + 5, &end, 10);
        char c[ST_PATH];
        srlm_fmt(c, sizeof c, "%s/%s/config.json", p, de->d_name);
        if (!*end && step > best && srlm_file_exists(c)) best = step;
    }
    if (d) closedir(d);
    if (best >= 0) return srlm_fmt(out, n, "%s/step_%ld", p, best);
    srlm_fmt(p, sizeof p, "%s/model/config.json", dir);
    if (srlm_file_exists(p)) return srlm_fmt(out, n, "%s/model", dir);
    srlm_fmt(p, sizeof p, "%s/config.json", dir);
    if (srlm_file_exists(p)) return srlm_fmt(out, n, "%s", dir);
    return srlm_set_error(SRLM_ENOTFOUND, "no model written under %s", dir);
}

/* Copy the study store into a stage directory so that every stage starts from the same
 * data and its own consumer cursors: a consistent snapshot (mdb_env_copy under a read
 * transaction), so the teacher's traces may be imported while other stages start. */
static int copy_store(const char *from, const char *to) {
    int rc = srlm_mkdir_p(to);
    if (rc) return rc;
    MDB_env *env = NULL;
    int e = mdb_env_create(&env);
    if (!e) e = mdb_env_set_maxdbs(env, 8);
    if (!e) e = mdb_env_open(env, from, MDB_RDONLY, 0644);
    if (!e) e = mdb_env_copy(env, to);
    if (env) mdb_env_close(env);
    if (e) return srlm_set_error(SRLM_EIO, "copying the store %s to %s: %s", from, to, mdb_strerror(e));
    return 0;
}

/* The `srlm run` config of one stage: run_options + the stage (minus study-only keys),
 * with model, seed, threads, store, and the study's prompt format. New reference. */
static json_t *pipeline_json(study *S, const char *stage_name, const json_t *sd, uint64_t seed, const char *in_model,
                             const char *dbdir) {
    const char *type = jstr(sd, "type", "");
    int logit_kd = !strcmp(type, "kd") && !strcmp(jstr(sd, "kd_mode", "sequence"), "logit");
    json_t *pc = json_deep_copy(json_object_get(S->cfg, "run_options"));
    if (!pc) pc = json_object();
    json_t *stage = json_deep_copy(sd);
    json_object_del(stage, "runner");
    if (!strcmp(type, "kd") && !logit_kd && !json_object_get(stage, "sources"))
        json_object_set_new(stage, "sources", json_string("teacher-traces"));
    if (logit_kd && !json_object_get(stage, "teacher") && S->teacher[0])
        json_object_set_new(stage, "teacher", json_string(S->teacher));
    if (S->prompt_format && !json_object_get(stage, "prompt_format"))
        json_object_set_new(stage, "prompt_format", json_string(S->prompt_format));
    if (S->chat && !json_object_get(stage, "chat")) json_object_set_new(stage, "chat", json_true());
    json_object_set_new(stage, "name", json_string(stage_name));
    json_object_set_new(pc, "name", json_string(stage_name));
    json_object_set_new(pc, "model", json_string(in_model));
    json_object_set_new(pc, "seed", json_integer((json_int_t)seed));
    if (S->threads > 0 && !json_object_get(pc, "threads")) json_object_set_new(pc, "threads", json_integer(S->threads));
    json_object_set_new(pc, "data", json_pack("{s:s}", "db", dbdir));
    json_object_set_new(pc, "stages", json_pack("[o]", stage));
    return pc;
}

/* Validate every stage that runs through `srlm run` with `srlm run --check` before
 * anything is trained (a typo fails in a second, not after an hour). */
static int check_stages(study *S) {
    const char *name;
    json_t *sd;
    int rc = 0;
    json_object_foreach(json_object_get(S->cfg, "stages"), name, sd) {
        if (!json_is_object(sd)) return srlm_set_error(SRLM_EINVAL, "study config: stages.%s: expected an object", name);
        const char *type = jstr(sd, "type", "");
        if (strcmp(type, "sft") && strcmp(type, "kd") && strcmp(type, "grpo"))
            return srlm_set_error(SRLM_EINVAL, "study config: stages.%s: 'type' must be sft, kd or grpo", name);
        if (strcmp(jstr(sd, "runner", "run"), "run")) continue;
        char cpath[ST_PATH], log[ST_PATH], db[ST_PATH];
        srlm_fmt(cpath, sizeof cpath, "%s/logs/check-%s.json", S->run, name);
        srlm_fmt(log, sizeof log, "%s/logs/check.log", S->run);
        srlm_fmt(db, sizeof db, "%s/data.lmdb", S->run);
        json_t *pc = pipeline_json(S, name, sd, 1, S->student, db);
        char *txt = json_dumps(pc, JSON_INDENT(2));
        json_decref(pc);
        rc = txt ? srlm_write_file_atomic(cpath, txt, strlen(txt)) : SRLM_ENOMEM;
        free(txt);
        if (rc) return rc;
        st_argv a = {0};
        av_push(&a, S->exe);
        av_push(&a, "run");
        av_push(&a, "--check");
        av_push(&a, cpath);
        rc = run_logged(&a, log, NULL);
        av_free(&a);
        if (rc) { /* quote srlm run's reason: with --check the log goes away with the run dir */
            char *txt = NULL, *why = NULL;
            size_t n = 0;
            if (!srlm_read_file(log, &txt, &n, 0)) {
                while (n && (txt[n - 1] == '\n' || txt[n - 1] == ' ')) txt[--n] = 0;
                why = strrchr(txt, '\n');
                why = why ? why + 1 : txt;
            }
            rc = srlm_set_error(SRLM_EINVAL, "study config: stages.%s is not a valid pipeline stage: %s", name,
                                why && *why ? why : "(srlm run --check said nothing)");
            free(txt);
            return rc;
        }
    }
    return 0;
}

/* Run one stage: in_model -> a new model under stage_dir; out_model gets its path. `who`
 * (pipeline name, "base" or "teacher") labels the progress lines: "rl: grpo (seed 1)".
 * The one function to switch between stage runners:
 *   runner "run"   (default) `srlm run STAGE_DIR/pipeline.json`: the services — dataset
 *                  server, trainer, and for GRPO generator, broker and reward workers;
 *   runner "train" `srlm train sft` in one process (SFT / sequence-level KD only). */
static int stage_run(study *S, const char *who, const char *stage_name, uint64_t seed, const char *in_model,
                     const char *stage_dir, char *out_model, size_t n, double *seconds) {
    const json_t *sd = json_object_get(json_object_get(S->cfg, "stages"), stage_name);
    if (!json_is_object(sd)) return srlm_set_error(SRLM_EINVAL, "study config: stage '%s' is not defined in 'stages'", stage_name);
    const char *type = jstr(sd, "type", NULL);
    if (!type || (strcmp(type, "sft") && strcmp(type, "kd") && strcmp(type, "grpo")))
        return srlm_set_error(SRLM_EINVAL, "stages.%s: 'type' must be sft, kd or grpo", stage_name);
    const char *runner = jstr(sd, "runner", "run");
    int logit_kd = !strcmp(type, "kd") && !strcmp(jstr(sd, "kd_mode", "sequence"), "logit");
    int rc = srlm_mkdir_p(stage_dir);
    if (rc) return rc;
    char log[ST_PATH];
    srlm_fmt(log, sizeof log, "%s/stage.log", stage_dir);
    st_argv a = {0};
    av_push(&a, S->exe);
    if (!strcmp(runner, "train")) {
        if (!strcmp(type, "grpo") || logit_kd) {
            av_free(&a);
            return srlm_set_error(SRLM_EINVAL, "stages.%s: runner 'train' supports sft and sequence-level kd only", stage_name);
        }
        char data[ST_PATH];
        long cnt = 0;
        srlm_fmt(data, sizeof data, "%s/samples.jsonl", stage_dir);
        const char *src = jstr(sd, "sources", !strcmp(type, "kd") ? "teacher-traces" : NULL);
        if ((rc = write_sft_jsonl(S, src, jstr(sd, "splits", "train"), data, &cnt))) {
            av_free(&a);
            return rc;
        }
        av_push(&a, "train");
        av_push(&a, "sft");
        av_push(&a, "--model");
        av_push(&a, in_model);
        av_push(&a, "--data");
        av_push(&a, data);
        av_push(&a, "--out");
        av_pushf(&a, "%s/model", stage_dir);
        av_push(&a, "--seed");
        av_pushf(&a, "%llu", (unsigned long long)seed);
        static const char *const MAP[][2] = {{"steps", "steps"}, {"lr", "lr"}, {"batch_size", "batch-size"},
                                             {"lora_rank", "lora-rank"}, {"lora_alpha", "lora-alpha"},
                                             {"optimizer", "optimizer"}, {"schedule", "schedule"},
                                             {"warmup_steps", "warmup-steps"}, {"max_seq_len", "max-seq-len"},
                                             {"weight_decay", "weight-decay"}, {"lora_targets", "lora-targets"}};
        json_t *fl = json_object();
        for (size_t k = 0; k < sizeof MAP / sizeof MAP[0]; k++)
            if (json_object_get(sd, MAP[k][0])) json_object_set(fl, MAP[k][1], json_object_get(sd, MAP[k][0]));
        av_flags(&a, fl);
        json_decref(fl);
    } else if (!strcmp(runner, "run")) {
        char dbdir[ST_PATH];
        srlm_fmt(dbdir, sizeof dbdir, "%s/data.lmdb", stage_dir);
        if ((rc = copy_store(S->db, dbdir))) {
            av_free(&a);
            return rc;
        }
        json_t *pc = pipeline_json(S, stage_name, sd, seed, in_model, dbdir);
        char cpath[ST_PATH];
        srlm_fmt(cpath, sizeof cpath, "%s/pipeline.json", stage_dir);
        char *txt = json_dumps(pc, JSON_INDENT(2));
        json_decref(pc);
        rc = txt ? srlm_write_file_atomic(cpath, txt, strlen(txt)) : SRLM_ENOMEM;
        free(txt);
        if (rc) {
            av_free(&a);
            return rc;
        }
        av_push(&a, "run");
        av_push(&a, cpath);
        av_push(&a, "--quiet");
        av_push(&a, "--run-dir");
        av_pushf(&a, "%s/run", stage_dir);
    } else {
        av_free(&a);
        return srlm_set_error(SRLM_EINVAL, "stages.%s: unknown runner '%s' (run, train)", stage_name, runner);
    }
    char mpath[ST_PATH], label[256];
    srlm_fmt(mpath, sizeof mpath, "%s/%s", stage_dir, !strcmp(runner, "run") ? "run/metrics.jsonl" : "model/metrics.jsonl");
    srlm_fmt(label, sizeof label, "%s: %s (seed %llu)", who, stage_name, (unsigned long long)seed);
    st_watch w = {mpath, label, (int)jnum(sd, "steps", 0)};
    rc = run_logged_w(&a, log, seconds, &w);
    av_free(&a);
    if (rc) return rc;
    char d[ST_PATH];
    srlm_fmt(d, sizeof d, "%s/%s", stage_dir, !strcmp(runner, "run") ? "run" : "model");
    return find_output_model(d, out_model, n);
}

/* Read a stage's curve from its metrics.jsonl: x = the stage's own step (stage_step,
 * else step), y = reward_mean for GRPO, loss otherwise. */
static void read_curve(st_curve *c, const char *stage_dir) {
    const char *cands[] = {"run/metrics.jsonl", "model/metrics.jsonl", "metrics.jsonl"};
    char path[ST_PATH];
    FILE *f = NULL;
    for (int i = 0; i < 3 && !f; i++) {
        srlm_fmt(path, sizeof path, "%s/%s", stage_dir, cands[i]);
        f = fopen(path, "r");
    }
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    long k = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        if (!o) continue;
        k++;
        double step = jnum(o, "stage_step", jnum(o, "step", (double)k));
        const json_t *y = json_object_get(o, c->grpo ? "reward_mean" : "loss");
        if (c->grpo && !y) y = json_object_get(o, "reward");
        if (json_is_number(y)) {
            c->x = srlm_xrealloc(c->x, (size_t)(c->n + 1) * sizeof(double));
            c->y = srlm_xrealloc(c->y, (size_t)(c->n + 1) * sizeof(double));
            c->x[c->n] = step;
            c->y[c->n++] = json_number_value(y);
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
}

/* Record that pipeline `pipe` used the trained stage `key` (first seed): a new curve read
 * from stage_dir, or the pipeline added to the label of the curve already read. */
static void add_curve(study *S, const char *key, const char *stage, const char *pipe, const char *stage_dir) {
    st_curve *c = NULL;
    for (int i = 0; i < S->n_curves && !c; i++)
        if (!strcmp(S->curves[i].key, key)) c = &S->curves[i];
    if (c) {
        size_t l = strlen(c->pipes);
        srlm_fmt(c->pipes + l, sizeof c->pipes - l, ", %s", pipe);
    } else {
        S->curves = srlm_xrealloc(S->curves, (size_t)(S->n_curves + 1) * sizeof *S->curves);
        c = &S->curves[S->n_curves++];
        memset(c, 0, sizeof *c);
        srlm_fmt(c->key, sizeof c->key, "%s", key);
        srlm_fmt(c->stage, sizeof c->stage, "%s", stage);
        srlm_fmt(c->pipes, sizeof c->pipes, "%s", pipe);
        const json_t *sd = json_object_get(json_object_get(S->cfg, "stages"), stage);
        c->grpo = !strcmp(jstr(sd, "type", ""), "grpo");
        read_curve(c, stage_dir);
    }
    srlm_fmt(c->label, sizeof c->label, "%s: %s", c->pipes, c->stage);
}

/* ---- evaluation ------------------------------------------------------------------------- */
static int eval_model(study *S, const char *model, const json_t *ev, uint64_t seed, const char *outdir, json_t **summary,
                      double *seconds) {
    st_argv a = {0};
    av_push(&a, S->exe);
    av_push(&a, "eval");
    av_push(&a, "--model");
    av_push(&a, model);
    const char *ds = jstr(ev, "dataset", NULL);
    if (!strncmp(ds, "study:", 6)) av_pushf(&a, "--dataset=%s:%s", S->db, ds + 6);
    else av_pushf(&a, "--dataset=%s", ds);
    json_t *flags = json_deep_copy(ev);
    json_object_del(flags, "dataset");
    json_object_del(flags, "name");
    json_t *common = json_object_get(S->cfg, "eval_options");
    const char *k;
    json_t *v;
    json_object_foreach(common, k, v) if (!json_object_get(flags, k)) json_object_set(flags, k, v);
    if (S->prompt_format && !json_object_get(flags, "prompt-format"))
        json_object_set_new(flags, "prompt-format", json_string(S->prompt_format));
    if (S->chat) json_object_set_new(flags, "chat", json_true());
    av_flags(&a, flags);
    json_decref(flags);
    av_push(&a, "--seed");
    av_pushf(&a, "%llu", (unsigned long long)seed);
    if (S->threads > 0) {
        av_push(&a, "--threads");
        av_pushf(&a, "%d", S->threads);
    }
    av_push(&a, "--quiet");
    av_push(&a, "--out");
    av_push(&a, outdir);
    char log[ST_PATH];
    srlm_fmt(log, sizeof log, "%s/eval.log", outdir);
    int rc = srlm_mkdir_p(outdir);
    if (!rc) rc = run_logged(&a, log, seconds);
    av_free(&a);
    if (rc) return rc;
    char sp[ST_PATH];
    srlm_fmt(sp, sizeof sp, "%s/summary.json", outdir);
    json_error_t err;
    *summary = json_load_file(sp, 0, &err);
    if (!*summary) return srlm_set_error(SRLM_EFORMAT, "%s: %s", sp, err.text);
    return 0;
}

static void cell_add(st_cell *c, int si, const json_t *sum) {
    c->acc[si] = jnum(sum, "accuracy", NAN);
    c->n_problems = (int)jnum(sum, "n_problems", 0);
    c->scored[si] = (long)jnum(sum, "n_scored", 0);
    c->errors[si] = (long)jnum(sum, "n_errors", 0);
    if (si + 1 > c->n) c->n = si + 1;
}

/* Mean, sample std (0 for one value), min and max of the finite values of x[n]; returns
 * how many there were (mean/min/max NAN when none). */
static int finite_stats(const double *x, int n, double *mean, double *sd, double *mn, double *mx) {
    double s = 0, v = 0;
    int k = 0;
    *mn = INFINITY;
    *mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) {
            s += x[i];
            k++;
            *mn = fmin(*mn, x[i]);
            *mx = fmax(*mx, x[i]);
        }
    *mean = k ? s / k : NAN;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) v += (x[i] - *mean) * (x[i] - *mean);
    *sd = k > 1 ? sqrt(v / (k - 1)) : 0;
    if (!k) *mn = *mx = NAN;
    return k;
}

static void cell_stats(st_cell *c) {
    finite_stats(c->acc, c->n, &c->acc_mean, &c->acc_std, &c->acc_min, &c->acc_max);
}

/* ---- the report -------------------------------------------------------------------------- */
static const char *stage_list(const st_pipe *p, char *buf, size_t n) {
    buf[0] = 0;
    size_t i;
    json_t *s;
    json_array_foreach(p->stages, i, s) {
        size_t l = strlen(buf);
        srlm_fmt(buf + l, n - l, "%s%s", i ? " → " : "", json_string_value(s));
    }
    if (!buf[0]) srlm_fmt(buf, n, "(none)");
    return buf;
}

static void fmt_acc(const st_cell *c, char *buf, size_t n) {
    if (!c->n || !isfinite(c->acc_mean)) srlm_fmt(buf, n, "—");
    else if (c->n > 1) srlm_fmt(buf, n, "%.3f ± %.3f", c->acc_mean, c->acc_std);
    else srlm_fmt(buf, n, "%.3f", c->acc_mean);
}

/* The pipeline whose stages are P's minus the last one (the base pipeline for a one-stage
 * pipeline), or -1: the model P's last stage started from. */
static int parent_pipe(const study *S, int p) {
    const json_t *a = S->pipes[p].stages;
    size_t n = json_array_size(a);
    if (!n) return -1;
    for (int q = 0; q < S->n_pipes; q++) {
        const json_t *b = S->pipes[q].stages;
        if (q == p || json_array_size(b) != n - 1) continue;
        size_t i = 0;
        while (i < n - 1 && json_equal(json_array_get(a, i), json_array_get(b, i))) i++;
        if (i == n - 1) return q;
    }
    return -1;
}

/* report.md: the effect of each pipeline's last stage, paired by seed: Δ_s = acc(P, s) −
 * acc(parent, s) (the base model does not depend on the seed), mean ± sample std over
 * seeds and the per-seed values. */
static void stage_effects(const study *S, FILE *sp) {
    int any = 0;
    for (int p = 0; p < S->n_pipes; p++) {
        int q = parent_pipe(S, p);
        if (q < 0 || S->pipes[p].failed || S->pipes[q].failed) continue;
        if (!any) {
            fprintf(sp, "\n### Effect of each stage, paired by seed\n\nΔ of the last stage of each pipeline "
                        "over the pipeline it starts from (same seed), mean ± sample std over seeds [per-seed "
                        "values]; with several seeds, the spread it is compared with is the largest of the "
                        "seed-to-seed std of the two pipelines' accuracies and of the paired Δ (**> spread** when "
                        "|mean Δ| exceeds it):\n\n| stage | from → to |");
            for (int e = 0; e < S->n_evals; e++) fprintf(sp, " Δ %s |", jstr(json_array_get(S->evals, e), "name", "?"));
            fprintf(sp, "\n|---|---|");
            for (int e = 0; e < S->n_evals; e++) fprintf(sp, "---|");
            fprintf(sp, "\n");
            any = 1;
        }
        const json_t *st = S->pipes[p].stages;
        fprintf(sp, "| %s | %s → %s |", json_string_value(json_array_get(st, json_array_size(st) - 1)),
                S->pipes[q].name, S->pipes[p].name);
        for (int e = 0; e < S->n_evals; e++) {
            const st_cell *a = &S->pipes[p].cells[e], *b = &S->pipes[q].cells[e];
            double d[ST_MAX_SEEDS], m, sd, lo, hi;
            int n = 0;
            for (int i = 0; i < a->n; i++) {
                double base = b->n == 1 ? b->acc[0] : i < b->n ? b->acc[i] : NAN;
                if (isfinite(a->acc[i]) && isfinite(base)) d[n++] = a->acc[i] - base;
            }
            if (!finite_stats(d, n, &m, &sd, &lo, &hi)) {
                fprintf(sp, " — |");
                continue;
            }
            if (n > 1) fprintf(sp, " %+.3f ± %.3f [", m, sd);
            else fprintf(sp, " %+.3f [", m);
            for (int i = 0; i < n; i++) fprintf(sp, "%s%+.3f", i ? ", " : "", d[i]);
            fprintf(sp, "]");
            if (n > 1) {
                double spread = fmax(sd, fmax(a->n > 1 ? a->acc_std : 0, b->n > 1 ? b->acc_std : 0));
                fprintf(sp, fabs(m) > spread ? " **> spread %.3f**" : " ≤ spread %.3f", spread);
            }
            fprintf(sp, " |");
        }
        fprintf(sp, "\n");
    }
    if (any) fprintf(sp, "\n");
}

/* An evaluation flag of the set, else of eval_options (NULL: the srlm eval default). */
static const json_t *eval_flag(const study *S, const json_t *ev, const char *k) {
    const json_t *v = json_object_get(ev, k);
    return v ? v : json_object_get(json_object_get(S->cfg, "eval_options"), k);
}

/* "greedy" or "4 samples at T 0.7" (pass@1 = the mean fraction correct), with the token limit. */
static void eval_decoding(const study *S, const json_t *ev, char *out, size_t n) {
    const json_t *ns = eval_flag(S, ev, "samples"), *t = eval_flag(S, ev, "temperature");
    const json_t *mt = eval_flag(S, ev, "max-new-tokens");
    if (!ns) ns = eval_flag(S, ev, "n");
    long k = json_is_integer(ns) ? (long)json_integer_value(ns) : 1;
    double temp = json_is_number(t) ? json_number_value(t) : 0;
    char lim[40] = "";
    if (json_is_integer(mt)) srlm_fmt(lim, sizeof lim, ", ≤ %lld new tokens", (long long)json_integer_value(mt));
    if (temp > 0) srlm_fmt(out, n, "%ld sample%s at T %g%s", k, k == 1 ? "" : "s", temp, lim);
    else srlm_fmt(out, n, "greedy%s", lim);
}

static int write_report(study *S, double total_s) {
    char path[ST_PATH];
    int base = -1;
    for (int p = 0; p < S->n_pipes; p++)
        if (json_array_size(S->pipes[p].stages) == 0) base = p;
    /* the table, on stdout and in the report */
    char *table = NULL;
    size_t tlen = 0;
    FILE *t = open_memstream(&table, &tlen);
    fprintf(t, "| pipeline | stages |");
    for (int e = 0; e < S->n_evals; e++) fprintf(t, " %s acc |", jstr(json_array_get(S->evals, e), "name", "?"));
    if (base >= 0)
        for (int e = 0; e < S->n_evals; e++) fprintf(t, " Δ %s |", jstr(json_array_get(S->evals, e), "name", "?"));
    fprintf(t, " train s | eval s |\n|---|---|");
    for (int e = 0; e < S->n_evals * (base >= 0 ? 2 : 1); e++) fprintf(t, "---:|");
    fprintf(t, "---:|---:|\n");
    for (int p = 0; p < S->n_pipes; p++) {
        st_pipe *P = &S->pipes[p];
        char sl[512], ab[64];
        fprintf(t, "| %s | %s |", S->pipes[p].name,
                stage_list(P, sl, sizeof sl));
        for (int e = 0; e < S->n_evals; e++) {
            fmt_acc(&P->cells[e], ab, sizeof ab);
            fprintf(t, " %s |", P->failed && !P->cells[e].n ? "failed" : ab);
        }
        if (base >= 0)
            for (int e = 0; e < S->n_evals; e++) {
                double d = P->cells[e].acc_mean - S->pipes[base].cells[e].acc_mean;
                if (p == base || !isfinite(d)) fprintf(t, " |");
                else fprintf(t, " %+.3f |", d);
            }
        double tr = 0, ev = 0;
        for (int s = 0; s < S->n_seeds; s++) {
            tr += P->train_s[s];
            ev += P->eval_s[s];
        }
        fprintf(t, " %.0f | %.0f |\n", tr, ev);
    }
    fclose(t);
    printf("\n%s\n", table);

    /* seed spread: the largest std (and range) over pipelines with stages, per eval set */
    char *spread = NULL;
    size_t splen = 0;
    FILE *sp = open_memstream(&spread, &splen);
    if (S->n_seeds > 1) {
        fprintf(sp, "Seeds: %d (", S->n_seeds);
        for (int s = 0; s < S->n_seeds; s++) fprintf(sp, "%s%d", s ? ", " : "", S->seeds[s]);
        fprintf(sp, "). Seed-to-seed spread of held-out accuracy (sample std; max − min):\n\n");
        fprintf(sp, "| pipeline |");
        for (int e = 0; e < S->n_evals; e++) fprintf(sp, " %s std | %s range |", jstr(json_array_get(S->evals, e), "name", "?"), jstr(json_array_get(S->evals, e), "name", "?"));
        fprintf(sp, "\n|---|");
        for (int e = 0; e < S->n_evals; e++) fprintf(sp, "---:|---:|");
        fprintf(sp, "\n");
        for (int p = 0; p < S->n_pipes; p++) {
            fprintf(sp, "| %s |", S->pipes[p].name);
            for (int e = 0; e < S->n_evals; e++) {
                st_cell *c = &S->pipes[p].cells[e];
                if (c->n > 1) fprintf(sp, " %.3f | %.3f |", c->acc_std, c->acc_max - c->acc_min);
                else fprintf(sp, " — | — |");
            }
            fprintf(sp, "\n");
        }
    } else {
        fprintf(sp, "One seed (%d): the seed-to-seed spread is not measured in this run; run with "
                    "`--seeds 1,2,3` (docs/study.md states the spread measured that way).\n",
                S->seeds[0]);
    }
    stage_effects(S, sp);
    fclose(sp);

    /* plots: one chart per stage kind, one curve per trained stage (first seed) */
    plot_series *ls = srlm_xcalloc((size_t)S->n_curves + 1, sizeof *ls), *rs = srlm_xcalloc((size_t)S->n_curves + 1, sizeof *rs);
    int nl = 0, nr = 0;
    for (int i = 0; i < S->n_curves; i++) {
        const st_curve *c = &S->curves[i];
        if (!c->n) continue;
        if (c->grpo) rs[nr++] = (plot_series){c->label, c->x, c->y, c->n};
        else ls[nl++] = (plot_series){c->label, c->x, c->y, c->n};
    }
    int have_loss = 0, have_rew = 0, have_acc = 0;
    srlm_fmt(path, sizeof path, "%s/loss_curves.svg", S->run);
    if (nl && !plot_line_svg(path, "SFT / KD training loss (first seed)", "step of the stage", "cross-entropy loss", ls, nl))
        have_loss = 1;
    srlm_fmt(path, sizeof path, "%s/reward_curves.svg", S->run);
    if (nr && !plot_line_svg(path, "GRPO mean rollout reward (first seed)", "GRPO step", "mean reward", rs, nr))
        have_rew = 1;
    free(ls);
    free(rs);
    {
        const char **groups = srlm_xcalloc((size_t)S->n_pipes, sizeof *groups);
        const char **series = srlm_xcalloc((size_t)S->n_evals, sizeof *series);
        double *vals = srlm_xcalloc((size_t)S->n_pipes * S->n_evals, sizeof *vals);
        double *errs = srlm_xcalloc((size_t)S->n_pipes * S->n_evals, sizeof *errs);
        for (int p = 0; p < S->n_pipes; p++)
            groups[p] = S->pipes[p].name;
        for (int e = 0; e < S->n_evals; e++) {
            series[e] = jstr(json_array_get(S->evals, e), "name", "?");
            for (int p = 0; p < S->n_pipes; p++) {
                vals[e * S->n_pipes + p] = S->pipes[p].cells[e].n ? S->pipes[p].cells[e].acc_mean : NAN;
                errs[e * S->n_pipes + p] = S->pipes[p].cells[e].acc_std;
            }
        }
        srlm_fmt(path, sizeof path, "%s/accuracy.svg", S->run);
        const char *title = S->n_seeds > 1 ? "Held-out accuracy per pipeline (mean ± std over seeds)"
                                           : "Held-out accuracy per pipeline (one seed)";
        if (!plot_bars_svg(path, title, "accuracy", groups,
                           S->n_pipes, series, S->n_evals, vals, errs))
            have_acc = 1;
        free(groups);
        free(series);
        free(vals);
        free(errs);
    }

    /* report.md */
    char *md = NULL;
    size_t mdlen = 0;
    FILE *r = open_memstream(&md, &mdlen);
    char when[40];
    srlm_iso_time(when, sizeof when);
    fprintf(r, "# srlm study: %s\n\n", S->name);
    const char *desc = jstr(S->cfg, "description", NULL);
    if (desc) fprintf(r, "%s\n\n", desc);
    fprintf(r, "Finished %s in %.1f min (setup %.0f s, teacher %.0f s) on %ld CPU cores; run directory `%s`.\n"
               "Every number below was measured in this run (summary.json of each evaluation, "
               "metrics.jsonl of each stage).\n\n",
            when, total_s / 60, S->setup_s, S->teacher_s, sysconf(_SC_NPROCESSORS_ONLN), S->run);
    if (S->base_stages[0])
        fprintf(r, "Every pipeline starts from the same model, the `base` row: the student after the base stages "
                   "%s (%.0f s, trained once before the pipelines, independent of the seed): `%s`.\n\n",
                S->base_stages, S->base_s, S->student);
    fprintf(r, "## Held-out accuracy\n\nAccuracy = mean over problems of the fraction of samples judged correct "
               "by the reward scorers (pass@1)%s; Δ = difference to the base model, from the unrounded "
               "accuracies (so it can differ from the difference of the rounded ones by 0.001). How each set is decoded "
               "(greedy, or several samples at a temperature): *Evaluation sets* below.\n\n%s\n",
            S->n_seeds > 1 ? ", mean ± sample std over seeds" : "", table);
    for (int p = 0; p < S->n_pipes; p++)
        if (S->pipes[p].failed) fprintf(r, "- **%s failed**: %s\n", S->pipes[p].name, S->pipes[p].error);
    fprintf(r, "\n## Seed spread\n\n%s\n", spread);
    fprintf(r, "## Evaluation sets\n\n| name | dataset | decoding | problems | completions scored (all models) | "
               "scorer errors |\n|---|---|---|---:|---:|---:|\n");
    for (int e = 0; e < S->n_evals; e++) {
        long sc = 0, er = 0;
        int np_ = 0;
        for (int p = 0; p < S->n_pipes; p++)
            for (int s = 0; s < S->pipes[p].cells[e].n; s++) {
                sc += S->pipes[p].cells[e].scored[s];
                er += S->pipes[p].cells[e].errors[s];
                np_ = S->pipes[p].cells[e].n_problems;
            }
        const json_t *ev = json_array_get(S->evals, e);
        char dec[96];
        eval_decoding(S, ev, dec, sizeof dec);
        fprintf(r, "| %s | %s%s%s | %s | %d | %ld | %ld |\n", jstr(ev, "name", "?"), jstr(ev, "dataset", "?"),
                jstr(ev, "sources", NULL) ? " sources=" : "", jstr(ev, "sources", ""), dec, np_, sc, er);
    }
    if (S->teacher_used && S->n_traces)
        fprintf(r, "\nTeacher: `%s`; %ld traces kept for KD (`%s`).\n", S->teacher, S->n_traces, S->traces_jsonl);
    else if (S->teacher_used)
        fprintf(r, "\nTeacher: `%s` (logit KD; no traces written).\n", S->teacher);
    else if (S->teacher[0])
        fprintf(r, "\nTeacher: not trained (no pipeline of this run has a KD stage).\n");
    fprintf(r, "\n## Plots\n\n");
    if (have_acc) fprintf(r, "![accuracy per pipeline](accuracy.svg)\n\n");
    if (have_loss || have_rew)
        fprintf(r, "Curves of the first seed against each stage's own step, one per trained stage, labelled "
                   "`pipelines: stage`; a stage prefix shared by several pipelines is trained once and drawn once, "
                   "labelled with every pipeline that uses it.\n\n");
    if (have_loss) fprintf(r, "![SFT / KD training loss](loss_curves.svg)\n\n");
    if (have_rew) fprintf(r, "![GRPO mean reward](reward_curves.svg)\n\n");
    if (!have_loss && !have_rew) fprintf(r, "(no stage wrote metrics.jsonl: no curves)\n\n");
    char *cfg = json_dumps(S->cfg, ST_JSON_HUMAN);
    fprintf(r, "## Settings\n\nThe study config as run (also in `config.json`):\n\n```json\n%s\n```\n\n", cfg ? cfg : "");
    free(cfg);
    fprintf(r, "## Files\n\n- `base/stage-I-STAGE/` — the starting model's own stages (config key `base`)\n"
               "- `pipelines/NAME/seed-S/stage-I-STAGE/` — each stage's config, log and model\n"
               "- `pipelines/NAME/seed-S/eval/SET/` — results.jsonl (every completion, extracted answer, verdict) "
               "and summary.json\n- `study.log`, `logs/` — what ran, with timings\n");
    fclose(r);
    srlm_fmt(path, sizeof path, "%s/report.md", S->run);
    int rc = srlm_write_file_atomic(path, md, mdlen);
    free(md);
    free(table);
    free(spread);
    if (!rc) note(S, "report: %s", path);
    return rc;
}

static int write_results_json(study *S) {
    json_t *o = json_pack("{s:s,s:[]}", "name", S->name, "pipelines");
    for (int p = 0; p < S->n_pipes; p++) {
        json_t *po = json_pack("{s:s,s:O,s:b,s:o}", "name",
                               S->pipes[p].name, "stages",
                               S->pipes[p].stages, "failed", S->pipes[p].failed, "eval", json_object());
        for (int e = 0; e < S->n_evals; e++) {
            st_cell *c = &S->pipes[p].cells[e];
            json_t *accs = json_array();
            for (int s = 0; s < c->n; s++) json_array_append_new(accs, isfinite(c->acc[s]) ? json_real(c->acc[s]) : json_null());
            json_object_set_new(json_object_get(po, "eval"), jstr(json_array_get(S->evals, e), "name", "?"),
                                json_pack("{s:o,s:o,s:o,s:i}", "accuracy", accs, "mean",
                                          isfinite(c->acc_mean) ? json_real(c->acc_mean) : json_null(), "std",
                                          c->n > 1 ? json_real(c->acc_std) : json_null(), /* undefined for one seed */
                                          "problems", c->n_problems));
        }
        json_array_append_new(json_object_get(o, "pipelines"), po);
    }
    /* the starting model every pipeline shares (after the config's base stages, if any) */
    json_object_set_new(o, "base", json_pack("{s:s,s:s,s:f}", "model", S->student, "stages", S->base_stages,
                                             "seconds", S->base_s));
    char path[ST_PATH];
    srlm_fmt(path, sizeof path, "%s/results.json", S->run);
    char *s = json_dumps(o, ST_JSON_HUMAN);
    json_decref(o);
    int rc = s ? srlm_write_file_atomic(path, s, strlen(s)) : SRLM_ENOMEM;
    free(s);
    return rc;
}

/* ---- the teacher ---------------------------------------------------------------------------- */
/* What a pipeline's stages need of the teacher: 1 = the trained teacher model (logit KD
 * gets its path), 2 = its traces (sequence KD reading the teacher-traces source, the
 * default of a kd stage without 'sources'); 0 = nothing. */
static int stage_teacher_need(const study *S, const char *stage) {
    const json_t *sd = json_object_get(json_object_get(S->cfg, "stages"), stage);
    if (strcmp(jstr(sd, "type", ""), "kd")) return 0;
    if (!strcmp(jstr(sd, "kd_mode", "sequence"), "logit")) return 1;
    const char *src = jstr(sd, "sources", NULL);
    return !src || strstr(src, "teacher-traces") ? 3 : 0;
}

static int teacher_need(const study *S, const json_t *stages) {
    int need = 0;
    size_t i;
    json_t *s;
    json_array_foreach(stages, i, s) need |= stage_teacher_need(S, json_string_value(s));
    return need;
}

/* RUN/base/stage-I-NAME: the directory of base stage i (0-based). */
static void base_stage_dir(const study *S, size_t i, const char *name, char *out, size_t n) {
    srlm_fmt(out, n, "%s/base/stage-%zu-%s", S->run, i + 1, name);
}

/* The starting model's own stages (config key "base": {"stages": [...]}, checked by
 * st_run): trained once, in order, before any pipeline, with the student model's seed (so
 * the base does not depend on --seeds). S->student becomes the last stage's model: the
 * analogue of a released instruction-tuned model (Qwen2.5-0.5B-Instruct) that every
 * pipeline of the study starts from. Errors: those of stage_run. */
static int run_base(study *S, const json_t *base) {
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(base, "stages"), i, st) {
        const char *name = json_string_value(st);
        char dir[ST_PATH], out[ST_PATH];
        base_stage_dir(S, i, name, dir, sizeof dir);
        double s = 0;
        note(S, "base: stage %s ...", name);
        int rc = stage_run(S, "base", name, S->base_seed, S->student, dir, out, sizeof out, &s);
        if (rc) return rc;
        note(S, "base: stage %s done in %.0f s -> %s", name, s, out);
        srlm_fmt(S->student, sizeof S->student, "%s", out);
    }
    return 0;
}

/* Train the teacher (its stages) and, when traces is set, write its traces. */
static int run_teacher(study *S, const json_t *tc, int traces) {
    int rc;
    char cur[ST_PATH];
    srlm_fmt(cur, sizeof cur, "%s", S->teacher);
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(tc, "stages"), i, st) {
        char dir[ST_PATH], out[ST_PATH];
        srlm_fmt(dir, sizeof dir, "%s/teacher/stage-%zu-%s", S->run, i + 1, json_string_value(st));
        double s = 0;
        note(S, "teacher: stage %s ...", json_string_value(st));
        if ((rc = stage_run(S, "teacher", json_string_value(st), (uint64_t)S->seeds[0], cur, dir, out, sizeof out, &s)))
            return rc;
        note(S, "teacher: stage %s done in %.0f s -> %s", json_string_value(st), s, out);
        srlm_fmt(cur, sizeof cur, "%s", out);
    }
    srlm_fmt(S->teacher, sizeof S->teacher, "%s", cur);
    /* traces: the teacher answers the train problems; correct answers become KD samples */
    const json_t *tr = json_object_get(tc, "traces");
    if (json_is_object(tr) && traces) {
        char outdir[ST_PATH];
        srlm_fmt(outdir, sizeof outdir, "%s/teacher/traces", S->run);
        json_t *ev = json_deep_copy(tr);
        int only_correct = !json_is_false(json_object_get(ev, "only_correct"));
        json_object_del(ev, "only_correct");
        if (!json_object_get(ev, "dataset")) json_object_set_new(ev, "dataset", json_string("study:train"));
        json_t *sum = NULL;
        double s = 0;
        note(S, "teacher: writing traces on %s ...", jstr(ev, "dataset", "?"));
        rc = eval_model(S, S->teacher, ev, (uint64_t)S->seeds[0], outdir, &sum, &s);
        json_decref(ev);
        if (rc) return rc;
        double acc = jnum(sum, "accuracy", 0);
        json_decref(sum);
        char rpath[ST_PATH];
        srlm_fmt(rpath, sizeof rpath, "%s/results.jsonl", outdir);
        FILE *in = fopen(rpath, "r"), *fo = fopen(S->traces_jsonl, "w");
        if (!in || !fo) {
            if (in) fclose(in);
            if (fo) fclose(fo);
            return srlm_set_error(SRLM_EIO, "%s / %s: %s", rpath, S->traces_jsonl, strerror(errno));
        }
        /* each kept completion becomes a record of source teacher-traces (the problem's
         * fields + "completion"), imported into the study store for the KD stages */
        ds_store *st = NULL;
        if ((rc = ds_open(S->db, DS_NOSYNC, &st))) {
            fclose(in);
            fclose(fo);
            return rc;
        }
        char *line = NULL;
        size_t cap = 0;
        long n = 0;
        while (getline(&line, &cap, in) > 0) {
            json_t *res = json_loads(line, 0, NULL);
            Dataset__Record *r = NULL;
            if (!res || ds_get(st, jstr(res, "id", ""), &r)) {
                json_decref(res);
                continue;
            }
            json_t *rec = ds_record_to_jsonobj(r);
            ds_record_free(r);
            pf_format f = PF_PLAIN;
            if (!S->prompt_format || pf_from_name(S->prompt_format, &f)) f = pf_default_for(rec);
            json_object_del(rec, "id");
            json_object_del(rec, "source");
            json_object_del(rec, "split");
            const json_t *comps = json_object_get(res, "completions"), *corr = json_object_get(res, "correct");
            for (size_t k = 0; k < json_array_size(comps); k++) {
                if (only_correct && !json_is_true(json_array_get(corr, k))) continue;
                const char *c = json_string_value(json_array_get(comps, k));
                if (f == PF_GSM8K && !S->chat)
                    while (c && (*c == ' ' || *c == '\t')) c++; /* the format adds the space back */
                if (!c || !*c) continue;
                json_object_set_new(rec, "completion", json_string(c));
                char *s2 = json_dumps(rec, JSON_COMPACT);
                if (s2) {
                    fprintf(fo, "%s\n", s2);
                    n++;
                }
                free(s2);
            }
            json_decref(rec);
            json_decref(res);
        }
        free(line);
        fclose(in);
        if (fclose(fo)) rc = srlm_set_error(SRLM_EIO, "%s: write failed", S->traces_jsonl);
        if (!rc && n) {
            ds_import_opts io;
            memset(&io, 0, sizeof io);
            io.format = "jsonl";
            io.split = "train";
            io.source = "teacher-traces";
            const char *files[] = {S->traces_jsonl};
            rc = ds_import_files(st, &io, files, 1, NULL);
        }
        ds_close(st);
        if (rc) return rc;
        S->n_traces = n;
        note(S, "teacher: train accuracy %.3f, %ld traces kept%s (%.0f s)", acc, n, only_correct ? " (correct ones only)" : "", s);
        if (!n) return srlm_set_error(SRLM_EINVAL, "the teacher produced no correct traces: train it longer (teacher.stages)");
    }
    return 0;
}

/* ---- the schedule ----------------------------------------------------------------------------
 * Every teacher run, trained stage and evaluation is a unit run in a child process; up to
 * `jobs` units run at once, each as soon as the units it needs have finished (a stage needs
 * the previous stage of its pipeline, a KD stage also the teacher, an evaluation the last
 * stage). A stage prefix shared by pipelines (the sft of sft and sft -> grpo) is one unit.
 * Units are seeded on their own, so the results do not depend on `jobs` or on the order in
 * which units finish; with jobs = 1 they run one after another in the config's order. */
enum { U_BASE, U_TEACHER, U_STAGE, U_EVAL };
enum { ST_PENDING, ST_RUNNING, ST_DONE, ST_FAILED };

typedef struct {
    int kind;
    int p, si, k, e;        /* pipeline, seed index, stage index (U_STAGE), eval set (U_EVAL) */
    int dep, dep_teacher;   /* units this one needs (-1: none) */
    const char *stage;      /* U_STAGE: stage name */
    char key[1024];         /* U_STAGE: seed-S/stage1/.../stageK */
    char dir[ST_PATH];      /* stage directory, evaluation output directory, RUN/teacher or RUN/base */
    char out[ST_PATH];      /* U_STAGE, U_BASE: the trained model, once done */
    double seconds;
    pid_t pid;
    int state;
    char error[1024];
} st_unit;

typedef struct {
    st_unit *u;
    int n;
    int *chain;             /* [n_pipes][n_seeds][ST_MAX_STAGES]: stage unit per pipeline stage */
    int *evals;             /* [n_pipes][n_seeds][n_evals]: eval unit */
} st_sched;

#define ST_MAX_STAGES 16

static int sched_add(st_sched *q, int kind, int p, int si, int dep) {
    q->u = srlm_xrealloc(q->u, (size_t)(q->n + 1) * sizeof *q->u);
    st_unit *u = &q->u[q->n];
    memset(u, 0, sizeof *u);
    u->kind = kind;
    u->p = p;
    u->si = si;
    u->dep = dep;
    u->dep_teacher = -1;
    return q->n++;
}

/* Build the units of the selected pipelines (stages deduplicated by their prefix key). With
 * base set, the base unit comes first and every pipeline's first stage and the base model's
 * evaluations need it. */
static int sched_build(study *S, st_sched *q, const json_t *base, int with_teacher) {
    int T = -1, B = -1;
    if (base) {
        B = sched_add(q, U_BASE, -1, 0, -1);
        srlm_fmt(q->u[B].dir, sizeof q->u[B].dir, "%s/base", S->run);
    }
    if (with_teacher) {
        T = sched_add(q, U_TEACHER, -1, 0, -1);
        srlm_fmt(q->u[T].dir, sizeof q->u[T].dir, "%s/teacher", S->run);
    }
    size_t per = (size_t)S->n_pipes * S->n_seeds;
    q->chain = srlm_xmalloc(per * ST_MAX_STAGES * sizeof(int));
    q->evals = srlm_xmalloc(per * (size_t)S->n_evals * sizeof(int));
    for (size_t i = 0; i < per * ST_MAX_STAGES; i++) q->chain[i] = -1;
    for (size_t i = 0; i < per * (size_t)S->n_evals; i++) q->evals[i] = -1;
    for (int p = 0; p < S->n_pipes; p++) {
        st_pipe *P = &S->pipes[p];
        int n_stages = (int)json_array_size(P->stages);
        if (n_stages > ST_MAX_STAGES)
            return srlm_set_error(SRLM_EINVAL, "pipeline %s: at most %d stages", P->name, ST_MAX_STAGES);
        int n_seeds = n_stages ? S->n_seeds : 1; /* the base model does not depend on a seed */
        for (int si = 0; si < n_seeds; si++) {
            int prev = B;
            char key[1024];
            srlm_fmt(key, sizeof key, "seed-%d", S->seeds[si]);
            for (int k = 0; k < n_stages; k++) {
                const char *sn = json_string_value(json_array_get(P->stages, k));
                size_t kl = strlen(key);
                srlm_fmt(key + kl, sizeof key - kl, "/%s", sn);
                int hit = -1;
                for (int i = 0; i < q->n && hit < 0; i++)
                    if (q->u[i].kind == U_STAGE && !strcmp(q->u[i].key, key)) hit = i;
                if (hit < 0) {
                    hit = sched_add(q, U_STAGE, p, si, prev);
                    st_unit *u = &q->u[hit];
                    u->k = k;
                    u->stage = sn;
                    srlm_fmt(u->key, sizeof u->key, "%s", key);
                    srlm_fmt(u->dir, sizeof u->dir, "%s/pipelines/%s/seed-%d/stage-%d-%s", S->run, P->name,
                             S->seeds[si], k + 1, sn);
                    if (T >= 0 && stage_teacher_need(S, sn)) u->dep_teacher = T;
                }
                q->chain[((size_t)p * S->n_seeds + si) * ST_MAX_STAGES + k] = hit;
                prev = hit;
            }
            for (int e = 0; e < S->n_evals; e++) {
                int id = sched_add(q, U_EVAL, p, si, prev);
                q->u[id].e = e;
                srlm_fmt(q->u[id].dir, sizeof q->u[id].dir, "%s/pipelines/%s/seed-%d/eval/%s", S->run, P->name,
                         S->seeds[si], jstr(json_array_get(S->evals, e), "name", "?"));
                q->evals[((size_t)p * S->n_seeds + si) * S->n_evals + e] = id;
            }
        }
    }
    return 0;
}

static void unit_result_path(const st_unit *u, char *out, size_t n) {
    srlm_fmt(out, n, "%s/unit.json", u->dir);
}

/* The child process of one unit: run it, write RESULT = {seconds, out | teacher fields,
 * error}, exit 0 on success. */
static void unit_child(study *S, const st_unit *u, const char *in_model, const json_t *tc, const json_t *base) {
    json_t *res = json_object();
    double s = 0, t0 = srlm_now();
    int rc = srlm_mkdir_p(u->dir);
    if (!rc && u->kind == U_BASE) {
        rc = run_base(S, base);
        json_object_set_new(res, "out", json_string(S->student));
        s = srlm_now() - t0;
    } else if (!rc && u->kind == U_TEACHER) {
        rc = run_teacher(S, tc, S->teacher_traces);
        json_object_set_new(res, "teacher", json_string(S->teacher));
        json_object_set_new(res, "n_traces", json_integer(S->n_traces));
        s = srlm_now() - t0;
    } else if (!rc && u->kind == U_STAGE) {
        char out[ST_PATH] = "";
        rc = stage_run(S, S->pipes[u->p].name, u->stage, (uint64_t)S->seeds[u->si], in_model, u->dir, out, sizeof out,
                       &s);
        json_object_set_new(res, "out", json_string(out));
    } else if (!rc) {
        json_t *sum = NULL;
        rc = eval_model(S, in_model, json_array_get(S->evals, u->e), (uint64_t)S->seeds[u->si], u->dir, &sum, &s);
        json_decref(sum);
    }
    json_object_set_new(res, "seconds", json_real(s));
    if (rc) json_object_set_new(res, "error", json_string(srlm_last_error()));
    char path[ST_PATH];
    unit_result_path(u, path, sizeof path);
    char *txt = json_dumps(res, JSON_COMPACT);
    if (txt) srlm_write_file_atomic(path, txt, strlen(txt));
    free(txt);
    json_decref(res);
    fflush(stdout);
    if (S->log) fflush(S->log);
    _exit(rc ? 1 : 0);
}

static const char *unit_input(const study *S, const st_sched *q, const st_unit *u) {
    return u->dep >= 0 ? q->u[u->dep].out : S->student;
}

static int unit_launch(study *S, st_sched *q, int i, const json_t *tc, const json_t *base) {
    st_unit *u = &q->u[i];
    const st_pipe *P = u->p >= 0 ? &S->pipes[u->p] : NULL;
    if (u->kind == U_TEACHER) note(S, "teacher: stages and traces ...");
    else if (u->kind == U_STAGE)
        note(S, "%s (seed %d): stage %d/%d %s ...", P->name, S->seeds[u->si], u->k + 1,
             (int)json_array_size(P->stages), u->stage);
    fflush(stdout);
    if (S->log) fflush(S->log);
    pid_t pid = fork();
    if (pid < 0) return srlm_set_error(SRLM_EIO, "fork: %s", strerror(errno));
    if (pid == 0) unit_child(S, u, unit_input(S, q, u), tc, base);
    u->pid = pid;
    u->state = ST_RUNNING;
    return 0;
}

/* A unit's child has exited: read its result, update the study. */
static void unit_finish(study *S, st_sched *q, st_unit *u, int status) {
    char path[ST_PATH];
    unit_result_path(u, path, sizeof path);
    json_t *res = json_load_file(path, 0, NULL);
    u->seconds = jnum(res, "seconds", 0);
    const char *err = jstr(res, "error", NULL);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && res && !err;
    if (!ok) {
        u->state = ST_FAILED;
        if (err) srlm_fmt(u->error, sizeof u->error, "%s", err);
        else srlm_fmt(u->error, sizeof u->error, "unit process %s %d (no result in %s)",
                      WIFEXITED(status) ? "exit status" : "signal",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), path);
    } else {
        u->state = ST_DONE;
    }
    const st_pipe *P = u->p >= 0 ? &S->pipes[u->p] : NULL;
    if (u->kind == U_BASE) {
        if (ok) {
            srlm_fmt(u->out, sizeof u->out, "%s", jstr(res, "out", ""));
            srlm_fmt(S->student, sizeof S->student, "%s", u->out);
            S->base_s = u->seconds;
        } else {
            note(S, "base: FAILED: %s", u->error);
        }
    } else if (u->kind == U_TEACHER) {
        if (ok) {
            srlm_fmt(S->teacher, sizeof S->teacher, "%s", jstr(res, "teacher", S->teacher));
            S->n_traces = (long)jnum(res, "n_traces", 0);
            S->teacher_s = u->seconds;
        } else {
            note(S, "teacher: FAILED: %s", u->error);
        }
    } else if (u->kind == U_STAGE) {
        if (ok) {
            srlm_fmt(u->out, sizeof u->out, "%s", jstr(res, "out", ""));
            note(S, "%s (seed %d): stage %s done in %.0f s", P->name, S->seeds[u->si], u->stage, u->seconds);
        } else {
            note(S, "%s (seed %d): stage %s FAILED: %s", P->name, S->seeds[u->si], u->stage, u->error);
        }
    } else {
        const json_t *ev = json_array_get(S->evals, u->e);
        json_t *sum = NULL;
        if (ok) {
            char sp[ST_PATH];
            srlm_fmt(sp, sizeof sp, "%s/summary.json", u->dir);
            json_error_t je;
            sum = json_load_file(sp, 0, &je);
            if (!sum) {
                u->state = ST_FAILED;
                srlm_fmt(u->error, sizeof u->error, "%s: %s", sp, je.text);
            }
        }
        if (sum) {
            cell_add(&S->pipes[u->p].cells[u->e], u->si, sum);
            note(S, "%s (seed %d): %s accuracy %.3f (%d problems, %ld scored, %.0f s)", P->name, S->seeds[u->si],
                 jstr(ev, "name", "?"), jnum(sum, "accuracy", NAN), (int)jnum(sum, "n_problems", 0),
                 (long)jnum(sum, "n_scored", 0), u->seconds);
            json_decref(sum);
        } else {
            note(S, "%s (seed %d): eval %s FAILED: %s", P->name, S->seeds[u->si], jstr(ev, "name", "?"), u->error);
        }
    }
    json_decref(res);
}

/* Mark every pipeline with a unit that failed or never ran; fill timings and curves. */
static int sched_collect(study *S, st_sched *q) {
    int rc = 0;
    int base_done = 0;
    for (int i = 0; i < q->n; i++) {
        if (q->u[i].kind != U_TEACHER && q->u[i].kind != U_BASE) continue;
        if (q->u[i].state != ST_DONE)
            rc = srlm_set_error(SRLM_EIO, "%s failed: %s", q->u[i].kind == U_BASE ? "base" : "teacher",
                                q->u[i].error[0] ? q->u[i].error : "not run");
        else base_done |= q->u[i].kind == U_BASE;
    }
    if (base_done) { /* the base stages' curves come first, labelled "base: STAGE" */
        size_t k;
        json_t *st;
        json_array_foreach(json_object_get(json_object_get(S->cfg, "base"), "stages"), k, st) {
            char dir[ST_PATH];
            base_stage_dir(S, k, json_string_value(st), dir, sizeof dir);
            add_curve(S, dir, json_string_value(st), "base", dir); /* the directory is the key */
        }
    }
    for (int p = 0; p < S->n_pipes; p++) {
        st_pipe *P = &S->pipes[p];
        int n_stages = (int)json_array_size(P->stages);
        int n_seeds = n_stages ? S->n_seeds : 1;
        for (int si = 0; si < n_seeds; si++) {
            const int *ch = &q->chain[((size_t)p * S->n_seeds + si) * ST_MAX_STAGES];
            const int *ev = &q->evals[((size_t)p * S->n_seeds + si) * S->n_evals];
            for (int j = 0; j < n_stages + S->n_evals; j++) {
                const st_unit *u = &q->u[j < n_stages ? ch[j] : ev[j - n_stages]];
                if (u->state == ST_DONE) {
                    if (j < n_stages) P->train_s[si] += u->seconds;
                    else P->eval_s[si] += u->seconds;
                    if (j < n_stages && si == 0) add_curve(S, u->key, u->stage, P->name, u->dir);
                } else if (!P->failed) {
                    P->failed = 1;
                    srlm_fmt(P->error, sizeof P->error, "%s", u->error[0] ? u->error : "not run (an earlier unit failed)");
                }
            }
        }
        for (int e = 0; e < S->n_evals; e++) cell_stats(&P->cells[e]);
    }
    return rc;
}

static int run_schedule(study *S, const json_t *tc, const json_t *base, int jobs, int keep_going) {
    st_sched q = {0};
    int rc = sched_build(S, &q, base, tc && S->teacher_used);
    int running = 0, stop = rc != 0;
    int n_stage = 0, n_eval = 0;
    for (int i = 0; i < q.n; i++) {
        n_stage += q.u[i].kind == U_STAGE;
        n_eval += q.u[i].kind == U_EVAL;
    }
    if (!rc) note(S, "schedule: %s%d stage run%s, %d evaluation%s%s, up to %d at once", base ? "the base stages, " : "",
                  n_stage, n_stage == 1 ? "" : "s", n_eval, n_eval == 1 ? "" : "s",
                  tc && S->teacher_used ? " and the teacher" : "", jobs);
    for (;;) {
        for (int i = 0; i < q.n && running < jobs && !stop; i++) {
            st_unit *u = &q.u[i];
            if (u->state != ST_PENDING) continue;
            int d1 = u->dep >= 0 ? q.u[u->dep].state : ST_DONE;
            int d2 = u->dep_teacher >= 0 ? q.u[u->dep_teacher].state : ST_DONE;
            if (d1 == ST_FAILED || d2 == ST_FAILED) {
                u->state = ST_FAILED;
                srlm_fmt(u->error, sizeof u->error, "%s", q.u[d1 == ST_FAILED ? u->dep : u->dep_teacher].error);
                continue;
            }
            if (d1 != ST_DONE || d2 != ST_DONE) continue;
            if ((rc = unit_launch(S, &q, i, tc, base))) {
                stop = 1;
                break;
            }
            running++;
        }
        if (!running) break;
        int status = 0;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            rc = srlm_set_error(SRLM_EIO, "waitpid: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < q.n; i++)
            if (q.u[i].state == ST_RUNNING && q.u[i].pid == pid) {
                running--;
                unit_finish(S, &q, &q.u[i], status);
                if (q.u[i].state == ST_FAILED && !keep_going) stop = 1;
            }
    }
    int rc2 = sched_collect(S, &q);
    if (!rc) rc = rc2;
    if (!rc && !keep_going)
        for (int p = 0; p < S->n_pipes && !rc; p++)
            if (S->pipes[p].failed)
                rc = srlm_set_error(SRLM_EIO, "pipeline %s failed: %s", S->pipes[p].name, S->pipes[p].error);
    free(q.u);
    free(q.chain);
    free(q.evals);
    return rc;
}

/* ---- main ------------------------------------------------------------------------------------ */
static int parse_seeds(study *S, const st_opts *o) {
    if (o->seeds) {
        int *v = NULL, n = 0;
        if (srlm_parse_int_list(o->seeds, &v, &n) || n < 1 || n > ST_MAX_SEEDS) {
            free(v);
            return srlm_set_error(SRLM_EINVAL, "--seeds '%s': 1..%d integers", o->seeds, ST_MAX_SEEDS);
        }
        memcpy(S->seeds, v, (size_t)n * sizeof *v);
        S->n_seeds = n;
        free(v);
        return 0;
    }
    const json_t *sd = json_object_get(S->cfg, "seeds");
    S->n_seeds = 0;
    size_t i;
    json_t *x;
    json_array_foreach(sd, i, x) {
        if (!json_is_integer(x) || S->n_seeds >= ST_MAX_SEEDS) return srlm_set_error(SRLM_EINVAL, "study config: seeds: up to %d integers", ST_MAX_SEEDS);
        S->seeds[S->n_seeds++] = (int)json_integer_value(x);
    }
    if (!S->n_seeds) S->seeds[S->n_seeds++] = 1;
    return 0;
}

static int in_list(const char *list, const char *name) {
    if (!list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && !strncmp(p, name, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

int st_run(const st_opts *o) {
    static const char *const KEYS[] = {"name",    "description", "threads",   "seeds",  "tokenizer",    "models",
                                       "student", "data",        "prompt_format", "chat", "teacher",  "stages",
                                       "pipelines", "eval",      "eval_options", "run_options", "jobs", "base", NULL};
    study S;
    memset(&S, 0, sizeof S);
    S.t0 = srlm_now();
    json_error_t err;
    S.cfg = json_load_file(o->config_path, 0, &err);
    if (!S.cfg) return srlm_set_error(SRLM_EINVAL, "%s:%d: %s", o->config_path, err.line, err.text);
    int check_tmp = 0;
    int rc = check_keys(S.cfg, o->config_path, KEYS);
    if (rc) goto out;
    S.name = jstr(S.cfg, "name", "study");
    S.threads = (int)jnum(S.cfg, "threads", 0);
    S.chat = json_is_true(json_object_get(S.cfg, "chat"));
    S.prompt_format = jstr(S.cfg, "prompt_format", NULL);
    if (S.prompt_format) {
        pf_format f;
        if ((rc = pf_from_name(S.prompt_format, &f))) goto out;
    }
    if ((rc = parse_seeds(&S, o))) goto out;
    S.evals = json_object_get(S.cfg, "eval");
    S.n_evals = (int)json_array_size(S.evals);
    if (!S.n_evals) {
        rc = srlm_set_error(SRLM_EINVAL, "study config: 'eval' needs at least one evaluation set");
        goto out;
    }
    for (int e = 0; e < S.n_evals; e++)
        if (!jstr(json_array_get(S.evals, e), "name", NULL) || !jstr(json_array_get(S.evals, e), "dataset", NULL)) {
            rc = srlm_set_error(SRLM_EINVAL, "study config: eval[%d]: needs 'name' and 'dataset'", e);
            goto out;
        }
    json_t *pl = json_object_get(S.cfg, "pipelines");
    if (!json_is_array(pl) || !json_array_size(pl)) {
        rc = srlm_set_error(SRLM_EINVAL, "study config: 'pipelines' needs at least one pipeline");
        goto out;
    }
    S.n_pipes = (int)json_array_size(pl);
    S.pipes = srlm_xcalloc((size_t)S.n_pipes, sizeof *S.pipes);
    for (int p = 0; p < S.n_pipes; p++) {
        json_t *po = json_array_get(pl, p);
        static const char *const PK[] = {"name", "stages", "description", NULL};
        if ((rc = check_keys(po, "pipelines[]", PK))) goto out;
        S.pipes[p].name = jstr(po, "name", NULL);
        S.pipes[p].stages = json_object_get(po, "stages");
        if (!S.pipes[p].name || !json_is_array(S.pipes[p].stages)) {
            rc = srlm_set_error(SRLM_EINVAL, "study config: pipelines[%d]: needs 'name' and 'stages' (a list)", p);
            goto out;
        }
        size_t i;
        json_t *s;
        json_array_foreach(S.pipes[p].stages, i, s) {
            if (!json_is_string(s) || !json_is_object(json_object_get(json_object_get(S.cfg, "stages"), json_string_value(s)))) {
                rc = srlm_set_error(SRLM_EINVAL, "study config: pipeline %s: stage %zu is not a name defined in 'stages'",
                                    S.pipes[p].name, i);
                goto out;
            }
        }
        S.pipes[p].cells = srlm_xcalloc((size_t)S.n_evals, sizeof(st_cell));
        for (int q = 0; q < p; q++)
            if (!strcmp(S.pipes[q].name, S.pipes[p].name)) {
                rc = srlm_set_error(SRLM_EINVAL, "study config: pipelines[%d]: the name '%s' is used twice", p,
                                    S.pipes[p].name);
                goto out;
            }
    }
    if (o->only) { /* keep the selected pipelines only: the log, report and results show those */
        for (const char *q = o->only; *q;) {
            const char *e = strchr(q, ',');
            size_t l = e ? (size_t)(e - q) : strlen(q);
            int found = 0;
            for (int p = 0; p < S.n_pipes; p++) found |= strlen(S.pipes[p].name) == l && !strncmp(S.pipes[p].name, q, l);
            if (!found) {
                rc = srlm_set_error(SRLM_EINVAL, "--only: '%.*s' is not a pipeline of %s", (int)l, q, o->config_path);
                goto out;
            }
            if (!e) break;
            q = e + 1;
        }
        int k = 0;
        for (int p = 0; p < S.n_pipes; p++) {
            if (in_list(o->only, S.pipes[p].name)) S.pipes[k++] = S.pipes[p];
            else free(S.pipes[p].cells);
        }
        S.n_pipes = k;
    }

    /* the run directory; --check validates in a temporary one that is removed at the end */
    if (o->check_only) {
        char tmpl[] = "/tmp/srlm-study-check-XXXXXX";
        if (!mkdtemp(tmpl)) {
            rc = srlm_set_error(SRLM_EIO, "mkdtemp %s: %s", tmpl, strerror(errno));
            goto out;
        }
        srlm_fmt(S.run, sizeof S.run, "%s", tmpl);
        check_tmp = 1;
    } else if (o->out_dir) {
        srlm_fmt(S.run, sizeof S.run, "%s", o->out_dir);
    } else {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        char ts[32];
        strftime(ts, sizeof ts, "%Y%m%d-%H%M%S", &tm);
        srlm_fmt(S.run, sizeof S.run, "runs/%s-%s", S.name, ts);
    }
    char p1[ST_PATH];
    srlm_fmt(p1, sizeof p1, "%s/logs", S.run);
    if ((rc = srlm_mkdir_p(p1))) goto out;
    {   /* absolute from here on: the stage configs name models by path */
        char *abs = realpath(S.run, NULL);
        if (abs) srlm_fmt(S.run, sizeof S.run, "%s", abs);
        free(abs);
    }
    srlm_fmt(p1, sizeof p1, "%s/data", S.run);
    if ((rc = srlm_mkdir_p(p1))) goto out;
    srlm_fmt(p1, sizeof p1, "%s/models", S.run);
    if ((rc = srlm_mkdir_p(p1))) goto out;
    srlm_fmt(p1, sizeof p1, "%s/study.log", S.run);
    S.log = fopen(p1, "a");
    {
        char *c = json_dumps(S.cfg, ST_JSON_HUMAN);
        srlm_fmt(p1, sizeof p1, "%s/config.json", S.run);
        rc = c ? srlm_write_file_atomic(p1, c, strlen(c)) : SRLM_ENOMEM;
        free(c);
        if (rc) goto out;
    }
    {
        ssize_t k = readlink("/proc/self/exe", S.exe, sizeof S.exe - 1);
        if (k <= 0) {
            rc = srlm_set_error(SRLM_EIO, "readlink /proc/self/exe: %s", strerror(errno));
            goto out;
        }
        S.exe[k] = 0;
    }
    srlm_fmt(S.db, sizeof S.db, "%s/data.lmdb", S.run);
    srlm_fmt(S.traces_jsonl, sizeof S.traces_jsonl, "%s/data/teacher-traces.jsonl", S.run);
    note(&S, "study %s: %d pipeline%s × %d seed(s), %d evaluation set(s); %s %s", S.name, S.n_pipes,
         S.n_pipes == 1 ? "" : "s", S.n_seeds, S.n_evals,
         check_tmp ? "checking in the temporary directory" : "run directory", S.run);

    /* tokenizer and models */
    const char *tk = jstr(S.cfg, "tokenizer", NULL);
    if (tk && !strcmp(tk, "byte-level")) {
        srlm_fmt(S.tokdir, sizeof S.tokdir, "%s/models/tokenizer", S.run);
        if ((rc = tok_write_byte_level(S.tokdir))) goto out;
        note(&S, "byte-level tokenizer: %s", S.tokdir);
    } else if (tk) {
        if ((rc = resolve(tk, S.tokdir, sizeof S.tokdir))) goto out;
    }
    const json_t *models = json_object_get(S.cfg, "models");
    const char *stu = jstr(S.cfg, "student", "student");
    if (!o->model && !json_object_get(models, stu)) {
        rc = srlm_set_error(SRLM_EINVAL, "study config: models.%s (the starting model) is missing", stu);
        goto out;
    }
    if (o->model) {
        if (!srlm_file_exists(o->model)) {
            rc = srlm_set_error(SRLM_ENOTFOUND, "--model %s: not found", o->model);
            goto out;
        }
        if ((rc = check_model_dir("--model", o->model))) goto out;
        srlm_fmt(S.student, sizeof S.student, "%s", o->model);
        note(&S, "starting model: %s (--model)", o->model);
    } else if ((rc = make_model(&S, stu, json_object_get(models, stu), S.student, sizeof S.student))) {
        goto out;
    }
    const json_t *tc = json_object_get(S.cfg, "teacher");
    static const char *const TK[] = {"model", "stages", "traces", NULL};
    if (tc && (rc = check_keys(tc, "teacher", TK))) goto out;
    if (tc) {
        const char *tm = jstr(tc, "model", "teacher");
        if (o->teacher) {
            if (!srlm_file_exists(o->teacher)) {
                rc = srlm_set_error(SRLM_ENOTFOUND, "--teacher %s: not found", o->teacher);
                goto out;
            }
            if ((rc = check_model_dir("--teacher", o->teacher))) goto out;
            srlm_fmt(S.teacher, sizeof S.teacher, "%s", o->teacher);
        } else if ((rc = make_model(&S, tm, json_object_get(models, tm), S.teacher, sizeof S.teacher))) {
            goto out;
        }
    }
    const json_t *base = json_object_get(S.cfg, "base");
    if (base) {
        static const char *const BK[] = {"stages", NULL};
        const json_t *bs = json_object_get(base, "stages");
        if ((rc = check_keys(base, "base", BK))) goto out;
        if (!json_is_array(bs)) {
            rc = srlm_set_error(SRLM_EINVAL, "study config: base.stages: expected an array of stage names");
            goto out;
        }
        size_t i;
        json_t *st;
        json_array_foreach(bs, i, st) {
            if (!json_is_string(st) || !json_object_get(json_object_get(S.cfg, "stages"), json_string_value(st))) {
                rc = srlm_set_error(SRLM_EINVAL, "study config: base.stages[%zu]: not a stage defined in 'stages'", i);
                goto out;
            }
            size_t used = strlen(S.base_stages); /* "a → b", for the report */
            srlm_fmt(S.base_stages + used, sizeof S.base_stages - used, "%s%s", i ? " → " : "", json_string_value(st));
        }
    }
    if ((rc = check_synth_excludes(json_object_get(S.cfg, "data")))) goto out;
    if ((rc = check_stages(&S))) goto out;
    note(&S, "stage configs checked (srlm run --check)");
    if (o->check_only) goto out;
    const json_t *data = json_object_get(S.cfg, "data");
    if (data && (rc = setup_data(&S, data))) goto out;
    S.setup_s = srlm_now() - S.t0;
    if (base && o->model) {
        note(&S, "base: stages skipped (--model gives the starting model)");
        base = NULL;
        S.base_stages[0] = 0;
    }
    S.base_seed = (uint64_t)jnum(json_object_get(models, stu), "seed", 1);
    if (tc) {
        int need = 0; /* 1: a selected pipeline needs the trained teacher (logit KD), 2: its traces */
        for (int p = 0; p < S.n_pipes; p++) need |= teacher_need(&S, S.pipes[p].stages);
        S.teacher_used = need != 0;
        S.teacher_traces = (need & 2) != 0;
        if (!need) note(&S, "teacher: skipped (no selected pipeline has a KD stage)");
    }
    int jobs = o->jobs > 0 ? o->jobs : (int)jnum(S.cfg, "jobs", 1);
    if (jobs < 1 || jobs > 64) {
        rc = srlm_set_error(SRLM_EINVAL, "study config: 'jobs' must be 1..64 (got %d)", jobs);
        goto out;
    }
    rc = run_schedule(&S, tc, base, jobs, o->keep_going);
    if (rc) {
        write_results_json(&S);
        write_report(&S, srlm_now() - S.t0);
        goto out;
    }
    rc = write_results_json(&S);
    if (!rc) rc = write_report(&S, srlm_now() - S.t0);
    for (int p = 0; p < S.n_pipes && !rc; p++)
        if (S.pipes[p].failed) rc = srlm_set_error(SRLM_EIO, "pipeline %s failed: %s", S.pipes[p].name, S.pipes[p].error);
out:
    if (S.log) fclose(S.log);
    if (check_tmp) srlm_rm_rf(S.run);
    for (int p = 0; p < S.n_pipes; p++) free(S.pipes[p].cells);
    free(S.pipes);
    for (int i = 0; i < S.n_curves; i++) {
        free(S.curves[i].x);
        free(S.curves[i].y);
    }
    free(S.curves);
    json_decref(S.cfg);
    return rc;
}
