/* Errors are values: a function that can fail takes an ft_err* and returns
 * its code, so callers add context instead of printing deep inside. */
#ifndef FTUNE_ERR_H
#define FTUNE_ERR_H

#include <stddef.h>

enum {
    FT_OK = 0,
    FT_ERUNTIME = 1, /* runtime failure (I/O, out of memory, MPI) */
    FT_EINPUT = 2    /* the user's input is wrong: usage, config, files */
};

typedef struct ft_err {
    int code;
    char msg[1024];
} ft_err;

/* Sets code and message (printf-style); returns code so callers can write
 * `return ft_fail(err, FT_EINPUT, "...")`. */
int ft_fail(ft_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (adds context on the way up). */
int ft_err_prefix(ft_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void ft_err_clear(ft_err *err);

/* Allocation helpers that fail with a message instead of returning NULL
 * silently; bytes are checked for overflow. */
void *ft_calloc(size_t count, size_t size, ft_err *err);
void *ft_alloc_floats(size_t count, ft_err *err); /* 64-byte aligned, zeroed */
void ft_free_floats(void *p);

/* Multiplies with overflow check; returns 0 on overflow. */
int ft_mul_size(size_t a, size_t b, size_t *out);

/* The memory limit: the most bytes one buffer may take, so that a size read from a file or a
 * config (a hostile or damaged one) is refused with a message instead of exhausting memory.
 * FTUNE_MAX_ALLOC_MB (MiB) in the environment sets it; the default is the machine's physical
 * memory. ft_calloc and ft_alloc_floats refuse larger requests (FT_ERUNTIME); readers call
 * ft_check_alloc first to refuse the input itself (FT_EINPUT, naming what and both sizes). */
size_t ft_alloc_limit(void);
int ft_check_alloc(size_t count, size_t size, const char *what, ft_err *err);

#endif
