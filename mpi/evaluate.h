/* Distributed evaluation: the eval set is split into one contiguous,
 * unpadded piece per rank, and the metric counts are summed, so every sample
 * is counted exactly once whatever the number of ranks. */
#ifndef FTUNE_EVALUATE_H
#define FTUNE_EVALUATE_H

#include "ftune/data.h"
#include "ftune/lmloss.h"
#include "ftune/metrics.h"
#include "ftune/model.h"

#include "runtime.h"

/* Collective. On return every rank holds the summed metrics. */
int ft_evaluate(const ft_mpi *w, ft_model *m, ft_dataset *d, ft_metrics *out, ft_err *err);
/* ft_evaluate that also gathers every sample's logits: logits is NULL or
 * d->n x classes floats, zeroed by the caller; on return every rank holds
 * all of them in dataset order. */
int ft_evaluate_logits(const ft_mpi *w, ft_model *m, ft_dataset *d, ft_metrics *out, float *logits,
                       ft_err *err);

/* Causal LM evaluation (train.task = "lm"): summed token NLL, target count and argmax hits
 * over the whole set, on every rank. A token id outside the head's vocabulary is FT_EINPUT
 * naming the file and sample. Collective. */
int ft_evaluate_lm(const ft_mpi *w, ft_model *m, ft_dataset *d, ft_lm_stats *out, ft_err *err);
/* The model's [T, V] output and [T] input for train.task = "lm", or FT_EINPUT naming why not. */
int ft_check_lm_model(const ft_model *m, const char *origin, int *T, int *V, ft_err *err);

/* Checks that the dataset fits the model (sample shape, label range). */
int ft_check_data_fits(const ft_dataset *d, const ft_model *m, ft_err *err);

#endif
