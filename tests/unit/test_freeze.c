/* Freezing by parameter name (freeze.params, freeze.train_params,
 * freeze.bitfit) on a small GPT-like model: gradient arena and optimizer
 * state sizes, which parameters move in a training step, and the errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/config.h"
#include "ftune/freeze.h"
#include "ftune/optim.h"
#include "ftune/rng.h"

#include "testutil.h"

/* T = 6 tokens, D = 16, two blocks (mlp width 64), a 3-class head. */
#define GPT_CFG                                                                                    \
    "data = { train = \"x.h5\"; };\n"                                                              \
    "model = { input = [6]; layers = (\n"                                                          \
    "  { name = \"wte\"; type = \"embedding\"; vocab = 20; dim = 16; },\n"                         \
    "  { name = \"h.0\"; type = \"transformer_block\"; heads = 4; causal = true; },\n"             \
    "  { name = \"h.1\"; type = \"transformer_block\"; heads = 4; causal = true; },\n"             \
    "  { name = \"ln_f\"; type = \"layernorm\"; },\n"                                              \
    "  { name = \"pool\"; type = \"seq_pool\"; mode = \"last\"; },\n"                              \
    "  { name = \"head\"; type = \"dense\"; units = 3; } ); };\n"

static int build(ft_config *c, ft_model *m, const char *extra, ft_err *err)
{
    char text[4096];
    snprintf(text, sizeof text, "%s%s", GPT_CFG, extra);
    memset(m, 0, sizeof *m);
    memset(err, 0, sizeof *err);
    int rc = ft_config_load_string(c, text, "test.cfg", err);
    if (!rc)
        rc = ft_config_build_model(c, m, err);
    return rc;
}

static size_t built_grads(const char *extra, int *first_trainable)
{
    ft_config c;
    ft_model m;
    ft_err err;
    size_t n = (size_t)-1;
    if (build(&c, &m, extra, &err) == FT_OK) {
        n = m.ngrads;
        *first_trainable = m.first_trainable;
    } else {
        printf("build failed: %s\n", err.msg);
    }
    ft_model_free(&m);
    ft_config_free(&c);
    return n;
}

/* Hand-counted sizes: per block ln1 32, qkv 768 + 48, out 256 + 16, ln2 32,
 * fc 1024 + 64, proj 1024 + 16 (3280); ln_f 32; head 48 + 3; wte 320 + pos 96. */
static void test_sizes(void)
{
    int ft = -1;
    CHECK(built_grads("", &ft) == 320 + 96 + 2 * 3280 + 32 + 51);
    CHECK(ft == 0);
    /* BitFit: per block 32 + 48 + 16 + 32 + 64 + 16 = 208, ln_f, the whole head */
    CHECK(built_grads("freeze = { bitfit = true; };", &ft) == 2 * 208 + 32 + 51);
    CHECK(ft == 1);
    /* bitfit with the first block frozen as a layer */
    CHECK(built_grads("freeze = { bitfit = true; upto = \"h.0\"; };", &ft) == 208 + 32 + 51);
    CHECK(ft == 2);
    /* only the head */
    CHECK(built_grads("freeze = { train_params = [\"head.*\"]; };", &ft) == 51);
    CHECK(ft == 5);
    /* every attention weight and the embeddings frozen */
    CHECK(built_grads("freeze = { params = [\"*.attn_*_weight\", \"wte.*\"]; };", &ft) ==
          2 * (3280 - 768 - 256) + 32 + 51);
    CHECK(ft == 1);
    /* a blacklist entry wins over the whitelist */
    CHECK(built_grads("freeze = { bitfit = true; params = [\"head.bias\"]; };", &ft) ==
          2 * 208 + 32 + 48);
}

