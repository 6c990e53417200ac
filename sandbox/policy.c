/* policy.c — the seccomp policy of the sandbox (libseccomp).
 *
 * Three tiers (docs/sandbox.md "Policy"):
 *  1. allowlist: what CPython and ordinary programs need (files, memory, threads, signals,
 *     time, pipes, AF_UNIX sockets, fork/exec);
 *  2. kernel attack surface (ptrace, mount, namespaces, bpf, keyrings, io_uring, perf,
 *     modules, kexec, ...) -> SECCOMP_RET_KILL_PROCESS: the process dies of SIGSYS and the
 *     run's verdict is SEC;
 *  3. everything else -> ENOSYS (an unknown syscall just fails).
 * Non-native architectures (i386 via int 0x80, x32) hit the bad-arch action: kill. */
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox.h"

static const char *const allow_list[] = {
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "open", "openat", "openat2", "close", "close_range", "creat",
    "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "lseek",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents",
    "getdents64", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "unlink",
    "unlinkat", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
    "chmod", "fchmod", "fchmodat", "truncate", "ftruncate", "fallocate", "fsync",
    "fdatasync", "sync_file_range", "flock", "fcntl", "dup", "dup2", "dup3", "pipe",
    "pipe2", "umask", "utime", "utimes", "utimensat", "futimesat", "sendfile", "splice",
    "tee", "copy_file_range", "readahead", "memfd_create", "ioctl",
    "mmap", "munmap", "mprotect", "mremap", "brk", "madvise", "mincore", "msync", "mlock",
    "munlock", "mlock2",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigpending",
    "rt_sigtimedwait", "sigaltstack", "kill", "tgkill", "tkill", "pause", "alarm",
    "getitimer", "setitimer",
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "timerfd_create",
    "timerfd_settime", "timerfd_gettime", "signalfd", "signalfd4",
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
    "times", "getrusage", "sysinfo", "uname", "getrandom",
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups", "getpgid", "getpgrp", "getsid", "setpgid", "setsid",
    "getpriority", "capget", "getcpu",
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "set_tid_address",
    "rseq", "membarrier", "arch_prctl", "prctl", "sched_yield", "sched_getaffinity",
    "sched_getparam", "sched_getscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "getrlimit", "setrlimit", "prlimit64",
    "fork", "vfork", "execve", "execveat", "wait4", "waitid", "exit", "exit_group",
    "connect", "accept", "accept4", "bind", "listen", "sendto", "recvfrom", "sendmsg",
    "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "getsockname", "getpeername",
    "setsockopt", "getsockopt",
};

/* Kernel attack surface: hitting any of these is an escape attempt -> SIGSYS -> SEC. */
static const char *const kill_list[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root",
    "chroot", "unshare", "setns", "bpf", "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "perf_event_open",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "acct", "userfaultfd", "open_by_handle_at",
    "name_to_handle_at", "fanotify_init", "lookup_dcookie", "quotactl", "quotactl_fd",
    "iopl", "ioperm", "modify_ldt", "personality", "sethostname", "setdomainname",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "vhangup", "syslog",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "kcmp", "pidfd_getfd", "process_madvise", "uselib", "_sysctl", "nfsservctl",
    "mknod", "mknodat",
};

static scmp_filter_ctx policy_ctx(int *rcp) {
    scmp_filter_ctx c = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
    if (!c) { *rcp = -ENOMEM; return NULL; }
    int rc = seccomp_attr_set(c, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    for (size_t i = 0; rc == 0 && i < sizeof allow_list / sizeof *allow_list; i++) {
        int nr = seccomp_syscall_resolve_name(allow_list[i]);
        if (nr == __NR_SCMP_ERROR) continue; /* not on this architecture */
        rc = seccomp_rule_add(c, SCMP_ACT_ALLOW, nr, 0);
    }
    for (size_t i = 0; rc == 0 && i < sizeof kill_list / sizeof *kill_list; i++) {
        int nr = seccomp_syscall_resolve_name(kill_list[i]);
        if (nr == __NR_SCMP_ERROR) continue;
        rc = seccomp_rule_add(c, SCMP_ACT_KILL_PROCESS, nr, 0);
    }
    /* Sockets: AF_UNIX only; every other family (inet, inet6, netlink, packet, vsock...)
     * fails like an unsupported family. */
    if (rc == 0) rc = seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                       SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
    if (rc == 0) rc = seccomp_rule_add(c, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                                       SCMP_A0(SCMP_CMP_NE, AF_UNIX));
    if (rc == 0) rc = seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
                                       SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
    if (rc == 0) rc = seccomp_rule_add(c, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socketpair), 1,
                                       SCMP_A0(SCMP_CMP_NE, AF_UNIX));
    /* clone: threads and fork are fine; creating namespaces is an escape attempt. clone3
     * passes its flags in memory seccomp cannot read: ENOSYS makes glibc use clone. */
    const unsigned long nsflags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                                  CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
    if (rc == 0) rc = seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                       SCMP_A0(SCMP_CMP_MASKED_EQ, nsflags, 0));
    static const unsigned long each[] = {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID,
                                         CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS,
                                         CLONE_NEWCGROUP};
    for (size_t i = 0; rc == 0 && i < sizeof each / sizeof *each; i++)
        rc = seccomp_rule_add(c, SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, each[i], each[i]));
    /* clone3 falls to the default action (ENOSYS) */
    *rcp = rc;
    if (rc) { seccomp_release(c); return NULL; }
    return c;
}

int sbx_policy_install(void) {
    int rc;
    scmp_filter_ctx c = policy_ctx(&rc);
    if (!c) return rc;
    rc = seccomp_load(c);
    seccomp_release(c);
    return rc;
}

int sbx_policy_bpf(void *buf, size_t cap, size_t *len) {
    int rc;
    scmp_filter_ctx c = policy_ctx(&rc);
    if (!c) return rc;
    int fd = memfd_create("sbx-bpf", MFD_CLOEXEC);
    if (fd < 0) { seccomp_release(c); return -errno; }
    rc = seccomp_export_bpf(c, fd);
    seccomp_release(c);
    off_t n = lseek(fd, 0, SEEK_CUR);
    if (rc == 0 && (n <= 0 || (size_t)n > cap)) rc = -E2BIG;
    if (rc == 0 && pread(fd, buf, (size_t)n, 0) != n) rc = -EIO;
    close(fd);
    if (rc == 0) *len = (size_t)n;
    return rc;
}
