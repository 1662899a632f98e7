/* Softmax cross-entropy with label smoothing and class weights, defined as
 * PyTorch's nn.CrossEntropyLoss(weight=w, label_smoothing=eps):
 *   l_i = (1-eps) * w[y_i] * -log p_i[y_i] + (eps/C) * sum_c w[c] * -log p_i[c]
 *   loss = sum_i l_i / sum_i w[y_i]     (w = 1 when no weights are given)
 * The denominator is global (all ranks, all micro-batches), so the caller
 * passes 1/denominator as `scale`. */
#ifndef FTUNE_LOSS_H
#define FTUNE_LOSS_H

typedef struct ft_xent {
    int classes;
    float smoothing;
    const float *class_weights; /* NULL = all 1 */
} ft_xent;

/* Computes softmax probabilities into probs (n x C), returns sum_i l_i and
 * stores sum_i w[y_i] in *weight_sum. Optional per-sample losses into
 * losses (may be NULL). */
double ft_xent_forward(const ft_xent *x, const float *logits, const int *labels, int n,
                       float *probs, double *weight_sum, float *losses);

/* dlogits = scale * d(sum_i l_i)/dlogits. */
void ft_xent_backward(const ft_xent *x, const float *probs, const int *labels, int n, float scale,
                      float *dlogits);

/* Local sum of w[y_i] (the per-rank part of the denominator). */
double ft_xent_weight_sum(const ft_xent *x, const int *labels, int n);

#endif
