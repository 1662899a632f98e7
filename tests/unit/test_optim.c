/* Optimizers, schedules and clipping against hand-computed steps (torch.optim
 * semantics). The model is assembled by hand so these tests need no layer code:
 *
 *   layer 0 "stem"  frozen:              weight[2]            (no grads)
 *   layer 1 "mid"   lr_mult 0.5:         weight[2], running[1] (buffer, no grad)
 *   layer 2 "head"  lr_mult 1:           weight[2], bias[1]
 *
 * Gradient arena, last layer first: head.weight 0..1, head.bias 2, mid.weight 3..4. */
#include <math.h>
#include <string.h>

#include "ftune/optim.h"

#include "testutil.h"

#define TOL 1e-6

typedef struct fixture {
    ft_layer layers[3];
    ft_model m;
    float params[10];
    float grads[5];
} fixture;

static ft_param *add(ft_layer *l, const char *name, float *data, size_t count, int learnable,
                     float *grad)
{
    ft_param *p = &l->params[l->nparams++];
    strcpy(p->name, name);
    p->shape = ft_shape1((int)count);
    p->count = count;
    p->learnable = learnable;
    p->data = data;
    p->grad = grad;
    return p;
}

/* Parameters start at: stem {5, 6}, mid.weight {-2, 3}, mid.running {7},
 * head.weight {1, 4}, head.bias {0.25}. */
static void fixture_init(fixture *f)
{
    memset(f, 0, sizeof *f);
    static const float init[10] = {5, 6, -2, 3, 7, 1, 4, 0.25f, 0, 0};
    memcpy(f->params, init, sizeof init);
    ft_layer *stem = &f->layers[0], *mid = &f->layers[1], *head = &f->layers[2];
    strcpy(stem->name, "stem");
    stem->frozen = 1;
    stem->lr_mult = 1.0f;
    add(stem, "weight", f->params + 0, 2, 1, NULL);
    strcpy(mid->name, "mid");
    mid->lr_mult = 0.5f;
    add(mid, "weight", f->params + 2, 2, 1, f->grads + 3);
    add(mid, "running_mean", f->params + 4, 1, 0, NULL);
    strcpy(head->name, "head");
    head->lr_mult = 1.0f;
    add(head, "weight", f->params + 5, 2, 1, f->grads + 0);
    add(head, "bias", f->params + 7, 1, 1, f->grads + 2);
    for (int i = 0; i < 3; i++)
        f->layers[i].index = i;
    f->m.layers = f->layers;
    f->m.nlayers = 3;
    f->m.params = f->params;
    f->m.nparams = 8;
    f->m.grads = f->grads;
    f->m.ngrads = 5;
    f->m.first_trainable = 1;
}

/* Every gradient element gets g; the frozen and buffer values must never move. */
static void set_grads(fixture *f, float g)
{
    for (int i = 0; i < 5; i++)
        f->grads[i] = g;
}

static void check_untouched(const fixture *f)
{
    CHECK(f->params[0] == 5.0f && f->params[1] == 6.0f); /* frozen stem */
    CHECK(f->params[4] == 7.0f);                         /* buffer */
}

static const float G[3] = {0.5f, -0.2f, 0.1f};

static void test_sgd_momentum(void)
{
    fixture f;
    fixture_init(&f);
    ft_optim o;
    ft_err err = {0};
    ft_optim_cfg cfg = {.type = FT_OPT_SGD, .lr = 0.1f, .momentum = 0.9f};
    CHECK(ft_optim_init(&o, &cfg, &f.m, &err) == FT_OK);
    CHECK(o.nstate == 5);
    /* head.weight[0] = 1, lr 0.1, grads 0.5, -0.2, 0.1:
     *  buf 0.5             p = 1     - 0.05   = 0.95
     *  buf 0.45-0.2 = 0.25 p = 0.95  - 0.025  = 0.925
     *  buf 0.225+0.1=0.325 p = 0.925 - 0.0325 = 0.8925
     * mid.weight[0] = -2 with lr_mult 0.5 (lr 0.05): -2.025, -2.0375, -2.05375 */
    static const float head_w0[3] = {0.95f, 0.925f, 0.8925f};
    static const float mid_w0[3] = {-2.025f, -2.0375f, -2.05375f};
    static const float bufs[3] = {0.5f, 0.25f, 0.325f};
    for (int s = 0; s < 3; s++) {
        set_grads(&f, G[s]);
        ft_optim_step(&o, &f.m, 0.1f);
        CHECK_NEAR(f.params[5], head_w0[s], TOL);
        CHECK_NEAR(f.params[2], mid_w0[s], TOL);
        /* State lines up with the grad arena: every slot holds the same buffer. */
        for (int i = 0; i < 5; i++)
            CHECK_NEAR(o.state[i], bufs[s], TOL);
    }
    CHECK_NEAR(f.params[6], 4.0f - (1.0f - 0.8925f), TOL);  /* head.weight[1] */
    CHECK_NEAR(f.params[7], 0.25f - (1.0f - 0.8925f), TOL); /* head.bias */
    CHECK_NEAR(f.params[3], 3.0f - 0.05375f, TOL);          /* mid.weight[1] */
    CHECK(o.t == 3);
    CHECK(f.grads[0] == G[2]); /* gradients are not modified */
    check_untouched(&f);
    ft_optim_free(&o);
}

