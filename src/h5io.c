/* Model and checkpoint files (layout in docs/formats.md). Saving goes through
 * a temporary file that is flushed, synced and renamed; loading checks the
 * parameter checksum and every name and shape before the model is touched. */
#include "ftune/h5io.h"

#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ftune/freeze.h"
#include "ftune/h5util.h"
#include "ftune/version.h"

#define FORMAT_MODEL "ftune-model"
#define FORMAT_CHECKPOINT "ftune-checkpoint"
#define FORMAT_VERSION 1
#define CHECKSUM_NAME "fnv1a64-float32le"
#define FILE_MAX_DIMS 8 /* dimensions accepted from a file (inspect shows foreign files too) */
#define REINIT_HINT "(list it in pretrained.reinit to start it fresh)"

/* ---- checksum ----------------------------------------------------------- */

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

/* FNV-1a 64 over the IEEE float32 little-endian bytes of x (shifts, not
 * memory order, so the sum is the same on any host). */
static uint64_t fnv1a_floats(uint64_t h, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        for (int b = 0; b < 32; b += 8) {
            h ^= (u >> b) & 0xffu;
            h *= FNV_PRIME;
        }
    }
    return h;
}

/* ---- optimizer names ---------------------------------------------------- */

static const char *optim_name(int type)
{
    switch (type) {
    case FT_OPT_SGD: return "sgd";
    case FT_OPT_ADAMW: return "adamw";
    default: return NULL;
    }
}

static int optim_from_name(const char *s)
{
    if (strcmp(s, "sgd") == 0)
        return FT_OPT_SGD;
    if (strcmp(s, "adamw") == 0)
        return FT_OPT_ADAMW;
    return 0;
}

/* torch.optim's names for the per-parameter state, so files map one to one. */
static const char *state_name(int type, int k)
{
    if (type == FT_OPT_SGD)
        return "momentum_buffer";
    return k == 0 ? "exp_avg" : "exp_avg_sq";
}

/* ---- small HDF5 helpers --------------------------------------------------- */

static void close_id(hid_t *id)
{
    if (*id < 0)
        return;
    switch (H5Iget_type(*id)) {
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    case H5I_FILE: H5Fclose(*id); break;
    default: H5Oclose(*id); break;
    }
    *id = H5I_INVALID_HID;
}

static int attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hid_t space,
                      const void *buf, ft_err *err)
{
    hid_t a = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = FT_OK;
    if (a < 0 || H5Awrite(a, mtype, buf) < 0)
        rc = ft_h5_fail(err, FT_ERUNTIME, "cannot write attribute \"%s\"", name);
    close_id(&a);
    return rc;
}

static int set_scalar(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v,
                      ft_err *err)
{
    hid_t space = H5Screate(H5S_SCALAR);
    int rc = attr_write(loc, name, ftype, mtype, space, v, err);
    close_id(&space);
    return rc;
}

static int set_u64(hid_t loc, const char *name, uint64_t v, ft_err *err)
{
    return set_scalar(loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v, err);
}

static int set_i64(hid_t loc, const char *name, long long v, ft_err *err)
{
    return set_scalar(loc, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &v, err);
}

static int set_f64(hid_t loc, const char *name, double v, ft_err *err)
{
    return set_scalar(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, err);
}

/* A float setting as the double a reader expects (0.9, not 0.899999976):
 * the shortest decimal that reads back as the same float. */
static int set_f32(hid_t loc, const char *name, float v, ft_err *err)
{
    double d = v;
    char buf[32];
    for (int prec = 6; prec <= 9 && isfinite(v); prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if ((float)strtod(buf, NULL) == v) {
            d = strtod(buf, NULL);
            break;
        }
    }
    return set_f64(loc, name, d, err);
}

/* 1-D int32 attribute (shapes). */
static int set_ints(hid_t loc, const char *name, const int *v, int n, ft_err *err)
{
    hsize_t dim = (hsize_t)n;
    hid_t space = H5Screate_simple(1, &dim, NULL);
    int rc = attr_write(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, space, v, err);
    close_id(&space);
    return rc;
}

/* 1-D variable-length UTF-8 strings (h5py reads a list of str). */
static int set_strs(hid_t loc, const char *name, const char *const *v, size_t n, ft_err *err)
{
    hsize_t dim = (hsize_t)n;
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate_simple(1, &dim, NULL);
    int rc = attr_write(loc, name, type, type, space, v, err);
    close_id(&space);
    close_id(&type);
    return rc;
}

/* Opens attribute name if present (*a < 0 when absent). */
static int open_attr(hid_t loc, const char *name, hid_t *a, ft_err *err)
{
    *a = H5I_INVALID_HID;
    htri_t ex = H5Aexists(loc, name);
    if (ex < 0)
        return ft_h5_fail(err, FT_EINPUT, "cannot look up attribute \"%s\"", name);
    if (ex == 0)
        return FT_OK;
    *a = H5Aopen(loc, name, H5P_DEFAULT);
    if (*a < 0)
        return ft_h5_fail(err, FT_EINPUT, "cannot open attribute \"%s\"", name);
    return FT_OK;
}

/* Reads a one-value numeric attribute as mtype; class must be one of the
 * two given (the second may be H5T_NO_CLASS). */
static int get_number(hid_t loc, const char *name, H5T_class_t c1, H5T_class_t c2, hid_t mtype,
                      void *v, int *found, ft_err *err)
{
    hid_t a;
    *found = 0;
    int rc = open_attr(loc, name, &a, err);
    if (rc || a < 0)
        return rc;
    hid_t type = H5Aget_type(a), space = H5Aget_space(a);
    H5T_class_t cls = H5Tget_class(type);
    char tbuf[32];
    if (cls != c1 && cls != c2)
        rc = ft_fail(err, FT_EINPUT, "attribute \"%s\" has type %s, expected %s", name,
                     ft_h5_type_str(type, tbuf, sizeof tbuf),
                     c1 == H5T_INTEGER ? "an integer" : "a number");
    else if (H5Sget_simple_extent_npoints(space) != 1)
        rc = ft_fail(err, FT_EINPUT, "attribute \"%s\" should hold one value", name);
    else if (H5Aread(a, mtype, v) < 0)
        rc = ft_h5_fail(err, FT_EINPUT, "cannot read attribute \"%s\"", name);
    else
        *found = 1;
    close_id(&type);
    close_id(&space);
    close_id(&a);
    return rc;
}

static int get_u64(hid_t loc, const char *name, uint64_t *v, int *found, ft_err *err)
{
    return get_number(loc, name, H5T_INTEGER, H5T_NO_CLASS, H5T_NATIVE_UINT64, v, found, err);
}

static int get_f64(hid_t loc, const char *name, double *v, int *found, ft_err *err)
{
    return get_number(loc, name, H5T_FLOAT, H5T_INTEGER, H5T_NATIVE_DOUBLE, v, found, err);
}

static int get_i64(hid_t loc, const char *name, long long *v, int *found, ft_err *err)
{
    return ft_h5_get_int_attr(loc, name, found, v, err);
}

/* 1-D integer attribute of at most max values (shapes). */
static int get_ints(hid_t loc, const char *name, long long *v, int max, int *n, ft_err *err)
{
    hid_t a;
    *n = 0;
    int rc = open_attr(loc, name, &a, err);
    if (rc || a < 0)
        return rc;
    hid_t type = H5Aget_type(a), space = H5Aget_space(a);
    hssize_t pts = H5Sget_simple_extent_npoints(space);
    if (H5Tget_class(type) != H5T_INTEGER || pts < 0 || pts > max)
        rc = ft_fail(err, FT_EINPUT, "attribute \"%s\" should be up to %d integers", name, max);
    else if (pts > 0 && H5Aread(a, H5T_NATIVE_LLONG, v) < 0)
        rc = ft_h5_fail(err, FT_EINPUT, "cannot read attribute \"%s\"", name);
    else
        *n = (int)pts;
    close_id(&type);
    close_id(&space);
    close_id(&a);
    return rc;
}

/* A group that remembers the order its members were created in, so h5py,
 * h5dump --sort_by=creation_order and ftune list parameters in layer order. */
static hid_t make_group(hid_t loc, const char *name)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0)
        return gcpl;
    H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    return g;
}

/* ---- names in a group ------------------------------------------------------ */

typedef struct namelist {
    char **v;
    size_t n, cap;
    int oom;
} namelist;

static void names_free(namelist *nl)
{
    for (size_t i = 0; i < nl->n; i++)
        free(nl->v[i]);
    free(nl->v);
    memset(nl, 0, sizeof *nl);
}

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *user)
{
    namelist *nl = user;
    if (nl->n == nl->cap) {
        size_t cap = nl->cap ? 2 * nl->cap : 8;
        char **v = realloc(nl->v, cap * sizeof *v);
        if (!v) {
            nl->oom = 1;
            return -1;
        }
        nl->v = v;
        nl->cap = cap;
    }
    if (!(nl->v[nl->n] = strdup(name))) {
        nl->oom = 1;
        return -1;
    }
    nl->n++;
    return 0;
}

