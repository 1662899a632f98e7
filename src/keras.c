/* Keras HDF5 import (docs/import-export.md, "Keras").
 *
 * 1. The file: /model_weights (full model) or the root (weights-only) holds
 *    one group per layer, listed by the attribute layer_names (split into
 *    layer_names0, layer_names1, ... when large); each group lists its
 *    datasets in weight_names, in the order Keras created them.
 * 2. The architecture: model_config (JSON) of a Sequential model, or of a
 *    functional model that is one chain of layers, is walked with the shape
 *    of the data (Keras keeps images (H, W, C), ftune [C, H, W]); every
 *    Keras layer becomes one or two ftune layers (a Dense with activation=
 *    becomes dense + relu), and an ftune config is written from them. For a
 *    weights-only file the user gives the config.
 * 3. The weights: kernels are converted to ftune's (PyTorch's) layouts:
 *    dense (in, out) -> [out, in]; conv (kh, kw, in, out) -> [out, in, kh,
 *    kw]; the inputs of the first dense layer after a Flatten of an (H, W, C)
 *    map are reordered to ftune's (C, H, W) flatten order, so predictions do
 *    not change. Keras 1 'th' kernels (out, in, kh, kw) of the Theano backend
 *    are flipped (Theano convolves, ftune correlates).
 * Every dataset is checked (exists, float, expected shape, fully stored)
 * before the model is built, so a hostile file cannot cause a large
 * allocation. */
#include "ftune/keras.h"

#include <hdf5.h>
#include <libconfig.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/h5util.h"
#include "ftune/json.h"

#include "sbuf.h"

#define KMAX_NAMES 100000        /* entries of layer_names / weight_names */
#define KMAX_NAME_LEN 255        /* a Keras layer or weight name */
#define KMAX_DIM (1 << 24)       /* one input dimension, units, filters */
#define KMAX_FEATURES (1L << 28) /* values of one sample at any layer */
#define KMAX_WEIGHTS 4
#define KMAX_FILE_DIMS 8

static const char supported_types[] =
    "Dense, Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten, Dropout, "
    "BatchNormalization, Activation, ReLU, LeakyReLU, Softmax (as the last layer), InputLayer";

const char *ft_keras_supported_types(void)
{
    return supported_types;
}

void ft_keras_opts_default(ft_keras_opts *o)
{
    memset(o, 0, sizeof *o);
    o->flip = FT_KERAS_FLIP_AUTO;
    o->data_format = FT_KERAS_FORMAT_AUTO;
}

/* A float as the shortest decimal that reads back as the same float, with
 * a '.' so that libconfig reads a float. */
static const char *fmt_float(double v, char *buf, size_t len)
{
    float f = (float)v;
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, len, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f)
            break;
    }
    if (!strpbrk(buf, ".en")) {
        size_t n = strlen(buf);
        if (n + 2 < len)
            memcpy(buf + n, ".0", 3);
    }
    return buf;
}

/* ---- the HDF5 file -------------------------------------------------------- */

typedef struct kfile {
    const char *path;
    hid_t f;
    hid_t wroot; /* /model_weights or / */
    char **layers;
    size_t nlayers;
    char *keras_version, *backend, *model_config;
    int keras1; /* Keras 1: no keras_version (or 1.x); kernels may be 'th' */
    hid_t lapl; /* link access that refuses external links (sets elink) */
    int elink;
} kfile;

/* External links lead to other files, which a hostile file could name
 * freely: they are never followed. */
static herr_t deny_elink(const char *parent_file, const char *parent_group, const char *child_file,
                         const char *child_object, unsigned *acc_flags, hid_t fapl, void *user)
{
    *(int *)user = 1;
    return -1;
}

/* Opens the object at name below loc (NULL-safe: H5I_INVALID_HID when it
 * is absent); *external = 1 when a link on the way leads to another file. */
static hid_t kopen(const kfile *kf, hid_t loc, const char *name, int *external)
{
    hid_t id = H5I_INVALID_HID;
    int *flag = (int *)&kf->elink;
    *flag = 0;
    if (H5Lexists(loc, name, kf->lapl) > 0) {
        H5L_info_t info;
        if (H5Lget_info(loc, name, &info, kf->lapl) >= 0 && info.type == H5L_TYPE_EXTERNAL)
            *flag = 1;
        else
            id = H5Oopen(loc, name, kf->lapl);
    }
    H5Eclear2(H5E_DEFAULT);
    *external = *flag;
    return id;
}

static void kf_close(kfile *kf)
{
    if (kf->lapl >= 0)
        H5Pclose(kf->lapl);
    if (kf->wroot >= 0)
        H5Oclose(kf->wroot);
    if (kf->f >= 0)
        H5Fclose(kf->f);
    ft_h5_free_strings(kf->layers, kf->nlayers);
    free(kf->keras_version);
    free(kf->backend);
    free(kf->model_config);
    memset(kf, 0, sizeof *kf);
    kf->f = kf->wroot = kf->lapl = H5I_INVALID_HID;
}

/* One attribute holding a list of names. An empty array of any type is an
 * empty list (Keras 1 wrote float64 arrays of length 0 for layers without
 * weights). */
static int read_names_one(hid_t loc, const char *name, char ***v, size_t *n, ft_err *err)
{
    *v = NULL;
    *n = 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return ft_h5_fail(err, FT_EINPUT, "cannot open attribute \"%s\"", name);
    hid_t space = H5Aget_space(a);
    hssize_t pts = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (space >= 0)
        H5Sclose(space);
    H5Aclose(a);
    if (pts < 0 || rank < 0)
        return ft_h5_fail(err, FT_EINPUT, "cannot read the shape of attribute \"%s\"", name);
    if (pts == 0)
        return FT_OK;
    if (pts > KMAX_NAMES)
        return ft_fail(err, FT_EINPUT, "attribute \"%s\" has %lld entries (at most %d)", name,
                       (long long)pts, KMAX_NAMES);
    int found;
    int rc = ft_h5_get_strs_attr(loc, name, &found, v, n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < *n; i++)
        if (!(*v)[i][0] || strlen((*v)[i]) > KMAX_NAME_LEN) {
            ft_h5_free_strings(*v, *n);
            *v = NULL;
            *n = 0;
            return ft_fail(err, FT_EINPUT, "attribute \"%s\" entry %zu is empty or longer than %d",
                           name, i, KMAX_NAME_LEN);
        }
    return FT_OK;
}

/* Attribute base, or base0, base1, ... (Keras splits attributes larger than
 * the 64 KiB object header into numbered parts). *found = 0 when absent. */
static int read_names(hid_t loc, const char *base, int *found, char ***v, size_t *n, ft_err *err)
{
    *found = 0;
    *v = NULL;
    *n = 0;
    htri_t ex = H5Aexists(loc, base);
    if (ex < 0)
        return ft_h5_fail(err, FT_EINPUT, "cannot look up attribute \"%s\"", base);
    if (ex > 0) {
        *found = 1;
        return read_names_one(loc, base, v, n, err);
    }
    for (int part = 0;; part++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s%d", base, part);
        ex = H5Aexists(loc, nm);
        if (ex < 0)
            return ft_h5_fail(err, FT_EINPUT, "cannot look up attribute \"%s\"", nm);
        if (ex == 0)
            return FT_OK;
        *found = 1;
        char **pv;
        size_t pn;
        int rc = read_names_one(loc, nm, &pv, &pn, err);
        if (!rc && *n + pn > KMAX_NAMES)
            rc = ft_fail(err, FT_EINPUT, "attribute \"%s\" and its parts have more than %d entries",
                         base, KMAX_NAMES);
        char **grown = NULL;
        if (!rc && pn && !(grown = realloc(*v, (*n + pn) * sizeof *grown)))
            rc = ft_fail(err, FT_ERUNTIME, "out of memory reading attribute \"%s\"", nm);
        if (rc) {
            ft_h5_free_strings(pv, pn);
            ft_h5_free_strings(*v, *n);
            *v = NULL;
            *n = 0;
            return rc;
        }
        if (pn) {
            *v = grown;
            memcpy(*v + *n, pv, pn * sizeof *pv);
            *n += pn;
        }
        free(pv);
    }
}

static int get_str(hid_t loc, const char *name, char **out, ft_err *err)
{
    int found;
    *out = NULL;
    return ft_h5_get_str_attr(loc, name, &found, out, err);
}

/* The first bytes of a zip archive: a Keras 3 ".keras" file. */
static int is_zip(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    unsigned char b[4] = {0};
    size_t n = fread(b, 1, 4, fp);
    fclose(fp);
    return n == 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4;
}

static int kf_open(kfile *kf, const char *path, ft_err *err)
{
    memset(kf, 0, sizeof *kf);
    kf->f = kf->wroot = H5I_INVALID_HID;
    kf->path = path;
    ft_h5_quiet();
    kf->lapl = H5Pcreate(H5P_LINK_ACCESS);
    if (kf->lapl < 0 || H5Pset_elink_cb(kf->lapl, deny_elink, &kf->elink) < 0)
        return ft_h5_fail(err, FT_ERUNTIME, "%s: cannot set up HDF5 link access", path);
    if (is_zip(path))
        return ft_fail(err, FT_EINPUT,
                       "%s: a zip archive (a Keras 3 '.keras' file?); save the model in the HDF5 "
                       "format instead (model.save(\"model.h5\"))",
                       path);
    int rc = ft_h5_open_read(path, &kf->f, err);
    if (rc)
        return rc;
    if ((rc = get_str(kf->f, "model_config", &kf->model_config, err)) ||
        (rc = get_str(kf->f, "keras_version", &kf->keras_version, err)) ||
        (rc = get_str(kf->f, "backend", &kf->backend, err)))
        return ft_err_prefix(err, "%s", path);

    int found;
    char **names;
    size_t n;
    if ((rc = read_names(kf->f, "layer_names", &found, &names, &n, err)))
        return ft_err_prefix(err, "%s", path);
    if (found) {
        kf->wroot = H5Oopen(kf->f, "/", H5P_DEFAULT);
    } else {
        int ext;
        kf->wroot = kopen(kf, kf->f, "model_weights", &ext);
        if (kf->wroot < 0 || H5Iget_type(kf->wroot) != H5I_GROUP) {
            H5Eclear2(H5E_DEFAULT);
            if (H5Lexists(kf->f, "layers", H5P_DEFAULT) > 0 ||
                H5Lexists(kf->f, "_layer_checkpoint_dependencies", H5P_DEFAULT) > 0)
                return ft_fail(err, FT_EINPUT,
                               "%s: a Keras 3 weights file ('.weights.h5' layout), which ftune "
                               "cannot read; save with model.save(\"model.h5\") instead",
                               path);
            H5Eclear2(H5E_DEFAULT);
            return ft_fail(err, FT_EINPUT,
                           "%s: not a Keras HDF5 file (no attribute layer_names at the root or "
                           "in /model_weights)",
                           path);
        }
        if ((rc = read_names(kf->wroot, "layer_names", &found, &names, &n, err)))
            return ft_err_prefix(err, "%s: /model_weights", path);
        if (!found)
            return ft_fail(err, FT_EINPUT, "%s: /model_weights has no attribute layer_names", path);
        if (!kf->keras_version &&
            (rc = get_str(kf->wroot, "keras_version", &kf->keras_version, err)))
            return ft_err_prefix(err, "%s", path);
        if (!kf->backend && (rc = get_str(kf->wroot, "backend", &kf->backend, err)))
            return ft_err_prefix(err, "%s", path);
    }
    kf->layers = names;
    kf->nlayers = n;
    kf->keras1 = !kf->keras_version || kf->keras_version[0] == '1';
    return FT_OK;
}