static void test_sgd_nesterov(void)
{
    fixture f;
    fixture_init(&f);
    ft_optim o;
    ft_err err = {0};
    ft_optim_cfg cfg = {.type = FT_OPT_SGD, .lr = 0.1f, .momentum = 0.9f, .nesterov = 1};
    CHECK(ft_optim_init(&o, &cfg, &f.m, &err) == FT_OK);
    /* d = g + mu*buf:
     *  buf 0.5,   d = 0.5  + 0.45   = 0.95   p = 1      - 0.095   = 0.905
     *  buf 0.25,  d = -0.2 + 0.225  = 0.025  p = 0.905  - 0.0025  = 0.9025
     *  buf 0.325, d = 0.1  + 0.2925 = 0.3925 p = 0.9025 - 0.03925 = 0.86325 */
    static const float head_w0[3] = {0.905f, 0.9025f, 0.86325f};
    for (int s = 0; s < 3; s++) {
        set_grads(&f, G[s]);
        ft_optim_step(&o, &f.m, 0.1f);
        CHECK_NEAR(f.params[5], head_w0[s], TOL);
    }
    /* lr_mult 0.5 halves every step: -2 - 0.5*(1 - 0.86325) */
    CHECK_NEAR(f.params[2], -2.068375f, TOL);
    check_untouched(&f);
    ft_optim_free(&o);
}

static void test_sgd_weight_decay(void)
{
    fixture f;
    fixture_init(&f);
    ft_optim o;
    ft_err err = {0};
    /* Plain SGD keeps no state. */
    ft_optim_cfg cfg = {.type = FT_OPT_SGD, .lr = 0.1f, .weight_decay = 0.1f};
    CHECK(ft_optim_init(&o, &cfg, &f.m, &err) == FT_OK);
    CHECK(o.nstate == 0 && o.state == NULL);
    /* head.weight[0] = 1, g = 0.5: d = g + 0.1p
     *  d = 0.6    p = 0.94
     *  d = 0.594  p = 0.8806
     *  d = 0.58806 p = 0.821794 */
    static const float head_w0[3] = {0.94f, 0.8806f, 0.821794f};
    for (int s = 0; s < 3; s++) {
        set_grads(&f, 0.5f);
        ft_optim_step(&o, &f.m, 0.1f);
        CHECK_NEAR(f.params[5], head_w0[s], TOL);
        CHECK(f.grads[0] == 0.5f); /* decay is not folded into the gradient arena */
    }
    check_untouched(&f);
    ft_optim_free(&o);

    /* Momentum with decay, g = 0.5 each step:
     *  d = 0.6     buf = 0.6                  p = 0.94
     *  d = 0.594   buf = 0.54  + 0.594 = 1.134   p = 0.8266
     *  d = 0.58266 buf = 1.0206 + 0.58266 = 1.60326 p = 0.666274 */
    fixture_init(&f);
    cfg.momentum = 0.9f;
    CHECK(ft_optim_init(&o, &cfg, &f.m, &err) == FT_OK);
    static const float head_w0m[3] = {0.94f, 0.8266f, 0.666274f};
    for (int s = 0; s < 3; s++) {
        set_grads(&f, 0.5f);
        ft_optim_step(&o, &f.m, 0.1f);
        CHECK_NEAR(f.params[5], head_w0m[s], TOL);
    }
    CHECK_NEAR(o.state[0], 1.60326f, TOL);
    ft_optim_free(&o);
}

