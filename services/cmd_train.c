/* cmd_train.c — `srlm train sft|kd`: one-off supervised fine-tuning or logit-level
 * distillation of an HF model directory on a JSONL file, through the trainer API
 * (trainer/trainer.h). Docs: docs/training.md. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "lora.h"
#include "model.h"
#include "tokenizer.h"
#include "trainer.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: srlm train sft|kd --model DIR --data FILE.jsonl --out DIR [options]\n\n"
            "Fine-tune an HF model directory; loss on completion / assistant tokens only.\n"
            "FILE.jsonl (.gz ok), one object per line, any of:\n"
            "  {\"prompt\": TEXT, \"completion\": TEXT}        (EOS appended to the completion)\n"
            "  {\"messages\": [{\"role\":..., \"content\":...}, ...]}  (ChatML; loss on assistant turns)\n"
            "  {\"prompt_ids\": [ids], \"completion_ids\": [ids]}  (pre-tokenized, used as is)\n\n"
            "  --model DIR            base model (HF layout; its tokenizer encodes text records)\n"
            "  --data FILE            training data (JSONL)\n"
            "  --out DIR              output HF model dir (+ optimizer.safetensors, trainer_state.json,\n"
            "                         metrics.jsonl; with LoRA also adapter_config.json +\n"
            "                         adapter_model.safetensors, the model files hold merged weights)\n"
            "  --optimizer adamw|sgd  (adamw)\n"
            "  --lr X                 peak learning rate (1e-5)\n"
            "  --schedule constant|linear|cosine   LR schedule (constant)\n"
            "  --warmup-steps N       linear warmup (0)\n"
            "  --weight-decay X       AdamW decoupled / SGD L2 (0; never on biases and norms)\n"
            "  --momentum X           SGD momentum (0)\n"
            "  --max-grad-norm X      global-norm clipping, 0 = off (1.0)\n"
            "  --steps N              optimizer steps (default: from --epochs)\n"
            "  --epochs E             passes over the data when --steps is not given (1)\n"
            "  --batch-size B         rows per micro-batch (4)\n"
            "  --grad-accum K         micro-batches per optimizer step (1)\n"
            "  --max-seq-len T        truncate rows to T tokens (512)\n"
            "  --lora-rank R          train LoRA adapters of rank R instead of all weights (0 = full)\n"
            "  --lora-alpha A         LoRA alpha (16)\n"
            "  --lora-targets LIST    subset of q,k,v,o,gate,up,down (all)\n"
            "  --save-dtype f32|bf16  dtype of the saved weights (f32)\n"
            "  --save-every N         also write OUT/checkpoint-N every N steps (0 = off)\n"
            "  --resume CKPT          continue from a checkpoint written by this command (its\n"
            "                         weights, optimizer state and step; same --data, --seed,\n"
            "                         --batch-size and --grad-accum give a bit-identical run)\n"
            "  --seed S               data order and LoRA init (0)\n"
            "  --threads N            OpenBLAS/OpenMP threads (default: all cores)\n"
            "  --teacher DIR          kd: teacher model dir (same vocabulary; full logits)\n"
            "  --kd-loss fkl|rkl|jsd  kd: forward KL, reverse KL or generalized JSD (fkl)\n"
            "  --kd-beta B            kd: JSD β in (0, 1) (0.5)\n"
            "  --kd-temperature T     kd: softmax temperature (1.0)\n"
            "  -h, --help             this help\n");
}

typedef struct {
    int32_t *ids;
    uint8_t *mask;
    int len;
} example;

typedef struct {
    example *ex;
    int n, cap;
} dataset;

static void ds_free(dataset *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->ex[i].ids);
        free(d->ex[i].mask);
    }
    free(d->ex);
}

static int ids_from_json(json_t *a, int32_t **out, size_t *n, int V, const char *path, int line, const char *field) {
    if (!json_is_array(a)) return srlm_set_error(SRLM_EINVAL, "%s:%d: \"%s\" must be an array of token ids", path, line, field);
    *n = json_array_size(a);
    *out = srlm_xmalloc(sizeof(int32_t) * (*n ? *n : 1));
    for (size_t i = 0; i < *n; i++) {
        json_t *v = json_array_get(a, i);
        json_int_t x = json_integer_value(v);
        if (!json_is_integer(v) || x < 0 || x >= V) {
            free(*out);
            *out = NULL;
            return srlm_set_error(SRLM_EINVAL, "%s:%d: \"%s\"[%zu] is not a token id in [0, %d)", path, line, field, i, V);
        }
        (*out)[i] = (int32_t)x;
    }
    return 0;
}

/* One JSONL record → example (ids, mask where 1 = target). */
static int parse_record(json_t *o, const tok_tokenizer *tok, int V, const char *path, int line, example *ex) {
    int32_t *p = NULL, *c = NULL;
    size_t np = 0, nc = 0;
    int rc = 0;
    memset(ex, 0, sizeof *ex);
    if (json_object_get(o, "prompt_ids") || json_object_get(o, "completion_ids")) {
        if ((rc = ids_from_json(json_object_get(o, "prompt_ids"), &p, &np, V, path, line, "prompt_ids"))) return rc;
        if ((rc = ids_from_json(json_object_get(o, "completion_ids"), &c, &nc, V, path, line, "completion_ids"))) {
            free(p);
            return rc;
        }
    } else if (json_object_get(o, "messages")) {
        if (!tok) return srlm_set_error(SRLM_EINVAL, "%s:%d: \"messages\" needs the model's tokenizer", path, line);
        json_t *ms = json_object_get(o, "messages");
        size_t n = json_array_size(ms);
        if (!json_is_array(ms) || n == 0)
            return srlm_set_error(SRLM_EINVAL, "%s:%d: \"messages\" must be a non-empty array", path, line);
        tok_message *m = srlm_xcalloc(n, sizeof *m);
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(ms, i);
            m[i].role = json_string_value(json_object_get(e, "role"));
            m[i].content = json_string_value(json_object_get(e, "content"));
            if (!m[i].role || !m[i].content) {
                free(m);
                return srlm_set_error(SRLM_EINVAL, "%s:%d: messages[%zu] needs string \"role\" and \"content\"", path, line, i);
            }
        }
        int32_t *ids;
        uint8_t *mask;
        size_t nid;
        rc = tok_chat_render(tok, m, (int)n, 0, NULL, &ids, &mask, &nid);
        free(m);
        if (rc) return srlm_set_error(rc, "%s:%d: messages: %s", path, line, srlm_last_error());
        ex->ids = ids;
        ex->mask = mask;
        ex->len = (int)nid;
        return 0;
    } else if (json_object_get(o, "prompt") || json_object_get(o, "completion")) {
        const char *ps = json_string_value(json_object_get(o, "prompt"));
        const char *cs = json_string_value(json_object_get(o, "completion"));
        if (!ps || !cs) return srlm_set_error(SRLM_EINVAL, "%s:%d: \"prompt\" and \"completion\" must both be strings", path, line);
        if (!tok) return srlm_set_error(SRLM_EINVAL, "%s:%d: text records need the model's tokenizer", path, line);
        if ((rc = tok_encode(tok, ps, strlen(ps), 1, &p, &np))) return rc;
        if ((rc = tok_encode(tok, cs, strlen(cs), 1, &c, &nc))) {
            free(p);
            return rc;
        }
        int eos = tok_eos_id(tok);
        if (eos >= 0 && eos < V && (nc == 0 || c[nc - 1] != eos)) {
            c = srlm_xrealloc(c, sizeof(int32_t) * (nc + 1));
            c[nc++] = eos;
        }
    } else {
        return srlm_set_error(SRLM_EINVAL, "%s:%d: expected prompt/completion, messages, or prompt_ids/completion_ids", path, line);
    }
    ex->len = (int)(np + nc);
    ex->ids = srlm_xmalloc(sizeof(int32_t) * (ex->len ? ex->len : 1));
    ex->mask = srlm_xcalloc(ex->len ? ex->len : 1, 1);
    memcpy(ex->ids, p, sizeof(int32_t) * np);
    memcpy(ex->ids + np, c, sizeof(int32_t) * nc);
    memset(ex->mask + np, 1, nc);
    free(p);
    free(c);
    for (int i = 0; i < ex->len; i++)
        if (ex->ids[i] < 0 || ex->ids[i] >= V) {
            rc = srlm_set_error(SRLM_EINVAL, "%s:%d: token id %d outside the model vocabulary [0, %d)", path, line,
                                ex->ids[i], V);
            free(ex->ids);
            free(ex->mask);
            return rc;
        }
    return 0;
}

