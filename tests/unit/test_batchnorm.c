/* Batch normalisation: PyTorch training/evaluation semantics, frozen layers,
 * finite-difference gradients, and SyncBatchNorm over two simulated ranks
 * (threads whose reduce callback sums across both). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftune/kv.h"
#include "ftune/layer.h"
#include "ftune/rng.h"

#include "testutil.h"

typedef struct bn_test {
    ft_layer l;
    float *ws, *saved;
} bn_test;

/* Creates a batchnorm on `in` with parameters allocated and initialised as
 * declared; learnable parameters get gradients when with_grads. */
static int make_bn(bn_test *t, ft_shape in, const ft_kvlist *kv, int with_grads, ft_err *err)
{
    static const ft_kvlist empty;
    ft_layer *l = &t->l;
    memset(t, 0, sizeof *t);
    snprintf(l->name, sizeof l->name, "bn1");
    l->name_hash = ft_hash_str(l->name);
    l->lr_mult = 1.0f;
    l->ops = ft_layer_kind("batchnorm");
    if (!CHECK(l->ops != NULL))
        return 1;
    if (!kv)
        kv = &empty;
    int rc = ft_kv_validate(kv, l->ops->keys, l->name, err);
    if (rc == FT_OK)
        rc = l->ops->create(l, kv, err);
    if (rc != FT_OK)
        return rc;
    l->in = in;
    if ((rc = l->ops->setup(l, err)) != FT_OK)
        return rc;
    for (int i = 0; i < l->nparams; i++) {
        ft_param *p = &l->params[i];
        p->data = calloc(p->count, sizeof(float));
        for (size_t k = 0; k < p->count; k++)
            p->data[k] = p->init == FT_INIT_ONE ? 1.0f : 0.0f;
        if (with_grads && p->learnable)
            p->grad = calloc(p->count, sizeof(float));
    }
    t->ws = calloc(l->ops->workspace_floats(l, 64) + 1, sizeof(float));
    t->saved = calloc(l->ops->saved_floats(l, 64) + 1, sizeof(float));
    return FT_OK;
}

static void free_bn(bn_test *t)
{
    for (int i = 0; i < t->l.nparams; i++) {
        free(t->l.params[i].data);
        free(t->l.params[i].grad);
    }
    if (t->l.ops && t->l.ops->destroy)
        t->l.ops->destroy(&t->l);
    else
        free(t->l.priv);
    free(t->ws);
    free(t->saved);
}

static ft_param *param(ft_layer *l, const char *name)
{
    for (int i = 0; i < l->nparams; i++)
        if (strcmp(l->params[i].name, name) == 0)
            return &l->params[i];
    return NULL;
}

static ft_ctx make_ctx(bn_test *t, int n, int training)
{
    ft_ctx c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.training = training;
    c.ws = t->ws;
    return c;
}

