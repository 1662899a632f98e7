/* The run directory: checkpoints/ckpt-<step>.h5, best.h5, model.h5 and
 * metrics.jsonl. Only rank 0 touches it. */
#ifndef FTUNE_RUNDIR_H
#define FTUNE_RUNDIR_H

#include <stddef.h>

#include "ftune/err.h"

/* Creates dir (and parents) and proves it writable by creating and removing
 * a file. Errors name the directory and the reason. */
int ft_rundir_prepare(const char *dir, ft_err *err);

/* Path of the checkpoint for `step`. */
void ft_rundir_ckpt_path(const char *dir, long step, char *out, size_t len);

/* Finds checkpoints (newest first); returns how many paths were written. */
int ft_rundir_list_ckpts(const char *dir, char (*paths)[1024], int max);

/* Deletes all but the newest keep checkpoints. */
void ft_rundir_prune(const char *dir, int keep);

#endif
