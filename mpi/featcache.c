/* The frozen-feature cache; the design is in featcache.h. */
#include "featcache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftune/h5util.h"

#include "progress.h"

int ft_featcache_mode(const char *s)
{
    static const char *const names[] = {"off", "auto", "memory", "disk"};
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Kinds whose forward depends only on the input and the parameters. */
static const char *const deterministic_kinds[] = {
    "conv2d",  "dense",     "relu",      "leaky_relu", "gelu",
    "tanh",    "sigmoid",   "maxpool2d", "avgpool2d",  "global_avgpool",
    "flatten", "embedding", "layernorm", "seq_pool",   NULL,
};

int ft_featcache_usable(const ft_model *m, char *why, size_t len)
{
    int ft = m->first_trainable;
    if (ft <= 0 || ft >= m->nlayers) {
        snprintf(why, len, "there is no frozen prefix (the first layer '%s' is trainable)",
                 m->layers[0].name);
        return 0;
    }
    for (int i = 0; i < ft; i++) {
        const ft_layer *l = &m->layers[i];
        const char *kind = l->ops->kind;
        if (strcmp(kind, "dropout") == 0) {
            snprintf(why, len,
                     "layer '%s' (dropout) comes before the first trainable layer '%s' and is "
                     "random during training, so its output cannot be cached",
                     l->name, m->layers[ft].name);
            return 0;
        }
        if (strcmp(kind, "batchnorm") == 0) {
            if (l->frozen)
                continue; /* running statistics: deterministic */
            snprintf(why, len,
                     "layer '%s' (batchnorm) comes before the first trainable layer '%s' and is "
                     "not frozen: it normalises with batch statistics, which change with the "
                     "batch",
                     l->name, m->layers[ft].name);
            return 0;
        }
        int known = 0;
        for (int k = 0; deterministic_kinds[k] && !known; k++)
            known = strcmp(kind, deterministic_kinds[k]) == 0;
        if (!known) {
            snprintf(why, len,
                     "layer '%s' (%s) comes before the first trainable layer '%s' and is not "
                     "known to be deterministic",
                     l->name, kind, m->layers[ft].name);
            return 0;
        }
    }
    return 1;
}

static int pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len) {
        ssize_t r = pwrite(fd, p, len, off);
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

/* Where compute_slice puts the features: memory (x, y: the whole cache) or
 * the scratch file (fd at the offsets of "inputs" and "labels"). */
typedef struct sink {
    float *x;
    int *y;
    int fd;
    long long off[2];
    const char *path;
} sink;

/* Features of rows [begin, begin + len) and their labels, in chunks of the
 * model's batch. */
static int compute_slice(ft_featcache *fc, ft_model *m, ft_dataset *d, uint64_t begin, uint64_t len,
                         const sink *out, ft_err *err)
{
    int rows = m->max_batch > 0 ? m->max_batch : 1;
    float *x = ft_alloc_floats((size_t)rows * d->sample_floats, err);
    uint64_t *idx = ft_calloc((size_t)rows, sizeof *idx, err);
    int *y = ft_calloc((size_t)rows, sizeof *y, err);
    int *lens = ft_calloc((size_t)rows, sizeof *lens, err);
    int rc = x && idx && y && lens ? FT_OK : err->code;
    const size_t row_bytes = fc->floats * sizeof(float);
    for (uint64_t pos = 0; !rc && pos < len;) {
        int n = (int)(len - pos < (uint64_t)rows ? len - pos : (uint64_t)rows);
        uint64_t r0 = begin + pos;
        for (int i = 0; i < n; i++)
            idx[i] = r0 + (uint64_t)i;
        int has_len;
        rc = ft_dataset_read_len(d, idx, n, x, y, lens, &has_len, err);
        if (rc)
            break;
        ft_ctx c = {0};
        c.n = n;
        c.training = 1; /* as in the steps the cache replaces */
        c.sample_ids = idx;
        c.lengths = has_len ? lens : NULL;
        const float *f = ft_model_forward_range(m, &c, 0, fc->first, x);
        if (out->x) {
            memcpy(out->x + r0 * fc->floats, f, (size_t)n * row_bytes);
            memcpy(out->y + r0, y, (size_t)n * sizeof *y);
        } else if (pwrite_full(out->fd, f, (size_t)n * row_bytes,
                               (off_t)(out->off[0] + (long long)(r0 * row_bytes))) ||
                   pwrite_full(out->fd, y, (size_t)n * sizeof *y,
                               (off_t)(out->off[1] + (long long)(r0 * sizeof *y)))) {
            rc = ft_fail(err, FT_ERUNTIME, "%s: cannot write the feature cache: %s", out->path,
                         strerror(errno));
        }
        pos += (uint64_t)n;
    }
    ft_free_floats(x);
    free(idx);
    free(y);
    free(lens);
    return rc;
}

/* Rank 0: the scratch file with contiguous, allocated datasets; returns the
 * file offsets of "inputs" and "labels". */
static int create_scratch(ft_featcache *fc, const ft_model *m, const ft_dataset *d,
                          long long off[2], ft_err *err)
{
    char tmp[1200];
    hid_t f;
    int rc = ft_h5_create_tmp(fc->path, tmp, sizeof tmp, &f, err);
    if (rc)
        return rc;
    const ft_shape *s = &m->layers[fc->first - 1].out;
    hsize_t dims[FT_MAX_DIMS + 1];
    dims[0] = fc->n;
    for (int i = 0; i < s->rank; i++)
        dims[i + 1] = (hsize_t)s->d[i];
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_layout(dcpl, H5D_CONTIGUOUS);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    hid_t sx = H5Screate_simple(s->rank + 1, dims, NULL), sy = H5Screate_simple(1, dims, NULL);
    hid_t dx = H5Dcreate2(f, "inputs", H5T_NATIVE_FLOAT, sx, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    hid_t dy = H5Dcreate2(f, "labels", H5T_NATIVE_INT, sy, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    haddr_t ax = dx >= 0 ? H5Dget_offset(dx) : HADDR_UNDEF;
    haddr_t ay = dy >= 0 ? H5Dget_offset(dy) : HADDR_UNDEF;
    if (ax == HADDR_UNDEF || ay == HADDR_UNDEF || ft_h5_set_int_attr(f, "classes", d->classes, err))
        rc = err->code
                 ? err->code
                 : ft_h5_fail(err, FT_ERUNTIME, "%s: cannot create the feature cache", fc->path);
    off[0] = (long long)ax;
    off[1] = (long long)ay;
    if (dx >= 0)
        H5Dclose(dx);
    if (dy >= 0)
        H5Dclose(dy);
    H5Sclose(sx);
    H5Sclose(sy);
    H5Pclose(dcpl);
    if (rc) {
        H5Fclose(f);
        unlink(tmp);
        return rc;
    }
    return ft_h5_commit(f, tmp, fc->path, err);
}

int ft_featcache_build(ft_featcache *fc, const ft_mpi *w, ft_model *m, ft_dataset *train, int mode,
                       size_t budget_bytes, const char *run_dir, ft_err *err)
{
    double t0 = ft_now();
    memset(fc, 0, sizeof *fc);
    fc->first = m->first_trainable;
    fc->floats = ft_shape_count(&m->layers[fc->first - 1].out);
    fc->n = train->n;
    size_t need;
    if (!ft_mul_size(fc->n, fc->floats * sizeof(float) + sizeof(int), &need))
        need = SIZE_MAX;
    if (mode == FT_FC_AUTO)
        mode = need <= budget_bytes ? FT_FC_MEMORY : FT_FC_DISK;
    fc->mode = mode;
    if (fc->floats > INT_MAX)
        return ft_fail(err, FT_EINPUT, "feature cache: %zu features per sample is too many",
                       fc->floats);

    uint64_t begin, len;
    ft_split(fc->n, w->size, w->rank, &begin, &len);
    ft_err_clear(err);
    if (mode == FT_FC_MEMORY) {
        fc->x = ft_alloc_floats(fc->n * fc->floats, err);
        fc->y = fc->x ? ft_calloc(fc->n ? fc->n : 1, sizeof *fc->y, err) : NULL;
        if (fc->x && fc->y) {
            fc->bytes = need;
            sink out = {fc->x, fc->y, -1, {0, 0}, NULL};
            compute_slice(fc, m, train, begin, len, &out, err);
        }
        if (ft_mpi_agree(w, err))
            return err->code;
        if (w->size > 1) {
            int *counts = ft_calloc((size_t)w->size, sizeof *counts, err);
            int *displs = ft_calloc((size_t)w->size, sizeof *displs, err);
            if (!counts || !displs) {
                free(counts);
                free(displs);
                return ft_mpi_agree(w, err);
            }
            for (int r = 0; r < w->size; r++) {
                uint64_t b, l;
                ft_split(fc->n, w->size, r, &b, &l);
                counts[r] = (int)l;
                displs[r] = (int)b;
            }
            MPI_Datatype row;
            MPI_Type_contiguous((int)fc->floats, MPI_FLOAT, &row);
            MPI_Type_commit(&row);
            MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, fc->x, counts, displs, row,
                           MPI_COMM_WORLD);
            MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, fc->y, counts, displs, MPI_INT,
                           MPI_COMM_WORLD);
            MPI_Type_free(&row);
            free(counts);
            free(displs);
        }
        fc->active = 1;
        fc->build_seconds = ft_now() - t0;
        return FT_OK;
    }

    /* disk */
    snprintf(fc->path, sizeof fc->path, "%s/feature-cache.h5", run_dir);
    long long off[2] = {-1, -1};
    if (w->rank == 0)
        create_scratch(fc, m, train, off, err);
    if (ft_mpi_agree(w, err))
        return err->code;
    MPI_Bcast(off, 2, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    if (len) { /* each rank writes its rows as it computes them */
        sink out = {NULL, NULL, open(fc->path, O_WRONLY), {off[0], off[1]}, fc->path};
        if (out.fd < 0)
            ft_fail(err, FT_ERUNTIME, "%s: cannot open the feature cache: %s", fc->path,
                    strerror(errno));
        else if (compute_slice(fc, m, train, begin, len, &out, err) == FT_OK && close(out.fd) != 0)
            ft_fail(err, FT_ERUNTIME, "%s: cannot write the feature cache: %s", fc->path,
                    strerror(errno));
        else if (err->code)
            close(out.fd);
    }
    if (ft_mpi_agree(w, err))
        return err->code;
    if (ft_dataset_open(&fc->disk, fc->path, NULL, err) == FT_OK)
        fc->disk_open = 1;
    if (ft_mpi_agree(w, err))
        return err->code;
    fc->active = 1;
    fc->build_seconds = ft_now() - t0;
    return FT_OK;
}

void ft_featcache_free(ft_featcache *fc, const ft_mpi *w)
{
    ft_free_floats(fc->x);
    free(fc->y);
    fc->x = NULL;
    fc->y = NULL;
    if (fc->disk_open) {
        ft_dataset_close(&fc->disk);
        fc->disk_open = 0;
        if (w->rank == 0)
            unlink(fc->path);
    }
    fc->active = 0;
}
