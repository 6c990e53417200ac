/* sandbox.c — namespaces, rlimits, identity, file system view and the supervisor of one
 * sandboxed run. The API and the containment model are documented in sandbox.h and
 * docs/sandbox.md; the seccomp policy is in policy.c. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"
#include "util.h"

#define IN_UID 1000u /* the program's uid inside a user namespace */

void sbx_limits_default(sbx_limits *l) {
    memset(l, 0, sizeof *l);
    l->wall_s = 10.0;
    l->mem_mb = 1024;
    l->fsize_mb = 16;
    l->tmp_mb = 64;
    l->nofile = 64;
    l->nproc = 32;
    l->out_cap = 4u << 20;
}

const char *sbx_verdict_name(int v) {
    static const char *const n[] = {"OK", "TLE", "MLE", "OLE", "RE", "SEC"};
    return v >= 0 && v <= SBX_SEC ? n[v] : "?";
}

void sbx_ns_names(int mask, char *buf, size_t n) {
    static const char *const names[] = {"user", "pid", "net", "mount", "ipc", "uts"};
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < 6; i++)
        if (mask & (1 << i))
            len += (size_t)snprintf(buf + len, len < n ? n - len : 0, "%s%s", len ? "," : "",
                                    names[i]);
    if (!len) snprintf(buf, n, "none");
}

static int ns_clone_flags(int mask) {
    int f = 0;
    if (mask & SBX_NS_USER) f |= CLONE_NEWUSER;
    if (mask & SBX_NS_PID) f |= CLONE_NEWPID;
    if (mask & SBX_NS_NET) f |= CLONE_NEWNET;
    if (mask & SBX_NS_MNT) f |= CLONE_NEWNS;
    if (mask & SBX_NS_IPC) f |= CLONE_NEWIPC;
    if (mask & SBX_NS_UTS) f |= CLONE_NEWUTS;
    return f;
}

