/* Language-model head: [T, D] -> [T, V] logits = h W^T, one row per position.
 *
 * Tied (GPT-2): `tie = "wte"` names an earlier layer whose parameter "weight" [V, D] (an
 * embedding's token table) is used as W; the head then has no parameter of its own
 * (ft_layer_tie: the model points it at the owner's storage and gradient, so the head's
 * dW adds into the embedding's gradient). Untied: `vocab = V` gives the head its own
 * "weight" [V, D], N(0, 0.02^2). No bias (GPT-2's lm_head has none). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"

typedef struct lm_priv {
    char tie[FT_NAME_MAX]; /* owner layer, or "" when untied */
    int vocab;             /* untied: from the config; tied: from the owner (setup) */
    int T, D;              /* setup */
} lm_priv;

static const ft_keydef lm_keys[] = {
    {"tie", FT_KV_STRING, 0, "earlier layer whose \"weight\" [vocab, D] is the head (GPT-2: wte)"},
    {"vocab", FT_KV_INT, 0, "untied head: output size V (its own weight [V, D])"},
    {NULL, 0, 0, NULL},
};

static int lm_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    const char *tie = ft_kv_string(kv, "tie", NULL);
    long vocab = ft_kv_int(kv, "vocab", 0);
    if (tie && ft_kv_find(kv, "vocab"))
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (lm_head): give either tie (the embedding layer whose weight "
                       "is reused) or vocab (an untied head), not both",
                       l->name);
    if (!tie && (vocab < 1 || vocab > (1L << 30)))
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (lm_head): expected tie = \"<embedding layer>\" or vocab = V "
                       "(1 to 2^30)%s",
                       l->name, ft_kv_find(kv, "vocab") ? ", vocab is out of range" : "");
    if (tie && (!tie[0] || strlen(tie) >= FT_NAME_MAX))
        return ft_fail(err, FT_EINPUT, "layer '%s' (lm_head): tie must name a layer", l->name);
    lm_priv *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err ? err->code : FT_ERUNTIME;
    if (tie)
        snprintf(p->tie, sizeof p->tie, "%s", tie);
    p->vocab = tie ? 0 : (int)vocab;
    l->priv = p;
    return FT_OK;
}

static int lm_setup(ft_layer *l, ft_err *err)
{
    lm_priv *p = l->priv;
    char buf[64], wb[64];
    if (l->in.rank != 2 || l->in.d[0] < 1 || l->in.d[1] < 1)
        return ft_fail(err, FT_EINPUT, "layer '%s' (lm_head): input shape %s, expected [T, D]",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf));
    p->T = l->in.d[0];
    p->D = l->in.d[1];
    l->nparams = 0;
    l->nties = 0;
    if (p->tie[0]) {
        const ft_layer *o = ft_layer_earlier(l, p->tie);
        if (!o)
            return ft_fail(err, FT_EINPUT,
                           "layer '%s' (lm_head): tie = \"%s\": no layer of that name before it",
                           l->name, p->tie);
        const ft_param *w = NULL;
        for (int j = 0; j < o->nparams && !w; j++)
            if (strcmp(o->params[j].name, "weight") == 0)
                w = &o->params[j];
        if (!w || w->shape.rank != 2 || w->shape.d[1] != p->D)
            return ft_fail(err, FT_EINPUT,
                           "layer '%s' (lm_head): tie = \"%s\" (%s) needs a parameter \"weight\" "
                           "of shape [vocab, %d] (the head's input width), found %s",
                           l->name, p->tie, o->ops->kind, p->D,
                           w ? ft_shape_str(&w->shape, wb, sizeof wb) : "none");
        p->vocab = w->shape.d[0];
        ft_layer_tie(l, o, w);
    } else {
        ft_shape ws = {2, {p->vocab, p->D, 0, 0}};
        ft_layer_add_param(l, "weight", &ws, 1, FT_INIT_NORMAL, 0.02f);
    }
    ft_shape out = {2, {p->T, p->vocab, 0, 0}};
    l->out = out;
    return FT_OK;
}

static const ft_param *lm_weight(const ft_layer *l)
{
    return l->nties ? &l->ties[0] : &l->params[0];
}

static void lm_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    (void)saved;
    const lm_priv *p = l->priv;
    const int rows = c->n * p->T;
    if (rows <= 0)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, p->vocab, p->D, 1.0f, x, p->D,
                lm_weight(l)->data, p->D, 0.0f, y, p->vocab);
}

static void lm_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                        const float *dy, float *dx, const float *saved)
{
    (void)y;
    (void)saved;
    const lm_priv *p = l->priv;
    const int rows = c->n * p->T;
    if (rows <= 0)
        return;
    const ft_param *w = lm_weight(l);
    if (w->grad) /* dW += dy^T x (into the owner's gradient when tied) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->vocab, p->D, rows, 1.0f, dy,
                    p->vocab, x, p->D, 1.0f, w->grad, p->D);
    if (dx) /* dx = dy W */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, p->D, p->vocab, 1.0f, dy,
                    p->vocab, w->data, p->D, 0.0f, dx, p->D);
}

/* lm_forward on n rows: logits [n, V] = x W^T (one sgemm reads W once for all rows). */
static void lm_step(ft_layer *l, int n, const ft_step_row *rows, int max_pos, const float *x,
                    float *y, float *ws)
{
    (void)rows;
    (void)max_pos;
    (void)ws;
    const lm_priv *p = l->priv;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, p->vocab, p->D, 1.0f, x, p->D,
                lm_weight(l)->data, p->D, 0.0f, y, p->vocab);
}

const ft_layer_ops ft_lm_head_ops = {
    .kind = "lm_head",
    .keys = lm_keys,
    .create = lm_create,
    .setup = lm_setup,
    .forward = lm_forward,
    .backward = lm_backward,
    .step = lm_step,
};