/* Members of g in creation order where the group tracks it (ftune's do),
 * else in name order. */
static int list_members(hid_t g, namelist *nl, const char *what, ft_err *err)
{
    memset(nl, 0, sizeof *nl);
    unsigned flags = 0;
    hid_t gcpl = H5Gget_create_plist(g);
    if (gcpl >= 0)
        H5Pget_link_creation_order(gcpl, &flags);
    close_id(&gcpl);
    H5_index_t idx = (flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
    hsize_t pos = 0;
    if (H5Literate(g, idx, H5_ITER_INC, &pos, collect_name, nl) < 0) {
        int oom = nl->oom;
        names_free(nl);
        if (oom)
            return ft_fail(err, FT_ERUNTIME, "out of memory listing %s", what);
        return ft_h5_fail(err, FT_EINPUT, "cannot list %s", what);
    }
    return FT_OK;
}

static int names_has(char *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], name) == 0)
            return 1;
    return 0;
}

/* ---- datasets ------------------------------------------------------------- */

typedef struct dsinfo {
    int rank;
    hsize_t dims[FILE_MAX_DIMS];
    size_t count;
    int is_float;
    char type[32];
} dsinfo;

static int ds_info(hid_t ds, dsinfo *d, const char *what, ft_err *err)
{
    memset(d, 0, sizeof *d);
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    int rc = FT_OK;
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (type < 0 || rank < 0) {
        rc = ft_h5_fail(err, FT_EINPUT, "cannot read the type and shape of %s", what);
    } else if (rank > FILE_MAX_DIMS) {
        rc = ft_fail(err, FT_EINPUT, "%s has %d dimensions (at most %d are supported)", what, rank,
                     FILE_MAX_DIMS);
    } else {
        d->rank = rank;
        H5Sget_simple_extent_dims(space, d->dims, NULL);
        d->count = 1;
        /* A damaged or hostile file must not make a buffer size wrap. */
        for (int k = 0; k < rank && !rc; k++)
            if (d->dims[k] > SIZE_MAX / sizeof(float) ||
                !ft_mul_size(d->count, (size_t)d->dims[k], &d->count) ||
                d->count > SIZE_MAX / sizeof(float))
                rc = ft_fail(err, FT_EINPUT, "%s is too large", what);
        d->is_float = H5Tget_class(type) == H5T_FLOAT;
        ft_h5_type_str(type, d->type, sizeof d->type);
    }
    /* The data must be stored: a few KiB can declare terabytes in chunks never written
     * (read back as fill values). Compressed data cannot shrink more than ~1000 times. */
    hid_t dcpl = rc ? H5I_INVALID_HID : H5Dget_create_plist(ds);
    if (dcpl >= 0) {
        int filtered = H5Pget_nfilters(dcpl) > 0;
        int skip = H5Pget_external_count(dcpl) > 0 || H5Pget_layout(dcpl) == H5D_VIRTUAL;
        size_t elsize = type >= 0 ? H5Tget_size(type) : 0;
        uint64_t need = (uint64_t)d->count * (elsize ? elsize : 1);
        uint64_t stored = H5Dget_storage_size(ds);
        if (!skip && d->is_float && stored < (filtered ? need / 1100 : need))
            rc = ft_fail(err, FT_EINPUT,
                         "%s declares %zu values but the file stores only %llu of their %llu "
                         "bytes (truncated, damaged or never written)",
                         what, d->count, (unsigned long long)stored, (unsigned long long)need);
        close_id(&dcpl);
        H5Eclear2(H5E_DEFAULT);
    }
    close_id(&type);
    close_id(&space);
    return rc;
}

