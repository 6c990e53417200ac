/* util.c — see util.h. */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ---- errors ------------------------------------------------------------------------ */
static _Thread_local char g_errbuf[1024];

const char *srlm_strerror(int code) {
    switch (code) {
    case SRLM_OK: return "ok";
    case SRLM_EIO: return "i/o error";
    case SRLM_EINVAL: return "invalid input";
    case SRLM_ENOMEM: return "out of memory or over a size limit";
    case SRLM_EFORMAT: return "malformed data";
    case SRLM_ENOTFOUND: return "not found";
    case SRLM_ETIMEOUT: return "timed out";
    case SRLM_EUNSUPPORTED: return "unsupported";
    case SRLM_EINTERNAL: return "internal error";
    case SRLM_EINTR: return "interrupted";
    default: return "unknown error";
    }
}

int srlm_set_error(int code, const char *fmt, ...) {
    /* formatted aside first: the previous message may be an argument (wrapping an error
     * with context: srlm_set_error(rc, "%s: %s", path, srlm_last_error())) */
    char buf[sizeof g_errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(g_errbuf, buf, sizeof g_errbuf);
    return code;
}

const char *srlm_last_error(void) { return g_errbuf; }

/* ---- logging ----------------------------------------------------------------------- */
/* Process-wide: the role name and level are set once at start-up by main(). */
static char g_role[32] = "srlm";
static int g_level = -1;

void srlm_log_set_role(const char *role) { snprintf(g_role, sizeof g_role, "%s", role); }
void srlm_log_set_level(int level) { g_level = level; }

static int log_level(void) {
    if (g_level >= 0) return g_level;
    const char *e = getenv("SRLM_LOG_LEVEL");
    g_level = SRLM_LOG_INFO;
    if (e) {
        if (!strcmp(e, "debug")) g_level = SRLM_LOG_DEBUG;
        else if (!strcmp(e, "warn")) g_level = SRLM_LOG_WARN;
        else if (!strcmp(e, "error")) g_level = SRLM_LOG_ERROR;
    }
    return g_level;
}

void srlm_log(int level, const char *fmt, ...) {
    if (level < log_level()) return;
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char ts[40], msg[2048];
    srlm_iso_time(ts, sizeof ts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one write() per line so lines from several processes do not interleave */
    char line[2200];
    int n = snprintf(line, sizeof line, "%s %s[%d] %s %s\n", ts, g_role, (int)getpid(),
                     names[level < 0 ? 0 : level > 3 ? 3 : level], msg);
    if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
    if (write(STDERR_FILENO, line, (size_t)n) < 0) { /* nothing sensible to do */ }
}

/* ---- memory ------------------------------------------------------------------------ */
static void oom(size_t n) {
    SRLM_ERROR("out of memory allocating %zu bytes", n);
    abort();
}
void *srlm_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}
void *srlm_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}
void *srlm_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}
char *srlm_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = srlm_xmalloc(n);
    memcpy(p, s, n);
    return p;
}
float *srlm_alloc_floats(size_t n) {
    void *p = NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes)) return NULL;
    memset(p, 0, bytes);
    return p;
}