/* The group of a Keras layer and its weight names. *g < 0 when the file has
 * no group for it. */
static int layer_weights(const kfile *kf, const char *layer, hid_t *g, char ***wn, size_t *n,
                         ft_err *err)
{
    *g = H5I_INVALID_HID;
    *wn = NULL;
    *n = 0;
    int ext;
    *g = kopen(kf, kf->wroot, layer, &ext);
    if (*g >= 0 && H5Iget_type(*g) != H5I_GROUP) {
        H5Oclose(*g);
        *g = H5I_INVALID_HID;
    }
    if (ext)
        return ft_fail(err, FT_EINPUT,
                       "%s: layer '%s' is a link to another file, which ftune does not follow",
                       kf->path, layer);
    if (*g < 0)
        return FT_OK;
    int found;
    int rc = read_names(*g, "weight_names", &found, wn, n, err);
    if (rc) {
        H5Oclose(*g);
        *g = H5I_INVALID_HID;
        return ft_err_prefix(err, "%s: layer '%s'", kf->path, layer);
    }
    return FT_OK;
}

/* Number of weights a Keras layer has in the file (0 when it has no group). */
static int layer_weight_count(const kfile *kf, const char *layer, size_t *count, ft_err *err)
{
    hid_t g;
    char **wn;
    int rc = layer_weights(kf, layer, &g, &wn, count, err);
    if (rc)
        return rc;
    if (g >= 0)
        H5Oclose(g);
    ft_h5_free_strings(wn, *count);
    return FT_OK;
}

/* ---- the Keras layers (model_config) ---------------------------------------- */

enum {
    KL_INPUT = 1,
    KL_DENSE,
    KL_CONV,
    KL_MAXPOOL,
    KL_AVGPOOL,
    KL_GAP,
    KL_FLATTEN,
    KL_DROPOUT,
    KL_BN,
    KL_ACT,
    KL_RELU,
    KL_LEAKY,
    KL_SOFTMAX
};

static const struct {
    const char *cls;
    int kind;
} kclasses[] = {
    {"InputLayer", KL_INPUT},
    {"Dense", KL_DENSE},
    {"Conv2D", KL_CONV},
    {"Convolution2D", KL_CONV},
    {"MaxPooling2D", KL_MAXPOOL},
    {"MaxPool2D", KL_MAXPOOL},
    {"AveragePooling2D", KL_AVGPOOL},
    {"AvgPool2D", KL_AVGPOOL},
    {"GlobalAveragePooling2D", KL_GAP},
    {"GlobalAvgPool2D", KL_GAP},
    {"Flatten", KL_FLATTEN},
    {"Dropout", KL_DROPOUT},
    {"BatchNormalization", KL_BN},
    {"BatchNormalizationV1", KL_BN},
    {"BatchNormalizationV2", KL_BN},
    {"Activation", KL_ACT},
    {"ReLU", KL_RELU},
    {"LeakyReLU", KL_LEAKY},
    {"Softmax", KL_SOFTMAX},
};

typedef struct klayer {
    char name[KMAX_NAME_LEN + 1];
    char cls[64];
    int kind;
    int units;    /* Dense units, Conv2D filters */
    int kh, kw;   /* kernel or pool size */
    int sh, sw;   /* strides */
    int same;     /* padding "same" */
    int bias;     /* use_bias */
    int cf;       /* data format: -1 unknown, 0 channels_last, 1 channels_first */
    char act[32]; /* activation= ("linear" when none) */
    double rate;  /* Dropout */
    double eps, momentum;
    int center, scale, axis;
    double slope; /* LeakyReLU, ReLU negative_slope */
    int in_rank;  /* batch input shape without the batch dimension, when given */
    long in_dims[4];
} klayer;

typedef struct kctx {
    const char *path;
    ft_err *err;
    ft_sbuf notes;
} kctx;

