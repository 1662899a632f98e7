/* Sequence layers (embedding, layernorm, transformer_block, seq_pool):
 * hand-checked values, central finite differences for the input and every
 * parameter, the causal and padding masks, dropout masks, n == 0, the chunked
 * forward without a saved buffer, and a small model with ctx->lengths through
 * a chunked frozen prefix. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/kv.h"
#include "ftune/layer.h"
#include "ftune/model.h"
#include "ftune/rng.h"

#include "testutil.h"

static ft_shape shape2(int a, int b)
{
    ft_shape s = {2, {a, b, 0, 0}};
    return s;
}

static float *floats(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void fill_uniform(float *p, size_t n, uint64_t seed, float lo, float hi)
{
    ft_rng r;
    ft_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * ft_rng_uniform(&r);
}

/* Creates and sets up a layer; parameters get their own buffers: random
 * values (ONE-initialised ones around 1), zeroed gradients. */
static int make_layer(ft_layer *l, const char *kind, const char *name, ft_shape in,
                      const ft_kvlist *kv, ft_err *err)
{
    static const ft_kvlist empty;
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->name_hash = ft_hash_str(name);
    l->lr_mult = 1.0f;
    l->need_dx = 1;
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
    rc = l->ops->setup(l, err);
    if (rc != FT_OK)
        return rc;
    for (int j = 0; j < l->nparams; j++) {
        ft_param *p = &l->params[j];
        p->data = floats(p->count);
        p->grad = floats(p->count);
        if (p->init == FT_INIT_ONE)
            fill_uniform(p->data, p->count, 100 + (uint64_t)j, 0.8f, 1.2f);
        else
            fill_uniform(p->data, p->count, 100 + (uint64_t)j, -0.4f, 0.4f);
    }
    return FT_OK;
}

static void free_layer(ft_layer *l)
{
    for (int j = 0; j < l->nparams; j++) {
        free(l->params[j].data);
        free(l->params[j].grad);
    }
    if (l->ops && l->ops->destroy)
        l->ops->destroy(l);
    else
        free(l->priv);
    l->priv = NULL;
}

static ft_ctx make_ctx(int n, int training, const int *lengths, const uint64_t *ids)
{
    ft_ctx c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.training = training;
    c.seed = 4321;
    c.epoch = 2;
    c.lengths = lengths;
    c.sample_ids = ids;
    return c;
}

static size_t saved_of(const ft_layer *l, int n)
{
    return l->ops->saved_floats ? l->ops->saved_floats(l, n) : 0;
}
static size_t ws_of(const ft_layer *l, int n)
{
    return l->ops->workspace_floats ? l->ops->workspace_floats(l, n) : 0;
}

/* Forward into y; with_saved: through a saved buffer (returned, caller
 * frees) as in training, else NULL. */
static float *run_fwd(ft_layer *l, const ft_ctx *c0, const float *x, float *y, int with_saved)
{
    ft_ctx c = *c0;
    float *ws = floats(ws_of(l, c.n));
    float *saved = with_saved ? floats(saved_of(l, c.n)) : NULL;
    c.ws = ws;
    l->ops->forward(l, &c, x, y, saved);
    free(ws);
    return saved;
}

static double loss_of(ft_layer *l, const ft_ctx *c, const float *x, const float *r, size_t ny)
{
    float *y = floats(ny);
    free(run_fwd(l, c, x, y, 0));
    double s = 0.0;
    for (size_t i = 0; i < ny; i++)
        s += (double)y[i] * r[i];
    free(y);
    return s;
}

static int close_enough(double num, double ana, double tol)
{
    return fabs(num - ana) <= tol * (1.0 + fabs(ana));
}

/* Backward against central differences of loss = sum(y * r), for the input
 * (check_dx) and every element of every parameter. */
