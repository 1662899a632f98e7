/* Building blocks shared by the sequence layers (layernorm, transformer_block,
 * seq_pool, embedding): row-wise linear maps with sgemm, layer normalisation,
 * GELU and the per-sample dropout streams. A "row" is one position of one
 * sample, so a batch of n samples of shape [T, D] is an [n*T, D] matrix.
 * Internal to src/layers/. */
#ifndef FTUNE_LAYERS_SEQCOMMON_H
#define FTUNE_LAYERS_SEQCOMMON_H

#include <stddef.h>

#include "ftune/layer.h"
#include "ftune/rng.h"

/* Real positions of row i of the batch: ctx->lengths[i] clamped to [0, T],
 * or T when ctx->lengths is NULL. */
int ft_seq_length(const ft_ctx *c, int i, int T);

/* y[rows, out] = x[rows, in] W^T + b, W [out, in] (b may be NULL). */
void ft_seq_linear_fwd(size_t rows, int in, int out, const float *x, const float *w, const float *b,
                       float *y);
/* dW += dy^T x (dw != NULL), db += column sums of dy (db != NULL), and
 * dx = dy W (dx != NULL; dx += dy W when accumulate). */
void ft_seq_linear_bwd(size_t rows, int in, int out, const float *x, const float *w,
                       const float *dy, float *dw, float *db, float *dx, int accumulate);

/* Layer normalisation of each row of D floats: y = (x - mean) * rstd * g + b,
 * biased variance, rstd = 1 / sqrt(var + eps). mean and rstd get one float
 * per row; y == NULL computes only them. */
void ft_seq_ln_fwd(size_t rows, int D, float eps, const float *x, const float *g, const float *b,
                   float *y, float *mean, float *rstd);
/* Backward of ft_seq_ln_fwd from the same x, mean and rstd: dg, db += (when
 * non-NULL); dx = (or += when accumulate) the input gradient (dx != NULL). */
void ft_seq_ln_bwd(size_t rows, int D, const float *x, const float *mean, const float *rstd,
                   const float *g, const float *dy, float *dg, float *db, float *dx,
                   int accumulate);

/* GELU: exact x * Phi(x), or the tanh approximation (GPT-2's gelu_new). y may
 * be x. */
void ft_seq_gelu_fwd(size_t n, int tanh_approx, const float *x, float *y);
/* dx = dy * gelu'(x); dx may be dy. */
void ft_seq_gelu_bwd(size_t n, int tanh_approx, const float *x, const float *dy, float *dx);

/* The dropout stream of row i of the batch for one dropout site of a layer:
 * a pure function of (seed, epoch, global sample id, layer name, site). */
void ft_seq_drop_rng(const ft_layer *l, const ft_ctx *c, int i, uint64_t site, ft_rng *r);
/* out[j] = in[j] / (1 - rate) where a uniform draw >= rate, else 0, drawing
 * one number per element in order (out may be in). */
void ft_seq_drop_apply(ft_rng *r, float rate, const float *in, float *out, size_t n);

#endif
