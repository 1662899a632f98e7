/* Pre-trained weights: format detection, safetensors loading by tensor name,
 * safetensors export (see include/ftune/pretrained.h). */
#include "ftune/pretrained.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftune/kv.h"
#include "ftune/safetensors.h"

#define REINIT_HINT "(list the layer in pretrained.reinit to start it fresh)"

const char *ft_name_map_find(const ft_name_map *map, const char *layer)
{
    for (int i = 0; map && i < map->n; i++)
        if (strcmp(map->v[i].layer, layer) == 0)
            return map->v[i].prefix;
    return NULL;
}

void ft_name_map_free(ft_name_map *map)
{
    if (!map)
        return;
    free(map->v);
    map->v = NULL;
    map->n = 0;
}

const char *ft_tensor_name(const ft_name_map *map, const char *layer, const char *param, char *buf,
                           size_t len)
{
    const char *prefix = ft_name_map_find(map, layer);
    if (!prefix)
        prefix = layer;
    if (prefix[0])
        snprintf(buf, len, "%s.%s", prefix, param);
    else
        snprintf(buf, len, "%s", param);
    return buf;
}

/* ---- format detection ------------------------------------------------------------ */

int ft_weights_format(const char *path, int *format, ft_err *err)
{
    *format = FT_FMT_UNKNOWN;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ft_fail(err, FT_EINPUT, "cannot open %s: %s", path, strerror(errno));
    static const unsigned char hdf5[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char b[16] = {0};
    ssize_t n = pread(fd, b, sizeof b, 0);
    /* HDF5 may sit behind a user block of 512, 1024, 2048, ... bytes */
    for (off_t off = 0; n >= 8 && off <= (off_t)1 << 20; off = off ? 2 * off : 512) {
        unsigned char s[8];
        if (pread(fd, s, 8, off) == 8 && memcmp(s, hdf5, 8) == 0) {
            *format = FT_FMT_HDF5;
            break;
        }
    }
    close(fd);
    if (*format)
        return FT_OK;
    if (n >= 9 && b[8] == '{') {
        *format = FT_FMT_SAFETENSORS;
        return FT_OK;
    }
    if (n >= 4 && memcmp(b, "PK\x03\x04", 4) == 0)
        return ft_fail(err, FT_EINPUT,
                       "%s is a zip archive (a PyTorch .pt/.pth or Keras .keras file?): ftune "
                       "reads ftune models (HDF5) and safetensors; convert a PyTorch file with "
                       "tools/torch_export.py",
                       path);
    if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5)
        return ft_fail(err, FT_EINPUT,
                       "%s is a Python pickle (a PyTorch .pt/.pth file?): ftune reads ftune models "
                       "(HDF5) and safetensors; convert it with tools/torch_export.py",
                       path);
    return ft_fail(
        err, FT_EINPUT,
        "%s is neither an HDF5 file (an ftune model or checkpoint) nor a safetensors file", path);
}

/* ---- loading safetensors ------------------------------------------------------------ */

static int in_list(const char *const *v, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (v[i] && strcmp(v[i], name) == 0)
            return 1;
    return 0;
}

static int shape_matches(const ft_st_tensor *t, const ft_shape *s)
{
    if (t->rank != s->rank)
        return 0;
    for (int k = 0; k < s->rank; k++)
        if (t->shape[k] != (int64_t)s->d[k])
            return 0;
    return 1;
}

static int is_float_dtype(int dtype)
{
    return dtype == FT_ST_F32 || dtype == FT_ST_F16 || dtype == FT_ST_BF16 || dtype == FT_ST_F64;
}

static int is_nbt(const char *name)
{
    const char *dot = strrchr(name, '.');
    return strcmp(dot ? dot + 1 : name, "num_batches_tracked") == 0;
}

/* The closest tensor names to want (for "did you mean"), into buf. */
static void near_names(const ft_st_file *f, const char *want, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t n = f->ntensors;
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        names[i] = f->tensors[i].name;
    const char *near = ft_closest(want, names, n > INT32_MAX ? INT32_MAX : (int)n);
    if (near)
        snprintf(buf, len, "; did you mean '%s'?", near);
    free(names);
}

