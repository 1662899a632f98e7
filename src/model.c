/* The sequential model: builds layers from specs, lays out the parameter and
 * gradient arenas, and runs forward/backward over the chain. */
#include "ftune/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/parallel.h"
#include "ftune/rng.h"

static size_t layer_in_floats(const ft_layer *l)
{
    return ft_shape_count(&l->in);
}
static size_t layer_out_floats(const ft_layer *l)
{
    return ft_shape_count(&l->out);
}

static int layer_has_grads(const ft_layer *l)
{
    for (int j = 0; j < l->nparams; j++)
        if (l->params[j].grad)
            return 1;
    return 0;
}

static int build_layer(ft_layer *l, int index, const ft_layer_spec *spec, const ft_shape *in,
                       ft_err *err)
{
    const ft_layer_ops *ops = ft_layer_kind(spec->kind);
    if (!ops) {
        const ft_layer_ops *const *kinds = ft_layer_kinds();
        const char *names[64];
        int n = 0;
        for (; n < 64 && kinds[n]; n++)
            names[n] = kinds[n]->kind;
        const char *near = ft_closest(spec->kind, names, n);
        return ft_fail(err, FT_EINPUT, "layer '%s': unknown type '%s'%s%s%s", spec->name,
                       spec->kind, near ? " (did you mean '" : "", near ? near : "",
                       near ? "'?)" : "");
    }
    snprintf(l->name, sizeof l->name, "%s", spec->name);
    l->ops = ops;
    l->index = index;
    l->in = *in;
    l->frozen = spec->frozen;
    l->lr_mult = spec->lr_mult > 0 ? spec->lr_mult : 1.0f;
    l->name_hash = ft_hash_str(l->name);

    char context[160];
    snprintf(context, sizeof context, "layer '%s' (%s)", l->name, ops->kind);
    if (ft_kv_validate(&spec->kv, ops->keys, context, err))
        return err->code;
    if (ops->create && ops->create(l, &spec->kv, err))
        return ft_err_prefix(err, "layer '%s' (%s)", l->name, ops->kind);
    if (ops->setup(l, err))
        return err->code;
    size_t out = ft_shape_count(&l->out);
    if (out == 0 || l->out.rank < 1) {
        char buf[64];
        return ft_fail(err, FT_EINPUT, "layer '%s' (%s): output shape %s is empty", l->name,
                       ops->kind, ft_shape_str(&l->out, buf, sizeof buf));
    }
    return FT_OK;
}

/* Parameters go in layer order; gradients last layer first, so a bucket of
 * the gradient arena is complete as soon as backward has passed it. */
static int layout_arenas(ft_model *m, ft_err *err)
{
    size_t np = 0;
    for (int i = 0; i < m->nlayers; i++) {
        ft_layer *l = &m->layers[i];
        for (int j = 0; j < l->nparams; j++) {
            /* a config read from a file may ask for anything: the sums must not wrap */
            size_t count = l->params[j].count;
            if (count > SIZE_MAX - np)
                return ft_fail(err, FT_EINPUT, "layer '%s': the model has too many parameters",
                               l->name);
            np += count;
        }
    }
    m->nparams = np;
    if (ft_check_alloc(np, sizeof(float), "the model (its parameters)", err))
        return err->code;
    m->params = ft_alloc_floats(np, err);
    if (!m->params)
        return err->code;

    size_t off = 0;
    for (int i = 0; i < m->nlayers; i++) {
        ft_layer *l = &m->layers[i];
        for (int j = 0; j < l->nparams; j++) {
            l->params[j].data = m->params + off;
            off += l->params[j].count;
        }
    }
    return FT_OK;
}

static int param_trains(const ft_layer *l, const ft_param *p)
{
    return !l->frozen && p->learnable && !p->frozen;
}

