/* Sub-commands of the ftune executable. Each returns the process exit code:
 * 0 success, 2 usage or input error, 1 runtime failure. MPI is initialised
 * (by main) only for the commands that run distributed: train and eval. */
#ifndef FTUNE_COMMANDS_H
#define FTUNE_COMMANDS_H

#include "ftune/err.h"

int cmd_train(int argc, char **argv);            /* mpi/cmd_train.c */
int cmd_eval(int argc, char **argv);             /* mpi/cmd_eval.c */
int cmd_inspect(int argc, char **argv);          /* mpi/cmd_inspect.c (single process) */
int cmd_data(int argc, char **argv);             /* mpi/cmd_data.c (single process) */
int cmd_data_import_text(int argc, char **argv); /* mpi/cmd_data_text.c */
int cmd_data_tokenize(int argc, char **argv);    /* mpi/cmd_data_text.c */
int cmd_import(int argc, char **argv);           /* mpi/cmd_import.c: keras | safetensors | hf */
int cmd_export(int argc, char **argv);           /* mpi/cmd_export.c */
int cmd_report(int argc, char **argv);           /* mpi/cmd_report.c: tabulate runs */
int cmd_generate(int argc, char **argv);         /* mpi/cmd_generate.c (single process) */

/* ftune import keras (mpi/cmd_import_keras.c) and hf (mpi/cmd_import_hf.c), dispatched by
 * cmd_import. */
int cmd_import_keras(int argc, char **argv);
int cmd_import_hf(int argc, char **argv);

/* Matches "--name VALUE" and "--name=VALUE" at argv[*i] (mpi/cmd_data.c);
 * advances *i past the value, sets *missing when the value is absent. */
int ft_opt_value(int argc, char **argv, int *i, const char *name, const char **value, int *missing);
/* Writes text to path atomically (temporary file, fsync, rename; mpi/cmd_import.c). */
int ft_write_text_file(const char *path, const char *text, ft_err *err);
/* A whole decimal integer in [lo, hi] (mpi/cmd_data.c); 0 when s is anything else. */
int ft_parse_long(const char *s, long lo, long hi, long *out);

#endif
