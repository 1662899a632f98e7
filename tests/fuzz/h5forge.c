/* h5forge: writes the damaged and hostile HDF5 files that the reliability tests feed to ftune
 * (tests/integration/t_hostile_*.sh, tests/fuzz/make_seeds.sh). No h5py needed.
 *
 *   h5forge poison IN.h5 OUT.h5 ROW nan|inf   copy a dataset, one value of row ROW made NaN/Inf
 *   h5forge huge-n OUT.h5                      inputs [2^40, 4], labels [2^40], nothing stored
 *   h5forge huge-dims OUT.h5                   inputs [10^12, 10^12] (chunked, nothing stored)
 *   h5forge huge-sample OUT.h5                 inputs [4, 1, 65535, 65535]: 16 GiB per sample
 *   h5forge short-storage OUT.h5               inputs [1000, 4] contiguous, 16 values stored
 *   h5forge huge-param OUT.h5                  a model file whose dense weight is [2^30, 2^30]
 *   h5forge huge-config OUT.h5                 a model file whose config asks for 2^60 params
 *   h5forge include-config OUT.h5 FILE         a model file whose config @includes FILE
 *   h5forge relabel IN.h5 OUT.h5 ROW VALUE     copy a dataset, label of row ROW set to VALUE
 *   h5forge empty OUT.h5                       inputs [0, 4], labels [0]
 *   h5forge wide OUT.h5                        inputs [3, 1, 1024, 1024] (4 MiB per sample)
 *
 * Chunked datasets with no chunk written take no space, so a file of a few KiB can declare
 * terabytes: ftune must refuse them before allocating. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/data.h"

static int die(const char *what)
{
    fprintf(stderr, "h5forge: %s\n", what);
    return 1;
}

static hid_t chunked(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims)
{
    hsize_t chunk[8];
    for (int i = 0; i < rank; i++)
        chunk[i] = 1;
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    hid_t ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    return ds;
}

static void str_attr(hid_t loc, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, &value);
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
}

static void strs_attr(hid_t loc, const char *name, const char **v, hsize_t n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t s = H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, v);
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
}

static void int_attr(hid_t loc, const char *name, hid_t type, long long v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, type, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    H5Sclose(s);
}

/* Reads a whole dataset (small test files only). */
static int read_all(const char *in, ft_dataset *d, float **x, int **y)
{
    ft_err err = {0};
    if (ft_dataset_open(d, in, NULL, &err))
        return die(err.msg);
    *x = malloc(d->n * d->sample_floats * sizeof **x);
    *y = malloc(d->n * sizeof **y);
    uint64_t *idx = malloc(d->n * sizeof *idx);
    if (!*x || !*y || !idx)
        return die("out of memory");
    for (uint64_t i = 0; i < d->n; i++)
        idx[i] = i;
    int rc = ft_dataset_read(d, idx, (int)d->n, *x, *y, &err);
    free(idx);
    return rc ? die(err.msg) : 0;
}

