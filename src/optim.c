/* SGD (momentum, Nesterov, weight decay) and AdamW with torch.optim semantics,
 * plus global gradient-norm clipping. State lives in one array laid out like the
 * gradient arena, so a parameter's state is found at the same offset as its
 * gradient and checkpoints can store it as one block. */
#include "ftune/optim.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/parallel.h"

int ft_optim_state_per_param(int type)
{
    switch (type) {
    case FT_OPT_SGD: return 1;
    case FT_OPT_ADAMW: return 2;
    default: return 0;
    }
}

/* Floats of state actually allocated: plain SGD (momentum 0) keeps none. */
static size_t state_floats_per_grad(const ft_optim_cfg *cfg)
{
    if (cfg->type == FT_OPT_SGD && cfg->momentum == 0.0f)
        return 0;
    return (size_t)ft_optim_state_per_param(cfg->type);
}

static int check_cfg(const ft_optim_cfg *c, ft_err *err)
{
    if (c->type != FT_OPT_SGD && c->type != FT_OPT_ADAMW)
        return ft_fail(err, FT_EINPUT, "optimizer: unknown type %d (expected sgd or adamw)",
                       c->type);
    if (!isfinite(c->lr) || c->lr < 0.0f)
        return ft_fail(err, FT_EINPUT, "optimizer: lr must be a finite value >= 0, got %g",
                       (double)c->lr);
    if (!isfinite(c->weight_decay) || c->weight_decay < 0.0f)
        return ft_fail(err, FT_EINPUT, "optimizer: weight_decay must be >= 0, got %g",
                       (double)c->weight_decay);
    if (c->type == FT_OPT_SGD) {
        if (!isfinite(c->momentum) || c->momentum < 0.0f)
            return ft_fail(err, FT_EINPUT, "optimizer: momentum must be >= 0, got %g",
                           (double)c->momentum);
        /* torch rejects this too: Nesterov without momentum is plain SGD in disguise. */
        if (c->nesterov && c->momentum == 0.0f)
            return ft_fail(err, FT_EINPUT, "optimizer: nesterov requires momentum > 0");
    } else {
        if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f))
            return ft_fail(err, FT_EINPUT, "optimizer: beta1 must be in [0, 1), got %g",
                           (double)c->beta1);
        if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f))
            return ft_fail(err, FT_EINPUT, "optimizer: beta2 must be in [0, 1), got %g",
                           (double)c->beta2);
        if (!(c->eps >= 0.0f) || !isfinite(c->eps))
            return ft_fail(err, FT_EINPUT, "optimizer: eps must be >= 0, got %g", (double)c->eps);
    }
    return FT_OK;
}

int ft_optim_init(ft_optim *o, const ft_optim_cfg *cfg, const ft_model *m, ft_err *err)
{
    memset(o, 0, sizeof *o);
    int rc = check_cfg(cfg, err);
    if (rc)
        return rc;
    o->cfg = *cfg;
    size_t n;
    if (!ft_mul_size(state_floats_per_grad(cfg), m->ngrads, &n))
        return ft_fail(err, FT_ERUNTIME, "optimizer state for %zu gradients overflows", m->ngrads);
    if (n > 0) {
        /* Zeroed: a zero momentum buffer gives buf = g on the first step, as
         * torch's clone does; zero m and v are AdamW's initial moments. */
        o->state = ft_alloc_floats(n, err);
        if (!o->state)
            return ft_err_prefix(err, "optimizer state");
    }
    o->nstate = n;
    return FT_OK;
}

void ft_optim_free(ft_optim *o)
{
    if (!o)
        return;
    ft_free_floats(o->state);
    o->state = NULL;
    o->nstate = 0;
}

static void sgd_update(const ft_optim_cfg *c, float *p, const float *g, float *buf, size_t n,
                       float lr)
{
    const float wd = c->weight_decay, mu = c->momentum;
    for (size_t i = 0; i < n; i++) {
        /* The gradient arena is left as it is (torch does not change .grad). */
        float d = g[i] + wd * p[i];
        if (buf) {
            buf[i] = mu * buf[i] + d;
            d = c->nesterov ? d + mu * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
}

typedef struct adamw_job {
    float *p, *mom, *var;
    const float *g;
    float b1, b2, eps, decay, step_size, bc2_sqrt;
} adamw_job;

static void adamw_range(size_t lo, size_t hi, void *ctx)
{
    const adamw_job *j = ctx;
    float *p = j->p, *mom = j->mom, *var = j->var;
    const float *g = j->g;
    const float b1 = j->b1, b2 = j->b2, eps = j->eps, decay = j->decay;
    const float step_size = j->step_size, bc2_sqrt = j->bc2_sqrt;
    for (size_t i = lo; i < hi; i++) {
        p[i] *= decay;
        mom[i] = b1 * mom[i] + (1.0f - b1) * g[i];
        var[i] = b2 * var[i] + (1.0f - b2) * g[i] * g[i];
        float denom = sqrtf(var[i]) / bc2_sqrt + eps;
        p[i] -= step_size * mom[i] / denom;
    }
}

static void adamw_update(const ft_optim_cfg *c, float *p, const float *g, float *mom, float *var,
                         size_t n, float lr, long t)
{
    /* Bias corrections in double: 1 - beta^t loses digits in float for large t. */
    const double bc1 = 1.0 - pow((double)c->beta1, (double)t);
    const double bc2 = 1.0 - pow((double)c->beta2, (double)t);
    adamw_job j = {p,
                   mom,
                   var,
                   g,
                   c->beta1,
                   c->beta2,
                   c->eps,
                   1.0f - lr * c->weight_decay,
                   (float)((double)lr / bc1),
                   (float)sqrt(bc2)};
    /* elementwise: the same numbers on any number of threads */
    ft_parallel_range(n, 1 << 16, adamw_range, &j);
}

void ft_optim_step(ft_optim *o, ft_model *m, float lr)
{
    const ft_optim_cfg *c = &o->cfg;
    o->t++;
    for (int li = 0; li < m->nlayers; li++) {
        ft_layer *l = &m->layers[li];
        const float lr_eff = lr * l->lr_mult;
        for (int pi = 0; pi < l->nparams; pi++) {
            ft_param *p = &l->params[pi];
            /* Frozen layers and buffers have no gradient and no state. */
            if (!p->grad || !p->learnable || p->count == 0)
                continue;
            size_t off = (size_t)(p->grad - m->grads);
            assert(p->grad >= m->grads && off + p->count <= m->ngrads);
            if (c->type == FT_OPT_SGD) {
                float *buf = o->nstate ? o->state + off : NULL;
                sgd_update(c, p->data, p->grad, buf, p->count, lr_eff);
            } else {
                float *mom = o->state + off;
                float *var = o->state + m->ngrads + off;
                adamw_update(c, p->data, p->grad, mom, var, p->count, lr_eff, o->t);
            }
        }
    }
}

double ft_grad_norm(const float *g, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * (double)g[i];
    return sqrt(s);
}

double ft_clip_grad_norm(float *g, size_t n, double max_norm)
{
    double norm = ft_grad_norm(g, n);
    if (max_norm > 0.0) {
        /* torch.nn.utils.clip_grad_norm_: the 1e-6 keeps a zero norm finite.
         * A NaN norm compares false and leaves the gradients alone. */
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0) {
            float fc = (float)coef;
            for (size_t i = 0; i < n; i++)
                g[i] *= fc;
        }
    }
    return norm;
}
