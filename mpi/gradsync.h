/* Gradient all-reduce in buckets, started during backward: the gradient
 * arena is laid out last layer first, so as backward passes each layer the
 * arena is final up to some offset; every full bucket below that offset is
 * handed to MPI_Iallreduce at once and waited for before the update. */
#ifndef FTUNE_GRADSYNC_H
#define FTUNE_GRADSYNC_H

#include <mpi.h>
#include <stddef.h>

#include "ftune/layer.h"

#include "runtime.h"

typedef struct ft_gradsync {
    const ft_mpi *w;
    float *grads;
    size_t n;
    size_t bucket; /* floats per bucket */
    size_t launched, ready;
    MPI_Request *reqs;
    int nreq, cap;
    int active;          /* overlap only on the last micro-batch of a step */
    double wait_seconds; /* time blocked in the final wait (not hidden) */
} ft_gradsync;

int ft_gradsync_init(ft_gradsync *g, const ft_mpi *w, float *grads, size_t n, size_t bucket_bytes,
                     ft_err *err);
void ft_gradsync_begin(ft_gradsync *g);
/* ft_grad_ready_fn for the model. */
void ft_gradsync_ready(const ft_layer *l, size_t lo, size_t hi, void *user);
/* Launches what is left and waits for every bucket. */
void ft_gradsync_finish(ft_gradsync *g);
void ft_gradsync_free(ft_gradsync *g);

#endif
