/* bench_reward_math.c — math checker throughput on the MATH-500 solutions, one core.
 *
 * Workloads: "own" = every reference solution against its own answer (extraction +
 * normalisation; the figure, goal >= 20k checks/s); "shifted" = solution i against
 * answer i+1 (every check parses both sides and compares: the expensive path).
 * Peer, in the same run: bench/peer_reward_math_sympy.py (last \boxed{}, LaTeX -> SymPy,
 * string equality or simplify(a - b) == 0) under /usr/bin/python3, same data, same
 * workloads. Prints checks/s for both and the ratio, and the verdict counts.
 * usage: bench_reward_math [SECONDS per measurement, default 3] [--no-peer] */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math_reward.h"
#include "util.h"

typedef struct { char *gold, *sol; } pair;

static double run(pair *p, int n, int shifted, double seconds, int *correct_first_pass) {
    long checks = 0;
    int correct = 0;
    double t0 = srlm_now(), t;
    do {
        for (int i = 0; i < n; i++) {
            mr_result r;
            mr_check(shifted ? p[(i + 1) % n].gold : p[i].gold, p[i].sol, NULL, &r);
            if (checks < n) correct += r.correct;
            checks++;
        }
        t = srlm_now() - t0;
    } while (t < seconds);
    *correct_first_pass = correct;
    return checks / t;
}

static double peer(const char *py, const char *data, double seconds, const char *mode, int *correct, int *total) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %g %s 2>/dev/null", py, data, seconds, mode);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    double cps = -1;
    if (fscanf(f, "checks_per_s %lf correct %d total %d", &cps, correct, total) != 3) cps = -1;
    pclose(f);
    return cps;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 && argv[1][0] != '-' ? atof(argv[1]) : 3.0;
    int no_peer = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--no-peer")) no_peer = 1;
    char path[1024];
    if (srlm_resource_path("datasets/data/math/math500_test.jsonl.gz", path, sizeof path)) {
        fprintf(stderr, "bench_reward_math: %s\n", srlm_last_error());
        return 1;
    }
    char *buf;
    size_t len;
    if (srlm_read_file(path, &buf, &len, 0)) {
        fprintf(stderr, "bench_reward_math: %s\n", srlm_last_error());
        return 1;
    }
    pair p[600];
    int n = 0;
    json_t *rows[600];
    for (char *line = strtok(buf, "\n"); line && n < 600; line = strtok(NULL, "\n")) {
        json_error_t err;
        rows[n] = json_loads(line, 0, &err);
        if (!rows[n]) continue;
        p[n].gold = (char *)json_string_value(json_object_get(rows[n], "answer"));
        p[n].sol = (char *)json_string_value(json_object_get(rows[n], "solution"));
        if (p[n].gold && p[n].sol) n++;
        else json_decref(rows[n]);
    }
    mr_prepare();
    printf("math checker on MATH-500 solutions (%d), one core, %.1f s per measurement\n", n, seconds);
    printf("%-9s %14s %8s %14s %8s %8s\n", "workload", "srlm checks/s", "correct", "sympy checks/s", "correct", "ratio");
    const char *modes[2] = {"own", "shifted"};
    char py[1024];
    snprintf(py, sizeof py, "%s/bench/peer_reward_math_sympy.py", SRLM_SOURCE_DIR);
    for (int m = 0; m < 2; m++) {
        int c = 0, pc = 0, pt = 0;
        double cps = run(p, n, m, seconds, &c);
        double pcps = no_peer ? -1 : peer(py, path, seconds * 3, modes[m], &pc, &pt);
        if (pcps > 0)
            printf("%-9s %14.0f %5d/%d %14.1f %4d/%d %7.1fx\n", modes[m], cps, c, n, pcps, pc, pt, cps / pcps);
        else
            printf("%-9s %14.0f %5d/%d %14s %8s %8s\n", modes[m], cps, c, n, "n/a", "", "");
    }
    printf("goal: >= 20000 checks/s on 'own'\n");
    for (int i = 0; i < n; i++) json_decref(rows[i]);
    free(buf);
    return 0;
}
