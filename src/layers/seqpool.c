/* Sequence pooling [T, D] -> [D] for classification heads:
 *   first: position 0 (BERT's [CLS]);
 *   mean:  the mean over the real positions t < length (ctx->lengths);
 *   last:  the last real position, length - 1 (GPT-2 style classification).
 * Without ctx->lengths every position is real. A row with length 0 pools to
 * zeros for mean and last (first still reads position 0). */
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"
#include "seqcommon.h"

enum { POOL_FIRST, POOL_MEAN, POOL_LAST };

typedef struct pool_priv {
    int mode;
} pool_priv;

static const ft_keydef pool_keys[] = {
    {"mode", FT_KV_STRING, 0, "\"first\" (default), \"mean\" (over real tokens) or \"last\""},
    {NULL, 0, 0, NULL},
};

static int pool_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    const char *m = ft_kv_string(kv, "mode", "first");
    int mode = strcmp(m, "first") == 0  ? POOL_FIRST
               : strcmp(m, "mean") == 0 ? POOL_MEAN
               : strcmp(m, "last") == 0 ? POOL_LAST
                                        : -1;
    if (mode < 0) {
        const ft_kv *e = ft_kv_find(kv, "mode");
        const char *where = kv->where[0] ? kv->where : "config";
        if (e && e->line > 0)
            return ft_fail(err, FT_EINPUT,
                           "%s:%d: layer '%s' (seq_pool): mode must be \"first\", \"mean\" or "
                           "\"last\", not \"%s\"",
                           where, e->line, l->name, m);
        return ft_fail(err, FT_EINPUT,
                       "%s: layer '%s' (seq_pool): mode must be \"first\", \"mean\" or \"last\", "
                       "not \"%s\"",
                       where, l->name, m);
    }
    pool_priv *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err->code;
    p->mode = mode;
    l->priv = p;
    return FT_OK;
}

static int pool_setup(ft_layer *l, ft_err *err)
{
    if (l->in.rank != 2 || l->in.d[0] < 1 || l->in.d[1] < 1) {
        char buf[64];
        return ft_fail(err, FT_EINPUT, "layer '%s' (seq_pool): input shape %s must be [T, D]",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf));
    }
    l->out = ft_shape1(l->in.d[1]);
    return FT_OK;
}

/* The positions [lo, hi) that row i pools over, and the weight of each. */
static void pool_span(const ft_layer *l, const ft_ctx *c, int i, int *lo, int *hi, float *w)
{
    const int T = l->in.d[0], mode = ((const pool_priv *)l->priv)->mode;
    int len = ft_seq_length(c, i, T);
    *w = 1.0f;
    if (mode == POOL_FIRST) {
        *lo = 0;
        *hi = 1;
    } else if (mode == POOL_LAST) {
        *lo = len - 1;
        *hi = len;
        if (len == 0)
            *lo = *hi = 0;
    } else {
        *lo = 0;
        *hi = len;
        *w = len > 0 ? 1.0f / (float)len : 0.0f;
    }
}

static void pool_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    const int T = l->in.d[0], D = l->in.d[1];
    for (int i = 0; i < c->n; i++) {
        int lo, hi;
        float w;
        pool_span(l, c, i, &lo, &hi, &w);
        float *out = y + (size_t)i * D;
        memset(out, 0, sizeof(float) * (size_t)D);
        for (int t = lo; t < hi; t++) {
            const float *row = x + ((size_t)i * T + t) * D;
            for (int j = 0; j < D; j++)
                out[j] += row[j];
        }
        if (w != 1.0f)
            for (int j = 0; j < D; j++)
                out[j] *= w;
    }
}

static void pool_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                          const float *dy, float *dx, const float *saved)
{
    if (!dx || c->n <= 0)
        return;
    const int T = l->in.d[0], D = l->in.d[1];
    memset(dx, 0, sizeof(float) * (size_t)c->n * (size_t)T * (size_t)D);
    for (int i = 0; i < c->n; i++) {
        int lo, hi;
        float w;
        pool_span(l, c, i, &lo, &hi, &w);
        const float *g = dy + (size_t)i * D;
        for (int t = lo; t < hi; t++) {
            float *row = dx + ((size_t)i * T + t) * D;
            for (int j = 0; j < D; j++)
                row[j] = g[j] * w;
        }
    }
}

const ft_layer_ops ft_seq_pool_ops = {
    .kind = "seq_pool",
    .keys = pool_keys,
    .create = pool_create,
    .setup = pool_setup,
    .forward = pool_forward,
    .backward = pool_backward,
};
