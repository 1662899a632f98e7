/* Inverted dropout (PyTorch nn.Dropout): in training each element is zeroed
 * with probability `rate` and the kept ones are scaled by 1/(1-rate); in
 * evaluation it is the identity.
 *
 * The mask of a row is a pure function of (seed, epoch, global sample id,
 * layer name), so it does not depend on the rank count or on where the
 * sample sits in the batch. Backward regenerates it instead of keeping it. */
#include <string.h>

#include "ftune/layer.h"
#include "ftune/rng.h"

#include "layers.h"

typedef struct dropout_priv {
    float rate;
} dropout_priv;

static const ft_keydef dropout_keys[] = {
    {"rate", FT_KV_FLOAT, 0, "probability of zeroing an element, in [0, 1) (default 0.5)"},
    {NULL, 0, 0, NULL},
};

static int dropout_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    double rate = ft_kv_float(kv, "rate", 0.5);
    if (!(rate >= 0.0 && rate < 1.0)) {
        const ft_kv *e = ft_kv_find(kv, "rate");
        const char *where = kv->where[0] ? kv->where : "config";
        if (e && e->line > 0)
            return ft_fail(err, FT_EINPUT,
                           "%s:%d: layer '%s' (dropout): rate must be in [0, 1), not %g", where,
                           e->line, l->name, rate);
        return ft_fail(err, FT_EINPUT, "%s: layer '%s' (dropout): rate must be in [0, 1), not %g",
                       where, l->name, rate);
    }
    dropout_priv *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err->code;
    p->rate = (float)rate;
    l->priv = p;
    return FT_OK;
}

static int dropout_setup(ft_layer *l, ft_err *err)
{
    l->out = l->in;
    return FT_OK;
}

static int dropout_active(const ft_layer *l, const ft_ctx *c)
{
    return c->training && ((const dropout_priv *)l->priv)->rate > 0.0f;
}

static void row_rng(const ft_layer *l, const ft_ctx *c, int row, ft_rng *r)
{
    uint64_t sid = c->sample_ids ? c->sample_ids[row] : (uint64_t)row;
    uint64_t key = ft_key4(c->seed, FT_STREAM_DROPOUT, c->epoch, sid);
    ft_rng_seed(r, ft_hash64(key ^ l->name_hash));
}

/* out = in * mask * scale, row by row; the same for forward and backward. */
static void apply_mask(const ft_layer *l, const ft_ctx *c, const float *in, float *out)
{
    const float rate = ((const dropout_priv *)l->priv)->rate;
    const float scale = 1.0f / (1.0f - rate);
    size_t f = ft_shape_count(&l->in);
    for (int i = 0; i < c->n; i++) {
        ft_rng r;
        row_rng(l, c, i, &r);
        const float *a = in + (size_t)i * f;
        float *b = out + (size_t)i * f;
        for (size_t j = 0; j < f; j++)
            b[j] = ft_rng_uniform(&r) >= rate ? a[j] * scale : 0.0f;
    }
}

static void dropout_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    size_t total = (size_t)c->n * ft_shape_count(&l->in);
    if (total == 0)
        return;
    if (dropout_active(l, c))
        apply_mask(l, c, x, y);
    else if (y != x)
        memcpy(y, x, sizeof(float) * total);
}

static void dropout_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                             const float *dy, float *dx, const float *saved)
{
    size_t total = (size_t)c->n * ft_shape_count(&l->in);
    if (!dx || total == 0)
        return;
    if (dropout_active(l, c))
        apply_mask(l, c, dy, dx);
    else if (dx != dy)
        memcpy(dx, dy, sizeof(float) * total);
}

/* Generation runs in evaluation mode: the identity on n rows of the last dimension. */
static void dropout_step(ft_layer *l, int n, const ft_step_row *rows, int max_pos, const float *x,
                         float *y, float *ws)
{
    (void)rows;
    (void)max_pos;
    (void)ws;
    if (y != x)
        memcpy(y, x, sizeof(float) * (size_t)n * (size_t)l->in.d[l->in.rank - 1]);
}

const ft_layer_ops ft_dropout_ops = {
    .kind = "dropout",
    .keys = dropout_keys,
    .create = dropout_create,
    .setup = dropout_setup,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .step = dropout_step,
};
