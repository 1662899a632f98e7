/* Batch normalisation (PyTorch nn.BatchNorm1d on [F] or [C, L], BatchNorm2d
 * on [C, H, W]): statistics per channel d[0] over the batch and all other
 * dimensions.
 *
 * Trainable and training: normalise with the batch mean and biased variance,
 * and update the running statistics (running_var with the unbiased variance).
 * With ctx->reduce the sums are taken over all ranks (SyncBatchNorm), so the
 * result does not depend on the rank count. Frozen or evaluation: normalise
 * with the running statistics and never change them. */
#include <math.h>

#include "ftune/layer.h"

#include "layers.h"

typedef struct bn_priv {
    float momentum, eps;
    int affine;
} bn_priv;

static const ft_keydef bn_keys[] = {
    {"momentum", FT_KV_FLOAT, 0, "running-statistics update factor in [0, 1] (default 0.1)"},
    {"eps", FT_KV_FLOAT, 0, "added to the variance, > 0 (default 1e-5)"},
    {"affine", FT_KV_BOOL, 0, "learnable weight and bias (default true)"},
    {NULL, 0, 0, NULL},
};

static int bn_bad_key(ft_layer *l, const ft_kvlist *kv, const char *key, const char *what, double v,
                      ft_err *err)
{
    const ft_kv *e = ft_kv_find(kv, key);
    const char *where = kv->where[0] ? kv->where : "config";
    if (e && e->line > 0)
        return ft_fail(err, FT_EINPUT, "%s:%d: layer '%s' (batchnorm): %s must be %s, not %g",
                       where, e->line, l->name, key, what, v);
    return ft_fail(err, FT_EINPUT, "%s: layer '%s' (batchnorm): %s must be %s, not %g", where,
                   l->name, key, what, v);
}

static int bn_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    double momentum = ft_kv_float(kv, "momentum", 0.1);
    double eps = ft_kv_float(kv, "eps", 1e-5);
    if (!(momentum >= 0.0 && momentum <= 1.0))
        return bn_bad_key(l, kv, "momentum", "in [0, 1]", momentum, err);
    if (!(eps > 0.0))
        return bn_bad_key(l, kv, "eps", "> 0", eps, err);
    bn_priv *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err->code;
    p->momentum = (float)momentum;
    p->eps = (float)eps;
    p->affine = ft_kv_bool(kv, "affine", 1);
    l->priv = p;
    return FT_OK;
}

static int bn_setup(ft_layer *l, ft_err *err)
{
    const bn_priv *p = l->priv;
    if (l->in.rank < 1 || ft_shape_count(&l->in) == 0) {
        char buf[64];
        return ft_fail(
            err, FT_EINPUT,
            "layer '%s' (batchnorm): input shape %s is empty or has no channel dimension "
            "(expected [F] or [C, H, W])",
            l->name, ft_shape_str(&l->in, buf, sizeof buf));
    }
    ft_shape ch = ft_shape1(l->in.d[0]);
    l->out = l->in;
    if (p->affine) {
        ft_layer_add_param(l, "weight", &ch, 1, FT_INIT_ONE, 0.0f);
        ft_layer_add_param(l, "bias", &ch, 1, FT_INIT_ZERO, 0.0f);
    }
    ft_layer_add_param(l, "running_mean", &ch, 0, FT_INIT_ZERO, 0.0f);
    ft_layer_add_param(l, "running_var", &ch, 0, FT_INIT_ONE, 0.0f);
    return FT_OK;
}

/* saved: mean[C], invstd[C], global element count per channel. */
static size_t bn_saved_floats(const ft_layer *l, int n)
{
    return 2 * (size_t)l->in.d[0] + 1;
}

/* ws: reduce buffers (2C + 1), then room for the statistics when there is no
 * saved buffer (2C + 1). */
static size_t bn_workspace_floats(const ft_layer *l, int n)
{
    return 4 * (size_t)l->in.d[0] + 2;
}

typedef struct bn_view {
    size_t C, S;               /* channels, elements per channel per sample */
    const float *gamma, *beta; /* NULL when not affine (1 and 0) */
    float *gamma_grad, *beta_grad;
    float *rmean, *rvar;
} bn_view;