static const char *dims_str(const hsize_t *dims, int rank, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int k = 0; k < rank && used < len; k++)
        used += (size_t)snprintf(buf + used, len - used, k ? ", %llu" : "%llu",
                                 (unsigned long long)dims[k]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

static int dims_equal(const dsinfo *d, const ft_shape *s)
{
    if (d->rank != s->rank)
        return 0;
    for (int k = 0; k < s->rank; k++)
        if (d->dims[k] != (hsize_t)s->d[k])
            return 0;
    return 1;
}

/* Opens name in g if it is a dataset (*ds < 0 when it is something else). */
static int open_dataset(hid_t g, const char *name, hid_t *ds, const char *what, ft_err *err)
{
    *ds = H5I_INVALID_HID;
    hid_t obj = H5Oopen(g, name, H5P_DEFAULT);
    if (obj < 0)
        return ft_h5_fail(err, FT_EINPUT, "cannot open %s", what);
    if (H5Iget_type(obj) == H5I_DATASET)
        *ds = obj;
    else
        H5Oclose(obj);
    return FT_OK;
}

/* Creates a float32 dataset of the given shape holding data, with a
 * "learnable" attribute unless learnable < 0. */
static int write_floats(hid_t loc, const char *name, const ft_shape *shape, const float *data,
                        int learnable, const char *what, ft_err *err)
{
    hsize_t dims[FT_MAX_DIMS];
    for (int k = 0; k < shape->rank; k++)
        dims[k] = (hsize_t)shape->d[k];
    hid_t space =
        shape->rank > 0 ? H5Screate_simple(shape->rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(loc, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = FT_OK;
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = ft_h5_fail(err, FT_ERUNTIME, "cannot write %s", what);
    else if (learnable >= 0)
        rc = set_i64(ds, "learnable", learnable, err);
    close_id(&ds);
    close_id(&space);
    return rc;
}

/* ---- saving --------------------------------------------------------------- */

static int layer_trainable(const ft_layer *l)
{
    for (int j = 0; j < l->nparams; j++)
        if (l->params[j].grad)
            return 1;
    return 0;
}

/* Layer names become HDF5 link names. */
static int check_name(const char *name, ft_err *err)
{
    if (!name[0] || strcmp(name, ".") == 0 || strchr(name, '/'))
        return ft_fail(err, FT_EINPUT,
                       "layer name '%s' cannot be stored in a model file (empty, '.' or "
                       "containing '/')",
                       name);
    return FT_OK;
}

int ft_param_in_adapter(const ft_layer *l, const ft_param *p)
{
    return !l->frozen && (!p->learnable || !p->frozen);
}

uint64_t ft_base_fingerprint(const ft_model *m, uint64_t *values)
{
    uint64_t h = FNV_OFFSET, n = 0;
    for (int i = 0; i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++) {
            const ft_param *p = &m->layers[i].params[j];
            if (ft_param_in_adapter(&m->layers[i], p))
                continue;
            h = fnv1a_floats(h, p->data, p->count);
            n += p->count;
        }
    if (values)
        *values = n;
    return h;
}

static int write_model(hid_t f, const ft_model *m, int adapter, uint64_t *checksum, ft_err *err)
{
    char what[256];
    uint64_t h = FNV_OFFSET;
    hid_t mg = make_group(f, "model");
    if (mg < 0)
        return ft_h5_fail(err, FT_ERUNTIME, "cannot create group /model");
    int rc = FT_OK;
    for (int i = 0; i < m->nlayers && !rc; i++) {
        const ft_layer *l = &m->layers[i];
        hid_t g = make_group(mg, l->name);
        if (g < 0) {
            rc = ft_h5_fail(err, FT_ERUNTIME, "cannot create group /model/%s", l->name);
            break;
        }
        rc = set_i64(g, "index", i, err);
        if (!rc)
            rc = ft_h5_set_str_attr(g, "type", l->ops->kind, err);
        if (!rc)
            rc = set_i64(g, "trainable", layer_trainable(l), err);
        if (!rc)
            rc = set_i64(g, "frozen", l->frozen ? 1 : 0, err);
        if (!rc)
            rc = set_f32(g, "lr_mult", l->lr_mult, err);
        if (!rc && l->out.rank > 0)
            rc = set_ints(g, "output_shape", l->out.d, l->out.rank, err);
        for (int j = 0; j < l->nparams && !rc; j++) {
            const ft_param *p = &l->params[j];
            if (adapter && !ft_param_in_adapter(l, p))
                continue; /* in the base model */
            snprintf(what, sizeof what, "dataset /model/%s/%s", l->name, p->name);
            rc = write_floats(g, p->name, &p->shape, p->data, p->learnable ? 1 : 0, what, err);
            h = fnv1a_floats(h, p->data, p->count);
        }
        close_id(&g);
    }
    close_id(&mg);
    *checksum = h;
    return rc;
}

/* State blocks (values per trainable parameter float) actually held by o. */
static int state_blocks(const ft_model *m, const ft_optim *o, size_t *blocks, ft_err *err)
{
    *blocks = m->ngrads ? o->nstate / m->ngrads : 0;
    if (*blocks * m->ngrads != o->nstate || *blocks > 2)
        return ft_fail(err, FT_ERUNTIME,
                       "optimizer state holds %zu values, not a whole number of blocks of the "
                       "model's %zu trainable values",
                       o->nstate, m->ngrads);
    return FT_OK;
}

static int write_optim(hid_t f, const ft_model *m, const ft_optim *o, ft_err *err)
{
    size_t blocks;
    int rc = state_blocks(m, o, &blocks, err);
    if (rc)
        return rc;
    hid_t og = make_group(f, "optimizer");
    if (og < 0)
        return ft_h5_fail(err, FT_ERUNTIME, "cannot create group /optimizer");
    const ft_optim_cfg *c = &o->cfg;
    rc = ft_h5_set_str_attr(og, "type", optim_name(c->type), err);
    if (!rc)
        rc = set_i64(og, "t", o->t, err);
    if (!rc)
        rc = set_i64(og, "state_blocks", (long long)blocks, err);
    if (!rc)
        rc = set_u64(og, "trainable_values", m->ngrads, err);
    if (!rc)
        rc = set_u64(og, "state_checksum", fnv1a_floats(FNV_OFFSET, o->state, o->nstate), err);
    /* Hyperparameters are for the reader; a resume takes them from the config. */
    if (!rc)
        rc = set_f32(og, "lr", c->lr, err);
    if (!rc)
        rc = set_f32(og, "weight_decay", c->weight_decay, err);
    if (!rc && c->type == FT_OPT_SGD) {
        rc = set_f32(og, "momentum", c->momentum, err);
        if (!rc)
            rc = set_i64(og, "nesterov", c->nesterov ? 1 : 0, err);
    }
    if (!rc && c->type == FT_OPT_ADAMW) {
        rc = set_f32(og, "beta1", c->beta1, err);
        if (!rc)
            rc = set_f32(og, "beta2", c->beta2, err);
        if (!rc)
            rc = set_f32(og, "eps", c->eps, err);
    }
    char what[256];
    for (int i = 0; i < m->nlayers && !rc && blocks; i++) {
        const ft_layer *l = &m->layers[i];
        if (!layer_trainable(l))
            continue;
        hid_t lg = make_group(og, l->name);
        if (lg < 0) {
            rc = ft_h5_fail(err, FT_ERUNTIME, "cannot create group /optimizer/%s", l->name);
            break;
        }
        for (int j = 0; j < l->nparams && !rc; j++) {
            const ft_param *p = &l->params[j];
            if (!p->grad)
                continue;
            hid_t pg = make_group(lg, p->name);
            if (pg < 0) {
                rc = ft_h5_fail(err, FT_ERUNTIME, "cannot create group /optimizer/%s/%s", l->name,
                                p->name);
                break;
            }
            size_t off = (size_t)(p->grad - m->grads);
            for (size_t k = 0; k < blocks && !rc; k++) {
                const char *sn = state_name(c->type, (int)k);
                snprintf(what, sizeof what, "dataset /optimizer/%s/%s/%s", l->name, p->name, sn);
                rc = write_floats(pg, sn, &p->shape, o->state + k * m->ngrads + off, -1, what, err);
            }
            close_id(&pg);
        }
        close_id(&lg);
    }
    close_id(&og);
    return rc;
}

static int write_train(hid_t f, const ft_train_state *st, ft_err *err)
{
    hid_t g = make_group(f, "train");
    if (g < 0)
        return ft_h5_fail(err, FT_ERUNTIME, "cannot create group /train");
    int rc = set_i64(g, "step", st->step, err);
    if (!rc)
        rc = set_i64(g, "epoch", st->epoch, err);
    if (!rc)
        rc = set_u64(g, "epoch_pos", st->epoch_pos, err);
    if (!rc)
        rc = set_u64(g, "samples_seen", st->samples_seen, err);
    if (!rc)
        rc = set_u64(g, "seed", st->seed, err);
    if (!rc)
        rc = set_i64(g, "world_size", st->world_size, err);
    if (!rc)
        rc = set_f64(g, "best_metric", st->best_metric, err);
    if (!rc)
        rc = set_i64(g, "best_step", st->best_step, err);
    if (!rc)
        rc = set_f64(g, "last_metric", st->last_metric, err);
    close_id(&g);
    return rc;
}

static int write_base(hid_t f, const ft_base_ref *b, ft_err *err)
{
    int rc = ft_h5_set_str_attr(f, "lora_base", b->path, err);
    if (!rc)
        rc = ft_h5_set_str_attr(f, "lora_base_resolved", b->resolved, err);
    if (!rc)
        rc = set_u64(f, "lora_base_fingerprint", b->fingerprint, err);
    if (!rc)
        rc = set_u64(f, "lora_base_values", b->values, err);
    if (!rc)
        rc = ft_h5_set_str_attr(f, "lora_base_fingerprint_algorithm", CHECKSUM_NAME, err);
    return rc;
}

static int write_file(hid_t f, const ft_model *m, const char *config_text, const ft_optim *o,
                      const ft_train_state *st, const char *metrics_json, const ft_base_ref *base,
                      ft_err *err)
{
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);

    int rc = ft_h5_set_str_attr(f, "format", st ? FORMAT_CHECKPOINT : FORMAT_MODEL, err);
    if (!rc)
        rc = set_i64(f, "format_version", FORMAT_VERSION, err);
    if (!rc)
        rc = ft_h5_set_str_attr(f, "ftune_version", FTUNE_VERSION, err);
    if (!rc)
        rc = ft_h5_set_str_attr(f, "created", created, err);
    if (!rc && config_text)
        rc = ft_h5_set_str_attr(f, "config", config_text, err);
    if (!rc && metrics_json)
        rc = ft_h5_set_str_attr(f, "metrics", metrics_json, err);
    if (!rc)
        rc = set_ints(f, "input_shape", m->input.d, m->input.rank, err);
    if (!rc) {
        const char **order = calloc((size_t)m->nlayers, sizeof *order);
        if (!order)
            return ft_fail(err, FT_ERUNTIME, "out of memory");
        for (int i = 0; i < m->nlayers; i++)
            order[i] = m->layers[i].name;
        rc = set_strs(f, "layer_order", order, (size_t)m->nlayers, err);
        free(order);
    }
    if (!rc && base)
        rc = write_base(f, base, err);
    uint64_t sum = 0;
    if (!rc)
        rc = write_model(f, m, base != NULL, &sum, err);
    if (!rc)
        rc = set_u64(f, "param_checksum", sum, err);
    if (!rc)
        rc = ft_h5_set_str_attr(f, "param_checksum_algorithm", CHECKSUM_NAME, err);
    if (!rc && o)
        rc = write_optim(f, m, o, err);
    if (!rc && st)
        rc = write_train(f, st, err);
    return rc;
}

/* Last ": " in [s, end), or NULL. */
static char *last_colon(char *s, const char *end)
{
    char *found = NULL;
    for (char *p = strstr(s, ": "); p && p < end; p = strstr(p + 1, ": "))
        found = p;
    return found;
}

/* HDF5 reports a failed system call as one long record ("file write failed:
 * time = ..., filename = ..., errno = 28, error message = 'No space left on
 * device', buf = ..."); keep the context and the reason only. */
static void tidy_os_error(ft_err *err)
{
    char *reason = strstr(err->msg, "error message = '");
    char *eq = strstr(err->msg, " = ");
    if (!reason || !eq)
        return;
    reason += strlen("error message = '");
    char *end = strchr(reason, '\'');
    char *c1 = last_colon(err->msg, eq);             /* "...failed: time = " */
    char *c0 = c1 ? last_colon(err->msg, c1) : NULL; /* "<context>: file write failed" */
    if (!end || !c0)
        return;
    char why[256];
    snprintf(why, sizeof why, "%.*s", (int)(end - reason), reason);
    snprintf(c0, sizeof err->msg - (size_t)(c0 - err->msg), ": %s", why);
}

int ft_save_ex(const char *path, const ft_model *m, const char *config_text, const ft_optim *o,
               const ft_train_state *st, const char *metrics_json, ft_err *err)
{
    return ft_save_adapter(path, m, config_text, o, st, metrics_json, NULL, err);
}

int ft_save_adapter(const char *path, const ft_model *m, const char *config_text, const ft_optim *o,
                    const ft_train_state *st, const char *metrics_json, const ft_base_ref *base,
                    ft_err *err)
{
    ft_h5_quiet();
    if (!path || !path[0] || !m || m->nlayers < 1 || m->input.rank < 1)
        return ft_fail(err, FT_ERUNTIME, "%s: nothing to save (no path or empty model)",
                       path ? path : "(null)");
    if (!o != !st)
        return ft_fail(err, FT_ERUNTIME,
                       "%s: a checkpoint needs both the optimizer and the training state", path);
    for (int i = 0; i < m->nlayers; i++)
        if (check_name(m->layers[i].name, err))
            return ft_err_prefix(err, "%s", path);
    if (o) {
        size_t blocks;
        if (!optim_name(o->cfg.type))
            return ft_fail(err, FT_ERUNTIME, "%s: unknown optimizer type %d", path, o->cfg.type);
        if (state_blocks(m, o, &blocks, err))
            return ft_err_prefix(err, "%s", path);
    }

    /* Room for the file first (about: data, texts and ~512 bytes per HDF5 object), so that
     * a full disk is reported before HDF5 writes anything (see ft_h5_reserve). */
    unsigned long long objects = 8, bytes = m->nparams + (o ? o->nstate : 0);
    for (int i = 0; i < m->nlayers; i++)
        objects += 1 + (unsigned long long)m->layers[i].nparams * (o ? 3 : 1) + (o ? 1 : 0);
    bytes = bytes * sizeof(float) + objects * 512 + 4096 + (config_text ? strlen(config_text) : 0) +
            (metrics_json ? strlen(metrics_json) : 0);
    if (ft_h5_reserve(path, bytes, err))
        return FT_ERUNTIME;

    size_t tlen = strlen(path) + 64;
    char *tmp = malloc(tlen);
    if (!tmp)
        return ft_fail(err, FT_ERUNTIME, "%s: out of memory", path);
    hid_t f;
    int rc = ft_h5_create_tmp(path, tmp, tlen, &f, err);
    if (rc) {
        unlink(tmp); /* HDF5 may have created it before failing */
        free(tmp);
        tidy_os_error(err);
        err->code = FT_ERUNTIME;
        return FT_ERUNTIME;
    }
    rc = write_file(f, m, config_text, o, st, metrics_json, base, err);
    /* Flush here so that a full disk is reported with HDF5's reason. */
    if (!rc && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0)
        rc = ft_h5_fail(err, FT_ERUNTIME, "cannot flush");
    if (rc) {
        ft_err_prefix(err, "%s: cannot save", path);
        ft_h5_discard(f, tmp);
    } else {
        rc = ft_h5_commit(f, tmp, path, err); /* removes tmp on failure */
    }
    free(tmp);
    if (rc) {
        tidy_os_error(err);
        err->code = rc = FT_ERUNTIME;
    }
    return rc;
}

int ft_save(const char *path, const ft_model *m, const char *config_text, const ft_optim *o,
            const ft_train_state *st, ft_err *err)
{
    return ft_save_ex(path, m, config_text, o, st, NULL, err);
}

/* ---- opening files -------------------------------------------------------- */

typedef struct mfile {
    const char *path;
    hid_t f, model;
    int checkpoint;
    int adapter; /* has a base model reference (lora_base) */
    long long version;
    char **order; /* layer_order */
    size_t norder;
} mfile;

static void mfile_close(mfile *mf)
{
    ft_h5_free_strings(mf->order, mf->norder);
    mf->order = NULL;
    mf->norder = 0;
    close_id(&mf->model);
    close_id(&mf->f);
}

/* Opens path and checks that it is an ftune file this version can read. */
static int mfile_open(mfile *mf, const char *path, ft_err *err)
{
    memset(mf, 0, sizeof *mf);
    mf->path = path;
    mf->f = mf->model = H5I_INVALID_HID;
    int rc = ft_h5_open_read(path, &mf->f, err);
    if (rc)
        return rc;
    int found;
    char *fmt = NULL;
    rc = ft_h5_get_str_attr(mf->f, "format", &found, &fmt, err);
    if (rc) {
        mfile_close(mf);
        return ft_err_prefix(err, "%s", path);
    }
    if (!found) {
        mfile_close(mf);
        return ft_fail(err, FT_EINPUT,
                       "%s is not an ftune model or checkpoint (no 'format' attribute)", path);
    }
    if (strcmp(fmt, FORMAT_MODEL) != 0 && strcmp(fmt, FORMAT_CHECKPOINT) != 0) {
        rc = ft_fail(err, FT_EINPUT, "%s is not an ftune model or checkpoint (its format is '%s')",
                     path, fmt);
        free(fmt);
        mfile_close(mf);
        return rc;
    }
    mf->checkpoint = strcmp(fmt, FORMAT_CHECKPOINT) == 0;
    free(fmt);
    rc = get_i64(mf->f, "format_version", &mf->version, &found, err);
    if (!rc && !found)
        rc = ft_fail(err, FT_EINPUT, "no 'format_version' attribute");
    if (!rc && (mf->version < 1 || mf->version > FORMAT_VERSION))
        rc = ft_fail(err, FT_EINPUT,
                     "format version %lld is not one this ftune (%s) reads (1 to %d); a newer "
                     "ftune wrote it?",
                     mf->version, FTUNE_VERSION, FORMAT_VERSION);
    if (!rc) {
        htri_t ex = H5Aexists(mf->f, "lora_base");
        mf->adapter = ex > 0;
        if (ex < 0)
            rc = ft_h5_fail(err, FT_EINPUT, "cannot read the attributes");
    }
    if (!rc)
        rc = ft_h5_get_strs_attr(mf->f, "layer_order", &found, &mf->order, &mf->norder, err);
    if (!rc && !found)
        rc = ft_fail(err, FT_EINPUT, "no 'layer_order' attribute (damaged file?)");
    if (!rc) {
        mf->model = H5Lexists(mf->f, "model", H5P_DEFAULT) > 0
                        ? H5Gopen2(mf->f, "model", H5P_DEFAULT)
                        : H5I_INVALID_HID;
        if (mf->model < 0)
            rc = ft_h5_fail(err, FT_EINPUT, "no /model group (damaged file?)");
    }
    for (size_t i = 0; i < mf->norder && !rc; i++)
        if (H5Lexists(mf->model, mf->order[i], H5P_DEFAULT) <= 0)
            rc = ft_fail(err, FT_EINPUT,
                         "layer '%s' is listed in layer_order but /model/%s is missing (damaged "
                         "file?)",
                         mf->order[i], mf->order[i]);
    if (rc) {
        H5Eclear2(H5E_DEFAULT);
        mfile_close(mf);
        return ft_err_prefix(err, "%s", path);
    }
    return FT_OK;
}

/* Reads every parameter dataset of the file (layer_order, then creation
 * order within a layer) and returns its checksum. */
static int file_checksum(mfile *mf, uint64_t *sum, ft_err *err)
{
    uint64_t h = FNV_OFFSET;
    float *buf = NULL;
    size_t cap = 0;
    int rc = FT_OK;
    char what[256];
    for (size_t i = 0; i < mf->norder && !rc; i++) {
        hid_t g = H5Gopen2(mf->model, mf->order[i], H5P_DEFAULT);
        if (g < 0) {
            rc = ft_h5_fail(err, FT_EINPUT, "cannot open group /model/%s", mf->order[i]);
            break;
        }
        namelist nl;
        snprintf(what, sizeof what, "/model/%s", mf->order[i]);
        rc = list_members(g, &nl, what, err);
        for (size_t j = 0; j < nl.n && !rc; j++) {
            snprintf(what, sizeof what, "/model/%s/%s", mf->order[i], nl.v[j]);
            hid_t ds;
            dsinfo d;
            rc = open_dataset(g, nl.v[j], &ds, what, err);
            if (rc || ds < 0)
                continue;
            rc = ds_info(ds, &d, what, err);
            if (!rc && !d.is_float)
                rc = ft_fail(err, FT_EINPUT, "%s has type %s, expected float32", what, d.type);
            if (!rc && d.count > cap)
                rc = ft_check_alloc(d.count, sizeof *buf, what, err);
            if (!rc && d.count > cap) {
                float *nb = realloc(buf, d.count * sizeof *buf);
                if (!nb)
                    rc = ft_fail(err, FT_ERUNTIME, "out of memory reading %s", what);
                else
                    buf = nb, cap = d.count;
            }
            if (!rc && d.count &&
                H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
                rc = ft_h5_fail(err, FT_EINPUT, "cannot read %s", what);
            if (!rc)
                h = fnv1a_floats(h, buf, d.count);
            close_id(&ds);
        }
        names_free(&nl);
        close_id(&g);
    }
    free(buf);
    *sum = h;
    return rc;
}

/* Verifies param_checksum where the file has one (files written by other
 * tools may leave it out). */
static int verify_checksum(mfile *mf, ft_err *err)
{
    uint64_t stored, sum;
    int found;
    int rc = get_u64(mf->f, "param_checksum", &stored, &found, err);
    if (!rc && found)
        rc = file_checksum(mf, &sum, err);
    if (rc)
        return ft_err_prefix(err, "%s", mf->path);
    if (found && sum != stored)
        return ft_fail(err, FT_EINPUT, "%s: parameter checksum mismatch (file corrupted?)",
                       mf->path);
    return FT_OK;
}

/* ---- loading weights -------------------------------------------------------- */

static int in_list(const char *const *v, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (v[i] && strcmp(v[i], name) == 0)
            return 1;
    return 0;
}

static void warnf(ft_warn_fn warn, void *user, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warnf(ft_warn_fn warn, void *user, const char *fmt, ...)
{
    if (!warn)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    warn(msg, user);
}

/* Checks one model layer against its group in the file (nothing is read). */
static int check_layer(mfile *mf, const ft_layer *l, ft_err *err)
{
    const char *path = mf->path;
    hid_t g = H5Gopen2(mf->model, l->name, H5P_DEFAULT);
    if (g < 0)
        return ft_h5_fail(err, FT_EINPUT, "%s: cannot open group /model/%s", path, l->name);
    char what[256], a[96], b[96];
    char *type = NULL;
    int found;
    namelist nl = {0};
    int rc = ft_h5_get_str_attr(g, "type", &found, &type, err);
    if (rc) {
        ft_err_prefix(err, "%s: /model/%s", path, l->name);
        goto out;
    }
    if (found && strcmp(type, l->ops->kind) != 0) {
        rc = ft_fail(err, FT_EINPUT, "%s: layer '%s' is a %s in the file but a %s in the model %s",
                     path, l->name, type, l->ops->kind, REINIT_HINT);
        goto out;
    }
    snprintf(what, sizeof what, "/model/%s", l->name);
    if ((rc = list_members(g, &nl, what, err))) {
        ft_err_prefix(err, "%s", path);
        goto out;
    }
    for (int j = 0; j < l->nparams && !rc; j++) {
        const ft_param *p = &l->params[j];
        if (!names_has(nl.v, nl.n, p->name) && ft_param_is_adapter(p))
            continue; /* a base model for LoRA: the adapters keep their initialisation */
        if (!names_has(nl.v, nl.n, p->name) && mf->adapter && !ft_param_in_adapter(l, p))
            continue; /* an adapter file: from the base model (loaded first) */
        if (!names_has(nl.v, nl.n, p->name)) {
            rc = ft_fail(err, FT_EINPUT, "%s: layer '%s' has no parameter '%s' in the file %s",
                         path, l->name, p->name, REINIT_HINT);
            break;
        }
        hid_t ds;
        dsinfo d;
        snprintf(what, sizeof what, "/model/%s/%s", l->name, p->name);
        rc = open_dataset(g, p->name, &ds, what, err);
        if (!rc && ds < 0)
            rc = ft_fail(err, FT_EINPUT, "%s is not a dataset", what);
        if (!rc)
            rc = ds_info(ds, &d, what, err);
        close_id(&ds);
        if (rc) {
            ft_err_prefix(err, "%s", path);
            break;
        }
        if (!d.is_float)
            rc = ft_fail(err, FT_EINPUT,
                         "%s: layer '%s' parameter '%s' has type %s in the file, expected float32",
                         path, l->name, p->name, d.type);
        else if (!dims_equal(&d, &p->shape))
            rc = ft_fail(err, FT_EINPUT,
                         "%s: layer '%s' parameter '%s' has shape %s in the file but %s in the "
                         "model %s",
                         path, l->name, p->name, dims_str(d.dims, d.rank, a, sizeof a),
                         ft_shape_str(&p->shape, b, sizeof b), REINIT_HINT);
    }
    /* A parameter the model lacks (say a bias) would silently change the
     * function the layer computes. */
    for (size_t k = 0; k < nl.n && !rc; k++) {
        int known = 0;
        for (int j = 0; j < l->nparams; j++)
            known |= strcmp(l->params[j].name, nl.v[k]) == 0;
        if (!known)
            rc = ft_fail(err, FT_EINPUT,
                         "%s: layer '%s' parameter '%s' is in the file but not in the model %s",
                         path, l->name, nl.v[k], REINIT_HINT);
    }
out:
    free(type);
    names_free(&nl);
    close_id(&g);
    return rc;
}

static int read_layer(mfile *mf, ft_layer *l, ft_err *err)
{
    hid_t g = H5Gopen2(mf->model, l->name, H5P_DEFAULT);
    int rc = FT_OK;
    for (int j = 0; j < l->nparams && !rc; j++) {
        ft_param *p = &l->params[j];
        if (g >= 0 && H5Lexists(g, p->name, H5P_DEFAULT) <= 0)
            continue; /* absent: an adapter of a base model, or a base parameter of an adapter
                       * file (check_layer allowed it) */
        hid_t ds = g >= 0 ? H5Dopen2(g, p->name, H5P_DEFAULT) : H5I_INVALID_HID;
        if (ds < 0 || H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, p->data) < 0)
            rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot read /model/%s/%s", mf->path, l->name,
                            p->name);
        close_id(&ds);
    }
    close_id(&g);
    return rc;
}

static int load_weights(const char *path, ft_model *m, const char *const *reinit, int nreinit,
                        int strict, int adapter_ok, ft_warn_fn warn, void *user, ft_err *err)
{
    mfile mf;
    int rc = mfile_open(&mf, path, err);
    if (rc)
        return rc;
    if (mf.adapter && !adapter_ok) {
        char *base = NULL;
        int found;
        ft_h5_get_str_attr(mf.f, "lora_base", &found, &base, err);
        rc = ft_fail(err, FT_EINPUT,
                     "%s is a LoRA adapter file: it holds only the adapters (and the other "
                     "trained tensors) of the base model %s; `ftune eval` and `ftune export "
                     "--merge-lora` load both, and the merged model can be used here",
                     path, base ? base : "?");
        free(base);
        mfile_close(&mf);
        return rc;
    }
    rc = verify_checksum(&mf, err);
    /* Every check first: m is only written once the whole file fits. */
    for (int i = 0; i < m->nlayers && !rc; i++) {
        ft_layer *l = &m->layers[i];
        if (in_list(reinit, nreinit, l->name))
            continue;
        if (!names_has(mf.order, mf.norder, l->name)) {
            if (l->nparams == 0)
                continue; /* nothing to load (files from other tools often omit them) */
            if (strict)
                rc = ft_fail(err, FT_EINPUT, "%s: layer '%s' of the model is not in the file", path,
                             l->name);
            else
                warnf(warn, user,
                      "%s: layer '%s' of the model is not in the file (keeps its initialisation)",
                      path, l->name);
            continue;
        }
        rc = check_layer(&mf, l, err);
    }
    for (size_t k = 0; k < mf.norder && !rc; k++)
        if (!ft_model_find(m, mf.order[k]))
            warnf(warn, user, "%s: layer '%s' is in the file but not in the model (ignored)", path,
                  mf.order[k]);
    for (int i = 0; i < m->nlayers && !rc; i++) {
        ft_layer *l = &m->layers[i];
        if (!in_list(reinit, nreinit, l->name) && names_has(mf.order, mf.norder, l->name))
            rc = read_layer(&mf, l, err);
    }
    mfile_close(&mf);
    return rc;
}

int ft_load_weights(const char *path, ft_model *m, const char *const *reinit, int nreinit,
                    int strict, ft_warn_fn warn, void *user, ft_err *err)
{
    return load_weights(path, m, reinit, nreinit, strict, 0, warn, user, err);
}

int ft_load_adapter_weights(const char *path, ft_model *m, ft_err *err)
{
    return load_weights(path, m, NULL, 0, 1, 1, NULL, NULL, err);
}

int ft_read_base_ref(const char *path, ft_base_ref *ref, int *found, ft_err *err)
{
    memset(ref, 0, sizeof *ref);
    *found = 0;
    mfile mf;
    int rc = mfile_open(&mf, path, err);
    if (rc || !mf.adapter) {
        if (!rc)
            mfile_close(&mf);
        return rc;
    }
    char *base = NULL, *resolved = NULL;
    int f1 = 0, f2 = 0, f3 = 0, f4 = 0;
    rc = ft_h5_get_str_attr(mf.f, "lora_base", &f1, &base, err);
    if (!rc)
        rc = ft_h5_get_str_attr(mf.f, "lora_base_resolved", &f2, &resolved, err);
    if (!rc)
        rc = get_u64(mf.f, "lora_base_fingerprint", &ref->fingerprint, &f3, err);
    if (!rc)
        rc = get_u64(mf.f, "lora_base_values", &ref->values, &f4, err);
    if (!rc && (!f1 || !f2 || !f3 || !f4))
        rc = ft_fail(err, FT_EINPUT,
                     "incomplete base model reference (lora_base_* attributes; damaged file?)");
    if (!rc) {
        snprintf(ref->path, sizeof ref->path, "%s", base);
        snprintf(ref->resolved, sizeof ref->resolved, "%s", resolved);
        *found = 1;
    }
    free(base);
    free(resolved);
    mfile_close(&mf);
    return rc ? ft_err_prefix(err, "%s", path) : FT_OK;
}

int ft_load_config_text(const char *path, char **text, ft_err *err)
{
    *text = NULL;
    mfile mf;
    int rc = mfile_open(&mf, path, err);
    if (rc)
        return rc;
    int found;
    rc = ft_h5_get_str_attr(mf.f, "config", &found, text, err);
    if (rc)
        ft_err_prefix(err, "%s", path);
    else if (!found)
        rc = ft_fail(err, FT_EINPUT, "%s has no stored configuration (attribute 'config')", path);
    mfile_close(&mf);
    return rc;
}

/* ---- loading training state ------------------------------------------------- */

/* Opens loc/a/b/c one link at a time (*id < 0 when a link is missing). */
static hid_t open_path3(hid_t loc, const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    hid_t cur = loc;
    for (int k = 0; k < 3; k++) {
        hid_t next = H5I_INVALID_HID;
        if (H5Lexists(cur, parts[k], H5P_DEFAULT) > 0)
            next =
                k < 2 ? H5Gopen2(cur, parts[k], H5P_DEFAULT) : H5Dopen2(cur, parts[k], H5P_DEFAULT);
        if (cur != loc)
            close_id(&cur);
        if (next < 0) {
            H5Eclear2(H5E_DEFAULT);
            return H5I_INVALID_HID;
        }
        cur = next;
    }
    return cur;
}

/* Reads the optimizer state of m's trainable parameters into state. */
static int read_optim_state(mfile *mf, hid_t og, const ft_model *m, int type, size_t blocks,
                            float *state, ft_err *err)
{
    const char *path = mf->path;
    int rc = FT_OK;
    for (int i = 0; i < m->nlayers && !rc; i++) {
        const ft_layer *l = &m->layers[i];
        for (int j = 0; j < l->nparams && !rc; j++) {
            const ft_param *p = &l->params[j];
            if (!p->grad)
                continue;
            size_t off = (size_t)(p->grad - m->grads);
            for (size_t k = 0; k < blocks && !rc; k++) {
                const char *sn = state_name(type, (int)k);
                hid_t ds = open_path3(og, l->name, p->name, sn);
                dsinfo d;
                if (ds < 0) {
                    rc = ft_fail(err, FT_EINPUT,
                                 "%s: the checkpoint has no optimizer state for layer '%s' "
                                 "parameter '%s': its trainable layers differ from this model's "
                                 "(was a layer frozen or unfrozen?)",
                                 path, l->name, p->name);
                    break;
                }
                char what[256], a[96], b[96];
                snprintf(what, sizeof what, "/optimizer/%s/%s/%s", l->name, p->name, sn);
                rc = ds_info(ds, &d, what, err);
                if (rc)
                    ft_err_prefix(err, "%s", path);
                else if (!d.is_float || !dims_equal(&d, &p->shape))
                    rc = ft_fail(err, FT_EINPUT,
                                 "%s: %s is %s %s but layer '%s' parameter '%s' is float32 %s in "
                                 "the model",
                                 path, what, d.type, dims_str(d.dims, d.rank, a, sizeof a), l->name,
                                 p->name, ft_shape_str(&p->shape, b, sizeof b));
                else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                 state + k * m->ngrads + off) < 0)
                    rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot read %s", path, what);
                close_id(&ds);
            }
        }
    }
    /* State for a layer the model does not train: the trainable sets differ
     * even when the sizes agree. */
    namelist nl = {0};
    if (!rc && !(rc = list_members(og, &nl, "/optimizer", err))) {
        for (size_t k = 0; k < nl.n && !rc; k++) {
            const ft_layer *l = ft_model_find(m, nl.v[k]);
            if (!l || !layer_trainable(l))
                rc = ft_fail(err, FT_EINPUT,
                             "%s: the checkpoint has optimizer state for layer '%s', which is "
                             "%s: its trainable layers differ from this model's",
                             path, nl.v[k], l ? "frozen in this model" : "not in this model");
        }
    } else if (rc && !strstr(err->msg, path)) {
        ft_err_prefix(err, "%s", path);
    }
    names_free(&nl);
    return rc;
}

