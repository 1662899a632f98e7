/* Elementwise loops split over a rank's compute threads. BLAS already runs the matrix
 * products on ftune_set_threads() threads; the loops around them (AdamW over every
 * parameter, GELU over the MLP activations) would otherwise run on one core while the others
 * wait. Every element is computed by the same code whatever the split, so results do not
 * depend on the thread count. Default: 1 thread (the unit tests, a rank bound to one core). */
#ifndef FTUNE_PARALLEL_H
#define FTUNE_PARALLEL_H

#include <stddef.h>

/* Threads for ft_parallel_range (the runtime sets the BLAS thread count); n < 1 means 1. */
void ft_set_threads(int n);
int ft_get_threads(void);

typedef void (*ft_range_fn)(size_t lo, size_t hi, void *ctx);
/* fn(lo, hi, ctx) over disjoint ranges covering [0, n), concurrently when n is at least
 * 2 * min_chunk and more than one thread is set; else fn(0, n, ctx). Range bounds are
 * multiples of 16 (whole cache lines of floats). fn must only touch its own elements. */
void ft_parallel_range(size_t n, size_t min_chunk, ft_range_fn fn, void *ctx);

#endif
