/* Leaky ReLU: x for x > 0, slope * x otherwise (PyTorch nn.LeakyReLU). */
#include "ftune/layer.h"

#include "layers.h"

typedef struct leaky_priv {
    float slope;
} leaky_priv;

static const ft_keydef leaky_keys[] = {
    {"slope", FT_KV_FLOAT, 0, "negative-side slope (default 0.01)"},
    {NULL, 0, 0, NULL},
};

static int leaky_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    leaky_priv *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err->code;
    p->slope = (float)ft_kv_float(kv, "slope", 0.01);
    l->priv = p;
    return FT_OK;
}

static int leaky_setup(ft_layer *l, ft_err *err)
{
    l->out = l->in;
    return FT_OK;
}

static void leaky_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    const float slope = ((const leaky_priv *)l->priv)->slope;
    size_t total = (size_t)c->n * ft_shape_count(&l->in);
    for (size_t i = 0; i < total; i++)
        y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}

static void leaky_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                           const float *dy, float *dx, const float *saved)
{
    if (!dx)
        return;
    const float slope = ((const leaky_priv *)l->priv)->slope;
    size_t total = (size_t)c->n * ft_shape_count(&l->in);
    /* x == 0 takes the slope, as in PyTorch */
    for (size_t i = 0; i < total; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : slope * dy[i];
}

const ft_layer_ops ft_leaky_relu_ops = {
    .kind = "leaky_relu",
    .keys = leaky_keys,
    .create = leaky_create,
    .setup = leaky_setup,
    .forward = leaky_forward,
    .backward = leaky_backward,
};