static bn_view bn_get(ft_layer *l)
{
    const bn_priv *p = l->priv;
    bn_view v = {0};
    v.C = (size_t)l->in.d[0];
    v.S = ft_shape_count(&l->in) / v.C;
    int k = 0;
    if (p->affine) {
        v.gamma = l->params[0].data;
        v.gamma_grad = l->params[0].grad;
        v.beta = l->params[1].data;
        v.beta_grad = l->params[1].grad;
        k = 2;
    }
    v.rmean = l->params[k].data;
    v.rvar = l->params[k + 1].data;
    return v;
}

static int bn_batch_mode(const ft_layer *l, const ft_ctx *c)
{
    return c->training && !l->frozen;
}

/* Global mean and invstd per channel into stats (layout of `saved`), in two
 * reductions: [count, sum] first, then the squared deviations about the
 * global mean (no cancellation of E[x^2] - E[x]^2). Returns the biased
 * variance per channel in ws[C + 1 ..] for the running update. */
static void bn_batch_stats(ft_layer *l, const ft_ctx *c, const bn_view *v, const float *x,
                           float *stats)
{
    const size_t C = v->C, S = v->S, CS = C * S, n = (size_t)c->n;
    float *sums = c->ws; /* [count, sum_0 .. sum_C-1] */
    float *ssd = c->ws + C + 1;
    float *mean = stats, *invstd = stats + C;
    const float eps = ((const bn_priv *)l->priv)->eps;

    sums[0] = (float)(n * S);
    for (size_t ch = 0; ch < C; ch++) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++) {
            const float *p = x + i * CS + ch * S;
            for (size_t k = 0; k < S; k++)
                s += p[k];
        }
        sums[1 + ch] = (float)s;
    }
    if (c->reduce)
        c->reduce(sums, C + 1, c->reduce_user);
    const double m = sums[0];
    for (size_t ch = 0; ch < C; ch++)
        mean[ch] = m > 0.0 ? (float)(sums[1 + ch] / m) : 0.0f;

    for (size_t ch = 0; ch < C; ch++) {
        double s = 0.0;
        const float mu = mean[ch];
        for (size_t i = 0; i < n; i++) {
            const float *p = x + i * CS + ch * S;
            for (size_t k = 0; k < S; k++) {
                float d = p[k] - mu;
                s += d * d;
            }
        }
        ssd[ch] = (float)s;
    }
    if (c->reduce)
        c->reduce(ssd, C, c->reduce_user);
    for (size_t ch = 0; ch < C; ch++) {
        ssd[ch] = m > 0.0 ? (float)(ssd[ch] / m) : 0.0f; /* now the biased variance */
        invstd[ch] = 1.0f / sqrtf(ssd[ch] + eps);
    }
    stats[2 * C] = (float)m;
}

/* y = (x - mean) * invstd * gamma + beta, per channel. */
static void bn_normalise(const bn_view *v, int n, const float *x, float *y, const float *mean,
                         const float *invstd)
{
    const size_t C = v->C, S = v->S, CS = C * S;
    for (size_t ch = 0; ch < C; ch++) {
        const float mu = mean[ch];
        const float a = invstd[ch] * (v->gamma ? v->gamma[ch] : 1.0f);
        const float b = v->beta ? v->beta[ch] : 0.0f;
        for (size_t i = 0; i < (size_t)n; i++) {
            const float *p = x + i * CS + ch * S;
            float *q = y + i * CS + ch * S;
            for (size_t k = 0; k < S; k++)
                q[k] = (p[k] - mu) * a + b;
        }
    }
}

static void bn_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    const bn_priv *p = l->priv;
    bn_view v = bn_get(l);
    const size_t C = v.C;

    if (!bn_batch_mode(l, c)) {
        float *invstd = c->ws; /* running statistics, nothing to reduce */
        for (size_t ch = 0; ch < C; ch++)
            invstd[ch] = 1.0f / sqrtf(v.rvar[ch] + p->eps);
        bn_normalise(&v, c->n, x, y, v.rmean, invstd);
        return;
    }

    /* every rank gets here and reduces, even with n == 0 */
    float *stats = saved ? saved : c->ws + 2 * C + 1;
    bn_batch_stats(l, c, &v, x, stats);
    const float *var = c->ws + C + 1;
    const double m = stats[2 * C];
    if (m > 0.0) {
        /* PyTorch: running_var tracks the unbiased variance */
        const double unbias = m > 1.0 ? m / (m - 1.0) : 1.0;
        const float mom = p->momentum;
        for (size_t ch = 0; ch < C; ch++) {
            v.rmean[ch] = (1.0f - mom) * v.rmean[ch] + mom * stats[ch];
            v.rvar[ch] = (1.0f - mom) * v.rvar[ch] + mom * (float)(var[ch] * unbias);
        }
    }
    bn_normalise(&v, c->n, x, y, stats, stats + C);
}