static int lfail(kctx *k, const klayer *l, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int lfail(kctx *k, const klayer *l, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (l)
        return ft_fail(k->err, FT_EINPUT, "%s: layer '%s' (%s): %s", k->path, l->name, l->cls, msg);
    return ft_fail(k->err, FT_EINPUT, "%s: %s", k->path, msg);
}

/* An integer member in [lo, hi]; dflt when absent or null. */
static int jint(kctx *k, const klayer *l, const ft_json *o, const char *key, long lo, long hi,
                long dflt, long *out)
{
    const ft_json *v = ft_json_get(o, key);
    *out = dflt;
    if (!v || ft_json_is(v, FT_JSON_NULL))
        return FT_OK;
    int64_t i;
    if (!ft_json_int64(v, &i))
        return lfail(k, l, "%s must be an integer, got %s", key, ft_json_type_name(v->type));
    if (i < lo || i > hi)
        return lfail(k, l, "%s = %lld is out of range [%ld, %ld]", key, (long long)i, lo, hi);
    *out = (long)i;
    return FT_OK;
}

static int jnum(kctx *k, const klayer *l, const ft_json *o, const char *key, double dflt,
                double *out)
{
    const ft_json *v = ft_json_get(o, key);
    *out = dflt;
    if (!v || ft_json_is(v, FT_JSON_NULL))
        return FT_OK;
    if (!ft_json_double(v, out) || !isfinite(*out))
        return lfail(k, l, "%s must be a number, got %s", key, ft_json_type_name(v->type));
    return FT_OK;
}

static int jbool(kctx *k, const klayer *l, const ft_json *o, const char *key, int dflt, int *out)
{
    const ft_json *v = ft_json_get(o, key);
    *out = dflt;
    if (!v || ft_json_is(v, FT_JSON_NULL))
        return FT_OK;
    if (!ft_json_bool(v, out))
        return lfail(k, l, "%s must be true or false, got %s", key, ft_json_type_name(v->type));
    return FT_OK;
}

static int jstr(kctx *k, const klayer *l, const ft_json *o, const char *key, const char *dflt,
                char *out, size_t len)
{
    const ft_json *v = ft_json_get(o, key);
    snprintf(out, len, "%s", dflt);
    if (!v || ft_json_is(v, FT_JSON_NULL))
        return FT_OK;
    const char *s = ft_json_string(v);
    if (!s)
        return lfail(k, l, "%s must be a string, got %s", key, ft_json_type_name(v->type));
    if (strlen(s) >= len)
        return lfail(k, l, "%s is too long", key);
    snprintf(out, len, "%s", s);
    return FT_OK;
}

/* An int or a pair [a, b] (kernel_size, strides, pool_size); keys are tried
 * in order (Keras 2 name, Keras 1 name). */
static int jpair(kctx *k, const klayer *l, const ft_json *o, const char *key, long dflt, int *a,
                 int *b)
{
    const ft_json *v = ft_json_get(o, key);
    *a = *b = (int)dflt;
    if (!v || ft_json_is(v, FT_JSON_NULL))
        return FT_OK;
    int64_t x, y;
    if (ft_json_int64(v, &x)) {
        y = x;
    } else if (ft_json_is(v, FT_JSON_ARRAY) && ft_json_len(v) == 2 &&
               ft_json_int64(ft_json_at(v, 0), &x) && ft_json_int64(ft_json_at(v, 1), &y)) {
    } else {
        return lfail(k, l, "%s must be an integer or a pair of integers", key);
    }
    if (x < 1 || y < 1 || x > KMAX_DIM || y > KMAX_DIM)
        return lfail(k, l, "%s = [%lld, %lld] is out of range", key, (long long)x, (long long)y);
    *a = (int)x;
    *b = (int)y;
    return FT_OK;
}

/* data_format (Keras 2) or dim_ordering (Keras 1). */
static int jformat(kctx *k, const klayer *l, const ft_json *o, int *cf)
{
    char s[32];
    *cf = -1;
    int rc = jstr(k, l, o, "data_format", "", s, sizeof s);
    if (!rc && !s[0])
        rc = jstr(k, l, o, "dim_ordering", "", s, sizeof s);
    if (rc)
        return rc;
    if (!strcmp(s, "channels_last") || !strcmp(s, "tf"))
        *cf = 0;
    else if (!strcmp(s, "channels_first") || !strcmp(s, "th"))
        *cf = 1;
    else if (s[0] && strcmp(s, "default"))
        return lfail(k, l, "unknown data_format '%s'", s);
    return FT_OK;
}

static int jpadding(kctx *k, const klayer *l, const ft_json *o, int *same)
{
    char s[32];
    int rc = jstr(k, l, o, "padding", "", s, sizeof s);
    if (!rc && !s[0])
        rc = jstr(k, l, o, "border_mode", "valid", s, sizeof s);
    if (rc)
        return rc;
    for (char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (!strcmp(s, "valid"))
        *same = 0;
    else if (!strcmp(s, "same"))
        *same = 1;
    else
        return lfail(k, l, "padding '%s' is not supported (valid or same)", s);
    return FT_OK;
}

/* batch_input_shape (Keras 1/2), batch_shape (Keras 3) or input_shape
 * (without the batch dimension). */
static int jinput(kctx *k, klayer *l, const ft_json *c)
{
    const ft_json *v = ft_json_get(c, "batch_input_shape");
    int skip = 1;
    if (!v)
        v = ft_json_get(c, "batch_shape");
    if (!v) {
        v = ft_json_get(c, "input_shape");
        skip = 0;
    }
    if (!v || ft_json_is(v, FT_JSON_NULL))
        return FT_OK;
    if (!ft_json_is(v, FT_JSON_ARRAY) || ft_json_len(v) < (size_t)skip + 1 ||
        ft_json_len(v) > (size_t)skip + 3)
        return lfail(k, l, "the input shape must have 1 to 3 dimensions besides the batch");
    l->in_rank = (int)ft_json_len(v) - skip;
    for (int i = 0; i < l->in_rank; i++) {
        int64_t d;
        if (!ft_json_int64(ft_json_at(v, (size_t)(i + skip)), &d))
            return lfail(k, l,
                         "input dimension %d is not fixed (null): ftune needs a fixed "
                         "per-sample input shape",
                         i + 1);
        if (d < 1 || d > KMAX_DIM)
            return lfail(k, l, "input dimension %d = %lld is out of range", i + 1, (long long)d);
        l->in_dims[i] = (long)d;
    }
    return FT_OK;
}

static int parse_layer(kctx *k, const ft_json *lj, size_t index, klayer *l)
{
    memset(l, 0, sizeof *l);
    const char *cls = ft_json_get_string(lj, "class_name", NULL);
    const ft_json *c = ft_json_get(lj, "config");
    if (!cls || !ft_json_is(c, FT_JSON_OBJECT))
        return ft_fail(k->err, FT_EINPUT,
                       "%s: model_config: layer %zu has no class_name or no config object", k->path,
                       index);
    snprintf(l->cls, sizeof l->cls, "%s", cls);
    const char *name = ft_json_get_string(c, "name", NULL);
    if (!name || !name[0] || strlen(name) > KMAX_NAME_LEN)
        return ft_fail(k->err, FT_EINPUT, "%s: model_config: layer %zu (%s) has no usable name",
                       k->path, index, l->cls);
    snprintf(l->name, sizeof l->name, "%s", name);
    for (size_t i = 0; i < sizeof kclasses / sizeof kclasses[0]; i++)
        if (!strcmp(cls, kclasses[i].cls))
            l->kind = kclasses[i].kind;
    if (!l->kind) {
        int nested =
            !strcmp(cls, "Sequential") || !strcmp(cls, "Model") || !strcmp(cls, "Functional");
        return lfail(k, l, "ftune cannot import Keras layers of type %s%s (supported: %s)", cls,
                     nested ? " (a nested model)" : "", supported_types);
    }
    int rc = jinput(k, l, c);
    long v = 0;
    l->bias = 1;
    snprintf(l->act, sizeof l->act, "linear");
    l->sh = l->sw = 1;
    switch (l->kind) {
    case KL_DENSE:
        if (!ft_json_get(c, "units") && ft_json_get(c, "output_dim"))
            rc = rc ? rc : jint(k, l, c, "output_dim", 1, KMAX_DIM, 0, &v);
        else
            rc = rc ? rc : jint(k, l, c, "units", 1, KMAX_DIM, 0, &v);
        l->units = (int)v;
        if (!rc && !l->units)
            rc = lfail(k, l, "units is missing");
        rc =
            rc ? rc : jbool(k, l, c, ft_json_get(c, "use_bias") ? "use_bias" : "bias", 1, &l->bias);
        rc = rc ? rc : jstr(k, l, c, "activation", "linear", l->act, sizeof l->act);
        break;
    case KL_CONV: {
        rc = rc ? rc
                : jint(k, l, c, ft_json_get(c, "filters") ? "filters" : "nb_filter", 1, KMAX_DIM, 0,
                       &v);
        l->units = (int)v;
        if (!rc && !l->units)
            rc = lfail(k, l, "filters is missing");
        if (!rc && ft_json_get(c, "kernel_size")) {
            rc = jpair(k, l, c, "kernel_size", 0, &l->kh, &l->kw);
        } else if (!rc) {
            long r = 0, cc = 0;
            rc = jint(k, l, c, "nb_row", 1, KMAX_DIM, 0, &r);
            rc = rc ? rc : jint(k, l, c, "nb_col", 1, KMAX_DIM, 0, &cc);
            l->kh = (int)r;
            l->kw = (int)cc;
        }
        if (!rc && (!l->kh || !l->kw))
            rc = lfail(k, l, "kernel_size is missing");
        rc = rc ? rc
                : jpair(k, l, c, ft_json_get(c, "strides") ? "strides" : "subsample", 1, &l->sh,
                        &l->sw);
        rc = rc ? rc : jpadding(k, l, c, &l->same);
        rc = rc ? rc : jformat(k, l, c, &l->cf);
        int dh, dw;
        rc = rc ? rc : jpair(k, l, c, "dilation_rate", 1, &dh, &dw);
        if (!rc && (dh != 1 || dw != 1))
            rc = lfail(k, l,
                       "dilation_rate [%d, %d] is not supported (ftune's conv2d has no dilation)",
                       dh, dw);
        rc = rc ? rc : jint(k, l, c, "groups", 1, KMAX_DIM, 1, &v);
        if (!rc && v != 1)
            rc = lfail(k, l, "groups = %ld is not supported", v);
        rc =
            rc ? rc : jbool(k, l, c, ft_json_get(c, "use_bias") ? "use_bias" : "bias", 1, &l->bias);
        rc = rc ? rc : jstr(k, l, c, "activation", "linear", l->act, sizeof l->act);
        break;
    }
    case KL_MAXPOOL:
    case KL_AVGPOOL:
        rc = rc ? rc : jpair(k, l, c, "pool_size", 2, &l->kh, &l->kw);
        l->sh = l->kh;
        l->sw = l->kw;
        rc = rc ? rc : jpair(k, l, c, "strides", l->kh, &l->sh, &l->sw);
        if (!rc && !ft_json_get(c, "strides"))
            l->sw = l->kw;
        rc = rc ? rc : jpadding(k, l, c, &l->same);
        rc = rc ? rc : jformat(k, l, c, &l->cf);
        break;
    case KL_GAP: {
        int keep;
        rc = rc ? rc : jformat(k, l, c, &l->cf);
        rc = rc ? rc : jbool(k, l, c, "keepdims", 0, &keep);
        if (!rc && keep)
            rc = lfail(k, l, "keepdims = true is not supported");
        break;
    }
    case KL_FLATTEN: rc = rc ? rc : jformat(k, l, c, &l->cf); break;
    case KL_DROPOUT:
        rc = rc ? rc : jnum(k, l, c, ft_json_get(c, "rate") ? "rate" : "p", 0.0, &l->rate);
        if (!rc && (l->rate < 0 || l->rate >= 1))
            rc = lfail(k, l, "rate %g is out of range [0, 1)", l->rate);
        if (!rc && ft_json_get(c, "noise_shape") &&
            !ft_json_is(ft_json_get(c, "noise_shape"), FT_JSON_NULL))
            rc = lfail(k, l, "noise_shape is not supported");
        break;
    case KL_BN: {
        const ft_json *ax = ft_json_get(c, "axis");
        if (ft_json_is(ax, FT_JSON_ARRAY) && ft_json_len(ax) == 1)
            ax = ft_json_at(ax, 0);
        int64_t a = -1;
        if (ax && !ft_json_int64(ax, &a))
            rc = rc ? rc : lfail(k, l, "axis must be one integer");
        l->axis = (int)(a < -8 ? -8 : a > 8 ? 8 : a);
        rc = rc ? rc : jnum(k, l, c, "epsilon", 1e-3, &l->eps);
        rc = rc ? rc : jnum(k, l, c, "momentum", 0.99, &l->momentum);
        rc = rc ? rc : jbool(k, l, c, "center", 1, &l->center);
        rc = rc ? rc : jbool(k, l, c, "scale", 1, &l->scale);
        rc = rc ? rc : jint(k, l, c, "mode", 0, 2, 0, &v);
        if (!rc && v != 0)
            rc = lfail(k, l, "Keras 1 mode = %ld is not supported (only mode 0)", v);
        if (!rc && (l->eps <= 0 || l->momentum < 0 || l->momentum > 1))
            rc = lfail(k, l, "epsilon %g or momentum %g is out of range", l->eps, l->momentum);
        break;
    }
    case KL_ACT: rc = rc ? rc : jstr(k, l, c, "activation", "linear", l->act, sizeof l->act); break;
    case KL_RELU: {
        double maxv, thr;
        rc = rc ? rc : jnum(k, l, c, "max_value", 0.0, &maxv);
        rc = rc ? rc : jnum(k, l, c, "threshold", 0.0, &thr);
        rc = rc ? rc : jnum(k, l, c, "negative_slope", 0.0, &l->slope);
        if (!rc && (maxv != 0.0 || thr != 0.0))
            rc = lfail(k, l, "max_value and threshold are not supported");
        snprintf(l->act, sizeof l->act, "%s", l->slope > 0 ? "leaky_relu" : "relu");
        break;
    }
    case KL_LEAKY:
        rc = rc ? rc
                : jnum(k, l, c, ft_json_get(c, "negative_slope") ? "negative_slope" : "alpha", 0.3,
                       &l->slope);
        snprintf(l->act, sizeof l->act, "leaky_relu");
        break;
    case KL_SOFTMAX: snprintf(l->act, sizeof l->act, "softmax"); break;
    default: break;
    }
    return rc;
}

/* Names of the layers a functional-model layer takes its input from, in
 * Keras 2 ([[["prev", 0, 0, {}]]]) or Keras 3 (keras_history) form. */
static void inbound_names(const ft_json *v, const char **names, int *n, int max)
{
    if (!v)
        return;
    if (ft_json_is(v, FT_JSON_OBJECT)) {
        const ft_json *h = ft_json_get(v, "keras_history");
        if (h) {
            inbound_names(h, names, n, max);
            return;
        }
        for (size_t i = 0; i < ft_json_len(v); i++)
            inbound_names(ft_json_at(v, i), names, n, max);
        return;
    }
    if (!ft_json_is(v, FT_JSON_ARRAY))
        return;
    if (ft_json_len(v) >= 2 && ft_json_string(ft_json_at(v, 0)) &&
        ft_json_is(ft_json_at(v, 1), FT_JSON_NUMBER)) {
        if (*n < max)
            names[*n] = ft_json_string(ft_json_at(v, 0));
        (*n)++;
        return;
    }
    for (size_t i = 0; i < ft_json_len(v); i++)
        inbound_names(ft_json_at(v, i), names, n, max);
}

typedef struct kmodel {
    klayer *layers;
    int n;
    char cls[32];
    char name[128];
} kmodel;

static int parse_model_config(kctx *k, const char *text, kmodel *km)
{
    memset(km, 0, sizeof *km);
    ft_json *root = NULL;
    int rc = ft_json_parse(text, strlen(text), &root, k->err);
    if (rc)
        return ft_err_prefix(k->err, "%s: model_config", k->path);
    const char *cls = ft_json_get_string(root, "class_name", "");
    const ft_json *cfg = ft_json_get(root, "config");
    const ft_json *layers = NULL;
    int functional = 0;
    snprintf(km->cls, sizeof km->cls, "%s", cls);
    if (!strcmp(cls, "Sequential")) {
        layers = ft_json_is(cfg, FT_JSON_ARRAY) ? cfg : ft_json_get(cfg, "layers");
    } else if (!strcmp(cls, "Model") || !strcmp(cls, "Functional")) {
        layers = ft_json_get(cfg, "layers");
        functional = 1;
    } else {
        rc = ft_fail(k->err, FT_EINPUT,
                     "%s: model_config describes a '%s'; ftune imports Sequential models and "
                     "functional models that are a single chain of layers",
                     k->path, cls[0] ? cls : "(no class_name)");
        goto out;
    }
    snprintf(km->name, sizeof km->name, "%s",
             ft_json_is(cfg, FT_JSON_OBJECT) ? ft_json_get_string(cfg, "name", "") : "");
    if (!ft_json_is(layers, FT_JSON_ARRAY) || ft_json_len(layers) == 0) {
        rc = ft_fail(k->err, FT_EINPUT, "%s: model_config has no list of layers", k->path);
        goto out;
    }
    size_t n = ft_json_len(layers);
    if (n > FT_MAX_LAYERS) {
        rc = ft_fail(k->err, FT_EINPUT, "%s: model_config has %zu layers (ftune allows %d)",
                     k->path, n, FT_MAX_LAYERS);
        goto out;
    }
    km->layers = ft_calloc(n, sizeof *km->layers, k->err);
    if (!km->layers) {
        rc = k->err->code;
        goto out;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        rc = parse_layer(k, ft_json_at(layers, i), i, &km->layers[i]);
        km->n = (int)i + 1;
        if (rc || !functional || i == 0)
            continue;
        const char *in[4];
        int nin = 0;
        inbound_names(ft_json_get(ft_json_at(layers, i), "inbound_nodes"), in, &nin, 4);
        if (nin != 1 || strcmp(in[0], km->layers[i - 1].name) != 0)
            rc = lfail(k, &km->layers[i],
                       "the functional model is not a single chain: this layer's input is not "
                       "just layer '%s' (ftune models are sequential)",
                       km->layers[i - 1].name);
    }
    for (int i = 0; i < km->n && !rc; i++)
        for (int j = 0; j < i && !rc; j++)
            if (!strcmp(km->layers[i].name, km->layers[j].name))
                rc = lfail(k, &km->layers[i], "two layers have this name");
out:
    ft_json_free(root);
    return rc;
}

/* ---- the ftune model planned from the Keras layers --------------------------- */

enum { B_DENSE = 1, B_CONV, B_BN };

/* How one ftune layer with parameters is filled from one Keras layer. */
typedef struct kbind {
    int layer; /* ftune layer index */
    char kname[KMAX_NAME_LEN + 1];
    char kcls[64];
    int kind;
    int out, in, kh, kw;  /* dense [out, in]; conv [out, in, kh, kw]; bn: out = channels */
    int bias;             /* dense/conv: has a bias */
    int center, scale;    /* bn: Keras beta, gamma present */
    int affine;           /* bn: ftune weight/bias present */
    int perm, ph, pw, pc; /* inputs flattened from a Keras (ph, pw, pc) map */
    int th;               /* conv kernel stored (out, in, kh, kw) (Keras 1 'th') */
    int flip;             /* flip conv kernels spatially */
} kbind;

typedef struct olayer {
    char name[FT_NAME_MAX];
    char type[24];
    char keys[200];
    char comment[240];
} olayer;

typedef struct plan {
    ft_shape input;
    char input_comment[300];
    olayer *ol;
    int nol;
    kbind *binds;
    int nbinds;
    int cf; /* the model's data format */
    int softmax_dropped;
} plan;

static void plan_free(plan *p)
{
    free(p->ol);
    free(p->binds);
    memset(p, 0, sizeof *p);
}

/* A valid, unique ftune layer name from a Keras name plus a suffix. */
static void make_name(const plan *p, const char *base, const char *suffix, char *out)
{
    char s[FT_NAME_MAX];
    size_t keep = FT_NAME_MAX - 1 - strlen(suffix) - 6;
    size_t j = 0;
    for (size_t i = 0; base[i] && j < keep; i++) {
        char ch = base[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '-' || ch == '.';
        s[j++] = ok ? ch : '_';
    }
    s[j] = 0;
    snprintf(out, FT_NAME_MAX, "%s%s", s, suffix);
    for (int dup = 2; dup < 10000; dup++) {
        int taken = 0;
        for (int i = 0; i < p->nol && !taken; i++)
            taken = !strcmp(p->ol[i].name, out);
        if (!taken)
            return;
        char tmp[FT_NAME_MAX + 64];
        snprintf(tmp, sizeof tmp, "%s%s_%d", s, suffix, dup);
        size_t len = strlen(tmp) < FT_NAME_MAX - 1 ? strlen(tmp) : FT_NAME_MAX - 1;
        memcpy(out, tmp, len);
        out[len] = 0;
    }
}

static olayer *add_ol(kctx *k, plan *p, const char *base, const char *suffix, const char *type)
{
    if (p->nol >= FT_MAX_LAYERS) {
        ft_fail(k->err, FT_EINPUT, "%s: the model needs more than %d ftune layers", k->path,
                FT_MAX_LAYERS);
        return NULL;
    }
    olayer *o = &p->ol[p->nol];
    memset(o, 0, sizeof *o);
    make_name(p, base, suffix, o->name);
    snprintf(o->type, sizeof o->type, "%s", type);
    p->nol++;
    return o;
}

/* An activation= of a Keras layer (or an Activation layer) as an ftune
 * layer. last: the Keras layer is the model's last. */
static int add_activation(kctx *k, plan *p, const klayer *l, int last, int own_layer)
{
    const char *a = l->act;
    const char *base = l->name, *suffix = "";
    char sfx[40];
    if (!own_layer) {
        snprintf(sfx, sizeof sfx, "_%s", a);
        suffix = sfx;
    }
    if (!strcmp(a, "linear") || !a[0])
        return FT_OK;
    if (!strcmp(a, "softmax")) {
        if (!last)
            return lfail(k, l,
                         "activation 'softmax' before the last layer is not supported (ftune "
                         "applies softmax only in its loss)");
        p->softmax_dropped = 1;
        ft_sb_printf(&k->notes,
                     "layer '%s': the Keras softmax is left out: ftune's loss applies softmax to "
                     "the last layer's outputs (predictions are unchanged)\n",
                     l->name);
        return FT_OK;
    }
    olayer *o = NULL;
    char buf[32];
    if (!strcmp(a, "relu") || !strcmp(a, "tanh") || !strcmp(a, "sigmoid")) {
        o = add_ol(k, p, base, suffix, a);
    } else if (!strcmp(a, "gelu")) {
        o = add_ol(k, p, base, suffix, "gelu");
        if (o)
            snprintf(o->keys, sizeof o->keys, "approximate = \"none\";");
    } else if (!strcmp(a, "leaky_relu")) {
        o = add_ol(k, p, base, suffix, "leaky_relu");
        double slope = l->kind == KL_LEAKY || l->kind == KL_RELU ? l->slope : 0.2;
        if (o)
            snprintf(o->keys, sizeof o->keys, "slope = %s;", fmt_float(slope, buf, sizeof buf));
    } else {
        return lfail(k, l,
                     "activation '%s' is not supported (relu, tanh, sigmoid, gelu, leaky_relu, "
                     "linear, and softmax on the last layer are)",
                     a);
    }
    return o ? FT_OK : k->err->code;
}

/* Symmetric padding that gives Keras' "same" output size; -1 when Keras
 * pads unevenly (more after than before). */
static int same_padding(int in, int k, int s, int *out)
{
    int o = (in + s - 1) / s;
    long total = (long)(o - 1) * s + k - in;
    if (total < 0)
        total = 0;
    *out = o;
    if (total % 2)
        return -1;
    return (int)(total / 2);
}

static int plan_spatial(kctx *k, const klayer *l, int H, int W, int *pad, int *oh, int *ow)
{
    const char *what = l->kind == KL_CONV ? "kernel_size" : "pool_size";
    if (l->kh != l->kw)
        return lfail(k, l, "%s [%d, %d] is not square (ftune's layers use square windows)", what,
                     l->kh, l->kw);
    if (l->sh != l->sw)
        return lfail(k, l, "strides [%d, %d] differ (ftune's layers use one stride)", l->sh, l->sw);
    int kk = l->kh, s = l->sh;
    *pad = 0;
    if (l->same) {
        int p1, p2, o1, o2;
        p1 = same_padding(H, kk, s, &o1);
        p2 = same_padding(W, kk, s, &o2);
        if (p1 < 0 || p2 < 0 || p1 != p2)
            return lfail(k, l,
                         "padding 'same' with a %dx%d window and stride %d on a %dx%d input needs "
                         "uneven padding (more after than before), which ftune cannot express",
                         kk, kk, s, H, W);
        *pad = p1;
    }
    if (H + 2 * *pad < kk || W + 2 * *pad < kk)
        return lfail(k, l, "the %dx%d window does not fit the %dx%d input", kk, kk, H, W);
    *oh = (H + 2 * *pad - kk) / s + 1;
    *ow = (W + 2 * *pad - kk) / s + 1;
    return FT_OK;
}

static kbind *add_bind(plan *p, const klayer *l, int kind)
{
    kbind *b = &p->binds[p->nbinds++];
    memset(b, 0, sizeof *b);
    b->layer = p->nol - 1;
    b->kind = kind;
    snprintf(b->kname, sizeof b->kname, "%s", l->name);
    snprintf(b->kcls, sizeof b->kcls, "%s", l->cls);
    return b;
}

static int make_plan(kctx *k, const kmodel *km, int keras1, plan *p)
{
    memset(p, 0, sizeof *p);
    p->ol = ft_calloc(FT_MAX_LAYERS, sizeof *p->ol, k->err);
    p->binds = ft_calloc((size_t)km->n + 1, sizeof *p->binds, k->err);
    if (!p->ol || !p->binds)
        return k->err->code;

    /* data format: the first layer that says */
    p->cf = 0;
    for (int i = 0; i < km->n; i++)
        if (km->layers[i].cf >= 0) {
            p->cf = km->layers[i].cf;
            break;
        }
    /* input shape: the first layer (or the InputLayer) */
    const klayer *first = &km->layers[0];
    if (!first->in_rank)
        return lfail(k, first,
                     "model_config gives no input shape (batch_input_shape) for the first "
                     "layer");
    for (int i = 1; i < km->n; i++)
        if (km->layers[i].kind == KL_INPUT)
            return lfail(k, &km->layers[i], "an InputLayer is only supported as the first layer");
    int rank; /* 3: [C, H, W]; 1: [F] */
    long C = 1, H = 1, W = 1, F = 0;
    char dims[96];
    if (first->in_rank == 1) {
        rank = 1;
        F = first->in_dims[0];
        snprintf(dims, sizeof dims, "[null, %ld]", F);
    } else if (first->in_rank == 2) {
        rank = 3;
        H = first->in_dims[0];
        W = first->in_dims[1];
        snprintf(dims, sizeof dims, "[null, %ld, %ld]", H, W);
    } else {
        rank = 3;
        if (p->cf) {
            C = first->in_dims[0];
            H = first->in_dims[1];
            W = first->in_dims[2];
        } else {
            H = first->in_dims[0];
            W = first->in_dims[1];
            C = first->in_dims[2];
        }
        snprintf(dims, sizeof dims, "[null, %ld, %ld, %ld]", first->in_dims[0], first->in_dims[1],
                 first->in_dims[2]);
    }
    if (rank == 3 && C * H * W > KMAX_FEATURES)
        return lfail(k, first, "the input %s is too large", dims);
    if (rank == 3) {
        p->input = ft_shape3((int)C, (int)H, (int)W);
        snprintf(p->input_comment, sizeof p->input_comment,
                 "Keras input %s (%s) -> ftune [channels, height, width].", dims,
                 first->in_rank == 2 ? "height, width"
                 : p->cf             ? "channels_first: channels, height, width"
                                     : "channels_last: height, width, channels");
    } else {
        p->input = ft_shape1((int)F);
        snprintf(p->input_comment, sizeof p->input_comment, "Keras input %s (features).", dims);
    }

    int pend = 0, ph = 0, pw = 0, pc = 0; /* inputs flattened from an (H, W, C) map */
    char buf[32], buf2[32];
    for (int i = 0; i < km->n; i++) {
        const klayer *l = &km->layers[i];
        int last = i == km->n - 1;
        olayer *o = NULL;
        kbind *b;
        int pad, oh, ow;
        if (l->cf >= 0 && l->cf != p->cf && l->kind != KL_FLATTEN)
            return lfail(k, l, "mixes channels_first and channels_last data formats");
        switch (l->kind) {
        case KL_INPUT: break;
        case KL_CONV:
            if (rank != 3)
                return lfail(k, l, "needs an image input, got %ld features", F);
            if (plan_spatial(k, l, (int)H, (int)W, &pad, &oh, &ow))
                return k->err->code;
            if (!(o = add_ol(k, p, l->name, "", "conv2d")))
                return k->err->code;
            snprintf(o->keys, sizeof o->keys, "filters = %d; kernel = %d;", l->units, l->kh);
            if (l->sh != 1)
                snprintf(o->keys + strlen(o->keys), sizeof o->keys - strlen(o->keys),
                         " stride = %d;", l->sh);
            if (pad)
                snprintf(o->keys + strlen(o->keys), sizeof o->keys - strlen(o->keys),
                         " padding = %d;", pad);
            if (!l->bias)
                snprintf(o->keys + strlen(o->keys), sizeof o->keys - strlen(o->keys),
                         " bias = false;");
            if (l->same)
                snprintf(o->comment, sizeof o->comment, "Keras padding 'same'");
            b = add_bind(p, l, B_CONV);
            b->out = l->units;
            b->in = (int)C;
            b->kh = l->kh;
            b->kw = l->kw;
            b->bias = l->bias;
            b->th = keras1 && p->cf;
            C = l->units;
            H = oh;
            W = ow;
            if (C * H * W > KMAX_FEATURES)
                return lfail(k, l, "the output is too large");
            if (add_activation(k, p, l, last, 0))
                return k->err->code;
            break;
        case KL_DENSE:
            if (rank != 1)
                return lfail(k, l,
                             "a Dense layer on an image (%ldx%ldx%ld) acts on the last axis "
                             "only; ftune needs a Flatten before it",
                             H, W, C);
            if (!(o = add_ol(k, p, l->name, "", "dense")))
                return k->err->code;
            snprintf(o->keys, sizeof o->keys, "units = %d;%s", l->units,
                     l->bias ? "" : " bias = false;");
            b = add_bind(p, l, B_DENSE);
            b->out = l->units;
            b->in = (int)F;
            b->bias = l->bias;
            if (pend) {
                b->perm = 1;
                b->ph = ph;
                b->pw = pw;
                b->pc = pc;
                snprintf(o->comment, sizeof o->comment, "inputs reordered: (H, W, C) -> (C, H, W)");
                ft_sb_printf(&k->notes,
                             "layer '%s': inputs reordered from Keras' (H, W, C) flatten order to "
                             "ftune's (C, H, W) = (%d, %d, %d), so predictions are unchanged\n",
                             l->name, pc, ph, pw);
            }
            pend = 0;
            F = l->units;
            if (add_activation(k, p, l, last, 0))
                return k->err->code;
            break;
        case KL_MAXPOOL:
        case KL_AVGPOOL:
            if (rank != 3)
                return lfail(k, l, "needs an image input, got %ld features", F);
            if (plan_spatial(k, l, (int)H, (int)W, &pad, &oh, &ow))
                return k->err->code;
            if (pad && l->kind == KL_AVGPOOL)
                return lfail(k, l,
                             "padding 'same' that pads this %ldx%ld input is not supported (Keras "
                             "averages over the valid pixels only; ftune counts the padding)",
                             H, W);
            if (!(o = add_ol(k, p, l->name, "", l->kind == KL_MAXPOOL ? "maxpool2d" : "avgpool2d")))
                return k->err->code;
            snprintf(o->keys, sizeof o->keys, "size = %d;", l->kh);
            if (l->sh != l->kh)
                snprintf(o->keys + strlen(o->keys), sizeof o->keys - strlen(o->keys),
                         " stride = %d;", l->sh);
            if (pad)
                snprintf(o->keys + strlen(o->keys), sizeof o->keys - strlen(o->keys),
                         " padding = %d;", pad);
            H = oh;
            W = ow;
            break;
        case KL_GAP:
            if (rank != 3)
                return lfail(k, l, "needs an image input, got %ld features", F);
            if (!(o = add_ol(k, p, l->name, "", "global_avgpool")))
                return k->err->code;
            rank = 1;
            F = C;
            pend = 0;
            break;
        case KL_FLATTEN:
            if (rank != 3) {
                ft_sb_printf(&k->notes, "layer '%s': Flatten of a flat input left out\n", l->name);
                break;
            }
            if (!(o = add_ol(k, p, l->name, "", "flatten")))
                return k->err->code;
            rank = 1;
            F = C * H * W;
            if (!(l->cf >= 0 ? l->cf : p->cf) && C > 1 && H * W > 1) {
                pend = 1;
                ph = (int)H;
                pw = (int)W;
                pc = (int)C;
            }
            break;
        case KL_DROPOUT:
            if (!(o = add_ol(k, p, l->name, "", "dropout")))
                return k->err->code;
            snprintf(o->keys, sizeof o->keys, "rate = %s;", fmt_float(l->rate, buf, sizeof buf));
            break;
        case KL_BN: {
            int ok = rank == 3 ? (p->cf ? (l->axis == 1 || l->axis == -3)
                                        : (l->axis == -1 || l->axis == 3))
                               : (l->axis == -1 || l->axis == 1);
            if (!ok)
                return lfail(k, l, "axis %d is not the channel axis (ftune normalises channels)",
                             l->axis);
            if (!(o = add_ol(k, p, l->name, "", "batchnorm")))
                return k->err->code;
            snprintf(o->keys, sizeof o->keys, "momentum = %s; eps = %s;%s",
                     fmt_float(1.0 - l->momentum, buf, sizeof buf),
                     fmt_float(l->eps, buf2, sizeof buf2),
                     l->center || l->scale ? "" : " affine = false;");
            snprintf(o->comment, sizeof o->comment, "Keras momentum %s = 1 - ftune's",
                     fmt_float(l->momentum, buf, sizeof buf));
            b = add_bind(p, l, B_BN);
            b->out = rank == 3 ? (int)C : (int)F;
            b->center = l->center;
            b->scale = l->scale;
            b->affine = l->center || l->scale;
            if (rank == 1 && pend) {
                b->perm = 1;
                b->ph = ph;
                b->pw = pw;
                b->pc = pc;
            }
            break;
        }
        case KL_ACT:
        case KL_RELU:
        case KL_LEAKY:
        case KL_SOFTMAX:
            if (add_activation(k, p, l, last, 1))
                return k->err->code;
            break;
        default: break;
        }
    }
    if (p->nol == 0 || p->nbinds == 0)
        return ft_fail(k->err, FT_EINPUT, "%s: the model has no layer with weights", k->path);
    return FT_OK;
}

/* ---- the generated config -------------------------------------------------- */

static const char *base_name(const char *path, char *buf, size_t len)
{
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    snprintf(buf, len, "%s", s);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf)
        *dot = 0;
    for (char *p = buf; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            *p = '_';
    return buf;
}

/* A string for a libconfig file ("..." with \ and " escaped). */
static void sb_quoted(ft_sbuf *b, const char *s)
{
    ft_sb_printf(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            ft_sb_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            ft_sb_printf(b, "?");
        else
            ft_sb_printf(b, "%c", *s);
    }
    ft_sb_printf(b, "\"");
}

/* text as comment lines "<indent># <first>..." wrapped at about 96 columns,
 * continuation lines starting "<indent># <cont>". */
static void sb_comment(ft_sbuf *b, const char *indent, const char *first, const char *cont,
                       const char *text, size_t len)
{
    const size_t width = 96;
    size_t lead = strlen(indent) + 2 + strlen(first);
    const char *pre = first;
    while (len > 0) {
        size_t room = width > lead ? width - lead : 20, n = len;
        if (n > room) {
            n = room;
            while (n > 0 && text[n] != ' ')
                n--;
            if (n == 0)
                n = room;
        }
        ft_sb_printf(b, "%s# %s%.*s\n", indent, pre, (int)n, text);
        text += n;
        len -= n;
        while (len > 0 && *text == ' ') {
            text++;
            len--;
        }
        pre = cont;
        lead = strlen(indent) + 2 + strlen(cont);
    }
}

/* with_extras: comments, the pretrained group and the suggestions (the file
 * for the user); without: the plain config stored in the model file. */
static char *config_text(const kctx *k, const kfile *kf, const kmodel *km, const plan *p,
                         const ft_keras_opts *o, const char *notes, int with_extras)
{
    ft_sbuf b = {0};
    char buf[64], base[FT_PATH_MAX];
    base_name(k->path, base, sizeof base);
    /* suggestions: the head (last layer with weights) and the feature part */
    int head = p->binds[p->nbinds - 1].layer;
    int first_dense = -1, has_conv = 0;
    for (int i = 0; i < p->nbinds; i++) {
        if (p->binds[i].kind == B_CONV)
            has_conv = 1;
        if (p->binds[i].kind == B_DENSE && first_dense < 0)
            first_dense = p->binds[i].layer;
    }
    int upto = -1;
    int stop = has_conv && first_dense >= 0 ? first_dense : head;
    for (int i = stop - 1; i >= 0; i--)
        if (strcmp(p->ol[i].type, "dropout") && strcmp(p->ol[i].type, "flatten")) {
            upto = i;
            break;
        }

    if (with_extras) {
        const char *slash = strrchr(k->path, '/');
        ft_sb_printf(&b, "# ftune config generated by `ftune import keras` from %s\n",
                     slash ? slash + 1 : k->path);
        ft_sb_printf(&b, "# (Keras %s, %s backend, %s model '%s').\n",
                     kf->keras_version ? kf->keras_version : "1.x",
                     kf->backend ? kf->backend : "unknown", km->cls, km->name);
        ft_sb_printf(&b,
                     "# Layers keep their Keras names; weights were converted from Keras' layouts\n"
                     "# to ftune's (NCHW, PyTorch-style kernels), so predictions are unchanged.\n"
                     "# Fill in the data paths, then: mpirun -np 2 ftune train THIS.cfg\n");
        if (notes && notes[0]) {
            ft_sb_printf(&b, "#\n# Notes from the import:\n");
            for (const char *s = notes; *s;) {
                const char *e = strchr(s, '\n');
                size_t len = e ? (size_t)(e - s) : strlen(s);
                sb_comment(&b, "", "  - ", "    ", s, len);
                s += len + (e ? 1 : 0);
            }
        }
        ft_sb_printf(&b, "\n");
    }
    ft_sb_printf(&b, "run = {\n  dir = \"runs/%s-finetune\";\n  seed = 42;\n};\n\n", base);
    ft_sb_printf(&b, "data = {\n");
    if (with_extras)
        ft_sb_printf(&b,
                     "  # ftune datasets (docs/formats.md), e.g. from `ftune data import-idx`.\n"
                     "  train = \"data/train.h5\";  # set: your training set\n"
                     "  eval = \"\";                # set: your evaluation set (\"\" = none)\n");
    else
        ft_sb_printf(&b, "  train = \"data/train.h5\";\n  eval = \"\";\n");
    ft_sb_printf(&b, "};\n\n");

    ft_sb_printf(&b, "model = {\n");
    if (with_extras) {
        sb_comment(&b, "  ", "", "", p->input_comment, strlen(p->input_comment));
        if (p->input.rank == 3)
            ft_sb_printf(&b,
                         "  # ftune datasets hold images as [N, C, H, W] (import-idx writes [N, 1, "
                         "28, 28]);\n"
                         "  # with one channel that is the same memory as Keras' [N, H, W, 1]. A "
                         "dataset\n"
                         "  # stored as [N, H, W, C] with C > 1 needs preprocess.layout = "
                         "\"nhwc\".\n");
    }
    if (p->input.rank == 3)
        ft_sb_printf(&b, "  input = [%d, %d, %d];\n", p->input.d[0], p->input.d[1], p->input.d[2]);
    else
        ft_sb_printf(&b, "  input = [%d];\n", p->input.d[0]);
    if (o->input_scale > 0) {
        if (with_extras)
            ft_sb_printf(&b, "  # the Keras model expects inputs %s times ftune's dataset values\n",
                         fmt_float(o->input_scale, buf, sizeof buf));
        ft_sb_printf(&b, "  preprocess = { scale = %s; };\n",
                     fmt_float(o->input_scale, buf, sizeof buf));
    } else if (with_extras) {
        ft_sb_printf(&b,
                     "  # preprocess = { scale = 255.0; };  # if the Keras model was trained on "
                     "raw 0..255 pixels\n");
    }
    ft_sb_printf(&b, "  layers = (\n");
    for (int i = 0; i < p->nol; i++) {
        const olayer *ol = &p->ol[i];
        ft_sb_printf(&b, "    { name = ");
        sb_quoted(&b, ol->name);
        ft_sb_printf(&b, "; type = \"%s\";%s%s }%s", ol->type, ol->keys[0] ? " " : "", ol->keys,
                     i + 1 < p->nol ? "," : "");
        if (with_extras && ol->comment[0])
            ft_sb_printf(&b, "  # %s", ol->comment);
        if (with_extras && i == p->nol - 1 && p->softmax_dropped)
            ft_sb_printf(&b, "  # softmax left out (the loss applies it)");
        ft_sb_printf(&b, "\n");
    }
    ft_sb_printf(&b, "  );\n};\n");

    if (with_extras) {
        ft_sb_printf(&b, "\n# Start from the imported weights (a relative path is resolved against "
                         "the\n# directory ftune runs in).\n");
        if (o->model_path) {
            ft_sb_printf(&b, "pretrained = {\n  file = ");
            sb_quoted(&b, o->model_path);
            ft_sb_printf(&b, ";\n");
        } else {
            ft_sb_printf(&b, "pretrained = {\n  file = \"MODEL.h5\";  # set: the imported model\n");
        }
        ft_sb_printf(&b,
                     "  # A new head (e.g. for a different number of classes: change its units "
                     "too):\n  # reinit = [\"%s\"];\n};\n",
                     p->ol[head].name);
        if (upto >= 0)
            ft_sb_printf(&b,
                         "\n# Keep the pre-trained features, train only the layers after them:\n"
                         "# freeze = { upto = \"%s\"; };\n",
                         p->ol[upto].name);
        ft_sb_printf(&b, "\n# Fine-tuning defaults: a small learning rate with warm-up and cosine "
                         "decay.\n");
    }
    ft_sb_printf(&b, "train = {\n  epochs = 3;\n  batch_size = 64;\n"
                     "  optimizer = { type = \"adamw\"; lr = 0.0003; weight_decay = 0.01; };\n"
                     "  schedule = { type = \"cosine\"; warmup_steps = 50; };\n};\n");
    ft_sb_printf(&b, "checkpoint = { every = 500; keep_last = 2; };\n");
    ft_sb_printf(&b, "log = { every = 50; };\n");
    return ft_sb_take(&b);
}

/* ---- reading and converting weights ------------------------------------------ */

static const char *dims_str(const hsize_t *d, int rank, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ", %llu" : "%llu",
                                 (unsigned long long)d[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

/* The Keras weights a binding expects: count, and the shape and role of each. */
static int expected_weights(const kbind *b, int *n, hsize_t dims[KMAX_WEIGHTS][4],
                            int rank[KMAX_WEIGHTS], const char *role[KMAX_WEIGHTS])
{
    *n = 0;
    switch (b->kind) {
    case B_DENSE:
        rank[0] = 2;
        dims[0][0] = (hsize_t)b->in;
        dims[0][1] = (hsize_t)b->out;
        role[0] = "kernel (inputs, units)";
        *n = 1;
        break;
    case B_CONV:
        rank[0] = 4;
        if (b->th) {
            dims[0][0] = (hsize_t)b->out;
            dims[0][1] = (hsize_t)b->in;
            dims[0][2] = (hsize_t)b->kh;
            dims[0][3] = (hsize_t)b->kw;
            role[0] = "kernel (filters, channels, height, width)";
        } else {
            dims[0][0] = (hsize_t)b->kh;
            dims[0][1] = (hsize_t)b->kw;
            dims[0][2] = (hsize_t)b->in;
            dims[0][3] = (hsize_t)b->out;
            role[0] = "kernel (height, width, channels, filters)";
        }
        *n = 1;
        break;
    case B_BN:
        if (b->scale)
            role[(*n)++] = "gamma";
        if (b->center)
            role[(*n)++] = "beta";
        role[(*n)++] = "moving_mean";
        role[(*n)++] = "moving_variance";
        for (int i = 0; i < *n; i++) {
            rank[i] = 1;
            dims[i][0] = (hsize_t)b->out;
        }
        return FT_OK;
    default: return FT_EINPUT;
    }
    if (b->bias) {
        rank[1] = 1;
        dims[1][0] = (hsize_t)b->out;
        role[1] = "bias";
        *n = 2;
    }
    return FT_OK;
}

static ft_param *find_param(ft_layer *l, const char *name)
{
    for (int i = 0; l && i < l->nparams; i++)
        if (!strcmp(l->params[i].name, name))
            return &l->params[i];
    return NULL;
}

/* Keras index of input feature t of ftune's (C, H, W) flatten order. */
static size_t perm_index(const kbind *b, size_t t)
{
    size_t hw = (size_t)b->ph * (size_t)b->pw;
    size_t c = t / hw, r = t % hw;
    return r * (size_t)b->pc + c;
}

/* Converts Keras weight number wi (n values in src) into the ftune layer. */
static void convert(const kbind *b, ft_layer *l, int wi, const float *src)
{
    if (b->kind == B_DENSE && wi == 0) {
        float *w = find_param(l, "weight")->data;
        size_t in = (size_t)b->in, out = (size_t)b->out;
        for (size_t t = 0; t < in; t++) {
            const float *row = src + (b->perm ? perm_index(b, t) : t) * out;
            for (size_t o = 0; o < out; o++)
                w[o * in + t] = row[o];
        }
    } else if (b->kind == B_CONV && wi == 0) {
        float *w = find_param(l, "weight")->data;
        size_t O = (size_t)b->out, I = (size_t)b->in, KH = (size_t)b->kh, KW = (size_t)b->kw;
        for (size_t o = 0; o < O; o++)
            for (size_t i = 0; i < I; i++)
                for (size_t a = 0; a < KH; a++)
                    for (size_t c = 0; c < KW; c++) {
                        size_t sa = b->flip ? KH - 1 - a : a, sc = b->flip ? KW - 1 - c : c;
                        size_t s = b->th ? ((o * I + i) * KH + sa) * KW + sc
                                         : ((sa * KW + sc) * I + i) * O + o;
                        w[((o * I + i) * KH + a) * KW + c] = src[s];
                    }
    } else if (b->kind == B_DENSE || b->kind == B_CONV) {
        memcpy(find_param(l, "bias")->data, src, (size_t)b->out * sizeof(float));
    } else { /* batchnorm: gamma?, beta?, moving_mean, moving_variance */
        const char *dst;
        int k = wi;
        if (!b->scale && k >= 0)
            k++;
        if (!b->center && k >= 1)
            k++;
        dst = k == 0 ? "weight" : k == 1 ? "bias" : k == 2 ? "running_mean" : "running_var";
        ft_param *d = find_param(l, dst);
        for (size_t t = 0; d && t < (size_t)b->out; t++)
            d->data[t] = src[b->perm ? perm_index(b, t) : t];
    }
}

/* Checks every Keras weight of a binding (exists, float, the expected
 * shape, fully stored); with l != NULL also reads and converts it. */
static int fill_bind(const kfile *kf, const kbind *b, ft_layer *l, ft_err *err)
{
    char who[KMAX_NAME_LEN + 200];
    if (b->kcls[0])
        snprintf(who, sizeof who, "%s: layer '%s' (%s)", kf->path, b->kname, b->kcls);
    else
        snprintf(who, sizeof who, "%s: layer '%s'", kf->path, b->kname);
    hsize_t edims[KMAX_WEIGHTS][4];
    int erank[KMAX_WEIGHTS], n = 0;
    const char *role[KMAX_WEIGHTS];
    expected_weights(b, &n, edims, erank, role);

    hid_t g;
    char **wn;
    size_t nw;
    int rc = layer_weights(kf, b->kname, &g, &wn, &nw, err);
    if (rc)
        return rc;
    if (g < 0)
        return ft_fail(err, FT_EINPUT, "%s has no weights in the file (no group '%s')", who,
                       b->kname);
    if (nw != (size_t)n) {
        char list[300] = "";
        for (size_t i = 0; i < nw && strlen(list) < 200; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'", i ? ", " : "",
                     wn[i]);
        char want[200] = "";
        for (int i = 0; i < n; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", i ? ", " : "",
                     role[i]);
        rc = ft_fail(err, FT_EINPUT, "%s has %zu weight%s in the file%s%s, expected %d (%s)", who,
                     nw, nw == 1 ? "" : "s", nw ? ": " : "", list, n, want);
    }
    float *buf = NULL;
    /* a batchnorm without gamma (scale=false) or beta (center=false): 1 and 0 */
    ft_param *bw = b->kind == B_BN && !b->scale ? find_param(l, "weight") : NULL;
    ft_param *bb = b->kind == B_BN && !b->center ? find_param(l, "bias") : NULL;
    for (size_t t = 0; bw && t < bw->count; t++)
        bw->data[t] = 1.0f;
    for (size_t t = 0; bb && t < bb->count; t++)
        bb->data[t] = 0.0f;
    for (int i = 0; i < n && !rc; i++) {
        hid_t ds = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID,
              dcpl = H5I_INVALID_HID;
        int ext;
        ds = kopen(kf, g, wn[i], &ext);
        if (ds < 0 || H5Iget_type(ds) != H5I_DATASET) {
            rc = ft_fail(err, FT_EINPUT, "%s: weight '%s' (%s) %s", who, wn[i], role[i],
                         ext ? "is a link to another file, which ftune does not follow"
                             : "is missing from the file");
            if (ds >= 0)
                H5Oclose(ds);
            break;
        }
        type = H5Dget_type(ds);
        space = H5Dget_space(ds);
        dcpl = H5Dget_create_plist(ds);
        int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
        hsize_t dims[KMAX_FILE_DIMS];
        char tb[32], b1[96], b2[96];
        size_t count = 1;
        if (type < 0 || rank < 0 || dcpl < 0) {
            rc = ft_h5_fail(err, FT_EINPUT, "%s: cannot read the type and shape of weight '%s'",
                            who, wn[i]);
        } else if (H5Tget_class(type) != H5T_FLOAT ||
                   (H5Tget_size(type) != 2 && H5Tget_size(type) != 4 && H5Tget_size(type) != 8)) {
            rc = ft_fail(err, FT_EINPUT, "%s: weight '%s' has type %s, expected float32", who,
                         wn[i], ft_h5_type_str(type, tb, sizeof tb));
        } else if (rank > KMAX_FILE_DIMS) {
            rc = ft_fail(err, FT_EINPUT, "%s: weight '%s' has %d dimensions, expected %d", who,
                         wn[i], rank, erank[i]);
        } else {
            H5Sget_simple_extent_dims(space, dims, NULL);
            int same = rank == erank[i];
            for (int d = 0; d < rank && same; d++)
                same = dims[d] == edims[i][d];
            if (!same)
                rc = ft_fail(err, FT_EINPUT, "%s: weight '%s' has shape %s, expected %s (%s)", who,
                             wn[i], dims_str(dims, rank, b1, sizeof b1),
                             dims_str(edims[i], erank[i], b2, sizeof b2), role[i]);
            for (int d = 0; d < rank && !rc; d++)
                count *= (size_t)dims[d]; /* equal to the expected shape: bounded */
        }
        if (!rc) {
            /* Only plain data stored in this file: no external files (a hostile
             * file could point at any file), no virtual datasets, and every
             * byte present (a sparse or truncated dataset is refused before any
             * buffer is allocated for it). */
            H5D_layout_t lay = H5Pget_layout(dcpl);
            int nfilters = H5Pget_nfilters(dcpl);
            hsize_t stored = H5Dget_storage_size(ds);
            size_t need = count * H5Tget_size(type);
            if (H5Pget_external_count(dcpl) > 0 || lay == H5D_VIRTUAL)
                rc = ft_fail(err, FT_EINPUT,
                             "%s: weight '%s' is stored outside the file (external or virtual "
                             "dataset), which ftune does not read",
                             who, wn[i]);
            else if (nfilters == 0 && stored < need)
                rc = ft_fail(err, FT_EINPUT,
                             "%s: weight '%s' stores %llu of its %zu bytes (truncated or sparse "
                             "file)",
                             who, wn[i], (unsigned long long)stored, need);
        }
        if (!rc && l) {
            buf = ft_alloc_floats(count, err);
            if (!buf)
                rc = err->code;
            else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
                rc = ft_h5_fail(err, FT_EINPUT, "%s: cannot read weight '%s'", who, wn[i]);
            for (size_t j = 0; j < count && !rc; j++)
                if (!isfinite(buf[j]))
                    rc = ft_fail(err, FT_EINPUT, "%s: weight '%s' holds NaN or infinite values",
                                 who, wn[i]);
            if (!rc)
                convert(b, l, i, buf);
            ft_free_floats(buf);
            buf = NULL;
        }
        if (dcpl >= 0)
            H5Pclose(dcpl);
        if (space >= 0)
            H5Sclose(space);
        if (type >= 0)
            H5Tclose(type);
        H5Oclose(ds);
    }
    ft_h5_free_strings(wn, nw);
    H5Oclose(g);
    return rc;
}

/* ---- the user's config (weights-only files) ---------------------------------- */

static int is_passthrough(const ft_layer *l)
{
    static const char *const kinds[] = {"dropout", "relu", "tanh", "sigmoid", "leaky_relu", "gelu"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(l->ops->kind, kinds[i]))
            return 1;
    return !strcmp(l->ops->kind, "batchnorm") && l->in.rank == 1;
}

/* Inputs of layer i come from a Flatten of a [C, H, W] map (through
 * dropout, activations, 1-d batchnorm)? */
static void flatten_source(const ft_model *m, int i, kbind *b)
{
    for (int j = i - 1; j >= 0; j--) {
        const ft_layer *l = &m->layers[j];
        if (is_passthrough(l))
            continue;
        if (!strcmp(l->ops->kind, "flatten") && l->in.rank == 3 && l->in.d[0] > 1 &&
            l->in.d[1] * l->in.d[2] > 1) {
            b->perm = 1;
            b->pc = l->in.d[0];
            b->ph = l->in.d[1];
            b->pw = l->in.d[2];
        }
        return;
    }
}

/* The shape of a Keras conv kernel in the file: 1 if (out, in, kh, kw) ('th'),
 * 0 if (kh, kw, in, out), -1 if neither; *ambiguous when both fit. */
static int kernel_layout(const kfile *kf, const kbind *b, int *ambiguous, ft_err *err)
{
    hid_t g;
    char **wn;
    size_t nw;
    *ambiguous = 0;
    if (layer_weights(kf, b->kname, &g, &wn, &nw, err))
        return -2;
    int layout = -1;
    int ext;
    hid_t ds = g >= 0 && nw > 0 ? kopen(kf, g, wn[0], &ext) : H5I_INVALID_HID;
    if (ds >= 0) {
        hid_t space = ds >= 0 && H5Iget_type(ds) == H5I_DATASET ? H5Dget_space(ds) : -1;
        hsize_t d[4];
        if (space >= 0 && H5Sget_simple_extent_ndims(space) == 4) {
            H5Sget_simple_extent_dims(space, d, NULL);
            int th = d[0] == (hsize_t)b->out && d[1] == (hsize_t)b->in && d[2] == (hsize_t)b->kh &&
                     d[3] == (hsize_t)b->kw;
            int tf = d[0] == (hsize_t)b->kh && d[1] == (hsize_t)b->kw && d[2] == (hsize_t)b->in &&
                     d[3] == (hsize_t)b->out;
            layout = th ? 1 : tf ? 0 : -1;
            *ambiguous = th && tf;
        }
        if (space >= 0)
            H5Sclose(space);
        if (ds >= 0)
            H5Oclose(ds);
    }
    H5Eclear2(H5E_DEFAULT);
    if (g >= 0)
        H5Oclose(g);
    ft_h5_free_strings(wn, nw);
    return layout;
}

static int binds_from_model(kctx *k, const kfile *kf, const ft_model *m, const ft_keras_opts *o,
                            kbind **out, int *nout)
{
    ft_err *err = k->err;
    *out = NULL;
    *nout = 0;
    /* Keras layers with weights, in file order */
    char **kl = ft_calloc(kf->nlayers + 1, sizeof *kl, err);
    kbind *b = ft_calloc((size_t)m->nlayers + 1, sizeof *b, err);
    if (!kl || !b) {
        free(kl);
        free(b);
        return err->code;
    }
    int nk = 0, nb = 0, rc = FT_OK;
    for (size_t i = 0; i < kf->nlayers && !rc; i++) {
        size_t nw;
        rc = layer_weight_count(kf, kf->layers[i], &nw, err);
        if (!rc && nw > 0)
            kl[nk++] = kf->layers[i];
    }
    for (int i = 0; i < m->nlayers && !rc; i++) {
        const ft_layer *l = &m->layers[i];
        if (l->nparams == 0)
            continue;
        kbind *x = &b[nb++];
        x->layer = i;
        const ft_param *w = &l->params[0];
        if (!strcmp(l->ops->kind, "dense")) {
            x->kind = B_DENSE;
            x->out = w->shape.d[0];
            x->in = w->shape.d[1];
            x->bias = l->nparams > 1;
        } else if (!strcmp(l->ops->kind, "conv2d")) {
            x->kind = B_CONV;
            x->out = w->shape.d[0];
            x->in = w->shape.d[1];
            x->kh = w->shape.d[2];
            x->kw = w->shape.d[3];
            x->bias = l->nparams > 1;
        } else if (!strcmp(l->ops->kind, "batchnorm")) {
            x->kind = B_BN;
            x->out = w->shape.d[0];
            x->affine = l->nparams == 4;
            x->center = x->scale = x->affine;
        } else {
            rc = ft_fail(err, FT_EINPUT,
                         "%s: layer '%s' (%s) has parameters ftune cannot take "
                         "from a Keras file",
                         o->config_path, l->name, l->ops->kind);
        }
    }
    /* match: all by name, else all by order */
    int by_name = 1;
    for (int j = 0; j < nb && by_name && !rc; j++) {
        int hit = 0;
        for (int t = 0; t < nk && !hit; t++)
            hit = !strcmp(kl[t], m->layers[b[j].layer].name);
        by_name = hit;
    }
    if (!rc && !by_name && nb != nk) {
        char list[400] = "";
        for (int t = 0; t < nk && strlen(list) < 300; t++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", t ? ", " : "", kl[t]);
        rc = ft_fail(err, FT_EINPUT,
                     "%s: the config's layers with weights do not match the file's by name, and "
                     "their number differs (%d in %s, %d in the file: %s)",
                     kf->path, nb, o->config_path, nk, list);
    }
    for (int j = 0; j < nb && !rc; j++) {
        const char *lname = m->layers[b[j].layer].name;
        snprintf(b[j].kname, sizeof b[j].kname, "%s", by_name ? lname : kl[j]);
        if (!by_name)
            ft_sb_printf(&k->notes, "ftune layer '%s' <- Keras layer '%s' (matched by order)\n",
                         lname, kl[j]);
    }
    free(kl);
    if (rc) {
        free(b);
        return rc;
    }
    /* batchnorm: which of gamma and beta the file has (center/scale = false
     * leave them out), from the weight names when there are not all four */
    for (int j = 0; j < nb && !rc; j++) {
        if (b[j].kind != B_BN)
            continue;
        hid_t g;
        char **wn;
        size_t nw;
        rc = layer_weights(kf, b[j].kname, &g, &wn, &nw, err);
        if (rc)
            break;
        if (g >= 0 && nw < 4) {
            b[j].scale = b[j].center = 0;
            for (size_t t = 0; t < nw; t++) {
                b[j].scale |= strstr(wn[t], "gamma") != NULL;
                b[j].center |= strstr(wn[t], "beta") != NULL;
            }
        }
        if (g >= 0)
            H5Oclose(g);
        ft_h5_free_strings(wn, nw);
        if (!b[j].affine && (b[j].scale || b[j].center))
            rc = ft_fail(err, FT_EINPUT,
                         "%s: layer '%s' has gamma or beta in the file, but layer '%s' of %s has "
                         "affine = false",
                         kf->path, b[j].kname, m->layers[b[j].layer].name, o->config_path);
    }
    /* kernel layouts (Keras 1 may store 'th' kernels), data format, flips */
    int any_th = 0;
    for (int j = 0; j < nb && !rc; j++) {
        if (b[j].kind != B_CONV || !kf->keras1)
            continue;
        int amb;
        int lay = kernel_layout(kf, &b[j], &amb, err);
        if (lay == -2)
            rc = err->code;
        b[j].th = lay == 1;
        any_th |= b[j].th;
        if (amb)
            ft_sb_printf(&k->notes,
                         "layer '%s': kernel shape fits both Keras 1 layouts; read as 'th' "
                         "(filters, channels, height, width)\n",
                         b[j].kname);
    }
    int cf = o->data_format == FT_KERAS_CHANNELS_FIRST  ? 1
             : o->data_format == FT_KERAS_CHANNELS_LAST ? 0
                                                        : any_th;
    for (int j = 0; j < nb && !rc; j++)
        if (!cf &&
            (b[j].kind == B_DENSE || (b[j].kind == B_BN && m->layers[b[j].layer].in.rank == 1)))
            flatten_source(m, b[j].layer, &b[j]);
    if (rc) {
        free(b);
        return rc;
    }
    for (int j = 0; j < nb; j++)
        if (b[j].perm)
            ft_sb_printf(&k->notes,
                         "layer '%s': inputs reordered from Keras' (H, W, C) flatten order to "
                         "ftune's (C, H, W)%s\n",
                         m->layers[b[j].layer].name,
                         o->data_format ? ""
                                        : " (the file is read as channels_last; "
                                          "--data-format channels_first if it was not)");
    *out = b;
    *nout = nb;
    return FT_OK;
}

/* ---- the import ---------------------------------------------------------------- */

/* 1 if the config file at path has a setting at key (0 also when it does
 * not parse: the loader reports that). */
static int config_has(const char *path, const char *key)
{
    config_t c;
    config_init(&c);
    char *copy = strdup(path);
    if (copy)
        config_set_include_dir(&c, dirname(copy));
    int has = config_read_file(&c, path) == CONFIG_TRUE && config_lookup(&c, key) != NULL;
    config_destroy(&c);
    free(copy);
    return has;
}

/* The user's config; an import needs no training set (data.train defaults
 * to a placeholder) and a pretrained group without file gets the model
 * file being written. */
static int load_user_config(const ft_keras_opts *o, const char *path, ft_config *cfg, ft_err *err)
{
    char train_set[] = "data.train=unset.h5", file_set[FT_PATH_MAX + 32];
    const char *sets[2];
    int n = 0;
    if (!config_has(o->config_path, "data.train"))
        sets[n++] = train_set;
    if (config_has(o->config_path, "pretrained") &&
        !config_has(o->config_path, "pretrained.file")) {
        snprintf(file_set, sizeof file_set, "pretrained.file=%s",
                 o->model_path ? o->model_path : path);
        sets[n++] = file_set;
    }
    return ft_config_load(cfg, o->config_path, sets, n, err);
}

static int decide_flip(kctx *k, const kfile *kf, const ft_keras_opts *o, kbind *b, int nb)
{
    int any_conv = 0, any_th = 0;
    for (int i = 0; i < nb; i++) {
        any_conv |= b[i].kind == B_CONV;
        any_th |= b[i].kind == B_CONV && b[i].th;
    }
    int flip;
    if (o->flip != FT_KERAS_FLIP_AUTO)
        flip = o->flip;
    else if (kf->backend)
        flip = !strcmp(kf->backend, "theano");
    else
        flip = any_th; /* Keras 1 'th' files came from the Theano backend */
    if (!any_conv)
        return FT_OK;
    for (int i = 0; i < nb; i++)
        if (b[i].kind == B_CONV)
            b[i].flip = flip;
    if (flip)
        ft_sb_printf(&k->notes,
                     "convolution kernels flipped (%s): Theano convolves, ftune correlates%s\n",
                     o->flip != FT_KERAS_FLIP_AUTO ? "--flip-kernels"
                     : kf->backend                 ? "the file's backend is theano"
                                                   : "Keras 1 'th' kernels, so the Theano backend",
                     o->flip != FT_KERAS_FLIP_AUTO ? "" : " (--no-flip-kernels to keep them)");
    return FT_OK;
}

void ft_keras_result_free(ft_keras_result *r)
{
    if (!r)
        return;
    ft_model_free(&r->model);
    ft_config_free(&r->cfg);
    free(r->config_text);
    free(r->notes);
    memset(r, 0, sizeof *r);
}

static int check_model_matches(kctx *k, const ft_model *m, const kbind *b, int nb)
{
    /* the generated config must give exactly the planned parameter shapes */
    for (int i = 0; i < nb; i++) {
        const ft_layer *l = &m->layers[b[i].layer];
        const ft_param *w = l->nparams ? &l->params[0] : NULL;
        int ok = w != NULL;
        if (ok && b[i].kind == B_DENSE)
            ok = w->shape.d[0] == b[i].out && w->shape.d[1] == b[i].in;
        else if (ok && b[i].kind == B_CONV)
            ok = w->shape.d[0] == b[i].out && w->shape.d[1] == b[i].in && w->shape.d[2] == b[i].kh;
        else if (ok)
            ok = w->shape.d[0] == b[i].out;
        if (!ok)
            return ft_fail(k->err, FT_ERUNTIME,
                           "%s: internal error: layer '%s' does not have the planned shape",
                           k->path, l->name);
    }
    return FT_OK;
}

int ft_keras_import(const char *path, const ft_keras_opts *opts, ft_keras_result *out, ft_err *err)
{
    memset(out, 0, sizeof *out);
    ft_keras_opts dflt;
    if (!opts) {
        ft_keras_opts_default(&dflt);
        opts = &dflt;
    }
    kctx k = {path, err, {0}};
    kfile kf;
    kmodel km = {0};
    plan p = {0};
    kbind *binds = NULL;
    int nbinds = 0;
    char *stored = NULL;
    int rc = kf_open(&kf, path, err);
    if (rc)
        goto done;
    snprintf(out->keras_version, sizeof out->keras_version, "%s",
             kf.keras_version ? kf.keras_version : "");
    snprintf(out->backend, sizeof out->backend, "%s", kf.backend ? kf.backend : "");
    out->weights_only = !kf.model_config;

    if (opts->config_path) {
        if ((rc = load_user_config(opts, path, &out->cfg, err)) ||
            (rc = ft_model_build(&out->model, &out->cfg.input, out->cfg.layers, out->cfg.nlayers,
                                 err)) ||
            (rc = binds_from_model(&k, &kf, &out->model, opts, &binds, &nbinds)) ||
            (rc = decide_flip(&k, &kf, opts, binds, nbinds)))
            goto done;
    } else if (!kf.model_config) {
        char list[400] = "";
        for (size_t i = 0; i < kf.nlayers && strlen(list) < 300; i++) {
            size_t nw;
            if (layer_weight_count(&kf, kf.layers[i], &nw, err) == FT_OK && nw > 0)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                         list[0] ? ", " : "", kf.layers[i]);
        }
        rc = ft_fail(err, FT_EINPUT,
                     "%s: a weights-only Keras file (no model_config): give the architecture as "
                     "an ftune config with --config CFG, naming the layers as in the file (layers "
                     "with weights: %s)",
                     path, list[0] ? list : "none");
        goto done;
    } else {
        if ((rc = parse_model_config(&k, kf.model_config, &km)) ||
            (rc = make_plan(&k, &km, kf.keras1, &p)))
            goto done;
        binds = p.binds;
        nbinds = p.nbinds;
        if ((rc = decide_flip(&k, &kf, opts, binds, nbinds)))
            goto done;
        /* every weight present with the planned shape before anything is built */
        for (int i = 0; i < nbinds && !rc; i++)
            rc = fill_bind(&kf, &binds[i], NULL, err);
        if (rc)
            goto done;
        char *notes = k.notes.s ? k.notes.s : "";
        stored = config_text(&k, &kf, &km, &p, opts, notes, 0);
        out->config_text = config_text(&k, &kf, &km, &p, opts, notes, 1);
        if (!stored || !out->config_text) {
            rc = ft_fail(err, FT_ERUNTIME, "out of memory");
            goto done;
        }
        if ((rc = ft_config_load_string(&out->cfg, stored, path, err))) {
            ft_err_prefix(err, "internal error: the generated config does not load");
            goto done;
        }
        if ((rc = ft_model_build(&out->model, &out->cfg.input, out->cfg.layers, out->cfg.nlayers,
                                 err)) ||
            (rc = check_model_matches(&k, &out->model, binds, nbinds)))
            goto done;
    }
    for (int i = 0; i < nbinds && !rc; i++)
        rc = fill_bind(&kf, &binds[i], &out->model.layers[binds[i].layer], err);
    /* layers of the file the model does not use */
    if (!rc && !opts->config_path)
        for (size_t i = 0; i < kf.nlayers; i++) {
            int used = 0;
            for (int j = 0; j < nbinds && !used; j++)
                used = !strcmp(binds[j].kname, kf.layers[i]);
            size_t nw = 0;
            if (!used && layer_weight_count(&kf, kf.layers[i], &nw, err) == FT_OK && nw > 0)
                ft_sb_printf(&k.notes,
                             "Keras layer '%s' has weights but is not in model_config "
                             "(ignored)\n",
                             kf.layers[i]);
        }
done:
    if (!rc) {
        out->notes = ft_sb_take(&k.notes);
        if (!out->notes)
            rc = ft_fail(err, FT_ERUNTIME, "out of memory");
    } else {
        free(k.notes.s);
    }
    if (binds != p.binds)
        free(binds);
    plan_free(&p);
    free(km.layers);
    free(stored);
    kf_close(&kf);
    return rc;
}