static int load_data(const char *path, const tok_tokenizer *tok, int V, int max_len, dataset *d) {
    char *buf;
    size_t len;
    int rc = srlm_read_file(path, &buf, &len, 0);
    if (rc) return rc;
    memset(d, 0, sizeof *d);
    int line = 0, skipped = 0, truncated = 0;
    char *save = NULL;
    for (char *s = buf; s && *s; ) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = 0;
        line++;
        char *q = s;
        if (line == 1 && !strncmp(q, "\xEF\xBB\xBF", 3)) q += 3; /* UTF-8 byte order mark */
        while (*q == ' ' || *q == '\t' || *q == '\r') q++;
        if (*q) {
            json_error_t e;
            json_t *o = json_loads(q, 0, &e);
            if (!json_is_object(o)) {
                rc = srlm_set_error(SRLM_EINVAL, "%s:%d: not a JSON object%s%s", path, line, o ? "" : ": ",
                                    o ? "" : e.text);
                json_decref(o);
                break;
            }
            example ex;
            rc = parse_record(o, tok, V, path, line, &ex);
            json_decref(o);
            if (rc) break;
            if (ex.len > max_len) {
                ex.len = max_len;
                truncated++;
            }
            int targets = 0;
            for (int i = 1; i < ex.len; i++) targets += ex.mask[i];
            if (targets == 0) {
                skipped++;
                free(ex.ids);
                free(ex.mask);
            } else {
                if (d->n == d->cap) {
                    d->cap = d->cap ? 2 * d->cap : 64;
                    d->ex = srlm_xrealloc(d->ex, sizeof(example) * d->cap);
                }
                d->ex[d->n++] = ex;
            }
        }
        s = nl ? nl + 1 : NULL;
    }
    (void)save;
    free(buf);
    if (rc) {
        ds_free(d);
        return rc;
    }
    if (truncated) SRLM_WARN("%s: %d rows truncated to --max-seq-len %d", path, truncated, max_len);
    if (skipped) SRLM_WARN("%s: %d rows skipped (no target tokens within --max-seq-len)", path, skipped);
    if (d->n == 0) return srlm_set_error(SRLM_EINVAL, "%s: no usable training rows", path);
    return 0;
}

