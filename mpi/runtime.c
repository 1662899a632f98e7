#define _GNU_SOURCE
#include "runtime.h"

#include <cblas.h>
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftune/parallel.h"

int ft_mpi_init(ft_mpi *w, int *argc, char ***argv)
{
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited)
        MPI_Init(argc, argv);
    memset(w, 0, sizeof *w);
    MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &w->local_rank);
    MPI_Comm_size(node, &w->local_size);
    MPI_Comm_free(&node);
    return FT_OK;
}

void ft_mpi_finalize(void)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized)
        MPI_Finalize();
}

int ft_mpi_agree(const ft_mpi *w, ft_err *err)
{
    int mine[2] = {err->code, err->code ? w->rank : INT_MAX};
    int worst[2];
    int code = err->code;
    MPI_Allreduce(&code, &worst[0], 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (worst[0] == 0)
        return 0;
    MPI_Allreduce(&mine[1], &worst[1], 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Bcast(err->msg, (int)sizeof err->msg, MPI_CHAR, worst[1], MPI_COMM_WORLD);
    err->code = worst[0];
    return worst[0];
}

void ft_mpi_abort(const ft_mpi *w, int code, const char *msg)
{
    fprintf(stderr, "ftune: rank %d: %s\n", w->rank, msg);
    fflush(stderr);
    if (w->size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

/* MPI counts are int: move big buffers in pieces. */
#define PIECE (1 << 28)

void ft_mpi_bcast_floats(const ft_mpi *w, float *buf, size_t n)
{
    for (size_t off = 0; off < n && w->size > 1; off += PIECE) {
        size_t len = n - off < PIECE ? n - off : PIECE;
        MPI_Bcast(buf + off, (int)len, MPI_FLOAT, 0, MPI_COMM_WORLD);
    }
}

void ft_mpi_bcast_bytes(const ft_mpi *w, void *buf, size_t n)
{
    for (size_t off = 0; off < n && w->size > 1; off += PIECE) {
        size_t len = n - off < PIECE ? n - off : PIECE;
        MPI_Bcast((char *)buf + off, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
}

void ft_mpi_sum_doubles(const ft_mpi *w, double *buf, size_t n)
{
    for (size_t off = 0; off < n && w->size > 1; off += PIECE) {
        size_t len = n - off < PIECE ? n - off : PIECE;
        MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)len, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    }
}

void ft_mpi_sum_floats(const ft_mpi *w, float *buf, size_t n)
{
    for (size_t off = 0; off < n && w->size > 1; off += PIECE) {
        size_t len = n - off < PIECE ? n - off : PIECE;
        MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

int ft_mpi_reduce_cb(float *buf, size_t n, void *user)
{
    ft_mpi_sum_floats((const ft_mpi *)user, buf, n);
    return 0;
}

int ft_mpi_set_blas_threads(ft_mpi *w, int requested)
{
    int threads = requested;
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    if (threads <= 0 && env && atoi(env) > 0)
        threads = atoi(env);
    if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0) {
            /* a rank bound to one core should not start threads elsewhere */
            int allowed = CPU_COUNT(&set);
            if (allowed > 0 && allowed < cores)
                cores = allowed * (long)w->local_size;
        }
        threads = (int)(cores / (w->local_size > 0 ? w->local_size : 1));
        if (threads < 1)
            threads = 1;
    }
    openblas_set_num_threads(threads);
    ft_set_threads(threads); /* the elementwise loops around the BLAS calls (parallel.h) */
    w->blas_threads = threads;
    return threads;
}
