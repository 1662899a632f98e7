/* Softmax cross-entropy: PyTorch's nn.CrossEntropyLoss formula with label
 * smoothing and class weights (hand-computed values), stability on large
 * logits, and the gradient against central finite differences. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ftune/loss.h"
#include "ftune/rng.h"

#include "testutil.h"

static const float Z[] = {1, 2, 3, 0.5f, -1, 2, 3, 0, -2};
static const int Y[] = {2, 0, 1};

static void test_plain(void)
{
    ft_xent xe = {.classes = 3};
    float probs[9], losses[3];
    double wsum = -1.0;
    double total = ft_xent_forward(&xe, Z, Y, 3, probs, &wsum, losses);
    CHECK_NEAR(total, 5.203902496478685, 1e-6);
    CHECK_NEAR(wsum, 3.0, 0.0);
    CHECK_NEAR(losses[0], 0.4076059644443806, 1e-6);
    CHECK_NEAR(losses[1], 1.7413112966571571, 1e-6);
    CHECK_NEAR(losses[2], 3.0549852353771474, 1e-6);
    CHECK_NEAR(probs[0], 0.09003057317038046, 1e-7);
    CHECK_NEAR(probs[1], 0.24472847105479767, 1e-7);
    CHECK_NEAR(probs[2], 0.6652409557748219, 1e-7);
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(probs[3 * i] + probs[3 * i + 1] + probs[3 * i + 2], 1.0, 1e-6);
    CHECK_NEAR(ft_xent_weight_sum(&xe, Y, 3), 3.0, 0.0);

    /* losses and weight_sum are optional */
    CHECK_NEAR(ft_xent_forward(&xe, Z, Y, 3, probs, NULL, NULL), total, 0.0);
}

static void test_smoothing_and_weights(void)
{
    ft_xent xs = {.classes = 3, .smoothing = 0.1f};
    float probs[9], losses[3];
    double wsum;
    CHECK_NEAR(ft_xent_forward(&xs, Z, Y, 3, probs, &wsum, losses), 5.2705691631453515, 2e-6);
    CHECK_NEAR(losses[0], 0.5076059644443807, 1e-6);
    CHECK_NEAR(losses[2], 3.021651902043814, 1e-6);
    CHECK_NEAR(wsum, 3.0, 0.0);

    const float w[] = {1.0f, 2.0f, 0.5f};
    ft_xent xw = {.classes = 3, .smoothing = 0.2f, .class_weights = w};
    double total = ft_xent_forward(&xw, Z, Y, 3, probs, &wsum, losses);
    CHECK_NEAR(total, 7.941645048885274, 2e-6);
    CHECK_NEAR(losses[0], 0.5248171108147743, 1e-6);
    CHECK_NEAR(losses[1], 1.949355006545729, 1e-6);
    CHECK_NEAR(losses[2], 5.467472931524771, 1e-6);
    CHECK_NEAR(wsum, 3.5, 0.0);
    CHECK_NEAR(ft_xent_weight_sum(&xw, Y, 3), 3.5, 0.0);
    /* PyTorch's mean reduction is total / sum_i w[y_i] */
    CHECK_NEAR(total / wsum, 2.2690414425386497, 1e-6);
}

static void test_stable(void)
{
    const float z[] = {1000.0f, 0.0f, -1000.0f, 88.0f, 89.0f, 90.0f};
    const int y[] = {2, 2};
    ft_xent xe = {.classes = 3};
    float probs[6], losses[2], d[6];
    double wsum;
    double total = ft_xent_forward(&xe, z, y, 2, probs, &wsum, losses);
    CHECK_NEAR(losses[0], 2000.0, 1e-3);
    CHECK_NEAR(losses[1], 0.4076059644443806, 1e-5);
    CHECK(isfinite(total));
    CHECK_NEAR(probs[0], 1.0, 0.0);
    CHECK_NEAR(probs[2], 0.0, 0.0);
    ft_xent_backward(&xe, probs, y, 2, 1.0f, d);
    CHECK_NEAR(d[0], 1.0, 1e-7);
    CHECK_NEAR(d[2], -1.0, 1e-7);
    for (int i = 0; i < 6; i++)
        CHECK(isfinite(d[i]));
}

