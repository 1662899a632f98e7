/* GELU (PyTorch nn.GELU): exact x * Phi(x) by default, or the tanh
 * approximation with approximate = "tanh". */
#include <math.h>
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"

typedef struct gelu_priv {
    int tanh_approx;
} gelu_priv;

static const ft_keydef gelu_keys[] = {
    {"approximate", FT_KV_STRING, 0, "\"none\" (exact erf form, default) or \"tanh\""},
    {NULL, 0, 0, NULL},
};

#define GELU_RSQRT2 0.70710678118654752f   /* 1/sqrt(2) */
#define GELU_RSQRT2PI 0.39894228040143268f /* 1/sqrt(2*pi) */
#define GELU_SQRT2OPI 0.79788456080286536f /* sqrt(2/pi) */
#define GELU_COEF 0.044715f

static int gelu_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    const char *a = ft_kv_string(kv, "approximate", "none");
    if (strcmp(a, "none") != 0 && strcmp(a, "tanh") != 0) {
        const ft_kv *e = ft_kv_find(kv, "approximate");
        const char *where = kv->where[0] ? kv->where : "config";
        if (e && e->line > 0)
            return ft_fail(err, FT_EINPUT,
                           "%s:%d: layer '%s' (gelu): approximate must be \"none\" or \"tanh\", "
                           "not \"%s\"",
                           where, e->line, l->name, a);
        return ft_fail(
            err, FT_EINPUT,
            "%s: layer '%s' (gelu): approximate must be \"none\" or \"tanh\", not \"%s\"", where,
            l->name, a);
    }
    gelu_priv *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err->code;
    p->tanh_approx = strcmp(a, "tanh") == 0;
    l->priv = p;
    return FT_OK;
}

static int gelu_setup(ft_layer *l, ft_err *err)
{
    l->out = l->in;
    return FT_OK;
}

static void gelu_apply(int tanh_approx, size_t total, const float *x, float *y)
{
    if (tanh_approx) {
        for (size_t i = 0; i < total; i++) {
            float v = x[i];
            float u = GELU_SQRT2OPI * (v + GELU_COEF * v * v * v);
            y[i] = 0.5f * v * (1.0f + tanhf(u));
        }
    } else {
        for (size_t i = 0; i < total; i++)
            y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * GELU_RSQRT2));
    }
}

static void gelu_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    gelu_apply(((const gelu_priv *)l->priv)->tanh_approx, (size_t)c->n * ft_shape_count(&l->in), x,
               y);
}

/* Element-wise, so a position is one row of the last dimension. */
static void gelu_step(ft_layer *l, int n, const ft_step_row *rows, int max_pos, const float *x,
                      float *y, float *ws)
{
    (void)rows;
    (void)max_pos;
    (void)ws;
    gelu_apply(((const gelu_priv *)l->priv)->tanh_approx,
               (size_t)n * (size_t)l->in.d[l->in.rank - 1], x, y);
}

static void gelu_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                          const float *dy, float *dx, const float *saved)
{
    if (!dx)
        return;
    size_t total = (size_t)c->n * ft_shape_count(&l->in);
    if (((const gelu_priv *)l->priv)->tanh_approx) {
        for (size_t i = 0; i < total; i++) {
            float v = x[i];
            float t = tanhf(GELU_SQRT2OPI * (v + GELU_COEF * v * v * v));
            float du = GELU_SQRT2OPI * (1.0f + 3.0f * GELU_COEF * v * v);
            dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
        }
    } else {
        /* d/dx x*Phi(x) = Phi(x) + x*phi(x) */
        for (size_t i = 0; i < total; i++) {
            float v = x[i];
            float cdf = 0.5f * (1.0f + erff(v * GELU_RSQRT2));
            float pdf = GELU_RSQRT2PI * expf(-0.5f * v * v);
            dx[i] = dy[i] * (cdf + v * pdf);
        }
    }
}

const ft_layer_ops ft_gelu_ops = {
    .kind = "gelu",
    .keys = gelu_keys,
    .create = gelu_create,
    .setup = gelu_setup,
    .forward = gelu_forward,
    .backward = gelu_backward,
    .step = gelu_step,
};