/* ---- files ------------------------------------------------------------------------- */
static int read_gz(const char *path, char **out, size_t *len, size_t max_bytes) {
    gzFile gz = gzopen(path, "rb");
    if (!gz) return srlm_set_error(SRLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) { gzclose(gz); return srlm_set_error(SRLM_ENOMEM, "%s: out of memory", path); }
    for (;;) {
        if (n == cap) {
            if (max_bytes && cap >= max_bytes) {
                free(buf); gzclose(gz);
                return srlm_set_error(SRLM_ENOMEM, "%s: larger than %zu bytes", path, max_bytes);
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) { free(buf); gzclose(gz); return srlm_set_error(SRLM_ENOMEM, "%s: out of memory", path); }
            buf = nb;
        }
        unsigned want = (unsigned)((cap - n) > (1u << 30) ? (1u << 30) : (cap - n));
        int r = gzread(gz, buf + n, want);
        if (r < 0) {
            int e; const char *m = gzerror(gz, &e);
            srlm_set_error(SRLM_EFORMAT, "%s: gzip: %s", path, m);
            free(buf); gzclose(gz);
            return SRLM_EFORMAT;
        }
        if (r == 0) {
            /* zlib reports a truncated stream only through gzerror (Z_BUF_ERROR,
             * "unexpected end of file") and returns 0 as at a clean end: check it, or a
             * cut .gz would silently read as a shorter file */
            int e;
            (void)gzerror(gz, &e);
            if (e != Z_OK) {
                srlm_set_error(SRLM_EFORMAT, "%s: gzip data ends early (truncated or corrupt file)", path);
                free(buf); gzclose(gz);
                return SRLM_EFORMAT;
            }
            break;
        }
        n += (size_t)r;
    }
    gzclose(gz);
    if (max_bytes && n > max_bytes) {
        free(buf);
        return srlm_set_error(SRLM_ENOMEM, "%s: larger than %zu bytes", path, max_bytes);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

int srlm_read_file(const char *path, char **out, size_t *len, size_t max_bytes) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return srlm_set_error(errno == ENOENT ? SRLM_ENOTFOUND : SRLM_EIO, "%s: %s", path, strerror(errno));
    unsigned char magic[2] = {0, 0};
    ssize_t m = pread(fd, magic, 2, 0);
    if (m == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
        close(fd);
        return read_gz(path, out, len, max_bytes);
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return srlm_set_error(SRLM_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (max_bytes && size > max_bytes) {
        close(fd);
        return srlm_set_error(SRLM_ENOMEM, "%s: %zu bytes is over the limit of %zu", path, size, max_bytes);
    }
    char *buf = malloc(size + 1);
    if (!buf) { close(fd); return srlm_set_error(SRLM_ENOMEM, "%s: out of memory", path); }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    *out = buf;
    *len = got;
    return 0;
}

int srlm_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return srlm_set_error(SRLM_EIO, "%s: %s", dir, strerror(errno));
    int r = fsync(fd);
    close(fd);
    return r < 0 ? srlm_set_error(SRLM_EIO, "fsync %s: %s", dir, strerror(errno)) : 0;
}

int srlm_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return srlm_set_error(SRLM_EINVAL, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return srlm_set_error(SRLM_EIO, "%s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd); unlink(tmp);
            return srlm_set_error(SRLM_EIO, "%s: write: %s", tmp, strerror(e));
        }
        p += w; left -= (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        unlink(tmp);
        return srlm_set_error(SRLM_EIO, "%s: fsync: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return srlm_set_error(SRLM_EIO, "rename %s -> %s: %s", tmp, path, strerror(e));
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) { if (slash == dir) slash[1] = 0; else *slash = 0; }
    else strcpy(dir, ".");
    return srlm_fsync_dir(dir);
}

int srlm_mkdir_p(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return srlm_set_error(SRLM_EINVAL, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return srlm_set_error(SRLM_EIO, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return srlm_set_error(SRLM_EIO, "mkdir %s: %s", buf, strerror(errno));
    return 0;
}

static int rm_rf_at(int dirfd, const char *name) {
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlinkat(dirfd, name, 0);
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (!d) { close(fd); return -1; }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (rm_rf_at(fd, e->d_name) < 0) rc = -1;
    }
    closedir(d);
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0) rc = -1;
    return rc;
}

int srlm_rm_rf(const char *path) {
    if (rm_rf_at(AT_FDCWD, path) < 0)
        return srlm_set_error(SRLM_EIO, "remove %s: %s", path, strerror(errno));
    return 0;
}

int srlm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int srlm_resource_path(const char *rel, char *out, size_t outlen) {
    const char *env = getenv("SRLM_DATA_DIR");
    if (env && *env) {
        snprintf(out, outlen, "%s/%s", env, rel);
        if (srlm_file_exists(out)) return 0;
    }
    snprintf(out, outlen, "%s/%s", SRLM_SOURCE_DIR, rel);
    if (srlm_file_exists(out)) return 0;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(out, outlen, "%s/../share/srlm/%s", exe, rel);
        if (srlm_file_exists(out)) return 0;
    }
    return srlm_set_error(SRLM_ENOTFOUND,
                          "bundled resource '%s' not found (set SRLM_DATA_DIR to the srlm source tree)", rel);
}

/* ---- hashing ----------------------------------------------------------------------- */
static void hex_of(const unsigned char *d, unsigned n, char *hex) {
    static const char *x = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) { hex[2 * i] = x[d[i] >> 4]; hex[2 * i + 1] = x[d[i] & 15]; }
    hex[2 * n] = 0;
}

void srlm_sha256_hex(const void *data, size_t len, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    hex_of(md, n, hex);
}

int srlm_sha256_file(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return srlm_set_error(SRLM_ENOTFOUND, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    unsigned char buf[1 << 16];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(ctx, buf, r);
    int bad = ferror(f);
    fclose(f);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    if (bad) return srlm_set_error(SRLM_EIO, "%s: read error", path);
    hex_of(md, n, hex);
    return 0;
}

/* ---- time -------------------------------------------------------------------------- */
double srlm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
double srlm_wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
void srlm_iso_time(char *buf, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char b[32];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s.%03dZ", b, (int)(ts.tv_nsec / 1000000) % 1000);
}

/* ---- progress ---------------------------------------------------------------------- */
void srlm_progress_init(srlm_progress *p, const char *label, const char *unit, long total) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "it");
    p->total = total;
    p->t0 = p->last = srlm_now();
    p->every_s = 10.0;
    p->tty = isatty(STDERR_FILENO);
}

