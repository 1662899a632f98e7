/* Parity harness for the optimizers and schedules (tests/parity/test_optim.py).
 *
 *   optim_harness CASES.h5 RESULTS.h5
 *
 * CASES.h5 holds one group per case with
 *   attributes  optimizer ("sgd" or "adamw"), lr, momentum, nesterov (int), weight_decay,
 *               beta1, beta2, eps; schedule ("constant", "step" or "cosine"), warmup_steps,
 *               step_size, gamma, total_steps, min_lr; clip_grad_norm (0 = off); steps;
 *               features (input features of the first layer); layer_order (strings)
 *   model/<layer>  attributes units, lr_mult (default 1), frozen (int, default 0); datasets
 *               weight [units, in] and bias [units] (initial values)
 *   grads/<layer>/<param>  float32 [steps, ...param shape] for every trainable parameter
 * The case builds a chain of dense layers with ft_model_build and, for each step s, copies the
 * gradients into the gradient arena, clips them (ft_clip_grad_norm) when asked, and calls
 * ft_optim_step with ft_schedule_lr(schedule, lr, s), as the trainer does. RESULTS.h5 gets, in
 * a group of the same name: lr float32 [steps] and params/<layer>/<param> float32
 * [steps, ...param shape] (the values after each step). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/h5util.h"
#include "ftune/model.h"
#include "ftune/optim.h"

#include "parity_h5.h"

#define MAX_LAYERS 16

static int parse_optimizer(const char *cname, const char *s)
{
    if (strcmp(s, "sgd") == 0)
        return FT_OPT_SGD;
    if (strcmp(s, "adamw") == 0)
        return FT_OPT_ADAMW;
    ph_die("%s: unknown optimizer '%s'", cname, s);
}

static int parse_schedule(const char *cname, const char *s)
{
    if (strcmp(s, "constant") == 0)
        return FT_SCHED_CONSTANT;
    if (strcmp(s, "step") == 0)
        return FT_SCHED_STEP;
    if (strcmp(s, "cosine") == 0)
        return FT_SCHED_COSINE;
    ph_die("%s: unknown schedule '%s'", cname, s);
}

static void run_case(hid_t g, hid_t og, const char *cname)
{
    char buf[64];
    ft_optim_cfg oc;
    memset(&oc, 0, sizeof oc);
    ph_attr_str(g, "optimizer", "sgd", buf, sizeof buf);
    oc.type = parse_optimizer(cname, buf);
    oc.lr = (float)ph_attr_double(g, "lr", 0.01);
    oc.momentum = (float)ph_attr_double(g, "momentum", 0.0);
    oc.nesterov = (int)ph_attr_long(g, "nesterov", 0);
    oc.weight_decay = (float)ph_attr_double(g, "weight_decay", 0.0);
    oc.beta1 = (float)ph_attr_double(g, "beta1", 0.9);
    oc.beta2 = (float)ph_attr_double(g, "beta2", 0.999);
    oc.eps = (float)ph_attr_double(g, "eps", 1e-8);

    ft_schedule_cfg sc;
    memset(&sc, 0, sizeof sc);
    ph_attr_str(g, "schedule", "constant", buf, sizeof buf);
    sc.type = parse_schedule(cname, buf);
    sc.warmup_steps = (long)ph_attr_long(g, "warmup_steps", 0);
    sc.step_size = (long)ph_attr_long(g, "step_size", 1000);
    sc.gamma = (float)ph_attr_double(g, "gamma", 0.1);
    sc.total_steps = (long)ph_attr_long(g, "total_steps", 0);
    sc.min_lr = (float)ph_attr_double(g, "min_lr", 0.0);

    const double clip = ph_attr_double(g, "clip_grad_norm", 0.0);
    const int steps = (int)ph_attr_long(g, "steps", 0);
    const int features = (int)ph_attr_long(g, "features", 0);
    if (steps < 1 || features < 1)
        ph_die("%s: steps and features must be >= 1", cname);

    ft_err err = {0};
    char **order = NULL;
    size_t nl = 0;
    int found;
    if (ft_h5_get_strs_attr(g, "layer_order", &found, &order, &nl, &err) || !found || nl < 1 ||
        nl > MAX_LAYERS)
        ph_die("%s: layer_order: %s", cname, found ? err.msg : "missing");

    ft_layer_spec specs[MAX_LAYERS];
    memset(specs, 0, sizeof specs);
    hid_t mg = ph_group(g, "model", 0);
    for (size_t i = 0; i < nl; i++) {
        hid_t lg = ph_group(mg, order[i], 0);
        snprintf(specs[i].name, sizeof specs[i].name, "%s", order[i]);
        snprintf(specs[i].kind, sizeof specs[i].kind, "dense");
        ft_kv_set_int(&specs[i].kv, "units", (long)ph_attr_long(lg, "units", 0));
        specs[i].frozen = (int)ph_attr_long(lg, "frozen", 0);
        specs[i].lr_mult = (float)ph_attr_double(lg, "lr_mult", 1.0);
        H5Gclose(lg);
    }
    ft_model m;
    ft_shape in = ft_shape1(features);
    if (ft_model_build(&m, &in, specs, (int)nl, &err))
        ph_die("%s: %s", cname, err.msg);

    /* initial values, and the output arrays [steps, ...] per parameter */
    float *hist[MAX_LAYERS][FT_MAX_PARAMS] = {{NULL}};
    ph_array grads[MAX_LAYERS][FT_MAX_PARAMS];
    memset(grads, 0, sizeof grads);
    for (int i = 0; i < m.nlayers; i++) {
        ft_layer *l = &m.layers[i];
        hid_t lg = ph_group(mg, l->name, 0);
        for (int j = 0; j < l->nparams; j++) {
            ft_param *p = &l->params[j];
            ph_array a = ph_read_floats(lg, p->name);
            if (a.count != p->count)
                ph_die("%s: %s/%s has %zu values, the layer has %zu", cname, l->name, p->name,
                       a.count, p->count);
            memcpy(p->data, a.data, sizeof(float) * p->count);
            ph_array_free(&a);
            hist[i][j] = malloc(sizeof(float) * p->count * (size_t)steps);
            if (!hist[i][j])
                ph_die("out of memory");
            if (p->grad) {
                char path[160];
                snprintf(path, sizeof path, "grads/%s/%s", l->name, p->name);
                grads[i][j] = ph_read_floats(g, path);
                if (grads[i][j].count != p->count * (size_t)steps)
                    ph_die("%s: %s has %zu values, expected %d x %zu", cname, path,
                           grads[i][j].count, steps, p->count);
            }
        }
        H5Gclose(lg);
    }
    H5Gclose(mg);

    ft_optim o;
    if (ft_optim_init(&o, &oc, &m, &err))
        ph_die("%s: %s", cname, err.msg);
    float *lrs = malloc(sizeof(float) * (size_t)steps);
    if (!lrs)
        ph_die("out of memory");
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < m.nlayers; i++)
            for (int j = 0; j < m.layers[i].nparams; j++) {
                ft_param *p = &m.layers[i].params[j];
                if (p->grad)
                    memcpy(p->grad, (const float *)grads[i][j].data + (size_t)s * p->count,
                           sizeof(float) * p->count);
            }
        if (clip > 0.0)
            ft_clip_grad_norm(m.grads, m.ngrads, clip);
        lrs[s] = ft_schedule_lr(&sc, oc.lr, s);
        ft_optim_step(&o, &m, lrs[s]);
        for (int i = 0; i < m.nlayers; i++)
            for (int j = 0; j < m.layers[i].nparams; j++) {
                const ft_param *p = &m.layers[i].params[j];
                memcpy(hist[i][j] + (size_t)s * p->count, p->data, sizeof(float) * p->count);
            }
    }

    hsize_t d1[1] = {(hsize_t)steps};
    ph_write_floats(og, "lr", lrs, 1, d1);
    hid_t pg = ph_group(og, "params", 1);
    for (int i = 0; i < m.nlayers; i++) {
        const ft_layer *l = &m.layers[i];
        hid_t lg = ph_group(pg, l->name, 1);
        for (int j = 0; j < l->nparams; j++) {
            const ft_param *p = &l->params[j];
            hsize_t dims[FT_MAX_DIMS + 1];
            dims[0] = (hsize_t)steps;
            for (int k = 0; k < p->shape.rank; k++)
                dims[1 + k] = (hsize_t)p->shape.d[k];
            ph_write_floats(lg, p->name, hist[i][j], p->shape.rank + 1, dims);
            free(hist[i][j]);
            if (grads[i][j].data)
                ph_array_free(&grads[i][j]);
        }
        H5Gclose(lg);
    }
    H5Gclose(pg);
    free(lrs);
    ft_optim_free(&o);
    ft_model_free(&m);
    ft_h5_free_strings(order, nl);
}

static herr_t visit_case(hid_t root, const char *name, const H5L_info_t *info, void *user)
{
    hid_t out = *(hid_t *)user;
    hid_t g = ph_group(root, name, 0);
    hid_t og = ph_group(out, name, 1);
    run_case(g, og, name);
    H5Gclose(og);
    H5Gclose(g);
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
    if (H5Literate(in, H5_INDEX_NAME, H5_ITER_INC, NULL, visit_case, &out) < 0)
        ph_die("cannot iterate over the cases of %s", argv[1]);
    H5Fclose(out);
    H5Fclose(in);
    return 0;
}