static int load_optim(mfile *mf, const ft_model *m, ft_optim *o, ft_err *err)
{
    const char *path = mf->path;
    if (H5Lexists(mf->f, "optimizer", H5P_DEFAULT) <= 0)
        return ft_fail(err, FT_EINPUT, "%s: no /optimizer group (damaged checkpoint?)", path);
    hid_t og = H5Gopen2(mf->f, "optimizer", H5P_DEFAULT);
    if (og < 0)
        return ft_h5_fail(err, FT_EINPUT, "%s: cannot open /optimizer", path);
    char *tname = NULL;
    int found, type = 0;
    long long t = 0, fblocks = 0;
    uint64_t fvalues = 0, fsum = 0;
    int has_sum = 0;
    float *state = NULL;
    size_t blocks = 0;
    int rc = ft_h5_get_str_attr(og, "type", &found, &tname, err);
    if (!rc && !found)
        rc = ft_fail(err, FT_EINPUT, "no 'type' attribute");
    if (!rc && !(type = optim_from_name(tname)))
        rc = ft_fail(err, FT_EINPUT, "unknown optimizer type '%s'", tname);
    if (!rc && (rc = get_i64(og, "t", &t, &found, err)) == 0 && !found)
        rc = ft_fail(err, FT_EINPUT, "no 't' attribute");
    if (!rc && (rc = get_i64(og, "state_blocks", &fblocks, &found, err)) == 0 && !found)
        rc = ft_fail(err, FT_EINPUT, "no 'state_blocks' attribute");
    if (!rc && (rc = get_u64(og, "trainable_values", &fvalues, &found, err)) == 0 && !found)
        rc = ft_fail(err, FT_EINPUT, "no 'trainable_values' attribute");
    if (!rc)
        rc = get_u64(og, "state_checksum", &fsum, &has_sum, err);
    if (rc) {
        ft_err_prefix(err, "%s: /optimizer", path);
        goto out;
    }
    if (type != o->cfg.type) {
        rc = ft_fail(err, FT_EINPUT,
                     "%s: the checkpoint's optimizer is %s but the configuration's is %s", path,
                     tname, optim_name(o->cfg.type) ? optim_name(o->cfg.type) : "unknown");
        goto out;
    }
    if ((rc = state_blocks(m, o, &blocks, err))) {
        ft_err_prefix(err, "%s", path);
        goto out;
    }
    if (fvalues != m->ngrads) {
        rc = ft_fail(err, FT_EINPUT,
                     "%s: the checkpoint has optimizer state for %" PRIu64
                     " trainable values but this model has %zu: its set of trainable "
                     "(non-frozen) layers differs from the configuration's",
                     path, fvalues, m->ngrads);
        goto out;
    }
    if (fblocks != (long long)blocks) {
        rc = ft_fail(err, FT_EINPUT,
                     "%s: the checkpoint keeps %lld optimizer state value(s) per parameter but "
                     "this %s optimizer keeps %zu (was momentum turned on or off?)",
                     path, fblocks, tname, blocks);
        goto out;
    }
    /* Read into a new arena so o is untouched unless everything checks out. */
    if (o->nstate && !(state = ft_alloc_floats(o->nstate, err))) {
        ft_err_prefix(err, "%s", path);
        rc = err->code;
        goto out;
    }
    if ((rc = read_optim_state(mf, og, m, type, blocks, state, err)))
        goto out;
    if (has_sum && fnv1a_floats(FNV_OFFSET, state, o->nstate) != fsum) {
        rc = ft_fail(err, FT_EINPUT, "%s: optimizer state checksum mismatch (file corrupted?)",
                     path);
        goto out;
    }
    /* Copied, not swapped: others may hold o->state (broadcasts). */
    if (o->nstate)
        memcpy(o->state, state, o->nstate * sizeof *state);
    o->t = (long)t;
out:
    ft_free_floats(state);
    free(tname);
    close_id(&og);
    return rc;
}