/* The parameter of l named after the last '.' of tensor (which starts with
 * prefix + "."), or -1; *direct is 1 when the rest has no further '.'. */
static int tensor_param(const ft_layer *l, const char *prefix, const char *tensor, int *direct)
{
    size_t pl = strlen(prefix);
    const char *rest;
    *direct = 0;
    if (pl == 0)
        rest = tensor;
    else if (strncmp(tensor, prefix, pl) == 0 && tensor[pl] == '.')
        rest = tensor + pl + 1;
    else
        return -1;
    if (strchr(rest, '.'))
        return -1;
    *direct = 1;
    for (int j = 0; j < l->nparams; j++)
        if (strcmp(l->params[j].name, rest) == 0)
            return j;
    return -1;
}

static void warn_unused(const ft_st_file *f, const unsigned char *used, ft_warn_fn warn, void *user)
{
    if (!warn)
        return;
    char msg[1024];
    size_t n = 0, shown = 0, total = 0;
    for (size_t i = 0; i < f->ntensors; i++)
        total += !used[i] && !is_nbt(f->tensors[i].name);
    if (total == 0)
        return;
    n = (size_t)snprintf(msg, sizeof msg,
                         "%s: %zu tensor%s not used by the model (ignored): ", f->path, total,
                         total == 1 ? " is" : "s are");
    for (size_t i = 0; i < f->ntensors && n < sizeof msg; i++) {
        if (used[i] || is_nbt(f->tensors[i].name))
            continue;
        if (shown == 8 || n + strlen(f->tensors[i].name) + 40 > sizeof msg) {
            n += (size_t)snprintf(msg + n, sizeof msg - n, ", ... (%zu more)", total - shown);
            break;
        }
        n += (size_t)snprintf(msg + n, sizeof msg - n, "%s%s", shown ? ", " : "",
                              f->tensors[i].name);
        shown++;
    }
    warn(msg, user);
}

