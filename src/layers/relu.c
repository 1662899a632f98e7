/* ReLU, elementwise on any shape. */
#include "ftune/layer.h"

#include "layers.h"

static const ft_keydef relu_keys[] = {{NULL, 0, 0, NULL}};

static int relu_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    return FT_OK;
}

static int relu_setup(ft_layer *l, ft_err *err)
{
    l->out = l->in;
    return FT_OK;
}

static void relu_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    size_t total = (size_t)c->n * ft_shape_count(&l->in);
    /* `x < 0 ? 0 : x` lets NaN through, so divergence stays visible */
    for (size_t i = 0; i < total; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

static void relu_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                          const float *dy, float *dx, const float *saved)
{
    if (!dx)
        return;
    size_t total = (size_t)c->n * ft_shape_count(&l->in);
    /* gradient at exactly 0 is 0, as in PyTorch. dy is loaded unconditionally
     * so the compiler can use a vector select instead of a branch per element
     * (a branch on the sign of x mispredicts about half the time). */
    for (size_t i = 0; i < total; i++) {
        float g = dy[i];
        dx[i] = x[i] > 0.0f ? g : 0.0f;
    }
}

const ft_layer_ops ft_relu_ops = {
    .kind = "relu",
    .keys = relu_keys,
    .create = relu_create,
    .setup = relu_setup,
    .forward = relu_forward,
    .backward = relu_backward,
};
