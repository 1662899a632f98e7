/* Global average pooling: [C, H, W] -> [C], the mean of each plane. */
#include "ftune/layer.h"

#include "layers.h"

/* No settings; an empty table and create keep callers free of NULL checks. */
static const ft_keydef gap_keys[] = {
    {NULL, 0, 0, NULL},
};

static int gap_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    return FT_OK;
}

static int gap_setup(ft_layer *l, ft_err *err)
{
    char buf[64];
    if (l->in.rank != 3 || l->in.d[0] < 1 || l->in.d[1] < 1 || l->in.d[2] < 1)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (global_avgpool): input shape %s must be "
                       "[channels, height, width]",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf));
    l->out = ft_shape1(l->in.d[0]);
    l->nparams = 0;
    return FT_OK;
}

static void gap_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    const size_t hw = (size_t)l->in.d[1] * l->in.d[2];
    const size_t planes = (size_t)(c->n > 0 ? c->n : 0) * l->in.d[0];
    const float inv = 1.0f / (float)hw;
    for (size_t i = 0; i < planes; i++) {
        const float *p = x + i * hw;
        float s = 0.0f;
        for (size_t j = 0; j < hw; j++)
            s += p[j];
        y[i] = s * inv;
    }
}

static void gap_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                         const float *dy, float *dx, const float *saved)
{
    if (!dx || c->n <= 0)
        return;
    const size_t hw = (size_t)l->in.d[1] * l->in.d[2];
    const size_t planes = (size_t)c->n * l->in.d[0];
    const float inv = 1.0f / (float)hw;
    for (size_t i = 0; i < planes; i++) {
        float g = dy[i] * inv;
        float *p = dx + i * hw;
        for (size_t j = 0; j < hw; j++)
            p[j] = g;
    }
}

const ft_layer_ops ft_globalavgpool_ops = {
    .kind = "global_avgpool",
    .keys = gap_keys,
    .create = gap_create,
    .setup = gap_setup,
    .forward = gap_forward,
    .backward = gap_backward,
};
