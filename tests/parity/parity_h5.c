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

/* Shared by the layer and transformer harnesses. */
float *ph_alloc_floats(size_t n, float fill)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (!p)
        ph_die("out of memory (%zu floats)", n);
    for (size_t i = 0; i < n; i++)
        p[i] = fill;
    return p;
}

static const ft_keydef *find_key(const ft_layer_ops *ops, const char *key)
{
    for (const ft_keydef *d = ops->keys; d && d->key; d++)
        if (strcmp(d->key, key) == 0)
            return d;
    return NULL;
}

typedef struct kv_visit {
    const char *cname;
    const ft_layer_ops *ops;
    ft_kvlist *kv;
} kv_visit;

static herr_t visit_kv(hid_t kg, const char *key, const H5A_info_t *info, void *user)
{
    const kv_visit *v = user;
    const ft_keydef *d = find_key(v->ops, key);
    if (!d)
        ph_die("%s: layer kind '%s' has no key '%s'", v->cname, v->ops->kind, key);
    switch (d->type) {
    case FT_KV_INT: ft_kv_set_int(v->kv, key, (long)ph_attr_long(kg, key, 0)); break;
    case FT_KV_FLOAT: ft_kv_set_float(v->kv, key, ph_attr_double(kg, key, 0.0)); break;
    case FT_KV_BOOL: ft_kv_set_bool(v->kv, key, ph_attr_long(kg, key, 0) != 0); break;
    case FT_KV_STRING: {
        char s[256];
        ph_attr_str(kg, key, "", s, sizeof s);
        ft_kv_set_string(v->kv, key, s);
        break;
    }
    default: ph_die("%s: key '%s' has a type the harness does not handle", v->cname, key);
    }
    return 0;
}

/* kv/ attributes -> ft_kvlist, typed by the kind's key table. */
void ph_read_kv(hid_t g, const char *cname, const ft_layer_ops *ops, ft_kvlist *kv)
{
    memset(kv, 0, sizeof *kv);
    snprintf(kv->where, sizeof kv->where, "case %s", cname);
    if (!ph_exists(g, "kv"))
        return;
    hid_t kg = ph_group(g, "kv", 0);
    kv_visit v = {cname, ops, kv};
    if (H5Aiterate2(kg, H5_INDEX_NAME, H5_ITER_INC, NULL, visit_kv, &v) < 0)
        ph_die("%s: cannot read the attributes of kv/", cname);
    H5Gclose(kg);
}

void ph_write_shaped(hid_t loc, const char *name, const float *data, int n, const ft_shape *s)
{
    hsize_t dims[FT_MAX_DIMS + 1];
    dims[0] = (hsize_t)n;
    for (int i = 0; i < s->rank; i++)
        dims[1 + i] = (hsize_t)s->d[i];
    ph_write_floats(loc, name, data, s->rank + 1, dims);
}

void ph_write_param(hid_t loc, const ft_param *p, const float *data)
{
    hsize_t dims[FT_MAX_DIMS];
    for (int i = 0; i < p->shape.rank; i++)
        dims[i] = (hsize_t)p->shape.d[i];
    ph_write_floats(loc, p->name, data, p->shape.rank, dims);
}
