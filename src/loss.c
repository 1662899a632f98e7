/* Softmax cross-entropy with label smoothing and class weights, as PyTorch's
 * nn.CrossEntropyLoss(weight=w, label_smoothing=eps) (see ftune/loss.h).
 * Labels outside [0, C) contribute nothing (no loss, weight or gradient),
 * like PyTorch's ignore_index, rather than reading out of bounds. */
#include "ftune/loss.h"

#include <math.h>
#include <stddef.h>

static int label_ok(const ft_xent *x, int y)
{
    return y >= 0 && y < x->classes;
}

static double class_weight(const ft_xent *x, int c)
{
    return x->class_weights ? (double)x->class_weights[c] : 1.0;
}

double ft_xent_forward(const ft_xent *x, const float *logits, const int *labels, int n,
                       float *probs, double *weight_sum, float *losses)
{
    const int C = x->classes;
    const double eps = x->smoothing;
    double total = 0.0, wsum = 0.0;
    if (C < 1) {
        *weight_sum = 0.0;
        return 0.0;
    }
    /* sum_c w[c], the smoothing term's weight on log-sum-exp */
    double wall = 0.0;
    for (int c = 0; c < C; c++)
        wall += class_weight(x, c);

    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * C;
        float *p = probs + (size_t)i * C;
        /* log-softmax about the max: exp never overflows */
        float zmax = z[0];
        for (int c = 1; c < C; c++)
            zmax = z[c] > zmax ? z[c] : zmax;
        double se = 0.0;
        for (int c = 0; c < C; c++)
            se += exp((double)z[c] - zmax);
        /* se >= 1 since the max term is exp(0); C >= 1 is checked above */
        // cppcheck-suppress invalidFunctionArg
        const double lse = zmax + log(se);
        for (int c = 0; c < C; c++)
            p[c] = (float)exp((double)z[c] - lse);

        double li = 0.0;
        const int y = labels[i];
        if (label_ok(x, y)) {
            const double wy = class_weight(x, y);
            li = (1.0 - eps) * wy * (lse - z[y]);
            if (eps != 0.0) {
                /* sum_c w[c] (lse - z[c]) = lse * sum_c w[c] - sum_c w[c] z[c] */
                double wz = 0.0;
                for (int c = 0; c < C; c++)
                    wz += class_weight(x, c) * z[c];
                li += eps / C * (lse * wall - wz);
            }
            wsum += wy;
        }
        if (losses)
            losses[i] = (float)li;
        total += li;
    }
    if (weight_sum)
        *weight_sum = wsum;
    return total;
}

void ft_xent_backward(const ft_xent *x, const float *probs, const int *labels, int n, float scale,
                      float *dlogits)
{
    const int C = x->classes;
    const double eps = x->smoothing;
    double wall = 0.0;
    for (int c = 0; c < C; c++)
        wall += class_weight(x, c);

    /* d l_i / dz_k = p_k ((1-eps) w_y + eps/C sum_c w_c) - (1-eps) w_y [k=y] - eps/C w_k */
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * C;
        float *d = dlogits + (size_t)i * C;
        const int y = labels[i];
        if (!label_ok(x, y)) {
            for (int c = 0; c < C; c++)
                d[c] = 0.0f;
            continue;
        }
        const double wy = class_weight(x, y);
        const double a = (1.0 - eps) * wy + eps / C * wall;
        for (int c = 0; c < C; c++) {
            double g = p[c] * a - eps / C * class_weight(x, c);
            if (c == y)
                g -= (1.0 - eps) * wy; /* in double: p_y near 1 cancels */
            d[c] = (float)(scale * g);
        }
    }
}

double ft_xent_weight_sum(const ft_xent *x, const int *labels, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        if (label_ok(x, labels[i]))
            s += class_weight(x, labels[i]);
    return s;
}