static void test_empty_and_ignored(void)
{
    ft_xent xe = {.classes = 3};
    double wsum = -1.0;
    CHECK_NEAR(ft_xent_forward(&xe, NULL, NULL, 0, NULL, &wsum, NULL), 0.0, 0.0);
    CHECK_NEAR(wsum, 0.0, 0.0);
    ft_xent_backward(&xe, NULL, NULL, 0, 1.0f, NULL);
    CHECK_NEAR(ft_xent_weight_sum(&xe, NULL, 0), 0.0, 0.0);

    /* an out-of-range label contributes nothing instead of reading past the row */
    const int y[] = {2, -100, 3};
    float probs[9], losses[3], d[9];
    double total = ft_xent_forward(&xe, Z, y, 3, probs, &wsum, losses);
    CHECK_NEAR(total, 0.4076059644443806, 1e-6);
    CHECK_NEAR(wsum, 1.0, 0.0);
    CHECK_NEAR(losses[1], 0.0, 0.0);
    CHECK_NEAR(ft_xent_weight_sum(&xe, y, 3), 1.0, 0.0);
    ft_xent_backward(&xe, probs, y, 3, 1.0f, d);
    for (int i = 3; i < 9; i++)
        CHECK_NEAR(d[i], 0.0, 0.0);
}

/* dlogits against central differences of scale * sum_i l_i. */
static void fd_case(int n, int C, float smoothing, int weighted)
{
    float z[64], w[8], probs[64], d[64];
    int y[8];
    ft_rng rng;
    ft_rng_seed(&rng, (uint64_t)(n * 100 + C) + (uint64_t)weighted);
    for (int i = 0; i < n * C; i++)
        z[i] = ft_rng_normal(&rng) * 2.0f;
    for (int c = 0; c < C; c++)
        w[c] = 0.25f + ft_rng_uniform(&rng) * 2.0f;
    for (int i = 0; i < n; i++)
        y[i] = (int)ft_rng_below(&rng, (uint64_t)C);
    ft_xent xe = {.classes = C, .smoothing = smoothing, .class_weights = weighted ? w : NULL};
    double wsum;
    ft_xent_forward(&xe, z, y, n, probs, &wsum, NULL);
    const float scale = (float)(1.0 / wsum);
    ft_xent_backward(&xe, probs, y, n, scale, d);
    for (int i = 0; i < n; i++) {
        double row = 0.0;
        for (int c = 0; c < C; c++)
            row += d[i * C + c];
        CHECK_NEAR(row, 0.0, 1e-6); /* softmax gradients sum to zero per row */
    }
    for (int j = 0; j < n * C; j++) {
        float z0 = z[j];
        float zp = z0 + 1e-2f, zm = z0 - 1e-2f;
        z[j] = zp;
        double lp = ft_xent_forward(&xe, z, y, n, probs, NULL, NULL);
        z[j] = zm;
        double lm = ft_xent_forward(&xe, z, y, n, probs, NULL, NULL);
        z[j] = z0;
        double num = scale * (lp - lm) / ((double)zp - (double)zm);
        if (!CHECK_NEAR(d[j], num, 1e-4))
            fprintf(stderr, "  n %d C %d eps %g weighted %d, logit %d\n", n, C, smoothing, weighted,
                    j);
    }
}

static void test_gradient(void)
{
    fd_case(4, 5, 0.0f, 0);
    fd_case(4, 5, 0.15f, 0);
    fd_case(6, 3, 0.0f, 1);
    fd_case(6, 7, 0.3f, 1);
}

int main(void)
{
    test_plain();
    test_smoothing_and_weights();
    test_stable();
    test_empty_and_ignored();
    test_gradient();
    return tu_done("test_loss");
}