int ft_model_layout_grads(ft_model *m, ft_err *err)
{
    size_t ng = 0;
    for (int i = 0; i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++)
            if (param_trains(&m->layers[i], &m->layers[i].params[j]))
                ng += m->layers[i].params[j].count;
    ft_free_floats(m->grads);
    m->ngrads = ng;
    m->grads = ng ? ft_alloc_floats(ng, err) : NULL;
    if (ng && !m->grads)
        return err->code;
    size_t goff = 0;
    m->first_trainable = m->nlayers;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        ft_layer *l = &m->layers[i];
        for (int j = 0; j < l->nparams; j++) {
            ft_param *p = &l->params[j];
            p->grad = NULL;
            if (param_trains(l, p)) {
                p->grad = m->grads + goff;
                goff += p->count;
            }
        }
        if (layer_has_grads(l))
            m->first_trainable = i;
    }
    /* Tied parameters: the owner's storage and gradient range, after both are placed. A
     * head tied to a trainable owner needs no trainable parameter of its own: the owner
     * comes earlier, so first_trainable already covers the head. */
    for (int i = 0; i < m->nlayers; i++) {
        ft_layer *l = &m->layers[i];
        for (int k = 0; k < l->nties; k++) {
            const ft_param *src = l->tie_src[k];
            const ft_layer *owner = &m->layers[l->tie_owner[k]];
            l->ties[k].data = src->data;
            l->ties[k].grad = l->frozen || owner->frozen ? NULL : src->grad;
        }
    }
    for (int i = 0; i < m->nlayers; i++)
        m->layers[i].need_dx = i > m->first_trainable;
    return FT_OK;
}

int ft_model_build(ft_model *m, const ft_shape *input, const ft_layer_spec *specs, int n,
                   ft_err *err)
{
    int rc = ft_model_build_nograds(m, input, specs, n, err);
    return rc ? rc : ft_model_layout_grads(m, err);
}

int ft_model_build_nograds(ft_model *m, const ft_shape *input, const ft_layer_spec *specs, int n,
                           ft_err *err)
{
    memset(m, 0, sizeof *m);
    m->input = *input;
    if (n < 1)
        return ft_fail(err, FT_EINPUT, "model has no layers");
    if (ft_shape_count(input) == 0)
        return ft_fail(err, FT_EINPUT, "model input shape is empty");
    m->layers = ft_calloc((size_t)n, sizeof *m->layers, err);
    if (!m->layers)
        return err->code;
    ft_shape in = *input;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < i; k++)
            if (strcmp(specs[k].name, specs[i].name) == 0)
                return ft_fail(err, FT_EINPUT, "two layers are named '%s'", specs[i].name);
        m->nlayers = i + 1; /* so ft_model_free releases what was created */
        if (build_layer(&m->layers[i], i, &specs[i], &in, err))
            return err->code;
        in = m->layers[i].out;
    }
    m->classes = (int)layer_out_floats(&m->layers[n - 1]);
    return layout_arenas(m, err);
}

static void init_param(ft_param *p, uint64_t seed, uint64_t layer_hash, int j)
{
    switch (p->init) {
    case FT_INIT_ONE:
        for (size_t k = 0; k < p->count; k++)
            p->data[k] = 1.0f;
        break;
    case FT_INIT_UNIFORM: {
        ft_rng r;
        ft_rng_seed(&r, ft_key4(seed, FT_STREAM_INIT, layer_hash, (uint64_t)j));
        for (size_t k = 0; k < p->count; k++)
            p->data[k] = (2.0f * ft_rng_uniform(&r) - 1.0f) * p->init_bound;
        break;
    }
    case FT_INIT_NORMAL: {
        ft_rng r;
        ft_rng_seed(&r, ft_key4(seed, FT_STREAM_INIT, layer_hash, (uint64_t)j));
        for (size_t k = 0; k < p->count; k++)
            p->data[k] = ft_rng_normal(&r) * p->init_bound;
        break;
    }
    default: memset(p->data, 0, p->count * sizeof(float));
    }
}

void ft_model_init_layer(ft_model *m, ft_layer *l, uint64_t seed)
{
    (void)m;
    for (int j = 0; j < l->nparams; j++)
        init_param(&l->params[j], seed, l->name_hash, j);
}