/* Fork a child that tries unshare(flags); 1 when it worked. */
static int probe_unshare(int flags) {
    pid_t p = fork();
    if (p < 0) return -1;
    if (p == 0) _exit(unshare(flags) == 0 ? 0 : 1);
    int st = 0;
    while (waitpid(p, &st, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int sbx_init(sbx_ctx *ctx, int no_userns) {
    memset(ctx, 0, sizeof *ctx);
    const char *env = getenv("SRLM_SANDBOX_NO_USERNS");
    if (env && *env && strcmp(env, "0") != 0) no_userns = 1;
    ctx->is_root = geteuid() == 0;
    const char *base = getenv("SRLM_SANDBOX_DIR");
    if (!base || !*base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(ctx->base_dir, sizeof ctx->base_dir, "%s", base);
    /* The sandbox's own (unprivileged) uid mounts the private root onto a directory under
     * base: base and every ancestor must be searchable by others. */
    char walk[512];
    snprintf(walk, sizeof walk, "%s", ctx->base_dir);
    for (;;) {
        struct stat st;
        if (stat(walk[0] ? walk : "/", &st) == 0 && !(st.st_mode & S_IXOTH)) {
            SRLM_WARN("sandbox: %s is not searchable by other users; work directories go to /tmp",
                      walk[0] ? walk : "/");
            snprintf(ctx->base_dir, sizeof ctx->base_dir, "/tmp");
            break;
        }
        char *slash = walk[0] ? strrchr(walk, '/') : NULL;
        if (!slash) break;
        *slash = 0;
    }
    const int all = SBX_NS_USER | SBX_NS_PID | SBX_NS_NET | SBX_NS_MNT | SBX_NS_IPC | SBX_NS_UTS;
    int r = no_userns ? 0 : probe_unshare(ns_clone_flags(all));
    if (r < 0) return srlm_set_error(SRLM_EIO, "sandbox probe: fork: %s", strerror(errno));
    if (r == 1) {
        ctx->have = all;
    } else {
        for (int bit = SBX_NS_PID; bit <= SBX_NS_UTS; bit <<= 1) {
            r = probe_unshare(ns_clone_flags(bit));
            if (r < 0) return srlm_set_error(SRLM_EIO, "sandbox probe: fork: %s", strerror(errno));
            if (r == 1) ctx->have |= bit;
        }
    }
    ctx->missing = all & ~ctx->have;
    int prc = sbx_policy_bpf(ctx->bpf, sizeof ctx->bpf, &ctx->bpf_len);
    if (prc) return srlm_set_error(SRLM_EINTERNAL, "sandbox: building the seccomp filter: %s",
                                   strerror(-prc));
    if (ctx->missing) {
        char miss[96], have[96];
        sbx_ns_names(ctx->missing, miss, sizeof miss);
        sbx_ns_names(ctx->have, have, sizeof have);
        SRLM_WARN("sandbox: degraded mode, namespaces unavailable: %s%s; running with: %s; "
                  "%s", miss, no_userns ? " (user namespaces disabled by flag/SRLM_SANDBOX_NO_USERNS)" : "",
                  have,
                  ctx->is_root ? "programs run as a per-run unprivileged host uid"
                               : (ctx->have & SBX_NS_PID) ? "programs run as this user"
                               : "programs run as this user WITHOUT pid/mount isolation (see docs/sandbox.md)");
    }
    return 0;
}

/* ---------------------------------------------------------------- the child */
typedef struct {
    const sbx_ctx *ctx;
    const sbx_limits *lim;
    const sbx_job *job;
    int sync_r, err_w, in_r, out_w, err_pipe_w, rec_w, devnull;
    unsigned host_uid;       /* without user namespace: the uid to run as (root only) */
    char root[600];          /* the work dir (mount point of the private root) */
    char tmpopt[64];         /* tmpfs options of /tmp */
    char *envp[8];
} child_args;

enum { STEP_SYNC = 1, STEP_MOUNT, STEP_RLIMIT, STEP_IDENTITY, STEP_PRCTL, STEP_FDS,
       STEP_CHDIR, STEP_SECCOMP, STEP_EXEC };

static void child_fail(const child_args *a, int step) {
    int msg[2] = {step, errno};
    ssize_t w = write(a->err_w, msg, sizeof msg);
    (void)w;
    _exit(127);
}

/* Path join without allocation (the child must stay async-signal-safe). */
static const char *pj(char *buf, size_t n, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 2 > n) { buf[0] = 0; return buf; }
    memcpy(buf, a, la);
    buf[la] = '/';
    memcpy(buf + la + 1, b, lb + 1);
    return buf;
}

static int setup_fs(const child_args *a) {
    char p[700], q[700];
    const char *root = a->root;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) return -1;
    if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=64,mode=0755"))
        return -1;
    static const char *const dirs[] = {"usr", "dev", "tmp", ".old"};
    for (size_t i = 0; i < 4; i++)
        if (mkdir(pj(p, sizeof p, root, dirs[i]), 0755)) return -1;
    if (mount("/usr", pj(p, sizeof p, root, "usr"), NULL, MS_BIND | MS_REC, NULL)) return -1;
    if (mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL))
        return -1;
    static const char *const top[] = {"bin", "lib", "lib64", "lib32", "sbin"};
    for (size_t i = 0; i < 5; i++) {
        char tgt[256];
        pj(q, sizeof q, "", top[i]);
        ssize_t n = readlink(q, tgt, sizeof tgt - 1);
        if (n > 0) {
            tgt[n] = 0;
            if (symlink(tgt, pj(p, sizeof p, root, top[i]))) return -1;
        } else {
            struct stat st;
            if (stat(q, &st) || !S_ISDIR(st.st_mode)) continue;
            if (mkdir(pj(p, sizeof p, root, top[i]), 0755)) return -1;
            if (mount(q, p, NULL, MS_BIND | MS_REC, NULL)) return -1;
            if (mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL))
                return -1;
        }
    }
    static const char *const devs[] = {"null", "zero", "full", "random", "urandom"};
    for (size_t i = 0; i < 5; i++) {
        char d[64];
        pj(d, sizeof d, "dev", devs[i]);
        pj(p, sizeof p, root, d);
        int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
        if (fd < 0) return -1;
        close(fd);
        if (mount(pj(q, sizeof q, "", d), p, NULL, MS_BIND, NULL)) return -1;
    }
    if (mount("tmpfs", pj(p, sizeof p, root, "tmp"), "tmpfs", MS_NOSUID | MS_NODEV, a->tmpopt))
        return -1;
    if (syscall(SYS_pivot_root, root, pj(q, sizeof q, root, ".old"))) return -1;
    if (chdir("/")) return -1;
    if (umount2("/.old", MNT_DETACH)) return -1;
    if (rmdir("/.old")) return -1;
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL))
        return -1;
    return 0;
}