static int load_safetensors(const char *path, ft_model *m, const char *const *reinit, int nreinit,
                            const ft_name_map *map, ft_warn_fn warn, void *user, ft_err *err)
{
    ft_st_file f;
    int rc = ft_st_open(&f, path, err);
    if (rc)
        return rc;
    unsigned char *used = calloc(f.ntensors ? f.ntensors : 1, 1);
    if (!used) {
        ft_st_close(&f);
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    char name[FT_PREFIX_MAX + 64], a[128], b[128], hint[200];

    /* every check before m is touched */
    for (int i = 0; i < m->nlayers && !rc; i++) {
        const ft_layer *l = &m->layers[i];
        const char *prefix = ft_name_map_find(map, l->name);
        if (!prefix)
            prefix = l->name;
        int skip = in_list(reinit, nreinit, l->name);
        for (int j = 0; j < l->nparams && !rc; j++) {
            const ft_param *p = &l->params[j];
            ft_tensor_name(map, l->name, p->name, name, sizeof name);
            const ft_st_tensor *t = ft_st_find(&f, name);
            if (t)
                used[t - f.tensors] = 1;
            if (skip)
                continue;
            if (!t) {
                near_names(&f, name, hint, sizeof hint);
                rc = ft_fail(err, FT_EINPUT,
                             "%s: layer '%s' parameter '%s': tensor '%s' is not in the file%s "
                             "(name the layer's module with pretrained.map = { %s = \"...\"; }, or "
                             "list it in pretrained.reinit)",
                             path, l->name, p->name, name, hint, l->name);
            } else if (!is_float_dtype(t->dtype)) {
                rc = ft_fail(err, FT_EINPUT,
                             "%s: layer '%s' parameter '%s': tensor '%s' has dtype %s; parameters "
                             "must be floating point (F32, F16, BF16 or F64)",
                             path, l->name, p->name, name, ft_st_dtype_name(t->dtype));
            } else if (!shape_matches(t, &p->shape)) {
                rc = ft_fail(err, FT_EINPUT,
                             "%s: layer '%s' parameter '%s': tensor '%s' has shape %s in the file "
                             "but %s in the model %s",
                             path, l->name, p->name, name, ft_st_shape_str(t, a, sizeof a),
                             ft_shape_str(&p->shape, b, sizeof b), REINIT_HINT);
            }
        }
        /* a parameter the model lacks (a bias) would silently change what
         * the layer computes */
        for (size_t k = 0; k < f.ntensors && !rc && !skip && l->nparams > 0; k++) {
            int direct;
            const char *tn = f.tensors[k].name;
            if (tensor_param(l, prefix, tn, &direct) < 0 && direct && !is_nbt(tn))
                rc = ft_fail(err, FT_EINPUT,
                             "%s: tensor '%s' belongs to layer '%s', which has no parameter "
                             "'%s' (declare it, e.g. bias = true, or list the layer in "
                             "pretrained.reinit)",
                             path, tn, l->name, tn + (prefix[0] ? strlen(prefix) + 1 : 0));
        }
    }
    if (!rc)
        warn_unused(&f, used, warn, user);
    for (int i = 0; i < m->nlayers && !rc; i++) {
        ft_layer *l = &m->layers[i];
        if (in_list(reinit, nreinit, l->name))
            continue;
        for (int j = 0; j < l->nparams && !rc; j++) {
            ft_param *p = &l->params[j];
            ft_tensor_name(map, l->name, p->name, name, sizeof name);
            rc = ft_st_read_f32(&f, ft_st_find(&f, name), p->data, p->count, err);
        }
    }
    free(used);
    ft_st_close(&f);
    return rc;
}

int ft_load_pretrained(const char *path, ft_model *m, const char *const *reinit, int nreinit,
                       const ft_name_map *map, ft_warn_fn warn, void *user, ft_err *err)
{
    int format;
    int rc = ft_weights_format(path, &format, err);
    if (rc)
        return rc;
    if (format == FT_FMT_HDF5)
        return ft_load_weights(path, m, reinit, nreinit, 1, warn, user, err);
    /* map entries must name layers of the model (the config checks this;
     * callers that build a map by hand get the same guarantee) */
    for (int i = 0; map && i < map->n; i++)
        if (!ft_model_find(m, map->v[i].layer))
            return ft_fail(err, FT_EINPUT,
                           "pretrained.map names layer '%s', which is not in the model",
                           map->v[i].layer);
    return load_safetensors(path, m, reinit, nreinit, map, warn, user, err);
}

/* ---- export ------------------------------------------------------------------------- */

int ft_save_safetensors(const char *path, const ft_model *m, const ft_name_map *map,
                        const char *const *meta, size_t nmeta, ft_err *err)
{
    size_t n = 0;
    for (int i = 0; i < m->nlayers; i++)
        n += (size_t)m->layers[i].nparams + (strcmp(m->layers[i].ops->kind, "batchnorm") == 0);
    ft_st_entry *e = calloc(n ? n : 1, sizeof *e);
    char(*names)[FT_PREFIX_MAX + 64] = calloc(n ? n : 1, sizeof *names);
    static const int64_t zero = 0;
    if (!e || !names) {
        free(e);
        free(names);
        return ft_fail(err, FT_ERUNTIME, "%s: out of memory", path);
    }
    size_t k = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const ft_layer *l = &m->layers[i];
        for (int j = 0; j < l->nparams; j++, k++) {
            const ft_param *p = &l->params[j];
            e[k].name = ft_tensor_name(map, l->name, p->name, names[k], sizeof names[k]);
            e[k].dtype = FT_ST_F32;
            e[k].rank = p->shape.rank;
            for (int d = 0; d < p->shape.rank; d++)
                e[k].shape[d] = p->shape.d[d];
            e[k].data = p->data;
        }
        if (strcmp(l->ops->kind, "batchnorm") == 0) {
            e[k].name =
                ft_tensor_name(map, l->name, "num_batches_tracked", names[k], sizeof names[k]);
            e[k].dtype = FT_ST_I64;
            e[k].rank = 0;
            e[k].data = &zero;
            k++;
        }
    }
    int rc = ft_st_write(path, e, k, meta, nmeta, err);
    free(e);
    free(names);
    return rc;
}
