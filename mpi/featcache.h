/* Frozen-feature cache (train.feature_cache). When the frozen prefix (the
 * layers before the first trainable one) is deterministic, its output for a
 * sample never changes during training. The cache computes it once per sample
 * and later batches start from it (ft_model_forward_from), so only the
 * trainable part runs.
 *
 * Design: the epoch order moves every sample between ranks from one epoch to
 * the next, so every rank holds the features of every sample. Before the
 * first step, each rank computes the prefix for its contiguous 1/P slice of
 * the training set (in order, so the reads are sequential), then
 *  - memory: the slices are exchanged with MPI_Allgatherv into one N x F array
 *    on every rank (N samples, F features = the prefix's output size);
 *  - disk: each rank writes its slice into an HDF5 scratch file in the run
 *    directory (rank 0 creates it with contiguous, pre-allocated datasets;
 *    the ranks write their rows at the file offsets HDF5 reports), and the
 *    prefetch thread then reads batches from it like any dataset.
 * "auto" picks memory when N x F floats fit under train.feature_cache_mb per
 * rank, else disk. The cost is one prefix forward per sample, split over the
 * ranks, in place of one per sample per epoch.
 *
 * Deterministic means: no dropout (or other random layer) before the first
 * trainable layer, and every batchnorm there frozen (running statistics). A
 * prefix layer of a kind not known to be deterministic refuses the cache. */
#ifndef FTUNE_FEATCACHE_H
#define FTUNE_FEATCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ftune/data.h"
#include "ftune/model.h"

#include "runtime.h"

enum { FT_FC_OFF = 0, FT_FC_AUTO, FT_FC_MEMORY, FT_FC_DISK };

typedef struct ft_featcache {
    int active;    /* the trainer feeds cached features to the trainable part */
    int mode;      /* FT_FC_MEMORY or FT_FC_DISK once built */
    int first;     /* the first trainable layer */
    size_t floats; /* features per sample */
    uint64_t n;
    float *x; /* memory: n x floats */
    int *y;   /* memory: n labels */
    ft_dataset disk;
    int disk_open;
    char path[1100];
    size_t bytes;         /* held in memory by this rank */
    double build_seconds; /* prefix forward + exchange or write */
} ft_featcache;

/* Parses "off" | "auto" | "memory" | "disk"; -1 if none. */
int ft_featcache_mode(const char *s);
/* 1 when the frozen prefix of m is deterministic; else 0 and why (naming the
 * layer). */
int ft_featcache_usable(const ft_model *m, char *why, size_t len);
/* Collective. Builds the cache for the training set with the model's current
 * (frozen) weights. mode is FT_FC_AUTO, FT_FC_MEMORY or FT_FC_DISK; the
 * model's activation buffers are used, so call it between steps. */
int ft_featcache_build(ft_featcache *fc, const ft_mpi *w, ft_model *m, ft_dataset *train, int mode,
                       size_t budget_bytes, const char *run_dir, ft_err *err);
/* Releases memory, closes and (rank 0) removes the scratch file. */
void ft_featcache_free(ft_featcache *fc, const ft_mpi *w);

#endif