static int load_train(mfile *mf, ft_train_state *st, ft_err *err)
{
    if (H5Lexists(mf->f, "train", H5P_DEFAULT) <= 0)
        return ft_fail(err, FT_EINPUT, "%s: no /train group (damaged checkpoint?)", mf->path);
    hid_t g = H5Gopen2(mf->f, "train", H5P_DEFAULT);
    if (g < 0)
        return ft_h5_fail(err, FT_EINPUT, "%s: cannot open /train", mf->path);
    ft_train_state s;
    memset(&s, 0, sizeof s);
    long long step = 0, epoch = 0, world = 0, best_step = 0;
    struct {
        const char *name;
        int kind; /* 0 int, 1 uint64, 2 double */
        void *v;
    } fields[] = {
        {"step", 0, &step},
        {"epoch", 0, &epoch},
        {"epoch_pos", 1, &s.epoch_pos},
        {"samples_seen", 1, &s.samples_seen},
        {"seed", 1, &s.seed},
        {"world_size", 0, &world},
        {"best_metric", 2, &s.best_metric},
        {"best_step", 0, &best_step},
        {"last_metric", 2, &s.last_metric},
    };
    int rc = FT_OK, found = 0;
    for (size_t k = 0; k < sizeof fields / sizeof fields[0] && !rc; k++) {
        if (fields[k].kind == 0)
            rc = get_i64(g, fields[k].name, fields[k].v, &found, err);
        else if (fields[k].kind == 1)
            rc = get_u64(g, fields[k].name, fields[k].v, &found, err);
        else
            rc = get_f64(g, fields[k].name, fields[k].v, &found, err);
        if (!rc && !found)
            rc = ft_fail(err, FT_EINPUT, "no '%s' attribute", fields[k].name);
    }
    close_id(&g);
    if (rc)
        return ft_err_prefix(err, "%s: /train", mf->path);
    s.step = (long)step;
    s.epoch = (long)epoch;
    s.world_size = (int)world;
    s.best_step = (long)best_step;
    *st = s;
    return FT_OK;
}