static void test_errors(void)
{
    ft_config c;
    ft_model m;
    ft_err err;
    CHECK(build(&c, &m, "freeze = { params = [\"h.*.attn_qkv_weight\", \"h.0.nope\"]; };", &err) ==
          FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "freeze.params pattern \"h.0.nope\" matches no parameter");
    ft_model_free(&m);
    ft_config_free(&c);
    CHECK(build(&c, &m, "freeze = { train_params = [\"head\"]; };", &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "freeze.train_params pattern \"head\"");
    ft_model_free(&m);
    ft_config_free(&c);
    /* a new head that BitFit-style whitelisting would leave random */
    CHECK(build(&c, &m,
                "pretrained = { file = \"p.h5\"; reinit = [\"head\"]; };\n"
                "freeze = { train_params = [\"*bias\"]; params = [\"head.*\"]; };",
                &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "pretrained.reinit names layer 'head'");
    ft_model_free(&m);
    ft_config_free(&c);
    /* everything frozen by name: nothing trains, the layers count as frozen */
    CHECK(build(&c, &m, "freeze = { params = [\"*\"]; };", &err) == FT_OK);
    CHECK(m.ngrads == 0 && m.first_trainable == m.nlayers);
    CHECK(m.layers[1].frozen == 1);
    ft_model_free(&m);
    ft_config_free(&c);
}

/* One SGD step under BitFit: frozen parameters keep their values, every
 * trainable one moves, and the optimizer state follows the gradient arena. */
static void test_step(void)
{
    ft_config c;
    ft_model m;
    ft_err err;
    CHECK(build(&c, &m, "freeze = { bitfit = true; };", &err) == FT_OK);
    const int n = 4;
    CHECK(ft_model_alloc(&m, n, &err) == FT_OK);
    ft_model_init_params(&m, 3);
    /* nonzero biases and norm parameters so that every gradient is nonzero */
    ft_rng r;
    ft_rng_seed(&r, 11);
    for (size_t k = 0; k < m.nparams; k++)
        m.params[k] += 0.05f * ft_rng_normal(&r);
    float *before = malloc(m.nparams * sizeof(float));
    memcpy(before, m.params, m.nparams * sizeof(float));

    ft_optim_cfg oc = {0};
    oc.type = FT_OPT_SGD;
    oc.lr = 0.1f;
    oc.momentum = 0.9f;
    ft_optim o;
    CHECK(ft_optim_init(&o, &oc, &m, &err) == FT_OK);
    CHECK(o.nstate == m.ngrads);

    float x[4 * 6], dl[4 * 3];
    for (int i = 0; i < n * 6; i++)
        x[i] = (float)((i * 7) % 20);
    for (int i = 0; i < n * 3; i++)
        dl[i] = ft_rng_normal(&r);
    uint64_t ids[4] = {0, 1, 2, 3};
    ft_ctx ctx = {0};
    ctx.n = n;
    ctx.training = 1;
    ctx.sample_ids = ids;
    ft_model_zero_grads(&m);
    ft_model_forward(&m, &ctx, x);
    ft_model_backward(&m, &ctx, dl);
    ft_optim_step(&o, &m, 0.1f);

    int frozen_moved = 0, trainable_still = 0, nfrozen = 0, ntrain = 0;
    for (int i = 0; i < m.nlayers; i++)
        for (int j = 0; j < m.layers[i].nparams; j++) {
            const ft_param *p = &m.layers[i].params[j];
            const float *b = before + (p->data - m.params);
            int moved = memcmp(b, p->data, p->count * sizeof(float)) != 0;
            if (p->grad) {
                ntrain++;
                trainable_still += !moved;
                if (!moved)
                    printf("trainable %s.%s did not move\n", m.layers[i].name, p->name);
            } else {
                nfrozen++;
                frozen_moved += moved;
            }
        }
    CHECK(ntrain == 2 * 8 + 2 + 2 && nfrozen > 0);
    CHECK(frozen_moved == 0);
    CHECK(trainable_still == 0);
    ft_optim_free(&o);
    free(before);
    ft_model_free(&m);
    ft_config_free(&c);
}

int main(void)
{
    test_sizes();
    test_errors();
    test_step();
    return tu_done("freeze");
}
