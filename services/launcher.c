/* launcher.c — `srlm run CONFIG` / `srlm run --resume RUN_DIR`: one machine, one command.
 *
 * Creates the run directory (config.json copy, logs/, sock/, metrics.jsonl,
 * checkpoints/), imports data when the store is new, then fork+execs the same srlm binary
 * for every role over ipc:// (or the config's tcp endpoints): dataset server, broker,
 * reward workers, generator (only when a stage is GRPO), teacher (logit KD with a teacher
 * endpoint) and the trainer. A reward worker, generator, broker or dataset server that
 * crashes is restarted (back-off 1 s, at most max_restarts times each; exit 0 after the run's
 * last step is a normal end, logged once); the trainer's exit
 * ends the run (0: done; otherwise everything is stopped and `--resume` continues from
 * the newest checkpoint). Live progress comes from metrics.jsonl. SIGINT/SIGTERM: SIGTERM
 * to every child, wait (10 s, then SIGKILL), exit 0. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "pipeline.h"
#include "util.h"

#define LN_MAX_PROCS 64
#define LN_MAX_ARGS 24

typedef struct {
    char name[48];           /* log name: trainer, broker, reward-math-0, ... */
    char *argv[LN_MAX_ARGS];
    int restartable;
    pid_t pid;
    int restarts;
    double restart_at;       /* > 0: restart pending at this time */
    int done;                /* exited and not to be restarted */
} proc;

typedef struct {
    char exe[PATH_MAX];
    char run_dir[PATH_MAX];
    proc procs[LN_MAX_PROCS];
    int n;
    pc_config cfg;
} launcher;

static void add_proc(launcher *l, const char *name, int restartable, ...) {
    proc *p = &l->procs[l->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->restartable = restartable;
    va_list ap;
    va_start(ap, restartable);
    int i = 0;
    p->argv[i++] = srlm_xstrdup(l->exe);
    const char *a;
    while ((a = va_arg(ap, const char *)) && i < LN_MAX_ARGS - 1) p->argv[i++] = srlm_xstrdup(a);
    va_end(ap);
    p->argv[i] = NULL;
}

static pid_t spawn(launcher *l, char *const argv[], const char *logname) {
    char logp[PATH_MAX + 64];
    snprintf(logp, sizeof logp, "%s/logs/%s.log", l->run_dir, logname);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        setpgid(0, 0);                    /* Ctrl-C reaches the launcher only; it stops us */
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a killed launcher */
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) { dup2(nul, 0); close(nul); }
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static int start(launcher *l, proc *p) {
    p->pid = spawn(l, p->argv, p->name);
    p->restart_at = 0;
    if (p->pid < 0) return srlm_set_error(SRLM_EIO, "fork %s: %s", p->name, strerror(errno));
    SRLM_INFO("started %s (pid %d, log %s/logs/%s.log)", p->name, (int)p->pid, l->run_dir, p->name);
    return 0;
}

static void stop_all(launcher *l) {
    /* trainer first (it flushes), then producers, then the rest */
    for (int i = l->n - 1; i >= 0; i--)
        if (l->procs[i].pid > 0) kill(l->procs[i].pid, SIGTERM);
    double t0 = srlm_now();
    for (;;) {
        int alive = 0;
        for (int i = 0; i < l->n; i++) {
            proc *p = &l->procs[i];
            if (p->pid <= 0) continue;
            int st;
            pid_t r = waitpid(p->pid, &st, WNOHANG);
            if (r == p->pid || (r < 0 && errno == ECHILD)) p->pid = 0;
            else alive++;
        }
        if (!alive) break;
        if (srlm_now() - t0 > 10) {
            for (int i = 0; i < l->n; i++)
                if (l->procs[i].pid > 0) {
                    SRLM_WARN("%s (pid %d) did not stop within 10 s: SIGKILL", l->procs[i].name, (int)l->procs[i].pid);
                    kill(l->procs[i].pid, SIGKILL);
                    waitpid(l->procs[i].pid, NULL, 0);
                    l->procs[i].pid = 0;
                }
            break;
        }
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
    }
}

static int run_sync(launcher *l, char *const argv[], const char *logname) {
    pid_t pid = spawn(l, argv, logname);
    if (pid < 0) return srlm_set_error(SRLM_EIO, "fork: %s", strerror(errno));
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return srlm_set_error(SRLM_EIO, "`srlm %s %s ...` failed (see %s/logs/%s.log)", argv[1], argv[2] ? argv[2] : "",
                              l->run_dir, logname);
    return 0;
}

static int import_data(launcher *l) {
    char marker[PATH_MAX + 32];
    snprintf(marker, sizeof marker, "%s/.data_imported", l->run_dir);
    if (srlm_file_exists(marker) || l->cfg.n_imports == 0) return 0;
    for (int i = 0; i < l->cfg.n_imports; i++) {
        char *argv[LN_MAX_ARGS + 4];
        int k = 0;
        argv[k++] = l->exe;
        argv[k++] = "data";
        for (char **a = l->cfg.imports[i]; *a && k < LN_MAX_ARGS; a++) argv[k++] = *a;
        argv[k++] = "--db";
        argv[k++] = l->cfg.db;
        argv[k] = NULL;
        SRLM_INFO("data: srlm data %s ... --db %s", l->cfg.imports[i][0], l->cfg.db);
        int rc = run_sync(l, argv, "data");
        if (rc) return rc;
    }
    return srlm_write_file_atomic(marker, "ok\n", 3);
}

/* live progress from metrics.jsonl */
typedef struct {
    long offset;
    long last_step;
    double loss, reward;
    char stage[64];
    int have_reward;
} progress;

static void read_progress(const char *path, progress *pg) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    fseek(f, pg->offset, SEEK_SET);
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n == 0 || line[n - 1] != '\n') break; /* partial line: read later */
        pg->offset += (long)n;
        json_t *o = json_loads(line, 0, NULL);
        if (!o) continue;
        pg->last_step = (long)json_integer_value(json_object_get(o, "step"));
        pg->loss = json_number_value(json_object_get(o, "loss"));
        json_t *r = json_object_get(o, "reward_mean");
        pg->have_reward = json_is_number(r);
        pg->reward = json_number_value(r);
        const char *s = json_string_value(json_object_get(o, "stage"));
        snprintf(pg->stage, sizeof pg->stage, "%s", s ? s : "");
        json_decref(o);
    }
    fclose(f);
}

