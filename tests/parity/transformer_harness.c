/* Parity harness for chains of sequence layers (tests/parity/test_transformer.py).
 *
 *   transformer_harness CASES.h5 RESULTS.h5
 *
 * CASES.h5 holds one group per case (any name):
 *   attributes  nlayers (int), training (int 0/1, default 0), seed, epoch;
 *               model (string, optional): an ftune model file (`ftune import hf`) whose
 *               layers and weights are used instead of layers/ below
 *   x           float32 [n, ...input shape] (token ids for an embedding first layer)
 *   lengths     int32 [n] (optional): ctx->lengths, real tokens per row
 *   dy          float32 [n, ...output shape] (optional: no backward without it)
 *   attribute loss = "lm" (optional, instead of dy): the output is logits [n, T, V] over token
 *               ids x [n, T]; the causal LM loss of train.task = "lm" (include/ftune/lmloss.h:
 *               position t predicts x[t + 1] for t + 1 < length, the mean over the targets)
 *               is computed, and its gradient is the dy of the backward pass
 *   layers/<i>  for i = 0 .. nlayers-1: attributes kind, name (default "layer<i>"), frozen;
 *               kv/ one attribute per layer setting (int, float or string; bools as int 0/1);
 *               params/<p> float32, every parameter the layer declares, in ftune's layout
 * RESULTS.h5 gets, in a group of the same name: y (the last layer's output), out/<i> (each
 * layer's output), with loss = "lm" the attributes loss and targets, and with dy: dx (the input
 * gradient; prefilled with NaN so an element no layer writes shows up) and grads/<layer name>/<p>
 * for every learnable parameter of a non-frozen layer.
 *
 * The layers run in order through the public ft_layer_ops table, as the model runs them, with
 * a saved buffer and a workspace of exactly the sizes each layer asks for; every layer is asked
 * for its input gradient. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/config.h"
#include "ftune/h5io.h"
#include "ftune/h5util.h"
#include "ftune/kv.h"
#include "ftune/layer.h"
#include "ftune/lmloss.h"
#include "ftune/rng.h"

#include "parity_h5.h"

#define MAX_LAYERS 32

static void load_param(hid_t g, const char *cname, const ft_layer *l, const ft_param *p)
{
    char path[160];
    snprintf(path, sizeof path, "params/%s", p->name);
    if (!ph_exists(g, "params") || !ph_exists(g, path))
        ph_die("%s: layer '%s' has no %s", cname, l->name, path);
    ph_array a = ph_read_floats(g, path);
    int same = a.rank == p->shape.rank;
    for (int i = 0; same && i < a.rank; i++)
        same = a.dims[i] == (hsize_t)p->shape.d[i];
    if (!same) {
        char buf[64];
        ph_die("%s: layer '%s' %s has rank %d / %zu values, the layer wants %s", cname, l->name,
               path, a.rank, a.count, ft_shape_str(&p->shape, buf, sizeof buf));
    }
    memcpy(p->data, a.data, sizeof(float) * p->count);
    ph_array_free(&a);
}

static void build_layer(hid_t cg, const char *cname, int i, const ft_shape *in, ft_layer *l)
{
    char gname[32];
    snprintf(gname, sizeof gname, "layers/%d", i);
    if (!ph_exists(cg, "layers") || !ph_exists(cg, gname))
        ph_die("%s: no group %s", cname, gname);
    hid_t g = ph_group(cg, gname, 0);
    char kind[64], dflt[32];
    ph_attr_str(g, "kind", "", kind, sizeof kind);
    const ft_layer_ops *ops = ft_layer_kind(kind);
    if (!ops)
        ph_die("%s: %s: unknown layer kind '%s'", cname, gname, kind);
    ft_kvlist kv;
    ph_read_kv(g, cname, ops, &kv);
    memset(l, 0, sizeof *l);
    snprintf(dflt, sizeof dflt, "layer%d", i);
    ph_attr_str(g, "name", dflt, l->name, sizeof l->name);
    l->ops = ops;
    l->index = i;
    l->frozen = (int)ph_attr_long(g, "frozen", 0);
    l->need_dx = 1;
    l->lr_mult = 1.0f;
    l->name_hash = ft_hash_str(l->name);
    l->in = *in;
    ft_err err = {0};
    char context[160];
    snprintf(context, sizeof context, "case %s layer %d (%s)", cname, i, kind);
    if (ft_kv_validate(&kv, ops->keys, context, &err) ||
        (ops->create && ops->create(l, &kv, &err)) || ops->setup(l, &err))
        ph_die("%s: %s", cname, err.msg);
    for (int j = 0; j < l->nparams; j++) {
        ft_param *p = &l->params[j];
        p->data = ph_alloc_floats(p->count, 0.0f);
        load_param(g, cname, l, p);
        p->grad = !l->frozen && p->learnable ? ph_alloc_floats(p->count, 0.0f) : NULL;
    }
    H5Gclose(g);
}

/* The layers of an ftune model file, with its weights; every layer is asked for dx. */
static void load_model(const char *cname, const char *path, const ft_shape *in, ft_config *cfg,
                       ft_model *m)
{
    ft_err err = {0};
    char *text = NULL;
    memset(m, 0, sizeof *m);
    if (ft_load_config_text(path, &text, &err) || ft_config_load_string(cfg, text, path, &err) ||
        ft_model_build(m, &cfg->input, cfg->layers, cfg->nlayers, &err) ||
        ft_load_weights(path, m, NULL, 0, 1, NULL, NULL, &err))
        ph_die("%s: model %s: %s", cname, path, err.msg);
    free(text);
    char a[64], b[64];
    if (m->input.rank != in->rank || ft_shape_count(&m->input) != ft_shape_count(in))
        ph_die("%s: x rows are %s, the model %s wants %s", cname, ft_shape_str(in, a, sizeof a),
               path, ft_shape_str(&m->input, b, sizeof b));
    if (m->nlayers > MAX_LAYERS)
        ph_die("%s: model %s has %d layers, at most %d", cname, path, m->nlayers, MAX_LAYERS);
    ft_model_zero_grads(m);
    for (int i = 0; i < m->nlayers; i++)
        m->layers[i].need_dx = 1;
}

