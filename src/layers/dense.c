/* Fully connected layer: y = x W^T + b, W [out, in] as in PyTorch nn.Linear.
 * Input of any rank is read as flat features, so a dense layer can follow a
 * conv output directly. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"
#include "lora.h"

typedef struct dense_cfg {
    int units;
    int bias;
    int in; /* flattened input features (setup) */
    ft_lora lora;
    int lora_a; /* index of weight_lora_A, -1 without adapters */
} dense_cfg;

#define DENSE_LORA_SITE 16 /* dropout site of the adapter's input */

static const ft_keydef dense_keys[] = {
    {"units", FT_KV_INT, 1, "number of output features"},
    {"bias", FT_KV_BOOL, 0, "add a learnable bias (default true)"},
    FT_LORA_KEYDEFS,
    {NULL, 0, 0, NULL},
};

static int dense_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    long units = ft_kv_int(kv, "units", 0);
    if (units < 1 || units > (1L << 30))
        return ft_fail(err, FT_EINPUT, "layer '%s' (dense): units must be >= 1, got %ld", l->name,
                       units);
    dense_cfg *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err ? err->code : FT_ERUNTIME;
    p->units = (int)units;
    p->bias = ft_kv_bool(kv, "bias", 1);
    l->priv = p;
    return ft_lora_create(l, kv, &p->lora, err);
}

static int dense_setup(ft_layer *l, ft_err *err)
{
    dense_cfg *p = l->priv;
    char buf[64];
    size_t in = ft_shape_count(&l->in);
    if (l->in.rank < 1 || in == 0 || in > (size_t)1 << 30)
        return ft_fail(err, FT_EINPUT, "layer '%s' (dense): input shape %s has no usable features",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf));
    p->in = (int)in;
    l->out = ft_shape1(p->units);
    l->nparams = 0; /* setup may run again on the same layer */
    /* PyTorch's default: kaiming_uniform(a=sqrt(5)) gives U(+-1/sqrt(fan_in)) */
    float bound = (float)(1.0 / sqrt((double)in));
    ft_shape ws = {2, {p->units, p->in, 0, 0}};
    ft_layer_add_param(l, "weight", &ws, 1, FT_INIT_UNIFORM, bound);
    if (p->bias) {
        ft_shape bs = ft_shape1(p->units);
        ft_layer_add_param(l, "bias", &bs, 1, FT_INIT_UNIFORM, bound);
    }
    p->lora_a = -1;
    if (ft_lora_targets(&p->lora, "weight"))
        p->lora_a = ft_lora_add_params(l, &p->lora, "weight", p->in, p->units);
    return FT_OK;
}

static void dense_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    const dense_cfg *p = l->priv;
    const int n = c->n, in = p->in, out = p->units;
    if (n <= 0)
        return;
    float beta = 0.0f;
    if (p->bias) {
        /* start from the bias rows so sgemm adds into them (beta = 1) */
        const float *b = l->params[1].data;
        for (int i = 0; i < n; i++)
            memcpy(y + (size_t)i * out, b, sizeof(float) * (size_t)out);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, l->params[0].data,
                in, beta, y, out);
    if (p->lora_a >= 0)
        ft_lora_fwd(l, c, &p->lora, DENSE_LORA_SITE, 0, 1, (size_t)n, in, out, x,
                    &l->params[p->lora_a], &l->params[p->lora_a + 1], y, c->ws);
}

static size_t dense_workspace_floats(const ft_layer *l, int n)
{
    const dense_cfg *p = l->priv;
    return p->lora_a >= 0 ? ft_lora_ws_floats(&p->lora, (size_t)(n > 0 ? n : 0), p->in) : 0;
}

static void dense_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                           const float *dy, float *dx, const float *saved)
{
    const dense_cfg *p = l->priv;
    const int n = c->n, in = p->in, out = p->units;
    if (n <= 0)
        return;
    const ft_param *w = &l->params[0];
    if (w->grad) /* dW += dy^T x */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 1.0f,
                    w->grad, in);
    if (p->bias && l->params[1].grad) {
        float *db = l->params[1].grad;
        for (int i = 0; i < n; i++) {
            const float *row = dy + (size_t)i * out;
            for (int o = 0; o < out; o++)
                db[o] += row[o];
        }
    }
    if (dx) /* dx = dy W */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, w->data,
                    in, 0.0f, dx, in);
    if (p->lora_a >= 0) /* after dx: the adapter adds its part */
        ft_lora_bwd(l, c, &p->lora, DENSE_LORA_SITE, 1, (size_t)n, in, out, x, dy,
                    &l->params[p->lora_a], &l->params[p->lora_a + 1], dx, c->ws);
}

const ft_layer_ops ft_dense_ops = {
    .kind = "dense",
    .keys = dense_keys,
    .create = dense_create,
    .setup = dense_setup,
    .workspace_floats = dense_workspace_floats,
    .forward = dense_forward,
    .backward = dense_backward,
};
