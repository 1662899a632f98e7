/* dense, conv2d, maxpool2d, avgpool2d, global_avgpool and flatten:
 * hand-computed forwards, a double-precision reference for conv, and every
 * backward (dx and parameter gradients) against central differences of
 * L = sum(y * r). Buffers are allocated at their exact sizes so the
 * sanitizer build catches any overrun of x, y, saved or the workspace. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/kv.h"
#include "ftune/layer.h"
#include "ftune/rng.h"

#include "testutil.h"

/* ---- harness ---------------------------------------------------------- */

static float *floats(size_t n)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (!p) {
        perror("malloc");
        exit(2);
    }
    return p;
}

static void fill_uniform(float *p, size_t n, ft_rng *r)
{
    for (size_t i = 0; i < n; i++)
        p[i] = 2.0f * ft_rng_uniform(r) - 1.0f;
}

static void fill_value(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        p[i] = v;
}

/* Distinct values 0.05 apart in random order: max pooling keeps its argmax
 * under a finite-difference step of 0.01. */
static void fill_distinct(float *p, size_t n, ft_rng *r)
{
    for (size_t i = 0; i < n; i++)
        p[i] = 0.05f * (float)((long)i - (long)n / 2);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)ft_rng_below(r, i);
        float t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
}

/* Validates kv against the kind's keys, then create + setup, like the model. */
static int build(ft_layer *l, const char *kind, const char *name, const ft_kvlist *kv, ft_shape in,
                 ft_err *err)
{
    memset(l, 0, sizeof *l);
    ft_err_clear(err);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->ops = ft_layer_kind(kind);
    l->lr_mult = 1.0f;
    l->need_dx = 1;
    if (!l->ops)
        return ft_fail(err, FT_ERUNTIME, "kind '%s' is not linked", kind);
    char ctx[128];
    snprintf(ctx, sizeof ctx, "layer '%s' (%s)", name, kind);
    ft_kvlist empty = {0};
    int rc = ft_kv_validate(kv ? kv : &empty, l->ops->keys, ctx, err);
    if (rc)
        return rc;
    if (l->ops->create && (rc = l->ops->create(l, kv ? kv : &empty, err)))
        return rc;
    l->in = in;
    return l->ops->setup(l, err);
}

/* Parameters get random data and zeroed gradients (the model's arenas). */
static void alloc_params(ft_layer *l, ft_rng *r)
{
    for (int i = 0; i < l->nparams; i++) {
        ft_param *p = &l->params[i];
        p->data = floats(p->count);
        fill_uniform(p->data, p->count, r);
        p->grad = NULL;
        if (p->learnable) {
            p->grad = floats(p->count);
            fill_value(p->grad, p->count, 0.0f);
        }
    }
}

static void zero_grads(ft_layer *l)
{
    for (int i = 0; i < l->nparams; i++)
        if (l->params[i].grad)
            fill_value(l->params[i].grad, l->params[i].count, 0.0f);
}

static void release(ft_layer *l)
{
    for (int i = 0; i < l->nparams; i++) {
        free(l->params[i].data);
        free(l->params[i].grad);
    }
    if (l->ops && l->ops->destroy)
        l->ops->destroy(l);
    else
        free(l->priv);
    l->priv = NULL;
}

static size_t in_count(const ft_layer *l, int n)
{
    return ft_shape_count(&l->in) * (size_t)n;
}
static size_t out_count(const ft_layer *l, int n)
{
    return ft_shape_count(&l->out) * (size_t)n;
}

static size_t saved_count(const ft_layer *l, int n)
{
    return l->ops->saved_floats ? l->ops->saved_floats(l, n) : 0;
}

/* A workspace of exactly the declared size, filled with NaN so a layer that
 * reads scratch it did not write shows up; NULL when none is declared. */
static float *make_ws(const ft_layer *l, int n)
{
    size_t k = l->ops->workspace_floats ? l->ops->workspace_floats(l, n) : 0;
    if (k == 0)
        return NULL;
    float *ws = floats(k);
    fill_value(ws, k, NAN);
    return ws;
}

static void fwd(ft_layer *l, int n, const float *x, float *y, float *saved)
{
    float *ws = make_ws(l, n);
    ft_ctx c = {.n = n, .training = 1, .ws = ws};
    l->ops->forward(l, &c, x, y, saved);
    free(ws);
}

static void bwd(ft_layer *l, int n, const float *x, const float *y, const float *dy, float *dx,
                const float *saved)
{
    float *ws = make_ws(l, n);
    ft_ctx c = {.n = n, .training = 1, .ws = ws};
    l->ops->backward(l, &c, x, y, dy, dx, saved);
    free(ws);
}

/* Forward with y pre-filled with NaN (every output must be written). */
static float *forward_new(ft_layer *l, int n, const float *x, float **saved_out)
{
    float *y = floats(out_count(l, n));
    fill_value(y, out_count(l, n), NAN);
    float *saved = NULL;
    if (saved_out) {
        saved = floats(saved_count(l, n));
        fill_value(saved, saved_count(l, n), NAN);
        *saved_out = saved;
    }
    fwd(l, n, x, y, saved);
    return y;
}

static double loss_of(ft_layer *l, int n, const float *x, const float *r)
{
    size_t m = out_count(l, n);
    float *y = forward_new(l, n, x, NULL);
    double s = 0.0;
    for (size_t i = 0; i < m; i++)
        s += (double)y[i] * r[i];
    free(y);
    return s;
}

/* Central difference of L with respect to v[i]. */
static double numeric(ft_layer *l, int n, const float *x, const float *r, float *v, size_t i,
                      float eps)
{
    float keep = v[i];
    float vp = keep + eps, vm = keep - eps;
    v[i] = vp;
    double lp = loss_of(l, n, x, r);
    v[i] = vm;
    double lm = loss_of(l, n, x, r);
    v[i] = keep;
    return (lp - lm) / ((double)vp - (double)vm);
}

