/* safetensors.c — mmap reader and streaming atomic writer (see safetensors.h). */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static const char *DTYPE_NAMES[ST_NDTYPES] = {"F32", "BF16", "F16", "F64", "I64", "I32", "I16",
                                              "I8", "U8", "BOOL", "U16", "U32", "U64",
                                              "F8_E5M2", "F8_E4M3"};
static const size_t DTYPE_SIZES[ST_NDTYPES] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1, 2, 4, 8, 1, 1};

const char *st_dtype_name(st_dtype t) { return (unsigned)t < ST_NDTYPES ? DTYPE_NAMES[t] : NULL; }
size_t st_dtype_size(st_dtype t) { return (unsigned)t < ST_NDTYPES ? DTYPE_SIZES[t] : 0; }

uint16_t st_f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float st_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { /* subnormal: value = man · 2^-24 */
            float f = (float)man * 5.9604644775390625e-8f;
            memcpy(&u, &f, 4);
            u |= sign;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int cmp_begin(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

void st_close(st_file *f) {
    if (!f) return;
    if (f->map && f->map != MAP_FAILED) munmap(f->map, f->size);
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    free(f);
}

static int parse_header(st_file *f, const char *hdr, size_t hlen) {
    json_error_t jerr;
    json_t *root = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &jerr); /* duplicate tensor names */
    if (!root) return srlm_set_error(SRLM_EFORMAT, "%s: header is not valid JSON: %s (col %d)",
                                     f->path, jerr.text, jerr.column);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = srlm_set_error(SRLM_EFORMAT, "%s: header is not a JSON object", f->path);
        goto out;
    }
    size_t n = json_object_size(root);
    f->tensors = srlm_xcalloc(n ? n : 1, sizeof(st_tensor));
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) continue;
        st_tensor *t = &f->tensors[f->n_tensors];
        t->name = srlm_xstrdup(key);
        f->n_tensors++;
        if (!json_is_object(val)) {
            rc = srlm_set_error(SRLM_EFORMAT, "%s: tensor %s: entry is not an object", f->path, key);
            goto out;
        }
        json_t *dt = json_object_get(val, "dtype"), *sh = json_object_get(val, "shape"),
               *off = json_object_get(val, "data_offsets");
        if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(off) || json_array_size(off) != 2) {
            rc = srlm_set_error(SRLM_EFORMAT, "%s: tensor %s: needs dtype, shape and data_offsets [begin, end]",
                                f->path, key);
            goto out;
        }
        t->dtype = ST_NDTYPES;
        for (int d = 0; d < ST_NDTYPES; d++)
            if (!strcmp(json_string_value(dt), DTYPE_NAMES[d])) t->dtype = (st_dtype)d;
        if (t->dtype == ST_NDTYPES) {
            rc = srlm_set_error(SRLM_EUNSUPPORTED, "%s: tensor %s: unknown dtype \"%s\"", f->path, key,
                                json_string_value(dt));
            goto out;
        }
        if (json_array_size(sh) > ST_MAX_DIMS) {
            rc = srlm_set_error(SRLM_EFORMAT, "%s: tensor %s: too many dimensions", f->path, key);
            goto out;
        }
        t->ndim = (int)json_array_size(sh);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            json_t *x = json_array_get(sh, (size_t)d);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > (1LL << 40)) {
                rc = srlm_set_error(SRLM_EFORMAT, "%s: tensor %s: bad shape", f->path, key);
                goto out;
            }
            t->shape[d] = json_integer_value(x);
            numel *= (size_t)t->shape[d];
            if (numel > ((size_t)1 << 40)) {
                rc = srlm_set_error(SRLM_EFORMAT, "%s: tensor %s: shape too large", f->path, key);
                goto out;
            }
        }
        t->numel = numel;
        json_t *b = json_array_get(off, 0), *e = json_array_get(off, 1);
        if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
            json_integer_value(e) < json_integer_value(b)) {
            rc = srlm_set_error(SRLM_EFORMAT, "%s: tensor %s: bad data_offsets", f->path, key);
            goto out;
        }
        t->begin = (size_t)json_integer_value(b);
        t->end = (size_t)json_integer_value(e);
        if (t->end > f->data_size) {
            rc = srlm_set_error(SRLM_EFORMAT,
                                "%s: tensor %s: data_offsets [%zu, %zu] out of range (data buffer is %zu bytes; "
                                "file truncated?)", f->path, key, t->begin, t->end, f->data_size);
            goto out;
        }
        if (t->end - t->begin != numel * DTYPE_SIZES[t->dtype]) {
            rc = srlm_set_error(SRLM_EFORMAT, "%s: tensor %s: data_offsets span %zu bytes but shape × %s needs %zu",
                                f->path, key, t->end - t->begin, DTYPE_NAMES[t->dtype],
                                numel * DTYPE_SIZES[t->dtype]);
            goto out;
        }
    }
    /* no overlaps */
    if (f->n_tensors > 1) {
        st_tensor **s = srlm_xmalloc(sizeof(st_tensor *) * (size_t)f->n_tensors);
        for (int i = 0; i < f->n_tensors; i++) s[i] = &f->tensors[i];
        qsort(s, (size_t)f->n_tensors, sizeof *s, cmp_begin);
        for (int i = 1; i < f->n_tensors && !rc; i++)
            if (s[i]->begin < s[i - 1]->end)
                rc = srlm_set_error(SRLM_EFORMAT, "%s: tensors %s and %s overlap", f->path, s[i - 1]->name,
                                    s[i]->name);
        free(s);
    }
out:
    json_decref(root);
    return rc;
}

