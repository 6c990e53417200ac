/* math_sandbox.c — the checker in a forked child under the strict seccomp allowlist, for
 * service mode (see math_reward.h, mr_sandbox_*). The parent (ZeroMQ worker) never parses
 * untrusted text: it ships (gold, completion) over a pipe and reads back an mr_result.
 * A child that dies or overruns the wall-clock limit is killed and restarted; that job's
 * verdict is "unparsable". */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "math_reward.h"
#include "util.h"

struct mr_sandbox {
    pid_t pid;
    int to_child, from_child;
    mr_opts opts;
    pthread_mutex_t mu;
    long restarts;
};

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* child: serve requests until the parent closes the pipe */
static void child_loop(int in, int out, const mr_opts *opts) {
    for (;;) {
        uint32_t hdr[2];
        if (read_all(in, hdr, sizeof hdr)) _exit(0);
        if (hdr[0] > MR_MAX_TEXT || hdr[1] > MR_MAX_TEXT) _exit(2);
        char *g = malloc((size_t)hdr[0] + 1), *p = malloc((size_t)hdr[1] + 1);
        if (!g || !p || read_all(in, g, hdr[0]) || read_all(in, p, hdr[1])) _exit(2);
        g[hdr[0]] = 0;
        p[hdr[1]] = 0;
        mr_result r;
        mr_check(g, p, opts, &r);
        free(g);
        free(p);
        if (write_all(out, &r, sizeof r)) _exit(0);
    }
}

static int spawn(mr_sandbox *sb) {
    int a[2], b[2];
    if (pipe(a)) return srlm_set_error(SRLM_EIO, "pipe: %s", strerror(errno));
    if (pipe(b)) {
        close(a[0]);
        close(a[1]);
        return srlm_set_error(SRLM_EIO, "pipe: %s", strerror(errno));
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(a[0]); close(a[1]); close(b[0]); close(b[1]);
        return srlm_set_error(SRLM_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(a[1]);
        close(b[0]);
        /* close every other descriptor (sockets of the parent) except stderr */
        for (int fd = 3; fd < 1024; fd++)
            if (fd != a[0] && fd != b[1]) close(fd);
        struct rlimit core = {0, 0};
        setrlimit(RLIMIT_CORE, &core);
#if !defined(__SANITIZE_ADDRESS__)
        struct rlimit as = {(rlim_t)1 << 30, (rlim_t)1 << 30}; /* 1 GiB address space */
        setrlimit(RLIMIT_AS, &as);
#endif
        if (mr_seccomp_install(MR_SECCOMP_STRICT)) _exit(3);
        child_loop(a[0], b[1], &sb->opts);
        _exit(0);
    }
    close(a[0]);
    close(b[1]);
    sb->pid = pid;
    sb->to_child = a[1];
    sb->from_child = b[0];
    return 0;
}

static void reap(mr_sandbox *sb, int kill_it) {
    if (sb->pid <= 0) return;
    if (sb->to_child >= 0) close(sb->to_child);
    if (sb->from_child >= 0) close(sb->from_child);
    sb->to_child = sb->from_child = -1;
    if (kill_it) kill(sb->pid, SIGKILL);
    int st;
    while (waitpid(sb->pid, &st, 0) < 0 && errno == EINTR) {}
    sb->pid = -1;
}

int mr_sandbox_start(mr_sandbox **out, const mr_opts *opts) {
    mr_prepare();
    signal(SIGPIPE, SIG_IGN); /* a dead child must not kill the worker */
    mr_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) return srlm_set_error(SRLM_ENOMEM, "out of memory");
    if (opts) sb->opts = *opts;
    else mr_opts_default(&sb->opts);
    sb->pid = -1;
    sb->to_child = sb->from_child = -1;
    pthread_mutex_init(&sb->mu, NULL);
    int rc = spawn(sb);
    if (rc) {
        pthread_mutex_destroy(&sb->mu);
        free(sb);
        return rc;
    }
    *out = sb;
    return 0;
}

void mr_sandbox_stop(mr_sandbox *sb) {
    if (!sb) return;
    reap(sb, 0);
    pthread_mutex_destroy(&sb->mu);
    free(sb);
}

long mr_sandbox_restarts(const mr_sandbox *sb) { return sb ? sb->restarts : 0; }

int mr_sandbox_check(mr_sandbox *sb, const char *gold, const char *pred, mr_result *res, double timeout_s) {
    memset(res, 0, sizeof *res);
    size_t gl = strlen(gold), pl = strlen(pred);
    if (gl > MR_MAX_TEXT || pl > MR_MAX_TEXT) {
        res->verdict = MR_UNPARSABLE;
        snprintf(res->reason, sizeof res->reason, "input too long");
        return 0;
    }
    pthread_mutex_lock(&sb->mu);
    int rc = 0;
    if (sb->pid <= 0 && (rc = spawn(sb)) != 0) {
        pthread_mutex_unlock(&sb->mu);
        return rc;
    }
    uint32_t hdr[2] = {(uint32_t)gl, (uint32_t)pl};
    int ok = !write_all(sb->to_child, hdr, sizeof hdr) && !write_all(sb->to_child, gold, gl) &&
             !write_all(sb->to_child, pred, pl);
    const char *why = "checker crashed";
    if (ok) {
        struct pollfd pf = {sb->from_child, POLLIN, 0};
        int ms = timeout_s > 0 ? (int)(timeout_s * 1000) : 10000;
        int n;
        while ((n = poll(&pf, 1, ms)) < 0 && errno == EINTR) {}
        if (n == 0) { ok = 0; why = "checker timed out"; }
        else ok = n > 0 && !read_all(sb->from_child, res, sizeof *res);
    }
    if (!ok) {
        SRLM_WARN("math checker child %d: %s; restarting", (int)sb->pid, why);
        reap(sb, 1);
        sb->restarts++;
        memset(res, 0, sizeof *res);
        res->verdict = MR_UNPARSABLE;
        snprintf(res->reason, sizeof res->reason, "%s", why);
        rc = spawn(sb);
    }
    res->extracted[sizeof res->extracted - 1] = 0;
    res->gold[sizeof res->gold - 1] = 0;
    res->method[sizeof res->method - 1] = 0;
    res->reason[sizeof res->reason - 1] = 0;
    pthread_mutex_unlock(&sb->mu);
    return rc;
}
