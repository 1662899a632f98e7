/* ftune train CONFIG [--set key=value ...] [--resume [auto|CKPT]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/config.h"

#include "commands.h"
#include "runtime.h"
#include "slurm.h"
#include "trainer.h"

#define MAX_SETS 64

static void train_usage(FILE *f)
{
    fputs("usage: ftune train CONFIG [--set key=value ...] [--resume [auto|CKPT]]\n"
          "\n"
          "  CONFIG             libconfig file (keys: docs/config.md)\n"
          "  --set key=value    override a config key, e.g. --set train.optimizer.lr=0.02\n"
          "  --resume           continue from the newest complete checkpoint in the run\n"
          "                     directory (starts fresh when there is none); same as\n"
          "                     --resume auto\n"
          "  --resume CKPT      continue from this checkpoint file\n"
          "\n"
          "Run several ranks with mpirun, e.g. mpirun -np 2 ftune train CONFIG.\n"
          "The global batch (train.batch_size) is split across ranks.\n",
          f);
}

int cmd_train(int argc, char **argv)
{
    const char *config = NULL, *resume = NULL;
    const char *sets[MAX_SETS];
    int nsets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--set")) {
            if (i + 1 >= argc || nsets >= MAX_SETS) {
                fprintf(stderr, "ftune train: --set needs key=value\n");
                return 2;
            }
            sets[nsets++] = argv[++i];
        } else if (!strncmp(a, "--set=", 6) && nsets < MAX_SETS) {
            sets[nsets++] = a + 6;
        } else if (!strcmp(a, "--resume")) {
            /* The argument is optional: the next word is taken when it is
             * "auto", when the config was already named, or when another
             * word (the config) follows it. */
            resume = "auto";
            int next = i + 1 < argc && argv[i + 1][0] != '-';
            int after = i + 2 < argc && argv[i + 2][0] != '-';
            if (next && (!strcmp(argv[i + 1], "auto") || config || after))
                resume = argv[++i];
        } else if (!strncmp(a, "--resume=", 9)) {
            resume = a + 9;
        } else if (a[0] == '-') {
            fprintf(stderr, "ftune train: unknown option '%s' (see ftune train --help)\n", a);
            return 2;
        } else if (!config) {
            config = a;
        } else {
            fprintf(stderr, "ftune train: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!config) {
        train_usage(stderr);
        return 2;
    }

    if (ft_slurm_precheck("ftune train")) /* srun without PMIx: before MPI_Init aborts */
        return 2;
    ft_mpi w;
    ft_mpi_init(&w, &argc, &argv);
    if (ft_slurm_check(&w, "ftune train", stdout)) {
        ft_mpi_finalize();
        return 2;
    }
    ft_err err = {0};
    ft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    /* every rank parses the same file, so every rank reaches the same verdict */
    ft_config_load(&cfg, config, sets, nsets, &err);
    int rc = ft_mpi_agree(&w, &err);
    if (!rc) {
        ft_train_opts opts = {resume};
        rc = ft_train(&w, &cfg, &opts, &err);
    }
    if (rc && rc != FT_EXIT_REQUEUE && w.rank == 0)
        fprintf(stderr, "ftune train: %s\n", err.msg);
    ft_config_free(&cfg);
    ft_mpi_finalize();
    return rc;
}