static void progress_print(srlm_progress *p, long done, const char *extra, int final) {
    double el = srlm_now() - p->t0;
    double rate = el > 0 ? done / el : 0;
    char eta[32] = "--:--";
    if (p->total > 0 && rate > 0 && done < p->total) {
        long s = (long)((p->total - done) / rate);
        snprintf(eta, sizeof eta, "%02ld:%02ld", s / 60, s % 60);
    } else if (done >= p->total && p->total > 0) {
        snprintf(eta, sizeof eta, "done");
    }
    char bar[24] = "";
    if (p->total > 0) {
        int w = 20, f = (int)(w * (double)done / p->total);
        if (f > w) f = w;
        for (int i = 0; i < w; i++) bar[i] = i < f ? '#' : '.';
        bar[w] = 0;
    }
    if (p->tty) {
        fprintf(stderr, "\r%s [%s] %ld/%ld %.1f %s/s ETA %s %s\033[K%s", p->label, bar, done, p->total,
                rate, p->unit, eta, extra ? extra : "", final ? "\n" : "");
        fflush(stderr);
    } else {
        SRLM_INFO("%s [%s] %ld/%ld %.1f %s/s ETA %s %s", p->label, bar, done, p->total, rate, p->unit, eta,
                  extra ? extra : "");
    }
}

void srlm_progress_update(srlm_progress *p, long done, const char *extra) {
    double now = srlm_now();
    double every = p->tty ? 0.1 : p->every_s;
    if (now - p->last < every) return;
    p->last = now;
    progress_print(p, done, extra, 0);
}

void srlm_progress_done(srlm_progress *p, long done, const char *extra) { progress_print(p, done, extra, 1); }

/* ---- random numbers ---------------------------------------------------------------- */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
void srlm_rng_seed(srlm_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
uint64_t srlm_rng_u64(srlm_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}
double srlm_rng_uniform(srlm_rng *r) { return (srlm_rng_u64(r) >> 11) * 0x1.0p-53; }
float srlm_rng_normal(srlm_rng *r) {
    double u1 = srlm_rng_uniform(r), u2 = srlm_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}
uint64_t srlm_rng_below(srlm_rng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = srlm_rng_u64(r); while (x >= lim);
    return x % n;
}

/* ---- small strings ----------------------------------------------------------------- */
int srlm_cmp_strp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int srlm_parse_int(const char *s, long lo, long hi, int *out) {
    if (!s || !*s) return SRLM_EINVAL;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi || v < INT_MIN || v > INT_MAX) return SRLM_EINVAL;
    *out = (int)v;
    return 0;
}

int srlm_parse_int_list(const char *s, int **out, int *n) {
    *out = NULL;
    *n = 0;
    int cap = 16, cnt = 0;
    int *v = srlm_xmalloc(sizeof(int) * cap);
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < INT32_MIN || x > INT32_MAX) {
            free(v);
            return srlm_set_error(SRLM_EINVAL, "not a list of integers at '%.20s'", p);
        }
        if (cnt == cap) v = srlm_xrealloc(v, sizeof(int) * (cap *= 2));
        v[cnt++] = (int)x;
        p = end;
        while (*p == ' ' || *p == ']') p++;
        if (*p == ',') p++;
        else if (*p) { free(v); return srlm_set_error(SRLM_EINVAL, "unexpected '%c' in integer list", *p); }
    }
    *out = v;
    *n = cnt;
    return 0;
}

int srlm_fmt(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= n) return srlm_set_error(SRLM_EINVAL, "string too long (%d bytes)", r);
    return 0;
}