int ft_load_train_state(const char *path, const ft_model *m, ft_optim *o, ft_train_state *st,
                        ft_err *err)
{
    mfile mf;
    int rc = mfile_open(&mf, path, err);
    if (rc)
        return rc;
    if (!mf.checkpoint) {
        mfile_close(&mf);
        return ft_fail(err, FT_EINPUT,
                       "%s is a model file, not a checkpoint: it has no optimizer or training "
                       "state to resume from",
                       path);
    }
    /* Train state first into a local copy: o and st change only on success. */
    ft_train_state s;
    rc = load_train(&mf, &s, err);
    if (!rc)
        rc = load_optim(&mf, m, o, err);
    if (!rc)
        *st = s;
    mfile_close(&mf);
    return rc;
}

/* ---- inspect ---------------------------------------------------------------- */

typedef struct iparam {
    char *name;
    dsinfo d;
    int learnable; /* -1 unknown */
} iparam;

typedef struct ilayer {
    const char *name;
    char *type;
    int trainable, frozen;
    long long out[FILE_MAX_DIMS];
    int out_rank;
    iparam *p;
    size_t np;
} ilayer;

typedef struct info {
    mfile mf;
    char *ftune_version, *created, *metrics, *config, *algo;
    long long input[FILE_MAX_DIMS];
    int input_rank;
    ilayer *layers;
    size_t nlayers;
    unsigned long long total, learnable, trainable;
    int has_sum;
    uint64_t stored_sum, sum;
    int has_optim;
    char *optim_type;
    long long optim_t;
    int has_train;
    ft_train_state st;
} info;

