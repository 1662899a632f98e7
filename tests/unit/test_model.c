/* The model: arena sizes under freezing, frozen prefix and frozen middle
 * layers, and the whole-model gradient against finite differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/loss.h"
#include "ftune/model.h"
#include "ftune/optim.h"
#include "ftune/rng.h"

#include "testutil.h"

static ft_layer_spec spec(const char *name, const char *kind)
{
    ft_layer_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.name, sizeof s.name, "%s", name);
    snprintf(s.kind, sizeof s.kind, "%s", kind);
    s.lr_mult = 1.0f;
    return s;
}

/* conv(1->2,3x3,pad1) relu maxpool2 flatten dense(8) relu dense(3) on [1,4,4] */
static int small_cnn(ft_layer_spec *s)
{
    s[0] = spec("conv1", "conv2d");
    ft_kv_set_int(&s[0].kv, "filters", 2);
    ft_kv_set_int(&s[0].kv, "kernel", 3);
    ft_kv_set_int(&s[0].kv, "padding", 1);
    s[1] = spec("relu1", "relu");
    s[2] = spec("pool1", "maxpool2d");
    ft_kv_set_int(&s[2].kv, "size", 2);
    s[3] = spec("flat", "flatten");
    s[4] = spec("fc1", "dense");
    ft_kv_set_int(&s[4].kv, "units", 8);
    s[5] = spec("act", "tanh");
    s[6] = spec("fc2", "dense");
    ft_kv_set_int(&s[6].kv, "units", 3);
    return 7;
}

static void fill(float *x, size_t n, uint64_t seed)
{
    ft_rng r;
    ft_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * ft_rng_uniform(&r) - 1.0f;
}

static void test_arenas(void)
{
    ft_layer_spec s[8];
    int n = small_cnn(s);
    ft_shape in = ft_shape3(1, 4, 4);
    ft_model m;
    ft_err err = {0};
    CHECK(ft_model_build(&m, &in, s, n, &err) == FT_OK);
    size_t conv = 2 * 1 * 9 + 2, fc1 = 8 * 8 + 8, fc2 = 3 * 8 + 3;
    CHECK(m.nparams == conv + fc1 + fc2);
    CHECK(m.ngrads == conv + fc1 + fc2);
    CHECK(m.first_trainable == 0);
    CHECK(m.classes == 3);
    ft_model_free(&m);

    /* freezing the conv: no gradient memory for it, backward starts at fc1 */
    s[0].frozen = 1;
    CHECK(ft_model_build(&m, &in, s, n, &err) == FT_OK);
    CHECK(m.nparams == conv + fc1 + fc2);
    CHECK(m.ngrads == fc1 + fc2);
    CHECK(m.first_trainable == 4);
    CHECK(m.layers[0].params[0].grad == NULL);
    CHECK(m.layers[4].need_dx == 0);
    CHECK(m.layers[6].need_dx == 1);
    /* gradient arena: last layer first */
    CHECK(m.layers[6].params[0].grad == m.grads);
    ft_optim o;
    ft_optim_cfg oc = {FT_OPT_ADAMW, 1e-3f, 0, 0, 0, 0.9f, 0.999f, 1e-8f};
    CHECK(ft_optim_init(&o, &oc, &m, &err) == FT_OK);
    CHECK(o.nstate == 2 * (fc1 + fc2));
    ft_optim_free(&o);
    CHECK(ft_model_alloc(&m, 4, &err) == FT_OK);
    /* the frozen prefix keeps no per-layer activations */
    CHECK(m.act[0] == NULL && m.act[1] == NULL && m.act[2] == NULL);
    CHECK(m.act[3] != NULL);
    CHECK(m.saved[2] == NULL);
    ft_model_free(&m);
}

/* loss(params) for finite differences */
static double model_loss(ft_model *m, const float *x, const int *y, int n)
{
    ft_ctx c = {0};
    c.n = n;
    c.training = 1;
    const float *out = ft_model_forward(m, &c, x);
    ft_xent xe = {m->classes, 0.1f, NULL};
    float probs[64];
    double ws;
    return ft_xent_forward(&xe, out, y, n, probs, &ws, NULL);
}

static void test_gradients(int freeze_conv, int freeze_middle)
{
    ft_layer_spec s[8];
    int n = small_cnn(s);
    s[0].frozen = freeze_conv;
    s[4].frozen = freeze_middle;
    ft_shape in = ft_shape3(1, 4, 4);
    ft_model m;
    ft_err err = {0};
    CHECK(ft_model_build(&m, &in, s, n, &err) == FT_OK);
    CHECK(ft_model_alloc(&m, 4, &err) == FT_OK);
    ft_model_init_params(&m, 7);
    float x[4 * 16];
    int y[4] = {0, 2, 1, 2};
    fill(x, 64, 3);

    ft_ctx c = {0};
    c.n = 4;
    c.training = 1;
    ft_model_zero_grads(&m);
    const float *out = ft_model_forward(&m, &c, x);
    ft_xent xe = {3, 0.1f, NULL};
    float probs[12], dl[12];
    double ws;
    ft_xent_forward(&xe, out, y, 4, probs, &ws, NULL);
    ft_xent_backward(&xe, probs, y, 4, 1.0f, dl);
    ft_model_backward(&m, &c, dl);

    double worst = 0;
    for (int i = 0; i < m.nlayers; i++) {
        ft_layer *l = &m.layers[i];
        for (int j = 0; j < l->nparams; j++) {
            ft_param *p = &l->params[j];
            if (!p->grad)
                continue;
            for (size_t k = 0; k < p->count; k++) {
                float keep = p->data[k];
                double h = 1e-2;
                p->data[k] = keep + (float)h;
                double lp = model_loss(&m, x, y, 4);
                p->data[k] = keep - (float)h;
                double lm = model_loss(&m, x, y, 4);
                p->data[k] = keep;
                double num = (lp - lm) / (2 * h);
                double d = fabs(num - p->grad[k]) / fmax(1e-2, fabs(num) + fabs(p->grad[k]));
                if (d > worst)
                    worst = d;
            }
        }
    }
    CHECK(worst < 2e-2);
    if (freeze_middle)
        CHECK(m.layers[4].params[0].grad == NULL && m.layers[0].params[0].grad != NULL);
    ft_model_free(&m);
}

static void test_unknown_kind(void)
{
    ft_layer_spec s[1];
    s[0] = spec("fc", "dence");
    ft_shape in = ft_shape1(4);
    ft_model m;
    ft_err err = {0};
    CHECK(ft_model_build(&m, &in, s, 1, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "layer 'fc': unknown type 'dence' (did you mean 'dense'?)");
    ft_model_free(&m);
}

int main(void)
{
    test_arenas();
    test_gradients(0, 0);
    test_gradients(1, 0);
    test_gradients(0, 1); /* frozen dense in the middle: gradient flows through */
    test_unknown_kind();
    return tu_done("test_model");
}
