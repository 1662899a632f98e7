/* Background batch reader: while a step computes, a thread reads the next
 * batch (rows in the epoch order) from the training set, so the step finds its
 * data ready. Two slots: the batch in use and the one being read.
 *
 * Debian's HDF5 is not thread-safe. Once a read is posted, the thread owns the
 * HDF5 library until ft_prefetch_idle() returns: the trainer calls it before
 * any HDF5 call of its own (evaluation, checkpoints, the model file), and
 * posts nothing until those are done. The thread makes no MPI calls.
 *
 * The source is a dataset (HDF5 file) or, for the frozen-feature cache, rows
 * in memory (features and labels gathered by index). */
#ifndef FTUNE_PREFETCH_H
#define FTUNE_PREFETCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ftune/data.h"
#include "ftune/err.h"

typedef struct ft_batch {
    float *x; /* n rows of the source's sample_floats */
    int *y;
    uint64_t *ids; /* global sample index of each row */
    int *len;      /* real positions of each row (text datasets), when has_len */
    int has_len;
    int *plen;    /* prompt lengths of source -> target rows (only the target part is trained) */
    int has_plen; /* the dataset has prompt_lengths (never for rows in memory) */
    int n;
    uint64_t epoch, pos; /* which batch: epoch and position in the epoch order */
    ft_err err;          /* the read's error, if any */
} ft_batch;

typedef struct ft_prefetch {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int threaded; /* 0: reads happen in ft_prefetch_get on the caller's thread */
    int stop;
    ft_batch slot[2];
    int state[2]; /* PF_FREE, PF_QUEUED, PF_READING, PF_READY, PF_INUSE */
    int max_rows;
    size_t max_floats; /* per row, the largest source's sample_floats */

    /* source: a dataset, or rows in memory */
    ft_dataset *d;
    const float *mem_x;
    const int *mem_y;
    /* lengths by sample index (mem_n of them), overriding the source's: the
     * feature cache's rows keep the training set's lengths; NULL: none */
    const int *mem_len;
    uint64_t mem_n;
    size_t sample_floats;

    double wait_seconds; /* time the caller blocked in ft_prefetch_get */
    double read_seconds; /* time spent reading (on the thread when threaded) */
} ft_prefetch;

/* Slots for batches of up to max_rows rows of up to max_floats floats. With
 * threaded = 0 (or when no thread can be started) it reads synchronously. */
int ft_prefetch_init(ft_prefetch *p, ft_dataset *d, int max_rows, size_t max_floats, int threaded,
                     ft_err *err);
/* Switches the source to rows in memory (x: N x sample_floats, y: N labels,
 * len: N lengths or NULL). Waits for any read in flight first; queued batches
 * are dropped. */
void ft_prefetch_use_memory(ft_prefetch *p, const float *x, const int *y, const int *len,
                            uint64_t n, size_t sample_floats);
/* Switches the source to a dataset (sample_floats at most max_floats); len
 * (n entries), when not NULL, replaces the dataset's own lengths. */
void ft_prefetch_use_dataset(ft_prefetch *p, ft_dataset *d, const int *len, uint64_t n);
/* Queues a read of rows ids[0..n) tagged (epoch, pos) if a slot is free. */
void ft_prefetch_post(ft_prefetch *p, uint64_t epoch, uint64_t pos, const uint64_t *ids, int n);
/* Returns the batch tagged (epoch, pos), reading ids[0..n) now if it was not
 * posted. The previous batch returned is released. Check ->err.code. */
ft_batch *ft_prefetch_get(ft_prefetch *p, uint64_t epoch, uint64_t pos, const uint64_t *ids, int n);
/* Waits until no read is queued or in flight (queued reads are dropped), so
 * the caller may use HDF5. */
void ft_prefetch_idle(ft_prefetch *p);
/* Bytes held by the slots (the memory report's data buffers). */
size_t ft_prefetch_bytes(const ft_prefetch *p);
void ft_prefetch_free(ft_prefetch *p);

#endif
