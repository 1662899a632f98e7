/* The MPI side of ftune: who we are, agreeing on errors, broadcasting state.
 * Every helper here is collective: all ranks call it in the same order. */
#ifndef FTUNE_RUNTIME_H
#define FTUNE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "ftune/err.h"

typedef struct ft_mpi {
    int rank, size;
    int local_rank, local_size; /* ranks on this node */
    int blas_threads;
} ft_mpi;

/* Initialises MPI (if needed) and fills w. */
int ft_mpi_init(ft_mpi *w, int *argc, char ***argv);
void ft_mpi_finalize(void);

/* Collective error agreement: returns the highest error code of any rank
 * (0 when all succeeded); the message of the lowest failing rank is copied
 * into err on every rank. Use after every step that can fail on one rank. */
int ft_mpi_agree(const ft_mpi *w, ft_err *err);

/* Ends the whole job now (an error that other ranks cannot learn about at
 * a collective). Prints the message with the rank first. */
void ft_mpi_abort(const ft_mpi *w, int code, const char *msg) __attribute__((noreturn));

/* Broadcasts from rank 0 (any size; split into pieces under INT_MAX). */
void ft_mpi_bcast_floats(const ft_mpi *w, float *buf, size_t n);
void ft_mpi_bcast_bytes(const ft_mpi *w, void *buf, size_t n);
/* Sums in place over all ranks. */
void ft_mpi_sum_doubles(const ft_mpi *w, double *buf, size_t n);
void ft_mpi_sum_floats(const ft_mpi *w, float *buf, size_t n);

/* ft_reduce_fn for layers (SyncBatchNorm); user is the ft_mpi. */
int ft_mpi_reduce_cb(float *buf, size_t n, void *user);

/* Chooses OpenBLAS threads so ranks x threads fits the node's cores:
 * `requested` > 0 wins, then OPENBLAS_NUM_THREADS, else cores / local ranks
 * (at least 1), bounded by the CPUs this process may run on. */
int ft_mpi_set_blas_threads(ft_mpi *w, int requested);

#endif
