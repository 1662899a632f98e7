/* Parity harness for single layers and the loss (tests/parity/test_layers.py).
 *
 *   layer_harness CASES.h5 RESULTS.h5
 *
 * CASES.h5 holds one group per case (any name). A layer case has:
 *   attributes  kind (string, a layer kind), layer_name (string, default "layer": it seeds the
 *               dropout masks), training, frozen, saved (int 0/1; defaults 1, 0, 1: saved = 0
 *               passes no saved buffer, so backward recomputes what it needs), seed, epoch
 *   kv/         one attribute per layer setting (int, float or string; bools as int 0/1)
 *   x           float32 [n, ...input shape]
 *   dy          float32 [n, ...output shape] (optional: no backward without it)
 *   params/<p>  float32, every parameter and buffer the layer declares, in PyTorch layout
 *   grad_init/<p> (optional) starting value of a gradient (backward accumulates into it)
 * and RESULTS.h5 gets, in a group of the same name: y, dx (only with dy; prefilled with NaN so
 * an element the layer does not write shows up), grads/<p> (learnable parameters of a
 * non-frozen layer), params/<p> (after forward: batchnorm's running statistics).
 *
 * A loss case has kind = "xent", logits float32 [n, C], labels int32 [n], optional
 * class_weights float32 [C] and attribute smoothing; the results are attributes loss (the mean:
 * sum of l_i / sum of w[y_i]) and weight_sum, and datasets dlogits (ft_xent_backward with scale
 * 1 / weight_sum), probs and losses (per sample).
 *
 * Layers are driven through the public ft_layer_ops table, the way the model does, with
 * buffers of exactly the sizes the layer asks for. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/h5util.h"
#include "ftune/kv.h"
#include "ftune/layer.h"
#include "ftune/loss.h"
#include "ftune/rng.h"

#include "parity_h5.h"

/* Fills dst (count floats) from dataset grp/name, which must have the parameter's shape. */
static void load_param(hid_t g, const char *cname, const char *grp, const ft_param *p, float *dst)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", grp, p->name);
    ph_array a = ph_read_floats(g, path);
    int same = a.rank == p->shape.rank;
    for (int i = 0; same && i < a.rank; i++)
        same = a.dims[i] == (hsize_t)p->shape.d[i];
    if (!same) {
        char buf[64];
        ph_die("%s: %s has rank %d / %zu values, the layer wants %s", cname, path, a.rank, a.count,
               ft_shape_str(&p->shape, buf, sizeof buf));
    }
    memcpy(dst, a.data, sizeof(float) * p->count);
    ph_array_free(&a);
}