/* max |a - b| / max(1, max |b|) */
static double rel_err(const float *a, const double *b, size_t n)
{
    double d = 0.0, s = 1.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= d)) /* NaN counts as an error */
            d = isnan(e) ? INFINITY : e;
        if (fabs(b[i]) > s)
            s = fabs(b[i]);
    }
    return d / s;
}

#define FD_EPS 1e-2f
#define FD_TOL 2e-3

/* Backward (dx and every parameter gradient) against finite differences. */
static void check_grads(ft_layer *l, int n, uint64_t seed, int distinct, const char *what)
{
    ft_rng r;
    ft_rng_seed(&r, seed);
    size_t nin = in_count(l, n), nout = out_count(l, n);
    float *x = floats(nin), *rr = floats(nout), *dx = floats(nin);
    if (distinct)
        fill_distinct(x, nin, &r);
    else
        fill_uniform(x, nin, &r);
    fill_uniform(rr, nout, &r);

    float *saved = NULL;
    float *y = forward_new(l, n, x, &saved);
    zero_grads(l);
    fill_value(dx, nin, 1e30f); /* dx must be written, not accumulated */
    bwd(l, n, x, y, rr, dx, saved);

    double *num = malloc(sizeof(double) * (nin ? nin : 1));
    for (size_t i = 0; i < nin; i++)
        num[i] = numeric(l, n, x, rr, x, i, FD_EPS);
    double e = rel_err(dx, num, nin);
    if (!CHECK(e < FD_TOL))
        fprintf(stderr, "  %s: dx relative error %.3g\n", what, e);
    free(num);

    for (int k = 0; k < l->nparams; k++) {
        ft_param *p = &l->params[k];
        if (!p->grad)
            continue;
        double *pn = malloc(sizeof(double) * p->count);
        for (size_t i = 0; i < p->count; i++)
            pn[i] = numeric(l, n, x, rr, p->data, i, FD_EPS);
        e = rel_err(p->grad, pn, p->count);
        if (!CHECK(e < FD_TOL))
            fprintf(stderr, "  %s: d%s relative error %.3g\n", what, p->name, e);
        free(pn);
    }
    free(x);
    free(rr);
    free(dx);
    free(y);
    free(saved);
}

/* Generic contract checks with random data: backward twice doubles the
 * parameter gradients and rewrites the same dx; dx == NULL gives the same
 * gradients and leaves x, dy and saved alone; frozen (grad == NULL) still
 * gives dx; forward with saved == NULL gives the same y; n == 0 does nothing. */
static void check_contract(ft_layer *l, int n, uint64_t seed, const char *what)
{
    ft_rng r;
    ft_rng_seed(&r, seed);
    size_t nin = in_count(l, n), nout = out_count(l, n), ns = saved_count(l, n);
    float *x = floats(nin), *dy = floats(nout), *dx1 = floats(nin), *dx2 = floats(nin);
    fill_distinct(x, nin, &r);
    fill_uniform(dy, nout, &r);
    float *saved = NULL;
    float *y = forward_new(l, n, x, &saved);
    float *y2 = forward_new(l, n, x, NULL);
    CHECK(memcmp(y, y2, sizeof(float) * nout) == 0);

    float *x0 = floats(nin), *dy0 = floats(nout), *s0 = floats(ns);
    memcpy(x0, x, sizeof(float) * nin);
    memcpy(dy0, dy, sizeof(float) * nout);
    memcpy(s0, saved, sizeof(float) * ns);

    /* once, then twice */
    zero_grads(l);
    bwd(l, n, x, y, dy, dx1, saved);
    float *g1[FT_MAX_PARAMS] = {0};
    for (int k = 0; k < l->nparams; k++)
        if (l->params[k].grad) {
            g1[k] = floats(l->params[k].count);
            memcpy(g1[k], l->params[k].grad, sizeof(float) * l->params[k].count);
        }
    fill_value(dx2, nin, -7.0f);
    bwd(l, n, x, y, dy, dx2, saved);
    CHECK(memcmp(dx1, dx2, sizeof(float) * nin) == 0);
    for (int k = 0; k < l->nparams; k++) {
        const ft_param *p = &l->params[k];
        if (!p->grad)
            continue;
        int ok = 1;
        for (size_t i = 0; i < p->count; i++)
            ok &= fabsf(p->grad[i] - 2.0f * g1[k][i]) <= 1e-5f * (1.0f + fabsf(g1[k][i]));
        if (!CHECK(ok))
            fprintf(stderr, "  %s: %s gradient does not accumulate\n", what, p->name);
    }

    /* dx == NULL: same gradients, inputs untouched */
    zero_grads(l);
    bwd(l, n, x, y, dy, NULL, saved);
    for (int k = 0; k < l->nparams; k++) {
        const ft_param *p = &l->params[k];
        if (p->grad && !CHECK(memcmp(p->grad, g1[k], sizeof(float) * p->count) == 0))
            fprintf(stderr, "  %s: %s gradient differs with dx == NULL\n", what, p->name);
    }
    CHECK(memcmp(x, x0, sizeof(float) * nin) == 0);
    CHECK(memcmp(dy, dy0, sizeof(float) * nout) == 0);
    CHECK(memcmp(saved, s0, sizeof(float) * ns) == 0);

    /* frozen: no gradients, dx unchanged */
    float *gsave[FT_MAX_PARAMS];
    for (int k = 0; k < l->nparams; k++) {
        gsave[k] = l->params[k].grad;
        l->params[k].grad = NULL;
    }
    fill_value(dx2, nin, 3.0f);
    bwd(l, n, x, y, dy, dx2, saved);
    CHECK(memcmp(dx1, dx2, sizeof(float) * nin) == 0);
    for (int k = 0; k < l->nparams; k++)
        l->params[k].grad = gsave[k];

    /* n == 0: no work, no workspace, NULL rows are fine */
    if (l->ops->workspace_floats)
        CHECK(l->ops->workspace_floats(l, 0) == 0);
    CHECK(saved_count(l, 0) == 0);
    zero_grads(l);
    ft_ctx c0 = {.n = 0, .training = 1};
    l->ops->forward(l, &c0, NULL, NULL, NULL);
    l->ops->backward(l, &c0, NULL, NULL, NULL, NULL, NULL);
    float guard = 5.0f;
    l->ops->backward(l, &c0, NULL, NULL, NULL, &guard, NULL);
    CHECK(guard == 5.0f);
    for (int k = 0; k < l->nparams; k++) {
        const ft_param *p = &l->params[k];
        int zero = 1;
        for (size_t i = 0; p->grad && i < p->count; i++)
            zero &= p->grad[i] == 0.0f;
        CHECK(zero);
    }

    for (int k = 0; k < l->nparams; k++)
        free(g1[k]);
    free(x);
    free(dy);
    free(dx1);
    free(dx2);
    free(y);
    free(y2);
    free(saved);
    free(x0);
    free(dy0);
    free(s0);
}