/* Move every file of src into dst (rename per file), then remove src. */
static int move_files(const char *src, const char *dst) {
    DIR *dir = opendir(src);
    if (!dir) return srlm_set_error(SRLM_EIO, "%s: %s", src, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(dir)) && !rc) {
        if (e->d_name[0] == '.') continue;
        char a[8400], b[8400];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        if (rename(a, b) != 0) rc = srlm_set_error(SRLM_EIO, "rename %s -> %s: %s", a, b, strerror(errno));
    }
    closedir(dir);
    if (!rc) rc = srlm_fsync_dir(dst);
    srlm_rm_rf(src);
    return rc;
}

/* Remove what a killed run left in OUT: `checkpoint-N.tmp.PID` / `checkpoint-N.old.PID`
 * (tr_save) and `.final.PID` (the final save) of processes that no longer exist. A
 * complete checkpoint-N is never touched. */
static void remove_stale_saves(const char *out) {
    DIR *d = opendir(out);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *p = strstr(e->d_name, ".tmp.");
        if (!p) p = strstr(e->d_name, ".old.");
        if (!p && !strncmp(e->d_name, ".final.", 7)) p = e->d_name + 2; /* p + 5 = the pid */
        if (!p) continue;
        char *end;
        long pid = strtol(p + 5, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char path[8400];
        snprintf(path, sizeof path, "%s/%s", out, e->d_name);
        SRLM_WARN("removing %s, left by a killed run (pid %ld)", path, pid);
        srlm_rm_rf(path);
    }
    closedir(d);
}

