/* Elementwise activations and dropout: forward against hand-computed values,
 * backward against central finite differences, dropout mask determinism. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/kv.h"
#include "ftune/layer.h"
#include "ftune/rng.h"

#include "testutil.h"

/* Creates and sets up a layer of `kind` on input shape `in` (no params). */
static int make_layer(ft_layer *l, const char *kind, const char *name, ft_shape in,
                      const ft_kvlist *kv, ft_err *err)
{
    static const ft_kvlist empty;
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->name_hash = ft_hash_str(name);
    l->lr_mult = 1.0f;
    l->ops = ft_layer_kind(kind);
    if (!CHECK(l->ops != NULL))
        return 1;
    if (!kv)
        kv = &empty;
    int rc = ft_kv_validate(kv, l->ops->keys, name, err);
    if (rc == FT_OK)
        rc = l->ops->create(l, kv, err);
    if (rc != FT_OK)
        return rc;
    l->in = in;
    return l->ops->setup(l, err);
}

static void free_layer(ft_layer *l)
{
    if (l->ops && l->ops->destroy)
        l->ops->destroy(l);
    else
        free(l->priv);
    l->priv = NULL;
}

static ft_ctx make_ctx(int n, int training)
{
    ft_ctx c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.training = training;
    c.seed = 1234;
    c.epoch = 3;
    return c;
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Checks backward against central differences of loss = sum(y * r). */
static void fd_check(ft_layer *l, const ft_ctx *c, float *x, double h, double tol)
{
    size_t nx = (size_t)c->n * ft_shape_count(&l->in);
    size_t ny = (size_t)c->n * ft_shape_count(&l->out);
    float *y = calloc(ny, sizeof *y), *r = calloc(ny, sizeof *r), *dx = calloc(nx, sizeof *dx);
    ft_rng rng;
    ft_rng_seed(&rng, 99);
    for (size_t i = 0; i < ny; i++)
        r[i] = ft_rng_uniform(&rng) * 2.0f - 1.0f;
    l->ops->forward(l, c, x, y, NULL);
    l->ops->backward(l, c, x, y, r, dx, NULL);
    for (size_t j = 0; j < nx; j++) {
        float x0 = x[j];
        float xp = x0 + (float)h, xm = x0 - (float)h;
        x[j] = xp;
        l->ops->forward(l, c, x, y, NULL);
        double lp = dot(y, r, ny);
        x[j] = xm;
        l->ops->forward(l, c, x, y, NULL);
        double lm = dot(y, r, ny);
        x[j] = x0;
        double num = (lp - lm) / ((double)xp - (double)xm);
        if (!CHECK_NEAR(dx[j], num, tol * (1.0 + fabs(num))))
            fprintf(stderr, "  layer %s, element %zu, x = %g\n", l->name, j, x0);
    }
    free(y);
    free(r);
    free(dx);
}

static void check_values(const char *kind, const ft_kvlist *kv, const float *x, const double *want,
                         int n, double tol)
{
    ft_layer l;
    ft_err err = {0};
    if (!CHECK(make_layer(&l, kind, kind, ft_shape1(n), kv, &err) == FT_OK))
        return;
    CHECK(ft_shape_equal(&l.out, &l.in));
    CHECK(l.nparams == 0);
    float y[16];
    ft_ctx c = make_ctx(1, 1);
    l.ops->forward(&l, &c, x, y, NULL);
    for (int i = 0; i < n; i++)
        if (!CHECK_NEAR(y[i], want[i], tol))
            fprintf(stderr, "  %s(%g)\n", kind, x[i]);
    free_layer(&l);
}

static void test_forward_values(void)
{
    const float xr[] = {-1.0f, 0.0f, 2.5f, -0.25f};
    const double relu[] = {0.0, 0.0, 2.5, 0.0};
    check_values("relu", NULL, xr, relu, 4, 0.0);

    const double leaky_default[] = {-0.01, 0.0, 2.5, -0.0025};
    check_values("leaky_relu", NULL, xr, leaky_default, 4, 1e-8);
    ft_kvlist kv = {0};
    ft_kv_set_float(&kv, "slope", 0.2);
    const double leaky[] = {-0.2, 0.0, 2.5, -0.05};
    check_values("leaky_relu", &kv, xr, leaky, 4, 1e-7);

    const float xg[] = {-3.0f, -1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 2.0f};
    const double gelu[] = {-0.00404969409489031, -0.15865525393145707, -0.15426876936299344, 0.0,
                           0.34573123063700656,  0.8413447460685429,   1.9544997361036416};
    check_values("gelu", NULL, xg, gelu, 7, 2e-7);
    ft_kvlist kvn = {0};
    ft_kv_set_string(&kvn, "approximate", "none");
    check_values("gelu", &kvn, xg, gelu, 7, 2e-7);
    ft_kvlist kvt = {0};
    ft_kv_set_string(&kvt, "approximate", "tanh");
    const double gelu_tanh[] = {
        -0.0036373920817729943, -0.15880800939172324, -0.15428599017485606, 0.0,
        0.34571400982514394,    0.8411919906082768,   1.954597694087775};
    check_values("gelu", &kvt, xg, gelu_tanh, 7, 2e-7);

    const float xt[] = {-2.0f, -0.5f, 0.0f, 0.5f, 3.0f};
    const double tanh_want[] = {-0.9640275800758169, -0.46211715726000974, 0.0, 0.46211715726000974,
                                0.9950547536867305};
    check_values("tanh", NULL, xt, tanh_want, 5, 1e-7);

    const float xs[] = {-3.0f, -1.0f, 0.0f, 2.0f, 30.0f, -120.0f, 120.0f};
    const double sig[] = {0.04742587317756678,
                          0.2689414213699951,
                          0.5,
                          0.8807970779778823,
                          0.9999999999999065,
                          0.0,
                          1.0};
    check_values("sigmoid", NULL, xs, sig, 7, 1e-7);
}

static void test_relu_nan_passes(void)
{
    ft_layer l;
    ft_err err = {0};
    if (!CHECK(make_layer(&l, "relu", "r", ft_shape1(1), NULL, &err) == FT_OK))
        return;
    float x = NAN, y = 0.0f;
    ft_ctx c = make_ctx(1, 1);
    l.ops->forward(&l, &c, &x, &y, NULL);
    CHECK(isnan(y)); /* divergence must stay visible */
    free_layer(&l);
}

static void test_backward_fd(void)
{
    struct {
        const char *kind, *key, *val;
        double h, tol;
    } cases[] = {
        {"relu", NULL, NULL, 1e-2, 1e-3}, {"leaky_relu", "slope", NULL, 1e-2, 1e-3},
        {"gelu", NULL, NULL, 1e-2, 2e-3}, {"gelu", "approximate", "tanh", 1e-2, 2e-3},
        {"tanh", NULL, NULL, 1e-2, 2e-3}, {"sigmoid", NULL, NULL, 1e-2, 2e-3},
    };
    ft_shape in = ft_shape3(2, 3, 2);
    int n = 3;
    size_t nx = (size_t)n * ft_shape_count(&in);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ft_kvlist kv = {0};
        if (cases[k].key && cases[k].val)
            ft_kv_set_string(&kv, cases[k].key, cases[k].val);
        else if (cases[k].key)
            ft_kv_set_float(&kv, cases[k].key, 0.07);
        ft_layer l;
        ft_err err = {0};
        if (!CHECK(make_layer(&l, cases[k].kind, cases[k].kind, in, &kv, &err) == FT_OK))
            continue;
        float *x = calloc(nx, sizeof *x);
        ft_rng rng;
        ft_rng_seed(&rng, 7 + k);
        for (size_t i = 0; i < nx; i++) {
            float v = ft_rng_uniform(&rng) * 6.0f - 3.0f;
            /* keep clear of the kink at 0 for relu-like kinds */
            if (fabsf(v) < 0.1f)
                v = v < 0 ? -0.1f - v : 0.1f + v;
            x[i] = v;
        }
        ft_ctx c = make_ctx(n, 1);
        fd_check(&l, &c, x, cases[k].h, cases[k].tol);

        /* dx == NULL must be accepted (first trainable layer) */
        float *y = calloc(nx, sizeof *y);
        l.ops->forward(&l, &c, x, y, NULL);
        l.ops->backward(&l, &c, x, y, y, NULL, NULL);
        free(y);
        free(x);
        free_layer(&l);
    }
}