static void set_params(ft_layer *l, int k, const float *v)
{
    memcpy(l->params[k].data, v, sizeof(float) * l->params[k].count);
}

static void check_floats(const float *got, const float *want, size_t n, float tol, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!CHECK_NEAR(got[i], want[i], tol))
            fprintf(stderr, "  %s: element %zu\n", what, i);
}

/* ---- dense ------------------------------------------------------------ */

static void test_dense(void)
{
    ft_err err;
    ft_rng r;
    ft_rng_seed(&r, 11);
    ft_layer l;
    ft_kvlist kv = {0};
    ft_kv_set_int(&kv, "units", 2);
    CHECK(build(&l, "dense", "fc", &kv, ft_shape1(3), &err) == FT_OK);
    CHECK(l.out.rank == 1 && l.out.d[0] == 2);
    CHECK(l.nparams == 2);
    CHECK(strcmp(l.params[0].name, "weight") == 0 && l.params[0].shape.rank == 2);
    CHECK(l.params[0].shape.d[0] == 2 && l.params[0].shape.d[1] == 3);
    CHECK(l.params[0].init == FT_INIT_UNIFORM && l.params[0].learnable);
    CHECK_NEAR(l.params[0].init_bound, 1.0 / sqrt(3.0), 1e-6);
    CHECK(strcmp(l.params[1].name, "bias") == 0 && l.params[1].count == 2);
    CHECK_NEAR(l.params[1].init_bound, 1.0 / sqrt(3.0), 1e-6);
    alloc_params(&l, &r);
    const float w[] = {1, 2, 3, 4, 5, 6}, b[] = {0.5f, -1};
    set_params(&l, 0, w);
    set_params(&l, 1, b);
    const float x[] = {1, 0, -1, 2, 1, 0};
    /* row 0: 1-3+0.5, 4-6-1; row 1: 2+2+0.5, 8+5-1 */
    const float want[] = {-1.5f, -3, 4.5f, 12};
    float *y = forward_new(&l, 2, x, NULL);
    check_floats(y, want, 4, 1e-6f, "dense forward");
    /* dy = [[1, 0], [0, 1]]: dx rows are W rows; dW = dy^T x; db = [1, 1] */
    const float dy[] = {1, 0, 0, 1};
    float dx[6];
    bwd(&l, 2, x, y, dy, dx, NULL);
    const float want_dx[] = {1, 2, 3, 4, 5, 6}, want_dw[] = {1, 0, -1, 2, 1, 0}, want_db[] = {1, 1};
    check_floats(dx, want_dx, 6, 1e-6f, "dense dx");
    check_floats(l.params[0].grad, want_dw, 6, 1e-6f, "dense dW");
    check_floats(l.params[1].grad, want_db, 2, 1e-6f, "dense db");
    free(y);
    release(&l);

    /* rank-3 input is read as flat features */
    ft_kv_set_int(&kv, "units", 4);
    CHECK(build(&l, "dense", "fc3", &kv, ft_shape3(2, 2, 3), &err) == FT_OK);
    CHECK(l.params[0].shape.d[0] == 4 && l.params[0].shape.d[1] == 12);
    alloc_params(&l, &r);
    check_grads(&l, 5, 12, 0, "dense 12->4");
    check_contract(&l, 3, 13, "dense 12->4");
    release(&l);

    ft_kv_set_bool(&kv, "bias", 0);
    CHECK(build(&l, "dense", "nobias", &kv, ft_shape1(7), &err) == FT_OK);
    CHECK(l.nparams == 1);
    alloc_params(&l, &r);
    check_grads(&l, 4, 14, 0, "dense no bias");
    check_contract(&l, 2, 15, "dense no bias");
    release(&l);

    ft_kvlist none = {0};
    CHECK(build(&l, "dense", "head", &none, ft_shape1(3), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "'units'");
    CHECK_STR_CONTAINS(err.msg, "head");
    release(&l);
    ft_kvlist zero = {0};
    ft_kv_set_int(&zero, "units", 0);
    CHECK(build(&l, "dense", "head0", &zero, ft_shape1(3), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "head0");
    release(&l);
}

/* ---- conv2d ----------------------------------------------------------- */

static void conv_kv(ft_kvlist *kv, int filters, int kernel, int stride, int padding, int bias)
{
    memset(kv, 0, sizeof *kv);
    ft_kv_set_int(kv, "filters", filters);
    ft_kv_set_int(kv, "kernel", kernel);
    if (stride != 1)
        ft_kv_set_int(kv, "stride", stride);
    if (padding)
        ft_kv_set_int(kv, "padding", padding);
    if (!bias)
        ft_kv_set_bool(kv, "bias", 0);
}

/* Direct convolution in double, forward and backward. */
static void conv_ref(const ft_layer *l, int n, int k, int s, int pad, const float *x,
                     const float *dy, double *y, double *dx, double *dw, double *db)
{
    const int C = l->in.d[0], H = l->in.d[1], W = l->in.d[2];
    const int O = l->out.d[0], OH = l->out.d[1], OW = l->out.d[2];
    const float *w = l->params[0].data;
    const float *b = l->nparams > 1 ? l->params[1].data : NULL;
    memset(dx, 0, sizeof(double) * (size_t)n * C * H * W);
    memset(dw, 0, sizeof(double) * (size_t)O * C * k * k);
    memset(db, 0, sizeof(double) * (size_t)O);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < O; o++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    size_t yi = (((size_t)i * O + o) * OH + oy) * OW + ox;
                    double acc = b ? b[o] : 0.0;
                    double g = dy[yi];
                    db[o] += g;
                    for (int c = 0; c < C; c++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int iy = oy * s - pad + ki, ix = ox * s - pad + kj;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                size_t xi = (((size_t)i * C + c) * H + iy) * W + ix;
                                size_t wi = (((size_t)o * C + c) * k + ki) * k + kj;
                                acc += (double)w[wi] * x[xi];
                                dx[xi] += (double)w[wi] * g;
                                dw[wi] += g * x[xi];
                            }
                    y[yi] = acc;
                }
}

/* conv2d against the double reference, including every grouping path
 * (one sample per sgemm, full and partial groups, 1x1 without im2col). */
static void conv_vs_ref(int n, int C, int H, int W, int O, int k, int s, int pad, int bias,
                        uint64_t seed)
{
    char what[128];
    snprintf(what, sizeof what, "conv n=%d in=[%d,%d,%d] O=%d k=%d s=%d p=%d bias=%d", n, C, H, W,
             O, k, s, pad, bias);
    ft_err err;
    ft_rng r;
    ft_rng_seed(&r, seed);
    ft_layer l;
    ft_kvlist kv;
    conv_kv(&kv, O, k, s, pad, bias);
    if (!CHECK(build(&l, "conv2d", "conv", &kv, ft_shape3(C, H, W), &err) == FT_OK)) {
        fprintf(stderr, "  %s: %s\n", what, err.msg);
        return;
    }
    int OH = (H + 2 * pad - k) / s + 1, OW = (W + 2 * pad - k) / s + 1;
    CHECK(l.out.rank == 3 && l.out.d[0] == O && l.out.d[1] == OH && l.out.d[2] == OW);
    alloc_params(&l, &r);
    size_t nin = in_count(&l, n), nout = out_count(&l, n), nw = l.params[0].count;
    float *x = floats(nin), *dy = floats(nout), *dx = floats(nin);
    fill_uniform(x, nin, &r);
    fill_uniform(dy, nout, &r);
    double *ry = malloc(sizeof(double) * nout), *rdx = malloc(sizeof(double) * nin);
    double *rdw = malloc(sizeof(double) * nw), *rdb = malloc(sizeof(double) * O);
    conv_ref(&l, n, k, s, pad, x, dy, ry, rdx, rdw, rdb);

    float *y = forward_new(&l, n, x, NULL);
    double e;
    if (!CHECK((e = rel_err(y, ry, nout)) < 1e-5))
        fprintf(stderr, "  %s: y relative error %.3g\n", what, e);
    fill_value(dx, nin, NAN);
    bwd(&l, n, x, y, dy, dx, NULL);
    if (!CHECK((e = rel_err(dx, rdx, nin)) < 1e-5))
        fprintf(stderr, "  %s: dx relative error %.3g\n", what, e);
    if (!CHECK((e = rel_err(l.params[0].grad, rdw, nw)) < 1e-5))
        fprintf(stderr, "  %s: dW relative error %.3g\n", what, e);
    if (bias && !CHECK((e = rel_err(l.params[1].grad, rdb, (size_t)O)) < 1e-5))
        fprintf(stderr, "  %s: db relative error %.3g\n", what, e);
    free(x);
    free(dy);
    free(dx);
    free(y);
    free(ry);
    free(rdx);
    free(rdw);
    free(rdb);
    release(&l);
}

static void test_conv2d(void)
{
    ft_err err;
    ft_rng r;
    ft_rng_seed(&r, 21);
    ft_layer l;
    ft_kvlist kv;
    const float x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

    /* 1x3x3 input, two 2x2 filters: [[1,2],[3,4]] + 0.5 and "bottom-right - 1" */
    conv_kv(&kv, 2, 2, 1, 0, 1);
    CHECK(build(&l, "conv2d", "c", &kv, ft_shape3(1, 3, 3), &err) == FT_OK);
    CHECK(l.out.d[0] == 2 && l.out.d[1] == 2 && l.out.d[2] == 2);
    CHECK(l.nparams == 2 && l.params[0].shape.rank == 4 && l.params[0].shape.d[0] == 2 &&
          l.params[0].shape.d[1] == 1 && l.params[0].shape.d[2] == 2 &&
          l.params[0].shape.d[3] == 2);
    CHECK_NEAR(l.params[0].init_bound, 0.5, 1e-6); /* 1/sqrt(1*2*2) */
    CHECK(l.params[1].count == 2 && l.params[1].init == FT_INIT_UNIFORM);
    alloc_params(&l, &r);
    const float w[] = {1, 2, 3, 4, 0, 0, 0, 1}, b[] = {0.5f, -1};
    set_params(&l, 0, w);
    set_params(&l, 1, b);
    /* 1+4+12+20, 2+6+15+24, 4+10+21+32, 5+12+24+36 (+0.5); then 5,6,8,9 (-1) */
    const float want[] = {37.5f, 47.5f, 67.5f, 77.5f, 4, 5, 7, 8};
    float *y = forward_new(&l, 1, x, NULL);
    check_floats(y, want, 8, 1e-5f, "conv forward");
    /* dy = 1 on filter 0 only: dx = how many windows cover each pixel x weight */
    const float dy[] = {1, 1, 1, 1, 0, 0, 0, 0};
    float dx[9];
    bwd(&l, 1, x, y, dy, dx, NULL);
    const float want_dx[] = {1, 3, 2, 4, 10, 6, 3, 7, 4};
    /* dW[0] = sum of each 2x2 window position = 1+2+4+5, 2+3+5+6, 4+5+7+8, 5+6+8+9 */
    const float want_dw[] = {12, 16, 24, 28, 0, 0, 0, 0}, want_db[] = {4, 0};
    check_floats(dx, want_dx, 9, 1e-5f, "conv dx");
    check_floats(l.params[0].grad, want_dw, 8, 1e-5f, "conv dW");
    check_floats(l.params[1].grad, want_db, 2, 1e-5f, "conv db");
    free(y);
    release(&l);

    /* stride 2, padding 1: windows start at -1 and 1 */
    conv_kv(&kv, 1, 2, 2, 1, 0);
    CHECK(build(&l, "conv2d", "c", &kv, ft_shape3(1, 3, 3), &err) == FT_OK);
    CHECK(l.nparams == 1 && l.out.d[1] == 2 && l.out.d[2] == 2);
    alloc_params(&l, &r);
    set_params(&l, 0, w);
    /* 4*1; 3*2+4*3; 2*4+4*7; 1*5+2*6+3*8+4*9 */
    const float want_s2[] = {4, 18, 36, 77};
    y = forward_new(&l, 1, x, NULL);
    check_floats(y, want_s2, 4, 1e-5f, "conv stride 2 padding 1");
    free(y);
    check_grads(&l, 2, 22, 0, "conv 1x3x3 k2 s2 p1");
    release(&l);

    /* finite differences on multi-channel layers */
    conv_kv(&kv, 3, 3, 2, 1, 1);
    CHECK(build(&l, "conv2d", "c", &kv, ft_shape3(2, 5, 6), &err) == FT_OK);
    CHECK(l.out.d[0] == 3 && l.out.d[1] == 3 && l.out.d[2] == 3);
    alloc_params(&l, &r);
    check_grads(&l, 3, 23, 0, "conv 2x5x6 k3 s2 p1");
    check_contract(&l, 3, 24, "conv 2x5x6 k3 s2 p1");
    release(&l);

    conv_kv(&kv, 4, 1, 1, 0, 1); /* 1x1: no im2col */
    CHECK(build(&l, "conv2d", "c", &kv, ft_shape3(3, 4, 4), &err) == FT_OK);
    alloc_params(&l, &r);
    check_grads(&l, 2, 25, 0, "conv 1x1");
    check_contract(&l, 2, 26, "conv 1x1");
    release(&l);

    conv_kv(&kv, 3, 1, 1, 0, 1); /* 1x1, one sample per sgemm: x is the im2col matrix */
    CHECK(build(&l, "conv2d", "c", &kv, ft_shape3(2, 16, 16), &err) == FT_OK);
    alloc_params(&l, &r);
    check_contract(&l, 3, 28, "conv 1x1 16x16");
    release(&l);

    conv_kv(&kv, 2, 3, 1, 1, 1); /* one sample per sgemm */
    CHECK(build(&l, "conv2d", "c", &kv, ft_shape3(1, 32, 32), &err) == FT_OK);
    alloc_params(&l, &r);
    check_contract(&l, 3, 27, "conv 32x32");
    release(&l);

    /* double reference: the layer puts ceil(256 / (OH*OW)) samples in one
     * sgemm, so these cover single samples, full and partial groups, 1x1
     * convolutions with and without im2col, and odd strides */
    conv_vs_ref(3, 3, 5, 5, 4, 3, 1, 1, 1, 31);   /* one group of 3 */
    conv_vs_ref(6, 2, 8, 8, 3, 3, 1, 1, 1, 32);   /* groups of 4: 4 + 2 */
    conv_vs_ref(9, 2, 8, 8, 3, 3, 1, 1, 0, 33);   /* 4 + 4 + 1 */
    conv_vs_ref(8, 3, 9, 9, 5, 3, 1, 1, 1, 42);   /* 7x7 output, groups of 6: 6 + 2 */
    conv_vs_ref(2, 2, 20, 20, 3, 1, 1, 0, 1, 34); /* 1x1, one sample per sgemm */
    conv_vs_ref(3, 2, 17, 17, 3, 3, 1, 1, 1, 35); /* 3x3, one sample per sgemm */
    conv_vs_ref(5, 3, 4, 4, 5, 1, 1, 0, 1, 36);   /* 1x1 grouped */
    conv_vs_ref(2, 2, 7, 7, 4, 3, 2, 1, 1, 37);
    conv_vs_ref(2, 3, 8, 9, 2, 2, 3, 0, 1, 38); /* stride > kernel: pixels skipped */
    conv_vs_ref(3, 1, 6, 6, 2, 4, 2, 2, 1, 39);
    conv_vs_ref(2, 2, 3, 3, 2, 5, 1, 2, 1, 40); /* kernel larger than the input */
    conv_vs_ref(1, 4, 224, 224, 2, 7, 2, 3, 1, 41);

    /* setup errors name the layer, the input shape and the settings */
    conv_kv(&kv, 2, 3, 1, 0, 1);
    CHECK(build(&l, "conv2d", "conv_a", &kv, ft_shape1(12), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "'conv_a'");
    CHECK_STR_CONTAINS(err.msg, "[12]");
    release(&l);
    CHECK(build(&l, "conv2d", "conv_b", &kv, ft_shape3(1, 2, 2), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "'conv_b'");
    CHECK_STR_CONTAINS(err.msg, "[1, 2, 2]");
    CHECK_STR_CONTAINS(err.msg, "kernel 3");
    CHECK_STR_CONTAINS(err.msg, "stride 1");
    CHECK_STR_CONTAINS(err.msg, "padding 0");
    release(&l);
    conv_kv(&kv, 0, 3, 1, 0, 1);
    CHECK(build(&l, "conv2d", "conv_c", &kv, ft_shape3(1, 8, 8), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "'conv_c'");
    CHECK_STR_CONTAINS(err.msg, "filters");
    release(&l);
    conv_kv(&kv, 2, 3, 0, 0, 1);
    ft_kv_set_int(&kv, "stride", 0);
    CHECK(build(&l, "conv2d", "conv_d", &kv, ft_shape3(1, 8, 8), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "stride");
    release(&l);
    ft_kvlist typo = {0};
    ft_kv_set_int(&typo, "filter", 2);
    ft_kv_set_int(&typo, "kernel", 3);
    CHECK(build(&l, "conv2d", "conv_e", &typo, ft_shape3(1, 8, 8), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "'filters'");
    release(&l);
}

/* ---- pooling ---------------------------------------------------------- */

static void pool_kv(ft_kvlist *kv, int size, int stride, int padding)
{
    memset(kv, 0, sizeof *kv);
    ft_kv_set_int(kv, "size", size);
    if (stride)
        ft_kv_set_int(kv, "stride", stride);
    if (padding)
        ft_kv_set_int(kv, "padding", padding);
}

/* Pooling by definition in double: the max (first on ties) or the mean
 * with padded zeros counted, over the window clipped to the input. */
static void pool_ref(int is_max, int n, int C, int H, int W, int k, int st, int pad, const float *x,
                     const float *dy, double *y, double *dx)
{
    const int OH = (H + 2 * pad - k) / st + 1, OW = (W + 2 * pad - k) / st + 1;
    memset(dx, 0, sizeof(double) * (size_t)n * C * H * W);
    for (int p = 0; p < n * C; p++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                size_t yi = ((size_t)p * OH + oy) * OW + ox, best = 0;
                double acc = is_max ? -INFINITY : 0.0;
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++) {
                        int iy = oy * st - pad + ki, ix = ox * st - pad + kj;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                            continue;
                        size_t xi = ((size_t)p * H + iy) * W + ix;
                        if (!is_max)
                            acc += x[xi];
                        else if (x[xi] > acc) {
                            acc = x[xi];
                            best = xi;
                        }
                    }
                if (is_max) {
                    y[yi] = acc;
                    dx[best] += dy[yi];
                    continue;
                }
                y[yi] = acc / (k * k);
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++) {
                        int iy = oy * st - pad + ki, ix = ox * st - pad + kj;
                        if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                            dx[((size_t)p * H + iy) * W + ix] += dy[yi] / (k * k);
                    }
            }
}

static void pool_vs_ref(const char *kind, int n, int C, int H, int W, int k, int st, int pad,
                        uint64_t seed)
{
    char what[128];
    snprintf(what, sizeof what, "%s n=%d in=[%d,%d,%d] k=%d s=%d p=%d", kind, n, C, H, W, k, st,
             pad);
    int is_max = strcmp(kind, "maxpool2d") == 0;
    ft_err err;
    ft_rng r;
    ft_rng_seed(&r, seed);
    ft_layer l;
    ft_kvlist kv;
    pool_kv(&kv, k, st, pad);
    if (!CHECK(build(&l, kind, "pool", &kv, ft_shape3(C, H, W), &err) == FT_OK)) {
        fprintf(stderr, "  %s: %s\n", what, err.msg);
        return;
    }
    CHECK(l.out.d[0] == C && l.out.d[1] == (H + 2 * pad - k) / st + 1 &&
          l.out.d[2] == (W + 2 * pad - k) / st + 1);
    size_t nin = in_count(&l, n), nout = out_count(&l, n);
    float *x = floats(nin), *dy = floats(nout), *dx = floats(nin);
    fill_distinct(x, nin, &r);
    fill_uniform(dy, nout, &r);
    double *ry = malloc(sizeof(double) * nout), *rdx = malloc(sizeof(double) * nin);
    pool_ref(is_max, n, C, H, W, k, st, pad, x, dy, ry, rdx);
    float *saved = NULL;
    float *y = forward_new(&l, n, x, &saved);
    double e;
    if (!CHECK((e = rel_err(y, ry, nout)) < 1e-6))
        fprintf(stderr, "  %s: y relative error %.3g\n", what, e);
    fill_value(dx, nin, NAN);
    bwd(&l, n, x, y, dy, dx, saved);
    if (!CHECK((e = rel_err(dx, rdx, nin)) < 1e-6))
        fprintf(stderr, "  %s: dx relative error %.3g\n", what, e);
    free(x);
    free(dy);
    free(dx);
    free(y);
    free(saved);
    free(ry);
    free(rdx);
    release(&l);
}

static void pools_vs_ref(const char *kind)
{
    pool_vs_ref(kind, 3, 2, 7, 6, 3, 2, 1, 91); /* ResNet stem shape */
    pool_vs_ref(kind, 2, 3, 8, 8, 2, 2, 0, 92);
    pool_vs_ref(kind, 2, 2, 9, 7, 2, 2, 1, 93);
    pool_vs_ref(kind, 2, 1, 6, 5, 3, 1, 1, 94);  /* overlapping windows */
    pool_vs_ref(kind, 2, 2, 10, 9, 2, 3, 0, 95); /* stride > size: pixels skipped */
    pool_vs_ref(kind, 1, 1, 4, 4, 4, 1, 2, 96);
    pool_vs_ref(kind, 2, 2, 5, 5, 5, 5, 0, 97); /* one window covering everything */
}

static void test_maxpool2d(void)
{
    ft_err err;
    ft_layer l;
    ft_kvlist kv;
    const float x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

    /* 2x2, stride 1 (overlapping windows) */
    pool_kv(&kv, 2, 1, 0);
    CHECK(build(&l, "maxpool2d", "mp", &kv, ft_shape3(1, 3, 3), &err) == FT_OK);
    CHECK(l.nparams == 0 && l.out.d[0] == 1 && l.out.d[1] == 2 && l.out.d[2] == 2);
    float *saved = NULL;
    float *y = forward_new(&l, 1, x, &saved);
    const float want[] = {5, 6, 8, 9};
    check_floats(y, want, 4, 0, "maxpool forward");
    const float dy[] = {1, 10, 100, 1000};
    float dx[9];
    bwd(&l, 1, x, y, dy, dx, saved);
    const float want_dx[] = {0, 0, 0, 0, 1, 10, 0, 100, 1000};
    check_floats(dx, want_dx, 9, 0, "maxpool dx");
    /* backward without saved argmax finds the same winners */
    bwd(&l, 1, x, y, dy, dx, NULL);
    check_floats(dx, want_dx, 9, 0, "maxpool dx (no saved)");
    free(y);
    free(saved);
    /* all windows share pixel 4 when it is the largest */
    const float xc[] = {0, 0, 0, 0, 9, 0, 0, 0, 0};
    y = forward_new(&l, 1, xc, &saved);
    bwd(&l, 1, xc, y, dy, dx, saved);
    CHECK_NEAR(dx[4], 1111, 0);
    free(y);
    free(saved);
    release(&l);

    /* default stride = size; floor output size (5x5 -> 2x2) */
    pool_kv(&kv, 2, 0, 0);
    CHECK(build(&l, "maxpool2d", "mp", &kv, ft_shape3(3, 5, 5), &err) == FT_OK);
    CHECK(l.out.d[0] == 3 && l.out.d[1] == 2 && l.out.d[2] == 2);
    check_grads(&l, 2, 51, 1, "maxpool 2 on 5x5");
    check_contract(&l, 2, 52, "maxpool 2 on 5x5");
    release(&l);

    /* padding is -inf, not 0: all-negative input, size 2, stride 2, padding 1 */
    pool_kv(&kv, 2, 2, 1);
    CHECK(build(&l, "maxpool2d", "mp", &kv, ft_shape3(1, 3, 3), &err) == FT_OK);
    CHECK(l.out.d[1] == 2 && l.out.d[2] == 2);
    const float xn[] = {-1, -2, -3, -4, -5, -6, -7, -8, -9};
    y = forward_new(&l, 1, xn, NULL);
    const float want_n[] = {-1, -2, -4, -5};
    check_floats(y, want_n, 4, 0, "maxpool padding");
    free(y);
    release(&l);

    /* ResNet stem: 3, stride 2, padding 1 halves 112 -> 56; odd sizes too */
    pool_kv(&kv, 3, 2, 1);
    CHECK(build(&l, "maxpool2d", "mp", &kv, ft_shape3(4, 112, 112), &err) == FT_OK);
    CHECK(l.out.d[1] == 56 && l.out.d[2] == 56);
    release(&l);
    CHECK(build(&l, "maxpool2d", "mp", &kv, ft_shape3(2, 7, 6), &err) == FT_OK);
    CHECK(l.out.d[1] == 4 && l.out.d[2] == 3);
    check_grads(&l, 2, 53, 1, "maxpool 3 s2 p1");
    check_contract(&l, 3, 54, "maxpool 3 s2 p1");
    release(&l);

    /* NaN propagates like in PyTorch */
    pool_kv(&kv, 2, 0, 0);
    CHECK(build(&l, "maxpool2d", "mp", &kv, ft_shape3(1, 2, 2), &err) == FT_OK);
    const float xnan[] = {1, NAN, 3, 2};
    y = forward_new(&l, 1, xnan, NULL);
    CHECK(isnan(y[0]));
    free(y);
    release(&l);

    pools_vs_ref("maxpool2d");

    pool_kv(&kv, 3, 0, 0);
    CHECK(build(&l, "maxpool2d", "pool_a", &kv, ft_shape3(2, 2, 2), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "'pool_a'");
    CHECK_STR_CONTAINS(err.msg, "[2, 2, 2]");
    release(&l);
    CHECK(build(&l, "maxpool2d", "pool_b", &kv, ft_shape1(8), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "'pool_b'");
    release(&l);
    pool_kv(&kv, 2, 0, 2); /* PyTorch: padding at most size/2 */
    CHECK(build(&l, "maxpool2d", "pool_c", &kv, ft_shape3(1, 8, 8), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "'pool_c'");
    CHECK_STR_CONTAINS(err.msg, "padding");
    release(&l);
}

static void test_avgpool2d(void)
{
    ft_err err;
    ft_layer l;
    ft_kvlist kv;
    const float x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

    pool_kv(&kv, 2, 1, 0);
    CHECK(build(&l, "avgpool2d", "ap", &kv, ft_shape3(1, 3, 3), &err) == FT_OK);
    CHECK(l.nparams == 0 && l.out.d[1] == 2 && l.out.d[2] == 2);
    float *y = forward_new(&l, 1, x, NULL);
    const float want[] = {3, 4, 6, 7};
    check_floats(y, want, 4, 1e-6f, "avgpool forward");
    const float dy[] = {4, 8, 12, 16};
    float dx[9];
    bwd(&l, 1, x, y, dy, dx, NULL);
    const float want_dx[] = {1, 3, 2, 4, 10, 6, 3, 7, 4};
    check_floats(dx, want_dx, 9, 1e-6f, "avgpool dx");
    free(y);
    release(&l);

    /* count_include_pad: padded zeros count in the divisor */
    pool_kv(&kv, 2, 2, 1);
    CHECK(build(&l, "avgpool2d", "ap", &kv, ft_shape3(1, 3, 3), &err) == FT_OK);
    y = forward_new(&l, 1, x, NULL);
    const float want_p[] = {0.25f, 1.25f, 2.75f, 7};
    check_floats(y, want_p, 4, 1e-6f, "avgpool padding");
    free(y);
    check_grads(&l, 2, 61, 0, "avgpool 2 s2 p1");
    release(&l);

    pool_kv(&kv, 3, 2, 1);
    CHECK(build(&l, "avgpool2d", "ap", &kv, ft_shape3(2, 7, 6), &err) == FT_OK);
    CHECK(l.out.d[0] == 2 && l.out.d[1] == 4 && l.out.d[2] == 3);
    check_grads(&l, 2, 62, 0, "avgpool 3 s2 p1");
    check_contract(&l, 2, 63, "avgpool 3 s2 p1");
    release(&l);

    pool_kv(&kv, 2, 0, 0);
    CHECK(build(&l, "avgpool2d", "ap", &kv, ft_shape3(3, 5, 5), &err) == FT_OK);
    CHECK(l.out.d[1] == 2 && l.out.d[2] == 2);
    check_grads(&l, 2, 64, 0, "avgpool 2 on 5x5");
    release(&l);

    pools_vs_ref("avgpool2d");

    pool_kv(&kv, 4, 0, 0);
    CHECK(build(&l, "avgpool2d", "pool_d", &kv, ft_shape3(2, 3, 3), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "'pool_d'");
    CHECK_STR_CONTAINS(err.msg, "[2, 3, 3]");
    release(&l);
}

static void test_global_avgpool(void)
{
    ft_err err;
    ft_layer l;
    CHECK(build(&l, "global_avgpool", "gap", NULL, ft_shape3(2, 2, 2), &err) == FT_OK);
    CHECK(l.nparams == 0 && l.out.rank == 1 && l.out.d[0] == 2);
    const float x[] = {1, 2, 3, 4, -1, 0, 5, 8, 0, 0, 0, 4, 1, 1, 1, 1};
    float *y = forward_new(&l, 2, x, NULL);
    const float want[] = {2.5f, 3, 1, 1};
    check_floats(y, want, 4, 1e-6f, "global_avgpool forward");
    const float dy[] = {4, 8, -4, 2};
    float dx[16];
    bwd(&l, 2, x, y, dy, dx, NULL);
    const float want_dx[] = {1, 1, 1, 1, 2, 2, 2, 2, -1, -1, -1, -1, 0.5f, 0.5f, 0.5f, 0.5f};
    check_floats(dx, want_dx, 16, 1e-6f, "global_avgpool dx");
    free(y);
    release(&l);

    CHECK(build(&l, "global_avgpool", "gap", NULL, ft_shape3(3, 4, 5), &err) == FT_OK);
    check_grads(&l, 3, 71, 0, "global_avgpool");
    check_contract(&l, 2, 72, "global_avgpool");
    release(&l);

    CHECK(build(&l, "global_avgpool", "gap_bad", NULL, ft_shape1(10), &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "'gap_bad'");
    CHECK_STR_CONTAINS(err.msg, "[10]");
    release(&l);
}

static void test_flatten(void)
{
    ft_err err;
    ft_layer l;
    CHECK(build(&l, "flatten", "flat", NULL, ft_shape3(2, 3, 4), &err) == FT_OK);
    CHECK(l.nparams == 0 && l.out.rank == 1 && l.out.d[0] == 24);
    ft_rng r;
    ft_rng_seed(&r, 81);
    float x[48];
    fill_uniform(x, 48, &r);
    float *y = forward_new(&l, 2, x, NULL);
    CHECK(memcmp(x, y, sizeof x) == 0);
    free(y);
    check_grads(&l, 2, 82, 0, "flatten");
    check_contract(&l, 2, 83, "flatten");
    release(&l);
}

/* conv -> dense directly: dense reads the [C, H, W] output as features */
static void test_conv_then_dense(void)
{
    ft_err err;
    ft_layer l;
    ft_kvlist kv = {0};
    ft_kv_set_int(&kv, "units", 3);
    CHECK(build(&l, "dense", "fc", &kv, ft_shape3(4, 3, 3), &err) == FT_OK);
    CHECK(l.params[0].shape.d[1] == 36);
    CHECK_NEAR(l.params[0].init_bound, 1.0 / 6.0, 1e-6);
    release(&l);
}

int main(void)
{
    test_dense();
    test_conv2d();
    test_maxpool2d();
    test_avgpool2d();
    test_global_avgpool();
    test_flatten();
    test_conv_then_dense();
    return tu_done("test_layers_spatial");
}
