/* safetensors files (https://github.com/huggingface/safetensors; layout in
 * docs/import-export.md): an 8-byte little-endian header length N, N bytes of
 * JSON describing each tensor (dtype, shape, data_offsets relative to the
 * data area) and optional "__metadata__" (string -> string), then the data.
 *
 * The reader validates the whole header when the file is opened: N within
 * 100 MB and inside the file, strict JSON, known dtypes, every tensor's
 * offsets inside the data area, its size equal to product(shape) x dtype
 * size (overflow-checked) and no two tensors overlapping. Errors are
 * FT_EINPUT naming the file, the tensor and the problem. Tensor data is read
 * on demand (pread), so a large file never sits in memory. */
#ifndef FTUNE_SAFETENSORS_H
#define FTUNE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ftune/err.h"

#define FT_ST_MAX_DIMS 8
#define FT_ST_MAX_HEADER ((uint64_t)100000000) /* bytes, as the reference reader */

enum ft_st_dtype {
    FT_ST_UNKNOWN = 0,
    FT_ST_BOOL,
    FT_ST_U8,
    FT_ST_I8,
    FT_ST_I16,
    FT_ST_U16,
    FT_ST_F16,
    FT_ST_BF16,
    FT_ST_I32,
    FT_ST_U32,
    FT_ST_F32,
    FT_ST_F64,
    FT_ST_I64,
    FT_ST_U64,
    FT_ST_C64,
    FT_ST_F8_E4M3,
    FT_ST_F8_E5M2,
    FT_ST_F8_E8M0,
    FT_ST_F8_E4M3FNUZ,
    FT_ST_F8_E5M2FNUZ,
    FT_ST_F4,
    FT_ST_F6_E2M3,
    FT_ST_F6_E3M2,
    FT_ST_NDTYPES
};

/* FT_ST_UNKNOWN for a name that is not a safetensors dtype. */
int ft_st_dtype_from_name(const char *name);
const char *ft_st_dtype_name(int dtype);
/* Bytes per element; 0 for the sub-byte types (F4, F6_*), whose tensors are
 * checked for bounds and overlaps only and cannot be read. */
size_t ft_st_dtype_size(int dtype);
/* 1 for the dtypes ft_st_read_f32 converts (floats and integers, not
 * complex, FP8 or sub-byte types). */
int ft_st_dtype_readable(int dtype);

typedef struct ft_st_tensor {
    char *name;
    int dtype;
    int rank; /* 0 for a scalar */
    int64_t shape[FT_ST_MAX_DIMS];
    uint64_t count;      /* elements: product of shape (1 for a scalar) */
    uint64_t begin, end; /* byte range in the data area, [begin, end) */
} ft_st_tensor;

typedef struct ft_st_file {
    char *path;
    int fd;
    uint64_t file_size, header_len, data_start, data_len;
    ft_st_tensor *tensors; /* in header order */
    size_t ntensors;
    size_t *by_name;                 /* tensor indices sorted by name */
    char **meta_keys, **meta_values; /* "__metadata__", in header order */
    size_t nmeta;
} ft_st_file;

/* Opens and validates path. On error f is left closed (ft_st_close is
 * harmless). */
int ft_st_open(ft_st_file *f, const char *path, ft_err *err);
void ft_st_close(ft_st_file *f);

const ft_st_tensor *ft_st_find(const ft_st_file *f, const char *name);
const char *ft_st_meta(const ft_st_file *f, const char *key); /* NULL if absent */

/* Reads tensor t as float32 into out (count floats, which must equal
 * t->count). F32, F16, BF16 and F64 convert exactly where float32 can hold
 * the value (F64 rounds to nearest); integer types convert as (float)v. */
int ft_st_read_f32(const ft_st_file *f, const ft_st_tensor *t, float *out, uint64_t count,
                   ft_err *err);

/* "[8, 1, 3, 3]" ("[]" for a scalar). */
const char *ft_st_shape_str(const ft_st_tensor *t, char *buf, size_t len);

/* ---- writing ---------------------------------------------------------------- */

typedef struct ft_st_entry {
    const char *name;
    int dtype; /* FT_ST_F32 (data: float) or FT_ST_I64 (data: int64_t) */
    int rank;
    int64_t shape[FT_ST_MAX_DIMS];
    const void *data; /* product(shape) values in host order; written little-endian */
} ft_st_entry;

/* Writes the tensors in the given order, with "__metadata__" from meta
 * (nmeta key/value pairs: meta[2k] = key, meta[2k + 1] = value; nmeta may be
 * 0). The header is padded with spaces so the data starts 8-byte aligned.
 * The file is written to "<path>.tmp.<pid>", synced and renamed, so path is
 * never left half-written. Duplicate or empty names and unsupported dtypes
 * are FT_EINPUT; I/O failures FT_ERUNTIME naming the path. */
int ft_st_write(const char *path, const ft_st_entry *t, size_t n, const char *const *meta,
                size_t nmeta, ft_err *err);

#endif