static void info_free(info *in)
{
    for (size_t i = 0; i < in->nlayers; i++) {
        for (size_t j = 0; j < in->layers[i].np; j++)
            free(in->layers[i].p[j].name);
        free(in->layers[i].p);
        free(in->layers[i].type);
    }
    free(in->layers);
    free(in->ftune_version);
    free(in->created);
    free(in->metrics);
    free(in->config);
    free(in->algo);
    free(in->optim_type);
    mfile_close(&in->mf);
}

static int gather_layer(info *in, hid_t g, ilayer *L, ft_err *err)
{
    int found;
    long long v;
    char what[256];
    int rc = ft_h5_get_str_attr(g, "type", &found, &L->type, err);
    if (!rc && (rc = get_i64(g, "trainable", &v, &found, err)) == 0)
        L->trainable = found ? (int)v : -1;
    if (!rc && (rc = get_i64(g, "frozen", &v, &found, err)) == 0)
        L->frozen = found ? (int)v : -1;
    if (!rc)
        rc = get_ints(g, "output_shape", L->out, FILE_MAX_DIMS, &L->out_rank, err);
    if (rc)
        return ft_err_prefix(err, "/model/%s", L->name);
    namelist nl;
    snprintf(what, sizeof what, "/model/%s", L->name);
    if ((rc = list_members(g, &nl, what, err)))
        return rc;
    L->p = calloc(nl.n ? nl.n : 1, sizeof *L->p);
    if (!L->p) {
        names_free(&nl);
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    for (size_t j = 0; j < nl.n && !rc; j++) {
        hid_t ds;
        snprintf(what, sizeof what, "/model/%s/%s", L->name, nl.v[j]);
        rc = open_dataset(g, nl.v[j], &ds, what, err);
        if (rc || ds < 0)
            continue;
        iparam *P = &L->p[L->np];
        rc = ds_info(ds, &P->d, what, err);
        if (!rc && (rc = get_i64(ds, "learnable", &v, &found, err)) != 0)
            ft_err_prefix(err, "%s", what);
        close_id(&ds);
        if (rc)
            break;
        P->learnable = found ? (int)v : -1;
        P->name = nl.v[j];
        nl.v[j] = NULL;
        L->np++;
        in->total += P->d.count;
        if (P->learnable != 0)
            in->learnable += P->d.count;
        if (P->learnable != 0 && L->trainable > 0)
            in->trainable += P->d.count;
    }
    names_free(&nl);
    return rc;
}

static int gather(info *in, const char *path, ft_err *err)
{
    memset(in, 0, sizeof *in);
    int rc = mfile_open(&in->mf, path, err);
    if (rc)
        return rc;
    mfile *mf = &in->mf;
    int found;
    rc = ft_h5_get_str_attr(mf->f, "ftune_version", &found, &in->ftune_version, err);
    if (!rc)
        rc = ft_h5_get_str_attr(mf->f, "created", &found, &in->created, err);
    if (!rc)
        rc = ft_h5_get_str_attr(mf->f, "metrics", &found, &in->metrics, err);
    if (!rc)
        rc = ft_h5_get_str_attr(mf->f, "config", &found, &in->config, err);
    if (!rc)
        rc = ft_h5_get_str_attr(mf->f, "param_checksum_algorithm", &found, &in->algo, err);
    if (!rc)
        rc = get_ints(mf->f, "input_shape", in->input, FILE_MAX_DIMS, &in->input_rank, err);
    if (!rc)
        rc = get_u64(mf->f, "param_checksum", &in->stored_sum, &in->has_sum, err);
    if (rc)
        return ft_err_prefix(err, "%s", path);

    in->layers = calloc(mf->norder ? mf->norder : 1, sizeof *in->layers);
    if (!in->layers)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    for (size_t i = 0; i < mf->norder && !rc; i++) {
        ilayer *L = &in->layers[i];
        L->name = mf->order[i];
        in->nlayers++;
        hid_t g = H5Gopen2(mf->model, L->name, H5P_DEFAULT);
        if (g < 0)
            rc = ft_h5_fail(err, FT_EINPUT, "cannot open /model/%s", L->name);
        else
            rc = gather_layer(in, g, L, err);
        close_id(&g);
    }
    if (!rc && in->has_sum)
        rc = file_checksum(mf, &in->sum, err);
    if (rc)
        return ft_err_prefix(err, "%s", path);

    hid_t og = H5Lexists(mf->f, "optimizer", H5P_DEFAULT) > 0
                   ? H5Gopen2(mf->f, "optimizer", H5P_DEFAULT)
                   : H5I_INVALID_HID;
    if (og >= 0) {
        in->has_optim = 1;
        rc = ft_h5_get_str_attr(og, "type", &found, &in->optim_type, err);
        if (!rc)
            rc = get_i64(og, "t", &in->optim_t, &found, err);
        close_id(&og);
        if (rc)
            return ft_err_prefix(err, "%s: /optimizer", path);
    }
    H5Eclear2(H5E_DEFAULT);
    if (mf->checkpoint) {
        if ((rc = load_train(mf, &in->st, err)))
            return rc;
        in->has_train = 1;
    }
    return FT_OK;
}

static int checksum_result(const info *in, ft_err *err)
{
    if (in->has_sum && in->sum != in->stored_sum)
        return ft_fail(err, FT_EINPUT, "%s: parameter checksum mismatch (file corrupted?)",
                       in->mf.path);
    return FT_OK;
}

static const char *lldims_str(const long long *v, int n, char *buf, size_t len)
{
    if (n == 0) {
        snprintf(buf, len, "?"); /* not recorded (a file from another tool) */
        return buf;
    }
    hsize_t d[FILE_MAX_DIMS];
    for (int k = 0; k < n; k++)
        d[k] = (hsize_t)v[k];
    return dims_str(d, n, buf, len);
}

static const char *layer_mode(const ilayer *L)
{
    if (L->np == 0)
        return "-";
    if (L->frozen > 0)
        return "frozen";
    return L->trainable > 0 ? "trainable" : "-";
}

static int str_width(const char *s, int w)
{
    int n = (int)strlen(s);
    return n > w ? n : w;
}

static size_t count_lines(const char *s)
{
    size_t lines = 0, len = strlen(s);
    for (size_t i = 0; i < len; i++)
        lines += s[i] == '\n';
    return lines + (len > 0 && s[len - 1] != '\n');
}

int ft_inspect(const char *path, void *fp, ft_err *err)
{
    FILE *f = fp;
    info in;
    int rc = gather(&in, path, err);
    if (rc) {
        info_free(&in);
        return rc;
    }
    char a[128], b[128];
    fprintf(f, "file            %s\n", path);
    fprintf(f, "format          %s, version %lld\n",
            in.mf.checkpoint ? FORMAT_CHECKPOINT : FORMAT_MODEL, in.mf.version);
    fprintf(f, "written by      ftune %s\n", in.ftune_version ? in.ftune_version : "?");
    fprintf(f, "created         %s\n", in.created ? in.created : "?");
    fprintf(f, "input shape     %s\n", lldims_str(in.input, in.input_rank, a, sizeof a));
    if (in.mf.adapter) {
        ft_base_ref ref;
        int found;
        if ((rc = ft_read_base_ref(path, &ref, &found, err)) != 0) {
            info_free(&in);
            return rc;
        }
        fprintf(f,
                "base model      %s (%s), fingerprint %016" PRIx64 " over %" PRIu64
                " values: a LoRA adapter file, only the tensors that train are stored here\n",
                ref.path, ref.resolved, ref.fingerprint, ref.values);
    }

    /* Layer table, one row per parameter. */
    int wn = 5, wt = 4, wo = 6, wm = 4, wp = 9, ws = 5;
    for (size_t i = 0; i < in.nlayers; i++) {
        const ilayer *L = &in.layers[i];
        wn = str_width(L->name, wn);
        wt = str_width(L->type ? L->type : "?", wt);
        wo = str_width(lldims_str(L->out, L->out_rank, a, sizeof a), wo);
        wm = str_width(layer_mode(L), wm);
        for (size_t j = 0; j < L->np; j++) {
            wp = str_width(L->p[j].name, wp);
            ws = str_width(dims_str(L->p[j].d.dims, L->p[j].d.rank, a, sizeof a), ws);
        }
    }
    fprintf(f, "\n%3s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %10s\n", "#", wn, "layer", wt, "type",
            wo, "output", wm, "mode", wp, "parameter", ws, "shape", "values");
    for (size_t i = 0; i < in.nlayers; i++) {
        const ilayer *L = &in.layers[i];
        fprintf(f, "%3zu  %-*s  %-*s  %-*s  ", i, wn, L->name, wt, L->type ? L->type : "?", wo,
                lldims_str(L->out, L->out_rank, a, sizeof a));
        if (L->np == 0)
            fprintf(f, "%s\n", layer_mode(L));
        else
            fprintf(f, "%-*s", wm, layer_mode(L));
        for (size_t j = 0; j < L->np; j++) {
            const iparam *P = &L->p[j];
            if (j > 0)
                fprintf(f, "%3s  %-*s  %-*s  %-*s  %-*s", "", wn, "", wt, "", wo, "", wm, "");
            fprintf(f, "  %-*s  %-*s  %10zu%s\n", wp, P->name, ws,
                    dims_str(P->d.dims, P->d.rank, b, sizeof b), P->d.count,
                    P->learnable == 0 ? "  (buffer)" : "");
        }
    }
    fprintf(f, "\nvalues          %llu (%.1f KiB as float32): %llu learnable, %llu trainable\n",
            in.total, (double)in.total * 4.0 / 1024.0, in.learnable, in.trainable);
    if (in.has_sum)
        fprintf(f, "checksum        %016" PRIx64 " (%s): %s\n", in.stored_sum,
                in.algo ? in.algo : CHECKSUM_NAME, in.sum == in.stored_sum ? "ok" : "MISMATCH");
    else
        fprintf(f, "checksum        none stored\n");
    if (in.has_optim)
        fprintf(f, "optimizer       %s, %lld steps taken\n", in.optim_type ? in.optim_type : "?",
                in.optim_t);
    if (in.has_train) {
        const ft_train_state *s = &in.st;
        fprintf(f,
                "training        step %ld, epoch %ld (%" PRIu64 " samples into it), %" PRIu64
                " samples seen, %d rank(s), seed %" PRIu64 "\n",
                s->step, s->epoch, s->epoch_pos, s->samples_seen, s->world_size, s->seed);
        if (isnan(s->best_metric))
            fprintf(f, "best metric     none yet\n");
        else
            fprintf(f, "best metric     %.6g at step %ld (last %.6g)\n", s->best_metric,
                    s->best_step, s->last_metric);
    }
    if (in.metrics)
        fprintf(f, "metrics         %s\n", in.metrics);
    if (in.config) {
        fprintf(f, "config          %zu lines (ftune inspect --config prints it)\n",
                count_lines(in.config));
    }
    rc = checksum_result(&in, err);
    info_free(&in);
    return rc;
}

static void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

static void json_dims(FILE *f, const hsize_t *d, int n)
{
    fputc('[', f);
    for (int k = 0; k < n; k++)
        fprintf(f, k ? ", %llu" : "%llu", (unsigned long long)d[k]);
    fputc(']', f);
}

static void json_lldims(FILE *f, const long long *d, int n)
{
    fputc('[', f);
    for (int k = 0; k < n; k++)
        fprintf(f, k ? ", %lld" : "%lld", d[k]);
    fputc(']', f);
}

int ft_inspect_json(const char *path, void *fp, ft_err *err)
{
    FILE *f = fp;
    info in;
    int rc = gather(&in, path, err);
    if (rc) {
        info_free(&in);
        return rc;
    }
    fputs("{\n  \"file\": ", f);
    json_str(f, path);
    fputs(",\n  \"format\": ", f);
    json_str(f, in.mf.checkpoint ? FORMAT_CHECKPOINT : FORMAT_MODEL);
    fprintf(f, ",\n  \"format_version\": %lld,\n  \"ftune_version\": ", in.mf.version);
    json_str(f, in.ftune_version);
    fputs(",\n  \"created\": ", f);
    json_str(f, in.created);
    if (in.mf.adapter) {
        ft_base_ref ref;
        int found;
        if ((rc = ft_read_base_ref(path, &ref, &found, err)) != 0) {
            info_free(&in);
            return rc;
        }
        fputs(",\n  \"lora_base\": {\"path\": ", f);
        json_str(f, ref.path);
        fputs(", \"resolved\": ", f);
        json_str(f, ref.resolved);
        fprintf(f, ", \"fingerprint\": \"%016" PRIx64 "\", \"values\": %" PRIu64 "}",
                ref.fingerprint, ref.values);
    }
    fputs(",\n  \"input_shape\": ", f);
    json_lldims(f, in.input, in.input_rank);
    fputs(",\n  \"layers\": [", f);
    for (size_t i = 0; i < in.nlayers; i++) {
        const ilayer *L = &in.layers[i];
        fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
        json_str(f, L->name);
        fputs(", \"type\": ", f);
        json_str(f, L->type);
        fprintf(f, ", \"trainable\": %s, \"frozen\": %s, \"output_shape\": ",
                L->trainable > 0 ? "true" : "false", L->frozen > 0 ? "true" : "false");
        json_lldims(f, L->out, L->out_rank);
        fputs(", \"params\": [", f);
        for (size_t j = 0; j < L->np; j++) {
            const iparam *P = &L->p[j];
            fputs(j ? ", {\"name\": " : "{\"name\": ", f);
            json_str(f, P->name);
            fputs(", \"shape\": ", f);
            json_dims(f, P->d.dims, P->d.rank);
            fprintf(f, ", \"count\": %zu, \"learnable\": %s}", P->d.count,
                    P->learnable == 0 ? "false" : "true");
        }
        fputs("]}", f);
    }
    fprintf(f,
            "\n  ],\n  \"values\": %llu,\n  \"learnable_values\": %llu,\n  "
            "\"trainable_values\": %llu,\n  \"param_checksum\": ",
            in.total, in.learnable, in.trainable);
    if (in.has_sum)
        fprintf(f, "\"%016" PRIx64 "\",\n  \"checksum_ok\": %s", in.stored_sum,
                in.sum == in.stored_sum ? "true" : "false");
    else
        fputs("null,\n  \"checksum_ok\": null", f);
    if (in.has_optim) {
        fputs(",\n  \"optimizer\": {\"type\": ", f);
        json_str(f, in.optim_type);
        fprintf(f, ", \"t\": %lld}", in.optim_t);
    }
    if (in.has_train) {
        const ft_train_state *s = &in.st;
        fprintf(f,
                ",\n  \"train\": {\"step\": %ld, \"epoch\": %ld, \"epoch_pos\": %" PRIu64
                ", \"samples_seen\": %" PRIu64 ", \"seed\": %" PRIu64
                ", \"world_size\": %d, \"best_metric\": ",
                s->step, s->epoch, s->epoch_pos, s->samples_seen, s->seed, s->world_size);
        json_num(f, s->best_metric);
        fprintf(f, ", \"best_step\": %ld, \"last_metric\": ", s->best_step);
        json_num(f, s->last_metric);
        fputc('}', f);
    }
    /* Stored as text: the file's content is not trusted to be valid JSON. */
    fputs(",\n  \"metrics_json\": ", f);
    json_str(f, in.metrics);
    fputs(",\n  \"config\": ", f);
    json_str(f, in.config);
    fputs("\n}\n", f);
    rc = checksum_result(&in, err);
    info_free(&in);
    return rc;
}