static void test_adamw(void)
{
    fixture f;
    fixture_init(&f);
    ft_optim o;
    ft_err err = {0};
    ft_optim_cfg cfg = {.type = FT_OPT_ADAMW,
                        .lr = 0.1f,
                        .weight_decay = 0.01f,
                        .beta1 = 0.9f,
                        .beta2 = 0.999f,
                        .eps = 1e-8f};
    CHECK(ft_optim_init(&o, &cfg, &f.m, &err) == FT_OK);
    CHECK(o.nstate == 10);
    /* head.weight[0] = 1, lr 0.1, wd 0.01, grads 0.5, -0.2, 0.1:
     *  t=1: p = 0.999;  m = 0.05,  v = 2.5e-4;   mhat 0.5, sqrt(vhat) 0.5  -> p = 0.899
     *  t=2: p = 0.898101; m = 0.025, v = 2.8975e-4; mhat = 0.025/0.19,
     *       sqrt(vhat) = sqrt(2.8975e-4/0.001999) -> p = 0.8635404
     *  t=3: m = 0.0325, v = 2.9946025e-4 -> p = 0.8247377
     * mid.weight[0] = -2 with lr 0.05 (decay 1 - 0.0005):
     *  -2.049, -2.0652558, -2.0831928 */
    static const float head_w0[3] = {0.899f, 0.8635404f, 0.8247377f};
    static const float mid_w0[3] = {-2.049f, -2.0652558f, -2.0831928f};
    for (int s = 0; s < 3; s++) {
        set_grads(&f, G[s]);
        ft_optim_step(&o, &f.m, 0.1f);
        CHECK_NEAR(f.params[5], head_w0[s], 2e-6);
        CHECK_NEAR(f.params[2], mid_w0[s], 2e-6);
    }
    /* m in the first ngrads floats, v in the next, both at the grad offset. */
    CHECK_NEAR(o.state[0], 0.0325, 1e-7);
    CHECK_NEAR(o.state[3], 0.0325, 1e-7);
    /* 1 - beta2 with beta2 stored as float 0.999f is 1.00005e-3, hence the tolerance. */
    CHECK_NEAR(o.state[5 + 0], 2.9946025e-4, 2e-8);
    CHECK_NEAR(o.state[5 + 4], 2.9946025e-4, 2e-8);
    CHECK(o.t == 3);
    check_untouched(&f);
    ft_optim_free(&o);
}