int st_open(const char *path, st_file **out) {
    *out = NULL;
    st_file *f = srlm_xcalloc(1, sizeof *f);
    f->fd = -1;
    f->path = srlm_xstrdup(path);
    int rc;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        rc = srlm_set_error(errno == ENOENT ? SRLM_ENOTFOUND : SRLM_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(f->fd, &st) < 0) { rc = srlm_set_error(SRLM_EIO, "%s: %s", path, strerror(errno)); goto fail; }
    f->size = (size_t)st.st_size;
    if (f->size < 8) { rc = srlm_set_error(SRLM_EFORMAT, "%s: truncated (%zu bytes, no header)", path, f->size); goto fail; }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (f->map == MAP_FAILED) { f->map = NULL; rc = srlm_set_error(SRLM_EIO, "%s: mmap: %s", path, strerror(errno)); goto fail; }
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)f->map[i] << (8 * i);
    if (n > 100000000ull || n > f->size - 8) {
        rc = srlm_set_error(SRLM_EFORMAT, "%s: header length %llu exceeds the file (%zu bytes; truncated?)", path,
                            (unsigned long long)n, f->size);
        goto fail;
    }
    f->data = f->map + 8 + n;
    f->data_size = f->size - 8 - (size_t)n;
    if ((rc = parse_header(f, (const char *)f->map + 8, (size_t)n)) < 0) goto fail;
    *out = f;
    return 0;
fail:
    st_close(f);
    return rc;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

/* Give the page cache back after converting a tensor: RSS stays near the f32 copy
 * instead of f32 + the whole mapping (a re-read simply faults the pages in again). */
static void drop_pages(const st_file *f, const st_tensor *t) {
    size_t pg = 4096;
    uintptr_t a = (uintptr_t)(f->data + t->begin), e = (uintptr_t)(f->data + t->end);
    a = (a + pg - 1) & ~(uintptr_t)(pg - 1);
    e &= ~(uintptr_t)(pg - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

int st_read_f32(const st_file *f, const st_tensor *t, float *dst) {
    const uint8_t *src = f->data + t->begin;
    size_t n = t->numel;
    switch (t->dtype) {
    case ST_F32: memcpy(dst, src, n * 4); break;
    case ST_BF16:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = st_bf16_to_f32(h);
        }
        break;
    case ST_F16:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = st_f16_to_f32(h);
        }
        break;
    default:
        return srlm_set_error(SRLM_EUNSUPPORTED, "%s: tensor %s: dtype %s is not supported (F32, BF16, F16 only)",
                              f->path, t->name, DTYPE_NAMES[t->dtype]);
    }
    drop_pages(f, t);
    return 0;
}

static int write_all(int fd, const void *p, size_t n, const char *path) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return srlm_set_error(SRLM_EIO, "%s: write: %s", path, strerror(errno));
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int st_write(const char *path, const st_write_tensor *t, int n, st_dtype dtype) {
    if (dtype != ST_F32 && dtype != ST_BF16)
        return srlm_set_error(SRLM_EINVAL, "%s: can only write F32 or BF16", path);
    size_t es = DTYPE_SIZES[dtype];
    json_t *root = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        json_t *sh = json_array();
        for (int d = 0; d < t[i].ndim; d++) {
            numel *= (size_t)t[i].shape[d];
            json_array_append_new(sh, json_integer(t[i].shape[d]));
        }
        json_t *e = json_object();
        json_object_set_new(e, "dtype", json_string(DTYPE_NAMES[dtype]));
        json_object_set_new(e, "shape", sh);
        json_t *o = json_array();
        json_array_append_new(o, json_integer((json_int_t)off));
        json_array_append_new(o, json_integer((json_int_t)(off + numel * es)));
        json_object_set_new(e, "data_offsets", o);
        json_object_set_new(root, t[i].name, e);
        off += numel * es;
    }
    char *hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!hdr) return srlm_set_error(SRLM_ENOMEM, "%s: header serialization failed", path);
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) {
        free(hdr);
        return srlm_set_error(SRLM_EINVAL, "%s: path too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(hdr);
        return srlm_set_error(SRLM_EIO, "%s: %s", tmp, strerror(errno));
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int rc = write_all(fd, lenb, 8, tmp);
    if (!rc) rc = write_all(fd, hdr, hl, tmp);
    for (size_t i = hl; i < padded && !rc; i++) rc = write_all(fd, " ", 1, tmp);
    free(hdr);
    enum { CHUNK = 1 << 16 };
    uint8_t *buf = srlm_xmalloc(CHUNK * 4);
    for (int i = 0; i < n && !rc; i++) {
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) numel *= (size_t)t[i].shape[d];
        for (size_t s = 0; s < numel && !rc; s += CHUNK) {
            size_t m = numel - s < CHUNK ? numel - s : CHUNK;
            if (dtype == ST_F32) {
                memcpy(buf, t[i].data + s, m * 4);
            } else {
                for (size_t j = 0; j < m; j++) {
                    uint16_t h = st_f32_to_bf16(t[i].data[s + j]);
                    memcpy(buf + 2 * j, &h, 2);
                }
            }
            rc = write_all(fd, buf, m * es, tmp);
        }
    }
    free(buf);
    if (!rc && fsync(fd) < 0) rc = srlm_set_error(SRLM_EIO, "%s: fsync: %s", tmp, strerror(errno));
    if (close(fd) < 0 && !rc) rc = srlm_set_error(SRLM_EIO, "%s: close: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) < 0) rc = srlm_set_error(SRLM_EIO, "rename %s -> %s: %s", tmp, path, strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) { if (slash == dir) slash[1] = 0; else *slash = 0; }
    else strcpy(dir, ".");
    return srlm_fsync_dir(dir);
}