/* Writes inputs and labels with HDF5 directly (no checks: labels may be out of range). */
static int write_raw(const char *out, int rank, const hsize_t *dims, const float *x, const int *y,
                     long long classes)
{
    hid_t f = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t xs = H5Screate_simple(rank, dims, NULL), ys = H5Screate_simple(1, dims, NULL);
    hid_t xd = H5Dcreate2(f, "inputs", H5T_IEEE_F32LE, xs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t yd = H5Dcreate2(f, "labels", H5T_STD_I32LE, ys, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0 || xd < 0 || yd < 0)
        return die("cannot create datasets");
    if (dims[0] > 0 && (H5Dwrite(xd, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0 ||
                        H5Dwrite(yd, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) < 0))
        return die("cannot write");
    if (classes > 0)
        int_attr(f, "classes", H5T_STD_I64LE, classes);
    H5Dclose(xd);
    H5Dclose(yd);
    H5Sclose(xs);
    H5Sclose(ys);
    H5Fclose(f);
    return 0;
}

static int relabel(const char *in, const char *out, const char *row_s, const char *value)
{
    ft_dataset d;
    float *x;
    int *y;
    if (read_all(in, &d, &x, &y))
        return 1;
    uint64_t row = strtoull(row_s, NULL, 10);
    if (row >= d.n)
        return die("row out of range");
    y[row] = atoi(value);
    hsize_t dims[5] = {d.n};
    for (int i = 0; i < d.sample.rank; i++)
        dims[i + 1] = (hsize_t)d.sample.d[i];
    int rc = write_raw(out, d.sample.rank + 1, dims, x, y, d.classes);
    ft_dataset_close(&d);
    free(x);
    free(y);
    return rc;
}

static int poison(const char *in, const char *out, const char *row_s, const char *what)
{
    ft_dataset d;
    ft_err err = {0};
    if (ft_dataset_open(&d, in, NULL, &err))
        return die(err.msg);
    uint64_t row = strtoull(row_s, NULL, 10);
    if (row >= d.n)
        return die("row out of range");
    float *x = malloc(d.n * d.sample_floats * sizeof *x);
    int *y = malloc(d.n * sizeof *y);
    uint64_t *idx = malloc(d.n * sizeof *idx);
    if (!x || !y || !idx)
        return die("out of memory");
    for (uint64_t i = 0; i < d.n; i++)
        idx[i] = i;
    if (ft_dataset_read(&d, idx, (int)d.n, x, y, &err))
        return die(err.msg);
    x[row * d.sample_floats] = strcmp(what, "inf") == 0 ? INFINITY : NAN;
    ft_dataset_writer w;
    if (ft_dataset_create(&w, out, d.n, &d.sample, d.classes, &err) ||
        ft_dataset_append(&w, x, y, d.n, &err) || ft_dataset_finish(&w, &err))
        return die(err.msg);
    ft_dataset_close(&d);
    free(x);
    free(y);
    free(idx);
    return 0;
}

/* inputs of the given dims (chunked, unwritten) and labels [dims[0]] (chunked, unwritten) */
static int huge_dataset(const char *out, int rank, const hsize_t *dims)
{
    hid_t f = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return die("cannot create file");
    hid_t x = chunked(f, "inputs", H5T_IEEE_F32LE, rank, dims);
    hid_t y = chunked(f, "labels", H5T_STD_I32LE, 1, dims);
    if (x < 0 || y < 0)
        return die("cannot create datasets");
    int_attr(f, "classes", H5T_STD_I64LE, 4);
    H5Dclose(x);
    H5Dclose(y);
    H5Fclose(f);
    return 0;
}

/* contiguous inputs [1000, 4] of which only the first 4 rows are written (late allocation
 * is off, so the space is allocated but the file is then cut short by the caller) */
static int short_storage(const char *out)
{
    hid_t f = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {1000, 4};
    hid_t xs = H5Screate_simple(2, dims, NULL), ys = H5Screate_simple(1, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_layout(dcpl, H5D_CONTIGUOUS);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_LATE);
    hid_t x = H5Dcreate2(f, "inputs", H5T_IEEE_F32LE, xs, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    hid_t y = H5Dcreate2(f, "labels", H5T_STD_I32LE, ys, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (f < 0 || x < 0 || y < 0)
        return die("cannot create datasets");
    /* labels written (all 0), inputs never written: no storage at all */
    int *lab = calloc(1000, sizeof *lab);
    H5Dwrite(y, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
    free(lab);
    int_attr(f, "classes", H5T_STD_I64LE, 2);
    H5Pclose(dcpl);
    H5Sclose(xs);
    H5Sclose(ys);
    H5Dclose(x);
    H5Dclose(y);
    H5Fclose(f);
    return 0;
}

/* A model file with one dense layer "fc1": weight [wo, wi], bias [wo], nothing stored, and
 * the given config text. */
static int huge_model(const char *out, hsize_t wo, hsize_t wi, const char *config)
{
    hid_t f = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return die("cannot create file");
    str_attr(f, "format", "ftune-model");
    int_attr(f, "format_version", H5T_STD_I64LE, 1);
    str_attr(f, "config", config);
    const char *order[] = {"fc1"};
    strs_attr(f, "layer_order", order, 1);
    int_attr(f, "param_checksum", H5T_STD_U64LE, 12345);
    hid_t m = H5Gcreate2(f, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(m, "fc1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    str_attr(g, "type", "dense");
    hsize_t wd[2] = {wo, wi};
    hid_t w = chunked(g, "weight", H5T_IEEE_F32LE, 2, wd);
    hid_t b = chunked(g, "bias", H5T_IEEE_F32LE, 1, wd);
    if (w < 0 || b < 0)
        return die("cannot create datasets");
    H5Dclose(w);
    H5Dclose(b);
    H5Gclose(g);
    H5Gclose(m);
    H5Fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const char *kind = argc > 2 ? argv[1] : "";
    const char *out = argc > 2 ? argv[2] : "";
    if (!strcmp(kind, "poison") && argc == 6)
        return poison(argv[2], argv[3], argv[4], argv[5]);
    if (!strcmp(kind, "huge-n")) {
        hsize_t d[2] = {(hsize_t)1 << 40, 4};
        return huge_dataset(out, 2, d);
    }
    if (!strcmp(kind, "huge-dims")) {
        hsize_t d[2] = {1000000000000ull, 1000000000000ull};
        return huge_dataset(out, 2, d);
    }
    if (!strcmp(kind, "huge-sample")) {
        hsize_t d[4] = {4, 1, 65535, 65535};
        return huge_dataset(out, 4, d);
    }
    if (!strcmp(kind, "short-storage"))
        return short_storage(out);
    if (!strcmp(kind, "relabel") && argc == 6)
        return relabel(argv[2], argv[3], argv[4], argv[5]);
    if (!strcmp(kind, "empty")) {
        hsize_t d[2] = {0, 4};
        return write_raw(out, 2, d, NULL, NULL, 4);
    }
    if (!strcmp(kind, "wide")) {
        hsize_t d[4] = {3, 1, 1024, 1024};
        float *x = calloc(3u << 20, sizeof *x);
        int y[3] = {0, 1, 0};
        int rc = x ? write_raw(out, 4, d, x, y, 2) : die("out of memory");
        free(x);
        return rc;
    }
    if (!strcmp(kind, "include-config") && argc == 4) {
        char cfg[1200];
        snprintf(cfg, sizeof cfg, "@include \"%s\"\n", argv[3]);
        return huge_model(argv[2], 2, 4, cfg);
    }
    if (!strcmp(kind, "huge-param"))
        return huge_model(out, (hsize_t)1 << 30, (hsize_t)1 << 30,
                          "data = { train = \"x.h5\"; };\nmodel = { input = [4]; layers = ( "
                          "{ name = \"fc1\"; type = \"dense\"; units = 2; } ); };\n");
    if (!strcmp(kind, "huge-config"))
        return huge_model(out, 2, 4,
                          "data = { train = \"x.h5\"; };\nmodel = { input = [1073741824]; "
                          "layers = ( { name = \"fc1\"; type = \"dense\"; units = 1073741824; "
                          "} ); };\n");
    fprintf(stderr, "usage: h5forge poison IN OUT ROW nan|inf | huge-n OUT | huge-dims OUT | "
                    "huge-sample OUT | short-storage OUT | huge-param OUT | huge-config OUT | "
                    "include-config OUT FILE | relabel IN OUT ROW VALUE | empty OUT | wide OUT\n");
    return 2;
}