static int prepare_run_dir(const ln_options *o, launcher *l) {
    char want[PATH_MAX];
    pc_config tmp;
    if (o->resume) {
        if (!o->run_dir) return srlm_set_error(SRLM_EINVAL, "--resume needs RUN_DIR");
        snprintf(want, sizeof want, "%s", o->run_dir);
        char cp[PATH_MAX + 32];
        snprintf(cp, sizeof cp, "%s/config.json", want);
        if (!srlm_file_exists(cp)) return srlm_set_error(SRLM_ENOTFOUND, "%s: not a run directory (no config.json)", want);
    } else {
        int rc = pc_load(o->config_path, NULL, &tmp);
        if (rc) return rc;
        if (o->run_dir) snprintf(want, sizeof want, "%s", o->run_dir);
        else snprintf(want, sizeof want, "runs/%s", tmp.name[0] && strcmp(tmp.name, "run") ? tmp.name : "run");
        pc_free(&tmp);
        char ck[PATH_MAX + 32];
        snprintf(ck, sizeof ck, "%s/metrics.jsonl", want);
        if (srlm_file_exists(ck))
            return srlm_set_error(SRLM_EINVAL, "%s already holds a run: continue it with `srlm run --resume %s` or pick another --run-dir",
                                  want, want);
        if ((rc = srlm_mkdir_p(want))) return rc;
        char *text = NULL;
        size_t len = 0;
        if ((rc = srlm_read_file(o->config_path, &text, &len, 16u << 20))) return rc;
        char cp[PATH_MAX + 32];
        snprintf(cp, sizeof cp, "%s/config.json", want);
        rc = srlm_write_file_atomic(cp, text, len);
        free(text);
        if (rc) return rc;
    }
    if (!realpath(want, l->run_dir)) return srlm_set_error(SRLM_EIO, "%s: %s", want, strerror(errno));
    char d[PATH_MAX + 16];
    snprintf(d, sizeof d, "%s/logs", l->run_dir);
    srlm_mkdir_p(d);
    snprintf(d, sizeof d, "%s/sock", l->run_dir);
    srlm_mkdir_p(d);
    char cp[PATH_MAX + 32];
    snprintf(cp, sizeof cp, "%s/config.json", l->run_dir);
    int rc = pc_load(cp, l->run_dir, &l->cfg);
    if (rc) return rc;
    if (!strcmp(l->cfg.transport, "ipc") && (rc = srlm_mkdir_p(l->cfg.sock_dir))) return rc;
    return 0;
}

