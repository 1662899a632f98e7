/* Layer normalisation (PyTorch nn.LayerNorm over the last dimension): each
 * row of D = in.d[rank - 1] floats is normalised with its own mean and biased
 * variance, then scaled by weight [D] and shifted by bias [D]. On a sequence
 * [T, D] that is every position on its own (GPT-2's ln_f, BERT's embedding
 * LayerNorm). Rows do not interact, so it is the same in training and
 * evaluation and needs no reduction across ranks. */
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"
#include "seqcommon.h"

typedef struct ln_priv {
    float eps;
} ln_priv;

static const ft_keydef ln_keys[] = {
    {"eps", FT_KV_FLOAT, 0, "added to the variance, > 0 (default 1e-5; BERT uses 1e-12)"},
    {NULL, 0, 0, NULL},
};

static int ln_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    double eps = ft_kv_float(kv, "eps", 1e-5);
    if (!(eps > 0.0 && eps < 1.0)) {
        const ft_kv *e = ft_kv_find(kv, "eps");
        const char *where = kv->where[0] ? kv->where : "config";
        if (e && e->line > 0)
            return ft_fail(err, FT_EINPUT,
                           "%s:%d: layer '%s' (layernorm): eps must be in (0, 1), not %g", where,
                           e->line, l->name, eps);
        return ft_fail(err, FT_EINPUT, "%s: layer '%s' (layernorm): eps must be in (0, 1), not %g",
                       where, l->name, eps);
    }
    ln_priv *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err->code;
    p->eps = (float)eps;
    l->priv = p;
    return FT_OK;
}

static int ln_dim(const ft_layer *l)
{
    return l->in.d[l->in.rank - 1];
}

static size_t ln_rows(const ft_layer *l, int n)
{
    return (size_t)(n > 0 ? n : 0) * (ft_shape_count(&l->in) / (size_t)ln_dim(l));
}

static int ln_setup(ft_layer *l, ft_err *err)
{
    if (l->in.rank < 1 || ft_shape_count(&l->in) == 0) {
        char buf[64];
        return ft_fail(err, FT_EINPUT, "layer '%s' (layernorm): input shape %s is empty", l->name,
                       ft_shape_str(&l->in, buf, sizeof buf));
    }
    l->out = l->in;
    l->nparams = 0;
    ft_shape d = ft_shape1(ln_dim(l));
    ft_layer_add_param(l, "weight", &d, 1, FT_INIT_ONE, 0.0f);
    ft_layer_add_param(l, "bias", &d, 1, FT_INIT_ZERO, 0.0f);
    return FT_OK;
}

/* saved: mean and rstd of every row. */
static size_t ln_saved_floats(const ft_layer *l, int n)
{
    return 2 * ln_rows(l, n);
}

/* The statistics when there is no saved buffer. */
static size_t ln_workspace_floats(const ft_layer *l, int n)
{
    return 2 * ln_rows(l, n);
}

static void ln_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    const size_t rows = ln_rows(l, c->n);
    if (rows == 0)
        return;
    float *stats = saved ? saved : c->ws;
    ft_seq_ln_fwd(rows, ln_dim(l), ((const ln_priv *)l->priv)->eps, x, l->params[0].data,
                  l->params[1].data, y, stats, stats + rows);
}

static void ln_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                        const float *dy, float *dx, const float *saved)
{
    const size_t rows = ln_rows(l, c->n);
    if (rows == 0)
        return;
    const int D = ln_dim(l);
    const float *stats = saved;
    if (!stats) { /* not expected (saved is NULL only without backward): recompute */
        ft_seq_ln_fwd(rows, D, ((const ln_priv *)l->priv)->eps, x, NULL, NULL, NULL, c->ws,
                      c->ws + rows);
        stats = c->ws;
    }
    ft_seq_ln_bwd(rows, D, x, stats, stats + rows, l->params[0].data, dy, l->params[0].grad,
                  l->params[1].grad, dx, 0);
}

/* ln_forward on n rows (positions do not interact); the statistics go to ws. */
static size_t ln_step_ws_floats(const ft_layer *l, int n, int max_pos)
{
    (void)l;
    (void)max_pos;
    return 2 * (size_t)n;
}

static void ln_step(ft_layer *l, int n, const ft_step_row *rows, int max_pos, const float *x,
                    float *y, float *ws)
{
    (void)rows;
    (void)max_pos;
    ft_seq_ln_fwd((size_t)n, ln_dim(l), ((const ln_priv *)l->priv)->eps, x, l->params[0].data,
                  l->params[1].data, y, ws, ws + n);
}

const ft_layer_ops ft_layernorm_ops = {
    .kind = "layernorm",
    .keys = ln_keys,
    .create = ln_create,
    .setup = ln_setup,
    .saved_floats = ln_saved_floats,
    .workspace_floats = ln_workspace_floats,
    .forward = ln_forward,
    .backward = ln_backward,
    .step_ws_floats = ln_step_ws_floats,
    .step = ln_step,
};