static void bn_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                        const float *dy, float *dx, const float *saved)
{
    const bn_priv *p = l->priv;
    bn_view v = bn_get(l);
    const size_t C = v.C, S = v.S, CS = C * S, n = (size_t)c->n;
    const float *mean, *invstd;
    float *sums = c->ws; /* [sum dy (C), sum dy*xhat (C)] */

    if (bn_batch_mode(l, c)) {
        if (saved) {
            mean = saved;
        } else {
            /* not expected (saved is NULL only without backward); recompute
             * with the same reductions on every rank, no running update */
            float *stats = c->ws + 2 * C + 1;
            bn_batch_stats(l, c, &v, x, stats);
            mean = stats;
        }
    } else {
        float *stats = c->ws + 2 * C + 1;
        for (size_t ch = 0; ch < C; ch++) {
            stats[ch] = v.rmean[ch];
            stats[C + ch] = 1.0f / sqrtf(v.rvar[ch] + p->eps);
        }
        mean = stats;
    }
    invstd = mean + C;

    int want_sums = bn_batch_mode(l, c) || v.gamma_grad || v.beta_grad;
    if (want_sums) {
        for (size_t ch = 0; ch < C; ch++) {
            double sdy = 0.0, sdyx = 0.0;
            const float mu = mean[ch], is = invstd[ch];
            for (size_t i = 0; i < n; i++) {
                const float *px = x + i * CS + ch * S;
                const float *pd = dy + i * CS + ch * S;
                for (size_t k = 0; k < S; k++) {
                    sdy += pd[k];
                    sdyx += pd[k] * ((px[k] - mu) * is);
                }
            }
            sums[ch] = (float)sdy;
            sums[C + ch] = (float)sdyx;
        }
        /* parameter gradients are local: the runtime all-reduces them */
        if (v.beta_grad)
            for (size_t ch = 0; ch < C; ch++)
                v.beta_grad[ch] += sums[ch];
        if (v.gamma_grad)
            for (size_t ch = 0; ch < C; ch++)
                v.gamma_grad[ch] += sums[C + ch];
    }

    if (!bn_batch_mode(l, c)) {
        /* statistics are constants: dx = dy * gamma * invstd */
        if (!dx)
            return;
        for (size_t ch = 0; ch < C; ch++) {
            const float a = invstd[ch] * (v.gamma ? v.gamma[ch] : 1.0f);
            for (size_t i = 0; i < n; i++) {
                const float *pd = dy + i * CS + ch * S;
                float *q = dx + i * CS + ch * S;
                for (size_t k = 0; k < S; k++)
                    q[k] = pd[k] * a;
            }
        }
        return;
    }

    /* reduced even when dx is NULL, so every rank makes the same calls */
    if (c->reduce)
        c->reduce(sums, 2 * C, c->reduce_user);
    if (!dx)
        return;
    const double m = mean[2 * C];
    if (!(m > 0.0))
        return;
    for (size_t ch = 0; ch < C; ch++) {
        const float mu = mean[ch], is = invstd[ch];
        const float a = is * (v.gamma ? v.gamma[ch] : 1.0f);
        const float mdy = (float)(sums[ch] / m), mdyx = (float)(sums[C + ch] / m);
        for (size_t i = 0; i < n; i++) {
            const float *px = x + i * CS + ch * S;
            const float *pd = dy + i * CS + ch * S;
            float *q = dx + i * CS + ch * S;
            for (size_t k = 0; k < S; k++)
                q[k] = a * (pd[k] - mdy - (px[k] - mu) * is * mdyx);
        }
    }
}

const ft_layer_ops ft_batchnorm_ops = {
    .kind = "batchnorm",
    .keys = bn_keys,
    .create = bn_create,
    .setup = bn_setup,
    .saved_floats = bn_saved_floats,
    .workspace_floats = bn_workspace_floats,
    .forward = bn_forward,
    .backward = bn_backward,
};