void ft_model_init_params(ft_model *m, uint64_t seed)
{
    for (int i = 0; i < m->nlayers; i++)
        ft_model_init_layer(m, &m->layers[i], seed);
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

static float *alloc_rows(size_t floats_per_row, int rows, size_t *total, ft_err *err)
{
    size_t n;
    if (!ft_mul_size(floats_per_row, (size_t)rows, &n)) {
        ft_fail(err, FT_ERUNTIME, "activation buffer size overflows");
        return NULL;
    }
    *total += n;
    return ft_alloc_floats(n, err);
}

int ft_model_alloc(ft_model *m, int max_batch, ft_err *err)
{
    int ft = m->first_trainable;
    m->max_batch = max_batch;
    m->act = ft_calloc((size_t)m->nlayers, sizeof *m->act, err);
    m->saved = ft_calloc((size_t)m->nlayers, sizeof *m->saved, err);
    if (!m->act || !m->saved)
        return err->code;

    /* Frozen prefix: two buffers reused layer after layer. */
    size_t prefix = 0;
    for (int i = 0; i + 1 < ft && i < m->nlayers; i++)
        prefix = max_sz(prefix, layer_out_floats(&m->layers[i]));
    if (ft >= m->nlayers) /* evaluation-only model: everything is prefix */
        for (int i = 0; i < m->nlayers; i++)
            prefix = max_sz(prefix, layer_out_floats(&m->layers[i]));
    if (prefix) {
        for (int k = 0; k < 2; k++) {
            m->prefix_buf[k] = alloc_rows(prefix, max_batch, &m->prefix_floats, err);
            if (!m->prefix_buf[k])
                return err->code;
        }
    }

    /* Trainable path: every output is kept for backward, starting with the
     * input of the first trainable layer. */
    size_t dmax = 0;
    for (int i = ft > 0 ? ft - 1 : 0; i < m->nlayers && ft < m->nlayers; i++) {
        ft_layer *l = &m->layers[i];
        m->act[i] = alloc_rows(layer_out_floats(l), max_batch, &m->act_floats, err);
        if (!m->act[i])
            return err->code;
        if (i >= ft) {
            size_t sv = l->ops->saved_floats ? l->ops->saved_floats(l, max_batch) : 0;
            if (sv) {
                m->saved[i] = ft_alloc_floats(sv, err);
                if (!m->saved[i])
                    return err->code;
                m->saved_floats += sv;
            }
            dmax = max_sz(dmax, max_sz(layer_in_floats(l), layer_out_floats(l)));
        }
    }
    if (dmax) {
        for (int k = 0; k < 2; k++) {
            m->dbuf[k] = alloc_rows(dmax, max_batch, &m->dbuf_floats, err);
            if (!m->dbuf[k])
                return err->code;
        }
    }
    m->ws_floats = ft_model_ws_floats(m);
    if (m->ws_floats) {
        m->ws = ft_alloc_floats(m->ws_floats, err);
        if (!m->ws)
            return err->code;
    }
    return FT_OK;
}

size_t ft_model_ws_floats(const ft_model *m)
{
    size_t ws = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const ft_layer *l = &m->layers[i];
        if (l->ops->workspace_floats)
            ws = max_sz(ws, l->ops->workspace_floats(l, m->max_batch));
    }
    return ws;
}

const float *ft_model_forward(ft_model *m, const ft_ctx *c, const float *x)
{
    ft_ctx ctx = *c;
    ctx.ws = m->ws;
    int ft = m->first_trainable;
    int keep = c->training && ft < m->nlayers;
    const float *cur = x;
    m->input_x = x;
    for (int i = 0; i < m->nlayers; i++) {
        ft_layer *l = &m->layers[i];
        float *y = m->act[i] ? m->act[i] : m->prefix_buf[i & 1];
        float *saved = keep && i >= ft ? m->saved[i] : NULL;
        l->ops->forward(l, &ctx, cur, y, saved);
        cur = y;
    }
    return cur;
}