static void run_layer_case(hid_t g, hid_t og, const char *cname, const char *kind)
{
    const ft_layer_ops *ops = ft_layer_kind(kind);
    if (!ops)
        ph_die("%s: unknown layer kind '%s'", cname, kind);
    ft_kvlist kv;
    ph_read_kv(g, cname, ops, &kv);

    ft_layer l;
    memset(&l, 0, sizeof l);
    ph_attr_str(g, "layer_name", "layer", l.name, sizeof l.name);
    l.ops = ops;
    l.frozen = (int)ph_attr_long(g, "frozen", 0);
    l.need_dx = 1;
    l.lr_mult = 1.0f;
    l.name_hash = ft_hash_str(l.name);

    ph_array x = ph_read_floats(g, "x");
    if (x.rank < 2 || x.rank > FT_MAX_DIMS + 1)
        ph_die("%s: x must be [n, ...] with 1 to %d sample dimensions", cname, FT_MAX_DIMS);
    const int n = (int)x.dims[0];
    l.in.rank = x.rank - 1;
    for (int i = 0; i < l.in.rank; i++)
        l.in.d[i] = (int)x.dims[1 + i];

    ft_err err = {0};
    char context[160];
    snprintf(context, sizeof context, "case %s (%s)", cname, kind);
    if (ft_kv_validate(&kv, ops->keys, context, &err) ||
        (ops->create && ops->create(&l, &kv, &err)) || ops->setup(&l, &err))
        ph_die("%s: %s", cname, err.msg);

    for (int j = 0; j < l.nparams; j++) {
        ft_param *p = &l.params[j];
        p->data = ph_alloc_floats(p->count, 0.0f);
        load_param(g, cname, "params", p, p->data);
        if (!l.frozen && p->learnable) {
            p->grad = ph_alloc_floats(p->count, 0.0f);
            char path[128];
            snprintf(path, sizeof path, "grad_init/%s", p->name);
            if (ph_exists(g, "grad_init") && ph_exists(g, path))
                load_param(g, cname, "grad_init", p, p->grad);
        }
    }

    const size_t nin = (size_t)n * ft_shape_count(&l.in);
    const size_t nout = (size_t)n * ft_shape_count(&l.out);
    const int use_saved = (int)ph_attr_long(g, "saved", 1);
    const size_t nsaved = ops->saved_floats ? ops->saved_floats(&l, n) : 0;
    const size_t nws = ops->workspace_floats ? ops->workspace_floats(&l, n) : 0;
    float *saved = use_saved && nsaved ? ph_alloc_floats(nsaved, NAN) : NULL;
    float *ws = nws ? ph_alloc_floats(nws, NAN) : NULL;
    float *y = ph_alloc_floats(nout, NAN);

    ft_ctx c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.training = (int)ph_attr_long(g, "training", 0);
    c.seed = (uint64_t)ph_attr_long(g, "seed", 0);
    c.epoch = (uint64_t)ph_attr_long(g, "epoch", 0);
    c.ws = ws;

    const int backward = ph_exists(g, "dy");
    ops->forward(&l, &c, x.data, y, backward ? saved : NULL);
    ph_write_shaped(og, "y", y, n, &l.out);

    if (backward) {
        ph_array dy = ph_read_floats(g, "dy");
        if (dy.count != nout)
            ph_die("%s: dy has %zu values, the output has %zu", cname, dy.count, nout);
        float *dx = ph_alloc_floats(nin, NAN);
        ops->backward(&l, &c, x.data, y, dy.data, dx, saved);
        ph_write_shaped(og, "dx", dx, n, &l.in);
        hid_t gg = ph_group(og, "grads", 1);
        for (int j = 0; j < l.nparams; j++)
            if (l.params[j].grad)
                ph_write_param(gg, &l.params[j], l.params[j].grad);
        H5Gclose(gg);
        free(dx);
        ph_array_free(&dy);
    }
    hid_t pg = ph_group(og, "params", 1);
    for (int j = 0; j < l.nparams; j++)
        ph_write_param(pg, &l.params[j], l.params[j].data);
    H5Gclose(pg);

    for (int j = 0; j < l.nparams; j++) {
        free(l.params[j].data);
        free(l.params[j].grad);
    }
    if (ops->destroy)
        ops->destroy(&l);
    else
        free(l.priv);
    free(saved);
    free(ws);
    free(y);
    ph_array_free(&x);
}

static void run_xent_case(hid_t g, hid_t og, const char *cname)
{
    ph_array z = ph_read_floats(g, "logits");
    ph_array lab = ph_read_ints(g, "labels");
    if (z.rank != 2 || lab.rank != 1 || lab.dims[0] != z.dims[0])
        ph_die("%s: expected logits [n, C] and labels [n]", cname);
    const int n = (int)z.dims[0], C = (int)z.dims[1];
    ph_array w = {0};
    ft_xent x = {0};
    x.classes = C;
    x.smoothing = (float)ph_attr_double(g, "smoothing", 0.0);
    if (ph_exists(g, "class_weights")) {
        w = ph_read_floats(g, "class_weights");
        if (w.count != (size_t)C)
            ph_die("%s: class_weights has %zu values for %d classes", cname, w.count, C);
        x.class_weights = w.data;
    }
    float *probs = ph_alloc_floats((size_t)n * C, NAN);
    float *losses = ph_alloc_floats((size_t)n, NAN);
    float *dz = ph_alloc_floats((size_t)n * C, NAN);
    double wsum = 0.0;
    double total = ft_xent_forward(&x, z.data, lab.data, n, probs, &wsum, losses);
    double denom = wsum > 0.0 ? wsum : 1.0;
    ft_xent_backward(&x, probs, lab.data, n, (float)(1.0 / denom), dz);

    ph_write_double_attr(og, "loss", total / denom);
    ph_write_double_attr(og, "weight_sum", wsum);
    hsize_t d2[2] = {(hsize_t)n, (hsize_t)C}, d1[1] = {(hsize_t)n};
    ph_write_floats(og, "dlogits", dz, 2, d2);
    ph_write_floats(og, "probs", probs, 2, d2);
    ph_write_floats(og, "losses", losses, 1, d1);
    free(probs);
    free(losses);
    free(dz);
    ph_array_free(&z);
    ph_array_free(&lab);
    if (w.data)
        ph_array_free(&w);
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
    char kind[64];
    ph_attr_str(g, "kind", "", kind, sizeof kind);
    if (strcmp(kind, "xent") == 0)
        run_xent_case(g, og, name);
    else
        run_layer_case(g, og, name, kind);
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
    printf("layer_harness: %d cases\n", st.cases);
    return 0;
}
