/* Gradient all-reduce through shared memory, for ranks that all share one
 * node (the 2-rank, 2-core case). Open MPI's shared-memory transport moves a
 * large all-reduce through small bounce buffers: on the 2-core machines, 16.8
 * MB (W2's gradients) took 13-70 ms with MPI_Allreduce / MPI_Iallreduce
 * against 3-7 ms this way.
 *
 * Each rank has two gradient-sized buffers in an MPI-3 shared window (the
 * steps alternate between them, so a rank may start filling the next step's
 * buffer while a slower rank still reads the last one). During backward,
 * each range of the gradient arena is copied into this step's buffer as soon
 * as it is final (the model's grad_ready callback). At the end: barrier; rank
 * r sums slice r of every rank's buffer, in rank order, into its own buffer;
 * barrier; every rank copies every slice back into its gradient arena. So
 * every rank gets the same sums, and the sums do not depend on which rank
 * computed them. Used by the trainer in place of the bucketed MPI all-reduce
 * (gradsync.c) when every rank is on one node; that one stays for the rest. */
#ifndef FTUNE_SHMSYNC_H
#define FTUNE_SHMSYNC_H

#include <mpi.h>
#include <stddef.h>

#include "ftune/layer.h"

#include "runtime.h"

typedef struct ft_shmsync {
    MPI_Comm node;
    MPI_Win win;
    int locked;
    int rank, size;
    float *grads;
    size_t n;
    float **buf; /* buf[2 * q + k]: rank q's buffer k */
    int cur;     /* buffer of this step */
    size_t copied;
    int active;          /* copy during backward only on the last micro-batch of a step */
    double wait_seconds; /* barriers, summing and copying back: not hidden */
} ft_shmsync;

/* 1 when every rank of the job is on this node and there are at least 2. */
int ft_shmsync_applies(const ft_mpi *w);
/* Collective. */
int ft_shmsync_init(ft_shmsync *s, const ft_mpi *w, float *grads, size_t n, ft_err *err);
void ft_shmsync_begin(ft_shmsync *s);
/* ft_grad_ready_fn for the model. */
void ft_shmsync_ready(const ft_layer *l, size_t lo, size_t hi, void *user);
/* Collective: on return the arena holds the sum over ranks. */
void ft_shmsync_finish(ft_shmsync *s);
/* Bytes of shared memory this rank holds. */
size_t ft_shmsync_bytes(const ft_shmsync *s);
void ft_shmsync_free(ft_shmsync *s);

#endif