int ln_run(const ln_options *o, volatile sig_atomic_t *stop) {
    launcher *l = srlm_xcalloc(1, sizeof *l);
    int ret = 0;
    ssize_t n = readlink("/proc/self/exe", l->exe, sizeof l->exe - 1);
    if (n <= 0) { free(l); return srlm_set_error(SRLM_EIO, "readlink /proc/self/exe: %s", strerror(errno)); }
    l->exe[n] = 0;
    if ((ret = prepare_run_dir(o, l))) { free(l); return ret; }
    const pc_config *c = &l->cfg;
    char hb[16], lv[16];
    snprintf(hb, sizeof hb, "%d", c->heartbeat_ms);
    snprintf(lv, sizeof lv, "%d", c->liveness);
    setenv("SRLM_HEARTBEAT_MS", hb, 1);
    setenv("SRLM_LIVENESS", lv, 1);
    SRLM_INFO("run %s in %s (%d stages)", c->name, l->run_dir, c->n_stages);
    if ((ret = import_data(l))) goto out;

    char cfgp[PATH_MAX + 32], b_ds[300], b_g[300], b_w[300], b_s[300], stats[PATH_MAX + 32];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", l->run_dir);
    snprintf(stats, sizeof stats, "%s/broker_stats.json", l->run_dir);
    pc_bind_endpoint(c->ep_dataset, b_ds, sizeof b_ds);
    pc_bind_endpoint(c->ep_groups, b_g, sizeof b_g);
    pc_bind_endpoint(c->ep_workers, b_w, sizeof b_w);
    pc_bind_endpoint(c->ep_scored, b_s, sizeof b_s);
    char ma[16], jt[16];
    snprintf(ma, sizeof ma, "%d", c->max_attempts);
    snprintf(jt, sizeof jt, "%d", c->job_timeout_ms);
    add_proc(l, "dataset", 1, "dataset", "serve", "--db", c->db, "--bind", b_ds, (char *)NULL);
    int grpo = pc_has_grpo(c);
    if (grpo) {
        add_proc(l, "broker", 1, "broker", "--groups", b_g, "--workers", b_w, "--scored", b_s, "--heartbeat-ms", hb,
                 "--liveness", lv, "--max-attempts", ma, "--job-timeout-ms", jt, "--stats", stats, (char *)NULL);
        for (int i = 0; i < c->workers_math; i++) {
            char nm[48];
            snprintf(nm, sizeof nm, "reward-math-%d", i);
            add_proc(l, nm, 1, "reward-math", "--connect", c->ep_workers, (char *)NULL);
        }
        for (int i = 0; i < c->workers_code; i++) {
            char nm[48];
            snprintf(nm, sizeof nm, "reward-code-%d", i);
            add_proc(l, nm, 1, "reward-code", "--connect", c->ep_workers, (char *)NULL);
        }
        add_proc(l, "generator", 1, "generator", "--config", cfgp, "--run-dir", l->run_dir, (char *)NULL);
    }
    for (int i = 0; i < c->n_stages; i++)
        if (c->stages[i].type == PC_KD && !strcmp(c->stages[i].kd_mode, "logit") && c->stages[i].teacher_service) {
            add_proc(l, "teacher", 1, "generator", "--role", "teacher", "--config", cfgp, "--run-dir", l->run_dir,
                     "--model", c->stages[i].teacher, (char *)NULL);
            break;
        }
    int trainer_idx = l->n;
    if (o->resume) add_proc(l, "trainer", 0, "trainer", "--config", cfgp, "--run-dir", l->run_dir, "--resume", (char *)NULL);
    else add_proc(l, "trainer", 0, "trainer", "--config", cfgp, "--run-dir", l->run_dir, (char *)NULL);
    for (int i = 0; i < l->n; i++)
        if ((ret = start(l, &l->procs[i]))) goto out;

    long total = 0;
    for (int i = 0; i < c->n_stages; i++) total += c->stages[i].steps;
    srlm_progress bar;
    srlm_progress_init(&bar, c->name, "steps", total);
    progress pg;
    memset(&pg, 0, sizeof pg);
    char mpath[PATH_MAX + 32];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", l->run_dir);
    long start_step = -1;
    while (!*stop) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid > 0) {
            for (int i = 0; i < l->n; i++) {
                proc *p = &l->procs[i];
                if (p->pid != pid) continue;
                p->pid = 0;
                char how[64];
                if (WIFEXITED(st)) snprintf(how, sizeof how, "exit %d", WEXITSTATUS(st));
                else snprintf(how, sizeof how, "signal %d", WTERMSIG(st));
                if (i == trainer_idx) {
                    p->done = 1;
                    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
                        SRLM_INFO("trainer finished: run complete");
                    } else {
                        ret = srlm_set_error(SRLM_EIO, "trainer stopped (%s; see %s/logs/trainer.log); continue with `srlm run --resume %s`",
                                             how, l->run_dir, l->run_dir);
                    }
                    continue;
                }
                /* exit 0 after the last step (the generator once the trainer announced the
                 * end of the run) is a normal end: one line, no restart. A crash (non-zero
                 * exit, a signal), or exit 0 while steps remain (a SIGTERM from outside),
                 * is restarted. */
                read_progress(mpath, &pg);
                if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && pg.last_step >= total) {
                    p->done = 1;
                    SRLM_INFO("%s (pid %d) finished (exit 0): the run's steps are done", p->name, (int)pid);
                } else if (p->restartable && p->restarts < c->max_restarts) {
                    p->restarts++;
                    p->restart_at = srlm_now() + 1.0;
                    srlm_log(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? SRLM_LOG_INFO : SRLM_LOG_WARN,
                             "%s (pid %d) stopped (%s) at step %ld of %ld: restarting in 1 s (%d/%d)", p->name, (int)pid,
                             how, pg.last_step, total, p->restarts, c->max_restarts);
                } else {
                    p->done = 1;
                    ret = srlm_set_error(SRLM_EIO, "%s stopped (%s) after %d restarts (see %s/logs/%s.log): stopping the run; continue with `srlm run --resume %s`",
                                         p->name, how, p->restarts, l->run_dir, p->name, l->run_dir);
                }
            }
            if (l->procs[trainer_idx].done || ret) break;
            continue;
        }
        double now = srlm_now();
        for (int i = 0; i < l->n; i++) {
            proc *p = &l->procs[i];
            if (p->restart_at > 0 && now >= p->restart_at && !p->done)
                if (start(l, p) != 0) SRLM_ERROR("restart %s: %s", p->name, srlm_last_error());
        }
        read_progress(mpath, &pg);
        if (!o->quiet && pg.last_step > 0) {
            if (start_step < 0) {
                start_step = pg.last_step - 1;
                bar.t0 = srlm_now();
            }
            char extra[160];
            if (pg.have_reward) snprintf(extra, sizeof extra, "[%s] loss %.4f reward %.3f", pg.stage, pg.loss, pg.reward);
            else snprintf(extra, sizeof extra, "[%s] loss %.4f", pg.stage, pg.loss);
            srlm_progress_update(&bar, pg.last_step, extra);
        }
        struct timespec ts = {0, 200000000L};
        nanosleep(&ts, NULL);
    }
    if (*stop) SRLM_INFO("interrupted: stopping every process (continue with `srlm run --resume %s`)", l->run_dir);
    stop_all(l);
    read_progress(mpath, &pg);
    if (!o->quiet && pg.last_step > 0) srlm_progress_done(&bar, pg.last_step, pg.stage);
    if (ret == 0 && !*stop) SRLM_INFO("done: %s (metrics.jsonl, checkpoints/, logs/)", l->run_dir);
out:
    if (ret) stop_all(l);
    if (!strncmp(l->cfg.sock_dir, "/tmp/srlm-sock-", 15)) srlm_rm_rf(l->cfg.sock_dir);
    for (int i = 0; i < l->n; i++)
        for (char **a = l->procs[i].argv; *a; a++) free(*a);
    pc_free(&l->cfg);
    free(l);
    return ret;
}
