/* HDF5 helpers of the parity harnesses (see parity_h5.h). */
#include "parity_h5.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/h5util.h"

void ph_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("parity harness: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

int ph_exists(hid_t loc, const char *name)
{
    return H5Lexists(loc, name, H5P_DEFAULT) > 0;
}

static ph_array read_array(hid_t loc, const char *name, hid_t memtype, size_t elem)
{
    ph_array a;
    memset(&a, 0, sizeof a);
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0)
        ph_die("cannot open dataset '%s'", name);
    hid_t s = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(s);
    if (rank < 0 || rank > PH_MAX_RANK)
        ph_die("dataset '%s' has rank %d (at most %d)", name, rank, PH_MAX_RANK);
    a.rank = rank;
    H5Sget_simple_extent_dims(s, a.dims, NULL);
    a.count = 1;
    for (int i = 0; i < rank; i++)
        a.count *= (size_t)a.dims[i];
    a.data = calloc(a.count ? a.count : 1, elem);
    if (!a.data)
        ph_die("out of memory reading '%s'", name);
    if (a.count && H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.data) < 0)
        ph_die("cannot read dataset '%s'", name);
    H5Sclose(s);
    H5Dclose(d);
    return a;
}

ph_array ph_read_floats(hid_t loc, const char *name)
{
    return read_array(loc, name, H5T_NATIVE_FLOAT, sizeof(float));
}

ph_array ph_read_ints(hid_t loc, const char *name)
{
    return read_array(loc, name, H5T_NATIVE_INT, sizeof(int));
}

void ph_array_free(ph_array *a)
{
    free(a->data);
    a->data = NULL;
}

void ph_write_floats(hid_t loc, const char *name, const float *data, int rank, const hsize_t *dims)
{
    hid_t s = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0)
        ph_die("cannot create dataset '%s'", name);
    size_t count = 1;
    for (int i = 0; i < rank; i++)
        count *= (size_t)dims[i];
    if (count && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        ph_die("cannot write dataset '%s'", name);
    H5Dclose(d);
    H5Sclose(s);
}

void ph_write_double_attr(hid_t loc, const char *name, double v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &v) < 0)
        ph_die("cannot write attribute '%s'", name);
    H5Aclose(a);
    H5Sclose(s);
}

double ph_attr_double(hid_t loc, const char *name, double dflt)
{
    if (H5Aexists(loc, name) <= 0)
        return dflt;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    double v;
    if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
        ph_die("cannot read attribute '%s' as a number", name);
    H5Aclose(a);
    return v;
}

long long ph_attr_long(hid_t loc, const char *name, long long dflt)
{
    ft_err err = {0};
    int found;
    long long v;
    if (ft_h5_get_int_attr(loc, name, &found, &v, &err))
        ph_die("%s", err.msg);
    return found ? v : dflt;
}

void ph_attr_str(hid_t loc, const char *name, const char *dflt, char *buf, size_t len)
{
    ft_err err = {0};
    int found;
    char *v = NULL;
    if (ft_h5_get_str_attr(loc, name, &found, &v, &err))
        ph_die("%s", err.msg);
    snprintf(buf, len, "%s", found ? v : dflt);
    free(v);
}

hid_t ph_group(hid_t loc, const char *name, int create)
{
    hid_t g = create ? H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                     : H5Gopen2(loc, name, H5P_DEFAULT);
    if (g < 0)
        ph_die("cannot %s group '%s'", create ? "create" : "open", name);
    return g;
}
