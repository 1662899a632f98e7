/* The sequence layers' tanh GELU (src/layers/seqcommon.c, used by
 * transformer_block): its vectorised exp must match GPT-2's gelu_new in double
 * precision to float accuracy, forward and derivative, over the whole range,
 * and keep NaN and +-Inf behaving like the tanhf formula. */
#include <math.h>
#include <stdio.h>

#include "../../src/layers/seqcommon.h"
#include "testutil.h"

#define N 200001

static float xs[N], y[N], dy[N], dx[N];

static double ref_t(double v)
{
    return tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v));
}

static void test_range(void)
{
    /* -12 .. 12 in small steps (the whole curved part), plus far out */
    for (int i = 0; i < N; i++) {
        xs[i] = (float)(-12.0 + 24.0 * i / (N - 1));
        dy[i] = 1.0f;
    }
    xs[0] = -1e6f;
    xs[N - 1] = 3e4f;
    ft_seq_gelu_fwd(N, 1, xs, y);
    ft_seq_gelu_bwd(N, 1, xs, dy, dx);
    double worst_y = 0, worst_d = 0;
    for (int i = 0; i < N; i++) {
        double v = xs[i], t = ref_t(v);
        double du = sqrt(2.0 / M_PI) * (1.0 + 3.0 * 0.044715 * v * v);
        double ry = 0.5 * v * (1.0 + t), rd = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du;
        /* error relative to max(1, |value|): float rounding of the result */
        double ey = fabs(y[i] - ry) / fmax(1.0, fabs(ry));
        double ed = fabs(dx[i] - rd) / fmax(1.0, fabs(rd));
        worst_y = ey > worst_y ? ey : worst_y;
        worst_d = ed > worst_d ? ed : worst_d;
    }
    printf("tanh GELU: worst error forward %.3g, derivative %.3g\n", worst_y, worst_d);
    CHECK(worst_y < 5e-7);
    CHECK(worst_d < 5e-7);
}

static void test_special(void)
{
    float v[4] = {NAN, INFINITY, -INFINITY, 0.0f}, out[4], g[4] = {1, 1, 1, 1}, d[4];
    ft_seq_gelu_fwd(4, 1, v, out);
    ft_seq_gelu_bwd(4, 1, v, g, d);
    CHECK(isnan(out[0]) && isnan(d[0]));
    CHECK(out[1] == INFINITY);
    CHECK(out[3] == 0.0f && d[3] == 0.5f);
}

int main(void)
{
    test_range();
    test_special();
    return tu_done("test_seq_gelu");
}
