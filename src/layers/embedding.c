/* Token + position embedding (GPT-2's wte + wpe, BERT's word + position
 * (+ token type) embeddings): input [T] token ids stored as floats, output
 * [T, D] with row t = weight[id_t] + position[t] (+ segment[0]).
 *
 * Parameters: "weight" [vocab, D]; "position" [max_len, D] (positions =
 * true); "segment" [segments, D] (segments > 0: BERT's token_type_embeddings;
 * ftune's text datasets carry no segment ids, so every token is segment 0 and
 * only row 0 is used and trained). All start as N(0, 0.02^2).
 *
 * Ids are exact integers in float32 below 2^24; `ftune data import-text`
 * writes ids < the tokenizer's vocabulary size. An id outside [0, vocab) (or
 * NaN) cannot come from it, but is clamped into range rather than read out of
 * bounds. Ids are not differentiable: backward accumulates into the rows that
 * were read and zero-fills dx when it is asked for. */
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"

typedef struct emb_priv {
    int vocab, dim, max_len, positions, segments;
    int T; /* setup */
} emb_priv;

static const ft_keydef emb_keys[] = {
    {"vocab", FT_KV_INT, 1, "number of token ids (rows of weight)"},
    {"dim", FT_KV_INT, 1, "embedding width D"},
    {"max_len", FT_KV_INT, 0, "rows of the position table, >= the input length (default: it)"},
    {"positions", FT_KV_BOOL, 0, "add learned position embeddings (default true)"},
    {"segments", FT_KV_INT, 0, "token types (BERT: 2); segment 0 is added everywhere (default 0)"},
    {NULL, 0, 0, NULL},
};

#define EMB_LIMIT (1L << 30)

static int emb_bad(ft_layer *l, const ft_kvlist *kv, const char *key, const char *what, long v,
                   ft_err *err)
{
    const ft_kv *e = ft_kv_find(kv, key);
    const char *where = kv->where[0] ? kv->where : "config";
    if (e && e->line > 0)
        return ft_fail(err, FT_EINPUT, "%s:%d: layer '%s' (embedding): %s must be %s, not %ld",
                       where, e->line, l->name, key, what, v);
    return ft_fail(err, FT_EINPUT, "%s: layer '%s' (embedding): %s must be %s, not %ld", where,
                   l->name, key, what, v);
}

static int emb_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    long vocab = ft_kv_int(kv, "vocab", 0), dim = ft_kv_int(kv, "dim", 0);
    long max_len = ft_kv_int(kv, "max_len", 0), segments = ft_kv_int(kv, "segments", 0);
    if (vocab < 1 || vocab > EMB_LIMIT)
        return emb_bad(l, kv, "vocab", "in [1, 2^30]", vocab, err);
    if (dim < 1 || dim > EMB_LIMIT)
        return emb_bad(l, kv, "dim", "in [1, 2^30]", dim, err);
    if (ft_kv_find(kv, "max_len") && (max_len < 1 || max_len > EMB_LIMIT))
        return emb_bad(l, kv, "max_len", "in [1, 2^30]", max_len, err);
    if (segments < 0 || segments > 1024)
        return emb_bad(l, kv, "segments", "in [0, 1024]", segments, err);
    emb_priv *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err->code;
    p->vocab = (int)vocab;
    p->dim = (int)dim;
    p->max_len = (int)max_len; /* 0: the input length */
    p->positions = ft_kv_bool(kv, "positions", 1);
    p->segments = (int)segments;
    l->priv = p;
    return FT_OK;
}

static int emb_setup(ft_layer *l, ft_err *err)
{
    emb_priv *p = l->priv;
    char buf[64];
    if (l->in.rank != 1 || l->in.d[0] < 1)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (embedding): input shape %s must be [T] (token ids)", l->name,
                       ft_shape_str(&l->in, buf, sizeof buf));
    p->T = l->in.d[0];
    int max_len = p->max_len ? p->max_len : p->T;
    if (p->positions && max_len < p->T)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (embedding): the input has %d positions but max_len is %d",
                       l->name, p->T, max_len);
    l->out.rank = 2;
    l->out.d[0] = p->T;
    l->out.d[1] = p->dim;
    l->out.d[2] = l->out.d[3] = 0;
    l->nparams = 0;
    ft_shape ws = {2, {p->vocab, p->dim, 0, 0}};
    ft_layer_add_param(l, "weight", &ws, 1, FT_INIT_NORMAL, 0.02f);
    if (p->positions) {
        ft_shape ps = {2, {max_len, p->dim, 0, 0}};
        ft_layer_add_param(l, "position", &ps, 1, FT_INIT_NORMAL, 0.02f);
    }
    if (p->segments) {
        ft_shape ss = {2, {p->segments, p->dim, 0, 0}};
        ft_layer_add_param(l, "segment", &ss, 1, FT_INIT_NORMAL, 0.02f);
    }
    return FT_OK;
}

