/* Logistic sigmoid, elementwise on any shape. */
#include <math.h>

#include "ftune/layer.h"

#include "layers.h"

static const ft_keydef sigmoid_keys[] = {{NULL, 0, 0, NULL}};

static int sigmoid_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    return FT_OK;
}

static int sigmoid_setup(ft_layer *l, ft_err *err)
{
    l->out = l->in;
    return FT_OK;
}

static void sigmoid_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    size_t total = (size_t)c->n * ft_shape_count(&l->in);
    for (size_t i = 0; i < total; i++) {
        /* exp of a non-positive argument only: no overflow for large |x| */
        float e = expf(-fabsf(x[i]));
        float s = 1.0f / (1.0f + e);
        y[i] = x[i] >= 0.0f ? s : e * s;
    }
}

static void sigmoid_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                             const float *dy, float *dx, const float *saved)
{
    if (!dx)
        return;
    size_t total = (size_t)c->n * ft_shape_count(&l->in);
    for (size_t i = 0; i < total; i++)
        dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

const ft_layer_ops ft_sigmoid_ops = {
    .kind = "sigmoid",
    .keys = sigmoid_keys,
    .create = sigmoid_create,
    .setup = sigmoid_setup,
    .forward = sigmoid_forward,
    .backward = sigmoid_backward,
};