static void test_empty_batch(void)
{
    const char *kinds[] = {"relu", "leaky_relu", "gelu", "tanh", "sigmoid", "dropout"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        ft_layer l;
        ft_err err = {0};
        if (!CHECK(make_layer(&l, kinds[k], kinds[k], ft_shape1(5), NULL, &err) == FT_OK))
            continue;
        ft_ctx c = make_ctx(0, 1);
        float dummy = 1.0f;
        l.ops->forward(&l, &c, &dummy, &dummy, NULL);
        l.ops->backward(&l, &c, &dummy, &dummy, &dummy, &dummy, NULL);
        CHECK(dummy == 1.0f);
        free_layer(&l);
    }
}

static void test_bad_keys(void)
{
    ft_layer l;
    ft_err err = {0};
    ft_kvlist kv = {0};
    snprintf(kv.where, sizeof kv.where, "net.cfg");
    ft_kv_set_string(&kv, "approximate", "fast");
    CHECK(make_layer(&l, "gelu", "act1", ft_shape1(3), &kv, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "act1");
    CHECK_STR_CONTAINS(err.msg, "approximate");
    CHECK_STR_CONTAINS(err.msg, "fast");
    CHECK_STR_CONTAINS(err.msg, "net.cfg");
    free_layer(&l);

    const double bad_rates[] = {1.0, -0.1, 1.5};
    for (int i = 0; i < 3; i++) {
        ft_kvlist kd = {0};
        ft_err e2 = {0};
        ft_kv_set_float(&kd, "rate", bad_rates[i]);
        CHECK(make_layer(&l, "dropout", "drop1", ft_shape1(3), &kd, &e2) == FT_EINPUT);
        CHECK_STR_CONTAINS(e2.msg, "drop1");
        CHECK_STR_CONTAINS(e2.msg, "rate");
        free_layer(&l);
    }
    ft_kvlist k0 = {0};
    ft_kv_set_int(&k0, "rate", 0); /* an integer is accepted where a number is asked */
    CHECK(make_layer(&l, "dropout", "drop0", ft_shape1(3), &k0, &err) == FT_OK);
    free_layer(&l);
}

/* Output of a dropout layer on all-ones rows with the given sample ids. */
static void dropout_rows(ft_layer *l, int n, const uint64_t *ids, uint64_t seed, uint64_t epoch,
                         int training, float *y)
{
    size_t f = ft_shape_count(&l->in);
    float *x = malloc(sizeof(float) * (size_t)n * f);
    for (size_t i = 0; i < (size_t)n * f; i++)
        x[i] = 1.0f;
    ft_ctx c = make_ctx(n, training);
    c.seed = seed;
    c.epoch = epoch;
    c.sample_ids = ids;
    l->ops->forward(l, &c, x, y, NULL);
    free(x);
}

static size_t count_diff(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += a[i] != b[i];
    return d;
}

static void test_dropout(void)
{
    const int F = 500;
    ft_layer l, l2;
    ft_err err = {0};
    ft_kvlist kv = {0};
    ft_kv_set_float(&kv, "rate", 0.3);
    if (!CHECK(make_layer(&l, "dropout", "drop1", ft_shape1(F), &kv, &err) == FT_OK))
        return;
    CHECK(make_layer(&l2, "dropout", "drop2", ft_shape1(F), &kv, &err) == FT_OK);
    const float scale = 1.0f / (1.0f - 0.3f);

    /* the same sample gets the same mask wherever it sits in whichever batch */
    const uint64_t ids_a[] = {10, 11, 12, 13};
    const uint64_t ids_b[] = {99, 12, 10, 7, 5};
    float ya[4 * 500], yb[5 * 500], yc[5 * 500];
    dropout_rows(&l, 4, ids_a, 1234, 3, 1, ya);
    dropout_rows(&l, 5, ids_b, 1234, 3, 1, yb);
    CHECK(count_diff(ya + 0 * F, yb + 2 * F, F) == 0); /* sample 10 */
    CHECK(count_diff(ya + 2 * F, yb + 1 * F, F) == 0); /* sample 12 */
    CHECK(count_diff(ya + 0 * F, ya + 1 * F, F) > 0);  /* different samples differ */

    /* kept elements are scaled by exactly 1/(1-rate); others are 0 */
    int bad = 0;
    for (int i = 0; i < 4 * F; i++)
        bad += !(ya[i] == 0.0f || ya[i] == scale);
    CHECK(bad == 0);

    /* a different epoch, seed or layer name gives a different mask */
    dropout_rows(&l, 5, ids_b, 1234, 4, 1, yc);
    CHECK(count_diff(yb, yc, 5 * (size_t)F) > 100);
    dropout_rows(&l, 5, ids_b, 1235, 3, 1, yc);
    CHECK(count_diff(yb, yc, 5 * (size_t)F) > 100);
    dropout_rows(&l2, 5, ids_b, 1234, 3, 1, yc);
    CHECK(count_diff(yb, yc, 5 * (size_t)F) > 100);
    dropout_rows(&l, 5, ids_b, 1234, 3, 1, yc); /* and is repeatable */
    CHECK(count_diff(yb, yc, 5 * (size_t)F) == 0);

    /* no sample ids: row index */
    const uint64_t ids_row[] = {0, 1, 2, 3, 4};
    dropout_rows(&l, 5, NULL, 1234, 3, 1, yb);
    dropout_rows(&l, 5, ids_row, 1234, 3, 1, yc);
    CHECK(count_diff(yb, yc, 5 * (size_t)F) == 0);

    /* the dropped fraction is close to the rate (sd ~ 0.0015 here) */
    const int N = 200;
    float *big = malloc(sizeof(float) * (size_t)N * F);
    dropout_rows(&l, N, NULL, 77, 0, 1, big);
    size_t zeros = 0;
    for (size_t i = 0; i < (size_t)N * F; i++)
        zeros += big[i] == 0.0f;
    CHECK_NEAR((double)zeros / ((double)N * F), 0.3, 0.01);
    free(big);

    /* evaluation: identity both ways */
    float xe[3 * 500], ye[3 * 500], de[3 * 500];
    for (int i = 0; i < 3 * F; i++)
        xe[i] = (float)i * 0.01f - 2.0f;
    ft_ctx ce = make_ctx(3, 0);
    l.ops->forward(&l, &ce, xe, ye, NULL);
    CHECK(memcmp(xe, ye, sizeof xe) == 0);
    l.ops->backward(&l, &ce, xe, ye, xe, de, NULL);
    CHECK(memcmp(xe, de, sizeof xe) == 0);

    /* training backward uses the forward mask: dx = dy * mask * scale */
    const uint64_t ids_t[] = {5, 8, 13};
    ft_ctx ct = make_ctx(3, 1);
    ct.sample_ids = ids_t;
    float ones[3 * 500], mask[3 * 500], dx[3 * 500];
    for (int i = 0; i < 3 * F; i++)
        ones[i] = 1.0f;
    l.ops->forward(&l, &ct, ones, mask, NULL);
    l.ops->backward(&l, &ct, xe, ye, xe, dx, NULL);
    bad = 0;
    for (int i = 0; i < 3 * F; i++)
        bad += dx[i] != xe[i] * mask[i];
    CHECK(bad == 0);
    free_layer(&l2);
    free_layer(&l);

    /* finite differences (linear for a fixed mask) on a small layer */
    ft_kvlist kf = {0};
    ft_kv_set_float(&kf, "rate", 0.5);
    if (CHECK(make_layer(&l, "dropout", "dropfd", ft_shape3(2, 2, 3), &kf, &err) == FT_OK)) {
        float x[4 * 12];
        for (int i = 0; i < 4 * 12; i++)
            x[i] = (float)((i * 37) % 11) * 0.3f - 1.5f;
        fd_check(&l, &ct, x, 1e-2, 1e-3);
        free_layer(&l);
    }

    /* rate 0 in training is the identity */
    ft_kvlist kz = {0};
    ft_kv_set_float(&kz, "rate", 0.0);
    if (CHECK(make_layer(&l, "dropout", "drop0", ft_shape1(F), &kz, &err) == FT_OK)) {
        l.ops->forward(&l, &ct, xe, ye, NULL);
        CHECK(memcmp(xe, ye, sizeof xe) == 0);
        free_layer(&l);
    }
}

int main(void)
{
    test_forward_values();
    test_relu_nan_passes();
    test_backward_fd();
    test_empty_batch();
    test_bad_keys();
    test_dropout();
    return tu_done("test_layers_pointwise");
}