/* The frozen prefix keeps nothing for backward, so it can run a few rows at a
 * time: each layer's output is then still in cache when the next layer reads
 * it (W1's conv1 writes 100 KB per row). Rows per chunk, or 0 when a prefix
 * layer needs the whole batch (batchnorm with batch statistics, which also
 * calls ctx->reduce: every rank must make the same calls). */
#define PREFIX_CHUNK_FLOATS (128u * 1024u) /* 512 KB per activation */

static int prefix_chunk_rows(const ft_model *m, int n)
{
    size_t widest = 0, weights = 0;
    for (int i = 0; i < m->first_trainable; i++) {
        const ft_layer *l = &m->layers[i];
        if (strcmp(l->ops->kind, "batchnorm") == 0 && !l->frozen)
            return 0;
        widest = max_sz(widest, max_sz(layer_in_floats(l), layer_out_floats(l)));
        for (int j = 0; j < l->nparams; j++)
            weights += l->params[j].count;
    }
    size_t rows = widest ? PREFIX_CHUNK_FLOATS / widest : (size_t)n;
    if (rows < 1)
        rows = 1;
    /* sgemm packs a layer's weights on every call: chunks pay off only while
     * the weights are small next to a chunk's activations (W1's convolutions:
     * 19 K weights against 100 KB per row), not for large dense layers (W2). */
    if (weights > rows * widest)
        return 0;
    return rows < (size_t)n ? (int)rows : 0;
}

/* Layers [0, first_trainable) over n rows in chunks, the last one writing
 * into act[first_trainable - 1]. Same numbers as one call per layer: every
 * prefix layer computes each row on its own. */
static const float *forward_prefix_chunked(ft_model *m, const ft_ctx *ctx, const float *x, int rows)
{
    const int ft = m->first_trainable, n = ctx->n;
    const size_t in0 = layer_in_floats(&m->layers[0]);
    const size_t outp = layer_out_floats(&m->layers[ft - 1]);
    for (int r0 = 0; r0 < n; r0 += rows) {
        ft_ctx cc = *ctx;
        cc.n = n - r0 < rows ? n - r0 : rows;
        if (ctx->sample_ids)
            cc.sample_ids = ctx->sample_ids + r0;
        if (ctx->lengths)
            cc.lengths = ctx->lengths + r0;
        const float *cur = x + (size_t)r0 * in0;
        for (int i = 0; i < ft; i++) {
            ft_layer *l = &m->layers[i];
            float *y = i == ft - 1 ? m->act[i] + (size_t)r0 * outp : m->prefix_buf[i & 1];
            l->ops->forward(l, &cc, cur, y, NULL);
            cur = y;
        }
        if (m->progress)
            m->progress(m->progress_user);
    }
    return m->act[ft - 1];
}

const float *ft_model_forward_range(ft_model *m, const ft_ctx *c, int first, int end,
                                    const float *x)
{
    ft_ctx ctx = *c;
    ctx.ws = m->ws;
    int ft = m->first_trainable;
    int keep = c->training && ft < m->nlayers;
    if (first < 0)
        first = 0;
    if (end > m->nlayers)
        end = m->nlayers;
    const float *cur = x;
    int rows;
    if (first == 0 && ft >= 2 && ft < m->nlayers && end >= ft && m->act[ft - 1] &&
        (rows = prefix_chunk_rows(m, c->n)) > 0) {
        m->input_x = x;
        cur = forward_prefix_chunked(m, &ctx, x, rows);
        first = ft;
    } else if (first == 0)
        m->input_x = x;
    else if (m->act[first - 1] && m->act[first - 1] != x && c->n > 0) {
        /* backward of layer `first` reads its input from act[first - 1] */
        memcpy(m->act[first - 1], x,
               (size_t)c->n * layer_out_floats(&m->layers[first - 1]) * sizeof(float));
        cur = m->act[first - 1];
    }
    for (int i = first; i < end; i++) {
        ft_layer *l = &m->layers[i];
        float *y = m->act[i] ? m->act[i] : m->prefix_buf[i & 1];
        if (y == cur) /* input already sits in this prefix buffer: use the other */
            y = m->prefix_buf[(i & 1) ^ 1];
        float *saved = keep && i >= ft ? m->saved[i] : NULL;
        l->ops->forward(l, &ctx, cur, y, saved);
        cur = y;
        if (m->progress && i < ft)
            m->progress(m->progress_user);
    }
    return cur;
}