static int emb_id(const emb_priv *p, float v)
{
    if (!(v > 0.0f)) /* negative, zero or NaN */
        return 0;
    if (v >= (float)(p->vocab - 1))
        return p->vocab - 1;
    return (int)(v + 0.5f);
}

static const ft_param *emb_param(const ft_layer *l, const char *name)
{
    for (int j = 0; j < l->nparams; j++)
        if (strcmp(l->params[j].name, name) == 0)
            return &l->params[j];
    return NULL;
}

static void emb_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    const emb_priv *p = l->priv;
    const int T = p->T, D = p->dim;
    const float *w = l->params[0].data;
    const ft_param *pos = emb_param(l, "position"), *seg = emb_param(l, "segment");
    for (int i = 0; i < c->n; i++) {
        for (int t = 0; t < T; t++) {
            const float *row = w + (size_t)emb_id(p, x[(size_t)i * T + t]) * D;
            float *out = y + ((size_t)i * T + t) * D;
            memcpy(out, row, sizeof(float) * (size_t)D);
            if (pos) {
                const float *pr = pos->data + (size_t)t * D;
                for (int j = 0; j < D; j++)
                    out[j] += pr[j];
            }
            if (seg)
                for (int j = 0; j < D; j++)
                    out[j] += seg->data[j];
        }
    }
}

static void emb_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                         const float *dy, float *dx, const float *saved)
{
    const emb_priv *p = l->priv;
    const int T = p->T, D = p->dim;
    float *dw = l->params[0].grad;
    const ft_param *pos = emb_param(l, "position"), *seg = emb_param(l, "segment");
    float *dpos = pos ? pos->grad : NULL, *dseg = seg ? seg->grad : NULL;
    for (int i = 0; i < c->n; i++) {
        for (int t = 0; t < T; t++) {
            const float *g = dy + ((size_t)i * T + t) * D;
            if (dw) {
                float *row = dw + (size_t)emb_id(p, x[(size_t)i * T + t]) * D;
                for (int j = 0; j < D; j++)
                    row[j] += g[j];
            }
            if (dpos) {
                float *row = dpos + (size_t)t * D;
                for (int j = 0; j < D; j++)
                    row[j] += g[j];
            }
            if (dseg)
                for (int j = 0; j < D; j++)
                    dseg[j] += g[j];
        }
    }
    if (dx && c->n > 0)
        memset(dx, 0, sizeof(float) * (size_t)c->n * (size_t)T);
}

/* Generation: a position beyond the table has no embedding. */
static int emb_step_limit(const ft_layer *l, int *max_pos, ft_err *err)
{
    (void)err;
    const ft_param *pos = emb_param(l, "position");
    if (pos && pos->shape.d[0] < *max_pos)
        *max_pos = pos->shape.d[0];
    return FT_OK;
}

/* One position of emb_forward per sequence: row i of x is a token id. */
static void emb_step(ft_layer *l, int n, const ft_step_row *rows, int max_pos, const float *x,
                     float *y, float *ws)
{
    (void)max_pos;
    (void)ws;
    const emb_priv *p = l->priv;
    const int D = p->dim;
    const ft_param *pp = emb_param(l, "position"), *seg = emb_param(l, "segment");
    for (int i = 0; i < n; i++) {
        float *yr = y + (size_t)i * D;
        memcpy(yr, l->params[0].data + (size_t)emb_id(p, x[i]) * D, sizeof(float) * (size_t)D);
        if (pp)
            for (int j = 0; j < D; j++)
                yr[j] += pp->data[(size_t)rows[i].pos * D + j];
        if (seg)
            for (int j = 0; j < D; j++)
                yr[j] += seg->data[j];
    }
}

const ft_layer_ops ft_embedding_ops = {
    .kind = "embedding",
    .keys = emb_keys,
    .create = emb_create,
    .setup = emb_setup,
    .forward = emb_forward,
    .backward = emb_backward,
    .step_limit = emb_step_limit,
    .step = emb_step,
};
