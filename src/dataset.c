/* HDF5 datasets (docs/formats.md, "Dataset files"): validation on open,
 * batched random-access reads, and the writer used by the importers. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftune/data.h"
#include "ftune/h5util.h"
#include "ftune/preprocess.h"

#define LABEL_CHUNK (1u << 20) /* labels scanned per read at open: 4 MiB */
#define MAX_CLASSES (1 << 24)
#define RUNS_PER_READ 64 /* runs OR-ed into one selection per H5Dread */

static void close_ids(ft_dataset *d)
{
    if (d->inputs > 0)
        H5Dclose(d->inputs);
    if (d->labels > 0)
        H5Dclose(d->labels);
    if (d->file > 0)
        H5Fclose(d->file);
    d->inputs = d->labels = d->file = -1;
    free(d->lengths);
    d->lengths = NULL;
    free(d->prompt_lengths);
    d->prompt_lengths = NULL;
    H5Eclear2(H5E_DEFAULT);
}

/* Opens a dataset by name with messages that say what was expected. */
static int open_dset(hid_t file, const char *path, const char *name, const char *what, hid_t *out,
                     ft_err *err)
{
    htri_t ex = H5Lexists(file, name, H5P_DEFAULT);
    if (ex <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return ft_fail(err, FT_EINPUT, "%s: no dataset \"%s\" (expected %s)", path, name, what);
    }
    hid_t obj = H5Oopen(file, name, H5P_DEFAULT);
    if (obj < 0)
        return ft_h5_fail(err, FT_EINPUT, "%s: cannot open \"%s\"", path, name);
    if (H5Iget_type(obj) != H5I_DATASET) {
        H5Oclose(obj);
        return ft_fail(err, FT_EINPUT, "%s: \"%s\" is not a dataset (expected %s)", path, name,
                       what);
    }
    *out = obj;
    return FT_OK;
}

/* Dimensions of a dataset; rank 0 for scalar or empty dataspaces. */
static int get_dims(hid_t dset, int *rank, hsize_t dims[H5S_MAX_RANK])
{
    hid_t space = H5Dget_space(dset);
    if (space < 0)
        return -1;
    int r = H5Sget_simple_extent_ndims(space);
    if (r > H5S_MAX_RANK)
        r = -1;
    if (r > 0)
        H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    *rank = r;
    return r < 0 ? -1 : 0;
}