const float *ft_model_forward_from(ft_model *m, const ft_ctx *c, int first_layer, const float *x)
{
    return ft_model_forward_range(m, c, first_layer, m->nlayers, x);
}

static void layer_grad_range(const ft_model *m, const ft_layer *l, size_t *lo, size_t *hi)
{
    *lo = m->ngrads;
    *hi = 0;
    for (int j = 0; j < l->nparams; j++) {
        const ft_param *p = &l->params[j];
        if (!p->grad)
            continue;
        size_t a = (size_t)(p->grad - m->grads);
        if (a < *lo)
            *lo = a;
        if (a + p->count > *hi)
            *hi = a + p->count;
    }
}

void ft_model_backward(ft_model *m, const ft_ctx *c, const float *dlogits)
{
    ft_ctx ctx = *c;
    ctx.ws = m->ws;
    const float *dy = dlogits;
    int k = 0;
    for (int i = m->nlayers - 1; i >= m->first_trainable; i--) {
        ft_layer *l = &m->layers[i];
        const float *x = i > 0 ? m->act[i - 1] : m->input_x;
        float *dx = l->need_dx ? m->dbuf[k] : NULL;
        l->ops->backward(l, &ctx, x, m->act[i], dy, dx, m->saved[i]);
        if (m->grad_ready && layer_has_grads(l)) {
            size_t lo, hi;
            layer_grad_range(m, l, &lo, &hi);
            m->grad_ready(l, lo, hi, m->grad_ready_user);
        }
        dy = dx;
        k ^= 1;
    }
}

static void zero_range(size_t lo, size_t hi, void *ctx)
{
    memset((float *)ctx + lo, 0, (hi - lo) * sizeof(float));
}

void ft_model_zero_grads(ft_model *m)
{
    if (m->grads) /* a GPT-2 small arena is 475 MiB: both cores write it */
        ft_parallel_range(m->ngrads, 1 << 18, zero_range, m->grads);
}

ft_layer *ft_model_find(const ft_model *m, const char *name)
{
    for (int i = 0; i < m->nlayers; i++)
        if (strcmp(m->layers[i].name, name) == 0)
            return &m->layers[i];
    return NULL;
}

size_t ft_model_trainable_count(const ft_model *m)
{
    return m->ngrads;
}

ft_model_mem ft_model_memory(const ft_model *m)
{
    ft_model_mem r;
    r.params = m->nparams * sizeof(float);
    r.grads = m->ngrads * sizeof(float);
    r.activations =
        (m->act_floats + m->prefix_floats + m->saved_floats + m->dbuf_floats) * sizeof(float);
    r.workspace = m->ws_floats * sizeof(float);
    return r;
}

void ft_model_free(ft_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nlayers && m->layers; i++) {
        ft_layer *l = &m->layers[i];
        if (l->ops && l->ops->destroy)
            l->ops->destroy(l);
        else
            free(l->priv);
        if (m->act)
            ft_free_floats(m->act[i]);
        if (m->saved)
            ft_free_floats(m->saved[i]);
    }
    free(m->layers);
    free(m->act);
    free(m->saved);
    for (int k = 0; k < 2; k++) {
        ft_free_floats(m->prefix_buf[k]);
        ft_free_floats(m->dbuf[k]);
    }
    ft_free_floats(m->ws);
    ft_free_floats(m->params);
    ft_free_floats(m->grads);
    memset(m, 0, sizeof *m);
}
