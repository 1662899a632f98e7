/* safetensors reader and writer (see include/ftune/safetensors.h). */
#include "ftune/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ftune/json.h"

/* ---- dtypes ---------------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} dtypes[FT_ST_NDTYPES] = {
    [FT_ST_UNKNOWN] = {"?", 0},
    [FT_ST_BOOL] = {"BOOL", 1},
    [FT_ST_U8] = {"U8", 1},
    [FT_ST_I8] = {"I8", 1},
    [FT_ST_I16] = {"I16", 2},
    [FT_ST_U16] = {"U16", 2},
    [FT_ST_F16] = {"F16", 2},
    [FT_ST_BF16] = {"BF16", 2},
    [FT_ST_I32] = {"I32", 4},
    [FT_ST_U32] = {"U32", 4},
    [FT_ST_F32] = {"F32", 4},
    [FT_ST_F64] = {"F64", 8},
    [FT_ST_I64] = {"I64", 8},
    [FT_ST_U64] = {"U64", 8},
    [FT_ST_C64] = {"C64", 8},
    [FT_ST_F8_E4M3] = {"F8_E4M3", 1},
    [FT_ST_F8_E5M2] = {"F8_E5M2", 1},
    [FT_ST_F8_E8M0] = {"F8_E8M0", 1},
    [FT_ST_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 1},
    [FT_ST_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 1},
    [FT_ST_F4] = {"F4", 0},
    [FT_ST_F6_E2M3] = {"F6_E2M3", 0},
    [FT_ST_F6_E3M2] = {"F6_E3M2", 0},
};

int ft_st_dtype_from_name(const char *name)
{
    for (int d = 1; d < FT_ST_NDTYPES && name; d++)
        if (strcmp(dtypes[d].name, name) == 0)
            return d;
    return FT_ST_UNKNOWN;
}

const char *ft_st_dtype_name(int dtype)
{
    return dtype > 0 && dtype < FT_ST_NDTYPES ? dtypes[dtype].name : "?";
}

size_t ft_st_dtype_size(int dtype)
{
    return dtype > 0 && dtype < FT_ST_NDTYPES ? dtypes[dtype].size : 0;
}

int ft_st_dtype_readable(int dtype)
{
    switch (dtype) {
    case FT_ST_BOOL:
    case FT_ST_U8:
    case FT_ST_I8:
    case FT_ST_I16:
    case FT_ST_U16:
    case FT_ST_F16:
    case FT_ST_BF16:
    case FT_ST_I32:
    case FT_ST_U32:
    case FT_ST_F32:
    case FT_ST_F64:
    case FT_ST_I64:
    case FT_ST_U64: return 1;
    default: return 0;
    }
}

const char *ft_st_shape_str(const ft_st_tensor *t, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int k = 0; k < t->rank && used < len; k++)
        used +=
            (size_t)snprintf(buf + used, len - used, k ? ", %" PRId64 : "%" PRId64, t->shape[k]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

/* ---- little-endian decoding ----------------------------------------------------- */

static uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; k--)
        v = (v << 8) | p[k];
    return v;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE half -> float, exact (subnormals, infinities and NaN included). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    if (exp == 0x1F)
        return bits_f32(sign | 0x7F800000u | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: man x 2^-24, exact in float */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static float decode(int dtype, const unsigned char *p)
{
    switch (dtype) {
    case FT_ST_F32: return bits_f32((uint32_t)le(p, 4));
    case FT_ST_F16: return half_to_float((uint16_t)le(p, 2));
    case FT_ST_BF16: return bits_f32((uint32_t)le(p, 2) << 16);
    case FT_ST_F64: {
        uint64_t u = le(p, 8);
        double d;
        memcpy(&d, &u, sizeof d);
        return (float)d;
    }
    case FT_ST_BOOL: return p[0] ? 1.0f : 0.0f;
    case FT_ST_U8: return (float)p[0];
    case FT_ST_I8: return (float)(int8_t)p[0];
    case FT_ST_I16: return (float)(int16_t)(uint16_t)le(p, 2);
    case FT_ST_U16: return (float)(uint16_t)le(p, 2);
    case FT_ST_I32: return (float)(int32_t)(uint32_t)le(p, 4);
    case FT_ST_U32: return (float)(uint32_t)le(p, 4);
    case FT_ST_I64: return (float)(int64_t)le(p, 8);
    case FT_ST_U64: return (float)le(p, 8);
    default: return NAN;
    }
}

/* ---- reading the header ------------------------------------------------------------ */

static int read_full(int fd, void *buf, size_t n, uint64_t off)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0) {
            errno = 0; /* end of file */
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

void ft_st_close(ft_st_file *f)
{
    if (!f)
        return;
    if (f->fd > 0)
        close(f->fd);
    for (size_t i = 0; i < f->ntensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    for (size_t i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

static const ft_st_file *sort_file; /* for qsort; opening is single-threaded */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(sort_file->tensors[*(const size_t *)a].name,
                  sort_file->tensors[*(const size_t *)b].name);
}

static int cmp_begin(const void *a, const void *b)
{
    const ft_st_tensor *x = &sort_file->tensors[*(const size_t *)a];
    const ft_st_tensor *y = &sort_file->tensors[*(const size_t *)b];
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* A JSON array of non-negative integers. */
static int uint_array(const ft_json *a, uint64_t *v, int max, int *n)
{
    if (!ft_json_is(a, FT_JSON_ARRAY) || ft_json_len(a) > (size_t)max)
        return 0;
    *n = (int)ft_json_len(a);
    for (int k = 0; k < *n; k++) {
        int64_t x;
        if (!ft_json_int64(ft_json_at(a, (size_t)k), &x) || x < 0)
            return 0;
        v[k] = (uint64_t)x;
    }
    return 1;
}

static int parse_tensor(ft_st_file *f, const char *name, const ft_json *e, ft_st_tensor *t,
                        ft_err *err)
{
    const char *path = f->path;
    char a[200];
    if (!ft_json_is(e, FT_JSON_OBJECT))
        return ft_fail(err, FT_EINPUT,
                       "%s: tensor '%s': its header entry is a JSON %s, expected an object with "
                       "dtype, shape and data_offsets",
                       path, name, e ? ft_json_type_name(e->type) : "nothing");
    const char *dt = ft_json_get_string(e, "dtype", NULL);
    if (!dt)
        return ft_fail(err, FT_EINPUT, "%s: tensor '%s': missing or non-string \"dtype\"", path,
                       name);
    t->dtype = ft_st_dtype_from_name(dt);
    if (t->dtype == FT_ST_UNKNOWN)
        return ft_fail(err, FT_EINPUT, "%s: tensor '%s': unknown dtype \"%.40s\"", path, name, dt);

    uint64_t dims[FT_ST_MAX_DIMS];
    const ft_json *shape = ft_json_get(e, "shape");
    if (ft_json_is(shape, FT_JSON_ARRAY) && ft_json_len(shape) > FT_ST_MAX_DIMS)
        return ft_fail(err, FT_EINPUT, "%s: tensor '%s': shape has %zu dimensions (at most %d)",
                       path, name, ft_json_len(shape), FT_ST_MAX_DIMS);
    if (!uint_array(shape, dims, FT_ST_MAX_DIMS, &t->rank))
        return ft_fail(err, FT_EINPUT,
                       "%s: tensor '%s': \"shape\" must be a list of non-negative integers", path,
                       name);
    uint64_t off[2];
    int noff = 0;
    if (!uint_array(ft_json_get(e, "data_offsets"), off, 2, &noff) || noff != 2)
        return ft_fail(err, FT_EINPUT,
                       "%s: tensor '%s': \"data_offsets\" must be [begin, end], two non-negative "
                       "integers",
                       path, name);
    t->begin = off[0];
    t->end = off[1];

    /* element count and byte size, overflow-checked */
    int overflow = 0;
    uint64_t count = 1;
    for (int k = 0; k < t->rank; k++) {
        t->shape[k] = (int64_t)dims[k];
        if (dims[k] != 0 && count > UINT64_MAX / dims[k])
            overflow = 1;
        else
            count *= dims[k];
    }
    size_t es = ft_st_dtype_size(t->dtype);
    if (overflow || (es && count > UINT64_MAX / es))
        return ft_fail(err, FT_EINPUT,
                       "%s: tensor '%s': shape %s is too large (its byte size overflows)", path,
                       name, ft_st_shape_str(t, a, sizeof a));
    t->count = count;
    if (t->begin > t->end)
        return ft_fail(err, FT_EINPUT,
                       "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] end before they begin",
                       path, name, t->begin, t->end);
    if (t->end > f->data_len)
        return ft_fail(err, FT_EINPUT,
                       "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] run past the end of the data area (%" PRIu64
                       " bytes; the file is truncated or the header is wrong)",
                       path, name, t->begin, t->end, f->data_len);
    if (es && t->end - t->begin != count * es)
        return ft_fail(err, FT_EINPUT,
                       "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                       " bytes, but dtype %s with shape %s needs %" PRIu64 " bytes",
                       path, name, t->begin, t->end, t->end - t->begin, dt,
                       ft_st_shape_str(t, a, sizeof a), count * es);
    t->name = strdup(name);
    if (!t->name)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    return FT_OK;
}

static int parse_meta(ft_st_file *f, const ft_json *m, ft_err *err)
{
    if (!ft_json_is(m, FT_JSON_OBJECT))
        return ft_fail(err, FT_EINPUT, "%s: \"__metadata__\" is a JSON %s, expected an object",
                       f->path, ft_json_type_name(m->type));
    size_t n = ft_json_len(m);
    f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
    f->meta_values = calloc(n ? n : 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const ft_json *v = ft_json_at(m, i);
        if (!ft_json_is(v, FT_JSON_STRING))
            return ft_fail(err, FT_EINPUT,
                           "%s: \"__metadata__\" entry \"%.100s\" is a %s; metadata must map "
                           "strings to strings",
                           f->path, ft_json_key_at(m, i), ft_json_type_name(v->type));
        f->meta_keys[i] = strdup(ft_json_key_at(m, i));
        f->meta_values[i] = strdup(v->s);
        f->nmeta++;
        if (!f->meta_keys[i] || !f->meta_values[i])
            return ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    return FT_OK;
}

static int parse_header(ft_st_file *f, const ft_json *h, ft_err *err)
{
    if (!ft_json_is(h, FT_JSON_OBJECT))
        return ft_fail(err, FT_EINPUT,
                       "%s: the safetensors header is a JSON %s, expected an object", f->path,
                       ft_json_type_name(h->type));
    size_t n = ft_json_len(h);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *key = ft_json_key_at(h, i);
        const ft_json *e = ft_json_at(h, i);
        int rc = strcmp(key, "__metadata__") == 0
                     ? parse_meta(f, e, err)
                     : parse_tensor(f, key, e, &f->tensors[f->ntensors], err);
        if (rc)
            return rc;
        if (strcmp(key, "__metadata__") != 0)
            f->ntensors++;
    }
    /* overlaps: sorted by begin, each non-empty tensor starts at or after the
     * end of the previous non-empty one */
    size_t *order = malloc((f->ntensors ? f->ntensors : 1) * sizeof *order);
    if (!order)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    for (size_t i = 0; i < f->ntensors; i++)
        order[i] = f->by_name[i] = i;
    sort_file = f;
    qsort(order, f->ntensors, sizeof *order, cmp_begin);
    qsort(f->by_name, f->ntensors, sizeof *f->by_name, cmp_name);
    sort_file = NULL;
    const ft_st_tensor *prev = NULL;
    int rc = FT_OK;
    for (size_t i = 0; i < f->ntensors && !rc; i++) {
        const ft_st_tensor *t = &f->tensors[order[i]];
        if (t->begin == t->end)
            continue;
        if (prev && t->begin < prev->end)
            rc = ft_fail(err, FT_EINPUT,
                         "%s: tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64
                         ", %" PRIu64 ") overlap in the data area",
                         f->path, prev->name, prev->begin, prev->end, t->name, t->begin, t->end);
        prev = t;
    }
    free(order);
    return rc;
}

int ft_st_open(ft_st_file *f, const char *path, ft_err *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->path = strdup(path);
    if (!f->path)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (f->fd < 0 || fstat(f->fd, &st) != 0) {
        int e = errno;
        ft_st_close(f);
        return ft_fail(err, FT_EINPUT, "cannot open %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ft_st_close(f);
        return ft_fail(err, FT_EINPUT, "%s is not a regular file", path);
    }
    f->file_size = (uint64_t)st.st_size;
    unsigned char len8[8];
    if (f->file_size < 8 || read_full(f->fd, len8, 8, 0) != 0) {
        ft_fail(err, FT_EINPUT,
                "%s: the file is %" PRIu64 " bytes, too short for a safetensors header (8-byte "
                "length + JSON)",
                path, f->file_size);
        ft_st_close(f);
        return FT_EINPUT;
    }
    f->header_len = le(len8, 8);
    int rc = FT_OK;
    if (f->header_len > FT_ST_MAX_HEADER)
        rc = ft_fail(err, FT_EINPUT,
                     "%s: the header length %" PRIu64 " is more than the %" PRIu64
                     "-byte limit (not a safetensors file, or a corrupted one)",
                     path, f->header_len, FT_ST_MAX_HEADER);
    else if (f->header_len > f->file_size - 8)
        rc = ft_fail(err, FT_EINPUT,
                     "%s: the header length %" PRIu64 " runs past the end of the file (%" PRIu64
                     " bytes; truncated?)",
                     path, f->header_len, f->file_size);
    else if (f->header_len < 2)
        rc = ft_fail(err, FT_EINPUT, "%s: the header length %" PRIu64 " is too small for JSON",
                     path, f->header_len);
    if (rc) {
        ft_st_close(f);
        return rc;
    }
    f->data_start = 8 + f->header_len;
    f->data_len = f->file_size - f->data_start;

    char *hdr = malloc((size_t)f->header_len);
    if (!hdr) {
        ft_st_close(f);
        return ft_fail(err, FT_ERUNTIME, "%s: out of memory for a %" PRIu64 "-byte header", path,
                       f->header_len);
    }
    if (read_full(f->fd, hdr, (size_t)f->header_len, 8) != 0) {
        int e = errno;
        free(hdr);
        ft_st_close(f);
        return ft_fail(err, FT_EINPUT, "%s: cannot read the header: %s", path,
                       e ? strerror(e) : "unexpected end of file");
    }
    ft_json *h = NULL;
    if (hdr[0] != '{') {
        rc = ft_fail(err, FT_EINPUT,
                     "%s: the header does not start with '{' (not a safetensors file?)", path);
    } else if ((rc = ft_json_parse(hdr, (size_t)f->header_len, &h, err)) != 0) {
        ft_err_prefix(err, "%s: safetensors header", path);
    } else {
        rc = parse_header(f, h, err);
    }
    ft_json_free(h);
    free(hdr);
    if (rc)
        ft_st_close(f);
    return rc;
}

const ft_st_tensor *ft_st_find(const ft_st_file *f, const char *name)
{
    size_t lo = 0, hi = f->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ft_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(t->name, name);
        if (c == 0)
            return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *ft_st_meta(const ft_st_file *f, const char *key)
{
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

#define CHUNK ((size_t)1 << 20)

int ft_st_read_f32(const ft_st_file *f, const ft_st_tensor *t, float *out, uint64_t count,
                   ft_err *err)
{
    if (!ft_st_dtype_readable(t->dtype))
        return ft_fail(err, FT_EINPUT, "%s: tensor '%s' has dtype %s, which ftune cannot read",
                       f->path, t->name, ft_st_dtype_name(t->dtype));
    if (count != t->count)
        return ft_fail(err, FT_EINPUT, "%s: tensor '%s' has %" PRIu64 " values, expected %" PRIu64,
                       f->path, t->name, t->count, count);
    size_t es = ft_st_dtype_size(t->dtype);
    size_t per = CHUNK / es;
    unsigned char *buf = malloc(count < per ? (size_t)count * es + 1 : CHUNK);
    if (!buf)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    uint64_t done = 0;
    int rc = FT_OK;
    while (done < count) {
        size_t k = count - done < per ? (size_t)(count - done) : per;
        if (read_full(f->fd, buf, k * es, f->data_start + t->begin + done * es) != 0) {
            int e = errno;
            rc = ft_fail(err, FT_EINPUT, "%s: cannot read tensor '%s': %s", f->path, t->name,
                         e ? strerror(e) : "unexpected end of file (truncated?)");
            break;
        }
        for (size_t j = 0; j < k; j++)
            out[done + j] = decode(t->dtype, buf + j * es);
        done += k;
    }
    free(buf);
    return rc;
}

/* ---- writing ---------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_json(sbuf *b, const char *s)
{
    size_t n = ft_json_escape(NULL, 0, s);
    char *q = malloc(n + 1);
    if (!q) {
        b->oom = 1;
        return;
    }
    ft_json_escape(q, n + 1, s);
    sb_put(b, q, n);
    free(q);
}

static int write_all(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes one tensor's values little-endian, a chunk at a time. */
static int write_tensor(int fd, const ft_st_entry *e, uint64_t count)
{
    size_t es = e->dtype == FT_ST_F32 ? 4 : 8;
    unsigned char buf[8192];
    size_t per = sizeof buf / es;
    for (uint64_t done = 0; done < count;) {
        size_t k = count - done < per ? (size_t)(count - done) : per;
        for (size_t j = 0; j < k; j++) {
            uint64_t u;
            if (es == 4) {
                uint32_t v;
                memcpy(&v, (const float *)e->data + done + j, 4);
                u = v;
            } else {
                int64_t v = ((const int64_t *)e->data)[done + j];
                memcpy(&u, &v, 8);
            }
            for (size_t b = 0; b < es; b++)
                buf[j * es + b] = (unsigned char)(u >> (8 * b));
        }
        if (write_all(fd, buf, k * es) != 0)
            return -1;
        done += k;
    }
    return 0;
}

static uint64_t entry_count(const ft_st_entry *e, int *overflow)
{
    uint64_t c = 1;
    for (int k = 0; k < e->rank; k++) {
        uint64_t d = (uint64_t)e->shape[k];
        if (e->shape[k] < 0 || (d && c > UINT64_MAX / 8 / d))
            *overflow = 1;
        else
            c *= d;
    }
    return c;
}

int ft_st_write(const char *path, const ft_st_entry *t, size_t n, const char *const *meta,
                size_t nmeta, ft_err *err)
{
    /* names: non-empty, unique, not the metadata key */
    for (size_t i = 0; i < n; i++) {
        if (!t[i].name || !t[i].name[0] || strcmp(t[i].name, "__metadata__") == 0)
            return ft_fail(err, FT_EINPUT, "%s: tensor %zu has an empty or reserved name", path, i);
        if (t[i].dtype != FT_ST_F32 && t[i].dtype != FT_ST_I64)
            return ft_fail(err, FT_EINPUT, "%s: tensor '%s': only F32 and I64 can be written", path,
                           t[i].name);
        if (t[i].rank < 0 || t[i].rank > FT_ST_MAX_DIMS)
            return ft_fail(err, FT_EINPUT, "%s: tensor '%s' has %d dimensions", path, t[i].name,
                           t[i].rank);
        for (size_t j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0)
                return ft_fail(err, FT_EINPUT, "%s: two tensors are named '%s'", path, t[i].name);
    }

    sbuf h = {0};
    char num[64];
    uint64_t off = 0;
    sb_str(&h, "{");
    int first = 1;
    if (nmeta > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (size_t k = 0; k < nmeta; k++) {
            if (k)
                sb_str(&h, ",");
            sb_json(&h, meta[2 * k]);
            sb_str(&h, ":");
            sb_json(&h, meta[2 * k + 1]);
        }
        sb_str(&h, "}");
        first = 0;
    }
    for (size_t i = 0; i < n; i++) {
        int overflow = 0;
        uint64_t count = entry_count(&t[i], &overflow);
        uint64_t bytes = count * (t[i].dtype == FT_ST_F32 ? 4 : 8);
        if (overflow || off > UINT64_MAX - bytes) {
            free(h.p);
            return ft_fail(err, FT_EINPUT, "%s: tensor '%s' is too large", path, t[i].name);
        }
        sb_str(&h, first ? "" : ",");
        first = 0;
        sb_json(&h, t[i].name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, ft_st_dtype_name(t[i].dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int k = 0; k < t[i].rank; k++) {
            snprintf(num, sizeof num, k ? ",%" PRId64 : "%" PRId64, t[i].shape[k]);
            sb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off,
                 off + bytes);
        sb_str(&h, num);
        off += bytes;
    }
    sb_str(&h, "}");
    while (!h.oom && (8 + h.n) % 8 != 0)
        sb_str(&h, " ");
    if (h.oom) {
        free(h.p);
        return ft_fail(err, FT_ERUNTIME, "%s: out of memory", path);
    }

    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(h.p);
        return ft_fail(err, FT_ERUNTIME, "%s: out of memory", path);
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = FT_OK;
    if (fd < 0) {
        rc = ft_fail(err, FT_ERUNTIME, "cannot write %s: %s", path, strerror(errno));
        free(tmp);
        free(h.p);
        return rc;
    }
    unsigned char len8[8];
    for (int b = 0; b < 8; b++)
        len8[b] = (unsigned char)((uint64_t)h.n >> (8 * b));
    int bad = write_all(fd, len8, 8) != 0 || write_all(fd, h.p, h.n) != 0;
    for (size_t i = 0; i < n && !bad; i++) {
        int overflow = 0;
        bad = write_tensor(fd, &t[i], entry_count(&t[i], &overflow)) != 0;
    }
    if (!bad)
        bad = fsync(fd) != 0;
    int e = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(tmp);
        rc = ft_fail(err, FT_ERUNTIME, "cannot write %s: %s", path, strerror(e));
    } else {
        /* make the rename durable */
        char *dir = strdup(path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
            int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
    }
    free(tmp);
    free(h.p);
    return rc;
}
