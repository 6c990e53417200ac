/* safetensors.h — reader (mmap) and writer of the safetensors format (prefix st_).
 * Format (docs/qwen2.md §4.2): u64 LE header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the data buffer; offsets are relative to the data buffer start.
 * The reader validates: N <= 100 MB and within the file, valid JSON object, each entry's
 * dtype known, shape non-negative, end - begin == numel × dtype size, 0 <= begin <= end <=
 * data size, no overlaps. Reading converts F32 / BF16 / F16 to f32; other dtypes are
 * listed but refused on conversion (SRLM_EUNSUPPORTED). Every error message names the
 * file (and the tensor when there is one). */
#ifndef SRLM_SAFETENSORS_H
#define SRLM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32 = 0, ST_BF16, ST_F16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8,
               ST_BOOL, ST_U16, ST_U32, ST_U64, ST_F8_E5M2, ST_F8_E4M3, ST_NDTYPES } st_dtype;

#define ST_MAX_DIMS 8
typedef struct {
    char *name;               /* owned by the file */
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t begin, end;        /* byte offsets in the data buffer */
} st_tensor;

typedef struct {
    char *path;               /* owned copy */
    int fd;
    uint8_t *map;             /* whole file mapping */
    size_t size;
    const uint8_t *data;      /* data buffer start */
    size_t data_size;
    st_tensor *tensors;
    int n_tensors;
} st_file;

/* "F32", "BF16", ... ; NULL for an invalid value. */
const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);

/* Open and validate a file (mmap, read-only). *out owned → st_close. Errors:
 * SRLM_ENOTFOUND, SRLM_EIO, SRLM_EFORMAT (bad header / offsets / truncated),
 * SRLM_EUNSUPPORTED (unknown dtype string). */
int st_open(const char *path, st_file **out);
void st_close(st_file *f);
/* Entry by name, NULL if absent. */
const st_tensor *st_find(const st_file *f, const char *name);
/* Convert a tensor to f32 into dst (numel floats). Errors: SRLM_EUNSUPPORTED (dtype). */
int st_read_f32(const st_file *f, const st_tensor *t, float *dst);

/* f32 ↔ bf16 (round-to-nearest-even; NaN kept quiet) and f16 → f32. */
uint16_t st_f32_to_bf16(float x);
float st_bf16_to_f32(uint16_t h);
float st_f16_to_f32(uint16_t h);

/* A tensor to write: f32 source data converted to dtype (ST_F32 or ST_BF16). */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;        /* numel floats */
} st_write_tensor;

/* Write n tensors in the given order (contiguous, no gaps) with dtype ST_F32 or ST_BF16,
 * metadata {"format": "pt"}, header padded with spaces to a multiple of 8. Atomic:
 * streams to PATH.tmp.PID, fsyncs, renames, fsyncs the directory. Errors: SRLM_EIO,
 * SRLM_EINVAL (dtype). */
int st_write(const char *path, const st_write_tensor *t, int n, st_dtype dtype);

#endif