static void test_setup(void)
{
    bn_test t;
    ft_err err = {0};
    if (!CHECK(make_bn(&t, ft_shape3(3, 4, 5), NULL, 1, &err) == FT_OK))
        return;
    CHECK(ft_shape_equal(&t.l.out, &t.l.in));
    CHECK(t.l.nparams == 4);
    const char *names[] = {"weight", "bias", "running_mean", "running_var"};
    const int learn[] = {1, 1, 0, 0};
    const int init[] = {FT_INIT_ONE, FT_INIT_ZERO, FT_INIT_ZERO, FT_INIT_ONE};
    for (int i = 0; i < 4; i++) {
        CHECK(strcmp(t.l.params[i].name, names[i]) == 0);
        CHECK(t.l.params[i].count == 3);
        CHECK(t.l.params[i].shape.rank == 1 && t.l.params[i].shape.d[0] == 3);
        CHECK(t.l.params[i].learnable == learn[i]);
        CHECK(t.l.params[i].init == init[i]);
    }
    free_bn(&t);

    ft_kvlist kv = {0};
    ft_kv_set_bool(&kv, "affine", 0);
    if (CHECK(make_bn(&t, ft_shape1(6), &kv, 1, &err) == FT_OK)) {
        CHECK(t.l.nparams == 2);
        CHECK(param(&t.l, "running_mean") && param(&t.l, "running_var"));
        CHECK(!param(&t.l, "weight"));
        free_bn(&t);
    }

    ft_kvlist bad = {0};
    snprintf(bad.where, sizeof bad.where, "net.cfg");
    ft_kv_set_float(&bad, "eps", 0.0);
    CHECK(make_bn(&t, ft_shape1(6), &bad, 1, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "eps");
    CHECK_STR_CONTAINS(err.msg, "bn1");
    free_bn(&t);
    ft_kvlist bad2 = {0};
    ft_kv_set_float(&bad2, "momentum", 1.5);
    CHECK(make_bn(&t, ft_shape1(6), &bad2, 1, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "momentum");
    free_bn(&t);
}

/* BatchNorm1d, training: batch mean, biased variance for normalising,
 * unbiased variance into running_var with momentum 0.1. */
static void test_train_1d(void)
{
    bn_test t;
    ft_err err = {0};
    if (!CHECK(make_bn(&t, ft_shape1(2), NULL, 1, &err) == FT_OK))
        return;
    param(&t.l, "weight")->data[1] = 2.0f;
    param(&t.l, "bias")->data[1] = 0.5f;
    /* rows: feature 0 = 1, 2, 3, 4; feature 1 = -1, 0.5, 2, 6.5 */
    const float x[] = {1, -1, 2, 0.5f, 3, 2, 4, 6.5f};
    const double want[] = {-1.3416354199689269, -1.6380885777832686, -0.447211806656309,
                           -0.5690442888916343, 0.447211806656309,   0.5,
                           1.3416354199689269,  3.707132866674903};
    float y[8];
    ft_ctx c = make_ctx(&t, 4, 1);
    t.l.ops->forward(&t.l, &c, x, y, t.saved);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(y[i], want[i], 2e-6);
    CHECK_NEAR(param(&t.l, "running_mean")->data[0], 0.25, 1e-7);
    CHECK_NEAR(param(&t.l, "running_mean")->data[1], 0.2, 1e-7);
    CHECK_NEAR(param(&t.l, "running_var")->data[0], 1.0666666666666667, 1e-6);
    CHECK_NEAR(param(&t.l, "running_var")->data[1], 1.95, 1e-6);

    /* without saved (no backward follows) the result and the update are the same */
    t.l.ops->forward(&t.l, &c, x, y, NULL);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(y[i], want[i], 2e-6);
    CHECK_NEAR(param(&t.l, "running_mean")->data[0], 0.9 * 0.25 + 0.1 * 2.5, 1e-6);
    CHECK_NEAR(param(&t.l, "running_var")->data[1], 0.9 * 1.95 + 0.1 * 10.5, 1e-5);
    free_bn(&t);

    /* momentum is honoured */
    ft_kvlist kv = {0};
    ft_kv_set_float(&kv, "momentum", 0.5);
    if (CHECK(make_bn(&t, ft_shape1(2), &kv, 1, &err) == FT_OK)) {
        c = make_ctx(&t, 4, 1);
        t.l.ops->forward(&t.l, &c, x, y, t.saved);
        CHECK_NEAR(param(&t.l, "running_mean")->data[0], 1.25, 1e-6);
        CHECK_NEAR(param(&t.l, "running_var")->data[1], 0.5 + 0.5 * 10.5, 1e-5);
        free_bn(&t);
    }
}

/* BatchNorm2d: statistics per channel over n*H*W. */
static void test_train_2d(void)
{
    bn_test t;
    ft_err err = {0};
    if (!CHECK(make_bn(&t, ft_shape3(2, 1, 2), NULL, 1, &err) == FT_OK))
        return;
    float *g = param(&t.l, "weight")->data, *b = param(&t.l, "bias")->data;
    g[0] = 1.5f;
    g[1] = -1.0f;
    b[0] = 0.25f;
    b[1] = 1.0f;
    /* sample 0: ch0 [1, 2], ch1 [0, 4]; sample 1: ch0 [3, 4], ch1 [8, -4] */
    const float x[] = {1, 2, 0, 4, 3, 4, 8, -4};
    const double want[] = {-1.76245312995339,  -0.42081770998446344, 1.447213483696601,
                           0.5527865163033989, 0.9208177099844634,   2.26245312995339,
                           -0.341640451089803, 2.341640451089803};
    float y[8];
    ft_ctx c = make_ctx(&t, 2, 1);
    t.l.ops->forward(&t.l, &c, x, y, t.saved);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(y[i], want[i], 2e-6);
    CHECK_NEAR(param(&t.l, "running_mean")->data[0], 0.25, 1e-7);
    CHECK_NEAR(param(&t.l, "running_mean")->data[1], 0.2, 1e-7);
    CHECK_NEAR(param(&t.l, "running_var")->data[0], 1.0666666666666667, 1e-6);
    CHECK_NEAR(param(&t.l, "running_var")->data[1], 3.5666666666666664, 1e-6);
    free_bn(&t);
}

/* Evaluation, and a frozen layer even in training: running statistics, which
 * stay exactly as they were. */
static void test_eval_and_frozen(void)
{
    const float x[] = {1, -1, 2, 0.5f, 3, 2, 4, 6.5f};
    const double want[] = {0.0,
                           0.5,
                           0.49999937500117186,
                           6.49988000359988,
                           0.9999987500023437,
                           12.49976000719976,
                           1.4999981250035155,
                           30.499400017999395};
    for (int mode = 0; mode < 2; mode++) {
        bn_test t;
        ft_err err = {0};
        if (!CHECK(make_bn(&t, ft_shape1(2), NULL, mode == 0, &err) == FT_OK))
            return;
        t.l.frozen = mode == 1;
        param(&t.l, "weight")->data[1] = 2.0f;
        param(&t.l, "bias")->data[1] = 0.5f;
        float *rm = param(&t.l, "running_mean")->data, *rv = param(&t.l, "running_var")->data;
        rm[0] = 1.0f;
        rm[1] = -1.0f;
        rv[0] = 4.0f;
        rv[1] = 0.25f;
        float y[8];
        ft_ctx c = make_ctx(&t, 4, mode == 1); /* frozen: training = 1 */
        t.l.ops->forward(&t.l, &c, x, y, t.saved);
        for (int i = 0; i < 8; i++)
            CHECK_NEAR(y[i], want[i], 4e-6);
        CHECK(rm[0] == 1.0f && rm[1] == -1.0f && rv[0] == 4.0f && rv[1] == 0.25f);

        /* gradient passes through with the running statistics */
        const float dy[] = {1, 2, 3, 4, 5, 6, 7, 8};
        float dx[8];
        t.l.ops->backward(&t.l, &c, x, y, dy, dx, t.saved);
        for (int i = 0; i < 8; i += 2) {
            CHECK_NEAR(dx[i], dy[i] / sqrt(4.0 + 1e-5), 1e-6);
            CHECK_NEAR(dx[i + 1], dy[i + 1] * 2.0 / sqrt(0.25 + 1e-5), 1e-5);
        }
        if (mode == 0) {
            /* trainable in eval mode: parameter gradients with the running statistics */
            float *gw = param(&t.l, "weight")->grad, *gb = param(&t.l, "bias")->grad;
            CHECK_NEAR(gb[0], 1 + 3 + 5 + 7, 1e-5);
            CHECK_NEAR(gb[1], 2 + 4 + 6 + 8, 1e-5);
            double s = 0.0;
            for (int i = 0; i < 4; i++)
                s += dy[2 * i] * (x[2 * i] - 1.0) / sqrt(4.0 + 1e-5);
            CHECK_NEAR(gw[0], s, 1e-5);
        } else {
            CHECK(param(&t.l, "weight")->grad == NULL);
        }
        CHECK(rm[0] == 1.0f && rm[1] == -1.0f && rv[0] == 4.0f && rv[1] == 0.25f);
        free_bn(&t);
    }
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static double loss_at(bn_test *t, const ft_ctx *c, const float *x, float *y, const float *r,
                      size_t ny)
{
    t->l.ops->forward(&t->l, c, x, y, NULL);
    return dot(y, r, ny);
}

/* Central differences of loss = sum(y * r) for dx, d weight, d bias. */
static void fd_check(ft_shape in, int n, int training, int frozen)
{
    bn_test t;
    ft_err err = {0};
    if (!CHECK(make_bn(&t, in, NULL, !frozen, &err) == FT_OK))
        return;
    t.l.frozen = frozen;
    size_t C = (size_t)in.d[0], nx = (size_t)n * ft_shape_count(&in);
    float *x = malloc(nx * sizeof *x), *y = malloc(nx * sizeof *y), *r = malloc(nx * sizeof *r);
    float *dx = malloc(nx * sizeof *dx);
    ft_rng rng;
    ft_rng_seed(&rng, 5 + (uint64_t)n);
    for (size_t i = 0; i < nx; i++) {
        x[i] = ft_rng_normal(&rng) * 2.0f + 0.5f;
        r[i] = ft_rng_uniform(&rng) * 2.0f - 1.0f;
    }
    float *g = param(&t.l, "weight")->data, *b = param(&t.l, "bias")->data;
    float *rm = param(&t.l, "running_mean")->data, *rv = param(&t.l, "running_var")->data;
    for (size_t ch = 0; ch < C; ch++) {
        g[ch] = 0.5f + ft_rng_uniform(&rng);
        b[ch] = ft_rng_uniform(&rng) - 0.5f;
        rm[ch] = ft_rng_uniform(&rng) - 0.5f;
        rv[ch] = 0.5f + ft_rng_uniform(&rng);
    }
    ft_ctx c = make_ctx(&t, n, training);
    t.l.ops->forward(&t.l, &c, x, y, t.saved);
    t.l.ops->backward(&t.l, &c, x, y, r, dx, t.saved);

    const float h = 1e-2f;
    for (size_t j = 0; j < nx; j++) {
        float x0 = x[j];
        x[j] = x0 + h;
        double lp = loss_at(&t, &c, x, y, r, nx);
        x[j] = x0 - h;
        double lm = loss_at(&t, &c, x, y, r, nx);
        x[j] = x0;
        double num = (lp - lm) / (2.0 * h);
        if (!CHECK_NEAR(dx[j], num, 2e-3 * (1.0 + fabs(num))))
            fprintf(stderr, "  dx[%zu], training %d, frozen %d, n %d\n", j, training, frozen, n);
    }
    if (!frozen) {
        const char *names[] = {"weight", "bias"};
        for (int k = 0; k < 2; k++) {
            ft_param *p = param(&t.l, names[k]);
            for (size_t ch = 0; ch < C; ch++) {
                float v0 = p->data[ch];
                p->data[ch] = v0 + h;
                double lp = loss_at(&t, &c, x, y, r, nx);
                p->data[ch] = v0 - h;
                double lm = loss_at(&t, &c, x, y, r, nx);
                p->data[ch] = v0;
                double num = (lp - lm) / (2.0 * h);
                if (!CHECK_NEAR(p->grad[ch], num, 2e-3 * (1.0 + fabs(num))))
                    fprintf(stderr, "  d%s[%zu], training %d\n", names[k], ch, training);
            }
        }
        /* accumulation: a second backward adds the same again */
        float g0 = param(&t.l, "weight")->grad[0], b0 = param(&t.l, "bias")->grad[0];
        t.l.ops->forward(&t.l, &c, x, y, t.saved);
        t.l.ops->backward(&t.l, &c, x, y, r, NULL, t.saved);
        CHECK_NEAR(param(&t.l, "weight")->grad[0], 2.0 * g0, 1e-5 * (1.0 + fabs(g0)));
        CHECK_NEAR(param(&t.l, "bias")->grad[0], 2.0 * b0, 1e-5 * (1.0 + fabs(b0)));
    }
    free(x);
    free(y);
    free(r);
    free(dx);
    free_bn(&t);
}

static void test_gradients(void)
{
    fd_check(ft_shape1(4), 6, 1, 0);
    fd_check(ft_shape3(3, 2, 2), 3, 1, 0);
    fd_check(ft_shape3(3, 2, 2), 3, 0, 0);
    fd_check(ft_shape3(3, 2, 2), 3, 1, 1);
    fd_check(ft_shape1(4), 5, 0, 1);
}

static void test_empty_batch(void)
{
    bn_test t;
    ft_err err = {0};
    if (!CHECK(make_bn(&t, ft_shape3(2, 2, 2), NULL, 1, &err) == FT_OK))
        return;
    ft_ctx c = make_ctx(&t, 0, 1);
    float dummy = 3.0f;
    t.l.ops->forward(&t.l, &c, &dummy, &dummy, t.saved);
    t.l.ops->backward(&t.l, &c, &dummy, &dummy, &dummy, &dummy, t.saved);
    CHECK(dummy == 3.0f);
    /* no samples anywhere: running statistics untouched, no NaN anywhere */
    CHECK(param(&t.l, "running_mean")->data[0] == 0.0f);
    CHECK(param(&t.l, "running_var")->data[0] == 1.0f);
    CHECK(param(&t.l, "weight")->grad[0] == 0.0f);
    free_bn(&t);
}

/* ---- SyncBatchNorm: two ranks as two threads ---- */

typedef struct sync_shared {
    pthread_barrier_t bar;
    float *bufs[2];
    size_t lens[2];
    int mismatch;
} sync_shared;

typedef struct rank_arg {
    sync_shared *s;
    int rank, calls, n;
    bn_test *t;
    const float *x, *dy;
    float *y, *dx;
} rank_arg;

/* Allreduce(sum) between the two threads, summed in rank order. */
static int two_rank_reduce(float *buf, size_t n, void *user)
{
    rank_arg *a = user;
    sync_shared *s = a->s;
    a->calls++;
    s->bufs[a->rank] = buf;
    s->lens[a->rank] = n;
    pthread_barrier_wait(&s->bar);
    float *tmp = malloc((n ? n : 1) * sizeof *tmp);
    int ok = s->lens[0] == s->lens[1];
    for (size_t i = 0; ok && i < n; i++)
        tmp[i] = s->bufs[0][i] + s->bufs[1][i];
    pthread_barrier_wait(&s->bar);
    if (ok)
        memcpy(buf, tmp, n * sizeof *tmp);
    else
        s->mismatch = 1;
    free(tmp);
    return ok ? 0 : 1;
}

static void *rank_main(void *p)
{
    rank_arg *a = p;
    ft_ctx c = make_ctx(a->t, a->n, 1);
    c.reduce = two_rank_reduce;
    c.reduce_user = a;
    a->t->l.ops->forward(&a->t->l, &c, a->x, a->y, a->t->saved);
    a->t->l.ops->backward(&a->t->l, &c, a->x, a->y, a->dy, a->dx, a->t->saved);
    return NULL;
}

static void sync_case(ft_shape in, int n, int n0)
{
    size_t f = ft_shape_count(&in), C = (size_t)in.d[0], nx = (size_t)n * f;
    float *x = malloc(nx * sizeof *x), *dy = malloc(nx * sizeof *dy);
    float *y_ref = malloc(nx * sizeof *x), *dx_ref = malloc(nx * sizeof *x);
    float *y = malloc(nx * sizeof *x), *dx = malloc(nx * sizeof *x);
    ft_rng rng;
    ft_rng_seed(&rng, 11);
    for (size_t i = 0; i < nx; i++) {
        x[i] = ft_rng_normal(&rng) + 3.0f;
        dy[i] = ft_rng_normal(&rng);
    }
    /* reference: one process, the whole batch */
    bn_test ref, rk[2];
    ft_err err = {0};
    if (!CHECK(make_bn(&ref, in, NULL, 1, &err) == FT_OK))
        return;
    for (size_t ch = 0; ch < C; ch++) {
        param(&ref.l, "weight")->data[ch] = 1.0f + 0.1f * (float)ch;
        param(&ref.l, "bias")->data[ch] = -0.2f * (float)ch;
    }
    ft_ctx c = make_ctx(&ref, n, 1);
    ref.l.ops->forward(&ref.l, &c, x, y_ref, ref.saved);
    ref.l.ops->backward(&ref.l, &c, x, y_ref, dy, dx_ref, ref.saved);

    sync_shared s;
    memset(&s, 0, sizeof s);
    pthread_barrier_init(&s.bar, NULL, 2);
    rank_arg a[2];
    pthread_t th[2];
    for (int r = 0; r < 2; r++) {
        make_bn(&rk[r], in, NULL, 1, &err);
        for (size_t ch = 0; ch < C; ch++) {
            param(&rk[r].l, "weight")->data[ch] = param(&ref.l, "weight")->data[ch];
            param(&rk[r].l, "bias")->data[ch] = param(&ref.l, "bias")->data[ch];
        }
        size_t off = r == 0 ? 0 : (size_t)n0 * f;
        a[r] = (rank_arg){.s = &s, .rank = r, .n = r == 0 ? n0 : n - n0, .t = &rk[r]};
        a[r].x = x + off;
        a[r].dy = dy + off;
        a[r].y = y + off;
        a[r].dx = dx + off;
    }
    for (int r = 0; r < 2; r++)
        pthread_create(&th[r], NULL, rank_main, &a[r]);
    for (int r = 0; r < 2; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&s.bar);

    CHECK(!s.mismatch);
    CHECK(a[0].calls == a[1].calls && a[0].calls >= 3);
    for (size_t i = 0; i < nx; i++) {
        CHECK_NEAR(y[i], y_ref[i], 2e-5);
        CHECK_NEAR(dx[i], dx_ref[i], 2e-5);
    }
    /* the all-reduced (summed) parameter gradients equal the single-process ones */
    for (size_t ch = 0; ch < C; ch++) {
        for (int k = 0; k < 2; k++) {
            const char *nm = k ? "bias" : "weight";
            double sum = (double)param(&rk[0].l, nm)->grad[ch] + param(&rk[1].l, nm)->grad[ch];
            CHECK_NEAR(sum, param(&ref.l, nm)->grad[ch], 1e-4);
        }
        /* every rank ends with the same running statistics as one process */
        for (int r = 0; r < 2; r++) {
            CHECK_NEAR(param(&rk[r].l, "running_mean")->data[ch],
                       param(&ref.l, "running_mean")->data[ch], 1e-6);
            CHECK_NEAR(param(&rk[r].l, "running_var")->data[ch],
                       param(&ref.l, "running_var")->data[ch], 1e-6);
        }
    }
    free_bn(&rk[0]);
    free_bn(&rk[1]);
    free_bn(&ref);
    free(x);
    free(dy);
    free(y_ref);
    free(dx_ref);
    free(y);
    free(dx);
}

static void test_sync(void)
{
    sync_case(ft_shape1(3), 5, 3);
    sync_case(ft_shape3(2, 3, 2), 5, 2);
    sync_case(ft_shape3(2, 3, 2), 4, 0); /* rank 0 has no rows */
    sync_case(ft_shape1(3), 4, 4);       /* rank 1 has no rows */
}

int main(void)
{
    alarm(120); /* a reduce-count mismatch would deadlock the two ranks */
    test_setup();
    test_train_1d();
    test_train_2d();
    test_eval_and_frozen();
    test_gradients();
    test_empty_batch();
    test_sync();
    return tu_done("test_batchnorm");
}
