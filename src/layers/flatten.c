/* Flatten: [C, H, W] (or any rank) -> [C*H*W]. NCHW is already contiguous
 * per sample, so this is a copy. */
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"

/* No settings; an empty table and create keep callers free of NULL checks. */
static const ft_keydef flatten_keys[] = {
    {NULL, 0, 0, NULL},
};

static int flatten_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    return FT_OK;
}

static int flatten_setup(ft_layer *l, ft_err *err)
{
    char buf[64];
    size_t n = ft_shape_count(&l->in);
    if (l->in.rank < 1 || n == 0 || n > (size_t)1 << 30)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (flatten): input shape %s has no usable features", l->name,
                       ft_shape_str(&l->in, buf, sizeof buf));
    l->out = ft_shape1((int)n);
    l->nparams = 0;
    return FT_OK;
}

static void flatten_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    if (c->n > 0)
        memcpy(y, x, sizeof(float) * (size_t)c->n * ft_shape_count(&l->in));
}

static void flatten_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                             const float *dy, float *dx, const float *saved)
{
    if (dx && c->n > 0)
        memcpy(dx, dy, sizeof(float) * (size_t)c->n * ft_shape_count(&l->in));
}

const ft_layer_ops ft_flatten_ops = {
    .kind = "flatten",
    .keys = flatten_keys,
    .create = flatten_create,
    .setup = flatten_setup,
    .forward = flatten_forward,
    .backward = flatten_backward,
};