static void fd_check(ft_layer *l, const ft_ctx *c0, float *x, int check_dx, double h, double tol,
                     const char *what)
{
    const size_t nx = (size_t)c0->n * ft_shape_count(&l->in);
    const size_t ny = (size_t)c0->n * ft_shape_count(&l->out);
    float *y = floats(ny), *r = floats(ny), *dx = floats(nx);
    fill_uniform(r, ny, 77, -1.0f, 1.0f);
    for (int j = 0; j < l->nparams; j++)
        memset(l->params[j].grad, 0, l->params[j].count * sizeof(float));
    ft_ctx c = *c0;
    float *ws = floats(ws_of(l, c.n));
    c.ws = ws;
    float *saved = run_fwd(l, &c, x, y, 1);
    for (size_t i = 0; i < nx; i++)
        dx[i] = NAN;
    l->ops->backward(l, &c, x, y, r, dx, saved);

    if (check_dx) {
        double worst = 0.0;
        for (size_t j = 0; j < nx; j++) {
            float x0 = x[j];
            x[j] = x0 + (float)h;
            double lp = loss_of(l, c0, x, r, ny);
            x[j] = x0 - (float)h;
            double lm = loss_of(l, c0, x, r, ny);
            x[j] = x0;
            double num = (lp - lm) / (2.0 * h);
            if (!close_enough(num, dx[j], tol)) {
                fprintf(stderr, "%s: dx[%zu] = %.7g, finite difference %.7g\n", what, j, dx[j],
                        num);
                CHECK(0);
            }
            worst = fmax(worst, fabs(num - dx[j]));
        }
        CHECK(worst < 1.0);
    }
    for (int p = 0; p < l->nparams; p++) {
        ft_param *pp = &l->params[p];
        int bad = 0;
        for (size_t k = 0; k < pp->count; k++) {
            float v0 = pp->data[k];
            pp->data[k] = v0 + (float)h;
            double lp = loss_of(l, c0, x, r, ny);
            pp->data[k] = v0 - (float)h;
            double lm = loss_of(l, c0, x, r, ny);
            pp->data[k] = v0;
            double num = (lp - lm) / (2.0 * h);
            if (!close_enough(num, pp->grad[k], tol) && bad++ < 3)
                fprintf(stderr, "%s: d%s[%zu] = %.7g, finite difference %.7g\n", what, pp->name, k,
                        pp->grad[k], num);
        }
        if (!CHECK(bad == 0))
            fprintf(stderr, "%s: %d elements of d%s differ\n", what, bad, pp->name);
    }
    free(saved);
    free(ws);
    free(y);
    free(r);
    free(dx);
}

/* ---- embedding -------------------------------------------------------------------------- */