static const char *dims_str(const hsize_t *dims, int rank, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ", %llu" : "%llu",
                                 (unsigned long long)dims[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

/* A dataset must store the data its shape declares. A file of a few KiB can declare
 * terabytes (chunks never written read back as fill values), which would have ftune scan or
 * allocate for nothing: unfiltered data must be stored in full, and compressed data cannot
 * shrink more than MAX_RATIO times (deflate's limit is about 1032). Virtual and external
 * datasets are not checked. */
#define MAX_RATIO 1100
static int check_stored(ft_dataset *d, hid_t ds, const char *name, uint64_t nelem, uint64_t elsize,
                        ft_err *err)
{
    hid_t dcpl = H5Dget_create_plist(ds);
    int nfilters = 0, external = 0;
    H5D_layout_t layout = H5D_LAYOUT_ERROR;
    if (dcpl >= 0) {
        nfilters = H5Pget_nfilters(dcpl);
        external = H5Pget_external_count(dcpl) > 0;
        layout = H5Pget_layout(dcpl);
        H5Pclose(dcpl);
    }
    H5Eclear2(H5E_DEFAULT);
    if (nelem > UINT64_MAX / elsize)
        return ft_fail(err, FT_EINPUT, "%s: dataset \"%s\" is too large (%llu values)", d->path,
                       name, (unsigned long long)nelem);
    if (external || layout == H5D_VIRTUAL)
        return FT_OK;
    uint64_t need = nelem * elsize, stored = H5Dget_storage_size(ds);
    uint64_t least = nfilters > 0 ? need / MAX_RATIO : need;
    if (stored < least)
        return ft_fail(err, FT_EINPUT,
                       "%s: dataset \"%s\" declares %llu values (%.1f MiB) but the file stores "
                       "only %llu bytes of them (truncated, damaged or never written)",
                       d->path, name, (unsigned long long)nelem, (double)need / 1048576.0,
                       (unsigned long long)stored);
    return FT_OK;
}

static int check_inputs(ft_dataset *d, ft_err *err)
{
    char tbuf[32], dbuf[160];
    hid_t type = H5Dget_type(d->inputs);
    int ok = H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 4;
    ft_h5_type_str(type, tbuf, sizeof tbuf);
    H5Tclose(type);
    if (!ok)
        return ft_fail(err, FT_EINPUT,
                       "%s: dataset \"inputs\" has type %s, expected float32 (in numpy: "
                       "x.astype(\"float32\"))",
                       d->path, tbuf);
    int rank;
    hsize_t dims[H5S_MAX_RANK];
    if (get_dims(d->inputs, &rank, dims) < 0)
        return ft_h5_fail(err, FT_EINPUT, "%s: dataset \"inputs\"", d->path);
    if (rank < 2 || rank > FT_MAX_DIMS)
        return ft_fail(err, FT_EINPUT,
                       "%s: dataset \"inputs\" has shape %s (rank %d), expected rank 2 to %d: "
                       "[N, features], [N, C, L] or [N, C, H, W]",
                       d->path, dims_str(dims, rank, dbuf, sizeof dbuf), rank, FT_MAX_DIMS);
    d->n = dims[0];
    d->sample.rank = rank - 1;
    size_t count = 1;
    for (int i = 1; i < rank; i++) {
        if (dims[i] == 0 || dims[i] > INT_MAX || !ft_mul_size(count, dims[i], &count))
            return ft_fail(err, FT_EINPUT, "%s: dataset \"inputs\" has unusable shape %s", d->path,
                           dims_str(dims, rank, dbuf, sizeof dbuf));
        d->sample.d[i - 1] = (int)dims[i];
    }
    d->sample_floats = count;
    /* every batch holds samples: one must fit in memory */
    if (ft_check_alloc(count, sizeof(float), "one sample of dataset \"inputs\"", err))
        return ft_err_prefix(err, "%s", d->path);
    if (count > UINT64_MAX / (d->n ? d->n : 1))
        return ft_fail(err, FT_EINPUT, "%s: dataset \"inputs\" has unusable shape %s", d->path,
                       dims_str(dims, rank, dbuf, sizeof dbuf));
    return check_stored(d, d->inputs, "inputs", d->n * count, sizeof(float), err);
}

static int check_labels(ft_dataset *d, ft_err *err)
{
    char tbuf[32], dbuf[160];
    hid_t type = H5Dget_type(d->labels);
    int ok = H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 4 &&
             H5Tget_sign(type) == H5T_SGN_2;
    ft_h5_type_str(type, tbuf, sizeof tbuf);
    H5Tclose(type);
    if (!ok)
        return ft_fail(err, FT_EINPUT,
                       "%s: dataset \"labels\" has type %s, expected int32 (in numpy: "
                       "y.astype(\"int32\"))",
                       d->path, tbuf);
    int rank;
    hsize_t dims[H5S_MAX_RANK];
    if (get_dims(d->labels, &rank, dims) < 0)
        return ft_h5_fail(err, FT_EINPUT, "%s: dataset \"labels\"", d->path);
    if (rank != 1)
        return ft_fail(err, FT_EINPUT,
                       "%s: dataset \"labels\" has shape %s (rank %d), expected rank 1: [N]",
                       d->path, dims_str(dims, rank, dbuf, sizeof dbuf), rank);
    if (dims[0] != d->n)
        return ft_fail(err, FT_EINPUT,
                       "%s: dataset \"labels\" has %llu entries but \"inputs\" has %llu samples "
                       "(N must match)",
                       d->path, (unsigned long long)dims[0], (unsigned long long)d->n);
    return check_stored(d, d->labels, "labels", d->n, sizeof(int), err);
}

/* "classes" and "class_names" root attributes; d->classes = 0 if neither. */
static int read_class_attrs(ft_dataset *d, int *from_names, ft_err *err)
{
    int found;
    long long classes = 0;
    int rc = ft_h5_get_int_attr(d->file, "classes", &found, &classes, err);
    if (rc)
        return ft_err_prefix(err, "%s", d->path);
    if (found && (classes < 1 || classes > MAX_CLASSES))
        return ft_fail(err, FT_EINPUT, "%s: attribute \"classes\" is %lld, expected 1 to %d",
                       d->path, classes, MAX_CLASSES);
    char **names;
    size_t nnames;
    int have_names;
    rc = ft_h5_get_strs_attr(d->file, "class_names", &have_names, &names, &nnames, err);
    if (rc)
        return ft_err_prefix(err, "%s", d->path);
    if (have_names) {
        if (found && (long long)nnames != classes) {
            ft_h5_free_strings(names, nnames);
            return ft_fail(err, FT_EINPUT,
                           "%s: attribute \"class_names\" has %zu names but \"classes\" is %lld",
                           d->path, nnames, classes);
        }
        if (!found && (nnames < 1 || nnames > MAX_CLASSES)) {
            ft_h5_free_strings(names, nnames);
            return ft_fail(err, FT_EINPUT, "%s: attribute \"class_names\" has %zu names", d->path,
                           nnames);
        }
        if (!found) {
            classes = (long long)nnames;
            *from_names = 1;
        }
        /* Names are kept only when all of them fit in the struct. */
        size_t cap = sizeof d->class_names / sizeof d->class_names[0];
        if (nnames <= cap) {
            for (size_t i = 0; i < nnames; i++)
                snprintf(d->class_names[i], sizeof d->class_names[i], "%s", names[i]);
            d->nclass_names = (int)nnames;
        }
        ft_h5_free_strings(names, nnames);
    }
    d->classes = (int)classes;
    return FT_OK;
}

/* Reads rows [start, start + count) of a 1-D int32 or N-D float32 dataset. */
static int read_rows(hid_t dset, hid_t memtype, uint64_t start, uint64_t count, size_t row_elems,
                     void *buf)
{
    hid_t fs = H5Dget_space(dset);
    if (fs < 0)
        return -1;
    int rank = H5Sget_simple_extent_ndims(fs);
    hsize_t off[H5S_MAX_RANK] = {0}, cnt[H5S_MAX_RANK];
    H5Sget_simple_extent_dims(fs, cnt, NULL);
    off[0] = start;
    cnt[0] = count;
    hsize_t mdim = (hsize_t)(count * row_elems);
    hid_t ms = H5Screate_simple(1, &mdim, NULL);
    herr_t st = rank > 0 ? H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) : -1;
    if (st >= 0)
        st = H5Dread(dset, memtype, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    return st < 0 ? -1 : 0;
}

/* Checks every label against the class range, reading bounded chunks. */
static int scan_labels(ft_dataset *d, int from_names, ft_err *err)
{
    size_t chunk = d->n < LABEL_CHUNK ? (size_t)d->n : LABEL_CHUNK;
    int *buf = malloc(chunk * sizeof *buf);
    if (!buf)
        return ft_fail(err, FT_ERUNTIME, "%s: out of memory scanning labels", d->path);
    int maxv = -1;
    int rc = FT_OK;
    for (uint64_t start = 0; start < d->n && !rc; start += chunk) {
        uint64_t cnt = d->n - start < chunk ? d->n - start : chunk;
        if (read_rows(d->labels, H5T_NATIVE_INT, start, cnt, 1, buf) < 0) {
            rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot read \"labels\"", d->path);
            break;
        }
        for (uint64_t i = 0; i < cnt; i++) {
            int v = buf[i];
            if (v < 0 || (d->classes > 0 && v >= d->classes)) {
                char range[64];
                if (d->classes > 0)
                    snprintf(
                        range, sizeof range, "[0, %d) (%s %d)", d->classes,
                        from_names ? "\"class_names\" has" : "attribute \"classes\" =", d->classes);
                else
                    snprintf(range, sizeof range, "[0, classes)");
                rc = ft_fail(err, FT_EINPUT,
                             "%s: dataset \"labels\" row %llu has label %d, outside the valid "
                             "range %s",
                             d->path, (unsigned long long)(start + i), v, range);
                break;
            }
            if (v > maxv)
                maxv = v;
        }
    }
    free(buf);
    if (rc)
        return rc;
    if (d->classes == 0) {
        if (maxv >= MAX_CLASSES)
            return ft_fail(err, FT_EINPUT, "%s: largest label %d is too large (at most %d classes)",
                           d->path, maxv, MAX_CLASSES);
        d->classes = maxv + 1;
    }
    return FT_OK;
}

/* An optional int32 [N] dataset, read whole into *out (NULL when the file has none), so batch
 * reads need no HDF5 call. Values are range-checked by the caller. */
static int read_row_ints(ft_dataset *d, const char *name, const char *what, int **out, ft_err *err)
{
    *out = NULL;
    if (H5Lexists(d->file, name, H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return FT_OK;
    }
    hid_t ds;
    int rc = open_dset(d->file, d->path, name, what, &ds, err);
    if (rc)
        return rc;
    char tbuf[32], dbuf[160];
    hid_t type = H5Dget_type(ds);
    int ok = H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 4 &&
             H5Tget_sign(type) == H5T_SGN_2;
    ft_h5_type_str(type, tbuf, sizeof tbuf);
    H5Tclose(type);
    int rank = 0;
    hsize_t dims[H5S_MAX_RANK];
    if (!ok)
        rc = ft_fail(err, FT_EINPUT, "%s: dataset \"%s\" has type %s, expected int32", d->path,
                     name, tbuf);
    else if (get_dims(ds, &rank, dims) < 0 || rank != 1 || dims[0] != d->n)
        rc = ft_fail(err, FT_EINPUT,
                     "%s: dataset \"%s\" has shape %s, expected [%llu] (one per sample)", d->path,
                     name, rank > 0 ? dims_str(dims, rank, dbuf, sizeof dbuf) : "[]",
                     (unsigned long long)d->n);
    if (!rc)
        rc = check_stored(d, ds, name, d->n, sizeof(int), err);
    if (!rc) {
        *out = malloc((size_t)d->n * sizeof **out);
        if (!*out)
            rc = ft_fail(err, FT_ERUNTIME, "%s: out of memory for \"%s\"", d->path, name);
        else if (read_rows(ds, H5T_NATIVE_INT, 0, d->n, 1, *out) < 0)
            rc = ft_h5_fail(err, FT_EINPUT, "%s: cannot read \"%s\"", d->path, name);
    }
    H5Dclose(ds);
    return rc;
}

/* The optional "lengths" dataset: int32 [N], each in [0, T] with T = sample.d[0] (the
 * sequence positions of a row). */
static int read_lengths(ft_dataset *d, ft_err *err)
{
    int rc = read_row_ints(d, "lengths", "int32 [N] real tokens per row", &d->lengths, err);
    const int T = d->sample.d[0];
    for (uint64_t i = 0; !rc && d->lengths && i < d->n; i++)
        if (d->lengths[i] < 0 || d->lengths[i] > T)
            rc = ft_fail(err, FT_EINPUT,
                         "%s: dataset \"lengths\" row %llu is %d, expected 0 to %d (the "
                         "positions of a row of \"inputs\")",
                         d->path, (unsigned long long)i, d->lengths[i], T);
    return rc;
}

/* The optional "prompt_lengths" dataset of source -> target rows (docs/text.md): int32 [N],
 * each in [1, the row's length]; the prompt ends with the separator, so it is never empty. */
static int read_prompt_lengths(ft_dataset *d, ft_err *err)
{
    int rc = read_row_ints(d, "prompt_lengths", "int32 [N] tokens before the first target token",
                           &d->prompt_lengths, err);
    const int T = d->sample.d[0];
    for (uint64_t i = 0; !rc && d->prompt_lengths && i < d->n; i++) {
        int L = d->lengths ? d->lengths[i] : T, p = d->prompt_lengths[i];
        if (p < 1 || p > L)
            rc = ft_fail(err, FT_EINPUT,
                         "%s: dataset \"prompt_lengths\" row %llu is %d, expected 1 to %d (the "
                         "row's %s)",
                         d->path, (unsigned long long)i, p, L,
                         d->lengths ? "\"lengths\" entry" : "positions");
    }
    return rc;
}

int ft_dataset_open(ft_dataset *d, const char *path, const ft_shape *expect, ft_err *err)
{
    memset(d, 0, sizeof *d);
    d->file = d->inputs = d->labels = -1;
    ft_h5_quiet();
    if (snprintf(d->path, sizeof d->path, "%s", path) >= (int)sizeof d->path)
        return ft_fail(err, FT_EINPUT, "%s: path too long", path);
    hid_t f;
    int rc = ft_h5_open_read(path, &f, err);
    if (rc)
        return rc;
    d->file = f;
    hid_t ds;
    int from_names = 0;
    rc = open_dset(f, path, "inputs", "float32 [N, ...] samples", &ds, err);
    if (!rc) {
        d->inputs = ds;
        rc = check_inputs(d, err);
    }
    if (!rc && (rc = open_dset(f, path, "labels", "int32 [N] class indices", &ds, err)) == 0) {
        d->labels = ds;
        rc = check_labels(d, err);
    }
    if (!rc && d->n == 0)
        rc = ft_fail(err, FT_EINPUT, "%s: the dataset has no samples (N = 0)", path);
    if (!rc && expect && !ft_shape_equal(expect, &d->sample)) {
        char a[96], b[96];
        rc =
            ft_fail(err, FT_EINPUT,
                    "%s: samples in \"inputs\" have shape %s, expected %s (the model's input)",
                    path, ft_shape_str(&d->sample, a, sizeof a), ft_shape_str(expect, b, sizeof b));
    }
    if (!rc)
        rc = read_class_attrs(d, &from_names, err);
    if (!rc)
        rc = scan_labels(d, from_names, err);
    if (!rc)
        rc = read_lengths(d, err);
    if (!rc)
        rc = read_prompt_lengths(d, err);
    if (rc)
        close_ids(d);
    return rc;
}

typedef struct pair {
    uint64_t idx;
    int pos;
} pair;

static int pair_cmp(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->idx != y->idx)
        return x->idx < y->idx ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Reads the sorted, distinct rows rows[0..u) into x and y (in that order):
 * contiguous runs are OR-ed into one hyperslab selection per H5Dread, a few
 * dozen runs at a time (HDF5's cost of OR-ing grows with the run count). */
static int read_sorted_h5(ft_dataset *d, const uint64_t *rows, size_t u, float *x, int *y,
                          ft_err *err)
{
    hid_t fsx = H5Dget_space(d->inputs), fsy = H5Dget_space(d->labels);
    int rank = d->sample.rank + 1;
    hsize_t off[FT_MAX_DIMS + 1] = {0}, cnt[FT_MAX_DIMS + 1];
    for (int i = 1; i < rank; i++)
        cnt[i] = (hsize_t)d->sample.d[i - 1];
    int rc = FT_OK;
    size_t i = 0, done = 0;
    while (i < u && !rc) {
        size_t first_row = done;
        herr_t st = 0;
        for (int r = 0; r < RUNS_PER_READ && i < u && st >= 0; r++) {
            size_t j = i + 1;
            while (j < u && rows[j] == rows[j - 1] + 1)
                j++;
            off[0] = rows[i];
            cnt[0] = j - i;
            H5S_seloper_t op = r == 0 ? H5S_SELECT_SET : H5S_SELECT_OR;
            st = H5Sselect_hyperslab(fsx, op, off, NULL, cnt, NULL);
            if (st >= 0)
                st = H5Sselect_hyperslab(fsy, op, off, NULL, cnt, NULL);
            done += j - i;
            i = j;
        }
        hsize_t nrows = done - first_row, nfl = nrows * d->sample_floats;
        hid_t msx = H5Screate_simple(1, &nfl, NULL), msy = H5Screate_simple(1, &nrows, NULL);
        if (st >= 0)
            st = H5Dread(d->inputs, H5T_NATIVE_FLOAT, msx, fsx, H5P_DEFAULT,
                         x + first_row * d->sample_floats);
        if (st >= 0)
            st = H5Dread(d->labels, H5T_NATIVE_INT, msy, fsy, H5P_DEFAULT, y + first_row);
        H5Sclose(msx);
        H5Sclose(msy);
        if (st < 0)
            rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot read samples", d->path);
    }
    H5Sclose(fsx);
    H5Sclose(fsy);
    return rc;
}

/* Where the file is plain (sec2 driver, contiguous, native types), reads
 * go straight to the file descriptor HDF5 holds: H5Dread costs ~8 us per
 * call, several times the copy of a small row. *fd < 0 otherwise. */
static void raw_layout(ft_dataset *d, int *fd, off_t *xoff, off_t *yoff)
{
    *fd = -1;
    hid_t fapl = H5Fget_access_plist(d->file);
    void *handle = NULL;
    int ok = fapl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 &&
             H5Fget_vfd_handle(d->file, fapl, &handle) >= 0 && handle;
    if (fapl >= 0)
        H5Pclose(fapl);
    hid_t tx = H5Dget_type(d->inputs), ty = H5Dget_type(d->labels);
    ok = ok && H5Tequal(tx, H5T_NATIVE_FLOAT) > 0 && H5Tequal(ty, H5T_NATIVE_INT) > 0;
    H5Tclose(tx);
    H5Tclose(ty);
    /* HADDR_UNDEF for chunked, compact or never-written data. */
    haddr_t ax = ok ? H5Dget_offset(d->inputs) : HADDR_UNDEF;
    haddr_t ay = ok ? H5Dget_offset(d->labels) : HADDR_UNDEF;
    uint64_t xbytes = d->n * d->sample_floats * sizeof(float);
    ok = ok && ax != HADDR_UNDEF && ay != HADDR_UNDEF && ax < (haddr_t)INT64_MAX &&
         ay < (haddr_t)INT64_MAX && H5Dget_storage_size(d->inputs) >= xbytes &&
         H5Dget_storage_size(d->labels) >= d->n * sizeof(int);
    H5Eclear2(H5E_DEFAULT);
    if (ok) {
        *fd = *(int *)handle;
        *xoff = (off_t)ax;
        *yoff = (off_t)ay;
    }
}

static int pread_full(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
        off += r;
    }
    return 0;
}

static int read_sorted(ft_dataset *d, const uint64_t *rows, size_t u, float *x, int *y, ft_err *err)
{
    int fd;
    off_t xoff, yoff;
    raw_layout(d, &fd, &xoff, &yoff);
    if (fd < 0)
        return read_sorted_h5(d, rows, u, x, y, err);
    size_t row_bytes = d->sample_floats * sizeof(float);
    errno = 0;
    for (size_t i = 0; i < u;) {
        size_t j = i + 1;
        while (j < u && rows[j] == rows[j - 1] + 1)
            j++;
        if (pread_full(fd, x + i * d->sample_floats, (j - i) * row_bytes,
                       xoff + (off_t)(rows[i] * row_bytes)) < 0 ||
            pread_full(fd, y + i, (j - i) * sizeof(int), yoff + (off_t)(rows[i] * sizeof(int))) < 0)
            return ft_fail(err, FT_ERUNTIME, "%s: cannot read samples %llu..%llu: %s", d->path,
                           (unsigned long long)rows[i], (unsigned long long)rows[j - 1],
                           errno ? strerror(errno) : "file is shorter than its datasets");
        i = j;
    }
    return FT_OK;
}

static int read_batch(ft_dataset *d, const uint64_t *idx, int n, float *x, int *y, ft_err *err)
{
    ft_h5_quiet();
    if (n < 0)
        return ft_fail(err, FT_ERUNTIME, "%s: negative read count %d", d->path, n);
    if (n == 0)
        return FT_OK;
    if (d->file < 0 || d->inputs < 0)
        return ft_fail(err, FT_ERUNTIME, "%s: dataset is not open", d->path);
    int sorted = 1;
    for (int k = 0; k < n; k++) {
        if (idx[k] >= d->n)
            return ft_fail(err, FT_ERUNTIME, "%s: sample index %llu out of range (N = %llu)",
                           d->path, (unsigned long long)idx[k], (unsigned long long)d->n);
        if (k && idx[k] <= idx[k - 1])
            sorted = 0;
    }
    if (sorted) /* evaluation reads in order: straight into the caller's buffers */
        return read_sorted(d, idx, (size_t)n, x, y, err);

    size_t floats;
    if (!ft_mul_size((size_t)n, d->sample_floats, &floats))
        return ft_fail(err, FT_ERUNTIME, "%s: a batch of %d samples is too large", d->path, n);
    pair *p = malloc((size_t)n * sizeof *p);
    uint64_t *rows = malloc((size_t)n * sizeof *rows);
    float *tx = ft_alloc_floats(floats, err);
    int *ty = malloc((size_t)n * sizeof *ty);
    int rc = FT_OK;
    if (!p || !rows || !tx || !ty) {
        rc = ft_fail(err, FT_ERUNTIME, "%s: out of memory for a batch of %d samples", d->path, n);
        goto out;
    }
    for (int k = 0; k < n; k++) {
        p[k].idx = idx[k];
        p[k].pos = k;
    }
    qsort(p, (size_t)n, sizeof *p, pair_cmp);
    size_t u = 0;
    for (int k = 0; k < n; k++)
        if (k == 0 || p[k].idx != p[k - 1].idx)
            rows[u++] = p[k].idx;
    rc = read_sorted(d, rows, u, tx, ty, err);
    if (rc)
        goto out;
    /* Scatter the distinct rows back into caller order (duplicates share one read). */
    size_t r = 0;
    for (int k = 0; k < n; k++) {
        if (k && p[k].idx != p[k - 1].idx)
            r++;
        memcpy(x + (size_t)p[k].pos * d->sample_floats, tx + r * d->sample_floats,
               d->sample_floats * sizeof *x);
        y[p[k].pos] = ty[r];
    }
out:
    free(p);
    free(rows);
    ft_free_floats(tx);
    free(ty);
    return rc;
}

int ft_dataset_read(ft_dataset *d, const uint64_t *idx, int n, float *x, int *y, ft_err *err)
{
    int rc = read_batch(d, idx, n, x, y, err);
    /* Labels were checked at open through HDF5; the fast path reads the file directly, and a
     * damaged file can make the two disagree (data overlapping other objects, found by
     * fuzz_dataset), as can a file rewritten since: a label must never leave the range. */
    for (int k = 0; !rc && k < n; k++)
        if (y[k] < 0 || y[k] >= d->classes)
            rc = ft_fail(err, FT_EINPUT,
                         "%s: sample %llu has label %d, outside [0, %d) although every label was "
                         "in range when the file was opened (damaged, or changed since?)",
                         d->path, (unsigned long long)idx[k], y[k], d->classes);
    if (!rc && d->preprocess) /* model.preprocess, attached by ft_dataset_set_preprocess */
        rc = ft_preprocess_apply(d->preprocess, &d->preprocess_input, x, n, err);
    return rc;
}

int ft_dataset_labels(ft_dataset *d, int *out, ft_err *err)
{
    if (d->n > 0 && read_rows(d->labels, H5T_NATIVE_INT, 0, d->n, 1, out) < 0)
        return ft_h5_fail(err, FT_ERUNTIME, "%s: cannot read \"labels\"", d->path);
    return FT_OK;
}

int ft_dataset_read_len(ft_dataset *d, const uint64_t *idx, int n, float *x, int *y, int *len,
                        int *has_len, ft_err *err)
{
    int rc = ft_dataset_read(d, idx, n, x, y, err);
    *has_len = d->lengths != NULL && len != NULL;
    for (int k = 0; !rc && *has_len && k < n; k++)
        len[k] = d->lengths[idx[k]]; /* idx was range-checked by the read */
    return rc;
}

int ft_dataset_prompts(const ft_dataset *d, const uint64_t *idx, int n, int *out)
{
    if (!d->prompt_lengths || !out)
        return 0;
    for (int k = 0; k < n; k++)
        out[k] = idx[k] < d->n ? d->prompt_lengths[idx[k]] : 1;
    return 1;
}

void ft_dataset_close(ft_dataset *d)
{
    ft_h5_quiet();
    close_ids(d);
}

/* ---- writer ---- */

static void writer_close_dsets(ft_dataset_writer *w)
{
    if (w->inputs > 0)
        H5Dclose(w->inputs);
    if (w->labels > 0)
        H5Dclose(w->labels);
    w->inputs = w->labels = -1;
}

static hid_t create_dset(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    /* Contiguous rows make partial reads one seek each; every byte is
     * written by append, so skip the fill pass. */
    H5Pset_layout(dcpl, H5D_CONTIGUOUS);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    return ds;
}

int ft_dataset_create(ft_dataset_writer *w, const char *path, uint64_t n, const ft_shape *sample,
                      int classes, ft_err *err)
{
    memset(w, 0, sizeof *w);
    w->file = w->inputs = w->labels = -1;
    ft_h5_quiet();
    if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path)
        return ft_fail(err, FT_EINPUT, "%s: path too long", path);
    char sbuf[96];
    if (sample->rank < 1 || sample->rank > FT_MAX_DIMS - 1)
        return ft_fail(err, FT_EINPUT, "%s: sample shape %s must have 1 to %d dimensions", path,
                       ft_shape_str(sample, sbuf, sizeof sbuf), FT_MAX_DIMS - 1);
    hsize_t dims[FT_MAX_DIMS];
    dims[0] = n;
    size_t count = 1;
    for (int i = 0; i < sample->rank; i++) {
        if (sample->d[i] < 1 || !ft_mul_size(count, (size_t)sample->d[i], &count))
            return ft_fail(err, FT_EINPUT, "%s: unusable sample shape %s", path,
                           ft_shape_str(sample, sbuf, sizeof sbuf));
        dims[i + 1] = (hsize_t)sample->d[i];
    }
    if (n == 0)
        return ft_fail(err, FT_EINPUT, "%s: no samples to write", path);
    if (classes < 0 || classes > MAX_CLASSES)
        return ft_fail(err, FT_EINPUT, "%s: %d classes, expected 1 to %d", path, classes,
                       MAX_CLASSES);
    w->n = n;
    w->sample_floats = count;
    /* a full disk or a file-size limit is reported before HDF5 writes (ft_h5_reserve) */
    if (ft_h5_reserve(path, (unsigned long long)n * (count + 1) * sizeof(float) + 8192, err))
        return err->code;
    hid_t f;
    int rc = ft_h5_create_tmp(path, w->tmp_path, sizeof w->tmp_path, &f, err);
    if (rc)
        return rc;
    w->file = f;
    w->inputs = create_dset(f, "inputs", H5T_IEEE_F32LE, sample->rank + 1, dims);
    if (w->inputs < 0) {
        rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot create dataset \"inputs\"", w->tmp_path);
    } else {
        w->labels = create_dset(f, "labels", H5T_STD_I32LE, 1, dims);
        if (w->labels < 0)
            rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot create dataset \"labels\"", w->tmp_path);
    }
    if (!rc && classes > 0 && (rc = ft_h5_set_int_attr(f, "classes", classes, err)) != 0)
        ft_err_prefix(err, "%s", w->tmp_path);
    if (rc)
        ft_dataset_abort(w);
    return rc;
}