static int set_limit(int res, rlim_t v) {
    struct rlimit rl = {v, v};
    return setrlimit(res, &rl);
}

/* glibc's set*id wrappers signal every thread of the process it believes it has; a child
 * created with clone() from a threaded parent would wait on threads it does not have.
 * The raw system calls change this (single-threaded) process only. */
static int sys_setresuid(unsigned r, unsigned e, unsigned s) { return (int)syscall(SYS_setresuid, r, e, s); }
static int sys_setresgid(unsigned r, unsigned e, unsigned s) { return (int)syscall(SYS_setresgid, r, e, s); }
static int sys_setgroups0(void) { return (int)syscall(SYS_setgroups, 0, NULL); }

static int child_main(void *arg) {
    const child_args *a = arg;
    const sbx_limits *l = a->lim;
    const int have = a->ctx->have;
    char c;
    if (read(a->sync_r, &c, 1) != 1) child_fail(a, STEP_SYNC);
    close(a->sync_r);
    if (have & SBX_NS_USER) {
        /* become root of the new user namespace (host uid from the map) for the setup */
        if (a->ctx->is_root && (sys_setresgid(0, 0, 0) || sys_setresuid(0, 0, 0)))
            child_fail(a, STEP_IDENTITY);
    }
    if (have & SBX_NS_MNT) {
        if (setup_fs(a)) child_fail(a, STEP_MOUNT);
    }
    if (have & SBX_NS_UTS) {
        if (sethostname("sandbox", 7)) child_fail(a, STEP_IDENTITY);
    }
    /* fds: 0 /dev/null, 1 stdout pipe, 2 stderr pipe, 3 input pipe, 4 record socket. */
    int src[5] = {a->devnull, a->out_w, a->err_pipe_w, a->in_r, a->rec_w};
    int hi[5];
    for (int i = 0; i < 5; i++) {
        hi[i] = src[i] >= 0 ? fcntl(src[i], F_DUPFD_CLOEXEC, 16) : -1;
        if (src[i] >= 0 && hi[i] < 0) child_fail(a, STEP_FDS);
    }
    for (int i = 0; i < 5; i++) {
        if (hi[i] < 0) { close(i); continue; }
        if (dup2(hi[i], i) < 0) child_fail(a, STEP_FDS);
    }
    /* everything else is closed at exec (the error pipe must live until then) */
    if (syscall(SYS_close_range, 5u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */)) {
        for (int fd = 5; fd < 1024; fd++)
            if (fd != a->err_w) close(fd);
    }
    int cpu = l->cpu_s > 0 ? l->cpu_s : (int)l->wall_s + 2;
    if (set_limit(RLIMIT_CPU, (rlim_t)cpu) ||
        set_limit(RLIMIT_AS, (rlim_t)l->mem_mb << 20) ||
        set_limit(RLIMIT_FSIZE, (rlim_t)l->fsize_mb << 20) ||
        set_limit(RLIMIT_NOFILE, (rlim_t)l->nofile) ||
        set_limit(RLIMIT_CORE, 0) || set_limit(RLIMIT_MEMLOCK, 0) ||
        set_limit(RLIMIT_NPROC, (rlim_t)l->nproc) ||
        set_limit(RLIMIT_STACK, (rlim_t)8 << 20) || set_limit(RLIMIT_MSGQUEUE, 0))
        child_fail(a, STEP_RLIMIT);
    /* Identity: unprivileged uid/gid, no supplementary groups, no capabilities. */
    if (have & SBX_NS_USER) {
        if (a->ctx->is_root && sys_setgroups0()) child_fail(a, STEP_IDENTITY);
        if (sys_setresgid(IN_UID, IN_UID, IN_UID) || sys_setresuid(IN_UID, IN_UID, IN_UID))
            child_fail(a, STEP_IDENTITY);
    } else if (a->ctx->is_root) {
        if (sys_setgroups0() || sys_setresgid(a->host_uid, a->host_uid, a->host_uid) ||
            sys_setresuid(a->host_uid, a->host_uid, a->host_uid))
            child_fail(a, STEP_IDENTITY);
    }
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data)) child_fail(a, STEP_IDENTITY);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) ||
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
        child_fail(a, STEP_PRCTL);
    if (setsid() < 0 && !(have & SBX_NS_PID)) child_fail(a, STEP_PRCTL);
    if (chdir((have & SBX_NS_MNT) ? "/tmp" : a->root)) child_fail(a, STEP_CHDIR);
    if (!l->no_seccomp) {
        /* the filter was compiled by sbx_init: no allocation here (another thread may
         * have held the malloc lock when we were cloned) */
        struct sock_fprog prog = {(unsigned short)(a->ctx->bpf_len / sizeof(struct sock_filter)),
                                  (struct sock_filter *)(void *)a->ctx->bpf};
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0)) child_fail(a, STEP_SECCOMP);
    }
    execve(a->job->argv[0], a->job->argv, a->envp);
    child_fail(a, STEP_EXEC);
    return 127;
}

