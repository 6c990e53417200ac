/* sandbox.h — run an untrusted command in a contained child process (prefix sbx_).
 *
 * Containment (docs/sandbox.md, DESIGN.md "Sandbox contract"):
 *  - namespaces: user, pid, net, mount, ipc, uts where the kernel allows them (probed once
 *    by sbx_init; what is missing is named in one warning). The child is pid 1 of its pid
 *    namespace, so killing it kills every process of the run, double-forked daemons
 *    included; it has no network interface but loopback-less `lo`.
 *  - file system (mount namespace): a private tmpfs root holding a read-only bind of /usr
 *    (plus the /bin, /lib, /lib64, /sbin links), /dev/{null,zero,full,random,urandom} and a
 *    size-capped tmpfs /tmp that is the work directory. No /proc, no /etc, no /home. The
 *    host directory the tmpfs is mounted on is removed afterwards (srlm_rm_rf, never
 *    following links).
 *  - identity: an unprivileged uid/gid (1000 inside a user namespace, mapped to a host uid
 *    unique to the run; without a user namespace, the host uid 1000000+2*pid when we are
 *    root), no supplementary groups, no capabilities, PR_SET_NO_NEW_PRIVS,
 *    PR_SET_PDEATHSIG(SIGKILL), a new session; stdin is /dev/null; environment scrubbed.
 *  - rlimits: CPU, AS, FSIZE, NOFILE, NPROC, CORE 0, MEMLOCK 0, STACK.
 *  - seccomp (sandbox/policy.c): allowlist; kernel attack surface kills the process
 *    (SIGSYS -> SEC); non-native ABIs (i386 int 0x80, x32) are killed; socket families
 *    other than AF_UNIX fail with EAFNOSUPPORT; anything unlisted fails with ENOSYS.
 *  - the parent enforces the wall-clock limit, drains stdout and stderr with caps (over
 *    the cap: OLE, the run is killed) and accepts records on fd 4 only from the child
 *    itself (SCM_CREDENTIALS pid check by the kernel).
 *
 * Thread safety: sbx_run may be called from several threads at once with the same ctx. */
#ifndef SRLM_SANDBOX_H
#define SRLM_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

enum { SBX_OK = 0, SBX_TLE, SBX_MLE, SBX_OLE, SBX_RE, SBX_SEC };

/* Namespace bits of sbx_ctx.have / sbx_ctx.missing. */
enum { SBX_NS_USER = 1, SBX_NS_PID = 2, SBX_NS_NET = 4, SBX_NS_MNT = 8, SBX_NS_IPC = 16,
       SBX_NS_UTS = 32 };

typedef struct {
    int have;           /* SBX_NS_* the runs use */
    int missing;        /* SBX_NS_* unavailable (or disabled) */
    int is_root;        /* the supervisor runs as uid 0 */
    char base_dir[512]; /* where work directories are created */
    size_t bpf_len;     /* the compiled seccomp filter (policy.c), built once by sbx_init: */
    unsigned char bpf[32768]; /* the child must not call malloc (threads) */
} sbx_ctx;

/* Limits of one run. sbx_limits_default() fills the defaults shown. */
typedef struct {
    double wall_s;       /* wall-clock limit, seconds (10) */
    int cpu_s;           /* RLIMIT_CPU per process, seconds (0 = ceil(wall_s) + 1) */
    int mem_mb;          /* RLIMIT_AS per process, MiB (1024) */
    int fsize_mb;        /* RLIMIT_FSIZE, MiB (16) */
    int tmp_mb;          /* size of the /tmp tmpfs (64) */
    int nofile;          /* RLIMIT_NOFILE (64) */
    int nproc;           /* RLIMIT_NPROC (32; threads count) */
    size_t out_cap;      /* bytes allowed on stdout, and again on stderr (4 MiB) */
    int no_seccomp;      /* debugging only: skip the seccomp filter (0) */
} sbx_limits;

void sbx_limits_default(sbx_limits *l);

/* Called for each record the child sent on fd 4 (authenticated: sent by the child process
 * itself, not by any of its descendants). May change *wall_s (the run's limit, counted
 * from the start). Return 0 to continue, < 0 to kill the run. */
typedef int (*sbx_record_fn)(void *user, const char *msg, size_t len, double *wall_s);

typedef struct {
    char *const *argv;       /* argv[0]: absolute path of the program (borrowed) */
    const char *input;       /* bytes the child reads on fd 3 (pipe, then EOF); NULL: none */
    size_t input_len;
    sbx_record_fn on_record; /* non-NULL: fd 4 is a SOCK_SEQPACKET socket for records */
    void *user;
} sbx_job;

typedef struct {
    int verdict;          /* SBX_* */
    int exit_code;        /* when the child exited (else -1) */
    int term_signal;      /* signal that ended the child (else 0) */
    double wall_s;        /* wall time of the run, seconds */
    double cpu_s;         /* user + system CPU of the child (and reaped descendants) */
    double setup_s;       /* time from start to the program's exec */
    long max_rss_kb;
    char *out, *err;      /* captured stdout/stderr (heap, NUL-terminated, <= out_cap) */
    size_t out_len, err_len;
    size_t out_total, err_total; /* bytes the child wrote (up to the cap + 64 KiB) */
    int records;          /* records accepted */
    int records_rejected; /* records from another process (forgery attempts) */
    unsigned host_uid;    /* host uid the program ran as */
    unsigned long pidns;  /* inode of the run's pid namespace (0: none) */
    char workdir[600];    /* the host work directory (removed when sbx_run returns) */
} sbx_result;

/* Probe which namespaces this process may create and choose the work-dir base
 * ($SRLM_SANDBOX_DIR, $TMPDIR or /tmp). no_userns (or $SRLM_SANDBOX_NO_USERNS=1) simulates
 * a container without user namespaces. Logs ONE warning naming what is missing.
 * Errors: SRLM_EIO (fork failed). */
int sbx_init(sbx_ctx *ctx, int no_userns);

/* Run job under limits. Fills *res (caller frees with sbx_result_free). Returns 0 when the
 * program ran (whatever it did: see res->verdict), or a negative SRLM_E* for
 * infrastructure failures (cannot create the work dir, clone, exec the program). */
int sbx_run(const sbx_ctx *ctx, const sbx_limits *lim, const sbx_job *job, sbx_result *res);
void sbx_result_free(sbx_result *res);

const char *sbx_verdict_name(int verdict); /* "OK", "TLE", ... */
/* "user,pid,..." for a mask of SBX_NS_* into buf. */
void sbx_ns_names(int mask, char *buf, size_t n);

/* Install the sandbox seccomp policy on the calling process (sandbox/policy.c).
 * Returns 0 or a negative errno-style code from libseccomp. */
int sbx_policy_install(void);
/* Compile the same policy to classic BPF (struct sock_filter[]) into buf; *len in bytes. */
int sbx_policy_bpf(void *buf, size_t cap, size_t *len);

#endif