static void test_embedding_values(void)
{
    ft_err err = {0};
    ft_kvlist kv = {0};
    ft_kv_set_int(&kv, "vocab", 5);
    ft_kv_set_int(&kv, "dim", 3);
    ft_kv_set_int(&kv, "max_len", 6);
    ft_layer l;
    CHECK(make_layer(&l, "embedding", "wte", ft_shape1(4), &kv, &err) == FT_OK);
    CHECK(l.out.rank == 2 && l.out.d[0] == 4 && l.out.d[1] == 3);
    CHECK(l.nparams == 2 && strcmp(l.params[0].name, "weight") == 0 &&
          strcmp(l.params[1].name, "position") == 0);
    CHECK(l.params[0].shape.d[0] == 5 && l.params[1].shape.d[0] == 6);
    CHECK(l.params[0].init == FT_INIT_NORMAL && fabsf(l.params[0].init_bound - 0.02f) < 1e-9f);
    for (int v = 0; v < 5; v++)
        for (int j = 0; j < 3; j++)
            l.params[0].data[v * 3 + j] = (float)(10 * v + j);
    for (int t = 0; t < 6; t++)
        for (int j = 0; j < 3; j++)
            l.params[1].data[t * 3 + j] = 0.5f * (float)t;
    /* ids 2, 7 (clamped to 4), -1 (clamped to 0), NaN (0) */
    float x[2 * 4] = {2, 7, -1, NAN, 4, 3, 1, 0};
    float y[2 * 4 * 3];
    ft_ctx c = make_ctx(2, 1, NULL, NULL);
    free(run_fwd(&l, &c, x, y, 1));
    const int ids[8] = {2, 4, 0, 0, 4, 3, 1, 0};
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 3; j++)
            CHECK_NEAR(y[i * 3 + j], 10 * ids[i] + j + 0.5f * (float)(i % 4), 0);
    /* backward: rows read get dy; dx zero-filled */
    float dy[24], dx[8];
    for (int k = 0; k < 24; k++)
        dy[k] = 1.0f;
    for (int k = 0; k < 8; k++)
        dx[k] = NAN;
    l.ops->backward(&l, &c, x, y, dy, dx, NULL);
    for (int k = 0; k < 8; k++)
        CHECK(dx[k] == 0.0f);
    CHECK_NEAR(l.params[0].grad[0 * 3], 3, 0); /* id 0 three times */
    CHECK_NEAR(l.params[0].grad[4 * 3 + 1], 2, 0);
    CHECK_NEAR(l.params[0].grad[2 * 3 + 2], 1, 0);
    CHECK_NEAR(l.params[1].grad[3 * 3], 2, 0); /* position 3 in both rows */
    CHECK_NEAR(l.params[1].grad[5 * 3], 0, 0); /* beyond T */
    free_layer(&l);

    /* no positions, two segments: row 0 of segment is added */
    ft_kvlist kv2 = {0};
    ft_kv_set_int(&kv2, "vocab", 4);
    ft_kv_set_int(&kv2, "dim", 2);
    ft_kv_set_bool(&kv2, "positions", 0);
    ft_kv_set_int(&kv2, "segments", 2);
    CHECK(make_layer(&l, "embedding", "bert_emb", ft_shape1(3), &kv2, &err) == FT_OK);
    CHECK(l.nparams == 2 && strcmp(l.params[1].name, "segment") == 0);
    float x2[3] = {1, 3, 1}, y2[6];
    ft_ctx c1 = make_ctx(1, 0, NULL, NULL);
    free(run_fwd(&l, &c1, x2, y2, 0));
    for (int t = 0; t < 3; t++)
        for (int j = 0; j < 2; j++)
            CHECK_NEAR(y2[t * 2 + j], l.params[0].data[(int)x2[t] * 2 + j] + l.params[1].data[j],
                       1e-7);
    free_layer(&l);

    /* errors */
    ft_kvlist kv3 = {0};
    ft_kv_set_int(&kv3, "vocab", 4);
    ft_kv_set_int(&kv3, "dim", 2);
    ft_kv_set_int(&kv3, "max_len", 3);
    CHECK(make_layer(&l, "embedding", "e", ft_shape1(8), &kv3, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "max_len is 3");
    free_layer(&l);
    CHECK(make_layer(&l, "embedding", "e", shape2(8, 2), &kv3, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "must be [T]");
    free_layer(&l);
}

static void test_embedding_fd(void)
{
    ft_err err = {0};
    ft_kvlist kv = {0};
    ft_kv_set_int(&kv, "vocab", 7);
    ft_kv_set_int(&kv, "dim", 3);
    ft_kv_set_int(&kv, "max_len", 5);
    ft_kv_set_int(&kv, "segments", 2);
    ft_layer l;
    CHECK(make_layer(&l, "embedding", "emb", ft_shape1(4), &kv, &err) == FT_OK);
    float x[8] = {1, 6, 6, 0, 3, 2, 1, 5};
    ft_ctx c = make_ctx(2, 1, NULL, NULL);
    fd_check(&l, &c, x, 0, 1e-2, 1e-3, "embedding");
    free_layer(&l);
}

/* ---- layernorm -------------------------------------------------------------------------- */

static void test_layernorm(void)
{
    ft_err err = {0};
    ft_layer l;
    CHECK(make_layer(&l, "layernorm", "ln", shape2(2, 4), NULL, &err) == FT_OK);
    CHECK(l.nparams == 2 && l.params[0].init == FT_INIT_ONE && l.params[1].init == FT_INIT_ZERO);
    CHECK(l.params[0].count == 4 && ft_shape_equal(&l.out, &l.in));
    for (int j = 0; j < 4; j++) {
        l.params[0].data[j] = 2.0f;
        l.params[1].data[j] = 1.0f;
    }
    /* row [1, 2, 3, 4]: mean 2.5, biased variance 1.25; row [5, 5, 5, 5]: all bias */
    float x[8] = {1, 2, 3, 4, 5, 5, 5, 5}, y[8];
    ft_ctx c = make_ctx(1, 1, NULL, NULL);
    free(run_fwd(&l, &c, x, y, 1));
    const double rs = 1.0 / sqrt(1.25 + 1e-5);
    for (int j = 0; j < 4; j++) {
        CHECK_NEAR(y[j], 2.0 * (j + 1 - 2.5) * rs + 1.0, 1e-5);
        CHECK_NEAR(y[4 + j], 1.0, 1e-6);
    }
    free_layer(&l);

    /* eps key, errors, finite differences */
    ft_kvlist kv = {0};
    ft_kv_set_float(&kv, "eps", 1e-12);
    CHECK(make_layer(&l, "layernorm", "ln", shape2(3, 5), &kv, &err) == FT_OK);
    float xs[2 * 15];
    fill_uniform(xs, 30, 5, -2.0f, 2.0f);
    ft_ctx c2 = make_ctx(2, 1, NULL, NULL);
    fd_check(&l, &c2, xs, 1, 1e-2, 2e-3, "layernorm");
    free_layer(&l);
    ft_kvlist bad = {0};
    ft_kv_set_float(&bad, "eps", 0.0);
    CHECK(make_layer(&l, "layernorm", "ln", shape2(3, 5), &bad, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "eps must be in (0, 1)");
    free_layer(&l);
}

/* ---- transformer_block ------------------------------------------------------------------ */

static int make_block(ft_layer *l, int T, int D, int heads, const char *style, int causal,
                      double dropout, const char *act)
{
    ft_err err = {0};
    ft_kvlist kv = {0};
    ft_kv_set_int(&kv, "heads", heads);
    ft_kv_set_int(&kv, "mlp_ratio", 2);
    ft_kv_set_string(&kv, "style", style);
    ft_kv_set_bool(&kv, "causal", causal);
    ft_kv_set_float(&kv, "dropout", dropout);
    if (act)
        ft_kv_set_string(&kv, "activation", act);
    int rc = make_layer(l, "transformer_block", "h.0", shape2(T, D), &kv, &err);
    if (rc)
        fprintf(stderr, "make_block: %s\n", err.msg);
    return rc;
}

static void test_block_params(void)
{
    ft_layer l;
    CHECK(make_block(&l, 5, 8, 2, "pre_ln", 1, 0.0, NULL) == FT_OK);
    static const char *names[] = {"ln1_weight",    "ln1_bias",        "attn_qkv_weight",
                                  "attn_qkv_bias", "attn_out_weight", "attn_out_bias",
                                  "ln2_weight",    "ln2_bias",        "mlp_fc_weight",
                                  "mlp_fc_bias",   "mlp_proj_weight", "mlp_proj_bias"};
    static const size_t counts[] = {8, 8, 24 * 8, 24, 64, 8, 8, 8, 16 * 8, 16, 8 * 16, 8};
    CHECK(l.nparams == 12);
    for (int j = 0; j < 12 && j < l.nparams; j++) {
        CHECK(strcmp(l.params[j].name, names[j]) == 0);
        CHECK(l.params[j].count == counts[j]);
    }
    CHECK(l.params[2].shape.rank == 2 && l.params[2].shape.d[0] == 24 &&
          l.params[2].shape.d[1] == 8);
    CHECK(l.params[2].init == FT_INIT_NORMAL && l.params[3].init == FT_INIT_ZERO);
    CHECK(ft_shape_equal(&l.out, &l.in));
    free_layer(&l);

    ft_err err = {0};
    ft_kvlist kv = {0};
    ft_kv_set_int(&kv, "heads", 3);
    CHECK(make_layer(&l, "transformer_block", "b", shape2(4, 8), &kv, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "heads = 3 does not divide");
    free_layer(&l);
    ft_kv_set_string(&kv, "style", "sandwich");
    CHECK(make_layer(&l, "transformer_block", "b", shape2(4, 9), &kv, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "style must be");
    free_layer(&l);
    ft_kvlist kv2 = {0};
    ft_kv_set_int(&kv2, "heads", 2);
    CHECK(make_layer(&l, "transformer_block", "b", ft_shape1(8), &kv2, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "must be [T, D]");
    free_layer(&l);
}

static void test_block_fd(const char *style, int causal, double dropout, const char *act)
{
    char what[96];
    snprintf(what, sizeof what, "transformer_block %s causal=%d dropout=%g %s", style, causal,
             dropout, act ? act : "");
    ft_layer l;
    const int T = 4, D = 8, n = 3;
    if (!CHECK(make_block(&l, T, D, 2, style, causal, dropout, act) == FT_OK))
        return;
    float x[3 * 4 * 8];
    fill_uniform(x, sizeof x / sizeof x[0], 11, -1.5f, 1.5f);
    const int lengths[3] = {4, 2, 1};
    const uint64_t ids[3] = {17, 4, 99};
    ft_ctx c = make_ctx(n, 1, lengths, ids);
    fd_check(&l, &c, x, 1, 3e-3, 5e-3, what);
    /* all positions real */
    ft_ctx c2 = make_ctx(n, 1, NULL, ids);
    fd_check(&l, &c2, x, 1, 3e-3, 5e-3, what);
    free_layer(&l);
}

static int rows_equal(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static void test_block_masks(void)
{
    const int T = 6, D = 8, n = 2;
    const size_t TD = (size_t)T * D, N = n * TD;
    float x[2 * 6 * 8], x2[2 * 6 * 8], y[2 * 6 * 8], y2[2 * 6 * 8];
    fill_uniform(x, N, 21, -1.0f, 1.0f);
    for (int s = 0; s < 2; s++) {
        const char *style = s ? "post_ln" : "pre_ln";
        /* causal: changing position 4 of sample 0 leaves positions 0..3 and sample 1 alone */
        ft_layer l;
        CHECK(make_block(&l, T, D, 2, style, 1, 0.0, NULL) == FT_OK);
        ft_ctx c = make_ctx(n, 0, NULL, NULL);
        free(run_fwd(&l, &c, x, y, 0));
        memcpy(x2, x, sizeof x);
        for (int j = 0; j < D; j++)
            x2[4 * D + j] += 0.3f * (float)(j + 1); /* not constant: ln would remove it */
        free(run_fwd(&l, &c, x2, y2, 1));
        CHECK(rows_equal(y, y2, 4 * D));
        CHECK(!rows_equal(y + 4 * D, y2 + 4 * D, D));
        CHECK(rows_equal(y + TD, y2 + TD, TD));
        free_layer(&l);

        /* bidirectional: position 0 does see position 4 */
        CHECK(make_block(&l, T, D, 2, style, 0, 0.0, NULL) == FT_OK);
        free(run_fwd(&l, &c, x, y, 0));
        free(run_fwd(&l, &c, x2, y2, 0));
        CHECK(!rows_equal(y, y2, D));
        /* padding: sample 0 has 3 real tokens; its padded positions' content does not reach
         * positions 0..2 */
        const int lengths[2] = {3, 6};
        ft_ctx cp = make_ctx(n, 0, lengths, NULL);
        free(run_fwd(&l, &cp, x, y, 1));
        memcpy(x2, x, sizeof x);
        for (size_t j = 3 * D; j < TD; j++)
            x2[j] = 5.0f * x2[j] + 1.0f;
        free(run_fwd(&l, &cp, x2, y2, 0));
        CHECK(rows_equal(y, y2, 3 * D));
        CHECK(rows_equal(y + TD, y2 + TD, TD));

        /* length 0: no visible key anywhere, finite output and gradients */
        const int zero[2] = {0, 6};
        ft_ctx cz = make_ctx(n, 1, zero, NULL);
        float *sv = run_fwd(&l, &cz, x, y, 1);
        int finite = 1;
        for (size_t j = 0; j < N; j++)
            finite &= isfinite(y[j]) != 0;
        float dx[2 * 6 * 8], *ws = floats(ws_of(&l, n));
        cz.ws = ws;
        l.ops->backward(&l, &cz, x, y, x2, dx, sv);
        for (size_t j = 0; j < N; j++)
            finite &= isfinite(dx[j]) != 0;
        for (int p = 0; p < l.nparams; p++)
            for (size_t k = 0; k < l.params[p].count; k++)
                finite &= isfinite(l.params[p].grad[k]) != 0;
        CHECK(finite);
        free(ws);
        free(sv);
        free_layer(&l);
    }
}

static void test_block_dropout(void)
{
    const int T = 5, D = 8, n = 2;
    const size_t N = (size_t)n * T * D;
    float x[2 * 5 * 8], y0[2 * 5 * 8], y1[2 * 5 * 8], y2[2 * 5 * 8], y3[2 * 5 * 8];
    fill_uniform(x, N, 31, -1.0f, 1.0f);
    ft_layer l;
    CHECK(make_block(&l, T, D, 2, "pre_ln", 1, 0.3, NULL) == FT_OK);
    const uint64_t ids[2] = {5, 6}, ids_swapped[2] = {6, 5};
    ft_ctx ce = make_ctx(n, 0, NULL, ids), ct = make_ctx(n, 1, NULL, ids);
    free(run_fwd(&l, &ce, x, y0, 0));
    free(run_fwd(&l, &ct, x, y1, 1));
    free(run_fwd(&l, &ct, x, y2, 0));
    CHECK(!rows_equal(y0, y1, N)); /* dropout active in training */
    CHECK(rows_equal(y1, y2, N));  /* a function of the ids, saved or not */
    /* a sample's mask follows its id, not its row: swap rows and ids */
    float xs[2 * 5 * 8];
    memcpy(xs, x + T * D, sizeof(float) * T * D);
    memcpy(xs + T * D, x, sizeof(float) * T * D);
    ft_ctx cs = make_ctx(n, 1, NULL, ids_swapped);
    free(run_fwd(&l, &cs, xs, y3, 0));
    CHECK(rows_equal(y3, y1 + T * D, (size_t)T * D));
    CHECK(rows_equal(y3 + T * D, y1, (size_t)T * D));
    free_layer(&l);
}

/* n == 0: nothing is read or written, no gradient changes. */
static void test_empty_batch(void)
{
    const char *kinds[] = {"embedding", "layernorm", "transformer_block", "seq_pool"};
    for (int k = 0; k < 4; k++) {
        ft_err err = {0};
        ft_kvlist kv = {0};
        ft_shape in = shape2(4, 8);
        if (k == 0) {
            ft_kv_set_int(&kv, "vocab", 10);
            ft_kv_set_int(&kv, "dim", 8);
            in = ft_shape1(4);
        } else if (k == 2) {
            ft_kv_set_int(&kv, "heads", 2);
        } else if (k == 3) {
            ft_kv_set_string(&kv, "mode", "mean");
        }
        ft_layer l;
        if (!CHECK(make_layer(&l, kinds[k], "e0", in, &kv, &err) == FT_OK))
            continue;
        for (int j = 0; j < l.nparams; j++)
            memset(l.params[j].grad, 0, l.params[j].count * sizeof(float));
        float x[4] = {7, 7, 7, 7}, y[4] = {7, 7, 7, 7}, dy[4] = {1, 1, 1, 1}, dx[4] = {7, 7, 7, 7};
        float sv[4] = {7, 7, 7, 7}, ws[4] = {7, 7, 7, 7};
        ft_ctx c = make_ctx(0, 1, NULL, NULL);
        c.ws = ws;
        CHECK(saved_of(&l, 0) == 0);
        l.ops->forward(&l, &c, x, y, sv);
        l.ops->backward(&l, &c, x, y, dy, dx, sv);
        int same = 1;
        for (int j = 0; j < 4; j++)
            same &= y[j] == 7 && dx[j] == 7 && sv[j] == 7;
        for (int j = 0; j < l.nparams; j++)
            for (size_t q = 0; q < l.params[j].count; q++)
                same &= l.params[j].grad[q] == 0.0f;
        if (!CHECK(same))
            fprintf(stderr, "%s touched memory with n == 0\n", kinds[k]);
        free_layer(&l);
    }
}

/* Forward without a saved buffer runs in chunks of samples: same output. */
static void test_block_chunks(void)
{
    const int T = 4, D = 8, n = 600; /* 2400 rows: two chunks */
    const size_t N = (size_t)n * T * D;
    float *x = floats(N), *y0 = floats(N), *y1 = floats(N);
    fill_uniform(x, N, 41, -1.0f, 1.0f);
    int *lengths = calloc((size_t)n, sizeof *lengths);
    for (int i = 0; i < n; i++)
        lengths[i] = 1 + i % T;
    for (int s = 0; s < 2; s++) {
        ft_layer l;
        CHECK(make_block(&l, T, D, 4, s ? "post_ln" : "pre_ln", s, 0.0, NULL) == FT_OK);
        ft_ctx c = make_ctx(n, 0, lengths, NULL);
        free(run_fwd(&l, &c, x, y0, 1));
        free(run_fwd(&l, &c, x, y1, 0));
        double worst = 0.0;
        for (size_t j = 0; j < N; j++)
            worst = fmax(worst, fabs((double)y0[j] - y1[j]));
        CHECK_NEAR(worst, 0.0, 1e-5);
        free_layer(&l);
    }
    free(lengths);
    free(x);
    free(y0);
    free(y1);
}

/* ---- seq_pool --------------------------------------------------------------------------- */

static void test_seq_pool(void)
{
    const int T = 4, D = 2, n = 3;
    float x[3 * 4 * 2];
    for (int k = 0; k < 24; k++)
        x[k] = (float)k;
    const int lengths[3] = {4, 2, 0};
    const char *modes[] = {"first", "mean", "last"};
    /* expected y[i][0] (y[i][1] = that + 1) */
    const float want[3][3] = {{0, 8, 16}, {3, 9, 0}, {6, 10, 0}};
    for (int m = 0; m < 3; m++) {
        ft_err err = {0};
        ft_kvlist kv = {0};
        ft_kv_set_string(&kv, "mode", modes[m]);
        ft_layer l;
        CHECK(make_layer(&l, "seq_pool", "pool", shape2(T, D), &kv, &err) == FT_OK);
        CHECK(l.out.rank == 1 && l.out.d[0] == D);
        float y[6];
        ft_ctx c = make_ctx(n, 1, lengths, NULL);
        free(run_fwd(&l, &c, x, y, 1));
        for (int i = 0; i < n; i++) {
            float w = want[m][i];
            CHECK_NEAR(y[i * 2], w, 1e-6);
            CHECK_NEAR(y[i * 2 + 1], (m > 0 && lengths[i] == 0) ? 0.0f : w + 1, 1e-6);
        }
        float xf[24];
        fill_uniform(xf, 24, 3, -1.0f, 1.0f);
        fd_check(&l, &c, xf, 1, 1e-2, 1e-3, modes[m]);
        ft_ctx c2 = make_ctx(n, 1, NULL, NULL);
        fd_check(&l, &c2, xf, 1, 1e-2, 1e-3, modes[m]);
        free_layer(&l);
    }
    ft_err err = {0};
    ft_kvlist kv = {0};
    ft_kv_set_string(&kv, "mode", "max");
    ft_layer l;
    CHECK(make_layer(&l, "seq_pool", "pool", shape2(T, D), &kv, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "mode must be");
    free_layer(&l);
}

/* ---- a small model ---------------------------------------------------------------------- */

static void spec(ft_layer_spec *s, const char *name, const char *kind, int frozen)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    s->frozen = frozen;
}

static int build_gpt(ft_model *m, int T, int D, int freeze_upto, int max_batch)
{
    ft_layer_spec sp[6];
    spec(&sp[0], "wte", "embedding", freeze_upto >= 0);
    ft_kv_set_int(&sp[0].kv, "vocab", 50);
    ft_kv_set_int(&sp[0].kv, "dim", D);
    ft_kv_set_int(&sp[0].kv, "max_len", 2 * T);
    for (int b = 0; b < 2; b++) {
        spec(&sp[1 + b], b ? "h.1" : "h.0", "transformer_block", freeze_upto >= 1 + b);
        ft_kv_set_int(&sp[1 + b].kv, "heads", 4);
        ft_kv_set_bool(&sp[1 + b].kv, "causal", 1);
    }
    spec(&sp[3], "ln_f", "layernorm", 0);
    spec(&sp[4], "pool", "seq_pool", 0);
    ft_kv_set_string(&sp[4].kv, "mode", "last");
    spec(&sp[5], "head", "dense", 0);
    ft_kv_set_int(&sp[5].kv, "units", 3);
    ft_err err = {0};
    ft_shape in = ft_shape1(T);
    int rc = ft_model_build(m, &in, sp, 6, &err);
    if (rc == FT_OK)
        rc = ft_model_alloc(m, max_batch, &err);
    if (rc)
        fprintf(stderr, "build_gpt: %s\n", err.msg);
    return rc;
}

static void test_model(void)
{
    /* T * D = 4096 floats per row, so a frozen prefix of two layers runs in chunks of 32 rows
     * (model.c, PREFIX_CHUNK_FLOATS): the lengths must follow the chunks */
    const int T = 64, D = 64, n = 40;
    ft_model a, b;
    if (!CHECK(build_gpt(&a, T, D, -1, n) == FT_OK) || !CHECK(build_gpt(&b, T, D, 1, n) == FT_OK))
        return;
    CHECK(b.first_trainable == 2);
    ft_model_init_params(&a, 7);
    ft_model_init_params(&b, 7);
    /* N(0, 0.02^2) embedding init */
    const ft_param *w = &a.layers[0].params[0];
    double s = 0.0, s2 = 0.0;
    for (size_t k = 0; k < w->count; k++) {
        s += w->data[k];
        s2 += (double)w->data[k] * w->data[k];
    }
    double mean = s / (double)w->count, sd = sqrt(s2 / (double)w->count - mean * mean);
    CHECK_NEAR(mean, 0.0, 0.002);
    CHECK_NEAR(sd, 0.02, 0.002);

    float *x = floats((size_t)n * T);
    int *lengths = calloc((size_t)n, sizeof *lengths);
    uint64_t *ids = calloc((size_t)n, sizeof *ids);
    ft_rng r;
    ft_rng_seed(&r, 5);
    for (int i = 0; i < n; i++) {
        lengths[i] = 1 + (int)ft_rng_below(&r, (uint64_t)T);
        ids[i] = (uint64_t)i;
        for (int t = 0; t < T; t++)
            x[(size_t)i * T + t] = t < lengths[i] ? (float)ft_rng_below(&r, 50) : 0.0f;
    }
    ft_ctx c = make_ctx(n, 1, lengths, ids);
    const float *ya = ft_model_forward(&a, &c, x);
    float *ya_copy = floats((size_t)n * 3);
    memcpy(ya_copy, ya, sizeof(float) * (size_t)n * 3);
    const float *yb = ft_model_forward_range(&b, &c, 0, b.nlayers, x); /* chunked prefix */
    double worst = 0.0;
    for (int k = 0; k < n * 3; k++)
        worst = fmax(worst, fabs((double)ya_copy[k] - yb[k]));
    CHECK_NEAR(worst, 0.0, 1e-5);

    /* backward through everything: finite, non-zero gradients in every layer */
    ft_model_zero_grads(&a);
    float *dl = floats((size_t)n * 3);
    fill_uniform(dl, (size_t)n * 3, 9, -1.0f, 1.0f);
    ft_model_forward(&a, &c, x);
    ft_model_backward(&a, &c, dl);
    for (int i = 0; i < a.nlayers; i++) {
        const ft_layer *l = &a.layers[i];
        for (int j = 0; j < l->nparams; j++) {
            double g = 0.0;
            int finite = 1;
            for (size_t k = 0; k < l->params[j].count; k++) {
                g += fabs(l->params[j].grad[k]);
                finite &= isfinite(l->params[j].grad[k]) != 0;
            }
            if (!CHECK(finite && g > 0.0))
                fprintf(stderr, "model: %s.%s gradient sum %g\n", l->name, l->params[j].name, g);
        }
    }
    free(dl);
    free(ya_copy);
    free(x);
    free(lengths);
    free(ids);
    ft_model_free(&a);
    ft_model_free(&b);
}

/* ---- LoRA adapters (src/layers/lora.c) --------------------------------------------------- */

static void lora_kv(ft_kvlist *kv, double dropout, const char *targets)
{
    ft_kv_set_int(kv, "lora_rank", 2);
    ft_kv_set_float(kv, "lora_alpha", 3.0);
    ft_kv_set_float(kv, "lora_dropout", dropout);
    if (targets)
        ft_kv_set_string(kv, "lora_targets", targets);
}

static void test_lora_block(const char *style, double dropout, const char *targets, int nadapt)
{
    char what[128];
    snprintf(what, sizeof what, "lora transformer_block %s dropout=%g targets=%s", style, dropout,
             targets ? targets : "all");
    ft_layer l;
    ft_err err = {0};
    ft_kvlist kv = {0};
    ft_kv_set_int(&kv, "heads", 2);
    ft_kv_set_int(&kv, "mlp_ratio", 2);
    ft_kv_set_string(&kv, "style", style);
    ft_kv_set_bool(&kv, "causal", 1);
    lora_kv(&kv, dropout, targets);
    const int T = 4, D = 8, n = 3;
    if (!CHECK(make_layer(&l, "transformer_block", "h.0", shape2(T, D), &kv, &err) == FT_OK)) {
        fprintf(stderr, "%s: %s\n", what, err.msg);
        return;
    }
    CHECK(l.nparams == 12 + 2 * nadapt);
    if (nadapt == 4) { /* A [r, in], B [out, r] after the block's own 12 */
        CHECK(strcmp(l.params[12].name, "attn_qkv_lora_A") == 0 && l.params[12].count == 2 * 8);
        CHECK(strcmp(l.params[13].name, "attn_qkv_lora_B") == 0 && l.params[13].count == 24 * 2);
        CHECK(strcmp(l.params[19].name, "mlp_proj_lora_B") == 0 && l.params[19].count == 8 * 2);
        CHECK(l.params[18].count == 2 * 16 && l.params[13].init == FT_INIT_ZERO);
    }
    float x[3 * 4 * 8];
    fill_uniform(x, sizeof x / sizeof x[0], 11, -1.5f, 1.5f);
    const int lengths[3] = {4, 3, 2};
    const uint64_t ids[3] = {17, 4, 99};
    ft_ctx c = make_ctx(n, 1, lengths, ids);
    fd_check(&l, &c, x, 1, 3e-3, 5e-3, what);
    /* evaluation's chunked forward (no saved) gives the same output */
    float y1[3 * 4 * 8], y2[3 * 4 * 8];
    free(run_fwd(&l, &c, x, y1, 1));
    free(run_fwd(&l, &c, x, y2, 0));
    CHECK(rows_equal(y1, y2, sizeof y1 / sizeof y1[0]));
    /* B = 0 (its init): the adapters change nothing */
    ft_kvlist kv0 = kv;
    ft_kv_set_int(&kv0, "lora_rank", 0);
    ft_layer base;
    CHECK(make_layer(&base, "transformer_block", "h.0", shape2(T, D), &kv0, &err) == FT_OK);
    for (int j = 12; j < l.nparams; j += 2)
        memset(l.params[j + 1].data, 0, l.params[j + 1].count * sizeof(float));
    ft_ctx ce = make_ctx(n, 0, lengths, ids);
    free(run_fwd(&l, &ce, x, y1, 0));
    free(run_fwd(&base, &ce, x, y2, 0));
    CHECK(rows_equal(y1, y2, sizeof y1 / sizeof y1[0]));
    free_layer(&base);
    free_layer(&l);
}

static void test_lora_dense(double dropout)
{
    ft_layer l;
    ft_err err = {0};
    ft_kvlist kv = {0};
    ft_kv_set_int(&kv, "units", 5);
    lora_kv(&kv, dropout, "weight");
    if (!CHECK(make_layer(&l, "dense", "fc", ft_shape1(7), &kv, &err) == FT_OK))
        return;
    CHECK(l.nparams == 4 && strcmp(l.params[2].name, "weight_lora_A") == 0);
    CHECK(l.params[2].shape.d[0] == 2 && l.params[2].shape.d[1] == 7);
    CHECK(l.params[3].shape.d[0] == 5 && l.params[3].shape.d[1] == 2);
    float x[4 * 7];
    fill_uniform(x, sizeof x / sizeof x[0], 5, -1.0f, 1.0f);
    const uint64_t ids[4] = {3, 8, 1, 40};
    ft_ctx c = make_ctx(4, 1, NULL, ids);
    fd_check(&l, &c, x, 1, 3e-3, 5e-3, dropout > 0 ? "lora dense dropout" : "lora dense");
    free_layer(&l);
    /* a target the layer does not have: no adapters */
    ft_kvlist kv2 = {0};
    ft_kv_set_int(&kv2, "units", 5);
    lora_kv(&kv2, 0.0, "attn_qkv");
    CHECK(make_layer(&l, "dense", "fc", ft_shape1(7), &kv2, &err) == FT_OK);
    CHECK(l.nparams == 2);
    free_layer(&l);
    ft_kv_set_float(&kv2, "lora_dropout", 1.0);
    CHECK(make_layer(&l, "dense", "fc", ft_shape1(7), &kv2, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "lora_dropout must be in [0, 1)");
    free_layer(&l);
}

int main(void)
{
    test_embedding_values();
    test_embedding_fd();
    test_layernorm();
    test_block_params();
    test_block_fd("pre_ln", 1, 0.0, NULL);
    test_block_fd("pre_ln", 0, 0.0, "gelu");
    test_block_fd("post_ln", 0, 0.0, NULL);
    test_block_fd("post_ln", 1, 0.0, "gelu_tanh");
    test_block_fd("pre_ln", 1, 0.25, NULL);
    test_block_fd("post_ln", 0, 0.25, NULL);
    test_block_masks();
    test_block_dropout();
    test_empty_batch();
    test_block_chunks();
    test_seq_pool();
    test_model();
    test_lora_block("pre_ln", 0.0, NULL, 4);
    test_lora_block("post_ln", 0.0, NULL, 4);
    test_lora_block("pre_ln", 0.25, NULL, 4);
    test_lora_block("post_ln", 0.25, "attn_qkv,mlp_fc", 2);
    test_lora_dense(0.0);
    test_lora_dense(0.3);
    return tu_done("test_transformer");
}