/* ---------------------------------------------------------------- the supervisor */
static int write_file(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, s, strlen(s));
    close(fd);
    return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int set_maps(const sbx_ctx *ctx, pid_t pid, unsigned host) {
    char path[64], map[128];
    if (ctx->is_root) {
        snprintf(map, sizeof map, "0 %u 1\n%u %u 1\n", host, IN_UID, host + 1);
    } else {
        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
        if (write_file(path, "deny")) return -1;
        snprintf(map, sizeof map, "%u %u 1\n", IN_UID, (unsigned)geteuid());
    }
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    if (write_file(path, map)) return -1;
    if (!ctx->is_root) snprintf(map, sizeof map, "%u %u 1\n", IN_UID, (unsigned)getegid());
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    return write_file(path, map);
}

/* Kill every process of the run. */
static void kill_run(const sbx_ctx *ctx, pid_t pid, int pidfd, unsigned uid, int alive) {
    if (alive) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    if (ctx->have & SBX_NS_PID) return; /* init died: the kernel kills the namespace */
    kill(-pid, SIGKILL);
    if (ctx->is_root && !(ctx->have & SBX_NS_USER)) {
        /* a per-run uid: everything still running as it belongs to this run (daemons
         * that left the session included) */
        pid_t k = fork();
        if (k == 0) {
            if (syscall(SYS_setresuid, uid, uid, uid) == 0) kill(-1, SIGKILL);
            _exit(0);
        }
        if (k > 0) while (waitpid(k, NULL, 0) < 0 && errno == EINTR) {}
    }
}

typedef struct {
    char *buf;
    size_t len, total, cap;
} capbuf;

static void cap_append(capbuf *b, const char *d, size_t n) {
    b->total += n;
    if (b->len >= b->cap) return;
    size_t take = n < b->cap - b->len ? n : b->cap - b->len;
    b->buf = srlm_xrealloc(b->buf, b->len + take + 1);
    memcpy(b->buf + b->len, d, take);
    b->len += take;
    b->buf[b->len] = 0;
}

static const char *const step_names[] = {"?", "sync", "mount", "rlimit", "identity", "prctl",
                                         "fds", "chdir", "seccomp", "exec"};