static void run_case(hid_t g, hid_t og, const char *cname)
{
    char model_path[1024];
    ph_attr_str(g, "model", "", model_path, sizeof model_path);
    int nl = model_path[0] ? 0 : (int)ph_attr_long(g, "nlayers", 0);
    if (!model_path[0] && (nl < 1 || nl > MAX_LAYERS))
        ph_die("%s: nlayers must be in [1, %d]", cname, MAX_LAYERS);
    ph_array x = ph_read_floats(g, "x");
    if (x.rank < 2 || x.rank > FT_MAX_DIMS + 1)
        ph_die("%s: x must be [n, ...] with 1 to %d sample dimensions", cname, FT_MAX_DIMS);
    const int n = (int)x.dims[0];
    ft_shape in;
    memset(&in, 0, sizeof in);
    in.rank = x.rank - 1;
    for (int i = 0; i < in.rank; i++)
        in.d[i] = (int)x.dims[1 + i];

    ft_layer own[MAX_LAYERS], *L = own;
    ft_model model;
    ft_config mcfg;
    memset(&model, 0, sizeof model);
    memset(&mcfg, 0, sizeof mcfg);
    if (model_path[0]) {
        load_model(cname, model_path, &in, &mcfg, &model);
        L = model.layers;
        nl = model.nlayers;
    }
    float *act[MAX_LAYERS], *saved[MAX_LAYERS];
    size_t ws_max = 0, widest = ft_shape_count(&in);
    for (int i = 0; i < nl; i++) {
        if (!model_path[0])
            build_layer(g, cname, i, i ? &L[i - 1].out : &in, &L[i]);
        const ft_layer_ops *ops = L[i].ops;
        size_t nsv = ops->saved_floats ? ops->saved_floats(&L[i], n) : 0;
        size_t nws = ops->workspace_floats ? ops->workspace_floats(&L[i], n) : 0;
        saved[i] = nsv ? ph_alloc_floats(nsv, NAN) : NULL;
        ws_max = nws > ws_max ? nws : ws_max;
        act[i] = ph_alloc_floats((size_t)n * ft_shape_count(&L[i].out), NAN);
        size_t o = ft_shape_count(&L[i].out);
        widest = o > widest ? o : widest;
    }
    float *ws = ws_max ? ph_alloc_floats(ws_max, NAN) : NULL;

    ph_array len = {0};
    ft_ctx c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.training = (int)ph_attr_long(g, "training", 0);
    c.seed = (uint64_t)ph_attr_long(g, "seed", 0);
    c.epoch = (uint64_t)ph_attr_long(g, "epoch", 0);
    c.ws = ws;
    if (ph_exists(g, "lengths")) {
        len = ph_read_ints(g, "lengths");
        if (len.count != (size_t)n)
            ph_die("%s: lengths has %zu values for %d rows", cname, len.count, n);
        c.lengths = len.data;
    }

    char loss_kind[16];
    ph_attr_str(g, "loss", "", loss_kind, sizeof loss_kind);
    if (loss_kind[0] && strcmp(loss_kind, "lm"))
        ph_die("%s: loss = \"%s\": only \"lm\" is known", cname, loss_kind);
    const int lm = loss_kind[0] != 0;
    if (lm && ph_exists(g, "dy"))
        ph_die("%s: give dy or loss = \"lm\", not both", cname);
    const int backward = lm || ph_exists(g, "dy");
    hid_t outs = ph_group(og, "out", 1);
    const float *cur = x.data;
    for (int i = 0; i < nl; i++) {
        L[i].ops->forward(&L[i], &c, cur, act[i], backward ? saved[i] : NULL);
        char name[16];
        snprintf(name, sizeof name, "%d", i);
        ph_write_shaped(outs, name, act[i], n, &L[i].out);
        cur = act[i];
    }
    H5Gclose(outs);
    ph_write_shaped(og, "y", act[nl - 1], n, &L[nl - 1].out);

    if (backward) {
        const size_t nout = (size_t)n * ft_shape_count(&L[nl - 1].out);
        ph_array dy = {0};
        if (lm) {
            const ft_shape *o = &L[nl - 1].out;
            if (in.rank != 1 || o->rank != 2 || o->d[0] != in.d[0])
                ph_die("%s: loss = \"lm\" needs token ids [T] in and logits [T, V] out", cname);
            const int T = in.d[0], V = o->d[1];
            const double targets = ft_lm_targets(c.lengths, n, T);
            if (targets < 1)
                ph_die("%s: loss = \"lm\": no row has two real tokens", cname);
            dy.data = ph_alloc_floats(nout, NAN);
            dy.count = nout;
            ft_lm_stats st = {0, 0, 0};
            long bad = ft_lm_loss(act[nl - 1], x.data, c.lengths, n, T, V, (float)(1.0 / targets),
                                  dy.data, &st);
            if (bad >= 0)
                ph_die("%s: row %ld has a target id outside [0, %d)", cname, bad, V);
            ph_write_double_attr(og, "loss", st.nll / st.tokens);
            ph_write_double_attr(og, "targets", st.tokens);
        } else {
            dy = ph_read_floats(g, "dy");
        }
        if (dy.count != nout)
            ph_die("%s: dy has %zu values, the output has %zu", cname, dy.count, nout);
        float *d[2] = {ph_alloc_floats((size_t)n * widest, NAN),
                       ph_alloc_floats((size_t)n * widest, NAN)};
        const float *g_in = dy.data;
        for (int i = nl - 1; i >= 0; i--) {
            float *dx = d[i & 1];
            const size_t nin = (size_t)n * ft_shape_count(&L[i].in);
            for (size_t k = 0; k < nin; k++)
                dx[k] = NAN;
            L[i].ops->backward(&L[i], &c, i ? act[i - 1] : x.data, act[i], g_in, dx, saved[i]);
            g_in = dx;
        }
        ph_write_shaped(og, "dx", g_in, n, &in);
        hid_t gg = ph_group(og, "grads", 1);
        for (int i = 0; i < nl; i++) {
            hid_t lg = ph_group(gg, L[i].name, 1);
            for (int j = 0; j < L[i].nparams; j++)
                if (L[i].params[j].grad)
                    ph_write_param(lg, &L[i].params[j], L[i].params[j].grad);
            H5Gclose(lg);
        }
        H5Gclose(gg);
        free(d[0]);
        free(d[1]);
        ph_array_free(&dy);
    }

    for (int i = 0; i < nl; i++) {
        if (!model_path[0]) { /* a model's layers are freed with it, below */
            for (int j = 0; j < L[i].nparams; j++) {
                free(L[i].params[j].data);
                free(L[i].params[j].grad);
            }
            if (L[i].ops->destroy)
                L[i].ops->destroy(&L[i]);
            else
                free(L[i].priv);
        }
        free(act[i]);
        free(saved[i]);
    }
    if (model_path[0]) {
        ft_model_free(&model);
        ft_config_free(&mcfg);
    }
    free(ws);
    if (len.data)
        ph_array_free(&len);
    ph_array_free(&x);
}

typedef struct run_state {
    hid_t out;
    int cases;
} run_state;

static herr_t visit_case(hid_t root, const char *name, const H5L_info_t *info, void *user)
{
    run_state *st = user;
    hid_t g = ph_group(root, name, 0);
    hid_t og = ph_group(st->out, name, 1);
    run_case(g, og, name);
    H5Gclose(og);
    H5Gclose(g);
    st->cases++;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s CASES.h5 RESULTS.h5\n", argv[0]);
        return 2;
    }
    ft_h5_quiet();
    hid_t in = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (in < 0)
        ph_die("cannot open %s", argv[1]);
    hid_t out = H5Fcreate(argv[2], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (out < 0)
        ph_die("cannot create %s", argv[2]);
    run_state st = {out, 0};
    if (H5Literate(in, H5_INDEX_NAME, H5_ITER_INC, NULL, visit_case, &st) < 0)
        ph_die("cannot iterate over the cases of %s", argv[1]);
    H5Fclose(out);
    H5Fclose(in);
    printf("transformer_harness: %d cases\n", st.cases);
    return 0;
}
