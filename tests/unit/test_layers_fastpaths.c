/* The performance paths give the same numbers as the plain ones, bit for bit:
 *  - maxpool2d 2x2 stride 2 (vector code) against the general window rule,
 *    with ties, NaNs, odd sizes and widths that are not a multiple of 4, for
 *    the values and the saved argmax;
 *  - the model's cache-blocked frozen prefix (ft_model_forward_range) and
 *    ft_model_forward_from (the feature cache's entry point) against
 *    ft_model_forward, forward and backward. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/kv.h"
#include "ftune/layer.h"
#include "ftune/model.h"
#include "ftune/rng.h"

#include "testutil.h"

static int same_bits(const float *a, const float *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            fprintf(stderr, "  %s: element %zu differs: %.9g vs %.9g\n", what, i, (double)a[i],
                    (double)b[i]);
            return 0;
        }
    return 1;
}

/* The general rule of maxpool2d, written out: scan the window row by row;
 * a value wins if it is larger, or NaN while the best is not. */
static void maxpool_ref(int planes, int h, int w, const float *x, float *y, int32_t *arg)
{
    int oh = h / 2, ow = w / 2;
    for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int32_t best = -1;
                float m = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int32_t i = (2 * oy + dy) * w + 2 * ox + dx;
                        float v = x[(size_t)p * h * w + i];
                        if (best < 0 || v > m || (v != v && m == m)) {
                            m = v;
                            best = i;
                        }
                    }
                y[((size_t)p * oh + oy) * ow + ox] = m;
                arg[((size_t)p * oh + oy) * ow + ox] = best;
            }
}

static void test_maxpool_2x2(int n, int c, int h, int w, int nan_every, uint64_t seed)
{
    char what[96];
    snprintf(what, sizeof what, "maxpool 2x2 n=%d [%d,%d,%d] nan/%d", n, c, h, w, nan_every);
    ft_layer l;
    memset(&l, 0, sizeof l);
    snprintf(l.name, sizeof l.name, "pool");
    l.ops = ft_layer_kind("maxpool2d");
    ft_kvlist kv = {0};
    ft_err err = {0};
    ft_kv_set_int(&kv, "size", 2);
    CHECK(l.ops->create(&l, &kv, &err) == FT_OK);
    l.in = ft_shape3(c, h, w);
    CHECK(l.ops->setup(&l, &err) == FT_OK);
    size_t nin = (size_t)n * c * h * w, nout = (size_t)n * c * (h / 2) * (w / 2);
    float *x = malloc(nin * sizeof *x), *y = malloc(nout * sizeof *y);
    float *ry = malloc(nout * sizeof *ry), *saved = malloc(nout * sizeof *saved);
    int32_t *rarg = malloc(nout * sizeof *rarg);
    ft_rng r;
    ft_rng_seed(&r, seed);
    for (size_t i = 0; i < nin; i++) {
        /* few distinct values: many ties; some NaNs and -0.0 */
        x[i] = (float)(int)(ft_rng_uniform(&r) * 5.0f) - 2.0f;
        if (x[i] == 0.0f && ft_rng_uniform(&r) < 0.5f)
            x[i] = -0.0f;
        if (nan_every && ft_rng_below(&r, (uint64_t)nan_every) == 0)
            x[i] = NAN;
    }
    maxpool_ref(n * c, h, w, x, ry, rarg);
    ft_ctx ctx = {0};
    ctx.n = n;
    l.ops->forward(&l, &ctx, x, y, NULL);
    CHECK(same_bits(y, ry, nout, what));
    memset(y, 0, nout * sizeof *y);
    l.ops->forward(&l, &ctx, x, y, saved);
    CHECK(same_bits(y, ry, nout, what));
    int ok = 1;
    for (size_t i = 0; i < nout && ok; i++) {
        int32_t a;
        memcpy(&a, &saved[i], sizeof a);
        if (a != rarg[i]) {
            fprintf(stderr, "  %s: argmax %zu is %d, expected %d\n", what, i, a, rarg[i]);
            ok = 0;
        }
    }
    CHECK(ok);
    free(x);
    free(y);
    free(ry);
    free(saved);
    free(rarg);
    free(l.priv);
}

/* A CNN with a frozen prefix (conv, relu, pool, conv, relu, pool, flatten)
 * and a trainable head. */