int sbx_run(const sbx_ctx *ctx, const sbx_limits *lim, const sbx_job *job, sbx_result *res) {
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    double t0 = srlm_now();
    int rc = 0;
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1}, syncp[2] = {-1, -1},
        errpipe[2] = {-1, -1}, recp[2] = {-1, -1}, devnull = -1, pidfd = -1;
    pid_t pid = -1;
    void *stack = MAP_FAILED;
    const size_t stack_sz = 256 << 10;
    child_args a;
    memset(&a, 0, sizeof a);

    if (srlm_fmt(res->workdir, sizeof res->workdir, "%s/srlm-sbx-XXXXXX", ctx->base_dir) ||
        !mkdtemp(res->workdir)) {
        res->workdir[0] = 0;
        return srlm_set_error(SRLM_EIO, "sandbox: cannot create a work dir in %s: %s",
                              ctx->base_dir, strerror(errno));
    }
    chmod(res->workdir, 0755);
    if (pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) || pipe2(syncp, O_CLOEXEC) ||
        pipe2(errpipe, O_CLOEXEC) || (job->input && pipe2(inp, O_CLOEXEC)) ||
        (job->on_record && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, recp)) ||
        (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        rc = srlm_set_error(SRLM_EIO, "sandbox: pipe: %s", strerror(errno));
        goto out;
    }
    if (recp[0] >= 0) {
        int one = 1;
        setsockopt(recp[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
    }
    unsigned host_uid;
    a.ctx = ctx;
    a.lim = lim;
    a.job = job;
    a.sync_r = syncp[0];
    a.err_w = errpipe[1];
    a.in_r = inp[0];
    a.out_w = outp[1];
    a.err_pipe_w = errp[1];
    a.rec_w = recp[1];
    a.devnull = devnull;
    snprintf(a.root, sizeof a.root, "%s", res->workdir);
    snprintf(a.tmpopt, sizeof a.tmpopt, "size=%dm,nr_inodes=4096,mode=1777", lim->tmp_mb);
    a.envp[0] = "PATH=/usr/bin:/bin";
    a.envp[1] = "HOME=/tmp";
    a.envp[2] = "TMPDIR=/tmp";
    a.envp[3] = "LANG=C.UTF-8";
    a.envp[4] = "LC_ALL=C.UTF-8";
    a.envp[5] = NULL;

    stack = mmap(NULL, stack_sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                 -1, 0);
    if (stack == MAP_FAILED) { rc = srlm_set_error(SRLM_ENOMEM, "sandbox: mmap stack"); goto out; }
    /* Host uid unique to this run while it lives: one run per thread at a time, and
     * thread ids are unique system-wide (pid_max <= 4M keeps it below 2^24). */
    host_uid = 1000000u + 2u * (unsigned)syscall(SYS_gettid);
    a.host_uid = host_uid;
    if (!(ctx->have & SBX_NS_MNT) && ctx->is_root && !(ctx->have & SBX_NS_USER))
        if (chown(res->workdir, host_uid, host_uid)) {}
    int flags = ns_clone_flags(ctx->have) | CLONE_PIDFD | SIGCHLD;
    pid = clone(child_main, (char *)stack + stack_sz, flags, &a, &pidfd);
    if (pid < 0) {
        rc = srlm_set_error(SRLM_EIO, "sandbox: clone: %s", strerror(errno));
        goto out;
    }
    munmap(stack, stack_sz);
    stack = MAP_FAILED;
    close(syncp[0]); syncp[0] = -1;
    close(errpipe[1]); errpipe[1] = -1;
    close(outp[1]); outp[1] = -1;
    close(errp[1]); errp[1] = -1;
    if (inp[0] >= 0) { close(inp[0]); inp[0] = -1; }
    if (recp[1] >= 0) { close(recp[1]); recp[1] = -1; }
    close(devnull); devnull = -1;
    if ((ctx->have & SBX_NS_USER) && set_maps(ctx, pid, host_uid)) {
        rc = srlm_set_error(SRLM_EIO, "sandbox: writing uid/gid maps: %s", strerror(errno));
        kill_run(ctx, pid, pidfd, host_uid, 1);
        goto reap;
    }
    res->host_uid = (ctx->have & SBX_NS_USER) ? (ctx->is_root ? host_uid + 1 : geteuid())
                    : ctx->is_root ? host_uid : geteuid();
    if (ctx->have & SBX_NS_PID) {
        char path[64];
        struct stat st;
        snprintf(path, sizeof path, "/proc/%d/ns/pid", (int)pid);
        if (stat(path, &st) == 0) res->pidns = (unsigned long)st.st_ino;
    }
    if (write(syncp[1], "x", 1) != 1) {}
    close(syncp[1]); syncp[1] = -1;
    {
        /* wait for exec (EOF on the close-on-exec pipe) or a setup failure report */
        int msg[2];
        struct pollfd pf = {errpipe[0], POLLIN, 0};
        int pr;
        while ((pr = poll(&pf, 1, 30000)) < 0 && errno == EINTR) {}
        ssize_t n = -1;
        if (pr > 0)
            while ((n = read(errpipe[0], msg, sizeof msg)) < 0 && errno == EINTR) {}
        if (n == (ssize_t)sizeof msg) {
            int step = msg[0] >= 1 && msg[0] <= STEP_EXEC ? msg[0] : 0;
            rc = srlm_set_error(step == STEP_EXEC ? SRLM_ENOTFOUND : SRLM_EIO,
                                "sandbox: %s failed: %s%s%s", step_names[step], strerror(msg[1]),
                                step == STEP_EXEC ? " executing " : "",
                                step == STEP_EXEC ? job->argv[0] : "");
            kill_run(ctx, pid, pidfd, host_uid, 1);
            goto reap;
        }
        if (n != 0) {
            rc = srlm_set_error(SRLM_EIO, "sandbox: no word from the child during setup "
                                "(poll %d, read %zd: %s)", pr, n, strerror(errno));
            kill_run(ctx, pid, pidfd, host_uid, 1);
            goto reap;
        }
    }
    res->setup_s = srlm_now() - t0;

    double wall = lim->wall_s;
    capbuf cb[2] = {{NULL, 0, 0, lim->out_cap}, {NULL, 0, 0, lim->out_cap}};
    size_t in_off = 0;
    int in_w = inp[1];
    if (in_w >= 0) fcntl(in_w, F_SETFL, O_NONBLOCK);
    int fds_open[3] = {outp[0], errp[0], recp[0]};
    int exited = 0, killed = 0, tle = 0, ole = 0, kill_req = 0;
    double exit_t = 0;
    char *rbuf = srlm_xmalloc(65536 + 1);
    for (;;) {
        struct pollfd pf[5];
        int np = 0, idx[5];
        for (int i = 0; i < 3; i++)
            if (fds_open[i] >= 0) { pf[np] = (struct pollfd){fds_open[i], POLLIN, 0}; idx[np++] = i; }
        if (in_w >= 0) { pf[np] = (struct pollfd){in_w, POLLOUT, 0}; idx[np++] = 3; }
        if (!exited) { pf[np] = (struct pollfd){pidfd, POLLIN, 0}; idx[np++] = 4; }
        if (np == 0) break;
        if (exited && fds_open[0] < 0 && fds_open[1] < 0 && fds_open[2] < 0) break;
        double now = srlm_now();
        double until = exited ? exit_t + 1.0 : t0 + wall;
        if (now >= until) {
            if (exited) break; /* stragglers hold the pipes: stop reading */
            tle = 1;
            kill_run(ctx, pid, pidfd, host_uid, 1);
            killed = 1;
            exited = 1; /* will be reaped below */
            exit_t = now;
            continue;
        }
        int ms = (int)((until - now) * 1000) + 1;
        int pr = poll(pf, (nfds_t)np, ms);
        if (pr < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int k = 0; k < np; k++) {
            if (!pf[k].revents) continue;
            int i = idx[k];
            if (i < 2) {
                ssize_t n = read(pf[k].fd, rbuf, 65536);
                if (n <= 0) { if (n == 0 || errno != EINTR) { close(fds_open[i]); fds_open[i] = -1; } continue; }
                cap_append(&cb[i], rbuf, (size_t)n);
                if (cb[i].total > lim->out_cap && !ole) {
                    ole = 1;
                    kill_run(ctx, pid, pidfd, host_uid, !exited);
                    killed = 1;
                }
                if (cb[i].total > lim->out_cap + (64u << 10)) { close(fds_open[i]); fds_open[i] = -1; }
            } else if (i == 2) {
                char cbuf[CMSG_SPACE(sizeof(struct ucred))];
                struct iovec iov = {rbuf, 65536};
                struct msghdr mh = {0};
                mh.msg_iov = &iov;
                mh.msg_iovlen = 1;
                mh.msg_control = cbuf;
                mh.msg_controllen = sizeof cbuf;
                ssize_t n = recvmsg(pf[k].fd, &mh, MSG_CMSG_CLOEXEC);
                if (n <= 0) { if (n == 0 || errno != EINTR) { close(fds_open[2]); fds_open[2] = -1; } continue; }
                struct ucred cr = {0, 0, 0};
                int have_cred = 0;
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS) {
                        memcpy(&cr, CMSG_DATA(cm), sizeof cr);
                        have_cred = 1;
                    } else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                        int *fdp = (int *)CMSG_DATA(cm);
                        size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t j = 0; j < nfd; j++) close(fdp[j]);
                    }
                }
                if (!have_cred || cr.pid != pid || (mh.msg_flags & MSG_TRUNC)) {
                    res->records_rejected++;
                    continue;
                }
                rbuf[n] = 0;
                res->records++;
                if (job->on_record && job->on_record(job->user, rbuf, (size_t)n, &wall) < 0 && !kill_req) {
                    kill_req = 1;
                    kill_run(ctx, pid, pidfd, host_uid, !exited);
                    killed = 1;
                }
            } else if (i == 3) {
                if (pf[k].revents & (POLLERR | POLLHUP)) { close(in_w); in_w = inp[1] = -1; continue; }
                ssize_t n = write(in_w, job->input + in_off, job->input_len - in_off);
                if (n > 0) in_off += (size_t)n;
                if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_off >= job->input_len) {
                    close(in_w);
                    in_w = inp[1] = -1;
                }
            } else if (i == 4) {
                exited = 1;
                exit_t = srlm_now();
                /* the run is over: make sure nothing of it keeps running */
                kill_run(ctx, pid, pidfd, host_uid, 0);
            }
        }
    }
    free(rbuf);
    /* closed ones are -1 now: never close an fd number twice (threads reuse them) */
    outp[0] = fds_open[0];
    errp[0] = fds_open[1];
    recp[0] = fds_open[2];
    inp[1] = in_w;
    res->out = cb[0].buf ? cb[0].buf : srlm_xstrdup("");
    res->err = cb[1].buf ? cb[1].buf : srlm_xstrdup("");
    res->out_len = cb[0].len;
    res->err_len = cb[1].len;
    res->out_total = cb[0].total;
    res->err_total = cb[1].total;
    {
        int st = 0;
        struct rusage ru;
        memset(&ru, 0, sizeof ru);
        if (!exited) kill_run(ctx, pid, pidfd, host_uid, 1);
        while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR) {}
        kill_run(ctx, pid, pidfd, host_uid, 0);
        res->wall_s = srlm_now() - t0;
        res->cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
                     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
        res->max_rss_kb = ru.ru_maxrss;
        if (WIFEXITED(st)) res->exit_code = WEXITSTATUS(st);
        if (WIFSIGNALED(st)) res->term_signal = WTERMSIG(st);
        if (ole) res->verdict = SBX_OLE;
        else if (tle) res->verdict = SBX_TLE;
        else if (res->term_signal == SIGSYS) res->verdict = SBX_SEC;
        else if (res->term_signal == SIGXCPU) res->verdict = SBX_TLE;
        else if (res->term_signal == SIGXFSZ) res->verdict = SBX_OLE;
        else if (res->term_signal) res->verdict = SBX_RE;
        else if (res->exit_code != 0)
            res->verdict = strstr(res->err, "MemoryError") ? SBX_MLE : SBX_RE;
        else res->verdict = SBX_OK;
        (void)killed;
        pid = -1;
    }
    goto out;
reap:
    if (pid > 0) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        pid = -1;
    }
out:
    if (stack != MAP_FAILED) munmap(stack, stack_sz);
    int all[] = {outp[0], outp[1], errp[0], errp[1], inp[0], inp[1], syncp[0], syncp[1],
                 errpipe[0], errpipe[1], recp[0], recp[1], devnull, pidfd};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i] >= 0) close(all[i]);
    if (res->workdir[0] && srlm_rm_rf(res->workdir) && rc == 0)
        rc = srlm_set_error(SRLM_EIO, "sandbox: cannot remove %s", res->workdir);
    if (!res->out) res->out = srlm_xstrdup("");
    if (!res->err) res->err = srlm_xstrdup("");
    return rc;
}

void sbx_result_free(sbx_result *res) {
    if (!res) return;
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
}
