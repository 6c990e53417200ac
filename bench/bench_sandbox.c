/* bench_sandbox.c — sandboxed executions per second, next to peers measured in the same run:
 *  1. a trivial program (`print(1)`): bare python3 (fork+exec), srlm sandbox, bwrap and
 *     firejail (when installed) with comparable isolation; per-run overhead over bare;
 *  2. HumanEval canonical solutions scored by cr_score (every test separately, judge +
 *     zygote + candidate) with 1 and 2 workers, next to running the same program +
 *     check() unsandboxed in one bare python3 per problem; then with 2 workers a wrong
 *     completion that fails every test (a fresh candidate after each), and both again in
 *     strict mode (a fresh candidate per test).
 * Besides wall-clock rates it prints CPU time (user + system of this process and of every
 * process of the runs: load-independent) per run / per problem, and the rate 2 idle cores
 * would reach at that CPU cost.
 * usage: bench_sandbox [N_TRIVIAL (default 100)] [N_HUMANEVAL (default 164)] */
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "code_reward.h"
#include "sandbox.h"
#include "util.h"

/* CPU seconds (user + system) of this process and its reaped descendants so far. Every
 * process of a sandboxed run is reaped inside the run (the judge, as init of its pid
 * namespace, reaps the rest when it exits), so its time is counted here too. */
static double cpu_now(void) {
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    getrusage(RUSAGE_CHILDREN, &b);
    return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec + b.ru_stime.tv_sec) +
           (a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec + b.ru_stime.tv_usec) * 1e-6;
}

