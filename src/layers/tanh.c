/* Hyperbolic tangent, elementwise on any shape. */
#include <math.h>

#include "ftune/layer.h"

#include "layers.h"

static const ft_keydef tanh_keys[] = {{NULL, 0, 0, NULL}};

static int tanh_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    return FT_OK;
}

static int tanh_setup(ft_layer *l, ft_err *err)
{
    l->out = l->in;
    return FT_OK;
}

static void tanh_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    size_t total = (size_t)c->n * ft_shape_count(&l->in);
    for (size_t i = 0; i < total; i++)
        y[i] = tanhf(x[i]);
}

static void tanh_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                          const float *dy, float *dx, const float *saved)
{
    if (!dx)
        return;
    size_t total = (size_t)c->n * ft_shape_count(&l->in);
    /* d tanh = 1 - y^2: uses the kept output, no transcendental call */
    for (size_t i = 0; i < total; i++)
        dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

const ft_layer_ops ft_tanh_ops = {
    .kind = "tanh",
    .keys = tanh_keys,
    .create = tanh_create,
    .setup = tanh_setup,
    .forward = tanh_forward,
    .backward = tanh_backward,
};