static int build_cnn(ft_model *m, int batch, int freeze_upto, ft_err *err)
{
    static ft_layer_spec specs[9];
    const char *names[] = {"conv1", "relu1", "pool1", "conv2", "relu2",
                           "pool2", "flat",  "fc1",   "fc2"};
    const char *kinds[] = {"conv2d",    "relu",    "maxpool2d", "conv2d", "relu",
                           "maxpool2d", "flatten", "dense",     "dense"};
    memset(specs, 0, sizeof specs);
    for (int i = 0; i < 9; i++) {
        snprintf(specs[i].name, sizeof specs[i].name, "%s", names[i]);
        snprintf(specs[i].kind, sizeof specs[i].kind, "%s", kinds[i]);
        specs[i].frozen = i <= freeze_upto;
    }
    ft_kv_set_int(&specs[0].kv, "filters", 8);
    ft_kv_set_int(&specs[0].kv, "kernel", 3);
    ft_kv_set_int(&specs[0].kv, "padding", 1);
    ft_kv_set_int(&specs[2].kv, "size", 2);
    ft_kv_set_int(&specs[3].kv, "filters", 16);
    ft_kv_set_int(&specs[3].kv, "kernel", 3);
    ft_kv_set_int(&specs[3].kv, "padding", 1);
    ft_kv_set_int(&specs[5].kv, "size", 2);
    ft_kv_set_int(&specs[7].kv, "units", 32);
    ft_kv_set_int(&specs[8].kv, "units", 5);
    ft_shape in = ft_shape3(1, 28, 28);
    if (ft_model_build(m, &in, specs, 9, err) || ft_model_alloc(m, batch, err))
        return err->code;
    ft_model_init_params(m, 11);
    return FT_OK;
}

static void test_prefix_paths(int n)
{
    ft_err err = {0};
    ft_model a, b;
    if (!CHECK(build_cnn(&a, n, 6, &err) == FT_OK) || !CHECK(build_cnn(&b, n, 6, &err) == FT_OK)) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK(a.first_trainable == 7);
    size_t nin = (size_t)n * 784;
    float *x = malloc(nin * sizeof *x), *dl = malloc((size_t)n * 5 * sizeof *dl);
    uint64_t *ids = malloc((size_t)n * sizeof *ids);
    ft_rng r;
    ft_rng_seed(&r, 5);
    for (size_t i = 0; i < nin; i++)
        x[i] = ft_rng_uniform(&r);
    for (int i = 0; i < n * 5; i++)
        dl[i] = ft_rng_uniform(&r) - 0.5f;
    for (int i = 0; i < n; i++)
        ids[i] = (uint64_t)i;
    ft_ctx c = {0};
    c.n = n;
    c.training = 1;
    c.sample_ids = ids;

    /* plain path */
    const float *ya = ft_model_forward(&a, &c, x);
    float *logits = malloc((size_t)n * 5 * sizeof *logits);
    memcpy(logits, ya, (size_t)n * 5 * sizeof *logits);
    size_t nf = (size_t)n * 3136 / 4; /* pool2 output: 16 x 7 x 7 per row */
    float *feat = malloc(nf * sizeof *feat);
    memcpy(feat, a.act[6], nf * sizeof *feat);
    ft_model_zero_grads(&a);
    ft_model_backward(&a, &c, dl);

    /* chunked prefix */
    const float *yb = ft_model_forward_range(&b, &c, 0, b.nlayers, x);
    CHECK(same_bits(yb, logits, (size_t)n * 5, "forward_range logits"));
    CHECK(same_bits(b.act[6], feat, nf, "forward_range prefix output"));
    ft_model_zero_grads(&b);
    ft_model_backward(&b, &c, dl);
    CHECK(same_bits(b.grads, a.grads, a.ngrads, "forward_range gradients"));

    /* prefix only, then from cached features */
    const float *f = ft_model_forward_range(&b, &c, 0, b.first_trainable, x);
    CHECK(same_bits(f, feat, nf, "forward_range(0, first_trainable)"));
    memset(b.act[6], 0, nf * sizeof(float));
    yb = ft_model_forward_from(&b, &c, b.first_trainable, feat);
    CHECK(same_bits(yb, logits, (size_t)n * 5, "forward_from logits"));
    ft_model_zero_grads(&b);
    ft_model_backward(&b, &c, dl);
    CHECK(same_bits(b.grads, a.grads, a.ngrads, "forward_from gradients"));

    free(x);
    free(dl);
    free(ids);
    free(logits);
    free(feat);
    ft_model_free(&a);
    ft_model_free(&b);
}

int main(void)
{
    test_maxpool_2x2(3, 2, 8, 8, 0, 1);
    test_maxpool_2x2(2, 3, 28, 28, 7, 2); /* W1's pool1 shape, NaNs */
    test_maxpool_2x2(2, 4, 14, 14, 0, 3); /* pool2: 7 outputs per row (4 + 3) */
    test_maxpool_2x2(1, 2, 9, 11, 5, 4);  /* odd sizes: last row and column skipped */
    test_maxpool_2x2(2, 1, 2, 18, 3, 5);  /* 9 outputs per row, many NaNs */
    test_maxpool_2x2(1, 1, 16, 16, 1, 6); /* all NaN */
    test_prefix_paths(1);
    test_prefix_paths(7);
    test_prefix_paths(32);
    return tu_done("test_layers_fastpaths");
}