static int spawn_wait(char *const argv[], const char *input) {
    int in[2];
    if (pipe(in)) return -1;
    pid_t p = fork();
    if (p == 0) {
        dup2(in[0], 0);
        close(in[0]);
        close(in[1]);
        int dn = open("/dev/null", 1);
        dup2(dn, 1);
        dup2(dn, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    if (input) {
        size_t n = strlen(input), off = 0;
        while (off < n) {
            ssize_t w = write(in[1], input + off, n - off);
            if (w <= 0) break;
            off += (size_t)w;
        }
    }
    close(in[1]);
    int st = 0;
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

typedef struct {
    cr_ctx *cr;
    json_t *set;
    int n, next, passed;
    pthread_mutex_t mu;
    const char *completion; /* NULL: the canonical solution */
} he_pool;

static void *he_worker(void *arg) {
    he_pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int i = p->next < p->n ? p->next++ : -1;
        pthread_mutex_unlock(&p->mu);
        if (i < 0) return NULL;
        json_t *o = json_array_get(p->set, (size_t)i);
        char *pj = json_dumps(o, JSON_COMPACT);
        reward_result r;
        memset(&r, 0, sizeof r);
        const char *comp = p->completion ? p->completion
                                         : json_string_value(json_object_get(o, "canonical_solution"));
        if (cr_score(p->cr, pj, comp, &r) == 0 && r.correct) {
            pthread_mutex_lock(&p->mu);
            p->passed++;
            pthread_mutex_unlock(&p->mu);
        }
        free(r.details_json);
        free(pj);
    }
}

/* problems/s; *cpu_ms: CPU ms per problem */
static double bench_humaneval(cr_ctx *cr, json_t *set, int n, int workers, const char *completion,
                              int *passed, double *cpu_ms) {
    he_pool p = {cr, set, n, 0, 0, PTHREAD_MUTEX_INITIALIZER, completion};
    pthread_t th[8];
    double t0 = srlm_now(), c0 = cpu_now();
    for (int k = 0; k < workers; k++) pthread_create(&th[k], NULL, he_worker, &p);
    for (int k = 0; k < workers; k++) pthread_join(th[k], NULL);
    *passed = p.passed;
    *cpu_ms = (cpu_now() - c0) * 1e3 / n;
    return n / (srlm_now() - t0);
}

int main(int argc, char **argv) {
    int n_triv = argc > 1 ? atoi(argv[1]) : 100;
    int n_he = argc > 2 ? atoi(argv[2]) : 164;
    if (n_triv < 1) n_triv = 1;
    cr_ctx *cr = malloc(sizeof *cr);
    if (cr_init(cr, 0)) {
        fprintf(stderr, "bench_sandbox: %s\n", srlm_last_error());
        return 1;
    }
    char ns[96];
    sbx_ns_names(cr->sbx.have, ns, sizeof ns);
    printf("srlm sandbox benchmark (namespaces: %s, %ld CPUs online)\n\n", ns, sysconf(_SC_NPROCESSORS_ONLN));

    /* ---- 1. trivial program; the runners take turns, so machine load hits all alike */
    char *bare[] = {"/usr/bin/python3", "-I", "-S", "-B", "-c", "print(1)", NULL};
    char *bw[] = {"/usr/bin/bwrap", "--unshare-all", "--die-with-parent", "--new-session",
                  "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink",
                  "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin", "--dev", "/dev",
                  "--tmpfs", "/tmp", "--chdir", "/tmp", "--clearenv",
                  "/usr/bin/python3", "-I", "-S", "-B", "-c", "print(1)", NULL};
    char *fj[] = {"/usr/bin/firejail", "--quiet", "--noprofile", "--net=none", "--private",
                  "--seccomp", "--caps.drop=all", "--nonewprivs",
                  "/usr/bin/python3", "-I", "-S", "-B", "-c", "print(1)", NULL};
    int have_bw = access(bw[0], X_OK) == 0, have_fj = access(fj[0], X_OK) == 0;
    double t_bare = 0, t_sbx = 0, t_bw = 0, t_fj = 0, c_bare = 0, c_sbx = 0, c_bw = 0, c_fj = 0;
    int ok_bare = 1, ok_sbx = 1, ok_bw = 1, ok_fj = 1;
    sbx_limits lim;
    sbx_limits_default(&lim);
    for (int i = 0; i < n_triv; i++) {
        double t0 = srlm_now(), u0 = cpu_now();
        if (spawn_wait(bare, NULL) != 0) ok_bare = 0;
        double t1 = srlm_now(), u1 = cpu_now();
        sbx_job job = {bare, NULL, 0, NULL, NULL};
        sbx_result r;
        if (sbx_run(&cr->sbx, &lim, &job, &r) || r.verdict != SBX_OK) ok_sbx = 0;
        sbx_result_free(&r);
        double t2 = srlm_now(), u2 = cpu_now();
        if (have_bw && spawn_wait(bw, NULL) != 0) ok_bw = 0;
        double t3 = srlm_now(), u3 = cpu_now();
        if (have_fj && spawn_wait(fj, NULL) != 0) ok_fj = 0;
        double t4 = srlm_now(), u4 = cpu_now();
        t_bare += t1 - t0;
        t_sbx += t2 - t1;
        t_bw += t3 - t2;
        t_fj += t4 - t3;
        c_bare += u1 - u0;
        c_sbx += u2 - u1;
        c_bw += u3 - u2;
        c_fj += u4 - u3;
    }
    t_bare /= n_triv;
    t_sbx /= n_triv;
    t_bw /= n_triv;
    t_fj /= n_triv;
    c_bare /= n_triv;
    c_sbx /= n_triv;
    c_bw /= n_triv;
    c_fj /= n_triv;
    printf("trivial program `python3 -I -S -B -c print(1)`, %d runs each, taking turns\n", n_triv);
    printf("  %-40s %8s %10s %12s %10s\n", "runner", "runs/s", "ms/run", "overhead ms", "CPU ms");
    printf("  %-40s %8.1f %10.2f %12s %10.2f%s\n", "bare python3 (fork+exec)", 1 / t_bare,
           t_bare * 1e3, "-", c_bare * 1e3, ok_bare ? "" : "  (FAILED)");
    printf("  %-40s %8.1f %10.2f %12.2f %10.2f%s\n", "srlm sandbox (ns + seccomp + rlimits)",
           1 / t_sbx, t_sbx * 1e3, (t_sbx - t_bare) * 1e3, c_sbx * 1e3, ok_sbx ? "" : "  (FAILED)");
    if (have_bw)
        printf("  %-40s %8.1f %10.2f %12.2f %10.2f%s\n", "bwrap (ns + ro /usr, no seccomp)",
               1 / t_bw, t_bw * 1e3, (t_bw - t_bare) * 1e3, c_bw * 1e3, ok_bw ? "" : "  (FAILED)");
    if (have_fj)
        printf("  %-40s %8.1f %10.2f %12.2f %10.2f%s\n", "firejail (private, net none, seccomp)",
               1 / t_fj, t_fj * 1e3, (t_fj - t_bare) * 1e3, c_fj * 1e3, ok_fj ? "" : "  (FAILED)");
    if (have_bw) printf("  srlm sandbox time per run / bwrap: %.2fx\n", t_sbx / t_bw);
    if (have_fj) printf("  srlm sandbox time per run / firejail: %.2fx\n", t_sbx / t_fj);

    /* ---- 2. HumanEval canonical solutions */
    char path[800], *text;
    size_t len;
    if (srlm_resource_path("datasets/data/humaneval/HumanEval.jsonl.gz", path, sizeof path) ||
        srlm_read_file(path, &text, &len, 0)) {
        fprintf(stderr, "bench_sandbox: %s\n", srlm_last_error());
        free(cr);
        return 1;
    }
    json_t *set = json_array();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        json_array_append_new(set, json_loads(line, 0, NULL));
    free(text);
    if (n_he > (int)json_array_size(set)) n_he = (int)json_array_size(set);
    /* bare peer: one python3 per problem running program + check(candidate), no isolation */
    double t0 = srlm_now(), u0 = cpu_now();
    int bare_ok = 0;
    for (int i = 0; i < n_he; i++) {
        json_t *o = json_array_get(set, (size_t)i);
        char *prog = NULL;
        if (asprintf(&prog, "%s%s\n%s\ncheck(%s)\n", json_string_value(json_object_get(o, "prompt")),
                     json_string_value(json_object_get(o, "canonical_solution")),
                     json_string_value(json_object_get(o, "test")),
                     json_string_value(json_object_get(o, "entry_point"))) < 0)
            break;
        char *pa[] = {"/usr/bin/python3", "-I", "-S", "-B", "-", NULL};
        if (spawn_wait(pa, prog) == 0) bare_ok++;
        free(prog);
    }
    double r_bare = n_he / (srlm_now() - t0), cpu_bare = (cpu_now() - u0) * 1e3 / n_he;
    int p1, p2, ps, pw, pws;
    double cpu1, cpu2, cpus, cpuw, cpuws;
    static const char WRONG[] = "    return None\n"; /* fails every test */
    double r1 = bench_humaneval(cr, set, n_he, 1, NULL, &p1, &cpu1);
    double r2 = bench_humaneval(cr, set, n_he, 2, NULL, &p2, &cpu2);
    double rw = bench_humaneval(cr, set, n_he, 2, WRONG, &pw, &cpuw);
    cr->fresh_per_test = 1;
    double rs = bench_humaneval(cr, set, n_he, 2, NULL, &ps, &cpus);
    double rws = bench_humaneval(cr, set, n_he, 2, WRONG, &pws, &cpuws);
    cr->fresh_per_test = 0;
    printf("\nHumanEval canonical solutions (%d problems)\n", n_he);
    printf("  %-56s %10s %8s %8s %10s\n", "runner", "problems/s", "passed", "CPU ms",
           "2 cores/s");
    printf("  %-56s %10.1f %8d %8.1f %10.1f\n", "bare python3, program + check() in one process",
           r_bare, bare_ok, cpu_bare, 2e3 / cpu_bare);
    printf("  %-56s %10.1f %8d %8.1f %10.1f\n", "srlm reward-code, 1 worker (each test separately)",
           r1, p1, cpu1, 2e3 / cpu1);
    printf("  %-56s %10.1f %8d %8.1f %10.1f\n", "srlm reward-code, 2 workers", r2, p2, cpu2,
           2e3 / cpu2);
    printf("  %-56s %10.1f %8d %8.1f %10.1f\n", "srlm reward-code, 2 workers, wrong (every test fails)",
           rw, pw, cpuw, 2e3 / cpuw);
    printf("  %-56s %10.1f %8d %8.1f %10.1f\n", "strict mode (fresh process per test), 2 workers",
           rs, ps, cpus, 2e3 / cpus);
    printf("  %-56s %10.1f %8d %8.1f %10.1f\n", "strict mode, 2 workers, wrong (every test fails)",
           rws, pws, cpuws, 2e3 / cpuws);
    printf("  sandboxed 1 worker / bare: %.2fx; 2 workers / 1 worker: %.2fx; "
           "CPU per problem over bare: %.1f ms (%.2fx)\n", r1 / r_bare, r2 / r1, cpu2 - cpu_bare,
           cpu2 / cpu_bare);
    printf("  (CPU ms: user + system per problem, all processes; 2 cores/s = 2000 / CPU ms,\n"
           "   the rate two otherwise idle cores would reach)\n");
    json_decref(set);
    free(cr);
    return 0;
}