/* Next row index of a seeded permutation per epoch (a resumed run replays the draws). */
static int next_row(int *perm, int n, int *pos, srlm_rng *rng) {
    if (*pos == n) {
        for (int i = 0; i < n; i++) perm[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)srlm_rng_below(rng, (uint64_t)i + 1), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        *pos = 0;
    }
    return perm[(*pos)++];
}

static int parse_num(const char *s, double *out, const char *flag) {
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(*out)) {
        fprintf(stderr, "srlm train: %s: '%s' is not a finite number\n", flag, s);
        return -1;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *mode = argv[1];
    int kd = !strcmp(mode, "kd");
    if (!kd && strcmp(mode, "sft")) {
        fprintf(stderr, "srlm train: unknown mode '%s' (expected sft or kd)\n", mode);
        usage(stderr);
        return 2;
    }
    srlm_log_set_role("train");
    tr_config cfg;
    tr_config_default(&cfg);
    const char *model = NULL, *data = NULL, *out = NULL, *save_dtype = "F32", *targets = "all", *resume = NULL;
    long steps = 0, save_every = 0;
    double epochs = 1;
    int batch = 4, accum = 1, max_len = 512;
    enum { O_OPT = 256, O_LR, O_SCHED, O_WARM, O_WD, O_MOM, O_MGN, O_STEPS, O_EPOCHS, O_BS, O_ACC, O_MSL,
           O_LR_RANK, O_LR_ALPHA, O_LR_TGT, O_DTYPE, O_SEED, O_THREADS, O_TEACHER, O_KDL, O_KDB, O_KDT, O_SAVE, O_RESUME };
    static const struct option opts[] = {
        {"model", 1, 0, 'm'}, {"data", 1, 0, 'd'}, {"out", 1, 0, 'o'}, {"optimizer", 1, 0, O_OPT},
        {"lr", 1, 0, O_LR}, {"schedule", 1, 0, O_SCHED}, {"warmup-steps", 1, 0, O_WARM},
        {"weight-decay", 1, 0, O_WD}, {"momentum", 1, 0, O_MOM}, {"max-grad-norm", 1, 0, O_MGN},
        {"steps", 1, 0, O_STEPS}, {"epochs", 1, 0, O_EPOCHS}, {"batch-size", 1, 0, O_BS},
        {"grad-accum", 1, 0, O_ACC}, {"max-seq-len", 1, 0, O_MSL}, {"lora-rank", 1, 0, O_LR_RANK},
        {"lora-alpha", 1, 0, O_LR_ALPHA}, {"lora-targets", 1, 0, O_LR_TGT}, {"save-dtype", 1, 0, O_DTYPE},
        {"seed", 1, 0, O_SEED}, {"threads", 1, 0, O_THREADS}, {"teacher", 1, 0, O_TEACHER},
        {"kd-loss", 1, 0, O_KDL}, {"kd-beta", 1, 0, O_KDB}, {"kd-temperature", 1, 0, O_KDT},
        {"save-every", 1, 0, O_SAVE}, {"resume", 1, 0, O_RESUME}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    optind = 2;
    int c;
    double x = 0;
    int li = -1;
    char flag[64];
    while ((li = -1, c = getopt_long(argc, argv, "h", opts, &li)) != -1) {
        snprintf(flag, sizeof flag, "--%s", li >= 0 ? opts[li].name : "?");
        if (c != 'h' && c != 'm' && c != 'd' && c != 'o' && c != O_OPT && c != O_SCHED && c != O_LR_TGT &&
            c != O_DTYPE && c != O_TEACHER && c != O_KDL && c != O_RESUME && c != '?' && parse_num(optarg, &x, flag))
            return 2;
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case O_OPT:
            if (opt_parse_kind(optarg, &cfg.opt.kind)) { fprintf(stderr, "srlm train: %s\n", srlm_last_error()); return 2; }
            break;
        case O_SCHED:
            if (opt_parse_sched(optarg, &cfg.opt.sched)) { fprintf(stderr, "srlm train: %s\n", srlm_last_error()); return 2; }
            break;
        case O_LR: cfg.opt.lr = (float)x; break;
        case O_WARM: cfg.opt.warmup_steps = (long)x; break;
        case O_WD: cfg.opt.weight_decay = (float)x; break;
        case O_MOM: cfg.opt.momentum = (float)x; break;
        case O_MGN: cfg.opt.max_grad_norm = (float)x; break;
        case O_STEPS: steps = (long)x; break;
        case O_EPOCHS: epochs = x; break;
        case O_BS: batch = (int)x; break;
        case O_ACC: accum = (int)x; break;
        case O_MSL: max_len = (int)x; break;
        case O_LR_RANK: cfg.lora_rank = (int)x; break;
        case O_LR_ALPHA: cfg.lora_alpha = (float)x; break;
        case O_LR_TGT: targets = optarg; break;
        case O_DTYPE:
            if (!strcmp(optarg, "f32") || !strcmp(optarg, "F32")) save_dtype = "F32";
            else if (!strcmp(optarg, "bf16") || !strcmp(optarg, "BF16")) save_dtype = "BF16";
            else { fprintf(stderr, "srlm train: --save-dtype must be f32 or bf16\n"); return 2; }
            break;
        case O_SEED: cfg.seed = (uint64_t)x; break;
        case O_THREADS: cfg.threads = (int)x; break;
        case O_TEACHER: cfg.teacher_dir = optarg; break;
        case O_KDL:
            if (loss_kd_parse(optarg, &cfg.kd_kind)) { fprintf(stderr, "srlm train: %s\n", srlm_last_error()); return 2; }
            break;
        case O_KDB: cfg.kd_beta = (float)x; break;
        case O_KDT: cfg.kd_temperature = (float)x; break;
        case O_SAVE: save_every = (long)x; break;
        case O_RESUME: resume = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) { fprintf(stderr, "srlm train: unexpected argument '%s'\n", argv[optind]); return 2; }
    if (!model || !data || !out) { fprintf(stderr, "srlm train: --model, --data and --out are required\n"); usage(stderr); return 2; }
    if (batch < 1 || accum < 1 || max_len < 2 || steps < 0 || epochs <= 0 || cfg.lora_rank < 0 || cfg.opt.lr < 0) {
        fprintf(stderr, "srlm train: --batch-size, --grad-accum >= 1, --max-seq-len >= 2, --epochs > 0, --lr/--steps/--lora-rank >= 0\n");
        return 2;
    }
    if (kd && !cfg.teacher_dir) { fprintf(stderr, "srlm train kd: --teacher DIR is required\n"); return 2; }
    if (kd && cfg.kd_kind == LOSS_KD_JSD && !(cfg.kd_beta > 0 && cfg.kd_beta < 1)) {
        fprintf(stderr, "srlm train kd: --kd-beta must be in (0, 1) for jsd\n");
        return 2;
    }
    if (cfg.lora_rank > 0 && lora_parse_targets(targets, &cfg.lora_targets)) {
        fprintf(stderr, "srlm train: --lora-targets: %s\n", srlm_last_error());
        return 2;
    }
    cfg.micro_batch = batch;

    tok_tokenizer *tok = NULL;
    if (tok_load(model, &tok)) {
        SRLM_DEBUG("no tokenizer in %s (%s): only pre-tokenized records are accepted", model, srlm_last_error());
        tok = NULL;
    }
    lm_config mc;
    char cpath[4096];
    snprintf(cpath, sizeof cpath, "%s/config.json", model);
    int rc = lm_config_load(cpath, &mc);
    dataset ds = {0};
    if (!rc) rc = load_data(data, tok, mc.vocab_size, max_len, &ds);
    tok_free(tok);
    if (rc) {
        fprintf(stderr, "srlm train: %s\n", srlm_last_error());
        return 1;
    }
    int per_step = batch * accum;
    if (!steps) steps = (long)ceil(epochs * ds.n / per_step);
    if (steps < 1) steps = 1;
    cfg.opt.total_steps = steps;
    tr_trainer *t;
    rc = resume ? tr_load(resume, &cfg, &t, NULL) : tr_create(model, &cfg, &t);
    if (rc) {
        fprintf(stderr, "srlm train: %s\n", srlm_last_error());
        ds_free(&ds);
        return 1;
    }
    if ((rc = srlm_mkdir_p(out))) {
        fprintf(stderr, "srlm train: %s\n", srlm_last_error());
        tr_free(t);
        ds_free(&ds);
        return 1;
    }
    remove_stale_saves(out);
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", out);
    FILE *mf = fopen(mpath, resume ? "a" : "w");
    if (!mf) {
        fprintf(stderr, "srlm train: %s: %s\n", mpath, strerror(errno));
        tr_free(t);
        ds_free(&ds);
        return 1;
    }
    SRLM_INFO("%s: %d rows, %ld steps of %d rows (%d x %d), %s%s, lr %g", mode, ds.n, steps, per_step, batch, accum,
              cfg.lora_rank ? "LoRA" : "full fine-tune", kd ? ", KD" : "", cfg.opt.lr);
    /* data order: a seeded permutation per epoch */
    int *perm = srlm_xmalloc(sizeof(int) * ds.n);
    srlm_rng rng;
    srlm_rng_seed(&rng, cfg.seed ^ 0x5eedULL);
    int pos = ds.n;
    const int32_t **rows = srlm_xmalloc(sizeof(int32_t *) * per_step);
    const uint8_t **masks = srlm_xmalloc(sizeof(uint8_t *) * per_step);
    int *lens = srlm_xmalloc(sizeof(int) * per_step);
    srlm_progress pr;
    srlm_progress_init(&pr, mode, "steps", steps);
    double ema = NAN;
    long start = tr_step(t);
    if (start > 0) SRLM_INFO("resuming at step %ld of %ld", start, steps);
    for (long k = 0; k < start * per_step; k++) next_row(perm, ds.n, &pos, &rng); /* data position */
    for (long s = start; s < steps && !rc; s++) {
        for (int k = 0; k < per_step; k++) {
            example *e = &ds.ex[next_row(perm, ds.n, &pos, &rng)];
            rows[k] = e->ids;
            masks[k] = e->mask;
            lens[k] = e->len;
        }
        tr_batch b = {per_step, rows, lens, NULL, masks};
        tr_metrics m;
        rc = kd ? tr_kd_step(t, &b, NULL, &m) : tr_sft_step(t, &b, &m);
        if (rc) break;
        char line[2048];
        if (!tr_metrics_json(&m, mode, line, sizeof line)) {
            fprintf(mf, "%s\n", line);
            fflush(mf);
        }
        ema = isnan(ema) ? m.loss : 0.9 * ema + 0.1 * m.loss;
        char extra[128];
        snprintf(extra, sizeof extra, "loss %.4f (avg %.4f)  %.0f tok/s", m.loss, ema, m.tokens_per_s);
        srlm_progress_update(&pr, s + 1, extra);
        if (save_every > 0 && (s + 1) % save_every == 0 && s + 1 < steps) {
            char ck[4200];
            snprintf(ck, sizeof ck, "%s/checkpoint-%ld", out, s + 1);
            rc = tr_save(t, ck, save_dtype, NULL);
        }
    }
    srlm_progress_done(&pr, tr_step(t), NULL);
    fclose(mf);
    if (!rc) {
        char fin[4200], user[128];
        snprintf(fin, sizeof fin, "%s/.final.%d", out, (int)getpid());
        snprintf(user, sizeof user, "{\"mode\":\"%s\",\"rows\":%d}", mode, ds.n);
        rc = tr_save(t, fin, save_dtype, user);
        if (!rc) rc = move_files(fin, out);
    }
    if (rc) fprintf(stderr, "srlm train: %s\n", srlm_last_error());
    else SRLM_INFO("wrote %s (step %ld, final loss avg %.4f)", out, tr_step(t), ema);
    free(perm);
    free(rows);
    free(masks);
    free(lens);
    tr_free(t);
    ds_free(&ds);
    return rc ? 1 : 0;
}
