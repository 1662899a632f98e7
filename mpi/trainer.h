/* The distributed training loop. */
#ifndef FTUNE_TRAINER_H
#define FTUNE_TRAINER_H

#include "ftune/config.h"

#include "runtime.h"

/* Exit code after SIGUSR1/SIGTERM: a checkpoint was written, requeue the job
 * and resume with --resume (EX_TEMPFAIL). */
#define FT_EXIT_REQUEUE 75
/* internal: train_step saw an agreed stop request */
#define FT_STOPPED (-1)

typedef struct ft_train_opts {
    const char *resume; /* NULL: fresh run; "auto": newest checkpoint if any; else a path */
} ft_train_opts;

/* Runs the whole job described by cfg. Collective; returns the exit code
 * (0, FT_EINPUT or FT_ERUNTIME) on every rank, with err filled. */
int ft_train(ft_mpi *w, ft_config *cfg, const ft_train_opts *opts, ft_err *err);

#endif