int ft_dataset_append(ft_dataset_writer *w, const float *x, const int *y, uint64_t n, ft_err *err)
{
    ft_h5_quiet();
    if (n == 0)
        return FT_OK;
    if (w->inputs < 0)
        return ft_fail(err, FT_ERUNTIME, "%s: writer is not open", w->path);
    if (n > w->n - w->written)
        return ft_fail(err, FT_ERUNTIME, "%s: appending %llu samples after %llu exceeds N = %llu",
                       w->path, (unsigned long long)n, (unsigned long long)w->written,
                       (unsigned long long)w->n);
    hid_t fsx = H5Dget_space(w->inputs), fsy = H5Dget_space(w->labels);
    hsize_t off[FT_MAX_DIMS] = {0}, cnt[FT_MAX_DIMS];
    int rank = H5Sget_simple_extent_ndims(fsx);
    H5Sget_simple_extent_dims(fsx, cnt, NULL);
    off[0] = w->written;
    cnt[0] = n;
    hsize_t nfl = n * w->sample_floats, nl = n;
    hid_t msx = H5Screate_simple(1, &nfl, NULL), msy = H5Screate_simple(1, &nl, NULL);
    herr_t st = rank > 0 ? 0 : -1;
    if (st >= 0)
        st = H5Sselect_hyperslab(fsx, H5S_SELECT_SET, off, NULL, cnt, NULL);
    if (st >= 0)
        st = H5Sselect_hyperslab(fsy, H5S_SELECT_SET, off, NULL, cnt, NULL);
    if (st >= 0)
        st = H5Dwrite(w->inputs, H5T_NATIVE_FLOAT, msx, fsx, H5P_DEFAULT, x);
    if (st >= 0)
        st = H5Dwrite(w->labels, H5T_NATIVE_INT, msy, fsy, H5P_DEFAULT, y);
    H5Sclose(msx);
    H5Sclose(msy);
    H5Sclose(fsx);
    H5Sclose(fsy);
    if (st < 0)
        return ft_h5_fail(err, FT_ERUNTIME, "%s: cannot write samples", w->tmp_path);
    w->written += n;
    return FT_OK;
}

int ft_dataset_finish(ft_dataset_writer *w, ft_err *err)
{
    ft_h5_quiet();
    if (w->file < 0)
        return ft_fail(err, FT_ERUNTIME, "%s: writer is not open", w->path);
    if (w->written != w->n) {
        int rc = ft_fail(err, FT_ERUNTIME, "%s: only %llu of %llu samples were written", w->path,
                         (unsigned long long)w->written, (unsigned long long)w->n);
        ft_dataset_abort(w);
        return rc;
    }
    writer_close_dsets(w);
    int rc = ft_h5_commit(w->file, w->tmp_path, w->path, err);
    w->file = -1;
    w->tmp_path[0] = '\0';
    return rc;
}

void ft_dataset_abort(ft_dataset_writer *w)
{
    ft_h5_quiet();
    writer_close_dsets(w);
    if (w->file > 0 || w->tmp_path[0])
        ft_h5_discard(w->file > 0 ? w->file : -1, w->tmp_path);
    w->file = -1;
    w->tmp_path[0] = '\0';
}