static void test_init(void)
{
    fixture f;
    fixture_init(&f);
    ft_optim o;
    ft_err err = {0};
    CHECK(ft_optim_state_per_param(FT_OPT_SGD) == 1);
    CHECK(ft_optim_state_per_param(FT_OPT_ADAMW) == 2);
    CHECK(ft_optim_state_per_param(0) == 0);

    ft_optim_cfg bad = {.type = 99, .lr = 0.1f};
    CHECK(ft_optim_init(&o, &bad, &f.m, &err) == FT_EINPUT);
    CHECK(o.state == NULL);
    ft_optim_cfg nest = {.type = FT_OPT_SGD, .lr = 0.1f, .nesterov = 1};
    ft_err_clear(&err);
    CHECK(ft_optim_init(&o, &nest, &f.m, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "nesterov");
    ft_optim_cfg beta = {.type = FT_OPT_ADAMW, .lr = 0.1f, .beta1 = 1.0f, .beta2 = 0.999f};
    ft_err_clear(&err);
    CHECK(ft_optim_init(&o, &beta, &f.m, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "beta1");

    /* Everything frozen: no gradients, no state, steps are no-ops. */
    f.m.ngrads = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < f.layers[i].nparams; j++)
            f.layers[i].params[j].grad = NULL;
    ft_optim_cfg adam = {.type = FT_OPT_ADAMW, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f};
    CHECK(ft_optim_init(&o, &adam, &f.m, &err) == FT_OK);
    CHECK(o.nstate == 0);
    ft_optim_step(&o, &f.m, 0.1f);
    CHECK(f.params[5] == 1.0f);
    ft_optim_free(&o);
}

static void test_schedules(void)
{
    ft_schedule_cfg c = {.type = FT_SCHED_CONSTANT, .warmup_steps = 4};
    CHECK_NEAR(ft_schedule_lr(&c, 0.1f, 0), 0.025, 1e-8);
    CHECK_NEAR(ft_schedule_lr(&c, 0.1f, 1), 0.05, 1e-8);
    CHECK_NEAR(ft_schedule_lr(&c, 0.1f, 3), 0.1, 1e-8);
    CHECK_NEAR(ft_schedule_lr(&c, 0.1f, 4), 0.1, 1e-8);
    CHECK_NEAR(ft_schedule_lr(&c, 0.1f, 100000), 0.1, 1e-8);
    c.warmup_steps = 0;
    CHECK_NEAR(ft_schedule_lr(&c, 0.1f, 0), 0.1, 1e-8);

    ft_schedule_cfg st = {.type = FT_SCHED_STEP, .step_size = 10, .gamma = 0.1f};
    CHECK_NEAR(ft_schedule_lr(&st, 1.0f, 0), 1.0, 1e-7);
    CHECK_NEAR(ft_schedule_lr(&st, 1.0f, 9), 1.0, 1e-7);
    CHECK_NEAR(ft_schedule_lr(&st, 1.0f, 10), 0.1, 1e-7);
    CHECK_NEAR(ft_schedule_lr(&st, 1.0f, 25), 0.01, 1e-8);
    st.warmup_steps = 5; /* decay counts from the end of warmup */
    CHECK_NEAR(ft_schedule_lr(&st, 1.0f, 0), 0.2, 1e-7);
    CHECK_NEAR(ft_schedule_lr(&st, 1.0f, 14), 1.0, 1e-7);
    CHECK_NEAR(ft_schedule_lr(&st, 1.0f, 15), 0.1, 1e-7);

    ft_schedule_cfg cos_ = {
        .type = FT_SCHED_COSINE, .warmup_steps = 10, .total_steps = 110, .min_lr = 0.1f};
    CHECK_NEAR(ft_schedule_lr(&cos_, 1.0f, 0), 0.1, 1e-7);
    CHECK_NEAR(ft_schedule_lr(&cos_, 1.0f, 9), 1.0, 1e-7);
    CHECK_NEAR(ft_schedule_lr(&cos_, 1.0f, 10), 1.0, 1e-7);
    CHECK_NEAR(ft_schedule_lr(&cos_, 1.0f, 35), 0.86819805, 1e-6); /* 0.1 + 0.45(1 + cos(pi/4)) */
    CHECK_NEAR(ft_schedule_lr(&cos_, 1.0f, 60), 0.55, 1e-6);
    CHECK_NEAR(ft_schedule_lr(&cos_, 1.0f, 110), 0.1, 1e-7);
    CHECK_NEAR(ft_schedule_lr(&cos_, 1.0f, 500), 0.1, 1e-7); /* stays at min_lr */
    cos_.warmup_steps = 0;
    cos_.total_steps = 100;
    cos_.min_lr = 0.0f;
    CHECK_NEAR(ft_schedule_lr(&cos_, 2.0f, 0), 2.0, 1e-7);
    CHECK_NEAR(ft_schedule_lr(&cos_, 2.0f, 50), 1.0, 1e-6);
    CHECK_NEAR(ft_schedule_lr(&cos_, 2.0f, 100), 0.0, 1e-7);
    /* total_steps not after warmup: no division by zero, straight to min_lr */
    ft_schedule_cfg degenerate = {
        .type = FT_SCHED_COSINE, .warmup_steps = 5, .total_steps = 3, .min_lr = 0.01f};
    CHECK_NEAR(ft_schedule_lr(&degenerate, 1.0f, 5), 1.0, 1e-7);
    CHECK_NEAR(ft_schedule_lr(&degenerate, 1.0f, 6), 0.01, 1e-7);
}

static void test_clipping(void)
{
    float g[2] = {3.0f, 4.0f};
    CHECK_NEAR(ft_grad_norm(g, 2), 5.0, 1e-12);
    float h[3] = {1.0f, 2.0f, -2.0f};
    CHECK_NEAR(ft_grad_norm(h, 3), 3.0, 1e-12);

    /* Under the limit, or no limit: unchanged, and the norm is still returned. */
    CHECK_NEAR(ft_clip_grad_norm(g, 2, 10.0), 5.0, 1e-12);
    CHECK(g[0] == 3.0f && g[1] == 4.0f);
    CHECK_NEAR(ft_clip_grad_norm(g, 2, 0.0), 5.0, 1e-12);
    CHECK(g[0] == 3.0f && g[1] == 4.0f);

    /* coef = 1 / (5 + 1e-6) */
    CHECK_NEAR(ft_clip_grad_norm(g, 2, 1.0), 5.0, 1e-12);
    CHECK_NEAR(g[0], 0.59999988, 1e-7);
    CHECK_NEAR(g[1], 0.79999984, 1e-7);
    CHECK_NEAR(ft_grad_norm(g, 2), 1.0, 1e-6);

    float z[2] = {0.0f, 0.0f};
    CHECK_NEAR(ft_clip_grad_norm(z, 2, 1.0), 0.0, 0.0);
    CHECK(z[0] == 0.0f && z[1] == 0.0f);

    /* 4M elements of 1e-3: sum of squares 4.0, which float accumulation misses. */
    enum { N = 1 << 22 };
    static float big[N];
    for (int i = 0; i < N; i++)
        big[i] = 1e-3f;
    CHECK_NEAR(ft_grad_norm(big, N), sqrt((double)N) * (double)1e-3f, 1e-9);
}

int main(void)
{
    test_sgd_momentum();
    test_sgd_nesterov();
    test_sgd_weight_decay();
    test_adamw();
    test_init();
    test_schedules();
    test_clipping();
    return tu_done("test_optim");
}
